"""The ``fastmlp`` argument parser: one sub-parser per command, shared option groups."""

import argparse

import numpy as np

from .._validate import argparse_number
from .._version import __version__
from ..backends import BACKENDS
from ..codes import ACTIVATIONS, optimizer_key
from ..optim import OPTIMIZER_NAMES
from .bench import cmd_bench
from .common import optimizer_kwargs_arg, thread_count
from .export import cmd_export
from .predict import cmd_predict
from .recipes import cmd_compare, cmd_cv, cmd_sweep
from .train import cmd_train
from .tune import add_tune_parser

DEFAULT_N_SAMPLES = 200_000


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


def _optimizer_name(text):
    """--optimizer in any case (Adam, RMSprop as torch spells them); a name that is none of
    them is left as typed, so that argparse's "invalid choice" shows what the user wrote."""
    key = optimizer_key(text)
    return key if key in OPTIMIZER_NAMES else text


_positive_int = argparse_number(int, lambda v: v >= 1, "a positive integer")
# k-fold cross-validation's k: one fold would leave no rows to train on
_fold_count = argparse_number(int, lambda v: v >= 2, "an integer >= 2 (the number of folds)")
# np.random.default_rng's seeds (a negative one fails deep inside NumPy, naming no flag)
_seed = argparse_number(int, lambda v: v >= 0, "a non-negative integer")
# rows per mini-batch, or "full": every training row in one batch (gradient descent, one
# step per epoch); the command replaces "full" by the row count once the data is loaded
_batch_size = argparse_number(lambda t: "full" if t.strip().lower() == "full" else int(t),
                      lambda v: v == "full" or v >= 1, "a positive integer or 'full'")
_positive_float = argparse_number(float, lambda v: v > 0 and np.isfinite(v), "a positive number")
_fraction = argparse_number(float, lambda v: 0.0 < v < 1.0,
                            "a fraction strictly between 0 and 1 (0 < F < 1)")
# a completeness or contamination target: the range metrics.threshold_at_completeness /
# threshold_at_contamination accept (completeness 1.0: every validation quasar; contamination
# 0: none but quasars selected), so the CLI refuses no value the metrics take
def _unsigned_zero_float(text):
    """float(text), with -0 read as 0: '--max-contamination -0' printed '-0' back."""
    return float(text) + 0.0


_closed_fraction = argparse_number(_unsigned_zero_float, lambda v: 0.0 <= v <= 1.0,
                                   "a fraction in [0, 1]")
_fraction_or_zero = argparse_number(_unsigned_zero_float, lambda v: 0.0 <= v < 1.0,
                                    "a number in [0, 1)")
# a probability cut: the range the model's threshold accepts (model.py _check_threshold), so
# that --threshold 1.0 (only probabilities of exactly 1) is not refused by the CLI alone
_probability = argparse_number(_unsigned_zero_float, lambda v: 0.0 <= v <= 1.0,
                               "a probability in [0, 1]")


def _hdu(text):
    """--hdu: a FITS HDU's index (0 the primary, 1 the first extension) or its EXTNAME."""
    t = text.strip()
    if not t:
        raise argparse.ArgumentTypeError("expected an HDU index such as 2 or an extension "
                                         "name, got ''")
    return int(t) if t.isdigit() else t


_HDU_HELP = ("the table of a FITS catalog to read: its HDU index (1 = the first extension) or "
             "extension name (None: the first table); a column not found lists the other "
             "tables")


def _lrs(text):
    """'1e-4,1e-3,1e-2' or 'logspace:-5,0,11' (numpy.logspace(start, stop, num))."""
    t = text.strip()
    if t.startswith("logspace:"):
        lrs = _logspace(t.split(":", 1)[1], text)
    else:
        try:
            lrs = np.array([float(s) for s in t.split(",") if s.strip()])
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected learning rates such as 1e-4,1e-3,1e-2 or logspace:-5,0,11, got "
                f"{text!r}") from None
    if lrs.size == 0 or not np.all(lrs > 0) or not np.all(np.isfinite(lrs)):
        raise argparse.ArgumentTypeError(f"learning rates must be positive numbers, got {text!r}")
    return lrs


