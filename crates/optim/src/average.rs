//! Weight averaging: an equivalent of `torch.optim.swa_utils.AveragedModel`, the running
//! average of a model's parameters over training (SWA's equal weights, or an exponential
//! moving average), kept beside the model and saved in checkpoints.

use candle_core::Tensor;
use taper_autograd::Param;

use crate::elem::lerp;
use crate::spec::{OptimSpec, Options};
use crate::{Error, Result};

/// How the average weighs the iterates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Averaging {
    /// Equal weights (stochastic weight averaging; `AveragedModel`'s default):
    /// `a ← a + (p - a)/(n + 1)` after `n` updates.
    Swa,
    /// An exponential moving average (`get_ema_multi_avg_fn(decay)`): `a ← lerp(a, p, 1 - decay)`.
    Ema {
        /// The decay (0.999), in `[0, 1]`.
        decay: f64,
    },
}

impl Averaging {
    /// Parses `swa` or `ema` / `ema:decay=0.99`.
    pub fn parse(spec: &str) -> Result<Self> {
        let s = OptimSpec::parse(spec)?;
        match s.name.as_str() {
            "swa" => {
                Options::new("swa", &s).finish()?;
                Ok(Self::Swa)
            }
            "ema" => {
                let mut o = Options::new("ema", &s);
                let decay =
                    o.num("decay", &[], 0.999, |x| (0.0..=1.0).contains(&x), "decay must be in [0, 1]")?;
                o.finish()?;
                Ok(Self::Ema { decay })
            }
            other => Err(Error::InvalidArgument(format!(
                "unknown averaging `{other}`: expected swa or ema:decay=D"
            ))),
        }
    }

    /// The canonical spec.
    pub fn spec(&self) -> String {
        match self {
            Self::Swa => "swa".into(),
            Self::Ema { decay } => format!("ema:decay={}", crate::Value::Num(*decay)),
        }
    }
}

/// A model's averaged parameters: PyTorch's `AveragedModel(model, avg_fn)` with
/// `update_parameters(model)` after each step (the first update copies the parameters).
#[derive(Debug, Clone)]
pub struct AveragedModel {
    averaging: Averaging,
    params: Vec<Param>,
    averaged: Vec<Tensor>,
    n_averaged: u64,
}

/// What a checkpoint keeps of an [`AveragedModel`].
#[derive(Debug, Clone)]
pub struct AverageState {
    /// The averaging's canonical spec.
    pub spec: String,
    /// Updates so far.
    pub n_averaged: u64,
    /// The averages, by parameter name.
    pub tensors: Vec<(String, Tensor)>,
}

impl PartialEq for AverageState {
    fn eq(&self, o: &Self) -> bool {
        let bits = |t: &Tensor| {
            t.flatten_all()
                .and_then(|t| t.to_dtype(candle_core::DType::F64))
                .and_then(|t| t.to_vec1::<f64>())
                .ok()
        };
        self.spec == o.spec
            && self.n_averaged == o.n_averaged
            && self.tensors.len() == o.tensors.len()
            && self
                .tensors
                .iter()
                .zip(&o.tensors)
                .all(|((a, x), (b, y))| a == b && x.dims() == y.dims() && bits(x) == bits(y))
    }
}

impl AveragedModel {
    /// An average of `params` (`swa`, `ema:decay=0.999`), starting as a copy of their values.
    pub fn new(spec: &str, params: Vec<Param>) -> Result<Self> {
        Self::with(Averaging::parse(spec)?, params)
    }

    /// An average of `params` of the given kind, starting from their current values.
    pub fn with(averaging: Averaging, params: Vec<Param>) -> Result<Self> {
        let averaged = params.iter().map(|p| Ok(p.value().copy()?)).collect::<Result<_>>()?;
        Ok(Self { averaging, params, averaged, n_averaged: 0 })
    }

    /// Folds the parameters' current values into the average (all of them or, on an error,
    /// none).
    pub fn update(&mut self) -> Result<()> {
        let n = self.n_averaged as f64;
        let new = self
            .params
            .iter()
            .zip(&self.averaged)
            .map(|(p, a)| {
                let v = p.value().to_device(a.device())?;
                if self.n_averaged == 0 {
                    return Ok(v.copy()?);
                }
                Ok(match self.averaging {
                    Averaging::Swa => a.add(&v.sub(a)?.affine(1.0 / (n + 1.0), 0.0)?)?,
                    Averaging::Ema { decay } => lerp(a, &v, 1.0 - decay)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.averaged = new;
        self.n_averaged += 1;
        Ok(())
    }

    /// The average of `param`, if it is one of the averaged parameters.
    pub fn averaged(&self, param: &Param) -> Option<&Tensor> {
        self.params.iter().position(|p| p.id() == param.id()).map(|i| &self.averaged[i])
    }

    /// Updates so far.
    pub fn n_averaged(&self) -> u64 {
        self.n_averaged
    }

    /// The averaging.
    pub fn averaging(&self) -> Averaging {
        self.averaging
    }

    /// Sets each of `params` that has an average of the same name to it (to evaluate the
    /// averaged model with a copy of the model's parameters).
    pub fn copy_into(&self, params: &[Param]) -> Result<()> {
        for target in params {
            if let Some(i) = self.params.iter().position(|p| p.name() == target.name()) {
                target.set(self.averaged[i].to_device(&target.device())?)?;
            }
        }
        Ok(())
    }

    /// The state to save.
    pub fn export_state(&self) -> Result<AverageState> {
        Ok(AverageState {
            spec: self.averaging.spec(),
            n_averaged: self.n_averaged,
            tensors: self
                .params
                .iter()
                .zip(&self.averaged)
                .map(|(p, a)| Ok((p.name().to_string(), a.copy()?)))
                .collect::<Result<_>>()?,
        })
    }

    /// Restores a saved state of the same averaging over parameters of the same names, shapes
    /// and dtypes; anything else is an error and changes nothing.
    pub fn import_state(&mut self, s: &AverageState) -> Result<()> {
        if s.spec != self.averaging.spec() {
            return Err(Error::State(format!(
                "saved with averaging `{}`, this one is `{}`",
                s.spec,
                self.averaging.spec()
            )));
        }
        let mut averaged = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let (_, t) = s
                .tensors
                .iter()
                .find(|(n, _)| n == p.name())
                .ok_or_else(|| Error::State(format!("the saved average lacks `{}`", p.name())))?;
            if t.dims() != p.dims().as_slice() || t.dtype() != p.dtype() {
                return Err(Error::State(format!(
                    "the saved average of `{}` is {:?} {:?}, the parameter {:?} {:?}",
                    p.name(),
                    t.dtype(),
                    t.dims(),
                    p.dtype(),
                    p.dims()
                )));
            }
            averaged.push(t.to_device(&p.device())?.copy()?);
        }
        if s.tensors.len() != self.params.len() {
            return Err(Error::State("the saved average has parameters this model lacks".into()));
        }
        self.averaged = averaged;
        self.n_averaged = s.n_averaged;
        Ok(())
    }
}
