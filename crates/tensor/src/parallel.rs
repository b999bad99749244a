//! The one place that says how Taper's CPU kernels split work across threads, and the pool they
//! run on.
//!
//! A training step runs a few dozen short parallel loops (a matrix product, a pooling pass, an
//! optimizer update) separated by short serial stretches. A pool whose workers fall asleep after
//! every loop pays a wake-up (a futex call, and on a virtual machine an interrupt between virtual
//! CPUs: about 10 µs of the caller's time, and the worker arrives tens of µs later) at each one;
//! on the documents' MLP that was a sixth of the step. So the workers spin for [`SPIN`] after each
//! job before parking, and back-to-back loops start at once; the calling thread takes a share of
//! each job itself (PyTorch's OpenMP threads spin in the same way).
//!
//! On a machine whose cores other processes are using, a pool that waits for all its threads made
//! a small run ten times slower: a worker the kernel has not scheduled held the job until it ran,
//! and spinning threads took the cores the caller needed. Here:
//!
//! - a job is a list of items that threads claim one at a time from a shared counter; the caller
//!   claims too, so when the workers are late it runs every item itself;
//! - when the items are gone, the caller closes the job and waits only for the workers that
//!   joined it (each registers before it looks at the job, so either the caller sees it and waits,
//!   or it sees the job closed and leaves it alone); the wait spins briefly, then yields the core;
//! - a job smaller than [`WAKE_NS`] of one thread's time does not wake parked workers: it runs on
//!   the threads already awake (the caller alone, when the workers sleep). Each kernel says how big
//!   its job is ([`for_each_sized`]);
//! - a worker stops spinning and parks when it sees it was descheduled while spinning, or woke to
//!   find the job already done: on a busy machine its spinning would take the core the caller
//!   needs.
//!
//! The pool has `RAYON_NUM_THREADS` threads in all, the caller included (the number of cores when
//! unset); [`crate::init_cpu`] sets it. Workers are not pinned to cores. Calls made from inside a
//! job (on any of its threads), or from a second thread while another's job runs, run inline, so
//! kernels can nest and threads of one process never block each other.

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long a worker that just took part in a job spins, waiting for the next, before it parks.
pub const SPIN: Duration = Duration::from_micros(500);
/// A gap this long between two looks at the clock while spinning means the worker was
/// descheduled: the machine's cores are taken, so it parks instead of spinning on.
const DESCHEDULED: Duration = Duration::from_micros(50);
/// How long the caller spins for the workers of its job to finish before yielding its core.
const WAIT_SPIN: Duration = Duration::from_micros(20);
/// Jobs that take less than this many nanoseconds on one thread do not wake parked workers.
pub const WAKE_NS: usize = 200_000;

thread_local! {
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

/// One parallel job: `n` items, claimed one at a time, each run by `call(data, i)`.
struct Job {
    n: usize,
    next: AtomicUsize,
    data: *const (),
    call: unsafe fn(*const (), usize),
}

impl Job {
    /// Claims and runs items until none is left; whether it ran any. A panicking item is caught
    /// and kept for the caller, which re-raises it once the job is closed.
    ///
    /// # Safety
    /// `data` and `call` must still be valid: the job's caller has not returned.
    unsafe fn work(&self, shared: &Shared) -> bool {
        let mut ran = false;
        loop {
            let i = self.next.fetch_add(1, Relaxed);
            if i >= self.n {
                return ran;
            }
            ran = true;
            let (data, call) = (self.data, self.call);
            // SAFETY: as this function's contract: the closure behind `data` outlives the job.
            let run = std::panic::AssertUnwindSafe(|| unsafe { call(data, i) });
            if let Err(payload) = std::panic::catch_unwind(run) {
                if let Ok(mut slot) = shared.panic.lock() {
                    slot.get_or_insert(payload);
                }
            }
        }
    }
}

/// # Safety
/// `data` must point to a live `F`.
unsafe fn trampoline<F: Fn(usize) + Sync>(data: *const (), i: usize) {
    // SAFETY: the caller passes the `F` this trampoline was instantiated for.
    unsafe { (*data.cast::<F>())(i) }
}

/// What the caller and the workers share.
struct Shared {
    /// Bumped at each new job: what waiting workers watch.
    epoch: AtomicUsize,
    /// The open job, or null.
    job: AtomicPtr<Job>,
    /// Workers registered in the current job (or about to find it closed).
    active: AtomicUsize,
    /// Whether each worker is parked (or about to park), so the caller unparks only those.
    parked: Box<[AtomicBool]>,
    /// The first panic of the current job's items.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

struct Pool {
    shared: &'static Shared,
    workers: Vec<Thread>,
    /// Held by the thread whose job is open; another thread's job runs inline meanwhile.
    call: Mutex<()>,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let n = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            epoch: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            active: AtomicUsize::new(0),
            parked: (1..n).map(|_| AtomicBool::new(false)).collect(),
            panic: Mutex::new(None),
        }));
        let mut workers = Vec::with_capacity(n.saturating_sub(1));
        for w in 0..n.saturating_sub(1) {
            let spawned =
                std::thread::Builder::new().name(format!("taper-{}", w + 1)).spawn(move || worker(shared, w));
            match spawned {
                Ok(handle) => workers.push(handle.thread().clone()),
                // Fewer threads than asked (the system refused one): the pool works with those
                // it has; a worker's index is its place in `workers`, so stop at the first gap.
                Err(_) => break,
            }
        }
        Pool { shared, workers, call: Mutex::new(()) }
    })
}

