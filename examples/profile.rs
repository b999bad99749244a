//! Where a training step's time goes: forward per layer, backward per op, loss, optimizer step,
//! averaged over a number of steps of the documents' ConvNet (or the MLP) on a synthetic batch.
//!
//! `cargo run --release --example profile -- --model convnet --steps 50`
//! `cargo run --release --example profile -- --model gpt --batch 12` (char_lm's default GPT,
//! context 64, on random tokens)

use anyhow::Result;
use clap::Parser;
use taper::nn::{cross_entropy, Module};
use taper::optim::from_spec;
use taper::{profile, DeviceSpec, Tape, Var};
use taper_lab::experiments::mnist::{build, synthetic_batch, Model};

#[derive(Parser, Debug)]
#[command(name = "profile", version, about = "Where a training step's time goes, op by op")]
struct Args {
    /// convnet, mlp or gpt.
    #[arg(long, default_value = "convnet")]
    model: String,
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
    taper_lab::cli::main(Args::parse(), run);
}

fn run(args: Args) -> Result<()> {
    if args.steps == 0 || args.batch == 0 {
        anyhow::bail!("--steps and --batch must be positive");
    }
    let device = DeviceSpec::open_str(&args.device)?;
    if args.model == "gpt" {
        return gpt(&args, &device);
    }
    let model: Model = args.model.parse().map_err(anyhow::Error::msg)?;
    let (net, store) = build(model, 0, candle_core::DType::F32, &device)?;
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
        model,
        args.batch,
        args.optimizer,
        rayon_threads(),
        per_step * 1e3,
        args.batch as f64 / per_step
    );
    println!("{report}");
    Ok(())
}

/// The char_lm default GPT (4 layers, 4 heads, width 128, context 64, vocabulary 84) on random
/// tokens, AdamW with clipping, as `examples/char_lm` steps it.
fn gpt(args: &Args, device: &taper::Device) -> Result<()> {
    use taper::nn::{Builder, Gpt, GptConfig};
    let config = GptConfig {
        vocab_size: 84,
        block_size: 64,
        n_layer: 4,
        n_head: 4,
        n_embd: 128,
        dropout: 0.0,
        bias: false,
    };
    let mut b = Builder::new(0, candle_core::DType::F32, device);
    let model = Gpt::new(&mut b, config, 0)?;
    let store = b.into_store();
    let params = store.trainable();
    let mut opt = from_spec(&args.optimizer, params.clone())?;
    let mut rng = taper::SeededRng::new(0);
    let mut ids = |n: usize| -> Result<candle_core::Tensor> {
        let v: Vec<u32> = (0..n).map(|_| (rng.uniform_f64() * 84.0) as u32).collect();
        Ok(candle_core::Tensor::from_vec(v, (args.batch, 64), device)?)
    };
    let (x, y) = (ids(args.batch * 64)?, ids(args.batch * 64)?);
    let mut step = || -> Result<()> {
        let tape = Tape::new();
        let loss = profile::scope("forward + loss", || model.loss(&tape, &x, &y, None))?;
        let mut grads = profile::scope("backward (all ops)", || loss.backward())?;
        profile::scope("clip", || taper::optim::clip::clip_grad_norm(&mut grads, &params, 1.0))?;
        profile::scope("optimizer step", || opt.step(&grads))?;
        Ok(())
    };
    for _ in 0..5 {
        step()?;
    }
    profile::start();
    for _ in 0..args.steps {
        step()?;
    }
    let report = profile::stop();
    let per_step = report.wall.as_secs_f64() / args.steps as f64;
    println!(
        "gpt 4x4x128, batch {} x 64, {}, {} threads: {:.2} ms per step ({:.0} tokens/s)",
        args.batch,
        args.optimizer,
        rayon_threads(),
        per_step * 1e3,
        (args.batch * 64) as f64 / per_step
    );
    // nanoGPT's count of the model's FLOPs, against the product rate this machine reaches now.
    let non_embedding: usize = params
        .iter()
        .filter(|p| !p.name().contains(".wpe."))
        .map(|p| p.dims().iter().product::<usize>())
        .sum();
    let flops = taper_lab::perf::gpt_step_flops(non_embedding, 4, 128, 64, args.batch * 64);
    let gflops = flops / per_step / 1e9;
    let peak = taper_lab::perf::measure_peak(device, 1024, 1.0)?;
    println!(
        "{:.2} GFLOP a step: {gflops:.0} GFLOP/s, {:.0}% of the peak, {peak}\n",
        flops / 1e9,
        100.0 * gflops / peak.gflops
    );
    println!("{report}");
    Ok(())
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "?".into())
}
