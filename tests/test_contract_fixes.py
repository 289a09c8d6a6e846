"""The kernel contract's refusals found by a reviewer embedding the kernels: optimizer flags
other than 0 / 1, sample weights that make no weighted mean, ndarray subclasses whose
semantics the kernels would drop.  Every backend refuses alike (tests/test_contract.py runs
the message table); here: what the fixes must keep working, and the C library's own answer
past the Python checks."""

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, backends, codes, optim

BACKENDS = [n for n, (ok, _) in backends.available_backends().items() if ok]


def _net(dtype="float64"):
    m = MLP([3, 4, 1], dtype=dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(dtype)
    return m, x, (x[:, :1] > 0).astype(dtype)


# -- 1. flags ----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_flag_other_than_0_or_1_is_refused_and_nothing_written(backend):
    k = backends.get_backend(backend)
    p, st = np.linspace(-1, 1, 10), np.zeros((3, 10))
    h = np.array([0.1, 0.9, 0.999, 1e-8, 0, 0, -1, 0])    # maximize = -1 ran as maximize
    with pytest.raises(ValueError, match=r"^maximize must be 0 or 1 \(a flag\), got -1.0$"):
        k.optimizer_update(3, p, np.ones(10), st, 1, h)
    assert np.array_equal(p, np.linspace(-1, 1, 10)) and not st.any()


@pytest.mark.parametrize("cls, flags", [
    (optim.SGD, dict(momentum=0.9, nesterov=np.bool_(True), maximize=True)),
    (optim.Adam, dict(amsgrad=np.bool_(True), maximize=np.bool_(False))),
    (optim.AdamW, dict(amsgrad=True, maximize=True)),
    (optim.RMSprop, dict(centered=np.bool_(True), maximize=True)),
    (optim.Adagrad, dict(maximize=np.bool_(True))),
])
def test_optimizer_objects_give_exact_flags_and_a_shifted_one_is_refused(cls, flags):
    # the Optimizer classes put exactly 0.0 / 1.0 in the vector, which the check accepts
    p = np.linspace(-1, 1, 6)
    opt = cls(p, lr=0.01, **flags)
    h = opt.hyper_vector()
    names = codes.HYPER_NAMES[opt.name]
    for key, value in flags.items():
        if key != "momentum":
            assert h[names.index(key)] == float(bool(value))
    opt.step(np.ones(6))
    assert opt.step_count == 1 and np.isfinite(p).all()
    # the same vector with its maximize entry at 0.5 (a hand-built one) ran as maximize
    h = h.copy()
    h[names.index("maximize")] = 0.5
    before = p.copy()
    with pytest.raises(ValueError, match=r"^maximize must be 0 or 1 \(a flag\), got 0.5$"):
        backends.get_backend("numpy").optimizer_update(opt.code, p, np.ones(6), opt.state,
                                                        2, h)
    assert np.array_equal(p, before)


# -- 2. state rows -------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_the_state_message_says_extra_rows_are_allowed_as_they_are(backend):
    k = backends.get_backend(backend)
    h = codes.hyper_vector("adam", lr=0.01)
    with pytest.raises(ValueError, match=r"state must have shape \(>= 3, 4\) for optimizer "
                                         r"'adam': at least 3 rows, .* got \(2, 4\)"):
        k.optimizer_update(3, np.zeros(4), np.ones(4), np.zeros((2, 4)), 1, h)
    st = np.zeros((4, 4))    # the batched kernels' (N_STATE_MAX, n) blocks: a row to spare
    k.optimizer_update(0, np.zeros(4), np.ones(4), st[:3], 1, codes.hyper_vector("sgd"))
    k.optimizer_update(3, np.zeros(4), np.ones(4), st, 1, h)
    assert not st[3].any()


# -- 3. sample weights ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sw, pattern", [
    (np.zeros(6), r"^sw sums to 0 \(all 6 weights 0\)"),
    (-np.ones(6), r"^sw must hold finite sample weights >= 0, got sw\[0\] = -1.0$"),
])
def test_loss_kernels_refuse_weights_without_a_weighted_mean(backend, sw, pattern):
    k = backends.get_backend(backend)
    m, x, y = _net()
    grad = np.full(m.params.size, 7.0)
    with pytest.raises(ValueError, match=pattern):
        k.mlp_loss_grad(grad, m.params, x, y, sw, m.sizes_array, m.acts_array, 0)
    dl = np.full((6, 1), 7.0)
    with pytest.raises(ValueError, match=pattern):
        k.bce_loss_grad(dl, x[:, :1].copy(), y, sw)
    assert (grad == 7).all() and (dl == 7).all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_train_epoch_checks_every_weight_and_stops_at_a_weightless_batch(dtype):
    m, x, y = _net(dtype)

    def epoch(b, sw):
        p, g, bl = m.params.copy(), np.zeros(m.params.size, dtype), np.zeros(3)
        done = backends.get_backend(b).train_epoch(
            p, g, np.zeros((3, p.size), dtype), bl, x, y, sw, np.arange(6), 2,
            np.full(3, 0.01), 0, 3, codes.hyper_vector("adam"), m.sizes_array, m.acts_array,
            0)
        return done, p, g, bl

    for b in BACKENDS:
        # a negative weight in the third batch: refused before the first is trained
        with pytest.raises(ValueError, match=r"^sw must hold finite sample weights >= 0, "
                                             r"got sw\[4\] = -1.0$"):
            epoch(b, np.array([1, 1, 1, 1, -1, 1], dtype))
        # the second batch of 2 weighs nothing: its weighted mean is 0 / 0, the epoch stops
        done, p, g, bl = epoch(b, np.array([1, 1, 0, 0, 1, 1], dtype))
        assert done == 1 and np.isnan(bl[1]) and np.isfinite(bl[0]), (b, done, bl)
        assert np.isnan(g).all() and np.isfinite(p).all(), b



