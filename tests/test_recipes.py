"""lr_sweep and cross_validate."""

import re

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, cross_validate, lr_sweep
from fastmlp.training.recipes import divergence_index, kfold_indices


def test_lr_sweep_picks_the_known_best_lr_on_a_convex_problem():
    """Linear least squares with full-batch gradient descent: the loss after t steps is known
    in closed form, (I - lr H)^t e0 with H the Hessian, so the best candidate is known."""
    rng = np.random.default_rng(0)
    n = 200
    X = rng.normal(size=(n, 2)) * np.array([1.0, 3.0])  # ill-conditioned
    t = X @ np.array([0.7, -0.4]) + 0.2 + 0.05 * rng.normal(size=n)
    make = lambda: MLP([2, 1], activation="identity", dtype="float64", seed=1,  # noqa: E731
                       backend="numpy")
    lrs = np.logspace(-3, 0, 13)
    iters = 60
    res = lr_sweep(make, X, t, lrs=lrs, iterations=iters, optimizer="sgd", batch_size=n,
                   loss="mse")
    # closed form
    A = np.hstack([X, np.ones((n, 1))])
    H = 2 / n * A.T @ A
    theta_star = np.linalg.lstsq(A, t, rcond=None)[0]
    l_star = np.mean((A @ theta_star - t) ** 2)
    m0 = make()
    e0 = np.r_[m0.weights[0][:, 0], m0.biases[0]] - theta_star
    expect_final, expect_div = [], []
    for lr in lrs:
        e, curve = e0.copy(), []
        for _ in range(iters):
            curve.append(l_star + e @ H @ e / 2)
            e = e - lr * H @ e
        curve = np.array(curve)
        expect_div.append(not np.isfinite(curve).all() or curve.max() > 4 * curve[0])
        expect_final.append(np.mean(curve[-6:]))
    expect_div = np.array(expect_div)
    best = np.argmin(np.where(expect_div, np.inf, expect_final))
    assert np.array_equal(res.diverged, expect_div)
    assert expect_div.any() and not expect_div.all()  # the test spans both regimes
    assert res.best_lr == lrs[best]
    ok = ~expect_div
    np.testing.assert_allclose(res.final_loss[ok], np.array(expect_final)[ok], rtol=1e-9)
    assert len(res.losses) == 13 and all(len(c) == iters for c in res.losses)
    assert "<- best" in res.table()


def test_lr_sweep_candidates_share_initial_weights_and_batches():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 3))
    y = (X[:, 0] > 0).astype(int)
    calls = []

    def make():
        calls.append(1)
        return MLP([3, 8, 1], seed=len(calls), backend="numpy")  # a new seed per call

    res = lr_sweep(make, X, y, lrs=[1e-3, 1e-3], iterations=20)
    assert len(calls) == 1  # one model, copied for every candidate
    np.testing.assert_array_equal(res.losses[0], res.losses[1])


