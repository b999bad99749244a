//! The seeds' central claim made visible: the effective learning rate `η / √(s_t + ε)` of
//! AdaGrad falls like `1/√t`, RMSprop's (γ = 0.9, 0.99) levels off. Prints a table at steps 1, 10,
//! 100, 1000 and plots the per-step mean on a log scale.
//!
//! `cargo run --release --example lr_decay`

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use taper::experiments::lr_decay::{self, Problem, Rates};
use taper::train::plot::{self, ChartSpec, Series};
use taper::DeviceSpec;

/// AdaGrad and RMSprop with γ = 0.9 and 0.99, d2l's ε inside the root.
pub const DEFAULT_SPECS: &str = "adagrad:lr=0.01,eps=1e-6,eps_in_sqrt=true,\
rmsprop:lr=0.01,gamma=0.9,eps=1e-6,eps_in_sqrt=true,\
rmsprop:lr=0.01,gamma=0.99,eps=1e-6,eps_in_sqrt=true";

/// Effective learning rate per step: AdaGrad against RMSprop.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
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
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Directory for lr_decay.svg.
    #[arg(long, default_value = "out/lr_decay")]
    pub out: PathBuf,
}

/// Runs the example and writes the SVG.
pub fn run(args: &Args) -> Result<Vec<Rates>> {
    let problem: Problem = args.problem.parse().map_err(anyhow::Error::msg)?;
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let device = DeviceSpec::open_str(&args.device)?;
    let specs = taper::optim::checked_list(&args.optimizers)?;
    plot::ensure_writable_dir(&args.out)?;
    let rates: Vec<Rates> =
        specs.iter().map(|s| lr_decay::record(problem, s, args.steps, &device)).collect::<Result<_, _>>()?;
    let series: Vec<Series> = rates
        .iter()
        .map(|r| Series::new(r.spec.clone(), (1..=args.steps).map(|t| (t as f64, r.mean_at(t))).collect()))
        .collect();
    let spec = ChartSpec {
        title: "effective learning rate η/√(s+ε), mean over parameters",
        x_label: "step",
        y_label: "effective learning rate",
        log_y: true,
    };
    plot::line_chart(&args.out.join("lr_decay.svg"), &spec, &series)?;
    Ok(rates)
}

#[allow(dead_code)]
fn main() {
    taper::tensor::init_cpu();
    let args = Args::parse();
    match run(&args) {
        Ok(rates) => {
            let steps: Vec<usize> = [1, 10, 100, 1000].into_iter().filter(|&t| t <= args.steps).collect();
            print!("{:<52}", "mean effective lr at step");
            for t in &steps {
                print!(" {t:>11}");
            }
            println!();
            for r in &rates {
                print!("{:<52}", r.spec);
                for &t in &steps {
                    print!(" {:>11.5}", r.mean_at(t));
                }
                println!();
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
