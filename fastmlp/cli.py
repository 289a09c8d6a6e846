"""The ``fastmlp`` command: train, sweep, cv, bench.

``fastmlp train`` with no arguments trains a 4-64-64-1 MLP on the built-in synthetic
star / quasar catalog and prints per-epoch progress and the held-out test metrics::

    fastmlp train
    fastmlp train --catalog sdssdr6_colors_class.200000.npy --features u-g,g-r,r-i,i-z \\
                  --label label --positive 0
    fastmlp train --catalog sdss17_star_classification_first30k.csv \\
                  --features colors:ugriz --label class --positive QSO
    fastmlp sweep --iterations 150
    fastmlp cv --k 5 --epochs 5

Library errors (bad values, unreadable catalogs) are reported as ``fastmlp: error: ...``
with exit status 2, like argparse's own errors.
"""

import argparse
import os
import sys
import tempfile
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
                   help="a CSV or .npy catalog to train on instead of the synthetic one")
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
                   help="drop rows with NaN, inf or -9999 in the features instead of failing")
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
    sub = parser.add_subparsers(dest="command", metavar="{train,sweep,cv,bench}")

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
    g.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
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
    s.set_defaults(func=cmd_sweep)

    c = sub.add_parser("cv", help="k-fold cross-validation (the lecture's third recipe)",
                       description="Stratified k-fold cross-validation: per-fold test metrics "
                                   "and their mean +- std.")
    _data_args(c)
    _model_args(c)
    _train_args(c, epochs=5)
    c.add_argument("--k", type=_positive_int, default=5, help="number of folds (default 5)")
    c.set_defaults(func=cmd_cv)

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
                           dtype=args.dtype, class_names=args.class_names)
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
    _say(f"features: {', '.join(cat.feature_names)}"
         + (f"; dropped {dropped} rows with missing values" if dropped else ""))
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


def _save_model(path, model, feature_names, mean, std, class_names=None, positive=None,
                info=None):
    """Write the model to ``path`` with np.savez (no pickles), atomically: a temporary file in
    the same directory, then os.replace.  Stored: params, layer_sizes, activation, dtype, loss,
    feature_names, the standardisation mean and std, class_names, positive (-1: none).
    (Issue 6 replaces this with fastmlp's full save/load.)"""
    path = Path(path)
    d = path.parent if str(path.parent) else Path(".")
    if not d.is_dir():
        raise CLIError(f"--out {path}: directory {d} does not exist")
    arrays = {
        "format": np.array("fastmlp-cli-model-v1"),
        "params": model.params,
        "layer_sizes": np.asarray(model.layer_sizes, dtype=np.int64),
        "activation": np.array(model.activation),
        "dtype": np.array(model.dtype.name),
        "loss": np.array(model.default_loss()),
        "feature_names": np.array(list(feature_names), dtype=str),
        "mean": np.asarray(mean, dtype=np.float64),
        "std": np.asarray(std, dtype=np.float64),
        "class_names": np.array(list(class_names or []), dtype=str),
        "positive": np.array(-1 if positive is None else int(positive), dtype=np.int64),
    }
    for k, v in (info or {}).items():
        arrays[f"info_{k}"] = np.asarray(v)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _load_model(path):
    """(model, info dict) from a file written by _save_model."""
    from .model import MLP
    with np.load(path, allow_pickle=False) as z:
        if "format" not in z or str(z["format"]) != "fastmlp-cli-model-v1":
            raise ValueError(f"{path}: not a fastmlp model file")
        model = MLP(z["layer_sizes"].tolist(), activation=str(z["activation"]),
                    dtype=str(z["dtype"]))
        model.set_params(z["params"])
        model.loss = str(z["loss"])
        pos = int(z["positive"])
        info = {"feature_names": z["feature_names"].tolist(), "mean": z["mean"],
                "std": z["std"], "class_names": z["class_names"].tolist() or None,
                "positive": None if pos < 0 else pos}
    return model, info


# ---------------------------------------------------------------------------------------
# commands
def cmd_train(args):
    from . import metrics
    from .train import fit, stratified_split
    _schedule(args.schedule, 10_000, args)  # a bad spec fails before the data are loaded
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
        p = _save_model(args.out, model, cat.feature_names, mean, std, cat.class_names,
                        cat.positive, info={"epochs": hist.epochs, "seed": args.seed})
        _say(f"saved model to {p}")
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
    res = lr_sweep(_make_model_factory(args, X.shape[1], n_out), X, cat.y, lrs=args.lrs,
                   iterations=args.iterations, optimizer=args.optimizer,
                   batch_size=args.batch_size, loss=loss, seed=args.seed,
                   backend=args.backend)
    _say(f"{'lr':>10}  {'final loss':>12}  diverged")
    for lr, f, d in zip(res.lrs, res.final_loss, res.diverged):
        mark = "  <- best" if lr == res.best_lr else ""
        val = f"{f:12.6g}" if np.isfinite(f) else f"{'-':>12}"
        _say(f"{lr:10.3g}  {val}  {'yes' if d else 'no':>8}{mark}")
    _say(f"best lr: {res.best_lr:.3g}")
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
                         args.class_weight, backend=args.backend, n_threads=args.threads)
    keys = list(res.mean)
    w = max(12, *(len(k) for k in keys))
    _say("fold  " + "  ".join(f"{k:>{w}}" for k in keys))
    for i, f in enumerate(res.folds):
        _say(f"{i + 1:4d}  " + "  ".join(f"{f[k]:{w}.5f}" for k in keys))
    _say("mean +- std: " + ", ".join(f"{k} {res.mean[k]:.5f} +- {res.std[k]:.5f}"
                                     for k in keys))
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
    except (ValueError, CLIError, FileNotFoundError) as exc:
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
