//! Causal softmax over the last dimension of `[.., T, T]` attention scores, row by row: row `i`
//! of each matrix sees only positions `j ≤ i` (the mask is applied while the row is in cache; no
//! masked tensor is built).

use taper_tensor::parallel::for_each_chunk_mut;

use super::Float;

/// Rows per parallel task, at least 16K elements each.
fn rows_per_task(t: usize) -> usize {
    (16_384 / t.max(1)).max(1)
}

/// `y = softmax(x)` over each row of length `t` with positions `j > i` (row `i` of its matrix)
/// set to 0; `x.len()` is a multiple of `t·t`.
pub(crate) fn causal_softmax<T: Float>(x: &[T], t: usize) -> Vec<T> {
    let mut y = vec![T::ZERO; x.len()];
    let k = rows_per_task(t);
    for_each_chunk_mut(&mut y, t * k, |ci, out| {
        for (rr, row) in out.chunks_mut(t).enumerate() {
            let r = ci * k + rr;
            let i = r % t;
            let xs = &x[r * t..r * t + i + 1];
            let m = xs.iter().copied().fold(xs[0], |a, b| if b > a { b } else { a });
            let mut sum = T::ZERO;
            for (yj, &xj) in row[..=i].iter_mut().zip(xs) {
                let e = (xj - m).exp();
                *yj = e;
                sum += e;
            }
            let inv = T::ONE / sum;
            for yj in &mut row[..=i] {
                *yj *= inv;
            }
        }
    });
    y
}

/// Softmax's backward on the same rows: `∂x = y·(g - Σⱼ g·y)` (0 where `y` is masked).
pub(crate) fn causal_softmax_backward<T: Float>(y: &[T], g: &[T], t: usize) -> Vec<T> {
    let mut gx = vec![T::ZERO; y.len()];
    let k = rows_per_task(t);
    for_each_chunk_mut(&mut gx, t * k, |ci, out| {
        for (rr, row) in out.chunks_mut(t).enumerate() {
            let r = ci * k + rr;
            let i = r % t;
            let (ys, gs) = (&y[r * t..r * t + i + 1], &g[r * t..r * t + i + 1]);
            let mut dot = T::ZERO;
            for (&yj, &gj) in ys.iter().zip(gs) {
                dot += yj * gj;
            }
            for ((o, &yj), &gj) in row[..=i].iter_mut().zip(ys).zip(gs) {
                *o = yj * (gj - dot);
            }
        }
    });
    gx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many parallel tasks (rows beyond one task's share): every row as a plain loop computes it.
    #[test]
    fn every_row_of_every_task_is_masked_and_normalized() {
        let t = 8;
        let rows = 3 * rows_per_task(t) + 5;
        let x: Vec<f64> = (0..rows * t).map(|k| ((k * 37 % 101) as f64 - 50.0) / 10.0).collect();
        let g: Vec<f64> = (0..rows * t).map(|k| ((k * 13 % 17) as f64 - 8.0) / 4.0).collect();
        let y = causal_softmax(&x, t);
        let gx = causal_softmax_backward(&y, &g, t);
        for r in 0..rows {
            let i = r % t;
            let row = &x[r * t..(r + 1) * t];
            let m = row[..=i].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row[..=i].iter().map(|v| (v - m).exp()).sum();
            let want: Vec<f64> =
                (0..t).map(|j| if j <= i { (row[j] - m).exp() / sum } else { 0.0 }).collect();
            let got = &y[r * t..(r + 1) * t];
            assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-15), "row {r}");
            let dot: f64 = (0..t).map(|j| want[j] * g[r * t + j]).sum();
            for j in 0..t {
                let w = want[j] * (g[r * t + j] - dot);
                assert!((gx[r * t + j] - w).abs() < 1e-14, "row {r} col {j}");
            }
        }
    }
}
