"""Catalog file formats: CSV, .npy (plain or structured), FITS tables (astropy) and Parquet
(pyarrow), read column by column into NumPy arrays with no per-row or per-cell Python.

* CSV: ``pyarrow.csv`` parses the text in C (the stdlib ``csv`` module is only the fallback
  when pyarrow is missing, and the path that finds the line of a malformed row for the error
  message).
* Parquet: ``pyarrow.parquet`` with column projection; a ``where`` filter prunes row groups
  from their statistics and then selects rows.
* FITS: astropy parses the headers; a binary table's rows are read by blocks into a
  big-endian record array and each column converted in one vectorised step
  (:mod:`fastmlp.data.fits_table`); other tables go through astropy's memory map.
* ``where``: a small, safe filter language (:func:`parse_where`), see below.
"""

import csv
import gzip
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from .._validate import counted
from ..features import MISSING_VALUES, missing_mask
from .fits_table import FitsTable, fits_table_index
from .optional_deps import import_optional

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
#: text that means "no value" in a CSV field (besides the empty field)
NULL_STRINGS = ("", "nan", "NaN", "NAN", "NULL", "null", "NA", "N/A", "None")


# =======================================================================================
# format, optional modules
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
    if name.endswith(".npz"):
        raise ValueError(f"{path}: an .npz archive is not a catalog format; save the table as "
                         ".npy (np.save), CSV, FITS or Parquet (a model file goes to --model)")
    if name.endswith(_FITS_SUFFIXES):
        return "fits"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    return "csv"


def have_pyarrow():
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


# =======================================================================================
# values -> float64, vectorised
def float_column(values, name, path, rows=None):
    """A column -> float64: numbers as they are, text parsed in one NumPy call (surrounding
    blanks stripped; empty / "nan" / "NULL" / "NA" fields become NaN).  Only when a value does
    not parse does a loop look for the first bad one, to name it in the error.

    ``rows``: where ``values`` sit in the file, for that error: None (the whole column, from
    data row 1), the 0-based file row of the first value (a chunk), or the 0-based file row
    of each value (rows left out by a filter)."""
    out = try_float(values)
    if out is not None:
        return out
    text, bad = non_numeric_positions(values)
    raise ValueError(f"{path}: column {name!r} must be numeric but has "
                     f"{non_numeric_text(text, bad, rows)}")


def non_numeric_positions(values):
    """(text, positions): a column as text (text_column) and the positions of its values
    that are neither a number nor a null (NULL_STRINGS), the values float_column refuses.
    Each distinct value is parsed once, in a loop: for error paths."""
    text = text_column(values)
    distinct, inverse = np.unique(text, return_inverse=True)
    bad = np.array([s not in NULL_STRINGS and not is_number(s) for s in distinct.tolist()],
                   dtype=bool)
    return text, np.flatnonzero(bad[inverse.ravel()])


def non_numeric_text(text, bad, rows=None, count=None):
    """How a message names a column's non-numeric values (non_numeric_positions' ``text``
    and ``bad``): their count and the first of them with its 1-based data row.  ``rows``:
    where ``text`` sits in the file: None (the whole column, from data row 1), the 0-based
    file row of the first value (a chunk), or the 0-based file row of each value.
    ``count``: how many the whole column holds, when ``rows`` is given (a chunk knows only
    its own: without ``count`` the message says "non-numeric values")."""
    first = str(text[bad[0]])
    if rows is None:
        row, count = int(bad[0]), len(bad)
    else:
        row = int(rows + bad[0] if np.ndim(rows) == 0 else rows[bad[0]])
    said = "non-numeric values" if count is None else \
        f"{count} non-numeric value{'s' if count > 1 else ''}"
    return f"{said} (first {first!r} in data row {row + 1})"


def try_float(values):
    """float64 values of a numeric or numeric-text column, None if some text is not a
    number (vectorised; see float_column)."""
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    text = text_column(values)
    text = np.where(np.isin(text, NULL_STRINGS), "nan", text)
    try:
        return text.astype(np.float64)
    except ValueError:
        return None


def is_number(s):
    """True when the text ``s`` is a number (float() reads it)."""
    try:
        float(s)
    except ValueError:
        return False
    return True


def text_column(values):
    """A column of labels / names -> a NumPy array of str, blanks stripped, missing -> ""."""
    a = np.asarray(values)
    if a.dtype.kind == "S":
        a = np.char.decode(a, "utf-8", errors="replace")
    elif a.dtype == object:
        a = np.where(np.equal(a, None), "", a)
    a = a.astype(str)
    return np.char.strip(a) if a.size else a


