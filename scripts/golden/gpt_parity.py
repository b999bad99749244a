"""Golden values for Taper's GPT against the same model in PyTorch (nanoGPT's architecture).

Produces ``tests/golden/gpt_parity.safetensors`` (the initial weights, f64, under nanoGPT's
parameter names; the head is tied to ``transformer.wte.weight`` and not stored twice) and
``tests/golden/gpt_parity.json`` (a fixed batch, its loss and every parameter's gradient, and the
losses of 20 AdamW steps with nanoGPT's optimizer groups, and the weights after them), all in f64;
and ``tests/golden/gpt_parity_f32.json``, the same in the same layout computed entirely in f32
from the same weights rounded to f32 (cast the safetensors to f32 to load them) on the same batch.
Run from the repository root:

    ~/.cache/taper-ref/bin/python scripts/golden/gpt_parity.py

(generated with torch 2.15.0, CPU, f64 and f32; the model: vocab 13, context 8, 2 layers, 2 heads,
width 16, no dropout, no bias, exact GELU, causal attention written out as masked softmax.)
"""

import copy
import json
import math
import os

import torch
from torch import nn
from safetensors.torch import save_file

V, T, L, H, E = 13, 8, 2, 2, 16
SEED = 20261202
OUT = os.path.join("tests", "golden")


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(E, 3 * E, bias=False)
        self.c_proj = nn.Linear(E, E, bias=False)

    def forward(self, x):
        b, t, e = x.shape
        q, k, v = self.c_attn(x).split(e, dim=2)
        q, k, v = (z.view(b, t, H, e // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(e // H))
        mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(b, t, e))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = nn.Linear(E, 4 * E, bias=False)
        self.c_proj = nn.Linear(4 * E, E, bias=False)

    def forward(self, x):
        return self.c_proj(nn.functional.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(E, bias=False)
        self.attn = Attention()
        self.ln_2 = nn.LayerNorm(E, bias=False)
        self.mlp = Mlp()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, E), wpe=nn.Embedding(T, E),
            h=nn.ModuleList(Block() for _ in range(L)), ln_f=nn.LayerNorm(E, bias=False)))
        for p in self.parameters():  # random weights everywhere (layer norms included)
            nn.init.normal_(p, 0.0, 0.3 if p.dim() < 2 else 0.2)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if "ln" in name:
                    p.add_(1.0)

    def forward(self, idx, targets):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
        for blk in tr.h:
            x = blk(x)
        logits = tr.ln_f(x) @ tr.wte.weight.T
        return nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def trajectory(model, idx, targets):
    """The loss and every gradient at the model's weights, then 20 AdamW steps with nanoGPT's
    groups: their losses and the final weights."""
    loss = model(idx, targets)
    loss.backward()
    grads = {n: p.grad.reshape(-1).tolist() for n, p in model.named_parameters()}
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.99), foreach=False)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        l = model(idx, targets)
        losses.append(l.item())
        l.backward()
        opt.step()
    final = {n: p.detach().reshape(-1).tolist() for n, p in model.named_parameters()}
    return loss.item(), grads, losses, final


def main():
    torch.manual_seed(SEED)
    torch.set_default_dtype(torch.float64)
    model = Gpt()
    weights = {n: p.detach().clone().contiguous() for n, p in model.named_parameters()}
    save_file(weights, os.path.join(OUT, "gpt_parity.safetensors"))
    idx = torch.randint(V, (3, T))
    targets = torch.randint(V, (3, T))
    model_f32 = copy.deepcopy(model).float()  # the saved weights, rounded to f32
    for name, m in (("gpt_parity.json", model), ("gpt_parity_f32.json", model_f32)):
        torch.set_default_dtype(m.transformer.wte.weight.dtype)  # AdamW's scalar state too
        loss, grads, losses, final = trajectory(m, idx, targets)
        out = {"generator": "scripts/golden/gpt_parity.py", "torch_version": torch.__version__,
               "config": dict(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=E),
               "idx": idx.tolist(), "targets": targets.tolist(), "loss": loss, "grads": grads,
               "adamw": "adamw:lr=0.01,beta1=0.9,beta2=0.99,weight_decay=0.1", "losses": losses,
               "final": final}
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(out, f)
        print(f"{name}: loss {loss} -> {losses[-1]}")
    print("wrote", len(weights), "weights")


if __name__ == "__main__":
    main()
