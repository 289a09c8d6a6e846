"""fit_stream keeps the label mapping the caller gave a CatalogStream (use_classes /
use_targets), reads a regression's whole-number targets as floats, and reads a feature
beyond the model's dtype as missing whatever the stream's dtype and fill."""
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from fastmlp.data import load_catalog
from fastmlp.data.stream import CatalogStream


def _classes_csv(path, n=60):
    rng = np.random.default_rng(0)
    rows = ["u,g,r,cls"]
    for i in range(n):
        u = "1e39" if i % 7 == 0 else f"{rng.normal(20):.3f}"
        rows.append(f"{u},{rng.normal(19):.3f},{rng.normal(18):.3f},{'AB'[i % 2]}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _regression_csv(path, n=40):
    rng = np.random.default_rng(0)
    rows = ["a,b,t"] + [f"{rng.normal():.3f},{rng.normal():.3f},{(i % 5) - 2}"
                        for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _fit(model, stream, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastmlp.fit_stream(model, stream, epochs=1, progress=False, **kw)


def test_use_classes_order_is_kept(tmp_path):
    path = _classes_csv(tmp_path / "c.csv")
    s = CatalogStream(path, features=["u", "g", "r"], label="cls", chunk_rows=16)
    s.use_classes(["B", "A"])
    m = fastmlp.MLP([3, 4, 2], seed=0)
    hist = _fit(m, s)
    assert m.class_names == ("B", "A")
    assert s.class_names == ("B", "A")
    # the scan counted the rows under the caller's mapping (A: even rows, B: odd rows)
    assert hist.stream.class_counts["A"] + hist.stream.class_counts["B"] == s.n_valid
    y = np.concatenate([c.y for c in hist.stream.chunks()])
    assert set(np.unique(y)) == {0, 1}


def test_use_classes_balanced_weights(tmp_path):
    path = _classes_csv(tmp_path / "c.csv")
    s = CatalogStream(path, features=["u", "g", "r"], label="cls", chunk_rows=16)
    s.use_classes(["B", "A"])
    m = fastmlp.MLP([3, 4, 2], seed=0)
    _fit(m, s, class_weight="balanced")
    assert m.class_names == ("B", "A")


@pytest.mark.parametrize("given", [True, False])
def test_integer_regression_targets(tmp_path, given):
    path = _regression_csv(tmp_path / "r.csv")
    s = CatalogStream(path, features=["a", "b"], label="t", chunk_rows=16)
    if given:
        s.use_targets()
    m = fastmlp.MLP([2, 4, 1], seed=0, loss="mse")
    hist = _fit(m, s, loss="mse")
    assert m.class_names is None
    y = np.concatenate([c.y for c in hist.stream.chunks()])
    assert y.dtype.kind == "f"
    assert sorted(np.unique(y).tolist()) == [-2.0, -1.0, 0.0, 1.0, 2.0]
    assert np.isfinite(hist.loss[-1])


def test_use_targets_survives_a_scan(tmp_path):
    path = _regression_csv(tmp_path / "r.csv")
    s = CatalogStream(path, features=["a", "b"], label="t", chunk_rows=16).use_targets()
    s.scan()
    assert s.class_names is None and s.n_valid == 40
    assert np.concatenate([c.y for c in s.chunks()]).dtype.kind == "f"


def test_cli_stream_task_regression(tmp_path, capsys):
    path = _regression_csv(tmp_path / "r.csv")
    out = tmp_path / "m.npz"
    rc = main(["train", "--catalog", str(path), "--label", "t", "--features", "a,b",
               "--stream", "--task", "regression", "--epochs", "1", "--chunk-rows", "16",
               "--quiet", "--out", str(out)])
    assert rc in (0, None)
    m = fastmlp.load(out)
    assert m.n_outputs == 1 and m.class_names is None and m.loss == "mse"


def test_float64_stream_float32_model_drops_beyond_range(tmp_path):
    path = _classes_csv(tmp_path / "c.csv")
    s = CatalogStream(path, features=["u", "g", "r"], label="cls", chunk_rows=16,
                      dtype="float64")
    m = fastmlp.MLP([3, 4, 2], seed=0)          # float32
    hist = _fit(m, s)
    kept = load_catalog(path, features=["u", "g", "r"], label="cls", missing="drop",
                        dtype="float32").X.shape[0]
    assert hist.stream.n_valid == kept == 51
    assert abs(m.standardization[0][0] - 20) < 1
    assert s.range_dtype is None and s.dtype == np.float64     # the caller's, unchanged
    # the caller's own reading still reads 1e39 as a number in float64
    assert sum(c.X.shape[0] for c in s.chunks(labels=False, dropna=True)) == 60


def test_float64_stream_float32_model_refuses_under_error(tmp_path):
    path = _classes_csv(tmp_path / "c.csv")
    s = CatalogStream(path, features=["u", "g", "r"], label="cls", chunk_rows=16,
                      dtype="float64", missing="error")
    m = fastmlp.MLP([3, 4, 2], seed=0)
    with pytest.raises(ValueError, match=r"missing or invalid values.*'u': 3"):
        _fit(m, s)
