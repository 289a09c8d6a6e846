"""Metrics accumulated chunk by chunk, so that ``fastmlp predict --label`` evaluates a model
on a catalog that does not fit in memory, and prints the report ``fastmlp train`` prints
(fastmlp.metrics.format_report).

Exact: the confusion matrix and everything derived from it (accuracy, per-class and
positive-class completeness / contamination), the log loss and, for a model with a stored
cut, what that cut selects.  From histograms: the ROC AUC
and the best cut on P(positive) at a contamination limit, over 65,536 bins of the logit of
each class probability (bin width 0.0012 in logit; the AUC counts pairs within one bin as
ties, so it agrees with the exact value to about 1e-4 on ordinary catalogs).  Memory: a few
MB whatever the number of rows, except the photo-z medians of a regression (16 bytes per
row with a redshift and a prediction)."""

import numpy as np

from .. import metrics

__all__ = ["StreamingClassificationReport", "StreamingRegressionReport", "REDSHIFT_NAMES",
           "looks_like_redshift", "report_text", "worse_than_chance",
           "chance_kappa_shortfall"]

BINS = 1 << 16
LOGIT_RANGE = 40.0      # logits beyond +-40 (p within 4e-18 of 0 or 1) share the end bins


def _logit_bins(p):
    p = np.clip(p.astype(np.float64), 1e-300, 1.0)
    with np.errstate(divide="ignore"):
        z = np.log(p) - np.log1p(-np.minimum(p, 1 - 1e-17))
    z = np.clip(z, -LOGIT_RANGE, LOGIT_RANGE)
    return np.minimum(((z + LOGIT_RANGE) / (2 * LOGIT_RANGE) * BINS).astype(np.int64),
                      BINS - 1)


def _bin_lower_p(b):
    z = b / BINS * 2 * LOGIT_RANGE - LOGIT_RANGE
    return float(1.0 / (1.0 + np.exp(-z)))


class StreamingClassificationReport:
    """``update(y, pred, proba, valid)`` per chunk, then ``report()`` (the dict of
    metrics.classification_report) or ``format()``.  Rows count when they have a label
    (y >= 0) and a prediction (``valid``)."""

    def __init__(self, class_names, positive=None, max_contamination=0.06, cut=None):
        self.names = [str(c) for c in class_names]
        self.C, self.positive, self.max_contamination = len(self.names), positive, \
            max_contamination
        self.cut = cut          # a threshold on P(positive) chosen beforehand (the model's)
        self.cut_counts = np.zeros(3, np.int64)          # true positives, selected, positives
        self.cm = np.zeros((self.C, self.C), np.int64)
        self.nll = 0.0
        self.hist = np.zeros((self.C, 2, BINS), np.int64)   # [class, is that class, bin]

    def update(self, y, pred, proba, valid):
        ok = valid & (y >= 0)
        y, pred, P = y[ok], pred[ok], proba[ok].astype(np.float64)
        if not y.size:
            return
        self.cm += np.bincount(y * self.C + pred, minlength=self.C * self.C).reshape(
            self.C, self.C)
        if self.cut is not None and self.positive is not None:
            t, q = y == self.positive, P[:, self.positive] >= self.cut
            self.cut_counts += [np.count_nonzero(t & q), np.count_nonzero(q),
                                np.count_nonzero(t)]
        # metrics.log_loss's rule (clipped at the eps of proba's dtype, not renormalised)
        self.nll += float(metrics.log_loss_per_row(y, proba[ok]).sum())
        P = P / P.sum(axis=1, keepdims=True)
        for k in self._auc_classes():
            b = _logit_bins(P[:, k])
            is_k = (y == k).astype(np.int64)
            self.hist[k] += np.bincount(is_k * BINS + b, minlength=2 * BINS).reshape(2, BINS)

    def _auc_classes(self):
        if self.positive is not None:
            return [self.positive]
        return [1] if self.C == 2 else range(self.C)

    def _auc(self, k):
        neg, pos = self.hist[k]
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / (n_pos * n_neg))

    def _best_cut(self, k):
        neg, pos = self.hist[k]
        tp = np.cumsum(pos[::-1])                  # selecting bins >= b, from the top
        sel = np.cumsum((pos + neg)[::-1])
        n_pos = pos.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            contam = np.where(sel > 0, 1.0 - tp / sel, 0.0)
        ok = np.flatnonzero((contam <= self.max_contamination) & (sel > 0))
        if ok.size == 0 or n_pos == 0:
            return 0.0, float("inf")
        j = ok[np.argmax(tp[ok])]
        return float(tp[j] / n_pos), _bin_lower_p(BINS - 1 - j)

    def report(self):
        n = int(self.cm.sum())
        if n == 0:
            raise ValueError("no rows with both a label and a prediction to evaluate")
        rep = metrics.report_from_confusion(self.cm, self.names, self.positive)
        rep["log_loss"] = self.nll / n
        present = np.flatnonzero(self.cm.sum(axis=1))
        if self.positive is not None or self.C == 2:
            k = 1 if self.positive is None else self.positive
            rep["roc_auc"] = self._auc(k)
            if self.positive is not None and self.cut is not None:
                tp, sel, pos = (int(v) for v in self.cut_counts)
                rep["cut"] = {"threshold": float(self.cut),
                              "completeness": tp / pos if pos else float("nan"),
                              "contamination": (sel - tp) / sel if sel else float("nan"),
                              "n_selected": sel}
            if self.positive is not None and np.isfinite(rep["roc_auc"]) and \
                    self.max_contamination is not None:
                c, t = self._best_cut(k)
                rep["completeness_at_contamination"] = {
                    "max_contamination": self.max_contamination, "completeness": c,
                    "threshold": t}
        else:
            rep["roc_auc"] = float(np.mean([self._auc(k) for k in present])) \
                if present.size > 1 else float("nan")
        return rep

    def format(self, title="test metrics"):
        return report_text(self.report(), title)


