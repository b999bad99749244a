//! Muon (Jordan et al., 2024, "Muon: An optimizer for hidden layers in neural networks";
//! PyTorch's `torch.optim.Muon`).

use candle_core::{DType, Tensor};

use crate::elem::{lerp, Elem};
use crate::rule::{Buffer, NoFuse, Rule, Steps};
use crate::{Error, Hyper, Result};

/// Muon: momentum SGD whose update, a matrix, is replaced by its nearest semi-orthogonal matrix
/// (`U·Vᵀ` of its SVD), approximated by a quintic Newton–Schulz iteration; matrices only.
/// Exactly `torch.optim.Muon`, a whole-tensor rule (composed path only; the decoupled weight
/// decay `p ← p·(1 - η·λ)` is the engine's transform):
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
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "muon", decay = "decoupled")]
pub struct Muon {
    /// Learning rate `η` (PyTorch's default 1e-3).
    #[hp(default = 1e-3, range = ">= 0")]
    pub lr: f64,
    /// Decoupled weight decay `λ` (0.1).
    #[hp(default = 0.1, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Momentum `μ` (0.95).
    #[hp(default = 0.95, range = ">= 0")]
    pub momentum: f64,
    /// Nesterov momentum (true).
    #[hp(default = true)]
    pub nesterov: bool,
    /// The iteration's coefficients `(a, b, c)` (3.4445, −4.775, 2.0315).
    #[hp(default = 3.4445, allowed = "ns_a must be a number")]
    pub ns_a: f64,
    /// `b`.
    #[hp(default = -4.775, allowed = "ns_b must be a number")]
    pub ns_b: f64,
    /// `c`.
    #[hp(default = 2.0315, allowed = "ns_c must be a number")]
    pub ns_c: f64,
    /// `ε` of the normalization (1e-7).
    #[hp(default = 1e-7, range = ">= 0")]
    pub eps: f64,
    /// Iterations (5).
    #[hp(default = 5, below = 100)]
    pub ns_steps: u64,
    /// `original`, `match_rms_adamw` or `spectral_unclamped`.
    #[hp(default = "original", words = ["original", "match_rms_adamw", "spectral_unclamped"])]
    pub adjust_lr_fn: &'static str,
    /// `bf16` (PyTorch's) or `native` (the parameter's dtype).
    #[hp(default = "bf16", words = ["bf16", "native"])]
    pub ns_dtype: &'static str,
    /// Cautious updates (timm's `caution`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

impl Muon {
    /// The Newton–Schulz iteration towards the orthogonal factor of `u`.
    fn orthogonalize(&self, u: &Tensor) -> candle_core::Result<Tensor> {
        let dtype = if self.ns_dtype == "bf16" { DType::BF16 } else { u.dtype() };
        let (rows, cols) = u.dims2()?;
        let mut x = u.to_dtype(dtype)?;
        if rows > cols {
            x = x.t()?.contiguous()?;
        }
        // The norm accumulated in f32, then rounded to the iteration's dtype (as PyTorch's
        // `norm` of a bfloat16 tensor): a bfloat16 sum of 50k squares stalls far below the true
        // norm, and singular values above ~1.5 make the quintic iteration diverge.
        let wide = if matches!(dtype, DType::BF16 | DType::F16) { DType::F32 } else { dtype };
        let n = x.to_dtype(wide)?.sqr()?.sum_all()?.sqrt()?.maximum(self.eps)?.to_dtype(dtype)?;
        x = x.broadcast_div(&n)?;
        for _ in 0..self.ns_steps {
            let gram = x.matmul(&x.t()?)?;
            let update = gram.affine(self.ns_b, 0.0)?.add(&gram.matmul(&gram)?.affine(self.ns_c, 0.0)?)?;
            x = x.affine(self.ns_a, 0.0)?.add(&update.matmul(&x)?)?;
        }
        if rows > cols {
            x = x.t()?.contiguous()?;
        }
        x.to_dtype(u.dtype())
    }

    fn lr_scale(&self, a: f64, b: f64) -> f64 {
        match self.adjust_lr_fn {
            "match_rms_adamw" => 0.2 * a.max(b).sqrt(),
            "spectral_unclamped" => (a / b).sqrt(),
            _ => (a / b).max(1.0).sqrt(),
        }
    }
}

impl Rule for Muon {
    type Coeffs = ();
    type Fused = NoFuse;

    fn buffers(&self, dims: &[usize]) -> Result<Vec<Buffer>> {
        if dims.len() != 2 {
            return Err(Error::InvalidArgument(format!(
                "muon updates matrices only, got a parameter of shape {dims:?}: give the others to another optimizer"
            )));
        }
        Ok(vec![Buffer::zeros("momentum_buffer")])
    }

    fn coeffs(&self, _step: u64) {}

    fn has_momentum(&self) -> bool {
        true
    }
}

impl Steps<Tensor> for Muon {
    fn update(&self, _: &(), p: &mut Tensor, g: &Tensor, s: &mut [Tensor]) -> candle_core::Result<()> {
        let [buf] = s else { candle_core::bail!("muon keeps one buffer") };
        *buf = lerp(buf, g, 1.0 - self.momentum)?;
        let u = if self.nesterov { lerp(g, buf, self.momentum)? } else { buf.clone() };
        let x = self.orthogonalize(&u)?;
        let (a, b) = p.dims2()?;
        let adjusted = self.lr * self.lr_scale(a as f64, b as f64);
        *p = p.add(&x.scale(-adjusted)?)?;
        Ok(())
    }
}
