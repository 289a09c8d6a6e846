"""``fastmlp sweep``, ``cv`` and ``compare-optimizers``: the recipes on a catalog."""

import warnings

import numpy as np

from .. import backends, metrics, plot
from ..data import Standardizer
from ..training.loop import TrainingRunaway
from ..schedules import ScheduleWarning
from ..training.recipes import (compare_optimizers, cross_validate, judge_curve, lr_sweep,
                                parse_optimizers)
from .._validate import counted
from .common import (CLIError, check_optimizer_kwargs, check_out_path, check_plot_path,
                     load_data, model_factory, optimizer_text, outputs_and_loss, say,
                     schedule_spec)


def _standardised_factory(args, cat, n_out):
    """Models that carry the whole catalog's standardisation (sweeps and comparisons train
    every candidate on the same rows)."""
    make = model_factory(args, cat, n_out)
    st = Standardizer().fit(cat.X).as_tuple()

    def make_model():
        return make().set_contract(standardization=st)
    return make_model


def _steps_text(args, count, what):
    """'150 iterations of batch 256', or '40 full-batch iterations' (not 'of batch full')."""
    if getattr(args, "full_batch", False):
        return counted(count, f"full-batch {what}")
    return f"{counted(count, what)} of batch {args.batch_size}"


def _check_figures(args, flags=("--plot",)):
    """The figures' paths, before any work: never the input catalog (a CSV may have any
    suffix, cat.svg too), never each other, and writable as figures."""
    done = []
    for flag in flags:
        path = getattr(args, flag.lstrip("-"))
        if path:
            check_out_path(path, [args.catalog], flag, done)
            check_plot_path(path, flag)
            done.append((flag, path))


def cmd_sweep(args):
    args.optimizer_kwargs = check_optimizer_kwargs(args)    # before the data are loaded
    _check_figures(args)
    cat = load_data(args)
    n_out, loss = outputs_and_loss(cat)
    X = cat.X
    say(f"lr sweep: {counted(len(args.lrs), 'learning rate')}, "
        f"{_steps_text(args, args.iterations, 'iteration')}, "
        f"optimizer {optimizer_text(args)}, hidden {list(args.hidden)}")
    with backends.threads(args.threads), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        res = lr_sweep(_standardised_factory(args, cat, n_out), X, cat.y, lrs=args.lrs,
                       iterations=args.iterations, optimizer=args.optimizer,
                       optimizer_kwargs=args.optimizer_kwargs,
                       batch_size=args.batch_size, loss=loss, seed=args.seed,
                       backend=args.backend, progress=not args.quiet,
                       batched=not args.serial)
    for line in res.table().splitlines():
        say(line)
    say(f"best lr: {res.best_lr:.3g}")
    for w in caught:                    # e.g. the best lr sits at the edge of the grid
        say(f"warning: {w.message}")
    if args.plot:
        plot.lr_sweep(res, path=args.plot,
                      title=f"lr sweep: {args.optimizer}, hidden {list(args.hidden)}, "
                            f"{_steps_text(args, args.iterations, 'iteration')}")
        say(f"saved plot to {args.plot}")
    return 0



