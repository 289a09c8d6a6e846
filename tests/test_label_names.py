"""Label columns whose contents do not fit what is asked of them: a regression of text
labels ('STAR', 'QSO') says why it cannot be, on every path (load_catalog + the CLI in
memory, CatalogStream / fit_stream, `train --stream`); class names differing only in case
get distinct columns in a FITS prediction table."""

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, fit_stream
from fastmlp.cli import main
from fastmlp.data import CatalogStream, load_catalog

N = 120
WHY = "regression needs numeric targets, but the label column 'class' holds text (e.g. "


def _table(n=N, seed=0):
    rng = np.random.default_rng(seed)
    mags = rng.normal(19.0, 1.0, (n, 5))
    cls = np.array(["STAR", "QSO"])[np.arange(n) % 2]
    return mags, cls


def _write(tmp, fmt, mags, cls):
    """The catalog u g r i z, class as ``fmt`` (csv, parquet or fits)."""
    n = len(cls)
    if fmt == "csv":
        path = tmp / "c.csv"
        with open(path, "w") as f:
            f.write("u,g,r,i,z,class\n")
            for row, c in zip(mags, cls):
                f.write(",".join(f"{v:.6f}" for v in row) + f",{c}\n")
    elif fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        path = tmp / "c.parquet"
        pq.write_table(pa.table({**{b: mags[:, k] for k, b in enumerate("ugriz")},
                                 "class": cls}), path, row_group_size=n // 3)
    else:
        fits = pytest.importorskip("astropy.io.fits")
        path = tmp / "c.fits"
        cols = [fits.Column(name=b, format="D", array=mags[:, k]) for k, b in enumerate("ugriz")]
        cols.append(fits.Column(name="class", format="4A", array=cls))
        fits.BinTableHDU.from_columns(cols).writeto(path)
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _says_why(text, flag="--task classification"):
    assert WHY in text, text
    assert "'STAR'" in text or "'QSO'" in text, text
    assert flag in text and "numeric label column" in text, text


# -- a regression of text labels ------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fmt", ["csv", "parquet", "fits"])
def test_cli_regression_of_text_labels_says_why(capsys, tmp_path, fmt, stream):
    path = _write(tmp_path, fmt, *_table())
    out_model = tmp_path / "m.npz"
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "colors:ugriz",
                          "--label", "class", "--task", "regression", "--epochs", 1, "--quiet",
                          "--out", out_model, *(["--stream", "--chunk-rows", 50] if stream
                                                else []))
    assert code == 2 and err.startswith("fastmlp: error: --task regression: "), err
    _says_why(err)
    assert "trained" not in out and not out_model.exists()


def test_cli_log1p_target_of_text_labels_says_why(capsys, tmp_path):
    path = _write(tmp_path, "csv", *_table())
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "colors:ugriz",
                          "--label", "class", "--log1p-target", "--epochs", 1, "--quiet",
                          "--out", tmp_path / "m.npz")
    assert code == 2 and err.startswith("fastmlp: error: --log1p-target: "), err
    _says_why(err)


def test_cli_regression_of_the_synthetic_classes_is_refused(capsys, tmp_path):
    code, out, err = _run(capsys, "train", "--n-samples", 200, "--task", "regression",
                          "--epochs", 1, "--quiet", "--out", tmp_path / "m.npz")
    assert code == 2 and "regression needs numeric targets" in err, err
    assert "'star'" in err and "--task classification" in err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("scanned", [False, True])
@pytest.mark.parametrize("fmt", ["csv", "parquet", "fits"])
def test_fit_stream_regression_of_text_labels_says_why(tmp_path, fmt, scanned):
    path = _write(tmp_path, fmt, *_table())
    source = CatalogStream(path, features="colors:ugriz", label="class", chunk_rows=50)
    if scanned:
        source.scan()
    model = MLP([4, 8, 1], loss="mse")
    with pytest.raises(ValueError) as info:
        fit_stream(model, source, epochs=1, progress=False)
    _says_why(str(info.value), "classification")
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize("scanned", [False, True])
def test_use_targets_of_text_labels_says_why(tmp_path, scanned):
    path = _write(tmp_path, "csv", *_table())
    s = CatalogStream(path, features="colors:ugriz", label="class", chunk_rows=50)
    with pytest.raises(ValueError) as info:
        if scanned:             # refused at once: the scan found names
            s.scan().use_targets()
        else:                   # refused by the scan that reads them
            s.use_targets().scan()
    _says_why(str(info.value), "classification")
    assert s.label_is_text is scanned


