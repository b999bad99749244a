//! What one optimizer is ([`Rule`]: hyperparameters, state buffers, the update written once) apart
//! from the bookkeeping every optimizer shares ([`Engine`]: parameter groups, lazily created
//! state, finite checks, choosing the fused or composed path, saving and loading state).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use candle_core::{DType, Device, Tensor};
use taper_autograd::{Grads, Param, ParamId};

use crate::elem::Elem;
use crate::kernels;
use crate::spec::{OptimSpec, Options, Value};
use crate::{Error, KernelPath, NonFinite, OptimState, Optimizer, Result, StepOutcome};

/// One optimizer's definition: its hyperparameters (the implementing struct, with PyTorch's
/// defaults), the state it keeps per parameter, and its update, written once over [`Elem`] so
/// that the fused CPU kernel and the composed any-device path compute the same formula.
pub trait Rule: Clone + Send + Sync + fmt::Debug + 'static {
    /// The registry name (`rmsprop`).
    const NAME: &'static str;
    /// Per-step scalars derived from the step count (bias corrections, decayed learning rate).
    type Coeffs: Copy + Send + Sync;

    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (already validated as finite and ≥ 0).
    fn set_lr(&mut self, lr: f64);
    /// Names of the per-parameter state buffers these options need, in the order `update` gets
    /// them (PyTorch's names: `square_avg`, `momentum_buffer`, ...).
    fn buffers(&self) -> Vec<&'static str>;
    /// The value a buffer starts at (Adagrad's `initial_accumulator_value`); 0 by default.
    fn initial_value(&self, _buffer: &str) -> f64 {
        0.0
    }
    /// The per-step scalars for step `step` (counted from 1).
    fn coeffs(&self, step: u64) -> Self::Coeffs;
    /// The update of one parameter `p` given its gradient `g` and its state buffers `s`.
    fn update<E: Elem>(
        &self,
        c: &Self::Coeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err>;
    /// Reads and validates the options of a spec (PyTorch's names and defaults).
    fn from_options(o: &mut Options) -> Result<Self>;
    /// Every option, for the canonical spec string.
    fn to_options(&self) -> Vec<(&'static str, Value)>;
    /// Other names accepted for options, as `(alias, key)` (RMSprop: `gamma` for `alpha`).
    fn aliases() -> &'static [(&'static str, &'static str)] {
        &[]
    }

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

    /// Checks hyperparameters set directly on the struct, with the same ranges as the spec.
    fn validate(&self) -> Result<()> {
        Self::from_spec(&self.to_spec()).map(|_| ())
    }
}

/// A parameter's state buffers: on the host for the fused CPU kernel, or as tensors for the
/// composed path.
#[derive(Debug, Clone)]
enum Buffers {
    F32(Vec<Vec<f32>>),
    F64(Vec<Vec<f64>>),
    Tensors(Vec<Tensor>),
}

#[derive(Debug, Clone)]
struct ParamState {
    step: u64,
    buffers: Buffers,
}

#[derive(Debug, Clone)]
struct Group<R> {
    rule: R,
    params: Vec<Param>,
}

/// The shared bookkeeping around a [`Rule`]; `Engine<R>` is the [`Optimizer`].
#[derive(Debug, Clone)]
pub struct Engine<R: Rule> {
    groups: Vec<Group<R>>,
    state: HashMap<ParamId, ParamState>,
    path: KernelPath,
    non_finite: NonFinite,
}

fn fused_capable(p: &Tensor) -> bool {
    p.device().is_cpu() && p.is_contiguous() && matches!(p.dtype(), DType::F32 | DType::F64)
}

impl<R: Rule> Engine<R> {
    /// An optimizer with one parameter group.
    pub fn new(rule: R, params: Vec<Param>) -> Result<Self> {
        rule.validate()?;
        check_unique::<R>(&params, &[])?;
        Ok(Self {
            groups: vec![Group { rule, params }],
            state: HashMap::new(),
            path: KernelPath::Auto,
            non_finite: NonFinite::Error,
        })
    }

    /// The first group's hyperparameters.
    pub fn rule(&self) -> &R {
        &self.groups[0].rule
    }

    fn uses_fused(&self, p: &Tensor) -> Result<bool> {
        match self.path {
            KernelPath::Auto => Ok(fused_capable(p)),
            KernelPath::Composed => Ok(false),
            KernelPath::Fused if fused_capable(p) => Ok(true),
            KernelPath::Fused => Err(Error::InvalidArgument(format!(
                "the fused kernel needs a contiguous f32/f64 parameter on the CPU, got {:?} on {:?}",
                p.dtype(),
                p.device().location()
            ))),
        }
    }

