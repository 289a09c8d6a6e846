"""Photometric catalogs: a synthetic, physically shaped default and a loader for user files.

``make_photometric_catalog(n)`` draws stars, quasars (and optionally galaxies) in SDSS colour
space; ``load_catalog(path, features=..., label=...)`` reads a CSV, ``.npy``, FITS table
(astropy) or Parquet (pyarrow) file.  Both return a :class:`Catalog` (``X, y = catalog``
unpacks it).  :class:`Standardizer` holds the feature mean / std that are stored with a model
(``catalog.standardize()``; ``Standardizer.partial_fit`` merges chunks for out-of-core data).

Missing values: SDSS writes -9999 (and NaN, empty fields, FITS/Parquet nulls) for a missing
measurement.  ``load_catalog(missing=...)`` chooses what happens to a row whose features (or
the magnitudes a colour comes from) or label are missing:

* ``"error"`` (default): a ValueError counting the rows per column;
* ``"drop"``: such rows are dropped (``drop_invalid=True`` is the same), counted in
  ``meta["n_dropped"]`` and ``meta["dropped_by_column"]``;
* ``"impute-median"``: a missing value in a source column is replaced by that column's
  median over the valid rows (``meta["imputed"]`` = counts, ``meta["impute_values"]`` =
  medians); rows with a missing label are still dropped (a label cannot be imputed).
"""

import csv
import gzip
import io
import math
import os
from pathlib import Path

import numpy as np

from ._validate import check_float_dtype

__all__ = ["Catalog", "Standardizer", "make_photometric_catalog", "load_catalog",
           "COLOR_FEATURES", "MISSING_VALUES", "MISSING_POLICIES", "catalog_format",
           "catalog_columns"]

COLOR_FEATURES = ("u-g", "g-r", "r-i", "i-z")
#: sentinel values that SDSS writes for a missing measurement (NaN and inf are missing too)
MISSING_VALUES = (-9999.0,)
_QUASAR_NAMES = ("qso", "quasar", "quasars")
#: what load_catalog(missing=...) accepts
MISSING_POLICIES = ("error", "drop", "impute-median")
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


class Catalog:
    """Features, labels and their names.

    Attributes: ``X`` (n, n_features) float array; ``y`` (n,) int64 class labels (float
    targets for a regression label, ``None`` for an unlabelled catalog); ``feature_names``;
    ``class_names`` (``class_names[k]`` names label k; ``None`` for regression);
    ``positive`` (the label of the positive class, e.g. the quasars, or ``None``);
    ``extra`` (dict of further per-row columns, e.g. ``"r"`` magnitude, ``"redshift"``);
    ``meta`` (dict: source, label mapping, rows dropped, ...).

    ``X, y = catalog`` unpacks it; ``len(catalog)`` is the number of rows.
    """

    def __init__(self, X, y, feature_names, class_names=None, positive=None, extra=None,
                 meta=None):
        self.X = X
        self.y = y
        self.feature_names = tuple(feature_names)
        self.class_names = None if class_names is None else tuple(class_names)
        self.positive = positive
        self.extra = dict(extra or {})
        self.meta = dict(meta or {})

    def __iter__(self):
        yield self.X
        yield self.y

    def __len__(self):
        return int(self.X.shape[0])

    @property
    def n_features(self):
        return int(self.X.shape[1])

    @property
    def n_classes(self):
        return None if self.class_names is None else len(self.class_names)

    @property
    def positive_name(self):
        return None if self.positive is None else self.class_names[self.positive]

    def class_counts(self):
        """{class name: count}."""
        if self.class_names is None or self.y is None:
            return {}
        c = np.bincount(self.y, minlength=len(self.class_names))
        return {n: int(k) for n, k in zip(self.class_names, c)}

    def take(self, indices):
        """A new Catalog holding the rows ``indices`` (an index array or boolean mask)."""
        idx = np.asarray(indices)
        return Catalog(self.X[idx], None if self.y is None else self.y[idx],
                       self.feature_names, self.class_names, self.positive,
                       {k: v[idx] for k, v in self.extra.items()}, self.meta)

    def standardize(self, standardizer=None):
        """(new Catalog with standardised X, the Standardizer).  Without ``standardizer`` the
        statistics are this catalog's (fit on the training rows, then pass the same
        Standardizer to standardise a test or prediction catalog)."""
        st = Standardizer().fit(self.X) if standardizer is None else standardizer
        return Catalog(st.transform(self.X), self.y, self.feature_names, self.class_names,
                       self.positive, self.extra, self.meta), st

    def __repr__(self):
        counts = self.class_counts()
        cls = ", ".join(f"{k}={v}" for k, v in counts.items()) if counts else \
            ("regression target" if self.y is not None else "unlabelled")
        pos = f", positive={self.positive_name!r}" if self.positive is not None else ""
        return (f"Catalog(n={len(self)}, features={list(self.feature_names)}, {cls}{pos}, "
                f"dtype={self.X.dtype})")


