//! Fair optimizer comparisons: learning-rate (and any-option) sweeps over test problems and seeds,
//! run whole, in local processes or in shards on many machines, and a report that merges them.
//!
//! * [`grid`]: optimizer specs with lists and ranges (`adam:lr=logspace(1e-4,1,7)`);
//! * [`problem`]: the [`Problem`] trait and the registry ([`problem::PROBLEMS`], [`register`]);
//!   `problems/` holds Taper's, one file each;
//! * [`store`]: the results directory (one atomically written file per finished cell);
//! * [`Sweep`] and [`run`] (here): the cells of a sweep, their deterministic partition into
//!   shards ([`Shard`]), and running them (skipping finished ones, recording divergence);
//! * [`report`]: merging directories into a Markdown report with SVG figures and a CSV;
//! * [`cli`]: the `taper` command (`taper sweep`, `taper report`, `taper list`).
//!
//! The protocol is DeepOBS's: every setting of every grid runs over `--seeds` seeds; with
//! `--tune N`, the best setting of each optimizer (by its mean final metric over those seeds) is
//! then rerun over seeds `0..N`. See `docs/SWEEPS.md`.

pub mod board;
pub mod cli;
pub mod grid;
pub mod problem;
pub mod problems;
pub mod report;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

pub use problem::{register, Context, Curve, Goal, Metric, Point, Problem, Recorder, Setup};
use store::{CellResult, Machine, ProblemDef, Stage, Status, SweepDef};

/// One optimizer grid of a sweep, parsed and checked.
#[derive(Debug, Clone)]
pub struct OptimizerGrid {
    /// The grid as given.
    pub text: String,
    /// Its label: the grid without the swept options (`sgd:momentum=0.9`).
    pub label: String,
    /// Its points: canonical spec and swept values.
    pub points: Vec<grid::GridPoint>,
}

impl OptimizerGrid {
    /// Parses `text` and checks every point against the optimizer registry (unknown optimizers
    /// and options, values out of range: one error before anything runs).
    pub fn parse(text: &str) -> Result<Self> {
        let g = grid::Grid::parse(text)?;
        let mut points = Vec::new();
        for mut p in g.points() {
            let canonical =
                crate::optim::canonical(&p.spec).with_context(|| format!("optimizer grid `{text}`"))?;
            p.spec = canonical.to_string();
            points.push(p);
        }
        Ok(Self { text: text.to_string(), label: g.family(), points })
    }
}

/// A cell to run: a problem, a setting, a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The problem.
    pub problem: String,
    /// Index of the optimizer grid.
    pub optimizer: usize,
    /// The canonical spec.
    pub spec: String,
    /// The swept options' values.
    pub swept: Vec<(String, String)>,
    /// The seed.
    pub seed: u64,
    /// The stage.
    pub stage: Stage,
}

impl Cell {
    /// The cell of grid point `point` of optimizer `optimizer` on `problem` with `seed`.
    fn new(problem: &str, optimizer: usize, point: &grid::GridPoint, seed: u64, stage: Stage) -> Self {
        let (spec, swept) = (point.spec.clone(), point.swept.clone());
        Self { problem: problem.to_string(), optimizer, spec, swept, seed, stage }
    }
}

/// A shard `k` of `n` (1-based): the cells whose index in the sweep's order is `k - 1` modulo
/// `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 1.
    pub k: usize,
    /// Shards in all.
    pub n: usize,
}

impl Shard {
    /// The whole sweep.
    pub const ALL: Shard = Shard { k: 1, n: 1 };

    /// Whether the cell at `index` belongs to this shard.
    pub fn owns(self, index: usize) -> bool {
        index % self.n == self.k - 1
    }

