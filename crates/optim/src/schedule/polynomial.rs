//! `PolynomialLR`.

use super::{Ctx, Form, Groups};
use crate::Hyper;
use crate::Result;

/// `torch.optim.lr_scheduler.PolynomialLR`: `ηt = η0·(1 - min(t, T)/T)^power`, reaching 0 at
/// epoch `T = total_iters`.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "polynomial")]
pub struct PolynomialLr {
    /// The epochs to reach 0 (5), ≥ 1.
    #[hp(default = 5, min = 1)]
    pub total_iters: u64,
    /// The power (1), ≥ 0.
    #[hp(default = 1.0, range = ">= 0")]
    pub power: f64,
}

impl Form for PolynomialLr {
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        if c.initial || c.epoch > self.total_iters as i64 {
            return Ok(c.lrs.to_vec());
        }
        let (t, n) = (c.epoch as f64, self.total_iters as f64);
        let f = ((1.0 - t / n) / (1.0 - (t - 1.0) / n)).powf(self.power);
        Ok(c.lrs.iter().map(|lr| lr * f).collect())
    }
    fn closed_form(&self, c: &Ctx) -> Option<Vec<f64>> {
        let n = self.total_iters;
        let t = (c.epoch.max(0) as u64).min(n) as f64;
        Some(c.base_lrs.iter().map(|b| b * (1.0 - t / n as f64).powf(self.power)).collect())
    }
}
