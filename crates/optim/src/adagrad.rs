//! AdaGrad (Duchi et al., 2011; PyTorch's `torch.optim.Adagrad`).

use crate::elem::{addcdiv, coupled_weight_decay, root_plus_eps, signed_grad, Elem};
use crate::rule::Rule;
use crate::spec::{non_negative, Options, Value};
use crate::Result;

/// AdaGrad: each parameter's step is divided by the root of the sum of all its past squared
/// gradients, exactly as `torch.optim.Adagrad`:
///
/// ```text
/// η_t ← η / (1 + (t - 1)·lr_decay)
/// g   ← -g                          (maximize)
/// g   ← g + λ·p
/// s   ← s + g²                      (s starts at initial_accumulator_value)
/// p   ← p - η_t · g / (√s + ε)      (√(s + ε) with eps_in_sqrt, d2l's form)
/// ```
///
/// Because `s` only grows, the effective learning rate `η / √s` decays like `1/√t` under a
/// steady gradient: the "vanishing learning rate" that RMSprop fixes.
#[derive(Debug, Clone, PartialEq)]
pub struct Adagrad {
    /// Learning rate `η` (PyTorch's default 0.01).
    pub lr: f64,
    /// Learning-rate decay per step.
    pub lr_decay: f64,
    /// L2 penalty `λ` added to the gradient.
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`: the step uses `-g`).
    pub maximize: bool,
    /// The accumulator's starting value.
    pub initial_accumulator_value: f64,
    /// `ε` (PyTorch's default 1e-10, added outside the root).
    pub eps: f64,
    /// Put `ε` inside the root, `√(s + ε)`, as d2l does (with `eps = 1e-6`).
    pub eps_in_sqrt: bool,
}

impl Default for Adagrad {
    fn default() -> Self {
        Self {
            lr: 0.01,
            lr_decay: 0.0,
            weight_decay: 0.0,
            maximize: false,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            eps_in_sqrt: false,
        }
    }
}

impl Rule for Adagrad {
    const NAME: &'static str = "adagrad";
    /// The decayed learning rate `η_t`.
    type Coeffs = f64;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn buffers(&self) -> Vec<&'static str> {
        vec!["sum"]
    }

    fn initial_value(&self, _buffer: &str) -> f64 {
        self.initial_accumulator_value
    }

    fn coeffs(&self, step: u64) -> f64 {
        self.lr / (1.0 + (step - 1) as f64 * self.lr_decay)
    }

    #[inline(always)]
    fn update<E: Elem>(&self, clr: &f64, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let g = coupled_weight_decay(&signed_grad(g, self.maximize)?, p, self.weight_decay)?;
        let sum = &mut s[0];
        *sum = sum.add(&g.mul(&g)?)?;
        let std = root_plus_eps(sum, self.eps, self.eps_in_sqrt)?;
        *p = addcdiv(p, &g, &std, -clr)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.lr(d.lr)?,
            lr_decay: o.num("lr_decay", &[], d.lr_decay, non_negative, "lr_decay must be >= 0")?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            maximize: o.flag("maximize", d.maximize)?,
            initial_accumulator_value: o.num(
                "initial_accumulator_value",
                &[],
                d.initial_accumulator_value,
                non_negative,
                "initial_accumulator_value must be >= 0",
            )?,
            eps: o.eps(d.eps)?,
            eps_in_sqrt: o.flag("eps_in_sqrt", d.eps_in_sqrt)?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("lr_decay", Value::Num(self.lr_decay)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("initial_accumulator_value", Value::Num(self.initial_accumulator_value)),
            ("eps", Value::Num(self.eps)),
            ("eps_in_sqrt", Value::Bool(self.eps_in_sqrt)),
            ("maximize", Value::Bool(self.maximize)),
        ]
    }
}
