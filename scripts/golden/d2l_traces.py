"""Golden 2-D optimizer traces from Dive-into-DL-PyTorch, chapter 7, for Taper's tests.

Produces ``tests/golden/d2l_traces.json``.

Run from the repository root:

    /work/venvs/torch/bin/python scripts/golden/d2l_traces.py

Pure Python (float64); no torch needed (any python3 works). The venv above was
built with torch 2.15.0 for the sibling script ``optim_trajectories.py``.

Each trace follows d2l's ``train_2d``: start at x1, x2, s1, s2 = -5, -2, 0, 0,
apply the 2-D trainer 20 times and format ``'epoch %d, x1 %f, x2 %f'``. The book
prints only the final line; here all 20 lines are recorded, together with the full
x1/x2 trajectories (start point plus 20 iterates) as floats.

The update rules keep d2l's exact arithmetic order (e.g. ``x1 - eta * 0.2 * x1``,
``s1 += g1 ** 2``, ``x1 -= eta / math.sqrt(s1 + eps) * g1``) so the trajectories
are bit-identical to running the book's code.

The 7.2 "sgd_2d" trace (with np.random noise) is not reproducible and is omitted;
sections 7.7 (AdaDelta) and 7.8 (Adam) have no 2-D traces.

Each trace carries ``spec``: the Taper optimizer spec expressing the same update.
- gd:       ``sgd:lr=ETA``
- momentum: ``sgd:lr=ETA,momentum=GAMMA``. d2l uses v = gamma*v + eta*g; x -= v.
  torch SGD uses b = m*b + g; x -= lr*b, so v = lr*b; identical for constant lr.
- adagrad:  ``adagrad:lr=ETA,eps=1e-6,eps_in_sqrt=true`` (d2l: eta/sqrt(s+eps)*g;
  torch: eta*g/(sqrt(s)+eps)).
- rmsprop:  ``rmsprop:lr=ETA,alpha=GAMMA,eps=1e-6,eps_in_sqrt=true``.

The script asserts that the final line of every trace equals the line printed in
the book and exits non-zero otherwise. Output is deterministic.
"""

import json
import math
import os
import sys

OUT_PATH = os.path.join("tests", "golden", "d2l_traces.json")
GENERATOR = "scripts/golden/d2l_traces.py"
EPS = 1e-6


# --- 2-D trainers, same arithmetic as d2l chapter 7 -------------------------

def gd_x1sq(eta):
    # 7.2: f = x1^2 + 2 x2^2, gradient (2 x1, 4 x2)
    def step(x1, x2, s1, s2):
        return (x1 - eta * 2 * x1, x2 - eta * 4 * x2, 0, 0)
    return step


def gd_01x1sq(eta):
    # 7.4: f = 0.1 x1^2 + 2 x2^2, gradient (0.2 x1, 4 x2)
    def step(x1, x2, s1, s2):
        return (x1 - eta * 0.2 * x1, x2 - eta * 4 * x2, 0, 0)
    return step


def momentum_01x1sq(eta, gamma):
    # 7.4: v = gamma v + eta g; x -= v
    def step(x1, x2, v1, v2):
        v1 = gamma * v1 + eta * 0.2 * x1
        v2 = gamma * v2 + eta * 4 * x2
        return x1 - v1, x2 - v2, v1, v2
    return step


def adagrad_01x1sq(eta):
    # 7.5: s += g^2; x -= eta / sqrt(s + eps) * g
    def step(x1, x2, s1, s2):
        g1, g2, eps = 0.2 * x1, 4 * x2, EPS
        s1 += g1 ** 2
        s2 += g2 ** 2
        x1 -= eta / math.sqrt(s1 + eps) * g1
        x2 -= eta / math.sqrt(s2 + eps) * g2
        return x1, x2, s1, s2
    return step


def rmsprop_01x1sq(eta, gamma):
    # 7.6: s = gamma s + (1 - gamma) g^2; x -= eta / sqrt(s + eps) * g
    def step(x1, x2, s1, s2):
        g1, g2, eps = 0.2 * x1, 4 * x2, EPS
        s1 = gamma * s1 + (1 - gamma) * g1 ** 2
        s2 = gamma * s2 + (1 - gamma) * g2 ** 2
        x1 -= eta / math.sqrt(s1 + eps) * g1
        x2 -= eta / math.sqrt(s2 + eps) * g2
        return x1, x2, s1, s2
    return step


