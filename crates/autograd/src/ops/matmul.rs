//! Matrix product, batched over leading dimensions (which broadcast).

use candle_core::{Shape, Tensor};

use super::{reduce_to_shape, Activation, InputGrads, Op};
use crate::cpu::{self, host_slice, with_float};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

/// `c = a @ b`: `∂a = g @ bᵀ`, `∂b = aᵀ @ g`, each summed back over broadcast batch dimensions.
pub(crate) struct MatmulOp {
    lhs: Option<Tensor>,
    rhs: Option<Tensor>,
    lhs_shape: Shape,
    rhs_shape: Shape,
    /// Whether `rhs` was a column-major 2-D view (so its gradient is made in the same layout).
    b_col_major: bool,
}

/// `y = x·Wᵀ + b` over the last dimension of `x` (PyTorch's `F.linear`): with `G` the output
/// gradient flattened to `[n, out]`, `∂x = G·W`, `∂W = Gᵀ·x` (laid out `[out, in]` like `W`),
/// `∂b = Σ_rows G`. `x` is saved only if `W` needs a gradient and `W` only if `x` does.
pub(crate) struct LinearOp {
    /// `x` as `[n, in]`.
    x: Option<Tensor>,
    w: Option<Tensor>,
    x_shape: Shape,
    bias: bool,
    /// The output, when the op applied ReLU: `G` is masked where it is 0 first.
    relu_out: Option<Tensor>,
}

impl Var {
    /// The affine map of a linear layer, `self·weightᵀ + bias` (PyTorch's `F.linear`): `self` is
    /// `[.., in]`, `weight` is `[out, in]`, `bias` is `[out]`; the result is `[.., out]`.
    ///
    /// One op instead of a transpose, a product and a broadcast add: on the CPU the bias is
    /// written into the output before the product adds to it, and the weight's gradient comes out
    /// in the weight's own layout.
    pub fn linear(&self, weight: &Var, bias: Option<&Var>) -> Result<Var> {
        self.linear_fused(weight, bias, Activation::Identity)
    }

