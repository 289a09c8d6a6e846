"""Feature values far from the bulk of the data a model learns from or was trained on.

fastmlp treats NaN, null and SDSS's -9999 as missing; other surveys write 99 or 1e30 for a
missing magnitude, which pass as numbers and give confident, meaningless predictions (a
magnitude of 99 puts a colour ~80 magnitudes off).  Such rows are counted, never changed:
``fastmlp train`` and ``predict`` print one warning line saying how many there are and how
to leave them out."""

import numpy as np

__all__ = ["FAR_STD", "FarValues", "far_from_model", "far_in_training"]

#: how many standard deviations from the centre of the training data a feature value must lie
#: to count as far off: real colours and magnitudes lie within ~10, a 99 sentinel hundreds away
FAR_STD = 50.0

#: rows the training data's median and MAD are estimated from (evenly spaced), and rows
#: counted at a time
SAMPLE_ROWS = 100_000

# the standard deviation of a normal distribution per unit of its median absolute deviation
_MAD_TO_STD = 1.4826


class FarValues:
    """Counts the rows with a feature more than FAR_STD ``scale`` from ``centre`` (one
    value per feature), chunk by chunk; ``reference`` says what the centre is of."""

    def __init__(self, centre, scale, names, reference):
        self.centre = np.asarray(centre, np.float64)
        self.scale = np.asarray(scale, np.float64)
        self.names, self.reference = list(names), reference
        self.rows = 0
        self.by_feature = np.zeros(len(self.names), np.int64)

    def add(self, X, valid=None):
        """Count the far rows of X (n, n_features); ``valid``: the rows to look at."""
        with np.errstate(invalid="ignore", over="ignore"):
            far = np.abs(X - self.centre) > FAR_STD * self.scale    # NaN: never far
        if valid is not None:
            far &= np.asarray(valid, bool)[:, None]
        self.rows += int(np.count_nonzero(far.any(axis=1)))
        self.by_feature += np.count_nonzero(far, axis=0)

    def warning(self):
        """One line for stderr, or None when no row was far off."""
        if not self.rows:
            return None
        where = ", ".join(f"{n}={int(k)}" for n, k in zip(self.names, self.by_feature) if k)
        rows = f"{self.rows} row has" if self.rows == 1 else f"{self.rows} rows have"
        return (f"warning: {rows} features more than {FAR_STD:g} standard "
                f"deviations from {self.reference} ({where}); a missing-value sentinel such "
                "as 99 or 1e30? Only NaN, null and -9999 count as missing: write NaN there, "
                "or leave the rows out with --where")


def far_from_model(model, names):
    """A counter against the training data's mean / std that ``model`` stores (None when it
    stores no standardisation)."""
    if model.standardization is None:
        return None
    mean, std = model.standardization
    return FarValues(mean, std, names, "the training mean")


def far_in_training(X, names):
    """A counter of the far rows of the training features X themselves, from the median and
    the median absolute deviation (a mean and std would be dragged by the sentinels); a
    feature whose MAD is 0 is not judged.  The median and MAD come from at most
    SAMPLE_ROWS evenly spaced rows and the rows are counted in blocks: a few MB of
    temporaries, not copies of a training matrix of millions of rows."""
    X = np.asarray(X)
    if len(X) == 0:
        return FarValues(np.zeros(X.shape[1]), np.full(X.shape[1], np.inf), names,
                         "the median of the training data")
    sample = np.asarray(X[::max(1, len(X) // SAMPLE_ROWS)], np.float64)
    centre = np.nanmedian(sample, axis=0)
    mad = np.nanmedian(np.abs(sample - centre), axis=0)
    scale = np.where(mad > 0, _MAD_TO_STD * mad, np.inf)
    far = FarValues(centre, scale, names, "the median of the training data")
    for a in range(0, len(X), SAMPLE_ROWS):
        far.add(np.asarray(X[a:a + SAMPLE_ROWS], np.float64))
    return far
