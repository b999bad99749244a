//! RMSprop (Tieleman & Hinton, 2012; PyTorch's `torch.optim.RMSprop`).

use crate::elem::{addcdiv, ema_sq, lerp, root_plus_eps, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// RMSprop: AdaGrad with the sum of squared gradients replaced by an exponential moving average,
/// so the effective learning rate stays bounded away from zero. Exactly `torch.optim.RMSprop`
/// (maximize and the L2 penalty `g ← g + λ·p` are the engine's transforms):
///
/// ```text
/// v ← α·v + (1 - α)·g²
/// centered:  ḡ ← α·ḡ + (1 - α)·g,   d ← √(v - ḡ²) + ε
/// otherwise:                         d ← √v + ε
///            (√(· + ε) instead with eps_in_sqrt, d2l's form)
/// momentum μ > 0:  b ← μ·b + g/d,  p ← p - η·b
/// otherwise:                       p ← p - η·g/d
/// ```
///
/// d2l calls `α` `γ` (the spec accepts `gamma` for `alpha`) and puts `ε = 1e-6` inside the root.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "rmsprop")]
pub struct RmsProp {
    /// Learning rate `η` (PyTorch's default 0.01).
    #[hp(default = 0.01, range = ">= 0")]
    pub lr: f64,
    /// Smoothing constant `α` of the moving average (d2l's `γ`).
    #[hp(default = 0.99, range = "[0, 1)", alias = "gamma")]
    pub alpha: f64,
    /// `ε` (PyTorch's default 1e-8, added outside the root).
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// L2 penalty `λ` added to the gradient.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Momentum `μ` (0 = none).
    #[hp(default = 0.0, range = ">= 0")]
    pub momentum: f64,
    /// Normalize by the estimated variance `v - ḡ²` instead of the second moment.
    #[hp(default = false)]
    pub centered: bool,
    /// Put `ε` inside the root, `√(v + ε)` (d2l, optax's `eps_in_sqrt=True`).
    #[hp(default = false)]
    pub eps_in_sqrt: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
    /// Cautious updates (timm's `caution`): needs `momentum > 0`.
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

impl Rule for RmsProp {
    type Coeffs = ();
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        let mut b = vec![Buffer::zeros("square_avg")];
        if self.centered {
            b.push(Buffer::zeros("grad_avg"));
        }
        if self.momentum > 0.0 {
            b.push(Buffer::zeros("momentum_buffer"));
        }
        Ok(b)
    }

    fn coeffs(&self, _step: u64) {}

    fn has_momentum(&self) -> bool {
        self.momentum > 0.0
    }
}

impl<E: Elem> Steps<E> for RmsProp {
    #[inline(always)]
    fn update(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        // Buffers: [square_avg, grad_avg if centered, momentum_buffer if momentum > 0]. No
        // panicking paths here: the fused kernel's loop must stay vectorizable.
        let (square_avg, rest) = s.split_at_mut(1);
        let Some(square_avg) = square_avg.first_mut() else { return Ok(()) };
        *square_avg = ema_sq(square_avg, g, self.alpha)?;
        let avg = match (self.centered, rest.first_mut()) {
            (true, Some(grad_avg)) => {
                *grad_avg = lerp(grad_avg, g, 1.0 - self.alpha)?;
                square_avg.sub(&grad_avg.mul(grad_avg)?)?
            }
            _ => square_avg.clone(),
        };
        let d = root_plus_eps(&avg, self.eps, self.eps_in_sqrt)?;
        match (self.momentum > 0.0, rest.last_mut()) {
            (true, Some(buf)) => {
                *buf = buf.scale(self.momentum)?.add(&g.div(&d)?)?;
                *p = p.add_scaled(buf, -self.lr)?;
            }
            _ => *p = addcdiv(p, g, &d, -self.lr)?,
        }
        Ok(())
    }
}
