"""fastmlp's Numba kernels, callable from your own ``@numba.njit`` code.

    import numba
    from fastmlp import numba_kernels as nk

    @numba.njit
    def my_steps(params, grad, state, x, y, sw, sizes, acts, hyper, k, n_threads):
        for step in range(1, k + 1):
            nk.mlp_loss_grad(grad, params, x, y, sw, sizes, acts, 0, n_threads)
            nk.optimizer_update(3, params, grad, state, step, hyper, n_threads)

The same compiled code as ``backend="numba"`` (fastmlp.backends.numba calls the same
entry points after checking its arguments), so a loop written this way gives the same
numbers bit for bit at the same thread count.

Contract
--------
Arguments are those of the NumPy reference, ``fastmlp.backends.reference`` (the spec: same
names, shapes, meaning; its docstrings list them), all C-contiguous, float32 or float64
throughout (one dtype per call); integer arrays (sizes, acts, perm) int64; codes from
``fastmlp.codes`` (activations, losses, optimizers; ``hyper`` as ``Optimizer.hyper_vector``).
Two differences:

- ``n_threads`` (>= 1) is an explicit argument: the threads the kernel splits its work
  into.  Pass it in; the kernels never ask Numba (that would stop ``cache=True`` caching).
- ``dense_backward`` takes ``want_dx`` instead of a None ``dx``: when False, pass any 2-D
  array of the layer's dtype (Numba types the unused branch, so a 1-D one does not compile).

``sw`` may be None (unit weights), as in the reference's train_epoch (and, here only, in
loss_grad and mlp_loss_grad, whose Python API wants an array): the call then weights
every row by one, bit for bit what an array of ones gives.

Nothing is checked here: compiled code does not bounds-check, so wrong shapes, codes or
indices read or write out of bounds, and an output overlapping another argument gives a
wrong answer (outputs must be apart from every other array, except where the header
csrc/fastmlp.h says "may alias": activation_forward's out may be z, activation_backward's
dz may be da or z, dense_forward's out may be z).  The Python API (``fastmlp.backends.get_backend
("numba")``) checks everything and calls the same code: use it while developing.  The
matrix products inside are ``np.dot`` on SciPy's OpenBLAS; limit BLAS to one thread around
your outermost call (``threadpoolctl.threadpool_limits(1, "blas")``) so that its threads do
not compete with the kernels'.

Caching: the kernels underneath are compiled once and cached on disk; the entry points
here, and your function that calls them, must not use ``cache=True``.  A cached function
that calls a ``parallel=True`` function crashes (segmentation fault) when it is reloaded
from the cache in a later process (Numba issue #8578, open; reproduced here with Numba
0.68).  Uncached, only the thin layer is compiled in each process; the kernels load from
their cache.
"""

import numpy as np
from numba import njit

from .backends import _nb_kernels as _k
from .backends.numba import TILE
from .codes import N_HYPER, OPT_NONE

__all__ = ["activation_forward", "activation_backward", "sigmoid_pair", "dense_forward",
           "dense_backward", "loss_grad", "optimizer_update", "mlp_forward", "mlp_loss_grad",
           "train_epoch", "shuffle_indices", "epoch_permutation", "TILE"]

@njit
def _tile(rows, n_threads):
    per = (rows + n_threads - 1) // n_threads
    return max(1, min(per, TILE))


@njit
def activation_forward(out, z, act, n_threads):
    """out = f(z) elementwise (reference.activation_forward)."""
    _k.act_forward(out.reshape(out.size), z.reshape(z.size), act, n_threads)


@njit
def sigmoid_pair(out, z, n_threads):
    """out (n, 2) = [sigmoid(-z), sigmoid(z)] for z (n,), predict_proba's link
    (reference.sigmoid_pair)."""
    _k.sigmoid_pair(out, z, n_threads)


@njit
def activation_backward(dz, da, z, act, n_threads):
    """dz = da * f'(z) elementwise (reference.activation_backward)."""
    _k.act_backward(dz.reshape(dz.size), da.reshape(da.size), z.reshape(z.size), act,
                    n_threads)


@njit
def dense_forward(out, z, x, w, b, act, n_threads):
    """z = x w + b; out = f(z) (reference.dense_forward)."""
    _k.dense_forward(out, z, x, w, b, act, n_threads)


@njit
def _weights(sw, n, dtype):
    """sw, or n ones of dtype for a None sw (Numba prunes the other branch at compile time)."""
    if sw is None:
        return np.ones(n, dtype=dtype)
    return sw


@njit
def dense_backward(dx, dw, db, dout, x, w, z, act, want_dx, n_threads):
    """dw, db (and dx if want_dx) of a dense layer (reference.dense_backward)."""
    _k.dense_backward(dx, dw, db, dout, x, w, z, act, n_threads, want_dx)


@njit
def loss_grad(dout, out, y, sw, loss):
    """dout = dL/dout; returns the weighted mean loss (reference.loss_grad).  Serial."""
    return _k.loss_grad(dout, out, y, _weights(sw, out.shape[0], out.dtype), loss)


@njit
def optimizer_update(opt, p, g, state, step, hyper, n_threads):
    """One fused update of p in place (reference.optimizer_update); state: (rows, n)."""
    rows = state.shape[0]
    _k.opt_update(opt, p, g, state[0], state[min(1, rows - 1)], state[min(2, rows - 1)],
                  step, hyper, n_threads)


@njit
def mlp_forward(out, params, x, sizes, acts, n_threads):
    """out = the network's outputs (pre-activation of the last layer) for x
    (reference.mlp_forward)."""
    if x.shape[0] > 0:
        _k.mlp_forward(out, params, x, sizes, acts, n_threads, _tile(x.shape[0], n_threads))


@njit
def mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss, n_threads):
    """grad = dL/dparams over the batch; returns the loss (reference.mlp_loss_grad)."""
    n = x.shape[0]
    if n == 0:
        grad[:] = 0
        return np.nan
    losses = np.zeros(1)
    _k.train_epoch(params, grad, np.empty((1, 1), dtype=params.dtype), losses, x, y,
                   _weights(sw, n, params.dtype), np.arange(n), n, np.zeros(1), 0, OPT_NONE,
                   np.zeros(N_HYPER), sizes, acts, loss, n_threads, _tile(n, n_threads), 0.0,
                   n_threads > 1 and params.shape[0] >= _k.PAR_UPDATE_MIN_PARAMS)
    return losses[0]


@njit
def train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0,
                opt, hyper, sizes, acts, loss, n_threads):
    """Every mini-batch of an epoch (reference.train_epoch); returns the completed batches."""
    n = perm.shape[0]
    if n == 0:
        return 0
    return _k.train_epoch(params, grad, state, batch_losses, x, y,
                          _weights(sw, x.shape[0], params.dtype), perm, batch_size, lrs,
                          step0, opt, hyper, sizes, acts, loss, n_threads,
                          _tile(min(batch_size, n), n_threads), 0.0,
                          n_threads > 1 and params.shape[0] >= _k.PAR_UPDATE_MIN_PARAMS)


@njit
def shuffle_indices(out, u):
    """out = the epoch order from uniforms u (reference.shuffle_indices); returns -1, or the
    index of the first u outside [0, 1) (out then untouched)."""
    return _k.shuffle_indices(out, u)


@njit
def epoch_permutation(out, key):
    """out = the epoch order from one key (reference.epoch_permutation); key: np.uint64."""
    _k.epoch_permutation(out, key)
