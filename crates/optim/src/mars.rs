//! MARS (Yuan et al., 2024, "MARS: Unleashing the Power of Variance Reduction for Training Large
//! Models"; timm's `timm.optim.Mars`, ported from AGI-Arena/MARS).

use candle_core::Tensor;

use crate::elem::{ema_sq, norm, Elem};
use crate::rule::{Buffer, NoFuse, Rule, Steps};
use crate::{Hyper, Result};

/// MARS: a variance-reduced gradient `c` (the gradient plus a scaled difference from the last
/// one), normalized to norm at most 1 per tensor, drives AdamW (`mars_type=adamw`) or Lion
/// (`lion`). Parameters with fewer than 2 dimensions take plain AdamW with `beta1_1d`,
/// `beta2_1d` and the learning rate times `lr_1d_factor`, unless `optimize_1d`. Exactly
/// `timm.optim.Mars` (its weight decay is added to the update, `u ← u + λ·p`; `cautious` masks
/// the momentum before the sign or the division, as timm does):
///
/// ```text
/// c ← g + γ·β1/(1 - β1)·(g - g_prev)   (t > 1; c ← g at t = 1)
/// c ← c / max(‖c‖, 1)
/// m ← β1·m + (1 - β1)·c
/// adamw:  v ← β2·v + (1 - β2)·c²,   u ← (m / (1 - β1ᵗ)) / (√v / √(1 - β2ᵗ) + ε)
/// lion:   u ← sign(m)
/// p ← p - η·(u + λ·p)
/// ```
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "mars", decay = "added")]
pub struct Mars {
    /// Learning rate `η` (timm's default 3e-3).
    #[hp(default = 3e-3, range = ">= 0")]
    pub lr: f64,
    /// Decay `β1` of the momentum.
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta1: f64,
    /// Decay `β2` of the second moment.
    #[hp(default = 0.99, range = "[0, 1)")]
    pub beta2: f64,
    /// `ε` added outside the root.
    #[hp(default = 1e-8, range = ">= 0")]
    pub eps: f64,
    /// Weight decay `λ`, added to the update.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// The variance-reduction scale `γ` (0.025).
    #[hp(default = 0.025, range = ">= 0")]
    pub gamma: f64,
    /// `adamw` or `lion`.
    #[hp(default = "adamw", words = ["adamw", "lion"])]
    pub mars_type: &'static str,
    /// Run MARS on vectors too (else they take AdamW).
    #[hp(default = false)]
    pub optimize_1d: bool,
    /// The vectors' learning rate, as a factor of `η`.
    #[hp(default = 1.0, range = ">= 0")]
    pub lr_1d_factor: f64,
    /// The vectors' `β1` (`beta1` when not given).
    #[hp(default = beta1, range = "[0, 1)")]
    pub beta1_1d: f64,
    /// The vectors' `β2` (`beta2` when not given).
    #[hp(default = beta2, range = "[0, 1)")]
    pub beta2_1d: f64,
    /// Cautious updates (timm's `caution`): the momentum masked where it disagrees in sign
    /// with the gradient and rescaled by `1/mean(mask)`, before the sign or the division.
    #[hp(default = false)]
    pub cautious: bool,
}

/// MARS's per-step scalars.
#[derive(Debug, Clone, Copy)]
pub struct MarsCoeffs {
    step: u64,
    correction1: f64,
    correction2: f64,
    correction1_1d: f64,
    correction2_1d: f64,
}

impl Rule for Mars {
    type Coeffs = MarsCoeffs;
    type Fused = NoFuse;
    const DIRECTION: bool = true;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("exp_avg"), Buffer::zeros("last_grad"), Buffer::zeros("exp_avg_sq")])
    }

    fn coeffs(&self, step: u64) -> MarsCoeffs {
        let t = step as i32;
        MarsCoeffs {
            step,
            correction1: 1.0 - self.beta1.powi(t),
            correction2: 1.0 - self.beta2.powi(t),
            correction1_1d: 1.0 - self.beta1_1d.powi(t),
            correction2_1d: 1.0 - self.beta2_1d.powi(t),
        }
    }

    fn has_momentum(&self) -> bool {
        true
    }
}

impl Mars {
    /// Whether `p` takes MARS (else AdamW).
    fn full(&self, p: &Tensor) -> bool {
        self.optimize_1d || p.rank() >= 2
    }

    /// timm's caution on the momentum.
    fn masked(&self, m: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        if self.cautious {
            m.cautious(g, 1.0)
        } else {
            Ok(m.clone())
        }
    }
}

impl Steps<Tensor> for Mars {
    fn direction(
        &self,
        c: &MarsCoeffs,
        p: &Tensor,
        g: &Tensor,
        s: &mut [Tensor],
    ) -> candle_core::Result<Tensor> {
        let [exp_avg, last_grad, exp_avg_sq] = s else { candle_core::bail!("mars keeps three buffers") };
        let u = if self.full(p) {
            let b1 = self.beta1;
            let ct = if c.step == 1 {
                g.clone()
            } else {
                g.sub(last_grad)?.scale(self.gamma * (b1 / (1.0 - b1)))?.add(g)?
            };
            let ct = ct.scale(1.0 / norm(&ct)?.max(1.0))?;
            *exp_avg = exp_avg.scale(b1)?.add_scaled(&ct, 1.0 - b1)?;
            let m = self.masked(exp_avg, g)?;
            if self.mars_type == "lion" {
                m.sign()?
            } else {
                *exp_avg_sq = ema_sq(exp_avg_sq, &ct, self.beta2)?;
                let denom = exp_avg_sq.sqrt()?.scale(1.0 / c.correction2.sqrt())?.affine(1.0, self.eps)?;
                m.scale(1.0 / c.correction1)?.div(&denom)?
            }
        } else {
            *exp_avg = exp_avg.scale(self.beta1_1d)?.add_scaled(g, 1.0 - self.beta1_1d)?;
            *exp_avg_sq = ema_sq(exp_avg_sq, g, self.beta2_1d)?;
            let denom = exp_avg_sq.sqrt()?.scale(1.0 / c.correction2_1d.sqrt())?.affine(1.0, self.eps)?;
            self.masked(exp_avg, g)?.scale(1.0 / c.correction1_1d)?.div(&denom)?
        };
        *last_grad = g.clone();
        Ok(u)
    }

    /// `p ← p - η·u`, the vectors' `η` times `lr_1d_factor` unless `optimize_1d`.
    fn apply(
        &self,
        _c: &MarsCoeffs,
        p: &mut Tensor,
        u: &Tensor,
        _s: &mut [Tensor],
    ) -> candle_core::Result<()> {
        let lr = if self.full(p) { self.lr } else { self.lr * self.lr_1d_factor };
        *p = p.add_scaled(u, -lr)?;
        Ok(())
    }
}
