"""``fastmlp predict``: every output format, the pipelined stream, --where, --label
evaluation (the train report, streamed), progress lines and chunk counts."""

import re

import numpy as np
import pytest

from fastmlp import MLP, metrics
from fastmlp import io as fio
from fastmlp.cli import main
from fastmlp.cli.evaluation import StreamingClassificationReport
from fastmlp.data import make_photometric_catalog
from fastmlp.data.stream import BackgroundWriter, CatalogStream, RowProgress, prefetch
from fastmlp.training import fit

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
fits = pytest.importorskip("astropy.io.fits")

N = 3000


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A 3-class model on colors:ugriz and a Parquet catalog with row groups of 700 rows."""
    d = tmp_path_factory.mktemp("pred")
    cat = make_photometric_catalog(N, galaxy_fraction=0.3, seed=5, dtype="float64")
    mags = {b: cat.extra[b].astype(np.float64) for b in "ugriz"}
    mags["r"][[7, 1500]] = [np.nan, -9999.0]
    names = [str(c) for c in cat.class_names]
    model = MLP([4, 16, 3], seed=0, features="colors:ugriz", class_names=names,
                positive=cat.positive, backend="numpy")
    table = {**mags}
    fit(model, table, cat.y, epochs=3, lr=1e-2, progress=False, drop_invalid=True,
        standardize=True, backend="numpy")
    fio.save(model, d / "m.npz")
    ids = np.arange(N, dtype=np.int64) + 2 ** 60
    src = d / "cat.parquet"
    pq.write_table(pa.table({**mags, "objid": ids, "class": np.asarray(names)[cat.y]}), src,
                   row_group_size=700)
    return d, model, mags, ids, np.asarray(names)[cat.y]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _read(path, fmt):
    if fmt == "parquet":
        t = pq.read_table(path)
        return {k: np.asarray(t.column(k).to_pylist() if k == "class" else t.column(k))
                for k in t.column_names}
    if fmt == "fits":
        with fits.open(path) as h:
            d = h[1].data
            return {k: np.asarray(d[k]) for k in d.names}
    if fmt == "npy":
        a = np.load(path)
        return {k: a[k] for k in a.dtype.names}
    t = pa.csv.read_csv(path)
    return {k: np.asarray(t.column(k).to_pylist()) for k in t.column_names}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits", "npy"])
def test_every_output_format(capsys, setup, fmt, monkeypatch):
    d, model, mags, ids, _ = setup
    monkeypatch.setenv("FASTMLP_PROGRESS", "lines")        # a line per chunk, for the log
    out = d / f"p.{fmt}"
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", out, "--id-column", "objid",
                       "--chunk-rows", "500", "--threads", "1")
    assert code == 0, se
    # row groups of 700 rows, chunks of 500: 2 chunks per group, 3000 rows -> 5 groups
    assert "in 9 chunks of up to 500" in so and f"wrote {N} rows" in so
    assert "2 rows got no prediction (missing features" in so
    lines = [ln for ln in se.splitlines() if ln.startswith("predict ")]
    assert len(lines) == 9 and lines[-1].startswith("predict 9/9 chunks  3,000 rows")
    t = _read(out, fmt)
    assert list(t)[:2] == ["objid", f"p_{model.class_names[0]}"]
    np.testing.assert_array_equal(t["objid"], ids)
    valid = t["valid"] if t["valid"].dtype.kind not in "OU" else t["valid"] == "True"
    if fmt == "csv":
        head = out.read_text().splitlines()[:2]
        assert head[0] == "objid,p_star,p_quasar,p_galaxy,label,class,valid"
        assert head[1].endswith(",True")
    assert np.flatnonzero(~valid.astype(bool)).tolist() == [7, 1500]
    P = np.column_stack([t[f"p_{c}"] for c in model.class_names]).astype(np.float64)
    ref = model.predict_proba({b: mags[b] for b in "ugriz"})
    np.testing.assert_allclose(P[valid.astype(bool)], ref[valid.astype(bool)], rtol=2e-6,
                               atol=1e-7)
    assert np.isnan(P[[7, 1500]]).all() and (t["label"][[7, 1500]] == -1).all()
    lab = model.predict({b: mags[b] for b in "ugriz"})
    lab[1500] = -1                       # SDSS's -9999 is a missing value for the catalog
    np.testing.assert_array_equal(t["label"], lab)
    cls = np.asarray([c.decode() if isinstance(c, bytes) else c for c in t["class"]],
                     dtype=object)
    np.testing.assert_array_equal(cls[lab >= 0], np.asarray(model.class_names)[lab[lab >= 0]])
    assert all(c in ("", None) for c in cls[[7, 1500]])
    assert not [p for p in d.iterdir() if p.name.startswith(".")]      # no temp file left


def test_label_evaluation_prints_the_train_report(capsys, setup, monkeypatch):
    d, model, mags, ids, names = setup
    monkeypatch.delenv("FASTMLP_PROGRESS", raising=False)
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", d / "e.parquet", "--label", "class",
                       "--chunk-rows", "400", "--quiet")
    assert code == 0, se
    assert se == ""                                                   # --quiet
    X = {b: mags[b] for b in "ugriz"}
    ok = np.isfinite(model.predict_proba(X)).all(axis=1) & (mags["r"] != -9999)
    y = np.array([list(model.class_names).index(c) for c in names])
    rep = metrics.classification_report(y[ok], model.predict(X)[ok],
                                        proba=model.predict_proba(X)[ok],
                                        positive=model.positive,
                                        class_names=model.class_names)
    text = metrics.format_report(rep).splitlines()
    assert "evaluation against --label class:" in so
    # the exact parts are the same text; the AUC agrees to the 4 printed decimals or 1e-4
    for line in text[1:]:
        if not line.startswith("best cut"):
            assert line in so.splitlines()
    auc = float(so.split("ROC AUC (quasar vs rest) ")[1].split(",")[0])
    assert abs(auc - rep["roc_auc"]) <= 2e-4
    assert f"log loss {rep['log_loss']:.4f}" in so
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", d / "e.parquet", "--chunk-rows", "400")
    assert code == 0 and se == ""             # not a terminal: no chunk-level progress


def test_streaming_report_matches_metrics():
    rng = np.random.default_rng(1)
    n, C = 5000, 3
    y = rng.integers(0, C, n)
    logits = rng.normal(size=(n, C)) + 2.0 * np.eye(C)[y]
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = P.argmax(1)
    valid = np.ones(n, bool)
    for positive in (1, None):
        acc = StreamingClassificationReport(["a", "b", "c"], positive)
        for a in range(0, n, 700):
            acc.update(y[a:a + 700], pred[a:a + 700], P[a:a + 700], valid[a:a + 700])
        got = acc.report()
        want = metrics.classification_report(y, pred, proba=P, positive=positive,
                                             class_names=["a", "b", "c"])
        np.testing.assert_array_equal(got["confusion_matrix"], want["confusion_matrix"])
        assert got["per_class"] == want["per_class"]
        assert abs(got["log_loss"] - want["log_loss"]) < 1e-12
        assert abs(got["roc_auc"] - want["roc_auc"]) < 1e-4
        if positive is not None:
            cg, cw = got["completeness_at_contamination"], want["completeness_at_contamination"]
            assert abs(cg["completeness"] - cw["completeness"]) < 2e-3
            assert abs(cg["threshold"] - cw["threshold"]) < 2e-3
    # a model with a stored cut: what the cut selects, exactly, and no best cut
    acc = StreamingClassificationReport(["a", "b", "c"], 1, cut=0.4, max_contamination=None)
    cut_pred = metrics.labels_at_cut(P, 1, 0.4)
    acc.update(y, cut_pred, P, valid)
    want = metrics.classification_report(y, cut_pred, proba=P, positive=1,
                                         class_names=["a", "b", "c"], cut=0.4,
                                         max_contamination=None)
    got = acc.report()
    assert got["cut"] == want["cut"] and "completeness_at_contamination" not in got
    assert metrics.format_report(got).splitlines()[2] == \
        metrics.format_report(want).splitlines()[2]


def test_where_and_row_numbers(capsys, setup):
    d, model, mags, ids, names = setup
    out = d / "w.npy"
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", out, "--where", "r < 19 and class != 'star'",
                       "--chunk-rows", "500", "--quiet")
    assert code == 0, se
    t = np.load(out)
    with np.errstate(invalid="ignore"):
        # -9999 is missing, as NaN: its row is not selected
        want = np.flatnonzero((mags["r"] < 19) & (mags["r"] != -9999) & (names != "star"))
    np.testing.assert_array_equal(t["row"], want)
    # rows written and rows read (the filter reads more than it writes); the rate is over
    # the rows read
    read = CatalogStream(d / "cat.parquet", features=["r"], label=False, chunk_rows=500,
                         where="r < 19 and class != 'star'").n_rows_to_read
    m = re.search(r"wrote (\d+) rows .* in ([\d.]+) s \(read (\d+) rows, ([\d,]+) rows "
                  r"read/s\)", so)
    assert m, so
    assert (int(m[1]), int(m[3])) == (want.size, read) and read > want.size
    dt, rate = float(m[2]), float(m[4].replace(",", ""))
    assert read / (dt + 0.006) <= rate + 1 and rate <= read / max(dt - 0.006, 1e-3)
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", out, "--where", "r < 19 and nope > 1")
    assert code == 2 and "['nope'] not in the catalog" in se
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", out, "--where", "import os")
    assert code == 2 and "where 'import os'" in se


def test_prefetch_and_writer_pass_errors_and_stay_bounded():
    made = []

    def produce():
        for k in range(100):
            made.append(k)
            yield k
    it = prefetch(produce(), depth=2)
    assert next(it) == 0
    import time
    time.sleep(0.1)
    assert len(made) <= 4                       # bounded: at most depth + 2 items ahead
    it.close()

    def boom():
        yield 1
        raise OSError("disk gone")
    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(boom()))
    seen = []
    w = BackgroundWriter(seen.append)
    for k in range(10):
        w.put(k)
    w.close()
    assert seen == list(range(10))

    def bad(item):
        raise ValueError("cannot write")
    w = BackgroundWriter(bad)
    w.put(1)
    with pytest.raises(ValueError, match="cannot write"):
        w.close()


@pytest.mark.parametrize("id_column", ["label", "class", "p_star", "valid"])
def test_an_id_column_named_like_an_output_column_is_refused(capsys, setup, tmp_path,
                                                              id_column):
    d, model, mags, ids, names = setup
    src = tmp_path / "c.npy"
    rec = np.zeros(50, dtype=[(b, "f8") for b in "ugriz"] + [("label", "i8"), ("class", "U6"),
                                                             ("p_star", "f8"), ("valid", "?")])
    for b in "ugriz":
        rec[b] = mags[b][:50]
    np.save(src, rec)
    for fmt in ("csv", "parquet", "fits", "npy"):
        out = tmp_path / f"o.{fmt}"
        code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog", src,
                           "--out", out, "--id-column", id_column, "--quiet")
        assert code == 2 and se.startswith("fastmlp: error: --id-column " + id_column), se
        assert f"already has a column {id_column!r}" in se and "Traceback" not in se
        assert not out.exists()


def test_label_only_chooses_the_rows_evaluated(capsys, setup, tmp_path):
    """Rows without a usable label keep their predictions; the summary says why they were
    left out of the evaluation."""
    d, model, mags, ids, names = setup
    cls = names.astype(object)
    cls[:10] = None                             # no label
    cls[10:30] = "XYZ"                          # not one of the model's classes
    cls[30:33] = "W"
    src = tmp_path / "c.parquet"
    pq.write_table(pa.table({**mags, "class": pa.array(list(cls), pa.string())}), src,
                   row_group_size=700)
    outs = []
    for k, label in enumerate(([], ["--label", "class"])):
        out = tmp_path / f"o{k}.csv"
        code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog", src,
                           "--out", out, "--chunk-rows", "500", "--quiet", *label)
        assert code == 0, se
        assert "2 rows got no prediction (missing features, or an output beyond" in so
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    # row 7 has neither features nor a label: it counts once, as without a prediction
    assert (f"evaluation against --label class: {N - 34} of {N} rows; left out 34: 2 without "
            "a prediction (missing features, or an output beyond the float range); 9 "
            "without a label; 23 whose label is not one "
            "of the model's classes (XYZ=20, W=3)") in so
    assert f"metrics on the catalog's labelled rows (n={N - 34})" in so


def _chunk(rows):
    return {"row": np.asarray(rows, np.int64), "p_a": np.full(len(rows), 0.25, np.float32),
            "p_b": np.full(len(rows), 0.75, np.float32),
            "label": np.ones(len(rows), np.int64), "valid": np.ones(len(rows), bool)}


@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits", "npy"])
def test_writers_take_empty_chunks_anywhere(tmp_path, fmt):
    """A --where that keeps no row of the first chunks (0-row chunks first, then rows): the
    table holds exactly the rows (the .npy / FITS header was written again for the first
    chunk with rows, which shifted every record)."""
    from fastmlp.data.writers import make_writer
    out = tmp_path / f"t.{fmt}"
    with open(out, "wb") as fh:
        w = make_writer(fmt, fh, ["a", "b"], out, label_column="label")
        for rows in ([], [], [5, 9, 12], [], [40]):
            w.write(_chunk(rows))
        w.close()
    t = _read(out, fmt)
    assert list(t) == ["row", "p_a", "p_b", "label", "class", "valid"]
    np.testing.assert_array_equal(t["row"], [5, 9, 12, 40])
    np.testing.assert_array_equal(t["p_b"].astype(np.float64), 0.75)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits", "npy"])
def test_nothing_selected_writes_an_empty_table_with_every_column(capsys, setup, tmp_path,
                                                                   fmt):
    d, model, mags, ids, names = setup
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros(0, dtype=[(b, "f8") for b in "ugriz"] + [("objid", "i8")]))
    cols = ["objid", "p_star", "p_quasar", "p_galaxy", "label", "class", "valid"]
    for src, where, why in ((d / "cat.parquet", ["--where", "r > 100"],  # no row group left
                             f"--where 'r > 100' selected 0 of the {N} rows"),
                            (empty, [], "the catalog holds no rows")):
        out = tmp_path / f"o.{fmt}"
        code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog", src,
                           "--out", out, "--id-column", "objid", "--quiet", *where)
        assert code == 0, se
        assert f"wrote 0 rows to {out} ({fmt}): {why}" in so
        t = _read(out, fmt)
        assert list(t) == cols and all(len(v) == 0 for v in t.values())
        if fmt != "csv":                        # CSV has no types
            assert t["objid"].dtype.kind == "i" and t["p_star"].dtype.kind == "f"


@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits", "npy"])
def test_text_id_columns(capsys, setup, tmp_path, fmt):
    """A regression writes no 'class' column, so an id column of that name is an ordinary
    text column (it was taken for class indices); FITS stores text ids as bytes."""
    d, model, mags, ids, names = setup
    reg = MLP([4, 8, 1], seed=0, features="colors:ugriz", loss="mse")
    assert reg.link == "identity"
    fio.save(reg, tmp_path / "reg.npz")
    out = tmp_path / f"r.{fmt}"
    code, so, se = run(capsys, "predict", "--model", tmp_path / "reg.npz", "--catalog",
                       d / "cat.parquet", "--out", out, "--id-column", "class", "--quiet")
    assert code == 0, se
    t = _read(out, fmt)
    assert list(t) == ["class", "prediction", "valid"]
    got = [c.decode() if isinstance(c, bytes) else str(c) for c in t["class"]]
    assert got == names.tolist()


@pytest.mark.parametrize("fmt", ["fits", "npy"])
def test_fixed_width_text_is_never_cut_short(tmp_path, fmt):
    from fastmlp.data.writers import make_writer
    out = tmp_path / f"t.{fmt}"
    with open(out, "wb") as fh:
        w = make_writer(fmt, fh, ["a", "b"], out)
        w.write({"objid": np.asarray(["ab", "c"]), "valid": np.ones(2, bool)})
        w.write({"objid": np.asarray(["xy"]), "valid": np.ones(1, bool)})
        with pytest.raises(ValueError, match=r"output row 4: column 'objid' holds 'abc', 3 "
                                             r"(bytes|characters) long, but the column "
                                             r"was made 2 .*\.parquet or \.csv"):
            w.write({"objid": np.asarray(["x", "abc"]), "valid": np.ones(2, bool)})


def _ids_catalog(path, mags, fmt):
    """The setup's magnitudes with a text id ("" for row 1, null for 2 and 250, a comma and
    quotes at 300) that grows longer after the first chunks, and an int64 id beyond 2**53
    with a null at row 250."""
    n = len(mags["r"])
    names = pa.array([None if k in (2, 250) else "id" + "x" * (k // 100) for k in range(n)],
                     pa.string()).to_pylist()
    names[1], names[300] = "", 'a "quoted", name'          # CSV: quoted in a later chunk
    objid = pa.array([None if k == 250 else 2 ** 60 + k for k in range(n)], pa.int64())
    table = pa.table({**mags, "name": pa.array(names, pa.string()), "objid": objid})
    if fmt == "csv":
        pa.csv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=700)
    return names, objid.to_pylist()


@pytest.mark.parametrize("src_fmt", ["parquet", "csv"])
@pytest.mark.parametrize("fmt", ["parquet", "csv", "fits", "npy"])
def test_id_columns_keep_their_type_nulls_and_length(capsys, setup, tmp_path, fmt, src_fmt):
    """An id column is written as it was read: text as plain strings (not a dictionary),
    int64 as int64 (a null in a later chunk made it float: ids above 2**53 changed), nulls
    as nulls (an empty CSV field); FITS and .npy hold no nulls ("" / 0 there) and make a
    text id wide enough for the longest id in the catalog, not only the first chunk's."""
    d, model, mags, ids, _ = setup
    src = tmp_path / f"ids.{src_fmt}"
    names, objid = _ids_catalog(src, mags, src_fmt)
    for col, want in (("name", names), ("objid", objid)):
        out = tmp_path / f"o_{col}.{fmt}"
        code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog", src,
                           "--out", out, "--id-column", col, "--chunk-rows", 64, "--quiet")
        assert code == 0, se
        if src_fmt == "csv" and col == "name":
            want = [None if v == "" else v for v in want]      # CSV: an empty field is null
        if fmt == "parquet":
            t = pq.read_table(out)
            assert t.schema.field(col).type == (pa.string() if col == "name" else pa.int64())
            assert t.column(col).to_pylist() == want
        elif fmt == "csv":
            nulls = pa.csv.ConvertOptions(strings_can_be_null=True)   # an empty field
            got = pa.csv.read_csv(out, convert_options=nulls).column(col).to_pylist()
            assert got == [None if v == "" else v for v in want]
        else:
            got = _read(out, fmt)[col].tolist()
            got = [g.decode() if isinstance(g, bytes) else g for g in got]
            assert got == [("" if col == "name" else 0) if v is None else v for v in want]


