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


def test_log_loss_per_row_gives_each_rows_term():
    """log_loss_per_row: -log p[i, y_i] for each row (clipped as log_loss), whose
    (weighted) mean is log_loss; the worst-predicted row has the largest."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 200)
    P = rng.dirichlet(np.ones(3), 200)
    P[7] = [0.0, 1.0, 0.0]
    y[7] = 0
    rows = M.log_loss_per_row(y, P)
    assert rows.shape == (200,) and rows.dtype == np.float64
    np.testing.assert_allclose(rows[8:], -np.log(P[np.arange(8, 200), y[8:]]), rtol=1e-15)
    assert rows[7] == pytest.approx(-np.log(np.finfo(np.float64).eps))
    assert int(np.argmax(rows)) == 7
    w = rng.uniform(0, 2, 200)
    assert M.log_loss(y, P, sample_weight=w) == pytest.approx(np.average(rows, weights=w),
                                                              rel=1e-12)
    assert M.log_loss_per_row([1, 0], [0.9, 0.2]) == pytest.approx(-np.log([0.9, 0.8]))
    assert "log_loss_per_row" in M.__all__


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


# ---------------------------------------------------------------------------------------
# sample_weight: scikit-learn's weighted metrics
def _weighted_data(seed, n=400):
    """Every kind of input the weighted metrics take, with random weights >= 0 of which
    about 15 % are exactly zero."""
    rng = np.random.default_rng(seed)
    y3 = rng.integers(0, 3, n)
    pred3 = np.where(rng.random(n) < 0.6, y3, rng.integers(0, 3, n))
    yb = (rng.random(n) < 0.35).astype(np.int64)
    score = np.round(rng.normal(size=n) + 1.2 * yb, 1)               # ties too
    pb = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.5 * yb - 0.5)))
    P3 = rng.dirichlet(np.ones(3), n)
    z = rng.normal(size=(n, 2))
    w = rng.random(n) * 3.0
    w[rng.random(n) < 0.15] = 0.0
    return {"labels": (y3, pred3), "score": (yb, score), "proba": (yb, pb), "proba3": (y3, P3),
            "regress": (z[:, 0], z[:, 0] + 0.4 * rng.normal(size=n)),
            "regress2": (z, z + 0.4 * rng.normal(size=(n, 2)))}, w


def _sk_curve(y, s, sample_weight):
    """scikit-learn's precision-recall curve as (thresholds descending, recall,
    1 - precision), fastmlp's completeness_contamination_curve layout."""
    prec, rec, thr = skm.precision_recall_curve(y, s, sample_weight=sample_weight)
    return np.stack([thr[::-1], rec[:-1][::-1], 1.0 - prec[:-1][::-1]])


def _sk_at_contamination(y, s, target, sample_weight):
    """The most complete cut with contamination <= target (the highest threshold among
    equals), read off scikit-learn's curve: (threshold, completeness, contamination)."""
    thr, rec, con = _sk_curve(y, s, sample_weight)
    ok = np.flatnonzero(con <= target)
    k = ok[np.argmax(rec[ok])]
    return np.array([thr[k], rec[k], con[k]])


def _sk_at_completeness(y, s, target, sample_weight):
    thr, rec, con = _sk_curve(y, s, sample_weight)
    ok = np.flatnonzero(rec >= target - 1e-12)
    k = ok[np.flatnonzero(con[ok] <= con[ok].min())[-1]]
    return np.array([thr[k], rec[k], con[k]])


def _cut(c):
    return np.array([c.threshold, c.completeness, c.contamination])


