//! Taper's optimizers: PyTorch-exact SGD, Adagrad, RMSprop, Adadelta, Adam, AdamW, Adamax, NAdam,
//! RAdam, ASGD, Rprop, Adafactor, Muon and L-BFGS, optax-exact Lion, AdaBelief, Yogi, Adan and LAMB, Schedule-Free AdamW and SGD exact to `schedulefree`, ADOPT, MARS, MADGRAD and LaProp exact to timm, AdEMAMix exact to `optax.contrib`, Prodigy, D-Adaptation Adam and SOAP exact to their authors' code, Lookahead and SAM around any optimizer, cautious updates, mixed optimizers ([`Mixed`]), with learning-rate schedulers, gradient clipping and
//! savable state. (`torch.optim.SparseAdam` needs sparse gradients, which Taper does not have.)
//!
//! ```
//! use taper_autograd::{ParamStore, Tape};
//! use candle_core::{Device, Tensor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut store = ParamStore::new();
//! let x = store.insert("x", Tensor::new(&[-5.0f64, -2.0], &Device::Cpu)?)?;
//! let mut opt = taper_optim::from_spec("rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true", store.trainable())?;
//! for _ in 0..20 {
//!     let tape = Tape::new();
//!     let v = tape.param(&x);
//!     // f(x) = 0.1·x1² + 2·x2²
//!     let w = taper_autograd::Var::constant(Tensor::new(&[0.1f64, 2.0], &Device::Cpu)?);
//!     let loss = v.sqr()?.mul(&w)?.sum_all()?;
//!     opt.step(&loss.backward()?)?;
//! }
//! let x = x.value().to_vec1::<f64>()?;
//! assert_eq!(format!("{:.6} {:.6}", x[0], x[1]), "-0.010599 0.000000"); // d2l 7.6
//! # Ok(()) }
//! ```
//!
//! Each optimizer is a [`Rule`] in a file of its own: hyperparameters with PyTorch's defaults, the
//! state it keeps, and its update written once over [`Elem`], from which both the fused in-place
//! CPU kernel and the composed any-device path are made. [`Engine`] does the bookkeeping shared by
//! all. [`REGISTRY`] maps spec names to constructors.

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

// `#[derive(Hyper)]` names this crate `::taper_optim`, here as in its users.
extern crate self as taper_optim;

mod adabelief;
mod adadelta;
mod adafactor;
mod adagrad;
mod adam;
mod adamax;
mod adamw;
mod adan;
mod ademamix;
mod adopt;
mod asgd;
mod average;
pub mod clip;
mod dadapt;
mod dadapt_adam;
mod elem;
mod error;
mod hyper;
mod kernels;
mod lamb;
mod laprop;
mod lbfgs;
mod lion;
mod lookahead;
mod madgrad;
mod mars;
mod mixed;
mod muon;
mod nadam;
mod prodigy;
mod radam;
mod registry;
mod rmsprop;
mod rprop;
mod rule;
mod sam;
pub mod schedule;
mod schedulefree;
mod sgd;
mod soap;
mod spec;
pub mod wrap;
mod yogi;

use std::collections::BTreeMap;

use candle_core::Tensor;
use taper_autograd::{Grads, Param};

