//! An optimizer written outside Taper, as a researcher would in their own crate: **Signum**
//! (Bernstein et al., 2018, "signSGD: Compressed Optimisation for Non-Convex Problems"), sign
//! descent on a momentum of the gradient. One `Rule` (hyperparameters, state, the update written
//! once over `Elem`) and one call to [`register`]; from then on `"signum:lr=0.001,beta=0.9"` works
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

use taper_optim::{non_negative, Elem, Options, Result, Rule, Value};

/// Signum: sign descent on an exponential moving average of the gradient, with decoupled weight
/// decay:
///
/// ```text
/// m ← β·m + (1 - β)·g
/// p ← p·(1 - η·λ) - η·sign(m)
/// ```
///
/// Every coordinate moves by exactly `η` (or not at all where `m = 0`), whatever the gradient's
/// scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Signum {
    /// Learning rate `η`: the size of every coordinate's step (default 1e-3).
    pub lr: f64,
    /// Momentum `β` of the moving average, in `[0, 1)` (default 0.9; 0 is signSGD).
    pub beta: f64,
    /// Decoupled weight decay `λ` (default 0).
    pub weight_decay: f64,
}

impl Default for Signum {
    fn default() -> Self {
        Self { lr: 1e-3, beta: 0.9, weight_decay: 0.0 }
    }
}

impl Rule for Signum {
    const NAME: &'static str = "signum";
    type Coeffs = ();

    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn buffers(&self) -> Vec<&'static str> {
        vec!["momentum_buffer"]
    }
    fn coeffs(&self, _step: u64) {}

    #[inline(always)]
    fn update<E: Elem>(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        // The engine always passes `buffers()`; no panicking path in the fused kernel's loop.
        let [m] = s else { return Ok(()) };
        *m = m.scale(self.beta)?.add_scaled(g, 1.0 - self.beta)?;
        if self.weight_decay != 0.0 {
            *p = p.scale(1.0 - self.lr * self.weight_decay)?;
        }
        *p = p.add_scaled(&m.sign()?, -self.lr)?;
        Ok(())
    }

    fn from_options(o: &mut Options) -> Result<Self> {
        let d = Self::default();
        Ok(Self {
            lr: o.lr(d.lr)?,
            beta: o.decay("beta", &[], d.beta)?,
            weight_decay: o.num(
                "weight_decay",
                &[],
                d.weight_decay,
                non_negative,
                "weight_decay must be >= 0",
            )?,
        })
    }

    fn to_options(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("lr", Value::Num(self.lr)),
            ("beta", Value::Num(self.beta)),
            ("weight_decay", Value::Num(self.weight_decay)),
        ]
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
