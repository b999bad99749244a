//! Checkpoints: exact resume through the training loop, and every kind of bad file.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_nn::{cross_entropy, Builder, Linear, Module, ReLU, Sequential};
use taper_optim::from_spec;
use taper_optim::schedule::SchedulerState;
use taper_tensor::SeededRng;
use taper_train::checkpoint::{self, Progress};
use taper_train::{train, Dataset, Loader, Task, TrainConfig};

struct Mlp(Sequential);

impl Task for Mlp {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        cross_entropy(&self.0.forward(tape, &Var::constant(batch.x.clone()))?, &batch.y)
    }
}

fn data() -> Dataset {
    let mut rng = SeededRng::new(11);
    let x = rng.normal((300, 8), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    let y: Vec<u32> = (0..300).map(|i| (i * 7 % 3) as u32).collect();
    Dataset::new(x, Tensor::new(y.as_slice(), &Device::Cpu).unwrap()).unwrap()
}

fn model() -> (Mlp, ParamStore) {
    let b = Builder::new(5, DType::F32, &Device::Cpu);
    let net = Sequential::new()
        .add(Linear::new(&mut b.pp("fc1"), 8, 16).unwrap())
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), 16, 3).unwrap());
    (Mlp(net), b.into_store())
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taper-ck-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("ck.safetensors")
}

fn bits(store: &ParamStore) -> Vec<Vec<u32>> {
    store
        .params()
        .iter()
        .map(|p| {
            p.value().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
        })
        .collect()
}

/// Trains to `epochs` epochs, optionally resuming, with a fresh model and optimizer, as a new
/// process would.
fn run(
    spec: &str,
    epochs: usize,
    save: Option<&Path>,
    resume: Option<&Path>,
    save_every: Option<u64>,
) -> ParamStore {
    let (mut task, store) = model();
    let mut opt = from_spec(spec, store.trainable()).unwrap();
    let mut cfg = TrainConfig::new(epochs, Loader::new(32, true, false, 3).unwrap());
    cfg.save = save.map(Path::to_path_buf);
    cfg.resume = resume.map(Path::to_path_buf);
    cfg.save_every = save_every;
    cfg.scheduler = Some(taper_optim::schedule::parse("step:step_size=1,gamma=0.5").unwrap());
    train(&mut task, &store, opt.as_mut(), &data(), &cfg).unwrap();
    store
}

#[test]
fn resume_is_bit_identical() {
    for spec in ["rmsprop:lr=0.01,momentum=0.9", "adam:lr=0.01"] {
        let straight = run(spec, 2, None, None, None);
        let path = tmp(&spec[..4]);
        run(spec, 1, Some(&path), None, None);
        let resumed = run(spec, 2, None, Some(&path), None);
        assert_eq!(bits(&straight), bits(&resumed), "{spec}: epoch boundary");
        // Mid-epoch: a checkpoint every 7 steps; the last one written falls inside epoch 2.
        let mid = tmp(&format!("{}-mid", &spec[..4]));
        run(spec, 2, Some(&mid), None, Some(7));
        let ck = checkpoint::read(&mid).unwrap();
        assert_eq!(ck.progress.epoch, 2, "the end-of-epoch save comes last");
        let partial = tmp(&format!("{}-partial", &spec[..4]));
        // Stop after step 14 of epoch 2 (10 batches per epoch → step 14 is batch 4 of epoch 2).
        {
            let (mut task, store) = model();
            let mut opt = from_spec(spec, store.trainable()).unwrap();
            let mut cfg = TrainConfig::new(1, Loader::new(32, true, false, 3).unwrap());
            cfg.scheduler = Some(taper_optim::schedule::parse("step:step_size=1,gamma=0.5").unwrap());
            train(&mut task, &store, opt.as_mut(), &data(), &cfg).unwrap();
            // Four more steps of epoch 2 by hand, exactly as the loop would take them (the
            // scheduler stepped at the end of epoch 1: the rate is halved already).
            assert_eq!(opt.learning_rate(), 0.005);
            let loader = Loader::new(32, true, false, 3).unwrap();
            for ids in loader.epoch_batches(300, 1).into_iter().take(4) {
                let tape = Tape::new();
                let loss = task.loss(&tape, &data().select(&ids).unwrap()).unwrap();
                opt.step(&loss.backward().unwrap()).unwrap();
            }
            let sched = SchedulerState::from([
                ("last_epoch".to_string(), 1.0),
                ("base_lr.0".to_string(), 0.01),
                ("initial_lr.0".to_string(), 0.01),
            ]);
            let p = Progress {
                step: 14,
                epoch: 1,
                batch_in_epoch: 4,
                seed: 3,
                scheduler: Some(("step:step_size=1,gamma=0.5".into(), sched)),
                ..Progress::default()
            };
            checkpoint::save(&partial, &store, opt.as_ref(), &p).unwrap();
        }
        let resumed_mid = run(spec, 2, None, Some(&partial), None);
        assert_eq!(bits(&straight), bits(&resumed_mid), "{spec}: mid-epoch");
    }
}

