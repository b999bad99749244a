//! A harness that runs one computation three ways: through our tape, through candle's own
//! backprop (the oracle), and by central finite differences in f64.
#![allow(dead_code)]

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var as CVar};
use taper_autograd::{with_kernels, AttentionDropout, Kernels, ParamStore, Tape, Var};
use taper_tensor::SeededRng;

/// The ops under test, written once and run on both our `Var` and candle's `Tensor`.
pub trait Ad: Clone + Sized {
    fn add(&self, o: &Self) -> Result<Self>;
    fn sub(&self, o: &Self) -> Result<Self>;
    fn mul(&self, o: &Self) -> Result<Self>;
    fn div(&self, o: &Self) -> Result<Self>;
    fn neg(&self) -> Result<Self>;
    fn affine(&self, m: f64, a: f64) -> Result<Self>;
    fn powf(&self, e: f64) -> Result<Self>;
    fn sqr(&self) -> Result<Self>;
    fn sqrt(&self) -> Result<Self>;
    fn exp(&self) -> Result<Self>;
    fn log(&self) -> Result<Self>;
    fn abs(&self) -> Result<Self>;
    fn clamp(&self, lo: f64, hi: f64) -> Result<Self>;
    fn relu(&self) -> Result<Self>;
    fn sigmoid(&self) -> Result<Self>;
    fn tanh(&self) -> Result<Self>;
    fn gelu(&self) -> Result<Self>;
    fn gelu_tanh(&self) -> Result<Self>;
    fn silu(&self) -> Result<Self>;
    fn layer_norm(&self, w: Option<&Self>, b: Option<&Self>, eps: f64) -> Result<Self>;
    fn causal_softmax(&self) -> Result<Self>;
    fn causal_attention(&self, n_head: usize, dropout: Option<AttentionDropout>) -> Result<Self>;
    fn batch_norm(&self, w: Option<&Self>, b: Option<&Self>, eps: f64) -> Result<Self>;
    fn matmul(&self, o: &Self) -> Result<Self>;
    fn sum_keepdim(&self, dims: &[usize]) -> Result<Self>;
    fn sum(&self, dims: &[usize]) -> Result<Self>;
    fn sum_all(&self) -> Result<Self>;
    fn mean_all(&self) -> Result<Self>;
    fn mean(&self, dims: &[usize]) -> Result<Self>;
    fn max(&self, dim: usize) -> Result<Self>;
    fn max_keepdim(&self, dim: usize) -> Result<Self>;
    fn reshape(&self, dims: &[usize]) -> Result<Self>;
    fn transpose(&self, a: usize, b: usize) -> Result<Self>;
    fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self>;
    fn cat(xs: &[&Self], dim: usize) -> Result<Self>;
    fn index_select(&self, ids: &Tensor, dim: usize) -> Result<Self>;
    fn gather(&self, ids: &Tensor, dim: usize) -> Result<Self>;
    fn softmax(&self, dim: usize) -> Result<Self>;
    fn log_softmax(&self, dim: usize) -> Result<Self>;
    fn conv2d(&self, k: &Self, stride: usize, padding: usize) -> Result<Self>;
    fn conv2d_bias(&self, k: &Self, b: &Self, stride: usize, padding: usize) -> Result<Self>;
    fn linear(&self, w: &Self, b: Option<&Self>) -> Result<Self>;
    fn mse_loss(&self, t: &Self) -> Result<Self>;
    fn conv2d_bias_relu(&self, k: &Self, b: &Self, stride: usize, padding: usize) -> Result<Self>;
    fn linear_relu(&self, w: &Self, b: &Self) -> Result<Self>;
    fn cross_entropy(&self, labels: &Tensor) -> Result<Self>;
    fn cross_entropy_ignore(&self, labels: &Tensor, ignore: i64) -> Result<Self>;
    fn max_pool2d(&self, k: usize, stride: usize) -> Result<Self>;
    fn avg_pool2d(&self, k: usize, stride: usize) -> Result<Self>;
    fn broadcast_as(&self, dims: &[usize]) -> Result<Self>;
    fn constant(t: &Tensor) -> Self;
}

