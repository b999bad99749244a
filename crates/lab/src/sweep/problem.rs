//! Test problems for sweeps: one trait, a registry by name.
//!
//! A [`Problem`] owns its data, model, budget, metric and target; [`Problem::run`] trains one
//! optimizer spec from one seed and returns the metric's curve. Constructing a problem loads its
//! data (once per process: a sweep builds each problem once and runs all of its cells on it).
//!
//! Taper's problems are listed in [`PROBLEMS`], one line each; a user adds their own with
//! [`register`] before calling [`crate::sweep::cli::main`] from their own binary (see
//! `docs/SWEEPS.md` and `examples/custom_problem.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::{bail, Result};

use crate::Device;

/// Whether smaller or larger values of a metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Smaller is better (a loss).
    Minimize,
    /// Larger is better (an accuracy).
    Maximize,
}

impl Goal {
    /// Whether `a` is strictly better than `b` (a non-finite value is never better).
    pub fn better(self, a: f64, b: f64) -> bool {
        if !a.is_finite() {
            return false;
        }
        if !b.is_finite() {
            return true;
        }
        match self {
            Goal::Minimize => a < b,
            Goal::Maximize => a > b,
        }
    }

    /// Whether `value` has reached `target`.
    pub fn reached(self, value: f64, target: f64) -> bool {
        value.is_finite()
            && match self {
                Goal::Minimize => value <= target,
                Goal::Maximize => value >= target,
            }
    }
}

/// What a problem measures.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metric {
    /// Short name (`loss`, `heldout_accuracy`, `val_loss`).
    pub name: String,
    /// Smaller or larger is better.
    pub goal: Goal,
    /// The value to reach for time-to-target.
    pub target: f64,
}

/// Everything a problem needs from the command line: the device and where its data lives.
#[derive(Debug, Clone)]
pub struct Context {
    /// The device cells train on.
    pub device: Device,
    /// The data directory (`--data-dir`, else `TAPER_DATA_DIR`, else the cache).
    pub data_dir: PathBuf,
    /// Never download missing data.
    pub offline: bool,
}

/// One point of a curve: after `step` optimizer steps, `seconds` into the run, the metric was
/// `value`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    /// Optimizer steps done.
    pub step: u64,
    /// The metric (NaN or infinite once a run has diverged; stored as `null`).
    #[serde(with = "finite_or_null")]
    pub value: f64,
    /// Seconds of training so far (evaluations excluded where the problem can tell them apart).
    pub seconds: f64,
}

/// What one run produced: its curve and its step count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Curve {
    /// The metric over the run, the last point being the final metric.
    pub points: Vec<Point>,
    /// Optimizer steps run.
    pub steps: u64,
}

/// Builds a curve as a run goes: [`Recorder::point`] stamps each value with the time since the
/// recorder was made, less the time spent inside evaluations measured with
/// [`Recorder::evaluate`].
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    paused: f64,
    curve: Curve,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Self {
        Self { start: Instant::now(), paused: 0.0, curve: Curve::default() }
    }

    /// Training seconds so far.
    pub fn seconds(&self) -> f64 {
        self.start.elapsed().as_secs_f64() - self.paused
    }

    /// Records `value` after `step` steps.
    pub fn point(&mut self, step: u64, value: f64) {
        let seconds = self.seconds();
        self.curve.points.push(Point { step, value, seconds });
        self.curve.steps = self.curve.steps.max(step);
    }

    /// Runs an evaluation without counting its time as training time.
    pub fn evaluate<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        self.paused += t.elapsed().as_secs_f64();
        r
    }

    /// Whether the last value recorded is not finite (the run has diverged).
    pub fn diverged(&self) -> bool {
        self.curve.points.last().is_some_and(|p| !p.value.is_finite())
    }

    /// The curve so far.
    pub fn finish(self) -> Curve {
        self.curve
    }
}

/// How `taper bench` runs a problem ([`Problem::run_setup`]): another length, a held-out
/// variant, and an early stop at the target.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Setup {
    /// Optimizer steps to run; `None`: the problem's own budget ([`Problem::steps`]). A schedule
    /// that depends on the run's length (a cosine decay) stretches to it.
    pub steps: Option<u64>,
    /// `0`: the problem itself; `i >= 1`: the held-out variant `i` of [`Problem::variants`].
    pub variant: usize,
    /// End the run at the first curve point whose metric reaches this value (AlgoPerf ends a run
    /// at its target).
    pub stop_at: Option<f64>,
}

impl Setup {
    /// The run's length: `steps`, else `default`.
    pub fn steps_or(&self, default: u64) -> u64 {
        self.steps.unwrap_or(default)
    }

    /// Whether a run under this setup is over after recording `value`: the value is not finite
    /// (diverged) or it reaches `stop_at` for `goal`.
    pub fn stops(&self, goal: Goal, value: f64) -> bool {
        !value.is_finite() || self.stop_at.is_some_and(|t| goal.reached(value, t))
    }

    /// Fails unless `variant` is one of `count` held-out variants (or `0`).
    pub fn check_variant(&self, problem: &str, count: usize) -> Result<()> {
        if self.variant > count {
            bail!("problem `{problem}` has {count} held-out variant(s); variant {} asked for", self.variant);
        }
        Ok(())
    }
}