class Standardizer:
    """Feature standardisation ``(X - mean) / std`` with float64 statistics.

    ``fit(X)`` computes them in one go; ``partial_fit(X_chunk)`` merges chunk after chunk
    (Chan et al.'s parallel form of Welford's update, exact to rounding for any chunking),
    so a catalog larger than memory is standardised from a streaming pass.  A zero std
    (a constant column) becomes 1.  ``mean`` and ``std`` (the population std, ddof=0, like
    ``X.std(axis=0)``) are what ``fastmlp.io.save_model(standardization=(mean, std))`` stores.
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

    @classmethod
    def from_model(cls, model):
        """The standardisation a loaded model carries (``fastmlp.io.load``), or None."""
        st = getattr(model, "standardization", None)
        return None if st is None else cls(*st)

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
        c2 = ((X - cm) ** 2).sum(axis=0, dtype=np.float64)
        if self._mean is None:
            self._mean, self._m2, self.n = cm, c2, m
            return self
        if cm.shape != self._mean.shape:
            raise ValueError(f"chunk has {cm.size} features, earlier chunks {self._mean.size}")
        n = self.n + m
        d = cm - self._mean
        self._mean = self._mean + d * (m / n)
        self._m2 = self._m2 + c2 + d * d * (self.n * m / n)
        self.n = n
        return self

    def fit(self, X):
        self.n, self._mean, self._m2, self._fixed_std = 0, None, None, None
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
        return ((X - self.mean) / self.std).astype(dt, copy=False)

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


# =======================================================================================
# synthetic catalog
#
# Effective wavelengths (Angstrom), 5-sigma point-source depths and asinh softening of the
# SDSS ugriz system (Fukugita et al. 1996; Lupton, Gunn & Szalay 1999; Abazajian et al.).
_BANDS = "ugriz"
_LAM = np.array([3551.0, 4686.0, 6166.0, 7480.0, 8932.0])
_BAND_SIGMA = np.array([280.0, 560.0, 560.0, 590.0, 500.0])   # Gaussian band-pass width
_M5 = np.array([22.15, 23.13, 22.70, 22.20, 20.71])            # 5-sigma depths
_SOFT_B = np.array([1.4e-10, 0.9e-10, 1.2e-10, 1.8e-10, 7.4e-10])
_CAL_FLOOR = np.array([0.02, 0.01, 0.01, 0.01, 0.015])       # calibration error (mag)

# The stellar locus (main sequence, blue to red) as knots in (g-r, u-g, r-i, i-z), after
# Covey et al. (2007) / Ivezic et al. (2008): A/BHB stars with a Balmer jump, the F turnoff
# (bluest u-g), G and K stars reddening in u-g, then M dwarfs where g-r saturates near 1.45
# while r-i and i-z keep growing.
_LOCUS = np.array([
    # g-r    u-g    r-i    i-z
    [-0.25, 1.05, -0.12, -0.10],   # A / blue horizontal branch
    [0.00, 0.95, -0.02, -0.05],
    [0.25, 0.85, 0.08, 0.00],      # F turnoff (halo)
    [0.45, 1.15, 0.15, 0.04],      # G
    [0.65, 1.55, 0.22, 0.09],
    [0.90, 2.05, 0.34, 0.17],      # K
    [1.20, 2.45, 0.55, 0.28],
    [1.38, 2.60, 0.88, 0.45],      # M0-M2
    [1.45, 2.65, 1.30, 0.66],
    [1.50, 2.72, 1.85, 0.98],      # late M
])
# quasar emission lines: rest wavelength, rest-frame equivalent width (Angstrom)
_QSO_LINES = np.array([[1216.0, 90.0], [1549.0, 35.0], [1909.0, 22.0], [2798.0, 35.0],
                       [4861.0, 25.0], [6563.0, 200.0]])


def _norm_cdf(x):
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): vectorised, no scipy dependency
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                       + t * 1.061405429))))
    return s * (1.0 - p * np.exp(-a * a))


def _band_weight(lam_obs):
    """(m, 5) fraction of each band's Gaussian pass-band at observed wavelengths lam_obs."""
    return np.exp(-0.5 * ((lam_obs[:, None] - _LAM) / _BAND_SIGMA) ** 2)


def _r_magnitudes(rng, n, slope, r_bright, r_faint):
    """r drawn from counts dN/dm ~ 10**(slope m) between r_bright and r_faint."""
    lo, hi = 10.0 ** (slope * r_bright), 10.0 ** (slope * r_faint)
    return np.log10(lo + rng.random(n) * (hi - lo)) / slope


def _colours_to_mags(r, col):
    """ugriz magnitudes (n, 5) from r and colours (n, 4) = u-g, g-r, r-i, i-z."""
    g = r + col[:, 1]
    u = g + col[:, 0]
    i = r - col[:, 2]
    z = i - col[:, 3]
    return np.stack([u, g, r, i, z], axis=1)


def _stars(rng, n, white_dwarf_fraction, width):
    n_wd = int(round(n * white_dwarf_fraction))
    n_ms = n - n_wd
    k = len(_LOCUS) - 1
    # position t in [0, k] along the locus: a halo turnoff peak, a disk K/M dwarf peak and a
    # thin spread over the whole sequence
    comp = rng.random(n_ms)
    t = np.where(comp < 0.50, rng.normal(2.4, 0.8, n_ms),
                 np.where(comp < 0.85, rng.normal(7.3, 1.0, n_ms), rng.uniform(0, k, n_ms)))
    t = np.clip(t, 0.0, k)
    j = np.minimum(t.astype(np.int64), k - 1)
    f = (t - j)[:, None]
    knots = (1 - f) * _LOCUS[j] + f * _LOCUS[j + 1]            # (g-r, u-g, r-i, i-z)
    col = knots[:, [1, 0, 2, 3]].copy()
    # intrinsic width: metallicity spreads u-g most
    col += rng.normal(0.0, 1.0, (n_ms, 4)) * (width * np.array([2.5, 1.0, 1.0, 1.2]))
    # white dwarfs / hot subdwarfs: blue in every colour, overlapping the low-z quasars' UV
    # excess (they are stars, label 0)
    wd = np.column_stack([rng.normal(0.25, 0.20, n_wd), rng.normal(-0.20, 0.12, n_wd),
                          rng.normal(-0.15, 0.08, n_wd), rng.normal(-0.15, 0.10, n_wd)])
    return np.concatenate([col, wd]), rng.permutation(n)


