//! Reductions: sum and mean (all, or along dimensions), max along a dimension.

use candle_core::shape::{Dim, Dims};
use candle_core::{Shape, Tensor};

use super::Op;
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Result, Var};

pub(crate) enum ReduceOp {
    /// Sum over `dims`: `∂x = g` broadcast back over the summed dimensions.
    Sum { input: Shape, kept: Shape },
    /// Max along `dim`: the gradient goes to the first maximal element of each slice (as PyTorch).
    Max { x: Tensor, dim: usize, kept: Shape },
}

impl Var {
    fn sum_impl(&self, dims: Vec<usize>, keepdim: bool) -> Result<Var> {
        let value = self.value().sum_keepdim(dims.clone()).op("sum")?;
        let kept = value.shape().clone();
        let value = if keepdim {
            value
        } else {
            let out: Vec<usize> =
                (0..self.rank()).filter(|d| !dims.contains(d)).map(|d| self.dims()[d]).collect();
            value.reshape(out).op("sum")?
        };
        Tape::record("sum", &[self], value, |_| {
            Op::Reduce(ReduceOp::Sum { input: self.shape().clone(), kept })
        })
    }

    /// Sum of all elements (a rank-0 tensor).
    pub fn sum_all(&self) -> Result<Var> {
        self.sum_impl((0..self.rank()).collect(), false)
    }

    /// Sum over `dims`, removing them.
    pub fn sum<D: Dims>(&self, dims: D) -> Result<Var> {
        let dims = dims.to_indexes(self.shape(), "sum").op("sum")?;
        self.sum_impl(dims, false)
    }

    /// Sum over `dims`, keeping them with size 1.
    pub fn sum_keepdim<D: Dims>(&self, dims: D) -> Result<Var> {
        let dims = dims.to_indexes(self.shape(), "sum").op("sum")?;
        self.sum_impl(dims, true)
    }

    /// Mean of all elements (a rank-0 tensor).
    pub fn mean_all(&self) -> Result<Var> {
        let n = self.elem_count().max(1) as f64;
        self.sum_all()?.scale(1.0 / n)
    }

    /// Mean over `dims`, removing them.
    pub fn mean<D: Dims>(&self, dims: D) -> Result<Var> {
        let dims = dims.to_indexes(self.shape(), "mean").op("mean")?;
        let n: usize = dims.iter().map(|&d| self.dims()[d]).product();
        self.sum_impl(dims, false)?.scale(1.0 / n.max(1) as f64)
    }

    /// Mean over `dims`, keeping them with size 1.
    pub fn mean_keepdim<D: Dims>(&self, dims: D) -> Result<Var> {
        let dims = dims.to_indexes(self.shape(), "mean").op("mean")?;
        let n: usize = dims.iter().map(|&d| self.dims()[d]).product();
        self.sum_impl(dims, true)?.scale(1.0 / n.max(1) as f64)
    }

    fn max_impl(&self, dim: usize, keepdim: bool) -> Result<Var> {
        let value = self.value().max_keepdim(dim).op("max")?;
        let kept = value.shape().clone();
        let value = if keepdim { value } else { value.squeeze(dim).op("max")? };
        Tape::record("max", &[self], value, |_| {
            Op::Reduce(ReduceOp::Max { x: self.value().clone(), dim, kept })
        })
    }

    /// Maximum along `dim`, removing it.
    pub fn max<D: Dim>(&self, dim: D) -> Result<Var> {
        let dim = dim.to_index(self.shape(), "max").op("max")?;
        self.max_impl(dim, false)
    }

    /// Maximum along `dim`, keeping it with size 1.
    pub fn max_keepdim<D: Dim>(&self, dim: D) -> Result<Var> {
        let dim = dim.to_index(self.shape(), "max").op("max")?;
        self.max_impl(dim, true)
    }
}

impl ReduceOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ReduceOp::Sum { .. } => "sum",
            ReduceOp::Max { .. } => "max",
        }
    }

    pub(crate) fn backward(self, g: &Tensor) -> Result<Tensor> {
        Ok(match self {
            ReduceOp::Sum { input, kept } => g.reshape(kept)?.broadcast_as(input)?,
            ReduceOp::Max { x, dim, kept } => {
                let arg = x.argmax_keepdim(dim)?;
                x.zeros_like()?.scatter_add(&arg, &g.reshape(kept)?, dim)?
            }
        })
    }
}
