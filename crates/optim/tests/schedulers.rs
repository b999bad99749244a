//! Our schedulers against `torch.optim.lr_scheduler`, step by step: golden sequences made by
//! `scripts/golden/lr_schedulers.py` (torch 2.15) over 100 steps on an optimizer with two
//! parameter groups; and resuming mid-schedule from saved state gives the same sequence.

use serde_json::Value;
use taper_optim::schedule::{LambdaLr, MultiplicativeLr, Scheduler};
use taper_optim::{from_spec, Optimizer};

const GOLDEN: &str = include_str!("../../../tests/golden/lr_schedulers.json");

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// The case's optimizer: SGD with momentum or Adam, two groups at the case's rates.
fn optimizer(case: &Value) -> Box<dyn Optimizer> {
    let o = &case["optimizer"];
    let lrs = floats(&case["group_lrs"]);
    let spec = match o["name"].as_str().unwrap() {
        "sgd" => format!("sgd:lr={},momentum={}", lrs[0], o["momentum"]),
        _ => format!("adam:lr={},beta1={},beta2={}", lrs[0], o["beta1"], o["beta2"]),
    };
    let mut opt = from_spec(&spec, vec![]).unwrap();
    for lr in &lrs[1..] {
        opt.add_param_group(vec![], &format!("lr={lr}")).unwrap();
    }
    opt
}

fn momentum_key(case: &Value) -> &'static str {
    if case["optimizer"]["name"] == "sgd" {
        "momentum"
    } else {
        "beta1"
    }
}

/// `(lrs, momenta)` after construction and each step, from `start` (a fresh scheduler) or
/// resumed at `resume_at` from the uninterrupted run's saved state.
fn run(case: &Value, resume_at: Option<usize>) -> Vec<(Vec<f64>, Vec<f64>)> {
    let spec = case["spec"].as_str().unwrap();
    let metrics =
        case["metrics"].as_array().map(|m| m.iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>());
    let key = momentum_key(case);
    let mut opt = optimizer(case);
    let mut sched = Scheduler::new(spec, opt.as_mut()).unwrap_or_else(|e| panic!("{spec}: {e}"));
    let read = |opt: &dyn Optimizer| {
        let n = opt.num_groups();
        (
            (0..n).map(|g| opt.group_learning_rate(g).unwrap()).collect::<Vec<_>>(),
            (0..n).map(|g| opt.group_option(g, key).unwrap()).collect::<Vec<_>>(),
        )
    };
    let mut rows = vec![read(opt.as_ref())];
    for t in 0..100 {
        if Some(t) == resume_at {
            // What a checkpoint keeps, into a fresh optimizer and scheduler built from the specs.
            let (saved_opt, saved_sched) = (opt.export_state().unwrap(), sched.state());
            let mut fresh = optimizer(case);
            let mut again = Scheduler::new(&sched.spec(), fresh.as_mut()).unwrap();
            fresh.import_state(&saved_opt).unwrap();
            again.load_state(&saved_sched).unwrap();
            (opt, sched) = (fresh, again);
        }
        match &metrics {
            Some(m) => sched.step_with_metric(opt.as_mut(), m[t]).unwrap(),
            None => sched.step(opt.as_mut()).unwrap_or_else(|e| panic!("{spec} step {t}: {e}")),
        }
        rows.push(read(opt.as_ref()));
    }
    rows
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-3)
}

#[test]
fn every_scheduler_matches_torch() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 40);
    let mut names = std::collections::BTreeSet::new();
    for case in cases {
        let spec = case["spec"].as_str().unwrap();
        names.insert(spec.split(':').next().unwrap().to_string());
        let rows = run(case, None);
        for (t, (lrs, momenta)) in rows.iter().enumerate() {
            let want = floats(&case["lr"][t]);
            for (g, (&got, &w)) in lrs.iter().zip(&want).enumerate() {
                // One step past OneCycleLR's last, PyTorch's linear strategy goes negative: 0 here.
                let w = w.max(0.0);
                assert!(close(got, w), "{spec}: after step {t}, group {g}: lr {got:e}, torch {w:e}");
            }
            if let Some(m) = case["momentum"].as_array() {
                let want = floats(&m[t]);
                for (g, (&got, &w)) in momenta.iter().zip(&want).enumerate() {
                    assert!(close(got, w), "{spec}: after step {t}, group {g}: momentum {got}, torch {w}");
                }
            }
        }
    }
    assert_eq!(names.len(), 13, "{names:?}");
}

#[test]
fn resuming_mid_schedule_is_exact() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let whole = run(case, None);
        for at in [1, 37, 64] {
            assert_eq!(run(case, Some(at)), whole, "{} resumed at step {at}", case["spec"]);
        }
    }
}

#[test]
fn canonical_specs_round_trip() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let mut opt = optimizer(case);
        let spec = Scheduler::new(case["spec"].as_str().unwrap(), opt.as_mut()).unwrap().spec();
        let mut opt = optimizer(case);
        assert_eq!(Scheduler::new(&spec, opt.as_mut()).unwrap().spec(), spec);
    }
}

