"""Dask: learning-rate sweeps and cross-validation as tasks, and data-parallel training with
model averaging (local SGD) over partitions kept in the workers' memory.

Needs the ``dask`` extra (``pip install "fastmlp[dask]"``: dask and distributed).

Data-parallel training (``fit``)
--------------------------------
The rows are cut into ``n_shards`` shards (default: one per worker), each built once from
its partitions, standardised and kept in a worker's memory.  A Dask array's (DataFrame's)
chunks are dealt to the shards in turn; NumPy rows go in contiguous ranges, or every
n_shards-th row to a shard when the ranges' class mixes differ: catalogs often come sorted
by class or sky position, and averaging models trained on one class each loses accuracy.
The shards' class counts are kept, and one ShardClassMixWarning says how to shuffle or
repartition when they still differ (a sorted catalog in as many partitions as shards).
Training runs in rounds: every
shard takes ``sync_every`` = K mini-batch steps with the backend's fused ``train_epoch`` from
the current averaged parameters and optimizer state, then the client averages parameters and
state weighted by the sample weight each shard used in the round.  With K = 1 the averaged
parameters are exactly the parameters after one step on the union of the shards' mini-batches
for plain SGD (weighted mean of ``theta - lr g_j`` = ``theta - lr g`` of the weighted-mean
loss), i.e. synchronous gradient averaging.

Global batch size B: shard s of n_s rows uses local batches of b_s = max(1, round(B n_s / n))
rows; an epoch is ceil(n / B) steps; shard s reads its rows as an endless stream of
permutations ``default_rng([seed, s, e]).permutation(n_s)``, e = 0, 1, ...  Every task is a
pure function of (shard, parameters, state, step), so a round whose worker died is simply
submitted again from the last averaged parameters and gives the same answer.
"""

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import re
import sys
import time
import warnings
from contextlib import contextmanager

import numpy as np

from .. import backends
from ..backends._threads import check as check_threads
from ..atomic import refuse_overwrite, write_target
from .._validate import (check_array, check_positive, check_targets, counted, largest_input,
                         user_stacklevel)
from ..codes import loss_code
from ..data.standardize import Standardizer
from ..data.formats import parse_where
from ..features import missing_mask, plan_sources
from ..model import MLP
from ..schedules import warn_length
from ..training.checkpoint import (STOPPER_KEYS, atomic_savez, checked_run_checkpoint,
                                  checkpoint_history, column_identity, data_sha256,
                                  history_arrays,
                                  label_identity, load_checkpoint, read_run_checkpoint,
                                  restore_history,
                                  restore_stopper, restore_training_checkpoint, run_identity,
                                  save_training_checkpoint, stopper_arrays, stopping_identity)
from ..training.fit import set_trained_link, warn_large_inputs
from ..training.fit_inputs import check_fit_args, validation_pair
from ..training.loop import (TRAIN_METRIC_ROWS, EarlyStopping, History, TrainingDiverged,
                             divergence_advice, diverged_message, nonfinite_training_state,
                             smaller_lr_advice, step_loss_seen, step_lrs, target_scale_advice,
                             train_epochs, training_setup)
from ..training.recipes import CVPlan, SweepPlan, check_divergence_factor, check_sweep_kwargs
from ._common import (ShardClassMixWarning, apply_missing, binary_or_argmax_correct,
                      check_missing_policy, complete_rows, invalid_array_rows, missing_labels,
                      invalid_table_rows, refuse_label_features, training_spec,
                      weighted_average)

try:
    import dask
    import dask.array as da
    from distributed import Client, KilledWorker, LocalCluster, as_completed
    AVAILABLE, UNAVAILABLE_REASON = True, ""
except Exception as _exc:  # pragma: no cover - depends on the environment
    AVAILABLE, UNAVAILABLE_REASON = False, f"{type(_exc).__name__}: {_exc}"



def _require():
    if not AVAILABLE:
        raise ImportError("fastmlp.distributed needs dask and distributed: pip install "
                          f"'fastmlp[dask]' ({UNAVAILABLE_REASON})")


@contextmanager
def _client(client, n_workers=2, threads_per_worker=1):
    """Yield a distributed.Client: the one given, a new one connected to an address string,
    or for "local" a LocalCluster of ``n_workers`` processes x ``threads_per_worker`` threads
    (closed on exit)."""
    _require()
    if isinstance(client, Client):
        yield client
        return
    if client == "local":
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                               processes=True, dashboard_address=":0")
        c = Client(cluster)
        try:
            yield c
        finally:
            c.close()
            cluster.close()
        return
    if isinstance(client, str):
        c = Client(client)
        try:
            yield c
        finally:
            c.close()
        return
    raise TypeError(f"client must be a distributed.Client, an address string or 'local', got "
                    f"{type(client).__name__}")


def local_client(n_workers=2, threads_per_worker=1):
    """A Client on a new LocalCluster of worker processes (close both with client.close();
    client.cluster.close())."""
    _require()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                           processes=True, dashboard_address=":0")
    return Client(cluster)


def _warm(backend, n_threads):
    """Load (or compile) the backend's kernels in this process with a tiny training epoch."""
    from ..optim import make_optimizer
    k = _set_threads(backend, n_threads)
    for dtype in (np.float32, np.float64):
        m = MLP([2, 3, 1], dtype=dtype)
        opt = make_optimizer("adam", m.params)
        x = np.zeros((4, 2), dtype)
        k.train_epoch(m.params, np.empty_like(m.params), opt.state, np.empty(2), x,
                      np.zeros((4, 1), dtype), np.ones(4, dtype), np.arange(4), 2,
                      np.full(2, 1e-3), 0, opt.code, opt.hyper_vector(), m.sizes_array,
                      m.acts_array, 0)
    return k.NAME


def warm_workers(client, backend=None, n_threads=1):
    """Make every worker load (or JIT-compile) the kernels now, so that the first tasks of a
    sweep or a training run do not pay for it; returns {worker address: backend name}."""
    _require()
    return client.run(_warm, backends.resolve(backend), n_threads)


def _check_task_threads(n_threads):
    """n_threads per task: None or 0 (the workers' default) or a count check_threads takes,
    checked here: a bad one failed inside every task with int()'s message."""
    if n_threads is None or (isinstance(n_threads, (int, np.integer))
                             and not isinstance(n_threads, bool) and n_threads == 0):
        return n_threads
    return check_threads(n_threads)


def _set_threads(backend, n_threads):
    k = backends.get_backend(backend)
    if n_threads:
        k.set_num_threads(int(n_threads))
    return k


# ------------------------------------------------------------------------------------------
# Learning-rate sweep and cross-validation as tasks
# ------------------------------------------------------------------------------------------

class ClientExecutor:
    """A Dask client as the ``executor`` the recipes take: ``map(fn, items)`` runs fn on
    every item as a Dask task and returns the results in order."""

    def __init__(self, client):
        self.client = client

    def map(self, fn, items):
        return self.client.gather(self.client.map(fn, list(items), pure=False))


def _sweep_candidate(i, plan, X, Y, sw, lr, optimizer, okw, backend, n_threads):
    kernels = _set_threads(backend, n_threads)
    return i, plan.run(kernels, lr, optimizer, okw, X, Y, sw)


def dask_lr_sweep(make_model, X, y, client="local", lrs=np.logspace(-5, 0, 11), iterations=150,
                  optimizer="adam", batch_size=256, loss=None, seed=0, backend=None,
                  progress=False, divergence_factor=4.0, optimizer_kwargs=None, n_threads=1):
    """fastmlp.lr_sweep with every learning rate run as a Dask task.

    Same arguments and the same SweepResult as the serial lr_sweep (the same initial weights,
    the same mini-batch sequence, so the same curves); the data is scattered to the workers
    once and results (and progress lines) come back as candidates finish.  ``client``: a
    distributed.Client, a scheduler address, or "local" (a LocalCluster of 2 worker
    processes x 1 thread, closed afterwards).  ``n_threads``: kernel threads per task.
    """
    check_divergence_factor(divergence_factor)
    check_sweep_kwargs(optimizer_kwargs)
    n_threads = _check_task_threads(n_threads)
    plan = SweepPlan.build(make_model, X, y, lrs, iterations, batch_size, loss, seed)
    backend = backends.resolve(backend if backend is not None else plan.base.backend)
    # the workers get the arrays once (scattered); the plan travels without them (each
    # worker draws the batch order from the plan's seed, piece by piece)
    arrays = [plan.X, plan.Y, plan.sw]
    light = dataclasses.replace(plan, X=None, Y=None, sw=None)
    curves = [None] * plan.lrs.size
    with _client(client) as c:
        fX, fY, fsw = c.scatter(arrays, broadcast=True, hash=False)
        futs = [c.submit(_sweep_candidate, i, light, fX, fY, fsw, float(lr),
                         optimizer, optimizer_kwargs, backend, n_threads, pure=False)
                for i, lr in enumerate(plan.lrs)]
        for fut in as_completed(futs):
            i, curves[i] = fut.result()
            if progress:
                print(plan.progress_line(plan.lrs[i], curves[i], divergence_factor),
                      file=sys.stderr, flush=True)
    return plan.result(curves, divergence_factor)


