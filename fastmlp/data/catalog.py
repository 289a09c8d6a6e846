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
  medians; ``meta["impute_medians"]`` = every source column's median, which fastmlp train
  stores in the model's FeatureSpec.fill); rows with a missing label are still dropped.
"""

import os
import re
import warnings
from pathlib import Path

import numpy as np

from .._validate import check_float_dtype, counted, plural
from ..features import MISSING_VALUES, parse_feature_spec, plan_sources, resolve_features
from .formats import (NULL_STRINGS, catalog_format, float_column, is_number,
                      non_numeric_positions, non_numeric_text, parse_where, read_csv_columns,
                      read_fits_columns, read_npy_columns, read_parquet_columns, text_column,
                      try_float)
from .standardize import Standardizer

__all__ = ["Catalog", "CatalogWarning", "load_catalog", "COLOR_FEATURES", "MISSING_VALUES",
           "MISSING_POLICIES"]

COLOR_FEATURES = ("u-g", "g-r", "r-i", "i-z")
QUASAR_NAMES = ("qso", "quasar", "quasars")
#: what load_catalog(missing=...) accepts
MISSING_POLICIES = ("error", "drop", "impute-median")
#: more rows than this, whole numbers all distinct: an id column (a catalog of a few rows
#: may hold distinct whole numbers by chance)
ID_DISTINCT_ROWS = 50
#: the rows judged (the first ones): an id is distinct there too, and a billion-row catalog
#: is not sorted column by column to say so
ID_JUDGED_ROWS = 100_000


class CatalogWarning(UserWarning):
    """A catalog that reads but probably does not train what its user means: class names
    that differ only in case, id columns among the default features.  A warning, not an
    error: the file may mean it (``fastmlp train`` prints it as a ``warning:`` line)."""


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


#: the largest class count integer labels may imply beyond one class per row
MAX_LABEL_CLASSES = 1000


def _labels_from(raw, name, path, class_names):
    """-> (y int64 or float, class_names or None, mapping description, invalid mask);
    vectorised (names map to labels with one np.unique / searchsorted)."""
    raw = np.asarray(raw)
    if raw.dtype.kind in "OUS":
        num = try_float(raw)                     # numeric labels written as text
        if num is None:
            s = text_column(raw)
            invalid = np.isin(s, NULL_STRINGS)
            names = np.unique(s[~invalid])
            y = np.where(invalid, -1, np.searchsorted(names, s)).astype(np.int64)
            names = names.tolist()
            if class_names is not None:
                raise ValueError(f"class_names can only name numeric labels; column {name!r} "
                                 f"already holds the names {names}")
            return y, names, {c: k for k, c in enumerate(names)}, invalid
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
        top = float(ok.max()) if ok.size else 0.0
        if top + 1 > integer_label_limit(ok.size):
            raise ValueError(f"label column {name!r} holds the integer {top:.6g}: class labels "
                             f"must be 0..C-1 with C at most max({MAX_LABEL_CLASSES}, rows); "
                             "is it a regression target or an id column?")
        y = np.full(raw.shape, -1, np.int64)
        y[~invalid] = ok.astype(np.int64)
        n_cls = max(int(top) + 1, 2)
        names = [str(k) for k in range(n_cls)]
        if class_names is not None:
            names = _check_class_names(class_names, n_cls)
        return y, names, None, invalid
    if class_names is not None:
        raise ValueError(f"label column {name!r} holds non-integer values (a regression "
                         "target), class_names does not apply")
    return raw, None, None, invalid


def _check_class_names(class_names, n_needed):
    """One distinct name per class of the labels: fewer leave a class unnamed, more would
    give the model an output for a class with no rows (nothing to learn it from)."""
    if isinstance(class_names, str):
        class_names = split_class_names(class_names)
    names = [str(c) for c in class_names]
    if len(names) != n_needed or len(set(names)) != len(names):
        raise ValueError(class_names_error(names, n_needed))
    return names


def class_names_error(names, n_needed):
    more = len(names) > n_needed
    return (f"class_names must be {n_needed} distinct names, one per label 0.."
            f"{n_needed - 1}, got {len(names)}: {names}"
            + ("; the labels hold no rows of the extra class(es), which a model cannot learn"
               if more else ""))


def class_index_ignoring_case(name, class_names):
    """The index of the class ``name`` names: exactly, else ignoring case (casefold) when
    that matches one class; None otherwise (no class, or several differing only in case)."""
    names = list(class_names)
    if name in names:
        return names.index(name)
    folded = [k for k, c in enumerate(names) if c.casefold() == name.casefold()]
    return folded[0] if len(folded) == 1 else None


def split_class_names(text):
    """A comma-separated list of class names ("QSO, STAR") as its stripped names."""
    return [c.strip() for c in text.split(",")]


def positive_class_index(positive, class_names, label):
    """The label value (index into ``class_names``) of the positive class named by
    ``positive`` (a class name, case-insensitive when unambiguous, or a label value), or
    None: by default the quasar class when there is one; a regression label (``class_names``
    None) has no positive class, and ``positive`` given for one is an error naming ``label``."""
    if class_names is None:
        if positive is not None:
            raise ValueError(f"positive={positive!r} given but label {label!r} is a "
                             "regression target, not classes")
        return None
    if positive is None:
        for k, c in enumerate(class_names):
            if c.lower() in QUASAR_NAMES:
                return k
        return None
    if isinstance(positive, str):
        p = positive.strip()
        k = class_index_ignoring_case(p, class_names)
        if k is not None:
            return k
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


def _and(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


#: what a message on a regression of text labels suggests by default (the CLI names its flags)
TEXT_LABEL_ADVICE = ("use classification (--task classification; in Python, a model whose "
                     "loss is not 'mse'), or pick a numeric label column")


def text_regression_text(label, example, advice=TEXT_LABEL_ADVICE):
    """The message for a regression asked of a label column that holds text ('STAR',
    'QSO'): a regression needs numeric targets; ``example`` is one of its text values,
    ``advice`` what to do instead.  ``label`` None: labels that come from no column (the
    synthetic catalog's)."""
    column = "the labels hold" if label is None else f"the label column {label!r} holds"
    return f"regression needs numeric targets, but {column} text (e.g. {example!r}): {advice}"


#: what a message on a label column of numbers with a stray text ('n/a') suggests
STRAY_LABEL_ADVICE = ("correct it, or mark it missing (NaN or an empty field) and leave its "
                      "row out with missing='drop' (--missing drop)")


def mostly_numbers(counts):
    """True when most rows of ``counts`` ({label value: rows}, the values as text or
    numbers) hold a number: a label column of numbers with a few stray texts ('n/a' among
    redshifts), not one of class names."""
    numbers = sum(n for value, n in counts.items() if is_number(value))
    return numbers > sum(counts.values()) - numbers


def integer_label_limit(n_rows):
    """The class count whole-number labels >= 0 may imply (labels 0..C-1) in a column of
    ``n_rows`` labels: MAX_LABEL_CLASSES, or one class per row."""
    return max(MAX_LABEL_CLASSES, n_rows)


def numbers_with_strays(counts):
    """True when a label column read as text (``counts``: {value: rows}, missing values left
    out; the values as text, or numbers) is a column of numbers with a few stray texts in
    it (redshifts and an 'n/a'), which load_catalog and CatalogStream refuse rather than
    make each distinct value a class.  The rule: some values are numbers and some are not,
    and

    * the numbers are most of the distinct values or fill most of the rows (a few strays
      among them), and
    * the numbers alone would not be class labels: one of them is not a whole number (a
      regression target, as a column of numbers only is read), or they are whole numbers
      beyond integer_label_limit (an id, a temperature in K).

    So '1', '2', '3', 'unknown' (whole numbers: class codes with a named class), star
    types 'A0', 'B5' (no value a number), names with one number among them ('STAR', 'QSO',
    '7') and a class column that mixes a few named and numbered classes stay classes."""
    numbers = [float(v) for v in counts if is_number(v)]
    n_others = len(counts) - len(numbers)
    if not numbers or not n_others:
        return False
    if len(numbers) <= n_others and not mostly_numbers(counts):
        return False
    values = np.asarray(numbers)
    if not np.all(values == np.round(values)):
        return True
    rows = sum(counts.values())
    return values.min() >= 0 and values.max() + 1 > integer_label_limit(rows)


def too_many_names_text(n_names, label):
    """The refusal of a label column read as text holding ``n_names`` distinct names, more
    than MAX_LABEL_CLASSES (as whole-number labels are limited): an id or a numeric
    column, not classes; None when there are not that many."""
    if n_names <= MAX_LABEL_CLASSES:
        return None
    return (f"the label column {label!r} holds {n_names} distinct names, more than the "
            f"{MAX_LABEL_CLASSES} classes a label column may have: is it an id (a name per "
            "object) or a column of numbers with text in it?  Give the class column as the "
            "label (--label), or correct the numbers of a regression target")


def stray_values_text(values, rows=None):
    """For label ``values`` most of which are numbers: how a message names the others
    (formats.non_numeric_text: "1 non-numeric value (first 'n/a' in data row 301)");
    None when they are all numbers or mostly text (class names).  ``rows`` as for
    formats.float_column.  For error paths (a loop over the distinct values)."""
    text, bad = non_numeric_positions(values)
    numbers = len(text) - int(np.isin(text, NULL_STRINGS).sum()) - len(bad)
    if len(bad) == 0 or numbers <= len(bad):
        return None
    return non_numeric_text(text, bad, rows)


def text_label_example(names):
    """A label column's class names as the example a message shows: the first that is not a
    number (names sorted put '7' before 'QSO')."""
    return next((c for c in map(str, names) if not is_number(c)), str(names[0]))


def stray_label_text(label, where, advice=STRAY_LABEL_ADVICE):
    """The message for a label column of numbers holding ``where`` (stray_values_text), which
    is neither a number nor missing: naming its first such value and data row."""
    return f"the label column {label!r} holds numbers but also {where}: {advice}"


def refuse_label_features(features, steps, label, source=None):
    """A ValueError naming the ``features`` (with their resolve_features ``steps``) that
    read the ``label`` column: the label itself, or a colour of it ("i-z" with the label
    z), would train on the answer.  load_catalog, CatalogStream, Dask's fit and mpi_fit
    all refuse so.  ``source``: the file, put before the message."""
    reading = [f for f, step in zip(features, steps) if label in step[1:]]
    if label is not None and reading:
        raise ValueError(("" if source is None else f"{source}: ") + f"features {reading} "
                         f"read the label column {label!r}; the label must not be among the "
                         "inputs")


def case_clash_text(counts, label):
    """The warning for class names that differ only in case ('QSO' and 'qso'; blanks are
    stripped already), which train as separate classes, naming each group with its rows;
    None when there is none.  ``counts``: {class name: rows} (in memory and in a stream's
    scan alike)."""
    groups = {}
    for name in counts:
        groups.setdefault(str(name).casefold(), []).append(name)
    clashes = [g for g in groups.values() if len(g) > 1]
    if not clashes:
        return None
    said = "; ".join(_and(f"{n!r} ({counted(counts[n], 'row')})" for n in g) for g in clashes)
    rare = min(clashes[0], key=lambda n: counts[n])
    column = label if re.fullmatch(r"[A-Za-z_]\w*", str(label)) else f"`{label}`"
    return (f"label {label!r}: class names {said} differ only in case: they are trained as "
            "separate classes; fix the catalog (one spelling per class), or leave a spelling "
            f"out with where=\"{column} != {rare!r}\" (--where)")


# "id" as a word of its own (obj_ID, source_id, id), in camel case (objID, specObjID) or after
# the usual catalog prefixes (objid, specobjid, TARGETID, fiberid); "centroid" is no id
_ID_WORD = re.compile(r"(?:^|[^a-z])id$|(?:obj|target|source|spec|thing|fiber|field|run)id$",
                      re.IGNORECASE)
_CAMEL_ID = re.compile(r"[a-z]ID$")


def _id_name(name):
    return bool(_ID_WORD.search(name) or _CAMEL_ID.search(name))


def id_like_columns(columns):
    """The names of the ``columns`` ({name: float values}) that look like ids, which number
    the objects and measure nothing a model could learn from: a name that ends in an id
    (_id_name: obj_ID, objID, objid, specobjid, TARGETID, source_id, fiber_ID; not
    centroid), or whole numbers all distinct (one per row) over more than ID_DISTINCT_ROWS
    rows (missing values aside) among the first ID_JUDGED_ROWS."""
    ids = []
    for name, v in columns.items():
        if _id_name(str(name).strip()):
            ids.append(name)
            continue
        v = np.asarray(v[:ID_JUDGED_ROWS], dtype=np.float64)
        v = v[np.isfinite(v) & ~np.isin(v, MISSING_VALUES)]
        # whole numbers first: a column of measurements is not sorted by np.unique
        if v.size > ID_DISTINCT_ROWS and np.all(v == np.round(v)) and \
                np.unique(v).size == v.size:
            ids.append(name)
    return ids


def default_features_text(ids):
    """The warning for id columns (``ids``) among the default features (every column but
    the label); None when there is none."""
    if not ids:
        return None
    return (f"no features given, so every column but the label is a feature, among them "
            f"{plural(len(ids), 'the id-like column', 'the id-like columns')} "
            f"{', '.join(map(str, ids))}: an id numbers objects or observations and "
            "measures nothing about them; choose the inputs with features=... (--features), "
            "e.g. --features colors:ugriz (the colours u-g, g-r, r-i, i-z)")


def warn_catalog(text, stacklevel=3):
    """warnings.warn(text, CatalogWarning) unless text is None; ``stacklevel`` counts from
    the caller of warn_catalog (3: the caller's caller, the user's call of load_catalog)."""
    if text:
        warnings.warn(text, CatalogWarning, stacklevel=stacklevel)


def load_catalog(path, features=None, label=None, positive=None, drop_invalid=False,
                 dtype="float32", class_names=None, extra=None, missing=None, format=None,
                 hdu=None, where=None):
    """Read a catalog from a CSV file (header row; ``.csv``, ``.csv.gz``, any other suffix),
    a NumPy ``.npy`` file (a structured array with named fields, or a plain 2-D numeric
    array whose columns are named "0", "1", ...), a FITS table (``.fits``/``.fit``/``.fts``,
    optionally gzipped; the first table HDU or ``hdu=``; needs astropy) or a Parquet file
    (``.parquet``/``.pq``; needs pyarrow).  ``format`` overrides the suffix.  Only the columns
    needed are read from FITS and Parquet files.  Without astropy / pyarrow an ImportError
    names the ``fastmlp[catalogs]`` extra.  Every step is columnar (pyarrow / NumPy).

    features: column names (a list, or one comma-separated string), integer column indices
      for plain arrays, or ``"colors:ugriz"`` = u-g, g-r, r-i, i-z computed from magnitude
      columns u g r i z (``"colors:ugriz+r"`` appends r).  Any ``"a-b"`` that is not a
      column is computed from columns a and b.  Default: every column except the label (a
      :class:`CatalogWarning` names the id-like columns among them: see id_like_columns).
    label: the label column (name or index).  Default: a column named "label" or "class" if
      there is one.  ``label=False``: no labels (``y`` is None).  String labels (e.g. GALAXY /
      QSO / STAR) become 0..C-1 in sorted order (``class_names`` holds the names,
      ``meta["label_mapping"]`` the mapping, ``meta["label_text"]`` True: no regression
      target; ``meta["label_stray"]``: when most of the names are numbers, e.g. "1", "2",
      "3" and a few "unknown", the non-numbers' count and the first with its data row,
      which a regression of them names; else None).
      Text that is no class names is refused (a ValueError, as CatalogStream's scan): a
      column of numbers with a few stray texts (see numbers_with_strays: "n/a" among
      redshifts; not '1', '2', '3', 'unknown'), naming the first stray and its data row,
      and more than MAX_LABEL_CLASSES distinct names (an id?).  Integer labels >= 0 are
      kept (class names "0", "1", ... unless ``class_names`` names them); non-integer
      numbers are a regression target (float y, ``class_names`` None).  Names that differ
      only in case ("QSO", "qso") are separate classes, with a :class:`CatalogWarning`
      naming them.
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
    where: a row filter such as ``"class == 'QSO' and r < 21"`` (see
      :class:`fastmlp.data.formats.Where`; pushed down into the Parquet reader); rows it
      leaves out are not read (``meta["n_rows_read"]`` counts the rows kept).

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
    missing = _missing_policy(missing, drop_invalid)
    fmt = catalog_format(path, format)
    dt = check_float_dtype(dtype)
    where = parse_where(where)
    plan = _ColumnPlan(path, parse_feature_spec(features), label, extra, where)
    data, rows = _read_columns(path, fmt, plan, hdu, where)
    n_rows = len(next(iter(data.values()))) if data else 0
    if n_rows == 0:
        raise ValueError(f"{path}: no data rows (expected a header and at least one row)"
                         + (f" passing where {where.text!r}" if where is not None else ""))
    X, bad_by_col, meta = _feature_matrix(path, data, plan, missing, n_rows, dt, rows)
    invalid = invalid_feature_rows(X, bad_by_col, plan.features, dt)
    y, names, mapping = None, None, None
    if plan.label is not None:
        y, names, mapping, bad_label = _labels_from(data[plan.label], plan.label, path,
                                                    class_names)
        if _names_text(mapping):        # classes from text: numbers with strays, ids?
            _refuse_unlikely_names(path, data[plan.label], plan.label, y, names, rows)
        if bad_label.any():
            bad_by_col[plan.label] = bad_label
            invalid |= bad_label
    elif class_names is not None:
        raise ValueError("class_names given but the catalog has no label column")
    meta.update(source=str(path), format=fmt, n_rows_read=n_rows, n_dropped=0,
                label=plan.label, label_mapping=mapping, label_text=_names_text(mapping),
                label_stray=_stray_labels(data, plan.label, y, names, mapping, rows),
                missing=missing,
                where=None if where is None else where.text)
    keep = _drop_invalid(path, invalid, bad_by_col, missing, meta)
    if keep is not None:
        X, y = X[keep], None if y is None else y[keep]
    ex = _extra_columns(path, data, plan.extra, keep, dt)
    if y is not None and names is None:
        y = y.astype(dt)
    pos = positive_class_index(positive, names, plan.label)
    cat = Catalog(np.ascontiguousarray(X, dtype=dt), y, plan.features, names, pos, ex, meta)
    warn_catalog(case_clash_text(cat.class_counts(), plan.label))
    if features is None:                # every column but the label: ids among them?
        warn_catalog(default_features_text(id_like_columns(dict(zip(plan.features, X.T)))))
    return cat


def _names_text(mapping):
    """True when a label mapping ({value in the file: label}) maps text ('QSO', 'STAR'), not
    numbers written as text (-1 / +1): such labels are no regression target."""
    return mapping is not None and try_float(np.asarray(list(mapping), dtype=str)) is None


def _stray_labels(data, label, y, names, mapping, rows):
    """meta["label_stray"]: for a label column read as names that are mostly numbers
    (class codes '1', '2', '3' and a few 'unknown'; redshifts and an 'n/a' are refused
    before), stray_values_text of it, naming the first non-number and its data row;
    None otherwise.  Judged on the names' row counts first (a few names: cheap)."""
    if not _names_text(mapping):
        return None
    rows_of = np.bincount(y[y >= 0], minlength=len(names))
    if not mostly_numbers(dict(zip(names, rows_of.tolist()))):
        return None
    return stray_values_text(data[label], rows)


def _refuse_unlikely_names(path, values, label, y, names, rows):
    """A label column read as class names (``names``, the labels ``y``) that is no column of
    classes: numbers with a few stray texts (numbers_with_strays), refused naming the first
    stray and its data row (``rows`` as for formats.float_column), or more distinct names
    than MAX_LABEL_CLASSES (too_many_names_text).  CatalogStream's scan refuses the same."""
    counts = dict(zip(names, np.bincount(y[y >= 0], minlength=len(names)).tolist()))
    if numbers_with_strays(counts):
        text, bad = non_numeric_positions(values)
        where = non_numeric_text(text, bad, rows, count=len(bad))
        raise ValueError(f"{path}: " + stray_label_text(label, where))
    too_many = too_many_names_text(len(names), label)
    if too_many:
        raise ValueError(f"{path}: {too_many}")


def _missing_policy(missing, drop_invalid):
    if missing is None:
        return "drop" if drop_invalid else "error"
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {list(MISSING_POLICIES)}, got {missing!r}")
    if drop_invalid and missing != "drop":
        raise ValueError(f"drop_invalid=True contradicts missing={missing!r}; pass one of them")
    return missing


class _ColumnPlan:
    """Which columns to read: called with the file's column names, it decides the label,
    the features (as ('col', a) / ('diff', a, b) steps), their source columns, the extra
    and where columns, and returns the list to read."""

    def __init__(self, path, feats, label, extra, where):
        self.path, self.feats, self.where = path, feats, where
        if label is not None and label is not False:
            label = str(int(label)) if isinstance(label, (int, np.integer)) and \
                not isinstance(label, bool) else str(label).strip()
        self.label_arg = label
        self.extra = [] if extra is None else (
            [e.strip() for e in extra.split(",")] if isinstance(extra, str)
            else [str(e) for e in extra])

    def __call__(self, columns):
        path, lab = self.path, self.label_arg
        if lab is None:
            lab = next((c for c in columns if c.lower() in ("label", "class")), None)
            if lab is None and self.feats is None:
                raise ValueError(f"{path}: no label column named 'label' or 'class'; pass "
                                 f"label=<column> (or label=False for an unlabelled "
                                 f"catalog); available columns: {list(columns)}")
        elif lab is not False and lab not in columns:
            raise ValueError(f"{path}: label column {lab!r} not found; available columns: "
                             f"{list(columns)}")
        self.label = None if lab is False else lab
        fs = self.feats if self.feats is not None else [c for c in columns if c != self.label]
        if not fs:
            raise ValueError(f"{path}: no feature columns left besides the label {lab!r}")
        if self.label is not None and self.label in fs:
            raise ValueError(f"{path}: the label column {lab!r} is also listed as a feature")
        self.features, self.steps = fs, resolve_features(fs, columns, path)
        refuse_label_features(fs, self.steps, self.label, path)     # a colour of the label
        for e in self.extra:
            if e not in columns:
                raise ValueError(f"{path}: extra column {e!r} not found; available columns: "
                                 f"{list(columns)}")
        if self.where is not None:
            self.where.check(columns, path)
        self.sources = plan_sources(self.steps)
        self.read = list(dict.fromkeys(self.sources + ([self.label] if self.label else [])
                                       + self.extra))
        return self.read + [c for c in (self.where.columns if self.where else [])
                            if c not in self.read]


def _read_columns(path, fmt, plan, hdu, where):
    """({column: NumPy array} of the planned columns, rows filtered by ``where``; the
    0-based file row of each row kept, or None when they are all the file's rows)."""
    rows = None
    if fmt == "parquet":
        _, data, rows = read_parquet_columns(path, plan, where)    # row groups pruned by the filter
    elif fmt == "npy":
        columns, data = read_npy_columns(path)
        plan(columns)
    elif fmt == "fits":
        columns, data = read_fits_columns(path, plan, hdu)
    else:
        columns, data = read_csv_columns(path, plan)
    if where is not None:
        keep = where.mask(data, path, rows)
        data = {k: v[keep] for k, v in data.items()}
        rows = np.flatnonzero(keep) if rows is None else rows[keep]
    return data, rows


def _feature_matrix(path, data, plan, missing, n_rows, dt=np.float64, rows=None):
    """(X float64 (n, n_features), {source column: missing mask}, meta of the imputation):
    colours are column differences, missing values NaN / inf / -9999 and values beyond the
    range of the catalog dtype ``dt`` (vectorised).  ``rows``: the file row of each row
    (None: all of them, in order), to name a non-numeric value's row."""
    src = {c: float_column(data[c], c, path, rows) for c in plan.sources}
    big = np.finfo(dt).max
    bad_by_col = {c: ~np.isfinite(v) | np.isin(v, MISSING_VALUES) | (np.abs(v) > big)
                  for c, v in src.items()}
    meta = {}
    if missing == "impute-median":
        imputed, values = {}, {}
        for c, m in bad_by_col.items():
            if m.any():
                if m.all():
                    raise ValueError(f"{path}: column {c!r} has no valid values to take a "
                                     "median of (missing='impute-median')")
                med = float(np.median(src[c][~m]))
                src[c] = np.where(m, med, src[c])
                imputed[c], values[c] = int(m.sum()), med
        bad_by_col = {c: np.zeros(n_rows, dtype=bool) for c in src}
        if imputed:
            meta.update(imputed=imputed, impute_values=values)
        # every source column's median, for the model to impute later rows the same way
        meta["impute_medians"] = {c: values[c] if c in values else float(np.median(v))
                                  for c, v in src.items() if v.size}
    X = np.empty((n_rows, len(plan.steps)), dtype=np.float64)
    for k, s in enumerate(plan.steps):
        X[:, k] = src[s[1]] if s[0] == "col" else src[s[1]] - src[s[2]]
    return X, bad_by_col, meta


def invalid_feature_rows(X, bad_by_col, features, dt):
    """The rows with a missing source value, or a feature beyond the range of the catalog
    dtype ``dt`` (a colour u - g of u = 3e38, g = -3e38 in float32), which is then counted
    under its feature's name in ``bad_by_col`` (as the stream counts it), so that the
    message names it."""
    invalid = np.zeros(X.shape[0], dtype=bool)
    for m in bad_by_col.values():
        invalid |= m
    with np.errstate(over="ignore"):
        for j, name in enumerate(features):
            far = ~invalid & ~np.isfinite(X[:, j].astype(dt))
            if far.any():
                bad_by_col[name] = bad_by_col[name] | far if name in bad_by_col else far
    for m in bad_by_col.values():
        invalid |= m
    return invalid


def _drop_invalid(path, invalid, bad_by_col, missing, meta):
    """None when every row is valid, else the mask of rows to keep (or a ValueError for
    missing='error' / when nothing is left)."""
    n_invalid, n_rows = int(invalid.sum()), invalid.size
    if not n_invalid:
        return None
    counts = {c: int(m.sum()) for c, m in bad_by_col.items() if m.any()}
    if missing == "error":
        raise ValueError(f"{path}: {n_invalid} of {counted(n_rows, 'row')} "
                         f"{plural(n_invalid, 'has', 'have')} missing or invalid values (NaN, "
                         f"inf or -9999) in columns {counts}; clean the file or pass "
                         "drop_invalid=True (--drop-invalid) to drop them, or "
                         "missing='impute-median' (--missing impute-median)")
    if n_invalid == n_rows:
        raise ValueError(f"{path}: all {counted(n_rows, 'row has', 'rows have')} missing or "
                         f"invalid values in columns {counts}; nothing left to use")
    meta.update(n_dropped=n_invalid, dropped_by_column=counts)
    return ~invalid


def _extra_columns(path, data, extra, keep, dt):
    """Extra columns: integers as they are (ids stay exact), other numbers in ``dt``,
    text as str."""
    out = {}
    for e in extra:
        v = np.asarray(data[e])
        if v.dtype.kind not in "iub":
            f = try_float(v)
            v = text_column(v) if f is None else f.astype(dt)
        out[e] = v if keep is None else v[keep]
    return out
