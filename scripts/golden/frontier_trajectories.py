"""Golden trajectories of the newer ("frontier") optimizers from their reference implementations,
for Taper's tests.

Produces ``tests/golden/frontier_trajectories.json``, in the format of
``tests/golden/optim_trajectories.json`` (``runs``, read by ``crates/lab/src/golden.rs``) plus 2-D
``traces``.

Run from the repository root:

    ~/.cache/taper-ref/bin/python scripts/golden/frontier_trajectories.py

(the venv of the other golden scripts with the references added:
``~/.cache/taper-ref/bin/pip install timm optax jax prodigyopt dadaptation pytorch_optimizer``;
generated with torch 2.15.0, timm 1.0.31, optax 0.2.8, jax/jaxlib 0.10.2, prodigyopt 1.1.2,
dadaptation 3.2, pytorch_optimizer 4.1.0, numpy 2.4.6, CPU only, and the SOAP authors' ``soap.py``
at commit a1e553530fde97d0e6b307d7c82ac6d38b072340, saved as ``scripts/golden/soap_reference.py``.
Runs on another CPU differ from these in the last bits of f64 and about 1e-7 relative in f32.)

References (every option name and default read from their sources):

- ``timm.optim``: Adopt, Mars, MADGRAD, LaProp, AdamWLegacy (timm's AdamW with ``caution``) and
  Lookahead (over ``torch.optim.Adam`` / ``torch.optim.SGD``); the single-tensor paths
  (``foreach=False`` wherever an optimizer has that option);
- ``optax.contrib.ademamix`` (JAX in 64-bit mode; f32 runs on float32 arrays);
- ``prodigyopt.Prodigy``; ``dadaptation.DAdaptAdam``;
- ``pytorch_optimizer.SAM`` (SAM and, ``adaptive=True``, ASAM) over ``torch.optim.SGD`` / ``Adam``,
  ``foreach=False`` (which it passes on to the base optimizer too), stepped through a closure;
- SOAP (``scripts/golden/soap_reference.py``, the authors' file, unmodified). Its preconditioners
  are made with ``torch.zeros(n, n)`` in the *default* dtype (float32) and cast to float32
  (``.float()``) for ``torch.linalg.eigh`` and ``torch.linalg.qr``; with float64 parameters it
  fails outright (``lerp_`` of a float32 matrix toward a float64 outer product). Every run and
  trace here uses a variant kept in the parameter's dtype: at import time the generator applies
  to the file's text the two replacements in ``SOAP_NATIVE_EDITS`` (``.data.float()`` ->
  ``.data``, five times; ``torch.zeros(..., device=grad.device)`` -> ``..., dtype=grad.dtype)``,
  twice), nothing else. In f32 the variant is the authors' code exactly; the script checks that
  its f32 runs equal the unmodified file's, bit for bit.

Runs: the problem of ``optim_trajectories.json`` (copied from it verbatim), a tiny 2-layer tanh net

    loss(w1, b1, w2) = mean((tanh(X @ w1 + b1) @ w2 - y)^2)

with the parameters [w1, b1, w2] as one param group in that order, trained for 50 steps (loss,
zero_grad, backward, step) in f64 and in f32 (parameters and data cast to float32). Each run
records the loss before every step and all parameters (flat, row-major) after every step. SAM
steps through a closure that zeroes the gradients and recomputes loss and gradients; its
gradients at the current point are computed first (the closure's first evaluation, whose loss is
the step's), then ``step(closure)`` perturbs, re-evaluates and restores. SOAP's default run trains
w1 and b1 only (``trained``; w2 stays put): w2 is [4, 1], so its left preconditioner is a 4x4
matrix of rank one at the first step, whose eigenvectors (SOAP's basis) in the 3-dimensional null
space are whatever LAPACK returns; they change the run from the second step on and could not be
reproduced. The runs with ``max_precond_dim=3`` precondition only w1's 3x3 side and w2's 1x1 side.

Three runs are f64 only (``dtypes`` in CONFIGS), because PyTorch's own f32 run leaves its f64 run
from the first steps (golden.rs checks an f32 run against the f64 one, for at least 25 steps):
Prodigy with its default d0=1e-6 (its first steps move the parameters by ~1e-6, so in f32 the
p0 - p of its numerator is rounding noise and d is 5e-4 off from step 2 on), and SOAP's default
(its second step sees the first step's gradient, which in the eigenbases of both sides of w1 is
diagonal: the other entries are rounding noise, which Adam's normalisation turns into full-size
steps where it exceeds eps=1e-8, as f32 noise does; f64 noise moves the run by ~2e-10), and ADOPT
without clipping (f32 rounding of tiny gradient entries, normalized by their own tiny history,
passes 1e-5 by step 4; see its entry). Every other configuration's f32 run stays within 3e-6 of its f64 run for all 50 steps.

Two references round in float32 inside f64 runs, left as they are (each moves an f64 run by at
most 4e-8 relative against the same rule computed in f64): pytorch_optimizer's SAM takes the
global gradient norm in float32 (``get_global_gradient_norm``: ``torch.stack(norms).float()``),
and timm's LaProp keeps its second-moment bias correction ``exp_avg_lr_2`` as a scalar tensor of
the default dtype (float32). D-Adaptation Adam's default run takes lr=0.3: with lr=1 PyTorch's
own f32 run leaves its f64 run (2e-5 by step 19); its trace keeps lr=1.

Traces: d2l's f(x) = 0.1 x1^2 + 2 x2^2 (chapter 7), x ONE parameter of shape [1, 2] (a 1x2 matrix)
starting at [[-5, -2]], float64, 30 steps; ``points`` are the start and x after each step, as
[x1, x2]. A trace's spec (its learning rate) may differ from the run's of the same name.

The ``spec`` strings use Taper's format ``name:key=value,...`` (tuples split into ``beta1``/
``beta2``/..., ``beta1_1d``/``beta2_1d``; booleans ``true``/``false``; timm's ``caution`` is
``cautious``; nested optimizers ``optimizer=name(key=value,...)``), lr always stated. Each run and
trace names its reference call in ``reference``.

The output is deterministic (CPU, one thread).
"""

