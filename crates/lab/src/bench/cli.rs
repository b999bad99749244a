//! `taper bench` and `taper bench-leaderboard`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use super::leaderboard::{self, Leaderboard};
use super::run::{relation, Bench, Entry, Options};
use super::suite::{Ruleset, Targets};
use crate::cli::DataArgs;
use crate::sweep::{store, Context, Shard};
use crate::tensor::DeviceSpec;

/// `taper bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The optimizer: a search space (`adamw:lr=loguniform(1e-4,1e-1),weight_decay=0.01`), an
    /// optimizer's name alone for its default search space, or under self-tuning the spec to run.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// The rules: external tuning (a search space, trials x studies, 4/3 of the target-setting
    /// budget) or self-tuning (the spec as given, 3 times that budget).
    #[arg(long, value_enum, default_value_t = Ruleset::External)]
    pub ruleset: Ruleset,
    /// Trials per study (external tuning).
    #[arg(long, default_value_t = 5)]
    pub trials: u32,
    /// Studies: each samples its trials anew and runs them from its own seed; the median study
    /// counts.
    #[arg(long, default_value_t = 3)]
    pub studies: u32,
    /// Draws each workload's held-out variant.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run every held-out variant (the leaderboard's runs) instead of one drawn from --seed.
    #[arg(long)]
    pub all_variants: bool,
    /// Run only this workload of the suite (repeat for several): a quick look, not a score
    /// comparable to the leaderboard's.
    #[arg(long = "workload")]
    pub workloads: Vec<String>,
    /// The results directory [default: out/bench/<optimizer>-<hash of the space and rules>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A targets file [default: the committed targets of this suite version].
    #[arg(long)]
    pub targets: Option<PathBuf>,
    /// A leaderboard file to place the run in [default: the committed leaderboard].
    #[arg(long)]
    pub leaderboard: Option<PathBuf>,
    /// Run only shard K of N of the trials; score once every shard is done (rerun without
    /// --shard).
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Run the trials in N local processes (the threads divided between them).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Threads of each process (pinned for the run; the seconds are measured on them).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write each trial as a TensorBoard run, with its hyperparameters.
    #[arg(long)]
    pub logdir: Option<PathBuf>,
    /// Rerun the target setting (the four baselines on every workload and variant) into --out
    /// and write its targets.json there, instead of benchmarking an optimizer.
    #[arg(long)]
    pub set_targets: bool,
    /// Print only the result, not a line per trial.
    #[arg(long)]
    pub quiet: bool,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// `--data-dir`, `--offline`.
    #[command(flatten)]
    pub data: DataArgs,
}

/// `taper bench-leaderboard`.
#[derive(clap::Args, Debug, Clone)]
pub struct LeaderboardArgs {
    /// Benchmark result directories (each holding an `entry.json`).
    #[arg(required_unless_present = "merge")]
    pub dirs: Vec<PathBuf>,
    /// Write the leaderboard file here.
    #[arg(long)]
    pub json: PathBuf,
    /// Keep the entries already in `--json` (a directory's entry of the same search space
    /// replaces its old one), so a leaderboard grows run by run.
    #[arg(long)]
    pub merge: bool,
    /// Rewrite the table between `<!-- leaderboard:start -->` and `<!-- leaderboard:end -->` in
    /// this Markdown file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// The command to record as the leaderboard's maker.
    #[arg(long, default_value = "scripts/bench/leaderboard.sh")]
    pub command: String,
}

