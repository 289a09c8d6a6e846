"""Prediction tables written chunk by chunk to an open binary file: Parquet (pyarrow's
ParquetWriter, one row group per chunk), CSV (pyarrow's CSVWriter), FITS (a binary table
whose rows are written as big-endian records, NAXIS2 patched at the end) and .npy (a
structured array, the row count patched into the header at the end).  No per-row Python.

Each chunk is a dict {name: NumPy column}.  The caller names the column that holds one class
index per row (``label_column``, int, -1 = none), if any: it also gives a "class" column with
the class names (null / "" where the label is -1); no other column is taken for labels,
whatever its name (an id column called "label" beside a multilabel or regression output).  A writer
that got no chunk writes, on ``close(empty)``, the 0-row chunk ``empty``: an empty result
is still a readable table with every column.  ``abort()`` instead of ``close()`` after a
failure releases the writer quietly (the file is being thrown away)."""

import numpy as np

from .._validate import counted
from .formats import numpy_to_arrow, strings_to_arrow

__all__ = ["make_writer", "FORMATS"]

FORMATS = ("parquet", "csv", "fits", "npy")


def make_writer(fmt, fh, classes, path, text_widths=None, text_types=None,
                label_column=None):
    """A writer for ``fmt`` on the open binary file ``fh`` (write(cols), close(empty),
    abort()).  ``label_column``: the column of class indices (one class per row) after which
    a "class" column of their names is written; None: no such column.  ``text_widths``
    {column: UTF-8 bytes}: how wide FITS and .npy make a text column (default: its longest
    value in the first chunk).  ``text_types`` {column:
    pyarrow type}: the Arrow type Parquet writes a text column as (large_string, binary,
    large_binary; default string), e.g. the type the column was read with."""
    cls = {"parquet": _ParquetOut, "csv": _CsvOut, "fits": _FitsOut, "npy": _NpyOut}.get(fmt)
    if cls is None:
        raise ValueError(f"output format must be one of {FORMATS}, got {fmt!r}")
    out = cls(fh, [str(c) for c in classes], path)
    out.label_column = label_column
    out.text_widths = dict(text_widths or {})
    out.text_types = dict(text_types or {})
    return out


def _empty_table(empty, path):
    """close() without a chunk written: the 0-row chunk that gives the table its columns."""
    if empty is None:
        raise ValueError(f"{path}: no rows were written and no empty chunk was given for the "
                         "columns; a table without columns cannot be written")
    return empty


def _with_class(cols, label_column):
    """Insert "class" after ``label_column`` (the caller's column of class indices, None: no
    such column).  Returns (the columns, the names of the derived class columns): any other
    column, whatever its name, is an ordinary one."""
    if label_column is None:
        return cols, ()
    if label_column not in cols:
        raise ValueError(f"the label column {label_column!r} is not among the columns "
                         f"written ({', '.join(map(str, cols))})")
    if "class" in cols:
        raise ValueError(f"a prediction table cannot hold a column 'class' beside "
                         f"{label_column!r} (the class names of the labels are written there)")
    out = {}
    for k, v in cols.items():
        out[k] = v
        if k == label_column:
            out["class"] = v
    return out, ("class",)


class _ArrowWriterOut:
    """What the two pyarrow writers share: close (a 0-row table with every column when
    nothing was written) and abort."""

    def close(self, empty=None):
        if self._w is None:
            self.write(_empty_table(empty, self.path))
        self._w.close()

    def abort(self):
        _abort(self)


class _ParquetOut(_ArrowWriterOut):
    def __init__(self, fh, classes, path):
        self.fh, self.classes, self.path, self._w = fh, classes, path, None

    def _table(self, cols):
        import pyarrow as pa
        arrays = {}
        cols, derived = _with_class(cols, self.label_column)
        for k, v in cols.items():
            if k in derived:             # dictionary-encoded: one small dictionary per chunk
                arrays[k] = _class_array(v, self.classes)
            else:
                arrays[k] = _plain_array(v, self.text_types.get(k))
        return pa.table(arrays)

    def write(self, cols):
        import pyarrow.parquet as pq
        t = self._table(cols)
        if self._w is None:
            self._w = pq.ParquetWriter(self.fh, t.schema)
        self._w.write_table(t)



