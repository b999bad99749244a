//! Taper's sweep problems, one file each (registered in [`super::problem::PROBLEMS`]), and the
//! loops they share: a 2-D function minimized from a start point, and a [`Task`] trained by
//! [`train`] with its curve timed.

pub mod airfoil;
pub mod char_gpt;
pub mod linreg;
pub mod mnist;
pub mod quadratic;
pub mod rosenbrock;

use anyhow::Result;

use super::problem::{Curve, Goal, Metric, Problem, Recorder, Setup};
use crate::autograd::{ParamStore, Tape, Var};
use crate::experiments::trace2d::Function;
use crate::train::{train, Dataset, History, Task, TrainConfig};
use crate::{DType, Device, Tensor};

/// A 2-D function minimized from a start point with full steps (`quadratic`, `rosenbrock`):
/// deterministic, so every seed gives the same curve. Its held-out variants start elsewhere.
pub(crate) struct TwoD {
    pub name: &'static str,
    pub function: Function,
    pub start: (f64, f64),
    /// The held-out variants' start points.
    pub variants: Vec<(f64, f64)>,
    pub steps: usize,
    /// The value of `f` to reach.
    pub target: f64,
    pub device: Device,
}

impl Problem for TwoD {
    fn name(&self) -> &str {
        self.name
    }
    fn describe(&self) -> String {
        format!("f(x) = {} from {:?}, {} full steps, f64", self.function, self.start, self.steps)
    }
    fn metric(&self) -> Metric {
        Metric { name: "f".into(), goal: Goal::Minimize, target: self.target }
    }
    fn budget(&self) -> String {
        format!("{} steps", self.steps)
    }
    fn run(&self, spec: &str, seed: u64) -> anyhow::Result<Curve> {
        self.run_setup(spec, seed, &Setup::default())
    }
    fn steps(&self, _variant: usize) -> Option<u64> {
        Some(self.steps as u64)
    }
    fn variants(&self) -> Vec<String> {
        self.variants.iter().map(|s| format!("start {s:?}")).collect()
    }
    fn run_setup(&self, spec: &str, _seed: u64, setup: &Setup) -> anyhow::Result<Curve> {
        setup.check_variant(self.name, self.variants.len())?;
        let start = if setup.variant == 0 { self.start } else { self.variants[setup.variant - 1] };
        let steps = setup.steps_or(self.steps as u64) as usize;
        two_d(self.function, start, steps, spec, setup, &self.device)
    }
}

/// Minimizes `f` from `start` with `steps` full steps of `spec` (through the optimizer's
/// closure, so L-BFGS works too) in f64 on `device`; the curve is `f` at every step, read at
/// the evaluation point (Schedule-Free's average), as `trace2d` does. Stops at the first
/// non-finite value, or where `setup` says.
pub(crate) fn two_d(
    f: Function,
    start: (f64, f64),
    steps: usize,
    spec: &str,
    setup: &Setup,
    device: &Device,
) -> Result<Curve> {
    let mut store = ParamStore::new();
    // A 1×2 matrix, so that matrix-only optimizers (Muon) run too.
    let init = Tensor::new(&[[start.0, start.1]], &Device::Cpu)?.to_dtype(DType::F64)?.to_device(device)?;
    let x = store.insert("x", init)?;
    let mut opt = crate::optim::from_spec(spec, store.trainable())?;
    let mut rec = Recorder::new();
    rec.point(0, f.value(start.0, start.1));
    for step in 1..=steps as u64 {
        let stepped = opt.step_closure(&mut || {
            let tape = Tape::new();
            let v = f.eval(&tape.param(&x).reshape(2)?)?;
            Ok((v.to_scalar_f64()?, v.backward()?))
        });
        match stepped {
            Ok(_) => {}
            Err(crate::optim::Error::NonFiniteGradient { .. }) => {
                rec.point(step, f64::NAN);
                break;
            }
            Err(e) => return Err(e.into()),
        }
        let value = rec.evaluate(|| -> Result<f64> {
            opt.set_train_mode(false)?;
            let v = x.value().flatten_all()?.to_vec1::<f64>()?;
            opt.set_train_mode(true)?;
            Ok(f.value(v[0], v[1]))
        })?;
        rec.point(step, value);
        if setup.stops(Goal::Minimize, value) {
            break;
        }
    }
    Ok(rec.finish())
}

