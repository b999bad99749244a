//! The documents' MNIST experiment, in one place: the data (the four IDX files, their checksums
//! and mirrors, scaled to `[0, 1]`), the models (the ConvNet of `../shared/REFERENCE.md` section 5
//! and an MLP 784-256-10), training with cross-entropy on a train/held-out split of whatever
//! MNIST files are available, held-out accuracy, `--compare` from the same initial weights, and
//! the loss figure.
//!
//! With only the MNIST test set at hand (`../shared/data/mnist`), train on its first 8,000 images
//! and hold out the last 2,000:
//!
//! ```text
//! TAPER_DATA_DIR=../shared/data cargo run --release --example mnist -- --split test --train-limit 8000 --holdout 2000 --epochs 2
//! ```

use std::path::Path;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_nn::{
    cross_entropy, Builder, Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential,
};

use crate::cli::{Board, Checkpoints, Common, DataArgs, Schedule, Seed};
use crate::data::{self, idx, Checksum, Remote};
use crate::optim;
use crate::plot::{self, ChartSpec, Series};
use crate::train::tensorboard::HParam;
use crate::train::{train, Dataset, History, Loader, Task, TrainConfig};

// ---------------------------------------------------------------- data

macro_rules! remote {
    ($file:literal, $sum:expr) => {
        Remote {
            name: concat!("mnist/", $file),
            urls: &[
                concat!("https://ossci-datasets.s3.amazonaws.com/mnist/", $file),
                concat!("https://storage.googleapis.com/cvdf-datasets/mnist/", $file),
            ],
            checksum: $sum,
        }
    };
}

/// The four files; digests are torchvision's MD5s for the training files and SHA-1s for the test
/// files (as `../shared/data/README.md` gives them).
pub const TRAIN_IMAGES: Remote =
    remote!("train-images-idx3-ubyte.gz", Checksum::Md5("f68b3c2dcbeaaa9fbdd348bbdeb94873"));
/// Training labels.
pub const TRAIN_LABELS: Remote =
    remote!("train-labels-idx1-ubyte.gz", Checksum::Md5("d53e105ee54ea40749a09fcbcd1e9432"));
/// Test images.
pub const TEST_IMAGES: Remote =
    remote!("t10k-images-idx3-ubyte.gz", Checksum::Sha1("c3a25af1f52dad7f726cce8cacb138654b760d48"));
/// Test labels.
pub const TEST_LABELS: Remote =
    remote!("t10k-labels-idx1-ubyte.gz", Checksum::Sha1("763e7fa3757d93b0cdec073cef058b2004252c17"));

/// Builds the data set from parsed files: images `[n, 1, rows, cols]` in `[0, 1]`.
pub fn to_dataset(images: idx::Images, labels: Vec<u8>, dtype: DType, device: &Device) -> Result<Dataset> {
    let idx::Images { count: n, rows: r, cols: c, pixels } = images;
    if labels.len() != n {
        bail!("MNIST: {n} images but {} labels", labels.len());
    }
    let x = Tensor::from_vec(pixels, (n, 1, r, c), &Device::Cpu)?
        .to_dtype(DType::F32)?
        .affine(1.0 / 255.0, 0.0)?;
    let y: Vec<u32> = labels.into_iter().map(u32::from).collect();
    Ok(Dataset::new(x.to_dtype(dtype)?.to_device(device)?, Tensor::from_vec(y, n, device)?)?)
}

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

/// Loads (and unless `offline`, downloads) one split from `dir` (files under `dir/mnist/`).
pub fn load(dir: &Path, split: Split, offline: bool, dtype: DType, device: &Device) -> Result<Dataset> {
    let (im, lb) = match split {
        Split::Train => (TRAIN_IMAGES, TRAIN_LABELS),
        Split::Test => (TEST_IMAGES, TEST_LABELS),
    };
    let images = idx::parse_images(data::fetch(&im, dir, !offline)?, im.name)?;
    let labels = idx::parse_labels(data::fetch(&lb, dir, !offline)?, lb.name)?;
    to_dataset(images, labels, dtype, device)
}

// ---------------------------------------------------------------- models

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Conv(1→32, 3, pad 1)-ReLU-MaxPool 2-Conv(32→64, 3, pad 1)-ReLU-MaxPool 2-Linear(3136→128)-
    /// ReLU-Linear(128→10).
    ConvNet,
    /// Linear(784→256)-ReLU-Linear(256→10).
    Mlp,
}

impl std::str::FromStr for Model {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "convnet" | "cnn" => Ok(Self::ConvNet),
            "mlp" => Ok(Self::Mlp),
            other => Err(format!("unknown model `{other}`: expected convnet or mlp")),
        }
    }
}

