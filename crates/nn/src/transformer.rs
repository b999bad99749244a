//! The layers a small transformer needs: token embeddings, layer norm, GELU and dropout (with a
//! training/evaluation switch).

use std::cell::{Cell, RefCell};

use candle_core::{DType, Tensor};
use taper_autograd::{AttentionDropout, Error, Param, Result, Tape, Var};
use taper_tensor::SeededRng;

use crate::{Builder, Module};

/// A lookup table of `[num_embeddings, dim]` vectors (PyTorch's `nn.Embedding`): integer ids of
/// any shape give `[..ids, dim]`. The gradient of a repeated id is the sum of its rows'.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `[num_embeddings, dim]`.
    pub weight: Param,
}

impl Embedding {
    /// An embedding (`weight`, in the builder's scope: `Embedding::new(&mut b.pp("wte"), ..)`),
    /// initialized `N(0, std²)` (PyTorch's default is `std = 1`; nanoGPT's 0.02).
    pub fn new(b: &mut Builder, num_embeddings: usize, dim: usize, std: f64) -> Result<Self> {
        Ok(Self { weight: b.normal("weight", &[num_embeddings, dim], 0.0, std)? })
    }

    /// The vectors of `ids` (integers), recorded on `tape`.
    pub fn lookup(&self, tape: &Tape, ids: &Tensor) -> Result<Var> {
        if ids.dtype().is_float() {
            return Err(Error::InvalidArgument { op: "embedding", msg: "ids must be integers".into() });
        }
        let n = self.weight.dims()[0];
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        if let Some(bad) = flat.to_vec1::<u32>()?.into_iter().find(|&i| i as usize >= n) {
            return Err(Error::InvalidArgument {
                op: "embedding",
                msg: format!("id {bad} out of range for {n} embeddings"),
            });
        }
        let mut dims = ids.dims().to_vec();
        dims.push(self.weight.dims()[1]);
        tape.param(&self.weight).index_select(&flat, 0)?.reshape(dims)
    }
}

/// Layer norm over the last dimension (PyTorch's `nn.LayerNorm(dim)`), weight 1 and bias 0 at
/// the start; `bias: false` leaves the bias out (nanoGPT's `bias=False`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// `[dim]`.
    pub weight: Param,
    /// `[dim]`, if any.
    pub bias: Option<Param>,
    /// Added to the variance (1e-5).
    pub eps: f64,
}

impl LayerNorm {
    /// A layer norm (`weight`, `bias`, in the builder's scope).
    pub fn new(b: &mut Builder, dim: usize, bias: bool) -> Result<Self> {
        let ones = Tensor::ones(dim, b.dtype(), b.device())?;
        let weight = b.param("weight", ones)?;
        let bias = if bias { Some(b.zeros("bias", &[dim])?) } else { None };
        Ok(Self { weight, bias, eps: 1e-5 })
    }
}

impl Module for LayerNorm {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        x.layer_norm(Some(&tape.param(&self.weight)), bias.as_ref(), self.eps)
    }
}

/// GELU, the exact form (PyTorch's `nn.GELU()`), or the tanh approximation
/// (`nn.GELU(approximate='tanh')`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Gelu {
    /// Use the tanh approximation.
    pub tanh: bool,
}

impl Module for Gelu {
    fn forward(&self, _tape: &Tape, x: &Var) -> Result<Var> {
        if self.tanh {
            x.gelu_tanh()
        } else {
            x.gelu()
        }
    }
}

/// Inverted dropout (PyTorch's `nn.Dropout(p)`): in training each element is kept with
/// probability `1 - p` and scaled by `1/(1 - p)`; in evaluation (`set_training(false)`) the
/// identity. Its masks come from its own seeded generator.
#[derive(Debug)]
pub struct Dropout {
    p: f64,
    training: Cell<bool>,
    rng: RefCell<SeededRng>,
}

