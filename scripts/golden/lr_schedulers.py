"""Golden learning-rate (and momentum) schedules from PyTorch's torch.optim.lr_scheduler.

Produces ``tests/golden/lr_schedulers.json``.

Run from the repository root:

    ~/.cache/taper-ref/bin/python scripts/golden/lr_schedulers.py

(venv created with ``python3 -m venv ~/.cache/taper-ref && ~/.cache/taper-ref/bin/pip
install torch numpy``; generated with torch 2.15.0 (the +cu132 wheel), CPU only. Nothing here
is random and no tensor arithmetic is involved: every value is Python float arithmetic inside
the schedulers, so the output is bit-for-bit reproducible.)

For every case in CASES an optimizer is built over TWO param groups, each holding one tiny dummy
parameter (group lrs ``group_lrs``, 0.1 and 0.01 unless the case says otherwise):

* ``torch.optim.SGD(groups, lr=0.1, momentum=0.9)``, or
* ``torch.optim.Adam(groups, lr=0.1, betas=(0.9, 0.999))`` for the beta1-cycling cases,

then the scheduler. ``[g["lr"] for g in opt.param_groups]`` is recorded right after the
scheduler's construction (row 0) and after each of STEPS=100 calls of ``scheduler.step()``
(rows 1..100): 101 rows. ``opt.step()`` is called before every ``scheduler.step()`` (the grads
are None, so it changes nothing; it only keeps PyTorch's call-order check quiet) and warnings are
silenced. ReduceLROnPlateau gets ``scheduler.step(metrics[i])`` at step i+1, with the case's
deterministic ``metrics`` (100 floats). Where the scheduler cycles momentum (CyclicLR and
OneCycleLR with cycle_momentum), each group's momentum is recorded the same way: SGD's
``g["momentum"]``, Adam's ``g["betas"][0]``.

Spec strings use Taper's format ``name:key=value,key=value`` (a bare ``name`` when no option is
set), with PyTorch's argument names in lower case (``T_max`` is ``t_max``); lists in square
brackets (``milestones=[30,80]``, ``max_lr=[1.0,0.1]``); strings bare (``mode=triangular2``);
booleans ``true``/``false``; numbers as Python's repr prints them (``0.1``, ``1e-05``, ints
without a point). The schedulers inside SequentialLR / ChainedScheduler are written
``name(key=value,...)`` in the ``schedulers`` list. Every option the case passes to torch is
stated, in the order passed; options left out take PyTorch's defaults. The spec is generated
from the very kwargs given to torch (``spec_of``) and parsed back and compared as a check.

Names: step (StepLR), multistep (MultiStepLR), constant (ConstantLR), linear (LinearLR),
exponential (ExponentialLR), polynomial (PolynomialLR), cosine (CosineAnnealingLR),
cosine_warm_restarts (CosineAnnealingWarmRestarts), cyclic (CyclicLR), onecycle (OneCycleLR),
plateau (ReduceLROnPlateau), sequential (SequentialLR), chained (ChainedScheduler).

Format:

    {"generator": "scripts/golden/lr_schedulers.py", "torch_version": "...", "steps": 100,
     "cases": [{"name", "spec",
                "optimizer": {"name": "sgd", "momentum": 0.9}
                           | {"name": "adam", "beta1": 0.9, "beta2": 0.999},
                "group_lrs": [0.1, 0.01],
                "metrics": [100 floats] | null,
                "lr": [[g0, g1] x 101],
                "momentum": [[g0, g1] x 101] | null}, ...]}

Floats are written with Python's repr (json.dumps), which round-trips f64 exactly.

PyTorch behaviours these data pin down (torch 2.15):

* Most schedulers are recursive (each step multiplies the current group lr), so values carry
  float rounding (0.010000000000000002); CosineAnnealingLR past T_max keeps following its
  recursive form and climbs back to the base lr (period 2*T_max).
* SequentialLR: at a milestone the next scheduler is restarted with ``_update_lr(0)``, i.e. its
  closed form at epoch 0 (its base lr), whatever lr the previous one left; at construction the
  lrs are reset to ``initial_lr`` and only the first scheduler's initial step is redone.
* ChainedScheduler keeps the construction effects of every chained scheduler (ConstantLR's
  factor is applied once at construction).
* MultiStepLR with a repeated milestone multiplies by gamma once per occurrence.
* CyclicLR sets each group's lr to base_lr at construction (group lrs are ignored) and its
  momentum (SGD) / beta1 (Adam) to max_momentum; ``scale_mode`` is ignored for the built-in
  modes (triangular/triangular2 scale per cycle, exp_range per iteration).
* OneCycleLR sets lr to max_lr/div_factor and momentum to max_momentum at construction; with
  total_steps=100 the 100th step (step number 100 > total_steps-1) extrapolates the last phase
  past its end (pct > 1): cos turns back up, linear goes negative.
* ReduceLROnPlateau changes nothing at construction; a reduction is applied only if
  ``old_lr - max(old_lr*factor, min_lr) > eps`` (so a group stops once lr*factor is within eps,
  also with the default eps=1e-8); bad epochs during cooldown are not counted.
"""

