//! The engine of the learning-rate-free optimizers ([`crate::Prodigy`], [`crate::DAdaptAdam`]):
//! their step estimates one distance `d` from sums over every parameter of every group, so a
//! rule ([`DRule`]) writes the whole step over all parameters at once, as its reference does, and
//! [`DEngine`] keeps the groups, the state, the checks and the checkpoints.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use candle_core::Tensor;
use taper_autograd::{Grads, Param, ParamId};

use crate::rule::{check_float, check_grad, check_unique_params, group_mut, valid_lr, Buffer, Init};
use crate::spec::OptimSpec;
use crate::{kernels, Error, NonFinite, OptimHyper, OptimState, Optimizer, Result, Setting, StepOutcome};

/// One parameter's part in a step: its value, gradient and state buffers (updated in place by
/// the rule), and the new value the rule computes.
pub struct Item {
    /// The parameter's group.
    pub group: usize,
    /// The value before the step.
    pub value: Tensor,
    /// The gradient.
    pub grad: Tensor,
    /// The state buffers, in [`DRule::buffers`]'s order (fresh ones at their start).
    pub buffers: Vec<Tensor>,
    /// The new value, if the step moves the parameter.
    pub next: Option<Tensor>,
    /// Whether the buffers were just created (the parameter's first step).
    pub fresh: bool,
}

/// A learning-rate-free rule: hyperparameters per group (the options that set the distance
/// estimate are read from the first group, as the references do), per-parameter buffers, global
/// scalars, and the whole step.
pub trait DRule: OptimHyper + Clone + fmt::Debug + Send + Sync + 'static {
    /// The per-parameter state buffers, as a parameter of `len` elements keeps them.
    fn buffers(&self, len: usize) -> Vec<Buffer>;
    /// The global scalars (`d`, ...) and where they start.
    fn globals(&self) -> Vec<(&'static str, f64)>;
    /// One step over every parameter with a gradient: updates `globals` and each item's buffers,
    /// and sets each item's `next` where the parameters move (a step that finds no signal moves
    /// nothing, as the reference returns early).
    fn step(groups: &[Self], globals: &mut [f64], items: &mut [Item]) -> Result<()>;
}

/// The bookkeeping around a [`DRule`]: the optimizer.
#[derive(Debug, Clone)]
pub struct DEngine<R: DRule> {
    groups: Vec<(R, Vec<Param>)>,
    globals: Vec<f64>,
    /// Per parameter: the steps taken and the buffers.
    state: HashMap<ParamId, (u64, Vec<Tensor>)>,
    non_finite: NonFinite,
}

fn check<R: DRule>(rule: &R) -> Result<()> {
    rule.validate()?;
    if rule.transforms().cautious {
        return Err(Error::InvalidArgument(format!("`{}` has no cautious form", R::NAME)));
    }
    Ok(())
}

impl<R: DRule> DEngine<R> {
    /// The optimizer over `params` with one group.
    pub fn new(rule: R, params: Vec<Param>) -> Result<Self> {
        check(&rule)?;
        check_unique_params(&params, std::iter::empty())?;
        check_float(&params)?;
        let globals = rule.globals().into_iter().map(|(_, x)| x).collect();
        Ok(Self {
            groups: vec![(rule, params)],
            globals,
            state: HashMap::new(),
            non_finite: NonFinite::Error,
        })
    }

    /// The constructor the registry holds.
    pub fn build(spec: &OptimSpec, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
        Ok(Box::new(Self::new(R::from_spec(spec)?, params)?))
    }

    /// A global scalar by name (`d`).
    pub fn global(&self, name: &str) -> Option<f64> {
        let names = self.groups[0].0.globals();
        names.iter().position(|(n, _)| *n == name).map(|i| self.globals[i])
    }

    fn fresh(rule: &R, p: &Tensor) -> Result<Vec<Tensor>> {
        rule.buffers(p.elem_count())
            .iter()
            .map(|b| match (b.init, &b.dims) {
                (Init::Param, _) => Ok(p.flatten_all()?.copy()?),
                (Init::Value(x), Some(d)) => {
                    Ok(Tensor::zeros(d.as_slice(), p.dtype(), p.device())?.affine(0.0, x)?)
                }
                (Init::Value(x), None) => Ok(p.zeros_like()?.affine(0.0, x)?),
            })
            .collect()
    }
}

