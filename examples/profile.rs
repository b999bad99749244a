//! Where a training step's time goes: forward per layer, backward per op, loss, optimizer step,
//! averaged over a number of steps of the documents' ConvNet (or the MLP) on a synthetic batch.
//!
//! `cargo run --release --example profile -- --model convnet --steps 50`

use anyhow::Result;
use clap::Parser;
use taper::experiments::mnist::{build, synthetic_batch, Model};
use taper::nn::{cross_entropy, Module};
use taper::optim::from_spec;
use taper::{profile, DeviceSpec, Tape, Var};

#[derive(Parser, Debug)]
#[command(name = "profile", version, about = "Where a training step's time goes, op by op")]
struct Args {
    /// convnet or mlp.
    #[arg(long, default_value = "convnet")]
    model: Model,
    /// Steps to time (after 5 untimed warm-up steps).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Optimizer spec.
    #[arg(long, default_value = "adam:lr=0.001")]
    optimizer: String,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn main() {
    taper::cli::main(Args::parse(), run);
}

fn run(args: Args) -> Result<()> {
    if args.steps == 0 || args.batch == 0 {
        anyhow::bail!("--steps and --batch must be positive");
    }
    let device = DeviceSpec::open_str(&args.device)?;
    let (net, store) = build(args.model, 0, candle_core::DType::F32, &device)?;
    let batch = synthetic_batch(args.batch, candle_core::DType::F32, &device)?;
    let mut opt = from_spec(&args.optimizer, store.trainable())?;
    let x = Var::constant(batch.x.clone());
    let mut step = |timed: bool| -> Result<()> {
        let tape = Tape::new();
        let logits = profile::scope("forward (all layers)", || net.forward(&tape, &x))?;
        let loss = profile::scope("loss", || cross_entropy(&logits, &batch.y))?;
        let grads = profile::scope("backward (all ops)", || loss.backward())?;
        profile::scope("optimizer step", || opt.step(&grads))?;
        if timed {
            device.synchronize()?;
        }
        Ok(())
    };
    for _ in 0..5 {
        step(false)?;
    }
    profile::start();
    for _ in 0..args.steps {
        step(true)?;
    }
    let report = profile::stop();
    let per_step = report.wall.as_secs_f64() / args.steps as f64;
    println!(
        "{:?}, batch {}, {}, {} threads: {:.2} ms per step ({:.0} images/s)\n",
        args.model,
        args.batch,
        args.optimizer,
        rayon_threads(),
        per_step * 1e3,
        args.batch as f64 / per_step
    );
    println!("{report}");
    Ok(())
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "?".into())
}