# (metric name, fastmlp function, scikit-learn function, kwargs): kwargs["data"] names the
# inputs of _weighted_data, "fm" / "sk" the extra arguments of each side
WEIGHTED_METRICS = [
    ("accuracy", M.accuracy, skm.accuracy_score, {"data": "labels"}),
    ("confusion_matrix", M.confusion_matrix, skm.confusion_matrix, {"data": "labels"}),
    ("completeness", M.completeness, skm.recall_score,
     {"data": "labels", "fm": {"positive": 2}, "sk": {"labels": [2], "average": "macro"}}),
    ("precision", M.precision, skm.precision_score,
     {"data": "labels", "fm": {"positive": 0}, "sk": {"labels": [0], "average": "macro"}}),
    ("contamination", M.contamination,
     lambda yt, yp, **kw: 1.0 - skm.precision_score(yt, yp, **kw),
     {"data": "labels", "fm": {"positive": 1}, "sk": {"labels": [1], "average": "macro"}}),
    ("log_loss binary", M.log_loss, skm.log_loss, {"data": "proba"}),
    ("log_loss multiclass", M.log_loss, skm.log_loss, {"data": "proba3"}),
    ("roc_auc", M.roc_auc, skm.roc_auc_score, {"data": "score"}),
    ("brier_score binary", M.brier_score, skm.brier_score_loss, {"data": "proba"}),
    ("brier_score multiclass", M.brier_score, skm.brier_score_loss,
     {"data": "proba3", "sk": {"labels": [0, 1, 2], "scale_by_half": False}}),
    ("rmse", M.rmse, skm.root_mean_squared_error, {"data": "regress"}),
    ("rmse 2 outputs", M.rmse, skm.root_mean_squared_error, {"data": "regress2"}),
    ("r2", M.r2, skm.r2_score, {"data": "regress"}),
    ("r2 2 outputs", M.r2, skm.r2_score, {"data": "regress2"}),
    ("completeness_contamination_curve",
     lambda y, s, **kw: np.stack(M.completeness_contamination_curve(y, s, 1, **kw)[:3]),
     _sk_curve, {"data": "score"}),
    ("threshold_at_contamination",
     lambda y, s, **kw: _cut(M.threshold_at_contamination(y, s, 1, 0.3, **kw)),
     lambda y, s, **kw: _sk_at_contamination(y, s, 0.3, **kw), {"data": "score"}),
    ("threshold_at_completeness",
     lambda y, s, **kw: _cut(M.threshold_at_completeness(y, s, 1, 0.8, **kw)),
     lambda y, s, **kw: _sk_at_completeness(y, s, 0.8, **kw), {"data": "score"}),
    ("completeness_at_contamination",
     lambda y, s, **kw: np.array(M.completeness_at_contamination(y, s, 1, 0.3, **kw)),
     lambda y, s, **kw: _sk_at_contamination(y, s, 0.3, **kw)[[1, 0]], {"data": "score"}),
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name,fm,sk,kwargs", WEIGHTED_METRICS,
                         ids=[r[0] for r in WEIGHTED_METRICS])
def test_weighted_metrics_match_sklearn(name, fm, sk, kwargs, seed):
    data, w = _weighted_data(seed)
    a, b = data[kwargs["data"]]
    got = fm(a, b, **kwargs.get("fm", {}), sample_weight=w)
    want = sk(a, b, **kwargs.get("sk", {}), sample_weight=w)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # the weights matter: the unweighted value differs
    plain = np.asarray(fm(a, b, **kwargs.get("fm", {})))
    assert plain.shape != np.shape(want) or not np.allclose(plain, want, rtol=1e-9, atol=0)


