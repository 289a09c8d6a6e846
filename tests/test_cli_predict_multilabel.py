"""``fastmlp predict`` on a multilabel model (a sigmoid per output, loss bce): one probability
column p_<name> and one label column label_<name> per output, the values model.predict_proba
and model.predict give on the same rows (the model's cut, 0.5 unless it stores another; NaN
and -1 in a row without a prediction), in every output format; the summary counts the rows
labelled 1 per label; --label and --plot (one class per row) are refused."""

import csv

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from conftest import ugriz_magnitudes

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pcsv = pytest.importorskip("pyarrow.csv")
fits = pytest.importorskip("astropy.io.fits")

BANDS = "ugriz"
NAMES = ("star", "qso", "bright")
# a magnitude that overflows the network (its first layer multiplies u-g by 1e4) but not
# the dtype the catalog is read in: a finite input whose output is not finite
HUGE = {"float32": 1e36, "float64": 1e306}


def _catalog(n, dtype, seed=0):
    """Magnitudes; row 2 has a NaN, row 5 SDSS's -9999 (missing), row 8 an inf, row 11 a
    huge u (finite input, overflowing output)."""
    t = ugriz_magnitudes(n, np.random.default_rng(seed))
    t["r"][2], t["g"][5], t["i"][8], t["u"][11] = np.nan, -9999.0, np.inf, HUGE[dtype]
    return {b: t[b] for b in BANDS}


def _write_csv(path, table):
    names = list(table)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for row in zip(*(table[k] for k in names)):
            w.writerow(["" if np.isnan(v) else repr(float(v)) for v in row])


def _model(dtype, class_names=NAMES, threshold=None):
    model = fastmlp.MLP([4, 8, 3], activation="relu", loss="bce", dtype=dtype, seed=7,
                        features="colors:ugriz", class_names=class_names,
                        threshold=threshold)
    # hidden unit 0 is 1e4 (u-g) and counts for 1e-4 of it: of order one in an ordinary
    # row, but the u-g of HUGE overflows it (inf), and the logits with it
    model.weights[0][0, 0], model.weights[1][0, :] = 1e4, 1e-4
    model.biases[-1][...] = [0.3, -0.2, 0.1]
    return model


def _read(path, fmt):
    """{column: array} of a written table, in the file's column order."""
    if fmt == "parquet":
        t = pq.read_table(path)
    elif fmt == "csv":
        t = pcsv.read_csv(path)
    elif fmt == "fits":
        with fits.open(path) as h:
            d = h[1].data
            return {k: np.asarray(d[k]) for k in d.names}
    else:
        a = np.load(path)
        return {k: a[k] for k in a.dtype.names}
    # CSV's empty fields (NaN probabilities) are nulls: back to NaN
    return {k: np.asarray(t.column(k).to_numpy(zero_copy_only=False)) for k in t.column_names}