    /// Sub-shard `j` (from 0) of `jobs` of this shard: together the sub-shards own exactly this
    /// shard's cells.
    pub fn split(self, j: usize, jobs: usize) -> Shard {
        Shard { k: self.k + self.n * j, n: self.n * jobs }
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("shard `{s}`: expected K/N with 1 <= K <= N (shard K of N)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) =
            (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// A sweep: problems (built, data loaded), optimizer grids, seeds, tuning.
pub struct Sweep {
    /// The problems.
    pub problems: Vec<Box<dyn Problem>>,
    /// The optimizer grids.
    pub optimizers: Vec<OptimizerGrid>,
    /// Grid-search seeds `0..seeds`.
    pub seeds: u64,
    /// With tuning, the best settings are rerun over seeds `0..tune`.
    pub tune: Option<u64>,
    /// Also write each cell as a TensorBoard run here ([`board::write_cell`]).
    pub logdir: Option<PathBuf>,
}

impl Sweep {
    /// Checks the arguments and builds the problems (loading their data).
    pub fn new(
        problems: &[String],
        optimizers: &[String],
        seeds: u64,
        tune: Option<u64>,
        ctx: &Context,
    ) -> Result<Self> {
        if problems.is_empty() {
            bail!("no --problem given (see `taper list`)");
        }
        if optimizers.is_empty() {
            bail!("no --optimizer given (see `taper list`)");
        }
        if seeds == 0 {
            bail!("--seeds must be at least 1");
        }
        if tune == Some(0) {
            bail!("--tune must be at least 1 seed");
        }
        for (i, p) in problems.iter().enumerate() {
            if !problem::exists(p) {
                bail!("{}", problem::unknown(p));
            }
            if problems[..i].contains(p) {
                bail!("problem `{p}` given twice");
            }
        }
        let optimizers: Vec<OptimizerGrid> =
            optimizers.iter().map(|o| OptimizerGrid::parse(o)).collect::<Result<_>>()?;
        for (i, o) in optimizers.iter().enumerate() {
            if let Some(j) = optimizers[..i].iter().position(|p| p.label == o.label) {
                bail!(
                    "optimizers `{}` and `{}` share the label `{}`: sweep both in one grid, or fix another option to tell them apart",
                    optimizers[j].text,
                    o.text,
                    o.label
                );
            }
        }
        let problems = problems
            .iter()
            .map(|p| problem::build(p, ctx).with_context(|| format!("problem `{p}`")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { problems, optimizers, seeds, tune, logdir: None })
    }

    /// The definition written to `sweep.json`.
    pub fn def(&self) -> SweepDef {
        SweepDef {
            format: store::FORMAT,
            problems: self
                .problems
                .iter()
                .map(|p| ProblemDef {
                    name: p.name().to_string(),
                    description: p.describe(),
                    budget: p.budget(),
                    metric: p.metric(),
                })
                .collect(),
            optimizers: self.optimizers.iter().map(|o| o.text.clone()).collect(),
            seeds: self.seeds,
            tune: self.tune,
        }
    }

    /// The grid stage's cells, in the sweep's order (problem, optimizer, setting, seed).
    pub fn grid_cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        for p in &self.problems {
            for (oi, o) in self.optimizers.iter().enumerate() {
                for point in &o.points {
                    for seed in 0..self.seeds {
                        cells.push(Cell::new(p.name(), oi, point, seed, Stage::Grid));
                    }
                }
            }
        }
        cells
    }

    /// The final stage's cells (with tuning): each optimizer's best grid setting on each problem
    /// over seeds `0..tune`, from the grid results in `dir`, which must be complete.
    pub fn final_cells(&self, dir: &Path) -> Result<Vec<Cell>> {
        let Some(tune) = self.tune else { return Ok(Vec::new()) };
        let grid = self.grid_cells();
        let mut missing = 0;
        let mut results: BTreeMap<(String, String, u64), CellResult> = BTreeMap::new();
        for c in &grid {
            match store::read_cell(&store::cell_path(dir, &c.problem, &c.spec, c.seed))? {
                Some(r) => {
                    results.insert((c.problem.clone(), c.spec.clone(), c.seed), r);
                }
                None => missing += 1,
            }
        }
        if missing > 0 {
            bail!(
                "the grid stage is incomplete in {} ({missing} of {} cells missing): run every shard's grid stage (--stage grid) before --stage final",
                dir.display(),
                grid.len()
            );
        }
        let mut cells = Vec::new();
        for p in &self.problems {
            let goal = p.metric().goal;
            for (oi, o) in self.optimizers.iter().enumerate() {
                let scores = o.points.iter().map(|point| {
                    let finals: Vec<f64> = (0..self.seeds)
                        .map(|s| results[&(p.name().to_string(), point.spec.clone(), s)].final_metric)
                        .collect();
                    score(&finals)
                });
                let best = best_index(scores, goal);
                let Some(best) = best else { continue };
                let point = &o.points[best];
                for seed in 0..tune {
                    cells.push(Cell::new(p.name(), oi, point, seed, Stage::Final));
                }
            }
        }
        Ok(cells)
    }
}

/// The mean of a setting's final metrics over seeds; NaN when any seed diverged (a setting that
/// diverges on some seed is never the best).
pub fn score(finals: &[f64]) -> f64 {
    if finals.is_empty() || finals.iter().any(|x| !x.is_finite()) {
        return f64::NAN;
    }
    finals.iter().sum::<f64>() / finals.len() as f64
}

/// The index of the best finite score (the first among equals); `None` when none is finite.
pub fn best_index(scores: impl Iterator<Item = f64>, goal: Goal) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in scores.enumerate() {
        match best {
            _ if !s.is_finite() => {}
            Some((_, b)) if !goal.better(s, b) => {}
            _ => best = Some((i, s)),
        }
    }
    best.map(|(i, _)| i)
}

/// What a run of [`run`] did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Cells of this shard.
    pub cells: usize,
    /// Found finished and skipped.
    pub skipped: usize,
    /// Run here.
    pub ran: usize,
    /// Of those, diverged.
    pub diverged: usize,
    /// Seconds inside the problems' runs.
    pub run_seconds: f64,
    /// Seconds of the whole call (setup, checks, writing results).
    pub wall_seconds: f64,
}

/// Whether an error means the run diverged (a gradient became NaN or infinite).
pub fn is_divergence(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<crate::optim::Error>(), Some(crate::optim::Error::NonFiniteGradient { .. }))
            || matches!(
                c.downcast_ref::<crate::train::Error>(),
                Some(crate::train::Error::Optim(crate::optim::Error::NonFiniteGradient { .. }))
            )
    })
}

