"""Golden optimizer trajectories from PyTorch's torch.optim, for Taper's tests.

Produces ``tests/golden/optim_trajectories.json``.

Run from the repository root:

    ~/.cache/taper-ref/bin/python scripts/golden/optim_trajectories.py

(venv created with ``python3 -m venv ~/.cache/taper-ref && ~/.cache/taper-ref/bin/pip
install torch numpy schedulefree``; schedulefree 1.4.1; generated with torch 2.15.0, CPU only. Runs on another CPU differ from
these in the last bits of f64 and about 1e-7 relative in f32, well inside the tests' tolerances.)

Problem: a tiny 2-layer tanh net on fixed data drawn from
``numpy.random.default_rng(20261123)`` in this order:
X [8,3] ~ U(-1,1), y [8,1] ~ U(-1,1), W1 [3,4] ~ N(0,0.7), W2 [4,1] ~ N(0,0.7),
b1 [4] ~ N(0,0.1).

    loss(w1, b1, w2) = mean((tanh(X @ w1 + b1) @ w2 - y)^2)

For every optimizer configuration in CONFIGS and every dtype in (f64, f32), the
parameters [w1, b1, w2] (one param group, in that order) are trained for 50 steps
(loss, zero_grad, backward, step) with the single-tensor reference path
(``foreach=False``). Each run records the loss before every step and a snapshot of
all parameters (flat, row-major) after every step; for optimizers with state that does not feed
back into the parameters (ASGD's average ``ax``) it also records that state after the last step
(``final_state``, ``{param}.{buffer}``).

The ``spec`` strings use Taper's format ``name:key=value,...`` with PyTorch's
option names (tuples are split into named options: betas ``beta1``/``beta2``, Rprop's etas
``eta_minus``/``eta_plus`` and step_sizes ``step_size_min``/``step_size_max``, Adafactor's eps
pair ``eps1``/``eps2``; booleans
``true``/``false``).
Every non-default option is stated, plus lr always. AdamW's weight_decay is always
stated explicitly because torch's default for it (0.01) differs from Adam's (0).

The output is deterministic (CPU, one thread, fixed seed).
"""

import json
import math
import os
import sys

import numpy as np
import torch

SEED = 20261123
STEPS = 50
OUT_PATH = os.path.join("tests", "golden", "optim_trajectories.json")
GENERATOR = "scripts/golden/optim_trajectories.py"
PARAM_NAMES = ("w1", "b1", "w2")

