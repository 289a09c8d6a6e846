"""MPI: exact synchronous data parallelism, one in-place Allreduce per mini-batch.

Run under ``mpirun -n P``, from Python (``fastmlp.distributed.mpi_fit(...)``) or the command
line (``python -m fastmlp.distributed.mpi --data catalog.npy ...``, see ``--help``).
Needs the ``mpi`` extra: mpi4py and an MPI (the PyPI ``mpich`` package ships mpirun).

Each rank holds rows ``[n r / P, n (r+1) / P)`` of the catalog (it reads only that slice of a
``.npy`` file, memory-mapped).  Rank r's local batch is ``batch_size / P`` rows (the remainder
goes to the first ranks), drawn from ``local_order(n_r, epoch, r, seed)``.  After every
mini-batch each rank puts ``W_r g_r`` (its weighted-mean gradient times its weight sum W_r),
``W_r``, ``W_r loss_r`` and a failure flag into one flat buffer, and one
``Allreduce(IN_PLACE, SUM)`` gives
``sum_r W_r g_r``, ``W`` and the loss numerator: divided by W this is exactly the gradient of
the weighted-mean loss over the union of the ranks' batches, so every rank applies the same
optimizer update and P ranks with B/P rows each compute what one process computes with the
global batch of B rows (up to floating-point summation order).  ``missing=`` and ``where=``
(``--missing``, ``--where``) are fastmlp train's: every rank filters its own rows, and
impute-median's medians of the whole catalog, sent by rank 0, become the model's fill
values.  Rank 0 writes checkpoints (atomically) and progress.  With ``validation=`` a
fraction of the catalog's rows (chosen by row index and seed, whatever the rank count) is
held out; after each epoch the ranks' validation sums are added up, so early stopping and
callbacks see the same History on every rank and all ranks stop after the same epoch.
"""

import argparse
import contextlib
import json
import math
import os
import sys
import time
import warnings

import numpy as np

from .. import backends
from ..atomic import refuse_overwrite, write_target
from ..buffers import aligned_empty_like
from .._validate import (argparse_number, check_array, check_positive, check_targets, counted,
                         largest_input, user_stacklevel)
from ..codes import LOSSES, loss_code
from ..data.catalog import (MAX_LABEL_CLASSES, class_index_ignoring_case, integer_label_limit,
                            positive_class_index)
from ..data.formats import (open_npy_catalog, parse_where, read_npy_columns, text_column,
                            try_float)
from ..data.standardize import Standardizer
from ..features import FeatureSpec, missing_mask, plan_sources
from ..model import MLP
from ..training.checkpoint import (STOPPER_KEYS, checked_run_checkpoint, checkpoint_history,
                                  column_identity, history_arrays, label_identity,
                                  restore_history, restore_stopper,
                                  restore_training_checkpoint, run_identity,
                                  save_training_checkpoint, stopper_arrays, stopping_identity)
from ..training.fit import set_trained_link
from ..training.fit_inputs import check_fit_args
from ..training.loop import (TRAIN_METRIC_ROWS, EarlyStopping, History, TrainingDiverged,
                             divergence_advice, diverged_message, loss_and_metric,
                             nonfinite_training_state, smaller_lr_advice, step_loss_seen,
                             target_scale_advice, train_epochs, training_setup)
from ..schedules import ScheduleWarning, warn_length
from ._common import (MISSING_POLICIES, apply_missing, binary_or_argmax_correct,
                      check_missing_policy, invalid_array_rows, invalid_table_rows,
                      missing_labels, refuse_label_features, training_spec)

try:
    from mpi4py import MPI
    AVAILABLE, UNAVAILABLE_REASON = True, ""
except Exception as _exc:  # pragma: no cover - depends on the environment
    MPI = None
    AVAILABLE, UNAVAILABLE_REASON = False, f"{type(_exc).__name__}: {_exc}"


def _require():
    if not AVAILABLE:
        raise ImportError("fastmlp.distributed.mpi needs mpi4py and an MPI: pip install "
                          f"'fastmlp[mpi]' ({UNAVAILABLE_REASON})")


def slice_bounds(n, rank, size):
    """Rows [lo, hi) of the catalog that ``rank`` of ``size`` holds."""
    return n * rank // size, n * (rank + 1) // size


def local_batch_size(batch_size, rank, size):
    """Rank ``rank``'s share of the global batch (the remainder goes to the first ranks)."""
    return batch_size // size + (1 if rank < batch_size % size else 0)


def local_order(n_local, epoch, rank, seed):
    """The order in which ``rank`` visits its rows in ``epoch``."""
    return np.random.default_rng([seed, epoch, rank]).permutation(n_local)


def read_slice(path, features, label, rank, size, positive=None, dtype=np.float64,
               where=None, model_dtype=np.float64, missing=None, comm=None):
    """(X_local, y_local, n_total) from a ``.npy`` file (structured array with named fields, or
    a plain 2-D array whose columns are named by index: "0", "1", ...), reading only this
    rank's rows (memory-mapped).  ``features``: names or a FeatureSpec, read as the model
    reads a table (a colour ``a-b`` of two fields, SDSS's -9999 missing, the spec's fill
    values replacing missing values; ``model_dtype``: the model's, beyond whose range a
    value is missing).  ``where``: a row filter as fastmlp train's --where (Where or its
    text): only the rows it keeps are returned.  ``missing``: None (every row), or
    fastmlp train's --missing policy for the rows its loader does not train on (a missing
    source value without a fill value, a feature beyond ``model_dtype``, a missing label:
    NaN, inf, -9999 or a null / empty / "NA" text, fastmlp.data.stream.missing_labels):
    "error" refuses them naming this rank, "drop" and "impute-median" leave them out.
    ``positive``: the positive class, as fastmlp train's --positive names it
    (fastmlp.data.catalog.positive_class_index): a label value such as 0 for the quasars of
    the SDSS DR6 file, or "QSO" in a column of class names (matched as the loader reads
    names: bytes decoded, blanks stripped, case-insensitive when unambiguous); with it the
    labels are the loader's classes (load_catalog's coding, class_labels: integer labels
    0..C-1 keep their values, names sorted are 0..C-1, a missing label is -1), so the
    positive class keeps its label; without it labels are used as they are (text labels
    are refused: TypeError naming the column).  A ``positive`` that is not one of the
    labels, or that no row holds, is refused (ValueError naming it and labels seen):
    judged over the rows of every rank of ``comm`` (then a collective call: every rank of
    ``comm`` calls read_slice, and a failure on one stops them all) or, without ``comm``,
    over the rows this call returns.
    n_total: the file's rows."""
    def own_rows():
        return _slice_rows(path, features, label, rank, size, positive is not None, dtype,
                           where, model_dtype, missing)
    X, y, n = own_rows() if comm is None else _on_every_rank(comm, own_rows)
    if positive is not None:
        _, values, _ = agreed_classes(comm, y, positive, _column_name(label), os.fspath(path))
        y = class_labels(y, values)
    return X, y, n


def _slice_rows(path, features, label, rank, size, text_labels, dtype, where, model_dtype,
                missing):
    """read_slice's rows and labels as in the file (text labels refused unless
    ``text_labels``: with a positive class they are mapped to classes).  No collective
    call."""
    path = os.fspath(path)
    if not path.endswith(".npy"):
        raise ValueError(f"read_slice reads .npy files, got {path!r}")
    columns, data = read_npy_columns(path, mmap_mode="r")
    spec, label = FeatureSpec(features), _column_name(label)
    if label not in columns:
        raise ValueError(f"{path}: label column {label!r} not found; available columns: "
                         f"{columns}")
    refuse_label_features(spec, columns, label, path)
    n = len(data[columns[0]])
    lo, hi = slice_bounds(n, rank, size)
    part = kept_rows(data, lo, hi, _checked_where(where, columns, path), path,
                     source_columns(spec, columns, path) + [label])
    X = spec.transform(part, dtype=dtype, model_dtype=model_dtype)
    y = part[label]
    if not text_labels:
        refuse_text_labels(y, f"{path}: label column {label!r}", TEXT_LABEL_REMEDY)
    if missing is not None:
        invalid, counts = invalid_table_rows(part, spec, X, y, label, model_dtype)
        X, y = apply_missing(X, y, invalid, counts, missing,
                             f"{path} (rank {rank}, rows {lo}..{hi - 1})", MISSING_REMEDY)
    return X, y, n


def label_keys(y):
    """The labels as the loader reads them: float64 numbers (numbers written as text too,
    try_float) or, in a column of class names, text (text_column: bytes decoded, blanks
    stripped)."""
    num = try_float(y)
    return num if num is not None else text_column(y)


