//! A 2-layer MLP trained with plain gradient descent for 100 steps through our tape ends at the
//! same loss as the same training through candle's own backprop (f32, to 1e-5).

use candle_core::{DType, Device, Tensor, Var as CVar};
use taper::nn::{mse_loss, Builder, Linear, Module, ReLU, Sequential};
use taper::{SeededRng, Tape, Var};

const STEPS: usize = 100;
const LR: f64 = 0.05;

fn problem() -> (Tensor, Tensor) {
    let mut rng = SeededRng::new(42);
    let x = rng.normal((64, 10), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    let teacher = rng.normal((10, 1), 0.0, 1.0, DType::F32, &Device::Cpu).unwrap();
    let y = x.matmul(&teacher).unwrap().tanh().unwrap();
    (x, y)
}

fn train_ours(x: &Tensor, y: &Tensor) -> (Vec<f64>, Vec<Tensor>) {
    let b = Builder::new(7, DType::F32, &Device::Cpu);
    let model = Sequential::new()
        .add(Linear::new(&mut b.pp("fc1"), 10, 32).unwrap())
        .add(ReLU)
        .add(Linear::new(&mut b.pp("fc2"), 32, 1).unwrap());
    let store = b.into_store();
    let init: Vec<Tensor> = store.params().iter().map(|p| p.value().copy().unwrap()).collect();
    let (x, y) = (Var::constant(x.clone()), Var::constant(y.clone()));
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let tape = Tape::new();
        let loss = mse_loss(&model.forward(&tape, &x).unwrap(), &y).unwrap();
        losses.push(loss.to_scalar_f64().unwrap());
        let grads = loss.backward().unwrap();
        for p in store.params() {
            let g = grads.get(p).unwrap();
            p.set((p.value() - (g * LR).unwrap()).unwrap()).unwrap();
        }
    }
    let tape = Tape::new();
    losses.push(mse_loss(&model.forward(&tape, &x).unwrap(), &y).unwrap().to_scalar_f64().unwrap());
    (losses, init)
}

fn train_candle(x: &Tensor, y: &Tensor, init: &[Tensor]) -> Vec<f64> {
    let vars: Vec<CVar> = init.iter().map(|t| CVar::from_tensor(t).unwrap()).collect();
    let forward = |vars: &[CVar]| -> Tensor {
        let h = x.matmul(&vars[0].t().unwrap()).unwrap().broadcast_add(&vars[1]).unwrap().relu().unwrap();
        let out = h.matmul(&vars[2].t().unwrap()).unwrap().broadcast_add(&vars[3]).unwrap();
        (out - y).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let mut losses = Vec::new();
    for _ in 0..STEPS {
        let loss = forward(&vars);
        losses.push(loss.to_scalar::<f32>().unwrap() as f64);
        let grads = loss.backward().unwrap();
        for v in &vars {
            let g = grads.get(v).unwrap();
            v.set(&(v.as_tensor() - (g * LR).unwrap()).unwrap()).unwrap();
        }
    }
    losses.push(forward(&vars).to_scalar::<f32>().unwrap() as f64);
    losses
}

#[test]
fn mlp_gradient_descent_matches_candle_backprop() {
    let (x, y) = problem();
    let (ours, init) = train_ours(&x, &y);
    let theirs = train_candle(&x, &y, &init);
    let (first, last) = (ours[0], *ours.last().unwrap());
    assert!(last < 0.5 * first, "training must make progress: {first} -> {last}");
    for (step, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "step {step}: ours {a} vs candle {b}");
    }
}
