"""``fastmlp train``: train on a catalog (in memory or streamed), report, save, plot."""

import time
import warnings

import numpy as np

from .. import metrics
from ..backends import tuning
from ..data.catalog import stray_label_text, text_label_example, text_regression_text
from ..data.far_values import FIT_FAR_WARNING, far_in_training
from ..data.formats import is_number, text_column, try_float
from ..data.stream import CatalogStream
from ..model import MLP
from ..training import fit, fit_stream, stratified_split
from .._validate import counted
from .common import (CLIError, apply_full_batch, batch_text, catalog_hdu, catalog_warnings,
                     check_column, check_optimizer_kwargs, check_out_path, check_plot_path,
                     color_pair, fits_tables_hint, kernels_cached_text, load_data,
                     missing_policy, model_factory, optimizer_text, outputs_and_loss,
                     save_model, say, say_warnings, warn, schedule_spec, table_read_text,
                     schedule_warnings_said)
from .evaluation import looks_like_redshift, report_text


def _class_weight(args):
    return None if args.class_weight == "none" else args.class_weight


def _config(args, hist, loss, schedule, source, **extra):
    # "missing": the missing-value policy (with impute-median the model's features carry
    # the medians, _store_medians; predict reads it to tell a model saved before that)
    return dict({"epochs": hist.epochs, "seed": args.seed, "optimizer": args.optimizer,
                 "lr": args.lr, "optimizer_kwargs": args.optimizer_kwargs,
                 "batch_size": args.batch_size, "schedule": schedule,
                 "loss": loss, "source": source, "missing": missing_policy(args)}, **extra)


#: the files train writes, by args attribute
TRAIN_OUTPUTS = ("out", "plot", "bin_plot", "calibration_plot", "checkpoint")


def _flag(attr):
    return "--" + attr.replace("_", "-")


def _outputs(args, attr):
    """(flag, path) of the other files train writes, given before ``attr``."""
    before = TRAIN_OUTPUTS[:TRAIN_OUTPUTS.index(attr)]
    return [(_flag(a), getattr(args, a, None)) for a in before]


def _check_checkpoint_paths(args):
    """--checkpoint / --resume never name an input or the --out / --plot files."""
    ck = getattr(args, "checkpoint", None)
    check_out_path(ck, [args.catalog], "--checkpoint", _outputs(args, "checkpoint"))
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


def _restored_epochs(args):
    """The epochs a --resume run takes from its checkpoint (0 without --resume, or when the
    file is not there yet: fit says what is wrong with it)."""
    if not args.resume:
        return 0
    from ..training.checkpoint import read_fit_checkpoint
    path = args.checkpoint if args.resume is True else args.resume
    try:
        return int(read_fit_checkpoint(path)["meta"]["epochs_done"])
    except (ValueError, OSError, KeyError, TypeError):
        return 0


def _report_fit(hist, elapsed, measured=0.0, restored=0, rate_note=""):
    """measured: seconds of elapsed spent measuring this CPU's kernel choices (tuning), paid
    on the first run of a shape class and cached: said, so that a first run's time is not
    taken for the training's.  restored: epochs a resumed run took from its checkpoint
    (the History holds them too; the time and rate are this run's epochs').  rate_note:
    what the rate covers besides training (train --stream: the reading)."""
    # the rows trained over the seconds the epochs' steps took (the elapsed time also holds
    # the setup, the scan of a stream, validation and metrics: 400,000 samples "in 0.75 s"
    # beside a rate of 1.85M/s read as a contradiction)
    secs = np.asarray(hist.epoch_time[restored:], dtype=np.float64)
    with np.errstate(invalid="ignore"):     # an epoch timed at 0 s: inf x 0
        rows = np.nan_to_num(np.asarray(hist.samples_per_s[restored:], np.float64) * secs)
    sps = rows.sum() / secs.sum() if secs.sum() > 0 else float("nan")
    first = (f" ({measured:.2f} s of it measuring this CPU's fastest kernels for this shape, "
             f"{kernels_cached_text()})" if measured >= 0.05 else "")
    what = counted(hist.epochs, 'epoch') if not restored else \
        (f"{counted(hist.epochs - restored, 'epoch')} after the {restored} restored from the "
         f"checkpoint ({hist.epochs} in all)")
    say(f"trained {what} in {elapsed:.2f} s{first} on backend "
        f"{hist.backend} "
        f"({sps:,.0f} samples/s over the {_seconds_text(secs.sum())} of training steps"
        f"{rate_note}); "
        f"final loss {_loss_text(hist.loss[-1])}"
        + (f", val_loss {_loss_text(hist.val_loss[-1])}" if hist.val_loss else "")
        + (f"; early stopping restored epoch {hist.best_epoch}" if hist.stopped_early
           else ""))
    if hist.runaway:
        say("warning: training blew up (the loss exploded, or ended far above where it "
            "started); try a smaller --lr")


