//! The documents' linear regression: 100 points `x ~ U(0, 2)`, `y = 4 + 3x + N(0, 1)` (data
//! seed 42), `b = w = 0`, 200 full-batch steps on the mean squared error. Deterministic: every
//! seed gives the same curve; the target is 1% above the least-squares optimum.

use anyhow::Result;

use crate::experiments::linreg::{closed_form, data, Data, Model, DATA_SEED};
use crate::sweep::problem::{Context, Curve, Goal, Metric, Problem, Recorder};
use crate::{Device, Tape};

/// Data points.
const N: usize = 100;
/// Full-batch steps.
const STEPS: u64 = 200;

struct LinReg {
    data: Data,
    optimum: f64,
    device: Device,
}

/// The problem with its data drawn.
pub fn new(ctx: &Context) -> Result<Box<dyn Problem>> {
    let data = data(N, DATA_SEED);
    let (b, w) = closed_form(&data);
    let optimum = data.x.iter().zip(&data.y).map(|(x, y)| (b + w * x - y).powi(2)).sum::<f64>() / N as f64;
    Ok(Box::new(LinReg { data, optimum, device: ctx.device.clone() }))
}

impl Problem for LinReg {
    fn name(&self) -> &str {
        "linreg"
    }
    fn describe(&self) -> String {
        format!(
            "y = 4 + 3x + noise, {N} points, b = w = 0, {STEPS} full-batch steps, MSE (optimum {:.4})",
            self.optimum
        )
    }
    fn metric(&self) -> Metric {
        Metric { name: "loss".into(), goal: Goal::Minimize, target: self.optimum * 1.01 }
    }
    fn budget(&self) -> String {
        format!("{STEPS} steps")
    }
    fn run(&self, spec: &str, _seed: u64) -> Result<Curve> {
        let model = Model::new(&self.data, &self.device)?;
        let mut opt = crate::optim::from_spec(spec, model.store.trainable())?;
        let mut rec = Recorder::new();
        for step in 0..=STEPS {
            let tape = Tape::new();
            let loss = model.loss(&tape)?;
            let value = loss.to_scalar_f64()?;
            rec.point(step, value);
            if step == STEPS || rec.diverged() {
                break;
            }
            let grads = loss.backward()?;
            match opt.step(&grads) {
                Ok(_) => {}
                Err(crate::optim::Error::NonFiniteGradient { .. }) => {
                    rec.point(step + 1, f64::NAN);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(rec.finish())
    }
}
