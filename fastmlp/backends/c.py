"""C backend: thin cffi wrappers over the kernels of ``csrc/`` (API: ``csrc/fastmlp.h``).

Same names and signatures as ``fastmlp.backends.reference`` (the spec).  Every wrapper runs
the shared contract first (``_contract.py``: dtype, contiguity, writability and shapes,
TypeError / ValueError naming the argument, as on every backend), then hands the NumPy
buffers to C without copying (``ffi.from_buffer``) and turns a non-OK status into an
exception carrying ``fastmlp_strerror``'s text.  The lengths C is given come from the
shapes the contract checked: C cannot see a buffer's length, so that check is what keeps
it inside the arrays.

If the compiled module ``fastmlp._fastmlp_c`` is missing (no compiler at install time, see
``setup.py``), importing this module still works: ``AVAILABLE`` is False,
``UNAVAILABLE_REASON`` says why, and the registry's "auto" skips the backend.
"""

import contextlib
import itertools
import math
import threading

import numpy as np

from . import _contract, _threads as _th, tuning as _tuning
from . import reference as _ref
from ._blas_threads import one_blas_thread
from ..codes import ACTIVATIONS

NAME = "c"
# train_epoch takes int32 row orders as they are (fastmlp_train_epoch_i32_l2): fit draws its
# epoch order in int32 for this backend whenever the rows fit (EpochOrder), half the bytes
# to write, shuffle and read.
ROW_ORDER_INT32 = True
# train_epoch(..., next_order=(out, key)) builds the next epoch's order during this one
NEXT_ORDER = True


def _import_passive():
    """Load the extension with OMP_WAIT_POLICY=passive unless the user chose a policy (as
    numba.py does for Numba's pool; restored at once).  libgomp reads it when it loads: its
    default spins between parallel regions, and the BLAS dense kernels open several regions
    per call: on a loaded 2-core machine the spinning thread took the time slice its partner
    needed (a layer-by-layer BLAS engine ran 2 threads 20x slower than 1; passive: no
    collapse).  libgomp reads the policy once per process, and PyTorch's CPU wheel shares
    it: imported after fastmlp, torch's small operations wait passively too (README, PyTorch
    in the same process)."""
    import os
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        from .._fastmlp_c import ffi, lib
        return ffi, lib
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from .._fastmlp_c import ffi, lib
    finally:
        del os.environ["OMP_WAIT_POLICY"]
    return ffi, lib


try:
    _ffi, _lib = _import_passive()
except Exception as _exc:  # ImportError, or a broken / stale build
    _ffi = _lib = None
    AVAILABLE = False
    UNAVAILABLE_REASON = (f"the C extension fastmlp._fastmlp_c is not built or cannot be "
                          f"loaded ({type(_exc).__name__}: {_exc}); reinstall with a C "
                          f"compiler available (pip install -e .)")
else:
    AVAILABLE = True
    UNAVAILABLE_REASON = ""


def _shadowed_builds():
    """Other builds of fastmlp._fastmlp_c, newer than the loaded one, that it shadows.

    ``pip install -e .`` writes ``_fastmlp_c.abi3.so`` while ``python fastmlp/_build_ffi.py``
    writes ``_fastmlp_c.cpython-3XX-....so``; Python loads the latter first, so after an edit
    of csrc/ and a pip rebuild the old kernels would silently keep running."""
    import glob
    import os
    from .. import _fastmlp_c
    loaded = os.path.abspath(getattr(_fastmlp_c, "__file__", "") or "")
    if not os.path.isfile(loaded):
        return loaded, []
    here = os.path.dirname(loaded)
    others = [f for pat in ("_fastmlp_c*.so", "_fastmlp_c*.pyd")
              for f in glob.glob(os.path.join(here, pat)) if os.path.abspath(f) != loaded]
    return loaded, [f for f in others if os.path.getmtime(f) > os.path.getmtime(loaded)]


if AVAILABLE:
    try:
        _loaded, _newer = _shadowed_builds()
    except OSError:
        _loaded, _newer = "", []
    if _newer:
        import warnings
        warnings.warn(f"fastmlp C backend: the loaded build {_loaded} is older than "
                      f"{', '.join(_newer)} (which it shadows); remove the stale file or "
                      f"rebuild in place with `python fastmlp/_build_ffi.py`", RuntimeWarning,
                      stacklevel=2)
        del warnings
    del _loaded, _newer

_LOSSES = ("bce", "cross_entropy", "mse")
_CTYPE = {np.dtype(np.float32): ("float[]", "_f32"), np.dtype(np.float64): ("double[]", "_f64")}