def _looks_like_an_lr(name, part, value, text):
    """What is wrong with a logspace bound strictly between 0 and 1 (not an integer): it
    reads as a learning rate (1e-5 where -5 was meant), and swept as an exponent it would
    give lr 10^1e-5 = 1.00002."""
    return (f"logspace {name} is an exponent (lr = 10^{name}), e.g. -5, but {part!r} in "
            f"{text!r} looks like a learning rate (as an exponent it would sweep "
            f"lr {10 ** value:.6g}): for lr {value:g} write {name} = {np.log10(value):g}, "
            f"e.g. logspace:-5,0,11 (11 lrs from 1e-5 to 1)")


def _logspace(spec, text):
    """The lrs of 'logspace:START,STOP,NUM' (the part after the colon: ``spec``), each
    part's problem said by its name: 'must be positive' named no part of NUM=0."""
    parts = [p.strip() for p in spec.split(",")]
    example = "e.g. logspace:-5,0,11 (11 lrs from 1e-5 to 1)"
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(
            f"logspace needs START,STOP,NUM (three numbers: exponents, lr = 10^START ... "
            f"10^STOP, and a count), "
            f"{example}; got {text!r}")
    bounds = []
    for name, part in zip(("START", "STOP"), parts[:2]):
        try:
            value = float(part)
        except ValueError:
            value = float("nan")
        # 10**308 is the largest power of ten a float holds: beyond, the lr is inf or 0
        if not np.isfinite(value) or abs(value) > 300:
            raise argparse.ArgumentTypeError(
                f"logspace {name} must be an exponent (lr = 10^{name}) between -300 and "
                f"300, e.g. -5, got {part!r} in {text!r}; {example}")
        if 0 < value < 1:
            raise argparse.ArgumentTypeError(_looks_like_an_lr(name, part, value, text))
        bounds.append(value)
    try:
        num = int(parts[2])
    except ValueError:
        num = 0
    if num < 1:
        raise argparse.ArgumentTypeError(
            f"logspace NUM must be a positive integer (how many learning rates), got "
            f"{parts[2]!r} in {text!r}; {example}")
    return np.logspace(bounds[0], bounds[1], num)


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
                   help="label column (None: a column named 'label' or 'class')")
    g.add_argument("--positive", metavar="CLASS",
                   help="the positive class (the quasars), a class name such as QSO or a "
                        "label value such as 0 (None: a class named QSO/quasar)")
    g.add_argument("--class-names", metavar="A,B,...",
                   help="names for integer labels 0, 1, ... (e.g. QSO,STAR for the DR6 file)")
    g.add_argument("--hdu", type=_hdu, default=None, metavar="N|NAME", help=_HDU_HELP)
    g.add_argument("--drop-invalid", action="store_true",
                   help="drop rows with NaN, inf or -9999 in the features instead of failing "
                        "(the same as --missing drop)")
    g.add_argument("--missing", choices=("error", "drop", "impute-median"), default=None,
                   help="rows with missing values (NaN, inf, -9999, null): error (None), "
                        "drop them, or impute-median (replace a missing feature by its "
                        "column's median; rows without a label are dropped)")
    g.add_argument("--where", metavar="FILTER",
                   help="keep only the catalog rows passing FILTER, e.g. \"class == 'QSO' and "
                        "r < 21\" or \"u-g > 0.5\" (comparisons joined by and / or / not; "
                        "a colour a-b is computed from columns a and b if it is not a column; "
                        "a Parquet row group is skipped when its column statistics rule "
                        "FILTER out; a computed colour has no statistics and skips none)")
    g.add_argument("--n-samples", type=_positive_int, default=DEFAULT_N_SAMPLES, metavar="N",
                   help="rows of the synthetic catalog")
    g.add_argument("--quasar-fraction", type=_fraction, default=0.1, metavar="F",
                   help="quasar fraction of the synthetic catalog")
    g.add_argument("--galaxy-fraction", type=_fraction_or_zero, default=0.0, metavar="F",
                   help="galaxy fraction of the synthetic catalog; > 0 makes it three-class")


