//! CPU kernels that the backward rules (and a few forwards) call on contiguous f32/f64 tensors.
//!
//! The rules in `ops/` decide *what* to compute; where a candle kernel would make extra passes
//! over memory or is slow on the CPU (convolution backward, pooling with saved indices, gradients
//! laid out like their parameters), they call a kernel from here instead. Every kernel works on
//! plain slices, runs the batch (or the planes) in parallel on `taper_tensor::parallel`'s pool, and
//! uses the `gemm` crate
//! (candle's own matrix product) for the heavy lifting. Other devices and dtypes keep candle's
//! kernels: see each rule's `match`.

pub(crate) mod attention;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod linear;
pub(crate) mod norm;
pub(crate) mod pool;
pub(crate) mod simd;
pub(crate) mod softmax;

use std::marker::PhantomData;
use std::mem::MaybeUninit;

use candle_core::{Device, Storage, StorageRef, Tensor, WithDType};
use taper_tensor::parallel::{self, pieces, SendPtr};

use crate::kernels::{kernels, Kernels};
use crate::Result;

/// Runs `$body` with `$T` bound to the Rust type of `$dtype` (f32 or f64); `None` for other dtypes.
macro_rules! with_float {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $T = f32;
                Some($body)
            }
            candle_core::DType::F64 => {
                type $T = f64;
                Some($body)
            }
            _ => None,
        }
    };
}
pub(crate) use with_float;

/// The float types the CPU kernels run in.
pub(crate) trait Float:
    WithDType
    + Copy
    + Send
    + Sync
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::MulAssign
    + 'static
{
    const ZERO: Self;
    const ONE: Self;
    fn is_nan(self) -> bool;
    /// `eˣ` (f32: [`simd::exp_f32`], which vectorizes; f64: libm's).
    fn exp(self) -> Self;
    /// `(Φ(x), φ(x))`: the standard normal CDF `(1 + erf(x/√2))/2` and density
    /// `e^(-x²/2)/√(2π)` (f32: one [`simd::exp_f32`] and [`simd::erf_f32_with`], as PyTorch's
    /// vectorized GELU; f64: libm's `erf` and `exp`).
    fn normal_cdf_pdf(self) -> (Self, Self);
}

/// `1/√(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        simd::exp_f32(self)
    }
    #[inline(always)]
    fn normal_cdf_pdf(self) -> (Self, Self) {
        // e^(-x²/2) is both the density's factor and erf(x/√2)'s e^(-(x/√2)²).
        let e = simd::exp_f32(-0.5 * self * self);
        let erf = simd::erf_f32_with(self * std::f32::consts::FRAC_1_SQRT_2, e);
        (0.5 + 0.5 * erf, e * INV_SQRT_2PI as f32)
    }
}

impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn normal_cdf_pdf(self) -> (Self, Self) {
        let erf = candle_core::cpu::erf::erf_f64(self * std::f64::consts::FRAC_1_SQRT_2);
        (0.5 + 0.5 * erf, (-0.5 * self * self).exp() * INV_SQRT_2PI)
    }
}

/// The elements of a contiguous CPU tensor, borrowed in place (the storage stays read-locked while
/// this lives).
pub(crate) struct HostSlice<'a, T> {
    _guard: StorageRef<'a>,
    ptr: *const T,
    len: usize,
    _t: PhantomData<&'a [T]>,
}

impl<T> HostSlice<'_, T> {
    pub(crate) fn get(&self) -> &[T] {
        // SAFETY: `ptr..ptr+len` lies inside the CPU storage's vector (checked when made), which
        // cannot be moved or written while `_guard` holds its read lock.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Borrows the elements of `t` for a CPU kernel when it is a contiguous CPU tensor of dtype `T`
/// and the calling thread takes the kernels ([`Kernels::Native`]); `None` sends the op down its
/// device-generic path.
pub(crate) fn host_slice<T: Float>(t: &Tensor) -> Option<HostSlice<'_, T>> {
    if kernels() == Kernels::Generic {
        return None;
    }
    host_view(t)
}

