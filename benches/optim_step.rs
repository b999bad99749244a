//! One optimizer step on 10M f32 parameters (one tensor), for each optimizer, on the fused
//! in-place CPU kernel; RMSprop also on the composed path for comparison. The `memory_pass_k`
//! rows are the floor: the same engine and kernel moving the same bytes as an optimizer with `k`
//! state buffers (read the gradient, read and write the parameter and each buffer) with no
//! arithmetic to speak of; an optimizer's row over the row of its buffer count is its cost above
//! memory traffic.
//!
//! `cargo bench --bench optim_step`; `benches/compare_pytorch.py` runs it beside PyTorch.

#![allow(missing_docs)] // criterion's macros define undocumented public functions.

use candle_core::{DType, Device};
use criterion::{criterion_group, criterion_main, Criterion};
use taper::optim::{
    from_spec, Buffer, Elem, Engine, Fuse, Hyper, KernelPath, NonFinite, Optimizer, Result, Rule, Steps,
};
use taper::{Grads, ParamStore, SeededRng};

const N: usize = 10_000_000;

/// A plain memory pass over an optimizer's bytes: `p ← p + c·g`, `s ← s + c` for `K` buffers.
#[derive(Debug, Clone, Hyper)]
#[hyper(name = "memory_pass")]
struct MemoryPass<const K: usize> {
    /// Unused: the pass moves every element by `1e-9`.
    #[hp(default = 0.0, range = ">= 0")]
    lr: f64,
}

impl<const K: usize> Rule for MemoryPass<K> {
    type Coeffs = ();
    type Fused = Fuse;
    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(["b0", "b1", "b2", "b3"][..K].iter().map(|n| Buffer::zeros(n)).collect())
    }
    fn coeffs(&self, _step: u64) {}
}

impl<const K: usize, E: Elem> Steps<E> for MemoryPass<K> {
    #[inline(always)]
    fn update(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        *p = p.add_scaled(g, 1e-9)?;
        for b in s.iter_mut() {
            *b = b.affine(1.0, 1e-9)?;
        }
        Ok(())
    }
}

fn memory_pass<const K: usize>(p: Vec<taper::Param>) -> Box<dyn Optimizer> {
    Box::new(Engine::new(MemoryPass::<K>::default(), p).unwrap())
}

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
        ("adamax", "adamax:lr=0.002", KernelPath::Auto),
        ("nadam", "nadam:lr=0.002", KernelPath::Auto),
        ("asgd", "asgd:lr=0.01", KernelPath::Auto),
        ("adabelief", "adabelief:lr=0.001", KernelPath::Auto),
        ("yogi", "yogi:lr=0.01", KernelPath::Auto),
        ("adan", "adan:lr=0.001", KernelPath::Auto),
        ("schedulefree_adamw", "schedulefree_adamw:lr=0.0025", KernelPath::Auto),
        ("schedulefree_sgd", "schedulefree_sgd:lr=1.0", KernelPath::Auto),
        ("adopt", "adopt:lr=0.001", KernelPath::Auto),
        ("laprop", "laprop:lr=0.0004,weight_decay=0.01", KernelPath::Auto),
        ("madgrad", "madgrad:lr=0.01", KernelPath::Auto),
        ("ademamix", "ademamix:lr=0.001", KernelPath::Auto),
        ("adamw_cautious", "adamw:lr=0.001,weight_decay=0.01,cautious=true", KernelPath::Auto),
        ("memory_pass_1", "", KernelPath::Auto),
        ("memory_pass_2", "", KernelPath::Auto),
        ("memory_pass_3", "", KernelPath::Auto),
        ("memory_pass_4", "", KernelPath::Auto),
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
        let params = store.params().to_vec();
        let mut opt = match name {
            "memory_pass_1" => memory_pass::<1>(params),
            "memory_pass_2" => memory_pass::<2>(params),
            "memory_pass_3" => memory_pass::<3>(params),
            "memory_pass_4" => memory_pass::<4>(params),
            _ => from_spec(spec, params).unwrap(),
        };
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