/// A test problem (see the module's documentation).
pub trait Problem: Send + Sync {
    /// The registry name (`airfoil`).
    fn name(&self) -> &str;
    /// One line: the data, the model, the budget.
    fn describe(&self) -> String;
    /// What is measured, which way is better, and the target.
    fn metric(&self) -> Metric;
    /// The budget in words (`2 epochs of batch 10`), part of the sweep's identity: results made
    /// with another budget are another sweep.
    fn budget(&self) -> String;
    /// Trains the optimizer `spec` from `seed` and returns the metric's curve. A run that
    /// diverges either returns a curve whose last value is not finite or fails with a
    /// non-finite-gradient error; the harness records both as diverged.
    fn run(&self, spec: &str, seed: u64) -> Result<Curve>;

    /// The budget in optimizer steps of the problem (`variant` 0) or of a held-out variant, for
    /// `taper bench`, which scales it; `None` (the default) for a problem that runs one length
    /// only.
    fn steps(&self, _variant: usize) -> Option<u64> {
        None
    }

    /// The held-out variants, each in a few words (`hidden width 512`): the same task with
    /// another width, depth, batch size or data order, which `taper bench` draws from its seed.
    /// None by default.
    fn variants(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs as [`Problem::run`] does under `setup` (another length, a held-out variant, an early
    /// stop). The default runs [`Problem::run`] for the standard setup and refuses any other;
    /// a problem that [`Problem::steps`] or [`Problem::variants`] describe implements it.
    fn run_setup(&self, spec: &str, seed: u64, setup: &Setup) -> Result<Curve> {
        if *setup == Setup::default() {
            return self.run(spec, seed);
        }
        bail!(
            "problem `{}` runs its own budget only: implement Problem::steps, Problem::variants and Problem::run_setup to benchmark it",
            self.name()
        )
    }
}

/// Makes a problem in a context (loading its data).
pub type Constructor = fn(&Context) -> Result<Box<dyn Problem>>;

/// Taper's problems: a name, a one-line summary, a constructor.
pub const PROBLEMS: &[(&str, &str, Constructor)] = &[
    ("quadratic", "d2l's 0.1·x1² + 2·x2² from (-5, -2), 20 full steps", super::problems::quadratic::new),
    ("rosenbrock", "Rosenbrock's function from (-1.2, 1), 500 full steps", super::problems::rosenbrock::new),
    (
        "linreg",
        "the documents' linear regression, 100 points, 200 full-batch steps",
        super::problems::linreg::new,
    ),
    ("airfoil", "d2l's airfoil self-noise linear model, batch 10, 2 epochs", super::problems::airfoil::new),
    ("mnist_mlp", "MLP 784-256-10 on 8,000 MNIST images, batch 64, 3 epochs", super::problems::mnist::mlp),
    (
        "mnist_convnet",
        "the documents' ConvNet on 8,000 MNIST images, batch 64, 1 epoch",
        super::problems::mnist::convnet,
    ),
    (
        "char_gpt",
        "character-level GPT 4x4x128 on Shakespeare, 300 iterations",
        super::problems::char_gpt::new,
    ),
];

/// A problem registered at run time.
type Registered = (String, Arc<dyn Fn(&Context) -> Result<Box<dyn Problem>> + Send + Sync>);

static REGISTERED: RwLock<Vec<Registered>> = RwLock::new(Vec::new());

/// Registers a problem under `name` (a user's own, for their own binary; see the module's
/// documentation). A name already taken is an error.
pub fn register(
    name: &str,
    summary: &str,
    ctor: impl Fn(&Context) -> Result<Box<dyn Problem>> + Send + Sync + 'static,
) -> Result<()> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("problem name `{name}`: use letters, digits and `_`");
    }
    if names().iter().any(|(n, _)| n == name) {
        bail!("cannot register problem `{name}`: the name is taken");
    }
    let mut table = REGISTERED.write().map_err(|_| anyhow::anyhow!("problem registry poisoned"))?;
    table.push((format!("{name}\t{summary}"), Arc::new(ctor)));
    Ok(())
}

/// Every problem's name and summary: Taper's, then those registered.
pub fn names() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        PROBLEMS.iter().map(|(n, s, _)| (n.to_string(), s.to_string())).collect();
    if let Ok(table) = REGISTERED.read() {
        for (key, _) in table.iter() {
            let (n, s) = key.split_once('\t').unwrap_or((key, ""));
            out.push((n.to_string(), s.to_string()));
        }
    }
    out
}

/// Whether `name` is a known problem.
pub fn exists(name: &str) -> bool {
    names().iter().any(|(n, _)| n == name)
}

/// Builds the problem `name` in `ctx` (loading its data).
pub fn build(name: &str, ctx: &Context) -> Result<Box<dyn Problem>> {
    if let Some((_, _, ctor)) = PROBLEMS.iter().find(|(n, _, _)| *n == name) {
        return ctor(ctx);
    }
    let ctor = REGISTERED.read().ok().and_then(|table| {
        table.iter().find(|(key, _)| key.split('\t').next() == Some(name)).map(|(_, c)| c.clone())
    });
    match ctor {
        Some(c) => c(ctx),
        None => bail!("{}", unknown(name)),
    }
}

/// The error text for an unknown problem.
pub fn unknown(name: &str) -> String {
    let known: Vec<String> = names().into_iter().map(|(n, _)| n).collect();
    format!("unknown problem `{name}`: known problems are {}", known.join(", "))
}

/// Problems' metrics by name, for reports that read results without building problems.
pub type Metrics = BTreeMap<String, Metric>;

/// (De)serializes an f64 that may be NaN or infinite as a JSON number or `null`.
pub(crate) mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}
