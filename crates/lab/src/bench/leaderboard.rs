//! The leaderboard: every built-in optimizer's run at its default search space, committed
//! (`crates/lab/bench/leaderboard.json`, written with its table into `docs/BENCH.md` by
//! `taper bench-leaderboard`), and the scores of a pool of runs: AlgoPerf's performance profiles
//! over the suite's workloads and, apart, over the held-out ones.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::run::Entry;
use super::score::{ratios, score, TAU_MAX};
use super::suite::{Ruleset, SUITE, WORKLOADS};

/// A leaderboard of one suite version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    /// The suite version.
    pub suite: String,
    /// The command that made it.
    pub command: String,
    /// The runs.
    pub entries: Vec<Entry>,
}

/// The committed leaderboard.
pub const BUILTIN_LEADERBOARD: &str = include_str!("../../bench/leaderboard.json");

impl Leaderboard {
    /// The committed leaderboard.
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN_LEADERBOARD, "the built-in leaderboard")
    }

    /// Reads a leaderboard file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a leaderboard and checks it is this suite version's.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let l: Leaderboard = serde_json::from_str(text).with_context(|| format!("reading {origin}"))?;
        if l.suite != SUITE {
            bail!("{origin} is a leaderboard of suite `{}`; this taper runs suite `{SUITE}`", l.suite);
        }
        Ok(l)
    }
}

/// Scores of each entry of a pool: over the suite's workloads, and over the held-out ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// The workloads scored (the suite's, in order).
    pub workloads: Vec<String>,
    /// The held-out workloads scored.
    pub held_out: Vec<String>,
    /// Per entry: the suite score.
    pub suite: Vec<f64>,
    /// Per entry: the held-out score (NaN without held-out workloads).
    pub held_out_score: Vec<f64>,
    /// Per entry: the ratio to the fastest on each workload of `workloads`.
    pub ratios: Vec<Vec<f64>>,
    /// Per entry: the ratio to the fastest on each workload of `held_out`.
    pub held_out_ratios: Vec<Vec<f64>>,
}

/// Scores `pool` in steps over `workloads` and `held_out` (each entry's missing workload counts as
/// never reached).
pub fn scores(pool: &[&Entry], workloads: &[String], held_out: &[String]) -> Scores {
    let times = |names: &[String]| -> Vec<Vec<Option<f64>>> {
        pool.iter().map(|e| names.iter().map(|w| e.steps(w)).collect()).collect()
    };
    let r = ratios(&times(workloads));
    let h = ratios(&times(held_out));
    Scores {
        workloads: workloads.to_vec(),
        held_out: held_out.to_vec(),
        suite: r.iter().map(|r| score(r, TAU_MAX)).collect(),
        held_out_score: h
            .iter()
            .map(|r| if held_out.is_empty() { f64::NAN } else { score(r, TAU_MAX) })
            .collect(),
        ratios: r,
        held_out_ratios: h,
    }
}

/// The suite's workloads an entry ran, in suite order, and its held-out ones.
pub fn workloads_of(e: &Entry) -> (Vec<String>, Vec<String>) {
    let base = WORKLOADS.iter().filter(|w| e.workloads.contains_key(**w)).map(|w| w.to_string()).collect();
    let held = e.workloads.keys().filter(|k| k.contains(".v")).cloned().collect();
    (base, held)
}

