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
