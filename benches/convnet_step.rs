//! One training step (forward, cross-entropy, backward, Adam update) of the documents' ConvNet on
//! a batch of 64, through our tape.
//!
//! `cargo bench --bench convnet_step`

#![allow(missing_docs)] // criterion's macros define undocumented public functions.

mod common;

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use taper::optim::from_spec;
use taper::train::Task;
use taper::Tape;
use taper_lab::experiments::mnist::{build, synthetic_batch, Classifier, Model};

fn bench(c: &mut Criterion) {
    taper::tensor::init_cpu();
    let (net, store) = build(Model::ConvNet, 0, DType::F32, &Device::Cpu).unwrap();
    let batch = synthetic_batch(64, DType::F32, &Device::Cpu).unwrap();
    let mut opt = from_spec("adam:lr=0.001", store.trainable()).unwrap();
    let mut task = Classifier { net };
    let mut group = c.benchmark_group("convnet_batch64_step");
    group.sample_size(10);
    group.bench_function("taper_tape", |b| {
        b.iter(|| {
            let tape = Tape::new();
            let loss = task.loss(&tape, &batch).unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        })
    });
    group.finish();
    common::report_peak("convnet_batch64_step");
}

criterion_group!(benches, bench);
criterion_main!(benches);
