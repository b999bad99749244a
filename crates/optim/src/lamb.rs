//! LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
//! minutes"; optax's `optax.lamb`).

use candle_core::Tensor;

use crate::elem::{norm, Elem};
use crate::rule::{Buffer, NoFuse, Rule, Steps};
use crate::{Hyper, Result};

/// LAMB: Adam's step plus decoupled weight decay, rescaled per tensor by the trust ratio
/// `‖p‖/‖u‖` so that every layer moves by a similar fraction of its norm. Exactly `optax.lamb`
/// (its defaults: the learning rate is required, `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-6`,
/// `eps_root = 0`, `weight_decay = 0`), a whole-tensor rule (composed path only; the decayed
/// weights `u ← u + λ·p` are the engine's transform, between the direction and the trust ratio):
///
/// ```text
/// m ← (1 - β1)·g + β1·m
/// v ← (1 - β2)·g² + β2·v
/// u ← (m/(1 - β1ᵗ)) / (√(v/(1 - β2ᵗ) + ε_root) + ε) + λ·p
/// r ← ‖p‖/‖u‖,  or 1 where either norm is 0
/// p ← p - η·r·u
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "lamb", decay = "added")]
pub struct Lamb {
    /// Learning rate `η` (required, as optax's `learning_rate`; 1e-3 in `Default`).
    #[hp(default = 1e-3, range = ">= 0", required)]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub b1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub b2: f64,
    /// `ε` added outside the root (optax's default 1e-6).
    #[hp(default = 1e-6, range = "> 0")]
    pub eps: f64,
    /// `ε_root` added inside the root (optax's default 0).
    #[hp(default = 0.0, range = ">= 0")]
    pub eps_root: f64,
    /// Decoupled weight decay `λ`, added to the update before the trust ratio.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

impl Rule for Lamb {
    /// The step `t`.
    type Coeffs = u64;
    type Fused = NoFuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("mu"), Buffer::zeros("nu")])
    }

    fn coeffs(&self, step: u64) -> u64 {
        step
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl Steps<Tensor> for Lamb {
    /// Adam's direction `m̂ / (√(v̂ + ε_root) + ε)`.
    fn direction(
        &self,
        step: &u64,
        _p: &Tensor,
        g: &Tensor,
        s: &mut [Tensor],
    ) -> candle_core::Result<Tensor> {
        let [mu, nu] = s else { candle_core::bail!("lamb keeps two buffers") };
        let t = *step as f64;
        *mu = g.scale(1.0 - self.b1)?.add(&mu.scale(self.b1)?)?;
        *nu = g.sqr()?.scale(1.0 - self.b2)?.add(&nu.scale(self.b2)?)?;
        let m_hat = mu.scale(1.0 / (1.0 - self.b1.powf(t)))?;
        let v_hat = nu.scale(1.0 / (1.0 - self.b2.powf(t)))?;
        m_hat.div(&v_hat.affine(1.0, self.eps_root)?.sqrt()?.affine(1.0, self.eps)?)
    }

    /// The trust ratio `r = ‖p‖/‖u‖` (1 where either is 0), then `p ← p - η·r·u`.
    fn apply(&self, _: &u64, p: &mut Tensor, u: &Tensor, _s: &mut [Tensor]) -> candle_core::Result<()> {
        let (pn, un) = (norm(p)?, norm(u)?);
        let ratio = if pn == 0.0 || un == 0.0 { 1.0 } else { pn / un };
        *p = p.add(&u.scale(ratio)?.scale(-self.lr)?)?;
        Ok(())
    }
}