@pytest.mark.parametrize("kind", ["large_string", "binary", "large_binary"])
def test_a_parquet_text_id_keeps_its_arrow_type(capsys, setup, tmp_path, kind):
    """A Parquet id of type large_string (or binary, large_binary) came out as string: the
    values are read as NumPy str, which does not say which Arrow text type they had.  It is
    written with its own type now, nulls and values as they were, also when no row is
    selected (the empty table's schema)."""
    d, model, mags, ids, _ = setup
    t = getattr(pa, kind)()
    text = [None if k % 700 == 3 else f"obj{k}" for k in range(N)]
    col = pa.array([v if v is None or "string" in kind else v.encode() for v in text], t)
    src = tmp_path / "ids.parquet"
    pq.write_table(pa.table({**mags, "name": col}), src, row_group_size=700)
    for where, rows in (([], N), (["--where", "r > 100"], 0)):
        out = tmp_path / f"o{rows}.parquet"
        code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog", src,
                           "--out", out, "--id-column", "name", "--chunk-rows", 500,
                           "--quiet", *where)
        assert code == 0, se
        got = pq.read_table(out)
        assert got.schema.field("name").type == t and got.num_rows == rows
        assert got.column("name").to_pylist() == col.to_pylist()[:rows]


def test_features_must_be_the_models_own(capsys, setup, tmp_path):
    d, model, mags, ids, names = setup
    out = tmp_path / "f.csv"
    args = ("predict", "--model", d / "m.npz", "--catalog", d / "cat.parquet", "--out", out,
            "--quiet", "--features")
    for wrong in ("i-z,r-i,g-r,u-g", "u,g,r,i", "u-g,g-r,r-i"):
        code, so, se = run(capsys, *args, wrong)
        assert code == 2 and se.startswith(f"fastmlp: error: --features {wrong}: the model "
                                           "was trained on u-g,g-r,r-i,i-z (in this order)")
        assert not out.exists()
    for right in ("colors:ugriz", "u-g,g-r,r-i,i-z"):
        code, so, se = run(capsys, *args, right)
        assert code == 0, se
    # a model without stored names: only the count can be checked
    plain = MLP([4, 8, 3], seed=0)
    assert not plain.features
    fio.save(plain, tmp_path / "plain.npz")
    args = ("predict", "--model", tmp_path / "plain.npz", "--catalog", d / "cat.parquet",
            "--out", out, "--quiet", "--features")
    code, so, se = run(capsys, *args, "u,g,r")
    assert code == 2 and "--features u,g,r: names 3 features but the model has 4 inputs" in se
    code, so, se = run(capsys, *args, "u,g,r,i")
    assert code == 0, se


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_failure_while_writing_leaves_no_writer_behind(capsys, setup, tmp_path, monkeypatch,
                                                         fmt):
    """A bad value in a later chunk, or Ctrl-C: one clean error, no temporary file, and no
    'Exception ignored in ParquetWriter.__del__ ... write to closed file' afterwards."""
    import gc
    import sys
    import fastmlp.cli.predict as cli_predict
    d, model, mags, ids, names = setup
    src = tmp_path / "bad.csv"
    rows = [",".join(f"{mags[b][k]:.5f}" for b in "ugriz") for k in range(8)]
    rows[5] = "abc," + rows[5].split(",", 1)[1]
    src.write_text("u,g,r,i,z\n" + "\n".join(rows) + "\n")
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    out = tmp_path / f"o.{fmt}"
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog", src, "--out",
                       out, "--chunk-rows", "2", "--quiet")
    gc.collect()
    assert code == 2 and se == "fastmlp: error: " + str(src) + ": column 'u' must be numeric " \
        "but has non-numeric values (first 'abc' in data row 6)\n"
    real = cli_predict.predict_stream

    def interrupted(*a, **k):
        it = real(*a, **k)
        yield next(it)
        yield next(it)
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_predict, "predict_stream", interrupted)
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", out, "--chunk-rows", "500", "--quiet")
    gc.collect()
    assert code == 130 and se == "fastmlp: interrupted\n"
    assert not unraisable and sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_predict_checks_its_flags_before_reading(capsys, setup, tmp_path, monkeypatch):
    d, model, mags, ids, names = setup
    monkeypatch.chdir(tmp_path)
    base = ["predict", "--model", d / "m.npz", "--catalog", d / "cat.parquet", "--quiet"]
    for argv, msg in (
            (["--out", "x.csv", "--out-format", "parquet"],
             "--out x.csv has the suffix of a csv file but --out-format is parquet"),
            (["--out", "x.csv", "--plot", "x.csv"],
             "--plot x.csv is the same file as --out x.csv; one would overwrite"),
            (["--out", "x.csv", "--plot", "x.txt"], "--plot x.txt: cannot draw a figure as "
                                                    ".txt; use .png, .pdf or .svg"),
            (["--out", "x.csv", "--id-column", "nope"],
             "--id-column nope: no such column in " + str(d / "cat.parquet")),
            (["--out", "x.csv", "--label", "nope"], "--label nope: no such column in ")):
        code, so, se = run(capsys, *base, *argv)
        assert code == 2 and se.startswith("fastmlp: error: " + msg), se
        assert not list(tmp_path.iterdir())
    code, so, se = run(capsys, *base, "--out", "x.dat", "--out-format", "parquet")
    assert code == 0 and pq.read_table(tmp_path / "x.dat").num_rows == N


