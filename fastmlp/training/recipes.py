"""The lecture's recipes for choosing hyper-parameters: a short learning-rate sweep and
k-fold cross-validation."""

import functools
import inspect
import numbers
from dataclasses import dataclass

import numpy as np

from .. import backends
from ..buffers import aligned_empty_like
from .._validate import (DROP_THEM_FIRST, all_finite, check_array, check_bool, check_kwargs,
                         check_positive, check_seed, check_targets, counted)
from ..codes import loss_code
from ..metrics import edge_warning, format_rate
from ..model import MLP
from ..optim import make_optimizer
from ..progress import progress_bar
from .batch import (ModelBatch, batch_memory, batch_threads, batched_kernels,
                    check_batch_divergence, check_batch_memory, fit_batch, memory_text,
                    run_batched)
from .fit import fit, set_trained_link, warn_large_inputs
from .fit_inputs import raw_training_rows, trained_target
from .loop import TrainingDiverged, divergence_advice, diverged_message, kwargs_with_lr


@dataclass
class SweepResult:
    """lr_sweep's answer.  ``losses[i]``: mini-batch loss per iteration for ``lrs[i]`` (NaN
    after a divergence); ``final_loss[i]``: mean of its last 10 % of iterations (inf for a
    diverged run, which is never the best); ``diverged[i]``: by judge_curve's rule, the
    loss went non-finite or rose above ``divergence_factor`` x its first value at some
    iteration (even if it came back down: the table notes its peak and where it ended), or
    the run ended with non-finite parameters or optimizer state (its last point is then
    NaN); ``best_lr`` = ``lrs[best_index]``."""

    lrs: np.ndarray
    losses: list
    final_loss: np.ndarray
    diverged: np.ndarray
    best_lr: float
    best_index: int
    divergence_factor: float = 4.0

    def verdict(self, i):
        """judge_curve's CurveVerdict of lr ``lrs[i]``'s curve (where it diverged, its
        peak and final loss)."""
        return judge_curve(self.losses[i], self.divergence_factor)

    def table(self):
        """One line per lr: its final loss ('-' for a diverged run, which has none),
        whether it diverged, '<- best' on the chosen one only (by index: an lr given
        twice is chosen once), and where a diverged run diverged, its peak and final loss."""
        rows = [f"{'lr':>10}  {'final loss':>12}  diverged"]
        for i, (lr, f, d) in enumerate(zip(self.lrs, self.final_loss, self.diverged)):
            mark = "  <- best" if i == self.best_index else ""
            val = f"{f:12.6g}" if np.isfinite(f) else f"{'-':>12}"
            note = self.verdict(i).note()
            rows.append(f"{lr:10.3g}  {val}  {'yes' if d else 'no':>8}{mark}"
                        + (f"  ({note})" if note else ""))
        return "\n".join(rows)

    def __repr__(self):
        # the dataclass's repr printed every loss of every curve (11 x 150 numbers)
        n_div = int(np.sum(self.diverged))
        return (f"SweepResult({counted(self.lrs.size, 'lr')} from {self.lrs.min():.3g} to "
                f"{self.lrs.max():.3g}, {counted(len(self.losses[0]), 'iteration')} each; "
                f"best_lr={self.best_lr:.3g} (index {self.best_index}), final loss "
                f"{self.final_loss[self.best_index]:.6g}; {n_div} diverged)")


def check_sweep_kwargs(optimizer_kwargs):
    """A sweep's optimizer_kwargs as a dict, without lr: each candidate's lr is one of
    ``lrs``, and an lr given here was silently dropped."""
    kw = check_kwargs(optimizer_kwargs, "optimizer_kwargs")
    if "lr" in kw:
        raise ValueError(f"optimizer_kwargs must not hold lr (got lr={kw['lr']!r}): the sweep "
                         "gives each candidate one of lrs")
    return kw


def check_executor(executor):
    """None or an object with a callable ``map`` (what the recipes call), checked before
    any training: 3 would fail on its missing ``map`` only after the setup."""
    if executor is not None and not callable(getattr(executor, "map", None)):
        raise TypeError(f"executor must be None (run here) or an object with map(fn, "
                        f"iterable) (a concurrent.futures executor, fastmlp.distributed."
                        f"dask.ClientExecutor), got {executor!r}")


def _new_model(make_model):
    model = make_model() if callable(make_model) else None
    if not isinstance(model, MLP):
        raise TypeError("make_model must be a callable returning a fresh fastmlp.MLP, got "
                        f"{type(model).__name__ if model is not None else make_model!r}")
    return model


def check_distinct_models(models, what="fold"):
    """Refuse ``make_model()``'s models (in run order) unless each is a distinct MLP with its
    own parameter buffer.  A factory that hands back the same object (``lambda: m``), or
    models sharing one params buffer, would make each run train on from the previous run's
    weights (fold 2 starting where fold 1 ended, having trained on fold 2's held-out rows),
    silently and only on the serial path."""
    for i, model in enumerate(models):
        for j, prev in enumerate(models[:i]):
            if model is prev or np.shares_memory(model.params, prev.params):
                same = "the same model object" if model is prev else \
                    "a model sharing the parameter buffer of the one"
                raise ValueError(
                    f"make_model returned {same} for {what} {i + 1} as for {what} {j + 1}: "
                    f"each {what} must train a fresh model, else it continues from the other "
                    f"{what}'s trained weights; make make_model build a new fastmlp.MLP on "
                    "every call (e.g. lambda: fastmlp.MLP([4, 32, 1], seed=0), or "
                    "lambda: m.copy())")


#: lr_sweep's default learning rates, 1e-5 ... 1 (numpy.logspace(-5, 0, 11)); a tuple, so
#: that no caller can change the default by writing into a result
DEFAULT_LRS = tuple(float(lr) for lr in np.logspace(-5, 0, 11))