/// Runs `taper bench`.
pub fn bench(a: &BenchArgs) -> Result<()> {
    if a.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let ctx =
        Context { device: DeviceSpec::open_str(&a.device)?, data_dir: a.data.dir(), offline: a.data.offline };
    if a.set_targets {
        let Some(out) = &a.out else { bail!("--set-targets needs --out DIR") };
        crate::plot::ensure_writable_dir(out)?;
        let command = format!("taper bench --set-targets --trials {} --studies {}", a.trials, a.studies);
        let quiet = a.quiet;
        let t = super::targets::set(&ctx, a.trials, u64::from(a.studies), out, &command, |l| {
            if !quiet {
                println!("{l}");
            }
        })?;
        for w in &t.workloads {
            println!(
                "{:<18} {} {} {} after {} steps (set by {})",
                w.name(),
                w.metric,
                relation(w.goal),
                w.target,
                w.target_steps,
                w.set_by
            );
        }
        println!("{}", out.join("targets.json").display());
        return Ok(());
    }
    let Some(optimizer) = &a.optimizer else {
        bail!("--optimizer is required (a search space, or an optimizer's name)")
    };
    let targets = match &a.targets {
        Some(p) => Targets::read(p)?,
        None => Targets::builtin()?,
    };
    let board = match &a.leaderboard {
        Some(p) => Leaderboard::read(p)?,
        None => Leaderboard::builtin()?,
    };
    let options = Options {
        optimizer: optimizer.clone(),
        ruleset: a.ruleset,
        trials: a.trials,
        studies: a.studies,
        seed: a.seed,
        all_variants: a.all_variants,
        workloads: a.workloads.clone(),
    };
    let mut bench = Bench::new(options, &targets, &ctx)?;
    bench.sweep.logdir = a.logdir.clone();
    let out = a.out.clone().unwrap_or_else(|| default_out(&bench));
    crate::plot::ensure_writable_dir(&out)?;
    if let Some(dir) = &a.logdir {
        crate::plot::ensure_writable_dir(dir)?;
    }
    let shard = a.shard.unwrap_or(Shard::ALL);
    if a.jobs > 1 {
        store::claim(&out, &bench.sweep.def())?;
        spawn_jobs(a, &out, shard)?;
    } else {
        let cells = bench.cells()?;
        let quiet = a.quiet;
        let s = crate::sweep::run(&bench.sweep, &cells, shard, &out, |l| {
            if !quiet {
                println!("{l}");
            }
        })?;
        if !quiet {
            println!("{}", crate::sweep::cli::describe(&s, shard));
        }
    }
    let (done, total) = bench.done(&out)?;
    if done < total {
        println!(
            "{done} of {total} trials are in {}: run the other shards, then this command without --shard to score",
            out.display()
        );
        return Ok(());
    }
    let entry = bench.results(&out)?;
    let report = report(&bench, &entry, &board);
    let mut json = serde_json::to_string_pretty(&entry)?;
    json.push('\n');
    store::write_atomic(&out.join("entry.json"), json.as_bytes())?;
    store::write_atomic(&out.join("REPORT.md"), report.markdown.as_bytes())?;
    println!("{}", report.text);
    println!("report: {}", out.join("REPORT.md").display());
    Ok(())
}

/// `out/bench/<optimizer>-<hash>`.
fn default_out(bench: &Bench) -> PathBuf {
    let name: String = bench.space.name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let key = format!("{}|{:?}", bench.space.text, bench.options.ruleset);
    PathBuf::from("out").join("bench").join(format!("{name}-{:08x}", store::fnv64(&key) as u32))
}

/// Runs the trials in `a.jobs` child processes, each a sub-shard of `shard`.
fn spawn_jobs(a: &BenchArgs, out: &Path, shard: Shard) -> Result<()> {
    let exe = std::env::current_exe().context("finding this program to start the jobs")?;
    let mut jobs = Vec::new();
    for j in 0..a.jobs {
        let mut cmd = Command::new(&exe);
        cmd.arg("bench").arg("--optimizer").arg(a.optimizer.as_deref().unwrap_or_default());
        let ruleset = match a.ruleset {
            Ruleset::External => "external",
            Ruleset::SelfTuning => "self-tuning",
        };
        cmd.args([
            "--ruleset",
            ruleset,
            "--trials",
            &a.trials.to_string(),
            "--studies",
            &a.studies.to_string(),
        ]);
        cmd.args(["--seed", &a.seed.to_string(), "--jobs", "1", "--device", &a.device, "--quiet"]);
        if a.all_variants {
            cmd.arg("--all-variants");
        }
        for w in &a.workloads {
            cmd.arg("--workload").arg(w);
        }
        for (flag, path) in
            [("--targets", &a.targets), ("--leaderboard", &a.leaderboard), ("--logdir", &a.logdir)]
        {
            if let Some(p) = path {
                cmd.arg(flag).arg(p);
            }
        }
        cmd.arg("--shard").arg(shard.split(j, a.jobs).to_string());
        cmd.arg("--out").arg(out).arg("--data-dir").arg(a.data.dir());
        if a.data.offline {
            cmd.arg("--offline");
        }
        cmd.stdout(std::process::Stdio::null());
        jobs.push(cmd);
    }
    crate::sweep::cli::run_jobs(jobs, crate::sweep::cli::threads_per_job(a.threads, a.jobs))
}

