"""Out-of-core catalogs: read a file in chunks of rows and train or predict with bounded
memory.

``CatalogStream(path, features=..., label=..., chunk_rows=...)`` describes a catalog file
(``.npy``, Parquet, CSV, FITS table) without loading it; ``stream.scan()`` makes one pass to
count rows and classes and compute the standardisation (:class:`fastmlp.datasets.Standardizer`,
merged chunk by chunk), and ``stream.chunks(order)`` yields :class:`Chunk` s.
``iter_chunks(path, ...)`` is the one-call form.  ``fit_stream(model, source, ...)`` trains
on it: every epoch visits the chunks in an order shuffled from ``seed``, shuffles the rows
within each chunk, and hands each chunk to the backend's fused ``train_epoch`` (the same call
``fastmlp.fit`` makes once per epoch).  Memory is bounded by a few chunks whatever the file's
size (tests/test_stream.py measures the peak RSS for N and 10N rows).

How each format is read, chunk by chunk:

* ``.npy`` (plain 2-D C-order or structured): the header is parsed and each chunk is read
  with seek + read (``np.fromfile``), not a memory map, whose touched pages would count
  against the process's resident memory.
* Parquet: ``ParquetFile.iter_batches`` over each row group (chunk order shuffles row groups).
* CSV (optionally ``.gz``): the scan pass records the byte offset of every chunk, so chunks
  can be read in any order (rows must not hold quoted newlines).
* FITS: the table HDU opened as a memory map, row slices copied per chunk.

Missing values: ``missing="drop"`` (default) drops rows whose features or label are NaN,
inf, -9999 or null (counted in ``stream.n_dropped``); ``"error"`` raises.  Prediction sees
every row and its ``valid`` flag.
"""

import csv
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..features import parse_feature_spec, resolve_features
from .catalog import MISSING_VALUES, _resolve_positive
from .formats import (_arrow_to_numpy, _fits_column, _fits_table_index, _optional, _to_float,
                      catalog_format)
from .standardize import Standardizer
from ..progress import progress_bar

__all__ = ["CatalogStream", "Chunk", "iter_chunks", "predict_stream"]

DEFAULT_CHUNK_ROWS = 65_536


@dataclass
class Chunk:
    """Rows ``start .. start + len(valid)`` of the file (``index``: which chunk).
    ``X`` (m, n_features) raw features in the stream's dtype (NaN where missing), ``y``
    labels (int64, -1 where missing; float targets for regression; None if unlabelled),
    ``valid`` (m,) bool, ``extra`` {column: values}."""

    index: int
    start: int
    X: np.ndarray
    y: np.ndarray
    valid: np.ndarray
    extra: dict

    def dropna(self):
        """This chunk without its invalid rows."""
        if self.valid.all():
            return self
        v = self.valid
        return Chunk(self.index, self.start, self.X[v], None if self.y is None else self.y[v],
                     np.ones(int(v.sum()), bool), {k: a[v] for k, a in self.extra.items()})


