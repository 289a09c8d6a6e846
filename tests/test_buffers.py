"""Flat buffers start on a 64-byte boundary: the model's parameters wherever a model comes
from (new, copied, unpickled, loaded from a file, trained), and the optimizer state.  A
weight row that straddles cache lines made C inference slower (fastmlp.buffers)."""

import pickle

import numpy as np
import pytest

import fastmlp
from fastmlp.buffers import (ALIGN, aligned_copy, aligned_empty, aligned_empty_like,
                             aligned_zeros, is_aligned)
from fastmlp.model import MLP
from fastmlp.optim import make_optimizer


def _misaligned_copy(a):
    """A copy of a whose data starts 16 bytes past a 64-byte boundary (NumPy's usual)."""
    raw = np.empty(a.nbytes + 2 * ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN + 16
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % ALIGN == 16
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 0), (4, 3, 2)])
def test_aligned_empty_and_zeros(shape, dtype):
    for make in (aligned_empty, aligned_zeros,
                 lambda s, d: aligned_empty_like(np.empty(s, d)[::-1])):   # a strided input
        a = make(shape, dtype)
        assert a.shape == shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        assert a.size == 0 or is_aligned(a)
    assert not aligned_zeros(shape, dtype).any()


def test_aligned_copy_keeps_values_and_converts_dtype():
    a = _misaligned_copy(np.arange(12, dtype=np.float64).reshape(3, 4) / 7)
    b = aligned_copy(a)
    assert is_aligned(b) and np.array_equal(a, b) and not np.shares_memory(a, b)
    c = aligned_copy(a, np.float32)
    assert c.dtype == np.float32 and is_aligned(c) and np.array_equal(c, a.astype(np.float32))


def _views_in_params(m):
    return all(np.shares_memory(w, m.params) and np.shares_memory(b, m.params)
               for w, b in zip(m.weights, m.biases))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", [[5, 64, 64, 1], [3, 7, 2], [5, 512, 512, 1]])
def test_model_params_aligned_wherever_the_model_comes_from(sizes, dtype, tmp_path):
    m = MLP(sizes, seed=1, dtype=dtype)
    assert is_aligned(m.params) and _views_in_params(m)
    for other in (m.copy(), pickle.loads(pickle.dumps(m))):
        assert is_aligned(other.params) and _views_in_params(other)
        assert np.array_equal(other.params, m.params)
        other.weights[0][0, 0] += 1          # the views write into the new buffer
        assert other.params[0] == m.params[0] + 1
    path = tmp_path / "m.npz"
    fastmlp.save(m, path)
    loaded = fastmlp.load(path)
    assert is_aligned(loaded.params) and np.array_equal(loaded.params, m.params)


def test_unpickled_optimizer_updates_the_aligned_buffer():
    """After unpickling, the attached optimizer must step the model's (re-aligned) params."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    m = MLP([3, 8, 1], seed=0)
    fastmlp.fit(m, X, y, epochs=1, batch_size=16, validation=None, progress=False)
    m2 = pickle.loads(pickle.dumps(m))
    assert is_aligned(m2.params) and m2.optimizer.params is m2.params
    before = m2.params.copy()
    m2.optimizer.step(np.ones_like(m2.params))
    assert not np.array_equal(m2.params, before)


@pytest.mark.parametrize("name", ["sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_optimizer_state_aligned(name):
    m = MLP([5, 32, 1], seed=0)
    assert is_aligned(make_optimizer(name, m.params).state)


@pytest.mark.parametrize("backend", ["numpy", "numba", "c"])
def test_forward_same_bits_aligned_or_not(backend):
    """Alignment changes the speed of the loads, never the values computed."""
    ok, reason = fastmlp.backends.available_backends()[backend]
    if not ok:   # as the conformance table: an unavailable backend is skipped with its reason
        pytest.skip(reason)
    rng = np.random.default_rng(3)
    m = MLP([5, 64, 64, 1], seed=2, dtype="float32")
    X = rng.normal(size=(3000, 5)).astype(np.float32)
    k = fastmlp.backends.get_backend(backend)
    out = {}
    for label, params in (("aligned", m.params), ("off by 16", _misaligned_copy(m.params))):
        o = np.empty((X.shape[0], 1), np.float32)
        k.mlp_forward(o, params, X, m.sizes_array, m.acts_array)
        out[label] = o
    assert np.array_equal(out["aligned"], out["off by 16"])
