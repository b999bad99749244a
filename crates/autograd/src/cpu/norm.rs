//! Layer norm on the CPU, one pass per row over rows of length `d`.
//!
//! Forward: `x̂ = (x - mean x)·r`, `r = 1/√(var x + ε)` (the biased variance, as PyTorch's),
//! `y = x̂·w + b`; row sums in the element type, in vector lanes. Backward: `∂x = r·(ĝ - mean ĝ - x̂·mean(ĝ·x̂))` with `ĝ = g·w`,
//! `∂w = Σ_rows g·x̂`, `∂b = Σ_rows g`.

use std::mem::MaybeUninit;

use taper_tensor::parallel::{self, for_each_chunk_mut, pieces};

use super::simd::{dispatch, sum_map, sum_zip};
use super::Float;

/// Rows per parallel task, at least 16K elements each.
fn rows_per_task(d: usize) -> usize {
    (16_384 / d.max(1)).max(1)
}

/// `(y, x̂, r)` for rows of `d` elements of `x`; `w` and `b` are `[d]` or empty (none).
pub(crate) fn layer_norm<T: Float>(
    x: &[T],
    w: &[T],
    b: &[T],
    d: usize,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (n, rows, k) = (x.len(), x.len() / d.max(1), rows_per_task(d));
    let (mut y, mut xhat, mut rstd) =
        (Vec::<T>::with_capacity(n), Vec::<T>::with_capacity(n), Vec::<T>::with_capacity(rows));
    let ys = pieces(&mut y.spare_capacity_mut()[..n], k * d);
    let xs = pieces(&mut xhat.spare_capacity_mut()[..n], k * d);
    let rs = pieces(&mut rstd.spare_capacity_mut()[..rows], k);
    parallel::for_each(ys.len(), |task| {
        let (Some(y), Some(xh), Some(r)) = (ys.take(task), xs.take(task), rs.take(task)) else { return };
        let x = &x[task * k * d..][..y.len()];
        layer_norm_rows(x, w, b, d, eps, y, xh, r);
    });
    // SAFETY: the pieces cover every element, and `layer_norm_rows` wrote each of its rows.
    unsafe {
        y.set_len(n);
        xhat.set_len(n);
        rstd.set_len(rows);
    }
    (y, xhat, rstd)
}

/// [`layer_norm`] on consecutive rows, writing every element of `y`, `xh` and `r`.
#[allow(clippy::too_many_arguments)]
fn layer_norm_rows<T: Float>(
    x: &[T],
    w: &[T],
    b: &[T],
    d: usize,
    eps: f64,
    y: &mut [MaybeUninit<T>],
    xh: &mut [MaybeUninit<T>],
    r: &mut [MaybeUninit<T>],
) {
    let inv_d = 1.0 / d as f64;
    dispatch!(for (((x, y), xh), r) in
        x.chunks(d).zip(y.chunks_mut(d)).zip(xh.chunks_mut(d)).zip(r.iter_mut())
    {
        let mean = sum_map(x, |v| v).to_f64() * inv_d;
        let m = T::from_f64(mean);
        let var = sum_map(x, |v| (v - m) * (v - m)).to_f64() * inv_d;
        let rt = T::from_f64(1.0 / (var + eps).sqrt());
        r.write(rt);
        for (xh, &v) in xh.iter_mut().zip(x) {
            xh.write((v - m) * rt);
        }
        // SAFETY: every element of `xh` was just written.
        let xh = unsafe { &*(xh as *const [MaybeUninit<T>] as *const [T]) };
        match (w.is_empty(), b.is_empty()) {
            (false, false) => {
                for (((y, &h), &w), &b) in y.iter_mut().zip(xh).zip(w).zip(b) {
                    y.write(h * w + b);
                }
            }
            (false, true) => {
                for ((y, &h), &w) in y.iter_mut().zip(xh).zip(w) {
                    y.write(h * w);
                }
            }
            (true, false) => {
                for ((y, &h), &b) in y.iter_mut().zip(xh).zip(b) {
                    y.write(h + b);
                }
            }
            (true, true) => {
                for (y, &h) in y.iter_mut().zip(xh) {
                    y.write(h);
                }
            }
        }
    })
}

/// One task's column sums `(Σ g·x̂, Σ g)`, in f64.
type ColumnSums = (Vec<f64>, Vec<f64>);

