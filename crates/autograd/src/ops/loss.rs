//! Losses as single ops: mean squared error and cross-entropy (PyTorch's `F.mse_loss` and
//! `F.cross_entropy`, reduction `mean`). One op each instead of the three or four elementary ops
//! they are made of, so a small model's step records, runs and differentiates far fewer ops.

use candle_core::{DType, Device, Tensor, WithDType};

use super::Op;
use crate::cpu::{self, host_slice, with_float, Float};
use crate::error::OpContext;
use crate::tape::Tape;
use crate::{Error, Result, Var};

pub(crate) enum LossOp {
    /// `mean((p - t)²)`: `∂p = 2·g·(p - t)/n`, `∂t = -∂p`.
    Mse { diff: Tensor },
    /// `Σ_b kept(logsumexp(z_b) - z_b[y_b]) / #kept`: `∂z = g·(softmax(z) - onehot(y))/#kept` on
    /// kept rows, 0 on rows whose label is the ignored index (`ignored` empty: none ignored).
    CrossEntropy { probs: Tensor, labels: Vec<u32>, labels_t: Tensor, ignored: Vec<bool>, kept: usize },
}

impl Var {
    /// Mean squared error `mean((self - target)²)` (PyTorch's `MSELoss()`); shapes must match.
    pub fn mse_loss(&self, target: &Var) -> Result<Var> {
        if self.dims() != target.dims() {
            return Err(Error::ShapeMismatch {
                op: "mse_loss",
                lhs: self.shape().clone(),
                rhs: target.shape().clone(),
                hint: "prediction and target must have the same shape",
            });
        }
        super::same_dtype("mse_loss", &[self, target])?;
        let (p, t) = (self.value(), target.value());
        let host = if p.device().is_cpu() {
            let (p, t) = (p.contiguous()?, t.contiguous()?);
            with_float!(p.dtype(), T => match (host_slice::<T>(&p), host_slice::<T>(&t)) {
                (Some(ps), Some(ts)) => Some(mse_host(ps.get(), ts.get(), p.dims())),
                _ => None,
            })
            .flatten()
            .transpose()?
        } else {
            None
        };
        let (value, diff) = match host {
            Some(pair) => pair,
            None => {
                let diff = (p - t).op("mse_loss")?;
                (diff.sqr().and_then(|d| d.mean_all()).op("mse_loss")?, diff)
            }
        };
        Tape::record("mse_loss", &[self, target], value, |_| Op::Loss(LossOp::Mse { diff }))
    }

    /// Cross-entropy of `self` (logits `[batch, classes]`) against integer class `labels`
    /// (`[batch]`), averaged over the batch (PyTorch's `CrossEntropyLoss()`).
    pub fn cross_entropy(&self, labels: &Tensor) -> Result<Var> {
        self.cross_entropy_impl(labels, None)
    }

    /// Cross-entropy with PyTorch's `ignore_index`: rows whose label is `ignore_index` (e.g. -100
    /// for padding) count neither in the loss nor in the mean, and get no gradient; with every row
    /// ignored the mean is over nothing: NaN, as PyTorch's.
    pub fn cross_entropy_ignore(&self, labels: &Tensor, ignore_index: i64) -> Result<Var> {
        self.cross_entropy_impl(labels, Some(ignore_index))
    }

    fn cross_entropy_impl(&self, labels: &Tensor, ignore_index: Option<i64>) -> Result<Var> {
        let [batch, classes] = *self.dims() else {
            return Err(Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!("logits must be [batch, classes], got shape {:?}", self.dims()),
            });
        };
        if labels.dims() != [batch] {
            return Err(Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!("labels must be [batch] = [{batch}], got shape {:?}", labels.dims()),
            });
        }
        if labels.dtype().is_float() {
            return Err(Error::InvalidArgument {
                op: "cross_entropy",
                msg: "labels must be integer class ids".into(),
            });
        }
        let raw: Vec<i64> = labels.to_dtype(DType::I64)?.to_vec1()?;
        let ignored: Vec<bool> = match ignore_index {
            Some(ix) if raw.contains(&ix) => raw.iter().map(|&y| y == ix).collect(),
            _ => Vec::new(),
        };
        let is_ignored = |b: usize| ignored.get(b).copied().unwrap_or(false);
        if let Some((_, &bad)) =
            raw.iter().enumerate().find(|(b, &y)| !is_ignored(*b) && !(0..classes as i64).contains(&y))
        {
            return Err(Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!("label {bad} out of range for {classes} classes"),
            });
        }
        // Ignored rows read class 0 (any valid index); their weight is 0.
        let ids: Vec<u32> =
            raw.iter().enumerate().map(|(b, &y)| if is_ignored(b) { 0 } else { y as u32 }).collect();
        let kept = batch - ignored.iter().filter(|&&i| i).count();
        if let Some(&bad) = ids.iter().find(|&&y| y as usize >= classes) {
            return Err(Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!("label {bad} out of range for {classes} classes"),
            });
        }
        let z = self.value();
        let host = if z.device().is_cpu() {
            let z = z.contiguous()?;
            with_float!(z.dtype(), T => host_slice::<T>(&z).map(|zs| cross_entropy_host(zs.get(), &ids, classes, &ignored, kept)))
                .flatten()
                .transpose()?
        } else {
            None
        };
        let labels_t = Tensor::from_vec(ids.clone(), batch, z.device())?;
        let (value, probs) = match host {
            Some(pair) => pair,
            None => {
                let logp = candle_nn::ops::log_softmax(z, 1).op("cross_entropy")?;
                let picked = logp.gather(&labels_t.reshape((batch, 1))?, 1).op("cross_entropy")?;
                let total = match keep_column(&ignored, z)? {
                    Some(keep) => (picked * keep)?.sum_all()?,
                    None => picked.sum_all()?,
                };
                (total.affine(-1.0 / kept as f64, 0.0)?, logp.exp()?)
            }
        };
        Tape::record("cross_entropy", &[self], value, |_| {
            Op::Loss(LossOp::CrossEntropy { probs, labels: ids, labels_t, ignored, kept })
        })
    }
}

