//! Checkpoints written by an earlier Taper resume bit-exactly in this one.
//!
//! `tests/fixtures/checkpoints/` holds checkpoints written mid-run by main 07bbea6 (before the
//! optimizer core was redesigned) and, in `expected.safetensors`, the parameters (and averaged
//! parameters) that same code reached when it resumed each of them to the end. This test resumes
//! every fixture with today's code and demands those bits. The fixtures were made by
//! `write_fixtures` below (`cargo test --release -p taper-train --test legacy_checkpoints --
//! --ignored`); rerunning it overwrites them with the current code's, which is only right when the
//! format or a result changes on purpose.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_nn::{cross_entropy, Builder, Linear, Module, ReLU, Sequential};
use taper_optim::{from_spec, Optimizer};
use taper_tensor::SeededRng;
use taper_train::{train, Dataset, Loader, Task, TrainConfig};

struct Mlp(Sequential);

impl Task for Mlp {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        cross_entropy(&self.0.forward(tape, &Var::constant(batch.x.clone()))?, &batch.y)
    }
}

/// One fixture: an optimizer (with its extra groups), a scheduler and an averaging, trained for
/// `EPOCHS` epochs, saved after `stop` steps.
struct Case {
    name: &'static str,
    dtype: DType,
    optimizer: &'static str,
    /// A second parameter group (`fc2.*`) with these overrides.
    group: Option<&'static str>,
    scheduler: Option<&'static str>,
    every_step: bool,
    average: Option<&'static str>,
    /// Saved after this many steps.
    stop: u64,
}

const EPOCHS: usize = 3;
/// Saved mid-epoch: 10 batches per epoch, so step 14 is batch 4 of epoch 2.
const MID: u64 = 14;
/// Saved at the end of epoch 2. Schedule-Free saves at an epoch boundary: its checkpoint holds
/// the evaluation point `x`, and in f32 the move `y → x → y` of a mid-epoch save is not exact to
/// the last bit, so only where the uninterrupted run also evaluates does resuming give its bits.
const EPOCH_END: u64 = 20;

const CASES: &[Case] = &[
    Case {
        name: "adam_onecycle_ema",
        dtype: DType::F32,
        optimizer: "adam:lr=0.01,amsgrad=true",
        group: None,
        scheduler: Some("onecycle:max_lr=0.05,total_steps=40"),
        every_step: true,
        average: Some("ema:decay=0.9"),
        stop: MID,
    },
    Case {
        name: "adamw_two_groups_cosine",
        dtype: DType::F32,
        optimizer: "adamw:lr=0.01,weight_decay=0.1",
        group: Some("lr=0.003,weight_decay=0"),
        scheduler: Some("cosine:t_max=3"),
        every_step: false,
        average: None,
        stop: MID,
    },
    Case {
        name: "sgd_nesterov_swa_f64",
        dtype: DType::F64,
        optimizer: "sgd:lr=0.05,momentum=0.9,nesterov=true,weight_decay=1e-3",
        group: None,
        scheduler: Some("step:step_size=1,gamma=0.5"),
        every_step: false,
        average: Some("swa"),
        stop: MID,
    },
    Case {
        name: "rmsprop_centered_plateau",
        dtype: DType::F32,
        optimizer: "rmsprop:lr=0.01,momentum=0.9,centered=true,maximize=false",
        group: None,
        scheduler: Some("plateau:patience=0,factor=0.5"),
        every_step: false,
        average: None,
        stop: MID,
    },
    Case {
        name: "nadam_decoupled",
        dtype: DType::F32,
        optimizer: "nadam:lr=0.01,weight_decay=0.01,decoupled_weight_decay=true",
        group: None,
        scheduler: None,
        every_step: false,
        average: None,
        stop: MID,
    },
    Case {
        name: "asgd",
        dtype: DType::F64,
        optimizer: "asgd:lr=0.05,t0=5",
        group: None,
        scheduler: None,
        every_step: false,
        average: None,
        stop: MID,
    },
    Case {
        name: "schedulefree_adamw",
        dtype: DType::F32,
        optimizer: "schedulefree_adamw:lr=0.01,warmup_steps=5,weight_decay=0.01",
        group: None,
        scheduler: None,
        every_step: false,
        average: None,
        stop: EPOCH_END,
    },
    Case {
        name: "lbfgs_strong_wolfe",
        dtype: DType::F64,
        optimizer: "lbfgs:lr=0.5,max_iter=4,history_size=5,line_search_fn=strong_wolfe",
        group: None,
        scheduler: None,
        every_step: false,
        average: None,
        stop: MID,
    },
    Case {
        name: "adafactor",
        dtype: DType::F32,
        optimizer: "adafactor:lr=0.01,weight_decay=0.01",
        group: None,
        scheduler: Some("linear:start_factor=0.5,total_iters=2"),
        every_step: false,
        average: None,
        stop: MID,
    },
    Case {
        name: "lamb",
        dtype: DType::F32,
        optimizer: "lamb:lr=0.01,weight_decay=0.01",
        group: None,
        scheduler: None,
        every_step: false,
        average: None,
        stop: MID,
    },
];

