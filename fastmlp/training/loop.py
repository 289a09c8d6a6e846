"""The ONE epoch loop every training path runs (fit, fit_stream, Dask, MPI).

``train_epochs`` owns what is the same everywhere: History, the train metric, validation,
early stopping, callbacks, progress, the runaway-loss check and divergence.  A path plugs in
only what differs: ``epoch_fn(epoch)``, which trains one epoch however its batches arrive
(one in-memory array, chunks of a file, shards on Dask workers, slices on MPI ranks) and
returns (sum of batch loss x rows, rows, seconds).  ``run_epoch`` is the building block of
those: one compiled ``backend.train_epoch`` call over a row order.
"""

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import backends
from ..backends import tuning
from .._validate import (LARGE_INPUT, all_finite, check_kwargs, check_positive, counted,
                         largest_input)
from ..codes import LOSSES
from ..optim import Optimizer, make_optimizer
from ..progress import progress_bar
from ..schedules import Constant, from_spec, own_lr

# Train-set metrics are computed on at most this many rows per epoch (a fixed subset), so
# that bookkeeping stays small beside an epoch over millions of rows.
TRAIN_METRIC_ROWS = 10_000


class TrainingDiverged(FloatingPointError):
    """Training produced a non-finite loss or gradient.  ``step`` is the 1-based optimizer
    step whose batch went non-finite (the model holds the parameters after ``step - 1``);
    ``where`` says where in training it happened (an epoch number or a description)."""

    def __init__(self, message, step, where):
        super().__init__(message)
        self.step = step
        self.where = where


@dataclass
class History:
    """What fit() saw.  Per epoch: ``loss`` (mean training mini-batch loss), ``val_loss``,
    ``metrics`` (``accuracy`` on a fixed training subset of up to 10,000 rows and
    ``val_accuracy`` for classifiers; ``rmse`` / ``val_rmse`` for regression),
    ``samples_per_s`` and ``epoch_time``.  Per optimizer step: ``lr`` and ``batch_loss``."""

    loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    lr: list = field(default_factory=list)
    batch_loss: list = field(default_factory=list)
    samples_per_s: list = field(default_factory=list)
    epoch_time: list = field(default_factory=list)
    best_epoch: int = None
    stopped_early: bool = False
    runaway: bool = False
    backend: str = None
    loss_name: str = None
    optimizer: object = None

    @property
    def epochs(self):
        return len(self.loss)

    def __repr__(self):
        # the dataclass's repr printed every mini-batch loss and lr (a notebook cell of
        # thousands of numbers for one run): the run in one line, the lists as attributes
        parts = [counted(self.epochs, "epoch"), counted(len(self.batch_loss), "step")]
        if self.loss:
            parts.append(f"loss {self.loss[0]:.6g} -> {self.loss[-1]:.6g}")
        if self.val_loss:
            parts.append(f"val_loss {self.val_loss[-1]:.6g}")
        parts += [f"{k} {v[-1]:.4g}" for k, v in self.metrics.items() if v]
        if self.best_epoch is not None:
            parts.append(f"best epoch {self.best_epoch}")
        parts += [w for w, on in (("stopped early", self.stopped_early),
                                  ("runaway", self.runaway)) if on]
        return f"History({', '.join(parts)}, backend {self.backend!r})"

    def _add(self, name, value):
        self.metrics.setdefault(name, []).append(value)


def loss_and_metric(model, kernels, X, Y, sw, code, with_loss=True):
    """(loss, metric) of the model on the rows X with targets Y and row weights sw, through
    the training backend's forward pass (``kernels``) and the loss ``code``: the metric is
    the RMSE for mse, else the accuracy.  The loss is None unless with_loss: the per-epoch
    training metric needs only the metric, and the loss in NumPy cost as much as the
    forward pass."""
    out = np.empty((X.shape[0], model.n_outputs), dtype=model.dtype)
    kernels.mlp_forward(out, model.params, X, model.sizes_array, model.acts_array)
    value = None
    if with_loss:
        from ..backends import reference
        value = reference.loss_grad(np.empty_like(out), out, Y, sw, code)
    if LOSSES[code] == "mse":
        return value, float(np.sqrt(np.mean((out - Y) ** 2)))
    pred = (out[:, 0] >= 0) if model.n_outputs == 1 else out.argmax(axis=1)
    return value, float(np.mean(pred == Y[:, 0]))


