//! `MultiStepLR`.

use super::{Ctx, Form, Groups};
use crate::Hyper;
use crate::Result;

/// `torch.optim.lr_scheduler.MultiStepLR`: the rate times `γ` at each milestone (a milestone
/// listed twice decays twice): `ηt = η0·γ^(milestones ≤ t)`.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "multistep")]
pub struct MultiStepLr {
    /// The epochs at which to decay (required), as given.
    #[hp(required, allowed = "milestones are whole numbers >= 0, `[30,80]`")]
    pub milestones: Vec<u64>,
    /// Decay factor (0.1), > 0.
    #[hp(default = 0.1, range = "> 0")]
    pub gamma: f64,
}

impl Form for MultiStepLr {
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        let hits = self.milestones.iter().filter(|&&m| m as i64 == c.epoch).count();
        if hits == 0 {
            return Ok(c.lrs.to_vec());
        }
        Ok(c.lrs.iter().map(|lr| lr * self.gamma.powi(hits as i32)).collect())
    }
    fn closed_form(&self, c: &Ctx) -> Option<Vec<f64>> {
        let passed = self.milestones.iter().filter(|&&m| m as i64 <= c.epoch).count();
        Some(c.base_lrs.iter().map(|b| b * self.gamma.powi(passed as i32)).collect())
    }
}