class CBackendError(RuntimeError):
    """A C kernel returned an error status the wrapper's own checks did not anticipate."""


def raise_status(status, fn):
    """Raise the exception for the non-OK status a C function ``fn`` returned: MemoryError,
    ValueError for a bad argument C caught, else CBackendError; fastmlp_strerror's text.
    (Public, as sync_threads, blas_scope, net_products and net_fits_c: batched_c's wrapper
    calls its C kernel through them.  Not kernels.)"""
    msg = f"{fn}: {_ffi.string(_lib.fastmlp_strerror(status)).decode()} (status {status})"
    if status == _lib.FASTMLP_ENOMEM:
        raise MemoryError(msg)
    if status in (_lib.FASTMLP_EINVAL, _lib.FASTMLP_ESIZE, _lib.FASTMLP_ECODE,
                  _lib.FASTMLP_EVALUE):
        raise ValueError(msg)
    raise CBackendError(msg)


def _call(fn, *args):
    sync_threads()
    status = getattr(_lib, fn)(*args)
    if status != 0:
        raise_status(status, fn)


# OpenMP's default count, read before anything sets ours (0 in C means "OpenMP's default").
_C_DEFAULT = int(_lib.fastmlp_get_num_threads()) if AVAILABLE else 1


def sync_threads():
    """Hand this call's thread count to C, which keeps it per calling OS thread: two Python
    threads with different counts (fastmlp.threads) each get their own; and, at the first
    call with a new count, the measured work from which the element-wise kernels use the
    threads (tuning.parallel_min_work; process-wide in C)."""
    n = _th.current(_C_DEFAULT)
    _lib.fastmlp_set_num_threads(n)
    if n != _par_work["threads"] and not _par_work["busy"]:
        _apply_parallel_min_work(n)


_par_work = {"threads": None, "busy": False}


def _apply_parallel_min_work(n):
    _par_work["busy"] = True
    try:
        ns = _tuning.parallel_min_work(NAME)
        if _lib.fastmlp_set_parallel_min_work(float(ns)) == 0:
            _par_work["threads"] = n
    finally:
        _par_work["busy"] = False


def parallel_min_work():
    """The one-thread work (ns) from which the element-wise kernels use the threads now."""
    return float(_lib.fastmlp_get_parallel_min_work())


def measure_parallel_min_work(rounds=15, calls=5):
    """The one-thread work, in ns, from which splitting an element-wise kernel over this
    thread count's OpenMP team pays, measured: an Adam update of 262,144 float32 (about
    what the estimate in csrc/internal.h counts as 262 us of work) timed on the team and on
    one thread, the two taking turns (rounds x calls each).  The team's overhead is
    O = t_team - t_one / n (waking the team, moving the data to the other cores, the join);
    splitting pays from t_one >= O n / (n - 1).  Why not just a tiny call's wake-up: on the
    Zen 3 VM that was ~95 us, while the team's whole overhead on data in cache was ~280 us,
    and two threads lost up to 1M elements."""
    import time
    n_threads = _th.current(_C_DEFAULT)
    if n_threads <= 1:
        return float(_lib.fastmlp_get_parallel_min_work())
    n = 262144
    rng = np.random.default_rng(0)
    p, g = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    bufs = [_ffi.from_buffer("float[]", a) for a in (p, g, m, v)]
    saved = _lib.fastmlp_get_parallel_min_work()
    times = {0.0: [], float("inf"): []}
    _lib.fastmlp_set_num_threads(n_threads)
    try:
        for r in range(rounds + 1):   # round 0 warms up (first touch, thread creation)
            for ns, ts in times.items():
                _lib.fastmlp_set_parallel_min_work(ns)
                t0 = time.perf_counter()
                for _ in range(calls):   # lr 0: p stays as it is
                    _lib.fastmlp_adam_update_f32(*bufs, _ffi.NULL, n, 1, 0.0, 0.9, 0.999,
                                                 1e-8, 0.0, 0, 0, 0)
                if r:
                    ts.append((time.perf_counter() - t0) / calls)
    finally:
        _lib.fastmlp_set_parallel_min_work(saved)
    t_team, t_one = (float(np.median(times[k])) for k in (0.0, float("inf")))
    overhead = max(0.0, t_team - t_one / n_threads)
    return overhead * n_threads / (n_threads - 1) * 1e9


# ---------------------------------------------------------------------------------------
# BLAS: SciPy's OpenBLAS handed to C (csrc/blas.c) for the layers above the crossover.
# ---------------------------------------------------------------------------------------