def lr_sweep(make_model, X, y, lrs=DEFAULT_LRS, iterations=150, optimizer="adam",
             batch_size=256, loss=None, seed=0, backend=None, progress=False,
             divergence_factor=4.0, optimizer_kwargs=None, executor=None, batched=True,
             models_per_pass=None, memory_limit=None):
    """Try each learning rate for ``iterations`` mini-batch steps and name the best.

    Every candidate starts from the SAME initial weights (one model from ``make_model()``,
    copied) and sees the SAME sequence of mini-batches (drawn once from ``seed``), so the
    curves differ only by the lr.  The best lr has the lowest final smoothed loss among the
    runs that did not diverge (judge_curve: a loss that went non-finite or rose above
    ``divergence_factor`` x the run's first loss at any iteration; one that came back down
    after is still diverged, its peak and final loss noted in the table).
    batch_size: rows per mini-batch, or None: every row in one batch (full-batch gradient
    descent, as fit takes None).
    X: raw features (the base model's contract turns them into network inputs).
    executor: None (run here, one candidate after another) or any object with
    ``map(fn, iterable)`` returning the results in order (a concurrent.futures executor,
    ``fastmlp.distributed.dask.ClientExecutor(client)``); same result either way.
    batched: True (default) trains the candidates together, as one ModelBatch, through the
    batched kernels (fastmlp.backends.batched; the executor then maps passes of
    ``models_per_pass`` candidates, default as many as ``memory_limit`` allows); False runs
    them one by one as before.  Both give the same curves bit for bit: the batched kernels
    are the single-model backend's twin (NumPy, Numba, C), each model running the
    arithmetic it runs alone at the same thread count (tests/test_batched.py).
    """
    check_divergence_factor(divergence_factor)
    check_executor(executor)
    check_bool(batched, "batched")
    kw = check_sweep_kwargs(optimizer_kwargs)
    plan = SweepPlan.build(make_model, X, y, lrs, iterations, batch_size, loss, seed)
    check_candidate(optimizer, {**kw, "lr": float(plan.lrs[0])})
    if batched:
        specs = [(optimizer, {**kw, "lr": float(lr)}) for lr in plan.lrs]
        curves = plan.run_batched(backend, specs, executor, models_per_pass, memory_limit)
        bar = progress_bar(plan.lrs.size, "lr sweep (batched)", "lr", enabled=progress)
        for lr, curve in zip(plan.lrs, curves):
            bar.update(line=plan.progress_line(lr, curve, divergence_factor), lr=float(lr))
        bar.close()
        return plan.result(curves, divergence_factor)
    name = backends.resolve(backend if backend is not None else plan.base.backend)
    run = functools.partial(_sweep_candidate, plan, name, optimizer, optimizer_kwargs)
    curves = []
    bar = progress_bar(plan.lrs.size, "lr sweep", "lr", enabled=progress)
    for lr, curve in zip(plan.lrs, (map if executor is None else executor.map)(run, plan.lrs)):
        curves.append(curve)
        bar.update(line=plan.progress_line(lr, curve, divergence_factor), lr=float(lr))
    bar.close()
    return plan.result(curves, divergence_factor)


def check_candidate(optimizer, kwargs, label=None):
    """Build the optimizer once, before any training, so a typo or a bad hyper-parameter
    is said as make_optimizer says it (prefixed by the comparison's ``label``), not as
    "model k" of the ModelBatch that trains the candidates."""
    try:
        make_optimizer(optimizer, np.zeros(1), **kwargs)
    except (TypeError, ValueError) as err:
        if label is None:
            raise
        raise type(err)(f"optimizer {label!r}: {err}") from None


def _sweep_pass(plan, backend, specs, memory_limit=None):
    return plan.run_pass(backend, specs, memory_limit)


def _sweep_candidate(plan, backend, optimizer, optimizer_kwargs, lr):
    return plan.run(backends.get_backend(backend), float(lr), optimizer, optimizer_kwargs)