def _model_args(p):
    g = p.add_argument_group("model")
    g.add_argument("--hidden", type=_hidden, default=(64, 64), metavar="W1,W2,...",
                   help="hidden layer widths ('none' = logistic regression)")
    g.add_argument("--activation", default="relu", choices=ACTIVATIONS,
                   help="hidden activation")
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="floating-point type of the weights and the kernels")
    g.add_argument("--seed", type=_seed, default=0,
                   help="seed of the weights, the splits, the shuffling and the synthetic "
                        "catalog")


def _optimizer_kwargs_arg(g):
    g.add_argument("--optimizer-kwargs", type=optimizer_kwargs_arg, default=None,
                   metavar="NAME=VALUE,...",
                   help="the optimizer's other hyper-parameters (torch.optim's names), e.g. "
                        "momentum=0.95,nesterov=true,weight_decay=1e-4 or "
                        "betas=0.9:0.99,amsgrad=true: flags true / false, a pair A:B; the "
                        "learning rate is --lr (sweep: --lrs)")


def _train_args(p, epochs=10):
    g = p.add_argument_group("training")
    g.add_argument("--optimizer", default="adam", choices=OPTIMIZER_NAMES, type=_optimizer_name,
                   help="optimizer (momentum / nesterov: SGD with momentum 0.9)")
    g.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate (None: the optimizer's default, 1e-3 for adam)")
    _optimizer_kwargs_arg(g)
    g.add_argument("--schedule", default=None, metavar="SPEC",
                   help="lr schedule: constant, linear:final=1e-4,T=2000, "
                        "step:step_size=1000,gamma=0.5, exponential:gamma=0.999, cosine "
                        "(T defaults to the total number of steps, less a warm-up: "
                        "warmup=100+cosine ends at the final lr), ...")
    g.add_argument("--batch-size", type=_batch_size, default=256,
                   help="rows per mini-batch, or 'full' (gradient descent: every row, one "
                        "step per epoch)")
    g.add_argument("--epochs", type=_positive_int, default=epochs, help="passes over the data")
    g.add_argument("--class-weight", choices=("none", "balanced"), default="none",
                   help="weight the loss by inverse class frequency")


def _run_args(p):
    """Options every command shares: backend, threads, quiet."""
    g = p.add_argument_group("run")
    g.add_argument("--backend", default=None, choices=("auto",) + tuple(BACKENDS),
                   help="kernel backend (None = auto: the fastest available)")
    g.add_argument("--threads", type=thread_count, default=None, metavar="N",
                   help="threads for the kernels (None: all cores)")
    g.add_argument("--quiet", action="store_true", help="no progress output")


def _serial_arg(p, what):
    p.add_argument("--serial", action="store_true",
                   help=f"train the {what} one after another instead of together in one "
                        "batched pass (the default; same results)")


def _command(sub, name, help, description):
    return sub.add_parser(name, help=help, description=description,
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def _train_parser(sub):
    t = _command(sub, "train", "train an MLP and report held-out test metrics",
                 "Train an MLP (standardised features, stratified train / test split) and "
                 "print per-epoch progress and the test metrics, including the quasar "
                 "completeness and contamination.")
    _data_args(t)
    _model_args(t)
    _train_args(t)
    _run_args(t)
    g = t.add_argument_group("evaluation and output")
    g.add_argument("--test-fraction", type=_fraction, default=0.2,
                   help="held-out test fraction, stratified by class")
    g.add_argument("--validation", type=_fraction_or_zero, default=0.1,
                   help="fraction of the training rows held out for the validation loss "
                        "(0 = none)")
    g.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                   help="stop when the validation loss has not improved for PATIENCE epochs "
                        "and restore the best weights")
    g.add_argument("--out", metavar="MODEL.npz",
                   help="save the trained model (with its whole contract) here")
    g.add_argument("--plot", metavar="PNG",
                   help="save a figure: loss curves, ROC and completeness-contamination of the "
                        "positive class, colour-colour diagram by predicted class")
    g.add_argument("--stream", action="store_true",
                   help="out-of-core: read --catalog in chunks (bounded memory) and train on "
                        "all of it with fastmlp.fit_stream (no test split; use fastmlp "
                        "predict afterwards)")
    g.add_argument("--chunk-rows", type=_positive_int, default=100_000, metavar="N",
                   help="rows per chunk with --stream")
    _selection_args(t)
    _resume_args(t)
    t.set_defaults(func=cmd_train)


def _selection_args(t):
    g = t.add_argument_group("selecting a sample (cut and calibration chosen on the "
                             "validation split, stored in the model)")
    g.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                   help="auto: classes for integer or string labels, regression for other "
                        "numbers")
    g.add_argument("--log1p-target", action="store_true",
                   help="regression on log(1 + y) (e.g. redshifts); predictions are "
                        "transformed back")
    g.add_argument("--max-contamination", type=_closed_fraction, default=None, metavar="C",
                   help="store the probability cut on the positive class that gives the "
                        "highest completeness at contamination <= C")
    g.add_argument("--min-completeness", type=_closed_fraction, default=None, metavar="K",
                   help="store the cut with the lowest contamination at completeness >= K")
    g.add_argument("--calibrate", action="store_true",
                   help="fit a temperature on the validation logits (calibrated "
                        "probabilities), stored in the model")
    g.add_argument("--bin-by", metavar="COLUMN", default=None,
                   help="report completeness and purity of the positive class per bin of this "
                        "column (e.g. r), with Wilson intervals and counts")
    g.add_argument("--bins", type=_positive_int, default=8, help="number of --bin-by bins")
    g.add_argument("--bin-plot", metavar="PNG", default=None,
                   help="plot the --bin-by completeness and purity here")
    g.add_argument("--calibration-plot", metavar="PNG", default=None,
                   help="reliability diagram of the test-set probabilities here")


