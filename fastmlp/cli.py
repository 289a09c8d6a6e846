"""The ``fastmlp`` command: train, sweep, cv, predict, compare-optimizers, bench.

``fastmlp train`` with no arguments trains a 4-64-64-1 MLP on the built-in synthetic
star / quasar catalog and prints per-epoch progress and the held-out test metrics::

    fastmlp train
    fastmlp train --catalog sdssdr6_colors_class.200000.npy --features u-g,g-r,r-i,i-z \\
                  --label label --positive 0
    fastmlp train --catalog sdss17_star_classification_first30k.csv \\
                  --features colors:ugriz --label class --positive QSO
    fastmlp sweep --iterations 150 --plot sweep.png
    fastmlp cv --k 5 --epochs 5
    fastmlp train --catalog big.parquet --features colors:ugriz --label class --stream \
                  --out model.npz
    fastmlp predict --model model.npz --catalog in.parquet --out out.parquet --id-column objid
    fastmlp compare-optimizers --plot optimizers.png

Library errors (bad values, unreadable catalogs) are reported as ``fastmlp: error: ...``
with exit status 2, like argparse's own errors.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_N_SAMPLES = 200_000


class CLIError(Exception):
    """An input problem found by the CLI itself (reported like a library ValueError)."""


# ---------------------------------------------------------------------------------------
# argument types
def _hidden(text):
    t = text.strip().lower()
    if t in ("", "none", "0"):
        return ()
    try:
        sizes = tuple(int(s) for s in t.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths such as 64,64 (or 'none'), got {text!r}"
        ) from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return sizes


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        v = 0
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _positive_float(text):
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return v


def _fraction(text):
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}")
    return v


def _fraction_or_zero(text):
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return v


def _lrs(text):
    """'1e-4,1e-3,1e-2' or 'logspace:-5,0,11' (numpy.logspace(start, stop, num))."""
    t = text.strip()
    try:
        if t.startswith("logspace:"):
            a, b, n = t.split(":", 1)[1].split(",")
            lrs = np.logspace(float(a), float(b), int(n))
        else:
            lrs = np.array([float(s) for s in t.split(",") if s.strip()])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected learning rates such as 1e-4,1e-3,1e-2 or logspace:-5,0,11, got {text!r}"
        ) from None
    if lrs.size == 0 or not np.all(lrs > 0) or not np.all(np.isfinite(lrs)):
        raise argparse.ArgumentTypeError(f"learning rates must be positive numbers, got {text!r}")
    return lrs


# ---------------------------------------------------------------------------------------
# parser
def _data_args(p):
    g = p.add_argument_group("data (default: the built-in synthetic catalog)")
    g.add_argument("--catalog", metavar="PATH",
                   help="a CSV, .npy, FITS (.fits) or Parquet (.parquet) catalog to train on "
                        "instead of the synthetic one")
    g.add_argument("--features", metavar="SPEC",
                   help="feature columns: comma-separated names (u-g,g-r,r-i,i-z), column "
                        "indices of a plain .npy, or colors:ugriz (colours from magnitude "
                        "columns u g r i z; colors:ugriz+r appends r).  The synthetic "
                        "catalog offers u-g,g-r,r-i,i-z and the magnitudes u,g,r,i,z")
    g.add_argument("--label", metavar="COLUMN",
                   help="label column (default: a column named 'label' or 'class')")
    g.add_argument("--positive", metavar="CLASS",
                   help="the positive class (the quasars), a class name such as QSO or a "
                        "label value such as 0 (default: a class named QSO/quasar)")
    g.add_argument("--class-names", metavar="A,B,...",
                   help="names for integer labels 0, 1, ... (e.g. QSO,STAR for the DR6 file)")
    g.add_argument("--drop-invalid", action="store_true",
                   help="drop rows with NaN, inf or -9999 in the features instead of failing "
                        "(the same as --missing drop)")
    g.add_argument("--missing", choices=("error", "drop", "impute-median"), default=None,
                   help="rows with missing values (NaN, inf, -9999, null): error (default), "
                        "drop them, or impute-median (replace a missing feature by its "
                        "column's median; rows without a label are dropped)")
    g.add_argument("--n-samples", type=_positive_int, default=DEFAULT_N_SAMPLES, metavar="N",
                   help=f"rows of the synthetic catalog (default {DEFAULT_N_SAMPLES})")
    g.add_argument("--quasar-fraction", type=_fraction, default=0.1, metavar="F",
                   help="quasar fraction of the synthetic catalog (default 0.1)")
    g.add_argument("--galaxy-fraction", type=_fraction_or_zero, default=0.0, metavar="F",
                   help="galaxy fraction of the synthetic catalog; > 0 makes it three-class "
                        "(default 0)")


def _model_args(p):
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=_hidden, default=(64, 64), metavar="W1,W2,...",
                   help="hidden layer widths (default 64,64; 'none' = logistic regression)")
    from .codes import ACTIVATIONS
    g.add_argument("--activation", default="relu", choices=ACTIVATIONS,
                   help="hidden activation (default relu)")
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the weights, the splits, the shuffling and the synthetic "
                        "catalog (default 0)")


def _train_args(p, epochs=10):
    from .optim import OPTIMIZER_NAMES
    from .backends import BACKENDS
    g = p.add_argument_group("training")
    g.add_argument("--optimizer", default="adam", choices=OPTIMIZER_NAMES)
    g.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (default: the optimizer's default, 1e-3 for adam)")
    g.add_argument("--schedule", default=None, metavar="SPEC",
                   help="lr schedule: constant, linear:final=1e-4,T=2000, "
                        "step:step_size=1000,gamma=0.5, exponential:gamma=0.999, cosine "
                        "(T defaults to the total number of steps), warmup=100+cosine, ...")
    g.add_argument("--batch-size", type=_positive_int, default=256)
    g.add_argument("--epochs", type=_positive_int, default=epochs)
    g.add_argument("--class-weight", choices=("none", "balanced"), default="none",
                   help="weight the loss by inverse class frequency (default none)")
    g.add_argument("--backend", default=None, choices=("auto",) + tuple(BACKENDS),
                   help="kernel backend (default auto: c, numba, numpy, the first available)")
    g.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="threads for the kernels (default: all cores)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastmlp",
        description="Train multi-layer perceptrons on photometric catalogs (star / quasar / "
                    "galaxy classification from colours) as fast as the CPU allows.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command",
                                metavar="{train,sweep,cv,predict,compare-optimizers,bench}")

    t = sub.add_parser("train", help="train an MLP and report held-out test metrics",
                       description="Train an MLP (standardised features, stratified train / "
                                   "test split) and print per-epoch progress and the test "
                                   "metrics, including the quasar completeness and "
                                   "contamination.")
    _data_args(t)
    _model_args(t)
    _train_args(t)
    g = t.add_argument_group("evaluation and output")
    g.add_argument("--test-fraction", type=_fraction, default=0.2,
                   help="held-out test fraction, stratified by class (default 0.2)")
    g.add_argument("--validation", type=_fraction_or_zero, default=0.1,
                   help="fraction of the training rows held out for the validation loss "
                        "(default 0.1; 0 = none)")
    g.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop when the validation loss has not improved for PATIENCE epochs "
                        "and restore the best weights")
    g.add_argument("--out", metavar="MODEL.npz", help="save the trained model here")
    g.add_argument("--plot", metavar="PNG",
                   help="save a figure: loss curves, ROC and completeness-contamination of the "
                        "positive class, colour-colour diagram by predicted class")
    g.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    g.add_argument("--stream", action="store_true",
                   help="out-of-core: read --catalog in chunks (bounded memory) and train on "
                        "all of it with fastmlp.stream.fit_stream (no test split; use "
                        "fastmlp predict afterwards)")
    g.add_argument("--chunk-rows", type=_positive_int, default=100_000, metavar="N",
                   help="rows per chunk with --stream (default 100000)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sweep", help="learning-rate sweep (the lecture's second recipe)",
                       description="Train from the same initial weights on the same batches "
                                   "for a few iterations per learning rate; print each lr's "
                                   "final smoothed loss, divergence and the best lr.")
    _data_args(s)
    _model_args(s)
    g = s.add_argument_group("sweep")
    from .optim import OPTIMIZER_NAMES
    from .backends import BACKENDS
    g.add_argument("--lrs", type=_lrs, default=np.logspace(-5, 0, 11),
                   help="learning rates: 1e-4,1e-3,... or logspace:-5,0,11 (the default)")
    g.add_argument("--iterations", type=_positive_int, default=150)
    g.add_argument("--optimizer", default="adam", choices=OPTIMIZER_NAMES)
    g.add_argument("--batch-size", type=_positive_int, default=256)
    g.add_argument("--backend", default=None, choices=("auto",) + tuple(BACKENDS))
    g.add_argument("--threads", type=_positive_int, default=None, metavar="N")
    g.add_argument("--plot", metavar="PNG",
                   help="save the sweep: loss per iteration for each lr, and final loss vs lr "
                        "(log axis) with the chosen lr and diverged runs marked")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)

    c = sub.add_parser("cv", help="k-fold cross-validation (the lecture's third recipe)",
                       description="Stratified k-fold cross-validation: per-fold test metrics "
                                   "and their mean +- std.")
    _data_args(c)
    _model_args(c)
    _train_args(c, epochs=5)
    c.add_argument("--k", type=_positive_int, default=5, help="number of folds (default 5)")
    c.add_argument("--plot", metavar="PNG", help="save each fold's metrics with mean +- std")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_cv)

    o = sub.add_parser("compare-optimizers",
                       help="loss vs iteration for SGD, momentum, Adagrad, RMSprop, Adam",
                       description="The lecture's comparison: every optimizer trains a copy of "
                                   "the same initial MLP on the same mini-batches; prints the "
                                   "final smoothed loss of each and plots the curves. "
                                   "--paths also draws each optimizer's path over an "
                                   "ill-conditioned quadratic and Rosenbrock's valley.")
    _data_args(o)
    _model_args(o)
    g = o.add_argument_group("comparison")
    g.add_argument("--optimizers", default="sgd,momentum,adagrad,rmsprop,adam",
                   metavar="NAME[:LR],...",
                   help="optimizers to compare, each with an optional lr (default "
                        "sgd,momentum,adagrad,rmsprop,adam with lrs 0.05, 0.01 (momentum "
                        "0.9), 0.02, 1e-3, 1e-3)")
    g.add_argument("--iterations", type=_positive_int, default=300)
    g.add_argument("--batch-size", type=_positive_int, default=64)
    g.add_argument("--backend", default=None, choices=("auto",) + tuple(BACKENDS))
    g.add_argument("--plot", metavar="PNG", default="optimizers.png",
                   help="the loss curves (default optimizers.png; 'none' to skip)")
    g.add_argument("--paths", metavar="PNG",
                   help="also draw the optimizers' paths over 2-D cost surfaces here")
    o.set_defaults(func=cmd_compare)

    pr = sub.add_parser("predict", help="classify a whole catalog file in chunks",
                        description="Read a catalog (CSV, .npy, FITS, Parquet) chunk by chunk, "
                                    "apply a saved model (its standardisation included) and "
                                    "write class probabilities and labels beside an id "
                                    "column (Parquet, CSV or .npy; written atomically). Rows "
                                    "with missing features get NaN probabilities, label -1 "
                                    "and valid=False.")
    pr.add_argument("--model", required=True, metavar="MODEL.npz",
                    help="a model saved by fastmlp train --out (or fastmlp.io.save_model)")
    pr.add_argument("--catalog", required=True, metavar="PATH", help="the catalog to classify")
    pr.add_argument("--out", required=True, metavar="PATH",
                    help="output table: .parquet, .csv or .npy")
    pr.add_argument("--out-format", choices=("parquet", "csv", "npy"), default=None)
    pr.add_argument("--format", choices=("csv", "npy", "fits", "parquet"), default=None,
                    help="the catalog's format (default: from its suffix)")
    pr.add_argument("--id-column", metavar="COLUMN",
                    help="catalog column copied to the output as the row id (e.g. objid); "
                         "default: the row index, in a column 'row'")
    pr.add_argument("--features", metavar="SPEC",
                    help="feature columns (default: the names stored with the model; a colour "
                         "u-g is computed from columns u and g if needed)")
    pr.add_argument("--chunk-rows", type=_positive_int, default=100_000, metavar="N",
                    help="rows per chunk (default 100000): memory stays bounded")
    pr.add_argument("--plot", metavar="PNG",
                    help="colour-colour diagram (u-g vs g-r, else the first two features) of a "
                         "random sample of up to 40000 rows, coloured by predicted class")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=cmd_predict)

    b = sub.add_parser("bench", help="benchmarks (fastmlp.bench); arguments are passed on",
                       add_help=False)
    b.set_defaults(func=cmd_bench)
    return parser


# ---------------------------------------------------------------------------------------
# helpers
def _say(*a):
    print(*a, flush=True)


def _load_data(args):
    from .datasets import COLOR_FEATURES, load_catalog, make_photometric_catalog
    if args.catalog:
        cat = load_catalog(args.catalog, features=args.features, label=args.label,
                           positive=args.positive, drop_invalid=args.drop_invalid,
                           dtype=args.dtype, class_names=args.class_names,
                           missing=args.missing)
        if cat.y is None:
            raise CLIError(f"{args.catalog}: the catalog has no labels to train on")
        src = f"{args.catalog}"
    else:
        for opt in ("label", "positive", "class_names"):
            if getattr(args, opt) is not None:
                raise CLIError(f"--{opt.replace('_', '-')} applies to --catalog files; the "
                               "synthetic catalog's classes are star, quasar (, galaxy)")
        if args.quasar_fraction + args.galaxy_fraction >= 1.0:
            raise CLIError("--quasar-fraction plus --galaxy-fraction must be below 1")
        t0 = time.perf_counter()
        cat = make_photometric_catalog(args.n_samples, quasar_fraction=args.quasar_fraction,
                                       galaxy_fraction=args.galaxy_fraction, seed=args.seed,
                                       dtype=args.dtype,
                                       features=args.features or COLOR_FEATURES)
        src = f"synthetic catalog (seed {args.seed}, {time.perf_counter() - t0:.2f} s)"
    if cat.class_names is not None:
        counts = ", ".join(f"{k}={v}" for k, v in cat.class_counts().items())
        pos = f"; positive class: {cat.positive_name}" if cat.positive is not None else ""
    else:
        counts, pos = f"regression target {cat.meta.get('label')!r}", ""
    dropped = cat.meta.get("n_dropped", 0)
    _say(f"data: {src}: {len(cat)} rows ({counts}){pos}")
    imputed = cat.meta.get("imputed")
    _say(f"features: {', '.join(cat.feature_names)}"
         + (f"; dropped {dropped} rows with missing values" if dropped else "")
         + (f"; imputed the median for {sum(imputed.values())} missing values "
            f"({', '.join(f'{k}: {v}' for k, v in imputed.items())})" if imputed else ""))
    return cat


def _task(cat):
    """(n_outputs, loss) for the catalog's labels."""
    if cat.class_names is None:
        return 1, "mse"
    k = len(cat.class_names)
    present = np.unique(cat.y)
    if present.size < 2:
        raise CLIError(f"the labels hold a single class ({cat.class_names[present[0]]}); "
                       "need at least two classes to train a classifier")
    return (1, "bce") if k == 2 else (k, "cross_entropy")


