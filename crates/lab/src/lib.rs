//! Taper's lab: what the repository runs, apart from what a user's program links.
//!
//! * [`experiments`]: the documents' experiments, one module each owning its data, model, runs,
//!   comparison, figure and command line (`airfoil`, `mnist`, `trace2d`, `linreg`, `lr_decay`,
//!   `char_lm`);
//! * [`cli`]: the flags every example shares (`--device`, `--out`, `--seed`, `--data-dir`,
//!   `--offline`) and `cli::main` (an error printed once, exit status 2);
//! * [`sweep`]: the harness behind the `taper` command (test problems, optimizer grids, sharded
//!   runs, reports; `docs/SWEEPS.md`);
//! * [`golden`]: the optimizer checks against the committed golden trajectories of PyTorch, optax
//!   and schedulefree, asserted by `tests/golden.rs` and tabulated by `reproduce`.
//!
//! A program that trains a model depends on the `taper` crate only, which builds the tensor,
//! autograd, nn, optim and train crates and nothing of this one (no command-line parser, plotting
//! library, HTTP client or sweep harness).

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub use taper_autograd as autograd;
pub use taper_data as data;
pub use taper_nn as nn;
pub use taper_optim as optim;
pub use taper_plot as plot;
pub use taper_tensor as tensor;
pub use taper_train as train;

pub mod bench;
pub mod cli;
pub mod experiments;
pub mod golden;
pub mod perf;
pub mod sweep;

pub use candle_core;
pub use taper_autograd::{profile, Grads, Param, ParamStore, Tape, Var};
pub use taper_tensor::{DType, Device, DeviceSpec, SeededRng, Tensor};
