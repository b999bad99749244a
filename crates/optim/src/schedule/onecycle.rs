//! `OneCycleLR`.

use std::f64::consts::PI;

use super::{num, nums, per_group, Ctx, Form, Groups};
use crate::spec::{non_negative, positive, Options};
use crate::{Error, Result};

/// `torch.optim.lr_scheduler.OneCycleLR` (Smith & Topin, 2018): from `max_lr/div_factor` up to
/// `max_lr` over the first `pct_start` of `total_steps`, then down to
/// `max_lr/(div_factor·final_div_factor)` (with `three_phase`, back to the start first, then
/// down), by cosine or linear annealing; the momentum (or `beta1`) moves the opposite way
/// between `max_momentum` and `base_momentum`. Each phase anneals
/// `start → end` by `pct ∈ [0, 1]`: cos `end + (start - end)(1 + cos(π·pct))/2`, linear
/// `start + (end - start)·pct`.
///
/// Attaching sets the rates to `max_lr/div_factor` and the momentum to `max_momentum`. PyTorch
/// allows one step past the last (`total_steps` steps after attaching), whose rate no optimizer
/// step uses; there the linear strategy would give a negative rate, which Taper sets to 0.
#[derive(Debug, Clone, PartialEq)]
pub struct OneCycleLr {
    /// The peak rate (required): one, or one per group.
    pub max_lr: Vec<f64>,
    /// The cycle's length in steps (or `epochs·steps_per_epoch`).
    pub total_steps: u64,
    /// `epochs`, if the length was given as `epochs` and `steps_per_epoch`.
    pub epochs: Option<u64>,
    /// `steps_per_epoch`, likewise.
    pub steps_per_epoch: Option<u64>,
    /// The rising fraction of the cycle (0.3), in `[0, 1]`.
    pub pct_start: f64,
    /// `cos` or `linear`.
    pub anneal_strategy: String,
    /// Cycle the momentum (or `beta1`) too (true).
    pub cycle_momentum: bool,
    /// The lower momentum (0.85): one, or one per group.
    pub base_momentum: Vec<f64>,
    /// The upper momentum (0.95): one, or one per group.
    pub max_momentum: Vec<f64>,
    /// `initial_lr = max_lr/div_factor` (25), > 0.
    pub div_factor: f64,
    /// `min_lr = initial_lr/final_div_factor` (1e4), > 0.
    pub final_div_factor: f64,
    /// Three phases (up, back down to `initial_lr`, then down to `min_lr`) instead of two (false).
    pub three_phase: bool,
    groups: Groupwise,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Groupwise {
    initial: Vec<f64>,
    max: Vec<f64>,
    min: Vec<f64>,
    base_m: Vec<f64>,
    max_m: Vec<f64>,
    key: &'static str,
}

/// Which value a phase starts or ends at.
#[derive(Clone, Copy)]
enum At {
    Initial,
    Max,
    Min,
}

impl OneCycleLr {
    fn anneal(&self, start: f64, end: f64, pct: f64) -> f64 {
        if self.anneal_strategy == "linear" {
            (end - start) * pct + start
        } else {
            end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
        }
    }

