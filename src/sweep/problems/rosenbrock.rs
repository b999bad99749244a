//! Rosenbrock's banana `f(x) = (1 - x1)² + 100·(x2 - x1²)²` from its classic start `(-1.2, 1)`,
//! 500 full steps: a narrow curved valley where step-size adaptation matters. Deterministic:
//! every seed gives the same curve.

use anyhow::Result;

use super::two_d;
use crate::experiments::trace2d::Function;
use crate::sweep::problem::{Context, Curve, Goal, Metric, Problem};
use crate::Device;

/// Rosenbrock's (1960) start point.
const START: (f64, f64) = (-1.2, 1.0);
/// Full steps.
const STEPS: usize = 500;

struct Rosenbrock {
    device: Device,
}

/// The problem (no data to load).
pub fn new(ctx: &Context) -> Result<Box<dyn Problem>> {
    Ok(Box::new(Rosenbrock { device: ctx.device.clone() }))
}

impl Problem for Rosenbrock {
    fn name(&self) -> &str {
        "rosenbrock"
    }
    fn describe(&self) -> String {
        format!("f(x) = {} from {START:?}, {STEPS} full steps, f64", Function::Rosenbrock)
    }
    fn metric(&self) -> Metric {
        Metric { name: "f".into(), goal: Goal::Minimize, target: 1e-2 }
    }
    fn budget(&self) -> String {
        format!("{STEPS} steps")
    }
    fn run(&self, spec: &str, _seed: u64) -> Result<Curve> {
        two_d(Function::Rosenbrock, START, STEPS, spec, &self.device)
    }
}
