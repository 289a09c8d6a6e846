"""The argument contract every backend enforces, written once.

Each public kernel of ``reference``, ``numba`` and ``c`` calls the check of the same name
here first, so the same bad input raises the same exception type with the same message on
every backend (tests/test_contract.py runs the table).  A check looks at codes, shapes,
counts and values (class labels, steps, learning rates, hyper-parameters, sample indices),
and the dtype and layout of every float array (below, "Dtypes and layout"): the kernels
never convert one, so a float64 x with a float32 model is refused alike by the reference,
Numba and C.  Callers convert once, above the kernels (fastmlp._validate.check_array & co.).

Each check returns the normalised arguments it validated (Python ints, int64 arrays).
"""

import math
import numbers

import numpy as np

from .._validate import check_centered, check_hyper, check_nesterov, counted
from ..codes import (HYPER_NAMES, HYPER_RANGES, N_ACTIVATIONS, N_HYPER, N_LOSSES,
                     N_OPTIMIZERS, N_STATE, OPTIMIZERS)

_COUNTS = {"activation": N_ACTIVATIONS, "loss": N_LOSSES, "optimizer": N_OPTIMIZERS}


# ---------------------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------------------

def code(kind, value):
    """An activation / loss / optimizer code as an int in [0, count)."""
    n = _COUNTS[kind]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or \
            not 0 <= int(value) < n:
        raise ValueError(f"unknown {kind} code {value!r}; expected an integer in [0, {n})")
    return int(value)


def integer(name, value, lo):
    """An integer >= lo (NumPy integers accepted, bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or \
            int(value) < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _finite(name, value):
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        shown = value.item() if isinstance(value, np.generic) else value
        raise ValueError(f"{name} must be a finite number, got {shown!r}")
    return float(value)


def flag(name, value):
    """An optimizer flag (nesterov, maximize, amsgrad, centered) as 0.0 or 1.0: a bool or a
    number equal to 0 or 1.  Any other value (-1, 0.5, 2) is refused rather than read as on,
    since it is a caller's mistake (a hyper vector built by hand, entries shifted)."""
    v = _finite(name, value)
    if v != 0.0 and v != 1.0:
        raise ValueError(f"{name} must be 0 or 1 (a flag), got {v!r}")
    return v


def hyper_values(opt_name, named):
    """Every named hyper-parameter finite and in its range (codes.HYPER_RANGES: lr >= 0,
    betas in [0, 1), eps > 0, ...; flags exactly 0 or 1), SGD's nesterov with momentum
    and no dampening, RMSprop's centered with alpha > 0; returns them as floats in kernel
    order (csrc/core.c fm_hyper_ok refuses the same)."""
    names = HYPER_NAMES[opt_name]
    vals = [check_hyper(k, named[k]) if k in HYPER_RANGES else flag(k, named[k])
            for k in names]
    if opt_name == "sgd":
        check_nesterov(vals[names.index("nesterov")] != 0, named["momentum"],
                       named["dampening"])
    elif opt_name == "rmsprop":
        check_centered(vals[names.index("centered")] != 0, vals[names.index("alpha")])
    return vals


# ---------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------

def shape(name, a, want):
    """np.shape(a) == want (None in want: any length), else ValueError naming the argument."""
    sh = a.shape if isinstance(a, np.ndarray) else np.shape(a)
    ok = len(sh) == len(want)
    if ok:
        for g, e in zip(sh, want):    # a loop, not any(<generator>): ~1 us less a call
            if e is not None and e != g:
                ok = False
                break
    if not ok:
        txt = "(" + ", ".join("n" if e is None else str(e) for e in want) + \
            ("," if len(want) == 1 else "") + ")"
        got = "None" if a is None else sh    # np.shape(None) is (): say what was passed
        raise ValueError(f"{name} must have shape {txt}, got {got}")
    return sh


