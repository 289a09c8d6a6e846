"""What the CLI commands share: loading the catalog, building and saving models, checks."""

import argparse
import contextlib
import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .. import io as fio
from .._validate import counted
from ..atomic import refuse_overwrite, write_target
from ..backends import max_threads, tuning
from ..data import COLOR_FEATURES, load_catalog, make_photometric_catalog
from ..data.catalog import CatalogWarning
from ..data.formats import catalog_columns, catalog_format
from ..model import MLP
from ..optim import make_optimizer
from ..schedules import ScheduleWarning, from_spec, length_problems



class CLIError(Exception):
    """An input problem found by the CLI itself (reported like a library ValueError)."""


def thread_count(text):
    """The argparse type of --threads: a count the kernels accept (1 .. max_threads()),
    refused when the command line is parsed, not after the catalog is read and the run
    described (nor, by tune, taken as 'all cores' for 0)."""
    hi = max_threads()
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= hi:
        raise argparse.ArgumentTypeError(f"expected a positive integer at most {hi} (4 x the "
                                         f"CPUs, at least 64), got {text!r}")
    return n



def optimizer_kwargs_arg(text):
    """The argparse type of --optimizer-kwargs: 'momentum=0.95,nesterov=true,betas=0.9:0.99'
    as {name: value}, a value being true / false (a flag), A:B (a pair, Adam's betas) or a
    number.  Only the syntax is checked here; check_optimizer_kwargs checks the names and
    values against the chosen --optimizer, which argparse may not have read yet."""
    kw = {}
    for item in (s.strip() for s in text.split(",")):
        name, sep, value = (t.strip() for t in item.partition("="))
        if not item:
            continue
        if not sep or not name or not value:
            raise argparse.ArgumentTypeError(
                f"expected NAME=VALUE pairs separated by commas, such as momentum=0.9,"
                f"nesterov=true or betas=0.9:0.99, got {item!r} in {text!r}")
        if name == "lr":
            raise argparse.ArgumentTypeError(
                f"the learning rate is set by --lr (sweep: --lrs), not by --optimizer-kwargs "
                f"(got {item!r})")
        if name in kw:
            raise argparse.ArgumentTypeError(f"{name!r} given twice in {text!r}")
        kw[name] = _kwarg_value(name, value)
    return kw


