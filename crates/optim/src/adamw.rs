//! AdamW (Loshchilov & Hutter, 2019; PyTorch's `torch.optim.AdamW`).

use crate::Hyper;

/// AdamW: Adam with weight decay decoupled from the gradient (`Adam` with
/// `decoupled_weight_decay=true`), exactly as `torch.optim.AdamW`: the engine decays
/// `p ← p·(1 - η·λ)`, then Adam's update runs. Its options and defaults are Adam's, except
/// `weight_decay` defaults to 0.01.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "adamw", decay = "decoupled")]
pub struct AdamW {
    /// Learning rate `η` (PyTorch's default 1e-3).
    #[hp(default = 1e-3, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the first moment.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.999, range = "[0, 1)")]
    pub beta2: f64,
    /// `ε` added outside the root (PyTorch's default 1e-8).
    #[hp(default = 1e-8, range = "> 0")]
    pub eps: f64,
    /// Decoupled weight decay `λ` (PyTorch's default 0.01).
    #[hp(default = 0.01, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Keep the running maximum of `v` (Reddi et al., 2018).
    #[hp(default = false)]
    pub amsgrad: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
    /// Cautious updates (timm's `caution`, as in its `AdamWLegacy(caution=True)`).
    #[hp(default = false, cautious, quiet)]
    pub cautious: bool,
}

crate::adam::adam_rule!(AdamW);