import contextlib
import importlib.metadata
import io
import json
import math
import os
import sys
import types

import numpy as np
import torch

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import dadaptation  # noqa: E402
import prodigyopt  # noqa: E402
import pytorch_optimizer  # noqa: E402
import timm.optim  # noqa: E402

STEPS = 50
TRACE_STEPS = 30
TRACE_START = [[-5.0, -2.0]]
TRACE_COEF = [[0.1, 2.0]]
PROBLEM_FROM = os.path.join("tests", "golden", "optim_trajectories.json")
OUT_PATH = os.path.join("tests", "golden", "frontier_trajectories.json")
GENERATOR = "scripts/golden/frontier_trajectories.py"
PARAM_NAMES = ("w1", "b1", "w2")

SOAP_PATH = os.path.join("scripts", "golden", "soap_reference.py")
SOAP_SOURCE = "https://github.com/nikhilvyas/SOAP/blob/a1e553530fde97d0e6b307d7c82ac6d38b072340/soap.py"
# (old, new, occurrences): SOAP's preconditioners in the parameter's dtype, not float32.
SOAP_NATIVE_EDITS = (
    (".data.float()", ".data", 5),
    ("device=grad.device)", "device=grad.device, dtype=grad.dtype)", 2),
)


def load_soap(native):
    """The SOAP class of ``soap_reference.py``; ``native``: with SOAP_NATIVE_EDITS applied."""
    with open(SOAP_PATH) as f:
        source = f.read()
    if native:
        for old, new, count in SOAP_NATIVE_EDITS:
            if source.count(old) != count:
                sys.exit(f"{SOAP_PATH}: expected {count} of {old!r}, found {source.count(old)}")
            source = source.replace(old, new)
    module = types.ModuleType("soap_native" if native else "soap_reference")
    module.__file__ = SOAP_PATH
    exec(compile(source, SOAP_PATH, "exec"), module.__dict__)
    return module.SOAP


SOAP_NATIVE = load_soap(native=True)
SOAP_AUTHORS = load_soap(native=False)


# --- references --------------------------------------------------------------------------------
# Each builder takes the parameter list and the config's kwargs and returns (optimizer, the call
# as a string). Options passed on every call (foreach=False) are part of the string.


