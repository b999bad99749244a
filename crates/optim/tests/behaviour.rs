//! Generic behaviour over the whole registry: d2l's 2D traces, fused == composed, state
//! save → load → step, parameter groups, non-finite gradients, spec round trips and errors.

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use taper_autograd::{Grads, Param, ParamStore, Tape, Var};
use taper_optim::schedule::Scheduler;
use taper_optim::{canonical, from_spec, names, KernelPath, NonFinite, OptimSpec, Optimizer, StepOutcome};
use taper_tensor::SeededRng;

/// One spec per optimizer with every stateful option switched on.
const FULL_SPECS: &[&str] = &[
    "sgd:lr=0.05,momentum=0.9,dampening=0.1,weight_decay=0.01",
    "sgd:lr=0.05,momentum=0.9,nesterov=true",
    "adagrad:lr=0.1,lr_decay=0.01,initial_accumulator_value=0.1,weight_decay=0.01",
    "adagrad:lr=0.1,eps=1e-6,eps_in_sqrt=true",
    "rmsprop:lr=0.01,alpha=0.9,centered=true,momentum=0.9,weight_decay=0.01",
    "rmsprop:lr=0.01,gamma=0.9,eps=1e-6,eps_in_sqrt=true",
    "adadelta:lr=1.0,rho=0.9,eps=1e-6,weight_decay=0.01",
    "adam:lr=0.01,amsgrad=true,weight_decay=0.01",
    "adamw:lr=0.01,amsgrad=true,weight_decay=0.1",
    "sgd:lr=0.01,momentum=0.9,nesterov=true,maximize=true",
    "rmsprop:lr=0.001,centered=true,momentum=0.5,maximize=true",
    "adamw:lr=0.01,weight_decay=0.1,maximize=true",
    "radam:lr=0.01,weight_decay=0.01",
    "radam:lr=0.01,weight_decay=0.1,decoupled_weight_decay=true",
    "rprop:lr=0.01,eta_minus=0.4,eta_plus=1.3,step_size_max=1",
    "lion:lr=0.001,weight_decay=0.1",
    "adam:lr=0.01,weight_decay=0.1,decoupled_weight_decay=true",
    "adamax:lr=0.01,weight_decay=0.01,maximize=true",
    "nadam:lr=0.01,momentum_decay=0.1,weight_decay=0.01",
    "nadam:lr=0.01,weight_decay=0.1,decoupled_weight_decay=true",
    "asgd:lr=0.05,lambd=0.01,t0=3,weight_decay=0.01",
    "adabelief:lr=0.01,nesterov=true",
    "yogi:lr=0.01,eps_root=1e-8",
    "adan:lr=0.01,weight_decay=0.05",
    "schedulefree_adamw:lr=0.01,weight_decay=0.01,warmup_steps=3",
    "schedulefree_sgd:lr=0.1,momentum=0.8,r=1",
    // Cautious updates: on a rule written as one update (the mask on the step) and on one in
    // optax's form (the mask on the direction, before the decayed weights).
    "adamw:lr=0.01,weight_decay=0.1,cautious=true",
    "sgd:lr=0.05,momentum=0.9,nesterov=true,cautious=true",
    "lion:lr=0.001,weight_decay=0.1,cautious=true",
    // And with L2 decay (the counting pass's loop for the other decay kinds).
    "adam:lr=0.01,weight_decay=0.1,cautious=true",
];

// ---------------------------------------------------------------- d2l traces

