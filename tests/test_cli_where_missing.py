"""``--where`` reads SDSS's missing value -9999 in a column compared as it is as missing, like
NaN (the README: -9999 counts as NaN wherever columns are read by name): ``r < 18`` selects
neither a row with r = -9999 nor one with r NaN, in predict and in train (which failed on a
row the cut should have removed), and the pyarrow expression agrees with the NumPy mask."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from fastmlp.data.formats import Where
from conftest import ugriz_magnitudes

N = 300


def _catalog(tmp_path):
    rng = np.random.default_rng(4)
    mags = ugriz_magnitudes(N, rng)
    mags["r"][:40] = rng.uniform(15, 17.5, 40)      # enough bright rows in any case
    mags["r"][5], mags["r"][6] = -9999.0, np.nan
    t = np.zeros(N, dtype=[(b, "f8") for b in "ugriz"] + [("label", "i8")])
    for b in "ugriz":
        t[b] = mags[b]
    t["label"] = rng.integers(0, 2, N)
    t["label"][:10] = [0, 1] * 5
    path = tmp_path / "cat.npy"
    np.save(path, t)
    return path, t


def test_where_mask_reads_minus_9999_as_missing():
    cols = {"r": np.array([17.0, -9999.0, np.nan, 19.0]),
            "flag": np.array([1, -9999, 2, 3], np.int64)}
    np.testing.assert_array_equal(Where("r < 18").mask(cols), [True, False, False, False])
    # unknown stays unknown under not (SQL's rule, as NaN)
    np.testing.assert_array_equal(Where("not r >= 18").mask(cols), [True, False, False, False])
    np.testing.assert_array_equal(Where("flag < 5").mask(cols), [True, False, True, True])
    np.testing.assert_array_equal(Where("r == -9999").mask(cols), [False] * 4)


def test_arrow_expression_agrees_with_the_mask():
    """(-9999 only: pyarrow compares NaN, which is not null there, as a number.)"""
    pa = pytest.importorskip("pyarrow")
    cols = {"r": np.array([17.0, -9999.0, 16.0, 19.0]),
            "flag": np.array([1, -9999, 2, 3], np.int64)}
    table = pa.table(cols)
    # row 1 (r and flag -9999: unknown) never passes, whatever the logic around it
    for text, rows in (("r < 18", [0, 2]), ("not r >= 18", [0, 2]),
                       ("flag < 5 and r < 20", [0, 2, 3]), ("r < 18 or flag > 2", [0, 2, 3])):
        w = Where(text)
        kept = table.filter(w.arrow())
        np.testing.assert_array_equal(kept.column("flag").to_numpy(), cols["flag"][rows],
                                      err_msg=text)
        np.testing.assert_array_equal(np.flatnonzero(w.mask(cols)), rows, err_msg=text)


def test_predict_where_leaves_out_the_minus_9999_row(tmp_path, capsys):
    cat, t = _catalog(tmp_path)
    model = fastmlp.MLP([5, 4, 2], loss="cross_entropy", features="colors:ugriz+r",
                        class_names=("star", "quasar"), seed=0)
    fastmlp.save(model, tmp_path / "m.npz")
    out = tmp_path / "out.npy"
    code = main(["predict", "--model", str(tmp_path / "m.npz"), "--catalog", str(cat),
                 "--out", str(out), "--where", "r < 18"])
    err = capsys.readouterr().err
    assert code == 0, err
    written = np.load(out)
    with np.errstate(invalid="ignore"):
        expected = np.flatnonzero((t["r"] < 18) & (t["r"] != -9999))
    np.testing.assert_array_equal(written["row"], expected)
    assert 5 not in written["row"] and 6 not in written["row"]
    assert written["valid"].all()


def test_train_where_removes_the_minus_9999_row(tmp_path, capsys):
    cat, t = _catalog(tmp_path)
    code = main(["train", "--catalog", str(cat), "--features", "colors:ugriz+r",
                 "--label", "label", "--where", "r < 18", "--epochs", "1", "--hidden", "4",
                 "--validation", "0", "--quiet", "--test-fraction", "0.3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    with np.errstate(invalid="ignore"):
        n_kept = int(np.count_nonzero((t["r"] < 18) & (t["r"] != -9999)))
    assert str(n_kept) in out