def _cv_fold(i, plan, model, X, y, n_threads):
    extra = {"n_threads": n_threads} if n_threads and \
        plan.fit_kwargs.get("n_threads") is None else {}
    return i, plan.run(i, model, X, y, **extra)


def dask_cross_validate(make_model, X, y, client="local", k=5, stratified=True, seed=0,
                        positive=None, progress=False, n_threads=1, **fit_kwargs):
    """fastmlp.cross_validate with every fold trained as a Dask task (same folds, same
    models, same CVResult); X and y are scattered once, folds come back as they finish."""
    n_threads = _check_task_threads(n_threads)
    plan = CVPlan.build(make_model, X, y, k, stratified, seed, positive, fit_kwargs)
    # the workers get the arrays once (scattered); the plan travels without them and the
    # models travel one per task
    light = dataclasses.replace(plan, X=None, y=None, models=[])
    results = [None] * len(plan.folds)
    with _client(client) as c:
        fX, fy = c.scatter([plan.X, plan.y], broadcast=True, hash=False)
        futs = [c.submit(_cv_fold, i, light, plan.models[i], fX, fy, n_threads, pure=False)
                for i in range(len(plan.folds))]
        for fut in as_completed(futs):
            i, results[i] = fut.result()
            if progress:
                print(plan.progress_line(i, results[i]), file=sys.stderr, flush=True)
    return plan.result(results)


# ------------------------------------------------------------------------------------------
# Data-parallel training
# ------------------------------------------------------------------------------------------

def _as_dask_arrays(data, y, features, label, model, missing="error", where=None):
    """(X, y, spec) as dask arrays (rows chunked, all columns in one chunk) or numpy arrays;
    the model's dtype decides which raw values are missing.  ``missing``: "error" (refused
    in the shards), "drop" (rows with a missing feature left out) or "impute-median" (a
    DataFrame's: its columns' medians become the model's fill values).  ``where``: a filter
    on a DataFrame's rows (fastmlp.data.formats.Where), applied first."""
    is_array = isinstance(data, (np.ndarray, da.Array))
    if not is_array and hasattr(data, "to_dask_dataframe") and not hasattr(data, "columns"):
        data = data.to_dask_dataframe()  # an LSDB catalog
    if not is_array and hasattr(data, "columns") and hasattr(data, "to_dask_array"):
        return _frame_arrays(data, features, label, model, missing, where)
    if where is not None:
        raise ValueError("where= filters a Dask DataFrame's named columns; X is an array: "
                         "filter its rows before fit, or pass a DataFrame with features= "
                         "and label=")
    if missing == "impute-median":
        raise ValueError("missing='impute-median' needs a Dask DataFrame with features=[column "
                         "names] and label= (the medians become the model's fill values per "
                         "column); X is an array: impute it yourself, or use missing='drop'")
    if y is None:
        raise ValueError("y is required unless a DataFrame with label= is given")
    _check_label_dtype(y.dtype if hasattr(y, "dtype") else np.asarray(y).dtype, "y")
    if isinstance(data, da.Array):
        return _dask_array_pair(data, y, model.dtype, missing)
    X = np.asarray(data)
    yy = np.asarray(y.compute() if hasattr(y, "compute") else y)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if yy.shape[:1] != X.shape[:1]:
        raise ValueError(f"X has {counted(X.shape[0], 'sample')} but y has {yy.shape[:1]}")
    if missing == "drop":
        invalid, counts = invalid_array_rows(X, yy, model.dtype)
        X, yy = apply_missing(X, yy, invalid, counts, missing, "X, y", _CLEAN_FIRST)
    else:
        _refuse_unusable(_beyond_dtype(X, model.dtype), missing_labels(yy), missing)
    return X, yy, None


def _beyond_dtype(X, model_dtype):
    """Rows of X with a finite value beyond ``model_dtype``'s range (1e39 for float32): the
    model cannot hold them, the loader reads them as missing; a NaN or inf is not counted
    here (the shards refuse it, naming its column and row)."""
    finite = np.isfinite(X).all(axis=1)
    return finite & ~complete_rows(X, model_dtype)


def _refuse_unusable(beyond, lost, missing):
    """Under missing='error', refuse arrays with a value beyond the model's dtype or a
    missing label (NaN, inf, -9999) as the loader and MPI refuse them: the shards' own
    check knew NaN and inf only (1e39 in a float32 model, a -9999 target, were trained on)."""
    counts = {"X": int(beyond.sum()), "y": int(lost.sum())}
    apply_missing(None, None, beyond | lost, {k: n for k, n in counts.items() if n}, missing,
                  "X, y", _CLEAN_FIRST)


def _dask_array_pair(data, y, model_dtype, missing):
    """A Dask array X (rows chunked, its columns in one chunk) and y in the same chunks;
    with missing="drop" the rows with a value that is not finite in ``model_dtype`` left
    out."""
    if data.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {data.shape}")
    if any(math.isnan(c) for c in data.chunks[0]):
        data.compute_chunk_sizes()
    X = data.rechunk({1: -1})
    yy = y if isinstance(y, da.Array) else da.from_array(np.asarray(y))
    if yy.ndim and math.isnan(yy.shape[0]):   # y filtered lazily: its length is unknown
        yy.compute_chunk_sizes()
    if yy.shape[:1] != X.shape[:1]:
        raise ValueError(f"X has {counted(X.shape[0], 'sample')} but y has {yy.shape[0]}")
    yy = yy.rechunk((X.chunks[0],) + tuple((s,) for s in yy.shape[1:]))
    # a missing label (NaN, inf, -9999) as the loader reads it: dropped under "drop",
    # refused under "error" (with a value beyond the model's dtype: _refuse_unusable)
    lost = yy.map_blocks(missing_labels, dtype=bool, drop_axis=list(range(1, yy.ndim)))
    if missing == "drop":
        keep = X.map_blocks(complete_rows, model_dtype, drop_axis=1, dtype=bool) & ~lost
        X, yy = X[keep], yy[keep]
        X.compute_chunk_sizes()
        yy.compute_chunk_sizes()
    else:
        beyond = X.map_blocks(_beyond_dtype, model_dtype, drop_axis=1, dtype=bool)
        _refuse_unusable(*dask.compute(beyond, lost), missing)
    return X, yy, None


def _frame_arrays(data, features, label, model, missing, where):
    """A Dask DataFrame's feature rows and label as dask arrays, and the FeatureSpec (with
    the catalog's medians as fill values under missing="impute-median")."""
    if features is None or label is None:
        raise ValueError("a Dask DataFrame needs features=[column names] and "
                         "label=column name")
    # a feature spec as everywhere else: names of columns, "a-b" colours of two
    # columns, "colors:ugriz"; the model takes it into its contract
    columns = list(data.columns)
    spec = training_spec(features, model, columns)
    plan = spec.plan(columns, "the DataFrame")
    if label not in data.columns:
        raise ValueError(f"label column {label!r} is not in the DataFrame (it has "
                         f"{columns})")
    # a feature of the label's name made one frame with two such columns (an IndexError
    # later); any feature reading the label trains on the answer
    refuse_label_features(spec, columns, label, "the DataFrame")
    _check_label_dtype(data[label].dtype, f"label column {label!r}")
    where = parse_where(where)
    if where is not None:
        where.check(columns, "the DataFrame")
    if missing == "impute-median" and not spec.fill:
        sources = plan_sources(plan)
        spec = spec.with_fill(_frame_medians(data, sources, where, model.dtype))
    names = list(spec.names)
    meta = {n: np.float64 for n in names}
    meta[label] = data[label].dtype
    # one array for features and label so that their chunks line up
    arr = data.map_partitions(_feature_rows, spec, label, model.dtype, where,
                              missing, meta=meta).to_dask_array()
    arr.compute_chunk_sizes()
    d = len(names)
    return arr[:, :d], arr[:, d], spec


def _kept_rows(part, where):
    """The pandas partition's rows that ``where`` keeps (all of them without one)."""
    if where is None:
        return part
    return part[where.mask({c: part[c].to_numpy() for c in where.columns}, "the DataFrame")]


