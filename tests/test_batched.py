"""Many models in one pass: the batched kernels and ModelBatch against the oracle of each
model trained alone (fit / the single-model fused epoch with the same rows in the same
order), per-model optimizer types in one pass, the recipes' batched path against their
serial path, ensembles and the memory bound."""

import numpy as np
import pytest

import fastmlp
from fastmlp.backends import get_backend, threads
from fastmlp.backends.batched import available_batched_backends, get_batched_backend
from fastmlp.optim import make_optimizer
from fastmlp.training import (Ensemble, ModelBatch, compare_optimizers, cross_validate,
                              fit_batch, fit_ensemble, lr_sweep)
from fastmlp.training.batch import batch_memory

HAS_NUMBA = available_batched_backends()["numba"][0]
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="the numba backend is not available")
# the fast batched backends, each checked against its own single-model backend
FAST = [pytest.param(name, marks=pytest.mark.skipif(
    not available_batched_backends()[name][0],
    reason=f"batched {name}: {available_batched_backends()[name][1]}"))
    for name in ("numba", "c")]

# the lecture's five optimizers, each with a setting that exercises its state
RACE = [("sgd", {"lr": 0.05}), ("momentum", {"lr": 0.01}), ("adagrad", {"lr": 0.02}),
        ("rmsprop", {"lr": 1e-3, "centered": True}), ("adam", {"lr": 1e-3, "amsgrad": True}),
        ("adamw", {"lr": 2e-3}), ("nesterov", {"lr": 0.01, "weight_decay": 1e-3})]


def _data(n=600, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int)
    return X, y


def _batch_vs_alone(dtype, backend, epochs=2, batch_size=64, n_threads=None):
    """Params of a ModelBatch racing RACE, and of each model trained alone by fit."""
    X, y = _data()
    base = fastmlp.MLP([5, 16, 16, 1], dtype=dtype, seed=3)
    batch = ModelBatch(base, len(RACE), optimizer=[o for o, _ in RACE],
                       optimizer_kwargs=[kw for _, kw in RACE])
    fit_batch(batch, X, y, epochs=epochs, batch_size=batch_size, seed=4, backend=backend,
              n_threads=n_threads)
    alone = []
    for name, kw in RACE:
        m = base.copy()
        fastmlp.fit(m, X, y, optimizer=name, optimizer_kwargs=kw, epochs=epochs,
                    batch_size=batch_size, seed=4, validation=None, progress=False,
                    backend=backend, n_threads=n_threads)
        alone.append(m)
    return batch, alone


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_each_model_of_a_batch_ends_bit_identical_to_fit_alone(dtype, backend):
    batch, alone = _batch_vs_alone(dtype, backend)
    for k, m in enumerate(alone):
        assert np.array_equal(batch.params[k], m.params), RACE[k]
        # the optimizer state and step count travel too (training can continue with fit)
        mk = batch.model(k)
        assert mk.optimizer.step_count == m.optimizer.step_count
        assert np.array_equal(mk.optimizer.state, m.optimizer.state)


