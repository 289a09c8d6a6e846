"""Numba kernels behind ``fastmlp.backends.numba`` (compiled code only; the wrappers that
validate arguments and pick a plan live in numba.py).

Every entry point is a module-level ``@njit(cache=True, error_model="numpy")`` function;
the thread count, the tile height and all widths are run-time arguments, so each entry
point compiles once per dtype (float32 / float64) and never per shape: 8 entry points, 16
specialisations in all (more for the wide-layer kernels at the end).  In the tiled kernels
every matrix product is a BLAS call (``np.dot`` inside njit); the wide-layer kernels call
SciPy's sgemm / dgemm directly (``_nb_blas.gemm``) or hand-written loops, per layer.

Habits kept throughout:
- float32 maths stays float32: every Python constant is cast with the array dtype
  (``p.dtype.type(x)``) or with ``_cast(x, like)``; ints are cast before they meet floats.
- loops index views from 0 (``row = a[s]``; ``for j in range(n)``), so no negative-index
  wrap-around checks are left in the inner loops.
- error_model="numpy": float division by zero gives inf/nan as in NumPy instead of a
  Python ZeroDivisionError check, which kept every loop with a division scalar.
- no fastmath (never 'nnan'/'ninf': the finiteness checks must stay real); the optimizer
  updates repeat the reference's operations in its order, so they match it bit for bit.
"""

import math
import platform

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..codes import (ELU_ALPHA, LEAKY_RELU_SLOPE, OPT_NONE, PERM_BUCKET_ROWS,
                     PERM_MAX_BUCKET_BITS, PERM_PHI)
from ._nb_blas import gemm

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715
_GELU_3K = 3 * _GELU_K


def _cast(v, like):  # pragma: no cover - replaced by the overload in compiled code
    return v


@overload(_cast, inline="always")
def _cast_ov(v, like):
    ty = like.dtype if isinstance(like, types.Array) else like
    if ty == types.float32:
        return lambda v, like: np.float32(v)
    return lambda v, like: np.float64(v)


@intrinsic
def _prefetch(typingctx, arr, i):
    """Prefetch (read, into L2: prefetcht1) the element at flat index i of a C-contiguous
    array.  A hint only: an address outside the array never faults."""
    if not isinstance(arr, types.Array) or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0i8")
        ptr = builder.gep(ary.data, [context.cast(builder, args[1], sig.args[1], types.intp)])
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(2), i32(1)])
        return context.get_dummy_value()
    return types.void(arr, i), codegen


# Subnormals flushed to zero inside the kernels, results (FTZ) and operands (DAZ), as in
# the C backend (csrc/internal.h, FM_FLUSH_BEGIN): on x86 every vector instruction that
# meets a subnormal takes a microcode assist, and a net that separates its data makes
# them (a 5-512-512-1 net's epochs ran 2.7x slower by its eighth epoch).  Each parallel
# loop body sets the mode on its thread with ``csr = _flush_begin()`` and restores the
# thread's own with ``_mode_restore(csr)`` before it leaves, so that Python, and whatever
# else runs on the same OpenMP threads, never runs with the mode set (the serial code
# between the loops runs in the caller's mode).  The optimizer updates are the exception
# (``_ieee_begin`` in _opt_range): under FTZ Adam's exp_avg of a dead unit stops decaying
# near 1e-37 (its step 0.1 x m is subnormal and becomes 0) where torch and the reference
# reach 0, so they keep IEEE arithmetic and the reference's own flush of stored state.
# A no-op off x86.
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_FTZ_DAZ = 0x8040


def _csr_call(builder, name, slot):
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
    builder.call(fn, [builder.bitcast(slot, i8p)])


def _csr_switch(flush):
    """Code that returns the thread's SSE control register after setting (flush) or
    clearing flush-to-zero and denormals-are-zero in it (0, nothing changed, off x86)."""
    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        if not _X86:
            return i32(0)
        slot = cgutils.alloca_once(builder, i32)
        _csr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        new = (builder.or_(old, i32(_FTZ_DAZ)) if flush
               else builder.and_(old, i32(~_FTZ_DAZ & 0xFFFFFFFF)))
        builder.store(new, slot)
        _csr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old
    return codegen


@intrinsic
def _flush_begin(typingctx):
    """Subnormals flushed on this thread; returns the mode to restore."""
    return types.uint32(), _csr_switch(True)


@intrinsic
def _ieee_begin(typingctx):
    """IEEE subnormals on this thread; returns the mode to restore."""
    return types.uint32(), _csr_switch(False)


@intrinsic
def _mode_restore(typingctx, csr):
    """Put back the control register _flush_begin or _ieee_begin returned."""
    if not isinstance(csr, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(context.cast(builder, args[0], sig.args[0], types.uint32), slot)
            _csr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.void(csr), codegen


# ---------------------------------------------------------------------------------------
# exp and expm1 (of x <= 0), log1p (of e in [0, 1]) and tanh that vectorise: the C
# backend's fm_exp_nonpos, fm_expm1_nonpos, fm_log1p_unit and fm_tanh (csrc/activation.inc,
# where the method and its measured accuracy are described), operation for operation and
# without fused multiply-adds, so the two backends give the same bits.  math.tanh /
# math.exp / math.expm1 / math.log1p are a libm call per element that LLVM cannot
# vectorise: a 5-64-64-1 tanh net trained 5x slower than the same net with ReLU.
# ---------------------------------------------------------------------------------------

@intrinsic
def _bits(typingctx, x):
    """The bit pattern of a float: int32 for float32, int64 for float64."""
    if x not in (types.float32, types.float64):
        return None
    it = types.int32 if x == types.float32 else types.int64

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(sig.return_type))
    return it(x), codegen


@intrinsic
def _pow2(typingctx, n, like):
    """2.0 ** n in like's float type, built in the exponent field.  Only n in the normal
    exponent range gives 2 ** n; the callers select another value for every other n."""
    if not isinstance(n, types.Integer) or like not in (types.float32, types.float64):
        return None
    width, mant, bias = (32, 23, 127) if like == types.float32 else (64, 52, 1023)

    def codegen(context, builder, sig, args):
        it = ir.IntType(width)
        v = context.cast(builder, args[0], sig.args[0], types.int64)
        if width == 32:
            v = builder.trunc(v, it)
        v = builder.shl(builder.add(v, it(bias)), it(mant))
        return builder.bitcast(v, context.get_value_type(sig.return_type))
    return like(n, like), codegen


def _exp_parts(x):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError("compiled code only: see _exp_parts_ov")


def _tanh(x):  # pragma: no cover - replaced by the overload in compiled code
    return math.tanh(x)


def _log1p_poly(x):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError("compiled code only: see _log1p_poly_ov")


@overload(_exp_parts)
def _exp_parts_ov(x):
    """x = n ln2 + r: (exp(r) - 1, n, 2^n, x below log of the smallest normal number),
    C's fm_exp_split."""
    if x == types.float32:
        f = np.float32
        lo, magic, log2e = f(-87.33654), f(12582912.0), f(1.4426950408889634)
        hi, lw = f(0.693359375), f(-2.12194440e-4)
        c5, c4, c3 = f(1.9875691500e-4), f(1.3981999507e-3), f(8.3334519073e-3)
        c2, c1, c0 = f(4.1665795894e-2), f(1.6666665459e-1), f(5.0000001201e-1)

        def impl(x):
            t = x * log2e + magic
            n = t - magic
            r = (x - n * hi) - n * lw
            z = r * r
            p = c5 * r + c4
            p = p * r + c3
            p = p * r + c2
            p = p * r + c1
            p = p * r + c0
            return p * z + r, n, _pow2(_bits(t) - _bits(magic), x), x < lo
        return impl
    if x == types.float64:
        f = np.float64
        lo, magic, log2e = f(-708.39), f(6755399441055744.0), f(1.4426950408889634)
        hi, lw = f(6.93145751953125e-1), f(1.42860682030941723212e-6)
        p0, p1, p2 = (f(1.26177193074810590878e-4), f(3.02994407707441961300e-2),
                      f(9.99999999999999999910e-1))
        q0, q1, q2, q3 = (f(3.00198505138664455042e-6), f(2.52448340349684104192e-3),
                          f(2.27265548208155028766e-1), f(2.00000000000000000009e0))
        two = f(2.0)

        def impl(x):
            t = x * log2e + magic
            n = t - magic
            r = (x - n * hi) - n * lw
            xx = r * r
            px = r * ((p0 * xx + p1) * xx + p2)
            q = ((q0 * xx + q1) * xx + q2) * xx + q3
            return two * (px / (q - px)), n, _pow2(_bits(t) - _bits(magic), x), x < lo
        return impl
    return None


@njit(cache=True, error_model="numpy", inline="always")
def _exp_nonpos(x):
    """exp(x) for x <= 0: 0 below log of the smallest normal number, NaN unchanged."""
    em, n, scale, below = _exp_parts(x)
    y = (em + _cast(1.0, x)) * scale
    if below:
        y = _cast(0.0, x)
    if x != x:
        y = x
    return y