/// The leaderboard's table in Markdown: rank by suite score, then held-out score; each
/// workload's median steps to target (`—`: never reached).
pub fn markdown(l: &Leaderboard) -> String {
    let pool: Vec<&Entry> = l.entries.iter().collect();
    if pool.is_empty() {
        return "(no entries yet)\n".to_string();
    }
    let base: Vec<String> = WORKLOADS
        .iter()
        .filter(|w| pool.iter().any(|e| e.workloads.contains_key(**w)))
        .map(|w| w.to_string())
        .collect();
    let mut held: Vec<String> = pool.iter().flat_map(|e| workloads_of(e).1).collect();
    held.sort();
    held.dedup();
    let s = scores(&pool, &base, &held);
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.sort_by(|&a, &b| {
        s.suite[b].total_cmp(&s.suite[a]).then(s.held_out_score[b].total_cmp(&s.held_out_score[a]))
    });
    let mut out = String::new();
    out.push_str("| rank | optimizer (search space) | score | held-out score |");
    for w in &base {
        out.push_str(&format!(" {w} |"));
    }
    out.push_str(" seconds to targets |\n|---:|---|---:|---:|");
    out.push_str(&"---:|".repeat(base.len() + 1));
    out.push('\n');
    for (rank, &i) in order.iter().enumerate() {
        let e = pool[i];
        out.push_str(&format!(
            "| {} | `{}` | {:.3} | {:.3} |",
            rank + 1,
            e.space,
            s.suite[i],
            s.held_out_score[i]
        ));
        for w in &base {
            out.push_str(&match e.steps(w) {
                Some(x) => format!(" {x:.0} |"),
                None => " — |".to_string(),
            });
        }
        let secs: Vec<f64> = base.iter().filter_map(|w| e.workloads.get(w).and_then(|t| t.seconds)).collect();
        out.push_str(&match secs.is_empty() {
            // No target reached (a float sum of nothing would print as -0.0).
            true => " — |\n".to_string(),
            false => format!(" {:.1} |\n", secs.iter().sum::<f64>()),
        });
    }
    out
}

/// Where a new entry ranks among `l`'s (its own space's entry left out, so it does not race
/// itself): `(rank, of, scores of the pool with the new entry last)`.
pub fn place(l: &Leaderboard, new: &Entry) -> (usize, usize, Scores) {
    let mut pool: Vec<&Entry> =
        l.entries.iter().filter(|e| !(e.space == new.space && e.ruleset == new.ruleset)).collect();
    pool.push(new);
    let (base, held) = workloads_of(new);
    let s = scores(&pool, &base, &held);
    let me = pool.len() - 1;
    let better = (0..me).filter(|&i| s.suite[i] > s.suite[me]).count();
    (better + 1, pool.len(), s)
}

/// A one-line summary of the rules of an entry.
pub fn rules(e: &Entry) -> String {
    match e.ruleset {
        Ruleset::External => format!("external tuning, {} trials x {} studies", e.trials, e.studies),
        Ruleset::SelfTuning => format!("self-tuning, {} studies", e.studies),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::run::Time;

    fn entry(space: &str, steps: &[(&str, Option<f64>)]) -> Entry {
        Entry {
            name: space.into(),
            space: space.into(),
            ruleset: Ruleset::External,
            trials: 5,
            studies: 3,
            machine: "test".into(),
            workloads: steps.iter().map(|(w, s)| (w.to_string(), Time { steps: *s, seconds: *s })).collect(),
            details: Vec::new(),
        }
    }

    #[test]
    fn a_new_entry_is_placed_against_the_pool_without_its_own_old_run() {
        let a = entry("a", &[("linreg", Some(100.0)), ("linreg.v1", Some(10.0))]);
        let b = entry("b", &[("linreg", Some(200.0)), ("linreg.v1", None)]);
        let l = Leaderboard { suite: SUITE.into(), command: String::new(), entries: vec![a.clone(), b] };
        let (rank, of, s) = place(&l, &entry("c", &[("linreg", Some(50.0)), ("linreg.v1", Some(40.0))]));
        assert_eq!((rank, of), (1, 3));
        assert_eq!(s.suite, vec![2.0 / 3.0, 0.0, 1.0], "ratios 2, 4 and 1 on linreg");
        assert_eq!(s.held_out_score, vec![1.0, 0.0, 0.0], "c is 4 times slower than a on linreg.v1");
        // The same space again replaces its old run instead of racing it.
        let (rank, of, _) = place(&l, &a);
        assert_eq!((rank, of), (1, 2));
        let md = markdown(&l);
        assert!(
            md.contains("| 1 | `a` | 1.000 | 1.000 | 100 |")
                && md.contains("| 2 | `b` | 0.667 | 0.000 | 200 |"),
            "{md}"
        );
    }

    #[test]
    fn the_builtin_leaderboard_is_this_suites() {
        let l = Leaderboard::builtin().unwrap();
        assert_eq!(l.suite, SUITE);
        let other = BUILTIN_LEADERBOARD.replace(SUITE, "taper-bench-0");
        assert!(Leaderboard::parse(&other, "x").unwrap_err().to_string().contains("suite `taper-bench-0`"));
    }
}
