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
    /// `mean_b(logsumexp(z_b) - z_b[y_b])`: `∂z = g·(softmax(z) - onehot(y))/b`.
    CrossEntropy { probs: Tensor, labels: Vec<u32>, labels_t: Tensor },
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
        let ids: Vec<u32> = labels.to_dtype(DType::U32)?.to_vec1()?;
        if let Some(&bad) = ids.iter().find(|&&y| y as usize >= classes) {
            return Err(Error::InvalidArgument {
                op: "cross_entropy",
                msg: format!("label {bad} out of range for {classes} classes"),
            });
        }
        let z = self.value();
        let host = if z.device().is_cpu() {
            let z = z.contiguous()?;
            with_float!(z.dtype(), T => host_slice::<T>(&z).map(|zs| cross_entropy_host(zs.get(), &ids, classes)))
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
                (picked.mean_all()?.neg()?, logp.exp()?)
            }
        };
        Tape::record("cross_entropy", &[self], value, |_| {
            Op::Loss(LossOp::CrossEntropy { probs, labels: ids, labels_t })
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

/// The mean cross-entropy and the softmax probabilities, row by row (max-subtracted).
fn cross_entropy_host<T: Float>(z: &[T], labels: &[u32], classes: usize) -> Result<(Tensor, Tensor)> {
    let mut probs = Vec::with_capacity(z.len());
    let mut total = 0.0f64;
    for (row, &y) in z.chunks(classes.max(1)).zip(labels) {
        let max = row.iter().map(|v| v.to_f64()).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v.to_f64() - max).exp()).sum();
        let lse = max + sum.ln();
        total += lse - row[y as usize].to_f64();
        probs.extend(row.iter().map(|v| T::from_f64((v.to_f64() - lse).exp())));
    }
    let batch = labels.len();
    let mean = T::from_f64(total / batch.max(1) as f64);
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
            LossOp::CrossEntropy { probs, labels, labels_t } => {
                let (batch, classes) = probs.dims2()?;
                let scale = g / batch.max(1) as f64;
                let host = with_float!(probs.dtype(), T => host_slice::<T>(&probs).map(|ps| {
                    let mut gz: Vec<T> = ps.get().iter().map(|&p| T::from_f64(p.to_f64() * scale)).collect();
                    for (row, &y) in gz.chunks_mut(classes.max(1)).zip(&labels) {
                        row[y as usize] = T::from_f64(row[y as usize].to_f64() - scale);
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
                        (probs - onehot)?.affine(scale, 0.0)?
                    }
                };
                Ok(vec![Some(gz)])
            }
        }
    }
}
