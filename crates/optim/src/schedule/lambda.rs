//! `LambdaLR` and `MultiplicativeLR`: schedules given as closures (library only: a closure has no
//! spec).

use std::fmt;
use std::sync::Arc;

use super::{Ctx, Epochal, Form, Groups};
use crate::spec::Options;
use crate::Hyper;
use crate::{Error, Result};

/// A function of the epoch.
pub type EpochFn = Arc<dyn Fn(u64) -> f64 + Send + Sync>;

fn pick(fns: &[EpochFn], groups: usize, name: &str) -> Result<()> {
    if fns.len() == 1 || fns.len() == groups {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("{name}: expected 1 or {groups} functions, got {}", fns.len())))
    }
}

fn call(fns: &[EpochFn], i: usize, epoch: i64) -> f64 {
    let f = if fns.len() == 1 { &fns[0] } else { &fns[i] };
    f(epoch.max(0) as u64)
}

/// `torch.optim.lr_scheduler.LambdaLR`: `ηt = η0·λ(t)`, one function for every group or one per
/// group.
#[derive(Clone)]
pub struct LambdaLr {
    fns: Vec<EpochFn>,
}

impl LambdaLr {
    /// One function for every group, or one per group.
    pub fn new(fns: Vec<EpochFn>) -> Epochal<Self> {
        Epochal::new(Self { fns })
    }
}

impl fmt::Debug for LambdaLr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LambdaLr({} functions)", self.fns.len())
    }
}

impl Form for LambdaLr {
    fn prepare(&mut self, g: &mut Groups) -> Result<()> {
        pick(&self.fns, g.len(), Self::NAME)
    }
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        Ok(c.base_lrs.iter().enumerate().map(|(i, b)| b * call(&self.fns, i, c.epoch)).collect())
    }
}

/// `torch.optim.lr_scheduler.MultiplicativeLR`: `ηt = ηt-1·λ(t)` for `t ≥ 1`.
#[derive(Clone)]
pub struct MultiplicativeLr {
    fns: Vec<EpochFn>,
}

impl MultiplicativeLr {
    /// One function for every group, or one per group.
    pub fn new(fns: Vec<EpochFn>) -> Epochal<Self> {
        Epochal::new(Self { fns })
    }
}

impl fmt::Debug for MultiplicativeLr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MultiplicativeLr({} functions)", self.fns.len())
    }
}

impl Form for MultiplicativeLr {
    fn prepare(&mut self, g: &mut Groups) -> Result<()> {
        pick(&self.fns, g.len(), Self::NAME)
    }
    fn lr(&mut self, c: &Ctx, _g: &mut Groups) -> Result<Vec<f64>> {
        if c.initial {
            return Ok(c.lrs.to_vec());
        }
        Ok(c.lrs.iter().enumerate().map(|(i, lr)| lr * call(&self.fns, i, c.epoch)).collect())
    }
}

/// A schedule given as a closure has no spec: its `Hyper` refuses to be read from one and writes
/// no options (`lambda`, `multiplicative` in a checkpoint's record).
macro_rules! closure_schedule {
    ($ty:ty, $name:literal, $ctor:literal) => {
        impl Hyper for $ty {
            const NAME: &'static str = $name;
            fn read_from(_o: &mut Options, _base: Option<&Self>) -> Result<Self> {
                Err(Error::InvalidArgument(format!(
                    "{} takes a closure: build it in code with {}",
                    $name, $ctor
                )))
            }
            fn write(&self) -> Vec<(&'static str, String)> {
                Vec::new()
            }
            fn validate(&self) -> Result<()> {
                Ok(())
            }
            fn get(&self, _key: &str) -> Option<f64> {
                None
            }
            fn set(&mut self, key: &str, _value: f64) -> Result<()> {
                Err(Error::InvalidArgument(format!("`{}` has no option `{key}`", $name)))
            }
            fn options_info() -> &'static [crate::OptionInfo] {
                &[]
            }
        }
    };
}

closure_schedule!(LambdaLr, "lambda", "LambdaLr::new");
closure_schedule!(MultiplicativeLr, "multiplicative", "MultiplicativeLr::new");
