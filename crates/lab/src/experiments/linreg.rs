//! The documents' linear regression, in one place: 100 points `x ~ U(0, 2)`,
//! `y = 4 + 3x + N(0, 1)` (seeded), the model `ŷ = b + w·x`, the loss `mean((ŷ - y)²)`, fitted
//! full-batch by gradient descent, AdaGrad and RMSprop — the document's settings (lr = 0.01,
//! γ = 0.9, ε = 1e-8, 1000 iterations) and better-tuned runs — beside the closed-form answer, with
//! the loss curves on one log-scale figure.
//!
//! `cargo run --release --example linear_regression`

use std::path::Path;

use anyhow::bail;
use candle_core::{DType, Device, Tensor};
use taper_autograd::{Param, ParamStore, Tape, Var};
use taper_tensor::SeededRng;

use crate::cli::{Common, Seed};
use crate::optim::{self, Optimizer};
use crate::plot::{self, ChartSpec, Series};

/// The data set.
#[derive(Debug, Clone)]
pub struct Data {
    /// `[n]` inputs.
    pub x: Vec<f64>,
    /// `[n]` targets.
    pub y: Vec<f64>,
}

/// Draws the documents' data: `n` points, `x ~ U(0, 2)`, `y = 4 + 3x + N(0, 1)`.
pub fn data(n: usize, seed: u64) -> Data {
    let mut rng = SeededRng::new(seed);
    let x: Vec<f64> = (0..n).map(|_| 2.0 * rng.uniform_f64()).collect();
    let y = x.iter().map(|xi| 4.0 + 3.0 * xi + rng.standard_normal_f64()).collect();
    Data { x, y }
}

/// The least-squares answer `(b, w)` in closed form (the normal equations).
pub fn closed_form(d: &Data) -> (f64, f64) {
    let n = d.x.len() as f64;
    let mx = d.x.iter().sum::<f64>() / n;
    let my = d.y.iter().sum::<f64>() / n;
    let sxy: f64 = d.x.iter().zip(&d.y).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = d.x.iter().map(|x| (x - mx) * (x - mx)).sum();
    let w = sxy / sxx;
    (my - w * mx, w)
}

/// A fitted model and its loss curve.
#[derive(Debug, Clone)]
pub struct Fit {
    /// Intercept.
    pub b: f64,
    /// Slope.
    pub w: f64,
    /// The loss before each iteration, then after the last.
    pub losses: Vec<f64>,
}

/// The model's parameters and the full-batch loss.
pub struct Model {
    /// `b` and `w`, both `[1]`, starting at 0.
    pub store: ParamStore,
    x: Var,
    y: Var,
}

impl Model {
    /// `b = w = 0` over `data` in f64 on `device`.
    pub fn new(d: &Data, device: &Device) -> crate::optim::Result<Self> {
        let mut store = ParamStore::new();
        store.insert("b", Tensor::zeros(1, DType::F64, device)?)?;
        store.insert("w", Tensor::zeros(1, DType::F64, device)?)?;
        let x = Var::constant(Tensor::from_slice(&d.x, d.x.len(), device)?);
        let y = Var::constant(Tensor::from_slice(&d.y, d.y.len(), device)?);
        Ok(Self { store, x, y })
    }

    /// `mean((b + w·x - y)²)` on `tape`.
    pub fn loss(&self, tape: &Tape) -> crate::optim::Result<Var> {
        let b = tape.param(self.param("b")?);
        let w = tape.param(self.param("w")?);
        Ok(self.x.mul(&w)?.add(&b)?.mse_loss(&self.y)?)
    }

    /// The parameter named `name` (`b` or `w`).
    pub fn param(&self, name: &str) -> crate::optim::Result<&Param> {
        self.store.get(name).ok_or_else(|| {
            crate::optim::Error::InvalidArgument(format!("the model has no parameter `{name}`"))
        })
    }