@njit(cache=True, error_model="numpy", inline="always")
def _expm1_nonpos(x):
    """exp(x) - 1 for x <= 0, C's fm_expm1_nonpos."""
    one = _cast(1.0, x)
    em, n, scale, below = _exp_parts(x)
    y = (em + one) * scale - one
    if n == 0:
        y = em
    if below:
        y = -one
    if x != x:
        y = x
    return y


@overload(_log1p_poly)
def _log1p_poly_ov(x):
    """log(1 + x) - x + x^2 / 2 for x in [sqrt(1/2) - 1, sqrt(2) - 1] (Cephes log's
    polynomial or rational part), C's fm_log1p_unit."""
    if x == types.float32:
        f = np.float32
        c = [f(v) for v in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                            -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                            2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)]
        c0, c1, c2, c3, c4, c5, c6, c7, c8 = c

        def impl(x):
            y = c0 * x + c1
            y = y * x + c2
            y = y * x + c3
            y = y * x + c4
            y = y * x + c5
            y = y * x + c6
            y = y * x + c7
            y = y * x + c8
            return (y * x) * (x * x)
        return impl
    if x == types.float64:
        f = np.float64
        p0, p1, p2, p3, p4, p5 = (f(1.01875663804580931796e-4), f(4.97494994976747001425e-1),
                                  f(4.70579119878881725854e0), f(1.44989225341610930846e1),
                                  f(1.79368678507819816313e1), f(7.70838733755885391666e0))
        q1, q2, q3, q4, q5 = (f(1.12873587189167450590e1), f(4.52279145837532221105e1),
                              f(8.29875266912776603211e1), f(7.11544750618563894466e1),
                              f(2.31251620126765340583e1))

        def impl(x):
            p = p0 * x + p1
            p = p * x + p2
            p = p * x + p3
            p = p * x + p4
            p = p * x + p5
            q = x + q1
            q = q * x + q2
            q = q * x + q3
            q = q * x + q4
            q = q * x + q5
            return x * (((x * x) * p) / q)
        return impl
    return None


@njit(cache=True, error_model="numpy", inline="always")
def _log1p_unit(e):
    """log(1 + e) for e in [0, 1], C's fm_log1p_unit."""
    one = _cast(1.0, e)
    zero = _cast(0.0, e)
    u = one + e
    d = u - one
    k = one if u > _cast(1.4142135623730951, e) else zero
    x = (u * _cast(0.5, e) if k > zero else u) - one
    y = (_log1p_poly(x) - k * _cast(2.121944400546905827679e-4, e)) - _cast(0.5, e) * (x * x)
    r = (x + y) + k * _cast(0.693359375, e)
    return e if d == zero else r * (e / d)


@njit(cache=True, error_model="numpy", inline="always")
def _softplus(v):
    y = (_cast(0.0, v) if v < _cast(0.0, v) else v) + _log1p_unit(_exp_nonpos(-abs(v)))
    return v if v != v else y


@overload(_tanh)
def _tanh_ov(x):
    if x not in (types.float32, types.float64):
        return None
    f = np.float32 if x == types.float32 else np.float64
    one, m2, small = f(1.0), f(-2.0), f(0.625)
    if x == types.float32:
        k0, k1, k2 = f(-5.70498872745e-3), f(2.06390887954e-2), f(-5.37397155531e-2)
        k3, k4 = f(1.33314422036e-1), f(-3.33332819422e-1)

        def impl(x):
            a = abs(x)
            s = a * a
            p = k0 * s + k1
            p = p * s + k2
            p = p * s + k3
            p = p * s + k4
            e = _exp_nonpos(m2 * a)
            y = a + (p * s) * a if a < small else (one - e) / (one + e)
            y = math.copysign(y, x)
            return x if x != x else y
        return impl
    n0, n1, n2 = (f(-9.64399179425052238628e-1), f(-9.92877231001918586564e1),
                  f(-1.61468768441708447952e3))
    d0, d1, d2 = (f(1.12811678491632931402e2), f(2.23548839060100448583e3),
                  f(4.84406305325125486048e3))

    def impl(x):
        a = abs(x)
        s = a * a
        num = (n0 * s + n1) * s + n2
        den = ((s + d0) * s + d1) * s + d2
        e = _exp_nonpos(m2 * a)
        y = a + (a * s) * (num / den) if a < small else (one - e) / (one + e)
        y = math.copysign(y, x)
        return x if x != x else y
    return impl


@njit(cache=True, error_model="numpy")
def _act_sigmoid(z):
    """The sigmoid activation (C's fm_sigmoid); the loss keeps libm's exp (_sigmoid)."""
    one = _cast(1.0, z)
    e = _exp_nonpos(-abs(z))
    if z >= 0:
        return one / (one + e)
    return e / (one + e)


@njit(cache=True, error_model="numpy", inline="always")
def _elu(z):
    """expm1 of min(z, 0), as the reference"""
    zero = _cast(0.0, z)
    m = zero if z >= zero else z
    return z if z > zero else _cast(ELU_ALPHA, z) * _expm1_nonpos(m)


@njit(cache=True, error_model="numpy", inline="always")
def _delu(z):
    zero = _cast(0.0, z)
    m = zero if z >= zero else z
    return _cast(1.0, z) if z > zero else _cast(ELU_ALPHA, z) * _exp_nonpos(m)


@njit(cache=True, error_model="numpy", inline="always")
def _gelu(z):
    t = _tanh(_cast(_GELU_C, z) * (z + _cast(_GELU_K, z) * z * z * z))
    return _cast(0.5, z) * z * (_cast(1.0, z) + t)


@njit(cache=True, error_model="numpy")
def _dtanh(z):
    th = _tanh(z)
    return _cast(1.0, z) - th * th


@njit(cache=True, error_model="numpy")
def _dsigmoid(z):
    s = _act_sigmoid(z)
    return s * (_cast(1.0, z) - s)


@njit(cache=True, error_model="numpy", inline="always")
def _dgelu(z):
    one = _cast(1.0, z)
    c = _cast(_GELU_C, z)
    u = c * (z + _cast(_GELU_K, z) * z * z * z)
    th = _tanh(u)
    du = c * (one + _cast(_GELU_3K, z) * z * z)
    half = _cast(0.5, z)
    return half * (one + th) + half * z * (one - th * th) * du


# ---------------------------------------------------------------------------------------
# Scalar activations (used by the elementwise kernels; the row loops below repeat the
# simple ones inline so that they vectorise).
# ---------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _sigmoid(z):
    one = _cast(1.0, z)
    e = math.exp(-abs(z))
    if z >= 0:
        return one / (one + e)
    return e / (one + e)


@njit(cache=True, error_model="numpy")
def _act(z, act):
    zero = _cast(0.0, z)
    if act == 0:
        return z
    if act == 1:  # np.maximum semantics: NaN propagates
        return zero if z <= zero else z
    if act == 2:
        return z if z > zero else z * _cast(LEAKY_RELU_SLOPE, z)
    if act == 3:
        return _elu(z)
    if act == 4:
        return _tanh(z)
    if act == 5:
        return _act_sigmoid(z)
    if act == 6:
        return _softplus(z)
    return _gelu(z)  # 7: gelu (tanh form)


@njit(cache=True, error_model="numpy")
def _dact(z, act):
    zero = _cast(0.0, z)
    one = _cast(1.0, z)
    if act == 0:
        return one
    if act == 1:
        return one if z > zero else zero
    if act == 2:
        return one if z > zero else _cast(LEAKY_RELU_SLOPE, z)
    if act == 3:
        return _delu(z)
    if act == 4:
        return _dtanh(z)
    if act == 5:
        return _dsigmoid(z)
    if act == 6:
        return _act_sigmoid(z)
    return _dgelu(z)


@njit(cache=True, error_model="numpy")
def _act_row(out, z, act):
    """out[j] = f(z[j]) for one row; relu / identity as plain loops (vectorised)."""
    n = z.shape[0]
    if act == 1:
        zero = _cast(0.0, z)
        for j in range(n):
            v = z[j]
            out[j] = zero if v <= zero else v
    elif act == 0:
        for j in range(n):
            out[j] = z[j]
    elif act == 3:  # the smooth ones a loop each, so that LLVM vectorises them
        for j in range(n):
            out[j] = _elu(z[j])
    elif act == 4:
        for j in range(n):
            out[j] = _tanh(z[j])
    elif act == 5:
        for j in range(n):
            out[j] = _act_sigmoid(z[j])
    elif act == 6:
        for j in range(n):
            out[j] = _softplus(z[j])
    elif act == 7:
        for j in range(n):
            out[j] = _gelu(z[j])
    else:
        for j in range(n):
            out[j] = _act(z[j], act)