    /// [`Var::linear`] followed by `act`, in one op: `act(self·weightᵀ + bias)`.
    pub fn linear_fused(&self, weight: &Var, bias: Option<&Var>, act: Activation) -> Result<Var> {
        let (xd, wd) = (self.dims(), weight.dims());
        let &[fan_out, fan_in] = wd else {
            return Err(Error::InvalidArgument {
                op: "linear",
                msg: format!("the weight must be [out, in], got shape {wd:?}"),
            });
        };
        if xd.last() != Some(&fan_in) {
            return Err(Error::ShapeMismatch {
                op: "linear",
                lhs: self.shape().clone(),
                rhs: weight.shape().clone(),
                hint: "the input's last dimension must equal the weight's dim 1 (in features)",
            });
        }
        super::same_dtype("linear", &[self, weight])?;
        if let Some(b) = bias {
            super::same_dtype("linear", &[self, b])?;
        }
        if xd.len() > 2 {
            // `[.., in]` as the matrix `[rows, in]` (a view when contiguous), so that the product
            // runs on the 2-D kernels; the result takes the leading dimensions back.
            let rows: usize = xd[..xd.len() - 1].iter().product();
            let mut out_dims = xd[..xd.len() - 1].to_vec();
            out_dims.push(fan_out);
            return self.reshape(vec![rows, fan_in])?.linear_fused(weight, bias, act)?.reshape(out_dims);
        }
        if let Some(b) = bias {
            if b.dims() != [fan_out] {
                return Err(Error::ShapeMismatch {
                    op: "linear",
                    lhs: weight.shape().clone(),
                    rhs: b.shape().clone(),
                    hint: "the bias must be [out], out being the weight's dim 0",
                });
            }
        }
        let n = self.elem_count() / fan_in.max(1);
        // Already [n, in] (the usual case): no reshape, which would allocate a new tensor.
        let x2 = if xd.len() == 2 {
            self.value().clone()
        } else {
            self.value().reshape((n, fan_in)).op("linear")?
        };
        let relu = act == Activation::Relu;
        let y = linear_forward(&x2, weight.value(), bias.map(Var::value), n, fan_in, fan_out, relu)
            .op("linear")?;
        let mut out_dims = xd.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = fan_out;
        }
        let value = if xd.len() == 2 { y } else { y.reshape(out_dims).op("linear")? };
        let out = relu.then(|| value.clone());
        let record = |needs: &[bool]| {
            Op::Linear(LinearOp {
                x: needs[1].then(|| x2.clone()),
                w: needs[0].then(|| weight.value().clone()),
                x_shape: self.shape().clone(),
                bias: bias.is_some(),
                relu_out: out,
            })
        };
        match bias {
            Some(b) => Tape::record("linear", &[self, weight, b], value, record),
            None => Tape::record("linear", &[self, weight], value, record),
        }
    }

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
        super::same_dtype("matmul", &[self, rhs])?;
        let value = match host_product(self.value(), rhs.value(), false, false)? {
            Some(v) => v,
            None => product(self.value(), rhs.value()).op("matmul")?,
        };
        Tape::record("matmul", &[self, rhs], value, |needs| {
            Op::Matmul(MatmulOp {
                lhs: needs[1].then(|| self.value().clone()),
                rhs: needs[0].then(|| rhs.value().clone()),
                lhs_shape: self.shape().clone(),
                rhs_shape: rhs.shape().clone(),
                b_col_major: column_major(rhs.value()),
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

fn linear_forward(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    n: usize,
    fan_in: usize,
    fan_out: usize,
    relu: bool,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        let b = b.map(Tensor::contiguous).transpose()?;
        let host = with_float!(x.dtype(), T => {
            match (host_slice::<T>(&x), host_slice::<T>(&w), b.as_ref().map(host_slice::<T>)) {
                (Some(xs), Some(ws), None) => Some(cpu::linear::forward(xs.get(), ws.get(), None, n, fan_in, fan_out, relu)),
                (Some(xs), Some(ws), Some(Some(bs))) => {
                    Some(cpu::linear::forward(xs.get(), ws.get(), Some(bs.get()), n, fan_in, fan_out, relu))
                }
                _ => None,
            }
            .map(|y| Tensor::from_vec(y, (n, fan_out), &candle_core::Device::Cpu))
        });
        if let Some(Some(y)) = host {
            return y;
        }
    }
    let y = x.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

impl LinearOp {
    pub(crate) fn backward(self, g: &Tensor, needs: &[bool]) -> Result<InputGrads> {
        let (n, fan_in) = match (&self.x, &self.w) {
            (Some(x), _) => x.dims2()?,
            (None, Some(w)) => (self.x_shape.elem_count() / w.dim(1)?.max(1), w.dim(1)?),
            (None, None) => (0, 0),
        };
        let fan_out = g.dims().last().copied().unwrap_or(0);
        let g = match &self.relu_out {
            Some(out) => super::unary::relu_grad(out, g)?,
            None => g.clone(),
        };
        let g = if g.rank() == 2 { g } else { g.reshape((n, fan_out))? };
        let want_bias = self.bias && needs.get(2).copied().unwrap_or(false);
        let host =
            if g.device().is_cpu() { self.host_backward(&g, want_bias, n, fan_in, fan_out)? } else { None };
        let (gx, gw, gb) = match host {
            Some(grads) => grads,
            None => (
                self.w.as_ref().map(|w| g.matmul(w)).transpose()?,
                self.x.as_ref().map(|x| g.t()?.matmul(x)).transpose()?,
                if want_bias { Some(g.sum(0)?) } else { None },
            ),
        };
        let gx = match gx {
            Some(gx) if gx.dims() != self.x_shape.dims() => Some(gx.reshape(self.x_shape.clone())?),
            other => other,
        };
        let mut grads = vec![gx, gw];
        if self.bias {
            grads.push(gb);
        }
        Ok(grads)
    }

    #[allow(clippy::type_complexity)]
    fn host_backward(
        &self,
        g: &Tensor,
        bias: bool,
        n: usize,
        fan_in: usize,
        fan_out: usize,
    ) -> Result<Option<(Option<Tensor>, Option<Tensor>, Option<Tensor>)>> {
        let g = g.contiguous()?;
        let x = self.x.as_ref().map(Tensor::contiguous).transpose()?;
        let w = self.w.as_ref().map(Tensor::contiguous).transpose()?;
        let out = with_float!(g.dtype(), T => {
            let Some(gs) = host_slice::<T>(&g) else { return Ok(None) };
            if let (Some(Some(ws)), Some(Some(xs))) = (w.as_ref().map(host_slice::<T>), x.as_ref().map(host_slice::<T>)) {
                let (gx, gw) = cpu::linear::grad_input_and_weight(gs.get(), ws.get(), xs.get(), n, fan_in, fan_out);
                let gb = if bias { Some(cpu::tensor(cpu::linear::grad_bias(gs.get(), n, fan_out), &[fan_out])?) } else { None };
                return Ok(Some((Some(cpu::tensor(gx, &[n, fan_in])?), Some(cpu::tensor(gw, &[fan_out, fan_in])?), gb)));
            }
            let gx = match &w {
                Some(w) => match host_slice::<T>(w) {
                    Some(ws) => Some(cpu::tensor(cpu::linear::grad_input(gs.get(), ws.get(), n, fan_in, fan_out), &[n, fan_in])?),
                    None => return Ok(None),
                },
                None => None,
            };
            let gw = match &x {
                Some(x) => match host_slice::<T>(x) {
                    Some(xs) => Some(cpu::tensor(cpu::linear::grad_weight(gs.get(), xs.get(), n, fan_in, fan_out), &[fan_out, fan_in])?),
                    None => return Ok(None),
                },
                None => None,
            };
            let gb = if bias { Some(cpu::tensor(cpu::linear::grad_bias(gs.get(), n, fan_out), &[fan_out])?) } else { None };
            Some((gx, gw, gb))
        });
        Ok(out.flatten())
    }
}

fn product(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    // Candle's batched product takes operands whose batch dimensions are laid out in order;
    // views such as attention heads (`[B, T, H, d]` transposed to `[B, H, T, d]`) are copied
    // into that layout first.
    let ready = |t: &Tensor| if t.rank() > 2 && !t.is_contiguous() { t.contiguous() } else { Ok(t.clone()) };
    let (a, b) = (ready(a)?, ready(b)?);
    let (ad, bd) = (a.dims(), b.dims());
    if ad[..ad.len() - 2] == bd[..bd.len() - 2] {
        a.matmul(&b)
    } else {
        a.broadcast_matmul(&b)
    }
}

/// `op(a) · op(b)` (`op` transposing where asked) by Taper's CPU kernel, for 2-D f32/f64 CPU
/// operands of any strides; `None` otherwise.
fn host_product(a: &Tensor, b: &Tensor, ta: bool, tb: bool) -> Result<Option<Tensor>> {
    if a.rank() != 2 || b.rank() != 2 || a.dtype() != b.dtype() {
        return Ok(None);
    }
    let out = with_float!(a.dtype(), T => {
        match (cpu::host_matrix::<T>(a), cpu::host_matrix::<T>(b)) {
            (Some((sa, ars, acs)), Some((sb, brs, bcs))) => {
                let (ad, bd) = (a.dims(), b.dims());
                let ma = cpu::Mat::strided(sa.get(), ad[0], ad[1], ars, acs);
                let mb = cpu::Mat::strided(sb.get(), bd[0], bd[1], brs, bcs);
                let (ma, mb) = (if ta { ma.t() } else { ma }, if tb { mb.t() } else { mb });
                let (m, n) = (ma.rows, mb.cols);
                let parallel = cpu::par_for(m, n, ma.cols);
                Some(cpu::tensor(cpu::product(ma, mb, parallel), &[m, n]))
            }
            _ => None,
        }
    });
    out.flatten().transpose()
}

/// Whether a 2-D tensor is laid out column by column (the transpose of a contiguous matrix).
fn column_major(t: &Tensor) -> bool {
    let (dims, stride) = (t.dims(), t.stride());
    dims.len() == 2 && dims[0] > 1 && dims[1] > 1 && stride == [1, dims[0]]
}

impl MatmulOp {
    pub(crate) fn backward(self, g: &Tensor, _needs: &[bool]) -> Result<InputGrads> {
        let ga = match &self.rhs {
            Some(b) => Some(match host_product(g, b, false, true)? {
                Some(ga) => ga,
                None => reduce_to_shape(&product(g, &b.t()?)?, &self.lhs_shape)?,
            }),
            None => None,
        };
        let gb = match &self.lhs {
            Some(a) => {
                // `b` a transposed view (`x·Wᵀ`): make its gradient the same transposed view of
                // a contiguous buffer, so that after the transpose's own rule the parameter's
                // gradient is contiguous.
                let b_col_major = self.rhs_shape.rank() == 2 && self.b_col_major;
                let host = if b_col_major {
                    host_product(g, a, true, false)?.map(|gbt| gbt.t()).transpose()?
                } else {
                    host_product(a, g, true, false)?
                };
                Some(match host {
                    Some(gb) => gb,
                    None => reduce_to_shape(&product(&a.t()?, g)?, &self.rhs_shape)?,
                })
            }
            None => None,
        };
        Ok(vec![ga, gb])
    }
}
