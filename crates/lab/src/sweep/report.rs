//! `taper report`: merges result directories and writes `REPORT.md` with SVG figures.
//!
//! Per problem: each optimizer's best setting (the best mean final metric over the grid's seeds;
//! a setting that diverged on any seed is never the best) with its curve over seeds (median line,
//! min–max band), the learning-rate sensitivity (the mean final metric at each learning rate, the
//! best over any other swept option; crosses where every setting diverged), and a table (best
//! setting, final metric mean ± std over all its seeds, steps and seconds to target). Across
//! problems: a performance profile (Dolan & Moré): for each optimizer, the fraction of problems
//! on which its median steps-to-target is within a factor τ of the best optimizer's.
//!
//! Directories merge by cell (problem, canonical spec, seed). A problem found in two directories
//! must have the same definition in both (budget, metric, grids, seeds, tuning); otherwise they
//! are different sweeps, and the report refuses to mix them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use super::problem::{Goal, Metric};
use super::store::{self, CellResult, Status, SweepDef};
use super::{best_index, score, OptimizerGrid};
use crate::plot::{self, ChartSpec, Series};

/// The merged results of one problem.
#[derive(Debug, Clone)]
pub struct ProblemResults {
    /// Its definition (one problem).
    pub def: SweepDef,
    /// Its cells by (spec, seed).
    pub cells: BTreeMap<(String, u64), CellResult>,
    /// The directories it came from.
    pub dirs: Vec<PathBuf>,
}

/// Everything the report shows, merged.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// Per problem, in the order first seen.
    pub problems: Vec<ProblemResults>,
    /// Cells found in more than one directory with different outcomes.
    pub conflicts: Vec<String>,
}

/// Reads and merges `dirs` (see the module's documentation).
pub fn merge(dirs: &[PathBuf]) -> Result<Merged> {
    let mut m = Merged::default();
    for dir in dirs {
        let def = store::read_def(dir)?.with_context(|| {
            format!("{} has no sweep.json: not a results directory of `taper sweep`", dir.display())
        })?;
        for p in &def.problems {
            let mine = def.for_problem(&p.name).context("problem vanished")?;
            match m.problems.iter_mut().find(|r| r.def.problems[0].name == p.name) {
                Some(r) if r.def != mine => bail!(
                    "{} and {} hold different sweeps of problem `{}` ({} vs {}): report them separately",
                    r.dirs[0].display(),
                    dir.display(),
                    p.name,
                    store::summary(&r.def),
                    store::summary(&mine)
                ),
                Some(r) => r.dirs.push(dir.clone()),
                None => m.problems.push(ProblemResults {
                    def: mine,
                    cells: BTreeMap::new(),
                    dirs: vec![dir.clone()],
                }),
            }
        }
        for (path, cell) in store::read_cells(dir)?.into_values() {
            let Some(r) = m.problems.iter_mut().find(|r| r.def.problems[0].name == cell.problem) else {
                bail!(
                    "{}: a cell of problem `{}`, which the sweep in {} does not have",
                    path.display(),
                    cell.problem,
                    dir.display()
                );
            };
            if !r.def.optimizers.contains(&cell.grid) {
                bail!(
                    "{}: a cell of optimizer grid `{}`, which the sweep in {} does not have",
                    path.display(),
                    cell.grid,
                    dir.display()
                );
            }
            let key = (cell.spec.clone(), cell.seed);
            match r.cells.get(&key) {
                Some(old) if !old.same_outcome(&cell) => m.conflicts.push(format!(
                    "{} / {} / seed {}: {} differs from an earlier directory's",
                    cell.problem,
                    cell.spec,
                    cell.seed,
                    path.display()
                )),
                Some(_) => {}
                None => {
                    r.cells.insert(key, cell);
                }
            }
        }
    }
    Ok(m)
}

