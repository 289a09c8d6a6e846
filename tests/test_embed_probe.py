"""Kernels called directly, as another tool embedding fastmlp would call them.

An output that overlaps another argument (a parameter vector that is a row of the optimizer
state, dw that is w, sigmoid_pair's out over its z, grad that is params, a cross-entropy
gradient written over its logits) made each backend compute its own wrong answer without
a word: NumPy reads a whole step before it writes, Numba and C read and write fused, in
tiles, on threads.  Every backend now refuses it with the same message naming both arrays.
Element-wise kernels still run exactly in place (activation_forward's out is z,
activation_backward's dz is da or z, dense_forward's out is z), where the backends agree.
"""

import numpy as np
import pytest

from fastmlp import backends

BACKENDS = [n for n, (ok, _) in backends.available_backends().items() if ok]
ADAM = np.array([0.01, 0.9, 0.999, 1e-8, 0.0, 0.0, 0.0, 0.0])
SIZES, ACTS = np.array([3, 4, 1]), np.array([1, 0])
N_PARAMS = 3 * 4 + 4 + 4 * 1 + 1


def _f32(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _p_is_state_row(be):
    st = np.abs(_f32((3, 50), 1))
    be.optimizer_update(3, st[2], _f32(50, 2), st, 2, ADAM)


def _dw_is_w(be):
    w = _f32((5, 5), 4)
    be.dense_backward(np.zeros((8, 5), np.float32), w, np.zeros(5, np.float32), _f32((8, 5), 7),
                      _f32((8, 5), 3), w, _f32((8, 5), 6), 1)


def _pair_out_over_z(be):
    buf = _f32(40, 8)
    be.sigmoid_pair(buf.reshape(20, 2), buf[:20])


def _grad_is_params(be):
    p = _f32(N_PARAMS, 1)
    x = _f32((16, 3), 2)
    be.train_epoch(p, p, np.zeros((3, N_PARAMS), np.float32), np.zeros(2), x,
                   (x[:, :1] > 0).astype(np.float32), None, np.arange(16), 8, np.full(2, 0.1),
                   0, 3, ADAM, SIZES, ACTS, 0)


def _forward_out_is_x(be):
    x = _f32((6, 2), 2)
    be.mlp_forward(x, _f32(2 * 3 + 3 + 3 * 2 + 2, 1), x, np.array([2, 3, 2]), ACTS)


def _adam_m_is_g(be):
    g = _f32(10, 2)
    be.adam_update(_f32(10, 1), g, g, np.zeros(10, np.float32), None, 1, 0.01, 0.9, 0.999,
                   1e-8, 0.0, False, False, False)


def _loss_dout_is_out(be):
    """In place the reference's cross-entropy read the logits again for the loss after it
    had written the gradient over them: 1.20 where Numba and C gave 0.61."""
    out = _f32((8, 3), 1)
    y = np.array([[0], [2], [1], [0], [1], [2], [2], [0]], np.float32)
    be.loss_grad(out, out, y, np.ones(8, np.float32), 1)


OVERLAPS = {
    "loss_grad dout is out": (_loss_dout_is_out, "dout must not overlap out"),
    "p is a row of state": (_p_is_state_row, "p must not overlap state"),
    "dw is w": (_dw_is_w, "dw must not overlap w"),
    "sigmoid_pair out over z": (_pair_out_over_z, "out must not overlap z"),
    "train_epoch grad is params": (_grad_is_params, "params must not overlap grad"),
    "mlp_forward out is x": (_forward_out_is_x, "out must not overlap x"),
    "adam m is g": (_adam_m_is_g, "m must not overlap g"),
}


@pytest.mark.parametrize("case", sorted(OVERLAPS))
@pytest.mark.parametrize("name", BACKENDS)
def test_an_output_overlapping_an_input_is_refused_by_name(name, case):
    call, message = OVERLAPS[case]
    with pytest.raises(ValueError, match=message):
        call(backends.get_backend(name))


@pytest.mark.parametrize("name", BACKENDS)
def test_a_missing_sample_weight_array_is_named_as_none(name):
    """mlp_loss_grad takes sw as an array (train_epoch and the C and Numba entry points
    also take None); the error said "got ()", the shape NumPy gives None."""
    x = _f32((16, 3), 2)
    with pytest.raises(ValueError, match=r"sw must have shape \(16,\), got None"):
        backends.get_backend(name).mlp_loss_grad(
            np.zeros(N_PARAMS, np.float32), _f32(N_PARAMS, 1), x,
            (x[:, :1] > 0).astype(np.float32), None, SIZES, ACTS, 0)
