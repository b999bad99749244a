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

    /// Adds `other`'s gradients to these, parameter by parameter (a parameter only one of them has
    /// keeps that one): gradient accumulation over micro-batches. A shape or dtype mismatch is an
    /// error, and leaves `self` as it was.
    pub fn accumulate(&mut self, other: Grads) -> crate::Result<()> {
        let mut sums = Vec::with_capacity(other.by_param.len());
        for (id, g) in other.by_param {
            match self.by_param.get(&id) {
                Some(mine) => sums.push((id, mine.add(&g)?)),
                None => sums.push((id, g)),
            }
        }
        self.by_param.extend(sums);
        Ok(())
    }

    /// Iterates over `(id, gradient)` pairs, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&ParamId, &Tensor)> {
        self.by_param.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamStore;
    use candle_core::Device;

    #[test]
    fn accumulating_adds_shared_gradients_and_keeps_the_others() {
        let mut store = ParamStore::new();
        let a = store.insert("a", Tensor::new(&[1.0f64, 2.0], &Device::Cpu).unwrap()).unwrap();
        let b = store.insert("b", Tensor::new(&[3.0f64], &Device::Cpu).unwrap()).unwrap();
        let (mut x, mut y) = (Grads::default(), Grads::default());
        x.set(&a, Tensor::new(&[1.0f64, 1.0], &Device::Cpu).unwrap());
        y.set(&a, Tensor::new(&[0.5f64, 2.0], &Device::Cpu).unwrap());
        y.set(&b, Tensor::new(&[4.0f64], &Device::Cpu).unwrap());
        x.accumulate(y).unwrap();
        assert_eq!(x.get(&a).unwrap().to_vec1::<f64>().unwrap(), [1.5, 3.0]);
        assert_eq!(x.get(&b).unwrap().to_vec1::<f64>().unwrap(), [4.0]);
        let mut bad = Grads::default();
        bad.set(&a, Tensor::new(&[1.0f64, 2.0, 3.0], &Device::Cpu).unwrap());
        assert!(x.accumulate(bad).is_err());
        assert_eq!(x.get(&a).unwrap().to_vec1::<f64>().unwrap(), [1.5, 3.0], "unchanged after the error");
    }
}
