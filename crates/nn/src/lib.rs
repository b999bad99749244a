//! Taper's layers, losses and initializations.
//!
//! Layers own [`Param`]s registered under dotted names (`fc1.weight`) in a [`ParamStore`], with
//! PyTorch's default initializations drawn from a seeded generator. `forward` takes the tape the
//! step records on:
//!
//! ```
//! use taper_nn::{Builder, Linear, Module, ReLU, Sequential, cross_entropy};
//! use taper_autograd::{Tape, Var};
//! use candle_core::{DType, Device, Tensor};
//!
//! # fn main() -> taper_nn::Result<()> {
//! let mut b = Builder::new(0, DType::F32, &Device::Cpu);
//! let model = Sequential::new()
//!     .add(Linear::new(&mut b, "fc1", 4, 8)?)
//!     .add(ReLU)
//!     .add(Linear::new(&mut b, "fc2", 8, 3)?);
//! let store = b.into_store();
//! assert_eq!(store.get("fc1.weight").unwrap().dims(), [8, 4]);
//!
//! let tape = Tape::new();
//! let x = Var::constant(Tensor::ones((2, 4), DType::F32, &Device::Cpu)?);
//! let labels = Tensor::new(&[0u32, 2], &Device::Cpu)?;
//! let loss = cross_entropy(&model.forward(&tape, &x)?, &labels)?;
//! let grads = loss.backward()?;
//! assert_eq!(grads.len(), 4);
//! # Ok(()) }
//! ```

mod init;
mod layers;
mod loss;

pub use init::Builder;
pub use layers::{AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential, Tanh};
pub use loss::{cross_entropy, mse_loss};
pub use taper_autograd::{Error, Param, ParamStore, Result, Tape, Var};
