//! Taper's training crate: data sets and loaders (airfoil, MNIST, with verified downloads), the
//! training loop with progress and curves, safetensors checkpoints, and SVG plots.

pub mod airfoil;
pub mod checkpoint;
pub mod data;
pub mod download;
mod error;
pub mod mnist;
pub mod plot;
pub mod trainer;

pub use data::{Dataset, Loader};
pub use error::{Error, Result};
pub use trainer::{train, History, Record, Task, TrainConfig};
