//! What one optimizer is ([`Rule`]: hyperparameters, state buffers, the update written once, in
//! [`Steps`]) apart from the bookkeeping every optimizer shares ([`Engine`]: parameter groups,
//! lazily created state, finite checks, the transforms around the update, choosing the fused or
//! composed path, saving and loading state). One engine serves element-wise rules (whose update,
//! written over [`Elem`], is also the fused CPU kernel) and whole-tensor rules (norms, factored
//! moments, matrix iterations: the composed path on every device).

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use candle_core::{DType, Device, Tensor};
use taper_autograd::{Grads, Param, ParamId};

use crate::elem::Elem;
use crate::hyper::{Decay, OptimHyper, Transforms};
use crate::kernels;
use crate::spec::OptimSpec;
use crate::{Error, KernelPath, NonFinite, OptimState, Optimizer, Result, StepOutcome};

/// How a state buffer starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Every element this value (0 for most; Adagrad's `initial_accumulator_value`).
    Value(f64),
    /// A copy of the parameter (Schedule-Free's `z`).
    Param,
}

/// One state buffer a rule keeps per parameter: PyTorch's name for it, its shape (`None`: the
/// parameter's) and how it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Buffer {
    /// The name in checkpoints and [`Optimizer::buffer`] (`exp_avg`).
    pub name: &'static str,
    /// Its shape, when it is not the parameter's (Adafactor's factored rows and columns).
    pub dims: Option<Vec<usize>>,
    /// Its starting value.
    pub init: Init,
}

impl Buffer {
    /// A buffer of the parameter's shape, starting at 0.
    pub fn zeros(name: &'static str) -> Self {
        Self { name, dims: None, init: Init::Value(0.0) }
    }
    /// A buffer of the parameter's shape, starting at `value`.
    pub fn filled(name: &'static str, value: f64) -> Self {
        Self { name, dims: None, init: Init::Value(value) }
    }
    /// A buffer starting as a copy of the parameter.
    pub fn param_copy(name: &'static str) -> Self {
        Self { name, dims: None, init: Init::Param }
    }
    /// A buffer of shape `dims`, starting at 0.
    pub fn shaped(name: &'static str, dims: Vec<usize>) -> Self {
        Self { name, dims: Some(dims), init: Init::Value(0.0) }
    }
}

/// One optimizer's definition beside its hyperparameters ([`Hyper`], derived): the state it keeps
/// per parameter and the per-step scalars. The update itself is [`Steps`].
pub trait Rule: OptimHyper + Send + Sync + fmt::Debug + 'static {
    /// Per-step scalars derived from the step count (bias corrections, a decayed learning rate).
    type Coeffs: Copy + Send + Sync;
    /// [`Fuse`] for an element-wise rule (its update, written over [`Elem`], also runs as the
    /// fused in-place CPU kernel), [`NoFuse`] for one that needs whole tensors.
    type Fused: FuseKind<Self>;
    /// Whether the update is written as [`Steps::direction`] and [`Steps::apply`] (optax's form,
    /// which the engine's transforms go between) rather than one [`Steps::update`].
    const DIRECTION: bool = false;

    /// The state buffers of a parameter of shape `dims`, in the order the update gets them (an
    /// error for a parameter the rule cannot take: Muon's are matrices).
    fn buffers(&self, dims: &[usize]) -> Result<Vec<Buffer>>;
    /// The per-step scalars for step `step` (counted from 1).
    fn coeffs(&self, step: u64) -> Self::Coeffs;
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
    /// The per-step scalars for step `step` of a parameter whose scalar state is `scalars`,
    /// advancing that state. Rules without scalar state keep the default, [`Rule::coeffs`].
    fn advance(&self, step: u64, _scalars: &mut [f64]) -> Self::Coeffs {
        self.coeffs(step)
    }
    /// Rules whose parameter holds a different point in training than in evaluation
    /// (Schedule-Free: `y` while training, the average `x` for evaluation): switching to
    /// training (`true`) or evaluation moves every parameter to `lerp(p, buffer, w)`, given as
    /// `(buffer, w)`. `None` (the default): one point for both.
    fn switch(&self, _to_train: bool) -> Option<(&'static str, f64)> {
        None
    }
    /// Whether the rule keeps a momentum (`cautious=true` needs one).
    fn has_momentum(&self) -> bool {
        false
    }
    /// Whether the step with these scalars applies the decoupled (or added) weight decay; `true`
    /// by default. ADOPT's first step only fills its second moment and moves nothing.
    fn decays(&self, _c: &Self::Coeffs) -> bool {
        true
    }
}

