"""Catalog formats: round trips with missing values, big-endian FITS, Parquet row groups
larger than a chunk, chunk counts, the where filter and empty chunks after it."""

import numpy as np
import pytest

from fastmlp.data import CatalogStream, load_catalog
from fastmlp.data.formats import Where, csv_line_index, parse_where

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
fits = pytest.importorskip("astropy.io.fits")

N = 1000


@pytest.fixture(scope="module")
def cat():
    rng = np.random.default_rng(3)
    mags = {b: rng.uniform(15, 23, N) for b in "ugriz"}
    mags["g"][[3, 400]] = [np.nan, -9999.0]
    cls = np.array(["STAR", "QSO", "GALAXY"])[rng.integers(0, 3, N)]
    return mags, cls, np.arange(N, dtype=np.int64) + 10 ** 17


def write(tmp, fmt, mags, cls, ids, row_group=N):
    p = tmp / f"c.{fmt}"
    if fmt == "parquet":
        g = pa.array(mags["g"], mask=np.isnan(mags["g"]))        # a real null, not a NaN
        t = pa.table({"u": mags["u"], "g": g, **{b: mags[b] for b in "riz"}, "class": cls,
                      "objid": ids})
        pq.write_table(t, p, row_group_size=row_group)
    elif fmt == "fits":   # FITS is big-endian on disk: every column must be byte-swapped
        cols = [fits.Column(name=b, format="D", array=mags[b]) for b in "ugriz"]
        cols += [fits.Column(name="class", format="6A", array=cls),
                 fits.Column(name="objid", format="K", array=ids)]
        fits.BinTableHDU.from_columns(cols).writeto(p)
    elif fmt == "npy":
        rec = np.zeros(N, [(b, ">f8") for b in "ugriz"] + [("class", "U6"), ("objid", "i8")])
        for b in "ugriz":
            rec[b] = mags[b]
        rec["class"], rec["objid"] = cls, ids
        np.save(p, rec)
    else:
        with open(p, "w") as f:
            f.write("# comment line\nu,g,r,i,z,class,objid\n")
            for k in range(N):
                vals = ["" if np.isnan(mags[b][k]) else repr(float(mags[b][k])) for b in "ugriz"]
                f.write(",".join(vals) + f", {cls[k]} ,{ids[k]}\n")
                if k == 500:
                    f.write("\n")                                 # a blank line is skipped
    return p