def _kwarg_value(name, text):
    """One --optimizer-kwargs value: a bool, a pair of numbers or a number."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        if ":" in text:
            return tuple(float(t) for t in text.split(":"))
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name}: expected a number, true / false or a pair such as 0.9:0.99, "
            f"got {text!r}") from None


def check_optimizer_kwargs(args):
    """args.optimizer_kwargs ({} if not given) after building --optimizer with them and --lr
    on a one-parameter buffer, as fit does: an unknown name or a value out of range is a
    CLIError naming the flag and the optimizer, before any data are loaded."""
    kw = dict(getattr(args, "optimizer_kwargs", None) or {})
    lr = {} if getattr(args, "lr", None) is None else {"lr": args.lr}
    params = np.zeros(1, dtype=args.dtype)
    takes = [k for k in make_optimizer(args.optimizer, params).state_dict()["hyper"]
             if k != "lr"]
    unknown = [k for k in kw if k not in takes]
    if unknown:
        raise CLIError(f"--optimizer-kwargs: {args.optimizer} has no hyper-parameter "
                       f"{', '.join(map(repr, unknown))} (it takes {', '.join(takes)})")
    try:
        make_optimizer(args.optimizer, params, **kw, **lr)
    except (TypeError, ValueError) as err:
        raise CLIError(f"--optimizer-kwargs for {args.optimizer}: {err}") from None
    return kw


def optimizer_text(args):
    """'adam lr 0.01 (betas=(0.9, 0.99), amsgrad=True)': the optimizer as a run line says it."""
    kw = getattr(args, "optimizer_kwargs", None) or {}
    return (args.optimizer + (f" lr {args.lr:g}" if getattr(args, "lr", None) is not None
                              else "")
            + (" (" + ", ".join(f"{k}={v!r}" for k, v in kw.items()) + ")" if kw else ""))


# ---------------------------------------------------------------------------------------
# helpers

def say(*a):
    """Print a line of the command's report at once (flushed: a long run shows its progress
    as it goes, also through a pipe)."""
    print(*a, flush=True)


def kernels_cached_text():
    """Whether a run's measurements of this CPU's kernel choices reached the cache file: if
    not (a read-only home, FASTMLP_CACHE_DIR unwritable), the next run measures again."""
    path = tuning.unwritten_cache()
    return ("once: cached for later runs" if path is None else
            f"not cached: could not write {path}")



@contextlib.contextmanager
def catalog_warnings():
    """Collect the CatalogWarnings raised in the block (class names that differ only in
    case, id columns among the default features) as ``warning: ...`` lines into the list
    it yields, for say_warnings to print (not Python's file:line form); any other warning
    goes on as it would have."""
    lines = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CatalogWarning)
        yield lines
    for w in caught:
        if issubclass(w.category, CatalogWarning):
            lines.append(f"warning: {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def warn(line):
    """A warning line on stderr, flushed (None or "": nothing), e.g. the features that lie
    far from the bulk of the training data, or a schedule longer than the run."""
    if line:
        print(line, file=sys.stderr, flush=True)


def say_warnings(lines):
    """Warning lines on stderr (warn, each)."""
    for line in lines:
        warn(line)


def load_data(args, extra=None):
    """The --catalog file (or the synthetic catalog) with ``extra`` columns carried along."""
    caught = []
    if args.catalog:
        missing_policy(args)
        hdu = catalog_hdu(args)
        _check_label_column(args.catalog, args.label, hdu)
        with catalog_warnings() as caught, fits_tables_hint(args.catalog, None, hdu):
            cat = load_catalog(args.catalog, features=args.features, label=args.label,
                               positive=args.positive, drop_invalid=args.drop_invalid,
                               dtype=args.dtype, class_names=args.class_names,
                               missing=args.missing, extra=extra, where=args.where, hdu=hdu)
        if cat.y is None:
            raise CLIError(f"{args.catalog}: the catalog has no labels to train on")
        src = f"{args.catalog}{table_read_text(args.catalog, None, hdu)}"
    else:
        if args.hdu is not None:
            raise CLIError(f"--hdu {args.hdu}: chooses the table of a FITS --catalog file; "
                           "the synthetic catalog (no --catalog) has no HDUs; leave out --hdu "
                           "or give --catalog")
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
    say(f"data: {src}: {counted(len(cat), 'row')} ({counts}){pos}")
    imputed = cat.meta.get("imputed")
    say(f"features: {', '.join(cat.feature_names)}"
        + (f"; dropped {counted(dropped, 'row')} with missing values" if dropped else "")
        + (f"; imputed the median for {counted(sum(imputed.values()), 'missing value')} "
           f"({', '.join(f'{k}: {v}' for k, v in imputed.items())})" if imputed else ""))
    say_warnings(caught)                # after the lines on the classes and features
    apply_full_batch(args, len(cat))
    return cat


def missing_policy(args):
    """--missing, or "drop" for --drop-invalid (the same), or "error"; both flags given and
    saying different things is an error naming them (the reader names its keywords)."""
    if args.drop_invalid and args.missing not in (None, "drop"):
        raise CLIError(f"--drop-invalid (the same as --missing drop) contradicts --missing "
                       f"{args.missing}; give one of them")
    return args.missing or ("drop" if args.drop_invalid else "error")


def _check_label_column(catalog, label, hdu=None):
    """No --label and no column named 'label' or 'class': say to pass --label (the reader
    would say label=<column>, or, given --features, that there are no labels)."""
    if label is not None or not Path(catalog).is_file():
        return                          # the reader says what is wrong with the file
    with fits_tables_hint(catalog, None, hdu):
        columns = table_columns(catalog, None, hdu)
    if columns and not any(c.lower() in ("label", "class") for c in columns):
        raise CLIError(f"{catalog}: no label column named 'label' or 'class'; pass --label "
                       f"COLUMN; available columns: {columns}"
                       + other_fits_tables_text(catalog, None, hdu))


def catalog_hdu(args):
    """--hdu (the FITS table to read: an index or an extension name), None without it;
    refused for a catalog that is not FITS (no extensions to choose from)."""
    hdu = getattr(args, "hdu", None)
    if hdu is not None and args.catalog and \
            catalog_format(args.catalog, getattr(args, "format", None)) != "fits":
        raise CLIError(f"--hdu {hdu}: chooses the table of a FITS catalog, but {args.catalog} "
                       "is not FITS; leave out --hdu")
    if hdu is not None and args.catalog and Path(args.catalog).is_file():
        check_fits_hdu(args.catalog, hdu)
    return hdu


def table_columns(catalog, format=None, hdu=None):
    """The column names of a catalog: of its table ``hdu`` for a FITS file given one."""
    if hdu is not None:
        from ..data.fits_table import FitsTable
        return FitsTable(catalog, hdu).columns
    return catalog_columns(catalog, format)


def other_fits_tables_text(catalog, format=None, hdu=None):
    """For a FITS catalog, its table HDUs other than the one read (``hdu``, default the
    first table) with their columns and how to choose one: "; other table HDUs: 2 'QSO'
    (u-g, g-r, ...): pass --hdu 2"; "" for any other catalog, or when there is none (from
    the headers only: astropy reads no data)."""
    try:
        if not Path(catalog).is_file() or catalog_format(catalog, format) != "fits":
            return ""
        from astropy.io import fits
        from ..data.fits_table import fits_table_index
        with fits.open(catalog, memmap=False, lazy_load_hdus=True) as hdul:
            read = fits_table_index(hdul, catalog, hdu)
            others = [(k, h.name, list(h.columns.names)) for k, h in enumerate(hdul)
                      if k != read and isinstance(h, (fits.BinTableHDU, fits.TableHDU))]
    except (ImportError, OSError, ValueError):
        return ""                       # the reader's own error says what is wrong
    if not others:
        return ""
    return (f"; {catalog} has other table HDUs: {_tables_text(others)}; choose one with "
            "--hdu (its index or name)")


def _tables_text(tables):
    """Table HDUs (index, name, columns) as "1 'META' (a); 2 'OBJ' (a, b, label)"."""
    return "; ".join(f"{k} {name!r} ({', '.join(cols[:8])}{', ...' if len(cols) > 8 else ''})"
                     for k, name, cols in tables)


def check_fits_hdu(catalog, hdu):
    """--hdu naming no table HDU of the FITS ``catalog``: a CLIError naming the flag and the
    file's table HDUs with their names and columns (the reader's error names hdu= and the
    indices only).  A file that cannot be opened is left to the reader's error."""
    try:
        from astropy.io import fits
        from ..data.fits_table import fits_table_index
        with fits.open(catalog, memmap=False, lazy_load_hdus=True) as hdul:
            tables = [(k, h.name, list(h.columns.names)) for k, h in enumerate(hdul)
                      if isinstance(h, (fits.BinTableHDU, fits.TableHDU))]
            try:
                fits_table_index(hdul, catalog, hdu)
                return
            except ValueError:
                kind = "is not a table" if _has_hdu(hdul, hdu) else "is not in the file"
    except (ImportError, OSError, ValueError):
        return
    listed = _tables_text(tables) if tables else "none"
    raise CLIError(f"--hdu {hdu}: HDU {hdu!r} of {catalog} {kind}; its table HDUs: "
                   f"{listed}; give one's index or name")