impl Ad for Var {
    fn add(&self, o: &Self) -> Result<Self> {
        Ok(Var::add(self, o)?)
    }
    fn sub(&self, o: &Self) -> Result<Self> {
        Ok(Var::sub(self, o)?)
    }
    fn mul(&self, o: &Self) -> Result<Self> {
        Ok(Var::mul(self, o)?)
    }
    fn div(&self, o: &Self) -> Result<Self> {
        Ok(Var::div(self, o)?)
    }
    fn neg(&self) -> Result<Self> {
        Ok(Var::neg(self)?)
    }
    fn affine(&self, m: f64, a: f64) -> Result<Self> {
        Ok(Var::affine(self, m, a)?)
    }
    fn powf(&self, e: f64) -> Result<Self> {
        Ok(Var::powf(self, e)?)
    }
    fn sqr(&self) -> Result<Self> {
        Ok(Var::sqr(self)?)
    }
    fn sqrt(&self) -> Result<Self> {
        Ok(Var::sqrt(self)?)
    }
    fn exp(&self) -> Result<Self> {
        Ok(Var::exp(self)?)
    }
    fn log(&self) -> Result<Self> {
        Ok(Var::log(self)?)
    }
    fn abs(&self) -> Result<Self> {
        Ok(Var::abs(self)?)
    }
    fn clamp(&self, lo: f64, hi: f64) -> Result<Self> {
        Ok(Var::clamp(self, lo, hi)?)
    }
    fn relu(&self) -> Result<Self> {
        Ok(Var::relu(self)?)
    }
    fn sigmoid(&self) -> Result<Self> {
        Ok(Var::sigmoid(self)?)
    }
    fn tanh(&self) -> Result<Self> {
        Ok(Var::tanh(self)?)
    }
    fn gelu(&self) -> Result<Self> {
        Ok(Var::gelu(self)?)
    }
    fn gelu_tanh(&self) -> Result<Self> {
        Ok(Var::gelu_tanh(self)?)
    }
    fn silu(&self) -> Result<Self> {
        Ok(Var::silu(self)?)
    }
    fn layer_norm(&self, w: Option<&Self>, b: Option<&Self>, eps: f64) -> Result<Self> {
        Ok(Var::layer_norm(self, w, b, eps)?)
    }
    fn causal_softmax(&self) -> Result<Self> {
        Ok(Var::causal_softmax(self)?)
    }
    fn causal_attention(&self, n_head: usize, dropout: Option<AttentionDropout>) -> Result<Self> {
        Ok(Var::causal_attention(self, n_head, dropout)?)
    }
    fn batch_norm(&self, w: Option<&Self>, b: Option<&Self>, eps: f64) -> Result<Self> {
        Ok(Var::batch_norm(self, w, b, eps)?.0)
    }
    fn matmul(&self, o: &Self) -> Result<Self> {
        Ok(Var::matmul(self, o)?)
    }
    fn sum_keepdim(&self, dims: &[usize]) -> Result<Self> {
        Ok(Var::sum_keepdim(self, dims.to_vec())?)
    }
    fn sum(&self, dims: &[usize]) -> Result<Self> {
        Ok(Var::sum(self, dims.to_vec())?)
    }
    fn sum_all(&self) -> Result<Self> {
        Ok(Var::sum_all(self)?)
    }
    fn mean_all(&self) -> Result<Self> {
        Ok(Var::mean_all(self)?)
    }
    fn mean(&self, dims: &[usize]) -> Result<Self> {
        Ok(Var::mean(self, dims.to_vec())?)
    }
    fn max(&self, dim: usize) -> Result<Self> {
        Ok(Var::max(self, dim)?)
    }
    fn max_keepdim(&self, dim: usize) -> Result<Self> {
        Ok(Var::max_keepdim(self, dim)?)
    }
    fn reshape(&self, dims: &[usize]) -> Result<Self> {
        Ok(Var::reshape(self, dims)?)
    }
    fn transpose(&self, a: usize, b: usize) -> Result<Self> {
        Ok(Var::transpose(self, a, b)?)
    }
    fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        Ok(Var::narrow(self, dim, start, len)?)
    }
    fn cat(xs: &[&Self], dim: usize) -> Result<Self> {
        Ok(Var::cat(xs, dim)?)
    }
    fn index_select(&self, ids: &Tensor, dim: usize) -> Result<Self> {
        Ok(Var::index_select(self, ids, dim)?)
    }
    fn gather(&self, ids: &Tensor, dim: usize) -> Result<Self> {
        Ok(Var::gather(self, ids, dim)?)
    }
    fn softmax(&self, dim: usize) -> Result<Self> {
        Ok(Var::softmax(self, dim)?)
    }
    fn log_softmax(&self, dim: usize) -> Result<Self> {
        Ok(Var::log_softmax(self, dim)?)
    }
    fn conv2d(&self, k: &Self, s: usize, p: usize) -> Result<Self> {
        Ok(Var::conv2d(self, k, s, p)?)
    }
    fn conv2d_bias(&self, k: &Self, b: &Self, s: usize, p: usize) -> Result<Self> {
        Ok(Var::conv2d_with_bias(self, k, Some(b), s, p)?)
    }
    fn linear(&self, w: &Self, b: Option<&Self>) -> Result<Self> {
        Ok(Var::linear(self, w, b)?)
    }
    fn mse_loss(&self, t: &Self) -> Result<Self> {
        Ok(Var::mse_loss(self, t)?)
    }
    fn conv2d_bias_relu(&self, k: &Self, b: &Self, s: usize, p: usize) -> Result<Self> {
        Ok(Var::conv2d_fused(self, k, Some(b), s, p, taper_autograd::Activation::Relu)?)
    }
    fn linear_relu(&self, w: &Self, b: &Self) -> Result<Self> {
        Ok(Var::linear_fused(self, w, Some(b), taper_autograd::Activation::Relu)?)
    }
    fn cross_entropy(&self, labels: &Tensor) -> Result<Self> {
        Ok(Var::cross_entropy(self, labels)?)
    }
    fn cross_entropy_ignore(&self, labels: &Tensor, ignore: i64) -> Result<Self> {
        Ok(Var::cross_entropy_ignore(self, labels, ignore)?)
    }
    fn max_pool2d(&self, k: usize, s: usize) -> Result<Self> {
        Ok(Var::max_pool2d(self, k, s)?)
    }
    fn avg_pool2d(&self, k: usize, s: usize) -> Result<Self> {
        Ok(Var::avg_pool2d(self, k, s)?)
    }
    fn broadcast_as(&self, dims: &[usize]) -> Result<Self> {
        Ok(Var::broadcast_as(self, dims)?)
    }
    fn constant(t: &Tensor) -> Self {
        Var::constant(t.clone())
    }
}

