"""Export a fastmlp.MLP to ONNX (``onnx`` is an optional dependency: ``pip install onnx``).

The graph uses only common operators of opset 13 (MatMul, Add, Mul, Sub, Div, Neg, Max, Min,
Exp, Log, Abs, Tanh, Sigmoid, Relu, Greater, GreaterOrEqual, Where, Softmax, Concat, ArgMax,
Gather, ReduceSum, IsNaN, IsInf, Or, Equal, Cast), so it runs in onnxruntime and any other ONNX
runtime.  Per layer: ``MatMul(X, W) + b`` and the hidden activation
(identity, relu, leaky_relu, elu, tanh, sigmoid, softplus, gelu in its tanh form, written
with elementary operators exactly as fastmlp computes them).

Input ``"X"``: (n, n_inputs) of the model's dtype (float32 -> tensor(float), float64 ->
tensor(double)), the features in feature order (colours already formed); the batch
dimension is dynamic.  As for ``model.predict_proba`` on an array in feature order, every
value is a number: a missing one must be NaN (SDSS's -9999 is turned into NaN only where raw
columns are read by name, fastmlp.features.MISSING_VALUES).  Outputs:

* classifiers (loss "bce" / "cross_entropy", or any untrained model with a loss of None):
  ``"proba"`` (n, n_classes), the same as ``model.predict_proba`` (for one output
  ``[sigmoid(-logit), sigmoid(logit)]``, each column computed directly from exp(-|logit|)
  as fastmlp does, else the softmax), ``"label"`` (n,) int64, the class index
  (``model.predict``: -1 for a row whose probabilities are not finite), and ``"logits"``
  (n, n_outputs); a row with an input that is not finite gets NaN in all of them (label
  -1), a row whose logit overflowed keeps that +-inf in ``"logits"`` while its ``"proba"``
  is NaN and its ``"label"`` -1;
* regressors (loss "mse"): ``"prediction"`` (n, n_outputs).

A model whose features have fill values (``FeatureSpec.fill``, stored by ``fastmlp train
--missing impute-median``) takes RAW columns instead: ``"X"`` is (n, n_columns) float64
(tensor(double)), the columns named in the model property ``"inputs"`` in that order (the
magnitudes u, g, r, ... of its colours); the graph replaces a missing value (NaN, inf,
-9999, or for a float32 model a value beyond float32's range) of a column with a fill value
by it, turns -9999 into NaN in the others, and forms the features (column differences for
the colours) in float64, as FeatureSpec.transform does for ``model.predict_proba`` on a
table.  Such a graph always forms a colour ``u-g`` from the raw columns u and g (unless the
fill values name a column ``u-g`` of its own), whereas Python and the C loader read a table's
column named ``u-g`` when there is one: give the graph the magnitudes, not the colours.
standardization=False is refused for such a model (the scaling must follow the colours
formed inside the graph).

The model's standardisation is part of the graph by default (``(X - mean) / std`` first), so
the graph takes raw features in feature order; so are the temperature and the threshold.
"""

import json
import os

import numpy as np

from ..atomic import atomic_write
from ..codes import ELU_ALPHA, LEAKY_RELU_SLOPE
from ..features import MISSING_VALUES, plan_sources
from ..model import require_mlp

__all__ = ["to_onnx", "OPSET", "raw_input_columns"]

OPSET = 13
_GELU_C = float(np.sqrt(2.0 / np.pi))
_GELU_K = 0.044715


def _require_onnx():
    try:
        import onnx
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as exc:  # pragma: no cover - exercised when onnx is absent
        raise ImportError("ONNX export needs the optional dependency 'onnx' "
                          "(pip install onnx, or pip install fastmlp[onnx])") from exc
    return onnx


