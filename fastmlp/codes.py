"""Integer codes shared by every backend (NumPy reference, Numba, C).

Kernels take small integers rather than strings so that the same call works from Python,
from Numba-compiled code and from C (``csrc/fastmlp.h`` defines the same numbers, and
tests/test_contract.py checks that it does).  The Python API takes the names;
``*_code(name)`` turns a name into its code with an error that lists the valid names.

Optimizer hyper-parameters travel by name above the kernel boundary.  ``HYPER_NAMES`` gives
each optimizer's names in kernel order; ``hyper_vector(name, **named)`` builds the positional
float64 vector the fused kernels take, and ``hyper_dict`` reads one back.
"""

import math
import numbers

import numpy as np

ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "gelu")
LOSSES = ("bce", "cross_entropy", "mse")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw")
N_ACTIVATIONS = len(ACTIVATIONS)
N_LOSSES = len(LOSSES)
N_OPTIMIZERS = len(OPTIMIZERS)

# The optimizer code of a "loss and gradient only, no update" pass through the fused epoch
# kernels (mlp_loss_grad runs on them): the same spelling in every backend and in C
# (FASTMLP_OPT_NONE).
OPT_NONE = -1

# Activation constants (also in csrc/fastmlp.h).
LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0

# Every optimizer's hyper-parameters, in the order the kernels read them; position 0 is
# always the learning rate (a schedule rewrites it per batch).  adam and adamw share one
# layout (adamw's weight decay is decoupled).  Booleans travel as 0.0 / 1.0.
HYPER_NAMES = {
    "sgd": ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    "adagrad": ("lr", "lr_decay", "weight_decay", "eps", "maximize"),
    "rmsprop": ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
    "adam": ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"),
    "adamw": ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"),
}
# torch.optim's defaults (fastmlp.optim uses the same), for the names a caller leaves out.
HYPER_DEFAULTS = {
    "sgd": dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                maximize=False),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False),
    "rmsprop": dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                    centered=False, maximize=False),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
                  amsgrad=False, maximize=False),
}
# The range of each numeric hyper-parameter, checked by fastmlp.optim's constructors and by
# the kernels' checked entry points alike (fastmlp._validate.check_hyper), and in C too
# (csrc/core.c fm_hyper_ok): (low, low_open, high, high_open), high None for none.  The flags
# (nesterov, maximize, amsgrad, centered) are exactly 0 or 1 to the kernels (any other
# value is refused, never read as on); SGD's nesterov needs momentum > 0 and dampening 0,
# and RMSprop's centered needs alpha > 0 (CENTERED_ALPHA_WHY).
# These are torch.optim's ranges except where torch's would give NaN or garbage, said in
# HYPER_RANGE_WHY: beta1 = 1 would divide by 1 - beta1^t = 0 (torch refuses it too).
HYPER_RANGES = {"lr": (0.0, False, None, False), "momentum": (0.0, False, None, False),
                "dampening": (0.0, False, None, False),
                "weight_decay": (0.0, False, None, False),
                "lr_decay": (0.0, False, None, False),
                "initial_accumulator_value": (0.0, False, None, False),
                "eps": (0.0, True, None, False), "alpha": (0.0, False, 1.0, True),
                "beta1": (0.0, False, 1.0, True), "beta2": (0.0, False, 1.0, True)}
# Why a range is narrower than torch.optim's, for the error message.
HYPER_RANGE_WHY = {
    "eps": "eps = 0 makes a coordinate whose gradients have all been 0, such as a dead ReLU "
           "unit's, step by 0 / 0 = NaN; torch.optim allows it",
    "alpha": "alpha = 1 leaves square_avg at 0, so every step is lr * g / eps, and alpha > 1 "
             "drives it negative, so its sqrt is NaN; torch.optim allows both",
}
# Why RMSprop(centered=True) refuses alpha = 0 (torch.optim allows it), for the error message.
CENTERED_ALPHA_WHY = ("with alpha = 0 the centered variance square_avg - grad_avg^2 is g^2 - g^2 "
                      "= 0, so every step is lr * g / eps (g = 3 at lr 0.01 moves a parameter "
                      "by 3e6), then NaN; torch.optim allows it")