/// A rule's update of one parameter `p` given its gradient `g` and its state buffers `s`, over
/// scalars (the fused kernel, `E = f32, f64`) or whole tensors (the composed path, `E = Tensor`).
/// `g` arrives negated (maximize) and with the L2 penalty added; `p` decayed (decoupled weight
/// decay): the engine's [`Transforms`]. Write [`Steps::update`], or, in optax's form,
/// [`Steps::direction`] (and [`Steps::apply`] if the step is not `p ← p - η·u`).
pub trait Steps<E: Elem>: Rule {
    /// The whole update (PyTorch's form). By default `apply(direction)`.
    #[inline(always)]
    fn update(&self, c: &Self::Coeffs, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let u = self.direction(c, p, g, s)?;
        self.apply(c, p, &u, s)
    }
    /// The update direction `u` (optax's form: the update before the learning rate), advancing
    /// the state. By default the gradient.
    #[inline(always)]
    fn direction(&self, _c: &Self::Coeffs, _p: &E, g: &E, _s: &mut [E]) -> std::result::Result<E, E::Err> {
        Ok(g.clone())
    }
    /// The step along `u`: by default `p ← p + (-η)·u`.
    #[inline(always)]
    fn apply(&self, _c: &Self::Coeffs, p: &mut E, u: &E, _s: &mut [E]) -> std::result::Result<(), E::Err> {
        *p = p.add(&u.scale(-self.lr())?)?;
        Ok(())
    }
}

/// Whether a rule has a fused CPU kernel: [`Fuse`] or [`NoFuse`].
pub trait FuseKind<R: ?Sized>: Send + Sync + 'static {
    /// The fused step, if there is one.
    #[doc(hidden)]
    fn kernel() -> Option<kernels::FusedFn<R>>
    where
        R: Rule;
}

/// An element-wise rule: its update also runs as the fused in-place CPU kernel.
#[derive(Debug, Clone, Copy)]
pub struct Fuse;
/// A rule that needs whole tensors: composed path only.
#[derive(Debug, Clone, Copy)]
pub struct NoFuse;

impl<R: Rule + Steps<f32> + Steps<f64>> FuseKind<R> for Fuse {
    fn kernel() -> Option<kernels::FusedFn<R>> {
        Some(kernels::fused_step::<R>)
    }
}

impl<R: ?Sized> FuseKind<R> for NoFuse {
    fn kernel() -> Option<kernels::FusedFn<R>>
    where
        R: Rule,
    {
        None
    }
}

/// One parameter's update with the transforms around it (see [`Transforms`]), the same code on
/// scalars and tensors. `caution` is the cautious rescaling `1/mean(mask)` the fused kernel
/// measured in a first pass (tensors measure their own).
#[inline(always)]
pub(crate) fn transformed<R: Steps<E>, E: Elem>(
    r: &R,
    t: &Transforms,
    caution: f64,
    c: &R::Coeffs,
    p: &mut E,
    g: &E,
    s: &mut [E],
) -> std::result::Result<(), E::Err> {
    let g = g.negate_if(t.maximize)?;
    let g = match t.decay {
        Decay::L2(lambda) => g.add_scaled(p, lambda)?,
        _ => g,
    };
    if R::DIRECTION {
        let mut u = r.direction(c, p, &g, s)?;
        if t.cautious {
            u = u.cautious(&g, caution)?;
        }
        match t.decay {
            Decay::Added(lambda) if r.decays(c) => u = u.add_scaled(p, lambda)?,
            Decay::Decoupled(f) if r.decays(c) => *p = p.scale(f)?,
            _ => {}
        }
        r.apply(c, p, &u, s)
    } else {
        if let Decay::Decoupled(f) = t.decay {
            if r.decays(c) {
                *p = p.scale(f)?;
            }
        }
        if !t.cautious {
            return r.update(c, p, &g, s);
        }
        // Cautious on the update itself: u = p - p', kept where it descends along g.
        let before = p.clone();
        r.update(c, p, &g, s)?;
        *p = before.sub(&before.sub(p)?.cautious(&g, caution)?)?;
        Ok(())
    }
}