@dataclass
class SweepPlan:
    """Everything the candidates of a sweep share: the initial model, the checked data and
    the one mini-batch sequence (drawn from ``seed`` piece by piece: order_pieces).
    ``run`` trains one candidate (here or on a Dask worker); ``result`` judges the curves.
    A curve holds NaN after a divergence."""

    base: MLP
    lrs: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    sw: np.ndarray
    seed: object
    n_rows: int
    batch_size: int
    iterations: int
    loss_code: int

    @classmethod
    def build(cls, make_model, X, y, lrs, iterations, batch_size, loss, seed):
        """lrs None: the candidates bring their own lr (an optimizer comparison)."""
        if lrs is None:
            lrs = np.empty(0)
        else:
            try:    # a copy: SweepResult.lrs must not be the caller's array (or a default)
                lrs = np.array(lrs, dtype=np.float64).ravel()
            except (TypeError, ValueError):     # numpy's "could not convert string to float"
                raise ValueError(f"lrs must be a non-empty sequence of positive learning "
                                 f"rates, got {lrs!r}") from None
            if lrs.size == 0 or not np.all(np.isfinite(lrs)) or np.any(lrs <= 0):
                raise ValueError("lrs must be a non-empty sequence of positive learning rates")
        check_positive(iterations, "iterations", integer=True)
        if batch_size is not None:      # None: every row in one batch, as fit takes it
            check_positive(batch_size, "batch_size", integer=True)
        check_seed(seed)
        base = _new_model(make_model)
        loss = loss if loss is not None else base.default_loss()
        code = loss_code(loss)
        X = check_array(base.transform_inputs(X), "X", base.n_inputs, base.dtype,
                        remedy=DROP_THEM_FIRST)
        if X.shape[0] == 0:
            raise ValueError("X is empty: need at least one sample")
        warn_large_inputs(base, X, "X", _STANDARDIZE_BASE, stacklevel=4)
        # the target the network learns, as fit's (log(1 + y) for target_transform="log1p")
        Y = check_targets(trained_target(base, y), X.shape[0], loss, base.n_outputs,
                          base.dtype)
        n = X.shape[0]
        bs = n if batch_size is None else min(batch_size, n)
        return cls(base, lrs, X, Y, np.ones(n, dtype=base.dtype), seed, n, bs, iterations,
                   code)

    def order_pieces(self):
        """(first iteration, rows of its batches) pieces of the batch sequence: consecutive
        shuffles of the rows drawn from ``seed``, cut into ``iterations`` batches, at most
        ORDER_PIECE_ROWS rows (or one batch) at a time.  Built whole, a full-batch run's
        order held iterations x rows indices (1 GB for the README's compare-optimizers
        --batch-size full); piece by piece it is the same sequence, so the same curves."""
        rng = np.random.default_rng(self.seed)
        n, bs = self.n_rows, self.batch_size
        per = max(1, ORDER_PIECE_ROWS // bs)        # iterations per piece
        left = np.empty(0, dtype=np.int64)          # drawn, not yet used
        for first in range(0, self.iterations, per):
            need = min(per, self.iterations - first) * bs
            parts, have = [left], left.size
            while have < need:
                parts.append(rng.permutation(n))
                have += n
            rows = np.concatenate(parts)
            left = rows[need:]
            yield first, np.ascontiguousarray(rows[:need])

    def run(self, kernels, lr, optimizer, optimizer_kwargs, X=None, Y=None, sw=None):
        """The loss curve of one candidate (lr None: the optimizer's own / the one in
        optimizer_kwargs); X, Y, sw override the plan's arrays (a Dask worker passes its
        scattered copies).  One kernel call per piece of the batch order, the step count
        carried on: the same arithmetic as one call over the whole order."""
        model = self.base.copy()
        kw = dict(optimizer_kwargs or {})
        if lr is not None:
            kw["lr"] = float(lr)
        opt = make_optimizer(optimizer, model.params, **kw)
        curve = np.full(self.iterations, np.nan)
        pick = lambda a, b: a if a is not None else b  # noqa: E731
        X, Y, sw = pick(X, self.X), pick(Y, self.Y), pick(sw, self.sw)
        grad = aligned_empty_like(model.params)
        for first, order in self.order_pieces():
            k = order.size // self.batch_size
            done = kernels.train_epoch(model.params, grad, opt.state, curve[first:first + k],
                                       X, Y, sw, order, self.batch_size,
                                       np.full(k, float(opt.lr)), first, opt.code,
                                       opt.hyper_vector(), model.sizes_array,
                                       model.acts_array, self.loss_code)
            if done < k:        # it stopped at a non-finite loss or gradient
                curve[first + done:] = np.nan
                break
        return _mark_unusable(curve, model.params, opt.state)

    def run_pass(self, backend, specs, memory_limit=None):
        """The loss curves of candidates ``specs`` [(optimizer name, kwargs incl. lr)]
        trained together as one ModelBatch from the plan's initial model, on the plan's
        mini-batch sequence (one batched kernel call).  NaN after a divergence."""
        _, kernels = batched_kernels(backend, self.base)
        batch = ModelBatch(self.base, len(specs), optimizer=[o for o, _ in specs],
                           optimizer_kwargs=[kw for _, kw in specs], memory_limit=memory_limit)
        K = len(specs)
        curves = np.full((K, self.iterations), np.nan)
        # a model stops at a non-finite loss: no rows for it in the later pieces
        stopped = np.zeros(K, dtype=bool)
        for first, order in self.order_pieces():
            k = order.size // self.batch_size
            losses, done = run_batched(kernels, batch, self.X, self.Y, self.sw[None, :],
                                       order[None, :], np.where(stopped, 0, order.size),
                                       np.full(K, self.batch_size), self.loss_code)
            curves[:, first:first + k] = losses[:, :k]
            stopped |= done < k
            if stopped.all():
                break
        return [_mark_unusable(c, batch.params[k], batch.states[k])
                for k, c in enumerate(curves)]

    def run_batched(self, backend, specs, executor=None, models_per_pass=None,
                    memory_limit=None):
        """Curves of every candidate in ``specs``, in passes of at most ``models_per_pass``
        models (None: as many as ``memory_limit`` allows), mapped by ``executor`` (None:
        here, one pass after another)."""
        # checked as given: int() made 1.5 one model per pass and "2" two, unsaid
        per = len(specs) if models_per_pass is None else \
            int(check_positive(models_per_pass, "models_per_pass", integer=True))
        # sized with the thread count ModelBatch's own check assumes (every CPU by
        # default): sized for one thread, a pass passed here and was refused there
        need = functools.partial(check_batch_memory, self.base.layer_sizes,
                                 dtype=self.base.dtype, memory_limit=memory_limit,
                                 n_threads=batch_threads(), n_rows=self.X.shape[0])
        while per > 1:   # the largest pass that fits the memory limit
            try:
                need(per)
                break
            except MemoryError:
                per = -(-per // 2)
        need(per)
        passes = [specs[i:i + per] for i in range(0, len(specs), per)]
        run = functools.partial(_sweep_pass, self, backend, memory_limit=memory_limit)
        return [c for curves in (map if executor is None else executor.map)(run, passes)
                for c in curves]

    def judge(self, curve, divergence_factor):
        """(diverged, final smoothed loss: inf for a diverged run) of one curve, by
        judge_curve's rule."""
        verdict = judge_curve(curve, divergence_factor)
        return verdict.diverged, (np.inf if verdict.diverged else verdict.final)

    def progress_line(self, lr, curve, divergence_factor):
        verdict = judge_curve(curve, divergence_factor)
        # a diverged run has no final loss: '-' as the table says, not 'inf' (the table's
        # note says where and how)
        if verdict.diverged:
            return f"lr {lr:.3g}: final loss -  (diverged)"
        return f"lr {lr:.3g}: final loss {verdict.final:.6g}"

    def all_diverged_text(self, divergence_factor):
        """Why a sweep has no best lr, and what to try next."""
        shown = ", ".join(f"{lr:.3g}" for lr in self.lrs)
        advice = divergence_advice(
            self.base, self.X, f"try smaller lrs (the smallest here was {self.lrs.min():.3g})",
            standardize=_STANDARDIZE_BASE)
        return diverged_message(
            f"({shown})", f"within {counted(self.iterations, 'iteration')} each run's loss went "
            f"non-finite or rose above {divergence_factor:g}x its first value, or its "
            "parameters or optimizer state ended non-finite", advice=advice,
            head="lr_sweep: every learning rate diverged")

    def result(self, curves, divergence_factor):
        judged = [self.judge(c, divergence_factor) for c in curves]
        diverged = np.array([d for d, _ in judged])
        final = np.array([f for _, f in judged])
        if np.all(diverged):
            raise TrainingDiverged(self.all_diverged_text(divergence_factor), None, "lr sweep")
        best = int(np.argmin(np.where(diverged, np.inf, final)))
        edge_warning(self.lrs, float(self.lrs[best]))   # a best lr at the grid's edge
        return SweepResult(self.lrs, list(curves), final, diverged, float(self.lrs[best]),
                           best, float(divergence_factor))


#: rows of a sweep's batch order built at a time (8 MB of indices): the order of a long
#: full-batch run is made piece by piece (SweepPlan.order_pieces)
ORDER_PIECE_ROWS = 1 << 20


# How a sweep's inputs get standardised: through the base model (lr_sweep has no
# standardize argument).
_STANDARDIZE_BASE = ("give make_model's MLP standardization=fastmlp.Standardizer().fit(X)"
                     ".as_tuple()")


def _mark_unusable(curve, params, state):
    """``curve`` with its last point NaN (so judged diverged) when the run ended with
    non-finite parameters or optimizer state: e.g. Adam's squared gradients overflowed on
    huge inputs, the parameters stopped moving and the loss stayed finite, flat and
    meaningless.  One check per candidate, after its run."""
    if not (all_finite(params) and all_finite(state)):
        curve[-1] = np.nan
    return curve


def check_divergence_factor(factor):
    """divergence_factor as a float > 1 (inf: only a non-finite loss counts), else a
    ValueError: a run counts as diverged when its loss rises above factor x its first
    value (judge_curve), so a factor <= 1 (or NaN) would call most runs diverged."""
    if isinstance(factor, (bool, np.bool_)) or not isinstance(factor, numbers.Real) or \
            not factor > 1:
        raise ValueError("divergence_factor must be a number > 1 (a run counts as diverged "
                         "when its loss rises above divergence_factor x its first value), "
                         f"got {factor!r}")
    return float(factor)


# Metrics a fold may legitimately lack: a fold that selects nothing has no contamination
# (FP / (TP + FP) = 0/0; its completeness is 0, defined).  Their mean is reported over the
# folds that have one; any other metric's NaN is a broken fold (a diverged model's
# accuracy or log-loss) and stays n/a rather than be averaged out of the headline.
UNDEFINED_WHEN_NOTHING_SELECTED = frozenset({"contamination"})


@dataclass
class CVResult:
    """cross_validate's answer: one metrics dict per fold, their mean and std, fold sizes.

    ``mean`` and ``std`` are over every fold, so NaN for a metric that some fold has no
    value of (a fold that selected nothing has no contamination: 0/0);
    ``mean_std_where_defined(key)`` gives them over the folds that have one, and how many.
    ``reported_mean_std(key)`` is what ``fastmlp cv``, ``table()``, the repr and
    ``plot.cv_folds`` show: contamination over the folds that selected something, every
    other metric over every fold (n/a when a fold has none: a diverged fold's NaN accuracy
    is not averaged out)."""

    folds: list
    mean: dict
    std: dict
    fold_sizes: list

    def mean_std_where_defined(self, key):
        """(mean, std, count) of metric ``key`` over the folds where it is not NaN; (nan,
        nan, 0) when no fold has a value.  One undefined fold makes ``mean[key]`` NaN, and
        the other folds' contamination is still worth reading (with their count beside
        it: it describes fewer folds)."""
        values = np.array([f[key] for f in self.folds], dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size == 0:
            return float("nan"), float("nan"), 0
        return float(values.mean()), float(values.std()), int(values.size)

    def reported_mean_std(self, key):
        """(mean, std, count of the folds they are over) of metric ``key`` as fastmlp
        reports it: a metric in UNDEFINED_WHEN_NOTHING_SELECTED over the folds that have a
        value (mean_std_where_defined), any other over every fold (``mean[key]``,
        ``std[key]``: NaN when a fold has none)."""
        if key in UNDEFINED_WHEN_NOTHING_SELECTED:
            return self.mean_std_where_defined(key)
        return float(self.mean[key]), float(self.std[key]), len(self.folds)

    def folds_counted_text(self, key):
        """'4 of 5 folds' when ``key``'s reported mean leaves folds out, else ''."""
        n, k = self.reported_mean_std(key)[2], len(self.folds)
        return f"{n} of {k} folds" if 0 < n < k else ""

    def table(self):
        """Per-fold metrics, mean and std as the CLI prints them (reported_mean_std); n/a
        where a fold has no value, and a note for a mean over fewer folds."""
        keys = list(self.mean)
        stats = {k: self.reported_mean_std(k) for k in keys}
        cells = lambda vals: "  ".join(f"{format_rate(v, '.5f'):>14}" for v in vals)  # noqa
        rows = ["fold  " + "  ".join(f"{k:>14}" for k in keys)]
        rows += [f"{i + 1:4d}  " + cells(f[k] for k in keys) for i, f in enumerate(self.folds)]
        rows += ["mean  " + cells(stats[k][0] for k in keys),
                 " std  " + cells(stats[k][1] for k in keys)]
        rows += [f"{k}: mean and std over {self.folds_counted_text(k)} (n/a: the fold "
                 "selected nothing)" for k in keys if self.folds_counted_text(k)]
        return "\n".join(rows)

    def __repr__(self):
        # mean +- std per metric as the CLI says it; folds holds the details
        stats = []
        for k in self.mean:
            mean, std, _ = self.reported_mean_std(k)
            counted_folds = self.folds_counted_text(k)
            stats.append(f"{k} {format_rate(mean, '.4g')} +- {format_rate(std, '.2g')}"
                         + (f" ({counted_folds})" if counted_folds else ""))
        return (f"CVResult({counted(len(self.folds), 'fold')} of {self.fold_sizes} rows; "
                f"{', '.join(stats)})")


def kfold_indices(y, k, stratified=True, seed=0):
    """List of k index arrays (the test folds).  Stratified: each class is shuffled and dealt
    round-robin, so every fold holds each class's share to within one row and the fold sizes
    differ by at most one."""
    n = len(y)
    check_positive(k, "k", integer=True)
    if k < 2 or k > n:
        raise ValueError(f"k must be between 2 and the number of samples ({n}), got {k}")
    rng = np.random.default_rng(seed)
    if stratified:
        y = np.asarray(y)
        order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)])
    else:
        order = rng.permutation(n)
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = np.arange(n) % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def _other_rows(n, rows):
    """The sorted rows of 0..n-1 not in ``rows`` (np.setdiff1d's answer, without its sort)."""
    keep = np.ones(n, dtype=bool)
    keep[rows] = False
    return np.flatnonzero(keep)