def test_cli_predict_evaluating_a_regression_against_text_labels_says_why(capsys, tmp_path):
    path = _write(tmp_path, "csv", *_table())
    model_path = tmp_path / "r.npz"
    fastmlp.save(MLP([4, 3, 1], loss="mse", features="colors:ugriz"), model_path)
    out = tmp_path / "p.csv"
    code, so, se = _run(capsys, "predict", "--model", model_path, "--catalog", path,
                        "--out", out, "--label", "class", "--quiet")
    assert code == 2 and WHY in se, se
    assert "r.npz is a regression: give --label the column of its targets" in se
    assert not out.exists()


def test_load_catalog_says_whether_the_labels_are_text(tmp_path):
    mags, cls = _table()
    cat = load_catalog(_write(tmp_path, "csv", mags, cls), features="colors:ugriz",
                       label="class")
    assert cat.meta["label_text"] is True and cat.class_names == ("QSO", "STAR")
    signed = tmp_path / "s.csv"
    with open(signed, "w") as f:
        f.write("a,t\n" + "".join(f"{k * 0.1:.2f},{1 if k % 2 else -1}\n" for k in range(20)))
    cat = load_catalog(signed, features="a", label="t")
    assert cat.meta["label_text"] is False and cat.class_names == ("-1", "1")


def test_cli_regression_of_signed_integer_labels_keeps_their_values(capsys, tmp_path):
    """-1 / +3 labels regressed in memory: the targets are -1 / +3 (as --stream reads
    them), not the class indices 0 / 1."""
    rng = np.random.default_rng(1)
    t = np.where(rng.random(300) < 0.5, -1, 3)
    a = t + rng.normal(0, 0.05, t.size)
    path = tmp_path / "t.csv"
    with open(path, "w") as f:
        f.write("a,t\n" + "".join(f"{x:.4f},{y}\n" for x, y in zip(a, t)))
    model_path = tmp_path / "m.npz"
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "a", "--label", "t",
                          "--task", "regression", "--epochs", 40, "--lr", 0.03, "--hidden", 8,
                          "--quiet", "--out", model_path)
    assert code == 0, err
    pred = fastmlp.load(model_path).predict(a[:, None])
    high, low = pred[t == 3].mean(), pred[t == -1].mean()
    assert high > 2 and low < -0.5, (high, low)


# -- class names differing only in case, in a FITS prediction table -------------------------
def _fits_columns(path):
    """Every column of the FITS table at ``path``, read with fastmlp's own FITS reader."""
    from fastmlp.data.fits_table import FitsTable
    t = FitsTable(path)
    return t.load(t.columns)


def _case_catalog(tmp_path, n=90):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    mags, _ = _table(n, seed=2)
    cls = np.array(["star", "STAR", "qso"])[np.arange(n) % 3]
    path = tmp_path / "case.parquet"
    pq.write_table(pa.table({**{b: mags[:, k] for k, b in enumerate("ugriz")}, "class": cls,
                             "objid": np.arange(n) + 7}), path)
    return path, mags