def int_array(name, a, ndim=None):
    """Integers as a C-contiguous int64 array, of ndim dimensions (None: any): layer sizes,
    activation codes, row orders, the batched kernels' per-model vectors.  Any integer
    dtype is taken; floats are refused, not truncated."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu" or (ndim is not None and arr.ndim != ndim):
        what = "an integer array" if ndim is None else f"a {ndim}-D integer array"
        raise TypeError(f"{name} must be {what}, got {arr.dtype} with shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def net(sizes, acts):
    """sizes (L + 1,) positive widths and acts (L,) activation codes, as int64 arrays.
    (The values are checked as Python lists: a NumPy reduction of a 4-element array costs
    ~2 us, and this runs on every kernel call, before a predict of a few rows.)"""
    sz = int_array("sizes", sizes, 1)
    szl = sz.tolist()
    if len(szl) < 2 or min(szl) < 1:
        raise ValueError(f"sizes must hold at least two positive layer widths, got {szl}")
    ac = int_array("acts", acts, 1)
    acl = ac.tolist()
    if len(acl) != len(szl) - 1:
        raise ValueError(f"acts must hold one activation code per layer ({len(szl) - 1}), "
                         f"got {len(acl)}")
    if min(acl) < 0 or max(acl) >= N_ACTIVATIONS:
        raise ValueError(f"acts must hold activation codes in [0, {N_ACTIVATIONS}), got "
                         f"{acl}")
    return sz, ac


def int_list(sizes):
    """Layer sizes as a list of Python ints (from an array, a list or a tuple): the
    per-layer arithmetic of a call on plain ints, not on NumPy scalars (~100 ns each)."""
    return sizes.tolist() if isinstance(sizes, np.ndarray) else [int(v) for v in sizes]


def n_params(sz):
    s = int_list(sz)
    return sum((a + 1) * b for a, b in zip(s[:-1], s[1:]))


def _targets_dtype(y, sw, dt, of):
    """y and sw (None allowed where the shape check allowed it) read in dtype dt: class
    indices of cross_entropy too are stored in the model dtype."""
    read("y", y, dt, of)
    if sw is not None:
        read("sw", sw, dt, of)


def sample_weights(sw, whole_batch=True):
    """sw (a float array that passed its dtype check, or None: unit weights) holds finite
    weights >= 0 -- a negative weight turned a loss into a gain, a NaN one made the batch's
    loss NaN -- and, with whole_batch (the loss kernels: sw is one batch), sums to a finite
    total > 0, since the loss is the mean weighted by sw: with every weight 0 it is 0 / 0.
    train_epoch checks the values only, once per call (a total that overflows is not its
    concern: every batch's own may be finite): a batch of its own whose weights sum to 0
    stops the epoch as a non-finite loss does (csrc/fastmlp.h).  Two NumPy reductions; the
    element search runs only for an error."""
    if sw is None or not sw.size:
        return
    if whole_batch:
        with np.errstate(over="ignore"):     # an overflowing total is reported below
            total = float(sw.sum())
        ok = sw.min() >= 0 and math.isfinite(total)
    else:   # only the values: each batch's own total is the kernels' to judge
        total, ok = None, sw.min() >= 0 and math.isfinite(sw.max())
    if not ok:
        bad = ~(np.isfinite(sw) & (sw >= 0))
        if bad.any():
            at = np.unravel_index(int(np.argmax(bad)), sw.shape)   # (K, N) when batched
            raise ValueError(f"sw must hold finite sample weights >= 0, got "
                             f"sw[{', '.join(map(str, at))}] = {sw[at].item()!r}")
        raise ValueError(f"sw sums to {total!r} in {sw.dtype}: the loss is a mean weighted "
                         "by sw, so rescale the weights (e.g. divide them by their mean)")
    if whole_batch and not total > 0:
        raise ValueError(f"sw sums to 0 (all {counted(sw.size, 'weight')} 0): the loss is a "
                         "mean weighted by sw, undefined when no row has weight; give some "
                         "row a weight > 0 or leave the batch out")


def class_labels(y, n_classes):
    """cross_entropy targets: column 0 of y holds class indices in [0, n_classes)."""
    col = np.asarray(y)[:, 0]
    bad = ~((col >= 0) & (col < n_classes) & (col == np.floor(col)))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"y must hold class indices in 0..{n_classes - 1} for cross_entropy, "
                         f"got y[{i}] = {float(col[i])!r}")


def targets(y, sw, n, loss, k, unit_ok=False):
    """y (n, 1) class indices for cross_entropy, else (n, k): one target per output (bce
    with k > 1 is multilabel); sw (n,), or None where unit_ok: every row weighs 1."""
    shape("y", y, (n, 1 if loss == 1 else k))
    if sw is not None or not unit_ok:
        shape("sw", sw, (n,))
    if loss == 1:
        class_labels(y, k)


# ---------------------------------------------------------------------------------------
# Dtypes and layout: one rule for every float array a kernel takes.
#
# The model dtype of a call is the dtype of its parameter-like argument (params, w, p; for
# the activations z, for the losses the network output), float32 or float64.  Every other
# float array must have exactly that dtype (learning rates and batch losses: float64) and
# be C-contiguous; arrays the kernel writes must also be writable.  Otherwise: TypeError
# for a dtype (naming the argument, the dtype expected and the one given), ValueError for
# a layout.  Nothing is converted or copied: a kernel that converted would give another
# backend's caller a silent copy per call (and C never could).  Integer arrays (sizes,
# acts, perm) are the integer checks' business (int_array: any integer dtype, as int64).
# These run on every kernel call: a type check, a dtype comparison and a flag per array.
# ---------------------------------------------------------------------------------------

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
F64 = np.dtype(np.float64)


# ndarray subclasses whose values mean more than their buffer: the kernels read the buffer
# only, so a MaskedArray's mask was ignored (its masked entries used as data: refused with
# its own advice below) and so were a matrix's semantics.  Other subclasses (np.memmap,
# ...) are plain buffers and accepted.
_SEMANTIC_SUBCLASSES = (np.matrix,)


def plain_array(name, a):
    """Whether a is an ndarray the kernels may read as its buffer: True for np.ndarray and
    plain subclasses (np.memmap), False for a non-array, TypeError for a MaskedArray or an
    np.matrix.  Only reached off the fast path (``type(a) is np.ndarray``)."""
    if not isinstance(a, np.ndarray):
        return False
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{name} must be a plain NumPy array, got a MaskedArray: the kernels "
                        f"see only its data, never its mask; pass a plain array, e.g. "
                        f"{name}.filled(np.nan) (masked entries as missing values)")
    if isinstance(a, _SEMANTIC_SUBCLASSES):
        raise TypeError(f"{name} must be a plain NumPy array, got {type(a).__name__}; pass "
                        f"np.asarray({name})")
    return True


def model_dtype(name, a):
    """The dtype of the call's parameter-like array a: float32 or float64, else TypeError."""
    if type(a) is np.ndarray or plain_array(name, a):
        dt = a.dtype
        if dt == _FLOATS[0] or dt == _FLOATS[1]:
            return dt
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {dt}")
    raise TypeError(f"{name} must be a NumPy array of dtype float32 or float64, got "
                    f"{type(a).__name__}")


def read(name, a, dt, of):
    """An input the kernel reads: an ndarray of dtype dt, C-contiguous.  ``of`` names the
    argument that fixed dt (None: dt is fixed by the kernel, e.g. float64 learning rates)."""
    if not (type(a) is np.ndarray and a.dtype == dt and a.flags.c_contiguous):
        _refuse(name, a, dt, of, False)


def written(name, a, dt, of):
    """An array the kernel writes: as ``read``, and writable."""
    if not (type(a) is np.ndarray and a.dtype == dt and a.flags.c_contiguous
            and a.flags.writeable):
        _refuse(name, a, dt, of, True)


def _refuse(name, a, dt, of, writes):
    """read's and written's slow path: raise what is wrong with a, or return for a plain
    ndarray subclass (np.memmap) that meets the rule."""
    if not plain_array(name, a):
        raise TypeError(f"{name} must be a NumPy array of dtype {dt}, got {type(a).__name__}")
    if a.dtype != dt:
        why = f" (the dtype of {of})" if of else ""
        raise TypeError(f"{name} must have dtype {dt}{why}, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (np.ascontiguousarray), got strides "
                         f"{a.strides}")
    if writes and not a.flags.writeable:
        raise ValueError(f"{name} is written by the kernel but is read-only")


# ---------------------------------------------------------------------------------------
# Overlap: an array a kernel writes must not share memory with another of its arguments.
# The backends read and write in different orders (NumPy a whole step at a time; Numba and
# C fused, in tiles, on threads), so an output overlapping an input gives each backend a
# different wrong answer, silently (a parameter vector that is a row of the optimizer
# state, a dense layer's dw that is its w, sigmoid_pair's out over its z).  Element-wise
# kernels may run in place: an output that is exactly an input (same start and shape).
# np.may_share_memory compares the arrays' extents (~0.4 us a pair); for the C-contiguous
# arrays checked above, overlapping extents are overlapping memory.
# ---------------------------------------------------------------------------------------

def _same(a, b):
    return a.shape == b.shape and \
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def apart(written, others, in_place=()):
    """ValueError naming the arrays when one in ``written`` ([(name, array)]) overlaps
    another written array or one of ``others``; None and non-arrays are skipped.
    in_place: pairs of names (written, other) allowed to be exactly the same array."""
    for i, (wn, w) in enumerate(written):
        if not isinstance(w, np.ndarray):
            continue
        for on, o in written[i + 1:] + others:
            if isinstance(o, np.ndarray) and np.may_share_memory(w, o) and not (
                    ((wn, on) in in_place or (on, wn) in in_place) and _same(w, o)):
                raise ValueError(
                    f"{wn} must not overlap {on}: the kernel writes {wn}, and the backends "
                    f"read and write their arguments in different orders, so overlapping "
                    f"arrays give each a different wrong answer; pass separate arrays"
                    + (f" (or {wn} exactly {on}, in place)"
                       if (wn, on) in in_place or (on, wn) in in_place else ""))


# ---------------------------------------------------------------------------------------
# Kernels (same names as the kernels)
# ---------------------------------------------------------------------------------------

def activation(out, z, act):
    act = code("activation", act)
    shape("out", out, np.shape(z))
    dt = model_dtype("z", z)
    read("z", z, dt, None)
    written("out", out, dt, "z")
    apart([("out", out)], [("z", z)], in_place={("out", "z")})
    return act


def sigmoid_pair(out, z):
    n = shape("z", z, (None,))[0]
    shape("out", out, (n, 2))
    dt = model_dtype("z", z)
    read("z", z, dt, None)
    written("out", out, dt, "z")
    apart([("out", out)], [("z", z)])


def activation_backward(dz, da, z, act):
    act = code("activation", act)
    shape("da", da, np.shape(z))
    shape("dz", dz, np.shape(z))
    dt = model_dtype("z", z)
    read("z", z, dt, None)
    read("da", da, dt, "z")
    written("dz", dz, dt, "z")
    apart([("dz", dz)], [("da", da), ("z", z)], in_place={("dz", "da"), ("dz", "z")})
    return act


def dense_forward(out, z, x, w, b, act):
    act = code("activation", act)
    B, n_in = shape("x", x, (None, None))
    n_out = shape("w", w, (n_in, None))[1]
    shape("b", b, (n_out,))
    shape("out", out, (B, n_out))
    shape("z", z, (B, n_out))
    dt = model_dtype("w", w)
    read("w", w, dt, None)
    read("x", x, dt, "w")
    read("b", b, dt, "w")
    written("out", out, dt, "w")
    written("z", z, dt, "w")
    apart([("out", out), ("z", z)], [("x", x), ("w", w), ("b", b)], in_place={("out", "z")})
    return act


def dense_backward(dx, dw, db, dout, x, w, z, act):
    act = code("activation", act)
    B, n_in = shape("x", x, (None, None))
    n_out = shape("w", w, (n_in, None))[1]
    shape("dout", dout, (B, n_out))
    shape("z", z, (B, n_out))
    shape("dw", dw, (n_in, n_out))
    shape("db", db, (n_out,))
    if dx is not None:
        shape("dx", dx, (B, n_in))
    dt = model_dtype("w", w)
    read("w", w, dt, None)
    read("x", x, dt, "w")
    read("dout", dout, dt, "w")
    read("z", z, dt, "w")
    written("dw", dw, dt, "w")
    written("db", db, dt, "w")
    if dx is not None:
        written("dx", dx, dt, "w")
    apart([("dx", dx), ("dw", dw), ("db", db)], [("dout", dout), ("x", x), ("w", w), ("z", z)])
    return act


def l2(value):
    """The weights' L2 coefficient as a float: finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {value!r}")
    return float(value)


def loss_grad(dout, out, y, sw, loss):
    loss = code("loss", loss)
    B, k = shape("out", out, (None, None))
    shape("dout", dout, (B, k))
    targets(y, sw, B, loss, k)
    dt = model_dtype("out", out)
    read("out", out, dt, None)
    written("dout", dout, dt, "out")
    _targets_dtype(y, sw, dt, "out")
    sample_weights(sw)
    # not in place: the reference's cross-entropy reads out again for the loss after it
    # wrote dout (the compiled losses gave 0.61 where it gave 1.20)
    apart([("dout", dout)], [("out", out), ("y", y), ("sw", sw)])
    return loss


def update(opt_name, p, g, bufs, step, named):
    """A per-optimizer update: p (n,), g and every needed state buffer (n,), step >= 1, the
    hyper-parameters finite.  bufs: [(name, array, needed)]."""
    (n,) = shape("p", p, (None,))
    shape("g", g, (n,))
    for name, a, needed in bufs:
        if needed and a is None:
            raise ValueError(f"{name}: {opt_name} with these options updates this state "
                             f"buffer; expected an array of shape ({n},), got None")
        if needed or a is not None:
            shape(name, a, (n,))
    dt = model_dtype("p", p)
    written("p", p, dt, None)
    read("g", g, dt, "p")
    for name, a, _ in bufs:
        if a is not None:
            written(name, a, dt, "p")
    # a buffer the update does not use (vmax without amsgrad, ...) is never touched
    apart([("p", p)] + [(name, a) for name, a, needed in bufs if needed], [("g", g)])
    step = integer("step", step, 1)
    hyper_values(opt_name, named)
    return step


def hyper(opt, h):
    """The (N_HYPER,) hyper vector of optimizer code opt: its used entries each in its
    codes.HYPER_RANGES range (hyper_values), nesterov with momentum and no dampening."""
    shape("hyper", h, (N_HYPER,))
    arr = np.asarray(h, dtype=np.float64)
    names = HYPER_NAMES[OPTIMIZERS[opt]]
    hyper_values(OPTIMIZERS[opt], dict(zip(names, arr.tolist())))
    return arr


def state(opt, st, n):
    rows = N_STATE[OPTIMIZERS[opt]]
    sh = np.shape(st)
    # more rows are accepted and left untouched: the batched kernels give every model a
    # (N_STATE_MAX, n) block whatever its optimizer (training/batch.py, batched_reference)
    if len(sh) != 2 or sh[0] < rows or sh[1] != n:
        raise ValueError(f"state must have shape (>= {rows}, {n}) for optimizer "
                         f"{OPTIMIZERS[opt]!r}: at least {counted(rows, 'row')}, one per "
                         f"state buffer (rows past those are left untouched), got {sh}")


def optimizer_update(opt, p, g, st, step, h):
    opt = code("optimizer", opt)
    (n,) = shape("p", p, (None,))
    shape("g", g, (n,))
    state(opt, st, n)
    dt = model_dtype("p", p)
    written("p", p, dt, None)
    read("g", g, dt, "p")
    written("state", st, dt, "p")
    apart([("p", p), ("state", st)], [("g", g), ("hyper", h)])
    step = integer("step", step, 1)
    hyper(opt, h)
    return opt, step


class BoundUpdate:
    """optimizer_update's checks for an optimizer that updates the same ``p`` and ``state``
    every step (the backends' bound_update; fastmlp.optim.Optimizer.step): checked in full
    once, here; ``fast(g, step, hyper)`` is the per-step test, True when the call needs no
    other check.  It looks again at every array's dtype, shape, layout and flags (each can
    be changed in place: ``a.shape = ...``, ``a.dtype = ...``, ``a.__setstate__``, which
    also moves its memory) and at their overlaps, in one function and without the full
    checks' calls; the hyper-parameter values only when their bytes change.  False sends
    the step through the full optimizer_update, which raises what it always raised (or
    runs it: a strided hyper vector is converted there).  Why: with the caches cold, as a
    step on 1e7 parameters leaves them, the full checks took ~130 us of a 2.4 ms update
    (Xeon, 2 threads; fastmlp bench evicts the cache before every timed step).  Nothing is
    cached but this object's references to p and state: never a pointer."""

    def __init__(self, opt, p, st):
        self.opt = code("optimizer", opt)
        (n,) = shape("p", p, (None,))
        state(self.opt, st, n)
        self.dtype = dt = model_dtype("p", p)
        written("p", p, dt, None)
        written("state", st, dt, "p")
        apart([("p", p), ("state", st)], [])
        self.p, self.state, self._hyper_checked = p, st, None
        self._p_shape, self._state_shape = p.shape, st.shape

    def fast(self, g, step, h):
        p, st, dt = self.p, self.state, self.dtype
        pf, sf = p.flags, st.flags
        if not (type(step) is int and step >= 1
                and p.dtype == dt and p.shape == self._p_shape and pf.c_contiguous
                and pf.writeable and st.dtype == dt and st.shape == self._state_shape
                and sf.c_contiguous and sf.writeable
                and type(g) is np.ndarray and g.dtype == dt and g.shape == self._p_shape
                and g.flags.c_contiguous
                and type(h) is np.ndarray and h.dtype == F64 and h.shape == (N_HYPER,)
                and h.flags.c_contiguous and h.flags.writeable
                and not np.may_share_memory(p, st) and not np.may_share_memory(g, p)
                and not np.may_share_memory(g, st) and not np.may_share_memory(h, p)
                and not np.may_share_memory(h, st)):
            return False
        hb = h.tobytes()
        if hb != self._hyper_checked:     # checked again whenever a value changes
            hyper(self.opt, h)
            self._hyper_checked = hb
        return True


def mlp_forward(out, params, x, sizes, acts):
    sz, ac = net(sizes, acts)
    shape("params", params, (n_params(sz),))
    B = shape("x", x, (None, int(sz[0])))[0]
    shape("out", out, (B, int(sz[-1])))
    dt = model_dtype("params", params)
    read("params", params, dt, None)
    read("x", x, dt, "params")
    written("out", out, dt, "params")
    apart([("out", out)], [("params", params), ("x", x)])
    return sz, ac


def mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss):
    sz, ac = net(sizes, acts)
    loss = code("loss", loss)
    shape("params", params, (n_params(sz),))
    shape("grad", grad, (n_params(sz),))
    B = shape("x", x, (None, int(sz[0])))[0]
    targets(y, sw, B, loss, int(sz[-1]))
    dt = model_dtype("params", params)
    read("params", params, dt, None)
    written("grad", grad, dt, "params")
    read("x", x, dt, "params")
    _targets_dtype(y, sw, dt, "params")
    sample_weights(sw)
    apart([("grad", grad)], [("params", params), ("x", x), ("y", y), ("sw", sw)])
    return sz, ac, loss


