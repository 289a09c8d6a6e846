"""Classification and regression metrics, plain NumPy, checked against scikit-learn; and
what an astronomer selects a sample with: cuts at a target contamination or completeness
(chosen on validation data), completeness and purity in bins of a column with Wilson
intervals, calibration (Brier score, ECE, reliability curve, temperature scaling) and
photometric-redshift figures of merit.

Classification labels are integers ``0..C-1`` (``Catalog.y``); for the astronomer's metrics a
*positive* class (the quasars) is named by its label value:

- completeness = TP / (TP + FN), the recall of the positive class: the fraction of the true
  quasars that the classifier finds.  Undefined (0/0) when ``y_true`` holds no positives:
  returned as ``nan``.
- contamination = FP / (TP + FP) = 1 - precision: the fraction of the objects selected as
  quasars that are not quasars.  Undefined (0/0) when nothing is predicted positive: returned
  as ``nan`` (and printed as ``n/a``) - an empty selection has no purity to quote, and a
  0.0 there would read as a perfect sample.  Purity = 1 - contamination.

Every rate computed here follows the same rule: 0/0 gives ``nan``, and the text formatters
print ``n/a`` for it.

``sample_weight`` (keyword, default None = every row weighs 1): a 1-D array of finite weights
>= 0, one per row, not all zero.  Where scikit-learn has the same metric the weighted value
is scikit-learn's (counts become sums of weights; integer weights are the same as repeating
rows).  A weighted rate whose weights sum to 0 (e.g. only zero-weight positives) is 0/0:
``nan``.

``score`` arguments are "higher means more likely positive" (e.g. ``proba[:, positive]``).
"""

import math
import numbers
from typing import NamedTuple

import numpy as np

from . import _validate
from ._validate import (all_finite, check_bool, check_cut_inputs, check_finite, check_n_bins,
                        check_regression_pair, check_weights, counted, plural, shown)

__all__ = ["accuracy", "log_loss", "log_loss_per_row", "roc_auc", "confusion_matrix",
           "completeness", "contamination", "precision", "classification_report", "format_report",
           "format_rate",
           "completeness_contamination_curve", "CompletenessContaminationCurve",
           "completeness_at_contamination", "Cut", "threshold_at_contamination",
           "labels_at_cut", "threshold_with_margin",
           "threshold_at_completeness", "wilson_interval", "BinnedRates",
           "binned_completeness", "bulk_bin_edges", "brier_score", "ReliabilityCurve",
           "reliability_curve",
           "expected_calibration_error", "fit_temperature", "apply_temperature",
           "PhotozMetrics", "photoz_metrics", "regression_report",
           "format_regression_report", "grid_edge", "edge_warning", "rmse", "r2"]


# ---------------------------------------------------------------------------------------
# input checks
def _vector(a, name, numeric=True):
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name} must be array-like: {exc}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got shape {arr.shape}")
    if numeric and arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr


def _no_nan_labels(arr, name):
    """arr (1-D labels of any dtype) if no label is NaN or inf: NaN == NaN is False, so a
    NaN label would count silently as a wrong prediction."""
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains "
                         f"{counted(int((~np.isfinite(arr)).sum()), 'NaN or inf value')}; "
                         "class labels must be finite")
    return arr


def _labels(y, name):
    """Integer class labels >= 0 as int64."""
    arr = _no_nan_labels(_vector(y, name), name)
    if arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values "
                             f"such as {shown(arr[arr != np.round(arr)][0])}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold class labels >= 0, got {shown(arr.min())}")
    return arr.astype(np.int64)


def _same_length(a, b, na, nb):
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{na} has {counted(a.shape[0], 'sample')} but {nb} has "
                         f"{b.shape[0]}; they must have the same length")
    if a.shape[0] == 0:
        raise ValueError(f"{na} and {nb} are empty: need at least one sample")


def _one_column_is_class_1(p, positive):
    """labels_at_cut reads a 1-D proba as P(class 1) (as log_loss and classification_report
    do); the cut finders that choose its threshold read a 1-D score as P(positive).  With
    positive != 1 the two readings differ: refused instead of guessed (a P(class 0) taken
    for P(class 1) selected the wrong objects at 94 % contamination)."""
    if p.ndim == 1 and positive != 1:
        raise ValueError(f"proba is 1-D with positive={positive!r}: a 1-D proba is read as "
                         "P(class 1) here but as P(positive) by threshold_at_*; pass the "
                         "(n, 2) matrix of class probabilities")


def _positive_label(positive, name="positive"):
    if isinstance(positive, (bool, np.bool_)) or not isinstance(positive, (int, np.integer)) \
            or positive < 0:
        raise ValueError(f"{name} must be a class label (an integer >= 0), got {positive!r}")
    return int(positive)


# ---------------------------------------------------------------------------------------
# classification
def accuracy(y_true, y_pred, *, sample_weight=None):
    """Fraction of samples with ``y_pred == y_true``.

    sample_weight: (n,) weights >= 0; the weighted fraction (sklearn's accuracy_score)."""
    yt = _no_nan_labels(_vector(y_true, "y_true", numeric=False), "y_true")
    yp = _no_nan_labels(_vector(y_pred, "y_pred", numeric=False), "y_pred")
    _same_length(yt, yp, "y_true", "y_pred")
    w = check_weights(sample_weight, yt.shape[0])
    if w is not None:
        return float(np.sum(w * (yt == yp)) / np.sum(w))
    return float(np.mean(yt == yp))


# The most bins of a histogram without as many rows (reliability_curve's n_bins,
# binned_completeness's bins): see fastmlp._validate.check_n_bins.
MAX_BINS_WITHOUT_ROWS = _validate.MAX_BINS_WITHOUT_ROWS

# C x C cells: 10,000 classes already take 800 MB; a label of 10**6 (an object ID passed as
# a class) asked for terabytes.
MAX_CLASSES = 10_000


def confusion_matrix(y_true, y_pred, n_classes=None, *, sample_weight=None):
    """(C, C) int64 counts: row = true class, column = predicted class (scikit-learn's
    convention).  ``n_classes`` defaults to 1 + the largest label seen; at most
    MAX_CLASSES (10,000).

    sample_weight: (n,) weights >= 0; the cells are sums of weights (int64 for integer
    weights, float64 otherwise, as sklearn's confusion_matrix)."""
    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    _same_length(yt, yp, "y_true", "y_pred")
    w = check_weights(sample_weight, yt.shape[0])
    seen = int(max(yt.max(), yp.max())) + 1
    if n_classes is None:
        n_classes = seen
    else:
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
                or n_classes < 1:
            raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
        if seen > n_classes:
            raise ValueError(f"labels go up to {seen - 1} but n_classes={n_classes}; labels "
                             f"must lie in 0..{n_classes - 1}")
    c = int(n_classes)
    if c > MAX_CLASSES:
        what = f"labels go up to {seen - 1}" if c == seen else f"n_classes={c}"
        raise ValueError(f"{what}: a confusion matrix of {c} classes would hold {c}^2 cells; "
                         f"at most {MAX_CLASSES} classes (labels must be class indices "
                         "0..C-1, not e.g. object IDs)")
    if w is not None:
        cm = np.bincount(yt * c + yp, weights=w, minlength=c * c).reshape(c, c)
        integer = np.asarray(sample_weight).dtype.kind in "biu"
        return cm.astype(np.int64) if integer else cm
    return np.bincount(yt * c + yp, minlength=c * c).reshape(c, c).astype(np.int64)


def _tp_fp_fn(y_true, y_pred, positive, sample_weight=None):
    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    _same_length(yt, yp, "y_true", "y_pred")
    p = _positive_label(positive)
    w = check_weights(sample_weight, yt.shape[0])
    t, q = yt == p, yp == p
    if w is not None:       # sums of weights (floats)
        return float(np.sum(w[t & q])), float(np.sum(w[~t & q])), float(np.sum(w[t & ~q]))
    return int(np.sum(t & q)), int(np.sum(~t & q)), int(np.sum(t & ~q))


def completeness(y_true, y_pred, positive, *, sample_weight=None):
    """Recall of class ``positive``: TP / (TP + FN).  ``nan`` when y_true has no positives.

    sample_weight: (n,) weights >= 0; TP and FN are sums of weights (sklearn's
    recall_score)."""
    tp, _, fn = _tp_fp_fn(y_true, y_pred, positive, sample_weight)
    return tp / (tp + fn) if tp + fn else float("nan")


