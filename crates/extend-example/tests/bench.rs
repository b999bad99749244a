//! Signum, registered from this crate, scored by `taper bench` from this crate's binary.

use std::process::Command;

#[test]
fn the_registered_optimizer_is_scored_by_taper_bench() {
    let out = std::env::temp_dir().join(format!("taper-signum-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(env!("CARGO_BIN_EXE_taper-signum"))
        .args([
            "bench",
            "--optimizer",
            "signum",
            "--workload",
            "linreg",
            "--trials",
            "2",
            "--studies",
            "1",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("taper-signum runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("taper bench: `signum:lr=loguniform(0.000033,0.03)`"), "{stdout}");
    assert!(stdout.contains("score ") && stdout.contains("against the leaderboard"), "{stdout}");
    assert!(out.join("REPORT.md").exists() && out.join("entry.json").exists());
    let _ = std::fs::remove_dir_all(&out);
}