def test_lr_sweep_errors():
    X, y = np.ones((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match="lrs must be a non-empty sequence"):
        lr_sweep(lambda: MLP([2, 1]), X, y, lrs=[0.1, -1])
    with pytest.raises(TypeError, match="make_model must be a callable"):
        lr_sweep(MLP([2, 1]), X, y)
    with pytest.raises(ValueError, match="iterations must be a positive integer"):
        lr_sweep(lambda: MLP([2, 1]), X, y, iterations=0)


def test_lr_sweep_says_when_every_lr_diverged_and_lists_them():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(fastmlp.TrainingDiverged,
                       match=r"^lr_sweep: every learning rate diverged \(1e\+03, 1e\+05\): "
                             r"within 20 iterations .* Try smaller lrs \(the smallest here "
                             r"was 1e\+03\)\.$"):
        lr_sweep(lambda: MLP([3, 8, 1], seed=0, backend="numpy"), X, y, lrs=[1e3, 1e5],
                 iterations=20, optimizer="sgd", batch_size=16)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("batched", [True, False])
def test_lr_sweep_never_picks_a_run_whose_optimizer_state_overflowed(batched):
    # inputs of 1e30 in float32: every candidate's Adam state overflows on step 1 and its
    # loss stays a flat, finite 1e29; the sweep used to name one of them "best"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    X[:, 1] *= 1e30
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(UserWarning, match=r"column 1 reaches .*standardization="):
        with pytest.raises(fastmlp.TrainingDiverged,
                           match=r"every learning rate diverged \(0\.001, 0\.01\).* not "
                                 r"standardised and column 1 reaches \|x\| = .*e\+30: give "
                                 r"make_model's MLP standardization="):
            lr_sweep(lambda: MLP([3, 8, 1], seed=0, backend="numpy"), X, y,
                     lrs=[1e-3, 1e-2], iterations=20, batch_size=16, batched=batched)


@pytest.mark.parametrize("factor", [0, 1, 0.5, float("nan"), True, "4"])
def test_lr_sweep_refuses_a_divergence_factor_that_calls_every_run_diverged(factor):
    X, y = np.ones((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match=r"divergence_factor must be a number > 1 .* got "):
        lr_sweep(lambda: MLP([2, 1]), X, y, divergence_factor=factor)
    with pytest.raises(ValueError, match=r"divergence_factor must be a number > 1"):
        divergence_index(np.ones(3), factor)


def test_kfold_sizes_and_stratification():
    y = np.array([0] * 93 + [1] * 7)
    folds = kfold_indices(y, 5, stratified=True, seed=0)
    sizes = [len(f) for f in folds]
    assert sum(sizes) == 100 and max(sizes) - min(sizes) <= 1
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(100))
    pos = [int((y[f] == 1).sum()) for f in folds]
    assert max(pos) - min(pos) <= 1 and sum(pos) == 7
    plain = kfold_indices(y, 3, stratified=False)
    assert sorted(len(f) for f in plain) == [33, 33, 34]
    with pytest.raises(ValueError, match="k must be between 2"):
        kfold_indices(y, 1)


def test_cross_validate_reports_every_fold():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    res = cross_validate(lambda: MLP([3, 16, 1], backend="numpy"), X, y, k=4, positive=1,
                         epochs=15, lr=0.01)
    assert len(res.folds) == 4 and sum(res.fold_sizes) == 400
    for key in ("accuracy", "log_loss", "roc_auc", "completeness", "contamination"):
        vals = [f[key] for f in res.folds]
        assert res.mean[key] == pytest.approx(np.mean(vals))
        assert res.std[key] == pytest.approx(np.std(vals))
    assert res.mean["accuracy"] > 0.9 and res.mean["roc_auc"] > 0.95
    assert "mean" in res.table()


def test_cross_validate_refuses_unscorable_folds_before_training():
    """A single class, a positive class that is not in y, or a class with fewer samples than
    folds are refused before any fold trains (issue 12), with the argument named."""
    X = np.random.default_rng(0).normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(int)
    made = []

    def make():
        made.append(1)
        return MLP([2, 1])
    cases = [(np.zeros(60, int), {}, "single class"),
             (y, {"positive": 5}, r"positive=5 is not a class in y"),
             (np.r_[np.zeros(57, int), 1, 1, 1], {"k": 5},
              r"class 1 has 3 samples, fewer than k=5")]
    for labels, kw, match in cases:
        made.clear()
        with pytest.raises(ValueError, match=match):
            cross_validate(make, X, labels, epochs=50, **kw)
        assert len(made) <= 1     # only the model that tells the loss: no fold was built


def test_compare_optimizers_keeps_an_optimizer_given_twice_and_pairs_by_label(capsys):
    """'adam:0.001,adam:0.01': two entries named by their lr (a plain label stays plain),
    each curve the one that optimizer gives alone; the CLI prints each on its own row."""
    from fastmlp import cli
    from fastmlp.training.recipes import compare_optimizers
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    make = lambda: MLP([3, 4, 1], backend="numpy", seed=2)  # noqa: E731
    for batched in (True, False):
        got = compare_optimizers(make, X, y, optimizers="adam:0.001,adam:0.01,sgd:0.1",
                                 iterations=8, batch_size=32, batched=batched)
        assert list(got) == ["adam(lr=0.001)", "adam(lr=0.01)", "sgd"]
        for key, spec in [("adam(lr=0.001)", "adam:0.001"), ("adam(lr=0.01)", "adam:0.01"),
                          ("sgd", "sgd:0.1")]:
            alone = compare_optimizers(make, X, y, optimizers=spec, iterations=8,
                                       batch_size=32, batched=batched)
            np.testing.assert_array_equal(got[key], next(iter(alone.values())))
    assert list(compare_optimizers(make, X, y, optimizers="adam,adam", iterations=2)) == \
        ["adam(lr=0.001) #1", "adam(lr=0.001) #2"]
    code = cli.main(["compare-optimizers", "--n-samples", "300", "--hidden", "4",
                     "--iterations", "6", "--quiet", "--threads", "1", "--optimizers",
                     "adam:0.001,adam:0.01,sgd:0.1"])
    out = capsys.readouterr().out
    assert code == 0
    rows = dict(re.findall(r"^\s*(\S+)\s+(\w+\(.*?\))\s+\S+$", out, re.M))
    assert rows == {"adam(lr=0.001)": "adam(lr=0.001)", "adam(lr=0.01)": "adam(lr=0.01)",
                    "sgd": "sgd(lr=0.1)"}


def test_cross_validate_takes_a_table_through_the_models_features_spec():
    """A table of raw magnitudes and a features spec: cross_validate derives the colours as
    fit does (it used to refuse: 'X must hold numbers, got dtype object'), same folds as
    the colour array, batched and serial."""
    rng = np.random.default_rng(4)
    mags = {b: 18 + rng.normal(size=300) for b in "ugriz"}
    table = {"id": np.array([f"obj{i}" for i in range(300)], dtype=object), **mags}
    colors = np.stack([mags[a] - mags[b] for a, b in zip("ugri", "griz")], axis=1)
    y = (colors[:, 0] + colors[:, 1] > 0).astype(int)
    make = lambda: MLP([4, 8, 1], features="colors:ugriz", backend="numpy")  # noqa: E731
    want = cross_validate(make, colors, y, k=3, epochs=2, standardize=True)
    for batched in (True, False):
        got = cross_validate(make, table, y, k=3, epochs=2, standardize=True,
                             batched=batched)
        assert got.folds == want.folds
    with pytest.raises(ValueError, match="no features spec"):
        cross_validate(lambda: MLP([4, 8, 1]), table, y, k=3, epochs=1)


# -- found by the audit of the batch API (each failed before its fix) ------------------------

def _photometric(n=1200, seed=0):
    from fastmlp.data import make_photometric_catalog
    cat = make_photometric_catalog(n, seed=seed, dtype="float64")
    return cat.X, cat.y


def test_a_sweep_learns_the_target_fit_learns_log1p():
    # lr_sweep fed the raw redshift to a log1p model: its lr was chosen for another problem
    from fastmlp.training.recipes import SweepPlan
    X, _ = _photometric()
    z = np.abs(X[:, 0]) + 0.1
    mk = lambda: MLP([4, 8, 1], loss="mse", target_transform="log1p", dtype="float64")  # noqa
    plan = SweepPlan.build(mk, X, z, [1e-3], 5, 32, None, 0)
    np.testing.assert_allclose(plan.Y[:, 0], np.log1p(z))


def test_fit_batch_validation_loss_with_subsets_uses_each_models_standardisation():
    import fastmlp
    from fastmlp import metrics
    X, y = _photometric()
    X = X * [1, 10, 100, 1000] + 5
    b = fastmlp.ModelBatch(MLP([4, 8, 1], dtype="float64"), 2, seeds=[0, 1])
    subsets = [np.arange(0, 800), np.arange(400, 1200)]
    h = fastmlp.fit_batch(b, X, y, epochs=2, subsets=subsets, standardize=True,
                          validation=(X[:300], y[:300]))
    for k in range(2):   # it reported ~7x the models' real loss (the base had no scaling)
        want = metrics.log_loss(y[:300], b.model(k).predict_proba(X[:300]))
        assert h.val_loss[-1][k] == pytest.approx(want, rel=1e-6)


def test_fit_batch_standardize_leaves_the_callers_model_alone():
    import fastmlp
    X, y = _photometric()
    base = MLP([4, 8, 1], dtype="float64")
    b1 = fastmlp.ModelBatch(base, 1, seeds=[0])
    fastmlp.fit_batch(b1, X * 10 + 5, y, epochs=1, standardize=True)
    assert base.standardization is None          # it was written into the caller's model
    assert b1.model(0).standardization is not None
    b2 = fastmlp.ModelBatch(base, 1, seeds=[0])  # a second batch on other rows: own statistics
    fastmlp.fit_batch(b2, X, y, epochs=1, standardize=True)
    np.testing.assert_allclose(b2.model(0).standardization[0], X.mean(axis=0), rtol=1e-12)


def test_boolean_masks_as_subsets_are_their_rows():
    import fastmlp
    X, y = _photometric(600)
    mask = np.zeros(600, bool)
    mask[::3] = True
    runs = []
    for sub in (mask, np.flatnonzero(mask)):    # a mask read as int64 trained on rows 0, 1
        b = fastmlp.ModelBatch(MLP([4, 8, 1], dtype="float64"), 1, seeds=[0])
        fastmlp.fit_batch(b, X, y, epochs=1, subsets=[sub])
        runs.append(b.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    with pytest.raises(ValueError, match=r"subsets\[0\] is a boolean mask of shape \(5,\)"):
        fastmlp.fit_batch(fastmlp.ModelBatch(MLP([4, 8, 1]), 1), X, y, subsets=[mask[:5]])


def test_cross_validate_weighs_each_folds_rows_and_tolerates_a_one_class_fold():
    import fastmlp
    X, y = _photometric(600)
    w = np.random.default_rng(0).uniform(0.5, 2.0, 600)
    mk = lambda: MLP([4, 8, 1], seed=0, dtype="float64")  # noqa: E731
    res = cross_validate(mk, X, y, k=3, epochs=2, sample_weight=w)   # it always failed
    fold = kfold_indices(y, 3, True, 0)[0]
    train = np.setdiff1d(np.arange(600), fold)
    m = mk()
    fastmlp.fit(m, X[train], y[train], epochs=2, sample_weight=w[train], seed=0,
                validation=None, progress=False)
    assert res.folds[0]["accuracy"] == fastmlp.metrics.accuracy(y[fold], m.predict(X[fold]))
    # unstratified folds of a rare class: one without it has no AUC (NaN), not a crash
    yr = np.zeros(30, int)
    yr[[0, 1]] = 1
    res = cross_validate(lambda: MLP([4, 4, 1], seed=0), X[:30], yr, k=3, epochs=1,
                         stratified=False)
    assert np.isnan([f["roc_auc"] for f in res.folds]).any()


def test_sweep_memory_limit_reaches_each_pass(monkeypatch):
    from fastmlp.training import batch
    X, y = _photometric(400)
    monkeypatch.setattr(batch, "DEFAULT_MEMORY_LIMIT", 2 ** 20)
    # a limit above the default: refused at the default before (each pass's ModelBatch)
    lr_sweep(lambda: MLP([4, 64, 64, 1], seed=0), X, y, lrs=[1e-3, 1e-2], iterations=3,
             memory_limit=2 ** 30)


def test_an_ensemble_labels_its_mean_with_the_members_stored_cut():
    import fastmlp
    X, y = _photometric(800)
    mk = lambda: MLP([4, 8, 1], seed=0, threshold=0.99, positive=1)  # noqa: E731
    ens = fastmlp.fit_ensemble(mk, X, y, n_members=3, epochs=2, standardize=True)
    mean = ens.predict_proba(X)[0]
    # argmax selected the rows above 0.5; the members' cut is 0.99
    np.testing.assert_array_equal(ens.predict(X), np.where(mean[:, 1] >= 0.99, 1, 0))
    assert (mean[:, 1] >= 0.5).sum() > (mean[:, 1] >= 0.99).sum()


def test_fit_batch_history_per_model_and_a_fraction_for_validation():
    import fastmlp
    X, y = _photometric(600)
    b = fastmlp.ModelBatch(MLP([4, 8, 1], dtype="float64"), 2, seeds=[0, 1])
    h = fastmlp.fit_batch(b, X, y, epochs=2, validation=(X[:100], y[:100]))
    assert h.model_history(1).val_loss == [float(v[1]) for v in h.val_loss]   # was dropped
    with pytest.raises(ValueError, match="validation must be None or an \\(X_val, y_val\\)"):
        fastmlp.fit_batch(b, X, y, epochs=1, validation=0.1)     # a TypeError from unpacking


def test_fit_ensemble_checks_on_divergence_before_training(monkeypatch):
    import fastmlp
    from fastmlp.training import batch
    X, y = _photometric(300)
    monkeypatch.setattr(batch, "fit_batch", lambda *a, **k: pytest.fail("trained first"))
    with pytest.raises(ValueError, match="on_divergence must be 'warn', 'raise' or 'ignore'"):
        fastmlp.fit_ensemble(lambda: MLP([4, 4, 1]), X, y, n_members=2, on_divergence="bogus")
