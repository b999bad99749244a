//! d2l's airfoil runs through the `airfoil` example's code path (needs `TAPER_DATA_DIR` or
//! `../shared/data`): every run's final loss against PyTorch's spread in `../shared/REFERENCE.md`.

#[path = "../examples/airfoil.rs"]
#[allow(dead_code)]
mod airfoil_example;

use std::path::PathBuf;

use clap::Parser;
use taper::experiments::airfoil::{self, RUNS};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TAPER_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    dir.join("airfoil_self_noise.dat").exists().then_some(dir)
}

#[test]
fn every_run_lands_inside_pytorchs_spread() {
    let Some(dir) = data_dir() else {
        eprintln!("skipped: no airfoil_self_noise.dat (set TAPER_DATA_DIR)");
        return;
    };
    let data = airfoil::data(&dir, false, &candle_core::Device::Cpu).unwrap();
    // The final loss depends on the seed, and strongly on the shuffling: PyTorch's own spread over
    // seeds 0..9 does not contain its runs for seeds 100..109. So the seeded check is on the mean
    // over 20 seeds, which must lie inside PyTorch's [min, max]; every single run must be a sane
    // fit (above the least-squares optimum 0.241688, not far from it).
    for r in RUNS {
        let losses: Vec<f64> =
            (0..20).map(|seed| airfoil::run(&data, r.spec, r.form, seed, 2).unwrap().final_loss).collect();
        let mean = losses.iter().sum::<f64>() / losses.len() as f64;
        let (_, lo, hi) = r.torch;
        assert!(
            mean >= lo && mean <= hi,
            "{} {}: mean final loss {mean:.6} outside PyTorch's [{lo}, {hi}]",
            r.section,
            r.spec
        );
        for l in losses {
            assert!(l > 0.2416 && l < 0.26, "{} {}: {l}", r.section, r.spec);
        }
    }
}

#[test]
fn example_prints_d2l_lines_and_plots() {
    let Some(dir) = data_dir() else { return };
    let out = std::env::temp_dir().join(format!("taper-airfoil-{}", std::process::id()));
    let args = airfoil_example::Args::try_parse_from([
        "airfoil",
        "--data-dir",
        dir.to_str().unwrap(),
        "--offline",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let results = airfoil_example::run(&args).unwrap();
    assert_eq!(results.len(), RUNS.len());
    let line = airfoil::format_line(&results[0].outcome);
    assert!(line.starts_with("loss: 0.24") && line.ends_with(" sec per epoch"), "{line}");
    assert_eq!(
        results[0].outcome.history.records.len(),
        31,
        "initial loss + every 100 examples for 2 epochs"
    );
    let svg = std::fs::read_to_string(out.join("airfoil.svg")).unwrap();
    assert!(svg.contains("7.6 RMSprop"));
}

#[test]
fn missing_data_offline_is_a_clear_error() {
    let empty = std::env::temp_dir().join(format!("taper-airfoil-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let args = airfoil_example::Args::try_parse_from([
        "airfoil",
        "--data-dir",
        empty.to_str().unwrap(),
        "--offline",
    ])
    .unwrap();
    let err = format!("{:#}", airfoil_example::run(&args).err().unwrap());
    assert!(err.contains("airfoil_self_noise.dat") && err.contains("TAPER_DATA_DIR"), "{err}");
}

#[test]
fn save_and_resume_give_the_same_final_loss() {
    let Some(dir) = data_dir() else { return };
    let tmp = std::env::temp_dir().join(format!("taper-airfoil-ck-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let ck = tmp.join("ck.safetensors");
    let base = [
        "airfoil",
        "--data-dir",
        dir.to_str().unwrap(),
        "--offline",
        "--compare",
        "rmsprop:lr=0.01,alpha=0.9,momentum=0.5",
    ];
    let with = |more: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(more);
        v.extend(["--out", tmp.to_str().unwrap()]);
        airfoil_example::Args::try_parse_from(v).unwrap()
    };
    let straight = airfoil_example::run(&with(&["--epochs", "2"])).unwrap();
    airfoil_example::run(&with(&["--epochs", "1", "--save", ck.to_str().unwrap()])).unwrap();
    let resumed = airfoil_example::run(&with(&["--epochs", "2", "--resume", ck.to_str().unwrap()])).unwrap();
    assert_eq!(straight[0].outcome.final_loss.to_bits(), resumed[0].outcome.final_loss.to_bits());
    let err = format!(
        "{:#}",
        airfoil_example::run(
            &airfoil_example::Args::try_parse_from(["airfoil", "--save", "/tmp/x"]).unwrap()
        )
        .err()
        .unwrap()
    );
    assert!(err.contains("exactly one run"), "{err}");
}
