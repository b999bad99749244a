//! Adafactor (Shazeer & Stern, 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
//! Cost"; PyTorch's `torch.optim.Adafactor`).

use candle_core::{Tensor, D};

use crate::elem::{lerp, Elem};
use crate::spec::{non_negative, Options, Value};
use crate::tensor_rule::{norm, TensorRule};
use crate::{Error, Result};

/// Adafactor: a second moment kept as row and column averages for every parameter of two or
/// more dimensions (factored over the last two), a relative step size, and update clipping.
/// Exactly `torch.optim.Adafactor`, a per-tensor rule ([`TensorRule`]):
///
/// ```text
/// g ← -g                                            (maximize)
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
#[derive(Debug, Clone, PartialEq)]
pub struct Adafactor {
    /// Learning rate `η` (PyTorch's default 1e-2), the cap on the relative step.
    pub lr: f64,
    /// The decay exponent of `β̂t` (−0.8), ≤ 0.
    pub beta2_decay: f64,
    /// `ε1`, the floor of the second moment (the dtype's epsilon when `None`), ≥ 0.
    pub eps1: Option<f64>,
    /// `ε2`, the floor of the parameter scale (1e-3), ≥ 0.
    pub eps2: f64,
    /// The clipping threshold `d` (1), ≥ 1.
    pub d: f64,
    /// Decoupled weight decay `λ`.
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (the step uses `-g`).
    pub maximize: bool,
}

impl Default for Adafactor {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            beta2_decay: -0.8,
            eps1: None,
            eps2: 1e-3,
            d: 1.0,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl TensorRule for Adafactor {
    const NAME: &'static str = "adafactor";

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self, dims: &[usize]) -> Result<Vec<(&'static str, Vec<usize>)>> {
        let n = dims.len();
        Ok(if n > 1 {
            let (mut row, mut col) = (dims.to_vec(), dims.to_vec());
            row[n - 1] = 1;
            col[n - 2] = 1;
            vec![("row_var", row), ("col_var", col)]
        } else {
            vec![("variance", dims.to_vec())]
        })
    }

    fn update(&self, step: u64, p: &Tensor, g: &Tensor, state: &mut [Tensor]) -> Result<Tensor> {
        let g = if self.maximize { g.neg()? } else { g.clone() };
        let eps1 = self.eps1.unwrap_or(match p.dtype() {
            candle_core::DType::F64 => f64::EPSILON,
            _ => f32::EPSILON as f64,
        });
        let t = step as f64;
        let beta2_t = t.powf(self.beta2_decay);
        let rho = self.lr.min(1.0 / t.sqrt());
        let numel = p.elem_count() as f64;
        let alpha = self.eps2.max(norm(p)? / numel.sqrt()) * rho;
        let mut p = p.clone();
        if self.weight_decay != 0.0 {
            p = p.scale(1.0 - self.lr * self.weight_decay)?;
        }
        let g2 = g.sqr()?;
        let var = match state {
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
            _ => return Err(Error::State("adafactor keeps one or two buffers".into())),
        };
        let u = g.div(&var.maximum(eps1 * eps1)?.sqrt()?)?;
        let denom = (norm(&u)? / (numel.sqrt() * self.d)).max(1.0);
        Ok(p.add(&u.scale(-alpha / denom)?)?)
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        let eps1 = o.num("eps1", &[], f64::NAN, non_negative, "eps1 must be >= 0")?;
        Ok(Self {
            lr: o.lr(d.lr)?,
            beta2_decay: o.num(
                "beta2_decay",
                &[],
                d.beta2_decay,
                |x| x <= 0.0,
                "beta2_decay must be <= 0",
            )?,
            eps1: (!eps1.is_nan()).then_some(eps1),
            eps2: o.num("eps2", &[], d.eps2, non_negative, "eps2 must be >= 0")?,
            d: o.num("d", &[], d.d, |x| x >= 1.0, "d must be >= 1")?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            maximize: o.flag("maximize", d.maximize)?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        let mut o = vec![("lr", Value::Num(self.lr)), ("beta2_decay", Value::Num(self.beta2_decay))];
        if let Some(e) = self.eps1 {
            o.push(("eps1", Value::Num(e)));
        }
        o.extend([
            ("eps2", Value::Num(self.eps2)),
            ("d", Value::Num(self.d)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("maximize", Value::Bool(self.maximize)),
        ]);
        o
    }
}