@pytest.mark.parametrize("backend", FAST)
def test_models_spread_over_chunks_and_threads_end_as_alone(backend):
    """5 models on 2 threads over several chunks of ~16k rows: the regions mix one model's
    next chunk with another's current one (5 is not a multiple of 2), models with fewer
    rows finish early; each still ends bit for bit as trained alone."""
    X, y = _data(40_000, seed=2)
    base = fastmlp.MLP([5, 8, 8, 1], dtype="float32", seed=5)
    race = RACE[:5]
    subsets = [np.arange(40_000), np.arange(9_000, 40_000), np.arange(40_000),
               np.arange(0, 17_000), np.arange(40_000)]
    batch = ModelBatch(base, len(race), optimizer=[o for o, _ in race],
                       optimizer_kwargs=[kw for _, kw in race])
    with threads(2):
        fit_batch(batch, X, y, epochs=1, batch_size=64, seed=6, subsets=subsets,
                  backend=backend)
        for k, ((name, kw), sub) in enumerate(zip(race, subsets)):
            m = base.copy()
            fastmlp.fit(m, X[sub], y[sub], optimizer=name, optimizer_kwargs=kw, epochs=1,
                        batch_size=64, seed=6, validation=None, progress=False,
                        backend=backend)
            assert np.array_equal(batch.params[k], m.params), (k, name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_reference_batch_is_bit_identical_to_the_reference_alone(dtype):
    batch, alone = _batch_vs_alone(dtype, "numpy", epochs=1)
    for k, m in enumerate(alone):
        assert np.array_equal(batch.params[k], m.params), RACE[k]


@needs_numba
def test_numba_batch_matches_fit_at_nslices_threads_whatever_threads_run_it():
    """The row slices (nslices) fix the arithmetic; the thread count of the call does not."""
    X, y = _data()
    base = fastmlp.MLP([5, 16, 1], dtype="float64", seed=2)
    single = base.copy()
    fastmlp.fit(single, X, y, epochs=2, batch_size=100, seed=0, validation=None,
                progress=False, backend="numba", n_threads=2)
    for nth in (1, 2):
        batch = ModelBatch(base, 2)
        fit_batch(batch, X, y, epochs=2, batch_size=100, seed=0, backend="numba",
                  n_threads=nth, nslices=2)
        assert np.array_equal(batch.params[0], single.params)
        assert np.array_equal(batch.params[1], single.params)


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("x_per_model", [False, True])
def test_fast_batched_epoch_agrees_with_the_reference_to_rounding(dtype, backend, x_per_model):
    """Per-model row orders, batch sizes, row weights, lrs (and inputs) through the raw
    kernels."""
    rng = np.random.default_rng(0)
    N, K = 300, 4
    sizes = np.array([3, 8, 3]); acts = np.array([1, 0])
    n_params = 4 * 8 + 9 * 3
    x = rng.normal(size=(K, N, 3) if x_per_model else (N, 3)).astype(dtype)
    y = rng.integers(0, 3, size=(N, 1)).astype(dtype)
    sw = rng.random((K, N)).astype(dtype)
    perm = np.stack([rng.permutation(N) for _ in range(K)])
    n_rows = np.array([300, 250, 10, 0]); bs = np.array([64, 50, 32, 16])
    opts = np.array([0, 2, 3, 1]); lrs = rng.uniform(1e-3, 1e-2, (K, 5))
    hypers = np.zeros((K, 8)); hypers[:, 0] = 1e-2
    hypers[1, 1:3] = 0.99, 1e-8; hypers[2, 1:4] = 0.9, 0.999, 1e-8; hypers[3, 3] = 1e-10
    p0 = (rng.normal(size=(K, n_params)) * 0.3).astype(dtype)
    out = {}
    for name in ("numpy", backend):
        p, st = p0.copy(), np.zeros((K, 3, n_params), dtype)
        bl, done = np.full((K, 5), np.nan), np.zeros(K, np.int64)
        get_batched_backend(name).batched_train_epoch(
            p, np.empty_like(p), st, bl, done, x, y, sw, perm, n_rows, bs, lrs,
            np.array([0, 3, 0, 0]), opts, hypers, sizes, acts, 1)
        out[name] = p, st, bl, done
    (pr, sr, br, dr), (pn, sn, bn, dn) = out["numpy"], out[backend]
    assert dr.tolist() == dn.tolist() == [5, 5, 1, 0]
    tol = 1e-12 if dtype == "float64" else 2e-5
    np.testing.assert_allclose(pn, pr, rtol=tol, atol=tol)
    np.testing.assert_allclose(sn, sr, rtol=tol, atol=tol)
    np.testing.assert_allclose(bn[:, :5], br[:, :5], rtol=tol, atol=tol)
    assert np.array_equal(pn[3], p0[3])  # a model with no rows is left alone


@needs_numba
def test_a_diverging_model_stops_alone_and_keeps_its_last_finite_params():
    X, y = _data()
    base = fastmlp.MLP([5, 16, 1], dtype="float64", seed=0)
    batch = ModelBatch(base, 2, optimizer="sgd", optimizer_kwargs=[{"lr": 0.01},
                                                                   {"lr": 1e150}])
    hist = fit_batch(batch, X, y, epochs=3, batch_size=64, seed=0, backend="numba")
    assert hist.diverged.tolist() == [False, True]
    assert hist.diverged_step[1] >= 1
    assert np.isfinite(batch.params).all()
    assert np.isnan(hist.model_loss(1)[-1]) and np.isfinite(hist.model_loss(0)).all()
    # the healthy model is unaffected by its neighbour
    alone = base.copy()
    fastmlp.fit(alone, X, y, optimizer="sgd", lr=0.01, epochs=3, batch_size=64, seed=0,
                validation=None, progress=False, backend="numba")
    assert np.array_equal(batch.params[0], alone.params)
    with pytest.raises(fastmlp.TrainingDiverged, match="model 1"):
        b2 = ModelBatch(base, 2, optimizer="sgd",
                        optimizer_kwargs=[{"lr": 0.01}, {"lr": 1e150}])
        fit_batch(b2, X, y, epochs=3, batch_size=64, backend="numba", on_divergence="raise")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:Mean of empty slice:RuntimeWarning")
def test_a_model_whose_optimizer_state_overflowed_counts_as_diverged():
    # inputs of 1e30 in float32: Adam's squared gradients overflow on step 1 while the loss
    # stays a finite 1e29; fit_batch warned of nothing and called the run healthy
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    X[:, 1] *= 1e30
    y = (X[:, 0] > 0).astype(int)
    base = fastmlp.MLP([3, 8, 1], seed=0, backend="numpy")
    batch = ModelBatch(base, 2, optimizer="adam", optimizer_kwargs=[{"lr": 1e-3},
                                                                    {"lr": 1e-2}])
    p0, s0 = batch.params.copy(), batch.states.copy()
    with pytest.warns(UserWarning, match=r"column 1 reaches .*standardize=True"):
        hist = fit_batch(batch, X, y, epochs=2, batch_size=None, backend="numpy")
    assert hist.diverged.tolist() == [True, True] and hist.diverged_step.tolist() == [1, 1]
    assert np.array_equal(batch.params, p0) and np.array_equal(batch.states, s0)
    with pytest.raises(fastmlp.TrainingDiverged, match=r"model 0 of the batch diverged: "
                                                       r"non-finite .*optimizer state"):
        b2 = ModelBatch(base, 1, optimizer="adam")
        with pytest.warns(UserWarning):
            fit_batch(b2, X, y, epochs=2, batch_size=None, backend="numpy",
                      on_divergence="raise")


def test_per_model_row_weights_equal_fit_with_those_sample_weights():
    X, y = _data(300)
    rng = np.random.default_rng(5)
    w = rng.integers(0, 3, size=(3, 300)).astype(float)
    base = fastmlp.MLP([5, 8, 1], dtype="float64", seed=1)
    batch = ModelBatch.from_seeds(base, [1, 2, 3])
    fit_batch(batch, X, y, epochs=2, batch_size=50, seed=7, sample_weight=w,
              class_weight="balanced", backend="numpy")
    for k, s in enumerate([1, 2, 3]):
        m = fastmlp.MLP([5, 8, 1], dtype="float64", seed=s, backend="numpy")
        fastmlp.fit(m, X, y, epochs=2, batch_size=50, seed=7, sample_weight=w[k],
                    class_weight="balanced", validation=None, progress=False)
        assert np.array_equal(batch.params[k], m.params)


def test_subsets_train_each_model_on_its_rows_as_fit_would():
    X, y = _data(300)
    base = fastmlp.MLP([5, 8, 1], dtype="float64", seed=1)
    subsets = [np.arange(0, 200), np.arange(100, 300)]
    batch = ModelBatch(base, 2, optimizer="rmsprop", schedule="linear:final=1e-4,T=20")
    fit_batch(batch, X, y, epochs=2, batch_size=32, seed=3, subsets=subsets,
              backend="numpy")
    for k, sub in enumerate(subsets):
        m = base.copy()
        m.backend = "numpy"
        fastmlp.fit(m, X[sub], y[sub], optimizer="rmsprop", schedule="linear:final=1e-4,T=20",
                    epochs=2, batch_size=32, seed=3, validation=None, progress=False)
        assert np.array_equal(batch.params[k], m.params)


@needs_numba
def test_recipes_batched_equal_serial():
    X, y = _data(500)
    mk = lambda: fastmlp.MLP([5, 16, 16, 1], dtype="float64", seed=3, backend="numba")  # noqa
    lrs = np.logspace(-4, 0, 5)
    a = lr_sweep(mk, X, y, lrs=lrs, iterations=30, batch_size=64)
    b = lr_sweep(mk, X, y, lrs=lrs, iterations=30, batch_size=64, batched=False)
    assert all(np.array_equal(c, d, equal_nan=True) for c, d in zip(a.losses, b.losses))
    assert a.best_lr == b.best_lr and a.diverged.tolist() == b.diverged.tolist()
    # passes of 2 models mapped by an executor: the same curves
    c = lr_sweep(mk, X, y, lrs=lrs, iterations=30, batch_size=64, executor=_Map(),
                 models_per_pass=2)
    assert _Map.calls == 3   # 5 candidates in passes of 2, 2 and 1
    assert all(np.array_equal(p, q, equal_nan=True) for p, q in zip(a.losses, c.losses))
    a = compare_optimizers(mk, X, y, iterations=40)
    b = compare_optimizers(mk, X, y, iterations=40, batched=False)
    assert list(a) == list(b)
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


class _Map:
    """A stand-in executor that records how many tasks it ran."""
    calls = 0

    def map(self, fn, items):
        items = list(items)
        _Map.calls = len(items)
        return [fn(i) for i in items]


@pytest.mark.parametrize("backend", FAST)
def test_cross_validate_batched_equals_serial_fold_for_fold(backend):
    X, y = _data(400)
    mk = lambda: fastmlp.MLP([5, 16, 1], dtype="float64", seed=3, backend=backend)  # noqa
    kw = dict(k=4, epochs=2, batch_size=64, class_weight="balanced", optimizer="momentum",
              lr=0.02, standardize=True)
    X = X * [1, 10, 0.1, 5, 1] + 3   # standardisation per fold matters
    a = cross_validate(mk, X, y, **kw)
    b = cross_validate(mk, X, y, batched=False, **kw)
    assert a.folds == b.folds and a.fold_sizes == b.fold_sizes


def test_cross_validate_takes_the_serial_path_for_what_batching_cannot_reproduce():
    from fastmlp.training.recipes import CVPlan
    X, y = _data(200)
    mk = lambda: fastmlp.MLP([5, 4, 1], dtype="float64", seed=3)  # noqa
    assert CVPlan.build(mk, X, y, 3, True, 0, None, {"epochs": 1}).batched_ok()
    assert CVPlan.build(mk, X, y, 3, True, 0, None, {"standardize": True}).batched_ok()
    for extra in ({"validation": 0.2}, {"early_stopping": 2, "validation": 0.2},
                  {"drop_invalid": True}, {"callbacks": [print]}):
        assert not CVPlan.build(mk, X, y, 3, True, 0, None, extra).batched_ok(), extra


def test_fit_ensemble_mean_and_spread():
    X, y = _data(400)
    ens = fit_ensemble(lambda: fastmlp.MLP([5, 8, 1], dtype="float64", backend="numpy"), X,
                       y, n_members=4, epochs=3, batch_size=64)
    assert isinstance(ens, Ensemble) and len(ens) == 4
    mean, std = ens.predict_proba(X[:50])
    each = ens.member_proba(X[:50])
    np.testing.assert_allclose(mean, each.mean(axis=0))
    np.testing.assert_allclose(std, each.std(axis=0))
    assert (std > 0).any()   # distinct initial weights and bootstrap rows give a spread
    np.testing.assert_allclose(mean.sum(axis=1), 1.0)
    assert ens.predict(X[:50]).tolist() == mean.argmax(axis=1).tolist()
    # regression: (mean, std) of the members' predictions
    yr = X[:, 0] * 2 + 1
    reg = fit_ensemble(lambda: fastmlp.MLP([5, 8, 1], dtype="float64", backend="numpy"), X,
                       yr, n_members=3, epochs=2, loss="mse", bootstrap=False, seed=1)
    m, s = reg.predict(X[:20])
    vals = np.stack([mm.predict(X[:20]) for mm in reg.members])
    np.testing.assert_allclose(m, vals.mean(axis=0))
    np.testing.assert_allclose(s, vals.std(axis=0))


def test_memory_is_stated_and_a_too_large_batch_is_refused():
    base = fastmlp.MLP([5, 64, 64, 1])
    need = batch_memory(base.layer_sizes, 10, base.dtype, n_threads=2)
    n_params = base.n_params
    assert need["params_and_grads"] == 2 * 10 * n_params * 4
    assert need["optimizer_state"] == 3 * 10 * n_params * 4
    assert need["slice_gradients"] == 2 * 2 * n_params * 4   # per thread, not per model
    b = ModelBatch(base, 10, n_threads=2)
    assert b.memory["total"] == need["total"]
    with pytest.raises(MemoryError, match=r"K=1000 models .* above memory_limit"):
        ModelBatch(base, 1000, memory_limit=2 ** 20)


def test_bad_batch_arguments_are_refused_with_clear_errors():
    base = fastmlp.MLP([3, 4, 1], dtype="float64")
    with pytest.raises(ValueError, match="n_models must be a positive integer"):
        ModelBatch(base, 0)
    with pytest.raises(ValueError, match="optimizer must be one value or a list of 2"):
        ModelBatch(base, 2, optimizer=["sgd", "adam", "adam"])
    with pytest.raises(ValueError, match="unknown optimizer"):
        ModelBatch(base, 2, optimizer="lbfgs")
    b = ModelBatch(base, 2)
    X = np.zeros((10, 3)); y = np.zeros(10)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(10,\) or \(2, 10\)"):
        fit_batch(b, X, y, sample_weight=np.ones((3, 10)))
    # one weight per row, but 12 for 10 rows: with subsets it was indexed per subset and
    # trained on silently
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(10,\) or \(2, 10\) "
                       r".*got \(12,\)"):
        fit_batch(b, X, y, sample_weight=np.ones(12), subsets=[np.arange(5), np.arange(5, 10)])
    with pytest.raises(ValueError, match="subsets must hold one row-index array per model"):
        fit_batch(b, X, y, subsets=[np.arange(5)])



