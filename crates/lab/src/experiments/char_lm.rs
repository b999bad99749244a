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

use crate::data::{Checksum, Remote};
use crate::train::{self, checkpoint, steps};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use taper_autograd::{Param, Tape};

use crate::cli::{spec_hparams, Board, Common, DataArgs};
use crate::nn::{Builder, Gpt, GptConfig};
use crate::optim::{self, clip, Optimizer};
use crate::plot::{self, ChartSpec, Series};
use crate::tensor::SeededRng;
use crate::train::tensorboard::{HParam, StepStats};

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

/// A named recipe: what the shape and length flags default to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Preset {
    /// nanoGPT's CPU run of `shakespeare_char` (its README): 4 layers, 4 heads, width 128,
    /// context 64, batch 12, no dropout, 2000 iterations, evaluations of 20 batches.
    #[default]
    Cpu,
    /// nanoGPT's full `config/train_shakespeare_char.py`: 6 layers, 6 heads, width 384, context
    /// 256, batch 64, dropout 0.2, 5000 iterations, evaluations of 200 batches.
    Nanogpt,
}

/// The shape and length of a run, after the preset and the flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    /// Training iterations.
    pub iters: usize,
    /// Evaluate every N iterations.
    pub eval_every: usize,
    /// Batches per evaluation.
    pub eval_iters: usize,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Context length.
    pub block_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Width.
    pub n_embd: usize,
    /// Dropout probability.
    pub dropout: f64,
}

impl Preset {
    /// The preset's recipe.
    pub fn recipe(self) -> Recipe {
        match self {
            Preset::Cpu => Recipe {
                iters: 2000,
                eval_every: 250,
                eval_iters: 20,
                batch_size: 12,
                block_size: 64,
                n_layer: 4,
                n_head: 4,
                n_embd: 128,
                dropout: 0.0,
            },
            Preset::Nanogpt => Recipe {
                iters: 5000,
                eval_every: 250,
                eval_iters: 200,
                batch_size: 64,
                block_size: 256,
                n_layer: 6,
                n_head: 6,
                n_embd: 384,
                dropout: 0.2,
            },
        }
    }
}

/// Which text to train on when `--data` is not given.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CorpusName {
    /// `shakespeare/shakespeare.txt` in the data directory: Shakespeare's 42 works (5 MB, 84
    /// characters); not downloadable, supplied with the data directory.
    #[default]
    Shakespeare,
    /// Karpathy's tinyshakespeare `input.txt` (1.1 MB, 65 characters), downloaded into the data
    /// directory when missing, SHA-256 verified.
    Tinyshakespeare,
}

