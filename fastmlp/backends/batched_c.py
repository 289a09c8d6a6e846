"""C batched kernels: a thin wrapper over ``fastmlp_batched_train_epoch_*`` (csrc/batched.inc).

The functions are compiled into the C extension ``fastmlp._fastmlp_c`` with the other
sources; their declarations live in their own block at the end of ``csrc/fastmlp.h``
(between the BATCHED marks), which this module reads into an ABI-mode cffi handle on the
already loaded extension (the same library instance, so the C backend's thread setting
applies).  Every argument is checked by the checks the other batched backends run
(``_contract`` and ``batched_reference.check_batched_epoch_args``: same bad input, same
error), then the buffers go to C without copies; the lengths C is given are read from the
shapes those checks fixed.  Model k ends bit for bit where the C backend's ``train_epoch``
would take it alone.
"""

import os
import re

import numpy as np

from ..codes import N_HYPER
from . import _contract
from . import batched_reference as _bref
from . import c as _c

NAME = "c"
N_STATE_MAX = _bref.N_STATE_MAX
n_batches_of = _bref.n_batches_of
_HEADER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "csrc", "fastmlp.h")


def _open():
    """(ffi, lib) for the batched block of the loaded C extension, or raise why not."""
    if not _c.AVAILABLE:
        raise ImportError(_c.UNAVAILABLE_REASON)
    from cffi import FFI
    from .. import _fastmlp_c
    from .._build_ffi import cdef_lines   # the one cdef filter (export marks, #lines)
    with open(_HEADER, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"FASTMLP_BATCHED_CDEF_BEGIN\s*\*/(.*)/\*\s*FASTMLP_BATCHED_CDEF_END",
                  text, re.S)
    if m is None:
        raise ImportError(f"{_HEADER}: the FASTMLP_BATCHED_CDEF marks are missing")
    ffi = FFI()
    ffi.cdef(cdef_lines(m.group(1)))
    lib = ffi.dlopen(_fastmlp_c.__file__)
    getattr(lib, "fastmlp_batched_train_epoch_f64")  # an older build: AttributeError
    return ffi, lib


try:
    _ffi, _lib = _open()
    AVAILABLE, UNAVAILABLE_REASON = True, ""
except Exception as _exc:  # not built, no header beside the package, an older build
    _ffi = _lib = None
    AVAILABLE = False
    UNAVAILABLE_REASON = f"{type(_exc).__name__}: {_exc}"


def set_num_threads(n):
    _c.set_num_threads(n)


def _ptr(ctype, a, writable=False):
    return _ffi.from_buffer(ctype, a, require_writable=writable)


