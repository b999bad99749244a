//! LaProp (Ziyin et al., 2020, "LaProp: Separating Momentum and Adaptivity in Adam"; timm's
//! `timm.optim.LaProp`).

use crate::elem::{ema_sq, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// LaProp: the momentum averages gradients already divided by the RMS (Adam averages first and
/// divides after), the learning rate inside the average; bias corrections are running sums, so
/// a changing learning rate is corrected for too. Exactly `timm.optim.LaProp` (its weight decay
/// is applied after the step, `p ← p - η·λ·p`; `cautious` is the engine's transform):
///
/// ```text
/// v ← β2·v + (1 - β2)·g²,           c2 ← β2·c2 + (1 - β2)
/// m ← β1·m + η(1 - β1) · g / (√(v / c2) + ε),   c1 ← β1·c1 + (1 - β1)·η
/// p ← p - m / c1
/// p ← p - η·λ·p
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "laprop")]
pub struct LaProp {
    /// Learning rate `η` (timm's default 4e-4).
    #[hp(default = 4e-4, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the momentum.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub beta2: f64,
    /// `ε` added to the root (1e-15).
    #[hp(default = 1e-15, range = ">= 0")]
    pub eps: f64,
    /// Weight decay `λ`, applied after the step: `p ← p - η·λ·p`.
    #[hp(default = 0.0, range = ">= 0")]
    pub weight_decay: f64,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious)]
    pub cautious: bool,
}

/// LaProp's per-step scalars: the step size `η / c1` and the correction `c2`.
#[derive(Debug, Clone, Copy)]
pub struct LaPropCoeffs {
    step_size: f64,
    correction2: f64,
}

impl Rule for LaProp {
    type Coeffs = LaPropCoeffs;
    type Fused = Fuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("exp_avg"), Buffer::zeros("exp_avg_sq")])
    }

    fn coeffs(&self, _step: u64) -> LaPropCoeffs {
        // Only `advance` is called: the corrections are running sums of the learning rates.
        LaPropCoeffs { step_size: 0.0, correction2: 1.0 }
    }

    fn scalars(&self) -> &'static [&'static str] {
        &["exp_avg_lr_1", "exp_avg_lr_2"]
    }

    fn advance(&self, _step: u64, s: &mut [f64]) -> LaPropCoeffs {
        let [lr1, lr2] = s else { return self.coeffs(0) };
        *lr1 = *lr1 * self.beta1 + (1.0 - self.beta1) * self.lr;
        *lr2 = *lr2 * self.beta2 + (1.0 - self.beta2);
        LaPropCoeffs { step_size: if *lr1 != 0.0 { self.lr / *lr1 } else { 0.0 }, correction2: *lr2 }
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for LaProp {
    /// The momentum `m` (the learning rate inside), moving `v` and `m`.
    #[inline(always)]
    fn direction(&self, c: &LaPropCoeffs, _p: &E, g: &E, s: &mut [E]) -> std::result::Result<E, E::Err> {
        let [exp_avg, exp_avg_sq] = s else { return Ok(g.clone()) };
        *exp_avg_sq = ema_sq(exp_avg_sq, g, self.beta2)?;
        let denom = exp_avg_sq.scale(1.0 / c.correction2)?.sqrt()?.affine(1.0, self.eps)?;
        let step = g.div(&denom)?;
        *exp_avg = exp_avg.scale(self.beta1)?.add_scaled(&step, self.lr * (1.0 - self.beta1))?;
        Ok(exp_avg.clone())
    }

    /// `p ← p - m / c1`, then the weight decay `p ← p - η·λ·p`.
    #[inline(always)]
    fn apply(&self, c: &LaPropCoeffs, p: &mut E, u: &E, _s: &mut [E]) -> std::result::Result<(), E::Err> {
        *p = p.add_scaled(u, -c.step_size)?;
        if self.weight_decay != 0.0 {
            *p = p.add_scaled(&p.clone(), -self.lr * self.weight_decay)?;
        }
        Ok(())
    }
}
