"""fit's per-epoch row order: train.epoch_order and the shuffle_indices kernel behind it.

The kernel itself is in the conformance table (every backend equals the reference); here:
the permutation is uniform, depends on the seed only, and bad input is refused by every
backend without touching ``out``."""

import itertools

import numpy as np
import pytest
from scipy import stats

from fastmlp import backends
from fastmlp.backends import reference as ref
from fastmlp.training.loop import epoch_order

AVAILABLE = [name for name, (ok, _) in backends.available_backends().items() if ok]


def test_all_permutations_of_four_are_equally_likely():
    rng = np.random.default_rng(2026)
    index = {p: k for k, p in enumerate(itertools.permutations(range(4)))}
    counts = np.zeros(24)
    for _ in range(12_000):
        counts[index[tuple(epoch_order(rng, 4).tolist())]] += 1
    assert counts.min() > 0
    assert stats.chisquare(counts).pvalue > 1e-4


def test_every_row_is_equally_likely_at_every_position():
    rng = np.random.default_rng(7)
    n, draws = 97, 3000
    pos = np.zeros((n, n))
    for _ in range(draws):
        pos[np.arange(n), epoch_order(rng, n)] += 1   # pos[i, row]: row landed at i
    for i in (0, 1, n // 2, n - 1):   # first, second, middle and last place
        assert stats.chisquare(pos[i]).pvalue > 1e-4
    # and each row's position over all draws (column sums are all `draws`)
    assert (pos.sum(axis=0) == draws).all()


def test_order_depends_on_the_seed_only():
    a = epoch_order(np.random.default_rng(5), 10_007)
    b = epoch_order(np.random.default_rng(5), 10_007)
    c = epoch_order(np.random.default_rng(6), 10_007)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(np.sort(a), np.arange(10_007))
    u = np.random.default_rng(5).random(10_007)
    for name in AVAILABLE:
        out = np.empty(10_007, dtype=np.int64)
        backends.get_backend(name).shuffle_indices(out, u)
        assert np.array_equal(out, a), name


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("bad", [1.0, np.nan, -1e-300, np.inf])
def test_uniforms_outside_the_unit_interval_are_refused(backend, bad):
    u = np.random.default_rng(0).random(50)
    u[17] = bad
    out = np.full(50, -1, dtype=np.int64)
    with pytest.raises(ValueError, match=r"u must hold numbers in \[0, 1\), got u\[17\]"):
        backends.get_backend(backend).shuffle_indices(out, u)
    assert (out == -1).all()


@pytest.mark.parametrize("backend", AVAILABLE)
def test_wrong_arrays_are_refused(backend):
    k = backends.get_backend(backend)
    u = np.random.default_rng(0).random(8)
    with pytest.raises(TypeError, match="u must be a 1-D float64 array"):
        k.shuffle_indices(np.empty(8, np.int64), u.astype(np.float32))
    with pytest.raises(TypeError, match="out must be a writable contiguous int64 array"):
        k.shuffle_indices(np.empty(8, np.int32), u)
    with pytest.raises(TypeError, match="out must be a writable contiguous int64 array"):
        k.shuffle_indices(np.empty(9, np.int64), u)
    ro = np.empty(8, np.int64)
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="out must be a writable"):
        k.shuffle_indices(ro, u)


def test_strided_uniforms_are_accepted():
    u = np.random.default_rng(3).random(40)[::2]
    expect = np.empty(20, np.int64)
    ref.shuffle_indices(expect, u)
    for name in AVAILABLE:
        out = np.empty(20, np.int64)
        backends.get_backend(name).shuffle_indices(out, u)
        assert np.array_equal(out, expect), name
