import pickle

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP


def test_flat_layout_and_views():
    m = MLP([4, 3, 2], dtype="float64")
    assert m.params.ndim == 1 and m.params.flags.c_contiguous
    assert m.n_params == 4 * 3 + 3 + 3 * 2 + 2 == m.params.size
    assert [w.shape for w in m.weights] == [(4, 3), (3, 2)]
    for arr in m.weights + m.biases:
        assert np.shares_memory(arr, m.params)
    m.weights[1][2, 1] = 42.0
    assert m.params[4 * 3 + 3 + 2 * 2 + 1] == 42.0
    m.params[-1] = 7.0
    assert m.biases[1][1] == 7.0


def test_forward_is_x_at_w_plus_b():
    rng = np.random.default_rng(0)
    m = MLP([3, 5, 2], activation="tanh", dtype="float64", backend="numpy")
    m.params[...] = rng.normal(size=m.n_params)
    X = rng.normal(size=(7, 3))
    h = np.tanh(X @ m.weights[0] + m.biases[0])
    np.testing.assert_allclose(m.forward(X), h @ m.weights[1] + m.biases[1], rtol=1e-13)


def test_logistic_unit():
    rng = np.random.default_rng(1)
    m = MLP([4, 1], dtype="float64", backend="numpy")
    X = rng.normal(size=(10, 4))
    z = X @ m.weights[0][:, 0] + m.biases[0][0]
    p = m.predict_proba(X)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.array_equal(m.predict(X), (z >= 0).astype(int))


def test_initialisation_he_and_glorot():
    m = MLP([400, 300, 1], activation="relu", seed=5)
    assert np.std(m.weights[0]) == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert np.all(m.biases[0] == 0)
    g = MLP([400, 300, 1], activation="tanh", seed=5)
    lim = np.sqrt(6 / 700)
    assert np.abs(g.weights[0]).max() <= lim and np.abs(g.weights[0]).max() > 0.99 * lim
    assert np.array_equal(MLP([4, 8, 1], seed=3).params, MLP([4, 8, 1], seed=3).params)
    assert not np.array_equal(MLP([4, 8, 1], seed=3).params, MLP([4, 8, 1], seed=4).params)


def test_dtypes():
    assert MLP([2, 2, 1]).params.dtype == np.float32
    m = MLP([2, 2, 1], dtype="float64")
    assert m.params.dtype == np.float64
    assert m.forward(np.ones((3, 2), dtype=np.float32)).dtype == np.float64


def test_pickle_round_trip_keeps_views():
    m = MLP([3, 4, 2], activation="gelu", seed=2)
    m2 = pickle.loads(pickle.dumps(m))
    assert np.array_equal(m.params, m2.params)
    m2.weights[0][0, 0] = 99
    assert m2.params[0] == 99 and m.params[0] != 99
    c = m.copy()
    assert np.array_equal(c.params, m.params) and not np.shares_memory(c.params, m.params)


