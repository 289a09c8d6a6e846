"""One backend contract: (kernel, bad input) x backend -> the same error everywhere.

Each row of BAD names a kernel, a change to an otherwise valid call, and the exception and
message every backend must raise.  The test runs the row on every available backend (the
NumPy reference included) and requires the same type AND the same message from all of
them, so a backend that accepts what another rejects, or words it differently, fails.
Adding a kernel or a backend adds rows, not test code.  The tail of the file checks that
csrc/fastmlp.h and fastmlp/codes.py agree and that hyper-parameters travel by name.
"""

import os
import re

import numpy as np
import pytest

from fastmlp import backends, codes, optim

BACKENDS = [n for n, (ok, _) in backends.available_backends().items() if ok]
HEADER = os.path.join(os.path.dirname(__file__), os.pardir, "csrc", "fastmlp.h")
NAN, INF = float("nan"), float("inf")


# ---------------------------------------------------------------------------------------
# Valid calls (a dict of keyword arguments per kernel), to be spoilt one argument at a time.
# ---------------------------------------------------------------------------------------

def _rng():
    return np.random.default_rng(0)


def act_args():
    z = _rng().standard_normal((4, 3))
    return dict(out=np.empty_like(z), z=z, act=1)


def pair_args():
    return dict(out=np.empty((5, 2)), z=_rng().standard_normal(5))


def dense_args():
    r = _rng()
    return dict(out=np.empty((4, 2)), z=np.empty((4, 2)), x=r.standard_normal((4, 3)),
                w=r.standard_normal((3, 2)), b=np.zeros(2), act=1)


def loss_args(loss=1, k=3):
    r = _rng()
    y = {0: np.array([[0.0], [1.0], [1.0], [0.0]]), 1: np.array([[0.0], [2.0], [1.0], [0.0]]),
         2: r.standard_normal((4, k))}[loss]
    return dict(dout=np.empty((4, k)), out=r.standard_normal((4, k)), y=y, sw=np.ones(4),
                loss=loss)


def ce_args():
    a = loss_args(1)
    return dict(dlogits=a["dout"], logits=a["out"], y=a["y"], sw=a["sw"])


def sgd_args():
    r = _rng()
    return dict(p=r.standard_normal(5), g=r.standard_normal(5), buf=np.zeros(5), step=1,
                lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False,
                maximize=False)


def adam_args():
    r = _rng()
    return dict(p=r.standard_normal(5), g=r.standard_normal(5), m=np.zeros(5), v=np.zeros(5),
                vmax=np.zeros(5), step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.0, amsgrad=False, maximize=False, decoupled=False)


def rmsprop_args():
    r = _rng()
    return dict(p=r.standard_normal(5), g=r.standard_normal(5), square_avg=np.zeros(5),
                grad_avg=np.zeros(5), momentum_buffer=np.zeros(5), step=1, lr=1e-2,
                alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=True,
                maximize=False)


def opt_args(opt="rmsprop"):
    r = _rng()
    return dict(opt=codes.optimizer_code(opt), p=r.standard_normal(5), g=r.standard_normal(5),
                state=np.zeros((codes.N_STATE[opt], 5)), step=1,
                hyper=codes.hyper_vector(opt, lr=0.01))


SIZES, ACTS = np.array([3, 4, 3]), np.array([1, 0])
N_PARAMS = 3 * 4 + 4 + 4 * 3 + 3


def fwd_args():
    r = _rng()
    return dict(out=np.empty((6, 3)), params=r.standard_normal(N_PARAMS) * 0.3,
                x=r.standard_normal((6, 3)), sizes=SIZES.copy(), acts=ACTS.copy())


def lg_args():
    r = _rng()
    return dict(grad=np.empty(N_PARAMS), params=r.standard_normal(N_PARAMS) * 0.3,
                x=r.standard_normal((6, 3)), y=np.array([[0.0], [1], [2], [0], [1], [2]]),
                sw=np.ones(6), sizes=SIZES.copy(), acts=ACTS.copy(), loss=1)


