"""Many models in one pass: a batch of K models of one architecture trained together.

``ModelBatch`` holds K models in ONE (K, n_params) buffer, each with its own initial
weights, optimizer type, hyper-parameters and schedule.  ``fit_batch`` trains all of them on
the same mini-batch sequence (or each on its own subset of the rows, for cross-validation)
through the batched kernels (``fastmlp.backends.batched``), with per-model row weights
(bootstrap counts, class weights).  Model k ends exactly where ``fit`` would take it alone
with the same rows in the same order: bit for bit against the single-model Numba kernel at
the same thread count (tests/test_batched.py).  ``fit_ensemble`` builds an ensemble whose
``predict_proba`` / ``predict`` return the members' mean and spread.

Memory is bounded and stated: ``batch_memory(...)`` gives the bytes a batch needs and
ModelBatch / fit_batch refuse a K that would exceed ``memory_limit``.
"""

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .. import backends
from .._validate import (DROP_THEM_FIRST, all_finite, check_bool, check_kwargs, check_positive,
                         check_seed, counted, sample_weight_array, shown)
from ..backends import _threads
from ..backends.batched import get_batched_backend, resolve_batched
from ..codes import N_HYPER, N_STATE, loss_code
from ..model import MLP
from ..optim import make_optimizer
from ..progress import progress_bar
from ..schedules import own_lr, warn_length
from .fit import fitted_standardization, set_trained_link, warn_large_inputs
from .fit_inputs import loss_and_targets, raw_training_rows, sample_weights, validation_pair
from .loop import (TRAIN_METRIC_ROWS, History, TrainingDiverged, EpochOrder, check_runaway,
                   divergence_advice, diverged_message, given_lr, kwargs_with_lr,
                   make_schedule, smaller_lr_advice, step_lrs, target_scale_advice)

#: default ceiling on what one batch may allocate (bytes); pass memory_limit= to change it
DEFAULT_MEMORY_LIMIT = 2 * 2 ** 30
#: optimizer state rows kept per model (the most any optimizer needs)
N_STATE_MAX = max(N_STATE.values())
_TILE = 256  # the fused kernels' largest tile (backends.numba.TILE)


def batch_memory(sizes, n_models, dtype, n_threads=1, n_slices=None, n_rows=0,
                 per_model_order=False, per_model_inputs=False):
    """Bytes a batch of ``n_models`` networks of layer ``sizes`` needs while it trains, by
    part: params + gradients (2 rows) and optimizer state (3 rows) per model; per thread the
    slice gradient buffers (n_slices rows) and the activations of one tile of rows;
    per-model row weights (and row orders) over ``n_rows`` rows; with ``per_model_inputs``
    each model's own copy of the ``n_rows`` network inputs (its own standardisation).
    Returns a dict with "total"."""
    item = np.dtype(dtype).itemsize
    n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    n_slices = n_threads if n_slices is None else n_slices
    tile_ws = _TILE * (sum(s + 1 for s in sizes) + sum(sizes[1:]) + 2 * max(sizes))
    parts = {
        "params_and_grads": 2 * n_models * n_params * item,
        "optimizer_state": N_STATE_MAX * n_models * n_params * item,
        "slice_gradients": n_threads * n_slices * n_params * item,
        "tile_activations": n_threads * (tile_ws + max((a + 1) * b for a, b in
                                                      zip(sizes[:-1], sizes[1:]))) * item,
        "row_weights": n_models * n_rows * item,
        "row_orders": (n_models if per_model_order else 1) * n_rows * 8,
        "model_inputs": (n_models * n_rows * sizes[0] * item if per_model_inputs else 0),
    }
    parts["total"] = sum(parts.values())
    return parts


def check_batch_memory(sizes, n_models, dtype, memory_limit=None, **kw):
    """Raise MemoryError naming K and the parts when the batch would exceed the limit."""
    limit = DEFAULT_MEMORY_LIMIT if memory_limit is None else \
        check_positive(memory_limit, "memory_limit")     # bytes
    need = batch_memory(sizes, n_models, dtype, **kw)
    if need["total"] > limit:
        per = {k: v for k, v in need.items() if k != "total" and v}
        detail = ", ".join(f"{k} {memory_text(v)}" for k, v in per.items())
        raise MemoryError(
            f"a batch of K={n_models} models of sizes {list(sizes)} needs "
            f"{memory_text(need['total'])} ({detail}), above memory_limit "
            f"{memory_text(limit)}; " + ("train fewer models per pass (split the candidates) "
                                  "or raise memory_limit" if n_models > 1 else
                                  "one model alone does not fit: raise memory_limit"))
    return need


def _check_finite_rows(params):
    """Refuse initial weights with NaN or inf: such a model "diverged" at step 1 with the
    advice to lower its lr and "kept its last finite parameters", which it never had."""
    bad = [k for k, row in enumerate(np.asarray(params, dtype=np.float64))
           if not all_finite(row)]
    if bad:
        raise ValueError(f"params must be finite initial weights; row(s) {bad[:10]} hold "
                         "NaN or inf")


