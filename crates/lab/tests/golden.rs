//! Our optimizers against their references, step by step: golden trajectories made by
//! `scripts/golden/optim_trajectories.py` (torch 2.15, `foreach=False`; `schedulefree` 1.4.1)
//! and `scripts/golden/optax_trajectories.py` (optax 0.2.8) on a small non-convex problem,
//! `mean((tanh(X·w1 + b1)·w2 - y)²)`, 50 steps, gradients from our tape. Both the fused and the
//! composed path must match: 1e-6 relative in f64, 1e-5 in f32. The checker
//! (`taper_lab::golden`) is shared with the reproduction report's catalogue table.

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use taper_autograd::{ParamStore, Tape};
use taper_lab::golden::{
    floats, host, loss, only, problem, rel, FRONTIER, GOLDEN, GOLDEN_FRONTIER, GOLDEN_OPTAX, NAMES,
};

#[test]
fn initial_gradients_match_torch() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let pb = problem(&golden, DType::F64).unwrap();
    let mut store = ParamStore::new();
    for (name, values, dims) in &pb.init {
        store
            .insert(name.as_str(), Tensor::from_vec(values.clone(), dims.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
    }
    let tape = Tape::new();
    let l = loss(&tape, &store, &pb).unwrap();
    let want = golden["problem"]["initial_loss"].as_f64().unwrap();
    assert!((l.to_scalar_f64().unwrap() - want).abs() < 1e-14);
    let grads = l.backward().unwrap();
    for n in NAMES {
        let e = rel(
            &host(grads.get(store.get(n).unwrap()).unwrap()).unwrap(),
            &floats(&golden["problem"]["initial_grads"][n]),
        );
        assert!(e < 1e-12, "{n}: {e:e}");
    }
}

/// Asserts every check of a golden file; returns the optimizer names it covers.
fn assert_all(text: &str) -> std::collections::BTreeSet<String> {
    let checks = taper_lab::golden::check_all(text).unwrap();
    for c in &checks {
        assert!(
            c.failure.is_none(),
            "{} {} {:?}: {}",
            c.spec,
            c.dtype,
            c.path,
            c.failure.as_deref().unwrap_or("")
        );
        assert!(
            c.compared >= c.required,
            "{} {} {:?}: only {} steps comparable",
            c.spec,
            c.dtype,
            c.path,
            c.compared
        );
    }
    checks.iter().map(|c| c.spec.split(':').next().unwrap().to_string()).collect()
}

#[test]
fn every_optimizer_matches_torch_on_both_paths() {
    let names = assert_all(GOLDEN);
    assert_eq!(names.len(), 16, "{names:?}");
}

#[test]
fn every_optax_optimizer_matches_optax_on_both_paths() {
    let names = assert_all(GOLDEN_OPTAX);
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["adabelief", "adan", "lamb", "lion", "yogi"]);
}

#[test]
fn every_frontier_optimizer_matches_its_reference_on_both_paths() {
    let names = assert_all(&only(GOLDEN_FRONTIER, FRONTIER).unwrap());
    assert_eq!(names.into_iter().collect::<Vec<_>>(), FRONTIER);
}
