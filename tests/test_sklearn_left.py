"""fastmlp's scikit-learn estimators in line with fit: optimizer names in any case, a
schedule object's lr checked against learning_rate_init, optimizer_kwargs' lr checked as a
learning rate before the agreement with learning_rate_init."""
import numpy as np
import pytest

from fastmlp.schedules import Cosine, Warmup
from fastmlp.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n_targets=2):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ rng.normal(size=(3, n_targets))
    return X, y


@pytest.mark.parametrize("given, name, solver", [("Adam", "adam", "adam"),
                                                  ("RMSprop", "rmsprop", "adam"),
                                                  ("SGD", "sgd", "sgd"),
                                                  ("Nesterov", "nesterov", "sgd")])
def test_optimizer_name_in_any_case_trains_as_the_lower_case_name(given, name, solver):
    # two targets: the regressor's scale is 2, so SGD's rate is only right when "SGD" is
    # known to be of the SGD family
    X, y = _data()
    kw = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0, solver=solver,
              learning_rate_init=0.01)
    a = MLPRegressor(optimizer=given, **kw).fit(X, y)
    b = MLPRegressor(optimizer=name, **kw).fit(X, y)
    assert a.optimizer_.name == b.optimizer_.name
    np.testing.assert_array_equal(a.model_.params, b.model_.params)
    assert a.loss_curve_ == b.loss_curve_


def test_optimizer_name_in_other_case_still_conflicts_with_lbfgs():
    X, y = _data()
    with pytest.raises(ValueError, match=r"solver='lbfgs' conflicts with optimizer='Adam'"):
        MLPRegressor((4,), solver="lbfgs", optimizer="Adam").fit(X, y)


@pytest.mark.parametrize("schedule", [Cosine(0.5, T=20), Warmup(Cosine(0.5, T=20), 5)])
@pytest.mark.parametrize("lr_kw", [{"learning_rate_init": 0.01}, {}])
def test_schedule_object_lr_disagreeing_with_learning_rate_init_is_refused(schedule, lr_kw):
    X, y = _data(1)
    est = MLPRegressor((4,), max_iter=2, random_state=0, schedule=schedule, **lr_kw)
    with pytest.raises(ValueError, match=r"learning_rate_init=0\.0(1|01) disagrees with the "
                                         r"schedule's own lr 0\.5"):
        est.fit(X, y.ravel())
    assert not hasattr(est, "model_")          # refused before any training
    est.set_params(learning_rate_init=0.5)     # the rate given once: trains
    assert est.fit(X, y.ravel()).n_iter_ == 2


def test_schedule_refusal_also_in_partial_fit_after_set_params():
    X, y = _data(1)
    est = MLPRegressor((4,), random_state=0, learning_rate_init=0.5,
                       schedule=Cosine(0.5, T=20))
    est.partial_fit(X, y.ravel())
    est.set_params(learning_rate_init=0.05)
    with pytest.raises(ValueError, match=r"learning_rate_init=0\.05 disagrees"):
        est.partial_fit(X, y.ravel())


@pytest.mark.parametrize("bad", [None, True, float("nan"), "0.01", float("inf")])
def test_optimizer_kwargs_lr_is_checked_as_a_learning_rate_first(bad):
    X = np.random.default_rng(1).normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    est = MLPClassifier((3,), max_iter=2, learning_rate_init=0.01,
                        optimizer_kwargs={"lr": bad})
    with pytest.raises(ValueError, match=r"optimizer_kwargs\['lr'\] must be a finite number"):
        est.fit(X, y)
