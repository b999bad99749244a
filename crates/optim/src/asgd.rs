//! ASGD, averaged stochastic gradient descent (Polyak & Juditsky, 1992; PyTorch's
//! `torch.optim.ASGD`).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Hyper, Result};

/// ASGD: SGD with a decaying step size `ηt` and a running average `ax` of the iterates, which
/// starts averaging after step `t0` (read it with `Optimizer::buffer(param, "ax")`). Exactly
/// `torch.optim.ASGD` (maximize and the L2 penalty `g ← g + λw·p` are the engine's transforms):
///
/// ```text
/// p ← p·(1 - λ·ηt) - ηt·g
/// ax ← p  if μt = 1,  else  ax + μt·(p - ax)
/// ηt+1 ← η / (1 + λ·η·t)^α,   μt+1 ← 1 / max(1, t - t0)
/// ```
///
/// `η1 = η` and `μ1 = 1`; `ηt` and `μt` are per-parameter state (`eta`, `mu`), so a learning
/// rate changed by a scheduler takes effect one step later, as in PyTorch.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "asgd")]
pub struct Asgd {
    /// Learning rate `η` (PyTorch's default 1e-2).
    #[hp(default = 1e-2, range = ">= 0")]
    pub lr: f64,
    /// Decay term `λ` (PyTorch's default 1e-4).
    #[hp(default = 1e-4, range = ">= 0")]
    pub lambd: f64,
    /// Power `α` of the step-size decay (PyTorch's default 0.75).
    #[hp(default = 0.75, range = ">= 0")]
    pub alpha: f64,
    /// The step after which averaging starts (PyTorch's default 1e6).
    #[hp(default = 1e6, range = ">= 0")]
    pub t0: f64,
    /// L2 penalty `λw` added to the gradient.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
}

/// The step size and averaging weight a step uses.
#[derive(Debug, Clone, Copy)]
pub struct AsgdCoeffs {
    /// `ηt`.
    eta: f64,
    /// `μt`.
    mu: f64,
}

impl Asgd {
    /// `(ηt+1, μt+1)` after step `t`.
    fn next(&self, t: f64) -> (f64, f64) {
        (self.lr / (1.0 + self.lambd * self.lr * t).powf(self.alpha), 1.0 / (t - self.t0).max(1.0))
    }
}

impl Rule for Asgd {
    type Coeffs = AsgdCoeffs;
    type Fused = Fuse;

    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("ax")])
    }
    fn scalars(&self) -> &'static [&'static str] {
        &["eta", "mu"]
    }
    fn initial_scalar(&self, name: &str) -> f64 {
        if name == "eta" {
            self.lr
        } else {
            1.0
        }
    }
    /// The coefficients of step `step` under a learning rate that never changed.
    fn coeffs(&self, step: u64) -> AsgdCoeffs {
        if step <= 1 {
            return AsgdCoeffs { eta: self.lr, mu: 1.0 };
        }
        let (eta, mu) = self.next(step as f64 - 1.0);
        AsgdCoeffs { eta, mu }
    }
    fn advance(&self, step: u64, scalars: &mut [f64]) -> AsgdCoeffs {
        let [eta, mu] = scalars else { return self.coeffs(step) };
        let used = AsgdCoeffs { eta: *eta, mu: *mu };
        (*eta, *mu) = self.next(step as f64);
        used
    }
}

impl<E: Elem> Steps<E> for Asgd {
    #[inline(always)]
    fn update(&self, c: &AsgdCoeffs, p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [ax] = s else { return Ok(()) };
        *p = p.scale(1.0 - self.lambd * c.eta)?.add_scaled(g, -c.eta)?;
        *ax = if c.mu == 1.0 { p.clone() } else { ax.add(&p.sub(ax)?.scale(c.mu)?)? };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under a constant learning rate the state the engine keeps gives the closed form.
    #[test]
    fn the_kept_state_is_the_closed_form_at_a_constant_rate() {
        let r = Asgd { t0: 3.0, lambd: 0.5, ..Asgd::default() };
        let mut s = [r.initial_scalar("eta"), r.initial_scalar("mu")];
        for step in 1..12 {
            let a = r.advance(step, &mut s);
            let b = r.coeffs(step);
            assert_eq!((a.eta, a.mu), (b.eta, b.mu), "step {step}");
        }
        assert_eq!(s[1], 1.0 / 8.0);
    }
}