def precision(y_true, y_pred, positive, *, sample_weight=None):
    """Precision (purity) of class ``positive``: TP / (TP + FP); ``nan`` when nothing is
    predicted positive.

    sample_weight: (n,) weights >= 0; TP and FP are sums of weights (sklearn's
    precision_score)."""
    tp, fp, _ = _tp_fp_fn(y_true, y_pred, positive, sample_weight)
    return tp / (tp + fp) if tp + fp else float("nan")


def contamination(y_true, y_pred, positive, *, sample_weight=None):
    """1 - precision of class ``positive``: FP / (TP + FP), the fraction of the selected
    objects that are not ``positive``.  ``nan`` when nothing is predicted positive.

    sample_weight: (n,) weights >= 0; TP and FP are sums of weights (the weighted fraction)."""
    tp, fp, _ = _tp_fp_fn(y_true, y_pred, positive, sample_weight)
    return fp / (tp + fp) if tp + fp else float("nan")


def _proba_matrix(proba, n, n_classes=None, name="proba"):
    """proba as (n, C) float64: a 1-D proba is P(class 1) of a binary problem."""
    p = np.asarray(proba)
    if p.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {p.dtype}")
    p = p.astype(np.float64)
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        p = p.reshape(-1)
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2:
        raise ValueError(f"{name} must be (n,) probabilities of class 1 or (n, n_classes), "
                         f"got shape {np.shape(proba)}")
    if p.shape[0] != n:
        raise ValueError(f"y_true has {counted(n, 'sample')} but {name} has {p.shape[0]}; they "
                         "must have the same length")
    if n_classes is not None and p.shape[1] != n_classes:
        raise ValueError(f"{name} has {counted(p.shape[1], 'column')} but there "
                         f"{plural(n_classes, 'is', 'are')} "
                         f"{counted(n_classes, 'class', 'classes')}")
    check_finite(p, name)
    if (p < 0).any() or (p > 1).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1], got values in "
                         f"[{p.min():.3g}, {p.max():.3g}]")
    return p


def _labels_and_proba(y_true, proba):
    """(labels, (n, C) probabilities), checked: not empty, every label a column of proba."""
    yt = _labels(y_true, "y_true")
    if yt.shape[0] == 0:
        raise ValueError("y_true is empty: need at least one sample")
    p = _proba_matrix(proba, yt.shape[0])
    if yt.max() >= p.shape[1]:
        raise ValueError(f"y_true has label {int(yt.max())} but proba has only "
                         f"{counted(p.shape[1], 'column')} (classes 0..{p.shape[1] - 1})")
    return yt, p


_SKLEARN_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def log_loss_per_row(y_true, proba, eps="auto"):
    """Each row's negative log-likelihood -log p[i, y_i], float64 (n,): the terms whose mean
    is :func:`log_loss` (which calls this; so does the CLI's streaming evaluation, which sums
    them chunk by chunk).  The worst-predicted objects are the rows with the largest.

    y_true: (n,) integer class labels; proba and eps as in :func:`log_loss`.  The rule is
    scikit-learn's (checked with 1.9): a float16 / float32 / float64 proba keeps its dtype
    (anything else is read as float64), a 1-D proba p becomes [1 - p, p] in that dtype, rows
    are NOT renormalised (a UserWarning when a row's sum is not within sqrt(eps_dtype)
    (relative) + 1e-8 of 1), and p is clipped to [eps, 1 - eps] with eps =
    np.finfo(dtype).eps unless a number is given."""
    raw = np.asarray(proba)
    if raw.dtype.kind not in "biuf":
        raise TypeError(f"proba must hold numbers, got dtype {raw.dtype}")
    dt = raw.dtype if raw.dtype in _SKLEARN_FLOATS else np.dtype(np.float64)
    raw = raw.astype(dt, copy=False)
    if raw.ndim == 1 or (raw.ndim == 2 and raw.shape[1] == 1):
        r = raw.reshape(-1)
        raw = np.stack([1 - r, r], axis=1)
    yt, p = _labels_and_proba(y_true, raw)
    if isinstance(eps, str) and eps == "auto":
        e = float(np.finfo(dt).eps)
    elif isinstance(eps, (bool, np.bool_)) or not isinstance(
            eps, (int, float, np.integer, np.floating)) or not 0 < eps < 0.5:
        raise ValueError(f"eps must be 'auto' (the float epsilon of proba's dtype) or a "
                         f"number in (0, 0.5), got {eps!r}")
    else:
        e = float(eps)
    rowsum = raw.sum(axis=1)                       # in proba's dtype, as scikit-learn
    if not np.all(np.isclose(rowsum, 1, rtol=float(np.sqrt(np.finfo(dt).eps)), atol=1e-8)):
        import warnings
        bad = ~np.isclose(rowsum, 1, rtol=float(np.sqrt(np.finfo(dt).eps)), atol=1e-8)
        n_bad = int(bad.sum())
        warnings.warn(f"proba: {n_bad} of {counted(bad.size, 'row')} "
                      f"{plural(n_bad, 'does', 'do')} not sum to 1 (e.g. "
                      f"{float(rowsum[bad][0]):.6g}); log_loss uses them as given, without "
                      "renormalising (as scikit-learn); pass probabilities", UserWarning,
                      stacklevel=3)
    q = np.clip(p[np.arange(yt.shape[0]), yt], e, 1 - e)
    return -np.log(q)


def log_loss(y_true, proba, eps="auto", *, sample_weight=None):
    """Mean negative log-likelihood -mean(log p[i, y_i]), equal to sklearn.metrics.log_loss.

    proba: (n,) probabilities of class 1 (binary) or (n, C) class probabilities.  Rows are
    used as given (not renormalised; a UserWarning when one does not sum to 1, as recent
    scikit-learn, checked with 1.9).  Probabilities are clipped to [eps, 1 - eps] so a
    confident mistake costs -log(eps), not inf; eps="auto" is scikit-learn's, the float
    epsilon of proba's dtype (2.2e-16 for float64: -log(eps) = 36.0; 1.2e-7 for float32:
    15.9); pass a number (e.g. 1e-15, the default before) to choose it.

    sample_weight: (n,) weights >= 0; the weighted mean of the per-row losses.
    """
    loss = log_loss_per_row(y_true, proba, eps)
    w = check_weights(sample_weight, loss.shape[0])
    if w is not None:
        return float(np.sum(w * loss) / np.sum(w))
    return float(np.mean(loss))


def _average_ranks(x):
    """Ranks 1..n of x, ties given the average of the ranks they span."""
    # any sort will do: tied values share one rank whatever their order (NumPy's default
    # sort is vectorised: 0.5 ms for 40,000 scores, a stable one 3 ms)
    order = np.argsort(x)
    xs = x[order]
    n = xs.shape[0]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], n]                     # group = [start, end)
    avg = (starts + ends + 1) / 2.0                 # mean of ranks start+1 .. end
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def _binary_truth(y_true, positive, name="y_true"):
    if positive is None:
        yt = _labels(y_true, name)
        vals = np.unique(yt)
        if not set(vals.tolist()) <= {0, 1}:
            raise ValueError(f"{name} must be binary 0/1 labels when positive is not given, "
                             f"got classes {vals.tolist()}; pass positive=<label>")
        return yt == 1
    return _labels(y_true, name) == _positive_label(positive)


