//! Yogi (Zaheer et al., 2018, "Adaptive Methods for Nonconvex Optimization"; optax's
//! `optax.yogi`).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// Yogi: Adam whose second moment moves towards `g²` by an additive step of fixed size
/// `(1 - β2)·g²`, so it cannot collapse after one large gradient. Exactly `optax.yogi` (its
/// defaults: the learning rate is required, `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-3`; both moments
/// start at `initial_accumulator_value = 1e-6`):
///
/// ```text
/// m ← (1 - β1)·g + β1·m
/// v ← v - (1 - β2)·sign(v - g²)·g²
/// p ← p - η · (m/(1 - β1ᵗ)) / (√(v/(1 - β2ᵗ) + ε_root) + ε)
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "yogi")]
pub struct Yogi {
    /// Learning rate `η` (required, as optax's `learning_rate`; 1e-2 in `Default`).
    #[hp(default = 1e-2, range = ">= 0", required)]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub b1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub b2: f64,
    /// `ε` added outside the root (optax's default 1e-3).
    #[hp(default = 1e-3, range = "> 0")]
    pub eps: f64,
    /// `ε_root` added inside the root (optax's default 0).
    #[hp(default = 0.0, range = ">= 0")]
    pub eps_root: f64,
    /// Both moments' starting value (optax's default 1e-6).
    #[hp(default = 1e-6, range = "> 0")]
    pub initial_accumulator_value: f64,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

/// Yogi's per-step scalars: `1/(1 - β1ᵗ)` and `1/(1 - β2ᵗ)`.
#[derive(Debug, Clone, Copy)]
pub struct YogiCoeffs {
    inv_bias_correction1: f64,
    inv_bias_correction2: f64,
}

impl Rule for Yogi {
    type Coeffs = YogiCoeffs;
    type Fused = Fuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        let v = self.initial_accumulator_value;
        Ok(vec![Buffer::filled("mu", v), Buffer::filled("nu", v)])
    }

    fn coeffs(&self, step: u64) -> YogiCoeffs {
        let t = step as f64;
        YogiCoeffs {
            inv_bias_correction1: 1.0 / (1.0 - self.b1.powf(t)),
            inv_bias_correction2: 1.0 / (1.0 - self.b2.powf(t)),
        }
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for Yogi {
    /// `m̂ / (√(v̂ + ε_root) + ε)`; the engine steps `p ← p - η·u`.
    #[inline(always)]
    fn direction(&self, c: &YogiCoeffs, _p: &E, g: &E, s: &mut [E]) -> std::result::Result<E, E::Err> {
        let [mu, nu] = s else { return Ok(g.clone()) };
        *mu = g.scale(1.0 - self.b1)?.add(&mu.scale(self.b1)?)?;
        let g2 = g.sqr()?;
        *nu = nu.sub(&nu.sub(&g2)?.sign()?.scale(1.0 - self.b2)?.mul(&g2)?)?;
        let denom =
            nu.scale(c.inv_bias_correction2)?.affine(1.0, self.eps_root)?.sqrt()?.affine(1.0, self.eps)?;
        mu.scale(c.inv_bias_correction1)?.div(&denom)
    }
}
