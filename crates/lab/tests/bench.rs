//! `taper bench` end to end on the suite's data-free workloads (`linreg`, `rosenbrock`): the same
//! score whole, in three shards run as separate processes, and with `--jobs`; held-out variants
//! drawn from the seed and reported apart; self-tuning's budget; every trial in TensorBoard; bad
//! input is one clear line and exit status 2, with the results already there kept.

mod command;
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};

use taper_lab::bench::run::Entry;
use taper_lab::bench::suite::{self, Targets};

use command::ok;

/// Fails with exit status 2 and one line saying `says`.
fn fails(args: &[&str], says: &str) {
    let err = command::fails(args, says);
    assert_eq!(err.lines().filter(|l| !l.trim().is_empty()).count(), 1, "one line: {err}");
}

fn tmp(prefix: &str) -> PathBuf {
    common::out_dir(prefix)
}

/// `taper bench` of `optimizer` on `workloads` with `trials` x `studies`, written to `out`.
fn bench_args<'a>(
    optimizer: &'a str,
    out: &'a str,
    workloads: &[&'a str],
    budget: [&'a str; 2],
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec!["bench", "--optimizer", optimizer];
    for w in workloads {
        a.extend_from_slice(&["--workload", w]);
    }
    a.extend_from_slice(&["--trials", budget[0], "--studies", budget[1], "--out", out, "--quiet"]);
    a.extend_from_slice(extra);
    a
}

/// The bench's arguments on the data-free workloads.
fn args<'a>(optimizer: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    bench_args(optimizer, out, &["linreg", "rosenbrock"], ["3", "3"], extra)
}

/// The smallest bench: 2 trials, 1 study, on `linreg` alone.
fn small<'a>(optimizer: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    bench_args(optimizer, out, &["linreg"], ["2", "1"], extra)
}

fn entry(dir: &Path) -> Entry {
    serde_json::from_str(&std::fs::read_to_string(dir.join("entry.json")).unwrap()).unwrap()
}

/// The score line of a run's output.
fn score_line(out: &str) -> String {
    out.lines().find(|l| l.starts_with("score ")).unwrap_or_else(|| panic!("no score in: {out}")).to_string()
}

#[test]
fn whole_sharded_and_parallel_runs_give_the_same_score() {
    let (a, b, c) = (tmp("bench-whole"), tmp("bench-shards"), tmp("bench-jobs"));
    let (a_s, b_s, c_s) = (a.to_str().unwrap(), b.to_str().unwrap(), c.to_str().unwrap());
    let whole = ok(&args("adam", a_s, &[]));
    let line = score_line(&whole);
    assert!(whole.contains("linreg") && whole.contains("rosenbrock"), "{whole}");
    // Three shards, each its own process; the first two leave the bench incomplete.
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = ok(&args("adam", b_s, &["--shard", &shard]));
        if k < 3 {
            assert!(out.contains("run the other shards"), "{out}");
        } else {
            assert_eq!(score_line(&out), line, "the last shard completes the bench and scores it");
        }
    }
    assert_eq!(score_line(&ok(&args("adam", b_s, &[]))), line, "rescoring runs nothing new");
    assert_eq!(score_line(&ok(&args("adam", c_s, &["--jobs", "2"]))), line);
    let (ea, eb, ec) = (entry(&a), entry(&b), entry(&c));
    for w in ea.workloads.keys() {
        assert_eq!(ea.steps(w), eb.steps(w), "{w}");
        assert_eq!(ea.steps(w), ec.steps(w), "{w}");
    }
    // One suite workload and one held-out variant each; 3 studies x 3 trials each.
    assert_eq!(ea.workloads.len(), 4, "{:?}", ea.workloads.keys());
    assert!(ea.details.iter().all(|w| w.studies.len() == 3 && w.studies.iter().all(|s| s.trials == 3)));
    let report = std::fs::read_to_string(a.join("REPORT.md")).unwrap();
    assert!(report.contains("held out: ") && report.contains("| linreg | suite |"), "{report}");
}

#[test]
fn held_out_variants_come_from_the_seed_and_budgets_from_the_ruleset() {
    let targets = Targets::builtin().unwrap();
    let variants = targets.variants("linreg");
    let drawn: Vec<usize> = (0..8).map(|s| suite::draw_variant(s, "linreg", &variants).unwrap()).collect();
    let seed = (0..8).find(|&s| drawn[s] != drawn[0]).expect("another seed draws another variant");
    let dir = tmp("bench-seed");
    let d = dir.to_str().unwrap();
    let seed_s = seed.to_string();
    ok(&args("adam", d, &["--seed", &seed_s]));
    let e = entry(&dir);
    let name = suite::workload_name("linreg", drawn[seed]);
    assert!(e.workloads.contains_key(&name), "seed {seed} draws {name}: {:?}", e.workloads.keys());

    // Self-tuning: the spec as given, one run per study, 3 x the external budget.
    let st = tmp("bench-self");
    let s = st.to_str().unwrap();
    let out = ok(&[
        "bench",
        "--ruleset",
        "self-tuning",
        "--optimizer",
        "adam:lr=0.1",
        "--workload",
        "linreg",
        "--studies",
        "1",
        "--out",
        s,
        "--quiet",
    ]);
    let t = targets.get("linreg", 0).unwrap();
    let budget = suite::self_tuning_budget(t.target_steps);
    assert!(out.contains(&format!("| {budget} |")), "budget {budget}: {out}");
    let e = entry(&st);
    assert_eq!(e.details[0].studies[0].trials, 1);
    assert!(out.contains("self-tuning, 1 studies"), "{out}");
}