    /// `(end_step, lr from, lr to, momentum from (max?), momentum to (max?))` per phase.
    fn phases(&self) -> Vec<(f64, At, At, bool, bool)> {
        let n = self.total_steps as f64;
        let p = self.pct_start;
        if self.three_phase {
            vec![
                (p * n - 1.0, At::Initial, At::Max, true, false),
                (2.0 * p * n - 2.0, At::Max, At::Initial, false, true),
                (n - 1.0, At::Initial, At::Min, true, true),
            ]
        } else {
            vec![(p * n - 1.0, At::Initial, At::Max, true, false), (n - 1.0, At::Max, At::Min, false, true)]
        }
    }
}

impl Form for OneCycleLr {
    const NAME: &'static str = "onecycle";
    fn from_options(o: &mut Options) -> Result<Self> {
        let max_lr = o.nums("max_lr", None, non_negative, "max_lr must be >= 0")?;
        let total = o.num(
            "total_steps",
            &[],
            f64::NAN,
            |x| x >= 1.0 && x.fract() == 0.0,
            "total_steps must be a whole number >= 1",
        )?;
        let epochs = o.num(
            "epochs",
            &[],
            f64::NAN,
            |x| x >= 1.0 && x.fract() == 0.0,
            "epochs must be a whole number >= 1",
        )?;
        let per = o.num(
            "steps_per_epoch",
            &[],
            f64::NAN,
            |x| x >= 1.0 && x.fract() == 0.0,
            "steps_per_epoch must be a whole number >= 1",
        )?;
        let (total_steps, epochs, steps_per_epoch) = if !total.is_nan() {
            (total as u64, None, None)
        } else if !epochs.is_nan() && !per.is_nan() {
            ((epochs * per) as u64, Some(epochs as u64), Some(per as u64))
        } else {
            return Err(Error::InvalidValue {
                optimizer: Self::NAME,
                key: "total_steps".into(),
                value: "(missing)".into(),
                allowed: "`total_steps` (or `epochs` and `steps_per_epoch`) is required".into(),
            });
        };
        Ok(Self {
            max_lr,
            total_steps,
            epochs,
            steps_per_epoch,
            pct_start: o.num(
                "pct_start",
                &[],
                0.3,
                |x| (0.0..=1.0).contains(&x),
                "pct_start must be in [0, 1]",
            )?,
            anneal_strategy: o.word("anneal_strategy", "cos", &["cos", "linear"])?.to_string(),
            cycle_momentum: o.flag("cycle_momentum", true)?,
            base_momentum: o.nums("base_momentum", Some(0.85), non_negative, "base_momentum must be >= 0")?,
            max_momentum: o.nums("max_momentum", Some(0.95), non_negative, "max_momentum must be >= 0")?,
            div_factor: o.num("div_factor", &[], 25.0, positive, "div_factor must be > 0")?,
            final_div_factor: o.num(
                "final_div_factor",
                &[],
                1e4,
                positive,
                "final_div_factor must be > 0",
            )?,
            three_phase: o.flag("three_phase", false)?,
            groups: Groupwise::default(),
        })
    }
    fn to_options(&self) -> Vec<(&'static str, String)> {
        let mut o = vec![("max_lr", nums(&self.max_lr))];
        match (self.epochs, self.steps_per_epoch) {
            (Some(e), Some(s)) => o.extend([("epochs", e.to_string()), ("steps_per_epoch", s.to_string())]),
            _ => o.push(("total_steps", self.total_steps.to_string())),
        }
        o.extend([
            ("pct_start", num(self.pct_start)),
            ("anneal_strategy", self.anneal_strategy.clone()),
            ("cycle_momentum", self.cycle_momentum.to_string()),
            ("base_momentum", nums(&self.base_momentum)),
            ("max_momentum", nums(&self.max_momentum)),
            ("div_factor", num(self.div_factor)),
            ("final_div_factor", num(self.final_div_factor)),
            ("three_phase", self.three_phase.to_string()),
        ]);
        o
    }
    fn cycles_momentum(&self) -> bool {
        self.cycle_momentum
    }
    fn prepare(&mut self, g: &mut Groups) -> Result<()> {
        let n = g.len();
        let gw = &mut self.groups;
        gw.max = per_group("max_lr", &self.max_lr, n)?;
        gw.initial = gw.max.iter().map(|m| m / self.div_factor).collect();
        gw.min = gw.initial.iter().map(|i| i / self.final_div_factor).collect();
        g.set_initial_lrs(&gw.initial);
        if self.cycle_momentum {
            gw.key = g.momentum_key()?;
            gw.base_m = per_group("base_momentum", &self.base_momentum, n)?;
            gw.max_m = per_group("max_momentum", &self.max_momentum, n)?;
            for (i, m) in gw.max_m.clone().into_iter().enumerate() {
                g.set_momentum(i, gw.key, m)?;
            }
        }
        Ok(())
    }
    fn lr(&mut self, c: &Ctx, g: &mut Groups) -> Result<Vec<f64>> {
        if c.epoch > self.total_steps as i64 {
            return Err(Error::InvalidArgument(format!(
                "onecycle: tried to step {} times; total_steps is {}",
                c.epoch, self.total_steps
            )));
        }
        if self.groups.max.len() != c.lrs.len() {
            return Err(Error::InvalidArgument(
                "onecycle: the optimizer's groups changed since it was attached".into(),
            ));
        }
        let t = c.epoch as f64;
        let phases = self.phases();
        let mut lrs = Vec::with_capacity(c.lrs.len());
        for i in 0..c.lrs.len() {
            let gw = &self.groups;
            let value = |at: At| match at {
                At::Initial => gw.initial[i],
                At::Max => gw.max[i],
                At::Min => gw.min[i],
            };
            let mut start_step = 0.0;
            let mut found = (0.0, 0.0);
            for (k, &(end_step, from, to, m_from_max, m_to_max)) in phases.iter().enumerate() {
                if t <= end_step || k == phases.len() - 1 {
                    let pct = (t - start_step) / (end_step - start_step);
                    let lr = self.anneal(value(from), value(to), pct);
                    let m = if self.cycle_momentum {
                        let pick = |max: bool| if max { gw.max_m[i] } else { gw.base_m[i] };
                        self.anneal(pick(m_from_max), pick(m_to_max), pct)
                    } else {
                        0.0
                    };
                    found = (lr, m);
                    break;
                }
                start_step = end_step;
            }
            lrs.push(found.0.max(0.0));
            if self.cycle_momentum {
                g.set_momentum(i, self.groups.key, found.1)?;
            }
        }
        Ok(lrs)
    }
}
