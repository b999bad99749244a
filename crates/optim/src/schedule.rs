//! Learning-rate schedulers, as closed forms of PyTorch's `StepLR`, `ExponentialLR`,
//! `CosineAnnealingLR` and `LinearLR` (warm-up). `t` counts scheduler steps from 0 (epochs or
//! optimizer steps, as the caller decides).

use std::f64::consts::PI;

use crate::spec::{non_negative, positive, OptimSpec, Options};
use crate::{Error, Optimizer, Result};

/// A learning rate as a function of the base rate and the step.
pub trait Scheduler: std::fmt::Debug {
    /// The learning rate at step `t` for a group whose initial rate is `base`.
    fn lr(&self, base: f64, t: u64) -> f64;
}

/// `η_t = η · γ^⌊t / step_size⌋` (`StepLR`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepLr {
    /// Steps between decays (> 0).
    pub step_size: u64,
    /// Decay factor.
    pub gamma: f64,
}

impl Scheduler for StepLr {
    fn lr(&self, base: f64, t: u64) -> f64 {
        base * self.gamma.powi((t / self.step_size.max(1)) as i32)
    }
}

/// `η_t = η · γ^t` (`ExponentialLR`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialLr {
    /// Decay factor per step.
    pub gamma: f64,
}

impl Scheduler for ExponentialLr {
    fn lr(&self, base: f64, t: u64) -> f64 {
        base * self.gamma.powi(t as i32)
    }
}

/// `η_t = η_min + (η - η_min)·(1 + cos(π·t / T))/2` for `t ≤ T`, then `η_min` (`CosineAnnealingLR`
/// over one half-period).
#[derive(Debug, Clone, PartialEq)]
pub struct CosineAnnealing {
    /// Half-period `T` (> 0).
    pub t_max: u64,
    /// Floor `η_min`.
    pub eta_min: f64,
}

impl Scheduler for CosineAnnealing {
    fn lr(&self, base: f64, t: u64) -> f64 {
        let t = t.min(self.t_max) as f64;
        self.eta_min + (base - self.eta_min) * (1.0 + (PI * t / self.t_max.max(1) as f64).cos()) / 2.0
    }
}

/// `η_t = η · (s + (1 - s)·min(t, W)/W)`: a linear warm-up from `s·η` to `η` over `W` steps
/// (`LinearLR(start_factor=s, end_factor=1, total_iters=W)`).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWarmup {
    /// Warm-up length `W` (> 0).
    pub warmup: u64,
    /// Starting factor `s` in `[0, 1]`.
    pub start_factor: f64,
}

impl Scheduler for LinearWarmup {
    fn lr(&self, base: f64, t: u64) -> f64 {
        let frac = t.min(self.warmup) as f64 / self.warmup.max(1) as f64;
        base * (self.start_factor + (1.0 - self.start_factor) * frac)
    }
}

/// Parses a scheduler spec: `step:step_size=10,gamma=0.1`, `exponential:gamma=0.95`,
/// `cosine:t_max=100,eta_min=0`, `warmup:steps=100,start_factor=0.1`. The arguments PyTorch
/// requires (`step_size`, `gamma` of `exponential`, `t_max`) are required here too; the others
/// take PyTorch's defaults.
pub fn parse(spec: &str) -> Result<Box<dyn Scheduler>> {
    let s = OptimSpec::parse(spec)?;
    let count = |x: f64| x >= 1.0 && x.fract() == 0.0;
    let sched: Box<dyn Scheduler> = match s.name.as_str() {
        "step" => {
            let mut o = Options::new("step", &s);
            let step_size = o.required("step_size", count, "step_size must be a whole number >= 1")? as u64;
            let gamma = o.num("gamma", &[], 0.1, positive, "gamma must be > 0")?;
            o.finish()?;
            Box::new(StepLr { step_size, gamma })
        }
        "exponential" | "exp" => {
            let mut o = Options::new("exponential", &s);
            let gamma = o.required("gamma", positive, "gamma must be > 0")?;
            o.finish()?;
            Box::new(ExponentialLr { gamma })
        }
        "cosine" => {
            let mut o = Options::new("cosine", &s);
            let t_max = o.required("t_max", count, "t_max must be a whole number >= 1")? as u64;
            let eta_min = o.num("eta_min", &[], 0.0, non_negative, "eta_min must be >= 0")?;
            o.finish()?;
            Box::new(CosineAnnealing { t_max, eta_min })
        }
        "warmup" => {
            let mut o = Options::new("warmup", &s);
            // LinearLR's `total_iters` defaults to 5.
            let warmup =
                o.num("steps", &["total_iters"], 5.0, count, "steps must be a whole number >= 1")? as u64;
            let start_factor = o.num(
                "start_factor",
                &[],
                1.0 / 3.0,
                |x| (0.0..=1.0).contains(&x),
                "start_factor must be in [0, 1]",
            )?;
            o.finish()?;
            Box::new(LinearWarmup { warmup, start_factor })
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown scheduler `{other}`: expected step, exponential, cosine or warmup"
            )))
        }
    };
    Ok(sched)
}