FORMATS = ["csv", "parquet", "fits", "npy"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_with_missing_values(tmp_path, cat, fmt):
    mags, cls, ids = cat
    p = write(tmp_path, fmt, mags, cls, ids)
    c = load_catalog(p, features="colors:ugriz", label="class", drop_invalid=True,
                     dtype="float64", extra="objid")
    keep = np.setdiff1d(np.arange(N), [3, 400])
    want = np.column_stack([mags[a][keep] - mags[b][keep] for a, b in zip("ugri", "griz")])
    np.testing.assert_array_equal(c.X, want)
    assert c.meta["n_dropped"] == 2 and c.class_names == ("GALAXY", "QSO", "STAR")
    np.testing.assert_array_equal(np.asarray(c.class_names)[c.y], cls[keep])
    assert c.X.dtype.byteorder in "=|" and c.X.flags.c_contiguous


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_chunks_match_and_count(tmp_path, cat, fmt):
    mags, cls, ids = cat
    # Parquet row groups of 350, 350 and 300 rows, chunks of 100: 4 + 4 + 3 chunks
    p = write(tmp_path, fmt, mags, cls, ids, row_group=350)
    s = CatalogStream(p, features="colors:ugriz", label="class", chunk_rows=100,
                      dtype="float64", extra="objid")
    expect = 11 if fmt == "parquet" else 10
    assert s.n_chunks == expect and s.n_rows_file == N
    chunks = list(s.chunks(labels=False, dropna=False))
    assert len(chunks) == expect and all(len(c.valid) <= 100 for c in chunks)
    assert np.flatnonzero(~np.concatenate([c.valid for c in chunks])).tolist() == [3, 400]
    got = np.concatenate([c.extra["objid"] for c in chunks]).astype(np.int64)
    np.testing.assert_array_equal(got, ids)
    rows = np.concatenate([c.row_numbers() for c in chunks])
    np.testing.assert_array_equal(rows, np.arange(N))
    s.scan()
    assert s.n_valid == N - 2 and s.class_names == ("GALAXY", "QSO", "STAR")
    y = np.concatenate([c.y for c in s.chunks()])
    np.testing.assert_array_equal(np.asarray(s.class_names)[y], np.delete(cls, [3, 400]))


def test_parquet_chunks_in_any_order_read_each_row_group_once(tmp_path, cat):
    mags, cls, ids = cat
    p = write(tmp_path, "parquet", mags, cls, ids, row_group=350)
    s = CatalogStream(p, features="colors:ugriz", label=False, chunk_rows=100)
    ref = {c.index: c for c in s.chunks(dropna=False)}
    order = [9, 0, 5, 1, 10, 4]
    got = list(s.chunks(order, dropna=False))
    assert sorted(c.index for c in got) == sorted(order)
    for c in got:
        np.testing.assert_array_equal(c.X, ref[c.index].X)
        assert c.start == ref[c.index].start


@pytest.mark.parametrize("fmt", FORMATS)
def test_where_filter_and_empty_chunks(tmp_path, cat, fmt):
    mags, cls, ids = cat
    p = write(tmp_path, fmt, mags, cls, ids, row_group=350)
    where = "class == 'QSO' and r < 19 or objid < 100000000000000050"
    want = ((cls == "QSO") & (mags["r"] < 19)) | (ids < 10 ** 17 + 50)
    c = load_catalog(p, features="colors:ugriz", label="class", drop_invalid=True,
                     extra="objid", where=where)
    np.testing.assert_array_equal(c.extra["objid"].astype(np.int64),
                                  ids[want & ~np.isin(np.arange(N), [3, 400])])
    s = CatalogStream(p, features="colors:ugriz", label=False, chunk_rows=100, extra="objid",
                      where="objid >= 100000000000000950")
    chunks = list(s.chunks(dropna=False))
    assert len(chunks) == s.n_chunks
    assert sum(len(ch.valid) == 0 for ch in chunks) == len(chunks) - 1   # all but the last
    np.testing.assert_array_equal(chunks[-1].row_numbers(), np.arange(950, N))
    if fmt == "parquet":     # pushdown: only the last row group is read at all
        assert s.n_chunks == 3 and s.n_rows_to_read == 300


def test_where_parser_is_safe_and_clear():
    w = Where("(r < 21 and not class == 'STAR') or 19.5 >= `u-g`")
    assert w.columns == ["class", "r", "u-g"]
    cols = {"r": np.array([20.0, 22.0, np.nan, 20.0]), "class": np.array(["QSO", "QSO", "",
                                                                         "STAR"]),
            "u-g": np.array([30.0, 1.0, 30.0, 30.0])}
    np.testing.assert_array_equal(w.mask(cols), [True, True, False, False])
    for bad, msg in [("__import__('os')", "cannot read|not a comparison"),
                     ("r < ", "ends too early"), ("r < 21 and", "ends too early"),
                     ("r 21", "not a comparison"), ("1 < 2", "one column and one value"),
                     ("(r < 1", "not closed"), ("", "non-empty"), ("r < 1; x", "cannot read")]:
        with pytest.raises(ValueError, match=msg):
            parse_where(bad)
    with pytest.raises(ValueError, match=r"names column\(s\) \['w1'\] not in the catalog"):
        Where("w1 > 0").check(["u", "g"])
    with pytest.raises(ValueError, match="'r' is numeric, compared with the string"):
        Where("r == 'x'").mask({"r": np.ones(2)})
    # not of a comparison on a missing value stays unknown: the row is left out
    np.testing.assert_array_equal(Where("not r < 1").mask({"r": np.array([np.nan, 2.0])}),
                                  [False, True])


def test_csv_line_index_counts_rows_not_bytes(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"a,b\r\n1,2\r\n\r\n3,4\n\n5,6\n7,8")          # CRLF, blanks, no final NL
    with open(p, "rb") as fh:
        fh.readline()
        pieces, n = csv_line_index(fh, 2)
    assert n == 4 and [(r, m) for _, r, m in pieces] == [(0, 2), (2, 2)]
    s = CatalogStream(p, features="a,b", label=False, chunk_rows=2)
    assert s.n_chunks == 2
    X = np.concatenate([c.X for c in s.chunks(dropna=False)])
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [5, 6], [7, 8]])


