//! `ChainedScheduler`.

use super::sequential::{children, children_state, load_children};
use super::{Groups, LrScheduler, SchedulerState};
use crate::spec::OptimSpec;
use crate::{Error, Hyper, Result};

/// `torch.optim.lr_scheduler.ChainedScheduler`: every scheduler steps, in order, each
/// multiplying in its own change (the recursive forms compose):
/// `chained:schedulers=[constant(factor=0.5,total_iters=3),exponential(gamma=0.95)]`.
#[derive(Debug, Clone, Hyper)]
#[hyper(name = "chained")]
pub struct Chained {
    /// The schedulers (required), nested as `name(key=value,...)`.
    #[hp(with = "children")]
    schedulers: Vec<Box<dyn LrScheduler>>,
}

impl Chained {
    /// Builds it from a spec.
    pub fn build(spec: &OptimSpec) -> Result<Box<dyn LrScheduler>> {
        Ok(Box::new(Self::from_spec(spec)?))
    }
}

impl LrScheduler for Chained {
    fn boxed_clone(&self) -> Box<dyn LrScheduler> {
        Box::new(self.clone())
    }
    fn spec(&self) -> String {
        self.to_spec().to_string()
    }
    fn cycles_momentum(&self) -> bool {
        self.schedulers.iter().any(|s| s.cycles_momentum())
    }
    fn attach(&mut self, g: &mut Groups) -> Result<()> {
        for s in &mut self.schedulers {
            s.attach(g)?;
        }
        Ok(())
    }
    fn step(&mut self, g: &mut Groups, _metric: Option<f64>) -> Result<()> {
        for s in &mut self.schedulers {
            s.step(g, None)?;
        }
        Ok(())
    }
    fn restart(&mut self, _g: &mut Groups) -> Result<()> {
        Err(Error::InvalidArgument("chained cannot be restarted by sequential".into()))
    }
    fn undo(&mut self) {
        for s in &mut self.schedulers {
            s.undo();
        }
    }
    fn initial_step(&mut self, g: &mut Groups) -> Result<()> {
        self.step(g, None)
    }
    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new();
        children_state(&self.schedulers, &mut s);
        s
    }
    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        load_children(&mut self.schedulers, state)
    }
}
