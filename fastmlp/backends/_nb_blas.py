"""SciPy's OpenBLAS ``sgemm`` / ``dgemm``, callable from ``@njit`` code as ``gemm(...)``.

The functions are the Cython exports of ``scipy.linalg.cython_blas`` (the same OpenBLAS that
SciPy, and through it Numba's ``np.dot``, already load), called through their addresses
(``numba.extending.get_cython_function_address``) as ctypes function pointers.  Calling them
directly, instead of ``np.dot``, lets a kernel pass strides (a block of rows of a bigger
buffer), transposes without copies, ``beta = 1`` to accumulate into an output, and the whole
batch to one call that OpenBLAS parallelises itself.

Layout: fastmlp's arrays are row-major (C order) and BLAS is column-major (Fortran).  A
row-major matrix with row stride ``ld`` is, read column-major, its transpose with leading
dimension ``ld``; so the row-major product C = op(A) op(B) is computed as the column-major
C^T = op(B)^T op(A)^T: the same transpose flags, the operands and M / N swapped.

Threads: OpenBLAS runs its own threads.  The kernels call ``gemm`` from inside their own
parallel regions (each thread one block of rows of the product) with BLAS limited to one
thread by the wrappers (threadpoolctl, scoped to the call): OpenBLAS's own threads on top of
ours oversubscribe the cores, and on a loaded 2-core machine a 2-thread OpenBLAS sgemm was
measured 25x slower than a 1-thread one (its threads spin waiting for each other).

Determinism: for a fixed OpenBLAS build, CPU kernel and BLAS thread count, the same call gives
the same bits run to run (OpenBLAS splits a GEMM by the output blocks, never the summation
index, so no sum depends on thread timing).  Between the hand-written kernels and BLAS, or
between two OpenBLAS core types (Haswell vs SkylakeX code paths), the order of the additions
in each dot product differs, so results differ in the last bits: the conformance tolerances
(float64 1e-12, float32 1e-5 relative to the reference) cover that, bit-for-bit agreement
across backends or paths is not promised.
"""

import ctypes

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import get_cython_function_address, intrinsic, overload

# void ?gemm(char *transa, char *transb, int *m, int *n, int *k, T *alpha, T *a, int *lda,
#            T *b, int *ldb, T *beta, T *c, int *ldc): every argument a pointer
_PROTO = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))
_SGEMM = get_cython_function_address("scipy.linalg.cython_blas", "sgemm")
_DGEMM = get_cython_function_address("scipy.linalg.cython_blas", "dgemm")

_N = ord("N")
_T = ord("T")
INT_MAX = 2**31 - 1


def addresses():
    """int64 [sgemm, dgemm]: the ``fns`` argument of gemm, and what the C library's
    fastmlp_set_gemm takes.  Passed to the kernels at run time, never baked into compiled
    code: the addresses change from process to process, and Numba's on-disk cache must not
    keep a stale one (a ctypes pointer in njit code would also forbid caching)."""
    return np.array([_SGEMM, _DGEMM], dtype=np.int64)


@intrinsic
def _call13(typingctx, fn, p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12):
    """Call the C function at address fn (int64) with 13 pointer arguments (uintp)."""
    ptrs = (p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, p10, p11, p12)
    if not isinstance(fn, types.Integer) or not all(isinstance(p, types.Integer) for p in ptrs):
        return None

    def codegen(context, builder, sig, args):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p] * 13)
        f = builder.inttoptr(args[0], fnty.as_pointer())
        builder.call(f, [builder.inttoptr(v, i8p) for v in args[1:]])
        return context.get_dummy_value()
    return types.void(fn, *ptrs), codegen


def gemm(fns, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Row-major C (m, n; row stride ldc) = alpha op(A) op(B) + beta C, where op(A) is
    (m, k) and op(B) is (k, n); trans_a / trans_b: True for op(X) = X^T.  a, b, c: arrays
    whose first element is the matrix's first element (views are fine); lda, ldb: the row
    strides of A and B as stored.  fns: ``addresses()``; float32 -> sgemm, float64 -> dgemm.
    Sizes must fit a 32-bit int (the callers split larger batches).  Only for njit code."""
    raise NotImplementedError("gemm is callable from @njit code only")


@overload(gemm)
def _gemm_ov(fns, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    if not all(isinstance(x, types.Array) for x in (a, b, c)):
        return None
    if not (a.dtype == b.dtype == c.dtype and a.dtype in (types.float32, types.float64)):
        return None
    which = 0 if a.dtype == types.float32 else 1
    dt = np.float32 if which == 0 else np.float64

    def impl(fns, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        if m <= 0 or n <= 0:
            return
        flags = np.empty(2, dtype=np.uint8)
        # column-major view: C^T = op(B)^T op(A)^T
        flags[0] = _T if trans_b else _N
        flags[1] = _T if trans_a else _N
        ints = np.empty(6, dtype=np.int32)
        ints[0] = n
        ints[1] = m
        ints[2] = k
        ints[3] = ldb
        ints[4] = lda
        ints[5] = ldc
        sc = np.empty(2, dtype=dt)
        sc[0] = alpha
        sc[1] = beta
        fp = flags.ctypes.data
        ip = ints.ctypes.data
        sp = sc.ctypes.data
        _call13(fns[which], fp, fp + 1, ip, ip + 4, ip + 8, sp, b.ctypes.data, ip + 12,
                a.ctypes.data, ip + 16, sp + sc.itemsize, c.ctypes.data, ip + 20)
    return impl
