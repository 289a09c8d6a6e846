"""NumPy reference of the batched kernels: K models of ONE architecture trained together.

This file is the specification of the batched kernels (``_nb_batched.py`` compiles the
same contract).  It is written as what the batched kernels must equal: model k of a batch
is the single-model kernel of ``reference.py`` applied to row k, so "each model in a batch
ends exactly where it would have ended alone" is true here by construction, and the fast
kernels are tested against it (tests/test_batched.py).

Buffers of a batch (K models, n_params parameters each, flat layout as in reference.py):

    params, grads: (K, n_params)          one flat buffer, row k = model k
    states:        (K, N_STATE_MAX, n_params)  optimizer state rows (fastmlp.codes.N_STATE
                                          rows used by the model's optimizer, the rest idle)
    opts:          int64 (K,)             optimizer code per model (several types per pass)
    hypers:        float64 (K, N_HYPER)   hyper-parameter vector per model (codes.py order)
    lrs:           float64 (K, n_batches) learning rate per model and step (schedules)
    step0:         int64 (K,)             optimizer steps each model took before this call
    x:             (N, n_0), or (K, N, n_0) per-model network inputs of the same rows
                                          (e.g. each fold's own standardisation)
    sw:            (K, N) or (1, N)       per-model row weights over the shared rows x, y:
                                          bootstrap counts, class weights, fold masks;
                                          one row = shared by every model
    perm:          int64 (K, M) or (1, M) the row order each model visits (one row: the
                                          same mini-batch sequence for every model, e.g. a
                                          sweep); model k uses perm[k, :n_rows[k]]
    n_rows:        int64 (K,)             rows of its order each model visits this call
    batch_size:    int64 (K,)             rows per mini-batch per model (the last one of a
                                          call may be smaller; batches never straddle calls)

A model whose batch loss or gradient goes non-finite stops there (that update is not
applied, exactly as the single-model train_epoch) while the others go on; ``done[k]`` is the
number of batches model k completed.
"""

import numpy as np

from ..codes import N_HYPER
from . import _contract
from . import reference as _ref

NAME = "numpy"
AVAILABLE = True
UNAVAILABLE_REASON = ""

#: optimizer state rows per model in a batch: the most any optimizer needs (codes.N_STATE)
N_STATE_MAX = 3


def set_num_threads(n):
    """The reference is single-threaded; the count is accepted and ignored."""


def _row(a, k):
    """Row k of a per-model array, or its only row when it is shared (shape (1, ...))."""
    return a[0] if a.shape[0] == 1 else a[k]


