use std::path::PathBuf;

/// Errors of the training crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// A checkpoint that cannot be written, read or applied.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A TensorBoard event file that cannot be written or read back.
    #[error("{path}: {msg}")]
    EventFile {
        /// The file or log directory.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An argument out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error from the optimizer crate.
    #[error(transparent)]
    Optim(#[from] taper_optim::Error),
    /// An error from the autodiff graph.
    #[error(transparent)]
    Autograd(#[from] taper_autograd::Error),
    /// An error from the tensor layer.
    #[error(transparent)]
    Tensor(#[from] taper_tensor::Error),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with the training crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |error| Error::Io { path, error }
}