# The kernels' vector length (the C ABI: FASTMLP_N_HYPER); unused tail entries are 0.
N_HYPER = 8
# Rows of the (N_STATE, n_params) optimizer state matrix, per optimizer:
#   sgd:     [momentum_buffer]
#   adagrad: [sum]
#   rmsprop: [square_avg, grad_avg, momentum_buffer]
#   adam(w): [exp_avg, exp_avg_sq, max_exp_avg_sq]
STATE_ROWS = {"sgd": ("momentum_buffer",), "adagrad": ("sum",),
              "rmsprop": ("square_avg", "grad_avg", "momentum_buffer"),
              "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
              "adamw": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")}
N_STATE = {name: len(rows) for name, rows in STATE_ROWS.items()}
assert tuple(HYPER_NAMES) == OPTIMIZERS == tuple(HYPER_DEFAULTS) == tuple(STATE_ROWS)
assert max(len(v) for v in HYPER_NAMES.values()) <= N_HYPER


def _code(kind, names, name):
    if isinstance(name, str) and name in names:
        return names.index(name)
    raise ValueError(f"unknown {kind} {name!r}; expected one of: {', '.join(names)}")


def activation_code(name):
    return _code("activation", ACTIVATIONS, name)


def loss_code(name):
    return _code("loss", LOSSES, name)


def optimizer_key(name):
    """An optimizer name as the tables spell it, whatever its case: torch's class names
    ("Adam", "AdamW", "RMSprop", "SGD", "Adagrad") as "adam", "adamw", ...; anything else
    unchanged, for the caller's "unknown optimizer" error.  The one rule of every entry
    point that takes a name (fastmlp.optim.make_optimizer: fit, the recipes, the CLI)."""
    return name.lower() if isinstance(name, str) else name


def optimizer_code(name):
    key = optimizer_key(name)
    if isinstance(key, str) and key in OPTIMIZERS:
        return OPTIMIZERS.index(key)
    return _code("optimizer", OPTIMIZERS, name)     # the error, with the name as given


def _optimizer_name(opt):
    """An optimizer name from a name or a code."""
    if isinstance(opt, numbers.Integral) and not isinstance(opt, bool):
        if 0 <= int(opt) < N_OPTIMIZERS:
            return OPTIMIZERS[int(opt)]
        raise ValueError(f"unknown optimizer code {opt!r}; expected an integer in "
                         f"[0, {N_OPTIMIZERS})")
    return OPTIMIZERS[optimizer_code(opt)]


def hyper_vector(opt, **named):
    """The float64 (N_HYPER,) vector of optimizer ``opt`` (a name or a code) from named
    hyper-parameters; the names left out take torch's defaults (HYPER_DEFAULTS).

    >>> hyper_vector("sgd", lr=0.1, momentum=0.9)[:3]
    array([0.1, 0.9, 0. ])
    """
    name = _optimizer_name(opt)
    unknown = sorted(set(named) - set(HYPER_NAMES[name]))
    if unknown:
        raise TypeError(f"unknown hyper-parameter(s) {', '.join(unknown)} for optimizer "
                        f"{name!r}; expected: {', '.join(HYPER_NAMES[name])}")
    h = np.zeros(N_HYPER)
    for i, key in enumerate(HYPER_NAMES[name]):
        value = named.get(key, HYPER_DEFAULTS[name][key])
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        if not isinstance(value, (numbers.Real, np.floating, np.integer)) or \
                not math.isfinite(float(value)):
            raise ValueError(f"hyper-parameter {key} of {name} must be a finite number, got "
                             f"{value!r}")
        h[i] = float(value)
    return h


def hyper_dict(opt, hyper):
    """{name: value} of a kernel's hyper vector (flags as bool): the inverse of hyper_vector."""
    name = _optimizer_name(opt)
    out = {}
    for i, key in enumerate(HYPER_NAMES[name]):
        v = float(hyper[i])
        out[key] = bool(v) if isinstance(HYPER_DEFAULTS[name][key], bool) else v
    return out


# The epoch order (backends' epoch_permutation): the Weyl increment of the splitmix64 hash,
# the rows per bucket at most on average (a bucket of int64 row indices stays in L2), and
# the most bucket bits.  csrc/shuffle.c repeats them (FM_PERM_*).
PERM_PHI = 0x9E3779B97F4A7C15
PERM_BUCKET_ROWS = 16384
PERM_MAX_BUCKET_BITS = 32