def memory_text(nbytes):
    """A byte count in MiB, or KiB / bytes when that would print as 0.0 MiB (the memory
    messages of the batch and the recipes that size it)."""
    if nbytes >= 2 ** 20 / 10:
        return f"{nbytes / 2 ** 20:.1f} MiB"
    return f"{nbytes / 2 ** 10:.1f} KiB" if nbytes >= 2 ** 10 / 10 else f"{int(nbytes)} bytes"


def batch_threads(n_threads=None):
    """The thread count a batch will run with: n_threads, the process setting, or every CPU
    (an upper bound for the per-thread tile buffers).  n_threads=0 is refused, not read as
    "the default".  What ModelBatch's memory check assumes, so a caller sizing passes of
    models to a memory_limit must assume it too."""
    if n_threads is not None:
        return _threads.check(n_threads)
    return backends.get_num_threads() or os.cpu_count() or 1


def _per_model(value, k, what):
    """A per-model setting: one value for all models, or a list/tuple of k values."""
    if isinstance(value, (list, tuple)):
        if len(value) != k:
            raise ValueError(f"{what} must be one value or a list of {k} (one per model), "
                             f"got {len(value)}")
        return list(value)
    return [value] * k


class ModelBatch:
    """K models of ``base``'s architecture and contract in one (K, n_params) buffer.

    Initial weights: ``params`` (a (K, n_params) array), or ``seeds`` (model k initialised as
    ``MLP(base.layer_sizes, base.activation, seed=seeds[k])``), or neither: K copies of
    ``base.params`` (``n_models`` of them).
    optimizer, optimizer_kwargs, schedule: one value for every model or a list of K (each
    model its own type, learning rate, betas, momentum, weight decay, schedule...).
    memory_limit: bytes (default DEFAULT_MEMORY_LIMIT); a K that needs more is refused.
    ``optimizers[k]`` is model k's Optimizer (its params and state are views into the
    batch's buffers); ``model(k)`` / ``models()`` give standalone MLPs.  ``base`` is
    copied: nothing done to the batch changes the caller's model."""

    def __init__(self, base, n_models=None, *, seeds=None, params=None, optimizer="adam",
                 optimizer_kwargs=None, schedule=None, memory_limit=None, n_threads=None):
        if not isinstance(base, MLP):
            raise TypeError(f"base must be a fastmlp.MLP, got {type(base).__name__}")
        k = self._count(n_models, seeds, params)
        if params is not None and np.shape(params)[1] != base.n_params:
            raise ValueError(f"params must be a (K, {base.n_params}) array: one row of the "
                             f"{base.n_params} parameters of layer sizes "
                             f"{list(base.layer_sizes)} per model, got shape "
                             f"{np.shape(params)}")
        if params is not None:
            _check_finite_rows(params)
        nth = batch_threads(n_threads)
        self.memory = check_batch_memory(base.layer_sizes, k, base.dtype, memory_limit,
                                         n_threads=nth)
        self.memory_limit = memory_limit
        # the batch's own copy: fit_batch(standardize=True) stores the statistics here, never
        # in the caller's model (which a later batch on other rows would silently reuse)
        self.base = base.copy()
        self.params = np.empty((k, base.n_params), dtype=base.dtype)
        if params is not None:
            self.params[...] = params
        elif seeds is not None:
            for i, s in enumerate(seeds):
                self.params[i] = MLP(base.layer_sizes, base.activation, seed=s,
                                     dtype=base.dtype).params
        else:
            self.params[...] = base.params
        self.grads = np.zeros_like(self.params)
        self.states = np.zeros((k, N_STATE_MAX, base.n_params), dtype=base.dtype)
        self.optimizer_specs = list(zip(_per_model(optimizer, k, "optimizer"),
                                        _per_model(optimizer_kwargs, k, "optimizer_kwargs")))
        self.schedule_specs = _per_model(schedule, k, "schedule")
        self.optimizers = [self._build_optimizer(i, name, kw)
                           for i, (name, kw) in enumerate(self.optimizer_specs)]
        self.schedules = [self._build_schedule(i) for i in range(k)]
        self.loss = None
        # per-model standardisation (fit_batch with standardize and subsets sets them; None:
        # the base's contract)
        self.standardizations = [None] * k

    @staticmethod
    def _count(n_models, seeds, params):
        if params is not None:
            params = np.asarray(params)
            if params.ndim != 2:
                raise ValueError(f"params must be a (K, n_params) array, got {params.shape}")
            k = params.shape[0]
        elif seeds is not None:
            k = len(seeds)
        else:
            k = n_models
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"n_models must be a positive integer (or give seeds / params), "
                             f"got {shown(k)}")
        if n_models is not None and n_models != k:
            raise ValueError(f"n_models={n_models} but seeds / params give "
                             f"{counted(k, 'model')}")
        return int(k)

    def _build_optimizer(self, i, name, kw):
        if not isinstance(name, str):
            raise TypeError(f"optimizer must be a name (or a list of names), got {name!r}")
        try:
            opt = make_optimizer(name, self.params[i], **check_kwargs(kw, "optimizer_kwargs"))
        except (TypeError, ValueError) as err:
            # with a list of K optimizers / kwargs, "Adam: lr must be >= 0" alone left the
            # user to find which of them it meant
            raise self._naming_model(i, err, self.optimizer_specs) from None
        rows = opt.state.shape[0]
        self.states[i, :rows] = opt.state      # e.g. Adagrad's initial accumulator
        opt.state = self.states[i, :rows]      # the optimizer now reads the batch's buffer
        return opt

    def _build_schedule(self, i):
        """Model i's schedule from its spec and its optimizer's lr (an lr of 0 is refused
        here: "lr must be a positive number, got 0.0"; an lr given beside a schedule object
        must be the schedule's own: loop.check_schedule_lr), the error naming the model."""
        try:
            given = given_lr(None, self.optimizer_specs[i][1])
            sched = make_schedule(self.schedule_specs[i], self.optimizers[i].lr, given)
        except (TypeError, ValueError) as err:
            raise self._naming_model(i, err, self._model_specs()) from None
        base = own_lr(sched)
        if base is not None and given is None:   # as fit's: the rate the run starts from
            self.optimizers[i].lr = base
        return sched

    def learning_rates(self, k, step0, n):
        """Model k's learning rates of optimizer steps step0+1 .. step0+n (loop.step_lrs); a
        schedule that gives a negative or non-finite one is an error naming the model."""
        try:
            return step_lrs(self.schedules[k], step0, n)
        except ValueError as err:
            raise self._naming_model(k, err, self._model_specs()) from None

    def _model_specs(self):
        return list(zip(self.optimizer_specs, self.schedule_specs))

    def _naming_model(self, i, err, specs):
        """``err`` about model i, its message headed by which model it is ("model 2
        (optimizer 'adam', optimizer_kwargs {'lr': 0.0})": the index alone means little in
        a batch built from lists), unless every model has the same ``specs`` (then it is
        every model's error: none to name)."""
        if len({repr(spec) for spec in specs}) == 1:
            return err
        name, kw = self.optimizer_specs[i]
        sched = self.schedule_specs[i]
        label = f"optimizer {name!r}, optimizer_kwargs {kw!r}" + (
            f", schedule {sched!r}" if sched is not None else "")
        return type(err)(f"model {i} ({label}): {err}")

    @classmethod
    def copies(cls, model, n_models, **kw):
        """n_models copies of ``model`` (same initial weights)."""
        return cls(model, n_models, **kw)

    @classmethod
    def from_seeds(cls, base, seeds, **kw):
        """One model per seed (``base`` gives the architecture and contract)."""
        return cls(base, seeds=list(seeds), **kw)

    @property
    def n_models(self):
        return self.params.shape[0]

    def __len__(self):
        return self.n_models

    def __repr__(self):
        # which optimizers race: the one name when all share it, else each model's
        names = [n for n, _ in self.optimizer_specs]
        opts = repr(names[0]) if len(set(names)) == 1 else repr(names) if len(names) <= 8 \
            else f"{len(set(names))} kinds"
        return (f"ModelBatch(K={self.n_models}, sizes={list(self.base.layer_sizes)}, "
                f"dtype={self.base.dtype.name!r}, optimizer={opts}, "
                f"memory={memory_text(self.memory['total'])})")

    def opt_codes(self):
        return np.array([o.code for o in self.optimizers], dtype=np.int64)

    def hyper_matrix(self):
        h = np.zeros((self.n_models, N_HYPER))
        for i, o in enumerate(self.optimizers):
            h[i] = o.hyper_vector()
        return h

    def step_counts(self):
        return np.array([o.step_count for o in self.optimizers], dtype=np.int64)

    def model(self, k):
        """Model k as a standalone MLP (the base's contract, its own weights, and a copy of
        its optimizer with the state, so training can continue with fit)."""
        m = self.base.copy()
        m.params[...] = self.params[k]
        if self.standardizations[k] is not None:
            m.standardization = self.standardizations[k]
        if self.loss is not None:
            m.loss = None
            set_trained_link(m, self.loss)
        name, kw = self.optimizer_specs[k]
        opt = make_optimizer(name, m.params, **dict(kw or {}))
        opt.state[...] = self.optimizers[k].state
        opt.step_count = self.optimizers[k].step_count
        m.optimizer = opt
        return m

    def models(self):
        return [self.model(k) for k in range(self.n_models)]


