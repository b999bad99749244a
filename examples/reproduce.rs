//! Reproduces every experiment of the documents and writes `out/REPORT.md` with its SVGs: one
//! table per experiment with the document's number, ours, the allowed spread and a verdict.
//! Runs offline on embedded defaults (traces, linear regression, learning-rate decay); the airfoil
//! and MNIST parts run when their data is found (`--data-dir`, `TAPER_DATA_DIR`, or `--download`).
//! Exits non-zero when a verdict fails.
//!
//! ```text
//! cargo run --release --example reproduce
//! TAPER_DATA_DIR=../shared/data cargo run --release --example reproduce -- --quick
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use taper_lab::experiments::{
    airfoil as airfoil_example, char_lm, linreg as linear_regression, lr_decay, mnist as mnist_example,
    trace2d as trace_2d,
};

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::Value;
use taper_lab::experiments::airfoil::RUNS as AIRFOIL_RUNS;

/// The golden-trajectory checker shared with `crates/optim/tests/golden.rs`.
use taper_lab::golden;

/// Each optimizer's reference implementation.
const REFERENCES: &[(&str, &str)] = &[
    ("sgd", "torch.optim.SGD"),
    ("adagrad", "torch.optim.Adagrad"),
    ("rmsprop", "torch.optim.RMSprop"),
    ("adadelta", "torch.optim.Adadelta"),
    ("adam", "torch.optim.Adam"),
    ("adamw", "torch.optim.AdamW; cautious: timm.optim.AdamWLegacy"),
    ("adamax", "torch.optim.Adamax"),
    ("nadam", "torch.optim.NAdam"),
    ("radam", "torch.optim.RAdam"),
    ("asgd", "torch.optim.ASGD"),
    ("rprop", "torch.optim.Rprop"),
    ("adafactor", "torch.optim.Adafactor"),
    ("muon", "torch.optim.Muon"),
    ("lbfgs", "torch.optim.LBFGS"),
    ("schedulefree_adamw", "schedulefree.AdamWScheduleFree"),
    ("schedulefree_sgd", "schedulefree.SGDScheduleFree"),
    ("lion", "optax.lion"),
    ("adabelief", "optax.adabelief"),
    ("yogi", "optax.yogi"),
    ("adan", "optax.adan"),
    ("lamb", "optax.lamb"),
    ("adopt", "timm.optim.Adopt"),
    ("mars", "timm.optim.Mars"),
    ("madgrad", "timm.optim.MADGRAD"),
    ("laprop", "timm.optim.LaProp"),
    ("ademamix", "optax.contrib.ademamix"),
    ("prodigy", "prodigyopt.Prodigy"),
    ("dadapt_adam", "dadaptation.DAdaptAdam"),
    ("soap", "soap.py (nikhilvyas/SOAP), in the parameter's dtype"),
    ("lookahead", "timm.optim.Lookahead"),
    ("sam", "pytorch_optimizer.SAM"),
];

/// Reproduce the documents' experiments (d2l's traces, the linear regression, the effective
/// learning rate, airfoil, MNIST) and the small GPT, with a verdict for each, into REPORT.md and its figures. Runs
/// offline: the data parts run when their files are found, or with --download.
#[derive(Parser, Debug)]
#[command(name = "reproduce", version)]
struct Args {
    /// A reduced MNIST part (an MLP, 2 epochs on 8,000 images) for a check within a minute.
    #[arg(long)]
    quick: bool,
    /// Directory with airfoil_self_noise.dat and mnist/ (default: $TAPER_DATA_DIR, else ~/.cache/taper).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Download missing data files (checksums verified).
    #[arg(long)]
    download: bool,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output directory for REPORT.md and the SVGs.
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

#[derive(Default)]
struct Report {
    body: String,
    failures: Vec<String>,
    skipped: Vec<String>,
}

impl Report {
    fn section(&mut self, title: &str, secs: f64) {
        let _ = writeln!(self.body, "\n## {title}\n\n_{secs:.1} s_\n");
    }
    fn verdict(&mut self, what: &str, ok: bool) -> &'static str {
        if !ok {
            self.failures.push(what.to_string());
        }
        if ok {
            "pass"
        } else {
            "**FAIL**"
        }
    }
    fn line(&mut self, s: &str) {
        self.body.push_str(s);
        self.body.push('\n');
    }
}

fn out_str(p: &Path) -> String {
    p.to_string_lossy().to_string()
}