def test_weighted_report_matches_sklearn():
    data, w = _weighted_data(5)
    y3, P3 = data["proba3"]
    pred = P3.argmax(1)
    rep = M.classification_report(y3, pred, proba=P3, positive=1, sample_weight=w)
    assert rep["n"] == y3.size and rep["sum_weight"] == pytest.approx(w.sum(), rel=1e-12)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y3, pred, sample_weight=w),
                                            rel=1e-12)
    np.testing.assert_allclose(rep["confusion_matrix"],
                               skm.confusion_matrix(y3, pred, sample_weight=w), rtol=1e-12)
    assert rep["completeness"] == pytest.approx(
        skm.recall_score(y3, pred, labels=[1], average="macro", sample_weight=w), rel=1e-12)
    assert rep["log_loss"] == pytest.approx(skm.log_loss(y3, P3, sample_weight=w), rel=1e-12)
    assert rep["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y3 == 1, P3[:, 1], sample_weight=w), rel=1e-12)
    assert "sum of weights" in M.format_report(rep)


# every weighted metric: integer weights are the same as repeating rows (weight 0: the row
# left out).  name, call(a, b, **kw) -> array, data
REPEATABLE = [(name, fm, kw["data"], kw.get("fm", {}))
              for name, fm, _, kw in WEIGHTED_METRICS] + [
    ("reliability_curve",
     lambda y, p, **kw: np.stack(M.reliability_curve(y, p, **kw)[2:4]), "proba", {}),
    ("expected_calibration_error", M.expected_calibration_error, "proba", {}),
    ("reliability_curve top-label",
     lambda y, p, **kw: np.stack(M.reliability_curve(y, p, n_bins=5, **kw)[2:4]),
     "proba3", {}),
    ("classification_report",
     lambda y, p, **kw: np.r_[[M.classification_report(y, p.argmax(1), proba=p, **kw)[k]
                               for k in ("accuracy", "log_loss", "roc_auc")]], "proba3", {}),
]


@pytest.mark.parametrize("name,fm,data,extra", REPEATABLE, ids=[r[0] for r in REPEATABLE])
def test_integer_weights_equal_repeated_rows(name, fm, data, extra):
    d, _ = _weighted_data(1, n=120)
    a, b = d[data]
    w = np.tile([2, 1, 0], 40)
    w[5::7] = 3
    rows = np.repeat(np.arange(a.shape[0]), w)
    np.testing.assert_allclose(fm(a, b, **extra, sample_weight=w),
                               fm(a[rows], b[rows], **extra), rtol=1e-12, atol=1e-15)


def test_integer_weights_small_example():
    # weights [2, 1, 0] are rows 0, 0, 1
    assert M.accuracy([1, 0, 1], [1, 1, 0], sample_weight=[2, 1, 0]) == pytest.approx(2 / 3)
    cm = M.confusion_matrix([1, 0, 1], [1, 1, 0], sample_weight=[2, 1, 0])
    assert cm.dtype == np.int64 and cm.tolist() == [[0, 1], [0, 2]]
    assert M.confusion_matrix([1, 0], [1, 1], sample_weight=[0.5, 1.0]).dtype == np.float64
    assert M.log_loss([1, 0, 1], [0.8, 0.3, 0.1], sample_weight=[2, 1, 0]) == pytest.approx(
        -(2 * np.log(0.8) + np.log(0.7)) / 3)


def test_weighted_rates_that_are_zero_over_zero_are_nan():
    # the only positive weighs 0: completeness 0/0; nothing selected with weight: 0/0
    assert np.isnan(M.completeness([1, 0, 0], [1, 0, 1], 1, sample_weight=[0, 1, 1]))
    assert np.isnan(M.contamination([1, 0, 0], [1, 0, 0], 1, sample_weight=[0, 1, 1]))
    assert np.isnan(M.precision([1, 0, 0], [1, 0, 0], 1, sample_weight=[0, 1, 1]))
    with pytest.raises(ValueError, match="positive weight"):
        M.roc_auc([1, 0, 0], [0.9, 0.1, 0.2], sample_weight=[0, 1, 1])
    with pytest.raises(ValueError, match="positive sample_weight"):
        M.completeness_contamination_curve([1, 0, 0], [0.9, 0.1, 0.2], 1,
                                           sample_weight=[0, 1, 1])


BAD_WEIGHTS = [
    ([1.0, 1.0], ValueError, r"sample_weight has 2 weights but y_true has 3 samples; "
                             r"expected one weight per sample"),
    ([1.0], ValueError, r"sample_weight has 1 weight but y_true has 3 samples; "),
    ([1.0, -0.5, 1.0], ValueError, r"sample_weight must be >= 0, got 1 negative weight \("),
    ([1.0, np.nan, 1.0], ValueError, r"sample_weight must be finite, got 1 NaN or inf value$"),
    ([1.0, np.inf, 1.0], ValueError, r"sample_weight must be finite"),
    (np.ones((3, 1)), ValueError, r"sample_weight must be 1-D \(n_samples,\).*shape \(3, 1\)"),
    (np.ones((3, 2)), ValueError, r"sample_weight must be 1-D"),
    ([0, 0, 0], ValueError, r"sample_weight is all zero: expected at least one positive"),
    (["a", "b", "c"], TypeError, r"sample_weight must hold numbers"),
]
WEIGHTED_CALLS = [
    ("accuracy", lambda w: M.accuracy([0, 1, 1], [0, 1, 0], sample_weight=w)),
    ("confusion_matrix", lambda w: M.confusion_matrix([0, 1, 1], [0, 1, 0], sample_weight=w)),
    ("completeness", lambda w: M.completeness([0, 1, 1], [0, 1, 0], 1, sample_weight=w)),
    ("precision", lambda w: M.precision([0, 1, 1], [0, 1, 0], 1, sample_weight=w)),
    ("contamination", lambda w: M.contamination([0, 1, 1], [0, 1, 0], 1, sample_weight=w)),
    ("log_loss", lambda w: M.log_loss([0, 1, 1], [0.2, 0.7, 0.4], sample_weight=w)),
    ("roc_auc", lambda w: M.roc_auc([0, 1, 1], [0.2, 0.7, 0.4], sample_weight=w)),
    ("brier_score", lambda w: M.brier_score([0, 1, 1], [0.2, 0.7, 0.4], sample_weight=w)),
    ("rmse", lambda w: M.rmse([0.0, 1.0, 1.0], [0.2, 0.7, 0.4], sample_weight=w)),
    ("r2", lambda w: M.r2([0.0, 1.0, 1.0], [0.2, 0.7, 0.4], sample_weight=w)),
    ("curve", lambda w: M.completeness_contamination_curve([0, 1, 1], [.2, .7, .4], 1,
                                                           sample_weight=w)),
    ("threshold_at_contamination",
     lambda w: M.threshold_at_contamination([0, 1, 1], [.2, .7, .4], 1, 0.5, sample_weight=w)),
    ("threshold_at_completeness",
     lambda w: M.threshold_at_completeness([0, 1, 1], [.2, .7, .4], 1, 0.5, sample_weight=w)),
    ("completeness_at_contamination",
     lambda w: M.completeness_at_contamination([0, 1, 1], [.2, .7, .4], 1, sample_weight=w)),
    ("reliability_curve", lambda w: M.reliability_curve([0, 1, 1], [.2, .7, .4],
                                                        sample_weight=w)),
    ("expected_calibration_error",
     lambda w: M.expected_calibration_error([0, 1, 1], [.2, .7, .4], sample_weight=w)),
    ("classification_report",
     lambda w: M.classification_report([0, 1, 1], [0, 1, 0], proba=[.2, .7, .4],
                                       sample_weight=w)),
]


@pytest.mark.parametrize("w,err,msg", BAD_WEIGHTS, ids=["length", "one", "negative", "nan", "inf",
                                                        "column", "2-D", "all zero",
                                                        "strings"])
@pytest.mark.parametrize("name,call", WEIGHTED_CALLS, ids=[c[0] for c in WEIGHTED_CALLS])
def test_bad_sample_weight_is_refused_with_a_clear_message(name, call, w, err, msg):
    call(None)                                   # the unweighted call is fine
    with pytest.raises(err, match=msg):
        call(w)


# ---------------------------------------------------------------------------------------
# log_loss: scikit-learn's clipping and its treatment of rows that do not sum to 1
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_loss_clips_at_the_dtype_eps_like_sklearn(dtype):
    rng = np.random.default_rng(3)
    rtol = 1e-12 if dtype == np.float64 else 1e-6   # scikit-learn sums float32 in float32
    eps = np.finfo(dtype).eps
    y = rng.integers(0, 2, 200)
    p = rng.uniform(0, 1, 200)
    p[:6] = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    y[:6] = [0, 1, 1, 0, 1, 1]                     # two right, four confidently wrong
    p = p.astype(dtype)
    assert M.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), rel=rtol)
    w = rng.random(200)
    assert M.log_loss(y, p, sample_weight=w) == pytest.approx(
        skm.log_loss(y, p, sample_weight=w), rel=rtol)
    # one confident mistake costs -log(eps of the dtype): 36.04 for float64, 15.94 float32
    assert M.log_loss([1], np.array([0.0], dtype)) == pytest.approx(-np.log(eps), rel=1e-12)
    assert M.log_loss([1], np.array([1.0], dtype)) == pytest.approx(-np.log1p(-eps), rel=1e-9)
    y3 = rng.integers(0, 3, 300)
    P = rng.dirichlet(np.ones(3), 300)
    P[:3] = np.eye(3)
    y3[:3] = [1, 1, 2]                             # one right, two wrong with P = 0
    P = P.astype(dtype)
    assert M.log_loss(y3, P) == pytest.approx(skm.log_loss(y3, P), rel=rtol)
    # an explicit eps is still honoured
    assert M.log_loss([1, 0], np.array([0.0, 1.0], dtype), eps=1e-15) == \
        pytest.approx(-np.log(1e-15))


