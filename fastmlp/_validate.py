"""Input checks at the API boundary: clear errors naming the argument, never a traceback
from deep inside a kernel."""

import argparse
import math
import numbers
import os
import sys
from collections.abc import Mapping

import numpy as np

from .codes import CENTERED_ALPHA_WHY, HYPER_RANGE_WHY, HYPER_RANGES


def plural(n, singular, many=None):
    """The word that agrees with the count n: ``singular`` for 1, else ``many`` (default
    singular + 's').  Also for verbs: plural(n, "has", "have")."""
    return singular if n == 1 else (singular + "s" if many is None else many)


def shown(x):
    """repr(x) as the user would write the value: a NumPy scalar as its Python value, since
    NumPy 2 writes np.float64(-1.0) / np.int64(0) / np.str_('a') in messages."""
    return repr(x.item() if isinstance(x, np.generic) else x)


def counted(n, noun, many=None, fmt=""):
    """'1 row', '2 rows', '1,000,000 rows' (fmt=","): a count and its noun in agreement,
    for the messages users read.  ``many`` is an irregular plural or a noun with its verb
    ("rows have" beside noun "row has")."""
    return f"{n:{fmt}} {plural(n, noun, many)}"


def check_float_dtype(dtype):
    """np.dtype float32 or float64, or a ValueError naming what was given."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


_FINITE_BLOCK = 1 << 16   # elements per block of the finiteness check


def all_finite(arr):
    """True if every value of the float array ``arr`` is finite, checked in blocks: no
    full-size boolean temporary (np.isfinite(X).all() on a 2M-row catalog allocates 10 MB
    that must be faulted in)."""
    flat = arr.reshape(-1)
    return all(np.isfinite(flat[s:s + _FINITE_BLOCK]).all()
               for s in range(0, flat.shape[0], _FINITE_BLOCK))


def plain_array(X, name):
    """np.asarray(X), except for two inputs that np.asarray gets wrong: a scipy sparse
    matrix (a 0-d object array to NumPy, refused as 'dtype object') is named, and a masked
    array's masked entries become NaN -- missing, as the model's contract treats NaN --
    instead of the values hidden under the mask, which np.asarray would silently use."""
    if hasattr(X, "tocsr") and hasattr(X, "nnz"):     # scipy.sparse (not imported here)
        raise TypeError(f"{name} is a scipy sparse matrix; pass a dense array "
                        f"({name}.toarray()); fastmlp.MLPClassifier / MLPRegressor take "
                        "sparse X")
    if isinstance(X, np.ma.MaskedArray) and X.dtype.kind in "biuf" \
            and np.ma.getmaskarray(X).any():
        return np.ma.asarray(X, dtype=np.float64).filled(np.nan)
    return np.asarray(X)


# check_array's remedy for callers that have no drop_invalid to offer (fit_batch, the lr
# sweep, a validation pair: drop_invalid covers fit's training rows only)
DROP_THEM_FIRST = "drop or clean those rows first"


def check_array(X, name, n_features=None, dtype=np.float64, allow_nonfinite=False,
                remedy="clean them or pass drop_invalid=True", column_text=None):
    """X as a C-contiguous 2-D array of ``dtype`` with ``n_features`` columns, all finite.
    dtype=None keeps a float32 or float64 array's own dtype (other numbers become float64):
    fit's raw rows, standardised in float64 block by block later, need no float64 copy.
    column_text: j -> "column j ('name')" to name the non-finite columns in the error (a
    model with feature names); None: their indices."""
    try:
        arr = plain_array(X, name)
    except TypeError:       # plain_array's own message (a scipy sparse matrix, named)
        raise
    except Exception as exc:
        raise TypeError(f"{name} must be array-like of numbers: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim == 1 and n_features == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {counted(arr.shape[1], 'feature column')}, the model "
                         f"expects {n_features}")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not allow_nonfinite and not all_finite(arr):
        bad = ~np.isfinite(arr)
        if bad.any():
            cols = np.flatnonzero(bad.any(axis=0)).tolist()
            where = f"columns {cols}" if column_text is None else \
                ", ".join(column_text(j) for j in cols)
            raise ValueError(f"{name} contains {counted(int(bad.any(axis=1).sum()), 'row')} "
                             f"with NaN or inf ({where}); {remedy}")
    return arr


# Network inputs beyond this magnitude are far outside the |x| ~ 1 that the default weight
# initialisation and learning rates assume: fit warns before training on them, and a
# diverged run's message points at them rather than at the learning rate.
LARGE_INPUT = 1e6


def largest_input(X):
    """(column, max |x|) of the largest magnitude in the finite 2-D array X, from the
    positions of its largest and smallest values: two passes over the whole array, no |X|
    temporary.  (Per-column maxima, X.max(axis=0), cost ~100x more on a narrow array of
    millions of rows - 7 ms on 262,144 x 5 - and fit runs this on every call.)"""
    if X.size == 0:
        return 0, 0.0
    hi, lo = int(np.argmax(X)), int(np.argmin(X))
    k = hi if X.flat[hi] >= -X.flat[lo] else lo
    return int(np.unravel_index(k, X.shape)[1]), float(abs(X.flat[k]))


def invalid_rows(X):
    """Boolean mask of rows with any NaN/inf."""
    X = np.asarray(X)
    return ~np.isfinite(X if X.dtype.kind == "f" else X.astype(np.float64)).all(axis=1)


def check_targets(y, n, loss, n_outputs, dtype, names=("X", "y")):
    """Targets as the (n, k) float array the kernels take (see backends/reference.py).
    ``names``: what the caller calls the rows and the targets (("X_val", "y_val") for a
    validation pair), so an error names the argument that was passed."""
    x_name, y_name = names
    try:
        arr = np.asarray(y)
    except Exception as exc:
        raise TypeError(f"{y_name} must be array-like: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{y_name} must hold numbers (integer class labels or targets), got "
                        f"dtype {arr.dtype}; map string labels to integers first")
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ValueError(f"{x_name} has {counted(n, 'sample')} but {y_name} has "
                         f"{arr.shape[0] if arr.ndim else 0} (shape {arr.shape}); they must "
                         "have the same length")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():   # integers always are
        raise ValueError(f"{y_name} contains "
                         f"{counted(int((~np.isfinite(arr)).sum()), 'NaN or inf value')}")
    if loss == "mse":
        given = arr.shape      # the message names the shape passed, not the column made of it
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != n_outputs:
            shapes = f"({n},) or ({n}, 1)" if n_outputs == 1 else f"({n}, {n_outputs})"
            raise ValueError(f"{y_name} for loss='mse' must have shape {shapes} to match the "
                             f"{counted(n_outputs, 'output')}, got {given}")
        return np.ascontiguousarray(arr, dtype=dtype)
    if loss == "bce" and n_outputs > 1:   # multilabel: a 0/1 indicator per output
        if arr.ndim != 2 or arr.shape[1] != n_outputs or not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{y_name} for loss='bce' with {n_outputs} outputs (multilabel) "
                             f"must be a 0/1 indicator matrix of shape ({n}, {n_outputs}), "
                             f"got {arr.shape}")
        return np.ascontiguousarray(arr, dtype=dtype)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{y_name} for loss={loss!r} must be 1-D class labels, got shape "
                         f"{arr.shape}")
    if arr.size and arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise ValueError(f"{y_name} for loss={loss!r} must hold integer class labels, got "
                         f"non-integer values such as {arr[arr != np.round(arr)][0].item()!r}")
    n_classes = 2 if loss == "bce" else n_outputs
    if loss == "cross_entropy" and n_outputs < 2:
        raise ValueError("loss='cross_entropy' needs at least 2 outputs; use loss='bce' "
                         "for a single-output binary classifier")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):   # two reductions, no temps
        bad = (arr < 0) | (arr >= n_classes)
        raise ValueError(f"{y_name} has {counted(int(bad.sum()), 'label')} outside the "
                         f"classes 0..{n_classes - 1} (e.g. {arr[bad][0].item()!r}) for "
                         f"loss={loss!r} with {counted(n_outputs, 'output')}")
    return np.ascontiguousarray(arr, dtype=dtype)[:, None]


def sample_weight_array(sample_weight):
    """sample_weight as a float64 array, or a TypeError naming it (np.asarray("a", float)
    says only "could not convert string to float")."""
    try:
        return np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"sample_weight must be None or an array of non-negative numbers, one "
                        f"per row, got {sample_weight!r}") from None


def check_weight_values(w, name="sample_weight"):
    """The float64 weights w if every one is finite and >= 0 and one at least is > 0, else
    a ValueError naming ``name`` and counting the bad weights.  The rule of every
    sample_weight: fit's (check_sample_weight) and the metrics' (check_weights)."""
    if not all_finite(w):
        raise ValueError(f"{name} must be finite, got "
                         f"{counted(int((~np.isfinite(w)).sum()), 'NaN or inf value')}")
    if w.size and w.min() < 0:
        n_negative = int((w < 0).sum())
        raise ValueError(f"{name} must be >= 0, got {counted(n_negative, 'negative weight')} "
                         f"(smallest {shown(w.min())})")
    if not w.size or not w.max() > 0:
        raise ValueError(f"{name} is all zero: expected at least one positive weight")
    return w


def check_sample_weight(sample_weight, n, dtype):
    """fit's sample_weight as a (n,) array of ``dtype`` (None: all ones)."""
    if sample_weight is None:
        return np.ones(n, dtype=dtype)
    sw = sample_weight_array(sample_weight)
    if sw.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {sw.shape}")
    return np.ascontiguousarray(check_weight_values(sw), dtype=dtype)


