use candle_core::Tensor;
use taper_autograd::{Result, Var};

/// Mean squared error `mean((pred - target)²)` (PyTorch's `MSELoss()`, reduction `mean`), as one
/// op ([`Var::mse_loss`]).
pub fn mse_loss(pred: &Var, target: &Var) -> Result<Var> {
    pred.mse_loss(target)
}

/// Cross-entropy of `logits` `[batch, classes]` against integer class `labels` `[batch]`,
/// averaged over the batch (PyTorch's `CrossEntropyLoss()`): `mean(-log_softmax(logits)[label])`,
/// as one op ([`Var::cross_entropy`]).
pub fn cross_entropy(logits: &Var, labels: &Tensor) -> Result<Var> {
    logits.cross_entropy(labels)
}
