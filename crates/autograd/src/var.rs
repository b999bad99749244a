use candle_core::{DType, Device, Shape, Tensor};

use crate::grads::Grads;
use crate::tape::Tape;
use crate::{Error, Result};

/// Where a tracked value sits on its tape.
#[derive(Clone)]
pub(crate) struct Track {
    pub(crate) tape: Tape,
    pub(crate) id: usize,
    pub(crate) generation: u64,
}

/// A value in a computation: a candle tensor, and — when it depends on a parameter that requires
/// a gradient — its place on a tape.
///
/// Every op is a method returning `Result<Var>`; the result is recorded on the tape when any
/// operand is tracked. Cloning a `Var` is cheap.
#[derive(Clone)]
pub struct Var {
    value: Tensor,
    track: Option<Track>,
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Var")
            .field("shape", &self.value.dims())
            .field("dtype", &self.value.dtype())
            .field("tracked", &self.track.is_some())
            .finish()
    }
}

impl Var {
    /// A constant: data or any value that needs no gradient. Never recorded.
    pub fn constant(value: Tensor) -> Self {
        Self { value, track: None }
    }

    pub(crate) fn tracked(value: Tensor, track: Track) -> Self {
        Self { value, track: Some(track) }
    }

    pub(crate) fn track(&self) -> Option<&Track> {
        self.track.as_ref()
    }

    /// The value.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// Consumes the `Var`, returning its value.
    pub fn into_value(self) -> Tensor {
        self.value
    }

    /// Whether a gradient can flow through this value (it is recorded on a tape).
    pub fn is_tracked(&self) -> bool {
        self.track.is_some()
    }

    /// The same value as a constant: no gradient flows back through it.
    pub fn detach(&self) -> Self {
        Self::constant(self.value.clone())
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        self.value.shape()
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.value.dims()
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.value.rank()
    }

    /// The number of elements.
    pub fn elem_count(&self) -> usize {
        self.value.elem_count()
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.value.dtype()
    }

    /// The device.
    pub fn device(&self) -> &Device {
        self.value.device()
    }

    /// The value of a one-element tensor as `f64`.
    pub fn to_scalar_f64(&self) -> Result<f64> {
        if self.elem_count() != 1 {
            return Err(Error::NotScalar(self.shape().clone()));
        }
        let host = crate::cpu::with_float!(self.dtype(), T => {
            crate::cpu::host_view::<T>(&self.value).map(|s| candle_core::WithDType::to_f64(s.get()[0]))
        });
        match host.flatten() {
            Some(v) => Ok(v),
            None => Ok(self.value.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0]),
        }
    }

    /// Reverse-mode differentiation from this scalar. Returns the gradient of every parameter
    /// this value depends on (and that requires one); the tape is consumed: each node's saved
    /// values are released as soon as its backward rule has run, and the tape is empty after.
    pub fn backward(&self) -> Result<Grads> {
        if self.elem_count() != 1 {
            return Err(Error::NotScalar(self.shape().clone()));
        }
        let track = self.track.as_ref().ok_or(Error::NoGraph)?;
        let seed = self.value.ones_like()?;
        track.tape.backward(track.id, track.generation, seed)
    }
}