def train_2d(trainer):
    """d2l's train_2d, but recording every printed line."""
    x1, x2, s1, s2 = -5, -2, 0, 0
    xs1, xs2, lines = [float(x1)], [float(x2)], []
    for i in range(20):
        x1, x2, s1, s2 = trainer(x1, x2, s1, s2)
        xs1.append(float(x1))
        xs2.append(float(x2))
        lines.append('epoch %d, x1 %f, x2 %f' % (i + 1, x1, x2))
    return xs1, xs2, lines


F_A = "x1^2+2x2^2"
F_B = "0.1x1^2+2x2^2"

# (id, section, function, method, hyperparameters, trainer, spec, book_last_line)
TRACES = [
    ("gd_eta0.1", "7.2", F_A, "gd", {"eta": 0.1}, gd_x1sq(0.1),
     "sgd:lr=0.1", "epoch 20, x1 -0.057646, x2 -0.000073"),
    ("gd_eta0.4", "7.4", F_B, "gd", {"eta": 0.4}, gd_01x1sq(0.4),
     "sgd:lr=0.4", "epoch 20, x1 -0.943467, x2 -0.000073"),
    ("gd_eta0.6", "7.4", F_B, "gd", {"eta": 0.6}, gd_01x1sq(0.6),
     "sgd:lr=0.6", "epoch 20, x1 -0.387814, x2 -1673.365109"),
    ("momentum_eta0.4_gamma0.5", "7.4", F_B, "momentum", {"eta": 0.4, "gamma": 0.5},
     momentum_01x1sq(0.4, 0.5), "sgd:lr=0.4,momentum=0.5",
     "epoch 20, x1 -0.062843, x2 0.001202"),
    ("momentum_eta0.6_gamma0.5", "7.4", F_B, "momentum", {"eta": 0.6, "gamma": 0.5},
     momentum_01x1sq(0.6, 0.5), "sgd:lr=0.6,momentum=0.5",
     "epoch 20, x1 0.007188, x2 0.002553"),
    ("adagrad_eta0.4", "7.5", F_B, "adagrad", {"eta": 0.4, "eps": EPS},
     adagrad_01x1sq(0.4), "adagrad:lr=0.4,eps=1e-6,eps_in_sqrt=true",
     "epoch 20, x1 -2.382563, x2 -0.158591"),
    ("adagrad_eta2", "7.5", F_B, "adagrad", {"eta": 2.0, "eps": EPS},
     adagrad_01x1sq(2), "adagrad:lr=2,eps=1e-6,eps_in_sqrt=true",
     "epoch 20, x1 -0.002295, x2 -0.000000"),
    ("rmsprop_eta0.4_gamma0.9", "7.6", F_B, "rmsprop",
     {"eta": 0.4, "gamma": 0.9, "eps": EPS}, rmsprop_01x1sq(0.4, 0.9),
     "rmsprop:lr=0.4,alpha=0.9,eps=1e-6,eps_in_sqrt=true",
     "epoch 20, x1 -0.010599, x2 0.000000"),
]


def main():
    out_traces = []
    failures = []
    for tid, section, fn, method, hyper, trainer, spec, book in TRACES:
        xs1, xs2, lines = train_2d(trainer)
        if lines[-1] != book:
            failures.append(f"{tid}: got {lines[-1]!r}, book {book!r}")
        out_traces.append({
            "id": tid,
            "section": section,
            "function": fn,
            "method": method,
            "hyperparameters": hyper,
            "spec": spec,
            "start": [-5.0, -2.0],
            "iterations": 20,
            "lines": lines,
            "x1": xs1,
            "x2": xs2,
            "book_last_line": book,
        })
        print(f"{tid:28s} {lines[-1]}")

    if failures:
        for f in failures:
            print("MISMATCH " + f, file=sys.stderr)
        sys.exit(1)

    out = {
        "generator": GENERATOR,
        "source": "Dive-into-DL-PyTorch chapter 7 (d2lzh_pytorch.train_2d)",
        "traces": out_traces,
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w") as f:
        f.write("{\n")
        keys = list(out.keys())
        for i, k in enumerate(keys):
            sep = "," if i + 1 < len(keys) else ""
            if k == "traces":
                f.write(' "traces": [\n')
                for j, t in enumerate(out_traces):
                    tsep = "," if j + 1 < len(out_traces) else ""
                    f.write("  " + json.dumps(t, separators=(",", ":")) + tsep + "\n")
                f.write(" ]" + sep + "\n")
            else:
                f.write(" " + json.dumps(k) + ": " + json.dumps(out[k]) + sep + "\n")
        f.write("}\n")
    print(f"wrote {OUT_PATH} ({len(out_traces)} traces, {os.path.getsize(OUT_PATH)} bytes)")


if __name__ == "__main__":
    main()
