"""fastmlp.onnx_export: the exported graph gives fastmlp's probabilities in onnxruntime."""

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is an optional dependency "
                                          "(pip install onnx onnxruntime)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency "
                                                "(pip install onnxruntime)")

import fastmlp  # noqa: E402
from fastmlp import io as fio  # noqa: E402
from fastmlp.codes import ACTIVATIONS  # noqa: E402
from fastmlp.io.onnx import to_onnx  # noqa: E402


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _X(n_in, dtype, n=500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 2.0, size=(n, n_in))  # wide enough to reach the tails of every unit
    return X.astype(dtype)


def _trained(sizes, act, dtype, seed=0):
    model = fastmlp.MLP(sizes, activation=act, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    X = _X(sizes[0], dtype, n=200, seed=seed + 1)
    y = rng.integers(0, max(2, sizes[-1]), size=200)
    fastmlp.fit(model, X, y, lr=0.01, epochs=2, batch_size=32, validation=None,
                progress=False)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_out", [1, 3])
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_probabilities_match(tmp_path, act, n_out, dtype):
    model = _trained([4, 16, 8, n_out], act, dtype)
    path = to_onnx(model, tmp_path / "m.onnx")
    sess = _session(path)
    X = _X(4, dtype)
    proba, label, logits = sess.run(["proba", "label", "logits"], {"X": X})
    expected = model.predict_proba(X)
    assert proba.shape == expected.shape == (500, 2 if n_out == 1 else 3)
    assert proba.dtype == np.dtype(dtype)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(logits, model.forward(X), rtol=1e-5, atol=1e-5)
    # labels agree wherever the top probability is not a near-tie
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5
    np.testing.assert_array_equal(label[clear], model.predict(X)[clear])
    assert label.dtype == np.int64


def test_regression_output_and_standardization(tmp_path):
    model = fastmlp.MLP([3, 10, 2], activation="gelu", seed=2)
    X = _X(3, "float32", n=100)
    fastmlp.fit(model, X, X[:, :2] * 2 + 1, loss="mse", lr=0.01, epochs=2, validation=None,
                progress=False)
    mean, std = np.array([1.0, -2.0, 0.5]), np.array([2.0, 0.5, 3.0])
    model.set_contract(standardization=(mean, std))   # the model's own scaling goes in
    path = to_onnx(model, tmp_path / "r.onnx")
    sess = _session(path)
    assert [o.name for o in sess.get_outputs()] == ["prediction"]
    raw = (X * std + mean).astype(np.float32)
    (pred,) = sess.run(None, {"X": raw})
    np.testing.assert_allclose(pred, model.predict(raw), rtol=1e-5, atol=1e-5)
    # standardization=False leaves it out: the graph then takes standardised inputs
    path = to_onnx(model, tmp_path / "s.onnx", standardization=False)
    (pred_s,) = _session(path).run(None, {"X": X})
    np.testing.assert_allclose(pred_s, model.predict(raw), rtol=1e-4, atol=1e-4)


def test_loaded_model_exports_identically(tmp_path):
    model = _trained([4, 8, 1], "softplus", "float32")
    loaded = fio.load(fio.save(model, tmp_path / "m.npz"))
    a = onnx.load(str(to_onnx(model, tmp_path / "a.onnx")))
    b = onnx.load(str(to_onnx(loaded, tmp_path / "b.onnx")))
    assert a.graph == b.graph
    X = _X(4, "float32")
    np.testing.assert_allclose(_session(tmp_path / "b.onnx").run(["proba"], {"X": X})[0],
                               model.predict_proba(X), atol=1e-5)


def test_graph_is_valid_and_batch_dimension_dynamic(tmp_path):
    model = _trained([4, 5, 3], "elu", "float32")
    path = to_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 13
    ops = {n.op_type for n in proto.graph.node}
    assert {"MatMul", "Add", "Softmax"} <= ops
    sess = _session(path)
    for n in (1, 7, 1000):
        X = _X(4, "float32", n=n)
        np.testing.assert_allclose(sess.run(["proba"], {"X": X})[0], model.predict_proba(X),
                                   atol=1e-5)


def test_atomic_write_and_errors(tmp_path, monkeypatch):
    model = _trained([4, 5, 1], "relu", "float32")
    p = to_onnx(model, tmp_path / "m.onnx")
    before = p.read_bytes()
    from fastmlp import atomic

    def fail(src, dst):
        raise OSError("no space")
    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError):
        to_onnx(fastmlp.MLP([4, 9, 1]), p)
    monkeypatch.undo()
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["m.onnx"]
    with pytest.raises(TypeError, match="fastmlp.MLP"):
        to_onnx("model", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="standardization"):
        to_onnx(model, tmp_path / "x.onnx", standardization=([0.0] * 4, [1.0] * 4))


