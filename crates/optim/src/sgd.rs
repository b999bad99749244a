//! Stochastic gradient descent with momentum (PyTorch's `torch.optim.SGD`).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Error, Hyper, Result};

/// SGD with momentum, dampening, Nesterov momentum and L2 weight decay, exactly as
/// `torch.optim.SGD` (maximize and the L2 penalty `g ← g + λ·p` are the engine's transforms):
///
/// ```text
/// b ← g                        at t = 1         (momentum μ > 0)
/// b ← μ·b + (1 - τ)·g          after            (dampening τ)
/// g ← g + μ·b if nesterov, else b
/// p ← p - η·g
/// ```
///
/// d2l's momentum `v ← γv + ηg; x ← x - v` is this with `momentum = γ` (at a constant `η`).
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "sgd", check = Sgd::check)]
pub struct Sgd {
    /// Learning rate `η` (PyTorch's default 1e-3).
    #[hp(default = 1e-3, range = ">= 0")]
    pub lr: f64,
    /// Momentum `μ` (0 = plain SGD).
    #[hp(default = 0.0, range = ">= 0")]
    pub momentum: f64,
    /// Dampening `τ` of the momentum's gradient term.
    #[hp(default = 0.0, range = "[0, 1]")]
    pub dampening: f64,
    /// L2 penalty `λ` added to the gradient.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Nesterov momentum (needs `momentum > 0` and `dampening = 0`).
    #[hp(default = false)]
    pub nesterov: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
    /// Cautious updates (timm's `caution`): needs `momentum > 0`.
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

impl Sgd {
    fn check(&self) -> Result<()> {
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::InvalidValue {
                optimizer: Self::NAME,
                key: "nesterov".into(),
                value: "true".into(),
                allowed: format!(
                    "Nesterov momentum needs momentum > 0 and dampening = 0 (got momentum={}, dampening={})",
                    self.momentum, self.dampening
                ),
            });
        }
        Ok(())
    }
}

/// SGD's per-step scalars: the momentum update `b ← keep·b + take·g`.
#[derive(Debug, Clone, Copy)]
pub struct SgdCoeffs {
    keep: f64,
    take: f64,
}

impl Rule for Sgd {
    type Coeffs = SgdCoeffs;
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(if self.momentum != 0.0 { vec![Buffer::zeros("momentum_buffer")] } else { vec![] })
    }

    fn coeffs(&self, step: u64) -> SgdCoeffs {
        // PyTorch starts the buffer as a copy of the first gradient, undamped.
        if step == 1 {
            SgdCoeffs { keep: 0.0, take: 1.0 }
        } else {
            SgdCoeffs { keep: self.momentum, take: 1.0 - self.dampening }
        }
    }

    fn has_momentum(&self) -> bool {
        self.momentum > 0.0
    }
}

impl<E: Elem> Steps<E> for Sgd {
    #[inline(always)]
    fn update(&self, c: &SgdCoeffs, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let mut g = g.clone();
        if let [buf] = s {
            *buf = buf.scale(c.keep)?.add_scaled(&g, c.take)?;
            g = if self.nesterov { g.add_scaled(buf, self.momentum)? } else { buf.clone() };
        }
        *p = p.add_scaled(&g, -self.lr)?;
        Ok(())
    }
}
