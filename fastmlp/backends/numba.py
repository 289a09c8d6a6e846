"""Numba backend: the reference kernels' names and signatures, compiled and parallel.

Thin Python wrappers run the shared argument contract (``_contract.py``: shapes, codes,
values, and one dtype and layout rule: mixed dtypes and non-contiguous arrays are refused
there, as on every backend), choose the tile height and call the compiled kernels in
``_nb_kernels.py``.  The contract refuses everything a compiled kernel cannot take (another
dtype, a non-contiguous array, a read-only output), so every checked call runs compiled:
the wrappers only copy a read-only input (``kernel_input``).

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

Wide layers: when a layer's product (rows x n_in x n_out) reaches the crossover measured on
this CPU (``tuning.blas_crossover``), the net runs layer by layer over the whole batch
instead (``_nb_kernels.train_epoch_wide`` / ``mlp_forward_wide``, ``dense_*_blas``): each
product of such a layer is split over the threads in row blocks, one SciPy sgemm / dgemm
call per block (``_nb_blas``), and the layers below the crossover use hand-written loops.
"""

import contextlib
import functools
import os

import numpy as np

from ..codes import (ELU_ALPHA, LEAKY_RELU_SLOPE, N_HYPER, OPT_NONE,  # noqa: F401
                     hyper_vector, optimizer_code)
from . import _contract, _threads as _th
from . import reference as _ref
from ._blas_threads import one_blas_thread

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


def set_num_threads(n):
    """The default thread count of the kernels (fastmlp.backends.set_num_threads)."""
    _th.set_default(n)


_launched = False
_parent_launched = False  # Numba's OpenMP pool was started in the process we forked from


def _launch():
    """Start Numba's thread pool once, with passive OpenMP waiting unless the user chose.

    libgomp's default is to spin at the end of every parallel region; with one region per
    mini-batch on a machine shared with other processes, a spinning thread burns the time
    slice its partner needs, and 2-thread epochs were measured 10-30x slower than 1-thread
    ones (load ~4 on 2 cores).  OMP_WAIT_POLICY=passive avoids that collapse at a small cost
    on an idle machine.  The variable is set only while the OpenMP runtime loads and is
    restored afterwards, but libgomp reads it once for the whole process, and PyTorch's CPU
    wheel, Numba and fastmlp's C backend share that one libgomp.so.1: whichever loads it
    first sets the policy for all of them.  Set OMP_WAIT_POLICY (or GOMP_SPINCOUNT) yourself
    to override (see the README: PyTorch in the same process)."""
    global _launched
    if _launched:
        return
    _launched = True
    _th.mark_started()
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        _numba.get_num_threads()
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        _numba.get_num_threads()  # launches the pool: libgomp reads its settings now
    finally:
        del os.environ["OMP_WAIT_POLICY"]


def call_threads():
    """The thread count of this call (fastmlp.threads / set_num_threads, passed into the
    compiled kernel), also set as Numba's count of the calling thread (Numba keeps it per
    thread), the pool started first if need be.  batched_numba's wrappers call it too."""
    n = _th.current(_numba.config.NUMBA_NUM_THREADS)
    _launch()
    _numba.set_num_threads(min(n, _numba.config.NUMBA_NUM_THREADS))
    return n


def _after_fork_in_child():
    global _parent_launched
    _parent_launched = _parent_launched or _launched


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _fork_safe(fn):
    """In a child forked after Numba's OpenMP pool started, Numba terminates the process at
    the first parallel launch (GNU OpenMP is not fork-safe): run the reference there."""
    ref_fn = getattr(_ref, fn.__name__)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _parent_launched:
            _th.current(1)  # the one-time warning
            return ref_fn(*args, **kwargs)
        return fn(*args, **kwargs)
    return wrapper


def _blas_limit():
    """Context manager: BLAS libraries limited to one thread while our threads call them."""
    return one_blas_thread()


# Rows per slab of the layer-by-layer (BLAS) kernels: a batch larger than this is run in
# slabs whose gradients are summed, so the buffers stay O(SLAB x widths).
SLAB = 8192

_gemm_addr = None


def _gemm_fns():
    global _gemm_addr
    if _gemm_addr is None:
        from . import _nb_blas
        _gemm_addr = _nb_blas.addresses()
    return _gemm_addr


