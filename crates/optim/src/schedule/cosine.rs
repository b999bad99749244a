//! `CosineAnnealingLR`.

use std::f64::consts::PI;

use super::{Ctx, Form, Groups};
use crate::Hyper;
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
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "cosine")]
pub struct CosineAnnealingLr {
    /// The half-period `T` (required), ≥ 1.
    #[hp(required, default = 1, min = 1)]
    pub t_max: u64,
    /// The floor `ηmin` (0), ≥ 0.
    #[hp(default = 0.0, range = ">= 0")]
    pub eta_min: f64,
}

impl Form for CosineAnnealingLr {
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
