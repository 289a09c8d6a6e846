"""fastmlp.sklearn against scikit-learn where the rate changes under SGD momentum, and the
learning rate given twice (learning_rate_init and optimizer_kwargs["lr"]).

scikit-learn keeps the rate inside its velocity, the kernels keep torch's buffer: the
estimator rescales the buffer when ``learning_rate`` changes the rate, so invscaling and
adaptive with momentum (plain or Nesterov) follow scikit-learn's weights to rounding over
several epochs, as the constant rate always did.
"""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional dependency")

import scipy.sparse as sp  # noqa: E402
from sklearn.datasets import make_blobs, make_regression  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkC  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkR  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ATOL = 1e-12   # float64 SGD: the same steps, up to rounding

pytestmark = [pytest.mark.usefixtures("one_kernel_thread"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _clf_data(n=160):
    X, y = make_blobs(n, centers=3, n_features=4, random_state=0, cluster_std=2.0)
    return StandardScaler().fit_transform(X), y


def _sgd(**extra):
    return dict(solver="sgd", hidden_layer_sizes=(8,), learning_rate_init=0.05,
                momentum=0.9, batch_size=32, random_state=0, **extra)


def _assert_same_weights(ours, theirs):
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-11)


# ---------------------------------------------------------------------------------------
# momentum under a changing rate
@pytest.mark.parametrize("nesterov", [True, False])
def test_invscaling_with_momentum_follows_sklearn(nesterov):
    """The rate falls after every epoch: 6 epochs, 5 rate changes."""
    X, y = _clf_data()
    kw = _sgd(learning_rate="invscaling", power_t=0.5, nesterovs_momentum=nesterov,
              max_iter=6)
    ours, theirs = MLPClassifier(**kw).fit(X, y), SkC(**kw).fit(X, y)
    assert theirs._optimizer.learning_rate < 0.05 / 10    # the rate did change
    _assert_same_fit_and_prediction(ours, theirs, X)


def _assert_same_fit_and_prediction(ours, theirs, X):
    _assert_same_weights(ours, theirs)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)


@pytest.mark.parametrize("nesterov", [True, False])
def test_adaptive_with_momentum_follows_sklearn(nesterov):
    """tol=10: no epoch after the first improves enough, so the rate is divided by 5 after
    epochs 3 and 5, and training goes on at each new rate."""
    X, y = _clf_data()
    kw = _sgd(learning_rate="adaptive", tol=10.0, n_iter_no_change=1,
              nesterovs_momentum=nesterov, max_iter=6)
    ours, theirs = MLPClassifier(**kw).fit(X, y), SkC(**kw).fit(X, y)
    assert theirs._optimizer.learning_rate == pytest.approx(0.05 / 25)   # cut twice
    _assert_same_fit_and_prediction(ours, theirs, X)


def test_partial_fit_with_invscaling_momentum_follows_sklearn():
    """partial_fit continues the optimizer at the rate invscaling decayed after each call."""
    X, y = _clf_data()
    kw = _sgd(learning_rate="invscaling", power_t=0.5)
    ours, theirs = MLPClassifier(**kw), SkC(**kw)
    for est in (ours, theirs):
        for _ in range(4):
            est.partial_fit(X, y, classes=[0, 1, 2])
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-11)


def test_regressor_and_sparse_input_with_invscaling_momentum_follow_sklearn():
    """The regressor (its kernel gradient scaled) and sparse X (the NumPy path) too."""
    X, y = make_regression(150, 5, noise=1.0, random_state=0)
    X, y = StandardScaler().fit_transform(X), y / y.std()
    kw = _sgd(learning_rate="invscaling", power_t=0.5, max_iter=5, alpha=0.1)
    kw["learning_rate_init"] = 0.01
    theirs = SkR(**kw).fit(X, y)
    _assert_same_weights(MLPRegressor(**kw).fit(X, y), theirs)
    Xc, yc = _clf_data()
    kw = _sgd(learning_rate="invscaling", power_t=0.5, max_iter=4)
    _assert_same_weights(MLPClassifier(**kw).fit(sp.csr_matrix(Xc), yc),
                         SkC(**kw).fit(sp.csr_matrix(Xc), yc))


# ---------------------------------------------------------------------------------------
# the learning rate given twice
@pytest.mark.parametrize("how", [dict(solver="sgd"), dict(optimizer="momentum"),
                                 dict(optimizer="adam"), dict(solver="adam")])
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_lr_in_optimizer_kwargs_must_agree_with_learning_rate_init(how, Est):
    """Before: adam trained at optimizer_kwargs' 0.1, the SGD family at 0.01, silently.
    Now a disagreeing lr is refused by fit and partial_fit; an equal one trains as without."""
    X, y = _clf_data(40)
    kw = dict(hidden_layer_sizes=(4,), max_iter=2, learning_rate_init=0.01, random_state=0,
              **how)
    est = Est(optimizer_kwargs={"lr": 0.1}, **kw)
    msg = r"^learning_rate_init=0.01 and optimizer_kwargs\['lr'\]=0.1 disagree; give"
    with pytest.raises(ValueError, match=msg):
        est.fit(X, y)
    with pytest.raises(ValueError, match=msg):
        est.partial_fit(X, y, **({"classes": [0, 1, 2]} if Est is MLPClassifier else {}))
    assert not hasattr(est, "model_")
    given_twice = Est(optimizer_kwargs={"lr": 0.01}, **kw).fit(X, y)
    np.testing.assert_array_equal(given_twice.coefs_[0], Est(**kw).fit(X, y).coefs_[0])
