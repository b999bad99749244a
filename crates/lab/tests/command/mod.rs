//! Running the `taper` command in tests: its output, success, or one clear error with exit
//! status 2.

use std::process::{Command, Output};

/// The `taper` binary of this build.
pub const EXE: &str = env!("CARGO_BIN_EXE_taper");

/// Runs `taper args` on 2 threads.
pub fn taper(args: &[&str]) -> Output {
    Command::new(EXE).args(args).env("RAYON_NUM_THREADS", "2").output().expect("taper runs")
}

/// Runs `taper args`, which must succeed; its standard output.
pub fn ok(args: &[&str]) -> String {
    let o = taper(args);
    assert!(o.status.success(), "taper {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `taper args`, which must fail with exit status 2 and one error saying `says`; its
/// standard error.
pub fn fails(args: &[&str], says: &str) -> String {
    let o = taper(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "taper {args:?}: {err}");
    assert!(err.contains(says), "taper {args:?}: expected `{says}` in: {err}");
    assert_eq!(err.matches("error:").count(), 1, "one error: {err}");
    err
}
