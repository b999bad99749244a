//! A sweep's results on disk: `DIR/sweep.json` (what the sweep is: problems with their budgets
//! and metrics, the optimizer grids, the seeds, the tuning) and one file per finished cell,
//! `DIR/cells/<problem>/<optimizer>-<hash of its spec>-s<seed>.json`, each written atomically (a
//! temporary file renamed into place), so a directory only ever holds whole cells: an
//! interrupted sweep resumes by skipping the files it finds, and shards on several machines
//! write disjoint files into one shared directory or into several merged later.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::problem::{finite_or_null, Metric, Point};

/// The version of the files' layout.
pub const FORMAT: u32 = 1;

/// What a sweep is, per problem: enough to tell whether two result directories belong to the
/// same sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemDef {
    /// The problem's name.
    pub name: String,
    /// Its one-line description.
    pub description: String,
    /// Its budget in words.
    pub budget: String,
    /// Its metric and target.
    pub metric: Metric,
}

/// The definition of a sweep, written to `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepDef {
    /// [`FORMAT`].
    pub format: u32,
    /// The problems.
    pub problems: Vec<ProblemDef>,
    /// The optimizer grids as given (`adam:lr=logspace(1e-4,1,7)`).
    pub optimizers: Vec<String>,
    /// Seeds of the grid search (`0..seeds`).
    pub seeds: u64,
    /// With tuning: the best setting of each optimizer is rerun over seeds `0..tune`.
    pub tune: Option<u64>,
}

impl SweepDef {
    /// The definition restricted to one problem (what must agree for results of that problem to
    /// be merged).
    pub fn for_problem(&self, name: &str) -> Option<SweepDef> {
        let p = self.problems.iter().find(|p| p.name == name)?;
        Some(SweepDef { problems: vec![p.clone()], ..self.clone() })
    }
}

/// Whether a run finished or diverged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The run finished with a finite metric.
    Ok,
    /// The metric or a gradient became NaN or infinite.
    Diverged,
}

/// The stage a cell was first run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The grid search.
    Grid,
    /// The best settings rerun over more seeds (tuning).
    Final,
}

/// Where a cell ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Host name.
    pub host: String,
    /// CPU model.
    pub cpu: String,
    /// Threads the run used.
    pub threads: usize,
    /// Taper's version.
    pub taper: String,
}

impl Machine {
    /// This machine (read once per process).
    pub fn here() -> Self {
        static HERE: std::sync::OnceLock<Machine> = std::sync::OnceLock::new();
        HERE.get_or_init(Self::read).clone()
    }

