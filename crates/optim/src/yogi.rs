//! Yogi (Zaheer et al., 2018, "Adaptive Methods for Nonconvex Optimization"; optax's
//! `optax.yogi`).

use crate::elem::Elem;
use crate::rule::Rule;
use crate::spec::{non_negative, positive, Options, Value};
use crate::Result;

/// Yogi: Adam whose second moment moves towards `g²` by an additive step of fixed size
/// `(1 - β2)·g²`, so it cannot collapse after one large gradient. Exactly `optax.yogi` (its
/// defaults: the learning rate is required, `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-3`; both moments
/// start at `initial_accumulator_value = 1e-6`):
///
/// ```text
/// m ← (1 - β1)·g + β1·m
/// v ← v - (1 - β2)·sign(v - g²)·g²
/// p ← p - η · (m/(1 - β1ᵗ)) / (√(v/(1 - β2ᵗ) + ε_root) + ε)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Yogi {
    /// Learning rate `η` (required, as optax's `learning_rate`).
    pub lr: f64,
    /// Decay `β1` of the first moment, in `[0, 1)`.
    pub b1: f64,
    /// Step `β2` of the second moment, in `[0, 1)`.
    pub b2: f64,
    /// `ε` added outside the root (optax's default 1e-3).
    pub eps: f64,
    /// `ε_root` added inside the root (optax's default 0), ≥ 0.
    pub eps_root: f64,
    /// The value both moments start at (optax's default 1e-6), > 0.
    pub initial_accumulator_value: f64,
}

impl Default for Yogi {
    /// optax's defaults, with `lr = 1e-2` standing in for the learning rate optax requires (a
    /// spec must give it).
    fn default() -> Self {
        Self { lr: 1e-2, b1: 0.9, b2: 0.999, eps: 1e-3, eps_root: 0.0, initial_accumulator_value: 1e-6 }
    }
}

/// Yogi's per-step scalars: `1/(1 - β1ᵗ)` and `1/(1 - β2ᵗ)`.
#[derive(Debug, Clone, Copy)]
pub struct YogiCoeffs {
    inv_bias_correction1: f64,
    inv_bias_correction2: f64,
}

impl Rule for Yogi {
    const NAME: &'static str = "yogi";
    type Coeffs = YogiCoeffs;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["mu", "nu"]
    }
    fn initial_value(&self, _buffer: &str) -> f64 {
        self.initial_accumulator_value
    }
    fn coeffs(&self, step: u64) -> YogiCoeffs {
        let t = step as f64;
        YogiCoeffs {
            inv_bias_correction1: 1.0 / (1.0 - self.b1.powf(t)),
            inv_bias_correction2: 1.0 / (1.0 - self.b2.powf(t)),
        }
    }

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &YogiCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [mu, nu] = s else { return Ok(()) };
        *mu = g.scale(1.0 - self.b1)?.add(&mu.scale(self.b1)?)?;
        let g2 = g.sqr()?;
        *nu = nu.sub(&nu.sub(&g2)?.sign()?.scale(1.0 - self.b2)?.mul(&g2)?)?;
        let denom =
            nu.scale(c.inv_bias_correction2)?.affine(1.0, self.eps_root)?.sqrt()?.affine(1.0, self.eps)?;
        *p = p.add(&mu.scale(c.inv_bias_correction1)?.div(&denom)?.scale(-self.lr)?)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.required("lr", non_negative, "lr must be >= 0")?,
            b1: o.decay("b1", &[], d.b1)?,
            b2: o.decay("b2", &[], d.b2)?,
            eps: o.eps(d.eps)?,
            eps_root: o.num("eps_root", &[], d.eps_root, non_negative, "eps_root must be >= 0")?,
            initial_accumulator_value: o.num(
                "initial_accumulator_value",
                &[],
                d.initial_accumulator_value,
                positive,
                "initial_accumulator_value must be > 0",
            )?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("b1", Value::Num(self.b1)),
            ("b2", Value::Num(self.b2)),
            ("eps", Value::Num(self.eps)),
            ("eps_root", Value::Num(self.eps_root)),
            ("initial_accumulator_value", Value::Num(self.initial_accumulator_value)),
        ]
    }
}
