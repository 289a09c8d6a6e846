"""A synthetic, physically shaped photometric catalog: stars, quasars and galaxies in SDSS
colour space (the default data of ``fastmlp train`` and of the tests)."""

import math

import numpy as np

from .._validate import check_float_dtype, check_seed
from .catalog import COLOR_FEATURES, Catalog


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
    features = _check_catalog_args(n, quasar_fraction, galaxy_fraction, white_dwarf_fraction,
                                   r_limit, r_bright, locus_width, features)
    dt = check_float_dtype(dtype)
    check_seed(seed)

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
        mags = _observed(mags, noise_rng)
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


def _observed(mags, noise_rng):
    """Flux in units of the AB zero point with Gaussian sky + calibration noise, back to
    asinh magnitudes (errors grow toward the faint limit)."""
    flux = 10.0 ** (-0.4 * mags)
    sigma_f = 10.0 ** (-0.4 * _M5) / 5.0
    flux = flux + noise_rng.normal(0.0, 1.0, flux.shape) * sigma_f
    flux *= 1.0 + noise_rng.normal(0.0, 1.0, flux.shape) * (_CAL_FLOOR / 1.0857)
    b = _SOFT_B
    return -1.0857362047581294 * (np.arcsinh(flux / (2.0 * b)) + np.log(b))


def _check_catalog_args(n, quasar_fraction, galaxy_fraction, white_dwarf_fraction, r_limit,
                        r_bright, locus_width, features):
    """make_photometric_catalog's argument checks; returns the feature names as a list."""
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
    if isinstance(features, str):
        features = [f.strip() for f in features.split(",") if f.strip()]
    valid = COLOR_FEATURES + tuple(_BANDS)
    bad = [f for f in features if f not in valid]
    if bad or not features:
        raise ValueError(f"features must be names among {list(valid)}, got {list(features)!r}")
    return list(features)
