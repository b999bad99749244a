//! Learning-rate schedulers, exact to `torch.optim.lr_scheduler`: stateful objects stepped once
//! per epoch or per optimizer step, which read and set the optimizer's group learning rates (and,
//! for `CyclicLR` and `OneCycleLR`, its momentum or `beta1`), in PyTorch's recursive
//! ("chainable") form, so that chaining and sequencing them composes as in PyTorch.
//!
//! ```
//! use taper_optim::schedule::Scheduler;
//! # fn main() -> taper_optim::Result<()> {
//! let mut opt = taper_optim::from_spec("sgd:lr=0.1,momentum=0.9", vec![])?;
//! let mut sched = Scheduler::new("multistep:milestones=[2,4],gamma=0.5", opt.as_mut())?;
//! let mut lrs = vec![opt.learning_rate()];
//! for _ in 0..5 {
//!     // ... opt.step(&grads)? ...
//!     sched.step(opt.as_mut())?;
//!     lrs.push(opt.learning_rate());
//! }
//! assert_eq!(lrs, [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]);
//! # Ok(()) }
//! ```
//!
//! Spec names: `step`, `multistep`, `constant`, `linear`, `exponential`, `polynomial`, `cosine`,
//! `cosine_warm_restarts`, `cyclic`, `onecycle`, `plateau`, `sequential`, `chained`; options are
//! PyTorch's argument names in lower case, lists in brackets, words bare, nested schedulers as
//! `name(key=value,...)`. `LambdaLR` and `MultiplicativeLR` take closures: build them in code
//! ([`LambdaLr`], [`MultiplicativeLr`]) and wrap them with [`Scheduler::from_boxed`]. Adding a
//! scheduler is one new file (a [`Form`], or an [`LrScheduler`] for one that is not driven by an
//! epoch count) plus one line in [`SCHEDULERS`].

mod chained;
mod constant;
mod cosine;
mod cosine_warm_restarts;
mod cyclic;
mod exponential;
mod lambda;
mod linear;
mod multistep;
mod onecycle;
mod plateau;
mod polynomial;
mod sequential;
mod step;

use std::collections::BTreeMap;
use std::fmt;

pub use chained::Chained;
pub use constant::ConstantLr;
pub use cosine::CosineAnnealingLr;
pub use cosine_warm_restarts::CosineAnnealingWarmRestarts;
pub use cyclic::CyclicLr;
pub use exponential::ExponentialLr;
pub use lambda::{EpochFn, LambdaLr, MultiplicativeLr};
pub use linear::LinearLr;
pub use multistep::MultiStepLr;
pub use onecycle::OneCycleLr;
pub use plateau::ReduceLrOnPlateau;
pub use polynomial::PolynomialLr;
pub use sequential::Sequential;
pub use step::StepLr;

use crate::spec::OptimSpec;
use crate::Hyper;
use crate::{Error, Optimizer, Result};

/// A scheduler's saved state: named numbers (`last_epoch`, `base_lr.0`, a nested scheduler's
/// entries under `0.`, `1.`, ...).
pub type SchedulerState = BTreeMap<String, f64>;

/// The optimizer as a scheduler sees it: group learning rates and momentum, plus each group's
/// `initial_lr` (which PyTorch keeps in the parameter groups, set by the first scheduler built on
/// them).
pub struct Groups<'a> {
    opt: &'a mut dyn Optimizer,
    initial_lr: &'a mut Vec<Option<f64>>,
}