def test_streamed_csv_with_quoted_newline_is_an_error(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('a,name\n1,"two\nlines"\n2,x\n3,y\n')
    s = CatalogStream(p, features="a", label=False, chunk_rows=10, extra="name")
    with pytest.raises(ValueError, match="line breaks inside quoted fields"):
        list(s.chunks(dropna=False))


def test_non_numeric_text_named_in_the_error(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,label\n1,0\n2,1\n abc ,1\n")
    with pytest.raises(ValueError, match=r"column 'a' must be numeric.*'abc'.*data row 3"):
        load_catalog(p)
    s = CatalogStream(p, features="a", label="label", chunk_rows=2)
    with pytest.raises(ValueError, match=r"column 'a' must be numeric"):
        s.scan()


def test_non_numeric_text_is_named_by_its_row_in_the_file(tmp_path):
    """Rows are counted in the file, not in the chunk or among the rows a filter kept, and
    the value is shown as text ('abc', not np.str_('abc'))."""
    p = tmp_path / "t.csv"
    p.write_text("a,b,label\n1,5,0\n2,6,1\n3,7,0\n4,8,1\nabc,9,1\n6,1,0\n")
    expect = r"column 'a' must be numeric but has .*\(first 'abc' in data row 5\)$"
    for where in (None, "b > 6", "label == 1"):
        for chunk_rows in (1, 2, 3, 100):
            s = CatalogStream(p, features="a", label="label", chunk_rows=chunk_rows,
                              where=where)
            with pytest.raises(ValueError, match=expect):
                s.scan()
        with pytest.raises(ValueError, match=expect if where else
                           expect.replace(".*", "1 non-numeric value ")):
            load_catalog(p, features="a", label="label", where=where)
    # a where on the text column itself, and Parquet row groups pruned by the filter
    with pytest.raises(ValueError, match=expect):
        list(CatalogStream(p, features="b", label="label", chunk_rows=2,
                           where="a > 0").chunks())
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    q = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": ["1", "2", "3", "4", "abc", "6"], "b": [5, 6, 7, 8, 9, 1],
                             "label": [0, 1, 0, 1, 1, 0]}), q, row_group_size=2)
    for where in ("b > 8", "b >= 9 or b < 2"):       # the first two row groups pruned
        with pytest.raises(ValueError, match=expect):
            load_catalog(q, features="a", label="label", where=where)
        with pytest.raises(ValueError, match=expect):
            CatalogStream(q, features="a", label="label", chunk_rows=1, where=where).scan()


def test_chunk_order_out_of_range(tmp_path, cat):
    mags, cls, ids = cat
    s = CatalogStream(write(tmp_path, "npy", mags, cls, ids), features="colors:ugriz",
                      label=False, chunk_rows=300)
    with pytest.raises(ValueError, match=r"chunk indices \[4\] outside 0..3 \(4 chunks\)"):
        list(s.chunks([0, 4]))


def test_fits_nulls_and_scaled_columns_go_through_astropy(tmp_path):
    """TNULL integers become missing, TZERO-scaled (unsigned) columns keep their values:
    only plain columns are byte-swapped straight from the memory map."""
    a = np.array([1, -1, 3, 4], np.int32)
    u = np.array([1, 40000, 65535, 7], np.uint16)                    # stored with TZERO
    cols = [fits.Column(name="a", format="J", null=-1, array=a),
            fits.Column(name="u", format="I", bzero=32768, array=u),
            fits.Column(name="label", format="J", array=np.array([0, 1, 0, 1], np.int32))]
    p = tmp_path / "n.fits"
    fits.BinTableHDU.from_columns(cols).writeto(p)
    c = load_catalog(p, features="a,u", label="label", drop_invalid=True, dtype="float64")
    np.testing.assert_array_equal(c.X, [[1, 1], [3, 65535], [4, 7]])
    chunks = list(CatalogStream(p, features="a,u", label=False, chunk_rows=3,
                                dtype="float64").chunks(dropna=False))
    assert [len(ch.valid) for ch in chunks] == [3, 1]
    np.testing.assert_array_equal(np.concatenate([ch.valid for ch in chunks]),
                                  [True, False, True, True])


def test_gzipped_csv_loads_and_streams(tmp_path):
    import gzip
    p = tmp_path / "t.csv.gz"
    p.write_bytes(gzip.compress(b"# c\nu,g,label\n1,2,0\n3,4,1\n\n5,6,0\n"))
    c = load_catalog(p)
    np.testing.assert_array_equal(c.X, [[1, 2], [3, 4], [5, 6]])
    s = CatalogStream(p, label="label", chunk_rows=2)
    assert s.n_chunks == 2
    np.testing.assert_array_equal(np.concatenate([ch.y for ch in s.chunks()]), [0, 1, 0])


