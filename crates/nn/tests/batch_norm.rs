//! Batch norm against PyTorch's `nn.BatchNorm1d`/`nn.BatchNorm2d` (`tests/golden/batch_norm.json`,
//! made by `scripts/golden/batch_norm.py`): outputs, input/weight/bias gradients and running
//! statistics over 3 training steps, then evaluation mode, all in f64 to 1e-10.

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use taper_nn::{BatchNorm, Builder, Module, ParamStore, Tape, Var};

/// A nested JSON list as a flat vector.
fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number or list: {other}"),
    }
}

fn close(what: &str, got: &Tensor, want: &Value) {
    let got = got.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let want = flat(want);
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-10 * scale, "{what}: {g} vs {w}");
    }
}

/// One forward and backward pass of `bn` on `x` (weights `G`): checks the output and the
/// gradients against `want`.
fn pass(bn: &BatchNorm, shape: &[usize], want: &Value, what: &str) {
    let mut inputs = ParamStore::new();
    let x = inputs.insert("x", Tensor::from_vec(flat(&want["x"]), shape, &Device::Cpu).unwrap()).unwrap();
    let g = Tensor::from_vec(flat(&want["G"]), shape, &Device::Cpu).unwrap();
    let tape = Tape::new();
    let y = bn.forward(&tape, &tape.param(&x)).unwrap();
    close(&format!("{what}: y"), y.value(), &want["y"]);
    let grads = y.mul(&Var::constant(g)).unwrap().sum_all().unwrap().backward().unwrap();
    close(&format!("{what}: x grad"), grads.get(&x).unwrap(), &want["x_grad"]);
    if let (Some(w), Some(b)) = (&bn.weight, &bn.bias) {
        close(&format!("{what}: weight grad"), grads.get(w).unwrap(), &want["weight_grad"]);
        close(&format!("{what}: bias grad"), grads.get(b).unwrap(), &want["bias_grad"]);
    }
}

#[test]
fn matches_pytorch_in_training_and_evaluation() {
    let golden: Value = serde_json::from_str(include_str!("../../../tests/golden/batch_norm.json")).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 13);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let c = &case["config"];
        let shape: Vec<usize> =
            c["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let (eps, momentum, affine) =
            (c["eps"].as_f64().unwrap(), c["momentum"].as_f64(), c["affine"].as_bool().unwrap());
        let b = Builder::new(0, DType::F64, &Device::Cpu);
        let bn = match c["kind"].as_str().unwrap() {
            "1d" => BatchNorm::new_1d(&mut b.pp("bn"), shape[1], eps, momentum, affine),
            _ => BatchNorm::new_2d(&mut b.pp("bn"), shape[1], eps, momentum, affine),
        }
        .unwrap();
        if affine {
            let set = |p: &taper_nn::Param, k: &str| {
                p.set(Tensor::new(flat(&c[k]), &Device::Cpu).unwrap()).unwrap()
            };
            set(bn.weight.as_ref().unwrap(), "weight");
            set(bn.bias.as_ref().unwrap(), "bias");
        }
        for (k, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let what = format!("{name} step {k}");
            pass(&bn, &shape, step, &what);
            close(&format!("{what}: running mean"), &bn.running_mean.value(), &step["running_mean"]);
            close(&format!("{what}: running var"), &bn.running_var.value(), &step["running_var"]);
            assert_eq!(
                bn.batches_tracked().unwrap(),
                step["num_batches_tracked"].as_i64().unwrap(),
                "{what}"
            );
        }
        bn.set_training(false);
        let (rm, rv) = (bn.running_mean.value(), bn.running_var.value());
        pass(&bn, &shape, &case["eval"], &format!("{name} eval"));
        assert_eq!(
            bn.running_mean.value().to_vec1::<f64>().unwrap(),
            rm.to_vec1::<f64>().unwrap(),
            "eval leaves the estimates"
        );
        assert_eq!(bn.running_var.value().to_vec1::<f64>().unwrap(), rv.to_vec1::<f64>().unwrap());
    }
}

#[test]
fn bad_shapes_and_settings_are_refused_and_change_nothing() {
    let b = Builder::new(0, DType::F64, &Device::Cpu);
    let bn = BatchNorm::new_2d(&mut b.pp("bn"), 3, 1e-5, Some(0.1), true).unwrap();
    let tape = Tape::new();
    let wrong = Var::constant(Tensor::zeros((2, 3, 4), DType::F64, &Device::Cpu).unwrap());
    assert!(bn.forward(&tape, &wrong).unwrap_err().to_string().contains("[N, C, H, W]"));
    let one = Var::constant(Tensor::zeros((1, 3, 1, 1), DType::F64, &Device::Cpu).unwrap());
    assert!(bn.forward(&tape, &one).unwrap_err().to_string().contains("more than 1 value"));
    assert_eq!(bn.batches_tracked().unwrap(), 0);
    assert_eq!(bn.running_var.value().to_vec1::<f64>().unwrap(), [1.0; 3]);
    assert!(BatchNorm::new_1d(&mut b.pp("x"), 3, 1e-5, Some(1.5), true).is_err());
    assert!(BatchNorm::new_1d(&mut b.pp("y"), 3, -1.0, None, true).is_err());
    // The estimates are in the store (checkpoints keep them) but not trainable.
    let store = b.into_store();
    assert!(store.get("bn.running_mean").is_some() && store.get("bn.num_batches_tracked").is_some());
    assert_eq!(store.trainable().len(), 2);
}