impl Groups<'_> {
    /// The number of parameter groups.
    pub fn len(&self) -> usize {
        self.opt.num_groups()
    }
    /// Whether there are no groups.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every group's learning rate.
    pub fn lrs(&self) -> Vec<f64> {
        (0..self.len()).map(|g| self.opt.group_learning_rate(g).unwrap_or(0.0)).collect()
    }
    /// Sets every group's learning rate; all are checked first.
    pub fn set_lrs(&mut self, lrs: &[f64]) -> Result<()> {
        if lrs.len() != self.len() {
            return Err(Error::InvalidArgument(format!(
                "{} learning rates for {} parameter groups",
                lrs.len(),
                self.len()
            )));
        }
        if let Some(bad) = lrs.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
            return Err(Error::InvalidArgument(format!("the schedule reached learning rate {bad}")));
        }
        for (g, &lr) in lrs.iter().enumerate() {
            self.opt.set_group_learning_rate(g, lr)?;
        }
        Ok(())
    }
    /// Each group's `initial_lr`, set from its current rate where no scheduler set it before
    /// (PyTorch's `group.setdefault("initial_lr", group["lr"])`).
    pub fn initial_lrs(&mut self) -> Vec<f64> {
        let lrs = self.lrs();
        self.initial_lr.resize(lrs.len(), None);
        self.initial_lr.iter_mut().zip(lrs).map(|(init, lr)| *init.get_or_insert(lr)).collect()
    }
    /// Overwrites each group's `initial_lr` (`OneCycleLR` does).
    pub fn set_initial_lrs(&mut self, lrs: &[f64]) {
        *self.initial_lr = lrs.iter().map(|x| Some(*x)).collect();
    }
    /// The option that momentum cycling drives: `momentum` (SGD, RMSprop), else `beta1` (the
    /// Adam family), else `b1` (optax's); an error if the optimizer has none.
    pub fn momentum_key(&self) -> Result<&'static str> {
        ["momentum", "beta1", "b1"].into_iter().find(|k| self.opt.group_option(0, k).is_some()).ok_or_else(
            || {
                Error::InvalidArgument(format!(
                    "optimizer `{}` has no momentum or beta1 to cycle: set cycle_momentum=false",
                    self.opt.name()
                ))
            },
        )
    }
    /// Sets one group's momentum (or `beta1`).
    pub fn set_momentum(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        self.opt.set_group_option(group, key, value)
    }
    /// Every group's momentum (or `beta1`).
    pub fn momenta(&self, key: &str) -> Vec<f64> {
        (0..self.len()).map(|g| self.opt.group_option(g, key).unwrap_or(f64::NAN)).collect()
    }
}

/// A scheduler, as PyTorch's `LRScheduler` drives it. Most are a [`Form`] in an [`Epochal`];
/// those that are not driven by an epoch count (`ReduceLROnPlateau`, `SequentialLR`,
/// `ChainedScheduler`) implement this directly.
pub trait LrScheduler: fmt::Debug + Send {
    /// The canonical spec (every option).
    fn spec(&self) -> String;
    /// PyTorch's constructor: records base rates and takes the initial step (which sets the
    /// rates of epoch 0).
    fn attach(&mut self, g: &mut Groups) -> Result<()>;
    /// One step; `metric` for a scheduler that watches one ([`LrScheduler::needs_metric`]).
    fn step(&mut self, g: &mut Groups, metric: Option<f64>) -> Result<()>;
    /// Whether [`LrScheduler::step`] needs a metric (`ReduceLROnPlateau`).
    fn needs_metric(&self) -> bool {
        false
    }
    /// Whether it sets the optimizer's momentum (or `beta1`) too.
    fn cycles_momentum(&self) -> bool {
        false
    }
    /// `SequentialLR` at a milestone: restart at epoch 0 (PyTorch's `_update_lr(0)`, the closed
    /// form where there is one).
    fn restart(&mut self, g: &mut Groups) -> Result<()>;
    /// `SequentialLR`'s constructor: take back the epoch count of the initial step.
    fn undo(&mut self);
    /// `SequentialLR`'s constructor: take the initial step again.
    fn initial_step(&mut self, g: &mut Groups) -> Result<()>;
    /// The state to save.
    fn state(&self) -> SchedulerState;
    /// Restores a saved state; checks everything before changing anything.
    fn load_state(&mut self, state: &SchedulerState) -> Result<()>;
    /// A copy in its current state (for a training configuration used more than once).
    fn boxed_clone(&self) -> Box<dyn LrScheduler>;
}

/// Schedulers (closures included) copy, so a [`crate::Optimizer`]'s training configuration that
/// holds one can be used for several runs.
impl Clone for Box<dyn LrScheduler> {
    fn clone(&self) -> Self {
        self.boxed_clone()
    }
}

