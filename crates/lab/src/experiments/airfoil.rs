//! d2l chapter 7's airfoil experiments (sections 7.3–7.8), in one place: the data (NASA's
//! airfoil self-noise file exactly as d2l's `get_data_ch7` prepares it), the linear model in the
//! book's from-scratch form and the library form (`nn.Linear(5, 1)` with PyTorch's init,
//! `MSELoss()/2`), the runs (batch 10, 2 epochs, the loss over all 1500 rows recorded every 100
//! examples, `loss: %f, %f sec per epoch`), PyTorch's spread, and the figure.
//!
//! ```text
//! TAPER_DATA_DIR=../shared/data cargo run --release --example airfoil
//! cargo run --release --example airfoil -- --compare "sgd:lr=0.05,adagrad:lr=0.1,rmsprop:lr=0.01,alpha=0.9" --form library
//! ```

use std::path::Path;

use anyhow::bail;
use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_tensor::SeededRng;

use crate::cli::{Board, Checkpoints, Common, DataArgs, Schedule, Seed};
use crate::data::{self, Checksum, Remote};
use crate::optim;
use crate::plot::{self, ChartSpec, Series};
use crate::train::tensorboard::HParam;
use crate::train::{train, Dataset, History, Loader, Task, TrainConfig};

/// A malformed airfoil file.
#[derive(Debug, thiserror::Error)]
#[error("airfoil data: {0}")]
pub struct DataError(String);

type Result<T> = anyhow::Result<T>;

// ---------------------------------------------------------------- data

/// The file, where d2l and UCI serve it, and its SHA-1.
pub const REMOTE: Remote = Remote {
    name: "airfoil_self_noise.dat",
    urls: &[
        "https://d2l-data.s3-accelerate.amazonaws.com/airfoil_self_noise.dat",
        "https://archive.ics.uci.edu/ml/machine-learning-databases/00291/airfoil_self_noise.dat",
    ],
    checksum: Checksum::Sha1("76e5be1548fd8222e5074cf0faae75edff8cf93f"),
};

/// Rows kept (d2l: `data[:1500]`).
pub const ROWS: usize = 1500;

/// Parses the file's text into rows of 6 numbers.
pub fn parse(text: &str) -> std::result::Result<Vec<[f64; 6]>, DataError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 6 {
            return Err(DataError(format!(
                "airfoil line {}: expected 6 tab-separated columns, got {}",
                i + 1,
                fields.len()
            )));
        }
        let mut row = [0.0; 6];
        for (j, f) in fields.iter().enumerate() {
            row[j] = f.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
                DataError(format!("airfoil line {}, column {}: `{f}` is not a finite number", i + 1, j + 1))
            })?;
        }
        rows.push(row);
    }
    if rows.len() < ROWS {
        return Err(DataError(format!("airfoil: {} rows, expected at least {ROWS}", rows.len())));
    }
    Ok(rows)
}

/// Standardizes every column over all rows and keeps the first 1500: `(features [1500, 5],
/// labels [1500])`.
pub fn prepare(rows: &[[f64; 6]], dtype: DType, device: &Device) -> Result<Dataset> {
    let n = rows.len() as f64;
    let mut mean = [0.0; 6];
    let mut std = [0.0; 6];
    for j in 0..6 {
        mean[j] = rows.iter().map(|r| r[j]).sum::<f64>() / n;
        std[j] = (rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt();
    }
    let z = |r: &[f64; 6], j: usize| (r[j] - mean[j]) / std[j];
    let x: Vec<f64> = rows[..ROWS].iter().flat_map(|r| (0..5).map(move |j| z(r, j))).collect();
    let y: Vec<f64> = rows[..ROWS].iter().map(|r| z(r, 5)).collect();
    let x = Tensor::from_vec(x, (ROWS, 5), &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
    let y = Tensor::from_vec(y, ROWS, &Device::Cpu)?.to_dtype(dtype)?.to_device(device)?;
    Ok(Dataset::new(x, y)?)
}

/// Loads (and unless `offline`, downloads) the prepared data set from `dir`, in f32 (as d2l's
/// tensors) on `device`.
pub fn data(dir: &Path, offline: bool, device: &Device) -> Result<Dataset> {
    let bytes = data::fetch(&REMOTE, dir, !offline)?;
    let text = String::from_utf8(bytes).map_err(|_| DataError("the file is not text".into()))?;
    prepare(&parse(&text)?, DType::F32, device)
}

// ---------------------------------------------------------------- model and runs

/// How the model is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// d2l's `train_ch7`: `w ~ N(0, 0.01²)`, `b = 0`.
    Scratch,
    /// d2l's `train_pytorch_ch7`: `nn.Linear(5, 1)`, PyTorch's default init.
    Library,
}

/// One run of the chapter, with PyTorch's spread over 10 seeds from `../shared/REFERENCE.md`.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Section.
    pub section: &'static str,
    /// What the book calls it.
    pub label: &'static str,
    /// Our spec for it.
    pub spec: &'static str,
    /// Which form.
    pub form: Form,
    /// The book's printed final loss.
    pub book: f64,
    /// PyTorch here, 10 seeds: mean, min, max.
    pub torch: (f64, f64, f64),
}