/// Whether the cautious mask keeps this element: the update `u` (descent direction) and the
/// gradient agree in sign. Runs the update on copies: the fused kernel's counting pass.
#[inline(always)]
pub(crate) fn caution_kept<R, E, const K: usize>(
    r: &R,
    t: &Transforms,
    c: &R::Coeffs,
    p: E,
    g: E,
    s: [E; K],
) -> bool
where
    R: Steps<E>,
    E: Elem<Err = std::convert::Infallible> + Copy + PartialOrd + Default,
{
    let mut s = s;
    let Ok(g) = g.negate_if(t.maximize);
    let g = match t.decay {
        Decay::L2(lambda) => {
            let Ok(x) = g.add_scaled(&p, lambda);
            x
        }
        _ => g,
    };
    let u = if R::DIRECTION {
        let Ok(u) = r.direction(c, &p, &g, &mut s);
        u
    } else {
        let mut p = p;
        if let Decay::Decoupled(f) = t.decay {
            if r.decays(c) {
                let Ok(x) = p.scale(f);
                p = x;
            }
        }
        let mut after = p;
        let Ok(()) = r.update(c, &mut after, &g, &mut s);
        let Ok(u) = p.sub(&after);
        u
    };
    let Ok(prod) = u.mul(&g);
    prod > E::default()
}

/// A parameter's state buffers: on the host for the fused CPU kernel, or as tensors for the
/// composed path.
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

/// The checks a group's hyperparameters pass: their own ranges, and a momentum for `cautious`.
fn check_rule<R: Rule>(rule: &R) -> Result<()> {
    rule.validate()?;
    if rule.transforms().cautious && !rule.has_momentum() {
        return Err(Error::InvalidValue {
            optimizer: R::NAME,
            key: "cautious".into(),
            value: "true".into(),
            allowed: "cautious updates mask a momentum, and these options keep none".into(),
        });
    }
    Ok(())
}

/// Every parameter's buffers under `rule`, checked (Muon refuses a vector).
fn check_shapes<R: Rule>(rule: &R, params: &[Param]) -> Result<()> {
    for p in params {
        rule.buffers(&p.dims()).map_err(|e| match e {
            Error::InvalidArgument(msg) => Error::InvalidArgument(format!("parameter `{}`: {msg}", p.name())),
            other => other,
        })?;
    }
    Ok(())
}

