"""Catalog file formats: CSV, .npy (plain or structured), FITS tables (astropy) and Parquet
(pyarrow), read into NumPy columns."""

import csv
import gzip
import io
import os
from pathlib import Path
import numpy as np

_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")



# =======================================================================================
# loading user catalogs
def _open_text(path):
    if str(path).endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, "r", encoding="utf-8-sig", newline="")



def _load_csv(path, choose):
    try:
        fh = _open_text(path)
    except OSError as exc:
        raise ValueError(f"{path}: cannot open: {exc}") from None
    with fh:
        reader = csv.reader(fh)
        header = None
        try:
            for row in reader:
                if not row or row[0].lstrip().startswith("#"):
                    continue
                header = [h.strip() for h in row]
                break
            if header is None:
                raise ValueError(f"{path}: empty file, expected a CSV header row and data rows")
            if len(set(header)) != len(header):
                dup = sorted({h for h in header if header.count(h) > 1})
                raise ValueError(f"{path}: duplicate column names {dup} in the CSV header")
            need = choose(header)
            idx = [header.index(c) for c in need]
            cols = [[] for _ in need]
            width = len(header)
            for row in reader:
                if len(row) != width:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue  # blank line
                    raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, "
                                     f"the header has {width} (ragged or malformed CSV)")
                for c, k in zip(cols, idx):
                    c.append(row[k])
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not a UTF-8 text CSV file ({exc.reason}); expected a "
                             "CSV with a header row, or a .npy file") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: malformed CSV near line {reader.line_num}: {exc}") \
                from None
    return header, {n: np.asarray(c, dtype=object) for n, c in zip(need, cols)}



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
    if name.endswith(_FITS_SUFFIXES):
        return "fits"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    return "csv"



def _optional(module, fmt, path, package):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"reading {fmt} catalogs ({path}) needs the optional dependency "
                          f"{package}: pip install 'fastmlp[catalogs]' (or pip install "
                          f"{package})") from None



def _fits_table_index(hdul, path, hdu=None):
    fits = _optional("astropy.io.fits", "FITS", path, "astropy")
    tables = [k for k, h in enumerate(hdul)
              if isinstance(h, (fits.BinTableHDU, fits.TableHDU))]
    if hdu is not None:
        try:
            h = hdul[hdu]
        except (KeyError, IndexError):
            raise ValueError(f"{path}: no HDU {hdu!r}; table HDUs: {tables}") from None
        if not isinstance(h, (fits.BinTableHDU, fits.TableHDU)):
            raise ValueError(f"{path}: HDU {hdu!r} is not a table; table HDUs: {tables}")
        return hdul.index_of(hdu) if not isinstance(hdu, int) else hdu
    if not tables:
        raise ValueError(f"{path}: no table extension in this FITS file (expected a binary "
                         "or ASCII table HDU)")
    return tables[0]



def _fits_column(hdu_data, col, name, path):
    """One FITS table column as a 1-D array; TNULL integers and blank strings -> missing."""
    a = np.asarray(hdu_data[name])
    if a.ndim != 1:
        raise ValueError(f"{path}: FITS column {name!r} is a vector column (shape "
                         f"{a.shape[1:]} per row); expected one value per row")
    if a.dtype.kind == "S":
        a = np.char.decode(a, "ascii", errors="replace").astype(object)
    elif a.dtype.kind in "iu":
        null = getattr(col, "null", None)
        if null is not None and not isinstance(null, str):
            f = a.astype(np.float64)
            f[a == null] = np.nan
            return f
    if a.dtype.byteorder not in ("=", "|"):
        a = a.astype(a.dtype.newbyteorder("="))
    return a



def _load_fits(path, choose, hdu=None):
    fits = _optional("astropy.io.fits", "FITS", path, "astropy")
    try:
        hdul = fits.open(path, memmap=not str(path).lower().endswith(".gz"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable FITS file ({exc})") from None
    with hdul:
        k = _fits_table_index(hdul, path, hdu)
        h = hdul[k]
        names = list(h.columns.names)
        need = choose(names)
        cols = {c.name: c for c in h.columns}
        data = {n: _fits_column(h.data, cols[n], n, path) for n in need} if h.data is not None \
            else {n: np.empty(0) for n in need}
    return names, data



def _arrow_to_numpy(col):
    """A pyarrow (Chunked)Array -> NumPy: nulls become NaN (numbers) or "" (strings)."""
    import pyarrow as pa
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        if col.null_count:
            import pyarrow.compute as pc
            col = pc.fill_null(col.cast(pa.float64()), float("nan"))
        return col.to_numpy()
    a = col.to_numpy(zero_copy_only=False)
    if a.dtype == object:
        a = np.asarray(["" if v is None else (v.decode() if isinstance(v, bytes) else v)
                        for v in a], dtype=object)
    return a



def _load_parquet(path, choose):
    pq = _optional("pyarrow.parquet", "Parquet", path, "pyarrow")
    try:
        f = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid / OSError
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
    names = list(f.schema_arrow.names)
    need = choose(names)
    table = f.read(columns=need)
    return names, {n: _arrow_to_numpy(table.column(n)) for n in need}



def catalog_columns(path, format=None):
    """The column names of a catalog file (header of a CSV, fields of a structured .npy,
    columns of a FITS table or Parquet file)."""
    path = Path(os.fspath(path))
    fmt = catalog_format(path, format)
    names = []

    def grab(cols):
        names.extend(cols)
        return []
    if fmt == "npy":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        return list(arr.dtype.names) if arr.dtype.names else \
            [str(k) for k in range(arr.shape[1])]
    if fmt == "parquet":
        pq = _optional("pyarrow.parquet", "Parquet", path, "pyarrow")
        return list(pq.ParquetFile(path).schema_arrow.names)
    if fmt == "fits":
        _load_fits(path, grab)
        return names
    with _open_text(path) as fh:
        for row in csv.reader(fh):
            if row and not row[0].lstrip().startswith("#"):
                return [h.strip() for h in row]
    return []



def _to_float(values, name, path):
    """Strings -> float64; empty fields become NaN (missing); a clear error otherwise."""
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    v = np.asarray(["" if s is None else str(s).strip() for s in values], dtype=object)
    v[v == ""] = "nan"
    try:
        return v.astype(np.float64)
    except ValueError:
        bad = []
        for k, s in enumerate(v):
            try:
                float(s)
            except ValueError:
                bad.append(k)
        raise ValueError(f"{path}: column {name!r} must be numeric but has {len(bad)} "
                         f"non-numeric values (first {v[bad[0]]!r} in data row {bad[0] + 1})"
                         ) from None



def _load_npy(path):
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc}); expected a 2-D numeric "
                         "array or a structured array with named fields") from None
    if isinstance(arr, np.lib.npyio.NpzFile):  # pragma: no cover - .npz renamed
        arr.close()
        raise ValueError(f"{path}: an .npz archive, expected a single .npy array")
    if arr.dtype.names:
        if arr.ndim != 1:
            arr = arr.reshape(-1)
        return list(arr.dtype.names), {n: arr[n] for n in arr.dtype.names}
    if arr.ndim != 2:
        raise ValueError(f"{path}: a plain .npy catalog must be a 2-D array (rows, columns), "
                         f"got shape {arr.shape}; or use a structured array with named fields")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: a plain .npy catalog must be numeric, got dtype {arr.dtype}")
    names = [str(k) for k in range(arr.shape[1])]
    return names, {n: arr[:, k] for k, n in enumerate(names)}