def _valid_values(part, columns, where, model_dtype):
    """The partition's raw ``columns`` (after ``where``) in float64, NaN where a value is
    missing (NaN, inf, -9999, beyond ``model_dtype``): what a median is taken over."""
    import pandas as pd
    part = _kept_rows(part, where)
    out = {}
    for c in columns:
        v = np.asarray(part[c].to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
        out[c] = np.where(missing_mask(v, model_dtype), np.nan, v)
    return pd.DataFrame(out, index=part.index)


def _frame_medians(data, columns, where, model_dtype):
    """{raw column: median of its valid values} for the source ``columns`` of the features,
    over the DataFrame's rows (those ``where`` keeps), as fastmlp train --missing
    impute-median takes them: exact, so each column's valid values come to the client once
    (8 bytes a row)."""
    valid = data.map_partitions(_valid_values, columns, where, model_dtype,
                                meta={c: np.float64 for c in columns})
    # one pass over the catalog for every column (a compute per column read it once each)
    values = dask.compute(*[valid[c].dropna() for c in columns])
    medians = {}
    for c, v in zip(columns, values):
        v = np.asarray(v, dtype=np.float64)
        if v.size == 0:
            raise ValueError(f"column {c!r} has no valid values to take a median of "
                             "(missing='impute-median')")
        medians[c] = float(np.median(v))
    return medians


def _check_label_dtype(dtype, what):
    """The labels (``what``: "label column 'class'", or "y") must hold numbers: fit maps no
    class names to integers.  Refused before anything is read, and before a null / empty
    text label is judged missing (refusing those first, then the others as text once they
    were dropped, took two runs).  In a DataFrame, string labels also made the one array of
    features and label an object array, refused later as "X must hold numbers"."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype
    if not (is_numeric_dtype(dtype) or is_bool_dtype(dtype)):
        raise _text_labels_error(what, dtype)


def _text_labels_error(what, dtype, example=None):
    """The one TypeError for labels that are not numbers, wherever they are found (a
    column's dtype, a block's values): ``what`` names them, ``example`` a text value."""
    such = "" if example is None else f" with values such as {example!r}"
    return TypeError(f"{what} must hold numbers (integer class labels or targets), got dtype "
                     f"{dtype}{such}; map string labels to integers first")


def _feature_rows(part, spec, label, model_dtype, where=None, missing="error"):
    """One pandas partition -> its features (spec.transform: colours derived, SDSS's -9999
    missing, a value beyond ``model_dtype`` missing too, as in the model's predictions) and
    its label, as columns of one frame; only the rows ``where`` keeps, and of those the
    rows fastmlp train's loader does not train on (a missing value without a fill value, a
    feature beyond ``model_dtype``, a missing label) refused or left out as ``missing``
    says (invalid_table_rows, apply_missing)."""
    import pandas as pd
    part = _kept_rows(part, where)
    X = spec.transform(part, model_dtype=model_dtype)
    y = part[label].to_numpy()
    invalid, counts = invalid_table_rows(part, spec, X, y, label, model_dtype)
    index = part.index.to_numpy()
    X, keep = apply_missing(X, np.arange(len(y)), invalid, counts, missing,
                            _partition_text(index), _CLEAN_FIRST)
    out = pd.DataFrame(X, columns=list(spec.names), index=part.index[keep])
    out[label] = y[keep]
    return out


def _partition_text(index):
    """'the DataFrame's rows with index a..b': where a partition's bad rows are."""
    if not len(index):
        return "the DataFrame"
    return f"the DataFrame's partition with index {index[0]}..{index[-1]}"


_CLEAN_FIRST = ("drop or clean those rows before distributed training, or pass "
                "missing='drop' (or 'impute-median' for a DataFrame)")


def _moments(X):
    """(n, mean, m2) of a block of float64 rows: what Standardizer.merge takes.  A block
    with a missing value is refused saying which option of fit keeps it out
    (Standardizer's own error said 'drop or impute those rows', not how)."""
    try:
        return Standardizer().partial_fit(X).moments()
    except ValueError as exc:
        raise ValueError(f"{exc}; or pass missing='drop' (or 'impute-median' for a "
                         "DataFrame) to distributed fit") from None


def _label_matrix(y, what):
    """A block's labels as a float64 (rows, outputs) matrix, or a TypeError naming them
    (``what``: "y" or "label column 'class'") when they are not numbers.  Any text is
    refused, "0" and "1" too (astype(float64) read those as numbers while a text column
    was refused)."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        text = _first_text(y)
        if text is not None:
            raise _text_labels_error(what, y.dtype, text)
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise _text_labels_error(what, y.dtype, y.ravel()[0]) from None
    y = np.asarray(y, dtype=np.float64)
    return y[:, None] if y.ndim == 1 else y


def _first_text(y):
    """The first value of ``y`` that is text (str or bytes), or None."""
    for v in y.ravel():
        if isinstance(v, (str, bytes)):
            return v
    return None


def _block_statistics(X, y, what, with_labels):
    """(n, mean, m2) of a block of rows (what Standardizer.merge takes) and, ``with_labels``,
    its labels' sums: y per output and y times each input column (outputs x columns), the
    labels' fingerprint in a checkpoint's identity (else None, None: only a checkpoint
    needs it, and it made the pass ~40 % heavier)."""
    Y = _label_matrix(y, what) if with_labels else None    # text labels named first
    X = np.asarray(X, dtype=np.float64)                     # cast once for both
    if Y is None:
        return _moments(X), None, None
    return _moments(X), Y.sum(axis=0), Y.T @ X


def _catalog_statistics(c, X, yy, what, with_labels):
    """((mean, std) per column of the whole catalog, the labels' fingerprint or None without
    ``with_labels``), merged from
    per-block statistics in block order in one pass: the same numbers for the
    standardisation and for a checkpoint's identity (two ways of summing differed in the
    last bits, and a resumed run was refused).  The fingerprint (mean of y per output, mean
    of y x per output and column) tells another run's labels (1 - y of a balanced catalog
    has the same mean but not the same y x) at no extra pass over the catalog."""
    st = Standardizer()
    if isinstance(X, np.ndarray):
        parts = [_block_statistics(X, yy, what, with_labels)]
    else:
        xb = X.rechunk({1: -1}).to_delayed().ravel()
        yb = yy.to_delayed().ravel()
        parts = c.compute([dask.delayed(_block_statistics)(a, b, what, with_labels)
                           for a, b in zip(xb, yb)], sync=True)
    for mom, _, _ in parts:
        st.merge(*mom)
    if not with_labels:
        return st.as_tuple(), None
    return st.as_tuple(), label_identity(X.shape[0], sum(p[1] for p in parts),
                                         sum(p[2] for p in parts))


def _standardization(model, stats, standardize):
    """The model's standardisation: kept if it has one, else the catalog's (mean, std) from
    ``stats`` (_catalog_statistics) stored in the model when ``standardize``."""
    if model.standardization is not None or not standardize:
        return model.standardization
    mean, std = stats
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        # not stored: the model keeps no inf statistics.  (NaN or inf in X was refused by
        # the blocks' Standardizer.partial_fit: only finite values that overflow get here.)
        cols = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std))).tolist()
        raise ValueError(f"standardize=True: the statistics of X's columns {cols} overflow "
                         "float64 (values near 1e154 and beyond); rescale those columns "
                         "before distributed training")
    model.standardization = (mean, std)
    return model.standardization


def _shard_groups(chunk_rows, n_shards):
    """Chunks dealt to the shards in turn, each to the shard with the fewest rows so far
    (round-robin for equal chunks): a catalog sorted by class or sky position gives every
    shard chunks from across it, where groups of consecutive chunks gave each shard one
    stretch of it (one class: model averaging then lost 2-3 points of accuracy)."""
    groups, rows = [[] for _ in range(n_shards)], [0] * n_shards
    for i, r in enumerate(chunk_rows):
        s = rows.index(min(rows))
        groups[s].append(i)
        rows[s] += r
    # a group of empty chunks (a filtered DataFrame's last partitions) holds no rows to train
    # on: no shard is made of it
    return [g for g in groups if sum(chunk_rows[i] for i in g) > 0]


def _prepare_shard(xs, ys, mean, scale, dtype, loss, n_outputs, n_inputs, shard_id, y_name):
    X = np.concatenate([np.asarray(x) for x in xs]) if len(xs) > 1 else np.asarray(xs[0])
    y = np.concatenate([np.asarray(v) for v in ys]) if len(ys) > 1 else np.asarray(ys[0])
    # the labels first: text in one partition's label column (its meta said numbers) made
    # the features + label array of that partition an object array, refused as "X"
    if y.dtype.kind not in "biuf":
        y = _label_matrix(y, f"{y_name} (shard {shard_id})").reshape(y.shape)
    # the raw rows first: the count of bad rows is theirs (a NaN in the statistics would
    # turn every standardised row NaN)
    X = check_array(X, f"X (shard {shard_id})", n_inputs, np.float64, remedy=_CLEAN_FIRST)
    if mean is not None:
        X = (X - mean) / scale
    X = check_array(X, f"X (shard {shard_id})", n_inputs, dtype, remedy=_CLEAN_FIRST)
    Y = check_targets(y, X.shape[0], loss, n_outputs, dtype)
    return {"X": X, "Y": Y, "sw": np.ones(X.shape[0], dtype=dtype)}


def _stream_rows(n_s, b, step0, k, seed, shard_id):
    """Row indices of steps step0 .. step0+k-1 of shard ``shard_id``: an endless stream of
    permutations default_rng([seed, shard_id, e]).permutation(n_s), b rows per step."""
    p0, p1 = step0 * b, (step0 + k) * b
    e0, e1 = p0 // n_s, (p1 - 1) // n_s
    perms = [np.random.default_rng([seed, shard_id, e]).permutation(n_s)
             for e in range(e0, e1 + 1)]
    stream = np.concatenate(perms) if len(perms) > 1 else perms[0]
    return np.ascontiguousarray(stream[p0 - e0 * n_s:p1 - e0 * n_s], dtype=np.int64)


def batch_rows(n_s, b, step, seed, shard_id):
    """The shard-local rows of one step (for reference computations and tests)."""
    return _stream_rows(n_s, b, step, 1, seed, shard_id)


def active_state_rows(opt):
    """The optimizer state rows that its settings use (only these travel and are averaged):
    none for plain SGD, no max_exp_avg_sq without amsgrad, ..."""
    name = opt.name
    if name == "sgd":
        return [0] if opt.momentum != 0 else []
    if name == "adagrad":
        return [0]
    if name == "rmsprop":
        return [0] + ([1] if opt.centered else []) + ([2] if opt.momentum > 0 else [])
    return [0, 1] + ([2] if opt.amsgrad else [])  # adam, adamw


def _local_round(shard, params, state_rows, n_state, rows_used, step0, k, b, lrs, opt_code,
                 hyper, sizes, acts, code, seed, shard_id, backend, n_threads):
    """K local steps of one shard from the averaged parameters; pure.  ``state_rows``: the
    active rows ``rows_used`` of the (n_state, n_params) optimizer state."""
    t0 = time.perf_counter()
    kernels = _set_threads(backend, n_threads)
    p = params.copy()
    st = np.zeros((n_state, p.size), dtype=p.dtype)
    st[rows_used] = state_rows
    X, Y = shard["X"], shard["Y"]
    rows = _stream_rows(X.shape[0], b, step0, k, seed, shard_id)
    losses = np.full(k, np.nan)
    # a shard's weights are ones (_prepare_shard): None is the same bits without a pass over
    # the shard's weights in every round (the kernels check an array's values per call)
    done = kernels.train_epoch(p, np.empty_like(p), st, losses, X, Y, None, rows, b, lrs, step0,
                               opt_code, hyper, sizes, acts, code)
    wsum = float(int(done) * b)      # the rows trained (_stream_rows: b a step), each weighs 1
    return p, st[rows_used], losses, int(done), wsum, time.perf_counter() - t0


def _shard_largest_values(shard):
    """((column, max |x|) of the shard's network inputs, max |y| of its targets)."""
    Y = shard["Y"]
    return largest_input(shard["X"]), float(np.abs(Y).max()) if Y.size else 0.0


def _shard_eval(shard, params, sizes, acts, code, loss_name, max_rows, seed, shard_id, backend):
    from ..backends import reference
    kernels = _set_threads(backend, None)
    X, Y, sw = shard["X"], shard["Y"], shard["sw"]
    n = X.shape[0]
    if n > max_rows:
        rows = np.sort(np.random.default_rng([seed, shard_id, 10**6]).choice(n, max_rows,
                                                                             replace=False))
        X, Y, sw = X[rows], Y[rows], sw[rows]
    out = np.empty((X.shape[0], int(sizes[-1])), dtype=params.dtype)
    kernels.mlp_forward(out, params, X, sizes, acts)
    w = float(sw.sum(dtype=np.float64))
    # a shard whose rows weigh nothing adds nothing (the kernels refuse a 0 / 0 mean)
    value = reference.loss_grad(np.empty_like(out), out, Y, sw, code) if w > 0 else 0.0
    return value * w, binary_or_argmax_correct(out, Y, loss_name), w, X.shape[0]


def uneven_class_mix(counts):
    """(shard, class, share in the shard, share overall) for the class whose share in some
    shard is furthest from its share over all shards, when that gap is both large (over half
    the smaller of the class's share and the rest's) and far beyond sampling noise (5
    binomial standard deviations of the shard's share); else None.  counts: (shards,
    classes) rows per class."""
    counts = np.asarray(counts, dtype=np.float64)
    n_s = np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    p = counts.sum(axis=0) / counts.sum()
    gap = np.abs(counts / n_s - p)
    large = 0.5 * np.minimum(p, 1 - p)
    noise = 5 * np.sqrt(p * (1 - p) / n_s)
    flagged = (gap > large) & (gap > noise)
    if not flagged.any():
        return None
    s, c = np.unravel_index(np.argmax(np.where(flagged, gap / np.maximum(large, 1e-300), 0)),
                            gap.shape)
    return int(s), int(c), float(counts[s, c] / n_s[s, 0]), float(p[c])


def _class_mix_advice(n_shards, shard, cls, share, overall):
    return (f"distributed.fit: shard {shard} of {n_shards} holds {share:.1%} of class {cls} "
            f"against {overall:.1%} over the catalog: its rows are probably sorted (by class "
            "or sky position), and averaging models trained on different class mixes loses "
            "accuracy (2-3 points on a sorted synthetic catalog).  Shuffle the rows across "
            "partitions first (a Dask DataFrame: ddf.shuffle(on=a column of random numbers); "
            "a Dask array: X[p], y[p] with one random permutation p), or give many more "
            "partitions than shards (ddf.repartition(npartitions=...), X.rechunk(...)): "
            "partitions are dealt to the shards in turn, each shard then gets rows from "
            "across the catalog")


def _shard_class_counts(shard):
    """Rows per class in the shard (its targets are class labels in one column)."""
    return np.bincount(shard["Y"][:, 0].astype(np.int64))


# OSErrors a task's own code raises the same way every time (a partition's missing file)
_DETERMINISTIC_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError,
                            PermissionError)


