//! Lookahead (Zhang et al., 2019, "Lookahead Optimizer: k steps forward, 1 step back"; timm's
//! `timm.optim.Lookahead`).

use std::any::Any;
use std::collections::{HashMap, HashSet};

use candle_core::Tensor;
use taper_autograd::{Grads, Param, ParamId};

use crate::lbfgs::Evaluation;
use crate::spec::OptimSpec;
use crate::{wrap, Error, Hyper, OptimState, Optimizer, Result, Setting, StepOutcome};

/// Lookahead's own options.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "lookahead")]
pub struct LookaheadOptions {
    /// How far the slow weights move towards the fast ones at a sync, `α` (0.5).
    #[hp(default = 0.5, range = "[0, 1]")]
    pub alpha: f64,
    /// Inner steps between syncs (6).
    #[hp(default = 6, min = 1)]
    pub k: u64,
}

/// Lookahead around any optimizer: the inner optimizer takes `k` steps (the fast weights), then
/// the slow weights move `α` of the way towards them and the fast weights restart from there.
/// Exactly `timm.optim.Lookahead`, whose slow weights start as a copy of the fast weights at the
/// first sync (so the first sync moves nothing):
///
/// ```text
/// every step:        inner step on p (the fast weights)
/// every k-th step:   slow ← slow + α·(p - slow),   p ← slow
/// ```
///
/// Spec: `lookahead:k=6,alpha=0.5,optimizer=adam(lr=0.3)`. Its state (the slow weights
/// `{param}.lookahead_slow_buff`, the step count `lookahead_step`, and the
/// inner optimizer's) rides in checkpoints.
pub struct Lookahead {
    options: LookaheadOptions,
    inner: Box<dyn Optimizer>,
    /// Steps taken (timm counts per group; groups step together).
    step: u64,
    slow: HashMap<ParamId, Tensor>,
}

impl std::fmt::Debug for Lookahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookahead").field("options", &self.options).field("step", &self.step).finish()
    }
}

const SLOW: &str = "lookahead_slow_buff";
const STEP: &str = "lookahead_step";

impl Lookahead {
    /// Lookahead with `options` around `inner`.
    pub fn new(options: LookaheadOptions, inner: Box<dyn Optimizer>) -> Result<Self> {
        options.validate()?;
        wrap::check_nesting(LookaheadOptions::NAME, inner.as_ref())?;
        Ok(Self { options, inner, step: 0, slow: HashMap::new() })
    }

    /// The constructor the registry holds.
    pub fn build(spec: &OptimSpec, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
        let (options, inner) = wrap::parse::<LookaheadOptions>(spec)?;
        Ok(Box::new(Self::new(options, crate::from_spec(&inner, params)?)?))
    }

    /// The inner optimizer.
    pub fn inner(&self) -> &dyn Optimizer {
        self.inner.as_ref()
    }

    /// After an applied inner step over the parameters `stepped`: counts it, and every `k`-th
    /// step syncs them (new values first, then stored).
    fn after_step(&mut self, stepped: &HashSet<ParamId>) -> Result<()> {
        self.step += 1;
        if !self.step.is_multiple_of(self.options.k) {
            return Ok(());
        }
        let mut moves = Vec::new();
        for p in self.inner.params() {
            if !stepped.contains(&p.id()) {
                continue;
            }
            let fast = p.value();
            let slow = match self.slow.get(&p.id()) {
                Some(s) => s.clone(),
                None => fast.copy()?,
            };
            let next = (&slow + (fast - &slow)?.affine(self.options.alpha, 0.0)?)?;
            moves.push((p, next));
        }
        for (p, next) in moves {
            // A copy of its own: the fused kernels update parameters in place.
            self.slow.insert(p.id(), next.copy()?);
            p.set(next)?;
        }
        Ok(())
    }
}

impl Optimizer for Lookahead {
    fn group_spec(&self, group: usize) -> Option<OptimSpec> {
        wrap::group_spec(&self.options, self.inner.as_ref(), group)
    }

