//! Prodigy (Mishchenko & Defazio, 2024, "Prodigy: An Expeditiously Adaptive Parameter-Free
//! Learner"; the authors' `prodigyopt.Prodigy`).

use candle_core::Tensor;

use crate::dadapt::{bias_correction, common_lr, dot, l1, DRule, Item};
use crate::rule::Buffer;
use crate::{Hyper, Result};

/// Prodigy: Adam whose step size `d·η` estimates the distance to the solution from the
/// correlation of gradients with the distance travelled. Exactly `prodigyopt.Prodigy`; `d`,
/// `β1`, `β2`, `β3`, `use_bias_correction`, `growth_rate`, `d_coef` and `decouple` are the first
/// group's, every group's learning rate is the largest or 0, as the reference requires:
///
/// ```text
/// dη ← d·η·(√(1 - β2ᵏ⁺¹)/(1 - β1ᵏ⁺¹) if use_bias_correction else 1)
/// per parameter (g ← g + λ·p unless decouple):
///     r ← r + (d/d0)·dη·⟨g, p0 - p⟩
///     m ← β1·m + d(1 - β1)·g,   v ← β2·v + d²(1 - β2)·g²
///     s ← β3·s + (d/d0)·(d if safeguard_warmup else dη)·g,   Σ|s|
/// N ← β3·N + r,   d̂ ← d_coef·N / Σ|s|
/// d ← max(d, d̂) at d = d0;   d_max ← max(d_max, d̂);   d ← min(d_max, d·growth_rate)
/// p ← p - dη·λ·p (decouple),   p ← p - dη·m / (√v + d·ε)
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "prodigy")]
pub struct Prodigy {
    /// Learning rate `η` (1: Prodigy sets the scale itself).
    #[hp(default = 1.0, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub beta2: f64,
    /// Decay `β3` of the estimate's sums (`√β2` when not given).
    #[hp(range = "[0, 1)")]
    pub beta3: Option<f64>,
    /// `ε`, scaled by `d`, added to the root.
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// Weight decay `λ`: decoupled (`p ← p - dη·λ·p`) or, with `decouple=false`, an L2 penalty.
    #[hp(default = 0.0, range = ">= 0")]
    pub weight_decay: f64,
    /// Decoupled weight decay (the default) rather than an L2 penalty.
    #[hp(default = true)]
    pub decouple: bool,
    /// Adam's bias correction on `dη`.
    #[hp(default = false)]
    pub use_bias_correction: bool,
    /// Take `d` rather than `dη` into `s` (for long warm-ups).
    #[hp(default = false)]
    pub safeguard_warmup: bool,
    /// The starting estimate `d0` (1e-6).
    #[hp(default = 1e-6, range = "> 0")]
    pub d0: f64,
    /// A factor on the estimate (1).
    #[hp(default = 1.0, range = "> 0")]
    pub d_coef: f64,
    /// The most `d` may grow in one step, as a factor (`none`, the default: unbounded, the
    /// reference's `inf`).
    #[hp(range = "> 0")]
    pub growth_rate: Option<f64>,
    /// Every `slice_p`-th element enters the estimate (1: all).
    #[hp(default = 1, min = 1)]
    pub slice_p: u64,
}

/// Global scalars, in `globals()`'s order.
const D: usize = 0;
const D_MAX: usize = 1;
const D_NUMERATOR: usize = 2;
const D_HAT: usize = 3;
const K: usize = 4;

impl Prodigy {
    /// Every `slice_p`-th element of `t`, flattened.
    fn sliced(&self, t: &Tensor) -> Result<Tensor> {
        let flat = t.flatten_all()?;
        if self.slice_p == 1 {
            return Ok(flat);
        }
        let n = flat.elem_count() as u32;
        let idx = Tensor::arange_step(0u32, n, self.slice_p as u32, t.device())?;
        Ok(flat.index_select(&idx, 0)?)
    }
}

impl DRule for Prodigy {
    fn buffers(&self, len: usize) -> Vec<Buffer> {
        let m = len.div_ceil(self.slice_p as usize);
        let mut b = vec![Buffer::shaped("s", vec![m]), Buffer::shaped("p0", vec![m])];
        if self.beta1 > 0.0 {
            b.push(Buffer::zeros("exp_avg"));
        }
        b.push(Buffer::zeros("exp_avg_sq"));
        b
    }