def table_read_text(catalog, format=None, hdu=None):
    """Which table of a FITS catalog is read, for the data / catalog line: " (HDU 2 'OBJ')"
    (``hdu``, else the first table); "" for another format or a file astropy cannot open
    (the reader has said what is wrong)."""
    try:
        if not Path(catalog).is_file() or catalog_format(catalog, format) != "fits":
            return ""
        from astropy.io import fits
        from ..data.fits_table import fits_table_index
        with fits.open(catalog, memmap=False, lazy_load_hdus=True) as hdul:
            k = fits_table_index(hdul, catalog, hdu)
            name = hdul[k].name
    except (ImportError, OSError, ValueError):
        return ""
    return f" (HDU {k} {name!r})" if name else f" (HDU {k})"


def _has_hdu(hdul, hdu):
    try:
        hdul[hdu]
    except (KeyError, IndexError):
        return False
    return True


# what every reader's error for a column name missing from the table says (catalog.py,
# stream.py, features.py, formats.py's --where)
MISSING_COLUMN_MARK = "available columns: "


@contextlib.contextmanager
def fits_tables_hint(catalog, format=None, hdu=None):
    """A column not found in a FITS catalog's table (a ValueError from the readers): the
    error, with the file's other table HDUs and --hdu appended (other_fits_tables_text).
    Only for a needed name missing from the table: every reader's error for one lists the
    table's columns ("available columns: [...]"); an error about a column that is there
    (missing values, a label also a feature) is not cured by another HDU."""
    try:
        yield
    except ValueError as exc:
        hint = other_fits_tables_text(catalog, format, hdu) \
            if MISSING_COLUMN_MARK in str(exc) else ""
        if not hint:
            raise
        raise CLIError(f"{exc}{hint}") from None


