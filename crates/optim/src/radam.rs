//! RAdam (Liu et al., 2020, "On the Variance of the Adaptive Learning Rate and Beyond";
//! PyTorch's `torch.optim.RAdam`).

use crate::elem::{ema_sq, lerp, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// RAdam: Adam whose adaptive step is switched on only once the variance of the adaptive
/// learning rate is tractable, and then rectified; before that, plain bias-corrected momentum.
/// Exactly `torch.optim.RAdam` (maximize and weight decay, L2 or with `decoupled_weight_decay`
/// `p ← p·(1 - η·λ)`, are the engine's transforms):
///
/// ```text
/// m ← β1·m + (1 - β1)·g
/// v ← β2·v + (1 - β2)·g²
/// m̂ ← m / (1 - β1ᵗ)
/// ρ∞ ← 2/(1 - β2) - 1,   ρt ← ρ∞ - 2t·β2ᵗ/(1 - β2ᵗ)
/// ρt > 5:   r ← √((ρt - 4)(ρt - 2)ρ∞ / ((ρ∞ - 4)(ρ∞ - 2)ρt))
///           p ← p - η·m̂ · √(1 - β2ᵗ)/(√v + ε) · r
/// else:     p ← p - η·m̂
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "radam")]
pub struct RAdam {
    /// Learning rate `η` (PyTorch's default 1e-3).
    #[hp(default = 1e-3, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub beta2: f64,
    /// `ε` added outside the root (PyTorch's default 1e-8).
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// Weight decay `λ`: an L2 penalty added to the gradient, or decoupled.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Decay the weights directly (`p ← p·(1 - η·λ)`) instead of adding `λ·p` to the gradient.
    #[hp(default = false, decoupled)]
    pub decoupled_weight_decay: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

/// RAdam's per-step scalars: the plain step size (before the variance is tractable) or the
/// rectified adaptive one.
#[derive(Debug, Clone, Copy)]
pub struct RAdamCoeffs {
    plain: f64,
    adaptive: f64,
}

/// PyTorch's threshold on `ρt` for the adaptive step.
const RHO_THRESHOLD: f64 = 5.0;

impl Rule for RAdam {
    type Coeffs = RAdamCoeffs;
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("exp_avg"), Buffer::zeros("exp_avg_sq")])
    }

    fn coeffs(&self, step: u64) -> RAdamCoeffs {
        let t = step as f64;
        let bias_correction1 = 1.0 - self.beta1.powf(t);
        let bias_correction2 = 1.0 - self.beta2.powf(t);
        let rho_inf = 2.0 / (1.0 - self.beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * self.beta2.powf(t) / bias_correction2;
        let step_size = self.lr / bias_correction1;
        if rho_t > RHO_THRESHOLD {
            let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .powf(0.5);
            RAdamCoeffs { plain: 0.0, adaptive: step_size * bias_correction2.powf(0.5) * rect }
        } else {
            RAdamCoeffs { plain: step_size, adaptive: 0.0 }
        }
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for RAdam {
    #[inline(always)]
    fn update(&self, c: &RAdamCoeffs, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [exp_avg, exp_avg_sq] = s else { return Ok(()) };
        *exp_avg = lerp(exp_avg, g, 1.0 - self.beta1)?;
        *exp_avg_sq = ema_sq(exp_avg_sq, g, self.beta2)?;
        let denom = exp_avg_sq.sqrt()?.affine(1.0, self.eps)?;
        let step = exp_avg.scale(c.plain)?.add(&exp_avg.scale(c.adaptive)?.div(&denom)?)?;
        *p = p.sub(&step)?;
        Ok(())
    }
}