def _abort(out):
    """Close a pyarrow writer after a failure, ignoring what it raises: left open, its
    __del__ would close it later, writing to the file already closed and removed
    ('Exception ignored in ParquetWriter.__del__ ... write to closed file')."""
    w, out._w = out._w, None
    if w is not None:
        try:
            w.close()
        except Exception:  # noqa: BLE001 - the output is discarded; the first error stands
            pass


class _CsvOut(_ArrowWriterOut):
    """CSV through pyarrow.csv.CSVWriter: missing probabilities are empty fields, "valid"
    is written True / False (as Python and pandas print it).  Text is quoted (every text
    field: pyarrow's "needed") when a class name or a text column (an id) may hold a comma,
    a quote or a line break; unquoted otherwise."""

    def __init__(self, fh, classes, path):
        self.fh, self.classes, self.path, self._w = fh, classes, path, None
        plain = all(not any(ch in c for ch in ',"\n\r') for c in classes)
        self._quoting = "none" if plain else "needed"

    def _table(self, cols):
        import pyarrow as pa
        arrays = {}
        cols, derived = _with_class(cols, self.label_column)
        for k, v in cols.items():
            if k in derived:
                arrays[k] = _class_array(v, self.classes).cast(pa.string())   # null -> ""
            elif k == "valid":
                arrays[k] = pa.DictionaryArray.from_arrays(
                    numpy_to_arrow(v.astype(np.int32)), _FALSE_TRUE()).cast(pa.string())
            elif v.dtype.kind == "f" and not np.ma.isMaskedArray(v):
                arrays[k] = numpy_to_arrow(v, null=np.isnan(v))         # NaN -> null -> ""
            else:
                arrays[k] = _plain_array(v)                             # null -> ""
        return pa.table(arrays)

    def write(self, cols):
        import pyarrow.csv as pcsv
        t = self._table(cols)
        if self._w is None:
            self.fh.write((",".join(_csv_name(n) for n in t.column_names) + "\n").encode())
            derived = _with_class(cols, self.label_column)[1]
            # a later chunk's id may hold a comma: "none" would fail there (pyarrow refuses)
            text = any(np.asarray(v).dtype.kind in "USO" for k, v in cols.items()
                       if k not in derived)
            opts = pcsv.WriteOptions(include_header=False,
                                     quoting_style="needed" if text else self._quoting)
            self._w = pcsv.CSVWriter(self.fh, t.schema, write_options=opts)
        self._w.write_table(t)



def _plain_array(v, text_type=None):
    """A column (a masked array: null where masked) -> a pyarrow Array of its own type;
    text as plain strings (an id column is not worth a dictionary) of ``text_type``
    (default string: NumPy str does not say which Arrow text type it was read from)."""
    import pyarrow as pa
    null = np.ma.getmaskarray(v) if np.ma.isMaskedArray(v) else None
    a = numpy_to_arrow(np.ma.getdata(v), null=null)
    return a.cast(text_type or pa.string()) if pa.types.is_dictionary(a.type) else a


def _FALSE_TRUE():
    return strings_to_arrow(["False", "True"])


def _class_array(labels, classes):
    """Labels (-1: none) -> a dictionary array of the class names, null where -1."""
    import pyarrow as pa
    idx = numpy_to_arrow(np.maximum(labels, 0).astype(np.int32), null=labels < 0)
    return pa.DictionaryArray.from_arrays(idx, strings_to_arrow(classes))


def _csv_name(name):
    """A header field as RFC 4180 quotes it: in quotes, each quote doubled, when it holds a
    comma, a quote or a line break (pandas and pyarrow then read the name back exactly)."""
    if any(ch in name for ch in ',"\n\r'):
        return '"' + name.replace('"', '""') + '"'
    return name


