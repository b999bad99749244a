//! MADGRAD (Defazio & Jelassi, 2021, "Adaptivity without Compromise: A Momentumized, Adaptive,
//! Dual Averaged Gradient Method for Stochastic Optimization"; timm's `timm.optim.MADGRAD`, from
//! facebookresearch/madgrad).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// MADGRAD: dual averaging with a cube-root AdaGrad scaling and momentum by averaging the
/// iterate. Exactly `timm.optim.MADGRAD` (weight decay, the L2 penalty `g ← g + λ·p` or with
/// `decoupled_decay` `p ← p·(1 - η·λ)`, is the engine's transform), with `λk = (η + ε)·√k`:
///
/// ```text
/// x0 ← p + s / (∛G + ε)            (momentum = 0; else x0 is the starting point, kept)
/// G ← G + λk·g²,   s ← s + λk·g
/// z ← x0 - s / (∛G + ε)
/// p ← z                            (momentum = 0)
/// p ← momentum·p + (1 - momentum)·z
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "madgrad")]
pub struct Madgrad {
    /// Learning rate `η` (timm's default 1e-2).
    #[hp(default = 1e-2, range = "> 0")]
    pub lr: f64,
    /// Momentum (0.9), the weight of the current iterate in the average.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub momentum: f64,
    /// Weight decay `λ`: an L2 penalty added to the gradient, or decoupled.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// `ε` (1e-6), added to the cube root and to the learning rate in `λk`.
    #[hp(default = 1e-6, range = ">= 0")]
    pub eps: f64,
    /// Decay the weights directly (`p ← p·(1 - η·λ)`) instead of adding `λ·p` to the gradient.
    #[hp(default = false, decoupled)]
    pub decoupled_decay: bool,
    /// Cautious updates (on the step `p - p'`, as for Adam).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

impl Rule for Madgrad {
    /// `λk`.
    type Coeffs = f64;
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        let mut b = vec![Buffer::zeros("grad_sum_sq"), Buffer::zeros("s")];
        if self.momentum != 0.0 {
            b.push(Buffer::param_copy("x0"));
        }
        Ok(b)
    }

    fn coeffs(&self, step: u64) -> f64 {
        (self.lr + self.eps) * (step as f64).sqrt()
    }

    fn has_momentum(&self) -> bool {
        self.momentum != 0.0
    }
}

impl<E: Elem> Steps<E> for Madgrad {
    #[inline(always)]
    fn update(&self, lamb: &f64, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let (grad_sum_sq, sum, x0) = match s {
            [a, b] => (a, b, None),
            [a, b, c] => (a, b, Some(c)),
            _ => return Ok(()),
        };
        let x0 = match x0 {
            Some(x0) => x0.clone(),
            None => p.add(&sum.div(&grad_sum_sq.cbrt()?.affine(1.0, self.eps)?)?)?,
        };
        *grad_sum_sq = grad_sum_sq.add(&g.mul(g)?.scale(*lamb)?)?;
        let rms = grad_sum_sq.cbrt()?.affine(1.0, self.eps)?;
        *sum = sum.add_scaled(g, *lamb)?;
        let z = x0.sub(&sum.div(&rms)?)?;
        *p = if self.momentum == 0.0 {
            z
        } else {
            let ck = 1.0 - self.momentum;
            p.scale(1.0 - ck)?.add_scaled(&z, ck)?
        };
        Ok(())
    }
}
