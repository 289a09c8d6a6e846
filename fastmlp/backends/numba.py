"""Numba backend: the reference kernels' names and signatures, compiled and parallel.

Thin Python wrappers check dtypes and contiguity, choose the tile height and call the
compiled kernels in ``_nb_kernels.py``.  Arrays a kernel cannot take directly (another
dtype, a non-contiguous output) go to the NumPy reference, never to a wrong answer.

``train_epoch`` runs every mini-batch of an epoch in one compiled call.  Per batch, each
thread owns a contiguous slice of the rows and its own gradient buffer; it runs the slice in
tiles of at most TILE rows (gather by perm, forward, loss, backward) whose activations stay
in cache.  The products are BLAS calls (``np.dot`` inside njit): the flat layout puts each
bias right after its weight matrix, so with a column of ones appended to every activation
tile one call gives ``z = a W + b`` and one call gives ``[dW; db]``; activations, their
derivatives and the loss are fused loops around them.  The thread buffers are summed in
thread order (deterministic at a given thread count), the batch is checked for a finite
loss and gradient, and the optimizer update follows in the same call.  While the kernels
run, BLAS is limited to one thread (threadpoolctl): the parallelism is ours, so the cores
are not oversubscribed.  (Hand-written Numba loops for the products were measured at half
the speed of OpenBLAS even at widths of 32, so every product goes to BLAS.)
"""

import contextlib
import math
import os

import numpy as np

from ..codes import ELU_ALPHA, LEAKY_RELU_SLOPE, N_HYPER  # noqa: F401  (as in reference)
from . import reference as _ref

NAME = "numba"
try:
    import numba as _numba
    try:  # numba's np.dot calls SciPy's BLAS
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError as _e:
        raise ImportError("the numba backend needs SciPy (numba's np.dot calls SciPy's "
                          f"BLAS): {_e}") from None
    from . import _nb_kernels as _k
    AVAILABLE = True
    UNAVAILABLE_REASON = ""
except Exception as _exc:  # numba or scipy missing or broken: the registry reports why
    _numba = _k = None
    AVAILABLE = False
    UNAVAILABLE_REASON = f"{type(_exc).__name__}: {_exc}"

# Rows per tile in the fused step: each thread runs its slice of a batch in tiles of at most
# TILE rows, whose activations stay in cache between the BLAS calls.
TILE = 256

_nthreads = _numba.config.NUMBA_NUM_THREADS if AVAILABLE else 1
_controller = None


def set_num_threads(n):
    """Threads the kernels split their work into (passed into every kernel call)."""
    global _nthreads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n!r}")
    _nthreads = int(n)


_launched = False


def _launch():
    """Start Numba's thread pool once, with passive OpenMP waiting unless the user chose.

    libgomp's default is to spin at the end of every parallel region; with one region per
    mini-batch on a machine shared with other processes, a spinning thread burns the time
    slice its partner needs, and 2-thread epochs were measured 10-30x slower than 1-thread
    ones (load ~4 on 2 cores).  OMP_WAIT_POLICY=passive avoids that collapse at a small cost
    on an idle machine.  The variable is set only while Numba loads its OpenMP runtime and
    restored afterwards, so other OpenMP runtimes in the process are not affected; set
    OMP_WAIT_POLICY (or GOMP_SPINCOUNT) yourself to override."""
    global _launched
    if _launched:
        return
    _launched = True
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        _numba.get_num_threads()
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        _numba.get_num_threads()  # launches the pool: libgomp reads its settings now
    finally:
        del os.environ["OMP_WAIT_POLICY"]


def _threads():
    _launch()
    _numba.set_num_threads(min(_nthreads, _numba.config.NUMBA_NUM_THREADS))
    return _nthreads