@pytest.mark.parametrize("backend", BACKENDS)
def test_train_epoch_takes_weights_whose_total_overflows_when_each_batch_is_finite(backend):
    # float32: 1e38 x 6 rows overflows, each batch of 2 sums to 2e38: the epoch's loss per
    # batch is a finite weighted mean (only the loss kernels, handed one batch, judge a total)
    m, x, y = _net("float32")
    p = m.params.copy()
    bl = np.zeros(3)
    done = backends.get_backend(backend).train_epoch(
        p, np.zeros(p.size, np.float32), np.zeros((3, p.size), np.float32), bl, x, y,
        np.full(6, 1e38, np.float32), np.arange(6), 2, np.full(3, 0.01), 0, 3,
        codes.hyper_vector("adam"), m.sizes_array, m.acts_array, 0)
    assert done == 3 and np.isfinite(bl).all() and np.isfinite(p).all()

def test_c_refuses_bad_weights_before_writing():
    if "c" not in BACKENDS:
        pytest.skip("C backend not built")
    from fastmlp.backends import c as cb
    lib, ffi = cb._lib, cb._ffi
    dbl = lambda a: ffi.from_buffer("double[]", a)    # noqa: E731
    z, t = np.zeros(3), np.array([1.0, 0, 1])
    for sw in (np.zeros(3), np.array([1.0, -1, 1]), np.array([1.0, np.nan, 1]),
               np.array([np.inf, 1, 1])):
        dl, loss = np.full(3, 7.0), ffi.new("double *", 7.0)
        assert lib.fastmlp_bce_loss_grad_f64(loss, dbl(dl), dbl(z), dbl(t), dbl(sw),
                                             3) == lib.FASTMLP_EVALUE
        assert (dl == 7).all() and loss[0] == 7


