//! The fused in-place CPU kernel: one pass over a parameter, its gradient and its state buffers,
//! split across cores on `taper_tensor::parallel`'s pool, running a [`Rule`]'s update, with the
//! engine's [`Transforms`] around it, on scalars. Cautious updates take a first, read-only pass
//! that counts the elements the mask keeps (its mean is the rescaling).

use std::cell::RefCell;
use std::convert::Infallible;

use candle_core::{CpuStorage, InplaceOp2, Layout, Storage, Tensor};
use taper_tensor::parallel;

use crate::elem::Elem;
use crate::hyper::{Decay, Transforms};
use crate::rule::{caution_kept, transformed, Rule, Steps};
use crate::Result;

/// The most state buffers a rule may keep and still run on the fused kernel (Adan keeps four).
pub(crate) const MAX_BUFFERS: usize = 4;

/// Fewest elements per parallel task: below this, splitting costs more than it saves.
const MIN_TASK: usize = 1 << 15;

/// Elements per parallel task over `n` elements: one contiguous range per pool thread (as
/// OpenMP's static schedule in PyTorch's fused optimizers), a whole number of cache lines so that
/// no two threads write one line, and never fewer than [`MIN_TASK`]. One long range per thread
/// keeps each stream sequential for the hardware prefetcher; on the 2-core benchmark machine it
/// measured 4-6 % faster than 32K-element tasks handed out dynamically.
fn task_len(n: usize) -> usize {
    n.div_ceil(parallel::threads().max(1)).next_multiple_of(64).max(MIN_TASK)
}

/// A parameter's host state buffers, borrowed mutably for one step.
#[doc(hidden)]
pub enum HostMut<'a> {
    /// f32 buffers.
    F32(&'a mut [Vec<f32>]),
    /// f64 buffers.
    F64(&'a mut [Vec<f64>]),
}

/// A rule's fused step: `(rule, coefficients, transforms, parameter, gradient, host buffers)`.
#[doc(hidden)]
pub type FusedFn<R> =
    for<'a> fn(&R, &<R as Rule>::Coeffs, &Transforms, &Tensor, &Tensor, HostMut<'a>) -> Result<()>;

struct FusedStep<'a, R: Rule> {
    rule: &'a R,
    coeffs: R::Coeffs,
    transforms: Transforms,
    // candle's in-place ops take `&self`; the buffers are borrowed mutably for the one call.
    states: RefCell<HostMut<'a>>,
}

/// Runs one update of `rule` in place on `param` (contiguous, CPU) with gradient `grad`.
pub(crate) fn fused_step<R: Rule + Steps<f32> + Steps<f64>>(
    rule: &R,
    c: &R::Coeffs,
    t: &Transforms,
    param: &Tensor,
    grad: &Tensor,
    states: HostMut<'_>,
) -> Result<()> {
    let op = FusedStep { rule, coeffs: *c, transforms: *t, states: RefCell::new(states) };
    param.inplace_op2(grad, &op)?;
    Ok(())
}

fn slice<'a, T>(v: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("fused optimizer step needs contiguous tensors"),
    }
}

impl<R: Rule + Steps<f32> + Steps<f64>> InplaceOp2 for FusedStep<'_, R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (a, b) = l1
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("non-contiguous parameter".into()))?;
        let mut states = self.states.borrow_mut();
        let (r, c, t) = (self.rule, &self.coeffs, &self.transforms);
        match (s1, s2, &mut *states) {
            (CpuStorage::F32(p), CpuStorage::F32(g), HostMut::F32(s)) => {
                run(r, c, t, &mut p[a..b], slice(g, l2)?, s)
            }
            (CpuStorage::F64(p), CpuStorage::F64(g), HostMut::F64(s)) => {
                run(r, c, t, &mut p[a..b], slice(g, l2)?, s)
            }
            _ => candle_core::bail!("fused optimizer step: parameter, gradient and state dtypes differ"),
        }
    }
}

/// Scalars the fused kernel runs on.
trait Scalar: Elem<Err = Infallible> + Copy + Send + Sync + PartialOrd + Default {}
impl Scalar for f32 {}
impl Scalar for f64 {}

