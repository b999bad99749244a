//! Taper's tensor layer.
//!
//! candle supplies the tensors, kernels and devices; this crate adds what every Taper program
//! needs around them:
//!
//! * [`DeviceSpec`]: device selection from a string (`cpu`, `cuda`, `cuda:N`, `auto`), with an
//!   error that names the fix when CUDA is asked for but not compiled in or not present;
//! * [`parse_dtype`]: `f32` (the default) or `f64` (where exactness matters);
//! * [`SeededRng`]: random tensors drawn on the host from a portable seeded generator, so the same
//!   seed gives the same numbers on every device.

// A library returns errors: no `unwrap`/`expect` outside tests.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod device;
mod error;
pub mod parallel;
mod rng;
mod testing;

pub use candle_core::{DType, Device, Shape, Tensor, D};
pub use device::{cuda_compiled, device_name, DeviceSpec};
pub use error::{Error, Result};
pub use rng::SeededRng;
pub use testing::test_devices;

/// Sets the process up for fast CPU work. Nothing needs to call it: the first parameter or tape
/// a program makes calls it ([`ensure_cpu`]); a program that starts threads of its own before it
/// builds a model may call it first thing in `main` (it changes the environment, which is not safe
/// while other threads read it). Calling it again does nothing. It does three things:
///
/// * **Fixes the thread count.** candle 0.11 asks the OS how many cores there are (reading sysfs
///   and `/proc`) on every matrix product and convolution unless `RAYON_NUM_THREADS` is set: tens
///   of microseconds per op, which dominates small models (an airfoil epoch runs 8x slower). This
///   sets `RAYON_NUM_THREADS` to the available parallelism when it is unset; Taper's own pool
///   ([`parallel`]) has that many threads. When called on the main thread, that thread joins
///   rayon's pool, so parallel work called from it takes a share.
/// * **Keeps candle's own thread pool from competing with Taper's.** candle 0.11 runs its
///   element-wise ops on large tensors on a barrier pool whose workers spin after each op; beside
///   Taper's pool that is one spinning thread too many for the cores (the GPT step took 45 ms
///   instead of 35 on 2 cores), and its caller waits for every worker even when the machine is
///   busy. This sets `CANDLE_NUM_THREADS=1` when it is unset, so those ops run on the calling
///   thread (Taper's kernels do the heavy work on its own pool).
/// * **Keeps freed memory in the process** (Linux with glibc). A training step allocates and frees
///   the same large buffers every step (activations, gradients, convolution scratch). By default
///   glibc hands freed memory back to the OS once more than a few megabytes sit free at the top of
///   the heap, and serves large requests with fresh `mmap`s, so every step page-faults its buffers
///   back in: a third of the documents' ConvNet step. This raises malloc's trim threshold to
///   1 GiB and its mmap threshold to 32 MiB (the most glibc allows). The cost: the process keeps
///   its peak resident memory instead of shrinking between steps. Settings made through glibc's
///   own `MALLOC_TRIM_THRESHOLD_` / `MALLOC_MMAP_THRESHOLD_` variables are left alone.
pub fn init_cpu() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(set_up_cpu);
}

/// [`init_cpu`], if it has not run yet: what parameters and tapes call when they are made, so
/// that no program has to.
#[inline]
pub fn ensure_cpu() {
    init_cpu();
}

fn set_up_cpu() {
    let n = match std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n > 0 => n,
        _ => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
            n
        }
    };
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    // The main thread joins the pool: parallel kernels called from it run in place, this thread
    // taking a share, instead of being handed to the pool while it sleeps. Any other thread (a
    // test's, a user's worker) may end before the pool does, so it stays outside.
    let builder = rayon::ThreadPoolBuilder::new().num_threads(n);
    let builder =
        if std::thread::current().name() == Some("main") { builder.use_current_thread() } else { builder };
    let _ = builder.build_global();
    keep_freed_memory();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads exist.
    unsafe {
        if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// Parses a dtype name: `f32` (alias `float32`) or `f64` (alias `float64`).
///
/// Taper's differentiable ops and optimizers work in these two float types; `f32` is the default
/// everywhere, `f64` is used where exactness matters (gradient checks, the d2l traces).
pub fn parse_dtype(name: &str) -> Result<DType> {
    match name.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "f64" | "float64" => Ok(DType::F64),
        other => Err(Error::UnknownDType(other.to_string())),
    }
}

/// Checks that `dtype` is one of the float types Taper computes in (`f32`, `f64`).
pub fn check_float_dtype(dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::F64 => Ok(()),
        other => Err(Error::UnsupportedDType(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names() {
        assert_eq!(parse_dtype("f32").unwrap(), DType::F32);
        assert_eq!(parse_dtype("F64").unwrap(), DType::F64);
        assert_eq!(parse_dtype("float64").unwrap(), DType::F64);
        let err = parse_dtype("f16").unwrap_err().to_string();
        assert!(err.contains("f16") && err.contains("f32"), "{err}");
        assert!(check_float_dtype(DType::U8).is_err());
        assert!(check_float_dtype(DType::F64).is_ok());
    }
}