def build_optimizer(model, optimizer, lr, optimizer_kwargs):
    """fit's ``optimizer`` argument as an Optimizer on ``model.params``: a name (built with
    ``optimizer_kwargs`` and ``lr``) or an existing Optimizer (continued; ``lr`` resets its
    rate; ``optimizer_kwargs`` are refused, as make_optimizer refuses them: the object was
    built with its own)."""
    if isinstance(optimizer, Optimizer):
        if optimizer.params is not model.params:
            raise ValueError("optimizer was built on another parameter buffer; build it on "
                             "model.params")
        kwargs = check_kwargs(optimizer_kwargs, "optimizer_kwargs")
        make_optimizer(optimizer, model.params, **kwargs)    # refuses them: said there
        if lr is not None:
            optimizer.lr = float(lr)
        return optimizer
    return make_optimizer(optimizer, model.params, **kwargs_with_lr(optimizer_kwargs, lr))


def kwargs_with_lr(optimizer_kwargs, lr):
    """A copy of ``optimizer_kwargs`` with ``lr`` in it (None: as given).  An lr given both
    ways and differing is refused: one of them silently won (fit's)."""
    kw = dict(optimizer_kwargs or {})
    if lr is not None:
        if "lr" in kw and kw["lr"] != lr:
            raise ValueError(f"lr={lr!r} and optimizer_kwargs['lr']={kw['lr']!r} disagree; "
                             "give the learning rate once")
        kw["lr"] = lr
    return kw


def make_schedule(schedule, lr, given_lr=None):
    """fit's ``schedule`` argument as a callable step -> lr: None (constant ``lr``), a
    callable, or a spec string for fastmlp.schedules.from_spec (which starts from ``lr``).
    ``given_lr``: the lr the caller gave explicitly (fit's ``lr`` or optimizer_kwargs'; None:
    none), refused when it disagrees with a schedule object's own (check_schedule_lr)."""
    if schedule is None:
        return Constant(lr)
    if isinstance(schedule, str):
        return from_spec(schedule, lr)
    if callable(schedule):
        check_schedule_lr(schedule, given_lr)
        return schedule
    raise ValueError(f"schedule must be None, a callable or a spec string, got {schedule!r}")


def given_lr(lr, optimizer_kwargs):
    """The learning rate a caller gave explicitly: ``lr``, else optimizer_kwargs' "lr", else
    None (make_schedule's ``given_lr``)."""
    if lr is not None:
        return lr
    return check_kwargs(optimizer_kwargs, "optimizer_kwargs").get("lr")


def check_schedule_lr(schedule, given_lr):
    """A schedule object (fastmlp.schedules' classes) sets the rate of every step from its
    own lr, so an explicit lr that differs would be ignored without a word (fit(lr=0.01,
    schedule=Cosine(0.5, T)) trained at 0.5): refused, saying how to give the rate once.
    A plain callable's rate is unknown: taken on trust."""
    own = own_lr(schedule)
    # equal up to float32 rounding: Cosine(np.float32(0.1)) is lr=0.1's schedule
    if given_lr is None or own is None or math.isclose(float(given_lr), own, rel_tol=1e-7):
        return
    raise ValueError(f"lr={given_lr!r} disagrees with the schedule's own lr {own!r} "
                     f"({schedule!r}): a schedule object sets the learning rate of every "
                     "step, so lr would be ignored; give the rate once: leave lr out, build "
                     f"the schedule with lr={given_lr!r}, or pass it as a spec string (e.g. "
                     "'cosine:T=1000'), which starts from lr")