/// Karpathy's tinyshakespeare, where char-rnn serves it; its size and SHA-256 are TensorFlow
/// Datasets' (`url_checksums/tiny_shakespeare.txt`: 1,115,394 bytes).
pub const TINY_SHAKESPEARE: Remote = Remote {
    name: "tinyshakespeare/input.txt",
    urls: &["https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"],
    checksum: Checksum::Sha256("86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
};

/// Train a character-level GPT on a text file (nanoGPT's shakespeare_char CPU recipe by default)
/// and sample from it.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "char_lm", version)]
pub struct Args {
    /// The text file [default: the --corpus under --data-dir / $TAPER_DATA_DIR].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The corpus when --data is not given.
    #[arg(long, value_enum, default_value_t = CorpusName::Shakespeare)]
    pub corpus: CorpusName,
    /// `--data-dir`, `--offline`.
    #[command(flatten)]
    pub data_args: DataArgs,
    /// The recipe the shape and length flags default to.
    #[arg(long, value_enum, default_value_t = Preset::Cpu)]
    pub preset: Preset,
    /// Training iterations [preset: cpu 2000, nanogpt 5000].
    #[arg(long)]
    pub iters: Option<usize>,
    /// Evaluate every N iterations, and at the first and the last [preset: 250].
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Batches per evaluation, of each split [preset: cpu 20, nanogpt 200].
    #[arg(long)]
    pub eval_iters: Option<usize>,
    /// Sequences per micro-batch [preset: cpu 12, nanogpt 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Micro-batches whose gradients are summed into one step (nanoGPT's
    /// gradient_accumulation_steps).
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Context length [preset: cpu 64, nanogpt 256].
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Transformer blocks [preset: cpu 4, nanogpt 6].
    #[arg(long)]
    pub n_layer: Option<usize>,
    /// Attention heads [preset: cpu 4, nanogpt 6].
    #[arg(long)]
    pub n_head: Option<usize>,
    /// Width [preset: cpu 128, nanogpt 384].
    #[arg(long)]
    pub n_embd: Option<usize>,
    /// Dropout probability [preset: cpu 0, nanogpt 0.2].
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Biases in linear layers and layer norms.
    #[arg(long)]
    pub bias: bool,
    /// Optimizer spec for the matrices (the other parameters get weight_decay=0); with
    /// --other-optimizer, for the hidden weight matrices of the transformer blocks only.
    #[arg(long, default_value = "adamw:lr=0.001,beta1=0.9,beta2=0.99,weight_decay=0.1")]
    pub optimizer: String,
    /// A second optimizer for every parameter outside the blocks' weight matrices (embeddings,
    /// the tied head, norms, biases), as in the Muon recipe: `--optimizer muon:lr=0.02
    /// --other-optimizer adamw:lr=1e-3` (its vectors get weight_decay=0). Each group's learning
    /// rate follows the warm-up and cosine schedule scaled to its own base rate.
    #[arg(long)]
    pub other_optimizer: Option<String>,
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
    /// Seed of the initialization, the batches, the dropout masks and the samples.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Write a checkpoint here at every evaluation and at the end (atomically).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Resume from a checkpoint exactly where it was saved (same text, recipe and optimizer).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many iterations in this process (checkpointing there with --save), as a
    /// time-limited job would; --resume goes on.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// `--logdir`: TensorBoard curves (`train/loss`, `eval/train_loss`, `eval/val_loss`,
    /// `lr/group_{g}`, `train/grad_norm` before clipping, `train/update_ratio`,
    /// `train/tokens_per_second`) and the run's hyperparameters.
    #[command(flatten)]
    pub board: Board,
    /// `--device`, `--out`.
    #[command(flatten)]
    pub common: Common,
}

impl Args {
    /// The recipe: the preset's, with each given flag on top.
    pub fn recipe(&self) -> Recipe {
        let p = self.preset.recipe();
        Recipe {
            iters: self.iters.unwrap_or(p.iters),
            eval_every: self.eval_every.unwrap_or(p.eval_every),
            eval_iters: self.eval_iters.unwrap_or(p.eval_iters),
            batch_size: self.batch_size.unwrap_or(p.batch_size),
            block_size: self.block_size.unwrap_or(p.block_size),
            n_layer: self.n_layer.unwrap_or(p.n_layer),
            n_head: self.n_head.unwrap_or(p.n_head),
            n_embd: self.n_embd.unwrap_or(p.n_embd),
            dropout: self.dropout.unwrap_or(p.dropout),
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `(iteration, train loss, val loss)` at each evaluation.
    pub evals: Vec<(usize, f64, f64)>,
    /// Training tokens per second (over every step of this process).
    pub tokens_per_second: f64,
    /// The median time of one training step in this process, in seconds (what benchmarks
    /// compare: robust to a noisy machine's outliers and to the first steps' warm-up).
    pub median_step_seconds: f64,
    /// The model's GFLOP/s at the median step (nanoGPT's count: `6N + 12·L·C·T` FLOPs a token,
    /// [`crate::perf::gpt_step_flops`]).
    pub gflops: f64,
    /// The sample, if asked for.
    pub sample: Option<String>,
    /// The vocabulary size.
    pub vocab_size: usize,
}

/// A per-purpose seed for iteration `it`: every random draw of a step is a function of the run's
/// seed and the step, so a resumed run draws exactly what the uninterrupted one would.
pub(crate) fn step_seed(seed: u64, it: usize, purpose: u64) -> u64 {
    let mut z =
        seed ^ (it as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ purpose.wrapping_mul(0xd1b5_4a32_d192_ed03);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The mean loss of `r.eval_iters` random batches of `data` under no-grad.
pub(crate) fn estimate(
    gpt: &Gpt,
    data: &[u32],
    r: &Recipe,
    rng: &mut SeededRng,
    device: &Device,
) -> Result<f64> {
    Ok(steps::mean_loss(r.eval_iters, |_, tape| {
        let (x, y) = batch(data, r.batch_size, r.block_size, rng, device)
            .map_err(|e| train::Error::InvalidArgument(e.to_string()))?;
        Ok(gpt.loss(tape, &x, &y, None)?)
    })?)
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

/// The text: `--data`, else the `--corpus` in the data directory (tinyshakespeare downloaded
/// there when missing, unless `--offline`).
fn read_text(a: &Args) -> Result<String> {
    if let Some(p) = &a.data {
        return std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    }
    let dir = a.data_args.dir();
    match a.corpus {
        CorpusName::Shakespeare => {
            let p = dir.join(CORPUS);
            std::fs::read_to_string(&p).with_context(|| {
                format!(
                    "reading {} (point --data-dir or TAPER_DATA_DIR at the shared data, or pass --data FILE)",
                    p.display()
                )
            })
        }
        CorpusName::Tinyshakespeare => {
            let bytes = crate::data::fetch(&TINY_SHAKESPEARE, &dir, !a.data_args.offline)?;
            String::from_utf8(bytes).context("tinyshakespeare is not UTF-8")
        }
    }
}

/// What a checkpoint of this example records besides the tensors, to refuse another text or
/// model: the vocabulary and the recipe.
fn run_fields(corpus: &Corpus, r: &Recipe, a: &Args) -> Vec<(&'static str, String)> {
    vec![
        ("example", "char_lm".to_string()),
        ("vocab", corpus.vocab.iter().collect()),
        (
            "recipe",
            format!(
                "iters={} eval_every={} eval_iters={} batch={}x{} block={} layers={} heads={} width={} dropout={} bias={} min_lr={} warmup={} clip={}",
                r.iters, r.eval_every, r.eval_iters, r.batch_size, a.grad_accum, r.block_size, r.n_layer, r.n_head,
                r.n_embd, r.dropout, a.bias, a.min_lr, a.warmup, a.grad_clip
            ),
        ),
    ]
}

/// Whether `p` is one of the transformer blocks' weight matrices (what Muon takes in the Muon
/// recipe; embeddings, the tied head, norms and biases are the others).
pub fn is_hidden_matrix(p: &Param) -> bool {
    p.dims().len() >= 2 && p.name().starts_with("transformer.h.")
}

/// The optimizer of a run: `spec` over every parameter (weight decay on the matrices only), or
/// with `other`, `spec` over the blocks' weight matrices and `other` over the rest, in one
/// [`optim::Mixed`] optimizer (one checkpoint, one schedule).
pub fn build_optimizer(spec: &str, other: Option<&str>, params: &[Param]) -> Result<Box<dyn Optimizer>> {
    let Some(other) = other else {
        return steps::decay_matrices_only(spec, params).map_err(|e| {
            let name = spec.split(':').next().unwrap_or(spec);
            if name == "muon" {
                anyhow::anyhow!(
                    "{e}: Muon takes the weight matrices only; give the embeddings, norms and biases an \
                     optimizer of their own with --other-optimizer (e.g. adamw:lr=1e-3)"
                )
            } else {
                e.into()
            }
        });
    };
    Ok(steps::split_hidden(spec, other, params, is_hidden_matrix)?)
}

/// Runs the command line.
pub fn run_cli(a: &Args, verbose: bool) -> Result<Outcome> {
    let r = a.recipe();
    if r.iters == 0
        || r.batch_size == 0
        || r.block_size == 0
        || r.eval_iters == 0
        || r.eval_every == 0
        || a.grad_accum == 0
    {
        bail!("--iters, --batch-size, --block-size, --eval-iters, --eval-every and --grad-accum must be at least 1");
    }
    if a.stop_after == Some(0) {
        bail!("--stop-after must be at least 1");
    }
    let spec = optim::canonical(&a.optimizer)?;
    let other = a.other_optimizer.as_deref().map(optim::canonical).transpose()?;
    let device = a.common.device()?;
    let corpus = Corpus::new(&read_text(a)?)?;
    if corpus.val.len() <= r.block_size {
        bail!(
            "the validation split ({} characters) is shorter than the context {}",
            corpus.val.len(),
            r.block_size
        );
    }
    if a.sample > 0 {
        // Checked before training: an unknown prompt character would fail only at the end.
        corpus.encode(&a.prompt)?;
    }
    let out = a.common.out_dir("char_lm")?;
    let config = GptConfig {
        vocab_size: corpus.vocab.len(),
        block_size: r.block_size,
        n_layer: r.n_layer,
        n_head: r.n_head,
        n_embd: r.n_embd,
        dropout: r.dropout,
        bias: a.bias,
    };
    let mut b = Builder::new(a.seed, DType::F32, &device);
    let gpt = Gpt::new(&mut b, config, a.seed)?;
    let store = b.into_store();
    let params = store.trainable();
    let mut opt =
        build_optimizer(&spec.to_string(), other.as_ref().map(|o| o.to_string()).as_deref(), &params)?;
    // Each group's own base rate; the schedule scales them all alike.
    let base_lrs: Vec<f64> = (0..opt.num_groups()).filter_map(|g| opt.group_learning_rate(g)).collect();
    let fields = run_fields(&corpus, &r, a);
    let mut evals: Vec<(usize, f64, f64)> = Vec::new();
    let mut start = 0;
    if let Some(path) = &a.resume {
        let ck = checkpoint::read(path)?;
        for (k, want) in &fields {
            let got = ck.progress.extra.get(*k).map(String::as_str).unwrap_or("(none)");
            if got != want {
                bail!(
                    "checkpoint {}: its {k} differs from this run's ({} vs {}): resume with the same text, recipe and seed",
                    path.display(),
                    summarize(got),
                    summarize(want)
                );
            }
        }
        if ck.progress.seed != a.seed {
            bail!(
                "checkpoint {}: saved with --seed {}, this run has {}",
                path.display(),
                ck.progress.seed,
                a.seed
            );
        }
        evals = parse_evals(ck.progress.extra.get("evals").map(String::as_str).unwrap_or(""))
            .with_context(|| format!("checkpoint {}: its evaluations", path.display()))?;
        start = ck.progress.step as usize;
        checkpoint::apply(ck, path, &store, opt.as_mut())?;
    }
    let save = |it: usize, evals: &[(usize, f64, f64)], opt: &dyn Optimizer| -> Result<()> {
        let Some(path) = &a.save else { return Ok(()) };
        let mut extra: std::collections::BTreeMap<String, String> =
            fields.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        extra.insert(
            "evals".into(),
            evals.iter().map(|(i, t, v)| format!("{i}:{t}:{v}")).collect::<Vec<_>>().join(";"),
        );
        let progress = checkpoint::Progress { step: it as u64, seed: a.seed, extra, ..Default::default() };
        Ok(checkpoint::save(path, &store, opt, &progress)?)
    };
    let mut board = a.board.writer("")?;
    if let Some(b) = &mut board {
        let mut hp = spec_hparams("optimizer", &spec);
        if let Some(o) = &other {
            hp.extend(spec_hparams("other_optimizer", o));
        }
        hp.extend([
            ("seed".to_string(), HParam::Number(a.seed as f64)),
            ("iters".to_string(), HParam::Number(r.iters as f64)),
            ("n_layer".to_string(), HParam::Number(r.n_layer as f64)),
            ("n_embd".to_string(), HParam::Number(r.n_embd as f64)),
            ("batch_size".to_string(), HParam::Number(r.batch_size as f64)),
        ]);
        b.add_hparams(&hp)?;
    }
    let end = a.stop_after.map_or(r.iters, |n| (start + n).min(r.iters));
    let bar = train::progress_bar(!a.no_progress, (end - start) as u64);
    bar.set_prefix("char_lm");
    let say = |line: String| {
        if verbose {
            bar.suspend(|| println!("{line}"));
        }
    };
    let mut train_time = 0.0f64;
    let mut trained = 0usize;
    let mut step_seconds: Vec<f64> = Vec::new();
    // The iteration whose state was last written, so the end does not write it a second time.
    let mut saved_at = None;
    for it in start..=end {
        let due = it % r.eval_every == 0 || it == r.iters;
        if due && !evals.iter().any(|e| e.0 == it) {
            gpt.set_training(false);
            let mut rng = SeededRng::new(step_seed(a.seed, it, 2));
            let tl = estimate(&gpt, &corpus.train, &r, &mut rng, &device)?;
            let vl = estimate(&gpt, &corpus.val, &r, &mut rng, &device)?;
            gpt.set_training(true);
            say(format!("step {it}: train loss {tl:.4}, val loss {vl:.4}"));
            if let Some(b) = &mut board {
                let tps =
                    (trained * r.batch_size * a.grad_accum * r.block_size) as f64 / train_time.max(1e-9);
                let mut scalars = vec![("eval/train_loss", tl), ("eval/val_loss", vl)];
                if trained > 0 {
                    scalars.push(("train/tokens_per_second", tps));
                }
                b.add_scalars(it as u64, &scalars)?;
                b.flush()?;
            }
            evals.push((it, tl, vl));
            save(it, &evals, opt.as_ref())?;
            saved_at = Some(it);
        }
        if it == end {
            if saved_at != Some(it) {
                save(it, &evals, opt.as_ref())?;
            }
            break;
        }
        // The point before the step, for the update ratio (only with --logdir; not timed).
        let before = if board.is_some() { Some(StepStats::snapshot(&params)?) } else { None };
        let t0 = Instant::now();
        for (g, &base) in base_lrs.iter().enumerate() {
            // The floor scaled with the base rate (exactly --min-lr for the first group's rate).
            let floor = if base == base_lrs[0] { a.min_lr } else { a.min_lr * base / base_lrs[0] };
            opt.set_group_learning_rate(g, nanogpt_lr(it, base, floor, a.warmup, r.iters))?;
        }
        gpt.reseed_dropout(step_seed(a.seed, it, 3));
        let mut rng = SeededRng::new(step_seed(a.seed, it, 1));
        let (loss, mut grads) = steps::accumulate(a.grad_accum, |_, tape| {
            let (x, y) = batch(&corpus.train, r.batch_size, r.block_size, &mut rng, &device)
                .map_err(|e| train::Error::InvalidArgument(e.to_string()))?;
            Ok(gpt.loss(tape, &x, &y, None)?)
        })?;
        let mut grad_norm = f64::NAN;
        if a.grad_clip > 0.0 {
            grad_norm = clip::clip_grad_norm(&mut grads, &params, a.grad_clip)?;
        }
        if board.is_some() && a.grad_clip <= 0.0 {
            grad_norm = clip::grad_norm(&grads, &params)?;
        }
        opt.step(&grads)?;
        let dt = t0.elapsed().as_secs_f64();
        if let (Some(b), Some(before)) = (&mut board, before) {
            let stats = StepStats { grad_norm, update_ratio: StepStats::update_ratio(&before, &params)? };
            stats.log(b, it as u64 + 1, loss, opt.as_ref())?;
        }
        train_time += dt;
        step_seconds.push(dt);
        trained += 1;
        bar.set_message(format!("loss {loss:.4}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tokens_per_second =
        (trained * r.batch_size * a.grad_accum * r.block_size) as f64 / train_time.max(1e-9);
    step_seconds.sort_by(f64::total_cmp);
    let median_step_seconds = match step_seconds.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => step_seconds[n / 2],
        n => 0.5 * (step_seconds[n / 2 - 1] + step_seconds[n / 2]),
    };
    // The model's FLOPs per step as nanoGPT counts them, over the median step.
    let non_embedding: usize = params
        .iter()
        .filter(|p| !p.name().contains(".wpe."))
        .map(|p| p.dims().iter().product::<usize>())
        .sum();
    let step_flops = crate::perf::gpt_step_flops(
        non_embedding,
        r.n_layer,
        r.n_embd,
        r.block_size,
        r.batch_size * a.grad_accum * r.block_size,
    );
    let gflops = step_flops / median_step_seconds / 1e9;
    if verbose && trained > 0 {
        let peak = crate::perf::measure_peak(&device, 1024, 1.0)?;
        println!(
            "training: {tokens_per_second:.0} tokens/s, median step {:.2} ms: {gflops:.0} GFLOP/s of model FLOPs \
             ({:.2} GFLOP a step), {:.0}% of this machine's peak, {peak}",
            1e3 * median_step_seconds,
            step_flops / 1e9,
            100.0 * gflops / peak.gflops
        );
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
    Ok(Outcome {
        evals,
        tokens_per_second,
        median_step_seconds,
        gflops,
        sample,
        vocab_size: corpus.vocab.len(),
    })
}

/// A long header field cut for an error message.
fn summarize(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(60).collect::<String>())
    } else {
        format!("{s:?}")
    }
}

/// `it:train:val;...` back into evaluations.
fn parse_evals(s: &str) -> Result<Vec<(usize, f64, f64)>> {
    s.split(';')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut f = e.split(':');
            match (f.next(), f.next(), f.next(), f.next()) {
                (Some(i), Some(t), Some(v), None) => Ok((i.parse()?, t.parse()?, v.parse()?)),
                _ => bail!("malformed evaluation {e:?}"),
            }
        })
        .collect()
}

/// The train and validation losses against the iteration.
pub fn figure(path: &Path, evals: &[(usize, f64, f64)]) -> Result<()> {
    let series = [
        Series::new("train", evals.iter().map(|e| (e.0 as f64, e.1)).collect()),
        Series::new("val", evals.iter().map(|e| (e.0 as f64, e.2)).collect()),
    ];
    let spec = ChartSpec {
        title: "character-level GPT",
        x_label: "iteration",
        y_label: "loss",
        log_y: false,
        log_x: false,
    };
    Ok(plot::line_chart(path, &spec, &series)?)
}