@pytest.mark.parametrize("backend", ["numpy"] + FAST)
@pytest.mark.parametrize("bad, match", [
    ({"states": np.zeros((2, 1, 21))}, "states must be"),
    ({"perm": np.full((1, 10), 10)}, r"perm must hold row indices in 0\.\.9"),
    ({"opts": np.array([0, 9])}, "opts must hold optimizer codes"),
    ({"lrs": np.zeros((2, 0))}, r"lrs must have shape \(2, >= 1\)"),
    ({"sw": np.ones((3, 10))}, r"sw must have shape \(2, 10\) or \(1, 10\)"),
    ({"opts": np.array([0, 3]), "hypers": np.array([[0.1] + [0] * 7, [0.1, 1.0] + [0] * 6])},
     r"hypers\[1\]: beta1 must be in \[0, 1\), got 1.0"),
])
def test_every_batched_backend_refuses_bad_input_with_the_same_error(backend, bad, match):
    p = np.zeros((2, 21))  # sizes [3, 4, 1]: 4 * 4 + 5 * 1 parameters
    args = dict(params=p, grads=np.zeros_like(p), states=np.zeros((2, 3, 21)),
                batch_losses=np.zeros((2, 1)), done=np.zeros(2, np.int64), x=np.zeros((10, 3)),
                y=np.zeros((10, 1)), sw=np.ones((1, 10)), perm=np.zeros((1, 10), np.int64),
                n_rows=np.full(2, 10), batch_size=np.full(2, 10), lrs=np.zeros((2, 1)),
                step0=np.zeros(2, np.int64), opts=np.zeros(2, np.int64),
                hypers=np.zeros((2, 8)), sizes=np.array([3, 4, 1]), acts=np.array([1, 0]),
                loss=0)
    args.update(bad)
    before = p.copy()
    with pytest.raises(ValueError, match=match):
        get_batched_backend(backend).batched_train_epoch(**args)
    assert np.array_equal(p, before)


