//! Element-wise kernels in one pass over memory, in parallel chunks.

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

/// `1/√(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// GELU, exact: `(x·Φ(x), Φ(x))` with `Φ(x) = (1 + erf(x/√2))/2` (erf in f64), the CDF kept for
/// the backward pass so that it needs no erf.
pub(crate) fn gelu_erf<T: Float>(x: &[T]) -> (Vec<T>, Vec<T>) {
    // SAFETY: each chunk's loop writes every element of it.
    let cdf: Vec<T> = unsafe {
        written(
            x.len(),
            CHUNK,
            || (),
            |_, task, c| {
                let x = &x[task * CHUNK..][..c.len()];
                for (d, &v) in c.iter_mut().zip(x) {
                    let v = v.to_f64();
                    d.write(T::from_f64(
                        0.5 + 0.5 * candle_core::cpu::erf::erf_f64(v * std::f64::consts::FRAC_1_SQRT_2),
                    ));
                }
            },
        )
    };
    // SAFETY: each chunk's loop writes every element of it.
    let y = unsafe {
        written(
            x.len(),
            CHUNK,
            || (),
            |_, task, y| {
                let (x, c) = (&x[task * CHUNK..][..y.len()], &cdf[task * CHUNK..][..y.len()]);
                for ((d, &v), &c) in y.iter_mut().zip(x).zip(c) {
                    d.write(v * c);
                }
            },
        )
    };
    (y, cdf)
}

/// GELU's backward from its input and CDF: `g·(Φ(x) + x·φ(x))`, `φ(x) = e^(-x²/2)/√(2π)`.
pub(crate) fn gelu_erf_backward<T: Float>(x: &[T], cdf: &[T], g: &[T]) -> Vec<T> {
    // SAFETY: each chunk's loop writes every element of it.
    unsafe {
        written(
            x.len(),
            CHUNK,
            || (),
            |_, task, gx| {
                let n = gx.len();
                let (x, c, g) = (&x[task * CHUNK..][..n], &cdf[task * CHUNK..][..n], &g[task * CHUNK..][..n]);
                for (((d, &v), &c), &g) in gx.iter_mut().zip(x).zip(c).zip(g) {
                    let v64 = v.to_f64();
                    let pdf = T::from_f64((-0.5 * v64 * v64).exp() * INV_SQRT_2PI);
                    d.write(g * (c + v * pdf));
                }
            },
        )
    }
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
}