def test_progress_lines_in_a_log_without_asking(capsys, setup, monkeypatch):
    """stderr not a terminal and no FASTMLP_PROGRESS: plain progress lines every
    RowProgress.LOG_EVERY seconds (0 here: one per chunk), without carriage returns."""
    d, model, mags, ids, _ = setup
    monkeypatch.delenv("FASTMLP_PROGRESS", raising=False)
    monkeypatch.setattr(RowProgress, "LOG_EVERY", 0.0, raising=False)
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", d / "log.npy", "--chunk-rows", "500")
    assert code == 0, se
    lines = [ln for ln in se.splitlines() if ln.startswith("predict ")]
    assert len(lines) == 9 and lines[-1].startswith("predict 9/9 chunks  3,000 rows")
    assert "\r" not in se



def test_far_off_feature_values_are_warned_about(capsys, setup, tmp_path):
    """A missing-value sentinel other than -9999 (99, 1e30) passes as a magnitude and got a
    prediction without a word: predict (against the model's training mean / std) and train
    (against the training data's median / MAD) now count such rows in one stderr line.
    NaN and -9999 (rows 7 and 1500 of the setup) are missing values, not far ones."""
    d, model, mags, ids, names = setup
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", tmp_path / "clean.parquet", "--quiet")
    assert code == 0 and "warning" not in se, se
    bad = {b: v.copy() for b, v in mags.items()}
    bad["r"][[10, 20, 2000]] = [99.0, 1e30, 99.0]
    bad["z"][30] = 99.0
    src = tmp_path / "sentinels.parquet"
    pq.write_table(pa.table({**bad, "class": names}), src, row_group_size=700)
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog", src,
                       "--out", tmp_path / "o.parquet", "--quiet")
    assert code == 0, se
    assert ("warning: 4 rows have features more than 50 standard deviations from the "
            "training mean (g-r=3, r-i=3, i-z=1; the mean and standard deviation the model "
            "stores); a missing-value sentinel such as 99 or 1e30?") in se and "--where" in se
    code, so, se = run(capsys, "train", "--catalog", src, "--features", "colors:ugriz",
                       "--label", "class", "--epochs", 1, "--drop-invalid", "--quiet")
    assert code == 0, se
    assert ("warning: 4 rows have features more than 50 standard deviations from the "
            "training median (g-r=3, r-i=3, i-z=1; median and standard deviation (1.4826 x "
            "MAD) of every training row)") in se