def _quasars(rng, n):
    # redshifts: SDSS-like, peak near 1.5, tail to z ~ 5
    z = np.clip(0.2 + rng.gamma(2.5, 0.5, n), 0.1, 5.0)
    alpha = rng.normal(-0.5, 0.35, n)              # f_nu ~ nu**alpha
    # continuum: m_b = -2.5 alpha log10(nu_b) + const,
    # so m_b1 - m_b2 = 2.5 alpha log10(lam_b1 / lam_b2)
    mag = 2.5 * alpha[:, None] * np.log10(_LAM / _LAM[2])
    # emission lines brighten the band they fall in (strength varies object to object)
    for lam0, ew in _QSO_LINES:
        lam_obs = lam0 * (1.0 + z)
        w = _band_weight(lam_obs)
        strength = ew * (1.0 + z) * rng.lognormal(0.0, 0.4, n)
        mag -= 2.5 * np.log10(1.0 + w * strength[:, None] / (2.5 * _BAND_SIGMA))
    # Lyman-alpha forest: flux blueward of Lya(1+z) absorbed, tau_eff ~ 0.0018 (1+z)^3.92;
    # enters u at z ~ 2.2 and reddens u-g so that z ~ 2.5-3.5 quasars cross the stellar locus
    tau = 0.0018 * (1.0 + z) ** 3.92
    blue = _norm_cdf((1216.0 * (1.0 + z)[:, None] - _LAM) / _BAND_SIGMA)
    mag += 1.0857 * tau[:, None] * blue
    # Lyman limit systems: below 912(1+z) most flux is gone (u drop-outs at z > 3)
    lls = _norm_cdf((912.0 * (1.0 + z)[:, None] - _LAM) / _BAND_SIGMA)
    mag += lls * rng.uniform(0.5, 2.5, n)[:, None]
    # dust reddening of a minority, E(B-V) exponential, k(lambda) ~ lambda^-1 (rest frame)
    ebv = np.where(rng.random(n) < 0.10, rng.exponential(0.05, n), 0.0)
    mag += ebv[:, None] * 4.0 * (5500.0 * (1.0 + z)[:, None] / _LAM)
    col = mag[:, :-1] - mag[:, 1:]
    return col, z


def _galaxies(rng, n):
    z = np.clip(rng.gamma(3.0, 0.14, n), 0.01, 1.2)
    red = rng.random(n) < 0.6
    zc = np.clip(z, 0.0, 0.4)
    # red sequence: the 4000 A break moves through g-r (z < 0.4) and then r-i
    red_col = np.column_stack([
        1.80 + 0.8 * zc,
        0.75 + 2.0 * zc,
        0.40 + 0.3 * np.clip(z, 0, 0.3) + 1.5 * np.clip(z - 0.3, 0, 0.4),
        0.30 + 0.2 * z + 1.0 * np.clip(z - 0.6, 0, 0.4)])
    blue_col = np.column_stack([1.10 + 0.4 * z, 0.45 + 0.8 * np.clip(z, 0, 0.5),
                                0.30 + 0.5 * z, 0.15 + 0.3 * z])
    col = np.where(red[:, None], red_col, blue_col)
    col += rng.normal(0.0, 1.0, (n, 4)) * np.array([0.25, 0.10, 0.07, 0.07])
    return col, z