def _call(qualname, kwargs, extra=None):
    kw = dict(kwargs)
    kw.update(extra or {})
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    return f"{qualname}(params{', ' if args else ''}{args})"


def timm_class(cls_name, foreach=True):
    cls = getattr(timm.optim, cls_name)
    extra = {"foreach": False} if foreach else {}

    def build(params, kwargs):
        return cls(params, **kwargs, **extra), _call(f"timm.optim.{cls_name}", kwargs, extra)

    return build


def prodigy(params, kwargs):
    return prodigyopt.Prodigy(params, **kwargs), _call("prodigyopt.Prodigy", kwargs)


def dadapt_adam(params, kwargs):
    return dadaptation.DAdaptAdam(params, **kwargs), _call("dadaptation.DAdaptAdam", kwargs)


def soap(params, kwargs):
    return SOAP_NATIVE(params, **kwargs), _call("SOAP", kwargs) + " [soap_reference.py, parameter dtype]"


def soap_authors(params, kwargs):
    return SOAP_AUTHORS(params, **kwargs), _call("SOAP", kwargs)


def lookahead(params, kwargs):
    kwargs = dict(kwargs)
    base_name, base_kwargs = kwargs.pop("optimizer")
    base = getattr(torch.optim, base_name)(params, foreach=False, **base_kwargs)
    text = _call(f"torch.optim.{base_name}", base_kwargs, {"foreach": False})
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return timm.optim.Lookahead(base, **kwargs), f"timm.optim.Lookahead({text}, {args})"


def sam(params, kwargs):
    kwargs = dict(kwargs)
    base_name = kwargs.pop("base_optimizer")
    base = getattr(torch.optim, base_name)
    opt = pytorch_optimizer.SAM(params, base_optimizer=base, foreach=False, **kwargs)
    text = _call("pytorch_optimizer.SAM", {"base_optimizer": f"torch.optim.{base_name}", **kwargs},
                 {"foreach": False}).replace("'torch.optim." + base_name + "'", "torch.optim." + base_name)
    return opt, text


def ademamix(_params, kwargs):
    return optax.contrib.ademamix(**kwargs), "optax.contrib." + _call("ademamix", kwargs).replace("(params, ", "(")


