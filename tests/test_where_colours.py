"""--where on a colour: a name a-b that is not a column of the catalog is the difference of
the magnitude columns a and b, as a feature a-b is; a missing magnitude (NaN, inf, -9999)
leaves the row out, whether the comparison is negated or not."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from fastmlp.data import CatalogStream

N = 300


def _magnitudes(seed=0):
    """u, g, r and an id; some u / g missing (NaN, -9999, inf)."""
    rng = np.random.default_rng(seed)
    cat = np.zeros(N, dtype=[("id", "i8"), ("u", "f8"), ("g", "f8"), ("r", "f8")])
    cat["id"] = np.arange(N) + 1000
    cat["g"] = rng.normal(20, 0.5, N)
    cat["u"] = cat["g"] + rng.normal(0.5, 0.6, N)
    cat["r"] = cat["g"] - rng.normal(0.4, 0.5, N)
    cat["u"][[3, 50]] = -9999.0
    cat["g"][[7, 120]] = np.nan
    cat["u"][200] = np.inf
    return cat


def _known(cat, a, b):
    return np.isfinite(cat[a]) & np.isfinite(cat[b]) & (cat[a] != -9999) & (cat[b] != -9999)


def _write(cat, path):
    suffix = path.suffix
    if suffix == ".npy":
        np.save(path, cat)
    elif suffix == ".csv":
        with open(path, "w") as f:
            f.write(",".join(cat.dtype.names) + "\n")
            for row in cat:
                f.write(",".join(repr(v.item()) for v in row) + "\n")
    else:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        table = pa.table({n: cat[n] for n in cat.dtype.names})
        pq.write_table(table, path, row_group_size=64)     # several groups: pushdown runs
    return path


def _ids(path, where):
    got = fastmlp.load_catalog(path, features="r", label=False, extra="id", where=where)
    return got.extra["id"].astype(np.int64)


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".parquet"])
@pytest.mark.parametrize("text", ["u-g > 0.5", "`u-g` > 0.5", "0.5 < u-g"])
def test_load_catalog_filters_on_a_colour_of_two_magnitudes(tmp_path, suffix, text):
    cat = _magnitudes()
    path = _write(cat, tmp_path / f"mags{suffix}")
    with np.errstate(invalid="ignore"):
        want = _known(cat, "u", "g") & (cat["u"] - cat["g"] > 0.5)
    assert 0 < want.sum() < N - 10
    np.testing.assert_array_equal(_ids(path, text), cat["id"][want])


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_a_missing_magnitude_leaves_the_row_out_of_a_negated_colour_too(tmp_path, suffix):
    cat = _magnitudes()
    path = _write(cat, tmp_path / f"mags{suffix}")
    known = _known(cat, "u", "g")
    with np.errstate(invalid="ignore"):
        want = known & ~(cat["u"] - cat["g"] > 0.5)
    got = _ids(path, "not u-g > 0.5")
    np.testing.assert_array_equal(got, cat["id"][want])
    assert not np.isin(cat["id"][~known], got).any()
    # with the plain r, and / or keep their three-valued logic
    with np.errstate(invalid="ignore"):
        want = (known & (cat["u"] - cat["g"] < 0.3)) | (cat["r"] < 19.5)
    np.testing.assert_array_equal(_ids(path, "u-g < 0.3 or r < 19.5"), cat["id"][want])


def test_a_column_of_that_name_wins_over_the_colour(tmp_path):
    cat = _magnitudes()
    both = np.zeros(N, dtype=cat.dtype.descr + [("u-g", "f8")])
    for n in cat.dtype.names:
        both[n] = cat[n]
    both["u-g"] = np.linspace(-1, 1, N)          # not u - g: the column is what is read
    path = _write(both, tmp_path / "both.npy")
    np.testing.assert_array_equal(_ids(path, "u-g > 0.5"), both["id"][both["u-g"] > 0.5])
    np.testing.assert_array_equal(_ids(path, "`u-g` > 0.5"), both["id"][both["u-g"] > 0.5])


def test_a_name_that_is_neither_column_nor_colour_is_refused_naming_the_columns(tmp_path):
    path = _write(_magnitudes(), tmp_path / "mags.npy")
    for text in ("g-i < 1", "`g-i` < 1"):
        with pytest.raises(ValueError) as info:
            _ids(path, text)
        msg = str(info.value)
        assert "names column(s) ['g-i'] not in the catalog" in msg
        assert "magnitude columns 'a' and 'b'" in msg
        assert "available columns: ['id', 'u', 'g', 'r']" in msg


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_stream_selects_the_rows_load_catalog_selects(tmp_path, suffix):
    cat = _magnitudes()
    path = _write(cat, tmp_path / f"mags{suffix}")
    text = "`g-r` < 0.4 and u-g > 0.2"
    stream = CatalogStream(path, features="u-g,g-r", label=False, chunk_rows=50, extra="id",
                           where=text)
    got = np.concatenate([ch.extra["id"] for ch in stream.chunks(dropna=False)])
    np.testing.assert_array_equal(got.astype(np.int64), _ids(path, text))
    with np.errstate(invalid="ignore"):
        want = _known(cat, "u", "g") & (cat["g"] - cat["r"] < 0.4) & (cat["u"] - cat["g"] > 0.2)
    np.testing.assert_array_equal(got.astype(np.int64), cat["id"][want])


def _colour_model(tmp_path):
    model = fastmlp.MLP([2, 6, 1], seed=0, class_names=["STAR", "QSO"], positive=1,
                        backend="numpy")
    model.set_contract(features="u-g,g-r")
    fastmlp.save(model, tmp_path / "m.npz")
    return model


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_predict_where_on_a_colour(tmp_path, capsys, suffix):
    _colour_model(tmp_path)
    cat = _magnitudes()
    path = _write(cat, tmp_path / f"mags{suffix}")
    code = main(["predict", "--model", str(tmp_path / "m.npz"), "--catalog", str(path),
                 "--out", str(tmp_path / "out.npy"), "--id-column", "id", "--quiet",
                 "--backend", "numpy", "--chunk-rows", "70", "--where", "u-g > 0.5"])
    assert code == 0, capsys.readouterr().err
    out = np.load(tmp_path / "out.npy")
    with np.errstate(invalid="ignore"):
        want = _known(cat, "u", "g") & (cat["u"] - cat["g"] > 0.5)
    np.testing.assert_array_equal(out["id"], cat["id"][want])
    assert out["valid"].all()        # every row selected has both magnitudes


def test_train_where_on_a_colour(tmp_path, capsys):
    cat = _magnitudes()
    rng = np.random.default_rng(1)
    path = tmp_path / "train.csv"
    ok = _known(cat, "u", "g") & np.isfinite(cat["r"])
    with open(path, "w") as f:
        f.write("u,g,r,redshift\n")
        for row in cat[ok]:
            f.write(f"{row['u']:.6f},{row['g']:.6f},{row['r']:.6f},"
                    f"{rng.uniform(0, 3):.4f}\n")
    g, r = (np.round(cat[b][ok], 6) for b in "gr")      # the values as written
    want = int((g - r < 0.4).sum())
    code = main(["train", "--catalog", str(path), "--features", "u-g,g-r", "--label",
                 "redshift", "--where", "g-r < 0.4", "--epochs", "1", "--quiet",
                 "--backend", "numpy"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f": {want} rows (regression target 'redshift')" in out