@needs_numba
def test_batched_forward_numba_equals_each_model_forward():
    rng = np.random.default_rng(0)
    base = fastmlp.MLP([5, 16, 3], dtype="float64")
    b = ModelBatch.from_seeds(base, [0, 1, 2])
    x = rng.normal(size=(700, 5))
    out = np.empty((3, 700, 3))
    get_batched_backend("numba").batched_forward(out, b.params, x, base.sizes_array,
                                                 base.acts_array)
    nb = get_backend("numba")
    for k in range(3):
        one = np.empty((700, 3))
        with threads(1):
            nb.mlp_forward(one, b.params[k], x, base.sizes_array, base.acts_array)
        np.testing.assert_array_equal(out[k], one)


def test_model_batch_optimizer_state_is_a_view_of_the_batch_buffer():
    base = fastmlp.MLP([3, 4, 1], dtype="float64")
    b = ModelBatch(base, 2, optimizer=["adagrad", "sgd"],
                   optimizer_kwargs=[{"initial_accumulator_value": 0.5}, None])
    assert np.all(b.states[0, 0] == 0.5)       # Adagrad's initial accumulator copied in
    assert np.shares_memory(b.optimizers[0].state, b.states)
    assert np.shares_memory(b.optimizers[1].params, b.params)
    ref = make_optimizer("adagrad", base.params.copy(), initial_accumulator_value=0.5)
    np.testing.assert_array_equal(b.hyper_matrix()[0], ref.hyper_vector())


