"""fastmlp.sklearn against scikit-learn's own MLPs on the same data (issue 15).

Where the behaviour is defined identically (the same random_state gives the same initial
weights, the same row order and early-stopping split; the same objective and stopping
rules), the fitted weights must match scikit-learn's: to rounding for sgd and lbfgs, to
Adam's epsilon placement (~1e-6) for adam.  Every defect of the issue has a test here.
"""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional dependency")

import scipy.sparse as sp  # noqa: E402
from sklearn.datasets import make_blobs, make_multilabel_classification  # noqa: E402
from sklearn.datasets import make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkC  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkR  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastmlp import backends  # noqa: E402
from fastmlp.backends import reference as ref  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# how closely the weights follow scikit-learn's, per solver (see the module docstring)
ATOL = {"sgd": 1e-10, "lbfgs": 1e-7, "adam": 1e-4}


# tiny fits: one kernel thread, and scikit-learn's ConvergenceWarning is expected
pytestmark = [pytest.mark.usefixtures("one_kernel_thread"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _clf_data(centers=3, n=160):
    X, y = make_blobs(n, centers=centers, n_features=4, random_state=0, cluster_std=2.0)
    return StandardScaler().fit_transform(X), y


def _reg_data(n_targets=1, n=150):
    X, y = make_regression(n, 5, n_targets=n_targets, noise=1.0, random_state=0)
    return StandardScaler().fit_transform(X), y / y.std(axis=0)


def _assert_same_fit(ours, theirs, solver):
    atol = ATOL[solver]
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=atol * 10)
    if solver != "lbfgs":
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=atol * 10)


# ---------------------------------------------------------------------------------------
# the same fit as scikit-learn's
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("centers", [2, 3])
def test_classifier_follows_sklearn(solver, centers):
    X, y = _clf_data(centers)
    kw = dict(hidden_layer_sizes=(8,), solver=solver, alpha=0.01, batch_size=32,
              learning_rate_init=0.05, max_iter=15, random_state=1)
    _assert_same_fit(MLPClassifier(**kw).fit(X, y), SkC(**kw).fit(X, y), solver)


@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_regressor_follows_sklearn(solver):
    """Half the squared error, alpha scaled as scikit-learn's: the same trajectory."""
    X, y = _reg_data()
    kw = dict(hidden_layer_sizes=(8,), solver=solver, alpha=0.1, batch_size=40,
              learning_rate_init=0.01, max_iter=15, random_state=2)
    _assert_same_fit(MLPRegressor(**kw).fit(X, y), SkR(**kw).fit(X, y), solver)


def test_multi_output_regressor_follows_sklearns_steps():
    """Several targets: the same steps as scikit-learn (its gradient is that of the
    summed half squared error; loss_ reports that objective, a documented difference)."""
    X, y = _reg_data(n_targets=3)
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", alpha=0.1, batch_size=40,
              learning_rate_init=0.01, max_iter=10, random_state=2)
    ours, theirs = MLPRegressor(**kw).fit(X, y), SkR(**kw).fit(X, y)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_default_initialisation_is_sklearns():
    """Glorot-uniform weights AND biases with factor 6 (2 for logistic), drawn as
    scikit-learn draws them (compared after one sgd epoch at a negligible rate, since a
    learning rate must be > 0)."""
    X, y = _clf_data(2)
    for act in ("relu", "logistic"):
        kw = dict(hidden_layer_sizes=(5, 3), activation=act, solver="sgd",
                  learning_rate_init=1e-12, max_iter=1, random_state=7)
        ours, theirs = MLPClassifier(**kw).fit(X, y), SkC(**kw).fit(X, y)
        for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        bound = np.sqrt((2.0 if act == "logistic" else 6.0) / (4 + 5))
        assert np.abs(ours.coefs_[0]).max() <= bound and np.abs(ours.intercepts_[0]).max() > 0


