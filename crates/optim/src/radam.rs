//! RAdam (Liu et al., 2020, "On the Variance of the Adaptive Learning Rate and Beyond";
//! PyTorch's `torch.optim.RAdam`).

use crate::elem::{coupled_weight_decay, ema_sq, lerp, signed_grad, Elem};
use crate::rule::Rule;
use crate::spec::{Options, Value};
use crate::Result;

/// RAdam: Adam whose adaptive step is switched on only once the variance of the adaptive
/// learning rate is tractable, and then rectified; before that, plain bias-corrected momentum.
/// Exactly `torch.optim.RAdam`:
///
/// ```text
/// g ← -g                                        (maximize)
/// p ← p·(1 - η·λ)  if decoupled_weight_decay,  else  g ← g + λ·p
/// m ← β1·m + (1 - β1)·g
/// v ← β2·v + (1 - β2)·g²
/// m̂ ← m / (1 - β1ᵗ)
/// ρ∞ ← 2/(1 - β2) - 1,   ρt ← ρ∞ - 2t·β2ᵗ/(1 - β2ᵗ)
/// ρt > 5:   r ← √((ρt - 4)(ρt - 2)ρ∞ / ((ρ∞ - 4)(ρ∞ - 2)ρt))
///           p ← p - η·m̂ · √(1 - β2ᵗ)/(√v + ε) · r
/// else:     p ← p - η·m̂
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RAdam {
    /// Learning rate `η` (PyTorch's default 1e-3).
    pub lr: f64,
    /// Decay `β1` of the first moment, in `[0, 1)`.
    pub beta1: f64,
    /// Decay `β2` of the second moment, in `[0, 1)`.
    pub beta2: f64,
    /// `ε` added outside the root (PyTorch's default 1e-8).
    pub eps: f64,
    /// Weight decay `λ`: an L2 penalty added to the gradient, or decoupled (AdamW's way).
    pub weight_decay: f64,
    /// Decay the weights directly (`p ← p·(1 - η·λ)`) instead of adding `λ·p` to the gradient.
    pub decoupled_weight_decay: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`: the step uses `-g`).
    pub maximize: bool,
}

impl Default for RAdam {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

/// RAdam's per-step scalars: the step is `plain·m + adaptive·m/(√v + ε)`, one of the two factors
/// zero, so that the fused loop has no branch (and vectorizes) whichever phase the step is in.
#[derive(Debug, Clone, Copy)]
pub struct RAdamCoeffs {
    /// `η/(1 - β1ᵗ)` while `ρt ≤ 5`, else 0.
    plain: f64,
    /// `η/(1 - β1ᵗ) · √(1 - β2ᵗ) · r` once `ρt > 5`, else 0.
    adaptive: f64,
}

/// `ρt > 5` is where PyTorch (and the paper's code) switch the adaptive step on.
const RHO_THRESHOLD: f64 = 5.0;

impl Rule for RAdam {
    const NAME: &'static str = "radam";
    type Coeffs = RAdamCoeffs;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["exp_avg", "exp_avg_sq"]
    }

    fn coeffs(&self, step: u64) -> RAdamCoeffs {
        let t = step as f64;
        let bias_correction1 = 1.0 - self.beta1.powf(t);
        let bias_correction2 = 1.0 - self.beta2.powf(t);
        let rho_inf = 2.0 / (1.0 - self.beta2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * self.beta2.powf(t) / bias_correction2;
        let step_size = self.lr / bias_correction1;
        if rho_t > RHO_THRESHOLD {
            let rect = ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                .powf(0.5);
            RAdamCoeffs { plain: 0.0, adaptive: step_size * bias_correction2.powf(0.5) * rect }
        } else {
            RAdamCoeffs { plain: step_size, adaptive: 0.0 }
        }
    }

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &RAdamCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [exp_avg, exp_avg_sq] = s else { return Ok(()) };
        let mut g = signed_grad(g, self.maximize)?;
        if self.weight_decay != 0.0 {
            if self.decoupled_weight_decay {
                *p = p.scale(1.0 - self.lr * self.weight_decay)?;
            } else {
                g = coupled_weight_decay(&g, p, self.weight_decay)?;
            }
        }
        *exp_avg = lerp(exp_avg, &g, 1.0 - self.beta1)?;
        *exp_avg_sq = ema_sq(exp_avg_sq, &g, self.beta2)?;
        let denom = exp_avg_sq.sqrt()?.affine(1.0, self.eps)?;
        let step = exp_avg.scale(c.plain)?.add(&exp_avg.scale(c.adaptive)?.div(&denom)?)?;
        *p = p.sub(&step)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.lr(d.lr)?,
            beta1: o.decay("beta1", &[], d.beta1)?,
            beta2: o.decay("beta2", &[], d.beta2)?,
            eps: o.eps(d.eps)?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            decoupled_weight_decay: o.flag("decoupled_weight_decay", d.decoupled_weight_decay)?,
            maximize: o.flag("maximize", d.maximize)?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("beta1", Value::Num(self.beta1)),
            ("beta2", Value::Num(self.beta2)),
            ("eps", Value::Num(self.eps)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("decoupled_weight_decay", Value::Bool(self.decoupled_weight_decay)),
            ("maximize", Value::Bool(self.maximize)),
        ]
    }
}