def _seconds_text(t):
    """1.23 s, or 4.12 ms below a tenth of a second (a small run's steps printed 0.00 s)."""
    return f"{t:.2f} s" if t >= 0.1 else f"{t * 1e3:.3g} ms"


def _loss_text(v):
    """A loss to 5 decimals; a blown-up one (4.5e+29) not as 30 digits and 5 decimals."""
    return f"{v:.5f}" if abs(v) < 1e6 else f"{v:.4g}"


def _report_test(model, cat, te, args):
    """Held-out metrics through the model's own contract (raw features in): the stored cut,
    completeness and purity per --bin-by bin, photo-z figures of merit for redshifts."""
    X, y = cat.X[te], cat.y[te]
    if model.link == "identity":
        pred = model.predict(X)
        rep = metrics.regression_report(y, pred, redshift=_is_redshift(args))
        say(metrics.format_regression_report(rep))
        return pred
    proba = model.predict_proba(X)
    pred = model.predict(X)
    rep = metrics.classification_report(
        y, pred, proba=proba, positive=cat.positive, class_names=cat.class_names,
        cut=model.threshold, max_contamination=None if model.threshold is not None else 0.06)
    say(report_text(rep))
    if args.calibrate or args.calibration_plot:
        say(f"calibration on the test set: Brier "
            f"{metrics.brier_score(y, proba, cat.positive):.4f}, ECE "
            f"{metrics.expected_calibration_error(y, proba, cat.positive):.4f}")
    if args.bin_by is not None:
        values = _bin_values(cat, args)[te]
        binned = metrics.binned_completeness(y, pred, cat.positive, values,
                                             bins=metrics.bulk_bin_edges(values, args.bins))
        say(binned.table(args.bin_by, cat.positive_name))
    return proba


def _is_redshift(args):
    """A label named like a redshift gets the photo-z figures of merit."""
    return looks_like_redshift(args.label, args.log1p_target)


def _bin_values(cat, args):
    if args.bin_by not in cat.extra:
        raise CLIError(f"--bin-by {args.bin_by}: no such column alongside the features "
                       f"(available: {sorted(cat.extra)})")
    raw = np.asarray(cat.extra[args.bin_by])
    values = try_float(raw)
    if values is None:      # a column of class names: NumPy's own error named no flag
        text = text_column(raw)
        example = next((t for t in text.tolist() if not is_number(t)), "")
        raise CLIError(f"--bin-by {args.bin_by}: bins a numeric column (e.g. a magnitude "
                       f"r or a redshift), but the column holds text such as {example!r}; "
                       "give a numeric column")
    if not np.isfinite(values).any():      # found before training, not by the binning after
        raise CLIError(f"--bin-by {args.bin_by}: the column has no finite values to bin")
    return values


def _check_targets(args):
    """The cut and calibration options need a validation split (never the test set)."""
    wants_val = args.max_contamination is not None or args.min_completeness is not None \
        or args.calibrate
    if wants_val and args.validation <= 0:
        raise CLIError("--max-contamination / --min-completeness / --calibrate choose on the "
                       "validation split; give --validation > 0")
    if args.early_stopping is not None and (args.validation <= 0 or args.stream):
        raise CLIError("--early-stopping watches the validation loss; "
                       + ("--stream holds out no validation rows" if args.stream else
                          "give --validation > 0"))
    if args.max_contamination is not None and args.min_completeness is not None:
        raise CLIError("give --max-contamination or --min-completeness, not both")
    if args.stream and (wants_val or args.bin_by or args.log1p_target or args.bin_plot
                        or args.calibration_plot):
        raise CLIError("--stream trains on the whole file without a validation or test split; "
                       "the cut, calibration, --bin-by, --bin-plot, --calibration-plot and "
                       "--log1p-target options need them")
    if args.bin_plot and not args.bin_by:
        raise CLIError(f"--bin-plot {args.bin_plot} draws the --bin-by table; give --bin-by "
                       "COLUMN")
    return wants_val


