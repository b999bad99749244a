//! Convolution and pooling over `[batch, channels, height, width]` tensors.
//!
//! On the CPU in f32/f64 these run Taper's own kernels (`crate::cpu::conv`, `crate::cpu::pool`):
//! im2col/col2im plus one matrix product per image and pass, and max pooling that saves the index
//! of each maximum. Elsewhere (CUDA) candle's kernels compute the forward pass and the rules below
//! are written with candle ops.

use candle_core::{DType, Device, Tensor};

use super::{Activation, InputGrads, Op};
use crate::cpu::{self, conv::Geom, host_slice, host_view, pool, with_float, Float};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

pub(crate) enum ConvOp {
    /// `y = conv2d(x, w) + b` (cross-correlation, PyTorch's `F.conv2d`): with `G` the output
    /// gradient, `∂x = conv_transpose2d(G, w)`, `∂w = Σ_b G_b ⋆ x_b` (the input correlated with the
    /// output gradient), `∂b = Σ_{b,y,x} G`. `x` is saved only if `w` needs a gradient and `w` only
    /// if `x` does.
    /// With `relu_out` (the output, when the op applied ReLU), `G` is masked where it is 0 first.
    Conv2d { x: Option<Tensor>, w: Option<Tensor>, geom: Geom, bias: bool, relu_out: Option<Tensor> },
    /// Max over `k×k` windows: the gradient goes to the first maximal element of each window.
    MaxPool2d { saved: PoolSaved, geom: pool::Geom, x_dims: [usize; 4] },
    /// Mean over `k×k` windows: each element of a window gets `g / k²`.
    AvgPool2d { x_dims: [usize; 4], geom: pool::Geom },
}

/// What max pooling keeps for its backward pass.
pub(crate) enum PoolSaved {
    /// For each output, the index of its maximum inside its plane (CPU).
    Indices(Vec<u32>),
    /// The input, to find the maxima again (other devices).
    Input(Tensor),
}

fn dims4(op: &'static str, v: &Var, what: &str) -> Result<[usize; 4]> {
    match *v.dims() {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => Err(Error::InvalidArgument {
            op,
            msg: format!("{what} must be [batch, channels, height, width], got shape {:?}", v.dims()),
        }),
    }
}

fn check_window(op: &'static str, h: usize, w: usize, k: usize, stride: usize, padding: usize) -> Result<()> {
    if k == 0 || stride == 0 {
        return Err(Error::InvalidArgument {
            op,
            msg: format!("kernel size and stride must be positive, got kernel {k}, stride {stride}"),
        });
    }
    if h + 2 * padding < k || w + 2 * padding < k {
        return Err(Error::InvalidArgument {
            op,
            msg: format!("kernel {k}x{k} does not fit in input {h}x{w} with padding {padding}"),
        });
    }
    Ok(())
}

impl Var {
    /// 2-D convolution (cross-correlation) of `self` `[b, c_in, h, w]` with `kernel`
    /// `[c_out, c_in, k_h, k_w]`, with the given stride and zero padding on every side.
    pub fn conv2d(&self, kernel: &Var, stride: usize, padding: usize) -> Result<Var> {
        self.conv2d_with_bias(kernel, None, stride, padding)
    }

    /// [`Var::conv2d`] plus a per-channel `bias` `[c_out]` (PyTorch's `F.conv2d(x, w, b)`), in one
    /// op: on the CPU the bias is written into the output before the product adds to it, and its
    /// gradient is summed in the same pass as the kernel's.
    pub fn conv2d_with_bias(
        &self,
        kernel: &Var,
        bias: Option<&Var>,
        stride: usize,
        padding: usize,
    ) -> Result<Var> {
        self.conv2d_fused(kernel, bias, stride, padding, Activation::Identity)
    }

