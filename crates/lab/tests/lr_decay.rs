//! The effective-learning-rate claim, numerically, through the `lr_decay` example's code path.

use taper_lab::experiments::lr_decay;

use clap::Parser;

fn args(extra: &[&str]) -> lr_decay::Args {
    // A directory per call: tests run in parallel and must not read each other's files.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("taper-lrdecay-{}-{call}", std::process::id()));
    let mut v = vec!["lr_decay", "--out", out.to_str().unwrap()];
    v.extend_from_slice(extra);
    lr_decay::Args::try_parse_from(v).unwrap()
}

#[test]
fn adagrad_vanishes_like_one_over_root_t_and_rmsprop_levels_off() {
    let rates = lr_decay::run_cli(&args(&["--problem", "constant"])).unwrap();
    let [ada, rms9, rms99] = [&rates[0], &rates[1], &rates[2]];
    assert!(
        ada.spec.starts_with("adagrad")
            && rms9.spec.contains("gamma=0.9,")
            && rms99.spec.contains("gamma=0.99")
    );
    // Under a steady gradient AdaGrad's s_t = t·g², so its rate is η/(√t·|g|): 1/√t exactly.
    for t in [10, 100, 1000] {
        let expect = (1.0 / t as f64).sqrt();
        let got = ada.mean_at(t) / ada.mean_at(1);
        assert!((got / expect - 1.0).abs() < 1e-3, "AdaGrad at {t}: {got} vs 1/√t = {expect}");
    }
    assert!(ada.mean_at(1000) < ada.mean_at(1) / 20.0);
    // RMSprop's s_t → g²: the rate settles at η/|g| and stays.
    for r in [rms9, rms99] {
        let (r100, r1000) = (r.mean_at(100), r.mean_at(1000));
        assert!(r1000 > r100 / 2.0 && r1000 < r100 * 2.0, "{}: {r100} -> {r1000}", r.spec);
        assert!(r1000 > 10.0 * ada.mean_at(1000), "{}: RMSprop keeps a rate AdaGrad lost", r.spec);
    }
    assert!((rms9.mean_at(1000) / rms9.mean_at(10) - 1.0).abs() < 0.5);
}

#[test]
fn linear_regression_problem_and_plot() {
    let a = args(&["--steps", "200"]);
    let rates = lr_decay::run_cli(&a).unwrap();
    assert_eq!(rates[0].per_param.len(), 2, "b and w");
    assert!(rates[0].mean_at(200) < rates[0].mean_at(1));
    let svg = std::fs::read_to_string(a.common.out.clone().unwrap().join("lr_decay.svg")).unwrap();
    assert!(svg.contains("effective learning rate"));
}

#[test]
fn bad_input_is_an_error() {
    assert!(lr_decay::run_cli(&args(&["--problem", "mnist"])).is_err());
    assert!(lr_decay::run_cli(&args(&["--steps", "0"])).is_err());
    assert!(
        lr_decay::run_cli(&args(&["--optimizers", "adam"])).is_err(),
        "effective lr is for adagrad/rmsprop"
    );
}
