//! Element-wise unary ops.

use candle_core::Tensor;

use super::Op;
use crate::cpu::{self, host_slice, with_float};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

pub(crate) enum UnaryOp {
    /// `-x`: `∂x = -g`.
    Neg,
    /// `mul·x + add`: `∂x = mul·g`.
    Affine { mul: f64 },
    /// `x^e`: `∂x = g·e·x^(e-1)`.
    Powf { x: Tensor, e: f64 },
    /// `x²`: `∂x = 2·g·x`.
    Sqr { x: Tensor },
    /// `√x`: `∂x = g / (2·√x)`.
    Sqrt { out: Tensor },
    /// `eˣ`: `∂x = g·eˣ`.
    Exp { out: Tensor },
    /// `ln x`: `∂x = g / x`.
    Log { x: Tensor },
    /// `|x|`: `∂x = g·sign(x)` (0 at 0, as PyTorch).
    Abs { x: Tensor },
    /// `min(max(x, lo), hi)`: `∂x = g` where `lo ≤ x ≤ hi`, else 0 (as PyTorch).
    Clamp { x: Tensor, min: f64, max: f64 },
    /// `max(x, 0)`: `∂x = g` where `x > 0`.
    Relu { out: Tensor },
    /// `σ(x)`: `∂x = g·σ·(1-σ)`.
    Sigmoid { out: Tensor },
    /// `tanh x`: `∂x = g·(1 - tanh²x)`.
    Tanh { out: Tensor },
    /// GELU, exact: `x·Φ(x)`, `∂x = g·(Φ(x) + x·φ(x))` with `Φ(x) = (1 + erf(x/√2))/2` and
    /// `φ(x) = e^(-x²/2)/√(2π)`. The CPU forward keeps that derivative (`deriv`); other paths
    /// keep `x`.
    GeluErf { x: Option<Tensor>, deriv: Option<Tensor> },
    /// GELU, tanh approximation: `x·(1 + tanh u)/2` with `u = √(2/π)·(x + 0.044715·x³)`,
    /// `∂x = g·((1 + t)/2 + x·(1 - t²)·√(2/π)·(1 + 3·0.044715·x²)/2)`, `t = tanh u`.
    GeluTanh { x: Tensor },
    /// SiLU (swish): `x·σ(x)`, `∂x = g·σ(x)·(1 + x·(1 - σ(x)))`.
    Silu { x: Tensor },
}

/// `√(2/π)`, GELU's tanh approximation.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient of GELU's tanh approximation.
const GELU_CUBIC: f64 = 0.044_715;

impl Var {
    fn unary(
        &self,
        op: &'static str,
        forward: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
        make: impl FnOnce(&Tensor) -> UnaryOp,
    ) -> Result<Var> {
        let value = forward(self.value()).op(op)?;
        let out = value.clone();
        Tape::record(op, &[self], value, |_| Op::Unary(make(&out)))
    }

    /// `-self`.
    pub fn neg(&self) -> Result<Var> {
        self.unary("neg", |x| x.neg(), |_| UnaryOp::Neg)
    }

    /// `mul·self + add` (scalar affine map).
    pub fn affine(&self, mul: f64, add: f64) -> Result<Var> {
        self.unary("affine", |x| x.affine(mul, add), |_| UnaryOp::Affine { mul })
    }

    /// `factor·self`.
    pub fn scale(&self, factor: f64) -> Result<Var> {
        self.affine(factor, 0.0)
    }

    /// `self + c` for a scalar `c`.
    pub fn add_scalar(&self, c: f64) -> Result<Var> {
        self.affine(1.0, c)
    }

    /// `self^e` element-wise for a scalar exponent (defined for positive inputs, as candle's).
    pub fn powf(&self, e: f64) -> Result<Var> {
        self.unary("powf", |x| x.powf(e), |_| UnaryOp::Powf { x: self.value().clone(), e })
    }

    /// `self²` element-wise.
    pub fn sqr(&self) -> Result<Var> {
        self.unary("sqr", |x| x.sqr(), |_| UnaryOp::Sqr { x: self.value().clone() })
    }

    /// `√self` element-wise.
    pub fn sqrt(&self) -> Result<Var> {
        self.unary("sqrt", |x| x.sqrt(), |out| UnaryOp::Sqrt { out: out.clone() })
    }

    /// `e^self` element-wise.
    pub fn exp(&self) -> Result<Var> {
        self.unary("exp", |x| x.exp(), |out| UnaryOp::Exp { out: out.clone() })
    }

    /// `ln self` element-wise.
    pub fn log(&self) -> Result<Var> {
        self.unary("log", |x| x.log(), |_| UnaryOp::Log { x: self.value().clone() })
    }

