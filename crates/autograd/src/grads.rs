use std::collections::HashMap;

use candle_core::Tensor;

use crate::param::{Param, ParamId};

/// Gradients returned by [`crate::Var::backward`], keyed by parameter.
///
/// A parameter the loss does not depend on (or a frozen one) has no entry.
#[derive(Debug, Clone, Default)]
pub struct Grads {
    by_param: HashMap<ParamId, Tensor>,
}

impl Grads {
    pub(crate) fn insert(&mut self, id: ParamId, grad: Tensor) {
        self.by_param.insert(id, grad);
    }

    /// The gradient of `param`, if the loss depends on it.
    pub fn get(&self, param: &Param) -> Option<&Tensor> {
        self.by_param.get(&param.id())
    }

    /// The gradient for a parameter id.
    pub fn get_id(&self, id: ParamId) -> Option<&Tensor> {
        self.by_param.get(&id)
    }

    /// Replaces the gradient of `param` (clipping and other gradient transforms use this).
    pub fn set(&mut self, param: &Param, grad: Tensor) {
        self.by_param.insert(param.id(), grad);
    }

    /// Removes and returns the gradient of `param`.
    pub fn remove(&mut self, param: &Param) -> Option<Tensor> {
        self.by_param.remove(&param.id())
    }

    /// The number of parameters with a gradient.
    pub fn len(&self) -> usize {
        self.by_param.len()
    }

    /// Whether there is no gradient at all.
    pub fn is_empty(&self) -> bool {
        self.by_param.is_empty()
    }

    /// Iterates over `(id, gradient)` pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&ParamId, &Tensor)> {
        self.by_param.iter()
    }
}