def _sweep_parser(sub):
    s = _command(sub, "sweep", "learning-rate sweep (the lecture's second recipe)",
                 "Train from the same initial weights on the same batches for a few "
                 "iterations per learning rate; print each lr's final smoothed loss, "
                 "divergence and the best lr.  Every learning rate trains in one batched "
                 "pass over the data (fastmlp.ModelBatch); --serial runs them one by one.")
    _serial_arg(s, "learning rates")
    _data_args(s)
    _model_args(s)
    _run_args(s)
    g = s.add_argument_group("sweep")
    g.add_argument("--lrs", type=_lrs, default="logspace:-5,0,11",
                   help="learning rates: 1e-4,1e-3,... or logspace:START,STOP,NUM")
    g.add_argument("--iterations", type=_positive_int, default=150,
                   help="mini-batch steps per learning rate")
    g.add_argument("--optimizer", default="adam", choices=OPTIMIZER_NAMES, type=_optimizer_name,
                   help="optimizer")
    _optimizer_kwargs_arg(g)
    g.add_argument("--batch-size", type=_batch_size, default=256,
                   help="rows per mini-batch, or 'full' (gradient descent: every row, one "
                        "step per epoch)")
    g.add_argument("--plot", metavar="PNG",
                   help="save the sweep: loss per iteration for each lr, and final loss vs lr "
                        "(log axis) with the chosen lr and diverged runs marked")
    s.set_defaults(func=cmd_sweep)


def _cv_parser(sub):
    c = _command(sub, "cv", "k-fold cross-validation (the lecture's third recipe)",
                 "Stratified k-fold cross-validation: per-fold test metrics and their "
                 "mean +- std.  The folds train together in one batched pass "
                 "(fastmlp.ModelBatch); --serial trains them one by one.")
    _serial_arg(c, "folds")
    _data_args(c)
    _model_args(c)
    _train_args(c, epochs=5)
    _run_args(c)
    c.add_argument("--k", type=_fold_count, default=5,
                   help="number of folds (2 to the number of rows)")
    c.add_argument("--plot", metavar="PNG", help="save each fold's metrics with mean +- std")
    c.set_defaults(func=cmd_cv)