def class_labels(y, values):
    """The loader's class (int64) of every label of ``y``: its index in ``values`` (the
    sorted label values or class names of loader_classes), -1 for a missing label or one
    not among them; labels compared as label_keys reads them (b"QSO" or "QSO " is the
    class "QSO"), so the classes are load_catalog's: fastmlp train's coding."""
    keys = label_keys(np.asarray(y))
    table = np.asarray(values, dtype=np.float64 if keys.dtype.kind == "f" else str)
    at = np.minimum(np.searchsorted(table, keys), table.size - 1)
    return np.where(table[at] == keys, at, -1).astype(np.int64)


#: how many labels a message on a positive class that names none shows
SEEN_LABELS = 8


def label_counts(y):
    """{"string": {class name: rows}, "number": {label value: rows}, "fractional": whether
    a label value is not an integer, "unlisted": distinct values left out} of the labels
    ``y`` (label_keys), a missing label (NaN, inf, -9999, a null / empty / "NA" text) left
    out, as the streaming loader counts a catalog's labels.  Non-integer numbers are a
    regression target, no classes: SEEN_LABELS of them are listed, not one a row for
    every rank to receive."""
    y = np.asarray(y)
    keys = label_keys(y)[~missing_labels(y)]
    values, rows = np.unique(keys, return_counts=True)
    counts = {"string": {}, "number": {}, "fractional": False, "unlisted": 0}
    if keys.dtype.kind == "f" and not np.all(values == np.round(values)):
        counts.update(fractional=True, unlisted=max(values.size - SEEN_LABELS, 0))
        values, rows = values[:SEEN_LABELS], rows[:SEEN_LABELS]
    counts["number" if keys.dtype.kind == "f" else "string"] = dict(
        zip(values.tolist(), rows.tolist()))
    return counts


def merged_label_counts(all_counts):
    """The label_counts of every rank added up (the same result on every rank)."""
    merged = {"string": {}, "number": {}, "fractional": False, "unlisted": 0}
    for counts in all_counts:
        for kind in ("string", "number"):
            for key, rows in counts[kind].items():
                merged[kind][key] = merged[kind].get(key, 0) + rows
        merged["fractional"] |= counts["fractional"]
        merged["unlisted"] += counts["unlisted"]
    return merged


def agreed_classes(comm, y, positive, label, path, index=False):
    """(class names, the label value of each, index of the positive class) of the labels
    of every rank of ``comm`` (of ``y`` alone without one), as fastmlp train reads its
    labels and --positive.  Every rank adds up the same counts, so a positive that names
    no class, or one no row holds, is refused on every rank together: one rank refusing
    alone would leave the others waiting in their next collective call.  A collective
    call."""
    if comm is None:
        counts = label_counts(y)
    else:
        counts = merged_label_counts(comm.allgather(
            _on_every_rank(comm, lambda: label_counts(y))))
    return positive_class(counts, positive, label, path, index)


def positive_class(counts, positive, label, path, index=False):
    """(class names, the label value of each, index of the positive class) for the labels
    counted in ``counts`` (label_counts) and the class ``positive`` names:
    positive_class_index, fastmlp train's reading of --positive, on the loader's class
    names; a ValueError naming ``positive`` and labels seen when it names no class or no
    row holds it (a positive class without rows: a useless model)."""
    if isinstance(positive, bytes):
        positive = positive.decode()
    seen = labels_seen(counts)
    if not seen:
        raise ValueError(f"{path}: label column {label!r} holds no labels (all missing or "
                         f"filtered out) for positive={positive!r} to name")
    names, values = loader_classes(counts, label, path)
    if index and not positive < len(names):
        raise ValueError(f"{path}: positive names the model's class {positive}, but label "
                         f"column {label!r} holds {counted(len(names), 'class', 'classes')} "
                         f"{names}; labels seen: {seen}")
    try:
        k = positive_class_index(positive if index else _as_loader_name(positive, names, counts),
                                 names, label)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}; labels seen: {seen}") from None
    rows = counts["string"] or counts["number"]
    if sum(rows.get(v, 0) > 0 for v in values) < 2:
        raise ValueError(f"{path}: label column {label!r} holds one class on every rank "
                         f"together ({seen}): a classifier needs at least two classes")
    if rows.get(values[k], 0) == 0:
        raise ValueError(f"{path}: positive={positive!r} (the class {names[k]!r}) is the "
                         f"label of no row of label column {label!r} on any rank, so the "
                         f"model would have no row of it to learn from; labels seen: "
                         f"{seen}: pass one of them")
    return names, values, k


def check_outputs_fit_classes(model, names, label, path):
    """A ValueError unless the model's output layer fits the classes ``names`` as fastmlp
    train builds it: one output (a sigmoid, bce) for two classes, one per class
    (cross_entropy) otherwise.  The classes are the same on every rank (agreed_classes),
    so every rank refuses together, before training."""
    n_out = model.n_outputs
    if n_out == len(names) or (n_out == 1 and len(names) == 2):
        return
    fits = "1 (or 2)" if len(names) == 2 else str(len(names))
    sizes = list(model.layer_sizes[:-1]) + [1 if len(names) == 2 else len(names)]
    raise ValueError(f"{path}: label column {label!r} holds "
                     f"{counted(len(names), 'class', 'classes')} {names}, but the model has "
                     f"{counted(n_out, 'output')}: give the last layer {fits} (e.g. "
                     f"MLP({sizes}), --layers {','.join(map(str, sizes))})")


def _as_loader_name(positive, names, counts):
    """An integer label value as the loader's name of it when it has one: -1 of -1 / +1
    labels is the class "-1" (positive_class_index reads an integer as an index), so a
    label value means the same given as a number (mpi_fit's) or as text (--positive's)."""
    if counts["number"] and names is not None and isinstance(positive, (int, np.integer)) \
            and not isinstance(positive, (bool, np.bool_)) and str(int(positive)) in names:
        return str(int(positive))
    return positive


def loader_classes(counts, label, path):
    """(class names, the label value of each) of the labels counted in ``counts``, as the
    loader names them (fastmlp.data.stream's scan): text labels sorted; integers 0..C-1
    (C at least 2) or, with a negative one among them, the sorted values; (None, None)
    for non-integer numbers, a regression target."""
    text, numbers = counts["string"], counts["number"]
    if text and numbers:
        raise ValueError(f"{path}: label column {label!r} mixes names and numbers")
    if text:
        names = sorted(text)
        return names, names
    if counts["fractional"]:
        return None, None
    values = sorted(numbers)
    if values[0] < 0:
        return [str(int(v)) for v in values], values
    top = int(values[-1]) + 1
    if top > integer_label_limit(sum(numbers.values())):
        raise ValueError(f"{path}: label column {label!r} holds the integer {top - 1}: class "
                         f"labels must be 0..C-1 with C at most max({MAX_LABEL_CLASSES}, "
                         "rows); is it a regression target or an id column?")
    top = max(top, 2)
    return [str(k) for k in range(top)], [float(k) for k in range(top)]


def labels_seen(counts):
    """Up to SEEN_LABELS of the labels counted in ``counts`` with their rows, for a
    message: "0 (412 rows), 1 (300 rows)"."""
    table = sorted(counts["string"].items()) + sorted(counts["number"].items())
    shown = [f"{_label_text(key)} ({counted(rows, 'row')})"
             for key, rows in table[:SEEN_LABELS]]
    more = len(table) - len(shown) + counts["unlisted"]
    return ", ".join(shown) + (" and others" if more > 0 else "")


def _label_text(key):
    """A label as a message shows it: a class name quoted, an integer value as one."""
    if isinstance(key, str):
        return repr(key)
    return str(int(key)) if key == round(key) else f"{key:g}"


#: what to do with a catalog's text labels (class names), which mpi_fit does not map
TEXT_LABEL_REMEDY = ("pass positive=<the name of the positive class>, write the classes as "
                     "integers 0..C-1, or train with fastmlp train / load_catalog, which map "
                     "class names to classes")


def refuse_text_labels(y, what, remedy):
    """A TypeError naming ``what`` when the labels ``y`` are text or Python objects:
    mpi_fit maps class names to classes only with positive= on a catalog, so
    they are refused before their missing values are judged (else a null / empty label
    was refused first, and the rest as text once it was dropped)."""
    dtype = np.asarray(y).dtype
    if dtype.kind in "OUS":
        held = "text labels" if dtype.kind in "US" else "Python objects"
        raise TypeError(f"{what} holds {held} (dtype {dtype}), not numbers; {remedy}")


def _column_name(label):
    """A label given as a column index (a plain 2-D array's) as its column's name."""
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return str(int(label))
    return str(label)


