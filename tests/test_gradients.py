"""The NumPy reference against central finite differences, in float64."""

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.backends import reference as R
from fastmlp.codes import ACTIVATIONS, LOSSES


def _fd(f, x, h=1e-6):
    g = np.empty_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        a = f()
        x[i] = old - h
        b = f()
        x[i] = old
        g[i] = (a - b) / (2 * h)
    return g


@pytest.mark.parametrize("act", range(len(ACTIVATIONS)), ids=ACTIVATIONS)
def test_activation_derivative(act):
    rng = np.random.default_rng(act)
    # avoid |z| < 1e-3 where relu-family kinks sit
    z = rng.uniform(0.05, 3, size=(6, 5)) * rng.choice([-1, 1], size=(6, 5))
    da = rng.normal(size=z.shape)
    dz = np.empty_like(z)
    R.activation_backward(dz, da, z, act)

    def f():
        out = np.empty_like(z)
        R.activation_forward(out, z, act)
        return float((out * da).sum())

    np.testing.assert_allclose(dz, _fd(f, z), rtol=1e-7, atol=1e-9)


def _targets(loss, rng, b, k):
    if loss == "bce":
        return rng.integers(0, 2, size=(b, 1)).astype(float)
    if loss == "cross_entropy":
        return rng.integers(0, k, size=(b, 1)).astype(float)
    return rng.normal(size=(b, k))


@pytest.mark.parametrize("loss", range(len(LOSSES)), ids=LOSSES)
def test_loss_gradient(loss):
    rng = np.random.default_rng(10 + loss)
    b, k = 9, (1 if loss == 0 else 4)
    z = rng.normal(scale=3, size=(b, k))
    y = _targets(LOSSES[loss], rng, b, k)
    sw = rng.uniform(0.2, 2.0, size=b)
    dz = np.empty_like(z)
    R.loss_grad(dz, z, y, sw, loss)
    g = _fd(lambda: R.loss_grad(np.empty_like(z), z, y, sw, loss), z)
    np.testing.assert_allclose(dz, g, rtol=1e-6, atol=1e-8)


def test_bce_stable_for_huge_logits():
    z = np.array([[1e4], [-1e4], [30.0], [-30.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    dz = np.empty_like(z)
    value = R.bce_loss_grad(dz, z, y, np.ones(4))
    assert np.isfinite(value) and np.isfinite(dz).all()
    # per-sample losses: 1e4, 1e4, ~1e-13, ~1e-13
    assert value == pytest.approx((1e4 + 1e4) / 4, rel=1e-12)
    np.testing.assert_allclose(dz[:, 0] * 4, [1, -1, 0, 0], atol=1e-12)


def test_cross_entropy_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    y = np.array([[1.0], [2.0]])
    dz = np.empty_like(z)
    value = R.cross_entropy_loss_grad(dz, z, y, np.ones(2))
    assert value == pytest.approx((1e4 + np.log(3)) / 2, rel=1e-12)
    assert np.isfinite(dz).all()


ARCHS = [[3], [3, 5], [4, 6, 5], [2, 3, 3, 3, 3]]  # hidden part; the loss sets the output
N_OUT = {"bce": 1, "cross_entropy": 3, "mse": 2}


@pytest.mark.parametrize("hidden", ARCHS, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu", "elu"])
def test_mlp_loss_and_grad_vs_finite_differences(hidden, loss, activation):
    sizes = hidden + [N_OUT[loss]]
    rng = np.random.default_rng(sum(sizes))
    m = MLP(sizes, activation=activation, dtype="float64", seed=3, backend="numpy")
    m.params[...] += rng.normal(scale=0.3, size=m.n_params)  # biases off zero: no kinks at 0
    X = rng.normal(size=(8, sizes[0]))
    y = _targets(loss, rng, 8, sizes[-1])
    y = y[:, 0].astype(int) if loss != "mse" else y
    sw = rng.uniform(0.5, 1.5, size=8)
    value, grad = m.loss_and_grad(X, y, loss=loss, sample_weight=sw)
    g = _fd(lambda: m.loss_and_grad(X, y, loss=loss, sample_weight=sw)[0], m.params)
    np.testing.assert_allclose(grad, g, rtol=1e-6, atol=1e-8)
