//! Ops that move elements without arithmetic: reshape, transpose, broadcast, narrow, concat,
//! index_select and gather.

use candle_core::shape::Dim;
use candle_core::{Shape, Tensor};

use super::{reduce_to_shape, InputGrads, Op};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

pub(crate) enum ShapeOp {
    /// `∂x = g` reshaped back.
    Reshape { input: Shape },
    /// `∂x = gᵀ` (the same two dimensions swapped back).
    Transpose { d0: usize, d1: usize },
    /// `∂x = g` summed over the broadcast dimensions.
    BroadcastAs { input: Shape },
    /// `∂x = g` padded with zeros to the input's length along `dim`.
    Narrow { dim: usize, start: usize, input_len: usize },
    /// `∂xᵢ = g` narrowed to input `i`'s slice along `dim`.
    Concat { dim: usize, sizes: Vec<usize> },
    /// `∂x = 0` with `g` added at the selected indices (repeated indices accumulate).
    IndexSelect { ids: Tensor, dim: usize, input: Shape },
    /// `∂x = 0` with `g` scatter-added at the gathered positions.
    Gather { ids: Tensor, dim: usize, input: Shape },
}

impl Var {
    /// The same elements in a new shape (same element count).
    pub fn reshape<S: Into<Shape>>(&self, shape: S) -> Result<Var> {
        let shape: Shape = shape.into();
        if shape.elem_count() != self.elem_count() {
            return Err(Error::ShapeMismatch {
                op: "reshape",
                lhs: self.shape().clone(),
                rhs: shape,
                hint: "reshape keeps the number of elements",
            });
        }
        let value = self.value().reshape(shape).op("reshape")?;
        Tape::record("reshape", &[self], value, |_| {
            Op::Shape(ShapeOp::Reshape { input: self.shape().clone() })
        })
    }

    /// Flattens dimensions `start..` into one: `[b, c, h, w] -> [b, c·h·w]` for `start = 1`.
    pub fn flatten_from(&self, start: usize) -> Result<Var> {
        if start >= self.rank().max(1) {
            return Err(Error::InvalidArgument {
                op: "flatten",
                msg: format!("start dimension {start} out of range for shape {:?}", self.dims()),
            });
        }
        let mut dims: Vec<usize> = self.dims()[..start].to_vec();
        dims.push(self.dims()[start..].iter().product());
        self.reshape(dims)
    }

    /// Swaps two dimensions.
    pub fn transpose<D1: Dim, D2: Dim>(&self, d0: D1, d1: D2) -> Result<Var> {
        let d0 = d0.to_index(self.shape(), "transpose").op("transpose")?;
        let d1 = d1.to_index(self.shape(), "transpose").op("transpose")?;
        let value = self.value().transpose(d0, d1).op("transpose")?;
        Tape::record("transpose", &[self], value, |_| Op::Shape(ShapeOp::Transpose { d0, d1 }))
    }

    /// Broadcasts to `shape` (NumPy rules).
    pub fn broadcast_as<S: Into<Shape>>(&self, shape: S) -> Result<Var> {
        let value = self.value().broadcast_as(shape).op("broadcast_as")?;
        Tape::record("broadcast_as", &[self], value, |_| {
            Op::Shape(ShapeOp::BroadcastAs { input: self.shape().clone() })
        })
    }

    /// The slice `start..start + len` along `dim`.
    pub fn narrow<D: Dim>(&self, dim: D, start: usize, len: usize) -> Result<Var> {
        let dim = dim.to_index(self.shape(), "narrow").op("narrow")?;
        let input_len = self.dims()[dim];
        if start.checked_add(len).is_none_or(|end| end > input_len) {
            return Err(Error::InvalidArgument {
                op: "narrow",
                msg: format!(
                    "slice {start}..{} out of range for dimension {dim} of shape {:?}",
                    start.saturating_add(len),
                    self.dims()
                ),
            });
        }
        let value = self.value().narrow(dim, start, len).op("narrow")?;
        Tape::record("narrow", &[self], value, |_| Op::Shape(ShapeOp::Narrow { dim, start, input_len }))
    }

