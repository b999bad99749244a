//! AdamW (Loshchilov & Hutter, 2019; PyTorch's `torch.optim.AdamW`).

use crate::adam::{Adam, AdamCoeffs};
use crate::elem::Elem;
use crate::rule::Rule;
use crate::spec::{Options, Value};
use crate::Result;

/// AdamW: Adam with weight decay decoupled from the gradient (`Adam` with
/// `decoupled_weight_decay=true`), exactly as `torch.optim.AdamW`:
///
/// ```text
/// p ← p·(1 - η·λ)
/// g ← -g                          (maximize)
/// then Adam's update with λ = 0
/// ```
///
/// Its options and defaults are Adam's, except `weight_decay` defaults to 0.01.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW(pub Adam);

impl Default for AdamW {
    fn default() -> Self {
        Self(Adam { weight_decay: 0.01, decoupled_weight_decay: true, ..Adam::default() })
    }
}

impl Rule for AdamW {
    const NAME: &'static str = "adamw";
    type Coeffs = AdamCoeffs;

    fn lr(&self) -> f64 {
        self.0.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.0.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        self.0.buffer_names()
    }
    fn coeffs(&self, step: u64) -> AdamCoeffs {
        self.0.coeffs_at(step)
    }

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &AdamCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        self.0.full_update(c, p, g, s)
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        Ok(Self(Adam::read(o, &Self::default().0, false)?))
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        self.0.write(false)
    }
}
