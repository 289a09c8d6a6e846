"""Feature specs: which catalog columns a model reads, and how it derives its inputs from them.

A model's inputs are named features.  A name is either a column of the catalog (``"r"``,
``"u-g"`` if the table has such a column) or a colour ``"a-b"`` derived from two magnitude
columns ``a`` and ``b`` when the table has no column of that name.  ``"colors:ugriz"``
expands to ``u-g, g-r, r-i, i-z`` (``"colors:ugriz+r"`` adds the ``r`` magnitude).

:class:`FeatureSpec` is part of the model's input-to-output contract (``MLP.features``): it
turns a table holding raw columns (pandas DataFrame, pyarrow Table, NumPy structured array or
a dict of arrays) into the feature matrix, the same way in training, prediction, the model
file and the C loader.  This module sits below the model, so it imports nothing of fastmlp.
"""

import numpy as np

__all__ = ["FeatureSpec", "parse_feature_spec", "resolve_features", "table_columns",
           "MISSING_VALUES", "check_fill", "fill_missing", "missing_mask"]

#: sentinel values that SDSS writes for a missing measurement (NaN and inf are missing too).
#: A raw column read by name (FeatureSpec.transform here, the catalog loaders in
#: fastmlp.data, fastmlp_model_gather_features in C) turns them into NaN; an array already in
#: feature order is taken as it is (its missing values must be NaN).
MISSING_VALUES = (-9999.0,)


def parse_feature_spec(features):
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



def plan_sources(steps):
    """The raw columns a feature plan (resolve_features / FeatureSpec.plan) reads, each
    once, in order: a colour's two magnitude columns."""
    return list(dict.fromkeys(c for s in steps for c in s[1:]))


def resolve_features(features, columns, path):
    """For each feature: ('col', name) or ('diff', a, b); clear error if unavailable or
    ambiguous (a table, e.g. a DataFrame, may hold two columns of one name)."""
    columns = list(columns)
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
        raise ValueError(f"{path}: feature column(s) {missing} not found{hint}"
                         f"{_case_hint(missing, columns)}; available columns: {list(columns)}")
    read = {c for step in plan for c in step[1:]}
    dup = sorted(c for c in read if columns.count(c) > 1)
    if dup:
        raise ValueError(f"{path}: column name(s) {dup} occur more than once; a feature must "
                         "name a single column (rename the duplicates)")
    return plan


def _case_hint(missing, columns):
    """Names are matched exactly; FITS catalogs often spell them in capitals (U, G, R):
    name the columns that differ from a wanted one only in case."""
    by_lower = {}
    for c in columns:
        by_lower.setdefault(str(c).lower(), []).append(str(c))
    wanted = [w for m in missing for w in ([m] + (m.split("-", 1) if "-" in m else []))]
    pairs = [(w, by_lower[w.lower()][0]) for w in dict.fromkeys(wanted)
             if w not in columns and w.lower() in by_lower]
    if not pairs:
        return ""
    shown = ", ".join(f"{c!r} for {w!r}" for w, c in pairs)
    return f"; column names are case-sensitive and the table has {shown}: rename them"


def table_columns(table):
    """The column names of a DataFrame, pyarrow Table / RecordBatch, structured array or
    dict of arrays; None for anything else (a plain array has no names)."""
    if isinstance(table, np.ndarray):
        return list(table.dtype.names) if table.dtype.names else None
    if isinstance(table, dict):
        return list(table)
    names = getattr(table, "column_names", None)          # pyarrow Table / RecordBatch
    if names is None and hasattr(table, "columns") and hasattr(table, "iloc"):
        names = [str(c) for c in table.columns]           # pandas DataFrame
    return None if names is None else list(names)