fn saved(name: &str) -> (PathBuf, ParamStore) {
    let path = tmp(name);
    let store = run("adam:lr=0.01", 1, Some(&path), None, None);
    (path, store)
}

#[test]
fn truncated_at_any_byte_is_an_error() {
    let (path, _) = saved("trunc");
    let bytes = std::fs::read(&path).unwrap();
    let cut = path.with_extension("cut");
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let (_, store) = model();
        let mut opt = from_spec("adam:lr=0.01", store.trainable()).unwrap();
        let before = bits(&store);
        let err = checkpoint::load(&cut, &store, opt.as_mut()).unwrap_err().to_string();
        assert!(err.contains("ck.cut"), "{len}: {err}");
        assert_eq!(bits(&store), before, "nothing changed");
    }
}

#[test]
fn wrong_shape_other_optimizer_and_foreign_files_are_clear_errors() {
    let (path, _) = saved("wrong");
    // A model whose fc2 has 4 outputs.
    let b = Builder::new(5, DType::F32, &Device::Cpu);
    let _ = Linear::new(&mut b.pp("fc1"), 8, 16).unwrap();
    let _ = Linear::new(&mut b.pp("fc2"), 16, 4).unwrap();
    let store = b.into_store();
    let mut opt = from_spec("adam:lr=0.01", store.trainable()).unwrap();
    let err = checkpoint::load(&path, &store, opt.as_mut()).unwrap_err().to_string();
    assert!(err.contains("fc2.weight") && err.contains("[3, 16]") && err.contains("[4, 16]"), "{err}");
    // The same model with another optimizer.
    let (_, store) = model();
    let mut sgd = from_spec("sgd:lr=0.1,momentum=0.9", store.trainable()).unwrap();
    let err = checkpoint::load(&path, &store, sgd.as_mut()).unwrap_err().to_string();
    assert!(err.contains("`adam`") && err.contains("`sgd`"), "{err}");
    // A safetensors file that is not a Taper checkpoint.
    let foreign = path.with_extension("foreign");
    let t = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&std::collections::HashMap::from([("w".to_string(), t)]), &foreign)
        .unwrap();
    let err = checkpoint::load(&foreign, &store, sgd.as_mut()).unwrap_err().to_string();
    assert!(err.contains("not a Taper checkpoint"), "{err}");
    let err = checkpoint::load(path.with_extension("none"), &store, sgd.as_mut()).unwrap_err().to_string();
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn an_interrupted_save_leaves_the_previous_checkpoint_intact() {
    let (path, store) = saved("atomic");
    let good = std::fs::read(&path).unwrap();
    // A crash between writing the temporary file and the rename leaves a stray temporary beside
    // the checkpoint; the checkpoint itself is the old one.
    let stray = path.parent().unwrap().join(".ck.safetensors.tmp-999999");
    std::fs::write(&stray, &good[..good.len() / 2]).unwrap();
    // A save that fails (its temporary file cannot be created: a directory is in the way).
    std::fs::create_dir_all(
        path.parent().unwrap().join(format!(".ck.safetensors.tmp-{}", std::process::id())),
    )
    .unwrap();
    let opt = from_spec("adam:lr=0.01", store.trainable()).unwrap();
    assert!(checkpoint::save(&path, &store, opt.as_ref(), &Progress::default()).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), good);
    let (_, fresh) = model();
    let mut opt = from_spec("adam:lr=0.01", fresh.trainable()).unwrap();
    checkpoint::load(&path, &fresh, opt.as_mut()).unwrap();
    assert_eq!(bits(&fresh), bits(&store));
}