def roc_auc(y_true, score, positive=None, *, sample_weight=None):
    """Area under the ROC curve of a binary problem (Mann-Whitney U with average ranks for
    tied scores; equals sklearn.metrics.roc_auc_score).

    y_true: 0/1 labels (1 = positive), or any labels with ``positive`` naming the positive
    one.  score: (n,) higher = more likely positive.  Raises ValueError if only one class is
    present (the AUC is undefined).
    sample_weight: (n,) weights >= 0; each (positive, negative) pair counts with the product
    of their weights (sklearn's weighted ROC curve); both classes need a positive weight.
    """
    t = _binary_truth(y_true, positive)
    s = _vector(score, "score")
    _same_length(t, s, "y_true", "score")
    s = check_finite(s, "score")
    n_pos = int(t.sum())
    n_neg = t.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc needs both classes in y_true, got "
                         f"{counted(n_pos, 'positive')} and {counted(n_neg, 'negative')}")
    w = check_weights(sample_weight, t.shape[0])
    if w is not None:
        return _weighted_auc(t, s, w)
    r = _average_ranks(s)
    u = r[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _weighted_auc(t, s, w):
    """sum over (positive i, negative j) of w_i w_j ([s_i > s_j] + [s_i == s_j] / 2), over
    the products' total: the area under the weighted ROC curve."""
    order = np.argsort(s)
    ss, ts, ws = s[order], t[order], w[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])       # tie groups
    pos = np.add.reduceat(ws * ts, starts)
    neg = np.add.reduceat(ws * ~ts, starts)
    w_pos, w_neg = pos.sum(), neg.sum()
    if w_pos == 0 or w_neg == 0:
        raise ValueError("roc_auc needs both classes with a positive weight, got total "
                         f"weights {w_pos!r} (positives) and {w_neg!r} (negatives)")
    below = np.cumsum(neg) - neg                  # negative weight scored below each group
    return float(np.sum(pos * (below + 0.5 * neg)) / (w_pos * w_neg))


class CompletenessContaminationCurve(NamedTuple):
    """Selecting ``score >= thresholds[k]`` gives ``completeness[k]`` and
    ``contamination[k]``; thresholds descend (completeness rises along the arrays)."""
    thresholds: np.ndarray
    completeness: np.ndarray
    contamination: np.ndarray
    n_selected: np.ndarray


def completeness_contamination_curve(y_true, score, positive, *, sample_weight=None):
    """Completeness and contamination of the selection ``score >= t`` for every distinct
    score t (descending).  Each point is what a catalog cut at that threshold delivers;
    plot contamination against completeness to choose the cut.

    sample_weight: (n,) weights >= 0; TP and FP are sums of weights and zero-weight rows
    give no threshold (as sklearn's precision_recall_curve); ``n_selected`` still counts
    the rows (of any weight) with score >= threshold."""
    t = _binary_truth(y_true, positive)
    s = _vector(score, "score")
    _same_length(t, s, "y_true", "score")
    s = check_finite(s, "score")
    n_pos = int(t.sum())
    if n_pos == 0:
        raise ValueError(f"y_true has no samples of the positive class {positive!r}")
    w = check_weights(sample_weight, t.shape[0])
    if w is not None:
        return _weighted_curve(t, s, w, positive)
    order = np.argsort(-s)   # ties are read at their group's end: their order does not matter
    ss, ts = s[order], t[order]
    tp = np.cumsum(ts)
    last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), ss.shape[0] - 1]   # end of each tie group
    tp, sel = tp[last], last + 1
    return CompletenessContaminationCurve(ss[last].copy(), tp / n_pos, (sel - tp) / sel,
                                          sel.astype(np.int64))


def _weighted_curve(t, s, w, positive):
    keep = w > 0
    tk, sk, wk = t[keep], s[keep], w[keep]
    order = np.argsort(-sk)
    ss = sk[order]
    tp = np.cumsum((wk * tk)[order])
    fp = np.cumsum((wk * ~tk)[order])
    if tp[-1] == 0:
        raise ValueError(f"y_true has no samples of the positive class {positive!r} with a "
                         "positive sample_weight")
    last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), ss.shape[0] - 1]   # end of each tie group
    tp, fp, thr = tp[last], fp[last], ss[last].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        contam = np.where(tp + fp > 0, fp / (tp + fp), np.nan)
    n_sel = s.shape[0] - np.searchsorted(np.sort(s), thr, side="left")   # every row counted
    return CompletenessContaminationCurve(thr, tp / tp[-1], contam, n_sel.astype(np.int64))


class Cut(NamedTuple):
    """A selection ``score >= threshold`` and what it delivers on the data it was chosen on."""
    threshold: float
    completeness: float
    contamination: float
    n_selected: int

    @property
    def purity(self):
        return 1.0 - self.contamination


def _fraction(x, name):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer,
                                                                 np.floating)) \
            or not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {x!r}")
    return float(x)


def _positive_score(score, positive):
    """score as (n,): a 2-D (n, C) probability matrix gives its column ``positive`` (the
    one-vs-rest score of that class)."""
    s = np.asarray(score)
    if s.ndim == 2 and s.shape[1] > 1:
        p = _positive_label(positive)
        if p >= s.shape[1]:
            raise ValueError(f"positive={p} but score has only {counted(s.shape[1], 'column')}")
        s = s[:, p]
    return s


def _curve_for_cut(y_true, score, positive, sample_weight=None):
    return completeness_contamination_curve(y_true, _positive_score(score, positive),
                                            positive, sample_weight=sample_weight)


def threshold_at_contamination(y_true, score, positive, max_contamination, *,
                               sample_weight=None):
    """The cut ``score >= threshold`` with the highest completeness whose contamination is
    at most ``max_contamination``, chosen on (y_true, score) - use validation data, never the
    test set.  Returns a :class:`Cut`.

    score: (n,) higher = more likely ``positive`` (P(positive)), or an (n, C) probability
    matrix whose column ``positive`` is used (multi-class: one-vs-rest).  Candidate
    thresholds are the distinct score values, so objects with tied scores are selected or
    rejected together and ``score >= threshold`` on the same array gives exactly the
    returned completeness and contamination.  Among cuts of equal completeness the highest
    threshold (the fewest contaminants) wins.  Raises ValueError naming the target when no
    cut reaches it (the purest cut's contamination is in the message).
    sample_weight: (n,) weights >= 0; weighted rates, as
    :func:`completeness_contamination_curve` (``n_selected`` counts rows).
    """
    target = _fraction(max_contamination, "max_contamination")
    c = _curve_for_cut(y_true, score, positive, sample_weight)
    k = _best_at_contamination(c, target)
    if k is None:
        k = int(np.argmin(c.contamination))
        raise ValueError(f"no cut on the score reaches max_contamination={target:g}: the "
                         f"purest cut (score >= {c.thresholds[k]:.6g}, {c.n_selected[k]} "
                         f"selected) has contamination {c.contamination[k]:.4f}")
    return Cut(float(c.thresholds[k]), float(c.completeness[k]), float(c.contamination[k]),
               int(c.n_selected[k]))


def _best_at_contamination(curve, target):
    """Index into the curve of the most complete cut with contamination <= target (the
    first maximum, i.e. the highest threshold), or None."""
    ok = np.flatnonzero(curve.contamination <= target)
    return int(ok[np.argmax(curve.completeness[ok])]) if ok.size else None


def threshold_at_completeness(y_true, score, positive, min_completeness, *,
                              sample_weight=None):
    """The cut ``score >= threshold`` with the lowest contamination whose completeness is at
    least ``min_completeness``, chosen on (y_true, score) (validation data).  Returns a
    :class:`Cut`.  score as in :func:`threshold_at_contamination`; ties as there.  Among
    cuts of equal contamination the lowest threshold (the most complete) wins.  Every
    target in [0, 1] is reachable when y_true holds a positive (selecting everything gives
    completeness 1); raises ValueError when it holds none.
    sample_weight: (n,) weights >= 0; weighted rates, as
    :func:`completeness_contamination_curve` (``n_selected`` counts rows).
    """
    target = _fraction(min_completeness, "min_completeness")
    c = _curve_for_cut(y_true, score, positive, sample_weight)
    # completeness rises along the curve: the admissible cuts are a tail of it (the 1e-12
    # keeps a target typed as 0.9 reachable by 9/10 however the division rounds)
    ok = np.flatnonzero(c.completeness >= target - 1e-12)
    best = c.contamination[ok].min()
    k = ok[np.flatnonzero(c.contamination[ok] <= best)[-1]]
    return Cut(float(c.thresholds[k]), float(c.completeness[k]), float(c.contamination[k]),
               int(c.n_selected[k]))


def completeness_at_contamination(y_true, score, positive, max_contamination=0.06, *,
                                  sample_weight=None):
    """(completeness, threshold): the highest completeness of a cut ``score >= threshold``
    whose contamination is at most ``max_contamination`` (completeness 0.0 and threshold
    inf if no cut qualifies).  :func:`threshold_at_contamination` is the same choice with
    the achieved contamination and an error when no cut qualifies.
    sample_weight: (n,) weights >= 0; weighted rates, as
    :func:`completeness_contamination_curve`."""
    target = _fraction(max_contamination, "max_contamination")
    c = _curve_for_cut(y_true, score, positive, sample_weight)
    k = _best_at_contamination(c, target)
    if k is None:
        return 0.0, float("inf")
    return float(c.completeness[k]), float(c.thresholds[k])