def _wide_plan(sizes, rows, dtype):
    """(use_blas, slab): use_blas is an int8 array with 1 for each layer whose products
    (rows x n_in x n_out multiply-adds) reach the measured BLAS crossover of this backend
    (fastmlp.backends.tuning), or None when no layer does or when the per-thread tiles were
    measured faster for this shape class (tuning.prefer_layerwise): then the fused tile
    kernels run the whole net."""
    from . import tuning
    slab = int(max(1, min(rows, SLAB)))
    sz = _contract.int_list(sizes)
    macs = [slab * a * b for a, b in zip(sz[:-1], sz[1:])]
    cross = tuning.blas_crossover(NAME, dtype, largest=max(macs))
    use = [m >= cross for m in macs]
    if not any(use) or not tuning.prefer_layerwise(NAME, sizes, rows, dtype):
        return None, slab
    return np.array(use, dtype=np.int8), slab


def _dense_blas(w, rows, dtype):
    """A dense layer call goes to the BLAS kernels (the whole batch is one product: its
    sizes must fit BLAS's 32-bit ints)."""
    if max(rows, w.shape[0], w.shape[1]) >= 2**31 - 1:
        return False
    return _wide_plan([w.shape[0], w.shape[1]], rows, dtype)[0] is not None


_UNIT = [None]   # the last array of unit weights handed out: fit asks for one every epoch


def _unit_weights(n, dtype):
    """A cached (n,) array of ones for sw None (the compiled kernels read the weights)."""
    w = _UNIT[0]
    if w is None or w.shape[0] != n or w.dtype != dtype:
        w = np.ones(n, dtype=dtype)
        _UNIT[0] = w
    return w


def kernel_input(a):
    """An input array as the compiled kernels take it.  Its dtype and layout are the
    contract's (checked before this runs); a read-only input passes the contract (only
    outputs must be writable) but is another array type to Numba, which would compile
    another specialization of the kernel for it: it is copied.  (Also batched_numba's.)"""
    return a if a.flags.writeable else a.copy()


def kernel_hyper(h):
    """A hyper-parameter vector as the kernels take it: float64, contiguous, writable.  It
    is not under the float arrays' rule (its 8 values are converted, a list is taken);
    the contract has checked its shape and values."""
    return kernel_input(np.ascontiguousarray(h, dtype=np.float64))


def _tile(rows_per_thread):
    return int(max(1, min(rows_per_thread, TILE)))


# ---------------------------------------------------------------------------------------
# Activations.  Every public kernel first runs the shared argument contract (_contract.py),
# then the compiled kernel.
# ---------------------------------------------------------------------------------------

@_fork_safe
def activation_forward(out, z, act):
    """out = f(z), elementwise.  # out, z: same shape"""
    act = _contract.activation(out, z, act)
    _k.act_forward(out.reshape(-1), kernel_input(z).reshape(-1), act, call_threads())


@_fork_safe
def sigmoid_pair(out, z):
    """out (n, 2) = [sigmoid(-z), sigmoid(z)]; z: (n,)"""
    _contract.sigmoid_pair(out, z)
    _k.sigmoid_pair(out, kernel_input(z), call_threads())


@_fork_safe
def activation_backward(dz, da, z, act):
    """dz = da * f'(z), elementwise.  # dz, da, z: same shape"""
    act = _contract.activation_backward(dz, da, z, act)
    _k.act_backward(dz.reshape(-1), kernel_input(da).reshape(-1), kernel_input(z).reshape(-1), act,
                    call_threads())


# ---------------------------------------------------------------------------------------
# Dense layer
# ---------------------------------------------------------------------------------------

@_fork_safe
def dense_forward(out, z, x, w, b, act):
    """out, z: (B, n_out); x: (B, n_in), w: (n_in, n_out), b: (n_out,)"""
    act = _contract.dense_forward(out, z, x, w, b, act)
    dt = w.dtype
    x, w, b = kernel_input(x), kernel_input(w), kernel_input(b)
    nth = call_threads()
    if _dense_blas(w, x.shape[0], dt):
        with _blas_limit():
            _k.dense_forward_blas(out, z, x, w, b, act, nth, _gemm_fns())
        return
    with _blas_limit():
        _k.dense_forward(out, z, x, w, b, act, nth)


