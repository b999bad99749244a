//! The `taper` command end to end: a sweep run whole, as three shards in separate processes and
//! with `--jobs` gives the same results; interrupted sweeps resume; tuning reruns the best
//! settings; divergence is recorded; the report and CSV show it all; bad input is one clear
//! error (exit 2).

mod command;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use taper_lab::sweep::store::{self, CellResult, Status};

use command::{fails, ok, taper, EXE};

fn cells(dir: &Path) -> BTreeMap<store::CellKey, CellResult> {
    store::read_cells(dir).unwrap().into_iter().map(|(k, (_, c))| (k, c)).collect()
}

fn assert_same(a: &BTreeMap<store::CellKey, CellResult>, b: &BTreeMap<store::CellKey, CellResult>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same cells");
    for (k, x) in a {
        assert!(x.same_outcome(&b[k]), "{k:?}: {x:?} vs {:?}", b[k]);
    }
}

/// A small sweep over the problems that need no data, plus the args that define it.
const GRID: &[&str] = &[
    "--problem",
    "quadratic",
    "--problem",
    "linreg",
    "--optimizer",
    "sgd:lr=[0.03,0.3,1e10]",
    "--optimizer",
    "rmsprop:lr=logspace(0.01,1,3),alpha=0.9",
    "--seeds",
    "2",
];

fn sweep_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["sweep"];
    v.extend_from_slice(GRID);
    v.extend_from_slice(&["--out", out, "--quiet"]);
    v.extend_from_slice(extra);
    v
}

