//! Your own problem in the `taper` command, without touching Taper: implement
//! [`taper_lab::sweep::Problem`], register it, and hand over to Taper's command line, which then
//! sweeps, shards and reports it like the built-in ones.
//!
//! ```text
//! cargo run --release --example custom_problem -- list
//! cargo run --release --example custom_problem -- sweep --problem noisy_quadratic \
//!     --optimizer "sgd:lr=logspace(1e-3,1,7)" --optimizer "adam:lr=logspace(1e-3,1,7)" \
//!     --seeds 3 --out out/noisy
//! cargo run --release --example custom_problem -- sweep --problem noisy_quadratic \
//!     --optimizer "signum:lr=logspace(1e-3,1,7)" --seeds 3 --out out/noisy-signum
//! cargo run --release --example custom_problem -- report out/noisy --out out/noisy-report
//! ```

use anyhow::Result;
use taper::{DType, Device, ParamStore, SeededRng, Tape, Tensor, Var};
use taper_lab::sweep::{self, Context, Curve, Goal, Metric, Problem, Recorder};

/// Dimensions of `x`.
const DIM: usize = 10;
/// Steps per run.
const STEPS: u64 = 100;
/// Standard deviation of the gradient noise.
const NOISE: f64 = 0.1;

/// `f(x) = ½‖x‖²` from `x = (1, …, 1)`, seen through gradients with seeded Gaussian noise: the
/// simplest stochastic problem on which learning rates trade speed against noise.
struct NoisyQuadratic {
    device: Device,
}

impl Problem for NoisyQuadratic {
    fn name(&self) -> &str {
        "noisy_quadratic"
    }
    fn describe(&self) -> String {
        format!("½‖x‖² in {DIM} dimensions from (1, ..., 1), gradient noise N(0, {NOISE}²), {STEPS} steps")
    }
    fn metric(&self) -> Metric {
        Metric { name: "f".into(), goal: Goal::Minimize, target: 0.05 }
    }
    fn budget(&self) -> String {
        format!("{STEPS} steps")
    }
    fn run(&self, spec: &str, seed: u64) -> Result<Curve> {
        let mut store = ParamStore::new();
        let x = store.insert("x", Tensor::ones(DIM, DType::F64, &self.device)?)?;
        let mut opt = taper::optim::from_spec(spec, store.trainable())?;
        let mut rng = SeededRng::new(seed);
        let mut rec = Recorder::new();
        for step in 0..=STEPS {
            let tape = Tape::new();
            let xv = tape.param(&x);
            let f = xv.sqr()?.sum_all()?.scale(0.5)?;
            rec.point(step, f.to_scalar_f64()?);
            if step == STEPS || rec.diverged() {
                break;
            }
            // The noise enters as a linear term, so the gradient is x + noise.
            let noise = Var::constant(rng.normal(DIM, 0.0, NOISE, DType::F64, &self.device)?);
            let loss = f.add(&xv.mul(&noise)?.sum_all()?)?;
            opt.step(&loss.backward()?)?;
        }
        Ok(rec.finish())
    }
}

fn main() {
    // An optimizer from another crate joins the same way: `signum:lr=[...]` is sweepable.
    if let Err(e) = taper::optim::register::<taper_extend_example::Signum>() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let registered = sweep::register(
        "noisy_quadratic",
        "½‖x‖² with noisy gradients (an example's own problem)",
        |ctx: &Context| Ok(Box::new(NoisyQuadratic { device: ctx.device.clone() }) as Box<dyn Problem>),
    );
    if let Err(e) = registered {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
    sweep::cli::main();
}
