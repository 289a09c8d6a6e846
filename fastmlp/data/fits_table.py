"""A FITS binary table read by rows from the file, with memory bounded by the rows read.

astropy parses the headers only (:class:`FitsTable` never touches ``hdu.data``); a block of
rows is then one seek + one read into a big-endian record array, and each column needed is
converted from it (byte swap, TSCAL / TZERO, TNULL, logical, text) into an array of its
own.  Why not astropy's memory-mapped ``hdu.data``:

* every page of the map that a read touches counts in the process's resident memory until
  the map is closed, so a pass over a 10M-row table grew the process with the file;
* closing the file copies every column of the whole table whose ``Column`` object is still
  alive (``FITS_rec.__del__``), which the column descriptions (``hdu.columns``) always are.

Tables this does not cover (ASCII tables, variable-length array columns, whose values live
in the heap after the rows) say so with ``direct`` False; callers then use astropy, except
for the 0-row columns of an ASCII table (:meth:`FitsTable.empty`, from the header: astropy
fails converting an ASCII table of no rows).
"""

import numpy as np

from .._validate import counted
from .decompressed import SeekableSource
from .optional_deps import import_optional


def fits_table_index(hdul, path, hdu=None):
    """The index in the open HDU list ``hdul`` of the table HDU to read: ``hdu`` (an index or
    an extension name, which must name a table) or, when None, the first table HDU; a
    ValueError naming ``path`` and its table HDUs otherwise."""
    fits = import_optional("astropy.io.fits", "FITS", path, "astropy")
    tables = [k for k, h in enumerate(hdul)
              if isinstance(h, (fits.BinTableHDU, fits.TableHDU))]
    if hdu is not None:
        listed = ", ".join(f"{k} {hdul[k].name!r}" for k in tables) or "none"
        try:
            h = hdul[hdu]
        except (KeyError, IndexError):
            raise ValueError(f"hdu={hdu!r}: {path} has no HDU {hdu!r}; its table HDUs: "
                             f"{listed} (give one's index or name)") from None
        if not isinstance(h, (fits.BinTableHDU, fits.TableHDU)):
            raise ValueError(f"hdu={hdu!r}: HDU {hdu!r} of {path} is not a table; its table "
                             f"HDUs: {listed} (give one's index or name)")
        return hdul.index_of(hdu) if not isinstance(hdu, int) else hdu
    if not tables:
        raise ValueError(f"{path}: no table extension in this FITS file (expected a binary "
                         "or ASCII table HDU)")
    return tables[0]


#: rows per read when a whole table is loaded (~ a few tens of MB of records at a time)
LOAD_BLOCK_ROWS = 262_144


