use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use taper_autograd::{Param, ParamStore, Result};
use taper_tensor::SeededRng;

/// Creates a model's parameters: registers each under its dotted name in a [`ParamStore`] and
/// draws its initial value from a seeded generator, so the same seed gives the same model on
/// every device.
#[derive(Debug, Clone)]
pub struct Builder {
    /// The store and the generator, shared by every scope of one builder.
    shared: Arc<Mutex<Shared>>,
    /// The name scope: `block1.attn.` inside `b.pp("block1").pp("attn")`.
    prefix: String,
    dtype: DType,
    device: Device,
}

#[derive(Debug)]
struct Shared {
    store: ParamStore,
    rng: SeededRng,
}

impl Builder {
    /// A builder whose draws start from `seed`, making parameters of `dtype` on `device`.
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared { store: ParamStore::new(), rng: SeededRng::new(seed) })),
            prefix: String::new(),
            dtype,
            device: device.clone(),
        }
    }

    /// A name scope, as candle's `VarBuilder::pp` and PyTorch's module attributes: parameters made
    /// through the returned builder are named `{name}.{param}` (`b.pp("fc1")` gives `fc1.weight`),
    /// and scopes nest (`b.pp("h").pp(0)`). The returned builder shares this one's parameters and
    /// generator, so draws follow one sequence whatever the scopes.
    ///
    /// ```
    /// # use taper_nn::{Builder, Linear, Module, ReLU, Sequential};
    /// # use candle_core::{DType, Device};
    /// let b = Builder::new(0, DType::F32, &Device::Cpu);
    /// let model = Sequential::new()
    ///     .add(Linear::new(&mut b.pp("fc1"), 4, 8)?)
    ///     .add(ReLU)
    ///     .add(Linear::new(&mut b.pp("block").pp("fc2"), 8, 2)?);
    /// let names: Vec<String> = b.store().params().iter().map(|p| p.name().to_string()).collect();
    /// assert_eq!(names, ["fc1.weight", "fc1.bias", "block.fc2.weight", "block.fc2.bias"]);
    /// # Ok::<(), taper_autograd::Error>(())
    /// ```
    pub fn pp(&self, name: impl std::fmt::Display) -> Builder {
        let mut scoped = self.clone();
        scoped.prefix.push_str(&format!("{name}."));
        scoped
    }

    /// The current name scope (`block1.` inside `b.pp("block1")`; empty at the top).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The dtype of the parameters made.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device of the parameters made.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A panic elsewhere while drawing leaves nothing half-written that matters here.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the generator (for other seeded draws that must follow the same sequence).
    pub fn with_rng<T>(&mut self, f: impl FnOnce(&mut SeededRng) -> T) -> T {
        f(&mut self.shared().rng)
    }

    /// Registers `value` under `name` (in the builder's scope).
    pub fn param(&mut self, name: &str, value: Tensor) -> Result<Param> {
        self.shared().store.insert(format!("{}{name}", self.prefix), value)
    }

    /// A parameter drawn from `U(-bound, bound)`.
    pub fn uniform(&mut self, name: &str, dims: &[usize], bound: f64) -> Result<Param> {
        let v = self.shared().rng.uniform(dims, -bound, bound, self.dtype, &self.device)?;
        self.param(name, v)
    }

    /// A parameter drawn from `N(mean, std²)`.
    pub fn normal(&mut self, name: &str, dims: &[usize], mean: f64, std: f64) -> Result<Param> {
        let v = self.shared().rng.normal(dims, mean, std, self.dtype, &self.device)?;
        self.param(name, v)
    }

    /// A parameter of zeros.
    pub fn zeros(&mut self, name: &str, dims: &[usize]) -> Result<Param> {
        let v = Tensor::zeros(dims, self.dtype, &self.device)?;
        self.param(name, v)
    }

    /// PyTorch's default for `nn.Linear` and `nn.Conv2d` weights and biases: `kaiming_uniform_`
    /// with `a = √5`, which is `U(-1/√fan_in, 1/√fan_in)`.
    pub fn torch_default(&mut self, name: &str, dims: &[usize], fan_in: usize) -> Result<Param> {
        self.uniform(name, dims, 1.0 / (fan_in.max(1) as f64).sqrt())
    }

    /// The parameters made so far (handles: they share the parameters' values).
    pub fn store(&self) -> ParamStore {
        self.shared().store.clone()
    }

    /// Finishes, returning the parameters.
    pub fn into_store(self) -> ParamStore {
        std::mem::take(&mut self.shared().store)
    }
}
