//! Shared by the benchmarks: the process's peak resident memory.

/// The process's peak resident set size (Linux `VmHWM`) in MiB, if readable.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Prints the peak and writes it to `target/criterion-memory/{name}.txt` for
/// `benches/compare_pytorch.py`.
pub fn report_peak(name: &str) {
    let Some(mib) = peak_rss_mib() else { return };
    eprintln!("{name}: peak resident memory (VmHWM) {mib:.1} MiB");
    let dir =
        std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| "target".into());
    let dir = dir.join("criterion-memory");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(format!("{name}.txt")), format!("{mib:.1}\n"));
    }
}
