//! Adan (Xie et al., 2022, "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing
//! Deep Models"; optax's `optax.adan`).

use crate::elem::Elem;
use crate::rule::Rule;
use crate::spec::{non_negative, Options, Value};
use crate::Result;

/// Adan: Adam-like moments of the gradient and of the gradient's change between steps (a
/// Nesterov estimate without the extra gradient evaluation), with decoupled weight decay.
/// Exactly `optax.adan` (its defaults: the learning rate is required, `b1 = 0.98`, `b2 = 0.92`,
/// `b3 = 0.99`, `eps = 1e-8`, `eps_root = 1e-8`, `weight_decay = 0`):
///
/// ```text
/// Δ ← g - g_prev   (0 at the first step);  g_prev ← g
/// m ← (1 - β1)·g + β1·m
/// v ← (1 - β2)·Δ + β2·v
/// n ← (1 - β3)·(g + (1 - β2)·Δ)² + β3·n
/// u ← (m/(1 - β1ᵗ) + (1 - β2)·v/(1 - β2ᵗ)) / (√(n/(1 - β3ᵗ) + ε_root) + ε)
/// p ← p - η·(u + λ·p)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Adan {
    /// Learning rate `η` (required, as optax's `learning_rate`).
    pub lr: f64,
    /// Decay `β1` of the gradient's moment, in `[0, 1)`.
    pub b1: f64,
    /// Decay `β2` of the gradient difference's moment, in `[0, 1)`.
    pub b2: f64,
    /// Decay `β3` of the second moment, in `[0, 1)`.
    pub b3: f64,
    /// `ε` added outside the root (optax's default 1e-8).
    pub eps: f64,
    /// `ε_root` added inside the root (optax's `adan` default 1e-8), ≥ 0.
    pub eps_root: f64,
    /// Decoupled weight decay `λ`.
    pub weight_decay: f64,
}

impl Default for Adan {
    /// optax's defaults, with `lr = 1e-3` standing in for the learning rate optax requires (a
    /// spec must give it).
    fn default() -> Self {
        Self { lr: 1e-3, b1: 0.98, b2: 0.92, b3: 0.99, eps: 1e-8, eps_root: 1e-8, weight_decay: 0.0 }
    }
}

/// Adan's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub struct AdanCoeffs {
    /// 0 at the first step (no previous gradient), else 1.
    diff: f64,
    inv_bias_correction1: f64,
    /// `(1 - β2)/(1 - β2ᵗ)`.
    v: f64,
    inv_bias_correction3: f64,
}

impl Rule for Adan {
    const NAME: &'static str = "adan";
    type Coeffs = AdanCoeffs;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["m", "v", "n", "g"]
    }
    fn coeffs(&self, step: u64) -> AdanCoeffs {
        let t = step as f64;
        AdanCoeffs {
            diff: if step <= 1 { 0.0 } else { 1.0 },
            inv_bias_correction1: 1.0 / (1.0 - self.b1.powf(t)),
            v: (1.0 - self.b2) / (1.0 - self.b2.powf(t)),
            inv_bias_correction3: 1.0 / (1.0 - self.b3.powf(t)),
        }
    }

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &AdanCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [m, v, n, prev] = s else { return Ok(()) };
        let diff = g.sub(prev)?.scale(c.diff)?;
        *prev = g.clone();
        *m = g.scale(1.0 - self.b1)?.add(&m.scale(self.b1)?)?;
        *v = diff.scale(1.0 - self.b2)?.add(&v.scale(self.b2)?)?;
        let sq = g.add_scaled(&diff, 1.0 - self.b2)?;
        *n = sq.sqr()?.scale(1.0 - self.b3)?.add(&n.scale(self.b3)?)?;
        let denom =
            n.scale(c.inv_bias_correction3)?.affine(1.0, self.eps_root)?.sqrt()?.affine(1.0, self.eps)?;
        let u = m.scale(c.inv_bias_correction1)?.add(&v.scale(c.v)?)?.div(&denom)?;
        let u = if self.weight_decay != 0.0 { u.add_scaled(p, self.weight_decay)? } else { u };
        *p = p.add(&u.scale(-self.lr)?)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.required("lr", non_negative, "lr must be >= 0")?,
            b1: o.decay("b1", &[], d.b1)?,
            b2: o.decay("b2", &[], d.b2)?,
            b3: o.decay("b3", &[], d.b3)?,
            eps: o.eps(d.eps)?,
            eps_root: o.num("eps_root", &[], d.eps_root, non_negative, "eps_root must be >= 0")?,
            weight_decay: o.weight_decay(d.weight_decay)?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("b1", Value::Num(self.b1)),
            ("b2", Value::Num(self.b2)),
            ("b3", Value::Num(self.b3)),
            ("eps", Value::Num(self.eps)),
            ("eps_root", Value::Num(self.eps_root)),
            ("weight_decay", Value::Num(self.weight_decay)),
        ]
    }
}
