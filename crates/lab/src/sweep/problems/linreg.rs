//! The documents' linear regression: 100 points `x ~ U(0, 2)`, `y = 4 + 3x + N(0, 1)` (data
//! seed 42), `b = w = 0`, 200 full-batch steps on the mean squared error. Deterministic: every
//! seed gives the same curve; the target is 1% above the least-squares optimum. Held out for
//! `taper bench`: another draw of the 100 points (data seed 43), and 400 points (data seed 44).

use anyhow::Result;

use crate::experiments::linreg::{self, closed_form, Data, Model, DATA_SEED};
use crate::sweep::problem::{Context, Curve, Goal, Metric, Problem, Recorder, Setup};
use crate::{Device, Tape};

/// Data points.
const N: usize = 100;
/// Full-batch steps.
const STEPS: u64 = 200;

struct LinReg {
    data: Data,
    optimum: f64,
    /// The held-out variants' data: (points, data seed, data).
    variants: Vec<(usize, u64, Data)>,
    device: Device,
}

/// The held-out variants: points and data seed.
const VARIANTS: [(usize, u64); 2] = [(N, DATA_SEED + 1), (4 * N, DATA_SEED + 2)];

/// The problem with its data drawn.
pub fn new(ctx: &Context) -> Result<Box<dyn Problem>> {
    let data = linreg::data(N, DATA_SEED);
    let (b, w) = closed_form(&data);
    let optimum = data.x.iter().zip(&data.y).map(|(x, y)| (b + w * x - y).powi(2)).sum::<f64>() / N as f64;
    let variants = VARIANTS.iter().map(|&(n, seed)| (n, seed, linreg::data(n, seed))).collect();
    Ok(Box::new(LinReg { data, optimum, variants, device: ctx.device.clone() }))
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
    fn run(&self, spec: &str, seed: u64) -> Result<Curve> {
        self.run_setup(spec, seed, &Setup::default())
    }
    fn steps(&self, _variant: usize) -> Option<u64> {
        Some(STEPS)
    }
    fn variants(&self) -> Vec<String> {
        self.variants.iter().map(|(n, seed, _)| format!("{n} points, data seed {seed}")).collect()
    }
    fn run_setup(&self, spec: &str, _seed: u64, setup: &Setup) -> Result<Curve> {
        setup.check_variant("linreg", self.variants.len())?;
        let data = if setup.variant == 0 { &self.data } else { &self.variants[setup.variant - 1].2 };
        let steps = setup.steps_or(STEPS);
        let model = Model::new(data, &self.device)?;
        // Muon (matrices only) finds none here: AdamW takes `b` and `w`, as the Muon recipe has it.
        let mut opt = super::optimizer_for(spec, &model.store, |p| p.dims().len() == 2)?;
        let mut rec = Recorder::new();
        for step in 0..=steps {
            let tape = Tape::new();
            let loss = model.loss(&tape)?;
            let value = loss.to_scalar_f64()?;
            rec.point(step, value);
            if step == steps || setup.stops(Goal::Minimize, value) {
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
