"""``fastmlp predict`` and the names of its output columns: an --id-column is written as it is
whatever its name, unless it clashes with a column the model's kind writes (refused before
anything is written); only a one-class-per-row classifier's own "label" gets a "class"
column beside it; CSV headers are quoted as RFC 4180 says (a quote doubled), so that class
names with quotes, commas and line breaks read back exactly; the help texts say what
--threshold does and which formats predict writes."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from fastmlp.cli.args import build_parser

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pcsv = pytest.importorskip("pyarrow.csv")

FORMATS = ("csv", "parquet", "npy")
N = 6
MODELS = {    # layer sizes, loss, class names
    "binary": ([4, 6, 1], "bce", ("a", "b")),
    "multiclass": ([4, 6, 3], "cross_entropy", ("a", "b", "c")),
    "multilabel": ([4, 6, 3], "bce", ("a", "b", "c")),
    "regression": ([4, 6, 1], "mse", None),
}
IDS = {"big": np.arange(500, 500 + N), "small": np.array([0, 1, 2, 0, 1, 2]),
       "text": np.array([f"S{k}" for k in range(N)])}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _model(tmp_path, kind, class_names=None):
    sizes, loss, names = MODELS[kind]
    m = fastmlp.MLP(sizes, activation="tanh", loss=loss, features="colors:ugriz",
                    class_names=class_names or names, seed=3)
    path = tmp_path / f"{kind}.npz"
    fastmlp.save(m, path)
    return m, path


def _catalog(tmp_path, id_name, ids):
    rng = np.random.default_rng(0)
    mags = {b: rng.uniform(17, 21, N) for b in "ugriz"}
    path = tmp_path / f"cat_{id_name}_{ids.dtype.kind}_{int(ids[0] == 0)}.parquet"
    pq.write_table(pa.table({**mags, id_name: ids}), path)
    return mags, path


def _read(path, fmt):
    if fmt == "npy":
        a = np.load(path)
        return {k: a[k] for k in a.dtype.names}
    t = pq.read_table(path) if fmt == "parquet" else pcsv.read_csv(path)
    return {k: np.asarray(t.column(k).to_pylist()) for k in t.column_names}


def _expected_columns(kind, model, id_name):
    names = list(MODELS[kind][2] or ())
    if kind == "regression":
        return [id_name, "prediction", "valid"]
    if kind == "multilabel":
        return [id_name] + [f"p_{c}" for c in names] + [f"label_{c}" for c in names] + ["valid"]
    return [id_name] + [f"p_{c}" for c in names] + ["label", "class", "valid"]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("ids", sorted(IDS))
@pytest.mark.parametrize("kind,id_name", [("multilabel", "label"), ("regression", "label"),
                                          ("regression", "class"),
                                          ("multilabel", "class")])
def test_an_id_named_like_a_label_is_written_as_it_is(capsys, tmp_path, kind, id_name, ids,
                                                     fmt):
    """A multilabel or regression model writes no one-class-per-row label: an id column
    called label or class is copied verbatim, with no 'class' column derived from it (it was
    taken for class indices: an internal error for large or text ids, a bogus 'class' column
    for small ones)."""
    model, mpath = _model(tmp_path, kind)
    mags, cat = _catalog(tmp_path, id_name, IDS[ids])
    out = tmp_path / f"o.{fmt}"
    code, so, se = run(capsys, "predict", "--model", mpath, "--catalog", cat, "--out", out,
                       "--id-column", id_name, "--quiet")
    assert code == 0, se
    t = _read(out, fmt)
    assert list(t) == _expected_columns(kind, model, id_name)
    got = [str(v) for v in t[id_name]]
    assert got == [str(v) for v in IDS[ids]]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind,id_name", [
    ("binary", "label"), ("binary", "class"), ("binary", "p_a"), ("binary", "valid"),
    ("multiclass", "label"), ("multiclass", "class"), ("multiclass", "p_c"),
    ("multilabel", "p_b"), ("multilabel", "label_a"), ("multilabel", "valid"),
    ("regression", "prediction"), ("regression", "valid")])
def test_an_id_clashing_with_an_output_column_is_refused(capsys, tmp_path, kind, id_name,
                                                         fmt):
    model, mpath = _model(tmp_path, kind)
    _, cat = _catalog(tmp_path, id_name, IDS["small"])
    out = tmp_path / f"o.{fmt}"
    code, so, se = run(capsys, "predict", "--model", mpath, "--catalog", cat, "--out", out,
                       "--id-column", id_name, "--quiet")
    assert code != 0
    assert f"--id-column {id_name}: the output already has a column {id_name!r}" in se
    assert not out.exists() and list(tmp_path.glob("o.*")) == []


@pytest.mark.parametrize("kind,id_name,clash", [
    ("binary", "Label", "label"), ("binary", "CLASS", "class"), ("binary", "P_A", "p_a"),
    ("multilabel", "Label_B", "label_b"), ("regression", "Prediction", "prediction"),
    ("regression", "VALID", "valid")])
def test_a_fits_output_refuses_an_id_clashing_in_another_case(capsys, tmp_path, kind,
                                                              id_name, clash):
    """FITS column names are case-insensitive: an id 'Label' beside predict's 'label' made a
    table where a reader asking for either column gets the same one."""
    model, mpath = _model(tmp_path, kind)
    _, cat = _catalog(tmp_path, id_name, IDS["small"])
    out = tmp_path / "o.fits"
    code, so, se = run(capsys, "predict", "--model", mpath, "--catalog", cat, "--out", out,
                       "--id-column", id_name, "--quiet")
    assert code != 0
    assert (f"--id-column {id_name}: the FITS output already has a column {clash!r}, and "
            "FITS column names are case-insensitive") in se
    assert not out.exists() and list(tmp_path.glob("o.*")) == []
    # Parquet's names are case-sensitive: the same id is written there, as it is
    out = tmp_path / "o.parquet"
    code, so, se = run(capsys, "predict", "--model", mpath, "--catalog", cat, "--out", out,
                       "--id-column", id_name, "--quiet")
    assert code == 0, se
    t = _read(out, "parquet")
    assert list(t) == _expected_columns(kind, model, id_name)
    assert [int(v) for v in t[id_name]] == list(IDS["small"])


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_classifier_still_writes_its_class_column(capsys, tmp_path, kind, fmt):
    model, mpath = _model(tmp_path, kind)
    mags, cat = _catalog(tmp_path, "objid", IDS["big"])
    out = tmp_path / f"o.{fmt}"
    code, so, se = run(capsys, "predict", "--model", mpath, "--catalog", cat, "--out", out,
                       "--id-column", "objid", "--quiet")
    assert code == 0, se
    t = _read(out, fmt)
    assert list(t) == _expected_columns(kind, model, "objid")
    X = np.column_stack([mags[a] - mags[b] for a, b in zip("ugri", "griz")])
    want = np.asarray(MODELS[kind][2])[model.predict(X)]
    assert [str(c) for c in t["class"]] == want.tolist()


def test_the_writer_derives_class_only_from_the_column_it_is_told(tmp_path):
    """make_writer's label_column: a column merely named "label" is an ordinary one."""
    from fastmlp.data.writers import make_writer
    out = tmp_path / "w.npy"
    with open(out, "wb") as fh:
        w = make_writer("npy", fh, ["a", "b"], out)
        w.write({"label": np.array([500, 501]), "valid": np.ones(2, bool)})
        w.close()
    a = np.load(out)
    assert a.dtype.names == ("label", "valid")
    assert a["label"].tolist() == [500, 501]


