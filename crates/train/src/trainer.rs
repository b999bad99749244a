//! The training loop: epochs over a [`Loader`], a loss from a [`Task`], an optimizer step per
//! batch; optional clipping, a learning-rate schedule, evaluation hooks, a progress bar (quiet
//! when stderr is not a terminal), periodic and final checkpoints, and exact resume.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use taper_autograd::{ParamStore, Tape, Var};
use taper_optim::schedule::{LrScheduler, Scheduler};
use taper_optim::{clip, AveragedModel, Averaging, Optimizer, StepOutcome};

use crate::checkpoint::{self, Progress};
use crate::data::{Dataset, Loader};
use crate::tensorboard::{StepStats, SummaryWriter};
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

    /// Whether to end training now (early stopping: a target reached, a metric that stopped
    /// improving), asked after every curve point; the run then ends as a
    /// `max_steps` limit ends it, checkpoint included. Never, by default.
    fn should_stop(&mut self, _history: &History) -> bool {
        false
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
    /// A learning-rate scheduler, attached when training starts and stepped after every epoch
    /// (or every optimizer step, with `scheduler_every_step`), as in PyTorch's loops; its state
    /// rides in checkpoints. A metric-driven one (`plateau`) watches the mean training loss of
    /// the epoch (or the step's loss). From a spec (`schedule::parse("cosine:t_max=10")`, or
    /// [`TrainConfig::with_scheduler`]) or built in code, closures included (`LambdaLr::new`).
    pub scheduler: Option<Box<dyn LrScheduler>>,
    /// Step the scheduler after every optimizer step instead of every epoch.
    pub scheduler_every_step: bool,
    /// Keep an average of the parameters (`Averaging::Swa`, `Averaging::Ema { decay }`; specs
    /// `swa`, `ema:decay=0.999` through [`TrainConfig::with_average`]), updated after every
    /// optimizer step (`AveragedModel.update_parameters`), saved in checkpoints and returned in
    /// [`History::averaged`].
    pub average: Option<Averaging>,
    /// Write a checkpoint here after every epoch (and every `save_every` steps).
    pub save: Option<PathBuf>,
    /// Also checkpoint every this many steps.
    pub save_every: Option<u64>,
    /// Resume from this checkpoint.
    pub resume: Option<PathBuf>,
    /// Show a progress bar (only ever drawn when stderr is a terminal).
    pub progress_bar: bool,
    /// Stop after this many optimizer steps in all (a resumed run counts the saved ones), saving
    /// a checkpoint of the position when `save` is set.
    pub max_steps: Option<u64>,
    /// Extra header fields for checkpoints.
    pub extra: BTreeMap<String, String>,
    /// Write TensorBoard event files here ([`crate::tensorboard`]): every step's loss, gradient
    /// norm (before clipping), update-to-parameter ratio `‖θₜ - θₜ₋₁‖/‖θₜ₋₁‖` and each group's
    /// learning rate (`train/loss`, `train/grad_norm`, `train/update_ratio`, `lr/group_{g}`);
    /// each curve point (`eval/{record_name}`, or `train/window_loss` for a task that records
    /// none) with the throughput (`train/examples_per_second`); each epoch's mean loss
    /// (`train/epoch_loss`). The ratio costs a copy of the parameters per step.
    pub logdir: Option<PathBuf>,
    /// The name of [`Task::record`]'s value in TensorBoard (`eval/{record_name}`; `"record"`).
    pub record_name: String,
}

impl TrainConfig {
    /// Defaults: no clipping, schedule, checkpoints or step limit; a record per epoch; a progress
    /// bar when stderr is a terminal.
    pub fn new(epochs: usize, loader: Loader) -> Self {
        Self {
            epochs,
            loader,
            record_every: 0,
            clip_norm: None,
            clip_value: None,
            scheduler: None,
            scheduler_every_step: false,
            average: None,
            save: None,
            save_every: None,
            resume: None,
            progress_bar: true,
            max_steps: None,
            extra: BTreeMap::new(),
            logdir: None,
            record_name: "record".into(),
        }
    }

    /// This configuration with the scheduler a spec names (`onecycle:max_lr=0.1,total_steps=500`).
    pub fn with_scheduler(mut self, spec: &str) -> Result<Self> {
        self.scheduler = Some(taper_optim::schedule::parse(spec)?);
        Ok(self)
    }

