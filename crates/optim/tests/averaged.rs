//! Weight averaging against `torch.optim.swa_utils.AveragedModel`: golden averages made by
//! `scripts/golden/averaged_model.py` (SGD with momentum on the optimizer goldens' problem,
//! the average updated after every step), and a saved average resumes exactly.

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use taper_autograd::{ParamStore, Tape, Var};
use taper_optim::{from_spec, AveragedModel, Averaging};

const PROBLEM: &str = include_str!("../../../tests/golden/optim_trajectories.json");
const GOLDEN: &str = include_str!("../../../tests/golden/averaged_model.json");
const NAMES: [&str; 3] = ["w1", "b1", "w2"];

fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

/// The problem's parameters and a closure-free loss.
fn setup() -> (ParamStore, Tensor, Tensor) {
    let golden: Value = serde_json::from_str(PROBLEM).unwrap();
    let p = &golden["problem"];
    let dims = |k: &str| -> Vec<usize> {
        p["shapes"][k].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
    };
    let t = |k: &str| Tensor::from_vec(floats(&p[k]), dims(k), &Device::Cpu).unwrap();
    let mut store = ParamStore::new();
    for n in NAMES {
        store.insert(n, t(n)).unwrap();
    }
    (store, t("X"), t("y"))
}

fn step(opt: &mut dyn taper_optim::Optimizer, store: &ParamStore, x: &Tensor, y: &Tensor) {
    let tape = Tape::new();
    let [w1, b1, w2] = NAMES.map(|n| tape.param(store.get(n).unwrap()));
    let h = Var::constant(x.clone()).matmul(&w1).unwrap().add(&b1).unwrap().tanh().unwrap();
    let l = h.matmul(&w2).unwrap().sub(&Var::constant(y.clone())).unwrap().sqr().unwrap().mean_all().unwrap();
    opt.step(&l.backward().unwrap()).unwrap();
}

fn host(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

#[test]
fn swa_and_ema_match_torch() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    for run in golden["runs"].as_array().unwrap() {
        let spec = run["spec"].as_str().unwrap();
        let (store, x, y) = setup();
        let mut opt = from_spec(run["optimizer"].as_str().unwrap(), store.trainable()).unwrap();
        let mut avg = AveragedModel::new(spec, store.trainable()).unwrap();
        for (t, want) in run["averaged"].as_array().unwrap().iter().enumerate() {
            step(opt.as_mut(), &store, &x, &y);
            avg.update().unwrap();
            for n in NAMES {
                let got = host(avg.averaged(store.get(n).unwrap()).unwrap());
                let want = floats(&want[n]);
                let e = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(e <= 1e-12, "{spec} after update {}: `{n}` off by {e:e}", t + 1);
            }
        }
        assert_eq!(avg.n_averaged(), 30);
    }
}

#[test]
fn a_saved_average_resumes_exactly_and_bad_states_change_nothing() {
    let (store, x, y) = setup();
    let mut opt = from_spec("sgd:lr=0.1", store.trainable()).unwrap();
    let mut avg = AveragedModel::new("ema:decay=0.8", store.trainable()).unwrap();
    for _ in 0..5 {
        step(opt.as_mut(), &store, &x, &y);
        avg.update().unwrap();
    }
    let saved = avg.export_state().unwrap();
    let mut again = AveragedModel::new("ema:decay=0.8", store.trainable()).unwrap();
    again.import_state(&saved).unwrap();
    for _ in 0..5 {
        step(opt.as_mut(), &store, &x, &y);
        avg.update().unwrap();
        again.update().unwrap();
    }
    assert_eq!(avg.export_state().unwrap(), again.export_state().unwrap());
    // Another averaging, a missing or misshapen tensor: refused, nothing changes.
    let mut swa = AveragedModel::new("swa", store.trainable()).unwrap();
    let before = swa.export_state().unwrap();
    assert!(swa.import_state(&saved).unwrap_err().to_string().contains("ema:decay=0.8"));
    let mut lacking = saved.clone();
    lacking.spec = "swa".into();
    lacking.tensors.pop();
    assert!(swa.import_state(&lacking).unwrap_err().to_string().contains("lacks"));
    assert_eq!(swa.export_state().unwrap(), before);
    // Specs: what PyTorch offers, nothing else.
    assert_eq!(Averaging::parse("ema").unwrap(), Averaging::Ema { decay: 0.999 });
    assert_eq!(Averaging::parse("ema:decay=0.5").unwrap().spec(), "ema:decay=0.5");
    for bad in ["ema:decay=1.5", "swa:decay=0.5", "mean"] {
        assert!(Averaging::parse(bad).is_err(), "{bad}");
    }
    // The averaged values go into a copy of the model for evaluation.
    let mut copy = ParamStore::new();
    for p in store.params() {
        copy.insert(p.name(), p.value().zeros_like().unwrap()).unwrap();
    }
    avg.copy_into(copy.params()).unwrap();
    assert_eq!(host(&copy.get("w1").unwrap().value()), host(avg.averaged(store.get("w1").unwrap()).unwrap()));
}