def test_softmax_probabilities():
    m = MLP([3, 4, 3], dtype="float64")
    p = m.predict_proba(np.random.default_rng(0).normal(size=(5, 3)))
    assert p.shape == (5, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


@pytest.mark.parametrize("backend", [b for b, (ok, _) in
                                     fastmlp.backends.available_backends().items() if ok])
def test_predict_proba_both_columns_exact_across_blocks(backend):
    """Both columns are sigmoids computed directly (a tiny probability keeps its relative
    precision, no 1 - p cancellation), also across predict_proba's internal blocks, with
    each backend's link (the compiled ones have a kernel, sigmoid_pair)."""
    from fastmlp import model as model_mod
    m = MLP([1, 1], dtype="float32", backend=backend)
    m.params[...] = [1.0, 0.0]                 # z = x
    n = model_mod._PROBA_BLOCK + 1000
    z = np.linspace(-60, 60, n).astype(np.float32)
    p = m.predict_proba(z[:, None])
    z64 = z.astype(np.float64)
    np.testing.assert_allclose(p[:, 1], 1 / (1 + np.exp(-z64)), rtol=1e-6)
    np.testing.assert_allclose(p[:, 0], 1 / (1 + np.exp(z64)), rtol=1e-6)
    assert p.dtype == np.float32 and p.shape == (n, 2)
    assert p[0, 1] > 0 and p[-1, 0] > 0       # 1 - p would give exactly 0 here


@pytest.mark.parametrize("backend", [b for b, (ok, _) in
                                     fastmlp.backends.available_backends().items() if ok])
def test_multilabel_probabilities_are_the_binary_link_of_each_output(backend):
    """A multilabel model's probability for a label is, bit for bit, what a one-output
    model gives for the same logit: the same link (the backend's sigmoid_pair kernel, or
    the NumPy passes for the numpy backend), across predict_proba's internal blocks."""
    from fastmlp import model as model_mod
    n = model_mod._PROBA_BLOCK + 1000
    z = np.linspace(-60, 60, n).astype(np.float32)
    one = MLP([1, 1], dtype="float32", backend=backend)
    one.params[...] = [1.0, 0.0]                       # z = x
    three = MLP([1, 3], dtype="float32", backend=backend)
    three.loss = "bce"                                  # multilabel: a sigmoid per output
    three.params[...] = [1.0, -1.0, 0.5, 0.0, 0.0, 0.0]  # z = (x, -x, x / 2), exact
    p1 = one.predict_proba(z[:, None])
    p3 = three.predict_proba(z[:, None])
    assert p3.shape == (n, 3) and p3.dtype == np.float32
    assert np.array_equal(p3[:, 0], p1[:, 1])
    assert np.array_equal(p3[:, 1], p1[:, 0])          # sigmoid(-x) is the other column
    half = one.predict_proba((z / 2)[:, None])
    assert np.array_equal(p3[:, 2], half[:, 1])


@pytest.mark.parametrize("backend", ["numpy", "c"])
@pytest.mark.parametrize("n_out,loss", [(1, "bce"), (3, "cross_entropy"), (3, "bce")])
def test_long_predict_proba_runs_in_chunks(backend, n_out, loss, monkeypatch):
    """A long predict_proba runs in chunks of rows (standardisation, network and link per
    chunk) and gives what one pass over the whole catalog gives: the same NaN rows, and
    the same probabilities to float32 rounding (a BLAS product's last bits may depend on
    how many rows it is given)."""
    from fastmlp import model as model_mod
    if backend not in fastmlp.backends.available_backends():
        pytest.skip(f"backend {backend} not available")
    rng = np.random.default_rng(11)
    m = MLP([5, 24, 16, n_out], seed=1, dtype="float32", backend=backend)
    m.loss = loss
    m.standardization = (rng.normal(size=5), rng.uniform(0.5, 2, size=5))
    X = rng.normal(scale=2, size=(4 * 1024 + 333, 5))
    X[::701] = np.nan
    whole = m.predict_proba(X)
    calls = []
    real = m.decision_function

    def counted(Xc):
        calls.append(Xc.shape[0])
        return real(Xc)
    monkeypatch.setattr(model_mod, "_PROBA_BLOCK", 64)             # chunks of 1024 rows
    monkeypatch.setattr(model_mod, "_PREDICT_CHUNK_BYTES", 1024 * 5 * 4)
    monkeypatch.setattr(m, "decision_function", counted)
    chunked = m.predict_proba(X)
    assert calls == [1024] * 4 + [333]
    assert chunked.shape == whole.shape == (X.shape[0], m.n_classes)
    assert chunked.dtype == np.float32
    nan_rows = np.zeros(X.shape[0], bool)
    nan_rows[::701] = True
    assert np.isnan(chunked[nan_rows]).all() and np.isfinite(chunked[~nan_rows]).all()
    np.testing.assert_allclose(chunked[~nan_rows], whole[~nan_rows], rtol=2e-6, atol=1e-7)
    if n_out == 1 or loss == "cross_entropy":    # a distribution over the classes
        np.testing.assert_allclose(chunked[~nan_rows].sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_pair_is_the_direct_quotient_at_the_edges(dtype):
    """Each column is the correctly rounded quotient 1/(1+e) or e/(1+e), e = exp(-|z|) (the
    numerators chosen without np.where): bit for bit at signed zeros, infinities, values
    whose exp underflows, and NaN rows stay NaN in both columns."""
    from fastmlp import model as model_mod
    rng = np.random.default_rng(5)
    z = np.concatenate([[0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 88.0, -88.0,
                         200.0, -200.0, 800.0, -800.0], rng.normal(scale=30, size=5000)])
    z = z.astype(dtype)
    p = model_mod._sigmoid_pair(z)
    with np.errstate(invalid="ignore"):
        e = np.exp(-np.abs(z))
        den = e + 1
        pos = z >= 0
        want1 = np.where(pos, dtype(1) / den, e / den)
        want0 = np.where(pos, e / den, dtype(1) / den)
    assert p.dtype == dtype and p.shape == (z.size, 2)
    want = np.stack([want0, want1], axis=1).astype(dtype)
    assert np.array_equal(p.view(np.uint8), want.view(np.uint8))     # NaN payloads too
    assert np.isnan(p[4]).all() and np.isfinite(np.delete(p, 4, 0)).all()
    assert p[2].tolist() == [0.0, 1.0] and p[3].tolist() == [1.0, 0.0]
    assert p[11, 0] == 0.0 and p[12, 1] == 0.0       # exp(-800) underflows in both dtypes
    # exp(-200) is 1.4e-87: a float64 keeps it as sigmoid(-200), a float32 cannot
    assert (p[9, 0] > 0) == (dtype == np.float64) and p[9, 1] == 1.0


@pytest.mark.parametrize("threads", [2, 3])
def test_predict_proba_threads_give_the_same_bits(threads, monkeypatch):
    """A long predict_proba splits its sigmoid passes over threads (contiguous ranges of
    blocks): every row, NaN rows and the short last block included, is bit for bit what one
    thread computes."""
    from fastmlp import model as model_mod
    m = MLP([1, 1], dtype="float32", backend="numpy")
    m.params[...] = [1.0, 0.0]                 # z = x
    n = threads * model_mod._PROBA_MIN_BLOCKS_PER_THREAD * model_mod._PROBA_BLOCK + 777
    z = np.random.default_rng(3).normal(scale=20, size=n).astype(np.float32)
    z[::100_001] = np.nan
    with fastmlp.threads(1):
        one = m.predict_proba(z[:, None])
    started = []

    class Counted(model_mod.threading.Thread):
        def start(self):
            started.append(self)
            super().start()
    monkeypatch.setattr(model_mod.threading, "Thread", Counted)
    with fastmlp.threads(threads):
        many = m.predict_proba(z[:, None])
    assert len(started) == threads - 1           # the calling thread does the first range
    assert np.array_equal(one, many, equal_nan=True)
    assert np.isnan(many[::100_001]).all()
    assert np.isfinite(np.delete(many, np.s_[::100_001], 0)).all()


def test_predict_proba_raises_what_a_sigmoid_thread_raised(monkeypatch):
    """An exception in one of the threads of the sigmoid passes reaches the caller instead
    of leaving part of the output unwritten."""
    from fastmlp import model as model_mod
    m = MLP([1, 1], dtype="float32", backend="numpy")
    n = 2 * model_mod._PROBA_MIN_BLOCKS_PER_THREAD * model_mod._PROBA_BLOCK
    real = model_mod._sigmoid_pair_blocks

    def failing(z, out, b0, b1):
        if b0 > 0:
            raise MemoryError("worker ran out")
        real(z, out, b0, b1)
    monkeypatch.setattr(model_mod, "_sigmoid_pair_blocks", failing)
    with fastmlp.threads(2), pytest.raises(MemoryError, match="worker ran out"):
        m.predict_proba(np.zeros((n, 1), np.float32))