def perm_rows(pm, N):
    """Every entry of the int64 row order pm indexes one of N rows."""
    if pm.size and (pm.min() < 0 or pm.max() >= N):
        raise ValueError(f"perm must hold row indices of x in [0, {N}), got values in "
                         f"[{int(pm.min())}, {int(pm.max())}]")


def train_epoch(params, grad, st, batch_losses, x, y, sw, perm, batch_size, lrs, step0, opt,
                h, sizes, acts, loss, check_perm=True, keep_int32=False):
    """Returns sz, ac, loss, opt, batch_size, step0, perm (int64; int32 kept with
    keep_int32), n_batches.  check_perm=False leaves the range of perm's entries to the
    caller (the C kernel checks them in one vectorised pass before it trains, and its
    wrapper raises perm_rows' error: two NumPy reductions over a 2M-row order cost 1 % of a
    tiny net's epoch).
    keep_int32: a contiguous int32 perm is returned as it is (the C kernels take it)."""
    sz, ac = net(sizes, acts)
    loss = code("loss", loss)
    opt = code("optimizer", opt)
    np_ = n_params(sz)
    shape("params", params, (np_,))
    shape("grad", grad, (np_,))
    state(opt, st, np_)
    N = shape("x", x, (None, int(sz[0])))[0]
    targets(y, sw, N, loss, int(sz[-1]), unit_ok=True)
    batch_size = integer("batch_size", batch_size, 1)
    step0 = integer("step0", step0, 0)
    dt = model_dtype("params", params)
    written("params", params, dt, None)
    written("grad", grad, dt, "params")
    written("state", st, dt, "params")
    read("x", x, dt, "params")
    _targets_dtype(y, sw, dt, "params")
    sample_weights(sw, whole_batch=False)
    written("batch_losses", batch_losses, F64, None)
    read("lrs", lrs, F64, None)
    pm = perm if keep_int32 and isinstance(perm, np.ndarray) and perm.dtype == np.int32 \
        and perm.ndim == 1 and perm.flags.c_contiguous else int_array("perm", perm, 1)
    n_batches = pm.shape[0] // batch_size + (pm.shape[0] % batch_size != 0)
    apart([("params", params), ("grad", grad), ("state", st), ("batch_losses", batch_losses)],
          [("x", x), ("y", y), ("sw", sw), ("perm", pm), ("lrs", lrs), ("hyper", h)])
    if check_perm:
        perm_rows(pm, N)
    try:
        _epoch_rest(step0, n_batches, lrs, batch_losses, opt, h)
    except (ValueError, TypeError):
        if not check_perm:   # a bad perm is reported first, as the reference does
            perm_rows(pm, N)
        raise
    return sz, ac, loss, opt, batch_size, step0, pm, n_batches


