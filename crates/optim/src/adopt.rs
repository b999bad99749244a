//! ADOPT (Taniguchi et al., 2024, "ADOPT: Modified Adam Can Converge with Any β2 with the Optimal
//! Rate"; timm's `timm.optim.Adopt`, ported from the authors' iShohei220/adopt).

use crate::elem::{clamp_abs, clamp_min, ema_sq, lerp, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// ADOPT: the gradient normalized by the *previous* second moment, clipped, then averaged into
/// the momentum; the second moment is updated last. The first step only fills `v`. Exactly
/// `timm.optim.Adopt` (weight decay, the L2 penalty `g ← g + λ·p` or with `decoupled`
/// `p ← p·(1 - η·λ)` from the second step on, and `cautious` are the engine's transforms):
///
/// ```text
/// t = 1:  v ← g²                                   (p unchanged)
/// t > 1:  n ← clamp(g / max(√v, ε), ±(t - 1)^clip_exp)   (no clamp when clip_exp = none)
///         m ← m + (1 - β1)·(n - m)
///         p ← p - η·m
///         v ← β2·v + (1 - β2)·g²
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adopt")]
pub struct Adopt {
    /// Learning rate `η` (timm's default 1e-3).
    #[hp(default = 1e-3, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the momentum.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment (0.9999).
    #[hp(default = 0.9999, range = "[0, 1)")]
    pub beta2: f64,
    /// The floor `ε` of `√v` (1e-6).
    #[hp(default = 1e-6, range = ">= 0")]
    pub eps: f64,
    /// The clipping exponent: normalized gradients are clamped to `±(t - 1)^clip_exp`
    /// (`none`: no clipping; 0.333 by default).
    #[hp(default = Some(0.333))]
    pub clip_exp: Option<f64>,
    /// Weight decay `λ`: an L2 penalty added to the gradient, or decoupled.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Decay the weights directly (`p ← p·(1 - η·λ)`) instead of adding `λ·p` to the gradient.
    #[hp(default = false, decoupled)]
    pub decoupled: bool,
    /// Ascend the objective instead of descending it.
    #[hp(default = false, maximize)]
    pub maximize: bool,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious)]
    pub cautious: bool,
}

/// ADOPT's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub struct AdoptCoeffs {
    first: bool,
    clip: Option<f64>,
}

impl Rule for Adopt {
    type Coeffs = AdoptCoeffs;
    type Fused = Fuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("exp_avg"), Buffer::zeros("exp_avg_sq")])
    }

    fn coeffs(&self, step: u64) -> AdoptCoeffs {
        AdoptCoeffs { first: step == 1, clip: self.clip_exp.map(|e| ((step - 1) as f64).powf(e)) }
    }

    fn has_momentum(&self) -> bool {
        true
    }

    fn decays(&self, c: &AdoptCoeffs) -> bool {
        !c.first
    }
}

impl<E: Elem> Steps<E> for Adopt {
    #[inline(always)]
    fn direction(&self, c: &AdoptCoeffs, _p: &E, g: &E, s: &mut [E]) -> std::result::Result<E, E::Err> {
        let [exp_avg, exp_avg_sq] = s else { return Ok(g.clone()) };
        if c.first {
            *exp_avg_sq = exp_avg_sq.add(&g.mul(g)?)?;
            return g.scale(0.0);
        }
        let mut normed = g.div(&clamp_min(&exp_avg_sq.sqrt()?, self.eps)?)?;
        if let Some(clip) = c.clip {
            normed = clamp_abs(&normed, clip)?;
        }
        *exp_avg = lerp(exp_avg, &normed, 1.0 - self.beta1)?;
        *exp_avg_sq = ema_sq(exp_avg_sq, g, self.beta2)?;
        Ok(exp_avg.clone())
    }
}
