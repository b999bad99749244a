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

/// The same model in PyTorch (`scripts/golden/gpt_parity.py`): its weights loaded by name, the
/// loss and every gradient match to 1e-10 in f64, and 20 AdamW steps with nanoGPT's groups too.
#[test]
fn matches_the_same_model_in_pytorch() {
    // f64: loss and gradients to 1e-10, the 20 AdamW steps to 1e-9.
    parity(DType::F64, include_str!("../../../tests/golden/gpt_parity.json"), 1e-10, 1e-9);
}

#[test]
fn matches_the_same_model_in_pytorch_in_f32() {
    // f32 against PyTorch in f32 (the same weights, cast): 1e-5 throughout.
    parity(DType::F32, include_str!("../../../tests/golden/gpt_parity_f32.json"), 1e-5, 1e-5);
}

/// Loads the golden weights (cast to `dtype`), then checks the loss and every gradient to
/// `tol` (relative) and 20 AdamW steps with nanoGPT's groups to `step_tol`.
fn parity(dtype: DType, golden: &str, tol: f64, step_tol: f64) {
    let golden: serde_json::Value = serde_json::from_str(golden).unwrap();
    let weights = candle_core::safetensors::load(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/golden/gpt_parity.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let c = &golden["config"];
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let config = GptConfig {
        vocab_size: n("vocab_size"),
        block_size: n("block_size"),
        n_layer: n("n_layer"),
        n_head: n("n_head"),
        n_embd: n("n_embd"),
        dropout: 0.0,
        bias: false,
    };
    let mut b = Builder::new(0, dtype, &Device::Cpu);
    let gpt = Gpt::new(&mut b, config, 0).unwrap();
    let store = b.into_store();
    let mut names: Vec<&str> = store.params().iter().map(|p| p.name()).collect();
    let mut theirs: Vec<&str> = weights.keys().map(String::as_str).collect();
    names.sort_unstable();
    theirs.sort_unstable();
    assert_eq!(names, theirs, "the same parameters under the same names");
    for p in store.params() {
        p.set(weights[p.name()].to_dtype(dtype).unwrap()).unwrap();
    }
    let ids = |k: &str| {
        let rows: Vec<Vec<u32>> = serde_json::from_value(golden[k].clone()).unwrap();
        let t = rows[0].len();
        Tensor::from_vec(rows.concat(), (rows.len(), t), &Device::Cpu).unwrap()
    };
    let (x, y) = (ids("idx"), ids("targets"));
    let flat = |v: &serde_json::Value| -> Vec<f64> { serde_json::from_value(v.clone()).unwrap() };
    let rel = |a: &[f64], b: &[f64]| {
        let d = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f64::max);
        d / b.iter().map(|q| q.abs()).fold(1e-12, f64::max)
    };
    let loss = gpt.loss(&Tape::new(), &x, &y, None).unwrap();
    let want = golden["loss"].as_f64().unwrap();
    assert!((loss.to_scalar_f64().unwrap() - want).abs() <= tol * want, "loss");
    let grads = loss.backward().unwrap();
    for p in store.params() {
        let got = grads
            .get(p)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let e = rel(&got, &flat(&golden["grads"][p.name()]));
        assert!(e <= tol, "{}: gradient off by {e:e}", p.name());
    }
    // nanoGPT's optimizer: weight decay on matrices only.
    let (decay, rest): (Vec<_>, Vec<_>) = store.trainable().into_iter().partition(|p| p.dims().len() >= 2);
    let mut opt = from_spec(golden["adamw"].as_str().unwrap(), decay).unwrap();
    opt.add_param_group(rest, "weight_decay=0").unwrap();
    for (t, want) in flat(&golden["losses"]).iter().enumerate() {
        let l = gpt.loss(&Tape::new(), &x, &y, None).unwrap();
        let got = l.to_scalar_f64().unwrap();
        assert!((got - want).abs() <= step_tol * want.abs(), "AdamW step {t}: loss {got} vs {want}");
        opt.step(&l.backward().unwrap()).unwrap();
    }
    for p in store.params() {
        let got = p.value().flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap();
        let e = rel(&got, &flat(&golden["final"][p.name()]));
        assert!(e <= step_tol, "{} after 20 steps: off by {e:e}", p.name());
    }
}
