//! The training loop's `logdir`: every step's loss, gradient norm, update ratio and learning
//! rate, each curve point and epoch, read back from the event files; the run itself unchanged.

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_nn::{cross_entropy, Builder, Linear, Module, ReLU, Sequential};
use taper_optim::from_spec;
use taper_tensor::SeededRng;
use taper_train::tensorboard::read_scalars;
use taper_train::{train, Dataset, Loader, Task, TrainConfig};

struct Mlp(Sequential);

impl Task for Mlp {
    fn loss(&mut self, tape: &Tape, batch: &Dataset) -> taper_autograd::Result<Var> {
        cross_entropy(&self.0.forward(tape, &Var::constant(batch.x.clone()))?, &batch.y)
    }
}

fn run(logdir: Option<std::path::PathBuf>) -> (Vec<f64>, ParamStore) {
    let mut rng = SeededRng::new(11);
    let x = rng.normal((120, 8), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    let y: Vec<u32> = (0..120).map(|i| (i * 7 % 3) as u32).collect();
    let data = Dataset::new(x, Tensor::new(y.as_slice(), &Device::Cpu).unwrap()).unwrap();
    let b = Builder::new(5, DType::F32, &Device::Cpu);
    let net = Sequential::new()
        .add(Linear::new(&mut b.pp("fc1"), 8, 16).unwrap())
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), 16, 3).unwrap());
    let store = b.into_store();
    let mut opt = from_spec("sgd:lr=0.1,momentum=0.9", store.trainable()).unwrap();
    let mut cfg = TrainConfig::new(2, Loader::new(20, true, false, 3).unwrap())
        .with_scheduler("step:step_size=1,gamma=0.5")
        .unwrap();
    cfg.record_every = 60;
    cfg.progress_bar = false;
    cfg.clip_norm = Some(1.0);
    cfg.logdir = logdir;
    let h = train(&mut Mlp(net), &store, &mut opt, &data, &cfg).unwrap();
    (h.records.iter().map(|r| r.value).collect(), store)
}

#[test]
fn a_logged_run_writes_every_step_and_point_and_trains_the_same() {
    let dir = std::env::temp_dir().join(format!("taper-train-tb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (logged, a) = run(Some(dir.clone()));
    let (plain, b) = run(None);
    assert_eq!(logged, plain, "logging changes nothing");
    for (p, q) in a.trainable().iter().zip(b.trainable()) {
        let d =
            (p.value() - q.value()).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0, "{}", p.name());
    }
    let points = read_scalars(&dir).unwrap();
    let count = |tag: &str| points.iter().filter(|p| p.tag == tag).count();
    // 2 epochs of 6 batches; a point every 60 examples (3 steps); the schedule halves the rate
    // after the first epoch.
    for tag in ["train/loss", "train/grad_norm", "train/update_ratio", "lr/group_0"] {
        assert_eq!(count(tag), 12, "{tag}");
    }
    assert_eq!((count("train/window_loss"), count("train/epoch_loss")), (4, 2));
    let window: Vec<f32> = points.iter().filter(|p| p.tag == "train/window_loss").map(|p| p.value).collect();
    assert_eq!(window, plain.iter().map(|&v| v as f32).collect::<Vec<_>>(), "the curve's points");
    let lr: Vec<(i64, f32)> =
        points.iter().filter(|p| p.tag == "lr/group_0").map(|p| (p.step, p.value)).collect();
    assert_eq!((lr[0], lr[6]), ((1, 0.1), (7, 0.05)));
    assert!(points
        .iter()
        .filter(|p| p.tag == "train/grad_norm")
        .all(|p| p.value > 0.0 && p.value.is_finite()));
    assert!(points.iter().filter(|p| p.tag == "train/update_ratio").all(|p| p.value > 0.0 && p.value < 1.0));
    std::fs::remove_dir_all(&dir).unwrap();
}
