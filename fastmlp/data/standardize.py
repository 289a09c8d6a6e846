"""The ONE feature standardiser: streaming mean / std (Chan's parallel merge), zero-std guard.

Every path that standardises (``fit(standardize=True)``, ``fit_stream``, the CLI, Dask, MPI
and the benchmark) computes the statistics here; the model stores the result as its
``standardization`` field ``(mean, std)`` and applies it itself, so a model predicts from raw
features wherever it is used.
"""

import numpy as np

from .._validate import counted
from ..model import standardize_rows


_MOMENT_BLOCK = 1 << 15   # rows per block of the squared deviations


def _squared_deviations(X, cm):
    """((X - cm) ** 2).sum(axis=0) in float64.  For a C-ordered X, NumPy sums over axis 0
    row after row (one running total per column), so the rows can be squared a block at a
    time and each block summed onto the running total carried as its first row: the same
    additions in the same order, with no full-size float64 temporary (which was 2x a
    float32 catalog's size).  Other layouts take the one-pass expression (its order differs)."""
    if not X.flags.c_contiguous or X.shape[0] <= _MOMENT_BLOCK:
        return ((X - cm) ** 2).sum(axis=0, dtype=np.float64)
    buf = np.empty((_MOMENT_BLOCK + 1, X.shape[1]))
    buf[0] = 0.0
    for s in range(0, X.shape[0], _MOMENT_BLOCK):
        blk = X[s:s + _MOMENT_BLOCK]
        dev = buf[1:blk.shape[0] + 1]
        np.subtract(blk, cm, out=dev)
        np.multiply(dev, dev, out=dev)
        buf[0] = buf[:blk.shape[0] + 1].sum(axis=0)
    return buf[0].copy()


class Standardizer:
    """Feature standardisation ``(X - mean) / std`` with float64 statistics.

    ``fit(X)`` computes them in one go; ``partial_fit(X_chunk)`` merges chunk after chunk
    (Chan et al.'s parallel form of Welford's update, exact to rounding for any chunking),
    so a catalog larger than memory is standardised from a streaming pass.  A zero std
    (a constant column) becomes 1.  ``mean`` and ``std`` (the population std, ddof=0, like
    ``X.std(axis=0)``) are what a model stores as its ``standardization`` field.
    """

    def __init__(self, mean=None, std=None):
        self.n = 0
        self._mean = None
        self._m2 = None
        if mean is not None or std is not None:
            if mean is None or std is None:
                raise ValueError("give both mean and std, or neither")
            mean = np.asarray(mean, np.float64).reshape(-1)
            std = np.asarray(std, np.float64).reshape(-1)
            if mean.shape != std.shape or not (np.isfinite(mean).all() and
                                               np.isfinite(std).all() and (std > 0).all()):
                raise ValueError("mean and std must be finite vectors of the same length, "
                                 "std > 0")
            self._mean, self._fixed_std = mean, std
        else:
            self._fixed_std = None

    def partial_fit(self, X):
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows, features), got shape {X.shape}")
        if self._fixed_std is not None:
            raise ValueError("this Standardizer was built from a given mean and std")
        m = X.shape[0]
        if m == 0:
            return self
        cm = X.mean(axis=0, dtype=np.float64)
        if not np.isfinite(cm).all():
            # one NaN or inf value makes its column's statistics NaN; a mean that overflowed
            # from finite values is the caller's to judge (fit names such a column)
            cols = np.flatnonzero(~np.isfinite(cm))
            cols = cols[~np.isfinite(X[:, cols]).all(axis=0)].tolist()
            if cols:
                raise ValueError(f"X column(s) {cols} hold NaN or inf values: their mean and "
                                 "std would be NaN; drop or impute those rows before "
                                 "standardising")
        return self.merge(m, cm, _squared_deviations(X, cm))

    def merge(self, n, mean, m2):
        """Merge the moments of another part of the data: its row count, column means and
        sums of squared deviations (Chan's update; the order of merges changes only the
        rounding).  Dask partitions and MPI ranks send these, never raw sums of squares."""
        n, mean, m2 = int(n), np.asarray(mean, np.float64), np.asarray(m2, np.float64)
        if n == 0:
            return self
        if self._mean is None:
            self._mean, self._m2, self.n = mean.copy(), m2.copy(), n
            return self
        if mean.shape != self._mean.shape:
            raise ValueError(f"chunk has {counted(mean.size, 'feature')}, earlier chunks "
                             f"{self._mean.size}")
        total = self.n + n
        d = mean - self._mean
        self._mean = self._mean + d * (n / total)
        self._m2 = self._m2 + m2 + d * d * (self.n * n / total)
        self.n = total
        return self

    def moments(self):
        """(n, mean, m2): what ``merge`` takes (the moments of everything seen so far)."""
        if self._mean is None:
            return 0, None, None
        return self.n, self._mean.copy(), self._m2.copy()

    def fit(self, X):
        self.n, self._mean, self._m2, self._fixed_std = 0, None, None, None
        if np.shape(X)[:1] == (0,):     # partial_fit skips an empty chunk; fit has no other
            raise ValueError("X has 0 rows: the mean and std need at least one")
        return self.partial_fit(X)

    @property
    def mean(self):
        if self._mean is None:
            raise ValueError("Standardizer is not fitted yet")
        return self._mean

    @property
    def std(self):
        if self._fixed_std is not None:
            return self._fixed_std
        if self._mean is None:
            raise ValueError("Standardizer is not fitted yet")
        s = np.sqrt(self._m2 / max(self.n, 1))
        return np.where(s > 0, s, 1.0)

    def transform(self, X):
        """Standardised copy of X in X's float dtype (float32 stays float32)."""
        X = np.asarray(X)
        dt = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
        if X.ndim != 2 or X.shape[1] != self.mean.size:
            raise ValueError(f"X must have shape (n, {self.mean.size}), got {X.shape}")
        return standardize_rows(X, self.mean, self.std, dt)

    def inverse_transform(self, Z):
        return np.asarray(Z) * self.std + self.mean

    def as_tuple(self):
        """(mean, std) for fastmlp.io.save_model(standardization=...)."""
        return self.mean.copy(), self.std.copy()

    def __repr__(self):
        if self._mean is None:
            return "Standardizer(unfitted)"
        return (f"Standardizer(n={self.n}, mean={np.round(self.mean, 4).tolist()}, "
                f"std={np.round(self.std, 4).tolist()})")
