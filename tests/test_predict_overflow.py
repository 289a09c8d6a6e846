"""A regression model (a photometric redshift) whose output overflows the float range on
a row: ``fastmlp predict`` writes the value the model gives - inf, as model.predict, the C
loader and ONNX give it - with valid=False, not NaN (which is what a row with missing
features gets)."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from fastmlp.data import CatalogStream, predict_stream

N = 120
BANDS = ["u", "g", "r"]


def _overflowing_model(tmp_path, target_transform=None):
    """A float32 regressor whose output bias sits at the edge of overflow: a row whose
    hidden layer pushes the output up overflows (inf), one that pushes it down stays
    finite.  (No product of the last layer overflows on its own, so no inf - inf: NaN.)"""
    model = fastmlp.MLP([3, 8, 1], features=",".join(BANDS), loss="mse", seed=3,
                        target_transform=target_transform, backend="numpy")
    assert model.link == "identity" and model.dtype == np.float32
    if target_transform is None:        # the float32 range itself
        model.weights[-1][...] *= np.float32(1e33)
        model.biases[-1][...] = np.finfo(np.float32).max
    else:                               # expm1 of log(1 + z) beyond float32's range
        model.weights[-1][...] *= np.float32(10)
        model.biases[-1][...] = np.float32(88.5)
    fastmlp.save(model, tmp_path / "pz.npz")
    model = fastmlp.load(tmp_path / "pz.npz")
    model.backend = "numpy"             # the kernels the CLI runs with --backend numpy
    return model


def _catalog(tmp_path):
    rng = np.random.default_rng(0)
    cat = np.zeros(N, dtype=[("id", "i8")] + [(b, "f8") for b in BANDS])
    cat["id"] = np.arange(N)
    for b in BANDS:
        cat[b] = rng.normal(0, 2, N)
    cat["g"][10] = np.nan               # a missing feature: NaN, valid=False
    np.save(tmp_path / "cat.npy", cat)
    return cat


def _cli_predict(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    assert main(["predict", "--model", str(tmp_path / "pz.npz"), "--catalog",
                 str(tmp_path / "cat.npy"), "--out", str(out), "--id-column", "id",
                 "--quiet", "--backend", "numpy", "--chunk-rows", "50"]) == 0
    if suffix == ".npy":
        table = np.load(out)
        return table["prediction"], table["valid"]
    if suffix == ".csv":
        text = np.genfromtxt(out, delimiter=",", names=True, dtype=None, encoding="utf-8",
                             missing_values="", filling_values=np.nan)
        return text["prediction"], text["valid"].astype(str) == "True"
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(out)
    return (table.column("prediction").to_numpy(zero_copy_only=False),
            table.column("valid").to_numpy(zero_copy_only=False))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("target_transform", [None, "log1p"])
@pytest.mark.parametrize("suffix", [".npy", ".parquet", ".csv"])
def test_cli_writes_the_overflowed_value_model_predict_gives(tmp_path, capsys, suffix,
                                                              target_transform):
    model = _overflowing_model(tmp_path, target_transform)
    cat = _catalog(tmp_path)
    with np.errstate(over="ignore", invalid="ignore"):
        want = model.predict(cat)
    assert want.dtype == np.float32
    assert np.isposinf(want).sum() >= 10 and np.isfinite(want).sum() >= 10
    assert np.isnan(want[10]) and np.isnan(want).sum() == 1
    got, valid = _cli_predict(tmp_path, suffix)
    assert capsys.readouterr().err == ""
    # inf and NaN alike; a CSV's text read back to float32 (it holds the float32 values)
    np.testing.assert_array_equal(got.astype(np.float32), want)
    np.testing.assert_array_equal(valid, np.isfinite(want))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_predict_stream_keeps_the_overflowed_value(tmp_path):
    model = _overflowing_model(tmp_path)
    cat = _catalog(tmp_path)
    stream = CatalogStream(tmp_path / "cat.npy", features=",".join(BANDS), label=False,
                           chunk_rows=40)
    parts = list(predict_stream(model, stream, progress=False))
    out = np.concatenate([o[:, 0] for _, o in parts]).astype(np.float64)
    valid = np.concatenate([ch.valid for ch, _ in parts])
    features_valid = np.concatenate([ch.features_valid for ch, _ in parts])
    with np.errstate(over="ignore", invalid="ignore"):
        want = model.predict(cat).astype(np.float64)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(valid, np.isfinite(want))
    np.testing.assert_array_equal(features_valid, np.arange(N) != 10)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("target_transform", [None, "log1p"])
def test_cli_overflows_where_the_onnx_graph_does(tmp_path, capsys, target_transform):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from fastmlp.io.onnx import to_onnx
    model = _overflowing_model(tmp_path, target_transform)
    cat = _catalog(tmp_path)
    X = np.stack([cat[b] for b in BANDS], axis=1).astype(np.float32)
    session = ort.InferenceSession(str(to_onnx(model, tmp_path / "pz.onnx")),
                                   providers=["CPUExecutionProvider"])
    (onnx_pred,) = session.run(None, {"X": X})
    onnx_pred = onnx_pred.reshape(-1)
    got, valid = _cli_predict(tmp_path, ".npy")
    assert np.isposinf(onnx_pred).sum() >= 10
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(onnx_pred))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(onnx_pred))
    np.testing.assert_allclose(got[valid], onnx_pred[valid], rtol=1e-4)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_cli_summary_says_overflowed_rows_apart_from_missing_features(tmp_path, capsys):
    model = _overflowing_model(tmp_path)
    cat = _catalog(tmp_path)
    with np.errstate(over="ignore", invalid="ignore"):
        n_overflowed = int(np.isposinf(model.predict(cat)).sum())
    assert n_overflowed >= 10
    got, valid = _cli_predict(tmp_path, ".npy")
    out = capsys.readouterr().out
    # the overflowed rows hold inf, not "no prediction"; the one missing feature: NaN
    assert np.isposinf(got).sum() == n_overflowed and np.isnan(got).sum() == 1
    assert (f"{n_overflowed} rows overflowed the float range (prediction inf or NaN, as "
            "model.predict gives it; valid false), 1 row has missing features (no "
            "prediction)") in out, out
    assert "got no prediction" not in out
