"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` trained by fastmlp.

They follow scikit-learn's estimator API (``fit``, ``partial_fit``, ``predict``,
``predict_proba``, ``score``, ``get_params`` / ``set_params``, cloning, pickling) and take
scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` parameter names where the meaning is the
same, so they drop into ``Pipeline``, ``GridSearchCV`` and ``cross_val_score``::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from fastmlp.sklearn import MLPClassifier

    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 64)))
    clf.fit(X_train, y_train).score(X_test, y_test)

Differences from scikit-learn's estimators (documented choices):

* ``solver``: "sgd" (torch-style SGD with ``momentum`` and ``nesterovs_momentum``) or "adam"
  (``beta_1``, ``beta_2``, ``epsilon``); "lbfgs" is not offered.  fastmlp's own
  ``optimizer`` (any of "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
  "adamw") overrides ``solver`` and then takes fastmlp's defaults plus ``optimizer_kwargs``.
* ``alpha`` (L2 penalty): scikit-learn adds ``alpha / (2 * batch) * ||W||^2`` to every
  mini-batch loss, i.e. adds ``alpha / batch * W`` to the gradient.  Here it is the
  optimizer's ``weight_decay = alpha / batch_size`` (the same gradient term for the weights;
  fastmlp's weight decay also applies it to the biases; with ``optimizer="adamw"`` it is
  decoupled, as AdamW defines it).  A ``weight_decay`` in ``optimizer_kwargs`` wins.
* ``loss_curve_`` holds the mean training mini-batch loss per epoch WITHOUT the penalty
  term: log-loss for the classifier, fastmlp's ``mse`` (the mean squared error, not
  scikit-learn's half of it) for the regressor.  ``tol`` / ``n_iter_no_change`` stop on it as
  scikit-learn does (or on the validation score, accuracy or R^2, with ``early_stopping``,
  restoring the best parameters).
* ``learning_rate`` ("constant", "invscaling", "adaptive") is replaced by fastmlp's
  ``schedule`` (None, a callable step -> lr, or a spec string such as
  ``"cosine:T=5000"``; see ``fastmlp.schedules``).
* Binary problems use one sigmoid output with binary cross-entropy; several classes use a
  softmax output with cross-entropy.  Labels may be any values (strings too): ``classes_``
  maps them to outputs.
* ``dtype``: the precision of the network.  The default None follows the data as
  scikit-learn's MLPs do: float32 ``X`` trains a float32 network (fastmlp's fast path),
  anything else float64 (whose predictions are reproducible to ~1e-15 whatever the batch
  split, which scikit-learn's checks demand; float32 kernels may differ in the last bit
  between batch sizes).  Pass "float32" to always train in float32.  Probabilities are
  returned in float64.

Fitted attributes: ``classes_`` (classifier), ``model_`` (the ``fastmlp.MLP``),
``optimizer_`` (its optimizer; ``partial_fit`` and ``warm_start`` continue with its state),
``loss_``, ``loss_curve_``, ``best_loss_`` (None with early stopping), ``validation_scores_``
and ``best_validation_score_`` (None without early stopping), ``n_iter_``, ``t_``,
``n_features_in_`` (``feature_names_in_`` for DataFrames), ``n_outputs_``, ``n_layers_``,
``out_activation_``, ``coefs_`` and ``intercepts_`` (views of the model's weights).
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from .codes import ACTIVATIONS
from .model import MLP
from .optim import OPTIMIZER_NAMES, make_optimizer
from .training.fit import fit as _fit

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names -> fastmlp's (fastmlp's own names are accepted as well)
_ACTIVATION_ALIASES = {"logistic": "sigmoid"}
_SOLVERS = ("sgd", "adam")


def _validate_data(est, *args, **kwargs):
    if _sk_validate_data is not None:
        return _sk_validate_data(est, *args, **kwargs)
    return est._validate_data(*args, **kwargs)  # pragma: no cover


def _json_or_repr(v):
    import json
    try:
        json.dumps(v)
        return v
    except (TypeError, ValueError):
        return repr(v)


def _softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    if z.shape[1] == 1:
        p = np.empty(z.shape[0])
        pos = z[:, 0] >= 0
        p[pos] = 1.0 / (1.0 + np.exp(-z[pos, 0]))
        e = np.exp(z[~pos, 0])
        p[~pos] = e / (1.0 + e)
        return np.stack([1.0 - p, p], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class _BaseMLP(BaseEstimator):
    """Shared parameters, validation and the training loop of both estimators."""

    _loss = None  # "bce"/"cross_entropy" (chosen from the classes) or "mse"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 optimizer=None, optimizer_kwargs=None, schedule=None, backend=None,
                 n_threads=None, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.optimizer = optimizer
        self.optimizer_kwargs = optimizer_kwargs
        self.schedule = schedule
        self.backend = backend
        self.n_threads = n_threads
        self.dtype = dtype

    # -- parameter checks (at fit time, as scikit-learn requires) -------------------------
    def _check_params(self):
        hl = self.hidden_layer_sizes
        if isinstance(hl, numbers.Integral) and not isinstance(hl, bool):
            hl = (hl,)
        try:
            hl = tuple(hl)
        except TypeError:
            hl = None
        if hl is None or not all(isinstance(h, numbers.Integral) and not isinstance(h, bool)
                                 and h > 0 for h in hl):
            raise ValueError("hidden_layer_sizes must be a positive integer or a sequence of "
                             f"positive integers (may be empty), got {self.hidden_layer_sizes!r}")
        act = _ACTIVATION_ALIASES.get(self.activation, self.activation)
        if act not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(('logistic',) + ACTIVATIONS)}"
                             f", got {self.activation!r}")
        if self.optimizer is None and self.solver not in _SOLVERS:
            raise ValueError(f"solver must be 'sgd' or 'adam' (fastmlp has no 'lbfgs'; for "
                             f"other optimizers pass optimizer=...), got {self.solver!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer must be None or one of {', '.join(OPTIMIZER_NAMES)}, "
                             f"got {self.optimizer!r}")
        if self.optimizer_kwargs is not None and not isinstance(self.optimizer_kwargs, dict):
            raise ValueError(f"optimizer_kwargs must be None or a dict, got "
                             f"{self.optimizer_kwargs!r}")

        def real(name, lo, lo_open=False, hi=None, hi_open=False):
            v = getattr(self, name)
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v)
            ok = ok and (v > lo if lo_open else v >= lo)
            if ok and hi is not None:
                ok = v < hi if hi_open else v <= hi
            if not ok:
                rng = f"{'>' if lo_open else '>='} {lo}" + (
                    "" if hi is None else f" and {'<' if hi_open else '<='} {hi}")
                raise ValueError(f"{name} must be a number {rng}, got {v!r}")

        def integer(name, lo):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")

        real("alpha", 0)
        real("learning_rate_init", 0, lo_open=True)
        real("tol", 0)
        real("momentum", 0, hi=1)
        real("validation_fraction", 0, lo_open=True, hi=1, hi_open=True)
        real("beta_1", 0, hi=1, hi_open=True)
        real("beta_2", 0, hi=1, hi_open=True)
        real("epsilon", 0, lo_open=True)
        integer("max_iter", 1)
        integer("n_iter_no_change", 1)
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, numbers.Integral)
                                              and not isinstance(self.batch_size, bool)
                                              and self.batch_size >= 1)):
            raise ValueError(f"batch_size must be 'auto' or a positive integer, got "
                             f"{self.batch_size!r}")
        if self.n_threads is not None:
            integer("n_threads", 1)
        try:
            dt = None if self.dtype is None else np.dtype(self.dtype)
        except TypeError:
            dt = False
        if dt is not None and dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be None (follow X), 'float32' or 'float64', got "
                             f"{self.dtype!r}")
        return hl, act

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(f"Got batch_size={self.batch_size} larger than the number of samples "
                          f"({n}); it is clipped to {n}", UserWarning)
        return min(int(self.batch_size), n)

    def _seeds(self):
        rs = check_random_state(self.random_state)
        return [int(s) for s in rs.randint(0, np.iinfo(np.int32).max, size=2)]

    # -- model and optimizer ------------------------------------------------------------
    def _new_model(self, n_features, n_outputs, hidden, act, seed, X_dtype):
        return MLP([n_features, *hidden, n_outputs], activation=act, seed=seed,
                   dtype=self._dtype_for(X_dtype), backend=self.backend)

    def _dtype_for(self, X_dtype):
        if self.dtype is not None:
            return np.dtype(self.dtype).name
        return "float32" if X_dtype == np.float32 else "float64"

    def _new_optimizer(self, model, batch_size):
        kw = {"lr": float(self.learning_rate_init),
              "weight_decay": float(self.alpha) / batch_size}
        if self.optimizer is not None:
            name = self.optimizer
        elif self.solver == "sgd":
            name = "sgd"
            kw["momentum"] = float(self.momentum)
            kw["nesterov"] = bool(self.nesterovs_momentum) and self.momentum > 0
        else:
            name = "adam"
            kw["betas"] = (float(self.beta_1), float(self.beta_2))
            kw["eps"] = float(self.epsilon)
        kw.update(self.optimizer_kwargs or {})
        return make_optimizer(name, model.params, **kw)

    def _init_fitted_state(self):
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0
        self._no_improvement_count = 0
        self.best_loss_ = np.inf
        self.validation_scores_ = None
        self.best_validation_score_ = None
        if self.early_stopping:
            self.best_loss_ = None
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf

    @property
    def coefs_(self):
        check_is_fitted(self, "model_")
        return list(self.model_.weights)

    @property
    def intercepts_(self):
        check_is_fitted(self, "model_")
        return list(self.model_.biases)

    @property
    def n_layers_(self):
        check_is_fitted(self, "model_")
        return len(self.model_.layer_sizes)

    # -- training -------------------------------------------------------------------------
    def _train(self, X, Y, sample_weight, incremental, class_weight=None):
        """Y: encoded targets (class indices or float targets); model_/optimizer_ exist."""
        n = X.shape[0]
        Xv = Yv = None
        if self.early_stopping and not incremental:
            stratify = Y if self._loss != "mse" else None
            idx = np.arange(n)
            try:
                tr, va = train_test_split(idx, test_size=self.validation_fraction,
                                          random_state=self._fit_seed, stratify=stratify)
            except ValueError:  # a class too small to stratify: a plain random split
                tr, va = train_test_split(idx, test_size=self.validation_fraction,
                                          random_state=self._fit_seed)
            if tr.size == 0 or va.size == 0:
                raise ValueError(f"early_stopping with validation_fraction="
                                 f"{self.validation_fraction} leaves no training or no "
                                 f"validation sample among {n}; use more samples")
            Xv, Yv = X[va], Y[va]
            X, Y = X[tr], Y[tr]
            if sample_weight is not None:
                sample_weight = sample_weight[tr]
        best_params = [None]

        def on_epoch(epoch, hist, model):
            loss = hist.loss[-1]
            self.loss_curve_.append(loss)
            self.loss_ = loss
            self.n_iter_ += 1
            self.t_ += X.shape[0]
            if incremental:
                return False
            if Xv is not None:
                score = self._score_encoded(Xv, Yv)
                self.validation_scores_.append(score)
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_params[0] = model.params.copy()
            else:
                if loss > self.best_loss_ - self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
                if loss < self.best_loss_:
                    self.best_loss_ = loss
            if self._no_improvement_count > self.n_iter_no_change:
                if self.verbose:
                    what = "Validation score" if Xv is not None else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol} for "
                          f"{self.n_iter_no_change} consecutive epochs. Stopping.")
                return True
            return False

        epochs = 1 if incremental else int(self.max_iter)
        seed = self._fit_seed + self.n_iter_  # a new shuffle for every partial_fit call
        hist = _fit(self.model_, X, Y, loss=self._loss, optimizer=self.optimizer_,
                    batch_size=self._batch_size(X.shape[0]), epochs=epochs,
                    schedule=self.schedule, validation=None, class_weight=class_weight,
                    seed=seed, progress=bool(self.verbose), callbacks=(on_epoch,),
                    backend=self.backend, n_threads=self.n_threads,
                    sample_weight=sample_weight)
        if best_params[0] is not None:
            self.model_.params[...] = best_params[0]
        if not incremental and hist.epochs == self.max_iter \
                and self._no_improvement_count <= self.n_iter_no_change:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning)
        return self

    def _prepare_fit(self, X, y, sample_weight, reset, incremental):
        hidden, act = self._check_params()
        X, y = _validate_data(self, X, y, reset=reset, dtype=[np.float64, np.float32],
                              multi_output=self._loss == "mse", y_numeric=self._loss == "mse")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return X, y, sample_weight, hidden, act

    def _start(self, X, n_outputs, hidden, act, keep):
        """Build model_ and optimizer_ unless ``keep`` (warm start / later partial_fit)."""
        if keep:
            return
        init_seed, self._fit_seed = self._seeds()
        self.model_ = self._new_model(X.shape[1], n_outputs, hidden, act, init_seed, X.dtype)
        self.model_.loss = self._loss
        self.optimizer_ = self._new_optimizer(self.model_, self._batch_size(X.shape[0]))
        self._init_fitted_state()

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self.model_.forward(X)

    # -- saving -------------------------------------------------------------------------
    def save(self, path, *, feature_names=None, standardization=None):
        """Write the fitted network with ``fastmlp.io.save_model`` (class names, optimizer
        state, and this estimator's parameters as the training config); ``fastmlp.io.load``
        reads it back as a ``fastmlp.MLP``.  (Pickle the estimator to keep the estimator.)"""
        from . import io
        check_is_fitted(self, "model_")
        if feature_names is None and hasattr(self, "feature_names_in_"):
            feature_names = list(self.feature_names_in_)
        config = {"estimator": type(self).__name__, "n_iter": self.n_iter_,
                  "params": {k: _json_or_repr(v) for k, v in self.get_params().items()}}
        classes = getattr(self, "classes_", None)
        return io.save_model(self.model_, path, feature_names=feature_names,
                             standardization=standardization,
                             class_names=None if classes is None else classes.tolist(),
                             optimizer=self.optimizer_, training_config=config)

    def to_onnx(self, path, *, standardization=None):
        """Export the fitted network with ``fastmlp.onnx_export.to_onnx``; its ``label``
        output is the index into ``classes_``."""
        from .io.onnx import to_onnx
        check_is_fitted(self, "model_")
        return to_onnx(self.model_, path, standardization=standardization)

    # pickling: the optimizer must update the unpickled model's buffer
    def __setstate__(self, state):
        super().__setstate__(state)
        if "optimizer_" in self.__dict__ and "model_" in self.__dict__:
            self.optimizer_.params = self.model_.params


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by fastmlp (see the module docstring).

    Parameters as scikit-learn's ``MLPClassifier``: ``hidden_layer_sizes=(100,)``,
    ``activation="relu"`` ("identity", "logistic", "tanh", "relu" and fastmlp's
    "leaky_relu", "elu", "sigmoid", "softplus", "gelu"), ``solver="adam"`` ("sgd" | "adam"),
    ``alpha=1e-4``, ``batch_size="auto"`` (min(200, n_samples)),
    ``learning_rate_init=1e-3``, ``max_iter=200`` (epochs), ``random_state=None``,
    ``tol=1e-4``, ``verbose``, ``warm_start``, ``momentum=0.9``, ``nesterovs_momentum=True``,
    ``early_stopping=False``, ``validation_fraction=0.1``, ``beta_1``, ``beta_2``,
    ``epsilon``, ``n_iter_no_change=10``; fastmlp's own: ``optimizer`` (overrides
    ``solver``), ``optimizer_kwargs``, ``schedule``, ``class_weight`` (None, "balanced" or
    {label: weight}), ``backend``, ``n_threads``, ``dtype``.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 optimizer=None, optimizer_kwargs=None, schedule=None, class_weight=None,
                 backend=None, n_threads=None, dtype=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate_init=learning_rate_init, max_iter=max_iter,
            random_state=random_state, tol=tol, verbose=verbose, warm_start=warm_start,
            momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            optimizer=optimizer, optimizer_kwargs=optimizer_kwargs, schedule=schedule,
            backend=backend, n_threads=n_threads, dtype=dtype)
        self.class_weight = class_weight

    @property
    def _loss(self):
        k = len(getattr(self, "classes_", ()))
        return "bce" if k <= 2 else "cross_entropy"

    def _check_targets(self, y):
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"MLPClassifier supports binary and multiclass targets, got "
                             f"{kind!r} targets")

    def _encode(self, y):
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            raise ValueError(f"y contains labels not in classes_ {self.classes_.tolist()}: "
                             f"{np.unique(np.asarray(y)[bad]).tolist()[:5]}")
        return idx.astype(np.int64)

    def _class_weight_indices(self):
        cw = self.class_weight
        if cw is None or isinstance(cw, str):
            if cw not in (None, "balanced"):
                raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
            return cw
        if not isinstance(cw, dict):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
        out = {}
        for label, w in cw.items():
            hit = np.flatnonzero(self.classes_ == label)
            if hit.size == 0:
                raise ValueError(f"class_weight has label {label!r}, which is not a class "
                                 f"(classes_: {self.classes_.tolist()})")
            out[int(hit[0])] = float(w)
        return out

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y) for up to ``max_iter`` epochs; returns self."""
        keep = self.warm_start and hasattr(self, "model_")
        X, y, sw, hidden, act = self._prepare_fit(X, y, sample_weight, reset=not keep,
                                                  incremental=False)
        self._check_targets(y)
        classes = np.unique(y)
        if keep and not np.array_equal(classes, self.classes_) and \
                not np.isin(classes, self.classes_).all():
            raise ValueError(f"warm_start: y has classes {classes.tolist()} not among "
                             f"classes_ {self.classes_.tolist()}")
        if not keep:
            if classes.size < 2:
                raise ValueError(f"MLPClassifier needs samples of at least 2 classes; got 1 "
                                 f"class ({classes[0]!r})")
            self.classes_ = classes
        self._start(X, 1 if len(self.classes_) == 2 else len(self.classes_), hidden, act, keep)
        return self._train(X, self._encode(y), sw, incremental=False,
                           class_weight=self._class_weight_indices())

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing the optimizer's state.  ``classes`` (all labels
        that will ever appear) is required on the first call."""
        first = not hasattr(self, "model_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        X, y, sw, hidden, act = self._prepare_fit(X, y, sample_weight, reset=first,
                                                  incremental=True)
        self._check_targets(y)
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            if not first and not np.array_equal(classes, self.classes_):
                raise ValueError(f"`classes={classes.tolist()}` is not the same as on the "
                                 f"first call to partial_fit ({self.classes_.tolist()})")
        if first:
            if classes.size < 2:
                raise ValueError(f"MLPClassifier needs at least 2 classes; got 1 class "
                                 f"({classes[0]!r})")
            self.classes_ = classes
        self._start(X, 1 if len(self.classes_) == 2 else len(self.classes_), hidden, act,
                    keep=not first)
        return self._train(X, self._encode(y), sw, incremental=True,
                           class_weight=self._class_weight_indices())

    def _score_encoded(self, X, Y):
        return accuracy_score(Y, _softmax64(self.model_.forward(X)).argmax(axis=1))

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return _softmax64(self._forward(X))

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class label of each sample."""
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by fastmlp with the mean squared error.

    Same parameters as :class:`MLPClassifier` without ``class_weight``.  ``y`` may be 1-D or
    (n_samples, n_targets) (multi-output); ``predict`` returns 1-D for one target.
    """

    _loss = "mse"

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y) for up to ``max_iter`` epochs; returns self."""
        keep = self.warm_start and hasattr(self, "model_")
        X, y, sw, hidden, act = self._prepare_fit(X, y, sample_weight, reset=not keep,
                                                  incremental=False)
        Y = self._targets(y, keep)
        self._start(X, Y.shape[1], hidden, act, keep)
        return self._train(X, Y, sw, incremental=False)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing the optimizer's state."""
        first = not hasattr(self, "model_")
        X, y, sw, hidden, act = self._prepare_fit(X, y, sample_weight, reset=first,
                                                  incremental=True)
        Y = self._targets(y, not first)
        self._start(X, Y.shape[1], hidden, act, keep=not first)
        return self._train(X, Y, sw, incremental=True)

    def _targets(self, y, keep):
        Y = np.asarray(y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        if keep and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} targets, the model was fitted with "
                             f"{self.n_outputs_}")
        if not keep:
            self.n_outputs_ = Y.shape[1]
        return Y

    def _score_encoded(self, X, Y):
        return r2_score(Y, self.model_.forward(X).astype(np.float64))

    def predict(self, X):
        """Predicted targets: (n_samples,) for one target, else (n_samples, n_targets)."""
        out = self._forward(X).astype(np.float64)
        return out[:, 0] if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _n_outputs(self):
    check_is_fitted(self, "model_")
    return self.model_.n_outputs


def _out_activation(self):
    check_is_fitted(self, "model_")
    if self._loss == "mse":
        return "identity"
    return "logistic" if self.model_.n_outputs == 1 else "softmax"


MLPClassifier.n_outputs_ = property(_n_outputs)
MLPClassifier.out_activation_ = property(_out_activation)
MLPRegressor.out_activation_ = property(_out_activation)