def _blas_limit():
    """Context manager: BLAS libraries limited to one thread while our threads call them."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
            _controller = ThreadpoolController()
        except Exception:
            _controller = False
    if not _controller:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _is_out(a, dtype=None):
    """a can be written by a kernel in place: float32/64, C-contiguous, writeable."""
    return (isinstance(a, np.ndarray) and a.dtype in _FLOATS and a.flags.c_contiguous
            and a.flags.writeable and (dtype is None or a.dtype == dtype))


def _inp(a, dtype):
    """An input as a C-contiguous array of dtype (a copy only if needed)."""
    a = np.ascontiguousarray(a, dtype=dtype)
    if not a.flags.writeable:  # read-only arrays would compile another specialization
        a = a.copy()
    return a


def _ints(a):
    return _inp(a, np.int64)


def _shape(name, a, shape):
    """a has exactly this shape (None in shape: any length), else a clear ValueError; the
    compiled kernels do no bounds checks, so every shape is checked here."""
    sh = np.shape(a)
    if len(sh) != len(shape) or any(e is not None and e != g for g, e in zip(sh, shape)):
        want = "(" + ", ".join("n" if e is None else str(e) for e in shape) + \
            ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got {sh}")


def _check_act(act):
    act = int(act)
    if not 0 <= act <= 7:
        raise ValueError(f"unknown activation code {act}")
    return act


def _tile(rows_per_thread):
    return int(max(1, min(rows_per_thread, TILE)))


# ---------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------

def activation_forward(out, z, act):
    """out = f(z), elementwise.  # out, z: same shape"""
    act = _check_act(act)
    if not _is_out(out) or np.shape(z) != out.shape:
        return _ref.activation_forward(out, z, act)
    _k.act_forward(out.reshape(-1), _inp(z, out.dtype).reshape(-1), act, _threads())


def activation_backward(dz, da, z, act):
    """dz = da * f'(z), elementwise.  # dz, da, z: same shape"""
    act = _check_act(act)
    if not _is_out(dz) or np.shape(z) != dz.shape or np.shape(da) != dz.shape:
        return _ref.activation_backward(dz, da, z, act)
    _k.act_backward(dz.reshape(-1), _inp(da, dz.dtype).reshape(-1),
                    _inp(z, dz.dtype).reshape(-1), act, _threads())


# ---------------------------------------------------------------------------------------
# Dense layer
# ---------------------------------------------------------------------------------------

def dense_forward(out, z, x, w, b, act):
    """out, z: (B, n_out); x: (B, n_in), w: (n_in, n_out), b: (n_out,)"""
    act = _check_act(act)
    if not (_is_out(out) and _is_out(z, out.dtype) and out.ndim == 2 and z.shape == out.shape):
        return _ref.dense_forward(out, z, x, w, b, act)
    dt = out.dtype
    x, w, b = _inp(x, dt), _inp(w, dt), _inp(b, dt)
    B, n_out = out.shape
    _shape("w", w, (None, n_out))
    _shape("x", x, (B, w.shape[0]))
    _shape("b", b, (n_out,))
    with _blas_limit():
        _k.dense_forward(out, z, x, w, b, act, _threads())


def dense_backward(dx, dw, db, dout, x, w, z, act):
    """dx: (B, n_in) or None; dw: (n_in, n_out), db: (n_out,) overwritten;
    dout, z: (B, n_out); x: (B, n_in); w: (n_in, n_out)"""
    act = _check_act(act)
    dt = dw.dtype if isinstance(dw, np.ndarray) else None
    if not (_is_out(dw) and _is_out(db, dt) and (dx is None or _is_out(dx, dt))):
        return _ref.dense_backward(dx, dw, db, dout, x, w, z, act)
    dout, x, w, z = _inp(dout, dt), _inp(x, dt), _inp(w, dt), _inp(z, dt)
    _shape("w", w, (None, None))
    n_in, n_out = w.shape
    _shape("dw", dw, (n_in, n_out))
    _shape("db", db, (n_out,))
    _shape("dout", dout, (None, n_out))
    B = dout.shape[0]
    _shape("x", x, (B, n_in))
    _shape("z", z, (B, n_out))
    if dx is not None:
        _shape("dx", dx, (B, n_in))
    want_dx = dx is not None
    if not want_dx:
        dx = np.empty((1, w.shape[0]), dtype=dt)
    with _blas_limit():
        _k.dense_backward(dx, dw, db, dout, x, w, z, act, _threads(), want_dx)


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------

