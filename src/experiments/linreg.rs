//! The documents' linear regression: 100 points `x ~ U(0, 2)`, `y = 4 + 3x + N(0, 1)` (seeded),
//! the model `ŷ = b + w·x`, the loss `mean((ŷ - y)²)`, fitted full-batch by any optimizer.

use candle_core::{DType, Device, Tensor};
use taper_autograd::{Param, ParamStore, Tape, Var};
use taper_tensor::SeededRng;

use crate::optim::{self, Optimizer};

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
        let b = tape.param(self.param("b"));
        let w = tape.param(self.param("w"));
        Ok(self.x.mul(&w)?.add(&b)?.mse_loss(&self.y)?)
    }

    /// The parameter named `name` (`b` or `w`).
    pub fn param(&self, name: &str) -> &Param {
        self.store.get(name).expect("b and w exist")
    }

    fn scalar(&self, name: &str) -> crate::optim::Result<f64> {
        Ok(self.param(name).value().to_vec1::<f64>()?[0])
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
