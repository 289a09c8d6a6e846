"""Out-of-core catalogs: read a file in chunks of rows and train or predict with bounded
memory.

``CatalogStream(path, features=..., label=..., chunk_rows=...)`` describes a catalog file
(``.npy``, Parquet, CSV, FITS table) without loading it: the chunks are known when it opens
(``n_chunks``, ``n_rows``; from the Parquet / FITS / .npy metadata, from a newline count for
CSV), so progress bars have the right total.  ``stream.scan()`` makes one pass to count
classes and compute the standardisation (:class:`fastmlp.data.Standardizer`, merged chunk by
chunk), and ``stream.chunks(order)`` yields :class:`Chunk` s.  ``iter_chunks(path, ...)`` is
the one-call form.  ``fastmlp.training.fit_stream`` trains on it; :func:`predict_stream`
classifies it with reading, computing and writing overlapped (:func:`prefetch`,
:class:`BackgroundWriter`).

How each format is read, chunk by chunk (every step columnar: no per-row Python):

* ``.npy`` (plain 2-D C-order or structured): the header is parsed and each chunk is read
  with seek + read (``np.fromfile``), not a memory map, whose touched pages would count
  against the process's resident memory.
* Parquet: a chunk is a piece of at most ``chunk_rows`` rows of one row group (a row group
  larger than ``chunk_rows`` gives several chunks), read with ``iter_batches`` and column
  projection from buffered column streams (a huge row group is not read whole first); a
  ``where`` filter skips the row groups whose statistics exclude it.
* CSV (optionally ``.gz``): opening counts newlines (NumPy over 16 MB blocks) and records
  the byte offset of every chunk; a chunk is parsed by ``pyarrow.csv`` (rows must not hold
  quoted newlines; a chunk whose row count differs from the newline count is an error).
* FITS: the rows of a chunk read with seek + read and converted column by column
  (:mod:`fastmlp.data.fits_table`; not astropy's memory map, whose touched pages and
  close-time copies grew the process with the file).
* gzip-compressed CSV or FITS: read straight from the gzip stream in file order; the first
  time chunks are asked for in another order (shuffled training epochs) the file is
  decompressed once into a temporary file (:mod:`fastmlp.data.decompressed`).

Missing values: ``missing="drop"`` (default) drops rows whose features or label are NaN,
inf, -9999 or null (counted in ``stream.n_dropped``); ``"error"`` raises.  Prediction sees
every row, its ``valid`` flag (usable features) and, with labels, its ``labelled`` flag.
``where``: rows that fail the filter are not part of the stream at all (a chunk may then
be empty; the chunk count does not change).
"""

import contextlib
import copy
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validate import counted, plural
from ..features import (FeatureSpec, check_fill, fill_missing, missing_mask, plan_sources,
                        parse_feature_spec, resolve_features)
from ..progress import Display, progress_bar, resolve_mode
from .catalog import (ID_DISTINCT_ROWS, MISSING_VALUES, case_clash_text, class_names_error,
                      default_features_text, id_like_columns, mostly_numbers,
                      numbers_with_strays, positive_class_index, refuse_label_features,
                      stray_label_text, stray_values_text, STRAY_LABEL_ADVICE,
                      TEXT_LABEL_ADVICE, text_label_example, text_regression_text,
                      too_many_names_text, warn_catalog)
from .formats import (NULL_STRINGS, arrow_columns, catalog_format, csv_header, csv_line_index,
                      fits_column_array, float_column, have_pyarrow, parquet_groups_passing,
                      is_number, parse_csv_bytes, parse_where, text_column, try_float,
                      non_numeric_positions, non_numeric_text)
from .decompressed import SeekableSource
from .far_values import FarInStream
from .fits_table import FitsTable
from .optional_deps import import_optional
from .standardize import Standardizer

__all__ = ["CatalogStream", "Chunk", "iter_chunks", "predict_stream", "prefetch",
           "BackgroundWriter", "RowProgress", "DEFAULT_CHUNK_ROWS"]

DEFAULT_CHUNK_ROWS = 65_536
#: read buffer of a Parquet column chunk (see _ParquetReader)
PARQUET_BUFFER_BYTES = 1 << 20


@dataclass
class Chunk:
    """Rows of the file from row ``start`` (``index``: which chunk).  ``X`` (m, n_features)
    raw features in the stream's dtype (NaN where missing), ``y`` labels (int64, -1 where
    missing; float targets for regression; None if unlabelled), ``valid`` (m,) bool: the
    features are usable (the label plays no part: prediction uses every such row),
    ``labelled`` (m,) bool: the label is usable (None when labels were not read),
    ``extra`` {column: values}; ``rows`` the file row numbers when a ``where`` filter left
    rows out (None: the rows are start, start + 1, ...); ``n_read`` rows read from the file
    for this chunk (before the filter); ``features_valid`` (m,) bool, set by
    :func:`predict_stream` only: ``valid`` before non-finite outputs were ruled out (which
    rows lacked usable features, as opposed to a usable output); ``imputed`` {column:
    missing values replaced by the stream's ``fill`` values}.  :meth:`dropna` keeps the
    rows both valid and labelled (what training uses)."""

    index: int
    start: int
    X: np.ndarray
    y: np.ndarray
    valid: np.ndarray
    extra: dict
    rows: np.ndarray = None
    n_read: int = field(default=None)
    labelled: np.ndarray = None
    features_valid: np.ndarray = None
    imputed: dict = None

    def row_numbers(self):
        """The file row number of each row of the chunk (int64)."""
        if self.rows is not None:
            return self.rows
        return np.arange(self.start, self.start + len(self.valid), dtype=np.int64)

    def dropna(self):
        """This chunk without its invalid rows (missing features, or a missing label when
        labels were read)."""
        v = self.valid if self.labelled is None else self.valid & self.labelled
        if v.all():
            return self
        k = int(v.sum())
        return Chunk(self.index, self.start, self.X[v], None if self.y is None else self.y[v],
                     np.ones(k, bool), {n: a[v] for n, a in self.extra.items()},
                     self.row_numbers()[v], self.n_read,
                     None if self.labelled is None else np.ones(k, bool))