class _Graph:
    def __init__(self, dtype):
        from onnx import numpy_helper
        self._nh = numpy_helper
        self.dtype = dtype
        self.nodes, self.inits, self._n = [], [], 0

    def name(self, base):
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, value, base="c"):
        n = self.name(base)
        self.inits.append(self._nh.from_array(np.asarray(value, dtype=self.dtype), n))
        return n

    def const64(self, value, base="c"):
        n = self.name(base)
        self.inits.append(self._nh.from_array(np.asarray(value, dtype=np.float64), n))
        return n

    def op_const_int(self, value):
        n = self.name("k")
        self.inits.append(self._nh.from_array(np.asarray(value, dtype=np.int64), n))
        return n

    def op(self, op_type, inputs, base=None, out=None, **attrs):
        from onnx import helper
        out = out or self.name(base or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def activation(self, z, act):
        if act == "identity":
            return z
        if act == "relu":
            return self.op("Relu", [z])
        if act == "tanh":
            return self.op("Tanh", [z])
        if act == "sigmoid":
            return self.op("Sigmoid", [z])
        if act == "leaky_relu":  # z if z > 0 else slope z  ==  max(z, slope z) for slope < 1
            return self.op("Max", [z, self.op("Mul", [z, self.const(LEAKY_RELU_SLOPE)])])
        if act == "elu":  # z if z > 0 else alpha (exp(min(z, 0)) - 1)
            zero = self.const(0.0)
            neg = self.op("Mul", [self.const(ELU_ALPHA), self.op(
                "Sub", [self.op("Exp", [self.op("Min", [z, zero])]), self.const(1.0)])])
            return self.op("Where", [self.op("Greater", [z, zero]), z, neg])
        if act == "softplus":  # max(z, 0) + log(1 + exp(-|z|))
            e = self.op("Exp", [self.op("Neg", [self.op("Abs", [z])])])
            return self.op("Add", [self.op("Relu", [z]),
                                   self.op("Log", [self.op("Add", [self.const(1.0), e])])])
        if act == "gelu":  # 0.5 z (1 + tanh(c (z + k z^3)))
            z3 = self.op("Mul", [self.op("Mul", [z, z]), z])
            inner = self.op("Mul", [self.const(_GELU_C), self.op(
                "Add", [z, self.op("Mul", [self.const(_GELU_K), z3])])])
            t = self.op("Add", [self.const(1.0), self.op("Tanh", [inner])])
            return self.op("Mul", [self.op("Mul", [self.const(0.5), z]), t])
        raise ValueError(f"cannot export activation {act!r}")


def build_onnx(model, standardization=True, name="fastmlp"):
    """The onnx.ModelProto for ``model`` (see the module docstring).  standardization: True
    (default) folds the model's own standardisation into the graph, so the graph takes raw
    features; False leaves it out (the graph takes standardised inputs)."""
    _require_onnx()
    from onnx import TensorProto, helper
    require_mlp(model)
    if standardization not in (True, False):
        raise ValueError(f"standardization must be True or False, got {standardization!r}")
    # changed in place since they were set?  The graph would carry a bad contract or
    # predict NaN for every row
    model.check_finite_params("export")
    model.check_contract()
    dtype = model.dtype
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    g = _Graph(dtype)
    raw = raw_input_columns(model)
    if raw and not standardization and model.standardization is not None:
        # the graph forms the features (colours) inside from raw columns: a caller could
        # not apply the scaling between the two
        raise ValueError("standardization=False is not possible for a model with fill "
                         "values (model.features.fill): its graph takes raw columns and "
                         "forms the features inside, so the scaling must be in the graph too; "
                         "use standardization=True")
    h = _network_inputs(g, model, raw, standardization and model.standardization is not None)
    nan_rows = _nan_where_not_finite(g, h)
    for i, (w, b) in enumerate(zip(model.weights, model.biases)):
        z = g.op("Add", [g.op("MatMul", [h, g.const(w, f"W{i}")]), g.const(b, f"b{i}")],
                 base=f"z{i}")
        h = z if i == model.n_layers - 1 else g.activation(z, model.activation)
    h = g.op("Add", [h, nan_rows], base="outputs")
    if model.link == "identity":
        if model.target_transform == "log1p":
            h = _expm1(g, h)
        g.op("Identity", [h], out="prediction")
        outputs = [helper.make_tensor_value_info("prediction", elem, ["N", model.n_outputs])]
    else:
        outputs = _classifier_outputs(g, model, h, elem)
    x_info = helper.make_tensor_value_info("X", TensorProto.DOUBLE, ["N", len(raw)]) if raw \
        else helper.make_tensor_value_info("X", elem, ["N", model.n_inputs])
    graph = helper.make_graph(g.nodes, name, [x_info], outputs, initializer=g.inits)
    from .._version import __version__
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="fastmlp", producer_version=__version__)
    m.ir_version = 7  # the IR of opset 13: readable by older runtimes too
    helper.set_model_props(m, _metadata(model, raw, standardization))
    import onnx
    onnx.checker.check_model(m)
    return m


