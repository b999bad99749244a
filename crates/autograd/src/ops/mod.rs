//! Every differentiable op, grouped by family. Each family file holds the ops' forward methods on
//! [`crate::Var`] and, right beside them, their backward rules.
//!
//! The one place that says how an op is differentiated is [`Op::backward`]: a `match` with no
//! wildcard arm, delegating to each family's own exhaustive `match`. Adding an op variant makes the
//! compiler point at the rule it needs.

pub(crate) mod attention;
pub(crate) mod binary;
pub(crate) mod conv;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod reduce;
pub(crate) mod shape;
pub(crate) mod softmax;
pub(crate) mod unary;

use candle_core::{Shape, Tensor};

use crate::{Error, Result, Var};

/// The one dtype check of the ops: every operand of `op` has the first one's dtype.
pub(crate) fn same_dtype(op: &'static str, operands: &[&Var]) -> Result<()> {
    let Some(first) = operands.first() else { return Ok(()) };
    match operands.iter().find(|v| v.dtype() != first.dtype()) {
        Some(other) => Err(Error::InvalidArgument {
            op,
            msg: format!("dtype mismatch: {:?} and {:?}", first.dtype(), other.dtype()),
        }),
        None => Ok(()),
    }
}

/// An activation that a layer op ([`crate::Var::conv2d_fused`], [`crate::Var::linear_fused`])
/// applies to its output in the same pass, and differentiates in its own rule: on the CPU the
/// output is activated while it is in cache, and the backward pass masks the output gradient
/// image by image instead of in a separate op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    Identity,
    /// `max(x, 0)`.
    Relu,
}

impl Activation {
    /// Applies the activation as its own op (what the fused ops compute in one).
    pub fn apply(self, x: &crate::Var) -> Result<crate::Var> {
        match self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => x.relu(),
        }
    }
}

/// A recorded op with what its backward rule needs.
pub(crate) enum Op {
    Binary(binary::BinaryOp),
    Unary(unary::UnaryOp),
    Matmul(matmul::MatmulOp),
    Linear(matmul::LinearOp),
    Reduce(reduce::ReduceOp),
    Shape(shape::ShapeOp),
    Softmax(softmax::SoftmaxOp),
    Conv(conv::ConvOp),
    Loss(loss::LossOp),
    Norm(norm::NormOp),
    Attention(attention::AttentionOp),
}

/// Gradients for an op's inputs, in argument order; `None` where the input needs none.
pub(crate) type InputGrads = Vec<Option<Tensor>>;

impl Op {
    /// The op's name, for errors and the DOT export.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Binary(op) => op.name(),
            Op::Unary(op) => op.name(),
            Op::Matmul(_) => "matmul",
            Op::Linear(_) => "linear",
            Op::Reduce(op) => op.name(),
            Op::Shape(op) => op.name(),
            Op::Softmax(op) => op.name(),
            Op::Conv(op) => op.name(),
            Op::Loss(op) => op.name(),
            Op::Norm(op) => op.name(),
            Op::Attention(_) => "causal_attention",
        }
    }

    /// The gradients of the op's inputs given the gradient of its output. `needs[i]` says whether
    /// input `i` needs one; rules skip the work for the others.
    pub(crate) fn backward(self, grad: &Tensor, needs: &[bool]) -> Result<InputGrads> {
        match self {
            Op::Binary(op) => op.backward(grad, needs),
            Op::Unary(op) => op.backward(grad).map(|g| vec![Some(g)]),
            Op::Matmul(op) => op.backward(grad, needs),
            Op::Linear(op) => op.backward(grad, needs),
            Op::Reduce(op) => op.backward(grad).map(|g| vec![Some(g)]),
            Op::Shape(op) => op.backward(grad, needs),
            Op::Softmax(op) => op.backward(grad).map(|g| vec![Some(g)]),
            Op::Conv(op) => op.backward(grad, needs),
            Op::Loss(op) => op.backward(grad, needs),
            Op::Norm(op) => op.backward(grad, needs),
            Op::Attention(op) => op.backward(grad),
        }
    }
}

/// Undoes broadcasting: sums `grad` down to `shape` (over the leading dimensions broadcasting
/// added and over the dimensions it stretched from 1).
pub(crate) fn reduce_to_shape(grad: &Tensor, shape: &Shape) -> Result<Tensor> {
    let gd = grad.dims();
    let td = shape.dims();
    if gd == td {
        return Ok(grad.clone());
    }
    let lead = gd.len() - td.len();
    let mut sum_dims: Vec<usize> = (0..lead).collect();
    for (i, &d) in td.iter().enumerate() {
        if d == 1 && gd[lead + i] != 1 {
            sum_dims.push(lead + i);
        }
    }
    let summed = if sum_dims.is_empty() { grad.clone() } else { grad.sum_keepdim(sum_dims)? };
    Ok(summed.reshape(td)?)
}
