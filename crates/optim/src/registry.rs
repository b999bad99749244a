//! Names ↔ optimizers. Adding one of Taper's own optimizers is one new file and one line in
//! [`REGISTRY`]; an optimizer from another crate is added at run time with [`register`] (a
//! [`Rule`]) or [`register_constructor`] (any [`Optimizer`]), after which every place that
//! resolves a spec (examples, checkpoints, sweeps) knows its name.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use taper_autograd::Param;

use candle_core::Tensor;

use crate::hyper::Hyper;
use crate::rule::{Engine, Rule, Steps};
use crate::spec::OptimSpec;
use crate::{
    AdEMAMix, AdaBelief, Adadelta, Adafactor, Adagrad, Adam, AdamW, Adamax, Adan, Adopt, Asgd, DAdaptAdam,
    DEngine, Error, LaProp, Lamb, Lbfgs, Lion, Lookahead, LookaheadOptions, Madgrad, Mars, Muon, NAdam,
    Optimizer, Prodigy, RAdam, Result, RmsProp, Rprop, Sam, SamOptions, ScheduleFreeAdamW, ScheduleFreeSgd,
    Sgd, Soap, Yogi,
};

/// Builds an optimizer over `params` from a parsed spec.
pub type Constructor = fn(&OptimSpec, Vec<Param>) -> Result<Box<dyn Optimizer>>;

/// A constructor registered at run time (a closure may capture what it needs).
pub type DynConstructor = Arc<dyn Fn(&OptimSpec, Vec<Param>) -> Result<Box<dyn Optimizer>> + Send + Sync>;

/// Taper's own optimizers, by their spec names.
pub const REGISTRY: &[(&str, Constructor)] = &[
    (Sgd::NAME, build::<Sgd>),
    (Adagrad::NAME, build::<Adagrad>),
    (RmsProp::NAME, build::<RmsProp>),
    (Adadelta::NAME, build::<Adadelta>),
    (Adam::NAME, build::<Adam>),
    (AdamW::NAME, build::<AdamW>),
    (RAdam::NAME, build::<RAdam>),
    (Rprop::NAME, build::<Rprop>),
    (Adamax::NAME, build::<Adamax>),
    (NAdam::NAME, build::<NAdam>),
    (Asgd::NAME, build::<Asgd>),
    (Adafactor::NAME, build::<Adafactor>),
    (Muon::NAME, build::<Muon>),
    (Lbfgs::NAME, Lbfgs::build),
    (Lion::NAME, build::<Lion>),
    (AdaBelief::NAME, build::<AdaBelief>),
    (Yogi::NAME, build::<Yogi>),
    (Adan::NAME, build::<Adan>),
    (Lamb::NAME, build::<Lamb>),
    (ScheduleFreeAdamW::NAME, build::<ScheduleFreeAdamW>),
    (ScheduleFreeSgd::NAME, build::<ScheduleFreeSgd>),
    (Adopt::NAME, build::<Adopt>),
    (Mars::NAME, build::<Mars>),
    (Madgrad::NAME, build::<Madgrad>),
    (LaProp::NAME, build::<LaProp>),
    (AdEMAMix::NAME, build::<AdEMAMix>),
    (LookaheadOptions::NAME, Lookahead::build),
    (SamOptions::NAME, Sam::build),
    (Prodigy::NAME, DEngine::<Prodigy>::build),
    (Soap::NAME, build::<Soap>),
    (DAdaptAdam::NAME, DEngine::<DAdaptAdam>::build),
];

/// Optimizers registered at run time, by name.
static REGISTERED: RwLock<BTreeMap<String, DynConstructor>> = RwLock::new(BTreeMap::new());

/// The constructor of any [`Rule`]: validates the spec's options and wraps the rule in an
/// [`Engine`].
pub fn build<R: Rule + Steps<Tensor>>(spec: &OptimSpec, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
    Ok(Box::new(Engine::new(R::from_spec(spec)?, params)?))
}

/// Makes the [`Rule`] `R` known under its name `R::NAME`, for every spec resolved from now on.
/// A name already taken (by Taper's own optimizers or an earlier registration) is an error.
pub fn register<R: Rule + Steps<Tensor>>() -> Result<()> {
    register_constructor(R::NAME, build::<R>)
}

/// Makes any optimizer known under `name`: `ctor` builds it from a spec naming it. Names are
/// letters, digits and `_`, as in a spec; a name already taken is an error.
pub fn register_constructor(
    name: &str,
    ctor: impl Fn(&OptimSpec, Vec<Param>) -> Result<Box<dyn Optimizer>> + Send + Sync + 'static,
) -> Result<()> {
    let parsed = OptimSpec::parse(name)?;
    if parsed.name != name || !parsed.options.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "cannot register `{name}`: a name is lower-case letters, digits and `_`"
        )));
    }
    if REGISTRY.iter().any(|(n, _)| *n == name) {
        return Err(Error::InvalidArgument(format!(
            "cannot register `{name}`: Taper has an optimizer of that name"
        )));
    }
    let mut table =
        REGISTERED.write().map_err(|_| Error::InvalidArgument("optimizer registry poisoned".into()))?;
    if table.contains_key(name) {
        return Err(Error::InvalidArgument(format!("cannot register `{name}`: it is registered already")));
    }
    table.insert(name.to_string(), Arc::new(ctor));
    Ok(())
}

/// Every known name: Taper's own, then those registered at run time.
pub fn names() -> Vec<String> {
    let mut out: Vec<String> = REGISTRY.iter().map(|(n, _)| n.to_string()).collect();
    if let Ok(table) = REGISTERED.read() {
        out.extend(table.keys().cloned());
    }
    out
}

/// The constructor for `name`, if known.
fn lookup(name: &str) -> Option<DynConstructor> {
    if let Some((_, ctor)) = REGISTRY.iter().find(|(n, _)| *n == name) {
        let ctor: Constructor = *ctor;
        return Some(Arc::new(ctor));
    }
    REGISTERED.read().ok().and_then(|table| table.get(name).cloned())
}

/// Builds the optimizer a spec string names (`rmsprop:lr=0.01,alpha=0.9`) over `params`.
pub fn from_spec(spec: &str, params: Vec<Param>) -> Result<Box<dyn Optimizer>> {
    let spec = OptimSpec::parse(spec)?;
    let ctor = lookup(&spec.name)
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