/// Every registered optimizer against its reference's golden trajectories, on each path.
fn catalogue(r: &mut Report) -> Result<()> {
    let t0 = Instant::now();
    let mut checks = golden::check_all(golden::GOLDEN).map_err(anyhow::Error::msg)?;
    checks.extend(golden::check_all(golden::GOLDEN_OPTAX).map_err(anyhow::Error::msg)?);
    checks.extend(golden::check_all(golden::GOLDEN_FRONTIER).map_err(anyhow::Error::msg)?);
    r.section("Optimizer catalogue: every optimizer against its reference", t0.elapsed().as_secs_f64());
    r.line(
        "Each optimizer's golden trajectories (`tests/golden/`, made by `scripts/golden/`: every option \
         configuration, f64 and f32, 50 steps on `mean((tanh(X·w1 + b1)·w2 - y)²)`), run on the fused \
         and the composed path. A step matches when every parameter is within 1e-6 (f64) or 1e-5 \
         (f32) of the reference, relative; runs are compared while rounding alone keeps two runs \
         of the reference within that (PyTorch's f32 run against its f64 run; for L-BFGS in f64 a \
         twin started 2^-50 away). Muon's default bfloat16 iteration is compared to bfloat16's \
         precision (2e-2).\n",
    );
    r.line("| optimizer | reference | runs | steps matched (f64) | steps matched (f32) | largest relative difference | verdict |");
    r.line("|---|---|---:|---:|---:|---:|---|");
    let mut names: Vec<String> = Vec::new();
    for c in &checks {
        let name = c.spec.split(':').next().unwrap_or("").to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let own: Vec<&golden::Checked> =
            checks.iter().filter(|c| c.spec.split(':').next() == Some(name.as_str())).collect();
        let steps = |dtype: &str| {
            let (m, t) = own
                .iter()
                .filter(|c| c.dtype == dtype)
                .fold((0, 0), |(m, t), c| (m + c.compared, t + c.total));
            format!("{m}/{t}")
        };
        let worst = own.iter().map(|c| c.max_err).fold(0.0, f64::max);
        let ok = own.iter().all(|c| c.ok());
        let reference = REFERENCES.iter().find(|(n, _)| *n == name).map_or("?", |(_, r)| r);
        let v = r.verdict(&format!("optimizer catalogue: {name}"), ok);
        r.line(&format!(
            "| `{name}` | `{reference}` | {} | {} | {} | {worst:.1e} | {v} |",
            own.len(),
            steps("f64"),
            steps("f32")
        ));
        for c in own.iter().filter(|c| !c.ok()) {
            r.line(&format!(
                "|  | `{}` {} {:?} | | | | {} | |",
                c.spec,
                c.dtype,
                c.path,
                c.failure.as_deref().unwrap_or("too few steps")
            ));
        }
    }
    let registered = taper::optim::names();
    let missing: Vec<&String> =
        registered.iter().filter(|n| !REFERENCES.iter().any(|(m, _)| m == n)).collect();
    r.line(&format!(
        "\n{} optimizers registered; without golden trajectories: {}. The schedulers (44 PyTorch \
         sequences of 100 steps) and weight averaging (`AveragedModel`) are checked the same way by \
         `cargo test -p taper-optim --test schedulers --test averaged`.",
        registered.len(),
        if missing.is_empty() { "none".to_string() } else { format!("{missing:?}") }
    ));
    Ok(())
}

fn traces(r: &mut Report, out: &Path) -> Result<()> {
    let t0 = Instant::now();
    let golden: Value = serde_json::from_str(include_str!("../tests/golden/d2l_traces.json"))?;
    let mut rows = Vec::new();
    for t in golden["traces"].as_array().context("traces")? {
        let function = if t["function"] == "x1^2+2x2^2" { "sec7.2" } else { "d2l" };
        let spec = t["spec"].as_str().context("spec")?;
        let dir = out.join("trace_2d").join(t["id"].as_str().unwrap_or("trace"));
        let args = trace_2d::Args::try_parse_from([
            "trace_2d",
            "--optimizer",
            spec,
            "--function",
            function,
            "--out",
            &out_str(&dir),
        ])?;
        let ours = trace_2d::run_cli(&args)?.remove(0).lines.pop().unwrap_or_default();
        let book = t["lines"]
            .as_array()
            .and_then(|l| l.last())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        rows.push((t["section"].as_str().unwrap_or("").to_string(), spec.to_string(), book, ours, dir));
    }
    let cmp = out.join("trace_2d");
    let args = trace_2d::Args::try_parse_from([
        "trace_2d",
        "--compare",
        "adagrad:lr=0.4,eps=1e-6,eps_in_sqrt=true,rmsprop:lr=0.4,gamma=0.9,eps=1e-6,eps_in_sqrt=true",
        "--out",
        &out_str(&cmp),
    ])?;
    trace_2d::run_cli(&args)?;
    r.section("d2l chapter 7: 2-D traces (f64, gradients from our tape)", t0.elapsed().as_secs_f64());
    r.line("The book's last printed line against ours; the spread allowed is none (all six decimals).\n");
    r.line("| section | optimizer spec | book | ours | verdict |\n|---|---|---|---|---|");
    for (section, spec, book, ours, _) in rows {
        let v = r.verdict(&format!("trace {section} {spec}"), book == ours);
        r.line(&format!("| {section} | `{spec}` | `{book}` | `{ours}` | {v} |"));
    }
    r.line("\nAdaGrad (η = 0.4) against RMSprop (η = 0.4, γ = 0.9) on `0.1·x1² + 2·x2²`:\n\n![traces](trace_2d/trace_2d.svg)");
    Ok(())
}