def _compare_parser(sub):
    o = _command(sub, "compare-optimizers",
                 "loss vs iteration for SGD, momentum, Adagrad, RMSprop, Adam",
                 "The lecture's comparison: every optimizer trains a copy of the same initial "
                 "MLP on the same mini-batches; prints the final smoothed loss of each and "
                 "plots the curves. --paths also draws each optimizer's path over an "
                 "ill-conditioned quadratic and Rosenbrock's valley.  The optimizers race in "
                 "one batched pass (fastmlp.ModelBatch); --serial runs them one by one.")
    _serial_arg(o, "optimizers")
    _data_args(o)
    _model_args(o)
    _run_args(o)
    g = o.add_argument_group("comparison")
    g.add_argument("--optimizers", default="sgd,momentum,adagrad,rmsprop,adam",
                   metavar="NAME[:LR],...",
                   help="optimizers to compare, each with an optional lr (defaults: sgd 0.05, "
                        "momentum 0.01 with momentum 0.9, adagrad 0.02, rmsprop 1e-3, adam "
                        "1e-3)")
    g.add_argument("--iterations", type=_positive_int, default=300,
                   help="mini-batch steps per optimizer")
    g.add_argument("--batch-size", type=_batch_size, default=64,
                   help="rows per mini-batch, or 'full' (gradient descent: every row, one "
                        "step per epoch)")
    g.add_argument("--plot", metavar="PNG", default=None,
                   help="save the loss curves here")
    g.add_argument("--paths", metavar="PNG",
                   help="also draw the lecture's five optimizers' paths over 2-D cost "
                        "surfaces here (SGD, momentum, Adagrad, RMSprop, Adam at learning "
                        "rates set for each surface, whatever --optimizers says)")
    o.set_defaults(func=cmd_compare)


def _predict_parser(sub):
    pr = _command(sub, "predict", "classify a whole catalog file in chunks",
                  "Read a catalog (CSV, .npy, FITS, Parquet) chunk by chunk, apply a saved "
                  "model (its whole contract: features, standardisation, link, cut) and "
                  "write class probabilities and labels (a multilabel model: a 0/1 label per "
                  "output; a regression: its predictions) beside an id column (Parquet, CSV, "
                  "FITS or .npy; written atomically). Rows with missing features or a "
                  "non-finite output get NaN probabilities, label -1 and valid=False (a "
                  "regression's prediction keeps the inf of an overflow, as model.predict "
                  "gives it).")
    pr.epilog = ("Progress (stderr): a bar on a terminal; otherwise a plain line every 10 s. "
                 "The environment variable FASTMLP_PROGRESS=lines prints a line per chunk, "
                 "=bar the bar, =off nothing (--quiet: nothing). Memory: a few chunks of "
                 "--chunk-rows rows.")
    pr.add_argument("--model", required=True, metavar="MODEL.npz",
                    help="a model saved by fastmlp train --out (or fastmlp.save)")
    pr.add_argument("--catalog", required=True, metavar="PATH", help="the catalog to classify")
    pr.add_argument("--out", required=True, metavar="PATH",
                    help="output table: .parquet, .csv, .fits or .npy (never one of the "
                         "inputs); .csv.gz and .fits.gz are gzipped, as such inputs are read")
    pr.add_argument("--out-format", choices=("parquet", "csv", "fits", "npy"), default=None,
                    help="output format (None: from the suffix of --out)")
    pr.add_argument("--format", choices=("csv", "npy", "fits", "parquet"), default=None,
                    help="the catalog's format (None: from its suffix)")
    pr.add_argument("--hdu", type=_hdu, default=None, metavar="N|NAME", help=_HDU_HELP)
    pr.add_argument("--id-column", metavar="COLUMN",
                    help="catalog column copied to the output as the row id (e.g. obj_ID); "
                         "None: the row index, in a column 'row'")
    pr.add_argument("--features", metavar="SPEC",
                    help="feature columns (None: the model's own features; a colour u-g is "
                         "computed from columns u and g if needed); for a model that stores "
                         "its feature names, only those, in that order")
    pr.add_argument("--chunk-rows", type=_positive_int, default=100_000, metavar="N",
                    help="rows per chunk: memory stays bounded")
    pr.add_argument("--threshold", type=_probability, default=None, metavar="P",
                    help="the probability cut, replacing the one stored in the model: a "
                         "binary model (or one storing its positive class) labels the "
                         "positive class where its probability >= P, else the most probable "
                         "other class; a multilabel model labels each output 1 where its "
                         "probability >= P; a multiclass model without a stored positive "
                         "class and a regression refuse it (None: the cut stored in the "
                         "model, e.g. by train --max-contamination / --min-completeness, else "
                         "the most probable class, or 0.5 for each output of a multilabel "
                         "model)")
    pr.add_argument("--label", metavar="COLUMN",
                    help="a label column of the catalog: evaluate the model on the fly and "
                         "print the metrics fastmlp train prints (memory stays bounded); "
                         "rows without a label among the model's classes are left out of "
                         "the evaluation, not the output")
    pr.add_argument("--class-names", metavar="A,B,...",
                    help="the class of the --label column's integer labels 0, 1, ..., as "
                         "train's --class-names (e.g. QSO,STAR for the DR6 file): each name "
                         "one of the model's classes, matched by name, case ignored when "
                         "one class matches, QSO for quasar (None: label value k is the "
                         "model's class k; text labels are matched by name: refused there)")
    pr.add_argument("--where", metavar="FILTER",
                    help="classify only the rows passing FILTER, e.g. \"r < 21 and "
                         "class != 'GALAXY'\" or \"u-g > 0.5\" (a colour a-b is computed "
                         "from columns a and b if it is not a column; a Parquet row group is "
                         "skipped when its column statistics rule FILTER out; a computed "
                         "colour has no statistics and skips none)")
    pr.add_argument("--plot", metavar="PNG",
                    help="colour-colour diagram (u-g vs g-r, else the first two features) of a "
                         "random sample of up to 40000 rows, coloured by predicted class")
    _run_args(pr)
    pr.set_defaults(func=cmd_predict)