def n_batches_of(n_rows, batch_size):
    """Mini-batches each model runs in one call: ceil(n_rows / batch_size), per model."""
    n_rows = np.asarray(n_rows, dtype=np.int64)
    batch_size = np.asarray(batch_size, dtype=np.int64)
    return -(-n_rows // batch_size)


def batched_forward(out, params, x, sizes, acts):
    """Network outputs (logits) of every model of a batch on the same rows.

    out: (K, B, sizes[-1]); params: (K, n_params); x: (B, sizes[0])
    """
    sizes, acts = _contract.batched_forward(out, params, x, sizes, acts)
    for k in range(params.shape[0]):
        _ref.mlp_forward(out[k], params[k], x, sizes, acts)


def batched_loss_grad(grads, losses, params, x, y, sw, sizes, acts, loss):
    """Loss and gradient of every model on the same batch of rows, each with its own row
    weights.  grads: (K, n_params) overwritten; losses: float64 (K,) overwritten;
    params: (K, n_params); x: (B, sizes[0]); y: (B, k); sw: (K, B) or (1, B)."""
    for k in range(params.shape[0]):
        losses[k] = _ref.mlp_loss_grad(grads[k], params[k], x, y, _row(sw, k), sizes, acts,
                                       loss)


def batched_update(params, grads, states, steps, opts, hypers):
    """One optimizer step of every model, each with its own optimizer type and
    hyper-parameters.  params: (K, n_params) in place; grads: (K, n_params);
    states: (K, N_STATE_MAX, n_params) in place; steps: int64 (K,) 1-based step of this
    update; opts: int64 (K,); hypers: float64 (K, N_HYPER) (position 0 = lr)."""
    for k in range(params.shape[0]):
        _ref.optimizer_update(int(opts[k]), params[k], grads[k], states[k], int(steps[k]),
                              hypers[k])


def batched_train_epoch(params, grads, states, batch_losses, done, x, y, sw, perm, n_rows,
                        batch_size, lrs, step0, opts, hypers, sizes, acts, loss, nslices=None):
    """Every mini-batch of one call for every model: gather, loss and gradient, update.

    batch_losses: float64 (K, max n_batches), written for the batches a model ran;
    done: int64 (K,) overwritten with the batches each model completed (its n_batches
    unless a loss or gradient went non-finite; then params[k] stays at its last finite
    value and the model's later batches are skipped).  Other shapes: see the module
    docstring.  Model k is exactly ``reference.train_epoch`` on its own row.  nslices: how
    the fast kernels split a batch's rows (it fixes their rounding); the reference sums in
    one piece and ignores it."""
    n_rows, batch_size, step0, opts, perm = batched_ints(n_rows, batch_size, step0, opts,
                                                         perm)
    check_batched_epoch_args(params, grads, states, batch_losses, done, x, y, sw, perm,
                             n_rows, batch_size, lrs, step0, opts, hypers, sizes, loss)
    for k in range(params.shape[0]):
        order = _row(perm, k)[:int(n_rows[k])]
        h = np.ascontiguousarray(hypers[k], dtype=np.float64)
        xk = x if x.ndim == 2 else _row(x, k)
        done[k] = _ref.train_epoch(params[k], grads[k], states[k], batch_losses[k], xk, y,
                                   _row(sw, k), order, int(batch_size[k]), lrs[k],
                                   int(step0[k]), int(opts[k]), h, sizes, acts, loss)


def batched_ints(n_rows, batch_size, step0, opts, perm):
    """The integer arguments of batched_train_epoch as int64 arrays (floats refused): the
    one conversion every batched backend makes."""
    return tuple(_contract.int_array(name, a) for name, a in (
        ("n_rows", n_rows), ("batch_size", batch_size), ("step0", step0), ("opts", opts),
        ("perm", perm)))


def check_batched_epoch_args(params, grads, states, batch_losses, done, x, y, sw, perm,
                             n_rows, batch_size, lrs, step0, opts, hypers, sizes, loss):
    """The shape and value checks every backend runs before a batched epoch (so the same bad
    input gives the same error everywhere).  Raises ValueError / TypeError naming the
    argument; returns nothing."""
    if not (isinstance(params, np.ndarray) and params.ndim == 2
            and params.dtype in (np.float32, np.float64)):
        raise TypeError(f"params must be a (K, n_params) float32/float64 array, got "
                        f"{getattr(params, 'dtype', type(params))} {np.shape(params)}")
    K, n_params = params.shape
    want = int(sum((int(a) + 1) * int(b) for a, b in zip(sizes[:-1], sizes[1:])))
    if n_params != want:
        raise ValueError(f"params has {n_params} parameters per model, the layer sizes "
                         f"{list(sizes)} need {want}")
    for name, a, shape in (("grads", grads, (K, n_params)),
                           ("states", states, (K, N_STATE_MAX, n_params))):
        if np.shape(a) != shape:
            raise ValueError(f"{name} must be an array of shape {shape}, got "
                             f"{np.shape(a)}")
    xs = np.shape(x)
    N = xs[-2] if len(xs) >= 2 else -1
    if not (xs == (N, int(sizes[0])) or (len(xs) == 3 and xs[0] in (1, K)
                                          and xs[2] == int(sizes[0]))):
        raise ValueError(f"x must have shape (n, {int(sizes[0])}) or ({K}, n, "
                         f"{int(sizes[0])}) (per-model inputs), got {xs}")
    k_out = 1 if int(loss) == 1 else int(sizes[-1])   # class index, or one per output
    if np.shape(y) != (N, k_out):
        raise ValueError(f"y must have shape ({N}, {k_out}), got {np.shape(y)}")
    if np.ndim(sw) != 2 or np.shape(sw)[0] not in (1, K) or np.shape(sw)[1] != N:
        raise ValueError(f"sw must have shape ({K}, {N}) or (1, {N}), got {np.shape(sw)}")
    if np.ndim(perm) != 2 or np.shape(perm)[0] not in (1, K):
        raise ValueError(f"perm must have shape ({K}, m) or (1, m), got {np.shape(perm)}")
    for name, a in (("n_rows", n_rows), ("batch_size", batch_size), ("step0", step0),
                    ("opts", opts), ("done", done)):
        if np.shape(a) != (K,):
            raise ValueError(f"{name} must have shape ({K},), got {np.shape(a)}")
    _contract.batched_epoch_arrays(params, grads, states, batch_losses, done, x, y, sw, lrs)
    if (np.asarray(n_rows) < 0).any() or (np.asarray(n_rows) > np.shape(perm)[1]).any():
        raise ValueError(f"n_rows must lie in 0..{np.shape(perm)[1]} (the length of perm)")
    if (np.asarray(batch_size) < 1).any():
        raise ValueError(f"batch_size must hold positive integers, got {batch_size}")
    if ((np.asarray(opts) < 0) | (np.asarray(opts) > 4)).any():
        raise ValueError(f"opts must hold optimizer codes 0..4, got {opts}")
    if np.shape(hypers) != (K, N_HYPER):
        raise ValueError(f"hypers must have shape ({K}, {N_HYPER}), got {np.shape(hypers)}")
    nb = int(n_batches_of(n_rows, batch_size).max(initial=0))
    if np.ndim(lrs) != 2 or np.shape(lrs)[0] != K or np.shape(lrs)[1] < nb:
        raise ValueError(f"lrs must have shape ({K}, >= {nb}) (one lr per model and batch), "
                         f"got {np.shape(lrs)}")
    if np.ndim(batch_losses) != 2 or np.shape(batch_losses)[0] != K \
            or np.shape(batch_losses)[1] < nb:
        raise ValueError(f"batch_losses must have shape ({K}, >= {nb}), got "
                         f"{np.shape(batch_losses)}")
    p = np.asarray(perm)
    if p.size and (p.min() < 0 or p.max() >= N):
        raise ValueError(f"perm must hold row indices in 0..{N - 1}")
    if not np.isfinite(np.asarray(hypers)).all():
        raise ValueError("hypers must be finite")
    for k in range(K):    # each model's hyper-parameters in range, as its train_epoch alone
        try:
            _contract.hyper(int(opts[k]), hypers[k])
        except ValueError as e:
            raise ValueError(f"hypers[{k}]: {e}") from None
