//! SOAP (Vyas et al., 2024, "SOAP: Improving and Stabilizing Shampoo using Adam"; the authors'
//! `soap.py`, nikhilvyas/SOAP).

use candle_core::{DType, Device, Tensor};

use crate::elem::{lerp, Elem};
use crate::rule::{Buffer, NoFuse, Rule, Steps};
use crate::{Error, Hyper, Result};

/// SOAP: Adam run in the eigenbasis of Shampoo's preconditioner. Each dimension of size at most
/// `max_precond_dim` (of a vector only with `precondition_1d`) keeps an exponential average `L`
/// of the gradient's outer products along it and an orthogonal basis `Q` of it; the gradient is
/// rotated into the bases, Adam's moments are kept there, and the step is rotated back. Exactly
/// the authors' `soap.py` but in the parameter's dtype (it casts `L` and `Q` to float32 for the
/// factorizations; Taper computes them in f64 and keeps the parameter's dtype). The first step
/// only starts `L` and its eigenbasis; every `precondition_frequency` steps after it, one power
/// iteration and a QR factorization refresh `Q`:
///
/// ```text
/// G' ← Q0ᵀ·G·Q1   (for a matrix; one rotation per preconditioned dimension)
/// m ← β1·m + (1 - β1)·G',   v ← β2·v + (1 - β2)·G'²
/// p ← p - η·√(1 - β2ᵗ)/(1 - β1ᵗ) · Q0·(m / (√v + ε))·Q1ᵀ    (no correction: correct_bias=false)
/// p ← p - η·λ·p
/// Li ← βs·Li + (1 - βs)·G₍ᵢ₎G₍ᵢ₎ᵀ   (βs = shampoo_beta, else β2)
/// every f steps: Qi ← QR(Li·Qi sorted by Qiᵀ·Li·Qi's diagonal), v permuted alike
/// ```
///
/// On CUDA the rotations run on the device and the factorizations on the host: `eigh` once at
/// the first step and a QR every `precondition_frequency` steps move each preconditioner
/// matrix to the host and back.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "soap")]
pub struct Soap {
    /// Learning rate `η` (3e-3).
    #[hp(default = 3e-3, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the first moment (0.95).
    #[hp(default = 0.95, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment (0.95).
    #[hp(default = 0.95, range = "[0, 1)")]
    pub beta2: f64,
    /// Decay of the preconditioners `L` (`none`: `β2`, the reference's -1).
    #[hp(range = "[0, 1)")]
    pub shampoo_beta: Option<f64>,
    /// `ε` added to the root.
    #[hp(default = 1e-8, range = ">= 0")]
    pub eps: f64,
    /// Weight decay `λ`, applied after the step: `p ← p - η·λ·p` (0.01).
    #[hp(default = 0.01, range = ">= 0")]
    pub weight_decay: f64,
    /// Steps between refreshes of the bases (10).
    #[hp(default = 10, min = 1)]
    pub precondition_frequency: u64,
    /// Dimensions longer than this keep no preconditioner (10000).
    #[hp(default = 10000, min = 1)]
    pub max_precond_dim: u64,
    /// Precondition vectors too.
    #[hp(default = false)]
    pub precondition_1d: bool,
    /// Scale each step to unit RMS.
    #[hp(default = false)]
    pub normalize_grads: bool,
    /// Adam's bias correction.
    #[hp(default = true)]
    pub correct_bias: bool,
    /// Cautious updates (on the step `p - p'`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

/// Names of the preconditioners of up to four dimensions.
const GG: [&str; 4] = ["GG0", "GG1", "GG2", "GG3"];
const Q: [&str; 4] = ["Q0", "Q1", "Q2", "Q3"];

/// SOAP's per-step scalars: the engine's step count (the reference's count is one less: its
/// first step only starts the preconditioners).
#[derive(Debug, Clone, Copy)]
pub struct SoapCoeffs {
    step: u64,
}

impl Soap {
    /// Which dimensions of a parameter of shape `dims` keep a preconditioner.
    fn preconditioned(&self, dims: &[usize]) -> Vec<bool> {
        let fits = |d: usize| d as u64 <= self.max_precond_dim;
        match dims {
            [n] => vec![self.precondition_1d && fits(*n)],
            _ => dims.iter().map(|&d| fits(d)).collect(),
        }
    }

