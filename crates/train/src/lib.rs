//! Taper's training crate: data, training loop, metrics, checkpoints and plots.

mod error;
pub mod plot;

pub use error::{Error, Result};
