//! What one optimizer is ([`Rule`]: hyperparameters, state buffers, the update written once) apart
//! from the bookkeeping every optimizer shares ([`Engine`]: parameter groups, lazily created
//! state, finite checks, choosing the fused or composed path, saving and loading state).

use std::any::Any;
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
    /// Whether a buffer starts as a copy of the parameter (Schedule-Free's `z`) rather than at
    /// [`Rule::initial_value`].
    fn starts_as_param(&self, _buffer: &str) -> bool {
        false
    }
    /// Rules whose parameter holds a different point in training than in evaluation
    /// (Schedule-Free: `y` while training, the average `x` for evaluation): switching to
    /// training (`true`) or evaluation moves every parameter to `lerp(p, buffer, w)`, given as
    /// `(buffer, w)`. `None` (the default): one point for both.
    fn switch(&self, _to_train: bool) -> Option<(&'static str, f64)> {
        None
    }
    /// Names of per-parameter scalar state that a step advances and the step count alone cannot
    /// give back, in the order [`Rule::advance`] gets them (NAdam's `mu_product`, ASGD's `eta`
    /// and `mu`); saved as `{param}.{name}`. None by default.
    fn scalars(&self) -> &'static [&'static str] {
        &[]
    }
    /// The value a scalar starts at, before the first step.
    fn initial_scalar(&self, _name: &str) -> f64 {
        0.0
    }
    /// The per-step scalars for step `step` of a parameter whose scalar state is `scalars`
    /// (one value per [`Rule::scalars`] name), advancing that state. Rules without scalar state
    /// keep the default, [`Rule::coeffs`].
    fn advance(&self, step: u64, _scalars: &mut [f64]) -> Self::Coeffs {
        self.coeffs(step)
    }
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