pub use adabelief::{AdaBelief, AdaBeliefCoeffs};
pub use adadelta::Adadelta;
pub use adafactor::Adafactor;
pub use adagrad::Adagrad;
pub use adam::{Adam, AdamCoeffs};
pub use adamax::Adamax;
pub use adamw::AdamW;
pub use adan::{Adan, AdanCoeffs};
pub use ademamix::{AdEMAMix, AdEMAMixCoeffs};
pub use adopt::{Adopt, AdoptCoeffs};
pub use asgd::{Asgd, AsgdCoeffs};
pub use average::{AverageState, AveragedModel, Averaging};
pub use dadapt::{DEngine, DRule, Item};
pub use dadapt_adam::DAdaptAdam;
pub use elem::norm;
pub use elem::{addcdiv, clamp_abs, clamp_min, ema_sq, lerp, root_plus_eps, Elem};
pub use error::{Error, Result};
/// The linear algebra (symmetric eigendecompositions, QR) SOAP uses, for matrix preconditioners
/// written elsewhere.
pub use faer;
pub use hyper::{Decay, Hyper, OptimHyper, OptionInfo, Transforms};
pub use lamb::Lamb;
pub use laprop::{LaProp, LaPropCoeffs};
pub use lbfgs::{Evaluation, Lbfgs, LbfgsOptions};
pub use lion::Lion;
pub use lookahead::{Lookahead, LookaheadOptions};
pub use madgrad::Madgrad;
pub use mars::{Mars, MarsCoeffs};
pub use mixed::Mixed;
pub use muon::Muon;
pub use nadam::{NAdam, NAdamCoeffs};
pub use prodigy::Prodigy;
pub use radam::{RAdam, RAdamCoeffs};
pub use registry::{
    build, canonical, checked_list, from_spec, names, register, register_constructor, Constructor,
    DynConstructor, REGISTRY,
};
pub use rmsprop::RmsProp;
pub use rprop::Rprop;
pub use rule::{Buffer, Engine, Fuse, FuseKind, Init, NoFuse, Rule, Steps};
pub use sam::{Sam, SamOptions};
pub use schedulefree::{ScheduleFreeAdamW, ScheduleFreeCoeffs, ScheduleFreeSgd};
pub use sgd::{Sgd, SgdCoeffs};
pub use soap::{Soap, SoapCoeffs};
pub use spec::{non_negative, positive, split_top_level, unit_interval, OptimSpec, Options, Value};
pub use taper_derive::Hyper;
pub use yogi::{Yogi, YogiCoeffs};

/// Which implementation of the update runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelPath {
    /// The fused in-place CPU kernel where it can run (contiguous f32/f64 on the CPU), else the
    /// composed path.
    #[default]
    Auto,
    /// Always the fused kernel; an error for a parameter it cannot handle.
    Fused,
    /// Always the composed path of tensor ops (any device).
    Composed,
}

/// What a step does when a gradient holds NaN or Inf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinite {
    /// Refuse the step with [`Error::NonFiniteGradient`]; nothing changes.
    #[default]
    Error,
    /// Skip the step (nothing changes) and report it in [`StepOutcome::Skipped`].
    Skip,
    /// No check, as PyTorch's optimizers: NaN and Inf flow into the parameters. Saves one read
    /// of every gradient per step.
    Unchecked,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The update was applied.
    Applied,
    /// The step was skipped because this parameter's gradient was not finite.
    Skipped {
        /// The first parameter found with a non-finite gradient.
        param: String,
    },
}

/// An optimizer's whole state, as named tensors plus scalars, for a checkpoint.
///
/// Tensors are named `{param}.{buffer}` with PyTorch's buffer names (`fc1.weight.square_avg`);
/// scalars hold each parameter's step count (`{param}.step`) and each group's learning rate
/// (`group.{i}.lr`); `groups` holds every group's canonical spec, which an import restores (as
/// PyTorch's `load_state_dict` restores each group's hyperparameters).
#[derive(Debug, Clone)]
pub struct OptimState {
    /// The canonical spec of each parameter group, in order.
    pub groups: Vec<String>,
    /// Step counts and learning rates.
    pub scalars: BTreeMap<String, f64>,
    /// Per-parameter buffers.
    pub tensors: Vec<(String, Tensor)>,
}

/// How an optimizer runs, set with [`Optimizer::configure`] (or the helpers
/// `set_kernel_path`, `set_non_finite` and `set_train_mode` on `dyn Optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Which implementation of the update runs.
    Path(KernelPath),
    /// What a non-finite gradient does.
    NonFinite(NonFinite),
    /// Training (`true`, the default) or evaluation mode: Schedule-Free moves its parameters to
    /// the averaged point `x` for evaluation and back to `y` for training (`optimizer.eval()` /
    /// `optimizer.train()` in the reference); a step in evaluation mode is an error. Every other
    /// optimizer has one point for both and ignores it. Training loops switch to evaluation
    /// before evaluating or saving and back before stepping.
    Train(bool),
}

