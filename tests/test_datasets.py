"""fastmlp.data: the synthetic catalog's shape and physics, and load_catalog on small files
(CSV, plain and structured .npy) and on the real SDSS files when they are present."""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from fastmlp.data import Catalog, load_catalog, make_photometric_catalog

DATA_DIR = Path(os.environ.get("FASTMLP_DATA_DIR",
                               Path(__file__).resolve().parents[2] / "shared" / "data"))
DR6 = "sdssdr6_colors_class.200000.npy"
SDSS17 = "sdss17_star_classification_first30k.csv"


def real_file(name):
    p = DATA_DIR / name
    if not p.exists():
        pytest.skip(f"real SDSS data file {p} is absent (set FASTMLP_DATA_DIR)")
    return p


# ---------------------------------------------------------------------------------------
# synthetic catalog
def test_synthetic_shapes_labels_and_unpacking():
    cat = make_photometric_catalog(5000, quasar_fraction=0.1, seed=1)
    X, y = cat
    assert isinstance(cat, Catalog) and len(cat) == 5000
    assert X.shape == (5000, 4) and X.dtype == np.float32 and y.dtype == np.int64
    assert cat.feature_names == ("u-g", "g-r", "r-i", "i-z")
    assert cat.class_names == ("star", "quasar") and cat.positive == 1
    assert int((y == 1).sum()) == 500 and set(np.unique(y)) == {0, 1}
    assert np.isfinite(X).all()
    assert set(cat.extra) >= {"r", "redshift"}
    assert cat.extra["r"].shape == (5000,)
    # magnitudes and colours agree
    np.testing.assert_allclose(X[:, 1], cat.extra["g"] - cat.extra["r"], atol=1e-5)
    assert "quasar=500" in repr(cat)


def test_synthetic_deterministic_and_seed_dependent():
    a = make_photometric_catalog(3000, seed=7)
    b = make_photometric_catalog(3000, seed=7)
    c = make_photometric_catalog(3000, seed=8)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)
    d = make_photometric_catalog(3000, seed=7, dtype="float64")
    assert d.X.dtype == np.float64
    np.testing.assert_allclose(d.X, a.X, atol=1e-5)


def test_synthetic_physics():
    cat = make_photometric_catalog(60000, quasar_fraction=0.2, seed=0, noise=False)
    X, y = cat
    z = cat.extra["redshift"]
    star, qso = X[y == 0], X[y == 1]
    # UV excess: low-z quasars are much bluer in u-g than the bulk of the stars
    lowz = X[(y == 1) & (z < 2.0)]
    assert np.median(lowz[:, 0]) < 0.5 < 0.9 < np.median(star[:, 0])
    assert np.percentile(lowz[:, 0], 90) < 0.75
    # the Lyman forest reddens u-g at z > 2.5: these quasars move into the stellar locus
    hiz = X[(y == 1) & (z > 2.6) & (z < 3.5)]
    assert np.median(hiz[:, 0]) > np.median(lowz[:, 0]) + 0.5
    # stellar locus: r-i rises with g-r (M dwarfs red in r-i), i-z follows r-i
    assert np.corrcoef(star[:, 1], star[:, 2])[0, 1] > 0.7
    assert np.corrcoef(star[:, 2], star[:, 3])[0, 1] > 0.8
    assert star[:, 2].max() > 1.5 > np.percentile(qso[:, 2], 99)  # M dwarfs: no quasar there
    assert (z[y == 0] == 0).all() and (z[y == 1] > 0).all()


def test_synthetic_noise_grows_toward_faint_limit_u_noisiest():
    clean = make_photometric_catalog(40000, seed=3, noise=False)
    noisy = make_photometric_catalog(40000, seed=3, noise=True)
    np.testing.assert_array_equal(clean.y, noisy.y)
    r = clean.extra["r"]
    assert r.min() >= 14.0 - 1e-6 and r.max() <= 22.5 + 1e-5
    # rising number counts: more objects in the faintest magnitude than the brightest
    assert np.sum(r > 21.5) > 2 * np.sum(r < 15.5)
    d = {b: noisy.extra[b] - clean.extra[b] for b in "ugriz"}
    bright, faint = r < 18, r > 21.5
    for b in "ugriz":
        assert np.std(d[b][faint]) > 3 * np.std(d[b][bright])
    assert np.std(d["u"][faint]) > np.std(d["g"][faint])
    assert np.std(d["u"][faint]) > np.std(d["r"][faint])


