//! Convolution and pooling over `[batch, channels, height, width]` tensors.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::{InputGrads, Op};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

pub(crate) enum ConvOp {
    /// `y = conv2d(x, w)` (cross-correlation, PyTorch's `F.conv2d` without bias):
    /// `∂x = conv_transpose2d(g, w)`, `∂w = conv2d(xᵀ, gᵀ)ᵀ` (batch and channel axes swapped).
    Conv2d {
        x: Option<Tensor>,
        w: Option<Tensor>,
        x_hw: (usize, usize),
        k_hw: (usize, usize),
        stride: usize,
        padding: usize,
    },
    /// Max over `k×k` windows: the gradient goes to the first maximal element of each window.
    MaxPool2d { x: Tensor, k: usize, stride: usize },
    /// Mean over `k×k` windows: each element of a window gets `g / k²`.
    AvgPool2d { x_dims: [usize; 4], k: usize, stride: usize },
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
        let [_, c_in, h, w] = dims4("conv2d", self, "input")?;
        let [_, kc, kh, kw] = dims4("conv2d", kernel, "kernel")?;
        if c_in != kc {
            return Err(Error::ShapeMismatch {
                op: "conv2d",
                lhs: self.shape().clone(),
                rhs: kernel.shape().clone(),
                hint: "input channels (dim 1) must equal the kernel's dim 1",
            });
        }
        check_window("conv2d", h, w, kh.max(kw), stride, padding)?;
        if self.dtype() != kernel.dtype() {
            return Err(Error::InvalidArgument {
                op: "conv2d",
                msg: format!("dtype mismatch: {:?} and {:?}", self.dtype(), kernel.dtype()),
            });
        }
        let value = self.value().conv2d(kernel.value(), padding, stride, 1, 1).op("conv2d")?;
        Tape::record("conv2d", &[self, kernel], value, |needs| {
            Op::Conv(ConvOp::Conv2d {
                x: needs[1].then(|| self.value().clone()),
                w: needs[0].then(|| kernel.value().clone()),
                x_hw: (h, w),
                k_hw: (kh, kw),
                stride,
                padding,
            })
        })
    }

    /// Max pooling over `k×k` windows moved by `stride` (no padding).
    pub fn max_pool2d(&self, k: usize, stride: usize) -> Result<Var> {
        let [_, _, h, w] = dims4("max_pool2d", self, "input")?;
        check_window("max_pool2d", h, w, k, stride, 0)?;
        let value = self.value().max_pool2d_with_stride(k, stride).op("max_pool2d")?;
        Tape::record("max_pool2d", &[self], value, |_| {
            Op::Conv(ConvOp::MaxPool2d { x: self.value().clone(), k, stride })
        })
    }

    /// Average pooling over `k×k` windows moved by `stride` (no padding).
    pub fn avg_pool2d(&self, k: usize, stride: usize) -> Result<Var> {
        let x_dims = dims4("avg_pool2d", self, "input")?;
        check_window("avg_pool2d", x_dims[2], x_dims[3], k, stride, 0)?;
        let value = self.value().avg_pool2d_with_stride(k, stride).op("avg_pool2d")?;
        Tape::record("avg_pool2d", &[self], value, |_| Op::Conv(ConvOp::AvgPool2d { x_dims, k, stride }))
    }
}