@_fork_safe
def dense_backward(dx, dw, db, dout, x, w, z, act):
    """dx: (B, n_in) or None; dw: (n_in, n_out), db: (n_out,) overwritten;
    dout, z: (B, n_out); x: (B, n_in); w: (n_in, n_out)"""
    act = _contract.dense_backward(dx, dw, db, dout, x, w, z, act)
    dt = w.dtype
    dout, x, w, z = kernel_input(dout), kernel_input(x), kernel_input(w), kernel_input(z)
    want_dx = dx is not None
    if not want_dx:
        dx = np.empty((1, w.shape[0]), dtype=dt)
    nth = call_threads()
    if _dense_blas(w, x.shape[0], dt):
        with _blas_limit():
            _k.dense_backward_blas(dx, dw, db, dout, x, w, z, act, nth, want_dx, _gemm_fns())
        return
    with _blas_limit():
        _k.dense_backward(dx, dw, db, dout, x, w, z, act, nth, want_dx)


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------

@_fork_safe
def loss_grad(dout, out, y, sw, loss):
    """Dispatch on the loss code (0 bce, 1 cross_entropy, 2 mse).  Returns the loss."""
    loss = _contract.loss_grad(dout, out, y, sw, loss)
    out, y, sw = kernel_input(out), kernel_input(y), kernel_input(sw)
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

def _opt(opt, p, g, s0, s1, s2, step, h):
    """The fused update, after the contract (_contract.update / optimizer_update) checked
    every array: p and the state buffers given writable, all of p's dtype and contiguous.

    A state buffer the options leave unused may be None (vmax without amsgrad, buf of plain
    SGD, ...): the contract has already refused None for every buffer the options use.  The
    kernel never touches an unused buffer, so one of the call's own arrays stands in for it,
    as optimizer_update's state rows do.  Until 2026-12-03 such a call ran the NumPy
    reference instead: Adam on 1e7 float32 parameters at 2.4 GB/s instead of ~40 (Zen 4)."""
    given = [s for s in (s0, s1, s2) if s is not None]
    stand_in = given[0] if given else p
    s0, s1, s2 = (stand_in if s is None else s for s in (s0, s1, s2))
    _k.opt_update(opt, p, kernel_input(g), s0, s1, s2, step, h, call_threads())


@_fork_safe
def sgd_update(p, g, buf, step, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """torch.optim.SGD.  # p, g, buf: (n,)"""
    named = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                 nesterov=nesterov, maximize=maximize)
    step = _contract.update("sgd", p, g, [("buf", buf, momentum != 0)], step, named)
    _opt(optimizer_code("sgd"), p, g, buf, buf, buf, step, hyper_vector("sgd", **named))


@_fork_safe
def adagrad_update(p, g, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """torch.optim.Adagrad.  # p, g, state_sum: (n,)"""
    named = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                 maximize=maximize)
    step = _contract.update("adagrad", p, g, [("state_sum", state_sum, True)], step, named)
    _opt(optimizer_code("adagrad"), p, g, state_sum, state_sum, state_sum, step,
         hyper_vector("adagrad", **named))


@_fork_safe
def rmsprop_update(p, g, square_avg, grad_avg, momentum_buffer, step, lr, alpha, eps,
                   weight_decay, momentum, centered, maximize):
    """torch.optim.RMSprop.  # p, g, square_avg, grad_avg, momentum_buffer: (n,)"""
    named = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                 centered=centered, maximize=maximize)
    step = _contract.update("rmsprop", p, g, [
        ("square_avg", square_avg, True), ("grad_avg", grad_avg, bool(centered)),
        ("momentum_buffer", momentum_buffer, momentum > 0)], step, named)
    _opt(optimizer_code("rmsprop"), p, g, square_avg, grad_avg, momentum_buffer, step,
         hyper_vector("rmsprop", **named))


@_fork_safe
def adam_update(p, g, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, amsgrad,
                maximize, decoupled):
    """torch.optim.Adam / AdamW (decoupled).  # p, g, m, v, vmax: (n,)"""
    name = "adamw" if decoupled else "adam"
    named = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                 amsgrad=amsgrad, maximize=maximize)
    step = _contract.update(name, p, g, [("m", m, True), ("v", v, True),
                                         ("vmax", vmax, bool(amsgrad))], step, named)
    _opt(optimizer_code(name), p, g, m, v, vmax, step, hyper_vector(name, **named))


@_fork_safe
def optimizer_update(opt, p, g, state, step, hyper):
    """Dispatch by optimizer code; state: (N_STATE, n); hyper: float64 (N_HYPER,)"""
    opt, step = _contract.optimizer_update(opt, p, g, state, step, hyper)
    r = state.shape[0]   # (rows, n), writable and contiguous: its rows are too
    _opt(opt, p, g, state[0], state[min(1, r - 1)], state[min(2, r - 1)], step,
         kernel_hyper(hyper))