def _classifier_outputs(g, model, h, elem):
    """"logits", "proba" and "label" of a classifier from the last layer's outputs ``h``;
    their value infos."""
    from onnx import TensorProto, helper
    n_out = model.n_outputs
    g.op("Identity", [h], out="logits")
    if model.temperature != 1.0:
        h = g.op("Div", [h, g.const(model.temperature)], base="tempered")
    # a row with a logit that is not finite gets NaN probabilities (an overflowed logit
    # is inf or NaN by the order of the sums: MLP._proba_of_logits, C, agree so)
    h = g.op("Add", [h, _nan_where_not_finite(g, h)], base="finite_logits")
    label_shape = ["N"]
    if n_out == 1:
        p0, p1 = _sigmoid_pair(g, h)
        g.op("Concat", [p0, p1], out="proba", axis=1)
        _label(g, model)
    elif model.link == "sigmoid":   # multilabel: a sigmoid and a 0/1 label per output
        g.op("Identity", [_sigmoid_pair(g, h, both=False)[1]], out="proba")
        cut = 0.5 if model.threshold is None else model.threshold
        # as MLP.predict: 0/1 per output, a row of -1 where a probability is not finite
        ind = g.op("Cast", [g.op("GreaterOrEqual", ["proba", _cut_const(g, cut)])],
                   to=TensorProto.INT64)
        g.op("Where", [_not_finite_rows(g), g.op_const_int(-1), ind], out="label")
        label_shape = ["N", n_out]
    else:
        # Softmax over axis 1 of a 2-D tensor: identical in opset 11 and 13 semantics
        g.op("Softmax", [h], out="proba", axis=1)
        _label(g, model)
    n_classes = 2 if n_out == 1 else n_out
    return [helper.make_tensor_value_info("proba", elem, ["N", n_classes]),
            helper.make_tensor_value_info("label", TensorProto.INT64, label_shape),
            helper.make_tensor_value_info("logits", elem, ["N", n_out])]


def _metadata(model, raw, standardization):
    """The model's properties stored in the ONNX file ({name: text}): the raw columns and
    fill values as JSON, for a program that reads them to build "X"."""
    doc = {"layer_sizes": list(model.layer_sizes), "activation": model.activation,
           "loss": model.loss, "features": list(model.feature_names or []),
           "class_names": list(model.class_names or []),
           "standardized_inside": bool(standardization and model.standardization is not None),
           "inputs": list(raw or model.feature_names or []),
           "fill": dict(model.features.fill) if raw else {}}
    return {k: json.dumps(v) if k in ("inputs", "fill") else str(v) for k, v in doc.items()}

def _network_inputs(g, model, raw, standardize):
    """The network's inputs in the model's dtype from the graph's "X": the features formed
    from the raw columns ``raw`` (a model with fill values) or X itself, then standardised
    in float64 and rounded to the dtype, as MLP.transform_inputs computes them."""
    from onnx import TensorProto
    elem = _elem(g.dtype)
    h = "X"
    if raw:
        h = _features_from_raw(g, model, raw)       # float64 features in feature order
        if not standardize:
            h = g.op("Cast", [h], to=elem, base="features")
    if standardize:
        mean, std = model.standardization
        h = g.op("Cast", [h], to=TensorProto.DOUBLE)
        h = g.op("Div", [g.op("Sub", [h, g.const64(mean, "mean")]), g.const64(std, "std")],
                 base="standardized64")
        h = g.op("Cast", [h], to=elem, base="standardized")
    return h