/// A scheduler driven by an epoch counter: PyTorch's `get_lr` of one `LRScheduler` subclass.
/// [`Epochal`] supplies the rest (the counter, base rates, stepping, state).
///
/// Its options are declared once with `#[derive(Hyper)]` (the spec name, each option's default,
/// range and doc; PyTorch's names, and what PyTorch requires is required).
pub trait Form: Hyper + fmt::Debug + Send + Sync + 'static {
    /// What the constructor does before the base class's (`CyclicLR` sets the rates to
    /// `base_lr`, `OneCycleLR` the `initial_lr`; both set the momentum).
    fn prepare(&mut self, _g: &mut Groups) -> Result<()> {
        Ok(())
    }
    /// Whether it sets the optimizer's momentum (or `beta1`) too.
    fn cycles_momentum(&self) -> bool {
        false
    }
    /// Called on every step before the rates are computed (`CosineAnnealingWarmRestarts` moves
    /// its position in the cycle); `epoch` is the new epoch.
    fn advance(&mut self, _epoch: i64) {}
    /// The rates at epoch `c.epoch` (`get_lr`); may set the momentum too.
    fn lr(&mut self, c: &Ctx, g: &mut Groups) -> Result<Vec<f64>>;
    /// The closed form at `c.epoch`, where PyTorch has one (`_get_closed_form_lr`).
    fn closed_form(&self, _c: &Ctx) -> Option<Vec<f64>> {
        None
    }
    /// State beyond the epoch counter and base rates.
    fn state(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
    /// Restores [`Form::state`] (the entries are checked to be present and finite).
    fn load_state(&mut self, _state: &SchedulerState) -> Result<()> {
        Ok(())
    }
}

/// What a [`Form`] computes its rates from.
pub struct Ctx<'a> {
    /// The epoch the rates are for (PyTorch's `last_epoch`).
    pub epoch: i64,
    /// Each group's base rate (`initial_lr` when the scheduler was attached).
    pub base_lrs: &'a [f64],
    /// Each group's current rate.
    pub lrs: &'a [f64],
    /// Whether this is the constructor's initial step (PyTorch's `_is_initial`).
    pub initial: bool,
}

/// A [`Form`] with PyTorch's `LRScheduler` machinery around it.
#[derive(Debug, Clone)]
pub struct Epochal<F: Form> {
    /// The schedule.
    pub form: F,
    last_epoch: i64,
    base_lrs: Vec<f64>,
}

impl<F: Form> Epochal<F> {
    /// Wraps a form, not yet attached.
    pub fn new(form: F) -> Self {
        Self { form, last_epoch: -1, base_lrs: Vec::new() }
    }

    fn compute(&mut self, g: &mut Groups, initial: bool) -> Result<()> {
        let lrs = g.lrs();
        let ctx = Ctx { epoch: self.last_epoch, base_lrs: &self.base_lrs, lrs: &lrs, initial };
        let new = self.form.lr(&ctx, g)?;
        g.set_lrs(&new)
    }
}

impl<F: Form> LrScheduler for Epochal<F> {
    fn boxed_clone(&self) -> Box<dyn LrScheduler> {
        Box::new(self.clone())
    }
    fn spec(&self) -> String {
        self.form.to_spec().to_string()
    }
    fn cycles_momentum(&self) -> bool {
        self.form.cycles_momentum()
    }
    fn attach(&mut self, g: &mut Groups) -> Result<()> {
        self.form.prepare(g)?;
        self.base_lrs = g.initial_lrs();
        self.last_epoch = -1;
        self.initial_step(g)
    }
    fn step(&mut self, g: &mut Groups, _metric: Option<f64>) -> Result<()> {
        self.last_epoch += 1;
        self.form.advance(self.last_epoch);
        self.compute(g, false)
    }
    fn restart(&mut self, g: &mut Groups) -> Result<()> {
        self.last_epoch = 0;
        let lrs = g.lrs();
        let ctx = Ctx { epoch: 0, base_lrs: &self.base_lrs, lrs: &lrs, initial: false };
        match self.form.closed_form(&ctx) {
            Some(new) => g.set_lrs(&new),
            None => self.compute(g, false),
        }
    }
    fn undo(&mut self) {
        self.last_epoch -= 1;
    }
    fn initial_step(&mut self, g: &mut Groups) -> Result<()> {
        self.last_epoch += 1;
        self.form.advance(self.last_epoch);
        self.compute(g, true)
    }
    fn state(&self) -> SchedulerState {
        let mut s = SchedulerState::new();
        s.insert("last_epoch".into(), self.last_epoch as f64);
        for (i, b) in self.base_lrs.iter().enumerate() {
            s.insert(format!("base_lr.{i}"), *b);
        }
        s.extend(self.form.state());
        s
    }
    fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        let last_epoch = get(state, "last_epoch")?;
        if last_epoch.fract() != 0.0 || last_epoch < -1.0 {
            return Err(Error::State(format!("scheduler `last_epoch` = {last_epoch} is not an epoch")));
        }
        let base_lrs = (0..).map_while(|i| state.get(&format!("base_lr.{i}")).copied()).collect::<Vec<_>>();
        if base_lrs.iter().any(|b| !b.is_finite()) {
            return Err(Error::State("a scheduler base rate is not finite".into()));
        }
        let mut form = self.form.clone();
        form.load_state(state)?;
        self.form = form;
        self.last_epoch = last_epoch as i64;
        self.base_lrs = base_lrs;
        Ok(())
    }
}

