"""fit's per-epoch row order: train.epoch_order and the epoch_permutation kernel behind it
(and the older shuffle_indices kernel, from caller-given uniforms).

The kernels are in the conformance table (every backend equals the reference); here: the
permutation is uniform, with one bucket and with many, depends on the seed only (not on
the backend or the thread count), and bad input is refused by every backend without
touching ``out``."""

import itertools

import numpy as np
import pytest
from scipy import stats

import fastmlp
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
    key = int(np.random.default_rng(5).integers(0, 2 ** 64, dtype=np.uint64))
    for name in AVAILABLE:
        out = np.empty(10_007, dtype=np.int64)
        backends.get_backend(name).epoch_permutation(out, key)
        assert np.array_equal(out, a), name


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("n", [1, 2, 16_384, 16_385, 100_003, 300_000])
def test_every_backend_and_thread_count_gives_the_reference_permutation(n, dtype):
    """One bucket (n <= 16384) and 2, 8 and 32 buckets; the reference is the spec.  An int32
    ``out`` (fit's order for the C kernels) holds the same permutation."""
    assert ref.permutation_bucket_bits(n) == max(0, int(np.ceil(np.log2(n / 16_384))))
    for key in (0, 2 ** 64 - 1, 0x0123456789ABCDEF):
        expect = np.empty(n, np.int64)
        ref.epoch_permutation(expect, key)
        assert np.array_equal(np.sort(expect), np.arange(n))
        for name in AVAILABLE:
            for threads in (1, 3):
                out = np.full(n, -1, dtype)
                with fastmlp.threads(threads):
                    backends.get_backend(name).epoch_permutation(out, np.uint64(key))
                assert np.array_equal(out, expect), (name, threads, key)