#: train options that only mean something for classes: (args attribute, flag)
CLASSIFICATION_ONLY = (("max_contamination", "--max-contamination"),
                       ("min_completeness", "--min-completeness"),
                       ("calibrate", "--calibrate"), ("calibration_plot", "--calibration-plot"),
                       ("bin_by", "--bin-by"), ("bin_plot", "--bin-plot"),
                       ("positive", "--positive"), ("class_names", "--class-names"),
                       ("class_weight", "--class-weight"))


def _refuse_classification_options(args, why):
    """A regression target: refuse, naming them, the options that apply to classes only
    (they would fail after training, or be ignored)."""
    given = [flag for attr, flag in CLASSIFICATION_ONLY
             if getattr(args, attr, None) not in (None, False, "none")]
    if given:
        raise CLIError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to "
                       f"classification, and {why}")


def _regression_by_flag(args):
    """The flag that asks for a regression before any data are read (None: the labels
    decide)."""
    if args.task == "regression":
        return "--task regression asks for a regression"
    if args.log1p_target:
        return "--log1p-target asks for a regression"
    return None


def _regression_label(label):
    return f"the label column {label!r} holds non-integer values (a regression target)"


#: what the CLI suggests instead of a regression of text labels
CLI_ADVICE = "use --task classification, or pick a numeric label column with --label"


#: what the CLI suggests for a label column of numbers with a stray text ('n/a')
CLI_STRAY_ADVICE = ("correct it, or mark it missing (NaN or an empty field) and leave its row "
                    "out with --missing drop")


def _refuse_text_labels(flag, cat):
    """A regression (asked for by ``flag``) of labels read as text: refused, saying why: a
    column of numbers with a stray text ('n/a') named with its data row (meta's
    label_stray), a column of names with an example of them."""
    label = cat.meta.get("label")
    if cat.meta.get("label_stray"):
        raise CLIError(f"{flag}: " + stray_label_text(label, cat.meta["label_stray"],
                                                      CLI_STRAY_ADVICE))
    advice = CLI_ADVICE if label is not None else (
        "use --task classification, or give a --catalog with a numeric label column")
    raise CLIError(f"{flag}: " + text_regression_text(label, text_label_example(cat.class_names),
                                                      advice))


def _regression_targets(cat):
    """The float targets of a classifier's integer labels: the numbers the file holds (-1
    / +1 labels are classes 0 / 1, their targets -1 / +1, as --stream reads them)."""
    mapping = cat.meta.get("label_mapping")
    if not mapping:
        return cat.y.astype(np.float64)
    values = np.empty(len(mapping), np.float64)
    for value, k in mapping.items():
        values[k] = float(value)
    return values[cat.y]


def _apply_task(cat, task, log1p):
    """--task: a classifier of integer labels may be asked for as a regression; labels that
    are text may not (a catalog not read by load_catalog, the synthetic one, has named
    classes)."""
    if log1p and task == "classification":
        raise CLIError("--log1p-target applies to regression targets, and --task "
                       "classification asks for classes: drop one of them")
    if (task == "regression" or log1p) and cat.class_names is not None and \
            cat.meta.get("label_text", True):
        _refuse_text_labels("--task regression" if task == "regression" else "--log1p-target",
                            cat)
    if task == "regression" and cat.class_names is not None:
        cat.y = _regression_targets(cat)
        cat.class_names, cat.positive = None, None
    elif task == "classification" and cat.class_names is None:
        raise CLIError("--task classification: the label holds non-integer values (a "
                       "regression target)")
    if log1p:
        if cat.class_names is not None:
            raise CLIError("--log1p-target applies to regression targets")
        if not (cat.y > -1).all():
            raise CLIError("--log1p-target needs targets > -1 (log(1 + y) must exist)")
    return cat


