//! The benchmark's suite: its workloads, their frozen targets and step budgets (a versioned file,
//! committed with the script that set it), the rulesets' budgets, and each workload as a
//! [`Problem`] that runs under the benchmark's rules (its budget, its held-out variant, an early
//! stop at the target).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::sweep::problem::{self, Context, Curve, Goal, Metric, Problem, Setup};

/// The suite's version: a targets or leaderboard file made for another version is refused.
pub const SUITE: &str = "taper-bench-1";

/// The suite's problems, in order (each with its held-out variants).
pub const WORKLOADS: &[&str] = &["linreg", "airfoil", "mnist_mlp", "mnist_convnet", "char_gpt", "rosenbrock"];

/// The external-tuning budget: this many times the target-setting steps, as AlgoPerf's 4/3 of
/// the target-setting runtime (`ceil(4·S/3)`).
pub fn external_budget(target_steps: u64) -> u64 {
    (4 * target_steps).div_ceil(3)
}

/// The self-tuning budget: 3 times the external one, as AlgoPerf's.
pub fn self_tuning_budget(target_steps: u64) -> u64 {
    3 * external_budget(target_steps)
}

/// The four baselines that set the targets, as AlgoPerf's (AdamW, NAdamW, SGD with Nesterov
/// momentum, heavy-ball momentum), each with its search space.
pub const BASELINES: &[&str] = &[
    "adamw:lr=loguniform(1e-4,1e-1),weight_decay=loguniform(1e-4,1e-1)",
    "nadam:lr=loguniform(1e-4,1e-1),weight_decay=loguniform(1e-4,1e-1),decoupled_weight_decay=true",
    "sgd:lr=loguniform(1e-3,1),momentum=uniform(0.8,0.99),nesterov=true",
    "sgd:lr=loguniform(1e-3,1),momentum=uniform(0.8,0.99)",
];

/// Which rules a run follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Ruleset {
    /// A search space sampled quasirandomly: `trials` per study, `studies` studies, the median
    /// study counts; the budget is 4/3 of the target-setting steps.
    External,
    /// The spec as given, one run per study, 3 times the external budget.
    SelfTuning,
}

impl std::fmt::Display for Ruleset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ruleset::External => "external tuning",
            Ruleset::SelfTuning => "self-tuning",
        })
    }
}

/// One workload's frozen target and budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The problem.
    pub problem: String,
    /// `0`: the problem itself; `i >= 1`: its held-out variant `i`.
    pub variant: usize,
    /// The variant in words (empty for the problem itself).
    pub variant_name: String,
    /// The metric's name.
    pub metric: String,
    /// Which way is better.
    pub goal: Goal,
    /// The value to reach.
    pub target: f64,
    /// Steps of the target-setting runs (the problem's own budget).
    pub target_steps: u64,
    /// The baseline setting whose median final metric over seeds set the target.
    pub set_by: String,
    /// Its final metric on each seed.
    pub finals: Vec<f64>,
}

impl Target {
    /// The workload's name: the problem, or `problem.v{i}` for a held-out variant.
    pub fn name(&self) -> String {
        workload_name(&self.problem, self.variant)
    }
}

/// `problem`, or `problem.v{variant}` for a held-out variant.
pub fn workload_name(problem: &str, variant: usize) -> String {
    if variant == 0 {
        problem.to_string()
    } else {
        format!("{problem}.v{variant}")
    }
}

/// The frozen targets of a suite version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// The suite version ([`SUITE`]).
    pub suite: String,
    /// The command that set them.
    pub command: String,
    /// The machine it ran on.
    pub machine: String,
    /// Trials per baseline.
    pub trials: u32,
    /// Seeds of the best setting's reruns (the target is the median over them).
    pub seeds: u64,
    /// Every workload, held-out variants included.
    pub workloads: Vec<Target>,
}

/// The committed targets (`crates/lab/bench/targets.json`, set by `scripts/bench/set_targets.sh`).
pub const BUILTIN_TARGETS: &str = include_str!("../../bench/targets.json");

impl Targets {
    /// The committed targets.
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN_TARGETS, "the built-in targets")
    }

    /// Reads a targets file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses targets and checks they are this suite version's.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let suite = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("suite").and_then(|s| s.as_str()).map(str::to_string));
        match suite {
            Some(s) if s == SUITE => {}
            Some(s) => bail!("{origin} holds targets of suite `{s}`; this taper runs suite `{SUITE}`"),
            None => bail!("{origin} is not a targets file (no `suite` field)"),
        }
        let t: Targets = serde_json::from_str(text).with_context(|| format!("reading {origin}"))?;
        for w in &t.workloads {
            if !w.target.is_finite() || w.target_steps == 0 {
                bail!("{origin}: workload `{}` has no finite target or a budget of 0 steps", w.name());
            }
        }
        Ok(t)
    }

    /// The target of `problem`'s variant `variant`.
    pub fn get(&self, problem: &str, variant: usize) -> Result<&Target> {
        self.workloads.iter().find(|w| w.problem == problem && w.variant == variant).ok_or_else(|| {
            anyhow::anyhow!("the targets hold no workload `{}`", workload_name(problem, variant))
        })
    }

    /// The held-out variants of `problem` these targets know.
    pub fn variants(&self, problem: &str) -> Vec<usize> {
        self.workloads.iter().filter(|w| w.problem == problem && w.variant > 0).map(|w| w.variant).collect()
    }
}

/// The held-out variant of `problem` drawn from `seed` among `variants` (SplitMix64 of the seed
/// and the problem's name, so each workload draws on its own).
pub fn draw_variant(seed: u64, problem: &str, variants: &[usize]) -> Option<usize> {
    if variants.is_empty() {
        return None;
    }
    let mut x = seed ^ crate::sweep::store::fnv64(problem);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Some(variants[(z % variants.len() as u64) as usize])
}

