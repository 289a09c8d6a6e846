"""``fastmlp train``: train on a catalog (in memory or streamed), report, save, plot."""

import time

import numpy as np

from .. import metrics
from ..data.stream import CatalogStream
from ..model import MLP
from ..training import fit, fit_stream, stratified_split
from .common import (CLIError, _color_pair, _load_data, _make_model_factory, _plot_path, _save,
                     _say, _schedule, _task, check_out_path)


def _class_weight(args):
    return None if args.class_weight == "none" else args.class_weight


def _config(args, hist, loss, schedule, source, **extra):
    return dict({"epochs": hist.epochs, "seed": args.seed, "optimizer": args.optimizer,
                 "lr": args.lr, "batch_size": args.batch_size, "schedule": schedule,
                 "loss": loss, "source": source}, **extra)


def _check_checkpoint_paths(args):
    """--checkpoint / --resume never name an input or the --out / --plot files."""
    ck = getattr(args, "checkpoint", None)
    check_out_path(ck, [args.catalog, args.out, args.plot], "--checkpoint")
    if isinstance(args.resume, str):
        check_out_path(args.out, [args.resume], "--out")
    if args.checkpoint_chunks is not None and not args.stream:
        raise CLIError("--checkpoint-chunks applies to --stream training")
    if args.checkpoint_steps is not None and args.stream:
        raise CLIError("--checkpoint-steps applies to in-memory training; with --stream use "
                       "--checkpoint-chunks")


def _checkpoint_kw(args, stream=False):
    kw = {"checkpoint": args.checkpoint, "checkpoint_every": args.checkpoint_every,
          "resume": args.resume}
    if stream:
        kw["checkpoint_chunks"] = args.checkpoint_chunks
    else:
        kw["checkpoint_steps"] = args.checkpoint_steps
    return kw


def _report_fit(hist, elapsed):
    sps = np.mean(hist.samples_per_s) if hist.samples_per_s else float("nan")
    _say(f"trained {hist.epochs} epochs in {elapsed:.2f} s on backend {hist.backend} "
         f"(mean {sps:,.0f} samples/s); final loss {hist.loss[-1]:.5f}"
         + (f", val_loss {hist.val_loss[-1]:.5f}" if hist.val_loss else "")
         + (f"; early stopping restored epoch {hist.best_epoch}" if hist.stopped_early
            else ""))
    if hist.runaway:
        _say("warning: training blew up (the loss exploded, or ended far above where it "
             "started); try a smaller --lr")


def _report_test(model, cat, te):
    """Held-out metrics through the model's own contract (raw features in)."""
    X, y = cat.X[te], cat.y[te]
    if model.link == "identity":
        pred = model.predict(X)
        _say(f"test metrics (n={te.size}): RMSE {metrics.rmse(y, pred):.4f}, "
             f"R^2 {metrics.r2(y, pred):.4f}")
        return
    proba = model.predict_proba(X)
    rep = metrics.classification_report(y, model.predict(X), proba=proba,
                                        positive=cat.positive, class_names=cat.class_names)
    _say(metrics.format_report(rep))


def cmd_train(args):
    _schedule(args.schedule, 10_000, args)  # a bad spec fails before the data are loaded
    check_out_path(args.out, [args.catalog])
    check_out_path(args.plot, [args.catalog, args.out], "--plot")
    _check_checkpoint_paths(args)
    if args.plot:
        _plot_path(args.plot)
    if args.stream:
        return _train_stream(args)
    cat = _load_data(args)
    n_out, loss = _task(cat)
    rng = np.random.default_rng(args.seed)
    tr, te = stratified_split(cat.y, args.test_fraction, rng)  # float y: a random split
    if tr.size < 2 or te.size < 1:
        raise CLIError(f"{len(cat)} rows are too few for a train / test split")
    model = _make_model_factory(args, cat, n_out)()
    schedule = _schedule(args.schedule, int(tr.size * (1 - args.validation)), args)
    _say(f"model: MLP({list(model.layer_sizes)}), {args.activation}, {args.dtype}, "
         f"{model.n_params} parameters; loss {loss}; optimizer {args.optimizer}"
         + (f" lr {args.lr:g}" if args.lr is not None else "")
         + (f", schedule {schedule}" if schedule else "")
         + f"; batch {args.batch_size}, {args.epochs} epochs")
    _say(f"split: {tr.size} train ({args.validation:.0%} of them for validation), "
         f"{te.size} test ({'stratified' if loss != 'mse' else 'random'}, seed {args.seed}); "
         "the model standardises its inputs with the training mean/std")
    t0 = time.perf_counter()
    hist = fit(model, cat.X[tr], cat.y[tr], loss=loss, optimizer=args.optimizer, lr=args.lr,
               batch_size=args.batch_size, epochs=args.epochs, schedule=schedule,
               validation=args.validation if args.validation > 0 else None,
               early_stopping=args.early_stopping, class_weight=_class_weight(args),
               seed=args.seed, progress=not args.quiet, backend=args.backend,
               n_threads=args.threads, standardize=True, **_checkpoint_kw(args))
    _report_fit(hist, time.perf_counter() - t0)
    _report_test(model, cat, te)
    if args.out:
        p = _save(args.out, model, _config(args, hist, loss, schedule, cat.meta.get("source")))
        _say(f"saved model to {p}")
    if args.plot:
        _plot_train(args.plot, hist, model, cat, te)
    return 1 if hist.runaway else 0


