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

pub use candle_core;
pub use taper_autograd::{profile, Grads, Param, ParamStore, Tape, Var};
pub use taper_tensor::{DType, Device, DeviceSpec, SeededRng, Tensor};
