"""Pieces shared by the Dask and MPI paths: weighted averaging, the training metric, and
the catalog contract of fastmlp train (missing=, the rows drop keeps, the FeatureSpec a
table is read with).  Nothing here imports dask or mpi4py."""

import numpy as np

from ..features import FeatureSpec

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
