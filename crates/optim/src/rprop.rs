//! Rprop (Riedmiller & Braun, 1993; PyTorch's `torch.optim.Rprop`).

use crate::elem::Elem;
use crate::rule::{Buffer, Fuse, Rule, Steps};
use crate::{Error, Hyper, Result};

/// Rprop: every coordinate keeps its own step size, grown while its gradient keeps its sign and
/// shrunk when the sign flips; only the gradient's sign is used. Exactly `torch.optim.Rprop`
/// (maximize is the engine's transform):
///
/// ```text
/// s ← sign(g·g_prev)
/// f ← η+ where s > 0,  η- where s < 0,  1 where s = 0
/// Δ ← clamp(Δ·f, Δmin, Δmax)                     (Δ starts at the learning rate)
/// g ← 0 where s < 0                              (no step after a sign flip)
/// p ← p - sign(g)·Δ
/// g_prev ← g
/// ```
///
/// PyTorch's tuples are split: `etas` → `eta_minus`, `eta_plus`; `step_sizes` →
/// `step_size_min`, `step_size_max`.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "rprop", check = Rprop::check)]
pub struct Rprop {
    /// Learning rate: every step size's initial value (PyTorch's default 0.01).
    #[hp(default = 1e-2, range = ">= 0")]
    pub lr: f64,
    /// Step-size factor after a sign flip (default 0.5).
    #[hp(default = 0.5, range = "(0, 1)")]
    pub eta_minus: f64,
    /// Step-size factor while the sign holds (default 1.2).
    #[hp(default = 1.2, range = "> 1")]
    pub eta_plus: f64,
    /// Smallest step size (default 1e-6).
    #[hp(default = 1e-6, range = ">= 0")]
    pub step_size_min: f64,
    /// Largest step size (default 50).
    #[hp(default = 50.0, range = "> 0")]
    pub step_size_max: f64,
    /// Ascend the objective instead of descending it (PyTorch's `maximize`).
    #[hp(default = false, maximize)]
    pub maximize: bool,
}

impl Rprop {
    fn check(&self) -> Result<()> {
        if self.step_size_min > self.step_size_max {
            return Err(Error::InvalidValue {
                optimizer: Self::NAME,
                key: "step_size_min".into(),
                value: self.step_size_min.to_string(),
                allowed: format!("must be <= step_size_max ({})", self.step_size_max),
            });
        }
        Ok(())
    }
}

impl Rule for Rprop {
    type Coeffs = ();
    type Fused = Fuse;

    /// Each step size starts at the learning rate of the first step (PyTorch's `full_like(lr)`).
    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("prev"), Buffer::filled("step_size", self.lr)])
    }

    fn coeffs(&self, _step: u64) {}
}

impl<E: Elem> Steps<E> for Rprop {
    #[inline(always)]
    fn update(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [prev, step_size] = s else { return Ok(()) };
        // Constants in the element type, from a finite value (the gradient is checked finite).
        let constant = |c: f64| g.affine(0.0, c);
        let zero = constant(0.0)?;
        let sign = g.mul(prev)?.sign()?;
        let flipped = sign.lt(&zero)?;
        let factor = sign.gt(&zero)?.select(
            &constant(self.eta_plus)?,
            &flipped.select(&constant(self.eta_minus)?, &constant(1.0)?)?,
        )?;
        *step_size = step_size
            .mul(&factor)?
            .maximum(&constant(self.step_size_min)?)?
            .minimum(&constant(self.step_size_max)?)?;
        let g = flipped.select(&zero, g)?;
        *p = p.sub(&g.sign()?.mul(step_size)?)?;
        *prev = g;
        Ok(())
    }
}
