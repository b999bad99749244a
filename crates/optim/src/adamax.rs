//! Adamax (Kingma & Ba, 2015, §7.1; PyTorch's `torch.optim.Adamax`).

use crate::elem::{addcdiv, coupled_weight_decay, lerp, signed_grad, Elem};
use crate::rule::Rule;
use crate::spec::{Options, Value};
use crate::Result;

/// Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm.
/// Exactly `torch.optim.Adamax`:
///
/// ```text
/// g ← -g                                    (maximize)
/// g ← g + λ·p
/// m ← β1·m + (1 - β1)·g
/// u ← max(β2·u, |g| + ε)
/// p ← p - η/(1 - β1ᵗ) · m/u
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adamax {
    /// Learning rate `η` (PyTorch's default 2e-3).
    pub lr: f64,
    /// Decay `β1` of the first moment, in `[0, 1)`.
    pub beta1: f64,
    /// Decay `β2` of the infinity norm, in `[0, 1)`.
    pub beta2: f64,
    /// `ε` added to `|g|` (PyTorch's default 1e-8).
    pub eps: f64,
    /// L2 penalty `λ` added to the gradient.
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (the step uses `-g`).
    pub maximize: bool,
}

impl Default for Adamax {
    fn default() -> Self {
        Self { lr: 2e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, maximize: false }
    }
}

impl Rule for Adamax {
    const NAME: &'static str = "adamax";
    /// The step size `η/(1 - β1ᵗ)`.
    type Coeffs = f64;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_inf"]
    }
    fn coeffs(&self, step: u64) -> f64 {
        self.lr / (1.0 - self.beta1.powf(step as f64))
    }

    #[inline(always)]
    fn update<E: Elem>(&self, clr: &f64, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [exp_avg, exp_inf] = s else { return Ok(()) };
        let g = coupled_weight_decay(&signed_grad(g, self.maximize)?, p, self.weight_decay)?;
        *exp_avg = lerp(exp_avg, &g, 1.0 - self.beta1)?;
        *exp_inf = exp_inf.scale(self.beta2)?.maximum(&g.abs()?.affine(1.0, self.eps)?)?;
        *p = addcdiv(p, exp_avg, exp_inf, -clr)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.lr(d.lr)?,
            beta1: o.decay("beta1", &[], d.beta1)?,
            beta2: o.decay("beta2", &[], d.beta2)?,
            eps: o.eps(d.eps)?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            maximize: o.flag("maximize", d.maximize)?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("beta1", Value::Num(self.beta1)),
            ("beta2", Value::Num(self.beta2)),
            ("eps", Value::Num(self.eps)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("maximize", Value::Bool(self.maximize)),
        ]
    }
}
