use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// A parameter's identity, unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u64);

impl ParamId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

#[derive(Debug)]
struct ParamInner {
    id: ParamId,
    name: String,
    value: RwLock<Tensor>,
    requires_grad: AtomicBool,
}

/// A named, trainable tensor that persists across steps.
///
/// A `Param` is a cheap handle (clones share the value). Each step it enters a tape as a leaf
/// ([`crate::Tape::param`]); `backward()` returns its gradient keyed by its [`ParamId`]; an
/// optimizer then updates its value, either in place or with [`Param::set`].
#[derive(Debug, Clone)]
pub struct Param(Arc<ParamInner>);

impl Param {
    /// A new parameter named `name` holding `value`, requiring a gradient.
    pub fn new(name: impl Into<String>, value: Tensor) -> Self {
        taper_tensor::ensure_cpu();
        Self(Arc::new(ParamInner {
            id: ParamId::fresh(),
            name: name.into(),
            value: RwLock::new(value),
            requires_grad: AtomicBool::new(true),
        }))
    }

    /// The parameter's identity.
    pub fn id(&self) -> ParamId {
        self.0.id
    }

    /// The parameter's name (dotted path such as `fc1.weight`).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The current value (a cheap handle sharing the storage: in-place updates show through it).
    pub fn value(&self) -> Tensor {
        self.0.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The value's shape.
    pub fn dims(&self) -> Vec<usize> {
        self.value().dims().to_vec()
    }

    /// The value's dtype.
    pub fn dtype(&self) -> DType {
        self.value().dtype()
    }

    /// The value's device.
    pub fn device(&self) -> Device {
        self.value().device().clone()
    }

    /// Replaces the value with one of the same shape, dtype and device.
    pub fn set(&self, value: Tensor) -> Result<()> {
        let mut slot = self.0.value.write().unwrap_or_else(|e| e.into_inner());
        check_same(&self.0.name, &slot, &value)?;
        *slot = value;
        Ok(())
    }

    /// Whether `backward()` computes a gradient for this parameter.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter. A frozen parameter enters the tape
    /// as a constant: it gets no gradient and its subgraph costs nothing in backward.
    pub fn set_requires_grad(&self, requires_grad: bool) {
        self.0.requires_grad.store(requires_grad, Ordering::Relaxed)
    }

    /// The number of elements.
    pub fn elem_count(&self) -> usize {
        self.value().elem_count()
    }
}

fn check_same(name: &str, old: &Tensor, new: &Tensor) -> Result<()> {
    if old.dims() != new.dims() {
        return Err(Error::Param {
            name: name.to_string(),
            msg: format!("expected shape {:?}, got {:?}", old.dims(), new.dims()),
        });
    }
    if old.dtype() != new.dtype() {
        return Err(Error::Param {
            name: name.to_string(),
            msg: format!("expected dtype {:?}, got {:?}", old.dtype(), new.dtype()),
        });
    }
    if !old.device().same_device(new.device()) {
        return Err(Error::Param {
            name: name.to_string(),
            msg: format!("expected device {:?}, got {:?}", old.device(), new.device()),
        });
    }
    Ok(())
}

/// An ordered collection of named parameters: what a model owns, what an optimizer updates and
/// what a checkpoint saves. Names are dotted paths (`fc1.weight`), unique in the store.
#[derive(Debug, Clone, Default)]
pub struct ParamStore {
    params: Vec<Param>,
    index: HashMap<String, usize>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter named `name` holding `value`; a duplicate name is an error.
    pub fn insert(&mut self, name: impl Into<String>, value: Tensor) -> Result<Param> {
        let param = Param::new(name, value);
        self.push(param.clone())?;
        Ok(param)
    }

    /// Adds an existing parameter handle; a duplicate name is an error.
    pub fn push(&mut self, param: Param) -> Result<()> {
        if self.index.contains_key(param.name()) {
            return Err(Error::Param {
                name: param.name().to_string(),
                msg: "a parameter of this name is already in the store".to_string(),
            });
        }
        self.index.insert(param.name().to_string(), self.params.len());
        self.params.push(param);
        Ok(())
    }

    /// The parameter named `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.index.get(name).map(|&i| &self.params[i])
    }

    /// All parameters, in insertion order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The parameters that require a gradient, in insertion order.
    pub fn trainable(&self) -> Vec<Param> {
        self.params.iter().filter(|p| p.requires_grad()).cloned().collect()
    }

    /// The number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// The total number of scalar parameters.
    pub fn elem_count(&self) -> usize {
        self.params.iter().map(Param::elem_count).sum()
    }

    /// `(name, value)` pairs, in insertion order.
    pub fn named_values(&self) -> Vec<(String, Tensor)> {
        self.params.iter().map(|p| (p.name().to_string(), p.value())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_checks_shape_and_dtype() {
        let p = Param::new("w", Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap());
        let err = p.set(Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap()).unwrap_err();
        assert!(err.to_string().contains("`w`") && err.to_string().contains("[2, 3]"), "{err}");
        assert!(p.set(Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap()).is_err());
        p.set(Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert_eq!(p.value().sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
    }

    #[test]
    fn store_names_are_unique_and_ordered() {
        let mut s = ParamStore::new();
        s.insert("b", Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap()).unwrap();
        s.insert("a", Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap()).unwrap();
        assert!(s.insert("a", Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap()).is_err());
        let names: Vec<_> = s.params().iter().map(|p| p.name().to_string()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(s.elem_count(), 5);
        s.get("a").unwrap().set_requires_grad(false);
        assert_eq!(s.trainable().len(), 1);
    }
}
