//! AdEMAMix (Pagliardini et al., 2024, "The AdEMAMix Optimizer: Better, Faster, Older"; optax's
//! `optax.contrib.ademamix`, the authors' optax version).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// AdEMAMix: Adam with a second, much slower momentum mixed into the numerator. Exactly
/// `optax.contrib.ademamix` with constant `b3` and `alpha` (weight decay is optax's
/// `add_decayed_weights`, the engine's transform `u ← u + λ·p`):
///
/// ```text
/// m1 ← β1·m1 + (1 - β1)·g,   m2 ← β3·m2 + (1 - β3)·g,   ν ← β2·ν + (1 - β2)·g²
/// u ← (m1 / (1 - β1ᵗ) + α·m2) / (√(ν / (1 - β2ᵗ) + ε_root) + ε)
/// p ← p - η·(u + λ·p)
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "ademamix", decay = "added")]
pub struct AdEMAMix {
    /// Learning rate `η` (required, as optax's `learning_rate`; 1e-3 in `Default`).
    #[hp(default = 1e-3, range = ">= 0", required)]
    pub lr: f64,
    /// Decay `β1` of the fast momentum.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub b1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub b2: f64,
    /// Decay `β3` of the slow momentum (0.9999).
    #[hp(default = 0.9999, range = "[0, 1)")]
    pub b3: f64,
    /// The weight `α` of the slow momentum (5).
    #[hp(default = 5.0, range = ">= 0")]
    pub alpha: f64,
    /// `ε` outside the root.
    #[hp(default = 1e-8, range = ">= 0")]
    pub eps: f64,
    /// `ε_root` inside the root.
    #[hp(default = 0.0, range = ">= 0")]
    pub eps_root: f64,
    /// Weight decay `λ`, added to the update (optax's `add_decayed_weights`).
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

/// The bias corrections `1 - β1ᵗ` and `1 - β2ᵗ`.
#[derive(Debug, Clone, Copy)]
pub struct AdEMAMixCoeffs {
    correction1: f64,
    correction2: f64,
}

impl Rule for AdEMAMix {
    type Coeffs = AdEMAMixCoeffs;
    type Fused = Fuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("m1"), Buffer::zeros("m2"), Buffer::zeros("nu")])
    }

    fn coeffs(&self, step: u64) -> AdEMAMixCoeffs {
        let t = step as i32;
        AdEMAMixCoeffs { correction1: 1.0 - self.b1.powi(t), correction2: 1.0 - self.b2.powi(t) }
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for AdEMAMix {
    #[inline(always)]
    fn direction(&self, c: &AdEMAMixCoeffs, _p: &E, g: &E, s: &mut [E]) -> std::result::Result<E, E::Err> {
        let [m1, m2, nu] = s else { return Ok(g.clone()) };
        *m1 = g.scale(1.0 - self.b1)?.add(&m1.scale(self.b1)?)?;
        *m2 = g.scale(1.0 - self.b3)?.add(&m2.scale(self.b3)?)?;
        *nu = g.mul(g)?.scale(1.0 - self.b2)?.add(&nu.scale(self.b2)?)?;
        let m1_hat = m1.scale(1.0 / c.correction1)?;
        let nu_hat = nu.scale(1.0 / c.correction2)?;
        let denom = nu_hat.affine(1.0, self.eps_root)?.sqrt()?.affine(1.0, self.eps)?;
        m1_hat.add(&m2.scale(self.alpha)?)?.div(&denom)
    }
}