def make_photometric_catalog(n, quasar_fraction=0.1, seed=0, galaxy_fraction=0.0,
                             noise=True, dtype="float32", r_limit=22.5, r_bright=14.0,
                             white_dwarf_fraction=0.01, locus_width=0.04,
                             features=COLOR_FEATURES):
    """A synthetic but physically shaped star / quasar (/ galaxy) catalog in SDSS colours.

    - Stars (label 0) lie along the stellar locus in (u-g, g-r, r-i, i-z): from A stars
      through the F turnoff, G and K stars to M dwarfs (piecewise-linear through knots after
      Covey et al. 2007), with a halo-turnoff and an M-dwarf peak, intrinsic width
      ``locus_width`` (more in u-g) and a ``white_dwarf_fraction`` of blue white dwarfs.
    - Quasars (label 1) have a power-law continuum f_nu ~ nu^alpha (alpha ~ N(-0.5, 0.35)),
      hence UV excess (u-g ~ 0-0.6) at z < 2.2, emission lines (Lya, CIV, CIII], MgII, Hb,
      Ha) moving through the bands with redshift, Lyman-alpha forest and Lyman-limit
      absorption that redden u-g at z > 2.2 into the stellar locus (the hard part), and dust
      reddening of some.  ``extra["redshift"]`` holds z.
    - Galaxies (label 2, only when ``galaxy_fraction > 0``): red sequence (4000 A break moving
      through g-r then r-i with z) and blue cloud.
    - r magnitudes follow rising number counts up to ``r_limit`` (22.5); fluxes get Gaussian
      noise set by SDSS's 5-sigma depths (u 22.15, g 23.13, r 22.70, i 22.20, z 20.71) and are
      turned into asinh magnitudes, so errors grow toward the faint limit, u noisiest for most
      objects; plus a calibration floor.  ``noise=False`` gives the noiseless colours.

    Exactly ``round(n * quasar_fraction)`` quasars and ``round(n * galaxy_fraction)``
    galaxies, rows shuffled; the same ``seed`` gives the same catalog bit for bit.
    ``features``: names among u-g g-r r-i i-z u g r i z (default the four colours).
    ``extra``: observed magnitudes ``u g r i z`` and ``redshift`` (0 for stars).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    for name, v in (("quasar_fraction", quasar_fraction), ("galaxy_fraction", galaxy_fraction),
                    ("white_dwarf_fraction", white_dwarf_fraction)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or \
                not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be a number in [0, 1], got {v!r}")
    if quasar_fraction + galaxy_fraction > 1.0:
        raise ValueError(f"quasar_fraction + galaxy_fraction must be <= 1, got "
                         f"{quasar_fraction} + {galaxy_fraction}")
    if not (isinstance(r_limit, (int, float)) and isinstance(r_bright, (int, float))
            and r_bright < r_limit):
        raise ValueError(f"need r_bright < r_limit, got r_bright={r_bright!r}, "
                         f"r_limit={r_limit!r}")
    if not (isinstance(locus_width, (int, float)) and locus_width >= 0):
        raise ValueError(f"locus_width must be a number >= 0, got {locus_width!r}")
    dt = check_float_dtype(dtype)
    if isinstance(features, str):
        features = [f.strip() for f in features.split(",") if f.strip()]
    valid = COLOR_FEATURES + tuple(_BANDS)
    bad = [f for f in features if f not in valid]
    if bad or not features:
        raise ValueError(f"features must be names among {list(valid)}, got {list(features)!r}")

    # objects and photometric noise from independent streams: noise=False gives the same
    # objects without the noise
    rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    n_q = int(round(n * quasar_fraction))
    n_g = int(round(n * galaxy_fraction))
    n_s = n - n_q - n_g
    s_col, s_perm = _stars(rng, n_s, white_dwarf_fraction, locus_width)
    s_col = s_col[s_perm]
    q_col, q_z = _quasars(rng, n_q)
    g_col, g_z = _galaxies(rng, n_g)
    col = np.concatenate([s_col, q_col, g_col])
    y = np.concatenate([np.zeros(n_s, np.int64), np.ones(n_q, np.int64),
                        np.full(n_g, 2, np.int64)])
    zz = np.concatenate([np.zeros(n_s), q_z, g_z])
    r = np.concatenate([_r_magnitudes(rng, n_s, 0.15, r_bright, r_limit),
                        _r_magnitudes(rng, n_q, 0.30, r_bright, r_limit),
                        _r_magnitudes(rng, n_g, 0.35, r_bright, r_limit)])
    mags = _colours_to_mags(r, col)
    perm = rng.permutation(n)
    if noise:
        # flux in units of the AB zero point, Gaussian sky + calibration noise, asinh mags
        flux = 10.0 ** (-0.4 * mags)
        sigma_f = 10.0 ** (-0.4 * _M5) / 5.0
        flux = flux + noise_rng.normal(0.0, 1.0, flux.shape) * sigma_f
        flux *= 1.0 + noise_rng.normal(0.0, 1.0, flux.shape) * (_CAL_FLOOR / 1.0857)
        b = _SOFT_B
        mags = -1.0857362047581294 * (np.arcsinh(flux / (2.0 * b)) + np.log(b))
    mags, y, zz = mags[perm], y[perm], zz[perm]
    columns = {"u-g": mags[:, 0] - mags[:, 1], "g-r": mags[:, 1] - mags[:, 2],
               "r-i": mags[:, 2] - mags[:, 3], "i-z": mags[:, 3] - mags[:, 4]}
    columns.update({b: mags[:, k] for k, b in enumerate(_BANDS)})
    X = np.empty((n, len(features)), dtype=dt)
    for k, f in enumerate(features):
        X[:, k] = columns[f]
    class_names = ("star", "quasar", "galaxy") if n_g > 0 or galaxy_fraction > 0 else \
        ("star", "quasar")
    extra = {b: mags[:, k].astype(dt) for k, b in enumerate(_BANDS)}
    extra["redshift"] = zz.astype(dt)
    meta = {"source": "make_photometric_catalog", "seed": seed, "n": n,
            "quasar_fraction": quasar_fraction, "galaxy_fraction": galaxy_fraction,
            "noise": bool(noise), "r_limit": r_limit}
    return Catalog(X, y, features, class_names, positive=1, extra=extra, meta=meta)


# =======================================================================================
# loading user catalogs
def _open_text(path):
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, "r", encoding="utf-8-sig", newline="")


def _parse_feature_spec(features):
    """features -> list of names (a 'colors:ugriz[+r]' spec expands to colour names)."""
    if features is None:
        return None
    if isinstance(features, (str, int, np.integer)):
        features = [features]
    out = []
    for f in features:
        if isinstance(f, (int, np.integer)) and not isinstance(f, bool):
            out.append(str(int(f)))
            continue
        if not isinstance(f, str):
            raise ValueError(f"features must be column names (strings), column indices or "
                             f"'colors:<bands>', got {f!r}")
        for part in (p.strip() for p in f.split(",")):
            if not part:
                continue
            if part.lower().startswith(("colors:", "colours:")):
                spec = part.split(":", 1)[1]
                bands, _, plus = spec.partition("+")
                bands = bands.strip()
                if len(bands) < 2:
                    raise ValueError(f"features {part!r}: 'colors:' needs at least two band "
                                     "names, e.g. 'colors:ugriz' or 'colors:ugriz+r'")
                out += [f"{a}-{b}" for a, b in zip(bands[:-1], bands[1:])]
                out += [p.strip() for p in plus.split("+") if p.strip()]
            else:
                out.append(part)
    if not out:
        raise ValueError(f"features is empty: got {features!r}")
    if len(set(out)) != len(out):
        dup = sorted({f for f in out if out.count(f) > 1})
        raise ValueError(f"features lists {dup} more than once")
    return out


def _resolve(features, columns, path):
    """For each feature: ('col', name) or ('diff', a, b); clear error if unavailable."""
    plan, missing = [], []
    for f in features:
        if f in columns:
            plan.append(("col", f))
        elif "-" in f and all(p in columns for p in f.split("-", 1)):
            a, b = f.split("-", 1)
            plan.append(("diff", a, b))
        else:
            missing.append(f)
    if missing:
        hint = ""
        if any("-" in m for m in missing):
            hint = " (a colour 'a-b' needs a column 'a-b' or magnitude columns 'a' and 'b')"
        raise ValueError(f"{path}: feature column(s) {missing} not found{hint}; available "
                         f"columns: {list(columns)}")
    return plan


def _load_csv(path, choose):
    try:
        fh = _open_text(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot open: {exc}") from None
    with fh:
        reader = csv.reader(fh)
        header = None
        try:
            for row in reader:
                if not row or row[0].lstrip().startswith("#"):
                    continue
                header = [h.strip() for h in row]
                break
            if header is None:
                raise ValueError(f"{path}: empty file, expected a CSV header row and data rows")
            if len(set(header)) != len(header):
                dup = sorted({h for h in header if header.count(h) > 1})
                raise ValueError(f"{path}: duplicate column names {dup} in the CSV header")
            need = choose(header)
            idx = [header.index(c) for c in need]
            cols = [[] for _ in need]
            width = len(header)
            for row in reader:
                if len(row) != width:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue  # blank line
                    raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, "
                                     f"the header has {width} (ragged or malformed CSV)")
                for c, k in zip(cols, idx):
                    c.append(row[k])
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a UTF-8 text CSV file ({exc.reason}); expected a "
                             "CSV with a header row, or a .npy file") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: malformed CSV near line {reader.line_num}: {exc}") \
                from None
    return header, {n: np.asarray(c, dtype=object) for n, c in zip(need, cols)}


def catalog_format(path, format=None):
    """"csv" | "npy" | "fits" | "parquet" from ``format`` or the file name's suffix
    (.npy; .fits .fit .fts, optionally .gz; .parquet .pq .parq; anything else is CSV)."""
    if format is not None:
        f = str(format).lower()
        if f not in ("csv", "npy", "fits", "parquet"):
            raise ValueError(f"format must be 'csv', 'npy', 'fits' or 'parquet', got "
                             f"{format!r}")
        return f
    name = str(path).lower()
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(_FITS_SUFFIXES):
        return "fits"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    return "csv"


def _optional(module, fmt, path, package):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"reading {fmt} catalogs ({path}) needs the optional dependency "
                          f"{package}: pip install 'fastmlp[catalogs]' (or pip install "
                          f"{package})") from None


def _fits_table_index(hdul, path, hdu=None):
    fits = _optional("astropy.io.fits", "FITS", path, "astropy")
    tables = [k for k, h in enumerate(hdul)
              if isinstance(h, (fits.BinTableHDU, fits.TableHDU))]
    if hdu is not None:
        try:
            h = hdul[hdu]
        except (KeyError, IndexError):
            raise ValueError(f"{path}: no HDU {hdu!r}; table HDUs: {tables}") from None
        if not isinstance(h, (fits.BinTableHDU, fits.TableHDU)):
            raise ValueError(f"{path}: HDU {hdu!r} is not a table; table HDUs: {tables}")
        return hdul.index_of(hdu) if not isinstance(hdu, int) else hdu
    if not tables:
        raise ValueError(f"{path}: no table extension in this FITS file (expected a binary "
                         "or ASCII table HDU)")
    return tables[0]


def _fits_column(hdu_data, col, name, path):
    """One FITS table column as a 1-D array; TNULL integers and blank strings -> missing."""
    a = np.asarray(hdu_data[name])
    if a.ndim != 1:
        raise ValueError(f"{path}: FITS column {name!r} is a vector column (shape "
                         f"{a.shape[1:]} per row); expected one value per row")
    if a.dtype.kind == "S":
        a = np.char.decode(a, "ascii", errors="replace").astype(object)
    elif a.dtype.kind in "iu":
        null = getattr(col, "null", None)
        if null is not None and not isinstance(null, str):
            f = a.astype(np.float64)
            f[a == null] = np.nan
            return f
    if a.dtype.byteorder not in ("=", "|"):
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _load_fits(path, choose, hdu=None):
    fits = _optional("astropy.io.fits", "FITS", path, "astropy")
    try:
        hdul = fits.open(path, memmap=not str(path).lower().endswith(".gz"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable FITS file ({exc})") from None
    with hdul:
        k = _fits_table_index(hdul, path, hdu)
        h = hdul[k]
        names = list(h.columns.names)
        need = choose(names)
        cols = {c.name: c for c in h.columns}
        data = {n: _fits_column(h.data, cols[n], n, path) for n in need} if h.data is not None \
            else {n: np.empty(0) for n in need}
    return names, data


def _arrow_to_numpy(col):
    """A pyarrow (Chunked)Array -> NumPy: nulls become NaN (numbers) or "" (strings)."""
    import pyarrow as pa
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        if col.null_count:
            import pyarrow.compute as pc
            col = pc.fill_null(col.cast(pa.float64()), float("nan"))
        return col.to_numpy()
    a = col.to_numpy(zero_copy_only=False)
    if a.dtype == object:
        a = np.asarray(["" if v is None else (v.decode() if isinstance(v, bytes) else v)
                        for v in a], dtype=object)
    return a


def _load_parquet(path, choose):
    pq = _optional("pyarrow.parquet", "Parquet", path, "pyarrow")
    try:
        f = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
    names = list(f.schema_arrow.names)
    need = choose(names)
    table = f.read(columns=need)
    return names, {n: _arrow_to_numpy(table.column(n)) for n in need}


def catalog_columns(path, format=None):
    """The column names of a catalog file (header of a CSV, fields of a structured .npy,
    columns of a FITS table or Parquet file)."""
    path = Path(os.fspath(path))
    fmt = catalog_format(path, format)
    names = []

    def grab(cols):
        names.extend(cols)
        return []
    if fmt == "npy":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return list(arr.dtype.names) if arr.dtype.names else \
            [str(k) for k in range(arr.shape[1])]
    if fmt == "parquet":
        pq = _optional("pyarrow.parquet", "Parquet", path, "pyarrow")
        return list(pq.ParquetFile(path).schema_arrow.names)
    if fmt == "fits":
        _load_fits(path, grab)
        return names
    with _open_text(path) as fh:
        for row in csv.reader(fh):
            if row and not row[0].lstrip().startswith("#"):
                return [h.strip() for h in row]
    return []


def _to_float(values, name, path):
    """Strings -> float64; empty fields become NaN (missing); a clear error otherwise."""
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    v = np.asarray(["" if s is None else str(s).strip() for s in values], dtype=object)
    v[v == ""] = "nan"
    try:
        return v.astype(np.float64)
    except ValueError:
        bad = []
        for k, s in enumerate(v):
            try:
                float(s)
            except ValueError:
                bad.append(k)
        raise ValueError(f"{path}: column {name!r} must be numeric but has {len(bad)} "
                         f"non-numeric values (first {v[bad[0]]!r} in data row {bad[0] + 1})"
                         ) from None


def _load_npy(path):
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc}); expected a 2-D numeric "
                         "array or a structured array with named fields") from None
    if isinstance(arr, np.lib.npyio.NpzFile):  # pragma: no cover - .npz renamed
        arr.close()
        raise ValueError(f"{path}: an .npz archive, expected a single .npy array")
    if arr.dtype.names:
        if arr.ndim != 1:
            arr = arr.reshape(-1)
        return list(arr.dtype.names), {n: arr[n] for n in arr.dtype.names}
    if arr.ndim != 2:
        raise ValueError(f"{path}: a plain .npy catalog must be a 2-D array (rows, columns), "
                         f"got shape {arr.shape}; or use a structured array with named fields")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: a plain .npy catalog must be numeric, got dtype {arr.dtype}")
    names = [str(k) for k in range(arr.shape[1])]
    return names, {n: arr[:, k] for k, n in enumerate(names)}


def _labels_from(raw, name, path, class_names):
    """-> (y int64 or float, class_names or None, mapping description, invalid mask)."""
    if raw.dtype.kind in "OUS":
        s = np.asarray([str(v).strip() for v in raw], dtype=object)
        try:  # numeric labels written as text
            num = _to_float(s, name, path)
        except ValueError:
            num = None
        if num is None:
            invalid = (s == "") | np.isin(s, ["nan", "NaN", "NULL", "null", "NA", "N/A"])
            names = sorted(set(s[~invalid].tolist()))
            lookup = {c: k for k, c in enumerate(names)}
            y = np.asarray([lookup.get(v, -1) for v in s], dtype=np.int64)
            if class_names is not None:
                raise ValueError(f"class_names can only name numeric labels; column {name!r} "
                                 f"already holds the names {names}")
            return y, names, {c: k for c, k in lookup.items()}, invalid
        raw = num
    raw = raw.astype(np.float64)
    invalid = ~np.isfinite(raw) | np.isin(raw, MISSING_VALUES)
    ok = raw[~invalid]
    if ok.size and np.all(ok == np.round(ok)):
        if ok.size and ok.min() < 0:   # e.g. -1 / +1 labels: map in sorted order
            vals = np.unique(ok)
            y = np.full(raw.shape, -1, np.int64)
            y[~invalid] = np.searchsorted(vals, ok)
            names = [str(int(v)) for v in vals]
            if class_names is not None:
                names = _check_class_names(class_names, len(names))
            return y, names, {str(int(v)): k for k, v in enumerate(vals)}, invalid
        y = np.full(raw.shape, -1, np.int64)
        y[~invalid] = ok.astype(np.int64)
        n_cls = max(int(ok.max()) + 1 if ok.size else 0, 2)
        names = [str(k) for k in range(n_cls)]
        if class_names is not None:
            names = _check_class_names(class_names, n_cls)
        return y, names, None, invalid
    if class_names is not None:
        raise ValueError(f"label column {name!r} holds non-integer values (a regression "
                         "target), class_names does not apply")
    return raw, None, None, invalid


def _check_class_names(class_names, n_needed):
    if isinstance(class_names, str):
        class_names = [c.strip() for c in class_names.split(",")]
    names = [str(c) for c in class_names]
    if len(names) < n_needed or len(set(names)) != len(names):
        raise ValueError(f"class_names must be {n_needed} distinct names (labels 0.."
                         f"{n_needed - 1}), got {names}")
    return names


def _resolve_positive(positive, class_names, label):
    if class_names is None:
        if positive is not None:
            raise ValueError(f"positive={positive!r} given but label {label!r} is a "
                             "regression target, not classes")
        return None
    if positive is None:
        for k, c in enumerate(class_names):
            if c.lower() in _QUASAR_NAMES:
                return k
        return None
    if isinstance(positive, str):
        p = positive.strip()
        if p in class_names:
            return class_names.index(p)
        low = [c.lower() for c in class_names]
        if p.lower() in low and low.count(p.lower()) == 1:
            return low.index(p.lower())
        try:
            positive = int(p)
        except ValueError:
            raise ValueError(f"positive={positive!r} is not one of the classes "
                             f"{list(class_names)}") from None
    if isinstance(positive, (bool, np.bool_)) or not isinstance(positive, (int, np.integer)) \
            or not 0 <= positive < len(class_names):
        raise ValueError(f"positive={positive!r} must be a class name in {list(class_names)} "
                         f"or a label value 0..{len(class_names) - 1}")
    return int(positive)


def load_catalog(path, features=None, label=None, positive=None, drop_invalid=False,
                 dtype="float32", class_names=None, extra=None, missing=None, format=None,
                 hdu=None):
    """Read a catalog from a CSV file (header row; ``.csv``, ``.csv.gz``, any other suffix),
    a NumPy ``.npy`` file (a structured array with named fields, or a plain 2-D numeric
    array whose columns are named "0", "1", ...), a FITS table (``.fits``/``.fit``/``.fts``,
    optionally gzipped; the first table HDU or ``hdu=``; needs astropy) or a Parquet file
    (``.parquet``/``.pq``; needs pyarrow).  ``format`` overrides the suffix.  Only the columns
    needed are read from FITS and Parquet files.  Without astropy / pyarrow an ImportError
    names the ``fastmlp[catalogs]`` extra.

    features: column names (a list, or one comma-separated string), integer column indices
      for plain arrays, or ``"colors:ugriz"`` = u-g, g-r, r-i, i-z computed from magnitude
      columns u g r i z (``"colors:ugriz+r"`` appends r).  Any ``"a-b"`` that is not a
      column is computed from columns a and b.  Default: every column except the label.
    label: the label column (name or index).  Default: a column named "label" or "class" if
      there is one.  ``label=False``: no labels (``y`` is None).  String labels (e.g. GALAXY /
      QSO / STAR) become 0..C-1 in sorted order (``class_names`` holds the names,
      ``meta["label_mapping"]`` the mapping); integer labels >= 0 are kept (class names
      "0", "1", ... unless ``class_names`` names them); non-integer numbers are a regression
      target (float y, ``class_names`` None).
    positive: the positive class (the quasars) as a class name (case-insensitive) or label
      value; stored as ``Catalog.positive``, a label.  Default: a class called QSO / quasar
      if there is one, else None.
    missing: what to do with rows whose features (or the magnitude columns colours come
      from) hold NaN, inf, SDSS's -9999 or a null, or whose label is missing:
      ``"error"`` (default) raises a ValueError naming the count and the columns;
      ``"drop"`` drops them (counted in ``meta["n_dropped"]``); ``"impute-median"``
      replaces missing feature values by their column's median (``meta["imputed"]``,
      ``meta["impute_values"]``) and drops rows without a label.
    drop_invalid: ``True`` is ``missing="drop"`` (kept for compatibility).
    extra: further column names to carry along in ``Catalog.extra`` (e.g. ["r", "redshift"]).

    Raises FileNotFoundError for a missing file and ValueError (naming the path and column)
    for an unreadable or malformed file, a missing column (the available ones are listed),
    non-numeric feature values, or no data rows.
    """
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"catalog file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, expected a .csv, .npy, FITS or Parquet "
                         "catalog file")
    if missing is None:
        missing = "drop" if drop_invalid else "error"
    elif missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {list(MISSING_POLICIES)}, got {missing!r}")
    elif drop_invalid and missing != "drop":
        raise ValueError(f"drop_invalid=True contradicts missing={missing!r}; pass one of them")
    fmt = catalog_format(path, format)
    dt = check_float_dtype(dtype)
    feats = _parse_feature_spec(features)
    if label is not None and label is not False:
        label = str(int(label)) if isinstance(label, (int, np.integer)) and \
            not isinstance(label, bool) else str(label).strip()
    extra = [] if extra is None else ([e.strip() for e in extra.split(",")]
                                      if isinstance(extra, str) else [str(e) for e in extra])
    plan = {}

    def choose(columns):
        """Decide the label, the features and the source columns from the column names."""
        lab = label
        if lab is None:
            lab = next((c for c in columns if c.lower() in ("label", "class")), None)
            if lab is None and feats is None:
                raise ValueError(f"{path}: no label column named 'label' or 'class'; pass "
                                 f"label=<column> (or label=False for an unlabelled "
                                 f"catalog); available columns: {list(columns)}")
        elif lab is not False and lab not in columns:
            raise ValueError(f"{path}: label column {lab!r} not found; available columns: "
                             f"{list(columns)}")
        lab = None if lab is False else lab
        fs = feats if feats is not None else [c for c in columns if c != lab]
        if not fs:
            raise ValueError(f"{path}: no feature columns left besides the label {lab!r}")
        if lab is not None and lab in fs:
            raise ValueError(f"{path}: the label column {lab!r} is also listed as a feature")
        steps = _resolve(fs, columns, path)
        for e in extra:
            if e not in columns:
                raise ValueError(f"{path}: extra column {e!r} not found; available columns: "
                                 f"{list(columns)}")
        src = []
        for s in steps:
            for c in s[1:]:
                if c not in src:
                    src.append(c)
        plan.update(label=lab, features=fs, steps=steps, sources=src)
        return list(dict.fromkeys(src + ([lab] if lab else []) + extra))

    if fmt == "npy":
        columns, data = _load_npy(path)
        choose(columns)
    elif fmt == "fits":
        columns, data = _load_fits(path, choose, hdu)
    elif fmt == "parquet":
        columns, data = _load_parquet(path, choose)
    else:
        columns, data = _load_csv(path, choose)
    n_rows = len(next(iter(data.values()))) if data else 0
    if n_rows == 0:
        raise ValueError(f"{path}: no data rows (expected a header and at least one row)")

    src = {c: _to_float(data[c], c, path) for c in plan["sources"]}
    # invalid: NaN / inf / -9999 in any source column of a feature
    bad_by_col = {c: ~np.isfinite(v) | np.isin(v, MISSING_VALUES) for c, v in src.items()}
    imputed, impute_values = {}, {}
    if missing == "impute-median":
        for c, m in bad_by_col.items():
            if m.any():
                if m.all():
                    raise ValueError(f"{path}: column {c!r} has no valid values to take a "
                                     "median of (missing='impute-median')")
                med = float(np.median(src[c][~m]))
                src[c] = np.where(m, med, src[c])
                imputed[c], impute_values[c] = int(m.sum()), med
        bad_by_col = {c: np.zeros(n_rows, dtype=bool) for c in src}
    invalid = np.zeros(n_rows, dtype=bool)
    for m in bad_by_col.values():
        invalid |= m
    X = np.empty((n_rows, len(plan["features"])), dtype=np.float64)
    for k, s in enumerate(plan["steps"]):
        X[:, k] = src[s[1]] if s[0] == "col" else src[s[1]] - src[s[2]]
    invalid |= ~np.isfinite(X).all(axis=1)

    y, names, mapping = None, None, None
    lab = plan["label"]
    if lab is not None:
        y, names, mapping, bad_label = _labels_from(np.asarray(data[lab]), lab, path,
                                                    class_names)
        if bad_label.any():
            bad_by_col[lab] = bad_label
            invalid |= bad_label
    elif class_names is not None:
        raise ValueError("class_names given but the catalog has no label column")
    n_invalid = int(invalid.sum())
    meta = {"source": str(path), "format": fmt, "n_rows_read": n_rows, "n_dropped": 0,
            "label": lab, "label_mapping": mapping, "missing": missing}
    if imputed:
        meta.update(imputed=imputed, impute_values=impute_values)
    if n_invalid:
        counts = {c: int(m.sum()) for c, m in bad_by_col.items() if m.any()}
        if missing == "error":
            raise ValueError(f"{path}: {n_invalid} of {n_rows} rows have missing or invalid "
                             f"values (NaN, inf or -9999) in columns {counts}; clean the file "
                             "or pass drop_invalid=True (--drop-invalid) to drop them, or "
                             "missing='impute-median' (--missing impute-median)")
        keep = ~invalid
        X, y = X[keep], None if y is None else y[keep]
        meta.update(n_dropped=n_invalid, dropped_by_column=counts)
        if X.shape[0] == 0:
            raise ValueError(f"{path}: all {n_rows} rows have missing or invalid values in "
                             f"columns {counts}; nothing left to use")
    else:
        keep = None
    ex = {}
    for e in extra:
        v = np.asarray(data[e])
        try:
            v = _to_float(v, e, path).astype(dt)
        except ValueError:
            pass
        ex[e] = v if keep is None else v[keep]
    if y is not None and names is None:
        y = y.astype(dt)
    pos = _resolve_positive(positive, names, lab)
    return Catalog(np.ascontiguousarray(X, dtype=dt), y, plan["features"], names, pos,
                   ex, meta)