def _column(table, name):
    """One column of a table as a float64 NumPy array (nulls and the MISSING_VALUES
    sentinels become NaN; the caller's data is never written)."""
    raw = table.column(name) if hasattr(table, "column_names") else table[name]
    try:      # a text column fails in the conversion: pandas', pyarrow's cast or NumPy's
        if isinstance(table, (np.ndarray, dict)) or not hasattr(raw, "to_numpy"):
            col = raw
        elif hasattr(table, "column_names"):
            col = raw.to_numpy(zero_copy_only=False) if raw.null_count == 0 else \
                raw.cast("float64").fill_null(float("nan")).to_numpy(zero_copy_only=False)
        else:
            col = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        out = np.asarray(col, dtype=np.float64)
    except (TypeError, ValueError, NotImplementedError):
        kind = getattr(raw, "dtype", None) or getattr(raw, "type", None) or \
            np.asarray(raw).dtype
        raise ValueError(f"column {name!r} is not numeric (dtype {kind})") from None
    missing = out == MISSING_VALUES[0]
    for v in MISSING_VALUES[1:]:
        missing |= out == v
    if missing.any():
        out = np.where(missing, np.nan, out)      # a copy: the table keeps its -9999
    return out


def missing_mask(values, dtype=np.float64):
    """Where a raw column's value is missing: NaN, +-inf, a MISSING_VALUES sentinel, or a
    value not finite in ``dtype`` (beyond float32's range for a float32 model: what the
    catalog loaders' missing='impute-median' replaces by the column's median)."""
    values = np.asarray(values)
    bad = ~np.isfinite(values)
    for v in MISSING_VALUES:
        bad |= values == v
    big = np.finfo(dtype).max
    if values.dtype.kind == "f" and np.finfo(values.dtype).max > big:
        with np.errstate(invalid="ignore"):     # NaN compares False: already counted
            bad |= np.abs(values) > big
    return bad


def fill_missing(values, fill_value, dtype=np.float64):
    """(values with every missing one, see missing_mask (``dtype``: the model's), replaced by
    ``fill_value``; how many were replaced).  The caller's array is never written: a copy
    when anything changes."""
    bad = missing_mask(values, dtype)
    n = int(np.count_nonzero(bad))
    if n:
        values = np.where(bad, fill_value, values)
    return values, n


def check_fill(fill, spec):
    """The fill values of a FeatureSpec as {column: float}, or None for none: each key a
    column the spec reads (a feature's name, or a term of a colour 'a-b'), each value a
    finite number.  ValueError naming the bad entry otherwise."""
    if fill is None:
        return None
    if not isinstance(fill, dict):
        raise ValueError(f"fill must be a dict {{column: value}} or None, got "
                         f"{type(fill).__name__}")
    readable = spec.columns_read()
    out = {}
    for column, value in fill.items():
        if not isinstance(column, str) or column not in readable:
            raise ValueError(f"fill names column {column!r}, which no feature reads; expected "
                             f"some of {readable}")
        number = None
        if not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float,
                                                                          np.number)):
            try:        # an int beyond float's range (10**400) is no finite number either
                number = float(value)
            except (OverflowError, TypeError, ValueError):
                number = None
        if number is None or not np.isfinite(number):
            raise ValueError(f"fill value for column {column!r} must be a finite number, got "
                             f"{value!r}")
        out[column] = number
    return out or None


