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

mod device;
mod error;
mod rng;

pub use candle_core::{DType, Device, Shape, Tensor, D};
pub use device::{cuda_compiled, device_name, DeviceSpec};
pub use error::{Error, Result};
pub use rng::SeededRng;

/// Fixes the CPU thread count for candle's kernels once, at program start.
///
/// candle 0.11 asks the OS how many cores there are (reading sysfs and `/proc`) on every matrix
/// product and convolution unless `RAYON_NUM_THREADS` is set: tens of microseconds per op, which
/// dominates small models (an airfoil epoch runs 8x slower). This sets `RAYON_NUM_THREADS` to the
/// available parallelism when it is unset. Call it first thing in `main`, before any thread
/// starts (changing the environment while other threads read it is not safe on every platform);
/// the examples do.
pub fn init_cpu_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

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