def _checked_where(where, columns, path):
    """``where`` (None, a Where or its text) parsed and checked against ``columns``."""
    where = parse_where(where)
    if where is not None:
        where.check(columns, path)
    return where


def source_columns(spec, columns, path):
    """The raw columns the features of ``spec`` read from a catalog with ``columns`` (a
    colour's two magnitude columns), in order: what impute-median takes medians of."""
    return plan_sources(spec.plan(columns, path))


def kept_rows(data, lo, hi, where, path, columns):
    """{column: NumPy array} of the rows lo .. hi-1 of a catalog's (memory-mapped) columns
    ``data`` that ``where`` keeps (all of them without one): ``columns`` only, read now."""
    part = {c: v[lo:hi] for c, v in data.items()}
    if where is None:
        return {c: np.asarray(part[c]) for c in columns}
    keep = where.mask(part, path, lo)      # lo: a bad value named at its catalog row
    return {c: np.asarray(part[c])[keep] for c in columns}


#: rows per read of catalog_medians: besides one column's valid values (float64) and the
#: rows a where= keeps (one byte a row), a piece of this many rows is in memory at a time
MEDIAN_CHUNK_ROWS = 1 << 20


def catalog_medians(path, spec, where=None, model_dtype=np.float64):
    """{raw column: median of its valid values} for the source columns of ``spec``'s
    features over the rows of the whole .npy catalog that ``where`` keeps, as fastmlp train
    --missing impute-median (and distributed.fit on Dask) takes them: exact, the valid
    values (missing_mask's rule) gathered from the memory-mapped file in pieces."""
    path = os.fspath(path)
    columns, data = read_npy_columns(path, mmap_mode="r")
    where = _checked_where(where, columns, path)
    sources = source_columns(FeatureSpec(spec), columns, path)
    kept = None if where is None else where_mask(data, where, path)
    return {c: column_median(data[c], kept, c, model_dtype) for c in sources}


def where_mask(data, where, path):
    """The catalog rows ``where`` keeps (one byte a row), evaluated MEDIAN_CHUNK_ROWS rows at
    a time."""
    n = len(next(iter(data.values())))
    pieces = [where.mask({c: v[lo:lo + MEDIAN_CHUNK_ROWS] for c, v in data.items()}, path, lo)
              for lo in range(0, n, MEDIAN_CHUNK_ROWS)]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=bool)


def column_median(column, kept, name, model_dtype):
    """The median of a (memory-mapped) column's valid values (missing_mask's rule) among the
    rows ``kept`` (all without a mask): one float64 buffer of the column's length, filled
    MEDIAN_CHUNK_ROWS rows at a time and partitioned in place, so one column's values are in
    memory at a time."""
    n = len(column)
    buf, k = np.empty(n if kept is None else int(np.count_nonzero(kept)), np.float64), 0
    for lo in range(0, n, MEDIAN_CHUNK_ROWS):
        values = np.asarray(column[lo:lo + MEDIAN_CHUNK_ROWS], dtype=np.float64)
        if kept is not None:
            values = values[kept[lo:lo + MEDIAN_CHUNK_ROWS]]
        values = values[~missing_mask(values, model_dtype)]
        buf[k:k + values.size] = values
        k += values.size
    if k == 0:
        raise ValueError(f"column {name!r} has no valid values to take a median of "
                         "(missing='impute-median')")
    return float(np.median(buf[:k], overwrite_input=True))


#: what a rank says of a row with a missing value under missing='error' (Dask's words)
MISSING_REMEDY = ("drop or clean those rows before distributed training, or pass "
                  "missing='drop' (or 'impute-median' for a .npy catalog with named fields; "
                  "--missing on the command line)")


def catalog_spec(comm, model, path, features, label, missing, where):
    """The FeatureSpec a .npy catalog is read with: for a structured array training_spec's
    (the model's own when it has fill values), with the medians of the whole catalog (the
    rows ``where`` keeps) as fill values under missing='impute-median' when it has none:
    rank 0 reads the memory-mapped columns and sends them, so every rank has the same
    numbers.  A plain 2-D array's columns are indices: its spec names them "0", "1", ...
    and stays out of the model.  A feature reading the ``label`` column (a field name, or
    a plain array's column index) is refused here, before any medians or rows are read.
    A collective call."""
    rank = comm.Get_rank()

    def own_spec():
        spec = _catalog_feature_spec(model, os.fspath(path), features, missing)
        columns, _ = read_npy_columns(os.fspath(path), mmap_mode="r")
        refuse_label_features(spec, columns, _column_name(label), os.fspath(path))
        return spec
    spec = _on_every_rank(comm, own_spec)
    if missing != "impute-median" or spec.fill:     # a model's fill values: imputes with them
        return spec
    medians = _on_every_rank(comm, lambda: catalog_medians(
        path, spec, where, model.dtype) if rank == 0 else None)
    return spec.with_fill(comm.bcast(medians, root=0))


def _catalog_feature_spec(model, path, features, missing):
    """The FeatureSpec of ``features`` for the .npy catalog at ``path``: training_spec's
    for a structured array; a plain 2-D array's (columns "0", "1", ...) as given, refused
    under missing='impute-median' (its medians would have no column names to keep)."""
    names = open_npy_catalog(path, mmap_mode="r").dtype.names
    if names:
        return training_spec(features, model, list(names), path)
    if missing == "impute-median":
        raise ValueError(f"missing='impute-median' needs a structured .npy with named "
                         f"fields (the medians become the model's fill values per "
                         f"column); {path} is a plain 2-D array: impute it "
                         "yourself, or use missing='drop'")
    return FeatureSpec(features)


def keep_features(model, path, spec):
    """A structured .npy's features (``spec``, with the fill values it imputed) as the
    model's features, so that the trained (and --save'd) model reads a table with those
    columns as it was trained, as fastmlp train's model does."""
    if not open_npy_catalog(os.fspath(path), mmap_mode="r").dtype.names:
        return          # a 2-D array's columns are indices, not names
    if spec != model.features:
        model.set_contract(features=spec)