/// Borrows the elements of `t` when it is a contiguous CPU tensor of dtype `T`, whatever the
/// kernel choice: for paths that read the host on every device (pooling's backward rules on a
/// host copy, scalar reads).
pub(crate) fn host_view<T: Float>(t: &Tensor) -> Option<HostSlice<'_, T>> {
    if !t.device().is_cpu() || t.dtype() != T::DTYPE {
        return None;
    }
    let (guard, layout) = t.storage_and_layout();
    let (start, end) = layout.contiguous_offsets()?;
    let (ptr, len) = match &*guard {
        Storage::Cpu(cpu) => {
            let all = T::cpu_storage_as_slice(cpu).ok()?;
            let part = all.get(start..end)?;
            (part.as_ptr(), part.len())
        }
        _ => return None,
    };
    Some(HostSlice { _guard: guard, ptr, len, _t: PhantomData })
}

/// A 2-D CPU tensor of dtype `T` as a matrix view on its storage, whatever its strides (a
/// transposed view reads in place).
pub(crate) fn host_matrix<T: Float>(t: &Tensor) -> Option<(HostSlice<'_, T>, usize, usize)> {
    if kernels() == Kernels::Generic || !t.device().is_cpu() || t.dtype() != T::DTYPE || t.rank() != 2 {
        return None;
    }
    let (guard, layout) = t.storage_and_layout();
    let (rows, cols) = (layout.dims()[0], layout.dims()[1]);
    let (rs, cs) = (layout.stride()[0], layout.stride()[1]);
    let start = layout.start_offset();
    let extent = if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 };
    let (ptr, len) = match &*guard {
        Storage::Cpu(cpu) => {
            let part = T::cpu_storage_as_slice(cpu).ok()?.get(start..start + extent)?;
            (part.as_ptr(), part.len())
        }
        _ => return None,
    };
    Some((HostSlice { _guard: guard, ptr, len, _t: PhantomData }, rs, cs))
}

/// A CPU tensor owning `values` (no copy).
pub(crate) fn tensor<T: Float>(values: Vec<T>, dims: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, dims, &Device::Cpu)?)
}

/// A vector of `n` elements made by `fill`, which gets disjoint chunks of `chunk` elements (with
/// each chunk's index and a per-worker scratch state made by `init`) in parallel. Each chunk is
/// zeroed right before `fill` sees it, while it is in cache, instead of one serial zeroing pass
/// over the whole vector up front.
pub(crate) fn filled<T: Float, S>(
    n: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    fill: impl Fn(&mut S, usize, &mut [T]) + Sync + Send,
) -> Vec<T> {
    // SAFETY: each chunk is initialized by `zeroed` before `fill` sees it.
    unsafe { written(n, chunk, init, |state, i, part| fill(state, i, zeroed(part))) }
}

/// Like [`filled`], without zeroing: `fill` writes each element of its chunk itself.
///
/// # Safety
/// `fill` must initialize every element of the chunk it is given.
pub(crate) unsafe fn written<T: Float, S>(
    n: usize,
    chunk: usize,
    init: impl Fn() -> S + Sync + Send,
    fill: impl Fn(&mut S, usize, &mut [MaybeUninit<T>]) + Sync + Send,
) -> Vec<T> {
    let chunk = chunk.max(1);
    let mut v: Vec<T> = Vec::with_capacity(n);
    // One contiguous run of chunks per thread, each with one scratch state.
    let chunks = n.div_ceil(chunk);
    let per = chunks.div_ceil(threads()).max(1);
    let runs = pieces(&mut v.spare_capacity_mut()[..n], per * chunk);
    // About a nanosecond an element: one pass over memory.
    parallel::for_each_sized(runs.len(), n, |r| {
        let Some(run) = runs.take(r) else { return };
        let mut state = init();
        for (j, part) in run.chunks_mut(chunk).enumerate() {
            fill(&mut state, r * per + j, part);
        }
    });
    // SAFETY: the runs cover `0..n`, and the caller guarantees `fill` initialized each chunk.
    v.set_len(n);
    v
}

