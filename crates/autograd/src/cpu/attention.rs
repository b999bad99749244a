//! Causal multi-head self-attention on packed projections, fused (flash-attention's
//! `qkvpacked` form, one head at a time): `qkv` is `[B, T, 3C]` (queries, keys, values side by
//! side, each `C = H·d` wide, head `h` in columns `h·d..(h+1)·d`), the output `[B, T, C]`.
//!
//! Per head, with `S = s·Q·Kᵀ` (`s = 1/√d`), row `i` masked to `j ≤ i`:
//! `P = softmax(S)`, `P̃ = P ⊙ M/(1-p)` (dropout mask `M`, all ones without dropout), `Y = P̃·V`.
//! Backward, with `Dᵢ = dYᵢ·Yᵢ`: `dV = P̃ᵀ·dY`, `dP̃ = dY·Vᵀ`,
//! `dS = P ⊙ (dP̃ ⊙ M/(1-p) - D)`, `dQ = s·dS·K`, `dK = s·dSᵀ·Q`.
//!
//! Only the row maxima and the reciprocal row sums are kept between the passes (`2·T` numbers a
//! head); the backward pass recomputes `P` from `Q` and `K`. The dropout mask is a hash of
//! `(seed, head, i, j)`, so the backward pass regenerates it and any device can build the same
//! one ([`dropout_mask`]). Heads run in parallel; each head's products run on one thread in
//! blocks of [`BLOCK`] query rows that stop at the diagonal.

use taper_tensor::parallel::{self, SendPtr};

use super::simd::{dispatch, sum_zip};
use super::{gemm_one, Float, Mat};

/// Query rows per block of a head's products (keys past the block's last row are masked).
const BLOCK: usize = 64;

/// The sizes of a packed attention.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub b: usize,
    pub t: usize,
    pub h: usize,
    pub d: usize,
}

impl Geom {
    fn c(&self) -> usize {
        self.h * self.d
    }
}

/// Dropout on the attention probabilities: probability `p`, masks hashed from `seed`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Dropout {
    pub p: f64,
    pub seed: u64,
}

impl Dropout {
    /// The factor of element `(head, i, j)`: `1/(1-p)` if kept, else 0.
    #[inline(always)]
    fn factor<T: Float>(&self, head: usize, i: usize, j: usize, t: usize, keep_scale: T) -> T {
        // A 32-bit uniform from SplitMix64's finalizer on the element's index.
        let mut z = self.seed ^ (((head * t + i) * t + j) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let threshold = (self.p * 4_294_967_296.0) as u64;
        if (z >> 32) >= threshold {
            keep_scale
        } else {
            T::ZERO
        }
    }

    fn keep_scale<T: Float>(&self) -> T {
        T::from_f64(if self.p < 1.0 { 1.0 / (1.0 - self.p) } else { 0.0 })
    }
}

/// The dropout factors of every head as a `[B, H, T, T]` row-major array (0 above the
/// diagonal): what the fused kernels apply, for the device-generic path.
pub(crate) fn dropout_mask<T: Float>(g: &Geom, drop: &Dropout) -> Vec<T> {
    let (t, ks) = (g.t, drop.keep_scale::<T>());
    let mut m = vec![T::ZERO; g.b * g.h * t * t];
    for (head, plane) in m.chunks_mut(t * t).enumerate() {
        for (i, row) in plane.chunks_mut(t).enumerate() {
            for (j, v) in row[..=i].iter_mut().enumerate() {
                *v = drop.factor(head, i, j, t, ks);
            }
        }
    }
    m
}

/// The views of one head `(bi, hi)` into the packed buffers.
struct Head<'a, T> {
    q: Mat<'a, T>,
    k: Mat<'a, T>,
    v: Mat<'a, T>,
    /// Offset of the head's `[T, d]` block in `[B, T, C]` buffers (row stride `C`).
    out: usize,
    /// Offset of its query block in `[B, T, 3C]` buffers (row stride `3C`).
    packed: usize,
}

fn head<'a, T>(qkv: &'a [T], g: &Geom, n: usize) -> Head<'a, T> {
    let (bi, hi, c) = (n / g.h, n % g.h, g.c());
    let packed = bi * g.t * 3 * c + hi * g.d;
    let view = |off: usize| Mat::strided(&qkv[packed + off..], g.t, g.d, 3 * c, 1);
    Head { q: view(0), k: view(c), v: view(2 * c), out: bi * g.t * c + hi * g.d, packed }
}

