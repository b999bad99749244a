//! Softmax and log-softmax along a dimension.

use candle_core::shape::Dim;
use candle_core::Tensor;

use super::Op;
use crate::cpu::{self, host_slice, with_float};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Result, Var};

pub(crate) enum SoftmaxOp {
    /// `y = softmax(x)`: `∂x = y·(g - Σ g·y)`.
    Softmax { out: Tensor, dim: usize },
    /// Causal softmax over the last dimension of `[.., T, T]`: the same rule, `y` being 0 where
    /// masked (so is `∂x`).
    Causal { out: Tensor },
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

    /// Softmax over the last dimension of attention scores `[.., T, T]` with a causal mask: row
    /// `i` of each matrix attends to positions `j ≤ i` only (the others get probability 0). On
    /// the CPU one fused pass per row (no masked tensor is built); elsewhere candle's ops with the
    /// masked scores pushed to a large negative number.
    pub fn causal_softmax(&self) -> Result<Var> {
        let dims = self.dims();
        let n = dims.len();
        if n < 2 || dims[n - 1] != dims[n - 2] {
            return Err(crate::Error::InvalidArgument {
                op: "causal_softmax",
                msg: format!("scores must be [.., T, T], got shape {dims:?}"),
            });
        }
        let t = dims[n - 1];
        let x = self.value();
        let host = if x.device().is_cpu() {
            let x = x.contiguous()?;
            with_float!(x.dtype(), T => host_slice::<T>(&x).map(|xs| cpu::tensor(cpu::softmax::causal_softmax(xs.get(), t), x.dims())))
                .flatten()
                .transpose()?
        } else {
            None
        };
        let value = match host {
            Some(v) => v,
            None => causal_composed(x, t).op("causal_softmax")?,
        };
        let out = value.clone();
        Tape::record("causal_softmax", &[self], value, |_| Op::Softmax(SoftmaxOp::Causal { out }))
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
            SoftmaxOp::Causal { .. } => "causal_softmax",
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
            SoftmaxOp::Causal { out } => {
                let t = *out.dims().last().unwrap_or(&1);
                let g = if out.device().is_cpu() { g.contiguous()? } else { g.clone() };
                let host = with_float!(out.dtype(), T => match (host_slice::<T>(&out), host_slice::<T>(&g)) {
                    (Some(y), Some(gs)) => Some(cpu::tensor(cpu::softmax::causal_softmax_backward(y.get(), gs.get(), t), out.dims())),
                    _ => None,
                })
                .flatten();
                match host {
                    Some(gx) => gx?,
                    None => {
                        let last = out.rank() - 1;
                        let dot = (&g * &out)?.sum_keepdim(last)?;
                        (&out * g.broadcast_sub(&dot)?)?
                    }
                }
            }
        })
    }
}

/// Causal softmax from candle's ops: masked scores pushed to `-1e30` (exp gives 0 exactly), then
/// a max-subtracted softmax over the last dimension.
fn causal_composed(x: &Tensor, t: usize) -> candle_core::Result<Tensor> {
    let keep: Vec<u8> = (0..t * t).map(|k| u8::from(k % t <= k / t)).collect();
    let keep = Tensor::from_vec(keep, (t, t), x.device())?.broadcast_as(x.shape())?;
    let masked = keep.where_cond(x, &Tensor::full(-1e30f64, x.shape(), x.device())?.to_dtype(x.dtype())?)?;
    candle_nn::ops::softmax_last_dim(&masked)
}