/// A saved number, which must be there.
pub fn get(state: &SchedulerState, key: &str) -> Result<f64> {
    state.get(key).copied().ok_or_else(|| Error::State(format!("scheduler state lacks `{key}`")))
}

/// A number as a spec writes it (shortest exact form; exponent form for small and huge).
pub fn num(x: f64) -> String {
    crate::Value::Num(x).to_string()
}

/// Numbers as a spec writes them: one, or a bracketed list.
pub fn nums(xs: &[f64]) -> String {
    match xs {
        [x] => num(*x),
        _ => format!("[{}]", xs.iter().map(|x| num(*x)).collect::<Vec<_>>().join(",")),
    }
}

/// One value per group from a list of one (for every group) or one per group.
pub fn per_group(key: &str, xs: &[f64], groups: usize) -> Result<Vec<f64>> {
    match xs.len() {
        1 => Ok(vec![xs[0]; groups]),
        n if n == groups => Ok(xs.to_vec()),
        n => Err(Error::InvalidArgument(format!(
            "expected {groups} values of {key} (one per parameter group), got {n}"
        ))),
    }
}

/// Builds a [`Form`] from a spec.
fn build_form<F: Form>(spec: &OptimSpec) -> Result<Box<dyn LrScheduler>> {
    Ok(Box::new(Epochal::new(F::from_spec(spec)?)))
}

/// Builds a scheduler from a parsed spec.
pub type SchedulerConstructor = fn(&OptimSpec) -> Result<Box<dyn LrScheduler>>;

/// Taper's schedulers, by spec name.
pub const SCHEDULERS: &[(&str, SchedulerConstructor)] = &[
    (StepLr::NAME, build_form::<StepLr>),
    (MultiStepLr::NAME, build_form::<MultiStepLr>),
    (ConstantLr::NAME, build_form::<ConstantLr>),
    (LinearLr::NAME, build_form::<LinearLr>),
    (ExponentialLr::NAME, build_form::<ExponentialLr>),
    (PolynomialLr::NAME, build_form::<PolynomialLr>),
    (CosineAnnealingLr::NAME, build_form::<CosineAnnealingLr>),
    (CosineAnnealingWarmRestarts::NAME, build_form::<CosineAnnealingWarmRestarts>),
    (CyclicLr::NAME, build_form::<CyclicLr>),
    (OneCycleLr::NAME, build_form::<OneCycleLr>),
    (ReduceLrOnPlateau::NAME, ReduceLrOnPlateau::build),
    (Sequential::NAME, Sequential::build),
    (Chained::NAME, Chained::build),
];

/// Parses a scheduler spec (`cosine:t_max=100`) into an unattached scheduler.
pub fn parse(spec: &str) -> Result<Box<dyn LrScheduler>> {
    let s = OptimSpec::parse(spec)?;
    let (_, ctor) = SCHEDULERS.iter().find(|(n, _)| *n == s.name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "unknown scheduler `{}`: known schedulers are {}",
            s.name,
            SCHEDULERS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ))
    })?;
    ctor(&s)
}

/// Parses a nested scheduler written `name(key=value,...)` (or a bare `name`).
fn parse_nested(item: &str) -> Result<Box<dyn LrScheduler>> {
    let item = item.trim();
    match item.split_once('(') {
        Some((name, rest)) => {
            let opts = rest.strip_suffix(')').ok_or_else(|| Error::Spec {
                spec: item.to_string(),
                msg: "a nested scheduler is `name(key=value,...)`".into(),
            })?;
            if opts.trim().is_empty() {
                parse(name)
            } else {
                parse(&format!("{name}:{opts}"))
            }
        }
        None => parse(item),
    }
}

/// A scheduler bound to an optimizer: what a training loop holds. Stepping and loading are all or
/// nothing.
#[derive(Debug)]
pub struct Scheduler {
    inner: Box<dyn LrScheduler>,
    initial_lr: Vec<Option<f64>>,
}

impl Scheduler {
    /// Parses `spec` and attaches the scheduler to `opt`, setting its epoch-0 learning rates.
    pub fn new(spec: &str, opt: &mut dyn Optimizer) -> Result<Self> {
        Self::from_boxed(parse(spec)?, opt)
    }

