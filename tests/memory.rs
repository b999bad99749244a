//! A leak check: training the MLP for several hundred steps, the resident memory after warm-up
//! does not grow (nothing of step N stays alive in step N+1).

use candle_core::{DType, Device, Tensor};
use taper::nn::{cross_entropy, Builder, Linear, Module, ReLU, Sequential};
use taper::{optim, SeededRng, Tape, Var};

fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[test]
fn mlp_training_does_not_leak() {
    let Some(_) = rss_mib() else {
        eprintln!("skipped: no /proc/self/status");
        return;
    };
    let b = Builder::new(0, DType::F32, &Device::Cpu);
    let model = Sequential::new()
        .add(Linear::new(&mut b.pp("fc1"), 784, 256).unwrap())
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), 256, 10).unwrap());
    let params = b.into_store();
    let mut opt = optim::from_spec("adam:lr=0.001", params.trainable()).unwrap();
    let x = Var::constant(SeededRng::new(1).uniform((64, 784), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap());
    let labels =
        Tensor::new((0..64u32).map(|i| i * 7 % 10).collect::<Vec<_>>().as_slice(), &Device::Cpu).unwrap();
    let mut step = |n: usize| {
        for _ in 0..n {
            let tape = Tape::new();
            let loss = cross_entropy(&model.forward(&tape, &x).unwrap(), &labels).unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            assert!(tape.is_empty());
        }
    };
    step(100);
    let warm = rss_mib().unwrap();
    step(400);
    let after = rss_mib().unwrap();
    // One step's graph holds about 1 MiB (activations of 64x256 and 64x784, gradients); 400
    // leaked steps would add hundreds of MiB. Allow allocator noise.
    assert!(after - warm < 8.0, "resident memory grew from {warm:.1} MiB to {after:.1} MiB over 400 steps");
}