def training_setup(model, optimizer, lr, optimizer_kwargs, schedule, backend,
                   batch_size=None):
    """(optimizer, schedule, backend name, kernel module) for a training loop (thread counts
    are scoped by the caller: ``with backends.threads(n_threads)``).  "auto" with a known
    batch size is the backend measured fastest for this shape class on this CPU
    (fastmlp.backends.tuning: measured once, cached per CPU; FASTMLP_NO_TUNE=1: static)."""
    given = given_lr(lr, optimizer_kwargs)
    if callable(schedule) and not isinstance(schedule, str):
        check_schedule_lr(schedule, given)    # before the caller's optimizer changes
    opt = build_optimizer(model, optimizer, lr, optimizer_kwargs)
    sched = make_schedule(schedule, opt.lr)      # its lr checked above
    base = own_lr(sched)
    if base is not None and given is None:
        # the optimizer says the rate the run starts from (a schedule object's own), and
        # keeps it: a continued fit (or a resumed checkpoint) builds from the same base
        opt.lr = base
    wanted = backends.requested(backend if backend is not None else model.backend)
    if wanted == "auto" and batch_size is not None:
        name = tuning.choose_backend(model.layer_sizes, batch_size, model.dtype)
    else:
        name = backends.resolve(wanted)
    return opt, sched, name, backends.get_backend(name)


class EpochOrder:
    """The rows of each epoch in random order, in a buffer kept from one epoch to the next.

    ``order(rng, n, kernels)`` draws one 64-bit key from the Generator ``rng`` and returns
    ``epoch_permutation(out, key)``: a uniform random permutation of range(n), the same in
    every backend and on any number of threads, so the order depends on the seed only.  It
    is a bucketed Fisher-Yates shuffle that works from the cache: 4 ms for 2M rows on 2
    threads here, where u = rng.random(n) plus a Fisher-Yates shuffle of the whole array
    took 17 ms inside fit (a cache miss per row) and rng.permutation(n) 21 ms, beside a 170
    ms epoch of the fused C step on a 5-32-32-1 net.  When ``kernels`` (the backend that
    will train on the order) takes int32 row orders (its ROW_ORDER_INT32: the C kernels) and
    n <= 2^31, the order is int32, drawn by that backend: the same permutation in half the
    bytes to write, shuffle and read (inside fit, right after an epoch, 7.7-8.9 ms ->
    5.4-7.3 ms for 2M rows on the Intel Xeon; the trained model is the same).
    Otherwise it is int64, from the fastest available backend.  The buffers are reused
    because first touching 16 MB of fresh pages every epoch cost as much again.  The
    returned array is only valid until the next call.

    ``ahead(rng, n, kernels)``: where the kernels build the next epoch's order during this
    epoch's training call (their NEXT_ORDER: the C kernels, ``train_epoch(...,
    next_order=(out, key))``), the (out, key) for that call: the key the next call will
    draw (peeked from a copy of ``rng``), and the buffer this call did not return.  After
    the training call returned, ``filled(pair)`` says so, and the next call returns that
    buffer when it draws that key for the same n (if anything else drew from ``rng`` in
    between, it does not, and the order is built as usual).  Either way the order is the
    permutation of the key drawn: the same rows in the same order, ~5 ms earlier."""

    def __init__(self):
        self._out = {}          # dtype -> [buffers]: one, two once ahead is used
        self._current = None    # the buffer the last call returned
        self._ready = None      # (key, array) filled by the kernels: the next call's order

    def _buffer(self, dt, n, avoid=None):
        bufs = self._out.setdefault(dt, [])
        for b in bufs:
            if b.shape[0] >= n and not (avoid is not None and np.shares_memory(b, avoid)):
                return b[:n]
        bufs.append(np.empty(n, dtype=dt))
        if len(bufs) > 2:          # a larger n than before: keep two buffers
            del bufs[0]
        return bufs[-1][:n]

    @staticmethod
    def _int32(n, kernels):
        return getattr(kernels, "ROW_ORDER_INT32", False) and n <= 2 ** 31

    def __call__(self, rng, n, kernels=None):
        small = self._int32(n, kernels)
        dt = np.dtype(np.int32 if small else np.int64)
        key = int(rng.integers(0, 2 ** 64, dtype=np.uint64))
        ready, self._ready = self._ready, None
        if ready is not None and ready[0] == key and ready[1].shape[0] == n \
                and ready[1].dtype == dt:
            self._current = ready[1]
            return ready[1]
        out = self._buffer(dt, n)   # the caller is done with the order it had last
        (kernels if small else backends.get_backend("auto")).epoch_permutation(out, key)
        self._current = out
        return out

    def ahead(self, rng, n, kernels):
        """(out, key) for kernels.train_epoch's next_order, or None (see the class)."""
        self._ready = None
        if not (getattr(kernels, "NEXT_ORDER", False) and self._int32(n, kernels)):
            return None
        bg = type(rng.bit_generator)()
        bg.state = rng.bit_generator.state
        key = int(np.random.Generator(bg).integers(0, 2 ** 64, dtype=np.uint64))
        return self._buffer(np.dtype(np.int32), n, avoid=self._current), key

    def filled(self, pair):
        """The kernels wrote pair = (out, key) (ahead's): the next call may return it."""
        self._ready = (pair[1], pair[0])


