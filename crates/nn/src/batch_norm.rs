//! Batch normalization (PyTorch's `nn.BatchNorm1d` and `nn.BatchNorm2d`).

use std::cell::Cell;

use candle_core::{DType, Tensor};
use taper_autograd::{Error, Param, Result, Tape, Var};

use crate::{Builder, Module};

/// Batch norm over the channels (dimension 1) of `[N, C]` or `[N, C, L]` inputs
/// ([`BatchNorm::new_1d`]) or `[N, C, H, W]` ones ([`BatchNorm::new_2d`]).
///
/// Training mode normalizes with the batch's statistics (biased variance),
/// `y = (x - μ)/√(σ² + eps)·weight + bias` ([`Var::batch_norm`]), and updates the running
/// estimates with the batch mean and the *unbiased* variance:
/// `r ← (1 - m)·r + m·stat`, `m` the momentum, or `1/t` after `t` batches when the momentum is
/// `None` (a cumulative average), as PyTorch does. Evaluation mode uses the running estimates:
/// `y = (x - μ_run)/√(σ²_run + eps)·weight + bias`. The running estimates are parameters that
/// need no gradient (`name.running_mean`, `name.running_var`), so checkpoints keep them and
/// optimizers, which take [`taper_autograd::ParamStore::trainable`], leave them alone.
pub struct BatchNorm {
    /// `[C]`, if affine.
    pub weight: Option<Param>,
    /// `[C]`, if affine.
    pub bias: Option<Param>,
    /// `[C]`, starts at 0.
    pub running_mean: Param,
    /// `[C]`, starts at 1.
    pub running_var: Param,
    /// Added to the variance (PyTorch: 1e-5).
    pub eps: f64,
    /// The weight of a batch's statistics in the running estimates (PyTorch: 0.1); `None` for a
    /// cumulative average.
    pub momentum: Option<f64>,
    /// Training batches seen, a `[]` i64 (PyTorch's `num_batches_tracked`, under that name).
    pub num_batches_tracked: Param,
    ranks: &'static [usize],
    training: Cell<bool>,
}

impl BatchNorm {
    /// `nn.BatchNorm1d(channels, eps, momentum, affine)`: inputs `[N, C]` or `[N, C, L]`.
    pub fn new_1d(
        b: &mut Builder,
        channels: usize,
        eps: f64,
        momentum: Option<f64>,
        affine: bool,
    ) -> Result<Self> {
        Self::new(b, channels, eps, momentum, affine, &[2, 3])
    }

    /// `nn.BatchNorm2d(channels, eps, momentum, affine)`: inputs `[N, C, H, W]`.
    pub fn new_2d(
        b: &mut Builder,
        channels: usize,
        eps: f64,
        momentum: Option<f64>,
        affine: bool,
    ) -> Result<Self> {
        Self::new(b, channels, eps, momentum, affine, &[4])
    }

    fn new(
        b: &mut Builder,
        channels: usize,
        eps: f64,
        momentum: Option<f64>,
        affine: bool,
        ranks: &'static [usize],
    ) -> Result<Self> {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::InvalidArgument {
                op: "batch_norm",
                msg: format!("eps must be >= 0, got {eps}"),
            });
        }
        if let Some(m) = momentum {
            if !(0.0..=1.0).contains(&m) {
                return Err(Error::InvalidArgument {
                    op: "batch_norm",
                    msg: format!("momentum must be in [0, 1], got {m}"),
                });
            }
        }
        let (weight, bias) = if affine {
            let ones = Tensor::ones(channels, b.dtype(), b.device())?;
            (Some(b.param("weight", ones)?), Some(b.zeros("bias", &[channels])?))
        } else {
            (None, None)
        };
        let running_mean = b.zeros("running_mean", &[channels])?;
        let running_var = b.param("running_var", Tensor::ones(channels, b.dtype(), b.device())?)?;
        let num_batches_tracked = b.param("num_batches_tracked", Tensor::new(0i64, b.device())?)?;
        for p in [&running_mean, &running_var, &num_batches_tracked] {
            p.set_requires_grad(false);
        }
        Ok(Self {
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            eps,
            momentum,
            ranks,
            training: Cell::new(true),
        })
    }

    /// Training batches seen.
    pub fn batches_tracked(&self) -> Result<i64> {
        Ok(self.num_batches_tracked.value().to_scalar::<i64>()?)
    }

    fn check(&self, x: &Var) -> Result<usize> {
        let dims = x.dims();
        let c = self.running_mean.dims()[0];
        if !self.ranks.contains(&dims.len()) || dims[1] != c {
            let want = if self.ranks == [4] { "[N, C, H, W]" } else { "[N, C] or [N, C, L]" };
            return Err(Error::InvalidArgument {
                op: "batch_norm",
                msg: format!("input must be {want} with C = {c}, got {dims:?}"),
            });
        }
        Ok(c)
    }
}

impl Module for BatchNorm {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let c = self.check(x)?;
        let weight = self.weight.as_ref().map(|w| tape.param(w));
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        let mut shape = vec![1; x.rank()];
        shape[1] = c;
        if !self.training.get() {
            let dtype = x.dtype();
            let mean = self.running_mean.value().to_dtype(dtype)?.reshape(shape.clone())?;
            let inv =
                self.running_var.value().to_dtype(DType::F64)?.affine(1.0, self.eps)?.sqrt()?.recip()?;
            let inv = inv.to_dtype(dtype)?.reshape(shape.clone())?;
            let mut y = x.sub(&Var::constant(mean))?.mul(&Var::constant(inv))?;
            if let Some(w) = &weight {
                y = y.mul(&w.reshape(shape.clone())?)?;
            }
            if let Some(b) = &bias {
                y = y.add(&b.reshape(shape)?)?;
            }
            return Ok(y);
        }
        let (y, stats) = x.batch_norm(weight.as_ref(), bias.as_ref(), self.eps)?;
        let t = self.batches_tracked()? + 1;
        let m = self.momentum.unwrap_or(1.0 / t as f64);
        let n = stats.count as f64;
        // Both estimates are computed before either is set, so a failure changes neither.
        let unbiased = stats.var.affine(n / (n - 1.0), 0.0)?;
        let (rm, rv) = (self.running_mean.value(), self.running_var.value());
        let new_mean = (rm.affine(1.0 - m, 0.0)? + stats.mean.to_dtype(rm.dtype())?.affine(m, 0.0)?)?;
        let new_var = (rv.affine(1.0 - m, 0.0)? + unbiased.to_dtype(rv.dtype())?.affine(m, 0.0)?)?;
        let count = Tensor::new(t, &self.num_batches_tracked.device())?;
        self.running_mean.set(new_mean)?;
        self.running_var.set(new_var)?;
        self.num_batches_tracked.set(count)?;
        Ok(y)
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }
}
