"""Golden values of PyTorch's BatchNorm1d / BatchNorm2d, for Taper's batch norm.

Produces ``tests/golden/batch_norm.json``. Run from the repository root:

    ~/.cache/taper-ref/bin/python scripts/golden/batch_norm.py

(generated with torch 2.15.0, CPU, f64.) Shapes: BatchNorm1d on [6, 3] and on [4, 3, 5],
BatchNorm2d on [3, 2, 3, 4]; each with affine on and off and momentum 0.1 and None (the
cumulative moving average, factor 1/num_batches_tracked), eps 1e-5, plus one BatchNorm2d case
with eps 1e-3. A case starts from a fresh module (running_mean 0, running_var 1,
num_batches_tracked 0; when affine, weight and bias drawn from the case's generator) and takes
3 training steps: x_k = 2 + 3*randn, y = bn(x_k), loss = (y * G_k).sum() with G_k = randn of y's
shape, backward; the gradients are zeroed between steps and the weights never updated, so each
step's gradients stand on their own. Then, in eval mode, the same on one more input. Every tensor
is a plain nested list in its own shape; weight/bias and their gradients are null without affine.
"""

import json
import os

import torch
from torch import nn

SEED = 20261203
STEPS = 3
OUT_PATH = os.path.join("tests", "golden", "batch_norm.json")

# (kind, input shape)
SHAPES = [("1d", (6, 3)), ("1d", (4, 3, 5)), ("2d", (3, 2, 3, 4))]


def configs():
    for kind, shape in SHAPES:
        for affine in (True, False):
            for momentum in (0.1, None):
                yield kind, shape, affine, momentum, 1e-5
    yield "2d", (3, 2, 3, 4), True, 0.1, 1e-3


def case_name(kind, shape, affine, momentum, eps):
    dims = "x".join(map(str, shape))
    mom = "cma" if momentum is None else f"momentum{momentum}"
    return f"bn{kind}_{dims}_{'affine' if affine else 'noaffine'}_{mom}_eps{eps:g}"


def grads(bn, x):
    """Input, weight and bias gradients (the latter two None without affine)."""
    return (x.grad.tolist(), None if bn.weight is None else bn.weight.grad.tolist(),
            None if bn.bias is None else bn.bias.grad.tolist())


def forward_backward(bn, gen, shape):
    x = (2.0 + 3.0 * torch.randn(shape, generator=gen)).requires_grad_()
    g = torch.randn(shape, generator=gen)
    bn.zero_grad()
    y = bn(x)
    (y * g).sum().backward()
    x_grad, w_grad, b_grad = grads(bn, x)
    return {"x": x.tolist(), "G": g.tolist(), "y": y.tolist(), "x_grad": x_grad,
            "weight_grad": w_grad, "bias_grad": b_grad}


def run_case(index, kind, shape, affine, momentum, eps):
    gen = torch.Generator().manual_seed(SEED + index)
    module = nn.BatchNorm1d if kind == "1d" else nn.BatchNorm2d
    bn = module(shape[1], eps=eps, momentum=momentum, affine=affine)
    if affine:
        with torch.no_grad():
            bn.weight.copy_(1.0 + 0.5 * torch.randn(shape[1], generator=gen))
            bn.bias.copy_(0.5 * torch.randn(shape[1], generator=gen))
    config = {"kind": kind, "shape": list(shape), "affine": affine, "momentum": momentum, "eps": eps,
              "weight": bn.weight.tolist() if affine else None,
              "bias": bn.bias.tolist() if affine else None}
    bn.train()
    steps = []
    for _ in range(STEPS):
        step = forward_backward(bn, gen, shape)
        step.update(running_mean=bn.running_mean.tolist(), running_var=bn.running_var.tolist(),
                    num_batches_tracked=bn.num_batches_tracked.item())
        steps.append(step)
    bn.eval()
    return {"name": case_name(kind, shape, affine, momentum, eps), "config": config, "steps": steps,
            "eval": forward_backward(bn, gen, shape)}


def main():
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    cases = [run_case(i, *cfg) for i, cfg in enumerate(configs())]
    out = {"generator": "scripts/golden/batch_norm.py", "torch_version": torch.__version__,
           "seed": SEED, "cases": cases}
    with open(OUT_PATH, "w") as f:
        json.dump(out, f)
    print(f"wrote {OUT_PATH} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
