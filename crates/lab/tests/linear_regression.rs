//! The documents' linear regression through the `linear_regression` example's code path.

use taper_lab::experiments::linreg as linear_regression;

use clap::Parser;

fn args(extra: &[&str]) -> linear_regression::Args {
    // A directory per call: tests run in parallel and must not read each other's files.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("taper-linreg-{}-{call}", std::process::id()));
    let mut v = vec!["linear_regression", "--out", out.to_str().unwrap()];
    v.extend_from_slice(extra);
    linear_regression::Args::try_parse_from(v).unwrap()
}

#[test]
fn well_tuned_runs_recover_the_closed_form_answer() {
    let a = args(&[]);
    let report = linear_regression::run_cli(&a).unwrap();
    let (b, w) = report.closed_form;
    assert!((b - 4.0).abs() < 0.5 && (w - 3.0).abs() < 0.5, "data: b≈4, w≈3, got {b} {w}");
    let tuned = [
        "sgd:lr=0.2",
        "adagrad:lr=1,eps=1e-8,eps_in_sqrt=true",
        "rmsprop:lr=0.02,gamma=0.99,eps=1e-8,eps_in_sqrt=true",
    ];
    for spec in tuned {
        let (_, fit) = report.fits.iter().find(|(s, _)| s == spec).unwrap();
        assert!(
            (fit.b - b).abs() < 0.05 && (fit.w - w).abs() < 0.05,
            "{spec}: ({}, {}) vs ({b}, {w})",
            fit.b,
            fit.w
        );
    }
    // The document's RMSprop (lr = 0.01, γ = 0.9) gets there too; its AdaGrad at the same
    // learning rate stalls far away: the vanishing learning rate.
    let doc_rms = &report.fits.iter().find(|(s, _)| s.starts_with("rmsprop:lr=0.01,gamma=0.9")).unwrap().1;
    assert!((doc_rms.b - b).abs() < 0.05 && (doc_rms.w - w).abs() < 0.05);
    let doc_ada = &report.fits.iter().find(|(s, _)| s.starts_with("adagrad:lr=0.01")).unwrap().1;
    assert!(doc_ada.b < 1.0 && doc_ada.w < 1.0, "AdaGrad at lr=0.01 stalls: ({}, {})", doc_ada.b, doc_ada.w);
    let svg = std::fs::read_to_string(a.common.out.clone().unwrap().join("linear_regression.svg")).unwrap();
    assert!(svg.contains("MSE loss") && svg.contains("sgd:lr=0.2"));
}

#[test]
fn bad_input_is_an_error() {
    assert!(linear_regression::run_cli(&args(&["--iters", "0"])).is_err());
    assert!(linear_regression::run_cli(&args(&["--optimizers", "sgd:lr=-1"])).is_err());
    assert!(linear_regression::run_cli(&args(&["--device", "cuda:9"])).is_err());
}
