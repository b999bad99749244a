//! Stochastic gradient descent with momentum (PyTorch's `torch.optim.SGD`).

use crate::elem::{coupled_weight_decay, signed_grad, Elem};
use crate::rule::Rule;
use crate::spec::{non_negative, Options, Value};
use crate::{Error, Result};

/// SGD with momentum, dampening, Nesterov momentum and L2 weight decay, exactly as
/// `torch.optim.SGD`:
///
/// ```text
/// g ← -g                                        (maximize)
/// g ← g + λ·p                                   (weight_decay λ)
/// b ← g                        at t = 1         (momentum μ > 0)
/// b ← μ·b + (1 - τ)·g          after            (dampening τ)
/// g ← g + μ·b if nesterov, else b
/// p ← p - η·g
/// ```
///
/// d2l's momentum `v ← γv + ηg; x ← x - v` is this with `momentum = γ` (at a constant `η`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    /// Learning rate `η` (PyTorch's default 1e-3).
    pub lr: f64,
    /// Momentum `μ` (0 = plain SGD).
    pub momentum: f64,
    /// Dampening `τ` of the momentum's gradient term.
    pub dampening: f64,
    /// L2 penalty `λ` added to the gradient.
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`: the step uses `-g`).
    pub maximize: bool,
    /// Nesterov momentum (needs `momentum > 0` and `dampening = 0`).
    pub nesterov: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Self { lr: 1e-3, momentum: 0.0, dampening: 0.0, weight_decay: 0.0, maximize: false, nesterov: false }
    }
}

/// SGD's per-step scalars: the momentum update `b ← keep·b + take·g`.
#[derive(Debug, Clone, Copy)]
pub struct SgdCoeffs {
    keep: f64,
    take: f64,
}

impl Rule for Sgd {
    const NAME: &'static str = "sgd";
    type Coeffs = SgdCoeffs;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn buffers(&self) -> Vec<&'static str> {
        if self.momentum != 0.0 {
            vec!["momentum_buffer"]
        } else {
            vec![]
        }
    }

    fn coeffs(&self, step: u64) -> SgdCoeffs {
        // PyTorch starts the buffer as a copy of the first gradient, undamped.
        if step == 1 {
            SgdCoeffs { keep: 0.0, take: 1.0 }
        } else {
            SgdCoeffs { keep: self.momentum, take: 1.0 - self.dampening }
        }
    }

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &SgdCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        let mut g = coupled_weight_decay(&signed_grad(g, self.maximize)?, p, self.weight_decay)?;
        if let [buf] = s {
            *buf = buf.scale(c.keep)?.add_scaled(&g, c.take)?;
            g = if self.nesterov { g.add_scaled(buf, self.momentum)? } else { buf.clone() };
        }
        *p = p.add_scaled(&g, -self.lr)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        let r = Self {
            lr: o.lr(d.lr)?,
            momentum: o.num("momentum", &[], d.momentum, non_negative, "momentum must be >= 0")?,
            dampening: o.num(
                "dampening",
                &[],
                d.dampening,
                |x| (0.0..=1.0).contains(&x),
                "dampening must be in [0, 1]",
            )?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            maximize: o.flag("maximize", d.maximize)?,
            nesterov: o.flag("nesterov", d.nesterov)?,
        };
        if r.nesterov && (r.momentum <= 0.0 || r.dampening != 0.0) {
            return Err(Error::InvalidValue {
                optimizer: Self::NAME,
                key: "nesterov".into(),
                value: "true".into(),
                allowed: format!(
                    "Nesterov momentum needs momentum > 0 and dampening = 0 (got momentum={}, dampening={})",
                    r.momentum, r.dampening
                ),
            });
        }
        Ok(r)
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("momentum", Value::Num(self.momentum)),
            ("dampening", Value::Num(self.dampening)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("nesterov", Value::Bool(self.nesterov)),
            ("maximize", Value::Bool(self.maximize)),
        ]
    }
}
