//! The character-level GPT example's own code path: its pieces, a short run that learns, and bad
//! input refused with one clear error.

mod common;

use clap::Parser;
use taper_lab::experiments::char_lm::{self, nanogpt_lr, run_cli, Args, Corpus};

fn text_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = common::out_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("text.txt");
    std::fs::write(&path, text).unwrap();
    path
}

fn args(data: &std::path::Path, extra: &[&str]) -> Args {
    let out = data.parent().unwrap().join("out");
    let mut v = vec!["char_lm", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()];
    v.extend_from_slice(extra);
    Args::try_parse_from(v).unwrap()
}

#[test]
fn vocabulary_split_and_schedule() {
    let c = Corpus::new("hello world, hello moon").unwrap();
    assert_eq!(c.vocab.iter().collect::<String>(), " ,dehlmnorw");
    assert_eq!(c.train.len() + c.val.len(), 23);
    assert_eq!(c.decode(&c.encode("hello").unwrap()), "hello");
    assert!(c.encode("help!").unwrap_err().to_string().contains("'p'"));
    assert!(Corpus::new("").is_err());
    assert!(Corpus::new("aaaa").unwrap_err().to_string().contains("1 distinct"));
    // nanoGPT's get_lr: warm-up, cosine, floor.
    assert_eq!(nanogpt_lr(0, 1e-3, 1e-4, 100, 2000), 1e-3 / 101.0);
    assert!((nanogpt_lr(100, 1e-3, 1e-4, 100, 2000) - 1e-3).abs() < 1e-15);
    assert!((nanogpt_lr(1050, 1e-3, 1e-4, 100, 2000) - 5.5e-4).abs() < 1e-12);
    assert_eq!(nanogpt_lr(2001, 1e-3, 1e-4, 100, 2000), 1e-4);
}

#[test]
fn a_short_run_learns_far_below_the_unigram_entropy_and_samples() {
    // A text whose next character is fully determined by the one before.
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(60);
    let data = text_file("char-lm-learn", &text);
    let run = run_cli(
        &args(
            &data,
            &[
                "--iters",
                "120",
                "--eval-every",
                "60",
                "--eval-iters",
                "4",
                "--batch-size",
                "8",
                "--block-size",
                "16",
                "--n-layer",
                "2",
                "--n-head",
                "2",
                "--n-embd",
                "32",
                "--optimizer",
                "adamw:lr=0.01,beta2=0.99,weight_decay=0.1",
                "--warmup",
                "10",
                "--sample",
                "40",
                "--prompt",
                "the",
            ],
        ),
        false,
    )
    .unwrap();
    let c = Corpus::new(&text).unwrap();
    let mut counts = vec![0f64; c.vocab.len()];
    c.train.iter().for_each(|&i| counts[i as usize] += 1.0);
    let n = c.train.len() as f64;
    let unigram: f64 = counts.iter().filter(|&&k| k > 0.0).map(|k| -(k / n) * (k / n).ln()).sum();
    let (_, _, val) = *run.evals.last().unwrap();
    assert!(val < 0.5 * unigram, "val loss {val} against the unigram entropy {unigram}");
    assert_eq!(run.evals.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 60, 120]);
    let sample = run.sample.unwrap();
    assert!(sample.starts_with("the") && sample.chars().count() == 43, "{sample:?}");
    assert!(
        run.tokens_per_second > 0.0 && run.median_step_seconds > 0.0 && run.median_step_seconds.is_finite()
    );
}

