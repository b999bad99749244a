//! Taper: a small, fast autodiff tensor framework on candle, for studying, comparing and
//! extending gradient-based optimizers and for training small models on CPU or CUDA.
//!
//! This umbrella crate re-exports the workspace's crates:
//!
//! * [`tensor`]: devices, dtypes, seeded random tensors;
//! * [`autograd`]: the define-by-run tape and every op's backward rule;
//! * [`nn`]: layers, losses and initializations;
//! * [`optim`]: optimizers, schedulers, clipping;
//! * [`train`]: data sets and loaders, the training loop, checkpoints;
//! * [`data`]: data files, checksummed downloads, the IDX format;
//! * [`plot`]: SVG figures;
//!
//! and holds the documents' experiments ([`experiments`], one module each: data, model, runs,
//! comparison and figure) with the command-line pieces their examples share ([`cli`]), and the
//! sweep harness behind the `taper` command ([`sweep`]: test problems, optimizer grids, sharded
//! runs, reports).

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub use taper_autograd as autograd;
pub use taper_data as data;
pub use taper_nn as nn;
pub use taper_optim as optim;
pub use taper_plot as plot;
pub use taper_tensor as tensor;
pub use taper_train as train;

pub mod cli;
pub mod experiments;
pub mod sweep;

/// The README, whose example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctest;

pub use candle_core;
pub use taper_autograd::{profile, Grads, Param, ParamStore, Tape, Var};
pub use taper_tensor::{DType, Device, DeviceSpec, SeededRng, Tensor};
