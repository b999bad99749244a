//! Normalization: layer norm over the last dimension (PyTorch's `F.layer_norm` with
//! `normalized_shape` the last dimension), with or without weight and bias.

use candle_core::{Tensor, D};

use super::{InputGrads, Op};
use crate::cpu::{self, host_slice, with_float};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

pub(crate) enum NormOp {
    /// `y = x̂·w + b`, `x̂ = (x - μ)·r`, `r = 1/√(σ² + ε)` over the last dimension:
    /// `∂x = r·(ĝ - mean(ĝ) - x̂·mean(ĝ·x̂))` with `ĝ = g·w`, `∂w = Σ g·x̂`, `∂b = Σ g` (sums over
    /// every leading dimension).
    LayerNorm { xhat: Tensor, rstd: Tensor, weight: Option<Tensor>, has_weight: bool, has_bias: bool },
    /// The same over every dimension but 1 (the channels), batch norm in training mode:
    /// `∂x = r·(ĝ - mean ĝ - x̂·mean(ĝ·x̂))`, means over `dims`, `∂w = Σ g·x̂`, `∂b = Σ g`.
    BatchNorm {
        xhat: Tensor,
        /// `r` with the reduced dimensions kept (size 1).
        rstd: Tensor,
        /// The weight shaped `[1, C, 1, ..]`.
        weight: Option<Tensor>,
        dims: Vec<usize>,
        has_weight: bool,
        has_bias: bool,
    },
}

/// The statistics a batch norm in training mode computed, per channel (`[C]`): what the running
/// estimates are updated from.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// The batch mean.
    pub mean: Tensor,
    /// The biased batch variance (what the batch was normalized with).
    pub var: Tensor,
    /// Elements per channel (the unbiased variance is `var·n/(n-1)`).
    pub count: usize,
}

impl Var {
    /// Layer norm over the last dimension: `(x - mean)/√(var + eps)·weight + bias`, the variance
    /// biased (PyTorch's `F.layer_norm(x, (d,), weight, bias, eps)`); `weight` and `bias` are
    /// `[d]` and optional.
    pub fn layer_norm(&self, weight: Option<&Var>, bias: Option<&Var>, eps: f64) -> Result<Var> {
        let d = *self
            .dims()
            .last()
            .ok_or(Error::InvalidArgument { op: "layer_norm", msg: "needs at least one dimension".into() })?;
        let inputs = self.norm_operands("layer_norm", weight, bias, d, "the last dimension", eps)?;
        let x = self.value();
        let forward = || -> candle_core::Result<(Tensor, Tensor, Tensor)> {
            let mean = x.mean_keepdim(D::Minus1)?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
            let rstd = var.affine(1.0, eps)?.sqrt()?.recip()?;
            let xhat = xc.broadcast_mul(&rstd)?;
            let mut y = xhat.clone();
            if let Some(w) = weight {
                y = y.broadcast_mul(w.value())?;
            }
            if let Some(b) = bias {
                y = y.broadcast_add(b.value())?;
            }
            Ok((y, xhat, rstd))
        };
        let host = if x.device().is_cpu() {
            let x = x.contiguous()?;
            let (w, b) = (
                weight.map(|w| w.value().contiguous()).transpose()?,
                bias.map(|b| b.value().contiguous()).transpose()?,
            );
            let mut rdims = x.dims().to_vec();
            if let Some(last) = rdims.last_mut() {
                *last = 1;
            }
            with_float!(x.dtype(), T => {
                // `None` (the composed path) unless every operand is a CPU tensor of dtype T.
                let kernel = || {
                    let xs = host_slice::<T>(&x)?;
                    let ws = match &w { Some(w) => Some(host_slice::<T>(w)?), None => None };
                    let bs = match &b { Some(b) => Some(host_slice::<T>(b)?), None => None };
                    let (ws, bs) = (ws.as_ref().map_or(&[][..], |w| w.get()), bs.as_ref().map_or(&[][..], |b| b.get()));
                    Some(cpu::norm::layer_norm(xs.get(), ws, bs, d, eps))
                };
                kernel().map(|(y, xhat, rstd)| -> Result<_> {
                    Ok((cpu::tensor(y, x.dims())?, cpu::tensor(xhat, x.dims())?, cpu::tensor(rstd, &rdims)?))
                })
            })
            .flatten()
            .transpose()?
        } else {
            None
        };
        let (y, xhat, rstd) = match host {
            Some(v) => v,
            None => forward().op("layer_norm")?,
        };
        let w = weight.map(|w| w.value().clone());
        Tape::record("layer_norm", &inputs, y, |_| {
            Op::Norm(NormOp::LayerNorm {
                xhat,
                rstd,
                weight: w,
                has_weight: weight.is_some(),
                has_bias: bias.is_some(),
            })
        })
    }
}

