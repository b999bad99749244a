//! Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"; optax's
//! `optax.lion`).

use crate::elem::Elem;
use crate::rule::Rule;
use crate::spec::{non_negative, Options, Value};
use crate::Result;

/// Lion: the sign of an interpolation between the momentum and the gradient, then a slower
/// momentum update, with decoupled weight decay. Exactly `optax.lion` (its defaults: the
/// learning rate is required, `b1 = 0.9`, `b2 = 0.99`, `weight_decay = 1e-3`):
///
/// ```text
/// u ← sign((1 - β1)·g + β1·m)
/// m ← (1 - β2)·g + β2·m
/// p ← p - η·(u + λ·p)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Lion {
    /// Learning rate `η` (required, as optax's `learning_rate`).
    pub lr: f64,
    /// Interpolation `β1` between momentum and gradient for the sign, in `[0, 1)`.
    pub b1: f64,
    /// Decay `β2` of the momentum, in `[0, 1)`.
    pub b2: f64,
    /// Decoupled weight decay `λ` (optax's default 1e-3).
    pub weight_decay: f64,
}

impl Default for Lion {
    /// optax's defaults, with `lr = 1e-4` standing in for the learning rate optax requires (a
    /// spec must give it).
    fn default() -> Self {
        Self { lr: 1e-4, b1: 0.9, b2: 0.99, weight_decay: 1e-3 }
    }
}

impl Rule for Lion {
    const NAME: &'static str = "lion";
    type Coeffs = ();

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["mu"]
    }
    fn coeffs(&self, _step: u64) {}

    #[inline(always)]
    fn update<E: Elem>(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [mu] = s else { return Ok(()) };
        let direction = g.scale(1.0 - self.b1)?.add(&mu.scale(self.b1)?)?.sign()?;
        *mu = g.scale(1.0 - self.b2)?.add(&mu.scale(self.b2)?)?;
        let update =
            if self.weight_decay != 0.0 { direction.add_scaled(p, self.weight_decay)? } else { direction };
        *p = p.add(&update.scale(-self.lr)?)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.required("lr", non_negative, "lr must be >= 0")?,
            b1: o.decay("b1", &[], d.b1)?,
            b2: o.decay("b2", &[], d.b2)?,
            weight_decay: o.weight_decay(d.weight_decay)?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("b1", Value::Num(self.b1)),
            ("b2", Value::Num(self.b2)),
            ("weight_decay", Value::Num(self.weight_decay)),
        ]
    }
}
