//! Adadelta (Zeiler, 2012; PyTorch's `torch.optim.Adadelta`).

use crate::elem::{ema_sq, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// Adadelta: RMSprop whose learning rate is replaced by the root of a moving average of past
/// squared updates, exactly as `torch.optim.Adadelta` (maximize and the L2 penalty
/// `g ← g + λ·p` are the engine's transforms):
///
/// ```text
/// v ← ρ·v + (1 - ρ)·g²
/// Δ ← √(u + ε) / √(v + ε) · g
/// u ← ρ·u + (1 - ρ)·Δ²
/// p ← p - η·Δ
/// ```
///
/// d2l's Adadelta has no `η` (it is 1) and uses `ε = 1e-5`.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adadelta")]
pub struct Adadelta {
    /// Learning rate `η` scaling the update (PyTorch's default 1.0).
    #[hp(default = 1.0, range = ">= 0")]
    pub lr: f64,
    /// Decay `ρ` of both moving averages.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub rho: f64,
    /// `ε` inside both roots (PyTorch's default 1e-6).
    #[hp(default = 1e-6, range = "> 0")]
    pub eps: f64,
    /// L2 penalty `λ` added to the gradient.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
}

impl Rule for Adadelta {
    type Coeffs = ();
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("square_avg"), Buffer::zeros("acc_delta")])
    }

    fn coeffs(&self, _step: u64) {}
}

impl<E: Elem> Steps<E> for Adadelta {
    #[inline(always)]
    fn update(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [square_avg, acc_delta] = s else { return Ok(()) };
        *square_avg = ema_sq(square_avg, g, self.rho)?;
        let std = square_avg.affine(1.0, self.eps)?.sqrt()?;
        let delta = acc_delta.affine(1.0, self.eps)?.sqrt()?.div(&std)?.mul(g)?;
        *acc_delta = ema_sq(acc_delta, &delta, self.rho)?;
        *p = p.add_scaled(&delta, -self.lr)?;
        Ok(())
    }
}
