//! d2l's `train_2d` / `show_trace_2d`, in one place: minimize a 2-D function (chapter 7's
//! `0.1·x1² + 2·x2²`, section 7.2's `x1² + 2·x2²`, or Rosenbrock) from `(-5, -2)` with any
//! optimizer spec, gradients from our tape, print `epoch %d, x1 %f, x2 %f`, and draw the
//! trajectory over the contour lines.
//!
//! ```text
//! cargo run --release --example trace_2d -- --optimizer "rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true"
//! cargo run --release --example trace_2d -- --compare "adagrad:lr=0.4,eps=1e-6,eps_in_sqrt=true,rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true"
//! ```

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};

use crate::cli::Common;
use crate::optim::schedule::Scheduler;
use crate::plot::{self, Series};

/// The 2-D test functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `f(x) = 0.1·x1² + 2·x2²`, d2l sections 7.4–7.6.
    D2l,
    /// `f(x) = x1² + 2·x2²`, d2l section 7.2.
    Sec72,
    /// Rosenbrock's `(1 - x1)² + 100·(x2 - x1²)²`.
    Rosenbrock,
}

impl FromStr for Function {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace(' ', "").as_str() {
            "d2l" | "0.1x1^2+2x2^2" | "0.1*x1^2+2*x2^2" => Ok(Self::D2l),
            "sec7.2" | "7.2" | "x1^2+2x2^2" | "x1^2+2*x2^2" => Ok(Self::Sec72),
            "rosenbrock" => Ok(Self::Rosenbrock),
            other => Err(format!(
                "unknown function `{other}`: expected d2l (0.1*x1^2+2*x2^2), sec7.2 (x1^2+2*x2^2) or rosenbrock"
            )),
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::D2l => "0.1*x1^2 + 2*x2^2",
            Self::Sec72 => "x1^2 + 2*x2^2",
            Self::Rosenbrock => "(1 - x1)^2 + 100*(x2 - x1^2)^2",
        })
    }
}

impl Function {
    /// The function of a 2-element variable, through the tape.
    pub fn eval(&self, x: &Var) -> taper_autograd::Result<Var> {
        let dt = x.dtype();
        let dev = x.device().clone();
        let weights = |a: f64, b: f64| -> taper_autograd::Result<Var> {
            Ok(Var::constant(Tensor::new(&[a, b], &Device::Cpu)?.to_dtype(dt)?.to_device(&dev)?))
        };
        match self {
            Self::D2l => x.sqr()?.mul(&weights(0.1, 2.0)?)?.sum_all(),
            Self::Sec72 => x.sqr()?.mul(&weights(1.0, 2.0)?)?.sum_all(),
            Self::Rosenbrock => {
                let x1 = x.narrow(0, 0, 1)?;
                let x2 = x.narrow(0, 1, 1)?;
                let a = x1.affine(-1.0, 1.0)?.sqr()?;
                let b = x2.sub(&x1.sqr()?)?.sqr()?.scale(100.0)?;
                a.add(&b)?.sum_all()
            }
        }
    }

    /// The function on plain numbers, for contour lines.
    pub fn value(&self, x1: f64, x2: f64) -> f64 {
        match self {
            Self::D2l => 0.1 * x1 * x1 + 2.0 * x2 * x2,
            Self::Sec72 => x1 * x1 + 2.0 * x2 * x2,
            Self::Rosenbrock => (1.0 - x1).powi(2) + 100.0 * (x2 - x1 * x1).powi(2),
        }
    }
}

/// d2l's line: `epoch %d, x1 %f, x2 %f`.
pub fn format_line(epoch: usize, x1: f64, x2: f64) -> String {
    format!("epoch {epoch}, x1 {x1:.6}, x2 {x2:.6}")
}

