//! Search spaces in the spec language, sampled quasirandomly (AlgoPerf's external tuning: a fixed
//! number of trials per study, each a point of a low-discrepancy sequence over the space).
//!
//! Any option of a spec may be a range: `loguniform(a,b)` (log scale, `0 < a < b`) or
//! `uniform(a,b)` (linear, `a < b`); the others stay fixed:
//!
//! ```
//! use taper_lab::bench::space::SearchSpace;
//!
//! let s = SearchSpace::parse("adamw:lr=loguniform(1e-4,1e-1),beta1=uniform(0.8,0.99),weight_decay=0.01")?;
//! assert_eq!(s.dimensions(), 2);
//! let trial = s.sample(0, 3)?; // study 0, trial 3: the same spec every time
//! assert!(trial.starts_with("adamw:lr=") && trial.ends_with(",weight_decay=0.01"));
//! assert_ne!(s.sample(1, 3)?, trial, "another study scrambles the sequence anew");
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Trial `i` of study `s` takes point `i` of an Owen-scrambled Sobol sequence seeded by `s`
//! (Burley's construction, the `sobol_burley` crate): the first trials of a study already cover
//! the space evenly, and each study is an independent scrambling of the same sequence.

use anyhow::{bail, Context, Result};

use crate::optim::{split_top_level, OptimSpec, Value};
use crate::sweep::grid::round_sig;

/// How a ranged option is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Evenly in `ln x`.
    Log,
    /// Evenly in `x`.
    Linear,
}

/// One option of a search space.
#[derive(Debug, Clone, PartialEq)]
pub enum Dim {
    /// A value every trial takes.
    Fixed(String),
    /// A range `[lo, hi]` on a scale.
    Range {
        /// Lower bound.
        lo: f64,
        /// Upper bound.
        hi: f64,
        /// Log or linear.
        scale: Scale,
    },
}

/// A search space: an optimizer and its options, some of them ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    /// As written.
    pub text: String,
    /// The optimizer's name.
    pub name: String,
    /// Each option, in the order written.
    pub options: Vec<(String, Dim)>,
}

/// Most ranged options a space may have (the Sobol sequence's dimensions).
const MAX_DIMENSIONS: usize = 64;

impl SearchSpace {
    /// Parses `name:key=value,...` where a value may be `loguniform(a,b)` or `uniform(a,b)`, and
    /// checks that the optimizer takes the space's corners (an unknown option or a bound out of
    /// the option's range is an error here, not in the middle of a benchmark).
    pub fn parse(text: &str) -> Result<Self> {
        let spec = OptimSpec::parse(text).with_context(|| format!("search space `{text}`"))?;
        let mut options = Vec::new();
        for (key, value) in &spec.options {
            let dim = dim(value).with_context(|| format!("search space `{text}`: option `{key}`"))?;
            options.push((key.clone(), dim));
        }
        let s = SearchSpace { text: text.to_string(), name: spec.name, options };
        if s.dimensions() > MAX_DIMENSIONS {
            bail!("search space `{text}`: {} ranges, at most {MAX_DIMENSIONS}", s.dimensions());
        }
        for corner in [0.0, 1.0] {
            let spec = s.at(&vec![corner; s.dimensions()]);
            crate::optim::canonical(&spec)
                .with_context(|| format!("search space `{text}`: its corner `{spec}`"))?;
        }
        Ok(s)
    }

    /// The number of ranged options.
    pub fn dimensions(&self) -> usize {
        self.options.iter().filter(|(_, d)| matches!(d, Dim::Range { .. })).count()
    }

    /// The spec at the unit-cube point `u` (one coordinate per range, in order), each value
    /// rounded to 10 significant digits.
    pub fn at(&self, u: &[f64]) -> String {
        let mut k = 0;
        let opts: Vec<String> = self
            .options
            .iter()
            .map(|(key, d)| match d {
                Dim::Fixed(v) => format!("{key}={v}"),
                Dim::Range { lo, hi, scale } => {
                    let t = u.get(k).copied().unwrap_or(0.0).clamp(0.0, 1.0);
                    k += 1;
                    let x = match scale {
                        Scale::Log => (lo.ln() + t * (hi.ln() - lo.ln())).exp(),
                        Scale::Linear => lo + t * (hi - lo),
                    };
                    format!("{key}={}", Value::Num(round_sig(x.clamp(*lo, *hi))))
                }
            })
            .collect();
        if opts.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, opts.join(","))
        }
    }

    /// Trial `trial` of study `study`: point `trial` of the Sobol sequence scrambled by `study`.
    pub fn sample(&self, study: u32, trial: u32) -> Result<String> {
        Ok(self.sample_point(study, trial)?.0)
    }

    /// [`SearchSpace::sample`], with the ranged options' values: `(spec, [(option, value)])`.
    pub fn sample_point(&self, study: u32, trial: u32) -> Result<(String, Vec<(String, String)>)> {
        if trial >= 1 << 16 {
            bail!("trial {trial}: a study has at most 65536 trials");
        }
        let u: Vec<f64> =
            (0..self.dimensions()).map(|d| f64::from(sobol_burley::sample(trial, d as u32, study))).collect();
        let spec = self.at(&u);
        let parsed = OptimSpec::parse(&spec)?;
        let ranged: Vec<&String> =
            self.options.iter().filter(|(_, d)| matches!(d, Dim::Range { .. })).map(|(k, _)| k).collect();
        let swept = parsed.options.into_iter().filter(|(k, _)| ranged.contains(&k)).collect();
        Ok((spec, swept))
    }

    /// The space without its ranges (`adamw:weight_decay=0.01` for
    /// `adamw:lr=loguniform(1e-4,1e-1),weight_decay=0.01`): what it is called in reports.
    pub fn label(&self) -> String {
        let fixed: Vec<String> = self
            .options
            .iter()
            .filter_map(|(k, d)| match d {
                Dim::Fixed(v) => Some(format!("{k}={v}")),
                Dim::Range { .. } => None,
            })
            .collect();
        if fixed.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.name, fixed.join(","))
        }
    }
}

