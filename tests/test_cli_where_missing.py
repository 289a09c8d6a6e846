"""``--where`` reads SDSS's missing value -9999 in a column compared as it is as missing, like
NaN (the README: -9999 counts as NaN wherever columns are read by name): ``r < 18`` selects
neither a row with r = -9999 nor one with r NaN, in predict and in train (which failed on a
row the cut should have removed); +-inf too."""

import numpy as np

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
    np.testing.assert_array_equal(Where("flag != -9999").mask(cols), [True, False, True, True])


def test_equality_with_minus_9999_refused_saying_why(tmp_path, capsys):
    """flag == -9999 selected no row without saying why (-9999 is missing, the comparison
    unknown): refused, naming the comparison and what to write instead."""
    cat, _ = _catalog(tmp_path)
    model = fastmlp.MLP([5, 4, 2], loss="cross_entropy", features="colors:ugriz+r",
                        class_names=("star", "quasar"), seed=0)
    fastmlp.save(model, tmp_path / "m.npz")
    for text in ("r == -9999", "not -9999 == r"):
        code = main(["predict", "--model", str(tmp_path / "m.npz"), "--catalog", str(cat),
                     "--out", str(tmp_path / "o.npy"), "--where", text])
        err = capsys.readouterr().err
        assert code != 0
        assert "r == -9999: -9999 is read as a missing value" in err
        assert "selects none" in err and "r != -9999" in err
        assert not (tmp_path / "o.npy").exists()


def test_where_reads_inf_as_missing():
    """+-inf is missing as the features read it (features.missing_mask): r < 18 keeps no row
    with r = -inf, r > 18 none with +inf, and a colour with an infinite magnitude is
    unknown."""
    cols = {"r": np.array([17.0, -np.inf, np.inf, 19.0]),
            "g": np.array([18.0, 18.0, 18.0, np.inf])}
    np.testing.assert_array_equal(Where("r < 18").mask(cols), [True, False, False, False])
    np.testing.assert_array_equal(Where("r > 18").mask(cols), [False, False, False, True])
    np.testing.assert_array_equal(Where("not r >= 18").mask(cols), [True, False, False, False])
    np.testing.assert_array_equal(Where("r != 17").mask(cols), [False, False, False, True])
    w = Where("g-r < 5")
    w.check(["g", "r"])
    np.testing.assert_array_equal(w.mask(cols), [True, False, False, False])


def test_where_has_no_unused_pyarrow_expression():
    """Where.arrow() had no caller (Parquet prunes row groups from statistics, then masks)
    and disagreed with the mask on NaN: removed."""
    assert not hasattr(Where("r < 18"), "arrow")


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