#[test]
fn d2l_traces_print_the_books_six_decimals() {
    let golden: Value = serde_json::from_str(include_str!("../../../tests/golden/d2l_traces.json")).unwrap();
    let traces = golden["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 8);
    for t in traces {
        let coef = match t["function"].as_str().unwrap() {
            "x1^2+2x2^2" => [1.0, 2.0],
            "0.1x1^2+2x2^2" => [0.1, 2.0],
            f => panic!("unknown function {f}"),
        };
        let spec = t["spec"].as_str().unwrap();
        let mut store = ParamStore::new();
        let x = store.insert("x", Tensor::new(&[-5.0f64, -2.0], &Device::Cpu).unwrap()).unwrap();
        let mut opt = from_spec(spec, store.trainable()).unwrap();
        let c = Var::constant(Tensor::new(&coef, &Device::Cpu).unwrap());
        for (i, want) in t["lines"].as_array().unwrap().iter().enumerate() {
            let tape = Tape::new();
            let f = tape.param(&x).sqr().unwrap().mul(&c).unwrap().sum_all().unwrap();
            opt.step(&f.backward().unwrap()).unwrap();
            let v = x.value().to_vec1::<f64>().unwrap();
            let line = format!("epoch {}, x1 {:.6}, x2 {:.6}", i + 1, v[0], v[1]);
            assert_eq!(line, want.as_str().unwrap(), "{spec}, section {}", t["section"]);
        }
    }
}

// ---------------------------------------------------------------- helpers

fn store(dtype: DType, seed: u64) -> ParamStore {
    let mut rng = SeededRng::new(seed);
    let mut s = ParamStore::new();
    s.insert("w", rng.normal((70_000,), 0.0, 1.0, dtype, &Device::Cpu).unwrap()).unwrap();
    s.insert("b", rng.normal((3, 5), 0.0, 1.0, dtype, &Device::Cpu).unwrap()).unwrap();
    s
}

/// A non-quadratic loss whose gradient changes every step: sum(tanh(p)·p + 0.1·p⁴)/n.
fn grads(s: &ParamStore) -> Grads {
    let tape = Tape::new();
    let mut total: Option<Var> = None;
    for p in s.params() {
        let v = tape.param(p);
        let term = v
            .tanh()
            .unwrap()
            .mul(&v)
            .unwrap()
            .add(&v.sqr().unwrap().sqr().unwrap().scale(0.1).unwrap())
            .unwrap();
        let term = term.mean_all().unwrap();
        total = Some(match total {
            None => term,
            Some(t) => t.add(&term).unwrap(),
        });
    }
    total.unwrap().backward().unwrap()
}

fn values(s: &ParamStore) -> Vec<Vec<f64>> {
    s.params()
        .iter()
        .map(|p| p.value().flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap())
        .collect()
}

fn train(opt: &mut dyn Optimizer, s: &ParamStore, steps: usize) {
    for _ in 0..steps {
        assert_eq!(opt.step(&grads(s)).unwrap(), StepOutcome::Applied);
    }
}

// ---------------------------------------------------------------- paths and state

#[test]
fn fused_and_composed_paths_agree() {
    for dtype in [DType::F64, DType::F32] {
        for spec in FULL_SPECS {
            let (a, b) = (store(dtype, 1), store(dtype, 1));
            let mut fa = from_spec(spec, a.params().to_vec()).unwrap();
            let mut fb = from_spec(spec, b.params().to_vec()).unwrap();
            fa.set_kernel_path(KernelPath::Fused);
            fb.set_kernel_path(KernelPath::Composed);
            train(fa.as_mut(), &a, 15);
            train(fb.as_mut(), &b, 15);
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-6 };
            for (x, y) in values(&a).iter().zip(values(&b)) {
                let d = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
                assert!(d <= tol, "{spec} {dtype:?}: fused and composed differ by {d:e}");
            }
            assert_ne!(values(&a), values(&store(dtype, 1)), "{spec}: nothing moved");
        }
    }
}

#[test]
fn save_load_then_step_equals_step() {
    for spec in FULL_SPECS {
        for (save_path, load_path) in
            [(KernelPath::Auto, KernelPath::Auto), (KernelPath::Fused, KernelPath::Composed)]
        {
            // 20 steps, save; a fresh optimizer on copied parameters loads; 20 more on both.
            let a = store(DType::F32, 2);
            let mut oa = from_spec(spec, a.params().to_vec()).unwrap();
            oa.set_kernel_path(save_path);
            train(oa.as_mut(), &a, 20);
            let saved = oa.export_state().unwrap();
            let b = ParamStore::new();
            let mut b = b;
            for p in a.params() {
                b.insert(p.name(), p.value().copy().unwrap()).unwrap();
            }
            let mut ob = from_spec(&oa.spec().to_string(), b.params().to_vec()).unwrap();
            ob.set_kernel_path(load_path);
            ob.import_state(&saved).unwrap();
            train(oa.as_mut(), &a, 20);
            train(ob.as_mut(), &b, 20);
            let tol = if load_path == save_path { 0.0 } else { 1e-6 };
            for (x, y) in values(&a).iter().zip(values(&b)) {
                let d = x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
                assert!(d <= tol, "{spec} {save_path:?}->{load_path:?}: resumed run differs by {d:e}");
            }
        }
    }
}

