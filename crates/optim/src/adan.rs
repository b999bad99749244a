//! Adan (Xie et al., 2022, "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing
//! Deep Models"; optax's `optax.adan`).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// Adan: Adam-like moments of the gradient and of the gradient's change between steps (a
/// Nesterov estimate without the extra gradient evaluation), with decoupled weight decay
/// (optax's `add_decayed_weights`, the engine's transform `u ← u + λ·p`).
/// Exactly `optax.adan` (its defaults: the learning rate is required, `b1 = 0.98`, `b2 = 0.92`,
/// `b3 = 0.99`, `eps = 1e-8`, `eps_root = 1e-8`, `weight_decay = 0`):
///
/// ```text
/// Δ ← g - g_prev   (0 at the first step);  g_prev ← g
/// m ← (1 - β1)·g + β1·m
/// v ← (1 - β2)·Δ + β2·v
/// n ← (1 - β3)·(g + (1 - β2)·Δ)² + β3·n
/// u ← (m/(1 - β1ᵗ) + (1 - β2)·v/(1 - β2ᵗ)) / (√(n/(1 - β3ᵗ) + ε_root) + ε)
/// p ← p - η·(u + λ·p)
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adan", decay = "added")]
pub struct Adan {
    /// Learning rate `η` (required, as optax's `learning_rate`; 1e-3 in `Default`).
    #[hp(default = 1e-3, range = ">= 0", required)]
    pub lr: f64,
    /// Decay `β1` of the gradient's moment.
    #[hp(default = 0.98, range = "[0, 1)")]
    pub b1: f64,
    /// Decay `β2` of the gradient difference's moment.
    #[hp(default = 0.92, range = "[0, 1)")]
    pub b2: f64,
    /// Decay `β3` of the second moment.
    #[hp(default = 0.99, range = "[0, 1)")]
    pub b3: f64,
    /// `ε` added outside the root (optax's default 1e-8).
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// `ε_root` added inside the root (optax's `adan` default 1e-8).
    #[hp(default = 1e-8, range = ">= 0")]
    pub eps_root: f64,
    /// Decoupled weight decay `λ`.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

/// Adan's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub struct AdanCoeffs {
    /// 0 at the first step (no previous gradient), else 1.
    diff: f64,
    inv_bias_correction1: f64,
    /// `(1 - β2)/(1 - β2ᵗ)`.
    v: f64,
    inv_bias_correction3: f64,
}

impl Rule for Adan {
    type Coeffs = AdanCoeffs;
    type Fused = Fuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("m"), Buffer::zeros("v"), Buffer::zeros("n"), Buffer::zeros("g")])
    }

    fn coeffs(&self, step: u64) -> AdanCoeffs {
        let t = step as f64;
        AdanCoeffs {
            diff: if step <= 1 { 0.0 } else { 1.0 },
            inv_bias_correction1: 1.0 / (1.0 - self.b1.powf(t)),
            v: (1.0 - self.b2) / (1.0 - self.b2.powf(t)),
            inv_bias_correction3: 1.0 / (1.0 - self.b3.powf(t)),
        }
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for Adan {
    /// `(m̂ + (1 - β2)·v̂) / (√(n̂ + ε_root) + ε)`; the engine steps `p ← p - η·(u + λ·p)`.
    #[inline(always)]
    fn direction(&self, c: &AdanCoeffs, _p: &E, g: &E, s: &mut [E]) -> std::result::Result<E, E::Err> {
        let [m, v, n, prev] = s else { return Ok(g.clone()) };
        let diff = g.sub(prev)?.scale(c.diff)?;
        *prev = g.clone();
        *m = g.scale(1.0 - self.b1)?.add(&m.scale(self.b1)?)?;
        *v = diff.scale(1.0 - self.b2)?.add(&v.scale(self.b2)?)?;
        let sq = g.add_scaled(&diff, 1.0 - self.b2)?;
        *n = sq.sqr()?.scale(1.0 - self.b3)?.add(&n.scale(self.b3)?)?;
        let denom =
            n.scale(c.inv_bias_correction3)?.affine(1.0, self.eps_root)?.sqrt()?.affine(1.0, self.eps)?;
        m.scale(c.inv_bias_correction1)?.add(&v.scale(c.v)?)?.div(&denom)
    }
}
