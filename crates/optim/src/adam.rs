//! Adam (Kingma & Ba, 2015; PyTorch's `torch.optim.Adam`).

use crate::elem::{addcdiv, ema_sq, lerp, Elem};
use crate::rule::Buffer;
use crate::Hyper;

/// Adam: momentum on the gradient and RMSprop's scaling, both bias-corrected, exactly as
/// `torch.optim.Adam` (maximize and weight decay, the L2 penalty `g ← g + λ·p` or with
/// `decoupled_weight_decay` AdamW's `p ← p·(1 - η·λ)`, are the engine's transforms):
///
/// ```text
/// m ← β1·m + (1 - β1)·g
/// v ← β2·v + (1 - β2)·g²
/// v̂ ← max(v̂, v)                  (amsgrad; then v̂ replaces v below)
/// p ← p - η/(1 - β1ᵗ) · m / (√v / √(1 - β2ᵗ) + ε)
/// ```
///
/// d2l's Adam uses `ε = 1e-6`.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adam")]
pub struct Adam {
    /// Learning rate `η` (PyTorch's default 1e-3).
    #[hp(default = 1e-3, range = ">= 0")]
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
    /// Keep the running maximum of `v` (Reddi et al., 2018).
    #[hp(default = false)]
    pub amsgrad: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
    /// Decay the weights directly (`p ← p·(1 - η·λ)`) instead of adding `λ·p` to the gradient:
    /// [`crate::AdamW`], whose default it is.
    #[hp(default = false, decoupled)]
    pub decoupled_weight_decay: bool,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

/// Adam's per-step scalars: `η / (1 - β1ᵗ)` and `√(1 - β2ᵗ)`.
#[derive(Debug, Clone, Copy)]
pub struct AdamCoeffs {
    step_size: f64,
    bias_correction2_sqrt: f64,
}

/// Adam's moments and step, shared with AdamW.
pub(crate) mod core {
    use super::*;

    pub(crate) fn coeffs(lr: f64, beta1: f64, beta2: f64, step: u64) -> AdamCoeffs {
        let t = step as i32;
        AdamCoeffs {
            step_size: lr / (1.0 - beta1.powi(t)),
            bias_correction2_sqrt: (1.0 - beta2.powi(t)).sqrt(),
        }
    }

    pub(crate) fn buffers(amsgrad: bool) -> Vec<Buffer> {
        let mut b = vec![Buffer::zeros("exp_avg"), Buffer::zeros("exp_avg_sq")];
        if amsgrad {
            b.push(Buffer::zeros("max_exp_avg_sq"));
        }
        b
    }

    /// The moment updates and the step.
    #[inline(always)]
    pub(crate) fn update<E: Elem>(
        (beta1, beta2, eps): (f64, f64, f64),
        c: &AdamCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        let [exp_avg, exp_avg_sq, rest @ ..] = s else { return Ok(()) };
        *exp_avg = lerp(exp_avg, g, 1.0 - beta1)?;
        *exp_avg_sq = ema_sq(exp_avg_sq, g, beta2)?;
        let second = match rest {
            [max_sq] => {
                *max_sq = max_sq.maximum(exp_avg_sq)?;
                max_sq.clone()
            }
            _ => exp_avg_sq.clone(),
        };
        let denom = second.sqrt()?.scale(1.0 / c.bias_correction2_sqrt)?.affine(1.0, eps)?;
        *p = addcdiv(p, exp_avg, &denom, -c.step_size)?;
        Ok(())
    }
}

/// The `Rule` and `Steps` of an Adam-shaped struct (fields `lr`, `beta1`, `beta2`, `eps`,
/// `amsgrad`): Adam and AdamW differ only in their declared options and defaults.
macro_rules! adam_rule {
    ($ty:ty) => {
        impl $crate::rule::Rule for $ty {
            type Coeffs = $crate::adam::AdamCoeffs;
            type Fused = $crate::rule::Fuse;

            fn buffers(&self, _: &[usize]) -> $crate::Result<Vec<$crate::rule::Buffer>> {
                Ok($crate::adam::core::buffers(self.amsgrad))
            }

            fn coeffs(&self, step: u64) -> $crate::adam::AdamCoeffs {
                $crate::adam::core::coeffs(self.lr, self.beta1, self.beta2, step)
            }

            fn has_momentum(&self) -> bool {
                true
            }
        }

        impl<E: $crate::Elem> $crate::rule::Steps<E> for $ty {
            #[inline(always)]
            fn update(
                &self,
                c: &$crate::adam::AdamCoeffs,
                p: &mut E,
                g: &E,
                s: &mut [E],
            ) -> std::result::Result<(), E::Err> {
                $crate::adam::core::update((self.beta1, self.beta2, self.eps), c, p, g, s)
            }
        }
    };
}
pub(crate) use adam_rule;

adam_rule!(Adam);
