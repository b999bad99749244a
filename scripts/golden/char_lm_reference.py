"""Reference curves for Taper's character-level GPT (``crates/lab/src/experiments/char_lm.rs``): nanoGPT's
``shakespeare_char`` CPU recipe trained in PyTorch on the same corpus and data pipeline.

The data as char_lm reads it: the vocabulary is the text's sorted distinct characters, the first
90 % of the ids train and the rest validate, and a batch is ``batch_size`` windows at offsets
uniform in ``[0, len(split) - block_size)`` with the targets shifted by one (training batches and
evaluation batches from separate generators, seeded ``seed`` and ``seed ^ 0x5eed``). The model is
nanoGPT's GPT (pre-norm blocks, layer norms without bias, no linear biases, exact GELU MLP,
``scaled_dot_product_attention(is_causal=True)``, head tied to ``wte``; init normal 0.02, residual
projections ``0.02/sqrt(2 n_layer)``). The recipe: AdamW (betas 0.9, 0.99, eps 1e-8, weight decay
0.1 on the matrices and 0 on the rest), nanoGPT's ``get_lr`` (linear warm-up, then cosine to
``min_lr`` at ``lr_decay_iters``), clipping at norm 1, and ``estimate_loss`` (mean loss over
``eval_iters`` batches of each split, model in eval mode) every ``eval_every`` iterations and after
the last. As in char_lm, ``iters`` optimizer steps are taken and the last evaluation follows the
last step.

Prints ``step N: train loss X, val loss Y`` lines and writes ``tests/golden/char_lm_pytorch.json``:
the torch version, the recipe, the corpus file's size and sha256, per seed the evaluation curve
``[iter, train, val]``, the final val loss and the wall time, and the final val loss's mean, min
and max over the seeds. Run from the repository root:

    ~/.cache/taper-ref/bin/python scripts/golden/char_lm_reference.py --seeds 1337,1338

(the corpus defaults to ``$TAPER_DATA_DIR/shakespeare/shakespeare.txt``, else
``../shared/data/shakespeare/shakespeare.txt``; generated with torch 2.15.0, CPU, f32, 1 thread,
seeds 1337 and 1338, on the 5,057,321-byte Shakespeare corpus: final val loss 1.8803 and 1.8895,
mean 1.8849, about 200 s a seed.)
"""

import argparse
import hashlib
import json
import math
import os
import time