def _check_cv_classes(y, k, stratified, positive):
    """Refuse, before any fold trains, what would leave folds without a class to score."""
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise ValueError(f"cross_validate: y holds a single class ({classes.tolist()}); a "
                         "classifier needs at least two")
    if positive is not None and positive not in classes:
        raise ValueError(f"positive={positive!r} is not a class in y (classes "
                         f"{classes.tolist()})")
    if stratified and (counts < k).any():
        c = int(np.argmin(counts))
        raise ValueError(f"class {classes[c].item()!r} has {counted(int(counts[c]), 'sample')}, "
                         f"fewer than k={k} folds: some folds would hold none of it; use a "
                         "smaller k")


def _fold_metrics(model, X, y, loss, positive):
    from .. import metrics
    out = {}
    if loss == "mse":
        pred = model.predict(X)
        out["rmse"] = float(np.sqrt(np.mean((pred - y) ** 2)))
        return out
    proba = model.predict_proba(X)
    pred = proba.argmax(axis=1)
    out["accuracy"] = metrics.accuracy(y, pred)
    out["log_loss"] = metrics.log_loss(y, proba)
    if proba.shape[1] == 2:     # a fold holding one class (stratified=False) has no AUC
        out["roc_auc"] = metrics.roc_auc(y, proba[:, 1], positive=1) \
            if np.unique(y).size == 2 else float("nan")
    if positive is not None:
        out["completeness"] = metrics.completeness(y, pred, positive)
        out["contamination"] = metrics.contamination(y, pred, positive)
    return out