/// `(∂x, Σ g·x̂, Σ g)` for rows of `d` elements: `xhat` and `g` are `[rows·d]`, `rstd` is
/// `[rows]`, `w` is `[d]` (or empty: no weight); the column sums (the weight's and the bias's
/// gradients) are made per task in f64 and added up at the end, in task order.
pub(crate) fn layer_norm_backward<T: Float>(
    xhat: &[T],
    rstd: &[T],
    w: &[T],
    g: &[T],
    d: usize,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut gx = vec![T::ZERO; xhat.len()];
    let k = rows_per_task(d);
    // Each task's column sums in its own slot, added in task order at the end: the same bits
    // whichever task finishes first and however many threads there are.
    let tasks = xhat.len().div_ceil((d * k).max(1));
    let partials: Vec<std::sync::Mutex<Option<ColumnSums>>> =
        (0..tasks).map(|_| std::sync::Mutex::new(None)).collect();
    for_each_chunk_mut(&mut gx, d * k, |ci, out| {
        let (mut gw, mut gb) = (vec![0.0f64; d], vec![0.0f64; d]);
        let (start, len) = (ci * k * d, out.len());
        let (xh, g, r) = (&xhat[start..start + len], &g[start..start + len], &rstd[ci * k..]);
        backward_rows(xh, r, w, g, d, out, &mut gw, &mut gb);
        // A poisoned lock means another task panicked, which the pool reports.
        if let Some(Ok(mut slot)) = partials.get(ci).map(|m| m.lock()) {
            *slot = Some((gw, gb));
        }
    });
    let (mut gw, mut gb) = (vec![0.0f64; d], vec![0.0f64; d]);
    for (pw, pb) in partials.into_iter().filter_map(|m| m.into_inner().ok().flatten()) {
        gw.iter_mut().zip(&pw).for_each(|(a, b)| *a += b);
        gb.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
    }
    (gx, gw.into_iter().map(T::from_f64).collect(), gb.into_iter().map(T::from_f64).collect())
}

/// [`layer_norm_backward`] on consecutive rows: writes `out`, adds to the column sums.
#[allow(clippy::too_many_arguments)]
fn backward_rows<T: Float>(
    xhat: &[T],
    rstd: &[T],
    w: &[T],
    g: &[T],
    d: usize,
    out: &mut [T],
    gw: &mut [f64],
    gb: &mut [f64],
) {
    let inv_d = 1.0 / d as f64;
    dispatch!(for (((xh, gr), row), &r) in xhat.chunks(d).zip(g.chunks(d)).zip(out.chunks_mut(d)).zip(rstd) {
        // ĝ = g·w, kept in `row` until the row's means are known.
        if w.is_empty() {
            row.copy_from_slice(gr);
        } else {
            for ((o, &g), &w) in row.iter_mut().zip(gr).zip(w) {
                *o = g * w;
            }
        }
        let (sum_g, sum_gx) = (sum_map(row, |g| g).to_f64(), sum_zip(row, xh, |g, x| g * x).to_f64());
        let (mg, mgx) = (T::from_f64(sum_g * inv_d), T::from_f64(sum_gx * inv_d));
        for (o, &x) in row.iter_mut().zip(xh) {
            *o = r * (*o - mg - x * mgx);
        }
        for (((a, b), &g), &x) in gw.iter_mut().zip(gb.iter_mut()).zip(gr).zip(xh) {
            *a += (g * x).to_f64();
            *b += g.to_f64();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many tasks: every row's gradient and the column sums as plain loops give them.
    #[test]
    fn every_task_adds_its_rows() {
        let d = 8;
        let rows = 3 * rows_per_task(d) + 5;
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

    /// Many tasks, with and without weight and bias: the forward pass as plain loops give it.
    #[test]
    fn forward_rows_of_every_task() {
        let d = 16;
        let rows = 2 * rows_per_task(d) + 3;
        let x: Vec<f64> = (0..rows * d).map(|k| ((k * 37 % 101) as f64 - 50.0) / 7.0).collect();
        let w: Vec<f64> = (0..d).map(|j| 0.5 + j as f64 / 8.0).collect();
        let b: Vec<f64> = (0..d).map(|j| j as f64 - 3.0).collect();
        for (w, b) in [(&w[..], &b[..]), (&w[..], &[][..]), (&[][..], &b[..]), (&[][..], &[][..])] {
            let (y, xhat, rstd) = layer_norm(&x, w, b, d, 1e-5);
            for r in 0..rows {
                let row = &x[r * d..(r + 1) * d];
                let mean = row.iter().sum::<f64>() / d as f64;
                let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
                let rs = 1.0 / (var + 1e-5).sqrt();
                assert!((rstd[r] - rs).abs() < 1e-12);
                for j in 0..d {
                    let h = (row[j] - mean) * rs;
                    let want = h * w.get(j).copied().unwrap_or(1.0) + b.get(j).copied().unwrap_or(0.0);
                    assert!(
                        (xhat[r * d + j] - h).abs() < 1e-12 && (y[r * d + j] - want).abs() < 1e-12,
                        "row {r} col {j}"
                    );
                }
            }
        }
    }
}
