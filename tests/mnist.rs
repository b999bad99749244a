//! The documents' MNIST ConvNet through the `mnist` example's code path, on the 8,000/2,000
//! split of the MNIST test set (needs `TAPER_DATA_DIR` or `../shared/data`).

#[path = "../examples/mnist.rs"]
#[allow(dead_code)]
mod mnist_example;

use std::path::PathBuf;

use clap::Parser;

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TAPER_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    dir.join("mnist/t10k-images-idx3-ubyte.gz").exists().then_some(dir)
}

fn args(dir: &std::path::Path, extra: &[&str]) -> mnist_example::Args {
    // A directory per call: tests run in parallel and must not read each other's files.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("taper-mnist-{}-{call}", std::process::id()));
    let mut v =
        vec!["mnist", "--data-dir", dir.to_str().unwrap(), "--offline", "--out", out.to_str().unwrap()];
    if !extra.contains(&"--split") {
        v.extend(["--split", "test"]);
    }
    v.extend_from_slice(extra);
    mnist_example::Args::try_parse_from(v).unwrap()
}

#[test]
fn convnet_with_adam_reaches_96_5_percent_in_2_epochs() {
    let Some(dir) = data_dir() else {
        eprintln!("skipped: no MNIST files (set TAPER_DATA_DIR)");
        return;
    };
    let r = mnist_example::run(
        &args(&dir, &["--train-limit", "8000", "--holdout", "2000", "--epochs", "2"]),
        false,
    )
    .unwrap();
    let acc = *r[0].accuracy.last().unwrap();
    assert!(acc >= 0.965, "held-out accuracy {acc}");
    assert!(r[0].epoch_loss[1] < r[0].epoch_loss[0]);
}

#[test]
fn resume_through_the_example_is_bit_identical() {
    let Some(dir) = data_dir() else { return };
    let tmp = std::env::temp_dir().join(format!("taper-mnist-ck-{}", std::process::id()));
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
    mnist_example::run(&with(&["--epochs", "2", "--save", a.to_str().unwrap()]), false).unwrap();
    mnist_example::run(&with(&["--epochs", "1", "--save", b.to_str().unwrap()]), false).unwrap();
    mnist_example::run(
        &with(&["--epochs", "2", "--resume", b.to_str().unwrap(), "--save", b.to_str().unwrap()]),
        false,
    )
    .unwrap();
    let (ca, cb) = (taper::train::checkpoint::read(&a).unwrap(), taper::train::checkpoint::read(&b).unwrap());
    assert_eq!(ca.progress, cb.progress);
    for (name, t) in &ca.model {
        let (x, y) = (
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            cb.model[name].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{name} differs");
    }
}

#[test]
fn bad_input_is_an_error() {
    let Some(dir) = data_dir() else { return };
    for (extra, needle) in [
        (&["--model", "resnet"][..], "unknown model"),
        (&["--split", "val"], "--split"),
        (&["--train-limit", "9999", "--holdout", "2000"], "--train-limit"),
        (&["--optimizer", "adam:beta1=1"], "beta1=1"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--compare", "adam,sgd", "--save", "/tmp/x"], "--save"),
    ] {
        let err = format!("{:#}", mnist_example::run(&args(&dir, extra), false).err().unwrap());
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
}