impl ConvOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ConvOp::Conv2d { .. } => "conv2d",
            ConvOp::MaxPool2d { .. } => "max_pool2d",
            ConvOp::AvgPool2d { .. } => "avg_pool2d",
        }
    }

    pub(crate) fn backward(self, g: &Tensor, _needs: &[bool]) -> Result<InputGrads> {
        match self {
            ConvOp::Conv2d { x, w, x_hw, k_hw, stride, padding } => {
                let gx = match &w {
                    // Stride 1 with a square kernel and padding ≤ k - 1 (the documents' ConvNet): the
                    // input gradient is a plain convolution of g with the kernel flipped in space
                    // and its channel axes swapped, padded by k - 1 - p. candle's forward
                    // convolution (im2col + matmul) is much faster than its conv_transpose2d.
                    Some(w) if stride == 1 && k_hw.0 == k_hw.1 && padding < k_hw.0 => {
                        let k = k_hw.0;
                        let rev = Tensor::from_vec((0..k as u32).rev().collect::<Vec<_>>(), k, w.device())?;
                        let flipped =
                            w.index_select(&rev, 2)?.index_select(&rev, 3)?.transpose(0, 1)?.contiguous()?;
                        Some(g.conv2d(&flipped, k - 1 - padding, 1, 1, 1)?)
                    }
                    Some(w) => {
                        // conv_transpose2d's output size is (g - 1)·stride - 2·padding + k +
                        // output_padding; output_padding restores the rows that the forward
                        // pass's floor division dropped (fewer than `stride`). It is one number
                        // for both axes, so take the larger and trim the other axis.
                        let (gh, gw) = (g.dim(2)?, g.dim(3)?);
                        let pad_h = x_hw.0 + 2 * padding - k_hw.0 - (gh - 1) * stride;
                        let pad_w = x_hw.1 + 2 * padding - k_hw.1 - (gw - 1) * stride;
                        let gx = g.conv_transpose2d(w, padding, pad_h.max(pad_w), stride, 1)?;
                        Some(gx.narrow(2, 0, x_hw.0)?.narrow(3, 0, x_hw.1)?)
                    }
                    None => None,
                };
                let gw = match &x {
                    Some(x) => {
                        // Correlate the input with the output gradient, batch acting as the
                        // channel axis; the forward stride becomes the dilation of the "kernel"
                        // g. Rows the forward pass never reached come out extra: trim them.
                        let gw = x
                            .transpose(0, 1)?
                            .conv2d(&g.transpose(0, 1)?, padding, 1, stride, 1)?
                            .transpose(0, 1)?;
                        Some(gw.narrow(2, 0, k_hw.0)?.narrow(3, 0, k_hw.1)?.contiguous()?)
                    }
                    None => None,
                };
                Ok(vec![gx, gw])
            }
            ConvOp::MaxPool2d { x, k, stride } => Ok(vec![Some(max_pool2d_backward(&x, g, k, stride)?)]),
            ConvOp::AvgPool2d { x_dims, k, stride } => {
                Ok(vec![Some(avg_pool2d_backward(x_dims, g, k, stride)?)])
            }
        }
    }
}

/// Element types the host pooling rules run in: the tensor's own (no f64 round trip).
trait HostFloat:
    candle_core::WithDType + Copy + PartialOrd + std::ops::AddAssign + std::ops::Mul<Output = Self>
{
}
impl HostFloat for f32 {}
impl HostFloat for f64 {}

fn host<T: HostFloat>(t: &Tensor) -> Result<Vec<T>> {
    Ok(t.flatten_all()?.to_vec1::<T>()?)
}

fn from_host<T: HostFloat>(values: Vec<T>, dims: [usize; 4], like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, dims.to_vec(), &candle_core::Device::Cpu)?.to_device(like.device())?)
}

fn max_pool2d_backward(x: &Tensor, g: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    match x.dtype() {
        DType::F64 => max_pool2d_backward_t::<f64>(x, g, k, stride),
        DType::F32 => max_pool2d_backward_t::<f32>(x, g, k, stride),
        other => Err(Error::InvalidArgument {
            op: "max_pool2d",
            msg: format!("backward needs f32 or f64, got {other:?}"),
        }),
    }
}

