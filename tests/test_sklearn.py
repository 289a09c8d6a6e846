"""fastmlp.sklearn: scikit-learn's estimator checks, pickling, Pipeline, GridSearchCV,
cross_val_score, partial_fit, early stopping and the parameter mapping."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is an optional dependency")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_blobs, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import backends, optim  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_kernel_thread")   # tiny fits


@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ---------------------------------------------------------------------------------------
# data
def _blobs(n=300, centers=3, seed=0):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=4, random_state=seed,
                      cluster_std=2.0)
    return X * 10 + 50, y  # deliberately unscaled: the Pipeline test needs the scaler


@pytest.fixture(autouse=True)
def _no_convergence_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# ---------------------------------------------------------------------------------------
# API behaviour
def test_binary_uses_one_sigmoid_output_and_string_labels():
    X, y = _blobs(centers=2)
    labels = np.array(["QSO", "STAR"])[y]
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,),
                                                        max_iter=200, random_state=0))
    clf.fit(X, labels)
    est = clf[-1]
    assert est.classes_.tolist() == ["QSO", "STAR"]
    assert est.model_.layer_sizes == (4, 16, 1) and est.model_.loss == "bce"
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 1
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # the estimator's probabilities are the fastmlp model's
    Xs = clf[0].transform(X)
    np.testing.assert_allclose(proba, est.model_.predict_proba(Xs), atol=1e-6)
    assert set(clf.predict(X)) <= {"QSO", "STAR"}
    assert clf.score(X, labels) > 0.95


@pytest.mark.parametrize("centers", [2, 3])
def test_default_estimator_as_accurate_as_sklearns(centers):
    from sklearn.neural_network import MLPClassifier as SkMLP
    X, y = _blobs(centers=centers)
    ours = make_pipeline(StandardScaler(), MLPClassifier(random_state=0)).fit(X, y)
    theirs = make_pipeline(StandardScaler(), SkMLP(random_state=0)).fit(X, y)
    assert ours.score(X, y) >= theirs.score(X, y) - 0.03


def test_multiclass_softmax_and_attributes():
    X, y = _blobs(centers=3)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier(hidden_layer_sizes=(32, 16), activation="logistic", max_iter=30,
                        random_state=1).fit(X, y)
    assert clf.model_.activation == "sigmoid"  # scikit-learn's "logistic"
    assert clf.model_.layer_sizes == (4, 32, 16, 3) and clf.model_.loss == "cross_entropy"
    assert clf.out_activation_ == "softmax" and clf.n_layers_ == 4
    assert clf.n_features_in_ == 4 and clf.n_iter_ == len(clf.loss_curve_) == 30
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.t_ == 30 * len(X)
    assert [w.shape for w in clf.coefs_] == [(4, 32), (32, 16), (16, 3)]
    assert [b.shape for b in clf.intercepts_] == [(32,), (16,), (3,)]
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    np.testing.assert_array_equal(clf.predict(X), clf.predict_proba(X).argmax(axis=1))


def test_fastmlp_activation_names_and_every_optimizer():
    X, y = _blobs(centers=2, n=120)
    X = StandardScaler().fit_transform(X)
    for act in ("relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "gelu",
                "identity", "logistic"):
        clf = MLPClassifier((8,), activation=act, max_iter=3, random_state=0).fit(X, y)
        assert clf.model_.activation == ("sigmoid" if act == "logistic" else act)
    kinds = {"sgd": optim.SGD, "momentum": optim.SGD, "nesterov": optim.SGD,
             "adagrad": optim.Adagrad, "rmsprop": optim.RMSprop, "adam": optim.Adam,
             "adamw": optim.AdamW}
    for name, cls in kinds.items():
        clf = MLPClassifier((8,), optimizer=name, learning_rate_init=0.02,
                            batch_size=10, max_iter=20, random_state=0).fit(X, y)
        assert type(clf.optimizer_) is cls and clf.optimizer_.lr == 0.02
        assert clf.optimizer_.step_count == 20 * 12  # 120 rows in batches of 10
        assert clf.score(X, y) > 0.8, name
    assert clf.optimizer_.params is clf.model_.params


def test_solver_mapping_and_alpha_as_l2():
    X, y = _blobs(centers=2, n=100)
    sgd = MLPClassifier(solver="sgd", momentum=0.8, nesterovs_momentum=True, alpha=0.5,
                        batch_size=20, max_iter=1, random_state=0).fit(X, y)
    o = sgd.optimizer_
    assert type(o) is optim.SGD and o.momentum == 0.8 and o.nesterov
    assert o.weight_decay == 0  # alpha is the kernels' L2 term, not the optimizer's decay
    adam = MLPClassifier(beta_1=0.8, beta_2=0.99, epsilon=1e-6, alpha=0.0,
                         max_iter=1, random_state=0).fit(X, y)
    assert adam.optimizer_.betas == (0.8, 0.99) and adam.optimizer_.eps == 1e-6
    assert adam.optimizer_.weight_decay == 0.0
    kw = MLPClassifier(optimizer="rmsprop", optimizer_kwargs={"alpha": 0.9, "weight_decay": 0.1},
                       max_iter=1, random_state=0).fit(X, y)
    assert kw.optimizer_.alpha == 0.9 and kw.optimizer_.weight_decay == 0.1
    # a larger alpha shrinks the weights
    X = StandardScaler().fit_transform(X)
    kw = dict(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.05, max_iter=100,
              random_state=0)
    small = MLPClassifier(alpha=0.0, **kw).fit(X, y)
    big = MLPClassifier(alpha=10.0, **kw).fit(X, y)
    assert np.linalg.norm(big.coefs_[0]) < 0.6 * np.linalg.norm(small.coefs_[0])


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_optimizer_takes_sklearns_solver_parameters(Est):
    """With optimizer=, beta_1 / beta_2 / epsilon are adam's and adamw's, momentum that of
    "momentum" and "nesterov": the same fit as the solver they name."""
    X, y = _blobs(centers=2, n=100)
    X = StandardScaler().fit_transform(X)
    kw = dict(hidden_layer_sizes=(6,), batch_size=20, max_iter=3, random_state=0)
    adam = dict(beta_1=0.8, beta_2=0.99, epsilon=1e-4, learning_rate_init=0.01, **kw)
    ours = Est(optimizer="adam", **adam).fit(X, y)
    assert ours.optimizer_.betas == (0.8, 0.99)
    np.testing.assert_array_equal(ours.model_.params, Est(**adam).fit(X, y).model_.params)
    assert Est(optimizer="adamw", **adam).fit(X, y).optimizer_.betas == (0.8, 0.99)
    sgd = dict(momentum=0.5, learning_rate_init=0.01, **kw)
    for name, nesterov in (("nesterov", True), ("momentum", False)):
        ours = Est(optimizer=name, **sgd).fit(X, y)
        assert ours.optimizer_.momentum == 0.5 and ours.optimizer_.nesterov is nesterov
        theirs = Est(solver="sgd", nesterovs_momentum=nesterov, **sgd).fit(X, y)
        np.testing.assert_array_equal(ours.model_.params, theirs.model_.params)


@pytest.mark.parametrize("kwargs, match", [
    ({"optimizer": "rmsprop", "epsilon": 1e-3}, "epsilon=0.001 has no meaning for "
                                                "optimizer='rmsprop'"),
    ({"optimizer": "adagrad", "beta_2": 0.9}, "beta_2=0.9 has no meaning"),
    ({"optimizer": "sgd", "momentum": 0.5}, "momentum=0.5 has no meaning for optimizer='sgd'"),
    ({"optimizer": "adam", "momentum": 0.5}, "momentum=0.5 has no meaning"),
    ({"optimizer": "adam", "nesterovs_momentum": False}, "nesterovs_momentum=False has no"),
    ({"optimizer": "nesterov", "nesterovs_momentum": False}, "contradicts optimizer='nest"),
    ({"optimizer": "nesterov", "momentum": 0.0}, "momentum=0.0 contradicts"),
    ({"optimizer": "adam", "beta_1": 0.5, "optimizer_kwargs": {"betas": (0.5, 0.9)}},
     r"beta_1=0.5 and optimizer_kwargs\['betas'\] both set"),
])
def test_solver_parameters_an_optimizer_cannot_take_are_refused(kwargs, match):
    X, y = _blobs(centers=2, n=40)
    with pytest.raises(ValueError, match=match):
        MLPClassifier((4,), max_iter=1, **kwargs).fit(X, y)
    # at their defaults they never stand in the way, and "momentum" is classical whatever
    # nesterovs_momentum says
    MLPClassifier((4,), optimizer=kwargs["optimizer"], max_iter=1).fit(X, y)
    assert not MLPClassifier((4,), optimizer="momentum", nesterovs_momentum=False,
                             max_iter=1).fit(X, y).optimizer_.nesterov


def test_tol_stops_like_sklearn_and_convergence_warning():
    from sklearn.neural_network import MLPClassifier as SkMLP
    X, y = _blobs(centers=2, n=100)
    clf = MLPClassifier(tol=10.0, n_iter_no_change=3, max_iter=200, random_state=0).fit(X, y)
    # no epoch after the first improves by tol: the stop comes after the same number of
    # epochs as scikit-learn's (the no-improvement count must exceed n_iter_no_change)
    sk = SkMLP(tol=10.0, n_iter_no_change=3, max_iter=200, random_state=0).fit(X, y)
    assert clf.n_iter_ == sk.n_iter_ == 5
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        with warnings.catch_warnings():
            warnings.simplefilter("always", ConvergenceWarning)
            MLPClassifier(max_iter=2, random_state=0).fit(X, y)


def test_early_stopping_records_validation_and_restores_best():
    X, y = _blobs(centers=3, n=400)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier((16,), early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                        learning_rate_init=0.05, max_iter=300, random_state=0).fit(X, y)
    assert clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_ < 300
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    # the restored parameters score the best validation accuracy on the same split: the
    # random state draws the initial weights and biases, layer by layer, then the split
    from sklearn.model_selection import train_test_split
    rs = np.random.RandomState(0)
    for n_in, n_out in ((4, 16), (16, 3)):
        rs.uniform(size=(n_in, n_out)), rs.uniform(size=n_out)
    _, va = train_test_split(np.arange(len(X)), test_size=0.2, random_state=rs, stratify=y)
    assert clf.score(X[va], y[va]) == pytest.approx(clf.best_validation_score_)
    reg = MLPRegressor((16,), early_stopping=True, max_iter=300, random_state=0)
    Xr, yr = make_regression(300, 5, noise=1.0, random_state=0)
    reg.fit(Xr, yr / yr.std())
    assert len(reg.validation_scores_) == reg.n_iter_ and reg.best_validation_score_ > 0.5


def test_partial_fit_needs_classes_and_continues_optimizer_state():
    X, y = _blobs(centers=3, n=300)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier((16,), batch_size=50, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:150], y[:150], classes=[0, 1, 2])
    assert clf.optimizer_.step_count == 3 and clf.n_iter_ == 1
    opt = clf.optimizer_
    clf.partial_fit(X[150:], y[150:])
    # n_iter_ counts the epochs of this call, as scikit-learn's; t_ accumulates
    assert clf.optimizer_ is opt and opt.step_count == 6 and clf.n_iter_ == 1
    assert clf.t_ == 300
    for _ in range(30):
        clf.partial_fit(X, y)
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="not the same"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:5], np.array([0, 1, 2, 7, 0]))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :3], y)
    # a class absent from a chunk is still predicted later (classes fixed on the first call)
    first = MLPClassifier((8,), random_state=0).partial_fit(X[y != 2], y[y != 2],
                                                              classes=np.array([0, 1, 2]))
    assert first.predict_proba(X).shape == (len(X), 3)


def test_partial_fit_equals_fit_epoch_by_epoch_state():
    """partial_fit = one epoch with the state of the previous call: without shuffling,
    three partial_fit calls are a three-epoch fit, bit for bit."""
    X, y = _blobs(centers=2, n=200)
    X = StandardScaler().fit_transform(X)
    kw = dict(hidden_layer_sizes=(8,), batch_size=32, shuffle=False, random_state=3)
    clf = MLPClassifier(**kw)
    for _ in range(3):
        clf.partial_fit(X, y, classes=[0, 1])
    whole = MLPClassifier(max_iter=3, n_iter_no_change=np.inf, **kw).fit(X, y)
    np.testing.assert_array_equal(clf.model_.params, whole.model_.params)
    np.testing.assert_array_equal(clf.optimizer_.state, whole.optimizer_.state)
    assert clf.loss_curve_ == whole.loss_curve_


def test_warm_start_keeps_the_weights_and_builds_a_new_optimizer():
    """As scikit-learn: each fit builds the optimizer from the parameters in force (its
    state and step count start again); only partial_fit continues it."""
    X, y = _blobs(centers=2, n=100)
    clf = MLPClassifier((8,), warm_start=True, max_iter=5, random_state=0).fit(X, y)
    opt, steps, params = clf.optimizer_, clf.optimizer_.step_count, clf.model_.params.copy()
    clf.fit(X, y)
    assert clf.optimizer_ is not opt and clf.optimizer_.step_count == steps
    assert clf.n_iter_ == 5 and clf.t_ == 10 * len(X) and len(clf.loss_curve_) == 10
    assert not np.array_equal(clf.model_.params, params)  # went on from the weights
    cold = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)
    cold.fit(X, y)
    assert cold.n_iter_ == 5 and cold.optimizer_.step_count == steps
    # a changed learning rate or solver takes effect on the next fit (rmsprop kept 0.001,
    # and adam -> sgd kept training with Adam)
    clf.set_params(optimizer="rmsprop").fit(X, y)
    clf.set_params(learning_rate_init=0.5).fit(X, y)
    assert type(clf.optimizer_) is optim.RMSprop and clf.optimizer_.lr == 0.5
    clf.set_params(optimizer=None, solver="sgd", momentum=0.5).fit(X, y)
    assert type(clf.optimizer_) is optim.SGD and clf.optimizer_.momentum == 0.5
    # partial_fit continues the optimizer, unless solver / optimizer changed in between
    opt = clf.optimizer_
    clf.partial_fit(X, y)
    assert clf.optimizer_ is opt and opt.step_count == steps + 1   # one epoch, one batch
    clf.set_params(solver="adam").partial_fit(X, y)
    assert type(clf.optimizer_) is optim.Adam and clf.optimizer_.step_count == 1


def test_n_threads_is_scoped_to_each_call(monkeypatch):
    """n_threads is the kernels' count inside fit / predict only, as fit(n_threads=) and
    fastmlp.threads: it wins over an enclosing threads() block, and neither the process
    default nor that block's count changes."""
    from fastmlp.backends import _threads
    seen = []
    epoch, logits = MLPClassifier._epoch, MLPClassifier._logits
    monkeypatch.setattr(MLPClassifier, "_epoch", lambda self, *a: (
        seen.append(backends.get_num_threads()), epoch(self, *a))[1])
    monkeypatch.setattr(MLPClassifier, "_logits", lambda self, X: (
        seen.append(backends.get_num_threads()), logits(self, X))[1])
    X, y = _blobs(centers=2, n=60)
    default = _threads.get_default()
    try:
        backends.set_num_threads(2)
        with backends.threads(3):
            clf = MLPClassifier((4,), max_iter=2, n_threads=1, random_state=0).fit(X, y)
            clf.predict(X)
            assert seen == [1, 1, 1] and backends.get_num_threads() == 3
            seen.clear()
            clf.set_params(n_threads=None).fit(X, y)      # None: the count in force
            assert seen == [3, 3]
        assert _threads.get_default() == 2
    finally:
        _threads._default = default


