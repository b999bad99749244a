//! Schedule-Free AdamW and SGD (Defazio et al., 2024, "The Road Less Scheduled"; the
//! `schedulefree` package's `AdamWScheduleFree` and `SGDScheduleFree`).

use crate::elem::{ema_sq, lerp, Elem};
use crate::rule::Rule;
use crate::spec::{non_negative, Options, Value};
use crate::Result;

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
/// and back to `y = lerp(x, z, 1 - β1)` for training (`Optimizer::set_train_mode`); the training
/// loop and checkpoints do this.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleFreeAdamW {
    /// Learning rate `η` (0.0025).
    pub lr: f64,
    /// The interpolation `β1` (0.9), in `[0, 1)` and > 0.
    pub beta1: f64,
    /// Decay `β2` of the second moment, in `[0, 1)`.
    pub beta2: f64,
    /// `ε` added outside the root (1e-8).
    pub eps: f64,
    /// Weight decay `λ`, taken at `y`.
    pub weight_decay: f64,
    /// Linear warm-up of the rate over this many steps (0).
    pub warmup_steps: u64,
    /// The power `r` of the step in the averaging weight (0).
    pub r: f64,
    /// The power of `ηmax` in the averaging weight (2).
    pub weight_lr_power: f64,
}

impl Default for ScheduleFreeAdamW {
    fn default() -> Self {
        Self {
            lr: 0.0025,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            r: 0.0,
            weight_lr_power: 2.0,
        }
    }
}

fn momentum_ok(x: f64) -> bool {
    x > 0.0 && x < 1.0
}

impl Rule for ScheduleFreeAdamW {
    const NAME: &'static str = "schedulefree_adamw";
    type Coeffs = ScheduleFreeCoeffs;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["z", "exp_avg_sq"]
    }
    fn starts_as_param(&self, buffer: &str) -> bool {
        buffer == "z"
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

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &ScheduleFreeCoeffs,
        y: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [z, exp_avg_sq] = s else { return Ok(()) };
        *exp_avg_sq = ema_sq(exp_avg_sq, g, self.beta2)?;
        let denom = exp_avg_sq.scale(c.inv_bias_correction2)?.sqrt()?.affine(1.0, self.eps)?;
        let mut gn = g.div(&denom)?;
        if self.weight_decay != 0.0 {
            gn = gn.add_scaled(y, self.weight_decay)?;
        }
        *y = lerp(y, z, c.ckp1)?.add_scaled(&gn, c.y_grad)?;
        *z = z.add_scaled(&gn, -c.lr)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.lr(d.lr)?,
            beta1: o.num("beta1", &[], d.beta1, momentum_ok, "beta1 must be in (0, 1)")?,
            beta2: o.decay("beta2", &[], d.beta2)?,
            eps: o.eps(d.eps)?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            warmup_steps: o.whole("warmup_steps", d.warmup_steps, 0)?,
            r: o.num("r", &[], d.r, non_negative, "r must be >= 0")?,
            weight_lr_power: o.num(
                "weight_lr_power",
                &[],
                d.weight_lr_power,
                non_negative,
                "weight_lr_power must be >= 0",
            )?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("beta1", Value::Num(self.beta1)),
            ("beta2", Value::Num(self.beta2)),
            ("eps", Value::Num(self.eps)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("warmup_steps", Value::Num(self.warmup_steps as f64)),
            ("r", Value::Num(self.r)),
            ("weight_lr_power", Value::Num(self.weight_lr_power)),
        ]
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
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleFreeSgd {
    /// Learning rate `η` (1).
    pub lr: f64,
    /// The interpolation `μ` (0.9), in `(0, 1)`.
    pub momentum: f64,
    /// Weight decay `λ`, taken at `y`.
    pub weight_decay: f64,
    /// Linear warm-up of the rate over this many steps (0).
    pub warmup_steps: u64,
    /// The power `r` of the step in the averaging weight (0).
    pub r: f64,
    /// The power of `ηmax` in the averaging weight (2).
    pub weight_lr_power: f64,
}

impl Default for ScheduleFreeSgd {
    fn default() -> Self {
        Self { lr: 1.0, momentum: 0.9, weight_decay: 0.0, warmup_steps: 0, r: 0.0, weight_lr_power: 2.0 }
    }
}

impl Rule for ScheduleFreeSgd {
    const NAME: &'static str = "schedulefree_sgd";
    type Coeffs = ScheduleFreeCoeffs;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["z"]
    }
    fn starts_as_param(&self, buffer: &str) -> bool {
        buffer == "z"
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

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &ScheduleFreeCoeffs,
        y: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        let [z] = s else { return Ok(()) };
        let g = if self.weight_decay != 0.0 { g.add_scaled(y, self.weight_decay)? } else { g.clone() };
        *y = lerp(y, z, c.ckp1)?.add_scaled(&g, c.y_grad)?;
        *z = z.add_scaled(&g, -c.lr)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.lr(d.lr)?,
            momentum: o.num("momentum", &[], d.momentum, momentum_ok, "momentum must be in (0, 1)")?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            warmup_steps: o.whole("warmup_steps", d.warmup_steps, 0)?,
            r: o.num("r", &[], d.r, non_negative, "r must be >= 0")?,
            weight_lr_power: o.num(
                "weight_lr_power",
                &[],
                d.weight_lr_power,
                non_negative,
                "weight_lr_power must be >= 0",
            )?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("momentum", Value::Num(self.momentum)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("warmup_steps", Value::Num(self.warmup_steps as f64)),
            ("r", Value::Num(self.r)),
            ("weight_lr_power", Value::Num(self.weight_lr_power)),
        ]
    }
}