def epoch_args():
    a = lg_args()
    return dict(params=a["params"], grad=a["grad"], state=np.zeros((3, N_PARAMS)),
                batch_losses=np.zeros(3), x=a["x"], y=a["y"], sw=a["sw"],
                perm=np.arange(6), batch_size=2, lrs=np.full(3, 0.01), step0=0,
                opt=codes.optimizer_code("adam"), hyper=codes.hyper_vector("adam"),
                sizes=SIZES.copy(), acts=ACTS.copy(), loss=1)


def _set(**changes):
    return changes


def _y_nan(key="y", row=1):
    def change(a):
        a[key] = a[key].copy()
        a[key][row, 0] = NAN
    return change


# (id, kernel, valid-args builder, change (dict or callable), exception, message regex)
BAD = [
    ("act_code_8", "activation_forward", act_args, _set(act=8), ValueError,
     r"unknown activation code 8; expected an integer in \[0, 8\)"),
    ("act_code_negative", "activation_backward",
     lambda: dict(dz=np.empty((4, 3)), da=np.ones((4, 3)), z=np.ones((4, 3)), act=1),
     _set(act=-1), ValueError, r"unknown activation code -1"),
    ("act_code_float", "activation_forward", act_args, _set(act=1.0), ValueError,
     r"unknown activation code 1.0"),
    ("act_out_shape", "activation_forward", act_args, _set(out=np.empty((4, 2))), ValueError,
     r"out must have shape \(4, 3\), got \(4, 2\)"),
    ("pair_out_shape", "sigmoid_pair", pair_args, _set(out=np.empty((5, 3))), ValueError,
     r"out must have shape \(5, 2\), got \(5, 3\)"),
    ("pair_z_2d", "sigmoid_pair", pair_args, _set(z=np.ones((5, 1))), ValueError,
     r"z must have shape \(n,\), got \(5, 1\)"),
    ("dense_w_rows", "dense_forward", dense_args, _set(w=np.ones((2, 2))), ValueError,
     r"w must have shape \(3, n\), got \(2, 2\)"),
    ("dense_bias_len", "dense_forward", dense_args, _set(b=np.zeros(3)), ValueError,
     r"b must have shape \(2,\), got \(3,\)"),
    ("loss_code_3", "loss_grad", loss_args, _set(loss=3), ValueError,
     r"unknown loss code 3; expected an integer in \[0, 3\)"),
    # sample weights: a weighted mean needs weights >= 0, finite, not all 0 (all 0 gave a
    # NaN loss and OK; -1 everywhere the loss of +1)
    ("loss_sw_all_zero", "loss_grad", loss_args, _set(sw=np.zeros(4)), ValueError,
     r"^sw sums to 0 \(all 4 weights 0\): the loss is a mean weighted by sw"),
    ("bce_sw_negative", "loss_grad", lambda: loss_args(0, 1), _set(sw=-np.ones(4)),
     ValueError, r"^sw must hold finite sample weights >= 0, got sw\[0\] = -1.0$"),
    ("ce_sw_inf", "cross_entropy_loss_grad", ce_args, _set(sw=np.array([1, INF, 1, 1])),
     ValueError, r"^sw must hold finite sample weights >= 0, got sw\[1\] = inf$"),
    ("ce_nan_label", "cross_entropy_loss_grad", ce_args, _y_nan(), ValueError,
     r"y must hold class indices in 0..2 for cross_entropy, got y\[1\] = nan"),
    ("ce_label_past_last_class", "loss_grad", loss_args, lambda a: a["y"].__setitem__(
        (2, 0), 3.0), ValueError, r"got y\[2\] = 3.0"),
    ("ce_fractional_label", "loss_grad", loss_args, lambda a: a["y"].__setitem__(
        (0, 0), 0.5), ValueError, r"got y\[0\] = 0.5"),
    ("bce_two_columns", "loss_grad", lambda: loss_args(0, 2), _set(
        y=np.zeros((4, 1))), ValueError, r"y must have shape \(4, 2\), got \(4, 1\)"),
    ("mse_y_shape", "loss_grad", lambda: loss_args(2, 2), _set(y=np.zeros((4, 1))),
     ValueError, r"y must have shape \(4, 2\), got \(4, 1\)"),
    ("sw_shape", "loss_grad", loss_args, _set(sw=np.ones(3)), ValueError,
     r"sw must have shape \(4,\), got \(3,\)"),
    ("sgd_step_0", "sgd_update", sgd_args, _set(step=0), ValueError,
     r"step must be an integer >= 1, got 0"),
    ("sgd_step_float", "sgd_update", sgd_args, _set(step=1.0), ValueError,
     r"step must be an integer >= 1, got 1.0"),
    ("sgd_negative_lr", "sgd_update", sgd_args, _set(lr=-0.1), ValueError,
     r"lr must be >= 0, got -0.1"),
    ("sgd_buf_shape", "sgd_update", sgd_args, _set(buf=np.zeros(4)), ValueError,
     r"buf must have shape \(5,\), got \(4,\)"),
    ("adam_step_0", "adam_update", adam_args, _set(step=0), ValueError,
     r"step must be an integer >= 1, got 0"),
    ("adam_nan_lr", "adam_update", adam_args, _set(lr=NAN), ValueError,
     r"lr must be a finite number, got nan"),
    ("adam_inf_beta", "adam_update", adam_args, _set(beta1=INF), ValueError,
     r"beta1 must be a finite number, got inf"),
    ("adam_g_shape", "adam_update", adam_args, _set(g=np.zeros(6)), ValueError,
     r"g must have shape \(5,\), got \(6,\)"),
    ("rmsprop_centered_without_grad_avg", "rmsprop_update", rmsprop_args, _set(grad_avg=None),
     ValueError, r"grad_avg: rmsprop with these options updates this state buffer; "
     r"expected an array of shape \(5,\), got None"),
    ("adam_amsgrad_without_vmax", "adam_update", adam_args, _set(amsgrad=True, vmax=None),
     ValueError, r"vmax: adam with these options updates this state buffer; expected an "
     r"array of shape \(5,\), got None"),
    ("opt_code_5", "optimizer_update", opt_args, _set(opt=5), ValueError,
     r"unknown optimizer code 5; expected an integer in \[0, 5\)"),
    ("opt_state_one_row", "optimizer_update", opt_args, _set(state=np.zeros((1, 5))),
     ValueError, r"state must have shape \(>= 3, 5\) for optimizer 'rmsprop': at least 3 "
     r"rows"),
    # flags are 0 or 1: -1, 0.5 or 2 ran as "on" before
    ("opt_adam_maximize_minus_one", "optimizer_update", lambda: opt_args("adam"), _set(
        hyper=np.array([0.1, 0.9, 0.999, 1e-8, 0, 0, -1, 0])), ValueError,
     r"^maximize must be 0 or 1 \(a flag\), got -1.0$"),
    ("opt_adam_amsgrad_two", "optimizer_update", lambda: opt_args("adam"), _set(
        hyper=codes.hyper_vector("adam", amsgrad=2)), ValueError,
     r"^amsgrad must be 0 or 1 \(a flag\), got 2.0$"),
    ("opt_sgd_nesterov_half", "optimizer_update", lambda: opt_args("sgd"), _set(
        hyper=codes.hyper_vector("sgd", momentum=0.9, nesterov=0.5)), ValueError,
     r"^nesterov must be 0 or 1 \(a flag\), got 0.5$"),
    ("opt_rmsprop_centered_half", "optimizer_update", opt_args, _set(
        hyper=codes.hyper_vector("rmsprop", centered=0.5)), ValueError,
     r"^centered must be 0 or 1 \(a flag\), got 0.5$"),
    ("rmsprop_maximize_half", "rmsprop_update", rmsprop_args, _set(maximize=0.5), ValueError,
     r"^maximize must be 0 or 1 \(a flag\), got 0.5$"),
    ("epoch_maximize_minus_one", "train_epoch", epoch_args, _set(
        hyper=codes.hyper_vector("adam", maximize=-1)), ValueError,
     r"^maximize must be 0 or 1 \(a flag\), got -1.0$"),
    ("opt_step_0", "optimizer_update", lambda: opt_args("adam"), _set(step=0), ValueError,
     r"step must be an integer >= 1, got 0"),
    ("opt_hyper_len", "optimizer_update", opt_args, _set(hyper=np.zeros(7)), ValueError,
     r"hyper must have shape \(8,\), got \(7,\)"),
    ("opt_hyper_nan", "optimizer_update", lambda: opt_args("sgd"), _set(
        hyper=codes.hyper_vector("sgd") * np.array([1, NAN, 1, 1, 1, 1, 1, 1])), ValueError,
     r"momentum must be a finite number, got nan"),
    # the ranges of codes.HYPER_RANGES, as fastmlp.optim and torch.optim check them (beta1 = 1
    # divides by 1 - beta1^t = 0; the kernels gave NaN parameters)
    ("adam_beta1_one", "adam_update", adam_args, _set(beta1=1.0), ValueError,
     r"beta1 must be in \[0, 1\), got 1.0"),
    ("adam_negative_eps", "adam_update", adam_args, _set(eps=-1e-8), ValueError,
     r"eps must be > 0, got -1e-08"),
    ("sgd_nesterov_without_momentum", "sgd_update", sgd_args, _set(nesterov=True, momentum=0),
     ValueError, r"nesterov needs momentum > 0 and dampening = 0, got momentum 0"),
    ("opt_rmsprop_negative_alpha", "optimizer_update", opt_args, _set(
        hyper=codes.hyper_vector("rmsprop", alpha=-0.5)), ValueError,
     r"alpha must be in \[0, 1\), got -0.5"),
    # narrower than torch.optim where its ranges give NaN: eps = 0 (0/0 where every gradient
    # was 0) and alpha >= 1 (square_avg stuck at 0 or negative)
    ("adam_zero_eps", "adam_update", adam_args, _set(eps=0.0), ValueError,
     r"eps must be > 0, got 0.0; eps = 0 makes a coordinate .* 0 / 0 = NaN"),
    ("opt_rmsprop_alpha_above_one", "optimizer_update", opt_args, _set(
        hyper=codes.hyper_vector("rmsprop", alpha=1.5)), ValueError,
     r"alpha must be in \[0, 1\), got 1.5"),
    # centered with alpha = 0: grad_avg = g, so the variance g^2 - g^2 = 0 and every step was
    # lr * g / eps (then NaN)
    ("opt_rmsprop_centered_alpha_0", "optimizer_update", opt_args, _set(
        hyper=codes.hyper_vector("rmsprop", alpha=0.0, centered=True)), ValueError,
     r"centered needs alpha > 0, got alpha 0.0; with alpha = 0 .* lr \* g / eps"),
    ("opt_adagrad_negative_lr_decay", "optimizer_update", lambda: opt_args("adagrad"), _set(
        hyper=codes.hyper_vector("adagrad", lr_decay=-1.0)), ValueError,
     r"lr_decay must be >= 0, got -1.0"),
    ("net_one_size", "mlp_forward", fwd_args, _set(sizes=np.array([3])), ValueError,
     r"sizes must hold at least two positive layer widths, got \[3\]"),
    ("net_zero_width", "mlp_forward", fwd_args, _set(sizes=np.array([3, 0, 3])), ValueError,
     r"sizes must hold at least two positive layer widths, got \[3, 0, 3\]"),
    ("net_float_sizes", "mlp_forward", fwd_args, _set(sizes=np.array([3.0, 4.0, 3.0])),
     TypeError, r"sizes must be a 1-D integer array, got float64"),
    ("net_acts_len", "mlp_forward", fwd_args, _set(acts=np.array([1])), ValueError,
     r"acts must hold one activation code per layer \(2\), got 1"),
    ("net_acts_code", "mlp_forward", fwd_args, _set(acts=np.array([9, 0])), ValueError,
     r"acts must hold activation codes in \[0, 8\), got \[9, 0\]"),
    ("net_params_len", "mlp_forward", fwd_args, _set(params=np.zeros(N_PARAMS + 1)),
     ValueError, rf"params must have shape \({N_PARAMS},\), got \({N_PARAMS + 1},\)"),
    ("net_x_width", "mlp_forward", fwd_args, _set(x=np.zeros((6, 4))), ValueError,
     r"x must have shape \(n, 3\), got \(6, 4\)"),
    ("mlp_ce_nan_label", "mlp_loss_grad", lg_args, _y_nan(row=4), ValueError,
     r"got y\[4\] = nan"),
    ("mlp_sw_all_zero", "mlp_loss_grad", lg_args, _set(sw=np.zeros(6)), ValueError,
     r"^sw sums to 0 \(all 6 weights 0\)"),
    ("mlp_sw_nan", "mlp_loss_grad", lg_args, _set(sw=np.array([1, 1, NAN, 1, 1, 1])),
     ValueError, r"^sw must hold finite sample weights >= 0, got sw\[2\] = nan$"),
    ("mlp_sw_total_overflows", "mlp_loss_grad", lg_args, _set(sw=np.full(6, 1e308)),
     ValueError, r"^sw sums to inf in float64: .* rescale the weights"),
    ("epoch_sw_negative", "train_epoch", epoch_args, _set(sw=np.array([1, 1, 1, -2, 1, 1.0])),
     ValueError, r"^sw must hold finite sample weights >= 0, got sw\[3\] = -2.0$"),
    ("mlp_loss_code", "mlp_loss_grad", lg_args, _set(loss=-1), ValueError,
     r"unknown loss code -1"),
    # bce with three outputs is multilabel: it needs a 0/1 column per output
    ("mlp_bce_three_outputs", "mlp_loss_grad", lg_args, _set(loss=0), ValueError,
     r"y must have shape \(6, 3\), got \(6, 1\)"),
    ("epoch_batch_size_0", "train_epoch", epoch_args, _set(batch_size=0), ValueError,
     r"batch_size must be an integer >= 1, got 0"),
    ("epoch_batch_size_float", "train_epoch", epoch_args, _set(batch_size=2.5), ValueError,
     r"batch_size must be an integer >= 1, got 2.5"),
    ("epoch_perm_range", "train_epoch", epoch_args, _set(perm=np.array([0, 1, 6])),
     ValueError, r"perm must hold row indices of x in \[0, 6\), got values in \[0, 6\]"),
    ("epoch_perm_negative", "train_epoch", epoch_args, _set(perm=np.array([-1, 1])),
     ValueError, r"perm must hold row indices of x in \[0, 6\)"),
    ("epoch_lrs_short", "train_epoch", epoch_args, _set(lrs=np.full(2, 0.01)), ValueError,
     r"lrs must be a 1-D array of at least 3 learning rates \(one per batch\), got shape "
     r"\(2,\)"),
    ("epoch_lrs_nan", "train_epoch", epoch_args, _set(lrs=np.array([0.01, NAN, 0.01])),
     ValueError, r"lrs must hold finite learning rates >= 0, got lrs\[1\] = nan"),
    ("epoch_lrs_negative", "train_epoch", epoch_args, _set(lrs=np.array([0.01, 0.01, -1.0])),
     ValueError, r"got lrs\[2\] = -1.0"),
    ("epoch_step0_negative", "train_epoch", epoch_args, _set(step0=-1), ValueError,
     r"step0 must be an integer >= 0, got -1"),
    ("epoch_step0_overflow", "train_epoch", epoch_args, _set(step0=2**63 - 2), ValueError,
     r"step0 \+ the 3 batches of this epoch must stay below 2\*\*63"),
    ("epoch_opt_code", "train_epoch", epoch_args, _set(opt=7), ValueError,
     r"unknown optimizer code 7"),
    ("epoch_opt_none_is_not_an_update", "train_epoch", epoch_args, _set(opt=codes.OPT_NONE),
     ValueError, r"unknown optimizer code -1"),
    ("epoch_state_one_row", "train_epoch", epoch_args, _set(state=np.zeros((1, N_PARAMS))),
     ValueError, rf"state must have shape \(>= 3, {N_PARAMS}\) for optimizer 'adam'"),
    ("epoch_beta2_one", "train_epoch", epoch_args, _set(
        hyper=codes.hyper_vector("adam", beta2=1.0)), ValueError,
     r"beta2 must be in \[0, 1\), got 1.0"),
    ("epoch_hyper_inf", "train_epoch", epoch_args, _set(
        hyper=codes.hyper_vector("adam") + np.array([0, 0, INF, 0, 0, 0, 0, 0])), ValueError,
     r"beta2 must be a finite number, got inf"),
    ("epoch_nan_label", "train_epoch", epoch_args, _y_nan(row=3), ValueError,
     r"got y\[3\] = nan"),
    ("epoch_batch_losses_short", "train_epoch", epoch_args, _set(batch_losses=np.zeros(2)),
     ValueError, r"batch_losses must be a 1-D array of at least 3 entries"),
]


