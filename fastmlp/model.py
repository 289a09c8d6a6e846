"""MLP: layer sizes, one flat parameter buffer with per-layer views, forward and gradients."""

import numpy as np

from . import backends
from ._validate import check_array, check_float_dtype, check_sample_weight, check_targets
from .codes import ACTIVATIONS, LOSSES, activation_code, loss_code

_RELU_FAMILY = ("relu", "leaky_relu", "elu")


_PROBA_BLOCK = 1 << 15   # rows per block of predict_proba's sigmoid


class MLP:
    """A multi-layer perceptron with every weight and bias in ONE contiguous buffer.

    ``MLP([4, 64, 64, 1])``: 4 inputs, two hidden layers of 64 units, one output.
    ``params`` is the flat buffer; ``weights[i]`` (shape ``(n_in, n_out)``, a layer is
    ``X @ W + b``) and ``biases[i]`` are views into it, so writing either changes the other.
    Hidden layers use ``activation``; the output layer is linear (logits).  The loss supplies
    the link: sigmoid for one output (binary), softmax for several (cross-entropy), identity
    for ``"mse"``.  ``MLP([4, 1])`` is logistic regression.

    Initialisation: He normal (std sqrt(2 / n_in)) for relu, leaky_relu and elu, Glorot
    uniform (limit sqrt(6 / (n_in + n_out))) otherwise; biases zero; drawn from
    ``np.random.default_rng(seed)``.
    """

    def __init__(self, layer_sizes, activation="relu", seed=0, dtype="float32", backend=None):
        try:
            sizes = [int(s) for s in layer_sizes]
            ok = len(sizes) >= 2 and all(s == f for s, f in zip(sizes, layer_sizes))
        except (TypeError, ValueError):
            ok = False
        if not ok or min(sizes) < 1:
            raise ValueError("layer_sizes must be a sequence of at least two positive "
                             f"integers (inputs, ..., outputs), got {layer_sizes!r}")
        activation_code(activation)
        if backend is not None:
            backends._check_name(backend)
        self.layer_sizes = tuple(sizes)
        self.activation = activation
        self.seed = seed
        self.dtype = check_float_dtype(dtype)
        self.backend = backend
        self.loss = None  # set by fit(); decides what predict() returns
        self.params = np.zeros(self.n_params, dtype=self.dtype)
        self._make_views()
        self._init_params(seed)

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

    def _make_views(self):
        self.weights, self.biases = [], []
        o = 0
        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:]):
            self.weights.append(self.params[o:o + n_in * n_out].reshape(n_in, n_out))
            o += n_in * n_out
            self.biases.append(self.params[o:o + n_out])
            o += n_out

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
        d = {k: v for k, v in self.__dict__.items() if k not in ("weights", "biases")}
        d["params"] = self.params.copy()
        if d.get("optimizer") is not None:
            import copy
            d["optimizer"] = copy.deepcopy(d["optimizer"])
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._make_views()
        if self.__dict__.get("optimizer") is not None:
            self.optimizer.params = self.params

    # -- saving and export ---------------------------------------------------------------
    def save(self, path, **meta):
        """Write this model to ``path``: a versioned .npz with JSON metadata, atomically.
        ``meta``: feature_names, standardization=(mean, std), class_names, optimizer (saved
        with its state so training resumes exactly), training_config; see
        fastmlp.io.save_model.  Read it back with fastmlp.load(path)."""
        from .io import save_model
        return save_model(self, path, **meta)

    def to_onnx(self, path, **kwargs):
        """Export to ONNX (needs the optional 'onnx' package); see
        fastmlp.onnx_export.to_onnx."""
        from .onnx_export import to_onnx
        return to_onnx(self, path, **kwargs)

    def __repr__(self):
        return (f"MLP({list(self.layer_sizes)}, activation={self.activation!r}, "
                f"dtype={self.dtype.name!r}, n_params={self.n_params})")

    # -- computation ---------------------------------------------------------------------
    def _kernels(self, backend=None):
        return backends.get_backend(backend if backend is not None else self.backend)

    def forward(self, X, backend=None):
        """Output-layer pre-activations (logits), shape (n, n_outputs)."""
        X = check_array(X, "X", self.n_inputs, self.dtype)
        out = np.empty((X.shape[0], self.n_outputs), dtype=self.dtype)
        if X.shape[0]:
            self._kernels(backend).mlp_forward(out, self.params, X, self.sizes_array,
                                               self.acts_array)
        return out

    def predict_proba(self, X):
        """Class probabilities, shape (n, n_classes): [sigmoid(-z), sigmoid(z)] for one
        sigmoid output (each column computed directly, so a tiny probability keeps its
        relative precision instead of being 1 - p), softmax for several outputs."""
        if self.loss == "mse":
            raise ValueError("predict_proba is for classifiers; this model was trained "
                             "with loss='mse' (use predict or forward)")
        z = self.forward(X)
        if self.n_outputs > 1:
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        out = np.empty((z.shape[0], 2), dtype=z.dtype)
        # in blocks that stay in cache: a handful of NumPy passes over a block instead of
        # over the whole catalog (they cost as much as the network itself otherwise)
        for s in range(0, z.shape[0], _PROBA_BLOCK):
            zb = z[s:s + _PROBA_BLOCK, 0]
            e = np.abs(zb)
            np.negative(e, out=e)
            np.exp(e, out=e)                          # exp(-|z|) in (0, 1]
            den = e + 1
            pos = zb >= 0
            # sigmoid(z) = 1/(1+e) for z >= 0 else e/(1+e); sigmoid(-z) the other way
            np.divide(np.where(pos, 1, e), den, out=out[s:s + _PROBA_BLOCK, 1])
            np.divide(np.where(pos, e, 1), den, out=out[s:s + _PROBA_BLOCK, 0])
        return out

    def predict(self, X):
        """Class labels (0..n_classes-1) for classifiers; values for loss='mse'."""
        if self.loss == "mse":
            out = self.forward(X)
            return out[:, 0] if self.n_outputs == 1 else out
        z = self.forward(X)
        if self.n_outputs == 1:
            return (z[:, 0] >= 0).astype(np.int64)
        return z.argmax(axis=1)

    def default_loss(self):
        """The loss this model is trained with by default: bce for one output, else
        cross_entropy (pass loss='mse' for regression)."""
        if self.loss is not None:
            return self.loss
        return "bce" if self.n_outputs == 1 else "cross_entropy"

    def loss_and_grad(self, X, y, loss=None, sample_weight=None, backend=None):
        """(loss, flat_grad): the weighted-mean loss on (X, y) and its gradient, laid out
        like ``params``.  loss: "bce" | "cross_entropy" | "mse" (default: default_loss())."""
        loss = self.default_loss() if loss is None else loss
        code = loss_code(loss)
        X = check_array(X, "X", self.n_inputs, self.dtype)
        if X.shape[0] == 0:
            raise ValueError("X is empty: need at least one sample")
        Y = check_targets(y, X.shape[0], LOSSES[code], self.n_outputs, self.dtype)
        sw = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        grad = np.empty_like(self.params)
        value = self._kernels(backend).mlp_loss_grad(grad, self.params, X, Y, sw,
                                                     self.sizes_array, self.acts_array, code)
        return float(value), grad


__all__ = ["MLP", "ACTIVATIONS"]
