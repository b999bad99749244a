//! d2l's ill-conditioned quadratic `f(x) = 0.1·x1² + 2·x2²` (sections 7.4–7.6), from d2l's
//! start `(-5, -2)`, 20 full steps: the documents' 2-D traces as a sweep problem. Deterministic:
//! every seed gives the same curve.

use anyhow::Result;

use super::two_d;
use crate::experiments::trace2d::Function;
use crate::sweep::problem::{Context, Curve, Goal, Metric, Problem};
use crate::Device;

/// d2l's start point.
const START: (f64, f64) = (-5.0, -2.0);
/// d2l's 20 epochs of one step.
const STEPS: usize = 20;

struct Quadratic {
    device: Device,
}

/// The problem (no data to load).
pub fn new(ctx: &Context) -> Result<Box<dyn Problem>> {
    Ok(Box::new(Quadratic { device: ctx.device.clone() }))
}

impl Problem for Quadratic {
    fn name(&self) -> &str {
        "quadratic"
    }
    fn describe(&self) -> String {
        format!("f(x) = {} from {START:?}, {STEPS} full steps, f64", Function::D2l)
    }
    fn metric(&self) -> Metric {
        Metric { name: "f".into(), goal: Goal::Minimize, target: 1e-2 }
    }
    fn budget(&self) -> String {
        format!("{STEPS} steps")
    }
    fn run(&self, spec: &str, _seed: u64) -> Result<Curve> {
        two_d(Function::D2l, START, STEPS, spec, &self.device)
    }
}