fn max_pool2d_backward_t<T: HostFloat>(x: &Tensor, g: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (_, _, oh, ow) = g.dims4()?;
    let mut gx = vec![T::from_f64(0.0); b * c * h * w];
    let g = g.contiguous()?;
    // On the CPU read both operands in place; elsewhere copy them to the host first.
    let (x_host, g_host);
    let (xs, gs): (&[T], &[T]) = match (cpu_slice::<T>(x), cpu_slice::<T>(&g)) {
        (Some(xg), Some(gg)) => {
            x_host = xg;
            g_host = gg;
            (x_host.as_slice(), g_host.as_slice())
        }
        _ => {
            x_host = CpuView::Owned(host::<T>(x)?);
            g_host = CpuView::Owned(host::<T>(&g)?);
            (x_host.as_slice(), g_host.as_slice())
        }
    };
    let plane = |(p, gxp): (usize, &mut [T])| {
        let xp = &xs[p * h * w..(p + 1) * h * w];
        let gp = &gs[p * oh * ow..(p + 1) * oh * ow];
        for i in 0..oh {
            for j in 0..ow {
                // The first maximal element of the window (row-major scan), as PyTorch.
                let mut best = (i * stride) * w + j * stride;
                for di in 0..k {
                    let row = (i * stride + di) * w + j * stride;
                    for idx in row..row + k {
                        if xp[idx] > xp[best] {
                            best = idx;
                        }
                    }
                }
                gxp[best] += gp[i * ow + j];
            }
        }
    };
    gx.par_chunks_mut(h * w).enumerate().for_each(plane);
    from_host(gx, [b, c, h, w], &g)
}

/// A tensor's elements: borrowed from a contiguous CPU storage, or an owned host copy.
enum CpuView<'a, T> {
    Borrowed(candle_core::StorageRef<'a>, usize, usize, std::marker::PhantomData<T>),
    Owned(Vec<T>),
}

impl<T: HostFloat> CpuView<'_, T> {
    fn as_slice(&self) -> &[T] {
        match self {
            CpuView::Borrowed(guard, a, b, _) => match &**guard {
                candle_core::Storage::Cpu(cpu) => match T::cpu_storage_as_slice(cpu) {
                    Ok(v) => &v[*a..*b],
                    Err(_) => &[],
                },
                _ => &[],
            },
            CpuView::Owned(v) => v,
        }
    }
}

fn cpu_slice<T: HostFloat>(t: &Tensor) -> Option<CpuView<'_, T>> {
    if !t.device().is_cpu() || t.dtype() != T::DTYPE {
        return None;
    }
    let (guard, layout) = t.storage_and_layout();
    let (a, b) = layout.contiguous_offsets()?;
    Some(CpuView::Borrowed(guard, a, b, std::marker::PhantomData))
}

fn avg_pool2d_backward(x_dims: [usize; 4], g: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    match g.dtype() {
        DType::F64 => avg_pool2d_backward_t::<f64>(x_dims, g, k, stride),
        DType::F32 => avg_pool2d_backward_t::<f32>(x_dims, g, k, stride),
        other => Err(Error::InvalidArgument {
            op: "avg_pool2d",
            msg: format!("backward needs f32 or f64, got {other:?}"),
        }),
    }
}

fn avg_pool2d_backward_t<T: HostFloat>(
    x_dims: [usize; 4],
    g: &Tensor,
    k: usize,
    stride: usize,
) -> Result<Tensor> {
    let [b, c, h, w] = x_dims;
    let (_, _, oh, ow) = g.dims4()?;
    let gs = host::<T>(g)?;
    let scale = T::from_f64(1.0 / (k * k) as f64);
    let mut gx = vec![T::from_f64(0.0); b * c * h * w];
    for plane in 0..b * c {
        let gxp = &mut gx[plane * h * w..(plane + 1) * h * w];
        for i in 0..oh {
            for j in 0..ow {
                let v = gs[plane * oh * ow + i * ow + j] * scale;
                for di in 0..k {
                    for dj in 0..k {
                        gxp[(i * stride + di) * w + j * stride + dj] += v;
                    }
                }
            }
        }
    }
    from_host(gx, x_dims, g)
}
