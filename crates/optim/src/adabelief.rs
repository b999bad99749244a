//! AdaBelief (Zhuang et al., 2020, "AdaBelief Optimizer: Adapting Stepsizes by the Belief in
//! Observed Gradients"; optax's `optax.adabelief`).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

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
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adabelief")]
pub struct AdaBelief {
    /// Learning rate `η` (required, as optax's `learning_rate`; 1e-3 in `Default`).
    #[hp(default = 1e-3, range = ">= 0", required)]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub b1: f64,
    /// Decay `β2` of the belief.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub b2: f64,
    /// `ε` added outside the root (optax's default 1e-16).
    #[hp(default = 1e-16, range = "> 0")]
    pub eps: f64,
    /// `ε_root` added to the belief every step (optax's default 1e-16).
    #[hp(default = 1e-16, range = ">= 0")]
    pub eps_root: f64,
    /// Nesterov momentum.
    #[hp(default = false)]
    pub nesterov: bool,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
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
    type Coeffs = AdaBeliefCoeffs;
    type Fused = Fuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("mu"), Buffer::zeros("nu")])
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

    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for AdaBelief {
    /// `m̂ / (√(s/(1 - β2ᵗ)) + ε)`; the engine steps `p ← p - η·u`.
    #[inline(always)]
    fn direction(&self, c: &AdaBeliefCoeffs, _p: &E, g: &E, s: &mut [E]) -> std::result::Result<E, E::Err> {
        let [mu, nu] = s else { return Ok(g.clone()) };
        *mu = g.scale(1.0 - self.b1)?.add(&mu.scale(self.b1)?)?;
        let error = g.sub(mu)?;
        *nu = error.sqr()?.scale(1.0 - self.b2)?.add(&nu.scale(self.b2)?)?.affine(1.0, self.eps_root)?;
        let m_hat = if self.nesterov { mu.scale(c.m)?.add(&g.scale(c.g)?)? } else { mu.scale(c.m)? };
        let denom = nu.scale(c.inv_bias_correction2)?.sqrt()?.affine(1.0, self.eps)?;
        m_hat.div(&denom)
    }
}