impl Dropout {
    /// Dropout with probability `p` in `[0, 1]`, masks drawn from `seed`; in training mode.
    pub fn new(p: f64, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p) {
            return Err(Error::InvalidArgument {
                op: "dropout",
                msg: format!("p must be in [0, 1], got {p}"),
            });
        }
        Ok(Self { p, training: Cell::new(true), rng: RefCell::new(SeededRng::new(seed)) })
    }

    /// The probability of dropping an element.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Restarts this layer's mask generator from `seed` (a training loop that derives every
    /// step's randomness from the step number, so that a resumed run draws what the
    /// uninterrupted one would).
    pub fn reseed(&self, seed: u64) {
        *self.rng.borrow_mut() = SeededRng::new(seed);
    }

    /// The dropout to apply inside [`Var::causal_attention`] (its probabilities): in training
    /// mode with `p > 0`, a fresh mask seed drawn from this layer's generator; else `None`.
    pub fn for_attention(&self) -> Option<AttentionDropout> {
        (self.training.get() && self.p > 0.0)
            .then(|| AttentionDropout { p: self.p, seed: self.rng.borrow_mut().next_u64() })
    }
}

impl Module for Dropout {
    fn forward(&self, _tape: &Tape, x: &Var) -> Result<Var> {
        if self.training.get() {
            x.dropout(self.p, &mut self.rng.borrow_mut())
        } else {
            Ok(x.clone())
        }
    }

    fn set_training(&self, training: bool) {
        self.training.set(training);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn embedding_rows_and_their_summed_gradients() {
        let b = Builder::new(0, DType::F64, &Device::Cpu);
        let e = Embedding::new(&mut b.pp("tok"), 5, 3, 1.0).unwrap();
        let tape = Tape::new();
        let ids = Tensor::new(&[[1u32, 4], [1, 0]], &Device::Cpu).unwrap();
        let v = e.lookup(&tape, &ids).unwrap();
        assert_eq!(v.dims(), [2, 2, 3]);
        let w = e.weight.value().to_vec2::<f64>().unwrap();
        assert_eq!(v.value().to_vec3::<f64>().unwrap()[1][0], w[1]);
        let grads = v.sum_all().unwrap().backward().unwrap();
        let g = grads.get(&e.weight).unwrap().to_vec2::<f64>().unwrap();
        // Id 1 appears twice, 2 and 3 never.
        assert_eq!(g, [[1.0; 3], [2.0; 3], [0.0; 3], [0.0; 3], [1.0; 3]]);
        assert!(e.lookup(&Tape::new(), &Tensor::new(&[5u32], &Device::Cpu).unwrap()).is_err());
    }

    #[test]
    fn dropout_keeps_the_expected_share_scaled_and_is_the_identity_in_evaluation() {
        let d = Dropout::new(0.25, 7).unwrap();
        let x = Var::constant(Tensor::ones(20_000, DType::F64, &Device::Cpu).unwrap());
        let y = d.forward(&Tape::new(), &x).unwrap().value().to_vec1::<f64>().unwrap();
        let kept = y.iter().filter(|v| **v != 0.0).count() as f64 / y.len() as f64;
        assert!((kept - 0.75).abs() < 0.02, "{kept}");
        assert!(y.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-12));
        // Seeded: the same seed draws the same mask.
        let again = Dropout::new(0.25, 7).unwrap().forward(&Tape::new(), &x).unwrap();
        assert_eq!(again.value().to_vec1::<f64>().unwrap(), y);
        // The gradient is the mask: the kept elements' scale, 0 elsewhere.
        let mut store = taper_autograd::ParamStore::new();
        let p = store.insert("x", Tensor::ones(20_000, DType::F64, &Device::Cpu).unwrap()).unwrap();
        let tape = Tape::new();
        let out = Dropout::new(0.25, 7).unwrap().forward(&tape, &tape.param(&p)).unwrap();
        let g = out.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(&p).unwrap().to_vec1::<f64>().unwrap(), y);
        d.set_training(false);
        assert_eq!(d.forward(&Tape::new(), &x).unwrap().value().to_vec1::<f64>().unwrap(), vec![1.0; 20_000]);
        assert!(Dropout::new(1.5, 0).is_err());
    }

    #[test]
    fn layer_norm_starts_as_plain_normalization() {
        let b = Builder::new(0, DType::F64, &Device::Cpu);
        let ln = LayerNorm::new(&mut b.pp("ln"), 4, true).unwrap();
        let x = Var::constant(Tensor::new(&[[1.0f64, 2.0, 3.0, 4.0]], &Device::Cpu).unwrap());
        let y = ln.forward(&Tape::new(), &x).unwrap().value().to_vec2::<f64>().unwrap();
        let want = [-1.3416355, -0.4472118, 0.4472118, 1.3416355]; // torch.nn.LayerNorm(4)
        assert!(y[0].iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{y:?}");
    }
}
