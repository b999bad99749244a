//! Property test over random shapes: for every binary op and every pair of broadcast-compatible
//! shapes, our gradients have the inputs' shapes and equal candle's backprop; incompatible pairs
//! are errors, never panics.

mod common;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use taper_autograd::Var;
use taper_tensor::SeededRng;

fn random_pair(rng: &mut rand::rngs::StdRng) -> (Vec<usize>, Vec<usize>) {
    let rank = rng.random_range(0..=4);
    let out: Vec<usize> = (0..rank).map(|_| rng.random_range(1..=4)).collect();
    let derive = |rng: &mut rand::rngs::StdRng| -> Vec<usize> {
        let drop = rng.random_range(0..=rank);
        out[drop..].iter().map(|&d| if rng.random_bool(0.4) { 1 } else { d }).collect()
    };
    let a = derive(rng);
    let b = derive(rng);
    (a, b)
}

#[test]
fn broadcasting_gradients_over_random_shapes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut data = SeededRng::new(1);
    for case in 0..150 {
        let (a, b) = random_pair(&mut rng);
        let xs = vec![
            data.uniform(a.as_slice(), 0.5, 2.0, DType::F64, &Device::Cpu).unwrap(),
            data.uniform(b.as_slice(), 0.5, 2.0, DType::F64, &Device::Cpu).unwrap(),
        ];
        type Op = fn(&Var, &Var) -> taper_autograd::Result<Var>;
        type COp = fn(&Tensor, &Tensor) -> candle_core::Result<Tensor>;
        let ops: [(&str, Op, COp); 4] = [
            ("add", Var::add, Tensor::broadcast_add),
            ("sub", Var::sub, Tensor::broadcast_sub),
            ("mul", Var::mul, Tensor::broadcast_mul),
            ("div", Var::div, Tensor::broadcast_div),
        ];
        for (name, op, cop) in ops {
            let ours = common::ours(&|v: &[Var]| Ok(op(&v[0], &v[1])?), &xs).unwrap();
            let theirs = common::candle(&|v: &[Tensor]| Ok(cop(&v[0], &v[1])?), &xs).unwrap();
            for i in 0..2 {
                assert_eq!(ours[i].dims(), xs[i].dims(), "case {case} {name} {a:?} {b:?}: gradient shape");
                let e = common::rel_err(&ours[i], &theirs[i]);
                assert!(e < 1e-12, "case {case} {name} {a:?} {b:?}: input {i} differs from candle by {e:e}");
            }
        }
    }
}

#[test]
fn incompatible_shapes_are_errors() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut found = 0;
    for _ in 0..200 {
        let a: Vec<usize> = (0..rng.random_range(1..=3)).map(|_| rng.random_range(2..=4)).collect();
        let b: Vec<usize> = (0..rng.random_range(1..=3)).map(|_| rng.random_range(2..=4)).collect();
        let compatible = a.iter().rev().zip(b.iter().rev()).all(|(x, y)| x == y);
        let x = Var::constant(Tensor::zeros(a.as_slice(), DType::F32, &Device::Cpu).unwrap());
        let y = Var::constant(Tensor::zeros(b.as_slice(), DType::F32, &Device::Cpu).unwrap());
        for r in [x.add(&y), x.sub(&y), x.mul(&y), x.div(&y)] {
            match (compatible, r) {
                (true, Ok(_)) => {}
                (false, Err(e)) => {
                    found += 1;
                    assert!(e.to_string().contains("shape mismatch"), "{e}");
                }
                (c, r) => panic!("{a:?} {b:?}: compatible={c} but got {r:?}"),
            }
        }
    }
    assert!(found > 100);
}
