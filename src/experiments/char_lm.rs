//! A character-level language model: nanoGPT's `shakespeare_char` on CPU. Reads a text file,
//! builds the vocabulary from its characters, splits 90/10 by position, trains a small GPT with
//! nanoGPT's recipe (AdamW with weight decay on matrices only, linear warm-up then cosine decay
//! to a floor, clipping at norm 1), evaluates on held-out windows, and samples.
//!
//! ```text
//! TAPER_DATA_DIR=../shared/data cargo run --release --example char_lm
//! cargo run --release --example char_lm -- --data input.txt --iters 500 --sample 300
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use taper_autograd::{Param, Tape};

use crate::cli::Common;
use crate::nn::{Builder, Gpt, GptConfig};
use crate::optim::{self, clip, Optimizer};
use crate::plot::{self, ChartSpec, Series};
use crate::tensor::SeededRng;

/// The corpus file under the data directory.
pub const CORPUS: &str = "shakespeare/shakespeare.txt";

/// A text as token ids: its characters, sorted, are the vocabulary.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The vocabulary, in id order.
    pub vocab: Vec<char>,
    /// The first 90 % of the text.
    pub train: Vec<u32>,
    /// The last 10 %.
    pub val: Vec<u32>,
}

impl Corpus {
    /// Tokenizes `text` and splits it 90/10 by position (nanoGPT's `prepare.py`).
    pub fn new(text: &str) -> Result<Self> {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        if vocab.len() < 2 {
            bail!("the text has {} distinct character(s): a language model needs at least 2", vocab.len());
        }
        let ids: Vec<u32> = text.chars().map(|c| vocab.binary_search(&c).unwrap_or(0) as u32).collect();
        let split = ids.len() * 9 / 10;
        Ok(Self { vocab, val: ids[split..].to_vec(), train: ids[..split].to_vec() })
    }

    /// The ids of `s`; an unknown character is an error naming it.
    pub fn encode(&self, s: &str) -> Result<Vec<u32>> {
        s.chars()
            .map(|c| match self.vocab.binary_search(&c) {
                Ok(i) => Ok(i as u32),
                Err(_) => bail!("the prompt's character {c:?} is not in the text's vocabulary"),
            })
            .collect()
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().filter_map(|&i| self.vocab.get(i as usize)).collect()
    }
}

/// `batch` random windows of `block + 1` tokens from `data`: inputs and next-token targets, each
/// `[batch, block]` (nanoGPT's `get_batch`).
pub fn batch(
    data: &[u32],
    batch: usize,
    block: usize,
    rng: &mut SeededRng,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    if data.len() <= block {
        bail!("a split of {} tokens is too short for a context of {block}", data.len());
    }
    let (mut x, mut y) = (Vec::with_capacity(batch * block), Vec::with_capacity(batch * block));
    for _ in 0..batch {
        let i = ((rng.uniform_f64() * (data.len() - block) as f64) as usize).min(data.len() - block - 1);
        x.extend_from_slice(&data[i..i + block]);
        y.extend_from_slice(&data[i + 1..i + block + 1]);
    }
    Ok((Tensor::from_vec(x, (batch, block), device)?, Tensor::from_vec(y, (batch, block), device)?))
}

/// nanoGPT's learning rate at iteration `it`: linear warm-up over `warmup` iterations, then a
/// cosine from `lr` down to `min_lr` at `decay_iters`, then `min_lr`.
pub fn nanogpt_lr(it: usize, lr: f64, min_lr: f64, warmup: usize, decay_iters: usize) -> f64 {
    if it < warmup {
        return lr * (it + 1) as f64 / (warmup + 1) as f64;
    }
    if it > decay_iters {
        return min_lr;
    }
    let ratio = (it - warmup) as f64 / (decay_iters - warmup).max(1) as f64;
    min_lr + 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()) * (lr - min_lr)
}

