use candle_core::{DType, Device, Shape, Tensor};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{check_float_dtype, Error, Result};

/// A seeded random generator for tensors.
///
/// Numbers are drawn on the host in `f64` from ChaCha8 (a generator whose output is fixed by the
/// seed on every platform and in every version of `rand_chacha`), then cast to the dtype and moved
/// to the device. So the same seed gives the same tensor on CPU and CUDA, in the same order of
/// calls.
#[derive(Debug, Clone)]
pub struct SeededRng {
    rng: ChaCha8Rng,
}

impl SeededRng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// The underlying generator, for draws that are not tensors (shuffling, dropout masks, ...).
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    /// A fresh generator derived from this one (for example one per data loader).
    pub fn fork(&mut self) -> Self {
        Self::new(self.rng.next_u64())
    }

    /// One uniform 64-bit draw (a seed for a counter-based mask, for example).
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// One draw from `U[0, 1)`.
    pub fn uniform_f64(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// One draw from the standard normal distribution (Box–Muller on two uniforms).
    pub fn standard_normal_f64(&mut self) -> f64 {
        // 1 - U[0,1) lies in (0, 1], so the logarithm is finite.
        let u1 = 1.0 - self.rng.random::<f64>();
        let u2 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A tensor of independent `N(mean, std²)` draws.
    pub fn normal<S: Into<Shape>>(
        &mut self,
        shape: S,
        mean: f64,
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !(std.is_finite() && std >= 0.0 && mean.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "normal needs a finite mean and a finite std >= 0, got mean={mean}, std={std}"
            )));
        }
        let shape = shape.into();
        let values: Vec<f64> =
            (0..shape.elem_count()).map(|_| mean + std * self.standard_normal_f64()).collect();
        to_tensor(values, shape, dtype, device)
    }

    /// A tensor of independent `U[low, high)` draws.
    pub fn uniform<S: Into<Shape>>(
        &mut self,
        shape: S,
        low: f64,
        high: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        if !(low.is_finite() && high.is_finite() && low <= high) {
            return Err(Error::InvalidArgument(format!(
                "uniform needs finite bounds with low <= high, got [{low}, {high})"
            )));
        }
        let shape = shape.into();
        let values: Vec<f64> =
            (0..shape.elem_count()).map(|_| low + (high - low) * self.uniform_f64()).collect();
        to_tensor(values, shape, dtype, device)
    }

    /// A uniformly random permutation of `0..n` (Fisher–Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }

    /// Shuffles a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.rng.random_range(0..=i);
            items.swap(i, j);
        }
    }
}

fn to_tensor(values: Vec<f64>, shape: Shape, dtype: DType, device: &Device) -> Result<Tensor> {
    check_float_dtype(dtype)?;
    let t = match dtype {
        DType::F64 => Tensor::from_vec(values, shape, &Device::Cpu)?,
        _ => {
            let v: Vec<f32> = values.into_iter().map(|x| x as f32).collect();
            Tensor::from_vec(v, shape, &Device::Cpu)?
        }
    };
    Ok(t.to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let a = SeededRng::new(7).normal((3, 4), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
        let b = SeededRng::new(7).normal((3, 4), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
        let c = SeededRng::new(8).normal((3, 4), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
        let (a, b, c) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            c.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn f32_is_the_rounded_f64_draw() {
        let a = SeededRng::new(1).uniform(5, -1.0, 1.0, DType::F64, &Device::Cpu).unwrap();
        let b = SeededRng::new(1).uniform(5, -1.0, 1.0, DType::F32, &Device::Cpu).unwrap();
        let a: Vec<f32> = a.to_vec1::<f64>().unwrap().iter().map(|&x| x as f32).collect();
        assert_eq!(a, b.to_vec1::<f32>().unwrap());
    }

    #[test]
    fn moments_are_right() {
        let n = 200_000;
        let mut rng = SeededRng::new(3);
        let x = rng.normal(n, 2.0, 0.5, DType::F64, &Device::Cpu).unwrap().to_vec1::<f64>().unwrap();
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 2.0).abs() < 0.01, "{mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.01, "{var}");
        let u = rng.uniform(n, -3.0, 1.0, DType::F64, &Device::Cpu).unwrap().to_vec1::<f64>().unwrap();
        assert!(u.iter().all(|&v| (-3.0..1.0).contains(&v)));
        let mean = u.iter().sum::<f64>() / n as f64;
        assert!((mean + 1.0).abs() < 0.02, "{mean}");
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut rng = SeededRng::new(0);
        assert!(rng.normal(2, 0.0, -1.0, DType::F32, &Device::Cpu).is_err());
        assert!(rng.uniform(2, 1.0, 0.0, DType::F32, &Device::Cpu).is_err());
        assert!(rng.normal(2, 0.0, 1.0, DType::U8, &Device::Cpu).is_err());
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = SeededRng::new(5).permutation(100);
        assert_ne!(p, (0..100).collect::<Vec<_>>());
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