def test_where_treats_nan_as_missing_in_every_format(tmp_path):
    """pyarrow's own filter would keep NaN != 18; Where leaves a missing value out, for
    Parquet (NaN stored as a value) the same as for CSV (an empty field)."""
    r = np.array([np.nan, 18.0, 20.0])
    pq.write_table(pa.table({"r": r, "label": [0, 1, 0]}), tmp_path / "n.parquet")
    (tmp_path / "n.csv").write_text("r,label\n,0\n18,1\n20,0\n")
    for name in ("n.parquet", "n.csv"):
        c = load_catalog(tmp_path / name, features="r", where="r != 18")
        np.testing.assert_array_equal(c.X[:, 0], [20.0])
        s = CatalogStream(tmp_path / name, features="r", label=False, where="not r < 19")
        np.testing.assert_array_equal(np.concatenate([ch.X[:, 0] for ch in s.chunks()]),
                                      [20.0])


def test_streamed_ragged_csv_names_the_problem(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("a,b\n1,2\n3,4,5\n")
    s = CatalogStream(p, features="a,b", label=False, chunk_rows=10)
    with pytest.raises(ValueError, match=r"r.csv: malformed CSV .*Expected 2 columns, got 3"):
        list(s.chunks())


def _empty_tables(tmp):
    """An ASCII and a binary FITS table, a Parquet file and a CSV, each with the columns
    u g r i z class and no row (the FITS ones also gzip-compressed)."""
    import gzip
    import shutil
    p = {}
    for kind, hdu, num, text in (("ascii", fits.TableHDU, "E15.7", "A6"),
                                 ("binary", fits.BinTableHDU, "D", "6A")):
        cols = [fits.Column(name=b, format=num, array=np.zeros(0)) for b in "ugriz"]
        cols.append(fits.Column(name="class", format=text, array=np.zeros(0, "S6")))
        p[kind] = tmp / f"{kind}.fits"
        hdu.from_columns(cols).writeto(p[kind])
        p[kind + ".gz"] = tmp / f"{kind}.fits.gz"
        with open(p[kind], "rb") as src, gzip.open(p[kind + ".gz"], "wb") as dst:
            shutil.copyfileobj(src, dst)
    p["parquet"] = tmp / "e.parquet"
    pq.write_table(pa.table({**{b: pa.array([], pa.float64()) for b in "ugriz"},
                             "class": pa.array([], pa.string())}), p["parquet"])
    p["csv"] = tmp / "e.csv"
    p["csv"].write_text("u,g,r,i,z,class\n")
    return p


def test_a_fits_table_of_no_rows_reads_like_any_empty_catalog(tmp_path):
    """An ASCII FITS table with no row failed inside astropy ("truncated or corrupt FITS
    table (zero-size array to reduction operation maximum which has no identity)"): now
    load_catalog says the file has no data rows, as for an empty CSV, Parquet file or binary
    table, and a stream reads it as zero rows with its columns (predict writes an empty
    table), its text column as text and its numbers as numbers."""
    for kind, p in _empty_tables(tmp_path).items():
        with pytest.raises(ValueError, match=f"^{p}: no data rows"):
            load_catalog(p, features="colors:ugriz", label="class")
        s = CatalogStream(p, features="colors:ugriz", label=False, extra=["class", "u"])
        assert (s.n_chunks, s.n_rows_file) == (0, 0) and list(s.chunks()) == []
        ch = s.empty_chunk()
        assert ch.X.shape == (0, 4) and len(ch.valid) == 0, kind
        assert ch.extra["class"].dtype.kind == "U" and len(ch.extra["class"]) == 0, kind
        assert ch.extra["u"].dtype.kind == ("U" if kind == "csv" else "f"), kind


def test_fits_rows_are_read_through_one_seekable_source(tmp_path, cat):
    """FitsTable kept its own copy of SeekableSource.open (plain or gzip file): it now reads
    through a SeekableSource, which a stream's FITS reader shares, so a .fits.gz read out of
    order is decompressed once for both and the copy goes with remove_temporary_copy."""
    import gzip
    import shutil
    from fastmlp.data.decompressed import SeekableSource
    from fastmlp.data.fits_table import FitsTable
    mags, cls, ids = cat
    plain = write(tmp_path, "fits", mags, cls, ids)
    gz = tmp_path / "c.fits.gz"
    with open(plain, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    table = FitsTable(gz)
    assert isinstance(table.source, SeekableSource)
    got = table.load(["r", "objid"])
    np.testing.assert_array_equal(got["objid"], ids)
    np.testing.assert_array_equal(got["r"], mags["r"])
    s = CatalogStream(gz, features="r", label=False, extra=["objid"], chunk_rows=300)
    assert s._reader.source is s._reader.table.source
    shuffled = list(s.chunks([3, 0, 2, 1]))
    np.testing.assert_array_equal(shuffled[1].extra["objid"], ids[:300])
    copy = s._reader.table.source.copy
    assert copy is not None and copy.exists()
    s.remove_temporary_copy()
    assert not copy.exists() and s._reader.table.source.copy is None
