use candle_core::Shape;

/// Errors of the autodiff graph.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two shapes that an op cannot combine.
    #[error("shape mismatch in `{op}`: {lhs:?} and {rhs:?} ({hint})")]
    ShapeMismatch {
        /// The op.
        op: &'static str,
        /// Shape of the first operand.
        lhs: Shape,
        /// Shape of the second operand.
        rhs: Shape,
        /// What the op needs.
        hint: &'static str,
    },
    /// An argument an op cannot accept (a dimension out of range, a zero stride, ...).
    #[error("invalid argument to `{op}`: {msg}")]
    InvalidArgument {
        /// The op.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// `backward()` on a value with more than one element.
    #[error(
        "backward needs a scalar (one element), got a value of shape {0:?}; reduce it first (sum or mean)"
    )]
    NotScalar(Shape),
    /// `backward()` on a value that no parameter requiring a gradient flows into.
    #[error("backward on a value that depends on no parameter requiring a gradient (it is a constant, detached, or was computed under no_grad)")]
    NoGraph,
    /// Values recorded on two different tapes were combined.
    #[error("`{0}` combines values recorded on two different tapes")]
    MixedTapes(&'static str),
    /// A value from a graph that has already been consumed by `backward()` or cleared.
    #[error("`{0}` uses a value from an earlier graph (its tape was consumed by backward or cleared); recompute it, or detach it to use it as a constant")]
    StaleValue(&'static str),
    /// A parameter value of the wrong shape or dtype.
    #[error("parameter `{name}`: {msg}")]
    Param {
        /// The parameter's name.
        name: String,
        /// What was wrong.
        msg: String,
    },
    /// An error from a candle kernel, with the op that raised it.
    #[error("`{op}` failed: {error}")]
    Op {
        /// The op.
        op: &'static str,
        /// candle's error.
        error: candle_core::Error,
    },
    /// An error from candle outside any op.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error from the tensor layer.
    #[error(transparent)]
    Tensor(#[from] taper_tensor::Error),
}

/// Result with the autograd [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches the op name to a candle error.
pub(crate) trait OpContext<T> {
    fn op(self, op: &'static str) -> Result<T>;
}

impl<T> OpContext<T> for candle_core::Result<T> {
    fn op(self, op: &'static str) -> Result<T> {
        self.map_err(|error| Error::Op { op, error })
    }
}