    /// Concatenates values along `dim` (all other dimensions equal).
    pub fn cat(vars: &[&Var], dim: usize) -> Result<Var> {
        let first =
            vars.first().ok_or(Error::InvalidArgument { op: "cat", msg: "nothing to concatenate".into() })?;
        for v in &vars[1..] {
            let same = v.rank() == first.rank()
                && dim < first.rank()
                && v.dims().iter().zip(first.dims()).enumerate().all(|(i, (a, b))| i == dim || a == b);
            if !same || v.dtype() != first.dtype() {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: first.shape().clone(),
                    rhs: v.shape().clone(),
                    hint: "all dimensions but the concatenation one must be equal, and dtypes too",
                });
            }
        }
        if dim >= first.rank() {
            return Err(Error::InvalidArgument {
                op: "cat",
                msg: format!("dimension {dim} out of range for shape {:?}", first.dims()),
            });
        }
        let values: Vec<&Tensor> = vars.iter().map(|v| v.value()).collect();
        let value = Tensor::cat(&values, dim).op("cat")?;
        let sizes = vars.iter().map(|v| v.dims()[dim]).collect();
        Tape::record("cat", vars, value, |_| Op::Shape(ShapeOp::Concat { dim, sizes }))
    }

    /// Selects the entries at `ids` (a 1-D integer tensor) along `dim`.
    pub fn index_select<D: Dim>(&self, ids: &Tensor, dim: D) -> Result<Var> {
        let dim = dim.to_index(self.shape(), "index_select").op("index_select")?;
        // Ids made on the host serve a value on any device.
        let ids = &ids.to_device(self.device()).op("index_select")?;
        let value = self.value().index_select(ids, dim).op("index_select")?;
        Tape::record("index_select", &[self], value, |_| {
            Op::Shape(ShapeOp::IndexSelect { ids: ids.clone(), dim, input: self.shape().clone() })
        })
    }

    /// `out[i][j] = self[i][ids[i][j]]` along `dim` (PyTorch's `gather`).
    pub fn gather<D: Dim>(&self, ids: &Tensor, dim: D) -> Result<Var> {
        let dim = dim.to_index(self.shape(), "gather").op("gather")?;
        // Ids made on the host serve a value on any device.
        let ids = &ids.to_device(self.device()).op("gather")?;
        let value = self.value().gather(ids, dim).op("gather")?;
        Tape::record("gather", &[self], value, |_| {
            Op::Shape(ShapeOp::Gather { ids: ids.clone(), dim, input: self.shape().clone() })
        })
    }
}

impl ShapeOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ShapeOp::Reshape { .. } => "reshape",
            ShapeOp::Transpose { .. } => "transpose",
            ShapeOp::BroadcastAs { .. } => "broadcast_as",
            ShapeOp::Narrow { .. } => "narrow",
            ShapeOp::Concat { .. } => "cat",
            ShapeOp::IndexSelect { .. } => "index_select",
            ShapeOp::Gather { .. } => "gather",
        }
    }

    pub(crate) fn backward(self, g: &Tensor, needs: &[bool]) -> Result<InputGrads> {
        let one = |t: Tensor| Ok(vec![Some(t)]);
        match self {
            ShapeOp::Reshape { input } => one(g.reshape(input)?),
            ShapeOp::Transpose { d0, d1 } => one(g.transpose(d0, d1)?),
            ShapeOp::BroadcastAs { input } => one(reduce_to_shape(g, &input)?),
            ShapeOp::Narrow { dim, start, input_len } => {
                let len = g.dims()[dim];
                one(g.pad_with_zeros(dim, start, input_len - start - len)?)
            }
            ShapeOp::Concat { dim, sizes } => {
                let mut offset = 0;
                let mut out = Vec::with_capacity(sizes.len());
                for (size, need) in sizes.into_iter().zip(needs) {
                    out.push(if *need { Some(g.narrow(dim, offset, size)?) } else { None });
                    offset += size;
                }
                Ok(out)
            }
            ShapeOp::IndexSelect { ids, dim, input } => {
                one(Tensor::zeros(input, g.dtype(), g.device())?.index_add(&ids, &g.contiguous()?, dim)?)
            }
            ShapeOp::Gather { ids, dim, input } => {
                one(Tensor::zeros(input, g.dtype(), g.device())?.scatter_add(&ids, &g.contiguous()?, dim)?)
            }
        }
    }
}
