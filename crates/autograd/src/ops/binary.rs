//! Element-wise binary ops with NumPy broadcasting: add, sub, mul, div.

use candle_core::{Shape, Tensor};

use super::{reduce_to_shape, InputGrads, Op};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

pub(crate) enum BinaryOp {
    /// `a + b`
    Add { lhs: Shape, rhs: Shape },
    /// `a - b`
    Sub { lhs: Shape, rhs: Shape },
    /// `a * b`: `∂a = g·b`, `∂b = g·a` (each operand saved only if the other needs a gradient).
    Mul { lhs: Option<Tensor>, rhs: Option<Tensor>, lhs_shape: Shape, rhs_shape: Shape },
    /// `a / b`: `∂a = g / b`, `∂b = -g·a / b²`.
    Div { lhs: Option<Tensor>, rhs: Tensor, lhs_shape: Shape },
}

fn broadcast_shape(op: &'static str, a: &Var, b: &Var) -> Result<Shape> {
    a.shape().broadcast_shape_binary_op(b.shape(), op).map_err(|_| Error::ShapeMismatch {
        op,
        lhs: a.shape().clone(),
        rhs: b.shape().clone(),
        hint: "shapes must be equal or broadcastable: trailing dimensions equal or 1",
    })
}

impl Var {
    fn binary(
        &self,
        rhs: &Var,
        op: &'static str,
        forward: impl FnOnce(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
        make: impl FnOnce(&[bool]) -> BinaryOp,
    ) -> Result<Var> {
        super::same_dtype(op, &[self, rhs])?;
        broadcast_shape(op, self, rhs)?;
        let value = forward(self.value(), rhs.value()).op(op)?;
        Tape::record(op, &[self, rhs], value, |needs| Op::Binary(make(needs)))
    }

    /// `self + rhs`, broadcasting.
    pub fn add(&self, rhs: &Var) -> Result<Var> {
        self.binary(
            rhs,
            "add",
            |a, b| a.broadcast_add(b),
            |_| BinaryOp::Add { lhs: self.shape().clone(), rhs: rhs.shape().clone() },
        )
    }

    /// `self - rhs`, broadcasting.
    pub fn sub(&self, rhs: &Var) -> Result<Var> {
        self.binary(
            rhs,
            "sub",
            |a, b| a.broadcast_sub(b),
            |_| BinaryOp::Sub { lhs: self.shape().clone(), rhs: rhs.shape().clone() },
        )
    }

    /// `self * rhs` element-wise, broadcasting.
    pub fn mul(&self, rhs: &Var) -> Result<Var> {
        self.binary(
            rhs,
            "mul",
            |a, b| a.broadcast_mul(b),
            |needs| BinaryOp::Mul {
                lhs: needs[1].then(|| self.value().clone()),
                rhs: needs[0].then(|| rhs.value().clone()),
                lhs_shape: self.shape().clone(),
                rhs_shape: rhs.shape().clone(),
            },
        )
    }

    /// `self / rhs` element-wise, broadcasting.
    pub fn div(&self, rhs: &Var) -> Result<Var> {
        self.binary(
            rhs,
            "div",
            |a, b| a.broadcast_div(b),
            |needs| BinaryOp::Div {
                lhs: needs[1].then(|| self.value().clone()),
                rhs: rhs.value().clone(),
                lhs_shape: self.shape().clone(),
            },
        )
    }
}

impl BinaryOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            BinaryOp::Add { .. } => "add",
            BinaryOp::Sub { .. } => "sub",
            BinaryOp::Mul { .. } => "mul",
            BinaryOp::Div { .. } => "div",
        }
    }

    pub(crate) fn backward(self, g: &Tensor, needs: &[bool]) -> Result<InputGrads> {
        let (ga, gb) = match self {
            BinaryOp::Add { lhs, rhs } => (
                needs[0].then(|| reduce_to_shape(g, &lhs)).transpose()?,
                needs[1].then(|| reduce_to_shape(g, &rhs)).transpose()?,
            ),
            BinaryOp::Sub { lhs, rhs } => (
                needs[0].then(|| reduce_to_shape(g, &lhs)).transpose()?,
                needs[1].then(|| reduce_to_shape(&g.neg()?, &rhs)).transpose()?,
            ),
            BinaryOp::Mul { lhs, rhs, lhs_shape, rhs_shape } => (
                match rhs {
                    Some(b) => Some(reduce_to_shape(&g.broadcast_mul(&b)?, &lhs_shape)?),
                    None => None,
                },
                match lhs {
                    Some(a) => Some(reduce_to_shape(&g.broadcast_mul(&a)?, &rhs_shape)?),
                    None => None,
                },
            ),
            BinaryOp::Div { lhs, rhs, lhs_shape } => {
                let ga =
                    if needs[0] { Some(reduce_to_shape(&g.broadcast_div(&rhs)?, &lhs_shape)?) } else { None };
                let gb = match lhs {
                    // -g·a / b²
                    Some(a) => {
                        let t = g.broadcast_mul(&a)?.broadcast_div(&rhs.sqr()?)?.neg()?;
                        Some(reduce_to_shape(&t, rhs.shape())?)
                    }
                    None => None,
                };
                (ga, gb)
            }
        };
        Ok(vec![ga, gb])
    }
}
