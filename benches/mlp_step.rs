//! One training step (forward, cross-entropy, backward, SGD update) of an MLP 784-256-10 on a
//! batch of 64; and its forward and backward alone, through our tape and through candle's own
//! backprop, side by side.
//!
//! `cargo bench --bench mlp_step`

#![allow(missing_docs)] // criterion's macros define undocumented public functions.

mod common;

use candle_core::{DType, Device, Tensor, Var as CVar};
use criterion::{criterion_group, criterion_main, Criterion};
use taper::nn::{cross_entropy, Builder, Linear, Module, ReLU, Sequential};
use taper::optim::from_spec;
use taper::{SeededRng, Tape, Var};

const LR: f64 = 0.01;

fn data() -> (Tensor, Tensor) {
    let mut rng = SeededRng::new(0);
    let x = rng.uniform((64, 784), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    let labels: Vec<u32> = (0..64).map(|i| (i * 7 % 10) as u32).collect();
    (x, Tensor::new(labels.as_slice(), &Device::Cpu).unwrap())
}

fn bench(c: &mut Criterion) {
    taper::tensor::init_cpu();
    let (x, labels) = data();
    let b = Builder::new(1, DType::F32, &Device::Cpu);
    let model = Sequential::new()
        .add(Linear::new(&mut b.pp("fc1"), 784, 256).unwrap())
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), 256, 10).unwrap());
    let store = b.into_store();
    let xv = Var::constant(x.clone());
    let mut opt = from_spec(&format!("sgd:lr={LR}"), store.trainable()).unwrap();

    let mut group = c.benchmark_group("mlp_784_256_10_batch64_step");
    // The training step PyTorch's `nn.Sequential` + `optim.SGD` step is compared with.
    group.bench_function("taper_step", |bench| {
        bench.iter(|| {
            let tape = Tape::new();
            let loss = cross_entropy(&model.forward(&tape, &xv).unwrap(), &labels).unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        })
    });
    // Forward and backward only, against candle's own backprop of the same computation: what the
    // tape costs.
    group.bench_function("taper_fwd_bwd", |bench| {
        bench.iter(|| {
            let tape = Tape::new();
            let loss = cross_entropy(&model.forward(&tape, &xv).unwrap(), &labels).unwrap();
            loss.backward().unwrap()
        })
    });

    // Our peak, read before candle's run adds its own.
    common::report_peak("mlp_784_256_10_batch64_step");

    let vars: Vec<CVar> = store.params().iter().map(|p| CVar::from_tensor(&p.value()).unwrap()).collect();
    group.bench_function("candle_fwd_bwd", |bench| {
        bench.iter(|| {
            let h = x.matmul(&vars[0].t().unwrap()).unwrap().broadcast_add(&vars[1]).unwrap().relu().unwrap();
            let logits = h.matmul(&vars[2].t().unwrap()).unwrap().broadcast_add(&vars[3]).unwrap();
            let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
            loss.backward().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