# (name, builder, run kwargs, run spec, trace kwargs, trace spec[, extras]): every option stated
# that differs from the reference's default, and the learning rate always.
CONFIGS = [
    # ADOPT (timm): the first step only fills exp_avg_sq with g^2 (no parameter change).
    ("adopt", timm_class("Adopt"), dict(lr=0.1), "adopt:lr=0.1",
     dict(lr=0.5), "adopt:lr=0.5"),
    (
        "adopt_options",
        timm_class("Adopt"),
        dict(lr=0.05, betas=(0.8, 0.99), eps=1e-5, clip_exp=None, weight_decay=0.05, decoupled=True),
        "adopt:lr=0.05,beta1=0.8,beta2=0.99,eps=1e-5,clip_exp=none,weight_decay=0.05,decoupled=true",
        dict(lr=0.3, betas=(0.8, 0.99), eps=1e-5, clip_exp=None, weight_decay=0.05, decoupled=True),
        "adopt:lr=0.3,beta1=0.8,beta2=0.99,eps=1e-5,clip_exp=none,weight_decay=0.05,decoupled=true",
        # Without clipping, ADOPT divides tiny gradient entries by their own tiny history: one
        # f32 rounding of the decoupled decay (p*(1-lr*wd) against p + p*(-lr*wd)) grows past
        # 1e-5 by step 4, so this configuration runs in f64 only.
        dict(dtypes=("f64",)),
    ),
    (
        "adopt_l2_cautious",
        timm_class("Adopt"),
        dict(lr=0.05, weight_decay=0.05, caution=True),
        "adopt:lr=0.05,weight_decay=0.05,cautious=true",
        dict(lr=0.3, weight_decay=0.05, caution=True),
        "adopt:lr=0.3,weight_decay=0.05,cautious=true",
    ),
    # MARS (timm): matrices (ndim >= 2) take the MARS rule, 1-D parameters AdamW with betas_1d
    # and lr * lr_1d_factor unless optimize_1d.
    ("mars", timm_class("Mars", foreach=False), dict(lr=0.01), "mars:lr=0.01",
     dict(lr=0.3), "mars:lr=0.3"),
    (
        "mars_lion",
        timm_class("Mars", foreach=False),
        dict(lr=0.01, mars_type="lion", weight_decay=0.1, gamma=0.05),
        "mars:lr=0.01,mars_type=lion,weight_decay=0.1,gamma=0.05",
        dict(lr=0.2, mars_type="lion", weight_decay=0.1, gamma=0.05),
        "mars:lr=0.2,mars_type=lion,weight_decay=0.1,gamma=0.05",
    ),
    (
        "mars_optimize_1d",
        timm_class("Mars", foreach=False),
        dict(lr=0.01, optimize_1d=True, betas=(0.9, 0.95)),
        "mars:lr=0.01,optimize_1d=true,beta1=0.9,beta2=0.95",
        dict(lr=0.3, optimize_1d=True, betas=(0.9, 0.95)),
        "mars:lr=0.3,optimize_1d=true,beta1=0.9,beta2=0.95",
    ),
    (
        "mars_1d_betas_cautious",
        timm_class("Mars", foreach=False),
        dict(lr=0.01, lr_1d_factor=0.5, betas_1d=(0.8, 0.9), caution=True),
        "mars:lr=0.01,lr_1d_factor=0.5,beta1_1d=0.8,beta2_1d=0.9,cautious=true",
        dict(lr=0.3, lr_1d_factor=0.5, betas_1d=(0.8, 0.9), caution=True),
        "mars:lr=0.3,lr_1d_factor=0.5,beta1_1d=0.8,beta2_1d=0.9,cautious=true",
    ),
    # MADGRAD (timm's copy of facebookresearch/madgrad): the effective lr is lr + eps.
    ("madgrad", timm_class("MADGRAD", foreach=False), dict(lr=0.01), "madgrad:lr=0.01",
     dict(lr=0.1), "madgrad:lr=0.1"),
    (
        "madgrad_no_momentum_decoupled",
        timm_class("MADGRAD", foreach=False),
        dict(lr=0.01, momentum=0.0, weight_decay=0.05, decoupled_decay=True),
        "madgrad:lr=0.01,momentum=0,weight_decay=0.05,decoupled_decay=true",
        dict(lr=0.1, momentum=0.0, weight_decay=0.05, decoupled_decay=True),
        "madgrad:lr=0.1,momentum=0,weight_decay=0.05,decoupled_decay=true",
    ),
    (
        "madgrad_l2",
        timm_class("MADGRAD", foreach=False),
        dict(lr=0.01, momentum=0.5, weight_decay=0.05, eps=1e-5),
        "madgrad:lr=0.01,momentum=0.5,weight_decay=0.05,eps=1e-5",
        dict(lr=0.1, momentum=0.5, weight_decay=0.05, eps=1e-5),
        "madgrad:lr=0.1,momentum=0.5,weight_decay=0.05,eps=1e-5",
    ),
    # LaProp (timm).
    ("laprop", timm_class("LaProp"), dict(lr=0.01), "laprop:lr=0.01",
     dict(lr=0.3), "laprop:lr=0.3"),
    (
        "laprop_wd_cautious",
        timm_class("LaProp"),
        dict(lr=0.01, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.1, caution=True),
        "laprop:lr=0.01,beta1=0.8,beta2=0.95,eps=1e-8,weight_decay=0.1,cautious=true",
        dict(lr=0.3, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.1, caution=True),
        "laprop:lr=0.3,beta1=0.8,beta2=0.95,eps=1e-8,weight_decay=0.1,cautious=true",
    ),
    # AdEMAMix (optax.contrib).
    ("ademamix", ademamix, dict(learning_rate=0.01), "ademamix:lr=0.01",
     dict(learning_rate=0.3), "ademamix:lr=0.3"),
    (
        "ademamix_options",
        ademamix,
        dict(learning_rate=0.01, b1=0.8, b2=0.99, b3=0.999, alpha=8.0, eps=1e-6, eps_root=1e-9,
             weight_decay=0.05),
        "ademamix:lr=0.01,b1=0.8,b2=0.99,b3=0.999,alpha=8,eps=1e-6,eps_root=1e-9,weight_decay=0.05",
        dict(learning_rate=0.1, b1=0.8, b2=0.99, b3=0.999, alpha=8.0, eps=1e-6, eps_root=1e-9,
             weight_decay=0.05),
        "ademamix:lr=0.1,b1=0.8,b2=0.99,b3=0.999,alpha=8,eps=1e-6,eps_root=1e-9,weight_decay=0.05",
    ),
    # Prodigy: one d for the whole param group (all three parameters). With the default d0=1e-6
    # the first steps move the parameters by ~1e-6, so in f32 p0 - p (Prodigy's numerator) is
    # rounding noise and d is 5e-4 off from step 2 on: the default runs in f64 only.
    ("prodigy", prodigy, dict(lr=1.0), "prodigy:lr=1", dict(lr=1.0), "prodigy:lr=1",
     dict(dtypes=("f64",))),
    (
        "prodigy_options",
        prodigy,
        dict(lr=1.0, d0=1e-3, use_bias_correction=True, safeguard_warmup=True, weight_decay=0.01,
             betas=(0.9, 0.99)),
        "prodigy:lr=1,d0=1e-3,use_bias_correction=true,safeguard_warmup=true,weight_decay=0.01,"
        "beta1=0.9,beta2=0.99",
        dict(lr=1.0, d0=1e-3, use_bias_correction=True, safeguard_warmup=True, weight_decay=0.01,
             betas=(0.9, 0.99)),
        "prodigy:lr=1,d0=1e-3,use_bias_correction=true,safeguard_warmup=true,weight_decay=0.01,"
        "beta1=0.9,beta2=0.99",
    ),
    # growth_rate=1.05 from the default d0=1e-6 would leave d at 1e-5 after 50 steps (the loss
    # barely moves): d0=1e-3 here.
    (
        "prodigy_coupled_beta3_growth",
        prodigy,
        dict(lr=0.5, d0=1e-3, weight_decay=0.01, decouple=False, beta3=0.9, growth_rate=1.05),
        "prodigy:lr=0.5,d0=1e-3,weight_decay=0.01,decouple=false,beta3=0.9,growth_rate=1.05",
        dict(lr=1.0, d0=1e-2, weight_decay=0.01, decouple=False, beta3=0.9, growth_rate=1.05),
        "prodigy:lr=1,d0=1e-2,weight_decay=0.01,decouple=false,beta3=0.9,growth_rate=1.05",
    ),
    # D-Adaptation Adam: one d for the whole param group.
    # lr=0.3 (not 1) for the runs: with lr=1 PyTorch's own f32 run leaves its f64 run (2e-5 by
    # step 19) and could not be checked; at 0.3 they stay within 1e-6.
    ("dadapt_adam", dadapt_adam, dict(lr=0.3), "dadapt_adam:lr=0.3", dict(lr=1.0), "dadapt_adam:lr=1"),
    (
        "dadapt_adam_options",
        dadapt_adam,
        dict(lr=1.0, d0=1e-3, use_bias_correction=True, weight_decay=0.01, decouple=True,
             betas=(0.9, 0.99)),
        "dadapt_adam:lr=1,d0=1e-3,use_bias_correction=true,weight_decay=0.01,decouple=true,"
        "beta1=0.9,beta2=0.99",
        dict(lr=1.0, d0=1e-3, use_bias_correction=True, weight_decay=0.01, decouple=True,
             betas=(0.9, 0.99)),
        "dadapt_adam:lr=1,d0=1e-3,use_bias_correction=true,weight_decay=0.01,decouple=true,"
        "beta1=0.9,beta2=0.99",
    ),
    # SOAP (the authors' soap.py in the parameter's dtype, see above). The first step only builds
    # the preconditioners (no parameter change, no weight decay, step count stays 0); the second
    # sees the same gradient, which in the eigenbases of both of a matrix's sides is diagonal:
    # its other entries are rounding noise, which Adam's normalisation turns into full-size
    # steps where the noise exceeds eps (1e-8): in f32 it does, so the default runs in f64 only
    # (f64 noise, ~1e-17, moves a run by 2e-10). Trains w1 and b1 only (see above).
    (
        "soap",
        soap,
        dict(lr=0.01, betas=(0.95, 0.95), weight_decay=0.01, precondition_frequency=10),
        "soap:lr=0.01,beta1=0.95,beta2=0.95,weight_decay=0.01,precondition_frequency=10",
        dict(lr=0.3, betas=(0.95, 0.95), weight_decay=0.01, precondition_frequency=10),
        "soap:lr=0.3,beta1=0.95,beta2=0.95,weight_decay=0.01,precondition_frequency=10",
        dict(trained=("w1", "b1"), dtypes=("f64",)),
    ),
    (
        "soap_options",
        soap,
        dict(lr=0.01, betas=(0.9, 0.99), shampoo_beta=0.9, eps=1e-7, weight_decay=0.0,
             precondition_frequency=3, max_precond_dim=3, precondition_1d=True,
             normalize_grads=False, correct_bias=False),
        "soap:lr=0.01,beta1=0.9,beta2=0.99,shampoo_beta=0.9,eps=1e-7,weight_decay=0,"
        "precondition_frequency=3,max_precond_dim=3,precondition_1d=true,correct_bias=false",
        dict(lr=0.3, betas=(0.9, 0.99), shampoo_beta=0.9, eps=1e-7, weight_decay=0.0,
             precondition_frequency=3, max_precond_dim=3, precondition_1d=True,
             normalize_grads=False, correct_bias=False),
        "soap:lr=0.3,beta1=0.9,beta2=0.99,shampoo_beta=0.9,eps=1e-7,weight_decay=0,"
        "precondition_frequency=3,max_precond_dim=3,precondition_1d=true,correct_bias=false",
    ),
    # timm's AdamW (AdamWLegacy, the one with `caution`).
    (
        "adamw_cautious",
        timm_class("AdamWLegacy"),
        dict(lr=0.01, weight_decay=0.05, caution=True),
        "adamw:lr=0.01,weight_decay=0.05,cautious=true",
        dict(lr=0.3, weight_decay=0.05, caution=True),
        "adamw:lr=0.3,weight_decay=0.05,cautious=true",
    ),
    # Lookahead (timm) over torch.optim (foreach=False).
    (
        "lookahead_adam",
        lookahead,
        dict(optimizer=("Adam", dict(lr=0.05)), alpha=0.5, k=6),
        "lookahead:k=6,alpha=0.5,optimizer=adam(lr=0.05)",
        dict(optimizer=("Adam", dict(lr=0.5)), alpha=0.5, k=6),
        "lookahead:k=6,alpha=0.5,optimizer=adam(lr=0.5)",
    ),
    (
        "lookahead_sgd_momentum",
        lookahead,
        dict(optimizer=("SGD", dict(lr=0.05, momentum=0.9)), alpha=0.8, k=3),
        "lookahead:k=3,alpha=0.8,optimizer=sgd(lr=0.05,momentum=0.9)",
        dict(optimizer=("SGD", dict(lr=0.1, momentum=0.9)), alpha=0.8, k=3),
        "lookahead:k=3,alpha=0.8,optimizer=sgd(lr=0.1,momentum=0.9)",
    ),
    # SAM / ASAM (pytorch_optimizer), closure-driven.
    (
        "sam_sgd_momentum",
        sam,
        dict(base_optimizer="SGD", rho=0.05, adaptive=False, lr=0.1, momentum=0.9),
        "sam:rho=0.05,adaptive=false,optimizer=sgd(lr=0.1,momentum=0.9)",
        dict(base_optimizer="SGD", rho=0.05, adaptive=False, lr=0.1, momentum=0.9),
        "sam:rho=0.05,adaptive=false,optimizer=sgd(lr=0.1,momentum=0.9)",
    ),
    (
        "asam_adam",
        sam,
        dict(base_optimizer="Adam", rho=0.5, adaptive=True, lr=0.05),
        "sam:rho=0.5,adaptive=true,optimizer=adam(lr=0.05)",
        dict(base_optimizer="Adam", rho=0.5, adaptive=True, lr=0.5),
        "sam:rho=0.5,adaptive=true,optimizer=adam(lr=0.5)",
    ),
]

