//! A benchmark run: the trials of a search space (or the self-tuning spec) on every workload as
//! sweep cells, and what they add up to: per workload, the median over studies of the fastest
//! trial's time to target, in steps and in seconds.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::space::SearchSpace;
use super::suite::{self, draw_variant, Ruleset, Target, Targets, Workload};
use crate::sweep::problem::{Context, Goal, Problem};
use crate::sweep::store::{self, CellResult, Stage};
use crate::sweep::{Cell, OptimizerGrid, Sweep};

/// What to benchmark, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The search space (external tuning) or the spec (self-tuning). An optimizer's name alone
    /// stands for its default search space under external tuning ([`super::spaces`]).
    pub optimizer: String,
    /// The rules.
    pub ruleset: Ruleset,
    /// Trials per study (external tuning).
    pub trials: u32,
    /// Studies; the median study counts.
    pub studies: u32,
    /// Draws each workload's held-out variant.
    pub seed: u64,
    /// Run every held-out variant instead of one drawn per workload (for the leaderboard).
    pub all_variants: bool,
    /// The suite's workloads to run (empty: all of them).
    pub workloads: Vec<String>,
}

impl Options {
    /// AlgoPerf's protocol scaled to a CPU: 5 trials per study, 3 studies, seed 0.
    pub fn new(optimizer: &str) -> Self {
        Self {
            optimizer: optimizer.to_string(),
            ruleset: Ruleset::External,
            trials: 5,
            studies: 3,
            seed: 0,
            all_variants: false,
            workloads: Vec::new(),
        }
    }
}

/// One workload of a run: its target and whether it is a held-out variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadDef {
    /// The target.
    pub target: Target,
    /// Its step budget under the run's rules.
    pub budget_steps: u64,
}

impl WorkloadDef {
    /// Whether this is a held-out variant.
    pub fn held_out(&self) -> bool {
        self.target.variant > 0
    }
}

/// One trial: a point of the search space in a study.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The study (its seed).
    pub study: u32,
    /// The trial within the study.
    pub trial: u32,
    /// The canonical spec.
    pub spec: String,
    /// The ranged options' values.
    pub swept: Vec<(String, String)>,
}

/// A benchmark ready to run: its options, search space, workloads and cells.
pub struct Bench {
    /// The options.
    pub options: Options,
    /// The search space (no ranges under self-tuning).
    pub space: SearchSpace,
    /// The workloads, the suite's first, then the held-out ones.
    pub workloads: Vec<WorkloadDef>,
    /// The sweep that runs the cells.
    pub sweep: Sweep,
}

impl Bench {
    /// Checks the options against the targets, builds the problems (loading their data) and the
    /// workloads.
    pub fn new(options: Options, targets: &Targets, ctx: &Context) -> Result<Self> {
        if options.trials == 0 {
            bail!("--trials 0: a tuning budget of no trial (at least 1)");
        }
        if options.studies == 0 {
            bail!("--studies 0: a tuning budget of no study (at least 1)");
        }
        let space = super::spaces::resolve(&options.optimizer, options.ruleset)?;
        let problems: Vec<String> = if options.workloads.is_empty() {
            suite::WORKLOADS.iter().map(|s| s.to_string()).collect()
        } else {
            for (i, w) in options.workloads.iter().enumerate() {
                if !suite::WORKLOADS.contains(&w.as_str()) {
                    bail!("`{w}` is not a workload of the suite: {}", suite::WORKLOADS.join(", "));
                }
                if options.workloads[..i].contains(w) {
                    bail!("workload `{w}` given twice");
                }
            }
            options.workloads.clone()
        };
        let mut defs = Vec::new();
        for p in &problems {
            defs.push(targets.get(p, 0)?.clone());
        }
        for p in &problems {
            let variants = targets.variants(p);
            let chosen: Vec<usize> = if options.all_variants {
                variants
            } else {
                draw_variant(options.seed, p, &variants).into_iter().collect()
            };
            for v in chosen {
                defs.push(targets.get(p, v)?.clone());
            }
        }
        let built = suite::build_problems(&problems, ctx)?;
        let mut boxed: Vec<Box<dyn Problem>> = Vec::new();
        let mut workloads = Vec::new();
        for t in defs {
            let problem: Arc<dyn Problem> =
                built[problems.iter().position(|p| *p == t.problem).unwrap_or(0)].clone();
            let budget = match options.ruleset {
                Ruleset::External => suite::external_budget(t.target_steps),
                Ruleset::SelfTuning => suite::self_tuning_budget(t.target_steps),
            };
            boxed.push(Box::new(Workload::new(problem, t.clone(), budget, true)?));
            workloads.push(WorkloadDef { target: t, budget_steps: budget });
        }
        let grid = OptimizerGrid { text: space.text.clone(), label: space.label(), points: Vec::new() };
        let sweep = Sweep {
            problems: boxed,
            optimizers: vec![grid],
            seeds: u64::from(options.studies),
            tune: None,
            logdir: None,
        };
        Ok(Self { options, space, workloads, sweep })
    }

    /// The trials of one workload, the same on each.
    pub fn trials(&self) -> Result<Vec<Trial>> {
        let per_study = match self.options.ruleset {
            Ruleset::External => self.options.trials,
            Ruleset::SelfTuning => 1,
        };
        let mut out = Vec::new();
        for study in 0..self.options.studies {
            for trial in 0..per_study {
                let (spec, swept) = self.space.sample_point(study, trial)?;
                let canonical = crate::optim::canonical(&spec)?.to_string();
                out.push(Trial { study, trial, spec: canonical, swept });
            }
        }
        Ok(out)
    }