def _plot_train(path, hist, model, cat, te):
    from .. import plot
    p = _plot_path(path)
    if model.link == "identity":
        plot.loss_curves(hist, path=p)
    else:
        proba = model.predict_proba(cat.X[te])
        cols, names = _color_pair(cat, cat.X[te])
        plot.training_report(hist, cat.y[te], proba, cat.positive, cat.class_names,
                             colors=cols, color_names=names or ("", ""), path=p,
                             title=f"MLP({list(model.layer_sizes)}) on {len(cat)} rows "
                                   f"(test set shown)")
    _say(f"saved plot to {p}")


def _open_stream(args):
    if not args.catalog:
        raise CLIError("--stream reads a --catalog file chunk by chunk")
    if args.missing == "impute-median":
        raise CLIError("--stream cannot impute medians (that needs the whole column); use "
                       "--missing drop")
    stream = CatalogStream(args.catalog, features=args.features, label=args.label,
                           chunk_rows=args.chunk_rows, dtype=args.dtype,
                           class_names=args.class_names, positive=args.positive,
                           missing="error" if args.missing == "error" else "drop")
    if stream.label is None:
        raise CLIError(f"{args.catalog}: no label column named 'label' or 'class'; pass --label")
    stream.scan(progress=not args.quiet)
    _say(f"data: {args.catalog} streamed in {stream.n_chunks} chunks of up to "
         f"{args.chunk_rows} rows: {stream.n_valid} usable rows"
         + (f" ({', '.join(f'{a}={b}' for a, b in stream.class_counts.items())})"
            if stream.class_counts else "")
         + (f"; skipping {stream.n_dropped} rows with missing values" if stream.n_dropped
            else ""))
    return stream


def _train_stream(args):
    """train --stream: fit_stream over the whole --catalog, chunk by chunk."""
    stream = _open_stream(args)
    if stream.class_names is None:
        n_out, loss = 1, "mse"
    else:
        k = len(stream.class_names)
        n_out, loss = (1, "bce") if k == 2 else (k, "cross_entropy")
    model = MLP([len(stream.feature_names), *args.hidden, n_out], activation=args.activation,
                seed=args.seed, dtype=args.dtype, positive=stream.positive)
    schedule = _schedule(args.schedule, stream.n_valid, args)
    _say(f"model: MLP({list(model.layer_sizes)}), {args.activation}, {args.dtype}; loss {loss}; "
         f"optimizer {args.optimizer}; batch {args.batch_size}, {args.epochs} epochs; "
         f"features {', '.join(stream.feature_names)} standardised from a streaming pass")
    t0 = time.perf_counter()
    hist = fit_stream(model, stream, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=args.optimizer, lr=args.lr, loss=loss, schedule=schedule,
                      seed=args.seed, class_weight=_class_weight(args),
                      progress=not args.quiet, backend=args.backend, n_threads=args.threads,
                      **_checkpoint_kw(args, stream=True))
    _report_fit(hist, time.perf_counter() - t0)
    if args.out:
        p = _save(args.out, model, _config(args, hist, loss, schedule, str(args.catalog),
                                           streamed=True))
        _say(f"saved model to {p}")
    if args.plot:
        from .. import plot
        plot.loss_curves(hist, path=args.plot)
        _say(f"saved plot to {args.plot}")
    return 1 if hist.runaway else 0
