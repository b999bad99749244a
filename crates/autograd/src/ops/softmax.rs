//! Softmax and log-softmax along a dimension.

use candle_core::shape::Dim;
use candle_core::Tensor;

use super::Op;
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Result, Var};

pub(crate) enum SoftmaxOp {
    /// `y = softmax(x)`: `∂x = y·(g - Σ g·y)`.
    Softmax { out: Tensor, dim: usize },
    /// `y = log_softmax(x)`: `∂x = g - eʸ·Σ g`.
    LogSoftmax { out: Tensor, dim: usize },
}

impl Var {
    /// Softmax along `dim` (max-subtracted, so large inputs do not overflow).
    pub fn softmax<D: Dim>(&self, dim: D) -> Result<Var> {
        let dim = dim.to_index(self.shape(), "softmax").op("softmax")?;
        let value = if dim + 1 == self.rank() {
            candle_nn::ops::softmax_last_dim(self.value())
        } else {
            candle_nn::ops::softmax(self.value(), dim)
        }
        .op("softmax")?;
        let out = value.clone();
        Tape::record("softmax", &[self], value, |_| Op::Softmax(SoftmaxOp::Softmax { out, dim }))
    }

    /// Log-softmax along `dim` (max-subtracted).
    pub fn log_softmax<D: Dim>(&self, dim: D) -> Result<Var> {
        let dim = dim.to_index(self.shape(), "log_softmax").op("log_softmax")?;
        let value = candle_nn::ops::log_softmax(self.value(), dim).op("log_softmax")?;
        let out = value.clone();
        Tape::record("log_softmax", &[self], value, |_| Op::Softmax(SoftmaxOp::LogSoftmax { out, dim }))
    }
}

impl SoftmaxOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            SoftmaxOp::Softmax { .. } => "softmax",
            SoftmaxOp::LogSoftmax { .. } => "log_softmax",
        }
    }

    pub(crate) fn backward(self, g: &Tensor) -> Result<Tensor> {
        Ok(match self {
            SoftmaxOp::Softmax { out, dim } => {
                let dot = (g * &out)?.sum_keepdim(dim)?;
                (out * g.broadcast_sub(&dot)?)?
            }
            SoftmaxOp::LogSoftmax { out, dim } => {
                let total = g.sum_keepdim(dim)?;
                (g - out.exp()?.broadcast_mul(&total)?)?
            }
        })
    }
}
