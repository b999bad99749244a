//! d2l's airfoil self-noise regression (chapter 7's `train_concise_ch7`): 1,500 rows, 5
//! standardized features, `nn.Linear(5, 1)` with PyTorch's initialization from the seed, batch 10
//! shuffled by the seed, 2 epochs; the metric is the loss `mean((Xw + b - y)²)/2` over all rows,
//! recorded every 100 examples as d2l does. The target, 0.25, is within 3% of what every tuned
//! optimizer of the chapter reaches (0.243–0.245). Held out for `taper bench`: batch 5 and
//! batch 25.

use anyhow::Result;

use super::train_curve;
use crate::experiments::airfoil::{data, Form, LinReg, BATCH, RECORD_EVERY};
use crate::sweep::problem::{Context, Curve, Goal, Metric, Problem, Setup};
use crate::train::{Dataset, Loader, TrainConfig};

/// d2l's epochs.
const EPOCHS: usize = 2;
/// The held-out variants' batch sizes.
const VARIANTS: [usize; 2] = [5, 25];

struct Airfoil {
    data: Dataset,
}

/// The problem with the airfoil file read (downloaded unless offline).
pub fn new(ctx: &Context) -> Result<Box<dyn Problem>> {
    Ok(Box::new(Airfoil { data: data(&ctx.data_dir, ctx.offline, &ctx.device)? }))
}

impl Problem for Airfoil {
    fn name(&self) -> &str {
        "airfoil"
    }
    fn describe(&self) -> String {
        format!(
            "airfoil self-noise, {} rows, linear model, batch {BATCH}, {EPOCHS} epochs, f32",
            self.data.len()
        )
    }
    fn metric(&self) -> Metric {
        Metric { name: "loss".into(), goal: Goal::Minimize, target: 0.25 }
    }
    fn budget(&self) -> String {
        format!("{EPOCHS} epochs of batch {BATCH}")
    }
    fn run(&self, spec: &str, seed: u64) -> Result<Curve> {
        self.run_setup(spec, seed, &Setup::default())
    }
    fn steps(&self, variant: usize) -> Option<u64> {
        let batch = if variant == 0 { BATCH } else { *VARIANTS.get(variant - 1)? };
        Some((EPOCHS * self.data.len().div_ceil(batch)) as u64)
    }
    fn variants(&self) -> Vec<String> {
        VARIANTS.iter().map(|b| format!("batch {b}")).collect()
    }
    fn run_setup(&self, spec: &str, seed: u64, setup: &Setup) -> Result<Curve> {
        setup.check_variant("airfoil", VARIANTS.len())?;
        let batch = if setup.variant == 0 { BATCH } else { VARIANTS[setup.variant - 1] };
        let model = LinReg::new(Form::Library, seed, &self.data)?;
        let mut cfg = TrainConfig::new(EPOCHS, Loader::new(batch, true, false, seed)?);
        cfg.record_every = RECORD_EVERY;
        cfg.progress_bar = false;
        let store = model.store.clone();
        // An optimizer of matrices only (Muon) takes the weights, AdamW the bias.
        let opt = super::optimizer_for(spec, &store, |p| p.dims().len() == 2)?;
        train_curve(model, &store, opt, &self.data, cfg, setup, Goal::Minimize)
    }
}
