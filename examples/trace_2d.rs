//! d2l's 2-D optimization traces (chapter 7): minimize `0.1·x1² + 2·x2²` (or section 7.2's
//! `x1² + 2·x2²`, or Rosenbrock) from `(-5, -2)` with any optimizer spec, gradients from our tape,
//! print `epoch %d, x1 %f, x2 %f` and draw the trajectory over the contour lines.
//!
//! ```text
//! cargo run --release --example trace_2d -- --optimizer "rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true"
//! cargo run --release --example trace_2d -- --compare "adagrad:lr=0.4,eps=1e-6,eps_in_sqrt=true,rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true"
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use taper::experiments::trace2d::{self, Function};
use taper::train::plot::{self, Series};
use taper::DeviceSpec;

/// Minimize a 2-D function with an optimizer spec and plot the trace (d2l's show_trace_2d).
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
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
    /// f64 (as Python floats, the default) or f32.
    #[arg(long, default_value = "f64")]
    pub dtype: String,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Directory for trace_2d.svg.
    #[arg(long, default_value = "out/trace_2d")]
    pub out: PathBuf,
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

/// Runs the example: computes every trace, writes the SVG, returns the traces (lines included).
pub fn run(args: &Args) -> Result<Vec<Trace>> {
    let function: Function = args.function.parse().map_err(anyhow::Error::msg)?;
    let start = parse_start(&args.start)?;
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let dtype = taper::tensor::parse_dtype(&args.dtype)?;
    let device = DeviceSpec::open_str(&args.device)?;
    // Every spec is validated before any work.
    let specs = match &args.compare {
        Some(list) => taper::optim::checked_list(list)?,
        None => vec![taper::optim::canonical(&args.optimizer).map(|_| args.optimizer.clone())?],
    };
    plot::ensure_writable_dir(&args.out)?;
    let mut traces = Vec::new();
    for spec in specs {
        let points = trace2d::run(function, &spec, start, args.steps, dtype, &device)?;
        let lines: Vec<String> = points
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, _)| *i == args.steps || (args.every > 0 && i % args.every == 0))
            .map(|(i, &(x1, x2))| trace2d::format_line(i, x1, x2))
            .collect();
        traces.push(Trace { spec, points, lines });
    }
    let series: Vec<Series> = traces.iter().map(|t| Series::new(t.spec.clone(), t.points.clone())).collect();
    let all: Vec<(f64, f64)> = traces.iter().flat_map(|t| t.points.iter().copied()).collect();
    let (xr, yr) = trace2d::window(&all);
    let title = format!("f(x) = {function}");
    plot::contour_with_traces(
        &args.out.join("trace_2d.svg"),
        &title,
        &|a, b| function.value(a, b),
        xr,
        yr,
        &series,
    )?;
    Ok(traces)
}

#[allow(dead_code)]
fn main() {
    taper::tensor::init_cpu();
    let args = Args::parse();
    match run(&args) {
        Ok(traces) => {
            for t in &traces {
                if traces.len() > 1 {
                    println!("{}", t.spec);
                }
                for line in &t.lines {
                    println!("{line}");
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
