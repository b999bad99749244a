//! 2-D convolution on the CPU as im2col/col2im plus one matrix product per image and pass.
//!
//! For one image, `col` is the `[c_in·k_h·k_w, o_h·o_w]` matrix whose column `p` holds the input
//! window that output position `p` sees (zeros where the window hangs over the padding). Then,
//! with `W` the kernel as a `[c_out, c_in·k_h·k_w]` matrix and `G` the output gradient of the
//! image as `[c_out, o_h·o_w]`:
//!
//! * forward: `Y = W · col` (+ bias, written into `Y` before the product adds to it);
//! * kernel gradient: `∂W = Σ_images G · colᵀ` (the products accumulate in place);
//! * input gradient: `∂x = col2im(Wᵀ · G)`, col2im adding each column back onto the window it
//!   came from;
//! * bias gradient: `∂b = Σ_images Σ_p G`.
//!
//! The batch is split into one contiguous group of images per worker thread; each group keeps its
//! own `col` buffer (and its own partial `∂W`, summed at the end), so nothing is allocated per
//! image and every product runs on one thread on cache-resident operands. A 1×1 kernel with
//! stride 1 and no padding needs no `col` at all: the image is its own `col`.

use std::mem::MaybeUninit;
use std::sync::Mutex;

use super::{gemm, par_for, product_into, sum_into_first, written, zeroed, Float, Mat};
use taper_tensor::parallel::{self, pieces};

/// The shapes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geom {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Geom {
    pub(crate) fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }
    pub(crate) fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }
    fn positions(&self) -> usize {
        self.oh() * self.ow()
    }
    fn window(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }
    fn out_len(&self) -> usize {
        self.c_out * self.positions()
    }
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }
    /// Images per group of the backward pass: the batch cut into at most [`GROUPS`] groups,
    /// whatever the number of threads, so that the kernel gradient (a sum of per-group partial
    /// sums, added in group order) comes out the same bits on any machine.
    fn per_group(&self) -> usize {
        self.batch.div_ceil(GROUPS).max(1)
    }
}

/// Most groups a batch is cut into in the backward pass (see [`Geom::per_group`]): enough to keep
/// 16 threads busy and to balance 2, few enough that the per-group kernel-gradient buffers stay
/// small.
const GROUPS: usize = 16;

/// The output indices `o` (of `n_out`) whose input index `o·stride + k_off - pad` lies in
/// `0..n_in`, as a range `lo..hi`.
fn inside(n_out: usize, n_in: usize, k_off: usize, stride: usize, pad: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(k_off).div_ceil(stride).min(n_out);
    let hi = (n_in + pad).saturating_sub(k_off).div_ceil(stride).min(n_out).max(lo);
    (lo, hi)
}

/// Calls `f(row, c, oy, iy, kj, ox_lo, ox_hi)` for every row `row = (c, ki, kj)` of `col` and
/// every output row `oy` whose input row `iy` is inside the image; output columns
/// `ox_lo..ox_hi` read inside the image, the rest of `col` is padding.
fn for_each_window_row(g: &Geom, mut f: impl FnMut(usize, usize, usize, usize, usize, usize, usize)) {
    let (oh, ow) = (g.oh(), g.ow());
    for c in 0..g.c_in {
        for ki in 0..g.kh {
            let (ylo, yhi) = inside(oh, g.h, ki, g.stride, g.pad);
            for kj in 0..g.kw {
                let (xlo, xhi) = inside(ow, g.w, kj, g.stride, g.pad);
                let row = (c * g.kh + ki) * g.kw + kj;
                for oy in ylo..yhi {
                    f(row, c, oy, oy * g.stride + ki - g.pad, kj, xlo, xhi);
                }
            }
        }
    }
}