    /// This configuration with the weight averaging a spec names (`swa`, `ema:decay=0.999`).
    pub fn with_average(mut self, spec: &str) -> Result<Self> {
        self.average = Some(Averaging::parse(spec)?);
        Ok(self)
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
    /// The averaged parameters, with `TrainConfig::average`.
    pub averaged: Option<AveragedModel>,
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

    /// The curve as `(epoch, value)` points.
    pub fn points(&self) -> Vec<(f64, f64)> {
        self.records.iter().map(|r| (r.epoch, r.value)).collect()
    }
}

/// A progress bar of `len` steps on stderr, drawn only when `enabled` and stderr is a terminal
/// (hidden otherwise, so logs and pipes get no control characters).
pub fn progress_bar(enabled: bool, len: u64) -> ProgressBar {
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

/// A run in progress: where it is (what a checkpoint records) and what it has measured.
struct Run<'a> {
    cfg: &'a TrainConfig,
    /// Training examples.
    n: usize,
    progress: Progress,
    hist: History,
    /// Examples seen since the run's start (before a resume included).
    examples_seen: usize,
    /// The next `examples_seen` at which a curve point is due (with `record_every > 0`).
    next_record: usize,
    /// Examples trained in this process, and since when (for the speed).
    trained_here: usize,
    started: Instant,
    /// The learning-rate scheduler, attached to the optimizer.
    sched: Option<Scheduler>,
    /// The TensorBoard writer, with `logdir`.
    board: Option<SummaryWriter>,
    /// The task asked to stop ([`Task::should_stop`]).
    stopped: bool,
}

impl<'a> Run<'a> {
    /// A fresh run, or the run a checkpoint left off.
    fn start(cfg: &'a TrainConfig, n: usize, params: &ParamStore, opt: &mut dyn Optimizer) -> Result<Self> {
        let mut progress = Progress { seed: cfg.loader.seed, ..Progress::default() };
        // Attached first, as PyTorch builds a scheduler before loading state into it and the
        // optimizer (attaching sets rates, which the optimizer's saved state then restores).
        let mut sched = match &cfg.scheduler {
            Some(s) => Some(Scheduler::from_boxed(s.clone(), opt)?),
            None => None,
        };
        let mut averaged = match cfg.average {
            Some(a) => Some(AveragedModel::with(a, opt.params())?),
            None => None,
        };
        if let Some(path) = &cfg.resume {
            let saved = checkpoint::load_training(path, params, opt, sched.as_mut(), averaged.as_mut())?;
            if saved.seed != cfg.loader.seed {
                return Err(Error::Checkpoint {
                    path: path.clone(),
                    msg: format!(
                        "saved by a run with seed {}, this run's seed is {}: use the same seed",
                        saved.seed, cfg.loader.seed
                    ),
                });
            }
            progress = saved;
        }
        progress.extra = cfg.extra.clone();
        // Examples seen: whole epochs, then the batches of the current epoch already consumed.
        let in_epoch: usize = cfg
            .loader
            .epoch_batches(n, progress.epoch as usize)
            .iter()
            .take(progress.batch_in_epoch as usize)
            .map(Vec::len)
            .sum();
        let examples_seen = progress.epoch as usize * n + in_epoch;
        let next_record =
            examples_seen.checked_div(cfg.record_every).map_or(0, |k| (k + 1) * cfg.record_every);
        let hist = History {
            records: progress.records.clone(),
            steps: progress.step,
            skipped: progress.skipped,
            averaged,
            ..History::default()
        };
        Ok(Self {
            cfg,
            n,
            progress,
            hist,
            examples_seen,
            next_record,
            trained_here: 0,
            started: Instant::now(),
            sched,
            board: cfg.logdir.as_ref().map(SummaryWriter::new).transpose()?,
            stopped: false,
        })
    }

    /// Steps the scheduler, if any; `metric` is what a metric-driven one watches.
    fn step_scheduler(&mut self, opt: &mut dyn Optimizer, metric: f64) -> Result<()> {
        match &mut self.sched {
            Some(s) if s.needs_metric() => Ok(s.step_with_metric(opt, metric)?),
            Some(s) => Ok(s.step(opt)?),
            None => Ok(()),
        }
    }

    /// Whether the step budget (`max_steps`) is spent or the task asked to stop.
    fn done(&self) -> bool {
        self.stopped || self.cfg.max_steps.is_some_and(|m| self.hist.steps >= m)
    }