def _check_validation_rows(args, cat, tr, val_rows):
    """Before training, naming the flags (fit and the metrics would name their keyword
    arguments, the cut only after training): a --validation fraction that holds out no row
    of a small training split, and a cut to choose on validation rows without the positive
    class.  val_rows: the CLI's own split (cut, calibration), else None: fit splits tr."""
    if args.validation <= 0:
        return
    if val_rows is None:    # fit's own stratified split; its size does not depend on the rng
        n_val = stratified_split(cat.y[tr], args.validation, np.random.default_rng(0))[1].size
    else:
        n_val = val_rows.size
    if n_val == 0:
        raise CLIError(f"--validation {args.validation:g} holds out no row of the "
                       f"{counted(tr.size, 'training row')}; give a larger --validation"
                       + ("" if val_rows is not None else ", or --validation 0 for none"))
    if args.max_contamination is None and args.min_completeness is None:
        return
    if cat.positive is None:
        raise CLIError("a cut needs the positive class: pass --positive")
    if not np.any(cat.y[val_rows] == cat.positive):
        flag = "--max-contamination" if args.max_contamination is not None \
            else "--min-completeness"
        raise CLIError(f"{flag}: the validation split ({counted(n_val, 'row')}) holds no "
                       f"{cat.positive_name} to choose the cut on; give a larger --validation "
                       "or a catalog with more of them")


def _calibrate_and_cut(model, cat, val_rows, args):
    """Temperature scaling, then the probability cut, both chosen on the validation rows
    (the cut after calibrating: temperature moves the probabilities) and stored in the
    model, which applies them in predict_proba / predict everywhere."""
    Xv, yv = cat.X[val_rows], cat.y[val_rows]
    if args.calibrate:
        before = model.predict_proba(Xv)
        logits = model.forward(model.transform_inputs(Xv))
        model.temperature = metrics.fit_temperature(logits, yv)
        after = model.predict_proba(Xv)
        say(f"calibration (validation, n={yv.size}): temperature {model.temperature:.3f}; "
            f"ECE {metrics.expected_calibration_error(yv, before, cat.positive):.4f} -> "
            f"{metrics.expected_calibration_error(yv, after, cat.positive):.4f}, Brier "
            f"{metrics.brier_score(yv, before, cat.positive):.4f} -> "
            f"{metrics.brier_score(yv, after, cat.positive):.4f}")
    if args.max_contamination is None and args.min_completeness is None:
        return
    proba = model.predict_proba(Xv)
    try:
        if args.max_contamination is not None:
            cut = metrics.threshold_at_contamination(yv, proba, cat.positive,
                                                     args.max_contamination)
        else:
            cut = metrics.threshold_at_completeness(yv, proba, cat.positive,
                                                    args.min_completeness)
    except ValueError as exc:       # e.g. contamination 0 that no cut reaches: name the flag
        flag = f"--max-contamination {args.max_contamination:g}" \
            if args.max_contamination is not None \
            else f"--min-completeness {args.min_completeness:g}"
        raise CLIError(f"{flag}: {exc}") from None
    # halfway to the next lower validation score: the same rows selected, and the row at the
    # cut no longer flips with the last bit of its probability on another path
    threshold = metrics.threshold_with_margin(proba, cat.positive, cut.threshold)
    model.set_contract(positive=cat.positive, threshold=threshold)
    say(f"cut chosen on the validation set (n={yv.size}): P({cat.positive_name}) >= "
        f"{threshold:.4g} gives completeness {cut.completeness:.4f}, contamination "
        f"{metrics.format_rate(cut.contamination)}")