/// A task whose curve points ([`Task::record`]) are timed: the evaluation's time is not counted
/// as training time.
struct Timed<T: Task> {
    task: T,
    rec: Recorder,
    /// Training seconds at each recorded point.
    seconds: Vec<f64>,
    /// When to stop, and which way is better.
    setup: Setup,
    goal: Goal,
}

impl<T: Task> Task for Timed<T> {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> crate::autograd::Result<Var> {
        self.task.loss(tape, batch)
    }

    fn record(&mut self) -> crate::train::Result<Option<f64>> {
        let task = &mut self.task;
        let v = self.rec.evaluate(|| task.record())?;
        self.seconds.push(self.rec.seconds());
        Ok(v)
    }

    fn should_stop(&mut self, history: &History) -> bool {
        history.records.last().is_some_and(|r| self.setup.stops(self.goal, r.value))
    }
}

/// The optimizer `spec` names over every trainable parameter of `store`, or, for an optimizer
/// that updates matrices only (Muon), over the weight matrices `hidden` picks with AdamW
/// (`lr=0.001`, PyTorch's other defaults) over the rest, as the Muon recipe prescribes.
pub(crate) fn optimizer_for(
    spec: &str,
    store: &ParamStore,
    hidden: impl Fn(&crate::autograd::Param) -> bool,
) -> Result<Box<dyn crate::optim::Optimizer>> {
    if crate::train::steps::updates_matrices_only(spec)? {
        Ok(crate::train::steps::split_hidden(spec, "adamw:lr=0.001", &store.trainable(), hidden)?)
    } else {
        Ok(crate::optim::from_spec(spec, store.trainable())?)
    }
}

/// Trains `task` as [`train`] does and returns its curve: one point per recorded value (the task
/// must record a value at every point: `record_every > 0` and [`Task::record`] returning
/// `Some`), each with its step count and training seconds. A step refused for a non-finite
/// gradient ends the curve with a non-finite point. Under `setup`, the run lasts `setup.steps`
/// steps (`cfg.epochs` is raised to hold them; the last step is always a curve point) and stops
/// at the first point that reaches `setup.stop_at` for `goal`.
pub(crate) fn train_curve<T: Task>(
    task: T,
    store: &ParamStore,
    mut opt: Box<dyn crate::optim::Optimizer>,
    data: &Dataset,
    mut cfg: TrainConfig,
    setup: &Setup,
    goal: Goal,
) -> Result<Curve> {
    if let Some(steps) = setup.steps {
        let per_epoch = cfg.loader.batches(data.len()).max(1) as u64;
        cfg.epochs = steps.div_ceil(per_epoch) as usize;
        cfg.max_steps = Some(steps);
    }
    let cfg = &cfg;
    let mut timed = Timed { task, rec: Recorder::new(), seconds: Vec::new(), setup: *setup, goal };
    let history = match train(&mut timed, store, opt.as_mut(), data, cfg) {
        Ok(h) => h,
        Err(crate::train::Error::Optim(crate::optim::Error::NonFiniteGradient { .. })) => {
            let mut curve = points(&History::default(), &timed.seconds, data.len(), cfg);
            let steps = curve.steps + 1;
            curve.points.push(super::problem::Point {
                step: steps,
                value: f64::NAN,
                seconds: timed.rec.seconds(),
            });
            curve.steps = steps;
            return Ok(curve);
        }
        Err(e) => return Err(e.into()),
    };
    if history.records.len() != timed.seconds.len() {
        anyhow::bail!(
            "the task recorded {} values for {} curve points: it must return a value at every point",
            timed.seconds.len(),
            history.records.len()
        );
    }
    let mut curve = points(&history, &timed.seconds, data.len(), cfg);
    curve.steps = history.steps;
    // A step limit inside a recording interval: the run's last step is a point too.
    let last = curve.points.last().map(|p| (p.step, p.value));
    if last.is_some_and(|(step, v)| step < history.steps && !setup.stops(goal, v)) {
        if let Some(value) = timed.record()? {
            let seconds = timed.seconds.last().copied().unwrap_or(0.0);
            curve.points.push(super::problem::Point { step: history.steps, value, seconds });
        }
    }
    Ok(curve)
}

/// The curve of a history: each record's epoch turned into optimizer steps.
fn points(history: &History, seconds: &[f64], n: usize, cfg: &TrainConfig) -> Curve {
    let per_epoch = cfg.loader.batches(n) as u64;
    let batch = cfg.loader.batch_size.max(1);
    let mut curve = Curve::default();
    for (r, &s) in history.records.iter().zip(seconds) {
        let examples = (r.epoch * n as f64).round() as usize;
        let (whole, rest) = (examples / n.max(1), examples % n.max(1));
        let step = whole as u64 * per_epoch + rest.div_ceil(batch) as u64;
        curve.points.push(super::problem::Point { step, value: r.value, seconds: s });
        curve.steps = curve.steps.max(step);
    }
    curve
}