# (name, torch class name, kwargs, spec)
CONFIGS = [
    ("sgd", "SGD", dict(lr=0.1), "sgd:lr=0.1"),
    ("sgd_momentum", "SGD", dict(lr=0.1, momentum=0.9), "sgd:lr=0.1,momentum=0.9"),
    (
        "sgd_momentum_dampening_wd",
        "SGD",
        dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
        "sgd:lr=0.1,momentum=0.9,dampening=0.1,weight_decay=0.01",
    ),
    (
        "sgd_nesterov",
        "SGD",
        dict(lr=0.1, momentum=0.9, nesterov=True),
        "sgd:lr=0.1,momentum=0.9,nesterov=true",
    ),
    ("adagrad", "Adagrad", dict(lr=0.1), "adagrad:lr=0.1"),
    (
        "adagrad_lrdecay_init",
        "Adagrad",
        dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
        "adagrad:lr=0.1,lr_decay=0.01,initial_accumulator_value=0.1",
    ),
    (
        "adagrad_wd_eps",
        "Adagrad",
        dict(lr=0.1, weight_decay=0.05, eps=1e-6),
        "adagrad:lr=0.1,weight_decay=0.05,eps=1e-6",
    ),
    ("rmsprop", "RMSprop", dict(lr=0.01), "rmsprop:lr=0.01"),
    (
        "rmsprop_centered",
        "RMSprop",
        dict(lr=0.01, centered=True),
        "rmsprop:lr=0.01,centered=true",
    ),
    (
        "rmsprop_momentum",
        "RMSprop",
        dict(lr=0.01, momentum=0.9),
        "rmsprop:lr=0.01,momentum=0.9",
    ),
    (
        "rmsprop_centered_momentum",
        "RMSprop",
        dict(lr=0.01, centered=True, momentum=0.9),
        "rmsprop:lr=0.01,centered=true,momentum=0.9",
    ),
    (
        "rmsprop_wd",
        "RMSprop",
        dict(lr=0.01, weight_decay=0.1),
        "rmsprop:lr=0.01,weight_decay=0.1",
    ),
    (
        "rmsprop_alpha_eps",
        "RMSprop",
        dict(lr=0.01, alpha=0.9, eps=1e-6),
        "rmsprop:lr=0.01,alpha=0.9,eps=1e-6",
    ),
    ("adadelta", "Adadelta", dict(lr=1.0), "adadelta:lr=1.0"),
    (
        "adadelta_rho_eps_wd",
        "Adadelta",
        dict(lr=0.5, rho=0.95, eps=1e-5, weight_decay=0.01),
        "adadelta:lr=0.5,rho=0.95,eps=1e-5,weight_decay=0.01",
    ),
    ("adam", "Adam", dict(lr=0.01), "adam:lr=0.01"),
    ("adam_amsgrad", "Adam", dict(lr=0.01, amsgrad=True), "adam:lr=0.01,amsgrad=true"),
    (
        "adam_betas_wd",
        "Adam",
        dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
        "adam:lr=0.01,beta1=0.8,beta2=0.99,weight_decay=0.01",
    ),
    (
        "adamw",
        "AdamW",
        dict(lr=0.01, weight_decay=0.01),
        "adamw:lr=0.01,weight_decay=0.01",
    ),
    (
        "adamw_amsgrad_wd",
        "AdamW",
        dict(lr=0.01, amsgrad=True, weight_decay=0.1),
        "adamw:lr=0.01,amsgrad=true,weight_decay=0.1",
    ),
    # maximize: gradient ascent on -loss, i.e. the step is taken on -grad (every option that
    # acts on the gradient comes after the negation in PyTorch).
    (
        "sgd_maximize",
        "SGD",
        dict(lr=0.02, momentum=0.5, weight_decay=0.01, maximize=True),
        "sgd:lr=0.02,momentum=0.5,weight_decay=0.01,maximize=true",
    ),
    (
        "adagrad_maximize",
        "Adagrad",
        dict(lr=0.1, weight_decay=0.05, maximize=True),
        "adagrad:lr=0.1,weight_decay=0.05,maximize=true",
    ),
    (
        "rmsprop_maximize",
        "RMSprop",
        dict(lr=0.001, centered=True, momentum=0.9, weight_decay=0.1, maximize=True),
        "rmsprop:lr=0.001,centered=true,momentum=0.9,weight_decay=0.1,maximize=true",
    ),
    (
        "adadelta_maximize",
        "Adadelta",
        dict(lr=0.5, weight_decay=0.01, maximize=True),
        "adadelta:lr=0.5,weight_decay=0.01,maximize=true",
    ),
    (
        "adam_maximize",
        "Adam",
        dict(lr=0.01, amsgrad=True, weight_decay=0.01, maximize=True),
        "adam:lr=0.01,amsgrad=true,weight_decay=0.01,maximize=true",
    ),
    ("radam", "RAdam", dict(lr=0.01), "radam:lr=0.01"),
    (
        "radam_wd_betas",
        "RAdam",
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01),
        "radam:lr=0.01,beta1=0.8,beta2=0.99,eps=1e-6,weight_decay=0.01",
    ),
    (
        "radam_decoupled_maximize",
        "RAdam",
        dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
        "radam:lr=0.01,weight_decay=0.1,decoupled_weight_decay=true,maximize=true",
    ),
    ("rprop", "Rprop", dict(lr=0.01), "rprop:lr=0.01"),
    (
        "rprop_etas_steps_maximize",
        "Rprop",
        dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2), maximize=True),
        "rprop:lr=0.05,eta_minus=0.3,eta_plus=1.5,step_size_min=1e-3,step_size_max=0.2,maximize=true",
    ),
    (
        "adam_decoupled",
        "Adam",
        dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True),
        "adam:lr=0.01,weight_decay=0.1,decoupled_weight_decay=true,amsgrad=true",
    ),
    ("adamax", "Adamax", dict(lr=0.01), "adamax:lr=0.01"),
    (
        "adamax_betas_eps_wd_maximize",
        "Adamax",
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-3, weight_decay=0.05, maximize=True),
        "adamax:lr=0.02,beta1=0.8,beta2=0.99,eps=1e-3,weight_decay=0.05,maximize=true",
    ),
    ("nadam", "NAdam", dict(lr=0.01), "nadam:lr=0.01"),
    (
        "nadam_momentum_decay_wd",
        "NAdam",
        dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, momentum_decay=0.3),
        "nadam:lr=0.01,beta1=0.8,beta2=0.99,eps=1e-6,weight_decay=0.05,momentum_decay=0.3",
    ),
    (
        "nadam_decoupled_maximize",
        "NAdam",
        dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
        "nadam:lr=0.01,weight_decay=0.1,decoupled_weight_decay=true,maximize=true",
    ),
    ("asgd", "ASGD", dict(lr=0.05), "asgd:lr=0.05"),
    (
        "asgd_averaging_wd",
        "ASGD",
        dict(lr=0.05, lambd=0.01, alpha=0.5, t0=10, weight_decay=0.01),
        "asgd:lr=0.05,lambd=0.01,alpha=0.5,t0=10,weight_decay=0.01",
    ),
    (
        "asgd_maximize",
        "ASGD",
        dict(lr=0.02, lambd=0.1, t0=5, maximize=True),
        "asgd:lr=0.02,lambd=0.1,t0=5,maximize=true",
    ),
    ("adafactor", "Adafactor", dict(lr=0.01), "adafactor:lr=0.01"),
    (
        "adafactor_options",
        "Adafactor",
        dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.01),
        "adafactor:lr=0.05,beta2_decay=-0.5,eps1=1e-20,eps2=1e-2,d=2,weight_decay=0.01",
    ),
    (
        "adafactor_maximize",
        "Adafactor",
        dict(lr=0.02, maximize=True),
        "adafactor:lr=0.02,maximize=true",
    ),
    # Muon takes matrices only: w1 and w2 train, b1 stays. `_ns_native`: the Newton-Schulz
    # iteration in the parameter's dtype (Taper's ns_dtype=native), else PyTorch's bfloat16.
    (
        "muon_native",
        "Muon",
        dict(lr=0.02, _trained=("w1", "w2"), _ns_native=True),
        "muon:lr=0.02,ns_dtype=native",
    ),
    (
        "muon_native_options",
        "Muon",
        dict(lr=0.05, weight_decay=0.01, momentum=0.9, nesterov=False, ns_steps=3,
             ns_coefficients=(3.0, -3.2, 1.2), eps=1e-6, adjust_lr_fn="match_rms_adamw",
             _trained=("w1", "w2"), _ns_native=True),
        "muon:lr=0.05,weight_decay=0.01,momentum=0.9,nesterov=false,ns_steps=3,ns_a=3,ns_b=-3.2,"
        "ns_c=1.2,eps=1e-6,adjust_lr_fn=match_rms_adamw,ns_dtype=native",
    ),
    (
        "muon_native_spectral",
        "Muon",
        dict(lr=0.02, adjust_lr_fn="spectral_unclamped", _trained=("w1", "w2"), _ns_native=True),
        "muon:lr=0.02,adjust_lr_fn=spectral_unclamped,ns_dtype=native",
    ),
    (
        "muon_bf16",
        "Muon",
        dict(lr=0.02, _trained=("w1", "w2")),
        "muon:lr=0.02",
    ),
    # L-BFGS takes a closure; each of the 50 steps runs up to max_iter iterations. In the flat
    # valleys of this many-minima problem its iterates amplify rounding (10x every two steps), so
    # its f64 runs carry a twin started 2^-50 away (`twin_params`): how far apart the two are is
    # how far rounding alone carries a run, and the tests compare while that is below 1e-6.
    ("lbfgs", "LBFGS", dict(lr=0.1, max_iter=5), "lbfgs:lr=0.1,max_iter=5"),
    (
        "lbfgs_strong_wolfe",
        "LBFGS",
        dict(lr=1.0, max_iter=4, history_size=5, line_search_fn="strong_wolfe"),
        "lbfgs:lr=1,max_iter=4,history_size=5,line_search_fn=strong_wolfe",
    ),
    (
        "lbfgs_options",
        "LBFGS",
        dict(lr=0.5, max_iter=6, max_eval=7, tolerance_grad=1e-4, tolerance_change=1e-6,
             history_size=2, line_search_fn="strong_wolfe"),
        "lbfgs:lr=0.5,max_iter=6,max_eval=7,tolerance_grad=1e-4,tolerance_change=1e-6,"
        "history_size=2,line_search_fn=strong_wolfe",
    ),
    ("schedulefree_adamw", "schedulefree.AdamWScheduleFree", dict(lr=0.01),
     "schedulefree_adamw:lr=0.01"),
    (
        "schedulefree_adamw_options",
        "schedulefree.AdamWScheduleFree",
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, warmup_steps=10, r=0.5,
             weight_lr_power=1.0),
        "schedulefree_adamw:lr=0.02,beta1=0.8,beta2=0.99,eps=1e-6,weight_decay=0.01,"
        "warmup_steps=10,r=0.5,weight_lr_power=1",
    ),
    ("schedulefree_sgd", "schedulefree.SGDScheduleFree", dict(lr=0.1), "schedulefree_sgd:lr=0.1"),
    (
        "schedulefree_sgd_options",
        "schedulefree.SGDScheduleFree",
        dict(lr=0.2, momentum=0.8, weight_decay=0.01, warmup_steps=5, r=1.0, weight_lr_power=2.0),
        "schedulefree_sgd:lr=0.2,momentum=0.8,weight_decay=0.01,warmup_steps=5,r=1,weight_lr_power=2",
    ),
    (
        "adamw_maximize",
        "AdamW",
        dict(lr=0.01, weight_decay=0.1, maximize=True),
        "adamw:lr=0.01,weight_decay=0.1,maximize=true",
    ),
]