/// Trains 3 epochs with `scheduler` (per step or per epoch), straight or stopped at step 13 and
/// resumed; returns the parameters' bits and the final learning rate.
fn scheduled(scheduler: &str, every_step: bool, stop: bool, name: &str) -> (Vec<Vec<u32>>, f64) {
    let path = tmp(name);
    let go = |max_steps: Option<u64>, resume: bool| {
        let (mut task, store) = model();
        let mut opt = from_spec("sgd:lr=0.05,momentum=0.9", store.trainable()).unwrap();
        let mut cfg = TrainConfig::new(3, Loader::new(32, true, false, 3).unwrap());
        cfg.scheduler = Some(taper_optim::schedule::parse(scheduler).unwrap());
        cfg.scheduler_every_step = every_step;
        cfg.save = Some(path.clone());
        cfg.max_steps = max_steps;
        cfg.resume = resume.then(|| path.clone());
        train(&mut task, &store, opt.as_mut(), &data(), &cfg).unwrap();
        (bits(&store), opt.learning_rate())
    };
    if stop {
        go(Some(13), false);
        go(None, true)
    } else {
        go(None, false)
    }
}

#[test]
fn a_resumed_schedule_is_the_uninterrupted_one() {
    for (i, (spec, every_step)) in [
        ("onecycle:max_lr=0.1,total_steps=30", true),
        ("plateau:patience=0,factor=0.5", true),
        ("cosine_warm_restarts:t_0=2", false),
        ("sequential:schedulers=[linear(start_factor=0.5,total_iters=1),exponential(gamma=0.5)],milestones=[1]", false),
    ]
    .into_iter()
    .enumerate()
    {
        let straight = scheduled(spec, every_step, false, &format!("sched-{i}"));
        let resumed = scheduled(spec, every_step, true, &format!("sched-{i}-r"));
        assert_eq!(straight, resumed, "{spec}");
        assert_ne!(straight.1, 0.05, "{spec}: the schedule moved nothing");
    }
    // A checkpoint resumed under another scheduler is refused.
    let (mut task, store) = model();
    let path = tmp("sched-0");
    let mut opt = from_spec("sgd:lr=0.05,momentum=0.9", store.trainable()).unwrap();
    let mut cfg = TrainConfig::new(3, Loader::new(32, true, false, 3).unwrap());
    cfg.scheduler = Some(taper_optim::schedule::parse("cosine:t_max=3").unwrap());
    cfg.resume = Some(path);
    let err = train(&mut task, &store, opt.as_mut(), &data(), &cfg).unwrap_err().to_string();
    assert!(err.contains("saved with scheduler `onecycle"), "{err}");
}

#[test]
fn schedule_free_resumes_exactly_and_ends_at_its_evaluation_point() {
    let go = |epochs: usize, save: Option<&Path>, resume: Option<&Path>, every: Option<u64>| {
        let (mut task, store) = model();
        let mut opt = from_spec("schedulefree_adamw:lr=0.01", store.trainable()).unwrap();
        let mut cfg = TrainConfig::new(epochs, Loader::new(32, true, false, 3).unwrap());
        cfg.record_every = 100;
        cfg.save = save.map(Path::to_path_buf);
        cfg.resume = resume.map(Path::to_path_buf);
        cfg.save_every = every;
        let h = train(&mut task, &store, opt.as_mut(), &data(), &cfg).unwrap();
        assert!(!opt.train_mode(), "the loop ends in evaluation mode");
        (bits(&store), h.points())
    };
    let straight = go(3, None, None, None);
    let path = tmp("sf");
    go(1, Some(&path), None, Some(7));
    let ck = checkpoint::read(&path).unwrap();
    assert_eq!(ck.optim.scalars.get("train_mode"), Some(&0.0), "saved at the evaluation point");
    assert_eq!(go(3, None, Some(&path), None), straight);
    // Before any step there is no `z`: switching moves nothing. Other optimizers never leave
    // training mode.
    let (_, store) = model();
    let mut opt = from_spec("schedulefree_sgd:lr=0.1", store.trainable()).unwrap();
    let x = bits(&store);
    opt.set_train_mode(false).unwrap();
    assert_eq!(bits(&store), x);
    let mut adam = from_spec("adam", store.trainable()).unwrap();
    adam.set_train_mode(false).unwrap();
    assert!(adam.train_mode());
}

