//! The outside optimizer end to end: named in a spec, trained by Taper's loop on both paths,
//! checkpointed and resumed bit for bit.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_nn::{cross_entropy, Builder, Linear, Module, ReLU, Sequential};
use taper_optim::{from_spec, KernelPath};
use taper_tensor::SeededRng;
use taper_train::{checkpoint, train, Dataset, History, Loader, Task, TrainConfig};

struct Mlp(Sequential);

impl Task for Mlp {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        cross_entropy(&self.0.forward(tape, &Var::constant(batch.x.clone()))?, &batch.y)
    }
}

fn data() -> Dataset {
    let x = SeededRng::new(3).normal((120, 4), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    // A class the features decide: how many of the first two are positive.
    let rows = x.to_vec2::<f32>().unwrap();
    let y: Vec<u32> = rows.iter().map(|r| u32::from(r[0] > 0.0) + u32::from(r[1] > 0.0)).collect();
    Dataset::new(x, Tensor::new(y.as_slice(), &Device::Cpu).unwrap()).unwrap()
}

/// Trains a fresh model to `epochs` with Signum, optionally saving or resuming.
fn run(epochs: usize, path: KernelPath, save: Option<&Path>, resume: Option<&Path>) -> (ParamStore, History) {
    taper_extend_example::register().unwrap();
    let b = Builder::new(7, DType::F32, &Device::Cpu);
    let net = Sequential::new()
        .add(Linear::new(&mut b.pp("fc1"), 4, 16).unwrap())
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), 16, 3).unwrap());
    let store = b.into_store();
    let mut opt = from_spec("signum:lr=0.01,beta=0.9,weight_decay=0.01", store.trainable()).unwrap();
    opt.set_kernel_path(path);
    let mut cfg = TrainConfig::new(epochs, Loader::new(16, true, false, 5).unwrap());
    cfg.record_every = 32;
    cfg.save = save.map(Path::to_path_buf);
    cfg.resume = resume.map(Path::to_path_buf);
    let history = train(&mut Mlp(net), &store, opt.as_mut(), &data(), &cfg).unwrap();
    (store, history)
}

fn bits(store: &ParamStore) -> Vec<Vec<u32>> {
    store
        .params()
        .iter()
        .map(|p| {
            p.value().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
        })
        .collect()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taper-extend-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("ck.safetensors")
}

#[test]
fn signum_trains_through_a_spec_on_both_paths() {
    let (fused, h) = run(3, KernelPath::Fused, None, None);
    let (composed, _) = run(3, KernelPath::Composed, None, None);
    assert_eq!(bits(&fused), bits(&composed), "fused and composed paths agree");
    let (first, last) = (h.records[0].value, h.records.last().unwrap().value);
    assert!(last < first, "the loss falls: {first} -> {last}");
}

#[test]
fn signum_checkpoints_and_resumes_exactly() {
    let (straight, h) = run(3, KernelPath::Auto, None, None);
    let path = tmp("resume");
    run(1, KernelPath::Auto, Some(&path), None);
    let ck = checkpoint::read(&path).unwrap();
    assert!(ck.optim.groups[0].starts_with("signum:"), "{:?}", ck.optim.groups);
    assert!(ck.optim.tensors.iter().any(|(k, _)| k == "fc1.weight.momentum_buffer"));
    let (resumed, hr) = run(3, KernelPath::Auto, None, Some(&path));
    assert_eq!(bits(&straight), bits(&resumed));
    assert_eq!(h.points(), hr.points(), "the resumed curve is the straight run's");
}
