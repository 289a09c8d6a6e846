"""MLP: layer sizes, one flat parameter buffer with per-layer views, and the model's whole
input-to-output contract (features, standardisation, classes, output link, decision cut).

Two levels, kept apart on purpose:

* the network: ``forward`` / ``loss_and_grad`` take the NETWORK's inputs (already
  standardised) and return logits / gradients, exactly what the kernels compute;
* the contract: ``transform_inputs``, ``decision_function``, ``predict_proba`` and
  ``predict`` take RAW catalog values (a NumPy array in feature order, or a DataFrame /
  pyarrow Table / structured array / dict holding the raw columns, colours derived by
  ``features``), apply the standardisation, the network, the temperature and the output
  link.  Every training path (fit, fit_stream, Dask, MPI), the model file, ONNX and the C
  loader apply the same contract, so a model gives the same probabilities everywhere.
"""

import copy
import math
import os
import threading

import numpy as np

from . import backends
from .backends import reference as _ref
from .buffers import aligned_copy, aligned_empty_like, aligned_zeros
from ._validate import (DROP_THEM_FIRST, check_array, check_float_dtype, check_sample_weight,
                        check_seed, check_targets, counted, plain_array)
from .codes import ACTIVATIONS, LOSSES, activation_code, loss_code
from .features import FeatureSpec, check_fill, table_columns

_RELU_FAMILY = ("relu", "leaky_relu", "elu")
_PROBA_BLOCK = 1 << 15   # rows per block of predict_proba's sigmoid
# network-input (or output) bytes per chunk of a long predict_proba: a chunk's standardised
# rows and logits are allocated once per chunk instead of once per catalog.  On a VM whose
# host reclaims freed pages after a few idle seconds, a first touch cost ~2.5 ms per MB.
_PREDICT_CHUNK_BYTES = 32 << 20

#: the output link per training loss; "sigmoid" with several outputs is multilabel
OUTPUTS = ("sigmoid", "softmax", "identity")
LINK_OF_LOSS = {"bce": "sigmoid", "cross_entropy": "softmax", "mse": "identity"}
TARGET_TRANSFORMS = (None, "log1p")


def check_standardization(standardization, n_inputs):
    """(mean, std) as two float64 arrays of n_inputs values (finite, std > 0), or None."""
    if standardization is None:
        return None
    try:
        mean, std = standardization
    except (TypeError, ValueError):
        raise ValueError("standardization must be a (mean, std) pair or None") from None
    mean = np.array(mean, dtype=np.float64).reshape(-1)
    std = np.array(std, dtype=np.float64).reshape(-1)
    if mean.shape != (n_inputs,) or std.shape != (n_inputs,):
        raise ValueError(f"standardization mean and std must each have "
                         f"{counted(n_inputs, 'value')} (one per input), got {mean.size} and "
                         f"{std.size}")
    bad = ~(np.isfinite(mean) & np.isfinite(std) & (std > 0))
    if bad.any():
        j = np.flatnonzero(bad)
        raise ValueError("standardization: mean must be finite and std finite and > 0; "
                         + ", ".join(f"input column {k} has mean {mean[k]:.6g} and std "
                                     f"{std[k]:.6g}" for k in j[:5])
                         + (f" (and {j.size - 5} more)" if j.size > 5 else ""))
    mean.flags.writeable = std.flags.writeable = False
    return mean, std


def _contract_field(name):
    """A contract field as a property of MLP: read from the model's contract, assigned
    through set_contract (so checked, the model unchanged if refused)."""
    return property(lambda self: self._contract[name],
                    lambda self, value: self.set_contract(**{name: value}),
                    doc=f"The contract's {name} (see MLP; assigning it checks it).")


