"""The data every system trains on and predicts for."""

import numpy as np

FEATURES = ("u-g", "g-r", "r-i", "i-z", "r")


def _synthetic_catalog(n, seed=0):
    """Five colour-like features and a learnable non-linear binary rule (label 1 ~ 'star')."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5), dtype=np.float32)
    logit = (1.5 * X[:, 0] - X[:, 1] + 0.8 * X[:, 2] * X[:, 3] + 0.5 * np.sin(2 * X[:, 4])
             + 0.3 * rng.standard_normal(n, dtype=np.float32))
    y = (logit > 0).astype(np.int64)
    return X, y


def make_data(n, seed=0):
    """(X float32 (n, 5), y int64 (n,), description): fastmlp's make_photometric_catalog
    (colours u-g g-r r-i i-z and the r magnitude, standardised; label 1 = quasar) when it is
    there, else a synthetic rule."""
    try:
        from ..data import Standardizer, make_photometric_catalog
        X, y = make_photometric_catalog(n, seed=seed, features=FEATURES)
        X = np.asarray(X, dtype=np.float64)
        X = np.ascontiguousarray(Standardizer().fit(X).transform(X), dtype=np.float32)
        y = np.asarray(y).astype(np.int64).reshape(-1)
        if X.shape == (n, 5) and y.shape == (n,) and set(np.unique(y)) <= {0, 1}:
            return X, y, ("fastmlp.make_photometric_catalog(features=" +
                          " ".join(FEATURES) + "), standardised; label 1 = quasar")
    except Exception:
        pass
    X, y = _synthetic_catalog(n, seed)
    return X, y, ("synthetic: 5 N(0,1) features, label = "
                  "1.5x0 - x1 + 0.8x2x3 + 0.5sin(2x4) + noise > 0")