_gemm = {"ptrs": None, "set": None}


def _scipy_gemm_pointers():
    """(sgemm, dgemm) of scipy.linalg.cython_blas as cffi void pointers, or None without
    SciPy.  The C library links no BLAS: it takes these at load (fastmlp_set_gemm)."""
    import ctypes
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return None
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    out = []
    for fn in ("sgemm", "dgemm"):
        cap = cython_blas.__pyx_capi__[fn]
        out.append(_ffi.cast("void *", get(cap, name(cap))))
    return tuple(out)


def _gemm_pointers():
    if _gemm["ptrs"] is None:
        _gemm["ptrs"] = _scipy_gemm_pointers() or False
    return _gemm["ptrs"]


def has_blas():
    """Whether the C kernels have a BLAS to call (SciPy's, handed in at first use)."""
    return bool(AVAILABLE and _gemm_pointers())


_NO_SCOPE = contextlib.nullcontext()
_UNSET = object()
_gemm_lock = threading.Lock()


def blas_scope(dt, products, layers=None, tile=None):
    """Hand C the measured crossover of dt (fastmlp.backends.tuning) and, for the block,
    this thread's choice of BLAS layers (`layers`: those of at least that many weights, inf
    none, None: the crossover decides, from the (M, N, K) products) and of the tile rows
    used when a layer goes to BLAS (`tile`; None: C's default).  When a product goes to
    BLAS, BLAS is limited to one thread for the block: the C kernels call it from each of
    their OpenMP threads on a block of rows (no oversubscription).  A block with nothing
    to set or limit (a small predict) gets a shared null context: this runs on every
    kernel call, and a generator-based context costs ~5 us."""
    if not _gemm_pointers():
        return _NO_SCOPE
    dt = np.dtype(dt)
    # With a choice of layers the kernels never read the product crossover (blas.c), so it
    # is not asked for: measuring it took 6-12 s of a first fit on a new machine (Zen 4,
    # 2 vCPUs) whose training epochs follow blas_layers.  The pointers still go in, with
    # the crossover already set, if any (none yet: inf, no product by it): a kernel that
    # reads the crossover (layers None) sets the measured one first, so it never runs with
    # another (a short predict's bits must not depend on what ran before it).
    cross = _tuning.blas_crossover(NAME, dt) if layers is None else None
    done = _gemm["set"]
    if done is None or (cross is not None and done.get(dt, _UNSET) != cross):
        with _gemm_lock:   # read, set in C, write back: one thread at a time
            done = _gemm["set"]
            if cross is None:
                cross = math.inf if done is None else done.get(dt, math.inf)
            if done is None or done.get(dt, _UNSET) != cross:
                new = {np.dtype(np.float32): math.inf, np.dtype(np.float64): math.inf}
                new.update(done or {})
                new[dt] = cross
                status = _lib.fastmlp_set_gemm(*_gemm["ptrs"], *new.values())
                if status != 0:
                    raise_status(status, "fastmlp_set_gemm")
                _gemm["set"] = new
    used = False
    if layers is None:
        for m, n, k in products:
            if float(m) * n * k >= cross:
                used = True
                break
    else:
        for _, n, k in products:
            if float(n) * k >= layers:
                used = True
                break
    if layers is None and tile is None and not used:
        return _NO_SCOPE
    return _blas_block(layers, tile, used)


@contextlib.contextmanager
def _blas_block(layers, tile, used):
    """The block of blas_scope that sets this thread's layers / tile in C (restored on
    exit) and limits BLAS to one thread if a product goes to it."""
    if layers is not None:
        _lib.fastmlp_set_thread_gemm_layers(float(layers))
    if tile is not None:
        _call("fastmlp_set_thread_gemm_tile", int(tile))
    try:
        with one_blas_thread() if used else contextlib.nullcontext():
            yield
    finally:
        if layers is not None:
            _lib.fastmlp_set_thread_gemm_layers(-1.0)
        if tile is not None:
            _lib.fastmlp_set_thread_gemm_tile(0)


def net_products(sz, rows):
    """The (M, N, K) of each layer's forward product at `rows` rows, at most the tile of
    train.inc's BLAS layers (FM_BLAS_TILE, 1024; C decides on at most that many rows, so
    this is never smaller: BLAS is never left multi-threaded inside an OpenMP region)."""
    rows = min(int(rows), 1024)
    return [(rows, b, a) for a, b in itertools.pairwise(_contract.int_list(sz))]