impl<R: DRule> Optimizer for DEngine<R> {
    fn group_spec(&self, group: usize) -> Option<OptimSpec> {
        self.groups.get(group).map(|(r, _)| r.to_spec())
    }

    fn params(&self) -> Vec<Param> {
        self.groups.iter().flat_map(|(_, ps)| ps.iter().cloned()).collect()
    }

    fn step(&mut self, grads: &Grads) -> Result<StepOutcome> {
        // Plan: every gradient checked before anything is computed.
        let mut items = Vec::new();
        let mut ids = Vec::new();
        for (gi, (rule, params)) in self.groups.iter().enumerate() {
            for p in params {
                let Some(g) = grads.get(p) else { continue };
                let v = p.value();
                check_grad(p, &v, g)?;
                if self.non_finite != NonFinite::Unchecked && !kernels::all_finite(g)? {
                    let param = p.name().to_string();
                    return match self.non_finite {
                        NonFinite::Error => Err(Error::NonFiniteGradient { param }),
                        _ => Ok(StepOutcome::Skipped { param }),
                    };
                }
                let (buffers, fresh) = match self.state.get(&p.id()) {
                    Some((_, b)) => (b.clone(), false),
                    None => (Self::fresh(rule, &v)?, true),
                };
                items.push(Item { group: gi, value: v, grad: g.clone(), buffers, next: None, fresh });
                ids.push(p.clone());
            }
        }
        // Stage: the whole step on copies (tensor ops make new tensors).
        let rules: Vec<R> = self.groups.iter().map(|(r, _)| r.clone()).collect();
        let mut globals = self.globals.clone();
        R::step(&rules, &mut globals, &mut items)?;
        // Commit.
        for (p, item) in ids.iter().zip(items) {
            let moved = item.next.is_some();
            if let Some(next) = item.next {
                p.set(next)?;
            }
            let entry = self.state.entry(p.id()).or_insert((0, Vec::new()));
            entry.0 += u64::from(moved);
            entry.1 = item.buffers;
        }
        self.globals = globals;
        Ok(StepOutcome::Applied)
    }