def test_export_refuses_nan_parameters_and_a_contract_changed_in_place(tmp_path):
    """A graph of NaN weights predicts NaN for every row; a contract changed in place since
    it was checked would be exported as it is."""
    model = _trained([4, 5, 1], "relu", "float32")
    model.weights[0][1, 2] = np.inf                # a view into params
    with pytest.raises(ValueError, match=r"model parameters contain 1 non-finite value "
                       r"\(NaN or inf\): 1 in weights\[0\] \(layer 1\); refusing to export"):
        to_onnx(model, tmp_path / "m.onnx")
    model.weights[0][1, 2] = 0.0
    model.standardization = ([0.0] * 4, [1.0] * 4)
    mean = model.standardization[0]
    mean.flags.writeable = True
    mean[0] = np.nan
    with pytest.raises(ValueError, match=r"input column 0 has mean nan"):
        to_onnx(model, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_fastmlp_to_onnx(tmp_path):
    model = _trained([4, 6, 3], "tanh", "float32")
    X = _X(4, "float32")
    sess = _session(fastmlp.to_onnx(model, tmp_path / "m.onnx"))
    np.testing.assert_allclose(sess.run(["proba"], {"X": X})[0], model.predict_proba(X),
                               atol=1e-5)


def test_without_onnx_the_error_names_the_extra(monkeypatch, tmp_path):
    import sys
    for mod in ("onnx", "onnx.helper", "onnx.numpy_helper"):
        monkeypatch.setitem(sys.modules, mod, None)  # as if onnx were not installed
    with pytest.raises(ImportError, match=r"fastmlp\[onnx\]"):
        to_onnx(fastmlp.MLP([2, 1]), tmp_path / "x.onnx")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", ["sigmoid", "sigmoid-cut", "softmax", "softmax-cut",
                                  "multilabel"])
def test_label_of_a_row_without_finite_probabilities_is_python_s(tmp_path, kind):
    """A row with NaN / inf features: NaN probabilities and label -1 in ONNX as in
    MLP.predict (the graph's ArgMax gave 0); a multilabel model's indicator row is -1 in
    every column, as Python's (it was all 0: NaN >= cut is false)."""
    n_out = {"sigmoid": 1, "sigmoid-cut": 1, "multilabel": 3}.get(kind, 3)
    model = fastmlp.MLP([4, 8, n_out], seed=1, loss="bce" if kind == "multilabel" else None)
    model.set_contract(standardization=([0.1, 0.2, 0.0, -0.1], [1.0, 2.0, 0.5, 1.5]))
    if kind.endswith("-cut"):
        model.set_contract(positive=0, threshold=0.3)
    X = _X(4, "float32", n=20)
    X[3, 0], X[7, 2], X[11, 1] = np.nan, np.inf, -np.inf
    proba, label = _session(to_onnx(model, tmp_path / "m.onnx")).run(["proba", "label"],
                                                                    {"X": X})
    expected = model.predict(X)
    np.testing.assert_array_equal(np.isnan(proba), np.isnan(model.predict_proba(X)))
    np.testing.assert_array_equal(label, expected)
    bad = ~np.isfinite(model.predict_proba(X)).all(axis=1)
    assert bad[3] and bad.sum() >= 2
    assert (label[bad] == -1).all() and (label[~bad] >= 0).all()


def _exact_logits_model(dtype, n_out=1, **contract):
    """One identity layer with weight 1 and bias 0: the logit is the input, exactly, in
    every runtime, so only the link is compared."""
    model = fastmlp.MLP([1, n_out], activation="identity", dtype=dtype, **contract)
    model.weights[0][...] = 1.0
    model.biases[0][...] = 0.0
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_probabilities_keep_their_relative_precision(tmp_path, dtype):
    """P(class 0) of a sigmoid model (the positive class of a DR6 quasar model) and a
    multilabel model's sigmoids, for logits -80..80: within a few ulps of Python's relative
    to the probability itself.  (1 - p in float32 snapped small probabilities to 6e-8 steps;
    onnxruntime's Sigmoid is off by 2e-4 relative at -10 and 0 below -18 in float32.)"""
    z = np.concatenate([np.linspace(-80, 80, 4001), [0.0, -0.0, np.inf, -np.inf]])
    X = z.astype(dtype)[:, None]
    tol = {"float32": 4e-7, "float64": 1e-15}[dtype]
    tiny = np.finfo(dtype).tiny
    for model in (_exact_logits_model(dtype, class_names=("QSO", "STAR"), positive=0),
                  _exact_logits_model(dtype, n_out=3, loss="bce")):
        (proba,) = _session(to_onnx(model, tmp_path / "m.onnx")).run(["proba"],
                                                                     {"X": np.tile(
                                                                         X, model.n_inputs)})
        expected = model.predict_proba(np.tile(X, model.n_inputs))
        # an inf input is no prediction (README), whatever the logit does with it
        finite = np.isfinite(z)
        assert np.isfinite(proba[finite]).all() and np.isnan(proba[~finite]).all()
        proba, expected = proba[finite], expected[finite]
        big = expected > tiny
        np.testing.assert_allclose(proba[big], expected[big], rtol=tol, atol=0)
        assert (proba[~big] <= tiny).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_log1p_regression_inverts_with_an_accurate_expm1(tmp_path, dtype):
    """The graph's expm1 (ONNX has none) is np.expm1's to a couple of ulps, for tiny and
    large values alike (exp(h) - 1 lost everything below 6e-8 in float32)."""
    h = np.concatenate([np.linspace(-5, 5, 2001), np.geomspace(1e-10, 1, 201),
                        -np.geomspace(1e-10, 1, 201), [0.0, 100.0, -100.0, np.inf, -np.inf]])
    X = h.astype(dtype)[:, None]
    model = _exact_logits_model(dtype, loss="mse", target_transform="log1p")
    (pred,) = _session(to_onnx(model, tmp_path / "r.onnx")).run(None, {"X": X})
    with np.errstate(over="ignore"):
        expected = model.predict(X)
    np.testing.assert_allclose(pred[:, 0], expected, rtol=2 * np.finfo(dtype).eps, atol=0)
