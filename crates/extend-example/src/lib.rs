//! An optimizer written outside Taper, as a researcher would in their own crate: **Signum**
//! (Bernstein et al., 2018, "signSGD: Compressed Optimisation for Non-Convex Problems"), sign
//! descent on a momentum of the gradient: every coordinate moves by exactly the learning rate (or
//! not at all where the momentum is 0), whatever the gradient's scale. Thirty lines: hyperparameters
//! declared once (`#[derive(Hyper)]`), the state (`Rule`), the update written once over `Elem`
//! (`Steps`); and one call to [`register`]; from then on `"signum:lr=0.001,beta=0.9"` works
//! wherever Taper takes a spec (examples, the training loop, checkpoints and their resume), on the
//! fused CPU kernel and the composed any-device path alike.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! taper_extend_example::register()?;
//! let canonical = taper_optim::canonical("signum:lr=0.01")?;
//! assert_eq!(canonical.to_string(), "signum:lr=0.01,beta=0.9,weight_decay=0");
//! # Ok(()) }
//! ```

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

use std::sync::OnceLock;

use taper_optim::{Buffer, Elem, Fuse, Hyper, Result, Rule, Steps};

/// Signum: `m ← β·m + (1 - β)·g`, `p ← p - η·sign(m)`; the engine decays `p ← p·(1 - η·λ)`.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "signum", decay = "decoupled")]
pub struct Signum {
    /// Learning rate `η`: the size of every coordinate's step.
    #[hp(default = 1e-3, range = ">= 0")]
    pub lr: f64,
    /// Momentum `β` of the moving average (0 is signSGD).
    #[hp(default = 0.9, range = "[0, 1)")]
    pub beta: f64,
    /// Decoupled weight decay `λ`.
    #[hp(default = 0.0, range = ">= 0", weight_decay)]
    pub weight_decay: f64,
}

impl Rule for Signum {
    type Coeffs = ();
    type Fused = Fuse;
    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("momentum_buffer")])
    }
    fn coeffs(&self, _: u64) {}
}

impl<E: Elem> Steps<E> for Signum {
    fn update(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [m] = s else { return Ok(()) };
        *m = m.scale(self.beta)?.add_scaled(g, 1.0 - self.beta)?;
        *p = p.add_scaled(&m.sign()?, -self.lr)?;
        Ok(())
    }
}

/// Makes `signum` known to every spec Taper resolves. Safe to call more than once (the first
/// call registers; later ones return its outcome).
pub fn register() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| taper_optim::register::<Signum>().map_err(|e| e.to_string()))
        .clone()
        .map_err(taper_optim::Error::InvalidArgument)
}