    fn group_option(&self, group: usize, key: &str) -> Option<f64> {
        let (r, _) = self.groups.get(group)?;
        if key == "lr" {
            return Some(r.lr());
        }
        r.get(key).or_else(|| self.global(key))
    }

    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        let (r, _) = group_mut(&mut self.groups, group)?;
        if key == "lr" {
            valid_lr(R::NAME, value)?;
            r.set_lr(value);
            return Ok(());
        }
        let mut next = r.clone();
        next.set(key, value)?;
        check(&next)?;
        *r = next;
        Ok(())
    }

    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        let rule = self.groups[0].0.with_overrides(options)?;
        check(&rule)?;
        check_unique_params(&params, self.groups.iter().flat_map(|(_, ps)| ps.iter()))?;
        check_float(&params)?;
        self.groups.push((rule, params));
        Ok(())
    }

    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>> {
        let Some((rule, _)) = self.groups.iter().find(|(_, ps)| ps.iter().any(|p| p.id() == param.id()))
        else {
            return Ok(None);
        };
        let Some((step, bufs)) = self.state.get(&param.id()) else { return Ok(None) };
        if name == "step" {
            return Ok(Some(Tensor::new(*step as f64, param.value().device())?));
        }
        let specs = rule.buffers(param.value().elem_count());
        Ok(specs.iter().position(|b| b.name == name).map(|i| bufs[i].copy()).transpose()?)
    }

    fn export_state(&self) -> Result<OptimState> {
        let mut out = OptimState {
            groups: self.groups.iter().map(|(r, _)| r.to_spec().to_string()).collect(),
            scalars: BTreeMap::new(),
            tensors: Vec::new(),
        };
        for ((name, _), x) in self.groups[0].0.globals().iter().zip(&self.globals) {
            out.scalars.insert(format!("{}.{name}", R::NAME), *x);
        }
        for (gi, (rule, params)) in self.groups.iter().enumerate() {
            out.scalars.insert(format!("group.{gi}.lr"), rule.lr());
            for p in params {
                let Some((step, bufs)) = self.state.get(&p.id()) else { continue };
                out.scalars.insert(format!("{}.step", p.name()), *step as f64);
                for (spec, t) in rule.buffers(p.value().elem_count()).iter().zip(bufs) {
                    out.tensors.push((format!("{}.{}", p.name(), spec.name), t.copy()?));
                }
            }
        }
        Ok(out)
    }

    fn import_state(&mut self, saved: &OptimState) -> Result<()> {
        crate::rule::check_group_count(saved, self.groups.len())?;
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
        let mut globals = Vec::new();
        for (name, start) in rules[0].globals() {
            let key = format!("{}.{name}", R::NAME);
            match scalars.remove(key.as_str()) {
                Some(x) if !x.is_nan() => globals.push(x),
                Some(x) => return Err(Error::State(format!("`{key}` = {x} is not a number"))),
                None => globals.push(start),
            }
        }
        let mut tensors: HashMap<&str, &Tensor> =
            saved.tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let mut state = HashMap::new();
        for ((_, params), rule) in self.groups.iter().zip(&rules) {
            for p in params {
                let Some(step) = scalars.remove(format!("{}.step", p.name()).as_str()) else { continue };
                if !(step >= 0.0 && step.fract() == 0.0 && step < 9.0e15) {
                    return Err(Error::State(format!("`{}.step` = {step} is not a step count", p.name())));
                }
                let v = p.value();
                let mut bufs = Vec::new();
                for (spec, fresh) in rule.buffers(v.elem_count()).iter().zip(Self::fresh(rule, &v)?) {
                    let key = format!("{}.{}", p.name(), spec.name);
                    let t = tensors
                        .remove(key.as_str())
                        .ok_or_else(|| Error::State(format!("buffer `{key}` is missing")))?;
                    if t.dims() != fresh.dims() || t.dtype() != v.dtype() {
                        return Err(Error::State(format!(
                            "`{key}` is {:?} {:?}, the optimizer needs {:?} {:?}",
                            t.dtype(),
                            t.dims(),
                            v.dtype(),
                            fresh.dims()
                        )));
                    }
                    bufs.push(t.to_device(v.device())?.copy()?);
                }
                state.insert(p.id(), (step as u64, bufs));
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
        for ((r, _), rule) in self.groups.iter_mut().zip(rules) {
            *r = rule;
        }
        self.globals = globals;
        self.state = state;
        Ok(())
    }

    fn configure(&mut self, setting: Setting) -> Result<()> {
        match setting {
            Setting::NonFinite(policy) => self.non_finite = policy,
            Setting::Path(crate::KernelPath::Fused) => {
                return Err(Error::InvalidArgument(format!(
                    "`{}` reduces over every parameter and has no fused kernel: use the composed path",
                    R::NAME
                )))
            }
            Setting::Path(_) | Setting::Train(_) => {}
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The learning rate of a step: the largest group's; every other group's must equal it or be 0
/// (the references refuse the rest).
pub(crate) fn common_lr<R: DRule>(groups: &[R]) -> Result<f64> {
    let lr = groups.iter().map(|g| g.lr()).fold(0.0, f64::max);
    match groups.iter().find(|g| g.lr() != lr && g.lr() != 0.0) {
        Some(g) => Err(Error::InvalidArgument(format!(
            "{}: group learning rates must be equal or 0, got {} and {lr}",
            R::NAME,
            g.lr()
        ))),
        None => Ok(lr),
    }
}

/// Adam's bias correction `√(1 - β2ᵏ⁺¹)/(1 - β1ᵏ⁺¹)` on the step size, or 1.
pub(crate) fn bias_correction(on: bool, beta1: f64, beta2: f64, k: f64) -> f64 {
    if on {
        (1.0 - beta2.powf(k + 1.0)).powf(0.5) / (1.0 - beta1.powf(k + 1.0))
    } else {
        1.0
    }
}

/// `Σ a·b` over two tensors, as an f64 (PyTorch's `torch.dot(...).item()`), summed in f64: the
/// estimate of `d` divides such sums, and an f32 sum's rounding would be what it measures.
pub(crate) fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    let f = |t: &Tensor| t.flatten_all()?.to_dtype(candle_core::DType::F64);
    Ok((f(a)? * f(b)?)?.sum_all()?.to_scalar::<f64>()?)
}

/// `Σ |a|`, as an f64 (summed in f64).
pub(crate) fn l1(a: &Tensor) -> Result<f64> {
    Ok(a.to_dtype(candle_core::DType::F64)?.abs()?.sum_all()?.to_scalar::<f64>()?)
}
