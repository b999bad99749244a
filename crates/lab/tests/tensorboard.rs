//! `--logdir`: a `char_lm` run, an `airfoil`-style run of the training loop and a `taper sweep`
//! write TensorBoard event files whose every scalar and hyperparameter Taper's reader gets back,
//! and, where the reference venv is (`~/.cache/taper-ref`, or `TAPER_REF_PYTHON`), TensorBoard's
//! own readers (tbparse, the hparams plugin) get back exactly the same; an unwritable log
//! directory is one clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use taper_lab::experiments::char_lm;
use taper_lab::train::tensorboard::{read_hparams, read_scalars, HParam, ScalarPoint};

fn tmp(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("taper-{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny char_lm run with `--logdir dir/char`.
fn char_lm_run(dir: &Path, iters: usize) {
    let text = dir.join("text.txt");
    std::fs::write(&text, "to be or not to be, that is the question. ".repeat(40)).unwrap();
    let logdir = dir.join("logs/char");
    let it = iters.to_string();
    let args = char_lm::Args::try_parse_from([
        "char_lm",
        "--data",
        text.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
        "--block-size",
        "8",
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "8",
        "--warmup",
        "2",
        "--iters",
        &it,
        "--eval-every",
        "2",
        "--eval-iters",
        "2",
        "--optimizer",
        "muon:lr=0.02",
        "--other-optimizer",
        "adamw:lr=0.001",
        "--logdir",
        logdir.to_str().unwrap(),
    ])
    .unwrap();
    char_lm::run_cli(&args, false).unwrap();
}

/// A sweep of two settings on two seeds with `--logdir dir/sweep`.
fn sweep_run(dir: &Path) {
    let o = Command::new(env!("CARGO_BIN_EXE_taper"))
        .args([
            "sweep",
            "--problem",
            "quadratic",
            "--optimizer",
            "sgd:lr=[0.03,0.3],momentum=0.9",
            "--seeds",
            "2",
        ])
        .arg("--out")
        .arg(dir.join("results"))
        .arg("--logdir")
        .arg(dir.join("logs/sweep"))
        .arg("--quiet")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn tags(points: &[ScalarPoint], run: &str) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for p in points.iter().filter(|p| p.run == run) {
        *t.entry(p.tag.clone()).or_insert(0) += 1;
    }
    t
}

#[test]
fn char_lm_and_sweep_runs_read_back_with_every_curve_and_hyperparameter() {
    let dir = tmp("tb-runs");
    char_lm_run(&dir, 6);
    sweep_run(&dir);
    let logs = dir.join("logs");
    let points = read_scalars(&logs).unwrap();

    // char_lm: every step's loss, norm, ratio and both groups' rates; evaluations at 0, 2, 4, 6.
    let t = tags(&points, "char");
    for tag in ["train/loss", "train/grad_norm", "train/update_ratio", "lr/group_0", "lr/group_1"] {
        assert_eq!(t.get(tag), Some(&6), "{tag}: {t:?}");
    }
    assert_eq!((t.get("eval/val_loss"), t.get("eval/train_loss")), (Some(&4), Some(&4)), "{t:?}");
    assert_eq!(t.get("train/tokens_per_second"), Some(&3), "{t:?}");
    let lr = |g: usize, step: i64| {
        points
            .iter()
            .find(|p| p.run == "char" && p.tag == format!("lr/group_{g}") && p.step == step)
            .unwrap()
            .value
    };
    // Muon's group and AdamW's follow the same warm-up from their own base rates.
    assert_eq!((lr(0, 1), lr(1, 1)), ((0.02f64 / 3.0) as f32, (0.001f64 / 3.0) as f32));
    let positive =
        |tag: &str| points.iter().filter(|p| p.run == "char" && p.tag == tag).all(|p| p.value > 0.0);
    assert!(positive("train/update_ratio") && positive("train/grad_norm"));
    let hp = read_hparams(&logs.join("char")).unwrap();
    let get = |k: &str| hp.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("optimizer"), Some(HParam::Text("muon".into())));
    assert_eq!(get("optimizer.lr"), Some(HParam::Number(0.02)));
    assert_eq!(get("other_optimizer"), Some(HParam::Text("adamw".into())));
    assert_eq!(get("seed"), Some(HParam::Number(1337.0)));

    // The sweep: one run per cell, each with its curve, final value and hyperparameters.
    let runs: BTreeMap<String, BTreeMap<String, usize>> = points
        .iter()
        .filter(|p| p.run.starts_with("sweep"))
        .map(|p| (p.run.clone(), tags(&points, &p.run)))
        .collect();
    assert_eq!(runs.len(), 4, "{:?}", runs.keys());
    assert!(runs.contains_key("sweep/quadratic/sgd_momentum=0.9/lr=0.03/seed_1"), "{:?}", runs.keys());
    for (run, t) in &runs {
        assert!(t.get("eval/f").is_some_and(|&n| n > 10) && t.contains_key("final/f"), "{run}: {t:?}");
        let hp = read_hparams(&logs.join(run)).unwrap();
        assert!(
            hp.iter().any(|(k, v)| k == "optimizer.lr" && matches!(v, HParam::Number(_))),
            "{run}: {hp:?}"
        );
        assert!(
            hp.iter().any(|(k, v)| k == "optimizer.momentum" && *v == HParam::Number(0.9)),
            "{run}: {hp:?}"
        );
    }

    // TensorBoard's own readers, where the reference venv is.
    let python = std::env::var_os("TAPER_REF_PYTHON")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/taper-ref/bin/python")));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/read_tensorboard.py");
    let out =
        python.filter(|p| p.exists()).and_then(|p| Command::new(p).arg(script).arg(&logs).output().ok());
    let Some(out) = out.filter(|o| o.status.success()) else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the TensorBoard reader check: needs a Python with tensorboard and tbparse at \
             ~/.cache/taper-ref/bin/python or TAPER_REF_PYTHON (see README)"
        );
        return;
    };
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let scalars = theirs["scalars"].as_array().unwrap();
    assert_eq!(scalars.len(), points.len(), "TensorBoard reads as many scalars as were written");
    let mut seen: BTreeMap<(String, String, i64), Vec<f64>> = BTreeMap::new();
    for s in scalars {
        let key = (
            s["run"].as_str().unwrap().to_string(),
            s["tag"].as_str().unwrap().to_string(),
            s["step"].as_i64().unwrap(),
        );
        seen.entry(key).or_default().push(s["value"].as_f64().unwrap_or(f64::NAN));
    }
    for p in &points {
        let got = &seen[&(p.run.clone(), p.tag.clone(), p.step)];
        assert!(
            // Exact in f32, the type TensorBoard stores (JSON's decimal carries it as an f64).
            got.iter().any(|&v| v as f32 == p.value || (v.is_nan() && p.value.is_nan())),
            "{p:?}: TensorBoard read {got:?}"
        );
    }
    let hp_theirs = theirs["hparams"].as_object().unwrap();
    for run in runs.keys().chain(std::iter::once(&"char".to_string())) {
        let ours = read_hparams(&logs.join(run)).unwrap();
        let t = hp_theirs[run].as_object().unwrap();
        assert_eq!(t.len(), ours.len(), "{run}");
        for (k, v) in ours {
            let want = match v {
                HParam::Number(x) => serde_json::json!(x),
                HParam::Text(s) => serde_json::json!(s),
                HParam::Bool(b) => serde_json::json!(b),
            };
            assert_eq!(t[&k], want, "{run} {k}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unwritable_logdir_is_one_clear_error_before_any_training() {
    let dir = tmp("tb-blocked");
    let blocked = dir.join("file");
    std::fs::write(&blocked, "not a directory").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_taper"))
        .args(["sweep", "--problem", "quadratic", "--optimizer", "sgd:lr=0.1", "--quiet"])
        .arg("--out")
        .arg(dir.join("results"))
        .arg("--logdir")
        .arg(blocked.join("logs"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(err.contains("logs"), "{err}");
    assert!(!dir.join("results/cells").exists(), "nothing ran");
    std::fs::remove_dir_all(&dir).unwrap();
}
