"""The astronomer's metrics (issue 17): cuts at a target purity or completeness, binned
completeness and purity with Wilson intervals, calibration, temperature scaling, photo-z
figures of merit.  Each against values computed by hand in the comments."""

import warnings

import numpy as np
import pytest

from fastmlp import metrics as M

# ten objects, scores descending; P = positive (1), N = negative (0)
#   score: .95 .9  .8  .7  .7  .6  .5  .4  .3  .1
#   label:  P   P   N   P   N   P   N   P   N   N        5 positives
Y10 = np.array([1, 1, 0, 1, 0, 1, 0, 1, 0, 0])
S10 = np.array([.95, .9, .8, .7, .7, .6, .5, .4, .3, .1])


def test_threshold_at_contamination_hand_computed():
    # cuts (threshold: TP/selected): .95 1/1, .9 2/2, .8 2/3, .7 3/5 (tie group), .6 4/6,
    # .5 4/7, .4 5/8, .3 5/9, .1 5/10
    cut = M.threshold_at_contamination(Y10, S10, 1, 0.0)
    assert cut == (0.9, pytest.approx(2 / 5), 0.0, 2)
    cut = M.threshold_at_contamination(Y10, S10, 1, 0.36)
    # admissible: .95 .9 (0), .8 (1/3), .6 (2/6); not .7 (2/5), .5 (3/7), .4 (3/8) ...
    # the most complete is .6
    assert cut.threshold == 0.6 and cut.completeness == pytest.approx(0.8)
    assert cut.contamination == pytest.approx(1 / 3) and cut.n_selected == 6
    assert cut.purity == pytest.approx(2 / 3)
    assert M.threshold_at_contamination(Y10, S10, 1, 0.4).threshold == 0.4   # 3/8 <= 0.4
    # the tie at 0.7 is never split: selecting only its positive would give 1/4 <= 0.3 at
    # completeness 0.6, but the tie group together gives 2/5, so the answer stays at .9
    cut = M.threshold_at_contamination(Y10, S10, 1, 0.3)
    assert cut.threshold == 0.9 and cut.completeness == pytest.approx(0.4)


@pytest.mark.parametrize("target", [0.02, 0.05, 0.1, 0.3])
def test_cut_reproduces_the_requested_contamination_on_its_data(target):
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 3000)
    logits = rng.normal(size=(3000, 3))
    logits[:, 2] += 4.0 * (y == 2)                 # class 2 (the quasars) ranks high
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    cut = M.threshold_at_contamination(y, proba, 2, target)   # (n, C): one-vs-rest column
    sel = np.where(proba[:, 2] >= cut.threshold, 2, 0)
    assert M.contamination(y, sel, 2) == pytest.approx(cut.contamination, abs=0)
    assert cut.contamination <= target
    assert M.completeness(y, sel, 2) == pytest.approx(cut.completeness, abs=0)
    assert sel[sel == 2].size == cut.n_selected
    # a float32 model's probabilities: the float64 threshold is one of their values, so
    # the cut applied to the float32 array selects the same rows
    p32 = proba.astype(np.float32)
    cut32 = M.threshold_at_contamination(y, p32, 2, target)
    assert int((p32[:, 2] >= cut32.threshold).sum()) == cut32.n_selected
    # no lower threshold is admissible and more complete
    for t in np.unique(proba[:, 2])[::50]:
        q = np.where(proba[:, 2] >= t, 2, 0)
        if M.contamination(y, q, 2) <= target:
            assert M.completeness(y, q, 2) <= cut.completeness


def test_threshold_at_completeness_hand_computed():
    # completeness >= 0.6 needs TP >= 3: cuts .7 (2/5), .6 (2/6), .5 (3/7), .4 (3/8), .3, .1
    # lowest contamination: .6 with 1/3
    cut = M.threshold_at_completeness(Y10, S10, 1, 0.6)
    assert cut.threshold == 0.6 and cut.contamination == pytest.approx(1 / 3)
    assert cut.completeness == pytest.approx(0.8)
    cut = M.threshold_at_completeness(Y10, S10, 1, 1.0)
    assert cut.threshold == 0.4 and cut.contamination == pytest.approx(3 / 8)
    sel = (S10 >= cut.threshold).astype(int)
    assert M.completeness(Y10, sel, 1) == 1.0
    # positive=0: the score must then rank class 0 high
    cut0 = M.threshold_at_completeness(1 - Y10, S10, 0, 0.6)
    assert cut0 == cut._replace(threshold=0.6, completeness=pytest.approx(0.8),
                                contamination=pytest.approx(1 / 3), n_selected=6)