# -- 4. ndarray subclasses -----------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_arrays_and_matrices_are_refused_memmaps_accepted(backend, tmp_path):
    k = backends.get_backend(backend)
    m, x, _ = _net()
    out = np.empty((6, 1))
    masked = np.ma.masked_array(x, mask=x > 1)
    with pytest.raises(TypeError, match=r"^x must be a plain NumPy array, got a MaskedArray"
                                        r".*x\.filled\(np\.nan\)"):
        k.mlp_forward(out, m.params, masked, m.sizes_array, m.acts_array)
    with pytest.raises(TypeError, match=r"params must be a plain NumPy array, got a Masked"):
        k.mlp_forward(out, np.ma.masked_array(m.params), x, m.sizes_array, m.acts_array)
    with pytest.raises(TypeError, match=r"z must be a plain NumPy array, got matrix; pass "
                                        r"np.asarray\(z\)"):
        k.activation_forward(np.empty((6, 3)), np.asmatrix(x), 1)
    mm = np.memmap(tmp_path / "x.bin", dtype=np.float64, mode="w+", shape=x.shape)
    mm[...] = x
    k.mlp_forward(out, m.params, mm, m.sizes_array, m.acts_array)
    want = np.empty((6, 1))
    k.mlp_forward(want, m.params, x, m.sizes_array, m.acts_array)
    assert np.array_equal(out, want)


def test_the_batched_epoch_refuses_a_bad_weight_before_any_model_trains():
    from fastmlp.backends import batched
    m, x, y = _net()
    n = m.params.size
    sw = np.ones((2, 6))
    sw[1, 4] = -1.0    # the second model's weight: the first must not train either
    for name, (ok, _) in batched.available_batched_backends().items():
        if not ok:
            continue
        P = np.tile(m.params, (2, 1))
        with pytest.raises(ValueError, match=r"^sw must hold finite sample weights >= 0, got "
                                             r"sw\[1, 4\] = -1.0$"):
            batched.get_batched_backend(name).batched_train_epoch(
                P, np.zeros_like(P), np.zeros((2, 3, n)), np.zeros((2, 3)),
                np.zeros(2, np.int64), x, y, sw, np.tile(np.arange(6), (2, 1)),
                np.array([6, 6]), np.array([2, 2]), np.full((2, 3), 0.01),
                np.zeros(2, np.int64), np.array([3, 3]),
                np.stack([codes.hyper_vector("adam")] * 2), m.sizes_array, m.acts_array, 0)
        assert np.array_equal(P, np.tile(m.params, (2, 1))), name
    if "c" in BACKENDS:   # the C kernel itself, past the Python checks
        from fastmlp.backends import batched_c
        P = np.tile(m.params, (2, 1))
        st = batched_c._call_kernel(
            batched_c._lib.fastmlp_batched_train_epoch_f64, "double[]", np.zeros(2, np.int64),
            P, np.zeros_like(P), np.zeros((2, 3, n)), np.zeros((2, 3)), x[None], y, sw, 6,
            np.tile(np.arange(6), (2, 1)), np.array([6, 6]), np.array([2, 2]),
            np.full((2, 3), 0.01), np.zeros(2, np.int64), np.array([3, 3]),
            np.stack([codes.hyper_vector("adam")] * 2), 2, m.sizes_array, m.acts_array, 0)
        from fastmlp.backends import c as cb
        assert st == cb._lib.FASTMLP_EVALUE
        assert np.array_equal(P, np.tile(m.params, (2, 1)))


def test_fit_refuses_up_front_validation_rows_that_all_weigh_zero():
    # the validation loss is a weighted mean: without weight it does not exist (the kernels
    # refuse it; fit said so only after an epoch, as "sw sums to 0", without naming validation)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(float)
    w = np.zeros(200)
    w[1] = 1.0                      # one weighted row: a training row with seed 0
    m = fastmlp.MLP([3, 4, 1], seed=0)
    p0 = m.params.copy()
    with pytest.raises(ValueError, match=r"validation=0.5: the 100 validation rows all have a "
                                         r"sample weight of 0"):
        fastmlp.fit(m, X, y, sample_weight=w, validation=0.5, epochs=1, batch_size=None,
                    progress=False)
    np.testing.assert_array_equal(m.params, p0)    # refused before any step
