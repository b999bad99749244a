use taper_autograd::{profile, Activation, Error, Param, Result, Tape, Var};

use crate::Builder;

/// A layer or model: a function of its input whose parameters enter the given tape.
pub trait Module {
    /// Computes the output, recording on `tape` when the parameters require gradients.
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var>;

    /// A short description (`linear 784→256`), used by profiles.
    fn describe(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_lowercase()
    }

    /// The activation this layer is, if it is nothing else (the ReLU layer), so that
    /// [`Sequential`] can fuse it into the layer before.
    fn activation(&self) -> Option<Activation> {
        None
    }

    /// Switches between training (`true`, the default) and evaluation: layers that act
    /// differently (dropout) take note; containers pass it to their layers.
    fn set_training(&self, _training: bool) {}

    /// `act(self.forward(x))`. Layers with a fused op ([`Linear`], [`Conv2d`]) compute it in one;
    /// the default applies `act` as its own op.
    fn forward_activated(&self, tape: &Tape, x: &Var, act: Activation) -> Result<Var> {
        act.apply(&self.forward(tape, x)?)
    }
}

/// `y = x Wᵀ + b` (PyTorch's `nn.Linear`): `weight` is `[out, in]`, `bias` is `[out]`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: Param,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Param>,
}

impl Linear {
    /// PyTorch's `nn.Linear(in_features, out_features)`: parameters `weight` and `bias` in the
    /// builder's scope (`Linear::new(&mut b.pp("fc1"), 4, 32)` makes `fc1.weight`, `fc1.bias`),
    /// PyTorch's default initialization `U(-1/√in, 1/√in)` for both.
    pub fn new(b: &mut Builder, in_features: usize, out_features: usize) -> Result<Self> {
        let weight = b.torch_default("weight", &[out_features, in_features], in_features)?;
        let bias = b.torch_default("bias", &[out_features], in_features)?;
        Ok(Self { weight, bias: Some(bias) })
    }

    /// A linear layer from existing parameters.
    pub fn from_params(weight: Param, bias: Option<Param>) -> Self {
        Self { weight, bias }
    }
}

impl Module for Linear {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        self.forward_activated(tape, x, Activation::Identity)
    }

    fn forward_activated(&self, tape: &Tape, x: &Var, act: Activation) -> Result<Var> {
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        x.linear_fused(&tape.param(&self.weight), bias.as_ref(), act)
    }

    fn describe(&self) -> String {
        match self.weight.dims()[..] {
            [out, fan_in] => format!("linear {fan_in}→{out}"),
            _ => "linear".into(),
        }
    }
}

/// 2-D convolution layer (PyTorch's `nn.Conv2d` with square kernels): `weight` is
/// `[out, in, k, k]`, `bias` is `[out]`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[out_channels, in_channels, k, k]`.
    pub weight: Param,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// The stride.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

/// A convolution's options, PyTorch's defaults in `Default` (`nn.Conv2d`'s `stride=1, padding=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Step between windows (1).
    pub stride: usize,
    /// Zero padding on every side (0).
    pub padding: usize,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self { stride: 1, padding: 0 }
    }
}

impl Conv2d {
    /// PyTorch's `nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)` with the
    /// options PyTorch defaults (`Conv2dConfig::default()`: stride 1, no padding): parameters
    /// `weight` and `bias` in the builder's scope, PyTorch's default initialization
    /// `U(-1/√fan_in, 1/√fan_in)`, `fan_in = in·k·k`.
    ///
    /// `Conv2d::new(&mut b.pp("conv1"), 1, 32, 3, Conv2dConfig { padding: 1, ..Default::default() })`
    pub fn new(
        b: &mut Builder,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        config: Conv2dConfig,
    ) -> Result<Self> {
        let Conv2dConfig { stride, padding } = config;
        if kernel == 0 || stride == 0 {
            return Err(Error::InvalidArgument {
                op: "Conv2d",
                msg: "kernel size and stride must be positive".into(),
            });
        }
        let fan_in = in_channels * kernel * kernel;
        let weight = b.torch_default("weight", &[out_channels, in_channels, kernel, kernel], fan_in)?;
        let bias = b.torch_default("bias", &[out_channels], fan_in)?;
        Ok(Self { weight, bias: Some(bias), stride, padding })
    }
}

