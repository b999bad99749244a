//! The small GPT: shapes, its loss at initialization, every gradient against central finite
//! differences in f64 (the tied embedding and ignored targets included), and that it learns.

use candle_core::{DType, Device, Tensor};
use taper_autograd::Tape;
use taper_nn::{Builder, Gpt, GptConfig};
use taper_optim::from_spec;
use taper_tensor::SeededRng;

fn config(dropout: f64) -> GptConfig {
    GptConfig { vocab_size: 11, block_size: 8, n_layer: 2, n_head: 2, n_embd: 8, dropout, bias: true }
}

fn batch(seed: u64) -> (Tensor, Tensor) {
    let mut rng = SeededRng::new(seed);
    let mut draw = || (0..2 * 7).map(|_| (rng.uniform_f64() * 11.0) as u32).collect::<Vec<u32>>();
    let (ids, next) = (draw(), draw());
    (
        Tensor::from_vec(ids, (2, 7), &Device::Cpu).unwrap(),
        Tensor::from_vec(next, (2, 7), &Device::Cpu).unwrap(),
    )
}

#[test]
fn shapes_and_the_loss_at_initialization() {
    let mut b = Builder::new(1, DType::F32, &Device::Cpu);
    let gpt = Gpt::new(&mut b, config(0.0), 0).unwrap();
    let (x, y) = batch(2);
    assert_eq!(gpt.logits(&Tape::new(), &x).unwrap().dims(), [2, 7, 11]);
    // Small weights: the prediction is nearly uniform, the loss nearly ln(vocab).
    let loss = gpt.loss(&Tape::new(), &x, &y, None).unwrap().to_scalar_f64().unwrap();
    assert!((loss - 11f64.ln()).abs() < 0.05, "{loss}");
    // nanoGPT's names, the head tied (no separate lm_head parameter).
    let names: Vec<String> = b.store().params().iter().map(|p| p.name().to_string()).collect();
    assert!(names.contains(&"transformer.h.1.attn.c_attn.weight".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("lm_head")));
    // A context longer than block_size, a bad shape: errors.
    let long = Tensor::zeros((1, 9), DType::U32, &Device::Cpu).unwrap();
    assert!(gpt.logits(&Tape::new(), &long).unwrap_err().to_string().contains("block_size"));
    assert!(Gpt::new(&mut b, GptConfig { n_head: 3, ..config(0.0) }, 0).is_err());
}

#[test]
fn every_gradient_matches_finite_differences() {
    let mut b = Builder::new(3, DType::F64, &Device::Cpu);
    let gpt = Gpt::new(&mut b, config(0.0), 0).unwrap();
    let store = b.into_store();
    let (x, y) = batch(4);
    // One target ignored, as padding would be.
    let mut t: Vec<i64> = y.flatten_all().unwrap().to_dtype(DType::I64).unwrap().to_vec1().unwrap();
    t[3] = -100;
    let y = Tensor::from_vec(t, (2, 7), &Device::Cpu).unwrap();
    let loss = |gpt: &Gpt| gpt.loss(&Tape::new(), &x, &y, Some(-100)).unwrap();
    let grads = loss(&gpt).backward().unwrap();
    let mut rng = SeededRng::new(5);
    for p in store.params() {
        let g = grads.get(p).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let v0 = p.value().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for _ in 0..3 {
            let i = (rng.uniform_f64() * v0.len() as f64) as usize;
            let at = |d: f64| {
                let mut v = v0.clone();
                v[i] += d;
                p.set(Tensor::from_vec(v, p.dims(), &Device::Cpu).unwrap()).unwrap();
                let l = loss(&gpt).to_scalar_f64().unwrap();
                p.set(Tensor::from_vec(v0.clone(), p.dims(), &Device::Cpu).unwrap()).unwrap();
                l
            };
            let h = 1e-5;
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let err = (g[i] - fd).abs() / fd.abs().max(1e-4);
            assert!(err < 1e-5, "{}[{i}]: ours {} finite differences {fd} ({err:e})", p.name(), g[i]);
        }
    }
}

#[test]
fn it_learns_a_repeating_sequence_and_dropout_obeys_the_mode() {
    let mut b = Builder::new(7, DType::F32, &Device::Cpu);
    let gpt = Gpt::new(&mut b, config(0.1), 0).unwrap();
    let store = b.into_store();
    let seq: Vec<u32> = (0..16).map(|i| (i * 3 % 11) as u32).collect();
    let x = Tensor::from_vec(seq[..8].to_vec(), (1, 8), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(seq[1..9].to_vec(), (1, 8), &Device::Cpu).unwrap();
    let mut opt = from_spec("adamw:lr=0.01,beta2=0.99,weight_decay=0.1", store.trainable()).unwrap();
    let first = gpt.loss(&Tape::new(), &x, &y, None).unwrap().to_scalar_f64().unwrap();
    for _ in 0..150 {
        let l = gpt.loss(&Tape::new(), &x, &y, None).unwrap();
        opt.step(&l.backward().unwrap()).unwrap();
    }
    gpt.set_training(false);
    let eval = |gpt: &Gpt| gpt.loss(&Tape::new(), &x, &y, None).unwrap().to_scalar_f64().unwrap();
    let last = eval(&gpt);
    assert!(last < 0.2 * first, "{first} -> {last}");
    assert_eq!(eval(&gpt), last, "evaluation is deterministic");
    gpt.set_training(true);
    assert_ne!(eval(&gpt), eval(&gpt), "training draws new dropout masks");
}