def set_num_threads(n):
    """The default thread count of the kernels (fastmlp.backends.set_num_threads)."""
    _th.set_default(n)


def get_num_threads():
    """The count the next kernel call from this Python thread will use."""
    return _th.current(_C_DEFAULT) if AVAILABLE else 1


def build_info():
    """{"openmp": bool, "avx2": bool, "avx512": bool, "threads": int} of the compiled
    module (avx512: the matrix products' zmm micro-kernel)."""
    if not AVAILABLE:
        return {"available": False, "reason": UNAVAILABLE_REASON}
    return {"available": True, "openmp": bool(_lib.fastmlp_has_openmp()),
            "avx2": bool(_lib.fastmlp_has_avx2()), "avx512": bool(_lib.fastmlp_has_avx512()),
            "threads": get_num_threads()}


# ---------------------------------------------------------------------------------------
# Buffers.  The C side validates sizes and pointers too, but cannot know a NumPy array's
# length, dtype or layout: the contract (_contract.py), which every public wrapper runs
# first, checks them, and the sizes handed to C below are read from the checked shapes.
# ---------------------------------------------------------------------------------------

def _buf(a, writable=False):
    """Pointer to the data of ``a`` (no copy; NULL when empty).  Only for arrays the
    contract has checked: float32 / float64, C-contiguous, and writable if written."""
    if a.size == 0:
        return _ffi.NULL
    return _ffi.from_buffer(_CTYPE[a.dtype][0], a, require_writable=writable)


def _hyper(hyper):
    """The hyper-parameter vector as float64 (not under the float arrays' rule: its 8
    values are converted, a list is taken; the contract checked its shape and values)."""
    h = np.ascontiguousarray(hyper, dtype=np.float64)
    return h, _ffi.from_buffer("double[]", h)


def net_fits_c(sz):
    """The C network kernels take at most FASTMLP_MAX_LAYERS layers of widths up to
    FASTMLP_MAX_WIDTH (fixed-size per-layer tables); larger models run on the reference,
    which gives the same answer."""
    return sz.shape[0] - 1 <= _lib.FASTMLP_MAX_LAYERS and max(sz.tolist()) <= \
        _lib.FASTMLP_MAX_WIDTH


def _net(sz, ac):
    """sz, ac as _contract.net returns them (contiguous int64) and C pointers to them."""
    return sz, _ffi.from_buffer("int64_t[]", sz), ac, _ffi.from_buffer("int64_t[]", ac)


# ---------------------------------------------------------------------------------------
# Activations and dense layers.
# ---------------------------------------------------------------------------------------

def activation_forward(out, z, act):
    """out = f(z), elementwise.  # out, z: same shape"""
    act = _contract.activation(out, z, act)
    if z.size:
        _call("fastmlp_activation_forward" + _CTYPE[z.dtype][1], _buf(out, True), _buf(z),
              z.size, act)


def sigmoid_pair(out, z):
    """out (n, 2) = [sigmoid(-z), sigmoid(z)]; z: (n,)"""
    _contract.sigmoid_pair(out, z)
    if z.size:
        _call("fastmlp_sigmoid_pair" + _CTYPE[z.dtype][1], _buf(out, True), _buf(z), z.size)


def activation_backward(dz, da, z, act):
    """dz = da * f'(z), elementwise.  # dz, da, z: same shape"""
    act = _contract.activation_backward(dz, da, z, act)
    if z.size:
        _call("fastmlp_activation_backward" + _CTYPE[z.dtype][1], _buf(dz, True), _buf(da),
              _buf(z), z.size, act)


def _dense_dims(x, w):
    """dtype, batch, n_in, n_out of a dense layer call (shapes checked by the contract)."""
    bsz, n_in = x.shape
    return w.dtype, bsz, n_in, w.shape[1]


def dense_forward(out, z, x, w, b, act):
    """out, z: (B, n_out); x: (B, n_in), w: (n_in, n_out), b: (n_out,)"""
    act = _contract.dense_forward(out, z, x, w, b, act)
    dt, bsz, n_in, n_out = _dense_dims(x, w)
    args = (_buf(out, True), _buf(z, True), _buf(x), _buf(w), _buf(b))
    if bsz and n_in and n_out:
        with blas_scope(dt, [(bsz, n_out, n_in)]):
            _call("fastmlp_dense_forward" + _CTYPE[dt][1], *args, bsz, n_in, n_out, act)
    elif bsz and n_out:  # no inputs: z = b
        z[...] = b
        activation_forward(out, z, act)