/// Train a character-level GPT on a text file (nanoGPT's shakespeare_char CPU recipe by default)
/// and sample from it.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "char_lm", version)]
pub struct Args {
    /// The text file [default: shakespeare/shakespeare.txt under --data-dir / $TAPER_DATA_DIR].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Directory holding shakespeare/shakespeare.txt.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Training iterations.
    #[arg(long, default_value_t = 2000)]
    pub iters: usize,
    /// Evaluate every N iterations (and at the first and the last).
    #[arg(long, default_value_t = 250)]
    pub eval_every: usize,
    /// Batches per evaluation, of each split.
    #[arg(long, default_value_t = 20)]
    pub eval_iters: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 12)]
    pub batch_size: usize,
    /// Context length.
    #[arg(long, default_value_t = 64)]
    pub block_size: usize,
    /// Transformer blocks.
    #[arg(long, default_value_t = 4)]
    pub n_layer: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub n_head: usize,
    /// Width.
    #[arg(long, default_value_t = 128)]
    pub n_embd: usize,
    /// Dropout probability.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// Biases in linear layers and layer norms.
    #[arg(long)]
    pub bias: bool,
    /// Optimizer spec for the matrices (the other parameters get weight_decay=0).
    #[arg(long, default_value = "adamw:lr=0.001,beta1=0.9,beta2=0.99,weight_decay=0.1")]
    pub optimizer: String,
    /// Floor of the cosine decay.
    #[arg(long, default_value_t = 1e-4)]
    pub min_lr: f64,
    /// Warm-up iterations.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// Clip gradients to this global norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f64,
    /// Characters to sample after training (0: none).
    #[arg(long, default_value_t = 0)]
    pub sample: usize,
    /// The sample's prompt.
    #[arg(long, default_value = "\n")]
    pub prompt: String,
    /// Sampling temperature.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample among the k most likely characters only (0: all).
    #[arg(long, default_value_t = 200)]
    pub top_k: usize,
    /// Seed of the initialization, the batches and the samples.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// `--device`, `--out`.
    #[command(flatten)]
    pub common: Common,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `(iteration, train loss, val loss)` at each evaluation.
    pub evals: Vec<(usize, f64, f64)>,
    /// Training tokens per second.
    pub tokens_per_second: f64,
    /// The sample, if asked for.
    pub sample: Option<String>,
    /// The vocabulary size.
    pub vocab_size: usize,
}

fn estimate(gpt: &Gpt, data: &[u32], a: &Args, rng: &mut SeededRng, device: &Device) -> Result<f64> {
    let mut total = 0.0;
    for _ in 0..a.eval_iters {
        let (x, y) = batch(data, a.batch_size, a.block_size, rng, device)?;
        let tape = Tape::new();
        total += tape.no_grad(|| gpt.loss(&tape, &x, &y, None))?.to_scalar_f64()?;
    }
    Ok(total / a.eval_iters.max(1) as f64)
}

/// Draws `n` characters after `prompt`: softmax of the last logits over `temperature`, cut to the
/// `top_k` most likely.
pub fn generate(
    gpt: &Gpt,
    corpus: &Corpus,
    prompt: &str,
    n: usize,
    temperature: f64,
    top_k: usize,
    rng: &mut SeededRng,
) -> Result<String> {
    if temperature.is_nan() || temperature <= 0.0 {
        bail!("--temperature must be > 0, got {temperature}");
    }
    let mut ids = corpus.encode(prompt)?;
    if ids.is_empty() {
        bail!("the prompt is empty");
    }
    let device = gpt.token_embedding().device();
    for _ in 0..n {
        let start = ids.len().saturating_sub(gpt.config.block_size);
        let ctx = Tensor::from_vec(ids[start..].to_vec(), (1, ids.len() - start), &device)?;
        let tape = Tape::new();
        let logits = tape.no_grad(|| gpt.logits(&tape, &ctx))?;
        let v = corpus.vocab.len();
        let last: Vec<f64> = logits.value().flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
        let mut z: Vec<f64> = last[last.len() - v..].iter().map(|l| l / temperature).collect();
        if top_k > 0 && top_k < v {
            let mut sorted = z.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let cut = sorted[top_k - 1];
            z.iter_mut().filter(|x| **x < cut).for_each(|x| *x = f64::NEG_INFINITY);
        }
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let p: Vec<f64> = z.iter().map(|x| (x - m).exp()).collect();
        let total: f64 = p.iter().sum();
        let mut r = rng.uniform_f64() * total;
        let mut pick = v - 1;
        for (i, pi) in p.iter().enumerate() {
            if r < *pi {
                pick = i;
                break;
            }
            r -= pi;
        }
        ids.push(pick as u32);
    }
    Ok(corpus.decode(&ids))
}

/// The optimizer: `spec` over the matrices, the same with `weight_decay=0` over the rest (nanoGPT's
/// `configure_optimizers`).
fn optimizer(spec: &str, params: &[Param]) -> Result<Box<dyn Optimizer>> {
    let (decay, rest): (Vec<Param>, Vec<Param>) = params.iter().cloned().partition(|p| p.dims().len() >= 2);
    let mut opt = optim::from_spec(spec, decay)?;
    if let Err(e) = opt.add_param_group(rest.clone(), "weight_decay=0") {
        // An optimizer without weight decay: the same options for both groups.
        opt.add_param_group(rest, "").with_context(|| format!("{e}"))?;
    }
    Ok(opt)
}

