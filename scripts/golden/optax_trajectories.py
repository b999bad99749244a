"""Golden optimizer trajectories from optax, for Taper's optimizers that follow optax.

Produces ``tests/golden/optax_trajectories.json``, in the format of
``tests/golden/optim_trajectories.json`` and on the same problem (read from that file, so that
both references train the very same network on the very same data):

    loss(w1, b1, w2) = mean((tanh(X @ w1 + b1) @ w2 - y)^2)

For every configuration in CONFIGS and every dtype in (f64, f32), optax's transformation is
applied for 50 steps (loss, grad, update, apply_updates) with JAX in 64-bit mode; each run records
the loss before every step and all parameters (flat, row-major) after every step.

Run from the repository root, in the venv of the other golden scripts with jax and optax added:

    ~/.cache/taper-ref/bin/pip install jax optax
    ~/.cache/taper-ref/bin/python scripts/golden/optax_trajectories.py

(generated with optax 0.2.8, jax 0.10.2, CPU only.)
"""

import json
import os

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

STEPS = 50
PROBLEM_FROM = os.path.join("tests", "golden", "optim_trajectories.json")
OUT_PATH = os.path.join("tests", "golden", "optax_trajectories.json")
GENERATOR = "scripts/golden/optax_trajectories.py"
PARAM_NAMES = ("w1", "b1", "w2")

# (name, optax constructor, kwargs, Taper spec): every option stated that differs from optax's
# default, and the learning rate always (optax requires it).
CONFIGS = [
    ("lion", optax.lion, dict(learning_rate=0.01), "lion:lr=0.01"),
    (
        "lion_betas_wd",
        optax.lion,
        dict(learning_rate=0.003, b1=0.95, b2=0.98, weight_decay=0.1),
        "lion:lr=0.003,b1=0.95,b2=0.98,weight_decay=0.1",
    ),
    ("lion_no_wd", optax.lion, dict(learning_rate=0.02, weight_decay=0.0), "lion:lr=0.02,weight_decay=0"),
    ("adabelief", optax.adabelief, dict(learning_rate=0.01), "adabelief:lr=0.01"),
    (
        "adabelief_nesterov_eps",
        optax.adabelief,
        dict(learning_rate=0.01, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-10, nesterov=True),
        "adabelief:lr=0.01,b1=0.8,b2=0.99,eps=1e-8,eps_root=1e-10,nesterov=true",
    ),
    ("yogi", optax.yogi, dict(learning_rate=0.01), "yogi:lr=0.01"),
    (
        "yogi_betas_eps",
        optax.yogi,
        dict(learning_rate=0.02, b1=0.8, b2=0.99, eps=1e-4),
        "yogi:lr=0.02,b1=0.8,b2=0.99,eps=1e-4",
    ),
    (
        "yogi_eps_root_initial",
        lambda learning_rate, **kw: optax.chain(
            optax.scale_by_yogi(**kw), optax.scale_by_learning_rate(learning_rate)
        ),
        dict(learning_rate=0.01, eps_root=1e-8, initial_accumulator_value=0.01),
        "yogi:lr=0.01,eps_root=1e-8,initial_accumulator_value=0.01",
    ),
    ("adan", optax.adan, dict(learning_rate=0.01), "adan:lr=0.01"),
    ("lamb", optax.lamb, dict(learning_rate=0.01), "lamb:lr=0.01"),
    (
        "lamb_betas_eps_wd",
        optax.lamb,
        dict(learning_rate=0.02, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-10, weight_decay=0.05),
        "lamb:lr=0.02,b1=0.8,b2=0.99,eps=1e-8,eps_root=1e-10,weight_decay=0.05",
    ),
    (
        "adan_betas_wd",
        optax.adan,
        dict(learning_rate=0.01, b1=0.9, b2=0.8, b3=0.95, eps=1e-6, eps_root=0.0, weight_decay=0.05),
        "adan:lr=0.01,b1=0.9,b2=0.8,b3=0.95,eps=1e-6,eps_root=0,weight_decay=0.05",
    ),
]

DTYPES = (("f64", jnp.float64), ("f32", jnp.float32))


def loss_fn(params, X, y):
    return jnp.mean((jnp.tanh(X @ params["w1"] + params["b1"]) @ params["w2"] - y) ** 2)


def flat(a):
    return [float(v) for v in jnp.reshape(a, (-1,)).tolist()]


def run_config(problem, make, kwargs, dtype):
    shape = problem["shapes"]
    arr = lambda k: jnp.asarray(problem[k], dtype=jnp.float64).reshape(shape[k]).astype(dtype)  # noqa: E731
    X, y = arr("X"), arr("y")
    params = {n: arr(n) for n in PARAM_NAMES}
    opt = make(**kwargs)
    state = opt.init(params)
    value_and_grad = jax.value_and_grad(loss_fn)
    losses, snaps = [], []
    for _ in range(STEPS):
        loss, grads = value_and_grad(params, X, y)
        losses.append(float(loss))
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        snaps.append({n: flat(params[n]) for n in PARAM_NAMES})
    return losses, snaps


def main():
    with open(PROBLEM_FROM) as f:
        problem = json.load(f)["problem"]
    runs = []
    for name, make, kwargs, spec in CONFIGS:
        for dname, dtype in DTYPES:
            losses, snaps = run_config(problem, make, kwargs, dtype)
            runs.append({"name": name, "spec": spec, "dtype": dname, "losses": losses, "params": snaps})
    out = {
        "generator": GENERATOR,
        "optax_version": optax.__version__,
        "jax_version": jax.__version__,
        "problem": problem,
        "runs": runs,
    }
    with open(OUT_PATH, "w") as f:
        json.dump(out, f)
    print(f"wrote {OUT_PATH} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