def batched_train_epoch(params, grads, states, batch_losses, done, x, y, sw, perm, n_rows,
                        batch_size, lrs, step0, opts, hypers, sizes, acts, loss, nslices=None):
    """Every mini-batch of one call for every model (contract:
    batched_reference.batched_train_epoch).  nslices is accepted for a uniform signature;
    the C kernel cuts each batch as its single-model train_epoch does (by the batch size
    and the thread setting)."""
    # the checks of batched_numba, in its order: sizes, acts (one code per layer: C reads
    # len(sizes) - 1 of them), loss, then every array; the float arrays' dtypes and layouts
    # (done's too) in _contract.batched_epoch_arrays, which the epoch check calls
    sizes, acts = _contract.net(sizes, acts)
    loss = _contract.code("loss", loss)
    n_rows, batch_size, step0, opts, perm = _bref.batched_ints(n_rows, batch_size, step0,
                                                               opts, perm)
    _bref.check_batched_epoch_args(params, grads, states, batch_losses, done, x, y, sw, perm,
                                   n_rows, batch_size, lrs, step0, opts, hypers, sizes, loss)
    if loss == 1:
        _contract.class_labels(y, int(sizes[-1]))
    if not _c.net_fits_c(sizes):   # beyond C's per-layer tables: what the C train_epoch of
        _bref.batched_train_epoch(  # each model alone runs, the reference (C would refuse)
            params, grads, states, batch_losses, done, x, y, sw, perm, n_rows, batch_size,
            lrs, step0, opts, hypers, sizes, acts, loss)
        return done
    dt = params.dtype
    ct = "float[]" if dt == np.float32 else "double[]"
    x = x[None] if x.ndim == 2 else x   # (1 or K, N, n_0)
    hypers = np.ascontiguousarray(hypers, dtype=np.float64)   # not under the float rule
    K, N = params.shape[0], x.shape[1]
    # the layers each model's single train_epoch would send to BLAS (tuning.blas_layers, by
    # its batch size): one kernel call per choice, so that each ends where it would alone
    from . import tuning
    sz_list = [int(v) for v in sizes]
    by_bs = {int(b): tuning.blas_layers(NAME, sz_list, int(b), dt) for b in set(batch_size)}
    choice = [by_bs[int(b)] for b in batch_size]
    if len(set(choice)) > 1:
        for c in set(choice):
            _per_choice(np.flatnonzero([v == c for v in choice]), params, grads, states,
                        batch_losses, done, x, y, sw, perm, n_rows, batch_size, lrs, step0,
                        opts, hypers, sizes, acts, loss)
        return done
    fn = getattr(_lib, "fastmlp_batched_train_epoch" + ("_f32" if dt == np.float32 else "_f64"))
    _c.sync_threads()   # this call's thread count: it fixes each model's parts, as alone
    with _c.blas_scope(dt, _c.net_products(sz_list, int(batch_size.max(initial=1))),
                        choice[0]):
        status = _call_kernel(fn, ct, done, params, grads, states, batch_losses, x, y, sw,
                              N, perm, n_rows, batch_size, lrs, step0, opts, hypers, K, sizes,
                              acts, loss)
    if status != 0:
        _c.raise_status(status, "fastmlp_batched_train_epoch")
    return done


def _per_choice(idx, params, grads, states, batch_losses, done, x, y, sw, perm, n_rows,
                batch_size, lrs, step0, opts, hypers, sizes, acts, loss):
    """The models idx of the batch in a call of their own (copies, written back)."""
    own = [np.ascontiguousarray(a[idx]) for a in (params, grads, states, batch_losses, done)]
    rows = [a if a.shape[0] == 1 else np.ascontiguousarray(a[idx]) for a in (x, sw, perm)]
    batched_train_epoch(*own, rows[0], y, rows[1], rows[2], n_rows[idx], batch_size[idx],
                        lrs[idx], step0[idx], opts[idx], hypers[idx], sizes, acts, loss)
    for a, b in zip((params, grads, states, batch_losses, done), own):
        a[idx] = b


def _call_kernel(fn, ct, done, params, grads, states, batch_losses, x, y, sw, N, perm, n_rows,
                 batch_size, lrs, step0, opts, hypers, K, sizes, acts, loss):
    return fn(_ptr("int64_t[]", done, True), _ptr(ct, params, True), _ptr(ct, grads, True),
              _ptr(ct, states, True), _ptr("double[]", batch_losses, True),
              batch_losses.shape[1], _ptr(ct, x), x.shape[0], _ptr(ct, y), _ptr(ct, sw),
              sw.shape[0], N, _ptr("int64_t[]", perm), perm.shape[0], perm.shape[1],
              _ptr("int64_t[]", n_rows), _ptr("int64_t[]", batch_size),
              _ptr("double[]", lrs), lrs.shape[1], _ptr("int64_t[]", step0),
              _ptr("int64_t[]", opts), _ptr("double[]", hypers), K,
              _ptr("int64_t[]", sizes), _ptr("int64_t[]", acts), sizes.shape[0] - 1,
              loss)


def batched_forward(out, params, x, sizes, acts):
    """out: (K, B, sizes[-1]): the C single-model forward of every model."""
    sizes, acts = _contract.batched_forward(out, params, x, sizes, acts)
    for k in range(params.shape[0]):
        _c.mlp_forward(out[k], params[k], x, sizes, acts)


batched_loss_grad = _bref.batched_loss_grad
batched_update = _bref.batched_update
assert N_HYPER == 8