#[test]
fn reset_state_starts_over() {
    let (a, b) = (store(DType::F64, 3), store(DType::F64, 3));
    let mut oa = from_spec("adam:lr=0.01", a.params().to_vec()).unwrap();
    let mut ob = from_spec("adam:lr=0.01", b.params().to_vec()).unwrap();
    train(oa.as_mut(), &a, 5);
    oa.reset_state().unwrap();
    assert!(oa.export_state().unwrap().tensors.is_empty());
    // After a reset, a step is a first step again: the same update as a fresh optimizer's
    // first step from the same point.
    for (pa, pb) in a.params().iter().zip(b.params()) {
        pb.set(pa.value().copy().unwrap()).unwrap();
    }
    train(oa.as_mut(), &a, 1);
    train(ob.as_mut(), &b, 1);
    assert_eq!(values(&a), values(&b));
}

#[test]
fn import_rejects_state_that_does_not_fit() {
    let a = store(DType::F32, 4);
    let mut adam = from_spec("adam", a.params().to_vec()).unwrap();
    train(adam.as_mut(), &a, 1);
    let saved = adam.export_state().unwrap();
    let mut rms = from_spec("rmsprop", a.params().to_vec()).unwrap();
    let err = rms.import_state(&saved).unwrap_err().to_string();
    assert!(err.contains("`adam`") && err.contains("`rmsprop`"), "{err}");
    // Saved with amsgrad: the restored options need a buffer the save lacks.
    let mut lacking = saved.clone();
    lacking.groups[0] = lacking.groups[0].replace("amsgrad=false", "amsgrad=true");
    let mut ams = from_spec("adam", a.params().to_vec()).unwrap();
    let err = ams.import_state(&lacking).unwrap_err().to_string();
    assert!(err.contains("max_exp_avg_sq") && err.contains("missing"), "{err}");
    // A buffer of the wrong shape.
    let mut bad = saved.clone();
    bad.tensors[0].1 = Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap();
    let mut fresh = from_spec("adam", a.params().to_vec()).unwrap();
    let err = fresh.import_state(&bad).unwrap_err().to_string();
    assert!(err.contains("[7]"), "{err}");
    assert!(fresh.export_state().unwrap().tensors.is_empty(), "a failed import must change nothing");
    // An entry for a parameter this optimizer does not have.
    let mut extra = saved.clone();
    extra.tensors.push(("ghost.exp_avg".into(), Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap()));
    assert!(fresh.import_state(&extra).unwrap_err().to_string().contains("ghost"));
    // Per-parameter scalar state (NAdam's running product of momentum coefficients) is saved,
    // required and checked.
    let mut nadam = from_spec("nadam", a.params().to_vec()).unwrap();
    train(nadam.as_mut(), &a, 3);
    let saved = nadam.export_state().unwrap();
    let key = saved.scalars.keys().find(|k| k.ends_with(".mu_product")).unwrap().clone();
    assert!(saved.scalars[&key] < 0.5, "{key} = {}", saved.scalars[&key]);
    let p = a.params().iter().find(|p| key == format!("{}.mu_product", p.name())).unwrap().clone();
    let read = nadam.buffer(&p, "mu_product").unwrap().unwrap().to_dtype(DType::F64).unwrap();
    assert_eq!(read.to_scalar::<f64>().unwrap(), saved.scalars[&key] as f32 as f64);
    let mut fresh = from_spec("nadam", a.params().to_vec()).unwrap();
    let mut lacking = saved.clone();
    lacking.scalars.remove(&key);
    let err = fresh.import_state(&lacking).unwrap_err().to_string();
    assert!(err.contains(&key) && err.contains("missing"), "{err}");
    let mut nan = saved.clone();
    nan.scalars.insert(key.clone(), f64::NAN);
    assert!(fresh.import_state(&nan).unwrap_err().to_string().contains("not finite"));
    assert!(fresh.export_state().unwrap().scalars.keys().all(|k| k.starts_with("group.")));
    fresh.import_state(&saved).unwrap();
    assert_eq!(fresh.export_state().unwrap().scalars, saved.scalars);
}

// ---------------------------------------------------------------- groups, lr, non-finite