def _export_parser(sub):
    e = _command(sub, "export", "write a saved model as ONNX and / or a C model file",
                 "Export a model saved by fastmlp train --out with its whole contract "
                 "(features, standardisation, link, temperature, cut): ONNX for onnxruntime, "
                 "or the C model file that fastmlp_model_load in fastmlp.h reads (installed "
                 "with the package: python -m fastmlp.c_config --include-dir).")
    e.add_argument("--model", required=True, metavar="MODEL.npz", help="the saved model")
    e.add_argument("--onnx", metavar="PATH", default=None, help="write an ONNX file here")
    e.add_argument("--c", metavar="PATH", default=None, help="write a C model file here")
    e.set_defaults(func=cmd_export)


def _resume_args(p):
    g = p.add_argument_group("checkpoints (exact resume)")
    g.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="write the whole state of the run here (atomically) every "
                        "--checkpoint-every epochs and at the end")
    g.add_argument("--checkpoint-every", type=_positive_int, default=1, metavar="N",
                   help="epochs between checkpoints (default 1)")
    g.add_argument("--checkpoint-steps", type=_positive_int, default=None, metavar="N",
                   help="also checkpoint inside an epoch every N optimizer steps")
    g.add_argument("--checkpoint-chunks", type=_positive_int, default=None, metavar="N",
                   help="with --stream: also checkpoint inside an epoch every N chunks")
    g.add_argument("--resume", nargs="?", const=True, default=None, metavar="PATH",
                   help="continue a killed run from PATH (alone: from --checkpoint if it "
                        "exists); same command otherwise: the result is bit-identical to an "
                        "uninterrupted run on the same backend and --threads")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastmlp",
        description="Train multi-layer perceptrons on photometric catalogs (star / quasar / "
                    "galaxy classification from colours) as fast as the CPU allows.")
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = parser.add_subparsers(dest="command",
                                metavar="{train,sweep,cv,predict,compare-optimizers,export,"
                                        "tune,bench}")
    for add in (_train_parser, _sweep_parser, _cv_parser, _compare_parser, _predict_parser,
                _export_parser, add_tune_parser):
        add(sub)
    b = sub.add_parser("bench", help="benchmarks (fastmlp.bench); arguments are passed on",
                       add_help=False)
    b.set_defaults(func=cmd_bench)
    return parser
