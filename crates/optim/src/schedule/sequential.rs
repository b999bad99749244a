//! `SequentialLR`.

use super::{get, parse_nested, Groups, LrScheduler, SchedulerState};
use crate::spec::{OptimSpec, Options};
use crate::{Error, Hyper, Result};

/// `torch.optim.lr_scheduler.SequentialLR`: runs `schedulers[0]` until `milestones[0]`, then
/// `schedulers[1]` (restarted at its epoch 0, from its closed form where it has one), and so
/// on. As in PyTorch, attaching builds every scheduler in order on the optimizer, puts the rates
/// back to their `initial_lr`, and takes the first scheduler's initial step again.
///
/// `sequential:schedulers=[linear(start_factor=0.1,total_iters=5),cosine(t_max=95)],milestones=[5]`
#[derive(Debug, Clone, Hyper)]
#[hyper(name = "sequential", check = Sequential::check)]
pub struct Sequential {
    /// The schedulers, in order (required), nested as `name(key=value,...)`.
    #[hp(with = "children")]
    schedulers: Vec<Box<dyn LrScheduler>>,
    /// The epochs at which the next one takes over (one fewer than the schedulers).
    #[hp(default = Vec::new())]
    milestones: Vec<u64>,
    #[hp(skip, default = -1)]
    last_epoch: i64,
}

/// The nested schedulers of a `schedulers=[...]` option, for `#[hp(with = "children")]`.
pub(super) mod children {
    use super::*;

    /// Reads `schedulers=[...]`; none may watch a metric.
    pub(crate) fn read(
        o: &mut Options,
        key: &'static str,
        name: &'static str,
    ) -> Result<Vec<Box<dyn LrScheduler>>> {
        super::children(o, key, name)
    }

    /// `[a(...),b(...)]`.
    pub(crate) fn write(children: &[Box<dyn LrScheduler>]) -> String {
        super::children_spec(children)
    }
}

/// The nested schedulers of a `schedulers=[...]` option; none may watch a metric.
pub(super) fn children(
    o: &mut Options,
    key: &'static str,
    name: &'static str,
) -> Result<Vec<Box<dyn LrScheduler>>> {
    let items = o.list(key)?.ok_or_else(|| Error::InvalidValue {
        optimizer: name,
        key: "schedulers".into(),
        value: "(missing)".into(),
        allowed: "`schedulers` is required: a list such as `[linear(total_iters=5),cosine(t_max=95)]`".into(),
    })?;
    if items.is_empty() {
        return Err(Error::InvalidArgument(format!("{name}: at least one scheduler is needed")));
    }
    let children = items.iter().map(|i| parse_nested(i)).collect::<Result<Vec<_>>>()?;
    if children.iter().any(|c| c.needs_metric()) {
        return Err(Error::InvalidArgument(format!(
            "{name} cannot hold plateau, which needs a metric to step"
        )));
    }
    Ok(children)
}

/// `[a,b]` of the children's specs, nested form.
pub(super) fn children_spec(children: &[Box<dyn LrScheduler>]) -> String {
    let nested: Vec<String> = children
        .iter()
        .map(|c| {
            let s = c.spec();
            match s.split_once(':') {
                Some((n, o)) => format!("{n}({o})"),
                None => s,
            }
        })
        .collect();
    format!("[{}]", nested.join(","))
}

/// The children's states under `0.`, `1.`, ...
pub(super) fn children_state(children: &[Box<dyn LrScheduler>], s: &mut SchedulerState) {
    for (i, c) in children.iter().enumerate() {
        for (k, v) in c.state() {
            s.insert(format!("{i}.{k}"), v);
        }
    }
}

/// Loads the children's states; all of them or none.
pub(super) fn load_children(children: &mut [Box<dyn LrScheduler>], state: &SchedulerState) -> Result<()> {
    let olds: Vec<SchedulerState> = children.iter().map(|c| c.state()).collect();
    for (i, c) in children.iter_mut().enumerate() {
        let prefix = format!("{i}.");
        let own: SchedulerState =
            state.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), *v))).collect();
        if let Err(e) = c.load_state(&own) {
            for (c, old) in children.iter_mut().zip(&olds).take(i) {
                // Each old state came from its own scheduler: it loads.
                let _ = c.load_state(old);
            }
            return Err(e);
        }
    }
    Ok(())
}

impl Sequential {
    /// Builds it from a spec.
    pub fn build(spec: &OptimSpec) -> Result<Box<dyn LrScheduler>> {
        Ok(Box::new(Self::from_spec(spec)?))
    }

    /// One milestone between each two schedulers, in increasing order.
    fn check(&self) -> Result<()> {
        if self.milestones.len() + 1 != self.schedulers.len() {
            return Err(Error::InvalidArgument(format!(
                "sequential: {} schedulers need {} milestones, got {}",
                self.schedulers.len(),
                self.schedulers.len().saturating_sub(1),
                self.milestones.len()
            )));
        }
        if self.milestones.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::InvalidArgument("sequential: milestones must be in increasing order".into()));
        }
        Ok(())
    }

    /// Which scheduler runs at `epoch`: the number of milestones ≤ `epoch`.
    fn index(&self, epoch: i64) -> usize {
        self.milestones.iter().filter(|&&m| m as i64 <= epoch).count()
    }
}

impl LrScheduler for Sequential {
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
        self.last_epoch = 0;
        let initial = g.initial_lrs();
        g.set_lrs(&initial)?;
        for s in &mut self.schedulers {
            s.undo();
        }
        let first = self.index(0);
        self.schedulers[first].initial_step(g)
    }
    fn step(&mut self, g: &mut Groups, _metric: Option<f64>) -> Result<()> {
        self.last_epoch += 1;
        let idx = self.index(self.last_epoch);
        if idx > 0 && self.milestones[idx - 1] as i64 == self.last_epoch {
            self.schedulers[idx].restart(g)
        } else {
            self.schedulers[idx].step(g, None)
        }
    }
    fn restart(&mut self, _g: &mut Groups) -> Result<()> {
        Err(Error::InvalidArgument("sequential cannot be restarted by another sequential".into()))
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
        let mut s = SchedulerState::from([("last_epoch".to_string(), self.last_epoch as f64)]);
        children_state(&self.schedulers, &mut s);
        s
    }
    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        let last_epoch = get(state, "last_epoch")?;
        if last_epoch.fract() != 0.0 || last_epoch < -1.0 {
            return Err(Error::State(format!("sequential: last_epoch = {last_epoch} is not an epoch")));
        }
        load_children(&mut self.schedulers, state)?;
        self.last_epoch = last_epoch as i64;
        Ok(())
    }
}
