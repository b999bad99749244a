//! `CosineAnnealingLR`.

use std::f64::consts::PI;

use super::{num, Ctx, Form, Groups};
use crate::spec::{non_negative, Options};
use crate::Result;

/// `torch.optim.lr_scheduler.CosineAnnealingLR`, in PyTorch's recursive form:
///
/// ```text
/// ηt = ηmin + (ηt-1 - ηmin)·(1 + cos(πt/T))/(1 + cos(π(t-1)/T))
/// ηt = ηt-1 + (η0 - ηmin)·(1 - cos(π/T))/2        when (t - 1 - T) mod 2T = 0
/// ```
///
/// which follows `ηmin + (η0 - ηmin)(1 + cos(πt/T))/2` down to `ηmin` at `T` and, past `T`, back
/// up (period `2T`), as PyTorch does.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineAnnealingLr {
    /// The half-period `T` (required), ≥ 1.
    pub t_max: u64,
    /// The floor `ηmin` (0), ≥ 0.
    pub eta_min: f64,
}

impl Form for CosineAnnealingLr {
    const NAME: &'static str = "cosine";
    fn from_options(o: &mut Options) -> Result<Self> {
        let t_max =
            o.required("t_max", |x| x >= 1.0 && x.fract() == 0.0, "t_max must be a whole number >= 1")?;
        Ok(Self {
            t_max: t_max as u64,
            eta_min: o.num("eta_min", &[], 0.0, non_negative, "eta_min must be >= 0")?,
        })
    }
    fn to_options(&self) -> Vec<(&'static str, String)> {
        vec![("t_max", self.t_max.to_string()), ("eta_min", num(self.eta_min))]
    }
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        if c.initial {
            return Ok(c.lrs.to_vec());
        }
        let (t, n, m) = (c.epoch as f64, self.t_max as f64, self.eta_min);
        if (c.epoch - 1 - self.t_max as i64).rem_euclid(2 * self.t_max as i64) == 0 {
            return Ok(c
                .lrs
                .iter()
                .zip(c.base_lrs)
                .map(|(lr, b)| lr + (b - m) * (1.0 - (PI / n).cos()) / 2.0)
                .collect());
        }
        let f = (1.0 + (PI * t / n).cos()) / (1.0 + (PI * (t - 1.0) / n).cos());
        Ok(c.lrs.iter().map(|lr| f * (lr - m) + m).collect())
    }
    fn closed_form(&self, c: &Ctx) -> Option<Vec<f64>> {
        let (t, n, m) = (c.epoch as f64, self.t_max as f64, self.eta_min);
        Some(c.base_lrs.iter().map(|b| m + (b - m) * (1.0 + (PI * t / n).cos()) / 2.0).collect())
    }
}
