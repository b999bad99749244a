//! Sweep cells as TensorBoard runs (`taper sweep --logdir DIR`): one run per cell, its curve,
//! final value and hyperparameters, so that TensorBoard's HPARAMS tab compares the settings.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::store::{CellResult, Status};
use crate::cli::run_name;
use crate::train::tensorboard::{HParam, SummaryWriter};

/// The run directory of a cell: `logdir/<problem>/<optimizer>/<swept values>/seed_<n>`
/// (`mnist_mlp/adam/lr=0.001/seed_0`; `default` for a grid of one setting). The whole canonical
/// spec is in the run's hyperparameters.
pub fn cell_dir(logdir: &Path, cell: &CellResult) -> PathBuf {
    let swept: Vec<String> = cell.swept.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let setting = if swept.is_empty() { "default".to_string() } else { run_name(&swept.join(",")) };
    logdir
        .join(&cell.problem)
        .join(run_name(&cell.optimizer))
        .join(setting)
        .join(format!("seed_{}", cell.seed))
}

/// Writes `cell` as a TensorBoard run: `eval/<metric>` and `train/seconds` at each curve point,
/// `final/<metric>` (NaN when diverged) and `final/steps_to_target` (when reached) at the last
/// step, and the hyperparameters (`problem`, `optimizer`, every option of the canonical spec as
/// `optimizer.<key>`, `seed`).
pub fn write_cell(logdir: &Path, cell: &CellResult, metric: &str) -> Result<PathBuf> {
    let dir = cell_dir(logdir, cell);
    let mut w = SummaryWriter::new(&dir)?;
    let mut hp = vec![
        ("problem".to_string(), HParam::Text(cell.problem.clone())),
        ("seed".to_string(), HParam::Number(cell.seed as f64)),
        ("diverged".to_string(), HParam::Bool(cell.status == Status::Diverged)),
    ];
    match crate::optim::OptimSpec::parse(&cell.spec) {
        Ok(spec) => hp.extend(crate::cli::spec_hparams("optimizer", &spec)),
        Err(_) => hp.push(("optimizer".to_string(), HParam::Text(cell.spec.clone()))),
    }
    w.add_hparams(&hp)?;
    let tag = format!("eval/{metric}");
    for p in &cell.curve {
        w.add_scalars(p.step, &[(tag.as_str(), p.value), ("train/seconds", p.seconds)])?;
    }
    let last = cell.curve.last().map_or(cell.steps, |p| p.step);
    let final_tag = format!("final/{metric}");
    let mut finals = vec![(final_tag.as_str(), cell.final_metric)];
    if let Some(s) = cell.steps_to_target {
        finals.push(("final/steps_to_target", s as f64));
    }
    w.add_scalars(last, &finals)?;
    w.close()?;
    Ok(dir)
}
