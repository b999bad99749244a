use candle_core::Tensor;
use taper_autograd::{Error, Result, Var};

/// Mean squared error `mean((pred - target)²)` (PyTorch's `MSELoss()`, reduction `mean`).
pub fn mse_loss(pred: &Var, target: &Var) -> Result<Var> {
    if pred.dims() != target.dims() {
        return Err(Error::ShapeMismatch {
            op: "mse_loss",
            lhs: pred.shape().clone(),
            rhs: target.shape().clone(),
            hint: "prediction and target must have the same shape",
        });
    }
    pred.sub(target)?.sqr()?.mean_all()
}

/// Cross-entropy of `logits` `[batch, classes]` against integer class `labels` `[batch]`,
/// averaged over the batch (PyTorch's `CrossEntropyLoss()`): `mean(-log_softmax(logits)[label])`.
pub fn cross_entropy(logits: &Var, labels: &Tensor) -> Result<Var> {
    let [batch, classes] = *logits.dims() else {
        return Err(Error::InvalidArgument {
            op: "cross_entropy",
            msg: format!("logits must be [batch, classes], got shape {:?}", logits.dims()),
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
    let max = labels.to_dtype(candle_core::DType::F64)?.max_all()?.to_scalar::<f64>().unwrap_or(0.0);
    if batch > 0 && max >= classes as f64 {
        return Err(Error::InvalidArgument {
            op: "cross_entropy",
            msg: format!("label {max} out of range for {classes} classes"),
        });
    }
    let ids = labels.to_dtype(candle_core::DType::U32)?.reshape((batch, 1))?;
    logits.log_softmax(1)?.gather(&ids, 1)?.mean_all()?.neg()
}
