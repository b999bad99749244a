//! `CosineAnnealingWarmRestarts`.

use std::f64::consts::PI;

use super::{get, Ctx, Form, Groups, SchedulerState};
use crate::Hyper;
use crate::{Error, Result};

/// `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` (SGDR, Loshchilov & Hutter, 2017):
/// `ηt = ηmin + (η0 - ηmin)(1 + cos(π·Tcur/Ti))/2`, where `Tcur` counts epochs since the last
/// restart and the period `Ti` starts at `T0` and is multiplied by `Tmult` at each restart.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "cosine_warm_restarts")]
pub struct CosineAnnealingWarmRestarts {
    /// The first period `T0` (required), ≥ 1.
    #[hp(required, default = 1, min = 1)]
    pub t_0: u64,
    /// The period's growth factor at each restart (1), a whole number ≥ 1.
    #[hp(default = 1, min = 1)]
    pub t_mult: u64,
    /// The floor `ηmin` (0), ≥ 0.
    #[hp(default = 0.0, range = ">= 0")]
    pub eta_min: f64,
    #[hp(skip, default = t_0 as f64)]
    t_i: f64,
    #[hp(skip, default = -1.0)]
    t_cur: f64,
}

impl Form for CosineAnnealingWarmRestarts {
    fn advance(&mut self, epoch: i64) {
        if epoch == 0 {
            self.t_i = self.t_0 as f64;
            self.t_cur = 0.0;
            return;
        }
        self.t_cur += 1.0;
        if self.t_cur >= self.t_i {
            self.t_cur %= self.t_i;
            self.t_i *= self.t_mult as f64;
        }
    }
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        let m = self.eta_min;
        Ok(c.base_lrs
            .iter()
            .map(|b| m + (b - m) * (1.0 + (PI * self.t_cur / self.t_i).cos()) / 2.0)
            .collect())
    }
    fn state(&self) -> Vec<(String, f64)> {
        vec![("t_i".into(), self.t_i), ("t_cur".into(), self.t_cur)]
    }
    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        let (t_i, t_cur) = (get(state, "t_i")?, get(state, "t_cur")?);
        if !(t_i >= 1.0 && t_cur.is_finite() && t_cur < t_i) {
            return Err(Error::State(format!(
                "cosine_warm_restarts: t_i = {t_i}, t_cur = {t_cur} do not fit"
            )));
        }
        (self.t_i, self.t_cur) = (t_i, t_cur);
        Ok(())
    }
}
