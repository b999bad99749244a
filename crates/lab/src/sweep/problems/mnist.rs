//! MNIST classifiers: the MLP 784-256-10 (3 epochs) and the documents' ConvNet (1 epoch), trained
//! with batch 64 on the first 8,000 images of MNIST's 10,000-image test files (`t10k-*`, the part
//! of MNIST shipped with the project's data and the smallest download) and measured by accuracy
//! on the 2,000 after them, four times an epoch. PyTorch's default initialization and the batch
//! order come from the seed. Muon (which updates matrices only) takes the hidden layers' weight
//! matrices and AdamW (`lr=0.001`) the rest. Held out for `taper bench`: the MLP with hidden
//! width 128 or 512; the ConvNet with batch 32 or 128.

use anyhow::Result;

use super::{optimizer_for, train_curve};
use crate::autograd::{Tape, Var};
use crate::experiments::mnist::{accuracy, build, build_mlp, load, split_at, Classifier, Model, Split};
use crate::sweep::problem::{Context, Curve, Goal, Metric, Problem, Setup};
use crate::train::{Dataset, Loader, Task, TrainConfig};
use crate::{DType, Device};

/// Training images.
const TRAIN: usize = 8_000;
/// Held-out images.
const HOLDOUT: usize = 2_000;
/// Batch size.
const BATCH: usize = 64;
/// Accuracy points per epoch.
const POINTS_PER_EPOCH: usize = 4;
/// The MLP's hidden width.
const WIDTH: usize = 256;
/// The MLP's held-out variants' hidden widths.
const MLP_WIDTHS: [usize; 2] = [128, 512];
/// The ConvNet's held-out variants' batch sizes.
const CONVNET_BATCHES: [usize; 2] = [32, 128];

struct Mnist {
    model: Model,
    name: &'static str,
    epochs: usize,
    target: f64,
    train: Dataset,
    holdout: Dataset,
    device: Device,
}

fn make(
    ctx: &Context,
    model: Model,
    name: &'static str,
    epochs: usize,
    target: f64,
) -> Result<Box<dyn Problem>> {
    let all = load(&ctx.data_dir, Split::Test, ctx.offline, DType::F32, &ctx.device)?;
    let (train, holdout) = split_at(&all, TRAIN, HOLDOUT)?;
    Ok(Box::new(Mnist { model, name, epochs, target, train, holdout, device: ctx.device.clone() }))
}

/// The MLP problem.
pub fn mlp(ctx: &Context) -> Result<Box<dyn Problem>> {
    make(ctx, Model::Mlp, "mnist_mlp", 3, 0.93)
}

/// The ConvNet problem.
pub fn convnet(ctx: &Context) -> Result<Box<dyn Problem>> {
    make(ctx, Model::ConvNet, "mnist_convnet", 1, 0.94)
}

/// The classifier, recording held-out accuracy (NaN once a batch loss was not finite).
struct Accuracy<'a> {
    task: Classifier,
    holdout: &'a Dataset,
    finite: bool,
}

impl Task for Accuracy<'_> {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> crate::autograd::Result<Var> {
        let loss = self.task.loss(tape, batch)?;
        self.finite &= loss.to_scalar_f64()?.is_finite();
        Ok(loss)
    }

    fn record(&mut self) -> crate::train::Result<Option<f64>> {
        if !self.finite {
            return Ok(Some(f64::NAN));
        }
        Ok(Some(accuracy(&self.task.net, self.holdout)?))
    }
}

impl Problem for Mnist {
    fn name(&self) -> &str {
        self.name
    }
    fn describe(&self) -> String {
        let model = match self.model {
            Model::Mlp => "MLP 784-256-10",
            Model::ConvNet => "ConvNet (2 conv + 2 linear)",
        };
        format!(
            "{model} on {TRAIN} MNIST images (t10k), batch {BATCH}, {} epoch(s), accuracy on {HOLDOUT} held out",
            self.epochs
        )
    }
    fn metric(&self) -> Metric {
        Metric { name: "heldout_accuracy".into(), goal: Goal::Maximize, target: self.target }
    }
    fn budget(&self) -> String {
        format!("{} epochs of batch {BATCH} on {TRAIN} images", self.epochs)
    }
    fn run(&self, spec: &str, seed: u64) -> Result<Curve> {
        self.run_setup(spec, seed, &Setup::default())
    }
    fn steps(&self, variant: usize) -> Option<u64> {
        let (_, batch) = self.variant(variant).ok()?;
        Some((self.epochs * TRAIN.div_ceil(batch)) as u64)
    }
    fn variants(&self) -> Vec<String> {
        match self.model {
            Model::Mlp => MLP_WIDTHS.iter().map(|w| format!("hidden width {w}")).collect(),
            Model::ConvNet => CONVNET_BATCHES.iter().map(|b| format!("batch {b}")).collect(),
        }
    }
    fn run_setup(&self, spec: &str, seed: u64, setup: &Setup) -> Result<Curve> {
        let (width, batch) = self.variant(setup.variant)?;
        let (net, store) = match self.model {
            Model::Mlp => build_mlp(width, seed, DType::F32, &self.device)?,
            Model::ConvNet => build(self.model, seed, DType::F32, &self.device)?,
        };
        let mut cfg = TrainConfig::new(self.epochs, Loader::new(batch, true, false, seed)?);
        cfg.record_every = TRAIN / POINTS_PER_EPOCH;
        cfg.progress_bar = false;
        let task = Accuracy { task: Classifier { net }, holdout: &self.holdout, finite: true };
        // Muon takes the hidden layers' weight matrices (not the convolutions, which it refuses as
        // PyTorch's does, nor the output layer).
        let opt = optimizer_for(spec, &store, |p| p.dims().len() == 2 && !p.name().starts_with("fc2."))?;
        train_curve(task, &store, opt, &self.train, cfg, setup, Goal::Maximize)
    }
}

impl Mnist {
    /// The MLP's width and the batch size of variant `v`.
    fn variant(&self, v: usize) -> Result<(usize, usize)> {
        Setup { variant: v, ..Setup::default() }.check_variant(self.name, 2)?;
        Ok(match (self.model, v) {
            (_, 0) => (WIDTH, BATCH),
            (Model::Mlp, v) => (MLP_WIDTHS[v - 1], BATCH),
            (Model::ConvNet, v) => (WIDTH, CONVNET_BATCHES[v - 1]),
        })
    }
}