#[test]
fn a_weight_average_rides_in_checkpoints_and_resumes_exactly() {
    let path = tmp("avg");
    let go = |max_steps: Option<u64>, resume: bool, average: &str| {
        let (mut task, store) = model();
        let mut opt = from_spec("sgd:lr=0.05,momentum=0.9", store.trainable()).unwrap();
        let mut cfg = TrainConfig::new(3, Loader::new(32, true, false, 3).unwrap());
        cfg.average = Some(taper_optim::Averaging::parse(average).unwrap());
        cfg.save = Some(path.clone());
        cfg.max_steps = max_steps;
        cfg.resume = resume.then(|| path.clone());
        train(&mut task, &store, opt.as_mut(), &data(), &cfg)
            .map(|h| h.averaged.unwrap().export_state().unwrap())
    };
    let straight = go(None, false, "ema:decay=0.9").unwrap();
    assert_eq!(straight.n_averaged, 30);
    go(Some(13), false, "ema:decay=0.9").unwrap();
    assert_eq!(checkpoint::read(&path).unwrap().progress.average.unwrap().n_averaged, 13);
    assert_eq!(go(None, true, "ema:decay=0.9").unwrap(), straight);
    // Resuming under another averaging is refused.
    go(Some(13), false, "ema:decay=0.9").unwrap();
    let err = go(None, true, "swa").unwrap_err().to_string();
    assert!(err.contains("ema:decay=0.9"), "{err}");
}

#[test]
fn header_holds_the_run_metadata() {
    let (path, _) = saved("meta");
    let ck = checkpoint::read(&path).unwrap();
    assert_eq!(ck.progress.epoch, 1);
    assert_eq!(ck.progress.step, 10);
    assert_eq!(ck.progress.seed, 3);
    assert_eq!(ck.optim.groups.len(), 1);
    // The scheduler stepped at the end of the epoch, before the save (PyTorch's order).
    assert!(ck.optim.groups[0].starts_with("adam:lr=0.005,"), "{}", ck.optim.groups[0]);
    let (spec, state) = ck.progress.scheduler.as_ref().unwrap();
    assert_eq!(spec, "step:step_size=1,gamma=0.5");
    assert_eq!(state["last_epoch"], 1.0);
    assert!(ck.model.contains_key("fc1.weight"));
    assert!(ck.optim.tensors.iter().any(|(k, _)| k == "fc2.bias.exp_avg_sq"));
}

#[test]
fn every_parameter_group_is_recorded_and_checked() {
    let (_, store) = model();
    let ps = store.trainable();
    let (first, rest) = ps.split_at(2);
    let mut opt = from_spec("sgd:lr=0.1,momentum=0.9", first.to_vec()).unwrap();
    opt.add_param_group(rest.to_vec(), "lr=0.01,nesterov=true").unwrap();
    let path = tmp("groups");
    checkpoint::save(&path, &store, opt.as_ref(), &Progress::default()).unwrap();
    let ck = checkpoint::read(&path).unwrap();
    assert_eq!(ck.optim.groups.len(), 2);
    assert!(ck.optim.groups[1].contains("nesterov=true"), "{:?}", ck.optim.groups);

    // Loading into an optimizer with one group: refused, the model untouched.
    let (_, fresh) = model();
    let before = bits(&fresh);
    let mut single = from_spec("sgd:lr=0.1,momentum=0.9", fresh.trainable()).unwrap();
    let err = checkpoint::load(&path, &fresh, single.as_mut()).unwrap_err().to_string();
    assert!(err.contains("2 parameter group"), "{err}");
    assert_eq!(bits(&fresh), before);
    // Into two groups: every group's options come back.
    let fps = fresh.trainable();
    let mut two = from_spec("sgd:lr=0.5,momentum=0.9", fps[..2].to_vec()).unwrap();
    two.add_param_group(fps[2..].to_vec(), "lr=0.5").unwrap();
    checkpoint::load(&path, &fresh, two.as_mut()).unwrap();
    assert_eq!(two.group_spec(1), opt.group_spec(1));
    assert_eq!(bits(&fresh), bits(&store));
}