/// `S = Q·Kᵀ` of one head into `s` (`[T, T]`, row stride `T`), block by block up to the
/// diagonal (entries past a block's last row are left as they were).
///
/// # Safety
/// `s` must hold `T·T` elements.
unsafe fn scores<T: Float>(s: &mut [T], hd: &Head<'_, T>, t: usize) {
    for r0 in (0..t).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(t);
        let kt = hd.k.rows_range(0, r1).t();
        gemm_one(s.as_mut_ptr().add(r0 * t), t, hd.q.rows_range(r0, r1 - r0), kt, false);
    }
}

/// Vector width of the row loops: a causal row of `i + 1` entries is processed up to the next
/// multiple of it, the entries past `i` masked by selects (not by a shorter loop, which would not
/// vectorize).
const LANES: usize = 16;

/// `(n, masked)`: row `i`'s first `n` entries are processed (`i + 1` rounded up to [`LANES`],
/// within the row); entries `j > i` among them are masked.
#[inline(always)]
fn span(i: usize, t: usize) -> usize {
    (i + 1).next_multiple_of(LANES).min(t)
}

/// `max_{j ≤ i} rowⱼ` over `row[..n]`, masked in lanes.
#[inline(always)]
fn masked_max<T: Float>(row: &[T], i: usize) -> T {
    let mut acc = [row[0]; LANES];
    let chunks = row.chunks_exact(LANES);
    let mut m = row[0];
    for (k, &v) in chunks.remainder().iter().enumerate() {
        let j = row.len() - chunks.remainder().len() + k;
        m = if j <= i && v > m { v } else { m };
    }
    for (c, chunk) in chunks.enumerate() {
        for l in 0..LANES {
            let v = chunk[l];
            acc[l] = if c * LANES + l <= i && v > acc[l] { v } else { acc[l] };
        }
    }
    acc.iter().fold(m, |a, &b| if b > a { b } else { a })
}

/// Row `i` of `P` in place of its scores: `exp(scale·sᵢⱼ - m)·k` for `j ≤ i`, 0 after, over
/// the whole row; returns `Σⱼ exp(scale·sᵢⱼ - m)` (before the factor `k`).
#[inline(always)]
fn exp_row<T: Float>(row: &mut [T], i: usize, scale: T, m: T, k: T) -> T {
    let n = span(i, row.len());
    let (head, tail) = row.split_at_mut(n);
    let mut acc = [T::ZERO; LANES];
    let split = head.len() - head.len() % LANES;
    let (full, rest) = head.split_at_mut(split);
    for (c, chunk) in full.chunks_exact_mut(LANES).enumerate() {
        for l in 0..LANES {
            let e = (chunk[l] * scale - m).exp();
            let e = if c * LANES + l <= i { e } else { T::ZERO };
            acc[l] += e;
            chunk[l] = e * k;
        }
    }
    let mut sum = T::ZERO;
    for (r, v) in rest.iter_mut().enumerate() {
        let e = (*v * scale - m).exp();
        let e = if split + r <= i { e } else { T::ZERO };
        sum += e;
        *v = e * k;
    }
    tail.fill(T::ZERO);
    acc.iter().fold(sum, |a, &b| a + b)
}

/// Row `i` of `s` (`[T, T]`) from scores to probabilities `P̃` (masked, dropped), its scaled
/// maximum and reciprocal sum into `st[2i]`, `st[2i + 1]`.
fn softmax_rows<T: Float>(s: &mut [T], st: &mut [T], t: usize, scale: T, head: usize, drop: Option<Dropout>) {
    let ks = drop.map(|d| d.keep_scale::<T>()).unwrap_or(T::ONE);
    dispatch!(for (i, row) in s.chunks_mut(t).enumerate() {
        let m = masked_max(&row[..span(i, t)], i) * scale;
        let inv = T::ONE / exp_row(row, i, scale, m, T::ONE);
        for v in &mut row[..=i] {
            *v *= inv;
        }
        if let Some(d) = &drop {
            for (j, v) in row[..=i].iter_mut().enumerate() {
                *v *= d.factor(head, i, j, t, ks);
            }
        }
        st[2 * i] = m;
        st[2 * i + 1] = inv;
    })
}

/// The rows of `P` again from the scores in `p` and the forward pass's stats.
fn probability_rows<T: Float>(p: &mut [T], st: &[T], t: usize, scale: T) {
    dispatch!(for (i, row) in p.chunks_mut(t).enumerate() {
        exp_row(row, i, scale, st[2 * i], st[2 * i + 1]);
    })
}