impl Ad for Tensor {
    fn add(&self, o: &Self) -> Result<Self> {
        Ok(self.broadcast_add(o)?)
    }
    fn sub(&self, o: &Self) -> Result<Self> {
        Ok(self.broadcast_sub(o)?)
    }
    fn mul(&self, o: &Self) -> Result<Self> {
        Ok(self.broadcast_mul(o)?)
    }
    fn div(&self, o: &Self) -> Result<Self> {
        Ok(self.broadcast_div(o)?)
    }
    fn neg(&self) -> Result<Self> {
        Ok(Tensor::neg(self)?)
    }
    fn affine(&self, m: f64, a: f64) -> Result<Self> {
        Ok(Tensor::affine(self, m, a)?)
    }
    fn powf(&self, e: f64) -> Result<Self> {
        Ok(Tensor::powf(self, e)?)
    }
    fn sqr(&self) -> Result<Self> {
        Ok(Tensor::sqr(self)?)
    }
    fn sqrt(&self) -> Result<Self> {
        Ok(Tensor::sqrt(self)?)
    }
    fn exp(&self) -> Result<Self> {
        Ok(Tensor::exp(self)?)
    }
    fn log(&self) -> Result<Self> {
        Ok(Tensor::log(self)?)
    }
    fn abs(&self) -> Result<Self> {
        Ok(Tensor::abs(self)?)
    }
    fn clamp(&self, lo: f64, hi: f64) -> Result<Self> {
        Ok(Tensor::clamp(self, lo, hi)?)
    }
    fn relu(&self) -> Result<Self> {
        Ok(Tensor::relu(self)?)
    }
    fn sigmoid(&self) -> Result<Self> {
        Ok(candle_nn::ops::sigmoid(self)?)
    }
    fn tanh(&self) -> Result<Self> {
        Ok(Tensor::tanh(self)?)
    }
    fn gelu(&self) -> Result<Self> {
        Ok(Tensor::gelu_erf(self)?)
    }
    fn gelu_tanh(&self) -> Result<Self> {
        Ok(Tensor::gelu(self)?)
    }
    fn silu(&self) -> Result<Self> {
        Ok(Tensor::silu(self)?)
    }
    fn layer_norm(&self, w: Option<&Self>, b: Option<&Self>, eps: f64) -> Result<Self> {
        // Composed from candle's ops, so that candle's backprop is an independent oracle.
        let mean = self.mean_keepdim(candle_core::D::Minus1)?;
        let xc = self.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
        let mut y = xc.broadcast_div(&var.affine(1.0, eps)?.sqrt()?)?;
        if let Some(w) = w {
            y = y.broadcast_mul(w)?;
        }
        if let Some(b) = b {
            y = y.broadcast_add(b)?;
        }
        Ok(y)
    }
    fn causal_softmax(&self) -> Result<Self> {
        // The masked scores moved far below (`x·keep + (keep - 1)·1e30`), then candle's softmax.
        let t = *self.dims().last().unwrap();
        let keep: Vec<f64> = (0..t * t).map(|k| if k % t <= k / t { 1.0 } else { 0.0 }).collect();
        let keep = Tensor::from_vec(keep, (t, t), self.device())?.to_dtype(self.dtype())?;
        let masked = self.broadcast_mul(&keep)?.broadcast_add(&keep.affine(1e30, -1e30)?)?;
        // (`softmax`, not `softmax_last_dim`: the fused one has no backward in candle.)
        Ok(candle_nn::ops::softmax(&masked, self.rank() - 1)?)
    }
    fn causal_attention(&self, n_head: usize, dropout: Option<AttentionDropout>) -> Result<Self> {
        // Written out as nanoGPT's non-flash path: split, heads, masked softmax, dropout, product.
        let &[b, t, c3] = self.dims() else { anyhow::bail!("qkv must be [B, T, 3C]") };
        let (c, d) = (c3 / 3, c3 / 3 / n_head);
        let head = |i: usize| -> Result<Tensor> {
            Ok(self.narrow(2, i * c, c)?.reshape((b, t, n_head, d))?.transpose(1, 2)?.contiguous()?)
        };
        let (q, k, v) = (head(0)?, head(1)?, head(2)?);
        let scores = q.matmul(&k.t()?.contiguous()?)?.affine(1.0 / (d as f64).sqrt(), 0.0)?;
        let mut att = Ad::causal_softmax(&scores)?;
        if let Some(dr) = dropout {
            att = att.mul(&dr.mask(b, n_head, t, self.dtype(), self.device())?)?;
        }
        Ok(att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))?)
    }
    fn batch_norm(&self, w: Option<&Self>, b: Option<&Self>, eps: f64) -> Result<Self> {
        // Written out with candle's ops: statistics over every dimension but 1.
        let reduce: Vec<usize> = (0..self.rank()).filter(|&d| d != 1).collect();
        let mut shape = vec![1; self.rank()];
        shape[1] = self.dims()[1];
        let mean = self.mean_keepdim(reduce.clone())?;
        let xc = self.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(reduce)?;
        let mut y = xc.broadcast_div(&var.affine(1.0, eps)?.sqrt()?)?;
        if let Some(w) = w {
            y = y.broadcast_mul(&w.reshape(shape.clone())?)?;
        }
        if let Some(b) = b {
            y = y.broadcast_add(&b.reshape(shape)?)?;
        }
        Ok(y)
    }
    fn matmul(&self, o: &Self) -> Result<Self> {
        // Candle's own product refuses batched views whose batch dimensions are out of order.
        Ok(self.contiguous()?.broadcast_matmul(&o.contiguous()?)?)
    }
    fn sum_keepdim(&self, dims: &[usize]) -> Result<Self> {
        Ok(Tensor::sum_keepdim(self, dims.to_vec())?)
    }
    fn sum(&self, dims: &[usize]) -> Result<Self> {
        Ok(Tensor::sum(self, dims.to_vec())?)
    }
    fn sum_all(&self) -> Result<Self> {
        Ok(Tensor::sum_all(self)?)
    }
    fn mean_all(&self) -> Result<Self> {
        Ok(Tensor::mean_all(self)?)
    }
    fn mean(&self, dims: &[usize]) -> Result<Self> {
        Ok(Tensor::mean(self, dims.to_vec())?)
    }
    fn max(&self, dim: usize) -> Result<Self> {
        Ok(Tensor::max(self, dim)?)
    }
    fn max_keepdim(&self, dim: usize) -> Result<Self> {
        Ok(Tensor::max_keepdim(self, dim)?)
    }
    fn reshape(&self, dims: &[usize]) -> Result<Self> {
        Ok(Tensor::reshape(self, dims)?)
    }
    fn transpose(&self, a: usize, b: usize) -> Result<Self> {
        Ok(Tensor::transpose(self, a, b)?)
    }
    fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        Ok(Tensor::narrow(self, dim, start, len)?)
    }
    fn cat(xs: &[&Self], dim: usize) -> Result<Self> {
        Ok(Tensor::cat(xs, dim)?)
    }
    fn index_select(&self, ids: &Tensor, dim: usize) -> Result<Self> {
        Ok(Tensor::index_select(self, ids, dim)?)
    }
    fn gather(&self, ids: &Tensor, dim: usize) -> Result<Self> {
        Ok(Tensor::gather(self, ids, dim)?)
    }
    fn softmax(&self, dim: usize) -> Result<Self> {
        Ok(candle_nn::ops::softmax(self, dim)?)
    }
    fn log_softmax(&self, dim: usize) -> Result<Self> {
        Ok(candle_nn::ops::log_softmax(self, dim)?)
    }
    fn conv2d(&self, k: &Self, s: usize, p: usize) -> Result<Self> {
        Ok(Tensor::conv2d(self, k, p, s, 1, 1)?)
    }
    fn conv2d_bias(&self, k: &Self, b: &Self, s: usize, p: usize) -> Result<Self> {
        let c = b.dims()[0];
        Ok(Tensor::conv2d(self, k, p, s, 1, 1)?.broadcast_add(&b.reshape((1, c, 1, 1))?)?)
    }
    fn mse_loss(&self, t: &Self) -> Result<Self> {
        Ok((self - t)?.sqr()?.mean_all()?)
    }
    fn conv2d_bias_relu(&self, k: &Self, b: &Self, s: usize, p: usize) -> Result<Self> {
        Ok(Ad::conv2d_bias(self, k, b, s, p)?.relu()?)
    }
    fn linear_relu(&self, w: &Self, b: &Self) -> Result<Self> {
        Ok(Ad::linear(self, w, Some(b))?.relu()?)
    }
    fn cross_entropy(&self, labels: &Tensor) -> Result<Self> {
        Ok(candle_nn::loss::cross_entropy(self, labels)?)
    }
    fn cross_entropy_ignore(&self, labels: &Tensor, ignore: i64) -> Result<Self> {
        // The kept rows' negative log-probabilities, summed, over their count.
        let raw: Vec<i64> = labels.to_vec1()?;
        let keep: Vec<f64> = raw.iter().map(|&y| if y == ignore { 0.0 } else { 1.0 }).collect();
        let ids: Vec<u32> = raw.iter().map(|&y| if y == ignore { 0 } else { y as u32 }).collect();
        let n = keep.iter().sum::<f64>();
        let keep = Tensor::from_vec(keep, (raw.len(), 1), self.device())?.to_dtype(self.dtype())?;
        let ids = Tensor::from_vec(ids, (raw.len(), 1), self.device())?;
        let logp = candle_nn::ops::log_softmax(self, 1)?;
        Ok((logp.gather(&ids, 1)? * keep)?.sum_all()?.affine(-1.0 / n, 0.0)?)
    }
    fn linear(&self, w: &Self, b: Option<&Self>) -> Result<Self> {
        let y = self.broadcast_matmul(&w.t()?)?;
        Ok(match b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
    fn max_pool2d(&self, k: usize, s: usize) -> Result<Self> {
        Ok(self.max_pool2d_with_stride(k, s)?)
    }
    fn avg_pool2d(&self, k: usize, s: usize) -> Result<Self> {
        Ok(self.avg_pool2d_with_stride(k, s)?)
    }
    fn broadcast_as(&self, dims: &[usize]) -> Result<Self> {
        Ok(Tensor::broadcast_as(self, dims)?)
    }
    fn constant(t: &Tensor) -> Self {
        t.clone()
    }
}

/// Inputs of a case: f64 tensors drawn uniformly from `[lo, hi)`.
pub fn inputs(seed: u64, shapes: &[&[usize]], lo: f64, hi: f64) -> Vec<Tensor> {
    let mut rng = SeededRng::new(seed);
    shapes.iter().map(|s| rng.uniform(*s, lo, hi, DType::F64, &Device::Cpu).unwrap()).collect()
}

/// Reduces a case's output to a scalar with fixed random weights, so every output element gets a
/// distinct upstream gradient.
fn weigh<T: Ad>(out: &T, weights: &Tensor) -> Result<T> {
    out.mul(&T::constant(weights))?.sum_all()
}

fn weights_for(out_dims: &[usize], device: &Device) -> Tensor {
    SeededRng::new(99).uniform(out_dims, -1.0, 1.0, DType::F64, device).unwrap()
}

/// Our gradients of `f` at `xs` (with the output weighed to a scalar).
pub fn ours<F>(f: &F, xs: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Var]) -> Result<Var>,
{
    let mut store = ParamStore::new();
    let params: Vec<_> =
        xs.iter().enumerate().map(|(i, x)| store.insert(format!("x{i}"), x.clone()).unwrap()).collect();
    let tape = Tape::new();
    let vars: Vec<Var> = params.iter().map(|p| tape.param(p)).collect();
    let out = f(&vars)?;
    let loss = weigh(&out, &weights_for(out.dims(), out.device()))?;
    let grads = loss.backward()?;
    assert!(tape.is_empty(), "backward must empty the tape");
    Ok(params
        .iter()
        .map(|p| grads.get(p).cloned().unwrap_or_else(|| p.value().zeros_like().unwrap()))
        .collect())
}

