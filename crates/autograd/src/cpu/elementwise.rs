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