DTYPES = (("f64", torch.float64), ("f32", torch.float32))
JAX_DTYPES = {"f64": jnp.float64, "f32": jnp.float32}


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def torch_loop(builder, kwargs, params, loss_of, steps, record):
    """Trains ``params`` (a list) with the reference for ``steps`` steps; returns the losses, the
    ``record()`` after every step and the reference call."""
    with contextlib.redirect_stdout(io.StringIO()):  # "Using decoupled weight decay"
        opt, text = builder(params, kwargs)
    closure_driven = builder is sam
    losses, snaps = [], []
    for _ in range(steps):
        if closure_driven:
            def closure():
                for p in params:
                    p.grad = None
                value = loss_of()
                value.backward()
                return value

            # Gradients at the current point (the closure's first evaluation: the step's loss),
            # then perturb, re-evaluate at the perturbed point, restore and take the base step.
            losses.append(float(closure().item()))
            opt.step(closure)
        else:
            loss = loss_of()
            losses.append(float(loss.item()))
            for p in params:  # zero_grad (set_to_none)
                p.grad = None
            loss.backward()
            opt.step()
        snaps.append(record())
    return losses, snaps, text


def torch_run(problem, builder, kwargs, dtype, trained=PARAM_NAMES):
    shape = problem["shapes"]

    def tensor(k):
        return torch.tensor(problem[k], dtype=torch.float64).reshape(shape[k]).to(dtype)

    X, y = tensor("X"), tensor("y")
    params = {n: tensor(n).requires_grad_(True) for n in PARAM_NAMES}

    def loss_of():
        return ((torch.tanh(X @ params["w1"] + params["b1"]) @ params["w2"] - y) ** 2).mean()

    return torch_loop(builder, kwargs, [params[n] for n in trained], loss_of, STEPS,
                      lambda: {n: flat(params[n]) for n in PARAM_NAMES})