def threshold_with_margin(score, positive, threshold):
    """A cut selecting the same rows of ``score`` as ``threshold`` but with a margin on both
    sides: halfway between ``threshold`` and the highest score below it (``threshold``
    itself when no score is below).  The cuts of :func:`threshold_at_contamination` and
    :func:`threshold_at_completeness` are scores of the rows they were chosen on: stored in
    a model as they are, the row at the cut is selected or not depending on the last bit of
    its probability, which another summation order (another backend, batch size, C or
    ONNX) changes.  score as in :func:`threshold_at_contamination`; returns a float."""
    s = check_finite(_vector(_positive_score(score, positive), "score"), "score")
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    below = s[s < t]
    if below.size == 0:
        return t
    b = float(below.max())
    mid = t + (b - t) / 2
    # adjacent doubles (probabilities near saturation): the midpoint rounds onto b and
    # would select that row too; no margin fits between them
    return mid if b < mid < t else t


def labels_at_cut(proba, positive, threshold):
    """Predicted labels with a cut on P(positive): ``positive`` where proba[:, positive] >=
    threshold, elsewhere the most probable of the other classes (for two classes: the
    other one).  proba: (n, C), or (n,) P(class 1) of a binary model with positive=1 (with
    another positive a 1-D proba is refused: threshold_at_* reads one as P(positive)).
    threshold: a probability in [0, 1]."""
    p = np.asarray(proba)
    k = _positive_label(positive)
    _one_column_is_class_1(p, k)
    P = _proba_matrix(p, p.shape[0] if p.ndim else 0)
    if k >= P.shape[1]:
        raise ValueError(f"positive={k} but proba has only {counted(P.shape[1], 'column')}")
    # a probability cut, as the model's threshold contract: 2 selected nothing, -1 everything
    threshold = _fraction(threshold, "threshold")
    others = P.copy()
    others[:, k] = -np.inf
    return np.where(P[:, k] >= threshold, k, others.argmax(axis=1)).astype(np.int64)


def _cut_section(yt, P, positive, threshold, w=None):
    """What a cut chosen beforehand (on validation data) delivers on these rows (weighted
    rates with weights w; n_selected counts rows)."""
    t = yt == positive
    q = P[:, positive] >= threshold
    tp, n_sel, n_pos = int(np.sum(t & q)), int(q.sum()), int(t.sum())
    if w is not None:
        tp_w, sel_w, pos_w = float(np.sum(w[t & q])), float(np.sum(w[q])), float(np.sum(w[t]))
        return {"threshold": float(threshold),
                "completeness": tp_w / pos_w if pos_w else float("nan"),
                "contamination": float(np.sum(w[~t & q])) / sel_w if sel_w else float("nan"),
                "n_selected": n_sel}
    return {"threshold": float(threshold),
            "completeness": tp / n_pos if n_pos else float("nan"),
            "contamination": (n_sel - tp) / n_sel if n_sel else float("nan"),
            "n_selected": n_sel}


def classification_report(y_true, y_pred, proba=None, positive=None, class_names=None,
                          max_contamination=0.06, cut=None, *, sample_weight=None):
    """Every classification metric in one dict.

    Keys: ``n``, ``accuracy``, ``confusion_matrix`` ((C, C) array, rows true),
    ``class_names``, ``per_class`` ({name: {completeness, contamination, support,
    n_predicted}}); with ``positive`` (a label value or a name in class_names):
    ``positive`` (label), ``positive_name``, ``completeness``, ``contamination``; with
    ``proba`` ((n,) P(class 1) for binary, or (n, C)): ``log_loss`` and ``roc_auc`` (binary:
    AUC of P(positive); more classes: one-vs-rest AUC of the positive class, or the
    macro average over classes without ``positive``); with both ``proba`` and ``positive``:
    ``completeness_at_contamination`` = {"max_contamination", "completeness", "threshold"},
    the best completeness of a cut on P(positive) whose contamination is at most
    ``max_contamination`` (default 0.06; None leaves it out - it is chosen on these rows,
    so on a test set it flatters); with ``cut`` (a threshold on P(positive) chosen
    beforehand on validation data), ``cut`` = {"threshold", "completeness",
    "contamination", "n_selected"}: what that selection delivers on these rows (rates 0/0
    are nan); a cut without proba or without positive is refused.  Pass y_pred =
    labels_at_cut(proba, positive, cut) to make the other entries describe the same
    selection.

    sample_weight: (n,) weights >= 0; every entry weighted as its metric's sample_weight
    (the confusion matrix, support and n_predicted become sums of weights, ``n`` still
    counts rows and ``sum_weight`` is the total weight).
    """
    check_cut_inputs(cut, proba, positive)
    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    _same_length(yt, yp, "y_true", "y_pred")
    w = check_weights(sample_weight, yt.shape[0])
    n_classes = int(max(yt.max(), yp.max())) + 1
    P = None
    if proba is not None:
        P = _proba_matrix(proba, yt.shape[0])
        if P.shape[1] < n_classes:
            raise ValueError(f"labels go up to {n_classes - 1} but proba has only "
                             f"{counted(P.shape[1], 'column')}")
        n_classes = P.shape[1]
    class_names, n_classes = _report_classes(class_names, n_classes)
    positive = _report_positive(positive, class_names, n_classes)

    rep = report_from_confusion(confusion_matrix(yt, yp, n_classes, sample_weight=w),
                                class_names, positive)
    if w is not None:
        rep["n"], rep["sum_weight"] = int(yt.shape[0]), float(np.sum(w))
    if P is not None:
        # in proba's dtype: its eps
        rep["log_loss"] = log_loss(yt, proba, sample_weight=w)
        # the classes present (with a positive weight)
        present = np.unique(yt if w is None else yt[w > 0])
        if n_classes == 2 or positive is not None:
            k = 1 if positive is None else positive
            if w is None:
                both = 0 < int(np.sum(yt == k)) < yt.shape[0]
            else:
                both = np.sum(w[yt == k]) > 0 and np.sum(w[yt != k]) > 0
            rep["roc_auc"] = roc_auc(yt == k, P[:, k], sample_weight=w) if both \
                else float("nan")
            if positive is not None and cut is not None:
                rep["cut"] = _cut_section(yt, P, positive, _fraction(cut, "cut"), w)
            if positive is not None and both and max_contamination is not None:
                c, t = completeness_at_contamination(yt, P[:, positive], positive,
                                                     max_contamination, sample_weight=w)
                rep["completeness_at_contamination"] = {
                    "max_contamination": max_contamination, "completeness": c, "threshold": t}
        else:  # macro one-vs-rest over the classes present
            rep["roc_auc"] = float(np.mean([roc_auc(yt == k, P[:, k], sample_weight=w)
                                            for k in present])) \
                if present.size > 1 else float("nan")
    return rep


def report_from_confusion(cm, class_names, positive=None):
    """The confusion-matrix part of classification_report's dict from a (C, C) confusion
    matrix (rows true): n, accuracy, per-class completeness / contamination (0/0 is nan,
    printed n/a) and, with ``positive``, that class's rates.  Streaming evaluation
    (``fastmlp predict --label``) accumulates cm chunk by chunk and calls this."""
    cm = np.asarray(cm)
    num = int if cm.dtype.kind in "biu" else float        # float: sums of sample weights
    rep = {"n": num(cm.sum()), "accuracy": float(np.trace(cm) / cm.sum()),
           "class_names": list(class_names), "confusion_matrix": cm, "per_class": {}}
    for k, name in enumerate(class_names):
        tp, support, n_pred = num(cm[k, k]), num(cm[k].sum()), num(cm[:, k].sum())
        rep["per_class"][name] = {
            "completeness": tp / support if support else float("nan"),
            "contamination": (n_pred - tp) / n_pred if n_pred else float("nan"),
            "support": support, "n_predicted": n_pred}
    if positive is not None:
        pc = rep["per_class"][class_names[positive]]
        rep.update(positive=positive, positive_name=class_names[positive],
                   completeness=pc["completeness"], contamination=pc["contamination"])
    return rep