@dataclass
class BatchHistory:
    """What fit_batch saw, per model: ``loss`` one (K,) array per epoch, the models' mean
    training mini-batch loss (NaN after a divergence; ``np.array(loss)`` is (epochs, K),
    ``model_loss(k)`` model k's), ``val_loss`` likewise with validation data, ``batch_loss``
    one list per model, ``diverged`` (K,) and ``diverged_step`` (K,) (0 if not),
    ``diverged_advice`` (K,) what each diverged model should change (fit's advice,
    loop.divergence_advice; None if it did not diverge), ``epoch_time`` and
    ``samples_per_s`` (model-samples per second of all K), ``lr`` one list per model of
    the learning rate of each step it took (its schedule's, as fit's History.lr)."""

    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    batch_loss: list = field(default_factory=list)
    diverged: np.ndarray = None
    diverged_step: np.ndarray = None
    diverged_advice: list = None
    epoch_time: list = field(default_factory=list)
    samples_per_s: list = field(default_factory=list)
    backend: str = None
    loss_name: str = None
    lr: list = field(default_factory=list)

    def __repr__(self):
        # the dataclass's repr printed every mini-batch loss and lr of every model
        K = 0 if self.diverged is None else len(self.diverged)
        last = np.asarray(self.loss[-1]) if self.loss else np.empty(0)
        live = last[np.isfinite(last)]
        span = f", last epoch's loss {live.min():.6g} to {live.max():.6g}" if live.size else ""
        return (f"BatchHistory({counted(K, 'model')}, {counted(len(self.loss), 'epoch')}"
                f"{span}; {int(np.sum(self.diverged)) if K else 0} diverged; backend "
                f"{self.backend!r}, loss {self.loss_name!r})")

    def model_loss(self, k):
        """Model k's epoch losses (a 1-D array)."""
        return np.array([e[k] for e in self.loss])

    def model_history(self, k):
        """Model k's training as a fit History (loss, val_loss, batch_loss, loss_name)."""
        return History(loss=self.model_loss(k).tolist(), batch_loss=list(self.batch_loss[k]),
                       val_loss=[float(v[k]) for v in self.val_loss],
                       lr=list(self.lr[k]) if self.lr else [],
                       backend=self.backend, loss_name=self.loss_name)


