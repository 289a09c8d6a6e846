"""--missing impute-median is part of the model's input-to-output contract.

``fastmlp train --missing impute-median`` stores the training catalog's column medians in
the model's features (FeatureSpec.fill); model.predict_proba on a table, the model file,
the C loader (fastmlp_model_gather_features), the ONNX graph and ``fastmlp predict`` then
replace a missing raw value (NaN, inf, -9999) by its column's median before the colours
are formed: the same probabilities as for the rows with the medians filled in by hand.
A model without fill values behaves as before (rows with missing values unpredicted).
"""

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from fastmlp.features import FeatureSpec
from fastmlp.io.c_model import HEADER, c_model_bytes, read_c_model, write_c_model

BANDS = "ugriz"
# (row, band, how the value is missing in the CSV)
HOLES = [(3, "u", ""), (5, "g", "-9999"), (8, "r", "nan"), (8, "z", "-9999"),
         (13, "i", "inf"), (21, "u", "-9999"), (21, "g", "")]


def _magnitudes(n=400, seed=5):
    cat = fastmlp.make_photometric_catalog(n, seed=seed)
    return {b: cat.extra[b].astype(np.float64) for b in BANDS}, cat.y


def _write_csv(path, mags, y, holes):
    """A CSV catalog of u..z and class, with the values of ``holes`` missing."""
    gone = {(r, b): text for r, b, text in holes}
    with open(path, "w") as f:
        f.write("u,g,r,i,z,class\n")
        for k in range(len(y)):
            vals = [gone.get((k, b), repr(float(mags[b][k]))) for b in BANDS]
            f.write(",".join(vals) + f",{int(y[k])}\n")


def _with_holes(mags, holes):
    """The magnitudes as a table with the holes' values (NaN, inf, -9999) in place."""
    t = {b: v.copy() for b, v in mags.items()}
    for r, b, text in holes:
        t[b][r] = np.nan if text in ("", "nan") else float(text)
    return t


def _medians(mags, holes):
    """Each band's median over its valid training values, computed by hand."""
    t = _with_holes(mags, holes)
    return {b: float(np.median(v[np.isfinite(v) & (v != -9999.0)])) for b, v in t.items()}