def cross_validate(make_model, X, y, k=5, stratified=True, seed=0, positive=None,
                   progress=False, executor=None, batched=True, **fit_kwargs):
    """k-fold cross-validation: train a fresh ``make_model()`` on k-1 folds, score the held-out
    fold, for every fold.  make_model is called once per fold and must build a new model
    each time: one returning a model (or a params buffer) it returned before is refused,
    since each fold would train on from the previous fold's weights.  ``fit_kwargs`` go to
    fit() (validation defaults to None here).
    ``positive``: the class whose completeness and contamination are reported.
    Returns a CVResult with per-fold metrics plus their mean and std (compare lrs or
    architectures by calling it once per candidate).
    X: raw features (an array in feature order, or a table with the raw columns when the
    model has a features spec, as fit takes); each fold's model standardises itself when
    fit_kwargs hold ``standardize=True`` (statistics of its own training folds, no leakage).
    executor: None (run here) or any object with ``map(fn, iterable)`` returning results in
    order (see lr_sweep); same result either way.

    batched: True (default) trains the k folds' models together in one pass (a ModelBatch,
    fit_batch with one row subset per fold), when no executor is given and fit_kwargs hold
    only what the batched path reproduces exactly: optimizer (a name), lr,
    optimizer_kwargs, schedule, batch_size, epochs, loss, class_weight, standardize (each
    fold's own statistics: the kernels get one standardised copy of X per fold), backend,
    n_threads, on_divergence (judged per fold after training, as fit does: a finite
    blow-up warns or raises alike) and validation=None.  Each fold's model then sees exactly
    the rows, the
    row order and the sample weights fit would give it (its own training rows, shuffled
    from ``seed``), so the fold metrics equal the serial path's (bit for bit when the
    batched kernels are the serial backend's twin).  Folds are NOT expressed as row weights
    over one shared row order: a shared mini-batch would hold the fold's held-out rows at
    weight 0, so each fold would train on other batches (fewer rows each) than fit does and
    the results would differ.  A batch above fastmlp's memory limit for one batch
    (batch.DEFAULT_MEMORY_LIMIT: the k folds' row weights and orders, and with standardize
    their k standardised copies of X) also trains the folds one by one.  Anything else - a
    validation split or early stopping (each
    fold's own held-out rows and stopping epoch), callbacks, drop_invalid, sample_weight, an
    Optimizer object, make_model giving
    different architectures - and any executor take the serial path (batched=False), so
    the result is the same in every case."""
    check_executor(executor)
    check_bool(batched, "batched")
    plan = CVPlan.build(make_model, X, y, k, stratified, seed, positive, fit_kwargs)
    if batched and executor is None and plan.batched_ok():
        results = plan.run_batched()
        bar = progress_bar(len(plan.folds), "cross-validation (batched)", "fold",
                           enabled=progress)
        for i, res in enumerate(results):
            bar.update(line=plan.progress_line(i, res))
        bar.close()
        return plan.result(results)
    results = []
    bar = progress_bar(len(plan.folds), "cross-validation", "fold", enabled=progress)
    if batched and plan.serial_because:     # said: it costs time (the results are the same)
        bar.write(f"cross-validation: one fold at a time, {plan.serial_because}")
    folds = (map if executor is None else executor.map)(
        functools.partial(_cv_fold, plan), range(len(plan.folds)))
    for i, res in enumerate(folds):
        results.append(res)
        bar.update(line=plan.progress_line(i, res))
    bar.close()
    return plan.result(results)


