"""One saved model, one catalog, the same answer on every path an astronomer may use.

Python (model.predict_proba / predict on a table and on an array in feature order, before
and after fastmlp.save / fastmlp.load), ``fastmlp predict``, the C model-file API
(csrc/fastmlp.h, called here through ctypes on the package's libfastmlp.so: load,
resolve_columns, gather_features, predict_*) and the ONNX graph (onnxruntime, skipped
without it) must give the same probabilities (float32: 5e-5 relative, float64: 1e-12) and
exactly the same decisions (labels, selected at the cut or not, valid or not).

What the existing tests did not check: every hidden activation through C and ONNX with
its contract (fill values, colours, threshold, class names, standardisation or none), and
catalogs with infinite magnitudes and values beyond float32's range.  That found (fixed in
model.py, model_file.c and onnx.py): a row with an infinite input is not predicted
(README: "Rows whose input or output is not finite get NaN probabilities and label -1";
fastmlp predict said so), but Python, C and ONNX gave it a probability and a label when
tanh or sigmoid saturated the inf to a finite value; and a row whose logits overflowed got
a label or not depending on the order of the last layer's sums (inf - inf: NaN in one
path, inf in another), now no label on every path.
"""

import contextlib
import ctypes
import io

import numpy as np
import pytest

import fastmlp
from fastmlp import c_config
from fastmlp.cli import main
from fastmlp.features import FeatureSpec
from fastmlp.io.c_model import write_c_model
from conftest import ugriz_magnitudes

BANDS = "ugriz"
# float32: a probability's relative error is its logit's absolute one, and logits of 10-100
# added in another order (BLAS, onnxruntime) differ by a few of their ulps, 1e-6 .. 1e-5
RTOL = {"float32": 5e-5, "float64": 1e-12}
ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus",
               "gelu")


# ---- the catalog ---------------------------------------------------------------------------
def _catalog(n, seed, specials=()):
    """Magnitudes u..z (float64) of n stars / quasars; then, from row 0, one row per band
    and special value with that band set to it."""
    t = ugriz_magnitudes(n, np.random.default_rng(seed))
    k = 0
    for v in specials:
        for b in BANDS:
            t[b][k] = v
            k += 1
    return t


def _write_csv(path, t):
    with open(path, "w") as f:
        f.write("obj_id," + ",".join(BANDS) + "\n")
        for k in range(len(t["u"])):
            f.write(f"{k}," + ",".join(repr(float(t[b][k])) for b in BANDS) + "\n")


# ---- the paths -----------------------------------------------------------------------------
class _CModel:
    """The C model-file API of libfastmlp.so (fastmlp.h), through ctypes."""

    def __init__(self, path):
        try:
            lib = ctypes.CDLL(c_config.c_library_path())
        except (c_config.CLibraryMissing, OSError) as exc:
            pytest.skip(f"no C library: {exc}")
        self.lib, p = lib, ctypes.c_void_p()
        for name in ("n_inputs", "n_outputs", "n_classes", "label_width"):
            getattr(lib, f"fastmlp_model_{name}").restype = ctypes.c_int64
            getattr(lib, f"fastmlp_model_{name}").argtypes = [ctypes.c_void_p]
        lib.fastmlp_model_free.argtypes = [ctypes.c_void_p]
        assert lib.fastmlp_model_load(str(path).encode(), ctypes.byref(p)) == 0
        self.m = p

    def _n(self, name):
        return int(getattr(self.lib, f"fastmlp_model_{name}")(self.m))

    def predict(self, table):
        """(proba or values, labels or None) for a table of raw columns, as classify_catalog
        computes them."""
        lib, m, i64 = self.lib, self.m, ctypes.c_int64
        cols = list(table)
        names = (ctypes.c_char_p * len(cols))(*[c.encode() for c in cols])
        n_in, n = self._n("n_inputs"), len(table[cols[0]])
        a, b = np.empty(n_in, np.int64), np.empty(n_in, np.int64)
        ptr = np.ctypeslib.as_ctypes
        assert lib.fastmlp_model_resolve_columns(m, names, i64(len(cols)), ptr(a), ptr(b)) == 0
        raw = np.ascontiguousarray(np.stack([table[c] for c in cols], axis=1), np.float64)
        x = np.empty((n, n_in))
        assert lib.fastmlp_model_gather_features(m, ptr(x), ptr(raw), i64(n), i64(len(cols)),
                                                 ptr(a), ptr(b)) == 0
        if self._n("n_classes") == 0:
            out = np.empty((n, self._n("n_outputs")))
            assert lib.fastmlp_model_predict_values(m, ptr(x), i64(n), ptr(out)) == 0
            return out[:, 0], None
        proba = np.empty((n, self._n("n_classes")))
        labels = np.empty((n, self._n("label_width")), np.int64)
        assert lib.fastmlp_model_predict_proba(m, ptr(x), i64(n), ptr(proba)) == 0
        assert lib.fastmlp_model_predict_labels(m, ptr(x), i64(n), ptr(labels)) == 0
        return proba, labels[:, 0]

    def close(self):
        self.lib.fastmlp_model_free(self.m)