# -- Arrow <-> NumPy through Arrow buffers ---------------------------------------------------
# pyarrow imports pandas (half a second of start-up) the first time it converts a Python or
# NumPy object (pa.array, pa.scalar, a Python literal in a compute call, ChunkedArray.to_numpy).
# Nothing on the catalog path needs pandas, so these helpers go through Arrow buffers.
_NUMPY_OF_ARROW = {"int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1",
                   "uint16": "u2", "uint32": "u4", "uint64": "u8", "halffloat": "f2",
                   "float": "f4", "double": "f8"}


def _bits(buf, offset, n):
    return np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")[offset:offset + n] \
        .astype(bool)


def _array_to_numpy(arr):
    """One pyarrow Array -> NumPy: numbers (NaN where null), bool, or str ("" where null)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    t, n = arr.type, len(arr)
    if pa.types.is_null(t):                 # e.g. a CSV column of nothing but NaN / blanks:
        return np.full(n, np.nan)           # no validity buffer to read
    valid = _bits(arr.buffers()[0], arr.offset, n) if arr.null_count else None
    if _is_text(t):
        arr = pc.dictionary_encode(arr)         # each distinct string converted once
        t = arr.type
    if pa.types.is_dictionary(t):
        d = arr.dictionary
        values = _strings_to_numpy(d) if d.null_count == 0 and _is_text(d.type) \
            else _array_to_numpy(d)
        if values.dtype.kind == "S":
            values = np.char.decode(values, "utf-8", errors="replace")
        idx = _array_to_numpy(arr.indices if valid is None else arr.indices.fill_null(
            numpy_to_arrow(np.zeros(1, _NUMPY_OF_ARROW[str(arr.indices.type)]))[0]))
        out = values[idx.astype(np.int64)] if len(values) else np.full(n, "", dtype=str)
        if valid is not None:
            out = np.where(valid, out, "" if out.dtype.kind in "US" else np.nan)
        return out
    if pa.types.is_boolean(t):
        out = _bits(arr.buffers()[1], arr.offset, n)
    elif str(t) in _NUMPY_OF_ARROW:
        out = np.frombuffer(arr.buffers()[1], _NUMPY_OF_ARROW[str(t)], count=n,
                            offset=arr.offset * np.dtype(_NUMPY_OF_ARROW[str(t)]).itemsize)
    else:                                   # dates, decimals, ...: pyarrow's own conversion
        return arr.to_numpy(zero_copy_only=False)
    if valid is not None:
        out = np.where(valid, out, np.nan)
    return out


def _is_text(t):
    import pyarrow as pa
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
        or pa.types.is_large_binary(t)


def _strings_to_numpy(arr):
    """A null-free pyarrow string Array -> NumPy str, vectorised: the bytes are scattered
    into a fixed-width (n, longest) byte matrix, viewed as S and decoded."""
    import pyarrow as pa
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    n = len(arr)
    off = np.frombuffer(arr.buffers()[1], np.int64 if large else np.int32, count=n + 1,
                        offset=arr.offset * (8 if large else 4)).astype(np.int64)
    data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None \
        else np.zeros(0, np.uint8)
    lengths = np.diff(off)
    width = max(int(lengths.max()) if n else 0, 1)
    mat = np.zeros((n, width), np.uint8)
    row = np.repeat(np.arange(n), lengths)
    col = np.arange(off[-1] - off[0]) - np.repeat(off[:-1] - off[0], lengths)
    mat[row, col] = data[off[0]:off[-1]]
    out = mat.view(f"S{width}").reshape(n)
    return out if pa.types.is_binary(arr.type) else np.char.decode(out, "utf-8",
                                                                   errors="replace")


def _arrow_to_numpy(col):
    """A pyarrow (Chunked)Array -> NumPy: nulls become NaN (numbers) or "" (strings)."""
    chunks = getattr(col, "chunks", None)
    if chunks is None:
        return _array_to_numpy(col)
    if len(chunks) == 1:
        return _array_to_numpy(chunks[0])
    if not chunks:
        return _array_to_numpy(col.combine_chunks())
    return np.concatenate([_array_to_numpy(c) for c in chunks])


def numpy_to_arrow(a, null=None):
    """A 1-D NumPy array -> pyarrow Array (``null``: a mask of null entries).  Numbers and
    bool through their buffers, text dictionary-encoded (np.unique)."""
    import pyarrow as pa
    a = np.ascontiguousarray(a)
    n = len(a)
    validity = None
    if null is not None and null.any():
        validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
    if a.dtype.kind in "USO":
        names, idx = np.unique(a.astype(str), return_inverse=True)
        return pa.DictionaryArray.from_arrays(numpy_to_arrow(idx.astype(np.int32), null),
                                              strings_to_arrow(names.tolist()))
    if a.dtype == bool:
        return pa.Array.from_buffers(pa.bool_(), n, [validity, pa.py_buffer(
            np.packbits(a, bitorder="little"))])
    a = a.astype(a.dtype.newbyteorder("="), copy=False)
    return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), n, [validity, pa.py_buffer(a)])


def strings_to_arrow(strings):
    """A list of str -> a pyarrow string Array."""
    import pyarrow as pa
    enc = [s.encode() for s in strings]
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in enc])]).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(enc), [None, pa.py_buffer(offsets),
                                                         pa.py_buffer(b"".join(enc))])


def arrow_columns(table, names, keep_nulls=()):
    """{name: NumPy column} of a pyarrow Table / RecordBatch.  A column named in
    ``keep_nulls`` that holds nulls comes as a masked array of its own type (nulls masked,
    filled with "" or 0): an id column written back out keeps its nulls and its integer
    type (as floats, 64-bit ids above 2**53 would change)."""
    return {n: _arrow_to_masked(table.column(n)) if n in keep_nulls
            else _arrow_to_numpy(table.column(n)) for n in names}


def _arrow_to_masked(col):
    """A pyarrow (Chunked)Array -> NumPy, or a masked array where it holds nulls."""
    if not col.null_count:
        return _arrow_to_numpy(col)
    arr = col.combine_chunks() if hasattr(col, "chunks") else col
    null = ~_bits(arr.buffers()[0], arr.offset, len(arr)) if arr.buffers()[0] is not None \
        else np.ones(len(arr), bool)                # a column of the null type: all null
    code = "?" if str(arr.type) == "bool" else _NUMPY_OF_ARROW.get(str(arr.type), "f")
    if code[0] in "iu?":                            # fill before converting: no float detour
        arr = arr.fill_null(numpy_to_arrow(np.zeros(1, code))[0])
    return np.ma.MaskedArray(_array_to_numpy(arr), mask=null)


# =======================================================================================
# CSV
def _open_text(path):
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, "r", encoding="utf-8-sig", newline="")


def csv_header(path):
    """(column names, number of lines before the first data line): the first line that is
    neither blank nor a '#' comment is the header."""
    try:
        fh = _open_text(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot open: {exc}") from None
    with fh:
        try:
            for k, line in enumerate(fh):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                header = [h.strip() for h in next(csv.reader([line]))]
                if len(set(header)) != len(header):
                    dup = sorted({h for h in header if header.count(h) > 1})
                    raise ValueError(f"{path}: duplicate column names {dup} in the CSV header")
                return header, k + 1
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a UTF-8 text CSV file ({exc.reason}); expected a "
                             "CSV with a header row, or a .npy file") from None
    raise ValueError(f"{path}: empty file, expected a CSV header row and data rows")


def csv_read_options(header, skip_rows=0, use_threads=True):
    """pyarrow.csv ReadOptions for the data lines after the header.  ``use_threads=False``
    for a chunk read by a stream's reader thread (one pipeline stage, one core)."""
    import pyarrow.csv as pcsv
    return pcsv.ReadOptions(column_names=header, skip_rows=skip_rows, encoding="utf8",
                            use_threads=use_threads)


