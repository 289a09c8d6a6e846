"""Kernel micro-benchmarks: kernel x backend x size, with pytest-benchmark.

    pytest benchmarks/ --benchmark-only                      # everything
    pytest benchmarks/ --benchmark-only -m "not big"         # without the 1e7 cases
    pytest benchmarks/ --benchmark-only -k adam --benchmark-group-by=group

Every available backend (fastmlp.available_backends()) gets a column; each benchmark group
("adam_update n=1e6", "train_epoch 5-32-32-1@256", ...) compares the backends on the same
inputs.  Each kernel is called once before timing, so Numba's JIT compilation is excluded.
Threads: FASTMLP_BENCH_THREADS (default 2) for fastmlp and NumPy's BLAS (conftest.py).
Not part of the default test run (pyproject: testpaths = ["tests"]).
"""

import numpy as np
import pytest

from fastmlp import MLP, backends, optim
from fastmlp.codes import loss_code

BACKENDS = [b for b, (ok, _) in backends.available_backends().items() if ok]
DT = np.float32
RELU = 1


def _rng(seed=0):
    return np.random.default_rng(seed)


def _run(benchmark, fn, group, heavy=False, **info):
    """Warm up once (JIT), then time: auto-calibrated, or 5 fixed rounds for heavy calls."""
    fn()
    benchmark.group = group
    benchmark.extra_info.update(info)
    if heavy:
        benchmark.pedantic(fn, rounds=5, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)


# ---------------------------------------------------------------------------------------
# dense layer
# ---------------------------------------------------------------------------------------
DENSE_SHAPES = [(256, 5, 32), (256, 32, 32), (4096, 32, 32), (1024, 128, 128),
                (4096, 128, 128), (4096, 512, 512)]


def _dense_inputs(B, n_in, n_out):
    r = _rng()
    x = r.standard_normal((B, n_in), dtype=DT)
    w = r.standard_normal((n_in, n_out), dtype=DT) * DT(np.sqrt(2 / n_in))
    b = r.standard_normal(n_out, dtype=DT)
    return x, w, b


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=lambda s: "B%d_%dx%d" % s)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_forward(benchmark, backend, shape):
    k = backends.get_backend(backend)
    B, n_in, n_out = shape
    x, w, b = _dense_inputs(B, n_in, n_out)
    out = np.empty((B, n_out), DT)
    z = np.empty((B, n_out), DT)
    _run(benchmark, lambda: k.dense_forward(out, z, x, w, b, RELU),
         f"dense_forward {B}x{n_in}->{n_out}", gflop=2e-9 * B * n_in * n_out)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=lambda s: "B%d_%dx%d" % s)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_backward(benchmark, backend, shape):
    k = backends.get_backend(backend)
    B, n_in, n_out = shape
    x, w, b = _dense_inputs(B, n_in, n_out)
    z = x @ w + b
    dout = _rng(1).standard_normal((B, n_out), dtype=DT)
    dx = np.empty_like(x)
    dw = np.empty_like(w)
    db = np.empty_like(b)
    _run(benchmark, lambda: k.dense_backward(dx, dw, db, dout, x, w, z, RELU),
         f"dense_backward {B}x{n_in}->{n_out}", gflop=4e-9 * B * n_in * n_out)


# ---------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------
LOSS_CASES = [("bce", 1), ("cross_entropy", 10), ("mse", 1)]


