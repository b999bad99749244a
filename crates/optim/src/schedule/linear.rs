//! `LinearLR`.

use super::{Ctx, Form, Groups};
use crate::Hyper;
use crate::Result;

/// `torch.optim.lr_scheduler.LinearLR`: the factor on the base rate moves linearly from
/// `start_factor` to `end_factor` over `total_iters` epochs (a warm-up by default), then stays.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "linear")]
pub struct LinearLr {
    /// The factor at epoch 0 (1/3), in `(0, 1]`.
    #[hp(default = 1.0 / 3.0, range = "(0, 1]")]
    pub start_factor: f64,
    /// The factor from epoch `total_iters` on (1), in `[0, 1]`.
    #[hp(default = 1.0, range = "[0, 1]")]
    pub end_factor: f64,
    /// The length of the ramp (5), ≥ 1.
    #[hp(default = 5, min = 1)]
    pub total_iters: u64,
}

impl Form for LinearLr {
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        if c.epoch == 0 {
            return Ok(c.lrs.iter().map(|lr| lr * self.start_factor).collect());
        }
        if c.initial || c.epoch > self.total_iters as i64 {
            return Ok(c.lrs.to_vec());
        }
        let (s, e, n) = (self.start_factor, self.end_factor, self.total_iters as f64);
        let f = 1.0 + (e - s) / (n * s + (c.epoch - 1) as f64 * (e - s));
        Ok(c.lrs.iter().map(|lr| lr * f).collect())
    }
    fn closed_form(&self, c: &Ctx) -> Option<Vec<f64>> {
        let (s, e, n) = (self.start_factor, self.end_factor, self.total_iters);
        let done = (c.epoch.max(0) as u64).min(n) as f64;
        Some(c.base_lrs.iter().map(|b| b * (s + (e - s) * done / n as f64)).collect())
    }
}