/// A run's report: a few lines for the terminal and the Markdown of `REPORT.md`.
pub struct Report {
    /// For the terminal.
    pub text: String,
    /// `REPORT.md`.
    pub markdown: String,
}

/// The report of `entry`, placed on `board`.
pub fn report(bench: &Bench, entry: &Entry, board: &Leaderboard) -> Report {
    let (rank, of, s) = leaderboard::place(board, entry);
    let me = s.suite.len() - 1;
    let mut rows = Vec::new();
    for w in &entry.details {
        let t = &w.def.target;
        let name = t.name();
        let (names, ratios) =
            if t.variant == 0 { (&s.workloads, &s.ratios) } else { (&s.held_out, &s.held_out_ratios) };
        let ratio = names
            .iter()
            .position(|x| *x == name)
            .map(|i| ratios[me][i])
            .filter(|r| r.is_finite())
            .map_or("—".to_string(), |r| format!("{r:.2}"));
        let reached = w.studies.iter().filter(|st| st.steps.is_some()).count();
        let diverged: u32 = w.studies.iter().map(|st| st.diverged).sum();
        let trials: u32 = w.studies.iter().map(|st| st.trials).sum();
        rows.push(format!(
            "| {} | {} | {} {} {} | {} | {} | {} | {reached}/{} | {diverged}/{trials} | {ratio} |",
            name,
            if t.variant == 0 { "suite".to_string() } else { format!("held out: {}", t.variant_name) },
            t.metric,
            relation(t.goal),
            t.target,
            w.def.budget_steps,
            w.steps.map_or("never".to_string(), |x| format!("{x:.0}")),
            w.seconds.map_or("never".to_string(), seconds),
            w.studies.len(),
        ));
    }
    let never: Vec<String> =
        entry.details.iter().filter(|w| w.steps.is_none()).map(|w| w.def.target.name()).collect();
    let held = if s.held_out.is_empty() {
        "no held-out workload".to_string()
    } else {
        format!("{:.3} over {} held-out variant(s)", s.held_out_score[me], s.held_out.len())
    };
    let headline = format!(
        "score {:.3} over {} workload(s) (held out: {held}); rank {rank} of {of} against the leaderboard",
        s.suite[me],
        s.workloads.len()
    );
    let table = format!(
        "| workload | kind | target | budget (steps) | steps to target | seconds to target | studies reached | trials diverged | ratio to best |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n{}\n",
        rows.join("\n")
    );
    let never_line = if never.is_empty() {
        "every workload reached".to_string()
    } else {
        format!("never reached: {}", never.join(", "))
    };
    let text = format!(
        "taper bench: `{}` ({}, held-out draw seed {})\n{table}{never_line}\n{headline}",
        entry.space,
        leaderboard::rules(entry),
        bench.options.seed
    );
    let markdown = format!(
        "# taper bench: `{}`\n\n{} on {}; held-out variants drawn from seed {}{}.\n\nTimes are the median over studies of the fastest trial's time to target (steps: the score; seconds: training time on this machine, evaluations excluded).\n\n{table}\n{never_line}.\n\n**{headline}** (AlgoPerf's performance profile integrated to τ = 4, normalised; in steps).\n",
        entry.space,
        leaderboard::rules(entry),
        entry.machine,
        bench.options.seed,
        if bench.options.all_variants { " (every variant run)" } else { "" }
    );
    Report { text, markdown }
}