    fn read() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Self {
            host,
            cpu,
            threads: crate::tensor::parallel::threads(),
            taper: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// One finished cell: a problem, an optimizer setting, a seed, and what the run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// The problem.
    pub problem: String,
    /// The grid the setting came from, as given.
    pub grid: String,
    /// The optimizer's label: the grid without its swept options (`sgd:momentum=0.9`).
    pub optimizer: String,
    /// The setting, canonical (every option spelled out).
    pub spec: String,
    /// The swept options' values at this setting.
    pub swept: Vec<(String, String)>,
    /// The seed.
    pub seed: u64,
    /// The stage that first ran it.
    pub stage: Stage,
    /// Finished or diverged.
    pub status: Status,
    /// The metric at the end (`null` when diverged).
    #[serde(with = "finite_or_null")]
    pub final_metric: f64,
    /// Optimizer steps run.
    pub steps: u64,
    /// Steps until the metric first reached the target (`null`: never).
    pub steps_to_target: Option<u64>,
    /// Training seconds until then.
    pub seconds_to_target: Option<f64>,
    /// Training seconds of the run (evaluations excluded where the problem times them apart).
    pub train_seconds: f64,
    /// Wall seconds of the whole run, evaluations included.
    pub wall_seconds: f64,
    /// The metric's curve.
    pub curve: Vec<Point>,
    /// Where it ran.
    pub machine: Machine,
}

impl CellResult {
    /// Whether two results are the same computation's (everything but times and machine).
    pub fn same_outcome(&self, other: &CellResult) -> bool {
        let values = |c: &CellResult| -> Vec<(u64, u64)> {
            c.curve
                .iter()
                .map(|p| (p.step, if p.value.is_nan() { u64::MAX } else { p.value.to_bits() }))
                .collect()
        };
        let bits = |x: f64| if x.is_nan() { u64::MAX } else { x.to_bits() };
        (&self.problem, &self.spec, self.seed, self.status, self.steps, self.steps_to_target)
            == (&other.problem, &other.spec, other.seed, other.status, other.steps, other.steps_to_target)
            && bits(self.final_metric) == bits(other.final_metric)
            && values(self) == values(other)
    }
}

/// The identity of a cell: problem, canonical spec, seed.
pub type CellKey = (String, String, u64);

/// A 64-bit FNV-1a hash (stable across runs and machines, unlike std's hasher).
pub fn fnv64(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The file of a cell under `dir`.
pub fn cell_path(dir: &Path, problem: &str, spec: &str, seed: u64) -> PathBuf {
    let name: String =
        spec.split(':').next().unwrap_or("opt").chars().filter(char::is_ascii_alphanumeric).collect();
    dir.join("cells").join(problem).join(format!("{name}-{:016x}-s{seed}.json", fnv64(spec)))
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (unique to this process),
/// then a rename, so readers see the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Reads a cell file (`None` when absent; an error when unreadable or not a cell).
pub fn read_cell(path: &Path) -> Result<Option<CellResult>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_str(&text).map(Some).with_context(|| format!("{} is not a sweep cell", path.display()))
}

/// Writes `def` to `dir/sweep.json`, or checks that the one there is the same sweep.
pub fn claim(dir: &Path, def: &SweepDef) -> Result<()> {
    let path = dir.join("sweep.json");
    if let Some(old) = read_def(dir)? {
        if old != *def {
            bail!(
                "{} holds results of another sweep ({}), not this one ({}): use another --out, or the same problems, optimizers, seeds and tuning",
                dir.display(),
                summary(&old),
                summary(def)
            );
        }
        return Ok(());
    }
    write_atomic(&path, serde_json::to_string_pretty(def)?.as_bytes())
}

/// A sweep's definition in a few words, for error messages.
pub fn summary(def: &SweepDef) -> String {
    let problems: Vec<String> = def.problems.iter().map(|p| format!("{} ({})", p.name, p.budget)).collect();
    let tune = def.tune.map(|t| format!(", tuned over {t} seeds")).unwrap_or_default();
    format!("{}; {}; {} seeds{tune}", problems.join(", "), def.optimizers.join(" "), def.seeds)
}

/// Reads `dir/sweep.json` (`None` when absent).
pub fn read_def(dir: &Path) -> Result<Option<SweepDef>> {
    let path = dir.join("sweep.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let def: SweepDef = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a sweep definition", path.display()))?;
    if def.format != FORMAT {
        bail!("{}: format {} (this Taper reads {FORMAT})", path.display(), def.format);
    }
    Ok(Some(def))
}

/// Every cell file under `dir`, read, keyed by cell.
pub fn read_cells(dir: &Path) -> Result<BTreeMap<CellKey, (PathBuf, CellResult)>> {
    let mut out = BTreeMap::new();
    let root = dir.join("cells");
    let problems = match std::fs::read_dir(&root) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", root.display())),
    };
    for p in problems {
        let p = p?.path();
        if !p.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
            .with_context(|| format!("reading {}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| {
                f.extension().is_some_and(|x| x == "json")
                    && !f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        files.sort();
        for f in files {
            if let Some(cell) = read_cell(&f)? {
                if cell_path(dir, &cell.problem, &cell.spec, cell.seed) != f {
                    bail!(
                        "{}: holds the cell of {} / {} / seed {}, which belongs elsewhere",
                        f.display(),
                        cell.problem,
                        cell.spec,
                        cell.seed
                    );
                }
                out.insert((cell.problem.clone(), cell.spec.clone(), cell.seed), (f, cell));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_paths_are_stable_and_writes_atomic() {
        let dir = std::env::temp_dir().join(format!("taper-store-{}", std::process::id()));
        let p = cell_path(&dir, "airfoil", "adam:lr=0.01", 2);
        assert!(p.ends_with(format!("cells/airfoil/adam-{:016x}-s2.json", fnv64("adam:lr=0.01"))));
        assert_eq!(fnv64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64("a"), 0xaf63_dc4c_8601_ec8c);
        write_atomic(&p, b"{}").unwrap();
        write_atomic(&p, b"[1]").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "[1]");
        // No temporary file is left behind; a file that is not a cell is an error.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        assert!(read_cell(&p).unwrap_err().to_string().contains("not a sweep cell"));
        assert!(read_cell(&dir.join("absent.json")).unwrap().is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