    fn globals(&self) -> Vec<(&'static str, f64)> {
        vec![("d", self.d0), ("d_max", self.d0), ("d_numerator", 0.0), ("d_hat", 0.0), ("k", 0.0)]
    }

    fn step(groups: &[Self], globals: &mut [f64], items: &mut [Item]) -> Result<()> {
        let first = &groups[0];
        let (beta1, beta2) = (first.beta1, first.beta2);
        let beta3 = first.beta3.unwrap_or_else(|| beta2.sqrt());
        let (d, k) = (globals[D], globals[K]);
        let lr = common_lr(groups)?;
        let bias_correction = bias_correction(first.use_bias_correction, beta1, beta2, k);
        let dlr = d * lr * bias_correction;
        let d_numerator = globals[D_NUMERATOR] * beta3;
        let (mut delta_numerator, mut d_denom) = (0.0, 0.0);
        let decouple = first.decouple;
        let mut grads = Vec::with_capacity(items.len());
        for item in items.iter_mut() {
            let group = &groups[item.group];
            let mut grad = item.grad.clone();
            if group.weight_decay != 0.0 && !decouple {
                grad = (grad + item.value.affine(group.weight_decay, 0.0)?)?;
            }
            let [s, p0, rest @ ..] = item.buffers.as_mut_slice() else { continue };
            if item.fresh {
                *p0 = group.sliced(&item.value)?.copy()?;
            }
            if group.lr > 0.0 {
                let sliced_grad = group.sliced(&grad)?;
                let d0 = group.d0;
                delta_numerator += (d / d0) * dlr * dot(&sliced_grad, &(&*p0 - group.sliced(&item.value)?)?)?;
                let (exp_avg, exp_avg_sq) = match rest {
                    [m, v] => (Some(m), v),
                    [v] => (None, v),
                    _ => continue,
                };
                if let Some(m) = exp_avg {
                    *m = (m.affine(beta1, 0.0)? + grad.affine(d * (1.0 - beta1), 0.0)?)?;
                }
                *exp_avg_sq =
                    (exp_avg_sq.affine(beta2, 0.0)? + grad.sqr()?.affine(d * d * (1.0 - beta2), 0.0)?)?;
                let w = if group.safeguard_warmup { (d / d0) * d } else { (d / d0) * dlr };
                *s = (s.affine(beta3, 0.0)? + sliced_grad.affine(w, 0.0)?)?;
                d_denom += l1(s)?;
            }
            grads.push(grad);
        }
        if d_denom == 0.0 {
            return Ok(());
        }
        let mut d = d;
        let d0_last = groups[items.last().map_or(0, |i| i.group)].d0;
        let numerator = d_numerator + delta_numerator;
        let mut d_hat = d;
        if lr > 0.0 {
            d_hat = first.d_coef * numerator / d_denom;
            if d == d0_last {
                d = d.max(d_hat);
            }
            globals[D_MAX] = globals[D_MAX].max(d_hat);
            d = globals[D_MAX].min(d * first.growth_rate.unwrap_or(f64::INFINITY));
        }
        globals[D_NUMERATOR] = numerator;
        globals[D] = d;
        globals[D_HAT] = d_hat;
        for (item, grad) in items.iter_mut().zip(grads) {
            let group = &groups[item.group];
            let [_, _, rest @ ..] = item.buffers.as_slice() else { continue };
            let (exp_avg, exp_avg_sq) = match rest {
                [m, v] => (Some(m), v),
                [v] => (None, v),
                _ => continue,
            };
            let denom = exp_avg_sq.sqrt()?.affine(1.0, d * group.eps)?;
            let mut p = item.value.clone();
            if group.weight_decay != 0.0 && decouple {
                p = (&p + p.affine(-group.weight_decay * dlr, 0.0)?)?;
            }
            p = match exp_avg {
                Some(m) => (&p + m.affine(-dlr, 0.0)?.div(&denom)?)?,
                None => (&p + grad.affine(-dlr * d, 0.0)?.div(&denom)?)?,
            };
            item.next = Some(p);
        }
        globals[K] = k + 1.0;
        Ok(())
    }
}