def test_log_loss_does_not_renormalise_rows_like_sklearn():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 100)
    P = rng.dirichlet(np.ones(3), 100) * 0.8       # rows sum to 0.8
    with pytest.warns(UserWarning, match="do not sum to one"):
        want = skm.log_loss(y, P)
    with pytest.warns(UserWarning, match="100 of 100 rows do not sum to 1"):
        got = M.log_loss(y, P)
    with pytest.warns(UserWarning, match=r"proba: 1 of 3 rows does not sum to 1 \(e.g. 0.8\)"):
        M.log_loss([0, 1, 2], np.r_[np.eye(3)[:2], [[0.2, 0.2, 0.4]]])
    assert got == pytest.approx(want, rel=1e-12)
    # float32 softmax rows (sum 1 to ~1e-7) are within the tolerance: no warning
    import warnings
    P32 = (P / P.sum(1, keepdims=True)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        M.log_loss(y, P32)
        M.classification_report(y, P32.argmax(1), proba=P32)


def test_streaming_log_loss_uses_the_same_rule():
    from fastmlp.cli.evaluation import StreamingClassificationReport
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 500)
    P = rng.dirichlet(np.ones(3), 500).astype(np.float32)
    P[:3] = np.eye(3, dtype=np.float32)
    y[:3] = [1, 1, 2]
    acc = StreamingClassificationReport(["a", "b", "c"])
    for a in range(0, 500, 128):
        acc.update(y[a:a + 128], P[a:a + 128].argmax(1), P[a:a + 128], np.ones(128, bool)[
            :len(y[a:a + 128])])
    assert acc.report()["log_loss"] == pytest.approx(M.log_loss(y, P), rel=1e-12)
    assert acc.report()["log_loss"] == pytest.approx(skm.log_loss(y, P), rel=1e-6)