def epoch_order(rng, n):
    """One epoch's row order in a fresh array: the permutation EpochOrder()(rng, n) gives."""
    return EpochOrder()(rng, n)


def step_lrs(sched, step0, k):
    """The learning rates of optimizer steps step0+1 .. step0+k, checked."""
    if type(sched) is Constant:  # no per-step Python call for the common case
        sched(step0)             # the schedule's own check of the step
        lrs = np.full(k, float(sched.lr))
    else:
        lrs = np.array([sched(step0 + i) for i in range(k)], dtype=np.float64)
    if not (np.isfinite(lrs).all() and (lrs >= 0).all()):
        raise ValueError(f"schedule returned an invalid learning rate (negative or not finite) "
                         f"at steps {step0 + 1}..{step0 + k}")
    return lrs


class EarlyStopping:
    """fit's ``early_stopping``: None/False (off), True (patience 5), a patience in epochs, or
    {"patience": p, "min_delta": d}.  ``update`` after each epoch's validation loss says
    whether to stop (no improvement by more than min_delta for ``patience`` epochs);
    ``restore`` puts the best parameters back."""

    def __init__(self, early_stopping, has_validation):
        self.patience, self.min_delta = None, 0.0
        self.best_loss, self.best_params, self.since_best = math.inf, None, 0
        if early_stopping is None or early_stopping is False:
            return
        if not has_validation:
            raise ValueError("early_stopping needs validation data (validation=fraction or "
                             "(X_val, y_val))")
        if early_stopping is True:
            patience = 5
        elif isinstance(early_stopping, dict):
            unknown = sorted(set(early_stopping) - {"patience", "min_delta"}, key=str)
            if unknown:     # {"patiance": 3} would silently run with patience 5
                raise ValueError(f"early_stopping has unknown key(s) {unknown}; expected "
                                 "'patience' and/or 'min_delta'")
            patience = early_stopping.get("patience", 5)
            self.min_delta = float(early_stopping.get("min_delta", 0.0))
        else:
            patience = early_stopping
        self.patience = check_positive(patience, "early_stopping patience", integer=True)

    def update(self, epoch, val_loss, model, hist):
        if self.patience is None:
            return False
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_params, self.since_best = val_loss, model.params.copy(), 0
            hist.best_epoch = epoch
        else:
            self.since_best += 1
        hist.stopped_early = self.since_best >= self.patience
        return hist.stopped_early

    def restore(self, model):
        if self.best_params is not None:
            model.params[...] = self.best_params


def end_of_epoch(epoch, epochs, model, kernels, hist, code, validation, stopper, callbacks):
    """Validation loss and metric (``validation``: (X_val, Y_val, sw_val) or None), early
    stopping and callbacks after an epoch.  Returns (progress line, stop?)."""
    mname = "rmse" if LOSSES[code] == "mse" else "accuracy"
    line = f"epoch {epoch}/{epochs}  loss {hist.loss[-1]:.5f}"
    stop = False
    if validation is not None:
        vl, vm = loss_and_metric(model, kernels, *validation, code)
        hist.val_loss.append(vl)
        hist._add("val_" + mname, vm)
        line += f"  val_loss {vl:.5f}  val_{mname} {vm:.4f}"
        stop = stopper.update(epoch, vl, model, hist)
    stop = any([bool(cb(epoch, hist, model)) for cb in callbacks]) or stop
    return line, stop


def column_text(model, j):
    """"column 1 ('flux')": input column j of the model, with its feature name if known."""
    names = model.feature_names
    return f"column {j}" + (f" ({names[j]!r})" if names and j < len(names) else "")


