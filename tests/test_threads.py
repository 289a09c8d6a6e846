"""Scoped thread counts: threads(n) is per Python thread and restored on exit, every kernel
call gets its count explicitly (two concurrent trainings with different counts each give
what they give alone), and absurd counts are refused with an error naming the argument."""

import copy
import threading
import time

import numpy as np
import pytest

from fastmlp import backends, codes
from fastmlp.backends import _threads

FAST = [n for n, (ok, _) in backends.available_backends().items() if ok and n != "numpy"]


@pytest.fixture(autouse=True)
def _restore_default():
    old = _threads.get_default()
    yield
    _threads._default = old


def test_threads_restores_the_previous_setting_and_nests():
    backends.set_num_threads(3)
    assert backends.get_num_threads() == 3
    with backends.threads(1) as n:
        assert n == 1 and backends.get_num_threads() == 1
        with backends.threads(2):
            assert backends.get_num_threads() == 2
        assert backends.get_num_threads() == 1
    assert backends.get_num_threads() == 3
    with pytest.raises(RuntimeError, match="boom"):
        with backends.threads(2):
            raise RuntimeError("boom")
    assert backends.get_num_threads() == 3


def test_threads_is_per_python_thread():
    backends.set_num_threads(3)
    seen = {}
    inside, release = threading.Event(), threading.Event()

    def other():
        with backends.threads(1):
            inside.set()
            release.wait(10)
            seen["other"] = backends.get_num_threads()

    t = threading.Thread(target=other)
    t.start()
    inside.wait(10)
    seen["main"] = backends.get_num_threads()  # the other thread's block does not leak here
    release.set()
    t.join(10)
    assert seen == {"main": 3, "other": 1}


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "2", None, 100000, 10**6,
                                 _threads.HARD_MAX + 1])
def test_absurd_or_non_integer_counts_are_refused(bad):
    with pytest.raises(ValueError, match=r"n_threads must be a positive integer"):
        backends.set_num_threads(bad)
    if bad is None:             # threads(None) keeps the setting in force (fit's default)
        return
    with pytest.raises(ValueError, match=r"n_threads must be a positive integer"):
        with backends.threads(bad):
            pass


def test_threads_none_changes_nothing():
    with backends.threads(3):
        with backends.threads(None) as n:
            assert n == 3 and backends.get_num_threads() == 3
        assert backends.get_num_threads() == 3


def test_numpy_integers_and_the_bound_itself_are_accepted():
    backends.set_num_threads(np.int64(2))
    assert backends.get_num_threads() == 2 and type(backends.get_num_threads()) is int
    with backends.threads(np.int32(_threads.max_threads())) as n:
        assert n == _threads.max_threads() <= _threads.HARD_MAX


# ---------------------------------------------------------------------------------------
# Two trainings at once, one per Python thread, with different counts.
# ---------------------------------------------------------------------------------------

def _epoch_args(seed):
    rng = np.random.default_rng(seed)
    sizes, acts = np.array([5, 32, 32, 1]), np.array([1, 1, 0])
    n_params = 5 * 32 + 32 + 32 * 32 + 32 + 32 + 1
    n, bs = 512, 128
    x = rng.standard_normal((n, 5)).astype(np.float32)
    y = (x[:, :1] * x[:, 1:2] > 0).astype(np.float32)
    return [(rng.standard_normal(n_params) * 0.3).astype(np.float32),
            np.zeros(n_params, np.float32), np.zeros((3, n_params), np.float32),
            np.zeros(n // bs), x, y, np.ones(n, np.float32), rng.permutation(n), bs,
            np.full(n // bs, 1e-2), 0, codes.optimizer_code("adam"),
            codes.hyper_vector("adam"), sizes, acts, codes.loss_code("bce")]


EPOCHS = 120  # long enough that the two threads' runs overlap (checked below)


def _train(mod, n_threads, span=None):
    args = _epoch_args(1)
    with backends.threads(n_threads):
        t0 = time.perf_counter()
        for e in range(EPOCHS):
            args[10] = e * args[3].shape[0]
            assert mod.train_epoch(*args) == args[3].shape[0]
        if span is not None:
            span[n_threads] = (t0, time.perf_counter())
    return args[0]


@pytest.mark.parametrize("backend", FAST)
def test_concurrent_trainings_with_different_counts_match_their_solo_runs(backend):
    mod = backends.get_backend(backend)
    alone = {n: _train(mod, n) for n in (1, 2)}
    # the count changes the reduction order: were counts mixed up, this test would see it
    assert not np.array_equal(alone[1], alone[2])
    def run(n, start, got, errors, span):
        try:
            start.wait(10)
            got[n] = _train(mod, n, span)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    overlapped = 0
    for _ in range(8):   # until two runs really were concurrent (a loaded machine may
        got, errors, span = {}, [], {}   # run one thread's whole run before the other's)
        start = threading.Barrier(2)
        ts = [threading.Thread(target=run, args=(n, start, got, errors, span))
              for n in (1, 2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert not errors, errors
        for n in (1, 2):
            assert np.array_equal(got[n], alone[n]), f"{backend}: {n}-thread run disturbed"
        # a count shared between threads would show only in runs that overlapped
        overlapped += max(span[1][0], span[2][0]) < min(span[1][1], span[2][1])
        if overlapped == 2:
            break
    assert overlapped >= 1, "the two trainings never ran at the same time"


@pytest.mark.parametrize("backend", FAST)
def test_a_large_count_runs_or_is_refused_never_crashes(backend):
    """The bound itself is a valid count: an optimizer step with it completes."""
    mod = backends.get_backend(backend)
    p0 = np.random.default_rng(0).standard_normal(40000)
    g = np.ones_like(p0)
    expect = copy.deepcopy(p0)
    backends.get_backend("numpy").sgd_update(expect, g, None, 1, 0.1, 0, 0, 0, False, False)
    p = p0.copy()
    with backends.threads(min(_threads.max_threads(), 64)):
        mod.sgd_update(p, g, None, 1, 0.1, 0, 0, 0, False, False)
    assert np.array_equal(p, expect)


def test_the_c_library_keeps_its_count_per_calling_thread():
    """fastmlp_set_num_threads in one OS thread does not change another's count."""
    c = backends.get_backend("c") if "c" in FAST else pytest.skip("C backend unavailable")
    lib = c._lib
    a_set, b_set, seen = threading.Event(), threading.Event(), {}

    def a():
        lib.fastmlp_set_num_threads(1)
        a_set.set()
        b_set.wait(10)
        seen["a"] = lib.fastmlp_get_num_threads()

    def b():
        a_set.wait(10)
        lib.fastmlp_set_num_threads(3)
        seen["b"] = lib.fastmlp_get_num_threads()
        b_set.set()

    ts = [threading.Thread(target=f) for f in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert seen == {"a": 1, "b": 3}
