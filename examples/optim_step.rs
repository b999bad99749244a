//! Time one optimizer step on a large parameter: the median over a number of steps, or, with
//! `--serve`, steps on demand so that another program can interleave its own.
//!
//! `cargo run --release --example optim_step -- --optimizer adam:lr=0.001 --numel 10000000`
//!
//! `--serve` prints `ready`, then for each line `N` read from stdin runs N steps and prints their
//! times in nanoseconds on one line. `benches/compare_pytorch.py` uses it to alternate short
//! bursts of Taper's and PyTorch's steps, so that both see the same state of a shared machine
//! (memory bandwidth on it swings by up to 2x over seconds).

use std::io::{BufRead, Write};
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::Parser;
use taper::optim::{from_spec, NonFinite};
use taper::{Grads, ParamStore, SeededRng};

#[derive(Parser, Debug)]
#[command(name = "optim_step", version, about = "Time one optimizer step on a large f32 parameter (CPU)")]
struct Args {
    /// Optimizer spec, e.g. `adam:lr=0.001` or `sgd:lr=0.01,momentum=0.9`.
    #[arg(long, default_value = "adam:lr=0.001")]
    optimizer: String,
    /// Parameter size (elements).
    #[arg(long, default_value_t = 10_000_000)]
    numel: usize,
    /// Skip the NaN/Inf check of the gradient (PyTorch's optimizers do not check).
    #[arg(long)]
    unchecked: bool,
    /// Steps to time (after one untimed step); ignored with --serve.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Run steps on demand: read `N` per line from stdin, print N times (ns) per line.
    #[arg(long)]
    serve: bool,
}

fn main() {
    taper_lab::cli::main(Args::parse(), run);
}

fn run(args: Args) -> Result<()> {
    if args.numel == 0 || args.steps == 0 {
        anyhow::bail!("--numel and --steps must be positive");
    }
    let mut rng = SeededRng::new(0);
    let mut store = ParamStore::new();
    let p = store.insert("p", rng.normal(args.numel, 0.0, 1.0, DType::F32, &Device::Cpu)?)?;
    let mut grads = Grads::default();
    grads.set(&p, rng.normal(args.numel, 0.0, 1.0, DType::F32, &Device::Cpu)?);
    let mut opt = from_spec(&args.optimizer, store.params().to_vec())?;
    if args.unchecked {
        opt.set_non_finite(NonFinite::Unchecked);
    }
    opt.step(&grads)?; // allocates the state

    let mut timed = |n: usize| -> Result<Vec<u128>> {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                opt.step(&grads)?;
                Ok(t.elapsed().as_nanos())
            })
            .collect()
    };
    if !args.serve {
        let mut ns = timed(args.steps)?;
        ns.sort_unstable();
        println!(
            "{}: median {:.3} ms over {} steps",
            args.optimizer,
            ns[ns.len() / 2] as f64 * 1e-6,
            ns.len()
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let n: usize = line.trim().parse().with_context(|| format!("expected a step count, got {line:?}"))?;
        let ns = timed(n)?;
        let text: Vec<String> = ns.iter().map(|t| t.to_string()).collect();
        writeln!(out, "{}", text.join(" "))?;
        out.flush()?;
    }
    Ok(())
}
