//! d2l chapter 7's airfoil experiments (sections 7.3–7.8): linear regression on the standardized
//! airfoil data, batch 10, 2 epochs, the loss over all 1500 rows recorded every 100 examples,
//! `loss: %f, %f sec per epoch` printed at the end — for each section's optimizer, in the book's
//! from-scratch form and in the library form (`nn.Linear(5, 1)` with PyTorch's init, `MSELoss()/2`).

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_tensor::SeededRng;

use crate::optim;
use crate::train::{train, Dataset, History, Loader, Task, TrainConfig};

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

/// The linear model and its loss `mean((Xw + b - y)²)/2`.
pub struct LinReg {
    /// `w` `[5, 1]` and `b` `[1]`.
    pub store: ParamStore,
    all: Dataset,
}

impl LinReg {
    /// A model in `form`, initialized from `seed`.
    pub fn new(form: Form, seed: u64, data: &Dataset) -> crate::train::Result<Self> {
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
        let w = tape.param(self.store.get("w").expect("w"));
        let b = tape.param(self.store.get("b").expect("b"));
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
pub fn run(
    data: &Dataset,
    spec: &str,
    form: Form,
    seed: u64,
    epochs: usize,
) -> crate::train::Result<Outcome> {
    run_with(data, spec, form, seed, epochs, |_| {})
}

/// [`run`] with a hook to adjust the training configuration (checkpoints, resume, clipping).
pub fn run_with(
    data: &Dataset,
    spec: &str,
    form: Form,
    seed: u64,
    epochs: usize,
    configure: impl FnOnce(&mut TrainConfig),
) -> crate::train::Result<Outcome> {
    let mut model = LinReg::new(form, seed, data)?;
    let mut opt = optim::from_spec(spec, model.store.trainable())?;
    let mut cfg = TrainConfig::new(epochs, Loader::new(10, true, false, seed)?);
    cfg.record_every = 100;
    configure(&mut cfg);
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

/// The data set in f32 (as d2l's tensors) on `device`.
pub fn data(dir: &std::path::Path, download: bool, device: &Device) -> crate::train::Result<Dataset> {
    crate::train::airfoil::load(dir, download, DType::F32, device)
}
