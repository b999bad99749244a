//! Property tests of the checkpoint loader: random truncations, single flipped bits anywhere in
//! header or body, random bytes, and a valid file from another model are all refused with an
//! error, never a panic, and leave the model and the optimizer exactly as they were.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;
use taper_autograd::{ParamStore, Tape, Var};
use taper_nn::{Builder, Linear, Module};
use taper_optim::{from_spec, Optimizer};
use taper_train::checkpoint::{self, Progress};

fn model(seed: u64, width: usize) -> (Linear, ParamStore) {
    let b = Builder::new(seed, DType::F32, &Device::Cpu);
    let layer = Linear::new(&mut b.pp("fc"), 3, width).unwrap();
    (layer, b.into_store())
}

fn trained(seed: u64, width: usize) -> (ParamStore, Box<dyn Optimizer>) {
    let (layer, store) = model(seed, width);
    let mut opt = from_spec("adam:lr=0.01", store.trainable()).unwrap();
    let x = Var::constant(Tensor::new(&[[1.0f32, -2.0, 0.5], [0.3, 0.1, -1.0]], &Device::Cpu).unwrap());
    for _ in 0..3 {
        let tape = Tape::new();
        let loss = layer.forward(&tape, &x).unwrap().sqr().unwrap().mean_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    (store, opt)
}

/// A valid checkpoint of a trained model, as bytes.
fn saved(seed: u64, width: usize) -> Vec<u8> {
    let (store, opt) = trained(seed, width);
    let dir = std::env::temp_dir().join(format!("taper-ckprop-{}-{seed}-{width}", std::process::id()));
    let path = dir.join("ck.safetensors");
    let progress = Progress { step: 3, seed, ..Progress::default() };
    checkpoint::save(&path, &store, opt.as_ref(), &progress).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    bytes
}

/// Every parameter and optimizer value, exactly.
fn snapshot(store: &ParamStore, opt: &dyn Optimizer) -> String {
    let state = opt.export_state().unwrap();
    let values: Vec<Vec<u32>> = store
        .params()
        .iter()
        .chain(std::iter::empty())
        .map(|p| {
            p.value().flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
        })
        .collect();
    let tensors: Vec<(String, Vec<u32>)> = state
        .tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect(),
            )
        })
        .collect();
    format!("{values:?} {tensors:?} {:?} {:?}", state.scalars, state.groups)
}

/// Loads `bytes` into a model and optimizer other than the saved ones; asserts the load fails and
/// changes nothing.
fn refused(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (store, mut opt) = trained(7, 2);
    let before = snapshot(&store, opt.as_ref());
    let result = checkpoint::parse(bytes, Path::new("case"))
        .and_then(|ck| checkpoint::apply(ck, Path::new("case"), &store, opt.as_mut()));
    prop_assert!(result.is_err(), "a damaged checkpoint was accepted");
    prop_assert_eq!(snapshot(&store, opt.as_ref()), before, "a refused checkpoint changed something");
    Ok(())
}

thread_local! {
    static GOOD: Vec<u8> = saved(1, 2);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn every_truncation_is_refused(cut in any::<usize>()) {
        GOOD.with(|good| refused(&good[..cut % good.len()]))?;
    }

    #[test]
    fn every_flipped_bit_is_refused(at in any::<usize>(), bit in 0u8..8) {
        GOOD.with(|good| {
            let mut bad = good.clone();
            let i = at % bad.len();
            bad[i] ^= 1 << bit;
            refused(&bad)
        })?;
    }

    #[test]
    fn random_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        refused(&bytes)?;
    }

    #[test]
    fn a_random_header_length_is_refused(len in any::<u64>(), tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend(tail);
        refused(&bytes)?;
    }
}

#[test]
fn the_intact_file_loads_and_another_models_file_is_refused() {
    let good = GOOD.with(Clone::clone);
    let (store, mut opt) = trained(7, 2);
    let ck = checkpoint::parse(&good, Path::new("good")).unwrap();
    checkpoint::apply(ck, Path::new("good"), &store, opt.as_mut()).unwrap();
    let (saved_store, saved_opt) = trained(1, 2);
    assert_eq!(snapshot(&store, opt.as_ref()), snapshot(&saved_store, saved_opt.as_ref()));
    // A valid checkpoint of a wider model.
    refused(&saved(1, 4)).unwrap();
}