    /// Adds a curve point: `task.record()`, else the mean batch loss since the last point.
    fn record(&mut self, task: &mut dyn Task, epoch: f64) -> Result<()> {
        let (sum, count) = self.progress.window;
        let (value, tag) = match task.record()? {
            Some(v) => (v, format!("eval/{}", self.cfg.record_name)),
            None => (sum / count.max(1) as f64, "train/window_loss".to_string()),
        };
        self.progress.window = (0.0, 0);
        self.hist.records.push(Record { epoch, value });
        let speed = self.speed();
        if let Some(b) = &mut self.board {
            b.add_scalars(self.hist.steps, &[(tag.as_str(), value), ("train/examples_per_second", speed)])?;
            b.flush()?;
        }
        Ok(())
    }

    /// Logs a step's loss, gradient norm, update ratio and learning rates (with `logdir`).
    fn log_step(&mut self, opt: &dyn Optimizer, value: f64, stats: &StepStats) -> Result<()> {
        match &mut self.board {
            Some(b) => stats.log(b, self.hist.steps, value, opt),
            None => Ok(()),
        }
    }

    /// Books one trained batch of `size` examples with loss `value`.
    fn count_batch(
        &mut self,
        task: &mut dyn Task,
        opt: &mut dyn Optimizer,
        size: usize,
        value: f64,
    ) -> Result<()> {
        self.hist.steps += 1;
        self.progress.batch_in_epoch += 1;
        let (sum, count) = self.progress.epoch_loss;
        self.progress.epoch_loss = (sum + value, count + 1);
        let (sum, count) = self.progress.window;
        self.progress.window = (sum + value, count + 1);
        self.examples_seen += size;
        self.trained_here += size;
        if self.cfg.record_every > 0 && self.examples_seen >= self.next_record {
            self.next_record += self.cfg.record_every;
            opt.set_train_mode(false)?;
            self.record(task, self.examples_seen as f64 / self.n as f64)?;
            self.stopped = task.should_stop(&self.hist);
        }
        Ok(())
    }

    /// Ends epoch `epoch`: its mean loss and time, the per-epoch curve point, the position.
    fn end_epoch(&mut self, task: &mut dyn Task, epoch: usize, seconds: f64) -> Result<()> {
        let (sum, count) = self.progress.epoch_loss;
        self.hist.epoch_seconds.push(seconds);
        self.hist.epoch_loss.push(sum / count.max(1) as f64);
        if self.cfg.record_every == 0 {
            self.record(task, (epoch + 1) as f64)?;
            self.stopped = task.should_stop(&self.hist);
        }
        self.progress.epoch = epoch as u64 + 1;
        self.progress.batch_in_epoch = 0;
        self.progress.epoch_loss = (0.0, 0);
        if let Some(b) = &mut self.board {
            b.add_scalar("train/epoch_loss", sum / count.max(1) as f64, self.hist.steps)?;
            b.flush()?;
        }
        Ok(())
    }

    /// Writes a checkpoint of where the run is.
    fn save(&mut self, params: &ParamStore, opt: &mut dyn Optimizer) -> Result<()> {
        let Some(path) = &self.cfg.save else { return Ok(()) };
        // Checkpoints hold the evaluation point (Schedule-Free's `x`), as the reference saves.
        opt.set_train_mode(false)?;
        self.progress.step = self.hist.steps;
        self.progress.skipped = self.hist.skipped;
        self.progress.records = self.hist.records.clone();
        self.progress.scheduler = self.sched.as_ref().map(|s| (s.spec(), s.state()));
        self.progress.average = self.hist.averaged.as_ref().map(AveragedModel::export_state).transpose()?;
        checkpoint::save(path, params, opt, &self.progress)
    }