# ---------------------------------------------------------------------------------------
# defect 1: alpha per sum of sample weights, on the weights only
def test_weighted_samples_equal_repeated_samples_with_alpha():
    """A weight of k is the row repeated k times, the L2 term included (full batches)."""
    X, y = _clf_data(3, n=40)
    sw = np.random.default_rng(0).integers(0, 4, size=len(X))
    kw = dict(hidden_layer_sizes=(6,), alpha=0.5, max_iter=30, random_state=0,
              shuffle=False)
    w = MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    r = MLPClassifier(**kw).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    np.testing.assert_allclose(w.predict_proba(X), r.predict_proba(X), atol=1e-10)
    # and scikit-learn's weighted fit (its weights, our kernels)
    sk = SkC(**kw).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(w.predict_proba(X), sk.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("backend", [b for b, (ok, _) in backends.available_backends().items()
                                     if ok])
def test_l2_term_scales_with_weight_sum_and_spares_biases(backend):
    """The kernels' l2: loss += l2 / (2 sum sw) ||W||^2 and grad_W += l2 / sum sw W; the
    biases' gradient does not change."""
    rng = np.random.default_rng(0)
    sizes, acts = np.array([3, 5, 2]), np.array([1, 0])
    _, n = ref.layer_offsets(sizes)
    p = rng.standard_normal(n)
    x, y, sw = rng.standard_normal((7, 3)), rng.standard_normal((7, 2)), rng.uniform(1, 3, 7)
    k = backends.get_backend(backend)
    g0, g1 = np.empty(n), np.empty(n)
    v0 = k.mlp_loss_grad(g0, p, x, y, sw, sizes, acts, 2)
    v1 = k.mlp_loss_grad(g1, p, x, y, sw, sizes, acts, 2, 0.8)
    c = 0.8 / sw.sum()
    expect = np.zeros(n)
    for (wo, bo), n_in, n_out in zip(ref.layer_offsets(sizes)[0], sizes[:-1], sizes[1:]):
        expect[wo:bo] = c * p[wo:bo]  # weights; the biases (bo:bo + n_out) stay 0
    np.testing.assert_allclose(g1 - g0, expect, rtol=1e-10, atol=1e-14)
    assert v1 - v0 == pytest.approx(0.5 * c * np.dot(expect, expect) / c ** 2, rel=1e-10)
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0"):
        k.mlp_loss_grad(g1, p, x, y, sw, sizes, acts, 2, np.nan)


def test_alpha_shrinks_weights_not_biases():
    X, y = _reg_data()
    kw = dict(hidden_layer_sizes=(), solver="lbfgs", max_iter=200)
    big = MLPRegressor(alpha=1e4, **kw).fit(X, y + 5.0)
    assert np.abs(big.coefs_[0]).max() < 0.05
    # an unpenalised bias still fits the mean of the targets
    assert big.intercepts_[0][0] == pytest.approx(np.mean(y + 5.0), abs=0.05)


# ---------------------------------------------------------------------------------------
# defects 2-4: early stopping and n_iter_no_change
def test_diverging_run_with_early_stopping_records_nan_and_stops():
    X, y = _reg_data(n=200)
    kw = dict(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=10.0,
              early_stopping=True, max_iter=50, random_state=0)
    from fastmlp.training.loop import TrainingRunaway
    with pytest.warns(TrainingRunaway, match="training diverged in epoch .* the parameters of "
                      "epoch 1 .* were restored"):      # scikit-learn says nothing
        ours = MLPRegressor(**kw).fit(X, y * 1e3)
    assert np.isnan(ours.validation_scores_[-1]) and np.isnan(ours.loss_curve_[-1])
    assert ours.n_iter_ == len(ours.validation_scores_) < 50
    assert np.isfinite(ours.model_.params).all()
    # scikit-learn records NaN too (and does not raise)
    theirs = SkR(**kw).fit(X, y * 1e3)
    assert np.isnan(theirs.validation_scores_).any()
    # without early stopping: scikit-learn's error
    kw["early_stopping"] = False
    with pytest.raises(ValueError, match="non-finite parameter weights"):
        MLPRegressor(**kw).fit(X, y * 1e3)


@pytest.mark.parametrize("Est, SkEst, data", [(MLPClassifier, SkC, lambda: _clf_data(2)),
                                               (MLPRegressor, SkR, _reg_data)])
def test_early_stopping_follows_sklearn(Est, SkEst, data):
    """The training rows stay in train_test_split's permuted order, as scikit-learn keeps
    them (sorting them trained on other batches: another n_iter_ and other weights)."""
    X, y = data()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", early_stopping=True, n_iter_no_change=3,
              learning_rate_init=0.01, batch_size=32, max_iter=200, random_state=0)
    ours, theirs = Est(**kw).fit(X, y), SkEst(**kw).fit(X, y)
    assert theirs.n_iter_ < 200
    _assert_same_fit(ours, theirs, "sgd")
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_,
                               rtol=0, atol=1e-10)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_tiny_validation_set_raises_like_sklearn(Est):
    """Two samples: no training epochs on an empty validation set.  (scikit-learn's
    regressor says the same; its binary classifier fails earlier, on the stratification.)"""
    X, y = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 1])
    with pytest.raises(ValueError, match="The validation set is too small"):
        Est(early_stopping=True).fit(X, y)
    with pytest.raises(ValueError, match="The validation set is too small"):
        SkR(early_stopping=True).fit(X, y)