def _run(backend, kernel, build, change):
    args = build()
    if callable(change):
        change(args)
    else:
        args.update(change)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    try:
        getattr(backends.get_backend(backend), kernel)(**args)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        for k, v in before.items():  # a refused call changes nothing
            assert np.array_equal(args[k], v, equal_nan=True), f"{backend} modified {k}"
        return type(exc), str(exc)
    return None, "accepted"


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_same_error_on_every_backend(case):
    _, kernel, build, change, exc, pattern = case
    got = {b: _run(b, kernel, build, change) for b in BACKENDS}
    for b, (typ, msg) in got.items():
        assert typ is exc, f"{b}: expected {exc.__name__}, got {typ} {msg!r}"
        assert re.search(pattern, msg), f"{b}: message {msg!r} does not match {pattern!r}"
    assert len({m for _, m in got.values()}) == 1, f"messages differ: {got}"


@pytest.mark.parametrize("kernel,build", [
    ("activation_forward", act_args), ("sigmoid_pair", pair_args),
    ("dense_forward", dense_args), ("loss_grad", loss_args),
    ("cross_entropy_loss_grad", ce_args), ("sgd_update", sgd_args),
    ("adam_update", adam_args), ("rmsprop_update", rmsprop_args),
    ("optimizer_update", opt_args), ("mlp_forward", fwd_args), ("mlp_loss_grad", lg_args),
    ("train_epoch", epoch_args)])
