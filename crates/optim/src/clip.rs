//! Gradient clipping, as PyTorch's `clip_grad_norm_` and `clip_grad_value_`.

use taper_autograd::{Grads, Param};

use crate::{Error, Result};

/// Added to the norm before dividing, as PyTorch's `clip_grad_norm_` does.
const NORM_EPS: f64 = 1e-6;

/// The global L2 norm `‖g‖₂` of the gradients `grads` holds for `params` (what
/// [`clip_grad_norm`] compares with `max_norm`, and what a training log records).
pub fn grad_norm(grads: &Grads, params: &[Param]) -> Result<f64> {
    let mut sq = 0.0;
    for p in params {
        if let Some(g) = grads.get(p) {
            sq += crate::kernels::sum_squares(g)?;
        }
    }
    Ok(sq.sqrt())
}

/// Scales all gradients of `params` together so that their global L2 norm is at most
/// `max_norm`: `g ← g · min(1, max_norm / (‖g‖ + 1e-6))`. Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut Grads, params: &[Param], max_norm: f64) -> Result<f64> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(Error::InvalidArgument(format!("max_norm must be finite and > 0, got {max_norm}")));
    }
    let norm = grad_norm(grads, params)?;
    let coef = max_norm / (norm + NORM_EPS);
    if coef < 1.0 {
        for p in params {
            if let Some(g) = grads.get(p) {
                let clipped = crate::kernels::scaled(g, coef)?;
                grads.set(p, clipped);
            }
        }
    }
    Ok(norm)
}

/// Clamps every gradient element of `params` to `[-clip, clip]`.
pub fn clip_grad_value(grads: &mut Grads, params: &[Param], clip: f64) -> Result<()> {
    if !(clip.is_finite() && clip > 0.0) {
        return Err(Error::InvalidArgument(format!("clip value must be finite and > 0, got {clip}")));
    }
    for p in params {
        if let Some(g) = grads.get(p) {
            let clipped = g.clamp(-clip, clip)?;
            grads.set(p, clipped);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use taper_autograd::{ParamStore, Tape};

    fn grads_of(store: &ParamStore) -> Grads {
        let tape = Tape::new();
        // loss = 3·a + 4·b, so the gradients are [3] and [4], global norm 5.
        let a = tape.param(store.get("a").unwrap()).scale(3.0).unwrap();
        let b = tape.param(store.get("b").unwrap()).scale(4.0).unwrap();
        a.add(&b).unwrap().sum_all().unwrap().backward().unwrap()
    }

    #[test]
    fn norm_clipping_scales_all_gradients_together() {
        let mut store = ParamStore::new();
        store.insert("a", Tensor::new(&[1.0f64], &Device::Cpu).unwrap()).unwrap();
        store.insert("b", Tensor::new(&[1.0f64], &Device::Cpu).unwrap()).unwrap();
        let mut g = grads_of(&store);
        let norm = clip_grad_norm(&mut g, store.params(), 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-12);
        let a = g.get(&store.params()[0]).unwrap().to_vec1::<f64>().unwrap()[0];
        let b = g.get(&store.params()[1]).unwrap().to_vec1::<f64>().unwrap()[0];
        assert!((a - 0.6).abs() < 1e-6 && (b - 0.8).abs() < 1e-6, "{a} {b}");
        // Below the threshold nothing changes.
        let mut g = grads_of(&store);
        clip_grad_norm(&mut g, store.params(), 10.0).unwrap();
        assert_eq!(g.get(&store.params()[0]).unwrap().to_vec1::<f64>().unwrap(), [3.0]);
        assert!(clip_grad_norm(&mut g, store.params(), 0.0).is_err());
    }

    #[test]
    fn value_clipping_clamps() {
        let mut store = ParamStore::new();
        store.insert("a", Tensor::new(&[1.0f64], &Device::Cpu).unwrap()).unwrap();
        store.insert("b", Tensor::new(&[1.0f64], &Device::Cpu).unwrap()).unwrap();
        let mut g = grads_of(&store);
        clip_grad_value(&mut g, store.params(), 3.5).unwrap();
        assert_eq!(g.get(&store.params()[0]).unwrap().to_vec1::<f64>().unwrap(), [3.0]);
        assert_eq!(g.get(&store.params()[1]).unwrap().to_vec1::<f64>().unwrap(), [3.5]);
        assert!(clip_grad_value(&mut g, store.params(), -1.0).is_err());
    }
}
