//! A GPT (decoder-only transformer) as nanoGPT builds it: token and position embeddings,
//! pre-norm blocks of causal self-attention and a GELU MLP, a final layer norm, and a language
//! head tied to the token embedding.

use candle_core::Tensor;
use taper_autograd::{Error, Param, Result, Tape, Var};

use crate::transformer::{Dropout, Embedding, LayerNorm};
use crate::{Builder, Linear, Module};

/// The model's shape (nanoGPT's `GPTConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct GptConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// The longest context (positions embedded).
    pub block_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Width.
    pub n_embd: usize,
    /// Dropout probability (0: none).
    pub dropout: f64,
    /// Biases in the linear layers and layer norms.
    pub bias: bool,
}

impl GptConfig {
    fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidArgument { op: "gpt", msg });
        if self.vocab_size == 0 || self.block_size == 0 || self.n_layer == 0 || self.n_head == 0 {
            return bad(format!("every size must be at least 1: {self:?}"));
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return bad(format!("n_embd {} must be a multiple of n_head {}", self.n_embd, self.n_head));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }
}

/// A linear layer with nanoGPT's initialization: weight `N(0, std²)`, bias 0.
fn linear(b: &mut Builder, fan_in: usize, fan_out: usize, std: f64, bias: bool) -> Result<Linear> {
    let weight = b.normal("weight", &[fan_out, fan_in], 0.0, std)?;
    let bias = if bias { Some(b.zeros("bias", &[fan_out])?) } else { None };
    Ok(Linear::from_params(weight, bias))
}

/// Multi-head causal self-attention: `softmax_causal(q·kᵀ/√d)·v` per head, heads merged and
/// projected.
pub struct CausalSelfAttention {
    c_attn: Linear,
    c_proj: Linear,
    n_head: usize,
    attn_dropout: Dropout,
    resid_dropout: Dropout,
}

impl CausalSelfAttention {
    fn new(b: &mut Builder, c: &GptConfig, seed: u64) -> Result<Self> {
        let proj_std = 0.02 / (2.0 * c.n_layer as f64).sqrt();
        Ok(Self {
            c_attn: linear(&mut b.pp("c_attn"), c.n_embd, 3 * c.n_embd, 0.02, c.bias)?,
            c_proj: linear(&mut b.pp("c_proj"), c.n_embd, c.n_embd, proj_std, c.bias)?,
            n_head: c.n_head,
            attn_dropout: Dropout::new(c.dropout, seed)?,
            resid_dropout: Dropout::new(c.dropout, seed.wrapping_add(1))?,
        })
    }
}

impl Module for CausalSelfAttention {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let &[_, _, c] = x.dims() else {
            return Err(Error::InvalidArgument {
                op: "attention",
                msg: format!("input must be [B, T, C], got {:?}", x.dims()),
            });
        };
        if c % self.n_head != 0 {
            return Err(Error::InvalidArgument {
                op: "attention",
                msg: format!("width {c} is not a multiple of the {} heads", self.n_head),
            });
        }
        let qkv = self.c_attn.forward(tape, x)?;
        let y = qkv.causal_attention(self.n_head, self.attn_dropout.for_attention())?;
        self.resid_dropout.forward(tape, &self.c_proj.forward(tape, &y)?)
    }

    fn set_training(&self, training: bool) {
        self.attn_dropout.set_training(training);
        self.resid_dropout.set_training(training);
    }
}

/// A pre-norm transformer block: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`, the MLP
/// `C → 4C → GELU → C`.
pub struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    c_fc: Linear,
    c_proj: Linear,
    dropout: Dropout,
}

impl Block {
    fn new(b: &mut Builder, c: &GptConfig, seed: u64) -> Result<Self> {
        let proj_std = 0.02 / (2.0 * c.n_layer as f64).sqrt();
        Ok(Self {
            ln_1: LayerNorm::new(&mut b.pp("ln_1"), c.n_embd, c.bias)?,
            attn: CausalSelfAttention::new(&mut b.pp("attn"), c, seed)?,
            ln_2: LayerNorm::new(&mut b.pp("ln_2"), c.n_embd, c.bias)?,
            c_fc: linear(&mut b.pp("mlp").pp("c_fc"), c.n_embd, 4 * c.n_embd, 0.02, c.bias)?,
            c_proj: linear(&mut b.pp("mlp").pp("c_proj"), 4 * c.n_embd, c.n_embd, proj_std, c.bias)?,
            dropout: Dropout::new(c.dropout, seed.wrapping_add(2))?,
        })
    }
}