def _nan_where_not_finite(g, x):
    """(N, 1): 0 for a row of x whose values are all finite, NaN for the others (x * 0 is
    NaN for NaN and +-inf), to be added to a tensor of the same rows: a row with an input
    that is not finite has no prediction even where tanh or sigmoid saturate an inf to a
    finite value, as MLP.decision_function (and a row with a logit that is not finite no
    probabilities)."""
    return g.op("ReduceSum", [g.op("Mul", [x, g.const(0.0)]), g.op_const_int([1])],
                keepdims=1, base="nan_rows")


def raw_input_columns(model):
    """The raw columns the graph takes for a model with fill values, in order (None for a
    model without them: its graph takes the features in feature order)."""
    if model.features is None or not model.features.fill:
        return None
    return plan_sources(model.features.fill_plan())


def _features_from_raw(g, model, raw):
    """(N, n_inputs) float64 features from the raw columns "X" (N, len(raw)): a missing
    value (NaN, inf, -9999, or beyond float32's range for a float32 model) of a column with
    a fill value replaced by it, -9999 NaN in the others (fastmlp.features.missing_mask,
    FeatureSpec.transform), then the colours."""
    fill = model.features.fill
    cols = {}
    for k, name in enumerate(raw):
        x = g.op("Gather", ["X", g.op_const_int([k])], axis=1, base=f"raw_{k}")   # (N, 1)
        sentinel = _is_sentinel(g, x)
        if name in fill:
            bad = g.op("Or", [g.op("Or", [g.op("IsNaN", [x]), g.op("IsInf", [x])]),
                              sentinel])
            if g.dtype == np.float32:     # beyond float32's range: missing, as training had it
                big = g.const64(float(np.finfo(np.float32).max), "float32_max")
                bad = g.op("Or", [bad, g.op("Greater", [g.op("Abs", [x]), big])])
            x = g.op("Where", [bad, g.const64(fill[name], "fill"), x], base=f"filled_{k}")
        else:
            x = g.op("Where", [sentinel, g.const64(np.nan, "nan"), x], base=f"read_{k}")
        cols[name] = x
    feats = [cols[s[1]] if s[0] == "col" else g.op("Sub", [cols[s[1]], cols[s[2]]])
             for s in model.features.fill_plan()]
    return g.op("Concat", feats, axis=1, base="features64") if len(feats) > 1 else feats[0]


def _is_sentinel(g, x):
    """(N, 1) bool: the values of x equal to one of MISSING_VALUES (SDSS's -9999)."""
    out = None
    for v in MISSING_VALUES:
        eq = g.op("Equal", [x, g.const64(v, "missing")])
        out = eq if out is None else g.op("Or", [out, eq])
    return out


def _sigmoid_pair(g, z, both=True):
    """(sigmoid(-z), sigmoid(z)) as fastmlp computes them (reference.sigmoid_pair): with
    e = exp(-|z|), 1 / (1 + e) or e / (1 + e), z >= 0 choosing which, each column directly.
    Not onnxruntime's Sigmoid (its float32 kernel is a rational approximation clamped to
    |z| <= 18: sigmoid(-10) off by 2e-4 relative, 0 below -18; float64 0 below -40) and no
    1 - p (a float32 1 - p snaps a small probability to steps of 6e-8).  NaN gives NaN in
    both (through 1 + e); +-inf gives 0 and 1.  both=False: (None, sigmoid(z))."""
    e = g.op("Exp", [g.op("Neg", [g.op("Abs", [z])])])
    den = g.op("Add", [e, g.const(1.0)])
    pos = g.op("Cast", [g.op("GreaterOrEqual", [z, g.const(0.0)])],
               to=_elem(g.dtype))                                   # 1 where z >= 0, else 0
    p1 = g.op("Div", [g.op("Max", [e, pos]), den], base="p_pos")    # max(e, 1) = 1, e <= 1
    if not both:
        return None, p1
    neg = g.op("Sub", [g.const(1.0), pos])
    return g.op("Div", [g.op("Max", [e, neg]), den], base="p_neg"), p1


