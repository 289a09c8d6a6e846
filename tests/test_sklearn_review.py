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


# ---------------------------------------------------------------------------------------
# 3. score counts a row without a class as wrong, multilabel and numeric classes too
def test_multilabel_score_counts_a_row_without_a_class_as_wrong():
    from sklearn.datasets import make_multilabel_classification
    X, Y = make_multilabel_classification(200, 5, n_classes=4, random_state=0)
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), Y)
    Xt = _overflowing_rows(X, 4)
    pred = clf.predict(Xt)
    assert (pred[0] == -1).all()
    Yt = pred.copy()
    Yt[0] = Y[0]
    assert clf.score(Xt, Yt) == pytest.approx(0.75)
    assert clf.score(Xt, Yt, sample_weight=[3, 1, 0, 0]) == pytest.approx(0.25)


@pytest.mark.parametrize("classes", [np.array([3, 7]), np.array([-1, 1]),
                                     np.array([0, 2**62 + 1], dtype=np.uint64)])
def test_numeric_score_counts_a_row_without_a_class_as_wrong(classes):
    X, y = _binary()
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), classes[y])
    Xt = _overflowing_rows(X, 4)
    yt = clf.predict(Xt[1:])
    assert clf.score(Xt[1:], yt) == 1.0
    for first in classes:
        assert clf.score(Xt, np.concatenate([[first], yt])) == pytest.approx(0.75)


# ---------------------------------------------------------------------------------------
# 8. / 9. the labels of predict keep their values; -1 as a class gives None
@pytest.mark.parametrize("dtype", [np.uint8, np.uint64])
def test_unsigned_classes_with_a_row_without_a_class_are_int64(dtype):
    X, y = make_classification(300, 5, n_classes=3, n_informative=3, random_state=0)
    classes = np.array([5, 9, 200], dtype=dtype)
    if dtype == np.uint64:
        classes[1] = np.uint64(2**62 + 1)   # rounded by float64
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), classes[y])
    Xt = _overflowing_rows(X, 4)
    clean, pred = clf.predict(Xt[1:]), clf.predict(Xt)
    assert pred.dtype == np.int64 and pred[0] == -1
    assert [int(v) for v in pred[1:]] == [int(v) for v in clean]


def test_uint64_classes_beyond_int64_give_none():
    X, y = _binary()
    classes = np.array([1, 2**63 + 5], dtype=np.uint64)
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), classes[y])
    Xt = _overflowing_rows(X)
    pred = clf.predict(Xt)
    assert pred.dtype == object and pred[0] is None
    assert list(pred[1:]) == list(clf.predict(Xt[1:]))


@pytest.mark.parametrize("classes", [np.array([-1, 1]), np.array([-1.0, 1.0, 2.0])])
def test_minus_one_as_a_class_gives_none_to_a_row_without_a_class(classes):
    X, y = make_classification(300, 5, n_classes=classes.size, n_informative=3,
                               random_state=0)
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), classes[y])
    Xt = _overflowing_rows(X)
    pred = clf.predict(Xt)
    assert pred.dtype == object and pred[0] is None
    assert list(pred[1:]) == list(clf.predict(Xt[1:]))


# ---------------------------------------------------------------------------------------
# 11. score with all-zero sample weights: scikit-learn's ValueError, not a ZeroDivisionError
def test_score_with_zero_weights_and_a_row_without_a_class_is_a_value_error():
    X, y = make_classification(300, 5, n_classes=3, n_informative=3, random_state=0)
    ys = np.array(["a", "b", "c"])[y]
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X.astype(np.float32), ys)
    Xt = _overflowing_rows(X)
    with pytest.raises(ValueError, match="non-zero"):
        clf.score(Xt, ys[:3], sample_weight=np.zeros(3))


# ---------------------------------------------------------------------------------------
# 4. weights the model's dtype cannot sum are refused before the cast, by their name
@pytest.mark.parametrize("fit_kw, est_kw, name", [
    (dict(sample_weight=np.full(300, 1e37)), {}, "sample_weight"),
    (dict(sample_weight=np.full(300, 1e37)), dict(solver="lbfgs"), "sample_weight"),
    (dict(sample_weight=np.full(300, 1e-44)), {}, "sample_weight"),
    ({}, dict(class_weight={0: 1e37, 1: 1e37}), "class_weight"),
    (dict(sample_weight=np.full(300, 1e19)), dict(class_weight={0: 1e19}),
     r"sample_weight x class_weight")])
def test_weights_beyond_a_float32_models_range_are_refused_by_name(fit_kw, est_kw, name):
    X, y = _binary()
    est = MLPClassifier((4,), dtype="float32", max_iter=3, random_state=0, **est_kw)
    with pytest.raises(ValueError, match=rf"^{name} ranges from .* in the model's float32 "
                                         r".*rescale the weights"):
        est.fit(X, y, **fit_kw)


# ---------------------------------------------------------------------------------------
# 5. one class_weight rule: fastmlp.fit's "balanced" counts by sample_weight too
def test_fastmlp_fit_balanced_counts_classes_by_sample_weight_as_the_estimator():
    from fastmlp import MLP
    from fastmlp.training.fit_inputs import sample_weights
    X, y = _binary()
    sw = np.random.default_rng(0).integers(1, 5, size=y.size).astype(np.float64)
    model = MLP([5, 4, 1], dtype="float64", backend="numpy")
    got = sample_weights(model, "bce", y[:, None].astype(np.float64), sw, "balanced")
    rows = np.repeat(np.arange(y.size), sw.astype(int))     # integer weights: repeated rows
    repeated = sample_weights(model, "bce", y[rows, None].astype(np.float64), None, "balanced")
    np.testing.assert_allclose(got[rows] / sw[rows], repeated)
    est = MLPClassifier(class_weight="balanced")
    est.classes_ = np.array([0, 1])
    np.testing.assert_allclose(got, sw * est._sample_class_weights(y, sw))


