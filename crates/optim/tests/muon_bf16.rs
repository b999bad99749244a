//! Muon's default bfloat16 iteration on a gradient whose squares a bfloat16 sum cannot add up
//! (50k entries of mixed size: the sum stalls at a third of the true one), which made the
//! normalized matrix too large and the quintic iteration diverge to NaN.

use candle_core::{DType, Device, Tensor};
use taper_autograd::{Grads, ParamStore};

#[test]
fn a_large_gradient_matrix_stays_finite_in_bfloat16() {
    // Entries from 1e-8 to 1e-3: the many small ones vanish against the bfloat16 running sum.
    let (r, c) = (384usize, 128usize);
    let g: Vec<f32> =
        (0..r * c).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-6 * ((i % 13) as f32 + 1.0)).collect();
    let mut s = ParamStore::new();
    let w = s.insert("w", Tensor::zeros((r, c), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let mut opt = taper_optim::from_spec("muon:lr=0.02", s.trainable()).unwrap();
    let mut grads = Grads::default();
    grads.set(&w, Tensor::from_vec(g, (r, c), &Device::Cpu).unwrap());
    opt.step(&grads).unwrap();
    let v: Vec<f32> = w.value().flatten_all().unwrap().to_vec1().unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "NaN or Inf after one step");
    // The orthogonalized update has singular values near 1: entries of order lr/√c.
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(max > 1e-4 && max < 0.1, "{max}");
}
