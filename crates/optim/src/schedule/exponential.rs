//! `ExponentialLR`.

use super::{num, Ctx, Form, Groups};
use crate::spec::{positive, Options};
use crate::Result;

/// `torch.optim.lr_scheduler.ExponentialLR`: `ηt = ηt-1·γ`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialLr {
    /// Decay factor per epoch (required), > 0.
    pub gamma: f64,
}

impl Form for ExponentialLr {
    const NAME: &'static str = "exponential";
    fn from_options(o: &mut Options) -> Result<Self> {
        Ok(Self { gamma: o.required("gamma", positive, "gamma must be > 0")? })
    }
    fn to_options(&self) -> Vec<(&'static str, String)> {
        vec![("gamma", num(self.gamma))]
    }
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