def test_rows_are_uniform_across_buckets():
    """With 4 buckets (n = 40,000): where row 0, a middle row and the last row land (in 8
    position bins), and which of two rows comes first, over 1,200 keys."""
    kern = backends.get_backend("auto")
    n, draws, bins = 40_000, 1200, 8
    assert ref.permutation_bucket_bits(n) == 2
    where = np.zeros((3, bins))
    first = 0
    out = np.empty(n, np.int64)
    inv = np.empty(n, np.int64)
    rng = np.random.default_rng(11)
    for _ in range(draws):
        kern.epoch_permutation(out, int(rng.integers(0, 2 ** 64, dtype=np.uint64)))
        inv[out] = np.arange(n)
        for r, row in enumerate((0, n // 2, n - 1)):
            where[r, inv[row] * bins // n] += 1
        first += inv[1] < inv[2]
    for r in range(3):
        assert stats.chisquare(where[r]).pvalue > 1e-4, where[r]
    assert stats.binomtest(int(first), draws).pvalue > 1e-4


@pytest.mark.parametrize("backend", AVAILABLE)
def test_bad_keys_and_outputs_are_refused(backend):
    k = backends.get_backend(backend)
    out = np.full(8, -1, np.int64)
    for key in (-1, 2 ** 64, 1.5, True, "7", None):
        with pytest.raises(ValueError, match=r"key must be an integer in \[0, 2\*\*64\)"):
            k.epoch_permutation(out, key)
    assert (out == -1).all()
    ro = np.empty(8, np.int64)
    ro.flags.writeable = False
    for bad in (np.empty(8, np.int16), np.empty(8, np.uint64), np.empty((2, 4), np.int64),
                np.empty(16, np.int64)[::2], np.empty(16, np.int32)[::2], ro, [0] * 8):
        with pytest.raises(TypeError, match="out must be a writable contiguous 1-D int64"):
            k.epoch_permutation(bad, 3)
    k.epoch_permutation(np.empty(0, np.int64), 3)   # an empty order is fine


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


@pytest.mark.parametrize("backend", AVAILABLE)
def test_an_int32_row_order_trains_exactly_as_an_int64_one(backend):
    """train_epoch with the same order in int32 (the C kernels take it as it is; the others
    convert it) ends bit for bit where the int64 order does, and an int32 order outside the
    rows is refused with the same message, nothing trained."""
    k = backends.get_backend(backend)
    m = fastmlp.MLP([3, 16, 1], seed=0, dtype="float32")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 3)).astype(np.float32)
    Y = (X[:, :1] > 0).astype(np.float32)
    sw = np.ones(500, np.float32)
    order = np.empty(900, np.int64)
    k.epoch_permutation(order[:500], 7)
    order[500:] = order[:400]
    opt = fastmlp.optim.Adam(m.params, lr=1e-2)
    ends = []
    for perm in (order, order.astype(np.int32)):
        p, st, bl = m.params.copy(), np.zeros_like(opt.state), np.empty(29)
        done = k.train_epoch(p, np.empty_like(p), st, bl, X, Y, sw, perm, 32, np.full(29, 1e-2),
                             0, opt.code, opt.hyper_vector(), m.sizes_array, m.acts_array, 0)
        ends.append((done, p, st, bl))
    assert ends[0][0] == ends[1][0] == 29
    for a, b in zip(ends[0][1:], ends[1][1:]):
        np.testing.assert_array_equal(a, b)
    bad = order.astype(np.int32)
    bad[77] = 500
    p = m.params.copy()
    with pytest.raises(ValueError, match=r"perm must hold row indices of x in \[0, 500\)"):
        k.train_epoch(p, np.empty_like(p), np.zeros_like(opt.state), np.empty(29), X, Y, sw,
                      bad, 32, np.full(29, 1e-2), 0, opt.code, opt.hyper_vector(),
                      m.sizes_array, m.acts_array, 0)
    np.testing.assert_array_equal(p, m.params)


def test_fit_draws_an_int32_order_for_the_c_kernels_with_the_same_result(monkeypatch):
    """EpochOrder gives the C kernels (ROW_ORDER_INT32) an int32 order and the others an
    int64 one, the same permutation; fit with C ends bit for bit where it ends with the
    int64 order."""
    from fastmlp.training.loop import EpochOrder
    if "c" not in AVAILABLE:
        pytest.skip("the C backend is not built")
    c = backends.get_backend("c")
    order = EpochOrder()
    a = order(np.random.default_rng(3), 70_001, c).copy()
    b = order(np.random.default_rng(3), 70_001, backends.get_backend("numpy"))
    assert a.dtype == np.int32 and b.dtype == np.int64 and np.array_equal(a, b)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
    params = []
    for small in (True, False):
        monkeypatch.setattr(c, "ROW_ORDER_INT32", small)
        m = fastmlp.MLP([4, 16, 1], seed=0, dtype="float32")
        fastmlp.fit(m, X, y, epochs=3, batch_size=64, backend="c", progress=False,
                    validation=0.1, standardize=True)
        params.append(m.params)
    np.testing.assert_array_equal(params[0], params[1])


# -- the next epoch's order, built by the C kernels during this epoch ------------------------

def _c_or_skip():
    if "c" not in AVAILABLE:
        pytest.skip("the C backend is not built")
    return backends.get_backend("c")


def _small_net_epoch(seed=0, n=6000):
    """A 5-32-32-1 net and an epoch of batches of 24: two parts per batch on two threads, so
    that one thread waits for the other's serial step (where the C kernels build pieces of
    the next order)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    Y = (X[:, :1] * X[:, 1:2] > 0).astype(np.float32)
    m = fastmlp.MLP([5, 32, 32, 1], seed=seed, dtype="float32")
    opt = fastmlp.optim.make_optimizer("adam", m.params.copy(), lr=1e-2)
    perm = rng.permutation(n).astype(np.int32)
    nb = -(-n // 24)
    return m, opt, X, Y, perm, nb


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n_next,dtype", [(1, np.int32), (777, np.int32), (70_001, np.int32),
                                          (5000, np.int64)])
def test_next_order_is_the_permutation_and_the_epoch_is_unchanged(threads, n_next, dtype):
    """train_epoch(..., next_order=(out, key)) trains bit for bit as without it and leaves
    epoch_permutation(out, key) in out (int32: built during the epoch; int64: after it)."""
    c = _c_or_skip()
    m, opt, X, Y, perm, nb = _small_net_epoch()
    results = []
    with backends.threads(threads):
        for nxt in (None, np.full(n_next, -1, dtype=dtype)):
            p, st, losses = opt.params.copy(), np.zeros_like(opt.state), np.empty(nb)
            more = {} if nxt is None else {"next_order": (nxt, 2 ** 64 - 5)}
            done = c.train_epoch(p, np.empty_like(p), st, losses, X, Y, None, perm, 24,
                                 np.full(nb, 1e-2), 0, opt.code, opt.hyper_vector(),
                                 m.sizes_array, m.acts_array, 0, **more)
            results.append((done, p, st, losses))
    (d0, p0, s0, l0), (d1, p1, s1, l1) = results
    assert d0 == d1 == nb
    np.testing.assert_array_equal(p0, p1)
    np.testing.assert_array_equal(s0, s1)
    np.testing.assert_array_equal(l0, l1)
    want = np.empty(n_next, dtype=np.int64)
    ref.epoch_permutation(want, 2 ** 64 - 5)
    np.testing.assert_array_equal(nxt, want)


def test_next_order_is_written_when_the_epoch_stops_at_a_non_finite_value():
    c = _c_or_skip()
    m, opt, X, Y, perm, nb = _small_net_epoch()
    X[perm[30 * 24 + 2], 1] = np.nan      # batch 31
    nxt = np.full(20_000, -1, dtype=np.int32)
    p = opt.params.copy()
    done = c.train_epoch(p, np.empty_like(p), np.zeros_like(opt.state), np.empty(nb), X, Y,
                         None, perm, 24, np.full(nb, 1e-2), 0, opt.code, opt.hyper_vector(),
                         m.sizes_array, m.acts_array, 0, next_order=(nxt, 11))
    assert done == 30
    want = np.empty(20_000, dtype=np.int64)
    ref.epoch_permutation(want, 11)
    np.testing.assert_array_equal(nxt, want)


def test_bad_next_orders_are_refused_before_training():
    c = _c_or_skip()
    m, opt, X, Y, perm, nb = _small_net_epoch(n=600)
    cases = [((np.empty(10, np.int32),), TypeError, "next_order must be a pair"),
             ((np.empty(10, np.float32), 3), TypeError, "next_order: out must be"),
             ((np.empty(10, np.int32), -1), ValueError, "next_order: key must be"),
             ((np.empty(0, np.int32), 3), ValueError, "at least one entry"),
             ((perm[100:], 3), ValueError, "must not overlap perm")]
    for bad, exc, text in cases:
        p = opt.params.copy()
        with pytest.raises(exc, match=text):
            c.train_epoch(p, np.empty_like(p), np.zeros_like(opt.state), np.empty(nb), X, Y,
                          None, perm, 24, np.full(nb, 1e-2), 0, opt.code, opt.hyper_vector(),
                          m.sizes_array, m.acts_array, 0, next_order=bad)
        np.testing.assert_array_equal(p, opt.params)   # nothing trained


def test_epoch_order_returns_the_filled_order_only_for_the_key_it_draws():
    """EpochOrder.ahead peeks the next key; the next call returns the filled buffer when it
    draws that key, and builds the order itself when something drew from rng in between:
    the order is the key's permutation either way, and never the buffer in use."""
    from types import SimpleNamespace
    from fastmlp.training.loop import EpochOrder
    c0 = _c_or_skip()
    calls = []
    c = SimpleNamespace(ROW_ORDER_INT32=True, NEXT_ORDER=True,
                        epoch_permutation=lambda out, key: (calls.append(key),
                                                            c0.epoch_permutation(out, key)))
    n = 5000
    for disturb in (False, True):
        order, rng, check = EpochOrder(), np.random.default_rng(4), np.random.default_rng(4)
        cur = order(rng, n, c)
        want = np.empty(n, np.int64)
        ref.epoch_permutation(want, int(check.integers(0, 2 ** 64, dtype=np.uint64)))
        np.testing.assert_array_equal(cur, want)
        out, key = order.ahead(rng, n, c)
        assert out.dtype == np.int32 and not np.shares_memory(out, cur)
        c.epoch_permutation(out, key)
        order.filled((out, key))
        if disturb:
            rng.random()
            check.random()
        del calls[:]
        nxt = order(rng, n, c)
        assert len(calls) == disturb   # built again only when the key drawn is another
        assert disturb or not np.shares_memory(nxt, cur)
        ref.epoch_permutation(want, int(check.integers(0, 2 ** 64, dtype=np.uint64)))
        np.testing.assert_array_equal(nxt, want)
    # backends without NEXT_ORDER get no pair, and their orders reuse one buffer
    order, rng = EpochOrder(), np.random.default_rng(0)
    numpy_kernels = backends.get_backend("numpy")
    assert order.ahead(rng, n, numpy_kernels) is None
    first = order(rng, n, numpy_kernels)
    assert np.shares_memory(first, order(rng, n, numpy_kernels))


def test_fit_with_the_next_order_built_in_the_kernels_ends_where_it_did_without(monkeypatch):
    c = _c_or_skip()
    rng = np.random.default_rng(8)
    X = rng.normal(size=(20_000, 5)).astype(np.float32)
    y = (X[:, 0] * X[:, 3] > 0).astype(np.int64)
    runs = []
    for ahead in (True, False):
        monkeypatch.setattr(c, "NEXT_ORDER", ahead)
        m = fastmlp.MLP([5, 32, 32, 1], seed=0, dtype="float32")
        h = fastmlp.fit(m, X, y, epochs=4, batch_size=32, backend="c", progress=False,
                        validation=0.1, seed=5)
        runs.append((m.params.copy(), h.loss, h.val_loss))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]