def test_class_weight_by_label():
    X, y = make_blobs(400, centers=2, n_features=4, random_state=0, cluster_std=8.0)
    X = StandardScaler().fit_transform(X)
    labels = np.array(["a", "b"])[y]
    heavy = MLPClassifier((8,), class_weight={"b": 10.0}, max_iter=30,
                          random_state=0).fit(X, labels)
    plain = MLPClassifier((8,), max_iter=30, random_state=0).fit(X, labels)
    # overlapping classes: weighting "b" ten times makes it the prediction far more often
    assert (heavy.predict(X) == "b").mean() > (plain.predict(X) == "b").mean() + 0.05
    MLPClassifier((8,), class_weight="balanced", max_iter=2, random_state=0).fit(X, labels)
    with pytest.raises(ValueError, match="not a class"):
        MLPClassifier(class_weight={"c": 2.0}, max_iter=2).fit(X, labels)


def test_regressor_single_and_multi_output():
    X, y = make_regression(300, 6, n_targets=3, noise=0.5, random_state=0)
    y = y / y.std(axis=0)
    reg = make_pipeline(StandardScaler(), MLPRegressor((32,), learning_rate_init=0.01,
                                                       max_iter=200, random_state=0))
    reg.fit(X, y)
    assert reg.predict(X).shape == (300, 3) and reg[-1].n_outputs_ == 3
    assert reg.score(X, y) > 0.9
    one = MLPRegressor((32,), learning_rate_init=0.01, max_iter=100, random_state=0)
    one.fit(X, y[:, 0])
    assert one.predict(X).shape == (300,) and one.model_.loss == "mse"
    assert one.out_activation_ == "identity"
    with pytest.raises(AttributeError):
        one.predict_proba  # noqa: B018  (regressors have no probabilities)