def torch_trace(builder, kwargs):
    x = torch.tensor(TRACE_START, dtype=torch.float64, requires_grad=True)
    coef = torch.tensor(TRACE_COEF, dtype=torch.float64)
    start = flat(x)
    _, points, text = torch_loop(builder, kwargs, [x], lambda: (coef * x**2).sum(), TRACE_STEPS,
                                 lambda: flat(x))
    return [start] + points, text


def jax_loop(opt, params, loss_fn, steps, record):
    state = opt.init(params)
    value_and_grad = jax.value_and_grad(loss_fn)
    losses, snaps = [], []
    for _ in range(steps):
        loss, grads = value_and_grad(params)
        losses.append(float(loss))
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        snaps.append(record(params))
    return losses, snaps


def jax_flat(a):
    return [float(v) for v in jnp.reshape(a, (-1,)).tolist()]


def jax_run(problem, kwargs, dname):
    dtype = JAX_DTYPES[dname]
    shape = problem["shapes"]
    arr = lambda k: jnp.asarray(problem[k], dtype=jnp.float64).reshape(shape[k]).astype(dtype)  # noqa: E731
    X, y = arr("X"), arr("y")

    def loss_fn(p):
        return jnp.mean((jnp.tanh(X @ p["w1"] + p["b1"]) @ p["w2"] - y) ** 2)

    opt, text = ademamix(None, kwargs)
    losses, snaps = jax_loop(opt, {n: arr(n) for n in PARAM_NAMES}, loss_fn, STEPS,
                             lambda p: {n: jax_flat(p[n]) for n in PARAM_NAMES})
    return losses, snaps, text