/// Trains as [`run`] does, recording a curve point every `record_every` examples (0: per epoch),
/// stopping after `max_steps` steps; returns the history.
fn curve(
    epochs: usize,
    save: Option<&Path>,
    resume: Option<&Path>,
    max_steps: Option<u64>,
    record_every: usize,
) -> taper_train::History {
    let (mut task, store) = model();
    let mut opt = from_spec("adam:lr=0.01", store.trainable()).unwrap();
    let mut cfg = TrainConfig::new(epochs, Loader::new(32, true, false, 3).unwrap());
    cfg.save = save.map(Path::to_path_buf);
    cfg.resume = resume.map(Path::to_path_buf);
    cfg.max_steps = max_steps;
    cfg.record_every = record_every;
    train(&mut task, &store, opt.as_mut(), &data(), &cfg).unwrap()
}

fn points(h: &taper_train::History) -> Vec<(u64, u64)> {
    h.records.iter().map(|r| (r.epoch.to_bits(), r.value.to_bits())).collect()
}

#[test]
fn a_resumed_runs_curve_is_the_uninterrupted_runs() {
    for record_every in [64, 100, 0] {
        let straight = curve(3, None, None, None, record_every);
        assert!(straight.records.len() >= 3, "{record_every}: {:?}", straight.records);
        // 1 epoch, then resumed for the rest.
        let path = tmp(&format!("curve-{record_every}"));
        curve(1, Some(&path), None, None, record_every);
        let resumed = curve(3, None, Some(&path), None, record_every);
        assert_eq!(points(&resumed), points(&straight), "record_every {record_every}: epoch boundary");
        // Stopped inside epoch 2 (step 14 = batch 4 of 10), then resumed, twice over.
        let mid = tmp(&format!("curve-mid-{record_every}"));
        let first = curve(3, Some(&mid), None, Some(14), record_every);
        assert_eq!(first.steps, 14);
        let ck = checkpoint::read(&mid).unwrap();
        assert_eq!((ck.progress.epoch, ck.progress.batch_in_epoch), (1, 4));
        curve(3, Some(&mid), Some(&mid), Some(23), record_every);
        let resumed = curve(3, None, Some(&mid), None, record_every);
        assert_eq!(points(&resumed), points(&straight), "record_every {record_every}: mid-epoch");
        assert_eq!(resumed.epoch_loss.last(), straight.epoch_loss.last(), "the split epoch's mean loss");
        assert_eq!(resumed.steps, straight.steps);
    }
}

/// Batch norm's running estimates and its i64 batch count are frozen parameters: a checkpoint
/// keeps them, and a load restores them.
#[test]
fn batch_norm_estimates_and_count_round_trip() {
    let make = || {
        let b = Builder::new(0, DType::F64, &Device::Cpu);
        let bn = taper_nn::BatchNorm::new_1d(&mut b.pp("bn"), 3, 1e-5, None, true).unwrap();
        (bn, b.into_store())
    };
    let (bn, store) = make();
    let x = Var::constant(
        Tensor::new(&[[1.0f64, 2.0, 3.0], [4.0, -1.0, 0.5], [2.0, 2.0, 9.0]], &Device::Cpu).unwrap(),
    );
    for _ in 0..2 {
        bn.forward(&Tape::new(), &x).unwrap();
    }
    let opt = from_spec("sgd:lr=0.1", store.trainable()).unwrap();
    let path = tmp("bn-estimates");
    checkpoint::save(&path, &store, opt.as_ref(), &Progress::default()).unwrap();
    let (fresh, fresh_store) = make();
    let mut fresh_opt = from_spec("sgd:lr=0.1", fresh_store.trainable()).unwrap();
    checkpoint::load(&path, &fresh_store, fresh_opt.as_mut()).unwrap();
    assert_eq!(fresh.batches_tracked().unwrap(), 2);
    assert_eq!(
        fresh.running_var.value().to_vec1::<f64>().unwrap(),
        bn.running_var.value().to_vec1::<f64>().unwrap()
    );
    assert_eq!(
        fresh.running_mean.value().to_vec1::<f64>().unwrap(),
        bn.running_mean.value().to_vec1::<f64>().unwrap()
    );
}