def _c_answer(model, table, tmp_path):
    write_c_model(model, tmp_path / "m.fmlp")
    c = _CModel(tmp_path / "m.fmlp")
    try:
        return c.predict(table)
    finally:
        c.close()


def _onnx_answer(model, table, tmp_path):
    pytest.importorskip("onnx", reason="onnx is an optional dependency")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency")
    from fastmlp.io.onnx import raw_input_columns, to_onnx
    to_onnx(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    raw = raw_input_columns(model)
    with np.errstate(over="ignore"):     # 1e300 is inf in float32, as it is for Python
        X = np.stack([table[c] for c in raw], axis=1) if raw else \
            model.features.transform(table).astype(model.dtype)
    if model.link == "identity":
        return sess.run(["prediction"], {"X": X})[0][:, 0], None
    return tuple(sess.run(["proba", "label"], {"X": X}))


def _cli_answer(model, table, tmp_path):
    """(proba or values, labels or None, valid) of fastmlp predict on the catalog as CSV."""
    fastmlp.save(model, tmp_path / "cli.npz")
    _write_csv(tmp_path / "cat.csv", table)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["predict", "--model", str(tmp_path / "cli.npz"), "--catalog",
                     str(tmp_path / "cat.csv"), "--out", str(tmp_path / "out.npy"),
                     "--quiet"]) == 0
    a = np.load(tmp_path / "out.npy")
    if model.link == "identity":
        return a["prediction"], None, a["valid"]
    classes = model.class_names or [str(k) for k in range(model.n_classes)]
    return np.stack([a[f"p_{c}"] for c in classes], axis=1), a["label"], a["valid"]


def _python_answer(model, data):
    if model.link == "identity":
        return model.predict(data), None
    return model.predict_proba(data), model.predict(data)


# ---- the comparison ------------------------------------------------------------------------
def _agree(path, got, want, model):
    """got's probabilities within the dtype's tolerance of want's, its labels the same
    (except where the positive class's probability is within rounding of the cut)."""
    (p, lab), (p_ref, lab_ref) = got, want
    p = np.asarray(p, np.float64).reshape(np.shape(p_ref))
    # a probability below 1e-30 is compared absolutely (float32's exp differs by more than
    # 1e-5 relative there between NumPy and onnxruntime), and so is a regression's value
    # near 0 (the last layer's sum of terms of order one, added in another order)
    rtol = RTOL[model.dtype.name]
    np.testing.assert_allclose(p, p_ref, rtol=rtol, atol=rtol if lab_ref is None else 1e-30,
                               equal_nan=True, err_msg=path)
    np.testing.assert_array_equal(np.isnan(p), np.isnan(p_ref), err_msg=f"{path}: valid")
    if lab_ref is None:
        return
    differ = np.asarray(lab).reshape(lab_ref.shape) != lab_ref
    if differ.any() and model.threshold is not None:
        near = np.abs(p_ref[:, model.positive] - model.threshold) \
            <= 4 * np.finfo(model.dtype).eps
        differ &= ~near
    assert not differ.any(), f"{path}: labels differ in rows {np.flatnonzero(differ)}"


