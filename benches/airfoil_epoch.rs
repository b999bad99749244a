//! One airfoil epoch as d2l's `train_ch7` runs it: 150 steps of batch 10 (SGD lr=0.05) on 1500
//! rows of 5 features, with the loss over all rows evaluated every 100 examples. Random data of
//! the airfoil's shape, so the benchmark needs no data file.
//!
//! `cargo bench --bench airfoil_epoch`

#![allow(missing_docs)] // criterion's macros define undocumented public functions.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use taper::train::Dataset;
use taper::SeededRng;
use taper_lab::experiments::airfoil::{run, Form};

fn bench(c: &mut Criterion) {
    taper::tensor::init_cpu();
    let mut rng = SeededRng::new(0);
    let x = rng.normal((1500, 5), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    let y = rng.normal(1500, 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    let data = Dataset::new(x, y).unwrap();
    let mut group = c.benchmark_group("airfoil_epoch");
    group.bench_function("taper_sgd", |b| b.iter(|| run(&data, "sgd:lr=0.05", Form::Scratch, 0, 1).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