/// Builds the model with PyTorch's default initialization from `seed`.
pub fn build(model: Model, seed: u64, dtype: DType, device: &Device) -> Result<(Sequential, ParamStore)> {
    let b = Builder::new(seed, dtype, device);
    let net = match model {
        Model::ConvNet => Sequential::new()
            .add(Conv2d::new(
                &mut b.pp("conv1"),
                1,
                32,
                3,
                Conv2dConfig { padding: 1, ..Default::default() },
            )?)
            .add(ReLU)
            .add(MaxPool2d::new(2))
            .add(Conv2d::new(
                &mut b.pp("conv2"),
                32,
                64,
                3,
                Conv2dConfig { padding: 1, ..Default::default() },
            )?)
            .add(ReLU)
            .add(MaxPool2d::new(2))
            .add(Flatten)
            .add(Linear::new(&mut b.pp("fc1"), 64 * 7 * 7, 128)?)
            .add(ReLU)
            .add(Linear::new(&mut b.pp("fc2"), 128, 10)?),
        Model::Mlp => return build_mlp(256, seed, dtype, device),
    };
    Ok((net, b.into_store()))
}

/// The MLP `Linear(784→hidden)-ReLU-Linear(hidden→10)` with PyTorch's default initialization
/// from `seed` ([`Model::Mlp`] is `hidden = 256`).
pub fn build_mlp(
    hidden: usize,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<(Sequential, ParamStore)> {
    let b = Builder::new(seed, dtype, device);
    let net = Sequential::new()
        .add(Flatten)
        .add(Linear::new(&mut b.pp("fc1"), 784, hidden)?)
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), hidden, 10)?);
    Ok((net, b.into_store()))
}

/// The classification task: cross-entropy of the network's logits.
pub struct Classifier {
    /// The network.
    pub net: Sequential,
}

impl Task for Classifier {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        cross_entropy(&self.net.forward(tape, &Var::constant(batch.x.clone()))?, &batch.y)
    }
}

/// Examples per forward pass when measuring accuracy.
const EVAL_BATCH: usize = 500;
/// A curve point (the mean batch loss) every this many training examples (ten batches of 64).
pub const RECORD_EVERY: usize = 640;

/// Accuracy of `net` on `data`, evaluated in batches under no-grad.
pub fn accuracy(net: &Sequential, data: &Dataset) -> crate::train::Result<f64> {
    let tape = Tape::new();
    let mut correct = 0u64;
    let n = data.len();
    let mut start = 0;
    while start < n {
        let len = EVAL_BATCH.min(n - start);
        let batch = data.slice(start, len)?;
        let logits = tape.no_grad(|| net.forward(&tape, &Var::constant(batch.x.clone())))?;
        let pred = logits.value().argmax(1)?;
        let hits = pred.eq(&batch.y)?.to_dtype(DType::U32)?.sum_all()?.to_scalar::<u32>()?;
        correct += hits as u64;
        start += len;
    }
    Ok(correct as f64 / n.max(1) as f64)
}

/// Splits `data` into its first `train` examples and the `holdout` after them.
pub fn split_at(data: &Dataset, train: usize, holdout: usize) -> Result<(Dataset, Dataset)> {
    Ok((data.slice(0, train)?, data.slice(train, holdout)?))
}

/// A synthetic batch for benchmarks: `[b, 1, 28, 28]` in `[0, 1)` and labels `(i·7) mod 10`.
pub fn synthetic_batch(batch: usize, dtype: DType, device: &Device) -> Result<Dataset> {
    let mut rng = taper_tensor::SeededRng::new(0);
    let x = rng.uniform((batch, 1, 28, 28), 0.0, 1.0, dtype, device)?;
    let y: Vec<u32> = (0..batch as u32).map(|i| i * 7 % 10).collect();
    Ok(Dataset::new(x, Tensor::from_vec(y, batch, device)?)?)
}

// ---------------------------------------------------------------- command line and figure

/// Train the documents' ConvNet (or an MLP) on MNIST with any optimizer spec; `--compare` trains
/// several from the same initial weights and plots their loss curves on one figure.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "mnist", version)]
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
    /// Clip gradients to this global norm.
    #[arg(long)]
    pub clip_norm: Option<f64>,
    /// `--scheduler`, `--scheduler-every-step`.
    #[command(flatten)]
    pub schedule: Schedule,
    /// `--save`, `--save-every`, `--resume` (a single --optimizer, not --compare).
    #[command(flatten)]
    pub checkpoints: Checkpoints,
    /// Hide the progress bar (shown by default when stderr is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// `--seed`.
    #[command(flatten)]
    pub seed: Seed,
    /// `--data-dir`, `--offline`.
    #[command(flatten)]
    pub data: DataArgs,
    /// `--logdir`: TensorBoard curves, one run per optimizer (`train/loss`,
    /// `eval/heldout_accuracy`, `lr/group_{g}`, `train/grad_norm`, `train/update_ratio`,
    /// `train/examples_per_second`) with its hyperparameters.
    #[command(flatten)]
    pub board: Board,
    /// `--device`, `--out`.
    #[command(flatten)]
    pub common: Common,
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
    pub history: History,
}