impl Buffers {
    /// Whether these are host buffers the fused kernel can update in place for a parameter of
    /// `dtype` with `len` elements, `count` buffers.
    fn fit_fused(&self, dtype: DType, len: usize, count: usize) -> bool {
        match (self, dtype) {
            (Buffers::F32(v), DType::F32) => v.len() == count && v.iter().all(|b| b.len() == len),
            (Buffers::F64(v), DType::F64) => v.len() == count && v.iter().all(|b| b.len() == len),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct ParamState {
    step: u64,
    buffers: Buffers,
    /// The rule's per-parameter scalar state ([`Rule::scalars`]).
    scalars: Vec<f64>,
}

#[derive(Debug, Clone)]
struct Group<R> {
    rule: R,
    params: Vec<Param>,
}

/// The shared bookkeeping around a [`Rule`]; `Engine<R>` is the [`Optimizer`].
///
/// A step runs in three phases so that a failure changes nothing: *plan* checks every gradient
/// (shape, dtype, device, finiteness) and decides each parameter's path; *stage* does everything
/// else that can fail (state buffers created or converted, the composed path's new values and
/// buffers computed into fresh tensors); *commit* stores the staged values and runs the fused
/// in-place kernels, whose inputs the two phases before have validated.
#[derive(Debug, Clone)]
pub struct Engine<R: Rule> {
    groups: Vec<Group<R>>,
    state: HashMap<ParamId, ParamState>,
    path: KernelPath,
    non_finite: NonFinite,
    /// Training mode (see [`Rule::switch`]); always true for rules without a switch.
    train: bool,
    /// Test hook: the stage phase fails after this many composed updates (a stand-in for a
    /// device error midway, which the CPU cannot produce on demand).
    #[cfg(test)]
    fail_after_composed: Option<usize>,
}

/// Whether the fused kernel can update `p` with `buffers` state buffers.
fn fused_capable(p: &Tensor, buffers: usize) -> bool {
    p.device().is_cpu()
        && p.is_contiguous()
        && matches!(p.dtype(), DType::F32 | DType::F64)
        && buffers <= kernels::MAX_BUFFERS
}

/// Parameters must be floating point: the update rules divide and take roots.
pub(crate) fn check_float(params: &[Param]) -> Result<()> {
    match params.iter().find(|p| !p.dtype().is_float()) {
        Some(p) => Err(Error::InvalidArgument(format!(
            "parameter `{}` is {:?}: optimizers update floating-point parameters only",
            p.name(),
            p.dtype()
        ))),
        None => Ok(()),
    }
}

/// One parameter's update, decided by [`Engine::plan`] before anything changes.
struct Planned {
    group: usize,
    param: Param,
    /// The gradient (contiguous when `fused`).
    grad: Tensor,
    fused: bool,
    /// How many state buffers the group's options keep (counted once per group in the plan).
    buffers: usize,
}

/// What [`Engine::plan`] found.
enum Plan {
    /// Update these parameters.
    Update(Vec<Planned>),
    /// This parameter's gradient holds NaN or Inf.
    NonFinite(String),
}

/// What [`Engine::stage`] computed for one planned parameter.
struct Staged {
    /// The state to store: new, converted, or (composed path) updated. `None`: the fused kernel
    /// updates the existing host buffers in place.
    state: Option<ParamState>,
    /// The composed path's new value.
    value: Option<Tensor>,
}

impl<R: Rule> Engine<R> {
    /// An optimizer with one parameter group.
    pub fn new(rule: R, params: Vec<Param>) -> Result<Self> {
        rule.validate()?;
        check_unique::<R>(&params, &[])?;
        check_float(&params)?;
        Ok(Self {
            groups: vec![Group { rule, params }],
            state: HashMap::new(),
            path: KernelPath::Auto,
            non_finite: NonFinite::Error,
            train: true,
            #[cfg(test)]
            fail_after_composed: None,
        })
    }

    /// The first group's hyperparameters.
    pub fn rule(&self) -> &R {
        &self.groups[0].rule
    }

    /// A group's hyperparameters.
    pub fn group_rule(&self, group: usize) -> Option<&R> {
        self.groups.get(group).map(|g| &g.rule)
    }

    fn uses_fused(&self, p: &Tensor, buffers: usize) -> Result<bool> {
        match self.path {
            KernelPath::Auto => Ok(fused_capable(p, buffers)),
            KernelPath::Composed => Ok(false),
            KernelPath::Fused if fused_capable(p, buffers) => Ok(true),
            KernelPath::Fused => Err(Error::InvalidArgument(format!(
                "the fused kernel needs a contiguous f32/f64 parameter on the CPU and at most {} state \
                 buffers, got {:?} on {:?} with {buffers}",
                kernels::MAX_BUFFERS,
                p.dtype(),
                p.device().location()
            ))),
        }
    }

    fn fresh_buffers(rule: &R, p: &Tensor, fused: bool) -> Result<Buffers> {
        let n = p.elem_count();
        let names = rule.buffers();
        Ok(match (fused, p.dtype()) {
            (true, DType::F32) => Buffers::F32(
                names
                    .iter()
                    .map(|b| {
                        if rule.starts_as_param(b) {
                            host_vec::<f32>(p)
                        } else {
                            Ok(vec![rule.initial_value(b) as f32; n])
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
            (true, _) => Buffers::F64(
                names
                    .iter()
                    .map(|b| {
                        if rule.starts_as_param(b) {
                            host_vec::<f64>(p)
                        } else {
                            Ok(vec![rule.initial_value(b); n])
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
            (false, _) => Buffers::Tensors(
                names
                    .iter()
                    .map(|b| {
                        if rule.starts_as_param(b) {
                            Ok(p.copy()?)
                        } else {
                            Ok(p.zeros_like()?.affine(0.0, rule.initial_value(b))?)
                        }
                    })
                    .collect::<Result<_>>()?,
            ),
        })
    }

    fn fresh_scalars(rule: &R) -> Vec<f64> {
        rule.scalars().iter().map(|name| rule.initial_scalar(name)).collect()
    }

    /// Checks every gradient (shape, dtype, device, finiteness) and decides each parameter's
    /// path, changing nothing.
    fn plan(&self, grads: &Grads) -> Result<Plan> {
        let mut plan = Vec::new();
        for (gi, group) in self.groups.iter().enumerate() {
            let buffers = group.rule.buffers().len();
            for p in &group.params {
                let Some(g) = grads.get(p) else { continue };
                let v = p.value();
                if g.dims() != v.dims() || g.dtype() != v.dtype() || !g.device().same_device(v.device()) {
                    return Err(Error::GradientMismatch {
                        param: p.name().to_string(),
                        msg: format!(
                            "gradient is {:?} {:?} on {:?}, parameter is {:?} {:?} on {:?}",
                            g.dtype(),
                            g.dims(),
                            g.device().location(),
                            v.dtype(),
                            v.dims(),
                            v.device().location()
                        ),
                    });
                }
                if self.non_finite != NonFinite::Unchecked && !kernels::all_finite(g)? {
                    return Ok(Plan::NonFinite(p.name().to_string()));
                }
                let fused = self.uses_fused(&v, buffers)?;
                let grad = if fused { g.contiguous()? } else { g.clone() };
                plan.push(Planned { group: gi, param: p.clone(), grad, fused, buffers });
            }
        }
        Ok(Plan::Update(plan))
    }

    /// Everything of a step that can fail, writing nothing: state buffers in the form each
    /// path needs, and the composed path's updates computed into new tensors.
    fn stage(&self, plan: &[Planned]) -> Result<Vec<Staged>> {
        let mut staged = Vec::with_capacity(plan.len());
        #[cfg(test)]
        let mut composed = 0;
        for item in plan {
            let rule = &self.groups[item.group].rule;
            let value = item.param.value();
            let count = item.buffers;
            let existing = self.state.get(&item.param.id());
            if item.fused {
                let state = match existing {
                    Some(st) if st.buffers.fit_fused(value.dtype(), value.elem_count(), count) => None,
                    Some(st) => Some(ParamState {
                        step: st.step,
                        buffers: to_host(&st.buffers, &value)?,
                        scalars: st.scalars.clone(),
                    }),
                    None => Some(ParamState {
                        step: 0,
                        buffers: Self::fresh_buffers(rule, &value, true)?,
                        scalars: Self::fresh_scalars(rule),
                    }),
                };
                if let Some(st) = &state {
                    if !st.buffers.fit_fused(value.dtype(), value.elem_count(), count) {
                        return Err(Error::State(format!(
                            "`{}`: saved buffers do not fit the fused kernel",
                            item.param.name()
                        )));
                    }
                }
                staged.push(Staged { state, value: None });
                continue;
            }
            let step = existing.map_or(0, |st| st.step) + 1;
            let mut buffers = match existing {
                Some(st) => host_tensors(&st.buffers, value.dims(), value.device())?,
                None => match Self::fresh_buffers(rule, &value, false)? {
                    Buffers::Tensors(ts) => ts,
                    host => host_tensors(&host, value.dims(), value.device())?,
                },
            };
            if buffers.len() != count {
                return Err(Error::State(format!(
                    "`{}` has {} state buffers, the options need {count}",
                    item.param.name(),
                    buffers.len()
                )));
            }
            let mut scalars = existing.map_or_else(|| Self::fresh_scalars(rule), |st| st.scalars.clone());
            let mut p = value.clone();
            rule.update(&rule.advance(step, &mut scalars), &mut p, &item.grad, &mut buffers)?;
            if p.dims() != value.dims() || p.dtype() != value.dtype() {
                return Err(Error::InvalidArgument(format!(
                    "`{}`'s update made a {:?} {:?} value from a {:?} {:?} parameter",
                    R::NAME,
                    p.dtype(),
                    p.dims(),
                    value.dtype(),
                    value.dims()
                )));
            }
            #[cfg(test)]
            {
                composed += 1;
                if self.fail_after_composed.is_some_and(|n| composed > n) {
                    return Err(Error::InvalidArgument("injected failure".into()));
                }
            }
            staged.push(Staged {
                state: Some(ParamState { step, buffers: Buffers::Tensors(buffers), scalars }),
                value: Some(p),
            });
        }
        Ok(staged)
    }

    /// Stores what [`Engine::stage`] computed and runs the fused kernels. The plan and the stage
    /// checked every input of the kernels (contiguous f32/f64 CPU parameter, gradient of its
    /// shape and dtype, host buffers of its length), which are all the ways they can fail.
    fn commit(&mut self, plan: Vec<Planned>, staged: Vec<Staged>) -> Result<()> {
        for (item, st) in plan.into_iter().zip(staged) {
            let id = item.param.id();
            if let Some(value) = st.value {
                item.param.set(value)?;
            }
            if let Some(state) = st.state {
                self.state.insert(id, state);
            }
            if !item.fused {
                continue;
            }
            let rule = &self.groups[item.group].rule;
            let Some(state) = self.state.get_mut(&id) else { continue };
            let c = rule.advance(state.step + 1, &mut state.scalars);
            let value = item.param.value();
            match &mut state.buffers {
                Buffers::F32(s) => {
                    kernels::fused_step(rule, &c, &value, &item.grad, kernels::HostMut::F32(s))?
                }
                Buffers::F64(s) => {
                    kernels::fused_step(rule, &c, &value, &item.grad, kernels::HostMut::F64(s))?
                }
                Buffers::Tensors(_) => continue,
            }
            state.step += 1;
        }
        Ok(())
    }
}

fn check_unique<R: Rule>(new: &[Param], existing: &[&Group<R>]) -> Result<()> {
    check_unique_params(new, existing.iter().flat_map(|g| g.params.iter()))
}

/// No parameter twice, among `existing` and `new`.
pub(crate) fn check_unique_params<'a>(
    new: &'a [Param],
    existing: impl Iterator<Item = &'a Param>,
) -> Result<()> {
    let mut seen: HashMap<ParamId, &str> = HashMap::new();
    for p in existing.chain(new) {
        if let Some(name) = seen.insert(p.id(), p.name()) {
            return Err(Error::InvalidArgument(format!("parameter `{name}` appears in more than one place")));
        }
    }
    Ok(())
}

fn host_vec<T: candle_core::WithDType>(t: &Tensor) -> Result<Vec<T>> {
    Ok(t.flatten_all()?.to_dtype(T::DTYPE)?.to_device(&Device::Cpu)?.to_vec1::<T>()?)
}

/// Buffers as host vectors in `p`'s dtype (for the fused kernel), copied.
fn to_host(b: &Buffers, p: &Tensor) -> Result<Buffers> {
    let ts = host_tensors(b, p.dims(), &Device::Cpu)?;
    Ok(match p.dtype() {
        DType::F32 => Buffers::F32(ts.iter().map(host_vec::<f32>).collect::<Result<_>>()?),
        _ => Buffers::F64(ts.iter().map(host_vec::<f64>).collect::<Result<_>>()?),
    })
}

/// Buffers as tensors of shape `dims` on `device`, copied (host vectors) or shared (tensors:
/// updates make new tensors, so sharing is safe).
fn host_tensors(b: &Buffers, dims: &[usize], device: &Device) -> Result<Vec<Tensor>> {
    Ok(match b {
        Buffers::F32(v) => {
            v.iter().map(|x| Tensor::from_slice(x, dims, device)).collect::<candle_core::Result<_>>()?
        }
        Buffers::F64(v) => {
            v.iter().map(|x| Tensor::from_slice(x, dims, device)).collect::<candle_core::Result<_>>()?
        }
        Buffers::Tensors(ts) => ts.iter().map(|t| t.to_device(device)).collect::<candle_core::Result<_>>()?,
    })
}

/// Group `group` of `groups`, or an error naming how many there are.
pub(crate) fn group_mut<G>(groups: &mut [G], group: usize) -> Result<&mut G> {
    let n = groups.len();
    groups
        .get_mut(group)
        .ok_or_else(|| Error::InvalidArgument(format!("no parameter group {group} (there are {n})")))
}

pub(crate) fn valid_lr(optimizer: &'static str, lr: f64) -> Result<()> {
    if lr.is_finite() && lr >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidValue {
            optimizer,
            key: "lr".into(),
            value: lr.to_string(),
            allowed: "must be finite and >= 0".into(),
        })
    }
}

impl<R: Rule> Optimizer for Engine<R> {
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
        if !self.train {
            return Err(Error::InvalidArgument(format!(
                "`{}` is in evaluation mode (its parameters hold the averaged point): switch to training \
                 mode before a step",
                R::NAME
            )));
        }
        let plan = match self.plan(grads)? {
            Plan::Update(plan) => plan,
            Plan::NonFinite(param) => {
                return match self.non_finite {
                    NonFinite::Error => Err(Error::NonFiniteGradient { param }),
                    NonFinite::Skip | NonFinite::Unchecked => Ok(StepOutcome::Skipped { param }),
                }
            }
        };
        let staged = self.stage(&plan)?;
        self.commit(plan, staged)?;
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

    fn train_mode(&self) -> bool {
        self.train
    }

    fn set_train_mode(&mut self, train: bool) -> Result<()> {
        // Rules with one point for training and evaluation never leave training mode.
        if train == self.train || self.groups.iter().all(|g| g.rule.switch(train).is_none()) {
            return Ok(());
        }
        // Every new value first, then all of them set: a failure moves nothing.
        let mut moves = Vec::new();
        for group in &self.groups {
            let Some((buffer, w)) = group.rule.switch(train) else { continue };
            let Some(i) = group.rule.buffers().iter().position(|b| *b == buffer) else { continue };
            for p in &group.params {
                let Some(st) = self.state.get(&p.id()) else { continue };
                let value = p.value();
                let target = match &st.buffers {
                    Buffers::Tensors(ts) => ts[i].clone(),
                    host => host_tensors(host, value.dims(), value.device())?.swap_remove(i),
                };
                moves.push((p.clone(), crate::elem::lerp(&value, &target, w)?));
            }
        }
        for (p, v) in moves {
            p.set(v)?;
        }
        self.train = train;
        Ok(())
    }

    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        let g = group_mut(&mut self.groups, group)?;
        g.rule = R::from_spec(&g.rule.to_spec().with_option(key, value)?)?;
        Ok(())
    }

    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        // The group's own options override the first group's.
        let rule = R::from_spec(&self.spec().with_overrides(options, R::aliases())?)?;
        let existing: Vec<&Group<R>> = self.groups.iter().collect();
        check_unique(&params, &existing)?;
        check_float(&params)?;
        self.groups.push(Group { rule, params });
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
        if let Some(i) = group.rule.scalars().iter().position(|b| *b == name) {
            let value = param.value();
            let x = st.scalars.get(i).copied().unwrap_or_default();
            return Ok(Some(Tensor::new(x, value.device())?.to_dtype(value.dtype())?));
        }
        let Some(i) = group.rule.buffers().iter().position(|b| *b == name) else { return Ok(None) };
        let value = param.value();
        let t = match &st.buffers {
            Buffers::F32(v) => {
                v.get(i).map(|b| Tensor::from_slice(b, value.dims(), value.device())).transpose()?
            }
            Buffers::F64(v) => {
                v.get(i).map(|b| Tensor::from_slice(b, value.dims(), value.device())).transpose()?
            }
            Buffers::Tensors(ts) => ts.get(i).map(Tensor::copy).transpose()?,
        };
        Ok(t)
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
        if self.groups[0].rule.switch(true).is_some() {
            out.scalars.insert("train_mode".into(), if self.train { 1.0 } else { 0.0 });
        }
        for (gi, group) in self.groups.iter().enumerate() {
            out.scalars.insert(format!("group.{gi}.lr"), group.rule.lr());
            let names = group.rule.buffers();
            for p in &group.params {
                let Some(st) = self.state.get(&p.id()) else { continue };
                out.scalars.insert(format!("{}.step", p.name()), st.step as f64);
                for (name, x) in group.rule.scalars().iter().zip(&st.scalars) {
                    out.scalars.insert(format!("{}.{name}", p.name()), *x);
                }
                let value = p.value();
                let copies = match &st.buffers {
                    Buffers::Tensors(ts) => {
                        ts.iter().map(Tensor::copy).collect::<candle_core::Result<_>>()?
                    }
                    host => host_tensors(host, value.dims(), value.device())?,
                };
                for (name, t) in names.iter().zip(copies) {
                    out.tensors.push((format!("{}.{name}", p.name()), t));
                }
            }
        }
        Ok(out)
    }

    fn import_state(&mut self, saved: &OptimState) -> Result<()> {
        // Validate everything first; change nothing until all of it fits.
        if saved.groups.len() != self.groups.len() {
            return Err(Error::State(format!(
                "it was saved with {} parameter group(s), this optimizer has {}",
                saved.groups.len(),
                self.groups.len()
            )));
        }
        let mut scalars: HashMap<&str, f64> = saved.scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let train = match scalars.remove("train_mode") {
            None => true,
            Some(x) if self.groups[0].rule.switch(true).is_some() && (x == 0.0 || x == 1.0) => x == 1.0,
            Some(x) => return Err(Error::State(format!("unexpected scalar `train_mode` = {x}"))),
        };
        let mut rules = Vec::with_capacity(self.groups.len());
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
            let names = rule.buffers();
            for p in &group.params {
                let Some(step) = scalars.remove(format!("{}.step", p.name()).as_str()) else { continue };
                if !(step >= 1.0 && step.fract() == 0.0 && step < u64::MAX as f64) {
                    return Err(Error::State(format!("`{}.step` = {step} is not a step count", p.name())));
                }
                let mut own = Vec::new();
                for name in rule.scalars() {
                    let key = format!("{}.{name}", p.name());
                    match scalars.remove(key.as_str()) {
                        Some(x) if x.is_finite() => own.push(x),
                        Some(x) => return Err(Error::State(format!("`{key}` = {x} is not finite"))),
                        None => {
                            return Err(Error::State(format!(
                                "scalar `{key}` is missing (options {} need it)",
                                rule.to_spec()
                            )))
                        }
                    }
                }
                let value = p.value();
                let mut bufs = Vec::new();
                for name in &names {
                    let key = format!("{}.{name}", p.name());
                    let t = tensors.remove(key.as_str()).ok_or_else(|| {
                        Error::State(format!(
                            "buffer `{key}` is missing (options {} need it)",
                            rule.to_spec()
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
                let buffers = if self.uses_fused(&value, names.len())? {
                    to_host(&Buffers::Tensors(bufs), &value)?
                } else {
                    Buffers::Tensors(bufs)
                };
                new_state.insert(p.id(), ParamState { step: step as u64, buffers, scalars: own });
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
        self.train = train;
        Ok(())
    }

    fn reset_state(&mut self) {
        self.state.clear();
        self.train = true;
    }

    fn set_kernel_path(&mut self, path: KernelPath) {
        self.path = path;
    }

    fn set_non_finite(&mut self, policy: NonFinite) {
        self.non_finite = policy;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Adam, RmsProp};
    use candle_core::Device;
    use taper_autograd::ParamStore;

    fn bytes(t: &Tensor) -> Vec<f64> {
        t.flatten_all().and_then(|t| t.to_dtype(DType::F64)).and_then(|t| t.to_vec1()).unwrap_or_default()
    }

    /// Every value, state tensor and scalar, printed exactly.
    fn snapshot(opt: &dyn Optimizer, store: &ParamStore) -> String {
        let state = opt.export_state().unwrap();
        let values: Vec<Vec<f64>> = store.params().iter().map(|p| bytes(&p.value())).collect();
        let tensors: Vec<(String, Vec<f64>)> =
            state.tensors.iter().map(|(k, t)| (k.clone(), bytes(t))).collect();
        format!("{values:?} {tensors:?} {:?} {:?}", state.scalars, state.groups)
    }

    fn setup() -> (ParamStore, Grads) {
        let mut store = ParamStore::new();
        let dev = Device::Cpu;
        let a = store.insert("a", Tensor::new(&[1.0f32, -2.0, 3.0], &dev).unwrap()).unwrap();
        let b = store.insert("b", Tensor::new(&[0.5f32, 0.25], &dev).unwrap()).unwrap();
        let c = store.insert("c", Tensor::new(&[4.0f32, 5.0], &dev).unwrap()).unwrap();
        let mut grads = Grads::default();
        for (p, g) in [(&a, [0.1f32, 0.2, -0.3].as_slice()), (&b, &[1.0, -1.0]), (&c, &[0.5, 0.5])] {
            grads.set(p, Tensor::new(g, &dev).unwrap());
        }
        (store, grads)
    }

    #[test]
    fn a_failure_midway_through_the_composed_updates_changes_nothing() {
        let (store, grads) = setup();
        let mut opt = Engine::new(Adam::default(), store.trainable()).unwrap();
        opt.set_kernel_path(KernelPath::Composed);
        opt.step(&grads).unwrap();
        let before = snapshot(&opt, &store);
        // The update of `a` succeeds, that of `b` fails: `a` must not have moved.
        opt.fail_after_composed = Some(1);
        assert!(opt.step(&grads).unwrap_err().to_string().contains("injected"));
        assert_eq!(snapshot(&opt, &store), before);
        // And the next step is the step that would have been taken.
        opt.fail_after_composed = None;
        opt.step(&grads).unwrap();
        assert_eq!(opt.step_count(&store.params()[1]), Some(2));
    }

    #[test]
    fn a_failure_of_a_later_group_changes_no_earlier_one() {
        // Two groups on different paths: group 0 fused, group 1 composed and failing.
        let (store, grads) = setup();
        let ps = store.trainable();
        let mut opt = Engine::new(RmsProp::default(), vec![ps[0].clone()]).unwrap();
        opt.add_param_group(vec![ps[1].clone(), ps[2].clone()], "momentum=0.9").unwrap();
        opt.step(&grads).unwrap();
        let before = snapshot(&opt, &store);
        opt.set_kernel_path(KernelPath::Composed);
        opt.fail_after_composed = Some(2);
        assert!(opt.step(&grads).is_err());
        assert_eq!(snapshot(&opt, &store), before);
    }
}
