//! The training loop: epochs over a [`Loader`], a loss from a [`Task`], an optimizer step per
//! batch; optional clipping, a learning-rate schedule, evaluation hooks, a progress bar (quiet
//! when stderr is not a terminal), periodic and final checkpoints, and exact resume.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use taper_autograd::{ParamStore, Tape, Var};
use taper_optim::schedule::{self, LrSchedule};
use taper_optim::{clip, Optimizer, StepOutcome};

use crate::checkpoint::{self, Progress};
use crate::data::{Dataset, Loader};
use crate::plot::{self, ChartSpec, Series};
use crate::{Error, Result};

/// What is trained: a model's loss on a batch, and optional evaluations.
pub trait Task {
    /// The loss on `batch`, recorded on `tape`.
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var>;

    /// The value recorded on the curve every `record_every` examples (d2l: the loss over the
    /// whole data set). `None` records the mean batch loss since the previous point instead.
    fn record(&mut self) -> Result<Option<f64>> {
        Ok(None)
    }

    /// Called after every epoch (evaluation, early reporting).
    fn on_epoch(&mut self, _epoch: usize, _history: &History) -> Result<()> {
        Ok(())
    }
}

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Epochs to reach (a resumed run continues up to this many).
    pub epochs: usize,
    /// Batching and shuffling.
    pub loader: Loader,
    /// Record a curve point every this many examples (0: once per epoch).
    pub record_every: usize,
    /// Clip gradients to this global L2 norm.
    pub clip_norm: Option<f64>,
    /// Clip gradient elements to `[-v, v]`.
    pub clip_value: Option<f64>,
    /// A scheduler spec (`step:step_size=1,gamma=0.5`), stepped once per epoch.
    pub scheduler: Option<String>,
    /// Write a checkpoint here after every epoch (and every `save_every` steps).
    pub save: Option<PathBuf>,
    /// Also checkpoint every this many steps.
    pub save_every: Option<u64>,
    /// Resume from this checkpoint.
    pub resume: Option<PathBuf>,
    /// Show a progress bar (only ever drawn when stderr is a terminal).
    pub progress_bar: bool,
    /// Extra header fields for checkpoints.
    pub extra: BTreeMap<String, String>,
}

impl TrainConfig {
    /// Defaults: no clipping, schedule, checkpoints or progress bar; a record per epoch.
    pub fn new(epochs: usize, loader: Loader) -> Self {
        Self {
            epochs,
            loader,
            record_every: 0,
            clip_norm: None,
            clip_value: None,
            scheduler: None,
            save: None,
            save_every: None,
            resume: None,
            progress_bar: false,
            extra: BTreeMap::new(),
        }
    }
}

/// A point of the curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// Epochs done, fractional (`examples / n`).
    pub epoch: f64,
    /// The recorded value.
    pub value: f64,
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The curve.
    pub records: Vec<Record>,
    /// Mean batch loss of each epoch run here.
    pub epoch_loss: Vec<f64>,
    /// Wall time of each epoch run here, in seconds.
    pub epoch_seconds: Vec<f64>,
    /// Training examples per second over the epochs run here.
    pub examples_per_second: f64,
    /// Optimizer steps in total (including those before a resume).
    pub steps: u64,
    /// Steps skipped for a non-finite gradient (with `NonFinite::Skip`).
    pub skipped: u64,
}

impl History {
    /// Writes the curve as CSV: `epoch,value`.
    pub fn write_csv(&self, path: &Path) -> Result<()> {
        let mut s = String::from("epoch,value\n");
        for r in &self.records {
            s.push_str(&format!("{},{}\n", r.epoch, r.value));
        }
        std::fs::write(path, s).map_err(crate::error::io_err(path))
    }

    /// The curve as a plot series.
    pub fn series(&self, name: &str) -> Series {
        Series::new(name, self.records.iter().map(|r| (r.epoch, r.value)).collect())
    }

    /// Writes the curve as an SVG line chart.
    pub fn write_svg(&self, path: &Path, title: &str, y_label: &str) -> Result<()> {
        plot::line_chart(
            path,
            &ChartSpec { title, x_label: "epoch", y_label, log_y: false },
            &[self.series("loss")],
        )
    }
}