/// candle's own gradients of the same computation.
pub fn candle<F>(f: &F, xs: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let vars: Vec<CVar> = xs.iter().map(|x| CVar::from_tensor(x).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts)?;
    let loss = weigh(&out, &weights_for(out.dims(), out.device()))?;
    let grads = loss.backward()?;
    Ok(ts.iter().map(|t| grads.get(t).cloned().unwrap_or_else(|| t.zeros_like().unwrap())).collect())
}

/// Central finite differences of the weighed output, evaluated with our ops on constants.
pub fn finite_diff<F>(f: &F, xs: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Var]) -> Result<Var>,
{
    let h = 1e-6;
    let eval = |xs: &[Tensor]| -> Result<f64> {
        let vars: Vec<Var> = xs.iter().map(|x| Var::constant(x.clone())).collect();
        let out = f(&vars)?;
        Ok(weigh(&out, &weights_for(out.dims(), out.device()))?.to_scalar_f64()?)
    };
    let mut grads = Vec::new();
    for i in 0..xs.len() {
        let base = xs[i].flatten_all()?.to_vec1::<f64>()?;
        let mut g = vec![0.0; base.len()];
        for j in 0..base.len() {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[j] += delta;
                let mut moved = xs.to_vec();
                moved[i] = Tensor::from_vec(v, xs[i].dims(), &Device::Cpu)?;
                eval(&moved)
            };
            g[j] = (at(h)? - at(-h)?) / (2.0 * h);
        }
        grads.push(Tensor::from_vec(g, xs[i].dims(), &Device::Cpu)?);
    }
    Ok(grads)
}

