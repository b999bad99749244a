//! `OneCycleLR`.

use std::f64::consts::PI;

use super::{per_group, Ctx, Form, Groups};
use crate::Hyper;
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
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "onecycle", check = OneCycleLr::check)]
pub struct OneCycleLr {
    /// The peak rate (required): one, or one per group.
    #[hp(required, range = ">= 0")]
    pub max_lr: Vec<f64>,
    /// The cycle's length in steps (or `epochs` and `steps_per_epoch`: [`OneCycleLr::total`]).
    #[hp(min = 1)]
    pub total_steps: Option<u64>,
    /// `epochs`, if the length was given as `epochs` and `steps_per_epoch`.
    #[hp(min = 1)]
    pub epochs: Option<u64>,
    /// `steps_per_epoch`, likewise.
    #[hp(min = 1)]
    pub steps_per_epoch: Option<u64>,
    /// The rising fraction of the cycle (0.3), in `[0, 1]`.
    #[hp(default = 0.3, range = "[0, 1]")]
    pub pct_start: f64,
    /// `cos` or `linear`.
    #[hp(default = "cos", words = ["cos", "linear"])]
    pub anneal_strategy: &'static str,
    /// Cycle the momentum (or `beta1`) too (true).
    #[hp(default = true)]
    pub cycle_momentum: bool,
    /// The lower momentum (0.85): one, or one per group.
    #[hp(default = 0.85, range = ">= 0")]
    pub base_momentum: Vec<f64>,
    /// The upper momentum (0.95): one, or one per group.
    #[hp(default = 0.95, range = ">= 0")]
    pub max_momentum: Vec<f64>,
    /// `initial_lr = max_lr/div_factor` (25), > 0.
    #[hp(default = 25.0, range = "> 0")]
    pub div_factor: f64,
    /// `min_lr = initial_lr/final_div_factor` (1e4), > 0.
    #[hp(default = 1e4, range = "> 0")]
    pub final_div_factor: f64,
    /// Three phases (up, back down to `initial_lr`, then down to `min_lr`) instead of two (false).
    #[hp(default = false)]
    pub three_phase: bool,
    #[hp(skip)]
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
    /// The cycle's length in steps: `total_steps`, else `epochs·steps_per_epoch`.
    pub fn total(&self) -> u64 {
        match (self.total_steps, self.epochs, self.steps_per_epoch) {
            (Some(t), _, _) => t,
            (None, Some(e), Some(s)) => e * s,
            _ => 0,
        }
    }

    /// `total_steps`, or `epochs` and `steps_per_epoch`, is required.
    fn check(&self) -> Result<()> {
        if self.total() == 0 {
            return Err(Error::InvalidValue {
                optimizer: Self::NAME,
                key: "total_steps".into(),
                value: "(missing)".into(),
                allowed: "`total_steps` (or `epochs` and `steps_per_epoch`) is required".into(),
            });
        }
        Ok(())
    }

    fn anneal(&self, start: f64, end: f64, pct: f64) -> f64 {
        if self.anneal_strategy == "linear" {
            (end - start) * pct + start
        } else {
            end + (start - end) / 2.0 * ((PI * pct).cos() + 1.0)
        }
    }

    /// `(end_step, lr from, lr to, momentum from (max?), momentum to (max?))` per phase.
    fn phases(&self) -> Vec<(f64, At, At, bool, bool)> {
        let n = self.total() as f64;
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
        if c.epoch > self.total() as i64 {
            return Err(Error::InvalidArgument(format!(
                "onecycle: tried to step {} times; total_steps is {}",
                c.epoch,
                self.total()
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
