"""Catalogs that read without error but would not train what their user means: class names
that differ only in case ("QSO" / "qso"), and a colour beyond the catalog dtype's range,
whose missing value must be counted under the colour's name.  In memory (load_catalog) and
streamed (CatalogStream.scan) alike."""

import warnings

import numpy as np
import pytest

from fastmlp.data import CatalogStream, load_catalog
from fastmlp.data.catalog import CatalogWarning


def write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows)
                    + "\n")
    return path


def clash_catalog(path, n=60, seed=0):
    """u g r and a class column: QSO / STAR in turn, but rows 0 and 1 spelt 'qso' and
    ' star ' (blanks are stripped: 'star')."""
    rng = np.random.default_rng(seed)
    cls = ["QSO" if k % 2 == 0 else "STAR" for k in range(n)]
    cls[0], cls[1] = "qso", " star "
    rows = [(f"{19 + rng.normal():.3f}", f"{18 + rng.normal():.3f}",
             f"{17 + rng.normal():.3f}", c) for c in cls]
    return write_csv(path, ["u", "g", "r", "class"], rows)


def catalog_warnings(read):
    """The CatalogWarnings ``read()`` raises: (the result, [messages], [warnings])."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CatalogWarning)
        out = read()
    ws = [w for w in caught if issubclass(w.category, CatalogWarning)]
    return out, [str(w.message) for w in ws], ws


# ---------------------------------------------------------------------------------------
# class names that differ only in case
def test_class_names_differing_in_case_are_named_with_their_rows(tmp_path):
    p = clash_catalog(tmp_path / "cat.csv")
    cat, said, ws = catalog_warnings(lambda: load_catalog(p))
    assert cat.class_names == ("QSO", "STAR", "qso", "star")     # still trained as they are
    assert len(said) == 1
    msg = said[0]
    assert "'QSO' (29 rows) and 'qso' (1 row)" in msg
    assert "'STAR' (29 rows) and 'star' (1 row)" in msg
    assert "differ only in case" in msg and "separate classes" in msg
    assert "where=\"class != 'qso'\"" in msg
    assert ws[0].filename == __file__                  # points at the user's call


def test_the_stream_scan_says_the_same_as_load_catalog(tmp_path):
    p = clash_catalog(tmp_path / "cat.csv")
    _, in_memory, _ = catalog_warnings(lambda: load_catalog(p))
    stream, streamed, ws = catalog_warnings(lambda: CatalogStream(p, chunk_rows=7).scan())
    assert stream.class_counts == {"QSO": 29, "STAR": 29, "qso": 1, "star": 1}
    assert streamed == in_memory and len(streamed) == 1
    assert ws[0].filename == __file__
    p.write_text(p.read_text().replace("qso", "QSO").replace(" star ", "STAR"))
    _, said, _ = catalog_warnings(lambda: load_catalog(p))    # one spelling: no warning
    _, streamed, _ = catalog_warnings(lambda: CatalogStream(p).scan())
    assert said == [] and streamed == []


# ---------------------------------------------------------------------------------------
# a colour beyond the dtype's range
def test_a_colour_beyond_float32_is_counted_under_its_name(tmp_path):
    """u = 3e38 and g = -3e38 are float32 values, u - g = 6e38 is not: the in-memory reader
    said 'in columns {}', the stream names the colour; now both do."""
    p = write_csv(tmp_path / "cat.csv", ["u", "g", "r", "class"],
                  [(1, 2, 3, "A"), (3e38, -3e38, 3, "B"), (2, 3, 4, "A"), (4, 5, 6, "B")])
    with pytest.raises(ValueError, match=r"1 of 4 rows has missing .* in columns "
                                         r"\{'u-g': 1\}"):
        load_catalog(p, features="u-g,g-r")
    with pytest.raises(ValueError, match=r"in columns \{'u-g': 1\}"):
        CatalogStream(p, features="u-g,g-r", missing="error").scan()
    cat = load_catalog(p, features="u-g,g-r", missing="drop")
    assert len(cat) == 3 and cat.meta["dropped_by_column"] == {"u-g": 1}
    assert np.isfinite(cat.X).all()
    with pytest.raises(ValueError, match=r"all 4 rows have .* in columns \{'u-g': 4\}"):
        big = write_csv(tmp_path / "big.csv", ["u", "g", "class"],
                        [(3e38, -3e38, "A")] * 4)
        load_catalog(big, features="u-g", missing="drop")