class _RecordOut:
    """Shared by FITS and .npy: each chunk becomes one structured array of fixed dtype.
    A text column (e.g. a text id) takes its width from ``text_widths`` or else from its
    longest value in the first chunk; a longer value in a later chunk is an error, never
    cut short.  These formats hold no nulls: a null (masked) id is written as "" or 0."""

    def __init__(self, fh, classes, path):
        self.fh, self.classes, self.path = fh, classes, path
        self.dtype, self.rows, self._derived = None, 0, ()
        width = max([len(c.encode()) for c in classes] + [1])
        self._names = np.asarray([c.encode() for c in classes] + [b""], dtype=f"S{width}")

    def _records(self, cols, byteorder):
        cols = {k: np.ma.getdata(v) for k, v in cols.items()}     # nulls: their fill value
        cols, derived = _with_class(cols, self.label_column)
        if self.dtype is None:
            self._derived = derived
            self.dtype = np.dtype([(k, self._field_dtype(k, v, byteorder))
                                   for k, v in cols.items()])
        n = len(next(iter(cols.values())))
        rec = np.empty(n, dtype=self.dtype)
        for k, v in cols.items():
            v = self._field(k, v)
            if k not in self._derived and v.dtype.kind in "US":
                self._check_width(k, v)
            rec[k] = v
        self.rows += n
        return rec

    def abort(self):
        """Nothing to release: records go straight to the file."""

    def _check_width(self, k, v):
        width = self.dtype[k].itemsize // (4 if self.dtype[k].kind == "U" else 1)
        lengths = np.char.str_len(v) if v.size else np.zeros(0, int)
        if v.size and int(lengths.max()) > width:
            at = int(np.argmax(lengths > width))
            value = v[at].decode("utf-8", "replace") if v.dtype.kind == "S" else str(v[at])
            unit = "byte" if v.dtype.kind == "S" else "character"
            raise ValueError(f"{self.path}: output row {self.rows + at}: column {k!r} holds "
                             f"{value!r}, {counted(int(lengths[at]), unit)} long, but the column "
                             f"was made {counted(width, unit)} wide in this fixed-width format; "
                             "write .parquet or .csv instead")

    def _field(self, k, v):
        if k in self._derived:
            return self._names[np.where(v < 0, len(self.classes), v)]
        return self._text(v) if np.asarray(v).dtype.kind == "U" else v

    def _text(self, v):
        """FITS stores text as bytes (UTF-8)."""
        return np.char.encode(v, "utf-8")

    def _field_dtype(self, k, v, byteorder):
        if k in self._derived:
            return self._names.dtype
        v = np.asarray(v)
        if v.dtype.kind in "US":
            v = self._field(k, v)
            width = int(np.char.str_len(v).max()) if v.size else 0
            width = max(width, self.text_widths.get(k, 0), 1)
            return np.dtype(f"{v.dtype.kind}{width}")
        dt = v.dtype
        return dt.newbyteorder(byteorder) if dt.itemsize > 1 else dt


class _NpyOut(_RecordOut):
    """A structured .npy; the header is written with room for any row count and rewritten
    with the real count at the end (the file must be seekable)."""

    def __init__(self, fh, classes, path):
        super().__init__(fh, classes, path)
        self._class_str = np.asarray(classes + [""])

    def write(self, cols):
        first = self.dtype is None
        rec = self._records(cols, "<")
        if first:
            self._header_size = len(_npy_header(self.dtype, 10 ** 18))
            self.fh.write(_npy_header(self.dtype, 10 ** 18, self._header_size))
        self.fh.write(rec.tobytes())

    def _field(self, k, v):
        return self._class_str[np.where(v < 0, len(self.classes), v)] if k in self._derived \
            else v

    def _text(self, v):
        return v

    def _field_dtype(self, k, v, byteorder):
        if k in self._derived:
            return np.dtype(f"U{max([len(c) for c in self.classes] + [1])}")
        return super()._field_dtype(k, v, byteorder)

    def close(self, empty=None):
        if self.dtype is None:
            self.write(_empty_table(empty, self.path))
        end = self.fh.tell()
        self.fh.seek(0)
        self.fh.write(_npy_header(self.dtype, self.rows, self._header_size))
        self.fh.seek(end)