class FeatureSpec:
    """The model's input features, in order: ``names`` (e.g. ``("u-g", "g-r")``).

    ``FeatureSpec("colors:ugriz")``, ``FeatureSpec(["u-g", "r"])``.  ``transform(table)``
    builds the (n, n_features) matrix from a table's raw columns: a column of the feature's
    name if there is one, else the difference of two magnitude columns for a colour
    ``a-b``.  A raw value in MISSING_VALUES (SDSS's -9999) is missing: NaN, so its row's
    features are NaN (as the catalog loaders and the C loader read it).

    ``fill``: optional {raw column: value} (``fastmlp train --missing impute-median`` stores
    the training catalog's column medians): a missing value (NaN, inf or -9999) of such a
    column is replaced by its value before the colours are formed, as training imputed it.
    The model file, the C loader and the ONNX export carry and apply it too."""

    fill = None     # no fill values (also for a spec pickled before they existed)

    def __init__(self, features, fill=None):
        if isinstance(features, FeatureSpec):
            fill = features.fill if fill is None else fill
            features = features.names
        if features is None:    # parse_feature_spec's "no spec"; a FeatureSpec must have one
            raise ValueError("features must be column names (strings), column indices or "
                             "'colors:<bands>', got None")
        self.names = tuple(parse_feature_spec(features))
        self.fill = check_fill(fill, self)

    def __len__(self):
        return len(self.names)

    def __eq__(self, other):
        return isinstance(other, FeatureSpec) and other.names == self.names \
            and getattr(other, "fill", None) == getattr(self, "fill", None)

    def __repr__(self):
        fill = f", fill={self.fill!r}" if getattr(self, "fill", None) else ""
        return f"FeatureSpec({list(self.names)!r}{fill})"

    def columns_read(self):
        """Every raw column a feature may read, in order: its own name, and for a colour
        'a-b' the magnitude columns a and b (the names a fill may give values for)."""
        out = []
        for name, (a, b) in zip(self.names, self.terms()):
            out += [name, a] + ([b] if b else [])
        return list(dict.fromkeys(out))

    def with_fill(self, fill):
        """A copy of this spec with the fill values ``fill`` ({column: value} or None)."""
        import copy
        out = copy.copy(self)
        out.fill = check_fill(fill, self)
        return out

    def fill_plan(self):
        """[('col', name) | ('diff', a, b)] per feature as a model with fill values reads it
        without seeing a table (the ONNX graph): the column of the feature's own name if it
        is a plain column or holds a fill value of its own, else the colour a - b."""
        fill = self.fill or {}
        return [("col", name) if not b or name in fill else ("diff", a, b)
                for name, (a, b) in zip(self.names, self.terms())]

    def plan(self, columns, where="table"):
        """[('col', name) | ('diff', a, b)] per feature for a table with ``columns``."""
        return resolve_features(self.names, list(columns), where)

    def terms(self):
        """(a, b) per feature as stored in a model file: the feature is column ``a`` when it
        names one of its own, else ``a - b`` (``b`` is "" for a plain column)."""
        out = []
        for f in self.names:
            a, sep, b = f.partition("-")
            out.append((a, b) if sep and a and b else (f, ""))
        return out

    def transform(self, table, dtype=np.float64, model_dtype=np.float64):
        """The feature matrix (n, n_features) of ``dtype`` from a table of raw columns (a
        missing value of a column with a fill value replaced by it first; ``model_dtype``:
        the model's, a value not finite in it is missing too, see missing_mask)."""
        return self.transform_counted(table, dtype, model_dtype)[0]

    def transform_counted(self, table, dtype=np.float64, model_dtype=np.float64):
        """(the feature matrix as transform gives it, {column: values filled}): how many
        missing values of each raw column read the fill values replaced."""
        columns = table_columns(table)
        if columns is None:
            raise TypeError("expected a table with named columns (DataFrame, pyarrow Table, "
                            f"structured array or dict), got {type(table).__name__}")
        steps = self.plan(columns)
        read = plan_sources(steps)
        raw, filled = {}, {}
        fill = getattr(self, "fill", None) or {}
        for c in read:              # each column once, however many features read it
            raw[c] = _column(table, c)
            if c in fill:
                raw[c], n = fill_missing(raw[c], fill[c], model_dtype)
                filled[c] = n
        n = len(raw[read[0]]) if read else 0
        out = np.empty((n, len(steps)), dtype=dtype)
        for j, step in enumerate(steps):
            out[:, j] = raw[step[1]] if step[0] == "col" else raw[step[1]] - raw[step[2]]
        return out, {c: k for c, k in filled.items() if k}