/// One optimizer's summary on one problem.
#[derive(Debug, Clone)]
pub struct OptimizerSummary {
    /// Its label.
    pub label: String,
    /// The best setting (`None`: every setting diverged or none ran).
    pub best: Option<String>,
    /// Final metrics of the best setting over all its seeds (NaN: diverged).
    pub finals: Vec<f64>,
    /// Its steps to target per seed (`None`: not reached).
    pub steps_to_target: Vec<Option<u64>>,
    /// Its seconds to target per seed.
    pub seconds_to_target: Vec<Option<f64>>,
    /// Each setting: spec, swept values, grid-seed score, seeds run, seeds diverged.
    pub settings: Vec<Setting>,
    /// Grid cells expected and found.
    pub expected: usize,
    /// Grid cells found.
    pub found: usize,
}

/// One setting of a grid on one problem.
#[derive(Debug, Clone)]
pub struct Setting {
    /// Canonical spec.
    pub spec: String,
    /// Swept values.
    pub swept: Vec<(String, String)>,
    /// Mean final metric over the grid's seeds (NaN if any diverged or none ran).
    pub score: f64,
    /// Seeds run (all stages).
    pub seeds: usize,
    /// Of those, diverged.
    pub diverged: usize,
}

/// The median of finite-or-infinite values (NaN for none).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Mean and sample standard deviation of the finite values, and how many there were.
fn mean_std(v: &[f64]) -> (f64, f64, usize) {
    let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = f.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, 0);
    }
    let mean = f.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { f.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    (mean, var.sqrt(), n)
}

impl ProblemResults {
    /// The problem's name.
    pub fn name(&self) -> &str {
        &self.def.problems[0].name
    }

    /// The metric.
    pub fn metric(&self) -> &Metric {
        &self.def.problems[0].metric
    }

    /// Each optimizer grid's summary, in the sweep's order.
    pub fn summaries(&self) -> Result<Vec<OptimizerSummary>> {
        let goal = self.metric().goal;
        let mut out = Vec::new();
        for text in &self.def.optimizers {
            let (label, points) = match OptimizerGrid::parse(text) {
                Ok(g) => (g.label, g.points),
                // An optimizer this program does not know (registered by the program that ran the
                // sweep): the settings its cells hold, in the order of their specs.
                Err(_) => {
                    let mut points: Vec<super::grid::GridPoint> = Vec::new();
                    for c in self.cells.values().filter(|c| &c.grid == text) {
                        if !points.iter().any(|p| p.spec == c.spec) {
                            points.push(super::grid::GridPoint {
                                spec: c.spec.clone(),
                                swept: c.swept.clone(),
                            });
                        }
                    }
                    let label = self
                        .cells
                        .values()
                        .find(|c| &c.grid == text)
                        .map_or(text.clone(), |c| c.optimizer.clone());
                    (label, points)
                }
            };
            let mut settings = Vec::new();
            let mut found = 0;
            for p in &points {
                let grid_finals: Vec<f64> = (0..self.def.seeds)
                    .filter_map(|s| self.cells.get(&(p.spec.clone(), s)).map(|c| c.final_metric))
                    .collect();
                found += grid_finals.len();
                let all: Vec<&CellResult> = self
                    .cells
                    .range((p.spec.clone(), 0)..=(p.spec.clone(), u64::MAX))
                    .map(|(_, c)| c)
                    .collect();
                settings.push(Setting {
                    spec: p.spec.clone(),
                    swept: p.swept.clone(),
                    score: if grid_finals.len() as u64 == self.def.seeds {
                        score(&grid_finals)
                    } else {
                        f64::NAN
                    },
                    seeds: all.len(),
                    diverged: all.iter().filter(|c| c.status == Status::Diverged).count(),
                });
            }
            let best = best_index(settings.iter().map(|s| s.score), goal).map(|i| settings[i].spec.clone());
            let runs: Vec<&CellResult> = match &best {
                Some(b) => self.cells.range((b.clone(), 0)..=(b.clone(), u64::MAX)).map(|(_, c)| c).collect(),
                None => Vec::new(),
            };
            out.push(OptimizerSummary {
                label,
                best,
                finals: runs.iter().map(|c| c.final_metric).collect(),
                steps_to_target: runs.iter().map(|c| c.steps_to_target).collect(),
                seconds_to_target: runs.iter().map(|c| c.seconds_to_target).collect(),
                expected: points.len() * self.def.seeds as usize,
                found,
                settings,
            });
        }
        Ok(out)
    }