    /// [`Var::conv2d_with_bias`] followed by `act`, in one op: `act(conv2d(x, w) + b)`.
    pub fn conv2d_fused(
        &self,
        kernel: &Var,
        bias: Option<&Var>,
        stride: usize,
        padding: usize,
        act: Activation,
    ) -> Result<Var> {
        let [batch, c_in, h, w] = dims4("conv2d", self, "input")?;
        let [c_out, kc, kh, kw] = dims4("conv2d", kernel, "kernel")?;
        if c_in != kc {
            return Err(Error::ShapeMismatch {
                op: "conv2d",
                lhs: self.shape().clone(),
                rhs: kernel.shape().clone(),
                hint: "input channels (dim 1) must equal the kernel's dim 1",
            });
        }
        check_window("conv2d", h, w, kh.max(kw), stride, padding)?;
        super::same_dtype("conv2d", &[self, kernel])?;
        if let Some(b) = bias {
            if b.dims() != [c_out] {
                return Err(Error::ShapeMismatch {
                    op: "conv2d",
                    lhs: kernel.shape().clone(),
                    rhs: b.shape().clone(),
                    hint: "the bias must be [c_out], c_out being the kernel's dim 0",
                });
            }
            super::same_dtype("conv2d", &[self, b])?;
        }
        let geom = Geom { batch, c_in, h, w, c_out, kh, kw, stride, pad: padding };
        let relu = act == Activation::Relu;
        let value =
            conv_forward(&geom, self.value(), kernel.value(), bias.map(Var::value), relu).op("conv2d")?;
        let out = relu.then(|| value.clone());
        let record = |needs: &[bool]| {
            Op::Conv(ConvOp::Conv2d {
                x: needs[1].then(|| self.value().clone()),
                w: needs[0].then(|| kernel.value().clone()),
                geom,
                bias: bias.is_some(),
                relu_out: out,
            })
        };
        match bias {
            Some(b) => Tape::record("conv2d", &[self, kernel, b], value, record),
            None => Tape::record("conv2d", &[self, kernel], value, record),
        }
    }

    /// Max pooling over `k×k` windows moved by `stride` (no padding).
    pub fn max_pool2d(&self, k: usize, stride: usize) -> Result<Var> {
        let x_dims = dims4("max_pool2d", self, "input")?;
        check_window("max_pool2d", x_dims[2], x_dims[3], k, stride, 0)?;
        let geom = pool_geom(x_dims, k, stride);
        let x = self.value();
        let host = if x.device().is_cpu() {
            let x = x.contiguous()?;
            with_float!(x.dtype(), T => max_pool_host::<T>(&geom, &x)).transpose()?.flatten()
        } else {
            None
        };
        let (value, saved) = match host {
            Some((value, idx)) => (value, PoolSaved::Indices(idx)),
            None => (x.max_pool2d_with_stride(k, stride).op("max_pool2d")?, PoolSaved::Input(x.clone())),
        };
        Tape::record("max_pool2d", &[self], value, |_| Op::Conv(ConvOp::MaxPool2d { saved, geom, x_dims }))
    }

    /// Average pooling over `k×k` windows moved by `stride` (no padding).
    pub fn avg_pool2d(&self, k: usize, stride: usize) -> Result<Var> {
        let x_dims = dims4("avg_pool2d", self, "input")?;
        check_window("avg_pool2d", x_dims[2], x_dims[3], k, stride, 0)?;
        let value = self.value().avg_pool2d_with_stride(k, stride).op("avg_pool2d")?;
        let geom = pool_geom(x_dims, k, stride);
        Tape::record("avg_pool2d", &[self], value, |_| Op::Conv(ConvOp::AvgPool2d { x_dims, geom }))
    }
}

fn pool_geom([b, c, h, w]: [usize; 4], k: usize, stride: usize) -> pool::Geom {
    pool::Geom { planes: b * c, h, w, k, stride }
}

/// The convolution's value: Taper's kernel for contiguous-able CPU f32/f64 operands, candle's
/// elsewhere.
fn conv_forward(
    g: &Geom,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    relu: bool,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        let bias = bias.map(Tensor::contiguous).transpose()?;
        let host = with_float!(x.dtype(), T => {
            match (host_slice::<T>(&x), host_slice::<T>(&w), bias.as_ref().map(host_slice::<T>)) {
                (Some(xs), Some(ws), None) => Some(cpu::conv::forward(g, xs.get(), ws.get(), None, relu)),
                (Some(xs), Some(ws), Some(Some(bs))) => Some(cpu::conv::forward(g, xs.get(), ws.get(), Some(bs.get()), relu)),
                _ => None,
            }
            .map(|out| Tensor::from_vec(out, (g.batch, g.c_out, g.oh(), g.ow()), &Device::Cpu))
        });
        if let Some(Some(out)) = host {
            return out;
        }
    }
    let y = x.conv2d(w, g.pad, g.stride, 1, 1)?;
    let y = match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, g.c_out, 1, 1))?)?,
        None => y,
    };
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