/// The chapter's runs.
pub const RUNS: &[Run] = &[
    Run {
        section: "7.3",
        label: "SGD lr=0.05",
        spec: "sgd:lr=0.05",
        form: Form::Scratch,
        book: 0.242805,
        torch: (0.245024, 0.243264, 0.248128),
    },
    Run {
        section: "7.4",
        label: "momentum lr=0.02, m=0.5",
        spec: "sgd:lr=0.02,momentum=0.5",
        form: Form::Scratch,
        book: 0.245518,
        torch: (0.244624, 0.242872, 0.248340),
    },
    Run {
        section: "7.5",
        label: "AdaGrad lr=0.1",
        spec: "adagrad:lr=0.1,eps=1e-6,eps_in_sqrt=true",
        form: Form::Scratch,
        book: 0.243675,
        torch: (0.243090, 0.242156, 0.244434),
    },
    Run {
        section: "7.5",
        label: "torch.optim.Adagrad lr=0.1",
        spec: "adagrad:lr=0.1",
        form: Form::Library,
        book: 0.243147,
        torch: (0.243460, 0.242632, 0.244524),
    },
    Run {
        section: "7.6",
        label: "RMSprop lr=0.01, γ=0.9 (ε inside)",
        spec: "rmsprop:lr=0.01,gamma=0.9,eps=1e-6,eps_in_sqrt=true",
        form: Form::Scratch,
        book: 0.243452,
        torch: (0.244599, 0.242843, 0.248371),
    },
    Run {
        section: "7.6",
        label: "torch.optim.RMSprop lr=0.01, α=0.9",
        spec: "rmsprop:lr=0.01,alpha=0.9",
        form: Form::Library,
        book: 0.243676,
        torch: (0.245224, 0.242949, 0.247420),
    },
    Run {
        section: "7.7",
        label: "Adadelta ρ=0.9",
        spec: "adadelta:lr=1,rho=0.9,eps=1e-5",
        form: Form::Scratch,
        book: 0.243728,
        torch: (0.244018, 0.242802, 0.246828),
    },
    Run {
        section: "7.8",
        label: "Adam lr=0.01",
        spec: "adam:lr=0.01,eps=1e-6",
        form: Form::Scratch,
        book: 0.245370,
        torch: (0.244263, 0.242068, 0.247875),
    },
];

/// d2l's minibatch size for the chapter.
pub const BATCH: usize = 10;
/// d2l records the loss over all rows every this many examples.
pub const RECORD_EVERY: usize = 100;

/// The linear model and its loss `mean((Xw + b - y)²)/2`.
pub struct LinReg {
    /// `w` `[5, 1]` and `b` `[1]`.
    pub store: ParamStore,
    all: Dataset,
}

