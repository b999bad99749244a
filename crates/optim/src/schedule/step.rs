//! `StepLR`.

use super::{Ctx, Form, Groups};
use crate::Hyper;
use crate::Result;

/// `torch.optim.lr_scheduler.StepLR`: the rate times `γ` every `step_size` epochs,
/// `ηt = η0·γ^⌊t/step_size⌋` (recursively: `ηt = ηt-1·γ` when `step_size` divides `t > 0`).
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "step")]
pub struct StepLr {
    /// Epochs between decays (required), ≥ 1.
    #[hp(required, default = 1, min = 1)]
    pub step_size: u64,
    /// Decay factor (0.1), > 0.
    #[hp(default = 0.1, range = "> 0")]
    pub gamma: f64,
}

impl Form for StepLr {
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        if c.epoch == 0 || c.epoch % self.step_size as i64 != 0 {
            return Ok(c.lrs.to_vec());
        }
        Ok(c.lrs.iter().map(|lr| lr * self.gamma).collect())
    }
    fn closed_form(&self, c: &Ctx) -> Option<Vec<f64>> {
        let k = c.epoch.div_euclid(self.step_size as i64);
        Some(c.base_lrs.iter().map(|b| b * self.gamma.powf(k as f64)).collect())
    }
}