@pytest.mark.parametrize("kwargs, match", [
    ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
    ({"activation": "swish"}, "activation"),
    ({"solver": "newton"}, "solver"),
    ({"learning_rate": "cyclic"}, "learning_rate"),
    ({"solver": "sgd", "optimizer": "adam"}, "conflicts"),
    ({"solver": "lbfgs", "optimizer": "sgd"}, "conflicts"),
    ({"schedule": "cosine:T=10", "learning_rate": "adaptive"}, "conflicts"),
    ({"n_iter_no_change": 0}, "n_iter_no_change"),
    ({"max_fun": 0}, "max_fun"),
    ({"power_t": -1.0}, "power_t"),
    ({"shuffle": "yes"}, "shuffle"),
    ({"optimizer": "lion"}, "optimizer"),
    ({"alpha": -1.0}, "alpha"),
    ({"batch_size": 0}, "batch_size"),
    ({"learning_rate_init": 0.0}, "learning_rate_init"),
    ({"max_iter": 0}, "max_iter"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"dtype": "float16"}, "dtype"),
    ({"optimizer_kwargs": [1]}, "optimizer_kwargs"),
])
def test_bad_parameters_are_named(kwargs, match):
    X, y = _blobs(centers=2, n=40)
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**kwargs).fit(X, y)