fn max_pool_host<T: Float>(g: &pool::Geom, x: &Tensor) -> Result<Option<(Tensor, Vec<u32>)>> {
    let Some(xs) = host_slice::<T>(x) else { return Ok(None) };
    let (out, idx) = pool::max_forward(g, xs.get());
    Ok(Some((cpu::tensor(out, &[x.dim(0)?, x.dim(1)?, g.oh(), g.ow()])?, idx)))
}

impl ConvOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ConvOp::Conv2d { .. } => "conv2d",
            ConvOp::MaxPool2d { .. } => "max_pool2d",
            ConvOp::AvgPool2d { .. } => "avg_pool2d",
        }
    }

    pub(crate) fn backward(self, g: &Tensor, needs: &[bool]) -> Result<InputGrads> {
        match self {
            ConvOp::Conv2d { x, w, geom, bias, relu_out } => {
                let want_bias = bias && needs.get(2).copied().unwrap_or(false);
                let host = if g.device().is_cpu() {
                    conv_backward_host(&geom, x.as_ref(), w.as_ref(), g, want_bias, relu_out.as_ref())?
                } else {
                    None
                };
                let (gx, gw, gb) = match host {
                    Some(grads) => grads,
                    None => {
                        // out ≥ 0, so its sign is the ReLU's mask.
                        let g = match &relu_out {
                            Some(out) => (g * out.sign()?)?,
                            None => g.clone(),
                        };
                        conv_backward_candle(&geom, x.as_ref(), w.as_ref(), &g, want_bias)?
                    }
                };
                let mut grads = vec![gx, gw];
                if bias {
                    grads.push(gb);
                }
                Ok(grads)
            }
            ConvOp::MaxPool2d { saved, geom, x_dims } => {
                Ok(vec![Some(max_pool_backward(saved, &geom, x_dims, g)?)])
            }
            ConvOp::AvgPool2d { x_dims, geom } => {
                let dev = g.device().clone();
                let g = g.to_device(&Device::Cpu)?.contiguous()?;
                let gx = with_float!(g.dtype(), T => {
                    let gs = host_view::<T>(&g).ok_or(Error::InvalidArgument { op: "avg_pool2d", msg: "gradient not readable".into() })?;
                    cpu::tensor(pool::avg_backward(&geom, gs.get()), &x_dims)?
                })
                .ok_or_else(|| float_only("avg_pool2d", g.dtype()))?;
                Ok(vec![Some(gx.to_device(&dev)?)])
            }
        }
    }
}

fn float_only(op: &'static str, dtype: DType) -> Error {
    Error::InvalidArgument { op, msg: format!("backward needs f32 or f64, got {dtype:?}") }
}

type ConvGrads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// The convolution's gradients by Taper's CPU kernel; `None` when an operand is not a CPU f32/f64
/// tensor.
fn conv_backward_host(
    g: &Geom,
    x: Option<&Tensor>,
    w: Option<&Tensor>,
    gy: &Tensor,
    bias: bool,
    relu_out: Option<&Tensor>,
) -> Result<Option<ConvGrads>> {
    let gy = gy.contiguous()?;
    let relu_out = relu_out.map(Tensor::contiguous).transpose()?;
    let x = x.map(Tensor::contiguous).transpose()?;
    let w = w.map(Tensor::contiguous).transpose()?;
    let out = with_float!(gy.dtype(), T => {
        let Some(gys) = host_slice::<T>(&gy) else { return Ok(None) };
        let xs = match &x { Some(x) => match host_slice::<T>(x) { Some(s) => Some(s), None => return Ok(None) }, None => None };
        let ws = match &w { Some(w) => match host_slice::<T>(w) { Some(s) => Some(s), None => return Ok(None) }, None => None };
        let outs = match &relu_out { Some(o) => match host_slice::<T>(o) { Some(s) => Some(s), None => return Ok(None) }, None => None };
        let grads = cpu::conv::backward(
            g,
            xs.as_ref().map(|s| s.get()),
            ws.as_ref().map(|s| s.get()),
            gys.get(),
            bias,
            outs.as_ref().map(|s| s.get()),
        );
        let gx = grads.x.map(|v| cpu::tensor(v, &[g.batch, g.c_in, g.h, g.w])).transpose()?;
        let gw = grads.w.map(|v| cpu::tensor(v, &[g.c_out, g.c_in, g.kh, g.kw])).transpose()?;
        let gb = grads.bias.map(|v| cpu::tensor(v, &[g.c_out])).transpose()?;
        Ok(Some((gx, gw, gb)))
    });
    out.unwrap_or(Ok(None))
}