    /// The curves of `spec` over its seeds: `(step, median, min, max)` at each point index.
    pub fn band(&self, spec: &str) -> Vec<(f64, f64, f64, f64)> {
        let runs: Vec<&CellResult> =
            self.cells.range((spec.to_string(), 0)..=(spec.to_string(), u64::MAX)).map(|(_, c)| c).collect();
        let len = runs.iter().map(|c| c.curve.len()).max().unwrap_or(0);
        let mut out = Vec::new();
        for i in 0..len {
            let vals: Vec<f64> = runs
                .iter()
                .filter_map(|c| c.curve.get(i))
                .map(|p| p.value)
                .filter(|v| v.is_finite())
                .collect();
            let Some(step) = runs.iter().find_map(|c| c.curve.get(i)).map(|p| p.step) else { continue };
            if vals.is_empty() {
                continue;
            }
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out.push((step as f64, median(vals), lo, hi));
        }
        out
    }
}

/// The option a sensitivity figure puts on its x axis: `lr` when swept, else the first swept
/// numeric option.
fn sensitivity_key(settings: &[Setting]) -> Option<String> {
    let keys: Vec<&String> = settings.iter().flat_map(|s| s.swept.iter().map(|(k, _)| k)).collect();
    if keys.iter().any(|k| *k == "lr") {
        return Some("lr".into());
    }
    keys.into_iter()
        .find(|k| settings.iter().all(|s| s.swept.iter().any(|(sk, v)| sk == *k && v.parse::<f64>().is_ok())))
        .cloned()
}

/// `(x, best score at x)` and the x values where every setting diverged.
fn sensitivity(settings: &[Setting], key: &str, goal: Goal) -> (Vec<(f64, f64)>, Vec<f64>) {
    let mut by_x: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
    for s in settings {
        let Some(x) = s.swept.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse::<f64>().ok()) else {
            continue;
        };
        by_x.entry(x.to_bits()).or_insert((x, Vec::new())).1.push(s.score);
    }
    let mut pts: Vec<(f64, f64)> = Vec::new();
    let mut failed = Vec::new();
    for (x, scores) in by_x.into_values() {
        match best_index(scores.iter().copied(), goal) {
            Some(i) => pts.push((x, scores[i])),
            None => failed.push(x),
        }
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    (pts, failed)
}

/// Whether finite `values` are all positive and span more than a factor 30 (a log axis then
/// shows them better than a linear one).
fn wide_positive(values: impl Iterator<Item = f64>) -> bool {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite()) {
        if v <= 0.0 {
            return false;
        }
        lo = lo.min(v);
        hi = hi.max(v);
    }
    hi > 30.0 * lo
}

/// A number for the report.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// A CSV field, quoted when it holds a comma or a quote.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Median steps to target over seeds (`INFINITY` when the median seed did not reach it).
fn median_steps(v: &[Option<u64>]) -> f64 {
    median(v.iter().map(|s| s.map_or(f64::INFINITY, |s| s as f64)).collect())
}

/// Writes the CSV: one row per run.
pub fn write_csv(m: &Merged, path: &Path) -> Result<()> {
    let mut s = String::from(
        "problem,optimizer,spec,seed,stage,status,final_metric,steps,steps_to_target,seconds_to_target,train_seconds,wall_seconds,host\n",
    );
    for p in &m.problems {
        for c in p.cells.values() {
            let opt = |x: Option<String>| x.unwrap_or_default();
            writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&c.problem),
                csv_field(&c.optimizer),
                csv_field(&c.spec),
                c.seed,
                if c.stage == store::Stage::Grid { "grid" } else { "final" },
                if c.status == Status::Ok { "ok" } else { "diverged" },
                if c.final_metric.is_finite() { c.final_metric.to_string() } else { String::new() },
                c.steps,
                opt(c.steps_to_target.map(|v| v.to_string())),
                opt(c.seconds_to_target.map(|v| v.to_string())),
                c.train_seconds,
                c.wall_seconds,
                csv_field(&c.machine.host)
            )?;
        }
    }
    store::write_atomic(path, s.as_bytes())
}

