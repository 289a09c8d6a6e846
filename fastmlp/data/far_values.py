"""Feature values far from the bulk of the data a model learns from or was trained on.

fastmlp treats NaN, null and SDSS's -9999 as missing; other surveys write 99 or 1e30 for a
missing magnitude, which pass as numbers and give confident, meaningless predictions (a
magnitude of 99 puts a colour ~80 magnitudes off).  Such rows are counted, never changed:
``fastmlp train`` (with ``--stream`` too, counted by the scan) and ``predict`` print one
warning line saying how many there are and how to leave them out."""

import numpy as np

from .._validate import counted

__all__ = ["FAR_STD", "FarValues", "FarInStream", "far_from_model", "far_in_training"]

#: how many standard deviations from the centre of the training data a feature value must lie
#: to count as far off: real colours and magnitudes lie within ~10, a 99 sentinel hundreds away
FAR_STD = 50.0

#: rows the training data's median and MAD are estimated from (evenly spaced in memory, the
#: first ones of a stream), and rows counted at a time
SAMPLE_ROWS = 100_000

# the standard deviation of a normal distribution per unit of its median absolute deviation
_MAD_TO_STD = 1.4826

#: what the CLI's warning suggests (its readers take NaN, null and -9999 as missing)
CLI_REMEDY = ("a missing-value sentinel such as 99 or 1e30? Only NaN, null and -9999 count as "
              "missing: write NaN there, or leave the rows out with --where")

#: what fastmlp.fit's warning suggests: in an array every value but NaN / inf is a number,
#: SDSS's -9999 too (fit_far_warning matches the warning)
ARRAY_REMEDY = ("a missing-value sentinel such as -9999, 99 or 1e30? In an array only NaN and "
                "inf count as missing, and a sentinel drags the standardisation (a few -9999 "
                "of u-g moved its mean to -12 and its std to 353): write NaN there and pass "
                "drop_invalid=True, or leave those rows out")

#: a regular expression matching fastmlp.fit's warning (the CLI, which says it its own way,
#: filters it out)
FIT_FAR_WARNING = r"X: .* standard deviations from the training"

# the warning's words for a median and MAD of all the training rows (in memory or streamed:
# the same words for the same computation)
_EVERY_ROW = "every training row"


class FarValues:
    """Counts the rows with a feature more than FAR_STD ``scale`` from ``centre`` (one
    value per feature), chunk by chunk.  ``statistic``: what the centre is ("mean" or
    "median" of the training data); ``basis``: what centre and scale were computed from, so
    that every path words the warning alike and says what it computed."""

    def __init__(self, centre, scale, names, statistic, basis):
        self.centre = np.asarray(centre, np.float64)
        self.scale = np.asarray(scale, np.float64)
        self.names, self.statistic, self.basis = list(names), statistic, basis
        self.rows = 0
        self.by_feature = np.zeros(len(self.names), np.int64)
        # each column's far values, kept (at most KEPT_FAR of them) to judge whether they
        # look like a sentinel once every block is in (sentinel_like)
        self._far_values = [[] for _ in self.names]
        self._n_kept = np.zeros(len(self.names), np.int64)
        with np.errstate(invalid="ignore", over="ignore"):    # an infinite scale: never far
            # nan_to_num would also turn the infinite bounds into +-1.8e308: an inf value
            # would then count as far on a feature that is not judged
            self._lo = np.nan_to_num(self.centre - FAR_STD * self.scale, nan=-np.inf,
                                     neginf=-np.inf, posinf=np.inf)
            self._hi = np.nan_to_num(self.centre + FAR_STD * self.scale, nan=np.inf,
                                     neginf=-np.inf, posinf=np.inf)

    def add(self, X, valid=None):
        """Count the far rows of X (n, n_features); ``valid``: the rows to look at.  Column
        by column: far values are rare, and comparisons of a whole (n, 4) array against 4
        bounds run several times slower than of its 4 columns."""
        X = np.asarray(X)
        valid = None if valid is None else np.asarray(valid, bool)
        far_rows = []
        with np.errstate(invalid="ignore"):
            for j in range(X.shape[1]):
                col = X[:, j]
                rows = np.flatnonzero((col < self._lo[j]) | (col > self._hi[j]))  # NaN: never
                if valid is not None:
                    rows = rows[valid[rows]]
                self.by_feature[j] += rows.size
                far_rows.append(rows)
                if rows.size and self._n_kept[j] < KEPT_FAR:
                    keep = np.asarray(col[rows[:KEPT_FAR - self._n_kept[j]]], np.float64)
                    self._far_values[j].append(keep)
                    self._n_kept[j] += keep.size
        if any(r.size for r in far_rows):
            self.rows += np.unique(np.concatenate(far_rows)).size

    @property
    def sentinel_like(self):
        """Whether a column's far values, over every block added, look like a sentinel
        (_sentinel_like)."""
        return any(_sentinel_like(np.concatenate(kept)) for kept in self._far_values if kept)

    def warning(self, prefix="warning: ", remedy=CLI_REMEDY):
        """One line for stderr (or a warnings.warn text: ``prefix`` "", ``remedy`` the
        caller's), or None when no row was far off."""
        if not self.rows:
            return None
        where = ", ".join(f"{n}={int(k)}" for n, k in zip(self.names, self.by_feature) if k)
        return (f"{prefix}{counted(self.rows, 'row has', 'rows have')} features more than "
                f"{FAR_STD:g} standard deviations from the training {self.statistic} "
                f"({where}; {self.basis}); {remedy}")