/// A schedule given as a closure trains through the loop (the configuration holds scheduler
/// values, not only specs).
#[test]
fn a_closure_scheduler_trains_through_the_loop() {
    let (mut task, store) = model();
    let mut opt = from_spec("sgd:lr=0.08", store.trainable()).unwrap();
    let mut cfg = TrainConfig::new(2, Loader::new(32, true, false, 3).unwrap());
    let halve: taper_optim::schedule::EpochFn = std::sync::Arc::new(|epoch| 0.5f64.powi(epoch as i32));
    cfg.scheduler = Some(Box::new(taper_optim::schedule::LambdaLr::new(vec![halve])));
    cfg.progress_bar = false;
    train(&mut task, &store, &mut opt, &data(), &cfg).unwrap();
    assert_eq!(opt.learning_rate(), 0.02, "stepped after each of the two epochs");
    // The configuration is reusable: the scheduler it holds is copied for each run.
    let (mut task, store) = model();
    let mut opt = from_spec("sgd:lr=0.08", store.trainable()).unwrap();
    train(&mut task, &store, &mut opt, &data(), &cfg).unwrap();
    assert_eq!(opt.learning_rate(), 0.02);
}

/// A hand-written loop's save and restore in one call: model, optimizer, scheduler and average
/// together; another scheduler spec is refused and nothing changes.
#[test]
fn a_hand_written_loop_saves_and_restores_everything_in_one_call() {
    use taper_optim::schedule::Scheduler;
    use taper_optim::AveragedModel;
    let steps = |task: &mut Mlp,
                 opt: &mut Box<dyn taper_optim::Optimizer>,
                 sched: &mut Scheduler,
                 avg: &mut AveragedModel,
                 n| {
        for _ in 0..n {
            let tape = Tape::new();
            let loss = task.loss(&tape, &data()).unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            sched.step(opt).unwrap();
            avg.update().unwrap();
        }
    };
    let fresh = || {
        let (task, store) = model();
        let mut opt = from_spec("adamw:lr=0.01", store.trainable()).unwrap();
        let sched = Scheduler::new("onecycle:max_lr=0.02,total_steps=20", &mut opt).unwrap();
        let avg = AveragedModel::new("ema:decay=0.9", store.trainable()).unwrap();
        (task, store, opt, sched, avg)
    };
    let (mut task, store, mut opt, mut sched, mut avg) = fresh();
    steps(&mut task, &mut opt, &mut sched, &mut avg, 12);
    let straight = bits(&store);
    let path = tmp("hand-loop");
    let (mut task, store, mut opt, mut sched, mut avg) = fresh();
    steps(&mut task, &mut opt, &mut sched, &mut avg, 5);
    let at = Progress { step: 5, ..Progress::default() };
    checkpoint::save_training(&path, &store, &opt, Some(&sched), Some(&avg), &at).unwrap();
    let (mut task, store, mut opt, mut sched, mut avg) = fresh();
    let back = checkpoint::load_training(&path, &store, &mut opt, Some(&mut sched), Some(&mut avg)).unwrap();
    assert_eq!(back.step, 5);
    steps(&mut task, &mut opt, &mut sched, &mut avg, 7);
    assert_eq!(bits(&store), straight, "resumed by hand, bit for bit");
    // Another scheduler spec: refused, and the model, optimizer and scheduler are untouched.
    let (_, store, mut opt, _, _) = fresh();
    let mut other = Scheduler::new("cosine:t_max=20", &mut opt).unwrap();
    let before = (bits(&store), opt.learning_rate(), other.state());
    let err =
        checkpoint::load_training(&path, &store, &mut opt, Some(&mut other), None).unwrap_err().to_string();
    assert!(err.contains("onecycle") && err.contains("cosine"), "{err}");
    assert_eq!((bits(&store), opt.learning_rate(), other.state()), before);
}