import json
import math
import os
import re
import sys
import warnings

import torch
from torch.optim import lr_scheduler as lrs

STEPS = 100
OUT_PATH = os.path.join("tests", "golden", "lr_schedulers.json")
GENERATOR = "scripts/golden/lr_schedulers.py"
DEFAULT_GROUP_LRS = [0.1, 0.01]
SGD = {"name": "sgd", "momentum": 0.9}
ADAM = {"name": "adam", "beta1": 0.9, "beta2": 0.999}

# Taper's scheduler name -> torch class.
CLASSES = {
    "step": lrs.StepLR,
    "multistep": lrs.MultiStepLR,
    "constant": lrs.ConstantLR,
    "linear": lrs.LinearLR,
    "exponential": lrs.ExponentialLR,
    "polynomial": lrs.PolynomialLR,
    "cosine": lrs.CosineAnnealingLR,
    "cosine_warm_restarts": lrs.CosineAnnealingWarmRestarts,
    "cyclic": lrs.CyclicLR,
    "onecycle": lrs.OneCycleLR,
    "plateau": lrs.ReduceLROnPlateau,
    "sequential": lrs.SequentialLR,
    "chained": lrs.ChainedScheduler,
}


# ---------------------------------------------------------------------------------------------
# Metric sequences for ReduceLROnPlateau (rounded to 6 decimals so they read cleanly; the JSON
# holds the exact doubles that were fed to torch).


def loss_curve():
    """A loss that falls, plateaus with small wiggles, falls again, plateaus again.

    Plateau values never beat the best value so far, except for a few "tiny improvements" of
    0.005% (below the default rel threshold 1e-4 and any abs threshold used here), which must
    not count as improvements.
    """
    out = []
    v = 1.0
    for t in range(STEPS):
        if t < 20:  # fall
            v = 0.97**t
            out.append(v)
        elif t < 45:  # plateau at the last fallen value
            base = 0.97**19
            if t in (30, 38):
                out.append(base * (1.0 - 5e-5))
            else:
                out.append(base * (1.0 + 0.004 * (1.0 + math.sin(1.7 * t))))
        elif t < 65:  # fall again
            out.append(0.97**19 * 0.96 ** (t - 44))
        else:  # plateau again, wiggling
            base = 0.97**19 * 0.96**20
            if t in (72, 90):
                out.append(base * (1.0 - 5e-5))
            else:
                out.append(base * (1.0 + 0.006 * (1.0 + math.cos(2.3 * t))))
    return [round(x, 6) for x in out]


def accuracy_curve():
    """A score for mode=max: rises, plateaus with wiggles, rises again, plateaus again."""
    return [round(1.0 - 0.5 * x, 6) for x in loss_curve()]


# ---------------------------------------------------------------------------------------------
# Spec strings


def fmt_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return v
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str):  # nested scheduler
        return spec_of(v[0], v[1], nested=True)
    if isinstance(v, list):
        return "[" + ",".join(fmt_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} in a spec")


def spec_of(name, kwargs, nested=False):
    opts = ",".join(f"{k.lower()}={fmt_value(v)}" for k, v in kwargs.items())
    if nested:
        return f"{name}({opts})"
    return f"{name}:{opts}" if opts else name