    fn scalar(&self, name: &str) -> crate::optim::Result<f64> {
        Ok(self.param(name)?.value().reshape(())?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
    }
}

/// Fits by `iters` full-batch steps of the optimizer `spec`, calling `observe(step, optimizer)`
/// after each step (the learning-rate study reads the optimizer's state there).
pub fn fit_with(
    d: &Data,
    spec: &str,
    iters: usize,
    device: &Device,
    mut observe: impl FnMut(usize, &dyn Optimizer) -> crate::optim::Result<()>,
) -> crate::optim::Result<Fit> {
    let model = Model::new(d, device)?;
    let mut opt = optim::from_spec(spec, model.store.trainable())?;
    let mut losses = Vec::with_capacity(iters + 1);
    for step in 1..=iters {
        let tape = Tape::new();
        let loss = model.loss(&tape)?;
        losses.push(loss.to_scalar_f64()?);
        opt.step(&loss.backward()?)?;
        observe(step, opt.as_ref())?;
    }
    let tape = Tape::new();
    losses.push(model.loss(&tape)?.to_scalar_f64()?);
    Ok(Fit { b: model.scalar("b")?, w: model.scalar("w")?, losses })
}

/// [`fit_with`] without an observer.
pub fn fit(d: &Data, spec: &str, iters: usize, device: &Device) -> crate::optim::Result<Fit> {
    fit_with(d, spec, iters, device, |_, _| Ok(()))
}

// ---------------------------------------------------------------- command line and figure

/// The document's runs, then better-tuned ones.
pub const DEFAULT_RUNS: &str = "sgd:lr=0.01,\
adagrad:lr=0.01,eps=1e-8,eps_in_sqrt=true,\
rmsprop:lr=0.01,gamma=0.9,eps=1e-8,eps_in_sqrt=true,\
sgd:lr=0.2,\
adagrad:lr=1,eps=1e-8,eps_in_sqrt=true,\
rmsprop:lr=0.02,gamma=0.99,eps=1e-8,eps_in_sqrt=true";

/// The documents' linear regression fitted full-batch by several optimizers (the document's
/// settings, then better-tuned ones), beside the closed-form answer, with the loss curves.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "linear_regression", version)]
pub struct Args {
    /// Optimizer specs "SPEC,SPEC,...".
    #[arg(long, default_value = DEFAULT_RUNS)]
    pub optimizers: String,
    /// Iterations (full-batch steps).
    #[arg(long, default_value_t = 1000)]
    pub iters: usize,
    /// `--seed`.
    #[command(flatten)]
    pub seed: Seed,
    /// `--device`, `--out`.
    #[command(flatten)]
    pub common: Common,
}

/// The seed of the documents' data.
pub const DATA_SEED: u64 = 42;

/// Every run's fit.
pub struct Report {
    /// The closed-form `(b, w)`.
    pub closed_form: (f64, f64),
    /// `(spec, fit)` per optimizer.
    pub fits: Vec<(String, Fit)>,
}

/// Runs the command line and writes `linear_regression.svg`.
pub fn run_cli(args: &Args) -> anyhow::Result<Report> {
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let device = args.common.device()?;
    let specs = optim::checked_list(&args.optimizers)?;
    let out = args.common.out_dir("linear_regression")?;
    let data = data(100, args.seed.seed.unwrap_or(DATA_SEED));
    let mut fits = Vec::new();
    for spec in specs {
        let fit = fit(&data, &spec, args.iters, &device)?;
        fits.push((spec, fit));
    }
    figure(&out.join("linear_regression.svg"), &fits)?;
    Ok(Report { closed_form: closed_form(&data), fits })
}

/// Every fit's loss curve on one log-scale chart.
pub fn figure(path: &Path, fits: &[(String, Fit)]) -> anyhow::Result<()> {
    let series: Vec<Series> = fits
        .iter()
        .map(|(s, f)| {
            Series::new(s.clone(), f.losses.iter().enumerate().map(|(i, l)| (i as f64, *l)).collect())
        })
        .collect();
    let spec = ChartSpec {
        title: "linear regression: loss per iteration",
        x_label: "iteration",
        y_label: "MSE loss",
        log_y: true,
        log_x: false,
    };
    Ok(plot::line_chart(path, &spec, &series)?)
}