def test_fit_batch_validation_loss_is_each_models_loss_on_the_validation_rows():
    X, y = _data(300)
    base = fastmlp.MLP([5, 8, 1], dtype="float64", seed=1)
    batch = ModelBatch.from_seeds(base, [1, 2])
    hist = fit_batch(batch, X[:200], y[:200], epochs=2, batch_size=50,
                     validation=(X[200:], y[200:]), backend="numpy")
    assert len(hist.val_loss) == 2
    for k in range(2):
        value, _ = batch.model(k).loss_and_grad(X[200:], y[200:], backend="numpy")
        assert hist.val_loss[-1][k] == pytest.approx(value, rel=1e-12)


def test_the_batched_path_uses_the_twin_of_the_serial_backend():
    from fastmlp.backends import resolve
    from fastmlp.training.batch import batched_kernels
    base = fastmlp.MLP([3, 4, 1], backend="numpy")
    assert batched_kernels(None, base)[0] == "numpy"
    if HAS_NUMBA:
        assert batched_kernels("numba", base)[0] == "numba"
    serial = resolve(None)   # what a serial recipe runs for a model without a backend
    name = batched_kernels(None, fastmlp.MLP([3, 4, 1]))[0]
    assert name == (serial if available_batched_backends()[serial][0] else name)
    with pytest.raises(ValueError, match="unknown backend"):
        batched_kernels("cuda", base)