NASTY = ('q"x', "a,b", 'say "hi", twice', "two\nlines", 'x""y')


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_csv_headers_read_back_exactly(capsys, tmp_path, kind):
    """A class name with a quote gave the header "p_q"x", read back as p_qx": quotes are
    doubled inside the quoted name (RFC 4180), commas and line breaks stay inside it."""
    pd = pytest.importorskip("pandas")
    names = NASTY[:3] if kind == "multiclass" else NASTY[2:]
    model, mpath = _model(tmp_path, kind, class_names=names)
    _, cat = _catalog(tmp_path, "objid", IDS["big"])
    out = tmp_path / "o.csv"
    code, so, se = run(capsys, "predict", "--model", mpath, "--catalog", cat, "--out", out,
                       "--id-column", "objid", "--quiet")
    assert code == 0, se
    want = ["objid"] + [f"p_{c}" for c in names] + (
        ["label", "class"] if kind == "multiclass" else [f"label_{c}" for c in names]) \
        + ["valid"]
    assert list(pd.read_csv(out).columns) == want
    t = pcsv.read_csv(out, parse_options=pcsv.ParseOptions(newlines_in_values=True))
    assert t.column_names == want
    assert t.num_rows == N
    if kind == "multiclass":          # the class names in the rows read back too
        assert set(t.column("class").to_pylist()) <= set(names)


def _predict_parser():
    p = build_parser()
    sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["predict"]


def test_predict_help_says_what_threshold_does_and_the_formats():
    pr = _predict_parser()
    th = next(a for a in pr._actions if "--threshold" in a.option_strings)
    assert "positive class" in th.help and "multilabel" in th.help
    assert "each output" in th.help
    assert "FITS" in pr.description
    assert "Parquet, CSV, FITS or .npy" in pr.description


def test_threshold_on_a_multiclass_model_without_positive_names_the_option(capsys, tmp_path):
    model, mpath = _model(tmp_path, "multiclass")
    _, cat = _catalog(tmp_path, "objid", IDS["big"])
    out = tmp_path / "o.csv"
    code, so, se = run(capsys, "predict", "--model", mpath, "--catalog", cat, "--out", out,
                       "--threshold", "0.3", "--quiet")
    assert code != 0 and "--threshold 0.3:" in se and "stores no positive class" in se
    assert not out.exists()