def _check_classes(y, n_classes):
    if y.shape[0] and (y[:, 0].min() < 0 or y[:, 0].max() >= n_classes):
        raise ValueError(f"y holds class indices outside 0..{n_classes - 1}")


def loss_grad(dout, out, y, sw, loss):
    """Dispatch on the loss code (0 bce, 1 cross_entropy, 2 mse).  Returns the loss."""
    loss = int(loss)
    if loss not in (0, 1, 2):
        raise ValueError(f"unknown loss code {loss}")
    if not _is_out(dout) or dout.ndim != 2:
        return _ref.loss_grad(dout, out, y, sw, loss)
    dt = dout.dtype
    out, y, sw = _inp(out, dt), _inp(y, dt), _inp(sw, dt)
    B, k = dout.shape
    _shape("out", out, (B, k))
    _shape("y", y, (B, 1 if loss == 1 else k))
    _shape("sw", sw, (B,))
    if loss == 1:
        _check_classes(y, out.shape[1])
    return float(_k.loss_grad(dout, out, y, sw, loss))


def bce_loss_grad(dlogits, logits, y, sw):
    """dlogits, logits: (B, K); y: (B, K) in {0, 1}; sw: (B,)"""
    return loss_grad(dlogits, logits, y, sw, 0)


def cross_entropy_loss_grad(dlogits, logits, y, sw):
    """dlogits, logits: (B, C); y: (B, 1) class index stored as float; sw: (B,)"""
    return loss_grad(dlogits, logits, y, sw, 1)


def mse_loss_grad(dout, out, y, sw):
    """dout, out, y: (B, K); sw: (B,)"""
    return loss_grad(dout, out, y, sw, 2)


# ---------------------------------------------------------------------------------------
# Optimizers: one fused parallel pass over the flat buffers, state in place.
# ---------------------------------------------------------------------------------------

def _hyper(*vals):
    h = np.zeros(N_HYPER)
    h[:len(vals)] = [float(v) for v in vals]
    return h


def _opt(opt, p, g, s0, s1, s2, step, h, ref_call):
    if not (_is_out(p) and p.ndim == 1 and all(_is_out(s, p.dtype) and s.shape == p.shape
                                               for s in (s0, s1, s2))):
        return ref_call()
    _shape("g", g, p.shape)
    _shape("hyper", h, (N_HYPER,))
    _k.opt_update(opt, p, _inp(g, p.dtype), s0, s1, s2, int(step), h, _threads())


