//! Schedule-Free AdamW and SGD (Defazio et al., 2024, "The Road Less Scheduled"; the
//! `schedulefree` package's `AdamWScheduleFree` and `SGDScheduleFree`).

use crate::elem::{ema_sq, lerp, Elem};
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// The weighting both variants share: a warm-up factor on the rate, the largest rate so far,
/// and the running sum of the averaging weights (per parameter scalar state `weight_sum`,
/// `lr_max`).
#[derive(Debug, Clone, Copy)]
pub struct ScheduleFreeCoeffs {
    /// `ct+1 = w_t / Σ w`, the weight of `z` in the new average.
    ckp1: f64,
    /// The warmed-up rate `ηt`.
    lr: f64,
    /// `ηt·(β1·(1 - ct+1) - 1)`, the gradient's weight in the `y` step.
    y_grad: f64,
    /// `1/(1 - β2ᵗ)` (AdamW only).
    inv_bias_correction2: f64,
}

/// The shared per-step arithmetic: `k = step - 1`, warm-up, `lr_max`, weights.
fn weights(
    step: u64,
    lr: f64,
    warmup_steps: u64,
    r: f64,
    weight_lr_power: f64,
    beta1: f64,
    scalars: &mut [f64],
) -> (f64, f64, f64) {
    let k = (step - 1) as f64;
    let sched = if step - 1 < warmup_steps { (k + 1.0) / warmup_steps as f64 } else { 1.0 };
    let lr = lr * sched;
    let (ckp1, y_grad) = match scalars {
        [weight_sum, lr_max] => {
            *lr_max = lr.max(*lr_max);
            let weight = (k + 1.0).powf(r) * lr_max.powf(weight_lr_power);
            *weight_sum += weight;
            let ckp1 = if *weight_sum == 0.0 { 0.0 } else { weight / *weight_sum };
            (ckp1, lr * (beta1 * (1.0 - ckp1) - 1.0))
        }
        _ => (0.0, 0.0),
    };
    (ckp1, lr, y_grad)
}

/// `weight_sum` starts at 0, `lr_max` at -1 (the reference's group defaults).
fn initial_scalar(name: &str) -> f64 {
    if name == "lr_max" {
        -1.0
    } else {
        0.0
    }
}

/// The coefficients of step `step` from fresh scalar state, every step before it replayed.
fn replayed<R: Rule<Coeffs = ScheduleFreeCoeffs>>(rule: &R, step: u64) -> ScheduleFreeCoeffs {
    let mut s: Vec<f64> = rule.scalars().iter().map(|n| rule.initial_scalar(n)).collect();
    for t in 1..step {
        rule.advance(t, &mut s);
    }
    rule.advance(step, &mut s)
}

/// Schedule-Free AdamW: no learning-rate schedule; the parameter `y` interpolates between the
/// SGD-like iterate `z` and the running average `x` of the `z`s, which is the point to evaluate.
/// Exactly `schedulefree.AdamWScheduleFree` (its defaults: `lr = 0.0025`, betas `(0.9, 0.999)`,
/// `eps = 1e-8`):
///
/// ```text
/// ηt ← η·min(1, t/warmup_steps),   ηmax ← max(ηmax, ηt)
/// w ← t^r·ηmax^weight_lr_power,    W ← W + w,    c ← w/W
/// v ← β2·v + (1 - β2)·g²
/// ĝ ← g/(√(v/(1 - β2ᵗ)) + ε) + λ·y
/// y ← y + c·(z - y) + ηt·(β1·(1 - c) - 1)·ĝ
/// z ← z - ηt·ĝ
/// ```
///
/// `z` starts as the parameter. For evaluation the parameter moves to `x = lerp(y, z, 1 - 1/β1)`
/// and back to `y = lerp(x, z, 1 - β1)` for training (`set_train_mode` on `dyn Optimizer`, `Setting::Train`); the training
/// loop and checkpoints do this.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "schedulefree_adamw", decay = "added")]
pub struct ScheduleFreeAdamW {
    /// Learning rate `η` (0.0025).
    #[hp(default = 0.0025, range = ">= 0")]
    pub lr: f64,
    /// The interpolation `β1` (0.9).
    #[hp(default = 0.9, range = "(0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub beta2: f64,
    /// `ε` added outside the root (1e-8).
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// Weight decay `λ`, taken at `y` and added to the normalized gradient.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Linear warm-up of the rate over this many steps (0).
    #[hp(default = 0)]
    pub warmup_steps: u64,
    /// The power `r` of the step in the averaging weight (0).
    #[hp(default = 0.0, range = ">= 0")]
    pub r: f64,
    /// The power of `ηmax` in the averaging weight (2).
    #[hp(default = 2.0, range = ">= 0")]
    pub weight_lr_power: f64,
}