def _epoch_rest(step0, n_batches, lrs, batch_losses, opt, h):
    """train_epoch's checks after the row order's."""
    if step0 > np.iinfo(np.int64).max - n_batches:
        raise ValueError(f"step0 + the {counted(n_batches, 'batch', 'batches')} of this epoch "
                         f"must stay below 2**63, got step0 = {step0}")
    lr = np.asarray(lrs)
    if lr.ndim != 1 or lr.shape[0] < n_batches:
        raise ValueError(f"lrs must be a 1-D array of at least "
                         f"{counted(n_batches, 'learning rate')} "
                         f"(one per batch), got shape {lr.shape}")
    lr = lr[:n_batches]
    if lr.dtype.kind not in "fiu" or not (np.isfinite(lr) & (lr >= 0)).all():
        i = int(np.argmax(~(np.isfinite(lr) & (lr >= 0)))) if lr.dtype.kind in "fiu" else 0
        raise ValueError(f"lrs must hold finite learning rates >= 0, got lrs[{i}] = "
                         f"{lr[i].item()!r}")
    bl = np.shape(batch_losses)
    if len(bl) != 1 or bl[0] < n_batches:
        raise ValueError(f"batch_losses must be a 1-D array of at least "
                         f"{counted(n_batches, 'entry', 'entries')} "
                         f"(one per batch), got shape {bl}")
    hyper(opt, h)


