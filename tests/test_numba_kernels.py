"""fastmlp.numba_kernels: the Numba kernels called from user @njit code.

Each entry point must give exactly what the checked Python API of backend="numba" gives
(the same compiled code behind both, at the same thread count), and a training loop
written inside @njit must match the same loop driven from Python bit for bit."""

import numba
import numpy as np
import pytest

from fastmlp import MLP, backends, optim
from fastmlp import numba_kernels as nk
from fastmlp.backends import reference as ref

pytestmark = pytest.mark.skipif(not backends.available_backends()["numba"][0],
                                reason="numba backend unavailable")
NT = 2
DTYPES = (np.float32, np.float64)


@pytest.fixture(autouse=True)
def _two_threads():
    nb = backends.get_backend("numba")
    old = backends.get_num_threads()
    nb.set_num_threads(NT)
    yield
    nb.set_num_threads(old or numba.config.NUMBA_NUM_THREADS)


def _net(dt, sizes=(5, 16, 8, 1), seed=0):
    m = MLP(list(sizes), dtype=dt, seed=seed, backend="numba")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((37, sizes[0])).astype(dt)
    y = (rng.random((37, 1)) < 0.3).astype(dt)
    sw = rng.uniform(0.5, 1.5, 37).astype(dt)
    return m, x, y, sw


@pytest.mark.parametrize("dt", DTYPES)
def test_elementwise_and_dense_entry_points_match_the_python_api(dt):
    api = backends.get_backend("numba")
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((37, 9)) * 3).astype(dt)
    da = rng.standard_normal((37, 9)).astype(dt)
    for act in range(8):
        a, b = np.empty_like(z), np.empty_like(z)
        nk.activation_forward(a, z, act, NT)
        api.activation_forward(b, z, act)
        assert np.array_equal(a, b, equal_nan=True)
        nk.activation_backward(a, da, z, act, NT)
        api.activation_backward(b, da, z, act)
        assert np.array_equal(a, b, equal_nan=True)
    p1, p2 = np.empty((z.size, 2), dt), np.empty((z.size, 2), dt)
    nk.sigmoid_pair(p1, z.reshape(-1), NT)
    api.sigmoid_pair(p2, z.reshape(-1))
    assert np.array_equal(p1, p2)
    x = rng.standard_normal((37, 5)).astype(dt)
    w = rng.standard_normal((5, 9)).astype(dt)
    bias = rng.standard_normal(9).astype(dt)
    o1, z1, o2, z2 = (np.empty((37, 9), dt) for _ in range(4))
    nk.dense_forward(o1, z1, x, w, bias, 1, NT)
    api.dense_forward(o2, z2, x, w, bias, 1)
    assert np.array_equal(o1, o2) and np.array_equal(z1, z2)
    g1 = [np.empty((37, 5), dt), np.empty((5, 9), dt), np.empty(9, dt)]
    g2 = [np.empty((37, 5), dt), np.empty((5, 9), dt), np.empty(9, dt)]
    nk.dense_backward(g1[0], g1[1], g1[2], da, x, w, z1, 1, True, NT)
    api.dense_backward(g2[0], g2[1], g2[2], da, x, w, z1, 1)
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2))
    # and the NumPy reference agrees within the conformance tolerance
    g3 = [np.empty((37, 5), dt), np.empty((5, 9), dt), np.empty(9, dt)]
    ref.dense_backward(g3[0], g3[1], g3[2], da, x, w, z1, 1)
    for a, b in zip(g1, g3):
        np.testing.assert_allclose(a, b, rtol=1e-4 if dt == np.float32 else 1e-12, atol=1e-5)


@pytest.mark.parametrize("dt", DTYPES)
def test_network_entry_points_match_the_python_api(dt):
    api = backends.get_backend("numba")
    m, x, y, sw = _net(dt)
    sz, ac = m.sizes_array, m.acts_array
    o1, o2 = np.empty((37, 1), dt), np.empty((37, 1), dt)
    nk.mlp_forward(o1, m.params, x, sz, ac, NT)
    api.mlp_forward(o2, m.params, x, sz, ac)
    assert np.array_equal(o1, o2)
    g1, g2 = np.empty_like(m.params), np.empty_like(m.params)
    l1 = nk.mlp_loss_grad(g1, m.params, x, y, sw, sz, ac, 0, NT)
    l2 = api.mlp_loss_grad(g2, m.params, x, y, sw, sz, ac, 0)
    assert l1 == l2 and np.array_equal(g1, g2)
    d1, d2 = np.empty_like(o1), np.empty_like(o1)
    assert nk.loss_grad(d1, o1, y, sw, 0) == api.loss_grad(d2, o1, y, sw, 0)
    assert np.array_equal(d1, d2)
    # a whole epoch, optimizer state included
    opt = optim.Adam(m.params.copy(), lr=1e-2)
    perm = np.random.default_rng(3).permutation(37)
    runs = []
    for call in ("njit", "api"):
        p = m.params.copy()
        st = np.zeros_like(opt.state)
        bl = np.empty(5)
        args = (p, np.empty_like(p), st, bl, x, y, sw, perm, 8, np.full(5, 1e-2), 0, opt.code,
                opt.hyper_vector(), sz, ac, 0)
        done = nk.train_epoch(*args, NT) if call == "njit" else api.train_epoch(*args)
        runs.append((done, p, st, bl))
    assert runs[0][0] == runs[1][0] == 5
    for a, b in zip(runs[0][1:], runs[1][1:]):
        assert np.array_equal(a, b)