/// The convolution's gradients with candle ops (any device).
fn conv_backward_candle(
    g: &Geom,
    x: Option<&Tensor>,
    w: Option<&Tensor>,
    gy: &Tensor,
    bias: bool,
) -> Result<ConvGrads> {
    let (stride, padding) = (g.stride, g.pad);
    let gx = match w {
        // Stride 1 with a square kernel and padding ≤ k - 1: the input gradient is a plain
        // convolution of G with the kernel flipped in space and its channel axes swapped, padded
        // by k - 1 - p (faster than candle's conv_transpose2d).
        Some(w) if stride == 1 && g.kh == g.kw && padding < g.kh => {
            let k = g.kh;
            let rev = Tensor::from_vec((0..k as u32).rev().collect::<Vec<_>>(), k, w.device())?;
            let flipped = w.index_select(&rev, 2)?.index_select(&rev, 3)?.transpose(0, 1)?.contiguous()?;
            Some(gy.conv2d(&flipped, k - 1 - padding, 1, 1, 1)?)
        }
        Some(w) => {
            // conv_transpose2d's output size is (g - 1)·stride - 2·padding + k + output_padding;
            // output_padding restores the rows that the forward pass's floor division dropped
            // (fewer than `stride`). It is one number for both axes, so take the larger and trim.
            let (gh, gw) = (gy.dim(2)?, gy.dim(3)?);
            let pad_h = g.h + 2 * padding - g.kh - (gh - 1) * stride;
            let pad_w = g.w + 2 * padding - g.kw - (gw - 1) * stride;
            let gx = gy.conv_transpose2d(w, padding, pad_h.max(pad_w), stride, 1)?;
            Some(gx.narrow(2, 0, g.h)?.narrow(3, 0, g.w)?)
        }
        None => None,
    };
    let gw = match x {
        Some(x) => {
            // Correlate the input with the output gradient, batch acting as the channel axis; the
            // forward stride becomes the dilation of the "kernel" G. Rows the forward pass never
            // reached come out extra: trim them.
            let gw =
                x.transpose(0, 1)?.conv2d(&gy.transpose(0, 1)?, padding, 1, stride, 1)?.transpose(0, 1)?;
            Some(gw.narrow(2, 0, g.kh)?.narrow(3, 0, g.kw)?.contiguous()?)
        }
        None => None,
    };
    let gb = if bias { Some(gy.sum_keepdim((0, 2, 3))?.flatten_all()?) } else { None };
    Ok((gx, gw, gb))
}

fn max_pool_backward(saved: PoolSaved, g: &pool::Geom, x_dims: [usize; 4], gy: &Tensor) -> Result<Tensor> {
    let dev = gy.device().clone();
    let gy = gy.to_device(&Device::Cpu)?.contiguous()?;
    let gx = with_float!(gy.dtype(), T => {
        let gys = host_view::<T>(&gy).ok_or_else(|| float_only("max_pool2d", gy.dtype()))?;
        let gx = match saved {
            PoolSaved::Indices(idx) => pool::max_backward(g, &idx, gys.get()),
            PoolSaved::Input(x) => {
                // Off the CPU: find the maxima again on a host copy of the input.
                let x = x.to_device(&Device::Cpu)?.contiguous()?;
                let xs = host_view::<T>(&x).ok_or_else(|| float_only("max_pool2d", x.dtype()))?;
                let (_, idx) = pool::max_forward(g, xs.get());
                pool::max_backward(g, &idx, gys.get())
            }
        };
        cpu::tensor(gx, &x_dims)
    })
    .ok_or_else(|| float_only("max_pool2d", gy.dtype()))??;
    Ok(gx.to_device(&dev)?)
}