# =======================================================================================
# readers: one per format, each knows its pieces [(first row, rows)] and reads them
class _NpyReader:
    def __init__(self, path, chunk_rows):
        self.path = path
        with open(path, "rb") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dt = read(fh, max_header_size=1 << 20)
            except ValueError as exc:
                raise ValueError(f"{path}: not a readable .npy file ({exc})") from None
            self.offset = fh.tell()
        if dt.hasobject:
            raise ValueError(f"{path}: .npy holds Python objects; expected numbers")
        self.dtype, self.shape, self.fortran = dt, shape, fortran
        if dt.names:
            self.columns = list(dt.names)
            self.n_rows = int(np.prod(shape)) if shape else 1
        else:
            if len(shape) != 2:
                raise ValueError(f"{path}: a plain .npy catalog must be 2-D, got shape {shape}")
            self.columns = [str(k) for k in range(shape[1])]
            self.n_rows = shape[0]
        self.pieces = _row_pieces(self.n_rows, chunk_rows)

    def declared_width(self, name):
        """The width in UTF-8 bytes a text column of the file is declared with (at most 4
        per character of a str column), or None."""
        dt = self.dtype[name] if self.dtype.names else self.dtype
        return dt.itemsize if dt.kind in "SU" else None

    def empty(self, need):
        """{column: 0-row array} with the file's column types."""
        arr = np.empty(0 if self.dtype.names else (0, self.shape[1]), dtype=self.dtype)
        return {n: arr[n] for n in need} if self.dtype.names else \
            {n: arr[:, int(n)] for n in need}

    def read(self, order, need, keep_nulls=()):
        dt = self.dtype
        ncol = 1 if dt.names else self.shape[1]
        with open(self.path, "rb") as fh:
            for k in order:
                a, m = self.pieces[k]
                if self.fortran and not dt.names:
                    mm = np.load(self.path, mmap_mode="r")
                    arr = np.array(mm[a:a + m])
                    del mm
                else:
                    fh.seek(self.offset + a * ncol * dt.itemsize)
                    arr = np.fromfile(fh, dtype=dt, count=m * ncol)
                    if not dt.names:
                        arr = arr.reshape(m, ncol)
                data = {n: arr[n] for n in need} if dt.names else \
                    {n: arr[:, int(n)] for n in need}
                yield k, data


class _ParquetReader:
    def __init__(self, path, chunk_rows, where):
        pq = import_optional("pyarrow.parquet", "Parquet", path, "pyarrow")
        try:
            # buffered stream reads: pyarrow decodes a column chunk page by page as batches
            # are taken, instead of reading the whole row group's columns first (a file
            # written as one 5M-row group held ~200 MB of it whatever chunk_rows said)
            self.file = pq.ParquetFile(path, buffer_size=PARQUET_BUFFER_BYTES,
                                       pre_buffer=False)
        except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError
            raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
        self.path, self.chunk_rows = path, chunk_rows
        self.columns = list(self.file.schema_arrow.names)
        meta = self.file.metadata
        sizes = [meta.row_group(g).num_rows for g in range(self.file.num_row_groups)]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n_rows = int(starts[-1])
        groups = range(len(sizes)) if where is None else self._groups_passing(where)
        # a piece: (first row in the file, rows, row group, offset in the row group)
        self._parts = [(int(starts[g]) + off, min(chunk_rows, sizes[g] - off), g, off)
                       for g in groups for off in range(0, sizes[g], chunk_rows)]
        self.pieces = [p[:2] for p in self._parts]

    def empty(self, need):
        return arrow_columns(self.file.schema_arrow.empty_table(), need)

    def arrow_type(self, name):
        """The column's Arrow type in the file's schema."""
        return self.file.schema_arrow.field(name).type

    def _groups_passing(self, where):
        """Row groups whose min / max statistics do not rule the filter out (pushdown)."""
        return parquet_groups_passing(self.path, where, self.columns)

    def read(self, order, need, keep_nulls=()):
        """Pieces of one row group are decoded together, in file order, in the order the
        row groups first appear in ``order`` (one row group is never decoded twice)."""
        wanted = {}
        for k in order:
            wanted.setdefault(self._parts[k][2], []).append(k)
        for g, ks in wanted.items():
            ks = sorted(ks, key=lambda k: self._parts[k][3])
            lengths = [self._parts[k][1] for k in ks]
            offsets = [self._parts[k][3] for k in ks]
            batches = self.file.iter_batches(batch_size=self.chunk_rows, row_groups=[g],
                                             columns=need, use_threads=False)
            for k, table in zip(ks, _slices(batches, offsets, lengths)):
                yield k, arrow_columns(table, need, keep_nulls)


def _slices(batches, offsets, lengths):
    """Tables of rows [offset, offset + length) of a stream of record batches (ascending,
    non-overlapping ranges), whatever sizes the batches have."""
    import pyarrow as pa
    buf, buf_start = [], 0          # buffered batches and the row number of the first one
    it = iter(batches)
    for off, m in zip(offsets, lengths):
        while sum(b.num_rows for b in buf) + buf_start < off + m:
            b = next(it)
            buf.append(b)
        table = pa.Table.from_batches(buf).slice(off - buf_start, m)
        yield table
        while buf and buf_start + buf[0].num_rows <= off + m:    # drop what is used up
            buf_start += buf.pop(0).num_rows


class _FitsReader:
    """A binary table read by rows from the file (fits_table.FitsTable: bounded memory);
    ASCII tables and tables with variable-length columns through astropy's memory map."""

    def __init__(self, path, chunk_rows, hdu):
        self.path = path
        self.table = FitsTable(path, hdu)
        self.index, self.columns, self.n_rows = \
            self.table.index, self.table.columns, self.table.n_rows
        self.source = self.table.source
        self.pieces = _row_pieces(self.n_rows, chunk_rows)

    def declared_width(self, name):
        """The width in bytes of a text column of a binary table (None: not known here)."""
        if not self.table.direct or self.table.dtype[name].kind != "S":
            return None
        return self.table.dtype[name].itemsize

    def empty(self, need):
        if self.table.direct or self.table.ascii:   # astropy fails on an empty ASCII table
            return self.table.empty(need)
        with _astropy_table(self.path, self.index) as (h, cols):
            return {n: fits_column_array(h.data[0:0], cols[n], n, self.path) for n in need}

    def read(self, order, need, keep_nulls=()):
        """(FITS text and integer columns hold no nulls to keep.)"""
        order = list(order)
        if self.table.direct:
            with self.source.open(order) as fh:
                for k in order:
                    a, m = self.pieces[k]
                    yield k, self.table.read_rows(fh, a, m, need)
            return
        with _astropy_table(self.path, self.index) as (h, cols):
            for k in order:
                a, m = self.pieces[k]
                part = h.data[a:a + m]                 # a view of the memory map
                yield k, {n: fits_column_array(part, cols[n], n, self.path) for n in need}
                del part


@contextlib.contextmanager
def _astropy_table(path, index):
    """(table HDU, {name: Column}) of a FITS file opened by astropy, memory-mapped."""
    fits = import_optional("astropy.io.fits", "FITS", path, "astropy")
    with fits.open(path, memmap=True) as hdul:
        h = hdul[index]
        yield h, {c.name: c for c in h.columns}


class _CsvReader:
    def __init__(self, path, chunk_rows):
        self.path = path
        self.source = SeekableSource(path)
        self.columns, skip = csv_header(path)
        with self.source.open() as fh:
            for _ in range(skip):
                fh.readline()
            index, self.n_rows = csv_line_index(fh, chunk_rows)
            end = fh.tell()
        self._ends = [p[0] for p in index[1:]] + [end]
        self._offsets = [p[0] for p in index]
        self.pieces = [(p[1], p[2]) for p in index]

    def empty(self, need):
        """A CSV without data rows says nothing of its column types: text."""
        return {n: np.empty(0, dtype=str) for n in need}

    def read(self, order, need, keep_nulls=()):
        order = list(order)
        with self.source.open(order) as fh:
            for k in order:
                fh.seek(self._offsets[k])
                block = fh.read(self._ends[k] - self._offsets[k])
                data = parse_csv_bytes(block, self.columns, need, self.path, keep_nulls) \
                    if have_pyarrow() else _parse_csv_python(block, self.columns, need,
                                                              self.path)
                got = len(next(iter(data.values()))) if data else 0
                if got != self.pieces[k][1]:
                    raise ValueError(f"{self.path}: rows {self.pieces[k][0]}.. hold "
                                     f"{counted(got, 'record')} in "
                                     f"{counted(self.pieces[k][1], 'line')}; a streamed CSV "
                                     "must not hold line breaks inside quoted fields")
                yield k, data