import torch
from torch import nn
from torch.nn import functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join("shakespeare", "shakespeare.txt")
OUT = os.path.join(ROOT, "tests", "golden", "char_lm_pytorch.json")


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=False)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.resid_dropout = nn.Dropout(c.dropout)
        self.n_head, self.dropout = c.n_head, c.dropout

    def forward(self, x):
        b, t, e = x.shape
        q, k, v = self.c_attn(x).split(e, dim=2)
        q, k, v = (z.view(b, t, self.n_head, e // self.n_head).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, e)))


class Mlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=False)
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, bias=False)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = nn.LayerNorm(c.n_embd, bias=False)
        self.mlp = Mlp(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's model without biases; initialized as nanoGPT does, in its module order."""

    def __init__(self, c, vocab_size):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, c.n_embd), wpe=nn.Embedding(c.block_size, c.n_embd),
            drop=nn.Dropout(c.dropout), h=nn.ModuleList(Block(c) for _ in range(c.n_layer)),
            ln_f=nn.LayerNorm(c.n_embd, bias=False)))
        self.lm_head = nn.Linear(c.n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        tr = self.transformer
        x = tr.drop(tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1])))
        for block in tr.h:
            x = block(x)
        logits = self.lm_head(tr.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def load_corpus(path):
    """The text's vocabulary size and its ids split 90/10 by position."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    stoi = {ch: i for i, ch in enumerate(sorted(set(text)))}
    ids = torch.tensor([stoi[ch] for ch in text], dtype=torch.long)
    split = len(ids) * 9 // 10
    return len(stoi), ids[:split], ids[split:]


def get_batch(data, c, gen):
    ix = torch.randint(len(data) - c.block_size, (c.batch_size,), generator=gen)
    x = torch.stack([data[i:i + c.block_size] for i in ix])
    y = torch.stack([data[i + 1:i + 1 + c.block_size] for i in ix])
    return x, y


def get_lr(it, c):
    """nanoGPT's schedule, as char_lm's ``nanogpt_lr``."""
    if it < c.warmup:
        return c.lr * (it + 1) / (c.warmup + 1)
    if it > c.lr_decay_iters:
        return c.min_lr
    ratio = (it - c.warmup) / max(c.lr_decay_iters - c.warmup, 1)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.lr - c.min_lr)


@torch.no_grad()
def estimate_loss(model, splits, c, gen):
    model.eval()
    means = [sum(model(*get_batch(data, c, gen)).item() for _ in range(c.eval_iters)) / c.eval_iters
             for data in splits]
    model.train()
    return means


def train(seed, vocab_size, splits, c):
    """The evaluation curve ``[(iter, train loss, val loss)]`` of one seed's run."""
    torch.manual_seed(seed)
    model = GPT(c, vocab_size)
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": c.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps)
    gen = torch.Generator().manual_seed(seed)
    eval_gen = torch.Generator().manual_seed(seed ^ 0x5eed)
    evals = []
    for it in range(c.iters + 1):
        if it % c.eval_every == 0 or it == c.iters:
            tl, vl = estimate_loss(model, splits, c, eval_gen)
            print(f"step {it}: train loss {tl:.4f}, val loss {vl:.4f}", flush=True)
            evals.append((it, tl, vl))
        if it == c.iters:
            return evals
        for g in opt.param_groups:
            g["lr"] = get_lr(it, c)
        loss = model(*get_batch(splits[0], c, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, c.grad_clip)
        opt.step()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", help="the text file [default: $TAPER_DATA_DIR/" + CORPUS
                   + ", else ../shared/data/" + CORPUS + " from the repository root]")
    p.add_argument("--out", default=OUT, help="the JSON to write")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--iters", type=int, default=2000, help="optimizer steps")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--lr-decay-iters", type=int, help="end of the cosine [default: --iters]")
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=0.1, help="on the matrices only")
    p.add_argument("--grad-clip", type=float, default=1.0, help="0: no clipping")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=200, help="batches per split per evaluation")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--seeds", help="comma-separated seeds, one run each (overrides --seed)")
    c = p.parse_args()
    if c.lr_decay_iters is None:
        c.lr_decay_iters = c.iters
    if min(c.iters, c.eval_every, c.eval_iters, c.batch_size, c.block_size) < 1:
        p.error("--iters, --eval-every, --eval-iters, --batch-size and --block-size must be >= 1")
    if c.data is None:
        base = os.environ.get("TAPER_DATA_DIR") or os.path.join(ROOT, "..", "shared", "data")
        c.data = os.path.join(base, CORPUS)
    return c


def main():
    c = parse_args()
    torch.set_num_threads(c.threads)
    seeds = [int(s) for s in c.seeds.split(",")] if c.seeds else [c.seed]
    with open(c.data, "rb") as f:
        raw = f.read()
    vocab_size, train_ids, val_ids = load_corpus(c.data)
    if len(val_ids) <= c.block_size:
        raise SystemExit(f"the validation split ({len(val_ids)} characters) is shorter than the "
                         f"context {c.block_size}")
    recipe = {k: getattr(c, k) for k in (
        "n_layer", "n_head", "n_embd", "block_size", "batch_size", "dropout", "iters", "lr",
        "min_lr", "warmup", "lr_decay_iters", "beta1", "beta2", "eps", "weight_decay", "grad_clip",
        "eval_every", "eval_iters", "threads")}
    runs = []
    for seed in seeds:
        print(f"seed {seed}", flush=True)
        t0 = time.perf_counter()
        evals = train(seed, vocab_size, (train_ids, val_ids), c)
        wall = time.perf_counter() - t0
        print(f"seed {seed}: final val loss {evals[-1][2]:.4f} in {wall:.0f} s", flush=True)
        runs.append({"seed": seed, "evals": evals, "final_val_loss": evals[-1][2],
                     "wall_s": round(wall, 1)})
    finals = [r["final_val_loss"] for r in runs]
    out = {"generator": "scripts/golden/char_lm_reference.py", "torch_version": torch.__version__,
           "dtype": "f32", "recipe": recipe,
           "corpus": {"file": os.path.basename(c.data), "bytes": len(raw),
                      "sha256": hashlib.sha256(raw).hexdigest(), "vocab_size": vocab_size,
                      "train_tokens": len(train_ids), "val_tokens": len(val_ids)},
           "runs": runs,
           "final_val_loss": {"mean": sum(finals) / len(finals), "min": min(finals),
                              "max": max(finals)}}
    with open(c.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"final val loss over {len(finals)} seed(s): mean {out['final_val_loss']['mean']:.4f}, "
          f"min {min(finals):.4f}, max {max(finals):.4f}; wrote {c.out}")


if __name__ == "__main__":
    main()
