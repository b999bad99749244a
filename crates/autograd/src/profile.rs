//! Opt-in timing of where a training step spends its time.
//!
//! While a profile is on (on this thread), every backward rule the tape runs is timed under
//! `backward <op> <output shape>`, the layers of `taper-nn` time their forward passes under
//! `forward <layer>`, and [`scope`] times anything else (an optimizer step, a loss). Off, the
//! cost is one thread-local check per node and per layer.
//!
//! ```
//! use taper_autograd::{profile, ParamStore, Tape, Var};
//! use candle_core::{Device, Tensor};
//!
//! # fn main() -> taper_autograd::Result<()> {
//! let mut store = ParamStore::new();
//! let w = store.insert("w", Tensor::new(&[1.0f32, -2.0], &Device::Cpu)?)?;
//! profile::start();
//! for _ in 0..3 {
//!     let tape = Tape::new();
//!     let loss = profile::scope("forward", || tape.param(&w).sqr()?.sum_all())?;
//!     loss.backward()?;
//! }
//! let report = profile::stop();
//! assert_eq!(report.row("forward").unwrap().calls, 3);
//! assert_eq!(report.row("backward sqr [2]").unwrap().calls, 3);
//! println!("{report}");
//! # Ok(()) }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Profile {
    rows: HashMap<String, (u64, Duration)>,
    started: Option<Instant>,
}

thread_local! {
    static PROFILE: RefCell<Option<Profile>> = const { RefCell::new(None) };
}

/// Starts (or restarts, discarding what was collected) a profile on this thread.
pub fn start() {
    PROFILE.with(|p| *p.borrow_mut() = Some(Profile { started: Some(Instant::now()), ..Profile::default() }));
}

/// Stops the profile on this thread and returns what it collected (empty if none was on).
pub fn stop() -> Report {
    let profile = PROFILE.with(|p| p.borrow_mut().take()).unwrap_or_default();
    let wall = profile.started.map(|t| t.elapsed()).unwrap_or_default();
    let mut rows: Vec<Row> =
        profile.rows.into_iter().map(|(name, (calls, total))| Row { name, calls, total }).collect();
    rows.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.name.cmp(&b.name)));
    Report { rows, wall }
}

/// Whether a profile is on on this thread.
pub fn is_on() -> bool {
    PROFILE.with(|p| p.borrow().is_some())
}

/// Runs `f`, adding its wall time to the row `name` when a profile is on.
pub fn scope<R>(name: &str, f: impl FnOnce() -> R) -> R {
    if !is_on() {
        return f();
    }
    let t = Instant::now();
    let out = f();
    record(name, t.elapsed());
    out
}

/// Like [`scope`], with the name built only when a profile is on.
pub fn scope_with<R>(name: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
    if !is_on() {
        return f();
    }
    let name = name();
    scope(&name, f)
}

/// Adds `elapsed` to the row `name` (one call) when a profile is on.
pub fn record(name: &str, elapsed: Duration) {
    PROFILE.with(|p| {
        if let Some(profile) = p.borrow_mut().as_mut() {
            match profile.rows.get_mut(name) {
                Some((calls, total)) => {
                    *calls += 1;
                    *total += elapsed;
                }
                None => {
                    profile.rows.insert(name.to_string(), (1, elapsed));
                }
            }
        }
    })
}

/// One timed name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What was timed.
    pub name: String,
    /// How many times.
    pub calls: u64,
    /// Their total wall time.
    pub total: Duration,
}

/// What a profile collected: rows by total time, largest first. Rows can nest (a scope around a
/// forward pass contains the layers' rows), so their sum can exceed the wall time.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The rows.
    pub rows: Vec<Row>,
    /// Wall time from [`start`] to [`stop`].
    pub wall: Duration,
}

impl Report {
    /// The row named `name`.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }
}

impl fmt::Display for Report {
    /// A markdown table: name, calls, total ms, mean µs per call, share of the wall time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wall = self.wall.as_secs_f64().max(1e-12);
        writeln!(f, "| what | calls | total ms | µs per call | share of wall time |")?;
        writeln!(f, "| --- | ---: | ---: | ---: | ---: |")?;
        for r in &self.rows {
            let total = r.total.as_secs_f64();
            writeln!(
                f,
                "| {} | {} | {:.2} | {:.1} | {:.1}% |",
                r.name,
                r.calls,
                total * 1e3,
                total * 1e6 / r.calls.max(1) as f64,
                100.0 * total / wall
            )?;
        }
        write!(f, "\nwall time {:.2} ms", wall * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_records_nothing_and_on_counts_calls() {
        assert!(!is_on());
        scope("x", || ());
        assert!(stop().rows.is_empty());
        start();
        for _ in 0..4 {
            scope("a", || std::thread::sleep(Duration::from_millis(1)));
        }
        scope_with(|| "b".to_string(), || ());
        let r = stop();
        assert!(!is_on());
        assert_eq!(r.row("a").unwrap().calls, 4);
        assert!(r.row("a").unwrap().total >= Duration::from_millis(4));
        assert_eq!(r.rows[0].name, "a", "sorted by total time");
        assert_eq!(r.row("b").unwrap().calls, 1);
        let text = r.to_string();
        assert!(text.contains("| a | 4 |") && text.contains("wall time"), "{text}");
    }
}