impl LinReg {
    /// A model in `form`, initialized from `seed`.
    pub fn new(form: Form, seed: u64, data: &Dataset) -> Result<Self> {
        let (dtype, device) = (data.x.dtype(), data.x.device().clone());
        let mut rng = SeededRng::new(seed);
        let mut store = ParamStore::new();
        match form {
            Form::Scratch => {
                store.insert("w", rng.normal((5, 1), 0.0, 0.01, dtype, &device)?)?;
                store.insert("b", Tensor::zeros(1, dtype, &device)?)?;
            }
            Form::Library => {
                let bound = 1.0 / 5f64.sqrt();
                store.insert("w", rng.uniform((5, 1), -bound, bound, dtype, &device)?)?;
                store.insert("b", rng.uniform(1, -bound, bound, dtype, &device)?)?;
            }
        }
        Ok(Self { store, all: data.clone() })
    }

    fn loss_on(&self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        let (Some(w), Some(b)) = (self.store.get("w"), self.store.get("b")) else {
            return Err(taper_autograd::Error::InvalidArgument {
                op: "airfoil",
                msg: "the model lacks w or b".into(),
            });
        };
        let (w, b) = (tape.param(w), tape.param(b));
        let n = batch.len();
        // `X·w + b` as one op (w is d2l's [5, 1], so the layer's weight is its transpose); the
        // labels take the prediction's shape [n, 1] (d2l's `y.reshape(y_hat.shape)`).
        let pred = Var::constant(batch.x.clone()).linear(&w.t()?, Some(&b))?;
        pred.mse_loss(&Var::constant(batch.y.reshape((n, 1))?))?.scale(0.5)
    }
}

impl Task for LinReg {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        self.loss_on(tape, batch)
    }

    fn record(&mut self) -> crate::train::Result<Option<f64>> {
        let tape = Tape::new();
        let all = self.all.clone();
        Ok(Some(tape.no_grad(|| self.loss_on(&tape, &all))?.to_scalar_f64()?))
    }
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The loss over all rows after training.
    pub final_loss: f64,
    /// Mean seconds per epoch.
    pub sec_per_epoch: f64,
    /// The curve (loss over all rows every 100 examples).
    pub history: History,
}

/// Trains one run (`spec` in `form`) with d2l's settings: batch 10, shuffled, 2 epochs.
pub fn run(data: &Dataset, spec: &str, form: Form, seed: u64, epochs: usize) -> Result<Outcome> {
    run_with(data, spec, form, seed, epochs, |_| Ok(()))
}

/// [`run`] with a hook to adjust the training configuration (checkpoints, resume, clipping).
pub fn run_with(
    data: &Dataset,
    spec: &str,
    form: Form,
    seed: u64,
    epochs: usize,
    configure: impl FnOnce(&mut TrainConfig) -> Result<()>,
) -> Result<Outcome> {
    let mut model = LinReg::new(form, seed, data)?;
    let mut opt = optim::from_spec(spec, model.store.trainable())?;
    let mut cfg = TrainConfig::new(epochs, Loader::new(BATCH, true, false, seed)?);
    cfg.record_every = RECORD_EVERY;
    configure(&mut cfg)?;
    let store = model.store.clone();
    let history = train(&mut model, &store, opt.as_mut(), data, &cfg)?;
    let final_loss = history.records.last().map_or(f64::NAN, |r| r.value);
    let sec_per_epoch = history.epoch_seconds.iter().sum::<f64>() / history.epoch_seconds.len().max(1) as f64;
    Ok(Outcome { final_loss, sec_per_epoch, history })
}

/// d2l's line: `loss: %f, %f sec per epoch`.
pub fn format_line(o: &Outcome) -> String {
    format!("loss: {:.6}, {:.6} sec per epoch", o.final_loss, o.sec_per_epoch)
}

// ---------------------------------------------------------------- command line and figure

/// d2l's airfoil runs (chapter 7, sections 7.3–7.8): every section's optimizer in the book's
/// from-scratch form and the library form, or the optimizers you name; prints d2l's
/// `loss: %f, %f sec per epoch` and plots the loss over all rows against the epoch.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "airfoil", version)]
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
    /// `--save`, `--save-every`, `--resume` (one run: --compare with a single spec).
    #[command(flatten)]
    pub checkpoints: Checkpoints,
    /// `--scheduler`, `--scheduler-every-step` (for every run).
    #[command(flatten)]
    pub schedule: Schedule,
    /// `--seed`.
    #[command(flatten)]
    pub seed: Seed,
    /// `--data-dir`, `--offline`.
    #[command(flatten)]
    pub data: DataArgs,
    /// `--device`, `--out`.
    #[command(flatten)]
    pub common: Common,
    /// `--logdir`: TensorBoard curves, one run per optimizer (`train/loss`, `eval/loss`,
    /// `lr/group_{g}`, `train/grad_norm`, `train/update_ratio`) with its hyperparameters.
    #[command(flatten)]
    pub board: Board,
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

