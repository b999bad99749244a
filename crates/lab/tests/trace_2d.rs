//! Every chapter-7 trace through the `trace_2d` example's own code path prints the book's lines,
//! and bad input is an error, never a panic.

use taper_lab::experiments::trace2d as trace_2d;

use clap::Parser;
use serde_json::Value;

fn args(extra: &[&str]) -> trace_2d::Args {
    // A directory per call: tests run in parallel and must not read each other's files.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("taper-trace-{}-{call}", std::process::id()));
    let mut v = vec!["trace_2d"];
    if !extra.contains(&"--out") {
        v.extend(["--out", out.to_str().unwrap()]);
    }
    v.extend_from_slice(extra);
    trace_2d::Args::try_parse_from(v).unwrap()
}

#[test]
fn the_issue_command_prints_the_books_line() {
    let traces =
        trace_2d::run_cli(&args(&["--optimizer", "rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true"]))
            .unwrap();
    assert_eq!(traces[0].lines.last().unwrap(), "epoch 20, x1 -0.010599, x2 0.000000");
}

#[test]
fn every_chapter_7_trace_matches_the_book() {
    let golden: Value = serde_json::from_str(include_str!("../../../tests/golden/d2l_traces.json")).unwrap();
    for t in golden["traces"].as_array().unwrap() {
        let function = if t["function"] == "x1^2+2x2^2" { "sec7.2" } else { "d2l" };
        let traces = trace_2d::run_cli(&args(&[
            "--optimizer",
            t["spec"].as_str().unwrap(),
            "--function",
            function,
            "--every",
            "1",
        ]))
        .unwrap();
        let want: Vec<&str> = t["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        assert_eq!(traces[0].lines, want, "section {} {}", t["section"], t["spec"]);
        if let Some(book) = t["book_last_line"].as_str() {
            assert_eq!(traces[0].lines.last().unwrap(), book);
        }
    }
}

#[test]
fn compare_draws_several_optimizers() {
    let a = args(&[
        "--compare",
        "adagrad:lr=0.4,eps=1e-6,eps_in_sqrt=true,rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true",
    ]);
    let traces = trace_2d::run_cli(&a).unwrap();
    assert_eq!(traces.len(), 2);
    assert_eq!(traces[0].lines.last().unwrap(), "epoch 20, x1 -2.382563, x2 -0.158591");
    let svg = std::fs::read_to_string(a.common.out.clone().unwrap().join("trace_2d.svg")).unwrap();
    assert!(svg.contains("adagrad:lr=0.4") && svg.contains("rmsprop:lr=0.4"), "legend names both");
}

#[test]
fn rosenbrock_makes_progress() {
    let traces = trace_2d::run_cli(&args(&[
        "--function",
        "rosenbrock",
        "--optimizer",
        "adam:lr=0.1",
        "--steps",
        "500",
    ]))
    .unwrap();
    let f = |(a, b): (f64, f64)| (1.0 - a) * (1.0 - a) + 100.0 * (b - a * a) * (b - a * a);
    let (first, last) = (f(traces[0].points[0]), f(*traces[0].points.last().unwrap()));
    assert!(last < 1e-3 * first, "{first} -> {last}");
}

#[test]
fn bad_input_is_an_error() {
    for (extra, needle) in [
        (&["--function", "himmelblau"][..], "unknown function"),
        (&["--optimizer", "nope:lr=1"], "unknown optimizer"),
        (&["--optimizer", "lion"], "`lr` is required"),
        (&["--optimizer", "rmsprop:alpha=2"], "alpha=2"),
        (&["--steps", "0"], "--steps"),
        (&["--start", "1;2"], "--start"),
        (&["--start", "a,2"], "not a number"),
        (&["--dtype", "f16"], "f16"),
        (&["--device", "tpu"], "unknown device"),
        (&["--out", "/proc/no-such-dir/x"], "/proc"),
    ] {
        let err = match trace_2d::run_cli(&args(extra)) {
            Ok(_) => panic!("{extra:?}: expected an error"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(needle), "{extra:?}: `{err}` should mention `{needle}`");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

#[test]
fn a_scheduler_steps_after_every_optimizer_step() {
    // SGD on f = 0.1·x1² + 2·x2²: x1 ← x1·(1 - 0.2·ηt), with ηt = 0.1·0.5ᵗ.
    let traces = trace_2d::run_cli(&args(&[
        "--optimizer",
        "sgd:lr=0.1",
        "--scheduler",
        "exponential:gamma=0.5",
        "--steps",
        "3",
    ]))
    .unwrap();
    let x1 = (0..3).fold(-5.0f64, |x, t| x * (1.0 - 0.2 * (0.1 * 0.5f64.powi(t))));
    assert_eq!(traces[0].points[3].0, x1);
    // A metric-driven scheduler is given the step's value of f; every optimizer takes one.
    let traces = trace_2d::run_cli(&args(&[
        "--compare",
        "lion:lr=0.1,nadam:lr=0.3,radam:lr=0.3,adan:lr=0.3",
        "--scheduler",
        "plateau:patience=1,factor=0.5",
        "--steps",
        "30",
    ]))
    .unwrap();
    assert_eq!(traces.len(), 4);
    // A bad scheduler is refused before any work.
    for (bad, needle) in [("cosine", "`t_max` is required"), ("nope", "unknown scheduler")] {
        let err = trace_2d::run_cli(&args(&["--scheduler", bad])).err().unwrap().to_string();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

#[test]
fn a_closure_driven_optimizer_draws_like_the_others() {
    // L-BFGS with its line search solves the d2l quadratic in a few steps.
    let traces =
        trace_2d::run_cli(&args(&["--optimizer", "lbfgs:lr=1,line_search_fn=strong_wolfe", "--steps", "3"]))
            .unwrap();
    let (x1, x2) = traces[0].points[3];
    assert!(x1.abs() < 1e-4 && x2.abs() < 1e-4, "({x1}, {x2}) from (-5, -2)");
}

#[test]
fn every_registered_optimizer_draws() {
    for name in taper_lab::optim::names() {
        // optax's and a few others require the learning rate; 0.1 suits them all here.
        // The wrappers take theirs through the inner optimizer.
        let spec = match name.as_str() {
            "lookahead" | "sam" => format!("{name}:optimizer=adam(lr=0.1)"),
            _ => format!("{name}:lr=0.1"),
        };
        let traces = trace_2d::run_cli(&args(&["--optimizer", &spec, "--steps", "5"]))
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        let last = traces[0].points[5];
        assert!(last.0.is_finite() && last.1.is_finite() && last != (-5.0, -2.0), "{spec}: {last:?}");
    }
}

/// The 2-D traces of the 2024–2026 optimizers (`scripts/golden/frontier_trajectories.py`): every
/// printed point within 1.5e-6 of the reference's.
#[test]
fn frontier_traces_print_the_references_points() {
    use taper_lab::golden::FRONTIER;
    let golden: Value =
        serde_json::from_str(include_str!("../../../tests/golden/frontier_trajectories.json")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for t in golden["traces"].as_array().unwrap() {
        let spec = t["spec"].as_str().unwrap();
        let name = spec.split(':').next().unwrap();
        if !FRONTIER.contains(&name) {
            continue;
        }
        seen.insert(name);
        let want: Vec<(f64, f64)> = t["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        let steps = (want.len() - 1).to_string();
        let traces =
            trace_2d::run_cli(&args(&["--optimizer", spec, "--steps", &steps, "--every", "1"])).unwrap();
        assert_eq!(traces[0].lines.len(), want.len() - 1);
        for (i, line) in traces[0].lines.iter().enumerate() {
            let (w1, w2) = want[i + 1];
            let nums: Vec<f64> = line.split([',', ' ']).filter_map(|x| x.parse::<f64>().ok()).collect();
            let [_, x1, x2] = nums.as_slice() else { panic!("{line}") };
            assert!(
                (x1 - w1).abs() <= 1.5e-6 && (x2 - w2).abs() <= 1.5e-6,
                "{spec} step {}: printed {line}, the reference ({w1:.9}, {w2:.9})",
                i + 1
            );
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), FRONTIER);
}