def test_limits_keep_every_meant_input():
    """The limits on bins, classes, cuts and counts refuse only what cannot be meant: bools
    as counts (a mask passed instead of its sum) are refused, while weighted (float) counts,
    1000 bins for 4 rows, 10,000 classes and the cuts 0 and 1 still work."""
    y, p = np.array([0, 1, 1, 0]), np.array([0.2, 0.8, 0.6, 0.4])
    with pytest.raises(TypeError, match="k must be a count or an array of counts .*got True"):
        M.wilson_interval(True, 2)
    with pytest.raises(TypeError, match="n must be a count .*got dtype bool"):
        M.wilson_interval(np.zeros(20), np.ones(20, dtype=bool))
    # reliability_curve with sample_weight passes Kish's effective counts: floats
    lo, hi = M.wilson_interval(5.5, 10)
    centre = (5.5 + 0.5) / 11                 # z = 1: z^2 / 2 = 0.5, n + z^2 = 11
    half = 1 / 11 * np.sqrt(5.5 * 4.5 / 10 + 0.25)
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert M.reliability_curve(y, p, n_bins=M.MAX_BINS_WITHOUT_ROWS).count.sum() == 4
    assert M.binned_completeness(y, y, 1, p, bins=M.MAX_BINS_WITHOUT_ROWS).n_true.sum() == 2
    assert M.confusion_matrix([0, M.MAX_CLASSES - 1], [0, 1]).shape == (M.MAX_CLASSES,) * 2
    P = np.c_[1 - p, p]
    np.testing.assert_array_equal(M.labels_at_cut(P, 1, 0), [1, 1, 1, 1])
    np.testing.assert_array_equal(M.labels_at_cut(P, 1, np.float32(1.0)), [0, 0, 0, 0])
    assert M.accuracy(np.array(["a", "b"]), np.array(["a", "c"])) == 0.5
