//! d2l chapter 7's airfoil experiments (sections 7.3–7.8): each section's optimizer in the book's
//! from-scratch form and the library form, printing d2l's `loss: %f, %f sec per epoch` and
//! plotting the loss (over all 1500 rows, every 100 examples) against the epoch.
//!
//! ```text
//! TAPER_DATA_DIR=../shared/data cargo run --release --example airfoil
//! cargo run --release --example airfoil -- --compare "sgd:lr=0.05,adagrad:lr=0.1,rmsprop:lr=0.01,alpha=0.9" --form library
//! ```

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use taper::experiments::airfoil::{self, Form, Outcome};
use taper::train::plot::{self, ChartSpec, Series};
use taper::DeviceSpec;

/// d2l's airfoil runs (chapter 7): every section, or the optimizers you name.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Args {
    /// Optimizer specs "SPEC,SPEC,..." to run instead of the chapter's runs.
    #[arg(long)]
    pub compare: Option<String>,
    /// With --compare: scratch (w ~ N(0, 0.01²), b = 0) or library (nn.Linear's init).
    #[arg(long, default_value = "scratch")]
    pub form: String,
    /// Epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Seed (initialization and shuffling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory with airfoil_self_noise.dat (default: $TAPER_DATA_DIR, else ~/.cache/taper).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download a missing file.
    #[arg(long)]
    pub offline: bool,
    /// Write a checkpoint here after every epoch (one run: --compare with a single spec).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also checkpoint every N steps.
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Resume from a checkpoint (one run: --compare with a single spec).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Directory for airfoil.svg and the curves' CSV.
    #[arg(long, default_value = "out/airfoil")]
    pub out: PathBuf,
}

/// One run's label, spec and outcome.
pub struct RunResult {
    /// The book's section, or "" for --compare runs.
    pub section: String,
    /// Label.
    pub label: String,
    /// Spec.
    pub spec: String,
    /// Outcome.
    pub outcome: Outcome,
}

/// Runs the example and writes the SVG and CSVs.
pub fn run(args: &Args) -> Result<Vec<RunResult>> {
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let form = match args.form.as_str() {
        "scratch" => Form::Scratch,
        "library" => Form::Library,
        other => bail!("unknown --form `{other}`: expected scratch or library"),
    };
    let device = DeviceSpec::open_str(&args.device)?;
    let runs: Vec<(String, String, String, Form)> = match &args.compare {
        Some(list) => taper::optim::OptimSpec::parse_list(list)?
            .iter()
            .map(|s| (String::new(), s.to_string(), s.to_string(), form))
            .collect(),
        None => {
            airfoil::RUNS.iter().map(|r| (r.section.into(), r.label.into(), r.spec.into(), r.form)).collect()
        }
    };
    for (_, _, spec, _) in &runs {
        taper::optim::canonical(spec)?;
    }
    if (args.save.is_some() || args.resume.is_some()) && runs.len() != 1 {
        bail!("--save and --resume need exactly one run: --compare with a single optimizer spec");
    }
    plot::ensure_writable_dir(&args.out)?;
    let dir = taper::train::download::data_dir(args.data_dir.as_deref());
    let data = airfoil::data(&dir, !args.offline, &device)?;
    let mut results = Vec::new();
    for (section, label, spec, form) in runs {
        let outcome = airfoil::run_with(&data, &spec, form, args.seed, args.epochs, |cfg| {
            cfg.save = args.save.clone();
            cfg.save_every = args.save_every;
            cfg.resume = args.resume.clone();
        })?;
        let file = format!("airfoil_{}.csv", results.len());
        outcome.history.write_csv(&args.out.join(file))?;
        results.push(RunResult { section, label, spec, outcome });
    }
    let series: Vec<Series> = results
        .iter()
        .map(|r| r.outcome.history.series(format!("{} {}", r.section, r.label).trim()))
        .collect();
    let spec =
        ChartSpec { title: "airfoil: loss over all rows", x_label: "epoch", y_label: "loss", log_y: false };
    plot::line_chart(&args.out.join("airfoil.svg"), &spec, &series)?;
    Ok(results)
}

#[allow(dead_code)]
fn main() {
    taper::tensor::init_cpu();
    let args = Args::parse();
    match run(&args) {
        Ok(results) => {
            for r in &results {
                println!("{} {} ({})", r.section, r.label, r.spec);
                println!("{}", airfoil::format_line(&r.outcome));
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
