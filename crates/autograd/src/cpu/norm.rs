//! Layer norm's input gradient, one pass per row: `∂x = r·(ĝ - mean ĝ - x̂·mean(ĝ·x̂))` with
//! `ĝ = g·w`, over rows of length `d`.

use taper_tensor::parallel::for_each_chunk_mut;

use super::Float;

/// `(∂x, Σ g·x̂, Σ g)` for rows of `d` elements: `xhat` and `g` are `[rows·d]`, `rstd` is
/// `[rows]`, `w` is `[d]` (or empty: no weight); the column sums (the weight's and the bias's
/// gradients) are made per task in f64 and added up at the end.
pub(crate) fn layer_norm_backward<T: Float>(
    xhat: &[T],
    rstd: &[T],
    w: &[T],
    g: &[T],
    d: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut gx = vec![T::ZERO; xhat.len()];
    let sums = std::sync::Mutex::new((vec![0.0f64; d], vec![0.0f64; d]));
    let rows_per_task = (16_384 / d.max(1)).max(1);
    let inv_d = 1.0 / d.max(1) as f64;
    for_each_chunk_mut(&mut gx, d * rows_per_task, |ci, out| {
        let (mut gw, mut gb) = (vec![0.0f64; d], vec![0.0f64; d]);
        for (rr, row) in out.chunks_mut(d).enumerate() {
            let r = ci * rows_per_task + rr;
            let (xh, gr) = (&xhat[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
            for j in 0..d {
                let gh = if w.is_empty() { gr[j] } else { gr[j] * w[j] };
                sum_g += gh.to_f64();
                sum_gx += (gh * xh[j]).to_f64();
            }
            let (mg, mgx, r_std) = (T::from_f64(sum_g * inv_d), T::from_f64(sum_gx * inv_d), rstd[r]);
            for j in 0..d {
                let gh = if w.is_empty() { gr[j] } else { gr[j] * w[j] };
                row[j] = r_std * (gh - mg - xh[j] * mgx);
                gw[j] += (gr[j] * xh[j]).to_f64();
                gb[j] += gr[j].to_f64();
            }
        }
        // A poisoned lock means another task panicked, which the pool reports.
        if let Ok(mut s) = sums.lock() {
            s.0.iter_mut().zip(&gw).for_each(|(a, b)| *a += b);
            s.1.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
        }
    });
    let (gw, gb) = sums.into_inner().unwrap_or_default();
    (gx, gw.into_iter().map(T::from_f64).collect(), gb.into_iter().map(T::from_f64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many tasks: every row's gradient and the column sums as plain loops give them.
    #[test]
    fn every_task_adds_its_rows() {
        let d = 8;
        let rows = 3 * (16_384 / d) + 5;
        let f = |k: usize, a: usize, b: usize| ((k * a % b) as f64 - (b / 2) as f64) / b as f64;
        let xhat: Vec<f64> = (0..rows * d).map(|k| f(k, 37, 101)).collect();
        let g: Vec<f64> = (0..rows * d).map(|k| f(k, 13, 17)).collect();
        let rstd: Vec<f64> = (0..rows).map(|r| 1.0 + f(r, 7, 11)).collect();
        let w: Vec<f64> = (0..d).map(|j| 0.5 + j as f64 / 8.0).collect();
        let (gx, gw, gb) = layer_norm_backward(&xhat, &rstd, &w, &g, d);
        let (mut want_w, mut want_b) = (vec![0.0; d], vec![0.0; d]);
        for r in 0..rows {
            let (xh, gr) = (&xhat[r * d..(r + 1) * d], &g[r * d..(r + 1) * d]);
            let gh: Vec<f64> = (0..d).map(|j| gr[j] * w[j]).collect();
            let mg = gh.iter().sum::<f64>() / d as f64;
            let mgx = (0..d).map(|j| gh[j] * xh[j]).sum::<f64>() / d as f64;
            for j in 0..d {
                let want = rstd[r] * (gh[j] - mg - xh[j] * mgx);
                assert!((gx[r * d + j] - want).abs() < 1e-12, "row {r} col {j}");
                want_w[j] += gr[j] * xh[j];
                want_b[j] += gr[j];
            }
        }
        assert!(gw.iter().zip(&want_w).all(|(a, b)| (a - b).abs() < 1e-9), "{gw:?} {want_w:?}");
        assert!(gb.iter().zip(&want_b).all(|(a, b)| (a - b).abs() < 1e-9));
    }
}