def jax_trace(kwargs):
    x = jnp.asarray(TRACE_START, dtype=jnp.float64)
    coef = jnp.asarray(TRACE_COEF, dtype=jnp.float64)
    opt, text = ademamix(None, kwargs)
    _, points = jax_loop(opt, x, lambda p: jnp.sum(coef * p**2), TRACE_STEPS, jax_flat)
    return [jax_flat(x)] + points, text


def drift(a, b):
    """``max |a - b| / max |b|`` over the parameters of two snapshots (golden.rs's ``rel``)."""
    worst = 0.0
    for n in PARAM_NAMES:
        x, y = np.asarray(a[n]), np.asarray(b[n])
        worst = max(worst, float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(y))), 1e-12)))
    return worst


def versions():
    out = {}
    for pkg in ("torch", "timm", "optax", "jax", "jaxlib", "prodigyopt", "dadaptation",
                "pytorch_optimizer", "numpy"):
        out[pkg] = importlib.metadata.version(pkg)
    out["soap"] = SOAP_SOURCE
    return out


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    with open(PROBLEM_FROM) as f:
        problem = json.load(f)["problem"]

    runs, traces = [], []
    for config in CONFIGS:
        name, builder, kwargs, spec, trace_kwargs, trace_spec = config[:6]
        extras = config[6] if len(config) > 6 else {}
        trained = extras.get("trained", PARAM_NAMES)
        by_dtype = {}
        for dname, dtype in DTYPES:
            if dname not in extras.get("dtypes", ("f64", "f32")):
                continue
            if builder is ademamix:
                losses, snaps, text = jax_run(problem, kwargs, dname)
            else:
                losses, snaps, text = torch_run(problem, builder, kwargs, dtype, trained)
                if builder is soap and dtype == torch.float32:
                    # In f32 the dtype-preserving variant is the authors' code exactly.
                    authors = torch_run(problem, soap_authors, kwargs, dtype, trained)
                    if (authors[0], authors[1]) != (losses, snaps):
                        sys.exit(f"{name}: the f32 SOAP variant differs from soap_reference.py")
            if not all(math.isfinite(v) for v in losses) or losses[-1] > 2.0 * losses[0]:
                sys.exit(f"{name} {dname}: diverged (losses {losses[0]} .. {losses[-1]})")
            by_dtype[dname] = snaps
            run = {"name": name, "spec": spec, "dtype": dname, "reference": text, "losses": losses,
                   "params": snaps}
            if "trained" in extras:
                run["trained"] = list(trained)
            runs.append(run)
        # How far PyTorch's own f32 run strays from its f64 run (golden.rs compares an f32 run
        # while that and our drift stay below 1e-5, and requires 25 steps).
        if "f32" in by_dtype:
            gaps = [drift(a, b) for a, b in zip(by_dtype["f32"], by_dtype["f64"])]
            within = next((i for i, g in enumerate(gaps) if g > 5e-6), len(gaps))
            f32_note = f"f32 within 5e-6 of f64 for {within}/{STEPS} steps (max {max(gaps):.1e})"
        else:
            f32_note = "f64 only"
        if builder is ademamix:
            points, text = jax_trace(trace_kwargs)
        else:
            points, text = torch_trace(builder, trace_kwargs)
        if not all(math.isfinite(v) for p in points for v in p):
            sys.exit(f"{name}: trace diverged")
        traces.append({"name": name, "spec": trace_spec, "reference": text, "dtype": "f64",
                       "points": points})
        f64_run = next(r for r in runs if r["name"] == name and r["dtype"] == "f64")
        print(f"{name:30s} loss {f64_run['losses'][0]:.4f} -> {f64_run['losses'][-1]:.4f}; {f32_note}; "
              f"trace end ({points[-1][0]:+.4f}, {points[-1][1]:+.4f})")

    out = {
        "generator": GENERATOR,
        "versions": versions(),
        "problem": problem,
        "trace_problem": {
            "function": "0.1*x1^2 + 2*x2^2",
            "param_shape": [1, 2],
            "start": TRACE_START,
            "steps": TRACE_STEPS,
            "dtype": "f64",
            "points": "start, then x after each step, as [x1, x2]",
        },
        "runs": runs,
        "traces": traces,
    }

    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    with open(OUT_PATH, "w") as f:
        f.write("{\n")
        keys = list(out.keys())
        for i, k in enumerate(keys):
            sep = "," if i + 1 < len(keys) else ""
            if k in ("runs", "traces"):
                f.write(f" {json.dumps(k)}: [\n")
                for j, r in enumerate(out[k]):
                    rsep = "," if j + 1 < len(out[k]) else ""
                    f.write("  " + json.dumps(r, separators=(",", ":")) + rsep + "\n")
                f.write(" ]" + sep + "\n")
            else:
                f.write(" " + json.dumps(k) + ": " + json.dumps(out[k], separators=(",", ":")) + sep + "\n")
        f.write("}\n")
    print(f"wrote {OUT_PATH} ({len(runs)} runs, {len(traces)} traces, {os.path.getsize(OUT_PATH)} bytes)")


if __name__ == "__main__":
    main()