def test_synthetic_three_classes_and_features():
    cat = make_photometric_catalog(4000, quasar_fraction=0.2, galaxy_fraction=0.3, seed=2,
                                   features="u-g,g-r,r-i,i-z,r")
    assert cat.class_names == ("star", "quasar", "galaxy") and cat.positive == 1
    assert np.bincount(cat.y).tolist() == [2000, 800, 1200]
    assert cat.X.shape == (4000, 5) and cat.feature_names[-1] == "r"
    np.testing.assert_array_equal(cat.X[:, 4], cat.extra["r"])
    gal = cat.X[cat.y == 2]
    assert np.median(gal[:, 1]) > 0.6      # galaxies are red in g-r


def test_synthetic_take_and_counts():
    cat = make_photometric_catalog(1000, seed=0)
    sub = cat.take(np.arange(10))
    assert len(sub) == 10 and sub.extra["r"].shape == (10,)
    assert sum(cat.class_counts().values()) == 1000


@pytest.mark.parametrize("kw, msg", [
    ({"n": 0}, "n must be a positive integer"),
    ({"n": 10, "quasar_fraction": 1.5}, "quasar_fraction"),
    ({"n": 10, "quasar_fraction": 0.6, "galaxy_fraction": 0.6}, "<= 1"),
    ({"n": 10, "dtype": "int32"}, "dtype"),
    ({"n": 10, "features": ["u-g", "w1"]}, "features must be names"),
    ({"n": 10, "r_limit": 12.0}, "r_bright < r_limit"),
])
def test_synthetic_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg):
        make_photometric_catalog(**kw)