#[cfg(test)]
mod tests {
    use crate::sweep::problem::{build, Context, Setup};

    #[test]
    fn the_problems_without_data_descend_over_their_budgets() {
        let ctx = Context { device: crate::Device::Cpu, data_dir: ".".into(), offline: true };
        for (name, spec, points) in [
            ("quadratic", "sgd:lr=0.4", 21),
            ("rosenbrock", "adam:lr=0.01", 501),
            ("linreg", "sgd:lr=0.1", 201),
        ] {
            let p = build(name, &ctx).unwrap();
            let c = p.run(spec, 0).unwrap();
            assert_eq!((p.name(), c.points.len(), c.steps), (name, points, points as u64 - 1));
            let (first, last) = (c.points[0].value, c.points[points - 1].value);
            assert!(last < 0.2 * first, "{name}: {first} -> {last}");
            assert!(c.points.windows(2).all(|w| w[0].step + 1 == w[1].step && w[0].seconds <= w[1].seconds));
        }

        // after 20 steps (the book's trace): f = 0.1·x1² + 2·x2².
        let c = build("quadratic", &ctx).unwrap().run("sgd:lr=0.4", 0).unwrap();
        let want = 0.1 * 0.943467f64.powi(2) + 2.0 * 0.000073f64.powi(2);
        assert!((c.points[20].value - want).abs() < 1e-6, "{} vs {want}", c.points[20].value);
    }

    #[test]
    fn setups_change_the_length_and_the_variant_and_stop_at_the_target() {
        let ctx = Context { device: crate::Device::Cpu, data_dir: ".".into(), offline: true };
        for (name, spec, steps) in [("rosenbrock", "adam:lr=0.01", 500), ("linreg", "sgd:lr=0.1", 200)] {
            let p = build(name, &ctx).unwrap();
            assert_eq!((p.steps(0), p.variants().len()), (Some(steps), 2), "{name}");
            let base = p.run(spec, 0).unwrap();
            assert_eq!(p.run_setup(spec, 0, &Setup::default()).unwrap().points.len(), base.points.len());
            // Shorter: the same curve, cut.
            let short = p.run_setup(spec, 0, &Setup { steps: Some(50), ..Setup::default() }).unwrap();
            assert_eq!(short.steps, 50, "{name}");
            let values = |c: &crate::sweep::Curve| c.points.iter().map(|p| p.value).collect::<Vec<_>>();
            assert_eq!(values(&short), values(&base)[..51], "{name}");
            // Stopped at the first point that reaches the target.
            let target = base.points[120].value;
            let first = base.points.iter().position(|p| p.value <= target).unwrap();
            let stopped = p.run_setup(spec, 0, &Setup { stop_at: Some(target), ..Setup::default() }).unwrap();
            assert_eq!(stopped.points.len(), first + 1, "{name}");
            assert_eq!(stopped.steps, base.points[first].step);
            // Each held-out variant is another problem; there are two.
            for v in 1..=2 {
                let c = p.run_setup(spec, 0, &Setup { variant: v, ..Setup::default() }).unwrap();
                assert_eq!(c.steps, steps);
                assert_ne!(c.points[0].value, base.points[0].value, "{name} variant {v}");
            }
            let e = p.run_setup(spec, 0, &Setup { variant: 3, ..Setup::default() }).unwrap_err();
            assert!(e.to_string().contains("2 held-out variant(s)"), "{e}");
        }
        // Muon, which updates matrices only, runs on linreg's scalars through AdamW.
        let c = build("linreg", &ctx).unwrap().run("muon:lr=0.02", 0).unwrap();
        assert!(c.points.last().unwrap().value < c.points[0].value);
        // Rosenbrock's first held-out variant starts at (-1.9, 2).
        let c = build("rosenbrock", &ctx)
            .unwrap()
            .run_setup("adam", 0, &Setup { variant: 1, steps: Some(1), ..Setup::default() })
            .unwrap();
        assert_eq!(c.points[0].value, (1.0f64 + 1.9).powi(2) + 100.0 * (2.0f64 - 1.9 * 1.9).powi(2));
    }
}