def test_cli_fits_output_names_classes_differing_in_case_apart(capsys, tmp_path):
    pytest.importorskip("astropy.io.fits")
    cat, mags = _case_catalog(tmp_path)
    model_path = tmp_path / "m.npz"
    code, out, err = _run(capsys, "train", "--catalog", cat, "--features", "colors:ugriz",
                          "--label", "class", "--epochs", 1, "--hidden", 4, "--quiet",
                          "--out", model_path)
    assert code == 0, err
    model = fastmlp.load(model_path)
    assert list(model.class_names) == ["STAR", "qso", "star"]
    fits_out, pq_out = tmp_path / "p.fits", tmp_path / "p.parquet"
    code, out, err = _run(capsys, "predict", "--model", model_path, "--catalog", cat,
                          "--out", fits_out, "--id-column", "objid", "--quiet")
    assert code == 0, err
    assert "'STAR', 'star'" in out and "p_STAR_0, p_star_2" in out
    t = _fits_columns(fits_out)
    assert list(t) == ["objid", "p_STAR_0", "p_qso", "p_star_2", "label", "class", "valid"]
    colours = np.column_stack([mags[:, k] - mags[:, k + 1] for k in range(4)])
    proba = model.predict_proba(colours)
    for j, name in enumerate(["p_STAR_0", "p_qso", "p_star_2"]):
        np.testing.assert_allclose(t[name], proba[:, j], rtol=1e-6)
    assert np.array_equal(t["class"], np.asarray(model.class_names)[t["label"]])
    # Parquet tells the names apart: written as they are
    code, out, err = _run(capsys, "predict", "--model", model_path, "--catalog", cat,
                          "--out", pq_out, "--id-column", "objid", "--quiet")
    assert code == 0, err
    import pyarrow.parquet as pq
    got = pq.read_table(pq_out)
    assert got.column_names == ["objid", "p_STAR", "p_qso", "p_star", "label", "class", "valid"]
    np.testing.assert_array_equal(got.column("p_star").to_numpy(), t["p_star_2"])
    assert "differ only in case" not in out


def _saved(tmp_path, sizes, loss, names):
    m = MLP(sizes, activation="tanh", loss=loss, features="colors:ugriz", class_names=names,
            seed=3)
    path = tmp_path / "m.npz"
    fastmlp.save(m, path)
    return m, path


def _predict_fits(capsys, tmp_path, loss, names, *extra):
    """fastmlp predict of a 4-5-3 model with these classes into p.fits: (status, stderr,
    the output's path)."""
    pytest.importorskip("astropy.io.fits")
    cat, _ = _case_catalog(tmp_path)
    _, path = _saved(tmp_path, [4, 5, 3], loss, names)
    out = tmp_path / "p.fits"
    code, _, se = _run(capsys, "predict", "--model", path, "--catalog", cat, "--out", out,
                       "--quiet", *extra)
    return code, se, out


def test_cli_fits_output_of_a_multilabel_model_with_classes_differing_in_case(capsys,
                                                                               tmp_path):
    code, se, out = _predict_fits(capsys, tmp_path, "bce", ("A", "a", "b"))
    assert code == 0, se
    assert list(_fits_columns(out)) == ["row", "p_A_0", "p_a_1", "p_b", "label_A_0",
                                        "label_a_1", "label_b", "valid"]


def test_cli_fits_output_refuses_names_still_clashing_and_ids_clashing_renamed(capsys,
                                                                                tmp_path):
    code, se, out = _predict_fits(capsys, tmp_path, "cross_entropy", ("STAR", "star", "star_1"))
    assert code == 2 and "'p_star_1' and 'p_star_1'" in se and "write .parquet" in se, se
    assert "'STAR', 'star', 'star_1'" in se and not out.exists()
    code, se, out = _predict_fits(capsys, tmp_path, "cross_entropy", ("STAR", "qso", "star"),
                                  "--id-column", "P_Star_2")
    assert code == 2 and "already has a column 'p_star_2'" in se, se
    assert not out.exists()


def test_fits_writer_refuses_columns_differing_only_in_case(tmp_path):
    pytest.importorskip("astropy.io.fits")
    from fastmlp.data.writers import make_writer
    out = tmp_path / "w.fits"
    with open(out, "wb") as fh:
        w = make_writer("fits", fh, ["QSO", "qso"], out, label_column="label")
        cols = {"row": np.arange(3), "p_QSO": np.zeros(3), "p_qso": np.ones(3),
                "label": np.zeros(3, np.int64), "valid": np.ones(3, bool)}
        with pytest.raises(ValueError, match="'p_QSO' and 'p_qso' differ only in case"):
            w.write(cols)
    assert out.stat().st_size == 0
