"""Pieces shared by the Dask and MPI paths: checkpoints, weighted averaging,
standardisation statistics.  Nothing here imports dask or mpi4py."""

import os

import numpy as np

from ..io import atomic_write


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


def moments_to_standardization(count, total, total_sq):
    """(mean, scale) from the count, sum and sum of squares per column (float64); scale is
    the population standard deviation, 1 where a column is constant."""
    count = float(count)
    if count <= 0:
        raise ValueError("cannot standardise an empty catalog")
    mean = np.asarray(total, np.float64) / count
    var = np.maximum(np.asarray(total_sq, np.float64) / count - mean * mean, 0.0)
    scale = np.sqrt(var)
    scale[scale == 0] = 1.0
    return mean, scale


def atomic_savez(path, **arrays):
    """Write an .npz so that ``path`` is always either the old or the new complete file
    (fastmlp.io.atomic_write: temporary file, fsync, rename); creates the directory."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path):
    """The arrays of a checkpoint written by fastmlp.distributed (a dict)."""
    with np.load(os.fspath(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_training_checkpoint(path, model, opt, round_index, epoch, mean=None, scale=None,
                             **extra):
    arrays = dict(params=model.params, state=opt.state, step=np.int64(opt.step_count),
                  round=np.int64(round_index), epoch=np.int64(epoch),
                  layer_sizes=np.asarray(model.layer_sizes, np.int64),
                  optimizer=np.array(opt.name))
    if mean is not None:
        arrays["mean"], arrays["scale"] = mean, scale
    arrays.update(extra)
    atomic_savez(path, **arrays)


def restore_training_checkpoint(path, model, opt):
    """Load params, optimizer state and step from ``path`` into model / opt; returns the
    checkpoint dict (round, epoch, ...)."""
    ck = load_checkpoint(path)
    if tuple(ck["layer_sizes"]) != tuple(model.layer_sizes):
        raise ValueError(f"checkpoint {path} is for layer sizes {tuple(ck['layer_sizes'])}, "
                         f"the model has {model.layer_sizes}")
    if str(ck["optimizer"]) != opt.name or ck["state"].shape != opt.state.shape:
        raise ValueError(f"checkpoint {path} holds {str(ck['optimizer'])} state, the optimizer "
                         f"is {opt.name}")
    model.params[...] = ck["params"]
    opt.state[...] = ck["state"]
    opt.step_count = int(ck["step"])
    return ck


def binary_or_argmax_correct(out, Y, loss_name):
    """Number of correct predictions (classifiers) or sum of squared errors (mse)."""
    if loss_name == "mse":
        return float(np.sum((out - Y) ** 2))
    pred = (out[:, 0] >= 0) if out.shape[1] == 1 else out.argmax(axis=1)
    return float(np.sum(pred == Y[:, 0]))
