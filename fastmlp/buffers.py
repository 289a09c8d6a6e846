"""Flat buffers that start on a cache line.

The kernels read a layer's weights a row at a time with 256-bit (AVX2) or 512-bit loads.
NumPy aligns a new array to 16 bytes only, so a model's parameters could start 16 bytes into
a cache line, and then every other 32-byte load of a weight row straddled two lines.  On a
Zen 3 VM C's 5-64-64-1 forward pass took 108-111 ns/row on one thread with the parameters
16 bytes past a 64-byte boundary, against 90-93 at the boundary (the same parameters at both
offsets in one process, taking turns).  Buffers made here start on a 64-byte
boundary; a layer's rows then start on a 32-byte boundary wherever the widths before it
are multiples of 8 floats (or 4 doubles).

The lowest layer: imports nothing of fastmlp.
"""

import numpy as np

__all__ = ["ALIGN", "aligned_empty", "aligned_empty_like", "aligned_zeros", "aligned_copy",
           "is_aligned"]

ALIGN = 64   # bytes: a cache line on x86, and one AVX-512 vector


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array of `shape` whose data starts on ALIGN bytes."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(n * dtype.itemsize + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + n * dtype.itemsize].view(dtype).reshape(shape)


def aligned_empty_like(a):
    """np.empty_like(a) (C order), starting on ALIGN bytes."""
    return aligned_empty(a.shape, a.dtype)


def aligned_zeros(shape, dtype):
    """np.zeros(shape, dtype), starting on ALIGN bytes."""
    out = aligned_empty(shape, dtype)
    out[...] = 0
    return out


def aligned_copy(a, dtype=None):
    """A C-contiguous, aligned copy of `a` (in `dtype` if given)."""
    a = np.asarray(a)
    out = aligned_empty(a.shape, a.dtype if dtype is None else dtype)
    out[...] = a
    return out


def is_aligned(a):
    """Whether the data of array `a` starts on ALIGN bytes."""
    return a.ctypes.data % ALIGN == 0