def bound_update(opt, p, state):
    """``update(g, step, hyper)``: optimizer_update(opt, p, g, state, step, hyper) on these
    p and state, their checks done once (_contract.BoundUpdate; the C backend's has the
    measurement).  The same arithmetic and refusals as optimizer_update, which it runs
    for anything the quick per-step test does not pass, and in a forked child (_fork_safe)."""
    checked = _contract.BoundUpdate(opt, p, state)
    code, r = checked.opt, state.shape[0]

    def update(g, step, hyper):
        if _parent_launched or not checked.fast(g, step, hyper):
            return optimizer_update(code, p, g, state, step, hyper)
        # the rows taken afresh each step: the state's memory can move (__setstate__)
        _k.opt_update(code, p, kernel_input(g), state[0], state[min(1, r - 1)],
                      state[min(2, r - 1)], step, hyper, call_threads())
    return update


# ---------------------------------------------------------------------------------------
# Whole network
# ---------------------------------------------------------------------------------------

#: multiply-adds a thread needs in one forward pass to be worth waking (csrc/train.inc has the
#: same rule, FM_FWD_MACS_PER_THREAD = 2^21; this forward takes ~2.5x longer per row, so its
#: threads pay from fewer rows: 4-16-1 on 10,000 rows took 395 us on one thread, 345 on two)
FORWARD_MACS_PER_THREAD = 1 << 18


def _macs(sizes):
    return sum(int(a) * int(b) for a, b in zip(sizes[:-1], sizes[1:]))