    fn params(&self) -> Vec<Param> {
        self.inner.params()
    }

    fn step(&mut self, grads: &Grads) -> Result<StepOutcome> {
        let out = self.inner.step(grads)?;
        if out == StepOutcome::Applied {
            let stepped: HashSet<ParamId> =
                self.inner.params().iter().filter(|p| grads.get(p).is_some()).map(Param::id).collect();
            self.after_step(&stepped)?;
        }
        Ok(out)
    }

    fn step_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<Evaluation>,
    ) -> Result<(f64, StepOutcome)> {
        let params = self.inner.params();
        let mut stepped = HashSet::new();
        let (loss, out) = self.inner.step_closure(&mut || {
            let (loss, grads) = closure()?;
            stepped.extend(params.iter().filter(|p| grads.get(p).is_some()).map(Param::id));
            Ok((loss, grads))
        })?;
        if out == StepOutcome::Applied {
            self.after_step(&stepped)?;
        }
        Ok((loss, out))
    }

    fn group_option(&self, group: usize, key: &str) -> Option<f64> {
        let key = key.strip_prefix("lookahead_").unwrap_or(key);
        wrap::group_option(&self.options, self.inner.as_ref(), group, key)
    }

    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        let key = key.strip_prefix("lookahead_").unwrap_or(key);
        wrap::set_group_option(&mut self.options, self.inner.as_mut(), group, key, value)
    }

    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        self.inner.add_param_group(params, options)
    }

    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>> {
        if name == SLOW {
            return self.slow.get(&param.id()).map(Tensor::copy).transpose().map_err(Into::into);
        }
        self.inner.buffer(param, name)
    }

    fn export_state(&self) -> Result<OptimState> {
        let mut out = self.inner.export_state()?;
        out.groups =
            (0..out.groups.len()).filter_map(|g| self.group_spec(g)).map(|s| s.to_string()).collect();
        out.scalars.insert(STEP.into(), self.step as f64);
        for p in self.inner.params() {
            if let Some(s) = self.slow.get(&p.id()) {
                out.tensors.push((format!("{}.{SLOW}", p.name()), s.copy()?));
            }
        }
        Ok(out)
    }

    fn import_state(&mut self, saved: &OptimState) -> Result<()> {
        let is_own = |k: &str| k == STEP || k.ends_with(&format!(".{SLOW}"));
        let (options, inner, own) = wrap::split_state::<LookaheadOptions>(saved, is_own)?;
        // Ours first, checked whole; then the inner import (all or nothing); then ours stored.
        let step = match own.scalars.get(STEP) {
            None => 0,
            Some(&v) if v >= 0.0 && v.fract() == 0.0 && v < 9.0e15 => v as u64,
            Some(v) => return Err(Error::State(format!("`{STEP}` = {v} is not a step count"))),
        };
        let mut slow = HashMap::new();
        let params = self.inner.params();
        for (k, t) in &own.tensors {
            let name = k.strip_suffix(&format!(".{SLOW}")).unwrap_or(k);
            let p = params.iter().find(|p| p.name() == name).ok_or_else(|| {
                Error::State(format!("unexpected entry `{k}`: no parameter of this optimizer has that name"))
            })?;
            let v = p.value();
            if t.dims() != v.dims() || t.dtype() != v.dtype() {
                return Err(Error::State(format!(
                    "`{k}` is {:?} {:?}, the parameter is {:?} {:?}",
                    t.dtype(),
                    t.dims(),
                    v.dtype(),
                    v.dims()
                )));
            }
            slow.insert(p.id(), t.to_device(v.device())?.copy()?);
        }
        if let Some(o) = &options {
            o.validate().map_err(|e| Error::State(e.to_string()))?;
        }
        self.inner.import_state(&inner)?;
        if let Some(o) = options {
            self.options = o;
        }
        self.step = step;
        self.slow = slow;
        Ok(())
    }

    fn configure(&mut self, setting: Setting) -> Result<()> {
        self.inner.configure(setting)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
