"""Property tests over every backend entry point: generated shapes (empty ones included),
dtypes (float32/64, big-endian, integer), NaN/inf values, wrong codes, steps, learning
rates and indices.  Properties:

- no call crashes the process or escapes with anything but ValueError / TypeError (a
  segfault would end the test run: "0 crashes" is the first property);
- a refused call leaves every argument as it was;
- on native float64 arrays, which every backend takes, all backends agree: the same
  exception type and message, or all accept.

A CI-sized sample runs by default (a few seconds); FASTMLP_NIGHTLY=1 runs 2,000 examples
per entry point (12,000 in all)."""

import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fastmlp import backends, codes  # noqa: E402

NIGHTLY = os.environ.get("FASTMLP_NIGHTLY") == "1"
SETTINGS = settings(max_examples=2000 if NIGHTLY else 20, deadline=None, derandomize=not NIGHTLY,
                    suppress_health_check=list(HealthCheck), database=None)
BACKENDS = [n for n, (ok, _) in backends.available_backends().items() if ok]
ALLOWED = (ValueError, TypeError)

DTYPES = st.sampled_from(["<f8", "<f4", ">f8", ">f4", "<i8"])
VALUES = st.sampled_from(["normal", "nan", "inf", "huge", "zeros"])


def _array(rng, shape, dtype="<f8", values="normal"):
    a = rng.standard_normal(shape)
    if a.size and values == "nan":
        a.reshape(-1)[rng.integers(0, a.size)] = np.nan
    elif a.size and values == "inf":
        a.reshape(-1)[rng.integers(0, a.size)] = -np.inf
    elif values == "huge":
        a *= 3e38
    elif values == "zeros":
        a[...] = 0
    with np.errstate(all="ignore"):  # 3e38 overflows float32 on purpose
        return a.astype(dtype)


def _run_everywhere(kernel, make_args):
    """Call kernel on every backend with fresh arguments; returns {backend: outcome}."""
    outcomes = {}
    for b in BACKENDS:
        args = make_args()
        before = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        try:
            with np.errstate(all="ignore"):
                getattr(backends.get_backend(b), kernel)(*args)
        except ALLOWED as exc:
            for a, a0 in zip(args, before):
                if isinstance(a, np.ndarray):
                    assert np.array_equal(a, a0, equal_nan=True), f"{b}: refused call wrote"
            outcomes[b] = (type(exc).__name__, str(exc))
        else:
            outcomes[b] = ("ok", "")
    return outcomes


def _agree(outcomes, native):
    if native:
        assert len(set(outcomes.values())) == 1, outcomes


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), shape=st.sampled_from([(0,), (1,), (5, 3), (0, 4),
                                                               (33,)]),
       dtype=DTYPES, values=VALUES, act=st.integers(-2, 9), backward=st.booleans())
def test_activations(seed, shape, dtype, values, act, backward):
    def make():
        rng = np.random.default_rng(seed)
        z = _array(rng, shape, dtype, values)
        if backward:
            return [np.empty(shape, dtype), _array(rng, shape, dtype, values), z, act]
        return [np.empty(shape, dtype), z, act]
    out = _run_everywhere("activation_backward" if backward else "activation_forward", make)
    _agree(out, dtype == "<f8")


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(0, 9), k=st.integers(1, 4),
       loss=st.integers(-1, 3), label=st.sampled_from(["ok", "nan", "big", "half", "neg"]),
       values=VALUES, dtype=DTYPES, ky=st.integers(0, 1))
def test_losses(seed, B, k, loss, label, values, dtype, ky):
    def make():
        rng = np.random.default_rng(seed)
        out = _array(rng, (B, k), dtype, values)
        y = rng.integers(0, k, (B, k if (loss == 2 and ky) else 1)).astype(float)
        if B and label != "ok":
            y[0, 0] = {"nan": np.nan, "big": k, "half": 0.5, "neg": -1}[label]
        with np.errstate(all="ignore"):  # a NaN label cast to int64 on purpose
            y = y.astype(dtype)
        return [np.empty((B, k), dtype), out, y, np.abs(_array(rng, (B,), dtype)) + 0.1, loss]
    _agree(_run_everywhere("loss_grad", make), dtype == "<f8")


HYPER_BAD = st.sampled_from([None, "nan", "inf", "neg_lr"])


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([0, 1, 7, 40000]),
       opt=st.integers(-1, 5), rows=st.integers(0, 4), step=st.sampled_from(
           [0, 1, 2, -3, 2**62, 1.0]), bad=HYPER_BAD, dtype=DTYPES, values=VALUES)