#[test]
fn parameter_groups_have_their_own_hyperparameters() {
    let a = store(DType::F64, 5);
    let [w, b] = [a.params()[0].clone(), a.params()[1].clone()];
    let mut grouped = from_spec("sgd:lr=0.1,momentum=0.9", vec![w.clone()]).unwrap();
    grouped.add_param_group(vec![b.clone()], "lr=0.01").unwrap();
    assert_eq!(grouped.num_groups(), 2);
    assert_eq!(grouped.group_learning_rate(1), Some(0.01));
    assert!(grouped.add_param_group(vec![w.clone()], "lr=0.5").is_err(), "a parameter in two groups");
    assert!(grouped.add_param_group(vec![], "lr=-1").is_err());

    let c = store(DType::F64, 5);
    let mut ow = from_spec("sgd:lr=0.1,momentum=0.9", vec![c.params()[0].clone()]).unwrap();
    let mut ob = from_spec("sgd:lr=0.01,momentum=0.9", vec![c.params()[1].clone()]).unwrap();
    for _ in 0..5 {
        grouped.step(&grads(&a)).unwrap();
        let g = grads(&c);
        ow.step(&g).unwrap();
        ob.step(&g).unwrap();
    }
    assert_eq!(values(&a), values(&c));
}

#[test]
fn learning_rate_can_be_read_set_and_scheduled() {
    let a = store(DType::F32, 6);
    let mut opt = from_spec("rmsprop:lr=0.1", a.params().to_vec()).unwrap();
    assert_eq!(opt.learning_rate(), 0.1);
    let mut sched = Scheduler::new("step:step_size=2,gamma=0.5", opt.as_mut()).unwrap();
    for _ in 0..4 {
        sched.step(opt.as_mut()).unwrap();
    }
    assert!((opt.learning_rate() - 0.025).abs() < 1e-15);
    assert!(opt.set_learning_rate(-1.0).is_err());
    assert!(opt.set_learning_rate(f64::NAN).is_err());
    assert!(opt.spec().to_string().contains("lr=0.025"));
}

fn poisoned(s: &ParamStore, value: f64) -> Grads {
    let mut g = grads(s);
    let p: &Param = &s.params()[1];
    let mut v = g.get(p).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v[3] = value as f32;
    g.set(p, Tensor::from_vec(v, p.dims(), &Device::Cpu).unwrap());
    g
}

#[test]
fn non_finite_gradients_never_touch_the_parameters() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for path in [KernelPath::Fused, KernelPath::Composed] {
            let a = store(DType::F32, 7);
            let mut opt = from_spec("adam:lr=0.1", a.params().to_vec()).unwrap();
            opt.set_kernel_path(path);
            train(opt.as_mut(), &a, 2);
            let before = values(&a);
            let state_before = opt.export_state().unwrap();
            let err = opt.step(&poisoned(&a, bad)).unwrap_err().to_string();
            assert!(err.contains("non-finite") && err.contains("`b`"), "{err}");
            assert_eq!(values(&a), before);
            opt.set_non_finite(NonFinite::Skip);
            assert_eq!(opt.step(&poisoned(&a, bad)).unwrap(), StepOutcome::Skipped { param: "b".into() });
            assert_eq!(values(&a), before);
            let state_after = opt.export_state().unwrap();
            assert_eq!(state_before.scalars, state_after.scalars, "a skipped step does not count");
            // Opting out of the check lets the value through, as PyTorch does.
            opt.set_non_finite(NonFinite::Unchecked);
            assert_eq!(opt.step(&poisoned(&a, bad)).unwrap(), StepOutcome::Applied);
            assert!(values(&a)[1].iter().any(|v| !v.is_finite()));
        }
    }
}

#[test]
fn gradient_of_the_wrong_shape_is_an_error() {
    let a = store(DType::F32, 8);
    let mut opt = from_spec("sgd:lr=0.1", a.params().to_vec()).unwrap();
    let mut g = grads(&a);
    g.set(&a.params()[1], Tensor::zeros((5, 3), DType::F32, &Device::Cpu).unwrap());
    let err = opt.step(&g).unwrap_err().to_string();
    assert!(err.contains("`b`") && err.contains("[5, 3]"), "{err}");
}

// ---------------------------------------------------------------- specs