/// Runs the command line.
pub fn run_cli(a: &Args, verbose: bool) -> Result<Outcome> {
    if a.iters == 0 || a.batch_size == 0 || a.block_size == 0 || a.eval_iters == 0 || a.eval_every == 0 {
        bail!("--iters, --batch-size, --block-size, --eval-iters and --eval-every must be at least 1");
    }
    let spec = optim::canonical(&a.optimizer)?;
    let device = a.common.device()?;
    let path = match &a.data {
        Some(p) => p.clone(),
        None => crate::data::data_dir(a.data_dir.as_deref()).join(CORPUS),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let corpus = Corpus::new(&text)?;
    if corpus.val.len() <= a.block_size {
        bail!(
            "the validation split ({} characters) is shorter than the context {}",
            corpus.val.len(),
            a.block_size
        );
    }
    let out = a.common.out_dir("char_lm")?;
    let config = GptConfig {
        vocab_size: corpus.vocab.len(),
        block_size: a.block_size,
        n_layer: a.n_layer,
        n_head: a.n_head,
        n_embd: a.n_embd,
        dropout: a.dropout,
        bias: a.bias,
    };
    let mut b = Builder::new(a.seed, DType::F32, &device);
    let gpt = Gpt::new(&mut b, config, a.seed)?;
    let store = b.into_store();
    let params = store.trainable();
    let mut opt = optimizer(&spec.to_string(), &params)?;
    let base_lr = opt.learning_rate();
    let mut rng = SeededRng::new(a.seed);
    let mut eval_rng = SeededRng::new(a.seed ^ 0x5eed);
    let mut evals = Vec::new();
    let mut train_time = 0.0;
    for it in 0..=a.iters {
        if it % a.eval_every == 0 || it == a.iters {
            gpt.set_training(false);
            let tl = estimate(&gpt, &corpus.train, a, &mut eval_rng, &device)?;
            let vl = estimate(&gpt, &corpus.val, a, &mut eval_rng, &device)?;
            gpt.set_training(true);
            if verbose {
                println!("step {it}: train loss {tl:.4}, val loss {vl:.4}");
            }
            evals.push((it, tl, vl));
        }
        if it == a.iters {
            break;
        }
        let t0 = Instant::now();
        opt.set_learning_rate(nanogpt_lr(it, base_lr, a.min_lr, a.warmup, a.iters))?;
        let (x, y) = batch(&corpus.train, a.batch_size, a.block_size, &mut rng, &device)?;
        let loss = gpt.loss(&Tape::new(), &x, &y, None)?;
        let mut grads = loss.backward()?;
        if a.grad_clip > 0.0 {
            clip::clip_grad_norm(&mut grads, &params, a.grad_clip)?;
        }
        opt.step(&grads)?;
        train_time += t0.elapsed().as_secs_f64();
    }
    let tokens_per_second = (a.iters * a.batch_size * a.block_size) as f64 / train_time.max(1e-9);
    if verbose {
        println!("training: {tokens_per_second:.0} tokens/s");
    }
    let sample = if a.sample > 0 {
        gpt.set_training(false);
        let s = generate(
            &gpt,
            &corpus,
            &a.prompt,
            a.sample,
            a.temperature,
            a.top_k,
            &mut SeededRng::new(a.seed),
        )?;
        if verbose {
            println!("{s}");
        }
        Some(s)
    } else {
        None
    };
    figure(&out.join("char_lm.svg"), &evals)?;
    let csv: String = std::iter::once("iter,train_loss,val_loss\n".to_string())
        .chain(evals.iter().map(|(i, t, v)| format!("{i},{t},{v}\n")))
        .collect();
    std::fs::write(out.join("char_lm.csv"), csv)?;
    Ok(Outcome { evals, tokens_per_second, sample, vocab_size: corpus.vocab.len() })
}

/// The train and validation losses against the iteration.
pub fn figure(path: &Path, evals: &[(usize, f64, f64)]) -> Result<()> {
    let series = [
        Series::new("train", evals.iter().map(|e| (e.0 as f64, e.1)).collect()),
        Series::new("val", evals.iter().map(|e| (e.0 as f64, e.2)).collect()),
    ];
    let spec =
        ChartSpec { title: "character-level GPT", x_label: "iteration", y_label: "loss", log_y: false };
    Ok(plot::line_chart(path, &spec, &series)?)
}