def _check_on_divergence(on_divergence):
    if on_divergence not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_divergence must be 'warn', 'raise' or 'ignore', got "
                         f"{on_divergence!r}")


def _model_diverged(hist, k, what="model", first=0):
    """The TrainingDiverged of model k of the batch (marked in hist.diverged), with fit's
    advice (hist.diverged_advice[k]): the batched kernels record only the step, so the
    message cannot say which of the four went non-finite.  It names the model "{what}
    {k + first}" (first=1 for folds, which the user sees numbered from 1).  The exception
    also carries ``model`` (k) and ``history`` (hist), so a caller can name it its own way."""
    step = int(hist.diverged_step[k])
    advice = None if hist.diverged_advice is None else hist.diverged_advice[k]
    name = f"{what} {k + first}"
    err = TrainingDiverged(diverged_message(
        "", f"non-finite loss, gradient, parameters or optimizer state at step {step}",
        "it keeps its last finite parameters", advice, head=f"{name} of the batch diverged"),
        step, name)
    err.model, err.history = k, hist
    return err


def check_batch_divergence(hist, on_divergence, what="model", first=0):
    """What fit does at the end of each model's run, model by model in order: a model whose
    loss or gradient went non-finite raises TrainingDiverged (fit raises that whatever
    ``on_divergence``), one that blew up while staying finite warns TrainingRunaway /
    raises / passes as loop.check_runaway decides for ``on_divergence`` ("warn", "raise",
    "ignore").  So a batched recipe warns and raises where its serial twin does.  ``what``
    and ``first``: how the message names model k (_model_diverged)."""
    _check_on_divergence(on_divergence)
    for k in range(len(hist.diverged)):
        if hist.diverged[k]:
            raise _model_diverged(hist, k, what, first)
        check_runaway(hist.model_history(k), on_divergence)


