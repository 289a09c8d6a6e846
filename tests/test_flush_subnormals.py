"""The compiled kernels flush subnormal numbers to zero (FTZ and DAZ, csrc/internal.h's
FM_FLUSH_BEGIN and _nb_kernels._flush_begin say why: a 5-512-512-1 net that separated its
data trained 2.7x slower by its eighth epoch) on every thread they run on, and leave the
floating-point mode of the calling thread and of the OpenMP / Numba worker threads as
they found it.  The NumPy reference keeps IEEE subnormals, and so do the optimizer
updates, also inside the training kernels (their stored state has its own flush)."""

import platform

import numba
import numpy as np
import pytest
from numba import njit, prange

import fastmlp
from fastmlp import backends

COMPILED = [name for name, (ok, _) in backends.available_backends().items()
            if ok and name != "numpy"]
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
pytestmark = pytest.mark.skipif(not X86, reason="the flush is set through x86's MXCSR")

# per dtype: a factor whose square is a subnormal, and 64 such products still one
TINY = {np.float32: 1e-20, np.float64: 1e-160}
W = 64
ROWS = 4096   # 64 x 64 x 4096 multiply-adds: every backend runs the forward on 2 threads


def subnormal_net(dt):
    """A 64-64 linear layer whose every product w x is a subnormal (and so is their sum)."""
    model = fastmlp.MLP([W, W], dtype=np.dtype(dt).name, seed=0)
    model.params[...] = 0
    model.params[:W * W] = TINY[dt]
    return model, np.full((ROWS, W), TINY[dt], dtype=dt)


def forward(name, model, X):
    out = np.empty((X.shape[0], W), dtype=X.dtype)
    with backends.threads(2):
        backends.get_backend(name).mlp_forward(out, model.params, X, model.sizes_array,
                                               model.acts_array)
    return out


@njit(parallel=True, cache=False)
def _squares_on_threads(a, out):
    """out[t] = a[t] * a[t] on the worker threads (no flush set here)."""
    for t in prange(out.shape[0]):
        out[t] = a[t] * a[t]


def caller_and_workers_keep_subnormals(dt):
    t = TINY[dt]
    here = dt(t) * dt(t)
    a = np.full(256, t, dtype=dt)
    out = np.zeros_like(a)
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        _squares_on_threads(a, out)
    finally:
        numba.set_num_threads(before)
    return here != 0 and bool((out != 0).all())


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_the_reference_keeps_the_subnormals(dt):
    model, X = subnormal_net(dt)
    out = forward("numpy", model, X)
    assert (out != 0).all() and (np.abs(out) < np.finfo(dt).tiny).all()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("name", COMPILED)
def test_compiled_forward_flushes_on_every_thread(name, dt):
    model, X = subnormal_net(dt)
    out = forward(name, model, X)
    assert (out == 0).all(), f"{name}: {(out != 0).sum()} subnormal outputs left"
    assert caller_and_workers_keep_subnormals(dt)


@pytest.mark.parametrize("name", COMPILED)
def test_training_leaves_the_threads_in_ieee_mode(name):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    model = fastmlp.MLP([5, 64, 64, 1], seed=0)
    hist = fastmlp.fit(model, X, y, epochs=2, batch_size=256, backend=name, n_threads=2,
                       progress=False)
    assert np.isfinite(hist.loss).all() and hist.loss[-1] < hist.loss[0]
    assert caller_and_workers_keep_subnormals(np.float32)
    assert caller_and_workers_keep_subnormals(np.float64)


@pytest.mark.parametrize("name", ["numpy"] + COMPILED)
def test_the_update_inside_an_epoch_keeps_ieee_arithmetic(name):
    """A dead unit's Adam exp_avg decays to 0 inside a training epoch as in the reference
    (under FTZ its step 0.1 x m turns 0 once it is subnormal and m stops near 1e-37)."""
    from fastmlp import optim
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30_000, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    H = 256   # 67k parameters: Numba's update runs on the threads too (from 2^16)
    model = fastmlp.MLP([3, H, H, 1], seed=0)
    w1, b1 = model.params[:3 * H].reshape(3, H), model.params[3 * H:4 * H]
    w1[:, 0], b1[0] = 0, -1          # unit 0 never fires: its weights' gradients are 0
    dead = np.r_[0, H, 2 * H, 3 * H, 4 * H:5 * H]   # its inputs, bias and outputs
    opt = optim.Adam(model.params, lr=1e-3)
    opt.state[0][dead] = 1e-36       # exp_avg left over from when the unit was alive
    opt.state[1][dead] = 1e-30
    fastmlp.fit(model, X, y, optimizer=opt, epochs=1, batch_size=32, backend=name,
                n_threads=2, validation=None, progress=False)   # ~940 steps
    assert (opt.state[0][dead] == 0).all(), opt.state[0][dead]