/// A scheduler bound to an optimizer's groups: remembers each group's base rate and sets the
/// scheduled rate on request.
#[derive(Debug)]
pub struct LrSchedule {
    scheduler: Box<dyn Scheduler>,
    base: Vec<f64>,
}

impl LrSchedule {
    /// Binds `scheduler` to `opt`, taking its current group rates as the base rates.
    pub fn new(scheduler: Box<dyn Scheduler>, opt: &dyn Optimizer) -> Self {
        let base = (0..opt.num_groups()).map(|g| opt.group_learning_rate(g).unwrap_or(0.0)).collect();
        Self { scheduler, base }
    }

    /// Sets every group's learning rate to its scheduled value at step `t`.
    pub fn apply(&self, opt: &mut dyn Optimizer, t: u64) -> Result<()> {
        for (g, &base) in self.base.iter().enumerate() {
            opt.set_group_learning_rate(g, self.scheduler.lr(base, t))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_match_pytorch() {
        let s = StepLr { step_size: 3, gamma: 0.5 };
        assert_eq!([0, 2, 3, 6].map(|t| s.lr(1.0, t)), [1.0, 1.0, 0.5, 0.25]);
        assert!((ExponentialLr { gamma: 0.9 }.lr(2.0, 2) - 1.62).abs() < 1e-12);
        let c = CosineAnnealing { t_max: 10, eta_min: 0.1 };
        assert!((c.lr(1.0, 0) - 1.0).abs() < 1e-12);
        assert!((c.lr(1.0, 5) - 0.55).abs() < 1e-12);
        assert!((c.lr(1.0, 10) - 0.1).abs() < 1e-12);
        assert!((c.lr(1.0, 50) - 0.1).abs() < 1e-12);
        let w = LinearWarmup { warmup: 4, start_factor: 0.2 };
        assert!((w.lr(1.0, 0) - 0.2).abs() < 1e-12);
        assert!((w.lr(1.0, 2) - 0.6).abs() < 1e-12);
        assert_eq!(w.lr(1.0, 9), 1.0);
    }

    #[test]
    fn parses_specs_and_rejects_bad_ones() {
        assert!((parse("step:step_size=2,gamma=0.5").unwrap().lr(1.0, 2) - 0.5).abs() < 1e-12);
        assert!(parse("cosine:t_max=10").is_ok());
        assert!(parse("warmup:steps=5,start_factor=0.1").is_ok());
        // What PyTorch requires is required, and the message names it.
        let err = parse("cosine").unwrap_err().to_string();
        assert!(err.contains("t_max") && err.contains("required"), "{err}");
        for bad in [
            "nope",
            "step:step_size=0",
            "step:step_size=1.5",
            "cosine:t_max=10,foo=1",
            "warmup:start_factor=2",
            "step",
            "step:gamma=0.5",
            "exponential",
            "cosine:eta_min=0.1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
