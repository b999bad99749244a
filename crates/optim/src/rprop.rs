//! Rprop (Riedmiller & Braun, 1993; PyTorch's `torch.optim.Rprop`).

use crate::elem::{signed_grad, Elem};
use crate::rule::Rule;
use crate::spec::{Options, Value};
use crate::{Error, Result};

/// Rprop: every coordinate keeps its own step size, grown while its gradient keeps its sign and
/// shrunk when the sign flips; only the gradient's sign is used. Exactly `torch.optim.Rprop`:
///
/// ```text
/// g ← -g                                         (maximize)
/// s ← sign(g·g_prev)
/// f ← η+ where s > 0,  η- where s < 0,  1 where s = 0
/// Δ ← clamp(Δ·f, Δmin, Δmax)                     (Δ starts at the learning rate)
/// g ← 0 where s < 0                              (no step after a sign flip)
/// p ← p - sign(g)·Δ
/// g_prev ← g
/// ```
///
/// PyTorch's tuples are split: `etas` → `eta_minus`, `eta_plus`; `step_sizes` →
/// `step_size_min`, `step_size_max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rprop {
    /// Learning rate: every step size's initial value (PyTorch's default 0.01).
    pub lr: f64,
    /// Step-size factor after a sign flip, `0 < η- < 1` (default 0.5).
    pub eta_minus: f64,
    /// Step-size factor while the sign holds, `η+ > 1` (default 1.2).
    pub eta_plus: f64,
    /// Smallest step size (default 1e-6).
    pub step_size_min: f64,
    /// Largest step size (default 50).
    pub step_size_max: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`: the step uses `-g`).
    pub maximize: bool,
}

impl Default for Rprop {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            eta_minus: 0.5,
            eta_plus: 1.2,
            step_size_min: 1e-6,
            step_size_max: 50.0,
            maximize: false,
        }
    }
}

impl Rule for Rprop {
    const NAME: &'static str = "rprop";
    type Coeffs = ();

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["prev", "step_size"]
    }
    /// Each step size starts at the learning rate of the first step (PyTorch's `full_like(lr)`).
    fn initial_value(&self, buffer: &str) -> f64 {
        if buffer == "step_size" {
            self.lr
        } else {
            0.0
        }
    }
    fn coeffs(&self, _step: u64) {}

    #[inline(always)]
    fn update<E: Elem>(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [prev, step_size] = s else { return Ok(()) };
        let g = signed_grad(g, self.maximize)?;
        // Constants in the element type, from a finite value (the gradient is checked finite).
        let constant = |c: f64| g.affine(0.0, c);
        let zero = constant(0.0)?;
        let sign = g.mul(prev)?.sign()?;
        let flipped = sign.lt(&zero)?;
        let factor = sign.gt(&zero)?.select(
            &constant(self.eta_plus)?,
            &flipped.select(&constant(self.eta_minus)?, &constant(1.0)?)?,
        )?;
        *step_size = step_size
            .mul(&factor)?
            .maximum(&constant(self.step_size_min)?)?
            .minimum(&constant(self.step_size_max)?)?;
        let g = flipped.select(&zero, &g)?;
        *p = p.sub(&g.sign()?.mul(step_size)?)?;
        *prev = g;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        let r = Self {
            lr: o.lr(d.lr)?,
            eta_minus: o.num(
                "eta_minus",
                &[],
                d.eta_minus,
                |x| x > 0.0 && x < 1.0,
                "eta_minus must be in (0, 1)",
            )?,
            eta_plus: o.num("eta_plus", &[], d.eta_plus, |x| x > 1.0, "eta_plus must be > 1")?,
            step_size_min: o.num(
                "step_size_min",
                &[],
                d.step_size_min,
                |x| x >= 0.0,
                "step_size_min must be >= 0",
            )?,
            step_size_max: o.num(
                "step_size_max",
                &[],
                d.step_size_max,
                |x| x > 0.0,
                "step_size_max must be > 0",
            )?,
            maximize: o.flag("maximize", d.maximize)?,
        };
        if r.step_size_min > r.step_size_max {
            return Err(Error::InvalidValue {
                optimizer: Self::NAME,
                key: "step_size_min".into(),
                value: r.step_size_min.to_string(),
                allowed: format!("must be <= step_size_max ({})", r.step_size_max),
            });
        }
        Ok(r)
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("eta_minus", Value::Num(self.eta_minus)),
            ("eta_plus", Value::Num(self.eta_plus)),
            ("step_size_min", Value::Num(self.step_size_min)),
            ("step_size_max", Value::Num(self.step_size_max)),
            ("maximize", Value::Bool(self.maximize)),
        ]
    }
}