struct Eval<'a> {
    task: Classifier,
    holdout: &'a Dataset,
    accuracy: Vec<f64>,
    verbose: bool,
}

impl Task for Eval<'_> {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        self.task.loss(tape, batch)
    }
    fn on_epoch(&mut self, epoch: usize, h: &History) -> crate::train::Result<()> {
        let acc = accuracy(&self.task.net, self.holdout)?;
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

/// Runs the command line; `verbose` prints per-epoch lines as they come. Writes `mnist.svg`.
pub fn run_cli(args: &Args, verbose: bool) -> Result<Vec<RunResult>> {
    let model: Model = args.model.parse().map_err(anyhow::Error::msg)?;
    let split: Split = match args.split.as_str() {
        "train" => Split::Train,
        "test" => Split::Test,
        other => bail!("unknown --split `{other}`: expected train or test"),
    };
    if args.epochs == 0 || args.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    let specs = match &args.compare {
        Some(list) => optim::checked_list(list)?,
        None => vec![optim::canonical(&args.optimizer).map(|_| args.optimizer.clone())?],
    };
    args.schedule.validate()?;
    if specs.len() > 1 && args.checkpoints.any() {
        bail!("--save and --resume take a single --optimizer, not --compare");
    }
    let device = args.common.device()?;
    let out = args.common.out_dir("mnist")?;
    let all = load(&args.data.dir(), split, args.data.offline, DType::F32, &device)?;
    let seed = args.seed.seed.unwrap_or(0);
    let holdout = args.holdout.min(all.len());
    let train_n = args.train_limit.unwrap_or(all.len() - holdout);
    if train_n == 0 || train_n + holdout > all.len() {
        bail!("--train-limit {train_n} + --holdout {holdout} must be positive and at most the split's {} images", all.len());
    }
    let (train_set, held) = split_at(&all, train_n, holdout)?;
    let mut results = Vec::new();
    for spec in specs {
        // Same seed: every optimizer starts from the same weights and sees the same batches.
        let (net, store) = build(model, seed, DType::F32, &device)?;
        let mut opt = optim::from_spec(&spec, store.trainable())?;
        let mut cfg = TrainConfig::new(args.epochs, Loader::new(args.batch_size, true, false, seed)?);
        cfg.record_every = RECORD_EVERY;
        cfg.clip_norm = args.clip_norm;
        args.schedule.configure(&mut cfg)?;
        args.checkpoints.configure(&mut cfg);
        cfg.progress_bar = !args.no_progress;
        cfg.extra.insert("model".into(), args.model.clone());
        cfg.record_name = "heldout_accuracy".into();
        let hp = [
            ("model".to_string(), HParam::Text(args.model.clone())),
            ("seed".to_string(), HParam::Number(seed as f64)),
            ("batch_size".to_string(), HParam::Number(args.batch_size as f64)),
        ];
        args.board.configure(&mut cfg, &spec, &hp)?;
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
    figure(&out.join("mnist.svg"), &results)?;
    Ok(results)
}

/// Every optimizer's training curve on one log-scale chart.
pub fn figure(path: &Path, results: &[RunResult]) -> Result<()> {
    let series: Vec<Series> =
        results.iter().map(|r| Series::new(r.spec.clone(), r.history.points())).collect();
    let chart = ChartSpec {
        title: "MNIST: training loss",
        x_label: "epoch",
        y_label: "mean batch loss",
        log_y: true,
        log_x: false,
    };
    Ok(plot::line_chart(path, &chart, &series)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_data_set_from_parsed_files() {
        let mut raw = vec![0, 0, 8, 3];
        for v in [3u32, 2, 2] {
            raw.extend_from_slice(&v.to_be_bytes());
        }
        raw.extend((0..12u32).map(|i| (i * 50 % 256) as u8));
        let d = to_dataset(idx::parse_images(raw, "i").unwrap(), vec![1, 2, 3], DType::F32, &Device::Cpu)
            .unwrap();
        assert_eq!(d.x.dims(), [3, 1, 2, 2]);
        let max = d.x.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(max <= 1.0 && max > 0.5);
        let short = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 7];
        assert!(
            to_dataset(idx::parse_images(short, "i").unwrap(), vec![1, 2], DType::F32, &Device::Cpu).is_err()
        );
    }
}