impl Rule for ScheduleFreeAdamW {
    type Coeffs = ScheduleFreeCoeffs;
    type Fused = Fuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::param_copy("z"), Buffer::zeros("exp_avg_sq")])
    }
    fn switch(&self, to_train: bool) -> Option<(&'static str, f64)> {
        Some(("z", if to_train { 1.0 - self.beta1 } else { 1.0 - 1.0 / self.beta1 }))
    }
    fn scalars(&self) -> &'static [&'static str] {
        &["weight_sum", "lr_max"]
    }
    fn initial_scalar(&self, name: &str) -> f64 {
        initial_scalar(name)
    }
    /// The coefficients of step `step` when every step before it ran at this rate.
    fn coeffs(&self, step: u64) -> ScheduleFreeCoeffs {
        replayed(self, step)
    }
    fn advance(&self, step: u64, scalars: &mut [f64]) -> ScheduleFreeCoeffs {
        let (ckp1, lr, y_grad) =
            weights(step, self.lr, self.warmup_steps, self.r, self.weight_lr_power, self.beta1, scalars);
        ScheduleFreeCoeffs {
            ckp1,
            lr,
            y_grad,
            inv_bias_correction2: 1.0 / (1.0 - self.beta2.powf(step as f64)),
        }
    }
}

impl<E: Elem> Steps<E> for ScheduleFreeAdamW {
    /// The normalized gradient `g / (√v̂ + ε)` (the engine adds `λ·y`).
    #[inline(always)]
    fn direction(
        &self,
        c: &ScheduleFreeCoeffs,
        _y: &E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<E, E::Err> {
        let [_, exp_avg_sq] = s else { return Ok(g.clone()) };
        *exp_avg_sq = ema_sq(exp_avg_sq, g, self.beta2)?;
        let denom = exp_avg_sq.scale(c.inv_bias_correction2)?.sqrt()?.affine(1.0, self.eps)?;
        g.div(&denom)
    }

    /// `y ← lerp(y, z, c) + η·(β1·(1 - c) - 1)·u`, `z ← z - η·u`.
    #[inline(always)]
    fn apply(
        &self,
        c: &ScheduleFreeCoeffs,
        y: &mut E,
        u: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        let [z, _] = s else { return Ok(()) };
        *y = lerp(y, z, c.ckp1)?.add_scaled(u, c.y_grad)?;
        *z = z.add_scaled(u, -c.lr)?;
        Ok(())
    }
}

/// Schedule-Free SGD: as [`ScheduleFreeAdamW`] with the raw gradient. Exactly
/// `schedulefree.SGDScheduleFree` (its defaults: `lr = 1`, `momentum = 0.9`):
///
/// ```text
/// g ← g + λ·y
/// y ← y + c·(z - y) + ηt·(μ·(1 - c) - 1)·g
/// z ← z - ηt·g
/// ```
///
/// with `ηt`, `c` as Schedule-Free AdamW's; evaluation at `x = lerp(y, z, 1 - 1/μ)`.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "schedulefree_sgd")]
pub struct ScheduleFreeSgd {
    /// Learning rate `η` (1).
    #[hp(default = 1.0, range = ">= 0")]
    pub lr: f64,
    /// The interpolation `μ` (0.9).
    #[hp(default = 0.9, range = "(0, 1)")]
    pub momentum: f64,
    /// Weight decay `λ`, taken at `y` (added to the gradient).
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Linear warm-up of the rate over this many steps (0).
    #[hp(default = 0)]
    pub warmup_steps: u64,
    /// The power `r` of the step in the averaging weight (0).
    #[hp(default = 0.0, range = ">= 0")]
    pub r: f64,
    /// The power of `ηmax` in the averaging weight (2).
    #[hp(default = 2.0, range = ">= 0")]
    pub weight_lr_power: f64,
}

impl Rule for ScheduleFreeSgd {
    type Coeffs = ScheduleFreeCoeffs;
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::param_copy("z")])
    }
    fn switch(&self, to_train: bool) -> Option<(&'static str, f64)> {
        Some(("z", if to_train { 1.0 - self.momentum } else { 1.0 - 1.0 / self.momentum }))
    }
    fn scalars(&self) -> &'static [&'static str] {
        &["weight_sum", "lr_max"]
    }
    fn initial_scalar(&self, name: &str) -> f64 {
        initial_scalar(name)
    }
    /// The coefficients of step `step` when every step before it ran at this rate.
    fn coeffs(&self, step: u64) -> ScheduleFreeCoeffs {
        replayed(self, step)
    }
    fn advance(&self, step: u64, scalars: &mut [f64]) -> ScheduleFreeCoeffs {
        let (ckp1, lr, y_grad) =
            weights(step, self.lr, self.warmup_steps, self.r, self.weight_lr_power, self.momentum, scalars);
        ScheduleFreeCoeffs { ckp1, lr, y_grad, inv_bias_correction2: 1.0 }
    }
}

impl<E: Elem> Steps<E> for ScheduleFreeSgd {
    #[inline(always)]
    fn update(
        &self,
        c: &ScheduleFreeCoeffs,
        y: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        let [z] = s else { return Ok(()) };
        *y = lerp(y, z, c.ckp1)?.add_scaled(g, c.y_grad)?;
        *z = z.add_scaled(g, -c.lr)?;
        Ok(())
    }
}