def dense_backward(dx, dw, db, dout, x, w, z, act):
    """dx: (B, n_in) or None; dw: (n_in, n_out); db: (n_out,); dout, z: (B, n_out)."""
    act = _contract.dense_backward(dx, dw, db, dout, x, w, z, act)
    dt, bsz, n_in, n_out = _dense_dims(x, w)
    args = (_ffi.NULL if dx is None else _buf(dx, True), _buf(dw, True), _buf(db, True),
            _buf(dout), _buf(x), _buf(w), _buf(z))
    if bsz and n_in and n_out:
        with blas_scope(dt, [(n_in, n_out, bsz)]):
            _call("fastmlp_dense_backward" + _CTYPE[dt][1], *args, bsz, n_in, n_out, act)
    else:  # degenerate shapes: empty sums
        dw[...] = 0
        db[...] = 0
        if dx is not None:
            dx[...] = 0


# ---------------------------------------------------------------------------------------
# Losses.
# ---------------------------------------------------------------------------------------

def _loss(fn, dout, out, y, sw):
    _contract.loss_grad(dout, out, y, sw, _LOSSES.index(fn))
    dt = out.dtype
    bsz, k = out.shape
    if k < 1:   # reachable: the contract takes an (n, 0) output (its y (n, 0) for mse)
        raise ValueError(f"the network output must have at least one column, got shape "
                         f"{out.shape}")
    args = (_buf(dout, True), _buf(out), _buf(y), _buf(sw))
    if bsz == 0:  # as the reference: an empty weighted mean is 0/0
        return float("nan")
    value = _ffi.new("double *")
    name = {"bce": "fastmlp_bce_loss_grad", "cross_entropy": "fastmlp_cross_entropy_loss_grad",
            "mse": "fastmlp_mse_loss_grad"}[fn] + _CTYPE[dt][1]
    if fn == "bce" and k > 1:  # multilabel: one binary cross-entropy per output
        _call("fastmlp_loss_grad" + _CTYPE[dt][1], value, *args, bsz, k, 0)
    elif fn == "bce":
        _call(name, value, *args, bsz)
    else:
        _call(name, value, *args, bsz, k)
    return float(value[0])


def bce_loss_grad(dlogits, logits, y, sw):
    """dlogits, logits: (B, K); y: (B, K) in {0, 1}; sw: (B,).  Returns the loss."""
    return _loss("bce", dlogits, logits, y, sw)


def cross_entropy_loss_grad(dlogits, logits, y, sw):
    """dlogits, logits: (B, C); y: (B, 1) class index as float; sw: (B,).  Returns the loss."""
    return _loss("cross_entropy", dlogits, logits, y, sw)


def mse_loss_grad(dout, out, y, sw):
    """dout, out, y: (B, K); sw: (B,).  Returns the loss."""
    return _loss("mse", dout, out, y, sw)


def loss_grad(dout, out, y, sw, loss):
    """Dispatch on the loss code (0 bce, 1 cross_entropy, 2 mse)."""
    loss = _contract.code("loss", loss)
    return _loss(_LOSSES[loss], dout, out, y, sw)


# ---------------------------------------------------------------------------------------
# Whole network.
# ---------------------------------------------------------------------------------------

def mlp_forward(out, params, x, sizes, acts):
    """out: (B, sizes[-1]); params: (n_params,); x: (B, sizes[0])"""
    sz, ac = _contract.mlp_forward(out, params, x, sizes, acts)
    if not net_fits_c(sz):
        return _ref.mlp_forward(out, params, x, sz, ac)
    dt = params.dtype
    sz, psz, ac, pac = _net(sz, ac)
    bsz = x.shape[0]
    args = (_buf(out, True), _buf(params), _buf(x))
    if bsz:
        layers, tile = _tuning.forward_blas(NAME, sz, bsz, dt)
        # False: dense products for this net class, measured faster on this CPU (not asked
        # below FORWARD_MIN_ROWS rows, where it keeps C's default: ~2 us of a 1-row predict)
        dense = (bsz >= _tuning.FORWARD_MIN_ROWS
                 and _tuning.forward_skip_zeros(NAME, sz, bsz, dt,
                                                lambda: skips_zeros(sz, ac)) is False)
        if dense:
            _lib.fastmlp_set_thread_skip_zeros(math.inf)
        try:
            with blas_scope(dt, net_products(sz, bsz), layers, tile):
                _call("fastmlp_mlp_forward" + _CTYPE[dt][1], *args, bsz, psz, pac,
                      sz.shape[0] - 1)
        finally:
            if dense:
                _lib.fastmlp_set_thread_skip_zeros(-1.0)


