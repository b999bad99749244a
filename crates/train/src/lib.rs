//! Taper's training crate: data sets and seeded loaders, the training loop (clipping, schedules,
//! curves, progress), and safetensors checkpoints with exact resume. Data files and downloads are
//! `taper-data`'s, figures `taper-plot`'s: the loop does not pull in an HTTP client or a plotting
//! library.

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod checkpoint;
pub mod data;
mod error;
pub mod steps;
pub mod tensorboard;
pub mod trainer;

pub use data::{Dataset, Loader};
pub use error::{Error, Result};
pub use trainer::{progress_bar, train, History, Record, Task, TrainConfig};