#[test]
fn bad_input_is_one_clear_error() {
    let one = text_file("char-lm-one", "zzzzzzzzzz");
    let err = run_cli(&args(&one, &["--iters", "1"]), false).unwrap_err().to_string();
    assert!(err.contains("distinct"), "{err}");
    let short = text_file("char-lm-short", &"abcdefghij".repeat(10));
    let err = run_cli(&args(&short, &["--iters", "1", "--block-size", "64"]), false).unwrap_err().to_string();
    assert!(err.contains("shorter than the context"), "{err}");
    let fine = text_file("char-lm-prompt", &"abcdefghij".repeat(50));
    let err = run_cli(
        &args(
            &fine,
            &[
                "--iters",
                "1",
                "--block-size",
                "8",
                "--n-embd",
                "8",
                "--n-head",
                "2",
                "--sample",
                "5",
                "--prompt",
                "xyz",
            ],
        ),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("'x'"), "{err}");
    let missing = std::path::Path::new("/nonexistent/text.txt");
    assert!(run_cli(&args(missing, &[]), false).unwrap_err().to_string().contains("/nonexistent/text.txt"));
    let err = run_cli(&args(&fine, &["--optimizer", "adamw:beta1=2"]), false).unwrap_err().to_string();
    assert!(err.contains("beta1=2"), "{err}");
    let _ = char_lm::CORPUS;
}

#[test]
fn the_shakespeare_corpus_trains() {
    let Some(dir) = common::data_dir("the_shakespeare_corpus_trains", &[char_lm::CORPUS]) else { return };
    let out = common::out_dir("char-lm-shakespeare");
    let a = Args::try_parse_from([
        "char_lm",
        "--data-dir",
        dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--iters",
        "80",
        "--eval-every",
        "80",
        "--eval-iters",
        "4",
        "--n-layer",
        "2",
        "--n-embd",
        "64",
        "--warmup",
        "10",
    ])
    .unwrap();
    let run = run_cli(&a, false).unwrap();
    assert_eq!(run.vocab_size, 84, "the corpus's distinct characters");
    let (first, last) = (run.evals[0].2, run.evals.last().unwrap().2);
    assert!((first - 84f64.ln()).abs() < 0.1, "{first}");
    assert!(last < first - 1.2, "{first} -> {last}");
}

/// A small model on a small text (every run below shares it).
const SMALL: &[&str] =
    &["--block-size", "8", "--n-layer", "1", "--n-head", "2", "--n-embd", "8", "--warmup", "2"];

fn small(data: &std::path::Path, extra: &[&str]) -> Args {
    let v: Vec<&str> = SMALL.iter().chain(extra).copied().collect();
    args(data, &v)
}

#[test]
fn a_run_stopped_and_resumed_is_the_uninterrupted_run() {
    let data = text_file("char-lm-resume", &"to be or not to be, that is the question. ".repeat(40));
    let ck = data.parent().unwrap().join("run.safetensors");
    // Dropout on, so the masks must be replayed too; gradients accumulated over 2 micro-batches.
    let common =
        ["--iters", "9", "--eval-every", "4", "--dropout", "0.1", "--grad-accum", "2", "--batch-size", "3"];
    let whole = run_cli(&small(&data, &common), false).unwrap();
    let mut first: Vec<&str> = common.to_vec();
    first.extend(["--save", ck.to_str().unwrap(), "--stop-after", "6"]);
    let part = run_cli(&small(&data, &first), false).unwrap();
    assert_eq!(part.evals.len(), 2, "evaluations at 0 and 4 before the stop");
    let mut second: Vec<&str> = common.to_vec();
    second.extend(["--resume", ck.to_str().unwrap()]);
    let resumed = run_cli(&small(&data, &second), false).unwrap();
    assert_eq!(resumed.evals, whole.evals, "every evaluation bit for bit");
}

/// The run above, as `a_run_stopped_and_resumed_is_the_uninterrupted_run` takes it.
const RESUME_RUN: &[&str] =
    &["--iters", "9", "--eval-every", "4", "--dropout", "0.1", "--grad-accum", "2", "--batch-size", "3"];

fn resume_text() -> String {
    "to be or not to be, that is the question. ".repeat(40)
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/char_lm").join(name)
}

