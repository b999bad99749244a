#!/usr/bin/env python3
"""Compare Taper's criterion benchmarks against the same workloads in PyTorch (CPU).

Prints one markdown table (workload | Taper | PyTorch | ratio | ratio per round | PyTorch
variant, where ratio = PyTorch time / Taper time, so > 1 means Taper is faster) plus a small
table of peak resident memory (VmHWM) for the training-step workloads.

The two sides run in alternating rounds (cargo bench, then PyTorch; --rounds, default 3): this
machine is shared, and its memory bandwidth in particular swings by up to 2x from one process to
the next. Each time shown is the median over rounds, its ratio is the ratio of those medians, and
"ratio per round" lists every round's own ratio so that the spread is visible.

Set up once (outside the repo; any PyTorch 2.x CPU build):

    python3 -m venv /tmp/torch && /tmp/torch/bin/pip install torch numpy

Rerun (from the repo root):

    /tmp/torch/bin/python benches/compare_pytorch.py                 # cargo bench + torch
    /tmp/torch/bin/python benches/compare_pytorch.py --skip-cargo    # reuse target/criterion
    /tmp/torch/bin/python benches/compare_pytorch.py --torch-only --json /tmp/t.json
    /tmp/torch/bin/python benches/compare_pytorch.py --gpt-only     # the char_lm rows alone

Options: --threads N (torch.set_num_threads and RAYON_NUM_THREADS, default 2), --rounds N,
--json PATH (dump every number, every round too). Taper's training-step and airfoil numbers
come from target/criterion/<group>/<function>/new/estimates.json (median point estimate, ns),
peak memory from target/criterion-memory/<group>.txt (MiB); missing results print "—". With
--skip-cargo every round reads the same criterion results. The optimizer rows are finer still:
memory-bound steps swing with the machine's bandwidth within seconds, so Taper's steps
(examples/optim_step --serve, the workload of benches/optim_step.rs) alternate with PyTorch's in
bursts of five steps within one window per optimizer. The char_lm rows run examples/char_lm
(its own `training: N tokens/s`, its VmHWM read from /proc while it runs) beside the same
nanoGPT step in PyTorch.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
DASH = "—"

MLP_GROUP = "mlp_784_256_10_batch64_step"
CONV_GROUP = "convnet_batch64_step"
AIRFOIL_GROUP = "airfoil_epoch"
BATCH = 64

# (criterion function id, Taper spec as in benches/optim_step.rs, torch class, kwargs)
OPTIMIZERS = [
    ("sgd_momentum", "sgd:lr=0.01,momentum=0.9", torch.optim.SGD, dict(lr=0.01, momentum=0.9)),
    ("adagrad", "adagrad:lr=0.01", torch.optim.Adagrad, dict(lr=0.01)),
    ("rmsprop", "rmsprop:lr=0.01", torch.optim.RMSprop, dict(lr=0.01)),
    ("adadelta", "adadelta:lr=1.0", torch.optim.Adadelta, dict(lr=1.0)),
    ("adam", "adam:lr=0.001", torch.optim.Adam, dict(lr=1e-3)),
    ("adamw", "adamw:lr=0.001,weight_decay=0.01", torch.optim.AdamW,
     dict(lr=1e-3, weight_decay=0.01)),
    ("radam", "radam:lr=0.001", torch.optim.RAdam, dict(lr=1e-3)),
    ("rprop", "rprop:lr=0.01", torch.optim.Rprop, dict(lr=0.01)),
    ("adamax", "adamax:lr=0.002", torch.optim.Adamax, dict(lr=2e-3)),
    ("nadam", "nadam:lr=0.002", torch.optim.NAdam, dict(lr=2e-3)),
    ("asgd", "asgd:lr=0.01", torch.optim.ASGD, dict(lr=0.01)),
]
OPT_NUMEL = 10_000_000
OPT_SECONDS = 6.0  # interleaved timing per optimizer and round
THREADS = 2  # set from --threads


# ----------------------------------------------------------------------------- helpers
def median_time(fn, warmup, reps):
    """Median wall time of fn() in ns."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e9