/// Runs one cell on its problem and builds its result (a diverged run is a result, not an error).
pub fn run_cell(problem: &dyn Problem, label: &str, grid: &str, cell: &Cell) -> Result<CellResult> {
    let t = Instant::now();
    let curve = match problem.run(&cell.spec, cell.seed) {
        Ok(c) => c,
        Err(e) if is_divergence(&e) => Curve::default(),
        Err(e) => return Err(e.context(format!("{} / {} / seed {}", cell.problem, cell.spec, cell.seed))),
    };
    let wall_seconds = t.elapsed().as_secs_f64();
    let metric = problem.metric();
    let last = curve.points.last();
    let final_metric = last.map_or(f64::NAN, |p| p.value);
    let status = if final_metric.is_finite() { Status::Ok } else { Status::Diverged };
    let hit = curve.points.iter().find(|p| metric.goal.reached(p.value, metric.target));
    Ok(CellResult {
        problem: cell.problem.clone(),
        grid: grid.to_string(),
        optimizer: label.to_string(),
        spec: cell.spec.clone(),
        swept: cell.swept.clone(),
        seed: cell.seed,
        stage: cell.stage,
        status,
        final_metric,
        steps: curve.steps,
        steps_to_target: hit.map(|p| p.step),
        seconds_to_target: hit.map(|p| p.seconds),
        train_seconds: last.map_or(0.0, |p| p.seconds),
        wall_seconds,
        curve: curve.points,
        machine: Machine::here(),
    })
}