/// Runs the command line: every run, each curve's CSV and `airfoil.svg` in the output directory.
pub fn run_cli(args: &Args) -> Result<Vec<RunResult>> {
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let form = match args.form.as_str() {
        "scratch" => Form::Scratch,
        "library" => Form::Library,
        other => bail!("unknown --form `{other}`: expected scratch or library"),
    };
    let device = args.common.device()?;
    let runs: Vec<(String, String, String, Form)> = match &args.compare {
        Some(list) => {
            optim::checked_list(list)?.into_iter().map(|s| (String::new(), s.clone(), s, form)).collect()
        }
        None => RUNS.iter().map(|r| (r.section.into(), r.label.into(), r.spec.into(), r.form)).collect(),
    };
    if args.checkpoints.any() && runs.len() != 1 {
        bail!("--save and --resume need exactly one run: --compare with a single optimizer spec");
    }
    args.schedule.validate()?;
    let out = args.common.out_dir("airfoil")?;
    let data = data(&args.data.dir(), args.data.offline, &device)?;
    let seed = args.seed.seed.unwrap_or(0);
    let mut results = Vec::new();
    for (section, label, spec, form) in runs {
        let outcome = run_with(&data, &spec, form, seed, args.epochs, |cfg| {
            args.checkpoints.configure(cfg);
            cfg.record_name = "loss".into();
            args.board.configure(cfg, &spec, &[("seed".to_string(), HParam::Number(seed as f64))])?;
            args.schedule.configure(cfg)
        })?;
        outcome.history.write_csv(&out.join(format!("airfoil_{}.csv", results.len())))?;
        results.push(RunResult { section, label, spec, outcome });
    }
    figure(&out.join("airfoil.svg"), &results)?;
    Ok(results)
}

/// Every run's curve on one chart.
pub fn figure(path: &Path, results: &[RunResult]) -> Result<()> {
    let series: Vec<Series> = results
        .iter()
        .map(|r| Series::new(format!("{} {}", r.section, r.label).trim(), r.outcome.history.points()))
        .collect();
    let spec = ChartSpec {
        title: "airfoil: loss over all rows",
        x_label: "epoch",
        y_label: "loss",
        log_y: false,
        log_x: false,
    };
    Ok(plot::line_chart(path, &spec, &series)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crlf_and_lf_and_standardizes() {
        let mut text = String::new();
        for i in 0..1503 {
            let end = if i % 2 == 0 { "\r\n" } else { "\n" };
            text.push_str(&format!("{i}\t1\t2\t3\t{}\t{}{end}", i % 7, 2 * i));
        }
        let rows = parse(&text).unwrap();
        assert_eq!(rows.len(), 1503);
        let d = prepare(&rows, DType::F64, &Device::Cpu).unwrap();
        assert_eq!(d.x.dims(), [1500, 5]);
        // Column 0 is 0..1503: standardized over all 1503 rows, its mean over them is 0.
        let first = d.x.narrow(1, 0, 1).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let mean = 751.0;
        let std = ((1503.0f64 * 1503.0 - 1.0) / 12.0).sqrt();
        assert!((first[0] - (0.0 - mean) / std).abs() < 1e-12);
        // Constant columns standardize to NaN, as NumPy's do; the real file has none.
        assert!(parse("1\t2\t3\n").is_err());
        assert!(parse(&"1\t2\tx\t4\t5\t6\n".repeat(1500)).unwrap_err().to_string().contains("`x`"));
        assert!(parse(&"1\t2\tNaN\t4\t5\t6\n".repeat(1500)).unwrap_err().to_string().contains("`NaN`"));
    }
}