def parse_spec(spec):
    """Parses a spec back (a check that the written spec is unambiguous and complete)."""
    pos = 0

    def ident():
        nonlocal pos
        m = re.compile(r"[a-z0-9_]+").match(spec, pos)
        if not m:
            raise ValueError(f"expected a name at {pos} in {spec!r}")
        pos = m.end()
        return m.group(0)

    def expect(c):
        nonlocal pos
        if spec[pos : pos + 1] != c:
            raise ValueError(f"expected {c!r} at {pos} in {spec!r}")
        pos += 1

    def scalar():
        nonlocal pos
        m = re.compile(r"[^,\[\]()]+").match(spec, pos)
        text = m.group(0)
        pos = m.end()
        if text in ("true", "false"):
            return text == "true"
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        try:
            return float(text)
        except ValueError:
            return text

    def value():
        nonlocal pos
        if spec[pos : pos + 1] == "[":
            pos += 1
            items = []
            if spec[pos : pos + 1] != "]":
                items.append(value())
                while spec[pos : pos + 1] == ",":
                    pos += 1
                    items.append(value())
            expect("]")
            return items
        m = re.compile(r"[a-z0-9_]+\(").match(spec, pos)
        if m:
            name = ident()
            expect("(")
            opts = options(")")
            expect(")")
            return (name, opts)
        return scalar()

    def options(end):
        nonlocal pos
        opts = {}
        if spec[pos : pos + 1] in (end, ""):
            return opts
        while True:
            k = ident()
            expect("=")
            if k in opts:
                raise ValueError(f"{k} twice in {spec!r}")
            opts[k] = value()
            if spec[pos : pos + 1] == ",":
                pos += 1
                continue
            return opts

    name = ident()
    opts = {}
    if pos < len(spec):
        expect(":")
        opts = options("")
    if pos != len(spec):
        raise ValueError(f"trailing text at {pos} in {spec!r}")
    return name, opts


def normalized(kwargs):
    """kwargs with lower-case keys, as parse_spec returns them."""

    def norm(v):
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str):
            return (v[0], normalized(v[1]))
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return {k.lower(): norm(v) for k, v in kwargs.items()}


