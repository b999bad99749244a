/// Errors of the optimizer crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed optimizer or scheduler spec string.
    #[error("malformed spec `{spec}`: {msg}")]
    Spec {
        /// The spec as given.
        spec: String,
        /// What is wrong.
        msg: String,
    },
    /// An optimizer name that is not in the registry.
    #[error("unknown optimizer `{name}`: known optimizers are {known}")]
    UnknownOptimizer {
        /// The name given.
        name: String,
        /// The registry's names.
        known: String,
    },
    /// A key the optimizer (or scheduler) does not take.
    #[error("`{optimizer}` has no option `{key}`: its options are {known}")]
    UnknownKey {
        /// The optimizer.
        optimizer: &'static str,
        /// The key given.
        key: String,
        /// The optimizer's keys.
        known: String,
    },
    /// A value that does not parse or is out of its range.
    #[error("`{optimizer}`: invalid {key}={value}: {allowed}")]
    InvalidValue {
        /// The optimizer.
        optimizer: &'static str,
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A gradient containing NaN or Inf.
    #[error("non-finite gradient (NaN or Inf) for parameter `{param}`: step refused, parameters unchanged")]
    NonFiniteGradient {
        /// The parameter's name.
        param: String,
    },
    /// A gradient whose shape or dtype differs from its parameter's.
    #[error("gradient for `{param}`: {msg}")]
    GradientMismatch {
        /// The parameter's name.
        param: String,
        /// What differs.
        msg: String,
    },
    /// Saved optimizer state that does not fit this optimizer.
    #[error("optimizer state does not fit: {0}")]
    State(String),
    /// A scheduler or clipping argument out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error from the autodiff graph.
    #[error(transparent)]
    Autograd(#[from] taper_autograd::Error),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with the optimizer [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