impl Var {
    /// Batch norm in training mode (PyTorch's `F.batch_norm(x, .., training=True)`): over every
    /// dimension but 1 (`x` is `[N, C]`, `[N, C, L]` or `[N, C, H, W]`), per channel `c`,
    /// `y = (x - μ_c)/√(σ²_c + eps)·weight_c + bias_c` with the batch mean and the biased batch
    /// variance; also returns those statistics, for the running estimates (see
    /// `taper_nn::BatchNorm`). `weight` and `bias` are `[C]` and optional. Composed from candle's
    /// reductions on every device, with one backward rule.
    pub fn batch_norm(
        &self,
        weight: Option<&Var>,
        bias: Option<&Var>,
        eps: f64,
    ) -> Result<(Var, BatchStats)> {
        let dims = self.dims().to_vec();
        if dims.len() < 2 {
            return Err(Error::InvalidArgument {
                op: "batch_norm",
                msg: format!("needs [N, C, ..], got shape {dims:?}"),
            });
        }
        let c = dims[1];
        let count = self.elem_count() / c.max(1);
        if count < 2 {
            return Err(Error::InvalidArgument {
                op: "batch_norm",
                msg: format!("needs more than 1 value per channel in training, got shape {dims:?}"),
            });
        }
        let inputs = self.norm_operands("batch_norm", weight, bias, c, "the channels", eps)?;
        let reduce: Vec<usize> = (0..dims.len()).filter(|&d| d != 1).collect();
        let mut bshape = vec![1; dims.len()];
        bshape[1] = c;
        let x = self.value();
        let forward = || -> candle_core::Result<_> {
            let mean = x.mean_keepdim(reduce.clone())?;
            let xc = x.broadcast_sub(&mean)?;
            let var = xc.sqr()?.mean_keepdim(reduce.clone())?;
            let rstd = var.affine(1.0, eps)?.sqrt()?.recip()?;
            let xhat = xc.broadcast_mul(&rstd)?;
            let w = weight.map(|w| w.value().reshape(bshape.clone())).transpose()?;
            let mut y = xhat.clone();
            if let Some(w) = &w {
                y = y.broadcast_mul(w)?;
            }
            if let Some(b) = bias {
                y = y.broadcast_add(&b.value().reshape(bshape.clone())?)?;
            }
            Ok((y, xhat, rstd, w, mean.flatten_all()?, var.flatten_all()?))
        };
        let (y, xhat, rstd, w, mean, var) = forward().op("batch_norm")?;
        let out = Tape::record("batch_norm", &inputs, y, |_| {
            Op::Norm(NormOp::BatchNorm {
                xhat,
                rstd,
                weight: w,
                dims: reduce.clone(),
                has_weight: weight.is_some(),
                has_bias: bias.is_some(),
            })
        })?;
        Ok((out, BatchStats { mean, var, count }))
    }
}

impl Var {
    /// The checks both norms make: `weight` and `bias` (optional) are `[n]` (`n` being `what`),
    /// `eps` is finite and `>= 0`, every operand has `self`'s dtype. Returns the operands in order.
    fn norm_operands<'a>(
        &'a self,
        op: &'static str,
        weight: Option<&'a Var>,
        bias: Option<&'a Var>,
        n: usize,
        what: &str,
        eps: f64,
    ) -> Result<Vec<&'a Var>> {
        for (name, v) in [("weight", weight), ("bias", bias)] {
            if let Some(v) = v {
                if v.dims() != [n] {
                    return Err(Error::InvalidArgument {
                        op,
                        msg: format!("{name} must be [{n}] ({what}), got {:?}", v.dims()),
                    });
                }
            }
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::InvalidArgument { op, msg: format!("eps must be >= 0, got {eps}") });
        }
        let mut inputs = vec![self];
        inputs.extend(weight);
        inputs.extend(bias);
        super::same_dtype(op, &inputs)?;
        Ok(inputs)
    }
}

