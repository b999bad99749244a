//! The tape's behaviour: accumulation, no-grad, detach, freezing, freeing, staleness, DOT export
//! and errors on bad input.

use candle_core::{DType, Device, Tensor};
use taper_autograd::{Error, Param, ParamStore, Tape, Var};

fn t(v: &[f64]) -> Tensor {
    Tensor::new(v, &Device::Cpu).unwrap()
}

fn vec(t: &Tensor) -> Vec<f64> {
    t.to_vec1::<f64>().unwrap()
}

#[test]
fn parameter_used_twice_accumulates() {
    let w = Param::new("w", t(&[3.0]));
    let tape = Tape::new();
    // tape.param twice gives the same leaf; w·w + w -> 2w + 1 = 7.
    let a = tape.param(&w);
    let b = tape.param(&w);
    let loss = a.mul(&b).unwrap().add(&a).unwrap().sum_all().unwrap();
    assert_eq!(vec(loss.backward().unwrap().get(&w).unwrap()), [7.0]);
}

#[test]
fn backward_empties_the_tape_and_values_go_stale() {
    let w = Param::new("w", t(&[1.0, 2.0]));
    let tape = Tape::new();
    let y = tape.param(&w).sqr().unwrap();
    let loss = y.sum_all().unwrap();
    assert_eq!(tape.len(), 3);
    let grads = loss.backward().unwrap();
    assert_eq!(vec(grads.get(&w).unwrap()), [2.0, 4.0]);
    assert!(tape.is_empty());
    // Using a value of the consumed graph is a clear error, not a wrong gradient.
    let err = y.add(&tape.param(&w)).unwrap_err();
    assert!(matches!(err, Error::StaleValue("add")), "{err}");
    assert!(matches!(loss.backward().unwrap_err(), Error::StaleValue(_)));
}

#[test]
fn no_grad_records_nothing() {
    let w = Param::new("w", t(&[1.0, 2.0]));
    let tape = Tape::new();
    let y = tape.no_grad(|| tape.param(&w).sqr().unwrap().sum_all().unwrap());
    assert!(tape.is_empty());
    assert!(!y.is_tracked());
    assert!(matches!(y.backward().unwrap_err(), Error::NoGraph));
    // Tracked values used inside no_grad produce constants too.
    let x = tape.param(&w);
    let z = tape.no_grad(|| x.exp().unwrap());
    assert!(!z.is_tracked());
    assert_eq!(tape.len(), 1);
    assert!(!tape.is_no_grad());
}

#[test]
fn detach_stops_the_gradient() {
    let w = Param::new("w", t(&[2.0]));
    let tape = Tape::new();
    let x = tape.param(&w);
    // d/dw [w · stop(w)] = stop(w) = 2.
    let loss = x.mul(&x.detach()).unwrap().sum_all().unwrap();
    assert_eq!(vec(loss.backward().unwrap().get(&w).unwrap()), [2.0]);
}

#[test]
fn constants_are_never_recorded() {
    let tape = Tape::new();
    let a = Var::constant(t(&[1.0, 2.0]));
    let b = a.exp().unwrap().mul(&a).unwrap();
    assert!(!b.is_tracked());
    assert!(tape.is_empty());
}

#[test]
fn frozen_parameter_gets_no_gradient_and_its_subgraph_is_not_recorded() {
    let mut store = ParamStore::new();
    let frozen = store.insert("frozen", t(&[1.0, 2.0])).unwrap();
    let live = store.insert("live", t(&[3.0])).unwrap();
    frozen.set_requires_grad(false);
    let tape = Tape::new();
    // The frozen branch is a pure function of the frozen parameter: nothing of it is recorded.
    let branch = tape.param(&frozen).exp().unwrap().log().unwrap().sum_all().unwrap();
    assert!(!branch.is_tracked());
    assert!(tape.is_empty());
    let loss = branch.mul(&tape.param(&live)).unwrap().sum_all().unwrap();
    assert_eq!(tape.len(), 3); // live leaf, mul, sum
    let grads = loss.backward().unwrap();
    assert!(grads.get(&frozen).is_none());
    assert_eq!(grads.len(), 1);
    assert!((vec(grads.get(&live).unwrap())[0] - 3.0).abs() < 1e-12);
}

#[test]
fn backward_on_non_scalar_is_an_error() {
    let w = Param::new("w", t(&[1.0, 2.0]));
    let tape = Tape::new();
    let err = tape.param(&w).sqr().unwrap().backward().unwrap_err();
    assert!(err.to_string().contains("scalar") && err.to_string().contains("[2]"), "{err}");
}

#[test]
fn mixing_tapes_is_an_error() {
    let w = Param::new("w", t(&[1.0]));
    let (t1, t2) = (Tape::new(), Tape::new());
    let err = t1.param(&w).add(&t2.param(&w)).unwrap_err();
    assert!(matches!(err, Error::MixedTapes("add")));
}

