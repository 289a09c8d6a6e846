"""``--hdu`` (train and predict) reads a FITS catalog's table in another extension, as
load_catalog's hdu= does; without it, a column not found in the first table names the file's
other table HDUs, their columns and --hdu."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main

fits = pytest.importorskip("astropy.io.fits")
N = 200


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def two_tables(tmp_path):
    """A FITS file: HDU 1 'META' (column a only), HDU 2 'OBJ' (a, b, label); and a model of
    features a, b."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=N), rng.normal(size=N)
    y = (a > 0).astype(np.int64)
    meta = fits.BinTableHDU.from_columns([fits.Column(name="a", format="D",
                                                      array=np.arange(5.0))], name="META")
    obj = fits.BinTableHDU.from_columns([fits.Column(name="a", format="D", array=a),
                                         fits.Column(name="b", format="D", array=b),
                                         fits.Column(name="label", format="K", array=y)],
                                        name="OBJ")
    path = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(), meta, obj]).writeto(path)
    m = fastmlp.MLP([2, 2], loss="cross_entropy", features=["a", "b"],
                    class_names=("star", "quasar"), seed=0)
    m.weights[0][...] = [[-4.0, 4.0], [0.0, 0.0]]
    m.biases[0][...] = 0.0
    fastmlp.save(m, tmp_path / "m.npz")
    return path, tmp_path / "m.npz", a


@pytest.mark.parametrize("hdu", ["2", "OBJ"])
def test_predict_reads_the_table_hdu_names(two_tables, tmp_path, capsys, hdu):
    path, model, a = two_tables
    out = tmp_path / "out.npy"
    code, so, se = run(capsys, "predict", "--model", model, "--catalog", path, "--out", out,
                       "--label", "label", "--hdu", hdu)
    assert code == 0, se
    written = np.load(out)
    np.testing.assert_array_equal(written["label"], (a > 0).astype(int))
    assert f"evaluation against --label label: {N} of {N} rows" in so
    assert "accuracy 1.0000" in so


def test_not_found_in_the_first_table_names_the_others(two_tables, tmp_path, capsys):
    path, model, _ = two_tables
    for extra in ([], ["--label", "label"]):
        code, so, se = run(capsys, "predict", "--model", model, "--catalog", path, "--out",
                           tmp_path / "out.npy", *extra)
        assert code != 0
        assert "available columns: ['a']" in se
        assert "other table HDUs: 2 'OBJ' (a, b, label); choose one with --hdu" in se
    code, so, se = run(capsys, "train", "--catalog", path, "--features", "a,b", "--label",
                       "label", "--epochs", "1", "--quiet")
    assert code != 0 and "2 'OBJ' (a, b, label)" in se and "--hdu" in se


@pytest.mark.parametrize("stream", [False, True])
def test_train_reads_the_table_hdu_names(two_tables, tmp_path, capsys, stream):
    path, _, _ = two_tables
    code, so, se = run(capsys, "train", "--catalog", path, "--features", "a,b", "--label",
                       "label", "--epochs", "1", "--hidden", "4", "--quiet", "--hdu", "OBJ",
                       "--out", tmp_path / "t.npz", *(["--stream"] if stream else []))
    assert code == 0, se
    assert fastmlp.load(tmp_path / "t.npz").feature_names == ("a", "b")


def test_hdu_errors(two_tables, tmp_path, capsys):
    path, model, _ = two_tables
    code, so, se = run(capsys, "predict", "--model", model, "--catalog", path, "--out",
                       tmp_path / "out.npy", "--hdu", "5")
    assert code != 0
    assert f"--hdu 5: HDU 5 of {path} is not in the file; its table HDUs: 1 'META' (a); " \
        "2 'OBJ' (a, b, label)" in se
    for argv in (("predict", "--model", model, "--catalog", path, "--out",
                  tmp_path / "out.npy"), ("train", "--catalog", path, "--quiet")):
        code, so, se = run(capsys, *argv, "--hdu", "0")
        assert code != 0 and "--hdu 0: HDU 0 of" in se and "is not a table" in se
        code, so, se = run(capsys, *argv, "--hdu", "NOPE")
        assert code != 0 and "--hdu NOPE: HDU 'NOPE' of" in se and "2 'OBJ'" in se
    code, so, se = run(capsys, "train", "--hdu", "2", "--quiet", "--epochs", "1")
    assert code != 0 and "--hdu 2: chooses the table of a FITS --catalog file" in se
    assert "synthetic catalog (no --catalog) has no HDUs" in se
    npy = tmp_path / "cat.npy"
    np.save(npy, np.zeros(3, dtype=[("a", "f8"), ("b", "f8")]))
    code, so, se = run(capsys, "predict", "--model", model, "--catalog", npy, "--out",
                       tmp_path / "out.npy", "--hdu", "1")
    assert code != 0 and "--hdu 1: chooses the table of a FITS catalog" in se
    assert not (tmp_path / "out.npy").exists()


def test_hdu_hint_only_for_a_column_missing_from_the_table(tmp_path, capsys):
    """An error about a column that is in the table (missing values in it, a label also a
    feature) is not cured by another HDU: no --hdu hint; a missing one still gets it."""
    a = np.where(np.arange(N) == 3, np.nan, np.random.default_rng(0).normal(size=N))
    obj = fits.BinTableHDU.from_columns([fits.Column(name="a", format="D", array=a),
                                         fits.Column(name="b", format="D", array=a),
                                         fits.Column(name="label", format="K",
                                                     array=(a > 0).astype(np.int64))],
                                        name="OBJ")
    meta = fits.BinTableHDU.from_columns([fits.Column(name="a", format="D",
                                                      array=np.arange(5.0))], name="META")
    path = tmp_path / "t.fits"
    fits.HDUList([fits.PrimaryHDU(), obj, meta]).writeto(path)
    train = ("train", "--catalog", path, "--label", "label", "--epochs", "1", "--quiet")
    for features in ("a,b", "a,b,label"):
        code, so, se = run(capsys, *train, "--features", features)
        assert code != 0 and ("missing or invalid" in se or "also listed" in se), se
        assert "--hdu" not in se
    code, so, se = run(capsys, *train, "--features", "a,c")
    assert code != 0 and "2 'META' (a); choose one with --hdu" in se


@pytest.mark.parametrize("hdu", ["OBJ", "2"])
def test_data_and_catalog_lines_say_which_hdu_was_read(two_tables, tmp_path, capsys, hdu):
    path, model, _ = two_tables
    code, so, se = run(capsys, "predict", "--model", model, "--catalog", path, "--out",
                       tmp_path / "out.npy", "--hdu", hdu)
    assert code == 0, se
    assert f"catalog: {path} (HDU 2 'OBJ'): {N} rows" in so
    for stream in ([], ["--stream"]):
        code, so, se = run(capsys, "train", "--catalog", path, "--features", "a,b", "--label",
                           "label", "--epochs", "1", "--hidden", "4", "--out",
                           tmp_path / "t.npz", "--hdu", hdu, *stream)
        assert code == 0, se
        assert f"data: {path} (HDU 2 'OBJ')" in so


def test_load_catalog_hdu_errors_name_the_keyword_and_tables(two_tables):
    path, _, _ = two_tables
    with pytest.raises(ValueError, match=r"hdu=5: .* has no HDU 5; its table HDUs: "
                                         r"1 'META', 2 'OBJ'"):
        fastmlp.load_catalog(path, features=["a", "b"], label="label", hdu=5)
    with pytest.raises(ValueError, match=r"hdu=0: HDU 0 of .* is not a table"):
        fastmlp.load_catalog(path, features=["a", "b"], label="label", hdu=0)