def test_the_valid_calls_are_accepted_everywhere(kernel, build):
    """The rows above spoil calls that every backend accepts as they are built."""
    for b in BACKENDS:
        assert _run(b, kernel, build, {}) == (None, "accepted")


# ---------------------------------------------------------------------------------------
# codes.py is the one table; fastmlp.h mirrors it.
# ---------------------------------------------------------------------------------------

def _header():
    with open(HEADER) as f:
        return f.read()


def _header_value(text, name):
    m = re.search(rf"\b{name}\s*=?\s*(-?\d+(?:\.\d+)?)\b", text)
    assert m, f"{name} not found in fastmlp.h"
    return float(m.group(1))


def test_header_constants_equal_codes():
    text = _header()
    for i, name in enumerate(codes.ACTIVATIONS):
        assert _header_value(text, "FASTMLP_ACT_" + name.upper()) == i
    for i, name in enumerate(codes.LOSSES):
        assert _header_value(text, "FASTMLP_LOSS_" + name.upper()) == i
    for i, name in enumerate(codes.OPTIMIZERS):
        assert _header_value(text, "FASTMLP_OPT_" + name.upper()) == i
    assert _header_value(text, "FASTMLP_OPT_NONE") == codes.OPT_NONE
    assert _header_value(text, "FASTMLP_N_HYPER") == codes.N_HYPER
    assert _header_value(text, "FASTMLP_N_ACTIVATIONS") == codes.N_ACTIVATIONS
    assert _header_value(text, "FASTMLP_N_LOSSES") == codes.N_LOSSES
    assert _header_value(text, "FASTMLP_N_OPTIMIZERS") == codes.N_OPTIMIZERS
    assert _header_value(text, "FASTMLP_LEAKY_RELU_SLOPE") == codes.LEAKY_RELU_SLOPE
    assert _header_value(text, "FASTMLP_ELU_ALPHA") == codes.ELU_ALPHA