/// A workload: a problem run under the benchmark's rules ([`Setup`]), named and measured by its
/// frozen target.
pub struct Workload {
    /// Its name ([`Target::name`]).
    pub name: String,
    /// The problem, shared by its variants.
    pub problem: Arc<dyn Problem>,
    /// Its target.
    pub target: Target,
    /// How it runs: the budget, the variant, the early stop (none when setting targets).
    pub setup: Setup,
}

impl Workload {
    /// The workload of `target` on `problem` with a budget of `steps` steps, stopping at the
    /// target when `stop` is set.
    pub fn new(problem: Arc<dyn Problem>, target: Target, steps: u64, stop: bool) -> Result<Self> {
        let have = problem.variants().len();
        if target.variant > have {
            bail!(
                "problem `{}` has {have} held-out variant(s), the targets name variant {}",
                target.problem,
                target.variant
            );
        }
        if steps == 0 {
            bail!("workload `{}`: a budget of 0 steps", target.name());
        }
        let setup =
            Setup { steps: Some(steps), variant: target.variant, stop_at: stop.then_some(target.target) };
        Ok(Self { name: target.name(), problem, target, setup })
    }
}

impl Problem for Workload {
    fn name(&self) -> &str {
        &self.name
    }
    fn describe(&self) -> String {
        let variant = if self.target.variant == 0 {
            String::new()
        } else {
            format!(" [held out: {}]", self.target.variant_name)
        };
        format!("{}{variant}", self.problem.describe())
    }
    fn metric(&self) -> Metric {
        Metric { name: self.target.metric.clone(), goal: self.target.goal, target: self.target.target }
    }
    fn budget(&self) -> String {
        let stop = match self.setup.stop_at {
            Some(t) => format!(
                ", ends at {} {} {t}",
                self.target.metric,
                if self.target.goal == Goal::Minimize { "<=" } else { ">=" }
            ),
            None => String::new(),
        };
        format!("{} steps{stop}", self.setup.steps.unwrap_or(0))
    }
    fn run(&self, spec: &str, seed: u64) -> Result<Curve> {
        self.problem.run_setup(spec, seed, &self.setup)
    }
}

/// Builds the suite's problems named in `problems` (loading their data once each).
pub fn build_problems(problems: &[String], ctx: &Context) -> Result<Vec<Arc<dyn Problem>>> {
    problems
        .iter()
        .map(|p| -> Result<Arc<dyn Problem>> {
            let b = problem::build(p, ctx).with_context(|| format!("problem `{p}`"))?;
            if b.steps(0).is_none() {
                bail!(
                    "problem `{p}` cannot run another budget (Problem::steps), so it cannot be benchmarked"
                );
            }
            Ok(Arc::from(b))
        })
        .collect()
}

/// Rounds a target outward to 3 significant digits (up for a loss, down for an accuracy): the
/// baseline's value with at most 1% of slack, so that a converged run does not miss it by the
/// last bits.
pub fn round_outward(x: f64, goal: Goal) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let e = x.abs().log10().floor() as i32 - 2;
    let scale = 10f64.powi(e);
    let q = x / scale;
    let r = match goal {
        Goal::Minimize => q.ceil(),
        Goal::Maximize => q.floor(),
    };
    // Printed and parsed back: the shortest decimal of the rounded value.
    format!("{:.*e}", 2, r * scale).parse().unwrap_or(r * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_follow_algoperf_and_targets_round_outward() {
        assert_eq!((external_budget(300), self_tuning_budget(300)), (400, 1200));
        assert_eq!(external_budget(125), 167);
        assert_eq!(round_outward(0.98765, Goal::Minimize), 0.988);
        assert_eq!(round_outward(0.97456, Goal::Maximize), 0.974);
        assert_eq!(round_outward(2.2301, Goal::Minimize), 2.24);
        assert_eq!(round_outward(1.23e-7, Goal::Minimize), 1.23e-7);
        assert_eq!(round_outward(1.2301e-7, Goal::Minimize), 1.24e-7);
    }

    #[test]
    fn variants_are_drawn_from_the_seed_per_workload() {
        let v = [1, 2];
        let draws: Vec<usize> = (0..64).map(|s| draw_variant(s, "char_gpt", &v).unwrap()).collect();
        assert_eq!(draws, (0..64).map(|s| draw_variant(s, "char_gpt", &v).unwrap()).collect::<Vec<_>>());
        let ones = draws.iter().filter(|&&d| d == 1).count();
        assert!((20..=44).contains(&ones), "{ones} of 64");
        let other: Vec<usize> = (0..64).map(|s| draw_variant(s, "linreg", &v).unwrap()).collect();
        assert_ne!(draws, other, "each workload draws on its own");
        assert_eq!(draw_variant(3, "x", &[]), None);
    }

    #[test]
    fn the_builtin_targets_cover_the_suite_and_other_versions_are_refused() {
        let t = Targets::builtin().unwrap();
        for p in WORKLOADS {
            assert!(t.get(p, 0).is_ok(), "{p}");
            assert!(t.variants(p).len() >= 2, "{p} has held-out variants");
        }
        let other = BUILTIN_TARGETS.replace(SUITE, "taper-bench-0");
        let e = Targets::parse(&other, "old.json").unwrap_err().to_string();
        assert!(e.contains("suite `taper-bench-0`") && e.contains(SUITE), "{e}");
        assert!(Targets::parse("{}", "x.json").unwrap_err().to_string().contains("not a targets file"));
    }
}