class MLP:
    """A multi-layer perceptron with every weight and bias in ONE contiguous buffer, and the
    contract that turns raw catalog values into its outputs.

    ``MLP([4, 64, 64, 1])``: 4 inputs, two hidden layers of 64 units, one output.
    ``params`` is the flat buffer (starting on a 64-byte boundary: fastmlp.buffers);
    ``weights[i]`` (shape ``(n_in, n_out)``, a layer is ``X @ W + b``) and ``biases[i]`` are
    views into it.  Hidden layers use ``activation``; the output layer is linear (logits).
    ``MLP([4, 1])`` is logistic regression.

    Initialisation: He normal (std sqrt(2 / n_in)) for relu, leaky_relu and elu, Glorot
    uniform (limit sqrt(6 / (n_in + n_out))) otherwise; biases zero; drawn from
    ``np.random.default_rng(seed)``.

    The contract (keyword-only; training sets what it learns, ``fastmlp.save`` stores all;
    ``model.threshold = 0.4`` or ``set_contract`` checks a field as the constructor does):

    features: the input features, a :class:`fastmlp.FeatureSpec` or what it takes
        (``"colors:ugriz"``, ``["u-g", "g-r", "r"]``); needed to predict from a table of raw
        columns.  ``FeatureNames([...])``: column names taken literally (a DataFrame's
        "weight, kg" or "flux " as they are).  None: inputs are given as arrays in order.
    standardization: ``(mean, std)`` applied as ``(x - mean) / std`` before the network.
    class_names: one name per class; positive: the index of the class of interest (e.g. the
        quasars), used by ``threshold``, or its name among class_names (kept as its index).
    loss: the training loss ("bce" | "cross_entropy" | "mse"; set by fit); output: the link
        "sigmoid" | "softmax" | "identity" (default: from the loss, else sigmoid for one
        output and softmax for several).
    threshold: a probability cut for the positive class: ``predict`` says positive where
        P(positive) >= threshold (one-vs-rest for several classes).  None: argmax.
    temperature: logits are divided by it before the link (calibration; 1 = none).
    target_transform: None or "log1p" (regression trained on log(1 + y); predict inverts).
    """

    def __init__(self, layer_sizes, activation="relu", seed=0, dtype="float32", backend=None,
                 *, features=None, standardization=None, class_names=None, positive=None,
                 loss=None, output=None, threshold=None, temperature=1.0,
                 target_transform=None):
        sizes = _check_layer_sizes(layer_sizes)
        activation_code(activation)
        check_seed(seed)
        if backend is not None:
            backends.check_backend_name(backend)
        self.layer_sizes = tuple(sizes)
        self.activation = activation
        self.seed = seed
        self.dtype = check_float_dtype(dtype)
        self.backend = backend
        self._params = aligned_zeros(self.n_params, self.dtype)   # see fastmlp.buffers
        self._make_views()
        if seed is not None:             # seed=None: zeros (the loader fills params itself)
            self._init_params(seed)
        # the contract's values, read and assigned through the properties below (each
        # assignment checked: set_contract)
        self._contract = dict.fromkeys(CONTRACT_FIELDS)
        self._contract["temperature"] = 1.0
        # training state beside the contract: the optimizer that trained the model (fit and
        # fastmlp.load set it, fastmlp.save stores its state so training resumes exactly) and
        # the configuration it was trained with
        self.optimizer = None
        self.training_config = None
        self.set_contract(features=features, standardization=standardization,
                          class_names=class_names, positive=positive, loss=loss,
                          output=output, threshold=threshold, temperature=temperature,
                          target_transform=target_transform)
        if self.loss is not None and self.output is not None \
                and LINK_OF_LOSS[self.loss] != self.output:
            # fit refuses to train it; say so when the model is declared
            raise ValueError(f"output={self.output!r} contradicts loss={self.loss!r}, whose "
                             f"link is {LINK_OF_LOSS[self.loss]!r}; declare one of them")

    # -- the contract --------------------------------------------------------------------
    # Every contract field is a property whose assignment goes through set_contract: a value
    # assigned directly (m.threshold = 7) is checked as the constructor and fastmlp.load
    # check it, so a model never holds a contract that its own file would be refused for.
    features = _contract_field("features")
    standardization = _contract_field("standardization")
    loss = _contract_field("loss")
    output = _contract_field("output")
    class_names = _contract_field("class_names")
    positive = _contract_field("positive")
    threshold = _contract_field("threshold")
    temperature = _contract_field("temperature")
    target_transform = _contract_field("target_transform")

    def set_contract(self, **fields):
        """Set contract fields by name; returns self.  The whole contract is checked with
        the new values (each field by its one check in _CHECKS, in dependency order: a
        field that another depends on comes first), and on any error the model is left as
        it was: setting positive=None under a threshold that needs it is refused too."""
        unknown = set(fields) - set(CONTRACT_FIELDS)
        if unknown:
            raise TypeError(f"unknown contract field(s) {sorted(unknown)}; expected "
                            f"{list(CONTRACT_FIELDS)}")
        before = self._contract
        staged = dict(before, **fields)
        if fields.get("threshold") is not None and staged["positive"] is None \
                and self.n_outputs == 1:
            staged["positive"] = 1       # a cut on one sigmoid output is for class 1
        self._contract = staged          # the checks read the fields through the model
        try:
            for name in CONTRACT_FIELDS:
                value = _CHECKS[name](self, staged[name])
                if name in fields:       # the others keep their stored value as it is
                    staged[name] = value
        except BaseException:
            self._contract = before
            raise
        return self

    def check_contract(self):
        """Check every contract field again, changing nothing: what was checked when it was
        set may have been changed in place since (an array of the standardisation).  The
        writers (save, to_onnx, write_c_model) run it so that no file holds a contract
        that fastmlp.load or the C loader refuses.  ValueError naming the field."""
        self.set_contract()

    def check_finite_params(self, action):
        """Refuse (ValueError) parameters holding NaN or inf, naming where and how many: a
        model with one predicts NaN (no label) for every row.  ``action`` says what is
        refused ("save", ...).  The layers are views into ``params``, so one pass over it
        answers whether any is bad."""
        if np.isfinite(self.params).all():
            return
        where = []
        for i in range(self.n_layers):
            for kind, a in (("weights", self.weights[i]), ("biases", self.biases[i])):
                bad = int(np.count_nonzero(~np.isfinite(a)))
                if bad:
                    where.append((bad, f"{kind}[{i}] (layer {i + 1})"))
        total = sum(n for n, _ in where)
        raise ValueError(f"model parameters contain {total} non-finite value"
                         f"{'s' if total > 1 else ''} (NaN or inf): "
                         + ", ".join(f"{n} in {name}" for n, name in where)
                         + f"; refusing to {action} a model that predicts NaN")

    def contract(self):
        """The contract fields as a dict (what fastmlp.save stores beside the weights)."""
        return {name: getattr(self, name) for name in CONTRACT_FIELDS}

    @property
    def link(self):
        """The output link in use: ``output`` if set, else the loss's, else identity for a
        transformed target (a regression), else sigmoid for one output and softmax for
        several."""
        if self.output is not None:
            return self.output
        if self.loss is not None:
            return LINK_OF_LOSS[self.loss]
        if self.target_transform is not None:
            return "identity"
        return "sigmoid" if self.n_outputs == 1 else "softmax"

    @property
    def n_classes(self):
        """2 for one sigmoid output, else one class per output (None for regression)."""
        if self.link == "identity":
            return None
        return 2 if self.n_outputs == 1 else self.n_outputs

    @property
    def feature_names(self):
        return None if self.features is None else self.features.names

    def transform_inputs(self, X):
        """Raw values -> the network's inputs (n, n_inputs) of the model's dtype: derive the
        features from a table (DataFrame, pyarrow Table, structured array, dict), check an
        array's columns, then standardise.  Rows with NaN / inf stay NaN (see predict)."""
        if table_columns(X) is not None:
            if self.features is None:
                raise ValueError("X is a table with named columns but the model has no "
                                 "features spec; set features=... (e.g. 'colors:ugriz') or "
                                 "pass an array in feature order")
            X = self.features.transform(X, model_dtype=self.dtype)
        # a value beyond the model's dtype (1e300 for float32) becomes inf there: that row's
        # input is not finite, so it gets NaN / label -1 as documented, without NumPy's
        # "overflow encountered in cast" warning on the way
        with np.errstate(over="ignore"):
            if self.standardization is None:
                return check_array(X, "X", self.n_inputs, self.dtype, allow_nonfinite=True)
            X = plain_array(X, "X")
            if X.dtype.kind not in "f":        # integers etc.: float64 first (checked there)
                X = check_array(X, "X", self.n_inputs, np.float64, allow_nonfinite=True)
            elif X.ndim != 2 or X.shape[1] != self.n_inputs:
                X = check_array(X, "X", self.n_inputs, np.float64, allow_nonfinite=True)
            mean, std = self.standardization
            return standardize_rows(X, mean, std, self.dtype)

    def decision_function(self, X):
        """Logits / temperature for raw input X (identity outputs for regression); NaN in
        the rows whose network input is not finite."""
        X = self.transform_inputs(X)
        z = self.forward(X, check_finite=False)
        # an inf input can come out finite (tanh and sigmoid saturate, relu zeroes -inf):
        # such a row has no prediction all the same (README; fastmlp predict, C and ONNX
        # agree)
        nan_where_not_finite(z, X)
        if self.temperature != 1.0 and self.link != "identity":
            z /= self.dtype.type(self.temperature)
        return z

    def predict_proba(self, X):
        """Class probabilities (n, n_classes) for raw input X: [P(class 0), P(class 1)] for
        one sigmoid output (each column computed directly, so a tiny probability keeps its
        relative precision), softmax for several outputs, one sigmoid per output for a
        multilabel model.  Rows whose input or output is not finite are NaN."""
        if self.link == "identity":
            raise ValueError("predict_proba is for classifiers; this model is a regressor "
                             "(loss='mse'): use predict")
        if table_columns(X) is not None and self.features is not None:
            X = self.features.transform(X, model_dtype=self.dtype)    # raw columns, then chunks
        rows = self._predict_chunk_rows()
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[0] <= rows:
            return self._proba_of_logits(self.decision_function(X))
        # A long catalog goes in chunks of rows: the standardised inputs and the logits
        # exist for one chunk at a time (reused pages) rather than for the whole catalog,
        # and a chunk's logits are still in cache for the link.  (The probabilities are
        # those of one call to float rounding: a BLAS product's last bits may depend on
        # the number of rows it is given.)
        out = np.empty((X.shape[0], self.n_classes), dtype=self.dtype)
        for s in range(0, X.shape[0], rows):
            e = min(s + rows, X.shape[0])
            self._proba_of_logits(self.decision_function(X[s:e]), out[s:e])
        return out

    def _predict_chunk_rows(self):
        """Rows per chunk of a long predict_proba: about _PREDICT_CHUNK_BYTES of network
        inputs or outputs, and at least 16 sigmoid blocks (4 per thread up to 4 threads)."""
        width = max(self.n_inputs, self.n_outputs) * self.dtype.itemsize
        return max(_PREDICT_CHUNK_BYTES // width, 16 * _PROBA_BLOCK)

    def _proba_of_logits(self, z, out=None):
        """The output link on logits z (n, n_outputs), into out (n, n_classes) if given; a
        row with a logit that is not finite gets NaN probabilities."""
        # an overflowed logit is inf or NaN by the order of the last layer's sums (inf -
        # inf): NumPy, BLAS, C and onnxruntime differ there, so no such row is labelled
        nan_where_not_finite(z, z)
        if self.link == "softmax":
            p = _softmax_inplace(z)
        elif self.n_outputs > 1:   # multilabel: a sigmoid per output, the binary link's
            p = self._sigmoid_pair(z.reshape(-1))[:, 1].reshape(z.shape)
        else:
            return self._sigmoid_pair(z[:, 0], out)
        if out is None:
            return p
        out[...] = p
        return out

    def _sigmoid_pair(self, z, out=None):
        """[sigmoid(-z), sigmoid(z)] for a 1-D z, into out (n, 2) if given: the model's
        backend's kernel, or for the numpy backend the reference in blocks over Python
        threads (_sigmoid_pair).  On the Zen 3 VM (2 threads) C's kernel took 1.3 ms per
        1.67M float32 against 11 ms for the NumPy passes, and C's predict_proba of
        5-64-64-1 on 10M rows went from 13.8 to 15.6 M objects/s (medians of 6 alternating
        calls).  The values differ from the reference's by the last bit or two of exp, and
        below the smallest normal number a probability is 0 rather than subnormal."""
        kern = self._kernels()
        if kern.NAME == "numpy":
            return _sigmoid_pair(z, out)
        if out is None:
            out = np.empty((z.shape[0], 2), dtype=z.dtype)
        kern.sigmoid_pair(out, np.ascontiguousarray(z))
        return out

    def predict(self, X):
        """Class indices (0..n_classes-1) for classifiers, -1 for rows whose input or output
        is not finite (no label for them); the positive class where its probability reaches
        ``threshold`` when one is set; an indicator matrix for multilabel models (a row of -1
        where not finite); values for
        regression (inverse ``target_transform`` applied, NaN where not finite)."""
        if self.link == "identity":
            out = self.decision_function(X)
            if self.target_transform == "log1p":
                with np.errstate(over="ignore"):   # inf, as C and ONNX give: no warning line
                    out = np.expm1(out)
            return out[:, 0] if self.n_outputs == 1 else out
        return self.labels_of(self.predict_proba(X))

    def labels_of(self, proba):
        """The labels ``predict`` gives for class probabilities ``proba`` (n, n_classes) of
        this model's contract: its threshold and positive class, -1 where not finite (an
        ensemble's mean probabilities are labelled by it too)."""
        proba = np.asarray(proba)
        if proba.ndim != 2 or proba.shape[1] != self.n_classes:
            raise ValueError(f"proba must be a 2-D array (n_rows, {self.n_classes}) of this "
                             f"model's class probabilities, got shape {proba.shape}")
        valid = np.isfinite(proba).all(axis=1)
        if self.link == "sigmoid" and self.n_outputs > 1:
            # a row without finite probabilities gets -1 in every column, not a silent "none
            # of the labels" (a missing magnitude is not evidence against any class)
            cut = 0.5 if self.threshold is None else self.threshold
            # compared in float64: NumPy would round the cut to a float32 proba's type, and
            # C and ONNX compare with the cut itself (a cut of 0.7 is above float32(0.7))
            return np.where(valid[:, None], proba.astype(np.float64) >= cut,
                            -1).astype(np.int64)
        if self.threshold is not None:
            pos = self.positive
            others = proba.copy()
            others[:, pos] = -np.inf
            label = np.where(proba[:, pos].astype(np.float64) >= self.threshold, pos,
                             others.argmax(axis=1))
        else:
            label = proba.argmax(axis=1)
        return np.where(valid, label, -1).astype(np.int64)

    # -- layout --------------------------------------------------------------------------
    @property
    def n_params(self):
        s = self.layer_sizes
        return sum(a * b + b for a, b in zip(s[:-1], s[1:]))

    @property
    def n_layers(self):
        return len(self.layer_sizes) - 1

    @property
    def n_inputs(self):
        return self.layer_sizes[0]

    @property
    def n_outputs(self):
        return self.layer_sizes[-1]

    @property
    def sizes_array(self):
        return np.asarray(self.layer_sizes, dtype=np.int64)

    @property
    def acts_array(self):
        """Activation code per layer: the hidden activation, identity for the last layer."""
        a = np.full(self.n_layers, activation_code(self.activation), dtype=np.int64)
        a[-1] = 0
        return a

    # params is the ONE buffer that the layer views, an optimizer and every kernel share, and
    # the writers read both (save and the C file params, ONNX the views): an array assigned
    # in its place, or a view replaced in the list, would leave them disagreeing, so that
    # ONNX or a saved file gave other answers than the model.  Assigning params copies into
    # the buffer (set_params checks the shape); weights / biases are tuples of the views.
    @property
    def params(self):
        """The flat parameter buffer (assigning copies into it, as set_params does)."""
        return self._params

    @params.setter
    def params(self, flat):
        self.set_params(flat)

    def _make_views(self):
        weights, biases = [], []
        o = 0
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            weights.append(self._params[o:o + n_in * n_out].reshape(n_in, n_out))
            o += n_in * n_out
            biases.append(self._params[o:o + n_out])
            o += n_out
        self.weights, self.biases = tuple(weights), tuple(biases)

    def _init_params(self, seed):
        rng = np.random.default_rng(seed)
        for w in self.weights:
            n_in, n_out = w.shape
            if self.activation in _RELU_FAMILY:
                w[...] = rng.normal(0.0, np.sqrt(2.0 / n_in), size=w.shape)
            else:
                lim = np.sqrt(6.0 / (n_in + n_out))
                w[...] = rng.uniform(-lim, lim, size=w.shape)

    def set_params(self, flat):
        """Copy a flat vector into ``params`` (keeps the views valid)."""
        flat = np.asarray(flat)
        if flat.shape != (self.n_params,):
            raise ValueError(f"params must have shape ({self.n_params},), got {flat.shape}")
        self.params[...] = flat

    def copy(self):
        new = MLP.__new__(MLP)
        new.__setstate__(self.__getstate__())
        return new

    # pickling: the views must point into the unpickled buffer, not into copies, and an
    # attached optimizer (fastmlp.load sets one) must update the new buffer
    def __getstate__(self):
        d = {k: v for k, v in self.__dict__.items()
             if k not in ("weights", "biases", "_params")}
        d["params"] = self._params.copy()     # the key pickles have always used
        d["_contract"] = dict(self._contract)      # a copy's contract is its own
        if self.optimizer is not None:
            d["optimizer"] = copy.deepcopy(self.optimizer)
        return d

    def __setstate__(self, d):
        if "_contract" not in d:     # pickled before the fields became checked properties
            d = dict(d, _contract={k: d.get(k) for k in CONTRACT_FIELDS})
            d = {k: v for k, v in d.items() if k not in CONTRACT_FIELDS}
        d = dict(d)
        params = d.pop("params")
        self.__dict__.update(d)
        self._params = aligned_copy(params)   # an unpickled array is 16-byte aligned
        self._make_views()
        if self.optimizer is not None:
            self.optimizer.params = self.params

    def __repr__(self):
        return (f"MLP({list(self.layer_sizes)}, activation={self.activation!r}, "
                f"dtype={self.dtype.name!r}, n_params={self.n_params})")

    # -- computation ---------------------------------------------------------------------
    def _kernels(self, backend=None):
        return backends.get_backend(backend if backend is not None else self.backend)

    def forward(self, X, backend=None, check_finite=True):
        """Output-layer pre-activations (logits), shape (n, n_outputs), of the NETWORK's
        inputs X (already standardised; see transform_inputs / predict_proba for raw
        values)."""
        X = check_array(X, "X", self.n_inputs, self.dtype, allow_nonfinite=not check_finite,
                        remedy="clean them, or pass check_finite=False for NaN outputs there")
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        if X.shape[0]:
            self._kernels(backend).mlp_forward(out, self.params, X, self.sizes_array,
                                               self.acts_array)
        return out

    def default_loss(self):
        """The loss this model is trained with by default: bce for one output, else
        cross_entropy (pass loss='mse' for regression)."""
        if self.loss is not None:
            return self.loss
        return {"sigmoid": "bce", "softmax": "cross_entropy", "identity": "mse"}[self.link]

    def loss_and_grad(self, X, y, loss=None, sample_weight=None, backend=None):
        """(loss, flat_grad): the weighted-mean loss on the network inputs X (standardised)
        and targets y, and its gradient, laid out like ``params``.  loss: "bce" |
        "cross_entropy" | "mse" (default: default_loss())."""
        loss = self.default_loss() if loss is None else loss
        code = loss_code(loss)
        X = check_array(X, "X", self.n_inputs, self.dtype, remedy=DROP_THEM_FIRST)
        if X.shape[0] == 0:
            raise ValueError("X is empty: need at least one sample")
        Y = check_targets(y, X.shape[0], LOSSES[code], self.n_outputs, self.dtype)
        sw = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        grad = aligned_empty_like(self.params)
        value = self._kernels(backend).mlp_loss_grad(grad, self.params, X, Y, sw,
                                                     self.sizes_array, self.acts_array, code)
        return float(value), grad


_STANDARDIZE_BLOCK = 1 << 13   # rows per block: a float64 block of a few features stays in L2


def require_mlp(model):
    """TypeError unless ``model`` is an MLP (what the writers save, to_onnx and
    write_c_model take).  A fastmlp.sklearn estimator writes itself (est.save, est.to_onnx)
    and keeps its MLP in ``model_`` once fitted: say so to whoever passes the estimator."""
    if isinstance(model, MLP):
        return
    hint = ""
    if isinstance(getattr(model, "model_", None), MLP):
        hint = (f"; a fitted {type(model).__name__} writes itself (est.save(path), "
                "est.to_onnx(path)) and its network is est.model_")
    elif hasattr(model, "get_params") and hasattr(model, "fit"):
        hint = "; fit the estimator first: then est.save(path), est.to_onnx(path), est.model_"
    raise TypeError(f"model must be a fastmlp.MLP, got {type(model).__name__}{hint}")


def nan_where_not_finite(out, X):
    """Set to NaN the rows of out (n, k) whose row of X (n, d) has a value that is not
    finite.  A flat pass first: the per-row reduction (slow along a short axis) only when
    one is needed."""
    finite = np.isfinite(X)
    if not finite.all():
        out[~finite.all(axis=1)] = np.nan
    return out


def standardize_rows(X, mean, std, dtype):
    """(X - mean) / std for a float array X (n, d): each value widened to float64, the mean
    subtracted and the std divided in float64, rounded once to ``dtype`` -- element for
    element the arithmetic of ((X.astype(float64) - mean) / std).astype(dtype), which the C
    loader and ONNX compute too.  It runs in blocks of rows against mean / std tiled to the
    block's flat layout: broadcasting a (d,) row makes NumPy's inner loop d elements long,
    and for d = 5 that cost 4x as much (48 ms against 12 ms for 2M rows); and no full-size
    float64 copy of X is made."""
    n, d = X.shape
    if np.size(mean) != d or np.size(std) != d:
        raise ValueError(f"the standardisation has {counted(np.size(mean), 'mean')} and "
                         f"{counted(np.size(std), 'std')} for {counted(d, 'feature column')}")
    out = np.empty((n, d), dtype=dtype)
    rows = min(_STANDARDIZE_BLOCK, n)
    if rows == 0:
        return out
    buf = np.empty(rows * d, dtype=np.float64)
    mean_t = np.tile(np.asarray(mean, dtype=np.float64), rows)
    std_t = np.tile(np.asarray(std, dtype=np.float64), rows)
    for s in range(0, n, rows):
        e = min(s + rows, n)
        m = (e - s) * d
        b = buf[:m]
        np.copyto(b.reshape(e - s, d), X[s:e])      # exact widening (any layout of X)
        np.subtract(b, mean_t[:m], out=b)
        np.divide(b, std_t[:m], out=b)
        np.copyto(out[s:e].reshape(-1), b, casting="same_kind")   # the one rounding
    return out


def _softmax_inplace(z):
    """Row softmax of z (n, k), computed in place in cache-sized blocks (max subtracted
    first); returns z.  The row max and sum run as k column operations: NumPy's reduction
    along a short axis 1 costs ~40x more for a few classes."""
    k = z.shape[1]
    for s in range(0, z.shape[0], _PROBA_BLOCK):
        zb = z[s:s + _PROBA_BLOCK]
        acc = zb[:, 0].copy()
        for j in range(1, k):
            np.maximum(acc, zb[:, j], out=acc)
        zb -= acc[:, None]
        np.exp(zb, out=zb)
        acc[...] = zb[:, 0]
        for j in range(1, k):
            acc += zb[:, j]
        zb /= acc[:, None]
    return z


def _sigmoid_pair(z, out=None):
    """The numpy backend's link: [sigmoid(-z), sigmoid(z)] for a 1-D z, each computed
    directly (no 1 - p; reference.sigmoid_pair), in blocks that stay in cache (a handful of
    NumPy passes per block instead of per catalog), into out (n, 2) if given.  A long z is
    cut into one contiguous range of blocks per thread (fastmlp's thread count; NumPy
    releases the GIL in these passes): the same passes per block, so the same bits at any
    thread count.  On 10M rows (AMD EPYC Zen 3, 2 threads) the pass took 47 ms, about a
    fifteenth of predict_proba."""
    if out is None:
        out = np.empty((z.shape[0], 2), dtype=z.dtype)
    n_blocks = -(-z.shape[0] // _PROBA_BLOCK)
    nt = min(backends.get_num_threads() or os.cpu_count() or 1,
             n_blocks // _PROBA_MIN_BLOCKS_PER_THREAD)
    if nt <= 1:
        _sigmoid_pair_blocks(z, out, 0, n_blocks)
        return out
    bounds = [n_blocks * t // nt for t in range(nt + 1)]
    failed = []

    def run(b0, b1):   # a worker's exception is raised here, never a half-filled out
        try:
            _sigmoid_pair_blocks(z, out, b0, b1)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller below
            failed.append(exc)
    workers = [threading.Thread(target=run, args=(bounds[t], bounds[t + 1]))
               for t in range(1, nt)]
    for w in workers:
        w.start()
    try:
        _sigmoid_pair_blocks(z, out, bounds[0], bounds[1])
    finally:
        for w in workers:
            w.join()
    if failed:
        raise failed[0]
    return out


# blocks each thread of _sigmoid_pair must have: starting a thread costs ~50 us, a block ~0.3 ms
_PROBA_MIN_BLOCKS_PER_THREAD = 4


def _sigmoid_pair_blocks(z, out, b0, b1):
    """out[rows of blocks b0..b1) = [sigmoid(-z), sigmoid(z)] (reference.sigmoid_pair)."""
    for s in range(b0 * _PROBA_BLOCK, min(b1 * _PROBA_BLOCK, z.shape[0]), _PROBA_BLOCK):
        _ref.sigmoid_pair(out[s:s + _PROBA_BLOCK], z[s:s + _PROBA_BLOCK])


#: the widest layer: far beyond any that fits in memory, and small enough that a weight
#: matrix's size (the product of two widths) fits the kernels' int64 (1e30 was an
#: OverflowError from inside NumPy)
_MAX_LAYER_SIZE = 2 ** 31 - 1


def _check_layer_sizes(layer_sizes):
    try:
        sizes = [int(s) for s in layer_sizes]
        # integers only, as for epochs and batch_size (8.0 was taken, 8.5 refused); True == 1,
        # so without the bool test [4, True, 1] was a network of width 1
        ok = len(sizes) >= 2 and all(isinstance(f, (int, np.integer))
                                     and not isinstance(f, (bool, np.bool_))
                                     for f in layer_sizes)
    except (TypeError, ValueError, OverflowError):     # OverflowError: int(inf)
        ok = False
    if not ok or not all(1 <= s <= _MAX_LAYER_SIZE for s in sizes):
        raise ValueError("layer_sizes must be a sequence of at least two positive "
                         f"integers (inputs, ..., outputs), each at most {_MAX_LAYER_SIZE}, "
                         f"got {layer_sizes!r}")
    return sizes


class FeatureNames(FeatureSpec):
    """A FeatureSpec of exactly the column names given, each taken literally: no splitting
    on commas, no stripping, no "colors:" expansion (``FeatureSpec(["weight, kg"])`` would
    read two features).  For names that are a table's columns as they are -- a DataFrame's
    (the scikit-learn estimators), a model file's (already expanded when saved).  A name
    is a column of the table; only a name that is no column but "a-b" of two columns is
    their difference, as in FeatureSpec.  ``fill``: as for FeatureSpec."""

    def __init__(self, names, fill=None):
        if isinstance(names, FeatureSpec):
            fill = names.fill if fill is None else fill
            names = names.names
        names = tuple(names) if isinstance(names, (list, tuple)) else None
        if not names or not all(isinstance(f, str) for f in names):
            raise ValueError(f"features: the column names must be a non-empty list of "
                             f"strings, got {names!r}")
        if len(set(names)) != len(names):
            dup = sorted({f for f in names if names.count(f) > 1})
            raise ValueError(f"features lists {dup} more than once")
        self.names = names
        self.fill = check_fill(fill, self)


# -- the contract's field checks (one per field; set_contract runs them) -----------------
# The constructor, an assignment (m.threshold = ...), fastmlp.load and the C model reader all
# go through set_contract, so each rule is written once.
def _check_features(model, v):
    if v is None:
        return None
    # a FeatureSpec holds names already parsed (or literal ones): kept as they are, since
    # parsing them again would split "weight, kg" or strip "flux "
    spec = v if isinstance(v, FeatureSpec) else FeatureSpec(v)
    if len(spec) != model.n_inputs:
        raise ValueError(f"features has {counted(len(spec), 'name')} {list(spec.names)}, the "
                         f"model has {counted(model.n_inputs, 'input')}")
    return spec


def _check_class_names(model, v):
    if v is None:
        return None
    # a string is no list of names: "ab" would be the classes "a" and "b"
    names = tuple(v) if isinstance(v, (list, tuple, np.ndarray)) else None
    if names is None or not all(isinstance(c, str) for c in names):
        raise ValueError(f"class_names must be a list of strings, one per class, got {v!r}")
    n = 2 if model.n_outputs == 1 else model.n_outputs
    if len(names) != n:
        raise ValueError(f"class_names has {counted(len(names), 'name')}, the model has "
                         f"{counted(n, 'class', 'classes')}")
    if len(set(names)) != n:
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"class_names lists {dup} more than once; each class needs its "
                         "own name")
    return names


def _check_index(model, v):
    if v is None:
        return None
    n = 2 if model.n_outputs == 1 else model.n_outputs
    if isinstance(v, str):      # a class name, as fastmlp train's --positive takes one:
        names = model.class_names   # exact, else the one name equal ignoring case
        folded = [] if names is None else [k for k, c in enumerate(names)
                                           if c.casefold() == v.casefold()]
        if names is not None and v in names:
            return names.index(v)
        if len(folded) != 1:
            raise ValueError(f"positive={v!r} names a class, but the model's class_names are "
                             f"{names!r}: pass one of them or a class index in 0..{n - 1}")
        return folded[0]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
        raise ValueError(f"positive must be a class index in 0..{n - 1} or None, got {v!r}")
    return int(v)


def _check_choice(choices, what):
    def check(model, v):
        if v not in choices:
            raise ValueError(f"{what} must be one of {list(choices)}, got {v!r}")
        return v
    return check


def _check_target_transform(model, v):
    """A transformed target is a regression's: log1p on a classifier's labels trained on
    log(2) and failed as 'y must hold integer class labels'."""
    v = _check_choice(TARGET_TRANSFORMS, "target_transform")(model, v)
    if v is not None and model.link != "identity":
        field = "output" if model.output is not None else "loss"
        raise ValueError(f"target_transform={v!r} is for a regression (loss 'mse', output "
                         f"'identity'), but the model's {field} is {getattr(model, field)!r}")
    return v


def _check_one_output(choices, what, multi_only, hint):
    """A choice that ``multi_only`` refuses for a single output: a softmax over one output
    is 1.0 whatever the input (cross_entropy trains it on nothing)."""
    check = _check_choice(choices, what)

    def check_outputs(model, v):
        v = check(model, v)
        if v == multi_only and model.n_outputs < 2:
            raise ValueError(f"{what}={v!r} needs at least 2 outputs, the model has 1 "
                             f"(layer_sizes {list(model.layer_sizes)}); {hint}")
        return v
    return check_outputs


def _check_threshold(model, v):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
            or not 0 <= float(v) <= 1:
        raise ValueError(f"threshold must be a probability in [0, 1] or None, got {v!r}")
    # predict compares the positive class's probability with the cut (a multilabel model
    # compares every output's)
    if model.positive is None and (model.n_outputs == 1 or model.link == "softmax"):
        raise ValueError(f"threshold={float(v)!r} needs the positive class: set "
                         "positive=<class index>")
    return float(v)


def _check_temperature(model, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(float(v)) and float(v) > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {v!r}")
    return float(v)


# order matters: loss and output before what depends on the link; positive before threshold
_CHECKS = {
    "features": _check_features,
    "standardization": lambda m, v: check_standardization(v, m.n_inputs),
    "loss": _check_one_output((None,) + LOSSES, "loss", "cross_entropy",
                              "use loss='bce' for one binary output"),
    "output": _check_one_output((None,) + OUTPUTS, "output", "softmax",
                                "use output='sigmoid' for one binary output"),
    "class_names": _check_class_names,
    "positive": _check_index,
    "threshold": _check_threshold,
    "temperature": _check_temperature,
    "target_transform": _check_target_transform,
}
CONTRACT_FIELDS = tuple(_CHECKS)

__all__ = ["MLP", "ACTIVATIONS", "CONTRACT_FIELDS", "FeatureNames", "OUTPUTS",
           "check_standardization"]
