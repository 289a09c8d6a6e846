"""Pieces shared by the Dask and MPI paths: weighted averaging, the training metric, and
the catalog contract of fastmlp train (missing=, the rows drop keeps, the FeatureSpec a
table is read with).  Nothing here imports dask or mpi4py."""

import numpy as np

from .._validate import counted, plural
from ..data.catalog import invalid_feature_rows
from ..data.catalog import refuse_label_features as refuse_label_inputs
from ..data.stream import missing_labels as stream_missing_labels
from ..features import FeatureSpec, missing_mask, plan_sources

MISSING_POLICIES = ("error", "drop", "impute-median")


def check_missing_policy(missing):
    """missing= as fastmlp train's --missing takes it, or a ValueError naming missing."""
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {list(MISSING_POLICIES)} (as fastmlp train's "
                         f"--missing), got {missing!r}")
    return missing


def complete_rows(X, model_dtype=np.float64):
    """The rows of X whose every value is finite and within ``model_dtype``'s range (what
    missing='drop' keeps, as fastmlp train --missing drop reads a catalog)."""
    X = np.asarray(X, dtype=np.float64)
    big = np.finfo(model_dtype).max
    with np.errstate(invalid="ignore"):
        return (np.isfinite(X) & (np.abs(X) <= big)).all(axis=1)


def missing_labels(labels):
    """Where a row's label is missing, by the loader's rule (fastmlp.data.stream's
    missing_labels: NaN, inf, SDSS's -9999, or a null / empty / "NA" text); a row of a
    2-D label array is missing when any of its labels is."""
    bad = stream_missing_labels(np.asarray(labels))
    return bad if bad.ndim == 1 else bad.any(axis=tuple(range(1, bad.ndim)))


def invalid_table_rows(table, spec, X, labels, label, model_dtype):
    """(the rows fastmlp train's loader does not train on, {column: how many}): a raw source
    column's missing value (missing_mask; none in a column ``spec`` fills), a feature of
    ``X`` beyond ``model_dtype`` (a colour u-g of u = 3e38, g = -3e38 in float32: the
    loader's invalid_feature_rows) or a missing label."""
    fill = spec.fill or {}
    steps = spec.plan(list(table))
    bad = {c: missing_mask(np.asarray(table[c], dtype=np.float64), model_dtype)
           for c in plan_sources(steps) if c not in fill}
    invalid = invalid_feature_rows(X, bad, list(spec.names), model_dtype)
    lab = missing_labels(labels)
    if lab.any():
        bad[label] = lab
        invalid = invalid | lab
    return invalid, {c: int(m.sum()) for c, m in bad.items() if m.any()}


def invalid_array_rows(X, y, model_dtype):
    """(the rows of arrays X, y fastmlp train would not train on: a feature not finite in
    ``model_dtype`` (complete_rows) or a missing label; {"X"/"y": how many})."""
    bad = {"X": ~complete_rows(X, model_dtype), "y": missing_labels(y)}
    return bad["X"] | bad["y"], {c: int(m.sum()) for c, m in bad.items() if m.any()}


def apply_missing(X, y, invalid, counts, missing, source, remedy):
    """X, y without the ``invalid`` rows under missing='drop' / 'impute-median' (what is
    left after imputing is dropped, as the loader drops it); under 'error' a ValueError
    naming ``source``, the count, the columns and ``remedy`` (a null / empty / 'NA' text
    named among the missing values only when the labels ``y`` are text)."""
    n_bad = int(np.count_nonzero(invalid))
    if not n_bad:
        return X, y
    if missing == "error":
        text = ", a null, empty or 'NA' label," if _holds_text(y) else ""
        raise ValueError(f"{source}: {n_bad} of {counted(len(invalid), 'row')} "
                         f"{plural(n_bad, 'has', 'have')} missing or invalid values (NaN, inf, "
                         f"-9999{text} or beyond the model's dtype) in columns {counts}; "
                         f"{remedy}")
    return X[~invalid], y[~invalid]


def _holds_text(y):
    """True when labels ``y`` are text (str, bytes or objects), where a text can be missing."""
    return y is not None and np.asarray(y).dtype.kind in "OSU"


def training_spec(features, model, columns, source="the DataFrame"):
    """The FeatureSpec a table (``source``, with ``columns``) is read with: the model's own
    when it has one of these names (its fill values, e.g. an earlier impute-median's, then
    apply as in its predictions), else ``features`` as given; refused when the names
    differ."""
    spec = features if isinstance(features, FeatureSpec) else FeatureSpec(features)
    spec.plan(columns, source)   # a missing column: named
    if model.features is None:
        return spec
    if tuple(model.features.names) != tuple(spec.names):
        raise ValueError(f"features={list(spec.names)} but the model's contract has "
                         f"{list(model.features.names)}")
    if spec.fill and model.features.fill and dict(spec.fill) != dict(model.features.fill):
        raise ValueError(f"features= has fill {dict(spec.fill)!r} but the model's contract "
                         f"has fill {dict(model.features.fill)!r} (model.features.fill)")
    return spec if spec.fill and not model.features.fill else model.features


def refuse_label_features(spec, columns, label, source):
    """Raise a ValueError naming the features of ``spec`` that read the ``label`` column of
    a table with ``columns`` (``source``): the label itself, or a colour of it ("label-g"),
    would train on the answer.  Dask's fit and mpi_fit both call it, and the loaders refuse
    with the same rule (fastmlp.data.catalog.refuse_label_features)."""
    refuse_label_inputs(spec.names, spec.plan(columns, source), label)


class ShardClassMixWarning(UserWarning):
    """distributed.fit's shards hold very different class mixes (a catalog sorted by class
    or sky position): model averaging then loses accuracy.  Defined here, not in dask.py,
    so ``from fastmlp.distributed import ShardClassMixWarning`` (to filter it) needs no
    Dask."""


def weighted_average(arrays, weights, dtype):
    """sum_j w_j a_j / sum_j w_j, accumulated in float64, returned in ``dtype``."""
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if not total > 0:
        raise ValueError("cannot average: the total weight of the round is zero")
    acc = np.zeros(np.shape(arrays[0]), dtype=np.float64)
    for a, wj in zip(arrays, w):
        acc += (wj / total) * np.asarray(a, dtype=np.float64)
    return acc.astype(dtype)


def binary_or_argmax_correct(out, Y, loss_name):
    """Number of correct predictions (classifiers) or sum of squared errors (mse)."""
    if loss_name == "mse":
        return float(np.sum((out - Y) ** 2))
    pred = (out[:, 0] >= 0) if out.shape[1] == 1 else out.argmax(axis=1)
    return float(np.sum(pred == Y[:, 0]))