def mpi_fit(model, X=None, y=None, path=None, features=None, label=None, positive=None,
            comm=None, local=False, epochs=10, batch_size=256, optimizer="adam", lr=None,
            schedule=None, seed=0, loss=None, standardize=False, checkpoint=None,
            resume=False, progress=True, backend=None, n_threads=1, optimizer_kwargs=None,
            validation=0.0, early_stopping=None, callbacks=(), missing="error", where=None):
    """Synchronous data-parallel training over the ranks of ``comm`` (default COMM_WORLD).

    Data, one of: ``path`` (a .npy catalog; each rank reads only its slice) with
    ``features`` and ``label`` (and ``positive``: the positive class, as fastmlp train's
    --positive names it, a label value such as 0 or, in a column of class names, a name
    such as "QSO", matched as the loader reads names: bytes decoded, blanks stripped,
    case-insensitive when unambiguous; one that is not among the labels of any rank, or
    that no row holds, is refused on every rank, naming it and labels seen; with it the
    labels are coded as fastmlp train / load_catalog code them, integer labels 0..C-1
    keeping their values and class names sorted becoming 0..C-1, the model must have one
    output for two classes or one per class (refused on every rank before training), and
    its contract gets the class names and the positive class, so a saved model predicts
    in the file's coding; text labels without it are refused, naming the column);
    ``X, y`` (numbers) holding the whole catalog on
    every rank (each keeps its slice); or ``X, y`` holding this rank's rows only
    (``local=True``).  A structured .npy's features are field names or colours ``a-b`` of
    two fields, read as the model reads a table (SDSS's -9999 is missing); the model keeps
    them (with any fill values) as its features.
    Which values are missing depends on how the data come, as everywhere in fastmlp: a
    .npy catalog's columns (structured or plain 2-D) are read as a table, so SDSS's -9999
    in a feature is missing; an array ``X`` is taken as it is, as by ``fastmlp.fit(X, y)``
    and ``distributed.fit`` on arrays: a feature there is missing only when NaN, inf or
    beyond the model's dtype, and -9999 is a number (write NaN there to have such rows
    dropped or refused).  A label is missing on both when NaN, inf or -9999, and in a
    column of class names (with ``positive``) when a null / empty / "NA" text (the
    loader's rule, fastmlp.data.stream.missing_labels).
    missing: a row with a missing feature (NaN, inf, a .npy catalog's -9999, a value
      beyond the model's dtype) or a missing label, as fastmlp train's --missing and
      distributed.fit's: "error" (refused, naming the rank), "drop" (every rank leaves out
      its rows with one: the same rows whatever the number of ranks) or "impute-median" (a
      structured .npy only: every source column's median over the whole catalog, exact,
      computed by rank 0 and sent to the others, becomes the model's fill value,
      FeatureSpec.fill, so that predictions, the model file, ONNX and C impute as training
      did; a row still invalid after imputing, a colour beyond the dtype or a missing
      label, is left out as the loader leaves it out).  A model whose features already
      have fill values imputes with those, whatever ``missing`` (not on a plain 2-D .npy,
      whose columns have no names).
    where: a filter on a .npy catalog's rows, as fastmlp train's --where ("r < 21 and
      u-g > 0.5": a name a-b that is not a field is the colour a - b), applied first (the
      medians are those of the rows kept).
    batch_size: the GLOBAL batch B; rank r uses B/P rows per step.  An epoch is as many steps
      as the rank needing most of them takes to visit all its rows (ceil(n / B) when P
      divides B and n); every row is used once per epoch.
    schedule: as fit's; one whose warm-up, T or step_size does not fit in the run (steps per
      epoch x epochs) is warned of by rank 0 (a ScheduleWarning, as fit's).
    standardize: when the model has no standardisation yet, the per-column mean and standard
      deviation of the whole catalog (every rank's moments merged in rank order) become the
      model's standardisation, so model.predict takes raw features afterwards.
    validation: a fraction in [0, 1) of the catalog held out (0: none).  Row i of the
      catalog (the ranks' rows in rank order) is held out when a hash of (seed, i) falls
      below the fraction, so the held-out rows depend on the seed and the catalog only,
      not on the number of ranks (about that fraction of the rows: not stratified, unlike
      fit's).  After each epoch the validation loss and metric are summed over the ranks,
      so every rank has the same ``val_loss`` and ``metrics["val_accuracy"]`` (or
      ``"val_rmse"``), as fit's History.
    early_stopping: as in fit (None, True, a patience in epochs, or {"patience": p,
      "min_delta": d}; needs validation), decided from the merged validation loss, so every
      rank stops after the same epoch; the best parameters are restored.
    callbacks: as in fit, ``cb(epoch, history, model)`` returning True to stop; called on
      EVERY rank, with the same history and parameters there (a callback that changes the
      model or optimizer keeps the ranks identical; one that writes files should do it on
      ``comm.Get_rank() == 0``).  Training stops when it returns True on any rank; one that
      raises on a rank stops every rank (the others raise a RuntimeError naming it).
    checkpoint: rank 0 writes parameters, optimizer state, step (and early-stopping state)
      atomically after every epoch.  resume=True continues from that file when it exists
      (rank 0 reads it and sends it to the others): the epochs it holds are skipped and the
      rest train as the uninterrupted run would; a checkpoint of another run (other rates,
      batch, ranks, seed, validation, early stopping, standardize, data size, column
      statistics or labels, known by the means of y and of y times each column) is
      refused, and so is one written before the labels and standardize were part of a
      run's identity.
      progress: rank 0 prints one line per epoch.
    Returns the same History on every rank (a resumed run's holds every epoch, those the
    checkpoint kept first, as fit's; loss per epoch, ``batch_loss`` and ``lr`` per step,
    ``metrics["accuracy"]``, ``samples_per_s``, validation as above) plus
    ``history.distributed``: ranks, steps, training rows, bytes per Allreduce, seconds spent
    in Allreduce and in computing.
    """
    _require()
    comm = MPI.COMM_WORLD if comm is None else comm
    rank, size = comm.Get_rank(), comm.Get_size()
    loss, code, stopper = _on_every_rank(comm, lambda: _checked_arguments(
        model, comm, loss, epochs, batch_size, lr, seed, standardize, resume, checkpoint,
        validation, early_stopping, callbacks))
    where = _on_every_rank(comm, lambda: _checked_filters(path, features, label, missing,
                                                          where))
    _check_ranks_agree(comm, _run_settings(
        model, loss, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
        schedule=schedule, optimizer_kwargs=optimizer_kwargs, seed=seed,
        standardize=standardize, local=local, path=path is not None,
        checkpoint=checkpoint is not None, resume=resume, validation=validation,
        early_stopping=stopping_identity(stopper), missing=missing,
        where=None if where is None else where.text))
    Xl, Yl, n = _training_rows(comm, model, loss, X, y, path, features, label, positive,
                               local, missing, where)
    stats = _standardize(comm, Xl, model, standardize, checkpoint is not None)
    labels = None if checkpoint is None else label_fingerprint(comm, Xl, Yl)
    Xl = _on_every_rank(comm, lambda: check_array(model.transform_inputs(Xl),
                                                  f"X (rank {rank})", model.n_inputs,
                                                  model.dtype, remedy=MISSING_REMEDY))
    (Xl, Yl, n_train), val = _held_out(comm, Xl, Yl, n, float(validation), seed)
    set_trained_link(model, loss)    # as fit: the link follows the loss
    with backends.threads(n_threads):
        opt, sched, name, kernels = training_setup(model, optimizer, lr, optimizer_kwargs,
                                                   schedule, backend)
        model.optimizer = opt
        run = _run_identity(model, opt, schedule, n, size, batch_size, seed, loss, stats,
                            validation, stopper, labels, standardize)
        hist = History(backend=name, loss_name=loss, optimizer=opt)
        done = _resume_point(comm, resume, checkpoint, model, opt, run, stopper, hist)
        # identical starting point on every rank
        comm.Bcast(model.params, root=0)
        comm.Bcast(opt.state, root=0)
        steps = _AllreduceSteps(comm, model, opt, sched, kernels, Xl, Yl, n_train, batch_size,
                                seed, code, loss, hist)
        # every rank has the same steps per epoch (their maximum): rank 0 says it once, and
        # a warning turned into an error (-W error) stops every rank, not rank 0 alone
        # while the others wait in the first step's Allreduce
        _on_every_rank(comm, lambda: rank == 0 and warn_length(
            sched, steps.steps * epochs, stacklevel=user_stacklevel()))
        steps.info["steps"] = done[1]
        steps.info["resumed_from_epoch"] = done[0]
        ends = _EpochEnd(comm, model, kernels, code, val, stopper, callbacks, steps.describe)

        def after_epoch(epoch):
            if checkpoint is not None:    # rank 0 writes; a failure stops every rank
                _on_every_rank(comm, lambda: rank == 0 and save_training_checkpoint(
                    checkpoint, model, opt, steps.info["steps"], epoch + 1,
                    *(model.standardization or (None, None)),
                    run=np.array(json.dumps(run)), **stopper_arrays(stopper, hist),
                    **history_arrays(hist)))

        # the one epoch loop; what differs is one Allreduce of the gradient per mini-batch
        # and the validation, early stopping and callbacks agreed over the ranks (ends)
        return train_epochs(model, epochs, steps.epoch, kernels=kernels, code=code,
                            hist=hist, stopper=stopper, callbacks=[ends],
                            progress=progress and rank == 0, desc="mpi fit",
                            train_metric=steps.train_metric, describe=ends.describe,
                            after_epoch=after_epoch,
                            start_epoch=epochs if hist.stopped_early else min(done[0], epochs))


def _training_rows(comm, model, loss, X, y, path, features, label, positive, local, missing,
                   where):
    """(this rank's rows X (float64) and targets Y, the rows over every rank): read (a .npy
    catalog's through its FeatureSpec, catalog_spec), filtered by ``where``, rows with a
    missing feature dropped or refused as ``missing`` says, checked on every rank at once;
    with a catalog's ``positive`` class the labels become the loader's classes, agreed
    over the ranks (agreed_classes: fastmlp train's coding, the positive class keeps its
    label) and the model, refused unless its outputs fit them, takes the class names and
    the positive class into its contract, as fastmlp train's model.  The model takes a
    structured .npy's features (and fill values) into its contract."""
    rank = comm.Get_rank()
    spec = None if path is None else catalog_spec(comm, model, path, features, label, missing,
                                                  where)

    def own_rows():    # this rank's rows, checked before any collective call
        Xl, yl = _rank_rows(comm, X, y, path, spec, label, positive, local, where,
                            model.dtype, missing)
        if Xl.ndim != 2 or Xl.shape[1] != model.n_inputs:
            raise ValueError(f"X must have shape (n, {model.n_inputs}), got {Xl.shape}")
        if path is None:            # row by row: the same rows whatever the ranks
            refuse_text_labels(yl, f"y (rank {rank})", "map the class names to integers "
                               "0..C-1 first")
            Xl, yl = _valid_array_rows(Xl, yl, missing, rank, model.dtype)
        check_array(Xl, f"X (rank {rank})", model.n_inputs, np.float64,
                    remedy=MISSING_REMEDY)
        if path is not None:
            keep_features(model, path, spec)
        return Xl, yl

    Xl, yl = _on_every_rank(comm, own_rows)
    n = comm.allreduce(Xl.shape[0], op=MPI.SUM)     # the catalog: every rank's rows
    if n == 0:         # the same n on every rank: all stop here (steps would divide by 0)
        raise ValueError("the catalog is empty: no rank holds any rows" + (
            "" if where is None and missing != "drop" else
            f" (where={None if where is None else where.text!r}, missing={missing!r})"))
    if path is not None and positive is not None:
        yl = _coded_classes(comm, model, yl, positive, _column_name(label), os.fspath(path))
    Yl = _on_every_rank(comm, lambda: check_targets(yl, Xl.shape[0], loss, model.n_outputs,
                                                    model.dtype))
    return Xl, Yl, n


