use candle_core::{DType, Device, Tensor};
use taper_autograd::{Param, ParamStore, Result};
use taper_tensor::SeededRng;

/// Creates a model's parameters: registers each under its dotted name in a [`ParamStore`] and
/// draws its initial value from a seeded generator, so the same seed gives the same model on
/// every device.
#[derive(Debug)]
pub struct Builder {
    store: ParamStore,
    /// The name scope: `block1.attn.` inside `b.pp("block1").pp("attn")`.
    prefix: String,
    rng: SeededRng,
    dtype: DType,
    device: Device,
}

impl Builder {
    /// A builder whose draws start from `seed`, making parameters of `dtype` on `device`.
    pub fn new(seed: u64, dtype: DType, device: &Device) -> Self {
        Self {
            store: ParamStore::new(),
            prefix: String::new(),
            rng: SeededRng::new(seed),
            dtype,
            device: device.clone(),
        }
    }

    /// A name scope, as candle's `VarBuilder::pp` and PyTorch's module attributes: parameters made
    /// through the returned builder are named `{name}.{param}` (`b.pp("fc1")` gives `fc1.weight`),
    /// and scopes nest (`b.pp("h").pp("0")`). The scope ends when the returned value is dropped.
    ///
    /// ```
    /// # use taper_nn::{Builder, Linear};
    /// # use candle_core::{DType, Device};
    /// let mut b = Builder::new(0, DType::F32, &Device::Cpu);
    /// let w = b.pp("block").pp("attn").zeros("weight", &[4, 4])?;
    /// assert_eq!(w.name(), "block.attn.weight");
    /// let fc = Linear::new(&mut b.pp("block"), "fc", 4, 2)?;
    /// assert_eq!(fc.weight.name(), "block.fc.weight");
    /// # Ok::<(), taper_autograd::Error>(())
    /// ```
    pub fn pp(&mut self, name: impl std::fmt::Display) -> Scope<'_> {
        let len = self.prefix.len();
        self.prefix.push_str(&format!("{name}."));
        Scope { builder: self, len }
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

    /// The generator (for other seeded draws that must follow the same sequence).
    pub fn rng(&mut self) -> &mut SeededRng {
        &mut self.rng
    }

    /// Registers `value` under `name`.
    pub fn param(&mut self, name: &str, value: Tensor) -> Result<Param> {
        self.store.insert(format!("{}{name}", self.prefix), value)
    }

    /// A parameter drawn from `U(-bound, bound)`.
    pub fn uniform(&mut self, name: &str, dims: &[usize], bound: f64) -> Result<Param> {
        let v = self.rng.uniform(dims, -bound, bound, self.dtype, &self.device)?;
        self.param(name, v)
    }

    /// A parameter drawn from `N(mean, std²)`.
    pub fn normal(&mut self, name: &str, dims: &[usize], mean: f64, std: f64) -> Result<Param> {
        let v = self.rng.normal(dims, mean, std, self.dtype, &self.device)?;
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

    /// The parameters made so far.
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// Finishes, returning the parameters.
    pub fn into_store(self) -> ParamStore {
        self.store
    }
}

/// A [`Builder`] inside a name scope ([`Builder::pp`]); it is a `Builder` (through `Deref`), and
/// the scope ends when it is dropped.
#[derive(Debug)]
pub struct Scope<'a> {
    builder: &'a mut Builder,
    /// The prefix's length before this scope.
    len: usize,
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        self.builder.prefix.truncate(self.len);
    }
}

impl std::ops::Deref for Scope<'_> {
    type Target = Builder;
    fn deref(&self) -> &Builder {
        self.builder
    }
}

impl std::ops::DerefMut for Scope<'_> {
    fn deref_mut(&mut self) -> &mut Builder {
        self.builder
    }
}
