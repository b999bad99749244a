//! d2l's ill-conditioned quadratic `f(x) = 0.1·x1² + 2·x2²` (sections 7.4–7.6), from d2l's
//! start `(-5, -2)`, 20 full steps: the documents' 2-D traces as a sweep problem. Deterministic:
//! every seed gives the same curve.

use anyhow::Result;

use super::TwoD;
use crate::experiments::trace2d::Function;
use crate::sweep::problem::{Context, Problem};

/// The problem (no data to load).
pub fn new(ctx: &Context) -> Result<Box<dyn Problem>> {
    let problem = TwoD {
        name: "quadratic",
        function: Function::D2l,
        start: (-5.0, -2.0),
        variants: Vec::new(),
        steps: 20,
        target: 1e-2,
        device: ctx.device.clone(),
    };
    Ok(Box::new(problem))
}
