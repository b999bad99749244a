//! The one place that says how Taper's CPU kernels split work across threads.
//!
//! A training step runs a few dozen short parallel loops (a matrix product, a pooling pass, an
//! optimizer update) separated by short serial stretches. A pool whose workers fall asleep between
//! loops pays a wake-up (a futex call and a context switch) at every loop; on the documents' MLP
//! that was a sixth of the step. These loops run on candle's barrier pool instead: its workers
//! spin for about a millisecond after each job before parking, so back-to-back loops start at
//! once, and the calling thread takes a share of each job itself (PyTorch's OpenMP threads spin in
//! the same way). The pool has `RAYON_NUM_THREADS` (or `CANDLE_NUM_THREADS`) threads in all,
//! the caller included; [`crate::init_cpu`] sets the former.
//!
//! Calls made from inside a job (on any of its threads) run inline, so kernels can nest.

use std::cell::Cell;
use std::sync::Mutex;

thread_local! {
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

/// The number of threads a job runs on (the calling thread included).
pub fn threads() -> usize {
    candle_core::utils::barrier_pool().n_workers() + 1
}

/// Resets this thread's in-job flag when a job's share ends, even by a panic.
struct InJob(bool);

impl InJob {
    fn enter() -> Self {
        Self(IN_JOB.with(|f| f.replace(true)))
    }
}

impl Drop for InJob {
    fn drop(&mut self) {
        IN_JOB.with(|f| f.set(self.0));
    }
}

/// Runs `f(i)` for every `i` in `0..n`, spread over the threads (each thread takes the next few
/// indices as it finishes, so uneven items balance). Inline when `n <= 1`, with one thread, or
/// inside another job.
pub fn for_each(n: usize, f: impl Fn(usize) + Sync) {
    if n <= 1 || threads() == 1 || IN_JOB.with(Cell::get) {
        (0..n).for_each(f);
        return;
    }
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        let _job = InJob::enter();
        range.for_each(&f);
    });
}

/// Runs `f(i)` for every `i` in `0..n` in parallel as [`for_each`] does, collecting the results in
/// order.
pub fn map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    for_each(n, |i| {
        let r = f(i);
        if let Ok(mut slot) = slots[i].lock() {
            *slot = Some(r);
        }
    });
    slots.into_iter().filter_map(|s| s.into_inner().ok().flatten()).collect()
}

/// Work items of one parallel job, each taken by exactly one task: the one way Taper's kernels
/// hand disjoint pieces of mutable buffers (or tuples of them) to the pool's threads, in safe
/// code. Each item sits in its own slot; the task for index `i` takes item `i` out.
pub struct Slots<T>(Vec<Mutex<Option<T>>>);

impl<T> Slots<T> {
    /// Slots holding `items`, in order.
    pub fn new(items: impl IntoIterator<Item = T>) -> Self {
        Self(items.into_iter().map(|t| Mutex::new(Some(t))).collect())
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Takes item `i` out (`None` if already taken or past the end).
    pub fn take(&self, i: usize) -> Option<T> {
        self.0.get(i).and_then(|slot| slot.lock().ok()).and_then(|mut item| item.take())
    }
}

/// `data` cut into consecutive `chunk`-long pieces (the last may be shorter), one per slot.
pub fn pieces<T>(data: &mut [T], chunk: usize) -> Slots<&mut [T]> {
    Slots::new(data.chunks_mut(chunk.max(1)))
}

/// Calls `f(i, chunk)` for the consecutive `chunk`-long pieces of `data` (the last may be shorter),
/// in parallel.
pub fn for_each_chunk_mut<T: Send>(data: &mut [T], chunk: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let slots = pieces(data, chunk);
    for_each(slots.len(), |i| {
        if let Some(piece) = slots.take(i) {
            f(i, piece)
        }
    });
}

/// A raw pointer that may cross to the pool's threads, for kernels whose tasks write disjoint
/// but interleaved parts of one buffer (a block of columns of a matrix), which [`pieces`] cannot
/// express. Whoever dereferences it must make sure no two tasks touch the same element and that
/// the buffer outlives the job.
#[derive(Debug)]
pub struct SendPtr<T: Send>(pub *mut T);

impl<T: Send> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send> Copy for SendPtr<T> {}

// SAFETY: the pointee is `Send`, and the tasks that share the pointer write disjoint elements
// (the contract above), so handing it to other threads is sound.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as for `Send`: shared references only copy the pointer; accesses are disjoint.
unsafe impl<T: Send> Sync for SendPtr<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_runs_once_and_nesting_runs_inline() {
        for n in [0, 1, 2, 7, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for_each(n, |i| {
                // A nested job (as a kernel calling a parallel product) must not deadlock.
                for_each(3, |_| {});
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n = {n}");
        }
        assert_eq!(map(5, |i| i * i), [0, 1, 4, 9, 16]);
        let mut v = vec![0usize; 103];
        for_each_chunk_mut(&mut v, 10, |i, piece| piece.iter_mut().for_each(|x| *x = i));
        assert!(v.iter().enumerate().all(|(j, &x)| x == j / 10));
        assert!(threads() >= 1);
        let slots = Slots::new([1, 2, 3]);
        assert_eq!((slots.len(), slots.take(1), slots.take(1), slots.take(7)), (3, Some(2), None, None));
    }
}
