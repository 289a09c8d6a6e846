"""Classification and regression metrics, plain NumPy, checked against scikit-learn.

Classification labels are integers ``0..C-1`` (``Catalog.y``); for the astronomer's metrics a
*positive* class (the quasars) is named by its label value:

- completeness = TP / (TP + FN), the recall of the positive class: the fraction of the true
  quasars that the classifier finds.  Undefined (0/0) when ``y_true`` holds no positives:
  returned as ``nan``.
- contamination = FP / (TP + FP) = 1 - precision: the fraction of the objects selected as
  quasars that are not quasars.  When nothing is predicted positive (TP + FP = 0) the
  selection is empty and contains no contaminants: returned as ``0.0``.

``score`` arguments are "higher means more likely positive" (e.g. ``proba[:, positive]``).
"""

from typing import NamedTuple

import numpy as np

__all__ = ["accuracy", "log_loss", "roc_auc", "confusion_matrix", "completeness",
           "contamination", "precision", "classification_report", "format_report",
           "completeness_contamination_curve", "CompletenessContaminationCurve",
           "completeness_at_contamination", "rmse", "r2"]


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


def _labels(y, name):
    """Integer class labels >= 0 as int64."""
    arr = _vector(y, name)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains {int((~np.isfinite(arr)).sum())} NaN or inf "
                             "values; class labels must be integers")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values "
                             f"such as {arr[arr != np.round(arr)][0]!r}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must hold class labels >= 0, got {arr.min()!r}")
    return arr.astype(np.int64)


def _same_length(a, b, na, nb):
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{na} has {a.shape[0]} samples but {nb} has {b.shape[0]}; they "
                         "must have the same length")
    if a.shape[0] == 0:
        raise ValueError(f"{na} and {nb} are empty: need at least one sample")


def _finite(a, name):
    a = np.asarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains {int((~np.isfinite(a)).sum())} NaN or inf values")
    return a


def _positive_label(positive, name="positive"):
    if isinstance(positive, (bool, np.bool_)) or not isinstance(positive, (int, np.integer)) \
            or positive < 0:
        raise ValueError(f"{name} must be a class label (an integer >= 0), got {positive!r}")
    return int(positive)


# ---------------------------------------------------------------------------------------
# classification
def accuracy(y_true, y_pred):
    """Fraction of samples with ``y_pred == y_true``."""
    yt = _vector(y_true, "y_true", numeric=False)
    yp = _vector(y_pred, "y_pred", numeric=False)
    _same_length(yt, yp, "y_true", "y_pred")
    return float(np.mean(yt == yp))


def confusion_matrix(y_true, y_pred, n_classes=None):
    """(C, C) int64 counts: row = true class, column = predicted class (scikit-learn's
    convention).  ``n_classes`` defaults to 1 + the largest label seen."""
    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    _same_length(yt, yp, "y_true", "y_pred")
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
    return np.bincount(yt * c + yp, minlength=c * c).reshape(c, c).astype(np.int64)


def _tp_fp_fn(y_true, y_pred, positive):
    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    _same_length(yt, yp, "y_true", "y_pred")
    p = _positive_label(positive)
    t, q = yt == p, yp == p
    return int(np.sum(t & q)), int(np.sum(~t & q)), int(np.sum(t & ~q))


def completeness(y_true, y_pred, positive):
    """Recall of class ``positive``: TP / (TP + FN).  ``nan`` when y_true has no positives."""
    tp, _, fn = _tp_fp_fn(y_true, y_pred, positive)
    return tp / (tp + fn) if tp + fn else float("nan")


def precision(y_true, y_pred, positive):
    """Precision of class ``positive``: TP / (TP + FP); 1.0 when nothing is predicted
    positive (so that contamination = 1 - precision = 0 for an empty selection)."""
    tp, fp, _ = _tp_fp_fn(y_true, y_pred, positive)
    return tp / (tp + fp) if tp + fp else 1.0


def contamination(y_true, y_pred, positive):
    """1 - precision of class ``positive``: FP / (TP + FP), the fraction of the selected
    objects that are not ``positive``.  0.0 when nothing is predicted positive."""
    tp, fp, _ = _tp_fp_fn(y_true, y_pred, positive)
    return fp / (tp + fp) if tp + fp else 0.0


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
        raise ValueError(f"y_true has {n} samples but {name} has {p.shape[0]}; they must have "
                         "the same length")
    if n_classes is not None and p.shape[1] != n_classes:
        raise ValueError(f"{name} has {p.shape[1]} columns but there are {n_classes} classes")
    _finite(p, name)
    if (p < 0).any() or (p > 1).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1], got values in "
                         f"[{p.min():.3g}, {p.max():.3g}]")
    return p


