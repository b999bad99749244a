"""Golden weight averages from torch.optim.swa_utils.AveragedModel, for Taper's tests.

Produces ``tests/golden/averaged_model.json``. Run from the repository root:

    ~/.cache/taper-ref/bin/python scripts/golden/averaged_model.py

(generated with torch 2.15.0, CPU.) The problem is that of ``tests/golden/optim_trajectories.json``
(read from it): the tiny tanh net trained by ``torch.optim.SGD(lr=0.1, momentum=0.9)`` for 30
steps, f64. After every step the averaged model is updated with ``update_parameters``; each run
records the averaged parameters after every update. Averagings: the default (equal weights,
SWA: ``a + (p - a)/(n + 1)``, the first update a copy), and EMA through
``multi_avg_fn=get_ema_multi_avg_fn(decay)`` (``lerp(a, p, 1 - decay)``).
"""

import json
import os

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

PROBLEM_FROM = os.path.join("tests", "golden", "optim_trajectories.json")
OUT_PATH = os.path.join("tests", "golden", "averaged_model.json")
NAMES = ("w1", "b1", "w2")
STEPS = 30

# (name, Taper spec, AveragedModel kwargs)
RUNS = [
    ("swa", "swa", dict()),
    ("ema", "ema:decay=0.9", dict(multi_avg_fn=get_ema_multi_avg_fn(0.9))),
    ("ema_default", "ema", dict(multi_avg_fn=get_ema_multi_avg_fn())),
]


class Net(torch.nn.Module):
    def __init__(self, prob):
        super().__init__()
        for n in NAMES:
            t = torch.tensor(np.asarray(prob[n], dtype=np.float64).reshape(prob["shapes"][n]))
            setattr(self, n, torch.nn.Parameter(t))

    def forward(self, X):
        return torch.tanh(X @ self.w1 + self.b1) @ self.w2


def main():
    torch.set_num_threads(1)
    with open(PROBLEM_FROM) as f:
        prob = json.load(f)["problem"]
    X = torch.tensor(np.asarray(prob["X"], dtype=np.float64))
    y = torch.tensor(np.asarray(prob["y"], dtype=np.float64))
    runs = []
    for name, spec, kw in RUNS:
        net = Net(prob)
        avg = AveragedModel(net, **kw)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, foreach=False)
        snaps = []
        for _ in range(STEPS):
            loss = ((net(X) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            avg.update_parameters(net)
            snaps.append({n: getattr(avg.module, n).detach().reshape(-1).tolist() for n in NAMES})
        runs.append({"name": name, "spec": spec, "optimizer": "sgd:lr=0.1,momentum=0.9", "averaged": snaps})
    out = {"generator": "scripts/golden/averaged_model.py", "torch_version": torch.__version__,
           "steps": STEPS, "runs": runs}
    with open(OUT_PATH, "w") as f:
        json.dump(out, f)
    print(f"wrote {OUT_PATH} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
