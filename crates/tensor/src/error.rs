/// Errors of the tensor layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A device string that is none of `cpu`, `cuda`, `cuda:N`, `auto`.
    #[error("unknown device `{0}`: expected `cpu`, `cuda`, `cuda:N` (N = GPU ordinal) or `auto`")]
    UnknownDevice(String),
    /// CUDA was asked for in a build without the `cuda` feature.
    #[error(
        "device `{0}` asks for CUDA, but this build of Taper has no CUDA support: rebuild with \
         `--features cuda` (needs the CUDA toolkit's nvcc), or use `--device cpu`"
    )]
    CudaNotCompiled(String),
    /// CUDA is compiled in but the GPU could not be opened.
    #[error(
        "device `{device}`: no usable CUDA GPU ({reason}); check `nvidia-smi` and the ordinal, \
         or use `--device cpu`"
    )]
    CudaUnavailable {
        /// The device string asked for.
        device: String,
        /// What the CUDA driver said.
        reason: String,
    },
    /// A dtype name that is not `f32` or `f64`.
    #[error("unknown dtype `{0}`: expected `f32` or `f64`")]
    UnknownDType(String),
    /// A dtype Taper does not compute in.
    #[error("unsupported dtype {0}: Taper computes in f32 or f64")]
    UnsupportedDType(String),
    /// An invalid argument to a random-tensor constructor.
    #[error("invalid random-tensor argument: {0}")]
    InvalidArgument(String),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with the tensor layer's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