/// The interface every optimizer offers: twelve methods. The conveniences built on them
/// (`name`, `spec`, `learning_rate`, `set_learning_rate`, the group forms of those,
/// `num_groups`, `step_count`, `train_mode`, `set_train_mode`, `set_kernel_path`,
/// `set_non_finite`, `reset_state`) are methods of `dyn Optimizer`, so they work on `&mut dyn
/// Optimizer` and `Box<dyn Optimizer>` alike.
pub trait Optimizer {
    /// The canonical spec of one group (`None` past the last group): every option spelled out,
    /// so that spec → optimizer → spec round-trips.
    fn group_spec(&self, group: usize) -> Option<OptimSpec>;
    /// Every parameter, in group order.
    fn params(&self) -> Vec<Param>;
    /// One step driven by `closure`, which re-evaluates the loss and its gradients at the current
    /// parameters: L-BFGS calls it several times per step; every other optimizer once, then
    /// takes [`Optimizer::step`] on its gradients. Returns the loss of the first evaluation.
    fn step_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<lbfgs::Evaluation>,
    ) -> Result<(f64, StepOutcome)> {
        let (loss, grads) = closure()?;
        Ok((loss, self.step(&grads)?))
    }
    /// One update of every parameter that has a gradient in `grads`. All or nothing: every
    /// gradient is checked first (shape, dtype, device, finiteness) and every update that can
    /// fail is computed before any is stored, so an error leaves all parameters and all state
    /// unchanged.
    fn step(&mut self, grads: &Grads) -> Result<StepOutcome>;
    /// A numeric hyperparameter of one group by its spec name or an alias (`lr`, `momentum`,
    /// `beta1`; `train_mode`, 1 or 0, for an optimizer with a train/eval switch); `None` if the
    /// group or the option does not exist.
    fn group_option(&self, group: usize, key: &str) -> Option<f64>;
    /// Sets a numeric hyperparameter of one group (`lr`: what schedulers set; `momentum` or
    /// `beta1`: what they cycle), checked as the spec checks it; an error changes nothing.
    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()>;
    /// Adds a parameter group whose options (`"lr=0.1,momentum=0.9"`) override the first
    /// group's.
    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()>;
    /// A copy of one of `param`'s state buffers, by its name (`square_avg`), or of one of its
    /// scalar states (ASGD's `eta`, the step count `step`) as a 0-d tensor; `None` if the
    /// optimizer keeps no such state for it (yet).
    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>>;
    /// The whole state (step counts, every buffer, learning rates, group specs), copied.
    fn export_state(&self) -> Result<OptimState>;
    /// Restores a state exported by the same optimizer over parameters of the same names and
    /// shapes, with the same number of groups, whose hyperparameters it restores; anything
    /// that does not fit is an error naming it, and nothing changes then. A state with no
    /// per-parameter entries forgets every buffer and step count.
    fn import_state(&mut self, state: &OptimState) -> Result<()>;
    /// Changes how the optimizer runs ([`Setting`]); an error (a failed switch of mode) changes
    /// nothing.
    fn configure(&mut self, setting: Setting) -> Result<()>;
    /// The optimizer as [`Any`](std::any::Any), for typed access to its hyperparameters:
    /// `opt.as_any().downcast_ref::<Engine<RmsProp>>().map(|e| e.rule().alpha)`.
    fn as_any(&self) -> &dyn std::any::Any;
}