# ---------------------------------------------------------------------------------------
# 6. the float32-range check: no temporary the size of X, once per fit
def test_the_float32_range_check_allocates_no_copy_of_X():
    import tracemalloc

    import fastmlp.sklearn as sk
    X = np.random.default_rng(0).normal(size=(20000, 50))      # 8 MB
    tracemalloc.start()
    try:
        sk._check_fits_dtype(X, np.float32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes // 8
    X[123, 7] = -1e39
    with pytest.raises(ValueError, match=r"1 value beyond the float32 range .*row 123, "
                                         r"column 7, -1e\+39"):
        sk._check_fits_dtype(X, np.float32)


def test_fit_checks_the_float32_range_once(monkeypatch):
    import fastmlp.sklearn as sk
    calls = []
    check = sk._check_fits_dtype
    monkeypatch.setattr(sk, "_check_fits_dtype", lambda X, dt: calls.append(dt) or check(X, dt))
    X, y = _binary()
    MLPClassifier((4,), dtype="float32", max_iter=2, random_state=0).fit(X, y)
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------
# 7. the partial_fit judgement takes a forward pass, no gradient
def test_partial_fit_judges_the_call_without_a_gradient(monkeypatch):
    from fastmlp.sklearn import _BaseMLP
    X, y = _binary()
    clf = MLPClassifier((8,), max_iter=5, random_state=0).fit(X, y)

    def refuse(*args, **kwargs):
        raise AssertionError("a full gradient was computed")
    monkeypatch.setattr(_BaseMLP, "_loss_grad", refuse)
    clf.partial_fit(X, y)
    assert np.isfinite(clf.loss_)


# ---------------------------------------------------------------------------------------
# 10. with class_weight, the tags say that multilabel targets are not taken
def test_class_weight_passes_scikit_learns_multilabel_checks():
    from sklearn.utils import get_tags
    from sklearn.utils.estimator_checks import check_estimator
    assert get_tags(MLPClassifier()).classifier_tags.multi_label
    est = MLPClassifier(class_weight="balanced", random_state=0)
    assert not get_tags(est).classifier_tags.multi_label
    assert not _failed_checks(est, check_estimator)


def _failed_checks(est, check_estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    return [(r["check_name"], r["exception"]) for r in results if r["status"] == "failed"]


# ---------------------------------------------------------------------------------------
# 11. verbose is checked as scikit-learn's constraint says
@pytest.mark.parametrize("bad", ["False", -1, 0.5, None])
def test_verbose_other_than_a_bool_or_a_count_is_refused(bad):
    X, y = _binary()
    with pytest.raises(ValueError, match=r"verbose must be True, False or an integer >= 0"):
        MLPClassifier((4,), max_iter=2, verbose=bad).fit(X, y)


def test_verbose_as_a_count_is_taken(capsys):
    X, y = _binary()
    MLPClassifier((4,), max_iter=2, verbose=2, random_state=0).fit(X, y)
    assert "Iteration 1, loss =" in capsys.readouterr().out


def test_review2_partial_fit_nan_end_loss_is_not_silent():
    """Finite weights whose logits overflow in float32 gave a NaN loss after the call: it
    was dropped and nothing warned (the model predicted -1 everywhere)."""
    import warnings as _w
    X = np.random.default_rng(0).normal(size=(64, 5))
    y = (X[:, 0] > 0).astype(int)
    clf = MLPClassifier((16, 16), solver="sgd", momentum=0, learning_rate_init=1e15,
                                random_state=0, dtype="float32", batch_size=64)
    with _w.catch_warnings(record=True) as got:
        _w.simplefilter("always")
        clf.partial_fit(X, y, classes=[0, 1])
    said = [str(w.message) for w in got if issubclass(w.category, TrainingRunaway)]
    assert said and "the loss of the call's first batch" in said[0]


def test_review2_weights_whose_products_overflow_are_refused_by_name():
    """One 3e38 among ones: the float64 total fits float32, but weight x loss in the
    kernels overflowed (TrainingDiverged: 'Try a smaller lr'); refused up front, saying
    why and to rescale."""
    X, y = make_classification(300, 5, random_state=0)
    sw = np.ones(300)
    sw[0] = 3e38
    clf = MLPClassifier((4,), max_iter=2, random_state=0, dtype="float32")
    with pytest.raises(ValueError, match=r"sample_weight ranges from 1 to 3e\+38: in the "
                                         r"model's float32 their total overflows \(judged as "
                                         r"the largest times their count, 300.*rescale"):
        clf.fit(X, y, sample_weight=sw)
    sw[0] = 1e3                                       # a large but usable weight
    clf.fit(X, y, sample_weight=sw)
    assert np.all(np.isfinite(clf.loss_curve_))


def test_review2_a_tuple_class_weight_key_is_refused():
    X, y = make_classification(100, 4, random_state=0)
    with pytest.raises(ValueError, match=r"class_weight key \(0, 1\) is not a class"):
        MLPClassifier((4,), max_iter=2, class_weight={(0, 1): 3.0}).fit(X, y)