/// Fills `col` (`[window, positions]`, row-major) from one image `x` (`[c_in, h, w]`), writing
/// each element once (zeros where the window hangs over the padding).
fn im2col<T: Float>(g: &Geom, x: &[T], col: &mut [T]) {
    let (oh, ow, p, s, pad, hw) = (g.oh(), g.ow(), g.positions(), g.stride, g.pad, g.h * g.w);
    for c in 0..g.c_in {
        let plane = &x[c * hw..][..hw];
        for ki in 0..g.kh {
            let (ylo, yhi) = inside(oh, g.h, ki, s, pad);
            for kj in 0..g.kw {
                let (xlo, xhi) = inside(ow, g.w, kj, s, pad);
                let row = &mut col[((c * g.kh + ki) * g.kw + kj) * p..][..p];
                row[..ylo * ow].fill(T::ZERO);
                row[yhi * ow..].fill(T::ZERO);
                for oy in ylo..yhi {
                    let dst = &mut row[oy * ow..][..ow];
                    dst[..xlo].fill(T::ZERO);
                    dst[xhi..].fill(T::ZERO);
                    if xlo == xhi {
                        continue;
                    }
                    let src = &plane[(oy * s + ki - pad) * g.w..][..g.w];
                    let ix0 = xlo * s + kj - pad;
                    let dst = &mut dst[xlo..xhi];
                    if s == 1 {
                        // An explicit loop: rows are short, and a memcpy call per row costs more.
                        for (d, &v) in dst.iter_mut().zip(&src[ix0..]) {
                            *d = v;
                        }
                    } else {
                        for (d, &v) in dst.iter_mut().zip(src[ix0..].iter().step_by(s)) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// Adds each column of `col` back onto the window of `gx` (`[c_in, h, w]`) it came from.
fn col2im_add<T: Float>(g: &Geom, col: &[T], gx: &mut [T]) {
    let (p, ow, s, pad, hw) = (g.positions(), g.ow(), g.stride, g.pad, g.h * g.w);
    for_each_window_row(g, |row, c, oy, iy, kj, xlo, xhi| {
        if xlo == xhi {
            return;
        }
        let src = &col[row * p + oy * ow..][xlo..xhi];
        let dst = &mut gx[c * hw + iy * g.w..][..g.w];
        let ix0 = xlo * s + kj - pad;
        if s == 1 {
            for (d, &v) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                *d += v;
            }
        } else {
            for (d, &v) in dst[ix0..].iter_mut().step_by(s).zip(src) {
                *d += v;
            }
        }
    });
}

/// The convolution of `x` (`[batch, c_in, h, w]`) with `w` (`[c_out, c_in, k_h, k_w]`), plus
/// `bias` (`[c_out]`) if given: `[batch, c_out, o_h, o_w]`, all row-major.
pub(crate) fn forward<T: Float>(g: &Geom, x: &[T], w: &[T], bias: Option<&[T]>, relu: bool) -> Vec<T> {
    let (p, window, in_len, out_len) = (g.positions(), g.window(), g.in_len(), g.out_len());
    // With a single image, let the product itself use every thread instead.
    let inner = g.batch == 1 && par_for(g.c_out, p, window);
    let scratch = || if g.pointwise() { Vec::new() } else { vec![T::ZERO; window * p] };
    let fill = |col: &mut Vec<T>, b: usize, out: &mut [MaybeUninit<T>]| {
        let xb = &x[b * in_len..][..in_len];
        let rhs: &[T] = if g.pointwise() {
            xb
        } else {
            im2col(g, xb, col);
            col
        };
        let (lhs, rhs) = (Mat::rows(w, g.c_out, window), Mat::rows(rhs, window, p));
        let out = match bias {
            Some(bias) => {
                for (row, &v) in out.chunks_mut(p).zip(bias) {
                    row.fill(MaybeUninit::new(v));
                }
                // SAFETY: every row was just written with its bias.
                let out = unsafe { &mut *(out as *mut [MaybeUninit<T>] as *mut [T]) };
                gemm(out, lhs, rhs, true, inner);
                out
            }
            None => product_into(out, lhs, rhs, inner),
        };
        if relu {
            // While the image's output is in cache (NaN stays NaN, as in the ReLU op).
            relu_in_place(out);
        }
    };
    // SAFETY: `fill` writes every element of each image's output: the bias rows and then the
    // product on top, or the product alone.
    unsafe { written(g.batch * out_len, out_len, scratch, fill) }
}

/// The gradients of a convolution, each present when asked for.
pub(crate) struct Grads<T> {
    pub x: Option<Vec<T>>,
    pub w: Option<Vec<T>>,
    pub bias: Option<Vec<T>>,
}

/// Backward of [`forward`] given the output gradient `gy`: the input gradient when `w` is given,
/// the kernel gradient when `x` is given, the bias gradient when `bias` is set. With `relu_out`
/// (the forward's output when it applied ReLU), each image's `gy` is first masked where the
/// output is not positive, in a per-worker buffer.
pub(crate) fn backward<T: Float>(
    g: &Geom,
    x: Option<&[T]>,
    w: Option<&[T]>,
    gy: &[T],
    bias: bool,
    relu_out: Option<&[T]>,
) -> Grads<T> {
    let (p, window, in_len, out_len) = (g.positions(), g.window(), g.in_len(), g.out_len());
    let per = g.per_group();
    let inner = g.batch == 1 && par_for(g.c_out.max(window), p, g.c_out.min(window));
    let n_gx = if w.is_some() { g.batch * in_len } else { 0 };
    let mut gx: Vec<T> = Vec::with_capacity(n_gx);
    let groups = g.batch.div_ceil(per);
    let gx_parts = pieces(&mut gx.spare_capacity_mut()[..n_gx], per * in_len);

    let needs_col = !g.pointwise();
    // Scratch buffers (im2col columns, their gradient, the masked output gradient), one set per
    // thread at most: a group takes a set from the pool and puts it back.
    let scratch: Mutex<Vec<[Vec<T>; 3]>> = Mutex::new(Vec::new());
    let partials: Vec<(Vec<T>, Vec<T>)> = parallel::map(groups, |group| {
        let mut gx_part = gx_parts.take(group);
        let [mut col, mut gcol, mut masked] =
            scratch.lock().ok().and_then(|mut s| s.pop()).unwrap_or_else(|| {
                [
                    vec![T::ZERO; if x.is_some() && needs_col { window * p } else { 0 }],
                    vec![T::ZERO; if w.is_some() && needs_col { window * p } else { 0 }],
                    vec![T::ZERO; if relu_out.is_some() { out_len } else { 0 }],
                ]
            });
        let mut gw = vec![T::ZERO; if x.is_some() { g.c_out * window } else { 0 }];
        let mut gb = vec![T::ZERO; if bias { g.c_out } else { 0 }];
        let images = group * per..((group + 1) * per).min(g.batch);
        for (i, b) in images.enumerate() {
            let gyb = &gy[b * out_len..][..out_len];
            let gyb: &[T] = match relu_out {
                Some(out) => {
                    for ((m, &gv), &o) in masked.iter_mut().zip(gyb).zip(&out[b * out_len..][..out_len]) {
                        *m = if o > T::ZERO { gv } else { T::ZERO };
                    }
                    &masked
                }
                None => gyb,
            };
            if let Some(x) = x {
                let xb = &x[b * in_len..][..in_len];
                let cols: &[T] = if needs_col {
                    im2col(g, xb, &mut col);
                    &col
                } else {
                    xb
                };
                gemm(&mut gw, Mat::rows(gyb, g.c_out, p), Mat::transposed(cols, window, p), i > 0, inner);
            }
            if bias {
                for (acc, row) in gb.iter_mut().zip(gyb.chunks(p)) {
                    *acc += sum(row);
                }
            }
            if let (Some(w), Some(part)) = (w, gx_part.as_deref_mut()) {
                let gxb = zeroed(&mut part[i * in_len..][..in_len]);
                let wt = Mat::transposed(w, g.c_out, window);
                if needs_col {
                    gemm(&mut gcol, wt, Mat::rows(gyb, g.c_out, p), false, inner);
                    col2im_add(g, &gcol, gxb);
                } else {
                    gemm(gxb, wt, Mat::rows(gyb, g.c_out, p), false, inner);
                }
            }
        }
        if let Ok(mut s) = scratch.lock() {
            s.push([col, gcol, masked]);
        }
        (gw, gb)
    });
    // SAFETY: the groups' chunks cover `0..n_gx`, and each image's slice was zeroed before use.
    unsafe { gx.set_len(n_gx) };

    let (gws, gbs): (Vec<_>, Vec<_>) = partials.into_iter().unzip();
    let zeros = |n| vec![T::ZERO; n];
    Grads {
        x: w.map(|_| gx),
        w: x.map(|_| if g.batch == 0 { zeros(g.c_out * window) } else { sum_into_first(gws) }),
        bias: bias.then(|| if g.batch == 0 { zeros(g.c_out) } else { sum_into_first(gbs) }),
    }
}

/// `max(v, 0)` in place (NaN stays NaN). Every element is stored, a select rather than a
/// conditional store, so the loop vectorizes instead of branching on the sign.
pub(crate) fn relu_in_place<T: Float>(xs: &mut [T]) {
    for v in xs {
        *v = if *v < T::ZERO { T::ZERO } else { *v };
    }
}

/// A sum with eight independent accumulators, so that it vectorizes.
pub(crate) fn sum<T: Float>(xs: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut total = T::ZERO;
    for &v in chunks.remainder() {
        total += v;
    }
    acc.iter().fold(T::ZERO, |t, &a| t + a) + total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution straight from its definition.
    fn naive(g: &Geom, x: &[f64], w: &[f64]) -> Vec<f64> {
        let (oh, ow) = (g.oh(), g.ow());
        let mut out = vec![0.0; g.batch * g.c_out * oh * ow];
        for b in 0..g.batch {
            for co in 0..g.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0.0;
                        for c in 0..g.c_in {
                            for ki in 0..g.kh {
                                for kj in 0..g.kw {
                                    let iy = (oy * g.stride + ki) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + kj) as isize - g.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                        continue;
                                    }
                                    acc += x[((b * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize]
                                        * w[((co * g.c_in + c) * g.kh + ki) * g.kw + kj];
                                }
                            }
                        }
                        out[((b * g.c_out + co) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: f64) -> Vec<f64> {
        (0..n).map(|i| ((i as f64 + seed) * 0.731).sin()).collect()
    }

    fn geoms() -> Vec<Geom> {
        let mut out = Vec::new();
        for (batch, c_in, h, w, c_out) in [(3, 2, 7, 6, 4), (1, 1, 5, 5, 2), (4, 3, 4, 9, 1)] {
            for (kh, kw) in [(1, 1), (3, 3), (2, 3), (4, 4)] {
                for stride in [1, 2, 3] {
                    for pad in [0, 1, 2] {
                        if h + 2 * pad >= kh && w + 2 * pad >= kw {
                            out.push(Geom { batch, c_in, h, w, c_out, kh, kw, stride, pad });
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn forward_matches_the_definition() {
        for g in geoms() {
            let x = values(g.batch * g.in_len(), 0.0);
            let w = values(g.c_out * g.window(), 7.0);
            let bias = values(g.c_out, 3.0);
            let expect = naive(&g, &x, &w);
            let got = forward(&g, &x, &w, None, false);
            assert_eq!(got.len(), expect.len());
            assert!(got.iter().zip(&expect).all(|(a, b)| (a - b).abs() < 1e-12), "{g:?}");
            let relu = forward(&g, &x, &w, Some(&bias), true);
            let got = forward(&g, &x, &w, Some(&bias), false);
            assert!(relu.iter().zip(&got).all(|(r, v)| *r == v.max(0.0)), "{g:?} with ReLU");
            let p = g.positions();
            for (i, (a, b)) in got.iter().zip(&expect).enumerate() {
                assert!((a - b - bias[i / p % g.c_out]).abs() < 1e-12, "{g:?} with bias");
            }
        }
    }

    /// The backward pass is the adjoint of the forward one: for random `gy`,
    /// `<gy, conv(x, w)> = <∂x, x> = <∂w, w>` (the convolution is linear in each argument).
    #[test]
    fn backward_is_the_adjoint_of_forward() {
        for g in geoms() {
            let x = values(g.batch * g.in_len(), 1.0);
            let w = values(g.c_out * g.window(), 2.0);
            let gy = values(g.batch * g.out_len(), 5.0);
            let y = naive(&g, &x, &w);
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            let lhs = dot(&gy, &y);
            let grads = backward(&g, Some(&x), Some(&w), &gy, true, None);
            let (gx, gw, gb) = (grads.x.unwrap(), grads.w.unwrap(), grads.bias.unwrap());
            assert!((dot(&gx, &x) - lhs).abs() < 1e-9 * lhs.abs().max(1.0), "{g:?}: input gradient");
            assert!((dot(&gw, &w) - lhs).abs() < 1e-9 * lhs.abs().max(1.0), "{g:?}: kernel gradient");
            let p = g.positions();
            for (co, &v) in gb.iter().enumerate() {
                let expect: f64 =
                    (0..g.batch).map(|b| gy[(b * g.c_out + co) * p..][..p].iter().sum::<f64>()).sum();
                assert!((v - expect).abs() < 1e-9, "{g:?}: bias gradient");
            }
            let only_w = backward(&g, Some(&x), None, &gy, false, None);
            assert!(only_w.x.is_none() && only_w.bias.is_none());
            assert_eq!(only_w.w.unwrap(), gw);
            // Through a ReLU: the same as masking gy first.
            let out = forward(&g, &x, &w, None, true);
            let masked: Vec<f64> =
                gy.iter().zip(&out).map(|(&d, &o)| if o > 0.0 { d } else { 0.0 }).collect();
            let fused = backward(&g, Some(&x), Some(&w), &gy, true, Some(&out));
            let plain = backward(&g, Some(&x), Some(&w), &masked, true, None);
            assert_eq!(fused.x, plain.x);
            assert_eq!(fused.w, plain.w);
            assert_eq!(fused.bias, plain.bias);
        }
    }

    #[test]
    fn sum_is_exact_on_small_integers() {
        for n in 0usize..40 {
            let xs: Vec<f32> = (0..n).map(|i| i as f32).collect();
            assert_eq!(sum(&xs), (n * n.saturating_sub(1) / 2) as f32);
        }
    }
}