/// A checkpoint written mid-run by main 07bbea6 (before the optimizer core was redesigned)
/// resumes to that code's own evaluations, bit for bit (`expected_evals.txt`: each evaluation's
/// iteration and the bits of its train and validation losses). Made by
/// `write_char_lm_fixture` (`cargo test --release --test char_lm -- --ignored`).
#[test]
fn a_checkpoint_of_an_earlier_taper_resumes_bit_exactly() {
    let data = text_file("char-lm-legacy", &resume_text());
    let ck = data.parent().unwrap().join("legacy.safetensors");
    std::fs::copy(fixture("stopped_at_6.safetensors"), &ck).unwrap();
    let mut second: Vec<&str> = RESUME_RUN.to_vec();
    second.extend(["--resume", ck.to_str().unwrap()]);
    let resumed = run_cli(&small(&data, &second), false).unwrap();
    let want = std::fs::read_to_string(fixture("expected_evals.txt")).unwrap();
    assert_eq!(eval_lines(&resumed.evals), want);
}

fn eval_lines(evals: &[(usize, f64, f64)]) -> String {
    evals.iter().map(|(i, a, b)| format!("{i} {:016x} {:016x}\n", a.to_bits(), b.to_bits())).collect()
}

#[test]
#[ignore]
fn write_char_lm_fixture() {
    let data = text_file("char-lm-legacy-write", &resume_text());
    std::fs::create_dir_all(fixture("")).unwrap();
    let ck = fixture("stopped_at_6.safetensors");
    let mut first: Vec<&str> = RESUME_RUN.to_vec();
    first.extend(["--save", ck.to_str().unwrap(), "--stop-after", "6"]);
    run_cli(&small(&data, &first), false).unwrap();
    let mut second: Vec<&str> = RESUME_RUN.to_vec();
    let copy = data.parent().unwrap().join("copy.safetensors");
    std::fs::copy(&ck, &copy).unwrap();
    second.extend(["--resume", copy.to_str().unwrap()]);
    let resumed = run_cli(&small(&data, &second), false).unwrap();
    let whole = run_cli(&small(&data, RESUME_RUN), false).unwrap();
    assert_eq!(resumed.evals, whole.evals);
    std::fs::write(fixture("expected_evals.txt"), eval_lines(&resumed.evals)).unwrap();
}

#[test]
fn a_checkpoint_of_another_text_or_shape_is_refused() {
    let data = text_file("char-lm-foreign", &"abcdefgh ".repeat(60));
    let ck = data.parent().unwrap().join("run.safetensors");
    run_cli(&small(&data, &["--iters", "2", "--save", ck.to_str().unwrap()]), false).unwrap();
    let other = text_file("char-lm-foreign-text", &"abcdefgz ".repeat(60));
    let err =
        run_cli(&small(&other, &["--iters", "2", "--resume", ck.to_str().unwrap()]), false).unwrap_err();
    assert!(err.to_string().contains("vocab"), "{err}");
    let err = run_cli(&small(&data, &["--iters", "2", "--bias", "--resume", ck.to_str().unwrap()]), false)
        .unwrap_err();
    assert!(err.to_string().contains("recipe"), "{err}");
    let err =
        run_cli(&small(&data, &["--iters", "2", "--seed", "5", "--resume", ck.to_str().unwrap()]), false)
            .unwrap_err();
    assert!(err.to_string().contains("--seed"), "{err}");
    let junk = data.parent().unwrap().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    assert!(run_cli(&small(&data, &["--iters", "2", "--resume", junk.to_str().unwrap()]), false).is_err());
}

#[test]
fn accumulated_micro_batches_equal_one_big_batch() {
    // The micro-batches draw the same windows, in order, as the big batch: the same step (and
    // 4 evaluation batches of 3 are the same windows as 2 of 6).
    let data = text_file("char-lm-accum", &"a stitch in time saves nine. ".repeat(40));
    let big = run_cli(
        &small(&data, &["--iters", "3", "--eval-every", "3", "--eval-iters", "2", "--batch-size", "6"]),
        false,
    )
    .unwrap();
    let acc = run_cli(
        &small(
            &data,
            &[
                "--iters",
                "3",
                "--eval-every",
                "3",
                "--eval-iters",
                "4",
                "--batch-size",
                "3",
                "--grad-accum",
                "2",
            ],
        ),
        false,
    )
    .unwrap();
    for (b, a) in big.evals.iter().zip(&acc.evals) {
        assert_eq!(b.0, a.0);
        assert!((b.1 - a.1).abs() < 1e-5 && (b.2 - a.2).abs() < 1e-5, "{b:?} vs {a:?}");
    }
    assert!(run_cli(&small(&data, &["--grad-accum", "0"]), false).is_err());
}

