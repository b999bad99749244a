//! The `taper` command: `taper sweep`, `taper report`, `taper list`.
//!
//! `src/bin/taper.rs` is `fn main() { taper_lab::sweep::cli::main() }`; a user's own binary registers
//! its problems (and optimizers) first and then calls the same [`main`], getting the whole command
//! with their additions (see `examples/custom_problem.rs`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};

use super::{problem, report, store, Context, Shard, Summary, Sweep};
use crate::cli::DataArgs;
use crate::tensor::DeviceSpec;

/// Compare optimizers fairly: learning-rate sweeps over test problems and seeds, and reports.
#[derive(Parser, Debug)]
#[command(name = "taper", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run a sweep: every setting of every optimizer grid on every problem, over seeds.
    Sweep(SweepArgs),
    /// Merge result directories into a Markdown report with SVG figures (and a CSV).
    Report(ReportArgs),
    /// List the problems and optimizers.
    List,
    /// Score an optimizer AlgoPerf's way: time to the frozen targets of a fixed suite, tuned
    /// over its search space (or self-tuning), placed on the leaderboard (docs/BENCH.md).
    Bench(crate::bench::cli::BenchArgs),
    /// Gather benchmark runs into the leaderboard file and its table in docs/BENCH.md.
    BenchLeaderboard(crate::bench::cli::LeaderboardArgs),
}

/// Which stage of a tuned sweep to run.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageArg {
    /// The grid, then (with --tune) the best settings over more seeds.
    All,
    /// Only the grid search.
    Grid,
    /// Only the reruns of the best settings (needs the whole grid's results in --out).
    Final,
}

/// `taper sweep`.
#[derive(clap::Args, Debug, Clone)]
pub struct SweepArgs {
    /// A problem (repeat for several; `taper list` shows them).
    #[arg(long = "problem", required = true)]
    pub problems: Vec<String>,
    /// An optimizer grid: a spec whose options may be lists `[a,b]` or ranges
    /// `logspace(a,b,n)` / `linspace(a,b,n)` (repeat for several optimizers).
    #[arg(long = "optimizer", required = true)]
    pub optimizers: Vec<String>,
    /// Seeds of the grid search (0..N).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Tune as DeepOBS: after the grid, rerun each optimizer's best setting over seeds 0..N.
    #[arg(long)]
    pub tune: Option<u64>,
    /// Which stage to run (for sharded tuning: every shard's grid, then every shard's final).
    #[arg(long, value_enum, default_value_t = StageArg::All)]
    pub stage: StageArg,
    /// Run the cells in N local processes (the threads divided between them).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Threads of each process [default: $RAYON_NUM_THREADS, else every core; with --jobs N,
    /// divided by N]. Speed only: results have the same bits on any number of threads (see
    /// docs/SWEEPS.md).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run only shard K of N (1 <= K <= N): the cells whose index is K-1 modulo N.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// The results directory (shared by shards, or merged later by `taper report`).
    #[arg(long)]
    pub out: PathBuf,
    /// Print only the summary, not a line per cell.
    #[arg(long)]
    pub quiet: bool,
    /// Check the arguments and count the cells (and those already done in --out); run nothing,
    /// write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Also write each cell as a TensorBoard run, `DIR/<problem>/<optimizer>/<swept values>/seed_<n>`: its metric's
    /// curve (`eval/<metric>`, `train/seconds`), its final value and steps to target
    /// (`final/<metric>`, `final/steps_to_target`), and its hyperparameters for the HPARAMS tab.
    #[arg(long)]
    pub logdir: Option<PathBuf>,
    /// `--data-dir`, `--offline`.
    #[command(flatten)]
    pub data: DataArgs,
}

