//! d2l's airfoil runs through the experiment's command line: every run's final loss against
//! PyTorch's spread in `../shared/REFERENCE.md` (needs the data: see `common::data_dir`), and the
//! checks that need no data.

mod common;

use clap::Parser;
use taper_lab::experiments::airfoil::{self, run_cli, Args, RUNS};

const FILE: &str = "airfoil_self_noise.dat";

fn args(extra: &[&str]) -> Args {
    let out = common::out_dir("airfoil");
    let mut v = vec!["airfoil", "--offline", "--out", out.to_str().unwrap()];
    v.extend_from_slice(extra);
    Args::try_parse_from(v).unwrap()
}

#[test]
fn every_run_lands_inside_pytorchs_spread() {
    let Some(dir) = common::data_dir("every_run_lands_inside_pytorchs_spread", &[FILE]) else { return };
    let data = airfoil::data(&dir, true, &candle_core::Device::Cpu).unwrap();
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
    let Some(dir) = common::data_dir("example_prints_d2l_lines_and_plots", &[FILE]) else { return };
    let a = args(&["--data-dir", dir.to_str().unwrap()]);
    let results = run_cli(&a).unwrap();
    assert_eq!(results.len(), RUNS.len());
    let line = airfoil::format_line(&results[0].outcome);
    assert!(line.starts_with("loss: 0.24") && line.ends_with(" sec per epoch"), "{line}");
    assert_eq!(
        results[0].outcome.history.records.len(),
        31,
        "initial loss + every 100 examples for 2 epochs"
    );
    let svg = std::fs::read_to_string(a.common.out.unwrap().join("airfoil.svg")).unwrap();
    assert!(svg.contains("7.6 RMSprop"));
}

#[test]
fn save_and_resume_give_the_same_final_loss() {
    let Some(dir) = common::data_dir("save_and_resume_give_the_same_final_loss", &[FILE]) else { return };
    let tmp = common::out_dir("airfoil-ck");
    std::fs::create_dir_all(&tmp).unwrap();
    let ck = tmp.join("ck.safetensors");
    for schedule in
        [&[][..], &["--scheduler", "onecycle:max_lr=0.02,total_steps=300", "--scheduler-every-step"]]
    {
        let with = |more: &[&str]| {
            let mut v = vec![
                "--data-dir",
                dir.to_str().unwrap(),
                "--compare",
                "rmsprop:lr=0.01,alpha=0.9,momentum=0.5",
            ];
            v.extend_from_slice(schedule);
            v.extend_from_slice(more);
            args(&v)
        };
        let straight = run_cli(&with(&["--epochs", "2"])).unwrap();
        run_cli(&with(&["--epochs", "1", "--save", ck.to_str().unwrap()])).unwrap();
        let resumed = run_cli(&with(&["--epochs", "2", "--resume", ck.to_str().unwrap()])).unwrap();
        assert_eq!(
            straight[0].outcome.final_loss.to_bits(),
            resumed[0].outcome.final_loss.to_bits(),
            "{schedule:?}"
        );
        let curve = |r: &[airfoil::RunResult]| r[0].outcome.history.points();
        assert_eq!(
            curve(&straight),
            curve(&resumed),
            "{schedule:?}: the resumed run's curve is the straight run's"
        );
        assert!(straight[0].outcome.final_loss < 0.3, "{schedule:?}: {}", straight[0].outcome.final_loss);
    }
}

// ---------------------------------------------------------------- no data needed

#[test]
fn missing_data_offline_is_a_clear_error() {
    let empty = common::out_dir("airfoil-empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = format!("{:#}", run_cli(&args(&["--data-dir", empty.to_str().unwrap()])).err().unwrap());
    assert!(err.contains(FILE) && err.contains("TAPER_DATA_DIR"), "{err}");
}

#[test]
fn bad_arguments_are_refused_before_any_data_is_read() {
    let empty = common::out_dir("airfoil-args");
    for (extra, needle) in [
        (&["--save", "/tmp/x"][..], "exactly one run"),
        (&["--epochs", "0"], "--epochs"),
        (&["--form", "keras"], "--form"),
        (&["--compare", "adam:beta1=2"], "beta1=2"),
        (&["--device", "tpu"], "unknown device"),
        (&["--scheduler", "cosine"], "`t_max` is required"),
        (&["--scheduler", "sequential:schedulers=[plateau],milestones=[]"], "plateau"),
        (&["--scheduler-every-step"], "needs a --scheduler"),
    ] {
        let mut v = vec!["--data-dir", empty.to_str().unwrap()];
        v.extend_from_slice(extra);
        let err = format!("{:#}", run_cli(&args(&v)).err().unwrap());
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
}

#[test]
fn the_parser_refuses_malformed_files() {
    assert!(airfoil::parse("1\t2\t3\n").is_err());
    let err = airfoil::parse(&"1\t2\tx\t4\t5\t6\n".repeat(1500)).unwrap_err().to_string();
    assert!(err.contains("`x`"), "{err}");
}