def run_batched(kernels, batch, X, Y, sw, perm, n_rows, batch_size, code, nslices=None):
    """One batched kernel call: every model runs its mini-batches of perm (rows
    perm[k, :n_rows[k]] in batches of batch_size[k]) with its schedule's learning rates;
    step counts advance by what each model completed.  Returns (batch_losses (K, nb) with
    NaN where a model did not run, done (K,))."""
    K = batch.n_models
    n_rows = np.asarray(n_rows, dtype=np.int64)
    batch_size = np.asarray(batch_size, dtype=np.int64)
    nb = -(-n_rows // batch_size)
    nb_max = int(nb.max(initial=0))
    steps = batch.step_counts()
    lrs = np.zeros((K, max(nb_max, 1)))
    for k in range(K):
        lrs[k, :nb[k]] = batch.learning_rates(k, int(steps[k]), int(nb[k]))
    losses = np.full((K, max(nb_max, 1)), np.nan)
    done = np.zeros(K, dtype=np.int64)
    kernels.batched_train_epoch(batch.params, batch.grads, batch.states, losses, done, X, Y,
                                sw, perm, n_rows, batch_size, lrs, steps, batch.opt_codes(),
                                batch.hyper_matrix(), batch.base.sizes_array,
                                batch.base.acts_array, code, nslices=nslices)
    for k in range(K):
        batch.optimizers[k].step_count += int(done[k])
        losses[k, done[k]:] = np.nan
    return losses, done


def batched_kernels(backend, base):
    """(name, module) of the batched kernels for ``backend`` (None: the model's backend): the
    batched twin of the single-model backend a serial run would use (so the batched and
    serial paths agree bit for bit), else the batched "auto" choice."""
    from ..backends.batched import available_batched_backends
    try:
        single = backends.resolve(backend if backend is not None else base.backend)
    except (RuntimeError, ValueError):
        if backend is not None:
            raise            # an unknown or unavailable backend asked for by name: say so
        single = None
    twin = single if single is not None and available_batched_backends()[single][0] else None
    name = resolve_batched(twin)
    return name, get_batched_backend(name)


def _batch_weights(base, loss, Y, sample_weight, class_weight, subsets, K):
    """Per-model row weights (K, N) - or (1, N) when every model shares them - computed as
    fit computes its sample weights (on each model's own rows when ``subsets`` is given)."""
    N = Y.shape[0]
    if sample_weight is not None:
        sample_weight = _row_weights(sample_weight, K, N)
    per_model = sample_weight is not None and sample_weight.ndim == 2
    rows = K if (per_model or subsets is not None) else 1
    sw = np.zeros((rows, N), dtype=np.float64)
    for k in range(rows):
        swk = sample_weight[k] if per_model else sample_weight
        if subsets is None:
            sw[k] = sample_weights(base, loss, Y, swk, class_weight)
        else:
            sub = subsets[k]
            sw[k, sub] = sample_weights(base, loss, Y[sub],
                                        None if swk is None else swk[sub], class_weight)
        if not sw[k].sum() > 0:
            raise ValueError(f"all training sample weights of model {k} are zero")
    return np.ascontiguousarray(sw, dtype=base.dtype)


def _row_weights(sample_weight, K, N, who="model"):
    """sample_weight as a float64 array of shape (N,) (one weight per row, shared) or (K, N)
    (one row of them per model); any other shape is refused, naming both."""
    w = sample_weight_array(sample_weight)
    if w.shape not in ((N,), (K, N)):
        raise ValueError(f"sample_weight must have shape ({N},) or ({K}, {N}) (one weight per "
                         f"row, or one row of them per {who}), got {w.shape}")
    return w


def _check_subsets(subsets, K, N):
    if subsets is None:
        return None
    if len(subsets) != K:
        raise ValueError(f"subsets must hold one row-index array per model ({K}), got "
                         f"{len(subsets)}")
    out = []
    for k, s in enumerate(subsets):
        s = np.asarray(s)
        # a float index would be truncated and a 2-D one flattened: silently other rows
        if s.ndim != 1 or (s.dtype.kind not in "biu" and s.size):
            raise ValueError(f"subsets[{k}] must be a 1-D array of integer row indices (or a "
                             f"boolean row mask), got dtype {s.dtype} and shape {s.shape}")
        if s.dtype == np.bool_:     # a row mask: its rows (as int64 it read as rows 0 and 1)
            if s.shape != (N,):
                raise ValueError(f"subsets[{k}] is a boolean mask of shape {s.shape}; a mask "
                                 f"needs one entry per row, ({N},)")
            s = np.flatnonzero(s)
        s = s.astype(np.int64)
        if s.size == 0 or s.min() < 0 or s.max() >= N:
            raise ValueError(f"subsets[{k}] must be a non-empty array of row indices in "
                             f"0..{N - 1}")
        out.append(s)
    return out


class _RowOrders:
    """The row order of every epoch for every model, drawn exactly as fit draws it: one
    Generator from ``seed`` per distinct row set (a train-metric subset first when the set
    has more than TRAIN_METRIC_ROWS rows, as fit does), then ``EpochOrder`` per epoch.  The
    (orders, width) buffer is reused: it is only valid until the next epoch."""

    def __init__(self, n, subsets, seed, batch_size):
        self.sizes = [n] if subsets is None else [s.size for s in subsets]
        self.subsets = subsets
        self.rngs = [np.random.default_rng(seed) for _ in self.sizes]
        for rng, m in zip(self.rngs, self.sizes):
            if m > TRAIN_METRIC_ROWS:
                rng.choice(m, TRAIN_METRIC_ROWS, replace=False)
        self.bs = np.array([m if batch_size is None else min(int(batch_size), m)
                            for m in self.sizes], dtype=np.int64)
        self.width = max(self.sizes)
        self._draw = EpochOrder()
        self._perm = np.zeros((len(self.sizes), self.width), dtype=np.int64)

    def steps(self, n_models, epochs):
        """Each model's optimizer steps in ``epochs`` epochs (without subsets every model
        follows the one order)."""
        per = [epochs * -(-m // int(bs)) for m, bs in zip(self.sizes, self.bs)]
        return per * n_models if len(per) == 1 else per

    def next_epoch(self):
        """perm (1 or K, width) and n_rows per order."""
        perm = self._perm
        for i, (rng, m, bs) in enumerate(zip(self.rngs, self.sizes, self.bs)):
            order = self._draw(rng, m) if bs < m else np.arange(m)
            perm[i, :m] = order if self.subsets is None else self.subsets[i][order]
        return perm, np.array(self.sizes, dtype=np.int64)


def fit_batch(batch, X, y, loss=None, batch_size=256, epochs=10, seed=0, sample_weight=None,
              class_weight=None, subsets=None, validation=None, standardize=False,
              backend=None, n_threads=None, nslices=None, progress=False,
              on_divergence="record"):
    """Train every model of ``batch`` in place; returns a BatchHistory.

    Every model sees the same mini-batch sequence that ``fit(model, X, y, seed=seed,
    validation=None, batch_size=...)`` would draw, so model k ends where fit would have
    taken it alone (bit for bit with the Numba kernels at the same thread count).
    X: raw features (the base model's contract turns them into network inputs).
    sample_weight: None, (N,) for every model, or (K, N): per-model row weights (bootstrap
        counts, a fold mask); class_weight multiplies them as in fit.
    subsets: None, or one array of row indices per model: model k trains on X[subsets[k]]
        only, with the row order fit(model, X[subsets[k]], ..., seed=seed) would draw
        (cross-validation folds in one pass).
    validation: None or (X_val, y_val): every model's validation loss per epoch.
    standardize: when the base has no standardisation, compute it from the training rows
        as fit does: from all of X into the batch's copy of the base's contract (shared by
        every model; the caller's model is left as it was), or with
        subsets from each model's own rows (each fold its own statistics, no leakage; the
        kernels then get one copy of the network inputs per model, K x N x n_inputs).
    nslices: row slices per batch in the Numba kernel (None: its thread count now); fixes
        the rounding, so a batch run at any thread count matches fit at nslices threads.
    on_divergence: "record" (a model whose loss or gradient goes non-finite stops there,
        keeps its last finite parameters and is marked in ``diverged``; the others go on)
        or "raise" (TrainingDiverged for the first such model after the epoch; its ``model``
        is k, its ``history`` the BatchHistory so far).  Either way the message of a
        diverged model says what to change, as fit's does (hist.diverged_advice).
    """
    if not isinstance(batch, ModelBatch):
        raise TypeError(f"batch must be a ModelBatch, got {type(batch).__name__}")
    check_positive(epochs, "epochs", integer=True)
    check_seed(seed)
    check_bool(standardize, "standardize")
    if batch_size is not None:
        check_positive(batch_size, "batch_size", integer=True)
    if nslices is not None:     # every backend's, not only the Numba kernel's (which reads it)
        check_positive(nslices, "nslices", integer=True)
    if on_divergence not in ("record", "raise"):
        raise ValueError(f"on_divergence must be 'record' or 'raise', got {on_divergence!r}")
    base, K = batch.base, batch.n_models
    X, y_arr, _ = raw_training_rows(base, X, y, None, False, DROP_THEM_FIRST)
    subsets = _check_subsets(subsets, K, X.shape[0])
    nth = batch_threads(n_threads)
    batch.memory = check_batch_memory(     # before _network_inputs allocates what it counts
        base.layer_sizes, K, base.dtype, batch.memory_limit, n_threads=nth, n_slices=nslices,
        n_rows=X.shape[0], per_model_order=subsets is not None,
        per_model_inputs=own_standardization(batch, standardize, subsets))
    X = _network_inputs(batch, X, standardize, subsets)
    warn_large_inputs(base, X.reshape(-1, X.shape[-1]), "X")
    loss, Y = loss_and_targets(base, X[0] if X.ndim == 3 else X, y_arr, loss)
    code = loss_code(loss)
    sw = _batch_weights(base, loss, Y, sample_weight, class_weight, subsets, K)
    orders = _RowOrders(Y.shape[0], subsets, seed, batch_size)
    warn_length(batch.schedules, orders.steps(K, epochs))
    if validation is not None and not (isinstance(validation, tuple) and len(validation) == 2):
        raise ValueError("validation must be None or an (X_val, y_val) pair of raw rows, got "
                         f"{type(validation).__name__} (fit_batch does not split off a "
                         "fraction: every model must see the same validation rows)")
    val = None if validation is None else validation_pair(base, loss, *validation)
    if val is not None and X.ndim == 3:
        # each model its own standardisation (subsets): each its own validation inputs
        val = (np.stack([validation_pair(_with_standardization(base, st), loss,
                                         *validation)[0]
                         for st in batch.standardizations]),) + val[1:]
    batch.loss = loss
    name, kernels = batched_kernels(backend, base)
    hist = BatchHistory(batch_loss=[[] for _ in range(K)], lr=[[] for _ in range(K)],
                        diverged=np.zeros(K, bool), diverged_step=np.zeros(K, np.int64),
                        diverged_advice=[None] * K, backend=name, loss_name=loss)
    bar = progress_bar(epochs, "fit_batch", "epoch", enabled=progress)
    try:
        with backends.threads(n_threads):
            for _ in range(epochs):
                _batch_epoch(kernels, batch, X, Y, sw, orders, code, nslices, hist)
                if val is not None:
                    hist.val_loss.append(batch_val_loss(kernels, batch, *val, code))
                live = hist.loss[-1][np.isfinite(hist.loss[-1])]   # none when all diverged
                mean = f"{live.mean():.5f}" if live.size else "n/a"
                bar.update(line=f"epoch {len(hist.loss)}/{epochs}  mean loss {mean}  "
                                f"{int(hist.diverged.sum())} diverged")
                if on_divergence == "raise" and hist.diverged.any():
                    k = int(np.argmax(hist.diverged))
                    raise _model_diverged(hist, k)
                if hist.diverged.all():
                    break
    finally:
        bar.close()
    return hist


def own_standardization(batch, standardize, subsets):
    """Whether fit_batch standardises each model with its own rows' statistics (standardize
    with subsets and a base without a standardisation): the kernels then get one copy of
    the network inputs per model, K x N x n_inputs, which its memory check counts."""
    return bool(standardize and subsets is not None and batch.base.standardization is None)


def _network_inputs(batch, X, standardize, subsets):
    """The kernels' x from raw rows X (float32 or float64): (N, n_inputs) through the base's
    contract, or (K, N, n_inputs) when each subset gets its own standardisation (standardize
    with subsets and a base without one)."""
    base = batch.base
    if not standardize or base.standardization is not None:
        return base.transform_inputs(X)
    if subsets is None:
        base.standardization = fitted_standardization(base, X)   # fit's statistics and checks
        return base.transform_inputs(X)
    out = np.empty((batch.n_models,) + X.shape, dtype=base.dtype)
    for k, sub in enumerate(subsets):
        m = _with_standardization(base, fitted_standardization(base, X[sub]))
        batch.standardizations[k] = m.standardization
        out[k] = m.transform_inputs(X)
    return out


def _batch_epoch(kernels, batch, X, Y, sw, orders, code, nslices, hist):
    """One epoch of every model still training; records losses and divergences."""
    K = batch.n_models
    perm, n_per_order = orders.next_epoch()
    n_rows = np.broadcast_to(n_per_order, (K,)).copy()
    n_rows[hist.diverged] = 0                     # a diverged model trains no further
    bs = np.broadcast_to(orders.bs, (K,)).copy()
    steps0 = batch.step_counts()
    snapshot, states0 = batch.params.copy(), batch.states.copy()
    t0 = time.perf_counter()
    losses, done = run_batched(kernels, batch, X, Y, sw, perm, n_rows, bs, code, nslices)
    dt = time.perf_counter() - t0
    epoch_loss = np.full(K, np.nan)
    for k in range(K):
        if hist.diverged[k]:
            continue
        nb = -(-int(n_rows[k]) // int(bs[k]))
        hist.batch_loss[k].extend(losses[k, :done[k]].tolist())
        # the rates of the steps taken (run_batched's, from the schedule), as fit records
        # them: a warm-up compared across models had no lr curve to plot
        hist.lr[k].extend(batch.learning_rates(k, int(steps0[k]), int(done[k])).tolist())
        # as run_epoch: non-finite parameters or optimizer state (Adam's squared gradients
        # overflowing on huge inputs, with a finite loss) count as a divergence too
        bad_params = not (all_finite(batch.params[k]) and all_finite(batch.states[k]))
        if done[k] < nb or bad_params:
            if bad_params:                       # as run_epoch: back to the epoch's start
                batch.params[k] = snapshot[k]
                batch.states[k] = states0[k]
                batch.optimizers[k].step_count = int(steps0[k])
            hist.diverged[k] = True
            hist.diverged_step[k] = steps0[k] + (done[k] + 1 if not bad_params else 1)
            # the lr of the step that stopped the kernel, else (parameters or state found
            # non-finite after a complete epoch) the epoch's last lr: run_epoch's choice
            lr_step = steps0[k] + min(int(done[k]) + 1, nb)
            hist.diverged_advice[k] = _diverged_advice(batch, k, X, orders.subsets, lr_step,
                                                       (Y, code))
            continue
        rows = np.full(nb, bs[k], dtype=np.float64)
        rows[-1] = n_rows[k] - bs[k] * (nb - 1)
        epoch_loss[k] = float(np.dot(losses[k, :nb], rows)) / n_rows[k]
    hist.loss.append(epoch_loss)
    hist.epoch_time.append(dt)
    hist.samples_per_s.append(float(n_rows.sum()) / dt if dt > 0 else math.inf)


def _diverged_advice(batch, k, X, subsets, step, targets):
    """What model k should change after diverging, in fit's words (loop.divergence_advice):
    judged on model k's own network inputs (the kernels' X - its own copy when each model
    has its own standardisation - restricted to its subset's rows) under its own
    standardisation, with the lr its schedule gave optimizer step ``step``; ``targets``:
    (Y, loss code), for loop.target_scale_advice."""
    rows = X[k] if X.ndim == 3 else X
    if subsets is not None:
        rows = rows[subsets[k]]
    st = batch.standardizations[k]
    model = batch.base if st is None else _with_standardization(batch.base, st)
    lr = batch.learning_rates(k, int(step) - 1, 1)[0]
    return divergence_advice(model, rows, target_scale_advice(*targets, smaller_lr_advice(lr)))


def _with_standardization(base, st):
    """A copy of base whose inputs are standardised by st (a subset's own statistics)."""
    m = base.copy()
    m.standardization = st
    return m


def batch_val_loss(kernels, batch, Xv, Yv, swv, code):
    """(K,) loss of every model on network inputs Xv (the batched forward, the reference
    loss); Xv (K, N, n_inputs) gives each model its own inputs (own standardisation)."""
    from ..backends import reference
    out = np.empty((batch.n_models, Xv.shape[-2], batch.base.n_outputs),
                   dtype=batch.base.dtype)
    sz, ac = batch.base.sizes_array, batch.base.acts_array
    if Xv.ndim == 3:
        for k in range(batch.n_models):
            kernels.batched_forward(out[k:k + 1], batch.params[k:k + 1], Xv[k], sz, ac)
    else:
        kernels.batched_forward(out, batch.params, Xv, sz, ac)
    return np.array([reference.loss_grad(np.empty_like(o), o, Yv, swv, code) for o in out])


class Ensemble:
    """Members trained together (fit_ensemble).  ``predict_proba(X)`` returns (mean, std)
    of the members' class probabilities, (n, n_classes) each; ``predict(X)`` returns
    (mean, std) of the members' predictions for a regressor, and for a classifier the
    labels of the mean probabilities under the members' contract (their stored cut).
    ``members``: the standalone MLPs; ``history``: the BatchHistory of their training."""

    def __init__(self, members, history=None):
        self.members = list(members)
        if not self.members or not all(isinstance(m, MLP) for m in self.members):
            raise ValueError(f"members must be a non-empty list of fastmlp.MLP, got "
                             f"{members!r}")
        self.history = history

    def __len__(self):
        return len(self.members)

    def __repr__(self):
        return f"Ensemble({len(self.members)} x {self.members[0]!r})"

    def member_proba(self, X):
        """(n_members, n, n_classes) probabilities of every member."""
        return np.stack([m.predict_proba(X) for m in self.members])

    def predict_proba(self, X):
        p = self.member_proba(X)
        return p.mean(axis=0), p.std(axis=0)

    def predict(self, X):
        if self.members[0].link == "identity":
            v = np.stack([m.predict(X) for m in self.members])
            return v.mean(axis=0), v.std(axis=0)
        # the members' contract labels the mean: their stored cut, -1 where not finite
        return self.members[0].labels_of(self.predict_proba(X)[0])


def fit_ensemble(make_model, X, y, n_members=16, bootstrap=True, seed=0, epochs=10,
                 batch_size=256, optimizer="adam", lr=None, optimizer_kwargs=None,
                 schedule=None, loss=None, sample_weight=None, class_weight=None,
                 standardize=False, backend=None, n_threads=None, progress=False,
                 memory_limit=None, on_divergence="warn"):
    """Train ``n_members`` models of ``make_model()``'s architecture in one pass and return
    an Ensemble (mean and spread of the members' predictions: uncertainty estimates).

    Member i starts from its own initial weights (the base's initialiser with a seed drawn
    from ``seed``) and, with ``bootstrap=True``, weighs the rows by its bootstrap counts (N
    draws with replacement); all members share one row order (X is read once per batch).
    A member is what fit would give trained alone with the same weights and row order.
    Other arguments: as fit_batch / fit.  A diverged member raises TrainingDiverged
    ("member k of the batch diverged: ...", with fit's advice on what to change); one
    that blew up while staying finite warns / raises as ``on_divergence`` says (fit's rule,
    loop.check_runaway)."""
    base = make_model() if callable(make_model) else None
    if not isinstance(base, MLP):
        raise TypeError("make_model must be a callable returning a fresh fastmlp.MLP, got "
                        f"{type(base).__name__ if base is not None else make_model!r}")
    check_positive(n_members, "n_members", integer=True)
    check_seed(seed)
    check_bool(bootstrap, "bootstrap")
    check_bool(standardize, "standardize")
    _check_on_divergence(on_divergence)     # before training, not after it
    ss = np.random.SeedSequence(seed)
    init_seeds = [int(s.generate_state(1)[0]) for s in ss.spawn(n_members)]
    kw = kwargs_with_lr(check_kwargs(optimizer_kwargs, "optimizer_kwargs"), lr)
    batch = ModelBatch(base, seeds=init_seeds, optimizer=optimizer, optimizer_kwargs=kw,
                       schedule=schedule, memory_limit=memory_limit, n_threads=n_threads)
    # a table -> its feature array
    X, y, _ = raw_training_rows(base, X, y, None, False, DROP_THEM_FIRST)
    n = X.shape[0]
    # checked here, naming members: (1,) or (n_members,) would broadcast over the bootstrap
    # counts unnoticed, and fit_batch's own check speaks of models
    weights = None if sample_weight is None else _row_weights(sample_weight, n_members, n,
                                                              "member")
    # the batch's memory with its rows, checked before the K x n bootstrap counts exist
    check_batch_memory(base.layer_sizes, n_members, base.dtype, batch.memory_limit,
                       n_threads=batch_threads(n_threads), n_rows=n)
    if bootstrap:
        rng = np.random.default_rng(ss.spawn(1)[0])
        counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                           for _ in range(n_members)]).astype(np.float64)
        weights = counts if weights is None else counts * weights
    try:
        hist = fit_batch(batch, X, y, loss=loss, batch_size=batch_size, epochs=epochs,
                         seed=seed, sample_weight=weights, class_weight=class_weight,
                         standardize=standardize, backend=backend, n_threads=n_threads,
                         progress=progress, on_divergence="raise")
    except TrainingDiverged as err:     # fit_batch names a "model"; here it is a member
        raise _model_diverged(err.history, err.model, "member") from None
    check_batch_divergence(hist, on_divergence, "member")
    return Ensemble(batch.models(), hist)


__all__ = ["ModelBatch", "fit_batch", "fit_ensemble", "Ensemble", "BatchHistory",
           "batch_memory", "check_batch_memory", "batch_threads", "run_batched",
           "DEFAULT_MEMORY_LIMIT"]
