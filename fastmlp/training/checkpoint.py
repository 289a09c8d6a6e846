"""Training checkpoints written atomically (the Dask and MPI paths save and restore them).
"""

import os

import numpy as np

from ..atomic import atomic_write


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