class FitsTable:
    """The layout of one table HDU of ``path`` (``hdu``: index or name, None: the first
    table): ``columns`` (names), ``n_rows``, ``index`` (the HDU's number), ``ascii`` (an
    ASCII table) and, for a binary table of fixed-width columns, ``offset`` (byte where the
    rows start), ``dtype`` (the big-endian record) and ``direct`` True.  ``source``: the
    file's bytes that rows are read from (a :class:`~fastmlp.data.decompressed.SeekableSource`,
    shared with the stream's reader: a ``.fits.gz`` read in any order is decompressed once)."""

    def __init__(self, path, hdu=None):
        fits = import_optional("astropy.io.fits", "FITS", path, "astropy")
        self.path = path
        self.source = SeekableSource(path)
        try:
            hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a readable FITS file ({exc})") from None
        with hdul:
            self.index = fits_table_index(hdul, path, hdu)
            h = hdul[self.index]
            coldefs = h.columns                  # from the header: no data is read
            self.columns = list(coldefs.names)
            self.n_rows = int(h.header.get("NAXIS2", 0))
            row_bytes = int(h.header.get("NAXIS1", 0))
            heap = any(str(c.format).lstrip("0123456789")[:1] in ("P", "Q") for c in coldefs)
            self.direct = isinstance(h, fits.BinTableHDU) and not heap
            self.ascii = isinstance(h, fits.TableHDU)
            self.offset = int(h._data_offset)    # astropy's byte offset of the data block
            self._info = {c.name: (c.bscale, c.bzero, c.null, str(c.format))
                          for c in coldefs}
            if self.direct:
                self.dtype = coldefs.dtype.newbyteorder(">")
                if self.dtype.itemsize != row_bytes:    # a layout we do not understand
                    self.direct = False
            # what empty() builds 0-row columns from: a binary table's record; an ASCII
            # table's fields as astropy converts them ('f8', 'i4', 'S6')
            self._record = self.dtype if self.direct else np.dtype(
                [(c.name, c.format.recformat) for c in coldefs]) if self.ascii else None

    def read_rows(self, fh, start, m, need):
        """{column: array} of rows [start, start + m) of the columns ``need``, read from the
        open file ``fh`` (``source.open(...)``)."""
        fh.seek(self.offset + start * self.dtype.itemsize)
        raw = fh.read(m * self.dtype.itemsize)
        if len(raw) != m * self.dtype.itemsize:
            raise ValueError(f"{self.path}: truncated or corrupt FITS table (the header "
                             f"announces {counted(self.n_rows, 'row')}; the file ends after "
                             f"{start + len(raw) // self.dtype.itemsize})")
        records = np.frombuffer(raw, dtype=self.dtype, count=m)
        return {n: self.column(records[n], n) for n in need}

    def load(self, need):
        """{column: array} of every row of the columns ``need``, read block by block: the
        memory is the columns plus one block of records."""
        out = {n: [] for n in need}
        with self.source.open() as fh:             # in file order: a gzip stream as it is
            for a in range(0, self.n_rows, LOAD_BLOCK_ROWS):
                block = self.read_rows(fh, a, min(LOAD_BLOCK_ROWS, self.n_rows - a), need)
                for n in need:
                    out[n].append(block[n])
        return {n: np.concatenate(parts) if parts else self.empty([n])[n]
                for n, parts in out.items()}

    def empty(self, need):
        """{column: 0-row array} of the columns ``need``, typed as read rows would be, from
        the header alone (astropy fails converting the columns of an ASCII table of no rows:
        "zero-size array to reduction operation maximum").  For a binary table of
        fixed-width columns or an ASCII table (not variable-length array columns)."""
        return {n: self.column(np.zeros(0, self._record)[n], n) for n in need}

    def column(self, field, name):
        """One raw big-endian record field -> the values astropy would give, native-endian
        in an array of its own: TZERO / TSCAL applied (the unsigned-integer convention
        gives unsigned integers), TNULL integers NaN, logical bool, text str."""
        bscale, bzero, null, fmt = self._info[name]
        if field.ndim != 1:
            raise ValueError(f"{self.path}: FITS column {name!r} is a vector column (shape "
                             f"{field.shape[1:]} per row); expected one value per row")
        kind = field.dtype.kind
        if fmt.endswith("L"):
            return field == ord("T")
        if kind == "S":
            return np.char.decode(field, "ascii", errors="replace")
        scale = bscale not in (None, 1)
        shift = bzero not in (None, 0)
        nulls = kind in "iu" and null is not None and not isinstance(null, str)
        if kind == "i" and not scale and shift and not nulls and \
                bzero == 2 ** (8 * field.dtype.itemsize - 1):
            # the FITS unsigned convention: flip the sign bit of the stored signed value
            unsigned = field.dtype.newbyteorder("=").str.replace("i", "u")
            return (field.astype(field.dtype.newbyteorder("=")).view(unsigned)
                    ^ np.array(bzero, unsigned))
        if nulls or scale or shift:
            values = field.astype(np.float64)
            if nulls:
                values[field == null] = np.nan
            if scale:
                values *= bscale
            if shift:
                values += bzero
            return values
        return field.astype(field.dtype.newbyteorder("="), copy=True)  # one swap, one copy