impl NormOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            NormOp::LayerNorm { .. } => "layer_norm",
            NormOp::BatchNorm { .. } => "batch_norm",
        }
    }

    pub(crate) fn backward(self, g: &Tensor, needs: &[bool]) -> Result<InputGrads> {
        let (xhat, rstd, weight, has_weight, has_bias) = match self {
            NormOp::LayerNorm { xhat, rstd, weight, has_weight, has_bias } => {
                (xhat, rstd, weight, has_weight, has_bias)
            }
            NormOp::BatchNorm { xhat, rstd, weight, dims, has_weight, has_bias } => {
                return batch_norm_backward(
                    g,
                    needs,
                    &xhat,
                    &rstd,
                    weight.as_ref(),
                    &dims,
                    has_weight,
                    has_bias,
                )
            }
        };
        let d = *xhat.dims().last().unwrap_or(&1);
        let rows = xhat.elem_count() / d.max(1);
        let mut out: InputGrads = Vec::with_capacity(3);
        let need = |i: usize| needs.get(i).copied().unwrap_or(false);
        let host = if need(0) && xhat.device().is_cpu() {
            let g = g.contiguous()?;
            let rstd_flat = rstd.flatten_all()?;
            with_float!(xhat.dtype(), T => {
                let w = weight.as_ref().map(|w| w.contiguous()).transpose()?;
                let ws = match &w {
                    Some(w) => host_slice::<T>(w).map(|s| s.get().to_vec()),
                    None => Some(Vec::new()),
                };
                match (host_slice::<T>(&xhat), host_slice::<T>(&rstd_flat), ws, host_slice::<T>(&g)) {
                    (Some(xs), Some(rs), Some(ws), Some(gs)) => {
                        let (gx, gw, gb) = cpu::norm::layer_norm_backward(xs.get(), rs.get(), &ws, gs.get(), d);
                        Some((|| Ok::<_, crate::Error>((cpu::tensor(gx, xhat.dims())?, cpu::tensor(gw, &[d])?, cpu::tensor(gb, &[d])?)))())
                    }
                    _ => None,
                }
            })
            .flatten()
            .transpose()?
        } else {
            None
        };
        let (host_w, host_b) = match host {
            // The CPU kernel: all three gradients in one pass.
            Some((gx, gw, gb)) => {
                out.push(Some(gx));
                (Some(gw), Some(gb))
            }
            None if need(0) => {
                let gh = match &weight {
                    Some(w) => g.broadcast_mul(w)?,
                    None => g.clone(),
                };
                let mean_g = gh.mean_keepdim(D::Minus1)?;
                let mean_gx = (&gh * &xhat)?.mean_keepdim(D::Minus1)?;
                let inner = gh.broadcast_sub(&mean_g)?.sub(&xhat.broadcast_mul(&mean_gx)?)?;
                out.push(Some(inner.broadcast_mul(&rstd)?));
                (None, None)
            }
            None => {
                out.push(None);
                (None, None)
            }
        };
        if has_weight {
            out.push(match (need(1), host_w) {
                (false, _) => None,
                (true, Some(gw)) => Some(gw),
                (true, None) => Some((g * &xhat)?.reshape((rows, d))?.sum(0)?),
            });
        }
        if has_bias {
            let i = if has_weight { 2 } else { 1 };
            out.push(match (need(i), host_b) {
                (false, _) => None,
                (true, Some(gb)) => Some(gb),
                (true, None) => Some(g.reshape((rows, d))?.sum(0)?),
            });
        }
        Ok(out)
    }
}

/// [`NormOp::BatchNorm`]'s rule, from candle's ops (every device).
#[allow(clippy::too_many_arguments)]
fn batch_norm_backward(
    g: &Tensor,
    needs: &[bool],
    xhat: &Tensor,
    rstd: &Tensor,
    weight: Option<&Tensor>,
    dims: &[usize],
    has_weight: bool,
    has_bias: bool,
) -> Result<InputGrads> {
    let need = |i: usize| needs.get(i).copied().unwrap_or(false);
    let mut out: InputGrads = Vec::with_capacity(3);
    out.push(if need(0) {
        let gh = match weight {
            Some(w) => g.broadcast_mul(w)?,
            None => g.clone(),
        };
        let mean_g = gh.mean_keepdim(dims.to_vec())?;
        let mean_gx = (&gh * xhat)?.mean_keepdim(dims.to_vec())?;
        let inner = gh.broadcast_sub(&mean_g)?.sub(&xhat.broadcast_mul(&mean_gx)?)?;
        Some(inner.broadcast_mul(rstd)?)
    } else {
        None
    });
    if has_weight {
        out.push(if need(1) { Some((g * xhat)?.sum(dims.to_vec())?) } else { None });
    }
    if has_bias {
        let i = if has_weight { 2 } else { 1 };
        out.push(if need(i) { Some(g.sum(dims.to_vec())?) } else { None });
    }
    Ok(out)
}
