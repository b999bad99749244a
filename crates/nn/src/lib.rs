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
//! let b = Builder::new(0, DType::F32, &Device::Cpu);
//! let model = Sequential::new()
//!     .add(Linear::new(&mut b.pp("fc1"), 4, 8)?)
//!     .add(ReLU)
//!     .add(Linear::new(&mut b.pp("fc2"), 8, 3)?);
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

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod batch_norm;
mod gpt;
mod init;
mod layers;
mod loss;
mod transformer;

pub use batch_norm::BatchNorm;
pub use gpt::{Block, CausalSelfAttention, Gpt, GptConfig};
pub use init::Builder;
pub use layers::{
    AvgPool2d, Conv2d, Conv2dConfig, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential, Tanh,
};
pub use loss::{cross_entropy, mse_loss};
pub use taper_autograd::{Error, Param, ParamStore, Result, Tape, Var};
pub use transformer::{Dropout, Embedding, Gelu, LayerNorm};

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Tensor};

    fn host(t: &Tensor) -> Vec<f64> {
        t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
    }

    #[test]
    fn pytorch_default_init_bounds_and_names() {
        let b = Builder::new(3, DType::F32, &Device::Cpu);
        let lin = Linear::new(&mut b.pp("fc1"), 100, 20).unwrap();
        let conv =
            Conv2d::new(&mut b.pp("conv1"), 3, 8, 5, Conv2dConfig { padding: 2, ..Default::default() })
                .unwrap();
        let names: Vec<_> = b.store().params().iter().map(|p| p.name().to_string()).collect();
        assert_eq!(names, ["fc1.weight", "fc1.bias", "conv1.weight", "conv1.bias"]);
        let w = host(&lin.weight.value());
        let bound = 1.0 / 10.0;
        assert!(w.iter().all(|x| x.abs() <= bound));
        assert!(w.iter().any(|x| x.abs() > 0.9 * bound), "fills the interval");
        let cw = host(&conv.weight.value());
        assert!(cw.iter().all(|x| x.abs() <= 1.0 / (75f64).sqrt()));
        // Same seed, same model.
        let b2 = Builder::new(3, DType::F32, &Device::Cpu);
        let lin2 = Linear::new(&mut b2.pp("fc1"), 100, 20).unwrap();
        assert_eq!(w, host(&lin2.weight.value()));
    }

    /// A layer followed by a ReLU runs as one fused op inside `Sequential`: exactly the values
    /// and gradients of running the two layers one after the other.
    #[test]
    fn sequential_fusion_changes_nothing_but_speed() {
        for dtype in [DType::F64, DType::F32] {
            let b = Builder::new(5, dtype, &Device::Cpu);
            let net = Sequential::new()
                .add(
                    Conv2d::new(&mut b.pp("c1"), 2, 4, 3, Conv2dConfig { padding: 1, ..Default::default() })
                        .unwrap(),
                )
                .add(ReLU)
                .add(MaxPool2d::new(2))
                .add(Flatten)
                .add(Linear::new(&mut b.pp("fc1"), 4 * 3 * 3, 8).unwrap())
                .add(ReLU)
                .add(Linear::new(&mut b.pp("fc2"), 8, 3).unwrap());
            let store = b.into_store();
            let x = Var::constant(
                taper_tensor::SeededRng::new(1).normal((5, 2, 6, 6), 0.0, 1.0, dtype, &Device::Cpu).unwrap(),
            );
            let labels = Tensor::new(&[0u32, 2, 1, 1, 0], &Device::Cpu).unwrap();
            let run = |fused: bool| {
                let tape = Tape::new();
                let logits = if fused {
                    net.forward(&tape, &x).unwrap()
                } else {
                    net.layers().iter().fold(x.clone(), |h, l| l.forward(&tape, &h).unwrap())
                };
                let loss = cross_entropy(&logits, &labels).unwrap();
                let grads = loss.backward().unwrap();
                let g: Vec<Vec<f64>> = store.params().iter().map(|p| host(grads.get(p).unwrap())).collect();
                (loss.to_scalar_f64().unwrap(), g)
            };
            assert_eq!(run(true), run(false), "{dtype:?}");
        }
    }

    #[test]
    fn layers_compute_what_pytorch_does() {
        let tape = Tape::new();
        let w = Param::new("w", Tensor::new(&[[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]], &Device::Cpu).unwrap());
        let bias = Param::new("b", Tensor::new(&[0.5f64, -0.5, 1.0], &Device::Cpu).unwrap());
        let lin = Linear::from_params(w, Some(bias));
        let x = Var::constant(Tensor::new(&[[1.0f64, -1.0]], &Device::Cpu).unwrap());
        assert_eq!(host(lin.forward(&tape, &x).unwrap().value()), [-0.5, -1.5, 0.0]);
        // Conv2d + bias + pool + flatten: shapes as nn.Conv2d(1, 4, 3, padding=1), MaxPool2d(2).
        let b = Builder::new(0, DType::F64, &Device::Cpu);
        let net = Sequential::new()
            .add(
                Conv2d::new(&mut b.pp("c"), 1, 4, 3, Conv2dConfig { padding: 1, ..Default::default() })
                    .unwrap(),
            )
            .add(ReLU)
            .add(MaxPool2d::new(2))
            .add(Flatten);
        let img = Var::constant(Tensor::ones((2, 1, 6, 6), DType::F64, &Device::Cpu).unwrap());
        assert_eq!(net.forward(&tape, &img).unwrap().dims(), [2, 36]);
    }

    #[test]
    fn losses_match_their_definitions() {
        let logits =
            Var::constant(Tensor::new(&[[2.0f64, 0.0, -1.0], [0.5, 0.5, 0.5]], &Device::Cpu).unwrap());
        let labels = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        let ce = cross_entropy(&logits, &labels).unwrap().to_scalar_f64().unwrap();
        let l0 = -(2f64.exp() / (2f64.exp() + 1.0 + (-1f64).exp())).ln();
        let l1 = 3f64.ln();
        assert!((ce - (l0 + l1) / 2.0).abs() < 1e-12);
        assert!(cross_entropy(&logits, &Tensor::new(&[0u32, 3], &Device::Cpu).unwrap()).is_err());
        assert!(cross_entropy(&logits, &Tensor::new(&[0u32], &Device::Cpu).unwrap()).is_err());
        let a = Var::constant(Tensor::new(&[1.0f64, 2.0], &Device::Cpu).unwrap());
        let t = Var::constant(Tensor::new(&[0.0f64, 4.0], &Device::Cpu).unwrap());
        assert_eq!(mse_loss(&a, &t).unwrap().to_scalar_f64().unwrap(), 2.5);
        assert!(mse_loss(&a, &logits).is_err());
    }
}