/// The performance profile: per optimizer label, the ratio of its median steps-to-target to the
/// best on each problem (`INFINITY` where it never reached the target, or did not run on that
/// problem), one entry per problem.
pub fn profile_ratios(summaries: &[(String, Vec<OptimizerSummary>)]) -> BTreeMap<String, Vec<f64>> {
    let mut ratios: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (_, sums) in summaries {
        for o in sums {
            ratios.entry(o.label.clone()).or_default();
        }
    }
    for (_, sums) in summaries {
        let costs: BTreeMap<&str, f64> =
            sums.iter().map(|o| (o.label.as_str(), median_steps(&o.steps_to_target))).collect();
        let best = costs.values().copied().fold(f64::INFINITY, f64::min);
        for (label, r) in ratios.iter_mut() {
            let c = costs.get(label.as_str()).copied().unwrap_or(f64::INFINITY);
            r.push(if c.is_finite() && best.is_finite() {
                c.max(1.0) / best.max(1.0)
            } else {
                f64::INFINITY
            });
        }
    }
    ratios
}

/// The fraction of `ratios` at most `tau`.
pub fn rho(ratios: &[f64], tau: f64) -> f64 {
    if ratios.is_empty() {
        return 0.0;
    }
    ratios.iter().filter(|&&r| r <= tau).count() as f64 / ratios.len() as f64
}

/// Merges `dirs` and writes `out/REPORT.md` with its figures (and the CSV where asked); returns
/// the report's path.
pub fn write(dirs: &[PathBuf], out: &Path, csv: Option<&Path>) -> Result<PathBuf> {
    write_merged(&merge(dirs)?, dirs, out, csv)
}