def _expm1(g, x):
    """expm1(x) without an Expm1 operator (ONNX has none): Kahan's formulation in float64,
    u = exp(x), expm1 = x where u == 1, else (u - 1) x / log(u) (-1 where u - 1 == -1, inf
    where u is), rounded to the model's dtype.  A few float64 ulps from the true expm1, so a
    float32 model gets np.expm1's float32 numbers (to the rounding of the last bit); exp(x)
    - 1 in float32 was off by up to 4e-6 absolute for small x (cancellation)."""
    from onnx import TensorProto
    x = g.op("Cast", [x], to=TensorProto.DOUBLE)
    u = g.op("Exp", [x])
    um1 = g.op("Sub", [u, g.const64(1.0)])
    ratio = g.op("Div", [g.op("Mul", [um1, x]), g.op("Log", [u])])
    out = g.op("Where", [g.op("Equal", [um1, g.const64(-1.0)]), g.const64(-1.0), ratio])
    out = g.op("Where", [g.op("IsInf", [u]), u, out])
    out = g.op("Where", [g.op("Equal", [u, g.const64(1.0)]), x, out])
    return g.op("Cast", [out], to=_elem(g.dtype), base="expm1")


def _elem(dtype):
    from onnx import TensorProto
    return TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE


def _cut_const(g, cut):
    """The threshold as a constant of the graph's type such that ``p >= constant`` there is
    ``p >= cut`` exactly, as MLP.predict and C compare: the least value of that type not
    below the cut (rounding 0.7 to the nearest float32, 0.69999999, would select a row
    whose probability is that float32 and below the cut)."""
    c = np.asarray(cut, dtype=g.dtype)
    if float(c) < cut:
        c = np.nextafter(c, np.asarray(np.inf, dtype=g.dtype))
    return g.const(c)


def _label(g, model):
    """The "label" output: argmax, or the positive class where its probability reaches the
    model's threshold (the rest: argmax over the other classes), as MLP.predict; -1 for a
    row whose probabilities are not all finite (NaN / inf features), as MLP.predict."""
    if model.threshold is None:
        label = g.op("ArgMax", ["proba"], axis=1, keepdims=0)
    else:
        n = 2 if model.n_outputs == 1 else model.n_outputs
        onehot = np.zeros(n)
        onehot[model.positive] = 1.0
        # the other classes' argmax: push the positive column far below every probability
        others = g.op("Sub", ["proba", g.const(onehot * 10.0)])
        rest = g.op("ArgMax", [others], axis=1, keepdims=0)
        p_pos = g.op("Gather", ["proba", g.op_const_int(model.positive)], axis=1)
        is_pos = g.op("GreaterOrEqual", [p_pos, _cut_const(g, model.threshold)])
        label = g.op("Where", [is_pos, g.op_const_int(model.positive), rest])
    g.op("Where", [_not_finite_rows(g, keepdims=0), g.op_const_int(-1), label], out="label")


def _not_finite_rows(g, keepdims=1):
    """(N, 1) (or (N,)) bool: the rows of "proba" with a probability that is not finite."""
    # a row's probabilities lie in [0, 1]: their sum is finite iff every one is
    total = g.op("ReduceSum", ["proba", g.op_const_int([1])], keepdims=keepdims)
    return g.op("Or", [g.op("IsNaN", [total]), g.op("IsInf", [total])])


def to_onnx(model, path, *, standardization=True):
    """Write ``model`` as an ONNX file at ``path`` (atomically: temp file + rename), with the
    model's standardisation, temperature, link and threshold in the graph (raw features in,
    the same probabilities and labels as model.predict_proba / predict out).
    standardization=False leaves the scaling out.  Returns the Path written."""
    proto = build_onnx(model, standardization=standardization)
    data = proto.SerializeToString()
    return atomic_write(os.fspath(path), lambda f: f.write(data))
