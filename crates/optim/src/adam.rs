//! Adam (Kingma & Ba, 2015; PyTorch's `torch.optim.Adam`).

use crate::elem::{addcdiv, coupled_weight_decay, ema_sq, lerp, signed_grad, Elem};
use crate::rule::Rule;
use crate::spec::{Options, Value};
use crate::Result;

/// Adam: momentum on the gradient and RMSprop's scaling, both bias-corrected, exactly as
/// `torch.optim.Adam`:
///
/// ```text
/// g ← -g                         (maximize)
/// p ← p·(1 - η·λ)  if decoupled_weight_decay (AdamW),  else  g ← g + λ·p
/// m ← β1·m + (1 - β1)·g
/// v ← β2·v + (1 - β2)·g²
/// v̂ ← max(v̂, v)                  (amsgrad; then v̂ replaces v below)
/// p ← p - η/(1 - β1ᵗ) · m / (√v / √(1 - β2ᵗ) + ε)
/// ```
///
/// d2l's Adam uses `ε = 1e-6`.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
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
    /// Decay the weights directly (`p ← p·(1 - η·λ)`) instead of adding `λ·p` to the gradient:
    /// [`crate::AdamW`], whose default it is.
    pub decoupled_weight_decay: bool,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`: the step uses `-g`).
    pub maximize: bool,
    /// Keep the running maximum of `v` (Reddi et al., 2018).
    pub amsgrad: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
            amsgrad: false,
        }
    }
}

/// Adam's per-step scalars: `η / (1 - β1ᵗ)` and `√(1 - β2ᵗ)`.
#[derive(Debug, Clone, Copy)]
pub struct AdamCoeffs {
    step_size: f64,
    bias_correction2_sqrt: f64,
}

impl Adam {
    pub(crate) fn coeffs_at(&self, step: u64) -> AdamCoeffs {
        let t = step as i32;
        AdamCoeffs {
            step_size: self.lr / (1.0 - self.beta1.powi(t)),
            bias_correction2_sqrt: (1.0 - self.beta2.powi(t)).sqrt(),
        }
    }

    pub(crate) fn buffer_names(&self) -> Vec<&'static str> {
        if self.amsgrad {
            vec!["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            vec!["exp_avg", "exp_avg_sq"]
        }
    }

    /// The whole update: sign, weight decay (coupled or decoupled), moments and step.
    #[inline(always)]
    pub(crate) fn full_update<E: Elem>(
        &self,
        c: &AdamCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        let g = signed_grad(g, self.maximize)?;
        if self.decoupled_weight_decay {
            if self.weight_decay != 0.0 {
                *p = p.scale(1.0 - self.lr * self.weight_decay)?;
            }
            self.moments_and_step(c, p, &g, s)
        } else {
            self.moments_and_step(c, p, &coupled_weight_decay(&g, p, self.weight_decay)?, s)
        }
    }

    /// The moment updates and the step, after weight decay has been applied (coupled to `g`, or
    /// decoupled to `p`).
    #[inline(always)]
    pub(crate) fn moments_and_step<E: Elem>(
        &self,
        c: &AdamCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [exp_avg, exp_avg_sq, rest @ ..] = s else { return Ok(()) };
        *exp_avg = lerp(exp_avg, g, 1.0 - self.beta1)?;
        *exp_avg_sq = ema_sq(exp_avg_sq, g, self.beta2)?;
        let second = match rest {
            [max_sq] => {
                *max_sq = max_sq.maximum(exp_avg_sq)?;
                max_sq.clone()
            }
            _ => exp_avg_sq.clone(),
        };
        let denom = second.sqrt()?.scale(1.0 / c.bias_correction2_sqrt)?.affine(1.0, self.eps)?;
        *p = addcdiv(p, exp_avg, &denom, -c.step_size)?;
        Ok(())
    }

    /// Reads the options; `decoupled_option`: whether `decoupled_weight_decay` is one (Adam's,
    /// not AdamW's, which always decouples).
    pub(crate) fn read(o: &mut Options, d: &Self, decoupled_option: bool) -> Result<Self> {
        Ok(Self {
            lr: o.lr(d.lr)?,
            beta1: o.decay("beta1", &[], d.beta1)?,
            beta2: o.decay("beta2", &[], d.beta2)?,
            eps: o.eps(d.eps)?,
            weight_decay: o.weight_decay(d.weight_decay)?,
            decoupled_weight_decay: if decoupled_option {
                o.flag("decoupled_weight_decay", d.decoupled_weight_decay)?
            } else {
                d.decoupled_weight_decay
            },
            maximize: o.flag("maximize", d.maximize)?,
            amsgrad: o.flag("amsgrad", d.amsgrad)?,
        })
    }

    pub(crate) fn write(&self, decoupled_option: bool) -> Vec<(&'static str, Value)> {
        let mut out = vec![
            ("lr", Value::Num(self.lr)),
            ("beta1", Value::Num(self.beta1)),
            ("beta2", Value::Num(self.beta2)),
            ("eps", Value::Num(self.eps)),
            ("weight_decay", Value::Num(self.weight_decay)),
            ("amsgrad", Value::Bool(self.amsgrad)),
            ("maximize", Value::Bool(self.maximize)),
        ];
        if decoupled_option {
            out.push(("decoupled_weight_decay", Value::Bool(self.decoupled_weight_decay)));
        }
        out
    }
}

impl Rule for Adam {
    const NAME: &'static str = "adam";
    type Coeffs = AdamCoeffs;

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        self.buffer_names()
    }
    fn coeffs(&self, step: u64) -> AdamCoeffs {
        self.coeffs_at(step)
    }

    #[inline(always)]
    fn update<E: Elem>(
        &self,
        c: &AdamCoeffs,
        p: &mut E,
        g: &E,
        s: &mut [E],
    ) -> std::result::Result<(), E::Err> {
        self.full_update(c, p, g, s)
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        Self::read(o, &Self::default(), true)
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        self.write(true)
    }
}