def _cv_fold(plan, i):
    return plan.run(i, plan.models[i])


@dataclass
class CVPlan:
    """Everything the folds of a cross-validation share: the checked data, the folds, one
    model per fold (``make_model()`` called in fold order, the first one checked) and fit's
    keyword arguments.  ``run`` trains and scores one fold (here or on a Dask worker)."""

    X: np.ndarray
    y: np.ndarray
    folds: list
    models: list
    loss: str
    seed: int
    positive: object
    fit_kwargs: dict
    #: why a batched cross-validation trains its folds one at a time (batched_ok), if so
    serial_because: str = None

    @classmethod
    def build(cls, make_model, X, y, k, stratified, seed, positive, fit_kwargs):
        check_seed(seed)
        check_positive(k, "k", integer=True)        # before _check_cv_classes compares it
        check_bool(stratified, "stratified")
        check_kwargs(fit_kwargs.get("optimizer_kwargs"), "optimizer_kwargs")
        base = _new_model(make_model)
        # as fit: a table becomes its feature matrix through the model's features spec
        # (rows with NaN / inf dropped before the folds are dealt when drop_invalid)
        X, y, sw = raw_training_rows(base, X, y, fit_kwargs.get("sample_weight"),
                                     fit_kwargs.get("drop_invalid", False))
        if sw is not None:    # the rows' weights, each fold's training rows taken in run
            if np.shape(sw) != (X.shape[0],):
                raise ValueError(f"sample_weight must have shape ({X.shape[0]},), got "
                                 f"{np.shape(sw)}")
            fit_kwargs = {**fit_kwargs, "sample_weight": sw}
        # raw rows kept in their float dtype, as fit keeps them: cast to a float32 model's
        # dtype before standardisation, a column such as 59000 + 1e-3 x lost its spread
        X = check_array(X, "X", base.n_inputs, None)
        loss = fit_kwargs.get("loss") or base.default_loss()
        if loss != "mse":
            _check_cv_classes(y, k, stratified, positive)
        folds = kfold_indices(y, k, stratified and loss != "mse", seed)
        fit_kwargs = {"validation": None, "progress": False, **fit_kwargs}
        models = [base] + [_new_model(make_model) for _ in folds[1:]]
        check_distinct_models(models, "fold")
        return cls(X, y, folds, models, loss, seed, positive, fit_kwargs)

    def run(self, i, model, X=None, y=None, **extra_fit_kwargs):
        """Train ``model`` on every fold but fold i and return fold i's metrics; X, y
        override the plan's arrays (a Dask worker passes its scattered copies)."""
        X = self.X if X is None else X
        y = self.y if y is None else y
        test = self.folds[i]
        train = _other_rows(X.shape[0], test)
        kw = {**self.fit_kwargs, **extra_fit_kwargs}
        if kw.get("sample_weight") is not None:
            kw["sample_weight"] = np.asarray(kw["sample_weight"])[train]
        try:
            fit(model, X[train], y[train], seed=self.seed, **kw)
        except TrainingDiverged as err:     # say which fold, numbered as the progress lines
            raise TrainingDiverged(f"fold {i + 1}/{len(self.folds)}: {err}", err.step,
                                   f"fold {i + 1}, {err.where}") from err
        return _fold_metrics(model, X[test], y[test], self.loss, self.positive)

    def batched_ok(self):
        """Whether fit_kwargs and the fold models allow the exact batched path."""
        kw = self.fit_kwargs
        if not set(kw) <= _CV_BATCHED_KWARGS or kw.get("validation") is not None:
            return False
        if not isinstance(kw.get("optimizer", "adam"), str):
            return False
        m0 = self.models[0]
        if not all(m.layer_sizes == m0.layer_sizes and m.activation == m0.activation
                   and m.dtype == m0.dtype and m.standardization is None
                   and m0.standardization is None for m in self.models):
            return False
        sizing = dict(n_threads=batch_threads(kw.get("n_threads")), n_rows=self.X.shape[0],
                      per_model_order=True, per_model_inputs=bool(kw.get("standardize")))
        try:    # a batch above the memory limit trains the folds one by one instead
            check_batch_memory(m0.layer_sizes, len(self.models), m0.dtype, **sizing)
        except MemoryError:             # said by cross_validate: it costs time
            need = batch_memory(m0.layer_sizes, len(self.models), m0.dtype, **sizing)
            self.serial_because = (f"one batched pass would need {memory_text(need['total'])}"
                                   " above the memory limit")
            return False
        return True

    def run_batched(self):
        """Train every fold's model in one pass (see cross_validate) and return the fold
        metrics.  The models end as fit leaves them (parameters, loss link, optimizer)."""
        kw = {**_FIT_DEFAULTS, **self.fit_kwargs}
        okw = kwargs_with_lr(kw["optimizer_kwargs"], kw["lr"])
        train = [_other_rows(self.X.shape[0], f) for f in self.folds]
        batch = ModelBatch(self.models[0], params=np.stack([m.params for m in self.models]),
                           optimizer=kw["optimizer"], optimizer_kwargs=okw,
                           schedule=kw["schedule"], n_threads=kw["n_threads"])
        hist = fit_batch(batch, self.X, self.y, loss=kw["loss"], batch_size=kw["batch_size"],
                         epochs=kw["epochs"], seed=self.seed,
                         class_weight=kw["class_weight"], subsets=train,
                         standardize=kw["standardize"], backend=kw["backend"],
                         n_threads=kw["n_threads"], on_divergence="record")
        # fit's end-of-run checks, fold by fold as the serial path meets them: a non-finite
        # loss raises, a finite blow-up warns / raises as on_divergence says
        check_batch_divergence(hist, kw["on_divergence"], "fold", first=1)
        out = []
        for i, model in enumerate(self.models):
            trained = batch.model(i)
            model.params[...] = trained.params
            model.standardization = trained.standardization
            set_trained_link(model, batch.loss)
            model.optimizer = trained.optimizer
            model.optimizer.params = model.params
            out.append(_fold_metrics(model, self.X[self.folds[i]], self.y[self.folds[i]],
                                     self.loss, self.positive))
        return out

    def progress_line(self, i, res):
        return f"fold {i + 1}/{len(self.folds)}: " + ", ".join(f"{a} {b:.4f}"
                                                               for a, b in res.items())

    def result(self, results):
        keys = results[0].keys()
        mean = {m: float(np.mean([r[m] for r in results])) for m in keys}
        std = {m: float(np.std([r[m] for r in results])) for m in keys}
        return CVResult(results, mean, std, [len(f) for f in self.folds])