/// `dS = s·P ⊙ (dP̃ ⊙ M/(1-p) - D)` row by row in place of `P` (`p`), `dP̃` in `dp`, with
/// `Dᵢ = dYᵢ·Yᵢ` from the head's blocks of `gy` and `y` (row stride `C`).
#[allow(clippy::too_many_arguments)]
fn score_grad_rows<T: Float>(
    p: &mut [T],
    dp: &[T],
    gy: &[T],
    y: &[T],
    g: &Geom,
    scale: T,
    head: usize,
    drop: Option<Dropout>,
) {
    let (t, c) = (g.t, g.c());
    let ks = drop.map(|d| d.keep_scale::<T>()).unwrap_or(T::ONE);
    dispatch!(for (i, (row, drow)) in p.chunks_mut(t).zip(dp.chunks(t)).enumerate() {
        let dot = sum_zip(&gy[i * c..][..g.d], &y[i * c..][..g.d], |a, b| a * b);
        match &drop {
            Some(d) => {
                for (j, (v, &dpv)) in row[..=i].iter_mut().zip(&drow[..=i]).enumerate() {
                    *v = *v * (dpv * d.factor(head, i, j, t, ks) - dot) * scale;
                }
            }
            None => {
                for (v, &dpv) in row[..=i].iter_mut().zip(&drow[..=i]) {
                    *v = *v * (dpv - dot) * scale;
                }
            }
        }
    })
}

/// The forward pass: `(y [B, T, C], stats [B·H·T·2])`, `stats` holding each row's scaled maximum
/// and reciprocal sum.
pub(crate) fn forward<T: Float>(qkv: &[T], g: &Geom, scale: T, drop: Option<Dropout>) -> (Vec<T>, Vec<T>) {
    let (t, c, heads) = (g.t, g.c(), g.b * g.h);
    let mut y = vec![T::ZERO; g.b * t * c];
    let mut stats = vec![T::ZERO; heads * t * 2];
    let (yp, sp) = (SendPtr(y.as_mut_ptr()), SendPtr(stats.as_mut_ptr()));
    for_each_head(heads, t, |n, s, _| {
        // The whole pointers, not their fields (closures capture fields one by one).
        let (yp, sp) = (yp, sp);
        let hd = head(qkv, g, n);
        // SAFETY: `s` is T·T long; each head writes its own column block of `y` and its own
        // `2·T` stats (disjoint across heads); the views fit their slices.
        unsafe {
            scores(s, &hd, t);
            let st = std::slice::from_raw_parts_mut(sp.0.add(n * t * 2), t * 2);
            softmax_rows(s, st, t, scale, n, drop);
            for r0 in (0..t).step_by(BLOCK) {
                let r1 = (r0 + BLOCK).min(t);
                let p = Mat::strided(&s[r0 * t..], r1 - r0, r1, t, 1);
                gemm_one(yp.0.add(hd.out + r0 * c), c, p, hd.v.rows_range(0, r1), false);
            }
        }
    });
    (y, stats)
}

/// The backward pass: `∂qkv` (`[B, T, 3C]`) from the output gradient `gy` (`[B, T, C]`), the
/// inputs, the output and the forward pass's stats.
pub(crate) fn backward<T: Float>(
    qkv: &[T],
    y: &[T],
    stats: &[T],
    gy: &[T],
    g: &Geom,
    scale: T,
    drop: Option<Dropout>,
) -> Vec<T> {
    let (t, c, heads) = (g.t, g.c(), g.b * g.h);
    let mut gqkv = vec![T::ZERO; qkv.len()];
    let gp = SendPtr(gqkv.as_mut_ptr());
    for_each_head(heads, t, |n, p, dp| {
        let gp = &gp;
        let hd = head(qkv, g, n);
        let dy = Mat::strided(&gy[hd.out..], t, g.d, c, 1);
        let st = &stats[n * t * 2..(n + 1) * t * 2];
        let ks = drop.map(|d| d.keep_scale::<T>()).unwrap_or(T::ONE);
        // SAFETY: `p` and `dp` are T·T long; each head writes its own column blocks of `gqkv`
        // (disjoint across heads); the views fit their slices.
        unsafe {
            scores(p, &hd, t);
            probability_rows(p, st, t, scale);
            let (dq, dk, dv) = (gp.0.add(hd.packed), gp.0.add(hd.packed + c), gp.0.add(hd.packed + 2 * c));
            // dV = P̃ᵀ·dY.
            let pt = match &drop {
                Some(d) => {
                    for (i, (row, out)) in p.chunks(t).zip(dp.chunks_mut(t)).enumerate() {
                        for (j, (o, &v)) in out.iter_mut().zip(row).enumerate() {
                            *o = if j <= i { v * d.factor(n, i, j, t, ks) } else { T::ZERO };
                        }
                    }
                    Mat::strided(&dp[..], t, t, t, 1).t()
                }
                None => Mat::strided(&p[..], t, t, t, 1).t(),
            };
            gemm_one(dv, 3 * c, pt, dy, false);
            // dP̃ = dY·Vᵀ, block by block up to the diagonal.
            for r0 in (0..t).step_by(BLOCK) {
                let r1 = (r0 + BLOCK).min(t);
                let vt = hd.v.rows_range(0, r1).t();
                gemm_one(dp.as_mut_ptr().add(r0 * t), t, dy.rows_range(r0, r1 - r0), vt, false);
            }
            // dS = s·P ⊙ (dP̃ ⊙ M/(1-p) - D), in place of P.
            score_grad_rows(p, dp, &gy[hd.out..], &y[hd.out..], g, scale, n, drop);
            // dQ = dS·K block by block; dK = dSᵀ·Q.
            for r0 in (0..t).step_by(BLOCK) {
                let r1 = (r0 + BLOCK).min(t);
                let ds = Mat::strided(&p[r0 * t..], r1 - r0, r1, t, 1);
                gemm_one(dq.add(r0 * 3 * c), 3 * c, ds, hd.k.rows_range(0, r1), false);
            }
            gemm_one(dk, 3 * c, Mat::strided(&p[..], t, t, t, 1).t(), hd.q, false);
        }
    });
    gqkv
}