@pytest.mark.parametrize("B", [256, 4096, 65536])
@pytest.mark.parametrize("loss,k_out", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
@pytest.mark.parametrize("backend", BACKENDS)
def test_loss_grad(benchmark, backend, loss, k_out, B):
    k = backends.get_backend(backend)
    r = _rng()
    logits = r.standard_normal((B, k_out), dtype=DT)
    if loss == "bce":
        y = r.integers(0, 2, (B, 1)).astype(DT)
    elif loss == "cross_entropy":
        y = r.integers(0, k_out, (B, 1)).astype(DT)
    else:
        y = r.standard_normal((B, k_out), dtype=DT)
    sw = np.ones(B, DT)
    d = np.empty_like(logits)
    fn = getattr(k, f"{loss}_loss_grad")
    _run(benchmark, lambda: fn(d, logits, y, sw), f"{loss}_loss_grad B={B}")


# ---------------------------------------------------------------------------------------
# optimizer updates (through the kernels, as Optimizer.step calls them)
# ---------------------------------------------------------------------------------------
OPT_CASES = [  # label, optimizer name, kwargs, bytes moved per float32 parameter
    ("sgd", "sgd", {}, 12), ("sgd_momentum", "sgd", {"momentum": 0.9}, 20),
    ("adagrad", "adagrad", {}, 20), ("rmsprop", "rmsprop", {}, 20),
    ("adam", "adam", {}, 28), ("adamw", "adamw", {}, 28)]
SIZES = [pytest.param(10 ** 5, id="1e5"), pytest.param(10 ** 6, id="1e6"),
         pytest.param(10 ** 7, id="1e7", marks=pytest.mark.big)]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("label,name,kw,nbytes", OPT_CASES, ids=[c[0] for c in OPT_CASES])
@pytest.mark.parametrize("backend", BACKENDS)
def test_optimizer_update(benchmark, backend, label, name, kw, nbytes, n):
    r = _rng()
    p = r.standard_normal(n, dtype=DT)
    g = r.standard_normal(n, dtype=DT) * DT(1e-2)
    opt = optim.make_optimizer(name, p, backend=backend, **kw)
    opt.step(g)  # step 1 (e.g. SGD momentum's first step copies); timing is of steps >= 2
    _run(benchmark, lambda: opt.step(g), f"{label}_update n={n:.0e}", heavy=n >= 10 ** 7,
         bytes=nbytes * n)


# ---------------------------------------------------------------------------------------
# whole network: loss + gradient, and one fused training epoch
# ---------------------------------------------------------------------------------------
NET_CASES = [((5, 32, 32, 1), 256), ((5, 32, 32, 1), 4096), ((5, 128, 128, 128, 1), 1024),
             ((5, 512, 512, 1), 4096)]


def _net_ids(c):
    return "-".join(map(str, c[0])) + f"@{c[1]}"


def _net_inputs(sizes, n):
    model = MLP(list(sizes), seed=0, dtype="float32")
    r = _rng()
    X = r.standard_normal((n, sizes[0]), dtype=DT)
    Y = (X[:, :1] + X[:, 1:2] * X[:, 2:3] > 0).astype(DT)
    return model, X, Y, np.ones(n, DT)


@pytest.mark.parametrize("case", NET_CASES, ids=_net_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_mlp_loss_grad(benchmark, backend, case):
    k = backends.get_backend(backend)
    sizes, B = case
    model, X, Y, sw = _net_inputs(sizes, B)
    grad = np.empty_like(model.params)
    code = loss_code("bce")
    _run(benchmark, lambda: k.mlp_loss_grad(grad, model.params, X, Y, sw, model.sizes_array,
                                            model.acts_array, code),
         f"mlp_loss_grad {_net_ids(case)}", gflop=6e-9 * model.n_params * B)


@pytest.mark.parametrize("case", NET_CASES, ids=_net_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_train_epoch(benchmark, backend, case):
    """One epoch of 8 mini-batches, Adam: gather, forward, backward, update."""
    k = backends.get_backend(backend)
    sizes, B = case
    n = 8 * B
    model, X, Y, sw = _net_inputs(sizes, n)
    opt = optim.Adam(model.params)
    grad = np.empty_like(model.params)
    losses = np.empty(8)
    lrs = np.full(8, 1e-3)
    perm = _rng(3).permutation(n)
    code = loss_code("bce")

    def epoch():
        done = k.train_epoch(model.params, grad, opt.state, losses, X, Y, sw, perm, B, lrs,
                             opt.step_count, opt.code, opt.hyper_vector(), model.sizes_array,
                             model.acts_array, code)
        opt.step_count += done

    _run(benchmark, epoch, f"train_epoch {_net_ids(case)}", heavy=True,
         samples=n, gflop=6e-9 * model.n_params * n)