def test_header_hyper_layout_equals_hyper_names():
    """The comment of fastmlp_optimizer_update lists each layout: it must be HYPER_NAMES."""
    text = _header()
    block = text[text.index("laid out as in fastmlp/codes.py"):]
    block = block[:block.index("*/")]
    listed = {}
    for names, fields in re.findall(r"^\s*([a-z, ]+?) \[([a-z_0-9, ]+)\]", block, re.M):
        for name in names.split(", "):
            listed[name.strip()] = tuple(f.strip() for f in fields.split(","))
    assert listed == codes.HYPER_NAMES


def test_c_library_counts_equal_codes():
    c = pytest.importorskip("fastmlp.backends.c")
    if not c.AVAILABLE:
        pytest.skip(c.UNAVAILABLE_REASON)
    lib = c._lib
    for i, name in enumerate(codes.OPTIMIZERS):
        assert lib.fastmlp_optimizer_n_hyper(i) == len(codes.HYPER_NAMES[name])
        assert lib.fastmlp_optimizer_state_rows(i) == codes.N_STATE[name]
    assert lib.FASTMLP_OPT_NONE == codes.OPT_NONE
    assert lib.FASTMLP_N_ACTIVATIONS == codes.N_ACTIVATIONS


# ---------------------------------------------------------------------------------------
# Hyper-parameters by name.
# ---------------------------------------------------------------------------------------