/// Runs `f(head, scratch_a, scratch_b)` for every head, in parallel runs of consecutive heads,
/// each run with its own two `T·T` scratch buffers.
fn for_each_head<T: Float>(heads: usize, t: usize, f: impl Fn(usize, &mut [T], &mut [T]) + Sync) {
    let runs = parallel::threads().min(heads).max(1);
    let per = heads.div_ceil(runs);
    parallel::for_each(runs, |r| {
        let (mut a, mut b) = (vec![T::ZERO; t * t], vec![T::ZERO; t * t]);
        for n in r * per..((r + 1) * per).min(heads) {
            f(n, &mut a, &mut b);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forward pass against the definition written out with plain loops, with and without
    /// dropout, on a context longer than a block.
    #[test]
    fn forward_matches_the_definition() {
        let g = Geom { b: 2, t: 70, h: 3, d: 4 };
        let c = g.h * g.d;
        let qkv: Vec<f64> = (0..g.b * g.t * 3 * c).map(|i| ((i * 37 % 101) as f64 - 50.0) / 40.0).collect();
        let scale = 0.5;
        for drop in [None, Some(Dropout { p: 0.3, seed: 7 })] {
            let (y, _) = forward(&qkv, &g, scale, drop);
            let mask = drop.map(|d| dropout_mask::<f64>(&g, &d));
            for bi in 0..g.b {
                for hi in 0..g.h {
                    let n = bi * g.h + hi;
                    let at = |i: usize, part: usize, e: usize| {
                        qkv[(bi * g.t + i) * 3 * c + part * c + hi * g.d + e]
                    };
                    for i in 0..g.t {
                        let s: Vec<f64> = (0..=i)
                            .map(|j| scale * (0..g.d).map(|e| at(i, 0, e) * at(j, 1, e)).sum::<f64>())
                            .collect();
                        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
                        for e in 0..g.d {
                            let want: f64 = (0..=i)
                                .map(|j| {
                                    let f = mask.as_ref().map_or(1.0, |mk| mk[(n * g.t + i) * g.t + j]);
                                    (s[j] - m).exp() / z * f * at(j, 2, e)
                                })
                                .sum();
                            let got = y[(bi * g.t + i) * c + hi * g.d + e];
                            assert!((got - want).abs() < 1e-12, "{drop:?} head {n} row {i}: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_dropout_mask_keeps_about_one_minus_p_and_depends_on_the_seed() {
        let g = Geom { b: 1, t: 200, h: 2, d: 1 };
        let d = Dropout { p: 0.25, seed: 1 };
        let m = dropout_mask::<f64>(&g, &d);
        let kept = m.iter().filter(|&&v| v > 0.0).count() as f64;
        let lower = (g.h * g.t * (g.t + 1) / 2) as f64;
        assert!((kept / lower - 0.75).abs() < 0.01, "kept {}", kept / lower);
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-15));
        assert_ne!(m, dropout_mask::<f64>(&g, &Dropout { p: 0.25, seed: 2 }));
        assert!(dropout_mask::<f64>(&g, &Dropout { p: 1.0, seed: 1 }).iter().all(|&v| v == 0.0));
    }
}