/// `taper report`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// Result directories (shards of one sweep, or sweeps of different problems).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write REPORT.md and its figures.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write one row per run: problem,optimizer,spec,seed,status,final_metric,...
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// Parses the command line and runs it; errors are printed once and exit with status 2 (as
/// every Taper example does).
pub fn main() {
    let started = Instant::now();
    let cli = Cli::parse();
    let threads = match &cli.command {
        Cmd::Sweep(a) => a.threads,
        Cmd::Bench(a) => a.threads,
        _ => None,
    };
    if let Some(t) = threads {
        // Before the thread pools start (`cli::main` starts them): they read these once.
        if t == 0 {
            eprintln!("error: --threads must be at least 1");
            std::process::exit(2);
        }
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    crate::cli::main(cli, |cli| run(cli, started));
}

/// Runs a parsed command line; `started` is when the process began its work.
pub fn run(cli: Cli, started: Instant) -> Result<()> {
    match cli.command {
        Cmd::Sweep(a) => sweep(&a, started).map(|_| ()),
        Cmd::Report(a) => {
            let r = report::write(&a.dirs, &a.out, a.csv.as_deref())?;
            println!("{}", r.display());
            Ok(())
        }
        Cmd::List => {
            list();
            Ok(())
        }
        Cmd::Bench(a) => crate::bench::cli::bench(&a),
        Cmd::BenchLeaderboard(a) => crate::bench::cli::write_leaderboard(&a),
    }
}

fn list() {
    println!("problems:");
    for (name, summary) in problem::names() {
        println!("  {name:<14} {summary}");
    }
    println!("optimizers:\n  {}", crate::optim::names().join(", "));
    println!("grids: any option may be a list [a,b,...] or logspace(a,b,n) / linspace(a,b,n)");
}

/// Runs `taper sweep`; returns this process's summary (children's cells not included).
pub fn sweep(a: &SweepArgs, started: Instant) -> Result<Summary> {
    if a.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if a.stage == StageArg::Final && a.tune.is_none() {
        bail!("--stage final needs --tune N");
    }
    if a.tune.is_some() && a.stage == StageArg::All && a.shard.is_some_and(|s| s.n > 1) {
        bail!("--tune with --shard: run --stage grid on every shard, then --stage final on every shard");
    }
    let ctx =
        Context { device: DeviceSpec::open_str(&a.device)?, data_dir: a.data.dir(), offline: a.data.offline };
    let mut sweep = Sweep::new(&a.problems, &a.optimizers, a.seeds, a.tune, &ctx)?;
    sweep.logdir = a.logdir.clone();
    let shard = a.shard.unwrap_or(Shard::ALL);
    if a.dry_run {
        println!("{}", dry_run(&sweep, shard, &a.out)?);
        return Ok(Summary::default());
    }
    crate::plot::ensure_writable_dir(&a.out)?;
    if let Some(dir) = &a.logdir {
        crate::plot::ensure_writable_dir(dir)?;
    }
    if a.jobs > 1 {
        // Before the jobs start (each process claims the directory in `super::run`): a directory
        // holding another sweep fails here, once.
        store::claim(&a.out, &sweep.def())?;
    }
    let stages: &[StageArg] = match (a.stage, a.tune) {
        (StageArg::All, Some(_)) => &[StageArg::Grid, StageArg::Final],
        (StageArg::All, None) => &[StageArg::Grid],
        (s, _) => std::slice::from_ref(match s {
            StageArg::Grid => &StageArg::Grid,
            _ => &StageArg::Final,
        }),
    };
    let mut total = Summary::default();
    for &stage in stages {
        if a.jobs > 1 {
            spawn_jobs(a, stage, shard)?;
            continue;
        }
        let cells = match stage {
            StageArg::Final => sweep.final_cells(&a.out)?,
            _ => sweep.grid_cells(),
        };
        let quiet = a.quiet;
        let s = super::run(&sweep, &cells, shard, &a.out, |line| {
            if !quiet {
                println!("{line}");
            }
        })?;
        total.cells += s.cells;
        total.skipped += s.skipped;
        total.ran += s.ran;
        total.diverged += s.diverged;
        total.run_seconds += s.run_seconds;
    }
    total.wall_seconds = started.elapsed().as_secs_f64();
    if a.jobs > 1 {
        println!("{} jobs done in {:.1} s: results in {}", a.jobs, total.wall_seconds, a.out.display());
    } else {
        println!("{}", describe(&total, shard));
    }
    Ok(total)
}

/// What `--dry-run` says: the cells of the sweep and of this shard, and how many are done.
fn dry_run(sweep: &Sweep, shard: Shard, out: &std::path::Path) -> Result<String> {
    if let Some(old) = store::read_def(out)? {
        if old != sweep.def() {
            bail!("{} holds results of another sweep ({})", out.display(), store::summary(&old));
        }
    }
    let cells = sweep.grid_cells();
    let mine: Vec<&super::Cell> =
        cells.iter().enumerate().filter(|(i, _)| shard.owns(*i)).map(|(_, c)| c).collect();
    let done = mine.iter().filter(|c| store::cell_path(out, &c.problem, &c.spec, c.seed).exists()).count();
    let settings: usize = sweep.optimizers.iter().map(|o| o.points.len()).sum();
    let mut line = format!(
        "{} problem(s) x {settings} setting(s) x {} seed(s) = {} grid cells; shard {shard}: {} ({done} already done in {})",
        sweep.problems.len(),
        sweep.seeds,
        cells.len(),
        mine.len(),
        out.display()
    );
    if let Some(t) = sweep.tune {
        line.push_str(&format!(
            "; then each optimizer's best setting over {t} seeds: up to {} more cells",
            sweep.problems.len() * sweep.optimizers.len() * t.saturating_sub(sweep.seeds) as usize
        ));
    }
    Ok(line)
}

/// The summary line: cells, divergences, and the harness's overhead per cell.
pub fn describe(s: &Summary, shard: Shard) -> String {
    let mut line = format!(
        "shard {shard}: {} cells: {} run ({} diverged), {} already done; {:.2} s in all, {:.2} s in the runs",
        s.cells, s.ran, s.diverged, s.skipped, s.wall_seconds, s.run_seconds
    );
    if s.ran > 0 {
        let per_cell = (s.wall_seconds - s.run_seconds).max(0.0) / s.ran as f64;
        let cell = s.run_seconds / s.ran as f64;
        line.push_str(&format!(
            "; harness overhead {:.1} ms per cell ({:.1}% of a cell's {:.1} ms: start, data, checks, writing results)",
            per_cell * 1e3,
            100.0 * per_cell / cell.max(1e-12),
            cell * 1e3
        ));
    }
    line
}

/// Runs `stage` in `a.jobs` child processes, each one sub-shard of `shard`, with the threads
/// divided between them; fails if any child fails.
fn spawn_jobs(a: &SweepArgs, stage: StageArg, shard: Shard) -> Result<()> {
    let exe = std::env::current_exe().context("finding this program to start the jobs")?;
    let mut jobs = Vec::new();
    for j in 0..a.jobs {
        let mut cmd = Command::new(&exe);
        cmd.arg("sweep");
        for p in &a.problems {
            cmd.arg("--problem").arg(p);
        }
        for o in &a.optimizers {
            cmd.arg("--optimizer").arg(o);
        }
        cmd.arg("--seeds").arg(a.seeds.to_string());
        if let Some(t) = a.tune {
            cmd.arg("--tune").arg(t.to_string());
        }
        let stage = if stage == StageArg::Final { "final" } else { "grid" };
        cmd.args(["--stage", stage, "--jobs", "1", "--device", &a.device]);
        cmd.arg("--shard").arg(shard.split(j, a.jobs).to_string());
        cmd.arg("--out").arg(&a.out).arg("--data-dir").arg(a.data.dir());
        if a.data.offline {
            cmd.arg("--offline");
        }
        if a.quiet {
            cmd.arg("--quiet");
        }
        if let Some(dir) = &a.logdir {
            cmd.arg("--logdir").arg(dir);
        }
        jobs.push(cmd);
    }
    run_jobs(jobs, threads_per_job(a.threads, a.jobs))
}

/// Threads of each of `jobs` local processes: `threads`, else the cores divided between them.
pub fn threads_per_job(threads: Option<usize>, jobs: usize) -> usize {
    threads.unwrap_or_else(|| (crate::tensor::parallel::threads() / jobs.max(1)).max(1))
}

/// Starts every command (a job of `--jobs`) with `threads` threads, waits for all, and fails
/// naming those that failed (rerunning the same command finishes their cells).
pub fn run_jobs(jobs: Vec<Command>, threads: usize) -> Result<()> {
    let mut children = Vec::new();
    for (j, mut cmd) in jobs.into_iter().enumerate() {
        cmd.env("RAYON_NUM_THREADS", threads.to_string());
        children.push(cmd.spawn().with_context(|| format!("starting job {}", j + 1))?);
    }
    let mut failed = Vec::new();
    for (j, mut c) in children.into_iter().enumerate() {
        let status = c.wait().with_context(|| format!("waiting for job {}", j + 1))?;
        if !status.success() {
            failed.push(format!("job {} ({status})", j + 1));
        }
    }
    if !failed.is_empty() {
        bail!("{} failed; rerun the same command to finish the remaining cells", failed.join(", "));
    }
    Ok(())
}