def apply_full_batch(args, n_rows):
    """--batch-size full: set args.batch_size to n_rows (and args.full_batch): the training
    code caps a batch at the rows it trains on, so every one of them falls in one batch."""
    if getattr(args, "batch_size", None) == "full":
        args.batch_size, args.full_batch = max(1, n_rows), True


def batch_text(args):
    """How the run's batch reads in its description: 'full' or the rows."""
    return "full" if getattr(args, "full_batch", False) else str(args.batch_size)



def outputs_and_loss(cat):
    """(n_outputs, loss) for the catalog's labels: one output and mse for a regression
    target, one and bce for two classes, k and cross_entropy for k > 2 classes."""
    if cat.class_names is None:
        return 1, "mse"
    k = len(cat.class_names)
    present = np.unique(cat.y)
    if present.size < 2:
        raise CLIError(f"the labels hold a single class ({cat.class_names[present[0]]}); "
                       "need at least two classes to train a classifier")
    return (1, "bce") if k == 2 else (k, "cross_entropy")



def model_factory(args, cat, n_out):
    """A function making a fresh model for the catalog: its features, class names and
    positive class in the contract (the recipes standardise each model on its own rows)."""
    sizes = [cat.n_features, *args.hidden, n_out]
    classes = None if cat.class_names is None else [str(c) for c in cat.class_names]

    def make_model():
        return MLP(sizes, activation=args.activation, seed=args.seed, dtype=args.dtype,
                   features=list(cat.feature_names), class_names=classes,
                   positive=cat.positive)
    return make_model


def load_model(path):
    """The model in a file written by ``fastmlp train --out`` / fastmlp.save."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise CLIError(f"--model {path} is a directory, not a model file")
    return fio.load(path)


def save_model(path, model, config):
    """--out: fastmlp.save (versioned, checksummed, atomic): the model's whole contract, its
    optimizer state and the run's settings."""
    path = Path(path)
    d = path.parent if str(path.parent) else Path(".")
    if not d.is_dir():
        raise CLIError(f"--out {path}: directory {d} does not exist")
    return fio.save(model, path, training_config=config)


def check_out_path(out, inputs, flag="--out", outputs=()):
    """Refuse an output path that is one of the inputs (through symlinks, and hard links
    or other aliases of an existing file): a command never overwrites its own input; nor
    one of the other ``outputs`` ((flag, path) pairs): one output would overwrite the
    other (fastmlp.atomic.refuse_overwrite)."""
    if out is None:
        return
    try:
        refuse_overwrite(out, inputs, flag, outputs)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    check_writable(out, flag)