def test_cut_errors_name_the_target():
    y = np.array([0, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    with pytest.raises(ValueError, match=r"max_contamination=0.1.*contamination 0.6667"):
        M.threshold_at_contamination(y, s, 1, 0.1)
    with pytest.raises(ValueError, match="max_contamination must be a number in"):
        M.threshold_at_contamination(y, s, 1, 1.5)
    with pytest.raises(ValueError, match="min_completeness must be a number in"):
        M.threshold_at_completeness(y, s, 1, "0.9")
    with pytest.raises(ValueError, match="no samples of the positive class"):
        M.threshold_at_completeness(np.zeros(4, int), s, 1, 0.5)
    with pytest.raises(ValueError, match="positive=3 but score has only 2 columns"):
        M.threshold_at_contamination(y, np.stack([1 - s, s], 1), 3, 0.1)
    # the old API keeps its no-cut convention
    assert M.completeness_at_contamination(y, s, 1, 0.1) == (0.0, float("inf"))


def test_wilson_interval_hand_computed():
    # k=3, n=10, z=1: centre (3 + 0.5) / 11 = 0.318182, half = 1/11 * sqrt(2.1 + 0.25)
    half = np.sqrt(2.35) / 11
    lo, hi = M.wilson_interval(3, 10)
    assert lo == pytest.approx(3.5 / 11 - half) and hi == pytest.approx(3.5 / 11 + half)
    # 95 %: the textbook interval for 3/10 is (0.1078, 0.6032)
    lo, hi = M.wilson_interval(3, 10, confidence=0.95)
    assert (lo, hi) == (pytest.approx(0.10779, abs=1e-5), pytest.approx(0.60322, abs=1e-5))
    # k = 0 and k = n: width > 0, inside [0, 1]: 0/4 at z=1 -> (0, 1/5), 4/4 -> (4/5, 1)
    lo, hi = M.wilson_interval(np.array([0, 4, 0]), np.array([4, 4, 0]))
    np.testing.assert_allclose(lo[:2], [0.0, 0.8], atol=1e-12)
    np.testing.assert_allclose(hi[:2], [0.2, 1.0], atol=1e-12)
    assert np.isnan(lo[2]) and np.isnan(hi[2])
    with pytest.raises(ValueError, match="0 <= k <= n"):
        M.wilson_interval(5, 4)
    with pytest.raises(ValueError, match="either z or confidence"):
        M.wilson_interval(1, 4, z=2, confidence=0.9)
    with pytest.raises(ValueError, match="z must be a positive number"):
        M.wilson_interval(1, 4, z=-1)


def test_binned_completeness_hand_computed():
    #        r:  16   16   18   18   18   20   20   nan  25
    y_true = [1, 0, 1, 1, 0, 0, 0, 1, 1]
    y_pred = [1, 1, 1, 0, 0, 0, 0, 1, 1]
    r = [16, 16, 18, 18, 18, 20, 20, np.nan, 25]
    b = M.binned_completeness(y_true, y_pred, 1, r, bins=[15, 17, 19, 21])
    # bin 15-17: 1 true, 2 selected, 1 found; 17-19: 2 true, 1 sel, 1 found; 19-21: none
    np.testing.assert_array_equal(b.n_true, [1, 2, 0])
    np.testing.assert_array_equal(b.n_selected, [2, 1, 0])
    np.testing.assert_array_equal(b.n_found, [1, 1, 0])
    np.testing.assert_allclose(b.completeness[:2], [1.0, 0.5])
    np.testing.assert_allclose(b.purity[:2], [0.5, 1.0])
    assert np.isnan(b.completeness[2]) and np.isnan(b.purity[2])
    assert b.n_outside == 2                                   # the nan and the 25
    lo, hi = M.wilson_interval(1, 2)
    assert (b.completeness_lo[1], b.completeness_hi[1]) == (pytest.approx(lo), pytest.approx(hi))
    assert b.contamination[0] == pytest.approx(0.5)
    text = b.table("r", "QSO")
    assert "n/a" in text.splitlines()[-2] and "2 rows outside" in text
    assert "0.500 [" in text
    # integer bins: equal width over the finite values; the maximum lands in the last bin
    b = M.binned_completeness(y_true, y_pred, 1, r, bins=3)
    np.testing.assert_allclose(b.edges, [16, 19, 22, 25])
    assert b.n_true.tolist() == [3, 0, 1] and b.n_outside == 1        # 25 in the last bin
    with pytest.raises(ValueError, match="strictly increasing"):
        M.binned_completeness(y_true, y_pred, 1, r, bins=[17, 15])
    with pytest.raises(ValueError, match="but values has 3"):
        M.binned_completeness([0, 1], [0, 1], 1, [1, 2, 3])


def test_brier_and_ece_hand_computed():
    y = np.array([1, 0, 1, 1, 0])
    p = np.array([0.9, 0.2, 0.35, 0.85, 0.05])
    # (0.1^2 + 0.2^2 + 0.65^2 + 0.15^2 + 0.05^2) / 5 = (.01+.04+.4225+.0225+.0025)/5
    assert M.brier_score(y, p) == pytest.approx(0.0995)
    assert M.brier_score(1 - y, p, positive=0) == pytest.approx(0.0995)   # p = P(label 0)
    # 5 bins of width 0.2: [0,.2): .05 (obs 0) ; [.2,.4): .2 .35 (mean .275, obs 1/2);
    # [.8,1]: .9 .85 (mean .875, obs 1).  ECE = (1*.05 + 2*.225 + 2*.125) / 5 = 0.15
    assert M.expected_calibration_error(y, p, n_bins=5) == pytest.approx(0.15)
    rc = M.reliability_curve(y, p, n_bins=5)
    np.testing.assert_array_equal(rc.count, [1, 2, 0, 0, 2])
    np.testing.assert_allclose(rc.mean_predicted[[0, 1, 4]], [0.05, 0.275, 0.875])
    np.testing.assert_allclose(rc.observed[[0, 1, 4]], [0, 0.5, 1])
    assert np.isnan(rc.observed[2]) and np.isnan(rc.mean_predicted[3])
    assert rc.observed_lo[1] == pytest.approx(M.wilson_interval(1, 2)[0])
    # p = 1.0 exactly goes into the last bin, p = 0.2 into the second
    assert M.reliability_curve([1, 0], [1.0, 0.2], n_bins=5).count.tolist() == [0, 1, 0, 0, 1]


def test_weighted_brier_reliability_and_ece_hand_computed():
    y = np.array([1, 0, 1, 1, 0])
    p = np.array([0.9, 0.2, 0.35, 0.85, 0.05])
    w = np.array([1.0, 3.0, 1.0, 0.0, 2.0])
    # squared errors .01 .04 .4225 .0225 .0025, weighted: (.01 + .12 + .4225 + 0 + .005) / 7
    assert M.brier_score(y, p, sample_weight=w) == pytest.approx(0.5575 / 7)
    # 5 bins: [0,.2): .05 (w 2, obs 0); [.2,.4): .2 (w 3, no), .35 (w 1, yes): mean
    # (.6 + .35) / 4 = .2375, obs 1/4; [.8,1]: .9 (w 1) and .85 (w 0): mean .9, obs 1
    rc = M.reliability_curve(y, p, n_bins=5, sample_weight=w)
    np.testing.assert_array_equal(rc.count, [1, 2, 0, 0, 2])          # rows, not weights
    np.testing.assert_allclose(rc.mean_predicted[[0, 1, 4]], [0.05, 0.2375, 0.9])
    np.testing.assert_allclose(rc.observed[[0, 1, 4]], [0, 0.25, 1])
    # Wilson at Kish's effective size: bin 1 has (3 + 1)^2 / (9 + 1) = 1.6 rows, 0.4 hits
    assert rc.observed_lo[1] == pytest.approx(M.wilson_interval(0.4, 1.6)[0])
    assert rc.observed_hi[4] == pytest.approx(M.wilson_interval(1.0, 1.0)[1])
    # ECE with weights: (2 * .05 + 4 * |.25 - .2375| + 1 * .1) / 7
    assert M.expected_calibration_error(y, p, n_bins=5, sample_weight=w) == pytest.approx(
        (2 * 0.05 + 4 * 0.0125 + 1 * 0.1) / 7)
    # a bin whose rows all weigh 0 has no mean: nan, and counts for nothing in the ECE
    rc = M.reliability_curve(y, p, n_bins=5, sample_weight=[1, 3, 1, 0, 0])
    assert rc.count[0] == 1 and np.isnan(rc.observed[0]) and np.isnan(rc.observed_lo[0])
    assert M.expected_calibration_error(y, p, n_bins=5, sample_weight=[1, 3, 1, 0, 0]) == \
        pytest.approx((4 * 0.0125 + 1 * 0.1) / 5)


def test_weighted_cut_counts_rows_and_weighs_rates():
    # Y10 / S10 with the object at .8 (a contaminant) weighing 0 and the one at .95 weighing
    # 2: cumulative TP weights 2 3 3 4 4 5 5 6 6 6, FP weights 0 0 0 0 1 1 2 2 3 4
    w = np.array([2, 1, 0, 1, 1, 1, 1, 1, 1, 1.0])
    c = M.completeness_contamination_curve(Y10, S10, 1, sample_weight=w)
    assert 0.8 not in c.thresholds                 # a zero-weight row gives no threshold
    cut = M.threshold_at_contamination(Y10, S10, 1, 0.0, sample_weight=w)
    # admissible with no contamination: .95 (2/6), .9 (3/6); the .8 object weighs nothing
    assert cut.threshold == 0.9 and cut.completeness == pytest.approx(0.5)
    assert cut.n_selected == 2
    cut = M.threshold_at_contamination(Y10, S10, 1, 0.2, sample_weight=w)
    # .7 tie group: TP 4 FP 1 (0.2); .6: TP 5 FP 1 (1/6), completeness 5/6; .5: 2/7.  The
    # cut at .6 selects 6 rows (the zero-weight one at .8 included)
    assert cut.threshold == 0.6 and cut.completeness == pytest.approx(5 / 6)
    assert cut.contamination == pytest.approx(1 / 6) and cut.n_selected == 6
    assert M.threshold_at_contamination(Y10, S10, 1, 0.2).threshold == 0.9   # unweighted
    cut = M.threshold_at_completeness(Y10, S10, 1, 0.8, sample_weight=w)
    # completeness >= .8 needs TP >= 4.8: .6 (5/6, 1/6 contam), .5 (2/7), ... -> .6
    assert cut.threshold == 0.6 and cut.contamination == pytest.approx(1 / 6)


def test_brier_and_ece_multiclass():
    y = np.array([0, 1, 2, 1])
    P = np.array([[.7, .2, .1], [.1, .6, .3], [.3, .3, .4], [.5, .4, .1]])
    # multi-class Brier: row sums of (p - onehot)^2: .09+.04+.01, .01+.16+.09, .09+.09+.36,
    # .25+.36+.01 -> (.14 + .26 + .54 + .62) / 4 = 0.39
    assert M.brier_score(y, P) == pytest.approx(0.39)
    # one-vs-rest for class 1: ((.2)^2 + (.4)^2 + (.3)^2 + (.6)^2) / 4 = 0.1625
    assert M.brier_score(y, P, positive=1) == pytest.approx(0.1625)
    # top-label ECE, 2 bins: confidences .7 .6 .4 .5, correct T T T F
    # [0, .5): .4 (acc 1) -> |1 - .4| = .6 ; [.5, 1]: .7 .6 .5 (acc 2/3, mean .6) -> 1/15
    assert M.expected_calibration_error(y, P, n_bins=2) == pytest.approx(
        (1 * 0.6 + 3 * (2 / 3 - 0.6)) / 4)


def test_calibration_errors():
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        M.expected_calibration_error([0, 1], [0.2, 0.8], n_bins=0)
    with pytest.raises(ValueError, match="probabilities in"):
        M.brier_score([0, 1], [0.2, 1.8])
    with pytest.raises(ValueError, match="only 2 columns"):
        M.brier_score([0, 2], [[0.5, 0.5], [0.5, 0.5]])


def _logistic_data(n, seed, k=None):
    rng = np.random.default_rng(seed)
    if k is None:
        true_logit = rng.normal(0, 2.0, n)
        y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
        return true_logit, y
    true_logit = rng.normal(0, 1.5, (n, k))
    p = np.exp(true_logit) / np.exp(true_logit).sum(1, keepdims=True)
    y = (p.cumsum(1) < rng.random((n, 1))).sum(1)
    return true_logit, y


@pytest.mark.parametrize("shape", ["n", "n1", "nk"])
def test_fit_temperature_recovers_the_overconfidence(shape):
    # logits 3x too sharp: the calibrating temperature is about 3
    z, y = _logistic_data(20_000, 1, k=4 if shape == "nk" else None)
    logits = 3.0 * (z[:, None] if shape == "n1" else z)
    T = M.fit_temperature(logits, y)
    assert T == pytest.approx(3.0, rel=0.06)
    # T minimises the NLL: nudging it either way costs
    nll = lambda t: M.log_loss(y, M.apply_temperature(logits, t))  # noqa: E731
    assert nll(T) < nll(T * 1.05) and nll(T) < nll(T / 1.05) and nll(T) < nll(1.0)
    P = M.apply_temperature(logits, T)
    assert P.shape == (20_000, 4 if shape == "nk" else 2)
    pos = None if shape == "nk" else 1
    assert M.expected_calibration_error(y, P if pos is None else P[:, 1], pos) < \
        0.5 * M.expected_calibration_error(y, M.apply_temperature(logits, 1.0)
                                           if pos is None else
                                           M.apply_temperature(logits, 1.0)[:, 1], pos)


def test_fit_temperature_edges():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="no better than|above chance"):
        M.fit_temperature(np.array([1.0, -1.0, 2.0, -2.0]), y)   # anti-correlated
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert M.fit_temperature(np.array([-1.0, 1.0, -2.0, 2.0]), y) == 0.01  # separable
    assert "separable" in str(w[0].message)
    with pytest.raises(ValueError, match="same length"):
        M.fit_temperature(np.zeros(3), y)
    with pytest.raises(ValueError, match=r"\(n, k\)"):
        M.fit_temperature(np.zeros((4, 2, 1)), y)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        M.apply_temperature(np.zeros(4), 0.0)


def test_photoz_metrics_hand_computed():
    zs = np.array([0.1, 0.5, 1.0, 2.0])
    zp = np.array([0.12, 0.45, 1.5, 2.1])
    m = M.photoz_metrics(zs, zp)
    # dz = .02 -.05 .5 .1; median .06; |dz - .06| / (1 + z) = .04/1.1 .11/1.5 .44/2 .04/3;
    # median of those = (.04/1.1 + .11/1.5) / 2
    assert m.sigma_nmad == pytest.approx(1.48 * (0.04 / 1.1 + 0.11 / 1.5) / 2)
    # |dz| / (1 + z) = .018 .033 .25 .033: one outlier
    assert m.n_outliers == 1 and m.outlier_fraction == 0.25
    # dz / (1 + z) = .0182 -.0333 .25 .0333 -> median (.02/1.1 + .1/3) / 2
    assert m.bias == pytest.approx((0.02 / 1.1 + 0.1 / 3) / 2)
    assert m.rmse == pytest.approx(np.sqrt((0.02**2 + 0.05**2 + 0.5**2 + 0.1**2) / 4))
    assert m.n == 4
    text = m.format()
    assert "sigma_NMAD 0.0812" in text and "outlier fraction 0.2500" in text
    assert "bias +0.0258" in text and "RMSE 0.2564" in text
    assert M.photoz_metrics(zs, zp, outlier_cut=0.01).n_outliers == 4
    with pytest.raises(ValueError, match="z_spec must be > -1"):
        M.photoz_metrics([-1.0, 0.5], [0.1, 0.5])
    with pytest.raises(ValueError, match="z_phot contains 1 NaN or inf value$"):
        M.photoz_metrics([0.1, 0.5], [np.nan, 0.5])
    with pytest.raises(ValueError, match="same length"):
        M.photoz_metrics([0.1, 0.5], [0.1])


def test_edge_warning():
    with pytest.warns(UserWarning, match="largest of the grid.*above 0.1"):
        M.edge_warning([1e-3, 1e-2, 1e-1], 1e-1)
    with pytest.warns(UserWarning, match="smallest of the grid"):
        M.edge_warning(np.array([1e-2, 1e-3, 1e-1]), 1e-3)
    with pytest.warns(UserWarning, match="smallest of the grid"):   # a 0-d array best_lr
        M.edge_warning([1e-3, 1e-2, 1e-1], np.array(1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.edge_warning([1e-3, 1e-2, 1e-1], 1e-2) is None


def test_format_report_prints_undefined_rates_as_na():
    # nothing predicted as class 1: its contamination is 0/0; no true class 2: completeness
    rep = M.classification_report([0, 1, 0, 1], [0, 0, 0, 2], positive=1)
    assert np.isnan(rep["contamination"]) and np.isnan(rep["per_class"]["2"]["completeness"])
    text = M.format_report(rep)
    assert "contamination n/a" in text and "contam n/a" in text and "compl n/a" in text
    assert "1 (positive class 1): completeness 0.0000, contamination n/a" in text


def test_labels_at_cut_and_the_report_of_a_stored_cut():
    P = np.array([[.5, .3, .2], [.2, .5, .3], [.6, .1, .3], [.05, .15, .8]])
    # cut 0.25 on class 2: rows 0, 2, 3 have P(2) >= 0.25 -> 2; row 0 P(2)=.2 -> argmax of
    # the others (0)
    np.testing.assert_array_equal(M.labels_at_cut(P, 2, 0.25), [0, 2, 2, 2])
    np.testing.assert_array_equal(M.labels_at_cut(P, 2, 0.9), [0, 1, 0, 1])
    # a 1-D proba is P(class 1), which threshold_at_* would read as P(positive) with
    # positive=0: refused there (the audit's P(class 0) selected at 94 % contamination)
    np.testing.assert_array_equal(M.labels_at_cut([0.2, 0.7], 1, 0.5), [0, 1])
    np.testing.assert_array_equal(M.labels_at_cut([[0.8, 0.2], [0.3, 0.7]], 0, 0.5), [0, 1])
    with pytest.raises(ValueError, match=r"proba is 1-D with positive=0.*pass the \(n, 2\)"):
        M.labels_at_cut([0.2, 0.7], 0, 0.5)
    with pytest.raises(ValueError, match="threshold must be a number"):
        M.labels_at_cut(P, 2, None)
    y = np.array([0, 2, 0, 2])
    pred = M.labels_at_cut(P, 2, 0.25)
    rep = M.classification_report(y, pred, proba=P, positive=2, cut=0.25,
                                  max_contamination=None)
    # selected rows 1, 2, 3: true 2 at rows 1 and 3 -> completeness 2/2, contamination 1/3
    assert rep["cut"] == {"threshold": 0.25, "completeness": 1.0,
                          "contamination": pytest.approx(1 / 3), "n_selected": 3}
    assert "completeness_at_contamination" not in rep
    text = M.format_report(rep)
    assert "cut P(2) >= 0.25 (chosen beforehand): 3 selected, completeness 1.0000, " \
           "contamination 0.3333" in text
    empty = M.classification_report(y, pred, proba=P, positive=2, cut=0.95)
    assert "3 selected" not in M.format_report(empty)
    assert "0 selected, completeness 0.0000, contamination n/a" in M.format_report(empty)


def test_regression_report_with_and_without_redshift():
    zs = np.array([0.1, 0.5, 1.0, 2.0])
    zp = np.array([0.12, 0.45, 1.5, 2.1])
    rep = M.regression_report(zs, zp)
    assert rep["n"] == 4 and "photoz" not in rep
    assert rep["rmse"] == pytest.approx(M.rmse(zs, zp)) and rep["r2"] == pytest.approx(
        M.r2(zs, zp))
    rep = M.regression_report(zs, zp, redshift=True)
    assert rep["photoz"] == M.photoz_metrics(zs, zp)
    text = M.format_regression_report(rep)
    assert text.splitlines()[0] == f"test metrics (n=4): RMSE {rep['rmse']:.4f}, R^2 " \
                                   f"{rep['r2']:.4f}"
    assert text.splitlines()[1].startswith("photo-z (n=4): sigma_NMAD 0.0812")
    with pytest.raises(ValueError, match="one target column"):
        M.regression_report(np.ones((3, 2)), np.ones((3, 2)), redshift=True)


def test_format_rate():
    assert M.format_rate(0.25) == "0.2500" and M.format_rate(0.25, ".2f") == "0.25"
    assert M.format_rate(float("nan")) == "n/a" and M.format_rate(None) == "n/a"
    assert M.format_rate(M.contamination([1, 0], [0, 0], 1)) == "n/a"


def test_reliability_bins_are_the_edges_it_returns():
    # p * n_bins put 0.6 in the bin that starts at linspace's 0.6000000000000001
    c = M.reliability_curve(np.array([1, 0, 1]), np.array([0.6, 15 / 22, 1.0]), n_bins=10)
    assert c.edges[6] > 0.6 and c.count[5] == 1 and c.count[9] == 1
    c = M.reliability_curve(np.array([1]), np.array([15 / 22]), n_bins=22)
    k = int(np.flatnonzero(c.count)[0])
    assert c.edges[k] <= 15 / 22 < c.edges[k + 1]
