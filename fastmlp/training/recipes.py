"""The lecture's recipes for choosing hyper-parameters: a short learning-rate sweep and
k-fold cross-validation."""

import functools
from dataclasses import dataclass

import numpy as np

from .. import backends
from .._validate import check_array, check_positive, check_targets
from ..codes import loss_code
from ..metrics import edge_warning
from ..model import MLP
from ..optim import make_optimizer
from ..progress import progress_bar
from .fit import fit, stratified_split  # noqa: F401  (stratified_split re-exported)


@dataclass
class SweepResult:
    """lr_sweep's answer.  ``losses[i]``: mini-batch loss per iteration for ``lrs[i]`` (NaN
    after a divergence); ``final_loss[i]``: mean of its last 10 % of iterations;
    ``diverged[i]``: the loss went non-finite or rose above 4x its first value."""

    lrs: np.ndarray
    losses: list
    final_loss: np.ndarray
    diverged: np.ndarray
    best_lr: float
    best_index: int

    def table(self):
        rows = [f"{'lr':>10}  {'final loss':>12}  diverged"]
        for lr, f, d in zip(self.lrs, self.final_loss, self.diverged):
            mark = "  <- best" if lr == self.best_lr else ""
            rows.append(f"{lr:10.3g}  {f:12.6g}  {'yes' if d else 'no':>8}{mark}")
        return "\n".join(rows)


def _new_model(make_model):
    model = make_model() if callable(make_model) else None
    if not isinstance(model, MLP):
        raise TypeError("make_model must be a callable returning a fresh fastmlp.MLP, got "
                        f"{type(model).__name__ if model is not None else make_model!r}")
    return model


def lr_sweep(make_model, X, y, lrs=np.logspace(-5, 0, 11), iterations=150, optimizer="adam",
             batch_size=256, loss=None, seed=0, backend=None, progress=False,
             divergence_factor=4.0, optimizer_kwargs=None, executor=None):
    """Try each learning rate for ``iterations`` mini-batch steps and name the best.

    Every candidate starts from the SAME initial weights (one model from ``make_model()``,
    copied) and sees the SAME sequence of mini-batches (drawn once from ``seed``), so the
    curves differ only by the lr.  The best lr has the lowest final smoothed loss among the
    runs that did not diverge.
    X: raw features (the base model's contract turns them into network inputs).
    executor: None (run here, one candidate after another) or any object with
    ``map(fn, iterable)`` returning the results in order (a concurrent.futures executor,
    ``fastmlp.distributed.dask.ClientExecutor(client)``); same result either way.
    """
    plan = SweepPlan.build(make_model, X, y, lrs, iterations, batch_size, loss, seed)
    name = backends.resolve(backend if backend is not None else plan.base.backend)
    run = functools.partial(_sweep_candidate, plan, name, optimizer, optimizer_kwargs)
    curves = []
    bar = progress_bar(plan.lrs.size, "lr sweep", "lr", enabled=progress)
    for lr, curve in zip(plan.lrs, (map if executor is None else executor.map)(run, plan.lrs)):
        curves.append(curve)
        bar.update(line=plan.progress_line(lr, curve, divergence_factor), lr=float(lr))
    bar.close()
    return plan.result(curves, divergence_factor)


def _sweep_candidate(plan, backend, optimizer, optimizer_kwargs, lr):
    return plan.run(backends.get_backend(backend), float(lr), optimizer, optimizer_kwargs)