fn progress_bar(enabled: bool, len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if enabled && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Trains `params` with `opt` on `data` as `cfg` says, calling `task` for the loss.
pub fn train(
    task: &mut dyn Task,
    params: &ParamStore,
    opt: &mut dyn Optimizer,
    data: &Dataset,
    cfg: &TrainConfig,
) -> Result<History> {
    let n = data.len();
    if n == 0 {
        return Err(Error::InvalidArgument("no training examples".into()));
    }
    let sched = match &cfg.scheduler {
        Some(spec) => Some(LrSchedule::new(schedule::parse(spec)?, opt)),
        None => None,
    };
    let mut progress = Progress { seed: cfg.loader.seed, extra: cfg.extra.clone(), ..Progress::default() };
    if let Some(path) = &cfg.resume {
        let saved = checkpoint::load(path, params, opt)?;
        if saved.seed != cfg.loader.seed {
            return Err(Error::Checkpoint {
                path: path.clone(),
                msg: format!(
                    "saved by a run with seed {}, this run's seed is {}: use the same seed",
                    saved.seed, cfg.loader.seed
                ),
            });
        }
        progress = Progress { extra: cfg.extra.clone(), ..saved };
    }
    let mut hist = History { steps: progress.step, ..History::default() };
    let batches_per_epoch = cfg.loader.batches(n);
    let mut examples_seen = (progress.epoch as usize * n) as f64;
    if progress.step == 0 && progress.epoch == 0 && cfg.record_every > 0 {
        if let Some(v) = task.record()? {
            hist.records.push(Record { epoch: 0.0, value: v });
        }
    }
    let started = Instant::now();
    let mut trained_examples = 0usize;
    for epoch in progress.epoch as usize..cfg.epochs {
        if let Some(s) = &sched {
            s.apply(opt, epoch as u64)?;
        }
        let t0 = Instant::now();
        let bar = progress_bar(cfg.progress_bar, batches_per_epoch as u64);
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));
        let skip = if epoch as u64 == progress.epoch { progress.batch_in_epoch as usize } else { 0 };
        let (mut loss_sum, mut loss_count, mut since_record) = (0.0, 0usize, (0.0, 0usize));
        // The next multiple of record_every past what has been seen (0 when not recording).
        let mut next_record =
            (examples_seen as usize).checked_div(cfg.record_every).map_or(0, |k| (k + 1) * cfg.record_every);
        for (b, ids) in cfg.loader.epoch_batches(n, epoch).into_iter().enumerate().skip(skip) {
            let batch = data.select(&ids)?;
            let tape = Tape::new();
            let loss = task.loss(&tape, &batch)?;
            let value = loss.to_scalar_f64()?;
            let mut grads = loss.backward()?;
            if let Some(v) = cfg.clip_value {
                clip::clip_grad_value(&mut grads, &opt.params(), v)?;
            }
            if let Some(m) = cfg.clip_norm {
                clip::clip_grad_norm(&mut grads, &opt.params(), m)?;
            }
            match opt.step(&grads)? {
                StepOutcome::Applied => {}
                StepOutcome::Skipped { .. } => hist.skipped += 1,
            }
            hist.steps += 1;
            loss_sum += value;
            loss_count += 1;
            since_record = (since_record.0 + value, since_record.1 + 1);
            examples_seen += ids.len() as f64;
            trained_examples += ids.len();
            if cfg.record_every > 0 && examples_seen as usize >= next_record {
                next_record += cfg.record_every;
                let v = match task.record()? {
                    Some(v) => v,
                    None => since_record.0 / since_record.1.max(1) as f64,
                };
                since_record = (0.0, 0);
                hist.records.push(Record { epoch: examples_seen / n as f64, value: v });
            }
            bar.inc(1);
            if b % 10 == 0 {
                let rate = trained_examples as f64 / started.elapsed().as_secs_f64().max(1e-9);
                bar.set_message(format!("loss {:.4}  {rate:.0} ex/s", loss_sum / loss_count as f64));
            }
            if let (Some(path), Some(every)) = (&cfg.save, cfg.save_every) {
                if every > 0 && hist.steps.is_multiple_of(every) {
                    let p = Progress {
                        step: hist.steps,
                        epoch: epoch as u64,
                        batch_in_epoch: b as u64 + 1,
                        ..progress.clone()
                    };
                    checkpoint::save(path, params, opt, &p)?;
                }
            }
        }
        bar.finish_and_clear();
        hist.epoch_seconds.push(t0.elapsed().as_secs_f64());
        hist.epoch_loss.push(loss_sum / loss_count.max(1) as f64);
        if cfg.record_every == 0 {
            let v = match task.record()? {
                Some(v) => v,
                None => loss_sum / loss_count.max(1) as f64,
            };
            hist.records.push(Record { epoch: (epoch + 1) as f64, value: v });
        }
        progress.epoch = epoch as u64 + 1;
        progress.batch_in_epoch = 0;
        progress.step = hist.steps;
        if let Some(path) = &cfg.save {
            checkpoint::save(path, params, opt, &progress)?;
        }
        task.on_epoch(epoch, &hist)?;
    }
    hist.examples_per_second = trained_examples as f64 / started.elapsed().as_secs_f64().max(1e-9);
    Ok(hist)
}