/// `‖a - b‖∞ / max(‖b‖∞, 1e-3)`.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "gradient shapes differ");
    let a = a.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
    let b = b.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(1e-3, f64::max);
    diff / scale
}

/// Where a case runs: a device, and whether Taper's CPU kernels or the device-generic path.
#[derive(Debug, Clone)]
pub struct Target {
    pub device: Device,
    pub kernels: Kernels,
}

/// Every target: the CPU with its kernels, the CPU forced onto the device-generic path (the one
/// CUDA takes), and each GPU this build can see (`taper_tensor::test_devices`).
pub fn targets() -> Vec<Target> {
    let mut t = vec![
        Target { device: Device::Cpu, kernels: Kernels::Native },
        Target { device: Device::Cpu, kernels: Kernels::Generic },
    ];
    t.extend(
        taper_tensor::test_devices()
            .into_iter()
            .filter(|d| !d.is_cpu())
            .map(|device| Target { device, kernels: Kernels::Native }),
    );
    t
}

/// Our gradients of `f` at `xs` on `target`, back on the CPU.
pub fn ours_on<F>(target: &Target, f: &F, xs: &[Tensor]) -> Result<Vec<Tensor>>
where
    F: Fn(&[Var]) -> Result<Var>,
{
    let moved = xs.iter().map(|x| x.to_device(&target.device)).collect::<candle_core::Result<Vec<_>>>()?;
    let grads = with_kernels(target.kernels, || ours(f, &moved))?;
    Ok(grads.iter().map(|g| g.to_device(&Device::Cpu)).collect::<candle_core::Result<_>>()?)
}

