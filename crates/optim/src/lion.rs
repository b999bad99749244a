//! Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"; optax's
//! `optax.lion`).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// Lion: the sign of an interpolation between the momentum and the gradient, then a slower
/// momentum update, with decoupled weight decay (optax's `add_decayed_weights`, the engine's
/// transform `u ← u + λ·p`). Exactly `optax.lion` (its defaults: the learning rate is required,
/// `b1 = 0.9`, `b2 = 0.99`, `weight_decay = 1e-3`):
///
/// ```text
/// u ← sign((1 - β1)·g + β1·m)
/// m ← (1 - β2)·g + β2·m
/// p ← p - η·(u + λ·p)
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "lion", decay = "added")]
pub struct Lion {
    /// Learning rate `η` (required, as optax's `learning_rate`; 1e-4 in `Default`).
    #[hp(default = 1e-4, range = ">= 0", required)]
    pub lr: f64,
    /// Interpolation `β1` between momentum and gradient for the sign.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub b1: f64,
    /// Decay `β2` of the momentum.
    #[hp(default = 0.99, range = "[0, 1)")]
    pub b2: f64,
    /// Decoupled weight decay `λ` (optax's default 1e-3).
    #[hp(default = 1e-3, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

impl Rule for Lion {
    type Coeffs = ();
    type Fused = Fuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("mu")])
    }

    fn coeffs(&self, _step: u64) {}

    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for Lion {
    /// `sign((1 - β1)·g + β1·m)`, moving `m`; the engine steps `p ← p - η·(u + λ·p)`.
    #[inline(always)]
    fn direction(&self, _: &(), _p: &E, g: &E, s: &mut [E]) -> std::result::Result<E, E::Err> {
        let [mu] = s else { return Ok(g.clone()) };
        let direction = g.scale(1.0 - self.b1)?.add(&mu.scale(self.b1)?)?.sign()?;
        *mu = g.scale(1.0 - self.b2)?.add(&mu.scale(self.b2)?)?;
        Ok(direction)
    }
}
