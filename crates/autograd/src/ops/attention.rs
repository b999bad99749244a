//! Causal multi-head self-attention on packed projections, as one op.

use candle_core::{DType, Device, Tensor, WithDType};

use super::{InputGrads, Op};
use crate::cpu::{self, attention, host_slice, host_view, with_float};
use crate::tape::Tape;
use crate::{Error, Result, Var};

/// Dropout on attention probabilities inside [`Var::causal_attention`]: each probability is
/// zeroed with probability `p` and the others scaled by `1/(1-p)`, the mask hashed from `seed`
/// and each element's `(batch·heads + head, query, key)` position, so every device and the
/// backward pass build the same one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionDropout {
    /// The probability of dropping.
    pub p: f64,
    /// The mask's seed (draw a new one per call).
    pub seed: u64,
}

impl AttentionDropout {
    /// The factors this dropout multiplies the probabilities by, `[B, H, T, T]` (`1/(1-p)` where
    /// kept, 0 where dropped and above the diagonal), in `dtype` (f32 or f64) on `device`.
    pub fn mask(&self, b: usize, n_head: usize, t: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let g = attention::Geom { b, t, h: n_head, d: 1 };
        let d = attention::Dropout { p: self.p, seed: self.seed };
        let mask = with_float!(dtype, T => Tensor::from_vec(attention::dropout_mask::<T>(&g, &d), (b, n_head, t, t), &Device::Cpu))
            .ok_or_else(|| Error::InvalidArgument {
                op: "causal_attention",
                msg: format!("dropout needs f32 or f64, got {dtype:?}"),
            })??;
        Ok(mask.to_device(device)?)
    }
}

/// The fused CPU rule: the backward pass recomputes the probabilities from `qkv` and the saved
/// row statistics (see [`crate::cpu::attention`] for the formulas).
pub(crate) struct AttentionOp {
    qkv: Tensor,
    out: Tensor,
    stats: Tensor,
    geom: attention::Geom,
    scale: f64,
    dropout: Option<attention::Dropout>,
}

impl Var {
    /// Causal multi-head self-attention of a packed projection (flash-attention's
    /// `qkvpacked` form): `self` is `[B, T, 3C]`, the queries, keys and values side by side, head
    /// `h` of each in columns `h·d..(h+1)·d` (`d = C/n_head`); the result is `[B, T, C]`, the
    /// heads' outputs side by side (what nanoGPT's `c_proj` takes).
    ///
    /// Per head: `softmax(Q·Kᵀ/√d + causal mask)·V`, dropout applied to the probabilities when
    /// given (PyTorch's `scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p)`).
    /// On the CPU (f32/f64) one fused op that keeps no `[T, T]` matrix between passes; elsewhere
    /// the same computation from the tape's ops (products, [`Var::causal_softmax`], the same
    /// dropout mask).
    pub fn causal_attention(&self, n_head: usize, dropout: Option<AttentionDropout>) -> Result<Var> {
        let &[b, t, c3] = self.dims() else {
            return Err(Error::InvalidArgument {
                op: "causal_attention",
                msg: format!("qkv must be [B, T, 3C], got {:?}", self.dims()),
            });
        };
        if n_head == 0 || c3 % (3 * n_head) != 0 {
            return Err(Error::InvalidArgument {
                op: "causal_attention",
                msg: format!("the last dimension ({c3}) must be 3·C with C divisible by n_head ({n_head})"),
            });
        }
        if let Some(d) = dropout {
            if !(0.0..=1.0).contains(&d.p) {
                return Err(Error::InvalidArgument {
                    op: "causal_attention",
                    msg: format!("dropout p must be in [0, 1], got {}", d.p),
                });
            }
        }
        let geom = attention::Geom { b, t, h: n_head, d: c3 / 3 / n_head };
        let scale = 1.0 / (geom.d as f64).sqrt();
        let dropout = dropout.filter(|d| d.p > 0.0);
        let x = self.value();
        let host = if x.device().is_cpu() {
            let x = x.contiguous()?;
            with_float!(x.dtype(), T => host_slice::<T>(&x).map(|xs| {
                let (y, stats) = attention::forward(xs.get(), &geom, T::from_f64(scale), dropout.map(|d| attention::Dropout { p: d.p, seed: d.seed }));
                Ok::<_, Error>((cpu::tensor(y, &[b, t, c3 / 3])?, cpu::tensor(stats, &[b * n_head * t * 2])?, x.clone()))
            }))
            .flatten()
            .transpose()?
        } else {
            None
        };
        let Some((value, stats, qkv)) = host else {
            return self.causal_attention_composed(&geom, scale, dropout);
        };
        let out = value.clone();
        Tape::record("causal_attention", &[self], value, |_| {
            let dropout = dropout.map(|d| attention::Dropout { p: d.p, seed: d.seed });
            Op::Attention(AttentionOp { qkv, out, stats, geom, scale, dropout })
        })
    }

    /// [`Var::causal_attention`] from the tape's ops.
    fn causal_attention_composed(
        &self,
        g: &attention::Geom,
        scale: f64,
        dropout: Option<AttentionDropout>,
    ) -> Result<Var> {
        let c = g.h * g.d;
        let head = |i: usize| -> Result<Var> {
            self.narrow(2, i * c, c)?.reshape(vec![g.b, g.t, g.h, g.d])?.transpose(1, 2)
        };
        let (q, k, v) = (head(0)?, head(1)?, head(2)?);
        let mut att = q.matmul(&k.transpose(2, 3)?)?.scale(scale)?.causal_softmax()?;
        if let Some(d) = dropout {
            let mask = d.mask(g.b, g.h, g.t, self.dtype(), self.value().device())?;
            att = att.mul(&Var::constant(mask))?;
        }
        att.matmul(&v)?.transpose(1, 2)?.reshape(vec![g.b, g.t, c])
    }
}

impl AttentionOp {
    pub(crate) fn backward(self, g: &Tensor) -> Result<InputGrads> {
        let g = g.contiguous()?;
        let host = with_float!(self.qkv.dtype(), T => {
            // The forward pass took the fused kernel, so every tensor here is a contiguous CPU
            // one of its dtype (read whatever the kernel switch says now).
            match (host_view::<T>(&self.qkv), host_view::<T>(&self.out), host_view::<T>(&self.stats), host_view::<T>(&g)) {
                (Some(x), Some(y), Some(st), Some(gy)) => {
                    let gx = attention::backward(x.get(), y.get(), st.get(), gy.get(), &self.geom, T::from_f64(self.scale), self.dropout);
                    Some(cpu::tensor(gx, self.qkv.dims()))
                }
                _ => None,
            }
        })
        .flatten();
        match host {
            Some(gx) => Ok(vec![Some(gx?)]),
            None => Err(Error::InvalidArgument {
                op: "causal_attention",
                msg: format!("the output gradient must be a CPU tensor of dtype {:?}", self.qkv.dtype()),
            }),
        }
    }
}
