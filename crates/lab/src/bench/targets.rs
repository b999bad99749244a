//! Setting the targets, as AlgoPerf does: the four baselines ([`suite::BASELINES`]), each tuned
//! over `trials` quasirandom points of its search space at the problem's own budget (the
//! target-setting runtime), on every workload and held-out variant; the best setting (by final
//! metric) is rerun on more seeds, and the target is the median of its final metrics, rounded
//! outward to 3 significant digits ([`suite::round_outward`]).

use std::path::Path;

use anyhow::{bail, Result};

use super::space::SearchSpace;
use super::suite::{self, Target, Targets, Workload, SUITE, WORKLOADS};
use crate::sweep::problem::{Context, Problem};
use crate::sweep::store::{self, Stage};
use crate::sweep::{Cell, OptimizerGrid, Shard, Sweep};

/// Runs the target setting into `dir` (resumable, as a sweep) and returns the targets, also
/// written to `dir/targets.json`.
pub fn set(
    ctx: &Context,
    trials: u32,
    seeds: u64,
    dir: &Path,
    command: &str,
    mut say: impl FnMut(&str),
) -> Result<Targets> {
    if trials == 0 || seeds == 0 {
        bail!("target setting needs at least 1 trial and 1 seed");
    }
    let names: Vec<String> = WORKLOADS.iter().map(|s| s.to_string()).collect();
    let problems = suite::build_problems(&names, ctx)?;
    let mut provisional = Vec::new();
    let mut boxed: Vec<Box<dyn Problem>> = Vec::new();
    for p in &problems {
        let variants = p.variants();
        for v in 0..=variants.len() {
            let metric = p.metric();
            let steps =
                p.steps(v).ok_or_else(|| anyhow::anyhow!("problem `{}` has no step budget", p.name()))?;
            let t = Target {
                problem: p.name().to_string(),
                variant: v,
                variant_name: if v == 0 { String::new() } else { variants[v - 1].clone() },
                metric: metric.name,
                goal: metric.goal,
                target: metric.target,
                target_steps: steps,
                set_by: String::new(),
                finals: Vec::new(),
            };
            boxed.push(Box::new(Workload::new(p.clone(), t.clone(), steps, false)?));
            provisional.push(t);
        }
    }
    let spaces: Vec<SearchSpace> =
        suite::BASELINES.iter().map(|b| SearchSpace::parse(b)).collect::<Result<_>>()?;
    let grids = spaces
        .iter()
        .map(|s| OptimizerGrid { text: s.text.clone(), label: s.label(), points: Vec::new() })
        .collect();
    let sweep = Sweep { problems: boxed, optimizers: grids, seeds, tune: None, logdir: None };
    // Stage 1: every baseline's trials on every workload, seed 0.
    let mut cells = Vec::new();
    for t in &provisional {
        for (b, s) in spaces.iter().enumerate() {
            for trial in 0..trials {
                let (spec, swept) = s.sample_point(0, trial)?;
                let spec = crate::optim::canonical(&spec)?.to_string();
                cells.push(Cell {
                    problem: t.name(),
                    optimizer: b,
                    spec,
                    swept,
                    seed: 0,
                    stage: Stage::Grid,
                });
            }
        }
    }
    crate::sweep::run(&sweep, &cells, Shard::ALL, dir, &mut say)?;
    // Stage 2: each workload's best setting over seeds 1..seeds.
    let mut best = Vec::new();
    for t in &provisional {
        let mut top: Option<(Cell, f64)> = None;
        for c in cells.iter().filter(|c| c.problem == t.name()) {
            let Some(r) = store::read_cell(&store::cell_path(dir, &c.problem, &c.spec, 0))? else { continue };
            if top.as_ref().is_none_or(|(_, v)| t.goal.better(r.final_metric, *v))
                && r.final_metric.is_finite()
            {
                top = Some((c.clone(), r.final_metric));
            }
        }
        let Some((cell, _)) = top else { bail!("no baseline reached a finite metric on `{}`", t.name()) };
        best.push(cell);
    }
    let reruns: Vec<Cell> = best
        .iter()
        .flat_map(|c| (1..seeds).map(move |seed| Cell { seed, stage: Stage::Final, ..c.clone() }))
        .collect();
    crate::sweep::run(&sweep, &reruns, Shard::ALL, dir, &mut say)?;
    let mut workloads = Vec::new();
    for (mut t, c) in provisional.into_iter().zip(&best) {
        let mut finals = Vec::new();
        for seed in 0..seeds {
            let r = store::read_cell(&store::cell_path(dir, &c.problem, &c.spec, seed))?;
            finals.push(r.map_or(f64::NAN, |r| r.final_metric));
        }
        // A diverged seed is the worst value: last in the order of the goal.
        let sign = if t.goal == crate::sweep::Goal::Maximize { -1.0 } else { 1.0 };
        let med = super::run::median(finals.iter().map(|&x| x.is_finite().then_some(sign * x)).collect())
            .map(|m| sign * m);
        let Some(med) = med else { bail!("the best baseline of `{}` diverged on most seeds", t.name()) };
        t.target = suite::round_outward(med, t.goal);
        t.set_by = c.spec.clone();
        t.finals = finals;
        workloads.push(t);
    }
    let targets = Targets {
        suite: SUITE.to_string(),
        command: command.to_string(),
        machine: {
            let m = store::Machine::here();
            format!("{} ({} threads)", m.cpu, m.threads)
        },
        trials,
        seeds,
        workloads,
    };
    let mut text = serde_json::to_string_pretty(&targets)?;
    text.push('\n');
    store::write_atomic(&dir.join("targets.json"), text.as_bytes())?;
    Ok(targets)
}
