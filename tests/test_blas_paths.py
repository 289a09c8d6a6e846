"""The BLAS paths of the fast backends (tuning.forced_crossover(0): every layer through
SciPy's OpenBLAS): taken when asked, deterministic run to run at a fixed thread count, and
within the conformance tolerance of the hand-written path (tests/test_conformance.py checks
them against the reference on every shape)."""

import copy
import itertools
import math

import numpy as np
import pytest

from fastmlp import backends, codes
from fastmlp.backends import tuning


def _fast():
    return [pytest.param(n, marks=() if ok else pytest.mark.skip(reason=why))
            for n, (ok, why) in backends.available_backends().items() if n != "numpy"]


def _epoch_args(dt, sizes=(5, 96, 80, 1), n=300, bs=128):
    rng = np.random.default_rng(11)
    n_params = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    params = (rng.standard_normal(n_params) * 0.1).astype(dt)
    nb = -(-n // bs)
    return [params, np.zeros_like(params), np.zeros((3, n_params), dt), np.zeros(nb),
            rng.standard_normal((n, sizes[0])).astype(dt),
            (rng.random((n, 1)) > 0.5).astype(dt), np.ones(n, dt), rng.permutation(n), bs,
            np.full(nb, 1e-3), 0, codes.optimizer_code("adam"),
            codes.hyper_vector("adam", lr=1e-3), np.array(sizes), np.array([1, 1, 0]), 0]


@pytest.fixture
def counted(monkeypatch):
    """Count the calls into the BLAS kernels of the Numba backend."""
    from fastmlp.backends import numba as nb
    calls = []
    if nb.AVAILABLE:
        for name in ("train_epoch_wide", "mlp_forward_wide", "dense_forward_blas",
                     "dense_backward_blas"):
            fn = getattr(nb._k, name)

            def wrapper(*a, _fn=fn, _name=name):
                calls.append(_name)
                return _fn(*a)
            monkeypatch.setattr(nb._k, name, wrapper)
    return calls


@pytest.mark.parametrize("backend", _fast())
def test_blas_path_is_taken_when_asked(backend, counted):
    mod = backends.get_backend(backend)
    args = _epoch_args(np.float32)
    with tuning.forced_crossover(0), tuning.forced_layerwise(True):
        assert mod.train_epoch(*args) == args[3].shape[0]
    if backend == "c":
        from fastmlp.backends import c
        assert c._lib.fastmlp_has_gemm() == 3  # SciPy's sgemm and dgemm were handed in
    else:
        assert counted == ["train_epoch_wide"]
    counted.clear()
    with tuning.forced_crossover(math.inf):
        mod.train_epoch(*_epoch_args(np.float32))
    assert counted == []


@pytest.mark.parametrize("threads", (1, 2, 3))
@pytest.mark.parametrize("backend", _fast())
def test_blas_path_is_deterministic(backend, threads):
    mod = backends.get_backend(backend)
    base = _epoch_args(np.float32)
    runs = []
    with tuning.forced_crossover(0), backends.threads(threads):
        for _ in range(2):
            a = copy.deepcopy(base)
            mod.train_epoch(*a)
            runs.append(a)
    for i in (0, 1, 2, 3):
        assert np.array_equal(runs[0][i], runs[1][i]), f"argument {i} differs between runs"


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("backend", _fast())
def test_blas_and_hand_written_paths_agree(backend, dtype, tol):
    mod = backends.get_backend(backend)
    out = {}
    for cross in (0, math.inf):
        a = _epoch_args(dtype)
        with tuning.forced_crossover(cross):
            assert mod.train_epoch(*a) == a[3].shape[0]
        out[cross] = a
    # three Adam steps: a last-bit difference of a gradient entry passes through m / sqrt(v),
    # which rescales it; 10x the one-kernel tolerance of the conformance table
    for i in (0, 2, 3):
        ref = out[math.inf][i].astype(np.float64)
        err = np.abs(out[0][i] - ref).max() / max(np.abs(ref).max(), 1e-30)
        assert err <= tol * 10, f"argument {i}: relative difference {err:.2e}"


def _c_with_blas():
    from fastmlp.backends import c
    if not (c.AVAILABLE and c.has_blas()):
        pytest.skip("the C backend or its BLAS is not available")
    return c


def _forward_args(dt, sizes=(5, 96, 80, 1), rows=64):
    rng = np.random.default_rng(3)
    n_params = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    params = (rng.standard_normal(n_params) * 0.2).astype(dt)
    x = rng.standard_normal((rows, sizes[0])).astype(dt)
    return (np.empty((rows, sizes[-1]), dt), params, x, np.array(sizes),
            np.array([1] * (len(sizes) - 2) + [0]))


def test_c_is_handed_each_new_crossover():
    """The C backend hands C the crossover only when it changed (a per-call saving): a
    change of either dtype's value must still reach C, and leave the other's alone."""
    c = _c_with_blas()
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    a32, a64 = _forward_args(np.float32), _forward_args(np.float64)
    with tuning.forced_crossover(777):
        c.mlp_forward(*a64)
    for cross in (0.0, math.inf, 12345.0, 12345.0, 0.0):
        with tuning.forced_crossover(cross):
            c.mlp_forward(*a32)
        assert c._gemm["set"][f32] == cross
        assert c._gemm["set"][f64] == 777


def test_c_forced_blas_layers_end_with_their_block():
    """A block that sends layers to BLAS (forced_blas_layers) sets C's per-thread choice and
    must restore it on exit: the hand-written pass after it gives the bits it gave before
    (and the BLAS pass gives other bits on this net, so the comparison can fail)."""
    c = _c_with_blas()
    args = _forward_args(np.float32, rows=300)

    def forward():
        c.mlp_forward(*args)
        return args[0].copy()
    with tuning.forced_crossover(math.inf):
        before = forward()
        with tuning.forced_blas_layers(0):
            through_blas = forward()
        after = forward()
    assert not np.array_equal(through_blas, before)
    assert np.array_equal(after, before)


def test_one_blas_thread_limits_every_blas_and_restores_it():
    """The kernels' BLAS scope (fastmlp.backends._blas_threads): inside it every loaded BLAS
    library runs on one thread, on exit each gets its own count back, and a nested block
    leaves the outer block's limit in place."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg.cython_blas  # noqa: F401 - SciPy's OpenBLAS loaded, as the kernels do
    from fastmlp.backends._blas_threads import one_blas_thread

    def counts():
        return sorted(i["num_threads"] for i in threadpoolctl.threadpool_info()
                      if i["user_api"] == "blas")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = counts()
        if not before or max(before) == 1:
            pytest.skip("no BLAS library that threadpoolctl can set to two threads")
        with one_blas_thread():
            assert counts() == [1] * len(before)
            with one_blas_thread():
                assert counts() == [1] * len(before)
            assert counts() == [1] * len(before)
        assert counts() == before