#[test]
fn presets_and_flags_make_the_recipe() {
    let a = Args::try_parse_from(["char_lm"]).unwrap().recipe();
    assert_eq!(
        (a.iters, a.batch_size, a.block_size, a.n_layer, a.n_head, a.n_embd, a.dropout),
        (2000, 12, 64, 4, 4, 128, 0.0)
    );
    let n = Args::try_parse_from(["char_lm", "--preset", "nanogpt", "--iters", "10"]).unwrap().recipe();
    assert_eq!(
        (n.iters, n.batch_size, n.block_size, n.n_layer, n.n_head, n.n_embd, n.dropout),
        (10, 64, 256, 6, 6, 384, 0.2)
    );
    assert_eq!(n.eval_iters, 200);
}

#[test]
fn tinyshakespeare_offline_and_missing_says_what_to_do() {
    let dir = common::out_dir("char-lm-tiny-offline");
    let _ = std::fs::remove_dir_all(&dir);
    let a = Args::try_parse_from([
        "char_lm",
        "--corpus",
        "tinyshakespeare",
        "--offline",
        "--data-dir",
        dir.to_str().unwrap(),
    ])
    .unwrap();
    let err = run_cli(&a, false).unwrap_err().to_string();
    assert!(err.contains("tinyshakespeare/input.txt") && err.contains("TAPER_DATA_DIR"), "{err}");
    // A corrupted copy is refused by its checksum.
    std::fs::create_dir_all(dir.join("tinyshakespeare")).unwrap();
    std::fs::write(dir.join("tinyshakespeare/input.txt"), "First Citizen:\n").unwrap();
    let err = run_cli(&a, false).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
}

#[test]
fn the_muon_recipe_learns_and_resumes_bit_exactly() {
    let data = text_file("char-lm-muon", &resume_text());
    let ck = data.parent().unwrap().join("muon.safetensors");
    let common = [
        "--iters",
        "9",
        "--eval-every",
        "4",
        "--batch-size",
        "3",
        "--optimizer",
        "muon:lr=0.02",
        "--other-optimizer",
        "adamw:lr=0.01",
    ];
    let whole = run_cli(&small(&data, &common), false).unwrap();
    assert!(whole.evals.last().unwrap().2 < whole.evals[0].2, "{:?}", whole.evals);
    let mut first: Vec<&str> = common.to_vec();
    first.extend(["--save", ck.to_str().unwrap(), "--stop-after", "6"]);
    run_cli(&small(&data, &first), false).unwrap();
    let mut second: Vec<&str> = common.to_vec();
    second.extend(["--resume", ck.to_str().unwrap()]);
    let resumed = run_cli(&small(&data, &second), false).unwrap();
    assert_eq!(resumed.evals, whole.evals, "every evaluation bit for bit");
    // The checkpoint holds both parts; resuming it with AdamW alone is refused.
    let mut adamw: Vec<&str> = common[..6].to_vec();
    adamw.extend(["--resume", ck.to_str().unwrap()]);
    let err = run_cli(&small(&data, &adamw), false).unwrap_err().to_string();
    assert!(err.contains("muon"), "{err}");
}

#[test]
fn specs_that_need_their_own_groups_are_not_blamed() {
    let data = text_file("char-lm-specs", &resume_text());
    // Rprop has no weight decay: the vectors' group is built without the override.
    run_cli(&small(&data, &["--iters", "1", "--optimizer", "rprop:lr=0.01"]), false).unwrap();
    // Muon alone cannot take the vectors: the error says what to do, not that the spec is bad.
    let err = run_cli(&small(&data, &["--iters", "1", "--optimizer", "muon:lr=0.02"]), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--other-optimizer") && !err.contains("malformed"), "{err}");
}