fn linreg(r: &mut Report, out: &Path, device: &str) -> Result<()> {
    let t0 = Instant::now();
    let dir = out.join("linear_regression");
    let args = linear_regression::Args::try_parse_from([
        "linear_regression",
        "--device",
        device,
        "--out",
        &out_str(&dir),
    ])?;
    let rep = linear_regression::run_cli(&args)?;
    let (b, w) = rep.closed_form;
    r.section(
        "Linear regression (the documents' 100 points, 1000 full-batch iterations)",
        t0.elapsed().as_secs_f64(),
    );
    r.line(&format!("Closed-form least squares: b = {b:.5}, w = {w:.5} (the data's truth: b = 4, w = 3).\n"));
    r.line("| optimizer spec | b | w | final loss | allowed | verdict |\n|---|---|---|---|---|---|");
    let tuned = [
        "sgd:lr=0.2",
        "adagrad:lr=1,eps=1e-8,eps_in_sqrt=true",
        "rmsprop:lr=0.02,gamma=0.99,eps=1e-8,eps_in_sqrt=true",
        "rmsprop:lr=0.01,gamma=0.9,eps=1e-8,eps_in_sqrt=true",
    ];
    for (spec, fit) in &rep.fits {
        let loss = fit.losses.last().copied().unwrap_or(f64::NAN);
        let (allowed, v) = if tuned.contains(&spec.as_str()) {
            let ok = (fit.b - b).abs() <= 0.05 && (fit.w - w).abs() <= 0.05;
            ("within 0.05 of closed form", r.verdict(&format!("linear regression {spec}"), ok))
        } else {
            ("(shown for contrast)", "—")
        };
        r.line(&format!("| `{spec}` | {:.5} | {:.5} | {loss:.6} | {allowed} | {v} |", fit.b, fit.w));
    }
    r.line("\nThe document's AdaGrad (lr = 0.01) stalls: its learning rate has vanished.\n\n![linear regression](linear_regression/linear_regression.svg)");
    Ok(())
}

fn lr(r: &mut Report, out: &Path, device: &str) -> Result<()> {
    let t0 = Instant::now();
    let dir = out.join("lr_decay");
    let args = lr_decay::Args::try_parse_from([
        "lr_decay",
        "--problem",
        "constant",
        "--device",
        device,
        "--out",
        &out_str(&dir),
    ])?;
    let rates = lr_decay::run_cli(&args)?;
    let dir2 = out.join("lr_decay_linreg");
    lr_decay::run_cli(&lr_decay::Args::try_parse_from([
        "lr_decay",
        "--problem",
        "linreg",
        "--device",
        device,
        "--out",
        &out_str(&dir2),
    ])?)?;
    r.section("Effective learning rate η/√(s_t + ε): AdaGrad against RMSprop", t0.elapsed().as_secs_f64());
    r.line("Under a steady gradient (`f = 2·x1 - 0.5·x2`), mean over parameters:\n");
    r.line("| optimizer spec | step 1 | step 10 | step 100 | step 1000 | claim | verdict |\n|---|---|---|---|---|---|---|");
    for rt in &rates {
        let m = |t| rt.mean_at(t);
        let (claim, ok) = if rt.spec.starts_with("adagrad") {
            (
                "falls like 1/√t: step 1000 / step 10 = 0.1 (±1%), and < step 1 / 20",
                ((m(1000) / m(10)) / 0.1 - 1.0).abs() < 0.01 && m(1000) < m(1) / 20.0,
            )
        } else {
            ("levels off: step 1000 within 2× of step 100", m(1000) > m(100) / 2.0 && m(1000) < 2.0 * m(100))
        };
        let v = r.verdict(&format!("effective lr {}", rt.spec), ok);
        r.line(&format!(
            "| `{}` | {:.5} | {:.5} | {:.5} | {:.5} | {claim} | {v} |",
            rt.spec,
            m(1),
            m(10),
            m(100),
            m(1000)
        ));
    }
    r.line("\n![effective learning rate, steady gradient](lr_decay/lr_decay.svg)\n\nOn the linear regression (the gradients shrink as the fit converges):\n\n![effective learning rate, linear regression](lr_decay_linreg/lr_decay.svg)");
    Ok(())
}

