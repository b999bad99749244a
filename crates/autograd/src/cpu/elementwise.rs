//! Element-wise kernels in one pass over memory, in parallel chunks.

use std::mem::MaybeUninit;

use taper_tensor::parallel::{self, pieces};

use super::simd::dispatch;
use super::{written, Float};

/// Elements per parallel task: large enough that splitting pays.
const CHUNK: usize = 1 << 15;

/// ReLU's backward from its output: `g` where `out > 0`, else 0.
pub(crate) fn relu_backward<T: Float>(out: &[T], g: &[T]) -> Vec<T> {
    // SAFETY: each chunk's loop writes every element of it.
    unsafe {
        written(
            out.len(),
            CHUNK,
            || (),
            |_, task, gx| {
                let (out, g) = (&out[task * CHUNK..][..gx.len()], &g[task * CHUNK..][..gx.len()]);
                for ((d, &o), &g) in gx.iter_mut().zip(out).zip(g) {
                    d.write(if o > T::ZERO { g } else { T::ZERO });
                }
            },
        )
    }
}

/// ReLU: `max(x, 0)` (NaN stays NaN, as PyTorch's).
pub(crate) fn relu<T: Float>(x: &[T]) -> Vec<T> {
    // SAFETY: each chunk's loop writes every element of it.
    unsafe {
        written(
            x.len(),
            CHUNK,
            || (),
            |_, task, y| {
                let x = &x[task * CHUNK..][..y.len()];
                for (d, &v) in y.iter_mut().zip(x) {
                    d.write(if v < T::ZERO { T::ZERO } else { v });
                }
            },
        )
    }
}

/// GELU, exact: `(x·Φ(x), Φ(x) + x·φ(x))`, the value and its derivative, in one parallel pass
/// (`Φ` the standard normal CDF, `φ` its density; see [`Float::normal_cdf_pdf`]). The derivative
/// is kept for the backward pass, which is then one multiplication.
pub(crate) fn gelu_erf<T: Float>(x: &[T]) -> (Vec<T>, Vec<T>) {
    let n = x.len();
    let (mut y, mut d) = (Vec::<T>::with_capacity(n), Vec::<T>::with_capacity(n));
    let (ys, ds) =
        (pieces(&mut y.spare_capacity_mut()[..n], CHUNK), pieces(&mut d.spare_capacity_mut()[..n], CHUNK));
    parallel::for_each(ys.len(), |task| {
        let (Some(y), Some(d)) = (ys.take(task), ds.take(task)) else { return };
        let x = &x[task * CHUNK..][..y.len()];
        dispatch!(for ((y, d), &v) in y.iter_mut().zip(d.iter_mut()).zip(x) {
            let (cdf, pdf) = v.normal_cdf_pdf();
            y.write(v * cdf);
            d.write(cdf + v * pdf);
        })
    });
    // SAFETY: the pieces cover `0..n` and each task wrote every element of its two pieces.
    unsafe {
        y.set_len(n);
        d.set_len(n);
    }
    (y, d)
}

/// `g·d` element-wise (a backward rule whose derivative the forward pass kept).
pub(crate) fn mul<T: Float>(d: &[T], g: &[T]) -> Vec<T> {
    // SAFETY: each chunk's loop writes every element of it.
    unsafe {
        written(
            d.len(),
            CHUNK,
            || (),
            |_, task, gx| {
                let n = gx.len();
                mul_into(&d[task * CHUNK..][..n], &g[task * CHUNK..][..n], gx)
            },
        )
    }
}

/// Writes `g·d` into every element of `out`.
fn mul_into<T: Float>(d: &[T], g: &[T], out: &mut [MaybeUninit<T>]) {
    dispatch!(for ((o, &d), &g) in out.iter_mut().zip(d).zip(g) {
        o.write(g * d);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_and_its_backward() {
        let n = 3 * CHUNK + 5;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let y = relu(&x);
        assert!(y.iter().zip(&x).all(|(&y, &x)| y == x.max(0.0)));
        let g: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let gx = relu_backward(&y, &g);
        assert!(gx.iter().zip(&x).zip(&g).all(|((&d, &x), &g)| d == if x > 0.0 { g } else { 0.0 }));
        assert!(relu(&[f64::NAN])[0].is_nan());
    }

    #[test]
    fn gelu_and_its_derivative_in_both_precisions() {
        let n = 2 * CHUNK + 7;
        let x: Vec<f64> = (0..n).map(|i| (i as f64 - n as f64 / 2.0) / 4000.0).collect();
        let (y, d) = gelu_erf(&x);
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let (y32, d32) = gelu_erf(&x32);
        for i in 0..n {
            let v = x[i];
            let cdf = 0.5 + 0.5 * candle_core::cpu::erf::erf_f64(v * std::f64::consts::FRAC_1_SQRT_2);
            let pdf = (-0.5 * v * v).exp() / (2.0 * std::f64::consts::PI).sqrt();
            assert!((y[i] - v * cdf).abs() < 1e-15 && (d[i] - (cdf + v * pdf)).abs() < 1e-15, "x = {v}");
            assert!((y32[i] as f64 - v * cdf).abs() < 1e-6, "f32 x = {v}: {} vs {}", y32[i], v * cdf);
            assert!((d32[i] as f64 - (cdf + v * pdf)).abs() < 1e-6, "f32 x = {v}");
        }
        let g: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
        assert!(mul(&d32, &g).iter().zip(&d32).zip(&g).all(|((o, d), g)| *o == d * g));
    }
}
