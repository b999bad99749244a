//! The switch between Taper's CPU kernels and the device-generic path.
//!
//! Several backward rules (and a few forwards) have two implementations: a CPU kernel on host
//! slices (`crate::cpu`), and a path written with candle ops that runs on every device and is the
//! one CUDA takes. On the CPU the kernels win by default; [`with_kernels`]`(Kernels::Generic, ..)`
//! makes the calling thread take the device-generic path instead, so that it is tested on a
//! machine without a GPU (the gradient checks run every case both ways).
//!
//! The one gate is `cpu::host_slice` / `cpu::host_matrix`, through which every kernel reaches its
//! operands: under [`Kernels::Generic`] they decline, and each op falls back to its candle path.

use std::cell::Cell;

/// Which implementation an op with a CPU kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Taper's CPU kernels wherever they apply (contiguous f32/f64 on the CPU); candle ops
    /// elsewhere.
    #[default]
    Native,
    /// candle ops only, as on CUDA: the device-generic path, on every device.
    Generic,
}

thread_local! {
    static KERNELS: Cell<Kernels> = const { Cell::new(Kernels::Native) };
}

/// The calling thread's choice.
pub fn kernels() -> Kernels {
    KERNELS.with(Cell::get)
}

/// Sets the calling thread's choice until changed again; returns the previous one.
pub fn set_kernels(k: Kernels) -> Kernels {
    KERNELS.with(|c| c.replace(k))
}

/// Runs `f` with the calling thread's choice set to `k`, then restores the previous one (also
/// when `f` panics).
pub fn with_kernels<R>(k: Kernels, f: impl FnOnce() -> R) -> R {
    struct Restore(Kernels);
    impl Drop for Restore {
        fn drop(&mut self) {
            set_kernels(self.0);
        }
    }
    let _restore = Restore(set_kernels(k));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_is_scoped_and_per_thread() {
        assert_eq!(kernels(), Kernels::Native);
        with_kernels(Kernels::Generic, || {
            assert_eq!(kernels(), Kernels::Generic);
            std::thread::spawn(|| assert_eq!(kernels(), Kernels::Native)).join().unwrap();
        });
        assert_eq!(kernels(), Kernels::Native);
        let _ = std::panic::catch_unwind(|| with_kernels(Kernels::Generic, || panic!("inside")));
        assert_eq!(kernels(), Kernels::Native, "restored after a panic");
    }
}
