"""THE conformance table: every fast backend's kernels against the NumPy reference.

One list of cases (kernel name, an input builder for (dtype, shape), the arguments it
writes) parametrised over case x backend x dtype x shape.  Backends are every available
backend except "numpy" (fastmlp.backends.available_backends()); an unavailable one is
skipped with its reason, so a new backend (the C one) is picked up without touching this
file.  Adding a kernel or a backend adds rows, not test code.

Relative error of an output = max|fast - ref| / max(max|ref|, tiny), with NaN/inf required
at the same places.  float64 <= 1e-12, float32 <= 1e-5.  Shapes are deliberately awkward:
batch 1, 3, 37, 257 (no multiple of any thread count or unroll), width 1, a single layer,
four hidden layers, a layer wide enough for the BLAS path.  Optimizers run 50-step
trajectories (params and state); train_epoch runs whole epochs with a short last batch,
varying learning rates and a non-finite stop.
"""

import contextlib
import copy
import re
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from fastmlp import backends, codes
from fastmlp.backends import reference as ref
from fastmlp.backends import tuning

TOL = {np.float64: 1e-12, np.float32: 1e-5}
DTYPES = (np.float64, np.float32)


def rel_err(a, b):
    """max|a - b| / max(max|b|, tiny) over the finite entries; inf if the non-finite
    entries differ."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not np.array_equal(fa, fb) or not np.array_equal(np.isnan(a), np.isnan(b)):
        return np.inf
    if not fb.any():
        return 0.0
    den = max(np.abs(b[fb]).max(), 1e-30)
    return float(np.abs(a[fa] - b[fb]).max() / den)


@dataclass
class Case:
    kernel: str                  # name of the kernel in every backend module
    build: Callable              # (rng, dtype, shape) -> list of arguments
    outs: tuple                  # indices of the arguments the kernel writes
    shapes: tuple                # shape parameters passed to build
    name: str = ""               # row id (defaults to the kernel name)
    run: Callable = None         # (kernel_fn, args) -> results; default: fn(*args)
    threads: int = None          # run the fast backend with this many threads
    crossover: float = None      # BLAS from this product size (tuning.forced_crossover)
    extra: dict = field(default_factory=dict)

    @property
    def id(self):
        return self.name or self.kernel


# ---------------------------------------------------------------------------------------
# Input builders
# ---------------------------------------------------------------------------------------

def _z(rng, dt, shape):
    z = rng.standard_normal(shape) * 3
    flat = z.reshape(-1)
    flat[::7] = 0.0                       # exact zeros: the kinks of relu & co.
    flat[3::11] *= 10                     # large |z|: stable sigmoid / softplus paths
    return z.astype(dt)


def act_fwd(act):
    return lambda rng, dt, shape: [np.empty(shape, dt), _z(rng, dt, shape), act]


def sigmoid_pair_case(rng, dt, shape):
    z = _z(rng, dt, shape).reshape(-1)
    return [np.empty((z.size, 2), dt), z]


def act_bwd(act):
    return lambda rng, dt, shape: [np.empty(shape, dt), rng.standard_normal(shape).astype(dt),
                                   _z(rng, dt, shape), act]


def dense_fwd(act):
    def build(rng, dt, shape):
        b, n_in, n_out = shape
        return [np.empty((b, n_out), dt), np.empty((b, n_out), dt),
                rng.standard_normal((b, n_in)).astype(dt),
                (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dt),
                rng.standard_normal(n_out).astype(dt), act]
    return build


def dense_bwd(act, with_dx):
    def build(rng, dt, shape):
        b, n_in, n_out = shape
        x = rng.standard_normal((b, n_in)).astype(dt)
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dt)
        z = (x @ w).astype(dt)
        return [np.empty((b, n_in), dt) if with_dx else None, np.empty((n_in, n_out), dt),
                np.empty(n_out, dt), rng.standard_normal((b, n_out)).astype(dt), x, w, z, act]
    return build


def _targets(rng, dt, loss, b, k):
    if loss == 0:  # one 0/1 label per output (several: multilabel)
        return (rng.random((b, k)) < 0.5).astype(dt)
    if loss == 1:
        return rng.integers(0, k, size=(b, 1)).astype(dt)
    return rng.standard_normal((b, k)).astype(dt)


def _weights(rng, dt, b):
    sw = rng.uniform(0.2, 2.0, size=b)
    if b > 3:
        sw[1] = 0.0                       # a zero weight is allowed
    return sw.astype(dt)


def loss_case(loss, dispatch=False, multilabel=False):
    def build(rng, dt, shape):
        b, k = shape
        k = 1 if loss == 0 and not multilabel else k
        logits = (rng.standard_normal((b, k)) * 4).astype(dt)
        args = [np.empty((b, k), dt), logits, _targets(rng, dt, loss, b, k), _weights(rng, dt, b)]
        return args + [loss] if dispatch else args
    return build


# MLP shapes: (sizes, acts, loss, batch)
NETS = (
    ((4, 1), (0,), 0, 37),                            # logistic regression
    ((5, 32, 32, 1), (1, 1, 0), 0, 257),              # the photometric net
    ((3, 1, 2), (4, 0), 1, 3),                        # hidden width 1, cross-entropy
    ((5, 7, 6, 5, 4, 3), (3, 7, 5, 2, 0), 1, 37),     # four hidden layers, mixed acts
    ((6, 9, 2), (6, 0), 2, 1),                        # batch 1, softplus, mse 2 outputs
    ((3, 130, 129, 2), (1, 4, 0), 2, 65),             # wide: the BLAS path
    ((8, 64, 64, 1), (1, 1, 0), 0, 300),              # C inference: zero-skipping 64 wide
    ((6, 24, 40, 3), (1, 1, 0), 1, 37),               # ... and 40 wide (5 registers)
)
# bce with several outputs: multilabel (one binary cross-entropy per output)
MULTILABEL_NETS = (
    ((5, 16, 4), (1, 0), 0, 37),
    ((3, 130, 129, 2), (4, 4, 0), 0, 65),
)


def _net(rng, dt, sizes, scale=1.0):
    _, n = ref.layer_offsets(sizes)
    p = np.empty(n)
    for (wo, bo), n_in, n_out in zip(ref.layer_offsets(sizes)[0], sizes[:-1], sizes[1:]):
        p[wo:bo] = rng.standard_normal(n_in * n_out) * np.sqrt(2.0 / n_in) * scale
        p[bo:bo + n_out] = rng.standard_normal(n_out) * 0.1
    return p.astype(dt)


def mlp_fwd(rng, dt, shape):
    sizes, acts, _, b = shape
    return [np.empty((b, sizes[-1]), dt), _net(rng, dt, sizes),
            rng.standard_normal((b, sizes[0])).astype(dt), np.array(sizes), np.array(acts)]


def mlp_lg(rng, dt, shape):
    sizes, acts, loss, b = shape
    p = _net(rng, dt, sizes)
    return [np.empty_like(p), p, rng.standard_normal((b, sizes[0])).astype(dt),
            _targets(rng, dt, loss, b, sizes[-1]), _weights(rng, dt, b), np.array(sizes),
            np.array(acts), loss]


def relu_kinks(build):
    """build's network inputs with ReLU kinks made exact: in the first layer the units
    c = 0, 3, 6, ... get no weights and a bias of +0, -0, +0, ... (every row's pre-activation
    is exactly +-0), and with a fifth element "nan" in the shape one row of x is NaN.  The C
    kernels keep only a = relu(z) of a ReLU layer and read the backward mask a > 0 from it
    instead of z > 0: the same mask for +0, -0 and NaN, so the gradients of those units are
    exactly the reference's (zero, or NaN where the reference has NaN)."""
    def built(rng, dt, shape):
        sizes = shape[0]
        args = build(rng, dt, shape[:4])
        p = args[1]
        n_in, n_out = sizes[0], sizes[1]
        w = p[:n_in * n_out].reshape(n_in, n_out)
        b = p[n_in * n_out:n_in * n_out + n_out]
        w[:, ::3] = 0
        b[::3] = np.where(np.arange(b[::3].size) % 2, -0.0, 0.0).astype(dt)
        if len(shape) > 4 and shape[4] == "nan":
            args[2][shape[3] // 2] = np.nan
        return args
    return built


# (5, 37, 16, 1): 37 ReLU inputs into 16 outputs, the C inference's sparse-input path with
# four whole vectors of 8 (AVX2) or two of 16 (AVX-512), then a scalar tail of 5;
# (5, 150, 24, 1): 150 inputs, two whole 64-bit words of its non-zero mask and 22 bits more
KINK_NETS = (((5, 32, 32, 1), (1, 1, 0), 0, 257), ((3, 130, 129, 2), (1, 1, 0), 1, 65),
             ((8, 64, 64, 1), (1, 1, 0), 0, 300, "nan"), ((5, 24, 40, 3), (1, 1, 0), 2, 37, "nan"),
             ((5, 37, 16, 1), (1, 1, 0), 0, 301, "nan"),
             ((5, 150, 24, 1), (1, 1, 0), 0, 130, "nan"))


def with_l2(build, l2=0.3):
    """The same inputs plus the trailing l2 argument (an L2 penalty on the weights)."""
    return lambda rng, dt, shape: build(rng, dt, shape) + [l2]


# ---------------------------------------------------------------------------------------
# Optimizer trajectories: 50 updates with fresh gradients, parameters AND state compared.
# ---------------------------------------------------------------------------------------

N_STEPS = 50
OPT_SIZES = (1, 37, 1027)


def traj(kernel, state_rows, init=0.0):
    """build: [p, grads (steps, n), state rows..., named hyper-parameters (a dict)]; the
    runner loops the steps, passing step and the hyper-parameters by name."""
    def build_fn(hyper):
        def build(rng, dt, n):
            p = rng.standard_normal(n).astype(dt)
            grads = (rng.standard_normal((N_STEPS, n)) * rng.uniform(0.01, 3, (N_STEPS, 1)))
            return [p, grads.astype(dt)] + [np.full(n, init, dt) for _ in range(state_rows)] \
                + [dict(hyper)]
        return build

    def run(fn, args):
        p, grads, rows, hyper = args[0], args[1], args[2:2 + state_rows], args[-1]
        for i in range(N_STEPS):
            fn(p, grads[i], *rows, step=i + 1, **hyper)
    return build_fn, run


# Each optimizer kernel's full set of named hyper-parameters: its codes.py defaults, with
# the case's values on top (adam_update also takes decoupled, False unless given).
def _named(kernel, **named):
    opt = "adamw" if named.get("decoupled") else kernel[:-len("_update")]
    base = dict(codes.HYPER_DEFAULTS[opt])
    if kernel == "adam_update":
        base["decoupled"] = False
    base.update(named)
    return base


def opt_case(kernel, state_rows, name, init=0.0, **hyper):
    build_fn, run = traj(kernel, state_rows, init)
    return Case(kernel, build_fn(_named(kernel, **hyper)),
                tuple(range(0, 1)) + tuple(range(2, 2 + state_rows)), OPT_SIZES, name=name,
                run=run)


def dispatch_case(opt, name, **hyper):
    """optimizer_update(opt, p, g, state, step, hyper) with the vector built by name."""
    n_state = codes.N_STATE[opt]

    def build(rng, dt, n):
        p = rng.standard_normal(n).astype(dt)
        grads = rng.standard_normal((N_STEPS, n)).astype(dt)
        return [codes.optimizer_code(opt), p, grads, np.zeros((n_state, n), dt),
                codes.hyper_vector(opt, **hyper)]

    def run(fn, args):
        opt_code, p, grads, state, h = args
        for i in range(N_STEPS):
            fn(opt_code, p, grads[i], state, step=i + 1, hyper=h)
    return Case("optimizer_update", build, (1, 3), OPT_SIZES, name=name, run=run)


def bound_case(opt, name, **hyper):
    """bound_update(opt, p, state) once, then its update(g, step, hyper) for every step,
    with lr halved at step 20 (a new vector, as an Optimizer hands it after a change)."""
    case = dispatch_case(opt, name, **hyper)

    def run(fn, args):
        opt_code, p, grads, state, h = args
        update = fn(opt_code, p, state)
        late = codes.hyper_vector(opt, **{**hyper, "lr": hyper["lr"] / 2})
        for i in range(N_STEPS):
            update(grads[i], i + 1, h if i < 20 else late)
    return Case("bound_update", case.build, case.outs, OPT_SIZES, name=name, run=run)


OPT_CASES = [
    opt_case("sgd_update", 1, "sgd", lr=0.05),
    opt_case("sgd_update", 1, "sgd_momentum", lr=0.05, momentum=0.9),
    opt_case("sgd_update", 1, "sgd_dampening_wd", lr=0.05, momentum=0.9, dampening=0.3,
             weight_decay=0.01),
    opt_case("sgd_update", 1, "sgd_nesterov", lr=0.05, momentum=0.9, nesterov=True),
    opt_case("sgd_update", 1, "sgd_nesterov_wd_maximize", lr=0.05, momentum=0.5,
             weight_decay=0.1, nesterov=True, maximize=True),
    opt_case("adagrad_update", 1, "adagrad", lr=0.1),
    opt_case("adagrad_update", 1, "adagrad_decay_wd_init", init=0.5, lr=0.1, lr_decay=0.05,
             weight_decay=0.01, eps=1e-6),
    opt_case("adagrad_update", 1, "adagrad_maximize", lr=0.1, maximize=True),
    opt_case("rmsprop_update", 3, "rmsprop", lr=0.01),
    opt_case("rmsprop_update", 3, "rmsprop_centered", lr=0.01, alpha=0.9, centered=True),
    opt_case("rmsprop_update", 3, "rmsprop_momentum", lr=0.01, momentum=0.9),
    opt_case("rmsprop_update", 3, "rmsprop_centered_momentum_wd_maximize", lr=0.01, alpha=0.9,
             eps=1e-6, weight_decay=0.01, momentum=0.5, centered=True, maximize=True),
    # each centered x momentum combination is its own loop in C: all four with weight decay
    opt_case("rmsprop_update", 3, "rmsprop_wd_maximize", lr=0.01, weight_decay=0.01,
             maximize=True),
    opt_case("rmsprop_update", 3, "rmsprop_centered_wd_maximize", lr=0.01, alpha=0.9, eps=1e-6,
             weight_decay=0.01, centered=True, maximize=True),
    opt_case("rmsprop_update", 3, "rmsprop_momentum_wd", lr=0.01, weight_decay=0.01,
             momentum=0.9),
    opt_case("adam_update", 3, "adam", lr=1e-2),
    opt_case("adam_update", 3, "adam_amsgrad_wd", lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6,
             weight_decay=0.01, amsgrad=True),
    opt_case("adam_update", 3, "adam_maximize", lr=1e-2, maximize=True),
    opt_case("adam_update", 3, "adamw", lr=1e-2, weight_decay=1e-2, decoupled=True),
    opt_case("adam_update", 3, "adamw_amsgrad_maximize", lr=1e-2, beta2=0.99, weight_decay=0.1,
             amsgrad=True, maximize=True, decoupled=True),
    # numba: each memory-access pattern is its own loop, the other options are selects in it
    opt_case("sgd_update", 1, "sgd_wd_maximize", lr=0.05, weight_decay=0.01, maximize=True),
    opt_case("adam_update", 3, "adam_wd", lr=1e-2, weight_decay=0.01),
    opt_case("adam_update", 3, "adamw_maximize", lr=1e-2, weight_decay=0.05, maximize=True,
             decoupled=True),
    opt_case("adam_update", 3, "adamw_amsgrad", lr=1e-2, beta2=0.99, weight_decay=0.05,
             amsgrad=True, decoupled=True),
    dispatch_case("sgd", "dispatch_sgd_nesterov", lr=0.05, momentum=0.9, nesterov=True),
    dispatch_case("adagrad", "dispatch_adagrad", lr=0.1, lr_decay=0.01),
    dispatch_case("rmsprop", "dispatch_rmsprop_centered_momentum", lr=0.01, momentum=0.9,
                  centered=True),
    dispatch_case("rmsprop", "dispatch_rmsprop", lr=0.01),
    dispatch_case("adam", "dispatch_adam_amsgrad", lr=1e-2, amsgrad=True),
    dispatch_case("adamw", "dispatch_adamw", lr=1e-2, weight_decay=1e-2),
    bound_case("sgd", "bound_sgd_momentum", lr=0.05, momentum=0.9),
    bound_case("adagrad", "bound_adagrad", lr=0.1),
    bound_case("rmsprop", "bound_rmsprop_centered", lr=0.01, centered=True),
    bound_case("adam", "bound_adam", lr=1e-2),
    bound_case("adamw", "bound_adamw_amsgrad", lr=1e-2, weight_decay=1e-2, amsgrad=True),
]


# ---------------------------------------------------------------------------------------
# Whole training epochs: (sizes, acts, loss, n_samples, batch_size, optimizer, named
# hyper-parameters, nan_row)
# ---------------------------------------------------------------------------------------

EPOCHS = (
    ((5, 32, 32, 1), (1, 1, 0), 0, 300, 64, "adam", dict(lr=1e-3), None),
    ((4, 1), (0,), 0, 37, 10, "sgd", dict(lr=0.1, momentum=0.9, nesterov=True), None),
    ((3, 16, 3), (4, 0), 1, 100, 32, "rmsprop",
     dict(lr=1e-2, alpha=0.9, momentum=0.5, centered=True), None),
    ((5, 7, 6, 5, 4, 3), (3, 7, 5, 2, 0), 1, 77, 16, "adamw",
     dict(lr=1e-2, beta2=0.99, weight_decay=1e-2, amsgrad=True), None),
    ((6, 9, 1, 2), (6, 1, 0), 2, 41, 41, "adagrad",
     dict(lr=0.05, lr_decay=0.01, weight_decay=0.001), None),
    ((3, 130, 129, 2), (1, 4, 0), 2, 150, 64, "adam", dict(lr=1e-3), None),
    # a NaN feature in row perm[70] (batch 2 of 64-row batches): both stop there
    ((5, 32, 32, 1), (1, 1, 0), 0, 300, 64, "adam", dict(lr=1e-3), 70),
)


MULTILABEL_EPOCHS = (
    ((5, 16, 4), (1, 0), 0, 90, 32, "adam", dict(lr=1e-2), None),
    ((4, 8, 3), (4, 0), 0, 37, 10, "sgd", dict(lr=0.1, momentum=0.9, nesterov=True), None),
)


def epoch_build(rng, dt, shape):
    sizes, acts, loss, n, bs, opt, hyper, nan_row = shape
    p = _net(rng, dt, sizes)
    x = rng.standard_normal((n, sizes[0])).astype(dt)
    perm = rng.permutation(n).astype(np.int64)
    if nan_row is not None:
        x[perm[nan_row], 1] = np.nan
    nb = -(-n // bs)
    h = codes.hyper_vector(opt, **hyper)
    state = np.zeros((codes.N_STATE[opt], p.size), dt)
    if opt == "adagrad":
        state[:] = 0.1
    lrs = hyper["lr"] * rng.uniform(0.5, 1.5, nb)
    return [p, np.zeros_like(p), state, np.full(nb, -1.0), x,
            _targets(rng, dt, loss, n, sizes[-1]), _weights(rng, dt, n), perm, bs, lrs, 7,
            codes.optimizer_code(opt), h, np.array(sizes), np.array(acts), loss]


def epoch_run(fn, args):
    """Two epochs back to back (the second continues the step count); returns the
    completed-batch counts.  grad is compared only if every batch completed."""
    nb = args[3].shape[0]
    d1 = fn(*args)
    if d1 < nb:
        args[1][...] = 0  # the gradient of the failed batch is unspecified
        return [d1]
    a2 = list(args)
    a2[10] = args[10] + nb
    a2[3] = np.full(nb, -1.0)
    d2 = fn(*a2)
    args[3] = np.concatenate([args[3], a2[3]])
    return [d1, d2]


def shuffle_build(rng, dt, shape):
    """The epoch order: dtype-free (float64 uniforms in, int64 indices out); the last
    uniforms are the largest double below 1 and exact zeros.  Indices differ by whole
    numbers, so the relative tolerance (1e-5 < 1/4098) makes this an exact check."""
    (n,) = shape
    u = rng.random(n)
    u[-1:] = np.nextafter(1.0, 0.0)
    u[1::9] = 0.0
    return [np.full(n, -1, dtype=np.int64), u]


def permutation_build(rng, dt, shape):
    """The epoch order from one 64-bit key (dtype-free): one bucket, then 2 and 8 buckets;
    exact, like shuffle_build."""
    (n,) = shape
    return [np.full(n, -1, dtype=np.int64), int(rng.integers(0, 2 ** 64, dtype=np.uint64))]


# ---------------------------------------------------------------------------------------
# THE table
# ---------------------------------------------------------------------------------------

ELEM_SHAPES = ((1,), (37, 3), (257, 1), (3, 129))
DENSE_SHAPES = ((1, 1, 1), (3, 5, 32), (37, 32, 1), (257, 7, 33), (65, 130, 129))
LOSS_SHAPES = ((1, 2), (3, 3), (37, 10), (257, 1))

CASES = (
    [Case("activation_forward", act_fwd(a), (0,), ELEM_SHAPES, name=f"activation_forward[{a}]")
     for a in range(8)]
    + [Case("activation_backward", act_bwd(a), (0,), ELEM_SHAPES,
            name=f"activation_backward[{a}]") for a in range(8)]
    + [Case("sigmoid_pair", sigmoid_pair_case, (0,), ELEM_SHAPES)]
    + [Case("dense_forward", dense_fwd(a), (0, 1), DENSE_SHAPES, name=f"dense_forward[{a}]")
       for a in range(8)]
    + [Case("dense_backward", dense_bwd(a, True), (0, 1, 2), DENSE_SHAPES,
            name=f"dense_backward[{a}]") for a in range(8)]
    + [Case("dense_backward", dense_bwd(1, False), (1, 2), DENSE_SHAPES,
            name="dense_backward_no_dx")]
    + [Case("bce_loss_grad", loss_case(0), (0,), LOSS_SHAPES),
       Case("cross_entropy_loss_grad", loss_case(1), (0,), LOSS_SHAPES),
       Case("mse_loss_grad", loss_case(2), (0,), LOSS_SHAPES)]
    + [Case("loss_grad", loss_case(c, dispatch=True), (0,), LOSS_SHAPES, name=f"loss_grad[{c}]")
       for c in range(3)]
    + [Case("bce_loss_grad", loss_case(0, multilabel=True), (0,), LOSS_SHAPES,
            name="bce_loss_grad_multilabel"),
       Case("loss_grad", loss_case(0, dispatch=True, multilabel=True), (0,), LOSS_SHAPES,
            name="loss_grad[0]_multilabel")]
    + [Case("mlp_forward", mlp_fwd, (0,), NETS),
       Case("mlp_loss_grad", mlp_lg, (0,), NETS),
       Case("mlp_loss_grad", with_l2(mlp_lg), (0,), NETS, name="mlp_loss_grad_l2"),
       Case("mlp_loss_grad", mlp_lg, (0,), MULTILABEL_NETS, name="mlp_loss_grad_multilabel"),
       Case("mlp_forward", relu_kinks(mlp_fwd), (0,), KINK_NETS, name="mlp_forward_kinks"),
       Case("mlp_loss_grad", relu_kinks(mlp_lg), (0,), KINK_NETS, name="mlp_loss_grad_kinks")]
    + OPT_CASES
    + [Case("shuffle_indices", shuffle_build, (0,), ((1,), (2,), (37,), (4099,)))]
    + [Case("epoch_permutation", permutation_build, (0,), ((1,), (37,), (16385,), (70001,)))]
    + [Case("train_epoch", epoch_build, (0, 1, 2, 3), EPOCHS, run=epoch_run),
       Case("train_epoch", epoch_build, (0, 1, 2, 3), EPOCHS[:2] + EPOCHS[-1:], run=epoch_run,
            threads=3, name="train_epoch_3_threads"),
       Case("train_epoch", with_l2(epoch_build, 2.0), (0, 1, 2, 3), EPOCHS, run=epoch_run,
            name="train_epoch_l2"),
       Case("train_epoch", epoch_build, (0, 1, 2, 3), MULTILABEL_EPOCHS, run=epoch_run,
            name="train_epoch_multilabel")]
)


# The BLAS path (tuning.blas_crossover): every layer through BLAS (crossover 0) on the
# awkward shapes above, and the wide nets of the benchmark with the static default crossover
# (BLAS for the 512 x 512 layer, the hand-written kernels for the 5 -> 512 and 512 -> 1 ones).
WIDE_NETS = (((5, 512, 512, 1), (1, 1, 0), 0, 256), ((5, 512, 512, 1), (1, 1, 0), 0, 4096))
WIDE_EPOCHS = (((5, 512, 512, 1), (1, 1, 0), 0, 600, 256, "adam", dict(lr=1e-3), None),
               ((5, 512, 512, 1), (1, 1, 0), 0, 300, 256, "adam", dict(lr=1e-3), 70))
CASES += (
    [Case("dense_forward", dense_fwd(a), (0, 1), DENSE_SHAPES, name=f"dense_forward_blas[{a}]",
          crossover=0) for a in (0, 1, 7)]
    + [Case("dense_backward", dense_bwd(a, True), (0, 1, 2), DENSE_SHAPES,
            name=f"dense_backward_blas[{a}]", crossover=0) for a in (0, 1, 7)]
    + [Case("dense_backward", dense_bwd(1, False), (1, 2), DENSE_SHAPES,
            name="dense_backward_blas_no_dx", crossover=0)]
    + [Case("mlp_forward", mlp_fwd, (0,), NETS, name="mlp_forward_blas", crossover=0),
       Case("mlp_loss_grad", mlp_lg, (0,), NETS, name="mlp_loss_grad_blas", crossover=0),
       Case("mlp_loss_grad", relu_kinks(mlp_lg), (0,), KINK_NETS,
            name="mlp_loss_grad_kinks_blas", crossover=0),
       Case("mlp_forward", mlp_fwd, (0,), WIDE_NETS, name="mlp_forward_wide",
            crossover=tuning.DEFAULT_CROSSOVER),
       Case("mlp_loss_grad", mlp_lg, (0,), WIDE_NETS, name="mlp_loss_grad_wide",
            crossover=tuning.DEFAULT_CROSSOVER)]
    + [Case("train_epoch", epoch_build, (0, 1, 2, 3), EPOCHS, run=epoch_run,
            name="train_epoch_blas", crossover=0),
       Case("train_epoch", epoch_build, (0, 1, 2, 3), EPOCHS[:2] + EPOCHS[-1:], run=epoch_run,
            threads=3, name="train_epoch_blas_3_threads", crossover=0),
       Case("train_epoch", epoch_build, (0, 1, 2, 3), WIDE_EPOCHS, run=epoch_run,
            name="train_epoch_wide", crossover=tuning.DEFAULT_CROSSOVER)]
)


def _backend_params():
    out = []
    for name, (ok, reason) in backends.available_backends().items():
        if name == "numpy":
            continue
        marks = () if ok else (pytest.mark.skip(reason=f"backend {name} unavailable: {reason}"),)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _shape_id(shape):
    text = re.sub(r"[^0-9a-zA-Z.]+", "_", repr(shape)).strip("_")
    return text if len(text) <= 40 else text[:40]


_ROWS = [pytest.param(case, shape, id=f"{case.id}-{k}-{_shape_id(shape)}")
         for case in CASES for k, shape in enumerate(case.shapes)]


def _call(mod, case, args):
    fn = getattr(mod, case.kernel)
    return case.run(fn, args) if case.run else fn(*args)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", _backend_params())
@pytest.mark.parametrize("case,shape", _ROWS)
def test_conformance(case, shape, backend, dtype):
    seed = zlib.crc32(f"{case.id}{shape!r}".encode())
    args = case.build(np.random.default_rng(seed), dtype, shape)
    ref_args = copy.deepcopy(args)
    fast_args = copy.deepcopy(args)
    mod = backends.get_backend(backend)
    expect = _call(ref, case, ref_args)
    with contextlib.ExitStack() as scope:
        if case.threads:
            scope.enter_context(backends.threads(case.threads))
        if case.crossover is not None:
            scope.enter_context(tuning.forced_crossover(case.crossover))
        got = _call(mod, case, fast_args)
    tol = TOL[dtype]
    if isinstance(expect, (list, int, np.integer)):
        assert got == expect, f"{case.kernel} returned {got}, reference {expect}"
    elif expect is not None:
        err = rel_err(got, expect)
        assert err <= tol, f"{case.kernel} returned {got}, reference {expect} (rel {err:.2e})"
    for i in case.outs:
        a, b = fast_args[i], ref_args[i]
        assert a.dtype == b.dtype, f"argument {i} changed dtype: {a.dtype} vs {b.dtype}"
        err = rel_err(a, b)
        assert err <= tol, (f"{case.kernel} argument {i} {a.shape}: relative error {err:.3e} "
                            f"> {tol:g}")
    # the inputs the kernel only reads must be left alone
    for i, (a, b) in enumerate(zip(fast_args, args)):
        if i not in case.outs and isinstance(a, np.ndarray):
            assert np.array_equal(a, b, equal_nan=True), f"input argument {i} was modified"


@pytest.mark.parametrize("threads", (2, 3))
@pytest.mark.parametrize("backend", _backend_params())
def test_train_epoch_is_deterministic(backend, threads):
    """Same thread count, same inputs -> bit-identical parameters, state and losses."""
    mod = backends.get_backend(backend)
    shape = EPOCHS[0]
    args = epoch_build(np.random.default_rng(5), np.float32, shape)
    runs = []
    with backends.threads(threads):
        for _ in range(2):
            a = copy.deepcopy(args)
            epoch_run(getattr(mod, "train_epoch"), a)
            runs.append(a)
    for i in (0, 1, 2, 3):
        assert np.array_equal(runs[0][i], runs[1][i]), f"argument {i} differs between runs"