@numba.njit
def _unit_weight_calls(grad, params, x, y, sw, sizes, acts, dout, out, state, losses, perm,
                       lrs, opt, hyper, n_threads):
    # sw is None or an array: the same user code compiles for both
    a = nk.mlp_loss_grad(grad, params, x, y, sw, sizes, acts, 0, n_threads)
    b = nk.loss_grad(dout, out, y, sw, 0)
    done = nk.train_epoch(params, grad, state, losses, x, y, sw, perm, 8, lrs, 0, opt, hyper,
                          sizes, acts, 0, n_threads)
    return a, b, done


@pytest.mark.parametrize("dt", DTYPES)
def test_a_none_sample_weight_is_unit_weights_inside_njit(dt):
    # the reference takes sw=None for unit weights; so must the entry points (audit: a
    # TypingError inside @njit)
    m, x, y, _ = _net(dt)
    out = np.empty((37, 1), dt)
    nk.mlp_forward(out, m.params, x, m.sizes_array, m.acts_array, NT)
    opt = optim.Adam(m.params.copy(), lr=1e-2)
    perm = np.random.default_rng(3).permutation(37)
    runs = []
    for sw in (None, np.ones(37, dt)):
        p, g, d = m.params.copy(), np.empty_like(m.params), np.empty_like(out)
        st, bl = np.zeros_like(opt.state), np.empty(5)
        r = _unit_weight_calls(g, p, x, y, sw, m.sizes_array, m.acts_array, d, out, st, bl,
                               perm, np.full(5, 1e-2), opt.code, opt.hyper_vector(), NT)
        runs.append((r, p, g, d, st, bl))
    assert runs[0][0] == runs[1][0] and runs[0][0][2] == 5
    for a, b in zip(runs[0][1:], runs[1][1:]):
        assert np.array_equal(a, b)
    ones = np.ones(37, dt)
    ref_loss = ref.loss_grad(np.empty_like(out), out, y, ones, 0)
    assert runs[0][0][1] == pytest.approx(ref_loss, rel=1e-5)


def test_shuffle_and_optimizer_entry_points():
    u = np.random.default_rng(4).random(1000)
    a, b = np.empty(1000, np.int64), np.empty(1000, np.int64)
    assert nk.shuffle_indices(a, u) == -1
    ref.shuffle_indices(b, u)
    assert np.array_equal(a, b)
    u[10] = 1.0
    assert nk.shuffle_indices(a, u) == 10
    api = backends.get_backend("numba")
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(1001).astype(np.float32)
    g = rng.standard_normal(1001).astype(np.float32)
    for name in ("sgd", "adagrad", "rmsprop", "adam", "adamw"):
        o = optim.make_optimizer(name, p0.copy(), lr=1e-2)
        p1, s1 = p0.copy(), np.zeros_like(o.state)
        p2, s2 = p0.copy(), np.zeros_like(o.state)
        for step in (1, 2, 3):
            nk.optimizer_update(o.code, p1, g, s1, step, o.hyper_vector(), NT)
            api.optimizer_update(o.code, p2, g, s2, step, o.hyper_vector())
        assert np.array_equal(p1, p2) and np.array_equal(s1, s2), name


@numba.njit
def _train_in_numba(params, grad, state, x, y, sw, sizes, acts, hyper, k, n_threads):
    """A user's own compiled loop: k full-batch Adam steps, returns the losses."""
    losses = np.empty(k)
    for step in range(1, k + 1):
        losses[step - 1] = nk.mlp_loss_grad(grad, params, x, y, sw, sizes, acts, 0, n_threads)
        nk.optimizer_update(3, params, grad, state, step, hyper, n_threads)
    return losses