    fn speed(&self) -> f64 {
        self.trained_here as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }
}

/// One optimizer step on `batch`: loss, gradients, clipping, update, through a closure that
/// L-BFGS calls as often as it needs (every other optimizer once). Returns the loss.
fn train_step(
    task: &mut dyn Task,
    opt: &mut dyn Optimizer,
    cfg: &TrainConfig,
    batch: &Dataset,
    hist: &mut History,
    stats: Option<&mut StepStats>,
) -> Result<f64> {
    let params = opt.params();
    let logging = stats.is_some();
    let before = if logging { Some(StepStats::snapshot(&params)?) } else { None };
    let mut grad_norm = f64::NAN;
    let (value, outcome) = opt.step_closure(&mut || {
        let tape = Tape::new();
        let loss = task.loss(&tape, batch)?;
        let value = loss.to_scalar_f64()?;
        let mut grads = loss.backward()?;
        if logging {
            grad_norm = clip::grad_norm(&grads, &params)?;
        }
        if let Some(v) = cfg.clip_value {
            clip::clip_grad_value(&mut grads, &params, v)?;
        }
        if let Some(m) = cfg.clip_norm {
            clip::clip_grad_norm(&mut grads, &params, m)?;
        }
        Ok((value, grads))
    })?;
    if let StepOutcome::Skipped { .. } = outcome {
        hist.skipped += 1;
    }
    if let (Some(stats), Some(before)) = (stats, before) {
        *stats = StepStats { grad_norm, update_ratio: StepStats::update_ratio(&before, &params)? };
    }
    Ok(value)
}

/// Trains `params` with `opt` on `data` as `cfg` says, calling `task` for the loss. A run resumed
/// from a checkpoint (`cfg.resume`) continues exactly where the saved run was: same parameters,
/// optimizer state, data order and curve, so its [`History::records`] are the uninterrupted run's.
/// The optimizer is left in evaluation mode (`set_train_mode(false)`: for Schedule-Free,
/// the parameters hold the averaged point to evaluate).
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
    let mut run = Run::start(cfg, n, params, opt)?;
    // Evaluation (curve points, `on_epoch`) and checkpoints see the optimizer in evaluation mode,
    // steps in training mode: a no-op except for optimizers whose parameters hold another point
    // for evaluation (Schedule-Free), which move between the two exactly where the reference's
    // `optimizer.eval()` / `optimizer.train()` calls would.
    opt.set_train_mode(false)?;
    if run.hist.steps == 0 && run.progress.epoch == 0 && cfg.record_every > 0 {
        if let Some(v) = task.record()? {
            run.hist.records.push(Record { epoch: 0.0, value: v });
        }
    }
    let batches_per_epoch = cfg.loader.batches(n);
    for epoch in run.progress.epoch as usize..cfg.epochs {
        if run.done() {
            break;
        }
        let t0 = Instant::now();
        let bar = progress_bar(cfg.progress_bar, batches_per_epoch as u64);
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.epochs));
        bar.set_position(run.progress.batch_in_epoch);
        let skip = run.progress.batch_in_epoch as usize;
        for ids in cfg.loader.epoch_batches(n, epoch).into_iter().skip(skip) {
            if run.done() {
                break;
            }
            if !opt.train_mode() {
                opt.set_train_mode(true)?;
            }
            let mut stats = StepStats::default();
            let logging = run.board.is_some();
            let value = train_step(
                task,
                opt,
                cfg,
                &data.select(&ids)?,
                &mut run.hist,
                logging.then_some(&mut stats),
            )?;
            if let Some(avg) = &mut run.hist.averaged {
                avg.update()?;
            }
            run.count_batch(task, opt, ids.len(), value)?;
            run.log_step(opt, value, &stats)?;
            if cfg.scheduler_every_step {
                run.step_scheduler(opt, value)?;
            }
            bar.inc(1);
            if run.progress.batch_in_epoch % 10 == 1 {
                let (sum, count) = run.progress.epoch_loss;
                bar.set_message(format!("loss {:.4}  {:.0} ex/s", sum / count.max(1) as f64, run.speed()));
            }
            if cfg.save_every.is_some_and(|every| every > 0 && run.hist.steps.is_multiple_of(every)) {
                run.save(params, opt)?;
            }
        }
        bar.finish_and_clear();
        if run.progress.batch_in_epoch as usize == batches_per_epoch {
            opt.set_train_mode(false)?;
            run.end_epoch(task, epoch, t0.elapsed().as_secs_f64())?;
            if !cfg.scheduler_every_step {
                let mean = run.hist.epoch_loss.last().copied().unwrap_or(f64::NAN);
                run.step_scheduler(opt, mean)?;
            }
            run.save(params, opt)?;
            task.on_epoch(epoch, &run.hist)?;
        } else {
            // Stopped inside the epoch by `max_steps`: save the position for a resume.
            run.save(params, opt)?;
        }
    }
    opt.set_train_mode(false)?;
    run.hist.examples_per_second = run.speed();
    Ok(run.hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_is_on_by_default_and_drawn_only_on_a_terminal() {
        let cfg = TrainConfig::new(1, Loader::new(4, false, false, 0).unwrap());
        assert!(cfg.progress_bar, "tqdm and indicatif users expect a bar by default");
        // Test runs have no terminal on stderr (cargo captures it): the bar must stay hidden.
        if !std::io::stderr().is_terminal() {
            assert!(progress_bar(true, 10).is_hidden());
        }
        assert!(progress_bar(false, 10).is_hidden());
    }
}
