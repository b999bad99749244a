//! The documents' MNIST ConvNet through the experiment's command line, on the 8,000/2,000 split
//! of the MNIST test set (needs the data: see `common::data_dir`), and the checks that need none.

mod common;

use std::path::Path;

use clap::Parser;
use taper_lab::experiments::mnist::{run_cli, Args};

const FILES: &[&str] = &["mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"];

fn args(dir: &Path, extra: &[&str]) -> Args {
    let out = common::out_dir("mnist");
    let mut v =
        vec!["mnist", "--data-dir", dir.to_str().unwrap(), "--offline", "--out", out.to_str().unwrap()];
    if !extra.contains(&"--split") {
        v.extend(["--split", "test"]);
    }
    v.extend_from_slice(extra);
    Args::try_parse_from(v).unwrap()
}

#[test]
fn convnet_with_adam_reaches_96_5_percent_in_2_epochs() {
    let Some(dir) = common::data_dir("convnet_with_adam_reaches_96_5_percent_in_2_epochs", FILES) else {
        return;
    };
    let r = run_cli(&args(&dir, &["--train-limit", "8000", "--holdout", "2000", "--epochs", "2"]), false)
        .unwrap();
    let acc = *r[0].accuracy.last().unwrap();
    assert!(acc >= 0.965, "held-out accuracy {acc}");
    assert!(r[0].epoch_loss[1] < r[0].epoch_loss[0]);
}

#[test]
fn resume_through_the_example_is_bit_identical() {
    let Some(dir) = common::data_dir("resume_through_the_example_is_bit_identical", FILES) else { return };
    let tmp = common::out_dir("mnist-ck");
    std::fs::create_dir_all(&tmp).unwrap();
    let (a, b) = (tmp.join("straight.safetensors"), tmp.join("half.safetensors"));
    let common = [
        "--model",
        "mlp",
        "--train-limit",
        "1000",
        "--holdout",
        "200",
        "--optimizer",
        "rmsprop:lr=0.001,momentum=0.9",
    ];
    let with = |more: &[&str]| {
        let mut v = common.to_vec();
        v.extend_from_slice(more);
        args(&dir, &v)
    };
    let straight = run_cli(&with(&["--epochs", "2", "--save", a.to_str().unwrap()]), false).unwrap();
    run_cli(&with(&["--epochs", "1", "--save", b.to_str().unwrap()]), false).unwrap();
    let resumed = run_cli(
        &with(&["--epochs", "2", "--resume", b.to_str().unwrap(), "--save", b.to_str().unwrap()]),
        false,
    )
    .unwrap();
    let (ca, cb) =
        (taper_lab::train::checkpoint::read(&a).unwrap(), taper_lab::train::checkpoint::read(&b).unwrap());
    assert_eq!(ca.progress, cb.progress);
    for (name, t) in &ca.model {
        let (x, y) = (
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            cb.model[name].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{name} differs");
    }
    assert_eq!(straight[0].history.points(), resumed[0].history.points(), "the curve, point for point");
}

#[test]
fn a_holdout_larger_than_the_split_is_an_error() {
    let Some(dir) = common::data_dir("a_holdout_larger_than_the_split_is_an_error", FILES) else { return };
    let err = format!(
        "{:#}",
        run_cli(&args(&dir, &["--train-limit", "9999", "--holdout", "2000"]), false).err().unwrap()
    );
    assert!(err.contains("--train-limit"), "{err}");
}

// ---------------------------------------------------------------- no data needed

#[test]
fn bad_arguments_are_refused_before_any_data_is_read() {
    let empty = common::out_dir("mnist-empty");
    for (extra, needle) in [
        (&["--model", "resnet"][..], "unknown model"),
        (&["--split", "val"], "--split"),
        (&["--optimizer", "adam:beta1=1"], "beta1=1"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--compare", "adam,sgd", "--save", "/tmp/x"], "--save"),
        (&["--scheduler", "cosine:t_max=0"], "t_max"),
        (&["--scheduler", "onecycle:total_steps=10"], "`max_lr` is required"),
    ] {
        let err = format!("{:#}", run_cli(&args(&empty, extra), false).err().unwrap());
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
}

#[test]
fn missing_data_offline_names_the_file() {
    let empty = common::out_dir("mnist-missing");
    std::fs::create_dir_all(&empty).unwrap();
    let err = format!("{:#}", run_cli(&args(&empty, &[]), false).err().unwrap());
    assert!(err.contains("t10k-images-idx3-ubyte.gz") && err.contains("TAPER_DATA_DIR"), "{err}");
}