@pytest.mark.skipif(not (available_batched_backends()["c"][0]
                         and get_backend("c").has_blas()),
                    reason="the C backend with a BLAS is unavailable")
def test_c_batch_follows_each_models_measured_blas_layers(tmp_path, monkeypatch):
    """With tuning on, C's train_epoch sends the layers measured for its shape class to BLAS
    (tuning.blas_layers, per batch size).  A batch whose models' batch sizes fall in classes
    with different choices still ends each model where train_epoch alone would: bit for
    bit, while the two choices do give different bits."""
    from fastmlp.backends import tuning
    monkeypatch.delenv("FASTMLP_NO_TUNE", raising=False)
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path))
    tuning.clear_memo()
    # batch 64: the 24 x 24 layer through BLAS; batch 16: no layer
    monkeypatch.setattr(tuning, "measure_blas_layers",
                        lambda backend, sizes, bs, dtype, budget=1.0: 576 if bs > 32 else None)
    monkeypatch.setattr(tuning, "measure_crossover", lambda backend, dtype, budget=1.0: None)
    try:
        rng = np.random.default_rng(2)
        N, K, dt = 400, 3, np.float32
        sizes, acts = np.array([4, 24, 24, 1]), np.array([1, 1, 0])
        n_params = 5 * 24 + 25 * 24 + 25
        x = rng.normal(size=(N, 4)).astype(dt)
        y = (rng.random((N, 1)) > 0.5).astype(dt)
        sw = np.ones((1, N), dt)
        perm = rng.permutation(N)[None].astype(np.int64)
        bs = np.array([64, 16, 64]); n_rows = np.full(K, N)
        nb = -(-N // 16)
        lrs = np.full((K, nb), 1e-2)
        opts = np.full(K, 3); hypers = np.zeros((K, 8)); hypers[:, :4] = 1e-2, 0.9, 0.999, 1e-8
        p0 = (rng.normal(size=(K, n_params)) * 0.3).astype(dt)
        p, st = p0.copy(), np.zeros((K, 3, n_params), dt)
        bl, done = np.full((K, nb), np.nan), np.zeros(K, np.int64)
        get_batched_backend("c").batched_train_epoch(
            p, np.empty_like(p), st, bl, done, x, y, sw, perm, n_rows, bs, lrs,
            np.zeros(K, np.int64), opts, hypers, sizes, acts, 0)
        c = get_backend("c")
        for k in range(K):
            pk, sk = p0[k].copy(), np.zeros((3, n_params), dt)
            blk = np.empty(-(-N // bs[k]))
            assert c.train_epoch(pk, np.empty_like(pk), sk, blk, x, y, sw[0], perm[0],
                                 int(bs[k]), lrs[k, :blk.size], 0, 3, hypers[k], sizes,
                                 acts, 0) == blk.size == done[k]
            assert np.array_equal(p[k], pk), k
            assert np.array_equal(st[k], sk), k
        with tuning.forced_blas_layers(None):   # the crossover (never): other bits at 64
            pk = p0[0].copy()
            c.train_epoch(pk, np.empty_like(pk), np.zeros((3, n_params), dt),
                          np.empty(-(-N // 64)), x, y, sw[0], perm[0], 64, lrs[0, :7], 0, 3,
                          hypers[0], sizes, acts, 0)
        assert not np.array_equal(p[0], pk)
    finally:
        tuning.clear_memo()


@pytest.mark.skipif(not available_batched_backends()["c"][0], reason="batched C unavailable")
def test_c_batch_takes_the_thread_count_of_its_call():
    """The C library keeps a thread count per calling thread; the batched kernel must use
    its own call's (it fixes how each model's batches are cut), not whatever an earlier C
    call left behind - else a model is not trained with the arithmetic of train_epoch."""
    rng = np.random.default_rng(6)
    N, K, dt = 600, 2, np.float64
    sizes, acts = np.array([5, 16, 16, 1]), np.array([1, 1, 0])
    n_params = 6 * 16 + 17 * 16 + 17
    x = rng.normal(size=(N, 5))
    y = (rng.random((N, 1)) > 0.5).astype(dt)
    sw = np.ones((1, N))
    perm = rng.permutation(N)[None].astype(np.int64)
    bs = np.full(K, 64)
    nb = -(-N // 64)
    lrs = np.full((K, nb), 1e-2)
    opts = np.full(K, 3); hypers = np.zeros((K, 8)); hypers[:, :4] = 1e-2, 0.9, 0.999, 1e-8
    p0 = np.tile(rng.normal(size=n_params) * 0.3, (K, 1))   # two copies of one model
    c = get_backend("c")

    def alone(n):
        with threads(n):
            p = p0[0].copy()
            c.train_epoch(p, np.empty_like(p), np.zeros((3, n_params)), np.empty(nb), x, y,
                          sw[0], perm[0], 64, lrs[0], 0, 3, hypers[0], sizes, acts, 0)
        return p
    two, one = alone(2), alone(1)       # the last C call leaves the library at one thread
    assert not np.array_equal(one, two)  # the thread count changes the bits
    with threads(2):
        p = p0.copy()
        get_batched_backend("c").batched_train_epoch(
            p, np.empty_like(p), np.zeros((K, 3, n_params)), np.full((K, nb), np.nan),
            np.zeros(K, np.int64), x, y, sw, perm, np.full(K, N), bs, lrs,
            np.zeros(K, np.int64), opts, hypers, sizes, acts, 0)
    assert np.array_equal(p[0], two) and np.array_equal(p[1], two)


def _runaway_outcome(run):
    """('ok', result, runaway messages) or (exception type, message, runaway messages)."""
    import warnings
    from fastmlp.training.loop import TrainingRunaway
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = ("ok", run())
        except fastmlp.TrainingDiverged as e:
            out = ("TrainingDiverged", str(e))
    return out + ([str(w.message) for w in caught if w.category is TrainingRunaway],)


def test_batched_cv_and_ensemble_judge_a_finite_blow_up_as_fit_does():
    """sgd at lr 50 explodes (loss ~1e9) but stays finite: the serial folds warn
    TrainingRunaway / raise TrainingDiverged / say nothing as on_divergence says; the
    batched folds must do the same (they used to return the blown-up metrics silently),
    and so must fit_ensemble's members."""
    X, y = fastmlp.make_photometric_catalog(600, seed=0)
    mk = lambda: fastmlp.MLP([4, 16, 16, 1], backend="numpy")  # noqa: E731
    kw = dict(k=3, epochs=3, lr=50.0, optimizer="sgd", batch_size=64, standardize=True)
    for od in ("warn", "raise", "ignore"):
        got = [_runaway_outcome(lambda: cross_validate(mk, X, y, on_divergence=od,
                                                       batched=b, **kw))
               for b in (True, False)]
        (kind, res, runaway), serial = got
        assert kind == serial[0] and runaway == serial[2]
        if kind == "ok":
            assert res.folds == serial[1].folds
        assert (kind, len(runaway)) == {"warn": ("ok", 3), "raise": ("TrainingDiverged", 0),
                                        "ignore": ("ok", 0)}[od]
    kind, _, runaway = _runaway_outcome(lambda: fit_ensemble(
        mk, X, y, n_members=2, epochs=3, batch_size=64, optimizer="sgd", lr=50.0,
        standardize=True))
    assert kind == "ok" and len(runaway) == 2
    kind, msg, _ = _runaway_outcome(lambda: fit_ensemble(
        mk, X, y, n_members=2, epochs=3, batch_size=64, optimizer="sgd", lr=50.0,
        standardize=True, on_divergence="raise"))
    assert kind == "TrainingDiverged" and "blew up" in msg