#[test]
fn bad_specs_are_one_clear_error_and_change_nothing() {
    let cases: &[(&str, &[&str])] = &[
        ("nope", &["unknown scheduler", "cosine"]),
        ("cosine", &["`t_max` is required"]),
        ("step:gamma=0.5", &["`step_size` is required"]),
        ("exponential", &["`gamma` is required"]),
        ("multistep:gamma=0.5", &["`milestones` is required"]),
        ("cyclic:max_lr=0.1", &["`base_lr` is required"]),
        ("onecycle:max_lr=0.1", &["`total_steps`", "required"]),
        ("cosine:t_max=0", &["t_max=0", ">= 1"]),
        ("cosine:t_max=10,foo=1", &["no option `foo`"]),
        ("onecycle:max_lr=0.1,total_steps=10,anneal_strategy=square", &["square", "cos, linear"]),
        ("multistep:milestones=30", &["brackets"]),
        ("sequential:schedulers=[linear(total_iters=5),cosine(t_max=9)]", &["need 1 milestones"]),
        ("sequential:schedulers=[plateau,cosine(t_max=9)],milestones=[3]", &["plateau"]),
        ("chained:schedulers=[cosine(t_max=9]", &["unclosed"]),
        ("cyclic:base_lr=[0.1,0.2,0.3],max_lr=1", &["expected 2 values of base_lr"]),
        ("onecycle:max_lr=0.1,total_steps=10", &[]),
    ];
    for (spec, needles) in cases {
        let mut opt = from_spec("sgd:lr=0.1,momentum=0.9", vec![]).unwrap();
        opt.add_param_group(vec![], "lr=0.01").unwrap();
        let before = (opt.group_spec(0), opt.group_spec(1));
        match Scheduler::new(spec, opt.as_mut()) {
            Ok(_) => assert!(needles.is_empty(), "{spec} was accepted"),
            Err(e) => {
                let msg = e.to_string();
                assert!(!needles.is_empty(), "{spec}: {msg}");
                for n in *needles {
                    assert!(msg.contains(n), "{spec}: `{msg}` lacks `{n}`");
                }
                assert_eq!((opt.group_spec(0), opt.group_spec(1)), before, "{spec} changed the optimizer");
            }
        }
    }
    // Momentum cycling needs a momentum.
    let mut opt = from_spec("adagrad:lr=0.1", vec![]).unwrap();
    let err = Scheduler::new("onecycle:max_lr=0.1,total_steps=10", opt.as_mut()).unwrap_err().to_string();
    assert!(err.contains("cycle_momentum=false"), "{err}");
    assert_eq!(opt.learning_rate(), 0.1);
    assert!(Scheduler::new("onecycle:max_lr=0.1,total_steps=10,cycle_momentum=false", opt.as_mut()).is_ok());
}

#[test]
fn a_metric_driven_scheduler_needs_its_metric_and_a_failed_step_changes_nothing() {
    let mut opt = from_spec("sgd:lr=0.1", vec![]).unwrap();
    let mut plateau = Scheduler::new("plateau:patience=0", opt.as_mut()).unwrap();
    assert!(plateau.needs_metric());
    assert!(plateau.step(opt.as_mut()).unwrap_err().to_string().contains("metric"));
    assert!(plateau.step_with_metric(opt.as_mut(), f64::NAN).is_err());
    plateau.step_with_metric(opt.as_mut(), 1.0).unwrap();
    plateau.step_with_metric(opt.as_mut(), 2.0).unwrap();
    assert!((opt.learning_rate() - 0.01).abs() < 1e-15);
    // OneCycleLR refuses to go further than one step past its last: nothing moves then.
    let mut opt = from_spec("sgd:lr=0.1,momentum=0.9", vec![]).unwrap();
    let mut one = Scheduler::new("onecycle:max_lr=1,total_steps=3", opt.as_mut()).unwrap();
    for _ in 0..3 {
        one.step(opt.as_mut()).unwrap();
    }
    let (lr, m, state) = (opt.learning_rate(), opt.group_option(0, "momentum"), one.state());
    assert!(one.step(opt.as_mut()).unwrap_err().to_string().contains("total_steps is 3"));
    assert_eq!((opt.learning_rate(), opt.group_option(0, "momentum"), one.state()), (lr, m, state));
    // A state that does not fit is refused and changes nothing.
    let mut cos = Scheduler::new("cosine:t_max=10", opt.as_mut()).unwrap();
    let good = cos.state();
    let mut bad = good.clone();
    bad.remove("last_epoch");
    assert!(cos.load_state(&bad).unwrap_err().to_string().contains("last_epoch"));
    assert_eq!(cos.state(), good);
}

#[test]
fn lambda_and_multiplicative_follow_their_closures() {
    let mut opt = from_spec("sgd:lr=0.5", vec![]).unwrap();
    opt.add_param_group(vec![], "lr=0.1").unwrap();
    let mut s = Scheduler::from_boxed(
        Box::new(LambdaLr::new(vec![std::sync::Arc::new(|t| 1.0 / (t + 1) as f64)])),
        opt.as_mut(),
    )
    .unwrap();
    for t in 1..5u64 {
        s.step(opt.as_mut()).unwrap();
        assert_eq!(opt.group_learning_rate(0), Some(0.5 * (1.0 / (t + 1) as f64)));
        assert_eq!(opt.group_learning_rate(1), Some(0.1 * (1.0 / (t + 1) as f64)));
    }
    let mut opt = from_spec("sgd:lr=1", vec![]).unwrap();
    let mut m = Scheduler::from_boxed(
        Box::new(MultiplicativeLr::new(vec![std::sync::Arc::new(|_| 0.5)])),
        opt.as_mut(),
    )
    .unwrap();
    assert_eq!(opt.learning_rate(), 1.0);
    m.step(opt.as_mut()).unwrap();
    m.step(opt.as_mut()).unwrap();
    assert_eq!(opt.learning_rate(), 0.25);
    // Two functions for one group is an error.
    let two: Vec<taper_optim::schedule::EpochFn> =
        vec![std::sync::Arc::new(|_| 1.0), std::sync::Arc::new(|_| 1.0)];
    assert!(Scheduler::from_boxed(Box::new(LambdaLr::new(two)), opt.as_mut()).is_err());
}
