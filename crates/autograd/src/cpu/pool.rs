//! 2-D pooling on the CPU, plane by plane in parallel.
//!
//! Max pooling saves, for every output, the index of its input element inside the plane (the
//! first maximal one in row-major order, or a NaN, as PyTorch's), so that the backward pass is one
//! scatter of the output gradient: no window is scanned twice and no mask is built.

use taper_tensor::parallel::{self, pieces};

use super::{filled, threads, Float};

/// The shapes of one pooling: `planes = batch·channels` planes of `h × w`, `k × k` windows moved
/// by `stride`, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
}

impl Geom {
    pub(crate) fn oh(&self) -> usize {
        (self.h - self.k) / self.stride + 1
    }
    pub(crate) fn ow(&self) -> usize {
        (self.w - self.k) / self.stride + 1
    }
    /// Planes per parallel task: a few tasks per thread, not one per plane.
    fn planes_per_task(&self) -> usize {
        self.planes.div_ceil(4 * threads()).max(1)
    }
}

/// Max pooling of `x` (`[planes, h, w]`): the maxima `[planes, o_h, o_w]` and, for each, the index
/// of the input element inside its plane.
pub(crate) fn max_forward<T: Float>(g: &Geom, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let (oh, ow, hw) = (g.oh(), g.ow(), g.h * g.w);
    let n = g.planes * oh * ow;
    let mut out = vec![T::ZERO; n];
    let mut idx = vec![0u32; n];
    let per = g.planes_per_task();
    let (outs, idxs) = (pieces(&mut out, per * oh * ow), pieces(&mut idx, per * oh * ow));
    parallel::for_each(outs.len(), |t| {
        let (Some(out), Some(idx)) = (outs.take(t), idxs.take(t)) else { return };
        let x = &x[t * per * hw..][..out.len() / (oh * ow).max(1) * hw];
        if g.k == 2 && g.stride == 2 {
            return max_planes_2x2(g, x, out, idx);
        }
        for ((out, idx), x) in out.chunks_mut(oh * ow).zip(idx.chunks_mut(oh * ow)).zip(x.chunks(hw)) {
            for (i, (out, idx)) in out.chunks_mut(ow).zip(idx.chunks_mut(ow)).enumerate() {
                max_row(g, x, i * g.stride * g.w, out, idx);
            }
        }
    });
    drop((outs, idxs));
    (out, idx)
}

/// Whether `v` replaces `best` as a window's maximum: larger, or NaN (PyTorch's rule).
#[inline(always)]
fn beats<T: Float>(v: T, best: T) -> bool {
    v > best || v.is_nan()
}

/// One output row of 2×2, stride-2 pooling from the two input rows starting at `rows`: the first
/// maximum of each row's pair, then of the two, which is the first maximum of the window in
/// row-major order (NaN included). Written for the loop vectorizer: whole slices up front (no
/// bounds checks inside) and selects instead of branches.
#[inline(always)]
fn max_row_2x2<T: Float>(rows: &[T], w: usize, top: usize, out: &mut [T], idx: &mut [u32]) {
    let ow = out.len();
    let (r0, r1) = (&rows[..2 * ow], &rows[w..w + 2 * ow]);
    let idx = &mut idx[..ow];
    let (top, w) = (top as u32, w as u32);
    for j in 0..ow {
        let (a, b, c, d) = (r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]);
        let u = beats(b, a);
        let v = beats(d, c);
        let m0 = if u { b } else { a };
        let m1 = if v { d } else { c };
        let i0 = u32::from(u);
        let i1 = u32::from(v);
        let t = beats(m1, m0);
        out[j] = if t { m1 } else { m0 };
        idx[j] = top + 2 * j as u32 + if t { w + i1 } else { i0 };
    }
}