def test_unstratifiable_split_raises_instead_of_falling_back():
    X, y = _clf_data(3, n=60)
    y = y.copy()
    y[0] = 5  # a class with one sample cannot be split by class
    with pytest.raises(ValueError, match="cannot be stratified"):
        MLPClassifier(early_stopping=True, validation_fraction=0.2).fit(X, y)


def test_n_iter_no_change_inf_runs_max_iter():
    X, y = _clf_data(2)
    kw = dict(hidden_layer_sizes=(4,), tol=1e3, max_iter=20, random_state=0)
    assert MLPClassifier(n_iter_no_change=np.inf, **kw).fit(X, y).n_iter_ == 20
    assert SkC(n_iter_no_change=np.inf, **kw).fit(X, y).n_iter_ == 20
    # with the default patience the huge tol stops it early, exactly as scikit-learn
    assert MLPClassifier(**kw).fit(X, y).n_iter_ == SkC(**kw).fit(X, y).n_iter_ == 12


# ---------------------------------------------------------------------------------------
# defects 5-8
def test_n_iter_is_per_call_like_sklearn():
    X, y = _clf_data(2)
    for Est in (MLPClassifier, SkC):
        est = Est((4,), warm_start=True, max_iter=10, tol=0, random_state=0).fit(X, y)
        assert est.n_iter_ == 10
        est.set_params(max_iter=20).fit(X, y)
        assert est.n_iter_ == 20, Est
        est.partial_fit(X, y)
        assert est.n_iter_ == 1, Est


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_warm_start_and_partial_fit_follow_sklearn(solver):
    """A warm-started fit keeps the weights and builds a new optimizer from the current
    parameters (a new learning rate applies, momentum / Adam's moments start again);
    partial_fit continues the optimizer, the rate it was built with included.  (tanh: a
    trained relu net has units barely alive in a batch, whose gradients ~1e-12 meet a new
    Adam's first step, where the epsilon placement differs.)"""
    X, y = _clf_data(3)
    kw = dict(hidden_layer_sizes=(8,), activation="tanh", solver=solver, warm_start=True,
              batch_size=32,
              learning_rate_init=0.05, max_iter=5, random_state=1)
    ours, theirs = MLPClassifier(**kw), SkC(**kw)
    for est in (ours, theirs):
        est.fit(X, y)
        est.set_params(learning_rate_init=0.01).fit(X, y)
    _assert_same_fit(ours, theirs, solver)
    for est in (ours, theirs):
        est.set_params(learning_rate_init=0.5).partial_fit(X, y)
    _assert_same_fit(ours, theirs, solver)


def test_partial_fit_refuses_early_stopping_like_sklearn():
    X, y = _clf_data(2)
    for est in (MLPClassifier(early_stopping=True), SkC(early_stopping=True)):
        with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
            est.partial_fit(X, y, classes=[0, 1])


def test_regressor_predict_keeps_float32_like_sklearn():
    X, y = _reg_data()
    X32 = X.astype(np.float32)
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    assert MLPRegressor(**kw).fit(X32, y).predict(X32).dtype == \
        SkR(**kw).fit(X32, y).predict(X32).dtype == np.float32
    assert MLPRegressor(**kw).fit(X, y).predict(X).dtype == np.float64