def cmd_cv(args):
    schedule_spec(args.schedule, None, args)
    args.optimizer_kwargs = check_optimizer_kwargs(args)
    _check_figures(args)                # checked before the folds are trained, not after
    cat = load_data(args)
    n_out, loss = outputs_and_loss(cat)
    if loss == "mse" and args.class_weight != "none":    # as train says it
        raise CLIError(f"--class-weight applies to classification, and the label column "
                       f"{cat.meta.get('label')!r} holds non-integer values (a regression "
                       "target)")
    _check_fold_count(args.k, len(cat))     # before the run is announced
    _check_fold_counts(cat, args.k, stratified=loss != "mse")
    X = cat.X
    # T from the largest fold's training rows (the folds' sizes differ by at most one):
    # from the smallest, int(n (1 - 1/k)), the other folds took a step more per epoch than T
    # counted and ran their last steps at a cosine's lr 0
    schedule = schedule_spec(args.schedule, len(cat) - len(cat) // args.k, args)
    say(f"{args.k}-fold cross-validation, {counted(args.epochs, 'epoch')} per fold, hidden "
        f"{list(args.hidden)}, optimizer {optimizer_text(args)}"
        + (f", schedule {schedule}" if schedule is not None else "")
        + " (each fold's model standardised with its training folds' mean/std)")
    with warnings.catch_warnings(record=True) as caught:   # said as lines, as sweep does
        warnings.simplefilter("always", UserWarning)
        # (each fold's schedule warning: said once by schedule_spec, not k times)
        warnings.filterwarnings("ignore", category=ScheduleWarning)
        res = cross_validate(model_factory(args, cat, n_out), X, cat.y, k=args.k,
                             stratified=loss != "mse", seed=args.seed, positive=cat.positive,
                             loss=loss, optimizer=args.optimizer, lr=args.lr,
                             optimizer_kwargs=args.optimizer_kwargs,
                             batch_size=args.batch_size, epochs=args.epochs,
                             schedule=schedule, class_weight=None if args.class_weight ==
                             "none" else args.class_weight, backend=args.backend,
                             n_threads=args.threads, progress=not args.quiet,
                             standardize=True, batched=not args.serial)
    keys = list(res.mean)
    w = max(12, *(len(k) for k in keys))
    if cat.positive is not None:
        say(f"completeness and contamination of {cat.positive_name}; n/a: the fold selected "
            "none")
    say("fold  " + "  ".join(f"{k:>{w}}" for k in keys))
    for i, f in enumerate(res.folds):
        say(f"{i + 1:4d}  " + "  ".join(f"{metrics.format_rate(f[k], '.5f'):>{w}}"
                                         for k in keys))
    say("mean +- std: " + ", ".join(_mean_std_text(res, k) for k in keys))
    if args.plot:       # the title says what was run, as the sweep's does
        plot.cv_folds(res, path=args.plot, positive_name=cat.positive_name,
                      title=f"Cross-validation: {args.optimizer}"
                            + (f" lr {args.lr:g}" if args.lr is not None else "")
                            + f", hidden {list(args.hidden)}, "
                            f"{_steps_text(args, args.epochs, 'epoch')}")
        say(f"saved plot to {args.plot}")
    for w in caught:    # a fold that blew up: its metrics are a broken model's (train: exit 1)
        say(f"warning: {w.message}")
    return 1 if any(issubclass(w.category, TrainingRunaway) for w in caught) else 0


def _mean_std_text(res, key):
    """'contamination 0.01234 +- 0.00456' as res.reported_mean_std gives it: contamination
    over the folds that selected something, saying how many when some did not ('... over 4
    of 5 folds'); any other metric over every fold, n/a when a fold has none (a diverged
    fold's NaN accuracy is not averaged out)."""
    mean, std, _ = res.reported_mean_std(key)
    text = f"{key} {metrics.format_rate(mean, '.5f')} +- {metrics.format_rate(std, '.5f')}"
    counted_folds = res.folds_counted_text(key)
    return text + (f" over {counted_folds}" if counted_folds else "")


def _check_fold_count(k, n_rows):
    """--k between 2 and the catalog's row count, named as the flag (cross_validate can
    only say k, and only after the run was announced)."""
    if not 2 <= k <= n_rows:
        raise CLIError(f"--k must be between 2 and the number of rows ({n_rows}), got {k}: "
                       "each fold is held out once while the others train")


def _check_fold_counts(cat, k, stratified):
    """A class with fewer rows than --k folds, named as the catalog names it (cross_validate
    can only say "class 0")."""
    if not stratified or cat.class_names is None:
        return
    counts = np.bincount(cat.y, minlength=len(cat.class_names))
    # a label with no rows (integer labels 0, 1, 3 name a class "2") is no class to split
    present = np.flatnonzero(counts)
    c = int(present[np.argmin(counts[present])])
    if counts[c] < k:
        raise CLIError(f"class {cat.class_names[c]} has {counted(int(counts[c]), 'row')}, "
                       f"fewer than --k {k} folds: some folds would hold none of it; use a "
                       "smaller --k")


def cmd_compare(args):
    _check_figures(args, ("--plot", "--paths"))
    plot_to = None if args.plot is None else check_plot_path(args.plot)
    specs = parse_optimizers(args.optimizers)
    cat = load_data(args)
    n_out, loss = outputs_and_loss(cat)
    X = cat.X
    run = (counted(args.iterations, 'full-batch step') if getattr(args, "full_batch", False)
           else f"{counted(args.iterations, 'batch', 'batches')} of {args.batch_size}") \
        + f", hidden {list(args.hidden)}"
    say(f"{counted(len(specs), 'optimizer')} from the same initial weights on the same {run}")
    with backends.threads(args.threads):
        curves = compare_optimizers(_standardised_factory(args, cat, n_out), X, cat.y,
                                    optimizers=specs, iterations=args.iterations,
                                    batch_size=args.batch_size, loss=loss, seed=args.seed,
                                    backend=args.backend, batched=not args.serial)
    tail = max(1, args.iterations // 10)     # judge_curve's final loss: this mean
    w = max(10, *(len(label) for label, _, _ in specs))
    settings = {label: name + "(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else
                                              f"{k}={v}" for k, v in kw.items()) + ")"
                for label, name, kw in specs}
    ws = max(28, *map(len, settings.values()))      # nesterov's settings are 41 wide
    say(f"{'optimizer':>{w}}  {'settings':<{ws}}  final loss (mean of last {tail})")
    lrs = {}
    for label, name, kw in specs:       # parse_optimizers made the labels unique: by key
        c = curves[label]
        lrs[label] = None if "(lr=" in label else kw.get("lr")   # not twice in the legend
        verdict = judge_curve(c)            # the plot's rule: one verdict
        # the final loss in every case ('-' when it went non-finite), then what happened
        fin = f"{verdict.final:.6g}" if np.isfinite(verdict.final) else "-"
        note = verdict.note()
        say(f"{label:>{w}}  {settings[label]:<{ws}}  {fin}" + (f"  ({note})" if note else ""))
    if plot_to is not None:
        plot.optimizer_comparison(curves, path=plot_to, lrs=lrs,
                                  smooth=1 if getattr(args, "full_batch", False) else 10,
                                  title=f"Optimizers from the same initial weights on the "
                                        f"same {run}")
        say(f"saved plot to {plot_to}")
    if args.paths:
        plot.optimizer_paths(path=args.paths)
        say(f"saved plot to {args.paths}")
    return 0