def fmt_ns(ns):
    if ns is None:
        return DASH
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_imgs(ns):
    return "" if ns is None else f" ({BATCH / (ns * 1e-9):,.0f} img/s)"


def cpu_model():
    name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name or "unknown CPU"


def vm_hwm_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0  # kB -> MiB
    return None


# ----------------------------------------------------------------------------- Taper side
def run_cargo(threads):
    # The optimizer rows come from examples/optim_step, interleaved with PyTorch (see
    # bench_optimizers); `cargo bench --bench optim_step` measures the same steps alone.
    benches = ["mlp_step"] + [
        b for b in ("convnet_step", "airfoil_epoch") if (REPO / "benches" / f"{b}.rs").exists()
    ]
    cmd = ["cargo", "bench"]
    for b in benches:
        cmd += ["--bench", b]
    cmd += ["--", "--warm-up-time", "1", "--measurement-time", "5"]
    build = ["cargo", "build", "--release", "--example", "optim_step"]
    print("running:", " ".join(build), file=sys.stderr)
    if subprocess.run(build, cwd=REPO).returncode != 0:
        print("warning: could not build examples/optim_step", file=sys.stderr)
    print("running:", " ".join(cmd), file=sys.stderr)
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    rc = subprocess.run(cmd, cwd=REPO, env=env).returncode
    if rc != 0:
        print(f"warning: cargo bench exited with {rc}; using whatever results exist",
              file=sys.stderr)


def taper_ns(group, function):
    path = TARGET / "criterion" / group / function / "new" / "estimates.json"
    try:
        return float(json.loads(path.read_text())["median"]["point_estimate"])
    except (OSError, KeyError, ValueError):
        return None


def taper_mem(group):
    try:
        return float((TARGET / "criterion-memory" / f"{group}.txt").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# ----------------------------------------------------------------------------- workloads
def taper_server(spec, unchecked, threads):
    """examples/optim_step in --serve mode (one f32 parameter of OPT_NUMEL), or None."""
    exe = TARGET / "release" / "examples" / "optim_step"
    if not exe.exists():
        return None
    cmd = [str(exe), "--optimizer", spec, "--numel", str(OPT_NUMEL), "--serve"]
    if unchecked:
        cmd.append("--unchecked")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, RAYON_NUM_THREADS=str(threads)))
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        return None
    return proc


def server_steps(proc, n):
    proc.stdin.write(f"{n}\n")
    proc.stdin.flush()
    return [int(x) for x in proc.stdout.readline().split()]


def bench_optimizers():
    """[(function id, variant, taper_ns, taper_unchecked_ns, torch_ns)] per optimizer and
    PyTorch variant (default, and fused=True where supported).

    Memory-bound steps on a shared machine: the sides alternate in bursts of a few steps for
    OPT_SECONDS (Taper's in examples/optim_step --serve processes, checked and unchecked), so a
    slow spell lands on all of them; each figure is the median of its own steps."""
    out = []
    torch.manual_seed(0)
    grad = torch.randn(OPT_NUMEL)
    for name, spec, cls, kw in OPTIMIZERS:
        torch_opts = {}
        for variant, extra in (("default (foreach=None)", {}), ("fused=True", {"fused": True})):
            p = nn.Parameter(torch.randn(OPT_NUMEL))
            p.grad = grad.clone()
            try:
                opt = cls([p], **kw, **extra)
                opt.step()  # fused may only fail at step time
            except (RuntimeError, TypeError, ValueError):
                continue
            torch_opts[f"{cls.__name__} {variant}"] = opt
        servers = {u: taper_server(spec, u, THREADS) for u in (False, True)}
        times = {k: [] for k in list(torch_opts) + [False, True]}
        t_end = time.perf_counter() + OPT_SECONDS
        while time.perf_counter() < t_end or min(len(v) for v in times.values()) < 5:
            for variant, opt in torch_opts.items():
                burst = 2 if "default" in variant else 5  # the unfused steps are ~10x slower
                opt.step()
                for _ in range(burst):
                    t0 = time.perf_counter_ns()
                    opt.step()
                    times[variant].append(time.perf_counter_ns() - t0)
            for u, proc in servers.items():
                if proc is None:
                    times[u].append(None)
                    continue
                times[u] += server_steps(proc, 6)[1:]  # the first of a burst is discarded
        for proc in servers.values():
            if proc is not None:
                proc.stdin.close()
                proc.wait()
        med = lambda v: statistics.median(v) if v and None not in v else None
        for variant in torch_opts:
            out.append((name, variant, med(times[False]), med(times[True]),
                        statistics.median(times[variant])))
        del torch_opts
    return out