def same(a, b):
    """Equal, with types: 1 and 1.0 and True are all different here."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


# ---------------------------------------------------------------------------------------------
# Cases: (name, scheduler name, torch kwargs, options). Options: optimizer (SGD or ADAM),
# group_lrs, metrics. Nested schedulers are (name, kwargs) tuples.

LOSS = loss_curve()
ACC = accuracy_curve()

CASES = [
    # StepLR
    ("step", "step", dict(step_size=10, gamma=0.5), {}),
    ("step_default_gamma", "step", dict(step_size=7), {}),
    # MultiStepLR
    ("multistep", "multistep", dict(milestones=[30, 80], gamma=0.1), {}),
    # a repeated milestone multiplies by gamma once per occurrence (gamma**2 at 10)
    ("multistep_repeated_milestone", "multistep", dict(milestones=[10, 10, 50], gamma=0.5), {}),
    # ConstantLR
    ("constant", "constant", dict(factor=0.5, total_iters=10), {}),
    ("constant_defaults", "constant", dict(), {}),
    # LinearLR
    ("linear_warmup", "linear", dict(start_factor=0.1, end_factor=1.0, total_iters=20), {}),
    ("linear_decay_to_zero", "linear", dict(start_factor=0.5, end_factor=0.0, total_iters=50), {}),
    ("linear_defaults", "linear", dict(), {}),
    # ExponentialLR
    ("exponential", "exponential", dict(gamma=0.95), {}),
    # PolynomialLR
    ("polynomial_linear", "polynomial", dict(total_iters=50, power=1.0), {}),
    ("polynomial_power2", "polynomial", dict(total_iters=80, power=2.0), {}),
    ("polynomial_sqrt_full", "polynomial", dict(total_iters=100, power=0.5), {}),
    # CosineAnnealingLR
    ("cosine_t100", "cosine", dict(T_max=100, eta_min=0.0), {}),
    # runs past T_max: the recursive form climbs back up (period 2*T_max)
    ("cosine_t30_past_tmax", "cosine", dict(T_max=30, eta_min=0.001), {}),
    # CosineAnnealingWarmRestarts
    (
        "cosine_warm_restarts_tmult1",
        "cosine_warm_restarts",
        dict(T_0=10, T_mult=1, eta_min=0.0),
        {},
    ),
    (
        "cosine_warm_restarts_tmult2",
        "cosine_warm_restarts",
        dict(T_0=5, T_mult=2, eta_min=0.001),
        {},
    ),
    ("cosine_warm_restarts_t0_only", "cosine_warm_restarts", dict(T_0=12), {}),
    # CyclicLR (replaces the groups' lrs by base_lr; group_lrs do not matter)
    (
        "cyclic_triangular_momentum",
        "cyclic",
        dict(
            base_lr=0.01,
            max_lr=0.1,
            step_size_up=10,
            mode="triangular",
            cycle_momentum=True,
            base_momentum=0.8,
            max_momentum=0.9,
        ),
        {},
    ),
    (
        "cyclic_triangular2_no_momentum",
        "cyclic",
        dict(
            base_lr=0.001,
            max_lr=0.05,
            step_size_up=5,
            step_size_down=15,
            mode="triangular2",
            cycle_momentum=False,
        ),
        {},
    ),
    (
        "cyclic_exp_range_momentum",
        "cyclic",
        dict(
            base_lr=0.01,
            max_lr=0.2,
            step_size_up=8,
            step_size_down=12,
            mode="exp_range",
            gamma=0.98,
            base_momentum=0.85,
            max_momentum=0.95,
        ),
        {},
    ),
    (
        "cyclic_adam_beta1",
        "cyclic",
        dict(
            base_lr=0.001,
            max_lr=0.01,
            step_size_up=6,
            cycle_momentum=True,
            base_momentum=0.8,
            max_momentum=0.95,
        ),
        {"optimizer": ADAM},
    ),
    (
        "cyclic_per_group_lists",
        "cyclic",
        dict(
            base_lr=[0.01, 0.001],
            max_lr=[1.0, 0.1],
            step_size_up=7,
            step_size_down=3,
            base_momentum=[0.8, 0.7],
            max_momentum=[0.9, 0.95],
        ),
        {},
    ),
    # torch ignores scale_mode for the built-in modes: triangular/triangular2 always scale per
    # cycle, exp_range always per iteration (scale_mode only applies to a custom scale_fn).
    (
        "cyclic_triangular2_scale_mode_ignored",
        "cyclic",
        dict(
            base_lr=0.02,
            max_lr=0.2,
            step_size_up=4,
            step_size_down=6,
            mode="triangular2",
            scale_mode="iterations",
            cycle_momentum=False,
        ),
        {},
    ),
    (
        "cyclic_exp_range_scale_mode_ignored",
        "cyclic",
        dict(
            base_lr=0.01,
            max_lr=0.1,
            step_size_up=5,
            mode="exp_range",
            gamma=0.99,
            scale_mode="cycle",
            cycle_momentum=False,
        ),
        {},
    ),
    # OneCycleLR (replaces the groups' lrs by max_lr/div_factor; group_lrs do not matter)
    ("onecycle_cos_defaults", "onecycle", dict(max_lr=0.1, total_steps=100), {}),
    (
        "onecycle_linear",
        "onecycle",
        dict(
            max_lr=0.5,
            total_steps=100,
            pct_start=0.25,
            anneal_strategy="linear",
            base_momentum=0.8,
            max_momentum=0.9,
            div_factor=10.0,
            final_div_factor=100.0,
        ),
        {},
    ),
    (
        "onecycle_three_phase",
        "onecycle",
        dict(max_lr=0.2, total_steps=100, pct_start=0.4, anneal_strategy="cos", three_phase=True),
        {},
    ),
    (
        "onecycle_three_phase_linear_no_momentum",
        "onecycle",
        dict(
            max_lr=0.3,
            total_steps=100,
            pct_start=0.3,
            anneal_strategy="linear",
            cycle_momentum=False,
            div_factor=30.0,
            final_div_factor=1000.0,
            three_phase=True,
        ),
        {},
    ),
    (
        "onecycle_adam_beta1",
        "onecycle",
        dict(
            max_lr=0.01,
            total_steps=100,
            cycle_momentum=True,
            base_momentum=0.85,
            max_momentum=0.95,
        ),
        {"optimizer": ADAM},
    ),
    (
        "onecycle_per_group_lists",
        "onecycle",
        dict(
            max_lr=[0.4, 0.04],
            total_steps=100,
            base_momentum=[0.8, 0.85],
            max_momentum=[0.9, 0.99],
        ),
        {},
    ),
    (
        "onecycle_epochs_steps_per_epoch",
        "onecycle",
        dict(max_lr=0.1, epochs=10, steps_per_epoch=10, cycle_momentum=False, three_phase=False),
        {},
    ),
    # ReduceLROnPlateau
    (
        "plateau_min",
        "plateau",
        dict(mode="min", factor=0.5, patience=5),
        {"metrics": LOSS},
    ),
    (
        "plateau_min_cooldown_min_lr",
        "plateau",
        dict(mode="min", factor=0.5, patience=3, cooldown=4, min_lr=0.002),
        {"metrics": LOSS},
    ),
    (
        "plateau_min_abs_threshold",
        "plateau",
        dict(mode="min", factor=0.2, patience=4, threshold=0.01, threshold_mode="abs"),
        {"metrics": LOSS},
    ),
    # eps: a reduction smaller than eps is skipped (group 1 stops at 0.00125)
    (
        "plateau_min_eps",
        "plateau",
        dict(mode="min", factor=0.5, patience=2, threshold=0.0001, threshold_mode="rel", eps=0.001),
        {"metrics": LOSS},
    ),
    (
        "plateau_max_abs_min_lr_list",
        "plateau",
        dict(
            mode="max",
            factor=0.3,
            patience=4,
            threshold=0.001,
            threshold_mode="abs",
            min_lr=[0.001, 0.0005],
        ),
        {"metrics": ACC},
    ),
    (
        "plateau_max_rel_patience0_cooldown",
        "plateau",
        dict(
            mode="max",
            factor=0.7,
            patience=0,
            threshold=0.002,
            threshold_mode="rel",
            cooldown=2,
            min_lr=1e-05,
        ),
        {"metrics": ACC},
    ),
    # SequentialLR
    (
        "sequential_warmup_cosine",
        "sequential",
        dict(
            schedulers=[
                ("linear", dict(start_factor=0.1, total_iters=5)),
                ("cosine", dict(T_max=95)),
            ],
            milestones=[5],
        ),
        {},
    ),
    (
        "sequential_constant_exponential_step",
        "sequential",
        dict(
            schedulers=[
                ("constant", dict(factor=0.5, total_iters=10)),
                ("exponential", dict(gamma=0.9)),
                ("step", dict(step_size=10, gamma=0.5)),
            ],
            milestones=[20, 60],
        ),
        {},
    ),
    # the warmup is cut off before it ends; at the milestone the next scheduler restarts from
    # the base lr
    (
        "sequential_cut_warmup_exponential",
        "sequential",
        dict(
            schedulers=[
                ("linear", dict(start_factor=0.2, end_factor=1.0, total_iters=10)),
                ("exponential", dict(gamma=0.97)),
            ],
            milestones=[5],
        ),
        {},
    ),
    # ChainedScheduler
    (
        "chained_constant_exponential",
        "chained",
        dict(
            schedulers=[
                ("constant", dict(factor=0.5, total_iters=3)),
                ("exponential", dict(gamma=0.95)),
            ]
        ),
        {},
    ),
    (
        "chained_step_multistep",
        "chained",
        dict(
            schedulers=[
                ("step", dict(step_size=10, gamma=0.8)),
                ("multistep", dict(milestones=[25, 50, 75], gamma=0.5)),
            ]
        ),
        {},
    ),
    (
        "chained_linear_warmup_cosine",
        "chained",
        dict(
            schedulers=[
                ("linear", dict(start_factor=0.25, total_iters=10)),
                ("cosine", dict(T_max=100, eta_min=0.0)),
            ]
        ),
        {"group_lrs": [0.2, 0.05]},
    ),
]


# ---------------------------------------------------------------------------------------------


def make_optimizer(optimizer, group_lrs):
    groups = [{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in group_lrs]
    if optimizer["name"] == "sgd":
        return torch.optim.SGD(groups, lr=0.1, momentum=optimizer["momentum"])
    return torch.optim.Adam(groups, lr=0.1, betas=(optimizer["beta1"], optimizer["beta2"]))


def build(opt, name, kwargs):
    cls = CLASSES[name]
    if name in ("sequential", "chained"):
        # the inner schedulers are built first, in order, on the same optimizer (as a user would)
        rest = {k: v for k, v in kwargs.items() if k != "schedulers"}
        inner = [build(opt, n, k) for n, k in kwargs["schedulers"]]
        if name == "sequential":
            return cls(opt, schedulers=inner, **rest)
        return cls(inner, optimizer=opt, **rest)
    return cls(opt, **kwargs)


def cycles_momentum(name, kwargs):
    return name in ("cyclic", "onecycle") and kwargs.get("cycle_momentum", True)


def lrs_of(opt):
    out = []
    for g in opt.param_groups:
        v = g["lr"]
        if not isinstance(v, float):
            sys.exit(f"lr is {type(v).__name__}, not float: {v!r}")
        out.append(v)
    return out


def momenta_of(opt, optimizer):
    if optimizer["name"] == "sgd":
        vals = [g["momentum"] for g in opt.param_groups]
    else:
        vals = [g["betas"][0] for g in opt.param_groups]
    for v in vals:
        if not isinstance(v, float):
            sys.exit(f"momentum is {type(v).__name__}, not float: {v!r}")
    return vals


def run_case(case):
    name, sched, kwargs, extra = case
    optimizer = extra.get("optimizer", SGD)
    group_lrs = extra.get("group_lrs", DEFAULT_GROUP_LRS)
    metrics = extra.get("metrics")
    if (sched == "plateau") != (metrics is not None):
        sys.exit(f"{name}: metrics go with plateau and only with it")
    if metrics is not None and len(metrics) != STEPS:
        sys.exit(f"{name}: {len(metrics)} metrics, want {STEPS}")

    opt = make_optimizer(optimizer, group_lrs)
    scheduler = build(opt, sched, kwargs)
    track_m = cycles_momentum(sched, kwargs)

    lr_rows = [lrs_of(opt)]
    m_rows = [momenta_of(opt, optimizer)] if track_m else None
    for i in range(STEPS):
        opt.step()
        if metrics is not None:
            scheduler.step(metrics[i])
        else:
            scheduler.step()
        lr_rows.append(lrs_of(opt))
        if track_m:
            m_rows.append(momenta_of(opt, optimizer))

    spec = spec_of(sched, kwargs)
    back_name, back_opts = parse_spec(spec)
    if back_name != sched or not same(back_opts, normalized(kwargs)):
        sys.exit(f"{name}: spec {spec!r} parses back to {back_name} {back_opts!r}, not {kwargs!r}")

    # Consistency checks
    if len(lr_rows) != STEPS + 1 or (m_rows is not None and len(m_rows) != STEPS + 1):
        sys.exit(f"{name}: wrong number of rows")
    for row in lr_rows + (m_rows or []):
        if len(row) != 2 or not all(math.isfinite(v) for v in row):
            sys.exit(f"{name}: bad row {row!r}")
    if sched == "plateau":
        last_epoch = scheduler.last_epoch
    elif sched == "chained":
        last_epoch = min(s.last_epoch for s in scheduler._schedulers)
    else:
        last_epoch = scheduler.last_epoch
    if last_epoch != STEPS:
        sys.exit(f"{name}: scheduler is at epoch {last_epoch}, not {STEPS}")

    return {
        "name": name,
        "spec": spec,
        "optimizer": optimizer,
        "group_lrs": list(group_lrs),
        "metrics": metrics,
        "lr": lr_rows,
        "momentum": m_rows,
    }


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")

    names = [c[0] for c in CASES]
    if len(set(names)) != len(names):
        sys.exit("case names are not unique")

    cases = [run_case(c) for c in CASES]

    out = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "steps": STEPS,
        "cases": cases,
    }

    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    compact = dict(separators=(",", ":"))
    with open(OUT_PATH, "w") as f:
        f.write("{\n")
        for k in ("generator", "torch_version", "steps"):
            f.write(f" {json.dumps(k)}: {json.dumps(out[k])},\n")
        f.write(' "cases": [\n')
        for j, c in enumerate(cases):
            f.write("  {\n")
            keys = list(c.keys())
            for i, k in enumerate(keys):
                sep = "," if i + 1 < len(keys) else ""
                f.write(f"   {json.dumps(k)}: {json.dumps(c[k], **compact)}{sep}\n")
            f.write("  }" + ("," if j + 1 < len(cases) else "") + "\n")
        f.write(" ]\n")
        f.write("}\n")

    # The file must read back to exactly what was computed.
    with open(OUT_PATH) as f:
        if json.load(f) != out:
            sys.exit("written JSON does not read back identically")
    print(f"wrote {OUT_PATH} ({len(cases)} cases, {os.path.getsize(OUT_PATH)} bytes)")


if __name__ == "__main__":
    main()