def _report_classes(class_names, n_classes):
    """(class names, class count) for a report: the names given (enough for the labels),
    else "0", "1", ..."""
    if class_names is None:
        return [str(i) for i in range(n_classes)], n_classes
    class_names = [str(c) for c in class_names]
    if len(class_names) < n_classes:
        raise ValueError(f"class_names has {counted(len(class_names), 'name')} but the labels "
                         f"need {n_classes} (0..{n_classes - 1})")
    return class_names, len(class_names)


def _report_positive(positive, class_names, n_classes):
    """The positive class as a label, from a label value or a class name."""
    if positive is None:
        return None
    if isinstance(positive, str):
        if positive not in class_names:
            raise ValueError(f"positive={positive!r} is not one of the class names "
                             f"{class_names}")
        positive = class_names.index(positive)
    positive = _positive_label(positive)
    if positive >= n_classes:
        raise ValueError(f"positive={positive} is not a class label (0..{n_classes - 1})")
    return positive


def _check_report(rep, keys, made_by):
    """rep if it is a dict with ``keys`` (what ``made_by`` returns), else a TypeError naming
    it (format_report(None) said "'NoneType' object is not subscriptable")."""
    if not isinstance(rep, dict) or any(k not in rep for k in keys):
        shown = f"a dict without {[k for k in keys if k not in rep]}" \
            if isinstance(rep, dict) else repr(rep)
        raise TypeError(f"rep must be the dict that {made_by} returns, got {shown}")
    return rep


def format_report(rep):
    """A classification_report dict as aligned text (used by the CLI); an undefined rate
    (0/0: no true or no predicted member of a class) prints as n/a."""
    _check_report(rep, ("n", "accuracy", "class_names", "per_class", "confusion_matrix"),
                  "classification_report")
    lines = []
    head = [f"accuracy {rep['accuracy']:.4f}"]
    if "roc_auc" in rep:
        head.append(f"ROC AUC {format_rate(rep['roc_auc'])}")  # n/a: one class only
    if "log_loss" in rep:
        head.append(f"log loss {rep['log_loss']:.4f}")
    weights = f", sum of weights {rep['sum_weight']:.6g}" if "sum_weight" in rep else ""
    lines.append(f"test metrics (n={rep['n']}{weights}): " + ", ".join(head))
    if "positive" in rep:
        lines.append(f"{rep['positive_name']} (positive class {rep['positive']}): completeness "
                     f"{format_rate(rep['completeness'])}, contamination "
                     f"{format_rate(rep['contamination'])}")
    if "cut" in rep:
        ct = rep["cut"]
        lines.append(f"cut P({rep['positive_name']}) >= {ct['threshold']:.4g} (chosen "
                     f"beforehand): {ct['n_selected']} selected, completeness "
                     f"{format_rate(ct['completeness'])}, contamination "
                     f"{format_rate(ct['contamination'])}")
    if "completeness_at_contamination" in rep:
        cc = rep["completeness_at_contamination"]
        if np.isfinite(cc["threshold"]):
            lines.append(f"best cut on P({rep['positive_name']}) with contamination <= "
                         f"{cc['max_contamination']:g}: completeness {cc['completeness']:.4f} "
                         f"(P >= {cc['threshold']:.3g})")
        else:
            lines.append(f"no cut on P({rep['positive_name']}) reaches contamination <= "
                         f"{cc['max_contamination']:g}")
    names = rep["class_names"]
    w = max(8, max(len(n) for n in names))
    lines.append("per class: " + "  ".join(
        f"{n} compl {format_rate(v['completeness'])} contam {format_rate(v['contamination'])} "
        f"(n={_count(v['support'])})" for n, v in rep["per_class"].items()))
    lines.append("confusion matrix (rows true, columns predicted):")
    cm = rep["confusion_matrix"]
    cw = max(w, len(_count(cm.max())) + 1)
    lines.append(" " * (w + 2) + "".join(f"{n:>{cw + 1}}" for n in names))
    for n, row in zip(names, cm):
        lines.append(f"  {n:<{w}}" + "".join(f"{_count(v):>{cw + 1}}" for v in row))
    return "\n".join(lines)


def _count(v):
    """A count as text: an integer as such, a sum of sample weights to 6 digits."""
    if isinstance(v, (float, np.floating)):
        return format(float(v), ".6g")
    return str(int(v))


# ---------------------------------------------------------------------------------------
# regression
def rmse(y_true, y_pred, *, sample_weight=None):
    """Root mean squared error (averaged over outputs for 2-D targets).
    sample_weight: (n,) weights >= 0; the square root of the weighted mean squared error
    (sklearn's root_mean_squared_error)."""
    yt, yp = check_regression_pair(y_true, y_pred)
    w = check_weights(sample_weight, yt.shape[0])
    if w is not None:
        return float(np.mean(np.sqrt(np.sum(w[:, None] * (yt - yp) ** 2, axis=0)
                                     / np.sum(w))))
    return float(np.mean(np.sqrt(np.mean((yt - yp) ** 2, axis=0))))


def r2(y_true, y_pred, *, sample_weight=None):
    """Coefficient of determination 1 - SS_res / SS_tot (uniform average over outputs).
    For a constant y_true (SS_tot = 0): 1.0 if the prediction is exact, else 0.0 (as
    scikit-learn's r2_score with force_finite=True).
    sample_weight: (n,) weights >= 0; weighted sums of squares about the weighted mean
    (sklearn's r2_score)."""
    yt, yp = check_regression_pair(y_true, y_pred)
    w = check_weights(sample_weight, yt.shape[0])
    if w is not None:
        ss_res = np.sum(w[:, None] * (yt - yp) ** 2, axis=0)
        mean = np.sum(w[:, None] * yt, axis=0) / np.sum(w)
        ss_tot = np.sum(w[:, None] * (yt - mean) ** 2, axis=0)
    else:
        ss_res = np.sum((yt - yp) ** 2, axis=0)
        ss_tot = np.sum((yt - yt.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                     np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r))


# ---------------------------------------------------------------------------------------
# binomial intervals and rates in bins of a column (magnitude, redshift, ...)
def _z_value(z, confidence):
    if confidence is not None:
        if z is not None:
            raise ValueError("give either z or confidence, not both")
        conf = _fraction(confidence, "confidence")
        if not 0.0 < conf < 1.0:
            raise ValueError(f"confidence must lie strictly between 0 and 1, got {conf!r}")
        from statistics import NormalDist
        return NormalDist().inv_cdf(0.5 + conf / 2.0)
    z = 1.0 if z is None else z
    if isinstance(z, bool) or not isinstance(z, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(z) and z > 0):
        raise ValueError(f"z must be a positive number of standard deviations, got {z!r}")
    return float(z)