def csv_convert_options(columns):
    import pyarrow.csv as pcsv
    return pcsv.ConvertOptions(include_columns=list(columns), null_values=list(NULL_STRINGS),
                               strings_can_be_null=True)


def parse_csv_bytes(data, header, columns, path, keep_nulls=()):
    """The columns of a block of CSV data lines (no header) as {name: NumPy array}
    (``keep_nulls``: as for :func:`arrow_columns`)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    try:
        t = pcsv.read_csv(pa.BufferReader(data),
                          read_options=csv_read_options(header, use_threads=False),
                          convert_options=csv_convert_options(columns))
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path}: malformed CSV ({exc}); expected "
                         f"{counted(len(header), 'field')} per row like the header (quoted "
                         "fields must not hold line breaks)") \
            from None
    return arrow_columns(t, columns, keep_nulls)


def read_csv_columns(path, choose):
    """(header, {column: NumPy array}) of the columns ``choose(header)`` asks for."""
    header, skip = csv_header(path)
    need = choose(header)
    if not have_pyarrow():
        return header, _load_csv_python(path, need)[1]
    import pyarrow as pa
    import pyarrow.csv as pcsv
    try:
        t = pcsv.read_csv(path, read_options=csv_read_options(header, skip),
                          convert_options=csv_convert_options(need))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        # the Python reader finds the line and says what is wrong with it
        _load_csv_python(path, need)
        raise
    return header, arrow_columns(t, need)


def _load_csv_python(path, need):
    """The stdlib reader: the fallback without pyarrow and the diagnosis of a bad file."""
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = None
        try:
            for row in reader:
                if not row or row[0].lstrip().startswith("#"):
                    continue
                header = [h.strip() for h in row]
                break
            idx = [header.index(c) for c in need]
            cols = [[] for _ in need]
            width = len(header)
            for row in reader:
                if len(row) != width:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue  # blank line
                    raise ValueError(f"{path}: line {reader.line_num} has "
                                     f"{counted(len(row), 'field')}, "
                                     f"the header has {width} (ragged or malformed CSV)")
                for c, k in zip(cols, idx):
                    c.append(row[k])
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a UTF-8 text CSV file ({exc.reason}); expected a "
                             "CSV with a header row, or a .npy file") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: malformed CSV near line {reader.line_num}: {exc}") \
                from None
    return header, {n: np.asarray(c, dtype=str) for n, c in zip(need, cols)}


def csv_line_index(fh, chunk_rows):
    """Scan a binary CSV stream (positioned after the header) for newlines with NumPy and
    return ([(byte offset, first row, rows)] for consecutive pieces of ``chunk_rows``
    non-blank lines, total rows).  Nothing is parsed: one byte comparison per byte."""
    pieces, row, in_piece = [], 0, 0
    pos = line_start = piece_start = fh.tell()
    prev_byte, tail_text = 0, False
    while True:
        block = fh.read(1 << 24)
        if not block:
            break
        buf = np.frombuffer(block, np.uint8)
        nl = np.flatnonzero(buf == 10)
        if nl.size:
            ends = pos + nl
            begins = np.concatenate([[line_start], ends[:-1] + 1])
            before = np.where(nl > 0, buf[np.maximum(nl - 1, 0)], prev_byte)
            blank = (ends == begins) | ((ends - begins == 1) & (before == 13))
            kept = ends[~blank]
            cuts = kept[chunk_rows - in_piece - 1::chunk_rows]
            for e in cuts.tolist():
                pieces.append((piece_start, row, chunk_rows))
                row += chunk_rows
                piece_start = e + 1
            in_piece += kept.size - cuts.size * chunk_rows
            line_start = int(ends[-1]) + 1
            tail_text = bool(block[nl[-1] + 1:].strip())
        else:
            tail_text = tail_text or bool(block.strip())
        pos += len(block)
        prev_byte = buf[-1]
    in_piece += int(tail_text)                  # a last line without a newline
    if in_piece:
        pieces.append((piece_start, row, in_piece))
        row += in_piece
    return pieces, row


# =======================================================================================
# FITS
def _raw_fits_field(col, data, name):
    """The raw record field of a plain numeric binary-table column (no TSCAL / TZERO /
    TNULL, not logical), a big-endian view of the memory map; None when astropy must convert
    the values."""
    if getattr(col, "bscale", None) not in (None, 1) or getattr(col, "bzero", None) \
            not in (None, 0) or getattr(col, "null", None) is not None:
        return None
    raw = data.view(np.ndarray)
    if raw.dtype.names is None or name not in raw.dtype.names:
        return None
    field = raw[name]
    return field if field.dtype.kind in "uif" and not str(col.format).endswith("L") else None


def fits_column_array(data, col, name, path, rows=slice(None)):
    """One FITS table column (rows ``rows``) as a native-endian 1-D array: TNULL integers
    become NaN, strings str."""
    raw = _raw_fits_field(col, data, name)
    a = raw[rows] if raw is not None else np.asarray(data.field(name)[rows])
    if a.ndim != 1:
        raise ValueError(f"{path}: FITS column {name!r} is a vector column (shape "
                         f"{a.shape[1:]} per row); expected one value per row")
    if a.dtype.kind == "S":
        return np.char.decode(a, "ascii", errors="replace")
    null = getattr(col, "null", None)
    if a.dtype.kind in "iu" and null is not None and not isinstance(null, str):
        f = a.astype(np.float64)
        f[a == null] = np.nan
        return f
    return a.astype(a.dtype.newbyteorder("="), copy=True)   # one byte swap, one copy


def read_fits_columns(path, choose, hdu=None):
    """(column names, {column: array}) of the columns ``choose(names)`` asks for: a binary
    table read by blocks of rows (fits_table.FitsTable: the memory is the columns read plus
    one block), anything else through astropy."""
    table = FitsTable(path, hdu)
    if table.direct:
        names = table.columns
        return names, table.load(choose(names))
    if table.ascii and table.n_rows == 0:   # astropy fails converting its empty columns
        return table.columns, table.empty(choose(table.columns))
    fits = import_optional("astropy.io.fits", "FITS", path, "astropy")
    try:
        hdul = fits.open(path, memmap=not str(path).lower().endswith(".gz"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable FITS file ({exc})") from None
    with hdul:
        k = fits_table_index(hdul, path, hdu)
        h = hdul[k]
        names = list(h.columns.names)
        need = choose(names)
        cols = {c.name: c for c in h.columns}
        try:
            data = {n: fits_column_array(h.data, cols[n], n, path) for n in need} \
                if h.data is not None else {n: np.empty(0) for n in need}
        except (TypeError, ValueError, OSError) as exc:   # astropy on a cut-off data block
            if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
                raise
            raise ValueError(f"{path}: truncated or corrupt FITS table ({exc})") from None
    return names, data


# =======================================================================================
# Parquet, npy
def read_parquet_columns(path, choose, where=None):
    """(column names, {column: NumPy array}, the 0-based file row of each row read when
    ``where`` pruned row groups, else None)."""
    pq = import_optional("pyarrow.parquet", "Parquet", path, "pyarrow")
    try:
        f = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
    names = list(f.schema_arrow.names)
    need = choose(names)
    rows = None
    if where is None:
        table = f.read(columns=need)
    else:    # pushdown: only the row groups whose statistics allow a match are read; the
        # caller then applies where.mask, so that every format selects the same rows
        groups = parquet_groups_passing(path, where, names)
        table = f.read_row_groups(groups, columns=need)
        if len(groups) < f.num_row_groups:
            sizes = [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)]
            starts = np.concatenate([[0], np.cumsum(sizes)])
            rows = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups]
                                  + [np.zeros(0, np.int64)]).astype(np.int64)
    return names, arrow_columns(table, need), rows


def parquet_groups_passing(path, where, columns):
    """Row groups of a Parquet file whose min / max statistics do not rule ``where`` out
    (groups without statistics are kept; ``not`` never prunes).  Reads only the footer.
    (pyarrow.dataset would do this too, but importing it imports pandas: half a second.)"""
    pq = import_optional("pyarrow.parquet", "Parquet", path, "pyarrow")
    where.check(columns, path)
    meta = pq.ParquetFile(path).metadata
    index = {meta.schema.column(j).name: j for j in range(meta.num_columns)}
    keep = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        if _may_match(where.tree, lambda name: _stats(rg, index.get(name))):
            keep.append(g)
    return keep


def _stats(rg, j):
    """(min, max) of a column in a row group, or None when unknown."""
    if j is None:
        return None
    st = rg.column(j).statistics
    if st is None or not st.has_min_max:
        return None
    return st.min, st.max


def _may_match(node, stats):
    """False only when the statistics prove no row of the group can pass ``node``."""
    kind = node[0]
    if kind == "and":
        return _may_match(node[1], stats) and _may_match(node[2], stats)
    if kind == "or":
        return _may_match(node[1], stats) or _may_match(node[2], stats)
    if kind == "not":
        return True
    _, op, name, value = node
    mm = stats(name)
    if mm is None:
        return True
    lo, hi = mm
    try:
        return {"<": lo < value, "<=": lo <= value, ">": hi > value, ">=": hi >= value,
                "==": lo <= value <= hi, "!=": not lo == hi == value}[op]
    except TypeError:          # statistics of another type (bytes, dates): do not prune
        return True


def catalog_columns(path, format=None):
    """The column names of a catalog file (header of a CSV, fields of a structured .npy,
    columns of a FITS table or Parquet file)."""
    path = Path(os.fspath(path))
    fmt = catalog_format(path, format)
    if fmt == "npy":
        arr = open_npy_catalog(path, mmap_mode="r")
        return list(arr.dtype.names) if arr.dtype.names else \
            [str(k) for k in range(arr.shape[1])]
    if fmt == "parquet":
        pq = import_optional("pyarrow.parquet", "Parquet", path, "pyarrow")
        return list(pq.ParquetFile(path).schema_arrow.names)
    if fmt == "fits":
        return FitsTable(path).columns           # the header only
    try:
        return csv_header(path)[0]
    except ValueError:
        return []


def read_npy_columns(path, mmap_mode=None):
    """(column names, {column: NumPy array}) of a .npy catalog: the fields of a structured
    array, or the columns "0", "1", ... of a 2-D numeric array (views, no copy; of the
    memory-mapped file with ``mmap_mode="r"``, read only where they are used)."""
    arr = open_npy_catalog(path, mmap_mode=mmap_mode)
    if arr.dtype.names:
        if arr.ndim != 1:
            arr = arr.reshape(-1)
        return list(arr.dtype.names), {n: arr[n] for n in arr.dtype.names}
    names = [str(k) for k in range(arr.shape[1])]
    return names, {n: arr[:, k] for k, n in enumerate(names)}


def open_npy_catalog(path, mmap_mode=None):
    """The array of a .npy catalog, checked: a structured array, or a 2-D numeric one; else
    a ValueError naming the path and what was expected (catalog_columns' header check
    opens it memory-mapped, the reader in memory: the same checks for both)."""
    try:
        with open(path, "rb") as f:     # NumPy takes any other file for a pickle, and says
            magic = f.read(6)           # to load it unsafely
        if magic != b"\x93NUMPY" and not zipfile.is_zipfile(path):
            raise ValueError(f"it does not start with NumPy's magic string, got {magic!r}")
        arr = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc}); expected a 2-D numeric "
                         "array or a structured array with named fields") from None
    if isinstance(arr, np.lib.npyio.NpzFile):  # an .npz renamed, or read with --format npy
        arr.close()
        raise ValueError(f"{path}: an .npz archive, expected a single .npy array")
    if arr.dtype.names:
        return arr
    if arr.ndim != 2:
        raise ValueError(f"{path}: a plain .npy catalog must be a 2-D array (rows, columns), "
                         f"got shape {arr.shape}; or use a structured array with named fields")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: a plain .npy catalog must be numeric, got dtype {arr.dtype}")
    return arr


# =======================================================================================
# where: a row filter such as  class == 'QSO' and r < 21
_TOKEN = re.compile(r"""\s*(?:
    (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<op>==|!=|<=|>=|<|>|\(|\))
  | (?P<name>[A-Za-z_][A-Za-z0-9_.]*|`[^`]+`)
)""", re.VERBOSE)
# the rest of a name a-b written without spaces or back-quotes (u-g, psfMag_u-psfMag_g)
_PLAIN_COLOUR = re.compile(r"(?:-[A-Za-z_][A-Za-z0-9_.]*)+")
_KEYWORDS = ("and", "or", "not")     # the where grammar's words, never a column name
_OPS = {"==": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__",
        ">=": "__ge__"}


class Where:
    """A parsed ``where`` filter: comparisons ``column OP value`` (OP one of == != < <= > >=,
    value a number or a quoted string; either side may be the column) joined by ``and``,
    ``or``, ``not`` and parentheses, e.g. ``"class == 'QSO' and r < 21"``.  Back-quotes name a
    column with other characters (```u-g` < 0.6``); a name ``a-b`` written without spaces
    needs none.  Parsed by a small recursive-descent parser: nothing is evaluated as Python.

    A name ``a-b`` that is not a column of the catalog is the colour a - b of the columns a
    and b, as a feature ``a-b`` is (fastmlp.features.resolve_features): ``u-g > 0.5``.

    A comparison on a missing value (NaN, +-inf, null, or SDSS's -9999 in a numeric column:
    features.missing_mask, as the catalog loaders read it) is unknown and the row is left out,
    with SQL's three-valued logic (``not`` of unknown is unknown), the rule pyarrow applies
    to nulls (``column == -9999``, which would select no row, is refused).  A colour is
    missing where either magnitude is NaN, inf, null or -9999.
    ``names``: the names as written; ``columns``: the columns it reads (after :meth:`check`
    against a catalog's columns, a colour's two magnitude columns in place of its name);
    ``mask(cols)`` the rows kept from a {name: NumPy array} chunk."""

    def __init__(self, text):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"where must be a non-empty filter expression such as "
                             f"\"class == 'QSO' and r < 21\", got {text!r}")
        self.text = text
        self._tokens = _tokenize(text)
        self._pos = 0
        self.tree = self._or()
        if self._pos != len(self._tokens):
            self._fail(f"unexpected {self._tokens[self._pos][1]!r}")
        self.names = sorted(set(_tree_columns(self.tree)))
        self.columns = list(self.names)
        self.colours = {}        # {name: (a, b)} of the colours, found by check

    def __repr__(self):
        return f"Where({self.text!r})"

    # -- parser --------------------------------------------------------------------------
    def _fail(self, why):
        raise ValueError(f"where {self.text!r}: {why}; expected comparisons such as "
                         "r < 21 or class == 'QSO' joined by and / or / not")

    def _peek(self):
        return self._tokens[self._pos] if self._pos < len(self._tokens) else (None, None)

    def _take(self):
        tok = self._peek()
        if tok[0] is None:
            self._fail("the expression ends too early")
        self._pos += 1
        return tok

    def _or(self):
        node = self._and()
        while self._peek() == ("name", "or"):
            self._pos += 1
            node = ("or", node, self._and())
        return node

    def _and(self):
        node = self._not()
        while self._peek() == ("name", "and"):
            self._pos += 1
            node = ("and", node, self._not())
        return node

    def _not(self):
        if self._peek() == ("name", "not"):
            self._pos += 1
            return ("not", self._not())
        if self._peek() == ("op", "("):
            self._pos += 1
            node = self._or()
            if self._peek() != ("op", ")"):
                self._fail("a '(' is not closed")
            self._pos += 1
            return node
        return self._comparison()

    def _comparison(self):
        left, (kind, op) = self._operand(), self._take()
        if kind != "op" or op not in _OPS:
            self._fail(f"{op!r} is not a comparison (== != < <= > >=)")
        right = self._operand()
        if (left[0] == "col") == (right[0] == "col"):
            self._fail("each comparison needs one column and one value")
        if left[0] != "col":     # 21 > r  ->  r < 21
            op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
            left, right = right, left
        self._refuse_sentinel_equality(op, left[1], right[1])
        return ("cmp", op, left[1], right[1])

    def _refuse_sentinel_equality(self, op, name, value):
        """``flag == -9999`` would select no row, silently: -9999 is read as missing, so the
        comparison is unknown wherever the column holds it."""
        if op == "==" and not isinstance(value, str) and value in MISSING_VALUES:
            self._fail(f"{name} == {value}: {value} is read as a missing value, so the "
                       "comparison is unknown on such rows and selects none; to keep the "
                       f"rows with a value, write {name} != {value}")

    def _operand(self):
        kind, text = self._take()
        if kind == "num":     # an integer literal stays exact (ids above 2**53)
            return ("val", int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text))
        if kind == "str":
            return ("val", text[1:-1])
        if kind == "name" and text not in _KEYWORDS:
            return ("col", text.strip("`"))
        self._fail(f"expected a column or a value, got {text!r}")

    # -- use -----------------------------------------------------------------------------
    def check(self, columns, path="catalog"):
        """Refuse (ValueError, naming the available columns) a name that is neither a column
        nor a colour a-b of two columns; set ``columns`` to the columns to read."""
        columns = list(columns)
        missing = [c for c in self.names
                   if c not in columns and colour_sources(c, columns) is None]
        if missing:
            hint = ""
            if any("-" in m for m in missing):
                hint = " (a colour 'a-b' needs a column 'a-b' or magnitude columns 'a' and 'b')"
            raise ValueError(f"{path}: where {self.text!r} names column(s) {missing} not in "
                             f"the catalog{hint}; available columns: {columns}")
        self.colours = {name: colour_sources(name, columns) for name in self.names
                        if name not in columns}
        read = [c for name in self.names for c in self.colours.get(name, (name,))]
        self.columns = list(dict.fromkeys(read))

    def mask(self, cols, path="catalog", rows=None):
        """Boolean mask of the rows kept, from {column: NumPy array}; ``rows``: where they
        sit in the file (see float_column), for the error on a non-numeric value."""
        value, known = _eval(self.tree, cols, path, rows)
        return value & known


def colour_sources(name, columns):
    """(a, b) when ``name`` reads 'a-b' for two columns a and b (a colour such as u-g),
    split at its first '-' as resolve_features splits a feature; else None.  Whether a
    column called ``name`` comes first is the caller's choice."""
    a, sep, b = name.partition("-")
    return (a, b) if sep and a in columns and b in columns else None


def parse_where(where):
    """None, a :class:`Where`, or a filter string -> Where or None."""
    if where is None or isinstance(where, Where):
        return where
    return Where(where)


def _tokenize(text):
    tokens, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            _fail_on_unquoted_minus(text, tokens, pos)
            raise ValueError(f"where {text!r}: cannot read {text[pos:].strip()[:20]!r}; "
                             "expected column names, numbers, quoted strings, == != < <= > "
                             ">=, and / or / not and parentheses")
        kind, pos = m.lastgroup, m.end()
        token = m.group(kind)
        if kind == "name" and token[0] != "`" and token not in _KEYWORDS:
            colour = _PLAIN_COLOUR.match(text, pos)     # u-g: a colour (or a column so named)
            if colour is not None:
                token, pos = token + colour.group(), colour.end()
        tokens.append((kind, token))
    if not tokens:
        raise ValueError(f"where {text!r} is empty")
    return tokens


def _fail_on_unquoted_minus(text, tokens, pos):
    """The error for a column name such as u-g written without back-quotes: the tokenizer
    stops at its '-' (or '+'), and the filter does no arithmetic to read it otherwise."""
    rest = re.match(r"\s*[-+]\s*[A-Za-z_][A-Za-z0-9_.]*", text[pos:])
    if rest is None:
        return
    if not tokens or tokens[-1][0] != "name" or tokens[-1][1] in _KEYWORDS:
        # a sign before a name that does not continue a column name ('and -g < 1',
        # 'not -x > 1', '< -g'): a negated column, which the filter cannot compute
        signed = "".join(rest.group().split())
        raise ValueError(f"where {text!r}: cannot read {signed!r}: a sign goes only before "
                         "a number (the filter compares columns with values; it does no "
                         "arithmetic); a column whose name holds a minus or plus sign goes "
                         "in back-quotes")
    if tokens[-1][1][0] == "`":
        return
    name = tokens[-1][1] + "".join(rest.group().split())
    start = pos - len(tokens[-1][1])
    quoted = f"{text[:start]}`{name}`{text[pos + rest.end():]}".strip()
    raise ValueError(f"where {text!r}: cannot read the column {name!r}: a column name "
                     f"holding a minus or plus sign goes in back-quotes: {quoted!r} (the "
                     "filter compares columns, and colours a-b of two columns, with values; "
                     "it does no other arithmetic)")


def _tree_columns(node):
    if node[0] == "cmp":
        return [node[2]]
    return [c for sub in node[1:] for c in _tree_columns(sub)]


def _eval(node, cols, path, rows=None):
    """(value, known) boolean arrays: Kleene logic, like SQL and pyarrow."""
    kind = node[0]
    if kind == "cmp":
        column = _named_values(node[2], cols, path, rows)
        return _compare(node[1], column, node[2], node[3], path, rows)
    if kind == "not":
        v, k = _eval(node[1], cols, path, rows)
        return ~v, k
    (av, ak), (bv, bk) = _eval(node[1], cols, path, rows), _eval(node[2], cols, path, rows)
    if kind == "and":
        return av & bv, (ak & bk) | (ak & ~av) | (bk & ~bv)
    return av | bv, (ak & bk) | (ak & av) | (bk & bv)


def _named_values(name, cols, path, rows=None):
    """The column ``name`` of a chunk, else the colour a - b of its columns a and b: NaN (a
    missing value, so the comparison is unknown) where either magnitude is missing."""
    if name in cols:
        return cols[name]
    sources = colour_sources(name, cols)
    if sources is None:
        raise ValueError(f"{path}: where needs the column {name!r} (or, for a colour 'a-b', "
                         f"columns 'a' and 'b'), got columns {list(cols)}")
    a, b = (float_column(cols[c], c, path, rows) for c in sources)
    known = ~missing_mask(a) & ~missing_mask(b)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(known, a - b, np.nan)


def _compare(op, column, name, value, path, rows=None):
    a = np.asarray(column)
    if isinstance(value, str):
        if a.dtype.kind in "biuf":
            raise ValueError(f"where: column {name!r} is numeric, compared with the string "
                             f"{value!r}")
        s = text_column(a)
        return getattr(s, _OPS[op])(value), s != ""
    if a.dtype.kind in "iu" and isinstance(value, int):        # exact, no NaN
        return getattr(a, _OPS[op])(value), ~missing_mask(a)
    if a.dtype.kind not in "biuf":
        try:        # numbers written as text are fine; names are not (the filter's mistake)
            a = float_column(a, name, path, rows)
        except ValueError as exc:
            raise ValueError(f"where: compares column {name!r} with the number {value!r}, "
                             f"but {exc}") from None
    a = a.astype(np.float64, copy=False)
    # missing as the features read it (NaN, +-inf, -9999): r < 18 selected a row with
    # r = -9999 or -inf that the features then refused
    known = ~missing_mask(a)
    with np.errstate(invalid="ignore"):
        return getattr(a, _OPS[op])(value), known