/// [`write`] from results already merged from `dirs`.
pub fn write_merged(m: &Merged, dirs: &[PathBuf], out: &Path, csv: Option<&Path>) -> Result<PathBuf> {
    if m.problems.is_empty() {
        bail!(
            "no results in {}",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    plot::ensure_writable_dir(out)?;
    let mut md = String::from("# Optimizer sweep\n\n");
    let dirs_list: Vec<String> = dirs.iter().map(|d| format!("`{}`", d.display())).collect();
    let cells: usize = m.problems.iter().map(|p| p.cells.len()).sum();
    let compute: f64 = m.problems.iter().flat_map(|p| p.cells.values()).map(|c| c.wall_seconds).sum();
    let mut hosts: Vec<String> = m
        .problems
        .iter()
        .flat_map(|p| p.cells.values())
        .map(|c| format!("{} ({}, {} threads)", c.machine.host, c.machine.cpu, c.machine.threads))
        .collect();
    hosts.sort();
    hosts.dedup();
    writeln!(
        md,
        "Merged from {}: {cells} runs, {compute:.1} s of runs, on {}.\n",
        dirs_list.join(", "),
        hosts.join("; ")
    )?;
    writeln!(
        md,
        "Protocol: every setting of every grid over the grid's seeds; an optimizer's best setting has the best mean final metric over those seeds (a setting that diverged on any seed is never the best); its row shows every seed it ran (more with tuning).\n"
    )?;
    if !m.conflicts.is_empty() {
        writeln!(
            md,
            "**Warning**: {} cells differ between directories (the first one read is shown):\n",
            m.conflicts.len()
        )?;
        for c in &m.conflicts {
            writeln!(md, "- {c}")?;
        }
        md.push('\n');
    }
    let mut all: Vec<(String, Vec<OptimizerSummary>)> = Vec::new();
    for p in &m.problems {
        let sums = p.summaries()?;
        let pd = &p.def.problems[0];
        let metric = p.metric();
        let better = if metric.goal == Goal::Minimize { "lower" } else { "higher" };
        writeln!(
            md,
            "## {}\n\n{}. Budget: {}. Metric: {} ({better} is better), target {}; {} seeds{}.\n",
            pd.name,
            pd.description,
            pd.budget,
            metric.name,
            num(metric.target),
            p.def.seeds,
            p.def.tune.map(|t| format!(", best settings rerun over {t} seeds")).unwrap_or_default()
        )?;
        // Curves of the best settings.
        let mut curves = Vec::new();
        for o in &sums {
            if let Some(b) = &o.best {
                let band = p.band(b);
                curves.push(
                    Series::new(&o.label, band.iter().map(|&(x, med, _, _)| (x, med)).collect())
                        .with_band(band.iter().map(|&(x, _, lo, hi)| (x, lo, hi)).collect()),
                );
            }
        }
        let log_y = metric.goal == Goal::Minimize
            && wide_positive(curves.iter().flat_map(|s| s.band.iter().flat_map(|b| [b.1, b.2])));
        if !curves.is_empty() {
            let file = format!("{}_curves.svg", pd.name);
            let title = format!("{}: best settings (median, min-max over seeds)", pd.name);
            plot::line_chart(
                &out.join(&file),
                &ChartSpec { title: &title, x_label: "step", y_label: &metric.name, log_y, log_x: false },
                &curves,
            )?;
            writeln!(md, "![{} curves]({file})\n", pd.name)?;
        }
        // Sensitivity.
        let mut sens = Vec::new();
        let mut key_used = None;
        for o in &sums {
            let Some(key) = sensitivity_key(&o.settings) else { continue };
            let (pts, failed) = sensitivity(&o.settings, &key, metric.goal);
            if pts.len() + failed.len() < 2 {
                continue;
            }
            key_used.get_or_insert(key);
            let top = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let bottom = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let edge = if metric.goal == Goal::Minimize { top } else { bottom };
            let edge = if edge.is_finite() { edge } else { 1.0 };
            sens.push(
                Series::new(&o.label, pts)
                    .with_markers()
                    .with_crosses(failed.iter().map(|&x| (x, edge)).collect()),
            );
        }
        if let Some(key) = key_used {
            let file = format!("{}_sensitivity.svg", pd.name);
            let title = format!("{}: final {} against {key} (crosses: diverged)", pd.name, metric.name);
            let y = format!("mean final {}", metric.name);
            let log_y = metric.goal == Goal::Minimize
                && wide_positive(sens.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
            plot::line_chart(
                &out.join(&file),
                &ChartSpec { title: &title, x_label: &key, y_label: &y, log_y, log_x: true },
                &sens,
            )?;
            writeln!(md, "![{} sensitivity]({file})\n", pd.name)?;
        }
        writeln!(md, "| optimizer | best setting | final {} (mean ± std) | steps to target (median) | seconds to target (median) | settings diverged |", metric.name)?;
        writeln!(md, "|---|---|---:|---:|---:|---:|")?;
        for o in &sums {
            let (mean, std, n) = mean_std(&o.finals);
            let div = o.settings.iter().filter(|s| s.diverged > 0).count();
            let reached = o.steps_to_target.iter().filter(|s| s.is_some()).count();
            let steps = median_steps(&o.steps_to_target);
            let secs = median(o.seconds_to_target.iter().map(|s| s.unwrap_or(f64::INFINITY)).collect());
            let (steps, secs) = if steps.is_finite() {
                (format!("{steps:.0} ({reached}/{} seeds)", o.steps_to_target.len()), format!("{secs:.3}"))
            } else {
                (format!("not reached ({reached}/{} seeds)", o.steps_to_target.len()), "–".into())
            };
            let best = match o.best.as_deref().and_then(|b| o.settings.iter().find(|s| s.spec == b)) {
                Some(s) if !s.swept.is_empty() => {
                    s.swept.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
                }
                Some(s) => format!("`{}`", s.spec),
                None => "none (every setting diverged or is missing)".to_string(),
            };
            let mut row = format!("| {} | {best} | {} ± {} ({n} seeds", o.label, num(mean), num(std));
            if n < o.finals.len() {
                row.push_str(&format!(", {} diverged", o.finals.len() - n));
            }
            writeln!(md, "{row}) | {steps} | {secs} | {div} of {} |", o.settings.len())?;
            if o.found < o.expected {
                writeln!(
                    md,
                    "\n*{}: {} of {} grid runs found (incomplete sweep).*\n",
                    o.label, o.found, o.expected
                )?;
            }
        }
        md.push_str("\n<details><summary>Every setting</summary>\n\n| optimizer | setting | mean final over grid seeds | seeds run | diverged |\n|---|---|---:|---:|---:|\n");
        for o in &sums {
            for s in &o.settings {
                let swept: Vec<String> = s.swept.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let what = if swept.is_empty() { s.spec.clone() } else { swept.join(", ") };
                writeln!(md, "| {} | {what} | {} | {} | {} |", o.label, num(s.score), s.seeds, s.diverged)?;
            }
        }
        md.push_str("\n</details>\n\n");
        all.push((pd.name.clone(), sums));
    }
    // Performance profile.
    let ratios = profile_ratios(&all);
    let finite_max = ratios.values().flatten().copied().filter(|r| r.is_finite()).fold(1.0, f64::max);
    let tau_max = (finite_max * 1.5).max(4.0);
    writeln!(md, "## Performance profile\n\nFor each optimizer, the fraction of the {} problem(s) on which its best setting's median steps to target is within a factor τ of the fastest optimizer's (never reaching the target counts as infinitely slow).\n", all.len())?;
    let taus = [1.0, 1.5, 2.0, 4.0, 10.0];
    writeln!(
        md,
        "| optimizer | {} |",
        taus.iter().map(|t| format!("τ = {t}")).collect::<Vec<_>>().join(" | ")
    )?;
    writeln!(md, "|---|{}", "---:|".repeat(taus.len()))?;
    let mut profile = Vec::new();
    for (label, r) in &ratios {
        writeln!(
            md,
            "| {label} | {} |",
            taus.iter().map(|&t| format!("{:.2}", rho(r, t))).collect::<Vec<_>>().join(" | ")
        )?;
        let steps = 200;
        let pts = (0..=steps).map(|i| {
            let tau = tau_max.powf(i as f64 / steps as f64);
            (tau, rho(r, tau))
        });
        profile.push(Series::new(label, pts.collect()));
    }
    plot::line_chart(
        &out.join("profile.svg"),
        &ChartSpec {
            title: "performance profile (steps to target)",
            x_label: "τ",
            y_label: "fraction of problems",
            log_y: false,
            log_x: true,
        },
        &profile,
    )?;
    md.push_str("\n![performance profile](profile.svg)\n");
    let path = out.join("REPORT.md");
    store::write_atomic(&path, md.as_bytes())?;
    if let Some(csv) = csv {
        write_csv(m, csv)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_profiles_and_fields() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
        assert_eq!(median_steps(&[Some(10), None, Some(30)]), 30.0);
        assert!(median_steps(&[Some(10), None, None]).is_infinite());
        let (m, s, n) = mean_std(&[1.0, 3.0, f64::NAN]);
        assert_eq!((m, s, n), (2.0, 2f64.sqrt(), 1 + 1));
        assert_eq!(rho(&[1.0, 2.0, f64::INFINITY, 1.5], 1.5), 0.5);
        assert_eq!(csv_field("adam:lr=0.1,eps=1e-8"), "\"adam:lr=0.1,eps=1e-8\"");
        assert_eq!(csv_field("sgd"), "sgd");
        // Two problems; `b` ran only on the first, where it took twice `a`'s steps.
        let summary = |label: &str, steps: Vec<Option<u64>>| OptimizerSummary {
            label: label.into(),
            best: Some("x".into()),
            finals: vec![0.0; steps.len()],
            seconds_to_target: vec![None; steps.len()],
            steps_to_target: steps,
            settings: Vec::new(),
            expected: 0,
            found: 0,
        };
        let r = profile_ratios(&[
            ("p".into(), vec![summary("a", vec![Some(10), Some(12), None]), summary("b", vec![Some(24)])]),
            ("q".into(), vec![summary("a", vec![None, None])]),
        ]);
        assert_eq!(r["a"], [1.0, f64::INFINITY]);
        assert_eq!(r["b"], [2.0, f64::INFINITY]);
        assert_eq!((rho(&r["a"], 1.0), rho(&r["b"], 1.5), rho(&r["b"], 2.0)), (0.5, 0.0, 0.5));
        assert!(wide_positive([0.01, 1.0, f64::NAN].into_iter()) && !wide_positive([0.2, 0.9].into_iter()));
        assert!(!wide_positive([-1.0, 100.0].into_iter()) && !wide_positive(std::iter::empty()));
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(num(0.25), "0.2500");
        assert_eq!(num(1e-6), "1.000e-6");
    }
}