#[test]
fn dot_export_names_ops_and_params() {
    let w = Param::new("fc1.weight", t(&[1.0, 2.0]));
    let tape = Tape::new();
    let _loss = tape.param(&w).tanh().unwrap().sum_all().unwrap();
    let dot = tape.to_dot();
    assert!(dot.starts_with("digraph"));
    for needle in ["fc1.weight", "tanh", "sum", "n0 -> n1", "n1 -> n2"] {
        assert!(dot.contains(needle), "{needle} missing from\n{dot}");
    }
}

#[test]
fn shape_mismatches_are_errors_in_every_op() {
    let tape = Tape::new();
    let p = Param::new("p", Tensor::zeros((2, 3), DType::F64, &Device::Cpu).unwrap());
    let x = tape.param(&p);
    let y = Var::constant(Tensor::zeros((4, 5), DType::F64, &Device::Cpu).unwrap());
    let img = Var::constant(Tensor::zeros((1, 1, 4, 4), DType::F64, &Device::Cpu).unwrap());
    let k = Var::constant(Tensor::zeros((2, 3, 3, 3), DType::F64, &Device::Cpu).unwrap());
    let f32v = Var::constant(Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap());
    let bad_ids = Tensor::new(&[7u32], &Device::Cpu).unwrap();
    let results: Vec<(&str, taper_autograd::Result<Var>)> = vec![
        ("add", x.add(&y)),
        ("sub", x.sub(&y)),
        ("mul", x.mul(&y)),
        ("div", x.div(&y)),
        ("add dtype", x.add(&f32v)),
        ("matmul", x.matmul(&y)),
        ("matmul rank", x.sum(1).unwrap().matmul(&y)),
        ("reshape", x.reshape((4, 2))),
        ("transpose", x.transpose(0, 5)),
        ("narrow", x.narrow(1, 2, 2)),
        ("cat", Var::cat(&[&x, &y], 0)),
        ("cat empty", Var::cat(&[], 0)),
        ("sum", x.sum(4)),
        ("max", x.max(2)),
        ("softmax", x.softmax(3)),
        ("index_select", x.index_select(&bad_ids, 0)),
        ("gather", x.gather(&Tensor::new(&[[9u32, 0, 0], [0, 0, 0]], &Device::Cpu).unwrap(), 1)),
        ("conv2d channels", img.conv2d(&k, 1, 0)),
        ("conv2d rank", x.conv2d(&k, 1, 0)),
        (
            "conv2d stride 0",
            img.conv2d(&Var::constant(Tensor::zeros((1, 1, 3, 3), DType::F64, &Device::Cpu).unwrap()), 0, 0),
        ),
        (
            "conv2d too big",
            img.conv2d(&Var::constant(Tensor::zeros((1, 1, 5, 5), DType::F64, &Device::Cpu).unwrap()), 1, 0),
        ),
        ("max_pool2d", img.max_pool2d(5, 1)),
        ("avg_pool2d", img.avg_pool2d(2, 0)),
        ("clamp", x.clamp(1.0, 0.0)),
        ("flatten", x.flatten_from(3)),
        ("t", x.sum_all().unwrap().t()),
    ];
    for (name, r) in results {
        let err = r.err().unwrap_or_else(|| panic!("{name}: expected an error"));
        let msg = err.to_string();
        assert!(!msg.is_empty(), "{name}");
    }
}

#[test]
fn mixed_dtypes_are_one_clear_error_in_every_op() {
    let z = |dims: &[usize], dtype: DType| Var::constant(Tensor::zeros(dims, dtype, &Device::Cpu).unwrap());
    let (a, b) = (z(&[2, 3], DType::F64), z(&[2, 3], DType::F32));
    let (img, ker) = (z(&[1, 1, 4, 4], DType::F64), z(&[1, 1, 3, 3], DType::F32));
    let w32 = z(&[3, 3], DType::F32);
    let bias32 = z(&[3], DType::F32);
    let w64 = z(&[3, 3], DType::F64);
    let results: Vec<(&str, Result<Var, Error>)> = vec![
        ("add", a.add(&b)),
        ("sub", a.sub(&b)),
        ("mul", a.mul(&b)),
        ("div", a.div(&b)),
        ("matmul", a.matmul(&w32)),
        ("linear", a.linear(&w32, None)),
        ("linear bias", a.linear(&w64, Some(&bias32))),
        ("conv2d", img.conv2d(&ker, 1, 0)),
        ("mse_loss", a.mse_loss(&b)),
    ];
    for (what, r) in results {
        let err = r.err().unwrap_or_else(|| panic!("{what}: mixed dtypes accepted")).to_string();
        assert!(
            err.contains("dtype mismatch") && err.contains("F32") && err.contains("F64"),
            "{what}: {err}"
        );
    }
}
