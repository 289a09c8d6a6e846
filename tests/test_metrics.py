"""fastmlp.metrics against scikit-learn on random data, plus the documented edge cases."""

import numpy as np
import pytest

skm = pytest.importorskip("sklearn.metrics")

from fastmlp import metrics as M  # noqa: E402


def _binary(n, seed, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    s = rng.normal(size=n) + 1.2 * y
    if ties:
        s = np.round(s, 1)  # many tied scores
    return y, s


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_matches_sklearn(seed, ties):
    y, s = _binary(500 + 37 * seed, seed, ties)
    assert M.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_roc_auc_all_tied_is_half_and_positive_argument():
    y = np.array([0, 1, 0, 1, 1])
    assert M.roc_auc(y, np.zeros(5)) == pytest.approx(0.5)
    # positive=0 means label 0 is the positive class: AUC of the mirrored problem
    y, s = _binary(300, 7, ties=True)
    assert M.roc_auc(y, -s, positive=0) == pytest.approx(skm.roc_auc_score(1 - y, -s))
    lab = np.where(y == 1, 5, 2)
    assert M.roc_auc(lab, s, positive=5) == pytest.approx(skm.roc_auc_score(y, s))


def test_roc_auc_errors():
    with pytest.raises(ValueError, match="both classes"):
        M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="binary 0/1"):
        M.roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="3 samples but score has 2"):
        M.roc_auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN or inf"):
        M.roc_auc([0, 1, 1], [0.1, np.nan, 0.2])
    with pytest.raises(ValueError, match="1-D"):
        M.roc_auc([0, 1], np.ones((2, 2)))


@pytest.mark.parametrize("seed", range(4))
def test_accuracy_confusion_completeness_contamination_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, c = 400, 3
    yt = rng.integers(0, c, n)
    yp = np.where(rng.random(n) < 0.7, yt, rng.integers(0, c, n))
    assert M.accuracy(yt, yp) == pytest.approx(skm.accuracy_score(yt, yp))
    np.testing.assert_array_equal(M.confusion_matrix(yt, yp),
                                  skm.confusion_matrix(yt, yp, labels=range(c)))
    for pos in range(c):
        assert M.completeness(yt, yp, pos) == pytest.approx(
            skm.recall_score(yt, yp, labels=[pos], average="macro"))
        assert M.contamination(yt, yp, pos) == pytest.approx(
            1 - skm.precision_score(yt, yp, labels=[pos], average="macro"))
        assert M.precision(yt, yp, pos) + M.contamination(yt, yp, pos) == pytest.approx(1)


