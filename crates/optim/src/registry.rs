//! Names ↔ optimizers. Adding an optimizer is one new file and one line in [`REGISTRY`].

use taper_autograd::Param;

use crate::rule::{Engine, Rule};
use crate::spec::OptimSpec;
use crate::{Adadelta, Adagrad, Adam, AdamW, Error, Optimizer, Result, RmsProp, Sgd};

/// Builds an optimizer over `params` from a parsed spec.
pub type Constructor = fn(&OptimSpec, Vec<Param>) -> Result<Box<dyn Optimizer>>;

/// Every optimizer, by its spec name.
pub const REGISTRY: &[(&str, Constructor)] = &[
    (Sgd::NAME, build::<Sgd>),
    (Adagrad::NAME, build::<Adagrad>),
    (RmsProp::NAME, build::<RmsProp>),
    (Adadelta::NAME, build::<Adadelta>),
    (Adam::NAME, build::<Adam>),
    (AdamW::NAME, build::<AdamW>),
];

/// The constructor of any [`Rule`]: validates the spec's options and wraps the rule in an
/// [`Engine`].
pub fn build<R: Rule>(spec: &OptimSpec, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
    Ok(Box::new(Engine::new(R::from_spec(spec)?, params)?))
}

/// The registered names.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(n, _)| *n).collect()
}

/// Builds the optimizer a spec string names (`rmsprop:lr=0.01,alpha=0.9`) over `params`.
pub fn from_spec(spec: &str, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
    let spec = OptimSpec::parse(spec)?;
    let (_, ctor) = REGISTRY
        .iter()
        .find(|(n, _)| *n == spec.name)
        .ok_or_else(|| Error::UnknownOptimizer { name: spec.name.clone(), known: names().join(", ") })?;
    ctor(&spec, params)
}

/// Parses and validates a spec string without building anything, returning its canonical form
/// (every option spelled out). For checking command lines early.
pub fn canonical(spec: &str) -> Result<OptimSpec> {
    Ok(from_spec(spec, Vec::new())?.spec())
}

/// Parses a comma-separated list of specs (see [`OptimSpec::parse_list`]) and validates each
/// against the registry, returning them as written. For command lines: every spec is checked
/// before any work starts.
pub fn checked_list(list: &str) -> Result<Vec<String>> {
    let specs: Vec<String> = OptimSpec::parse_list(list)?.iter().map(ToString::to_string).collect();
    for s in &specs {
        canonical(s)?;
    }
    Ok(specs)
}