/// Runs `steps` optimizer steps from `start`, stepping `scheduler` (a spec) after each, given
/// that step's value of `f` (computed before the update) where it watches a metric; returns the
/// points visited, the start first.
pub fn run(
    function: Function,
    spec: &str,
    scheduler: Option<&str>,
    start: (f64, f64),
    steps: usize,
    dtype: DType,
    device: &Device,
) -> crate::optim::Result<Vec<(f64, f64)>> {
    let mut store = ParamStore::new();
    // A 1×2 matrix, so that matrix-only optimizers (Muon) draw too; every other optimizer treats
    // it as the two numbers it is (Adafactor's factors of a single row are its plain variance).
    let init = Tensor::new(&[[start.0, start.1]], &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
    let x = store.insert("x", init)?;
    let mut opt = crate::optim::from_spec(spec, store.trainable())?;
    let mut sched = scheduler.map(|s| Scheduler::new(s, opt.as_mut())).transpose()?;
    let mut points = vec![start];
    for _ in 0..steps {
        // Through a closure, so that closure-driven optimizers (L-BFGS) re-evaluate f.
        let (f, _) = opt.step_closure(&mut || {
            let tape = Tape::new();
            let f = function.eval(&tape.param(&x).reshape(2)?)?;
            Ok((f.to_scalar_f64()?, f.backward()?))
        })?;
        match &mut sched {
            Some(s) if s.needs_metric() => s.step_with_metric(opt.as_mut(), f)?,
            Some(s) => s.step(opt.as_mut())?,
            None => {}
        }
        // The point to report is the evaluation point (Schedule-Free's average `x`; for every
        // other optimizer the parameter itself), read as a loop that evaluates every step would.
        opt.set_train_mode(false)?;
        let v = x.value().flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        points.push((v[0], v[1]));
        opt.set_train_mode(true)?;
    }
    Ok(points)
}

/// A plotting window around the points (d2l draws `[-5.5, 1] × [-3, 1]` for its start).
pub fn window(points: &[(f64, f64)]) -> ((f64, f64), (f64, f64)) {
    let finite =
        points.iter().filter(|(a, b)| a.is_finite() && b.is_finite() && a.abs() < 1e3 && b.abs() < 1e3);
    let (mut x0, mut x1, mut y0, mut y1) = (-5.5f64, 1.0f64, -3.0f64, 1.0f64);
    for &(a, b) in finite {
        x0 = x0.min(a - 0.5);
        x1 = x1.max(a + 0.5);
        y0 = y0.min(b - 0.5);
        y1 = y1.max(b + 0.5);
    }
    ((x0, x1), (y0, y1))
}

// ---------------------------------------------------------------- command line and figure

/// d2l's 2-D traces: minimize a 2-D function with an optimizer spec, print d2l's
/// `epoch %d, x1 %f, x2 %f` lines and draw the trajectory over the contour lines.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "trace_2d", version)]
pub struct Args {
    /// Optimizer spec, e.g. "rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true".
    #[arg(long, default_value = "rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true")]
    pub optimizer: String,
    /// Function: d2l (0.1*x1^2+2*x2^2), sec7.2 (x1^2+2*x2^2) or rosenbrock.
    #[arg(long, default_value = "d2l")]
    pub function: String,
    /// Start point "x1,x2".
    #[arg(long, default_value = "-5,-2", allow_hyphen_values = true)]
    pub start: String,
    /// Number of steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Print every N-th step (0: only the last, as d2l; the last is always printed).
    #[arg(long, default_value_t = 0)]
    pub every: usize,
    /// Several optimizer specs "SPEC,SPEC,..." traced on one figure (replaces --optimizer).
    #[arg(long)]
    pub compare: Option<String>,
    /// Learning-rate scheduler spec, stepped after every optimizer step (e.g.
    /// "cosine:t_max=20", "plateau:patience=2"; a metric-driven one is given the step's f(x)).
    #[arg(long)]
    pub scheduler: Option<String>,
    /// f64 (as Python floats, the default) or f32.
    #[arg(long, default_value = "f64")]
    pub dtype: String,
    /// `--device`, `--out`.
    #[command(flatten)]
    pub common: Common,
}

/// One optimizer's trace and its printed lines.
pub struct Trace {
    /// The spec as given.
    pub spec: String,
    /// Points visited, the start first.
    pub points: Vec<(f64, f64)>,
    /// The lines printed for it.
    pub lines: Vec<String>,
}

fn parse_start(s: &str) -> Result<(f64, f64)> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [a, b] = parts.as_slice() else { bail!("--start must be two numbers \"x1,x2\", got `{s}`") };
    let x1: f64 = a.parse().with_context(|| format!("--start: `{a}` is not a number"))?;
    let x2: f64 = b.parse().with_context(|| format!("--start: `{b}` is not a number"))?;
    if !(x1.is_finite() && x2.is_finite()) {
        bail!("--start must be finite, got `{s}`");
    }
    Ok((x1, x2))
}

/// Runs the command line: computes every trace, writes `trace_2d.svg`, returns the traces (lines
/// included).
pub fn run_cli(args: &Args) -> Result<Vec<Trace>> {
    let function: Function = args.function.parse().map_err(anyhow::Error::msg)?;
    let start = parse_start(&args.start)?;
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let dtype = crate::tensor::parse_dtype(&args.dtype)?;
    let device = args.common.device()?;
    // Every spec is validated before any work.
    let specs = match &args.compare {
        Some(list) => crate::optim::checked_list(list)?,
        None => vec![crate::optim::canonical(&args.optimizer).map(|_| args.optimizer.clone())?],
    };
    if let Some(s) = &args.scheduler {
        crate::optim::schedule::parse(s)?;
    }
    let out = args.common.out_dir("trace_2d")?;
    let mut traces = Vec::new();
    for spec in specs {
        let points = run(function, &spec, args.scheduler.as_deref(), start, args.steps, dtype, &device)?;
        let lines: Vec<String> = points
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, _)| *i == args.steps || (args.every > 0 && i % args.every == 0))
            .map(|(i, &(x1, x2))| format_line(i, x1, x2))
            .collect();
        traces.push(Trace { spec, points, lines });
    }
    figure(&out.join("trace_2d.svg"), function, &traces)?;
    Ok(traces)
}

/// Every trace over the contour lines of `function`.
pub fn figure(path: &Path, function: Function, traces: &[Trace]) -> Result<()> {
    let series: Vec<Series> = traces.iter().map(|t| Series::new(t.spec.clone(), t.points.clone())).collect();
    let all: Vec<(f64, f64)> = traces.iter().flat_map(|t| t.points.iter().copied()).collect();
    let (xr, yr) = window(&all);
    let title = format!("f(x) = {function}");
    Ok(plot::contour_with_traces(path, &title, &|a, b| function.value(a, b), xr, yr, &series)?)
}
