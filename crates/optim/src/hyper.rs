//! Hyperparameters declared once: the [`Hyper`] trait that `#[derive(Hyper)]` writes, and the
//! [`Transforms`] it tells the engine to apply around an update.

use crate::spec::{OptimSpec, Options};
use crate::{Error, Result};

/// One option of an optimizer, as declared: for help texts and the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionInfo {
    /// The spec key (`alpha`).
    pub key: &'static str,
    /// Other names accepted for it (`gamma`).
    pub aliases: &'static [&'static str],
    /// The default, as written in the declaration.
    pub default: &'static str,
    /// What values are allowed.
    pub allowed: &'static str,
    /// Whether a spec must give it (optax's required learning rates).
    pub required: bool,
    /// The field's doc comment.
    pub doc: &'static str,
}

/// How weight decay `λ` enters a step (the engine applies it; no rule writes it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    /// No weight decay (`λ = 0`).
    None,
    /// PyTorch's L2 penalty on the gradient, `g ← g + λ·p`, before the update.
    L2(f64),
    /// PyTorch's decoupled decay (AdamW), `p ← p·f` with `f = 1 - η·λ`, before the update (for a
    /// rule written as a direction and an apply step: between the two, after the direction has
    /// read `p`).
    Decoupled(f64),
    /// optax's `add_decayed_weights`: `u ← u + λ·p` on the update direction `u`, before the
    /// learning rate scales it.
    Added(f64),
}

/// What the engine applies around a rule's update, in this order (optax's `chain`):
///
/// ```text
/// g ← -g                       maximize
/// g ← g + λ·p                  Decay::L2
/// u ← direction(p, g)          (a rule written as direction + apply)
/// u ← u·m/mean(m), m = [u·g>0] cautious (on the update, for a rule written as `update`)
/// u ← u + λ·p                  Decay::Added
/// p ← p·(1 - η·λ)              Decay::Decoupled
/// p ← apply(p, u)              (or the rule's whole `update`)
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transforms {
    /// Ascend the objective: the gradient is negated before anything else sees it.
    pub maximize: bool,
    /// Weight decay and where it goes.
    pub decay: Decay,
    /// Cautious updates (C-Optim, Liang et al. 2024, rescaled as timm's `caution=True`): the update
    /// is zeroed where its sign disagrees with the gradient's, and the rest divided by the kept
    /// fraction (at least 1e-3).
    pub cautious: bool,
}

impl Transforms {
    /// Nothing around the update.
    pub const NONE: Transforms = Transforms { maximize: false, decay: Decay::None, cautious: false };
}

/// Hyperparameters (an optimizer's or a scheduler's), declared once with `#[derive(Hyper)]`
/// (which writes all of this trait but the provided methods): the spec name, each option's
/// default, range, aliases and doc, reading and writing spec options, checks, and typed access by
/// name. An optimizer's also have [`OptimHyper`].
pub trait Hyper: Clone + Sized {
    /// The registry name (`rmsprop`).
    const NAME: &'static str;
    /// Reads and checks the options of a spec: absent options take their declared defaults
    /// (PyTorch's), or `base`'s values when given (a new parameter group's overrides).
    fn read_from(o: &mut Options, base: Option<&Self>) -> Result<Self>;
    /// Every option as the spec writes it, in declaration order: the canonical spec.
    fn write(&self) -> Vec<(&'static str, String)>;
    /// Checks values set on the struct directly, with the ranges and messages of the spec.
    fn validate(&self) -> Result<()>;
    /// A numeric option by its key or an alias (`momentum`, `beta1`); `None` if there is none.
    fn get(&self, key: &str) -> Option<f64>;
    /// Sets a numeric option by its key or an alias, checked as the spec checks it; an error
    /// changes nothing.
    fn set(&mut self, key: &str, value: f64) -> Result<()>;
    /// Every option as declared.
    fn options_info() -> &'static [OptionInfo];

    /// The canonical spec: the name and every option.
    fn to_spec(&self) -> OptimSpec {
        OptimSpec {
            name: Self::NAME.to_string(),
            options: self.write().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    /// Builds the hyperparameters from a spec (which must name this optimizer).
    fn from_spec(spec: &OptimSpec) -> Result<Self> {
        if spec.name != Self::NAME {
            return Err(Error::Spec {
                spec: spec.to_string(),
                msg: format!("expected optimizer `{}`", Self::NAME),
            });
        }
        let mut o = Options::new(Self::NAME, spec);
        let rule = Self::read_from(&mut o, None)?;
        o.finish()?;
        Ok(rule)
    }

    /// These hyperparameters with `options` (`"lr=0.1,momentum=0.9"`, keys or aliases) in place
    /// of their own: a new parameter group's.
    fn with_overrides(&self, options: &str) -> Result<Self> {
        // No options: the same hyperparameters (a spec `name:` with nothing after the colon is
        // malformed, and must not be what Taper builds from an empty override).
        let text = if options.trim().is_empty() {
            Self::NAME.to_string()
        } else {
            format!("{}:{options}", Self::NAME)
        };
        let extra = OptimSpec::parse(&text)?;
        let mut o = Options::new(Self::NAME, &extra);
        let rule = Self::read_from(&mut o, Some(self))?;
        o.finish()?;
        Ok(rule)
    }
}

/// An optimizer's hyperparameters beyond their options (written by `#[derive(Hyper)]` for a
/// struct with a learning rate): the learning rate, and the [`Transforms`] the engine applies.
pub trait OptimHyper: Hyper {
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (already checked finite and ≥ 0).
    fn set_lr(&mut self, lr: f64);
    /// What the engine applies around the update (maximize, weight decay, cautious).
    fn transforms(&self) -> Transforms;
}