/// [`max_row_2x2`] over every row of `planes` (`[n, h, w]`), compiled for the widest vector unit
/// the CPU has.
fn max_planes_2x2<T: Float>(g: &Geom, x: &[T], out: &mut [T], idx: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has AVX-512F and BW (checked just above).
            return unsafe { max_planes_2x2_avx512(g, x, out, idx) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { max_planes_2x2_avx2(g, x, out, idx) };
        }
    }
    max_planes_2x2_body(g, x, out, idx)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn max_planes_2x2_avx512<T: Float>(g: &Geom, x: &[T], out: &mut [T], idx: &mut [u32]) {
    max_planes_2x2_body(g, x, out, idx)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_planes_2x2_avx2<T: Float>(g: &Geom, x: &[T], out: &mut [T], idx: &mut [u32]) {
    max_planes_2x2_body(g, x, out, idx)
}

#[inline(always)]
fn max_planes_2x2_body<T: Float>(g: &Geom, x: &[T], out: &mut [T], idx: &mut [u32]) {
    let (oh, ow, hw) = (g.oh(), g.ow(), g.h * g.w);
    for ((out, idx), x) in out.chunks_mut(oh * ow).zip(idx.chunks_mut(oh * ow)).zip(x.chunks(hw)) {
        for (i, (out, idx)) in out.chunks_mut(ow).zip(idx.chunks_mut(ow)).enumerate() {
            let top = 2 * i * g.w;
            max_row_2x2(&x[top..], g.w, top, out, idx);
        }
    }
}

/// One output row of any pooling window, scanning each window in row-major order.
fn max_row<T: Float>(g: &Geom, x: &[T], top: usize, out: &mut [T], idx: &mut [u32]) {
    for (j, (o, ix)) in out.iter_mut().zip(idx.iter_mut()).enumerate() {
        let start = top + j * g.stride;
        let (mut best, mut at) = (x[start], start);
        for row in (start..start + g.k * g.w).step_by(g.w) {
            for (e, &v) in x[row..row + g.k].iter().enumerate() {
                if beats(v, best) {
                    (best, at) = (v, row + e);
                }
            }
        }
        *o = best;
        *ix = at as u32;
    }
}

/// Backward of [`max_forward`]: each output gradient goes to the element its maximum came from
/// (adding up where overlapping windows picked the same element).
pub(crate) fn max_backward<T: Float>(g: &Geom, idx: &[u32], gy: &[T]) -> Vec<T> {
    let (per, hw, o) = (g.planes_per_task(), g.h * g.w, g.oh() * g.ow());
    filled(
        g.planes * hw,
        per * hw,
        || (),
        |_, task, gx| {
            let (idx, gy) = (&idx[task * per * o..], &gy[task * per * o..]);
            for (p, gx) in gx.chunks_mut(hw).enumerate() {
                for (&at, &v) in idx[p * o..][..o].iter().zip(&gy[p * o..][..o]) {
                    gx[at as usize] += v;
                }
            }
        },
    )
}

/// Backward of average pooling: each element of a window gets `g / k²` of the window's output
/// gradient.
pub(crate) fn avg_backward<T: Float>(g: &Geom, gy: &[T]) -> Vec<T> {
    let (per, hw, ow, o) = (g.planes_per_task(), g.h * g.w, g.ow(), g.oh() * g.ow());
    let scale = T::from_f64(1.0 / (g.k * g.k) as f64);
    filled(
        g.planes * hw,
        per * hw,
        || (),
        |_, task, gx| {
            let gy = &gy[task * per * o..];
            for (p, gx) in gx.chunks_mut(hw).enumerate() {
                for (at, &v) in gy[p * o..][..o].iter().enumerate() {
                    let v = v * scale;
                    let start = (at / ow) * g.stride * g.w + (at % ow) * g.stride;
                    for di in 0..g.k {
                        for e in &mut gx[start + di * g.w..][..g.k] {
                            *e += v;
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_picks_the_first_maximum_and_scatters_back() {
        // One 3x4 plane with ties; 2x2 windows, stride 2 (the last row is dropped).
        let x = [1.0f64, 5.0, 2.0, 2.0, 5.0, 0.0, 2.0, 1.0, 9.0, 9.0, 9.0, 9.0];
        let g = Geom { planes: 1, h: 3, w: 4, k: 2, stride: 2 };
        let (out, idx) = max_forward(&g, &x);
        assert_eq!(out, [5.0, 2.0]);
        assert_eq!(idx, [1, 2]);
        assert_eq!(
            max_backward(&g, &idx, &[10.0, 20.0]),
            [0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn max_pool_propagates_nan_and_overlaps_accumulate() {
        let x = [1.0f32, f32::NAN, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let g = Geom { planes: 1, h: 3, w: 3, k: 2, stride: 1 };
        let (out, idx) = max_forward(&g, &x);
        assert!(out[0].is_nan() && out[1].is_nan());
        assert_eq!(&out[2..], [8.0, 9.0]);
        assert_eq!(idx, [1, 1, 7, 8]);
        assert_eq!(
            max_backward(&g, &idx, &[1.0, 2.0, 3.0, 4.0]),
            [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0]
        );
    }

    #[test]
    fn many_planes_split_over_tasks_like_one() {
        let g = Geom { planes: 37, h: 5, w: 6, k: 2, stride: 2 };
        let x: Vec<f64> = (0..g.planes * 30).map(|i| ((i * 7919) % 101) as f64).collect();
        let (out, idx) = max_forward(&g, &x);
        for p in 0..g.planes {
            let one = Geom { planes: 1, ..g };
            let (o1, i1) = max_forward(&one, &x[p * 30..][..30]);
            assert_eq!(&out[p * 6..][..6], &o1[..]);
            assert_eq!(&idx[p * 6..][..6], &i1[..]);
        }
        let gy: Vec<f64> = (0..out.len()).map(|i| i as f64).collect();
        let gx = max_backward(&g, &idx, &gy);
        assert_eq!(gx.iter().sum::<f64>(), gy.iter().sum::<f64>());
        let ga = avg_backward(&g, &gy);
        assert!((ga.iter().sum::<f64>() - gy.iter().sum::<f64>()).abs() < 1e-9);
    }
}
