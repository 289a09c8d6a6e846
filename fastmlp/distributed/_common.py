"""Pieces shared by the Dask and MPI paths: checkpoints, weighted averaging,
standardisation statistics.  Nothing here imports dask or mpi4py."""

import numpy as np


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
