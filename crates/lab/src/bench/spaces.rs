//! Default search spaces: what `taper bench --optimizer NAME` tunes when given an optimizer's
//! name alone, and what the leaderboard ranks.
//!
//! The learning rate is drawn log-uniformly around the optimizer's default `d`, from `d/30` to
//! `30·d` (three decades, each bound to two significant digits), every other option at its default; the optimizers below override the
//! range where their useful rates lie elsewhere (plain SGD's default of `1e-3` is far below its
//! useful rates; the distance-adapting methods take a multiplier of `1`). A registered optimizer
//! with a learning rate gets the same rule with no change to this file.

use anyhow::{bail, Result};

use super::space::SearchSpace;
use super::suite::Ruleset;

/// Learning-rate ranges that differ from `[d/30, 30·d]`.
const LR_RANGES: &[(&str, f64, f64)] = &[
    ("sgd", 1e-3, 1.0),
    ("asgd", 1e-3, 1.0),
    ("adagrad", 1e-3, 1.0),
    ("schedulefree_sgd", 1e-3, 1.0),
    ("adadelta", 0.1, 10.0),
    ("dadapt_adam", 0.1, 10.0),
    ("prodigy", 0.1, 10.0),
];

/// The rates of the optimizers whose specs require one (optax's, where `learning_rate` has no
/// default): the value of their `Default`, around which the rule above applies.
const REQUIRED_LR: &[(&str, f64)] = &[
    ("adabelief", 1e-3),
    ("adan", 1e-3),
    ("ademamix", 1e-3),
    ("lamb", 1e-3),
    ("lion", 1e-4),
    ("yogi", 1e-2),
];

/// Optimizers with no default search space, and why.
const NO_SPACE: &[(&str, &str)] = &[
    (
        "lbfgs",
        "L-BFGS needs a closure over the whole batch, which the suite's minibatch workloads do not give",
    ),
    ("lookahead", "Lookahead wraps another optimizer: give a space for the inner one's options in the spec"),
    ("sam", "SAM wraps another optimizer and needs a closure: give its inner optimizer in the spec"),
];

/// The default search space of optimizer `name`.
pub fn default_space(name: &str) -> Result<String> {
    if let Some((_, why)) = NO_SPACE.iter().find(|(n, _)| *n == name) {
        bail!("`{name}` has no default search space: {why}");
    }
    let (lo, hi) = match LR_RANGES.iter().find(|(n, _, _)| *n == name) {
        Some(&(_, lo, hi)) => (lo, hi),
        None => {
            let lr = match REQUIRED_LR.iter().find(|(n, _)| *n == name) {
                Some(&(_, lr)) => Some(lr),
                None => {
                    let spec = crate::optim::canonical(name)?;
                    spec.options.iter().find(|(k, _)| k == "lr").and_then(|(_, v)| v.parse::<f64>().ok())
                }
            };
            let Some(lr) = lr else {
                bail!("`{name}` has no default learning rate to search around: give its search space (`{name}:lr=loguniform(a,b)`)");
            };
            (lr / 30.0, lr * 30.0)
        }
    };
    // Two significant digits: `3.3e-5`, not `3.333333333e-05`.
    let r = |x: f64| format!("{x:.1e}").parse::<f64>().unwrap_or(x);
    Ok(format!("{name}:lr=loguniform({},{})", r(lo), r(hi)))
}

/// The search space of `--optimizer TEXT` under `ruleset`: an optimizer's name alone is its
/// default space (external tuning) or its defaults (self-tuning); a spec with ranges is a space
/// (external tuning only); a spec with options and no range is a self-tuning spec, and an empty
/// space under external tuning.
pub fn resolve(text: &str, ruleset: Ruleset) -> Result<SearchSpace> {
    let text = text.trim();
    if text.is_empty() {
        bail!("the search space is empty: give an optimizer (`adamw`) or a space (`adamw:lr=loguniform(1e-4,1e-1)`)");
    }
    let bare = !text.contains(':');
    match ruleset {
        Ruleset::External => {
            let space =
                if bare { SearchSpace::parse(&default_space(text)?)? } else { SearchSpace::parse(text)? };
            if space.dimensions() == 0 {
                bail!(
                    "the search space `{text}` is empty: it has no range to sample; give one (`lr=loguniform(1e-4,1e-1)`), name the optimizer alone for its default space, or use --ruleset self-tuning"
                );
            }
            Ok(space)
        }
        Ruleset::SelfTuning => {
            let space = SearchSpace::parse(text)?;
            if space.dimensions() > 0 {
                bail!("self-tuning runs the spec as given: `{text}` has ranges (use --ruleset external to search them)");
            }
            Ok(space)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_optimizer_has_a_default_space_or_says_why_not() {
        for name in crate::optim::names() {
            match default_space(&name) {
                Ok(space) => {
                    let s = SearchSpace::parse(&space).unwrap();
                    assert_eq!(s.dimensions(), 1, "{space}");
                }
                Err(e) => assert!(NO_SPACE.iter().any(|(n, _)| *n == name), "{name}: {e}"),
            }
        }
        assert_eq!(default_space("adam").unwrap(), "adam:lr=loguniform(0.000033,0.03)");
        assert_eq!(default_space("sgd").unwrap(), "sgd:lr=loguniform(0.001,1)");
    }

    #[test]
    fn spaces_resolve_by_ruleset() {
        assert_eq!(resolve("adam", Ruleset::External).unwrap().dimensions(), 1);
        assert_eq!(resolve("adam", Ruleset::SelfTuning).unwrap().dimensions(), 0);
        for (text, ruleset, says) in [
            ("", Ruleset::External, "empty"),
            ("adamw:lr=0.001", Ruleset::External, "is empty"),
            ("adamw:lr=loguniform(1e-4,1e-2)", Ruleset::SelfTuning, "has ranges"),
            ("lbfgs", Ruleset::External, "closure"),
        ] {
            let e = resolve(text, ruleset).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
