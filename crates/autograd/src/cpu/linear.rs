//! The affine map `y = x·Wᵀ + b` of a linear layer on the CPU (PyTorch's `F.linear`), with its
//! gradients laid out like the parameters: `∂W = gᵀ·x` comes out `[out, in]` like `W`, so the
//! optimizer reads it in order.

use super::{gemm, par_for, product, Float, Mat};

/// `x` is `[n, fan_in]`, `w` is `[fan_out, fan_in]`, `bias` is `[fan_out]`: `[n, fan_out]`,
/// through a ReLU when `relu`.
pub(crate) fn forward<T: Float>(
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    n: usize,
    fan_in: usize,
    fan_out: usize,
    relu: bool,
) -> Vec<T> {
    let (x, wt, parallel) =
        (Mat::rows(x, n, fan_in), Mat::transposed(w, fan_out, fan_in), par_for(n, fan_out, fan_in));
    let mut y = match bias {
        Some(b) => {
            // The bias in every row: a block copy per row when rows are long (an iterator over
            // `cycle` goes element by element: a sixth of a small MLP's step), element by
            // element when they are short (a copy call per row of one element costs more).
            let mut y: Vec<T> = Vec::with_capacity(n * fan_out);
            if fan_out >= 16 {
                (0..n).for_each(|_| y.extend_from_slice(b));
            } else {
                y.extend((0..n * fan_out).map(|i| b[i % fan_out]));
            }
            gemm(&mut y, x, wt, true, parallel);
            y
        }
        None => product(x, wt, parallel),
    };
    if relu {
        super::conv::relu_in_place(&mut y);
    }
    y
}

/// `∂x = g·W`: `[n, fan_in]`.
pub(crate) fn grad_input<T: Float>(g: &[T], w: &[T], n: usize, fan_in: usize, fan_out: usize) -> Vec<T> {
    product(Mat::rows(g, n, fan_out), Mat::rows(w, fan_out, fan_in), par_for(n, fan_in, fan_out))
}

/// `∂W = gᵀ·x`: `[fan_out, fan_in]`.
pub(crate) fn grad_weight<T: Float>(g: &[T], x: &[T], n: usize, fan_in: usize, fan_out: usize) -> Vec<T> {
    product(Mat::transposed(g, n, fan_out), Mat::rows(x, n, fan_in), par_for(fan_out, fan_in, n))
}

/// `(∂x, ∂W)` together (one parallel job, each product whole on a thread where the threads
/// allow; see [`super::products`]).
pub(crate) fn grad_input_and_weight<T: Float>(
    g: &[T],
    w: &[T],
    x: &[T],
    n: usize,
    fan_in: usize,
    fan_out: usize,
) -> (Vec<T>, Vec<T>) {
    let mut both = super::products(&[
        (Mat::rows(g, n, fan_out), Mat::rows(w, fan_out, fan_in)),
        (Mat::transposed(g, n, fan_out), Mat::rows(x, n, fan_in)),
    ]);
    let gw = both.pop().unwrap_or_default();
    (both.pop().unwrap_or_default(), gw)
}

/// `∂b = Σ_rows g`: `[fan_out]`.
pub(crate) fn grad_bias<T: Float>(g: &[T], n: usize, fan_out: usize) -> Vec<T> {
    if n == 0 {
        return vec![T::ZERO; fan_out];
    }
    let mut gb = g[..fan_out].to_vec();
    for row in g.chunks_exact(fan_out).skip(1) {
        for (a, &v) in gb.iter_mut().zip(row) {
            *a += v;
        }
    }
    gb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_gradients_match_the_definitions() {
        let (n, fi, fo) = (5, 4, 3);
        let x: Vec<f64> = (0..n * fi).map(|i| (i as f64 * 0.3).sin()).collect();
        let w: Vec<f64> = (0..fo * fi).map(|i| (i as f64 * 0.7).cos()).collect();
        let b = [0.5, -1.0, 2.0];
        let g: Vec<f64> = (0..n * fo).map(|i| (i as f64 * 1.1).sin()).collect();
        let y = forward(&x, &w, Some(&b), n, fi, fo, false);
        let r = forward(&x, &w, Some(&b), n, fi, fo, true);
        assert!(r.iter().zip(&y).all(|(r, y)| *r == y.max(0.0)));
        for r in 0..n {
            for o in 0..fo {
                let e: f64 = (0..fi).map(|i| x[r * fi + i] * w[o * fi + i]).sum::<f64>() + b[o];
                assert!((y[r * fo + o] - e).abs() < 1e-12);
            }
        }
        let gx = grad_input(&g, &w, n, fi, fo);
        let gw = grad_weight(&g, &x, n, fi, fo);
        assert_eq!(grad_input_and_weight(&g, &w, &x, n, fi, fo), (gx.clone(), gw.clone()));
        let gb = grad_bias(&g, n, fo);
        for r in 0..n {
            for i in 0..fi {
                let e: f64 = (0..fo).map(|o| g[r * fo + o] * w[o * fi + i]).sum();
                assert!((gx[r * fi + i] - e).abs() < 1e-12);
            }
        }
        for o in 0..fo {
            for i in 0..fi {
                let e: f64 = (0..n).map(|r| g[r * fo + o] * x[r * fi + i]).sum();
                assert!((gw[o * fi + i] - e).abs() < 1e-12);
            }
            let e: f64 = (0..n).map(|r| g[r * fo + o]).sum();
            assert!((gb[o] - e).abs() < 1e-12);
        }
    }
}