def _standardise(X):
    mean = X.mean(axis=0, dtype=np.float64)
    std = X.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return mean, std


def _apply(X, mean, std):
    return ((X - mean) / std).astype(X.dtype)


def _make_model_factory(args, n_in, n_out):
    from .model import MLP
    sizes = [n_in, *args.hidden, n_out]

    def make_model():
        return MLP(sizes, activation=args.activation, seed=args.seed, dtype=args.dtype)
    return make_model


def _schedule(spec, n_train, args):
    """The --schedule text, with T defaulting to the run's total step count."""
    if spec is None:
        return None
    total = args.epochs * -(-n_train // args.batch_size)
    head, _, rest = spec.strip().rpartition("+")
    name, _, kw = rest.partition(":")
    if name.strip() in ("linear", "cosine") and "T=" not in kw:
        kw = ",".join(filter(None, [kw, f"T={total}"]))
        rest = f"{name}:{kw}"
    full = f"{head}+{rest}" if head else rest
    from .schedules import from_spec
    from_spec(full, args.lr if args.lr is not None else 1e-3)  # validate now: clear error
    return full


def _threads(args):
    if args.threads is not None:
        from .backends import set_num_threads
        set_num_threads(args.threads)


def _load_model(path):
    """(model, info dict) from a fastmlp.io model file (what ``--out`` writes).  info:
    feature_names, mean, std (None if the model carries no standardisation), class_names,
    positive."""
    from . import io as fio
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    model = fio.load(path)
    st = model.standardization
    cfg = model.training_config or {}
    pos = cfg.get("positive")
    return model, {"feature_names": model.feature_names,
                   "mean": None if st is None else st[0],
                   "std": None if st is None else st[1],
                   "class_names": model.class_names,
                   "positive": None if pos is None else int(pos)}


def _save(path, model, cat, mean, std, optimizer, config):
    """--out: fastmlp.io.save_model (versioned, checksummed, atomic) with the features,
    the standardisation, the class names, the optimizer state and the run's settings."""
    from . import io as fio
    path = Path(path)
    d = path.parent if str(path.parent) else Path(".")
    if not d.is_dir():
        raise CLIError(f"--out {path}: directory {d} does not exist")
    config = dict(config, positive=cat.positive)
    return fio.save_model(model, path, feature_names=list(cat.feature_names),
                          standardization=(mean, std),
                          class_names=None if cat.class_names is None else
                          list(cat.class_names), optimizer=optimizer, training_config=config)


def _plot_path(path, flag="--plot"):
    p = Path(path)
    d = p.parent if str(p.parent) else Path(".")
    if not d.is_dir():
        raise CLIError(f"{flag} {p}: directory {d} does not exist")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError(f"{flag} needs matplotlib: pip install 'fastmlp[plot]'") from None
    return p


def _color_pair(cat, X):
    """(n, 2) u-g and g-r (or the first two features) of the rows X, raw units."""
    names = list(cat.feature_names)
    if "u-g" in names and "g-r" in names:
        return X[:, [names.index("u-g"), names.index("g-r")]], ("u-g", "g-r")
    if X.shape[1] >= 2:
        return X[:, :2], tuple(names[:2])
    return None, None


def _plot_train(path, hist, model, Xte, yte, cat, mean, std):
    from . import plot
    p = _plot_path(path)
    if model.loss == "mse":
        plot.loss_curves(hist, path=p)
    else:
        proba = model.predict_proba(Xte)
        raw = Xte * std + mean
        cols, names = _color_pair(cat, raw)
        plot.training_report(hist, yte, proba, cat.positive, cat.class_names, colors=cols,
                             color_names=names or ("", ""), path=p,
                             title=f"MLP({list(model.layer_sizes)}) on {len(cat)} rows")
    _say(f"saved plot to {p}")


# ---------------------------------------------------------------------------------------
# commands
def cmd_train(args):
    from . import metrics
    from .train import fit, stratified_split
    _schedule(args.schedule, 10_000, args)  # a bad spec fails before the data are loaded
    if args.plot:
        _plot_path(args.plot)
    if args.stream:
        return _train_stream(args)
    cat = _load_data(args)
    n_out, loss = _task(cat)
    X, y = cat.X, cat.y
    rng = np.random.default_rng(args.seed)
    tr, te = stratified_split(y, args.test_fraction, rng)  # float y: a plain random split
    if tr.size < 2 or te.size < 1:
        raise CLIError(f"{len(cat)} rows are too few for a train / test split")
    mean, std = _standardise(X[tr])
    Xtr, Xte = _apply(X[tr], mean, std), _apply(X[te], mean, std)
    make_model = _make_model_factory(args, X.shape[1], n_out)
    model = make_model()
    schedule = _schedule(args.schedule, int(tr.size * (1 - args.validation)), args)
    _say(f"model: MLP({list(model.layer_sizes)}), {args.activation}, {args.dtype}, "
         f"{model.n_params} parameters; loss {loss}; optimizer {args.optimizer}"
         + (f" lr {args.lr:g}" if args.lr is not None else "")
         + (f", schedule {schedule}" if schedule else "")
         + f"; batch {args.batch_size}, {args.epochs} epochs")
    _say(f"split: {tr.size} train ({args.validation:.0%} of them for validation), "
         f"{te.size} test ({'stratified' if loss != 'mse' else 'random'}, seed {args.seed}); "
         "features standardised with the "
         "training mean/std")
    _threads(args)
    ytr = y[tr]
    validation = args.validation if args.validation > 0 else None
    if validation is not None and loss == "mse":  # a random validation split of the targets
        fit_idx, val_idx = stratified_split(ytr.astype(np.float64), validation, rng)
        validation = (Xtr[val_idx], ytr[val_idx])
        Xtr, ytr = Xtr[fit_idx], ytr[fit_idx]
    t0 = time.perf_counter()
    hist = fit(model, Xtr, ytr, loss=loss, optimizer=args.optimizer, lr=args.lr,
               batch_size=args.batch_size, epochs=args.epochs, schedule=schedule,
               validation=validation,
               early_stopping=args.early_stopping,
               class_weight=None if args.class_weight == "none" else args.class_weight,
               seed=args.seed, progress=not args.quiet, backend=args.backend,
               n_threads=args.threads)
    elapsed = time.perf_counter() - t0
    sps = np.mean(hist.samples_per_s) if hist.samples_per_s else float("nan")
    _say(f"trained {hist.epochs} epochs in {elapsed:.2f} s on backend {hist.backend} "
         f"(mean {sps:,.0f} samples/s); final loss {hist.loss[-1]:.5f}"
         + (f", val_loss {hist.val_loss[-1]:.5f}" if hist.val_loss else "")
         + (f"; early stopping restored epoch {hist.best_epoch}"
            if getattr(hist, "stopped_early", False) else ""))
    if loss == "mse":
        pred = model.predict(Xte)
        _say(f"test metrics (n={te.size}): RMSE {metrics.rmse(y[te], pred):.4f}, "
             f"R^2 {metrics.r2(y[te], pred):.4f}")
    else:
        proba = model.predict_proba(Xte)
        pred = proba.argmax(axis=1)
        rep = metrics.classification_report(y[te], pred, proba=proba, positive=cat.positive,
                                            class_names=cat.class_names)
        _say(metrics.format_report(rep))
    if args.out:
        p = _save(args.out, model, cat, mean, std, hist.optimizer,
                  {"epochs": hist.epochs, "seed": args.seed, "optimizer": args.optimizer,
                   "lr": args.lr, "batch_size": args.batch_size, "schedule": schedule,
                   "loss": loss, "source": cat.meta.get("source")})
        _say(f"saved model to {p}")
    if args.plot:
        _plot_train(args.plot, hist, model, Xte, y[te], cat, mean, std)
    return 0


def _train_stream(args):
    """train --stream: fit_stream over the whole --catalog, chunk by chunk."""
    from .model import MLP
    from .stream import CatalogStream, fit_stream
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
    if stream.class_names is None:
        n_out, loss = 1, "mse"
    else:
        k = len(stream.class_names)
        n_out, loss = (1, "bce") if k == 2 else (k, "cross_entropy")
    _say(f"data: {args.catalog} streamed in {stream.n_chunks} chunks of up to "
         f"{args.chunk_rows} rows: {stream.n_valid} usable rows"
         + (f" ({', '.join(f'{a}={b}' for a, b in stream.class_counts.items())})"
            if stream.class_counts else "")
         + (f"; skipping {stream.n_dropped} rows with missing values" if stream.n_dropped
            else ""))
    model = MLP([len(stream.feature_names), *args.hidden, n_out], activation=args.activation,
                seed=args.seed, dtype=args.dtype)
    schedule = _schedule(args.schedule, stream.n_valid, args)
    _say(f"model: MLP({list(model.layer_sizes)}), {args.activation}, {args.dtype}; loss {loss}; "
         f"optimizer {args.optimizer}; batch {args.batch_size}, {args.epochs} epochs; "
         f"features {', '.join(stream.feature_names)} standardised from a streaming pass")
    _threads(args)
    t0 = time.perf_counter()
    hist = fit_stream(model, stream, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=args.optimizer, lr=args.lr, loss=loss, schedule=schedule,
                      seed=args.seed,
                      class_weight=None if args.class_weight == "none" else args.class_weight,
                      progress=not args.quiet, backend=args.backend, n_threads=args.threads)
    _say(f"trained {hist.epochs} epochs in {time.perf_counter() - t0:.2f} s on backend "
         f"{hist.backend}; final loss {hist.loss[-1]:.5f}")
    if args.out:
        from .datasets import Catalog
        info = Catalog(np.empty((0, len(stream.feature_names))), None, stream.feature_names,
                       stream.class_names, stream.positive)
        mean, std = hist.standardizer.as_tuple()
        p = _save(args.out, model, info, mean, std, hist.optimizer,
                  {"epochs": hist.epochs, "seed": args.seed, "optimizer": args.optimizer,
                   "lr": args.lr, "batch_size": args.batch_size, "schedule": schedule,
                   "loss": loss, "source": str(args.catalog), "streamed": True})
        _say(f"saved model to {p}")
    if args.plot:
        from . import plot
        plot.loss_curves(hist, path=args.plot)
        _say(f"saved plot to {args.plot}")
    return 0


def cmd_sweep(args):
    from .recipes import lr_sweep
    cat = _load_data(args)
    n_out, loss = _task(cat)
    mean, std = _standardise(cat.X)
    X = _apply(cat.X, mean, std)
    _threads(args)
    _say(f"lr sweep: {len(args.lrs)} learning rates, {args.iterations} iterations of batch "
         f"{args.batch_size}, optimizer {args.optimizer}, hidden {list(args.hidden)}")
    if args.plot:
        _plot_path(args.plot)
    res = lr_sweep(_make_model_factory(args, X.shape[1], n_out), X, cat.y, lrs=args.lrs,
                   iterations=args.iterations, optimizer=args.optimizer,
                   batch_size=args.batch_size, loss=loss, seed=args.seed,
                   backend=args.backend, progress=not args.quiet)
    _say(f"{'lr':>10}  {'final loss':>12}  diverged")
    for lr, f, d in zip(res.lrs, res.final_loss, res.diverged):
        mark = "  <- best" if lr == res.best_lr else ""
        val = f"{f:12.6g}" if np.isfinite(f) else f"{'-':>12}"
        _say(f"{lr:10.3g}  {val}  {'yes' if d else 'no':>8}{mark}")
    _say(f"best lr: {res.best_lr:.3g}")
    if args.plot:
        from . import plot
        plot.lr_sweep(res, path=args.plot,
                      title=f"lr sweep: {args.optimizer}, hidden {list(args.hidden)}, "
                            f"{args.iterations} iterations of batch {args.batch_size}")
        _say(f"saved plot to {args.plot}")
    return 0


def cmd_cv(args):
    from .recipes import cross_validate
    _schedule(args.schedule, 10_000, args)
    cat = _load_data(args)
    n_out, loss = _task(cat)
    mean, std = _standardise(cat.X)
    X = _apply(cat.X, mean, std)
    schedule = _schedule(args.schedule, int(len(cat) * (1 - 1 / args.k)), args)
    _say(f"{args.k}-fold cross-validation, {args.epochs} epochs per fold, hidden "
         f"{list(args.hidden)}, optimizer {args.optimizer}"
         + (f" lr {args.lr:g}" if args.lr is not None else "")
         + " (features standardised with the whole catalog's mean/std)")
    res = cross_validate(_make_model_factory(args, X.shape[1], n_out), X, cat.y, k=args.k,
                         stratified=loss != "mse", seed=args.seed, positive=cat.positive,
                         loss=loss, optimizer=args.optimizer, lr=args.lr,
                         batch_size=args.batch_size, epochs=args.epochs, schedule=schedule,
                         class_weight=None if args.class_weight == "none" else
                         args.class_weight, backend=args.backend, n_threads=args.threads,
                         progress=not args.quiet)
    keys = list(res.mean)
    w = max(12, *(len(k) for k in keys))
    _say("fold  " + "  ".join(f"{k:>{w}}" for k in keys))
    for i, f in enumerate(res.folds):
        _say(f"{i + 1:4d}  " + "  ".join(f"{f[k]:{w}.5f}" for k in keys))
    _say("mean +- std: " + ", ".join(f"{k} {res.mean[k]:.5f} +- {res.std[k]:.5f}"
                                     for k in keys))
    if args.plot:
        from . import plot
        plot.cv_folds(res, path=args.plot)
        _say(f"saved plot to {args.plot}")
    return 0


def cmd_compare(args):
    from . import plot
    plot_to = None if str(args.plot).lower() == "none" else _plot_path(args.plot)
    if args.paths:
        _plot_path(args.paths, "--paths")
    specs = plot._parse_optimizers(args.optimizers)
    cat = _load_data(args)
    n_out, loss = _task(cat)
    mean, std = _standardise(cat.X)
    X = _apply(cat.X, mean, std)
    _say(f"{len(specs)} optimizers from the same initial weights on the same "
         f"{args.iterations} batches of {args.batch_size}, hidden {list(args.hidden)}")
    curves = plot.compare_optimizers(_make_model_factory(args, X.shape[1], n_out), X, cat.y,
                                     optimizers=specs, iterations=args.iterations,
                                     batch_size=args.batch_size, loss=loss, seed=args.seed,
                                     backend=args.backend)
    tail = max(1, args.iterations // 10)
    _say(f"{'optimizer':>10}  {'settings':<28}  final loss (mean of last {tail})")
    lrs = {}
    for (label, name, kw), (_, c) in zip(specs, curves.items()):
        lrs[label] = kw.get("lr")
        settings = name + "(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else
                                          f"{k}={v}" for k, v in kw.items()) + ")"
        fin = np.mean(c[-tail:])
        _say(f"{label:>10}  {settings:<28}  "
             + (f"{fin:.6g}" if np.isfinite(fin) else "diverged"))
    if plot_to is not None:
        plot.optimizer_comparison(curves, path=plot_to, lrs=lrs)
        _say(f"saved plot to {plot_to}")
    if args.paths:
        plot.optimizer_paths(path=args.paths)
        _say(f"saved plot to {args.paths}")
    return 0


# ---------------------------------------------------------------------------------------
# predict: a whole catalog, chunk by chunk
class _TableWriter:
    """Writes the prediction table chunk by chunk to an open binary file: Parquet
    (pyarrow.parquet.ParquetWriter, one row group per chunk), CSV or .npy (a structured
    array whose header gives the total row count, known from the scan)."""

    def __init__(self, fmt, fh, n_rows, path):
        self.fmt, self.fh, self.n_rows, self.path = fmt, fh, n_rows, path
        self._pq = None
        self._dtype = None
        self.rows = 0

    def write(self, cols):
        names = list(cols)
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            t = pa.table({k: cols[k] for k in names})
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.fh, t.schema)
            self._pq.write_table(t.cast(self._pq.schema))
        elif self.fmt == "csv":
            if self.rows == 0:
                self.fh.write((",".join(names) + "\n").encode())
            out = []
            for i in range(len(cols[names[0]])):
                out.append(",".join(_csv_cell(cols[k][i]) for k in names))
            self.fh.write(("\n".join(out) + "\n").encode() if out else b"")
        else:  # npy
            if self._dtype is None:
                fields = []
                for k in names:
                    a = np.asarray(cols[k])
                    fields.append((k, a.dtype if a.dtype.kind != "U" or k == "class"
                                   else "U64"))
                self._dtype = np.dtype(fields)
                np.lib.format.write_array_header_2_0(
                    self.fh, {"descr": np.lib.format.dtype_to_descr(self._dtype),
                              "fortran_order": False, "shape": (self.n_rows,)})
            rec = np.empty(len(cols[names[0]]), dtype=self._dtype)
            for k in names:
                rec[k] = cols[k]
            self.fh.write(rec.tobytes())
        self.rows += len(cols[names[0]])

    def close(self):
        if self._pq is not None:
            self._pq.close()
        if self.fmt == "npy" and self.rows != self.n_rows:
            raise RuntimeError(f"{self.path}: wrote {self.rows} rows, expected {self.n_rows}")