fn airfoil(r: &mut Report, out: &Path, data_dir: &Path, download: bool, device: &str) -> Result<()> {
    let t0 = Instant::now();
    let dir = out.join("airfoil");
    let mut argv = vec![
        "airfoil".to_string(),
        "--data-dir".into(),
        out_str(data_dir),
        "--device".into(),
        device.into(),
        "--out".into(),
        out_str(&dir),
    ];
    if !download {
        argv.push("--offline".into());
    }
    let results = airfoil_example::run_cli(&airfoil_example::Args::try_parse_from(&argv)?)?;
    let data = taper_lab::experiments::airfoil::data(data_dir, true, &taper::DeviceSpec::open_str(device)?)?;
    r.section("d2l chapter 7: airfoil experiments (sections 7.3–7.8)", t0.elapsed().as_secs_f64());
    r.line("Final loss over all 1500 rows after 2 epochs (batch 10). The final loss depends on the seed, chiefly through the\n\
            shuffling; PyTorch's spread is over its seeds 0–9. Verdict: the mean of our seeds 0–19 lies inside PyTorch's [min, max].\n");
    r.line("| section | run | book | PyTorch mean [min, max] | ours, seed 0 | ours, mean of 20 seeds | sec/epoch | verdict |\n|---|---|---|---|---|---|---|---|");
    for (res, run) in results.iter().zip(AIRFOIL_RUNS) {
        let losses: Vec<f64> = (0..20)
            .map(|s| {
                taper_lab::experiments::airfoil::run(&data, run.spec, run.form, s, 2).map(|o| o.final_loss)
            })
            .collect::<Result<_, _>>()?;
        let mean = losses.iter().sum::<f64>() / 20.0;
        let (tm, lo, hi) = run.torch;
        let v = r.verdict(&format!("airfoil {} {}", run.section, run.label), mean >= lo && mean <= hi);
        r.line(&format!(
            "| {} | {} (`{}`) | {:.6} | {tm:.6} [{lo:.6}, {hi:.6}] | {:.6} | {mean:.6} | {:.4} | {v} |",
            run.section, run.label, run.spec, run.book, res.outcome.final_loss, res.outcome.sec_per_epoch
        ));
    }
    r.line("\n![airfoil](airfoil/airfoil.svg)");
    Ok(())
}

/// The documents' question as a sweep: AdaGrad against RMSprop across learning rates on airfoil,
/// through `taper_lab::sweep` (the `taper sweep` / `taper report` machinery).
fn sweep_airfoil(r: &mut Report, out: &Path, data_dir: &Path, device: &str, quick: bool) -> Result<()> {
    use taper_lab::sweep::{self, report as sweep_report, Context as SweepContext, Shard, Sweep};
    let t0 = Instant::now();
    let dir = out.join("sweep_airfoil");
    // A fresh run each time (an old directory would be resumed, not rerun).
    let _ = std::fs::remove_dir_all(&dir);
    let seeds = if quick { 2 } else { 5 };
    let grids =
        ["adagrad:lr=logspace(1e-3,1,7)".to_string(), "rmsprop:lr=logspace(1e-3,1,7),alpha=0.9".to_string()];
    let ctx = SweepContext {
        device: taper::DeviceSpec::open_str(device)?,
        data_dir: data_dir.to_path_buf(),
        offline: true,
    };
    let s = Sweep::new(&["airfoil".to_string()], &grids, seeds, None, &ctx)?;
    let summary = sweep::run(&s, &s.grid_cells(), Shard::ALL, &dir.join("results"), |_| {})?;
    let results = [dir.join("results")];
    let merged = sweep_report::merge(&results)?;
    sweep_report::write_merged(&merged, &results, &dir, Some(&dir.join("runs.csv")))?;
    let sums = merged.problems[0].summaries()?;
    r.section(
        "The documents' question as a sweep: AdaGrad against RMSprop across learning rates (airfoil)",
        t0.elapsed().as_secs_f64(),
    );
    r.line(&format!(
        "`taper sweep --problem airfoil --optimizer \"{}\" --optimizer \"{}\" --seeds {seeds}`: {} runs (2 epochs of batch 10 each, \
         {:.2} s of training in all, harness overhead {:.1}% of a run). Full report: [sweep_airfoil/REPORT.md](sweep_airfoil/REPORT.md).\n",
        grids[0],
        grids[1],
        summary.ran,
        summary.run_seconds,
        100.0 * (summary.wall_seconds - summary.run_seconds).max(0.0) / summary.run_seconds.max(1e-9)
    ));
    r.line("Verdict: each optimizer's best learning rate (best mean final loss over the seeds) lies within a factor 10 of the one the chapter uses (AdaGrad 0.1, RMSprop 0.01), and its mean final loss is below 0.25.\n");
    r.line("| optimizer | chapter's lr | best lr | mean final loss | every lr: mean final loss | verdict |\n|---|---|---|---|---|---|");
    for (o, chapter) in sums.iter().zip([0.1, 0.01]) {
        let best = o.best.as_ref().and_then(|b| o.settings.iter().find(|st| &st.spec == b));
        let lr = best
            .and_then(|b| b.swept.iter().find(|(k, _)| k == "lr"))
            .and_then(|(_, v)| v.parse::<f64>().ok());
        let mean = o.finals.iter().sum::<f64>() / o.finals.len().max(1) as f64;
        let ok =
            lr.is_some_and(|lr| lr / chapter <= 10.0 + 1e-9 && chapter / lr <= 10.0 + 1e-9) && mean < 0.25;
        let v = r.verdict(&format!("sweep airfoil {}", o.label), ok);
        let every: Vec<String> = o
            .settings
            .iter()
            .map(|st| {
                format!("{}: {:.4}", st.swept.iter().map(|(_, v)| v.as_str()).collect::<String>(), st.score)
            })
            .collect();
        r.line(&format!(
            "| {} | {chapter} | {} | {mean:.4} | {} | {v} |",
            o.label,
            lr.map_or("–".into(), |l| l.to_string()),
            every.join(", ")
        ));
    }
    r.line("\n![sensitivity](sweep_airfoil/airfoil_sensitivity.svg)\n\n![best curves](sweep_airfoil/airfoil_curves.svg)");
    Ok(())
}