def test_train_stream_warns_about_far_off_values_as_train_does(capsys, setup, tmp_path):
    """train --stream said nothing of 99 / 1e30 sentinels that train (in memory) warns
    about: its scan counts them and it prints the same line, once."""
    d, model, mags, ids, names = setup
    bad = {b: v.copy() for b, v in mags.items()}
    bad["r"][[10, 20, 2000]] = [99.0, 1e30, 99.0]
    bad["z"][30] = 99.0
    src = tmp_path / "sentinels.parquet"
    pq.write_table(pa.table({**bad, "class": names}), src, row_group_size=700)
    argv = ("train", "--catalog", src, "--features", "colors:ugriz", "--label", "class",
            "--epochs", 1, "--drop-invalid", "--quiet")
    code, so, memory = run(capsys, *argv)
    assert code == 0, memory
    code, so, streamed = run(capsys, *argv, "--stream", "--chunk-rows", 500)
    assert code == 0, streamed
    line = ("warning: 4 rows have features more than 50 standard deviations from the "
            "training median (g-r=3, r-i=3, i-z=1; median and standard deviation (1.4826 x "
            "MAD) of every training row); a missing-value sentinel "
            "such as 99 or 1e30? Only NaN, null and -9999 count as missing: write NaN "
            "there, or leave the rows out with --where\n")
    assert line in memory and streamed.count("warning:") == 1 and line in streamed
    code, so, se = run(capsys, "train", "--catalog", d / "cat.parquet", "--features",
                       "colors:ugriz", "--label", "class", "--epochs", 1, "--drop-invalid",
                       "--quiet", "--stream")
    assert code == 0 and "warning" not in se, se