def _coded_classes(comm, model, yl, positive, label, path):
    """This rank's labels ``yl`` as the loader's classes agreed over the ranks, once the
    model's outputs are checked to fit them; the class names and the positive class go
    into the model's contract (a saved model predicts in the file's coding).  The same
    classes on every rank: a refusal stops every rank together.  A collective call."""
    own = _named_by_model(model, positive)
    names, values, k = agreed_classes(comm, yl, positive if own is None else own, label, path,
                                      index=own is not None)
    check_outputs_fit_classes(model, names, label, path)
    model.set_contract(class_names=_contract_names(model, names, values, label, path),
                       positive=_contract_positive(model, names, k, path))
    return class_labels(yl, values)


def _named_by_model(model, positive):
    """The index of the model's own class ``positive`` names (ignoring case when one
    matches), or None: MLP(class_names=["QSO", "STAR"]) on labels 0 / 1 keeps its names
    (_contract_names), so positive="QSO" means class 0 there -- an index into the classes,
    never read as a label value (of labels -1 / 0 / 1, index 0 is the label -1)."""
    if isinstance(positive, str) and model.class_names is not None:
        return class_index_ignoring_case(positive, model.class_names)
    return None


def _contract_names(model, names, values, label, path):
    """The class names the model keeps: its own when it has them for integer labels (they
    name the classes 0, 1, ... as train's --class-names does), else the catalog's; a
    model naming other classes than a column of names holds is refused (its predictions
    would be read in another coding)."""
    own = model.class_names
    if own is None or len(own) != len(names):
        return [str(c) for c in names]
    if not isinstance(values[0], str) or list(own) == list(names):
        return list(own)
    raise ValueError(f"{path}: label column {label!r} holds the classes {list(names)}, but "
                     f"the model's class_names are {list(own)}: set "
                     "model.set_contract(class_names=None) to take the catalog's")


def _contract_positive(model, names, k, path):
    """The positive class index k, refused when the model already names another (its
    threshold means that class), as fit_stream refuses it."""
    if model.positive is not None and model.positive != k:
        raise ValueError(f"{path}: positive names the class {k} ({names[k]!r}), but the "
                         f"model's positive class is {model.positive}: pass that one, or "
                         "set model.set_contract(positive=None, threshold=None) to take it")
    return int(k)