def _counts(x, name):
    """x (a count or an array of counts: numbers, not bools or strings) as float64."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        got = repr(x) if arr.size <= 10 else f"dtype {arr.dtype}"
        raise TypeError(f"{name} must be a count or an array of counts (numbers), got {got}")
    return arr.astype(np.float64)


def wilson_interval(k, n, z=None, confidence=None):
    """Wilson score interval (lo, hi) of a binomial fraction k / n.

    Unlike k/n +- sqrt(p(1-p)/n) it stays inside [0, 1] and is not of zero width at k = 0
    or k = n, which is where completeness and purity of small bins live.  ``z``: the width
    in standard deviations (default 1, the 68.3 % interval astronomers quote as 1 sigma);
    or ``confidence`` (e.g. 0.95, giving z = 1.960).  k and n may be arrays (broadcast);
    n = 0 gives (nan, nan).  Returns floats for scalar input, arrays otherwise.
    k and n are counts, finite with 0 <= k <= n, but need not be integers: a weighted bin
    passes its weighted successes and Kish's effective size (reliability_curve with
    sample_weight), so k = 5.5 of n = 10 is accepted.

        centre = (k + z^2/2) / (n + z^2)
        half   = z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)
    """
    zz = _z_value(z, confidence)
    k_arr, n_arr = _counts(k, "k"), _counts(n, "n")
    try:
        np.broadcast_shapes(k_arr.shape, n_arr.shape)
    except ValueError:
        raise ValueError(f"k and n must broadcast together, got shapes {k_arr.shape} and "
                         f"{n_arr.shape}") from None
    if not (np.isfinite(k_arr).all() and np.isfinite(n_arr).all()):
        raise ValueError("k and n must be finite counts")
    if (k_arr < 0).any() or (k_arr > n_arr).any():
        raise ValueError("wilson_interval needs 0 <= k <= n, got "
                         f"k={k!r}, n={n!r}")
    z2 = zz * zz
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = (k_arr + z2 / 2) / (n_arr + z2)
        half = zz / (n_arr + z2) * np.sqrt(k_arr * (n_arr - k_arr) / n_arr + z2 / 4)
    lo = np.where(n_arr > 0, np.maximum(centre - half, 0.0), np.nan)
    hi = np.where(n_arr > 0, np.minimum(centre + half, 1.0), np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


class BinnedRates(NamedTuple):
    """Completeness and purity of the ``positive`` class per bin of a column.

    Per bin (arrays of length n_bins): ``n_true`` true positives present (TP + FN),
    ``n_selected`` objects predicted positive (TP + FP), ``n_found`` true positives selected
    (TP), ``completeness`` = n_found / n_true and ``purity`` = n_found / n_selected (nan for
    0/0) with Wilson intervals ``*_lo``, ``*_hi`` at ``z`` sigma.  ``edges``: n_bins + 1 bin
    edges; ``n_outside``: rows in no bin (outside the edges, or NaN in the column)."""
    edges: np.ndarray
    n_true: np.ndarray
    n_selected: np.ndarray
    n_found: np.ndarray
    completeness: np.ndarray
    completeness_lo: np.ndarray
    completeness_hi: np.ndarray
    purity: np.ndarray
    purity_lo: np.ndarray
    purity_hi: np.ndarray
    n_outside: int
    z: float

    @property
    def contamination(self):
        return 1.0 - self.purity

    def bin_text(self, i):
        """Bin i as an interval, "[-1.45, -0.612)" (the last one closed): "-1.45--0.612"
        read as a range was ambiguous with negative edges such as colours."""
        close = "]" if i == self.n_true.size - 1 else ")"
        return f"[{self.edges[i]:.3g}, {self.edges[i + 1]:.3g}{close}"

    def table(self, column="value", positive_name="positive"):
        """Aligned text, one row per bin; 0/0 rates print as n/a."""
        head = (f"{column + ' bin':>17}  {'n_' + positive_name:>9}  {'n_sel':>7}  "
                f"{'completeness':>21}  {'purity':>21}")
        rows = [f"completeness and purity of {positive_name} per {column} bin "
                f"(Wilson {self.z:g}-sigma intervals)", head]
        for i in range(self.n_true.size):
            comp = _rate(self.completeness[i], self.completeness_lo[i], self.completeness_hi[i])
            pur = _rate(self.purity[i], self.purity_lo[i], self.purity_hi[i])
            rows.append(f"{self.bin_text(i):>17}  "
                        f"{self.n_true[i]:9d}  {self.n_selected[i]:7d}  {comp:>21}  {pur:>21}")
        if self.n_outside:
            rows.append(f"({counted(self.n_outside, 'row')} outside the bins or with no "
                        f"{column} value)")
        return "\n".join(rows)


def format_rate(v, fmt=".4f"):
    """A rate as text, ``format(v, fmt)``; nan (0/0) and None print as n/a (for the CLI's
    tables too, e.g. a cross-validation fold that selected nothing)."""
    return "n/a" if v is None or not np.isfinite(v) else format(v, fmt)


def _rate(v, lo, hi):
    if not np.isfinite(v):
        return "n/a"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _bin_edges(values, bins):
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be a positive number of bins or an array of edges, "
                             f"got {bins!r}")
        fin = values[np.isfinite(values)]
        if fin.size == 0:
            raise ValueError("values has no finite entries to bin")
        check_n_bins(bins, fin.size, "bins")
        lo, hi = float(fin.min()), float(fin.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        return np.linspace(lo, hi, int(bins) + 1)
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.isfinite(edges).all() \
            or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be a positive number of bins or a 1-D array of at least 2 "
                         f"finite, strictly increasing edges, got {bins!r}")
    return edges


def bulk_bin_edges(values, bins, coverage=0.99):
    """``bins`` + 1 equal-width edges over the central ``coverage`` of the finite ``values``
    (from the (1 - coverage) / 2 quantile to the (1 + coverage) / 2 one), for
    :func:`binned_completeness`: equal-width bins over the full range put most bins on a
    few outliers (DR6's u-g runs from -7.2 to 1.7 while 99 % of it lies in [-1.5, 1.01]).
    The rows beyond the edges are counted as outside the bins."""
    v = _vector(values, "values").astype(np.float64)
    if isinstance(coverage, (bool, np.bool_)) or not isinstance(
            coverage, (int, float, np.integer, np.floating)) or not 0 < coverage <= 1:
        raise ValueError(f"coverage must be a fraction in (0, 1], got {coverage!r}")
    if isinstance(bins, (bool, np.bool_)) or not isinstance(bins, (int, np.integer)):
        raise ValueError(f"bins must be a number of bins, got {bins!r} (edges of your own "
                         "go to binned_completeness as they are)")
    edges = _bin_edges(v, bins)       # the full range; checks bins and the finite count
    fin = v[np.isfinite(v)]
    # the quantiles as values of the data (not interpolated between tied values: 995
    # zeros and 1..5 put the upper edge at 0.005, every bin but the first empty)
    lo = np.quantile(fin, (1 - coverage) / 2, method="lower")
    hi = np.quantile(fin, (1 + coverage) / 2, method="higher")
    if not lo < hi:            # most values equal: the full range, as binned_completeness
        return edges
    return np.linspace(lo, hi, edges.size)


def binned_completeness(y_true, y_pred, positive, values, bins=10, z=None, confidence=None):
    """Completeness and purity (1 - contamination) of class ``positive`` in bins of
    ``values`` (e.g. the r magnitude).  Returns :class:`BinnedRates` (``.table()`` prints it).

    y_pred: predicted labels (e.g. ``proba[:, positive] >= cut`` turned into labels, or
    ``proba.argmax(1)``).  bins: a number of equal-width bins spanning the finite values, or
    the edges; a bin is [left, right) except the last, which includes its right edge (as
    numpy.histogram); a number of bins at most the finite values' count or 1000, as
    :func:`reliability_curve`'s n_bins.  Rows with NaN ``values`` or outside the edges are
    counted in ``n_outside``.  Intervals: :func:`wilson_interval` with ``z`` (default 1) or
    ``confidence``.
    """
    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    _same_length(yt, yp, "y_true", "y_pred")
    v = _vector(values, "values").astype(np.float64)
    _same_length(yt, v, "y_true", "values")
    p = _positive_label(positive)
    zz = _z_value(z, confidence)
    edges = _bin_edges(v, bins)
    nb = edges.size - 1
    inside = np.isfinite(v) & (v >= edges[0]) & (v <= edges[-1])
    idx = np.clip(np.searchsorted(edges, v[inside], side="right") - 1, 0, nb - 1)
    t, q = (yt[inside] == p), (yp[inside] == p)
    n_true = np.bincount(idx, weights=t, minlength=nb).astype(np.int64)
    n_sel = np.bincount(idx, weights=q, minlength=nb).astype(np.int64)
    n_found = np.bincount(idx, weights=t & q, minlength=nb).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        comp = np.where(n_true > 0, n_found / n_true, np.nan)
        pur = np.where(n_sel > 0, n_found / n_sel, np.nan)
    c_lo, c_hi = wilson_interval(n_found, n_true, z=zz)
    p_lo, p_hi = wilson_interval(n_found, n_sel, z=zz)
    return BinnedRates(edges, n_true, n_sel, n_found, comp, c_lo, c_hi, pur, p_lo, p_hi,
                       int(v.size - inside.sum()), zz)


# ---------------------------------------------------------------------------------------
# calibration: do the probabilities mean what they say?
def _event_and_prob(y_true, proba, positive):
    """(event, p): the binary event and its predicted probability that a calibration metric
    compares.  proba (n,): P(positive) (``positive`` defaults to 1: y_true == 1 is the
    event).  proba (n, C) with ``positive``: column ``positive`` against y_true == positive
    (one-vs-rest).  proba (n, C) without ``positive``: the top-label form (Guo et al. 2017),
    p = the largest probability of each row, event = that class is the true one."""
    yt = _labels(y_true, "y_true")
    if yt.shape[0] == 0:
        raise ValueError("y_true is empty: need at least one sample")
    raw = np.asarray(proba)
    P = _proba_matrix(proba, yt.shape[0])
    if raw.ndim == 1 or (raw.ndim == 2 and raw.shape[1] == 1):
        k = 1 if positive is None else _positive_label(positive)
        return yt == k, P[:, 1]
    if yt.max() >= P.shape[1]:
        raise ValueError(f"y_true has label {int(yt.max())} but proba has only "
                         f"{counted(P.shape[1], 'column')}")
    if positive is not None:
        k = _positive_label(positive)
        if k >= P.shape[1]:
            raise ValueError(f"positive={k} but proba has only {counted(P.shape[1], 'column')}")
        return yt == k, P[:, k]
    top = P.argmax(axis=1)
    return top == yt, P[np.arange(P.shape[0]), top]


def brier_score(y_true, proba, positive=None, *, sample_weight=None):
    """Mean squared difference between the predicted probability and the outcome (0 or 1):
    0 is perfect, 0.25 is a constant guess of 0.5 on a balanced problem.

    proba (n,): P(positive) (``positive`` defaults to 1); (n, C) with ``positive``: the
    one-vs-rest score of that class.  (n, C) without ``positive``: Brier's multi-class
    score, mean over rows of sum_k (p_k - [y == k])^2 (ranges 0..2; for C = 2 it is twice
    the binary score).
    sample_weight: (n,) weights >= 0; the weighted mean over rows (sklearn's
    brier_score_loss)."""
    raw = np.asarray(proba)
    if raw.ndim == 2 and raw.shape[1] > 1 and positive is None:
        yt, P = _labels_and_proba(y_true, proba)
        w = check_weights(sample_weight, yt.shape[0])
        onehot = np.zeros_like(P)
        onehot[np.arange(yt.shape[0]), yt] = 1.0
        per_row = np.sum((P - onehot) ** 2, axis=1)
    else:
        event, p = _event_and_prob(y_true, proba, positive)
        w = check_weights(sample_weight, event.shape[0])
        per_row = (p - event) ** 2
    if w is not None:
        return float(np.sum(w * per_row) / np.sum(w))
    return float(np.mean(per_row))


class ReliabilityCurve(NamedTuple):
    """Per probability bin: ``edges`` (n_bins + 1, equal width on [0, 1]), ``count`` rows,
    ``mean_predicted`` (their mean probability), ``observed`` (the fraction for which the
    event happened), with Wilson 1-sigma interval ``observed_lo``, ``observed_hi``; nan in
    empty bins.  A calibrated model has observed == mean_predicted."""
    edges: np.ndarray
    count: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray
    observed_lo: np.ndarray
    observed_hi: np.ndarray


def reliability_curve(y_true, proba, positive=None, n_bins=10, *, sample_weight=None):
    """The reliability diagram's numbers: rows binned by predicted probability into
    ``n_bins`` equal-width bins on [0, 1] ([0, 0.1), ..., [0.9, 1.0] for 10: the last bin
    includes 1), each bin's mean predicted probability against the observed frequency.
    n_bins: at most the number of rows or MAX_BINS_WITHOUT_ROWS (1000), whichever is
    larger (more bins than rows are mostly empty; 10**9 of them exhausted the memory).
    proba and positive as in :func:`brier_score` (without ``positive`` a multi-class proba
    gives the top-label curve: confidence against accuracy).  Returns
    :class:`ReliabilityCurve`.
    sample_weight: (n,) weights >= 0; weighted bin means (``count`` still counts rows; nan
    where a bin's weights sum to 0), Wilson intervals at Kish's effective sample size
    (sum w)^2 / sum w^2 of the bin."""
    return _reliability(y_true, proba, positive, n_bins, sample_weight)[0]


def _reliability(y_true, proba, positive, n_bins, sample_weight):
    """(ReliabilityCurve, the weight of each bin: its row count, or its sum of weights)."""
    check_n_bins(n_bins)                       # its type before the data are read
    event, p = _event_and_prob(y_true, proba, positive)
    nb = check_n_bins(n_bins, event.shape[0])
    w = check_weights(sample_weight, event.shape[0])
    edges = np.linspace(0.0, 1.0, nb + 1)
    # the bins of the edges returned (p * nb rounded otherwise: 0.6 fell in the bin that
    # starts at linspace's 0.6000000000000001)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, nb - 1)
    count = np.bincount(idx, minlength=nb)
    if w is not None:
        wsum = np.bincount(idx, weights=w, minlength=nb)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_p = np.where(wsum > 0, np.bincount(idx, weights=w * p, minlength=nb) / wsum,
                              np.nan)
            obs = np.where(wsum > 0, np.bincount(idx, weights=w * event, minlength=nb) / wsum,
                           np.nan)
            w2 = np.bincount(idx, weights=w * w, minlength=nb)
            n_eff = np.where(w2 > 0, wsum * wsum / np.where(w2 > 0, w2, 1.0), 0.0)
        lo, hi = wilson_interval(np.where(wsum > 0, np.minimum(obs, 1.0) * n_eff, 0.0), n_eff)
        return ReliabilityCurve(edges, count.astype(np.int64), mean_p, obs, lo, hi), wsum
    hits = np.bincount(idx, weights=event, minlength=nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_p = np.where(count > 0, np.bincount(idx, weights=p, minlength=nb) / count, np.nan)
        obs = np.where(count > 0, hits / count, np.nan)
    lo, hi = wilson_interval(hits, count)
    return ReliabilityCurve(edges, count.astype(np.int64), mean_p, obs, lo, hi), count


def expected_calibration_error(y_true, proba, positive=None, n_bins=10, *,
                               sample_weight=None):
    """ECE = sum over bins of (n_b / n) |observed_b - mean_predicted_b|, with the equal-width
    bins of :func:`reliability_curve` (same arguments).  0 for a calibrated model; e.g. a
    bin of mean P = 0.45 holding 27 % quasars, with half the rows, contributes 0.09.
    sample_weight: (n,) weights >= 0; n_b and n become sums of weights, with the weighted
    bin means of :func:`reliability_curve`."""
    c, n_b = _reliability(y_true, proba, positive, n_bins, sample_weight)
    full = n_b > 0
    return float(np.sum(n_b[full] * np.abs(c.observed[full] - c.mean_predicted[full]))
                 / n_b.sum())


def _logit_matrix(logits, n):
    z = np.asarray(logits)
    if z.dtype.kind not in "biuf":
        raise TypeError(f"logits must hold numbers, got dtype {z.dtype}")
    z = z.astype(np.float64)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    if z.ndim == 1:                      # one sigmoid output: softmax over (0, z) is the same
        z = np.stack([np.zeros_like(z), z], axis=1)
    if z.ndim != 2:
        raise ValueError("logits must be (n,) or (n, 1) for a binary model or (n, k) for k "
                         f"classes, got shape {np.shape(logits)}")
    if z.shape[0] != n:
        raise ValueError(f"y_true has {counted(n, 'sample')} but logits has {z.shape[0]}; "
                         "they must have the same length")
    return check_finite(z, "logits")


def _nll_slope(z, y, beta):
    """d/dbeta of the mean NLL of softmax(beta z): mean(E_p[z] - z_y); increasing in beta
    because the NLL is convex in beta."""
    a = beta * z
    a -= a.max(axis=1, keepdims=True)
    e = np.exp(a)
    p = e / e.sum(axis=1, keepdims=True)
    return float(np.mean(np.sum(p * z, axis=1) - z[np.arange(z.shape[0]), y]))


def fit_temperature(logits, y_true, t_min=0.01, t_max=100.0):
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the mean negative
    log-likelihood of softmax(logits / T) (sigmoid(logits / T) for one output) on
    validation data.  Calibrated probabilities are then ``softmax(logits / T)``; T > 1
    softens over-confident probabilities, and the predicted class never changes.

    logits: (n,) or (n, 1) of a binary model (P(class 1) = sigmoid(z)) or (n, k); y_true:
    labels 0..k-1 (0/1 for binary).  The NLL is convex in 1/T, so its minimum is found by
    bisection on the sign of the slope.  Returns T as a float, clipped to [t_min, t_max]
    with a RuntimeWarning when the optimum lies beyond (e.g. separable validation data drive
    T -> 0).  Raises ValueError when the logits rank the classes no better than chance
    (the slope at 1/T = 0 is not negative: no positive temperature helps).
    """
    import warnings
    yt = _labels(y_true, "y_true")
    if yt.shape[0] == 0:
        raise ValueError("y_true is empty: need at least one sample")
    z = _logit_matrix(logits, yt.shape[0])
    if yt.max() >= z.shape[1]:
        raise ValueError(f"y_true has label {int(yt.max())} but the logits describe "
                         f"{counted(z.shape[1], 'class', 'classes')}")
    if not (0 < t_min < t_max):
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min!r}, t_max={t_max!r}")
    if _nll_slope(z, yt, 0.0) >= 0:
        raise ValueError("the logits do not rank the true classes above chance on these "
                         "data: no positive temperature lowers the NLL")
    lo, hi = np.log(1.0 / t_max), np.log(1.0 / t_min)       # in log(beta), beta = 1 / T
    if _nll_slope(z, yt, np.exp(hi)) < 0:
        warnings.warn(f"fit_temperature: the NLL still falls at T = {t_min:g} (validation "
                      "data separable?); returning T = t_min", RuntimeWarning, stacklevel=2)
        return float(t_min)
    if _nll_slope(z, yt, np.exp(lo)) > 0:
        warnings.warn(f"fit_temperature: the best T exceeds t_max = {t_max:g} (the logits "
                      "carry almost no information); returning T = t_max", RuntimeWarning,
                      stacklevel=2)
        return float(t_max)
    for _ in range(60):                   # 60 halvings of a bracket of width ~9.2 in log
        mid = 0.5 * (lo + hi)
        if _nll_slope(z, yt, np.exp(mid)) < 0:
            lo = mid
        else:
            hi = mid
    return float(np.exp(-0.5 * (lo + hi)))


def apply_temperature(logits, temperature):
    """Calibrated probabilities from logits and a :func:`fit_temperature` T: (n, 2)
    [1 - p, p] for binary logits ((n,) or (n, 1)), (n, k) softmax(logits / T) otherwise -
    the same layout as MLP.predict_proba."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer,
                                                                     np.floating)) \
            or not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    n = np.shape(logits)[0] if np.ndim(logits) else 0
    z = _logit_matrix(logits, n) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------
# photometric redshifts
class PhotozMetrics(NamedTuple):
    """The usual photo-z figures of merit, with dz = z_phot - z_spec:

    - ``sigma_nmad`` = 1.48 * median(|dz - median(dz)| / (1 + z_spec)), the normalised
      median absolute deviation (1.48 makes it the standard deviation of a Gaussian);
    - ``outlier_fraction``: fraction with |dz| / (1 + z_spec) > ``outlier_cut`` (0.15);
    - ``bias`` = median(dz / (1 + z_spec)) (the median, so that outliers do not dominate;
      positive: z_phot too high);
    - ``rmse`` = sqrt(mean(dz^2)), in redshift units, not normalised (outliers count fully).
    """
    n: int
    sigma_nmad: float
    outlier_fraction: float
    n_outliers: int
    bias: float
    rmse: float
    outlier_cut: float

    def format(self):
        return (f"photo-z (n={self.n}): sigma_NMAD {self.sigma_nmad:.4f}, outlier fraction "
                f"{self.outlier_fraction:.4f} ({self.n_outliers} with |dz|/(1+z) > "
                f"{self.outlier_cut:g}), bias {self.bias:+.4f}, RMSE {self.rmse:.4f}")


def photoz_metrics(z_spec, z_phot, outlier_cut=0.15):
    """σ_NMAD, outlier fraction, bias and RMSE of photometric redshifts against
    spectroscopic ones (definitions in :class:`PhotozMetrics`).  Both (n,) finite, z_spec
    > -1.  ``.format()`` gives the one-line report."""
    zs = check_finite(_vector(z_spec, "z_spec"), "z_spec")
    zp = check_finite(_vector(z_phot, "z_phot"), "z_phot")
    _same_length(zs, zp, "z_spec", "z_phot")
    if (zs <= -1).any():
        raise ValueError(f"z_spec must be > -1 (1 + z divides dz), got {shown(zs.min())}")
    # a number before float(): float("a") said only "could not convert string to float"
    if isinstance(outlier_cut, (bool, np.bool_)) or not isinstance(
            outlier_cut, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(outlier_cut) and outlier_cut > 0):
        raise ValueError(f"outlier_cut must be a positive number, got {outlier_cut!r}")
    cut = float(outlier_cut)
    dz = zp - zs
    norm = dz / (1.0 + zs)
    nmad = 1.48 * float(np.median(np.abs(dz - np.median(dz)) / (1.0 + zs)))
    out = int(np.sum(np.abs(norm) > cut))
    return PhotozMetrics(int(zs.size), nmad, out / zs.size, out, float(np.median(norm)),
                         float(np.sqrt(np.mean(dz * dz))), cut)


def regression_report(y_true, y_pred, redshift=False, outlier_cut=0.15):
    """Regression metrics in one dict: ``n``, ``rmse``, ``r2``; with ``redshift=True``
    (y_true spectroscopic, y_pred photometric redshifts, 1-D) also ``photoz``, a
    :class:`PhotozMetrics`.  A model trained on log(1 + z) must be given
    ``np.expm1(prediction)`` here: the figures of merit are defined on z."""
    check_bool(redshift, "redshift")
    yt, yp = check_regression_pair(y_true, y_pred)
    rep = {"n": int(yt.shape[0]), "rmse": rmse(yt, yp), "r2": r2(yt, yp)}
    if redshift:
        if yt.shape[1] != 1:
            raise ValueError(f"redshift=True needs one target column, got {yt.shape[1]}")
        rep["photoz"] = photoz_metrics(yt[:, 0], yp[:, 0], outlier_cut)
    return rep


def format_regression_report(rep):
    """A regression_report dict as text (used by the CLI)."""
    _check_report(rep, ("n", "rmse", "r2"), "regression_report")
    lines = [f"test metrics (n={rep['n']}): RMSE {rep['rmse']:.4f}, R^2 {rep['r2']:.4f}"]
    if "photoz" in rep:
        lines.append(rep["photoz"].format())
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
def grid_edge(lrs, best_lr, name="lr"):
    """The advice when ``best_lr`` is the smallest or the largest value of the grid ``lrs``
    (the best value may lie outside the range tried), else None.  No warning: see
    :func:`edge_warning`.  lrs: finite numbers (any shape; fewer than two: None); best_lr:
    a finite number; ``name`` (default "lr") is what they are values of, in the text."""
    try:
        grid = np.asarray(lrs)
    except Exception:  # ragged lists etc.
        grid = np.asarray(None)
    if grid.dtype.kind not in "iuf" or not all_finite(grid):
        raise ValueError(f"lrs must be an array of finite numbers (the {name} values tried), "
                         f"got {lrs!r}")
    if isinstance(best_lr, np.ndarray) and best_lr.ndim == 0:
        best_lr = best_lr.item()     # a 0-d array (np.asarray of a number): its number
    if isinstance(best_lr, (bool, np.bool_)) or not isinstance(best_lr, numbers.Real) \
            or not math.isfinite(best_lr):
        raise ValueError(f"best_lr must be a finite number (the chosen {name}), got "
                         f"{best_lr!r}")
    grid = np.sort(grid.astype(np.float64).ravel())
    if grid.size < 2:
        return None
    if best_lr <= grid[0]:
        return (f"the chosen {name} {best_lr:.3g} is the smallest of the grid; the best {name} "
                f"may be smaller: extend the grid below {grid[0]:.3g}")
    if best_lr >= grid[-1]:
        return (f"the chosen {name} {best_lr:.3g} is the largest of the grid; the best {name} "
                f"may be larger: extend the grid above {grid[-1]:.3g}")
    return None


def edge_warning(lrs, best_lr, name="lr"):
    """Warn (UserWarning) when ``best_lr`` is the smallest or the largest of the grid
    ``lrs`` (see :func:`grid_edge`).  Returns the warning text, or None when best_lr is
    inside the grid."""
    import warnings
    msg = grid_edge(lrs, best_lr, name)
    if msg is not None:
        warnings.warn(msg, UserWarning, stacklevel=2)
    return msg
