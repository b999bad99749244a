//! AdaBelief (Zhuang et al., 2020, "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
//! Observed Gradients"; optax's `optax.adabelief`).

use crate::elem::Elem;
use crate::rule::Rule;
use crate::spec::{non_negative, Options, Value};
use crate::Result;

/// AdaBelief: Adam whose second moment tracks the squared deviation of the gradient from its
/// running mean (the "belief"), not the squared gradient. Exactly `optax.adabelief` (its
/// defaults: the learning rate is required, `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-16`,
/// `eps_root = 1e-16`):
///
/// ```text
/// m ← (1 - β1)·g + β1·m
/// s ← (1 - β2)·(g - m)² + β2·s + ε_root
/// m̂ ← m/(1 - β1ᵗ),  or with nesterov  β1·m/(1 - β1ᵗ⁺¹) + (1 - β1)·g/(1 - β1ᵗ)
/// p ← p - η · m̂ / (√(s/(1 - β2ᵗ)) + ε)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AdaBelief {
    /// Learning rate `η` (required, as optax's `learning_rate`).
    pub lr: f64,
    /// Decay `β1` of the first moment, in `[0, 1)`.
    pub b1: f64,
    /// Decay `β2` of the belief, in `[0, 1)`.
    pub b2: f64,
    /// `ε` added outside the root (optax's default 1e-16).
    pub eps: f64,
    /// `ε_root` added to the belief every step (optax's default 1e-16), ≥ 0.
    pub eps_root: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

impl Default for AdaBelief {
    /// optax's defaults, with `lr = 1e-3` standing in for the learning rate optax requires (a
    /// spec must give it).
    fn default() -> Self {
        Self { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-16, eps_root: 1e-16, nesterov: false }
    }
}

/// AdaBelief's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub struct AdaBeliefCoeffs {
    /// Weight of `m` in `m̂`.
    m: f64,
    /// Weight of `g` in `m̂` (nesterov only).
    g: f64,
    /// `1/(1 - β2ᵗ)`.
    inv_bias_correction2: f64,
}

impl Rule for AdaBelief {
    const NAME: &'static str = "adabelief";
    type Coeffs = AdaBeliefCoeffs;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["mu", "nu"]
    }
    fn coeffs(&self, step: u64) -> AdaBeliefCoeffs {
        let t = step as f64;
        let bc1 = 1.0 - self.b1.powf(t);
        let inv_bias_correction2 = 1.0 / (1.0 - self.b2.powf(t));
        if self.nesterov {
            let bc1_next = 1.0 - self.b1.powf(t + 1.0);
            AdaBeliefCoeffs { m: self.b1 / bc1_next, g: (1.0 - self.b1) / bc1, inv_bias_correction2 }
        } else {
            AdaBeliefCoeffs { m: 1.0 / bc1, g: 0.0, inv_bias_correction2 }
        }
    }

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &AdaBeliefCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [mu, nu] = s else { return Ok(()) };
        *mu = g.scale(1.0 - self.b1)?.add(&mu.scale(self.b1)?)?;
        let error = g.sub(mu)?;
        *nu = error.sqr()?.scale(1.0 - self.b2)?.add(&nu.scale(self.b2)?)?.affine(1.0, self.eps_root)?;
        let m_hat = if self.nesterov { mu.scale(c.m)?.add(&g.scale(c.g)?)? } else { mu.scale(c.m)? };
        let denom = nu.scale(c.inv_bias_correction2)?.sqrt()?.affine(1.0, self.eps)?;
        *p = p.add(&m_hat.div(&denom)?.scale(-self.lr)?)?;
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
            nesterov: o.flag("nesterov", d.nesterov)?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("b1", Value::Num(self.b1)),
            ("b2", Value::Num(self.b2)),
            ("eps", Value::Num(self.eps)),
            ("eps_root", Value::Num(self.eps_root)),
            ("nesterov", Value::Bool(self.nesterov)),
        ]
    }
}