    fn fresh_buffers(rule: &R, p: &Tensor, fused: bool) -> Result<Buffers> {
        let n = p.elem_count();
        let names = rule.buffers();
        Ok(match (fused, p.dtype()) {
            (true, DType::F32) => {
                Buffers::F32(names.iter().map(|b| vec![rule.initial_value(b) as f32; n]).collect())
            }
            (true, _) => Buffers::F64(names.iter().map(|b| vec![rule.initial_value(b); n]).collect()),
            (false, _) => Buffers::Tensors(
                names
                    .iter()
                    .map(|b| Ok(p.zeros_like()?.affine(0.0, rule.initial_value(b))?))
                    .collect::<Result<_>>()?,
            ),
        })
    }

    /// Checks every gradient before touching any parameter, so a bad one leaves all unchanged.
    fn check_grads(&self, grads: &Grads) -> Result<Option<String>> {
        for group in &self.groups {
            for p in &group.params {
                let Some(g) = grads.get(p) else { continue };
                let v = p.value();
                if g.dims() != v.dims() || g.dtype() != v.dtype() {
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
                    return Ok(Some(p.name().to_string()));
                }
            }
        }
        Ok(None)
    }
}

fn check_unique<R: Rule>(new: &[Param], existing: &[&Group<R>]) -> Result<()> {
    let mut seen: HashMap<ParamId, &str> = HashMap::new();
    for p in existing.iter().flat_map(|g| g.params.iter()).chain(new) {
        if let Some(name) = seen.insert(p.id(), p.name()) {
            return Err(Error::InvalidArgument(format!("parameter `{name}` appears in more than one place")));
        }
    }
    Ok(())
}

fn to_host<T: candle_core::WithDType>(t: &Tensor) -> Result<Vec<T>> {
    Ok(t.flatten_all()?.to_vec1::<T>()?)
}

fn convert(buffers: Buffers, p: &Tensor, fused: bool) -> Result<Buffers> {
    Ok(match (buffers, fused) {
        (b @ (Buffers::F32(_) | Buffers::F64(_)), true) | (b @ Buffers::Tensors(_), false) => b,
        (Buffers::Tensors(ts), true) => match p.dtype() {
            DType::F32 => Buffers::F32(ts.iter().map(to_host::<f32>).collect::<Result<_>>()?),
            _ => Buffers::F64(ts.iter().map(to_host::<f64>).collect::<Result<_>>()?),
        },
        (host, false) => Buffers::Tensors(host_tensors(&host, p.dims(), p.device())?),
    })
}

fn host_tensors(b: &Buffers, dims: &[usize], device: &Device) -> Result<Vec<Tensor>> {
    Ok(match b {
        Buffers::F32(v) => {
            v.iter().map(|x| Tensor::from_slice(x, dims, device)).collect::<candle_core::Result<_>>()?
        }
        Buffers::F64(v) => {
            v.iter().map(|x| Tensor::from_slice(x, dims, device)).collect::<candle_core::Result<_>>()?
        }
        Buffers::Tensors(ts) => ts.iter().map(|t| t.copy()).collect::<candle_core::Result<_>>()?,
    })
}

