//! Taper: a small, fast autodiff tensor framework on candle, for studying, comparing and
//! extending gradient-based optimizers and for training small models on CPU or CUDA.
//!
//! This crate is what a program that trains a model depends on. It re-exports the library
//! crates:
//!
//! * [`tensor`]: devices, dtypes, seeded random tensors;
//! * [`autograd`]: the define-by-run tape and every op's backward rule;
//! * [`nn`]: layers, losses and initializations;
//! * [`optim`]: optimizers, schedulers, clipping, weight averaging;
//! * [`train`]: data sets and loaders, the training loop, checkpoints;
//!
//! and nothing else: the documents' experiments, the sweep harness behind the `taper` command,
//! data downloads and figures live in the workspace's `taper-lab`, `taper-data` and `taper-plot`
//! crates, so depending on `taper` builds no command-line parser, plotting library or HTTP
//! client.

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub use taper_autograd as autograd;
pub use taper_nn as nn;
pub use taper_optim as optim;
pub use taper_tensor as tensor;
pub use taper_train as train;

/// The README, whose example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctest;

/// `docs/EXTENDING.md`, whose optimizers are compiled and trained as doctests against this
/// crate's paths.
#[cfg(doctest)]
#[doc = include_str!("../docs/EXTENDING.md")]
pub struct ExtendingGuide;

/// `docs/BENCH.md`, whose code is compiled (and run) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/BENCH.md")]
pub struct BenchGuide;

pub use candle_core;
pub use taper_autograd::{profile, Grads, Param, ParamStore, Tape, Var};
pub use taper_tensor::{DType, Device, DeviceSpec, SeededRng, Tensor};

/// Any error of Taper's crates, candle's, or I/O, for `fn main() -> taper::Result<()>` and `?` in
/// a hand-written loop. Returned from `main`, it prints as one readable line: the message, then
/// each cause after a colon (not a structure dump).
pub struct Error(Box<dyn std::error::Error + Send + Sync + 'static>);

impl Error {
    /// The error inside, to inspect or downcast (`e.inner().downcast_ref::<taper::optim::Error>()`).
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Self(Box::new(e))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// What `main` prints for an error it returns: the same one line as `Display`.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// `Result` with Taper's umbrella [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_from_main_is_one_readable_line() {
        let e: crate::Error = crate::optim::OptimSpec::parse("adam:lr").unwrap_err().into();
        let debug = format!("{e:?}");
        assert_eq!(debug, "malformed spec `adam:lr`: option `lr` is not `key=value`");
        assert!(!debug.contains('{') && !debug.contains('\n'), "{debug}");
    }
}
