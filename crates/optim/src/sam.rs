//! SAM (Foret et al., 2021, "Sharpness-Aware Minimization for Efficiently Improving
//! Generalization") and ASAM (Kwon et al., 2021), as davda54/sam, ported in
//! `pytorch_optimizer.SAM`.

use std::any::Any;

use candle_core::Tensor;
use taper_autograd::{Grads, Param};

use crate::lbfgs::Evaluation;
use crate::spec::OptimSpec;
use crate::{
    kernels, norm, wrap, Error, Hyper, NonFinite, OptimState, Optimizer, Result, Setting, StepOutcome,
};

/// SAM's own options.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "sam")]
pub struct SamOptions {
    /// The radius `ρ` of the neighbourhood (0.05).
    #[hp(default = 0.05, range = ">= 0")]
    pub rho: f64,
    /// ASAM: the neighbourhood scaled by the parameters' magnitudes.
    #[hp(default = false)]
    pub adaptive: bool,
    /// `ε` added to the gradient norm (1e-12).
    #[hp(default = 1e-12, range = ">= 0")]
    pub perturb_eps: f64,
}

/// Sharpness-aware minimization around any optimizer that steps on a gradient: each step
/// evaluates the loss twice, at `p` and at the worst nearby point `p + e`, and the inner
/// optimizer steps from `p` with the second gradient. Exactly `pytorch_optimizer.SAM` (which
/// takes the gradient norm in float32):
///
/// ```text
/// g ← ∇f(p)
/// s ← ρ / (‖a ⊙ g‖ + ε)               a = |p| (adaptive) or 1, the norm over every parameter
/// e ← a² ⊙ g · s
/// g' ← ∇f(p + e)
/// inner step from p with g'
/// ```
///
/// Spec: `sam:rho=0.05,adaptive=false,optimizer=sgd(lr=0.1,momentum=0.9)`. It needs the
/// closure-driven step ([`Optimizer::step_closure`], as L-BFGS); its state is the inner
/// optimizer's.
pub struct Sam {
    options: SamOptions,
    inner: Box<dyn Optimizer>,
    non_finite: NonFinite,
}

impl std::fmt::Debug for Sam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sam").field("options", &self.options).finish()
    }
}

impl Sam {
    /// SAM with `options` around `inner`.
    pub fn new(options: SamOptions, inner: Box<dyn Optimizer>) -> Result<Self> {
        options.validate()?;
        wrap::check_nesting(SamOptions::NAME, inner.as_ref())?;
        Ok(Self { options, inner, non_finite: NonFinite::Error })
    }

    /// The constructor the registry holds.
    pub fn build(spec: &OptimSpec, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
        let (options, inner) = wrap::parse::<SamOptions>(spec)?;
        Ok(Box::new(Self::new(options, crate::from_spec(&inner, params)?)?))
    }

    /// The inner optimizer.
    pub fn inner(&self) -> &dyn Optimizer {
        self.inner.as_ref()
    }

    /// The perturbed values `p + e` of the parameters that have a gradient.
    fn perturbed(&self, params: &[Param], grads: &Grads) -> Result<Vec<(Param, Tensor)>> {
        let adaptive = self.options.adaptive;
        // As pytorch_optimizer: each tensor's norm in its dtype, then squared and summed in f32.
        let mut sum = 0f32;
        for p in params {
            let Some(g) = grads.get(p) else { continue };
            let scaled = if adaptive { (g * p.value().abs()?)? } else { g.clone() };
            let n = norm(&scaled)? as f32;
            sum += n * n;
        }
        let grad_norm = sum.sqrt() + self.options.perturb_eps as f32;
        let scale = f64::from(self.options.rho as f32 / grad_norm);
        let mut out = Vec::new();
        for p in params {
            let Some(g) = grads.get(p) else { continue };
            let v = p.value();
            let e = if adaptive { (v.sqr()? * g)? } else { g.clone() };
            let scale = Tensor::new(scale, v.device())?.to_dtype(v.dtype())?;
            out.push((p.clone(), (&v + e.broadcast_mul(&scale)?)?));
        }
        Ok(out)
    }
}

impl Optimizer for Sam {
    fn group_spec(&self, group: usize) -> Option<OptimSpec> {
        wrap::group_spec(&self.options, self.inner.as_ref(), group)
    }

    fn params(&self) -> Vec<Param> {
        self.inner.params()
    }

    fn step(&mut self, _grads: &Grads) -> Result<StepOutcome> {
        Err(Error::InvalidArgument(
            "sam evaluates the loss twice per step: give it a closure (Optimizer::step_closure)".into(),
        ))
    }

    /// One SAM step; on an error (a closure's, or a non-finite gradient) the parameters and the
    /// inner optimizer's state are as before the step.
    fn step_closure(
        &mut self,
        closure: &mut dyn FnMut() -> Result<Evaluation>,
    ) -> Result<(f64, StepOutcome)> {
        let (loss, grads) = closure()?;
        let params = self.inner.params();
        if self.non_finite != NonFinite::Unchecked {
            for p in &params {
                let Some(g) = grads.get(p) else { continue };
                if !kernels::all_finite(g)? {
                    let param = p.name().to_string();
                    return match self.non_finite {
                        NonFinite::Error => Err(Error::NonFiniteGradient { param }),
                        _ => Ok((loss, StepOutcome::Skipped { param })),
                    };
                }
            }
        }
        let moved = self.perturbed(&params, &grads)?;
        let old: Vec<Tensor> = moved.iter().map(|(p, _)| p.value()).collect();
        for (p, v) in &moved {
            p.set(v.clone())?;
        }
        let second = closure();
        for ((p, _), v) in moved.iter().zip(old) {
            p.set(v)?;
        }
        let (_, grads) = second?;
        Ok((loss, self.inner.step(&grads)?))
    }

    fn group_option(&self, group: usize, key: &str) -> Option<f64> {
        wrap::group_option(&self.options, self.inner.as_ref(), group, key)
    }

    fn set_group_option(&mut self, group: usize, key: &str, value: f64) -> Result<()> {
        wrap::set_group_option(&mut self.options, self.inner.as_mut(), group, key, value)
    }

    fn add_param_group(&mut self, params: Vec<Param>, options: &str) -> Result<()> {
        self.inner.add_param_group(params, options)
    }

    fn buffer(&self, param: &Param, name: &str) -> Result<Option<Tensor>> {
        self.inner.buffer(param, name)
    }

    fn export_state(&self) -> Result<OptimState> {
        let mut out = self.inner.export_state()?;
        out.groups =
            (0..out.groups.len()).filter_map(|g| self.group_spec(g)).map(|s| s.to_string()).collect();
        Ok(out)
    }

    fn import_state(&mut self, saved: &OptimState) -> Result<()> {
        let (options, inner, _) = wrap::split_state::<SamOptions>(saved, |_| false)?;
        if let Some(o) = &options {
            o.validate().map_err(|e| Error::State(e.to_string()))?;
        }
        self.inner.import_state(&inner)?;
        if let Some(o) = options {
            self.options = o;
        }
        Ok(())
    }

    fn configure(&mut self, setting: Setting) -> Result<()> {
        if let Setting::NonFinite(policy) = setting {
            self.non_finite = policy;
        }
        self.inner.configure(setting)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