def lost_worker_failure(exc):
    """Whether a task failure is one that submitting the task again can cure: its worker
    died (KilledWorker), its data or future was lost (CancelledError), the network failed
    (CommClosedError and other OSErrors, timeouts).  A missing file is not one of them."""
    if isinstance(exc, _DETERMINISTIC_OS_ERRORS):
        return False
    return isinstance(exc, (KilledWorker, OSError, asyncio.TimeoutError,
                            concurrent.futures.CancelledError))


def fit(model, data, y=None, features=None, label=None, client="local", sync_every=1,
        epochs=10, batch_size=256, optimizer="adam", lr=None, schedule=None, seed=0,
        loss=None, standardize=True, validation=None, n_shards=None, backend=None,
        n_threads=1, checkpoint=None, resume=False, max_retries=3, progress=True,
        callbacks=(), round_callbacks=(), optimizer_kwargs=None, early_stopping=None,
        on_divergence="warn", missing="error", where=None):
    """Data-parallel training with model averaging on a Dask cluster; returns a History.

    data: a Dask DataFrame (or an LSDB catalog) with ``features=[columns]`` and
      ``label=column``; a Dask array X (n, d) with ``y`` (a Dask or NumPy array); or NumPy
      arrays X, y (split into shards and shipped once).
    client: a distributed.Client, a scheduler address, or "local" (a LocalCluster of 2
      worker processes x 1 thread, closed afterwards).
    missing: a row with a missing feature (NaN, inf, SDSS's -9999 in a DataFrame's
      columns, a value beyond the model's dtype; arrays are taken as they are, as by
      fastmlp.fit(X, y): -9999 there is a number) or label (NaN, inf, -9999; labels must
      be numbers: text is refused, naming the column or y), as fastmlp train's --missing:
      "error" (refused, naming the shard), "drop" (left out) or "impute-median" (a
      DataFrame only: every raw column's median
      over the catalog, exact, becomes the model's fill value, FeatureSpec.fill, so that
      predictions impute as training did).  A model whose features already have fill
      values (an earlier impute-median) imputes with those, whatever ``missing``.
    where: a filter on a DataFrame's rows, as fastmlp train's --where ("r < 21 and
      u-g > 0.5": a name a-b that is not a column is the colour a - b), applied first (the
      medians are those of the rows kept).
    sync_every: K, local mini-batch steps per round between averagings (K = 1 with
      optimizer="sgd" is synchronous gradient averaging).  batch_size: the GLOBAL batch
      (shard s uses ~batch_size * n_s / n rows per step); an epoch is ceil(n / batch_size)
      steps.  optimizer / lr / schedule / optimizer_kwargs / loss: as in fastmlp.fit (a
      schedule longer than the run's steps per epoch x epochs: a ScheduleWarning, as fit's).
    standardize: when the model has no standardisation yet, compute the per-column mean and
      standard deviation over the whole catalog with Dask first (Chan merges of per-block
      moments) and store them in the model's contract, so that ``model.predict(X)`` takes
      raw features afterwards, as after fastmlp.fit.
    validation: None (or 0) or an (X_val, y_val) pair of raw (unstandardised) NumPy arrays
      (no fraction: the catalog is not held in one place; early_stopping needs the pair).
    checkpoint: a path; after every round the averaged parameters, optimizer state, step,
      round and the current epoch's steps and loss sums are written atomically (temporary
      file + os.replace), and at each epoch's end the whole History and early stopping's
      state to history_file(checkpoint) ('run.npz' -> 'run.npz.history.npz'; a directory
      or a file that is no such History file there is refused before any work).
      resume=True continues from that file if it exists and returns the whole History, as
      fastmlp.fit does (stopping early where the uninterrupted run stops; a run a callback
      stopped at an epoch's end stays stopped); a checkpoint of another run (other
      settings, early stopping and validation data included, data -- shape, column
      statistics and a fingerprint of the labels --, standardisation or shard layout: which
      rows or partitions each shard holds, e.g. on another number of workers or partitions)
      is refused, naming what differs.  Checkpoints written by earlier versions, before the
      labels' fingerprint was kept, are refused as such: start those runs afresh.
    Inputs beyond |x| = 1e6 as the network sees them (unstandardised) are warned of before
    training, as by fastmlp.fit.
    max_retries: how often a failed round (a worker died, data lost, the network failed) is
      submitted again from the last averaged parameters before giving up.  An error of a
      task's own code or data (a ValueError on bad rows, a missing file, ...) is not retried:
      it is raised at once, of its own type, naming the shard and its rows or partitions.
    callbacks, early_stopping, on_divergence: as in fastmlp.fit (the same epoch loop);
    round_callbacks: ``cb(round, history, model)`` after each round (True stops).
    The History has ``loss``, ``metrics["accuracy"]`` (or ``rmse``) on a fixed subset of up
    to 10,000 training rows, ``val_loss`` / ``val_*`` with validation, ``lr`` and
    ``batch_loss`` per step, ``samples_per_s``, ``epoch_time``; and ``history.distributed``:
    shards, rows per shard, rounds, retries, bytes sent and received per round, time in
    rounds, compute time inside the tasks, ``shard_layout`` ("contiguous" row ranges or
    "interleaved": see the module's notes on sorted catalogs) and, for a classifier,
    ``shard_class_counts`` (rows per class in each shard).
    """
    _require()
    check_fit_args(model, epochs, batch_size, lr, callbacks, seed, standardize)
    check_positive(sync_every, "sync_every", integer=True)
    _check_round_args(max_retries, round_callbacks)
    n_threads = _check_task_threads(n_threads)
    if resume and checkpoint is None:
        raise ValueError("resume=True continues from checkpoint=PATH; no checkpoint was given")
    if checkpoint is not None:      # what atomic_write will replace, checked before training
        _check_checkpoint_targets(checkpoint)
    if n_shards is not None:
        check_positive(n_shards, "n_shards", integer=True)
    # checked before any pass over the data and before a resume overwrites the model
    validation, stopper = _validation_and_stopper(validation, early_stopping)
    loss = loss if loss is not None else model.default_loss()
    code = loss_code(loss)
    X, yy, spec = _as_dask_arrays(data, y, features, label, model,
                                  check_missing_policy(missing), where)
    if X.shape[1] != model.n_inputs:
        raise ValueError(f"X has {counted(X.shape[1], 'feature column')}, the model expects "
                         f"{model.n_inputs}")
    if spec is not None and spec != model.features:
        # the model reads raw tables as it was trained (with the fill values it imputed)
        model.set_contract(features=spec)
    if int(X.shape[0]) == 0:
        raise ValueError("the catalog is empty")
    if batch_size is None:         # as fit: one step over every row per epoch
        batch_size = int(X.shape[0])
    opt, sched, backend, kernels = training_setup(model, optimizer, lr, optimizer_kwargs,
                                                  schedule, backend)
    model.optimizer = opt
    y_name = "y" if spec is None else f"label column {label!r}"
    x_name = "X" if spec is None else "data"    # the argument the features came in
    with _client(client) as c:
        # the catalog's column statistics and, for a checkpoint's identity only, the labels'
        # fingerprint, in one pass: the standardisation and the identity of the run's data
        needs_stats = checkpoint is not None or (standardize and model.standardization is None)
        stats, labels = _catalog_statistics(c, X, yy, y_name, checkpoint is not None) \
            if needs_stats else (None, None)
        st = _standardization(model, stats, standardize)
        val = None if validation is None else validation_pair(model, loss, *validation)
        set_trained_link(model, loss)    # as fit: the link follows the loss
        hist = History(backend=backend, loss_name=loss, optimizer=opt)
        rounds = _Rounds(c, model, opt, sched, X, yy, st, loss, code, hist,
                         dict(n_shards=n_shards, batch_size=batch_size, sync_every=sync_every,
                              seed=seed, backend=backend, n_threads=n_threads,
                              checkpoint=checkpoint, max_retries=max_retries, y_name=y_name,
                              x_name=x_name,
                              round_callbacks=round_callbacks, stopper=stopper,
                              run=_run_identity(model, opt, schedule, X, stats, labels, st,
                                                n_shards, batch_size, sync_every, seed,
                                                loss, stopper, val)))
        # _Rounds submitted the shards: anything that raises from here (the length warning
        # under -W error, a refused checkpoint) must release them, hence inside the try
        try:
            # the lr steps as the rounds count them: every round's k steps advance the
            # schedule on every shard at once, an epoch's rounds ceil(n / batch_size) steps
            warn_length(sched, rounds.steps_per_epoch * epochs, stacklevel=user_stacklevel())
            rounds.warn_large_inputs()
            start_epoch = rounds.resume() if resume and checkpoint is not None \
                and os.path.exists(checkpoint) else rounds.start_afresh()
            if hist.stopped_early or rounds.stopped:   # as fit: a stopped run stays stopped
                start_epoch = epochs
            # the one epoch loop: a Dask round of K local steps per shard + averaging is
            # what differs; validation, early stopping, callbacks and History are shared
            return train_epochs(
                model, epochs, rounds.epoch, kernels=kernels, code=code, hist=hist,
                validation=val, stopper=stopper,
                callbacks=tuple(callbacks) + (rounds.stop_requested,), progress=progress,
                desc="dask fit", train_metric=rounds.train_metric,
                describe=rounds.describe, start_epoch=start_epoch,
                checkpointer=rounds,
                on_divergence=on_divergence)
        finally:
            rounds.release()