def test_hyper_vector_places_each_name_at_its_kernel_position():
    for opt, names in codes.HYPER_NAMES.items():
        values = {k: float(i + 1) / 10 for i, k in enumerate(names)}
        h = codes.hyper_vector(opt, **values)
        assert h.shape == (codes.N_HYPER,) and h.dtype == np.float64
        assert list(h[:len(names)]) == [values[k] for k in names]
        assert not h[len(names):].any()
        back = codes.hyper_dict(opt, h)
        assert list(back) == list(names)


def test_hyper_vector_defaults_and_errors():
    h = codes.hyper_vector("adamw")
    assert codes.hyper_dict("adamw", h)["weight_decay"] == 1e-2   # torch's AdamW default
    assert codes.hyper_dict("sgd", codes.hyper_vector("sgd", nesterov=True))["nesterov"] is True
    with pytest.raises(TypeError, match="unknown hyper-parameter.*betas.*expected: lr, beta1"):
        codes.hyper_vector("adam", betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        codes.hyper_vector("lbfgs")
    with pytest.raises(ValueError, match="lr of sgd must be a finite number, got nan"):
        codes.hyper_vector("sgd", lr=NAN)


def test_optimizer_classes_build_their_vector_by_name():
    p = np.zeros(4)
    opt = optim.RMSprop(p, lr=0.05, alpha=0.9, momentum=0.3, centered=True)
    h = opt.hyper_vector()
    assert codes.hyper_dict("rmsprop", h) == dict(lr=0.05, alpha=0.9, eps=1e-8,
                                                  weight_decay=0.0, momentum=0.3,
                                                  centered=True, maximize=False)
    adam = optim.Adam(p, lr=0.01, betas=(0.8, 0.95))
    assert codes.hyper_dict("adam", adam.hyper_vector())["beta2"] == 0.95
