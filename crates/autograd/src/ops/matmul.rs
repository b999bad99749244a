//! Matrix product, batched over leading dimensions (which broadcast).

use candle_core::{Shape, Tensor};

use super::{reduce_to_shape, InputGrads, Op};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

/// `c = a @ b`: `∂a = g @ bᵀ`, `∂b = aᵀ @ g`, each summed back over broadcast batch dimensions.
pub(crate) struct MatmulOp {
    lhs: Option<Tensor>,
    rhs: Option<Tensor>,
    lhs_shape: Shape,
    rhs_shape: Shape,
}

impl Var {
    /// Matrix product over the last two dimensions; leading (batch) dimensions broadcast.
    pub fn matmul(&self, rhs: &Var) -> Result<Var> {
        let (a, b) = (self.dims(), rhs.dims());
        if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
                hint: "need rank >= 2 and lhs [.., m, k] with rhs [.., k, n]",
            });
        }
        if self.dtype() != rhs.dtype() {
            return Err(Error::InvalidArgument {
                op: "matmul",
                msg: format!("dtype mismatch: {:?} and {:?}", self.dtype(), rhs.dtype()),
            });
        }
        let value = if a[..a.len() - 2] == b[..b.len() - 2] {
            self.value().matmul(rhs.value())
        } else {
            self.value().broadcast_matmul(rhs.value())
        }
        .op("matmul")?;
        Tape::record("matmul", &[self, rhs], value, |needs| {
            Op::Matmul(MatmulOp {
                lhs: needs[1].then(|| self.value().clone()),
                rhs: needs[0].then(|| rhs.value().clone()),
                lhs_shape: self.shape().clone(),
                rhs_shape: rhs.shape().clone(),
            })
        })
    }

    /// Transposes the last two dimensions.
    pub fn t(&self) -> Result<Var> {
        let r = self.rank();
        if r < 2 {
            return Err(Error::InvalidArgument {
                op: "t",
                msg: format!("need rank >= 2, got shape {:?}", self.dims()),
            });
        }
        self.transpose(r - 2, r - 1)
    }
}

fn product(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    if ad[..ad.len() - 2] == bd[..bd.len() - 2] {
        a.matmul(b)
    } else {
        a.broadcast_matmul(b)
    }
}

impl MatmulOp {
    pub(crate) fn backward(self, g: &Tensor, _needs: &[bool]) -> Result<InputGrads> {
        let ga = match &self.rhs {
            Some(b) => Some(reduce_to_shape(&product(g, &b.t()?)?, &self.lhs_shape)?),
            None => None,
        };
        let gb = match &self.lhs {
            Some(a) => Some(reduce_to_shape(&product(&a.t()?, g)?, &self.rhs_shape)?),
            None => None,
        };
        Ok(vec![ga, gb])
    }
}