def test_verbose_prints_sklearns_lines(capsys):
    X, y = _clf_data(2)
    kw = dict(hidden_layer_sizes=(4,), solver="sgd", max_iter=3, random_state=0, verbose=True)
    MLPClassifier(**kw).fit(X, y)
    ours = capsys.readouterr().out
    SkC(**kw).fit(X, y)
    theirs = capsys.readouterr().out
    assert ours.splitlines()[0].startswith("Iteration 1, loss = ")
    assert ours == theirs


# ---------------------------------------------------------------------------------------
# lbfgs
def test_lbfgs_honours_max_fun_and_warns_and_has_no_partial_fit():
    X, y = _clf_data(3)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        warnings.simplefilter("always", ConvergenceWarning)
        clf = MLPClassifier((8,), solver="lbfgs", max_fun=5, random_state=0).fit(X, y)
    sk = SkC((8,), solver="lbfgs", max_fun=5, random_state=0).fit(X, y)
    assert clf.n_iter_ == sk.n_iter_
    assert not hasattr(clf, "partial_fit") and not hasattr(clf, "loss_curve_")
    good = MLPClassifier((8,), solver="lbfgs", random_state=0).fit(X, y)
    assert good.n_iter_ > clf.n_iter_ and good.loss_ < clf.loss_
    assert good.score(X, y) > 0.9


# ---------------------------------------------------------------------------------------
# learning_rate, shuffle, coefs_
@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_learning_rate_schedules_follow_sklearn(schedule):
    """momentum=0: the update is lr x gradient in both, whatever the rate does."""
    X, y = _clf_data(3)
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, learning_rate=schedule,
              learning_rate_init=0.5, power_t=0.3, batch_size=50, tol=0.05,
              n_iter_no_change=2, max_iter=40, random_state=0)
    ours, theirs = MLPClassifier(**kw).fit(X, y), SkC(**kw).fit(X, y)
    _assert_same_fit(ours, theirs, "sgd")
    if schedule == "adaptive":  # the rate was cut at least once before stopping
        assert ours.n_iter_ > 4


@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("optimizer", [None, "momentum"])
def test_regressor_schedule_keeps_sgds_scale(n_targets, optimizer):
    """A fastmlp schedule gives the SGD family the rate that learning_rate gives: the
    regressor's kernel gradient is scikit-learn's / (n_targets / 2), and a constant
    schedule is scikit-learn's constant rate, step for step."""
    X, y = _reg_data(n_targets=n_targets)
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=40, optimizer=optimizer,
              learning_rate_init=0.01, max_iter=10, random_state=2)
    plain = MLPRegressor(**kw).fit(X, y)
    scheduled = MLPRegressor(schedule="constant", **kw).fit(X, y)
    np.testing.assert_allclose(scheduled.predict(X), plain.predict(X), rtol=0, atol=1e-12)
    if optimizer is None:
        kw.pop("optimizer")
        theirs = SkR(**kw).fit(X, y)
        for a, b in zip(scheduled.coefs_, theirs.coefs_):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_shuffle_false_follows_sklearn():
    X, y = _reg_data()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=16, shuffle=False,
              learning_rate_init=0.01, max_iter=5, random_state=0)
    _assert_same_fit(MLPRegressor(**kw).fit(X, y), SkR(**kw).fit(X, y), "sgd")
    shuffled = MLPRegressor(**{**kw, "shuffle": True}).fit(X, y)
    assert not np.allclose(shuffled.coefs_[0], MLPRegressor(**kw).fit(X, y).coefs_[0])