def make_mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def make_convnet():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def train_step_fn(kind):
    """Build model/data/optimizer for 'mlp' or 'convnet'; return a closure doing one step."""
    torch.manual_seed(0)
    if kind == "mlp":
        net, x = make_mlp(), torch.rand(BATCH, 784)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
    else:
        net, x = make_convnet(), torch.rand(BATCH, 1, 28, 28)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    y = torch.tensor([(i * 7) % 10 for i in range(BATCH)])
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()

    return step


def bench_train_step(kind):
    return median_time(train_step_fn(kind), 5, 30)


def peak_rss_subprocess(kind, threads):
    """Run the training step alone in a fresh child process; return its VmHWM in MiB."""
    cmd = [sys.executable, str(Path(__file__).resolve()),
           "--threads", str(threads), "--_peak", kind]
    res = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return float(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"warning: peak-memory child for {kind} failed:\n{res.stderr}", file=sys.stderr)
        return None


MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}


def timed_child(kind, threads):
    """The training step timed in a fresh child process that has glibc's malloc set up as
    taper::tensor::init_cpu sets it up for Taper (trim threshold 1 GiB, mmap threshold 32 MiB)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(threads), "--_time", kind]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **MALLOC_ENV))
    try:
        return float(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"warning: timing child for {kind} failed:\n{res.stderr}", file=sys.stderr)
        return None


def airfoil_data():
    torch.manual_seed(0)
    return torch.randn(1500, 5), torch.randn(1500)


def airfoil_concise(X, y, batch=10, lr=0.05):
    """d2l train_concise_ch11 style: nn.Linear + MSELoss()/2 + torch.optim.SGD, one epoch."""
    net = nn.Sequential(nn.Linear(5, 1))
    nn.init.normal_(net[0].weight, std=0.01)
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.MSELoss()

    def epoch():
        idx = torch.randperm(len(X))
        for i in range(0, len(X), batch):
            j = idx[i:i + batch]
            xb, yb = X[j], y[j]
            opt.zero_grad()
            out = net(xb)
            l = loss(out, yb.reshape(out.shape)) / 2
            l.backward()
            opt.step()

    return epoch


def airfoil_train_ch7(X, y, batch=10, lr=0.05):
    """The documents' d2l `train_ch7` as d2lzh_pytorch writes it: linreg + squared_loss, manual
    sgd, a shuffled `DataLoader` over a `TensorDataset`, the loss over all rows every 100
    examples."""
    w = torch.nn.Parameter(torch.normal(0.0, 0.01, size=(X.shape[1], 1)), requires_grad=True)
    b = torch.nn.Parameter(torch.zeros(1), requires_grad=True)
    net = lambda Xb: torch.mm(Xb, w) + b  # d2l.linreg
    sq = lambda yh, yt: (yh - yt.view(yh.size())) ** 2 / 2  # d2l.squared_loss
    data_iter = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch, shuffle=True)

    def epoch():
        for batch_i, (Xb, yb) in enumerate(data_iter):
            l = sq(net(Xb), yb).mean()
            if w.grad is not None:
                w.grad.data.zero_()
                b.grad.data.zero_()
            l.backward()
            for p in (w, b):  # d2l.sgd
                p.data -= lr * p.grad.data
            if (batch_i + 1) * batch % 100 == 0:
                sq(net(X), y).mean().item()

    return epoch


def airfoil_scratch(X, y, batch=10, lr=0.05):
    """train_ch7 without its DataLoader (batches by index, a stricter baseline): raw w/b, manual
    sgd, full-data loss every 100 examples."""
    w = torch.normal(0.0, 0.01, size=(5, 1), requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    net = lambda Xb: Xb @ w + b  # d2l.linreg
    sq = lambda yh, yt: (yh - yt.reshape(yh.shape)) ** 2 / 2  # d2l.squared_loss

    def sgd(params):
        for p in params:
            p.data.sub_(lr * p.grad)
            p.grad.data.zero_()

    def epoch():
        idx = torch.randperm(len(X))
        n = 0
        for i in range(0, len(X), batch):
            j = idx[i:i + batch]
            l = sq(net(X[j]), y[j]).mean()
            l.backward()
            sgd([w, b])
            n += len(j)
            if n % 100 == 0:  # d2l.evaluate_loss on the full data set
                with torch.no_grad():
                    float(sq(net(X), y).mean())

    return epoch


def bench_airfoil():
    X, y = airfoil_data()
    return (median_time(airfoil_concise(X, y), 1, 5), median_time(airfoil_train_ch7(X, y), 1, 5),
            median_time(airfoil_scratch(X, y), 1, 5))


# ----------------------------------------------------------------------------- report
# ----------------------------------------------------------------------------- small GPT
GPT = dict(n_layer=4, n_head=4, n_embd=128, block=64, batch=12, vocab=84, dropout=0.0)  # char_lm's defaults
# char_lm --preset nanogpt: nanoGPT's config/train_shakespeare_char.py.
GPT_NANO = dict(n_layer=6, n_head=6, n_embd=384, block=256, batch=64, vocab=84, dropout=0.2)


def make_gpt(c):
    """nanoGPT's model (no bias, tied head, dropout `c["dropout"]` on the embeddings, the
    attention probabilities and the residual branches), of the size `c`."""
    p = c["dropout"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            e = c["n_embd"]
            self.ln_1, self.ln_2 = nn.LayerNorm(e, bias=False), nn.LayerNorm(e, bias=False)
            self.c_attn, self.c_proj = nn.Linear(e, 3 * e, bias=False), nn.Linear(e, e, bias=False)
            self.fc, self.proj = nn.Linear(e, 4 * e, bias=False), nn.Linear(4 * e, e, bias=False)
            self.drop1, self.drop2 = nn.Dropout(p), nn.Dropout(p)

        def forward(self, x):
            b, t, e = x.shape
            h = c["n_head"]
            q, k, v = self.c_attn(self.ln_1(x)).split(e, dim=2)
            q, k, v = (z.view(b, t, h, e // h).transpose(1, 2) for z in (q, k, v))
            y = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=p if self.training else 0.0)
            x = x + self.drop1(self.c_proj(y.transpose(1, 2).contiguous().view(b, t, e)))
            return x + self.drop2(self.proj(torch.nn.functional.gelu(self.fc(self.ln_2(x)))))

    class Gpt(nn.Module):
        def __init__(self):
            super().__init__()
            e = c["n_embd"]
            self.wte, self.wpe = nn.Embedding(c["vocab"], e), nn.Embedding(c["block"], e)
            self.drop = nn.Dropout(p)
            self.h = nn.ModuleList(Block() for _ in range(c["n_layer"]))
            self.ln_f = nn.LayerNorm(e, bias=False)

        def forward(self, idx, targets):
            x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1])))
            for blk in self.h:
                x = blk(x)
            logits = self.ln_f(x) @ self.wte.weight.T
            return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    return Gpt()


def gpt_step_fn(c):
    """One training step of nanoGPT's loop (forward, backward, clip at 1, AdamW with decay on
    matrices only) on random tokens."""
    torch.manual_seed(0)
    model = make_gpt(c)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99))
    b, t, v = c["batch"], c["block"], c["vocab"]

    def step():
        x, y = torch.randint(v, (b, t)), torch.randint(v, (b, t))
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


GPT_CONFIGS = {"gpt": GPT, "gpt_nano": GPT_NANO}


def taper_char_lm(preset, steps, threads, warm):
    """Taper's median step time in ns (char_lm's own `median step X ms`, the statistic
    `median_time` takes of PyTorch's steps) from a run nobody watches, and the peak resident
    memory (MiB) of a second, shorter run polled for it, on random text of the same vocabulary;
    (None, None) when the example is not built."""
    exe = TARGET / "release" / "examples" / "char_lm"
    if not exe.exists():
        return None, None
    import random
    import tempfile
    rnd = random.Random(0)
    alphabet = [chr(32 + i) for i in range(GPT["vocab"])]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "text.txt"
        path.write_text("".join(rnd.choice(alphabet) for _ in range(200_000)))

        def cmd(iters):
            return [str(exe), "--data", str(path), "--preset", preset, "--iters", str(iters), "--eval-every",
                    str(10 * iters), "--eval-iters", "1", "--no-progress", "--out", str(Path(d) / "out")]

        # The timed run: nothing polls it (a poller would take CPU from its two threads).
        out = subprocess.run(cmd(steps + warm), capture_output=True, text=True, env=env).stdout
        line = next((l for l in out.splitlines() if l.startswith("training:")), "")
        median_ns = float(line.split("median step")[1].split()[0]) * 1e6 if "median step" in line else None
        # The memory run: VmHWM of the child's own address space, read until it exits (it only
        # grows). Not wait4's ru_maxrss: that starts from this (large, torch-laden) process's.
        proc = subprocess.Popen(cmd(warm + 2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        hwm = 0.0
        while proc.poll() is None:
            try:
                for l in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if l.startswith("VmHWM:"):
                        hwm = max(hwm, float(l.split()[1]) / 1024.0)
            except OSError:
                pass
            time.sleep(0.02)
    return median_ns, (hwm or None)


def bench_char_lm(threads, preset="cpu", steps=60):
    """Tokens/s of one GPT training step (forward, backward, clip, AdamW), Taper's and PyTorch's,
    each from its median step time (Taper's over all its steps, warm-up included: a conservative
    choice), and the peak resident memory of each (each in a separate run, so that no poller
    competes with a timed run)."""
    c = GPT if preset == "cpu" else GPT_NANO
    warm = 5 if preset == "cpu" else 1
    tokens = c["batch"] * c["block"]
    torch_ns = median_time(gpt_step_fn(c), warm, steps)
    taper_ns, taper_mib = taper_char_lm(preset, steps, threads, warm)
    kind = "gpt" if preset == "cpu" else "gpt_nano"
    taper_tps = tokens / (taper_ns / 1e9) if taper_ns else None
    return taper_tps, tokens / (torch_ns / 1e9), taper_mib, peak_rss_subprocess(kind, threads)


def collect_gpt(args, rows, mem):
    """The char_lm rows: the default recipe's step and --preset nanogpt's, with peak memory."""
    for preset, label, steps in (("cpu", "char_lm GPT 4x4x128 b12 t64 step (AdamW, clip)", 60),
                                 ("nanogpt", "char_lm --preset nanogpt: GPT 6x6x384 b64 t256 dropout 0.2 step", 3)):
        c = GPT if preset == "cpu" else GPT_NANO
        taper_tps, torch_tps, taper_mib, torch_mib = bench_char_lm(args.threads, preset, steps)
        if taper_tps:
            # Throughput rows take times: a step of batch·block tokens.
            tokens = c["batch"] * c["block"]
            rows.append((label, tokens / taper_tps * 1e9, tokens / torch_tps * 1e9,
                         "nanoGPT's model + AdamW (SDPA attention)", False))
        mem.append((label, taper_mib, torch_mib))


def collect(args):
    rows, mem = [], []  # rows: (workload, taper_ns, other_ns, variant, throughput?)
    for name, variant, taper, unchecked, ns in bench_optimizers():
        label = f"{variant}, interleaved"
        rows.append((f"optimizer step 10M f32: {name}", taper, ns, label, False))
        if "fused" in variant:
            # PyTorch's optimizers do not check gradients for NaN/Inf; NonFinite::Unchecked is
            # the same contract.
            rows.append((f"optimizer step 10M f32: {name}, unchecked", unchecked, ns, label,
                         False))
    print("optimizers done", file=sys.stderr)

    mlp_taper = taper_ns(MLP_GROUP, "taper_step")
    rows.append(("MLP 784-256-10 b64 step (SGD)", mlp_taper, bench_train_step("mlp"),
                 "nn.Sequential + SGD", True))
    rows.append(("MLP 784-256-10 b64 step (SGD)", mlp_taper, timed_child("mlp", args.threads),
                 "same, PyTorch run with init_cpu's malloc settings", True))
    rows.append(("MLP 784-256-10 b64 forward + backward (tape overhead)",
                 taper_ns(MLP_GROUP, "taper_fwd_bwd"), taper_ns(MLP_GROUP, "candle_fwd_bwd"),
                 "candle's own backprop (Rust)", True))
    conv_taper = taper_ns(CONV_GROUP, "taper_tape")
    rows.append(("ConvNet b64 step (Adam)", conv_taper, bench_train_step("convnet"),
                 "nn.Sequential + Adam", True))
    rows.append(("ConvNet b64 step (Adam)", conv_taper, timed_child("convnet", args.threads),
                 "same, PyTorch run with init_cpu's malloc settings", True))
    print("train steps done", file=sys.stderr)

    concise, ch7, scratch = bench_airfoil()
    air_taper = taper_ns(AIRFOIL_GROUP, "taper_sgd")
    rows.append(("airfoil epoch (1500 rows, b10, SGD)", air_taper, ch7,
                 "d2l train_ch7 (the documents': DataLoader)", False))
    rows.append(("airfoil epoch (1500 rows, b10, SGD)", air_taper, scratch,
                 "train_ch7 batched by index, no DataLoader (stricter)", False))
    rows.append(("airfoil epoch (1500 rows, b10, SGD)", air_taper, concise,
                 "nn.Linear + optim.SGD, batched by index", False))
    print("airfoil done", file=sys.stderr)

    collect_gpt(args, rows, mem)
    print("char_lm done", file=sys.stderr)

    for label, kind, group in (("MLP 784-256-10 b64 step", "mlp", MLP_GROUP),
                               ("ConvNet b64 step", "convnet", CONV_GROUP)):
        mem.append((label, taper_mem(group), peak_rss_subprocess(kind, args.threads)))
    return rows, mem


def merge_rounds(rounds):
    """Median of each cell over rounds; rows keep the first round's order.

    rounds: [(rows, mem)] from collect(). Returns (rows, mem) with a list of per-round ratios
    appended to each row."""
    med = lambda vs: statistics.median(vs) if vs else None
    keyed = {}
    for rows, _ in rounds:
        for wl, t, o, variant, thr in rows:
            k = keyed.setdefault((wl, variant), dict(t=[], o=[], r=[], thr=thr))
            if t:
                k["t"].append(t)
            if o:
                k["o"].append(o)
            if t and o:
                k["r"].append(o / t)
    rows = [(wl, med(k["t"]), med(k["o"]), variant, k["thr"], k["r"])
            for (wl, variant), k in keyed.items()]
    mkeyed = {}
    for _, mem in rounds:
        for wl, t, o in mem:
            k = mkeyed.setdefault(wl, ([], []))
            if t is not None:
                k[0].append(t)
            if o is not None:
                k[1].append(o)
    mem = [(wl, med(t), med(o)) for wl, (t, o) in mkeyed.items()]
    return rows, mem


def render(header, rows, mem):
    lines = [header, "",
             "| workload | Taper | PyTorch | ratio | ratio per round | PyTorch variant |",
             "|---|---:|---:|---:|---|---|"]
    for wl, t, o, variant, thr, per_round in rows:
        ratio = f"{o / t:.2f}×" if t and o else DASH
        spread = ", ".join(f"{r:.2f}" for r in per_round) or DASH
        tt = fmt_ns(t) + (fmt_imgs(t) if thr else "")
        oo = fmt_ns(o) + (fmt_imgs(o) if thr else "")
        lines.append(f"| {wl} | {tt} | {oo} | {ratio} | {spread} | {variant} |")
    lines += ["", "peak resident memory (VmHWM), MiB", "",
              "| workload | Taper | PyTorch |", "|---|---:|---:|"]
    for wl, t, o in mem:
        f = lambda v: DASH if v is None else f"{v:.1f}"
        lines.append(f"| {wl} | {f(t)} | {f(o)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads / RAYON_NUM_THREADS")
    ap.add_argument("--json", metavar="PATH", help="also write all numbers as JSON")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of (cargo bench, PyTorch); the table shows each cell's median "
                         "and every round's ratio (default 3)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--torch-only", action="store_true", help="skip cargo and criterion results")
    g.add_argument("--skip-cargo", action="store_true", help="reuse existing criterion results")
    g.add_argument("--gpt-only", action="store_true",
                   help="only the char_lm GPT rows (needs `cargo build --release --example char_lm`)")
    ap.add_argument("--_peak", choices=["mlp", "convnet", "gpt", "gpt_nano"], help=argparse.SUPPRESS)
    ap.add_argument("--_time", choices=["mlp", "convnet", "gpt", "gpt_nano"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    global THREADS
    THREADS = args.threads

    if args._time:  # child process: time the step alone, print the median (ns)
        print(bench_train_step(args._time))
        return
    if args._peak:  # child process: run the step alone, print VmHWM (MiB)
        if args._peak in GPT_CONFIGS:
            step = gpt_step_fn(GPT_CONFIGS[args._peak])
        else:
            step = train_step_fn(args._peak)
        for _ in range(3 if args._peak == "gpt_nano" else 10):
            step()
        print(vm_hwm_mib())
        return

    t_start = time.perf_counter()  # load average is sampled before cargo runs
    meta = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), cpu=cpu_model(),
                threads=args.threads, torch=torch.__version__, loadavg_1m=os.getloadavg()[0])
    header = (f"{meta['date']} · {meta['cpu']} · {args.threads} threads · torch {meta['torch']}"
              f" · load avg {meta['loadavg_1m']:.2f} · median of {args.rounds} rounds")
    if meta["loadavg_1m"] > 0.5:
        print("warning: machine is busy (load avg > 0.5); timings will be noisy", file=sys.stderr)
    if args.torch_only:  # never read stale criterion results
        global TARGET
        TARGET = Path("/nonexistent-taper-target")

    # Rounds alternate the two sides, so that a slow spell of this shared machine lands on both.
    rounds = []
    for r in range(max(args.rounds, 1)):
        print(f"round {r + 1} of {args.rounds}", file=sys.stderr)
        if args.gpt_only:
            rows, mem = [], []
            collect_gpt(args, rows, mem)
            rounds.append((rows, mem))
            continue
        if not (args.torch_only or args.skip_cargo):
            run_cargo(args.threads)
        rounds.append(collect(args))
    rows, mem = merge_rounds(rounds)
    print(render(header, rows, mem))
    print(f"\n(total {time.perf_counter() - t_start:.1f} s)", file=sys.stderr)

    if args.json:
        row_json = lambda rs: [dict(workload=w, taper_ns=t, other_ns=o, variant=v,
                                    ratio=(o / t if t and o else None))
                               for w, t, o, v, *_ in rs]
        data = dict(meta, rounds=args.rounds, rows=row_json(rows),
                    peak_rss_mib=[dict(workload=w, taper=t, pytorch=o) for w, t, o in mem],
                    per_round=[row_json(rs) for rs, _ in rounds])
        Path(args.json).write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