/// `mean((p - t)²)` and `p - t`: the difference in `T`, its squares summed in f64 (eight lanes, so
/// both loops vectorize).
fn mse_host<T: Float>(p: &[T], t: &[T], dims: &[usize]) -> Result<(Tensor, Tensor)> {
    let diff: Vec<T> = p.iter().zip(t).map(|(&a, &b)| a - b).collect();
    let mut acc = [0.0f64; 8];
    let mut chunks = diff.chunks_exact(8);
    for c in &mut chunks {
        for (a, &d) in acc.iter_mut().zip(c) {
            let d = d.to_f64();
            *a += d * d;
        }
    }
    let tail: f64 = chunks.remainder().iter().map(|d| d.to_f64() * d.to_f64()).sum();
    let total = acc.iter().sum::<f64>() + tail;
    let mean = T::from_f64(total / p.len().max(1) as f64);
    Ok((cpu::tensor(vec![mean], &[])?, cpu::tensor(diff, dims)?))
}

/// `[batch, 1]` with 0 on ignored rows and 1 elsewhere, in `z`'s dtype and device; `None` when no
/// row is ignored.
fn keep_column(ignored: &[bool], z: &Tensor) -> Result<Option<Tensor>> {
    if ignored.is_empty() {
        return Ok(None);
    }
    let keep: Vec<f64> = ignored.iter().map(|&i| if i { 0.0 } else { 1.0 }).collect();
    Ok(Some(Tensor::from_vec(keep, (ignored.len(), 1), z.device())?.to_dtype(z.dtype())?))
}

/// The mean cross-entropy over the kept rows and the softmax probabilities, row by row
/// (max-subtracted).
fn cross_entropy_host<T: Float>(
    z: &[T],
    labels: &[u32],
    classes: usize,
    ignored: &[bool],
    kept: usize,
) -> Result<(Tensor, Tensor)> {
    let mut probs = Vec::with_capacity(z.len());
    let mut total = 0.0f64;
    for (b, (row, &y)) in z.chunks(classes.max(1)).zip(labels).enumerate() {
        let max = row.iter().map(|v| v.to_f64()).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v.to_f64() - max).exp()).sum();
        let lse = max + sum.ln();
        if !ignored.get(b).copied().unwrap_or(false) {
            total += lse - row[y as usize].to_f64();
        }
        probs.extend(row.iter().map(|v| T::from_f64((v.to_f64() - lse).exp())));
    }
    let batch = labels.len();
    let mean = T::from_f64(total / kept as f64);
    Ok((cpu::tensor(vec![mean], &[])?, cpu::tensor(probs, &[batch, classes])?))
}

impl LossOp {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            LossOp::Mse { .. } => "mse_loss",
            LossOp::CrossEntropy { .. } => "cross_entropy",
        }
    }

    pub(crate) fn backward(self, g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let g = g.to_dtype(DType::F64)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f64>()?;
        let g = g.first().copied().unwrap_or(0.0);
        match self {
            LossOp::Mse { diff } => {
                let gp = diff.affine(2.0 * g / diff.elem_count().max(1) as f64, 0.0)?;
                let gt = if needs.get(1).copied().unwrap_or(false) { Some(gp.neg()?) } else { None };
                Ok(vec![Some(gp), gt])
            }
            LossOp::CrossEntropy { probs, labels, labels_t, ignored, kept } => {
                let (batch, classes) = probs.dims2()?;
                let scale = g / kept as f64;
                let host = with_float!(probs.dtype(), T => host_slice::<T>(&probs).map(|ps| {
                    let mut gz: Vec<T> = ps.get().iter().map(|&p| T::from_f64(p.to_f64() * scale)).collect();
                    for (b, (row, &y)) in gz.chunks_mut(classes.max(1)).zip(&labels).enumerate() {
                        if ignored.get(b).copied().unwrap_or(false) {
                            row.iter_mut().for_each(|v| *v = T::ZERO);
                        } else {
                            row[y as usize] = T::from_f64(row[y as usize].to_f64() - scale);
                        }
                    }
                    cpu::tensor(gz, &[batch, classes])
                }))
                .flatten()
                .transpose()?;
                let gz = match host {
                    Some(gz) => gz,
                    None => {
                        let ids = Tensor::arange(0u32, classes as u32, probs.device())?;
                        let onehot = labels_t
                            .reshape((batch, 1))?
                            .broadcast_eq(&ids.reshape((1, classes))?)?
                            .to_dtype(probs.dtype())?;
                        let gz = (&probs - onehot)?.affine(scale, 0.0)?;
                        match keep_column(&ignored, &probs)? {
                            Some(keep) => gz.broadcast_mul(&keep)?,
                            None => gz,
                        }
                    }
                };
                Ok(vec![Some(gz)])
            }
        }
    }
}