def test_a_first_run_says_how_long_it_measured_the_kernels(capsys, setup, monkeypatch):
    """The first predict of a shape class on a CPU measures the kernels' choices (seconds,
    cached for later runs): the summary says so and its rate leaves that time out; a 4.6 s
    first run of 200,000 rows read as 43,000 rows/s instead of ~2 M."""
    import types
    import fastmlp.cli.predict as cli_predict
    from fastmlp.backends import tuning
    d = setup[0]
    measured = iter([10.0, 13.0])   # measuring_seconds before and after: 3 s measured
    monkeypatch.setattr(tuning, "measuring_seconds", lambda: next(measured))
    elapsed = iter([100.0, 104.0])  # the command's clock: 4 s in all
    monkeypatch.setattr(cli_predict, "time",
                        types.SimpleNamespace(perf_counter=lambda: next(elapsed)))
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", d / "first.npy", "--quiet")
    assert code == 0, se
    m = re.search(r"wrote (\d+) rows .* in ([\d.]+) s \(3\.00 s of it measuring this CPU's "
                  r"fastest kernels, once: cached for later runs; ([\d,]+) rows read/s in "
                  r"the rest\)", so)
    assert m, so
    assert m[2] == "4.00"           # the rate is over the 1 s left, not the 4 s
    assert m[3] == f"{int(m[1]):,}"


def test_a_first_run_whose_measurements_could_not_be_cached_does_not_say_once(
        capsys, setup, monkeypatch):
    """A read-only home (or FASTMLP_CACHE_DIR unwritable): the next run measures again, so
    the summary names the file it could not write instead of "once: cached"."""
    import types
    import fastmlp.cli.predict as cli_predict
    from fastmlp.backends import tuning
    d = setup[0]
    measured = iter([10.0, 13.0])
    monkeypatch.setattr(tuning, "measuring_seconds", lambda: next(measured))
    elapsed = iter([100.0, 104.0])
    monkeypatch.setattr(cli_predict, "time",
                        types.SimpleNamespace(perf_counter=lambda: next(elapsed)))
    monkeypatch.setattr(tuning, "unwritten_cache", lambda: "/ro/home/tune-x.json")
    code, so, se = run(capsys, "predict", "--model", d / "m.npz", "--catalog",
                       d / "cat.parquet", "--out", d / "first.npy", "--quiet")
    assert code == 0, se
    assert re.search(r"\(3\.00 s of it measuring this CPU's fastest kernels, not cached: "
                     r"could not write /ro/home/tune-x\.json; [\d,]+ rows read/s in the "
                     r"rest\)", so), so
    assert "once: cached" not in so
