"""``fastmlp predict --out NAME.gz``: inputs ending .gz are read decompressed (.csv.gz,
.fits.gz), so a CSV or FITS output so named is gzipped (atomically, as every output), its
decompressed bytes those of the plain output; gzipped Parquet and .npy, which fastmlp does
not read, are refused before anything is written."""

import gzip

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main

N = 120


def _setup(tmp_path):
    rng = np.random.default_rng(5)
    t = np.zeros(N, dtype=[("a", "f8"), ("b", "f8")])
    t["a"], t["b"] = rng.normal(size=N), rng.normal(size=N)
    t["a"][3] = np.nan
    np.save(tmp_path / "cat.npy", t)
    m = fastmlp.MLP([2, 4, 2], loss="cross_entropy", features=["a", "b"],
                    class_names=("star", "quasar"), seed=1)
    fastmlp.save(m, tmp_path / "m.npz")
    return tmp_path / "m.npz", tmp_path / "cat.npy"


def _predict(capsys, model, cat, out, *extra):
    code = main(["predict", "--model", str(model), "--catalog", str(cat), "--out", str(out),
                 *extra])
    so, se = capsys.readouterr()
    return code, so, se


@pytest.mark.parametrize("fmt, names", [("csv", ("p.csv.gz", "p.gz")),
                                        ("fits", ("p.fits.gz", "P.FITS.GZ"))])
def test_gz_output_is_gzipped(tmp_path, capsys, fmt, names):
    if fmt == "fits":
        pytest.importorskip("astropy")
    else:
        pytest.importorskip("pyarrow")
    model, cat = _setup(tmp_path)
    plain = tmp_path / f"plain.{fmt}"
    assert _predict(capsys, model, cat, plain)[0] == 0
    for name in names:
        out = tmp_path / name
        code, so, se = _predict(capsys, model, cat, out, "--out-format", fmt)
        assert code == 0, se
        assert f"({fmt}, gzipped)" in so
        with gzip.open(out, "rb") as f:
            assert f.read() == plain.read_bytes()
    # and fastmlp reads it back as a catalog, as it reads any .csv.gz / .fits.gz
    back = fastmlp.load_catalog(tmp_path / names[0], features=["p_star", "p_quasar"],
                                label=False, missing="drop")
    assert back.X.shape == (N - 1, 2)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp file


@pytest.mark.parametrize("name, fmt", [("p.parquet.gz", None), ("p.npy.gz", None),
                                       ("p.gz", "npy")])
def test_gz_output_of_an_unreadable_kind_is_refused(tmp_path, capsys, name, fmt):
    model, cat = _setup(tmp_path)
    out = tmp_path / name
    code, so, se = _predict(capsys, model, cat, out, *(["--out-format", fmt] if fmt else []))
    assert code != 0
    assert f"--out {out}" in se and "not gzipped" in se and ".csv.gz or .fits.gz" in se
    assert not out.exists()


@pytest.mark.parametrize("name", ["p.csv.gz", "p.fits.gz"])
def test_gz_output_at_level_6(tmp_path, capsys, name):
    """Level 6 (zlib's default), not gzip's 9: 5x faster for files 2 % larger.  The gzip
    header's XFL byte says 2 for level 9, 4 for level 1, 0 otherwise."""
    pytest.importorskip("astropy" if "fits" in name else "pyarrow")
    model, cat = _setup(tmp_path)
    out = tmp_path / name
    code, so, se = _predict(capsys, model, cat, out)
    assert code == 0, se
    assert out.read_bytes()[8] == 0


@pytest.mark.parametrize("name", ["p.csv.gz", "p.fits.gz"])
def test_no_gz_file_left_after_an_error_mid_write(tmp_path, capsys, name):
    """A --label column holding a fraction in the last chunk fails after the first chunks
    were written: neither the .gz output nor a temporary file is left."""
    pytest.importorskip("astropy" if "fits" in name else "pyarrow")
    model, _ = _setup(tmp_path)
    rng = np.random.default_rng(6)
    t = np.zeros(N, dtype=[("a", "f8"), ("b", "f8"), ("label", "f8")])
    t["a"], t["b"] = rng.normal(size=N), rng.normal(size=N)
    t["label"] = (t["a"] > 0).astype(float)
    t["label"][-1] = 0.37                              # a redshift? refused where read
    cat = tmp_path / "lab.npy"
    np.save(cat, t)
    out = tmp_path / name
    code, so, se = _predict(capsys, model, cat, out, "--label", "label", "--chunk-rows", "20")
    assert code != 0 and "fractions such as 0.37" in se
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.npy", "lab.npy", "m.npz"]