/// Checks our gradients on every target against finite differences and, when `ft` is given,
/// against candle's backprop.
pub fn check<FV, FT>(name: &str, xs: &[Tensor], fv: FV, ft: Option<FT>)
where
    FV: Fn(&[Var]) -> Result<Var>,
    FT: Fn(&[Tensor]) -> Result<Tensor>,
{
    let fd = finite_diff(&fv, xs).unwrap_or_else(|e| panic!("{name}: finite differences failed: {e}"));
    let theirs = ft.map(|ft| candle(&ft, xs).unwrap_or_else(|e| panic!("{name}: candle failed: {e}")));
    for target in targets() {
        let ours =
            ours_on(&target, &fv, xs).unwrap_or_else(|e| panic!("{name} on {target:?}: ours failed: {e}"));
        for (i, (o, d)) in ours.iter().zip(&fd).enumerate() {
            let e = rel_err(o, d);
            assert!(
                e < 1e-6,
                "{name} on {target:?}: input {i}: ours vs finite differences: relative error {e:e}"
            );
        }
        for (i, (o, t)) in ours.iter().zip(theirs.iter().flatten()).enumerate() {
            let e = rel_err(o, t);
            assert!(
                e < 1e-6,
                "{name} on {target:?}: input {i}: ours vs candle backprop: relative error {e:e}"
            );
        }
    }
}

/// Runs one generic computation (a body over `v: &[T]` with `T: Ad`) through our tape, candle's
/// backprop and finite differences; `fd_only` skips candle where its backward cannot do the op.
#[macro_export]
macro_rules! gradcheck {
    ($name:expr, $xs:expr, |$v:ident| $body:expr) => {{
        fn case<T: $crate::common::Ad>($v: &[T]) -> anyhow::Result<T> {
            $body
        }
        $crate::common::check(
            $name,
            &$xs,
            |v: &[taper_autograd::Var]| case(v),
            Some(|v: &[candle_core::Tensor]| case(v)),
        )
    }};
    ($name:expr, $xs:expr, fd_only |$v:ident| $body:expr) => {{
        fn case<T: $crate::common::Ad>($v: &[T]) -> anyhow::Result<T> {
            $body
        }
        $crate::common::check(
            $name,
            &$xs,
            |v: &[taper_autograd::Var]| case(v),
            None::<fn(&[candle_core::Tensor]) -> anyhow::Result<candle_core::Tensor>>,
        )
    }};
}