def test_dtype_follows_X_unless_given():
    X, y = _blobs(centers=2, n=60)
    kw = dict(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    assert MLPClassifier(**kw).fit(X, y).model_.dtype == np.float64
    f32 = MLPClassifier(**kw).fit(X.astype(np.float32), y)
    assert f32.model_.dtype == np.float32
    f32.partial_fit(X, y)  # later float64 chunks are cast to the network's float32
    assert f32.model_.params.dtype == np.float32
    assert MLPClassifier(dtype="float32", **kw).fit(X, y).model_.dtype == np.float32
    assert MLPRegressor(dtype=np.float64, **kw).fit(X.astype(np.float32), X[:, 0]
                                                    ).model_.dtype == np.float64


def test_float64_and_backends_agree():
    X, y = _blobs(centers=3, n=150)
    X = StandardScaler().fit_transform(X)
    a = MLPClassifier((8,), dtype="float64", max_iter=5, backend="numpy",
                      random_state=0).fit(X, y)
    assert a.model_.params.dtype == np.float64
    for name, (ok, _) in backends.available_backends().items():
        if ok and name != "numpy":
            b = MLPClassifier((8,), dtype="float64", max_iter=5, backend=name,
                              random_state=0).fit(X, y)
            np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=1e-8)


# ---------------------------------------------------------------------------------------
# scikit-learn machinery
def test_pickle_round_trip_predicts_and_continues_identically():
    X, y = _blobs(centers=3, n=200)
    X = StandardScaler().fit_transform(X)
    clf = MLPClassifier((16,), max_iter=20, random_state=0).fit(X, y)
    clone_ = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone_.predict_proba(X), clf.predict_proba(X))
    assert clone_.get_params() == clf.get_params()
    assert clone_.optimizer_.params is clone_.model_.params  # the optimizer is re-bound
    np.testing.assert_array_equal(clone_.optimizer_.state, clf.optimizer_.state)
    for est in (clf, clone_):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(clone_.model_.params, clf.model_.params)
    np.testing.assert_array_equal(clone_.optimizer_.state, clf.optimizer_.state)
    reg = MLPRegressor((8,), max_iter=5, random_state=0).fit(X, X[:, 0])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), reg.predict(X))