fn run<T: Scalar, R: Steps<T>>(
    rule: &R,
    c: &R::Coeffs,
    t: &Transforms,
    p: &mut [T],
    g: &[T],
    s: &mut [Vec<T>],
) -> candle_core::Result<()> {
    if g.len() != p.len() || s.iter().any(|b| b.len() != p.len()) {
        candle_core::bail!("fused optimizer step: length mismatch");
    }
    match s {
        [] => kernel::<T, R, 0>(rule, c, t, p, g, []),
        [a] => kernel::<T, R, 1>(rule, c, t, p, g, [a]),
        [a, b] => kernel::<T, R, 2>(rule, c, t, p, g, [a, b]),
        [a, b, d] => kernel::<T, R, 3>(rule, c, t, p, g, [a, b, d]),
        [a, b, d, e] => kernel::<T, R, 4>(rule, c, t, p, g, [a, b, d, e]),
        _ => candle_core::bail!("fused optimizer step: at most {MAX_BUFFERS} state buffers"),
    }
    Ok(())
}

/// One parallel task: a chunk of the parameter, of the gradient and of each state buffer.
type Task<'a, T, const K: usize> = (&'a mut [T], &'a [T], [&'a mut [T]; K]);

/// The cautious rescaling `1 / max(kept/n, 1e-3)`, counting the kept elements in one read-only
/// parallel pass (the update run on copies).
fn caution_scale<T: Scalar, R: Steps<T>, const K: usize>(
    rule: &R,
    c: &R::Coeffs,
    t: &Transforms,
    p: &[T],
    g: &[T],
    s: &[&mut Vec<T>; K],
) -> f64 {
    let n = p.len();
    let len = task_len(n);
    let kept: usize = parallel::map_sized(n.div_ceil(len), n, |i| {
        let (lo, hi) = (i * len, n.min((i + 1) * len));
        count_dispatch::<T, R, K>(rule, c, t, &p[lo..hi], &g[lo..hi], std::array::from_fn(|b| &s[b][lo..hi]))
    })
    .into_iter()
    .sum();
    1.0 / (kept as f64 / n.max(1) as f64).max(1e-3)
}

fn kernel<T: Scalar, R: Steps<T>, const K: usize>(
    rule: &R,
    c: &R::Coeffs,
    t: &Transforms,
    p: &mut [T],
    g: &[T],
    s: [&mut Vec<T>; K],
) {
    let caution = if t.cautious { caution_scale::<T, R, K>(rule, c, t, p, g, &s) } else { 1.0 };
    let (n, len) = (p.len(), task_len(p.len()));
    let mut s_chunks = s.map(|b| b.chunks_mut(len));
    let tasks: Vec<Task<'_, T, K>> = p
        .chunks_mut(len)
        .zip(g.chunks(len))
        .map(|(pc, gc)| (pc, gc, std::array::from_fn(|j| s_chunks[j].next().unwrap_or_default())))
        .collect();
    let body = |(p, g, s): (&mut [T], &[T], [&mut [T]; K])| dispatch::<T, R, K>(rule, c, t, caution, p, g, s);
    // Each parallel task takes its chunks out of a slot.
    let slots = parallel::Slots::new(tasks);
    // About a nanosecond an element (Adam's update from cache; more from memory).
    parallel::for_each_sized(slots.len(), n, |i| {
        if let Some(task) = slots.take(i) {
            body(task)
        }
    });
}