def test_optimizer_update(seed, n, opt, rows, step, bad, dtype, values):
    def make():
        rng = np.random.default_rng(seed)
        name = codes.OPTIMIZERS[opt] if 0 <= opt < len(codes.OPTIMIZERS) else "sgd"
        h = codes.hyper_vector(name, lr=0.01)
        if bad == "nan":
            h[1] = np.nan
        elif bad == "inf":
            h[2] = np.inf
        elif bad == "neg_lr":
            h[0] = -1
        return [opt, _array(rng, (n,), dtype, values), _array(rng, (n,), dtype),
                np.zeros((rows, n), dtype), step, h]
    _agree(_run_everywhere("optimizer_update", make), dtype == "<f8")


NETS = st.sampled_from([([3, 1], [0]), ([2, 4, 3], [1, 0]), ([3, 5, 1], [9, 0]),
                        ([2, 0, 1], [1, 0]), ([4], []), ([2, 3, 2], [1])])


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), net=NETS, B=st.integers(0, 7), loss=st.integers(-1, 3),
       values=VALUES, dtype=DTYPES, forward=st.booleans(), plen=st.integers(-1, 1))
def test_network(seed, net, B, loss, values, dtype, forward, plen):
    sizes, acts = net
    n_params = max(0, sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:])) + plen)

    def make():
        rng = np.random.default_rng(seed)
        x = _array(rng, (B, sizes[0]), dtype, values)
        params = _array(rng, (n_params,), dtype) * 0.3
        if forward:
            return [np.empty((B, sizes[-1]), dtype), params, x, np.array(sizes),
                    np.array(acts)]
        k = sizes[-1] if loss == 2 else 1
        y = rng.integers(0, max(sizes[-1], 2), (B, k)).astype(dtype)
        return [np.empty(n_params, dtype), params, x, y, np.ones(B, dtype), np.array(sizes),
                np.array(acts), loss]
    _agree(_run_everywhere("mlp_forward" if forward else "mlp_loss_grad", make),
           dtype == "<f8")


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), N=st.integers(0, 12), bs=st.sampled_from(
           [0, 1, 3, 50, 2**63 - 1]), step0=st.sampled_from([0, 5, -1, 2**63 - 2]),
       lr_bad=st.sampled_from([None, "nan", "neg", "short"]), perm_bad=st.booleans(),
       opt=st.integers(-1, 5), values=VALUES, dtype=DTYPES)
def test_train_epoch(seed, N, bs, step0, lr_bad, perm_bad, opt, values, dtype):
    sizes, acts = np.array([3, 4, 2]), np.array([4, 0])
    n_params = 3 * 4 + 4 + 4 * 2 + 2

    def make():
        rng = np.random.default_rng(seed)
        perm = rng.permutation(N)
        if perm_bad and N:
            perm[0] = N
        nb = -(-N // max(bs, 1)) if N else 0
        lrs = np.full(nb + 1, 0.01)
        if lr_bad == "nan" and nb:
            lrs[0] = np.nan
        elif lr_bad == "neg" and nb:
            lrs[-2] = -1
        elif lr_bad == "short":
            lrs = lrs[:max(nb - 1, 0)]
        name = codes.OPTIMIZERS[opt] if 0 <= opt < len(codes.OPTIMIZERS) else "adam"
        return [_array(rng, (n_params,), dtype) * 0.3, np.zeros(n_params, dtype),
                np.zeros((3, n_params), dtype), np.zeros(nb + 1),
                _array(rng, (N, 3), dtype, values), rng.integers(0, 2, (N, 1)).astype(dtype),
                np.ones(N, dtype), perm, bs, lrs, step0, opt, codes.hyper_vector(name),
                sizes, acts, 1]
    _agree(_run_everywhere("train_epoch", make), dtype == "<f8")


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 50), bad=st.sampled_from(
    [None, "nan", "one", "neg", "out_dtype", "u_dtype"]))
def test_shuffle_indices(seed, n, bad):
    def make():
        u = np.random.default_rng(seed).random(n)
        out = np.zeros(n, np.int64)
        if n and bad in ("nan", "one", "neg"):
            u[n // 2] = {"nan": np.nan, "one": 1.0, "neg": -0.1}[bad]
        if bad == "out_dtype":
            out = out.astype(np.int32)
        if bad == "u_dtype":
            u = u.astype(">f8")
        return [out, u]
    _agree(_run_everywhere("shuffle_indices", make), True)


@SETTINGS
@given(n=st.integers(0, 70_000), key=st.one_of(st.integers(0, 2 ** 64 - 1),
                                                st.integers(-2, -1), st.just(2 ** 64)),
       bad=st.sampled_from([None, "out_dtype", "strided"]))
def test_epoch_permutation(n, key, bad):
    def make():
        out = np.zeros(n, np.int64)
        if bad == "out_dtype":
            out = out.astype(np.int32)
        if bad == "strided":
            out = np.zeros(2 * n, np.int64)[::2]
        return [out, key]
    _agree(_run_everywhere("epoch_permutation", make), True)
