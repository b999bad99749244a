//! `ExponentialLR`.

use super::{Ctx, Form, Groups};
use crate::Hyper;
use crate::Result;

/// `torch.optim.lr_scheduler.ExponentialLR`: `ηt = ηt-1·γ`.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "exponential")]
pub struct ExponentialLr {
    /// Decay factor per epoch (required), > 0.
    #[hp(required, default = 1.0, range = "> 0")]
    pub gamma: f64,
}

impl Form for ExponentialLr {
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        if c.initial {
            return Ok(c.lrs.to_vec());
        }
        Ok(c.lrs.iter().map(|lr| lr * self.gamma).collect())
    }
    fn closed_form(&self, c: &Ctx) -> Option<Vec<f64>> {
        Some(c.base_lrs.iter().map(|b| b * self.gamma.powf(c.epoch as f64)).collect())
    }
}
