//! The documents' MNIST ConvNet (and an MLP) with any optimizer spec; `--compare` trains several
//! optimizers from the same initial weights and plots their loss curves on one SVG.
//!
//! With only the MNIST test set at hand (`../shared/data/mnist`), train on its first 8,000 images
//! and hold out the last 2,000:
//!
//! ```text
//! TAPER_DATA_DIR=../shared/data cargo run --release --example mnist -- --split test --train-limit 8000 --holdout 2000 --epochs 2
//! ```

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Parser;
use taper::experiments::mnist::{self, Classifier, Model};
use taper::train::mnist::Split;
use taper::train::plot::{self, ChartSpec, Series};
use taper::train::{train, Loader, TrainConfig};
use taper::{DType, DeviceSpec};

/// Train the documents' ConvNet (or an MLP) on MNIST.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Args {
    /// Optimizer spec.
    #[arg(long, default_value = "adam:lr=0.001")]
    pub optimizer: String,
    /// Several specs "SPEC,SPEC,..." trained from the same initial weights (replaces --optimizer).
    #[arg(long)]
    pub compare: Option<String>,
    /// convnet or mlp.
    #[arg(long, default_value = "convnet")]
    pub model: String,
    /// Epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Which MNIST files to read: train (60,000) or test (10,000).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Train on the first N examples of the split (default: all but the hold-out).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Hold out the N examples after the training ones for accuracy.
    #[arg(long, default_value_t = 10_000)]
    pub holdout: usize,
    /// Seed (initialization and shuffling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Clip gradients to this global norm.
    #[arg(long)]
    pub clip_norm: Option<f64>,
    /// Scheduler spec, stepped per epoch (e.g. "step:step_size=1,gamma=0.5").
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Write a checkpoint here after every epoch.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also checkpoint every N steps.
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Resume from a checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Directory with mnist/*.gz (default: $TAPER_DATA_DIR, else ~/.cache/taper).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download missing files.
    #[arg(long)]
    pub offline: bool,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Directory for mnist.svg and curves.
    #[arg(long, default_value = "out/mnist")]
    pub out: PathBuf,
    /// Show a progress bar (when stderr is a terminal).
    #[arg(long)]
    pub progress: bool,
}

/// One optimizer's result.
pub struct RunResult {
    /// Spec.
    pub spec: String,
    /// Mean training loss per epoch.
    pub epoch_loss: Vec<f64>,
    /// Held-out accuracy after each epoch.
    pub accuracy: Vec<f64>,
    /// Training images per second.
    pub images_per_second: f64,
    /// The training curve.
    pub history: taper::train::History,
}

struct Eval<'a> {
    task: Classifier,
    holdout: &'a taper::train::Dataset,
    accuracy: Vec<f64>,
    verbose: bool,
}

impl taper::train::Task for Eval<'_> {
    fn loss(
        &mut self,
        tape: &taper::Tape,
        batch: &taper::train::Dataset,
    ) -> taper::autograd::Result<taper::Var> {
        self.task.loss(tape, batch)
    }
    fn on_epoch(&mut self, epoch: usize, h: &taper::train::History) -> taper::train::Result<()> {
        let acc = mnist::accuracy(&self.task.net, self.holdout)?;
        self.accuracy.push(acc);
        if self.verbose {
            let secs = h.epoch_seconds.last().copied().unwrap_or(f64::NAN);
            println!(
                "epoch {}: loss {:.4}, held-out accuracy {:.2}%, {secs:.1} s",
                epoch + 1,
                h.epoch_loss.last().copied().unwrap_or(f64::NAN),
                100.0 * acc
            );
        }
        Ok(())
    }
}

/// Runs the example; `verbose` prints per-epoch lines as they come.
pub fn run(args: &Args, verbose: bool) -> Result<Vec<RunResult>> {
    let model: Model = args.model.parse().map_err(anyhow::Error::msg)?;
    let split = match args.split.as_str() {
        "train" => Split::Train,
        "test" => Split::Test,
        other => bail!("unknown --split `{other}`: expected train or test"),
    };
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    let specs = match &args.compare {
        Some(list) => taper::optim::checked_list(list)?,
        None => vec![taper::optim::canonical(&args.optimizer).map(|_| args.optimizer.clone())?],
    };
    if let Some(s) = &args.scheduler {
        taper::optim::schedule::parse(s)?;
    }
    if specs.len() > 1 && (args.save.is_some() || args.resume.is_some()) {
        bail!("--save and --resume take a single --optimizer, not --compare");
    }
    let device = DeviceSpec::open_str(&args.device)?;
    plot::ensure_writable_dir(&args.out)?;
    let dir = taper::train::download::data_dir(args.data_dir.as_deref());
    let all = taper::train::mnist::load(&dir, split, !args.offline, DType::F32, &device)?;
    let holdout = args.holdout.min(all.len());
    let train_n = args.train_limit.unwrap_or(all.len() - holdout);
    if train_n == 0 || train_n + holdout > all.len() {
        bail!("--train-limit {train_n} + --holdout {holdout} must be positive and at most the split's {} images", all.len());
    }
    let (train_set, held) = mnist::split(&all, train_n, holdout)?;
    let mut results = Vec::new();
    for spec in specs {
        // Same seed: every optimizer starts from the same weights and sees the same batches.
        let (net, store) = mnist::build(model, args.seed, DType::F32, &device)?;
        let mut opt = taper::optim::from_spec(&spec, store.trainable())?;
        let mut cfg = TrainConfig::new(args.epochs, Loader::new(args.batch_size, true, false, args.seed)?);
        cfg.record_every = 640;
        cfg.clip_norm = args.clip_norm;
        cfg.scheduler = args.scheduler.clone();
        cfg.save = args.save.clone();
        cfg.save_every = args.save_every;
        cfg.resume = args.resume.clone();
        cfg.progress_bar = args.progress;
        cfg.extra.insert("model".into(), args.model.clone());
        if verbose {
            println!("{spec}");
        }
        let mut eval = Eval { task: Classifier { net }, holdout: &held, accuracy: Vec::new(), verbose };
        let history = train(&mut eval, &store, opt.as_mut(), &train_set, &cfg)?;
        if verbose {
            println!("training: {:.0} images/s", history.examples_per_second);
        }
        results.push(RunResult {
            spec,
            epoch_loss: history.epoch_loss.clone(),
            accuracy: eval.accuracy,
            images_per_second: history.examples_per_second,
            history,
        });
    }
    let series: Vec<Series> = results.iter().map(|r| r.history.series(&r.spec)).collect();
    let chart = ChartSpec {
        title: "MNIST: training loss",
        x_label: "epoch",
        y_label: "mean batch loss",
        log_y: true,
    };
    plot::line_chart(&args.out.join("mnist.svg"), &chart, &series)?;
    Ok(results)
}

#[allow(dead_code)]
fn main() {
    taper::tensor::init_cpu();
    let args = Args::parse();
    if let Err(e) = run(&args, true) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