# ---------------------------------------------------------------------------------------
# load_catalog on small files
MAG_CSV = """obj,u,g,r,i,z,class,redshift
1,19.5,18.2,17.6,17.3,17.1,STAR,0.0
2,20.1,19.9,19.8,19.6,19.5,QSO,1.5
3,21.0,19.8,19.0,18.6,18.3,GALAXY,0.2
4,18.0,17.0,16.5,16.3,16.2,STAR,0.0
5,19.9,19.8,19.6,19.5,19.4,QSO,2.1
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_colors_and_string_labels(tmp_path):
    p = write(tmp_path, "cat.csv", MAG_CSV)
    cat = load_catalog(p, features="colors:ugriz", label="class", positive="QSO",
                       extra=["redshift"])
    assert cat.feature_names == ("u-g", "g-r", "r-i", "i-z")
    assert cat.class_names == ("GALAXY", "QSO", "STAR")
    assert cat.y.tolist() == [2, 1, 0, 2, 1] and cat.positive == 1
    assert cat.meta["label_mapping"] == {"GALAXY": 0, "QSO": 1, "STAR": 2}
    np.testing.assert_allclose(cat.X[0], [1.3, 0.6, 0.3, 0.2], atol=1e-5)
    np.testing.assert_allclose(cat.extra["redshift"], [0, 1.5, 0.2, 0, 2.1], atol=1e-6)
    plus = load_catalog(p, features="colors:ugriz+r", label="class", dtype="float64")
    assert plus.feature_names[-1] == "r" and plus.X.dtype == np.float64
    assert plus.positive == 1          # a class called QSO is the default positive
    np.testing.assert_allclose(plus.X[:, 4], [17.6, 19.8, 19.0, 16.5, 19.6])
    # named columns and a computed colour mixed
    mix = load_catalog(p, features=["u-g", "r"], label="class", positive="qso")
    assert mix.X.shape == (5, 2) and mix.positive == 1


def test_csv_numeric_labels_and_positive_by_value(tmp_path):
    p = write(tmp_path, "num.csv", "a,b,label\n0.1,0.2,1\n0.3,0.4,0\n0.5,0.6,1\n")
    cat = load_catalog(p)       # label column found by name, features = the rest
    assert cat.feature_names == ("a", "b") and cat.y.tolist() == [1, 0, 1]
    assert cat.class_names == ("0", "1") and cat.positive is None
    assert load_catalog(p, positive=0).positive == 0
    assert load_catalog(p, positive="1").positive == 1
    named = load_catalog(p, class_names=["QSO", "STAR"])
    assert named.class_names == ("QSO", "STAR") and named.positive == 0
    # one name per class: a third name would be a softmax output with no rows to learn
    from fastmlp.data import CatalogStream
    for names, why in (("QSO,STAR,GAL", "got 3.*no rows of the extra class"),
                       ("QSO", "got 1"), ("QSO,QSO", r"got 2: \[.QSO., .QSO.\]")):
        with pytest.raises(ValueError, match=r"class_names must be 2 distinct names, one per "
                                             r"label 0\.\.1, " + why):
            load_catalog(p, class_names=names)
        with pytest.raises(ValueError, match=r"class_names must be 2 distinct names.*" + why):
            CatalogStream(p, label="label", class_names=names).scan()
    # a gzipped copy reads the same
    gz = tmp_path / "num.csv.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    np.testing.assert_array_equal(load_catalog(gz).X, cat.X)


def test_csv_regression_target(tmp_path):
    p = write(tmp_path, "cat.csv", MAG_CSV)
    cat = load_catalog(p, features="colors:ugriz", label="redshift")
    assert cat.class_names is None and cat.y.dtype == np.float32
    np.testing.assert_allclose(cat.y, [0, 1.5, 0.2, 0, 2.1], atol=1e-6)
    with pytest.raises(ValueError, match="regression target"):
        load_catalog(p, features="colors:ugriz", label="redshift", positive="QSO")


def test_npy_plain_and_structured(tmp_path):
    rng = np.random.default_rng(0)
    A = np.column_stack([rng.normal(size=(20, 3)), rng.integers(0, 2, 20)])
    p = tmp_path / "plain.npy"
    np.save(p, A)
    cat = load_catalog(p, features=[0, 1, 2], label=3, positive=1)
    np.testing.assert_allclose(cat.X, A[:, :3].astype(np.float32))
    assert cat.y.tolist() == A[:, 3].astype(int).tolist() and cat.feature_names == ("0", "1", "2")
    cat2 = load_catalog(p, features="0,2", label="3")
    assert cat2.X.shape == (20, 2)
    with pytest.raises(ValueError, match="no label column"):
        load_catalog(p)
    s = np.zeros(6, dtype=[("u-g", "f4"), ("g-r", "f4"), ("label", "i4")])
    s["u-g"] = np.arange(6)
    s["label"] = [0, 1, 1, 0, 1, 1]
    q = tmp_path / "struct.npy"
    np.save(q, s)
    cat3 = load_catalog(q, positive=0)
    assert cat3.feature_names == ("u-g", "g-r") and cat3.positive == 0
    np.testing.assert_array_equal(cat3.X[:, 0], np.arange(6))
    unl = load_catalog(q, features=["u-g"], label=False)
    assert unl.y is None and unl.class_names is None and "unlabelled" in repr(unl)


# ---------------------------------------------------------------------------------------
# missing values and bad input
def test_missing_values_raise_or_drop(tmp_path):
    text = MAG_CSV.replace("2,20.1,19.9", "2,-9999,19.9").replace(
        "4,18.0,17.0,16.5,16.3,16.2", "4,18.0,17.0,16.5,nan,16.2").replace(
        "5,19.9,19.8,19.6,19.5,19.4", "5,19.9,19.8,,19.5,19.4")
    p = write(tmp_path, "bad.csv", text)
    with pytest.raises(ValueError, match=r"3 of 5 rows have missing or invalid values") as e:
        load_catalog(p, features="colors:ugriz", label="class")
    assert "'u': 1" in str(e.value) and "'i': 1" in str(e.value) and "'r': 1" in str(e.value)
    assert "drop_invalid=True" in str(e.value)
    cat = load_catalog(p, features="colors:ugriz", label="class", drop_invalid=True,
                       extra=["obj"])
    assert len(cat) == 2 and cat.meta["n_dropped"] == 3
    assert cat.extra["obj"].tolist() == [1, 3]
    # a missing label counts too
    q = write(tmp_path, "nolab.csv", "a,label\n1,0\n2,\n3,1\n")
    with pytest.raises(ValueError, match=r"1 of 3 rows.*'label': 1"):
        load_catalog(q)
    assert len(load_catalog(q, drop_invalid=True)) == 2
    # inf in a plain npy
    A = np.array([[1.0, 0], [np.inf, 1], [2.0, 1]])
    np.save(tmp_path / "inf.npy", A)
    with pytest.raises(ValueError, match="1 of 3 rows"):
        load_catalog(tmp_path / "inf.npy", features=[0], label=1)
    w = write(tmp_path, "allbad.csv", "a,label\nnan,0\n-9999,1\n")
    with pytest.raises(ValueError, match="nothing left"):
        load_catalog(w, drop_invalid=True)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        load_catalog(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a directory"):
        load_catalog(tmp_path)
    with pytest.raises(ValueError, match="empty file"):
        load_catalog(write(tmp_path, "empty.csv", ""))
    with pytest.raises(ValueError, match="no data rows"):
        load_catalog(write(tmp_path, "header.csv", "a,label\n"))
    with pytest.raises(ValueError, match=r"line 3 has 3 fields, the header has 2"):
        load_catalog(write(tmp_path, "ragged.csv", "a,label\n1,0\n2,1,5\n"))
    with pytest.raises(ValueError, match=r"column 'a' must be numeric.*'abc'.*data row 2"):
        load_catalog(write(tmp_path, "text.csv", "a,label\n1,0\nabc,1\n"))
    with pytest.raises(ValueError, match="duplicate column names"):
        load_catalog(write(tmp_path, "dup.csv", "a,a,label\n1,2,0\n"))
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81garbage\x00\xff")
    with pytest.raises(ValueError, match="bin.csv"):
        load_catalog(tmp_path / "bin.csv")
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file at all")
    with pytest.raises(ValueError, match="not a readable .npy file"):
        load_catalog(tmp_path / "junk.npy")
    np.save(tmp_path / "3d.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="2-D array"):
        load_catalog(tmp_path / "3d.npy", features=[0], label=1)


def test_column_errors_list_available(tmp_path):
    p = write(tmp_path, "cat.csv", MAG_CSV)
    with pytest.raises(ValueError, match=r"label column 'type' not found; available columns: "
                                         r"\['obj', 'u', 'g'"):
        load_catalog(p, features="colors:ugriz", label="type")
    with pytest.raises(ValueError, match=r"\['w1'\] not found.*available columns"):
        load_catalog(p, features=["u", "w1"], label="class")
    with pytest.raises(ValueError,
                       match=r"'y-w'\] not found .*needs a column 'a-b' or magnitude"):
        load_catalog(p, features=["y-w"], label="class")
    with pytest.raises(ValueError, match="at least two band"):
        load_catalog(p, features="colors:u", label="class")
    with pytest.raises(ValueError, match="more than once"):
        load_catalog(p, features="u,u", label="class")
    with pytest.raises(ValueError, match="also listed as a feature"):
        load_catalog(p, features="u,class", label="class")
    # a colour of the label reads the answer too (refused as Dask and MPI refuse it)
    with pytest.raises(ValueError, match=r"features \['u-class'\] read the label column"):
        load_catalog(p, features="u-class,g-r", label="class")
    with pytest.raises(ValueError, match=r"positive='quasar' is not one of the classes"):
        load_catalog(p, features="colors:ugriz", label="class", positive="quasar")
    with pytest.raises(ValueError, match="positive=7"):
        load_catalog(p, features="colors:ugriz", label="class", positive=7)
    with pytest.raises(ValueError, match="extra column 'zz' not found"):
        load_catalog(p, features="colors:ugriz", label="class", extra=["zz"])
    with pytest.raises(ValueError, match="dtype"):
        load_catalog(p, features="colors:ugriz", label="class", dtype="int8")


# ---------------------------------------------------------------------------------------
# the real SDSS files
def test_real_dr6_npy():
    cat = load_catalog(real_file(DR6), features="u-g,g-r,r-i,i-z", label="label", positive=0)
    assert len(cat) == 200000 and cat.X.shape == (200000, 4)
    assert cat.feature_names == ("u-g", "g-r", "r-i", "i-z")
    assert cat.positive == 0 and int((cat.y == 0).sum()) == 13279
    assert int((cat.y == 1).sum()) == 186721
    assert np.isfinite(cat.X).all() and cat.meta["n_dropped"] == 0
    default = load_catalog(real_file(DR6))  # structured: label field found by name
    np.testing.assert_array_equal(default.X, cat.X)


def test_real_sdss17_csv_three_classes():
    cat = load_catalog(real_file(SDSS17), features="colors:ugriz", label="class",
                       positive="QSO", extra=["redshift"])
    assert len(cat) == 29999 and cat.X.shape == (29999, 4)
    assert cat.class_names == ("GALAXY", "QSO", "STAR") and cat.positive == 1
    assert cat.class_counts() == {"GALAXY": 17478, "QSO": 5949, "STAR": 6572}
    # quasars are bluer in u-g than galaxies
    assert np.median(cat.X[cat.y == 1, 0]) < np.median(cat.X[cat.y == 0, 0])
    assert cat.extra["redshift"].shape == (29999,)


# ---------------------------------------------------------------------------------------
# FITS and Parquet, the missing-value policy, standardisation
from fastmlp.data import Standardizer, catalog_columns, catalog_format  # noqa: E402


def _sdss_like(n=50, seed=0):
    rng = np.random.default_rng(seed)
    mags = (18 + rng.normal(size=(n, 5))).astype(np.float64)
    cls = np.where(rng.random(n) < 0.3, "QSO", "STAR")
    cls[:2] = ["QSO", "STAR"]
    return mags, cls


def test_fits_table_same_as_csv(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    mags, cls = _sdss_like()
    mags[3, 1] = -9999.0
    cols = [fits.Column(name=b, format="D", array=mags[:, k]) for k, b in enumerate("ugriz")]
    cols.append(fits.Column(name="class", format="8A", array=cls))
    cols.append(fits.Column(name="objid", format="K", array=np.arange(50) + 10**15))
    p = tmp_path / "cat.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(p)
    csvp = tmp_path / "cat.csv"
    csvp.write_text("u,g,r,i,z,class\n" + "\n".join(
        ",".join([repr(float(v)) for v in m] + [c]) for m, c in zip(mags, cls)) + "\n")
    a = load_catalog(p, features="colors:ugriz", label="class", missing="drop",
                     extra=["objid"], dtype="float64")
    b = load_catalog(csvp, features="colors:ugriz", label="class", missing="drop",
                     dtype="float64")
    assert a.meta["format"] == "fits" and b.meta["format"] == "csv"
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.class_names == ("QSO", "STAR") and a.positive == 0 and a.meta["n_dropped"] == 1
    assert a.extra["objid"][0] == 10**15 and len(a.extra["objid"]) == 49
    assert catalog_columns(p) == ["u", "g", "r", "i", "z", "class", "objid"]
    with pytest.raises(ValueError, match="1 of 50 rows has missing"):
        load_catalog(p, features="colors:ugriz", label="class")
    with pytest.raises(ValueError, match=r"feature column\(s\) \['w1'\] not found"):
        load_catalog(p, features="u-g,w1", label="class")
    with pytest.raises(ValueError, match="no table extension"):
        q = tmp_path / "img.fits"
        fits.PrimaryHDU(np.zeros((2, 2))).writeto(q)
        load_catalog(q, features="u", label="class")


def test_parquet_nulls_and_row_groups(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    mags, cls = _sdss_like()
    u = pa.array([None if k == 7 else v for k, v in enumerate(mags[:, 0])], pa.float64())
    t = pa.table({"u": u, "g": mags[:, 1], "r": mags[:, 2], "i": mags[:, 3],
                  "z": mags[:, 4], "class": pa.array(cls).dictionary_encode(),
                  "id": np.arange(50)})
    p = tmp_path / "cat.parquet"
    pq.write_table(t, p, row_group_size=16)
    with pytest.raises(ValueError, match=r"1 of 50 rows .* \{'u': 1\}"):
        load_catalog(p, features="colors:ugriz", label="class")
    cat = load_catalog(p, features="colors:ugriz", label="class", drop_invalid=True,
                       dtype="float64", extra="id")
    keep = np.arange(50) != 7
    np.testing.assert_allclose(cat.X[:, 0], (mags[:, 0] - mags[:, 1])[keep])
    assert cat.meta["format"] == "parquet" and len(cat) == 49 and 7 not in cat.extra["id"]
    assert cat.class_names == ("QSO", "STAR")


def test_missing_impute_median(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("a,b,label\n1,10,0\n-9999,20,1\n3,,0\n5,40,1\n7,50,\n")
    cat = load_catalog(p, missing="impute-median", dtype="float64")
    # the row without a label is dropped; a: median of 1,3,5,7 = 4; b: of 10,20,40,50 = 30
    np.testing.assert_array_equal(cat.X, [[1, 10], [4, 20], [3, 30], [5, 40]])
    assert cat.meta["imputed"] == {"a": 1, "b": 1} and cat.meta["n_dropped"] == 1
    assert cat.meta["impute_values"] == {"a": 4.0, "b": 30.0}
    with pytest.raises(ValueError, match="missing must be one of"):
        load_catalog(p, missing="mean")
    with pytest.raises(ValueError, match="contradicts"):
        load_catalog(p, missing="error", drop_invalid=True)


def test_optional_dependency_errors_name_the_extra(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith(("astropy", "pyarrow")):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    import importlib
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: fake(name) if name.startswith(("astropy", "pyarrow"))
                        else real(name))
    for name in ("x.fits", "x.parquet"):
        (tmp_path / name).write_bytes(b"\0" * 10)
        with pytest.raises(ImportError, match=r"fastmlp\[catalogs\]"):
            load_catalog(tmp_path / name, features="a", label="b")
    assert catalog_format("a.fits.gz") == "fits" and catalog_format("a.pq") == "parquet"
    assert catalog_format("a.txt") == "csv" and catalog_format("a", "npy") == "npy"


def test_standardizer_streaming_equals_one_pass():
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(1000, 3)) * [1, 10, 1e-3] + [5, -2, 1e4]).astype(np.float32)
    X[:, 2] = 7.0                                     # a constant column -> std 1
    one = Standardizer().fit(X)
    np.testing.assert_allclose(one.mean, X.mean(0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(one.std[:2], X[:, :2].std(0, dtype=np.float64), rtol=1e-9)
    assert one.std[2] == 1.0
    st = Standardizer()
    for a, b in [(0, 1), (1, 300), (300, 301), (301, 1000)]:
        st.partial_fit(X[a:b])
    np.testing.assert_allclose(st.mean, one.mean, rtol=1e-12)
    np.testing.assert_allclose(st.std, one.std, rtol=1e-10)
    Z = st.transform(X)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(Z[:, :2].std(0), 1, atol=1e-5)
    cat = make_photometric_catalog(500, seed=1)
    s_cat, s = cat.standardize()
    np.testing.assert_allclose(s_cat.X, s.transform(cat.X))
    again, s2 = cat.standardize(s)
    assert s2 is s
    fixed = Standardizer(*s.as_tuple())
    np.testing.assert_array_equal(fixed.transform(cat.X), s_cat.X)
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().mean
    with pytest.raises(ValueError, match="X must have shape"):
        s.transform(np.zeros((3, 2)))