def test_confusion_matrix_n_classes_and_errors():
    cm = M.confusion_matrix([0, 1, 1], [0, 1, 0], n_classes=4)
    assert cm.shape == (4, 4) and cm.sum() == 3 and cm[1, 0] == 1
    with pytest.raises(ValueError, match="n_classes=2"):
        M.confusion_matrix([0, 2], [0, 1], n_classes=2)
    with pytest.raises(ValueError, match="same length"):
        M.confusion_matrix([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="integer class labels"):
        M.confusion_matrix([0, 1.5], [0, 1])
    with pytest.raises(ValueError, match=">= 0"):
        M.confusion_matrix([0, -1], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        M.accuracy([], [])


def test_zero_division_conventions():
    # nothing predicted positive: the contamination of an empty selection is 0/0
    assert np.isnan(M.contamination([1, 0, 1], [0, 0, 0], positive=1))
    assert np.isnan(M.precision([1, 0, 1], [0, 0, 0], positive=1))
    assert M.completeness([1, 0, 1], [0, 0, 0], positive=1) == 0.0
    # no true positives: completeness undefined
    assert np.isnan(M.completeness([0, 0], [1, 0], positive=1))
    assert M.contamination([0, 0], [1, 0], positive=1) == 1.0
    with pytest.raises(ValueError, match="positive must be a class label"):
        M.completeness([0, 1], [0, 1], positive="QSO")


@pytest.mark.parametrize("seed", range(3))
def test_log_loss_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 300
    y = rng.integers(0, 2, n)
    p = rng.uniform(0.02, 0.98, n)
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    assert M.log_loss(y, np.stack([1 - p, p], 1)) == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    y3 = rng.integers(0, 3, n)
    P = rng.dirichlet(np.ones(3), n)
    assert M.log_loss(y3, P) == pytest.approx(skm.log_loss(y3, P, labels=[0, 1, 2]), rel=1e-12)


def test_log_loss_clips_and_checks():
    assert np.isfinite(M.log_loss([1, 0], [0.0, 1.0]))
    # scikit-learn's clip: the float epsilon of proba's dtype; an explicit eps still works
    assert M.log_loss([1, 0], [0.0, 1.0]) == pytest.approx(-np.log(np.finfo(np.float64).eps))
    assert M.log_loss([1, 0], [0.0, 1.0], eps=1e-15) == pytest.approx(-np.log(1e-15))
    with pytest.raises(ValueError, match="eps must be"):
        M.log_loss([1, 0], [0.2, 0.8], eps=0)
    with pytest.raises(ValueError, match="probabilities in"):
        M.log_loss([1, 0], [1.5, 0.2])
    with pytest.raises(ValueError, match="only 2 columns"):
        M.log_loss([0, 2], [0.3, 0.2])
    with pytest.raises(ValueError, match="same length"):
        M.log_loss([0, 1, 1], [0.3, 0.2])


@pytest.mark.parametrize("ties", [False, True])
def test_completeness_contamination_curve_matches_sklearn_pr_curve(ties):
    y, s = _binary(600, 3, ties)
    curve = M.completeness_contamination_curve(y, s, positive=1)
    assert np.all(np.diff(curve.thresholds) < 0)
    assert np.all(np.diff(curve.completeness) >= 0) and curve.completeness[-1] == 1.0
    prec, rec, thr = skm.precision_recall_curve(y, s)
    lookup = {t: (p, r) for p, r, t in zip(prec[:-1], rec[:-1], thr)}
    for t, c, k in zip(curve.thresholds, curve.completeness, curve.contamination):
        p, r = lookup[t]
        assert c == pytest.approx(r) and k == pytest.approx(1 - p)
    # each point equals the metrics of the explicit cut
    k = len(curve.thresholds) // 3
    yp = (s >= curve.thresholds[k]).astype(int)
    assert curve.completeness[k] == pytest.approx(M.completeness(y, yp, 1))
    assert curve.contamination[k] == pytest.approx(M.contamination(y, yp, 1))
    assert curve.n_selected[k] == yp.sum()


def test_curve_with_positive_zero():
    y, s = _binary(200, 9)
    c0 = M.completeness_contamination_curve(1 - y, s, positive=0)
    c1 = M.completeness_contamination_curve(y, s, positive=1)
    np.testing.assert_allclose(c0.completeness, c1.completeness)
    with pytest.raises(ValueError, match="no samples of the positive class"):
        M.completeness_contamination_curve(np.zeros(4, int), np.arange(4.0), positive=1)


def test_classification_report_binary_and_multiclass():
    rng = np.random.default_rng(1)
    n = 500
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    yp = (p >= 0.5).astype(int)
    rep = M.classification_report(y, yp, proba=p, positive=0, class_names=["QSO", "STAR"])
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, yp))
    assert rep["positive_name"] == "QSO" and rep["positive"] == 0
    assert rep["completeness"] == pytest.approx(M.completeness(y, yp, 0))
    assert rep["contamination"] == pytest.approx(M.contamination(y, yp, 0))
    assert rep["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))  # symmetric in the class
    assert rep["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert rep["per_class"]["STAR"]["support"] == int(y.sum())
    text = M.format_report(rep)
    assert "QSO (positive class 0): completeness" in text and "STAR" in text
    cc = rep["completeness_at_contamination"]
    assert cc["max_contamination"] == 0.06
    assert cc["completeness"] == pytest.approx(
        M.completeness_at_contamination(y, 1 - p, 0, 0.06)[0])
    assert "contamination <= 0.06: completeness" in text
    hopeless = M.classification_report([0, 1, 0, 1], [0, 0, 0, 0], proba=[0.9, 0.1, 0.8, 0.2],
                                       positive=1)
    assert hopeless["completeness_at_contamination"]["completeness"] == 0.0
    assert "no cut on P(1) reaches contamination <= 0.06" in M.format_report(hopeless)

    y3 = rng.integers(0, 3, n)
    P = rng.dirichlet(np.ones(3), n)
    yp3 = P.argmax(1)
    rep3 = M.classification_report(y3, yp3, proba=P, positive="QSO",
                                   class_names=["GALAXY", "QSO", "STAR"])
    assert rep3["positive"] == 1
    assert rep3["roc_auc"] == pytest.approx(skm.roc_auc_score(y3 == 1, P[:, 1]))
    assert rep3["confusion_matrix"].shape == (3, 3)
    macro = M.classification_report(y3, yp3, proba=P)
    assert macro["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y3, P, multi_class="ovr", average="macro"))
    with pytest.raises(ValueError, match="not one of the class names"):
        M.classification_report(y3, yp3, positive="quasar", class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="class_names has 2 names"):
        M.classification_report(y3, yp3, class_names=["a", "b"])


@pytest.mark.parametrize("shape", [(50,), (50, 3)])
def test_rmse_r2_match_sklearn(shape):
    rng = np.random.default_rng(2)
    yt = rng.normal(size=shape)
    yp = yt + 0.3 * rng.normal(size=shape)
    assert M.rmse(yt, yp) == pytest.approx(skm.root_mean_squared_error(yt, yp))
    assert M.r2(yt, yp) == pytest.approx(skm.r2_score(yt, yp))


def test_r2_constant_target_and_errors():
    assert M.r2([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert M.r2([2.0, 2.0], [2.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match="must match"):
        M.rmse([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="NaN or inf"):
        M.r2([1.0, np.inf], [1.0, 2.0])


def test_completeness_at_contamination_is_the_best_admissible_cut():
    y, s = _binary(400, 11)
    c, thr = M.completeness_at_contamination(y, s, 1, max_contamination=0.1)
    yp = (s >= thr).astype(int)
    assert M.contamination(y, yp, 1) <= 0.1
    assert M.completeness(y, yp, 1) == pytest.approx(c)
    # brute force over every cut: none admissible is more complete
    for t in np.unique(s):
        q = (s >= t).astype(int)
        if M.contamination(y, q, 1) <= 0.1:
            assert M.completeness(y, q, 1) <= c + 1e-12
    assert M.completeness_at_contamination(y, s, 1, 1.0)[0] == 1.0
    yy, ss = [1, 1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1]
    assert M.completeness_at_contamination(yy, ss, 1, 0.0) == (pytest.approx(2 / 3), 0.8)
    assert M.completeness_at_contamination(yy, ss, 1, 0.25) == (1.0, 0.6)
    with pytest.raises(ValueError, match="max_contamination"):
        M.completeness_at_contamination(y, s, 1, 1.5)
