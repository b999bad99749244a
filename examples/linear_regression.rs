//! The documents' linear regression — 100 points `x ~ U(0, 2)`, `y = 4 + 3x + N(0, 1)` — fitted
//! full-batch by gradient descent, AdaGrad and RMSprop: the document's settings (lr = 0.01,
//! γ = 0.9, ε = 1e-8, 1000 iterations) and better-tuned runs, beside the closed-form answer, with
//! the loss curves on one log-scale SVG.
//!
//! `cargo run --release --example linear_regression`

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use taper::experiments::linreg;
use taper::train::plot::{self, ChartSpec, Series};
use taper::DeviceSpec;

/// The document's runs, then better-tuned ones.
pub const DEFAULT_RUNS: &str = "sgd:lr=0.01,\
adagrad:lr=0.01,eps=1e-8,eps_in_sqrt=true,\
rmsprop:lr=0.01,gamma=0.9,eps=1e-8,eps_in_sqrt=true,\
sgd:lr=0.2,\
adagrad:lr=1,eps=1e-8,eps_in_sqrt=true,\
rmsprop:lr=0.02,gamma=0.99,eps=1e-8,eps_in_sqrt=true";

/// Fit the documents' linear regression with several optimizers.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Args {
    /// Optimizer specs "SPEC,SPEC,...".
    #[arg(long, default_value = DEFAULT_RUNS)]
    pub optimizers: String,
    /// Iterations (full-batch steps).
    #[arg(long, default_value_t = 1000)]
    pub iters: usize,
    /// Seed of the data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Directory for linear_regression.svg.
    #[arg(long, default_value = "out/linear_regression")]
    pub out: PathBuf,
}

/// Every run's fit.
pub struct Report {
    /// The closed-form `(b, w)`.
    pub closed_form: (f64, f64),
    /// `(spec, fit)` per optimizer.
    pub fits: Vec<(String, linreg::Fit)>,
}

/// Runs the example and writes the SVG.
pub fn run(args: &Args) -> Result<Report> {
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let device = DeviceSpec::open_str(&args.device)?;
    let specs = taper::optim::checked_list(&args.optimizers)?;
    plot::ensure_writable_dir(&args.out)?;
    let data = linreg::data(100, args.seed);
    let mut fits = Vec::new();
    for spec in specs {
        let fit = linreg::fit(&data, &spec, args.iters, &device)?;
        fits.push((spec, fit));
    }
    let series: Vec<Series> = fits
        .iter()
        .map(|(s, f)| {
            Series::new(s.clone(), f.losses.iter().enumerate().map(|(i, l)| (i as f64, *l)).collect())
        })
        .collect();
    let spec = ChartSpec {
        title: "linear regression: loss per iteration",
        x_label: "iteration",
        y_label: "MSE loss",
        log_y: true,
    };
    plot::line_chart(&args.out.join("linear_regression.svg"), &spec, &series)?;
    Ok(Report { closed_form: linreg::closed_form(&data), fits })
}

#[allow(dead_code)]
fn main() {
    taper::tensor::init_cpu();
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            println!("{:<55} {:>9} {:>9} {:>10}", "optimizer", "b", "w", "loss");
            for (spec, f) in &r.fits {
                println!(
                    "{spec:<55} {:>9.5} {:>9.5} {:>10.6}",
                    f.b,
                    f.w,
                    f.losses.last().unwrap_or(&f64::NAN)
                );
            }
            println!(
                "{:<55} {:>9.5} {:>9.5}",
                "closed form (least squares)", r.closed_form.0, r.closed_form.1
            );
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
