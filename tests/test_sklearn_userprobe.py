"""fastmlp.sklearn against a user's probe: rows without a class, multilabel indicators other
than 0/1, balanced class weights with sample weights, non-bool flags, warm starts on fewer
classes, float64 values beyond a float32 model's range, partial_fit blow-up judgement, and
messages that name the user's argument."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional dependency")

import scipy.sparse as sp  # noqa: E402
from sklearn.datasets import make_classification, make_multilabel_classification  # noqa: E402

from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402
from fastmlp.training.loop import TrainingRunaway  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_kernel_thread"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _data():
    return make_classification(300, 5, n_classes=3, n_informative=3, random_state=0)


def _overflowing_rows(X):
    """Two float32 rows, the first one whose logits overflow (finite input)."""
    Xt = X[:2].astype(np.float32)
    Xt[0] = 3e38
    return Xt


# ---------------------------------------------------------------------------------------
# 1. rows whose probabilities are NaN get no class
def test_string_classes_give_none_to_a_row_without_probabilities():
    X, y = _data()
    ys = np.array(["GALAXY", "QSO", "STAR"])[y]
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), ys)
    Xt = _overflowing_rows(X)
    proba = clf.predict_proba(Xt)
    assert np.isnan(proba[0]).all() and np.isfinite(proba[1]).all()
    pred = clf.predict(Xt)
    assert clf.model_.predict(Xt)[0] == -1
    assert pred[0] is None
    assert pred[1] == clf.classes_[proba[1].argmax()]
    # a call without such rows keeps scikit-learn's string array
    assert clf.predict(Xt[1:]).dtype.kind == "U"


def test_integer_classes_give_minus_one_to_a_row_without_probabilities():
    X, y = _data()
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), y + 1)
    Xt = _overflowing_rows(X)
    pred = clf.predict(Xt)
    np.testing.assert_array_equal(pred, [-1, clf.classes_[clf.predict_proba(Xt)[1].argmax()]])
    np.testing.assert_array_equal(pred == -1, clf.model_.predict(Xt) == -1)


def test_minus_one_as_a_class_marks_a_row_without_probabilities_by_none():
    X, y = _data()
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), y - 1)
    pred = clf.predict(_overflowing_rows(X))
    assert pred.dtype == object and pred[0] is None and pred[1] in (-1, 0, 1)


def test_multilabel_row_without_probabilities_is_a_row_of_minus_one():
    X, Y = make_multilabel_classification(200, 5, n_classes=4, random_state=0)
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), Y)
    Xt = _overflowing_rows(X)
    pred = clf.predict(Xt)
    np.testing.assert_array_equal(pred[0], [-1] * 4)
    np.testing.assert_array_equal(pred[1], clf.predict_proba(Xt)[1] > 0.5)
    np.testing.assert_array_equal(pred, clf.model_.predict(Xt))


# ---------------------------------------------------------------------------------------
# 2. a multilabel indicator with values other than 1 is binarized, as scikit-learn does
def test_multilabel_indicator_values_are_binarized():
    X, Y = make_multilabel_classification(200, 6, n_classes=4, random_state=0)
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    ones = MLPClassifier(**kw).fit(X, Y)
    twos = MLPClassifier(**kw).fit(X, 2 * Y)
    np.testing.assert_array_equal(twos.coefs_[0], ones.coefs_[0])
    assert twos.loss_ == ones.loss_


# ---------------------------------------------------------------------------------------
# 3. "balanced" counts the classes weighted by sample_weight
@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_balanced_class_weight_counts_sample_weights(solver):
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data
    check_sample_weight_equivalence_on_dense_data(
        "MLPClassifier", MLPClassifier(class_weight="balanced", solver=solver, random_state=0))


def test_balanced_class_weight_with_integer_weights_equals_repeated_rows():
    X, y = _data()
    sw = np.random.default_rng(0).integers(0, 4, size=y.size)
    rows = np.repeat(np.arange(y.size), sw)
    kw = dict(hidden_layer_sizes=(6,), solver="lbfgs", max_iter=20, random_state=0,
              class_weight="balanced")
    weighted = MLPClassifier(**kw).fit(X, y, sample_weight=sw)
    repeated = MLPClassifier(**kw).fit(X[rows], y[rows])
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X),
                               rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------
# 4. flags must be booleans
@pytest.mark.parametrize("name", ["nesterovs_momentum", "early_stopping", "warm_start"])
@pytest.mark.parametrize("value", ["False", 1, None])
def test_flags_refuse_values_other_than_bool(name, value):
    X, y = _data()
    with pytest.raises(ValueError, match=f"{name} must be True or False, got {value!r}"):
        MLPClassifier((4,), max_iter=2, **{name: value}).fit(X, y)
    with pytest.raises(ValueError, match=f"{name} must be True or False"):
        MLPRegressor((4,), max_iter=2, **{name: value}).fit(X, y.astype(float))


# ---------------------------------------------------------------------------------------
# 5. a warm start needs the fitted classes
@pytest.mark.parametrize("keep", [[0, 1], [2]])
def test_warm_start_on_a_subset_of_the_classes_is_refused(keep):
    X, y = _data()
    clf = MLPClassifier((4,), max_iter=3, random_state=0, warm_start=True).fit(X, y)
    before = clf.coefs_[0].copy()
    sub = np.isin(y, keep)
    with pytest.raises(ValueError, match=r"warm_start can only be used where `y` has the "
                                         r"same classes.*\[0, 1, 2\]"):
        clf.fit(X[sub], y[sub])
    np.testing.assert_array_equal(clf.coefs_[0], before)
    clf.fit(X, y)          # the same classes: trains on
    assert not np.array_equal(clf.coefs_[0], before)


# ---------------------------------------------------------------------------------------
# 6. float64 values beyond a float32 model's range
@pytest.mark.parametrize("sparse", [False, True])
def test_values_beyond_float32_range_are_refused_naming_row_and_column(sparse):
    X, y = _data()
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), y)
    Xt = X[:3].copy()
    Xt[1, 2] = 1e39
    Xt = sp.csr_matrix(Xt) if sparse else Xt
    for call in (clf.predict, clf.predict_proba):
        with pytest.raises(ValueError, match=r"beyond the float32 range of the model .*row 1, "
                                             r"column 2") as exc:
            call(Xt)
        assert "check_finite" not in str(exc.value)


# ---------------------------------------------------------------------------------------
# 7. each partial_fit call is judged against its own start
def test_partial_fit_on_shifted_targets_is_not_called_a_blow_up():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = X @ rng.normal(size=5)
    reg = MLPRegressor((16,), random_state=0, max_iter=30).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingRunaway)
        for _ in range(3):
            reg.partial_fit(X, y + 100.0)


# ---------------------------------------------------------------------------------------
# 8. messages name the user's argument and row / class
@pytest.mark.parametrize("sparse", [False, True])
def test_negative_sample_weight_is_named_by_the_users_row(sparse):
    X, y = _data()
    sw = np.ones(y.size)
    sw[7] = -1.0
    X = sp.csr_matrix(X) if sparse else X
    with pytest.raises(ValueError, match=r"sample_weight must hold weights >= 0.*"
                                         r"sample_weight\[7\] = -1\.0"):
        MLPClassifier((4,), max_iter=2, random_state=0).fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("bad", [-5, float("nan"), "2"])
def test_bad_class_weight_value_is_named_by_class(bad):
    X, y = _data()
    with pytest.raises(ValueError, match=r"class_weight\[0\] must be a finite number >= 0"):
        MLPClassifier((4,), max_iter=2, class_weight={0: bad}).fit(X, y)


def test_all_zero_batch_from_class_weight_names_class_weight():
    X, y = _data()
    order = np.argsort(y, kind="stable")
    clf = MLPClassifier((4,), max_iter=2, class_weight={0: 0}, shuffle=False, batch_size=50)
    with pytest.raises(ValueError, match=r"^class_weight: the 50 rows of batch 1"):
        clf.fit(X[order], y[order])


def test_zero_total_weight_from_class_weight_names_class_weight():
    X, y = _data()
    with pytest.raises(ValueError, match=r"\(class_weight\) must sum to more than 0"):
        MLPClassifier((4,), max_iter=2, class_weight={0: 0, 1: 0, 2: 0}).fit(X, y)


def test_score_counts_a_row_without_a_class_as_wrong():
    """accuracy_score cannot compare None with string labels (a TypeError)."""
    X, y = _data()
    ys = np.array(["GALAXY", "QSO", "STAR"])[y]
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), ys)
    Xt = _overflowing_rows(X)
    truth = np.array([ys[0], clf.predict(Xt[1:])[0]])     # row 1 predicted right
    assert clf.score(Xt, truth) == 0.5
    assert clf.score(Xt, truth, sample_weight=[1.0, 3.0]) == 0.75


def test_fit_refusing_values_beyond_float32_keeps_the_fitted_network():
    X, y = _data()
    clf = MLPClassifier((8,), max_iter=5, random_state=0, dtype="float32").fit(X, y)
    before = clf.coefs_[0].copy()
    Xb = X.copy()
    Xb[4, 1] = -1e39
    with pytest.raises(ValueError, match=r"beyond the float32 range .*row 4, column 1"):
        clf.fit(Xb, y)
    np.testing.assert_array_equal(clf.coefs_[0], before)