#[test]
fn every_trial_is_a_tensorboard_run() {
    let (out, logdir) = (tmp("bench-tb-out"), tmp("bench-tb-log"));
    ok(&small("adam", out.to_str().unwrap(), &["--logdir", logdir.to_str().unwrap()]));
    let scalars = taper_lab::train::tensorboard::read_scalars(&logdir).unwrap();
    let mut runs: Vec<&str> =
        scalars.iter().filter(|s| s.tag == "eval/loss").map(|s| s.run.as_str()).collect();
    runs.dedup();
    // Two trials on linreg and two on its drawn variant, each its own run with its curve.
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(
        runs.iter().any(|r| r.starts_with("linreg/")) && runs.iter().any(|r| r.starts_with("linreg.v")),
        "{runs:?}"
    );
}

#[test]
fn bad_input_is_one_clear_line_and_keeps_what_is_there() {
    let dir = tmp("bench-bad");
    let d = dir.to_str().unwrap();
    ok(&args("adam", d, &[]));
    let before = std::fs::read_to_string(dir.join("entry.json")).unwrap();
    fails(&args("", d, &[]), "search space is empty");
    fails(&args("adamw:lr=0.001", d, &[]), "is empty: it has no range");
    let budget = |flag: &'static str| -> Vec<&str> {
        let mut a = args("adam", d, &[]);
        let i = a.iter().position(|x| *x == flag).unwrap();
        a[i + 1] = "0";
        a
    };
    fails(&budget("--trials"), "tuning budget of no trial");
    fails(&budget("--studies"), "tuning budget of no study");
    fails(&args("adamw:lr=loguniform(1e-4,1e-2)", d, &["--ruleset", "self-tuning"]), "has ranges");
    fails(&args("nosuch", d, &[]), "nosuch");
    fails(&args("adam", d, &["--workload", "quadratic"]), "not a workload of the suite");
    // A targets file of another suite version.
    let old = dir.join("old-targets.json");
    std::fs::write(&old, suite::BUILTIN_TARGETS.replace(suite::SUITE, "taper-bench-0")).unwrap();
    fails(&args("adam", d, &["--targets", old.to_str().unwrap()]), "suite `taper-bench-0`");
    // A logdir that cannot be written: a path through a file.
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let bad_log = file.join("logs");
    fails(&args("adam", d, &["--logdir", bad_log.to_str().unwrap()]), "logs");
    // Another bench's directory: refused before anything runs.
    fails(&args("sgd", d, &[]), "another sweep");
    assert_eq!(std::fs::read_to_string(dir.join("entry.json")).unwrap(), before, "the results are kept");
}

#[test]
fn the_leaderboard_grows_run_by_run_and_a_bad_merge_changes_nothing() {
    let dir = tmp("bench-board");
    let run = |space: &str, name: &str| -> String {
        let out = dir.join(name);
        let out_s = out.to_str().unwrap().to_string();
        ok(&small(space, &out_s, &[]));
        out_s
    };
    let (adam, lion) = (run("adam", "adam"), run("lion", "lion"));
    let json = dir.join("leaderboard.json");
    let md = dir.join("BENCH.md");
    let page = "# Bench\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\n<!-- targets:start -->\n<!-- targets:end -->\n";
    std::fs::write(&md, page).unwrap();
    let (json_s, md_s) = (json.to_str().unwrap(), md.to_str().unwrap());
    let board = || -> Vec<String> {
        let b: taper_lab::bench::leaderboard::Leaderboard =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(b.suite, suite::SUITE);
        b.entries.into_iter().map(|e| e.name).collect()
    };
    ok(&["bench-leaderboard", &adam, "--json", json_s, "--markdown", md_s]);
    assert_eq!(board(), ["adam"]);
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("| `adam:") && !text.contains("\nold\n") && text.contains("| linreg |"), "{text}");
    assert!(!text.contains("-0.0"), "no target reached shows as —: {text}");
    // Without --merge the file holds only the directories given; with it, the old entries stay
    // and a directory of the same space replaces its entry.
    ok(&["bench-leaderboard", &lion, "--json", json_s, "--merge"]);
    assert_eq!(board(), ["adam", "lion"]);
    ok(&["bench-leaderboard", &adam, "--json", json_s, "--merge"]);
    assert_eq!(board(), ["lion", "adam"]);
    ok(&["bench-leaderboard", &lion, "--json", json_s]);
    assert_eq!(board(), ["lion"]);
    // A page without the sections, or a leaderboard of another suite: one line, nothing written.
    let before = std::fs::read_to_string(&json).unwrap();
    let bare = dir.join("bare.md");
    std::fs::write(&bare, "# no sections\n").unwrap();
    fails(
        &["bench-leaderboard", &adam, "--json", json_s, "--markdown", bare.to_str().unwrap()],
        "leaderboard:start",
    );
    assert_eq!(std::fs::read_to_string(&json).unwrap(), before);
    let foreign = dir.join("old.json");
    std::fs::write(&foreign, before.replace(suite::SUITE, "taper-bench-0")).unwrap();
    fails(
        &["bench-leaderboard", &adam, "--json", foreign.to_str().unwrap(), "--merge"],
        "suite `taper-bench-0`",
    );
    fails(&["bench-leaderboard", dir.join("nothing").to_str().unwrap(), "--json", json_s], "entry.json");
    assert_eq!(std::fs::read_to_string(&json).unwrap(), before);
}