#[test]
fn specs_round_trip() {
    for name in names() {
        // The learning rate is stated: optax's optimizers require it.
        // The wrappers take theirs through the inner optimizer.
        let spec = match name.as_str() {
            "lookahead" | "sam" => format!("{name}:optimizer=lion(lr=0.01)"),
            _ => format!("{name}:lr=0.01"),
        };
        let opt = from_spec(&spec, vec![]).unwrap();
        let canonical = opt.spec().to_string();
        let again = from_spec(&canonical, vec![]).unwrap().spec().to_string();
        assert_eq!(canonical, again);
    }
    for spec in FULL_SPECS {
        let given = OptimSpec::parse(spec).unwrap();
        let canonical = from_spec(spec, vec![]).unwrap().spec();
        assert_eq!(from_spec(&canonical.to_string(), vec![]).unwrap().spec(), canonical);
        // Every value given survives (gamma under its PyTorch name alpha).
        for (k, v) in &given.options {
            let key = if k == "gamma" { "alpha" } else { k.as_str() };
            let (_, got) = canonical.options.iter().find(|(ck, _)| ck == key).unwrap();
            assert_eq!(got.parse::<f64>().ok(), v.parse::<f64>().ok(), "{spec}: {k}");
        }
    }
    assert_eq!(
        from_spec("rmsprop", vec![]).unwrap().spec().to_string(),
        "rmsprop:lr=0.01,alpha=0.99,eps=1e-8,weight_decay=0,momentum=0,centered=false,eps_in_sqrt=false,maximize=false"
    );
}

#[test]
fn bad_specs_name_the_key_and_the_allowed_range() {
    let cases: &[(&str, &[&str])] = &[
        ("lamb_not_yet", &["unknown optimizer", "lamb_not_yet", "rmsprop"]),
        ("lion", &["`lr` is required"]),
        ("adam:momentum=0.9", &["`adam` has no option `momentum`", "beta1"]),
        ("rmsprop:lr=fast", &["lr=fast", "number"]),
        ("rmsprop:lr=-0.1", &["lr=-0.1", ">= 0"]),
        ("rmsprop:alpha=1", &["alpha=1", "[0, 1)"]),
        ("rmsprop:gamma=1.5", &["gamma=1.5", "[0, 1)"]),
        ("rmsprop:eps=0", &["eps=0", "> 0"]),
        ("rmsprop:centered=yes", &["centered=yes", "true or false"]),
        ("adadelta:rho=1", &["rho=1", "[0, 1)"]),
        ("adam:beta1=-0.1", &["beta1=-0.1", "[0, 1)"]),
        ("adamw:beta2=1", &["beta2=1", "[0, 1)"]),
        ("adagrad:lr_decay=-1", &["lr_decay=-1", ">= 0"]),
        ("adagrad:initial_accumulator_value=-1", &["initial_accumulator_value", ">= 0"]),
        ("sgd:nesterov=true", &["nesterov", "momentum > 0"]),
        ("sgd:momentum=0.9,dampening=0.5,nesterov=true", &["nesterov", "dampening = 0"]),
        ("sgd:weight_decay=-1", &["weight_decay=-1", ">= 0"]),
        ("sgd:lr=inf", &["lr=inf"]),
        ("sgd:lr=0.1,lr=0.2", &["given twice"]),
        ("sgd:lr", &["not `key=value`"]),
    ];
    for (spec, needles) in cases {
        let err = match from_spec(spec, vec![]) {
            Ok(_) => panic!("{spec}: expected an error"),
            Err(e) => e.to_string(),
        };
        for n in *needles {
            assert!(err.contains(n), "{spec}: `{err}` should mention `{n}`");
        }
    }
}

// ---------------------------------------------------------------- all or nothing

/// Every parameter's value and every state tensor and scalar, for byte-exact comparisons.
fn snapshot(opt: &dyn Optimizer, s: &ParamStore) -> (Vec<Vec<f64>>, String) {
    let state = opt.export_state().unwrap();
    let tensors: Vec<(String, Vec<f64>)> = state
        .tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()))
        .collect();
    (values(s), format!("{tensors:?} {:?} {:?}", state.scalars, state.groups))
}

#[test]
fn a_forced_fused_step_on_a_parameter_it_cannot_take_changes_nothing() {
    // `w` and `b` can take the fused kernel, `h` (f16) cannot; it comes last.
    let mut s = store(DType::F32, 11);
    let mut g = grads(&s);
    let h = s
        .insert("h", Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap().to_dtype(DType::F16).unwrap())
        .unwrap();
    g.set(&h, Tensor::new(&[0.5f32, -0.5], &Device::Cpu).unwrap().to_dtype(DType::F16).unwrap());
    let mut opt = from_spec("adam:lr=0.1", s.params().to_vec()).unwrap();
    opt.step(&g).unwrap(); // Auto: fused for w and b, composed for h.
    let before = snapshot(opt.as_ref(), &s);
    opt.set_kernel_path(KernelPath::Fused);
    let err = opt.step(&g).unwrap_err().to_string();
    assert!(err.contains("fused kernel") && err.contains("F16"), "{err}");
    assert_eq!(snapshot(opt.as_ref(), &s), before, "w and b must not move when h cannot be updated");
    opt.set_kernel_path(KernelPath::Auto);
    opt.step(&g).unwrap();
    assert_ne!(snapshot(opt.as_ref(), &s), before);
}