def _checked_arguments(model, comm, loss, epochs, batch_size, lr, seed, standardize, resume,
                       checkpoint, validation, early_stopping, callbacks):
    """(loss name, loss code, EarlyStopping) once the arguments are checked.  Run on every
    rank at once (_on_every_rank): one rank refused alone left the others waiting in the
    agreement's allgather."""
    if not isinstance(model, MLP):
        raise TypeError(f"model must be a fastmlp.MLP, got {type(model).__name__}")
    check_positive(epochs, "epochs", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_fit_args(model, epochs, batch_size, lr, callbacks, seed, standardize)
    if resume and checkpoint is None:
        raise ValueError("resume=True continues from checkpoint=PATH; no checkpoint was "
                         "given")
    if batch_size < comm.Get_size():
        raise ValueError(f"batch_size ({batch_size}) must be at least the number of ranks "
                         f"({comm.Get_size()})")
    if isinstance(validation, bool) or not isinstance(validation, (int, float, np.integer,
                                                                   np.floating)) \
            or not 0 <= validation < 1:
        raise ValueError("validation must be a fraction in [0, 1) of the catalog to hold out "
                         f"(0: none; mpi_fit takes no (X_val, y_val) pair), got {validation!r}")
    stopper = EarlyStopping(early_stopping, validation > 0)
    name = loss if loss is not None else model.default_loss()
    return name, loss_code(name), stopper


def _checked_filters(path, features, label, missing, where):
    """``where`` parsed, once the data arguments, missing= and where= are checked (as
    distributed.fit checks them): where= and missing='impute-median' (fill values per
    column) need a .npy catalog's columns (path=); missing='drop' takes an array's rows
    too.  Run on every rank at once."""
    if path is not None and (features is None or label is None):
        raise ValueError("path= needs features= and label=")
    check_missing_policy(missing)
    where = parse_where(where)
    if path is None and where is not None:
        raise ValueError("where= filters a .npy catalog's named columns (path=); X is an "
                         "array: filter its rows before mpi_fit, or pass path= with "
                         "features= and label=")
    if path is None and missing == "impute-median":
        raise ValueError("missing='impute-median' needs path= (a structured .npy) with "
                         "features=[field names] and label= (the medians become the model's "
                         "fill values per column); X is an array: impute it yourself, or use "
                         "missing='drop'")
    return where


def validation_rows(first, count, fraction, seed):
    """Which of the catalog's rows first .. first+count-1 are held out for validation (a
    boolean mask): row i is when a SplitMix64 hash of (seed, i), as a number in [0, 1)
    (its top 53 bits), is below ``fraction``, so the choice depends on the seed and the
    row's index in the catalog only, not on the number of ranks or where their slices
    begin.  seed None counts as 0 (seeds beyond 2^64 wrap)."""
    with np.errstate(over="ignore"):
        z = np.arange(first, first + count, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z += np.uint64(0xD1B54A32D192ED03) * np.uint64((int(seed or 0) + 1) % 2 ** 64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53 < fraction


def _held_out(comm, Xl, Yl, n, fraction, seed):
    """((training X, Y of this rank, training rows over all ranks), (X_val, Y_val) of this
    rank or None without validation).  The ranks' rows are consecutive in the catalog, so
    this rank's first row is the rows of the ranks before it (one exscan).  Every rank
    stops together when the split leaves no validation or no training rows."""
    if not fraction:
        return (Xl, Yl, n), None
    first = comm.exscan(Xl.shape[0], op=MPI.SUM) if comm.Get_size() > 1 else 0
    held = validation_rows(first or 0, Xl.shape[0], fraction, seed)
    n_val = comm.allreduce(int(held.sum()), op=MPI.SUM)
    if n_val == 0 or n_val == n:
        raise ValueError(f"validation={fraction} holds out {n_val} of the catalog's {n} "
                         "rows, leaving no " + ("validation" if n_val == 0 else "training")
                         + " rows; use another fraction or validation=0")
    keep = ~held
    return (Xl[keep], Yl[keep], n - n_val), (Xl[held], Yl[held])


def _comparable(value):
    """A setting as the ranks can compare it: numbers, strings and their containers as
    they are; anything else (a schedule or optimizer object) by its type."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _comparable(v) for k, v in sorted(value.items(), key=str)}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return f"<{type(value).__name__}>"


def _run_settings(model, loss, **settings):
    """What every rank must agree on before the first collective call that moves buffers:
    the network (a different size or dtype makes Bcast / Allreduce wait forever or read
    garbage), the loss, and the settings that fix the number and the content of the steps."""
    own = {"layer sizes": [int(s) for s in model.layer_sizes],
           "activation": _comparable(model.activation), "dtype": str(model.dtype),
           "standardisation in the model": model.standardization is not None, "loss": loss}
    own.update({k: _comparable(v) for k, v in settings.items()})
    return own


def _check_ranks_agree(comm, own):
    """One allgather of every rank's settings; where any rank differs from rank 0, every rank
    raises the same ValueError naming the setting and the ranks' values (instead of a
    collective call that waits forever for a rank that has stopped or is elsewhere)."""
    every = comm.allgather(own)
    differ = [k for k in own if any(o.get(k) != every[0].get(k) for o in every)]
    if differ:
        k = differ[0]
        values = ", ".join(f"rank {r} has {o.get(k)!r}" for r, o in enumerate(every))
        more = f" (and on {', '.join(differ[1:])})" if differ[1:] else ""
        raise ValueError(f"the ranks disagree on {k}: {values}{more}; every rank must call "
                         "mpi_fit with the same model and settings")


def _standardize(comm, Xl, model, standardize, checkpointed):
    """The model's standardisation, or one over the whole catalog stored in the model with
    ``standardize``; returns the catalog's statistics when they were computed (also when
    ``checkpointed``: they identify the data of a checkpointed run), else None."""
    new_st = standardize and model.standardization is None
    stats = _catalog_statistics(comm, Xl) if new_st or checkpointed else None
    if new_st:
        model.standardization = stats
    return stats


def _catalog_statistics(comm, Xl):
    """(mean, std) per column of the whole catalog: every rank's moments, merged in rank
    order (the same result on every rank).  A collective call."""
    st = Standardizer()
    for mom in comm.allgather(Standardizer().partial_fit(Xl).moments()):
        st.merge(*mom)
    return st.as_tuple()


def label_fingerprint(comm, Xl, Yl):
    """The targets of the whole catalog as a checkpoint knows them: per output the mean of
    y and the mean of y times each (raw) input column, every rank's sums added in rank
    order (the column statistics' pattern: the same numbers on every rank).  The column
    statistics alone resumed a run on other labels of the same inputs (1 - y); the means of
    y x tell those apart even when the classes are balanced.  A collective call."""
    def own_sums():    # a rank without rows gives zeros (reshape(0, -1) would fail)
        Y = np.asarray(Yl, dtype=np.float64)
        Y = Y.reshape(Y.shape[0], int(np.prod(Y.shape[1:]))) if Y.ndim > 1 else Y[:, None]
        return np.concatenate([[float(Y.shape[0])], Y.sum(axis=0), (Y.T @ Xl).ravel()])
    own = _on_every_rank(comm, own_sums)   # a failure on one rank stops all: never a hang
    total = np.zeros_like(own)
    for part in comm.allgather(own):
        total += part
    k = (own.size - 1) // (np.asarray(Xl).shape[1] + 1)
    return label_identity(total[0], total[1:1 + k], total[1 + k:].reshape(k, -1))


def _run_identity(model, opt, schedule, n, size, batch_size, seed, loss, stats, validation,
                  stopper, labels=None, standardize=False):
    """What must not change between an MPI run and its resumption (JSON-able).  The data
    are known by their size and column statistics (``stats``: the catalog's, computed
    whenever there is a checkpoint; the model's standardisation said nothing of the data
    without standardize=True, and another catalog of the same size was resumed from) and
    their targets by ``labels`` (label_fingerprint); ``standardize`` is part of the run (a
    run standardised for its first epochs went on on raw inputs and ended without any
    standardisation).  The validation fraction and early stopping enter only when used, so
    a checkpoint of a run without them still resumes; one written before the labels and
    standardize were part of the identity is refused."""
    more = {"labels": labels, "standardize": bool(standardize)}
    if validation:
        more["validation"] = float(validation)
    if stopper.patience is not None:
        more["early_stopping"] = stopping_identity(stopper)
    return run_identity(model, opt, loss, batch_size, schedule, ranks=int(size),
                        seed=None if seed is None else int(seed), rows=int(n),
                        **column_identity(stats), **more)


def _resume_point(comm, resume, checkpoint, model, opt, run, stopper, hist):
    """(epochs done, steps done, optimizer steps) of a resumed run, zeros otherwise.  Rank 0
    reads the checkpoint (its parameters and optimizer state are sent to the others by the
    caller's Bcast); the History so far and the early-stopping state go to every rank's
    ``hist`` and ``stopper`` (a run that had stopped early trains no further)."""
    if not resume:
        return 0, 0, 0
    rank = comm.Get_rank()
    done, state, history = comm.bcast(_on_every_rank(
        comm, lambda: _restore(checkpoint, model, opt, run) if rank == 0 else None), root=0)
    opt.step_count = done[2]
    # the epochs before the checkpoint, which train_epochs appends to
    restore_history(hist, history)
    restore_stopper(state, stopper, hist)
    return done


def _restore(path, model, opt, run):
    """Rank 0: ((epochs done, steps done, optimizer steps), early-stopping state or None,
    History so far or None) from the checkpoint at path, its parameters and optimizer
    state loaded; zeros when there is no file yet."""
    if not os.path.exists(path):
        return (0, 0, opt.step_count), None, None
    ck = checked_run_checkpoint(path, run, "an MPI run")
    restore_training_checkpoint(path, model, opt)
    state = {k: ck[k] for k in STOPPER_KEYS if k in ck} or None
    return (int(ck["epoch"]), int(ck["round"]), int(ck["step"])), state, \
        checkpoint_history(ck)


def _on_every_rank(comm, fn):
    """fn() on this rank; if it raised here or on any other rank, every rank raises (its own
    error, or one naming the rank that failed) instead of the others waiting forever in the
    next collective call for a rank that has stopped.  One allgather."""
    try:
        out, err = fn(), None
    except Exception as exc:    # noqa: BLE001 -- re-raised below, on this rank as it was
        out, err = None, exc
    msgs = comm.allgather(None if err is None else f"{type(err).__name__}: {err}")
    if err is not None:
        raise err
    failed = [(r, m) for r, m in enumerate(msgs) if m is not None]
    if failed:
        r, m = failed[0]
        raise RuntimeError(f"rank {r} stopped, so every rank stops: {m}")
    return out


def _valid_array_rows(X, y, missing, rank, model_dtype):
    """This rank's rows of arrays X, y as ``missing`` says (invalid_array_rows: a feature
    not finite in ``model_dtype`` or a missing label); under "error" NaN and inf in X are
    named first as check_array names them."""
    if missing == "error":
        check_array(X, f"X (rank {rank})", X.shape[1], np.float64, remedy=MISSING_REMEDY)
    invalid, counts = invalid_array_rows(X, y, model_dtype)
    return apply_missing(X, y, invalid, counts, missing, f"X, y (rank {rank})",
                         MISSING_REMEDY)


def _rank_rows(comm, X, y, path, spec, label, positive, local, where, model_dtype,
               missing=None):
    """(this rank's raw rows X (float64), labels): a .npy catalog's read with ``spec`` (the
    rows ``where`` keeps, ``missing`` applied: read_slice's; its labels as in the file, text
    allowed with a ``positive`` class), or X and y's.  No collective call: a rank may fail
    here alone."""
    rank, size = comm.Get_rank(), comm.Get_size()
    if path is not None:
        Xl, yl, _ = _slice_rows(path, spec, label, rank, size, positive is not None,
                                np.float64, where, model_dtype, missing)
    elif X is not None and y is not None:
        Xa, ya = np.asarray(X), np.asarray(y)
        if ya.shape[:1] != Xa.shape[:1]:
            raise ValueError(f"X has {counted(Xa.shape[0], 'sample')} but y has {ya.shape[:1]}")
        if local:
            Xl, yl = Xa, ya
        else:
            lo, hi = slice_bounds(Xa.shape[0], rank, size)
            Xl, yl = Xa[lo:hi], ya[lo:hi]
    else:
        raise ValueError("give path= (with features= and label=) or X and y")
    return np.asarray(Xl, dtype=np.float64), yl


class _EpochEnd:
    """fit's end of an epoch (loop.end_of_epoch: validation, early stopping, callbacks), the
    same on every rank: train_epochs calls it as its one callback.  The validation loss and
    metric are summed over the ranks (one Allreduce), so every rank records the same
    values and early stopping, decided from them, stops every rank after the same epoch;
    the callbacks' failures and stop requests are gathered too, so no rank goes on alone
    into a collective call the others have left."""

    def __init__(self, comm, model, kernels, code, val, stopper, callbacks, describe):
        self.comm, self.model, self.kernels, self.code = comm, model, kernels, code
        self.val, self.stopper, self.callbacks = val, stopper, list(callbacks)
        self.steps_text, self.text = describe, ""
        self.mname = "val_" + ("rmse" if LOSSES[code] == "mse" else "accuracy")

    def __call__(self, epoch, hist, model):
        stop = False
        if self.val is not None:
            vl, vm = self.merged_validation()
            hist.val_loss.append(vl)
            hist.metrics.setdefault(self.mname, []).append(vm)
            self.text = f"val_loss {vl:.5f}  {self.mname} {vm:.4f}  "
            stop = self.stopper.update(epoch, vl, model, hist)
        asked = _on_every_rank(self.comm, lambda: any(
            [bool(cb(epoch, hist, model)) for cb in self.callbacks]))
        return self.comm.allreduce(bool(asked), op=MPI.LOR) or stop

    def merged_validation(self):
        """(loss, metric) over every rank's validation rows: each rank's weighted sums,
        added up in one Allreduce (the loss is a mean over rows, the RMSE over entries)."""
        def local_sums():
            Xv, Yv = self.val
            if not Xv.shape[0]:
                return np.zeros(3)
            vl, vm = loss_and_metric(self.model, self.kernels, Xv, Yv,
                                     np.ones(Xv.shape[0], dtype=self.model.dtype), self.code)
            per_row = vm * vm * Yv.shape[1] if LOSSES[self.code] == "mse" else vm
            return np.array([vl * Xv.shape[0], per_row * Xv.shape[0], Xv.shape[0]])
        sums = _on_every_rank(self.comm, local_sums)
        self.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
        loss, metric = sums[0] / sums[2], sums[1] / sums[2]
        if LOSSES[self.code] == "mse":
            metric = math.sqrt(metric / self.model.n_outputs)
        return float(loss), float(metric)

    def describe(self):
        return self.text + self.steps_text()


class _AllreduceSteps:
    """The MPI side of the epoch loop: each step sums [W_r g_r | W_r | W_r loss_r] over the
    ranks with one in-place Allreduce, so every rank applies the global weighted-mean
    gradient: exactly the single-process step."""

    def __init__(self, comm, model, opt, sched, kernels, Xl, Yl, n, batch_size, seed, code,
                 loss, hist):
        self.comm, self.model, self.opt, self.sched, self.kernels = comm, model, opt, sched, \
            kernels
        self.Xl, self.Yl, self.n, self.seed, self.code, self.loss = Xl, Yl, n, seed, code, loss
        self.hist, self.rank, self.size = hist, comm.Get_rank(), comm.Get_size()
        self.sw = np.ones(Xl.shape[0], dtype=model.dtype)
        self.b = local_batch_size(batch_size, self.rank, self.size)
        n_local = Xl.shape[0]
        self.steps = comm.allreduce(-(-n_local // self.b) if n_local else 0, op=MPI.MAX)
        # [W_r g_r | W_r | W_r loss_r | 1 if this rank failed]
        self.buf = np.zeros(model.params.size + 3, dtype=model.dtype)
        # the optimizer's hyper-parameters, checked once: only the lr (entry 0) changes
        # from step to step
        self.hyper = opt.hyper_vector().copy()
        self.grad = aligned_empty_like(model.params)
        self.order = None
        self.info = hist.distributed = {
            "ranks": self.size, "steps": 0, "local_batch": self.b, "rows": int(n),
            "bytes_per_allreduce": int(self.buf.nbytes), "allreduce_time": 0.0,
            "compute_time": 0.0}

    def epoch(self, epoch):
        self.order = local_order(self.Xl.shape[0], epoch, self.rank, self.seed)
        t_epoch = time.perf_counter()
        ep_loss = ep_w = 0.0
        m, opt = self.model, self.opt
        params0, state0, step0 = m.params.copy(), opt.state.copy(), opt.step_count
        for t in range(self.steps):
            value, W = self.step(epoch, self.order[t * self.b:(t + 1) * self.b])
            ep_loss, ep_w = ep_loss + value * W, ep_w + W
        # once per epoch, as training.loop.run_epoch: the steps check the loss and gradient,
        # but Adam's squared gradients can overflow (huge unstandardised inputs) while both
        # stay finite; every rank holds the same parameters and state, so all stop together
        what = nonfinite_training_state(m.params, opt)
        if what is not None:
            m.params[...], opt.state[...], opt.step_count = params0, state0, step0
            raise TrainingDiverged(diverged_message(
                f"in epoch {epoch + 1}", f"{what} became non-finite during steps {step0 + 1}.."
                f"{step0 + self.steps} (the last batch loss was {value:.4g})",
                f"the model and optimizer were put back as they were before step {step0 + 1}",
                self.advice(self.sched(step0 + self.steps - 1))), step0 + 1, epoch + 1)
        # the loop divides by the rows; report the weighted mean over all ranks' rows
        return ep_loss / ep_w * self.n, self.n, time.perf_counter() - t_epoch

    def step(self, epoch, idx):
        m, opt, buf, grad, P_ = self.model, self.opt, self.buf, self.grad, self.model.params.size
        t0 = time.perf_counter()
        failed = None
        try:
            self.local_gradient(idx)
        except Exception as exc:    # noqa: BLE001 -- re-raised after the Allreduce
            failed, buf[:] = exc, 0
            buf[P_ + 2] = 1
        t1 = time.perf_counter()
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        t2 = time.perf_counter()
        if buf[P_ + 2] != 0:      # a rank failed: all stop here, none waits in the next call
            if failed is not None:
                raise failed
            raise RuntimeError(f"{counted(int(buf[P_ + 2]), 'other rank')} failed at step "
                               f"{opt.step_count + 1} (epoch {epoch + 1}; its error is on its "
                               "stderr), so every rank stops")
        W = float(buf[P_])
        np.divide(buf[:P_], m.dtype.type(W), out=grad)
        value = float(buf[P_ + 1]) / W
        step = opt.step_count + 1
        lr = float(self.sched(step - 1))
        if not (math.isfinite(value) and np.isfinite(grad).all()):
            raise TrainingDiverged(diverged_message(
                f"at step {step} (epoch {epoch + 1}, lr {lr:.3g})", step_loss_seen(value),
                f"the model keeps its parameters after step {step - 1}", self.advice(lr)),
                step, epoch + 1)
        self.hyper[0] = lr
        self.kernels.optimizer_update(opt.code, m.params, grad, opt.state, step, self.hyper)
        opt.step_count = step
        self.hist.batch_loss.append(value)
        self.hist.lr.append(lr)
        self.info["compute_time"] += (t1 - t0) + (time.perf_counter() - t2)
        self.info["allreduce_time"] += t2 - t1
        self.info["steps"] += 1
        return value, W

    def local_gradient(self, idx):
        """[W_r g_r | W_r | W_r loss_r | 0] of this rank's rows idx into the buffer."""
        m, buf, grad, P_ = self.model, self.buf, self.grad, self.model.params.size
        w_r = float(self.sw[idx].sum(dtype=np.float64)) if idx.size else 0.0
        if w_r == 0:   # no weight here (the kernels refuse a 0 / 0 mean): adds nothing
            buf[:] = 0
            return
        value = self.kernels.mlp_loss_grad(grad, m.params, self.Xl[idx], self.Yl[idx],
                                           self.sw[idx], m.sizes_array, m.acts_array,
                                           self.code)
        # every entry written: no pass zeroing the whole buffer first at each step
        np.multiply(grad, m.dtype.type(w_r), out=buf[:P_])
        buf[P_], buf[P_ + 1], buf[P_ + 2] = w_r, value * w_r, 0

    def advice(self, lr):
        """What to change after a divergence (run_epoch's rule: divergence_advice over
        target_scale_advice), the same on every rank: the largest network input and the
        largest |target| over all ranks' rows (one allgather).  A collective, but
        every rank diverges at the same step (they share the reduced loss, gradient and
        parameters), so every rank gets here together."""
        j, big = largest_input(self.Xl)
        y_big = float(np.abs(self.Yl).max()) if self.Yl.size else 0.0
        every = self.comm.allgather((big, j, y_big))
        big, j = max((b, c) for b, c, _ in every)
        y_big = np.array([max(v for _, _, v in every)])
        return divergence_advice(self.model, None, target_scale_advice(
            y_big, self.code, smaller_lr_advice(lr)), largest=(j, big))

    def train_metric(self):
        """The metric on up to 10,000 rows in all, from every rank (one Allreduce)."""
        m = self.model
        m_rows = self.order[:max(1, TRAIN_METRIC_ROWS // self.size)]
        agg, failed = np.zeros(3), None       # [correct or squared error, rows, failed]
        try:
            if m_rows.size:
                out = np.empty((m_rows.size, m.n_outputs), dtype=m.dtype)
                self.kernels.mlp_forward(out, m.params, self.Xl[m_rows], m.sizes_array,
                                         m.acts_array)
                agg[:2] = binary_or_argmax_correct(out, self.Yl[m_rows], self.loss), m_rows.size
        except Exception as exc:    # noqa: BLE001 -- re-raised after the Allreduce
            failed, agg[:] = exc, (0.0, 0.0, 1.0)
        self.comm.Allreduce(MPI.IN_PLACE, agg, op=MPI.SUM)
        if agg[2]:                # as in step: every rank stops, none waits for the failed
            if failed is not None:
                raise failed
            raise RuntimeError(f"{counted(int(agg[2]), 'other rank')} failed computing the "
                               "training metric (its error is on its stderr), so every "
                               "rank stops")
        return agg[0] / agg[1] if self.loss != "mse" else \
            math.sqrt(agg[0] / (agg[1] * m.n_outputs))

    def describe(self):
        return f"({counted(self.size, 'rank')}, {self.info['allreduce_time']:.3f} s in Allreduce)"


def _parser():
    """The command line's arguments (main's)."""
    p = argparse.ArgumentParser(
        prog="python -m fastmlp.distributed.mpi",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Synchronous data-parallel MLP training under mpirun -n P: every rank "
                    "reads its slice of the catalog, one Allreduce per mini-batch.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="a .npy catalog (structured array or 2-D numeric array)")
    src.add_argument("--synthetic", type=int, metavar="N",
                     help="use fastmlp.datasets.make_photometric_catalog(N, seed=--data-seed)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--features", default="u-g,g-r,r-i,i-z",
                   help="comma-separated field names (or column indices of a 2-D array)")
    p.add_argument("--label", default="label")
    p.add_argument("--positive", default=None, metavar="CLASS",
                   help="the positive class, as fastmlp train's --positive (the labels keep "
                        "the loader's coding; the saved model holds the class names): a "
                        "label value "
                        "such as 0 (the SDSS DR6 quasars) or a class name such as QSO in a "
                        "label column of names")
    p.add_argument("--missing", choices=MISSING_POLICIES, default="error",
                   help="rows with a missing feature (NaN, inf, -9999, beyond --dtype), as "
                        "fastmlp train's: error, drop them (every rank its own), or "
                        "impute-median (the whole catalog's column medians, stored in the "
                        "--save'd model as its fill values; a structured .npy only)")
    p.add_argument("--where", metavar="FILTER", default=None,
                   help="keep only the catalog rows passing FILTER, as fastmlp train's, e.g. "
                        "\"r < 21 and u-g > 0.5\" (a colour a-b is computed from fields a and "
                        "b if it is not a field)")
    p.add_argument("--layers", default="4,64,64,1", help="layer sizes, e.g. 4,64,64,1")
    p.add_argument("--activation", default="relu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=256, help="GLOBAL batch size")
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--schedule", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--standardize", action="store_true")
    p.add_argument("--validation", type=_fraction_or_zero, default=0.0,
                   help="fraction of the catalog's rows held out for the validation loss "
                        "(0 = none; the rows are chosen by row index and --seed, whatever "
                        "the number of ranks)")
    p.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop when the validation loss has not improved for PATIENCE epochs "
                        "and restore the best weights (needs --validation)")
    p.add_argument("--backend", default=None)
    p.add_argument("--threads", type=int, default=1, help="kernel threads per rank")
    p.add_argument("--checkpoint", default=None, help="rank 0 writes it after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from --checkpoint when the file exists (the same run: "
                        "same data, settings and number of ranks)")
    p.add_argument("--output", default=None,
                   help="rank 0 writes the run's record here (.npz: params, batch losses, "
                        "training rows, timings; not a model: see --save)")
    p.add_argument("--save", default=None, metavar="MODEL.npz",
                   help="rank 0 saves the trained model here (fastmlp.load reads it; it "
                        "carries the standardisation and the rest of the contract)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None):
    p = _parser()
    args = sys.argv[1:] if argv is None else list(argv)
    if AVAILABLE and MPI.COMM_WORLD.Get_rank() != 0 and ("-h" in args or "--help" in args):
        return 0            # the help once, from rank 0, not once per rank
    a = p.parse_args(argv)
    if a.early_stopping is not None and not a.validation:
        p.error("--early-stopping needs --validation: a fraction of the catalog held out to "
                "decide when to stop")
    _require()
    comm = MPI.COMM_WORLD
    _on_every_rank(comm, lambda: _check_output_paths(a))
    sizes = [int(s) for s in a.layers.split(",")]
    model = MLP(sizes, activation=a.activation, seed=a.model_seed, dtype=a.dtype,
                backend=a.backend)
    kw = dict(epochs=a.epochs, batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr,
              schedule=a.schedule, seed=a.seed, standardize=a.standardize,
              checkpoint=a.checkpoint, resume=a.resume, progress=not a.no_progress,
              n_threads=a.threads, validation=a.validation, early_stopping=a.early_stopping,
              missing=a.missing, where=a.where)
    with _schedule_warnings_as_lines():
        if a.data:
            hist = mpi_fit(model, path=a.data, features=a.features, label=a.label,
                           positive=a.positive, comm=comm, **kw)
        else:
            from ..data import make_photometric_catalog
            cat = make_photometric_catalog(a.synthetic, seed=a.data_seed, dtype=a.dtype,
                                           features=[f.strip() for f in a.features.split(",")])
            hist = mpi_fit(model, cat.X, cat.y, comm=comm, **kw)
    if comm.Get_rank() == 0:
        print(_summary(hist, a.early_stopping), flush=True)
    if comm.Get_rank() == 0 and a.save:
        from ..io import save
        save(model, a.save)
    if comm.Get_rank() == 0 and a.output:
        from ..training.checkpoint import atomic_savez
        info = hist.distributed
        atomic_savez(a.output, params=model.params, batch_loss=np.asarray(hist.batch_loss),
                     loss=np.asarray(hist.loss), ranks=np.int64(info["ranks"]),
                     steps=np.int64(info["steps"]), rows=np.int64(info["rows"]),
                     allreduce_time=info["allreduce_time"],
                     compute_time=info["compute_time"],
                     bytes_per_allreduce=np.int64(info["bytes_per_allreduce"]),
                     epoch_time=np.asarray(hist.epoch_time),
                     samples_per_s=np.asarray(hist.samples_per_s),
                     val_loss=np.asarray(hist.val_loss, dtype=np.float64))
    return 0


def _check_output_paths(args):
    """Before any work: no output is the --data catalog or another output (--save and
    --checkpoint one file: the model replaced the checkpoint, or the other way round), and
    none is a device, FIFO or directory (refused now, not after training)."""
    outputs = [("--checkpoint", args.checkpoint), ("--output", args.output),
               ("--save", args.save)]
    for flag, path in outputs:
        if path is not None:
            refuse_overwrite(path, [args.data], flag,
                             [(other, p) for other, p in outputs if other != flag])
            write_target(path, flag)


@contextlib.contextmanager
def _schedule_warnings_as_lines():
    """mpi_fit's ScheduleWarnings said as the fastmlp command line says them, one
    'warning: --schedule: ...' line on stderr (from rank 0, the only rank that warns), not
    as '<frozen runpy>:88: ScheduleWarning: ...' (the first frame outside the package of
    ``python -m``); never raised, even under -W error: the run goes on, as the CLI's."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", ScheduleWarning)
        show = warnings.showwarning

        def say(message, category, *args, **kwargs):
            if not issubclass(category, ScheduleWarning):
                return show(message, category, *args, **kwargs)
            text = str(message).removeprefix("schedule: ")   # warn_length's prefix
            print(f"warning: --schedule: {text}", file=sys.stderr, flush=True)
            return None

        warnings.showwarning = say
        yield


def _summary(hist, patience):
    """Rank 0's closing lines: the epochs trained, the training loss and, with validation,
    the validation loss of every epoch and whether early stopping ended the run (the
    progress lines, which --no-progress turns off, are not the only record of them)."""
    # a resumed run's History holds every epoch, those of the checkpoint first
    first = hist.distributed.get("resumed_from_epoch", 0)
    last = len(hist.loss)
    # after early stopping the model holds an earlier epoch's parameters than the last loss
    restored = f", parameters of epoch {hist.best_epoch} restored" \
        if hist.stopped_early and hist.best_epoch not in (None, last) else ""
    resumed = f" after resuming from epoch {first}" if first else ""
    lines = [f"trained {counted(last - first, 'epoch')} on "
             f"{counted(hist.distributed['ranks'], 'rank')}{resumed}; final loss (epoch "
             f"{last}) {hist.loss[-1]:.5f}{restored}"
             if last > first else "no epoch left to train (the checkpoint holds them all)"]
    for e, vl in enumerate(hist.val_loss):
        lines.append(f"epoch {e + 1}: val_loss {vl:.5f}")
    if hist.stopped_early:
        lines.append(f"stopped early after epoch {last}: the validation "
                     f"loss had not improved for {counted(patience, 'epoch')}; the "
                     f"parameters of epoch {hist.best_epoch} were restored")
    return "\n".join(lines)


_positive_int = argparse_number(int, lambda v: v >= 1, "a positive integer")
_fraction_or_zero = argparse_number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def _main_or_error(argv=None):
    """main(), with a user's error (bad data, another run's checkpoint, a bad path) printed
    as one line per rank and exit status 2, a diverged run with exit status 1 (as the CLI),
    not a traceback from each rank."""
    try:
        return main(argv)
    except TrainingDiverged as exc:     # a FloatingPointError: every rank stops together
        _rank_error(exc)
        return 1
    except (ValueError, RuntimeError, OSError, TypeError) as exc:
        _rank_error(exc)
        return 2


def _rank_error(exc):
    rank = MPI.COMM_WORLD.Get_rank() if MPI is not None else 0
    print(f"fastmlp.distributed.mpi (rank {rank}): error: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(_main_or_error())