/// The grids of "The frontier on CPU": each optimizer's learning rate over a log grid of four
/// (a factor √10 apart) around its authors' default, the other options at their defaults but two, for CPU time:
/// Muon's iteration in f32 (bfloat16 has no speed to give on a CPU) and SOAP's preconditioners
/// on dimensions up to 1024 (the ConvNet's 3136-wide `fc1` input side is left as Adam's, as
/// SOAP does for any dimension above `max_precond_dim`).
const FRONTIER_GRIDS: &[&str] = &[
    "adamw:lr=logspace(3e-4,1e-2,4)",
    "muon:lr=logspace(6e-3,0.2,4),ns_dtype=native",
    "soap:lr=logspace(1e-3,3e-2,4),max_precond_dim=1024",
    "adopt:lr=logspace(3e-4,1e-2,4)",
    "ademamix:lr=logspace(3e-4,1e-2,4)",
    "mars:lr=logspace(1e-3,3e-2,4)",
    "prodigy:lr=logspace(0.1,3,4)",
    "schedulefree_adamw:lr=logspace(1e-3,3e-2,4)",
];

/// The 2024–2026 optimizers against AdamW on the documents' ConvNet and the small GPT, each at its
/// best learning rate over a log grid and 3 seeds, through `taper_lab::sweep` (`taper sweep`).
fn frontier(r: &mut Report, out: &Path, data_dir: &Path, device: &str) -> Result<()> {
    use taper_lab::sweep::{self, report as sweep_report, Context as SweepContext, Shard, Sweep};
    let t0 = Instant::now();
    let dir = out.join("frontier");
    // A fresh run each time (an old directory would be resumed, not rerun).
    let _ = std::fs::remove_dir_all(&dir);
    // The grid on seed 0, then each optimizer's best setting over seeds 0..3 (DeepOBS's tuning).
    let (seeds, tune) = (1, 3);
    let problems = ["mnist_convnet".to_string(), "char_gpt".to_string()];
    let grids: Vec<String> = FRONTIER_GRIDS.iter().map(|g| g.to_string()).collect();
    let ctx = SweepContext {
        device: taper::DeviceSpec::open_str(device)?,
        data_dir: data_dir.to_path_buf(),
        offline: true,
    };
    let s = Sweep::new(&problems, &grids, seeds, Some(tune), &ctx)?;
    let say = |line: &str| eprintln!("{line}");
    let grid = sweep::run(&s, &s.grid_cells(), Shard::ALL, &dir.join("results"), say)?;
    let last = sweep::run(&s, &s.final_cells(&dir.join("results"))?, Shard::ALL, &dir.join("results"), say)?;
    let results = [dir.join("results")];
    let merged = sweep_report::merge(&results)?;
    sweep_report::write_merged(&merged, &results, &dir, Some(&dir.join("runs.csv")))?;
    r.section("The frontier on CPU: the 2024–2026 optimizers against AdamW", t0.elapsed().as_secs_f64());
    let optimizers: Vec<String> = grids.iter().map(|g| format!("--optimizer \"{g}\"")).collect();
    r.line(&format!(
        "`taper sweep --problem mnist_convnet --problem char_gpt {} --seeds {seeds} --tune {tune}`: {} runs, {:.0} s of \
         training in all. Each optimizer's learning rate over a log grid of four, a factor √10 apart, around its authors' default on seed 0 \
         (Muon's iteration in f32 and SOAP's preconditioners up to 1024 wide, for CPU time; every other option at its \
         default), then the best rate over seeds 0, 1 and 2; the figures are those three runs'. Muon takes the hidden weight matrices \
         (the GPT's blocks, the ConvNet's `fc1`) and AdamW the rest, as the Muon recipe prescribes; Schedule-Free AdamW is \
         measured at its average. `mnist_convnet`: the documents' ConvNet, 1 epoch of batch 64 on 8,000 images, accuracy on \
         2,000 held out (target 0.94); `char_gpt`: the small GPT, 300 iterations of nanoGPT's recipe, validation loss \
         (target 2.5). Full report: [frontier/REPORT.md](frontier/REPORT.md).\n",
        optimizers.join(" "),
        grid.ran + last.ran,
        grid.run_seconds + last.run_seconds,
    ));
    r.line("Verdict: every optimizer has a best setting (a learning rate that never diverged) on both problems. The grids are \
            small (4 rates, 3 seeds): a best rate at the grid's edge is marked, and a finer grid may move the ranking.\n");
    r.line("| problem | optimizer | best lr | final metric, mean ± sd | steps to target, median | reached | verdict |\n|---|---|---|---|---|---|---|");
    for pr in &merged.problems {
        let sums = pr.summaries()?;
        for o in &sums {
            let best = o.best.as_ref().and_then(|b| o.settings.iter().position(|st| &st.spec == b));
            let lr = best
                .and_then(|i| o.settings[i].swept.iter().find(|(k, _)| k == "lr"))
                .map(|(_, v)| v.parse::<f64>().map_or(v.clone(), sig3));
            let edge = best.is_some_and(|i| i == 0 || i + 1 == o.settings.len());
            let f: Vec<f64> = o.finals.iter().copied().filter(|x| x.is_finite()).collect();
            let mean = f.iter().sum::<f64>() / f.len().max(1) as f64;
            let sd = if f.len() > 1 {
                (f.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (f.len() - 1) as f64).sqrt()
            } else {
                0.0
            };
            let mut steps: Vec<u64> = o.steps_to_target.iter().flatten().copied().collect();
            steps.sort_unstable();
            let reached = steps.len();
            let median = if reached * 2 > o.steps_to_target.len() {
                steps[o.steps_to_target.len() / 2].to_string()
            } else {
                "–".into()
            };
            let v = r.verdict(&format!("frontier {} {}", pr.name(), o.label), best.is_some());
            r.line(&format!(
                "| {} | {} | {}{} | {mean:.4} ± {sd:.4} | {median} | {reached}/{} | {v} |",
                pr.name(),
                o.label,
                lr.unwrap_or_else(|| "–".into()),
                if edge { " (edge)" } else { "" },
                o.steps_to_target.len()
            ));
        }
    }
    r.line("\n![performance profile](frontier/profile.svg)");
    Ok(())
}