/// A worker's life: wait for a job, register, work on it if it is still open, leave.
fn worker(shared: &'static Shared, w: usize) {
    IN_JOB.with(|f| f.set(true));
    let mut seen = shared.epoch.load(Acquire);
    let mut spin = SPIN;
    loop {
        seen = next_epoch(shared, w, seen, spin);
        shared.active.fetch_add(1, SeqCst);
        let job = shared.job.load(SeqCst);
        // SAFETY: registered in `active` before loading the pointer, so the job's caller waits
        // for this worker before it returns and the job goes out of scope.
        let ran = !job.is_null() && unsafe { (*job).work(shared) };
        shared.active.fetch_sub(1, Release);
        // Late (the caller did it all): the machine is busy, or the job was small; don't spin.
        spin = if ran { SPIN } else { Duration::ZERO };
    }
}

/// Waits until the epoch moves past `seen`: spinning for up to `spin` (less if descheduled
/// meanwhile), then parked.
fn next_epoch(shared: &Shared, w: usize, seen: usize, spin: Duration) -> usize {
    let start = Instant::now();
    let mut last = start;
    let mut spins = 0u32;
    loop {
        let e = shared.epoch.load(Acquire);
        if e != seen {
            return e;
        }
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) {
            std::hint::spin_loop();
            continue;
        }
        let now = Instant::now();
        let descheduled = now - last > DESCHEDULED;
        last = now;
        if now - start < spin && !descheduled {
            continue;
        }
        shared.parked[w].store(true, SeqCst);
        // The caller bumps the epoch, then unparks the workers it sees parked: either it sees
        // this flag, or this load sees its epoch (both sequentially consistent).
        while shared.epoch.load(SeqCst) == seen {
            std::thread::park();
        }
        shared.parked[w].store(false, Relaxed);
    }
}

/// Closes the caller's job and waits for the workers that joined it, even if the caller's share
/// panicked: the job lives on the caller's stack.
struct Close<'a>(&'a Shared);