_RELU = ACTIVATIONS.index("relu")


def skips_zeros(sizes, acts):
    """Whether C's float32 inference pass can skip zero inputs anywhere in this net
    (csrc/sparse.c, FM_SPARSE_SHAPE_OK): a layer after a ReLU with a multiple of 8 outputs,
    at most 64, and 8 to 1024 inputs.  Only then is the choice (tuning.forward_skip_zeros)
    worth measuring or passing."""
    sizes, acts = [int(v) for v in sizes], [int(v) for v in acts]
    return any(acts[l - 1] == _RELU and sizes[l + 1] % 8 == 0 and sizes[l + 1] <= 64
               and 8 <= sizes[l] <= 1024 for l in range(1, len(sizes) - 1))


def mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss, l2=0.0):
    """grad: (n_params,); params: (n_params,); x: (B, sizes[0]); y: (B, k); sw: (B,); l2 the
    weights' L2 coefficient (reference.add_l2)."""
    sz, ac, loss = _contract.mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss)
    l2 = _ref.check_l2(l2)
    if not net_fits_c(sz):
        return _ref.mlp_loss_grad(grad, params, x, y, sw, sz, ac, loss, l2)
    dt = params.dtype
    sz, psz, ac, pac = _net(sz, ac)
    bsz = x.shape[0]
    args = (_buf(grad, True), _buf(params), _buf(x), _buf(y), _buf(sw))
    if bsz == 0:  # as the reference: zero gradient (empty sums), loss 0/0
        grad[...] = 0
        return float("nan")
    value = _ffi.new("double *")
    with blas_scope(dt, net_products(sz, bsz)):
        _call("fastmlp_mlp_loss_grad_l2" + _CTYPE[dt][1], value, *args, bsz, psz, pac,
              sz.shape[0] - 1, loss, l2)
    return float(value[0])


# ---------------------------------------------------------------------------------------
# Optimizer updates.
# ---------------------------------------------------------------------------------------

def _opt_bufs(p, g, states):
    """dtype and pointers of an update's arrays; an unused state buffer may be None (NULL:
    C does not touch it; the contract refused None for a buffer the options use)."""
    return p.dtype, [_buf(p, True), _buf(g)] + [
        _ffi.NULL if a is None else _buf(a, True) for a in states]