def _npy_header(dtype, n, size=None):
    """A .npy version 2.0 header for a 1-D structured array of n rows, padded with spaces
    to ``size`` bytes (a multiple of 64), so that a later rewrite fits the same space."""
    d = "{'descr': %r, 'fortran_order': False, 'shape': (%d,), }" % (
        np.lib.format.dtype_to_descr(dtype), n)
    body = d.encode("latin1")
    size = size or -(-(12 + len(body) + 1) // 64) * 64
    pad = size - 12 - len(body) - 1
    if pad < 0:
        raise ValueError("npy header does not fit its reserved space")
    header = body + b" " * pad + b"\n"
    return b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header


def fits_name_clash(names):
    """The first two of the column ``names`` that differ only in case ('p_QSO', 'p_qso'),
    as a tuple, or None: FITS column names are case-insensitive, so a reader asking for
    either gets the first (fastmlp predict names such class columns apart beforehand)."""
    seen = {}
    for name in names:
        if name.casefold() in seen:
            return seen[name.casefold()], name
        seen[name.casefold()] = name
    return None


class _FitsOut(_RecordOut):
    """A FITS file: an empty primary HDU and a binary table.  Rows are written as big-endian
    records as they come; the table header (NAXIS2) is rewritten at the end."""

    _FORMS = {"i1": "B", "i2": "I", "i4": "J", "i8": "K", "u1": "B", "f4": "E", "f8": "D",
              "b1": "L"}

    def write(self, cols):
        first = self.dtype is None
        rec = self._records(cols, ">")
        if first:
            clash = fits_name_clash(rec.dtype.names)   # refused before anything is written
            if clash:
                raise ValueError(f"{self.path}: the columns {clash[0]!r} and {clash[1]!r} "
                                 "differ only in case, which FITS column names do not tell "
                                 "apart; name them apart, or write .parquet, .csv or .npy")
            self.fh.write(self._primary())
            self._table_at = self.fh.tell()
            self.fh.write(self._header(0))
        self.fh.write(self._encode(rec).tobytes())

    def _encode(self, rec):
        """Booleans become FITS logicals, the bytes 'T' / 'F'."""
        out = np.empty(len(rec), dtype=self._disk_dtype())
        for k in rec.dtype.names:
            out[k] = np.where(rec[k], ord("T"), ord("F")) if rec.dtype[k].kind == "b" \
                else rec[k]
        return out

    def _disk_dtype(self):
        return np.dtype([(k, "i1" if self.dtype[k].kind == "b" else self.dtype[k])
                         for k in self.dtype.names])

    def _primary(self):
        from astropy.io import fits
        return fits.PrimaryHDU().header.tostring().encode("ascii")

    def _header(self, n):
        from astropy.io import fits
        cols = []
        for k in self.dtype.names:
            dt = self.dtype[k]
            form = f"{dt.itemsize}A" if dt.kind == "S" else self._FORMS[dt.kind + str(
                dt.itemsize) if dt.kind != "b" else "b1"]
            cols.append(fits.Column(name=k, format=form))
        h = fits.BinTableHDU.from_columns(cols, nrows=0).header
        h["NAXIS2"] = n
        return h.tostring().encode("ascii")

    def close(self, empty=None):
        if self.dtype is None:
            self.write(_empty_table(empty, self.path))
        data = self.rows * self._disk_dtype().itemsize
        self.fh.write(b"\0" * (-data % 2880))
        end = self.fh.tell()
        self.fh.seek(self._table_at)
        self.fh.write(self._header(self.rows))
        self.fh.seek(end)