def _parse_csv_python(block, header, need, path):
    """Without pyarrow: the stdlib csv module on one chunk's lines."""
    import csv
    import io
    idx = [header.index(c) for c in need]
    rows = [r for r in csv.reader(io.StringIO(block.decode("utf-8"))) if r]
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"{path}: a row has {counted(len(r), 'field')}, the header has "
                             f"{len(header)} (ragged or malformed CSV): {r!r}")
    return {n: np.asarray([r[j] for r in rows], dtype=str) for n, j in zip(need, idx)}


def _row_pieces(n, chunk_rows):
    return [(a, min(chunk_rows, n - a)) for a in range(0, n, chunk_rows)]


def _float_dtype(dtype, name):
    """np.dtype(dtype) when it is float32 or float64; else ValueError naming ``name`` (numpy
    raises a bare TypeError for a string that names no dtype)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{name} must be 'float32' or 'float64', got {dtype!r}")
    return dt


# =======================================================================================
class CatalogStream:
    """A catalog file read chunk by chunk (see the module docstring).

    features / label / positive / class_names / extra / format / hdu / dtype / where: as for
    :func:`fastmlp.data.load_catalog`.  ``dtype``: the features' float type; for prediction
    with a standardising model, ``dtype="float64"`` gives model.predict_proba's exact
    arithmetic (standardised, then rounded once to the model's dtype, as ``fastmlp predict``
    reads), while float32 features are rounded first (about 1e-6 relative apart); a float64
    model needs ``dtype="float64"``.  ``fill``: {source column: value}, a model's
    FeatureSpec.fill: a missing value (NaN, inf, -9999, or beyond the range of
    ``fill_dtype``, the model's dtype, by default ``dtype``) of such a column is replaced by
    it before the features are formed (counted per chunk in ``Chunk.imputed``).
    ``chunk_rows``: rows per chunk (at most; a Parquet chunk never spans two row groups).
    Known on opening: ``n_chunks``, ``n_rows_file`` (rows in the file, before ``where``).
    After :meth:`scan`: ``n_rows`` (rows passing the filter), ``n_valid``, ``class_names``,
    ``positive``, ``class_counts``, ``standardizer``, ``far_values`` (the usable rows with
    features far off, fastmlp.data.far_values).
    """

    def __init__(self, path, features=None, label=None, chunk_rows=DEFAULT_CHUNK_ROWS,
                 missing="drop", dtype="float32", class_names=None, positive=None, extra=None,
                 format=None, hdu=None, where=None, fill=None, fill_dtype=None):
        self.path = Path(os.fspath(path))
        if not self.path.exists():
            raise FileNotFoundError(f"catalog file not found: {self.path}")
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or \
                chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        if missing not in ("drop", "error"):
            raise ValueError(f"missing must be 'drop' or 'error' for a streamed catalog (a "
                             f"median needs the whole column), got {missing!r}")
        self.chunk_rows, self.missing = int(chunk_rows), missing
        self.dtype = _float_dtype(dtype, "dtype")
        self.format = catalog_format(self.path, format)
        self.where = parse_where(where)
        self._positive_arg, self._class_names_arg = positive, class_names
        self._reader = self._open_reader(hdu)
        self.columns = self._reader.columns
        if self.where is not None:
            self.where.check(self.columns, self.path)
        self._plan_columns(parse_feature_spec(features), label, extra)
        # {source column: value}: a missing raw value replaced before the features are
        # formed (a model's FeatureSpec.fill, as FeatureSpec.transform applies it); checked
        # now, so that a bad one is refused naming fill rather than failing mid-read
        self.fill = check_fill(fill, FeatureSpec(self.feature_names)) or {}
        # the dtype whose range decides which values are missing: the model's, which may be
        # float32 while a standardising model's features are read in float64 (a value of
        # 1e300 is missing for a float32 model whatever dtype the stream reads)
        self.fill_dtype = _float_dtype(fill_dtype if fill_dtype is not None else dtype,
                                       "fill_dtype")
        self.n_rows = self.n_valid = self.n_dropped = None
        self.class_names = self.positive = self.class_counts = self.standardizer = None
        self.far_values = None
        self._label_kind = self._label_values = None
        self._mapping_given = False     # use_classes / use_targets / use_label_mapping
        self._text_advice = TEXT_LABEL_ADVICE   # use_targets' advice for a text label column
        self._stray_advice = STRAY_LABEL_ADVICE  # ... and for one text among numbers
        # the model's dtype when it is narrower than ``dtype`` (fit_stream's reading): a
        # feature value beyond its range (1e39 for float32) is missing, as load_catalog
        # reading in the model's dtype leaves it out; None: the stream's dtype decides
        self.range_dtype = None
        self._scanned = False
        self._scan_reading = None       # reading_settings() the last scan() was taken with

    def reading_settings(self):
        """What a scan's result depends on besides the file: the ``fill`` values and, when
        there are some, the ``fill_dtype`` whose range decides which values they replace
        (without fill, fill_dtype reads nothing) and the ``range_dtype`` beyond whose range
        a value is missing, when it is narrower than ``dtype``."""
        narrower = self._narrower_range()
        return (tuple(sorted(self.fill.items())), self.fill_dtype.name if self.fill else None,
                narrower.name if narrower is not None else None)

    def _narrower_range(self):
        """range_dtype when it is narrower than the stream's dtype (else None: every value
        X holds is within range)."""
        r = self.range_dtype
        return r if r is not None and np.dtype(r).itemsize < self.dtype.itemsize else None

    @property
    def scanned_as_read(self):
        """True when :meth:`scan` was taken reading as the stream reads now (the same
        ``fill`` and ``fill_dtype``): its counts, label mapping and standardisation hold for
        the chunks it yields.  Set other fill values or another fill_dtype and this is False
        until it is scanned again."""
        return self._scanned and self._scan_reading == self.reading_settings()

    @property
    def label_is_text(self):
        """True when the scan found the label column holding text (class names such as
        'QSO', 'STAR'): classes, never regression targets."""
        return self._label_kind == "string"

    @property
    def label_mapping_given(self):
        """True when the label mapping was given (use_classes, use_targets,
        use_label_mapping) rather than found by a scan: a scan keeps it."""
        return self._mapping_given

    def _open_reader(self, hdu):
        if self.format == "npy":
            return _NpyReader(self.path, self.chunk_rows)
        if self.format == "parquet":
            return _ParquetReader(self.path, self.chunk_rows, self.where)
        if self.format == "fits":
            return _FitsReader(self.path, self.chunk_rows, hdu)
        return _CsvReader(self.path, self.chunk_rows)

    def _plan_columns(self, feats, label, extra):
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
        self._features_defaulted = feats is None     # scan() looks for id columns among them
        self._steps = resolve_features(fs, cols, self.path)
        # a colour of the label ("i-z" with the label z) trains on the answer: as in memory
        refuse_label_features(fs, self._steps, self.label, self.path)
        self._sources = plan_sources(self._steps)
        need = self._sources + ([self.label] if self.label else []) + extra
        need += self.where.columns if self.where is not None else []
        self._need = list(dict.fromkeys(need))
        # extra columns only carried along (ids) keep their nulls, as masked arrays
        read_for = set(self._sources) | {self.label} | set(
            self.where.columns if self.where is not None else [])
        self._keep_nulls = [e for e in extra if e not in read_for]

    def remove_temporary_copy(self):
        """Remove the decompressed copy of a gzip-compressed catalog that reading chunks
        out of file order made (see fastmlp.data.decompressed; it would otherwise go when
        the stream is garbage-collected).  The stream can still be read."""
        source = getattr(self._reader, "source", None)
        if source is not None:
            source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        """``with stream:`` removes the temporary copy at the end (remove_temporary_copy)."""
        self.remove_temporary_copy()

    # -- properties known on opening ------------------------------------------------------
    @property
    def n_chunks(self):
        """Chunks in one pass (after Parquet row groups pruned by ``where``)."""
        return len(self._reader.pieces)

    @property
    def n_rows_file(self):
        """Rows in the file (before ``where``)."""
        return self._reader.n_rows

    def text_width(self, column):
        """The width in UTF-8 bytes that holds every value of a text column: its declared
        width in a FITS table or a .npy file, otherwise the longest value, found by reading
        that one column once (what a fixed-width output of the column needs)."""
        declared = getattr(self._reader, "declared_width", lambda name: None)(column)
        if declared is not None:
            return declared
        width = 0
        for _, data in self._reader.read(range(self.n_chunks), [column]):
            v = np.ma.getdata(_extra_column(data[column]))
            if v.dtype.kind not in "US":
                return 0        # numbers (a CSV column's type shows in its values only)
            if v.size:
                width = max(width, int(np.char.str_len(np.char.encode(v, "utf-8")).max()))
        return width

    def text_type(self, column):
        """The Arrow type of a text column of a Parquet file (string, large_string, binary
        or large_binary), which its values lose as NumPy str; None for any other column or
        format."""
        arrow_type = getattr(self._reader, "arrow_type", None)
        if arrow_type is None:
            return None
        import pyarrow as pa
        t = arrow_type(column)
        return t if any(f(t) for f in (pa.types.is_string, pa.types.is_large_string,
                                       pa.types.is_binary, pa.types.is_large_binary)) \
            else None

    @property
    def n_rows_to_read(self):
        """Rows the chunks span (the file's rows minus Parquet row groups pruned by
        ``where``): the total of a progress bar over rows."""
        return int(sum(p[1] for p in self._reader.pieces))

    # -- chunks -------------------------------------------------------------------------
    def _raw(self, order):
        """(chunk index, first row, rows read, row numbers or None, {column: array})."""
        for k, data in self._reader.read(order, self._need, self._keep_nulls):
            start, m = self._reader.pieces[k]
            rows = None
            if self.where is not None:
                keep = self.where.mask(data, self.path, start)
                if not keep.all():
                    data = {n: v[keep] for n, v in data.items()}
                    rows = start + np.flatnonzero(keep).astype(np.int64)
            yield k, start, m, rows, data

    def _source(self, values, name, rows):
        """A source column as floats: a float column at least as wide as the stream's dtype
        is used as it is (no copy), anything else becomes float64.  ``rows``: the file row of
        the first value, or of each (see formats.float_column)."""
        v = np.asarray(values)
        if v.dtype.kind == "f" and v.dtype.itemsize >= self.dtype.itemsize:
            return v
        return float_column(v, name, self.path, rows)

    def _convert(self, k, start, m, rows, data, labels=True):
        at = start if rows is None else rows          # where the values sit in the file
        src = {c: self._source(data[c], c, at) for c in self._sources}
        imputed = {}
        for c in [c for c in src if c in self.fill]:      # in the features' order
            src[c], imputed[c] = fill_missing(src[c], self.fill[c], self.fill_dtype)
        n = len(next(iter(data.values()))) if data else 0
        valid = np.ones(n, bool)
        for v in src.values():
            valid &= np.isfinite(v)
            for sentinel in MISSING_VALUES:
                valid &= v != sentinel
        X = np.empty((n, len(self._steps)), dtype=self.dtype)
        # colours computed straight into X's column; one beyond the dtype's range (u = 3e38,
        # g = -3e38 in float32) is inf, an invalid row counted under its feature: no
        # RuntimeWarning besides that count
        with np.errstate(over="ignore"):
            for j, s in enumerate(self._steps):
                if s[0] == "col":
                    X[:, j] = src[s[1]]
                else:
                    np.subtract(src[s[1]], src[s[2]], out=X[:, j], casting="same_kind")
        valid &= np.isfinite(X).all(axis=1) & self._within_range(src, X)
        y = labelled = None
        if self.label is not None and labels:
            y, labelled = self._labels(data[self.label], at)
        extra = {e: _extra_column(data[e]) for e in self.extra_columns}
        return Chunk(k, start, X, y, valid, extra, rows, m, labelled,
                     imputed={c: v for c, v in imputed.items() if v})

    def _within_range(self, src, X):
        """Rows whose source values and features fit the range_dtype (all True without a
        narrower one): a value beyond it is missing to the model (see missing_mask)."""
        ok = np.ones(X.shape[0], bool)
        narrower = self._narrower_range()
        if narrower is None:
            return ok
        for v in src.values():
            ok &= ~missing_mask(v, narrower)
        with np.errstate(invalid="ignore"):
            ok &= (np.abs(X) <= np.finfo(narrower).max).all(axis=1)
        return ok

    def empty_chunk(self):
        """A chunk of no rows with every column of a real one (the file's types), e.g. to
        write an empty result with its full schema when no chunk holds a row."""
        labels = self.label is not None and self._label_kind is not None
        return self._convert(-1, 0, 0, None, self._reader.empty(self._need), labels=labels)

    def use_classes(self, class_names):
        """Read the label column as these classes (e.g. a model's ``class_names``) without a
        scan: a name is its index in ``class_names``, an integer 0..C-1 is itself; any other
        value counts as a missing label (``valid`` False)."""
        if self.label is None:
            raise ValueError(f"{self.path}: the stream has no label column")
        self._label_kind, self._label_values = "classes", [str(c) for c in class_names]
        self.class_names = tuple(self._label_values)
        self._mapping_given = True       # a scan counts rows, keeps this mapping
        return self

    def use_label_mapping(self, other):
        """Read the label column with the mapping ``other`` found (a stream of the same file
        that was scanned, e.g. a copy reading with a model's fill), without a scan; its
        class names and counts come with it."""
        if self.label is None or other.label != self.label or other._label_kind is None:
            raise ValueError(f"{self.path}: use_label_mapping needs a scanned stream of the "
                             f"same label column {self.label!r}")
        for name in ("_label_kind", "_label_values", "class_names", "class_counts",
                     "positive"):
            setattr(self, name, getattr(other, name))
        self._mapping_given = True
        return self

    def use_targets(self, advice=None, stray_advice=None):
        """Read the label column as float regression targets without a scan (whole numbers
        too: a later scan keeps this and finds no classes).  A label column holding text is
        refused (at once if a scan found it, else where it is read): class names saying
        that a regression needs numeric targets, ``advice`` what that error suggests
        instead (default: a classifier, or a numeric label column); a text among numbers
        ('n/a') named with its data row, ``stray_advice`` what to do (default: correct it
        or mark it missing, and missing='drop')."""
        if self.label is None:
            raise ValueError(f"{self.path}: the stream has no label column")
        self._text_advice = advice or TEXT_LABEL_ADVICE
        self._stray_advice = stray_advice or STRAY_LABEL_ADVICE
        if self.label_is_text:          # a scan found text: refused now, not mid-training
            if mostly_numbers(self.class_counts):
                raise self._stray_label_error(self.class_counts)
            raise ValueError(f"{self.path}: " + text_regression_text(
                self.label, text_label_example(self._label_values), self._text_advice))
        self._label_kind, self._label_values = "float", None
        self.class_names = self.class_counts = self.positive = None
        self._mapping_given = True
        return self

    def _labels(self, raw, rows=None):
        """(labels, valid) with the mapping found by scan() (vectorised); ``rows`` as for
        _source."""
        kind = self._label_kind
        if kind is None:
            raise RuntimeError("scan() the stream before reading labels")
        if kind == "classes":
            return _labels_as_classes(raw, self._label_values)
        if kind == "string":
            s = text_column(raw)
            names = self._label_values
            pos = np.searchsorted(names, s).clip(0, max(len(names) - 1, 0))
            ok = (names[pos] == s) if len(names) else np.zeros(s.shape, bool)
            return np.where(ok, pos, -1).astype(np.int64), ok
        v = self._label_numbers(raw, rows)
        ok = np.isfinite(v) & ~np.isin(v, MISSING_VALUES)
        if kind == "float":
            return v.astype(self.dtype), ok
        y = np.full(v.shape, -1, np.int64)
        y[ok] = np.searchsorted(self._label_values, v[ok]) if kind == "int-sorted" else \
            v[ok].astype(np.int64)
        return y, ok

    def _label_numbers(self, raw, rows):
        """The label column as float64 for numeric labels (regression targets, integer
        classes); text in it is refused saying that a regression needs numbers (a mapping
        to numbers was asked for: use_targets, or integer classes of another file)."""
        try:
            return float_column(raw, self.label, self.path, rows)
        except ValueError:
            if self._label_kind != "float":
                raise
            stray = stray_values_text(raw, rows)
            if stray is None:           # names: regression on them refused, with an example
                text, bad = non_numeric_positions(raw)
                example = str(text[bad[0]])
                raise ValueError(f"{self.path}: " + text_regression_text(
                    self.label, example, self._text_advice)) from None
            raise ValueError(f"{self.path}: " + stray_label_text(
                self.label, stray, self._stray_advice)) from None

    def _refuse_unlikely_names(self, counts):
        """A label column the scan found holding text only (``counts``: {text: rows}) that
        is no column of class names: numbers with a few stray texts (numbers_with_strays),
        or more distinct names than MAX_LABEL_CLASSES; refused as load_catalog refuses it
        (the same rule and message, whatever the chunks)."""
        if numbers_with_strays(counts):
            raise self._stray_label_error(counts)
        too_many = too_many_names_text(len(counts), self.label)
        if too_many:
            raise ValueError(f"{self.path}: {too_many}")

    def _stray_label_error(self, counts):
        """The ValueError for a label column of numbers with stray texts ('n/a'; the scan
        counted them as names, ``counts``: {value: rows}), naming how many there are and
        the first with its data row: found by reading the file again, on this error path
        only."""
        n_stray = sum(n for value, n in counts.items() if not is_number(value))
        for _, start, _, rows, data in self._raw(range(self.n_chunks)):
            text, bad = non_numeric_positions(data[self.label])
            if len(bad):
                where = non_numeric_text(text, bad, start if rows is None else rows,
                                         count=n_stray)
                return ValueError(f"{self.path}: " + stray_label_text(
                    self.label, where, self._stray_advice))
        return ValueError(f"{self.path}: label column {self.label!r} mixes names and numbers")

    def chunks(self, order=None, labels=True, dropna=None, progress=False):
        """Yield Chunks in ``order`` (chunk indices; default file order; the chunks of one
        Parquet row group come together, see the module docstring).  ``dropna`` (default:
        True when the stream has labels to train on) drops invalid rows.  ``progress``: a
        bar over the rows read, with rows/s and an ETA (True, or a mode for
        fastmlp.progress)."""
        if labels and self.label is not None and self._label_kind is None:
            self.scan()
        order = range(self.n_chunks) if order is None else list(order)
        bad = [k for k in order if not 0 <= k < self.n_chunks]
        if bad:
            raise ValueError(f"order holds chunk indices {bad[:5]} outside 0..{self.n_chunks - 1}"
                             f" ({counted(self.n_chunks, 'chunk')})")
        dropna = (self.label is not None and labels) if dropna is None else dropna
        total = int(sum(self._reader.pieces[k][1] for k in order))
        with RowProgress(total, "chunks", len(order), progress) as bar:
            for k, start, m, rows, data in self._raw(order):
                ch = self._convert(k, start, m, rows, data, labels=labels)
                bar.update(m)
                yield ch.dropna() if dropna else ch

    # -- the scan pass ------------------------------------------------------------------
    def scan(self, progress=False):
        """One pass over the file: row and class counts, the label mapping, the
        standardisation statistics of the valid rows and the count of those with features
        far off (a sentinel such as 99).  Memory: one chunk, a count per distinct label and
        the rows the far-off count takes its median from (far_values.SAMPLE_ROWS).  Returns
        self."""
        st = Standardizer()
        far = FarInStream(self.feature_names)     # 99 / 1e30 sentinels, on the same rows
        n_rows = n_valid = 0
        counts = {"string": {}, "number": {}, "given": None}
        id_sample = {} if self._features_defaulted else None
        with RowProgress(self.n_rows_to_read, "scan", self.n_chunks, progress) as bar:
            for k, start, m, rows, data in self._raw(range(self.n_chunks)):
                ch = self._convert(k, start, m, rows, data, labels=False)
                self._add_id_sample(id_sample, ch, data)
                ok = self._labelled_rows(ch, data, counts)
                if self.missing == "error" and not ok.all():
                    raise self._missing_error(ch, ok, data)
                st.partial_fit(ch.X[ok])
                far.add(ch.X[ok])
                n_rows += len(ok)
                n_valid += int(ok.sum())
                bar.update(m)
        if n_valid == 0:
            raise ValueError(f"{self.path}: no valid rows ({counted(n_rows, 'row')} read"
                             + (f" passing where {self.where.text!r})" if self.where else ")"))
        self.n_rows, self.n_valid, self.standardizer = n_rows, n_valid, st
        self.far_values = far.result()
        self.n_dropped = n_rows - n_valid
        self._scanned, self._scan_reading = True, self.reading_settings()
        if self._mapping_given:         # the caller's mapping, counted as it reads
            self._count_given_classes(counts["given"])
        else:
            self._set_label_mapping(counts["string"], counts["number"])
        # as load_catalog warns (the same text), at the end of a scan that succeeded
        warn_catalog(case_clash_text(self.class_counts or {}, self.label))
        if id_sample:                   # the features were not given: ids among them?
            warn_catalog(default_features_text(id_like_columns(
                {c: np.concatenate(v) for c, v in id_sample.items()})))
        return self

    def _labelled_rows(self, ch, data, counts):
        """A scanned chunk's usable rows (valid features and a label), its labels added to
        ``counts``: the values found (to find the mapping) or, under a mapping the caller
        gave, the class indices it reads them as (a value it does not name is missing)."""
        if self.label is None:
            return ch.valid
        if not self._mapping_given:
            return _count_labels(data[self.label], counts, ch.valid)
        at = ch.start if ch.rows is None else ch.rows
        y, labelled = self._labels(data[self.label], at)
        ok = ch.valid & labelled
        if self._label_kind != "float":
            given = counts["given"] if counts["given"] is not None else np.zeros(0, np.int64)
            n = np.bincount(y[ok].astype(np.int64), minlength=given.size)
            n[:given.size] += given
            counts["given"] = n
        return ok

    def _count_given_classes(self, counts):
        """class_counts under the mapping the caller gave (none for regression targets)."""
        if self._label_kind == "float" or self.class_names is None:
            return
        counts = np.zeros(len(self.class_names), np.int64) if counts is None else counts
        self.class_counts = {c: int(counts[i]) if i < counts.size else 0
                             for i, c in enumerate(self.class_names)}

    def _add_id_sample(self, sample, ch, data):
        """Add a chunk's default feature columns (as the file holds them, not rounded to the
        stream's dtype) to ``sample`` ({column: [arrays]}; None: the features were given)
        until it holds more than ID_DISTINCT_ROWS rows (of the first chunks, one with the
        default chunk_rows): the rows catalog.id_like_columns judges."""
        if sample is None or (sample and sum(map(len, next(iter(sample.values()))))
                              > ID_DISTINCT_ROWS):
            return
        at = ch.start if ch.rows is None else ch.rows
        for s in self._steps:
            if s[0] == "col":
                sample.setdefault(s[1], []).append(self._source(data[s[1]], s[1], at))

    def _missing_error(self, ch, ok, data):
        """missing="error": the ValueError for a chunk whose rows are not all ``ok``, naming
        the first such row (a 1-based data row, as the in-memory reader counts) and, per
        column, the chunk's missing values: a source column's NaN / inf / -9999 / null, a
        feature beyond the dtype's range (1e39 in float32), the label column's blanks."""
        at = ch.start if ch.rows is None else ch.rows
        by_col = {}
        src_ok = np.ones(len(ok), bool)
        # a source beyond a narrower range_dtype is missing there (else it is counted under
        # the feature it overflows, as before)
        rng = np.float64 if self._narrower_range() is None else self._narrower_range()
        for c in self._sources:
            v = self._source(data[c], c, at)
            bad = missing_mask(v, rng)
            src_ok &= ~bad
            by_col[c] = int(bad.sum())
        for j, name in enumerate(self.feature_names):
            beyond = missing_mask(ch.X[:, j], ch.X.dtype if rng is np.float64 else rng)
            by_col[name] = by_col.get(name, 0) + int((src_ok & beyond).sum())
        if self.label is not None:              # blanks, also in rows missing a feature
            labelled = _count_labels(data[self.label], {"string": {}, "number": {}},
                                     np.ones(len(ok), bool))
            by_col[self.label] = int((~labelled).sum())
        first = int(np.flatnonzero(~ok)[0])
        row = ch.start + first if ch.rows is None else int(ch.rows[first])
        n_bad = int((~ok).sum())
        return ValueError(f"{self.path}: {counted(n_bad, 'row')} of chunk {ch.index + 1} (the "
                          f"first: data row {row + 1}) {plural(n_bad, 'has', 'have')} missing "
                          "or invalid values (NaN, inf, -9999 or null) in columns "
                          f"{ {c: n for c, n in by_col.items() if n} }; pass missing='drop' "
                          "(--missing drop) to skip them")

    def _set_label_mapping(self, str_counts, num_counts):
        if self.label is None:
            self._label_kind = "none"
            return
        if str_counts and num_counts:   # redshifts and an 'n/a': named with its row
            if mostly_numbers({**str_counts, **num_counts}):
                raise self._stray_label_error({**str_counts, **num_counts})
            raise ValueError(f"{self.path}: label column {self.label!r} mixes names and numbers")
        if str_counts:
            self._refuse_unlikely_names(str_counts)
            names = sorted(str_counts)
            self._label_kind, self._label_values = "string", np.asarray(names, dtype=str)
            counts = {c: str_counts[c] for c in names}
            if self._class_names_arg is not None:
                raise ValueError(f"class_names can only name numeric labels; column "
                                 f"{self.label!r} already holds the names {names}")
        else:
            vals = np.array(sorted(num_counts), dtype=np.float64)
            if not (vals.size and np.all(vals == np.round(vals))):
                self._label_kind = "float"
                self.positive = positive_class_index(self._positive_arg, None, self.label)
                return
            if vals.min() < 0:
                self._label_kind, self._label_values = "int-sorted", vals
                names = [str(int(v)) for v in vals]
                counts = {n: num_counts[v] for n, v in zip(names, vals.tolist())}
            else:
                self._label_kind = "int"
                names = [str(k) for k in range(max(int(vals.max()) + 1, 2))]
                counts = {n: num_counts.get(float(k), 0) for k, n in enumerate(names)}
            names, counts = self._named_classes(names, counts)
        self.class_names = tuple(names)
        self.class_counts = counts
        self.positive = positive_class_index(self._positive_arg, list(names), self.label)

    def _named_classes(self, names, counts):
        cn = self._class_names_arg
        if cn is None:
            return names, counts
        cn = [c.strip() for c in cn.split(",")] if isinstance(cn, str) else [str(c) for c in cn]
        if len(cn) != len(names) or len(set(cn)) != len(cn):
            raise ValueError(class_names_error(cn, len(names)))
        return cn, {c: counts[n] for c, n in zip(cn, names)}

    def __repr__(self):
        return (f"CatalogStream({str(self.path)!r}, format={self.format}, "
                f"features={list(self.feature_names)}, label={self.label!r}, "
                f"chunk_rows={self.chunk_rows}, n_chunks={self.n_chunks}"
                + (f", where={self.where.text!r}" if self.where is not None else "")
                + (f", n_rows={self.n_rows}" if self.n_rows is not None else "") + ")")


def class_values(num, n_classes):
    """(labels, valid) of numeric labels read as class indices: a whole number in
    0..n_classes-1 is itself; anything else (a fraction, NaN, -9999, a value beyond the
    classes) is -1 and not valid."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(num) & (num >= 0) & (num < n_classes) & (num == np.round(num))
    return np.where(ok, np.nan_to_num(num), -1).astype(np.int64), ok


def _labels_as_classes(raw, class_names):
    """(labels, valid): names looked up in class_names (sorted once, then searchsorted),
    or integer labels 0..C-1 as they are."""
    num = try_float(raw)
    if num is not None:
        return class_values(num, len(class_names))
    s = text_column(raw)
    names = np.asarray(class_names, dtype=str)
    order = np.argsort(names)
    pos = np.searchsorted(names[order], s).clip(0, len(names) - 1)
    ok = names[order][pos] == s
    return np.where(ok, order[pos], -1).astype(np.int64), ok


def _extra_column(values):
    """An extra column as NumPy: text (from bytes or objects) as str; a masked array (an
    id column with nulls, see formats.arrow_columns) stays masked."""
    if np.ma.isMaskedArray(values):
        return np.ma.MaskedArray(_extra_column(values.data), mask=np.ma.getmaskarray(values))
    values = np.asarray(values)
    return text_column(values) if values.dtype.kind in "OS" else values


def missing_labels(raw):
    """Where a label column holds no label: a null / empty / "NA" text, NaN, inf or -9999
    (the rule scan() counts labels by)."""
    num = try_float(raw)
    if num is None:
        return np.isin(text_column(raw), NULL_STRINGS)
    return ~np.isfinite(num) | np.isin(num, MISSING_VALUES)


def _count_labels(raw, counts, valid):
    """Add the labels of a chunk's ``valid`` rows to counts["string"] or counts["number"]
    (np.unique); returns ``valid`` and-ed with "has a label"."""
    num = try_float(raw)
    if num is None:
        s = text_column(raw)
        ok = valid & ~np.isin(s, NULL_STRINGS)
        into, values = counts["string"], s[ok]
    else:
        ok = valid & np.isfinite(num) & ~np.isin(num, MISSING_VALUES)
        into, values = counts["number"], num[ok]
    u, c = np.unique(values, return_counts=True)
    for a, b in zip(u.tolist(), c.tolist()):
        into[a] = into.get(a, 0) + b
    return ok


def iter_chunks(path, features=None, label=None, chunk_rows=DEFAULT_CHUNK_ROWS, **kwargs):
    """Chunks (:class:`Chunk`: ``X``, ``y``, ``valid``, ``extra``, ``start``) of a catalog
    file in file order, invalid rows dropped when there is a label.  ``kwargs`` go to
    :class:`CatalogStream` (missing, dtype, class_names, positive, extra, format, hdu,
    where)."""
    yield from CatalogStream(path, features, label, chunk_rows, **kwargs).chunks()


# =======================================================================================
# progress over rows, and the pipeline: read ahead, write behind
class RowProgress(Display):
    """A progress display over rows.  ``enabled``: True / False or a fastmlp.progress mode.

    * on a terminal: a tqdm bar (rows, rows/s, ETA);
    * in a log (stderr not a terminal): a plain line ``desc i/n chunks  rows  rows/s  ETA``
      at most every :attr:`LOG_EVERY` seconds, no carriage returns (a line per chunk would
      flood the log, none at all leaves a long job silent for minutes);
    * one such line per chunk when asked for ``"lines"`` (``enabled="lines"`` or the
      environment variable FASTMLP_PROGRESS=lines); nothing when disabled (or
      FASTMLP_PROGRESS=off).

    ``clock``: seconds (time.perf_counter; a test passes its own)."""

    #: seconds between two progress lines in a log
    LOG_EVERY = 10.0

    def __init__(self, total_rows, desc, n_chunks, enabled=True, clock=time.perf_counter):
        self.total, self.desc, self.n_chunks = total_rows, desc, n_chunks
        self.mode = resolve_mode(enabled)
        asked = enabled == "lines" or os.environ.get("FASTMLP_PROGRESS", "").strip().lower() \
            == "lines"
        if self.mode == "lines" and not asked:
            self.mode = "every"                 # a line every LOG_EVERY seconds
        self.rows = self.chunks = 0
        self.clock = clock
        self.t0 = clock()
        self._next_line = self.t0 + self.LOG_EVERY
        self._bar = progress_bar(total_rows, desc, "rows", enabled=self.mode == "bar",
                                 mode="bar", leave=False) if self.mode == "bar" else None

    def update(self, rows):
        self.rows += int(rows)
        self.chunks += 1
        if self._bar is not None:
            self._bar.update(int(rows))
            return
        if self.mode not in ("lines", "every"):
            return
        now = self.clock()
        if self.mode == "every" and now < self._next_line:
            return
        self._next_line = now + self.LOG_EVERY
        dt = max(now - self.t0, 1e-9)
        rate = self.rows / dt
        eta = (self.total - self.rows) / rate if self.total and rate > 0 else 0.0
        print(f"{self.desc} {self.chunks}/{self.n_chunks} {plural(self.n_chunks, 'chunk')}  "
              f"{counted(self.rows, 'row', fmt=',')}  "
              f"{rate:,.0f} rows/s  ETA {eta:.1f} s", file=_stderr(), flush=True)


def _stderr():
    import sys
    return sys.stderr


_DONE = object()


def leave_signals_to_the_main_thread():
    """Block SIGINT and SIGTERM in the calling (background) thread, so that the kernel
    delivers them to the main thread, whose handlers stop a command cleanly.  Why: a
    process-directed signal may go to any thread that does not block it; one taken by a
    reader or writer thread only sets Python's flag, and the main thread, blocked in a
    wait, did not see it until that wait ended (fastmlp predict SIGTERM'd during a slow
    chunk did not exit for 20 s, about one run in twenty).  A no-op where the platform
    has no pthread_sigmask."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


#: the longest prefetch's generator waits for its thread to stop when closed
PREFETCH_STOP_SECONDS = 5.0


def prefetch(iterable, depth=2):
    """Iterate ``iterable`` in a background thread, at most ``depth`` items ahead (bounded
    memory): reading chunk k+1 overlaps the caller's work on chunk k.  pyarrow, NumPy and
    file reads release the GIL, so the overlap is real.  An exception in the thread is
    raised in the caller; closing the generator stops the thread."""
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run():
        leave_signals_to_the_main_thread()
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put((None, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((None, _DONE))
        except BaseException as exc:          # handed to the consumer
            q.put((exc, None))

    t = threading.Thread(target=run, name="fastmlp-prefetch", daemon=True)
    t.start()
    try:
        while True:
            exc, item = q.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        # Unblock a put() waiting on a full queue and let the thread end, but never wait
        # for ever: a thread stuck in a read never ends, and a generator closed while the
        # interpreter exits would wait on a daemon thread that no longer runs there.  The
        # thread is a daemon: one left reading ends with the process.
        give_up = time.monotonic() + PREFETCH_STOP_SECONDS
        while t.is_alive() and not sys.is_finalizing() and time.monotonic() < give_up:
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


class BackgroundWriter:
    """Calls ``write(item)`` in a background thread for each ``put(item)``, at most
    ``depth`` items queued (bounded memory): writing chunk k-1 overlaps the work on chunk k.
    ``close()`` waits for the queue to drain and re-raises the thread's exception."""

    def __init__(self, write, depth=2):
        self._write, self._q = write, queue.Queue(maxsize=depth)
        self._error = None
        self._t = threading.Thread(target=self._run, name="fastmlp-writer", daemon=True)
        self._t.start()

    def _run(self):
        leave_signals_to_the_main_thread()
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:
                    self._error = exc

    def put(self, item):
        if self._error is not None:
            self._raise()
        self._q.put(item)

    def close(self):
        self._q.put(_DONE)
        self._t.join()
        self._raise()

    def _raise(self):
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def default_kernel_threads():
    """Kernel threads while a reader and a writer thread run beside them: all cores but one
    (at least one), so that the three stages do not oversubscribe the CPU."""
    return max(1, (os.cpu_count() or 1) - 1)


#: rows per predict call: the kernels' hidden activations (rows x width x layers) stay a few
#: MB whatever the chunk size (4-64-64-3 at 250k rows would need 128 MB of them)
COMPUTE_ROWS = 32_768


def _predict_in_slices(model, X, regression, width):
    out = np.empty((X.shape[0], width), dtype=model.dtype)
    for a in range(0, X.shape[0], COMPUTE_ROWS):
        part = X[a:a + COMPUTE_ROWS]
        pred = model.predict(part) if regression else model.predict_proba(part)
        out[a:a + COMPUTE_ROWS] = pred.reshape(-1, width)
    return out


def _model_fill(model, stream):
    """The fill values predict_stream reads ``stream`` with: the model's (FeatureSpec.fill,
    part of its contract); ValueError naming fill when the stream was opened with others
    (rows would be imputed unlike the model imputes them)."""
    fill = (model.features.fill if getattr(model, "features", None) is not None else None)
    fill = dict(fill or {})
    if stream.fill and stream.fill != fill:
        raise ValueError(f"the stream's fill {stream.fill!r} differs from the model's fill "
                         f"{fill!r} (model.features.fill); open the CatalogStream with "
                         "fill=model.features.fill, or without fill")
    return check_fill(fill, FeatureSpec(stream.feature_names)) or {}


def _check_stream_dtype(model, stream):
    """A float64 model needs float64 features: a float32 stream would round its inputs (and
    turn 1e39 into inf, a row without prediction) unlike model.predict_proba."""
    if stream.dtype.itemsize < np.dtype(model.dtype).itemsize:
        raise ValueError(f"the stream's dtype {stream.dtype.name} is narrower than the "
                         f"model's {np.dtype(model.dtype).name}: its inputs would be rounded "
                         f"unlike model.predict_proba's; open the CatalogStream with "
                         f"dtype='{np.dtype(model.dtype).name}'")


def predict_stream(model, stream, progress=True, labels=False, n_threads=None, depth=2):
    """Yield (chunk, probabilities or predictions) over every row of ``stream`` (rows left
    out by its ``where`` filter excepted), applying the model's whole contract to the raw
    features (model.predict_proba / predict).  Rows with missing features, or whose output
    is not finite (e.g. extreme inputs), get ``chunk.valid`` False: NaN for missing features
    and for a classifier's non-finite probabilities, while a regression's value is the one
    model.predict gives (inf where it overflows the float range, as the C loader and ONNX
    give it).  The label, if read, never decides which rows are predicted
    (``chunk.labelled`` says which rows have one).  A stream opened without ``fill`` is
    read with the model's fill values (model.features.fill) and dtype by this generator
    alone (the stream itself is left unchanged, so generators of models with other fills
    may read it in turn), so its missing raw values are imputed as the model's other paths
    impute them; one with other fill values is refused.  A float64 model needs a stream of
    ``dtype="float64"``; for a standardising float32 model, ``dtype="float64"`` gives
    model.predict_proba's exact arithmetic (as ``fastmlp predict`` reads), a float32 stream
    rounds the raw features first (about 1e-6 relative apart).

    The next chunk is read in a background thread while this one is computed
    (:func:`prefetch`, ``depth`` chunks ahead); ``n_threads`` kernel threads (default
    :func:`default_kernel_threads`).  ``labels``: also read the label column into
    ``chunk.y`` (for evaluation), indices into ``stream.class_names``: a stream with no
    label mapping yet (neither scanned nor given one by :meth:`CatalogStream.use_classes`)
    gets the one found reading as the model reads (scanned itself when it reads so), so
    that the caller sees the mapping.
    ``progress``: a bar over the rows with rows/s and an ETA (see :class:`RowProgress`)."""
    _check_stream_dtype(model, stream)
    fill = _model_fill(model, stream)
    reading = stream_with_fill(stream, fill, model.dtype)
    if labels and stream.label is not None and stream._label_kind is None:
        # The mapping is found reading as the model reads (its fill imputes rows that the
        # caller's own reading would drop or refuse, and their classes count) and given to
        # the caller's stream, whose class_names chunk.y indexes (a mapping left on the
        # copy alone was thrown away with it, and taken again on every call)
        if reading.reading_settings() == stream.reading_settings():
            stream.scan(progress=False)
            reading = stream_with_fill(stream, fill, model.dtype)
        else:
            reading.scan(progress=False)
            stream.use_label_mapping(reading)
    yield from _predict_chunks(model, reading, progress, labels, n_threads, depth)


def stream_with_fill(stream, fill, fill_dtype, range_dtype=None):
    """A shallow copy of ``stream`` that reads with these ``fill`` values and
    ``fill_dtype``: the same file and reader, its own settings.  Set on the stream itself
    (even for one generator's life), a model's fill served whatever else read the stream
    meanwhile: another predict_stream generator advanced in turn imputed with the other
    model's fill, or was refused as if the caller had opened the stream with it.  What the
    copy sets on itself (a scan) stays with the copy; a scan the stream had is the copy's
    too, and ``scanned_as_read`` says whether it holds for the copy's reading.
    ``range_dtype``: the copy's (see CatalogStream.range_dtype; fit_stream's: the model's
    dtype), else the stream's own."""
    reading = copy.copy(stream)
    reading.fill, reading.fill_dtype = dict(fill), np.dtype(fill_dtype)
    if range_dtype is not None:
        reading.range_dtype = np.dtype(range_dtype)
    return reading


def _predict_chunks(model, stream, progress, labels, n_threads, depth):
    """predict_stream's loop over the chunks of a stream that reads with the model's fill
    (:func:`stream_with_fill`)."""
    from ..backends import threads
    regression = model.link == "identity"
    width = model.n_outputs if regression else (2 if model.n_outputs == 1 else model.n_outputs)
    n = default_kernel_threads() if n_threads is None else n_threads
    # threads(n) around each chunk's kernels, never across a yield: while the generator
    # waits, its caller's code runs in the same Python thread, and a count set across the
    # yield leaked into it (and, with generators advanced in turn, stayed after both ended)
    with RowProgress(stream.n_rows_to_read, "predict", stream.n_chunks, progress) as bar:
        for ch in prefetch(stream.chunks(labels=labels, dropna=False), depth):
            v = ch.valid
            with threads(n):
                if v.all():                 # the common case: no copy, no NaN fill
                    out = _predict_in_slices(model, ch.X, regression, width)
                else:
                    out = np.full((ch.X.shape[0], width), np.nan, dtype=model.dtype)
                    if v.any():
                        out[v] = _predict_in_slices(model, ch.X[v], regression, width)
            ch.features_valid = v
            ch.valid = v & np.isfinite(out).all(axis=1)
            if not regression:     # a regression keeps model.predict's value (inf where it
                out[~ch.valid] = np.nan      # overflowed, as C and ONNX give): one answer
            bar.update(ch.n_read)
            yield ch, out