def sgd_update(p, g, buf, step, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """torch.optim.SGD.  # p, g, buf: (n,)  (buf untouched when momentum == 0)"""
    step = _contract.update("sgd", p, g, [("buf", buf, momentum != 0)], step, dict(
        lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
        nesterov=nesterov, maximize=maximize))
    dt, a = _opt_bufs(p, g, [buf])
    if p.size:
        _call("fastmlp_sgd_update" + _CTYPE[dt][1], *a, p.size, step, float(lr),
              float(momentum), float(dampening), float(weight_decay), int(bool(nesterov)),
              int(bool(maximize)))


def adagrad_update(p, g, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """torch.optim.Adagrad.  # p, g, state_sum: (n,)"""
    step = _contract.update("adagrad", p, g, [("state_sum", state_sum, True)], step, dict(
        lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize))
    dt, a = _opt_bufs(p, g, [state_sum])
    if p.size:
        _call("fastmlp_adagrad_update" + _CTYPE[dt][1], *a, p.size, step, float(lr),
              float(lr_decay), float(weight_decay), float(eps), int(bool(maximize)))


def rmsprop_update(p, g, square_avg, grad_avg, momentum_buffer, step, lr, alpha, eps,
                   weight_decay, momentum, centered, maximize):
    """torch.optim.RMSprop.  # p, g, square_avg, grad_avg, momentum_buffer: (n,)"""
    needed = [True, bool(centered), momentum > 0]
    step = _contract.update("rmsprop", p, g, list(zip(
        ("square_avg", "grad_avg", "momentum_buffer"), (square_avg, grad_avg, momentum_buffer),
        needed)), step, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                             momentum=momentum, centered=centered, maximize=maximize))
    dt, a = _opt_bufs(p, g, [square_avg, grad_avg, momentum_buffer])
    if p.size:
        _call("fastmlp_rmsprop_update" + _CTYPE[dt][1], *a, p.size, step, float(lr),
              float(alpha), float(eps), float(weight_decay), float(momentum),
              int(bool(centered)), int(bool(maximize)))


def adam_update(p, g, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, amsgrad,
                maximize, decoupled):
    """torch.optim.Adam / AdamW (decoupled=True).  # p, g, m, v, vmax: (n,)"""
    step = _contract.update("adamw" if decoupled else "adam", p, g, [
        ("m", m, True), ("v", v, True), ("vmax", vmax, bool(amsgrad))], step, dict(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
        maximize=maximize))
    dt, a = _opt_bufs(p, g, [m, v, vmax])
    if p.size:
        _call("fastmlp_adam_update" + _CTYPE[dt][1], *a, p.size, step, float(lr),
              float(beta1), float(beta2), float(eps), float(weight_decay),
              int(bool(amsgrad)), int(bool(maximize)), int(bool(decoupled)))


def optimizer_update(opt, p, g, state, step, hyper):
    """Dispatch an update by optimizer code.  state: (N_STATE, n); hyper: float64 (N_HYPER,)"""
    opt, step = _contract.optimizer_update(opt, p, g, state, step, hyper)
    h, ph = _hyper(hyper)
    if p.size:
        _call("fastmlp_optimizer_update" + _CTYPE[p.dtype][1], opt, _buf(p, True), _buf(g),
              _buf(state, True), p.size, step, ph)


def bound_update(opt, p, state):
    """``update(g, step, hyper)``: optimizer_update(opt, p, g, state, step, hyper) on these
    p and state, fully checked once (_contract.BoundUpdate), so that a step leaves Python
    little to do before C runs: with cold caches the full wrapper took ~200 us of a 2.4 ms
    SGD step on 1e7 float32 (7-8 % of its bandwidth; Xeon, 2 threads).  The same
    arithmetic and refusals as optimizer_update.  Each call takes every array's pointer
    afresh (an array's memory can move: ``a.__setstate__``, ``a.resize``)."""
    checked = _contract.BoundUpdate(opt, p, state)
    fn_name = "fastmlp_optimizer_update" + _CTYPE[p.dtype][1]
    fn, ctype, code = getattr(_lib, fn_name), _CTYPE[p.dtype][0], checked.opt

    def update(g, step, hyper):
        if p.size == 0 or not checked.fast(g, step, hyper):
            return optimizer_update(code, p, g, state, step, hyper)
        sync_threads()
        status = fn(code, _ffi.from_buffer(ctype, p, require_writable=True),
                    _ffi.from_buffer(ctype, g), _ffi.from_buffer(ctype, state,
                                                                 require_writable=True),
                    p.size, step, _ffi.from_buffer("double[]", hyper))
        if status != 0:
            raise_status(status, fn_name)
    return update


# ---------------------------------------------------------------------------------------
# One fused epoch.
# ---------------------------------------------------------------------------------------

def _check_next_order(next_order, pm, epoch_arrays=()):
    """train_epoch's next_order: (out, key), out a writable contiguous int32 or int64 array
    apart from perm and from every other array of the epoch (``epoch_arrays``: [(name,
    array)]; its contents are replaced, by threads while the epoch runs), key an int in
    [0, 2^64)."""
    try:
        out, key = next_order
    except (TypeError, ValueError):
        raise TypeError(f"next_order must be a pair (out, key), got {type(next_order).__name__}"
                        ) from None
    try:
        key = _contract.epoch_permutation(out, key)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"next_order: {exc}") from None
    if out.size == 0:
        raise ValueError("next_order: out must have at least one entry")
    if np.shares_memory(out, pm):
        raise ValueError("next_order's out must not overlap perm (the epoch reads perm while "
                         "the next order is written)")
    _contract.apart([("next_order's out", out)], list(epoch_arrays))
    return out, key