def test_a_training_loop_inside_njit_matches_the_python_api():
    m, x, y, sw = _net(np.float32, seed=6)
    api = backends.get_backend("numba")
    opt = optim.Adam(m.params.copy(), lr=1e-2)
    p1 = m.params.copy()
    l1 = _train_in_numba(p1, np.empty_like(p1), np.zeros_like(opt.state), x, y, sw,
                         m.sizes_array, m.acts_array, opt.hyper_vector(), 30, NT)
    p2, g2, s2, l2 = m.params.copy(), np.empty_like(p1), np.zeros_like(opt.state), []
    for step in range(1, 31):
        l2.append(api.mlp_loss_grad(g2, p2, x, y, sw, m.sizes_array, m.acts_array, 0))
        api.optimizer_update(3, p2, g2, s2, step, opt.hyper_vector())
    assert np.array_equal(p1, p2)
    assert l1.tolist() == l2
    assert l1[-1] < 0.8 * l1[0]



@pytest.mark.parametrize("opt", ["adam", "rmsprop"])
def test_threaded_reduction_and_update_give_the_same_bits(opt):
    """train_epoch's par_update (the gradient reduction and the optimizer update over
    parameter ranges on the threads, for wide nets) changes who computes each element, not
    what: parameters, state and batch losses equal the serial path bit for bit, and a
    non-finite batch stops both at the same step."""
    from fastmlp.backends import _nb_kernels as _k
    from fastmlp.codes import hyper_vector, optimizer_code
    rng = np.random.default_rng(4)
    sizes, acts = np.array([5, 260, 250, 1]), np.array([1, 1, 0])
    n_params = 6 * 260 + 261 * 250 + 251
    assert n_params >= _k.PAR_UPDATE_MIN_PARAMS
    n, bs = 1000, 128
    x = rng.standard_normal((n, 5)).astype(np.float32)
    y = (rng.random((n, 1)) > 0.5).astype(np.float32)
    sw = np.ones(n, np.float32)
    perm = rng.permutation(n).astype(np.int64)
    p0 = (rng.standard_normal(n_params) * 0.05).astype(np.float32)
    nb = -(-n // bs)
    lrs = np.full(nb, 1e-3)
    lrs[5] = 1e30   # blows up at batch 7: both paths must stop there
    out = {}
    for par in (False, True):
        p, st = p0.copy(), np.zeros((3, n_params), np.float32)
        bl = np.zeros(nb)
        done = _k.train_epoch(p, np.empty_like(p), st, bl, x, y, sw, perm, bs, lrs, 0,
                              optimizer_code(opt), hyper_vector(opt, lr=1e-3), sizes, acts, 0,
                              2, 64, 0.0, par)
        out[par] = p, st, bl, done
    (p0_, s0_, b0_, d0_), (p1, s1, b1, d1) = out[False], out[True]
    assert d0_ == d1 and 0 < d1 < nb
    assert np.array_equal(p0_, p1) and np.array_equal(s0_, s1)
    assert np.array_equal(b0_[:d1], b1[:d1])


# Public updates with the buffers the options leave unused passed as None (the documented
# way: vmax without amsgrad, buf of plain SGD, RMSprop's grad_avg / momentum_buffer).  Numba
# used to send such calls to the NumPy reference, 15x slower; they must run the kernel and
# give the reference's values.
_NONE_CASES = [
    ("sgd_update", lambda p: (None,), dict(lr=0.05, momentum=0.0, dampening=0.0,
                                          weight_decay=0.01, nesterov=False,
                                          maximize=False)),
    ("rmsprop_update", lambda p: (np.zeros_like(p), None, None),
     dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
          maximize=False)),
    ("adam_update", lambda p: (np.zeros_like(p), np.zeros_like(p), None),
     dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False,
          maximize=False, decoupled=False)),
    ("adam_update", lambda p: (np.zeros_like(p), np.zeros_like(p), None),
     dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, amsgrad=False,
          maximize=True, decoupled=True)),
]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name,state,hyper", _NONE_CASES)
def test_updates_with_unused_buffers_as_none_run_the_kernel(name, state, hyper, dt,
                                                             monkeypatch):
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(1001).astype(dt)
    grads = rng.standard_normal((3, 1001)).astype(dt)
    p_want, s_want = p0.copy(), state(p0)
    for i, g in enumerate(grads):
        getattr(ref, name)(p_want, g, *s_want, step=i + 1, **hyper)

    def refused(*a, **k):
        raise AssertionError(f"numba's {name} fell back to the NumPy reference")
    monkeypatch.setattr(ref, name, refused)
    p_got, s_got = p0.copy(), state(p0)
    for i, g in enumerate(grads):
        getattr(backends.get_backend("numba"), name)(p_got, g, *s_got, step=i + 1, **hyper)
    tol = 1e-5 if dt == np.float32 else 1e-12
    for w, o in zip((p_want, *s_want), (p_got, *s_got)):
        if w is not None:
            np.testing.assert_allclose(o, w, rtol=tol, atol=tol)
