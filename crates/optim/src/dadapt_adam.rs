//! D-Adaptation Adam (Defazio & Mishchenko, 2023, "Learning-Rate-Free Learning by
//! D-Adaptation"; the authors' `dadaptation.DAdaptAdam`).

use crate::dadapt::{bias_correction, common_lr, dot, l1, DRule, Item};
use crate::rule::Buffer;
use crate::{Hyper, Result};

/// D-Adaptation Adam: Adam whose step size `d·η` grows with a lower bound on the distance to the
/// solution. Exactly `dadaptation.DAdaptAdam` (layer scale 1); `d`, `β1`, `β2`,
/// `use_bias_correction`, `growth_rate` and `decouple` are the first group's, every group's
/// learning rate is the largest or 0:
///
/// ```text
/// dη ← d·η·(√(1 - β2ᵏ⁺¹)/(1 - β1ᵏ⁺¹) if use_bias_correction else 1)
/// per parameter (g ← g + λ·p unless decouple):
///     r ← r + dη·⟨g, s / (√v + ε)⟩
///     m ← β1·m + dη(1 - β1)·g,   v ← β2·v + (1 - β2)·g²
///     s ← √β2·s + dη(1 - √β2)·g,   Σ|s|
/// N ← √β2·N + (1 - √β2)·r,   d̂ ← N / ((1 - √β2)·Σ|s|),   d ← max(d, min(d̂, d·growth_rate))
/// p ← p - dη·λ·p (decouple),   p ← p - m / (√v + ε)
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "dadapt_adam")]
pub struct DAdaptAdam {
    /// Learning rate `η` (1: D-Adaptation sets the scale itself).
    #[hp(default = 1.0, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub beta2: f64,
    /// `ε` added to the root.
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// Weight decay `λ`: an L2 penalty, or with `decouple=true` decoupled (`p ← p - dη·λ·p`).
    #[hp(default = 0.0, range = ">= 0")]
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW's) rather than an L2 penalty (the default).
    #[hp(default = false)]
    pub decouple: bool,
    /// Adam's bias correction on `dη`.
    #[hp(default = false)]
    pub use_bias_correction: bool,
    /// The starting estimate `d0` (1e-6).
    #[hp(default = 1e-6, range = "> 0")]
    pub d0: f64,
    /// The most `d` may grow in one step, as a factor (`none`, the default: unbounded, the
    /// reference's `inf`).
    #[hp(range = "> 0")]
    pub growth_rate: Option<f64>,
}

const D: usize = 0;
const NUMERATOR: usize = 1;
const K: usize = 2;

impl DRule for DAdaptAdam {
    fn buffers(&self, _len: usize) -> Vec<Buffer> {
        vec![Buffer::zeros("s"), Buffer::zeros("exp_avg"), Buffer::zeros("exp_avg_sq")]
    }

    fn globals(&self) -> Vec<(&'static str, f64)> {
        vec![("d", self.d0), ("numerator_weighted", 0.0), ("k", 0.0)]
    }

    fn step(groups: &[Self], globals: &mut [f64], items: &mut [Item]) -> Result<()> {
        let first = &groups[0];
        let (beta1, beta2) = (first.beta1, first.beta2);
        let (d, k) = (globals[D], globals[K]);
        let lr = common_lr(groups)?;
        let bias_correction = bias_correction(first.use_bias_correction, beta1, beta2, k);
        let dlr = d * lr * bias_correction;
        let sqrt_beta2 = beta2.powf(0.5);
        let (mut numerator_acum, mut sk_l1) = (0.0, 0.0);
        let decouple = first.decouple;
        for item in items.iter_mut() {
            let group = &groups[item.group];
            let mut grad = item.grad.clone();
            if group.weight_decay != 0.0 && !decouple {
                grad = (grad + item.value.affine(group.weight_decay, 0.0)?)?;
            }
            let [s, exp_avg, exp_avg_sq] = item.buffers.as_mut_slice() else { continue };
            if group.lr > 0.0 {
                let denom = exp_avg_sq.sqrt()?.affine(1.0, group.eps)?;
                numerator_acum += dlr * dot(&grad, &s.div(&denom)?)?;
                *exp_avg = (exp_avg.affine(beta1, 0.0)? + grad.affine(dlr * (1.0 - beta1), 0.0)?)?;
                *exp_avg_sq = (exp_avg_sq.affine(beta2, 0.0)? + grad.sqr()?.affine(1.0 - beta2, 0.0)?)?;
                *s = (s.affine(sqrt_beta2, 0.0)? + grad.affine(dlr * (1.0 - sqrt_beta2), 0.0)?)?;
                sk_l1 += l1(s)?;
            }
        }
        let numerator_weighted = sqrt_beta2 * globals[NUMERATOR] + (1.0 - sqrt_beta2) * numerator_acum;
        if sk_l1 == 0.0 {
            return Ok(());
        }
        let mut d = d;
        if lr > 0.0 {
            let d_hat = numerator_weighted / ((1.0 - sqrt_beta2) * sk_l1);
            d = d.max(d_hat.min(d * first.growth_rate.unwrap_or(f64::INFINITY)));
        }
        globals[NUMERATOR] = numerator_weighted;
        globals[D] = d;
        for item in items.iter_mut() {
            let group = &groups[item.group];
            let [_, exp_avg, exp_avg_sq] = item.buffers.as_slice() else { continue };
            let denom = exp_avg_sq.sqrt()?.affine(1.0, group.eps)?;
            let mut p = item.value.clone();
            if group.weight_decay != 0.0 && decouple {
                p = (&p + p.affine(-group.weight_decay * dlr, 0.0)?)?;
            }
            item.next = Some((&p - exp_avg.div(&denom)?)?);
        }
        globals[K] = k + 1.0;
        Ok(())
    }
}