#: fit's keyword arguments the batched cross-validation reproduces exactly, and fit's defaults
_CV_BATCHED_KWARGS = {"optimizer", "lr", "optimizer_kwargs", "schedule", "batch_size", "epochs",
                      "loss", "class_weight", "backend", "n_threads", "on_divergence",
                      "validation", "progress", "standardize"}
_FIT_DEFAULTS = {k: p.default for k, p in inspect.signature(fit).parameters.items()
                 if p.default is not inspect.Parameter.empty}

__all__ = ["lr_sweep", "cross_validate", "SweepResult", "CVResult", "kfold_indices",
           "divergence_index", "judge_curve", "CurveVerdict"]


@dataclass(frozen=True)
class CurveVerdict:
    """How a loss curve went, judged by :func:`judge_curve`.  ``diverged``: the loss went
    non-finite (``nonfinite``: the index where it did, else None) or rose above ``limit``
    (``factor`` x its first loss ``start``) at some iteration; ``at``: the iteration index
    where it diverged (the first crossing of the limit, or where it went non-finite; None
    if it did not); ``final``: mean of its last 10 % (NaN when it went non-finite; reported
    for a diverged run too, so a run that came back down is seen to); ``peak`` /
    ``peak_at``: its highest finite point."""

    diverged: bool
    nonfinite: object
    at: object
    start: float
    final: float
    peak: float
    peak_at: int
    limit: float
    factor: float = 4.0

    def note(self):
        """'' for a run that did not diverge, else where and how, with its peak and its
        final loss: 'diverged at iteration 2: rose to 270.9 (above 2.6 = 4 x its first
        loss 0.65), ended at 0.3227'."""
        if not self.diverged:
            return ""
        head = f"diverged at iteration {self.at + 1}: "
        above = (f"above {self.limit:.4g} = {self.factor:g} x its first loss "
                 f"{self.start:.4g}")
        if self.nonfinite is not None and self.at < self.nonfinite:
            return (head + f"rose to {self.peak:.4g} ({above}) and went non-finite at "
                    f"iteration {self.nonfinite + 1}")
        if self.nonfinite is not None:
            return head + "the loss (or the parameters or optimizer state) went non-finite"
        peak_at = f" at iteration {self.peak_at + 1}" if self.peak_at != self.at else ""
        return head + f"rose to {self.peak:.4g}{peak_at} ({above}), ended at {self.final:.4g}"


