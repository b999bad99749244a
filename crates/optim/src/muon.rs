//! Muon (Jordan et al., 2024, "Muon: An optimizer for hidden layers in neural networks";
//! PyTorch's `torch.optim.Muon`).

use candle_core::{DType, Tensor};

use crate::elem::{lerp, Elem};
use crate::spec::{non_negative, Options, Value};
use crate::tensor_rule::TensorRule;
use crate::{Error, Result};

/// Muon: momentum SGD whose update, a matrix, is replaced by its nearest semi-orthogonal matrix
/// (`U·Vᵀ` of its SVD), approximated by a quintic Newton–Schulz iteration; matrices only.
/// Exactly `torch.optim.Muon`, a per-tensor rule ([`TensorRule`]):
///
/// ```text
/// m ← m + (1 - μ)·(g - m)
/// u ← g + μ·(m - g)  (nesterov)  or  m
/// X ← u/max(‖u‖, ε)   (transposed while rows > columns)
/// k times:  A ← X·Xᵀ,  X ← a·X + (b·A + c·A·A)·X
/// p ← p·(1 - η·λ) - η·s·X,   s = √max(1, A/B) (original), 0.2·√max(A, B)
///                            (match_rms_adamw) or √(A/B) (spectral_unclamped) for A×B
/// ```
///
/// PyTorch runs the iteration in bfloat16 (`ns_dtype=bf16`, the default here too, for the same
/// speed and the same numbers to bfloat16's precision); `ns_dtype=native` runs it in the
/// parameter's dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Muon {
    /// Learning rate `η` (PyTorch's default 1e-3).
    pub lr: f64,
    /// Decoupled weight decay `λ` (0.1).
    pub weight_decay: f64,
    /// Momentum `μ` (0.95), ≥ 0.
    pub momentum: f64,
    /// Nesterov momentum (true).
    pub nesterov: bool,
    /// The iteration's coefficients `(a, b, c)` (3.4445, −4.775, 2.0315).
    pub ns_a: f64,
    /// `b`.
    pub ns_b: f64,
    /// `c`.
    pub ns_c: f64,
    /// `ε` of the normalization (1e-7), ≥ 0.
    pub eps: f64,
    /// Iterations (5), fewer than 100.
    pub ns_steps: u64,
    /// `original`, `match_rms_adamw` or `spectral_unclamped`.
    pub adjust_lr_fn: &'static str,
    /// `bf16` (PyTorch's) or `native` (the parameter's dtype).
    pub ns_dtype: &'static str,
}

impl Default for Muon {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            weight_decay: 0.1,
            momentum: 0.95,
            nesterov: true,
            ns_a: 3.4445,
            ns_b: -4.775,
            ns_c: 2.0315,
            eps: 1e-7,
            ns_steps: 5,
            adjust_lr_fn: "original",
            ns_dtype: "bf16",
        }
    }
}

impl Muon {
    /// The Newton–Schulz iteration towards the orthogonal factor of `u`.
    fn orthogonalize(&self, u: &Tensor) -> Result<Tensor> {
        let dtype = if self.ns_dtype == "bf16" { DType::BF16 } else { u.dtype() };
        let (rows, cols) = u.dims2()?;
        let mut x = u.to_dtype(dtype)?;
        if rows > cols {
            x = x.t()?.contiguous()?;
        }
        let n = x.sqr()?.sum_all()?.sqrt()?.maximum(self.eps)?;
        x = x.broadcast_div(&n)?;
        for _ in 0..self.ns_steps {
            let gram = x.matmul(&x.t()?)?;
            let update = gram.affine(self.ns_b, 0.0)?.add(&gram.matmul(&gram)?.affine(self.ns_c, 0.0)?)?;
            x = x.affine(self.ns_a, 0.0)?.add(&update.matmul(&x)?)?;
        }
        if rows > cols {
            x = x.t()?.contiguous()?;
        }
        Ok(x.to_dtype(u.dtype())?)
    }

    fn lr_scale(&self, a: f64, b: f64) -> f64 {
        match self.adjust_lr_fn {
            "match_rms_adamw" => 0.2 * a.max(b).sqrt(),
            "spectral_unclamped" => (a / b).sqrt(),
            _ => (a / b).max(1.0).sqrt(),
        }
    }
}

impl TensorRule for Muon {
    const NAME: &'static str = "muon";

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self, dims: &[usize]) -> Result<Vec<(&'static str, Vec<usize>)>> {
        if dims.len() != 2 {
            return Err(Error::InvalidArgument(format!(
                "muon updates matrices only, got a parameter of shape {dims:?}: give the others to another optimizer"
            )));
        }
        Ok(vec![("momentum_buffer", dims.to_vec())])
    }

    fn update(&self, _step: u64, p: &Tensor, g: &Tensor, state: &mut [Tensor]) -> Result<Tensor> {
        let [buf] = state else { return Err(Error::State("muon keeps one buffer".into())) };
        *buf = lerp(buf, g, 1.0 - self.momentum)?;
        let u = if self.nesterov { lerp(g, buf, self.momentum)? } else { buf.clone() };
        let x = self.orthogonalize(&u)?;
        let (a, b) = p.dims2()?;
        let adjusted = self.lr * self.lr_scale(a as f64, b as f64);
        Ok(p.scale(1.0 - self.lr * self.weight_decay)?.add(&x.scale(-adjusted)?)?)
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        let finite = |_: f64| true;
        Ok(Self {
            lr: o.lr(d.lr)?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            momentum: o.num("momentum", &[], d.momentum, non_negative, "momentum must be >= 0")?,
            nesterov: o.flag("nesterov", d.nesterov)?,
            ns_a: o.num("ns_a", &[], d.ns_a, finite, "ns_a must be a number")?,
            ns_b: o.num("ns_b", &[], d.ns_b, finite, "ns_b must be a number")?,
            ns_c: o.num("ns_c", &[], d.ns_c, finite, "ns_c must be a number")?,
            eps: o.num("eps", &[], d.eps, non_negative, "eps must be >= 0")?,
            ns_steps: o.num(
                "ns_steps",
                &[],
                d.ns_steps as f64,
                |x| x.fract() == 0.0 && (0.0..100.0).contains(&x),
                "ns_steps must be a whole number below 100",
            )? as u64,
            adjust_lr_fn: o.word(
                "adjust_lr_fn",
                "original",
                &["original", "match_rms_adamw", "spectral_unclamped"],
            )?,
            ns_dtype: o.word("ns_dtype", "bf16", &["bf16", "native"])?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("momentum", Value::Num(self.momentum)),
            ("nesterov", Value::Bool(self.nesterov)),
            ("ns_a", Value::Num(self.ns_a)),
            ("ns_b", Value::Num(self.ns_b)),
            ("ns_c", Value::Num(self.ns_c)),
            ("eps", Value::Num(self.eps)),
            ("ns_steps", Value::Num(self.ns_steps as f64)),
            ("adjust_lr_fn", Value::Word(self.adjust_lr_fn)),
            ("ns_dtype", Value::Word(self.ns_dtype)),
        ]
    }
}
