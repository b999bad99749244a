//! `CosineAnnealingWarmRestarts`.

use std::f64::consts::PI;

use super::{get, num, Ctx, Form, Groups, SchedulerState};
use crate::spec::{non_negative, Options};
use crate::{Error, Result};

/// `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` (SGDR, Loshchilov & Hutter, 2017):
/// `ηt = ηmin + (η0 - ηmin)(1 + cos(π·Tcur/Ti))/2`, where `Tcur` counts epochs since the last
/// restart and the period `Ti` starts at `T0` and is multiplied by `Tmult` at each restart.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineAnnealingWarmRestarts {
    /// The first period `T0` (required), ≥ 1.
    pub t_0: u64,
    /// The period's growth factor at each restart (1), a whole number ≥ 1.
    pub t_mult: u64,
    /// The floor `ηmin` (0), ≥ 0.
    pub eta_min: f64,
    t_i: f64,
    t_cur: f64,
}

impl Form for CosineAnnealingWarmRestarts {
    const NAME: &'static str = "cosine_warm_restarts";
    fn from_options(o: &mut Options) -> Result<Self> {
        let t_0 =
            o.required("t_0", |x| x >= 1.0 && x.fract() == 0.0, "t_0 must be a whole number >= 1")? as u64;
        Ok(Self {
            t_0,
            t_mult: o.whole("t_mult", 1, 1)?,
            eta_min: o.num("eta_min", &[], 0.0, non_negative, "eta_min must be >= 0")?,
            t_i: t_0 as f64,
            t_cur: -1.0,
        })
    }
    fn to_options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("t_0", self.t_0.to_string()),
            ("t_mult", self.t_mult.to_string()),
            ("eta_min", num(self.eta_min)),
        ]
    }
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
