//! Adamax (Kingma & Ba, 2015, §7.1; PyTorch's `torch.optim.Adamax`).

use crate::elem::{addcdiv, lerp, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm.
/// Exactly `torch.optim.Adamax` (maximize and the L2 penalty `g ← g + λ·p` are the engine's
/// transforms):
///
/// ```text
/// m ← β1·m + (1 - β1)·g
/// u ← max(β2·u, |g| + ε)
/// p ← p - η/(1 - β1ᵗ) · m/u
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adamax")]
pub struct Adamax {
    /// Learning rate `η` (PyTorch's default 2e-3).
    #[hp(default = 2e-3, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the infinity norm.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub beta2: f64,
    /// `ε` added to `|g|` (PyTorch's default 1e-8).
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// L2 penalty `λ` added to the gradient.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

impl Rule for Adamax {
    /// The step size `η/(1 - β1ᵗ)`.
    type Coeffs = f64;
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("exp_avg"), Buffer::zeros("exp_inf")])
    }

    fn coeffs(&self, step: u64) -> f64 {
        self.lr / (1.0 - self.beta1.powf(step as f64))
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for Adamax {
    #[inline(always)]
    fn update(&self, clr: &f64, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [exp_avg, exp_inf] = s else { return Ok(()) };
        *exp_avg = lerp(exp_avg, g, 1.0 - self.beta1)?;
        *exp_inf = exp_inf.scale(self.beta2)?.maximum(&g.abs()?.affine(1.0, self.eps)?)?;
        *p = addcdiv(p, exp_avg, exp_inf, -clr)?;
        Ok(())
    }
}