impl Module for Conv2d {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        self.forward_activated(tape, x, Activation::Identity)
    }

    fn forward_activated(&self, tape: &Tape, x: &Var, act: Activation) -> Result<Var> {
        let bias = self.bias.as_ref().map(|b| tape.param(b));
        x.conv2d_fused(&tape.param(&self.weight), bias.as_ref(), self.stride, self.padding, act)
    }

    fn describe(&self) -> String {
        match self.weight.dims()[..] {
            [out, fan_in, kh, kw] => format!("conv2d {fan_in}→{out} {kh}x{kw}"),
            _ => "conv2d".into(),
        }
    }
}

/// Max pooling over `kernel×kernel` windows (PyTorch's `nn.MaxPool2d(kernel, stride)`).
#[derive(Debug, Clone, Copy)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: usize,
    /// Window stride (PyTorch's default: the kernel size).
    pub stride: usize,
}

impl MaxPool2d {
    /// Non-overlapping pooling: stride = kernel, as `nn.MaxPool2d(k)`.
    pub fn new(kernel: usize) -> Self {
        Self { kernel, stride: kernel }
    }
}

impl Module for MaxPool2d {
    fn forward(&self, _tape: &Tape, x: &Var) -> Result<Var> {
        x.max_pool2d(self.kernel, self.stride)
    }

    fn describe(&self) -> String {
        format!("max_pool2d {}", self.kernel)
    }
}

/// Average pooling over `kernel×kernel` windows.
#[derive(Debug, Clone, Copy)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel: usize,
    /// Window stride.
    pub stride: usize,
}

impl Module for AvgPool2d {
    fn forward(&self, _tape: &Tape, x: &Var) -> Result<Var> {
        x.avg_pool2d(self.kernel, self.stride)
    }
}

/// `max(x, 0)`.
#[derive(Debug, Clone, Copy)]
pub struct ReLU;

impl Module for ReLU {
    fn forward(&self, _tape: &Tape, x: &Var) -> Result<Var> {
        x.relu()
    }

    fn activation(&self) -> Option<Activation> {
        Some(Activation::Relu)
    }
}

/// `tanh x`.
#[derive(Debug, Clone, Copy)]
pub struct Tanh;

impl Module for Tanh {
    fn forward(&self, _tape: &Tape, x: &Var) -> Result<Var> {
        x.tanh()
    }
}

/// Flattens every dimension after the batch: `[b, ...] -> [b, n]`.
#[derive(Debug, Clone, Copy)]
pub struct Flatten;

impl Module for Flatten {
    fn forward(&self, _tape: &Tape, x: &Var) -> Result<Var> {
        x.flatten_from(1)
    }
}

/// Layers applied in order.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty sequence (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer.
    #[allow(clippy::should_implement_trait)]
    pub fn add<M: Module + 'static>(mut self, layer: M) -> Self {
        self.layers.push(Box::new(layer));
        self
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }

    /// The number of layers.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether there is no layer.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }
}

impl Module for Sequential {
    fn set_training(&self, training: bool) {
        for layer in &self.layers {
            layer.set_training(training);
        }
    }

    /// Runs the layers in order. A layer followed by an activation layer (a ReLU) runs as one
    /// fused op ([`Module::forward_activated`]): the same values and gradients, fewer passes.
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let mut y = x.clone();
        let mut i = 0;
        while i < self.layers.len() {
            let layer = &self.layers[i];
            match self.layers.get(i + 1).and_then(|next| next.activation()) {
                Some(act) if layer.activation().is_none() => {
                    y = profile::scope_with(
                        || format!("forward {} + {act:?}", layer.describe()).to_lowercase(),
                        || layer.forward_activated(tape, &y, act),
                    )?;
                    i += 2;
                }
                _ => {
                    y = profile::scope_with(
                        || format!("forward {}", layer.describe()),
                        || layer.forward(tape, &y),
                    )?;
                    i += 1;
                }
            }
        }
        Ok(y)
    }

    fn describe(&self) -> String {
        format!("sequential of {}", self.layers.len())
    }
}