def _csv_cell(v):
    if isinstance(v, (float, np.floating)):
        return "" if not np.isfinite(v) else str(v)   # shortest round-trip for its dtype
    return str(v)


def _out_format(path, fmt):
    if fmt is not None:
        return fmt
    name = str(path).lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".npy"):
        return "npy"
    if name.endswith(".csv"):
        return "csv"
    raise CLIError(f"--out {path}: cannot tell the format from the suffix; use .parquet, "
                   ".csv or .npy (or --out-format)")


def cmd_predict(args):
    from .datasets import Standardizer
    from .io import atomic_write
    from .stream import CatalogStream, predict_stream
    model, info = _load_model(args.model)
    features = args.features or info["feature_names"]
    if not features:
        raise CLIError(f"{args.model} stores no feature names; pass --features")
    if len(features if not isinstance(features, str) else features.split(",")) \
            != model.n_inputs and not str(features).lower().startswith("colors:"):
        raise CLIError(f"--features names {features!r} but the model has {model.n_inputs} "
                       "inputs")
    fmt = _out_format(args.out, args.out_format)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CLIError("writing Parquet needs pyarrow: pip install 'fastmlp[catalogs]'; "
                           "or write .csv / .npy") from None
    extra = [args.id_column] if args.id_column else []
    stream = CatalogStream(args.catalog, features=features, label=False,
                           chunk_rows=args.chunk_rows, dtype=model.dtype.name, extra=extra,
                           format=args.format)
    if len(stream.feature_names) != model.n_inputs:
        raise CLIError(f"the catalog gives {len(stream.feature_names)} features "
                       f"{list(stream.feature_names)}, the model has {model.n_inputs} inputs")
    stream.scan()
    st = None
    if info["mean"] is not None:
        st = Standardizer(info["mean"], info["std"])
    regression = model.loss == "mse"
    classes = info["class_names"] or [str(k) for k in range(max(2, model.n_outputs))]
    _say(f"model: {args.model}: MLP({list(model.layer_sizes)}), "
         + ("regression" if regression else f"classes {', '.join(classes)}")
         + (", standardised inputs" if st is not None else ""))
    _say(f"catalog: {args.catalog}: {stream.n_rows} rows in {stream.n_chunks} chunks of up to "
         f"{args.chunk_rows}; features {', '.join(stream.feature_names)}; "
         f"{stream.n_rows - stream.n_valid} rows with missing features get no prediction")
    id_name = args.id_column or "row"
    counts = np.zeros(len(classes), np.int64)
    sample, rng = None, np.random.default_rng(0)
    if args.plot:
        if regression:
            raise CLIError("--plot draws predicted classes; this model is a regression")
        _plot_path(args.plot)
        names_ = list(stream.feature_names)
        pair = [names_.index("u-g"), names_.index("g-r")] if \
            {"u-g", "g-r"} <= set(names_) else [0, 1 if len(names_) > 1 else 0]
        sample = {"max": 40_000, "cols": pair, "xy": [], "lab": [],
                  "names": [names_[k] for k in pair]}
    t0 = time.perf_counter()

    def write(fh):
        w = _TableWriter(fmt, fh, stream.n_rows, args.out)
        for ch, out in predict_stream(model, stream, st, progress=not args.quiet):
            m = len(ch.valid)
            ids = ch.extra[args.id_column] if args.id_column else \
                np.arange(ch.start, ch.start + m, dtype=np.int64)
            cols = {id_name: ids}
            if regression:
                for j in range(out.shape[1]):
                    cols["prediction" if out.shape[1] == 1 else f"prediction_{j}"] = out[:, j]
            else:
                for j, c in enumerate(classes):
                    cols[f"p_{c}"] = out[:, j]
                lab = np.where(ch.valid, np.nan_to_num(out).argmax(axis=1), -1)
                counts[:] += np.bincount(lab[lab >= 0], minlength=len(classes))
                cols["label"] = lab.astype(np.int64)
                names = np.asarray(classes)
                cols["class"] = np.where(ch.valid, names[np.maximum(lab, 0)], "").astype(
                    names.dtype)
                if sample is not None:     # a bounded random sample for the diagram
                    take = np.flatnonzero(ch.valid)
                    per = max(1, sample["max"] * m // max(stream.n_rows, 1))
                    take = rng.choice(take, min(per, take.size), replace=False)
                    sample["xy"].append(ch.X[take][:, sample["cols"]])
                    sample["lab"].append(lab[take])
            cols["valid"] = ch.valid
            w.write(cols)
        w.close()
    p = atomic_write(args.out, write)
    dt = time.perf_counter() - t0
    _say(f"wrote {stream.n_rows} rows to {p} ({fmt}) in {dt:.2f} s "
         f"({stream.n_rows / max(dt, 1e-9):,.0f} rows/s)")
    if not regression:
        _say("predicted: " + ", ".join(f"{c}={int(k)}" for c, k in zip(classes, counts)))
    if sample is not None and sample["xy"]:
        from . import plot
        xy, lab = np.concatenate(sample["xy"]), np.concatenate(sample["lab"])
        plot.color_color(xy[:, 0], xy[:, 1], lab, classes, path=args.plot,
                         xlabel=sample["names"][0], ylabel=sample["names"][1],
                         title=f"{Path(args.catalog).name}\n{sample['names'][0]} vs "
                               f"{sample['names'][1]} by predicted class "
                               f"({xy.shape[0]:,} of {stream.n_valid:,} rows shown)")
        _say(f"saved plot to {args.plot}")
    return 0


def cmd_bench(args, rest=()):
    try:
        from . import bench
    except ImportError as exc:
        raise CLIError(f"the benchmarks are not available in this installation "
                       f"(fastmlp.bench could not be imported: {exc})") from None
    if not hasattr(bench, "main"):
        raise CLIError("fastmlp.bench has no main(argv); the benchmarks are not installed")
    return bench.main(list(rest))


# ---------------------------------------------------------------------------------------
def main(argv=None):
    """Entry point of the ``fastmlp`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "bench":  # everything after 'bench' belongs to fastmlp.bench
        args, rest = parser.parse_args(["bench"]), argv[1:]
    else:
        args, rest = parser.parse_args(argv), ()
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command == "bench":
            status = cmd_bench(args, rest)
        else:
            status = args.func(args)
    except (ValueError, CLIError, FileNotFoundError, ImportError) as exc:
        # ImportError: an optional dependency (astropy, pyarrow, matplotlib) is missing; the
        # message names the extra to install
        print(f"fastmlp: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except FloatingPointError as exc:  # fastmlp.TrainingDiverged
        print(f"fastmlp: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `fastmlp train | head`: stop quietly
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 141
    return 0 if status is None else int(status)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