    /// Attaches a scheduler built in code ([`LambdaLr`], [`MultiplicativeLr`], or any
    /// [`LrScheduler`]).
    pub fn from_boxed(mut inner: Box<dyn LrScheduler>, opt: &mut dyn Optimizer) -> Result<Self> {
        let mut initial_lr = Vec::new();
        let before = Snapshot::take(opt, inner.cycles_momentum());
        let attached = inner.attach(&mut Groups { opt: &mut *opt, initial_lr: &mut initial_lr });
        if let Err(e) = attached {
            before.restore(opt);
            return Err(e);
        }
        Ok(Self { inner, initial_lr })
    }

    /// One step of a scheduler that needs no metric.
    pub fn step(&mut self, opt: &mut dyn Optimizer) -> Result<()> {
        if self.inner.needs_metric() {
            return Err(Error::InvalidArgument(format!(
                "scheduler `{}` watches a metric: step it with step_with_metric",
                self.inner.spec()
            )));
        }
        self.guarded(opt, None)
    }

    /// One step with the metric a scheduler such as `ReduceLROnPlateau` watches (others ignore
    /// it). A non-finite metric is an error.
    pub fn step_with_metric(&mut self, opt: &mut dyn Optimizer, metric: f64) -> Result<()> {
        if metric.is_nan() {
            return Err(Error::InvalidArgument("the scheduler's metric is NaN".into()));
        }
        self.guarded(opt, Some(metric))
    }

    fn guarded(&mut self, opt: &mut dyn Optimizer, metric: Option<f64>) -> Result<()> {
        let before = Snapshot::take(opt, self.inner.cycles_momentum());
        let (state, initial_lr) = (self.inner.state(), self.initial_lr.clone());
        let stepped =
            self.inner.step(&mut Groups { opt: &mut *opt, initial_lr: &mut self.initial_lr }, metric);
        if let Err(e) = stepped {
            before.restore(opt);
            self.initial_lr = initial_lr;
            // The state was taken from this scheduler a moment ago: it loads.
            let _ = self.inner.load_state(&state);
            return Err(e);
        }
        Ok(())
    }

    /// Whether [`Scheduler::step_with_metric`] is the way to step it.
    pub fn needs_metric(&self) -> bool {
        self.inner.needs_metric()
    }

    /// The canonical spec.
    pub fn spec(&self) -> String {
        self.inner.spec()
    }

    /// The state to save in a checkpoint (with each group's `initial_lr`).
    pub fn state(&self) -> SchedulerState {
        let mut s = self.inner.state();
        for (i, x) in self.initial_lr.iter().enumerate() {
            if let Some(x) = x {
                s.insert(format!("initial_lr.{i}"), *x);
            }
        }
        s
    }

    /// Restores a state saved by [`Scheduler::state`] of a scheduler of the same spec; an error
    /// changes nothing.
    pub fn load_state(&mut self, state: &SchedulerState) -> Result<()> {
        let initial_lr: Vec<Option<f64>> =
            (0..).map_while(|i| state.get(&format!("initial_lr.{i}")).map(|x| Some(*x))).collect();
        let own: SchedulerState = state
            .iter()
            .filter(|(k, _)| !k.starts_with("initial_lr."))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        self.inner.load_state(&own)?;
        self.initial_lr = initial_lr;
        Ok(())
    }
}

/// The optimizer's rates and momenta, to put back after a failed step.
struct Snapshot {
    lrs: Vec<f64>,
    momenta: Vec<(usize, &'static str, f64)>,
}

impl Snapshot {
    fn take(opt: &dyn Optimizer, momentum: bool) -> Self {
        let groups = opt.num_groups();
        let lrs = (0..groups).map(|g| opt.group_learning_rate(g).unwrap_or(0.0)).collect();
        let momenta = (0..if momentum { groups } else { 0 })
            .flat_map(|g| {
                ["momentum", "beta1", "b1"]
                    .into_iter()
                    .filter_map(move |k| opt.group_option(g, k).map(|v| (g, k, v)))
            })
            .collect();
        Self { lrs, momenta }
    }

    fn restore(self, opt: &mut dyn Optimizer) {
        // These values were read from this optimizer: setting them back cannot fail.
        for (g, lr) in self.lrs.into_iter().enumerate() {
            let _ = opt.set_group_learning_rate(g, lr);
        }
        for (g, k, v) in self.momenta {
            let _ = opt.set_group_option(g, k, v);
        }
    }
}
