//! Adafactor (Shazeer & Stern, 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
//! Cost"; PyTorch's `torch.optim.Adafactor`).

use candle_core::{Tensor, D};

use crate::elem::{lerp, norm, Elem};
use crate::rule::{Buffer, NoFuse, Rule, Steps};
use crate::{Hyper, Result};

/// Adafactor: a second moment kept as row and column averages for every parameter of two or
/// more dimensions (factored over the last two), a relative step size, and update clipping.
/// Exactly `torch.optim.Adafactor`, a whole-tensor rule (composed path only; maximize and the
/// decoupled decay `p ← p·(1 - η·λ)`, after `α` has read `p`, are the engine's transforms):
///
/// ```text
/// β̂t ← t^beta2_decay,   ρt ← min(η, 1/√t),   α ← max(ε2, ‖p‖/√n)·ρt
/// p ← p·(1 - η·λ)
/// matrices:  r ← lerp(r, mean_cols(g²), β̂t),  c ← lerp(c, mean_rows(g²), β̂t)
///            V ← r·c / max(mean(r), ε1)
/// vectors:   V ← v ← lerp(v, g², β̂t)
/// u ← g / √max(V, ε1²)
/// p ← p - α / max(1, ‖u‖/(√n·d)) · u
/// ```
///
/// `ε1` defaults to the machine epsilon of the parameter's dtype (PyTorch's `eps=(None, 1e-3)`);
/// the canonical spec leaves it out then.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adafactor", decay = "decoupled")]
pub struct Adafactor {
    /// Learning rate `η` (PyTorch's default 1e-2), the cap on the relative step.
    #[hp(default = 1e-2, range = ">= 0")]
    pub lr: f64,
    /// The decay exponent of `β̂t` (−0.8).
    #[hp(default = -0.8, range = "<= 0")]
    pub beta2_decay: f64,
    /// `ε1`, the floor of the second moment (the dtype's epsilon when `None`).
    #[hp(range = ">= 0")]
    pub eps1: Option<f64>,
    /// `ε2`, the floor of the parameter scale (1e-3).
    #[hp(default = 1e-3, range = ">= 0")]
    pub eps2: f64,
    /// The clipping threshold `d` (1).
    #[hp(default = 1.0, range = ">= 1")]
    pub d: f64,
    /// Decoupled weight decay `λ`.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
}

impl Rule for Adafactor {
    /// The step `t`.
    type Coeffs = u64;
    type Fused = NoFuse;
    const DIRECTION: bool = true;

    fn buffers(&self, dims: &[usize]) -> Result<Vec<Buffer>> {
        let n = dims.len();
        Ok(if n > 1 {
            let (mut row, mut col) = (dims.to_vec(), dims.to_vec());
            row[n - 1] = 1;
            col[n - 2] = 1;
            vec![Buffer::shaped("row_var", row), Buffer::shaped("col_var", col)]
        } else {
            vec![Buffer::zeros("variance")]
        })
    }

    fn coeffs(&self, step: u64) -> u64 {
        step
    }
}

impl Steps<Tensor> for Adafactor {
    /// The whole increment `-α / max(1, ‖u‖/(√n·d)) · u` (`α` reads `p` before its decay).
    fn direction(&self, step: &u64, p: &Tensor, g: &Tensor, s: &mut [Tensor]) -> candle_core::Result<Tensor> {
        let eps1 = self.eps1.unwrap_or(match p.dtype() {
            candle_core::DType::F64 => f64::EPSILON,
            _ => f32::EPSILON as f64,
        });
        let t = *step as f64;
        let beta2_t = t.powf(self.beta2_decay);
        let rho = self.lr.min(1.0 / t.sqrt());
        let numel = p.elem_count() as f64;
        let alpha = self.eps2.max(norm(p)? / numel.sqrt()) * rho;
        let g2 = g.sqr()?;
        let var = match s {
            [row, col] => {
                let dims = g.dims();
                let (m, n) = (dims[dims.len() - 2] as f64, dims[dims.len() - 1] as f64);
                *row = lerp(row, &g2.sum_keepdim(D::Minus1)?.affine(1.0 / n, 0.0)?, beta2_t)?;
                *col = lerp(col, &g2.sum_keepdim(D::Minus2)?.affine(1.0 / m, 0.0)?, beta2_t)?;
                let mean = row.mean_keepdim(D::Minus2)?.maximum(eps1)?;
                row.broadcast_matmul(col)?.broadcast_div(&mean)?
            }
            [variance] => {
                *variance = lerp(variance, &g2, beta2_t)?;
                variance.clone()
            }
            _ => candle_core::bail!("adafactor keeps one or two buffers"),
        };
        let u = g.div(&var.maximum(eps1 * eps1)?.sqrt()?)?;
        let denom = (norm(&u)? / (numel.sqrt() * self.d)).max(1.0);
        u.scale(-alpha / denom)
    }

    /// `p ← p + u` (the direction is the whole increment).
    fn apply(&self, _: &u64, p: &mut Tensor, u: &Tensor, _s: &mut [Tensor]) -> candle_core::Result<()> {
        *p = p.add(u)?;
        Ok(())
    }
}
