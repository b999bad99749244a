//! `MultiStepLR`.

use super::{num, Ctx, Form, Groups};
use crate::spec::{positive, Options};
use crate::{Error, Result};

/// `torch.optim.lr_scheduler.MultiStepLR`: the rate times `γ` at each milestone (a milestone
/// listed twice decays twice): `ηt = η0·γ^(milestones ≤ t)`.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStepLr {
    /// The epochs at which to decay (required), as given.
    pub milestones: Vec<u64>,
    /// Decay factor (0.1), > 0.
    pub gamma: f64,
}

impl Form for MultiStepLr {
    const NAME: &'static str = "multistep";
    fn from_options(o: &mut Options) -> Result<Self> {
        let items = o.list("milestones")?.ok_or_else(|| Error::InvalidValue {
            optimizer: Self::NAME,
            key: "milestones".into(),
            value: "(missing)".into(),
            allowed: "`milestones` is required: a list of epochs, `[30,80]`".into(),
        })?;
        let milestones = items
            .iter()
            .map(|t| {
                t.parse::<u64>().map_err(|_| Error::InvalidValue {
                    optimizer: Self::NAME,
                    key: "milestones".into(),
                    value: t.clone(),
                    allowed: "milestones are whole numbers >= 0".into(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { milestones, gamma: o.num("gamma", &[], 0.1, positive, "gamma must be > 0")? })
    }
    fn to_options(&self) -> Vec<(&'static str, String)> {
        let m: Vec<String> = self.milestones.iter().map(u64::to_string).collect();
        vec![("milestones", format!("[{}]", m.join(","))), ("gamma", num(self.gamma))]
    }
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
