"""The kernels' thread count: a process default plus a per-Python-thread override.

``set_default(n)`` (``fastmlp.set_num_threads``) sets the default; ``threads(n)`` overrides it
for the calling Python thread inside a ``with`` block and restores the previous value on
exit.  The backends read ``current()`` at every kernel call and pass the count into it (the
Numba kernels take it as an argument, the C library keeps it per calling OS thread), so two
Python threads training at once with different counts do not disturb each other.

fork(): libgomp (the OpenMP runtime of the C backend and of Numba's "omp" layer) cannot
restart its worker threads in a forked child: a parallel region there hangs (C) or Numba
terminates the child.  If the parent had started OpenMP threads, the child runs every kernel
on one thread and warns once (``in_forked_child()``; the Numba backend also goes to the
NumPy reference there, since Numba refuses any parallel launch in such a child).
"""

import contextlib
import os
import threading
import warnings

import numpy as np

from .._validate import counted

# Above this a count is refused: per-thread buffers and libgomp's thread creation fail in
# ways that crash the process (set_num_threads(100000) gave SIGSEGV inside libgomp).
HARD_MAX = 1024


def max_threads():
    """The largest count accepted: 4 x the CPUs (at least 64), never above HARD_MAX."""
    return min(HARD_MAX, max(64, 4 * (os.cpu_count() or 1)))


_default = None
_local = threading.local()
_openmp_started = False   # a kernel ran (possibly) multi-threaded in this process
_forked_child = False     # this process was forked from one where that had happened
_fork_warned = False


def check(n, name="n_threads"):
    """n as a Python int in [1, max_threads()], else a ValueError naming the argument."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    hi = max_threads()
    if not 1 <= int(n) <= hi:
        raise ValueError(f"{name} must be a positive integer at most {hi} (4 x the "
                         f"{counted(os.cpu_count() or 1, 'CPU')}, at least 64, never over "
                         f"{HARD_MAX}), got {n!r}")
    return int(n)


def set_default(n):
    """The process-wide default count (used where no threads() block is active)."""
    global _default
    _default = check(n)


def get_default():
    return _default


def override():
    """The count of the innermost threads() block of this Python thread, or None."""
    return getattr(_local, "n", None)


def requested():
    """The count asked for in this Python thread (threads() block, else the default), or
    None for each backend's own default."""
    n = override()
    return _default if n is None else n


@contextlib.contextmanager
def threads(n):
    """``with threads(n):`` every fastmlp kernel called by this Python thread uses n threads;
    the previous setting (of this thread only) is restored on exit.  ``threads(None)``
    changes nothing (so that ``fit(n_threads=None)`` keeps the setting in force)."""
    if n is None:
        yield requested()
        return
    n = check(n)
    prev = override()
    _local.n = n
    try:
        yield n
    finally:
        _local.n = prev


def current(backend_default):
    """The count a kernel call should use now: requested() or backend_default, and 1 in a
    child forked after OpenMP threads were started (warned once)."""
    global _openmp_started
    if _forked_child:
        _warn_fork()
        return 1
    n = requested()
    n = backend_default if n is None else n
    if n > 1:
        _openmp_started = True
    return n


def in_forked_child():
    return _forked_child


def _warn_fork():
    global _fork_warned
    if not _fork_warned:
        _fork_warned = True
        warnings.warn("fastmlp: this process was forked after OpenMP threads had started "
                      "in its parent; OpenMP cannot restart them here, so the kernels run on "
                      "one thread in this process (use the 'spawn' or 'forkserver' start "
                      "method for parallel kernels in worker processes)", RuntimeWarning,
                      stacklevel=4)


def mark_started():
    """A backend started OpenMP threads by other means (Numba's pool launch)."""
    global _openmp_started
    _openmp_started = True


def _after_fork_in_child():
    global _forked_child, _fork_warned
    if _openmp_started or _forked_child:
        _forked_child = True
        _fork_warned = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
