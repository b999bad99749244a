//! `CyclicLR`.

use super::{per_group, Ctx, Form, Groups};
use crate::Hyper;
use crate::{Error, Result};

/// `torch.optim.lr_scheduler.CyclicLR` (Smith, 2017): the rate cycles between `base_lr` and
/// `max_lr`, up over `step_size_up` steps and down over `step_size_down`, the amplitude scaled
/// per mode (`triangular`: constant; `triangular2`: halved each cycle; `exp_range`: `γ^t`);
/// the momentum (or `beta1`) cycles the opposite way between `max_momentum` and
/// `base_momentum`:
///
/// ```text
/// c = ⌊1 + t/(up + down)⌋,   x = 1 + t/(up + down) - c
/// s = x/r  if x ≤ r  else (x - 1)/(r - 1),   r = up/(up + down)
/// ηt = base + (max - base)·s·scale,   momentum = max_m - (max_m - base_m)·s·scale
/// ```
///
/// Attaching sets the rates to `base_lr` and the momentum to `max_momentum`, as PyTorch does.
/// (`scale_mode` is accepted for PyTorch's signature; as there, the built-in modes fix it.)
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "cyclic")]
pub struct CyclicLr {
    /// The lower rate (required): one, or one per group.
    #[hp(required, range = ">= 0")]
    pub base_lr: Vec<f64>,
    /// The upper rate (required): one, or one per group.
    #[hp(required, range = ">= 0")]
    pub max_lr: Vec<f64>,
    /// Steps of the rising half (2000), ≥ 1.
    #[hp(default = 2000, min = 1)]
    pub step_size_up: u64,
    /// Steps of the falling half (`step_size_up`).
    #[hp(min = 1)]
    pub step_size_down: Option<u64>,
    /// `triangular`, `triangular2` or `exp_range`.
    #[hp(default = "triangular", words = ["triangular", "triangular2", "exp_range"])]
    pub mode: &'static str,
    /// `exp_range`'s base (1), > 0.
    #[hp(default = 1.0, range = "> 0")]
    pub gamma: f64,
    /// `cycle` or `iterations` (fixed by the built-in modes).
    #[hp(default = "cycle", words = ["cycle", "iterations"])]
    pub scale_mode: &'static str,
    /// Cycle the momentum (or `beta1`) too (true).
    #[hp(default = true)]
    pub cycle_momentum: bool,
    /// The lower momentum (0.8): one, or one per group.
    #[hp(default = 0.8, range = ">= 0")]
    pub base_momentum: Vec<f64>,
    /// The upper momentum (0.9): one, or one per group.
    #[hp(default = 0.9, range = ">= 0")]
    pub max_momentum: Vec<f64>,
    #[hp(skip)]
    groups: Groupwise,
}

/// The per-group values, set when attached.
#[derive(Debug, Clone, PartialEq, Default)]
struct Groupwise {
    base: Vec<f64>,
    max: Vec<f64>,
    base_m: Vec<f64>,
    max_m: Vec<f64>,
    key: &'static str,
}

impl CyclicLr {
    fn scale(&self, cycle: f64, t: f64) -> f64 {
        match self.mode {
            "triangular2" => 1.0 / 2f64.powf(cycle - 1.0),
            "exp_range" => self.gamma.powf(t),
            _ => 1.0,
        }
    }
}

impl Form for CyclicLr {
    fn cycles_momentum(&self) -> bool {
        self.cycle_momentum
    }
    fn prepare(&mut self, g: &mut Groups) -> Result<()> {
        let n = g.len();
        self.groups.base = per_group("base_lr", &self.base_lr, n)?;
        self.groups.max = per_group("max_lr", &self.max_lr, n)?;
        g.set_lrs(&self.groups.base)?;
        if self.cycle_momentum {
            self.groups.key = g.momentum_key()?;
            self.groups.base_m = per_group("base_momentum", &self.base_momentum, n)?;
            self.groups.max_m = per_group("max_momentum", &self.max_momentum, n)?;
            for (i, m) in self.groups.max_m.clone().into_iter().enumerate() {
                g.set_momentum(i, self.groups.key, m)?;
            }
        }
        Ok(())
    }
    fn lr(&mut self, c: &Ctx, g: &mut Groups) -> Result<Vec<f64>> {
        if self.groups.base.len() != c.lrs.len() {
            return Err(Error::InvalidArgument(
                "cyclic: the optimizer's groups changed since it was attached".into(),
            ));
        }
        let up = self.step_size_up as f64;
        let total = up + self.step_size_down.map_or(up, |d| d as f64);
        let ratio = up / total;
        let t = c.epoch as f64;
        let cycle = (1.0 + t / total).floor();
        let x = 1.0 + t / total - cycle;
        let s = if x <= ratio { x / ratio } else { (x - 1.0) / (ratio - 1.0) };
        let scale = self.scale(cycle, t);
        let lrs =
            self.groups.base.iter().zip(&self.groups.max).map(|(b, m)| b + (m - b) * s * scale).collect();
        if self.cycle_momentum {
            for i in 0..self.groups.max_m.len() {
                let (bm, mm) = (self.groups.base_m[i], self.groups.max_m[i]);
                g.set_momentum(i, self.groups.key, mm - (mm - bm) * s * scale)?;
            }
        }
        Ok(lrs)
    }
}
