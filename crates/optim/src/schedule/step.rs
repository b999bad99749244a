//! `StepLR`.

use super::{num, Ctx, Form, Groups};
use crate::spec::{positive, Options};
use crate::Result;

/// `torch.optim.lr_scheduler.StepLR`: the rate times `γ` every `step_size` epochs,
/// `ηt = η0·γ^⌊t/step_size⌋` (recursively: `ηt = ηt-1·γ` when `step_size` divides `t > 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct StepLr {
    /// Epochs between decays (required), ≥ 1.
    pub step_size: u64,
    /// Decay factor (0.1), > 0.
    pub gamma: f64,
}

impl Form for StepLr {
    const NAME: &'static str = "step";
    fn from_options(o: &mut Options) -> Result<Self> {
        let step_size = o.required(
            "step_size",
            |x| x >= 1.0 && x.fract() == 0.0,
            "step_size must be a whole number >= 1",
        )?;
        Ok(Self {
            step_size: step_size as u64,
            gamma: o.num("gamma", &[], 0.1, positive, "gamma must be > 0")?,
        })
    }
    fn to_options(&self) -> Vec<(&'static str, String)> {
        vec![("step_size", self.step_size.to_string()), ("gamma", num(self.gamma))]
    }
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
