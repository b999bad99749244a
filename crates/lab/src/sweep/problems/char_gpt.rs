//! The character-level GPT of `char_lm` (4 layers, 4 heads, width 128, context 64, batch 12, no
//! dropout, no biases, nanoGPT's initialization from the seed) on the Shakespeare corpus of the
//! data directory (`shakespeare/shakespeare.txt`), for 300 iterations of nanoGPT's recipe scaled
//! to that length: the optimizer spec's learning rate warmed up over 15 iterations then decayed
//! by a cosine to a tenth of it, clipping at norm 1, weight decay on matrices only. The metric is
//! the validation loss (10 batches, drawn from the seed and the iteration), every 50 iterations,
//! read at the optimizer's evaluation point (Schedule-Free's average). An optimizer that updates
//! matrices only (Muon) takes the blocks' weight matrices and nanoGPT's AdamW ([`OTHER`]) the
//! rest, as the Muon recipe prescribes; each group's rate follows the schedule from its own.
//! Held out for `taper bench`: 2 layers instead of 4, or width 96 instead of 128.

use anyhow::{Context as _, Result};

use crate::experiments::char_lm::{
    batch, estimate, is_hidden_matrix, nanogpt_lr, step_seed, Corpus, Preset, Recipe, CORPUS,
};
use crate::nn::{Builder, Gpt, GptConfig};
use crate::optim::clip;
use crate::sweep::problem::{Context, Curve, Goal, Metric, Problem, Recorder, Setup};
use crate::train::{self, steps};
use crate::{DType, Device, SeededRng};

/// Iterations.
const ITERS: usize = 300;
/// Warm-up iterations.
const WARMUP: usize = 15;
/// Evaluate every this many iterations.
const EVAL_EVERY: usize = 50;
/// Batches per evaluation.
const EVAL_ITERS: usize = 10;
/// The held-out variants: (layers, width).
const VARIANTS: [(usize, usize); 2] = [(2, 128), (4, 96)];
/// The optimizer of the embeddings, head and norms when the spec's updates matrices only
/// (nanoGPT's AdamW).
pub const OTHER: &str = "adamw:lr=0.001,beta1=0.9,beta2=0.99,weight_decay=0.1";

struct CharGpt {
    corpus: Corpus,
    recipe: Recipe,
    device: Device,
}

/// The problem with the corpus read and encoded.
pub fn new(ctx: &Context) -> Result<Box<dyn Problem>> {
    let path = ctx.data_dir.join(CORPUS);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("reading {} (point --data-dir or TAPER_DATA_DIR at the data directory)", path.display())
    })?;
    let recipe =
        Recipe { iters: ITERS, eval_every: EVAL_EVERY, eval_iters: EVAL_ITERS, ..Preset::Cpu.recipe() };
    Ok(Box::new(CharGpt { corpus: Corpus::new(&text)?, recipe, device: ctx.device.clone() }))
}

impl Problem for CharGpt {
    fn name(&self) -> &str {
        "char_gpt"
    }
    fn describe(&self) -> String {
        let r = &self.recipe;
        format!(
            "GPT {}x{}x{} on Shakespeare ({} characters), context {}, batch {}, {ITERS} iterations, val loss",
            r.n_layer,
            r.n_head,
            r.n_embd,
            self.corpus.train.len() + self.corpus.val.len(),
            r.block_size,
            r.batch_size
        )
    }
    fn metric(&self) -> Metric {
        Metric { name: "val_loss".into(), goal: Goal::Minimize, target: 2.5 }
    }
    fn budget(&self) -> String {
        format!("{ITERS} iterations of batch 12 x 64")
    }
    fn run(&self, spec: &str, seed: u64) -> Result<Curve> {
        self.run_setup(spec, seed, &Setup::default())
    }
    fn steps(&self, _variant: usize) -> Option<u64> {
        Some(ITERS as u64)
    }
    fn variants(&self) -> Vec<String> {
        VARIANTS.iter().map(|(l, w)| format!("{l} layers, width {w}")).collect()
    }
    fn run_setup(&self, spec: &str, seed: u64, setup: &Setup) -> Result<Curve> {
        setup.check_variant("char_gpt", VARIANTS.len())?;
        let r = &self.recipe;
        let (n_layer, n_embd) =
            if setup.variant == 0 { (r.n_layer, r.n_embd) } else { VARIANTS[setup.variant - 1] };
        let iters = setup.steps_or(ITERS as u64) as usize;
        let config = GptConfig {
            vocab_size: self.corpus.vocab.len(),
            block_size: r.block_size,
            n_layer,
            n_head: r.n_head,
            n_embd,
            dropout: r.dropout,
            bias: false,
        };
        let mut b = Builder::new(seed, DType::F32, &self.device);
        let gpt = Gpt::new(&mut b, config, seed)?;
        let store = b.into_store();
        let params = store.trainable();
        let mut opt = steps::model_optimizer(spec, OTHER, &params, is_hidden_matrix)?;
        let base_lrs: Vec<f64> =
            (0..opt.num_groups()).map(|g| opt.group_learning_rate(g).unwrap_or(f64::NAN)).collect();
        let mut rec = Recorder::new();
        for it in 0..=iters {
            if it % EVAL_EVERY == 0 || it == iters {
                let val = rec.evaluate(|| -> Result<f64> {
                    gpt.set_training(false);
                    opt.set_train_mode(false)?;
                    let mut rng = SeededRng::new(step_seed(seed, it, 2));
                    let v = estimate(&gpt, &self.corpus.val, r, &mut rng, &self.device)?;
                    opt.set_train_mode(true)?;
                    gpt.set_training(true);
                    Ok(v)
                })?;
                rec.point(it as u64, val);
                if setup.stops(Goal::Minimize, val) {
                    break;
                }
            }
            if it == iters {
                break;
            }
            for (g, &base) in base_lrs.iter().enumerate() {
                opt.set_group_learning_rate(g, nanogpt_lr(it, base, base / 10.0, WARMUP, iters))?;
            }
            let mut rng = SeededRng::new(step_seed(seed, it, 1));
            let (_, mut grads) = steps::accumulate(1, |_, tape| {
                let (x, y) = batch(&self.corpus.train, r.batch_size, r.block_size, &mut rng, &self.device)
                    .map_err(|e| train::Error::InvalidArgument(e.to_string()))?;
                Ok(gpt.loss(tape, &x, &y, None)?)
            })?;
            clip::clip_grad_norm(&mut grads, &params, 1.0)?;
            match opt.step(&grads) {
                Ok(_) => {}
                Err(crate::optim::Error::NonFiniteGradient { .. }) => {
                    rec.point(it as u64 + 1, f64::NAN);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(rec.finish())
    }
}
