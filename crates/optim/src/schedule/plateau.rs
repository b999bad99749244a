//! `ReduceLROnPlateau`.

use super::{get, per_group, Groups, LrScheduler, SchedulerState};
use crate::spec::OptimSpec;
use crate::{Error, Hyper, Result};

/// `torch.optim.lr_scheduler.ReduceLROnPlateau`: fed a metric each step, multiplies the rates
/// by `factor` (not below `min_lr`, and only by more than `eps`) once the metric has not
/// improved for more than `patience` steps, then waits `cooldown` steps. Improvement is relative
/// (`a < best·(1 - threshold)` for `mode=min`) or absolute (`a < best - threshold`).
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "plateau")]
pub struct ReduceLrOnPlateau {
    /// `min` (a loss) or `max` (an accuracy).
    #[hp(default = "min", words = ["min", "max"])]
    pub mode: &'static str,
    /// The factor (0.1), in `[0, 1)`.
    #[hp(default = 0.1, range = "[0, 1)")]
    pub factor: f64,
    /// Steps without improvement tolerated (10).
    #[hp(default = 10)]
    pub patience: u64,
    /// What counts as improvement (1e-4), ≥ 0.
    #[hp(default = 1e-4, range = ">= 0")]
    pub threshold: f64,
    /// `rel` or `abs`.
    #[hp(default = "rel", words = ["rel", "abs"])]
    pub threshold_mode: &'static str,
    /// Steps to wait after a reduction (0).
    #[hp(default = 0)]
    pub cooldown: u64,
    /// The floor (0): one, or one per group.
    #[hp(default = 0.0, range = ">= 0")]
    pub min_lr: Vec<f64>,
    /// The smallest change made (1e-8), ≥ 0.
    #[hp(default = 1e-8, range = ">= 0")]
    pub eps: f64,
    #[hp(skip, default = if mode == "min" { f64::INFINITY } else { f64::NEG_INFINITY })]
    best: f64,
    #[hp(skip)]
    num_bad_epochs: u64,
    #[hp(skip)]
    cooldown_counter: u64,
    #[hp(skip)]
    last_epoch: i64,
    #[hp(skip)]
    min_lrs: Vec<f64>,
}

impl ReduceLrOnPlateau {
    /// Builds it from a spec.
    pub fn build(spec: &OptimSpec) -> Result<Box<dyn LrScheduler>> {
        Ok(Box::new(Self::from_spec(spec)?))
    }

    fn is_better(&self, a: f64) -> bool {
        let (best, th) = (self.best, self.threshold);
        match (self.mode, self.threshold_mode) {
            ("min", "rel") => a < best * (1.0 - th),
            ("min", _) => a < best - th,
            (_, "rel") => a > best * (th + 1.0),
            _ => a > best + th,
        }
    }
}

impl LrScheduler for ReduceLrOnPlateau {
    fn boxed_clone(&self) -> Box<dyn LrScheduler> {
        Box::new(self.clone())
    }
    fn spec(&self) -> String {
        self.to_spec().to_string()
    }
    fn needs_metric(&self) -> bool {
        true
    }
    fn attach(&mut self, g: &mut Groups) -> Result<()> {
        self.min_lrs = per_group("min_lr", &self.min_lr, g.len())?;
        Ok(())
    }
    fn step(&mut self, g: &mut Groups, metric: Option<f64>) -> Result<()> {
        let current = metric.ok_or_else(|| {
            Error::InvalidArgument("plateau: the scheduler watches a metric, and none was given".into())
        })?;
        self.last_epoch += 1;
        if self.is_better(current) {
            self.best = current;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.patience {
            let lrs = g.lrs();
            if self.min_lrs.len() != lrs.len() {
                return Err(Error::InvalidArgument(
                    "plateau: the optimizer's groups changed since it was attached".into(),
                ));
            }
            let new: Vec<f64> = lrs
                .iter()
                .zip(&self.min_lrs)
                .map(|(&old, &min)| {
                    let new = (old * self.factor).max(min);
                    if old - new > self.eps {
                        new
                    } else {
                        old
                    }
                })
                .collect();
            g.set_lrs(&new)?;
            self.cooldown_counter = self.cooldown;
            self.num_bad_epochs = 0;
        }
        Ok(())
    }
    fn restart(&mut self, _g: &mut Groups) -> Result<()> {
        Err(Error::InvalidArgument("plateau cannot run inside sequential or chained".into()))
    }
    fn undo(&mut self) {}
    fn initial_step(&mut self, _g: &mut Groups) -> Result<()> {
        Err(Error::InvalidArgument("plateau cannot run inside sequential or chained".into()))
    }
    fn state(&self) -> SchedulerState {
        SchedulerState::from([
            ("best".to_string(), self.best),
            ("num_bad_epochs".to_string(), self.num_bad_epochs as f64),
            ("cooldown_counter".to_string(), self.cooldown_counter as f64),
            ("last_epoch".to_string(), self.last_epoch as f64),
        ])
    }
    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        let best = get(state, "best")?;
        let counts =
            [get(state, "num_bad_epochs")?, get(state, "cooldown_counter")?, get(state, "last_epoch")?];
        if best.is_nan() || counts.iter().any(|c| !(c.is_finite() && *c >= 0.0 && c.fract() == 0.0)) {
            return Err(Error::State(format!("plateau: state {state:?} does not fit")));
        }
        self.best = best;
        self.num_bad_epochs = counts[0] as u64;
        self.cooldown_counter = counts[1] as u64;
        self.last_epoch = counts[2] as i64;
        Ok(())
    }
}
