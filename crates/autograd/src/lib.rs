//! Taper's autodiff graph: a define-by-run tape whose every backward rule is ours.
//!
//! candle computes the values (its kernels, its devices); this crate records how each value was
//! made and differentiates it:
//!
//! ```
//! use taper_autograd::{ParamStore, Tape, Var};
//! use candle_core::{Device, Tensor};
//!
//! # fn main() -> taper_autograd::Result<()> {
//! let mut store = ParamStore::new();
//! let w = store.insert("w", Tensor::new(&[1.0f64, -2.0], &Device::Cpu)?)?;
//! let x = Var::constant(Tensor::new(&[3.0f64, 4.0], &Device::Cpu)?);
//!
//! let tape = Tape::new();
//! let loss = tape.param(&w).mul(&x)?.sum_all()?.sqr()?; // (w·x)²
//! let grads = loss.backward()?;                        // 2 (w·x) x
//! assert_eq!(grads.get(&w).unwrap().to_vec1::<f64>()?, [-30.0, -40.0]);
//! assert!(tape.is_empty()); // backward consumed the tape
//! # Ok(()) }
//! ```
//!
//! * [`Param`]: a named tensor that persists across steps; [`ParamStore`] holds a model's.
//! * [`Tape`]: records ops on values that depend on parameters; [`Tape::no_grad`] switches it off.
//! * [`Var`]: a value, tracked or constant; every op is a method on it.
//! * [`Var::backward`] returns [`Grads`] keyed by parameter and empties the tape.
//!
//! Ops live in `ops/`, one file per family, each op's backward rule beside its forward; the CPU
//! kernels some rules call live in `cpu/`. [`profile`] times a step op by op.

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod cpu;
mod error;
mod grads;
pub mod kernels;
mod ops;
mod param;
pub mod profile;
mod tape;
mod var;

pub use error::{Error, Result};
pub use grads::Grads;
pub use kernels::{with_kernels, Kernels};
pub use ops::attention::AttentionDropout;
pub use ops::norm::BatchStats;
pub use ops::Activation;
pub use param::{Param, ParamId, ParamStore};
pub use tape::Tape;
pub use var::Var;
