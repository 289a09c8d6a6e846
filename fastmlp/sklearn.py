"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` trained by fastmlp.

They follow scikit-learn's estimator API (``fit``, ``partial_fit``, ``predict``,
``predict_proba``, ``score``, ``get_params`` / ``set_params``, cloning, pickling) and take
scikit-learn's ``MLPClassifier`` / ``MLPRegressor`` parameters with scikit-learn's meaning,
so they drop into ``Pipeline``, ``GridSearchCV`` and ``cross_val_score``::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from fastmlp.sklearn import MLPClassifier

    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 64)))
    clf.fit(X_train, y_train).score(X_test, y_test)

What matches scikit-learn (same random_state -> the same initial weights, the same row order
and early-stopping split, and the same objective):

* initialisation: Glorot-uniform weights AND biases with scikit-learn's factor (6, or 2 for
  the logistic activation), drawn from ``check_random_state(random_state)`` in its order;
* the objective: scikit-learn's loss per mini-batch (log-loss; half the squared error for
  the regressor) plus ``alpha / (2 * sum of the batch's sample weights) * ||W||^2`` on the
  weights only (never the biases), computed inside the fused kernels (their ``l2``);
* ``solver``: "lbfgs" (scipy's L-BFGS-B on the full-batch loss and gradient, honouring
  ``max_iter``, ``max_fun`` and ``tol``), "sgd" (``momentum``, ``nesterovs_momentum``,
  ``learning_rate`` "constant" | "invscaling" | "adaptive" with ``power_t``) and "adam"
  (``beta_1``, ``beta_2``, ``epsilon``); ``tol`` / ``n_iter_no_change`` (``np.inf`` allowed),
  ``early_stopping`` / ``validation_fraction``, ``shuffle``, ``warm_start``, ``verbose``
  (scikit-learn's "Iteration N, loss = ..." lines on stdout);
* the optimizer: every ``fit`` builds ``optimizer_`` anew from the parameters in force
  (``warm_start`` keeps the weights only: the optimizer's state, step count and rate
  start again, as scikit-learn's); ``partial_fit`` continues it, its rate included
  (a solver / optimizer changed in between builds a new one);
* targets: binary, multiclass and multilabel (an indicator matrix, dense or scipy.sparse,
  one sigmoid per output) classification; one or several regression targets; dense or
  scipy.sparse (CSR/CSC) ``X``.  (A sparse indicator y gives a dense ``predict`` here,
  a sparse one in scikit-learn.)

Deliberate differences (documented choices):

* Adam's epsilon sits outside the bias correction (torch) instead of inside
  (scikit-learn): a relative difference of ``epsilon / sqrt(v)``.  (SGD momentum is torch's
  in the kernels, whose buffer is rescaled whenever ``learning_rate`` changes the rate, so
  that its steps are scikit-learn's under every schedule; a fastmlp ``schedule`` gives
  torch's momentum.)
* A single-label classifier's early-stopping split is stratified for multiclass problems
  too (scikit-learn stratifies binary ones only); a split that cannot be stratified raises.
* Refused where scikit-learn fits something else than asked: y of a single class
  (scikit-learn fits a constant predictor whose predict_proba has 2 columns for 1 class);
  negative sample_weight or class_weight values, weights summing to 0, or a batch of zero
  weights; non-bool ``shuffle`` / ``nesterovs_momentum`` / ``early_stopping`` /
  ``warm_start``; a warm-start y without all the fitted classes (as scikit-learn); float64
  values beyond a float32 model's range; and ``warm_start`` /
  ``partial_fit`` after ``hidden_layer_sizes``, ``activation`` or ``dtype`` changed
  (scikit-learn keeps the fitted layers).  ``early_stopping`` switched between warm fits
  restarts the stopping rule (scikit-learn fails there with an AttributeError or
  TypeError).
* A diverging run (a non-finite loss, gradient, parameter or optimizer state, e.g. Adam's
  squared gradients overflowing float32 on huge inputs) stops at that epoch and raises
  scikit-learn's "Solver produced non-finite parameter weights" ValueError, as
  ``SolverDiverged`` (also a ``fastmlp.TrainingDiverged``) saying what went non-finite,
  where, and what to change.  With ``early_stopping`` and an earlier best epoch, NaN is
  recorded and the best parameters are restored, as scikit-learn does, but with a
  ``fastmlp.training.loop.TrainingRunaway`` warning (scikit-learn says nothing).
* A run that blew up while staying finite (the returned model's training loss more than
  10x the first batch's or epoch's, or an explosion never recovered from: fastmlp.fit's
  rule) warns ``TrainingRunaway`` naming the losses and the cure (scale huge inputs, or
  lower ``learning_rate_init``): a UserWarning, not a ConvergenceWarning, which grid
  searches routinely silence.  It is not an error: such a classifier may still rank well,
  and scikit-learn accepts the fit.  Dense inputs beyond |x| = 1e6 are warned about before
  training (fastmlp.fit's UserWarning): such runs blow up or stall at huge losses.
* For several regression targets ``loss_`` is half the squared error summed over the
  targets (the objective whose gradient scikit-learn follows; scikit-learn reports it
  averaged over the targets).
* ``predict`` gives a row whose probabilities are NaN (a logit overflowed) no class: -1
  for numeric classes (a multilabel row of -1), None (object array) for other labels.
  ``class_weight="balanced"`` counts the classes weighted by ``sample_weight``.
* Sparse ``X`` trains through NumPy (scipy's sparse x dense product for the first layer,
  the reference kernels for the rest), not through the fused kernels: correct, not fast.
* fastmlp's own parameters: ``optimizer`` (any of "sgd", "momentum", "nesterov",
  "adagrad", "rmsprop", "adam", "adamw", in any case as fit takes them: "Adam", "RMSprop";
  replaces ``solver``, which must then stay at its
  default "adam", or be "sgd" for the SGD family) with ``optimizer_kwargs``.  scikit-learn's
  solver parameters keep their meaning there: ``beta_1``, ``beta_2`` and ``epsilon`` are
  "adam"'s and "adamw"'s betas and eps, ``momentum`` is that of "momentum" and "nesterov"
  (whose names choose classical or Nesterov momentum; ``nesterovs_momentum=False`` with
  "nesterov" is refused).  A value other than its default given to an optimizer it means
  nothing to ("sgd" is plain SGD: momentum=0.5 there; epsilon for "rmsprop", which takes
  its ``eps`` through ``optimizer_kwargs``) is refused rather than ignored, so a grid
  search never compares identical fits; so is one that ``optimizer_kwargs`` sets too, and
  an ``optimizer_kwargs["lr"]`` other than ``learning_rate_init``.
  ``schedule`` (a callable step -> lr or a ``fastmlp.schedules`` spec string, instead of
  ``learning_rate``; a schedule object whose own lr is not ``learning_rate_init`` is
  refused, as fit refuses an lr beside it, the default 0.001 included: see
  _check_schedule_lr); ``class_weight`` (classifier); ``backend``; ``n_threads`` (the
  kernels' threads inside this estimator's fit / predict calls only, as
  ``fastmlp.threads(n)``; None keeps the count in force); ``dtype``
  (None follows X as scikit-learn does: float32 X trains a float32 network).
  Class probabilities are float64; regression predictions keep the network's dtype.

Fitted attributes: ``classes_`` (classifier), ``model_`` (the ``fastmlp.MLP``),
``optimizer_`` (stochastic solvers), ``loss_``, ``loss_curve_``, ``best_loss_``,
``validation_scores_``, ``best_validation_score_`` (stochastic solvers), ``n_iter_``,
``t_``, ``n_features_in_`` (``feature_names_in_`` for DataFrames), ``n_outputs_``,
``n_layers_``, ``out_activation_``, ``coefs_`` and ``intercepts_`` (lists of views of the
model's weights: edit them in place or assign new lists of arrays of the same shapes).
"""

import math
import numbers
import warnings

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils import shuffle as _sk_shuffle
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d

from . import backends
from .backends import reference as _ref
from ._validate import check_hyper, counted, shown
from .codes import ACTIVATIONS, activation_code, loss_code, optimizer_key
from .model import MLP, FeatureNames
from .optim import OPTIMIZER_NAMES, make_optimizer
from .training.fit import warn_large_inputs
from .training.fit_inputs import check_weight_range, class_weights
from .training.loop import (History, TrainingDiverged, TrainingRunaway, divergence_advice,
                            check_schedule_lr, diverged_message, make_schedule,
                            nonfinite_training_state, runaway_text, step_lrs,
                            target_scale_advice)
from .schedules import own_lr

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

__all__ = ["MLPClassifier", "MLPRegressor", "SolverDiverged"]

# scikit-learn's activation names -> fastmlp's (fastmlp's own names are accepted as well)
_ACTIVATION_ALIASES = {"logistic": "sigmoid"}
_SKLEARN_ACTIVATION_NAMES = {v: k for k, v in _ACTIVATION_ALIASES.items()}
_SOLVERS = ("lbfgs", "sgd", "adam")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
_SGD_FAMILY = ("sgd", "momentum", "nesterov")
# scikit-learn's solver parameters, their defaults, which named optimizers take them (with
# optimizer=) and under which keyword
_SOLVER_DEFAULTS = {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "momentum": 0.9,
                    "nesterovs_momentum": True}
_SOLVER_PARAMS_OF = {"adam": ("beta_1", "beta_2", "epsilon"),
                     "adamw": ("beta_1", "beta_2", "epsilon"),
                     "momentum": ("momentum",), "nesterov": ("momentum",)}
_SOLVER_PARAM_KEYS = {"beta_1": "betas", "beta_2": "betas", "epsilon": "eps",
                      "momentum": "momentum", "nesterovs_momentum": "nesterov"}
_NONFINITE = ("Solver produced non-finite parameter weights. The input data may contain "
              "large values and need to be preprocessed.")
# how a diverged or blown-up run's advice tells scikit-learn users to scale huge inputs
_SCALE_ADVICE = "scale them first (e.g. StandardScaler in a Pipeline)"
# the stochastic solvers' fitted state, which a new network (a fit that is not a warm start)
# drops before its solver sets its own
_STOCHASTIC_STATE = ("optimizer_", "loss_curve_", "best_loss_", "validation_scores_",
                     "best_validation_score_", "_lr", "_first_batch_loss",
                     "_no_improvement_count")


class SolverDiverged(TrainingDiverged, ValueError):
    """A fit whose loss, gradient, parameters or optimizer state became non-finite.
    scikit-learn's MLP raises ValueError("Solver produced non-finite parameter weights ...")
    there, so this is a ValueError (GridSearchCV's error_score catches it) as well as
    fastmlp's TrainingDiverged (``step``, ``where``); its message says what was seen."""


def _validate_data(est, *args, **kwargs):
    if _sk_validate_data is not None:
        return _sk_validate_data(est, *args, **kwargs)
    return est._validate_data(*args, **kwargs)  # pragma: no cover


class _LayerViews(list):
    """coefs_ / intercepts_: a list of views into model_.params.  scikit-learn's own are a
    plain list, where est.coefs_[0] = W replaces the layer; here the list is made on each
    access, so an item assigned to it went nowhere, silently: it is copied into the view."""

    def __init__(self, name, views):
        super().__init__(views)
        self._name = name

    def __setitem__(self, i, value):
        if not isinstance(i, numbers.Integral):
            raise TypeError(f"{self._name}[{i!r}] = ...: assign one layer at a time, or the "
                            f"whole list ({self._name} = [...])")
        view = list.__getitem__(self, i)
        a = np.asarray(value)
        if a.shape != view.shape:
            raise ValueError(f"{self._name}[{i}] must have shape {view.shape}, got {a.shape}")
        view[...] = a


def _json_or_repr(v):
    import json
    try:
        json.dumps(v, allow_nan=False)   # as fastmlp.save writes it: n_iter_no_change=inf
        return v                         # is allowed, and is stored as its repr 'inf'
    except (TypeError, ValueError):
        return repr(v)


def _sigmoid64(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softmax64(z):
    """Class probabilities from logits: [1 - p, p] for one sigmoid output, else softmax."""
    z = np.asarray(z, dtype=np.float64)
    if z.shape[1] == 1:
        p = _sigmoid64(z[:, 0])
        return np.stack([1.0 - p, p], axis=1)
    with np.errstate(invalid="ignore"):
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def _nan_where_logits_overflowed(proba, z):
    """``proba`` with NaN in every row whose logits are not all finite, as
    model_.predict_proba gives them: an overflowed logit (+-inf, or NaN) says nothing about
    the class, whatever the sigmoid or softmax make of it (1.0 for a +inf binary logit)."""
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        proba[bad] = np.nan
    return proba


# ---------------------------------------------------------------------------------------
# The NumPy path for sparse X, which the fused kernels do not take: the first layer is
# scipy's sparse x dense product, the rest the reference kernels.
# ---------------------------------------------------------------------------------------

def _layer_views(params, sizes):
    offs, _ = _ref.layer_offsets(sizes)
    return [(params[wo:bo].reshape(int(a), int(b)), params[bo:bo + int(b)])
            for (wo, bo), a, b in zip(offs, sizes[:-1], sizes[1:])]


def _dot(a, w):
    """a @ w for a dense or scipy.sparse a (the result is a dense ndarray)."""
    return np.asarray(a @ w)


def _py_forward(params, X, sizes, act):
    """Logits of the network for a dense or sparse X.  # X: (B, sizes[0])"""
    layers = _layer_views(params, sizes)
    a = X
    for l, (w, b) in enumerate(layers):
        z = _dot(a, w) + b
        if l < len(layers) - 1:
            a = np.empty_like(z)
            _ref.activation_forward(a, z, act)
        else:
            a = z
    return a


def _py_loss_grad(grad, params, X, Y, sw, sizes, act, loss, l2):
    """reference.mlp_loss_grad for a dense or sparse X (``loss``: a loss code)."""
    layers, glayers = _layer_views(params, sizes), _layer_views(grad, sizes)
    ins, zs, a = [], [], X
    for l, (w, b) in enumerate(layers):
        z = _dot(a, w) + b
        ins.append(a)
        zs.append(z)
        if l < len(layers) - 1:
            a = np.empty_like(z)
            _ref.activation_forward(a, z, act)
        else:
            a = z
    dout = np.empty_like(a)
    value = _ref.loss_grad(dout, a, Y, sw, loss)
    for l in range(len(layers) - 1, -1, -1):
        dz = dout
        if l < len(layers) - 1:
            dz = np.empty_like(dout)
            _ref.activation_backward(dz, dout, zs[l], act)
        glayers[l][0][...] = _dot(ins[l].T, dz)
        glayers[l][1][...] = dz.sum(axis=0)
        if l:
            dout = dz @ layers[l][0].T
    return value + _ref.add_l2(grad, params, sw, sizes, l2)


class _BaseMLP(BaseEstimator):
    """Shared parameters, validation and the training loops of both estimators."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 optimizer=None, optimizer_kwargs=None, schedule=None, backend=None,
                 n_threads=None, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
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
        self.max_fun = max_fun
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
        self._check_solver_params()
        self._check_numbers()
        self._check_lr_given_once()
        self._check_schedule_lr()
        self._optimizer_spec()          # refuses solver parameters the optimizer cannot take
        return hl, act

    def _check_solver_params(self):
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(_SOLVERS)}, got {self.solver!r}")
        if self.learning_rate not in _LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {', '.join(_LEARNING_RATES)}, got "
                             f"{self.learning_rate!r}")
        opt = self._optimizer_name
        if opt is not None:
            if opt not in OPTIMIZER_NAMES:
                raise ValueError(f"optimizer must be None or one of "
                                 f"{', '.join(OPTIMIZER_NAMES)} (in any case), got "
                                 f"{self.optimizer!r}")
            # "adam" is solver's default, so it cannot tell a choice from no choice
            if self.solver == "lbfgs" or (self.solver == "sgd" and opt not in _SGD_FAMILY):
                raise ValueError(f"solver={self.solver!r} conflicts with optimizer="
                                 f"{self.optimizer!r}: pass one of them (optimizer replaces "
                                 "solver)")
        if self.optimizer_kwargs is not None and not isinstance(self.optimizer_kwargs, dict):
            raise ValueError(f"optimizer_kwargs must be None or a dict, got "
                             f"{self.optimizer_kwargs!r}")
        if self.schedule is not None and self.learning_rate != "constant":
            raise ValueError(f"schedule={self.schedule!r} conflicts with learning_rate="
                             f"{self.learning_rate!r}: pass one of them")
        # a truthy string ("False") or number would silently mean True
        for name in ("shuffle", "nesterovs_momentum", "early_stopping", "warm_start"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        # scikit-learn's "verbose" constraint: a bool or an integer >= 0
        if not isinstance(self.verbose, (bool, np.bool_, numbers.Integral)) or self.verbose < 0:
            raise ValueError(f"verbose must be True, False or an integer >= 0, got "
                             f"{self.verbose!r}")

    @property
    def _optimizer_name(self):
        """``optimizer`` as the tables spell it ("Adam" -> "adam": fastmlp.codes'
        optimizer_key, the rule of fit and make_optimizer), None when not given."""
        return None if self.optimizer is None else optimizer_key(self.optimizer)

    def _check_lr_given_once(self):
        """learning_rate_init is the estimator's rate (the SGD family's schedules start from
        it); an optimizer_kwargs["lr"] that differs would win for some optimizers and be
        ignored by others, so it is refused, as fastmlp.fit refuses lr given twice.  It is
        first checked as a learning rate, so None or '0.01' is called invalid, not a
        disagreement."""
        kwargs = self.optimizer_kwargs or {}
        if "lr" not in kwargs:
            return
        lr = check_hyper("lr", kwargs["lr"], name="optimizer_kwargs['lr']")
        if lr != self.learning_rate_init:
            raise ValueError(f"learning_rate_init={self.learning_rate_init!r} and "
                             f"optimizer_kwargs['lr']={lr!r} disagree; give the learning "
                             "rate once, as learning_rate_init")

    def _check_schedule_lr(self):
        """A schedule object (fastmlp.schedules') sets every step's rate from its own lr, so
        a learning_rate_init that differs would be ignored: refused by fastmlp.fit's rule
        (loop.check_schedule_lr), in this estimator's words.  learning_rate_init always
        counts as given, its default 0.001 too: after clone / set_params / a grid search an
        estimator cannot tell a default from a choice, and a rule that skipped the default
        would let an explicit learning_rate_init=0.001 be ignored without a word.  So
        Cosine(0.5, T) needs learning_rate_init=0.5 (or the spec string 'cosine:T=...',
        which starts from learning_rate_init).  A plain callable's rate is unknown: taken
        on trust, as fit does."""
        if isinstance(self.schedule, str) or not callable(self.schedule):
            return          # None, a spec string (starts from the rate), or make_schedule's error
        try:
            check_schedule_lr(self.schedule, self.learning_rate_init)
        except ValueError:
            own = own_lr(self.schedule)
            raise ValueError(
                f"learning_rate_init={self.learning_rate_init!r} disagrees with the schedule's "
                f"own lr {own!r} ({self.schedule!r}): a schedule object sets the learning rate "
                "of every step, so learning_rate_init would be ignored; give the rate once: "
                f"set learning_rate_init={own!r} (it is compared even at its default 0.001), "
                "or pass the schedule as a spec string (e.g. 'cosine:T=1000'), which starts "
                "from learning_rate_init") from None

    def _check_numbers(self):
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

        def integer(name, lo, inf_ok=False):
            v = getattr(self, name)
            if inf_ok and isinstance(v, numbers.Real) and v == np.inf:
                return
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}"
                                 f"{' or np.inf' if inf_ok else ''}, got {v!r}")

        for args in (("alpha", 0), ("learning_rate_init", 0, True), ("power_t", 0),
                     ("tol", 0), ("momentum", 0, False, 1),
                     ("validation_fraction", 0, True, 1, True), ("beta_1", 0, False, 1, True),
                     ("beta_2", 0, False, 1, True), ("epsilon", 0, True)):
            real(*args)
        integer("max_iter", 1)
        integer("max_fun", 1)
        integer("n_iter_no_change", 1, inf_ok=True)
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

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(f"Got batch_size={self.batch_size} larger than the number of samples "
                          f"({n}); it is clipped to {n}", UserWarning)
        return min(int(self.batch_size), n)

    # -- the objective's scale ------------------------------------------------------------
    @property
    def _scale(self):
        """scikit-learn's objective / the kernels' loss: 1 for log-losses; the kernels' mse
        averages over the K targets where scikit-learn's gradient is that of half the
        squared error summed over them, so K / 2 for the regressor."""
        return 1.0 if self._loss != "mse" else self.n_outputs_ / 2.0

    @property
    def _l2(self):
        """The kernels' l2 that makes scale x (kernel loss) scikit-learn's penalised loss."""
        return float(self.alpha) / self._scale

    # -- model, initialisation, optimizer -------------------------------------------------
    def _dtype_for(self, X_dtype):
        if self.dtype is not None:
            return np.dtype(self.dtype).name
        return "float32" if X_dtype == np.float32 else "float64"

    def _initialize(self, X, n_outputs, hidden, act, rs):
        """model_ with scikit-learn's initialisation drawn from ``rs`` in its order (per
        layer: the weights, then the biases, uniform in +-sqrt(factor / (fan_in + fan_out)),
        factor 2 for the logistic activation, else 6), and the fitted state."""
        self.model_ = MLP([X.shape[1], *hidden, n_outputs], activation=act,
                          dtype=self._dtype_for(X.dtype), backend=self.backend)
        self.model_.loss = "bce" if self._loss == "multilabel" else self._loss
        # the model's contract: what fastmlp.save, ONNX and the C model file carry
        names, classes = getattr(self, "feature_names_in_", None), getattr(self, "classes_", None)
        self.model_.set_contract(   # a DataFrame's column names literally, never a spec
            features=None if names is None else FeatureNames([str(f) for f in names]),
            class_names=None if classes is None else [str(c) for c in classes])
        factor = 2.0 if act == "sigmoid" else 6.0
        for w, b in zip(self.model_.weights, self.model_.biases):
            bound = np.sqrt(factor / (w.shape[0] + w.shape[1]))
            w[...] = rs.uniform(-bound, bound, w.shape)
            b[...] = rs.uniform(-bound, bound, b.shape)
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(hidden) + 2
        self.out_activation_ = {"mse": "identity", "cross_entropy": "softmax"}.get(
            self._loss, "logistic")
        self.n_iter_ = 0
        self.t_ = 0
        # a new network starts with no optimizer: one left by an earlier stochastic fit
        # (then an lbfgs refit) would be continued by partial_fit, its moments and rate
        # those of another network, and written by save() beside this one
        for name in _STOCHASTIC_STATE:
            self.__dict__.pop(name, None)
        if self.solver != "lbfgs" or self.optimizer is not None:
            self._init_stochastic_state()

    def _init_stochastic_state(self):
        """The stochastic solvers' fitted state (optimizer_ is built by _fit_stochastic)."""
        self.loss_curve_ = []
        self._first_batch_loss = None      # what a blow-up is judged against
        self._init_stopping_state()

    def _init_stopping_state(self):
        """What the stopping rule tracks: the best validation score with early_stopping, else
        the best training loss (scikit-learn's attributes, the other pair None)."""
        self._no_improvement_count = 0
        self.best_loss_ = None if self.early_stopping else np.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None

    def _optimizer_spec(self):
        """(optimizer name, its keyword arguments) from solver / optimizer and scikit-learn's
        solver parameters.  With ``optimizer``, each of beta_1, beta_2, epsilon, momentum and
        nesterovs_momentum goes to the named optimizer where it means the same thing
        (_SOLVER_PARAMS_OF); elsewhere a value other than its default is refused, as is
        one that contradicts the name or that optimizer_kwargs sets too.  epsilon is
        scikit-learn's (on its gradient): _new_optimizer scales it to the kernels'."""
        if self.optimizer is None:
            if self.solver == "sgd":
                return "sgd", {"momentum": float(self.momentum), "nesterov":
                               bool(self.nesterovs_momentum) and self.momentum > 0}
            return "adam", {"betas": (float(self.beta_1), float(self.beta_2)),
                            "eps": float(self.epsilon)}
        name, extra = self._optimizer_name, self.optimizer_kwargs or {}
        takes = _SOLVER_PARAMS_OF.get(name, ())
        for param, default in _SOLVER_DEFAULTS.items():
            value = getattr(self, param)
            if value == default:
                continue
            if param == "nesterovs_momentum":
                if name == "nesterov":
                    raise ValueError(f"nesterovs_momentum={value!r} contradicts optimizer="
                                     f"'nesterov'; use optimizer='momentum' for classical "
                                     "momentum")
                if name in _SGD_FAMILY:      # False agrees with plain and classical SGD
                    continue
            if param not in takes:
                raise ValueError(
                    f"{param}={value!r} has no meaning for optimizer={name!r} (beta_1, beta_2 "
                    "and epsilon apply to 'adam' and 'adamw', momentum to 'momentum' and "
                    "'nesterov', nesterovs_momentum to the SGD family): leave it at its "
                    f"default {default!r}, or give the optimizer's own hyper-parameters in "
                    "optimizer_kwargs")
            key = _SOLVER_PARAM_KEYS[param]
            if key in extra:
                raise ValueError(f"{param}={value!r} and optimizer_kwargs[{key!r}] both set "
                                 f"{name}'s {key}: pass one of them")
        if name == "nesterov" and not self.momentum > 0:
            raise ValueError(f"momentum={self.momentum!r} contradicts optimizer='nesterov' "
                             "(Nesterov momentum needs momentum > 0)")
        if name in ("adam", "adamw"):
            return name, {"betas": (float(self.beta_1), float(self.beta_2)),
                          "eps": float(self.epsilon)}
        if name in ("momentum", "nesterov"):
            return name, {"momentum": float(self.momentum)}
        return name, {}

    def _optimizer_continues(self):
        """partial_fit continues optimizer_ (its state, step count and rates, as
        scikit-learn's partial_fit) unless there is none yet or solver / optimizer now name
        another kind of optimizer."""
        if getattr(self, "optimizer_", None) is None:
            return False
        name = self._optimizer_spec()[0]
        return self.optimizer_.name == ("sgd" if name in _SGD_FAMILY else name)

    def _new_optimizer(self):
        name, kw = self._optimizer_spec()
        if "eps" in kw:
            # the kernels' gradient is scikit-learn's / scale: epsilon / scale gives the
            # same steps as scikit-learn's epsilon on its gradient
            kw["eps"] /= self._scale
        kw = {"lr": float(self.learning_rate_init), **kw, **(self.optimizer_kwargs or {})}
        return make_optimizer(name, self.model_.params, **kw)

    # -- coefs_ / intercepts_: views, assignable -----------------------------------------
    def _assign_layers(self, name, value, views):
        check_is_fitted(self, "model_")
        value = list(value)
        if len(value) != len(views):
            raise ValueError(f"{name} must be a list of {counted(len(views), 'array')}, got "
                             f"{len(value)}")
        arrays = [np.asarray(v) for v in value]
        for i, (a, v) in enumerate(zip(arrays, views)):
            if a.shape != v.shape:
                raise ValueError(f"{name}[{i}] must have shape {v.shape}, got {a.shape}")
        for a, v in zip(arrays, views):
            v[...] = a

    @property
    def coefs_(self):
        check_is_fitted(self, "model_")
        return _LayerViews("coefs_", self.model_.weights)

    @coefs_.setter
    def coefs_(self, value):
        self._assign_layers("coefs_", value, self.model_.weights
                            if hasattr(self, "model_") else [])

    @property
    def intercepts_(self):
        check_is_fitted(self, "model_")
        return _LayerViews("intercepts_", self.model_.biases)

    @intercepts_.setter
    def intercepts_(self, value):
        self._assign_layers("intercepts_", value, self.model_.biases
                            if hasattr(self, "model_") else [])

    # -- the computation, through the kernels or the NumPy path ---------------------------
    @property
    def _loss_code(self):
        """The kernels' loss: multilabel targets are bce with one output per label."""
        return loss_code("bce" if self._loss == "multilabel" else self._loss)

    def _net(self):
        m = self.model_
        return m.sizes_array, m.acts_array, activation_code(m.activation)

    def _kernels(self):
        return backends.get_backend(self.backend)

    def _loss_grad(self, grad, X, Y, sw):
        """The kernels' loss (with the L2 term) and gradient at model_.params, full batch."""
        sizes, acts, act = self._net()
        p = self.model_.params
        if not sp.issparse(X):
            return self._kernels().mlp_loss_grad(grad, p, X, Y, sw, sizes, acts,
                                                 self._loss_code, self._l2)
        return _py_loss_grad(grad, p, X, Y, sw, sizes, act, self._loss_code, self._l2)

    def _logits(self, X):
        if sp.issparse(X):
            sizes, _, act = self._net()
            return _py_forward(self.model_.params, X, sizes, act)
        return self.model_.forward(X)

    def _forward(self, X):
        check_is_fitted(self, "model_")
        X = _validate_data(self, X, reset=False, accept_sparse=["csr", "csc"],
                           dtype=[np.float64, np.float32])
        with backends.threads(self.n_threads):   # this call only, as fit
            return self._logits(self._as_model_input(X))

    def _as_model_input(self, X, range_checked=False):
        """X in the model's dtype (csr if sparse), refused if a value is beyond its range
        (unless ``range_checked``: fit checked it before building the network)."""
        dt = self.model_.dtype
        if not range_checked:
            _check_fits_dtype(X, dt)
        if sp.issparse(X):
            return sp.csr_matrix(X, dtype=dt)
        return np.ascontiguousarray(X, dtype=dt)

    # -- training -------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight, incremental, classes=None):
        hidden, act = self._check_params()
        # n_threads: the kernels' threads for this call only (fastmlp.threads): the setting
        # in force, process-wide or of an enclosing ``with fastmlp.threads(n)``, is restored
        with backends.threads(self.n_threads):
            return self._fit_checked(X, y, sample_weight, incremental, classes, hidden, act)

    def _fit_checked(self, X, y, sample_weight, incremental, classes, hidden, act):
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        if not first:
            self._check_continued_network(hidden, act,
                                          "partial_fit" if incremental else "warm_start=True")
        X, y = self._validate_input(X, y, reset=first)
        # before a new network is built: a refused X leaves the fitted one as it was
        _check_fits_dtype(X, self._dtype_for(X.dtype) if first else self.model_.dtype)
        if sample_weight is not None:
            sample_weight = _nonnegative_weights(
                _check_sample_weight(sample_weight, X, dtype=np.float64))
        if not first and not incremental:
            self._check_same_classes(y)
        Y, n_outputs, sw = self._encode_targets(y, first, sample_weight, classes)
        # what the messages about the weights (their sum, a batch's) name
        self._weights_name = " x ".join(
            name for name, given in (("sample_weight", sample_weight is not None),
                                     ("class_weight", getattr(self, "class_weight", None)
                                      is not None)) if given) or "sample_weight"
        rs = self._random_state()
        if first:
            self._initialize(X, n_outputs, hidden, act, rs)
            if not sp.issparse(X):    # fastmlp.fit's warning: such runs blow up or stall
                warn_large_inputs(self.model_, X, f"{type(self).__name__}: X",
                                  _SCALE_ADVICE, stacklevel=5)
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {counted(n_outputs, 'target')} (outputs), the model was "
                             f"fitted with {self.n_outputs_}")
        X = self._as_model_input(X, range_checked=True)
        Y = np.ascontiguousarray(Y, dtype=self.model_.dtype)
        if sw is not None:    # in float64, before the cast to the model's dtype
            check_weight_range(sw, self.model_.dtype, self._weights_name)
        sw = np.ascontiguousarray(np.ones(X.shape[0]) if sw is None else sw,
                                  dtype=self.model_.dtype)
        if not sw.sum() > 0:   # all-zero weights were refused by _check_sample_weight
            raise ValueError(f"the sample weights ({self._weights_name}) must sum to more than "
                             f"0 (the loss is the weighted mean over the samples), got a sum "
                             f"of {float(sw.sum()):g}; give some samples a weight > 0")
        if self.solver == "lbfgs" and self.optimizer is None:
            self._fit_lbfgs(X, Y, sw)
        else:
            self._fit_stochastic(X, Y, sw, rs, incremental)
        if not np.isfinite(self.model_.params).all():     # lbfgs (scipy's line search)
            raise SolverDiverged(diverged_message(
                f"with the {self.solver} solver", "the parameters ended non-finite",
                head=f"{_NONFINITE} Training diverged"), None, self.solver)
        return self

    def _random_state(self):
        """check_random_state(random_state), refusing with a message that names it (numpy's
        says 'Seed must be between 0 and 2**32 - 1')."""
        try:
            return check_random_state(self.random_state)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"random_state must be None, an integer in [0, 2**32 - 1] or a "
                             f"numpy RandomState, got {self.random_state!r}") from exc

    def _check_same_classes(self, y):
        """A warm start trains on the fitted classes (the regressor: no check)."""

    def _check_continued_network(self, hidden, act, how):
        """warm_start and partial_fit train the fitted model_ on: a hidden_layer_sizes,
        activation or dtype set since it was built would be ignored, silently (scikit-learn
        keeps the old layers too, and its predict even applies a new activation to them).
        dtype=None follows the fitted network."""
        fitted = {"hidden_layer_sizes": tuple(int(h) for h in self.model_.layer_sizes[1:-1]),
                  "activation": self.model_.activation, "dtype": self.model_.dtype.name}
        now = {"hidden_layer_sizes": tuple(hidden), "activation": act,
               "dtype": fitted["dtype"] if self.dtype is None else np.dtype(self.dtype).name}
        for name in fitted:
            if now[name] != fitted[name]:
                # the fitted activation as scikit-learn spells it ('logistic', not
                # fastmlp's 'sigmoid'), as the user wrote it
                shown = _SKLEARN_ACTIVATION_NAMES.get(fitted[name], fitted[name]) \
                    if name == "activation" else fitted[name]
                raise ValueError(
                    f"{name}={getattr(self, name)!r} differs from the fitted network's "
                    f"{shown!r}: {how} trains the fitted network on; fit with "
                    "warm_start=False (or a clone) to train a new one")

    def _fit_lbfgs(self, X, Y, sw):
        """scipy's L-BFGS-B on scale x (kernel loss + L2), i.e. scikit-learn's objective."""
        p = self.model_.params
        grad = np.empty_like(p)
        scale = self._scale

        def fun(x):
            p[...] = x
            with np.errstate(all="ignore"):
                value = self._loss_grad(grad, X, Y, sw)
            return scale * value, scale * grad.astype(np.float64)

        def progress(xk):
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (progress.it + 1, fun(xk)[0]))
            progress.it += 1
        progress.it = 0
        res = scipy.optimize.minimize(
            fun, p.astype(np.float64), method="L-BFGS-B", jac=True,
            callback=progress if self.verbose else None,
            options={"maxfun": int(self.max_fun), "maxiter": int(self.max_iter),
                     "gtol": float(self.tol)})
        p[...] = res.x
        self.n_iter_ = min(int(res.nit), int(self.max_iter))
        self.loss_ = float(res.fun)
        if not res.success:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                          f"(status={res.status}): {res.message}. Increase the number of "
                          f"iterations (max_iter={self.max_iter}) or of function evaluations "
                          f"(max_fun={self.max_fun}), or scale the data.", ConvergenceWarning)

    def _split(self, X, Y, sw, rs):
        """scikit-learn's early-stopping split (train_test_split with ``rs``), stratified by
        class for single-label classifiers.  Returns the training and validation parts, the
        rows in train_test_split's (permuted) order as scikit-learn keeps them: the epochs'
        shuffles permute that order, so sorting it would train on other batches."""
        n = X.shape[0]
        n_val = math.ceil(self.validation_fraction * n)
        if n_val < 2:
            raise ValueError("The validation set is too small. Increase "
                             "'validation_fraction' or the size of your dataset.")
        if n - n_val < 1:
            raise ValueError(f"early_stopping with validation_fraction="
                             f"{self.validation_fraction} leaves no training sample among {n}")
        stratify = Y[:, 0] if self._loss in ("bce", "cross_entropy") else None
        try:
            tr, va = train_test_split(np.arange(n), test_size=self.validation_fraction,
                                      random_state=rs, stratify=stratify)
        except ValueError as exc:
            why = self._unstratifiable(stratify, n - n_val, n_val) or str(exc)
            raise ValueError(f"early_stopping: the validation split cannot be stratified by "
                             f"class ({why}); use more samples of each class or another "
                             "validation_fraction") from exc
        return (X[tr], Y[tr], sw[tr]), (X[va], Y[va], sw[va])

    def _unstratifiable(self, encoded, n_train, n_val):
        """Why the split cannot be stratified, in the user's labels (train_test_split names
        the encoded class indices: 'Classes with too few members are: [3.0]'), or None."""
        counts = np.bincount(encoded.astype(np.int64), minlength=self.classes_.size)
        single = [shown(c) for c, k in zip(self.classes_, counts) if k == 1]
        present = int(np.count_nonzero(counts))
        if single:
            return (f"{'classes' if len(single) > 1 else 'class'} {', '.join(single[:5])}"
                    f"{' ...' if len(single) > 5 else ''} "
                    f"{'have' if len(single) > 1 else 'has'} a single sample")
        for part, size in (("validation", n_val), ("training", n_train)):
            if size < present:
                return (f"the {part} part's {counted(size, 'row')} cannot hold one of each "
                        f"of the {present} classes")
        return None

    def _fit_stochastic(self, X, Y, sw, rs, incremental):
        """scikit-learn's epoch loop: shuffle, one fused epoch, bookkeeping, stopping."""
        if not hasattr(self, "loss_curve_"):  # a warm start after solver="lbfgs"
            self._init_stochastic_state()
        elif bool(self.early_stopping) != (self.validation_scores_ is not None):
            # early_stopping switched on or off since the last fit (warm_start, or
            # partial_fit after a fit): the rule now tracked starts afresh.  scikit-learn
            # fails there with "'NoneType' object has no attribute 'append'" or a TypeError
            self._init_stopping_state()
        if not incremental or not self._optimizer_continues():
            # scikit-learn's rule: every fit (warm_start too: it keeps only the weights)
            # builds the optimizer from the current parameters, state and step count new;
            # partial_fit continues it
            self.optimizer_ = self._new_optimizer()
            self._momentum_lr = None      # its momentum buffer is empty: no rate in it yet
        val = None
        if self.early_stopping:
            (X, Y, sw), val = self._split(X, Y, sw, rs)
        if not incremental or not hasattr(self, "_lr"):
            self._lr = float(self.learning_rate_init)  # the sgd learning rate schedule's
        n = X.shape[0]
        bs = self._batch_size(n)
        idx = np.arange(n, dtype=np.int64)
        self.n_iter_ = 0
        # the run judged for a blow-up: this call's epochs, against this call's first batch
        # (a partial_fit on new data starts where its own targets put it, not where the
        # first fit started)
        start = len(self.loss_curve_)
        self._first_batch_loss = None
        self._best_params = self._best_epoch = None   # none left by a fit that raised
        for _ in range(int(self.max_iter)):
            if self.shuffle:  # scikit-learn's draw: the row order follows random_state
                idx = _sk_shuffle(idx, random_state=rs)
            seen = self._epoch(X, Y, sw, idx, bs)
            self.n_iter_ += 1
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            if seen is not None:
                self._diverged(val, seen, X, Y)
                break
            self._update_no_improvement_count(val)
            if self.learning_rate == "invscaling":
                self._lr = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
            if self._no_improvement_count > self.n_iter_no_change:
                if self._trigger_stopping(val is not None):
                    break
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                              "reached and the optimization hasn't converged yet.",
                              ConvergenceWarning)
        if val is not None and self._best_params is not None:
            self.model_.params[...] = self._best_params
        self._best_params = None
        # partial_fit runs one epoch, often of one batch, whose losses were all measured
        # before its steps: the call is judged by its first batch's rows, their loss before
        # the call's first step against their loss after its last one (like with like: the
        # epoch loss or the last batch's loss would hold other rows), so that a step that
        # blows the model up is seen by the call that took it
        end = self._loss_at(X, Y, sw, idx[:bs]) if incremental else None
        self._warn_if_blown_up(start, X, Y, end)

    def _loss_at(self, X, Y, sw, rows):
        """scikit-learn's (penalised) loss of the current parameters on ``rows``: a forward
        pass, no gradient through the network and no step."""
        with np.errstate(all="ignore"):
            out = self._logits(X[rows])
            value = _ref.loss_grad(np.empty_like(out), out, Y[rows], sw[rows], self._loss_code)
            return self._scale * (float(value) + self._l2_term(sw[rows]))

    def _l2_term(self, sw):
        """The kernels' L2 term on a batch of weights ``sw`` (reference.add_l2's loss)."""
        if self._l2 == 0:
            return 0.0
        sizes = self.model_.sizes_array
        # np.square(...).sum(), not np.dot: a dot of > ~32k weights went to OpenBLAS's
        # threads (9 ms a call on a loaded 2-core machine, against 0.09 ms on one)
        pen = sum(float(np.square(w, dtype=np.float64).sum())
                  for w, _ in _layer_views(self.model_.params, sizes))
        return 0.5 * self._l2 / float(np.sum(sw, dtype=np.float64)) * pen

    def _warn_if_blown_up(self, start, X, Y, end=None):
        """TrainingRunaway (fastmlp.fit's warning, not a ConvergenceWarning that grid searches
        silence) when the returned model's training loss ended far above where the run
        started (fastmlp.training.loop.runaway_text: more than 10x, or an explosion never
        recovered from; never for a classifier below a mean log-loss of 0.01).  scikit-learn
        says nothing there; fastmlp's rule is that a blown-up run is never silent.  The
        judged epochs end at the restored best one with early stopping; each partial_fit
        call (one epoch) is judged on its own: its first batch's loss before its first step
        against ``end``, the loss of the same rows after its last step (a partial_fit on new
        targets starts where they put it, not where the first fit started)."""
        stop = len(self.loss_curve_) if self._best_epoch is None else \
            start + self._best_epoch
        # a partial_fit call: its first batch's loss after the call (inf if it overflowed;
        # NaN, logits beyond the dtype with finite weights, counts as inf: never silent)
        curve = [v for v in self.loss_curve_[start:stop] if math.isfinite(v)] \
            if end is None else [math.inf if math.isnan(end) else end]
        if not curve or self._first_batch_loss is None:
            return

        def why(losses):
            name = "bce" if self._loss == "multilabel" else self._loss
            return runaway_text(History(loss=losses, batch_loss=[self._first_batch_loss],
                                        loss_name=name)) if losses else None

        text = why(curve)
        if text is None:
            return
        if end is not None:     # not an epoch's loss: the same rows before and after
            text = text.replace("the epoch loss", "the loss of the call's first batch "
                                "(before its first step, after its last)", 1)
        at = "" if self._best_epoch is None else \
            f" (at epoch {self._best_epoch}, whose parameters early stopping restored)"
        warnings.warn(diverged_message("", text + at, advice=self._advice(X, Y),
                                       head=f"{type(self).__name__}: training blew up"),
                      TrainingRunaway, stacklevel=6)

    def _advice(self, X, Y):
        """What to change after a blow-up: scale the inputs if a column is huge (fastmlp's
        divergence_advice; dense X only), else the targets if huge, else lower
        learning_rate_init."""
        lr = target_scale_advice(Y, self._loss_code,
                                 f"lower learning_rate_init (it was {self.learning_rate_init:g})")
        return lr if sp.issparse(X) else divergence_advice(self.model_, X, lr, _SCALE_ADVICE)

    @property
    def _sgd_family(self):
        """Trained by (momentum) SGD, whose steps scale with the gradient."""
        return self._optimizer_name in _SGD_FAMILY or (self.optimizer is None
                                                 and self.solver == "sgd")

    def _epoch_lrs(self, n_batches):
        opt = self.optimizer_
        # the kernels' gradient is scikit-learn's / scale: SGD's rate takes the scale back
        # (scheduled or not); the adaptive optimizers' steps do not depend on it
        scale = self._scale if self._sgd_family else 1.0
        if self.schedule is not None:
            return scale * step_lrs(make_schedule(self.schedule, opt.lr), opt.step_count,
                                    n_batches)
        if self._sgd_family:
            return np.full(n_batches, self._lr * scale)
        return np.full(n_batches, float(opt.lr))

    def _carry_velocity_to_rate(self):
        """Rescale SGD's momentum buffer when the learning rate changed since the last epoch,
        so that momentum steps stay scikit-learn's.  scikit-learn keeps the rate inside its
        velocity (v <- m v - lr g; a step of v, or of m v - lr g with Nesterov), the kernels
        outside (torch: b <- m b + g; a step of -lr b, or of -lr (m b + g)).  With v = -lr b
        the two are the same steps while the rate is constant; when it changes from lr_old
        to lr (invscaling after each epoch, adaptive's division by 5, partial_fit going on
        at a decayed rate), b scaled by lr_old / lr keeps v, so the next steps are
        scikit-learn's, plain or Nesterov.  A fastmlp ``schedule`` changes the rate inside
        the kernels, step by step: that is torch's momentum, left as it is."""
        opt = self.optimizer_
        if self.schedule is not None or not self._sgd_family or not opt.momentum:
            return
        lr, lr_old = self._lr, getattr(self, "_momentum_lr", None)
        if lr == 0:
            # only an underflowed invscaling rate: scikit-learn's steps then coast on its
            # velocity (m v), the kernels' stop; nothing to rescale (and no 0 to divide by)
            return
        if lr_old is not None and lr_old != lr:
            opt.state[opt.state_rows.index("momentum_buffer")] *= lr_old / lr
        self._momentum_lr = lr

    def _epoch(self, X, Y, sw, idx, bs):
        """One epoch over the rows ``idx`` in batches of ``bs``; sets loss_ (scikit-learn's
        scale: the row-weighted mean batch loss).  Returns None, or what went non-finite if
        the epoch diverged (a batch's loss or gradient, the parameters, or the optimizer
        state: Adam's squared gradients overflowing freeze finite parameters)."""
        opt, (sizes, acts, _), p = self.optimizer_, self._net(), self.model_.params
        n = idx.shape[0]
        n_batches = -(-n // bs)
        lrs = self._epoch_lrs(n_batches)
        self._carry_velocity_to_rate()
        losses = np.empty(n_batches)
        grad = np.empty_like(p)
        if not sp.issparse(X):
            done = int(self._kernels().train_epoch(
                p, grad, opt.state, losses, X, Y, sw, idx, bs, lrs, opt.step_count, opt.code,
                opt.hyper_vector(), sizes, acts, self._loss_code, self._l2))
        else:
            done = self._py_epoch(X, Y, sw, idx, bs, lrs, losses, grad)
        step0 = opt.step_count
        opt.step_count += done
        if done < n_batches:
            self._check_batch_weights(sw, idx[done * bs:(done + 1) * bs], done, n_batches)
            bad, at = self._scale * losses[done], \
                f"step {step0 + done + 1} (batch {done + 1} of {n_batches})"
            seen = f"the loss of {at} was {bad:.4g}" if not math.isfinite(bad) else \
                f"the gradient of {at} was not finite (its loss was {bad:.4g})"
            if done:
                seen += f", after a batch loss of {self._scale * losses[done - 1]:.4g}"
        else:
            what = nonfinite_training_state(p, opt)
            seen = None if what is None else (
                f"{what} became non-finite during steps "
                f"{step0 + 1}..{step0 + n_batches} (the last batch loss was "
                f"{self._scale * losses[-1]:.4g})")
        if seen is not None:
            self.loss_ = math.nan
            return seen
        if self._first_batch_loss is None:
            self._first_batch_loss = self._scale * float(losses[0])
        rows = np.full(n_batches, bs, dtype=np.float64)
        rows[-1] = n - bs * (n_batches - 1)
        self.loss_ = self._scale * float(np.dot(losses, rows)) / n
        return None

    def _check_batch_weights(self, sw, rows, batch, n_batches):
        """A batch whose sample weights sum to 0 has no weighted mean loss (0 / 0): a
        ValueError naming sample_weight, rather than a divergence blamed on the learning
        rate.  (scikit-learn raises ZeroDivisionError 'Weights sum to zero'.)"""
        if np.sum(sw[rows], dtype=np.float64) == 0:
            raise ValueError(
                f"{getattr(self, '_weights_name', 'sample_weight')}: the "
                f"{counted(rows.size, 'row')} of batch {batch + 1} of "
                f"{n_batches} (epoch {self.n_iter_ + 1}) have weights summing to 0, and each "
                "batch's loss is its weighted mean: drop the zero-weight samples, or use a "
                f"larger batch_size (it is {self.batch_size!r})")

    def _py_epoch(self, X, Y, sw, idx, bs, lrs, losses, grad):
        """reference.train_epoch for sparse X: _py_loss_grad and the backend's
        optimizer_update."""
        opt, (sizes, _, act), p = self.optimizer_, self._net(), self.model_.params
        kernels, h = self._kernels(), opt.hyper_vector().copy()
        for bi in range(losses.shape[0]):
            rows = idx[bi * bs:(bi + 1) * bs]
            self._check_batch_weights(sw, rows, bi, losses.shape[0])  # add_l2 divides by it
            with np.errstate(all="ignore"):  # non-finite values are detected just below
                value = _py_loss_grad(grad, p, X[rows], Y[rows], sw[rows], sizes, act,
                                      self._loss_code, self._l2)
            losses[bi] = value
            if not (math.isfinite(value) and np.isfinite(grad).all()):
                return bi
            h[0] = lrs[bi]
            kernels.optimizer_update(opt.code, p, grad, opt.state, opt.step_count + bi + 1, h)
        return losses.shape[0]

    def _diverged(self, val, seen, X, Y):
        """A non-finite epoch (``seen``: what went non-finite).  With early stopping and an
        earlier best epoch: record NaN, stop, and warn TrainingRunaway that the best
        parameters are restored (scikit-learn restores them silently).  Otherwise
        scikit-learn's ValueError, as SolverDiverged saying what was seen and what to do."""
        where = f"epoch {self.n_iter_}"
        if val is None or self._best_params is None:
            raise SolverDiverged(diverged_message(f"in {where}", seen, advice=self._advice(X, Y),
                                                 head=f"{_NONFINITE} Training diverged"),
                                 self.optimizer_.step_count + 1, where)
        self.validation_scores_.append(math.nan)
        if self.verbose:
            print("Validation score: nan; the run diverged. Stopping.")
        warnings.warn(diverged_message(
            f"in {where}", seen, f"the parameters of epoch {self._best_epoch} (the best "
            f"validation score, {self.best_validation_score_:.4g}) were restored",
            self._advice(X, Y), head=f"{type(self).__name__}: training diverged"),
            TrainingRunaway, stacklevel=6)

    def _update_no_improvement_count(self, val):
        if val is not None:
            score = self._score_encoded(*val)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = self.model_.params.copy()
                self._best_epoch = self.n_iter_      # this fit's epoch, from 1
            return
        if self.loss_curve_[-1] > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if self.loss_curve_[-1] < self.best_loss_:
            self.best_loss_ = self.loss_curve_[-1]

    def _trigger_stopping(self, early_stopping):
        """scikit-learn's rule: stop, except that learning_rate="adaptive" (sgd) first
        divides the rate by 5 until it is below 1e-6."""
        what = "Validation score" if early_stopping else "Training loss"
        msg = (f"{what} did not improve more than tol={self.tol:f} for "
               f"{self.n_iter_no_change} consecutive epochs.")
        adaptive = self.learning_rate == "adaptive" and self.schedule is None and \
            self._sgd_family
        if not adaptive or self._lr <= 1e-6:
            if self.verbose:
                print(msg + " Stopping.")
            return True
        self._lr /= 5.0
        if self.verbose:
            print(msg + " Setting learning rate to %f" % self._lr)
        return False

    def _score_encoded(self, X, Y, sw):
        """The validation score on encoded targets; NaN if the predictions are not finite."""
        out = self._logits(X)
        if not np.isfinite(out).all():
            return math.nan
        with np.errstate(over="ignore", invalid="ignore"):  # huge finite predictions
            return self._score_logits(out, Y, sw)

    # -- saving -------------------------------------------------------------------------
    def save(self, path):
        """Write the fitted network with its contract (feature and class names) and optimizer
        state through ``fastmlp.save``, this estimator's parameters as the training config;
        ``fastmlp.load`` reads it back as a ``fastmlp.MLP``.  (Pickle the estimator to keep
        the estimator.)"""
        from .io import save
        check_is_fitted(self, "model_")
        self.model_.optimizer = getattr(self, "optimizer_", None)
        self.model_.training_config = {
            "estimator": type(self).__name__, "n_iter": self.n_iter_,
            "params": {k: _json_or_repr(v) for k, v in self.get_params().items()}}
        return save(self.model_, path)

    def to_onnx(self, path):
        """Export the fitted network through ``fastmlp.to_onnx`` (its contract included); its
        ``label`` output is the index into ``classes_`` (multilabel: the indicator matrix,
        one sigmoid per label as predict_proba)."""
        from .io.onnx import to_onnx
        check_is_fitted(self, "model_")
        return to_onnx(self.model_, path)

    # pickling: the optimizer must update the unpickled model's buffer
    def __setstate__(self, state):
        super().__setstate__(state)
        if "optimizer_" in self.__dict__ and "model_" in self.__dict__:
            self.optimizer_.params = self.model_.params

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _check_partial_fit(self):
        if self.solver == "lbfgs" and self.optimizer is None:
            raise AttributeError("partial_fit is only available for stochastic optimizers. "
                                 "lbfgs is not stochastic.")
        return True


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by fastmlp (see the module docstring).

    Parameters as scikit-learn's ``MLPClassifier``: ``hidden_layer_sizes=(100,)``,
    ``activation="relu"`` ("identity", "logistic", "tanh", "relu" and fastmlp's
    "leaky_relu", "elu", "sigmoid", "softplus", "gelu"), ``solver="adam"`` ("lbfgs" |
    "sgd" | "adam"), ``alpha=1e-4``, ``batch_size="auto"`` (min(200, n_samples)),
    ``learning_rate="constant"``, ``learning_rate_init=1e-3``, ``power_t=0.5``,
    ``max_iter=200``, ``shuffle=True``, ``random_state=None``, ``tol=1e-4``, ``verbose``,
    ``warm_start``, ``momentum=0.9``, ``nesterovs_momentum=True``, ``early_stopping=False``,
    ``validation_fraction=0.1``, ``beta_1``, ``beta_2``, ``epsilon``,
    ``n_iter_no_change=10``, ``max_fun=15000``; fastmlp's own: ``optimizer``,
    ``optimizer_kwargs``, ``schedule``, ``class_weight`` (None, "balanced" (not with
    partial_fit) or {label: weight}), ``backend``, ``n_threads``, ``dtype``.
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 optimizer=None, optimizer_kwargs=None, schedule=None, class_weight=None,
                 backend=None, n_threads=None, dtype=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            optimizer=optimizer, optimizer_kwargs=optimizer_kwargs, schedule=schedule,
            backend=backend, n_threads=n_threads, dtype=dtype)
        self.class_weight = class_weight

    @property
    def _loss(self):
        """"bce" (binary: one sigmoid output), "cross_entropy" (softmax) or "multilabel"
        (one sigmoid per output), fixed by the targets of the first fit."""
        return getattr(self, "_kind", None) or "bce"

    def _validate_input(self, X, y, reset):
        if hasattr(y, "isna"):   # pandas: pd.NA in a "string" column fails inside
            _refuse_missing_labels(y)    # scikit-learn's check ('boolean value of NA ...')
        X, y = _validate_data(self, X, y, reset=reset, accept_sparse=["csr", "csc"],
                              multi_output=True, dtype=[np.float64, np.float32])
        if sp.issparse(y):   # a sparse label indicator matrix (scikit-learn takes it too)
            y = y.toarray()
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        try:
            check_classification_targets(y)
        except (TypeError, ValueError) as exc:   # "Unknown label type: unknown. Maybe ...
            why = _object_label_problem(y)           # regression"; np.unique's TypeError
            if why is None:
                raise
            raise ValueError(f"Unknown label type: y cannot be class labels: {why}") from exc
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"MLPClassifier supports binary, multiclass and multilabel-"
                             f"indicator targets, got {kind!r} targets")
        return X, y

    def _encode_targets(self, y, first, sw, classes):
        """(Y for the kernels, n_outputs, sample weights x class weights); sets classes_ on
        the first fit and checks later targets against it."""
        multilabel = y.ndim == 2
        if first:
            if multilabel:
                self.classes_ = np.arange(y.shape[1])
            else:
                # scikit-learn's LabelBinarizer: unique_labels (str labels held in an
                # object array or a pandas Series give a str array, as scikit-learn's)
                self.classes_ = unique_labels(y) if classes is None else classes
                if self.classes_.size < 2:
                    raise ValueError(f"MLPClassifier needs samples of at least 2 classes; "
                                     f"got 1 class ({shown(self.classes_[0])})")
            self._kind = "multilabel" if multilabel else (
                "bce" if self.classes_.size == 2 else "cross_entropy")
        elif multilabel != (self._loss == "multilabel"):
            raise ValueError(f"y is {'multilabel' if multilabel else 'single-label'}; the "
                             f"model was fitted on {self._loss} targets")
        if multilabel:
            if y.shape[1] != self.classes_.size:
                raise ValueError(f"y has {counted(y.shape[1], 'label')}, the model has "
                                 f"{self.classes_.size}")
            if self.class_weight is not None:
                raise ValueError("class_weight applies to single-label targets, not "
                                 "multilabel ones")
            # any nonzero value marks the label present, as scikit-learn's LabelBinarizer
            # reads an indicator matrix (a 2 would otherwise be a BCE target of 2.0)
            return (y != 0).astype(np.float64), y.shape[1], sw
        idx = self._encode(y)
        cw = self._sample_class_weights(idx, sw)
        if cw is not None:
            sw = cw if sw is None else sw * cw
        if self._loss == "bce":
            return idx[:, None].astype(np.float64), 1, sw
        return idx[:, None].astype(np.float64), self.classes_.size, sw

    def _encode(self, y):
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, len(self.classes_) - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            raise ValueError(f"y contains labels not in classes_ {self.classes_.tolist()}: "
                             f"{np.unique(np.asarray(y)[bad]).tolist()[:5]}")
        return idx.astype(np.int64)

    def _sample_class_weights(self, idx, sw):
        """Each row's class weight (``idx``: its index into classes_), or None: fastmlp.fit's
        class_weights, "balanced" counting the classes weighted by the sample weights ``sw``
        (scikit-learn >= 1.6's compute_class_weight), a dict keyed by the labels."""
        return class_weights(self.class_weight, idx, self.classes_.size, sw, self.classes_)

    def _check_same_classes(self, y):
        """A warm start on single-label targets needs the fitted classes, all of them, as
        scikit-learn's: a subset (even a single class) would leave the missing classes'
        outputs to drift untrained, and "balanced" weights could not be computed."""
        if y.ndim == 2 or self._loss == "multilabel":
            return          # the shapes are checked by _encode_targets
        seen = unique_labels(y)
        if seen.tolist() != self.classes_.tolist():
            raise ValueError(
                f"warm_start can only be used where `y` has the same classes as in the "
                f"previous call to fit. Previously got {self.classes_.tolist()}, `y` has "
                f"{seen.tolist()}; fit with warm_start=False (or a clone) to start anew, or "
                "use partial_fit, which trains on batches of any of the fitted classes")

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y) (``max_iter`` epochs or L-BFGS iterations at most); returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(lambda est: est._check_partial_fit())
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing the optimizer's state.  ``classes`` (all labels
        that will ever appear) is required on the first call."""
        if not hasattr(self, "model_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            # multilabel targets: scikit-learn takes the labels from y
            classes = None if type_of_target(np.asarray(y)).startswith("multilabel") \
                else unique_labels(np.asarray(classes))
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)),
                                                        self.classes_):
            raise ValueError(f"`classes={np.unique(classes).tolist()}` is not the same as on "
                             f"the first call to partial_fit ({self.classes_.tolist()})")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _check_partial_fit(self):
        """partial_fit is not offered with class_weight='balanced': each call would balance
        its own chunk, so the weights would change from chunk to chunk and balance none of
        them overall (scikit-learn's SGDClassifier refuses it too).  An AttributeError, as
        for lbfgs, so that hasattr(est, 'partial_fit') says so."""
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            raise AttributeError(
                "partial_fit is not available with class_weight='balanced' (it would balance "
                "each chunk on its own). Compute the weights once on the whole target (or a "
                "large enough sample of it) and pass them as a {label: weight} dict: "
                "class_weight=dict(zip(classes, compute_class_weight('balanced', "
                "classes=classes, y=y))) with sklearn.utils.class_weight.compute_class_weight "
                "(which returns an array, in the order of classes)")
        return super()._check_partial_fit()

    def _score_logits(self, out, Y, sw):
        if self._loss == "multilabel":
            return accuracy_score(Y, out > 0, sample_weight=sw)
        pred = (out[:, 0] > 0) if out.shape[1] == 1 else out.argmax(axis=1)
        return accuracy_score(Y[:, 0], pred, sample_weight=sw)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order
        (for multilabel targets: each label's probability)."""
        out = self._forward(X)
        proba = _sigmoid64(out) if self._loss == "multilabel" else _softmax64(out)
        return _nan_where_logits_overflowed(proba, out)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class label of each sample (multilabel: the indicator matrix
        of the labels whose probability exceeds 0.5).  A row whose probabilities are NaN (a
        logit overflowed) gets no class, as on the model's other paths: -1 for numeric
        classes (a multilabel row of -1; int64 for unsigned classes), None for other labels
        and when -1 is itself a class or unsigned classes exceed int64 (then an object
        array)."""
        check_is_fitted(self)
        labels, invalid = self._predicted(X)
        if not invalid.any():
            return labels
        if self._loss == "multilabel":
            labels[invalid] = -1
            return labels
        return _mark_unlabelled(labels, invalid, self.classes_)

    def _predicted(self, X):
        """(labels, invalid): each row's most probable class (multilabel: its int64
        indicator row), and the rows whose probabilities are NaN, which hold the first
        class (an all-zero row) there."""
        proba = self.predict_proba(X)
        invalid = ~np.isfinite(proba).all(axis=1)
        if self._loss == "multilabel":
            return (proba > 0.5).astype(np.int64), invalid
        return self.classes_[np.where(invalid, 0, proba.argmax(axis=1))], invalid

    def score(self, X, y, sample_weight=None):
        """Mean accuracy (ClassifierMixin's: for multilabel targets, of whole rows), a row
        that got no class (NaN probabilities) counting as wrong whatever its label."""
        check_is_fitted(self)
        labels, invalid = self._predicted(X)
        if not invalid.any():
            return accuracy_score(y, labels, sample_weight=sample_weight)
        hit = self._rows_matching(y, labels) & ~invalid
        # the weighted share of hits, with scikit-learn's checks of sample_weight (all
        # zero: its ValueError)
        return accuracy_score(np.ones(hit.size, dtype=bool), hit, sample_weight=sample_weight)

    def _rows_matching(self, y, labels):
        """Which rows of ``y`` equal ``labels`` (multilabel: in every label); compared as
        Python objects, so that no label type makes the comparison fail."""
        if self._loss == "multilabel":
            Y = np.asarray(y.toarray() if sp.issparse(y) else y)
            if Y.shape != labels.shape:
                raise ValueError(f"y has shape {Y.shape}, the predictions {labels.shape}")
            return (Y == labels).all(axis=1)
        y = column_or_1d(y)
        if y.shape[0] != labels.shape[0]:
            raise ValueError(f"y has {counted(y.shape[0], 'row')}, X has {labels.shape[0]}")
        return np.asarray(y.astype(object) == labels.astype(object), dtype=bool)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        # class_weight weights single-label classes: multilabel targets are refused with it
        tags.classifier_tags.multi_label = self.class_weight is None
        return tags


def _mark_unlabelled(labels, invalid, classes):
    """``labels`` with the rows ``invalid`` marked as having no class: -1 for numeric classes
    (the model's mark), in their dtype (int64 for unsigned ones); None in an object array for
    other labels (a string array has no free value: any string could be a class), and when -1
    cannot mark the row: it is itself a class, or unsigned classes exceed int64."""
    dtype = _dtype_marking_minus_one(classes)
    if dtype is not None:
        out = labels.astype(dtype)
        out[invalid] = -1
        return out
    out = labels.astype(object)
    out[invalid] = None
    return out


def _dtype_marking_minus_one(classes):
    """The dtype of predictions holding ``classes`` and -1 as no class, or None if -1 is a
    class or the classes are not numbers.  Unsigned classes go to int64 (np.result_type with
    a signed type gives float64 for uint64, which rounds labels beyond 2**53)."""
    if classes.dtype.kind not in "iuf" or np.any(classes == -1):
        return None
    if classes.dtype.kind != "u":
        return classes.dtype
    return np.dtype(np.int64) if classes.max() <= np.iinfo(np.int64).max else None


def _is_missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v)) or \
        type(v).__name__ in ("NAType", "NaTType")     # pandas' pd.NA and pd.NaT


def _refuse_missing_labels(y):
    """A pandas y with missing labels (pd.NA, NaN, None) is refused, saying so."""
    missing = np.flatnonzero(np.asarray(y.isna()).reshape(len(y), -1).any(axis=1))
    if missing.size:
        raise ValueError(f"Input y contains NaN: {counted(missing.size, 'missing label')} "
                         f"(pd.NA, NaN or None; first at row {missing[0]}); drop those rows "
                         "or give them a label")


def _object_label_problem(y):
    """Why an object-dtype y is no class labels, in words, or None.  scikit-learn's check
    calls every such y 'Unknown label type: unknown' and suggests continuous regression
    targets, where the cause is missing labels, strings mixed with numbers, or numbers
    held in an object array (which scikit-learn does not take as labels)."""
    if y.dtype != object:
        return None
    flat = y.ravel()
    missing = [i for i, v in enumerate(flat) if _is_missing(v)]
    if missing:
        row = np.unravel_index(missing[0], y.shape)[0]
        return (f"it has {counted(len(missing), 'missing label')} (None or NaN, "
                f"first at row {row}); drop those rows or give them a label")
    strings = [v for v in flat if isinstance(v, str)]
    if strings and len(strings) < flat.size:
        other = next(v for v in flat if not isinstance(v, str))
        return (f"it mixes strings and other values (e.g. {shown(strings[0])} and "
                f"{shown(other)}); make every label a string, or every label a number")
    if not strings and all(isinstance(v, numbers.Number) for v in flat):
        return ("it is an object array of numbers, which scikit-learn does not take as "
                "labels; convert it, e.g. y.astype(int)")
    return None


def _check_fits_dtype(X, dtype):
    """X (finite: validate_data checked it) refused if a value lies beyond the range of the
    model's dtype (float64 X for a float32 network): the cast would make it inf, which the
    dense path reported as an inf in X and the sparse path turned into NaN probabilities."""
    if np.dtype(dtype).itemsize >= X.dtype.itemsize:
        return
    big = np.finfo(dtype).max
    values = X.data if sp.issparse(X) else X
    # the common case in two reductions, with no temporary the size of X (np.abs(X) > big
    # cost a predict_proba of a float32 model on float64 X two thirds of its time)
    if not values.size or (values.max() <= big and values.min() >= -big):
        return
    if sp.issparse(X):
        coo = sp.coo_matrix(X)
        at = np.flatnonzero(np.abs(coo.data) > big)
        rows, cols, values = coo.row[at], coo.col[at], coo.data[at]
    else:
        rows, cols = np.nonzero(np.abs(X) > big)
        values = X[rows, cols]
    if rows.size:
        first = np.lexsort((cols, rows))[0]
        raise ValueError(
            f"X has {counted(rows.size, 'value')} beyond the {np.dtype(dtype).name} range of "
            f"the model (|x| > {big:.4g}; first: row {rows[first]}, column {cols[first]}, "
            f"{float(values[first]):.6g}); scale X (e.g. StandardScaler in a Pipeline), or "
            "fit with dtype='float64'")


def _nonnegative_weights(sw):
    """sample_weight (already finite, one per row) refused if a weight is negative, naming
    the first such row as the caller numbered it (the kernels would name a row of a
    shuffled batch)."""
    negative = np.flatnonzero(sw < 0)
    if negative.size:
        raise ValueError(f"sample_weight must hold weights >= 0, got "
                         f"{counted(negative.size, 'negative weight')} (first: "
                         f"sample_weight[{negative[0]}] = {float(sw[negative[0]])!r})")
    return sw


def _finite_targets(y):
    """Regression targets as float64, refused unless finite.  scikit-learn's own check lets
    None through in an object y (it becomes NaN here), which trained into a NaN loss that
    was reported as a divergence with advice to lower the learning rate."""
    try:
        out = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"y must hold numbers (regression targets): {exc}") from None
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        raise ValueError(f"Input y contains {counted(bad, 'missing or non-finite value')} "
                         f"(NaN, inf or None); regression targets must be finite")
    return out


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by fastmlp on scikit-learn's half squared
    error.  Same parameters as :class:`MLPClassifier` without ``class_weight``, plus
    scikit-learn's ``loss`` (keyword only here; "squared_error", the only one offered).
    ``y`` may be 1-D or (n_samples, n_targets); ``predict`` returns 1-D for one target, in
    the network's dtype (float32 for float32 X, as scikit-learn)."""

    _loss = "mse"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, loss="squared_error",
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 optimizer=None, optimizer_kwargs=None, schedule=None, backend=None,
                 n_threads=None, dtype=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state,
            tol=tol, verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun,
            optimizer=optimizer, optimizer_kwargs=optimizer_kwargs, schedule=schedule,
            backend=backend, n_threads=n_threads, dtype=dtype)
        self.loss = loss

    def fit(self, X, y, sample_weight=None):
        """Train on (X, y) (``max_iter`` epochs or L-BFGS iterations at most); returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(lambda est: est._check_partial_fit())
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing the optimizer's state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _validate_input(self, X, y, reset):
        if self.loss != "squared_error":
            raise ValueError(f"loss must be 'squared_error' (fastmlp offers no 'poisson'), got "
                             f"{self.loss!r}")
        X, y = _validate_data(self, X, y, reset=reset, accept_sparse=["csr", "csc"],
                              multi_output=True, y_numeric=True,
                              dtype=[np.float64, np.float32])
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, _finite_targets(y)

    def _encode_targets(self, y, first, sw, classes):
        Y = np.asarray(y, dtype=np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        return Y, Y.shape[1], sw

    def _score_logits(self, out, Y, sw):
        return r2_score(Y, out.astype(np.float64), sample_weight=sw)

    def predict(self, X):
        """Predicted targets: (n_samples,) for one target, else (n_samples, n_targets)."""
        out = self._forward(X)
        return out[:, 0] if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