def batched_forward(out, params, x, sizes, acts):
    """The batched forward: params (K, n_params), x (B, sizes[0]), out (K, B, sizes[-1])."""
    sz, ac = net(sizes, acts)
    shape("x", x, (None, int(sz[0])))
    shape("params", params, (None, n_params(sz)))
    shape("out", out, (np.shape(params)[0], np.shape(x)[0], int(sz[-1])))
    dt = model_dtype("params", params)
    read("params", params, dt, None)
    read("x", x, dt, "params")
    written("out", out, dt, "params")
    apart([("out", out)], [("params", params), ("x", x)])
    return sz, ac


_I64 = np.dtype(np.int64)


def batched_epoch_arrays(params, grads, states, batch_losses, done, x, y, sw, lrs):
    """The dtype and layout rule for batched_train_epoch's float arrays (after the shape
    checks of batched_reference.check_batched_epoch_args): everything in params' dtype,
    batch_losses and lrs float64, done int64; hypers is converted (K x 8 values)."""
    dt = model_dtype("params", params)
    written("params", params, dt, None)
    written("grads", grads, dt, "params")
    written("states", states, dt, "params")
    written("batch_losses", batch_losses, F64, None)
    written("done", done, _I64, None)
    read("x", x, dt, "params")
    read("y", y, dt, "params")
    read("sw", sw, dt, "params")
    sample_weights(sw, whole_batch=False)
    read("lrs", lrs, F64, None)
    apart([("params", params), ("grads", grads), ("states", states),
           ("batch_losses", batch_losses), ("done", done)],
          [("x", x), ("y", y), ("sw", sw), ("lrs", lrs)])