def test_coefs_and_intercepts_are_assignable():
    X, y = _clf_data(3)
    ours = MLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    theirs = SkC((8,), max_iter=50, random_state=1).fit(X, y)
    ours.coefs_ = [c.copy() for c in theirs.coefs_]
    ours.intercepts_ = [b.copy() for b in theirs.intercepts_]
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)
    ours.coefs_[0][0, 0] = 3.0  # the list holds views: editing in place works too
    assert ours.model_.weights[0][0, 0] == 3.0
    with pytest.raises(ValueError, match=r"coefs_\[1\] must have shape \(8, 3\)"):
        ours.coefs_ = [theirs.coefs_[0], np.zeros((8, 2))]
    with pytest.raises(ValueError, match="list of 2 arrays"):
        ours.intercepts_ = [theirs.intercepts_[0]]


# ---------------------------------------------------------------------------------------
# multilabel and sparse input
def test_multilabel_follows_sklearn():
    X, Y = make_multilabel_classification(120, n_features=6, n_classes=4, random_state=0)
    X = StandardScaler().fit_transform(X)
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=30, learning_rate_init=0.1,
              max_iter=10, random_state=0)
    ours, theirs = MLPClassifier(**kw).fit(X, Y), SkC(**kw).fit(X, Y)
    _assert_same_fit(ours, theirs, "sgd")
    assert ours.out_activation_ == "logistic" and ours.n_outputs_ == 4
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("Est, SkEst, multilabel", [(MLPClassifier, SkC, False),
                                                      (MLPRegressor, SkR, False),
                                                      (MLPClassifier, SkC, True)])
def test_sparse_input_equals_dense_and_sklearn(Est, SkEst, multilabel):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 30)) * (rng.random((100, 30)) < 0.1)
    if multilabel:
        y = (X[:, :3] > 0).astype(int)
    elif Est is MLPClassifier:
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
    else:
        y = X[:, 0] - 2 * X[:, 1]
    kw = dict(hidden_layer_sizes=(8,), solver="adam", batch_size=25, alpha=0.01,
              max_iter=5, random_state=0)
    dense = Est(**kw).fit(X, y)
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        sparse = Est(**kw).fit(fmt(X), y)
        for a, b in zip(sparse.coefs_, dense.coefs_):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
        np.testing.assert_allclose(sparse.predict(fmt(X)), dense.predict(X), atol=1e-10)
    # scikit-learn's own sparse fit (sgd: Adam's epsilon placement matters for the many
    # exactly-zero gradients of sparse columns)
    kw["solver"] = "sgd"
    _assert_same_fit(Est(**kw).fit(sp.csr_matrix(X), y), SkEst(**kw).fit(sp.csr_matrix(X), y),
                     "sgd")


# ---------------------------------------------------------------------------------------
# defect 9: default settings converge as scikit-learn's (its initialisation by default)
def test_default_estimators_score_as_sklearns_per_seed():
    from sklearn.datasets import load_iris, make_friedman1
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    X, y = load_iris(return_X_y=True)
    for seed in range(5):
        Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=seed, stratify=y)
        ours, theirs = (make_pipeline(StandardScaler(), Est(random_state=seed))
                        .fit(Xtr, ytr).score(Xte, yte) for Est in (MLPClassifier, SkC))
        assert ours == pytest.approx(theirs, abs=0.03), seed
    X, y = make_friedman1(300, random_state=0)
    for seed in range(3):
        Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=seed)
        ours, theirs = (make_pipeline(StandardScaler(), Est(random_state=seed))
                        .fit(Xtr, ytr).score(Xte, yte) for Est in (MLPRegressor, SkR))
        assert ours == pytest.approx(theirs, abs=0.01), seed


def test_regressor_takes_sklearns_loss_keyword():
    X, y = _reg_data()
    reg = MLPRegressor((4,), loss="squared_error", max_iter=2, random_state=0).fit(X, y)
    assert reg.get_params()["loss"] == "squared_error"
    with pytest.raises(ValueError, match="loss must be 'squared_error'"):
        MLPRegressor(loss="poisson").fit(X, y)


def test_sparse_lbfgs_follows_sklearn():
    X = sp.random(80, 40, density=0.1, random_state=1, format="csr")
    y = (np.asarray(X[:, :5].sum(axis=1)).ravel() > 0.1).astype(int)
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", alpha=0.1, max_iter=30, random_state=0)
    _assert_same_fit(MLPClassifier(**kw).fit(X, y), SkC(**kw).fit(X, y), "lbfgs")
