//! Adadelta (Zeiler, 2012; PyTorch's `torch.optim.Adadelta`).

use crate::elem::{coupled_weight_decay, ema_sq, signed_grad, Elem};
use crate::rule::Rule;
use crate::spec::{Options, Value};
use crate::Result;

/// Adadelta: RMSprop whose learning rate is replaced by the root of a moving average of past
/// squared updates, exactly as `torch.optim.Adadelta`:
///
/// ```text
/// g ← -g                         (maximize)
/// g ← g + λ·p
/// v ← ρ·v + (1 - ρ)·g²
/// Δ ← √(u + ε) / √(v + ε) · g
/// u ← ρ·u + (1 - ρ)·Δ²
/// p ← p - η·Δ
/// ```
///
/// d2l's Adadelta has no `η` (it is 1) and uses `ε = 1e-5`.
#[derive(Debug, Clone, PartialEq)]
pub struct Adadelta {
    /// Learning rate `η` scaling the update (PyTorch's default 1.0).
    pub lr: f64,
    /// Decay `ρ` of both moving averages, in `[0, 1)`.
    pub rho: f64,
    /// `ε` inside both roots (PyTorch's default 1e-6).
    pub eps: f64,
    /// L2 penalty `λ` added to the gradient.
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`: the step uses `-g`).
    pub maximize: bool,
}

impl Default for Adadelta {
    fn default() -> Self {
        Self { lr: 1.0, rho: 0.9, eps: 1e-6, weight_decay: 0.0, maximize: false }
    }
}

impl Rule for Adadelta {
    const NAME: &'static str = "adadelta";
    type Coeffs = ();

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn buffers(&self) -> Vec<&'static str> {
        vec!["square_avg", "acc_delta"]
    }

    fn coeffs(&self, _step: u64) {}

    #[inline(always)]
    fn update<E: Elem>(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let g = coupled_weight_decay(&signed_grad(g, self.maximize)?, p, self.weight_decay)?;
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [square_avg, acc_delta] = s else { return Ok(()) };
        *square_avg = ema_sq(square_avg, &g, self.rho)?;
        let std = square_avg.affine(1.0, self.eps)?.sqrt()?;
        let delta = acc_delta.affine(1.0, self.eps)?.sqrt()?.div(&std)?.mul(&g)?;
        *acc_delta = ema_sq(acc_delta, &delta, self.rho)?;
        *p = p.add_scaled(&delta, -self.lr)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.lr(d.lr)?,
            rho: o.decay("rho", &[], d.rho)?,
            eps: o.eps(d.eps)?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            maximize: o.flag("maximize", d.maximize)?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("rho", Value::Num(self.rho)),
            ("eps", Value::Num(self.eps)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("maximize", Value::Bool(self.maximize)),
        ]
    }
}