# ---------------------------------------------------------------------------------------
# The epoch's row order (integer outputs: not under the float rule above).  The compiled
# shuffle_indices checks u's values itself: its wrappers call shuffle_arrays_ok first and
# the full check only when that fails, then raise u_range_error for the value C reports.
# ---------------------------------------------------------------------------------------

def shuffle_arrays_ok(out, u):
    """Whether u is a 1-D float64 array and out a writable contiguous int64 array of its
    shape (shuffle_indices' array checks, without u's values)."""
    return (isinstance(u, np.ndarray) and u.dtype == np.float64 and u.ndim == 1
            and isinstance(out, np.ndarray) and out.dtype == np.int64 and out.shape == u.shape
            and out.flags.c_contiguous and out.flags.writeable)


def u_range_error(u):
    """The ValueError naming the first u outside [0, 1) (every backend raises this one)."""
    i = int(np.argmax(~((u >= 0) & (u < 1))))
    return ValueError(f"u must hold numbers in [0, 1), got u[{i}] = {float(u[i])!r}")


def shuffle_indices(out, u):
    """u a 1-D float64 array of numbers in [0, 1), out a writable contiguous int64 array of
    its shape; else TypeError (an array) or ValueError (u's values)."""
    if not (isinstance(u, np.ndarray) and u.dtype == np.float64 and u.ndim == 1):
        raise TypeError(f"u must be a 1-D float64 array, got {getattr(u, 'dtype', type(u))} "
                        f"{getattr(u, 'shape', '')}")
    if not shuffle_arrays_ok(out, u):
        raise TypeError(f"out must be a writable contiguous int64 array of shape {u.shape}, "
                        f"got {getattr(out, 'dtype', type(out))} {getattr(out, 'shape', '')}")
    if not ((u >= 0) & (u < 1)).all():
        raise u_range_error(u)


def epoch_permutation(out, key):
    """The key as an int; ``out`` must be a writable contiguous 1-D int64 array, or int32
    (the same permutation in half the bytes) when its entries fit (n <= 2^31)."""
    if not (isinstance(out, np.ndarray) and out.ndim == 1 and out.flags.c_contiguous
            and out.flags.writeable and (out.dtype == np.int64 or (
                out.dtype == np.int32 and out.shape[0] <= 2 ** 31))):
        raise TypeError(f"out must be a writable contiguous 1-D int64 array (or int32 for "
                        f"at most 2**31 rows), got {getattr(out, 'dtype', type(out).__name__)} "
                        f"{getattr(out, 'shape', '')}")
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer)) \
            or not 0 <= int(key) < 2 ** 64:
        raise ValueError(f"key must be an integer in [0, 2**64), got {key!r}")
    return int(key)