def _check_round_args(max_retries, round_callbacks):
    """Checked before any work: a bad max_retries failed only when a round failed, a
    round callback that is not callable after the first round's training."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) \
            or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
    if callable(round_callbacks) or not hasattr(round_callbacks, "__iter__"):
        raise TypeError("round_callbacks must be a list of callables cb(round, history, "
                        f"model), got {round_callbacks!r}")
    for cb in round_callbacks:
        if not callable(cb):
            raise TypeError(f"round_callbacks must be callables, got {cb!r}")


def _checked_validation(validation):
    """Dask's fit takes validation as an (X_val, y_val) pair only (it holds out no fraction
    of a catalog spread over the workers); 0 means none, as for fastmlp.fit and mpi_fit.
    Returns the pair or None, saying what this fit accepts (fit's words offered a
    fraction)."""
    if isinstance(validation, (int, float, np.integer, np.floating)) \
            and not isinstance(validation, (bool, np.bool_)) and validation == 0:
        return None
    pair = isinstance(validation, tuple) and len(validation) == 2
    if validation is not None and not pair:
        raise ValueError("validation must be None or an (X_val, y_val) pair of arrays (raw "
                         f"features and labels), got {_short_repr(validation)}; distributed "
                         "fit holds out no fraction of the catalog: split off validation "
                         "rows first (e.g. fastmlp.training.stratified_split)")
    return validation


def _validation_and_stopper(validation, early_stopping):
    """(the validation pair or None, fit's EarlyStopping), checked before any work.  The
    early-stopping settings are checked by training.loop; without a validation pair Dask's
    own words: it takes no validation fraction, which loop's message offers."""
    validation = _checked_validation(validation)
    stopper = EarlyStopping(early_stopping, True)
    if stopper.patience is not None and validation is None:
        raise ValueError("early_stopping needs validation data: pass validation=(X_val, "
                         "y_val) arrays (distributed fit takes no validation fraction; split "
                         "off validation rows first, e.g. fastmlp.training.stratified_split)")
    return validation, stopper


def _short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def _run_identity(model, opt, schedule, X, stats, labels, st, n_shards, batch_size,
                  sync_every, seed, loss, stopper, validation):
    """What must not change between a Dask run and its resumption (JSON-able).  The data
    are known by their shape, column statistics ``stats`` and labels' fingerprint
    ``labels`` (_catalog_statistics); ``st``: the standardisation the shards apply (None:
    raw inputs), since parameters trained on standardised inputs mean nothing on raw ones;
    early stopping's settings (another patience would judge the saved epochs otherwise);
    ``validation``: the validation pair's network inputs (or None), known by their SHA-256
    as in fit's fingerprint: other validation rows would judge (and stop early on) other
    losses than the checkpointed epochs were judged on."""
    applied = None if st is None else column_identity(st)
    return run_identity(model, opt, loss, batch_size, schedule, sync_every=int(sync_every),
                        n_shards=None if n_shards is None else int(n_shards),
                        seed=None if seed is None else int(seed), rows=int(X.shape[0]),
                        columns=int(X.shape[1]), input_standardization=applied,
                        early_stopping=stopping_identity(stopper), labels=labels,
                        validation=None if validation is None else data_sha256(*validation),
                        **column_identity(stats))


def history_file(checkpoint):
    """The file next to a Dask run's checkpoint that holds the History of its whole epochs
    and early stopping's state, written at each epoch's end ('run.npz' ->
    'run.npz.history.npz'): the round checkpoints stay small however long the run.  The
    whole path gets the suffix, so that two checkpoints never share one History file
    ('a' and 'a.npz' did) and no checkpoint's History file is another checkpoint's path
    ('a.npz' wrote over a checkpoint named 'a.history.npz')."""
    return os.fspath(checkpoint) + ".history.npz"


def is_history_file(path):
    """Whether ``path`` holds the History file of a Dask run's checkpoint (its run identity
    and History, as _Rounds.after_epoch writes them): the only file a fresh run deletes."""
    try:
        arrays = load_checkpoint(path)
        saved = json.loads(str(arrays["run"]))
    except (OSError, ValueError, KeyError):
        return False
    return isinstance(saved, dict) and "hist_metrics" in arrays \
        and "epoch_sums" not in arrays       # a round checkpoint has these, no History


def _check_checkpoint_targets(checkpoint):
    """The checkpoint and its History file, checked before any work."""
    write_target(checkpoint, "checkpoint")
    _check_history_target(checkpoint)


def _check_history_target(checkpoint):
    """The checkpoint's History file checked before any work, as the checkpoint is: a
    directory there failed after the first epoch; a file that is not a Dask run's History
    file (the user's own, another run's checkpoint) was deleted by a fresh run."""
    hpath = history_file(checkpoint)
    write_target(hpath, "checkpoint's History file")
    refuse_overwrite(hpath, [], "checkpoint's History file",
                     outputs=[("checkpoint", checkpoint)])
    if os.path.lexists(hpath) and not is_history_file(hpath):
        raise ValueError(f"checkpoint's History file {hpath} exists and is not the History "
                         "file of a fastmlp.distributed.fit checkpoint; fit writes the "
                         "History there: move that file away or choose another checkpoint "
                         "path")


def _refuse_checkpoint_without_labels(path, ck):
    """A checkpoint (arrays ``ck`` read from ``path``) written before the labels'
    fingerprint was part of a run's identity: no resume can match it, so say so (not
    'resume with the same model, data and settings').  A file that is no checkpoint is
    left to checked_run_checkpoint to name."""
    try:
        saved = json.loads(str(ck["run"]))
    except (ValueError, KeyError):
        return
    if isinstance(saved, dict) and "labels" not in saved:
        raise ValueError(f"resume: {path} was written by an earlier version of fastmlp, "
                         "whose checkpoints do not identify the labels; it cannot be resumed: "
                         "start afresh (resume=False) or delete it")


class _Rounds:
    """The Dask side of data-parallel training: shards persisted on the workers, one epoch
    as rounds of K local steps per shard followed by a weighted average of the parameters
    (and the active optimizer state), retries after a lost worker, checkpoints."""

    def __init__(self, c, model, opt, sched, X, yy, st, loss, code, hist, cfg):
        self.c, self.model, self.opt, self.sched, self.hist = c, model, opt, sched, hist
        self.loss, self.code, self.cfg = loss, code, cfg
        self.workers = sorted(c.scheduler_info()["workers"])
        n = int(X.shape[0])
        P = int(cfg["n_shards"]) if cfg["n_shards"] is not None else max(1, len(self.workers))
        # a classifier's labels are one column of classes 0 .. n_classes - 1
        n_classes = max(2, model.n_outputs) if loss == "cross_entropy" or (
            loss == "bce" and model.n_outputs == 1) else None
        self.pieces, self.shard_rows, self.shard_text, layout, layout_id = _shard_pieces(
            X, yy, min(P, n), n_classes)
        # a checkpoint is resumed onto the same shards only: its round count and the shards'
        # row streams mean nothing on another split of the rows
        self.run = dict(cfg["run"], shard_layout=layout_id)
        self.P = len(self.pieces)
        self.X_is_numpy = isinstance(X, np.ndarray)
        self.mu, self.sc = st if st is not None else (None, None)
        self.shards = [self.make_shard(s) for s in range(self.P)]
        bs = cfg["batch_size"]
        self.b_local = [max(1, int(round(bs * r / n))) for r in self.shard_rows]
        self.steps_per_epoch = -(-n // min(bs, n))
        self.K = int(cfg["sync_every"])
        self.rounds_per_epoch = -(-self.steps_per_epoch // self.K)
        self.used = active_state_rows(opt)
        self.start_round, self.global_round, self.stop = 0, 0, False
        self.stopped = False     # the resumed run had stopped at an epoch's end
        # the current epoch's loss sum, rows and seconds so far (before this process's start
        # at t_epoch), and where its steps start in the History's batch_loss and lr
        self.ep_loss = self.ep_w = self.ep_seconds = 0.0
        self.t_epoch, self.ep_first_step = time.perf_counter(), 0
        pbytes = model.params.nbytes * (1 + len(self.used))
        self.info = hist.distributed = {
            "n_shards": self.P, "shard_rows": self.shard_rows, "local_batch": self.b_local,
            "sync_every": self.K, "rounds": 0, "retries": 0, "failed_rounds": [],
            "bytes_per_round": 2 * self.P * pbytes, "round_time": [], "compute_time": [],
            "steps_per_epoch": self.steps_per_epoch, "workers": len(self.workers),
            "shard_layout": layout}
        if n_classes is not None:
            self.check_class_mix()

    def make_shard(self, s):
        m, xs, ys = self.model, *self.pieces[s]
        where = dict(workers=[self.workers[s % len(self.workers)]],
                     allow_other_workers=True) if self.workers else {}
        args = (xs, ys, self.mu, self.sc, m.dtype, self.loss, m.n_outputs, m.n_inputs, s,
                self.cfg["y_name"])
        if self.X_is_numpy:
            return self.c.submit(_prepare_shard, *args, pure=False, **where)
        return self.c.compute(dask.delayed(_prepare_shard)(*args), **where)

    def resume(self):
        """Continue from the checkpoint; returns the epoch to start from.  A checkpoint of
        another run (other rates, sync_every, batch size, shard layout, seed or data) is
        refused: its round count would be read against another schedule of rounds, its
        shards' row streams on other rows.  The History and early stopping's state come
        from the epochs' file (history_file), the current epoch's steps from the round
        checkpoint."""
        path = self.cfg["checkpoint"]
        ck = read_run_checkpoint(path, "fastmlp.distributed.fit")     # read once
        _refuse_checkpoint_without_labels(path, ck)
        checked_run_checkpoint(path, self.run, "fastmlp.distributed.fit", ck)
        done_rounds = int(ck["round"])
        start_epoch, self.start_round = divmod(done_rounds, self.rounds_per_epoch)
        self.global_round = done_rounds
        self.info["resumed_from_round"] = done_rounds
        recorded = self.restore_epochs(path)
        if self.start_round == 0 and start_epoch == recorded + 1:
            # killed after an epoch's last round, before its loss was recorded: that epoch
            # ends now, with no round left to run (its sums were checkpointed)
            start_epoch, self.start_round = start_epoch - 1, self.rounds_per_epoch
        if recorded != start_epoch:
            raise ValueError(f"resume: {history_file(path)} holds "
                             f"{counted(recorded, 'epoch')} of History, {path} is at round "
                             f"{done_rounds} (epoch {start_epoch + 1}): the two files are "
                             "of different points of the run; start afresh (resume=False)")
        # only now, the two files agreeing: a refused resume left the model as it was
        restore_training_checkpoint(path, self.model, self.opt, ck)
        if self.start_round > 0:     # inside an epoch: its steps so far and its sums
            self.ep_first_step = len(self.hist.batch_loss)
            self.hist.batch_loss.extend(ck["epoch_batch_loss"].tolist())
            self.hist.lr.extend(ck["epoch_lr"].tolist())
            self.ep_loss, self.ep_w, self.ep_seconds = (float(v) for v in ck["epoch_sums"])
        return start_epoch

    def start_afresh(self):
        """A run not resumed starts at epoch 0; an epochs' file of an earlier run at the
        checkpoint's path (checked by _check_history_target) is deleted: a resume would
        join it to this run's rounds."""
        path = self.cfg["checkpoint"]
        if path is not None and os.path.lexists(history_file(path)):
            _check_history_target(path)     # again: only a History file is ever deleted
            os.remove(history_file(path))
        return 0

    def restore_epochs(self, path):
        """The History of the whole epochs and early stopping's state from the epochs' file
        next to ``path`` (none before the first epoch's end); returns the epochs it holds."""
        hpath = history_file(path)
        if not os.path.exists(hpath):
            return 0
        hk = checked_run_checkpoint(hpath, self.run, "fastmlp.distributed.fit")
        restore_history(self.hist, checkpoint_history(hk))
        self.stopped = bool(hk.get("stopped", False))
        restore_stopper({k: hk[k] for k in STOPPER_KEYS if k in hk}, self.cfg["stopper"],
                        self.hist)
        return len(self.hist.loss)

    def save_checkpoint(self, epoch):
        """After a round: the averaged parameters, optimizer state, round, and the current
        epoch's loss sums, seconds and steps (batch_loss, lr): small, whatever the run's
        length.  The whole epochs' History is written at their ends only (after_epoch)."""
        model, i = self.model, self.ep_first_step
        save_training_checkpoint(self.cfg["checkpoint"], model, self.opt, self.global_round,
                                 epoch, *(model.standardization or (None, None)),
                                 run=np.array(json.dumps(self.run)),
                                 epoch_sums=np.array([self.ep_loss, self.ep_w,
                                                      self.epoch_seconds()]),
                                 epoch_batch_loss=np.asarray(self.hist.batch_loss[i:],
                                                             np.float64),
                                 epoch_lr=np.asarray(self.hist.lr[i:], np.float64))

    def after_epoch(self, epoch, stop=False):
        """Once a whole epoch's loss, metrics and validation are in the History, write it
        (and early stopping's state, decided at the epoch's end, and whether the run stops
        there: a callback's stop too, which a resume honours as fit's does) to the epochs'
        file.  Called by train_epochs as its checkpointer."""
        if self.cfg["checkpoint"] is not None and self.global_round % self.rounds_per_epoch == 0:
            atomic_savez(history_file(self.cfg["checkpoint"]),
                         run=np.array(json.dumps(self.run)), stopped=np.bool_(stop),
                         **stopper_arrays(self.cfg["stopper"], self.hist),
                         **history_arrays(self.hist))

    def epoch_seconds(self):
        """Seconds spent in the current epoch, those before a resume included."""
        return self.ep_seconds + time.perf_counter() - self.t_epoch

    def run_on_shards(self, fn, args_of, what):
        """fn(shard_s, *args_of(s)) for every shard.  A lost worker, lost data or a network
        failure (lost_worker_failure): lost shards are rebuilt and everything is submitted
        again from the same inputs, up to max_retries times.  Any other exception comes from
        the task's own code or data and would fail again the same way: it is raised at once,
        naming the shard."""
        c, retries = self.c, self.cfg["max_retries"]
        for attempt in range(retries + 1):
            futs = [c.submit(fn, self.shards[s], *args_of(s), pure=False)
                    for s in range(self.P)]
            try:
                return c.gather(futs)
            except Exception as exc:
                if not lost_worker_failure(exc):
                    named = self.naming_shard(exc, futs, what)
                    for f in futs:      # the other shards' tasks are of no use now
                        f.cancel()
                    raise named from exc
                self.info["retries"] += 1
                self.info["failed_rounds"].append((what, f"{type(exc).__name__}: {exc}"[:200]))
                if attempt == retries:
                    ck = self.cfg["checkpoint"]
                    raise RuntimeError(
                        f"{what} failed {counted(retries + 1, 'time')}; the model holds the "
                        f"averaged parameters after round {self.info['rounds']}"
                        + (f" (also in {ck})" if ck else "")) from exc
                for f in futs:
                    f.cancel()
                try:
                    c.wait_for_workers(1, timeout=60)
                except Exception:
                    pass
                self.shards = [sh if sh.status == "finished" else self.make_shard(s)
                               for s, sh in enumerate(self.shards)]

    def naming_shard(self, exc, futs, what):
        """The task error ``exc`` of the same type, its message led by the shard that raised
        it (and its rows or partitions) unless it names it already; ``exc`` itself (with a
        note where Python has them) when its type cannot be made from a message."""
        s = _raising_future(exc, futs)
        if s is None or re.search(rf"\bshard {s}\b", str(exc)):    # not "shard 10" for 1
            return exc
        text = f"shard {s} of {self.P} ({self.shard_text[s]}) failed in {what}"
        try:
            new = type(exc)(f"{text}: {exc}")
        except Exception:
            if hasattr(exc, "add_note"):
                exc.add_note(text)
            return exc
        return new.with_traceback(exc.__traceback__)

    def epoch(self, epoch):
        """One epoch of rounds; returns (loss sum, weighted rows, seconds)."""
        self.t_epoch = time.perf_counter()
        r0, self.start_round = self.start_round, 0
        if r0 == 0:
            self.ep_loss = self.ep_w = self.ep_seconds = 0.0
            self.ep_first_step = len(self.hist.batch_loss)
        for r in range(r0, self.rounds_per_epoch):
            k = min(self.K, self.steps_per_epoch - r * self.K)
            loss_sum, w = self.round(epoch, k)
            self.ep_loss, self.ep_w = self.ep_loss + loss_sum, self.ep_w + w
            if self.cfg["checkpoint"] is not None:
                self.save_checkpoint(epoch)
            if any([bool(cb(self.global_round, self.hist, self.model))
                    for cb in self.cfg["round_callbacks"]]):
                self.stop = True
                break
        return self.ep_loss, self.ep_w, self.epoch_seconds()

    def round(self, epoch, k):
        """K local steps on every shard from the averaged parameters, then the average."""
        model, opt, cfg = self.model, self.opt, self.cfg
        step0 = opt.step_count
        lrs = step_lrs(self.sched, step0, k)
        params, state = model.params.copy(), opt.state.copy()
        sent_state = np.ascontiguousarray(state[self.used])
        hyper = opt.hyper_vector()
        t0 = time.perf_counter()
        results = self.run_on_shards(_local_round, lambda s: (
            params, sent_state, state.shape[0], self.used, step0, k, self.b_local[s], lrs,
            opt.code, hyper, model.sizes_array, model.acts_array, self.code, cfg["seed"], s,
            cfg["backend"], cfg["n_threads"]), f"round {self.global_round + 1}")
        dt = time.perf_counter() - t0
        dones = [res[3] for res in results]
        if min(dones) < k:
            j = int(np.argmin(dones))
            step, lr = step0 + dones[j] + 1, lrs[dones[j]]
            raise TrainingDiverged(diverged_message(
                f"at step {step} on shard {j} (epoch {epoch + 1}, round "
                f"{self.global_round + 1}, lr {lr:.3g})", step_loss_seen(results[j][2][dones[j]]),
                f"the model keeps the averaged parameters after step {step0}",
                self.advice(lr)), step, epoch + 1)
        w = [res[4] for res in results]
        model.params[...] = weighted_average([res[0] for res in results], w, model.dtype)
        if self.used:
            opt.state[self.used] = weighted_average([res[1] for res in results], w,
                                                    model.dtype)
        opt.step_count = step0 + k
        # the state too: Adam's squared gradients overflow on huge unstandardised inputs
        # while the parameters stay finite and stop moving (as in training.loop.run_epoch)
        what = nonfinite_training_state(model.params, opt)
        if what is not None:
            model.params[...], opt.state[...], opt.step_count = params, state, step0
            raise TrainingDiverged(diverged_message(
                f"in round {self.global_round + 1} (epoch {epoch + 1}, steps {step0 + 1}.."
                f"{step0 + k}, lr {lrs[-1]:.3g})", f"the average of {what} became non-finite",
                "the model and optimizer were put back as they were before this round",
                self.advice(lrs[-1])), step0 + 1, epoch + 1)
        # per-step loss: weighted by the shards' batch rows
        bl = np.array([res[2] for res in results])  # (P, k)
        bw = np.asarray(self.b_local, np.float64)[:, None]
        step_loss = (bl * bw).sum(axis=0) / bw.sum()
        self.hist.batch_loss.extend(step_loss.tolist())
        self.hist.lr.extend(lrs.tolist())
        self.info["rounds"] += 1
        self.info["round_time"].append(dt)
        self.info["compute_time"].append(max(res[5] for res in results))
        self.global_round += 1
        return float(step_loss.sum()) * bw.sum(), k * bw.sum()

    def train_metric(self):
        """Accuracy (or RMSE) on a fixed subset of up to TRAIN_METRIC_ROWS training rows,
        evaluated where the shards live."""
        m = self.model
        per = max(1, TRAIN_METRIC_ROWS // self.P)
        evals = self.run_on_shards(_shard_eval, lambda s: (
            m.params, m.sizes_array, m.acts_array, self.code, self.loss, per, self.cfg["seed"],
            s, self.cfg["backend"]), f"evaluation after round {self.global_round}")
        tot_n = sum(e[3] for e in evals)
        total = sum(e[1] for e in evals)
        return total / tot_n if self.loss != "mse" else math.sqrt(total / (tot_n * m.n_outputs))

    def advice(self, lr):
        """What to change after a diverged round, in run_epoch's words: huge network inputs
        first (divergence_advice), then huge regression targets (target_scale_advice), else
        a smaller lr.  The shards are asked for their largest input and target only then."""
        found = self.run_on_shards(_shard_largest_values, lambda s: (), "the divergence advice")
        largest = max((f[0] for f in found), key=lambda jb: jb[1])
        # target_scale_advice judges targets by their largest magnitude: the shards' one
        top_target = np.array([max(f[1] for f in found)])
        lr_advice = target_scale_advice(top_target, self.code, smaller_lr_advice(lr))
        return divergence_advice(self.model, None, lr_advice, largest=largest)

    def warn_large_inputs(self):
        """fastmlp.fit's warning before training on network inputs beyond |x| = 1e6 (huge
        losses, an overflowed optimizer state), from the shards' own largest inputs: as the
        network sees them, whichever standardisation the model has."""
        found = self.run_on_shards(_shard_largest_values, lambda s: (), "building the shards")
        largest = max((f[0] for f in found), key=lambda jb: jb[1])
        # + 1: training.fit.warn_large_inputs warns from one frame further down
        warn_large_inputs(self.model, None, self.cfg["x_name"], largest=largest,
                          stacklevel=user_stacklevel() + 1)

    def check_class_mix(self):
        """The shards' class counts (history.distributed["shard_class_counts"]); one warning
        when a class's share in some shard is far from its share over the catalog: model
        averaging of shards that saw different classes loses accuracy."""
        counts = self.run_on_shards(_shard_class_counts, lambda s: (), "building the shards")
        width = max(c.size for c in counts)
        counts = np.array([np.pad(c, (0, width - c.size)) for c in counts])
        self.info["shard_class_counts"] = counts.tolist()
        uneven = uneven_class_mix(counts)
        if uneven is not None:
            warnings.warn(ShardClassMixWarning(_class_mix_advice(self.P, *uneven)),
                          stacklevel=user_stacklevel())

    def describe(self):
        return f"({counted(self.P, 'shard')}, {counted(self.info['rounds'], 'round')})"

    def stop_requested(self, epoch, hist, model):
        return self.stop

    def release(self):
        for s in self.shards:
            s.release()


def _raising_future(exc, futs):
    """The index of the future whose task raised ``exc``, or None when no single one is
    known to: Client.gather raises the first failed future in set-iteration order, not the
    lowest index, so the first future with an error may be another shard's.  The error
    itself when a future holds it, else one of the same type and message (the same error
    of two shards names neither)."""
    errors = {}
    for s, f in enumerate(futs):
        if f.status == "error":
            try:
                errors[s] = f.exception(timeout=5)
            except Exception:    # noqa: BLE001 -- a lost future: not the one to name
                continue
    same = [s for s, e in errors.items() if e is exc]
    if not same:
        same = [s for s, e in errors.items()
                if type(e) is type(exc) and str(e) == str(exc)]
    return same[0] if len(same) == 1 else None


def _shard_pieces(X, yy, P, n_classes):
    """([(x blocks, y blocks)] per shard, rows per shard, what each shard holds in words,
    layout, the layout in a checkpoint's identity): for a NumPy array P near-equal row
    ranges ("contiguous"), or every P-th row ("interleaved") when the ranges' class mixes
    differ (uneven_class_mix: a catalog sorted by class; n_classes: a classifier's, else
    None); for a Dask array its chunks dealt to the shards in turn (_shard_groups)."""
    n = int(X.shape[0])
    if isinstance(X, np.ndarray):
        bounds = np.linspace(0, n, P + 1).round().astype(int)
        labels = _class_labels(yy, n_classes) if n_classes and P > 1 else None
        if labels is not None and uneven_class_mix(
                [np.bincount(labels[a:b], minlength=n_classes)
                 for a, b in zip(bounds[:-1], bounds[1:])]) is not None:
            return ([([X[s::P]], [yy[s::P]]) for s in range(P)],
                    [len(range(s, n, P)) for s in range(P)],
                    [f"rows {s}, {s + P}, {s + 2 * P}, ..." for s in range(P)], "interleaved",
                    f"{counted(P, 'shard')}: shard s holds rows s, s + {P}, s + {2 * P}, ...")
        return ([([X[a:b]], [yy[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])],
                [int(b - a) for a, b in zip(bounds[:-1], bounds[1:])],
                [f"rows {a}..{b - 1}" for a, b in zip(bounds[:-1], bounds[1:])], "contiguous",
                f"{counted(P, 'shard')}: contiguous row ranges")
    xb, yb = X.to_delayed().ravel(), yy.to_delayed().ravel()
    groups = _shard_groups([int(r) for r in X.chunks[0]], P)
    return ([([xb[i] for i in g], [yb[i] for i in g]) for g in groups],
            [int(sum(X.chunks[0][i] for i in g)) for g in groups],
            [_partitions_text(g) for g in groups], _dealt_layout(groups),
            _layout_identity(groups))


def _dealt_layout(groups):
    """"contiguous" when every shard's partitions follow each other (one partition per
    shard, say: each shard then holds one range of rows), else "interleaved"."""
    return "contiguous" if all(g == list(range(g[0], g[-1] + 1)) for g in groups) \
        else "interleaved"


def _layout_identity(groups):
    """A Dask catalog's shard layout in a checkpoint's identity: the partitions of every
    shard ('0,2,4|1,3' for partitions dealt in turn to 2 shards), or for many partitions
    their count and a SHA-256 digest of that text (the identity is kept in the checkpoint
    and printed in full when a resume is refused)."""
    text = "|".join(",".join(str(i) for i in g) for g in groups)
    head = (f"{counted(len(groups), 'shard')} of "
            f"{counted(sum(len(g) for g in groups), 'partition')}: ")
    if len(text) <= 120:
        return head + text
    return head + "sha256 " + hashlib.sha256(text.encode()).hexdigest()[:16]


def _class_labels(y, n_classes):
    """y as integer class labels 0 .. n_classes - 1 (for np.bincount), or None when it is
    not one column of them (strings, a label of 10**9, ...: left to the shards' checks)."""
    if y.ndim != 1 or y.size == 0 or y.dtype.kind not in "biuf":
        return None
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        return None
    labels = y.astype(np.int64, copy=False)
    return labels if labels.min() >= 0 and labels.max() < n_classes else None


def _partitions_text(indices):
    """'partition 3', 'partitions 0..4' or 'partitions 0, 2, 4, ... (7 in all)'."""
    if len(indices) == 1:
        return f"partition {indices[0]}"
    if list(indices) == list(range(indices[0], indices[-1] + 1)):
        return f"partitions {indices[0]}..{indices[-1]}"
    head = ", ".join(str(i) for i in indices[:3])
    return f"partitions {head}, ... ({len(indices)} in all)" if len(indices) > 3 else \
        f"partitions {head}"


__all__ = ["fit", "dask_lr_sweep", "dask_cross_validate", "local_client", "batch_rows",
           "history_file", "warm_workers", "ShardClassMixWarning", "uneven_class_mix"]