#[test]
fn integer_parameters_are_refused_up_front() {
    let mut s = ParamStore::new();
    let n = s.insert("n", Tensor::new(&[1u32, 2], &Device::Cpu).unwrap()).unwrap();
    let err = from_spec("sgd", vec![n.clone()]).err().unwrap().to_string();
    assert!(err.contains("`n`") && err.contains("floating-point"), "{err}");
    let w = store(DType::F32, 1).params()[0].clone();
    let mut opt = from_spec("sgd", vec![w]).unwrap();
    assert!(opt.add_param_group(vec![n], "lr=0.1").is_err());
    assert_eq!(opt.num_groups(), 1);
}

#[test]
fn every_groups_spec_is_saved_and_an_import_is_all_or_nothing() {
    let a = store(DType::F64, 12);
    let [w, b] = [a.params()[0].clone(), a.params()[1].clone()];
    let mut opt = from_spec("sgd:lr=0.1,momentum=0.9", vec![w.clone()]).unwrap();
    opt.add_param_group(vec![b.clone()], "lr=0.01,nesterov=true").unwrap();
    train(opt.as_mut(), &a, 3);
    let saved = opt.export_state().unwrap();
    assert_eq!(saved.groups.len(), 2);
    assert!(
        saved.groups[1].contains("nesterov=true") && saved.groups[1].contains("lr=0.01"),
        "{:?}",
        saved.groups
    );

    // A fresh optimizer with other hyperparameters gets the saved ones back, group by group.
    let mut other = from_spec("sgd:lr=0.5,momentum=0.9", vec![w.clone()]).unwrap();
    other.add_param_group(vec![b.clone()], "lr=0.5").unwrap();
    other.import_state(&saved).unwrap();
    assert_eq!(other.group_spec(1), opt.group_spec(1));
    assert_eq!(other.group_learning_rate(0), Some(0.1));

    // A bad learning rate in group 1 must not set group 0's first.
    let mut bad = saved.clone();
    bad.scalars.insert("group.0.lr".into(), 0.3);
    bad.scalars.insert("group.1.lr".into(), f64::NAN);
    let mut fresh = from_spec("sgd:lr=0.5,momentum=0.9", vec![w.clone()]).unwrap();
    fresh.add_param_group(vec![b.clone()], "lr=0.5").unwrap();
    let before = snapshot(fresh.as_ref(), &a);
    assert!(fresh.import_state(&bad).unwrap_err().to_string().contains("group 1"));
    assert_eq!(fresh.group_learning_rate(0), Some(0.5));
    assert_eq!(snapshot(fresh.as_ref(), &a), before);

    // A group spec of another optimizer, or another number of groups: refused, nothing changed.
    let mut foreign = saved.clone();
    foreign.groups[1] = "adam:lr=0.01".into();
    assert!(fresh.import_state(&foreign).unwrap_err().to_string().contains("`adam`"));
    let mut one = saved.clone();
    one.groups.pop();
    assert!(fresh.import_state(&one).unwrap_err().to_string().contains("1 parameter group"));
    assert_eq!(snapshot(fresh.as_ref(), &a), before);
}

#[test]
fn typed_access_to_hyperparameters_and_buffers() {
    use taper_optim::{Engine, RmsProp};
    let a = store(DType::F32, 13);
    let mut opt = from_spec("rmsprop:lr=0.01,alpha=0.9", a.params().to_vec()).unwrap();
    let p = a.params()[1].clone();
    assert_eq!(opt.step_count(&p), None);
    assert!(opt.buffer(&p, "square_avg").unwrap().is_none());
    train(opt.as_mut(), &a, 2);
    let rule = opt.as_any().downcast_ref::<Engine<RmsProp>>().unwrap().rule();
    assert_eq!(rule.alpha, 0.9);
    assert_eq!(opt.step_count(&p), Some(2));
    let sq = opt.buffer(&p, "square_avg").unwrap().unwrap();
    let saved = opt.export_state().unwrap();
    let exported = &saved.tensors.iter().find(|(k, _)| k == "b.square_avg").unwrap().1;
    assert_eq!(sq.to_vec2::<f32>().unwrap(), exported.to_vec2::<f32>().unwrap());
    assert!(opt.buffer(&p, "momentum_buffer").unwrap().is_none());
}