/// Defines `$dispatch`, which runs `$inner` compiled for the widest vector extension this CPU has:
/// `$inner` (`#[inline(always)]`) is inlined into a copy compiled for AVX-512F and one for AVX2 +
/// FMA, picked at run time, so the same scalar code becomes AVX-512 or AVX2 loops where available
/// and stays baseline SSE2 elsewhere.
macro_rules! widest {
    ($(#[$doc:meta])* $dispatch:ident => $inner:ident ($($a:ident: $t:ty),*) $(-> $ret:ty)?) => {
        $(#[$doc])*
        fn $dispatch<T: Scalar, R: Steps<T>, const K: usize>($($a: $t),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512<T: Scalar, R: Steps<T>, const K: usize>($($a: $t),*) $(-> $ret)? {
                    $inner::<T, R, K>($($a),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2<T: Scalar, R: Steps<T>, const K: usize>($($a: $t),*) $(-> $ret)? {
                    $inner::<T, R, K>($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { avx512::<T, R, K>($($a),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                    return unsafe { avx2::<T, R, K>($($a),*) };
                }
            }
            $inner::<T, R, K>($($a),*)
        }
    };
}

widest!(
    /// [`chunk`] (the update) for the widest vector extension this CPU has.
    dispatch => chunk(
        rule: &R,
        c: &R::Coeffs,
        t: &Transforms,
        caution: f64,
        p: &mut [T],
        g: &[T],
        s: [&mut [T]; K]
    )
);

widest!(
    /// [`count`] (the cautious mask's counting pass) for the widest vector extension this CPU has.
    count_dispatch => count(rule: &R, c: &R::Coeffs, t: &Transforms, p: &[T], g: &[T], s: [&[T]; K]) -> usize
);

/// How many elements of a chunk the cautious mask keeps: the update run on copies, branch-free,
/// with the kind of weight decay fixed before the loop (as [`chunk`] fixes the transforms) so
/// that it vectorizes; counted per block in 32 bits.
#[inline(always)]
fn count<T: Scalar, R: Steps<T>, const K: usize>(
    rule: &R,
    c: &R::Coeffs,
    t: &Transforms,
    p: &[T],
    g: &[T],
    s: [&[T]; K],
) -> usize {
    let fixed = |decay| Transforms { maximize: t.maximize, decay, cautious: true };
    match t.decay {
        Decay::None => count_loop::<T, R, K>(rule, c, &fixed(Decay::None), p, g, s),
        Decay::Decoupled(f) => count_loop::<T, R, K>(rule, c, &fixed(Decay::Decoupled(f)), p, g, s),
        _ => count_loop::<T, R, K>(rule, c, t, p, g, s),
    }
}

#[inline(always)]
fn count_loop<T: Scalar, R: Steps<T>, const K: usize>(
    rule: &R,
    c: &R::Coeffs,
    t: &Transforms,
    p: &[T],
    g: &[T],
    s: [&[T]; K],
) -> usize {
    let n = p.len();
    let g = &g[..n];
    let s = s.map(|b| &b[..n]);
    let mut kept = 0usize;
    let mut start = 0;
    while start < n {
        let end = (start + COUNT_BLOCK).min(n);
        let mut block = 0u32;
        for i in start..end {
            let st: [T; K] = std::array::from_fn(|j| s[j][i]);
            block += u32::from(caution_kept::<R, T, K>(rule, t, c, p[i], g[i], st));
        }
        kept += block as usize;
        start = end;
    }
    kept
}

/// Elements per block of the counting loop (a 32-bit count per block, summed into a `usize`).
const COUNT_BLOCK: usize = 1 << 16;

/// The update loop, with the transforms fixed before it: with none (the common case) the compiler
/// sees a constant and folds the per-element dispatch on them away, so that a rule too large for
/// it to unswitch the loop by itself (MADGRAD's, with its cube root) still vectorizes.
#[inline(always)]
fn chunk<T: Scalar, R: Steps<T>, const K: usize>(
    rule: &R,
    c: &R::Coeffs,
    t: &Transforms,
    caution: f64,
    p: &mut [T],
    g: &[T],
    s: [&mut [T]; K],
) {
    if *t == Transforms::NONE {
        chunk_loop::<T, R, K>(rule, c, &Transforms::NONE, caution, p, g, s)
    } else {
        chunk_loop::<T, R, K>(rule, c, t, caution, p, g, s)
    }
}

#[inline(always)]
fn chunk_loop<T: Scalar, R: Steps<T>, const K: usize>(
    rule: &R,
    c: &R::Coeffs,
    t: &Transforms,
    caution: f64,
    p: &mut [T],
    g: &[T],
    s: [&mut [T]; K],
) {
    let n = p.len();
    let g = &g[..n];
    let mut s = s.map(|b| &mut b[..n]);
    let ahead = PREFETCH_BYTES / std::mem::size_of::<T>().max(1);
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        prefetch_block(p, start + ahead);
        prefetch_block(g, start + ahead);
        for b in s.iter() {
            prefetch_block(b, start + ahead);
        }
        for i in start..end {
            let mut pe = p[i];
            let mut st: [T; K] = std::array::from_fn(|j| s[j][i]);
            let Ok(()) = transformed(rule, t, caution, c, &mut pe, &g[i], &mut st);
            p[i] = pe;
            for (j, b) in s.iter_mut().enumerate() {
                b[i] = st[j];
            }
        }
        start = end;
    }
}

/// Elements per block of the update loop: each block first prefetches the block
/// [`PREFETCH_BYTES`] ahead in every stream, then updates its own elements (vectorized).
const BLOCK: usize = 64;

/// How far ahead, in bytes, the update loop prefetches each of its streams (parameter, gradient,
/// each state buffer). The hardware prefetcher does not cross 4 KiB pages and tracks few
/// streams; with 3 to 5 streams per element it leaves the loop waiting on memory at each page.
/// One page ahead, issued in software, made the 10M-parameter steps 20 to 27 % faster on an Intel
/// Xeon benchmark machine and changed nothing beyond noise on an AMD EPYC one
/// (docs/PERFORMANCE.md); 2 KiB and 4 KiB ahead measured alike.
const PREFETCH_BYTES: usize = 4096;

/// Asks the CPU to bring `v[at..at + BLOCK]` into L1, one request per cache line. A hint only:
/// it never faults, and does nothing past the end of `v` or off x86-64.
#[inline(always)]
fn prefetch_block<T>(v: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < v.len() {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let size = std::mem::size_of::<T>().max(1);
        let base = v.as_ptr().wrapping_add(at).cast::<i8>();
        let mut byte = 0;
        while byte < BLOCK * size {
            // SAFETY: `_mm_prefetch` is a hint that never faults, whatever the address; the
            // pointer is never dereferenced.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(byte)) };
            byte += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (v, at);
}

/// Floats whose finiteness the gradient check tests.
trait Finite: Copy + Send + Sync {
    fn finite(self) -> bool;
}

impl Finite for f32 {
    #[inline(always)]
    fn finite(self) -> bool {
        self.is_finite()
    }
}

impl Finite for f64 {
    #[inline(always)]
    fn finite(self) -> bool {
        self.is_finite()
    }
}

/// No short-circuit: a branch-free OR over the chunk, which the compiler vectorizes.
#[inline(always)]
fn chunk_finite<T: Finite>(v: &[T]) -> bool {
    !v.iter().fold(false, |bad, x| bad | !x.finite())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn chunk_finite_avx512<T: Finite>(v: &[T]) -> bool {
    chunk_finite(v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_finite_avx2<T: Finite>(v: &[T]) -> bool {
    chunk_finite(v)
}

fn slice_finite<T: Finite>(v: &[T]) -> bool {
    let len = task_len(v.len());
    let chunks = v.len().div_ceil(len);
    parallel::map_sized(chunks, v.len() / 8, |i| {
        let c = &v[i * len..v.len().min((i + 1) * len)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F (checked just above).
                return unsafe { chunk_finite_avx512(c) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { chunk_finite_avx2(c) };
            }
        }
        chunk_finite(c)
    })
    .into_iter()
    .all(|ok| ok)
}

/// Whether every element of `t` is finite. One read-only pass (parallel and vectorized on the
/// CPU); on other devices `(t - t)` is 0 exactly where `t` is finite, so its sum is 0 or NaN.
pub(crate) fn all_finite(t: &Tensor) -> Result<bool> {
    if t.device().is_cpu() {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            match cpu {
                CpuStorage::F32(v) => return Ok(slice_finite(&v[a..b])),
                CpuStorage::F64(v) => return Ok(slice_finite(&v[a..b])),
                _ => {}
            }
        }
    }
    #[allow(clippy::eq_op)] // t - t is 0 exactly where t is finite: that is the test.
    let s = (t - t)?.to_dtype(candle_core::DType::F64)?.sum_all()?.to_scalar::<f64>()?;
    Ok(s == 0.0)
}

/// `Σ t²` in f64. On the CPU one read-only pass over a contiguous f32/f64 tensor, in 16 partial
/// sums (which vectorize; a single running sum cannot); elsewhere candle's ops.
pub(crate) fn sum_squares(t: &Tensor) -> Result<f64> {
    fn lanes<T: Copy + Into<f64>>(v: &[T]) -> f64 {
        let mut acc = [0.0f64; 16];
        let chunks = v.chunks_exact(16);
        let rest: f64 = chunks.remainder().iter().map(|&x| x.into() * x.into()).sum();
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                let x: f64 = x.into();
                *a += x * x;
            }
        }
        acc.iter().sum::<f64>() + rest
    }
    if t.device().is_cpu() {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            match cpu {
                CpuStorage::F32(v) => return Ok(lanes(&v[a..b])),
                CpuStorage::F64(v) => return Ok(lanes(&v[a..b])),
                _ => {}
            }
        }
    }
    Ok(t.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// `t·k` as a new tensor. On the CPU one parallel pass over a contiguous f32/f64 tensor (the
/// product written straight into the new buffer); elsewhere candle's `affine`.
pub(crate) fn scaled(t: &Tensor, k: f64) -> Result<Tensor> {
    fn host<T: Copy + Send + Sync + std::ops::Mul<Output = T>>(v: &[T], k: T) -> Vec<T> {
        let len = task_len(v.len());
        let mut out: Vec<T> = Vec::with_capacity(v.len());
        let parts = parallel::pieces(&mut out.spare_capacity_mut()[..v.len()], len);
        parallel::for_each_sized(parts.len(), v.len() / 2, |i| {
            if let Some(part) = parts.take(i) {
                for (o, &x) in part.iter_mut().zip(&v[i * len..]) {
                    o.write(x * k);
                }
            }
        });
        // SAFETY: the pieces cover all `v.len()` elements and each task wrote its piece.
        unsafe { out.set_len(v.len()) };
        out
    }
    if t.device().is_cpu() {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) {
            let made = match cpu {
                CpuStorage::F32(v) => Some(Tensor::from_vec(host(&v[a..b], k as f32), t.dims(), t.device())),
                CpuStorage::F64(v) => Some(Tensor::from_vec(host(&v[a..b], k), t.dims(), t.device())),
                _ => None,
            };
            if let Some(made) = made {
                return Ok(made?);
            }
        }
    }
    Ok(t.affine(k, 0.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn scaled_on_the_cpu_and_composed_agree() {
        let t = Tensor::arange(0f32, 100_000.0, &Device::Cpu).unwrap().reshape((1000, 100)).unwrap();
        let want = t.affine(0.5, 0.0).unwrap();
        let got = scaled(&t, 0.5).unwrap();
        assert_eq!(got.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());
        let tt = t.t().unwrap();
        assert_eq!(
            scaled(&tt, 0.5).unwrap().to_vec2::<f32>().unwrap(),
            want.t().unwrap().to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn sum_squares_on_the_cpu_and_composed_agree() {
        let t = Tensor::arange(0f32, 37.0, &Device::Cpu).unwrap().affine(0.25, -3.0).unwrap();
        let want: f64 = (0..37).map(|i| (i as f64 * 0.25 - 3.0).powi(2)).sum();
        assert!((sum_squares(&t).unwrap() - want).abs() < 1e-9);
        // A strided view takes candle's ops.
        let m = t.narrow(0, 0, 36).unwrap().reshape((6, 6)).unwrap().t().unwrap();
        let want36: f64 = (0..36).map(|i| (i as f64 * 0.25 - 3.0).powi(2)).sum();
        assert!((sum_squares(&m).unwrap() - want36).abs() < 1e-4);
    }

    #[test]
    fn tasks_cover_whole_cache_lines_and_never_get_small() {
        for n in [1, 63, MIN_TASK, MIN_TASK + 1, 70_000, 10_000_001] {
            let len = task_len(n);
            assert!(len >= MIN_TASK && len.is_multiple_of(64), "n = {n}: task of {len}");
            assert!(n.div_ceil(len) <= parallel::threads().max(1), "n = {n}: more tasks than threads");
        }
    }

    #[test]
    fn all_finite_sees_a_bad_value_in_every_task() {
        let n = 3 * MIN_TASK + 17;
        let len = task_len(n);
        // The first and last element of the first two tasks (one task when the pool has one thread).
        for at in [0, len - 1, len, n / 2, n - 1].into_iter().filter(|&at| at < n) {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut v = vec![1.5f32; n];
                v[at] = bad;
                let t = Tensor::from_vec(v, n, &Device::Cpu).unwrap();
                assert!(!all_finite(&t).unwrap(), "{bad} at {at} of {n} missed");
                let t64 = t.to_dtype(candle_core::DType::F64).unwrap();
                assert!(!all_finite(&t64).unwrap(), "f64: {bad} at {at} of {n} missed");
            }
        }
        let ok = Tensor::ones(n, candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(all_finite(&ok).unwrap());
    }
}