/// `x` to three significant digits (`0.000949`, `0.300`, `3.00`).
fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

fn mnist(
    r: &mut Report,
    out: &Path,
    data_dir: &Path,
    download: bool,
    device: &str,
    quick: bool,
) -> Result<()> {
    let t0 = Instant::now();
    let dir = out.join("mnist");
    // PyTorch here, 2 epochs on the 8,000/2,000 split of the test set (../shared/REFERENCE.md §5).
    let cases: &[(&str, &str, f64, f64)] = if quick {
        &[("mlp", "adam:lr=0.001", 0.9350, 30_532.0)]
    } else {
        &[
            ("convnet", "adam:lr=0.001", 0.9690, 2_745.0),
            ("convnet", "rmsprop:lr=0.001", 0.9720, 2_919.0),
            ("convnet", "adagrad:lr=0.01", 0.9735, 3_390.0),
            ("convnet", "sgd:lr=0.05,momentum=0.9", 0.9825, 3_492.0),
            ("mlp", "adam:lr=0.001", 0.9350, 30_532.0),
        ]
    };
    let mut rows = Vec::new();
    for model in ["convnet", "mlp"] {
        let specs: Vec<&str> = cases.iter().filter(|c| c.0 == model).map(|c| c.1).collect();
        if specs.is_empty() {
            continue;
        }
        let list = specs.join(",");
        let mdir = dir.join(model);
        let mut argv = vec![
            "mnist",
            "--model",
            model,
            "--compare",
            &list,
            "--split",
            "test",
            "--train-limit",
            "8000",
            "--holdout",
            "2000",
            "--epochs",
            "2",
            "--device",
            device,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        argv.extend(["--data-dir".into(), out_str(data_dir), "--out".into(), out_str(&mdir)]);
        if !download {
            argv.push("--offline".into());
        }
        for res in mnist_example::run_cli(&mnist_example::Args::try_parse_from(&argv)?, false)? {
            let case = cases.iter().find(|c| c.0 == model && c.1 == res.spec).context("case")?;
            rows.push((model, res, case.2, case.3));
        }
    }
    let title = if quick {
        "MNIST (quick: MLP, 2 epochs, 8,000 training / 2,000 held-out images of the test set)"
    } else {
        "MNIST: the documents' ConvNet, optimizers compared (2 epochs, 8,000 training / 2,000 held-out images of the test set)"
    };
    r.section(title, t0.elapsed().as_secs_f64());
    r.line("Verdict: held-out accuracy at least PyTorch's minus 1 point (and at least 96.5% for the ConvNet with Adam). Speeds are\n\
            informational (PyTorch's from ../shared/REFERENCE.md; see docs/PERFORMANCE.md for side-by-side runs).\n");
    r.line("| model | optimizer spec | PyTorch accuracy | ours | allowed | images/s (ours) | images/s (PyTorch) | verdict |\n|---|---|---|---|---|---|---|---|");
    for (model, res, torch_acc, torch_ips) in rows {
        let acc = res.accuracy.last().copied().unwrap_or(0.0);
        let mut floor = torch_acc - 0.01;
        if model == "convnet" && res.spec.starts_with("adam") {
            floor = floor.max(0.965);
        }
        let v = r.verdict(&format!("mnist {model} {}", res.spec), acc >= floor);
        r.line(&format!(
            "| {model} | `{}` | {:.2}% | {:.2}% | ≥ {:.2}% | {:.0} | {torch_ips:.0} | {v} |",
            res.spec,
            100.0 * torch_acc,
            100.0 * acc,
            100.0 * floor,
            res.images_per_second
        ));
    }
    for model in ["convnet", "mlp"] {
        if dir.join(model).join("mnist.svg").exists() {
            r.line(&format!("\n![{model} training loss](mnist/{model}/mnist.svg)"));
        }
    }
    Ok(())
}

/// The small GPT (nanoGPT's `shakespeare_char` CPU recipe) on the shared Shakespeare corpus: the
/// quick mode trains briefly and checks that the validation loss falls well below the unigram
/// entropy; the full mode runs the recipe and checks the validation loss against PyTorch's
/// (`tests/golden/char_lm_pytorch.json`, from `scripts/golden/char_lm_reference.py`).
fn small_gpt(r: &mut Report, out: &Path, data_dir: &Path, device: &str, quick: bool) -> Result<()> {
    let t0 = Instant::now();
    let dir = out.join("char_lm");
    let text = std::fs::read_to_string(data_dir.join(char_lm::CORPUS))?;
    let corpus = char_lm::Corpus::new(&text)?;
    // The unigram entropy (nats per character) of the training split: the loss of a model that
    // knows the character frequencies and nothing else.
    let mut counts = vec![0usize; corpus.vocab.len()];
    for &t in &corpus.train {
        counts[t as usize] += 1;
    }
    let n = corpus.train.len() as f64;
    let unigram: f64 =
        counts.iter().filter(|&&c| c > 0).map(|&c| -(c as f64 / n) * (c as f64 / n).ln()).sum();
    let golden: Value = serde_json::from_str(include_str!("../tests/golden/char_lm_pytorch.json"))?;
    let torch_val =
        golden["final_val_loss"]["mean"].as_f64().context("char_lm_pytorch.json: final_val_loss.mean")?;
    let torch_range = (
        golden["final_val_loss"]["min"].as_f64().unwrap_or(torch_val),
        golden["final_val_loss"]["max"].as_f64().unwrap_or(torch_val),
    );
    let mut argv: Vec<String> = [
        "char_lm",
        "--data-dir",
        &out_str(data_dir),
        "--out",
        &out_str(&dir),
        "--device",
        device,
        "--no-progress",
        "--sample",
        "300",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if quick {
        argv.extend(["--iters", "200", "--eval-every", "100"].map(String::from));
    } else {
        // PyTorch's figure averages 200 batches per evaluation, as nanoGPT's default.
        argv.extend(["--eval-iters", "200"].map(String::from));
    }
    let run = char_lm::run_cli(&char_lm::Args::try_parse_from(&argv)?, false)?;
    let (it, _, val) = *run.evals.last().context("no evaluation")?;
    let title = if quick {
        "Small GPT (quick: nanoGPT's CPU recipe for 200 iterations on the Shakespeare corpus)"
    } else {
        "Small GPT: nanoGPT's shakespeare_char CPU recipe on the Shakespeare corpus (2000 iterations)"
    };
    r.section(title, t0.elapsed().as_secs_f64());
    r.line(&format!(
        "4 layers, 4 heads, width 128, context 64, batch 12, AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on \
         matrices), 100 warm-up iterations then cosine to 1e-4, clipping at 1.0; {} characters, vocabulary {}. \
         Unigram entropy of the training split: {unigram:.3} nats.\n",
        corpus.train.len() + corpus.val.len(),
        run.vocab_size
    ));
    r.line("| check | ours | reference | allowed | verdict |\n|---|---|---|---|---|");
    if quick {
        let ok = val < unigram - 0.5;
        let v = r.verdict("small GPT: val loss below the unigram entropy", ok);
        r.line(&format!(
            "| val loss after {it} iterations | {val:.4} | unigram entropy {unigram:.4} | ≤ {:.4} | {v} |",
            unigram - 0.5
        ));
    } else {
        let ok = (val - torch_val).abs() <= 0.03;
        let v = r.verdict("small GPT: val loss against PyTorch", ok);
        r.line(&format!(
            "| val loss after {it} iterations (200 batches) | {val:.4} | PyTorch {torch_val:.4} (seeds: {:.4}–{:.4}) | ± 0.03 | {v} |",
            torch_range.0, torch_range.1
        ));
    }
    r.line(&format!("\nTraining speed: {:.0} tokens/s on {device}.\n", run.tokens_per_second));
    if let Some(s) = &run.sample {
        r.line(&format!("A sample (temperature 0.8, top-k 200):\n\n```text\n{}\n```", s.trim_end()));
    }
    r.line("\n![train and validation loss](char_lm/char_lm.svg)");
    Ok(())
}

fn main() {
    taper_lab::cli::main(Args::parse(), |args| {
        let failed = run(&args)?;
        if failed > 0 {
            std::process::exit(1);
        }
        Ok(())
    });
}

fn run(args: &Args) -> Result<usize> {
    let started = Instant::now();
    let device = taper::DeviceSpec::open_str(&args.device)?;
    let device_name = taper::tensor::device_name(&device);
    taper_lab::plot::ensure_writable_dir(&args.out)?;
    let data_dir = taper_lab::data::data_dir(args.data_dir.as_deref());
    let mut r = Report::default();
    catalogue(&mut r)?;
    traces(&mut r, &args.out)?;
    linreg(&mut r, &args.out, &args.device)?;
    lr(&mut r, &args.out, &args.device)?;
    let have = |p: &str| data_dir.join(p).exists();
    if have("airfoil_self_noise.dat") || args.download {
        airfoil(&mut r, &args.out, &data_dir, args.download, &args.device)?;
        sweep_airfoil(&mut r, &args.out, &data_dir, &args.device, args.quick)?;
    } else {
        r.skipped.push(format!(
            "airfoil (sections 7.3–7.8): `airfoil_self_noise.dat` not found in {}",
            data_dir.display()
        ));
    }
    if have("mnist/t10k-images-idx3-ubyte.gz") && have("mnist/t10k-labels-idx1-ubyte.gz") || args.download {
        mnist(&mut r, &args.out, &data_dir, args.download, &args.device, args.quick)?;
    } else {
        r.skipped.push(format!("MNIST: `mnist/t10k-*-ubyte.gz` not found in {}", data_dir.display()));
    }
    if have(char_lm::CORPUS) {
        small_gpt(&mut r, &args.out, &data_dir, &args.device, args.quick)?;
        let mnist = have("mnist/t10k-images-idx3-ubyte.gz") && have("mnist/t10k-labels-idx1-ubyte.gz");
        if args.quick {
            r.skipped.push("the frontier on CPU: the full mode only (about 15 minutes on 2 cores)".into());
        } else if mnist {
            frontier(&mut r, &args.out, &data_dir, &args.device)?;
        }
    } else {
        r.skipped.push(format!("small GPT: `{}` not found in {}", char_lm::CORPUS, data_dir.display()));
    }
    let mut head = String::new();
    let _ = writeln!(head, "# Taper: reproduction report\n");
    let _ = writeln!(
        head,
        "Run: {} · device: {device_name} · {} · total {:.1} s\n",
        chrono_free_date(),
        if args.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        head,
        "Verdicts: {} failed{}.",
        r.failures.len(),
        if r.failures.is_empty() { String::new() } else { format!(" ({})", r.failures.join("; ")) }
    );
    if !r.skipped.is_empty() {
        let _ = writeln!(head, "\n**Skipped:**\n");
        for s in &r.skipped {
            let _ = writeln!(head, "- {s}");
        }
        let _ = writeln!(
            head,
            "\nProvide the files with `--data-dir DIR` or `TAPER_DATA_DIR=DIR` (a directory holding `airfoil_self_noise.dat` and \
             `mnist/*.gz` and, for the small GPT, `shakespeare/shakespeare.txt`), or let the example fetch the first two with `--download` (checksums verified)."
        );
    }
    let report = head + &r.body;
    let path = args.out.join("REPORT.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("{report}");
    println!("\nwrote {}", path.display());
    Ok(r.failures.len())
}

/// Today's date (UTC) from the system clock, without a date crate.
fn chrono_free_date() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