def test_pipeline_scaler_matters():
    X, y = _blobs(centers=3)
    pipe = make_pipeline(StandardScaler(), MLPClassifier((32,), max_iter=100, random_state=0))
    raw = MLPClassifier((32,), max_iter=100, random_state=0)
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert pipe.score(X, y) >= raw.fit(X, y).score(X, y)


def test_grid_search_and_cross_val_score():
    X, y = _blobs(centers=3, n=240)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=40, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (32,)],
                               "mlpclassifier__learning_rate_init": [1e-4, 1e-2]}, cv=3)
    grid.fit(X, y)
    assert len(grid.cv_results_["mean_test_score"]) == 4
    # the tiny-lr, tiny-net candidate cannot win against lr 1e-2 after 40 epochs
    assert grid.best_params_["mlpclassifier__learning_rate_init"] == 1e-2
    assert grid.best_score_ > 0.9
    from sklearn.neural_network import MLPClassifier as SkMLP
    scores = cross_val_score(make_pipeline(StandardScaler(), MLPClassifier(
        (16,), max_iter=50, random_state=0)), X, y, cv=4)
    theirs = cross_val_score(make_pipeline(StandardScaler(), SkMLP(
        (16,), max_iter=50, random_state=0)), X, y, cv=4)
    # same initialisation, row order and objective as scikit-learn: the same fold scores
    np.testing.assert_allclose(scores, theirs, atol=0.02)
    assert scores.min() >= 0.75
    r = cross_val_score(MLPRegressor((16,), learning_rate_init=0.01, max_iter=100,
                                     random_state=0), X[:, :3], X[:, 3] / X[:, 3].std(), cv=3)
    assert r.shape == (3,)