/// Lookahead (its slow weights and step count mid-cycle: 10 steps an epoch, a sync every 3 or
/// 4), SAM (through the loop's closure) and the two nested resume through a checkpoint bit for
/// bit.
#[test]
fn wrappers_resume_bit_exactly_mid_cycle() {
    let specs = [
        "lookahead:k=3,alpha=0.5,optimizer=adam(lr=0.01)",
        "sam:rho=0.05,optimizer=sgd(lr=0.05,momentum=0.9)",
        "lookahead:k=4,optimizer=sam(rho=0.1,adaptive=true,optimizer=adamw(lr=0.01))",
    ];
    for (i, spec) in specs.iter().enumerate() {
        let straight = run(spec, 2, None, None, None);
        let path = tmp(&format!("wrapper-{i}"));
        let first = run(spec, 1, Some(&path), None, None);
        assert_ne!(bits(&first), bits(&straight));
        let ck = checkpoint::read(&path).unwrap();
        if spec.starts_with("lookahead") {
            assert!(ck.optim.tensors.iter().any(|(k, _)| k.ends_with(".lookahead_slow_buff")), "{spec}");
            assert_eq!(ck.optim.scalars.get("lookahead_step"), Some(&10.0));
        }
        let resumed = run(spec, 2, None, Some(&path), None);
        assert_eq!(bits(&straight), bits(&resumed), "{spec}");
        // Resuming a Lookahead checkpoint with its inner optimizer alone is refused.
        if spec.starts_with("lookahead") {
            let (_, store) = model();
            let mut adam = from_spec("adam:lr=0.01", store.trainable()).unwrap();
            let err = checkpoint::load(&path, &store, adam.as_mut()).unwrap_err().to_string();
            assert!(err.contains("lookahead"), "{err}");
        }
    }
}

/// A task that asks to stop once its recorded loss is below a threshold.
struct StopBelow(Mlp, f64, u32);

impl Task for StopBelow {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        self.0.loss(tape, batch)
    }
    fn should_stop(&mut self, history: &taper_train::History) -> bool {
        self.2 += 1;
        history.records.last().is_some_and(|r| r.value < self.1)
    }
}

#[test]
fn a_task_stops_training_early_and_the_checkpoint_holds_where() {
    let go = |threshold: f64, save: Option<&Path>| {
        let (task, store) = model();
        let mut task = StopBelow(task, threshold, 0);
        let mut opt = from_spec("adam:lr=0.05", store.trainable()).unwrap();
        let mut cfg = TrainConfig::new(4, Loader::new(32, true, false, 3).unwrap());
        cfg.record_every = 64;
        cfg.progress_bar = false;
        cfg.save = save.map(Path::to_path_buf);
        let h = train(&mut task, &store, opt.as_mut(), &data(), &cfg).unwrap();
        (h, task.2, bits(&store))
    };
    let (full, asked, _) = go(f64::NEG_INFINITY, None);
    assert_eq!(full.steps, 40, "4 epochs of 10 batches when never stopped");
    assert_eq!(asked as usize, full.records.len(), "asked after every curve point");
    // Stop at the first point below the loss recorded at the fifth point.
    let threshold = full.records[4].value + 1e-12;
    let first = full.records.iter().position(|r| r.value < threshold).unwrap();
    let path = tmp("stop");
    let (stopped, _, params) = go(threshold, Some(&path));
    assert_eq!(stopped.records.len(), first + 1, "no point after the one that stopped it");
    assert!(stopped.steps < full.steps);
    let (_, store) = model();
    let mut opt = from_spec("adam:lr=0.05", store.trainable()).unwrap();
    let progress = checkpoint::load(&path, &store, opt.as_mut()).unwrap();
    assert_eq!(progress.step, stopped.steps, "the checkpoint is where it stopped");
    assert_eq!(bits(&store), params);
}
