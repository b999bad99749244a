//! `ConstantLR`.

use super::{Ctx, Form, Groups};
use crate::Hyper;
use crate::Result;

/// `torch.optim.lr_scheduler.ConstantLR`: the rate times `factor` until epoch `total_iters`,
/// then back to the base rate.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "constant")]
pub struct ConstantLr {
    /// The factor (1/3), in `(0, 1]`.
    #[hp(default = 1.0 / 3.0, range = "(0, 1]")]
    pub factor: f64,
    /// The epoch at which the factor ends (5).
    #[hp(default = 5)]
    pub total_iters: u64,
}

impl Form for ConstantLr {
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        Ok(if c.epoch == 0 {
            c.lrs.iter().map(|lr| lr * self.factor).collect()
        } else if c.epoch != self.total_iters as i64 {
            c.lrs.to_vec()
        } else {
            c.lrs.iter().map(|lr| lr * (1.0 / self.factor)).collect()
        })
    }
    fn closed_form(&self, c: &Ctx) -> Option<Vec<f64>> {
        let done = if c.epoch >= self.total_iters as i64 { 1.0 } else { 0.0 };
        Some(c.base_lrs.iter().map(|b| b * (self.factor + done * (1.0 - self.factor))).collect())
    }
}