def _check_every_path(model, table, tmp_path):
    want = _python_answer(model, table)
    if not model.features.fill:        # a model with fill values reads raw columns only
        _agree("array", _python_answer(model, model.features.transform(table)), want, model)
    fastmlp.save(model, tmp_path / "m.npz")
    _agree("loaded", _python_answer(fastmlp.load(tmp_path / "m.npz"), table), want, model)
    _agree("C", _c_answer(model, table, tmp_path), want, model)
    *cli, valid = _cli_answer(model, table, tmp_path)
    _agree("CLI", cli, want, model)
    p_ref = want[0] if want[0].ndim == 2 else want[0][:, None]
    np.testing.assert_array_equal(valid, np.isfinite(p_ref).all(axis=1), err_msg="CLI valid")
    _agree("ONNX", _onnx_answer(model, table, tmp_path), want, model)
    return want


def _model(activation, dtype, kind, *, features="colors:ugriz+r", fill=None, std=True,
           threshold=None, class_names=None, scale=1.0, seed=0):
    """An untrained network of the given kind and contract, its weights scaled by
    ``scale`` (large: confident, overflowing logits)."""
    X = FeatureSpec(features).transform(_catalog(500, 99))
    contract = {"features": FeatureSpec(features, fill=fill)}
    if std:
        contract["standardization"] = (X.mean(axis=0), X.std(axis=0))
    n_out = 3 if kind == "multi" else 1
    if kind in ("regression", "log1p"):
        contract["loss"] = "mse"
        if kind == "log1p":
            contract["target_transform"] = "log1p"
    else:
        if class_names:
            contract["class_names"] = class_names
        if threshold is not None:
            contract.update(positive=1, threshold=threshold)
    m = fastmlp.MLP([X.shape[1], 7, 5, n_out], activation=activation, dtype=dtype, seed=seed,
                    **contract)
    m.set_params(m.params * m.dtype.type(scale))
    return m


# ---- the defects found -----------------------------------------------------------------------
INFINITE_ROWS = 10         # rows 0-4: one band +inf, rows 5-9: one band -inf


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("kind", ["binary", "multi", "log1p"])
def test_an_infinite_magnitude_gives_no_prediction_on_any_path(tmp_path, activation, kind):
    """tanh and sigmoid turn an inf input into a finite output: that row used to get a
    probability and a label in Python, C and ONNX (fastmlp predict: none, valid=False)."""
    model = _model(activation, "float32", kind, std=False, threshold=0.4,
                   class_names=("star", "quasar") if kind == "binary" else None)
    table = _catalog(40, 1, specials=(np.inf, -np.inf))
    p, labels = _check_every_path(model, table, tmp_path)
    assert np.isnan(p[:INFINITE_ROWS]).all() and np.isfinite(p[INFINITE_ROWS:]).all()
    if labels is not None:
        assert (labels[:INFINITE_ROWS] == -1).all() and (labels[INFINITE_ROWS:] >= 0).all()


def test_a_magnitude_beyond_float32_gives_no_prediction(tmp_path):
    """1e300 is finite in the float64 table but inf as a float32 model's input."""
    model = _model("tanh", "float32", "binary", std=False)
    table = _catalog(30, 2, specials=(1e300,))
    p, labels = _check_every_path(model, table, tmp_path)
    assert np.isnan(p[:5]).all() and (labels[:5] == -1).all() and (labels[5:] >= 0).all()


def test_an_overflowed_logit_gets_no_label_on_any_path(tmp_path):
    """Logits beyond the float range are inf or NaN by the order of the last layer's sums
    (NumPy, BLAS, C and onnxruntime add in different orders): such a row gets no label,
    whichever it is, rather than a label in one path and -1 in another."""
    model = _model("identity", "float32", "multi", std=False, scale=1000.0, seed=1)
    table = _catalog(30, 1, specials=(1e30,))
    p, labels = _check_every_path(model, table, tmp_path)
    z = model.decision_function(table)
    assert not np.isfinite(z[:5]).all()
    bad = ~np.isfinite(z).all(axis=1)
    assert np.isnan(p[bad]).all() and (labels[bad] == -1).all() and (labels[~bad] >= 0).all()