    /// Every cell, in order (workload, study, trial); a trial of study `s` runs from seed `s`.
    pub fn cells(&self) -> Result<Vec<Cell>> {
        let trials = self.trials()?;
        let mut cells = Vec::new();
        for w in &self.workloads {
            for Trial { study, spec, swept, .. } in &trials {
                cells.push(Cell {
                    problem: w.target.name(),
                    optimizer: 0,
                    spec: spec.clone(),
                    swept: swept.clone(),
                    seed: u64::from(*study),
                    stage: Stage::Grid,
                });
            }
        }
        Ok(cells)
    }

    /// How many of the cells are in `dir`.
    pub fn done(&self, dir: &Path) -> Result<(usize, usize)> {
        let cells = self.cells()?;
        let done =
            cells.iter().filter(|c| store::cell_path(dir, &c.problem, &c.spec, c.seed).exists()).count();
        Ok((done, cells.len()))
    }

    /// The results in `dir`, which must hold every cell.
    pub fn results(&self, dir: &Path) -> Result<Entry> {
        let trials = self.trials()?;
        let mut workloads = BTreeMap::new();
        let mut details = Vec::new();
        for w in &self.workloads {
            let name = w.target.name();
            let mut per_study: Vec<Study> = (0..self.options.studies).map(|_| Study::default()).collect();
            for Trial { study, trial, spec, .. } in &trials {
                let path = store::cell_path(dir, &name, spec, u64::from(*study));
                let Some(r) = store::read_cell(&path)? else {
                    bail!(
                        "{} lacks the cell {name} / {spec} / study {study}: run every shard (or this command without --shard) first",
                        dir.display()
                    );
                };
                per_study[*study as usize].add(*trial, &r);
            }
            let steps = median(per_study.iter().map(|s| s.steps.map(|(x, _)| x as f64)).collect());
            let seconds = median(per_study.iter().map(|s| s.seconds).collect());
            workloads.insert(name.clone(), Time { steps, seconds });
            details.push(WorkloadRun { def: w.clone(), studies: per_study, steps, seconds });
        }
        let machine = store::Machine::here();
        Ok(Entry {
            name: self.space.label(),
            space: self.space.text.clone(),
            ruleset: self.options.ruleset,
            trials: self.options.trials,
            studies: self.options.studies,
            machine: format!("{} ({} threads)", machine.cpu, machine.threads),
            workloads,
            details,
        })
    }
}

/// A time to target: the median over studies of the fastest trial (`None`: the median study
/// never reached the target).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Time {
    /// In optimizer steps.
    pub steps: Option<f64>,
    /// In training seconds (evaluations excluded).
    pub seconds: Option<f64>,
}

/// One study's trials on one workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// The fastest trial in steps: (steps, its trial).
    pub steps: Option<(u64, u32)>,
    /// The fastest trial in seconds.
    pub seconds: Option<f64>,
    /// Trials that diverged.
    pub diverged: u32,
    /// Trials run.
    pub trials: u32,
}

impl Study {
    fn add(&mut self, trial: u32, r: &CellResult) {
        self.trials += 1;
        if r.status == store::Status::Diverged {
            self.diverged += 1;
        }
        if let Some(s) = r.steps_to_target {
            if self.steps.is_none_or(|(b, _)| s < b) {
                self.steps = Some((s, trial));
            }
        }
        if let Some(s) = r.seconds_to_target {
            if self.seconds.is_none_or(|b| s < b) {
                self.seconds = Some(s);
            }
        }
    }
}

/// The median, a missing value counting as infinite (so the median of an even count is the
/// mean of the middle two, missing when either is).
pub fn median(mut xs: Vec<Option<f64>>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(|a, b| match (a, b) {
        (Some(a), Some(b)) => a.total_cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        Some((xs[n / 2 - 1]? + xs[n / 2]?) / 2.0)
    }
}

/// One workload's outcome in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRun {
    /// The workload.
    pub def: WorkloadDef,
    /// Each study.
    pub studies: Vec<Study>,
    /// Median steps to target.
    pub steps: Option<f64>,
    /// Median seconds to target.
    pub seconds: Option<f64>,
}

/// A run's result, as the leaderboard holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The optimizer's label (the space without its ranges).
    pub name: String,
    /// The search space (or spec) as run.
    pub space: String,
    /// The rules.
    pub ruleset: Ruleset,
    /// Trials per study.
    pub trials: u32,
    /// Studies.
    pub studies: u32,
    /// Where it ran.
    pub machine: String,
    /// Each workload's time to target.
    pub workloads: BTreeMap<String, Time>,
    /// Each workload's studies (not kept in the leaderboard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<WorkloadRun>,
}

impl Entry {
    /// The time to target on `workload` in steps.
    pub fn steps(&self, workload: &str) -> Option<f64> {
        self.workloads.get(workload).and_then(|t| t.steps)
    }
}

/// `value` is at least as good as `target` (for reports).
pub fn relation(goal: Goal) -> &'static str {
    match goal {
        Goal::Minimize => "<=",
        Goal::Maximize => ">=",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_counts_a_study_that_never_reached_as_infinite() {
        assert_eq!(median(vec![Some(3.0), None, Some(1.0)]), Some(3.0));
        assert_eq!(median(vec![None, None, Some(1.0)]), None);
        assert_eq!(median(vec![Some(2.0), Some(4.0)]), Some(3.0));
        assert_eq!(median(vec![Some(2.0), None]), None);
        assert_eq!(median(vec![]), None);
    }
}
