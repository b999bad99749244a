//! Rosenbrock's banana `f(x) = (1 - x1)² + 100·(x2 - x1²)²` from its classic start `(-1.2, 1)`,
//! 500 full steps: a narrow curved valley where step-size adaptation matters. Deterministic:
//! every seed gives the same curve. Held out for `taper bench`: the starts `(-1.9, 2)` (MATLAB's
//! `fminunc` demonstration) and `(0, 2)`.

use anyhow::Result;

use super::TwoD;
use crate::experiments::trace2d::Function;
use crate::sweep::problem::{Context, Problem};

/// The problem (no data to load).
pub fn new(ctx: &Context) -> Result<Box<dyn Problem>> {
    let problem = TwoD {
        name: "rosenbrock",
        function: Function::Rosenbrock,
        start: (-1.2, 1.0),
        variants: vec![(-1.9, 2.0), (0.0, 2.0)],
        steps: 500,
        target: 1e-2,
        device: ctx.device.clone(),
    };
    Ok(Box::new(problem))
}