@njit(cache=True, error_model="numpy", inline="always")
def _relu_grad(da, z, zero, one, tiny):
    """da * relu'(z) as C computes it under DAZ: a subnormal da gives a zero of its sign.
    LLVM may rewrite da * 1.0 as da (exact in IEEE arithmetic, which it assumes), and then
    keeps a subnormal da that the multiply under DAZ would flush: on a Zen 4 (AVX-512) the
    vector body of the loop did so and its scalar tail did not, so Numba disagreed with C and
    with itself (tests/test_activation_math.py).  The explicit select makes the result the
    same whatever the code generator does."""
    v = da * (one if z > zero else zero)
    return v * zero if abs(v) < tiny else v


@njit(cache=True, error_model="numpy")
def _dact_row(d, z, act):
    """d[j] = d[j] * f'(z[j]) in place (d holds dL/da on entry, dL/dz on exit)."""
    n = z.shape[0]
    if act == 1:
        zero = _cast(0.0, z)
        one = _cast(1.0, z)
        tiny = _cast(np.finfo(z.dtype).tiny, z)
        for j in range(n):
            d[j] = _relu_grad(d[j], z[j], zero, one, tiny)
    elif act == 0:
        pass
    elif act == 3:  # the smooth ones a loop each, so that LLVM vectorises them
        for j in range(n):
            d[j] = d[j] * _delu(z[j])
    elif act == 4:
        for j in range(n):
            d[j] = d[j] * _dtanh(z[j])
    elif act == 5:
        for j in range(n):
            d[j] = d[j] * _dsigmoid(z[j])
    elif act == 6:
        for j in range(n):
            d[j] = d[j] * _act_sigmoid(z[j])
    elif act == 7:
        for j in range(n):
            d[j] = d[j] * _dgelu(z[j])
    else:
        for j in range(n):
            d[j] = d[j] * _dact(z[j], act)


@njit(cache=True, error_model="numpy")
def _dact_into(dz, da, z, act):
    """dz[j] = da[j] * f'(z[j]), _dact_row's arithmetic in one pass (a copy of da followed
    by _dact_row in place took 1.4 ms per 1M float32 on one thread of a Zen 3 VM, this 0.4).
    Two loops, not one: called in place (dz is da), LLVM's overlap check sends this loop to
    its scalar version, 0.76 ms per 1M against _dact_row's 0.15."""
    n = z.shape[0]
    if act == 1:
        zero = _cast(0.0, z)
        one = _cast(1.0, z)
        tiny = _cast(np.finfo(z.dtype).tiny, z)
        for j in range(n):
            dz[j] = _relu_grad(da[j], z[j], zero, one, tiny)
    elif act == 0:
        for j in range(n):
            dz[j] = da[j]
    elif act == 3:
        for j in range(n):
            dz[j] = da[j] * _delu(z[j])
    elif act == 4:
        for j in range(n):
            dz[j] = da[j] * _dtanh(z[j])
    elif act == 5:
        for j in range(n):
            dz[j] = da[j] * _dsigmoid(z[j])
    elif act == 6:
        for j in range(n):
            dz[j] = da[j] * _act_sigmoid(z[j])
    elif act == 7:
        for j in range(n):
            dz[j] = da[j] * _dgelu(z[j])
    else:
        for j in range(n):
            dz[j] = da[j] * _dact(z[j], act)