/// Runs this shard's `cells` into `dir`, skipping those already there; `say` gets a line per cell.
pub fn run(
    sweep: &Sweep,
    cells: &[Cell],
    shard: Shard,
    dir: &Path,
    mut say: impl FnMut(&str),
) -> Result<Summary> {
    let t = Instant::now();
    store::claim(dir, &sweep.def())?;
    let mine: Vec<&Cell> = cells.iter().enumerate().filter(|(i, _)| shard.owns(*i)).map(|(_, c)| c).collect();
    let mut s = Summary { cells: mine.len(), ..Summary::default() };
    for (i, cell) in mine.iter().enumerate() {
        let path = store::cell_path(dir, &cell.problem, &cell.spec, cell.seed);
        if path.exists() {
            match store::read_cell(&path) {
                Ok(Some(_)) => {
                    s.skipped += 1;
                    continue;
                }
                Ok(None) => {}
                Err(e) => say(&format!("warning: {e:#}: running the cell again")),
            }
        }
        let problem = sweep
            .problems
            .iter()
            .find(|p| p.name() == cell.problem)
            .ok_or_else(|| anyhow::anyhow!("{}", problem::unknown(&cell.problem)))?;
        let o = &sweep.optimizers[cell.optimizer];
        let r = run_cell(problem.as_ref(), &o.label, &o.text, cell)?;
        store::write_atomic(&path, serde_json::to_string(&r)?.as_bytes())?;
        if let Some(dir) = &sweep.logdir {
            board::write_cell(dir, &r, &problem.metric().name)?;
        }
        s.ran += 1;
        s.run_seconds += r.wall_seconds;
        let metric = problem.metric();
        let outcome = match r.status {
            Status::Ok => format!("{} {:.6}", metric.name, r.final_metric),
            Status::Diverged => "diverged".to_string(),
        };
        let swept: Vec<String> = cell.swept.iter().map(|(k, v)| format!("{k}={v}")).collect();
        say(&format!(
            "[{shard} {}/{}] {} {} {} seed {}: {outcome} ({:.2} s)",
            i + 1,
            mine.len(),
            cell.problem,
            o.label,
            swept.join(","),
            cell.seed,
            r.wall_seconds
        ));
        if r.status == Status::Diverged {
            s.diverged += 1;
        }
    }
    s.wall_seconds = t.elapsed().as_secs_f64();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_cells_and_split_into_sub_shards() {
        let n = 3;
        for i in 0..20 {
            let owners: Vec<usize> = (1..=n).filter(|&k| Shard { k, n }.owns(i)).collect();
            assert_eq!(owners.len(), 1, "cell {i} has one shard");
            // The two jobs of shard 2/3 own exactly shard 2/3's cells.
            let s = Shard { k: 2, n };
            assert_eq!(s.owns(i), (0..2).any(|j| s.split(j, 2).owns(i)), "cell {i}");
            assert!((0..2).filter(|&j| s.split(j, 2).owns(i)).count() <= 1);
        }
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { k: 2, n: 3 }));
        for bad in ["3/2", "0/2", "1/0", "1", "a/b", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard { k: 2, n: 3 }.split(1, 2).to_string(), "5/6");
    }

    #[test]
    fn a_setting_that_diverged_on_any_seed_is_never_the_best() {
        assert!(score(&[0.2, f64::NAN]).is_nan() && score(&[]).is_nan());
        assert_eq!(score(&[0.2, 0.4]), 0.30000000000000004);
        let scores = [0.5, f64::NAN, 0.3, 0.3, f64::INFINITY];
        assert_eq!(best_index(scores.into_iter(), Goal::Minimize), Some(2), "the first of equals");
        assert_eq!(best_index(scores.into_iter(), Goal::Maximize), Some(0));
        assert_eq!(best_index([f64::NAN].into_iter(), Goal::Minimize), None);
        assert!(Goal::Minimize.reached(0.1, 0.1) && !Goal::Minimize.reached(f64::NAN, 1.0));
        assert!(Goal::Maximize.reached(0.95, 0.94) && !Goal::Maximize.reached(0.93, 0.94));
    }

    #[test]
    fn non_finite_gradient_errors_are_divergence_and_others_are_not() {
        let optim = || crate::optim::Error::NonFiniteGradient { param: "w".into() };
        assert!(is_divergence(&anyhow::Error::new(optim())));
        assert!(is_divergence(&anyhow::Error::new(crate::train::Error::Optim(optim())).context("cell")));
        assert!(!is_divergence(&anyhow::anyhow!("non-finite gradient, said in words only")));
        assert!(!is_divergence(&anyhow::Error::new(crate::optim::Error::InvalidArgument("x".into()))));
    }
}