def check_weights(sample_weight, n, name="sample_weight", samples="y_true"):
    """A metric's sample_weight as float64 (n,), or None for None: numbers, 1-D, one
    weight for each of the n samples of the argument ``samples``, and check_weight_values'
    rule (finite, >= 0, not all zero)."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight)
    except Exception as exc:  # ragged lists etc.
        raise TypeError(f"{name} must be array-like: {exc}") from None
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers (one weight per sample), got dtype "
                        f"{w.dtype}")
    if w.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,) with one weight per sample, got "
                         f"shape {w.shape}")
    if w.shape[0] != n:
        raise ValueError(f"{name} has {counted(w.shape[0], 'weight')} but {samples} has "
                         f"{counted(n, 'sample')}; "
                         "expected one weight per sample")
    return check_weight_values(w.astype(np.float64), name)


def check_finite(a, name):
    """a as a float64 array if every value is finite, else a ValueError naming ``name`` and
    counting the NaN and inf values."""
    a = np.asarray(a, dtype=np.float64)
    if not all_finite(a):
        raise ValueError(f"{name} contains "
                         f"{counted(int((~np.isfinite(a)).sum()), 'NaN or inf value')}")
    return a


def check_regression_pair(y_true, y_pred):
    """(y_true, y_pred) of a regression as float64 (n, k) arrays: numbers, 1-D or 2-D, the
    same shape, at least one row, finite.  The rule of fastmlp.metrics' rmse, r2 and
    regression_report, also checked by fastmlp.plot before it draws."""
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    for a, nm in ((yt, "y_true"), (yp, "y_pred")):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{nm} must hold numbers, got dtype {a.dtype}")
        if a.ndim not in (1, 2):
            raise ValueError(f"{nm} must be 1-D or 2-D (n_samples[, n_outputs]), got shape "
                             f"{a.shape}")
    if yt.ndim == 1:
        yt = yt[:, None]
    if yp.ndim == 1:
        yp = yp[:, None]
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has shape {np.shape(y_true)} but y_pred has "
                         f"{np.shape(y_pred)}; they must match")
    if yt.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty: need at least one sample")
    return check_finite(yt, "y_true"), check_finite(yp, "y_pred")


def check_cut_inputs(cut, proba, positive):
    """A cut (a threshold on P(positive)) only with both proba and positive, else a
    ValueError naming cut and what is missing: without them there is nothing to apply it
    to, and fastmlp.metrics.classification_report (or fastmlp.plot.training_report) left it
    out without a word."""
    if cut is None:
        return
    missing = [name for name, v in (("proba", proba), ("positive", positive)) if v is None]
    if missing:
        raise ValueError(f"cut={cut!r} is a threshold on P(positive): it needs proba (the "
                         f"class probabilities) and positive (the class it selects); "
                         f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                         "None")


def check_seed(seed, name="seed"):
    """seed as np.random.default_rng takes it: None or a non-negative integer (NumPy's own
    refusal, "expected non-negative integer", names neither the argument nor the value)."""
    if seed is not None and (isinstance(seed, (bool, np.bool_))
                             or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ValueError(f"{name} must be a non-negative integer or None, got {seed!r}")
    return seed


def check_bool(flag, name, owner=None):
    """flag as a bool if it is True or False (a NumPy bool too), else a ValueError naming
    ``owner`` (e.g. the optimizer 'Adam') and the argument ``name``.  The one rule for every
    on/off option a user passes: "no" or 0.5 would be read as true (or false) without a word,
    and 1 or 0 are refused too (fit(standardize=1) and Adam(amsgrad=1) alike).
    The kernels carry flags as 0.0/1.0 in the float hyper vector; that vector is read back by
    fastmlp.codes.hyper_dict (as bools) and checked by fastmlp.backends._contract, never
    here."""
    if not isinstance(flag, (bool, np.bool_)):
        shown = flag.item() if isinstance(flag, np.generic) else flag
        raise ValueError(f"{owner + ': ' if owner else ''}{name} must be True or False, "
                         f"got {shown!r}")
    return bool(flag)


def check_kwargs(kwargs, name):
    """kwargs (None or a mapping of keyword arguments) as a new dict, else a TypeError naming
    the argument (dict("a") fails with "dictionary update sequence element #0 ...")."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"{name} must be None or a dict of keyword arguments, got {kwargs!r}")
    return dict(kwargs)


