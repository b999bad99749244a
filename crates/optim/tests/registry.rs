//! Optimizers from outside the crate: a `Rule` defined here, registered at run time, then named
//! in spec strings like Taper's own, on both paths, with its state saved and restored.

use candle_core::{DType, Device, Tensor};
use taper_autograd::{ParamStore, Tape, Var};
use taper_optim::{
    canonical, from_spec, names, register, register_constructor, Buffer, Elem, Fuse, Hyper, KernelPath,
    Result, Rule, Steps,
};

/// Sign descent with momentum (signSGD/Signum, Bernstein et al., 2018):
/// `m ← β·m + (1 - β)·g`, `p ← p - η·sign(m)`. Written with `Elem::sign`, which an outside crate
/// could not add itself.
#[derive(Debug, Clone, PartialEq, Hyper)]
#[hyper(name = "signum_test")]
struct Signum {
    /// Learning rate.
    #[hp(default = 0.01, range = ">= 0")]
    lr: f64,
    /// Momentum.
    #[hp(default = 0.9, range = "[0, 1)")]
    beta: f64,
}

impl Rule for Signum {
    type Coeffs = ();
    type Fused = Fuse;
    fn buffers(&self, _: &[usize]) -> Result<Vec<Buffer>> {
        Ok(vec![Buffer::zeros("momentum_buffer")])
    }
    fn coeffs(&self, _step: u64) {}
}

impl<E: Elem> Steps<E> for Signum {
    fn update(&self, _: &(), p: &mut E, g: &E, s: &mut [E]) -> std::result::Result<(), E::Err> {
        let [m] = s else { return Ok(()) };
        *m = m.scale(self.beta)?.add_scaled(g, 1.0 - self.beta)?;
        *p = p.add_scaled(&m.sign()?, -self.lr)?;
        Ok(())
    }
}

fn quadratic_steps(spec: &str, path: KernelPath, steps: usize) -> (Vec<f64>, taper_optim::OptimState) {
    let mut store = ParamStore::new();
    let x = store.insert("x", Tensor::new(&[3.0f64, -2.0, 0.5], &Device::Cpu).unwrap()).unwrap();
    let mut opt = from_spec(spec, store.trainable()).unwrap();
    opt.set_kernel_path(path);
    for _ in 0..steps {
        let tape = Tape::new();
        let loss = tape.param(&x).sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
    }
    (x.value().to_vec1().unwrap(), opt.export_state().unwrap())
}

#[test]
fn a_registered_rule_is_named_in_specs_on_both_paths_and_resumes() {
    register::<Signum>().unwrap();
    assert!(names().iter().any(|n| n == "signum_test"));
    assert_eq!(canonical("signum_test:lr=0.1").unwrap().to_string(), "signum_test:lr=0.1,beta=0.9");
    assert!(canonical("signum_test:beta=1").unwrap_err().to_string().contains("beta=1"));
    let (fused, state) = quadratic_steps("signum_test:lr=0.1", KernelPath::Fused, 5);
    let (composed, _) = quadratic_steps("signum_test:lr=0.1", KernelPath::Composed, 5);
    assert_eq!(fused, composed);
    assert!((fused[0] - 2.5).abs() < 1e-12, "five steps of 0.1 against the sign: {}", fused[0]);
    // Saved state goes back into a fresh one, which then steps as the first would have.
    let mut store = ParamStore::new();
    let x = store.insert("x", Tensor::new(fused.as_slice(), &Device::Cpu).unwrap()).unwrap();
    let mut opt = from_spec("signum_test:lr=0.1", store.trainable()).unwrap();
    opt.import_state(&state).unwrap();
    assert_eq!(opt.step_count(&x), Some(5));
    // Registering again, or over a built-in name, is an error.
    assert!(register::<Signum>().unwrap_err().to_string().contains("already"));
}

#[test]
fn any_optimizer_can_be_registered_under_a_valid_free_name() {
    register_constructor("sgd_alias_test", |spec, params| {
        let text = spec.to_string().replacen("sgd_alias_test", "sgd", 1);
        from_spec(&text, params)
    })
    .unwrap();
    let mut store = ParamStore::new();
    let w = store.insert("w", Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap()).unwrap();
    let mut opt = from_spec("sgd_alias_test:lr=0.5", store.trainable()).unwrap();
    let tape = Tape::new();
    let loss =
        tape.param(&w).sub(&Var::constant(Tensor::ones(2, DType::F32, &Device::Cpu).unwrap())).unwrap();
    opt.step(&loss.sqr().unwrap().sum_all().unwrap().backward().unwrap()).unwrap();
    assert_eq!(w.value().to_vec1::<f32>().unwrap(), [1.0, 1.0]);
    for bad in ["adam", "Bad Name", "x:lr=1", ""] {
        assert!(register_constructor(bad, |s, p| from_spec(&s.to_string(), p)).is_err(), "{bad}");
    }
    assert!(from_spec("not_registered_test", vec![]).err().unwrap().to_string().contains("sgd_alias_test"));
}

/// The docs keep up with the code: every built-in optimizer is in CHECKPOINTS.md's buffer table
/// and named in the README and in ARCHITECTURE.md, and every scheduler is named in the README.
#[test]
fn every_registered_optimizer_and_scheduler_is_documented() {
    let checkpoints = include_str!("../../../docs/CHECKPOINTS.md");
    let readme = include_str!("../../../README.md");
    let architecture = include_str!("../../../docs/ARCHITECTURE.md");
    for (name, _) in taper_optim::REGISTRY {
        let row = checkpoints.lines().any(|l| l.starts_with('|') && l.contains(&format!("`{name}`")));
        assert!(row, "docs/CHECKPOINTS.md has no buffer row for `{name}`");
        assert!(readme.contains(&format!("`{name}`")), "README.md does not name `{name}`");
        assert!(architecture.contains(&format!("`{name}`")), "docs/ARCHITECTURE.md does not name `{name}`");
    }
    for (name, _) in taper_optim::schedule::SCHEDULERS {
        assert!(readme.contains(&format!("`{name}`")), "README.md does not name the scheduler `{name}`");
    }
}