@dataclass
class SweepPlan:
    """Everything the candidates of a sweep share: the initial model, the checked data and
    the one mini-batch sequence.  ``run`` trains one candidate (here or on a Dask worker);
    ``result`` judges the curves.  A curve holds NaN after a divergence."""

    base: MLP
    lrs: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    sw: np.ndarray
    order: np.ndarray
    batch_size: int
    iterations: int
    loss_code: int

    @classmethod
    def build(cls, make_model, X, y, lrs, iterations, batch_size, loss, seed):
        """lrs None: the candidates bring their own lr (an optimizer comparison)."""
        if lrs is None:
            lrs = np.empty(0)
        else:
            lrs = np.asarray(lrs, dtype=np.float64).ravel()
            if lrs.size == 0 or not np.all(np.isfinite(lrs)) or np.any(lrs <= 0):
                raise ValueError("lrs must be a non-empty sequence of positive learning rates")
        check_positive(iterations, "iterations", integer=True)
        check_positive(batch_size, "batch_size", integer=True)
        base = _new_model(make_model)
        loss = loss if loss is not None else base.default_loss()
        code = loss_code(loss)
        X = check_array(base.transform_inputs(X), "X", base.n_inputs, base.dtype)
        if X.shape[0] == 0:
            raise ValueError("X is empty: need at least one sample")
        Y = check_targets(y, X.shape[0], loss, base.n_outputs, base.dtype)
        n = X.shape[0]
        bs = min(batch_size, n)
        rng = np.random.default_rng(seed)
        # the batch sequence: consecutive shuffles of the data, cut into `iterations` batches
        reps = -(-iterations * bs // n)
        order = np.concatenate([rng.permutation(n) for _ in range(reps)])[:iterations * bs]
        return cls(base, lrs, X, Y, np.ones(n, dtype=base.dtype), order, bs, iterations, code)

    def run(self, kernels, lr, optimizer, optimizer_kwargs, X=None, Y=None, sw=None,
            order=None):
        """The loss curve of one candidate (lr None: the optimizer's own / the one in
        optimizer_kwargs); X, Y, sw, order override the plan's arrays (a Dask worker passes
        its scattered copies)."""
        model = self.base.copy()
        kw = dict(optimizer_kwargs or {})
        if lr is not None:
            kw["lr"] = float(lr)
        opt = make_optimizer(optimizer, model.params, **kw)
        curve = np.full(self.iterations, np.nan)
        pick = lambda a, b: a if a is not None else b  # noqa: E731
        done = kernels.train_epoch(model.params, np.empty_like(model.params), opt.state, curve,
                                   pick(X, self.X), pick(Y, self.Y), pick(sw, self.sw),
                                   pick(order, self.order), self.batch_size,
                                   np.full(self.iterations, float(opt.lr)), 0, opt.code,
                                   opt.hyper_vector(), model.sizes_array, model.acts_array,
                                   self.loss_code)
        curve[done:] = np.nan
        return curve

    def judge(self, curve, divergence_factor):
        """(diverged, final smoothed loss) of one curve."""
        finite = curve[np.isfinite(curve)]
        diverged = finite.size < self.iterations or \
            finite.max() > divergence_factor * finite[0]
        tail = max(1, self.iterations // 10)
        return diverged, (np.inf if diverged else float(np.mean(curve[-tail:])))

    def progress_line(self, lr, curve, divergence_factor):
        diverged, final = self.judge(curve, divergence_factor)
        return f"lr {lr:.3g}: final loss {final:.6g}{'  (diverged)' if diverged else ''}"

    def result(self, curves, divergence_factor):
        judged = [self.judge(c, divergence_factor) for c in curves]
        diverged = np.array([d for d, _ in judged])
        final = np.array([f for _, f in judged])
        if np.all(diverged):
            raise RuntimeError("every learning rate diverged; try smaller lrs")
        best = int(np.argmin(np.where(diverged, np.inf, final)))
        edge_warning(self.lrs, float(self.lrs[best]))   # a best lr at the grid's edge
        return SweepResult(self.lrs, list(curves), final, diverged, float(self.lrs[best]),
                           best)


@dataclass
class CVResult:
    """cross_validate's answer: one metrics dict per fold, their mean and std, fold sizes."""

    folds: list
    mean: dict
    std: dict
    fold_sizes: list

    def table(self):
        keys = list(self.mean)
        rows = ["fold  " + "  ".join(f"{k:>14}" for k in keys)]
        for i, f in enumerate(self.folds):
            rows.append(f"{i + 1:4d}  " + "  ".join(f"{f[k]:14.5f}" for k in keys))
        rows.append("mean  " + "  ".join(f"{self.mean[k]:14.5f}" for k in keys))
        rows.append(" std  " + "  ".join(f"{self.std[k]:14.5f}" for k in keys))
        return "\n".join(rows)


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
    if proba.shape[1] == 2:
        out["roc_auc"] = metrics.roc_auc(y, proba[:, 1], positive=1)
    if positive is not None:
        out["completeness"] = metrics.completeness(y, pred, positive)
        out["contamination"] = metrics.contamination(y, pred, positive)
    return out


def cross_validate(make_model, X, y, k=5, stratified=True, seed=0, positive=None,
                   progress=False, executor=None, **fit_kwargs):
    """k-fold cross-validation: train a fresh ``make_model()`` on k-1 folds, score the held-out
    fold, for every fold.  ``fit_kwargs`` go to fit() (validation defaults to None here).
    ``positive``: the class whose completeness and contamination are reported.
    Returns a CVResult with per-fold metrics plus their mean and std (compare lrs or
    architectures by calling it once per candidate).
    X: raw features; each fold's model standardises itself when fit_kwargs hold
    ``standardize=True`` (statistics of its own training folds, no leakage).
    executor: None (run here) or any object with ``map(fn, iterable)`` returning results in
    order (see lr_sweep); same result either way."""
    plan = CVPlan.build(make_model, X, y, k, stratified, seed, positive, fit_kwargs)
    results = []
    bar = progress_bar(len(plan.folds), "cross-validation", "fold", enabled=progress)
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

    @classmethod
    def build(cls, make_model, X, y, k, stratified, seed, positive, fit_kwargs):
        base = _new_model(make_model)
        X = check_array(X, "X", base.n_inputs, base.dtype)
        y = np.asarray(y)
        if y.shape[:1] != (X.shape[0],):
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[:1]}")
        loss = fit_kwargs.get("loss") or base.default_loss()
        folds = kfold_indices(y, k, stratified and loss != "mse", seed)
        fit_kwargs = {"validation": None, "progress": False, **fit_kwargs}
        models = [base] + [_new_model(make_model) for _ in folds[1:]]
        return cls(X, y, folds, models, loss, seed, positive, fit_kwargs)

    def run(self, i, model, X=None, y=None, **extra_fit_kwargs):
        """Train ``model`` on every fold but fold i and return fold i's metrics; X, y
        override the plan's arrays (a Dask worker passes its scattered copies)."""
        X = self.X if X is None else X
        y = self.y if y is None else y
        test = self.folds[i]
        train = np.setdiff1d(np.arange(X.shape[0]), test, assume_unique=True)
        fit(model, X[train], y[train], seed=self.seed, **{**self.fit_kwargs, **extra_fit_kwargs})
        return _fold_metrics(model, X[test], y[test], self.loss, self.positive)

    def progress_line(self, i, res):
        return f"fold {i + 1}/{len(self.folds)}: " + ", ".join(f"{a} {b:.4f}"
                                                               for a, b in res.items())

    def result(self, results):
        keys = results[0].keys()
        mean = {m: float(np.mean([r[m] for r in results])) for m in keys}
        std = {m: float(np.std([r[m] for r in results])) for m in keys}
        return CVResult(results, mean, std, [len(f) for f in self.folds])


__all__ = ["lr_sweep", "cross_validate", "SweepResult", "CVResult", "kfold_indices"]


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
    """[(label, name, kwargs)] from DEFAULT_OPTIMIZERS-like tuples or names like
    "adam" / "adam:0.003" / "momentum:0.01"."""
    if optimizers is None:
        return [tuple(o) for o in DEFAULT_OPTIMIZERS]
    if isinstance(optimizers, str):
        optimizers = [o.strip() for o in optimizers.split(",") if o.strip()]
    defaults = {label: (name, kw) for label, name, kw in DEFAULT_OPTIMIZERS}
    out = []
    for o in optimizers:
        if isinstance(o, (tuple, list)):
            out.append((o[0], o[1], dict(o[2])))
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
        out.append((label, name, kw))
    return out



def compare_optimizers(make_model, X, y, optimizers=None, iterations=300, batch_size=64,
                       loss=None, seed=0, backend=None):
    """The lecture's comparison: each optimizer trains a copy of the SAME initial model on
    the SAME sequence of mini-batches for ``iterations`` steps.  Returns {label: loss per
    iteration} (NaN after a divergence).  ``optimizers``: None (sgd, momentum, adagrad,
    rmsprop, adam with lrs for standardised inputs), names with optional lrs
    ("sgd:0.1,adam"), or (label, name, kwargs) tuples."""
    specs = parse_optimizers(optimizers)
    plan = SweepPlan.build(make_model, X, y, None, iterations, batch_size, loss, seed)
    kernels = backends.get_backend(backend if backend is not None else plan.base.backend)
    out = {label: plan.run(kernels, None, name, kw) for label, name, kw in specs}
    return out