fn tmp(prefix: &str) -> PathBuf {
    let d = common::out_dir(prefix);
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn whole_sharded_and_parallel_sweeps_give_the_same_results() {
    let whole = tmp("sweep-whole");
    let w = whole.to_str().unwrap();
    let line = ok(&sweep_args(w, &[]));
    // 2 problems × (3 + 3 settings) × 2 seeds.
    assert!(line.contains("24 cells: 24 run (4 diverged), 0 already done"), "{line}");
    let reference = cells(&whole);
    assert_eq!(reference.len(), 24);

    // Three shards in separate processes, into one directory.
    let shared = tmp("sweep-shards");
    let s = shared.to_str().unwrap();
    let children: Vec<_> = (1..=3)
        .map(|k| {
            let shard = format!("{k}/3");
            Command::new(EXE)
                .args(sweep_args(s, &["--shard", &shard]))
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("shard starts")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_same(&reference, &cells(&shared));

    // Shards into separate directories, merged by the report.
    let parts: Vec<PathBuf> = (1..=3).map(|k| tmp(&format!("sweep-part{k}"))).collect();
    for (k, p) in parts.iter().enumerate() {
        let shard = format!("{}/3", k + 1);
        let line = ok(&sweep_args(p.to_str().unwrap(), &["--shard", &shard]));
        assert!(line.contains(&format!("shard {shard}: 8 cells")), "{line}");
    }
    let merged: BTreeMap<_, _> = parts.iter().flat_map(|p| cells(p)).collect();
    assert_same(&reference, &merged);
    let report = tmp("sweep-report");
    let csv = report.join("runs.csv");
    let mut args = vec!["report"];
    let part_strs: Vec<&str> = parts.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend_from_slice(&part_strs);
    args.extend_from_slice(&["--out", report.to_str().unwrap(), "--csv", csv.to_str().unwrap()]);
    ok(&args);
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    for want in [
        "## quadratic",
        "## linreg",
        "quadratic_sensitivity.svg",
        "linreg_curves.svg",
        "Performance profile",
        "sgd",
        "rmsprop:alpha=0.9",
    ] {
        assert!(md.contains(want), "report lacks {want}:\n{md}");
    }
    // The diverging learning rate shows: 2 settings of 3 fine, 1 diverged, in each problem.
    assert_eq!(md.matches("| 1 of 3 |").count(), 2, "{md}");
    for f in ["quadratic_curves.svg", "quadratic_sensitivity.svg", "linreg_sensitivity.svg", "profile.svg"] {
        assert!(std::fs::read_to_string(report.join(f)).unwrap().starts_with("<svg"), "{f}");
    }
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    let mut rows = csv_text.lines();
    assert!(rows.next().unwrap().starts_with("problem,optimizer,spec,seed,stage,status,final_metric,"));
    assert_eq!(rows.clone().count(), 24);
    assert_eq!(rows.filter(|r| r.contains(",diverged,")).count(), 4);

    // A cell found in two directories with different outcomes is reported, not merged silently.
    let (path, mut cell) = store::read_cells(&parts[0]).unwrap().into_values().next().unwrap();
    cell.final_metric += 1.0;
    let rel = path.strip_prefix(&parts[0]).unwrap();
    store::write_atomic(&parts[1].join(rel), serde_json::to_string(&cell).unwrap().as_bytes()).unwrap();
    ok(&args);
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    assert!(md.contains("**Warning**: 1 cells differ between directories"), "{md}");

    // Two local jobs.
    let jobs = tmp("sweep-jobs");
    ok(&sweep_args(jobs.to_str().unwrap(), &["--jobs", "2"]));
    assert_same(&reference, &cells(&jobs));
    for d in [whole, shared, report, jobs].iter().chain(&parts) {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn an_interrupted_sweep_resumes_and_tuning_reruns_the_best() {
    let dir = tmp("sweep-resume");
    let d = dir.to_str().unwrap();
    ok(&sweep_args(d, &[]));
    let before = cells(&dir);
    // Lose three cells (as a killed run would never have written them): only they run again.
    let gone: Vec<PathBuf> = store::read_cells(&dir).unwrap().into_values().map(|(p, _)| p).take(3).collect();
    for p in &gone {
        std::fs::remove_file(p).unwrap();
    }
    let line = ok(&sweep_args(d, &[]));
    assert!(line.contains("24 cells: 3 run"), "{line}");
    assert!(line.contains("21 already done"), "{line}");
    assert_same(&before, &cells(&dir));
    // The same directory with another grid is another sweep: refused, nothing written.
    let o = taper(&["sweep", "--problem", "quadratic", "--optimizer", "sgd:lr=0.1", "--out", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds results of another sweep"));
    assert_eq!(cells(&dir).len(), 24);

    // Tuning: 1 grid seed, then the best setting of each optimizer over 3 seeds.
    let tuned = tmp("sweep-tune");
    let t = tuned.to_str().unwrap();
    let line = ok(&[
        "sweep",
        "--problem",
        "linreg",
        "--optimizer",
        "sgd:lr=[0.03,0.3]",
        "--optimizer",
        "adam:lr=[0.1,1]",
        "--seeds",
        "1",
        "--tune",
        "3",
        "--out",
        t,
        "--quiet",
    ]);
    // Grid: 4 cells; final: 2 optimizers × seeds 0..3, of which seed 0 is done.
    assert!(line.contains("10 cells: 8 run (0 diverged), 2 already done"), "{line}");
    let got = cells(&tuned);
    assert_eq!(got.len(), 8);
    let finals: Vec<&CellResult> = got.values().filter(|c| c.stage == store::Stage::Final).collect();
    assert_eq!(finals.len(), 4);
    // The best sgd setting on linreg is lr=0.3 (it reaches the optimum, 0.03 does not).
    let best_sgd: Vec<&&CellResult> = finals.iter().filter(|c| c.optimizer == "sgd").collect();
    assert!(best_sgd.iter().all(|c| c.spec.starts_with("sgd:lr=0.3,")), "{best_sgd:?}");
    // Sharded tuning runs stage by stage.
    fails(
        &["sweep", "--problem", "linreg", "--optimizer", "sgd", "--tune", "2", "--shard", "1/2", "--out", t],
        "run --stage grid on every shard",
    );
    let partial = tmp("sweep-partial");
    let p = partial.to_str().unwrap();
    let tune_args = |stage: &'static str, shard: &'static str| {
        vec![
            "sweep",
            "--problem",
            "linreg",
            "--optimizer",
            "sgd:lr=[0.03,0.3]",
            "--tune",
            "2",
            "--stage",
            stage,
            "--shard",
            shard,
            "--out",
            p,
            "--quiet",
        ]
    };
    ok(&tune_args("grid", "1/2"));
    fails(&tune_args("final", "1/2"), "the grid stage is incomplete");
    ok(&tune_args("grid", "2/2"));
    ok(&tune_args("final", "1/2"));
    ok(&tune_args("final", "2/2"));
    assert_eq!(cells(&partial).len(), 3, "2 grid cells and the best setting's seed 1");
    for d in [dir, tuned, partial] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn divergence_is_recorded_not_fatal() {
    let dir = tmp("sweep-diverge");
    let d = dir.to_str().unwrap();
    ok(&[
        "sweep",
        "--problem",
        "quadratic",
        "--optimizer",
        "sgd:lr=1e10",
        "--out",
        d,
        "--quiet",
        "--threads",
        "1",
    ]);
    let got = cells(&dir);
    let c = got.values().next().unwrap();
    assert_eq!(c.status, Status::Diverged);
    // `--threads` set the process's threads (the environment said 2), and the cell records them.
    assert_eq!(c.machine.threads, 1);
    assert!(c.final_metric.is_nan() && c.steps_to_target.is_none());
    // The file says null, not NaN (which JSON cannot hold).
    let text = std::fs::read_to_string(store::cell_path(&dir, "quadratic", &c.spec, 0)).unwrap();
    assert!(text.contains("\"final_metric\":null"), "{text}");
    let report = tmp("sweep-diverge-report");
    ok(&["report", d, "--out", report.to_str().unwrap()]);
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    assert!(md.contains("none (every setting diverged or is missing)"), "{md}");
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(report);
}

#[test]
fn bad_input_is_one_clear_error() {
    let dir = tmp("sweep-bad");
    let d = dir.to_str().unwrap();
    let base = |opt: &'static str| vec!["sweep", "--problem", "quadratic", "--optimizer", opt, "--out", d];
    fails(
        &["sweep", "--problem", "nope", "--optimizer", "sgd", "--out", d],
        "unknown problem `nope`: known problems are quadratic",
    );
    fails(&base("nadamw:lr=0.1"), "unknown optimizer `nadamw`");
    fails(&base("sgd:lr=[0.1,"), "unclosed bracket");
    fails(&base("sgd:lr=[]"), "empty list");
    fails(&base("sgd:lr=logspace(1e-3,1,0)"), "empty grid");
    fails(&base("sgd:lr=[0.1,-1]"), "invalid lr=-1");
    fails(&base("sgd:momentum=[0.1,0.9],lr=[0.1"), "unclosed bracket");
    let mut shard = base("sgd");
    shard.extend_from_slice(&["--shard", "3/2"]);
    let o = taper(&shard);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard `3/2`: expected K/N with 1 <= K <= N"));
    let mut seeds = base("sgd");
    seeds.extend_from_slice(&["--seeds", "0"]);
    fails(&seeds, "--seeds must be at least 1");
    fails(
        &[
            "sweep",
            "--problem",
            "quadratic",
            "--optimizer",
            "sgd:lr=[0.1,0.2]",
            "--optimizer",
            "sgd:lr=[0.3]",
            "--out",
            d,
        ],
        "share the label `sgd`",
    );
    assert!(!dir.join("cells").exists(), "nothing ran");

    // Reports: a directory that is not a sweep's, and two different sweeps of one problem.
    fails(&["report", "/nonexistent/taper", "--out", d], "has no sweep.json");
    let a = tmp("sweep-mix-a");
    let b = tmp("sweep-mix-b");
    ok(&[
        "sweep",
        "--problem",
        "quadratic",
        "--optimizer",
        "sgd:lr=[0.1,0.2]",
        "--out",
        a.to_str().unwrap(),
        "--quiet",
    ]);
    ok(&[
        "sweep",
        "--problem",
        "quadratic",
        "--optimizer",
        "sgd:lr=[0.1,0.3]",
        "--out",
        b.to_str().unwrap(),
        "--quiet",
    ]);
    fails(
        &["report", a.to_str().unwrap(), b.to_str().unwrap(), "--out", d],
        "hold different sweeps of problem `quadratic`",
    );
    // A stray cell from another sweep copied in is refused too.
    let stray = store::read_cells(&b)
        .unwrap()
        .into_values()
        .map(|(p, _)| p)
        .find(|p| store::read_cell(p).unwrap().unwrap().spec.starts_with("sgd:lr=0.3"));
    let stray = stray.unwrap();
    let dest = a.join("cells/quadratic").join(stray.file_name().unwrap());
    std::fs::copy(&stray, &dest).unwrap();
    fails(&["report", a.to_str().unwrap(), "--out", d], "which the sweep in");
    for x in [dir, a, b] {
        let _ = std::fs::remove_dir_all(x);
    }
}

#[test]
fn the_data_problems_run_in_a_sweep() {
    let Some(data) = common::data_dir(
        "sweep data problems",
        &["airfoil_self_noise.dat", "mnist/t10k-images-idx3-ubyte.gz"],
    ) else {
        return;
    };
    let dir = tmp("sweep-data");
    let line = ok(&[
        "sweep",
        "--problem",
        "airfoil",
        "--problem",
        "mnist_mlp",
        "--optimizer",
        "adam:lr=[0.001,0.01]",
        // Matrices only: the problems give it their weight matrices and AdamW the rest.
        "--optimizer",
        "muon:lr=0.02",
        "--seeds",
        "1",
        "--out",
        dir.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--offline",
        "--quiet",
    ]);
    assert!(line.contains("6 cells: 6 run (0 diverged)"), "{line}");
    let got = cells(&dir);
    let airfoil: Vec<&CellResult> = got.values().filter(|c| c.problem == "airfoil").collect();
    // d2l's Adam at lr 0.01 reaches about 0.243 in 2 epochs (the chapter's figure).
    let best = airfoil.iter().map(|c| c.final_metric).fold(f64::INFINITY, f64::min);
    assert!((0.235..0.26).contains(&best), "{best}");
    assert!(
        airfoil.iter().all(|c| c.curve.len() == 31 && c.steps == 300),
        "2 epochs of 150 steps, a point every 10"
    );
    let mlp: Vec<&CellResult> = got.values().filter(|c| c.problem == "mnist_mlp").collect();
    assert!(
        mlp.iter().all(|c| c.curve.len() == 13 && c.final_metric > 0.85),
        "{:?}",
        mlp.iter().map(|c| c.final_metric).collect::<Vec<_>>()
    );

    // The same bits on one thread and on two: the ConvNet's kernel gradients and its first
    // linear layer's deep product sum in an order that does not depend on the threads.
    let runs: Vec<PathBuf> = ["1", "2"]
        .iter()
        .map(|t| {
            let d = tmp(&format!("sweep-threads{t}"));
            ok(&[
                "sweep",
                "--problem",
                "mnist_convnet",
                "--optimizer",
                "adam:lr=[0.001]",
                "--threads",
                t,
                "--out",
                d.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
                "--offline",
                "--quiet",
            ]);
            d
        })
        .collect();
    let (one, two) = (cells(&runs[0]), cells(&runs[1]));
    assert_same(&one, &two);
    assert!(one.values().all(|c| c.machine.threads == 1) && two.values().all(|c| c.machine.threads == 2));
    for d in runs.iter().chain([&dir]) {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// `x²` from `x = 1`, 10 steps: a user's problem, registered through the library.
struct Parabola;

impl taper_lab::sweep::Problem for Parabola {
    fn name(&self) -> &str {
        "parabola"
    }
    fn describe(&self) -> String {
        "x² from 1".into()
    }
    fn metric(&self) -> taper_lab::sweep::Metric {
        taper_lab::sweep::Metric { name: "f".into(), goal: taper_lab::sweep::Goal::Minimize, target: 1e-3 }
    }
    fn budget(&self) -> String {
        "10 steps".into()
    }
    fn run(&self, spec: &str, _seed: u64) -> anyhow::Result<taper_lab::sweep::Curve> {
        let mut store = taper_lab::ParamStore::new();
        let x = store.insert("x", taper_lab::Tensor::new(&[1.0f64], &taper_lab::Device::Cpu)?)?;
        let mut opt = taper_lab::optim::from_spec(spec, store.trainable())?;
        let mut rec = taper_lab::sweep::Recorder::new();
        for step in 0..=10 {
            let tape = taper_lab::Tape::new();
            let f = tape.param(&x).sqr()?.sum_all()?;
            rec.point(step, f.to_scalar_f64()?);
            if step < 10 {
                opt.step(&f.backward()?)?;
            }
        }
        Ok(rec.finish())
    }
}

#[test]
fn a_registered_problem_sweeps_like_a_built_in_one() {
    use taper_lab::sweep::{self, Context, Shard, Sweep};
    sweep::register("parabola", "x² from 1", |_: &Context| Ok(Box::new(Parabola) as Box<dyn sweep::Problem>))
        .unwrap();
    let again =
        sweep::register("parabola", "", |_: &Context| Ok(Box::new(Parabola) as Box<dyn sweep::Problem>));
    assert!(again.unwrap_err().to_string().contains("the name is taken"));
    assert!(sweep::register(
        "quadratic",
        "",
        |_: &Context| Ok(Box::new(Parabola) as Box<dyn sweep::Problem>)
    )
    .is_err());
    let ctx = Context { device: taper_lab::Device::Cpu, data_dir: PathBuf::from("."), offline: true };
    let s = Sweep::new(&["parabola".into()], &["sgd:lr=[0.1,0.5]".into()], 1, None, &ctx).unwrap();
    let dir = tmp("sweep-registered");
    let summary = sweep::run(&s, &s.grid_cells(), Shard::ALL, &dir, |_| {}).unwrap();
    assert_eq!((summary.ran, summary.diverged), (2, 0));
    let got = cells(&dir);
    // lr = 0.5 jumps to the minimum in one step (x ← x - 0.5·2x); lr = 0.1 shrinks x by 0.8 a step.
    let f: Vec<f64> = got.values().map(|c| c.final_metric).collect();
    assert!(f.contains(&0.0) && f.iter().any(|&v| (v - 0.8f64.powi(20)).abs() < 1e-15), "{f:?}");
    let fast = got.values().find(|c| c.final_metric == 0.0).unwrap();
    assert_eq!(fast.steps_to_target, Some(1));

    // An optimizer registered by this program (Signum, from another crate) sweeps too, and the
    // stock `taper report`, which does not know it, reports it from its cells.
    taper_lab::optim::register::<taper_extend_example::Signum>().unwrap();
    let s = Sweep::new(
        &["parabola".into()],
        &["signum:lr=[0.01,0.1]".into(), "sgd:lr=[0.1]".into()],
        2,
        None,
        &ctx,
    )
    .unwrap();
    let signum = tmp("sweep-signum");
    sweep::run(&s, &s.grid_cells(), Shard::ALL, &signum, |_| {}).unwrap();
    let report = tmp("sweep-signum-report");
    ok(&["report", signum.to_str().unwrap(), "--out", report.to_str().unwrap()]);
    let md = std::fs::read_to_string(report.join("REPORT.md")).unwrap();
    assert!(md.contains("| signum | lr=0.1 |") && md.contains("| signum | lr=0.01 | "), "{md}");
    for d in [dir, signum, report] {
        let _ = std::fs::remove_dir_all(d);
    }
}