def test_clone_is_unfitted_and_get_set_params():
    clf = MLPClassifier(hidden_layer_sizes=(5, 5), optimizer="rmsprop", n_threads=1,
                        schedule="cosine:T=100", class_weight="balanced")
    p = clf.get_params()
    for k in ("hidden_layer_sizes", "activation", "solver", "alpha", "batch_size",
              "learning_rate_init", "max_iter", "random_state", "early_stopping",
              "validation_fraction", "n_iter_no_change", "tol", "optimizer", "schedule",
              "class_weight", "backend", "n_threads", "dtype"):
        assert k in p
    c = clone(clf.set_params(max_iter=7))
    assert c.max_iter == 7 and not hasattr(c, "model_")
    assert "class_weight" not in MLPRegressor().get_params()


def test_save_and_onnx_from_estimator(tmp_path):
    from fastmlp import io as fio
    X, y = _blobs(centers=3, n=150)
    X = StandardScaler().fit_transform(X)
    labels = np.array(["GALAXY", "QSO", "STAR"])[y]
    clf = MLPClassifier((8,), max_iter=10, random_state=0, schedule=lambda t: 1e-3)
    clf.fit(X, labels)
    m = fio.load(clf.save(tmp_path / "clf.npz"))
    assert m.class_names == ("GALAXY", "QSO", "STAR") and m.feature_names is None
    np.testing.assert_array_equal(m.predict_proba(X), clf.model_.predict_proba(X))
    assert m.training_config["estimator"] == "MLPClassifier"
    assert m.training_config["params"]["hidden_layer_sizes"] == [8]
    assert m.training_config["params"]["schedule"].startswith("<function")
    np.testing.assert_array_equal(m.optimizer.state, clf.optimizer_.state)
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is optional")
    pytest.importorskip("onnx", reason="onnx is optional")
    sess = onnxruntime.InferenceSession(str(clf.to_onnx(tmp_path / "clf.onnx")),
                                        providers=["CPUExecutionProvider"])
    proba, label = sess.run(["proba", "label"], {"X": X})  # a float64 network
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-5)
    assert (clf.classes_[label] == clf.predict(X)).mean() > 0.99


def test_multilabel_save_and_onnx_from_estimator(tmp_path):
    """A multilabel classifier's model (one sigmoid per label) saves and exports as the
    core MLP does: the loaded model and the ONNX graph give the estimator's probabilities
    and indicator matrix."""
    from sklearn.datasets import make_multilabel_classification
    from fastmlp import io as fio
    X, Y = make_multilabel_classification(120, 5, n_classes=3, random_state=0)
    clf = MLPClassifier((8,), max_iter=20, random_state=0).fit(X, Y)
    m = fio.load(clf.save(tmp_path / "ml.npz"))
    assert m.link == "sigmoid" and m.n_outputs == 3
    np.testing.assert_allclose(m.predict_proba(X), clf.predict_proba(X), rtol=1e-12,
                               atol=1e-15)
    np.testing.assert_array_equal(m.predict(X), clf.predict(X))
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is optional")
    pytest.importorskip("onnx", reason="onnx is optional")
    sess = onnxruntime.InferenceSession(str(clf.to_onnx(tmp_path / "ml.onnx")),
                                        providers=["CPUExecutionProvider"])
    proba, label = sess.run(["proba", "label"], {"X": X})
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(label, clf.predict(X))


def test_dataframe_feature_names_are_kept_and_saved(tmp_path):
    pd = pytest.importorskip("pandas", reason="pandas is optional")
    from fastmlp import io as fio
    X, y = _blobs(centers=2, n=100)
    df = pd.DataFrame(X, columns=["u-g", "g-r", "r-i", "i-z"])
    clf = MLPClassifier((4,), max_iter=3, random_state=0).fit(df, y)
    assert clf.feature_names_in_.tolist() == ["u-g", "g-r", "r-i", "i-z"]
    m = fio.load(clf.save(tmp_path / "m.npz"))
    assert m.feature_names == ("u-g", "g-r", "r-i", "i-z")
    # the saved model predicts from the DataFrame's columns, as the estimator does (the
    # estimator's complement is 1 - p like scikit-learn's, the model's sigmoid(-z) directly)
    np.testing.assert_allclose(m.predict_proba(df), clf.predict_proba(df), rtol=1e-12,
                               atol=1e-15)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df[["g-r", "u-g", "r-i", "i-z"]])


@pytest.mark.parametrize("columns", [["price ($)", "weight, kg", "h", "flux "],
                                     ["", "a", " a", "colors:ab"]])