    /// `x` rotated by each dimension's basis (`back`: by its transpose), as `soap.py`'s
    /// `project` and `project_back`: each step contracts the first axis and moves it last.
    fn rotate(x: &Tensor, bases: &[Option<&Tensor>], back: bool) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let mut x = x.clone();
        let mut order = dims.clone();
        for q in bases {
            let d = order[0];
            let rest: usize = order[1..].iter().product();
            let flat = x.reshape((d, rest))?.t()?.contiguous()?;
            x = match q {
                Some(q) if back => flat.matmul(&q.t()?.contiguous()?)?,
                Some(q) => flat.matmul(q)?,
                None => flat,
            };
            order.rotate_left(1);
            x = x.reshape(order.as_slice())?;
        }
        x.reshape(dims.as_slice())
    }

    /// `G₍ᵢ₎G₍ᵢ₎ᵀ`: the gradient's outer product along dimension `i`.
    fn outer(g: &Tensor, i: usize) -> candle_core::Result<Tensor> {
        let a =
            if g.rank() == 1 { g.unsqueeze(1)? } else { g.transpose(0, i)?.contiguous()?.flatten_from(1)? };
        a.matmul(&a.t()?.contiguous()?)
    }
}

/// A square tensor as a faer matrix (f64).
fn host(t: &Tensor) -> candle_core::Result<faer::Mat<f64>> {
    let n = t.dim(0)?;
    let v = t.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(faer::Mat::from_fn(n, n, |i, j| v[i * n + j]))
}

/// A faer matrix back as a tensor of `like`'s dtype and device.
fn device(m: faer::MatRef<'_, f64>, like: &Tensor) -> candle_core::Result<Tensor> {
    let (r, c) = (m.nrows(), m.ncols());
    let v: Vec<f64> = (0..r * c).map(|k| m[(k / c, k % c)]).collect();
    Tensor::from_vec(v, (r, c), &Device::Cpu)?.to_dtype(like.dtype())?.to_device(like.device())
}

/// The eigenvectors of the symmetric `l` (plus 1e-30·I), by descending eigenvalue
/// (`get_orthogonal_matrix`).
fn eigenbasis(l: &Tensor) -> candle_core::Result<Tensor> {
    let mut m = host(l)?;
    let n = m.nrows();
    for i in 0..n {
        m[(i, i)] += 1e-30;
    }
    let evd = m
        .self_adjoint_eigen(faer::Side::Lower)
        .map_err(|e| candle_core::Error::Msg(format!("soap: eigendecomposition failed: {e:?}")))?;
    let u = evd.U();
    // faer orders the eigenvalues ascending; the reference flips to descending.
    let flipped = faer::Mat::from_fn(n, n, |i, j| u[(i, n - 1 - j)]);
    device(flipped.as_ref(), l)
}

/// One power iteration on the basis `q` of `l`, sorted by the estimated eigenvalues
/// `diag(qᵀ·l·q)` descending, then QR (`get_orthogonal_matrix_QR`); returns the new basis and
/// the sort order (by which the second moment is permuted along this dimension).
fn refreshed(l: &Tensor, q: &Tensor) -> candle_core::Result<(Tensor, Vec<u32>)> {
    let (lm, qm) = (host(l)?, host(q)?);
    let n = lm.nrows();
    let lq = &lm * &qm;
    let est: Vec<f64> = (0..n).map(|j| (0..n).map(|i| qm[(i, j)] * lq[(i, j)]).sum()).collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by(|&a, &b| est[b as usize].total_cmp(&est[a as usize]));
    let sorted = faer::Mat::from_fn(n, n, |i, j| qm[(i, order[j] as usize)]);
    let power = &lm * &sorted;
    let basis = power.qr().compute_thin_Q();
    Ok((device(basis.as_ref(), q)?, order))
}

impl Rule for Soap {
    type Coeffs = SoapCoeffs;
    type Fused = NoFuse;

    fn buffers(&self, dims: &[usize]) -> Result<Vec<Buffer>> {
        if dims.len() > GG.len() {
            return Err(Error::InvalidArgument(format!(
                "soap preconditions parameters of up to {} dimensions, got {dims:?}",
                GG.len()
            )));
        }
        let pre = self.preconditioned(dims);
        let mut b = vec![Buffer::zeros("exp_avg"), Buffer::zeros("exp_avg_sq")];
        for (i, (&d, &on)) in dims.iter().zip(&pre).enumerate() {
            if on {
                b.push(Buffer::shaped(GG[i], vec![d, d]));
            }
        }
        for (i, (&d, &on)) in dims.iter().zip(&pre).enumerate() {
            if on {
                b.push(Buffer::shaped(Q[i], vec![d, d]));
            }
        }
        Ok(b)
    }