def check_positive(value, name, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


# A number of bins above both the rows binned and this is refused: n_bins=10**9 for 100
# rows allocated gigabytes (and was killed) for bins that are nearly all empty.  The floor
# keeps every usual count (10-100 bins) legal for a small sample.
MAX_BINS_WITHOUT_ROWS = 1000


def check_n_bins(n_bins, n_rows=None, name="n_bins"):
    """n_bins as an int: a positive integer (check_positive) and, given n_rows, at most
    max(n_rows, MAX_BINS_WITHOUT_ROWS).  The histogram rule of fastmlp.metrics' binned
    rates and reliability curves and of fastmlp.plot's diagrams of them."""
    check_positive(n_bins, name, integer=True)
    if n_rows is not None and n_bins > max(n_rows, MAX_BINS_WITHOUT_ROWS):
        raise ValueError(f"{name}={n_bins!r} is more than the {counted(n_rows, 'row')} binned "
                         f"(and more than {MAX_BINS_WITHOUT_ROWS}): at least "
                         f"{counted(n_bins - n_rows, 'bin')} would be empty, and each costs "
                         "memory; use far fewer bins (10-20 is "
                         "usual)")
    return int(n_bins)


def range_text(lo, lo_open, hi, hi_open):
    """'> 0', '>= 0' or 'in [0, 1)': a HYPER_RANGES entry as the error message says it."""
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def check_hyper(key, value, name=None, owner=None):
    """The optimizer hyper-parameter ``key`` as a float: a real number (not a bool, not a
    string), finite and in its range of fastmlp.codes.HYPER_RANGES, else a ValueError that
    names ``owner`` (the optimizer, e.g. 'RMSprop') and ``name`` (the argument as the caller
    spelled it, e.g. 'betas[0]'; default ``key``) and says what was expected.
    The one check of these rules: fastmlp.optim's constructors and the kernels' contract
    (fastmlp.backends._contract) both call it."""
    lo, lo_open, hi, hi_open = HYPER_RANGES[key]
    prefix = f"{owner}: " if owner else ""
    shown = value.item() if isinstance(value, np.generic) else value
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)) or \
            not math.isfinite(value):
        raise ValueError(f"{prefix}{name or key} must be a finite number, got {shown!r}")
    v = float(value)
    if (v > lo if lo_open else v >= lo) and (hi is None or (v < hi if hi_open else v <= hi)):
        return v
    # torch.optim takes every value >= 0 of these: say why fastmlp does not
    why = f"; {HYPER_RANGE_WHY[key]}" if key in HYPER_RANGE_WHY and v >= 0 else ""
    raise ValueError(f"{prefix}{name or key} must be {range_text(lo, lo_open, hi, hi_open)}, "
                     f"got {shown!r}{why}")


