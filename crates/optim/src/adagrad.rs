//! AdaGrad (Duchi et al., 2011; PyTorch's `torch.optim.Adagrad`).

use crate::elem::{addcdiv, root_plus_eps, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// AdaGrad: each parameter's step is divided by the root of the sum of all its past squared
/// gradients, exactly as `torch.optim.Adagrad` (maximize and the L2 penalty `g ← g + λ·p` are the
/// engine's transforms):
///
/// ```text
/// η_t ← η / (1 + (t - 1)·lr_decay)
/// s   ← s + g²                      (s starts at initial_accumulator_value)
/// p   ← p - η_t · g / (√s + ε)      (√(s + ε) with eps_in_sqrt, d2l's form)
/// ```
///
/// Because `s` only grows, the effective learning rate `η / √s` decays like `1/√t` under a
/// steady gradient: the "vanishing learning rate" that RMSprop fixes.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adagrad")]
pub struct Adagrad {
    /// Learning rate `η` (PyTorch's default 0.01).
    #[hp(default = 0.01, range = ">= 0")]
    pub lr: f64,
    /// Learning-rate decay per step.
    #[hp(default = 0.0, range = ">= 0")]
    pub lr_decay: f64,
    /// L2 penalty `λ` added to the gradient.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// The accumulator's starting value.
    #[hp(default = 0.0, range = ">= 0")]
    pub initial_accumulator_value: f64,
    /// `ε` (PyTorch's default 1e-10, added outside the root).
    #[hp(default = 1e-10, range = "> 0")]
    pub eps: f64,
    /// Put `ε` inside the root, `√(s + ε)`, as d2l does (with `eps = 1e-6`).
    #[hp(default = false)]
    pub eps_in_sqrt: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
}

impl Rule for Adagrad {
    /// The decayed learning rate `η_t`.
    type Coeffs = f64;
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::filled("sum", self.initial_accumulator_value)])
    }

    fn coeffs(&self, step: u64) -> f64 {
        self.lr / (1.0 + (step - 1) as f64 * self.lr_decay)
    }
}

impl<E: Elem> Steps<E> for Adagrad {
    #[inline(always)]
    fn update(&self, clr: &f64, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [sum] = s else { return Ok(()) };
        *sum = sum.add(&g.mul(g)?)?;
        let std = root_plus_eps(sum, self.eps, self.eps_in_sqrt)?;
        *p = addcdiv(p, g, &std, -clr)?;
        Ok(())
    }
}