def judge_curve(curve, factor=4.0):
    """The CurveVerdict of one loss curve (loss per iteration).

    The rule (lr_sweep's, compare_optimizers', the plots' and the CLI's; the classic
    learning-rate range test's): a run diverged when its loss went non-finite (training
    stops there; the curve holds NaN after) or rose above ``factor`` x its first loss (the
    limit) at any iteration; it is said to diverge at the first such iteration.  The peak
    and the final loss (mean of the last 10 %) are reported either way, so a run that blew
    up and came back down is seen to, but it stays diverged, and a diverged run is never
    chosen as the best lr.
    Why not "diverged only if it ended above its first loss": a blow-up that collapses the
    network to the constant predictor (the base rate) ends at the trivial loss, and with
    imbalanced classes that lies BELOW the first loss (0.325 against 0.65 for bce on the
    SDSS classes), so blown-up runs were called spikes and chosen.  Why not fastai's
    lr-finder rule (factor x the best loss so far): it is meant for ONE run whose lr grows;
    here each run keeps its lr, and the noise of a small mini-batch loss around a low
    value would trip it on healthy runs."""
    factor = check_divergence_factor(factor)
    c = np.asarray(curve, dtype=np.float64).ravel()
    if c.size == 0:
        raise ValueError("curve must hold at least one loss value")
    bad = ~np.isfinite(c)
    start = float(c[0]) if np.isfinite(c[0]) else float("nan")
    limit = factor * start
    finite = np.where(bad, -np.inf, c)
    peak_at = int(np.argmax(finite))
    peak = float(finite[peak_at])
    gone = int(np.argmax(bad)) if bad.any() else None
    seen = c if gone is None else c[:gone]
    crossed = np.flatnonzero(seen > limit)
    at = int(crossed[0]) if crossed.size else gone
    final = float("nan") if gone is not None else float(np.mean(c[-max(1, c.size // 10):]))
    return CurveVerdict(at is not None, gone, at, start, final, peak, peak_at, limit,
                        float(factor))


def divergence_index(curve, factor=4.0):
    """Index of the iteration where the run diverged by :func:`judge_curve`'s rule (its
    loss went non-finite or first rose above ``factor`` x its first loss), or None.  The
    sweep and comparison plots judge a curve by it."""
    return judge_curve(curve, factor).at


#: the lecture's five optimizers with learning rates that suit a small MLP on standardised
#: photometric colours: (label, optimizer name, constructor kwargs)
DEFAULT_OPTIMIZERS = (
    ("sgd", "sgd", {"lr": 0.05}),
    ("momentum", "sgd", {"lr": 0.01, "momentum": 0.9}),
    ("adagrad", "adagrad", {"lr": 0.02}),
    ("rmsprop", "rmsprop", {"lr": 1e-3}),
    ("adam", "adam", {"lr": 1e-3}),
)



def parse_optimizers(optimizers):
    """[(label, name, kwargs)] from DEFAULT_OPTIMIZERS-like tuples, names like
    "adam" / "adam:0.003" / "momentum:0.01", or a dict {name: lr} ({"adam": 1e-3,
    "sgd": 0.1}; lr None: the name's default).  Labels are unique: one given more than once
    names its lr ("adam:0.001,adam:0.01" -> "adam(lr=0.001)", "adam(lr=0.01)")."""
    if optimizers is None:      # the kwargs copied: the caller's to change, not the defaults'
        return [(label, name, dict(kw)) for label, name, kw in DEFAULT_OPTIMIZERS]
    if isinstance(optimizers, str):
        optimizers = [o.strip() for o in optimizers.split(",") if o.strip()]
    if isinstance(optimizers, dict):
        # iterating the dict would read its names only, every lr silently dropped
        optimizers = [_name_with_lr(name, lr) for name, lr in optimizers.items()]
    optimizers = list(optimizers)
    if not optimizers:
        raise ValueError(f"optimizers must name at least one optimizer, got {optimizers!r}")
    defaults = {label: (name, kw) for label, name, kw in DEFAULT_OPTIMIZERS}
    out = []
    for o in optimizers:
        if isinstance(o, (tuple, list)):
            out.append(_checked_spec(o))
            continue
        label, _, lr = str(o).partition(":")
        label = label.strip().lower()
        if label in defaults:
            name, kw = defaults[label]
            kw = dict(kw)
        elif label in ("adamw", "nesterov"):
            name, kw = ("adamw", {"lr": 1e-3}) if label == "adamw" else \
                ("sgd", {"lr": 0.01, "momentum": 0.9, "nesterov": True})
        else:
            raise ValueError(f"unknown optimizer {label!r}; choose from sgd, momentum, "
                             "nesterov, adagrad, rmsprop, adam, adamw (optionally name:lr)")
        if lr:
            try:
                kw["lr"] = float(lr)
            except ValueError:
                raise ValueError(f"optimizer {o!r}: the lr after ':' must be a number") \
                    from None
            # as {name: lr} is checked: "sgd:0.1,adam:0" would fail later without a name
            check_positive(kw["lr"], f"the lr of optimizer {o!r}")
        out.append((label, name, kw))
    return _unique_labels(out)


def _checked_spec(o):
    """A (label, optimizer name, kwargs) entry of optimizers, checked: a pair or a bare
    dict raised IndexError / a TypeError of dict() that named neither."""
    if len(o) != 3 or not isinstance(o[0], str) or not isinstance(o[1], str) or \
            not isinstance(o[2], dict):
        raise ValueError(f"optimizers: an entry given as a tuple must be (label, optimizer "
                         f"name, kwargs dict), e.g. ('fast adam', 'adam', {{'lr': 0.01}}), "
                         f"got {tuple(o)!r}")
    return o[0], o[1], dict(o[2])


def _name_with_lr(name, lr):
    """A {name: lr} entry as the "name:lr" string parse_optimizers reads."""
    if lr is None:
        return name
    check_positive(lr, f"the lr of optimizers[{name!r}]")
    return f"{name}:{float(lr)!r}"


def _unique_labels(specs):
    """The labels made unique, so {label: curve} keeps every candidate: a label that occurs
    once stays as it is ("adam"); repeated ones name their lr ("adam(lr=0.001)", with
    " #2", " #3" ... if that still repeats)."""
    count = lambda labels, x: sum(1 for o in labels if o == x)  # noqa: E731
    labels = [label for label, _, _ in specs]
    labels = [label if count(labels, label) == 1 or kw.get("lr") is None else
              f"{label}(lr={float(kw['lr']):g})" for label, (_, _, kw) in zip(labels, specs)]
    seen, out = {}, []
    for label, (_, name, kw) in zip(labels, specs):
        if count(labels, label) > 1:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label} #{seen[label]}"
        out.append((label, name, kw))
    return out



def compare_optimizers(make_model, X, y, optimizers=None, iterations=300, batch_size=64,
                       loss=None, seed=0, backend=None, batched=True, memory_limit=None):
    """The lecture's comparison: each optimizer trains a copy of the SAME initial model on
    the SAME sequence of mini-batches for ``iterations`` steps.  Returns {label: loss per
    iteration} (NaN after a divergence), one entry per optimizer in the order given: a label
    given more than once names its lr ("adam(lr=0.001)", see parse_optimizers).
    ``optimizers``: None (sgd, momentum, adagrad,
    rmsprop, adam with lrs for standardised inputs), names with optional lrs
    ("sgd:0.1,adam"), a dict {name: lr} ({"adam": 1e-3, "sgd": 0.1}), or (label, name,
    kwargs) tuples.  batch_size None: every row in one batch (full-batch gradient descent).
    Judge the curves with judge_curve (diverged, where, peak, final loss).
    batched: True (default) races every optimizer in ONE pass (a ModelBatch with one
    optimizer type per model); False trains them one after another.  Same curves either
    way (see lr_sweep for when they are equal bit for bit)."""
    check_bool(batched, "batched")
    specs = parse_optimizers(optimizers)
    for label, name, kw in specs:
        check_candidate(name, kw, label)
    plan = SweepPlan.build(make_model, X, y, None, iterations, batch_size, loss, seed)
    if batched:
        curves = plan.run_batched(backend, [(name, kw) for _, name, kw in specs],
                                  memory_limit=memory_limit)
        out = {label: c for (label, _, _), c in zip(specs, curves)}
    else:
        kernels = backends.get_backend(backend if backend is not None else plan.base.backend)
        out = {label: plan.run(kernels, None, name, kw) for label, name, kw in specs}
    return out