impl Module for Block {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let x = x.add(&self.attn.forward(tape, &self.ln_1.forward(tape, x)?)?)?;
        let h = self.c_fc.forward(tape, &self.ln_2.forward(tape, &x)?)?.gelu()?;
        x.add(&self.dropout.forward(tape, &self.c_proj.forward(tape, &h)?)?)
    }

    fn set_training(&self, training: bool) {
        self.attn.set_training(training);
        self.dropout.set_training(training);
    }
}

/// The whole model: `idx [B, T]` → logits `[B, T, vocab]`.
pub struct Gpt {
    /// The shape.
    pub config: GptConfig,
    wte: Embedding,
    wpe: Embedding,
    drop: Dropout,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl Gpt {
    /// A model with nanoGPT's initialization (normal 0.02; residual projections
    /// `0.02/√(2·n_layer)`; layer norms 1 and 0), parameters named as nanoGPT's
    /// (`transformer.h.0.attn.c_attn.weight`, ...); dropout masks seeded by `seed`.
    pub fn new(b: &mut Builder, config: GptConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let c = &config;
        let t = b.pp("transformer");
        let wte = Embedding::new(&mut t.pp("wte"), c.vocab_size, c.n_embd, 0.02)?;
        let wpe = Embedding::new(&mut t.pp("wpe"), c.block_size, c.n_embd, 0.02)?;
        let blocks = (0..c.n_layer)
            .map(|i| Block::new(&mut t.pp("h").pp(i), c, seed.wrapping_add(10 * i as u64 + 10)))
            .collect::<Result<_>>()?;
        let ln_f = LayerNorm::new(&mut t.pp("ln_f"), c.n_embd, c.bias)?;
        Ok(Self { drop: Dropout::new(c.dropout, seed)?, wte, wpe, blocks, ln_f, config })
    }

    /// The token embedding, which the language head shares.
    pub fn token_embedding(&self) -> &Param {
        &self.wte.weight
    }

    /// Logits `[B, T, vocab]` for token ids `idx [B, T]` (`T ≤ block_size`).
    pub fn logits(&self, tape: &Tape, idx: &Tensor) -> Result<Var> {
        let &[_, t] = idx.dims() else {
            return Err(Error::InvalidArgument {
                op: "gpt",
                msg: format!("ids must be [B, T], got {:?}", idx.dims()),
            });
        };
        if t > self.config.block_size {
            return Err(Error::InvalidArgument {
                op: "gpt",
                msg: format!("a context of {t} tokens is longer than block_size {}", self.config.block_size),
            });
        }
        let pos = Tensor::arange(0u32, t as u32, idx.device())?;
        let x = self.wte.lookup(tape, idx)?.add(&self.wpe.lookup(tape, &pos)?)?;
        let mut x = self.drop.forward(tape, &x)?;
        for block in &self.blocks {
            x = block.forward(tape, &x)?;
        }
        let x = self.ln_f.forward(tape, &x)?;
        // Weight tying: the head is the token embedding, used a second time on the same tape.
        x.linear(&tape.param(&self.wte.weight), None)
    }

    /// The mean cross-entropy of next-token prediction: logits of `idx` against `targets`
    /// (`[B, T]`; entries equal to `ignore_index` count for nothing).
    pub fn loss(
        &self,
        tape: &Tape,
        idx: &Tensor,
        targets: &Tensor,
        ignore_index: Option<i64>,
    ) -> Result<Var> {
        let logits = self.logits(tape, idx)?;
        let v = self.config.vocab_size;
        let flat = logits.reshape(vec![idx.elem_count(), v])?;
        let targets = targets.flatten_all()?;
        match ignore_index {
            Some(ix) => flat.cross_entropy_ignore(&targets, ix),
            None => flat.cross_entropy(&targets),
        }
    }

    /// Switches dropout between training and evaluation.
    pub fn set_training(&self, training: bool) {
        self.drop.set_training(training);
        for b in &self.blocks {
            b.set_training(training);
        }
    }

    /// Restarts every dropout layer's masks from `seed` (each layer from its own value derived
    /// from it), so that a loop can make a step's masks a function of the step alone.
    pub fn reseed_dropout(&self, seed: u64) {
        let mut k = 0u64;
        let mut next = |d: &Dropout| {
            k += 1;
            d.reseed(seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        };
        next(&self.drop);
        for b in &self.blocks {
            next(&b.attn.attn_dropout);
            next(&b.attn.resid_dropout);
            next(&b.dropout);
        }
    }
}