def check_writable(out, flag="--out"):
    """Refuse, before any work, an output path that cannot be written: a directory, a
    device, FIFO or socket (an atomic write would replace it with a regular file), a
    missing directory, a folder on the path that is a file, or one without write (or
    search) permission (found now, not after training).
    A symlink is checked for the file it points to, which is what gets written."""
    try:
        blocking = _file_posing_as_directory(out)
        if blocking is not None:    # else the lstat's bare "[Errno 20] Not a directory"
            raise CLIError(f"{flag} {out}: {blocking} is a file, not a directory; give a "
                           "path in an existing directory")
        target = write_target(out, flag)
    except NotADirectoryError as exc:
        if exc.errno is None:       # write_target's own message, which names the flag
            raise CLIError(str(exc)) from None
        # (a symlink's target under a file: 'link.npz' -> 'notes.txt/m.npz')
        where = f" ({exc.filename})" if exc.filename is not None else ""
        raise CLIError(f"{flag} {out}: a folder on this path is a file{where}; give a path "
                       "in an existing directory") from None
    except (ValueError, OSError) as exc:
        raise CLIError(_path_error_text(exc, flag, out)) from None
    d = target.parent
    if not os.access(d, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {out}: no permission to write in directory {d}")


def _path_error_text(exc, flag, out):
    """An error met checking ``flag``'s path as a message naming the flag: write_target's
    own messages already do; the operating system's ("[Errno 13] Permission denied: 'a/b'",
    from a folder on the path without search permission) say what failed where."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return str(exc)
    where = f" ({exc.filename})" if exc.filename is not None else ""
    return (f"{flag} {out}: {exc.strerror or exc}{where}; check the permissions of the "
            "folders on this path or give another path")


def _file_posing_as_directory(path):
    """The first of path's folders, from the root down, that exists but is not a directory
    (``notes.txt/model.npz``), else None.  The path is walked as given, not normalised:
    ``notes.txt/../m.npz`` goes through notes.txt (the operating system refuses it) though
    os.path.abspath would collapse it to ``m.npz``."""
    for d in reversed(Path(os.path.join(os.getcwd(), path)).parents):
        if not d.is_dir():
            return d if d.exists() else None    # missing: write_target says so
    return None


def schedule_spec(spec, n_train, args, n_chunks=0):
    """The --schedule text, with T defaulting to the steps the schedule has left: the run's
    total step count, less the warm-up of a "warmup=N+" prefix (the schedule starts after
    it, so the run ends at its final lr).  n_train None: the spec is only checked (before
    the data are loaded); given the training rows, a schedule longer than the run is said
    on stderr (a warm-up that never reaches --lr trains at a fraction of it).  n_chunks:
    --stream's chunks, whose batches never span two, so each may add a batch per epoch: a
    schedule is said to be too long only beyond that many steps."""
    if spec is None:
        return None
    checked_only = n_train is None
    n_train = 10_000 if checked_only else n_train
    # "--batch-size full" is still text before the data are loaded: one step per epoch
    bs = max(1, n_train) if args.batch_size == "full" else args.batch_size
    total = args.epochs * -(-n_train // bs)
    head, _, rest = spec.strip().rpartition("+")
    name, _, kw = rest.partition(":")
    if name.strip() in ("linear", "cosine") and "T=" not in kw:
        warm = re.fullmatch(r"\s*warmup=(\d+)\s*", head)
        # (a warm-up as long as the run: it never ends, T=1 is as good as any)
        left = max(1, total - (int(warm.group(1)) if warm else 0))
        kw = ",".join(filter(None, [kw, f"T={left}"]))
        rest = f"{name}:{kw}"
    full = f"{head}+{rest}" if head else rest
    sched = from_spec(full, args.lr if args.lr is not None else 1e-3)  # validate: clear error
    if not checked_only:
        say_warnings(schedule_length_warnings(sched, total + args.epochs * n_chunks))
    return full


@contextlib.contextmanager
def schedule_warnings_said():
    """fit's ScheduleWarnings silenced in the block: schedule_spec said them already, as
    --schedule lines counted in the command's own steps (e.g. --stream's chunks)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ScheduleWarning)
        yield


def schedule_length_warnings(sched, total):
    """'warning: --schedule: ...' lines for a schedule that does not fit in the run's
    ``total`` optimizer steps (schedules.length_problems)."""
    return [f"warning: --schedule: {text}" for text in length_problems(sched, total)]


def check_column(flag, column, catalog, format=None, hdu=None):
    """A column named by a flag (--bin-by, --id-column, --label) that the catalog lacks is
    an error naming the flag (checked from the header before any work); ``hdu``: the FITS
    table read (--hdu)."""
    if column is None or catalog is None or not Path(catalog).is_file():
        return                          # the reader says what is wrong with the file
    columns = table_columns(catalog, format, hdu)
    if columns and column not in columns:
        raise CLIError(f"{flag} {column}: no such column in {catalog}; available columns: "
                       f"{columns}" + other_fits_tables_text(catalog, format, hdu))


def check_plot_path(path, flag="--plot"):
    """A figure's path, checked before any work: a writable regular file path (or none yet)
    in an existing directory, matplotlib, and a suffix matplotlib can write (none: PNG)."""
    p = Path(path)
    check_writable(p, flag)
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CLIError(f"{flag} needs matplotlib: pip install 'fastmlp[plot]'") from None
    fmt = p.suffix.lstrip(".").lower()
    known = FigureCanvasBase.get_supported_filetypes()
    if fmt and fmt not in known:
        raise CLIError(f"{flag} {p}: cannot draw a figure as .{fmt}; use .png, .pdf or .svg "
                       f"(matplotlib writes {', '.join('.' + k for k in sorted(known))})")
    return p



def color_pair(cat, X):
    """(n, 2) u-g and g-r (or the first two features) of the rows X, raw units."""
    names = list(cat.feature_names)
    if "u-g" in names and "g-r" in names:
        return X[:, [names.index("u-g"), names.index("g-r")]], ("u-g", "g-r")
    if X.shape[1] >= 2:
        return X[:, :2], tuple(names[:2])
    return None, None
