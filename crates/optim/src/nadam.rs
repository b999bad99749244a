//! NAdam (Dozat, 2016, "Incorporating Nesterov Momentum into Adam"; PyTorch's
//! `torch.optim.NAdam`).

use crate::elem::{addcdiv, ema_sq, lerp, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// NAdam: Adam with Nesterov momentum, whose momentum coefficient warms up over the steps
/// (`momentum_decay` ψ). Exactly `torch.optim.NAdam` (maximize and weight decay, L2 or with
/// `decoupled_weight_decay` `p ← p·(1 - η·λ)`, are the engine's transforms):
///
/// ```text
/// μt ← β1·(1 - ½·0.96^(t·ψ)),   μt+1 ← β1·(1 - ½·0.96^((t+1)·ψ))
/// Πt ← Πt-1·μt                                  (state `mu_product`, Π0 = 1)
/// m ← β1·m + (1 - β1)·g
/// v ← β2·v + (1 - β2)·g²
/// d ← √(v/(1 - β2ᵗ)) + ε
/// p ← p - η·(1 - μt)/(1 - Πt) · g/d - η·μt+1/(1 - Πt·μt+1) · m/d
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "nadam")]
pub struct NAdam {
    /// Learning rate `η` (PyTorch's default 2e-3).
    #[hp(default = 2e-3, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub beta2: f64,
    /// `ε` added outside the root (PyTorch's default 1e-8).
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// Weight decay `λ`: an L2 penalty added to the gradient, or decoupled (AdamW's way).
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// The momentum warm-up rate `ψ` (PyTorch's default 4e-3).
    #[hp(default = 4e-3, range = ">= 0")]
    pub momentum_decay: f64,
    /// Decay the weights directly (`p ← p·(1 - η·λ)`) instead of adding `λ·p` to the gradient.
    #[hp(default = false, decoupled)]
    pub decoupled_weight_decay: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

/// NAdam's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub struct NAdamCoeffs {
    /// `1/(1 - β2ᵗ)`.
    inv_bias_correction2: f64,
    /// `η·(1 - μt)/(1 - Πt)`, the gradient's weight.
    grad: f64,
    /// `η·μt+1/(1 - Πt·μt+1)`, the momentum's weight.
    momentum: f64,
}

impl NAdam {
    /// `μt = β1·(1 - ½·0.96^(t·ψ))`.
    fn mu(&self, t: f64) -> f64 {
        self.beta1 * (1.0 - 0.5 * 0.96f64.powf(t * self.momentum_decay))
    }

    fn coeffs_with(&self, step: u64, mu_product: &mut f64) -> NAdamCoeffs {
        let t = step as f64;
        let (mu, mu_next) = (self.mu(t), self.mu(t + 1.0));
        *mu_product *= mu;
        NAdamCoeffs {
            inv_bias_correction2: 1.0 / (1.0 - self.beta2.powf(t)),
            grad: self.lr * (1.0 - mu) / (1.0 - *mu_product),
            momentum: self.lr * mu_next / (1.0 - *mu_product * mu_next),
        }
    }
}

impl Rule for NAdam {
    type Coeffs = NAdamCoeffs;
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("exp_avg"), Buffer::zeros("exp_avg_sq")])
    }
    fn scalars(&self) -> &'static [&'static str] {
        &["mu_product"]
    }
    fn initial_scalar(&self, _name: &str) -> f64 {
        1.0
    }
    /// The coefficients of step `step` from the product of every `μ` before it, recomputed
    /// (the engine keeps that product per parameter and calls [`Rule::advance`]).
    fn coeffs(&self, step: u64) -> NAdamCoeffs {
        let mut product = (1..step).map(|i| self.mu(i as f64)).product();
        self.coeffs_with(step, &mut product)
    }
    fn advance(&self, step: u64, scalars: &mut [f64]) -> NAdamCoeffs {
        match scalars {
            [mu_product] => self.coeffs_with(step, mu_product),
            _ => self.coeffs(step),
        }
    }
    fn has_momentum(&self) -> bool {
        true
    }
}

impl<E: Elem> Steps<E> for NAdam {
    #[inline(always)]
    fn update(&self, c: &NAdamCoeffs, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [exp_avg, exp_avg_sq] = s else { return Ok(()) };
        *exp_avg = lerp(exp_avg, g, 1.0 - self.beta1)?;
        *exp_avg_sq = ema_sq(exp_avg_sq, g, self.beta2)?;
        let denom = exp_avg_sq.scale(c.inv_bias_correction2)?.sqrt()?.affine(1.0, self.eps)?;
        *p = addcdiv(p, g, &denom, -c.grad)?;
        *p = addcdiv(p, exp_avg, &denom, -c.momentum)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engine's running product and the recomputed one give the same coefficients.
    #[test]
    fn the_running_product_is_the_recomputed_one() {
        let r = NAdam { momentum_decay: 0.3, ..NAdam::default() };
        let mut product = 1.0;
        for step in 1..40 {
            let a = r.advance(step, std::slice::from_mut(&mut product));
            let b = r.coeffs(step);
            assert_eq!((a.grad, a.momentum), (b.grad, b.momentum), "step {step}");
        }
        assert!(product < 0.9f64.powi(38));
    }
}
