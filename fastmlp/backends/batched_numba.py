"""Numba batched kernels: the names and contract of ``batched_reference.py``, compiled.

The wrappers check every argument with the reference's one check (same bad input, same
error: another dtype, a non-contiguous array or a read-only output is refused there, as by
every backend) and call ``_nb_batched``.  Model k ends bit for bit where the single-model
Numba ``train_epoch`` would have taken it at ``nslices`` threads (default: the thread count
the single model would use now), whatever number of threads runs the batch.
"""

import numpy as np

from ..codes import N_HYPER  # noqa: F401  (as in the reference)
from . import batched_reference as _bref
from . import _contract
from . import numba as _nb
from ._blas_threads import one_blas_thread

NAME = "numba"
AVAILABLE = _nb.AVAILABLE
UNAVAILABLE_REASON = _nb.UNAVAILABLE_REASON
N_STATE_MAX = _bref.N_STATE_MAX
n_batches_of = _bref.n_batches_of

if AVAILABLE:
    from . import _nb_batched as _kb

#: rows per chunk of batches (one parallel region each): 16k rows of a few float32
#: features and targets stay in L2 while every model of the batch runs through them
CHUNK_ROWS = 16384


def set_num_threads(n):
    _nb.set_num_threads(n)


def batched_train_epoch(params, grads, states, batch_losses, done, x, y, sw, perm, n_rows,
                        batch_size, lrs, step0, opts, hypers, sizes, acts, loss, nslices=None):
    """Every mini-batch of one call for every model (contract:
    batched_reference.batched_train_epoch).  nslices: the row slices per batch of each model
    (None: the single-model kernel's current thread count), which fixes the arithmetic;
    the threads that run the call do not."""
    sizes, acts = _contract.net(sizes, acts)
    loss = _contract.code("loss", loss)
    n_rows, batch_size, step0, opts, perm = _bref.batched_ints(n_rows, batch_size, step0,
                                                               opts, perm)
    _bref.check_batched_epoch_args(params, grads, states, batch_losses, done, x, y, sw, perm,
                                   n_rows, batch_size, lrs, step0, opts, hypers, sizes, loss)
    # the check refused other dtypes and layouts (_contract): only a read-only input is
    # copied, and hypers converted (not under the float rule)
    x, y, sw = _nb.kernel_input(x), _nb.kernel_input(y), _nb.kernel_input(sw)
    x = x[None] if x.ndim == 2 else x   # one compiled version: x is (1 or K, N, n_0)
    lrs, hypers = _nb.kernel_input(lrs), _nb.kernel_hyper(hypers)
    if int(loss) == 1:
        _contract.class_labels(y, int(sizes[-1]))
    nth = _nb.call_threads()
    nslices = nth if nslices is None else int(nslices)
    if nslices < 1:
        raise ValueError(f"nslices must be a positive integer, got {nslices}")
    # the single kernel's tile for each model: its batch split over nslices, at most TILE
    first = np.minimum(batch_size, n_rows)
    tiles = np.maximum(1, np.minimum(-(-first // nslices), _nb.TILE)).astype(np.int64)
    # batches per parallel region: about CHUNK_ROWS rows, whose x, y stay in cache while
    # every model runs through them
    chunk = max(1, CHUNK_ROWS // int(batch_size.max(initial=1)))
    with one_blas_thread():
        _kb.batched_train_epoch(params, grads, states, batch_losses, done, x, y, sw, perm,
                                n_rows, batch_size, lrs, step0, opts, hypers, sizes, acts,
                                int(loss), nslices, tiles, int(tiles.max(initial=1)), chunk,
                                nth)
    return done


def batched_forward(out, params, x, sizes, acts):
    """out: (K, B, sizes[-1]) logits of every model on x: (B, sizes[0])."""
    sizes, acts = _contract.batched_forward(out, params, x, sizes, acts)
    params, x = _nb.kernel_input(params), _nb.kernel_input(x)   # a copy only of a read-only array
    if x.shape[0] == 0 or params.shape[0] == 0:
        return
    nth = _nb.call_threads()
    with one_blas_thread():
        _kb.batched_forward(out, params, x, sizes, acts, _nb.TILE, nth)


# the pieces without a compiled version of their own are the reference's
batched_loss_grad = _bref.batched_loss_grad
batched_update = _bref.batched_update