/// One parameter's update, decided by [`Engine::plan`] before anything changes.
struct Planned {
    group: usize,
    param: Param,
    /// The gradient (contiguous when `fused`).
    grad: Tensor,
    fused: bool,
    /// The state buffers the group's options keep for this parameter.
    buffers: Vec<Buffer>,
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

impl<R: Rule + Steps<Tensor>> Engine<R> {
    /// An optimizer with one parameter group.
    pub fn new(rule: R, params: Vec<Param>) -> Result<Self> {
        check_rule(&rule)?;
        check_unique_params(&params, std::iter::empty())?;
        check_float(&params)?;
        check_shapes(&rule, &params)?;
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

    /// Whether `p`'s update with these buffers runs on the fused kernel.
    fn uses_fused(&self, p: &Tensor, buffers: &[Buffer]) -> Result<bool> {
        let elementwise = <R::Fused as FuseKind<R>>::kernel().is_some();
        let capable = elementwise
            && p.device().is_cpu()
            && p.is_contiguous()
            && matches!(p.dtype(), DType::F32 | DType::F64)
            && buffers.len() <= kernels::MAX_BUFFERS
            && buffers.iter().all(|b| b.dims.is_none());
        match self.path {
            KernelPath::Auto => Ok(capable),
            KernelPath::Composed => Ok(false),
            KernelPath::Fused if capable => Ok(true),
            KernelPath::Fused if !elementwise => Err(Error::InvalidArgument(format!(
                "`{}` reduces over whole tensors and has no fused kernel: use the composed path",
                R::NAME
            ))),
            KernelPath::Fused => Err(Error::InvalidArgument(format!(
                "the fused kernel needs a contiguous f32/f64 parameter on the CPU and at most {} state \
                 buffers, got {:?} on {:?} with {}",
                kernels::MAX_BUFFERS,
                p.dtype(),
                p.device().location(),
                buffers.len()
            ))),
        }
    }

    fn fresh_buffers(buffers: &[Buffer], p: &Tensor, fused: bool) -> Result<Buffers> {
        let n = p.elem_count();
        Ok(match (fused, p.dtype()) {
            (true, DType::F32) => Buffers::F32(
                buffers
                    .iter()
                    .map(|b| match b.init {
                        Init::Param => host_vec::<f32>(p),
                        Init::Value(x) => Ok(vec![x as f32; n]),
                    })
                    .collect::<Result<_>>()?,
            ),
            (true, _) => Buffers::F64(
                buffers
                    .iter()
                    .map(|b| match b.init {
                        Init::Param => host_vec::<f64>(p),
                        Init::Value(x) => Ok(vec![x; n]),
                    })
                    .collect::<Result<_>>()?,
            ),
            (false, _) => Buffers::Tensors(
                buffers
                    .iter()
                    .map(|b| match (b.init, &b.dims) {
                        (Init::Param, _) => Ok(p.copy()?),
                        (Init::Value(x), None) => Ok(p.zeros_like()?.affine(0.0, x)?),
                        (Init::Value(x), Some(dims)) => {
                            Ok(Tensor::zeros(dims.as_slice(), p.dtype(), p.device())?.affine(0.0, x)?)
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
            for p in &group.params {
                let Some(g) = grads.get(p) else { continue };
                let v = p.value();
                check_grad(p, &v, g)?;
                if self.non_finite != NonFinite::Unchecked && !kernels::all_finite(g)? {
                    return Ok(Plan::NonFinite(p.name().to_string()));
                }
                let buffers = group.rule.buffers(v.dims())?;
                let fused = self.uses_fused(&v, &buffers)?;
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
            let count = item.buffers.len();
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
                        buffers: Self::fresh_buffers(&item.buffers, &value, true)?,
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
                Some(st) => host_tensors(&st.buffers, &item.buffers, value.dims(), value.device())?,
                None => match Self::fresh_buffers(&item.buffers, &value, false)? {
                    Buffers::Tensors(ts) => ts,
                    host => host_tensors(&host, &item.buffers, value.dims(), value.device())?,
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
            let c = rule.advance(step, &mut scalars);
            transformed(rule, &rule.transforms(), 1.0, &c, &mut p, &item.grad, &mut buffers)?;
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
            let (Some(kernel), Some(state)) = (<R::Fused as FuseKind<R>>::kernel(), self.state.get_mut(&id))
            else {
                continue;
            };
            let rule = &self.groups[item.group].rule;
            let c = rule.advance(state.step + 1, &mut state.scalars);
            let value = item.param.value();
            let host = match &mut state.buffers {
                Buffers::F32(s) => kernels::HostMut::F32(s),
                Buffers::F64(s) => kernels::HostMut::F64(s),
                Buffers::Tensors(_) => continue,
            };
            kernel(rule, &c, &rule.transforms(), &value, &item.grad, host)?;
            state.step += 1;
        }
        Ok(())
    }
}

/// A saved state with `groups` parameter groups, or the error that says it does not fit.
pub(crate) fn check_group_count(saved: &OptimState, groups: usize) -> Result<()> {
    if saved.groups.len() != groups {
        return Err(Error::State(format!(
            "it was saved with {} parameter group(s), this optimizer has {groups}",
            saved.groups.len()
        )));
    }
    Ok(())
}

/// A gradient of its parameter's shape, dtype and device, or an error naming the parameter.
pub(crate) fn check_grad(p: &Param, v: &Tensor, g: &Tensor) -> Result<()> {
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
    Ok(())
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

/// Buffers as host vectors in `p`'s dtype (for the fused kernel, whose buffers all have `p`'s
/// shape), copied.
fn to_host(b: &Buffers, p: &Tensor) -> Result<Buffers> {
    let ts = match b {
        Buffers::Tensors(ts) => {
            ts.iter().map(|t| t.to_device(&Device::Cpu)).collect::<candle_core::Result<_>>()?
        }
        host => host_tensors_like(host, p.dims(), &Device::Cpu)?,
    };
    Ok(match p.dtype() {
        DType::F32 => Buffers::F32(ts.iter().map(host_vec::<f32>).collect::<Result<_>>()?),
        _ => Buffers::F64(ts.iter().map(host_vec::<f64>).collect::<Result<_>>()?),
    })
}

/// Host buffers (all of the parameter's shape `dims`) as tensors on `device`, copied.
fn host_tensors_like(b: &Buffers, dims: &[usize], device: &Device) -> Result<Vec<Tensor>> {
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

/// Buffers as tensors of their shapes (`specs`, else the parameter's `dims`) on `device`: host
/// vectors copied, tensors shared (updates make new tensors, so sharing is safe).
fn host_tensors(b: &Buffers, specs: &[Buffer], dims: &[usize], device: &Device) -> Result<Vec<Tensor>> {
    match b {
        Buffers::Tensors(ts) => {
            Ok(ts.iter().map(|t| t.to_device(device)).collect::<candle_core::Result<_>>()?)
        }
        host => {
            let ts = host_tensors_like(host, dims, device)?;
            ts.into_iter()
                .zip(specs)
                .map(|(t, spec)| match &spec.dims {
                    Some(d) => Ok(t.reshape(d.as_slice())?),
                    None => Ok(t),
                })
                .collect()
        }
    }
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

impl<R: Rule + Steps<Tensor>> Engine<R> {
    /// Switches between training and evaluation mode ([`crate::Setting::Train`]): moves every
    /// parameter of a rule with a switch to `lerp(p, buffer, w)`, all or nothing.
    fn switch_mode(&mut self, train: bool) -> Result<()> {
        // Rules with one point for training and evaluation never leave training mode.
        if train == self.train || self.groups.iter().all(|g| g.rule.switch(train).is_none()) {
            return Ok(());
        }
        // Every new value first, then all of them set: a failure moves nothing.
        let mut moves = Vec::new();
        for group in &self.groups {
            let Some((buffer, w)) = group.rule.switch(train) else { continue };
            for p in &group.params {
                let Some(st) = self.state.get(&p.id()) else { continue };
                let value = p.value();
                let specs = group.rule.buffers(value.dims())?;
                let Some(i) = specs.iter().position(|b| b.name == buffer) else { continue };
                let target = match &st.buffers {
                    Buffers::Tensors(ts) => ts[i].clone(),
                    host => host_tensors(host, &specs, value.dims(), value.device())?.swap_remove(i),
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
}

impl<R: Rule + Steps<Tensor>> Optimizer for Engine<R> {
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

    fn group_option(&self, group: usize, key: &str) -> Option<f64> {
        let g = self.groups.get(group)?;
        match key {
            "lr" => Some(g.rule.lr()),
            "train_mode" if g.rule.switch(true).is_some() => Some(if self.train { 1.0 } else { 0.0 }),
            _ => g.rule.get(key),
        }
    }

    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        if key == "lr" {
            valid_lr(R::NAME, value)?;
            group_mut(&mut self.groups, group)?.rule.set_lr(value);
            return Ok(());
        }
        let g = group_mut(&mut self.groups, group)?;
        let mut rule = g.rule.clone();
        rule.set(key, value)?;
        check_rule(&rule)?;
        g.rule = rule;
        Ok(())
    }

    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        // The group's own options override the first group's.
        let rule = self.groups[0].rule.with_overrides(options)?;
        check_rule(&rule)?;
        check_unique_params(&params, self.groups.iter().flat_map(|g| g.params.iter()))?;
        check_float(&params)?;
        check_shapes(&rule, &params)?;
        self.groups.push(Group { rule, params });
        Ok(())
    }

    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>> {
        let Some(group) = self.groups.iter().find(|g| g.params.iter().any(|p| p.id() == param.id())) else {
            return Ok(None);
        };
        let Some(st) = self.state.get(&param.id()) else { return Ok(None) };
        let value = param.value();
        if name == "step" {
            return Ok(Some(Tensor::new(st.step as f64, value.device())?));
        }
        if let Some(i) = group.rule.scalars().iter().position(|b| *b == name) {
            let x = st.scalars.get(i).copied().unwrap_or_default();
            return Ok(Some(Tensor::new(x, value.device())?.to_dtype(value.dtype())?));
        }
        let specs = group.rule.buffers(value.dims())?;
        let Some(i) = specs.iter().position(|b| b.name == name) else { return Ok(None) };
        let t = match &st.buffers {
            Buffers::Tensors(ts) => ts.get(i).map(Tensor::copy).transpose()?,
            host => host_tensors(host, &specs, value.dims(), value.device())?.into_iter().nth(i),
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
            for p in &group.params {
                let Some(st) = self.state.get(&p.id()) else { continue };
                out.scalars.insert(format!("{}.step", p.name()), st.step as f64);
                for (name, x) in group.rule.scalars().iter().zip(&st.scalars) {
                    out.scalars.insert(format!("{}.{name}", p.name()), *x);
                }
                let value = p.value();
                let specs = group.rule.buffers(value.dims())?;
                let copies = match &st.buffers {
                    Buffers::Tensors(ts) => {
                        ts.iter().map(Tensor::copy).collect::<candle_core::Result<_>>()?
                    }
                    host => host_tensors(host, &specs, value.dims(), value.device())?,
                };
                for (spec, t) in specs.iter().zip(copies) {
                    out.tensors.push((format!("{}.{}", p.name(), spec.name), t));
                }
            }
        }
        Ok(out)
    }

    fn import_state(&mut self, saved: &OptimState) -> Result<()> {
        // Validate everything first; change nothing until all of it fits.
        check_group_count(saved, self.groups.len())?;
        let mut scalars: HashMap<&str, f64> = saved.scalars.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let train = match scalars.remove("train_mode") {
            None => true,
            Some(x) if self.groups[0].rule.switch(true).is_some() && (x == 0.0 || x == 1.0) => x == 1.0,
            Some(x) => return Err(Error::State(format!("unexpected scalar `train_mode` = {x}"))),
        };
        let mut rules = Vec::with_capacity(self.groups.len());
        for (gi, text) in saved.groups.iter().enumerate() {
            // A checkpoint's record of the group: text from outside, parsed here at the edge.
            let spec = OptimSpec::parse(text)?;
            if spec.name != R::NAME {
                return Err(Error::State(format!(
                    "it was saved by optimizer `{}` and this one is `{}`",
                    spec.name,
                    R::NAME
                )));
            }
            let mut rule = R::from_spec(&spec).map_err(|e| Error::State(format!("group {gi}: {e}")))?;
            check_rule(&rule).map_err(|e| Error::State(format!("group {gi}: {e}")))?;
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
                let specs = rule.buffers(value.dims())?;
                let mut bufs = Vec::new();
                for spec in &specs {
                    let key = format!("{}.{}", p.name(), spec.name);
                    let t = tensors.remove(key.as_str()).ok_or_else(|| {
                        Error::State(format!(
                            "buffer `{key}` is missing (options {} need it)",
                            rule.to_spec()
                        ))
                    })?;
                    let want = spec.dims.as_deref().unwrap_or(value.dims());
                    if t.dims() != want || t.dtype() != value.dtype() {
                        return Err(Error::State(format!(
                            "`{key}` is {:?} {:?}, the optimizer needs {:?} {want:?}",
                            t.dtype(),
                            t.dims(),
                            value.dtype(),
                        )));
                    }
                    bufs.push(t.to_device(value.device())?.copy()?);
                }
                let buffers = if self.uses_fused(&value, &specs)? {
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

    fn configure(&mut self, setting: crate::Setting) -> Result<()> {
        match setting {
            crate::Setting::Path(path) => self.path = path,
            crate::Setting::NonFinite(policy) => self.non_finite = policy,
            crate::Setting::Train(train) => self.switch_mode(train)?,
        }
        Ok(())
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
        (&mut opt as &mut dyn Optimizer).set_kernel_path(KernelPath::Composed);
        opt.step(&grads).unwrap();
        let before = snapshot(&opt, &store);
        // The update of `a` succeeds, that of `b` fails: `a` must not have moved.
        opt.fail_after_composed = Some(1);
        assert!(opt.step(&grads).unwrap_err().to_string().contains("injected"));
        assert_eq!(snapshot(&opt, &store), before);
        // And the next step is the step that would have been taken.
        opt.fail_after_composed = None;
        opt.step(&grads).unwrap();
        assert_eq!((&opt as &dyn Optimizer).step_count(&store.params()[1]), Some(2));
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
        (&mut opt as &mut dyn Optimizer).set_kernel_path(KernelPath::Composed);
        opt.fail_after_composed = Some(2);
        assert!(opt.step(&grads).is_err());
        assert_eq!(snapshot(&opt, &store), before);
    }
}