impl Drop for Close<'_> {
    fn drop(&mut self) {
        self.0.job.store(std::ptr::null_mut(), SeqCst);
        let start = Instant::now();
        while self.0.active.load(SeqCst) != 0 {
            if start.elapsed() < WAIT_SPIN {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// The number of threads a job runs on (the calling thread included).
pub fn threads() -> usize {
    pool().workers.len() + 1
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

/// Runs `f(i)` for every `i` in `0..n`, spread over the threads: each thread takes the next index
/// as it finishes one, so uneven items balance and a late thread's share goes to the others.
/// Inline when `n <= 1`, with one thread, inside another job, or while another thread's job runs.
/// A panic in `f` is re-raised here once every thread has left the job. Wakes parked workers (for
/// a job known to be small, see [`for_each_sized`]).
pub fn for_each<F: Fn(usize) + Sync>(n: usize, f: F) {
    for_each_sized(n, usize::MAX, f)
}

/// [`for_each`] for a job that takes about `ns` nanoseconds on one thread: below [`WAKE_NS`] it
/// runs on the threads already awake and wakes no parked worker (the wake-up would cost more than
/// it saves, and on a busy machine the worker would come too late).
pub fn for_each_sized<F: Fn(usize) + Sync>(n: usize, ns: usize, f: F) {
    if n <= 1 || IN_JOB.with(Cell::get) {
        (0..n).for_each(f);
        return;
    }
    let pool = pool();
    let shared = pool.shared;
    let wake = ns >= WAKE_NS;
    // Everyone asleep and the job small: nothing to share it with.
    let inline = pool.workers.is_empty() || (!wake && shared.parked.iter().all(|p| p.load(Relaxed)));
    let guard = match pool.call.try_lock() {
        Ok(guard) if !inline => guard,
        _ => {
            (0..n).for_each(f);
            return;
        }
    };
    let job = Job { n, next: AtomicUsize::new(0), data: (&f as *const F).cast(), call: trampoline::<F> };
    let payload = {
        let _in = InJob::enter();
        shared.job.store((&job as *const Job).cast_mut(), SeqCst);
        let close = Close(shared);
        shared.epoch.fetch_add(1, SeqCst);
        if wake {
            for (w, t) in pool.workers.iter().enumerate() {
                if shared.parked[w].load(SeqCst) {
                    t.unpark();
                }
            }
        }
        // SAFETY: `f` and `job` live until `close` has waited for every worker that joined.
        unsafe { job.work(shared) };
        drop(close);
        shared.panic.lock().ok().and_then(|mut p| p.take())
    };
    drop(guard);
    if let Some(payload) = payload {
        std::panic::resume_unwind(payload);
    }
}

/// Runs `f(i)` for every `i` in `0..n` in parallel as [`for_each`] does, collecting the results in
/// order.
pub fn map<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    map_sized(n, usize::MAX, f)
}

/// [`map`] for a job of about `ns` nanoseconds on one thread (see [`for_each_sized`]).
pub fn map_sized<R: Send>(n: usize, ns: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let slots: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    for_each_sized(n, ns, |i| {
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
        let _quiet = QUIET.lock().unwrap_or_else(|e| e.into_inner());
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

    #[test]
    fn back_to_back_jobs_from_several_threads_each_run_every_item_once() {
        let _quiet = QUIET.lock().unwrap_or_else(|e| e.into_inner());
        // Jobs in quick succession (workers still spinning) and after pauses (workers parked),
        // from two threads at once (one runs inline while the other's job is open).
        std::thread::scope(|s| {
            for t in 0..2 {
                s.spawn(move || {
                    for round in 0..2000usize {
                        let n = 2 + (round + t) % 9;
                        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                        for_each(n, |i| {
                            hits[i].fetch_add(i + 1, Ordering::Relaxed);
                        });
                        let got: Vec<usize> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
                        assert_eq!(got, (1..=n).collect::<Vec<_>>(), "thread {t}, round {round}");
                        if round % 500 == 0 {
                            std::thread::sleep(SPIN * 3);
                        }
                    }
                });
            }
        });
    }

    /// The tests that need the workers parked (and no other test's job waking them) take this.
    static QUIET: Mutex<()> = Mutex::new(());

    #[test]
    fn a_small_job_wakes_no_parked_worker_and_a_large_one_does() {
        let _quiet = QUIET.lock().unwrap_or_else(|e| e.into_inner());
        let on_threads = |n: usize, ns: usize, item: Duration| {
            let ids = Mutex::new(Vec::new());
            for_each_sized(n, ns, |_| {
                std::thread::sleep(item);
                ids.lock().unwrap().push(std::thread::current().id());
            });
            let mut ids = ids.into_inner().unwrap();
            assert_eq!(ids.len(), n);
            ids.sort_by_key(|id| format!("{id:?}"));
            ids.dedup();
            ids
        };
        // Long enough after any job for every worker to have parked.
        std::thread::sleep(SPIN * 20);
        let me = std::thread::current().id();
        // Items long enough that a woken worker would surely take some.
        let small = on_threads(8, WAKE_NS - 1, Duration::from_millis(1));
        assert_eq!(small, [me], "a small job stays on the caller");
        if threads() > 1 {
            // A large job wakes the workers; with 8 items of 2 ms they join in time.
            std::thread::sleep(SPIN * 20);
            let ids = on_threads(8, WAKE_NS, Duration::from_millis(2));
            assert!(ids.len() > 1, "a large job is shared: {ids:?}");
        }
    }

    #[test]
    fn a_panicking_item_reaches_the_caller_after_the_others_finish() {
        let _quiet = QUIET.lock().unwrap_or_else(|e| e.into_inner());
        let done = AtomicUsize::new(0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for_each(8, |i| {
                if i == 3 {
                    panic!("item 3");
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        }));
        let message = caught.expect_err("the panic is re-raised").downcast::<&str>().map(|m| *m);
        assert_eq!(message.ok(), Some("item 3"));
        assert_eq!(done.load(Ordering::Relaxed), 7, "every other item ran");
        // The pool is still usable, and the panic does not leak into the next job.
        let hits = AtomicUsize::new(0);
        for_each(5, |_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 5);
    }
}