// ---------------------------------------------------------------- cautious updates

/// Cautious SGD by hand: momentum 0.9, lr 0.1, p = (1, 1, 1). Step 1, g = (1, 1, 1): every update
/// agrees with its gradient, p = (0.9, 0.9, 0.9). Step 2, g = (-0.5, 1, 0): the buffer
/// (0.4, 1.9, 0.9) disagrees with g in the first coordinate, and in the third the gradient is 0
/// (timm's mask is `u·g > 0`, so that one stays too): only the second moves, three times as far
/// (one of three kept): p = (0.9, 0.9 - 3·0.1·1.9, 0.9).
#[test]
fn cautious_updates_keep_the_agreeing_coordinates_rescaled() {
    for path in [KernelPath::Fused, KernelPath::Composed] {
        let mut s = ParamStore::new();
        let p = s.insert("p", Tensor::new(&[1.0f64, 1.0, 1.0], &Device::Cpu).unwrap()).unwrap();
        let mut opt = from_spec("sgd:lr=0.1,momentum=0.9,cautious=true", s.trainable()).unwrap();
        opt.set_kernel_path(path);
        for g in [[1.0f64, 1.0, 1.0], [-0.5, 1.0, 0.0]] {
            let mut grads = Grads::default();
            grads.set(&p, Tensor::new(&g, &Device::Cpu).unwrap());
            opt.step(&grads).unwrap();
        }
        let got = p.value().to_vec1::<f64>().unwrap();
        let want = [0.9, 0.9 - 3.0 * 0.1 * 1.9, 0.9];
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-14), "{path:?}: {got:?}");
    }
    // The option is spelled out only when on: specs written before it existed are unchanged.
    assert_eq!(
        canonical("adamw").unwrap().to_string(),
        "adamw:lr=0.001,beta1=0.9,beta2=0.999,eps=1e-8,weight_decay=0.01,amsgrad=false,maximize=false"
    );
    assert!(canonical("adamw:cautious=true").unwrap().to_string().ends_with(",cautious=true"));
    // A rule without momentum cannot be cautious: one clear error.
    let err = canonical("sgd:lr=0.1,cautious=true").unwrap_err().to_string();
    assert!(err.contains("cautious") && err.contains("momentum"), "{err}");
    let err = canonical("adagrad:cautious=true").unwrap_err().to_string();
    assert!(err.contains("no option `cautious`"), "{err}");
}

// ---------------------------------------------------------------- per-tensor optimizers

#[test]
fn a_per_tensor_optimizer_has_the_engines_guarantees() {
    let spec = "lamb:lr=0.01,weight_decay=0.01";
    // Save → load → step equals step, on a fresh optimizer over copied parameters.
    let a = store(DType::F32, 7);
    let mut oa = from_spec(spec, a.params().to_vec()).unwrap();
    train(oa.as_mut(), &a, 5);
    let saved = oa.export_state().unwrap();
    let mut b = ParamStore::new();
    for p in a.params() {
        b.insert(p.name(), p.value().copy().unwrap()).unwrap();
    }
    let mut ob = from_spec(spec, b.params().to_vec()).unwrap();
    ob.import_state(&saved).unwrap();
    train(oa.as_mut(), &a, 5);
    train(ob.as_mut(), &b, 5);
    assert_eq!(values(&a), values(&b));
    assert_eq!(oa.step_count(&a.params()[0]), Some(10));
    assert!(oa.buffer(&a.params()[0], "nu").unwrap().is_some());
    // No fused kernel: asking for one is an error that changes nothing.
    let before = snapshot(oa.as_ref(), &a);
    oa.set_kernel_path(KernelPath::Fused);
    let err = oa.step(&grads(&a)).unwrap_err().to_string();
    assert!(err.contains("no fused kernel"), "{err}");
    assert_eq!(snapshot(oa.as_ref(), &a), before);
    oa.set_kernel_path(KernelPath::Auto);
    // A non-finite gradient is refused, nothing moves.
    assert!(oa.step(&poisoned(&a, f64::NAN)).is_err());
    assert_eq!(snapshot(oa.as_ref(), &a), before);
    // A buffer of the wrong shape is refused, nothing changes.
    let mut bad = saved.clone();
    bad.tensors[0].1 = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let mut fresh = from_spec(spec, a.params().to_vec()).unwrap();
    assert!(fresh.import_state(&bad).unwrap_err().to_string().contains("[3]"));
    assert!(fresh.export_state().unwrap().tensors.is_empty());
    // Groups have their own options; the learning rate is required, as in optax.
    fresh.add_param_group(vec![], "lr=0.5").unwrap();
    assert_eq!(fresh.group_learning_rate(1), Some(0.5));
    assert!(from_spec("lamb", vec![]).err().unwrap().to_string().contains("`lr` is required"));
    // Muon takes matrices only: a vector is refused when the optimizer is built, naming it.
    let err = from_spec("muon", a.params().to_vec()).err().unwrap().to_string();
    assert!(err.contains("matrices only"), "{err}");
    let words =
        from_spec("muon:adjust_lr_fn=match_rms_adamw,ns_dtype=native", vec![]).unwrap().spec().to_string();
    assert!(words.contains("adjust_lr_fn=match_rms_adamw") && words.contains("ns_dtype=native"), "{words}");
    assert!(from_spec("muon:ns_dtype=f8", vec![]).err().unwrap().to_string().contains("bf16, native"));
}

