"""Catalogs that read without error but would not train what their user means: class names
that differ only in case ("QSO" / "qso"), id columns among the default features (every
column but the label), and a colour beyond the catalog dtype's range, whose missing value
must be counted under the colour's name.  In memory (load_catalog) and streamed
(CatalogStream.scan) alike."""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastmlp.data import CatalogStream, load_catalog
from fastmlp.data.catalog import CatalogWarning

DATA_DIR = Path(os.environ.get("FASTMLP_DATA_DIR",
                               Path(__file__).resolve().parents[2] / "shared" / "data"))
SDSS17 = "sdss17_star_classification_first30k.csv"


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


def id_catalog(path, n=60, seed=0):
    """Magnitudes u g, the class, and three integer columns: objid (an id by its name,
    values repeating), rowno (0..n-1: all distinct) and plate (repeating: no id)."""
    rng = np.random.default_rng(seed)
    rows = [(k // 2, k, k % 5, f"{19 + rng.normal():.3f}", f"{18 + rng.normal():.3f}",
             "AB"[k % 2]) for k in range(n)]
    return write_csv(path, ["objid", "rowno", "plate", "u", "g", "class"], rows)


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


# ---------------------------------------------------------------------------------------
# id columns among the default features
def test_id_columns_among_default_features_are_named(tmp_path):
    p = id_catalog(tmp_path / "cat.csv")
    cat, said, ws = catalog_warnings(lambda: load_catalog(p))
    assert cat.feature_names == ("objid", "rowno", "plate", "u", "g")   # the default stays
    assert len(said) == 1 and ws[0].filename == __file__
    msg = said[0]
    assert "id-like columns objid, rowno:" in msg and "plate" not in msg
    assert "--features" in msg and "colors:ugriz" in msg
    for rows in (7, 1000):      # judged on the first chunks until they hold over 50 rows
        stream, streamed, _ = catalog_warnings(lambda: CatalogStream(p, chunk_rows=rows).scan())
        assert stream.feature_names == cat.feature_names and streamed == said


def test_features_given_or_few_rows_give_no_id_warning(tmp_path):
    p = id_catalog(tmp_path / "cat.csv")
    for features in ("u,g", "rowno,u,g"):          # chosen by the user: their call
        _, said, _ = catalog_warnings(lambda: load_catalog(p, features=features))
        _, streamed, _ = catalog_warnings(lambda: CatalogStream(p, features=features).scan())
        assert said == [] and streamed == []
    few = id_catalog(tmp_path / "few.csv", n=50)   # 50 distinct numbers may be chance
    _, said, _ = catalog_warnings(lambda: load_catalog(few))
    assert len(said) == 1 and "id-like column objid:" in said[0]


def test_the_sdss17_file_warns_of_its_id_columns_only_by_default():
    p = DATA_DIR / SDSS17
    if not p.exists():
        pytest.skip(f"real SDSS data file {p} is absent (set FASTMLP_DATA_DIR)")
    cat, said, _ = catalog_warnings(lambda: load_catalog(p, label="class"))
    assert "redshift" in cat.feature_names and len(said) == 1
    named = said[0].split("id-like columns ")[1].split(":")[0].split(", ")
    assert named == ["obj_ID", "run_ID", "rerun_ID", "field_ID", "spec_obj_ID", "fiber_ID"]
    _, said, _ = catalog_warnings(lambda: load_catalog(p, label="class",
                                                       features="colors:ugriz"))
    assert said == []


@pytest.mark.parametrize("name, is_id", [
    ("obj_ID", True), ("objID", True), ("specObjID", True), ("objid", True),
    ("specobjid", True), ("TARGETID", True), ("source_id", True), ("id", True),
    ("centroid", False), ("fluid", False), ("grid", False), ("redshift", False),
])
def test_id_names_are_words_not_any_name_ending_in_id(name, is_id):
    # a name merely ending in "id" (centroid) measures something: named only by the
    # all-distinct rule, never by its name
    from fastmlp.data.catalog import id_like_columns
    assert id_like_columns({name: np.array([1.0, 1.0, 2.0])}) == ([name] if is_id else [])