#: magnitudes surveys write for a missing value (99, 999, 9999, 99999; and 1e20 or more)
SENTINEL_MAGNITUDES = (99.0, 999.0, 9999.0, 99999.0)

#: far values kept per column to judge them (a few MB at most)
KEPT_FAR = 100_000


def _sentinel_like(v):
    """Whether the far values v of one column look like a sentinel (FarValues); each rule
    asks for a share of the far values, so that one real outlier beside them changes
    nothing and a heavy tail (its far values spread wide, few of them repeated) stays data:
    * a value beyond 1e20;
    * one of +-SENTINEL_MAGNITUDES exactly, at least twice and a tenth of the far values;
    * three or more within 35 of one of them, spread over at most 15 and a tenth of the
      far values: the colours of a sentinel magnitude (99 - g, -9999 - g);
    * one value at least five times and half of the far values, or three or more far values all
      within 1 % of each other."""
    a = np.abs(v)
    if np.any(a >= 1e20):
        return True
    for m in SENTINEL_MAGNITUDES:
        hits = np.count_nonzero(a == m)
        near = v[np.abs(a - m) <= 35]
        if (hits >= 2 and 10 * hits >= v.size) or (
                near.size >= 3 and 10 * near.size >= v.size and np.ptp(near) <= 15):
            return True
    if v.size < 3:
        return False
    _, counts = np.unique(v, return_counts=True)
    return bool((counts.max() >= 5 and 2 * counts.max() >= v.size)
                or v.max() - v.min() <= 0.01 * a.min())


def far_from_model(model, names):
    """A counter against the training data's mean / std that ``model`` stores (None when it
    stores no standardisation)."""
    if model.standardization is None:
        return None
    mean, std = model.standardization
    return FarValues(mean, std, names, "mean", "the mean and standard deviation the model "
                     "stores")


def _from_median(sample, names, rows):
    """A counter against the median and the median absolute deviation of ``sample`` (a
    mean and std would be dragged by the sentinels); a feature whose MAD is 0 (or a sample
    of no rows) is not judged.  ``rows``: which training rows the sample is, for the
    warning."""
    basis = f"median and standard deviation (1.4826 x MAD) of {rows}"
    if len(sample) == 0:
        return FarValues(np.zeros(len(names)), np.full(len(names), np.inf), names, "median",
                         basis)
    centre = np.nanmedian(sample, axis=0)
    mad = np.nanmedian(np.abs(sample - centre), axis=0)
    scale = np.where(mad > 0, _MAD_TO_STD * mad, np.inf)
    return FarValues(centre, scale, names, "median", basis)


def _add_in_blocks(far, X):
    for a in range(0, len(X), SAMPLE_ROWS):
        far.add(X[a:a + SAMPLE_ROWS])


def far_in_training(X, names):
    """A counter of the far rows of the training features X themselves, from the median and
    the MAD of at most SAMPLE_ROWS evenly spaced rows; the rows are counted in blocks: a few
    MB of temporaries, not copies of a training matrix of millions of rows."""
    X = np.asarray(X)
    step = max(1, len(X) // SAMPLE_ROWS)
    sample = np.asarray(X[::step], np.float64)
    far = _from_median(sample, names, _EVERY_ROW if len(sample) == len(X) else
                       f"{len(sample):,} evenly spaced training rows")
    _add_in_blocks(far, X)
    return far


class FarInStream:
    """The far rows of training data read chunk by chunk (``add`` each chunk's usable rows),
    counted in the one pass that reads them (``CatalogStream.scan``): no pass of its own.
    The median and MAD come from the first SAMPLE_ROWS rows, held as float64 until they are
    in (0.8 MB per feature: 3.2 MB for four colours, twice that while they are joined);
    every row is counted against them.  A file sorted by a feature gives a first block
    narrower than the whole and may count rows of its far end; the warning says where the
    median came from.  ``result()``: the FarValues once every chunk is added."""

    def __init__(self, names):
        self.names = list(names)
        self._held, self._n_held = [], 0
        self._far = None

    def add(self, X):
        if self._far is None:
            take = np.asarray(X[:SAMPLE_ROWS - self._n_held], np.float64)
            self._held.append(take)
            self._n_held += len(take)
            if self._n_held < SAMPLE_ROWS:
                return
            self._settle(f"the first {self._n_held:,} training rows")
            X = X[len(take):]
        self._far.add(X)

    def _settle(self, rows):
        held = np.concatenate(self._held) if self._held else np.zeros((0, len(self.names)))
        self._held = None
        self._far = _from_median(held, self.names, rows)
        _add_in_blocks(self._far, held)

    def result(self):
        if self._far is None:       # fewer rows than SAMPLE_ROWS: the median of them all
            self._settle(_EVERY_ROW)
        return self._far