    /// `|self|` element-wise.
    pub fn abs(&self) -> Result<Var> {
        self.unary("abs", |x| x.abs(), |_| UnaryOp::Abs { x: self.value().clone() })
    }

    /// Clamps every element to `[min, max]`.
    pub fn clamp(&self, min: f64, max: f64) -> Result<Var> {
        if min.is_nan() || max.is_nan() || min > max {
            return Err(Error::InvalidArgument {
                op: "clamp",
                msg: format!("need min <= max, got [{min}, {max}]"),
            });
        }
        self.unary("clamp", |x| x.clamp(min, max), |_| UnaryOp::Clamp { x: self.value().clone(), min, max })
    }

    /// `max(self, 0)` element-wise.
    pub fn relu(&self) -> Result<Var> {
        self.unary("relu", relu_value, |out| UnaryOp::Relu { out: out.clone() })
    }

    /// The logistic function `1 / (1 + e^-self)`.
    pub fn sigmoid(&self) -> Result<Var> {
        self.unary("sigmoid", candle_nn::ops::sigmoid, |out| UnaryOp::Sigmoid { out: out.clone() })
    }

    /// `tanh self` element-wise.
    pub fn tanh(&self) -> Result<Var> {
        self.unary("tanh", |x| x.tanh(), |out| UnaryOp::Tanh { out: out.clone() })
    }

    /// GELU, the exact form `x·Φ(x)` (PyTorch's `gelu`, `approximate='none'`), `Φ` the standard
    /// normal CDF. On the CPU one vectorized pass that also keeps the derivative
    /// `Φ(x) + x·φ(x)`, so that the backward pass is one multiplication.
    pub fn gelu(&self) -> Result<Var> {
        let x = self.value();
        let host = if x.device().is_cpu() {
            let x = x.contiguous()?;
            with_float!(x.dtype(), T => host_slice::<T>(&x).map(|xs| {
                let (y, deriv) = cpu::elementwise::gelu_erf(xs.get());
                Ok::<_, Error>((cpu::tensor(y, x.dims())?, cpu::tensor(deriv, x.dims())?, x.clone()))
            }))
            .flatten()
            .transpose()?
        } else {
            None
        };
        let (value, deriv, x) = match host {
            Some((y, deriv, x)) => (y, Some(deriv), x),
            None => (x.gelu_erf().op("gelu")?, None, x.clone()),
        };
        Tape::record("gelu", &[self], value, |_| {
            // The derivative makes the input unneeded.
            let x = if deriv.is_some() { None } else { Some(x) };
            Op::Unary(UnaryOp::GeluErf { x, deriv })
        })
    }

    /// GELU's tanh approximation (PyTorch's `gelu(approximate='tanh')`, GPT-2's).
    pub fn gelu_tanh(&self) -> Result<Var> {
        self.unary("gelu_tanh", |x| x.gelu(), |_| UnaryOp::GeluTanh { x: self.value().clone() })
    }

    /// Inverted dropout (PyTorch's `F.dropout` in training): each element kept with probability
    /// `1 - p` and scaled by `1/(1 - p)`, else zeroed, the mask drawn from `rng` (so a seeded run
    /// repeats). `p = 0` is the identity; `p = 1` zeroes everything. The mask enters as a constant
    /// factor, so the backward rule is the product's (`∂x = g·mask`). Evaluation mode is the
    /// caller's: do not call it then.
    pub fn dropout(&self, p: f64, rng: &mut taper_tensor::SeededRng) -> Result<Var> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "dropout",
                msg: format!("p must be in [0, 1], got {p}"),
            });
        }
        if p == 0.0 {
            return Ok(self.clone());
        }
        let scale = if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 };
        let mask: Vec<f64> = (0..self.value().elem_count())
            .map(|_| if rng.uniform_f64() >= p { scale } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, self.dims(), &candle_core::Device::Cpu)?
            .to_dtype(self.dtype())?
            .to_device(self.device())?;
        self.mul(&Var::constant(mask))
    }

    /// SiLU (swish), `x·σ(x)`.
    pub fn silu(&self) -> Result<Var> {
        self.unary("silu", |x| x.silu(), |_| UnaryOp::Silu { x: self.value().clone() })
    }
}