/// A value: a range or a fixed value.
fn dim(value: &str) -> Result<Dim> {
    let v = value.trim();
    for (word, scale) in [("loguniform", Scale::Log), ("uniform", Scale::Linear)] {
        let Some(args) =
            v.strip_prefix(word).and_then(|r| r.strip_prefix('(')).and_then(|r| r.strip_suffix(')'))
        else {
            continue;
        };
        let parts = split_top_level(args).map_err(anyhow::Error::msg)?;
        let [a, b] = parts[..] else { bail!("`{word}` takes two bounds, got `{v}`") };
        let num = |s: &str| s.trim().parse::<f64>().ok().filter(|x| x.is_finite());
        let (Some(lo), Some(hi)) = (num(a), num(b)) else {
            bail!("`{v}`: the bounds must be finite numbers")
        };
        if lo >= hi {
            bail!("`{v}`: the lower bound must be below the upper");
        }
        if scale == Scale::Log && lo <= 0.0 {
            bail!("`{v}`: a log range needs positive bounds");
        }
        return Ok(Dim::Range { lo, hi, scale });
    }
    if v.starts_with('[') || v.starts_with("logspace(") || v.starts_with("linspace(") {
        bail!("`{v}` is a sweep grid; a search space takes `loguniform(a,b)` or `uniform(a,b)`");
    }
    Ok(Dim::Fixed(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_cover_the_space_deterministically_and_studies_differ() {
        let s =
            SearchSpace::parse("sgd:lr=loguniform(1e-3,1),momentum=uniform(0.5,0.99),nesterov=true").unwrap();
        let lr = |spec: &str| -> f64 {
            let o = OptimSpec::parse(spec).unwrap();
            o.options.iter().find(|(k, _)| k == "lr").unwrap().1.parse().unwrap()
        };
        let trials: Vec<String> = (0..16).map(|i| s.sample(7, i).unwrap()).collect();
        assert_eq!(trials, (0..16).map(|i| s.sample(7, i).unwrap()).collect::<Vec<_>>(), "reproducible");
        assert!(trials.iter().all(|t| t.ends_with(",nesterov=true") && crate::optim::canonical(t).is_ok()));
        // Stratified: each decade of the log range holds 16/3 ± 2 of the 16 trials.
        for decade in 0..3 {
            let lo = 1e-3 * 10f64.powi(decade);
            let n = trials.iter().filter(|t| (lo..lo * 10.0).contains(&lr(t))).count();
            assert!((3..=8).contains(&n), "decade {decade}: {n} of 16");
        }
        assert_ne!(trials, (0..16).map(|i| s.sample(8, i).unwrap()).collect::<Vec<_>>());
        assert_eq!(s.at(&[0.0, 1.0]), "sgd:lr=0.001,momentum=0.99,nesterov=true");
        assert_eq!(s.at(&[1.0, 0.0]), "sgd:lr=1,momentum=0.5,nesterov=true");
    }

    #[test]
    fn bad_spaces_are_one_clear_error() {
        for (text, says) in [
            ("adamw:lr=loguniform(0,1)", "positive"),
            ("adamw:lr=uniform(0.1,0.01)", "below the upper"),
            ("adamw:lr=uniform(0.1)", "two bounds"),
            ("adamw:lr=loguniform(1e-4,x)", "finite numbers"),
            ("adamw:lr=[0.1,0.01]", "sweep grid"),
            ("adamw:beta1=uniform(0.5,1.5)", "corner"),
            ("adamw:nope=uniform(0.5,1)", "corner"),
            ("nosuch:lr=uniform(0.1,1)", "nosuch"),
        ] {
            let e = format!("{:#}", SearchSpace::parse(text).unwrap_err());
            assert!(e.contains(says), "{text}: {e}");
        }
        assert_eq!(SearchSpace::parse("adamw:lr=0.001").unwrap().dimensions(), 0);
        assert!(SearchSpace::parse("adamw:lr=uniform(0.001,0.01)").unwrap().sample(0, 1 << 16).is_err());
    }
}