def train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0,
                opt, hyper, sizes, acts, loss, l2=0.0, *, next_order=None):
    """Every mini-batch of one epoch in one C call (see reference.train_epoch).

    Returns the number of completed batches (fewer than n_batches if a batch's loss or
    gradient was not finite: that update is not applied).

    next_order: None, or (out, key): out = epoch_permutation(out, key) as well, the next
    epoch's order, written whenever the call returns (with an int32 perm and out, it is built
    by threads that would otherwise wait for the serial optimizer step of a small net, so
    that it costs fit no time between epochs)."""
    sz, ac, loss, opt, batch_size, step0, pm, n_batches = _contract.train_epoch(
        params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0, opt, hyper,
        sizes, acts, loss, check_perm=False, keep_int32=True)
    try:
        l2 = _ref.check_l2(l2)
    except (ValueError, TypeError):   # a bad perm first, as the reference reports it
        _contract.perm_rows(pm, x.shape[0])
        raise
    arrays = [("params", params), ("grad", grad), ("state", state),
              ("batch_losses", batch_losses), ("x", x), ("y", y), ("sw", sw), ("lrs", lrs),
              ("hyper", hyper)]
    if not net_fits_c(sz):
        _contract.perm_rows(pm, x.shape[0])
        nxt = _check_next_order(next_order, pm, arrays) if next_order is not None else None
        done = _ref.train_epoch(params, grad, state, batch_losses, x, y, sw, pm, batch_size,
                                lrs, step0, opt, hyper, sz, ac, loss, l2)
        if nxt is not None:
            epoch_permutation(*nxt)
        return done
    dt = params.dtype
    sz, psz, ac, pac = _net(sz, ac)
    n, n_perm = x.shape[0], pm.shape[0]
    i32 = pm.dtype == np.int32   # fit's epoch order when its rows fit: half the bytes
    ppm = _ffi.from_buffer("int32_t[]" if i32 else "int64_t[]", pm) if n_perm else _ffi.NULL
    fn = "fastmlp_train_epoch" + ("_i32" if i32 else "") + "_l2" + _CTYPE[dt][1]
    # lrs and batch_losses: float64, contiguous, at least n_batches long (the contract)
    plrs = _ffi.from_buffer("double[]", lrs)
    h, ph = _hyper(hyper)
    args = (_buf(params, True), _buf(grad, True), _buf(state, True),
            _ffi.from_buffer("double[]", batch_losses, require_writable=True),
            _buf(x), _buf(y), _ffi.NULL if sw is None else _buf(sw))   # NULL: unit weights
    if next_order is not None:
        nxt, key = _check_next_order(next_order, pm, arrays)
        if not (i32 and nxt.dtype == np.int32 and n_perm):   # built here: after the epoch
            done = train_epoch(params, grad, state, batch_losses, x, y, sw, pm, batch_size,
                               lrs, step0, opt, hyper, sz, ac, loss, l2)
            epoch_permutation(nxt, key)
            return done
        fn = "fastmlp_train_epoch_i32_next" + _CTYPE[dt][1]
        extra = (_ffi.from_buffer("int32_t[]", nxt, require_writable=True), nxt.size, key)
    else:
        extra = ()
    if n_perm == 0:
        return 0
    done = _ffi.new("int64_t *")
    sync_threads()
    with blas_scope(dt, net_products(sz, min(batch_size, n_perm)),
                     _tuning.blas_layers(NAME, sz, batch_size, dt),
                     _tuning.blas_tile(NAME, sz, batch_size, dt)):
        status = getattr(_lib, fn)(done, *args, n, ppm, n_perm, batch_size, plrs, step0, opt,
                                   ph, psz, pac, sz.shape[0] - 1, loss, l2, *extra)
    if status not in (0, _lib.FASTMLP_ENONFINITE):
        if status == _lib.FASTMLP_EVALUE:   # perm's range: C checked it first, before training
            _contract.perm_rows(pm, n)
        raise_status(status, fn)
    return int(done[0])


# ---------------------------------------------------------------------------------------
# The epoch's row order.
# ---------------------------------------------------------------------------------------

def shuffle_indices(out, u):
    """out = the permutation of reference.shuffle_indices (inside-out Fisher-Yates in C).
    # out: int64 (n,), u: float64 (n,)"""
    if not _contract.shuffle_arrays_ok(out, u):
        _contract.shuffle_indices(out, u)  # raises the shared error for a bad array
    if u.size == 0:
        return
    u = np.ascontiguousarray(u)
    po = _ffi.from_buffer("int64_t[]", out, require_writable=True)
    status = _lib.fastmlp_shuffle_indices(po, _ffi.from_buffer("double[]", u), u.size)
    if status == _lib.FASTMLP_EVALUE:
        raise _contract.u_range_error(u)
    if status != 0:
        raise_status(status, "fastmlp_shuffle_indices")


def epoch_permutation(out, key):
    """out = reference.epoch_permutation(out, key), in C on the threads.
    # out: int64 (n,) or int32 (n <= 2^31), key: int in [0, 2^64)"""
    key = _contract.epoch_permutation(out, key)
    if out.size:
        i32 = out.dtype == np.int32
        _call("fastmlp_epoch_permutation" + ("_i32" if i32 else ""),
              _ffi.from_buffer("int32_t[]" if i32 else "int64_t[]", out, require_writable=True),
              out.size, key)
