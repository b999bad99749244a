//! One optimizer step on 10M f32 parameters (one tensor), for each optimizer, on the fused
//! in-place CPU kernel; RMSprop also on the composed path for comparison.
//!
//! `cargo bench --bench optim_step`; `benches/compare_pytorch.py` runs it beside PyTorch.

#![allow(missing_docs)] // criterion's macros define undocumented public functions.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use taper::optim::{from_spec, KernelPath, NonFinite};
use taper::{Grads, ParamStore, SeededRng};

const N: usize = 10_000_000;

fn bench(c: &mut Criterion) {
    taper::tensor::init_cpu();
    let mut group = c.benchmark_group("optim_step_10M_f32");
    group.sample_size(20);
    let cases = [
        ("sgd_momentum", "sgd:lr=0.01,momentum=0.9", KernelPath::Auto),
        ("adagrad", "adagrad:lr=0.01", KernelPath::Auto),
        ("rmsprop", "rmsprop:lr=0.01", KernelPath::Auto),
        ("adadelta", "adadelta:lr=1.0", KernelPath::Auto),
        ("adam", "adam:lr=0.001", KernelPath::Auto),
        ("adamw", "adamw:lr=0.001,weight_decay=0.01", KernelPath::Auto),
        ("radam", "radam:lr=0.001", KernelPath::Auto),
        ("rprop", "rprop:lr=0.01", KernelPath::Auto),
        ("lion", "lion:lr=0.0001", KernelPath::Auto),
        ("rmsprop_composed", "rmsprop:lr=0.01", KernelPath::Composed),
        // Without the NaN/Inf check of every gradient (one read pass), as PyTorch's optimizers.
        ("sgd_momentum_unchecked", "sgd:lr=0.01,momentum=0.9", KernelPath::Auto),
        ("adagrad_unchecked", "adagrad:lr=0.01", KernelPath::Auto),
        ("adam_unchecked", "adam:lr=0.001", KernelPath::Auto),
        ("adamw_unchecked", "adamw:lr=0.001,weight_decay=0.01", KernelPath::Auto),
    ];
    for (name, spec, path) in cases {
        // A fresh parameter per optimizer, so that no case inherits another's trajectory.
        let mut rng = SeededRng::new(0);
        let mut store = ParamStore::new();
        let p = store.insert("p", rng.normal(N, 0.0, 1.0, DType::F32, &Device::Cpu).unwrap()).unwrap();
        let mut grads = Grads::default();
        grads.set(&p, rng.normal(N, 0.0, 1.0, DType::F32, &Device::Cpu).unwrap());
        let mut opt = from_spec(spec, store.params().to_vec()).unwrap();
        opt.set_kernel_path(path);
        if name.ends_with("_unchecked") {
            opt.set_non_finite(NonFinite::Unchecked);
        }
        group.bench_function(name, |b| b.iter(|| opt.step(&grads).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