// ---------------------------------------------------------------- closure-driven optimizers

/// `n` L-BFGS steps on the non-quadratic loss of [`train`], `sign` times it (−1 with maximize).
fn lbfgs_steps(opt: &mut dyn Optimizer, s: &ParamStore, n: usize, sign: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            opt.step_closure(&mut || {
                let g = grads(s);
                let mut out = Grads::default();
                for p in s.params() {
                    out.set(p, g.get(p).unwrap().affine(sign, 0.0).unwrap());
                }
                let loss: f64 = s
                    .params()
                    .iter()
                    .map(|p| {
                        p.value()
                            .sqr()
                            .unwrap()
                            .sum_all()
                            .unwrap()
                            .to_dtype(DType::F64)
                            .unwrap()
                            .to_scalar::<f64>()
                            .unwrap()
                    })
                    .sum();
                Ok((sign * loss, out))
            })
            .unwrap()
            .0
        })
        .collect()
}

#[test]
fn lbfgs_is_driven_by_a_closure_resumes_exactly_and_maximizes() {
    let spec = "lbfgs:lr=0.5,max_iter=4,history_size=3,line_search_fn=strong_wolfe";
    let a = store(DType::F64, 9);
    let mut oa = from_spec(spec, a.params().to_vec()).unwrap();
    // A plain step has nothing to re-evaluate.
    let err = oa.step(&grads(&a)).unwrap_err().to_string();
    assert!(err.contains("closure"), "{err}");
    assert!(oa.add_param_group(vec![], "lr=0.1").is_err());
    lbfgs_steps(oa.as_mut(), &a, 3, 1.0);
    let saved = oa.export_state().unwrap();
    let mut b = ParamStore::new();
    for p in a.params() {
        b.insert(p.name(), p.value().copy().unwrap()).unwrap();
    }
    let mut ob = from_spec(spec, b.params().to_vec()).unwrap();
    ob.import_state(&saved).unwrap();
    lbfgs_steps(oa.as_mut(), &a, 3, 1.0);
    lbfgs_steps(ob.as_mut(), &b, 3, 1.0);
    assert_eq!(values(&a), values(&b), "resumed from its history, L-BFGS continues exactly");
    // Maximizing −f is minimizing f, step for step.
    let (c, d) = (store(DType::F64, 9), store(DType::F64, 9));
    let mut oc = from_spec(spec, c.params().to_vec()).unwrap();
    let mut od = from_spec(&format!("{spec},maximize=true"), d.params().to_vec()).unwrap();
    lbfgs_steps(oc.as_mut(), &c, 2, 1.0);
    lbfgs_steps(od.as_mut(), &d, 2, -1.0);
    assert_eq!(values(&c), values(&d));
    assert_ne!(values(&c), values(&store(DType::F64, 9)), "nothing moved");
    // A closure's error leaves the parameters and history as they were.
    let before = (values(&c), oc.export_state().unwrap().scalars);
    let mut calls = 0;
    let err = oc.step_closure(&mut || {
        calls += 1;
        if calls > 2 {
            return Err(taper_optim::Error::InvalidArgument("closure failed".into()));
        }
        Ok((1.0, grads(&c)))
    });
    assert!(err.is_err());
    assert_eq!((values(&c), oc.export_state().unwrap().scalars), before);
}