def _auc_scope(rep):
    """What a report's ROC AUC is over, when it is not simply class 1 against class 0: the
    positive class against all the others, or the mean of every class against the rest."""
    if len(rep["class_names"]) <= 2:
        return None
    return f"{rep['positive_name']} vs rest" if "positive" in rep else "mean of one-vs-rest"


def report_text(rep, title="test metrics"):
    """metrics.format_report's text with its first line's "test metrics" said as ``title``
    (predict evaluates a catalog that may be the training file: not a test set) and, for
    more than two classes, what the ROC AUC is over (QSO vs rest)."""
    text = metrics.format_report(rep).replace("test metrics (", f"{title} (", 1)
    scope = _auc_scope(rep)
    if scope is not None and "roc_auc" in rep:
        text = text.replace("ROC AUC ", f"ROC AUC ({scope}) ", 1)
    return text


def worse_than_chance(rep):
    """Why an evaluation is worse than a guess knowing nothing of the rows ('' if it is
    not), judged without the model's cut (a cut near 0, as --min-completeness 1.0 allows,
    selects nearly every row and makes any cut-based agreement noise around chance): a ROC
    AUC below 0.5, of class 1 for two classes or of the positive class against the rest for
    more; for more classes and no positive class, a Cohen's kappa of the argmax labels
    clearly below 0 (chance_kappa_shortfall)."""
    auc = rep.get("roc_auc", float("nan"))
    if len(rep["class_names"]) == 2 or "positive" in rep:
        if not (np.isfinite(auc) and auc < 0.5):
            return ""
        scope = "" if len(rep["class_names"]) == 2 else f" ({rep['positive_name']} vs rest)"
        return f"ROC AUC{scope} {auc:.4f} < 0.5"
    return chance_kappa_shortfall(rep["confusion_matrix"])


def chance_kappa_shortfall(cm):
    """'' unless the confusion matrix's Cohen's kappa is clearly negative: below -0.1 and
    below 3 of its standard errors for labels unrelated to the predictions (about
    sqrt(pe / (n (1 - pe))), pe the agreement expected by chance), so that the noise of a
    small sample is not read as a model worse than chance."""
    cm = np.asarray(cm, np.float64)
    n = cm.sum()
    if not n:
        return ""
    observed = np.trace(cm) / n
    chance = float(cm.sum(axis=1) @ cm.sum(axis=0)) / n ** 2
    if chance >= 1.0:
        return ""
    kappa = (observed - chance) / (1.0 - chance)
    noise = 3.0 * np.sqrt(chance / (n * (1.0 - chance)))
    if kappa >= -max(0.1, noise):
        return ""
    return (f"Cohen's kappa {kappa:.4f}: accuracy {observed:.4f} below the {chance:.4f} "
            "expected of labels unrelated to the predictions")


REDSHIFT_NAMES = ("redshift", "z", "z_spec", "zspec")


def looks_like_redshift(label, log1p_target):
    """Whether a regression gets the photo-z figures of merit: a model trained on
    log(1 + y), or a target column named like a spectroscopic redshift (REDSHIFT_NAMES)."""
    return bool(log1p_target) or str(label).lower() in REDSHIFT_NAMES


class StreamingRegressionReport:
    """RMSE and R^2 from running sums (float64); with ``redshift=True`` also the photo-z
    figures of merit ``fastmlp train`` prints (metrics.photoz_metrics: sigma_NMAD and the
    bias are medians, so the evaluated rows' z_spec and z_phot are kept: 16 bytes per row
    with a target and a prediction, not per row of the catalog)."""

    def __init__(self, redshift=False):
        self.n, self.sy, self.syy, self.sse = 0, 0.0, 0.0, 0.0
        self.redshift = redshift
        self.z_spec, self.z_phot = [], []

    def update(self, y, pred, valid):
        ok = valid & np.isfinite(y)
        y, p = y[ok].astype(np.float64), pred[ok].astype(np.float64)
        self.n += y.size
        self.sy += float(y.sum())
        self.syy += float((y * y).sum())
        self.sse += float(((y - p) ** 2).sum())
        if self.redshift:
            self.z_spec.append(y)
            self.z_phot.append(p)

    def format(self, title="test metrics"):
        if self.n == 0:
            raise ValueError("no rows with both a target and a prediction to evaluate")
        sst = self.syy - self.sy ** 2 / self.n
        r2 = 1.0 - self.sse / sst if sst > 0 else float("nan")
        text = (f"{title} (n={self.n}): RMSE {np.sqrt(self.sse / self.n):.4f}, "
                f"R^2 {r2:.4f}")
        if not self.redshift:
            return text
        zs, zp = np.concatenate(self.z_spec), np.concatenate(self.z_phot)
        if (zs <= -1).any():    # not redshifts after all: 1 + z would divide by <= 0
            return text + f"\nno photo-z figures: the target has values <= -1 ({zs.min():g})"
        return text + "\n" + metrics.photoz_metrics(zs, zp).format()