DTYPES = (("f64", torch.float64), ("f32", torch.float32))

# Schedule-Free runs switch to evaluation and back before this step (as a loop that evaluates
# does), and record the evaluation point x (`{param}.eval`) and z after the last step.
SWITCH_AT = 25

# State buffers that do not feed back into the parameters, recorded after the last step so the
# tests check them too: ASGD's running average of the iterates.
FINAL_STATE = {"ASGD": ("ax",)}


def make_problem():
    rng = np.random.default_rng(SEED)
    X = rng.uniform(-1.0, 1.0, size=(8, 3))
    y = rng.uniform(-1.0, 1.0, size=(8, 1))
    w1 = rng.normal(0.0, 0.7, size=(3, 4))
    w2 = rng.normal(0.0, 0.7, size=(4, 1))
    b1 = rng.normal(0.0, 0.1, size=(4,))
    return {"X": X, "y": y, "w1": w1, "b1": b1, "w2": w2}


def loss_fn(X, y, w1, b1, w2):
    return ((torch.tanh(X @ w1 + b1) @ w2 - y) ** 2).mean()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def nested(a):
    return np.asarray(a, dtype=np.float64).tolist()


def muon_native_precision():
    """torch.optim.Muon runs its Newton-Schulz iteration in bfloat16; this variant runs it in
    the parameter's dtype, every other line PyTorch's, so that a run can be checked to f64/f32
    precision (Taper's ``ns_dtype=native``)."""
    from torch.optim import _muon

    def zeropower(grad, ns_coefficients, ns_steps, eps):
        a, b, c = ns_coefficients
        x = grad.clone()
        if grad.size(0) > grad.size(1):
            x = x.T
        x.div_(x.norm().clamp(min=eps))
        for _ in range(ns_steps):
            gram = x @ x.T
            update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.addmm(x, update, x, beta=a)
        if grad.size(0) > grad.size(1):
            x = x.T
        return x

    return zeropower


