//! LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
//! minutes"; optax's `optax.lamb`).

use candle_core::Tensor;

use crate::elem::Elem;
use crate::spec::{non_negative, Options, Value};
use crate::tensor_rule::{norm, TensorRule};
use crate::Result;

/// LAMB: Adam's step plus decoupled weight decay, rescaled per tensor by the trust ratio
/// `‖p‖/‖u‖` so that every layer moves by a similar fraction of its norm. Exactly `optax.lamb`
/// (its defaults: the learning rate is required, `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-6`,
/// `eps_root = 0`, `weight_decay = 0`), a per-tensor reduction ([`TensorRule`]):
///
/// ```text
/// m ← (1 - β1)·g + β1·m
/// v ← (1 - β2)·g² + β2·v
/// u ← (m/(1 - β1ᵗ)) / (√(v/(1 - β2ᵗ) + ε_root) + ε) + λ·p
/// r ← ‖p‖/‖u‖,  or 1 where either norm is 0
/// p ← p - η·r·u
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Lamb {
    /// Learning rate `η` (required, as optax's `learning_rate`).
    pub lr: f64,
    /// Decay `β1` of the first moment, in `[0, 1)`.
    pub b1: f64,
    /// Decay `β2` of the second moment, in `[0, 1)`.
    pub b2: f64,
    /// `ε` added outside the root (optax's default 1e-6).
    pub eps: f64,
    /// `ε_root` added inside the root (0), ≥ 0.
    pub eps_root: f64,
    /// Decoupled weight decay `λ` (0), inside the trust ratio.
    pub weight_decay: f64,
}

impl Default for Lamb {
    /// optax's defaults, with `lr = 1e-3` standing in for the learning rate optax requires (a
    /// spec must give it).
    fn default() -> Self {
        Self { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-6, eps_root: 0.0, weight_decay: 0.0 }
    }
}

impl TensorRule for Lamb {
    const NAME: &'static str = "lamb";

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self, dims: &[usize]) -> Result<Vec<(&'static str, Vec<usize>)>> {
        Ok(vec![("mu", dims.to_vec()), ("nu", dims.to_vec())])
    }

    fn update(&self, step: u64, p: &Tensor, g: &Tensor, state: &mut [Tensor]) -> Result<Tensor> {
        let [mu, nu] = state else {
            return Err(crate::Error::State("lamb keeps two buffers".into()));
        };
        let t = step as f64;
        *mu = g.scale(1.0 - self.b1)?.add(&mu.scale(self.b1)?)?;
        *nu = g.sqr()?.scale(1.0 - self.b2)?.add(&nu.scale(self.b2)?)?;
        let m_hat = mu.scale(1.0 / (1.0 - self.b1.powf(t)))?;
        let v_hat = nu.scale(1.0 / (1.0 - self.b2.powf(t)))?;
        let mut u = m_hat.div(&v_hat.affine(1.0, self.eps_root)?.sqrt()?.affine(1.0, self.eps)?)?;
        if self.weight_decay != 0.0 {
            u = u.add_scaled(p, self.weight_decay)?;
        }
        let (pn, un) = (norm(p)?, norm(&u)?);
        let ratio = if pn == 0.0 || un == 0.0 { 1.0 } else { pn / un };
        Ok(p.add(&u.scale(ratio)?.scale(-self.lr)?)?)
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.required("lr", non_negative, "lr must be >= 0")?,
            b1: o.decay("b1", &[], d.b1)?,
            b2: o.decay("b2", &[], d.b2)?,
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
            ("eps", Value::Num(self.eps)),
            ("eps_root", Value::Num(self.eps_root)),
            ("weight_decay", Value::Num(self.weight_decay)),
        ]
    }
}