/// Seconds to 3 significant digits (`0.00412`, `11.2`).
fn seconds(x: f64) -> String {
    if x <= 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (2 - x.log10().floor() as i32).max(0) as usize;
    format!("{x:.digits$}")
}

/// Runs `taper bench-leaderboard`.
pub fn write_leaderboard(a: &LeaderboardArgs) -> Result<()> {
    let mut entries: Vec<Entry> = Vec::new();
    if a.merge && a.json.exists() {
        let text =
            std::fs::read_to_string(&a.json).with_context(|| format!("reading {}", a.json.display()))?;
        let old: Leaderboard =
            serde_json::from_str(&text).with_context(|| format!("reading {}", a.json.display()))?;
        if old.suite != super::suite::SUITE {
            bail!(
                "{} holds suite `{}`, this Taper runs `{}`: its entries cannot be merged",
                a.json.display(),
                old.suite,
                super::suite::SUITE
            );
        }
        entries = old.entries;
    }
    for d in &a.dirs {
        let path = d.join("entry.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut e: Entry =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        e.details.clear();
        entries.retain(|old| old.space != e.space);
        entries.push(e);
    }
    let board = Leaderboard { suite: super::suite::SUITE.to_string(), command: a.command.clone(), entries };
    let mut json = serde_json::to_string_pretty(&board)?;
    json.push('\n');
    // Everything is checked before anything is written.
    let markdown = match &a.markdown {
        Some(md) => {
            let text = std::fs::read_to_string(md).with_context(|| format!("reading {}", md.display()))?;
            let text = replace_section(&text, "leaderboard", &leaderboard::markdown(&board))
                .with_context(|| md.display().to_string())?;
            let text = replace_section(&text, "targets", &targets_table(&Targets::builtin()?))
                .with_context(|| md.display().to_string())?;
            Some((md, text))
        }
        None => None,
    };
    store::write_atomic(&a.json, json.as_bytes())?;
    println!("{}", a.json.display());
    if let Some((md, text)) = markdown {
        store::write_atomic(md, text.as_bytes())?;
        println!("{}", md.display());
    }
    Ok(())
}

/// `text` with what lies between `<!-- NAME:start -->` and `<!-- NAME:end -->` replaced.
fn replace_section(text: &str, name: &str, body: &str) -> Result<String> {
    let (start, end) = (format!("<!-- {name}:start -->"), format!("<!-- {name}:end -->"));
    let (Some(i), Some(j)) = (text.find(&start), text.find(&end)) else {
        bail!("no `{start}` ... `{end}` section");
    };
    Ok(format!("{}{start}\n{body}{}", &text[..i], &text[j..]))
}

/// The frozen targets as a Markdown table.
pub fn targets_table(t: &Targets) -> String {
    let mut out = String::from(
        "| workload | held-out variant | target | target-setting steps | external budget | self-tuning budget | set by (median of 3 seeds) |\n|---|---|---|---:|---:|---:|---|\n",
    );
    for w in &t.workloads {
        out.push_str(&format!(
            "| {} | {} | {} {} {} | {} | {} | {} | `{}` |\n",
            w.name(),
            if w.variant == 0 { "—" } else { &w.variant_name },
            w.metric,
            relation(w.goal),
            w.target,
            w.target_steps,
            super::suite::external_budget(w.target_steps),
            super::suite::self_tuning_budget(w.target_steps),
            w.set_by
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_keep_three_significant_digits() {
        assert_eq!(seconds(0.004123), "0.00412");
        assert_eq!(seconds(11.234), "11.2");
        assert_eq!(seconds(123.4), "123");
        assert_eq!(seconds(0.0), "0");
    }

    #[test]
    fn sections_are_replaced_between_their_markers() {
        let text = "a\n<!-- x:start -->\nold\n<!-- x:end -->\nb\n";
        assert_eq!(
            replace_section(text, "x", "new\n").unwrap(),
            "a\n<!-- x:start -->\nnew\n<!-- x:end -->\nb\n"
        );
        assert!(replace_section(text, "y", "new\n").is_err());
    }
}
