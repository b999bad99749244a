//! Optimizers whose update needs whole-tensor quantities — a norm (LAMB's trust ratio), row and
//! column statistics (Adafactor's factored second moment), a matrix iteration (Muon's
//! Newton–Schulz) — which an element-by-element [`crate::Rule`] cannot see.
//!
//! A [`TensorRule`] writes its update once over whole candle tensors, so it runs on every device;
//! [`TensorEngine`] gives it what [`crate::Engine`] gives a `Rule`: parameter groups, lazily
//! created state (of any shape the rule asks for), finite checks, an all-or-nothing step (every
//! update is computed into new tensors before any is stored), saving and loading, spec strings.
//! There is no fused kernel: the reductions need the whole tensor before any element can be
//! updated.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use candle_core::{DType, Tensor};
use taper_autograd::{Grads, Param, ParamId};

use crate::rule::{check_float, check_unique_params, group_mut, valid_lr};
use crate::spec::{OptimSpec, Options, Value};
use crate::{kernels, Error, KernelPath, NonFinite, OptimState, Optimizer, Result, StepOutcome};

/// One whole-tensor optimizer: hyperparameters, the state it keeps per parameter (of shapes it
/// chooses), and its update over whole tensors.
pub trait TensorRule: Clone + Send + Sync + fmt::Debug + 'static {
    /// The registry name (`lamb`).
    const NAME: &'static str;
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (already validated as finite and ≥ 0).
    fn set_lr(&mut self, lr: f64);
    /// The state buffers of a parameter of shape `dims`: names and shapes, in the order
    /// [`TensorRule::update`] gets them. An error for a parameter the rule cannot take (Muon:
    /// matrices only).
    fn buffers(&self, dims: &[usize]) -> Result<Vec<(&'static str, Vec<usize>)>>;
    /// The new value of `p` at step `step` (from 1) given its gradient `g`, replacing its state
    /// buffers `state` with their new values.
    fn update(&self, step: u64, p: &Tensor, g: &Tensor, state: &mut [Tensor]) -> Result<Tensor>;
    /// Reads and validates the options of a spec.
    fn from_options(o: &mut Options) -> Result<Self>;
    /// Every option, for the canonical spec string.
    fn to_options(&self) -> Vec<(&'static str, Value)>;

    /// The canonical spec: the name and every option.
    fn to_spec(&self) -> OptimSpec {
        OptimSpec {
            name: Self::NAME.to_string(),
            options: self.to_options().into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    /// Builds the rule from a spec (which must name this optimizer).
    fn from_spec(spec: &OptimSpec) -> Result<Self> {
        if spec.name != Self::NAME {
            return Err(Error::Spec {
                spec: spec.to_string(),
                msg: format!("expected optimizer `{}`", Self::NAME),
            });
        }
        let mut o = Options::new(Self::NAME, spec);
        let rule = Self::from_options(&mut o)?;
        o.finish()?;
        Ok(rule)
    }
}

#[derive(Debug, Clone)]
struct TState {
    step: u64,
    buffers: Vec<Tensor>,
}

#[derive(Debug, Clone)]
struct TGroup<R> {
    rule: R,
    params: Vec<Param>,
}

/// The bookkeeping around a [`TensorRule`]; `TensorEngine<R>` is the [`Optimizer`].
#[derive(Debug, Clone)]
pub struct TensorEngine<R: TensorRule> {
    groups: Vec<TGroup<R>>,
    state: HashMap<ParamId, TState>,
    path: KernelPath,
    non_finite: NonFinite,
}

/// The constructor of any [`TensorRule`], for a registry line.
pub fn build_tensor<R: TensorRule>(spec: &OptimSpec, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
    Ok(Box::new(TensorEngine::new(R::from_spec(spec)?, params)?))
}

impl<R: TensorRule> TensorEngine<R> {
    /// An optimizer with one parameter group.
    pub fn new(rule: R, params: Vec<Param>) -> Result<Self> {
        R::from_spec(&rule.to_spec())?;
        check_unique_params(&params, std::iter::empty())?;
        check_float(&params)?;
        for p in &params {
            rule.buffers(&p.dims())?;
        }
        Ok(Self {
            groups: vec![TGroup { rule, params }],
            state: HashMap::new(),
            path: KernelPath::Auto,
            non_finite: NonFinite::Error,
        })
    }

    /// The first group's hyperparameters.
    pub fn rule(&self) -> &R {
        &self.groups[0].rule
    }

    fn fresh(rule: &R, p: &Tensor) -> Result<Vec<Tensor>> {
        rule.buffers(p.dims())?
            .into_iter()
            .map(|(_, dims)| Ok(Tensor::zeros(dims, p.dtype(), p.device())?))
            .collect()
    }
}

impl<R: TensorRule> Optimizer for TensorEngine<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }
    fn spec(&self) -> OptimSpec {
        self.groups[0].rule.to_spec()
    }
    fn group_spec(&self, group: usize) -> Option<OptimSpec> {
        self.groups.get(group).map(|g| g.rule.to_spec())
    }
    fn params(&self) -> Vec<Param> {
        self.groups.iter().flat_map(|g| g.params.iter().cloned()).collect()
    }

    fn step(&mut self, grads: &Grads) -> Result<StepOutcome> {
        if self.path == KernelPath::Fused {
            return Err(Error::InvalidArgument(format!(
                "`{}` reduces over whole tensors and has no fused kernel: use the composed path",
                R::NAME
            )));
        }
        // Check every gradient, then compute every update into new tensors; store only then.
        let mut staged = Vec::new();
        for group in &self.groups {
            for p in &group.params {
                let Some(g) = grads.get(p) else { continue };
                let v = p.value();
                if g.dims() != v.dims() || g.dtype() != v.dtype() || !g.device().same_device(v.device()) {
                    return Err(Error::GradientMismatch {
                        param: p.name().to_string(),
                        msg: format!(
                            "gradient is {:?} {:?}, parameter is {:?} {:?}",
                            g.dtype(),
                            g.dims(),
                            v.dtype(),
                            v.dims()
                        ),
                    });
                }
                if self.non_finite != NonFinite::Unchecked && !kernels::all_finite(g)? {
                    let param = p.name().to_string();
                    return match self.non_finite {
                        NonFinite::Error => Err(Error::NonFiniteGradient { param }),
                        _ => Ok(StepOutcome::Skipped { param }),
                    };
                }
                staged.push((group, p, g.clone()));
            }
        }
        let mut out = Vec::with_capacity(staged.len());
        for (group, p, g) in staged {
            let value = p.value();
            let (step, mut buffers) = match self.state.get(&p.id()) {
                Some(st) => (st.step + 1, st.buffers.clone()),
                None => (1, Self::fresh(&group.rule, &value)?),
            };
            let new = group.rule.update(step, &value, &g, &mut buffers)?;
            if new.dims() != value.dims() || new.dtype() != value.dtype() {
                return Err(Error::InvalidArgument(format!(
                    "`{}`'s update changed the shape or dtype of `{}`",
                    R::NAME,
                    p.name()
                )));
            }
            out.push((p.clone(), new, TState { step, buffers }));
        }
        for (p, new, st) in out {
            p.set(new)?;
            self.state.insert(p.id(), st);
        }
        Ok(StepOutcome::Applied)
    }

    fn learning_rate(&self) -> f64 {
        self.groups[0].rule.lr()
    }
    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        valid_lr(R::NAME, lr)?;
        for g in &mut self.groups {
            g.rule.set_lr(lr);
        }
        Ok(())
    }
    fn num_groups(&self) -> usize {
        self.groups.len()
    }
    fn group_learning_rate(&self, group: usize) -> Option<f64> {
        self.groups.get(group).map(|g| g.rule.lr())
    }
    fn set_group_learning_rate(&mut self, group: usize, lr: f64) -> Result<()> {
        valid_lr(R::NAME, lr)?;
        group_mut(&mut self.groups, group)?.rule.set_lr(lr);
        Ok(())
    }
    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        let g = group_mut(&mut self.groups, group)?;
        g.rule = R::from_spec(&g.rule.to_spec().with_option(key, value)?)?;
        Ok(())
    }
    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        let rule = R::from_spec(&self.spec().with_overrides(options, &[])?)?;
        check_unique_params(&params, self.groups.iter().flat_map(|g| g.params.iter()))?;
        check_float(&params)?;
        for p in &params {
            rule.buffers(&p.dims())?;
        }
        self.groups.push(TGroup { rule, params });
        Ok(())
    }
    fn step_count(&self, param: &Param) -> Option<u64> {
        self.state.get(&param.id()).map(|st| st.step)
    }
    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>> {
        let Some(group) = self.groups.iter().find(|g| g.params.iter().any(|p| p.id() == param.id())) else {
            return Ok(None);
        };
        let Some(st) = self.state.get(&param.id()) else { return Ok(None) };
        let names = group.rule.buffers(&param.dims())?;
        Ok(names
            .iter()
            .position(|(n, _)| *n == name)
            .and_then(|i| st.buffers.get(i))
            .map(Tensor::copy)
            .transpose()?)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn export_state(&self) -> Result<OptimState> {
        let mut out = OptimState {
            groups: self.groups.iter().map(|g| g.rule.to_spec().to_string()).collect(),
            scalars: BTreeMap::new(),
            tensors: Vec::new(),
        };
        for (gi, group) in self.groups.iter().enumerate() {
            out.scalars.insert(format!("group.{gi}.lr"), group.rule.lr());
            for p in &group.params {
                let Some(st) = self.state.get(&p.id()) else { continue };
                out.scalars.insert(format!("{}.step", p.name()), st.step as f64);
                for ((name, _), t) in group.rule.buffers(&p.dims())?.iter().zip(&st.buffers) {
                    out.tensors.push((format!("{}.{name}", p.name()), t.copy()?));
                }
            }
        }
        Ok(out)
    }
    fn import_state(&mut self, saved: &OptimState) -> Result<()> {
        if saved.groups.len() != self.groups.len() {
            return Err(Error::State(format!(
                "it was saved with {} parameter group(s), this optimizer has {}",
                saved.groups.len(),
                self.groups.len()
            )));
        }
        let mut scalars: HashMap<&str, f64> = saved.scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mut rules = Vec::new();
        for (gi, text) in saved.groups.iter().enumerate() {
            let spec = OptimSpec::parse(text)?;
            if spec.name != R::NAME {
                return Err(Error::State(format!(
                    "it was saved by optimizer `{}` and this one is `{}`",
                    spec.name,
                    R::NAME
                )));
            }
            let mut rule = R::from_spec(&spec).map_err(|e| Error::State(format!("group {gi}: {e}")))?;
            if let Some(lr) = scalars.remove(format!("group.{gi}.lr").as_str()) {
                valid_lr(R::NAME, lr).map_err(|e| Error::State(format!("group {gi}: {e}")))?;
                rule.set_lr(lr);
            }
            rules.push(rule);
        }
        let mut tensors: HashMap<&str, &Tensor> =
            saved.tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let mut new_state = HashMap::new();
        for (group, rule) in self.groups.iter().zip(&rules) {
            for p in &group.params {
                let Some(step) = scalars.remove(format!("{}.step", p.name()).as_str()) else { continue };
                if !(step >= 1.0 && step.fract() == 0.0 && step < u64::MAX as f64) {
                    return Err(Error::State(format!("`{}.step` = {step} is not a step count", p.name())));
                }
                let value = p.value();
                let mut bufs = Vec::new();
                for (name, dims) in rule.buffers(value.dims())? {
                    let key = format!("{}.{name}", p.name());
                    let t = tensors.remove(key.as_str()).ok_or_else(|| {
                        Error::State(format!(
                            "buffer `{key}` is missing (options {} need it)",
                            rule.to_spec()
                        ))
                    })?;
                    if t.dims() != dims.as_slice() || t.dtype() != value.dtype() {
                        return Err(Error::State(format!(
                            "`{key}` is {:?} {:?}, the optimizer needs {:?} {dims:?}",
                            t.dtype(),
                            t.dims(),
                            value.dtype()
                        )));
                    }
                    bufs.push(t.to_device(value.device())?.copy()?);
                }
                new_state.insert(p.id(), TState { step: step as u64, buffers: bufs });
            }
        }
        if let Some(key) = tensors.keys().next() {
            return Err(Error::State(format!(
                "unexpected entry `{key}`: no parameter or buffer of this optimizer has that name"
            )));
        }
        if let Some(key) = scalars.keys().next() {
            return Err(Error::State(format!("unexpected scalar `{key}`")));
        }
        for (group, rule) in self.groups.iter_mut().zip(rules) {
            group.rule = rule;
        }
        self.state = new_state;
        Ok(())
    }
    fn reset_state(&mut self) {
        self.state.clear();
    }
    fn set_kernel_path(&mut self, path: KernelPath) {
        self.path = path;
    }
    fn set_non_finite(&mut self, policy: NonFinite) {
        self.non_finite = policy;
    }
}

/// `‖t‖₂` as an f64 (a reduction on the tensor's device, then one number to the host).
pub fn norm(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt())
}