def test_dataframe_column_names_are_taken_literally(tmp_path, columns):
    """Column names are names, never a feature spec: no splitting on commas, no stripping,
    no 'colors:' expansion -- in the model, and in the model file read back."""
    pd = pytest.importorskip("pandas", reason="pandas is optional")
    from fastmlp import io as fio
    X, y = _blobs(centers=2, n=60)
    df = pd.DataFrame(X, columns=columns)
    clf = MLPClassifier((4,), max_iter=2, random_state=0).fit(df, y)
    assert clf.model_.feature_names == tuple(columns)
    m = fio.load(clf.save(tmp_path / "m.npz"))
    assert m.feature_names == tuple(columns)
    np.testing.assert_allclose(m.predict_proba(df), clf.predict_proba(df), rtol=1e-12,
                               atol=1e-15)


def test_regressor_partial_fit_streams_chunks():
    X, y = make_regression(400, 5, n_targets=2, noise=0.1, random_state=1)
    X = StandardScaler().fit_transform(X)
    y = y / y.std(axis=0)
    reg = MLPRegressor((32,), learning_rate_init=0.01, batch_size=25, random_state=0)
    for epoch in range(15):
        for chunk in np.array_split(np.arange(400), 4):  # four chunks, as if streamed
            reg.partial_fit(X[chunk], y[chunk])
    assert reg.n_iter_ == 1 and reg.t_ == 60 * 100 and reg.optimizer_.step_count == 60 * 4
    assert reg.score(X, y) > 0.9
    with pytest.raises(ValueError,
                       match=r"y has 1 target \(outputs\), the model was fitted with 2$"):
        reg.partial_fit(X, y[:, 0])


def test_lazy_export_does_not_import_sklearn_with_fastmlp():
    import subprocess
    import sys
    code = ("import sys, fastmlp; assert 'sklearn' not in sys.modules, 'eager import'; "
            "from fastmlp.sklearn import MLPClassifier as C, MLPRegressor as R; "
            "assert fastmlp.MLPClassifier is C and fastmlp.MLPRegressor is R; "
            "assert 'MLPClassifier' in dir(fastmlp)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with pytest.raises(AttributeError, match="no attribute 'MLPClassifer'"):
        fastmlp.MLPClassifer  # noqa: B018  (a typo gives the ordinary error)


def test_real_sdss17_three_classes_with_string_labels():
    """GALAXY / QSO / STAR from colours and r on 30,000 SDSS DR17 spectroscopic objects:
    3-fold cross_val_score of StandardScaler + MLPClassifier, string labels throughout.
    A linear model (logistic regression) reaches about 0.76 here; the MLP must beat it
    clearly."""
    from conftest import data_file
    from sklearn.linear_model import LogisticRegression
    from fastmlp.data import load_catalog
    cat = load_catalog(data_file("sdss17_star_classification_first30k.csv"),
                       features="colors:ugriz+r", label="class")
    X, y = cat.X, np.asarray(cat.class_names)[cat.y]
    assert set(y) == {"GALAXY", "QSO", "STAR"}
    mlp = cross_val_score(make_pipeline(StandardScaler(), MLPClassifier(
        (64, 64), learning_rate_init=3e-3, max_iter=15, random_state=0)), X, y, cv=3)
    linear = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
                             X, y, cv=3)
    assert mlp.mean() >= 0.85 and mlp.mean() > linear.mean() + 0.05