    fn coeffs(&self, step: u64) -> SoapCoeffs {
        SoapCoeffs { step }
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl Steps<Tensor> for Soap {
    fn update(
        &self,
        c: &SoapCoeffs,
        p: &mut Tensor,
        g: &Tensor,
        s: &mut [Tensor],
    ) -> candle_core::Result<()> {
        let pre = self.preconditioned(p.dims());
        let k = pre.iter().filter(|&&x| x).count();
        let [exp_avg, exp_avg_sq, mats @ ..] = s else { candle_core::bail!("soap keeps two moments") };
        if mats.len() != 2 * k {
            candle_core::bail!("soap: {} preconditioner buffers for {k} dimensions", mats.len());
        }
        let (gg, qs) = mats.split_at_mut(k);
        let shampoo_beta = self.shampoo_beta.unwrap_or(self.beta2);
        // Dimension i's slot among the preconditioned ones.
        let slots: Vec<Option<usize>> = pre
            .iter()
            .scan(0, |n, &on| {
                Some(on.then(|| {
                    *n += 1;
                    *n - 1
                }))
            })
            .collect();
        let update_l = |gg: &mut [Tensor]| -> candle_core::Result<()> {
            for (i, slot) in slots.iter().enumerate() {
                if let Some(j) = slot {
                    gg[*j] = lerp(&gg[*j], &Self::outer(g, i)?, 1.0 - shampoo_beta)?;
                }
            }
            Ok(())
        };
        if c.step == 1 {
            update_l(gg)?;
            for (q, l) in qs.iter_mut().zip(gg.iter()) {
                *q = eigenbasis(l)?;
            }
            return Ok(());
        }
        let step = c.step - 1;
        let bases = |qs: &[Tensor]| -> Vec<Option<Tensor>> {
            slots.iter().map(|s| s.map(|j| qs[j].clone())).collect()
        };
        let b = bases(qs);
        let refs: Vec<Option<&Tensor>> = b.iter().map(Option::as_ref).collect();
        let projected = Self::rotate(g, &refs, false)?;
        *exp_avg = exp_avg.scale(self.beta1)?.add_scaled(&projected, 1.0 - self.beta1)?;
        *exp_avg_sq = exp_avg_sq.scale(self.beta2)?.add_scaled(&projected.sqr()?, 1.0 - self.beta2)?;
        let denom = exp_avg_sq.sqrt()?.affine(1.0, self.eps)?;
        let mut step_size = self.lr;
        if self.correct_bias {
            let t = step as i32;
            step_size = step_size * (1.0 - self.beta2.powi(t)).powf(0.5) / (1.0 - self.beta1.powi(t));
        }
        let mut norm_grad = Self::rotate(&exp_avg.div(&denom)?, &refs, true)?;
        if self.normalize_grads {
            let rms = norm_grad.sqr()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.powf(0.5);
            norm_grad = norm_grad.scale(1.0 / (1e-30 + rms))?;
        }
        *p = p.add_scaled(&norm_grad, -step_size)?;
        if self.weight_decay > 0.0 {
            *p = p.add_scaled(&p.clone(), -self.lr * self.weight_decay)?;
        }
        // The preconditioners: the momentum back to the parameter's basis, L updated, the bases
        // refreshed every `precondition_frequency` steps, the momentum into the (new) bases.
        *exp_avg = Self::rotate(exp_avg, &refs, true)?;
        update_l(gg)?;
        if step.is_multiple_of(self.precondition_frequency) {
            for (i, slot) in slots.iter().enumerate() {
                let Some(j) = slot else { continue };
                let (q, order) = refreshed(&gg[*j], &qs[*j])?;
                qs[*j] = q;
                let idx = Tensor::new(order.as_slice(), exp_avg_sq.device())?;
                *exp_avg_sq = exp_avg_sq.index_select(&idx, i)?;
            }
        }
        let b = bases(qs);
        let refs: Vec<Option<&Tensor>> = b.iter().map(Option::as_ref).collect();
        *exp_avg = Self::rotate(exp_avg, &refs, false)?;
        Ok(())
    }
}