class CatalogStream:
    """A catalog file read chunk by chunk (see the module docstring).

    features / label / positive / class_names / extra / format / hdu / dtype: as for
    :func:`fastmlp.datasets.load_catalog`.  ``chunk_rows``: rows per chunk (for Parquet at
    most this many, a row group's batches).  After :meth:`scan`: ``n_rows``, ``n_valid``,
    ``class_names``, ``positive``, ``class_counts``, ``standardizer``.
    """

    def __init__(self, path, features=None, label=None, chunk_rows=DEFAULT_CHUNK_ROWS,
                 missing="drop", dtype="float32", class_names=None, positive=None, extra=None,
                 format=None, hdu=None):
        self.path = Path(os.fspath(path))
        if not self.path.exists():
            raise FileNotFoundError(f"catalog file not found: {self.path}")
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or \
                chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        if missing not in ("drop", "error"):
            raise ValueError(f"missing must be 'drop' or 'error' for a streamed catalog (a "
                             f"median needs the whole column), got {missing!r}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.chunk_rows = int(chunk_rows)
        self.missing = missing
        self.dtype = np.dtype(dtype)
        self.format = catalog_format(self.path, format)
        self.hdu = hdu
        self._positive_arg = positive
        self._class_names_arg = class_names
        self._open()
        feats = parse_feature_spec(features)
        cols = self.columns
        if label is None:
            label = next((c for c in cols if c.lower() in ("label", "class")), None)
        elif label is not False:
            label = str(int(label)) if isinstance(label, (int, np.integer)) and \
                not isinstance(label, bool) else str(label).strip()
            if label not in cols:
                raise ValueError(f"{self.path}: label column {label!r} not found; available "
                                 f"columns: {cols}")
        self.label = None if label is False else label
        extra = [] if extra is None else ([e.strip() for e in extra.split(",")]
                                          if isinstance(extra, str) else list(extra))
        for e in extra:
            if e not in cols:
                raise ValueError(f"{self.path}: extra column {e!r} not found; available "
                                 f"columns: {cols}")
        self.extra_columns = extra
        fs = feats if feats is not None else [c for c in cols
                                              if c != self.label and c not in extra]
        if self.label is not None and self.label in fs:
            raise ValueError(f"{self.path}: the label column {self.label!r} is also a feature")
        self.feature_names = tuple(fs)
        self._steps = resolve_features(fs, cols, self.path)
        src = []
        for s in self._steps:
            for c in s[1:]:
                if c not in src:
                    src.append(c)
        self._sources = src
        self._need = list(dict.fromkeys(src + ([self.label] if self.label else []) + extra))
        self.n_rows = None
        self.n_valid = None
        self.class_names = None
        self.positive = None
        self.class_counts = None
        self.standardizer = None
        self._label_kind = None
        self._label_values = None
        self._scanned = False

    # -- format specifics -----------------------------------------------------------------
    def _open(self):
        p, fmt = self.path, self.format
        if fmt == "npy":
            with open(p, "rb") as fh:
                try:
                    version = np.lib.format.read_magic(fh)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, fortran, dt = read(fh, max_header_size=1 << 20)
                except ValueError as exc:
                    raise ValueError(f"{p}: not a readable .npy file ({exc})") from None
                self._offset = fh.tell()
            if dt.hasobject:
                raise ValueError(f"{p}: .npy holds Python objects; expected numbers")
            self._npy_dtype, self._npy_shape, self._fortran = dt, shape, fortran
            if dt.names:
                self.columns = list(dt.names)
                self._total = int(np.prod(shape)) if shape else 1
            else:
                if len(shape) != 2:
                    raise ValueError(f"{p}: a plain .npy catalog must be 2-D, got shape {shape}")
                self.columns = [str(k) for k in range(shape[1])]
                self._total = shape[0]
            self._chunk_list = self._row_chunks(self._total)
        elif fmt == "parquet":
            pq = _optional("pyarrow.parquet", "Parquet", p, "pyarrow")
            try:
                f = pq.ParquetFile(p)
            except Exception as exc:
                raise ValueError(f"{p}: not a readable Parquet file ({exc})") from None
            self.columns = list(f.schema_arrow.names)
            self._total = f.metadata.num_rows
            self._chunk_list = list(range(f.num_row_groups))
        elif fmt == "fits":
            fits = _optional("astropy.io.fits", "FITS", p, "astropy")
            with fits.open(p, memmap=True) as hdul:
                k = _fits_table_index(hdul, p, self.hdu)
                self._fits_index = k
                self.columns = list(hdul[k].columns.names)
                self._total = hdul[k].header.get("NAXIS2", 0)
            self._chunk_list = self._row_chunks(self._total)
        else:
            fh = self._csv_open()
            with fh:
                header, self._csv_data_offset = self._csv_header(fh)
            self.columns = header
            self._total = None                       # known after a scan
            self._chunk_list = None                  # byte offsets, found by the scan

    def _row_chunks(self, n):
        return [(a, min(a + self.chunk_rows, n)) for a in range(0, n, self.chunk_rows)]

    def _csv_open(self):
        if str(self.path).lower().endswith(".gz"):
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def _csv_header(self, fh):
        while True:
            line = fh.readline()
            if not line:
                raise ValueError(f"{self.path}: empty file, expected a CSV header row")
            text = line.decode("utf-8-sig").strip()
            if text and not text.startswith("#"):
                return [h.strip() for h in next(csv.reader([text]))], fh.tell()

    def _csv_chunks_from(self, fh, max_chunks=None):
        """(offset, lines) for consecutive chunks from the file position."""
        done = 0
        while max_chunks is None or done < max_chunks:
            off = fh.tell()
            lines = []
            while len(lines) < self.chunk_rows:
                line = fh.readline()
                if not line:
                    break
                if line.strip():
                    lines.append(line)
            if not lines:
                return
            yield off, lines
            done += 1

    def _csv_columns(self, lines):
        text = b"".join(lines).decode("utf-8")
        idx = [self.columns.index(c) for c in self._need]
        width = len(self.columns)
        cols = [[] for _ in idx]
        for k, row in enumerate(csv.reader(io.StringIO(text))):
            if len(row) != width:
                raise ValueError(f"{self.path}: a row has {len(row)} fields, the header has "
                                 f"{width} (ragged or malformed CSV): {row!r}")
            for c, j in zip(cols, idx):
                c.append(row[j])
        return {n: np.asarray(c, dtype=object) for n, c in zip(self._need, cols)}

    def _raw(self, which):
        """Yield (chunk index, first row, {column: array}) for the chunk ids ``which``."""
        fmt = self.format
        if fmt == "npy":
            dt, itemsize = self._npy_dtype, self._npy_dtype.itemsize
            ncol = 1 if dt.names else self._npy_shape[1]
            with open(self.path, "rb") as fh:
                for k in which:
                    a, b = self._chunk_list[k]
                    if self._fortran and not dt.names:
                        mm = np.load(self.path, mmap_mode="r")
                        arr = np.array(mm[a:b])
                        del mm
                    else:
                        fh.seek(self._offset + a * ncol * itemsize)
                        arr = np.fromfile(fh, dtype=dt, count=(b - a) * ncol)
                        if not dt.names:
                            arr = arr.reshape(b - a, ncol)
                    if dt.names:
                        data = {n: arr[n] for n in self._need}
                    else:
                        data = {n: arr[:, int(n)] for n in self._need}
                    yield k, a, data
        elif fmt == "parquet":
            pq = _optional("pyarrow.parquet", "Parquet", self.path, "pyarrow")
            f = pq.ParquetFile(self.path)
            starts = np.concatenate([[0], np.cumsum([f.metadata.row_group(g).num_rows
                                                     for g in range(f.num_row_groups)])])
            for k in which:
                row = int(starts[k])
                for batch in f.iter_batches(batch_size=self.chunk_rows, row_groups=[k],
                                            columns=self._need, use_threads=False):
                    data = {n: _arrow_to_numpy(batch.column(n)) for n in self._need}
                    yield k, row, data
                    row += batch.num_rows
        elif fmt == "fits":
            fits = _optional("astropy.io.fits", "FITS", self.path, "astropy")
            with fits.open(self.path, memmap=True) as hdul:
                h = hdul[self._fits_index]
                cols = {c.name: c for c in h.columns}
                for k in which:
                    a, b = self._chunk_list[k]
                    part = h.data[a:b]
                    yield k, a, {n: np.array(_fits_column(part, cols[n], n, self.path))
                                 for n in self._need}
                    del part
        else:
            if self._chunk_list is None:
                raise RuntimeError("scan() the CSV stream first")
            with self._csv_open() as fh:
                for k in which:
                    off, start = self._chunk_list[k]
                    fh.seek(off)
                    for _, lines in self._csv_chunks_from(fh, 1):
                        yield k, start, self._csv_columns(lines)

    # -- conversion ---------------------------------------------------------------------
    def _convert(self, k, start, data, labels=True):
        src = {c: _to_float(np.asarray(data[c]), c, self.path) for c in self._sources}
        m = len(next(iter(data.values()))) if data else 0
        valid = np.ones(m, bool)
        for v in src.values():
            valid &= np.isfinite(v) & ~np.isin(v, MISSING_VALUES)
        X = np.empty((m, len(self._steps)), dtype=self.dtype)
        for j, s in enumerate(self._steps):
            X[:, j] = src[s[1]] if s[0] == "col" else src[s[1]] - src[s[2]]
        valid &= np.isfinite(X).all(axis=1)
        y = None
        if self.label is not None and labels:
            y, ok = self._labels(np.asarray(data[self.label]))
            valid &= ok
        extra = {}
        for e in self.extra_columns:
            v = np.asarray(data[e])
            extra[e] = v.astype(str) if v.dtype == object else v
        return Chunk(k, start, X, y, valid, extra)

    def _labels(self, raw):
        """(labels, valid) with the mapping found by scan()."""
        kind = self._label_kind
        if kind is None:
            raise RuntimeError("scan() the stream before reading labels")
        if kind == "string":
            s = np.asarray(["" if v is None else str(v).strip() for v in raw], dtype=object)
            lookup = {c: i for i, c in enumerate(self._label_values)}
            y = np.asarray([lookup.get(v, -1) for v in s], dtype=np.int64)
            return y, y >= 0
        v = _to_float(raw, self.label, self.path)
        ok = np.isfinite(v) & ~np.isin(v, MISSING_VALUES)
        if kind == "float":
            return v.astype(self.dtype), ok
        y = np.full(v.shape, -1, np.int64)
        if kind == "int-sorted":
            y[ok] = np.searchsorted(self._label_values, v[ok])
        else:
            y[ok] = v[ok].astype(np.int64)
        return y, ok

    @staticmethod
    def _raw_label_kind(raw):
        if raw.dtype.kind in "OUS":
            try:
                _to_float(np.asarray(raw, dtype=object), "label", "")
                return "number"
            except ValueError:
                return "string"
        return "number"

    # -- passes -------------------------------------------------------------------------
    def scan(self, progress=False):
        """One pass over the file: row and class counts, the label mapping and the
        standardisation statistics of the valid rows.  Memory: one chunk plus a count per
        distinct label.  Returns self."""
        st = Standardizer()
        n_rows = n_valid = 0
        str_counts, num_counts = {}, {}
        chunks_csv = []
        bar = progress_bar(None if self._chunk_list is None else self.n_chunks, "scan",
                           "chunk", enabled=progress)
        for k, start, data in self._raw_all(chunks_csv):
            ch = self._convert(k, start, data, labels=False)
            ok = ch.valid
            if self.label is not None:
                raw = np.asarray(data[self.label])
                if self._raw_label_kind(raw) == "string":
                    s = np.asarray(["" if v is None else str(v).strip() for v in raw], object)
                    bad = (s == "") | np.isin(s, ["nan", "NaN", "NULL", "null", "NA", "N/A"])
                    ok = ok & ~bad
                    u, c = np.unique(s[ok].astype(str), return_counts=True)
                    for a_, b_ in zip(u.tolist(), c.tolist()):
                        str_counts[a_] = str_counts.get(a_, 0) + b_
                else:
                    v = _to_float(raw, self.label, self.path)
                    ok = ok & np.isfinite(v) & ~np.isin(v, MISSING_VALUES)
                    u, c = np.unique(v[ok], return_counts=True)
                    for a_, b_ in zip(u.tolist(), c.tolist()):
                        num_counts[a_] = num_counts.get(a_, 0) + b_
            if self.missing == "error" and not ok.all():
                raise ValueError(f"{self.path}: {int((~ok).sum())} rows from row {start} have "
                                 "missing or invalid values (NaN, inf, -9999 or null); pass "
                                 "missing='drop' to skip them")
            st.partial_fit(ch.X[ok])
            n_rows += len(ok)
            n_valid += int(ok.sum())
            bar.update()
        bar.close()
        if self.format == "csv":
            self._chunk_list = chunks_csv
            self._total = n_rows
        if n_valid == 0:
            raise ValueError(f"{self.path}: no valid rows ({n_rows} rows read)")
        self.n_rows, self.n_valid, self.standardizer = n_rows, n_valid, st
        self.n_dropped = n_rows - n_valid
        self._scanned = True
        if self.label is None:
            self._label_kind = "none"
            return self
        if str_counts and num_counts:
            raise ValueError(f"{self.path}: label column {self.label!r} mixes names and numbers")
        if str_counts:
            names = sorted(str_counts)
            self._label_kind, self._label_values = "string", names
            counts = {c: str_counts[c] for c in names}
            if self._class_names_arg is not None:
                raise ValueError(f"class_names can only name numeric labels; column "
                                 f"{self.label!r} already holds the names {names}")
        else:
            vals = np.array(sorted(num_counts), dtype=np.float64)
            if not (vals.size and np.all(vals == np.round(vals))):
                self._label_kind = "float"
                self.class_names = None
                self.positive = _resolve_positive(self._positive_arg, None, self.label)
                return self
            if vals.min() < 0:
                self._label_kind, self._label_values = "int-sorted", vals
                names = [str(int(v)) for v in vals]
                counts = {n: num_counts[v] for n, v in zip(names, vals.tolist())}
            else:
                self._label_kind = "int"
                names = [str(k) for k in range(max(int(vals.max()) + 1, 2))]
                counts = {n: num_counts.get(float(k), 0) for k, n in enumerate(names)}
            if self._class_names_arg is not None:
                cn = self._class_names_arg
                cn = [c.strip() for c in cn.split(",")] if isinstance(cn, str) else \
                    [str(c) for c in cn]
                if len(cn) < len(names) or len(set(cn)) != len(cn):
                    raise ValueError(f"class_names must be {len(names)} distinct names, "
                                     f"got {cn}")
                counts = {c: counts[n] for c, n in zip(cn, names)}
                names = cn
        self.class_names = tuple(names)
        self.class_counts = counts
        self.positive = _resolve_positive(self._positive_arg, list(names), self.label)
        return self

    def _raw_all(self, csv_offsets):
        """Every chunk in file order; for CSV record (offset, first row) of each chunk."""
        if self.format != "csv":
            yield from self._raw(range(self.n_chunks))
            return
        with self._csv_open() as fh:
            fh.seek(self._csv_data_offset)
            row = 0
            for k, (off, lines) in enumerate(self._csv_chunks_from(fh)):
                csv_offsets.append((off, row))
                yield k, row, self._csv_columns(lines)
                row += len(lines)

    @property
    def n_chunks(self):
        if self._chunk_list is None:
            raise RuntimeError("the number of CSV chunks is known after scan()")
        return len(self._chunk_list)

    def chunks(self, order=None, labels=True, dropna=None):
        """Yield Chunks in ``order`` (chunk indices; default file order).  ``dropna``
        (default: True when the stream has labels to train on) drops invalid rows."""
        if self.format == "csv" and self._chunk_list is None or \
                (labels and self.label is not None and not self._scanned):
            self.scan()
        order = range(self.n_chunks) if order is None else order
        dropna = (self.label is not None and labels) if dropna is None else dropna
        for k, start, data in self._raw(order):
            ch = self._convert(k, start, data, labels=labels)
            yield ch.dropna() if dropna else ch

    def __repr__(self):
        return (f"CatalogStream({str(self.path)!r}, format={self.format}, "
                f"features={list(self.feature_names)}, label={self.label!r}, "
                f"chunk_rows={self.chunk_rows}"
                + (f", n_rows={self.n_rows}" if self.n_rows is not None else "") + ")")


def iter_chunks(path, features=None, label=None, chunk_rows=DEFAULT_CHUNK_ROWS, **kwargs):
    """Chunks (:class:`Chunk`: ``X``, ``y``, ``valid``, ``extra``, ``start``) of a catalog
    file in file order, invalid rows dropped when there is a label.  ``kwargs`` go to
    :class:`CatalogStream` (missing, dtype, class_names, positive, extra, format, hdu)."""
    yield from CatalogStream(path, features, label, chunk_rows, **kwargs).chunks()


def predict_stream(model, stream, progress=True):
    """Yield (chunk, probabilities or predictions) over every row of ``stream`` (a
    CatalogStream opened with label=False or any label), applying the model's whole contract
    to the raw features (model.predict_proba / predict).  Rows with missing features, or
    whose output is not finite (e.g. extreme inputs), get NaN and ``chunk.valid`` False."""
    regression = model.link == "identity"
    width = model.n_outputs if regression else (2 if model.n_outputs == 1 else model.n_outputs)
    n = stream.n_chunks if stream._chunk_list is not None else None
    bar = progress_bar(n, "predict", "chunk", enabled=progress)
    try:
        for ch in stream.chunks(labels=False, dropna=False):
            v = ch.valid
            out = np.full((ch.X.shape[0], width), np.nan, dtype=model.dtype)
            if v.any():
                pred = model.predict(ch.X[v]) if regression else model.predict_proba(ch.X[v])
                out[v] = pred.reshape(-1, width)
            ch.valid = v & np.isfinite(out).all(axis=1)
            out[~ch.valid] = np.nan
            bar.update(rows=ch.start + len(v))
            yield ch, out
    finally:
        bar.close()