impl<R: Rule> Optimizer for Engine<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn spec(&self) -> OptimSpec {
        self.groups[0].rule.to_spec()
    }

    fn params(&self) -> Vec<Param> {
        self.groups.iter().flat_map(|g| g.params.iter().cloned()).collect()
    }

    fn step(&mut self, grads: &Grads) -> Result<StepOutcome> {
        if let Some(param) = self.check_grads(grads)? {
            return match self.non_finite {
                NonFinite::Error => Err(Error::NonFiniteGradient { param }),
                NonFinite::Skip | NonFinite::Unchecked => Ok(StepOutcome::Skipped { param }),
            };
        }
        for gi in 0..self.groups.len() {
            for pi in 0..self.groups[gi].params.len() {
                let param = self.groups[gi].params[pi].clone();
                let Some(g) = grads.get(&param) else { continue };
                let value = param.value();
                let fused = self.uses_fused(&value)?;
                let rule = &self.groups[gi].rule;
                let mut st = match self.state.remove(&param.id()) {
                    Some(st) => ParamState { step: st.step, buffers: convert(st.buffers, &value, fused)? },
                    None => ParamState { step: 0, buffers: Self::fresh_buffers(rule, &value, fused)? },
                };
                st.step += 1;
                let c = rule.coeffs(st.step);
                match &mut st.buffers {
                    Buffers::Tensors(s) => {
                        let mut p = value;
                        rule.update(&c, &mut p, g, s)?;
                        param.set(p)?;
                    }
                    Buffers::F32(s) => {
                        kernels::fused_step(rule, &c, &value, &g.contiguous()?, kernels::HostMut::F32(s))?
                    }
                    Buffers::F64(s) => {
                        kernels::fused_step(rule, &c, &value, &g.contiguous()?, kernels::HostMut::F64(s))?
                    }
                }
                self.state.insert(param.id(), st);
            }
        }
        Ok(StepOutcome::Applied)
    }

    fn learning_rate(&self) -> f64 {
        self.groups[0].rule.lr()
    }

    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        for i in 0..self.groups.len() {
            self.set_group_learning_rate(i, lr)?;
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
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::InvalidValue {
                optimizer: R::NAME,
                key: "lr".into(),
                value: lr.to_string(),
                allowed: "must be finite and >= 0".into(),
            });
        }
        let n = self.groups.len();
        let g = self
            .groups
            .get_mut(group)
            .ok_or_else(|| Error::InvalidArgument(format!("no parameter group {group} (there are {n})")))?;
        g.rule.set_lr(lr);
        Ok(())
    }

    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        // The group's own options override the first group's.
        let mut spec = self.spec();
        let extra = OptimSpec::parse(&format!("{}:{options}", R::NAME))?;
        for (k, v) in extra.options {
            let key = R::aliases()
                .iter()
                .find(|(alias, _)| *alias == k)
                .map_or(k.clone(), |(_, key)| key.to_string());
            match spec.options.iter_mut().find(|(sk, _)| *sk == key) {
                Some(slot) => slot.1 = v,
                None => spec.options.push((key, v)),
            }
        }
        let rule = R::from_spec(&spec)?;
        let existing: Vec<&Group<R>> = self.groups.iter().collect();
        check_unique(&params, &existing)?;
        self.groups.push(Group { rule, params });
        Ok(())
    }

    fn export_state(&self) -> Result<OptimState> {
        let mut out =
            OptimState { spec: self.spec().to_string(), scalars: BTreeMap::new(), tensors: Vec::new() };
        for (gi, group) in self.groups.iter().enumerate() {
            out.scalars.insert(format!("group.{gi}.lr"), group.rule.lr());
            let names = group.rule.buffers();
            for p in &group.params {
                let Some(st) = self.state.get(&p.id()) else { continue };
                out.scalars.insert(format!("{}.step", p.name()), st.step as f64);
                let value = p.value();
                for (name, t) in names.iter().zip(host_tensors(&st.buffers, value.dims(), value.device())?) {
                    out.tensors.push((format!("{}.{name}", p.name()), t));
                }
            }
        }
        Ok(out)
    }

    fn import_state(&mut self, saved: &OptimState) -> Result<()> {
        let saved_spec = OptimSpec::parse(&saved.spec)?;
        if saved_spec.name != R::NAME {
            return Err(Error::State(format!(
                "it was saved by optimizer `{}` and this one is `{}`",
                saved_spec.name,
                R::NAME
            )));
        }
        let mut tensors: HashMap<&str, &Tensor> =
            saved.tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let mut scalars: HashMap<&str, f64> = saved.scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mut new_state = HashMap::new();
        let mut lrs = Vec::new();
        for (gi, group) in self.groups.iter().enumerate() {
            lrs.push(scalars.remove(format!("group.{gi}.lr").as_str()));
            let names = group.rule.buffers();
            for p in &group.params {
                let Some(step) = scalars.remove(format!("{}.step", p.name()).as_str()) else { continue };
                if !(step >= 1.0 && step.fract() == 0.0) {
                    return Err(Error::State(format!("`{}.step` = {step} is not a step count", p.name())));
                }
                let value = p.value();
                let mut bufs = Vec::new();
                for name in &names {
                    let key = format!("{}.{name}", p.name());
                    let t = tensors.remove(key.as_str()).ok_or_else(|| {
                        Error::State(format!(
                            "buffer `{key}` is missing (options {} need it)",
                            group.rule.to_spec()
                        ))
                    })?;
                    if t.dims() != value.dims() || t.dtype() != value.dtype() {
                        return Err(Error::State(format!(
                            "`{key}` is {:?} {:?}, the parameter is {:?} {:?}",
                            t.dtype(),
                            t.dims(),
                            value.dtype(),
                            value.dims()
                        )));
                    }
                    bufs.push(t.to_device(value.device())?.copy()?);
                }
                let fused = self.uses_fused(&value)?;
                let buffers = convert(Buffers::Tensors(bufs), &value, fused)?;
                new_state.insert(p.id(), ParamState { step: step as u64, buffers });
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
        for (gi, lr) in lrs.into_iter().enumerate() {
            if let Some(lr) = lr {
                self.set_group_learning_rate(gi, lr)?;
            }
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