def check_nesterov(nesterov, momentum, dampening, owner=None):
    """SGD's Nesterov momentum needs momentum > 0 and dampening 0 (torch.optim's rule)."""
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"{owner + ': ' if owner else ''}nesterov needs momentum > 0 and "
                         f"dampening = 0, got momentum {momentum!r}, dampening {dampening!r}")


def check_centered(centered, alpha, owner=None):
    """RMSprop's centered form needs alpha > 0 (fastmlp.codes.CENTERED_ALPHA_WHY says why)."""
    if centered and alpha == 0:
        raise ValueError(f"{owner + ': ' if owner else ''}centered needs alpha > 0, got alpha "
                         f"{alpha!r}; {CENTERED_ALPHA_WHY}")


def argparse_number(cast, ok, expected):
    """An argparse ``type=``: ``cast(text)`` accepted when ``ok(value)``, else an
    ArgumentTypeError saying what was expected ("expected a positive integer, got 'x'"),
    for the fastmlp command line and the MPI one alike."""
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


def user_stacklevel():
    """warnings.warn's stacklevel for the first frame outside the fastmlp package, counted
    from the function calling this one (1: that function): a warning raised deep in a
    recipe (fit reached through cross_validate, fit_ensemble or the scikit-learn wrappers)
    points at the user's line, not at fastmlp's."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level
