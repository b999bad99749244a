//! Checks our optimizers against golden trajectories (`tests/golden/optim_trajectories.json`,
//! `optax_trajectories.json`): one implementation, used by `crates/lab/tests/golden.rs` (which
//! asserts every check) and by the `reproduce` example's optimizer-catalogue table (which
//! reports them). Problem: `mean((tanh(X·w1 + b1)·w2 - y)²)`, gradients from our tape, 50 steps,
//! 1e-6 relative in f64 and 1e-5 in f32 (bfloat16's precision for Muon's default iteration).

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use taper_autograd::{ParamStore, Tape, Var};
use taper_optim::{from_spec, KernelPath};

/// Made by `scripts/golden/optim_trajectories.py` (torch 2.15, `foreach=False`).
pub const GOLDEN: &str = include_str!("../../../tests/golden/optim_trajectories.json");
/// Made by `scripts/golden/optax_trajectories.py` (optax 0.2.8, JAX in 64-bit mode) on the same
/// problem, for the optimizers that follow optax.
pub const GOLDEN_OPTAX: &str = include_str!("../../../tests/golden/optax_trajectories.json");
/// Made by `scripts/golden/frontier_trajectories.py` (timm 1.0.31, optax 0.2.8, prodigyopt 1.1.2,
/// dadaptation 3.2, pytorch_optimizer 4.1.0, the authors' `soap.py`) on the same problem, for the
/// 2024–2026 optimizers, plus d2l's 2-D traces (`traces`).
pub const GOLDEN_FRONTIER: &str = include_str!("../../../tests/golden/frontier_trajectories.json");
/// The optimizers `GOLDEN_FRONTIER` checks (timm's cautious AdamW among them), sorted.
pub const FRONTIER: &[&str] = &[
    "adamw",
    "ademamix",
    "adopt",
    "dadapt_adam",
    "laprop",
    "lookahead",
    "madgrad",
    "mars",
    "prodigy",
    "sam",
    "soap",
];
/// The parameters, in order.
pub const NAMES: [&str; 3] = ["w1", "b1", "w2"];
/// Optimizers with one implementation: those that reduce over whole tensors
/// (whole-tensor rules, composed only) and L-BFGS (host vectors).
const SINGLE_PATH: &[&str] =
    &["lamb", "adafactor", "muon", "lbfgs", "mars", "soap", "prodigy", "dadapt_adam"];

/// The paths a run is checked on.
pub fn paths(spec: &str) -> Vec<KernelPath> {
    if SINGLE_PATH.contains(&spec.split(':').next().unwrap_or("")) {
        vec![KernelPath::Composed]
    } else {
        vec![KernelPath::Fused, KernelPath::Composed]
    }
}

/// Every number in a JSON value, flattened.
pub fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap_or(f64::NAN)],
        _ => vec![f64::NAN],
    }
}

/// The data and initial values.
pub struct Problem {
    /// Inputs.
    pub x: Tensor,
    /// Targets.
    pub y: Tensor,
    /// `(name, values, dims)` of each parameter.
    pub init: Vec<(String, Vec<f64>, Vec<usize>)>,
}

type R<T> = std::result::Result<T, String>;

fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

/// The golden file's problem in `dtype`.
pub fn problem(golden: &Value, dtype: DType) -> R<Problem> {
    let p = &golden["problem"];
    let dims = |k: &str| -> Vec<usize> {
        p["shapes"][k]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_u64()).map(|d| d as usize).collect())
            .unwrap_or_default()
    };
    let t = |k: &str| -> R<Tensor> {
        Tensor::from_vec(floats(&p[k]), dims(k), &Device::Cpu).and_then(|t| t.to_dtype(dtype)).map_err(e)
    };
    Ok(Problem {
        x: t("X")?,
        y: t("y")?,
        init: NAMES.iter().map(|n| (n.to_string(), floats(&p[*n]), dims(n))).collect(),
    })
}

/// The loss on `tape`.
pub fn loss(tape: &Tape, store: &ParamStore, pb: &Problem) -> taper_autograd::Result<Var> {
    let get = |n: &str| -> taper_autograd::Result<Var> {
        let p = store.get(n).ok_or_else(|| candle_core::Error::Msg(format!("no parameter `{n}`")))?;
        Ok(tape.param(p))
    };
    let (w1, b1, w2) = (get("w1")?, get("b1")?, get("w2")?);
    let h = Var::constant(pb.x.clone()).matmul(&w1)?.add(&b1)?.tanh()?;
    h.matmul(&w2)?.sub(&Var::constant(pb.y.clone()))?.sqr()?.mean_all()
}

