"""BLAS at one thread for a block: the kernels call BLAS from their own threads (the Numba
tiles' np.dot, C's per-thread row blocks), so BLAS's threads on top of them would
oversubscribe the cores.

``threadpoolctl``'s ``limit()`` does this too, but it rebuilds its description of every
library on each call: about 27 us on the Zen 3 VM, more than a small predict's kernel and
paid on every kernel call of the Numba backend.  Here the BLAS libraries are looked up once
(threadpoolctl's controllers) and a block costs a get and, where needed, two sets per
library (~4 us).  The libraries are those loaded at the first use, SciPy's OpenBLAS (the
one both backends call) loaded first if it is not yet.
"""

_libs = None


def _blas_libs():
    """threadpoolctl's controllers of the loaded BLAS libraries ([] without threadpoolctl)."""
    global _libs
    if _libs is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401 - the kernels' BLAS, loaded now
        except ImportError:
            pass
        try:
            from threadpoolctl import ThreadpoolController
            _libs = list(ThreadpoolController().select(user_api="blas").lib_controllers)
        except Exception:     # threadpoolctl missing or unable to inspect the process
            _libs = []
    return _libs


class one_blas_thread:
    """``with one_blas_thread():`` every BLAS library runs on one thread inside the block;
    each one's previous count is restored on exit (a library already at one thread is left
    alone, so nested blocks restore nothing twice)."""

    __slots__ = ("_prev",)

    def __enter__(self):
        prev = []
        for lib in _blas_libs():
            n = lib.get_num_threads()
            if n != 1:
                lib.set_num_threads(1)
                prev.append((lib, n))
        self._prev = prev
        return self

    def __exit__(self, *exc):
        for lib, n in reversed(self._prev):
            lib.set_num_threads(n)
        return False
