//! RMSprop (Tieleman & Hinton, 2012; PyTorch's `torch.optim.RMSprop`).

use crate::elem::{addcdiv, coupled_weight_decay, ema_sq, lerp, root_plus_eps, signed_grad, Elem};
use crate::rule::Rule;
use crate::spec::{non_negative, Options, Value};
use crate::Result;

/// RMSprop: AdaGrad with the sum of squared gradients replaced by an exponential moving average,
/// so the effective learning rate stays bounded away from zero. Exactly `torch.optim.RMSprop`:
///
/// ```text
/// g ← -g                         (maximize)
/// g ← g + λ·p
/// v ← α·v + (1 - α)·g²
/// centered:  ḡ ← α·ḡ + (1 - α)·g,   d ← √(v - ḡ²) + ε
/// otherwise:                         d ← √v + ε
///            (√(· + ε) instead with eps_in_sqrt, d2l's form)
/// momentum μ > 0:  b ← μ·b + g/d,  p ← p - η·b
/// otherwise:                       p ← p - η·g/d
/// ```
///
/// d2l calls `α` `γ` (the spec accepts `gamma` for `alpha`) and puts `ε = 1e-6` inside the root.
#[derive(Debug, Clone, PartialEq)]
pub struct RmsProp {
    /// Learning rate `η` (PyTorch's default 0.01).
    pub lr: f64,
    /// Smoothing constant `α` of the moving average (d2l's `γ`), in `[0, 1)`.
    pub alpha: f64,
    /// `ε` (PyTorch's default 1e-8, added outside the root).
    pub eps: f64,
    /// L2 penalty `λ` added to the gradient.
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`: the step uses `-g`).
    pub maximize: bool,
    /// Momentum `μ` (0 = none).
    pub momentum: f64,
    /// Normalize by the estimated variance `v - ḡ²` instead of the second moment.
    pub centered: bool,
    /// Put `ε` inside the root, `√(v + ε)` (d2l, optax's `eps_in_sqrt=True`).
    pub eps_in_sqrt: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        Self {
            lr: 0.01,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
            momentum: 0.0,
            centered: false,
            eps_in_sqrt: false,
        }
    }
}

impl Rule for RmsProp {
    const NAME: &'static str = "rmsprop";
    type Coeffs = ();

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn buffers(&self) -> Vec<&'static str> {
        let mut b = vec!["square_avg"];
        if self.centered {
            b.push("grad_avg");
        }
        if self.momentum > 0.0 {
            b.push("momentum_buffer");
        }
        b
    }

    fn coeffs(&self, _step: u64) {}

    #[inline(always)]
    fn update<E: Elem>(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        // Buffers: [square_avg, grad_avg if centered, momentum_buffer if momentum > 0]. No
        // panicking paths here: the fused kernel's loop must stay vectorizable.
        let g = coupled_weight_decay(&signed_grad(g, self.maximize)?, p, self.weight_decay)?;
        let (square_avg, rest) = s.split_at_mut(1);
        let square_avg = &mut square_avg[0];
        *square_avg = ema_sq(square_avg, &g, self.alpha)?;
        let avg = match (self.centered, rest.first_mut()) {
            (true, Some(grad_avg)) => {
                *grad_avg = lerp(grad_avg, &g, 1.0 - self.alpha)?;
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
            _ => *p = addcdiv(p, &g, &d, -self.lr)?,
        }
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.lr(d.lr)?,
            alpha: o.decay("alpha", &["gamma"], d.alpha)?,
            eps: o.eps(d.eps)?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            maximize: o.flag("maximize", d.maximize)?,
            momentum: o.num("momentum", &[], d.momentum, non_negative, "momentum must be >= 0")?,
            centered: o.flag("centered", d.centered)?,
            eps_in_sqrt: o.flag("eps_in_sqrt", d.eps_in_sqrt)?,
        })
    }

    fn aliases() -> &'static [(&'static str, &'static str)] {
        &[("gamma", "alpha")]
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("alpha", Value::Num(self.alpha)),
            ("eps", Value::Num(self.eps)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("momentum", Value::Num(self.momentum)),
            ("centered", Value::Bool(self.centered)),
            ("eps_in_sqrt", Value::Bool(self.eps_in_sqrt)),
            ("maximize", Value::Bool(self.maximize)),
        ]
    }
}