@_fork_safe
def mlp_forward(out, params, x, sizes, acts):
    """out: (B, sizes[-1]); params: (n_params,); x: (B, sizes[0])"""
    sizes, acts = _contract.mlp_forward(out, params, x, sizes, acts)
    dt = params.dtype
    params, x = kernel_input(params), kernel_input(x)
    if x.shape[0] == 0:
        return
    nth = call_threads()
    use, slab = _wide_plan(sizes, x.shape[0], dt)
    if use is not None:
        with _blas_limit():
            _k.mlp_forward_wide(out, params, x, sizes, acts, nth, slab, use, _gemm_fns())
        return
    # a few rows of a small net: the nth row slices one after another on this thread (the
    # same arithmetic; waking the pool costs more than the pass: 4-16-1 on 1,600 rows took
    # 212 us on two threads, 145 us on one)
    small = _macs(sizes) * x.shape[0] < 2 * FORWARD_MACS_PER_THREAD
    with _blas_limit(), _on_one_thread(nth > 1 and small, nth):
        _k.mlp_forward(out, params, x, sizes, acts, nth, _tile(-(-x.shape[0] // nth)))


@_fork_safe
def mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss, l2=0.0):
    """grad: (n_params,) overwritten; x: (B, sizes[0]); y: (B, k); sw: (B,); l2 the weights'
    L2 coefficient (reference.add_l2).  Returns the loss."""
    sizes, acts, loss = _contract.mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss)
    l2 = _ref.check_l2(l2)
    dt = params.dtype
    params, x, y, sw = kernel_input(params), kernel_input(x), kernel_input(y), kernel_input(sw)
    n = x.shape[0]
    if n == 0:  # as the reference: an empty batch has a zero gradient and a 0/0 loss
        grad[...] = 0
        return float("nan")
    nth = call_threads()
    losses = np.zeros(1)
    use, slab = _wide_plan(sizes, n, dt)
    if use is not None:
        with _blas_limit():
            _k.train_epoch_wide(params, grad, np.empty((1, 1), dtype=dt), losses, x, y, sw,
                                np.arange(n, dtype=np.int64), n, np.zeros(1), 0, OPT_NONE,
                                np.zeros(N_HYPER), sizes, acts, loss, nth, slab, use,
                                _gemm_fns(), float(l2))
        return float(losses[0])
    with _blas_limit():  # the epoch kernel with OPT_NONE: one batch, loss and gradient only
        _k.train_epoch(params, grad, np.empty((1, 1), dtype=dt), losses, x, y, sw,
                       np.arange(n, dtype=np.int64), n, np.zeros(1), 0, OPT_NONE,
                       np.zeros(N_HYPER), sizes, acts, loss, nth, _tile(-(-n // nth)),
                       float(l2), _par_update(params, nth))
    return float(losses[0])


@_fork_safe
def train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0,
                opt, hyper, sizes, acts, loss, l2=0.0):
    """Every mini-batch of one epoch in one compiled call (contract: reference.train_epoch).

    Returns the number of completed batches (n_batches unless a batch had a non-finite loss
    or gradient; that batch's update is not applied)."""
    sizes, acts, loss, opt, batch_size, step0, perm, n_batches = _contract.train_epoch(
        params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0, opt, hyper,
        sizes, acts, loss)
    l2 = _ref.check_l2(l2)
    dt = params.dtype
    x, y = kernel_input(x), kernel_input(y)
    sw = _unit_weights(x.shape[0], dt) if sw is None else kernel_input(sw)
    lrs, hyper = kernel_input(lrs), kernel_hyper(hyper)
    n = perm.shape[0]
    if n == 0:
        return 0
    batch_size = min(batch_size, n)  # one batch either way; keeps the kernel's sums in range
    nth = call_threads()
    use, slab = _wide_plan(sizes, batch_size, dt)
    if use is not None:
        with _blas_limit():
            done = _k.train_epoch_wide(params, grad, state, batch_losses, x, y, sw, perm,
                                       batch_size, lrs, step0, opt, hyper, sizes, acts, loss,
                                       nth, slab, use, _gemm_fns(), float(l2))
        return int(done)
    tile = _tile(-(-batch_size // nth))
    from . import tuning
    one = nth > 1 and tuning.prefer_one_thread(NAME, sizes, batch_size, dt)
    with _blas_limit(), _on_one_thread(one, nth):
        done = _k.train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size,
                              lrs, step0, opt, hyper, sizes, acts, loss, nth, tile,
                              float(l2), not one and _par_update(params, nth))
    return int(done)


def _par_update(params, nth):
    """Whether the epoch kernel's per-batch gradient reduction and optimizer update should
    run on the threads (_nb_kernels.PAR_UPDATE_MIN_PARAMS); the same bits either way."""
    return nth > 1 and params.shape[0] >= _k.PAR_UPDATE_MIN_PARAMS


@contextlib.contextmanager
def _on_one_thread(one, nth):
    """When ``one``: Numba's pool at one thread for the call, so that the kernel's nth row
    slices (its prange over them) run one after another on the calling thread - the same
    arithmetic, without waking the pool every mini-batch (tuning.prefer_one_thread)."""
    if not one:
        yield
        return
    _numba.set_num_threads(1)
    try:
        yield
    finally:
        _numba.set_num_threads(min(nth, _numba.config.NUMBA_NUM_THREADS))


def layer_offsets(sizes):
    return _ref.layer_offsets(sizes)


# The kernel API (as reference.py's); call_threads, kernel_input and kernel_hyper are public
# for batched_numba's wrappers, not kernels.
__all__ = ["NAME", "AVAILABLE", "UNAVAILABLE_REASON", "set_num_threads",
           "activation_forward", "activation_backward", "dense_forward", "dense_backward",
           "bce_loss_grad", "cross_entropy_loss_grad", "mse_loss_grad", "loss_grad",
           "mlp_forward", "mlp_loss_grad", "sgd_update", "adagrad_update", "rmsprop_update",
           "adam_update", "optimizer_update", "bound_update", "train_epoch", "shuffle_indices",
           "epoch_permutation"]


def shuffle_indices(out, u):
    """out = the permutation of reference.shuffle_indices (inside-out Fisher-Yates, one
    compiled sequential loop, no OpenMP: safe after fork).  # out: int64 (n,), u: float64 (n,)"""
    if not _contract.shuffle_arrays_ok(out, u):
        _contract.shuffle_indices(out, u)  # raises the shared error for a bad array
    u = np.ascontiguousarray(u)           # a strided u is otherwise fine
    if _k.shuffle_indices(out, u) >= 0:
        raise _contract.u_range_error(u)


def epoch_permutation(out, key):
    """out = reference.epoch_permutation(out, key): the same three passes compiled, one
    thread (no OpenMP: safe after fork).
    # out: int64 (n,) or int32 (n <= 2^31), key: int in [0, 2^64)"""
    key = _contract.epoch_permutation(out, key)
    if out.shape[0]:
        _k.epoch_permutation(out, np.uint64(key))