impl UnaryOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Affine { .. } => "affine",
            UnaryOp::Powf { .. } => "powf",
            UnaryOp::Sqr { .. } => "sqr",
            UnaryOp::Sqrt { .. } => "sqrt",
            UnaryOp::Exp { .. } => "exp",
            UnaryOp::Log { .. } => "log",
            UnaryOp::Abs { .. } => "abs",
            UnaryOp::Clamp { .. } => "clamp",
            UnaryOp::Relu { .. } => "relu",
            UnaryOp::Sigmoid { .. } => "sigmoid",
            UnaryOp::Tanh { .. } => "tanh",
            UnaryOp::GeluErf { .. } => "gelu",
            UnaryOp::GeluTanh { .. } => "gelu_tanh",
            UnaryOp::Silu { .. } => "silu",
        }
    }

    pub(crate) fn backward(self, g: &Tensor) -> Result<Tensor> {
        Ok(match self {
            UnaryOp::Neg => g.neg()?,
            UnaryOp::Affine { mul } => g.affine(mul, 0.0)?,
            UnaryOp::Powf { x, e } => (g * x.powf(e - 1.0)?.affine(e, 0.0)?)?,
            UnaryOp::Sqr { x } => (g * x.affine(2.0, 0.0)?)?,
            UnaryOp::Sqrt { out } => (g / out.affine(2.0, 0.0)?)?,
            UnaryOp::Exp { out } => (g * out)?,
            UnaryOp::Log { x } => (g / x)?,
            UnaryOp::Abs { x } => (g * x.sign()?)?,
            UnaryOp::Clamp { x, min, max } => {
                let inside = x.ge(min)?.mul(&x.le(max)?)?;
                inside.where_cond(g, &g.zeros_like()?)?
            }
            UnaryOp::Relu { out } => relu_grad(&out, g)?,
            UnaryOp::Sigmoid { out } => (g * (&out * out.affine(-1.0, 1.0)?)?)?,
            UnaryOp::Tanh { out } => (g * out.sqr()?.affine(-1.0, 1.0)?)?,
            UnaryOp::GeluErf { deriv: Some(d), .. } => {
                let g = g.contiguous()?;
                let host = with_float!(d.dtype(), T => match (host_slice::<T>(&d), host_slice::<T>(&g)) {
                    (Some(ds), Some(gs)) => Some(cpu::tensor(cpu::elementwise::mul(ds.get(), gs.get()), d.dims())),
                    _ => None,
                })
                .flatten();
                match host {
                    Some(gx) => gx?,
                    None => (&g * &d)?,
                }
            }
            UnaryOp::GeluErf { x: Some(x), .. } => gelu_erf_grad(&x, g)?,
            UnaryOp::GeluErf { x: None, deriv: None } => {
                return Err(Error::InvalidArgument {
                    op: "gelu",
                    msg: "nothing was saved for the backward pass".into(),
                })
            }
            UnaryOp::GeluTanh { x } => {
                let x2 = x.sqr()?;
                let t = (&x * x2.affine(GELU_CUBIC, 1.0)?)?.affine(SQRT_2_OVER_PI, 0.0)?.tanh()?;
                let du = x2.affine(3.0 * GELU_CUBIC * SQRT_2_OVER_PI, SQRT_2_OVER_PI)?;
                let rest = ((&x * t.sqr()?.affine(-1.0, 1.0)?)? * du)?.affine(0.5, 0.0)?;
                (g * (t.affine(0.5, 0.5)? + rest)?)?
            }
            UnaryOp::Silu { x } => {
                let s = candle_nn::ops::sigmoid(&x)?;
                let inner = (&x * s.affine(-1.0, 1.0)?)?.affine(1.0, 1.0)?;
                (g * (s * inner)?)?
            }
        })
    }
}

/// ReLU's value: one parallel pass on the CPU, candle's kernel elsewhere.
fn relu_value(x: &Tensor) -> candle_core::Result<Tensor> {
    let host = with_float!(x.dtype(), T => {
        host_slice::<T>(x).map(|xs| Tensor::from_vec(cpu::elementwise::relu(xs.get()), x.dims(), x.device()))
    });
    match host.flatten() {
        Some(y) => y,
        None => x.relu(),
    }
}

/// ReLU's backward from its output: `g` where `out > 0`. One pass on the CPU; elsewhere
/// `g·sign(out)` (out ≥ 0, so its sign is the mask).
pub(crate) fn relu_grad(out: &Tensor, g: &Tensor) -> Result<Tensor> {
    let g = if out.device().is_cpu() { g.contiguous()? } else { g.clone() };
    let host = with_float!(out.dtype(), T => match (host_slice::<T>(out), host_slice::<T>(&g)) {
        (Some(o), Some(gs)) => Some(cpu::tensor(cpu::elementwise::relu_backward(o.get(), gs.get()), out.dims())),
        _ => None,
    });
    match host.flatten() {
        Some(gx) => gx,
        None => Ok((g * out.sign()?)?),
    }
}

/// GELU's backward from candle's ops: `g·(Φ(x) + x·φ(x))`.
fn gelu_erf_grad(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    let cdf = x.affine(std::f64::consts::FRAC_1_SQRT_2, 0.0)?.erf()?.affine(0.5, 0.5)?;
    let pdf = x
        .sqr()?
        .affine(-0.5, 0.0)?
        .exp()?
        .affine(0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2, 0.0)?;
    Ok((g * (cdf + (x * pdf)?)?)?)
}