impl dyn Optimizer + '_ {
    /// The registry name (`rmsprop`).
    pub fn name(&self) -> String {
        self.group_spec(0).map(|s| s.name).unwrap_or_default()
    }
    /// The canonical spec of the first parameter group.
    pub fn spec(&self) -> OptimSpec {
        self.group_spec(0).unwrap_or_else(|| OptimSpec { name: String::new(), options: Vec::new() })
    }
    /// The number of parameter groups.
    pub fn num_groups(&self) -> usize {
        (0..).take_while(|g| self.group_spec(*g).is_some()).count()
    }
    /// The first group's learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.group_option(0, "lr").unwrap_or(f64::NAN)
    }
    /// Sets every group's learning rate (all checked first: an error changes nothing).
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::InvalidArgument(format!("learning rate {lr}: must be finite and >= 0")));
        }
        for g in 0..self.num_groups() {
            self.set_group_option(g, "lr", lr)?;
        }
        Ok(())
    }
    /// A group's learning rate.
    pub fn group_learning_rate(&self, group: usize) -> Option<f64> {
        self.group_option(group, "lr")
    }
    /// Sets one group's learning rate.
    pub fn set_group_learning_rate(&mut self, group: usize, lr: f64) -> Result<()> {
        self.set_group_option(group, "lr", lr)
    }
    /// The number of steps `param` has taken (`None` before its first).
    pub fn step_count(&self, param: &Param) -> Option<u64> {
        let t = self.buffer(param, "step").ok().flatten()?;
        let n = t.to_dtype(candle_core::DType::F64).ok()?.to_scalar::<f64>().ok()?;
        Some(n as u64)
    }
    /// Whether the optimizer is in training mode (the default; see [`Setting::Train`]).
    pub fn train_mode(&self) -> bool {
        self.group_option(0, "train_mode") != Some(0.0)
    }
    /// Switches between training (`true`) and evaluation mode ([`Setting::Train`]).
    pub fn set_train_mode(&mut self, train: bool) -> Result<()> {
        self.configure(Setting::Train(train))
    }
    /// Chooses the fused or composed implementation.
    pub fn set_kernel_path(&mut self, path: KernelPath) {
        // Choosing a path cannot fail.
        let _ = self.configure(Setting::Path(path));
    }
    /// Chooses what a non-finite gradient does.
    pub fn set_non_finite(&mut self, policy: NonFinite) {
        // Choosing a policy cannot fail.
        let _ = self.configure(Setting::NonFinite(policy));
    }
    /// Forgets all state (buffers and step counts), as if no step had been taken; the groups and
    /// their hyperparameters (learning rates included) stay.
    pub fn reset_state(&mut self) -> Result<()> {
        let groups: Vec<String> =
            (0..self.num_groups()).filter_map(|g| self.group_spec(g)).map(|s| s.to_string()).collect();
        let scalars = (0..groups.len())
            .filter_map(|g| self.group_option(g, "lr").map(|lr| (format!("group.{g}.lr"), lr)))
            .collect();
        self.import_state(&OptimState { groups, scalars, tensors: Vec::new() })
    }
}

/// A boxed optimizer (what [`from_spec`] returns) is an optimizer: it can be passed wherever one
/// is taken (`Scheduler::new(spec, &mut opt)`, `train(.., &mut opt, ..)`), with no `as_mut()`.
impl<O: Optimizer + ?Sized> Optimizer for Box<O> {
    fn group_spec(&self, group: usize) -> Option<OptimSpec> {
        (**self).group_spec(group)
    }
    fn params(&self) -> Vec<Param> {
        (**self).params()
    }
    fn step_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<lbfgs::Evaluation>,
    ) -> Result<(f64, StepOutcome)> {
        (**self).step_closure(closure)
    }
    fn step(&mut self, grads: &Grads) -> Result<StepOutcome> {
        (**self).step(grads)
    }
    fn group_option(&self, group: usize, key: &str) -> Option<f64> {
        (**self).group_option(group, key)
    }
    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        (**self).set_group_option(group, key, value)
    }
    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        (**self).add_param_group(params, options)
    }
    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>> {
        (**self).buffer(param, name)
    }
    fn export_state(&self) -> Result<OptimState> {
        (**self).export_state()
    }
    fn import_state(&mut self, state: &OptimState) -> Result<()> {
        (**self).import_state(state)
    }
    fn configure(&mut self, setting: Setting) -> Result<()> {
        (**self).configure(setting)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        (**self).as_any()
    }
}