def _predict(capsys, *argv):
    code = main(["predict", "--quiet", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def _proba_and_labels(got, names, dtype="float64"):
    """(probabilities, labels) of a written table; the probabilities in the model's dtype
    (CSV writes a float32 in the fewest digits that give it back as a float32)."""
    proba = np.stack([got[f"p_{c}"].astype(dtype) for c in names], axis=1)
    labels = np.stack([got[f"label_{c}"] for c in names], axis=1)
    return proba, labels


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits", "npy"])
def test_every_format_gives_predict_proba_and_predict(tmp_path, capsys, fmt, dtype):
    """Chunks of 7 rows, rows without a prediction among them: the probabilities and 0/1
    labels of model.predict_proba / model.predict on the same rows, NaN and -1 where they
    give NaN and -1."""
    table = _catalog(40, dtype)
    model = _model(dtype)
    fastmlp.save(model, tmp_path / "ml.npz")
    _write_csv(tmp_path / "cat.csv", table)
    out = tmp_path / f"out.{fmt}"
    code, so, se = _predict(capsys, "--model", tmp_path / "ml.npz", "--catalog",
                            tmp_path / "cat.csv", "--out", out, "--chunk-rows", "7")
    assert code == 0, se
    got = _read(out, fmt)
    assert list(got) == ["row", "p_star", "p_qso", "p_bright", "label_star", "label_qso",
                         "label_bright", "valid"]
    want_p, want_lab = model.predict_proba(table), model.predict(table)
    invalid = [2, 5, 8, 11]
    assert np.flatnonzero(want_lab[:, 0] < 0).tolist() == invalid    # the case is as meant
    proba, labels = _proba_and_labels(got, NAMES, dtype)
    assert 0.05 < np.nanmean(proba) < 0.95                  # not all saturated at 0 or 1
    np.testing.assert_array_equal(proba, want_p)            # NaN where NaN
    np.testing.assert_array_equal(labels, want_lab)
    assert set(np.unique(labels[np.asarray(got["valid"], bool)]).tolist()) == {0, 1}
    assert np.flatnonzero(~np.asarray(got["valid"], bool)).tolist() == invalid
    np.testing.assert_array_equal(got["row"], np.arange(40))
    if fmt in ("parquet", "npy"):
        assert got["p_star"].dtype == np.dtype(dtype) and got["label_star"].dtype == np.int64
    n_pos = ", ".join(f"{c}={int(k)}" for c, k in zip(NAMES, (want_lab == 1).sum(axis=0)))
    assert "multilabel, labels star, qso, bright, label 1 where P >= 0.5 (each output)" in so
    assert f"rows labelled 1 per label (of 36 rows with a prediction): {n_pos}" in so
    assert "4 rows got no prediction" in so


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_models_cut_and_a_threshold_option_label_as_predict(tmp_path, capsys, dtype):
    """A model storing a cut of 0.3 labels at 0.3 (not 0.5), and --threshold 0.7 overrides
    it for every output, as model.predict with that threshold does."""
    table = _catalog(60, dtype, seed=1)
    model = _model(dtype, threshold=0.3)
    fastmlp.save(model, tmp_path / "ml.npz")
    _write_csv(tmp_path / "cat.csv", table)
    p = model.predict_proba(table)
    assert ((p >= 0.3) & (p < 0.5)).any() and ((p >= 0.5) & (p < 0.7)).any()
    for extra, cut in (([], 0.3), (["--threshold", "0.7"], 0.7)):
        out = tmp_path / f"out{cut}.npy"
        code, so, se = _predict(capsys, "--model", tmp_path / "ml.npz", "--catalog",
                                tmp_path / "cat.csv", "--out", out, *extra)
        assert code == 0, se
        assert f"label 1 where P >= {cut:g} (each output)" in so
        want = _model(dtype, threshold=cut).predict(table)
        np.testing.assert_array_equal(_proba_and_labels(np.load(out), NAMES)[1], want)


def test_a_model_without_class_names_numbers_its_columns(tmp_path, capsys):
    table = _catalog(20, "float32")
    model = _model("float32", class_names=None)
    fastmlp.save(model, tmp_path / "ml.npz")
    _write_csv(tmp_path / "cat.csv", table)
    code, so, se = _predict(capsys, "--model", tmp_path / "ml.npz", "--catalog",
                            tmp_path / "cat.csv", "--out", tmp_path / "out.npy")
    assert code == 0, se
    a = np.load(tmp_path / "out.npy")
    assert a.dtype.names == ("row", "p_0", "p_1", "p_2", "label_0", "label_1", "label_2",
                             "valid")
    np.testing.assert_array_equal(_proba_and_labels(a, "012")[1], model.predict(table))


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")      # 30 iterations are enough
def test_a_multilabel_sklearn_classifier_predicts_as_the_estimator(tmp_path, capsys):
    """MLPClassifier fitted on a DataFrame and a 0/1 matrix: its saved model, predicted by
    the CLI on the same columns, gives the estimator's predict_proba and predict."""
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import make_multilabel_classification
    from fastmlp.sklearn import MLPClassifier
    X, Y = make_multilabel_classification(150, 4, n_classes=3, random_state=0)
    frame = pd.DataFrame(X, columns=["w", "x", "y", "z"])
    clf = MLPClassifier((8,), max_iter=30, random_state=0).fit(frame, Y)
    clf.save(tmp_path / "ml.npz")
    frame.to_csv(tmp_path / "cat.csv", index=False)
    code, so, se = _predict(capsys, "--model", tmp_path / "ml.npz", "--catalog",
                            tmp_path / "cat.csv", "--out", tmp_path / "out.parquet")
    assert code == 0, se
    proba, labels = _proba_and_labels(_read(tmp_path / "out.parquet", "parquet"), "012")
    np.testing.assert_allclose(proba, clf.predict_proba(frame), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(labels, clf.predict(frame))


def test_an_empty_selection_writes_every_column(tmp_path, capsys):
    _write_csv(tmp_path / "cat.csv", _catalog(20, "float32"))
    fastmlp.save(_model("float32"), tmp_path / "ml.npz")
    code, so, se = _predict(capsys, "--model", tmp_path / "ml.npz", "--catalog",
                            tmp_path / "cat.csv", "--out", tmp_path / "out.parquet",
                            "--where", "r > 99")
    assert code == 0, se
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.num_rows == 0 and t.column_names == [
        "row", "p_star", "p_qso", "p_bright", "label_star", "label_qso", "label_bright",
        "valid"]
    assert t.schema.field("label_qso").type == pa.int64()


@pytest.mark.parametrize("option, message", [
    (["--label", "u"], "--label u: evaluates one class per row"),
    (["--plot", "PLOT"], "colours rows by their one predicted class"),
    (["--id-column", "label_qso"], "--id-column label_qso: the output already has"),
])
def test_options_of_one_class_per_row_are_refused(tmp_path, capsys, option, message):
    _write_csv(tmp_path / "cat.csv", {**_catalog(20, "float32"),
                                      "label_qso": np.arange(20.0)})
    fastmlp.save(_model("float32"), tmp_path / "ml.npz")
    option = [str(tmp_path / "p.png") if a == "PLOT" else a for a in option]
    code, so, se = _predict(capsys, "--model", tmp_path / "ml.npz", "--catalog",
                            tmp_path / "cat.csv", "--out", tmp_path / "out.npy", *option)
    assert code == 2 and message in se
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "p.png").exists()