# ---------------------------------------------------------------------------------------
# Elementwise activation kernels (flat views).
# ---------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy", parallel=True)
def act_forward(out, z, act, nth):
    # out, z: (n,)
    n = z.shape[0]
    per = (n + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        lo = t * per
        hi = min(lo + per, n)
        if lo < hi:
            _act_row(out[lo:hi], z[lo:hi], act)
        _mode_restore(csr)


@njit(cache=True, error_model="numpy")
def _sigmoid_pair_range(out, z, lo, hi):
    """C's sigmoid_pair_range (activation.inc), operation for operation: e = exp(-|z|), the
    quotients e/(1+e) and 1/(1+e), z >= 0 choosing which goes in which column.  Each block
    is computed into two contiguous columns first and then interleaved into out (flat,
    2n): written straight into out, the loop stayed scalar (10 ms per 1.67M float32 on the
    Zen 3 VM, 2 threads, against C's 1.3 ms)."""
    one = _cast(1.0, z)
    zero = _cast(0.0, z)
    p0 = np.empty(_PAIR_BLOCK, z.dtype)
    p1 = np.empty(_PAIR_BLOCK, z.dtype)
    for b in range(lo, hi, _PAIR_BLOCK):
        m = min(_PAIR_BLOCK, hi - b)
        for k in range(m):
            v = z[b + k]
            e = _exp_nonpos(-abs(v))
            d = one + e
            qe = e / d
            q1 = one / d
            pos = v >= zero
            p0[k] = qe if pos else q1
            p1[k] = q1 if pos else qe
        for k in range(m):
            out[2 * (b + k)] = p0[k]
            out[2 * (b + k) + 1] = p1[k]


_PAIR_BLOCK = 1024


@njit(cache=True, error_model="numpy", parallel=True)
def sigmoid_pair(out, z, nth):
    # out: (n, 2), z: (n,) -- no flush mode, as C: only an input can be subnormal
    n = z.shape[0]
    per = (n + nth - 1) // nth
    for t in prange(nth):
        lo = t * per
        hi = min(lo + per, n)
        if lo < hi:
            _sigmoid_pair_range(out.reshape(-1), z, lo, hi)


@njit(cache=True, error_model="numpy", parallel=True)
def act_backward(dz, da, z, act, nth):
    # dz, da, z: (n,)
    n = z.shape[0]
    per = (n + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        lo = t * per
        hi = min(lo + per, n)
        if lo < hi:
            _dact_into(dz[lo:hi], da[lo:hi], z[lo:hi], act)
        _mode_restore(csr)


# ---------------------------------------------------------------------------------------
# Row-block layer kernels shared by the dense kernels and the fused training step.
# ---------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _bias_act_rows(a_out, z, b, act):
    """z[s] += b; a_out[s, :n] = f(z[s]) row by row (a_out may be wider than z: the extra
    column of an augmented activation tile is left alone)."""
    nt = z.shape[0]
    n = z.shape[1]
    zero = _cast(0.0, z)
    for s in range(nt):
        zr = z[s]
        ar = a_out[s]
        if act == 1:
            for j in range(n):
                v = zr[j] + b[j]
                zr[j] = v
                ar[j] = zero if v <= zero else v
        elif act == 0:
            for j in range(n):
                v = zr[j] + b[j]
                zr[j] = v
                ar[j] = v
        elif act == 3:  # the smooth ones a loop each, so that LLVM vectorises them
            for j in range(n):
                v = zr[j] + b[j]
                zr[j] = v
                ar[j] = _elu(v)
        elif act == 4:
            for j in range(n):
                v = zr[j] + b[j]
                zr[j] = v
                ar[j] = _tanh(v)
        elif act == 5:
            for j in range(n):
                v = zr[j] + b[j]
                zr[j] = v
                ar[j] = _act_sigmoid(v)
        elif act == 6:
            for j in range(n):
                v = zr[j] + b[j]
                zr[j] = v
                ar[j] = _softplus(v)
        elif act == 7:
            for j in range(n):
                v = zr[j] + b[j]
                zr[j] = v
                ar[j] = _gelu(v)
        else:
            for j in range(n):
                v = zr[j] + b[j]
                zr[j] = v
                ar[j] = _act(v, act)


@njit(cache=True, error_model="numpy")
def _act_rows(a_out, z, act):
    """a_out[s, :n] = f(z[s]) row by row."""
    for s in range(z.shape[0]):
        _act_row(a_out[s], z[s], act)


@njit(cache=True, error_model="numpy")
def _dact_flat(d, z, act):
    """d = d * f'(z) over a whole contiguous block (d, z: same shape)."""
    _dact_row(d.reshape(-1), z.reshape(-1), act)


@njit(cache=True, error_model="numpy")
def _colsum(gb, d):
    """gb = sum over the rows of d, in row order."""
    n = d.shape[1]
    for j in range(n):
        gb[j] = d[0, j]
    for s in range(1, d.shape[0]):
        dr = d[s]
        for j in range(n):
            gb[j] += dr[j]


@njit(cache=True, error_model="numpy")
def _fwd_rows(a_out, z, x, w, b, act):
    """z = x @ w + b; a_out = f(z).   # x: (T, n_in), w: (n_in, n_out), z, a_out: (T, n_out)"""
    np.dot(x, w, z)
    _bias_act_rows(a_out, z, b, act)


@njit(cache=True, error_model="numpy", parallel=True)
def dense_forward(out, z, x, w, b, act, nth):
    # out, z: (B, n_out); x: (B, n_in); w: (n_in, n_out); b: (n_out,).  BLAS per row slice.
    n = x.shape[0]
    per = (n + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        lo = t * per
        hi = min(lo + per, n)
        if lo < hi:
            _fwd_rows(out[lo:hi], z[lo:hi], x[lo:hi], w, b, act)
        _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def dense_backward(dx, dw, db, dout, x, w, z, act, nth, want_dx):
    # dx: (B, n_in) (ignored unless want_dx); dw: (n_in, n_out); db: (n_out,);
    # dout, z: (B, n_out); x: (B, n_in).  Per-thread partial dw/db, reduced in thread order.
    n = x.shape[0]
    n_in = w.shape[0]
    n_out = w.shape[1]
    per = (n + nth - 1) // nth
    d = np.empty_like(dout)
    pw = np.zeros((nth, n_in, n_out), dtype=w.dtype)
    pb = np.zeros((nth, n_out), dtype=w.dtype)
    for t in prange(nth):
        csr = _flush_begin()
        lo = t * per
        hi = min(lo + per, n)
        if lo < hi:
            dt_ = d[lo:hi]
            src = dout[lo:hi]
            for i in range(hi - lo):
                dr = dt_[i]
                sr = src[i]
                for j in range(n_out):
                    dr[j] = sr[j]
            _dact_flat(dt_, z[lo:hi], act)
            _colsum(pb[t], dt_)
            np.dot(x[lo:hi].T, dt_, pw[t])
            if want_dx:
                np.dot(dt_, w.T, dx[lo:hi])
        _mode_restore(csr)
    for k in prange(n_in):
        csr = _flush_begin()
        r = dw[k]
        for j in range(n_out):
            r[j] = pw[0, k, j]
        for t in range(1, nth):
            q = pw[t, k]
            for j in range(n_out):
                r[j] += q[j]
        _mode_restore(csr)
    for j in range(n_out):
        db[j] = pb[0, j]
    for t in range(1, nth):
        for j in range(n_out):
            db[j] += pb[t, j]


# ---------------------------------------------------------------------------------------
# Losses: rows r of (out, y, sw); writes the gradient rows, returns sum_i sw_i l_i (float64).
# ---------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _flush(v, tiny, zero):
    """zero if |v| < tiny (the dtype's smallest normal number) else v, as a select: every loss
    gradient and optimizer state value is stored this way (reference._flush says why)."""
    return zero if abs(v) < tiny else v


@njit(cache=True, error_model="numpy")
def _loss_row(drow, orow, yrow, swv, wsum, loss):
    one = _cast(1.0, orow)
    zero = _cast(0.0, orow)
    k = orow.shape[0]
    if loss == 0:  # bce, one per output (several outputs: multilabel, summed)
        l = zero
        for c in range(k):
            zv = orow[c]
            tv = yrow[c]
            mz = zero if zv <= zero else zv
            l += mz - zv * tv + math.log1p(math.exp(-abs(zv)))
            drow[c] = swv * (_sigmoid(zv) - tv) / wsum
    elif loss == 1:  # softmax cross-entropy
        m = orow[0]
        for c in range(1, k):
            if orow[c] > m:
                m = orow[c]
        ssum = zero
        for c in range(k):
            e = math.exp(orow[c] - m)
            drow[c] = e
            ssum += e
        cls = int(yrow[0])
        l = (m + math.log(ssum)) - orow[cls]
        scale = swv / wsum
        for c in range(k):
            p = drow[c] / ssum
            if c == cls:
                p -= one
            drow[c] = p * scale
    else:  # mse
        kf = _cast(k, orow)
        acc = zero
        scale = _cast(2.0, orow) * swv / (kf * wsum)
        for c in range(k):
            r = orow[c] - yrow[c]
            acc += r * r
            drow[c] = r * scale
        l = acc / kf
    tiny = _cast(np.finfo(orow.dtype).tiny, orow)
    for c in range(k):   # subnormal gradients flushed to 0 (reference.py says why)
        drow[c] = _flush(drow[c], tiny, zero)
    return np.float64(swv) * np.float64(l)


@njit(cache=True, error_model="numpy")
def loss_grad(dout, out, y, sw, loss):
    # dout, out: (B, k); y: (B, k'); sw: (B,).  Serial: O(B k), fixed order.
    n = out.shape[0]
    wsum = _cast(0.0, sw)
    for i in range(n):
        wsum += sw[i]
    acc = 0.0
    for i in range(n):
        acc += _loss_row(dout[i], out[i], y[i], sw[i], wsum, loss)
    return acc / np.float64(wsum)


# ---------------------------------------------------------------------------------------
# Optimizer updates on p[lo:hi]: the reference's operations in the reference's order.
# hyper layout: fastmlp.codes.  s0, s1, s2: the optimizer's state rows (unused ones may be
# any array of the right dtype; they are not touched).
#
# Every loop below does the same loads and stores on every element: an option that only
# changes values (maximize, weight decay, nesterov, decoupled) is a select on a value that
# is always computed, and an option that changes which arrays are read or written
# (momentum, the first sgd step, centered, amsgrad) picks a separate loop.  A condition
# around a load or store inside a loop is if-converted by LLVM into AVX-512 masked vector
# loads and stores; the row an option leaves alone is then still addressed with an all-zero
# mask, and a state row never written is np.zeros' untouched (not yet mapped) memory, where
# every masked access takes a microcode assist (Zen 4 measured: ~35 ns per element; sgd
# without momentum, rmsprop and adamw took 100-650 ms per step at 1e7 float32 parameters,
# 9 ms even with the pages touched, against 2.5-5 ms now).  Keep it that way: no `if`
# around an array access in these loops.
# ---------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _grad_in(gv, pv, maximize, use_wd, wd_t):
    """d = -g if maximize else g;  d + wd p if weight decay (coupled), as selects."""
    d = -gv if maximize else gv
    dw = d + wd_t * pv
    return dw if use_wd else d


@njit(cache=True, error_model="numpy")
def _sgd_range(p, g, buf, step, h):
    n = p.shape[0]
    T = p.dtype.type
    mom = h[1]
    use_wd = h[3] != 0
    nesterov = h[4] != 0
    maximize = h[5] != 0
    lr_t = T(h[0])
    mom_t = T(mom)
    damp1 = T(1.0 - h[2])
    wd_t = T(h[3])
    tiny, zero = T(np.finfo(p.dtype).tiny), T(0.0)
    if mom == 0:  # buf untouched
        for i in range(n):
            pv = p[i]
            d = _grad_in(g[i], pv, maximize, use_wd, wd_t)
            p[i] = pv - lr_t * d
    elif step == 1:  # buf <- d (not read)
        for i in range(n):
            pv = p[i]
            d = _grad_in(g[i], pv, maximize, use_wd, wd_t)
            bv = _flush(d, tiny, zero)
            buf[i] = bv
            dn = d + mom_t * bv
            d = dn if nesterov else bv
            p[i] = pv - lr_t * d
    else:
        for i in range(n):
            pv = p[i]
            d = _grad_in(g[i], pv, maximize, use_wd, wd_t)
            bv = buf[i] * mom_t
            bv = bv + damp1 * d
            bv = _flush(bv, tiny, zero)
            buf[i] = bv
            dn = d + mom_t * bv
            d = dn if nesterov else bv
            p[i] = pv - lr_t * d


@njit(cache=True, error_model="numpy")
def _adagrad_range(p, g, ssum, step, h):
    n = p.shape[0]
    T = p.dtype.type
    use_wd = h[2] != 0
    maximize = h[4] != 0
    clr = T(h[0] / (1.0 + np.float64(step - 1) * h[1]))
    wd_t = T(h[2])
    eps = T(h[3])
    tiny, zero = T(np.finfo(p.dtype).tiny), T(0.0)
    for i in range(n):
        pv = p[i]
        d = _grad_in(g[i], pv, maximize, use_wd, wd_t)
        sv = ssum[i] + d * d
        sv = _flush(sv, tiny, zero)
        ssum[i] = sv
        p[i] = pv - clr * d / (math.sqrt(sv) + eps)


@njit(cache=True, error_model="numpy")
def _rmsprop_range(p, g, sq_avg, g_avg, buf, step, h):
    # square_avg always; grad_avg only if centered; momentum_buffer only if momentum > 0
    n = p.shape[0]
    T = p.dtype.type
    alpha_t = T(h[1])
    oma = T(1.0 - h[1])
    eps = T(h[2])
    use_wd = h[3] != 0
    wd_t = T(h[3])
    mom = h[4]
    mom_t = T(mom)
    centered = h[5] != 0
    maximize = h[6] != 0
    lr_t = T(h[0])
    tiny, zero = T(np.finfo(p.dtype).tiny), T(0.0)
    if centered and mom > 0:
        for i in range(n):
            pv = p[i]
            d = _grad_in(g[i], pv, maximize, use_wd, wd_t)
            sq = sq_avg[i] * alpha_t
            sq = sq + oma * d * d
            sq = _flush(sq, tiny, zero)
            sq_avg[i] = sq
            ga = g_avg[i]
            ga = ga + oma * (d - ga)
            ga = _flush(ga, tiny, zero)
            g_avg[i] = ga
            den = math.sqrt(sq - ga * ga) + eps
            bv = buf[i] * mom_t
            bv = bv + d / den
            bv = _flush(bv, tiny, zero)
            buf[i] = bv
            p[i] = pv - lr_t * bv
    elif centered:
        for i in range(n):
            pv = p[i]
            d = _grad_in(g[i], pv, maximize, use_wd, wd_t)
            sq = sq_avg[i] * alpha_t
            sq = sq + oma * d * d
            sq = _flush(sq, tiny, zero)
            sq_avg[i] = sq
            ga = g_avg[i]
            ga = ga + oma * (d - ga)
            ga = _flush(ga, tiny, zero)
            g_avg[i] = ga
            den = math.sqrt(sq - ga * ga) + eps
            p[i] = pv - lr_t * d / den
    elif mom > 0:
        for i in range(n):
            pv = p[i]
            d = _grad_in(g[i], pv, maximize, use_wd, wd_t)
            sq = sq_avg[i] * alpha_t
            sq = sq + oma * d * d
            sq = _flush(sq, tiny, zero)
            sq_avg[i] = sq
            den = math.sqrt(sq) + eps
            bv = buf[i] * mom_t
            bv = bv + d / den
            bv = _flush(bv, tiny, zero)
            buf[i] = bv
            p[i] = pv - lr_t * bv
    else:
        for i in range(n):
            pv = p[i]
            d = _grad_in(g[i], pv, maximize, use_wd, wd_t)
            sq = sq_avg[i] * alpha_t
            sq = sq + oma * d * d
            sq = _flush(sq, tiny, zero)
            sq_avg[i] = sq
            den = math.sqrt(sq) + eps
            p[i] = pv - lr_t * d / den


@njit(cache=True, error_model="numpy")
def _adam_range(p, g, m_, v_, vmax, step, h, decoupled):
    # exp_avg, exp_avg_sq always; max_exp_avg_sq only with amsgrad
    n = p.shape[0]
    T = p.dtype.type
    lr = h[0]
    beta1 = h[1]
    beta2 = h[2]
    wd = h[4]
    amsgrad = h[5] != 0
    maximize = h[6] != 0
    b1c = T(1.0 - beta1)
    b2_t = T(beta2)
    b2c = T(1.0 - beta2)
    eps = T(h[3])
    fstep = np.float64(step)
    ss = T(lr / (1.0 - beta1 ** fstep))
    # one division per element instead of two: sqrt(v) / bc2 == sqrt(v) * (1 / bc2) up to
    # one rounding (the conformance tolerance covers it)
    inv_bc2 = T(1.0 / math.sqrt(1.0 - beta2 ** fstep))
    wd_t = T(wd)
    dec = T(1.0 - lr * wd)
    coupled = wd != 0 and not decoupled    # Adam: d <- d + wd p
    shrink = wd != 0 and decoupled         # AdamW: p <- p (1 - lr wd)
    tiny, zero = T(np.finfo(p.dtype).tiny), T(0.0)
    if amsgrad:
        for i in range(n):
            p0 = p[i]
            d = _grad_in(g[i], p0, maximize, coupled, wd_t)
            pd = p0 * dec
            pv = pd if shrink else p0
            m = m_[i]
            m = m + b1c * (d - m)
            m = _flush(m, tiny, zero)
            m_[i] = m
            v = v_[i] * b2_t
            v = v + b2c * d * d
            v = _flush(v, tiny, zero)
            v_[i] = v
            vm = vmax[i]
            if v > vm or v != v:  # np.maximum: NaN from either side
                vm = v
            vmax[i] = vm
            p[i] = pv - ss * m / (math.sqrt(vm) * inv_bc2 + eps)
    else:
        for i in range(n):
            p0 = p[i]
            d = _grad_in(g[i], p0, maximize, coupled, wd_t)
            pd = p0 * dec
            pv = pd if shrink else p0
            m = m_[i]
            m = m + b1c * (d - m)
            m = _flush(m, tiny, zero)
            m_[i] = m
            v = v_[i] * b2_t
            v = v + b2c * d * d
            v = _flush(v, tiny, zero)
            v_[i] = v
            p[i] = pv - ss * m / (math.sqrt(v) * inv_bc2 + eps)


@njit(cache=True, error_model="numpy")
def _opt_range(opt, p_, g_, s0_, s1_, s2_, lo, hi, step, h):
    # IEEE arithmetic, as the reference, also inside the flushed training loops (the
    # comment above _flush_begin says why)
    csr = _ieee_begin()
    # views indexed from 0: no negative-index wrap-around checks, so the loops vectorise
    p = p_[lo:hi]
    g = g_[lo:hi]
    s0 = s0_[lo:hi]
    s1 = s1_[lo:hi]
    s2 = s2_[lo:hi]
    if opt == 0:  # sgd: buf = s0
        _sgd_range(p, g, s0, step, h)
    elif opt == 1:  # adagrad: sum = s0
        _adagrad_range(p, g, s0, step, h)
    elif opt == 2:  # rmsprop: square_avg, grad_avg, momentum_buffer = s0, s1, s2
        _rmsprop_range(p, g, s0, s1, s2, step, h)
    else:  # adam (3) / adamw (4): exp_avg, exp_avg_sq, max_exp_avg_sq = s0, s1, s2
        _adam_range(p, g, s0, s1, s2, step, h, opt == 4)
    _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def opt_update(opt, p, g, s0, s1, s2, step, h, nth):
    # p, g, s0, s1, s2: (n,); one fused pass, each thread a contiguous chunk, in place
    n = p.shape[0]
    per = (n + nth - 1) // nth
    for t in prange(nth):
        lo = t * per
        hi = min(lo + per, n)
        if lo < hi:
            _opt_range(opt, p, g, s0, s1, s2, lo, hi, step, h)


# ---------------------------------------------------------------------------------------
# Whole network on a tile of samples.  The flat layout puts b_l right after W_l, so
# params[wo_l : wo_l + (n_l + 1) n_{l+1}] is the augmented matrix [W_l; b_l]: with a column
# of ones after each activation tile, ONE BLAS call gives z = a W + b, and in the backward
# pass ONE call gives [dW; db] = [a, 1]^T dz.  Per-thread workspace ws (1-D) holds, at
# offsets from _ws_layout: A_0..A_L (T x (n_l + 1), last column ones), Z_0..Z_{L-1}
# (T x n_{l+1}) and two T x max_width gradient buffers.
# ---------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _ws_layout(sizes, tile):
    L = sizes.shape[0] - 1
    offa = np.empty(L + 1, dtype=np.int64)
    offz = np.empty(L, dtype=np.int64)
    o = 0
    maxw = 0
    for l in range(L + 1):
        offa[l] = o
        o += tile * (sizes[l] + 1)
        if sizes[l] > maxw:
            maxw = sizes[l]
    for l in range(L):
        offz[l] = o
        o += tile * sizes[l + 1]
    offd0 = o
    o += tile * maxw
    offd1 = o
    o += tile * maxw
    return offa, offz, offd0, offd1, o


@njit(cache=True, error_model="numpy")
def _ws_init(ws, sizes, offa, tile):
    """Fill the ones columns of the augmented activation tiles (never overwritten)."""
    one = _cast(1.0, ws)
    for l in range(sizes.shape[0]):
        n = sizes[l]
        a = ws[offa[l]:offa[l] + tile * (n + 1)].reshape((tile, n + 1))
        for s in range(tile):
            a[s, n] = one


@njit(cache=True, error_model="numpy")
def _poffsets(sizes):
    L = sizes.shape[0] - 1
    wo = np.empty(L, dtype=np.int64)
    o = 0
    for l in range(L):
        wo[l] = o
        o += (sizes[l] + 1) * sizes[l + 1]
    return wo


@njit(cache=True, error_model="numpy")
def _tile_forward(ws, params, sizes, acts, offa, offz, wo, nt):
    L = sizes.shape[0] - 1
    for l in range(L):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        a = ws[offa[l]:offa[l] + nt * (n_in + 1)].reshape((nt, n_in + 1))
        z = ws[offz[l]:offz[l] + nt * n_out].reshape((nt, n_out))
        an = ws[offa[l + 1]:offa[l + 1] + nt * (n_out + 1)].reshape((nt, n_out + 1))
        wb = params[wo[l]:wo[l] + (n_in + 1) * n_out].reshape((n_in + 1, n_out))
        np.dot(a, wb, z)
        _act_rows(an, z, acts[l])


@njit(cache=True, error_model="numpy")
def _gather(a0, x, perm, r, nt, n0):
    for s in range(nt):
        xr = x[perm[r + s]]
        ar = a0[s]
        for k in range(n0):
            ar[k] = xr[k]


@njit(cache=True, error_model="numpy")
def _tile_loss(d, outa, y, sw, perm, r, nt, wsum, loss):
    """Loss rows of a tile: d (nt, k) = dL/dout; returns sum sw_i l_i (float64)."""
    acc = 0.0
    if loss == 0 and d.shape[1] == 1:  # bce, one output: a plain loop
        one = _cast(1.0, d)
        zero = _cast(0.0, d)
        tiny = _cast(np.finfo(d.dtype).tiny, d)
        for s in range(nt):
            i = perm[r + s]
            zv = outa[s, 0]
            tv = y[i, 0]
            swv = sw[i]
            e = math.exp(-abs(zv))
            mz = zero if zv <= zero else zv
            l = mz - zv * tv + math.log1p(e)
            sg = one / (one + e) if zv >= zero else e / (one + e)
            d[s, 0] = _flush(swv * (sg - tv) / wsum, tiny, zero)
            acc += np.float64(swv) * np.float64(l)
        return acc
    for s in range(nt):
        i = perm[r + s]
        acc += _loss_row(d[s], outa[s, :d.shape[1]], y[i], sw[i], wsum, loss)
    return acc


@njit(cache=True, error_model="numpy")
def _prefetch_rows(x, y, sw, perm, r, nt):
    """Start the cache misses of rows perm[r:r + nt] of x, y and sw (the next tile): with
    shuffled rows of a catalog larger than the cache every gathered row is a miss, and
    started one tile ahead they overlap the arithmetic instead of stalling the gather."""
    n0 = x.shape[1]
    k = y.shape[1]
    for s in range(nt):
        i = perm[r + s]
        _prefetch(x, i * n0)
        _prefetch(x, i * n0 + n0 - 1)  # a row may straddle two cache lines
        _prefetch(y, i * k)
        _prefetch(sw, i)


@njit(cache=True, error_model="numpy")
def _slice_loss_grad(gt, ws, tmpw, params, x, y, sw, perm, lo, hi, wsum, sizes, acts, loss,
                     tile, offa, offz, offd0, offd1, wo, ahead):
    """Rows perm[lo:hi] in tiles: forward, loss, backward; gradient into gt (overwritten if
    the slice has rows).  Returns sum_i sw_i l_i over the rows (float64).  While a tile
    computes, the rows of the next one are prefetched: the next tile of the slice, or after
    the last one the first tile of the same slice of the next batch (``ahead`` rows on)."""
    L = sizes.shape[0] - 1
    n0 = sizes[0]
    nl = sizes[L]
    acc = 0.0
    r = lo
    while r < hi:
        nt = min(tile, hi - r)
        _gather(ws[offa[0]:offa[0] + nt * (n0 + 1)].reshape((nt, n0 + 1)), x, perm, r, nt, n0)
        nxt = r + nt if r + nt < hi else lo + ahead
        if ahead > 0 and nxt < perm.shape[0]:
            _prefetch_rows(x, y, sw, perm, nxt, min(tile, perm.shape[0] - nxt))
        _tile_forward(ws, params, sizes, acts, offa, offz, wo, nt)
        outa = ws[offa[L]:offa[L] + nt * (nl + 1)].reshape((nt, nl + 1))
        dcur = ws[offd0:offd0 + nt * nl].reshape((nt, nl))
        acc += _tile_loss(dcur, outa, y, sw, perm, r, nt, wsum, loss)
        cur = 0
        for l in range(L - 1, -1, -1):
            n_in = sizes[l]
            n_out = sizes[l + 1]
            a = ws[offa[l]:offa[l] + nt * (n_in + 1)].reshape((nt, n_in + 1))
            z = ws[offz[l]:offz[l] + nt * n_out].reshape((nt, n_out))
            oc = offd0 if cur == 0 else offd1
            on = offd1 if cur == 0 else offd0
            d = ws[oc:oc + nt * n_out].reshape((nt, n_out))
            _dact_flat(d, z, acts[l])
            m = (n_in + 1) * n_out
            gwb = gt[wo[l]:wo[l] + m].reshape((n_in + 1, n_out))
            # first tile: [dW; db] straight into the thread's gradient, later ones added
            tw = tmpw[:m].reshape((n_in + 1, n_out))
            np.dot(a.T, d, gwb if r == lo else tw)
            if r != lo:
                gflat = gt[wo[l]:wo[l] + m]
                tflat = tmpw[:m]
                for i in range(m):
                    gflat[i] += tflat[i]
            if l > 0:
                dn = ws[on:on + nt * n_in].reshape((nt, n_in))
                w = params[wo[l]:wo[l] + n_in * n_out].reshape((n_in, n_out))
                np.dot(d, w.T, dn)
            cur = 1 - cur
        r += nt
    return acc


@njit(cache=True, error_model="numpy", parallel=True)
def mlp_forward(out, params, x, sizes, acts, nth, tile):
    # out: (B, n_L); params: (n_params,); x: (B, n_0)
    n = x.shape[0]
    L = sizes.shape[0] - 1
    n0 = sizes[0]
    nl = sizes[L]
    offa, offz, offd0, offd1, wsn = _ws_layout(sizes, tile)
    wo = _poffsets(sizes)
    ws = np.empty((nth, wsn), dtype=params.dtype)
    per = (n + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        wst = ws[t]
        _ws_init(wst, sizes, offa, tile)
        r = t * per
        hi = min(r + per, n)
        while r < hi:
            nt = min(tile, hi - r)
            a0 = wst[offa[0]:offa[0] + nt * (n0 + 1)].reshape((nt, n0 + 1))
            for s in range(nt):
                xr = x[r + s]
                ar = a0[s]
                for k in range(n0):
                    ar[k] = xr[k]
            _tile_forward(wst, params, sizes, acts, offa, offz, wo, nt)
            outa = wst[offa[L]:offa[L] + nt * (nl + 1)].reshape((nt, nl + 1))
            for s in range(nt):
                orow = out[r + s]
                src = outa[s]
                for c in range(nl):
                    orow[c] = src[c]
            r += nt
        _mode_restore(csr)


@njit(cache=True, error_model="numpy")
def _reduce_range(grad_, gbuf, nth, lo, hi):
    """grad[lo:hi] = sum_t gbuf[t, lo:hi] in thread order; returns True if all finite."""
    grad = grad_[lo:hi]
    n = hi - lo
    q = gbuf[0, lo:hi]
    for i in range(n):
        grad[i] = q[i]
    for t in range(1, nth):
        q = gbuf[t, lo:hi]
        for i in range(n):
            grad[i] += q[i]
    bad = 0
    for i in range(n):
        v = grad[i]
        bad |= not (v - v == 0)
    return bad == 0


@njit(cache=True, error_model="numpy")
def _add_l2(grad, params, sizes, wo, c):
    """reference.add_l2 with c = l2 / batch weight sum: grad_W += c W (weights only, not
    the biases); returns the loss term c / 2 * sum ||W||^2 (float64)."""
    ct = _cast(c, params)
    pen = 0.0
    for l in range(sizes.shape[0] - 1):
        for i in range(wo[l], wo[l] + sizes[l] * sizes[l + 1]):
            v = params[i]
            grad[i] += ct * v
            pen += np.float64(v) * np.float64(v)
    return 0.5 * c * pen


# A literal 0 passed to a jitted function is typed Literal[int](0), another signature than
# the int64 of its other call sites: np.int64(0) (an int64, not a literal) lets the serial
# and the threaded calls of _reduce_range / _opt_range share one compiled specialisation
# (a cold first fit compiled each of them twice, ~1.5 s of CPU).

# Parameters from which train_epoch's reduction and update run on the threads (par_update):
# two parallel regions more per batch cost ~20-40 us of wake-ups with passive waiting, while
# the serial pass over 2^16 float32 parameters and their Adam state takes about as long.
PAR_UPDATE_MIN_PARAMS = 1 << 16


@njit(cache=True, error_model="numpy", parallel=True)
def train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0,
                opt, hyper, sizes, acts, loss, nth, tile, l2, par_update):
    """Every mini-batch of an epoch in one call (see reference.train_epoch for the contract).

    Per batch: wsum; threads own contiguous row slices, each with its own gradient buffer
    (tiles of `tile` rows: gather, forward, loss, backward); fixed-order reduction into grad
    with a finiteness check; then the fused optimizer update.  These two are O(n_params):
    serially on the calling thread (one parallel region per batch), or with par_update on
    the threads over contiguous ranges of the parameters (two more regions per batch, worth
    their wake-ups on wide nets: 5-512-512-1 @ 256 spent ~0.4 ms of its ~2.2 ms batches in
    them on one thread).  Either way each element gets the same arithmetic: same bits.
    With opt == OPT_NONE it is mlp_loss_grad over perm (one batch, loss and gradient, no
    update).
    """
    do_update = opt != OPT_NONE
    n = perm.shape[0]
    n_params = params.shape[0]
    n_batches = (n + batch_size - 1) // batch_size
    offa, offz, offd0, offd1, wsn = _ws_layout(sizes, tile)
    wo = _poffsets(sizes)
    L = sizes.shape[0] - 1
    tmpn = 1
    for l in range(L):
        tmpn = max(tmpn, (sizes[l] + 1) * sizes[l + 1])
    ws = np.empty((nth, wsn), dtype=params.dtype)
    tmpw = np.empty((nth, tmpn), dtype=params.dtype)
    gbuf = np.zeros((nth, n_params), dtype=params.dtype)
    lossp = np.zeros(nth, dtype=np.float64)
    for t in range(nth):
        _ws_init(ws[t], sizes, offa, tile)
    nrs = state.shape[0]
    s0 = state[0]
    s1 = state[min(1, nrs - 1)]
    s2 = state[min(2, nrs - 1)]
    h = hyper.copy()
    # the parameter ranges of the threaded reduction and update: 64-byte multiples
    pchunk = ((n_params + nth - 1) // nth + 15) // 16 * 16
    pfin = np.zeros(nth, dtype=np.int64)
    for bi in range(n_batches):
        r0 = bi * batch_size
        r1 = min(r0 + batch_size, n)
        wsum = _cast(0.0, sw)
        for r in range(r0, r1):
            wsum += sw[perm[r]]
        per = (r1 - r0 + nth - 1) // nth
        for t in prange(nth):
            csr = _flush_begin()
            lo = r0 + t * per
            hi = min(lo + per, r1)
            gt = gbuf[t]
            if lo >= hi:
                for i in range(n_params):
                    gt[i] = 0
            lossp[t] = _slice_loss_grad(gt, ws[t], tmpw[t], params, x, y, sw, perm, lo, hi,
                                        wsum, sizes, acts, loss, tile, offa, offz, offd0,
                                        offd1, wo, batch_size if do_update else 0)
            _mode_restore(csr)
        if par_update:
            for t in prange(nth):
                csr = _flush_begin()
                pfin[t] = _reduce_range(grad, gbuf, nth, min(t * pchunk, n_params),
                                        min((t + 1) * pchunk, n_params))
                _mode_restore(csr)
            finite = True
            for t in range(nth):
                finite = finite and pfin[t] != 0
        else:
            finite = _reduce_range(grad, gbuf, nth, np.int64(0), n_params)
        tot = 0.0
        for t in range(nth):
            tot += lossp[t]
        value = tot / np.float64(wsum)
        if l2 != 0.0:
            value += _add_l2(grad, params, sizes, wo, l2 / np.float64(wsum))
        batch_losses[bi] = value
        if not do_update:
            return 1
        if not (value - value == 0 and finite):
            return bi
        h[0] = lrs[bi]
        if par_update:
            for t in prange(nth):
                csr = _flush_begin()
                _opt_range(opt, params, grad, s0, s1, s2, min(t * pchunk, n_params),
                           min((t + 1) * pchunk, n_params), step0 + bi + 1, h)
                _mode_restore(csr)
        else:
            _opt_range(opt, params, grad, s0, s1, s2, np.int64(0), n_params, step0 + bi + 1, h)
    return n_batches


# ---------------------------------------------------------------------------------------
# The epoch's row order (reference.shuffle_indices): sequential, so one plain loop.
# ---------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy", nogil=True)
def shuffle_indices(out, u):
    """Inside-out Fisher-Yates; returns -1, or the index of the first u outside [0, 1)
    (then out is untouched)."""
    n = u.shape[0]
    for i in range(n):
        if not (u[i] >= 0.0 and u[i] < 1.0):
            return i
    for i in range(n):
        j = np.int64(u[i] * np.float64(i + 1))
        if j > i:
            j = i
        out[i] = i  # so that j == i reads nothing uninitialised
        out[i] = out[j]
        out[j] = i
    return -1



# The epoch's row order from one 64-bit key (reference.epoch_permutation): one thread, the
# same three passes as the C kernel (bucket sizes, rows into buckets, Fisher-Yates inside
# each bucket from the cache).  Every constant is a uint64 so that no product is promoted
# to float64.
_PHI = np.uint64(PERM_PHI)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, error_model="numpy", nogil=True)
def epoch_permutation(out, key):
    """out = reference.epoch_permutation(out, key); key: a uint64."""
    n = out.shape[0]
    k = 0
    while k < PERM_MAX_BUCKET_BITS and (n >> k) > PERM_BUCKET_ROWS:  # permutation_bucket_bits
        k += 1
    nb = np.int64(1) << k
    down = np.uint64(64 - k)
    up = np.uint64(k)
    start = np.zeros(nb + 1, dtype=np.int64)
    for i in range(n):
        x = _mix64(key + np.uint64(i + 1) * _PHI)
        b = np.int64(x >> down) if k > 0 else np.int64(0)
        start[b + 1] += 1
    for b in range(nb):
        start[b + 1] += start[b]
    fill = start[:nb].copy()
    for i in range(n):
        x = _mix64(key + np.uint64(i + 1) * _PHI)
        b = np.int64(x >> down) if k > 0 else np.int64(0)
        out[fill[b]] = i
        fill[b] += 1
    for b in range(nb):
        s = start[b]
        for p in range(1, start[b + 1] - s):
            item = out[s + p]
            v = (_mix64(key + np.uint64(item + 1) * _PHI) << up) >> np.uint64(11)
            j = np.int64(np.float64(v) * 1.1102230246251565e-16 * np.float64(p + 1))
            if j > p:
                j = p
            out[s + p] = out[s + j]
            out[s + j] = item

# ---------------------------------------------------------------------------------------
# Wide layers: the whole batch layer by layer, each product split over the threads in
# blocks of output rows, one BLAS call per block (_nb_blas.gemm, BLAS on one thread: every
# thread is ours, and OpenBLAS's own threads were measured collapsing 25x on a loaded
# machine) or, for a layer below the measured crossover (``use_blas[l] == 0``), a
# hand-written loop parallel over rows.  Used when some layer of the net is above the
# crossover: one product over the batch per layer runs near the BLAS peak, where the
# per-thread tiles of train_epoch above cut it into small products.  Buffers (per slab of
# at most `slab` rows): A_l (slab, n_l + 1) with a last column of ones (the augmented
# [W; b] trick above), Z_l (slab, n_{l+1}), D0 / D1 (slab, max width).
# ---------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy", parallel=True)
def _small_forward(z, a, wb, nth):
    """z = a @ wb, rows in parallel (a: (nt, K), wb: (K, n), z: (nt, n))."""
    nt = a.shape[0]
    K = a.shape[1]
    n = wb.shape[1]
    per = (nt + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        for s in range(t * per, min(t * per + per, nt)):
            zr = z[s]
            ar = a[s]
            for j in range(n):
                zr[j] = 0
            for k in range(K):
                av = ar[k]
                wr = wb[k]
                for j in range(n):
                    zr[j] += av * wr[j]
        _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def _small_wgrad(g, a, d, accumulate, nth):
    """g (K, n) = (g if accumulate else 0) + a^T d; rows of g in parallel, each a full sum
    over the rows of a in row order (deterministic).  a: (nt, K), d: (nt, n)."""
    nt = a.shape[0]
    K = a.shape[1]
    n = d.shape[1]
    per = (K + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        k0 = t * per
        k1 = min(k0 + per, K)
        if not accumulate:
            for k in range(k0, k1):
                gr = g[k]
                for j in range(n):
                    gr[j] = 0
        for s in range(nt):
            ar = a[s]
            dr = d[s]
            for k in range(k0, k1):
                av = ar[k]
                gr = g[k]
                for j in range(n):
                    gr[j] += av * dr[j]
        _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def _small_dgrad(dn, d, w, nth):
    """dn (nt, K) = d (nt, n) @ w^T (w: (K, n)), rows in parallel."""
    nt = d.shape[0]
    K = w.shape[0]
    n = w.shape[1]
    per = (nt + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        for s in range(t * per, min(t * per + per, nt)):
            dr = d[s]
            dnr = dn[s]
            for k in range(K):
                wr = w[k]
                acc = _cast(0.0, d)
                for j in range(n):
                    acc += dr[j] * wr[j]
                dnr[k] = acc
        _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def _rows_act(an, z, act, nth):
    nt = z.shape[0]
    per = (nt + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        for s in range(t * per, min(t * per + per, nt)):
            _act_row(an[s], z[s], act)
        _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def _rows_dact(d, z, act, nth):
    nt = z.shape[0]
    per = (nt + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        for s in range(t * per, min(t * per + per, nt)):
            _dact_row(d[s], z[s], act)
        _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def _big_forward(z, a, wb, fns, nth):
    """z = a @ wb: each thread one BLAS call (BLAS itself on one thread) on its rows."""
    nt = a.shape[0]
    K = a.shape[1]
    n = wb.shape[1]
    per = (nt + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        lo = t * per
        hi = min(lo + per, nt)
        if lo < hi:
            gemm(fns, False, False, hi - lo, n, K, 1.0, a[lo:hi], K, wb, n, 0.0, z[lo:hi], n)
        _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def _big_wgrad(g, a, d, accumulate, fns, nth):
    """g (K, n) (+)= a^T d: each thread the rows [k0, k1) of g, a full sum over the rows
    of a (no partial sums to reduce: deterministic at any thread count)."""
    nt = a.shape[0]
    K = a.shape[1]
    n = d.shape[1]
    per = (K + nth - 1) // nth
    beta = 1.0 if accumulate else 0.0
    for t in prange(nth):
        csr = _flush_begin()
        k0 = t * per
        k1 = min(k0 + per, K)
        if k0 < k1:
            gemm(fns, True, False, k1 - k0, n, nt, 1.0, a[:, k0:k1], K, d, n, beta, g[k0:k1],
                 n)
        _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def _big_dgrad(dn, d, w, fns, nth):
    """dn = d @ w^T: each thread one BLAS call on its rows."""
    nt = d.shape[0]
    K = w.shape[0]
    n = w.shape[1]
    per = (nt + nth - 1) // nth
    for t in prange(nth):
        csr = _flush_begin()
        lo = t * per
        hi = min(lo + per, nt)
        if lo < hi:
            gemm(fns, False, True, hi - lo, K, n, 1.0, d[lo:hi], n, w, n, 0.0, dn[lo:hi], K)
        _mode_restore(csr)


@njit(cache=True, error_model="numpy")
def _layer_forward(z, a, wb, big, fns, nth):
    """z = a @ wb (a: (nt, n_in + 1) augmented, wb: (n_in + 1, n_out) = [W; b])."""
    if big:
        _big_forward(z, a, wb, fns, nth)
    else:
        _small_forward(z, a, wb, nth)


@njit(cache=True, error_model="numpy")
def _layer_wgrad(g, a, d, accumulate, big, fns, nth):
    """[dW; db] (n_in + 1, n_out) (+)= a^T d."""
    if big:
        _big_wgrad(g, a, d, accumulate, fns, nth)
    else:
        _small_wgrad(g, a, d, accumulate, nth)


@njit(cache=True, error_model="numpy")
def _layer_dgrad(dn, d, w, big, fns, nth):
    """dn (nt, n_in) = d (nt, n_out) @ W^T (W: (n_in, n_out))."""
    if big:
        _big_dgrad(dn, d, w, fns, nth)
    else:
        _small_dgrad(dn, d, w, nth)


@njit(cache=True, error_model="numpy")
def _wide_views(ws, sizes, offa, offz, l, nt):
    n_in = sizes[l]
    n_out = sizes[l + 1]
    a = ws[offa[l]:offa[l] + nt * (n_in + 1)].reshape((nt, n_in + 1))
    z = ws[offz[l]:offz[l] + nt * n_out].reshape((nt, n_out))
    an = ws[offa[l + 1]:offa[l + 1] + nt * (n_out + 1)].reshape((nt, n_out + 1))
    return a, z, an


@njit(cache=True, error_model="numpy")
def _wide_forward(ws, params, x, perm, r, nt, sizes, acts, offa, offz, wo, use_blas, fns,
                  nth):
    """Gather rows perm[r:r + nt] (or r.. when perm is empty) and run every layer."""
    L = sizes.shape[0] - 1
    n0 = sizes[0]
    a0 = ws[offa[0]:offa[0] + nt * (n0 + 1)].reshape((nt, n0 + 1))
    for s in range(nt):
        xr = x[perm[r + s]] if perm.shape[0] > 0 else x[r + s]
        ar = a0[s]
        for k in range(n0):
            ar[k] = xr[k]
    for l in range(L):
        a, z, an = _wide_views(ws, sizes, offa, offz, l, nt)
        wb = params[wo[l]:wo[l] + (sizes[l] + 1) * sizes[l + 1]].reshape(
            (sizes[l] + 1, sizes[l + 1]))
        _layer_forward(z, a, wb, use_blas[l] != 0, fns, nth)
        _rows_act(an, z, acts[l], nth)


@njit(cache=True, error_model="numpy")
def _wide_backward(grad, ws, params, sizes, acts, offa, offz, offd0, offd1, wo, nt,
                   accumulate, use_blas, fns, nth):
    """dL/dout in D0 on entry; the slab's [dW; db] into grad (accumulated if asked)."""
    L = sizes.shape[0] - 1
    cur = 0
    for l in range(L - 1, -1, -1):
        n_in = sizes[l]
        n_out = sizes[l + 1]
        a, z, an = _wide_views(ws, sizes, offa, offz, l, nt)
        oc = offd0 if cur == 0 else offd1
        on = offd1 if cur == 0 else offd0
        d = ws[oc:oc + nt * n_out].reshape((nt, n_out))
        _rows_dact(d, z, acts[l], nth)
        m = (n_in + 1) * n_out
        big = use_blas[l] != 0
        _layer_wgrad(grad[wo[l]:wo[l] + m].reshape((n_in + 1, n_out)), a, d, accumulate,
                     big, fns, nth)
        if l > 0:
            dn = ws[on:on + nt * n_in].reshape((nt, n_in))
            w = params[wo[l]:wo[l] + n_in * n_out].reshape((n_in, n_out))
            _layer_dgrad(dn, d, w, big, fns, nth)
        cur = 1 - cur


@njit(cache=True, error_model="numpy")
def train_epoch_wide(params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs,
                     step0, opt, hyper, sizes, acts, loss, nth, slab, use_blas, fns, l2):
    """train_epoch's contract, layer by layer over slabs of at most `slab` rows of a batch
    (the slabs' gradients summed in slab order: deterministic for a given slab and thread
    count).  use_blas: int8 (n_layers,), 1 where the layer's products go to BLAS; l2 the
    weights' L2 coefficient (reference.add_l2)."""
    do_update = opt != OPT_NONE
    n = perm.shape[0]
    n_params = params.shape[0]
    n_batches = (n + batch_size - 1) // batch_size
    offa, offz, offd0, offd1, wsn = _ws_layout(sizes, slab)
    wo = _poffsets(sizes)
    L = sizes.shape[0] - 1
    nl = sizes[L]
    ws = np.empty(wsn, dtype=params.dtype)
    _ws_init(ws, sizes, offa, slab)
    nrs = state.shape[0]
    s0 = state[0]
    s1 = state[min(1, nrs - 1)]
    s2 = state[min(2, nrs - 1)]
    h = hyper.copy()
    for bi in range(n_batches):
        r0 = bi * batch_size
        r1 = min(r0 + batch_size, n)
        wsum = _cast(0.0, sw)
        for r in range(r0, r1):
            wsum += sw[perm[r]]
        tot = 0.0
        r = r0
        while r < r1:
            nt = min(slab, r1 - r)
            _wide_forward(ws, params, x, perm, r, nt, sizes, acts, offa, offz, wo, use_blas,
                          fns, nth)
            outa = ws[offa[L]:offa[L] + nt * (nl + 1)].reshape((nt, nl + 1))
            d = ws[offd0:offd0 + nt * nl].reshape((nt, nl))
            tot += _tile_loss(d, outa, y, sw, perm, r, nt, wsum, loss)
            _wide_backward(grad, ws, params, sizes, acts, offa, offz, offd0, offd1, wo, nt,
                           r != r0, use_blas, fns, nth)
            r += nt
        value = tot / np.float64(wsum)
        if l2 != 0.0:
            value += _add_l2(grad, params, sizes, wo, l2 / np.float64(wsum))
        bad = 0
        for i in range(n_params):
            v = grad[i]
            bad |= not (v - v == 0)
        batch_losses[bi] = value
        if not do_update:
            return 1
        if not (value - value == 0 and bad == 0):
            return bi
        h[0] = lrs[bi]
        _opt_range(opt, params, grad, s0, s1, s2, np.int64(0), n_params, step0 + bi + 1, h)
    return n_batches


@njit(cache=True, error_model="numpy")
def mlp_forward_wide(out, params, x, sizes, acts, nth, slab, use_blas, fns):
    # out: (B, n_L); params: (n_params,); x: (B, n_0).  Layer by layer over slabs.
    n = x.shape[0]
    L = sizes.shape[0] - 1
    nl = sizes[L]
    offa, offz, offd0, offd1, wsn = _ws_layout(sizes, slab)
    wo = _poffsets(sizes)
    ws = np.empty(wsn, dtype=params.dtype)
    _ws_init(ws, sizes, offa, slab)
    noperm = np.empty(0, dtype=np.int64)
    r = 0
    while r < n:
        nt = min(slab, n - r)
        _wide_forward(ws, params, x, noperm, r, nt, sizes, acts, offa, offz, wo, use_blas,
                      fns, nth)
        outa = ws[offa[L]:offa[L] + nt * (nl + 1)].reshape((nt, nl + 1))
        for s in range(nt):
            for c in range(nl):
                out[r + s, c] = outa[s, c]
        r += nt


@njit(cache=True, error_model="numpy")
def dense_forward_blas(out, z, x, w, b, act, nth, fns):
    # out, z: (B, n_out); x: (B, n_in); w: (n_in, n_out); b: (n_out,).  One GEMM, then
    # bias and activation over rows in parallel.
    _big_forward(z, x, w, fns, nth)
    _bias_act_rows(out, z, b, act)


@njit(cache=True, error_model="numpy")
def dense_backward_blas(dx, dw, db, dout, x, w, z, act, nth, want_dx, fns):
    # as dense_backward; dW = x^T dz and dx = dz W^T as single GEMMs
    d = dout.copy()
    _rows_dact(d, z, act, nth)
    _colsum(db, d)
    _big_wgrad(dw, x, d, False, fns, nth)
    if want_dx:
        _big_dgrad(dx, d, w, fns, nth)
