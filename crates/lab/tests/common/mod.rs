//! Where the data-dependent integration tests find their files, and what happens when they are
//! missing: with `TAPER_DATA_DIR` set (CI sets it) missing files fail the test, naming them;
//! without it, a checkout beside `../shared/data` uses that, and otherwise the test says on stderr
//! that it was skipped and how to run it.

use std::path::PathBuf;

/// The directory holding every one of `files`, or `None` (the test is skipped, and says so).
///
/// # Panics
/// When `TAPER_DATA_DIR` is set and lacks any of `files`.
pub fn data_dir(test: &str, files: &[&str]) -> Option<PathBuf> {
    let missing = |dir: &PathBuf| -> Vec<String> {
        files.iter().filter(|f| !dir.join(f).is_file()).map(|f| dir.join(f).display().to_string()).collect()
    };
    if let Some(dir) = std::env::var_os("TAPER_DATA_DIR").filter(|d| !d.is_empty()).map(PathBuf::from) {
        let gone = missing(&dir);
        assert!(
            gone.is_empty(),
            "{test}: TAPER_DATA_DIR is set but these files are missing: {}",
            gone.join(", ")
        );
        return Some(dir);
    }
    // `shared/` beside the workspace (this crate is `crates/lab` in it).
    let beside = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    if missing(&beside).is_empty() {
        return Some(beside);
    }
    // Written to stderr directly, not with `eprintln!`, which the test harness captures (and
    // hides for a passing test): a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs {} (run it with TAPER_DATA_DIR=DIR cargo test --release, DIR holding those files; \
         see ../shared/data/README.md)",
        files.join(", ")
    );
    None
}

/// A fresh output directory per call (tests run in parallel and must not share files).
pub fn out_dir(prefix: &str) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("taper-{prefix}-{}-{call}", std::process::id()))
}