# ---------------------------------------------------------------------------------------
# blown-up runs are never silent: a diverged run raises, a finite blow-up warns by name
def _tiny(Est):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int) if Est is MLPClassifier else 2.0 * X[:, 0]
    return X, y


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_diverged_run_raises_sklearns_valueerror_saying_what_was_seen(Est):
    """Adam's squared gradients overflow float32 on inputs of 1e30: the parameters stay
    finite but frozen (the fit used to end with a ConvergenceWarning and a model that
    predicted garbage); the regressor's squared error overflows.  The error is
    scikit-learn's ValueError and fastmlp's TrainingDiverged, naming what went non-finite
    and the huge column."""
    from fastmlp.sklearn import SolverDiverged
    X, y = _tiny(Est)
    est = Est(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    seen = (r"optimizer state \(exp_avg_sq\) became non-finite" if Est is MLPClassifier
            else r"loss of step 1 \(batch 1 of 1\) was inf")  # squares overflow
    with pytest.raises(SolverDiverged, match=r"non-finite parameter weights.* Training diverged in "
                       f"epoch 1: the {seen}.*column 0 reaches"), \
            pytest.warns(UserWarning, match=r"reaches \|x\| = 2.4e\+30"):
        est.fit((X * 1e30).astype(np.float32), y)
    assert issubclass(SolverDiverged, ValueError)
    assert issubclass(SolverDiverged, fastmlp.TrainingDiverged)


def test_diverged_loss_names_the_step_and_the_learning_rate():
    X, y = _tiny(MLPRegressor)
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1.0,
                       max_iter=20, random_state=0)
    with pytest.raises(ValueError, match=r"non-finite parameter weights.* Training diverged in "
                       r"epoch 8: the loss of step 8 \(batch 1 of 1\) was inf.*learning_rate_init "
                       r"\(it was 1\)") as info:
        est.fit(X, y)
    assert info.value.step == 8 and info.value.where == "epoch 8"
    import scipy.sparse as sp       # the NumPy path for sparse X says the same
    with pytest.raises(ValueError, match=r"non-finite parameter weights.* Training diverged in "
                       r"epoch \d+: the loss of step \d+ .*Lower learning_rate_init \(it was 1\)"):
        est.fit(sp.csr_matrix(X), y)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_finite_blow_up_warns_training_runaway(Est):
    """sgd at lr 1 on unscaled inputs of 1e8: the loss ended at ~1e181 (classifier) with
    not a word (the no-improvement rule stopped it before max_iter's ConvergenceWarning);
    adam at lr 10 ends 10x above its start (regressor).  Both warn TrainingRunaway, a
    UserWarning that ignoring ConvergenceWarning does not hide."""
    from fastmlp.training.loop import TrainingRunaway
    X, y = _tiny(Est)
    if Est is MLPClassifier:
        est, X, cure = Est((8,), solver="sgd", learning_rate_init=1.0), X * 1e8, "StandardScaler"
    else:
        est, cure = Est((8,), learning_rate_init=10.0), r"learning_rate_init \(it was 10\)"
    est.set_params(max_iter=20, random_state=0)
    with warnings.catch_warnings():   # the huge inputs' own warning: tested below
        warnings.filterwarnings("ignore", message=r"MLP\w+: X: column")
        _warns_runaway(est, X, y, cure)
    assert not issubclass(TrainingRunaway, ConvergenceWarning)
    with warnings.catch_warnings():   # a good run says nothing
        warnings.simplefilter("error", TrainingRunaway)
        est.set_params(learning_rate_init=1e-3).fit(X / np.abs(X).max(), y)


def _warns_runaway(est, X, y, cure):
    from fastmlp.training.loop import TrainingRunaway
    Est = type(est)
    with pytest.warns(TrainingRunaway, match=f"{Est.__name__}: training blew up: the epoch "
                      f"loss went from .* to .*{cure}"):
        est.fit(X, y)


def test_partial_fit_warns_once_when_the_run_blows_up():
    from fastmlp.training.loop import TrainingRunaway
    X, y = _tiny(MLPRegressor)
    est = MLPRegressor((8,), learning_rate_init=10.0, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(6):
            est.partial_fit(X, y)
    runaway = [w for w in caught if w.category is TrainingRunaway]
    assert len(runaway) == 1 and "training blew up" in str(runaway[0].message)


def test_divergence_with_early_stopping_restores_the_best_epoch_and_warns():
    """scikit-learn restores the best parameters silently; fastmlp says so."""
    from fastmlp.training.loop import TrainingRunaway
    X, y = _tiny(MLPRegressor)
    est = MLPRegressor((8,), solver="sgd", learning_rate_init=1.0, early_stopping=True,
                       max_iter=20, random_state=0)
    with pytest.warns(TrainingRunaway, match=r"training diverged in epoch \d+: the loss of "
                      r"step .* the parameters of epoch 1 \(the best validation score"):
        est.fit(X, y)
    assert np.isfinite(est.model_.params).all() and np.isnan(est.loss_curve_[-1])


def test_huge_inputs_are_warned_before_training():
    """fastmlp.fit's warning, now from the estimators too: unscaled columns of 1e8 gave
    losses of 1e7 (adam) or 1e181 (sgd); the cure is a scaler.  partial_fit warns on its
    first call only (the model is set up there)."""
    X, y = _tiny(MLPClassifier)
    est = MLPClassifier((8,), max_iter=2, random_state=0)
    with pytest.warns(UserWarning, match=r"MLPClassifier: X: column 0 reaches \|x\| = 2.4e\+08"
                      r".*StandardScaler"):
        est.fit(X * 1e8, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.partial_fit(X * 1e8, y)
        est.fit(X, y)                                    # scaled: nothing to say
    assert not [w for w in caught if "reaches |x|" in str(w.message)]