def large_input_text(model, X, largest=None):
    """'column 1 ('flux') reaches |x| = 1e+30' when the network inputs X (after the model's
    own preprocessing) go beyond LARGE_INPUT, else None.  largest: X's (column, max |x|)
    when the caller has it already (X may then be None): a distributed run's inputs are
    spread over shards or ranks, which report theirs."""
    j, big = largest_input(X) if largest is None else largest
    if not big > LARGE_INPUT:
        return None
    return f"{column_text(model, j)} reaches |x| = {big:.3g}"


def divergence_advice(model, X, lr_advice, standardize="pass standardize=True",
                      largest=None):
    """What to change after a run on the network inputs X diverged: huge inputs first (a
    smaller lr does not cure those), else ``lr_advice`` ('try a smaller lr ...').
    ``standardize``: how the caller's API standardises; ``largest``: as large_input_text.
    Standardising is suggested only to a model without standardisation."""
    big = large_input_text(model, X, largest)
    if big is None:
        return lr_advice
    if model.standardization is None:
        return (f"the inputs are not standardised and {big}: {standardize} (or rescale "
                "that column) rather than lowering the lr")
    return f"even standardised, {big}: clip or rescale that column's outliers"


def smaller_lr_advice(lr):
    """divergence_advice's ``lr_advice`` for a run whose (last) lr was ``lr``."""
    return f"try a smaller lr (this run's was {lr:.3g})"


def target_scale_advice(Y, code, lr_advice):
    """``lr_advice``, unless regression targets reach beyond LARGE_INPUT: their squared
    errors overflow the loss (float32 beyond |y| ~ 1e19) whatever the lr, so a smaller lr
    was the wrong advice there."""
    if LOSSES[code] != "mse" or Y.size == 0:
        return lr_advice
    big = float(np.abs(Y).max())
    if not big > LARGE_INPUT:
        return lr_advice
    return (f"the targets reach |y| = {big:.3g}: rescale them (train on y / scale, multiply "
            "the predictions back) rather than lowering the lr")


def step_loss_seen(loss):
    """What the step that stopped training saw: a non-finite batch loss, or a finite one
    (often huge) whose gradient was not finite."""
    if not math.isfinite(loss):
        return f"the batch loss was {loss:.4g}"
    return f"the batch loss was {loss:.4g} but its gradient was not finite"


def diverged_message(where, seen, restored=None, advice=None, head="training diverged"):
    """The one wording of a TrainingDiverged message: "{head} {where}: {seen}; {restored}.
    {Advice}."  where: 'at step 7 (epoch 2, ...)', 'in round 3 (...)', or '' (then
    "{head}: {seen}"); seen: what went non-finite (and the value when it was finite but
    huge, step_loss_seen); restored: what the model holds now (None: not said); advice:
    what to change (divergence_advice; None: none), capitalised here."""
    text = f"{head} {where}: {seen}" if where else f"{head}: {seen}"
    if restored:
        text += f"; {restored}"
    if advice:
        text += f". {advice[:1].upper()}{advice[1:]}"
    return text + "."


def nonfinite_state_rows(opt):
    """Names of the optimizer's state rows holding NaN or inf."""
    return [r for i, r in enumerate(opt.state_rows) if not all_finite(opt.state[i])]


def nonfinite_training_state(params, opt):
    """What holds NaN or inf after some steps, for the divergence message: "the optimizer
    state (exp_avg_sq)", "the parameters", or None when all is finite.  Checked once per
    epoch (or round) by every trainer: the steps check the loss and gradient, but Adam's
    squared gradients overflow float32 on huge unstandardised inputs while both stay
    finite and the parameters stop moving."""
    bad_state = nonfinite_state_rows(opt)
    if bad_state:
        return f"the optimizer state ({', '.join(bad_state)})"
    return None if all_finite(params) else "the parameters"


