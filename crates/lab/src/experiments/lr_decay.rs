//! The documents' central claim, measured: the effective learning rate `η / √(s_t + ε)` of
//! AdaGrad decays like `1/√t` under a steady gradient, RMSprop's (γ = 0.9, 0.99) levels off.
//! Measured from the optimizers' own state, printed at steps 1, 10, 100, 1000 and plotted per
//! step on a log scale.
//!
//! `cargo run --release --example lr_decay`

use std::path::Path;

use anyhow::bail;
use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};

use crate::cli::Common;
use crate::optim::{self, Adagrad, Engine, OptimSpec, Optimizer, RmsProp};
use crate::plot::{self, ChartSpec, Series};

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
    fn from_str(s: &str) -> std::result::Result<Self, String> {
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

// ---------------------------------------------------------------- command line and figure

/// AdaGrad and RMSprop with γ = 0.9 and 0.99, d2l's ε inside the root.
pub const DEFAULT_SPECS: &str = "adagrad:lr=0.01,eps=1e-6,eps_in_sqrt=true,\
rmsprop:lr=0.01,gamma=0.9,eps=1e-6,eps_in_sqrt=true,\
rmsprop:lr=0.01,gamma=0.99,eps=1e-6,eps_in_sqrt=true";

/// The effective learning rate η/√(s+ε) per step, from the optimizers' own state: AdaGrad's falls
/// like 1/√t, RMSprop's levels off.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "lr_decay", version)]
pub struct Args {
    /// Optimizer specs "SPEC,SPEC,..." (adagrad or rmsprop).
    #[arg(long, default_value = DEFAULT_SPECS)]
    pub optimizers: String,
    /// constant (a steady gradient) or linreg (the documents' linear regression).
    #[arg(long, default_value = "linreg")]
    pub problem: String,
    /// Steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// `--device`, `--out`.
    #[command(flatten)]
    pub common: Common,
}

/// Runs the command line and writes `lr_decay.svg`.
pub fn run_cli(args: &Args) -> anyhow::Result<Vec<Rates>> {
    let problem: Problem = args.problem.parse().map_err(anyhow::Error::msg)?;
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let device = args.common.device()?;
    let specs = optim::checked_list(&args.optimizers)?;
    let out = args.common.out_dir("lr_decay")?;
    let rates: Vec<Rates> =
        specs.iter().map(|s| record(problem, s, args.steps, &device)).collect::<optim::Result<_>>()?;
    figure(&out.join("lr_decay.svg"), &rates, args.steps)?;
    Ok(rates)
}

/// Each optimizer's mean effective rate per step, on a log scale.
pub fn figure(path: &Path, rates: &[Rates], steps: usize) -> anyhow::Result<()> {
    let series: Vec<Series> = rates
        .iter()
        .map(|r| Series::new(r.spec.clone(), (1..=steps).map(|t| (t as f64, r.mean_at(t))).collect()))
        .collect();
    let spec = ChartSpec {
        title: "effective learning rate η/√(s+ε), mean over parameters",
        x_label: "step",
        y_label: "effective learning rate",
        log_y: true,
        log_x: false,
    };
    Ok(plot::line_chart(path, &spec, &series)?)
}