/// `max |a - b| / max |b|`.
pub fn rel(a: &[f64], b: &[f64]) -> f64 {
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    diff / b.iter().map(|y| y.abs()).fold(1e-12, f64::max)
}

/// A tensor's values as f64.
pub fn host(t: &Tensor) -> R<Vec<f64>> {
    t.flatten_all().and_then(|t| t.to_dtype(DType::F64)).and_then(|t| t.to_vec1::<f64>()).map_err(e)
}

/// What one golden run on one path gave.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The run's spec.
    pub spec: String,
    /// `f64` or `f32`.
    pub dtype: String,
    /// Fused or composed.
    pub path: KernelPath,
    /// Steps compared within the tolerance.
    pub compared: usize,
    /// Steps the run has.
    pub total: usize,
    /// Steps that must compare (fewer than `total` where rounding alone separates runs).
    pub required: usize,
    /// The largest relative difference seen.
    pub max_err: f64,
    /// The first difference beyond the tolerance, if any.
    pub failure: Option<String>,
}

impl Checked {
    /// Whether the run matched.
    pub fn ok(&self) -> bool {
        self.failure.is_none() && self.compared >= self.required
    }
}

/// Runs one golden run on one path.
fn run(golden: &Value, run: &Value, path: KernelPath, reference: Option<&Value>) -> R<(usize, f64)> {
    let dtype = if run["dtype"] == "f32" { DType::F32 } else { DType::F64 };
    let spec = run["spec"].as_str().ok_or("a run without a spec")?;
    // Muon's Newton–Schulz iteration in bfloat16 (PyTorch's and Taper's default) rounds both
    // sides to 8 bits of mantissa in a different order: checked to bfloat16's precision.
    let bf16 = spec.starts_with("muon") && !spec.contains("ns_dtype=native");
    let tol = if bf16 {
        2e-2
    } else if dtype == DType::F32 {
        1e-5
    } else {
        1e-6
    };
    let pb = problem(golden, dtype)?;
    let mut store = ParamStore::new();
    for (name, values, dims) in &pb.init {
        let t = Tensor::from_vec(values.clone(), dims.as_slice(), &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(e)?;
        store.insert(name.as_str(), t).map_err(e)?;
    }
    // Some optimizers train a subset (Muon takes matrices only); the others stay put.
    let trained: Vec<_> = match run["trained"].as_array() {
        Some(names) => names.iter().filter_map(|n| n.as_str().and_then(|n| store.get(n)).cloned()).collect(),
        None => store.params().to_vec(),
    };
    let mut opt = from_spec(spec, trained).map_err(e)?;
    opt.set_kernel_path(path);
    let losses = floats(&run["losses"]);
    let snapshots = run["params"].as_array().ok_or("a run without params")?;
    let (mut compared, mut max_err) = (0, 0.0f64);
    let schedule_free = spec.starts_with("schedulefree");
    let value =
        |store: &ParamStore, n: &str| -> R<Vec<f64>> { host(&store.get(n).ok_or("no param")?.value()) };
    for step in 0..snapshots.len() {
        if schedule_free && step == 25 {
            // As the reference run: to the evaluation point and back (a loop that evaluates).
            opt.set_train_mode(false).map_err(e)?;
            opt.set_train_mode(true).map_err(e)?;
        }
        // Where rounding alone separates runs — PyTorch's own f32 run from its f64 run, or
        // (L-BFGS in f64) a run from its twin started 2^-50 away — ours and the reference can be
        // as far apart as the sum of the two drifts from the reference's twin; once that sum
        // passes the tolerance a comparison would measure rounding, not the optimizer.
        let torch_drift = reference.map(|r| {
            NAMES
                .iter()
                .map(|n| rel(&floats(&snapshots[step][*n]), &floats(&r["params"][step][*n])))
                .fold(0.0, f64::max)
        });
        // Through a closure, as L-BFGS needs (every other optimizer evaluates it once).
        let (ours, _) = opt
            .step_closure(&mut || {
                let tape = Tape::new();
                let l = loss(&tape, &store, &pb)?;
                Ok((l.to_scalar_f64()?, l.backward()?))
            })
            .map_err(e)?;
        let got: Vec<Vec<f64>> = NAMES.iter().map(|n| value(&store, n)).collect::<R<_>>()?;
        if let (Some(r), Some(torch_drift)) = (reference, torch_drift) {
            let our_drift = NAMES
                .iter()
                .zip(&got)
                .map(|(n, g)| rel(g, &floats(&r["params"][step][*n])))
                .fold(0.0, f64::max);
            if torch_drift + our_drift > tol {
                break;
            }
        }
        if (ours - losses[step]).abs() > tol * losses[step].abs().max(1e-3) {
            return Err(format!("step {step}: loss {ours} vs the reference {}", losses[step]));
        }
        for (n, got) in NAMES.iter().zip(&got) {
            let err = rel(got, &floats(&snapshots[step][*n]));
            max_err = max_err.max(err);
            if err > tol {
                return Err(format!("after step {}: `{n}` differs from the reference by {err:e}", step + 1));
            }
        }
        compared += 1;
    }
    // State that does not feed back into the parameters (ASGD's average), after the last step;
    // Schedule-Free's evaluation point `{param}.eval`: the parameter in evaluation mode.
    if let (Some(fin), true) = (run["final_state"].as_object(), compared == snapshots.len()) {
        if schedule_free {
            opt.set_train_mode(false).map_err(e)?;
            if opt.step(&Default::default()).is_ok() {
                return Err("a step in evaluation mode was taken".into());
            }
        }
        for (key, want) in fin {
            let (param, buffer) = key.split_once('.').ok_or("a bad final_state key")?;
            let p = store.get(param).ok_or("no param")?;
            let got = match buffer {
                "eval" => p.value(),
                _ => opt.buffer(p, buffer).map_err(e)?.ok_or(format!("no buffer `{buffer}`"))?,
            };
            let err = rel(&host(&got)?, &floats(want));
            max_err = max_err.max(err);
            if err > tol {
                return Err(format!("final `{key}` differs from the reference by {err:e}"));
            }
        }
    }
    Ok((compared, max_err))
}

/// The golden file `text` with only the runs and traces of the optimizers `names`.
pub fn only(text: &str, names: &[&str]) -> R<String> {
    let mut golden: Value = serde_json::from_str(text).map_err(e)?;
    for key in ["runs", "traces"] {
        if let Some(items) = golden[key].as_array_mut() {
            items.retain(|r| {
                names.contains(&r["spec"].as_str().unwrap_or("").split(':').next().unwrap_or(""))
            });
        }
    }
    serde_json::to_string(&golden).map_err(e)
}

/// Every run of a golden file on each of its paths.
pub fn check_all(text: &str) -> R<Vec<Checked>> {
    let golden: Value = serde_json::from_str(text).map_err(e)?;
    let runs = golden["runs"].as_array().ok_or("no runs")?;
    let mut out = Vec::new();
    for r in runs {
        let spec = r["spec"].as_str().unwrap_or("").to_string();
        let f32 = r["dtype"] == "f32";
        // f32 runs: against PyTorch's f64 run. f64 L-BFGS runs: against a twin 2^-50 away.
        let twin = r["twin_params"].as_array().map(|p| serde_json::json!({ "params": p }));
        let f64_run = runs.iter().find(|o| o["name"] == r["name"] && o["dtype"] == "f64");
        let reference = match (&twin, f32) {
            (Some(t), _) => Some(t),
            (None, true) => f64_run,
            (None, false) => None,
        };
        // L-BFGS takes several iterations and line-search evaluations per step on a problem
        // with many minima: PyTorch's own f32 run is 1e-3 to 1e-1 away from its f64 run by
        // step 10, and with the line search even an f64 run started 2^-50 away is 1e-6 away by
        // step 11 to 21 (ours stays as close to PyTorch's as that twin does, step by step).
        let lbfgs = spec.starts_with("lbfgs");
        let required = match (reference.is_some(), lbfgs, f32) {
            (true, true, true) => 2,
            (true, true, false) => 10,
            (true, false, _) => 25,
            (false, _, _) => 50,
        };
        let total = r["params"].as_array().map_or(0, Vec::len);
        for path in paths(&spec) {
            let (compared, max_err, failure) = match run(&golden, r, path, reference) {
                Ok((c, m)) => (c, m, None),
                Err(msg) => (0, f64::NAN, Some(msg)),
            };
            out.push(Checked {
                spec: spec.clone(),
                dtype: r["dtype"].as_str().unwrap_or("").to_string(),
                path,
                compared,
                total,
                required,
                max_err,
                failure,
            });
        }
    }
    Ok(out)
}