def log_loss(y_true, proba, eps=1e-15):
    """Mean negative log-likelihood -mean(log p[i, y_i]).

    proba: (n,) probabilities of class 1 (binary) or (n, C) class probabilities (rows are
    renormalised to sum to 1, as scikit-learn does).  Probabilities are clipped to
    [eps, 1 - eps] so a confident mistake costs -log(eps) (about 34.5), not inf.
    """
    yt = _labels(y_true, "y_true")
    if yt.shape[0] == 0:
        raise ValueError("y_true is empty: need at least one sample")
    p = _proba_matrix(proba, yt.shape[0])
    if yt.max() >= p.shape[1]:
        raise ValueError(f"y_true has label {int(yt.max())} but proba has only {p.shape[1]} "
                         f"columns (classes 0..{p.shape[1] - 1})")
    s = p.sum(axis=1, keepdims=True)
    if (s <= 0).any():
        raise ValueError("proba has rows that sum to 0")
    p = np.clip(p / s, eps, 1 - eps)
    return float(-np.mean(np.log(p[np.arange(yt.shape[0]), yt])))


def _average_ranks(x):
    """Ranks 1..n of x, ties given the average of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
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


def roc_auc(y_true, score, positive=None):
    """Area under the ROC curve of a binary problem (Mann-Whitney U with average ranks for
    tied scores; equals sklearn.metrics.roc_auc_score).

    y_true: 0/1 labels (1 = positive), or any labels with ``positive`` naming the positive
    one.  score: (n,) higher = more likely positive.  Raises ValueError if only one class is
    present (the AUC is undefined).
    """
    t = _binary_truth(y_true, positive)
    s = _vector(score, "score")
    _same_length(t, s, "y_true", "score")
    s = _finite(s, "score")
    n_pos = int(t.sum())
    n_neg = t.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"roc_auc needs both classes in y_true, got {n_pos} positives and "
                         f"{n_neg} negatives")
    r = _average_ranks(s)
    u = r[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


class CompletenessContaminationCurve(NamedTuple):
    """Selecting ``score >= thresholds[k]`` gives ``completeness[k]`` and
    ``contamination[k]``; thresholds descend (completeness rises along the arrays)."""
    thresholds: np.ndarray
    completeness: np.ndarray
    contamination: np.ndarray
    n_selected: np.ndarray


def completeness_contamination_curve(y_true, score, positive):
    """Completeness and contamination of the selection ``score >= t`` for every distinct
    score t (descending).  Each point is what a catalog cut at that threshold delivers;
    plot contamination against completeness to choose the cut."""
    t = _binary_truth(y_true, positive)
    s = _vector(score, "score")
    _same_length(t, s, "y_true", "score")
    s = _finite(s, "score")
    n_pos = int(t.sum())
    if n_pos == 0:
        raise ValueError(f"y_true has no samples of the positive class {positive!r}")
    order = np.argsort(-s, kind="mergesort")
    ss, ts = s[order], t[order]
    tp = np.cumsum(ts)
    last = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), ss.shape[0] - 1]   # end of each tie group
    tp, sel = tp[last], last + 1
    return CompletenessContaminationCurve(ss[last].copy(), tp / n_pos, 1.0 - tp / sel,
                                          sel.astype(np.int64))


def completeness_at_contamination(y_true, score, positive, max_contamination=0.06):
    """(completeness, threshold): the highest completeness of a cut ``score >= threshold``
    whose contamination is at most ``max_contamination`` (completeness 0.0 and threshold
    inf if no cut qualifies)."""
    if not (isinstance(max_contamination, (int, float, np.floating))
            and 0.0 <= max_contamination <= 1.0):
        raise ValueError(f"max_contamination must be a number in [0, 1], got "
                         f"{max_contamination!r}")
    c = completeness_contamination_curve(y_true, score, positive)
    ok = np.flatnonzero(c.contamination <= max_contamination)
    if ok.size == 0:
        return 0.0, float("inf")
    k = ok[np.argmax(c.completeness[ok])]
    return float(c.completeness[k]), float(c.thresholds[k])


def classification_report(y_true, y_pred, proba=None, positive=None, class_names=None,
                          max_contamination=0.06):
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
    ``max_contamination`` (default 0.06).
    """
    yt = _labels(y_true, "y_true")
    yp = _labels(y_pred, "y_pred")
    _same_length(yt, yp, "y_true", "y_pred")
    n_classes = int(max(yt.max(), yp.max())) + 1
    P = None
    if proba is not None:
        P = _proba_matrix(proba, yt.shape[0])
        if P.shape[1] < n_classes:
            raise ValueError(f"labels go up to {n_classes - 1} but proba has only "
                             f"{P.shape[1]} columns")
        n_classes = P.shape[1]
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) < n_classes:
            raise ValueError(f"class_names has {len(class_names)} names but the labels need "
                             f"{n_classes} (0..{n_classes - 1})")
        n_classes = len(class_names)
    else:
        class_names = [str(i) for i in range(n_classes)]
    if positive is not None:
        if isinstance(positive, str):
            if positive not in class_names:
                raise ValueError(f"positive={positive!r} is not one of the class names "
                                 f"{class_names}")
            positive = class_names.index(positive)
        positive = _positive_label(positive)
        if positive >= n_classes:
            raise ValueError(f"positive={positive} is not a class label (0..{n_classes - 1})")

    cm = confusion_matrix(yt, yp, n_classes)
    rep = {"n": int(yt.shape[0]), "accuracy": float(np.trace(cm) / cm.sum()),
           "class_names": class_names, "confusion_matrix": cm, "per_class": {}}
    for k, name in enumerate(class_names):
        tp, support, n_pred = int(cm[k, k]), int(cm[k].sum()), int(cm[:, k].sum())
        rep["per_class"][name] = {
            "completeness": tp / support if support else float("nan"),
            "contamination": (n_pred - tp) / n_pred if n_pred else 0.0,
            "support": support, "n_predicted": n_pred}
    if positive is not None:
        rep["positive"] = positive
        rep["positive_name"] = class_names[positive]
        rep["completeness"] = rep["per_class"][class_names[positive]]["completeness"]
        rep["contamination"] = rep["per_class"][class_names[positive]]["contamination"]
    if P is not None:
        rep["log_loss"] = log_loss(yt, P)
        present = np.unique(yt)
        if n_classes == 2 or positive is not None:
            k = 1 if positive is None else positive
            both = 0 < int(np.sum(yt == k)) < yt.shape[0]
            rep["roc_auc"] = roc_auc(yt == k, P[:, k]) if both else float("nan")
            if positive is not None and both:
                c, t = completeness_at_contamination(yt, P[:, positive], positive,
                                                     max_contamination)
                rep["completeness_at_contamination"] = {
                    "max_contamination": max_contamination, "completeness": c, "threshold": t}
        else:  # macro one-vs-rest over the classes present
            rep["roc_auc"] = float(np.mean([roc_auc(yt == k, P[:, k]) for k in present])) \
                if present.size > 1 else float("nan")
    return rep


