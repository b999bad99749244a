//! What every example's command line shares: the flags defined once (each example flattens the
//! groups it uses into its own `Args`), and the way a run ends (errors printed once, exit 2).

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::tensor::DeviceSpec;
use crate::Device;

/// `--device` and `--out`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Output directory for figures and curves [default: out/<example>].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Common {
    /// The device named by `--device` (an error that says why when it cannot be had).
    pub fn device(&self) -> Result<Device> {
        Ok(DeviceSpec::open_str(&self.device)?)
    }

    /// The output directory (`out/<example>` by default), created and checked writable.
    pub fn out_dir(&self, example: &str) -> Result<PathBuf> {
        let dir = self.out.clone().unwrap_or_else(|| Path::new("out").join(example));
        crate::plot::ensure_writable_dir(&dir)?;
        Ok(dir)
    }
}

/// `--logdir`: TensorBoard event files.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Board {
    /// Write TensorBoard event files here (`tensorboard --logdir DIR` shows them): losses,
    /// learning rate per group, gradient norm, update-to-parameter ratio, throughput, and the
    /// run's hyperparameters.
    #[arg(long)]
    pub logdir: Option<PathBuf>,
}

impl Board {
    /// A writer for the run `run` under `--logdir` (`None` without the flag); an unwritable
    /// directory is an error here, before any training.
    pub fn writer(&self, run: &str) -> Result<Option<crate::train::tensorboard::SummaryWriter>> {
        let Some(dir) = &self.logdir else { return Ok(None) };
        let dir = if run.is_empty() { dir.clone() } else { dir.join(run) };
        Ok(Some(crate::train::tensorboard::SummaryWriter::new(dir)?))
    }

    /// Points `cfg`'s TensorBoard output at the run named after `spec` under `--logdir` (one run
    /// per optimizer of a comparison) and records the spec's options (and `extra`) as the run's
    /// hyperparameters. Nothing without the flag.
    pub fn configure(
        &self,
        cfg: &mut crate::train::TrainConfig,
        spec: &str,
        extra: &[(String, crate::train::tensorboard::HParam)],
    ) -> Result<()> {
        let Some(dir) = &self.logdir else { return Ok(()) };
        let name = run_name(spec);
        if let Some(mut w) = self.writer(&name)? {
            let mut hp = spec_hparams("optimizer", &crate::optim::canonical(spec)?);
            hp.extend(extra.iter().cloned());
            w.add_hparams(&hp)?;
            w.close()?;
        }
        cfg.logdir = Some(dir.join(name));
        Ok(())
    }
}

/// A run's directory name from a spec: `adam:lr=0.001` → `adam_lr=0.001` (characters other than
/// letters, digits and `.=,+-` become `_`).
pub fn run_name(spec: &str) -> String {
    spec.chars().map(|c| if c.is_ascii_alphanumeric() || ".=,+-".contains(c) { c } else { '_' }).collect()
}

/// A spec's hyperparameters for TensorBoard: `{prefix}` = its name and `{prefix}.{key}` = each
/// option's value.
pub fn spec_hparams(
    prefix: &str,
    spec: &crate::optim::OptimSpec,
) -> Vec<(String, crate::train::tensorboard::HParam)> {
    use crate::train::tensorboard::HParam;
    std::iter::once((prefix.to_string(), HParam::Text(spec.name.clone())))
        .chain(spec.options.iter().map(|(k, v)| (format!("{prefix}.{k}"), HParam::parse(v))))
        .collect()
}

/// `--seed`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Seed {
    /// Seed of the run (initialization, data order) [default: the experiment's own].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `--data-dir` and `--offline`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// Directory holding the data files [default: $TAPER_DATA_DIR, else ~/.cache/taper].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download a missing file (by default a missing file is downloaded, checksum verified).
    #[arg(long)]
    pub offline: bool,
}

impl DataArgs {
    /// The data directory.
    pub fn dir(&self) -> PathBuf {
        crate::data::data_dir(self.data_dir.as_deref())
    }
}

/// `--save`, `--save-every` and `--resume`: checkpoints of a training run.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Checkpoints {
    /// Write a checkpoint here after every epoch (a single run only).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also checkpoint every N optimizer steps.
    #[arg(long)]
    pub save_every: Option<u64>,
    /// Resume from a checkpoint, exactly where it was saved (a single run only).
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

impl Checkpoints {
    /// Whether a checkpoint is written or read.
    pub fn any(&self) -> bool {
        self.save.is_some() || self.resume.is_some()
    }

    /// Sets the training configuration's checkpoint fields.
    pub fn configure(&self, cfg: &mut crate::train::TrainConfig) {
        cfg.save = self.save.clone();
        cfg.save_every = self.save_every;
        cfg.resume = self.resume.clone();
    }
}

/// `--scheduler` and `--scheduler-every-step`: a learning-rate schedule for a training run.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Schedule {
    /// Learning-rate scheduler spec, stepped after every epoch (e.g. "step:step_size=1,gamma=0.5",
    /// "onecycle:max_lr=0.1,total_steps=300" with --scheduler-every-step; "plateau" watches the
    /// mean training loss of the epoch).
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Step the scheduler after every optimizer step instead of every epoch ("plateau" then
    /// watches the step's loss).
    #[arg(long)]
    pub scheduler_every_step: bool,
}

impl Schedule {
    /// Checks the spec before any work (unknown names, missing or bad options).
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = &self.scheduler {
            crate::optim::schedule::parse(s)?;
        } else if self.scheduler_every_step {
            anyhow::bail!("--scheduler-every-step needs a --scheduler");
        }
        Ok(())
    }

    /// Sets the training configuration's scheduler fields.
    pub fn configure(&self, cfg: &mut crate::train::TrainConfig) -> Result<()> {
        cfg.scheduler = self.scheduler.as_deref().map(crate::optim::schedule::parse).transpose()?;
        cfg.scheduler_every_step = self.scheduler_every_step;
        Ok(())
    }
}

/// The body of an example's `main`: sets up the CPU threads, runs `run`, and on an error prints
/// it once (with its causes) and exits with status 2.
pub fn main<A>(args: A, run: impl FnOnce(A) -> Result<()>) {
    crate::tensor::init_cpu();
    if let Err(e) = run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