fn data(dtype: DType) -> Dataset {
    let mut rng = SeededRng::new(11);
    let x = rng.normal((300, 8), 0.0, 1.0, dtype, &Device::Cpu).unwrap();
    let y: Vec<u32> = (0..300).map(|i| (i * 7 % 3) as u32).collect();
    Dataset::new(x, Tensor::new(y.as_slice(), &Device::Cpu).unwrap()).unwrap()
}

fn model(dtype: DType) -> (Mlp, ParamStore) {
    let b = Builder::new(5, dtype, &Device::Cpu);
    let net = Sequential::new()
        .add(Linear::new(&mut b.pp("fc1"), 8, 16).unwrap())
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), 16, 3).unwrap());
    (Mlp(net), b.into_store())
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkpoints")
}

/// The case's optimizer over a fresh model, with its groups.
fn optimizer(case: &Case, store: &ParamStore) -> Box<dyn Optimizer> {
    let params = store.trainable();
    let (first, second): (Vec<_>, Vec<_>) = params.into_iter().partition(|p| p.name().starts_with("fc1"));
    match case.group {
        Some(overrides) => {
            let mut opt = from_spec(case.optimizer, first).unwrap();
            opt.add_param_group(second, overrides).unwrap();
            opt
        }
        None => from_spec(case.optimizer, first.into_iter().chain(second).collect()).unwrap(),
    }
}

/// Trains the case to `EPOCHS` epochs from scratch (saving at `case.stop` when `save` is given) or
/// from `resume`; returns the parameters and the averaged parameters.
fn run(case: &Case, save: Option<&Path>, resume: Option<&Path>) -> Vec<(String, Tensor)> {
    let (mut task, store) = model(case.dtype);
    let mut opt = optimizer(case, &store);
    let mut cfg = TrainConfig::new(EPOCHS, Loader::new(32, true, false, 3).unwrap());
    cfg.scheduler = case.scheduler.map(|s| taper_optim::schedule::parse(s).unwrap());
    cfg.scheduler_every_step = case.every_step;
    cfg.average = case.average.map(|a| taper_optim::Averaging::parse(a).unwrap());
    cfg.progress_bar = false;
    cfg.save = save.map(Path::to_path_buf);
    cfg.max_steps = save.map(|_| case.stop);
    cfg.resume = resume.map(Path::to_path_buf);
    let hist = train(&mut task, &store, opt.as_mut(), &data(case.dtype), &cfg).unwrap();
    let mut out: Vec<(String, Tensor)> = store
        .params()
        .iter()
        .map(|p| (format!("{}.{}", case.name, p.name()), p.value().copy().unwrap()))
        .collect();
    if let Some(avg) = hist.averaged {
        for p in store.params() {
            if let Some(t) = avg.averaged(p) {
                out.push((format!("{}.avg.{}", case.name, p.name()), t.copy().unwrap()));
            }
        }
    }
    out
}

fn bits(t: &Tensor) -> Vec<u64> {
    let flat = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => flat.to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits() as u64).collect(),
        _ => flat.to_vec1::<f64>().unwrap().iter().map(|x| x.to_bits()).collect(),
    }
}

#[test]
fn checkpoints_of_an_earlier_taper_resume_bit_exactly() {
    let expected = candle_core::safetensors::load(fixtures().join("expected.safetensors"), &Device::Cpu)
        .expect("fixtures: tests/fixtures/checkpoints/expected.safetensors");
    for case in CASES {
        let ck = fixtures().join(format!("{}.safetensors", case.name));
        let got = run(case, None, Some(&ck));
        let want: Vec<_> = expected.keys().filter(|k| k.starts_with(&format!("{}.", case.name))).collect();
        assert_eq!(got.len(), want.len(), "{}: parameters and averages", case.name);
        for (name, t) in &got {
            let w = expected.get(name).unwrap_or_else(|| panic!("{}: no expected `{name}`", case.name));
            assert_eq!(
                bits(t),
                bits(w),
                "{}: `{name}` differs from the earlier Taper's resumed run",
                case.name
            );
        }
    }
}

/// Writes the fixtures with the current code (see the module documentation).
#[test]
#[ignore]
fn write_fixtures() {
    std::fs::create_dir_all(fixtures()).unwrap();
    let mut expected = Vec::new();
    for case in CASES {
        let ck = fixtures().join(format!("{}.safetensors", case.name));
        run(case, Some(&ck), None);
        let resumed = run(case, None, Some(&ck));
        // The fixture must be a faithful mid-run save: resuming it gives the uninterrupted run.
        let whole = run(case, None, None);
        for ((n, a), (_, b)) in resumed.iter().zip(&whole) {
            assert_eq!(bits(a), bits(b), "{}: `{n}` resumed differs from the whole run", case.name);
        }
        expected.extend(resumed);
    }
    let refs: Vec<(&str, &Tensor)> = expected.iter().map(|(k, t)| (k.as_str(), t)).collect();
    safetensors::serialize_to_file(refs, None, &fixtures().join("expected.safetensors")).unwrap();
}
