//! The documents' central claim, measured: the effective learning rate `η / √(s_t + ε)` of
//! AdaGrad decays like `1/√t` under a steady gradient, RMSprop's levels off.

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};

use crate::optim::{self, Adagrad, Engine, OptimSpec, Optimizer, RmsProp};

/// The problem the rates are measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// `f(x) = 2·x1 - 0.5·x2`: the gradient is the same at every step.
    Constant,
    /// The documents' linear regression (gradients shrink as the fit converges).
    LinReg,
}

impl std::str::FromStr for Problem {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "constant" => Ok(Self::Constant),
            "linreg" | "linear_regression" => Ok(Self::LinReg),
            other => Err(format!("unknown problem `{other}`: expected constant or linreg")),
        }
    }
}

/// One optimizer's effective learning rates: per parameter, per step (step 1 first).
#[derive(Debug, Clone)]
pub struct Rates {
    /// The spec.
    pub spec: String,
    /// `per_param[k][t-1]`: parameter element `k`'s rate after step `t`.
    pub per_param: Vec<Vec<f64>>,
}

impl Rates {
    /// The mean over parameters after step `t` (from 1).
    pub fn mean_at(&self, t: usize) -> f64 {
        self.per_param.iter().map(|r| r[t - 1]).sum::<f64>() / self.per_param.len() as f64
    }
}

/// `η / √(s + ε)` (or `η / (√s + ε)` in PyTorch's placement), from the optimizer's own state:
/// AdaGrad's `sum` (with its decayed `η_t = η / (1 + (t - 1)·lr_decay)`), RMSprop's
/// `square_avg`. Hyperparameters are read from the typed rule, buffers one parameter at a time.
fn effective(opt: &dyn Optimizer, step: usize) -> optim::Result<Vec<f64>> {
    let any = opt.as_any();
    let (lr, eps, inside, buffer) = if let Some(e) = any.downcast_ref::<Engine<Adagrad>>() {
        let r = e.rule();
        (r.lr / (1.0 + (step as f64 - 1.0) * r.lr_decay), r.eps, r.eps_in_sqrt, "sum")
    } else if let Some(e) = any.downcast_ref::<Engine<RmsProp>>() {
        let r = e.rule();
        (r.lr, r.eps, r.eps_in_sqrt, "square_avg")
    } else {
        return Err(optim::Error::InvalidArgument(format!(
            "effective learning rate is defined here for adagrad and rmsprop, not `{}`",
            opt.name()
        )));
    };
    let mut out = Vec::new();
    for p in opt.params() {
        let Some(s) = opt.buffer(&p, buffer)? else { continue };
        for s in s.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()? {
            out.push(if inside { lr / (s + eps).sqrt() } else { lr / (s.sqrt() + eps) });
        }
    }
    Ok(out)
}

/// Runs `spec` for `steps` steps on `problem` and records the effective rates.
pub fn record(problem: Problem, spec: &str, steps: usize, device: &Device) -> optim::Result<Rates> {
    OptimSpec::parse(spec)?;
    let mut per_step: Vec<Vec<f64>> = Vec::with_capacity(steps);
    match problem {
        Problem::LinReg => {
            let d = super::linreg::data(100, 42);
            super::linreg::fit_with(&d, spec, steps, device, |step, opt| {
                per_step.push(effective(opt, step)?);
                Ok(())
            })?;
        }
        Problem::Constant => {
            let mut store = ParamStore::new();
            let x = store.insert("x", Tensor::zeros(2, DType::F64, device)?)?;
            let coef = Var::constant(Tensor::new(&[2.0f64, -0.5], device)?);
            let mut opt = optim::from_spec(spec, store.trainable())?;
            for step in 1..=steps {
                let tape = Tape::new();
                let f = tape.param(&x).mul(&coef)?.sum_all()?;
                opt.step(&f.backward()?)?;
                per_step.push(effective(opt.as_ref(), step)?);
            }
        }
    }
    let k = per_step.first().map_or(0, Vec::len);
    let per_param = (0..k).map(|j| per_step.iter().map(|r| r[j]).collect()).collect();
    Ok(Rates { spec: spec.to_string(), per_param })
}