/// Zeroes uninitialized memory and hands it back as initialized.
pub(crate) fn zeroed<T: Float>(part: &mut [MaybeUninit<T>]) -> &mut [T] {
    part.fill(MaybeUninit::new(T::ZERO));
    // SAFETY: every element of `part` was just initialized.
    unsafe { &mut *(part as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// The number of threads kernels split their work over.
pub(crate) fn threads() -> usize {
    parallel::threads()
}

/// A matrix view on a slice: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major `rows × cols` matrix.
    pub(crate) fn rows(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major `rows × cols` matrix stored in `data` (a `cols × rows` view).
    pub(crate) fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self { data, rows: cols, cols: rows, rs: 1, cs: cols }
    }

    /// A `rows × cols` view with the given strides.
    pub(crate) fn strided(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        Self { data, rows, cols, rs, cs }
    }

    /// The transpose, as a view.
    pub(crate) fn t(&self) -> Self {
        Self { data: self.data, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    /// Rows `start..start + len`.
    fn rows_range(&self, start: usize, len: usize) -> Self {
        Self { data: &self.data[start * self.rs..], rows: len, ..*self }
    }

    /// Columns `start..start + len`.
    fn cols_range(&self, start: usize, len: usize) -> Self {
        Self { data: &self.data[start * self.cs..], cols: len, ..*self }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// Multiply-adds below which a product runs on one thread (the split would cost more than it
/// saves).
const PAR_MIN_WORK: usize = 1 << 18;
/// A product is split along its depth `k` when `k` is at least this many times its longer side.
const SPLIT_K_RATIO: usize = 8;
/// Pieces of a product split along its depth, on any number of threads (see [`splits_depth`]).
const DEPTH_PARTS: usize = 8;
/// Pieces of a split product start on multiples of this many rows, columns or depth steps (the
/// `gemm` crate's micro-kernels work in such blocks).
const SPLIT_ALIGN: usize = 16;
/// Matrix-vector products up to this many matrix elements take the plain dot loop.
const DOT_MAX_ELEMS: usize = 1 << 16;

/// About how long an `m × k · k × n` product takes on one thread, in nanoseconds (at 64 GFLOP/s;
/// small products run slower, so this errs towards small): what the pool weighs against a
/// wake-up (see [`parallel::for_each_sized`]).
pub(crate) fn product_ns(m: usize, n: usize, k: usize) -> usize {
    macs_ns(m.saturating_mul(n).saturating_mul(k))
}

/// [`product_ns`] for products of `macs` multiply-adds in all.
fn macs_ns(macs: usize) -> usize {
    macs / 32
}

/// Whether a product is worth splitting over threads.
pub(crate) fn par_for(m: usize, n: usize, k: usize) -> bool {
    m * n * k >= PAR_MIN_WORK && threads() > 1
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` when `accumulate`; `dst` is row-major `m × n`.
///
/// With `parallel`, the product is cut into one piece per thread, each computed on one thread,
/// along the longer of `m` and `n`. On this project's shapes that is up to 2x faster than letting
/// the `gemm` crate split the product itself. A product whose depth `k` dwarfs its output is cut
/// along `k` instead, into a fixed number of pieces whatever the threads (see
/// [`splits_depth`]): each piece sums part of the depth into its own buffer, then the buffers
/// are added in order, so the result has the same bits on one thread or many.
pub(crate) fn gemm<T: Float>(
    dst: &mut [T],
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        rhs.rows == k && dst.len() >= m * n && lhs.fits() && rhs.fits(),
        "gemm: inconsistent operands ({m}x{k} · {}x{n} into {})",
        rhs.rows,
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::ZERO);
        }
        return;
    }
    // SAFETY: `dst` holds `m × n` initialized elements and the operands fit their slices (checked
    // above); `dst` is borrowed mutably, so it cannot alias them.
    unsafe { gemm_raw(dst.as_mut_ptr(), lhs, rhs, accumulate, parallel) }
}

/// A new row-major `m × n` matrix `lhs · rhs`, written by the product itself (no zeroing pass).
pub(crate) fn product<T: Float>(lhs: Mat<'_, T>, rhs: Mat<'_, T>, parallel: bool) -> Vec<T> {
    let len = lhs.rows * rhs.cols;
    let mut out: Vec<T> = Vec::with_capacity(len);
    product_into(&mut out.spare_capacity_mut()[..len], lhs, rhs, parallel);
    // SAFETY: `product_into` initialized all `len` elements.
    unsafe { out.set_len(len) };
    out
}

/// Writes the row-major `m × n` product `lhs · rhs` into uninitialized `dst` (exactly `m × n`
/// long) and returns it initialized.
pub(crate) fn product_into<'a, T: Float>(
    dst: &'a mut [MaybeUninit<T>],
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    parallel: bool,
) -> &'a mut [T] {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        rhs.rows == k && dst.len() == m * n && lhs.fits() && rhs.fits(),
        "product: inconsistent operands ({m}x{k} · {}x{n} into {})",
        rhs.rows,
        dst.len()
    );
    if k == 0 || m == 0 || n == 0 {
        return zeroed(dst);
    }
    // SAFETY: without accumulation the product writes every element of `dst` before any read (the
    // `gemm` crate stores `lhs · rhs` on its first pass over the depth, and reads `dst` only on
    // later passes, after writing it); the operands fit their slices (checked above).
    unsafe {
        gemm_raw(dst.as_mut_ptr().cast::<T>(), lhs, rhs, false, parallel);
        &mut *(dst as *mut [MaybeUninit<T>] as *mut [T])
    }
}

/// # Safety
/// `dst` must be valid for writes of `m × n` elements (and reads, when `accumulate`), the
/// operands must fit their slices, and nothing else may access `dst` meanwhile.
unsafe fn gemm_raw<T: Float>(
    dst: *mut T,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if splits_depth(m, n, k) {
        return gemm_depth_split(dst, lhs, rhs, accumulate, parallel);
    }
    let parts = if parallel && par_for(m, n, k) { threads() } else { 1 };
    gemm_split(dst, lhs, rhs, accumulate, parts)
}

/// Whether a product is cut along its depth `k` (into [`DEPTH_PARTS`] partial products added in
/// order): when its depth dwarfs its output and it is big enough to split. Decided by the shape
/// alone, never by the thread count, so the sum's rounding is the same on every machine.
fn splits_depth(m: usize, n: usize, k: usize) -> bool {
    m * n * k >= PAR_MIN_WORK && k >= SPLIT_K_RATIO * m.max(n)
}

/// [`gemm_raw`] for a product cut along its depth: piece 0 into `dst`, the others into buffers
/// added into `dst` in order, the pieces spread over the threads when `parallel`, one after the
/// other otherwise (the same arithmetic either way).
///
/// # Safety
/// As [`gemm_raw`].
unsafe fn gemm_depth_split<T: Float>(
    dst: *mut T,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let dst = SendPtr(dst);
    let cuts = cuts(k, DEPTH_PARTS, SPLIT_ALIGN);
    let piece = |i: usize| {
        let (s, len) = cuts[i];
        let (lhs, rhs) = (lhs.cols_range(s, len), rhs.rows_range(s, len));
        if i == 0 {
            let d = dst;
            gemm_one(d.0, n, lhs, rhs, accumulate);
            return Vec::new();
        }
        let mut buf: Vec<T> = Vec::with_capacity(m * n);
        gemm_one(buf.as_mut_ptr(), n, lhs, rhs, false);
        buf.set_len(m * n);
        buf
    };
    let extra = if parallel {
        parallel::map_sized(cuts.len(), product_ns(m, n, k), piece)
    } else {
        (0..cuts.len()).map(piece).collect()
    };
    let out = std::slice::from_raw_parts_mut(dst.0, m * n);
    for part in &extra[1..] {
        for (o, &v) in out.iter_mut().zip(part) {
            *o += v;
        }
    }
}

/// [`gemm_raw`] cut into `parts` pieces.
///
/// # Safety
/// As [`gemm_raw`].
unsafe fn gemm_split<T: Float>(
    dst: *mut T,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
    accumulate: bool,
    parts: usize,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if parts <= 1 {
        return gemm_one(dst, n, lhs, rhs, accumulate);
    }
    let (dst, ns) = (SendPtr(dst), product_ns(m, n, k));
    if m >= n {
        let cuts = cuts(m, parts, SPLIT_ALIGN);
        parallel::for_each_sized(cuts.len(), ns, |i| {
            let ((s, len), d) = (cuts[i], dst);
            gemm_one(d.0.add(s * n), n, lhs.rows_range(s, len), rhs, accumulate)
        });
    } else {
        let cuts = cuts(n, parts, SPLIT_ALIGN);
        parallel::for_each_sized(cuts.len(), ns, |i| {
            let ((s, len), d) = (cuts[i], dst);
            gemm_one(d.0.add(s), n, lhs, rhs.cols_range(s, len), accumulate)
        });
    }
}

/// New row-major products `lhsᵢ · rhsᵢ`, all in one parallel job: each product is cut along the
/// longer side of its output into pieces in proportion to its share of the work, and the pieces
/// of all of them are spread over the threads. Two products of equal work on two threads (a
/// linear layer's input and weight gradients) each run whole on one thread: no split, no
/// second job.
pub(crate) fn products<T: Float>(jobs: &[(Mat<'_, T>, Mat<'_, T>)]) -> Vec<Vec<T>> {
    let work: Vec<usize> = jobs.iter().map(|(a, b)| a.rows * a.cols * b.cols).collect();
    let total: usize = work.iter().sum();
    let th = threads();
    let mut outs: Vec<Vec<T>> = jobs.iter().map(|(a, b)| Vec::with_capacity(a.rows * b.cols)).collect();
    // (product, start, len, along rows)
    let mut pieces = Vec::new();
    for (i, (a, b)) in jobs.iter().enumerate() {
        assert!(a.cols == b.rows && a.fits() && b.fits(), "products: inconsistent operands");
        if a.cols == 0 {
            // An empty depth: zeros, written here.
            outs[i].resize(a.rows * b.cols, T::ZERO);
            continue;
        }
        let parts =
            if total >= PAR_MIN_WORK && th > 1 { (th * work[i]).div_ceil(total.max(1)).max(1) } else { 1 };
        let rows = a.rows >= b.cols;
        for (s, len) in cuts(if rows { a.rows } else { b.cols }, parts, SPLIT_ALIGN) {
            pieces.push((i, s, len, rows));
        }
    }
    let dsts: Vec<SendPtr<T>> = outs.iter_mut().map(|o| SendPtr(o.as_mut_ptr())).collect();
    let run = |k: usize| {
        let (i, s, len, rows) = pieces[k];
        let ((a, b), d, n) = (jobs[i], dsts[i], jobs[i].1.cols);
        // SAFETY: `outs[i]` has room for `a.rows × n` elements; the pieces of one product write
        // disjoint row or column blocks of it; the operands fit (checked above). Without
        // accumulation the product writes each element before reading it.
        unsafe {
            if rows {
                gemm_one(d.0.add(s * n), n, a.rows_range(s, len), b, false);
            } else {
                gemm_one(d.0.add(s), n, a, b.cols_range(s, len), false);
            }
        }
    };
    if pieces.len() > 1 {
        parallel::for_each_sized(pieces.len(), macs_ns(total), run);
    } else {
        (0..pieces.len()).for_each(run);
    }
    for (o, (a, b)) in outs.iter_mut().zip(jobs) {
        // SAFETY: the pieces covered every element of every product (the empty-depth ones are
        // already full).
        unsafe { o.set_len(a.rows * b.cols) };
    }
    outs
}

/// `parts` near-equal pieces `(start, len)` of `0..total`, each a multiple of `align` but the last.
fn cuts(total: usize, parts: usize, align: usize) -> Vec<(usize, usize)> {
    let step = total.div_ceil(parts).div_ceil(align) * align;
    (0..total).step_by(step.max(1)).map(|s| (s, step.min(total - s))).collect()
}

/// One product on this thread into `dst` (row stride `dst_rs`).
///
/// # Safety
/// As [`gemm_raw`], for the `lhs.rows × rhs.cols` block of `dst` with row stride `dst_rs`.
unsafe fn gemm_one<T: Float>(dst: *mut T, dst_rs: usize, lhs: Mat<'_, T>, rhs: Mat<'_, T>, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if n == 1 && m * k <= DOT_MAX_ELEMS {
        // A matrix times a vector (a small model's linear layer): a dot product per row is
        // cheaper than the general product's set-up.
        for i in 0..m {
            let mut acc = T::ZERO;
            for l in 0..k {
                acc += *lhs.data.get_unchecked(i * lhs.rs + l * lhs.cs) * *rhs.data.get_unchecked(l * rhs.rs);
            }
            let d = dst.add(i * dst_rs);
            *d = if accumulate { *d + acc } else { acc };
        }
        return;
    }
    ::gemm::gemm(
        lhs.rows,
        rhs.cols,
        lhs.cols,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs.data.as_ptr(),
        lhs.cs as isize,
        lhs.rs as isize,
        rhs.data.as_ptr(),
        rhs.cs as isize,
        rhs.rs as isize,
        T::ONE,
        T::ONE,
        false,
        false,
        false,
        ::gemm::Parallelism::None,
    )
}

/// Sums `parts` element-wise into the first (all of the same length).
pub(crate) fn sum_into_first<T: Float>(mut parts: Vec<Vec<T>>) -> Vec<T> {
    let mut first = if parts.is_empty() { Vec::new() } else { parts.swap_remove(0) };
    for p in &parts {
        for (a, &b) in first.iter_mut().zip(p) {
            *a += b;
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_matches_the_naive_product_for_every_layout() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let at: Vec<f64> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect(); // aᵀ stored row-major
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let naive: Vec<f64> =
            (0..m * n).map(|ij| (0..k).map(|l| a[ij / n * k + l] * b[l * n + ij % n]).sum()).collect();
        for (lhs, rhs) in [
            (Mat::rows(&a, m, k), Mat::rows(&b, k, n)),
            (Mat::transposed(&at, k, m), Mat::rows(&b, k, n)),
            (Mat::rows(&a, m, k), Mat::transposed(&bt, n, k)),
            (Mat::transposed(&at, k, m), Mat::transposed(&bt, n, k)),
        ] {
            for parallel in [false, true] {
                let mut dst = vec![1.0; m * n];
                gemm(&mut dst, lhs, rhs, true, parallel);
                for (d, e) in dst.iter().zip(&naive) {
                    assert!((d - (e + 1.0)).abs() < 1e-12);
                }
                gemm(&mut dst, lhs, rhs, false, parallel);
                for (d, e) in dst.iter().zip(&naive) {
                    assert!((d - e).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn a_depth_split_has_the_same_bits_on_one_thread_or_many() {
        // k ≥ 8·max(m, n) and m·n·k ≥ PAR_MIN_WORK: cut into DEPTH_PARTS pieces either way.
        let (m, k, n) = (6, 8000, 7);
        assert!(splits_depth(m, n, k) && !splits_depth(m, n, 100) && !splits_depth(64, 64, 500));
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let serial = product(Mat::rows(&a, m, k), Mat::rows(&b, k, n), false);
        let threaded = product(Mat::rows(&a, m, k), Mat::rows(&b, k, n), true);
        assert_eq!(serial, threaded);
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|l| a[i * k + l] as f64 * b[l * n + j] as f64).sum();
                assert!((serial[i * n + j] as f64 - want).abs() < 1e-2, "({i}, {j})");
            }
        }
    }

    #[test]
    fn split_products_match_the_unsplit_one() {
        // Shapes that take each cut: along m, along n, and deep ones (k ≥ 8·max(m, n)).
        for (m, k, n) in [(70, 9, 33), (21, 10, 75), (5, 300, 7), (1, 40, 1)] {
            let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
            let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let mut one = vec![0.5; m * n];
            gemm(&mut one, Mat::rows(&a, m, k), Mat::rows(&b, k, n), true, false);
            for parts in [2, 3, 5] {
                for rhs in [Mat::rows(&b, k, n), Mat::transposed(&bt, n, k)] {
                    let mut split = vec![0.5; m * n];
                    // SAFETY: `split` holds m × n elements; the operands fit.
                    unsafe { gemm_split(split.as_mut_ptr(), Mat::rows(&a, m, k), rhs, true, parts) };
                    for (x, y) in split.iter().zip(&one) {
                        assert!((x - y).abs() < 1e-12, "{m}x{k}x{n} in {parts}");
                    }
                }
            }
            let fresh = product(Mat::rows(&a, m, k), Mat::rows(&b, k, n), true);
            let both = products(&[
                (Mat::rows(&a, m, k), Mat::rows(&b, k, n)),
                (Mat::rows(&bt, n, k), Mat::transposed(&a, m, k)),
            ]);
            assert_eq!(both[0], fresh);
            let naive_t: Vec<f64> = (0..n * m).map(|ij| fresh[(ij % m) * n + ij / m]).collect();
            assert!(
                both[1].iter().zip(&naive_t).all(|(x, y)| (x - y).abs() < 1e-12),
                "{m}x{k}x{n} transposed"
            );
            assert!(fresh.iter().zip(&one).all(|(x, y)| (x + 0.5 - y).abs() < 1e-12));
        }
    }

    /// Products big enough to be cut (along rows for one, columns for the other) in one job.
    #[test]
    fn products_cut_into_pieces_match_single_products() {
        let (m, k, n) = (300, 40, 50);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let c: Vec<f64> = (0..k * 2 * m).map(|i| (i as f64 * 0.23).sin()).collect();
        let jobs = [
            (Mat::rows(&a, m, k), Mat::rows(&b, k, n)),
            (Mat::transposed(&b, k, n), Mat::rows(&c, k, 2 * m)),
        ];
        let got = products(&jobs);
        for (g, (l, r)) in got.iter().zip(jobs) {
            assert_eq!(*g, product(l, r, false));
        }
        assert_eq!(products(&[(Mat::rows(&a, m, 0), Mat::rows(&b, 0, n))])[0], vec![0.0; m * n]);
    }

    #[test]
    fn host_slice_borrows_contiguous_cpu_tensors_only() {
        let t = Tensor::arange(0f32, 12.0, &Device::Cpu).unwrap().reshape((3, 4)).unwrap();
        assert_eq!(host_slice::<f32>(&t).unwrap().get().len(), 12);
        assert!(host_slice::<f64>(&t).is_none(), "wrong dtype");
        assert!(host_slice::<f32>(&t.t().unwrap()).is_none(), "not contiguous");
        let part = t.narrow(0, 1, 2).unwrap();
        assert_eq!(host_slice::<f32>(&part).unwrap().get(), &[4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    }

    #[test]
    fn filled_writes_every_chunk() {
        let v: Vec<f32> = filled(10, 3, || (), |_, i, part| part.fill(i as f32));
        assert_eq!(v, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0]);
    }
}