def run_epoch(kernels, model, opt, sched, grad, X, Y, sw, perm, bs, hist, code, where,
              losses_out=None, next_order=None):
    """One backend.train_epoch call over the rows ``perm`` of (X, Y, sw) (sw None: unit
    weights) in batches of ``bs``, with the schedule's lrs; records lr and batch losses in
    ``hist`` (and appends the array of batch losses to the list ``losses_out`` if given) and
    advances the optimizer's step count (its ``lr`` stays the run's base rate: the rate of
    every step is History.lr).  Returns (sum of batch loss x batch rows, seconds).  Raises
    TrainingDiverged (``where`` names the epoch / chunk) if the kernel stopped at a
    non-finite loss or gradient (the model keeps its last finite parameters), or if the
    parameters or the optimizer state became non-finite (checked once per call, after it:
    e.g. Adam's squared gradients overflowing float32 on inputs of 1e30 leave finite
    parameters that no longer move; the model and optimizer are restored to the start of
    the call).  The message says what was seen and what to change (divergence_advice).
    next_order: None, or EpochOrder.ahead's (out, key) for the kernels to fill meanwhile."""
    n = perm.shape[0]
    n_batches = -(-n // bs)
    step0 = opt.step_count
    lrs = step_lrs(sched, step0, n_batches)
    batch_losses = np.empty(n_batches)
    snapshot, state0 = model.params.copy(), opt.state.copy()
    t0 = time.perf_counter()
    more = {} if next_order is None else {"next_order": next_order}
    done = int(kernels.train_epoch(model.params, grad, opt.state, batch_losses, X, Y, sw, perm,
                                   bs, lrs, step0, opt.code, opt.hyper_vector(),
                                   model.sizes_array, model.acts_array, code, **more))
    dt = time.perf_counter() - t0
    opt.step_count += done
    if done and type(sched) is Constant:   # one float repeated: no per-step conversion
        hist.lr.extend([float(lrs[0])] * done)
    else:
        hist.lr.extend(lrs[:done].tolist())
    hist.batch_loss.extend(batch_losses[:done].tolist())
    if losses_out is not None:
        losses_out.append(batch_losses[:done])
    if done < n_batches:
        step = step0 + done + 1
        rows = perm[done * bs:(done + 1) * bs]
        if sw is not None and not sw[rows].sum() > 0:
            raise ValueError(
                f"batch {done + 1} of {n_batches} ({where}) has a total sample weight of 0: "
                "sample_weight zeros, or class weights that zero out the classes in it; "
                "give every batch some weight (drop zero-weight rows first)")
        bad = batch_losses[done]   # every backend writes the stopping batch's loss
        before = f", after a batch loss of {batch_losses[done - 1]:.4g}" if done else ""
        raise TrainingDiverged(diverged_message(
            f"at step {step} ({where}, batch {done + 1} of {n_batches}, lr {lrs[done]:.3g})",
            step_loss_seen(bad) + before, f"the model keeps its parameters after step "
            f"{step - 1}", divergence_advice(model, X, target_scale_advice(
                Y, code, smaller_lr_advice(lrs[done])))),
            step, where)
    seen = nonfinite_training_state(model.params, opt)
    if seen is not None:
        model.params[...] = snapshot
        opt.state[...] = state0
        opt.step_count = step0
        raise TrainingDiverged(diverged_message(
            f"in {where}", f"{seen} became non-finite during steps {step0 + 1}.."
            f"{step0 + n_batches} (the last batch loss was {batch_losses[-1]:.4g})",
            f"the model and optimizer were put back as they were before step {step0 + 1}",
            divergence_advice(model, X, target_scale_advice(Y, code, smaller_lr_advice(lrs[-1])))),
            step0 + 1, where)
    rows = np.full(n_batches, bs, dtype=np.float64)
    rows[-1] = n - bs * (n_batches - 1)
    return float(np.dot(batch_losses, rows)), dt


class TrainingRunaway(UserWarning):
    """The training loss ended far above where it started (a blown-up run that stayed
    finite): the lr is probably too large."""


RUNAWAY_FACTOR = 10.0   # final epoch loss above this many times the first: a blown-up run
SPIKE_FACTOR = 1000.0   # an epoch loss this far above the first, never recovered from
# A classifier whose final mean cross-entropy is below this (nats per sample; chance is
# ln 2 = 0.69 for two classes) is not called blown up, however far it rose: continuing to
# train a model that separates its data perfectly moves its loss from ~1e-12 to ~1e-4 with
# Adam's normalised steps, a 1e8-fold rise of a loss that still means ~100 % right answers.
# (A regression loss has the units of its targets; there is no such floor for "mse".)
CLASSIFIER_LOSS_FLOOR = 0.01


def runaway_text(hist):
    """Why the run counts as blown up, or None: its last epoch loss is more than
    RUNAWAY_FACTOR x the first epoch's (or first batch's) loss, or the loss exploded past
    SPIKE_FACTOR x that and did not come back below where it started (e.g. sgd with a huge
    lr: 1e15 in epoch 1, then stuck at a loss worse than the initial model's); never for a
    classifier that ends below CLASSIFIER_LOSS_FLOOR."""
    first = min(hist.loss[0], hist.batch_loss[0]) if hist.batch_loss else hist.loss[0]
    last, peak = hist.loss[-1], max(hist.loss)
    if not first > 0:
        return None
    if hist.loss_name in ("bce", "cross_entropy") and last < CLASSIFIER_LOSS_FLOOR:
        return None
    if last > RUNAWAY_FACTOR * first:
        return (f"the epoch loss went from {first:.4g} to {last:.4g} (more than "
                f"{RUNAWAY_FACTOR:g}x)")
    if peak > SPIKE_FACTOR * first and last > first:
        return (f"the epoch loss exploded to {peak:.4g} (from {first:.4g}) and ended at "
                f"{last:.4g}, above where it started")
    return None


def check_runaway(hist, on_divergence):
    """Warn (on_divergence="warn") or raise TrainingDiverged ("raise") when the run blew up
    (see runaway_text); sets ``hist.runaway``."""
    if on_divergence not in ("warn", "raise", "ignore"):
        raise ValueError(f"on_divergence must be 'warn', 'raise' or 'ignore', got "
                         f"{on_divergence!r}")
    if not hist.loss:
        return
    why = runaway_text(hist)
    hist.runaway = why is not None
    if on_divergence == "ignore" or why is None:
        return
    msg = f"training blew up: {why}; the lr is probably too large"
    if on_divergence == "raise":
        raise TrainingDiverged(msg, len(hist.batch_loss), f"epoch {hist.epochs}")
    warnings.warn(msg, TrainingRunaway, stacklevel=3)


def train_epochs(model, epochs, epoch_fn, *, kernels, code, hist, validation=None,
                 stopper=None, callbacks=(), progress=True, desc="fit", train_metric=None,
                 on_divergence="warn", describe=None, start_epoch=0, after_epoch=None,
                 checkpointer=None):
    """Run ``epoch_fn(epoch)`` for epochs start_epoch .. epochs-1 with the bookkeeping shared
    by every training path; returns ``hist``.

    epoch_fn(epoch) -> (loss_sum, rows, seconds): trains one epoch (0-based).
    validation: (X_val, Y_val, sw_val) of network inputs, or None.  train_metric: a callable
    () -> metric on a fixed training subset, or None.  describe(): extra text for the
    progress line.  after_epoch(epoch): called after the bookkeeping (checkpoints).
    checkpointer: a training.checkpoint.FitCheckpointer (or None), told after each epoch
    whether training stops there."""
    stopper = stopper if stopper is not None else EarlyStopping(None, False)
    mname = "rmse" if LOSSES[code] == "mse" else "accuracy"
    bar = progress_bar(epochs, desc, "epoch", enabled=progress)
    try:
        for epoch in range(start_epoch, epochs):
            loss_sum, rows, dt = epoch_fn(epoch)
            hist.loss.append(loss_sum / max(rows, 1))
            hist.epoch_time.append(dt)
            hist.samples_per_s.append(rows / dt if dt > 0 else math.inf)
            if train_metric is not None:
                hist._add(mname, train_metric())
            line, stop = end_of_epoch(epoch + 1, epochs, model, kernels, hist, code,
                                      validation, stopper, callbacks)
            extra = f"  {describe()}" if describe is not None else ""
            bar.update(line=line + f"  {hist.samples_per_s[-1]:,.0f} samples/s" + extra,
                       loss=hist.loss[-1], samples_s=hist.samples_per_s[-1])
            if after_epoch is not None:
                after_epoch(epoch)
            if checkpointer is not None:
                checkpointer.after_epoch(epoch, stop)
            if stop:
                break
    finally:
        bar.close()
    stopper.restore(model)
    check_runaway(hist, on_divergence)
    return hist
