"""The loss gradient never holds a subnormal number (reference.py's loss section says why:
a confidently right logit gives sigmoid(z) - y below the smallest normal number, and every
backward product it enters then takes a microcode assist on Intel CPUs - on a separable
problem the C backend's epochs got 3x slower as the logits grew).  Every backend flushes
the same values and agrees with the reference; a batch of only such rows has an exactly
zero parameter gradient and moves no parameter."""

import numpy as np
import pytest

from fastmlp import backends
from fastmlp.backends import reference as ref

AVAILABLE = [name for name, (ok, _) in backends.available_backends().items() if ok]
LOSS = {"bce": 0, "cross_entropy": 1, "mse": 2}


def subnormal(a):
    return (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)


def unflushed_gradient(name, z, y, sw):
    """The loss gradient as the formulas give it in the dtype of z, before any flush."""
    wsum = sw.sum()
    if name == "bce":
        s = np.where(z >= 0, 1 / (1 + np.exp(-z)), np.exp(z) / (1 + np.exp(z)))
        return sw[:, None] * (s - y) / wsum
    if name == "cross_entropy":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        p[np.arange(z.shape[0]), y[:, 0].astype(np.int64)] -= 1
        return p * (sw / wsum)[:, None]
    return (z - y) * (2 * sw / (z.shape[1] * wsum))[:, None]


def confident_batch(name, n=64, seed=0):
    """(logits, targets, sample weights) in float32 whose gradient has subnormal entries
    (confidently right rows) beside normal ones (the last rows are wrong or unsure)."""
    rng = np.random.default_rng(seed)
    sw = rng.uniform(0.5, 2.0, n).astype(np.float32)
    if name == "bce":
        z = -rng.uniform(84, 100, (n, 1)).astype(np.float32)   # sure it is a 0 ...
        y = np.zeros((n, 1), np.float32)
        z[-4:] = [[0.3], [-2.0], [5.0], [-90.0]]
        y[-4:] = [[1], [1], [0], [1]]                           # ... except these
    elif name == "cross_entropy":
        z = np.zeros((n, 3), np.float32)
        z[:, 0] = rng.uniform(84, 100, n)                       # class 0, sure
        y = np.zeros((n, 1), np.float32)
        y[-3:] = 2
    else:
        y = np.zeros((n, 2), np.float32)                        # a near-perfect fit
        z = np.float32(1e-37) * rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        y[-4:] = rng.standard_normal((4, 2))
    return z, y, sw


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("name", list(LOSS))
def test_loss_gradient_is_flushed_and_backends_agree(name, backend):
    z, y, sw = confident_batch(name)
    with np.errstate(all="ignore"):
        raw = unflushed_gradient(name, z, y, sw)
    assert subnormal(raw).sum() >= 8, "the batch must reach the subnormal range to test it"
    assert (np.abs(raw) > 1e-3).any(), "and keep some ordinary gradients beside them"
    kern = backends.get_backend(backend)
    d = np.full_like(z, np.nan)
    loss = kern.loss_grad(d, z, y, sw, LOSS[name])
    assert not subnormal(d).any()
    d_ref = np.empty_like(z)
    loss_ref = ref.loss_grad(d_ref, z, y, sw, LOSS[name])
    assert np.array_equal(d == 0, d_ref == 0)
    # exactly the rows the formula puts below the smallest normal number are zeroed
    assert np.array_equal(d_ref == 0, (raw == 0) | subnormal(raw))
    np.testing.assert_allclose(d, d_ref, rtol=1e-5, atol=0)
    assert loss == pytest.approx(loss_ref, rel=1e-5, abs=1e-30)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_confident_batch_has_zero_parameter_gradient(backend):
    """5-8-1 whose output is about -90 on every row, all labels 0: each row's gradient is
    subnormal before the flush (a nonzero subnormal parameter gradient without it), zero
    after it."""
    rng = np.random.default_rng(3)
    sizes = np.array([5, 8, 1], np.int64)
    acts = np.array([1, 0], np.int64)           # relu, identity
    offs, n_params = ref.layer_offsets(sizes)
    params = (0.1 * rng.standard_normal(n_params)).astype(np.float32)
    params[offs[1][1]] = -90.0                  # output bias
    x = rng.standard_normal((32, 5)).astype(np.float32)
    y = np.zeros((32, 1), np.float32)
    sw = np.ones(32, np.float32)
    out = np.empty((32, 1), np.float32)
    ref.mlp_forward(out, params, x, sizes, acts)
    with np.errstate(all="ignore"):
        assert subnormal(unflushed_gradient("bce", out, y, sw)).all()
    g = np.full(n_params, np.nan, np.float32)
    backends.get_backend(backend).mlp_loss_grad(g, params, x, y, sw, sizes, acts, 0)
    assert np.array_equal(g, np.zeros_like(g))
