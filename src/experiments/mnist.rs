//! The documents' MNIST models: the ConvNet (`../shared/REFERENCE.md` section 5) and an MLP
//! 784-256-10, trained with cross-entropy on a train/held-out split of whatever MNIST files are
//! available.

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_nn::{cross_entropy, Builder, Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential};

use crate::train::{Dataset, Result, Task};

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
    let mut b = Builder::new(seed, dtype, device);
    let net = match model {
        Model::ConvNet => Sequential::new()
            .add(Conv2d::new(&mut b, "conv1", 1, 32, 3, 1, 1)?)
            .add(ReLU)
            .add(MaxPool2d::new(2))
            .add(Conv2d::new(&mut b, "conv2", 32, 64, 3, 1, 1)?)
            .add(ReLU)
            .add(MaxPool2d::new(2))
            .add(Flatten)
            .add(Linear::new(&mut b, "fc1", 64 * 7 * 7, 128)?)
            .add(ReLU)
            .add(Linear::new(&mut b, "fc2", 128, 10)?),
        Model::Mlp => Sequential::new()
            .add(Flatten)
            .add(Linear::new(&mut b, "fc1", 784, 256)?)
            .add(ReLU)
            .add(Linear::new(&mut b, "fc2", 256, 10)?),
    };
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

/// Accuracy of `net` on `data`, evaluated in batches under no-grad.
pub fn accuracy(net: &Sequential, data: &Dataset) -> Result<f64> {
    let tape = Tape::new();
    let mut correct = 0u64;
    let n = data.len();
    let mut start = 0;
    while start < n {
        let len = 500.min(n - start);
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
pub fn split(data: &Dataset, train: usize, holdout: usize) -> Result<(Dataset, Dataset)> {
    Ok((data.slice(0, train)?, data.slice(train, holdout)?))
}

/// A synthetic batch for benchmarks: `[b, 1, 28, 28]` in `[0, 1)` and labels `(i·7) mod 10`.
pub fn synthetic_batch(batch: usize, dtype: DType, device: &Device) -> Result<Dataset> {
    let mut rng = taper_tensor::SeededRng::new(0);
    let x = rng.uniform((batch, 1, 28, 28), 0.0, 1.0, dtype, device)?;
    let y: Vec<u32> = (0..batch as u32).map(|i| i * 7 % 10).collect();
    Dataset::new(x, Tensor::from_vec(y, batch, device)?)
}