def run_config(prob, cls_name, kwargs, dtype, perturb=0.0):
    X = torch.tensor(prob["X"], dtype=torch.float64).to(dtype)
    y = torch.tensor(prob["y"], dtype=torch.float64).to(dtype)
    params = {
        n: (torch.tensor(prob[n], dtype=torch.float64) * (1.0 + perturb)).to(dtype).requires_grad_(True)
        for n in PARAM_NAMES
    }
    kwargs = dict(kwargs)
    trained = kwargs.pop("_trained", PARAM_NAMES)
    native = kwargs.pop("_ns_native", False)
    schedule_free = cls_name.startswith("schedulefree.")
    if schedule_free:
        import schedulefree

        cls = getattr(schedulefree, cls_name.split(".")[1])
    else:
        cls = getattr(torch.optim, cls_name)
    if cls_name == "Muon":
        from torch.optim import _muon

        original = _muon._zeropower_via_newtonschulz
        _muon._zeropower_via_newtonschulz = muon_native_precision() if native else original
        opt = cls([params[n] for n in trained], **kwargs)
    elif cls_name == "LBFGS":
        opt = cls([params[n] for n in trained], **kwargs)
    else:
        opt = cls([params[n] for n in trained], foreach=False, **kwargs)
    if schedule_free:
        opt.train()
    losses, snaps = [], []
    for step in range(STEPS):
        if schedule_free and step == SWITCH_AT:
            # What a training loop does to evaluate: to x and back to y.
            opt.eval()
            opt.train()
        if cls_name == "LBFGS":
            # Closure-driven: the loss of the closure's first evaluation is the step's.
            def closure():
                opt.zero_grad()
                value = loss_fn(X, y, params["w1"], params["b1"], params["w2"])
                value.backward()
                return value

            losses.append(float(opt.step(closure).item()))
            snaps.append({n: flat(params[n]) for n in PARAM_NAMES})
            continue
        loss = loss_fn(X, y, params["w1"], params["b1"], params["w2"])
        losses.append(float(loss.item()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        snaps.append({n: flat(params[n]) for n in PARAM_NAMES})
    if cls_name == "Muon":
        _muon._zeropower_via_newtonschulz = original
    if schedule_free:
        opt.eval()
        final = {f"{n}.eval": flat(params[n]) for n in PARAM_NAMES}
        final.update({f"{n}.z": flat(opt.state[params[n]]["z"]) for n in PARAM_NAMES})
        return losses, snaps, final
    final = {
        f"{n}.{b}": flat(opt.state[params[n]][b])
        for b in FINAL_STATE.get(cls_name, ())
        for n in PARAM_NAMES
    }
    return losses, snaps, final


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    prob = make_problem()

    # Initial loss and gradient (f64) for checking autodiff.
    X = torch.tensor(prob["X"], dtype=torch.float64)
    y = torch.tensor(prob["y"], dtype=torch.float64)
    p = {n: torch.tensor(prob[n], dtype=torch.float64, requires_grad=True) for n in PARAM_NAMES}
    l0 = loss_fn(X, y, p["w1"], p["b1"], p["w2"])
    l0.backward()
    initial_loss = float(l0.item())
    initial_grads = {n: flat(p[n].grad) for n in PARAM_NAMES}

    runs = []
    for name, cls_name, kwargs, spec in CONFIGS:
        for dname, dtype in DTYPES:
            losses, snaps, final = run_config(prob, cls_name, kwargs, dtype)
            for v in losses:
                if not math.isfinite(v):
                    sys.exit(f"non-finite loss in {name} {dname}")
            runs.append(
                {
                    "name": name,
                    "spec": spec,
                    "dtype": dname,
                    "losses": losses,
                    "params": snaps,
                }
            )
            if "_trained" in kwargs:
                runs[-1]["trained"] = list(kwargs["_trained"])
            if cls_name == "LBFGS" and dname == "f64":
                runs[-1]["twin_params"] = run_config(prob, cls_name, kwargs, dtype, 2.0**-50)[1]
            if final:
                runs[-1]["final_state"] = final

    out = {
        "generator": GENERATOR,
        "torch_version": torch.__version__,
        "problem": {
            "X": nested(prob["X"]),
            "y": nested(prob["y"]),
            "w1": nested(prob["w1"]),
            "b1": nested(prob["b1"]),
            "w2": nested(prob["w2"]),
            "shapes": {
                "X": [8, 3],
                "y": [8, 1],
                "w1": [3, 4],
                "b1": [4],
                "w2": [4, 1],
            },
            "loss": "mean((tanh(X@w1+b1)@w2 - y)^2)",
            "param_order": list(PARAM_NAMES),
            "steps": STEPS,
            "initial_loss": initial_loss,
            "initial_grads": initial_grads,
        },
        "runs": runs,
    }

    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w") as f:
        f.write("{\n")
        keys = list(out.keys())
        for i, k in enumerate(keys):
            sep = "," if i + 1 < len(keys) else ""
            if k == "runs":
                f.write(' "runs": [\n')
                for j, r in enumerate(runs):
                    rsep = "," if j + 1 < len(runs) else ""
                    f.write("  " + json.dumps(r, separators=(",", ":")) + rsep + "\n")
                f.write(" ]" + sep + "\n")
            else:
                f.write(" " + json.dumps(k) + ": " + json.dumps(out[k], separators=(",", ":")) + sep + "\n")
        f.write("}\n")
    print(f"wrote {OUT_PATH} ({len(runs)} runs, {os.path.getsize(OUT_PATH)} bytes)")


if __name__ == "__main__":
    main()