# ---- the sweep -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_activation_gives_the_same_answer_everywhere(tmp_path, dtype):
    """Per activation a model drawn at random (fixed seed): binary, softmax, regression or
    log1p; with or without standardisation and fill values; colours or magnitudes; a cut
    and class names or none; and a catalog with -9999, NaN, inf, huge and tiny values and
    rows differing by 1e-13."""
    rng = np.random.default_rng(7 if dtype == "float32" else 8)
    specials = (-9999.0, np.nan, np.inf, -np.inf, -1e30, 1e300, 1e-300, 0.0)
    table = _catalog(60, 3, specials=specials)
    for j in range(5):                       # nearly equal rows
        for b in BANDS:
            table[b][len(specials) * 5 + j] = 20.0 + j * 1e-13
    for activation in ACTIVATIONS:
        kind = str(rng.choice(["binary", "multi", "regression", "log1p"]))
        classifier = kind in ("binary", "multi")
        model = _model(activation, dtype, kind,
                       features=str(rng.choice(["colors:ugriz", "colors:ugriz+r",
                                                "u,g-r,i-z"])),
                       fill={"u": 21.0, "g": 20.5} if rng.integers(2) else None,
                       std=bool(rng.integers(2)),
                       threshold=float(rng.choice([0.3, 0.7])) if classifier and
                       rng.integers(2) else None,
                       class_names=("a", "b", "c")[:3 if kind == "multi" else 2]
                       if classifier and rng.integers(2) else None,
                       seed=int(rng.integers(100)))
        _check_every_path(model, table, tmp_path)


def test_cli_standardises_the_catalog_as_python_does(tmp_path):
    """A float32 model standardising a colour of small scatter (std 0.01): fastmlp predict
    rounded the colours to float32 before standardising them (two roundings, 1e-4 apart in
    the logit), model.predict_proba, C and ONNX standardise float64 colours (one)."""
    table = _catalog(200, 4)
    X = FeatureSpec("colors:ugriz").transform(table)
    model = fastmlp.MLP([4, 1], activation="identity", features="colors:ugriz",
                        standardization=(X.mean(axis=0), np.full(4, 0.01)), threshold=0.5,
                        positive=1)
    model.weights[0][...] = 0.2      # logits of -54 .. 41
    want = _python_answer(model, table)
    p, labels, valid = _cli_answer(model, table, tmp_path)
    assert valid.all()
    # one rounding on either side, then the same arithmetic: a few float32 ulps
    np.testing.assert_allclose(p, want[0], rtol=4 * np.finfo(np.float32).eps, atol=0)
    _agree("CLI", (p, labels), want, model)


@pytest.mark.parametrize("threshold", [None, 0.4])
def test_cli_labels_a_multilabel_model_as_python_does(tmp_path, capsys, threshold):
    """A multilabel model's labels are a 0/1 per output in Python, C and ONNX; fastmlp
    predict wrote the argmax as the one label of a row (or, with a cut, failed with "a
    fastmlp bug"), then refused the model: it now writes p_<name> and label_<name> per
    output, as model.predict_proba / predict give them."""
    model = fastmlp.MLP([4, 6, 3], activation="tanh", output="sigmoid", loss="bce",
                        features="colors:ugriz", class_names=("a", "b", "c"),
                        threshold=threshold, seed=3)
    table = _catalog(20, 1)
    fastmlp.save(model, tmp_path / "ml.npz")
    _write_csv(tmp_path / "cat.csv", table)
    assert main(["predict", "--model", str(tmp_path / "ml.npz"), "--catalog",
                 str(tmp_path / "cat.csv"), "--out", str(tmp_path / "out.npy"),
                 "--quiet"]) == 0, capsys.readouterr().err
    a = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(np.stack([a[f"p_{c}"] for c in "abc"], axis=1),
                                  model.predict_proba(table))
    np.testing.assert_array_equal(np.stack([a[f"label_{c}"] for c in "abc"], axis=1),
                                  model.predict(table))