def _filled_by_hand(table, medians):
    return {b: np.where(~np.isfinite(v) | (v == -9999.0), medians[b], v)
            for b, v in table.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(model file, the training magnitudes, the table with holes, the medians): a model
    trained by the CLI with --missing impute-median on a catalog with holes."""
    d = tmp_path_factory.mktemp("impute")
    mags, y = _magnitudes()
    _write_csv(d / "cat.csv", mags, y, HOLES)
    assert main(["train", "--catalog", str(d / "cat.csv"), "--features", "colors:ugriz",
                 "--label", "class", "--missing", "impute-median", "--epochs", "3",
                 "--hidden", "8", "--out", str(d / "m.npz"), "--quiet",
                 "--backend", "numpy"]) == 0
    return d / "m.npz", mags, _with_holes(mags, HOLES), _medians(mags, HOLES)


def _reference(model, table, medians, backend=None):
    """The probabilities of the rows with the medians filled in by hand, by the same model
    without fill values (on ``backend``'s kernels, if given)."""
    plain = fastmlp.load(model) if isinstance(model, Path) else model
    plain.set_contract(features=FeatureSpec(list(plain.feature_names)))
    if backend is not None:
        plain.backend = backend
    return plain.predict_proba(_filled_by_hand(table, medians))


def test_train_stores_every_column_median(trained):
    path, _, _, medians = trained
    model = fastmlp.load(path)
    assert model.features.fill == pytest.approx(medians, rel=0, abs=0)
    assert set(model.features.fill) == set(BANDS)
    meta = json.loads(str(np.load(path)["metadata"]))
    assert meta["format_version"] == fastmlp.io.model_file.FORMAT_VERSION_FILL
    assert meta["contract"]["feature_fill"] == medians


def test_python_imputes_like_training_and_after_save_load(trained, tmp_path):
    path, _, table, medians = trained
    model = fastmlp.load(path)
    want = _reference(path, table, medians)
    rows = sorted({r for r, _, _ in HOLES})
    assert np.isfinite(want[rows]).all()
    np.testing.assert_array_equal(model.predict_proba(table), want)
    fastmlp.save(model, tmp_path / "again.npz")
    np.testing.assert_array_equal(fastmlp.load(tmp_path / "again.npz").predict_proba(table),
                                  want)


def test_a_model_without_fill_leaves_missing_rows_unpredicted(trained, tmp_path):
    path, _, table, medians = trained
    model = fastmlp.load(path)
    model.set_contract(features=model.features.with_fill(None))
    assert model.features.fill is None
    proba = model.predict_proba(table)
    rows = sorted({r for r, _, _ in HOLES})       # inf (row 13) is no number either
    assert np.isnan(proba[rows]).all()
    ok = np.setdiff1d(np.arange(len(proba)), [r for r, _, _ in HOLES])
    np.testing.assert_array_equal(proba[ok], _reference(path, table, medians)[ok])
    fastmlp.save(model, tmp_path / "plain.npz")
    meta = json.loads(str(np.load(tmp_path / "plain.npz")["metadata"]))
    assert meta["format_version"] == 2 and "feature_fill" not in meta["contract"]
    assert HEADER.unpack_from(c_model_bytes(model))[1] == 1     # the C format as before


def test_an_old_model_file_loads_without_fill(tmp_path):
    """A version-2 file as fastmlp wrote it before fill values existed."""
    model = fastmlp.MLP([4, 5, 1], features="colors:ugriz", seed=0)
    fastmlp.save(model, tmp_path / "old.npz")
    z = dict(np.load(tmp_path / "old.npz"))
    meta = json.loads(str(z["metadata"]))
    assert meta["format_version"] == 2 and "feature_fill" not in meta["contract"]
    back = fastmlp.load(tmp_path / "old.npz")
    assert back.features.fill is None and list(back.feature_names) == list(model.feature_names)
    t = _with_holes(_magnitudes(30)[0], [(2, "u", "")])
    assert np.isnan(back.predict_proba(t)[2]).all()


def test_fill_values_are_checked():
    with pytest.raises(ValueError, match="fill names column 'x'"):
        FeatureSpec("colors:ugriz", fill={"x": 1.0})
    with pytest.raises(ValueError, match="fill value for column 'u' must be a finite number"):
        FeatureSpec("colors:ugriz", fill={"u": float("nan")})
    with pytest.raises(ValueError, match="fill must be a dict"):
        FeatureSpec("colors:ugriz", fill=[("u", 1.0)])
    spec = FeatureSpec("colors:ugriz", fill={"u": 20})
    assert spec.fill == {"u": 20.0} and spec != FeatureSpec("colors:ugriz")
    assert FeatureSpec(spec).fill == {"u": 20.0}


def test_c_model_file_round_trips_the_fill(trained, tmp_path):
    path, _, table, medians = trained
    model = fastmlp.load(path)
    data = c_model_bytes(model)
    assert HEADER.unpack_from(data)[1] == 2
    back = read_c_model(write_c_model(model, tmp_path / "m.fmlp"))
    assert back.features.fill == model.features.fill
    np.testing.assert_array_equal(back.predict_proba(table), model.predict_proba(table))


# classify_exe: the C example program, built once per session (conftest.py)


def test_c_loader_imputes_like_python(trained, classify_exe, tmp_path):
    path, mags, table, medians = trained
    model = fastmlp.load(path)
    write_c_model(model, tmp_path / "m.fmlp")
    n = 40
    _write_csv(tmp_path / "cat.csv", {b: v[:n] for b, v in mags.items()}, np.zeros(n),
               HOLES)
    res = subprocess.run([str(classify_exe), str(tmp_path / "m.fmlp"),
                          str(tmp_path / "cat.csv")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(res.stdout.splitlines()))[1:]
    got = np.array([[float(v) for v in r[1:]] for r in rows])
    want = _reference(path, {b: v[:n] for b, v in table.items()}, medians)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


def test_onnx_graph_imputes_like_python(trained, tmp_path):
    pytest.importorskip("onnx", reason="onnx is an optional dependency")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency")
    from fastmlp.io.onnx import to_onnx
    path, _, table, medians = trained
    model = fastmlp.load(path)
    to_onnx(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    import onnx
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    columns = json.loads(props["inputs"])
    assert columns == list(BANDS)
    raw = np.stack([table[c] for c in columns], axis=1)
    proba = sess.run(["proba"], {"X": raw})[0]
    want = _reference(path, table, medians)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba, want, rtol=1e-6, atol=1e-7)
    # without fill values the graph takes the features as before, NaN rows stay NaN
    model.set_contract(features=model.features.with_fill(None))
    to_onnx(model, tmp_path / "plain.onnx")
    sess = ort.InferenceSession(str(tmp_path / "plain.onnx"),
                                providers=["CPUExecutionProvider"])
    X = model.features.transform(table).astype(np.float32)
    assert sess.get_inputs()[0].shape[1] == 4
    assert np.isnan(sess.run(["proba"], {"X": X})[0][3]).all()


# fastmlp predict against Python (_cli_predict runs it with --backend numpy): on the same
# kernels the probabilities are the same bit for bit (the CLI reads a standardising model's
# columns in float64 and imputes them before the colours, as predict_proba on a table
# does); the default kernels (C) sum the float32 products in another order, measured at most
# 5.3e-7 relative on the Xeon (family 6 model 167); the bound is 2e-6, as README's float32
# agreement figures, because another CPU's vector width gives another order (CSV values
# written with repr, read back exactly, add nothing)
CLI_RTOL = 2e-6


def _cli_predict(path, catalog, tmp_path, capsys):
    """(what fastmlp predict printed, stdout and stderr; its output array) for a catalog."""
    capsys.readouterr()
    assert main(["predict", "--model", str(path), "--catalog", str(catalog),
                 "--out", str(tmp_path / "out.npy"), "--backend", "numpy"]) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err, np.load(tmp_path / "out.npy")


def test_cli_predict_imputes_and_says_how_many(trained, tmp_path, capsys):
    path, mags, table, medians = trained
    _write_csv(tmp_path / "new.csv", mags, np.zeros(len(mags["u"])), HOLES)
    err, out = _cli_predict(path, tmp_path / "new.csv", tmp_path, capsys)
    assert f"imputed {len(HOLES)} missing values with the model's fill values" in err
    assert "(u: 2, g: 2, r: 1, i: 1, z: 1)" in err and "not imputed here" not in err
    assert out["valid"].all()
    got = np.stack([out["p_0"], out["p_1"]], axis=1)
    np.testing.assert_array_equal(got, _reference(path, table, medians, backend="numpy"))
    np.testing.assert_allclose(got, _reference(path, table, medians), rtol=CLI_RTOL, atol=0)


def _bad_fill_files(tmp_path):
    """C model files (version 2) whose fill section is wrong, checksums made to agree."""
    import zlib
    from fastmlp.io.c_model import MAGIC
    model = fastmlp.MLP([4, 3, 1], features="colors:ugriz", seed=0)
    model.set_contract(features=model.features.with_fill({"u": 20.0}))
    data = c_model_bytes(model)
    good = b"\x01\x00\x00\x00" + b"\x01\x00\x00\x00u" + np.float64(20.0).tobytes()
    payload = data[HEADER.size:]
    assert payload.count(good) == 1
    variants = {
        "nan value": good[:9] + np.float64(np.nan).tobytes(),
        "column no feature reads": good[:8] + b"x" + good[9:],
        "column twice": b"\x02\x00\x00\x00" + good[4:] + good[4:],
        "count beyond the file": b"\xff\xff\xff\x7f" + good[4:],
    }
    out = {}
    for name, fill in variants.items():
        p = payload.replace(good, fill)
        out[name] = tmp_path / (name.replace(" ", "_") + ".fmlp")
        out[name].write_bytes(HEADER.pack(MAGIC, 2, zlib.crc32(p), len(p)) + p)
    return out


def test_bad_fill_sections_are_refused_by_python(tmp_path):
    why = {"nan value": "fill value for column 'u' must be a finite number",
           "column no feature reads": "fill names column 'x'",
           "column twice": "a fill column is given more than once",
           "count beyond the file": "fill values do not fit the file"}
    for name, path in _bad_fill_files(tmp_path).items():
        with pytest.raises(ValueError, match=f"{path.name}.*{why[name]}"):
            read_c_model(path)


def test_bad_fill_sections_are_refused_by_c(classify_exe, tmp_path):
    (tmp_path / "cat.csv").write_text("u,g,r,i,z\n20,19,18,17.5,17\n")
    for name, path in _bad_fill_files(tmp_path).items():
        res = subprocess.run([str(classify_exe), str(path), str(tmp_path / "cat.csv")],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 1, (name, res.returncode, res.stderr)
        assert "inconsistent fields" in res.stderr and res.stdout == "", name


def test_export_says_the_onnx_graph_reads_raw_columns(trained, tmp_path, capsys):
    pytest.importorskip("onnx", reason="onnx is an optional dependency")
    path = trained[0]
    capsys.readouterr()
    assert main(["export", "--model", str(path), "--onnx", str(tmp_path / "m.onnx")]) == 0
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert "ONNX input X: (n, 5) float64, raw columns u, g, r, i, z" in said
    # the first line agrees with it: raw columns in, not the features
    assert "(ONNX opset 13; raw columns in, the colours, standardisation" in said
    assert "a column named like a colour, u-g, is not read" in said


# -- review fixes: one definition of missing, the streaming APIs, the CLI and ONNX --------
# A float32 training run counts a raw value beyond float32's range as missing (its
# catalog loader imputes it): so does every prediction path of a float32 model with fills.
FAR = [(10, "u", "1e39"), (30, "r", "-5e38")]


def _medians_f32(mags, holes):
    """Each band's median over the values a float32 training run counts as valid."""
    t = _with_holes(mags, holes)
    big = float(np.finfo(np.float32).max)
    return {b: float(np.median(v[np.isfinite(v) & (v != -9999.0) & (np.abs(v) <= big)]))
            for b, v in t.items()}


def _filled_f32(table, medians):
    big = float(np.finfo(np.float32).max)
    return {b: np.where(~np.isfinite(v) | (v == -9999.0) | (np.abs(v) > big), medians[b], v)
            for b, v in table.items()}


@pytest.fixture(scope="module")
def trained_far(tmp_path_factory):
    """(model file, the catalog, the table, the reference probabilities): a float32 model
    trained with --missing impute-median on a catalog with values beyond float32's range."""
    d = tmp_path_factory.mktemp("impute_far")
    mags, y = _magnitudes()
    holes = HOLES + FAR
    _write_csv(d / "cat.csv", mags, y, holes)
    assert main(["train", "--catalog", str(d / "cat.csv"), "--features", "colors:ugriz",
                 "--label", "class", "--missing", "impute-median", "--epochs", "3",
                 "--hidden", "8", "--out", str(d / "m.npz"), "--quiet", "--dtype", "float32",
                 "--backend", "numpy"]) == 0
    table = _with_holes(mags, holes)
    medians = _medians_f32(mags, holes)
    model = fastmlp.load(d / "m.npz")
    assert model.dtype == np.float32
    assert model.features.fill == pytest.approx(medians, rel=0, abs=0)
    plain = fastmlp.load(d / "m.npz")
    plain.set_contract(features=FeatureSpec(list(plain.feature_names)))
    want = plain.predict_proba(_filled_f32(table, medians))
    assert np.isfinite(want).all()
    return d / "m.npz", d / "cat.csv", table, want


def test_python_imputes_values_beyond_float32_as_training_did(trained_far):
    path, _, table, want = trained_far
    got = fastmlp.load(path).predict_proba(table)
    assert np.isfinite(got[[r for r, _, _ in FAR]]).all()
    np.testing.assert_array_equal(got, want)


def test_float64_model_keeps_values_beyond_float32(trained_far):
    """Only a float32 model counts 1e39 as missing: for float64 it is a number."""
    from fastmlp.features import fill_missing, missing_mask
    v = np.array([1e39, -5e38, 20.0, np.nan])
    assert missing_mask(v, np.float32).tolist() == [True, True, False, True]
    assert missing_mask(v).tolist() == [False, False, False, True]
    assert fill_missing(v, 1.0, np.float32)[1] == 3 and fill_missing(v, 1.0)[1] == 1


def test_c_loader_imputes_values_beyond_float32(trained_far, classify_exe, tmp_path):
    path, catalog, _, want = trained_far
    write_c_model(fastmlp.load(path), tmp_path / "m.fmlp")
    res = subprocess.run([str(classify_exe), str(tmp_path / "m.fmlp"), str(catalog)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(res.stdout.splitlines()))[1:]
    got = np.array([[float(v) for v in r[1:]] for r in rows])
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_onnx_graph_imputes_values_beyond_float32(trained_far, tmp_path):
    pytest.importorskip("onnx", reason="onnx is an optional dependency")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency")
    from fastmlp.io.onnx import to_onnx
    path, _, table, want = trained_far
    to_onnx(fastmlp.load(path), tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    raw = np.stack([table[c] for c in BANDS], axis=1)
    proba = sess.run(["proba"], {"X": raw})[0]
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba, want, rtol=1e-5, atol=1e-7)


def test_cli_predict_imputes_values_beyond_float32(trained_far, tmp_path, capsys):
    path, catalog, table, want = trained_far
    err, out = _cli_predict(path, catalog, tmp_path, capsys)
    assert f"imputed {len(HOLES) + len(FAR)} missing values" in err
    assert "(u: 3, g: 2, r: 2, i: 1, z: 1)" in err and "no prediction" not in err
    assert out["valid"].all()
    got = np.stack([out["p_0"], out["p_1"]], axis=1)
    same_kernels = fastmlp.load(path)
    same_kernels.backend = "numpy"
    np.testing.assert_array_equal(got, same_kernels.predict_proba(table))
    np.testing.assert_allclose(got, want, rtol=CLI_RTOL, atol=0)


@pytest.mark.parametrize("fill", ["none", "the model's"])
def test_predict_stream_in_float64_imputes_values_beyond_a_float32_model(trained_far, fill):
    """A stream read in float64 (as fastmlp predict reads a standardising model's columns)
    for a float32 model: 1e39 is missing by the model's range, not the stream's."""
    from fastmlp.data import CatalogStream, predict_stream
    path, catalog, _, want = trained_far
    model = fastmlp.load(path)
    stream = CatalogStream(catalog, features="colors:ugriz", label=False, dtype="float64",
                           fill=model.features.fill if fill != "none" else None)
    got = [(ch, out) for ch, out in predict_stream(model, stream, progress=False)]
    assert all(ch.valid.all() for ch, _ in got)
    np.testing.assert_allclose(np.concatenate([o for _, o in got]), want, rtol=1e-5,
                               atol=1e-7)


def test_predict_stream_applies_the_models_fill(trained, tmp_path):
    from fastmlp.data import CatalogStream, predict_stream
    path, mags, table, medians = trained
    _write_csv(tmp_path / "new.csv", mags, np.zeros(len(mags["u"])), HOLES)
    model = fastmlp.load(path)
    stream = CatalogStream(tmp_path / "new.csv", features="colors:ugriz", label=False,
                           chunk_rows=150)
    got = [(ch, out) for ch, out in predict_stream(model, stream, progress=False)]
    assert all(ch.valid.all() for ch, _ in got)
    np.testing.assert_allclose(np.concatenate([o for _, o in got]),
                               _reference(path, table, medians), rtol=1e-5, atol=1e-7)
    other = CatalogStream(tmp_path / "new.csv", features="colors:ugriz", label=False,
                          fill={"u": 1.0})
    with pytest.raises(ValueError, match="the stream's fill .* differs from the model's fill"):
        next(predict_stream(model, other, progress=False))


def test_fit_stream_keeps_the_models_fill(trained, tmp_path):
    path, mags, _, _ = trained
    rec = np.zeros(len(mags["u"]), dtype=[(b, "f8") for b in BANDS] + [("label", "i4")])
    for b in BANDS:
        rec[b] = mags[b]
    rec["label"] = _magnitudes()[1]
    np.save(tmp_path / "c.npy", rec)
    model = fastmlp.load(path)
    fill = dict(model.features.fill)
    fastmlp.fit_stream(model, tmp_path / "c.npy", features="colors:ugriz", label="label",
                       epochs=1, progress=False)
    assert model.features.fill == fill
    # other feature names: the fill (of columns those features need not read) goes
    ugri = {b: fill[b] for b in "ugri"}
    fresh = fastmlp.MLP([3, 4, 1], seed=0, features=FeatureSpec("u-g,g-r,r-i", fill=ugri))
    fastmlp.fit_stream(fresh, tmp_path / "c.npy", features="colors:griz", label="label",
                       epochs=1, progress=False)
    assert fresh.features.fill is None


def test_train_refuses_missing_without_catalog(tmp_path, capsys):
    code = main(["train", "--missing", "impute-median", "--epochs", "1", "--hidden", "4",
                 "--out", str(tmp_path / "m.npz"), "--quiet", "--backend", "numpy"])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / "m.npz").exists()
    assert "--missing impute-median applies to a --catalog file" in err


def test_onnx_refuses_standardization_false_for_a_model_with_fill(trained, tmp_path):
    pytest.importorskip("onnx", reason="onnx is an optional dependency")
    from fastmlp.io.onnx import to_onnx
    model = fastmlp.load(trained[0])
    assert model.standardization is not None
    with pytest.raises(ValueError, match="standardization=False is not possible for a model "
                                         "with fill values"):
        to_onnx(model, tmp_path / "m.onnx", standardization=False)
    assert not (tmp_path / "m.onnx").exists()


def test_catalog_stream_checks_fill(tmp_path):
    from fastmlp.data import CatalogStream
    (tmp_path / "c.csv").write_text("u,g,r,i,z\n20,19,18,17.5,17\n")
    cases = {"'abc'": {"u": "abc"}, "nan": {"u": float("nan")}}
    for shown, fill in cases.items():
        with pytest.raises(ValueError, match=f"fill value for column 'u' must be a finite "
                                             f"number, got {shown}"):
            CatalogStream(tmp_path / "c.csv", features="colors:ugriz", label=False, fill=fill)
    with pytest.raises(ValueError, match="fill names column 'nosuch', which no feature reads"):
        CatalogStream(tmp_path / "c.csv", features="colors:ugriz", label=False,
                      fill={"nosuch": 1.0})
    with pytest.raises(ValueError, match="fill must be a dict"):
        CatalogStream(tmp_path / "c.csv", features="colors:ugriz", label=False, fill="u")


def test_load_refuses_a_fill_value_beyond_float(trained, tmp_path):
    z = dict(np.load(trained[0]))
    meta = json.loads(str(z["metadata"]))
    meta["contract"]["feature_fill"]["u"] = 10 ** 400
    z["metadata"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "edited.npz", **z)
    with pytest.raises(ValueError, match=r"cannot load fastmlp model .*edited\.npz.*fill value "
                                         "for column 'u' must be a finite number"):
        fastmlp.load(tmp_path / "edited.npz")


# -- streamfill: the model's dtype and fill on the training paths and in predict_stream ----
FAR_U = 21.0    # the fill value of u in these tests


def _far_table(n=300, seed=11):
    """(magnitudes with u = 1e39 in the first 5 rows, the same with 21.0 there, labels)."""
    mags, y = _magnitudes(n, seed)
    far = {b: v.copy() for b, v in mags.items()}
    far["u"][:5] = 1e39
    by_hand = {b: v.copy() for b, v in mags.items()}
    by_hand["u"][:5] = FAR_U
    return far, by_hand, y


def _far_model():
    return fastmlp.MLP([4, 8, 1], seed=0, dtype="float32",
                       features=FeatureSpec("colors:ugriz", fill={"u": FAR_U}))


@pytest.mark.parametrize("drop_invalid", [False, True])
def test_fit_on_a_table_imputes_values_beyond_float32(drop_invalid):
    """fit counted 1e39 as a number for a float32 model (refused as overflowing, or dropped)
    where its predict_proba imputes it: training now imputes it too."""
    far, by_hand, y = _far_table()
    kw = dict(epochs=1, batch_size=64, validation=None, progress=False, backend="numpy",
              standardize=True, drop_invalid=drop_invalid)
    a, b = _far_model(), _far_model()
    fastmlp.fit(a, far, y, **kw)
    fastmlp.fit(b, by_hand, y, **kw)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.standardization[0], b.standardization[0])


def test_fit_imputes_values_beyond_float32_in_a_validation_table():
    far, by_hand, y = _far_table()
    kw = dict(epochs=1, batch_size=64, progress=False, backend="numpy", standardize=True)
    a, b = _far_model(), _far_model()
    ha = fastmlp.fit(a, by_hand, y, validation=(far, y), **kw)
    hb = fastmlp.fit(b, by_hand, y, validation=(by_hand, y), **kw)
    assert np.isfinite(ha.val_loss).all()
    np.testing.assert_array_equal(ha.val_loss, hb.val_loss)


def test_dask_fit_imputes_values_beyond_float32(client):
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) not installed")
    pd = pytest.importorskip("pandas")
    from fastmlp.distributed import dask as fd
    far, by_hand, y = _far_table()
    kw = dict(client=client, epochs=1, batch_size=64, lr=1e-2, progress=False, n_shards=2,
              standardize=True, label="label", backend="numpy")
    models = []
    for table in (far, by_hand):
        df = pd.DataFrame(table)
        df["label"] = y
        m = _far_model()
        fd.fit(m, dd.from_pandas(df, npartitions=2), features=m.features, **kw)
        models.append(m)
    np.testing.assert_allclose(models[0].standardization[0], models[1].standardization[0],
                               rtol=1e-12)
    np.testing.assert_allclose(models[0].params, models[1].params, rtol=1e-6, atol=1e-7)


def _stream_csv(path, table):
    with open(path, "w") as f:
        f.write("u,g,r,i,z\n")
        for k in range(len(table["u"])):
            f.write(",".join(repr(float(table[b][k])) for b in BANDS) + "\n")
    return path


@pytest.mark.parametrize("order", ["with fill first", "without fill first"])
def test_predict_stream_applies_a_models_fill_for_that_call_only(tmp_path, order):
    """A stream opened without fill, used by a model with fill values: it kept them, and a
    model without fill was then refused ('the stream's fill ... differs')."""
    from fastmlp.data import CatalogStream, predict_stream
    far, by_hand, y = _far_table()
    path = _stream_csv(tmp_path / "c.csv", far)
    with_fill = _far_model()
    fastmlp.fit(with_fill, by_hand, y, epochs=1, validation=None, progress=False,
                backend="numpy", standardize=True)
    fastmlp.save(with_fill, tmp_path / "m.npz")
    plain = fastmlp.load(tmp_path / "m.npz")
    plain.set_contract(features=FeatureSpec(list(plain.feature_names)))
    stream = CatalogStream(path, features="colors:ugriz", label=False, chunk_rows=100,
                           dtype="float64")
    models = [with_fill, plain] if order == "with fill first" else [plain, with_fill]
    for model in models:
        out = np.concatenate([o for _, o in predict_stream(model, stream, progress=False)])
        np.testing.assert_allclose(out, model.predict_proba(far), rtol=1e-6, atol=1e-7)
        assert np.isnan(out[:5]).all() == (model is plain)
        assert stream.fill == {} and stream.fill_dtype == np.float64
    # the stream keeps its own fill while a generator runs too, and after one closed early
    # (predict_stream reads through a copy with the model's fill: it no longer sets it on
    # the stream for the generator's life, see test_predict_stream_interleaved.py)
    gen = predict_stream(with_fill, stream, progress=False)
    assert np.isfinite(next(gen)[1][:5]).all()
    assert stream.fill == {} and stream.fill_dtype == np.float64
    gen.close()
    assert stream.fill == {} and stream.fill_dtype == np.float64
    first = next(stream.chunks(dropna=False))     # read as the user opened it: not imputed
    assert (first.X[:5, 0] > 1e38).all()


def test_predict_stream_needs_a_stream_as_wide_as_the_model(tmp_path):
    """A float32 stream rounded a float64 model's inputs (and made 1e39 an inf, a row
    without prediction): refused.  A float64 stream gives model.predict_proba's answer for a
    float64 model and for a standardising float32 model alike."""
    from fastmlp.data import CatalogStream, predict_stream
    far, by_hand, y = _far_table()
    path = _stream_csv(tmp_path / "c.csv", far)
    wide = fastmlp.MLP([4, 8, 1], seed=0, dtype="float64", features="colors:ugriz")
    stream = CatalogStream(path, features="colors:ugriz", label=False)
    with pytest.raises(ValueError, match=r"the stream's dtype float32 is narrower than the "
                                         r"model's float64.*dtype='float64'"):
        next(predict_stream(wide, stream, progress=False))
    narrow = _far_model()
    fastmlp.fit(narrow, by_hand, y, epochs=1, validation=None, progress=False,
                backend="numpy", standardize=True)
    stream = CatalogStream(path, features="colors:ugriz", label=False, dtype="float64")
    for model in (wide, narrow):
        out = np.concatenate([o for _, o in predict_stream(model, stream, progress=False)])
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out, model.predict_proba(far))


def test_fit_stream_keeps_the_streams_fill(tmp_path):
    """A stream opened with fill= trained on imputed rows: the model keeps that fill, so
    that its predictions impute those rows as training did."""
    far, _, y = _far_table()
    rec = np.zeros(len(y), dtype=[(b, "f8") for b in BANDS] + [("label", "i4")])
    for b in BANDS:
        rec[b] = far[b]
    rec["u"][5:8] = np.nan
    rec["label"] = y
    np.save(tmp_path / "c.npy", rec)
    from fastmlp.data import CatalogStream
    stream = CatalogStream(tmp_path / "c.npy", features="colors:ugriz", label="label",
                           fill={"u": FAR_U})
    model = fastmlp.MLP([4, 8, 1], seed=0)
    fastmlp.fit_stream(model, stream, epochs=1, progress=False)
    assert model.features.fill == {"u": FAR_U}
    assert np.isfinite(model.predict_proba({b: rec[b] for b in BANDS})).all()
    other = fastmlp.MLP([4, 8, 1], seed=0,
                        features=FeatureSpec("colors:ugriz", fill={"u": 19.0}))
    before = other.params.copy()
    with pytest.raises(ValueError, match=r"the stream's fill \{'u': 21\.0\} differs from the "
                                         r"model's fill \{'u': 19\.0\}"):
        fastmlp.fit_stream(other, stream, epochs=1, progress=False)
    assert other.features.fill == {"u": 19.0}
    np.testing.assert_array_equal(other.params, before)


def test_catalog_stream_names_a_bad_fill_dtype(tmp_path):
    from fastmlp.data import CatalogStream
    (tmp_path / "c.csv").write_text("u,g,r,i,z\n20,19,18,17.5,17\n")
    for arg in ("fill_dtype", "dtype"):
        with pytest.raises(ValueError, match=f"{arg} must be 'float32' or 'float64', got "
                                             "'bogus'"):
            CatalogStream(tmp_path / "c.csv", features="colors:ugriz", label=False,
                          **{arg: "bogus"})