def sgd_update(p, g, buf, step, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """torch.optim.SGD.  # p, g, buf: (n,)"""
    _opt(0, p, g, buf, buf, buf, step,
         _hyper(lr, momentum, dampening, weight_decay, bool(nesterov), bool(maximize)),
         lambda: _ref.sgd_update(p, g, buf, step, lr, momentum, dampening, weight_decay,
                                 nesterov, maximize))


def adagrad_update(p, g, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """torch.optim.Adagrad.  # p, g, state_sum: (n,)"""
    _opt(1, p, g, state_sum, state_sum, state_sum, step,
         _hyper(lr, lr_decay, weight_decay, eps, bool(maximize)),
         lambda: _ref.adagrad_update(p, g, state_sum, step, lr, lr_decay, weight_decay, eps,
                                     maximize))


def rmsprop_update(p, g, square_avg, grad_avg, momentum_buffer, step, lr, alpha, eps,
                   weight_decay, momentum, centered, maximize):
    """torch.optim.RMSprop.  # p, g, square_avg, grad_avg, momentum_buffer: (n,)"""
    _opt(2, p, g, square_avg, grad_avg, momentum_buffer, step,
         _hyper(lr, alpha, eps, weight_decay, momentum, bool(centered), bool(maximize)),
         lambda: _ref.rmsprop_update(p, g, square_avg, grad_avg, momentum_buffer, step, lr,
                                     alpha, eps, weight_decay, momentum, centered, maximize))


def adam_update(p, g, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, amsgrad,
                maximize, decoupled):
    """torch.optim.Adam / AdamW (decoupled).  # p, g, m, v, vmax: (n,)"""
    _opt(4 if decoupled else 3, p, g, m, v, vmax, step,
         _hyper(lr, beta1, beta2, eps, weight_decay, bool(amsgrad), bool(maximize)),
         lambda: _ref.adam_update(p, g, m, v, vmax, step, lr, beta1, beta2, eps,
                                  weight_decay, amsgrad, maximize, decoupled))


def optimizer_update(opt, p, g, state, step, hyper):
    """Dispatch by optimizer code; state: (N_STATE, n); hyper: float64 (N_HYPER,)"""
    opt = int(opt)
    if opt not in (0, 1, 2, 3, 4):
        raise ValueError(f"unknown optimizer code {opt}")
    if not (_is_out(state) and state.ndim == 2):
        return _ref.optimizer_update(opt, p, g, state, step, hyper)
    r = state.shape[0]
    _opt(opt, p, g, state[0], state[min(1, r - 1)], state[min(2, r - 1)], step,
         _inp(hyper, np.float64),
         lambda: _ref.optimizer_update(opt, p, g, state, step, hyper))


# ---------------------------------------------------------------------------------------
# Whole network
# ---------------------------------------------------------------------------------------

def _check_data(params, x, y, sw, sizes, loss):
    _shape("params", params, (sum(int(a + 1) * int(b) for a, b in zip(sizes[:-1], sizes[1:])),))
    _shape("x", x, (None, int(sizes[0])))
    n = x.shape[0]
    if y is not None:
        _shape("y", y, (n, 1 if int(loss) == 1 else int(sizes[-1])))
        _shape("sw", sw, (n,))


def _check_net(sizes, acts, loss=None):
    sizes, acts = _ints(sizes), _ints(acts)
    if sizes.ndim != 1 or sizes.shape[0] < 2 or (sizes < 1).any():
        raise ValueError(f"sizes must be at least two positive layer widths, got {sizes}")
    if acts.shape != (sizes.shape[0] - 1,) or (acts < 0).any() or (acts > 7).any():
        raise ValueError(f"acts must hold one activation code (0..7) per layer, got {acts}")
    if loss is not None and int(loss) not in (0, 1, 2):
        raise ValueError(f"unknown loss code {loss}")
    return sizes, acts


def mlp_forward(out, params, x, sizes, acts):
    """out: (B, sizes[-1]); params: (n_params,); x: (B, sizes[0])"""
    sizes, acts = _check_net(sizes, acts)
    if not (_is_out(out) and out.ndim == 2 and isinstance(params, np.ndarray)
            and params.dtype == out.dtype):
        return _ref.mlp_forward(out, params, x, sizes, acts)
    dt = out.dtype
    params, x = _inp(params, dt), _inp(x, dt)
    _check_data(params, x, None, None, sizes, None)
    _shape("out", out, (x.shape[0], int(sizes[-1])))
    if x.shape[0] == 0:
        return
    nth = _threads()
    with _blas_limit():
        _k.mlp_forward(out, params, x, sizes, acts, nth, _tile(-(-x.shape[0] // nth)))


def _epoch_ok(params, grad, state):
    return (_is_out(params) and params.ndim == 1 and _is_out(grad, params.dtype)
            and grad.shape == params.shape and _is_out(state, params.dtype) and state.ndim == 2
            and state.shape[1] == params.shape[0])


def mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss, l2=0.0):
    """grad: (n_params,) overwritten; x: (B, sizes[0]); y: (B, k); sw: (B,); l2 the weights'
    L2 coefficient (reference.add_l2).  Returns the loss."""
    sizes, acts = _check_net(sizes, acts, loss)
    l2 = _ref.check_l2(l2)
    if not (_is_out(grad) and isinstance(params, np.ndarray) and params.dtype == grad.dtype):
        return _ref.mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss, l2)
    dt = grad.dtype
    params, x, y, sw = _inp(params, dt), _inp(x, dt), _inp(y, dt), _inp(sw, dt)
    _check_data(params, x, y, sw, sizes, loss)
    _shape("grad", grad, params.shape)
    if int(loss) == 1:
        _check_classes(y, int(sizes[-1]))
    n = x.shape[0]
    if n == 0:  # as the reference: an empty batch has a zero gradient and a 0/0 loss
        grad[...] = 0
        return math.nan
    nth = _threads()
    losses = np.zeros(1)
    with _blas_limit():
        _k.train_epoch(params, grad, np.empty((1, 1), dtype=dt), losses, x, y, sw,
                       np.arange(n, dtype=np.int64), max(n, 1), np.zeros(1), 0, 3,
                       np.zeros(N_HYPER), sizes, acts, int(loss), nth, _tile(-(-n // nth)),
                       False, l2)
    return float(losses[0])


def train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0,
                opt, hyper, sizes, acts, loss, l2=0.0):
    """Every mini-batch of one epoch in one compiled call (contract: reference.train_epoch).

    Returns the number of completed batches (n_batches unless a batch had a non-finite loss
    or gradient; that batch's update is not applied)."""
    sizes, acts = _check_net(sizes, acts, loss)
    l2 = _ref.check_l2(l2)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    opt = int(opt)
    if opt not in (0, 1, 2, 3, 4):
        raise ValueError(f"unknown optimizer code {opt}")
    perm = _ints(perm)
    n = perm.shape[0]
    n_batches = -(-n // batch_size)
    if not (_epoch_ok(params, grad, state) and isinstance(batch_losses, np.ndarray)
            and batch_losses.dtype == np.float64 and batch_losses.flags.c_contiguous
            and batch_losses.flags.writeable and batch_losses.shape[0] >= n_batches):
        return _ref.train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size,
                                lrs, step0, opt, hyper, sizes, acts, loss, l2)
    dt = params.dtype
    x, y, sw = _inp(x, dt), _inp(y, dt), _inp(sw, dt)
    lrs, hyper = _inp(lrs, np.float64), _inp(hyper, np.float64)
    _check_data(params, x, y, sw, sizes, loss)
    _shape("hyper", hyper, (N_HYPER,))
    if n and (perm.min() < 0 or perm.max() >= x.shape[0]):
        raise ValueError(f"perm must hold row indices in 0..{x.shape[0] - 1}")
    if lrs.shape[0] < n_batches:
        raise ValueError(f"lrs must hold one learning rate per batch ({n_batches}), "
                         f"got {lrs.shape[0]}")
    if int(loss) == 1:
        _check_classes(y, int(sizes[-1]))
    if n == 0:
        return 0
    nth = _threads()
    tile = _tile(-(-min(batch_size, n) // nth))
    with _blas_limit():
        done = _k.train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size,
                              lrs, int(step0), opt, hyper, sizes, acts, int(loss), nth, tile,
                              True, l2)
    return int(done)


def layer_offsets(sizes):
    return _ref.layer_offsets(sizes)


__all__ = ["NAME", "AVAILABLE", "UNAVAILABLE_REASON", "set_num_threads",
           "activation_forward", "activation_backward", "dense_forward", "dense_backward",
           "bce_loss_grad", "cross_entropy_loss_grad", "mse_loss_grad", "loss_grad",
           "mlp_forward", "mlp_loss_grad", "sgd_update", "adagrad_update", "rmsprop_update",
           "adam_update", "optimizer_update", "train_epoch", "shuffle_indices"]


def shuffle_indices(out, u):
    """out = the permutation of reference.shuffle_indices (inside-out Fisher-Yates, one
    compiled sequential loop).  # out: int64 (n,), u: float64 (n,)"""
    if not _ref._shuffle_arrays_ok(out, u):
        _ref._check_shuffle_args(out, u)  # raises the reference's error for a bad array
    u = np.ascontiguousarray(u)           # a strided u is otherwise fine
    if _k.shuffle_indices(out, u) >= 0:
        raise _ref._u_error(u)