def cmd_train(args):
    schedule_spec(args.schedule, None, args)  # a bad spec fails before the data are loaded
    args.optimizer_kwargs = check_optimizer_kwargs(args)     # so do bad hyper-parameters
    check_out_path(args.out, [args.catalog])
    for flag in ("plot", "bin_plot", "calibration_plot"):
        path = getattr(args, flag)
        check_out_path(path, [args.catalog], _flag(flag), _outputs(args, flag))
        if path:
            check_plot_path(path, _flag(flag))
    _check_checkpoint_paths(args)
    if _regression_by_flag(args):
        _refuse_classification_options(args, _regression_by_flag(args))
    wants_val = _check_targets(args)
    _check_missing_has_catalog(args)
    check_column("--bin-by", args.bin_by, args.catalog, hdu=catalog_hdu(args))
    if args.stream:
        return _train_stream(args)
    extra = [args.bin_by] if args.bin_by and args.catalog else None
    cat = _apply_task(load_data(args, extra=extra), args.task, args.log1p_target)
    if cat.class_names is None:
        _refuse_classification_options(args, _regression_label(cat.meta.get("label")))
    if args.bin_by is not None:
        _bin_values(cat, args)          # the synthetic catalog's columns: before training
    n_out, loss = outputs_and_loss(cat)
    rng = np.random.default_rng(args.seed)
    tr, te = stratified_split(cat.y, args.test_fraction, rng)  # float y: a random split
    if tr.size < 2 or te.size < 1:
        raise CLIError(_too_few_to_split(cat))
    # the training rows, as the warning says (it judged the test rows too)
    warn(far_in_training(cat.X[tr], cat.feature_names).warning())
    model = _store_medians(model_factory(args, cat, n_out)(), cat)
    if args.log1p_target:
        model.set_contract(target_transform="log1p")
    validation, val_rows = (args.validation if args.validation > 0 else None), None
    if wants_val:           # our own split: the cut and the temperature are chosen on it
        fit_rows, val_rows = stratified_split(cat.y[tr], args.validation, rng)
        fit_rows, val_rows = tr[fit_rows], tr[val_rows]
        validation, tr = (cat.X[val_rows], cat.y[val_rows]), fit_rows
    _check_validation_rows(args, cat, tr, val_rows)
    # the rows fit trains on: tr is already without its validation rows after our own split
    n_fit = tr.size if val_rows is not None else int(tr.size * (1 - args.validation))
    schedule = schedule_spec(args.schedule, n_fit, args)
    _describe_run(model, loss, schedule, args, tr, te, val_rows)
    restored = _restored_epochs(args)
    t0, m0 = time.perf_counter(), tuning.measuring_seconds()
    with schedule_warnings_said(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", FIT_FAR_WARNING)   # said above, the CLI's way
        hist = fit(model, cat.X[tr], cat.y[tr], loss=loss, optimizer=args.optimizer,
                   lr=args.lr, optimizer_kwargs=args.optimizer_kwargs,
                   batch_size=args.batch_size, epochs=args.epochs,
                   schedule=schedule, validation=validation,
                   early_stopping=args.early_stopping, class_weight=_class_weight(args),
                   seed=args.seed, progress=not args.quiet, backend=args.backend,
                   n_threads=args.threads, standardize=True,
                   on_divergence="ignore", **_checkpoint_kw(args))  # _report_fit says a blow-up
    _report_fit(hist, time.perf_counter() - t0, tuning.measuring_seconds() - m0, restored)
    if val_rows is not None:
        _calibrate_and_cut(model, cat, val_rows, args)
    test_out = _report_test(model, cat, te, args)
    if args.out:
        config = _config(args, hist, loss, schedule, cat.meta.get("source"))
        p = save_model(args.out, model, config)
        say(f"saved model to {p}")
    _plots(args, hist, model, cat, te, test_out)
    return 1 if hist.runaway else 0


def _check_missing_has_catalog(args):
    """--missing without --catalog: the synthetic catalog has no missing values, so no
    policy applies (and impute-median would store no medians, yet be recorded as used)."""
    if args.missing is not None and not args.catalog:
        raise CLIError(f"--missing {args.missing} applies to a --catalog file; the synthetic "
                       "catalog (no --catalog) has no missing values: give --catalog, or "
                       "leave --missing out")


def _store_medians(model, cat):
    """--missing impute-median: the training catalog's column medians become the model's
    fill values (FeatureSpec.fill), so that predict, the model file, the C loader and the
    ONNX export impute a missing raw value as training did.  The model, as it is otherwise."""
    medians = cat.meta.get("impute_medians")
    if medians and model.features is not None:
        model.set_contract(features=model.features.with_fill(medians))
    return model


def _too_few_to_split(cat):
    """Why no train / test split: few rows, or (the stratified split holds out no class
    with a single row) labels that are all distinct, as an id column's are."""
    counts = np.bincount(cat.y) if cat.class_names is not None else ()
    return _id_column_text(counts, cat.meta.get("label"), ", so none can be held out for "
                           "the test set") \
        or f"{counted(len(cat), 'row is', 'rows are')} too few for a train / test split"


def _id_column_text(counts, label, why=""):
    """The error for class labels that are all distinct (more than two classes of a single
    row each: an id column given as --label), else None."""
    counts = np.asarray(counts, dtype=np.int64)
    if np.count_nonzero(counts) <= 2 or counts.max() != 1:
        return None
    return (f"each of the {int(counts.sum())} rows has a class of its own in the label "
            f"{label!r}{why}; is it an id column? (--label names the class column)")


def _hidden_activation(model, args):
    """The activation the run line names: none without a hidden layer (--hidden none, a
    linear / logistic model), where --activation applies to nothing."""
    return args.activation if len(model.layer_sizes) > 2 else "no hidden layer"


def _describe_run(model, loss, schedule, args, tr, te, val_rows):
    say(f"model: MLP({list(model.layer_sizes)}), {_hidden_activation(model, args)}, "
        f"{args.dtype}, "
        f"{model.n_params} parameters; loss {loss}"
        + (" on log(1 + y)" if model.target_transform == "log1p" else "")
        + f"; optimizer {optimizer_text(args)}"
        + (f", schedule {schedule}" if schedule else "")
        + f"; batch {batch_text(args)}, {counted(args.epochs, 'epoch')}")
    held = f", {val_rows.size} validation" if val_rows is not None else \
        f" ({args.validation:.0%} of them for validation)" if args.validation > 0 else ""
    say(f"split: {tr.size} train{held}, {te.size} test "
        f"({'stratified' if loss != 'mse' else 'random'}, seed {args.seed}); "
        "the model standardises its inputs with the training mean/std")


def _plots(args, hist, model, cat, te, test_out):
    from .. import plot
    if args.plot:
        _plot_train(args.plot, hist, model, cat, te, test_out, args)
    if args.bin_plot:
        pred = model.predict(cat.X[te])
        values = _bin_values(cat, args)[te]
        plot.binned_completeness(cat.y[te], pred, cat.positive, values,
                                 bins=metrics.bulk_bin_edges(values, args.bins),
                                 path=args.bin_plot, column=args.bin_by, name=cat.positive_name,
                                 title=f"{cat.positive_name} per {args.bin_by} bin (test set)")
        say(f"saved plot to {args.bin_plot}")
    if args.calibration_plot:
        plot.reliability_diagram(cat.y[te], test_out, positive=cat.positive,
                                 path=args.calibration_plot, name=cat.positive_name,
                                 title=f"Reliability of P({cat.positive_name}) (test set)")
        say(f"saved plot to {args.calibration_plot}")


def _plot_train(path, hist, model, cat, te, test_out, args):
    from .. import plot
    p = check_plot_path(path)
    if model.link == "identity":
        plot.regression_report(hist, cat.y[te], test_out, path=p, redshift=_is_redshift(args),
                               name=str(args.label or "target"),
                               title=f"MLP({list(model.layer_sizes)}): test set")
    else:
        cols, names = color_pair(cat, cat.X[te])
        plot.training_report(hist, cat.y[te], test_out, cat.positive, cat.class_names,
                             colors=cols, color_names=names or ("", ""), path=p,
                             title=f"MLP({list(model.layer_sizes)}) on {counted(len(cat), 'row')}",
                             subset="test set", cut=model.threshold)
    say(f"saved plot to {p}")


def _open_stream(args):
    if not args.catalog:
        raise CLIError("--stream reads a --catalog file chunk by chunk")
    missing = missing_policy(args)
    if missing == "impute-median":
        raise CLIError("--stream cannot impute medians (that needs the whole column); use "
                       "--missing drop")
    hdu = catalog_hdu(args)
    with fits_tables_hint(args.catalog, None, hdu):
        stream = CatalogStream(args.catalog, features=args.features, label=args.label,
                               chunk_rows=args.chunk_rows, dtype=args.dtype,
                               class_names=args.class_names, positive=args.positive,
                               # as in memory: an error unless --missing drop / --drop-invalid
                               missing=missing, where=args.where, hdu=hdu)
    if stream.label is None:
        raise CLIError(f"{args.catalog}: no label column named 'label' or 'class'; pass --label")
    with catalog_warnings() as caught:  # e.g. 'QSO' and 'qso', said as lines (as in memory)
        stream.scan(progress=not args.quiet)
    _apply_stream_task(stream, args.task)
    table = table_read_text(args.catalog, None, hdu)
    say(f"data: {args.catalog}{table} streamed in {counted(stream.n_chunks, 'chunk')} of up to "
        f"{counted(args.chunk_rows, 'row')}: {counted(stream.n_valid, 'usable row')}"
        + (f" ({', '.join(f'{a}={b}' for a, b in stream.class_counts.items())})"
           if stream.class_counts else "")
        + (f"; skipping {counted(stream.n_dropped, 'row')} with missing values"
           if stream.n_dropped else ""))
    say_warnings(caught)
    warn(stream.far_values.warning())      # counted by the scan: no pass of its own
    return stream


def _apply_stream_task(stream, task):
    """--task for --stream, as _apply_task in memory: integer labels read as regression
    targets (fit_stream keeps the mapping), text refused as targets (class names, or a
    stray 'n/a' among numbers named with its data row), non-integer labels as classes."""
    if task == "regression" and stream.class_names is not None:
        try:
            stream.use_targets(CLI_ADVICE, CLI_STRAY_ADVICE)
        except ValueError as exc:       # the scan found text in the label column
            raise CLIError(f"--task regression: {exc}") from None
    elif task == "classification" and stream.class_names is None:
        raise CLIError("--task classification: the label holds non-integer values (a "
                       "regression target)")


def _check_batch_fits_chunks(args, stream):
    """fit_stream's mini-batches never straddle chunks: a --batch-size above --chunk-rows
    (of a file longer than one chunk) trains on batches of --chunk-rows rows while the run
    says 'batch 256', and 'full' on one chunk at a time: a warning naming both flags."""
    if args.batch_size <= args.chunk_rows or stream.n_rows_file <= args.chunk_rows:
        return
    what = (f"--batch-size full ({counted(args.batch_size, 'row')})"
            if getattr(args, "full_batch", False) else f"--batch-size {args.batch_size}")
    warn(f"warning: {what} is larger than --chunk-rows {args.chunk_rows}: with --stream a "
          f"mini-batch never spans two chunks, so batches hold at most "
          f"{counted(args.chunk_rows, 'row')}; give --chunk-rows >= the batch size for "
          "batches of that size")


def _train_stream(args):
    """train --stream: fit_stream over the whole --catalog, chunk by chunk."""
    stream = _open_stream(args)
    apply_full_batch(args, stream.n_valid)
    _check_batch_fits_chunks(args, stream)
    if stream.class_names is None:
        _refuse_classification_options(args, _regression_label(stream.label))
        n_out, loss = 1, "mse"
    else:
        if _id_column_text(list(stream.class_counts.values()), stream.label):
            raise CLIError(_id_column_text(list(stream.class_counts.values()), stream.label))
        present = [c for c, count in stream.class_counts.items() if count]
        if len(present) < 2:            # as in memory (outputs_and_loss), before training
            raise CLIError(f"the labels hold a single class ({', '.join(present)}); need at "
                           "least two classes to train a classifier")
        k = len(stream.class_names)
        n_out, loss = (1, "bce") if k == 2 else (k, "cross_entropy")
    model = MLP([len(stream.feature_names), *args.hidden, n_out], activation=args.activation,
                seed=args.seed, dtype=args.dtype, positive=stream.positive)
    schedule = schedule_spec(args.schedule, stream.n_valid, args, stream.n_chunks)
    say(f"model: MLP({list(model.layer_sizes)}), {_hidden_activation(model, args)}, "
        f"{args.dtype}; loss {loss}; "
        f"optimizer {optimizer_text(args)}; batch {batch_text(args)}, "
        f"{counted(args.epochs, 'epoch')}; "
        f"features {', '.join(stream.feature_names)} standardised from a streaming pass")
    restored = _restored_epochs(args)
    t0, m0 = time.perf_counter(), tuning.measuring_seconds()
    with schedule_warnings_said():
        hist = fit_stream(model, stream, epochs=args.epochs, batch_size=args.batch_size,
                          optimizer=args.optimizer, lr=args.lr,
                          optimizer_kwargs=args.optimizer_kwargs, loss=loss, schedule=schedule,
                          seed=args.seed, class_weight=_class_weight(args),
                          progress=not args.quiet, backend=args.backend,
                          n_threads=args.threads,
                          on_divergence="ignore",   # a blow-up: _report_fit's warning line
                          **_checkpoint_kw(args, stream=True))
    _report_fit(hist, time.perf_counter() - t0, tuning.measuring_seconds() - m0, restored,
                " and the reading they did not hide")
    if args.out:
        p = save_model(args.out, model, _config(args, hist, loss, schedule, str(args.catalog),
                                                streamed=True))
        say(f"saved model to {p}")
    if args.plot:
        from .. import plot
        plot.loss_curves(hist, path=args.plot)
        say(f"saved plot to {args.plot}")
    return 1 if hist.runaway else 0