def format_report(rep):
    """A classification_report dict as aligned text (used by the CLI)."""
    lines = []
    head = [f"accuracy {rep['accuracy']:.4f}"]
    if "roc_auc" in rep:
        head.append(f"ROC AUC {rep['roc_auc']:.4f}")
    if "log_loss" in rep:
        head.append(f"log loss {rep['log_loss']:.4f}")
    lines.append(f"test metrics (n={rep['n']}): " + ", ".join(head))
    if "positive" in rep:
        lines.append(f"{rep['positive_name']} (positive class {rep['positive']}): completeness "
                     f"{rep['completeness']:.4f}, contamination {rep['contamination']:.4f}")
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
        f"{n} compl {v['completeness']:.4f} contam {v['contamination']:.4f} "
        f"(n={v['support']})" for n, v in rep["per_class"].items()))
    lines.append("confusion matrix (rows true, columns predicted):")
    cm = rep["confusion_matrix"]
    cw = max(w, len(str(int(cm.max()))) + 1)
    lines.append(" " * (w + 2) + "".join(f"{n:>{cw + 1}}" for n in names))
    for n, row in zip(names, cm):
        lines.append(f"  {n:<{w}}" + "".join(f"{int(v):>{cw + 1}}" for v in row))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# regression
def _regression_pair(y_true, y_pred):
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    for a, nm in ((yt, "y_true"), (yp, "y_pred")):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{nm} must hold numbers, got dtype {a.dtype}")
        if a.ndim not in (1, 2):
            raise ValueError(f"{nm} must be 1-D or 2-D (n_samples[, n_outputs]), got shape "
                             f"{a.shape}")
    if yt.ndim == 1:
        yt = yt[:, None]
    if yp.ndim == 1:
        yp = yp[:, None]
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has shape {np.shape(y_true)} but y_pred has "
                         f"{np.shape(y_pred)}; they must match")
    if yt.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty: need at least one sample")
    return _finite(yt, "y_true"), _finite(yp, "y_pred")


def rmse(y_true, y_pred):
    """Root mean squared error (averaged over outputs for 2-D targets)."""
    yt, yp = _regression_pair(y_true, y_pred)
    return float(np.mean(np.sqrt(np.mean((yt - yp) ** 2, axis=0))))


def r2(y_true, y_pred):
    """Coefficient of determination 1 - SS_res / SS_tot (uniform average over outputs).
    For a constant y_true (SS_tot = 0): 1.0 if the prediction is exact, else 0.0 (as
    scikit-learn's r2_score with force_finite=True)."""
    yt, yp = _regression_pair(y_true, y_pred)
    ss_res = np.sum((yt - yp) ** 2, axis=0)
    ss_tot = np.sum((yt - yt.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                     np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r))
