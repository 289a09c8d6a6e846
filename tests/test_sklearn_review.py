"""fastmlp.sklearn after a review of the probe fixes: partial_fit judged like with like,
overflowing rows get no class in every case, score on rows without a class, weight ranges for
float32 models, one class_weight rule, label dtypes of predict, -1 as a class, tags with
class_weight, and checked verbose."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional dependency")

from sklearn.datasets import make_classification  # noqa: E402

from fastmlp.sklearn import MLPClassifier  # noqa: E402
from fastmlp.training.loop import TrainingRunaway  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_kernel_thread"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _binary():
    return make_classification(300, 5, random_state=0)


def _overflowing_rows(X, n=3, value=3e38):
    """float32 rows, the first one whose logits overflow (finite input)."""
    Xt = X[:n].astype(np.float32)
    Xt[0] = value
    return Xt


# ---------------------------------------------------------------------------------------
# 1. partial_fit compares the first batch's rows before and after the call
def test_partial_fit_with_a_mislabeled_row_alone_in_the_last_batch_is_not_a_blow_up():
    X, y = make_classification(1000, 10, n_classes=2, class_sep=3, flip_y=0, random_state=0)
    clf = MLPClassifier((32,), max_iter=200, random_state=0, shuffle=False).fit(X, y)
    chunk = y[:201].copy()
    chunk[200] = 1 - chunk[200]          # the uneven last batch: one row, mislabeled
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingRunaway)
        clf.partial_fit(X[:201], chunk)
    assert np.isfinite(clf.loss_)


# ---------------------------------------------------------------------------------------
# 2. every row with a non-finite logit has NaN probabilities and no class
def test_binary_row_whose_logit_overflows_gets_nan_probabilities_and_no_class():
    X, y = _binary()
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), y)
    Xt = _overflowing_rows(X)
    assert not np.isfinite(clf._forward(Xt)[0]).all()
    proba = clf.predict_proba(Xt)
    assert np.isnan(proba[0]).all() and np.isfinite(proba[1:]).all()
    assert clf.predict(Xt)[0] == -1
    np.testing.assert_array_equal(clf.predict(Xt), clf.model_.predict(Xt))


def test_multiclass_rows_with_an_infinite_logit_are_nan_as_in_model_predict_proba():
    X, y = make_classification(300, 5, n_classes=3, n_informative=3, random_state=0)
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), y)
    Xt = np.concatenate([_overflowing_rows(X, 1), np.zeros((1, 5), np.float32),
                         X[:2].astype(np.float32)])
    Xt[1, 2] = 3e38                      # logits -inf, -3.9e37, -1.1e38: a finite softmax
    logits = clf._forward(Xt)
    bad = ~np.isfinite(logits).all(axis=1)
    assert bad[:2].all() and not bad[2:].any() and not np.isnan(logits[1]).any()
    proba = clf.predict_proba(Xt)
    np.testing.assert_array_equal(np.isnan(proba).any(axis=1), bad)
    np.testing.assert_array_equal(np.isnan(proba), np.isnan(clf.model_.predict_proba(Xt)))
    np.testing.assert_array_equal(clf.predict(Xt) == -1, bad)
