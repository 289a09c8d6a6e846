"""``fastmlp predict``: a whole catalog, chunk by chunk, through the model's contract.

Three stages overlap (bounded memory, a few chunks in flight): a reader thread parses chunk
k+1 (pyarrow / NumPy, GIL released), the main thread computes chunk k with the kernels
(``--threads``, default all cores but one), a writer thread encodes chunk k-1 (pyarrow's
Parquet / CSV writers, FITS and .npy as raw records).  ``--label COLUMN`` evaluates the
model on the fly with the same report as ``fastmlp train``."""

import gzip
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .._validate import counted
from ..atomic import atomic_write
from ..backends import tuning
from ..data.catalog import QUASAR_NAMES, class_index_ignoring_case, split_class_names
from ..data.far_values import far_from_model
from ..data.formats import text_column, try_float
from ..features import parse_feature_spec
from ..data.stream import BackgroundWriter, CatalogStream, class_values, \
    default_kernel_threads, missing_labels, predict_stream
from .common import (CLIError, catalog_hdu, check_column, check_out_path, check_plot_path,
                     fits_tables_hint, kernels_cached_text, load_model, say,
                     table_read_text, warn)
from .evaluation import (StreamingClassificationReport, StreamingRegressionReport,
                         looks_like_redshift, worse_than_chance)
from ..data.writers import fits_name_clash, make_writer

OUT_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".npy": "npy", ".csv": "csv",
                ".fits": "fits", ".fit": "fits", ".fts": "fits"}


def _out_format(path, fmt):
    """The output format, from --out-format or the suffix of --out (before a .gz)."""
    name = str(path).lower()
    by_suffix = OUT_SUFFIXES.get(Path(name[:-3] if name.endswith(".gz") else name).suffix)
    if fmt is not None:
        if by_suffix not in (None, fmt):
            raise CLIError(f"--out {path} has the suffix of a {by_suffix} file but "
                           f"--out-format is {fmt}; make them agree (or leave out "
                           "--out-format)")
        return fmt
    fmt = by_suffix
    if fmt is None:
        raise CLIError(f"--out {path}: cannot tell the format from the suffix; use .parquet, "
                       ".csv, .fits or .npy (or --out-format)")
    return fmt


GZIP_FORMATS = ("csv", "fits")      # the gzipped catalogs fastmlp reads (.csv.gz, .fits.gz)
# gzip's default level 9 took 5x the time of level 6 for 2 % smaller files
GZIP_LEVEL = 6


def _gzipped(path, fmt):
    """Whether --out is to be gzipped: a name ending .gz, as an input so named is read
    decompressed (a CSV or FITS output; gzipped Parquet and .npy fastmlp does not read)."""
    if not str(path).lower().endswith(".gz"):
        return False
    if fmt not in GZIP_FORMATS:
        raise CLIError(f"--out {path}: a {fmt} output is not gzipped (fastmlp reads gzipped "
                       "CSV and FITS catalogs, .csv.gz and .fits.gz, not gzipped Parquet or "
                       ".npy; Parquet compresses its columns itself): leave out the .gz, or "
                       "write .csv.gz or .fits.gz")
    return True


def gzip_writing(write, out, seeks):
    """``write(fileobj)`` made to write gzip: straight through for a writer that only
    appends (CSV), through an unnamed temporary file beside ``out`` for one that seeks back
    to fill in counts (FITS).  The result goes to atomic_write, so a .gz output is no more
    half-written than any other."""
    def gzipped(fh):
        with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0,
                           compresslevel=GZIP_LEVEL) as gz:
            if not seeks:
                write(gz)
                return
            with tempfile.TemporaryFile(dir=Path(out).resolve().parent) as plain:
                write(plain)
                plain.seek(0)
                shutil.copyfileobj(plain, gz, 1 << 20)
    return gzipped


def _labels(model, proba, valid):
    """Class indices from the probabilities with the model's own rule (argmax, or its
    threshold for the positive class); -1 where there is no valid prediction."""
    if model.threshold is not None:
        pos = model.positive
        others = np.where(np.arange(proba.shape[1]) == pos, -np.inf, proba)
        # in float64, as MLP.predict: a float32 proba would round the cut to float32
        lab = np.where(proba[:, pos].astype(np.float64) >= model.threshold, pos,
                       others.argmax(axis=1))
    else:
        lab = (proba if valid.all() else np.nan_to_num(proba)).argmax(axis=1)
    return np.where(valid, lab, -1)


def _is_multilabel(model):
    """A sigmoid per output (loss bce, several outputs): a 0/1 label per output, not one
    class per row."""
    return model.link == "sigmoid" and model.n_outputs > 1


def _check_multilabel_options(args, model):
    """--label and --plot take one class per row, which a multilabel model does not give
    (its labels are a 0/1 per output): refused before anything is read or written."""
    if not _is_multilabel(model):
        return
    what = f"{args.model} is a multilabel model ({model.n_outputs} sigmoid outputs, a 0/1 " \
        "label per output)"
    if args.label:
        raise CLIError(f"--label {args.label}: evaluates one class per row, but {what}; "
                       "leave out --label and compare the label_<name> columns written "
                       "with your own labels")
    if args.plot:
        raise CLIError(f"--plot {args.plot}: colours rows by their one predicted class, but "
                       f"{what}; leave out --plot")


def _model_and_features(args):
    model = load_model(args.model)
    backend = getattr(args, "backend", None)
    if backend not in (None, "auto"):
        model.backend = backend                     # --backend: the kernels predict runs on
    if args.threshold is not None:                  # overrides the cut stored in the model
        if model.link == "identity":
            raise CLIError("--threshold applies to classifiers; this model is a regression")
        try:
            model.set_contract(positive=model.positive if model.positive is not None else
                               (1 if model.n_outputs == 1 else None), threshold=args.threshold)
        except ValueError as exc:       # a multiclass model without a stored positive class
            raise CLIError(f"--threshold {args.threshold}: {exc}; this model stores no "
                           "positive class (leave out --threshold: the most probable class "
                           "is the label)") from None
    stored = list(model.feature_names) if model.features else None
    if not args.features:
        if not stored:
            raise CLIError(f"{args.model} stores no feature names; pass --features")
        return model, stored
    try:
        given = parse_feature_spec(args.features)
    except ValueError as exc:
        raise CLIError(f"--features {args.features}: {exc}") from None
    if stored and given != stored:
        raise CLIError(f"--features {args.features}: the model was trained on "
                       f"{','.join(stored)} (in this order) and takes only those; got "
                       f"{','.join(given)} (leave out --features to use the model's own)")
    if len(given) != model.n_inputs:
        raise CLIError(f"--features {args.features}: names {counted(len(given), 'feature')} "
                       f"but the model has {counted(model.n_inputs, 'input')}")
    return model, args.features


def _open_stream(args, model, features):
    label = getattr(args, "label", None)
    # the raw label travels along to say why a row is left out of the evaluation
    extra = list(dict.fromkeys(([args.id_column] if args.id_column else [])
                               + ([label] if label else [])))
    # a standardising model gets float64 features, standardised and rounded to its dtype
    # once, as model.predict_proba(table), C and ONNX do: float32 colours standardised
    # again were rounded twice (1e-4 relative apart for a model with large weights)
    dtype = "float64" if model.standardization is not None else model.dtype.name
    hdu = catalog_hdu(args)
    with fits_tables_hint(args.catalog, args.format, hdu):
        stream = CatalogStream(args.catalog, features=features, label=label or False,
                               chunk_rows=args.chunk_rows, dtype=dtype, extra=extra,
                               format=args.format, where=getattr(args, "where", None),
                               fill=model.features.fill if model.features is not None
                               else None, fill_dtype=model.dtype.name, hdu=hdu)
    if len(stream.feature_names) != model.n_inputs:
        raise CLIError(f"the catalog gives {counted(len(stream.feature_names), 'feature')} "
                       f"{list(stream.feature_names)}, the model has "
                       f"{counted(model.n_inputs, 'input')}")
    if label:
        if model.link == "identity":      # a text column: said as the evaluation's error
            stream.use_targets(f"{args.model} is a regression: give --label the column "
                               "of its targets",
                               "correct it, or mark it missing (NaN or an empty field): "
                               "--label evaluation leaves such rows out")
        else:
            stream.use_classes(_classes(model))
    return stream


def _catalog_coding(args, model):
    """--class-names (the catalog's name of label value 0, 1, ...) as the model's class index
    of each label value, looked up by name (exactly, else ignoring case when that is
    unique); None without --class-names.  Refused for a model without class names, a
    regression, a name that is not one of the model's classes, or without --label."""
    given = getattr(args, "class_names", None)
    if given is None:
        return None
    flag = f"--class-names {given}"
    if not getattr(args, "label", None):
        raise CLIError(f"{flag}: names the integer labels of the --label column; give "
                       "--label too (or leave out --class-names)")
    if model.link == "identity" or _is_multilabel(model):
        raise CLIError(f"{flag}: {args.model} does not predict one class per row "
                       f"({_outputs_text(model)}); leave out --class-names")
    if not model.class_names:
        raise CLIError(f"{flag}: {args.model} stores no class names to map the catalog's "
                       "names onto (its classes are its label values 0, 1, ...); leave out "
                       "--class-names, or train it again with --class-names")
    names = split_class_names(given)
    classes = _classes(model)
    coding = [_class_by_name(flag, name, classes) for name in names]
    if len(set(coding)) < len(coding):
        raise CLIError(f"{flag}: names the same class of the model twice (its classes are "
                       f"{', '.join(classes)})")
    return np.asarray(coding, np.int64)


def class_index_by_name(name, classes):
    """The index in ``classes`` of the class ``name`` names: exactly, else ignoring case when
    that matches one class, else a quasar name (QSO, quasar: catalog.QUASAR_NAMES, as train
    finds its positive class) for the model's one quasar class; None otherwise."""
    k = class_index_ignoring_case(name, classes)
    if k is not None or any(c.casefold() == name.casefold() for c in classes):
        return k                       # found, or ambiguous in case: no synonym then
    if name.casefold() in QUASAR_NAMES:
        quasars = [k for k, c in enumerate(classes) if c.casefold() in QUASAR_NAMES]
        if len(quasars) == 1:
            return quasars[0]
    return None


def _class_by_name(flag, name, classes):
    k = class_index_by_name(name, classes)
    if k is not None:
        return k
    raise CLIError(f"{flag}: {name!r} is not one of the model's classes "
                   f"({', '.join(classes)}); give the model's name of each catalog label "
                   "value 0, 1, ... in order")


def _coded_labels(raw, coding, y, labelled, label):
    """(y, labelled) of a chunk's raw label column read with the catalog's coding: an
    integer label value v is the model's class coding[v] (a value beyond the coding is no
    class of the model).  A column of text labels is refused: --class-names would be
    silently ignored there (text labels are matched to the model's classes by name)."""
    num = try_float(raw)
    if num is None:
        raise CLIError(f"--class-names: names the integer label values 0, 1, ... of --label "
                       f"{label}, but it holds class names (text), matched to the model's "
                       "classes by name already; leave out --class-names")
    index, ok = class_values(num, len(coding))
    return np.where(ok, coding[np.maximum(index, 0)], -1), ok


def _labels_named_loosely(raw, classes, y, labelled):
    """(y, labelled) with the text labels the stream's exact lookup left out read by
    class_index_by_name (case ignored when one class matches, QSO for quasar): a catalog's
    'QSO' is the model's class 'qso'.  Integer labels are returned as they are."""
    rest = ~labelled
    if not rest.any() or try_float(raw) is not None:
        return y, labelled
    values, inverse = np.unique(text_column(raw[rest]), return_inverse=True)
    found = (class_index_by_name(v, classes) for v in values.tolist())
    index = np.array([-1 if k is None else k for k in found], np.int64)[inverse]
    y, labelled = np.array(y, np.int64), labelled.copy()
    y[rest] = np.where(index >= 0, index, y[rest])
    labelled[rest] = index >= 0
    return y, labelled


def _coding_warning(rep, classes, coding):
    """A warning when the evaluation is worse than chance, a sign that the catalog codes
    its labels otherwise than the model (DR6's 0 = QSO against a model's 0 = star); None
    otherwise."""
    why = worse_than_chance(rep)
    if not why:
        return None
    model_coding = ", ".join(f"{k} = {c}" for k, c in enumerate(classes))
    head = f"warning: the evaluation is worse than chance ({why}): "
    if coding is not None:
        given = ", ".join(f"{k} = {classes[c]}" for k, c in enumerate(coding))
        return head + (f"check --class-names, which reads the catalog's labels as {given} "
                       f"(the model's classes are {model_coding})")
    # the swap is the likely coding only for two classes (DR6's 0 = QSO); for more, which
    # permutation the catalog uses is unknown: give the form, not the coding in use
    example = (f"e.g. --class-names {','.join(reversed(classes))}" if len(classes) == 2
               else "--class-names NAME0,NAME1,...")
    return head + (f"the catalog's label coding may differ from the model's classes "
                   f"({model_coding}); if its label values 0, 1, ... mean other classes, "
                   f"say which with --class-names (the class of label 0, 1, ... in order, "
                   f"{example})")


def _classes(model):
    return list(model.class_names or [str(k) for k in range(max(2, model.n_outputs))])


def class_column_stems(classes, fmt):
    """What follows p_ (and a multilabel model's label_) in each class's columns: the class
    name, except in a FITS output, whose column names are case-insensitive, for classes
    whose names differ only in case: each of those gets its class index (the value the
    label column holds for it) appended (classes STAR, qso, star: STAR_0, qso, star_2)."""
    if fmt != "fits":
        return list(classes)
    groups = {}
    for c in classes:
        groups.setdefault(c.casefold(), []).append(c)
    return [f"{c}_{k}" if len(groups[c.casefold()]) > 1 else c for k, c in enumerate(classes)]


def _output_names(model, fmt=None):
    """The columns predict writes besides the id, in order (``fmt``: the output format,
    which decides the names of classes that differ only in case)."""
    stems = class_column_stems(_classes(model), fmt)
    if model.link == "identity":
        k = model.n_outputs
        names = ["prediction"] if k == 1 else [f"prediction_{j}" for j in range(k)]
    elif _is_multilabel(model):
        names = [f"p_{c}" for c in stems] + [f"label_{c}" for c in stems]
    else:
        names = [f"p_{c}" for c in stems] + ["label", "class"]
    return names + ["valid"]


def _case_renamed_text(model, fmt):
    """The line saying which class columns a FITS output renames (classes differing only in
    case; a multilabel model's label_ columns too), None when it renames none."""
    if model.link == "identity":
        return None
    classes = _classes(model)
    pairs = [(c, s) for c, s in zip(classes, class_column_stems(classes, fmt)) if c != s]
    if not pairs:
        return None
    prefixes = ("p_", "label_") if _is_multilabel(model) else ("p_",)
    renamed = [f"{p}{s}" for p in prefixes for _, s in pairs]
    kept = " and ".join(f"{p}<class>" for p in prefixes)
    return ("note: FITS column names are case-insensitive, so the classes "
            f"{', '.join(repr(c) for c, _ in pairs)}, which differ only in case, are written "
            f"as {', '.join(renamed)} (the class index appended; .parquet, .csv and .npy "
            f"keep {kept})")


def _check_fits_names(model, fmt):
    """A FITS output whose class columns still coincide but for case once renamed (a class
    'star_1' beside 'STAR' and 'star'): refused before anything is written, by the FITS
    writer's rule (fits_name_clash)."""
    clash = fits_name_clash(_output_names(model, fmt)) if fmt == "fits" else None
    if clash:
        raise CLIError(f"the FITS output would hold the columns {clash[0]!r} and "
                       f"{clash[1]!r}, and FITS column names are case-insensitive (the "
                       f"model's classes are {', '.join(map(repr, _classes(model)))}); write "
                       ".parquet, .csv or .npy instead")


def _check_id_column(args, model, fmt):
    """--id-column must not share its name with a column predict writes (it would be
    silently replaced by the prediction); in a FITS table, whose column names are
    case-insensitive, not even in another case ('Label' beside 'label': a reader asking for
    either gets the first)."""
    if not args.id_column:
        return
    written = _output_names(model, fmt)
    if args.id_column in written:
        raise CLIError(f"--id-column {args.id_column}: the output already has a column "
                       f"{args.id_column!r} ({', '.join(written)} are written "
                       "beside the id); choose another id column")
    folded = [c for c in written if c.casefold() == args.id_column.casefold()]
    if fmt == "fits" and folded:
        raise CLIError(f"--id-column {args.id_column}: the FITS output already has a column "
                       f"{folded[0]!r}, and FITS column names are case-insensitive (a reader "
                       f"asking for either gets the same column; {', '.join(written)} are "
                       "written beside the id); choose another id column, or write .parquet, "
                       ".csv or .npy")


def _outputs_text(model):
    """What the model predicts, for the first line: its classes."""
    if model.link == "identity":
        return "regression"
    names = ", ".join(_classes(model))
    return f"multilabel, labels {names}" if _is_multilabel(model) else f"classes {names}"


def _cut_text(model):
    """The model's cut for the first line ("" for argmax): a multilabel model's applies to
    every output, 0.5 unless it stores another (as model.predict)."""
    if _is_multilabel(model):
        cut = 0.5 if model.threshold is None else model.threshold
        return f", label 1 where P >= {cut:.4g} (each output)"
    if model.threshold is None:
        return ""
    return f", cut P({_classes(model)[model.positive]}) >= {model.threshold:.4g}"


def _describe(args, model, stream):
    say(f"model: {args.model}: MLP({list(model.layer_sizes)}), {_outputs_text(model)}"
        + (", standardised inputs" if model.standardization is not None else "")
        + _cut_text(model))
    where = f" where {stream.where.text}" if stream.where is not None else ""
    table = table_read_text(args.catalog, args.format, getattr(args, "hdu", None))
    say(f"catalog: {args.catalog}{table}: {counted(stream.n_rows_file, 'row')} in "
        f"{counted(stream.n_chunks, 'chunk')} of up to {args.chunk_rows}{where}; "
        f"features {', '.join(stream.feature_names)}")


class _PredictJob:
    """The per-chunk work of ``fastmlp predict``: output columns, counts, the evaluation
    and the plot sample, and the writer fed through a background thread."""

    def __init__(self, args, model, stream, fmt, coding=None):
        self.args, self.model, self.stream, self.fmt = args, model, stream, fmt
        self.classes = _classes(model)
        self.stems = class_column_stems(self.classes, fmt)     # p_<stem>, label_<stem>
        self.regression = model.link == "identity"
        self.multilabel = _is_multilabel(model)
        self.id_name = args.id_column or "row"
        self.counts = np.zeros(len(self.classes), np.int64)
        self.rows = self.rows_read = self.n_invalid = self.n_no_features = 0
        self.imputed = {}               # {column: missing values the model's fill replaced}
        self.report = None
        self.left_out = _LeftOut()
        self.coding = coding          # the catalog's label coding (--class-names), or None
        if getattr(args, "label", None):
            # as fastmlp train reports a model with a stored cut: what the cut selects,
            # and no "best cut" chosen on the rows being evaluated
            self.report = StreamingRegressionReport(looks_like_redshift(
                args.label, model.target_transform == "log1p")) if self.regression else \
                StreamingClassificationReport(
                    self.classes, model.positive, cut=model.threshold,
                    max_contamination=None if model.threshold is not None else 0.06)
        self.sample = _PlotSample(args, stream, self.regression)
        self.far = far_from_model(model, stream.feature_names)    # 99 / 1e30 sentinels

    def _text_widths(self):
        """FITS and .npy fix a text id's width when they write the first chunk: the width
        that holds every id of the catalog (a later, longer id would not fit)."""
        col = self.args.id_column
        if self.fmt not in ("fits", "npy") or not col or \
                self.stream.empty_chunk().extra[col].dtype.kind not in "USO":
            return {}
        return {self.id_name: self.stream.text_width(col)}

    def _text_types(self):
        """Parquet writes a text id with the Arrow type it was read with (large_string,
        binary, large_binary), which reading it as NumPy str loses (written as string)."""
        col = self.args.id_column
        kind = self.stream.text_type(col) if col and self.fmt == "parquet" else None
        return {self.id_name: kind} if kind is not None else {}

    def run(self, fh):
        # only a one-class-per-row classifier's own "label" gets the class names beside it:
        # said here, not guessed by the writer from a name an id column may share
        one_class = not (self.regression or self.multilabel)
        writer = make_writer(self.fmt, fh, self.classes, self.args.out, self._text_widths(),
                             self._text_types(), label_column="label" if one_class else None)
        bg = BackgroundWriter(writer.write, depth=2)
        chunks, done = 0, False
        try:
            try:
                for ch, out in predict_stream(self.model, self.stream,
                                              progress=not self.args.quiet,
                                              labels=self.report is not None,
                                              n_threads=self.args.threads
                                              or default_kernel_threads()):
                    bg.put(self._columns(ch, out))
                    chunks += 1
            finally:
                bg.close()
            # no chunk at all (an empty catalog, Parquet row groups all ruled out by
            # --where): a 0-row table with every column, as a chunk would have given
            writer.close(None if chunks else self._empty())
            done = True
        finally:
            if not done:            # an error or Ctrl-C: atomic_write discards the file
                writer.abort()

    def _empty(self):
        ch = self.stream.empty_chunk()
        width = self.model.n_outputs if self.regression else len(self.classes)
        return self._columns(ch, np.empty((0, width), self.model.dtype))

    def _columns(self, ch, out):
        m = len(ch.valid)
        cols = {self.id_name: ch.extra[self.args.id_column] if self.args.id_column
                else ch.row_numbers()}
        if self.regression:
            for j in range(out.shape[1]):
                cols["prediction" if out.shape[1] == 1 else f"prediction_{j}"] = out[:, j]
            if self.report is not None:
                self.report.update(ch.y, out[:, 0], ch.valid & ch.labelled)
        elif self.multilabel:
            self._add_multilabel(cols, out)
        else:
            for j, c in enumerate(self.stems):
                cols[f"p_{c}"] = out[:, j]
            lab = _labels(self.model, out, ch.valid)
            self.counts += np.bincount(lab[lab >= 0], minlength=len(self.classes))
            cols["label"] = lab.astype(np.int64)
            if self.report is not None:
                _check_class_labels(ch.extra[self.args.label], self.args.label)
                raw = ch.extra[self.args.label]
                if self.coding is not None:
                    ch.y, ch.labelled = _coded_labels(raw, self.coding, ch.y, ch.labelled,
                                                      self.args.label)
                else:
                    ch.y, ch.labelled = _labels_named_loosely(raw, self.classes, ch.y,
                                                              ch.labelled)
                self.report.update(ch.y, lab, out, ch.valid & ch.labelled)
            self.sample.add(ch, lab)
        if self.report is not None:
            self.left_out.add(ch, self.args.label)
        cols["valid"] = ch.valid
        if self.far is not None:
            self.far.add(ch.X, ch.valid)
        self.rows += m
        self.rows_read += ch.n_read          # before --where: what the rate is over
        self.n_invalid += int(m - np.count_nonzero(ch.valid))
        # rows whose features were missing, apart from those whose output was not finite:
        # only the former are what training's --missing impute-median would have filled
        self.n_no_features += int(m - np.count_nonzero(ch.features_valid))
        for c, k in (ch.imputed or {}).items():
            self.imputed[c] = self.imputed.get(c, 0) + k
        return cols

    def _add_multilabel(self, cols, out):
        """A multilabel model's columns: each output's probability, then each output's
        label, 1 / 0 where the probability reaches the model's cut or not, -1 in a row
        without a prediction (its probabilities NaN): model.predict's own rule."""
        for j, c in enumerate(self.stems):
            cols[f"p_{c}"] = out[:, j]
        lab = self.model.labels_of(out)
        self.counts += np.count_nonzero(lab == 1, axis=0)
        by_output = np.ascontiguousarray(lab.T)     # one contiguous column per output
        for j, c in enumerate(self.stems):
            cols[f"label_{c}"] = by_output[j]


def _check_class_labels(raw, name):
    """A classifier's --label column holds class names or whole-number class indices: a
    column of fractions (a redshift) matched its few exact zeros to class 0 and printed a
    report on them, the rest counted as 'not one of the model's classes'."""
    if raw.dtype.kind != "f":
        return
    v = raw[np.isfinite(raw)]
    frac = v[v != np.round(v)]
    if frac.size:
        raise CLIError(f"--label {name}: a classifier is evaluated against class names or "
                       f"whole-number class indices, but the column holds fractions such as "
                       f"{frac[0]:g} (a regression target?)")


class _LeftOut:
    """Counts of the rows --label evaluation leaves out, and why: no prediction (missing
    features), no label, or a label that is not one of the model's classes (by value)."""

    def __init__(self):
        self.evaluated = self.rows = self.no_prediction = self.no_label = 0
        self.no_features = 0            # of no_prediction: missing features (not overflow)
        self.foreign = {}

    def add(self, ch, label):
        self.rows += len(ch.valid)
        self.evaluated += int(np.count_nonzero(ch.valid & ch.labelled))
        self.no_prediction += int(np.count_nonzero(~ch.valid))
        # as _PredictJob counts them (an empty chunk has no features_valid, and no row)
        self.no_features += int(len(ch.valid) - np.count_nonzero(ch.features_valid))
        rest = ch.valid & ~ch.labelled
        if not rest.any():
            return
        raw = ch.extra[label][rest]
        miss = missing_labels(raw)
        self.no_label += int(np.count_nonzero(miss))
        values, counts = np.unique(text_column(raw[~miss]), return_counts=True)
        for v, c in zip(values.tolist(), counts.tolist()):
            self.foreign[v] = self.foreign.get(v, 0) + c

    def _no_prediction_text(self, regression):
        """Why rows got no valid prediction.  A regression's overflowed rows (inf, as
        model.predict gives) are said apart from those with missing features, as the
        summary line says them; a classifier's are both without a prediction."""
        if not regression:
            return [f"{self.no_prediction} without a prediction (missing features, or an "
                    "output beyond the float range)"] if self.no_prediction else []
        n_overflowed = self.no_prediction - self.no_features
        why = []
        if n_overflowed:
            why.append(f"{n_overflowed} overflowed the float range (prediction inf or NaN)")
        if self.no_features:
            why.append(f"{self.no_features} with missing features (no prediction)")
        return why

    def format(self, what, regression=False):
        why = self._no_prediction_text(regression)
        if self.no_label:
            why.append(f"{self.no_label} without a {what}")
        if self.foreign:
            top = sorted(self.foreign.items(), key=lambda kv: -kv[1])
            shown = ", ".join(f"{v}={c}" for v, c in top[:5]) + (", ..." if len(top) > 5
                                                                  else "")
            why.append(f"{sum(self.foreign.values())} whose label is not one of the model's "
                       f"classes ({shown})")
        left = self.rows - self.evaluated
        return f"{self.evaluated} of {counted(self.rows, 'row')}" + (
            f"; left out {left}: {'; '.join(why)}" if left else "")


class _PlotSample:
    """A bounded random sample of (colour, colour, predicted label) for --plot."""

    MAX = 40_000

    def __init__(self, args, stream, regression):
        self.on = bool(args.plot)
        if not self.on:
            return
        if regression:
            raise CLIError("--plot draws predicted classes; this model is a regression")
        check_plot_path(args.plot)
        names = list(stream.feature_names)
        self.cols = [names.index("u-g"), names.index("g-r")] if {"u-g", "g-r"} <= set(names) \
            else [0, 1 if len(names) > 1 else 0]
        self.names = [names[k] for k in self.cols]
        self.total = max(stream.n_rows_to_read, 1)
        self.xy, self.lab, self.rng = [], [], np.random.default_rng(0)

    def add(self, ch, lab):
        if not self.on:
            return
        take = np.flatnonzero(ch.valid)
        per = max(1, self.MAX * len(ch.valid) // self.total)
        take = self.rng.choice(take, min(per, take.size), replace=False)
        self.xy.append(ch.X[take][:, self.cols])
        self.lab.append(lab[take])

    def draw(self, args, classes, n_valid, counts):
        if not self.on:
            return
        if not n_valid:
            say(f"no row has a prediction: --plot {args.plot} not written")
            return
        from .. import plot
        xy, lab = np.concatenate(self.xy), np.concatenate(self.lab)
        plot.color_color(xy[:, 0], xy[:, 1], lab, classes, path=args.plot,
                         xlabel=self.names[0], ylabel=self.names[1], totals=counts,
                         title=f"{Path(args.catalog).name}\n{self.names[0]} vs "
                               f"{self.names[1]} by predicted class "
                               f"({xy.shape[0]:,} of {counted(n_valid, 'row', fmt=',')} "
                               "shown)")
        say(f"saved plot to {args.plot}")


def _load_kernels(model):
    """Run the model once on one row, so that loading its backend (the C library and
    SciPy's BLAS: about a second the first time) is not counted in the rows/s."""
    x = np.zeros((1, model.n_inputs), dtype=model.dtype)
    with np.errstate(all="ignore"):
        model.predict(x) if model.link == "identity" else model.predict_proba(x)


def _imputed_text(model, imputed):
    """The line on the missing values the model's fill values (FeatureSpec.fill: the
    training catalog's medians for --missing impute-median) replaced, as train says it;
    None for a model without fill values."""
    if model.features is None or not model.features.fill:
        return None
    total = sum(imputed.values())
    return (f"imputed {counted(total, 'missing value')} with the model's fill values, the "
            "training catalog's column medians"
            + (f" ({', '.join(f'{k}: {v}' for k, v in imputed.items())})" if total else ""))


def _not_imputed_here(model, n_no_features, label):
    """The warning for rows without a prediction from a model trained with --missing
    impute-median but saved before models stored the medians (no FeatureSpec.fill):
    training imputed such rows, and its test metrics counted them, but this model file
    cannot impute; None otherwise.  ``n_no_features``: the rows with missing features (not
    those whose output was beyond the float range, which imputing would not have helped)."""
    config = model.training_config or {}
    if not n_no_features or config.get("missing") != "impute-median" \
            or (model.features is not None and model.features.fill):
        return None
    return (f"warning: {counted(n_no_features, 'row')} got no prediction, and this model was "
            "trained with --missing impute-median: rows with missing features were imputed "
            "with the training catalog's column medians in training (and counted in its test "
            "metrics), but are not imputed here (the model file was saved by a fastmlp that "
            "did not store those medians)"
            + (", nor evaluated against --label" if label else "")
            + "; to predict them, train the model again with this fastmlp, or fill their "
            "missing features beforehand (e.g. with the training catalog's medians)")


def _invalid_rows_text(job):
    """The summary's rows without a valid prediction, and why.  A regression's overflowed
    rows hold model.predict's value (inf), so they are said apart from the rows with
    missing features (NaN, no prediction); a classifier's are both without one."""
    if not job.n_invalid:
        return "every row has a prediction"
    if not job.regression:
        return (f"{counted(job.n_invalid, 'row')} got no prediction (missing features, or an "
                "output beyond the float range)")
    n_overflowed = job.n_invalid - job.n_no_features
    parts = []
    if n_overflowed:        # (NaN where the overflow met inf - inf, as model.predict gives)
        parts.append(f"{counted(n_overflowed, 'row')} overflowed the float range "
                     "(prediction inf or NaN, as model.predict gives it; valid false)")
    if job.n_no_features:
        verb = "has" if job.n_no_features == 1 else "have"
        parts.append(f"{counted(job.n_no_features, 'row')} {verb} missing features (no "
                     "prediction)")
    return ", ".join(parts)


def _predicted_text(job):
    """The summary's predicted labels: rows per class, or for a multilabel model the rows
    labelled 1 per output (a row may count for several, or none)."""
    counts = ", ".join(f"{c}={int(k)}" for c, k in zip(job.classes, job.counts))
    if not job.multilabel:
        return "predicted: " + counts
    n_predicted = job.rows - job.n_invalid
    return (f"rows labelled 1 per label (of {counted(n_predicted, 'row')} with a "
            f"prediction): {counts}")


def cmd_predict(args):
    check_out_path(args.out, [args.catalog, args.model])
    check_out_path(args.plot, [args.catalog, args.model], "--plot", [("--out", args.out)])
    fmt = _out_format(args.out, args.out_format)
    gzipped = _gzipped(args.out, fmt)
    if args.plot:
        check_plot_path(args.plot)
    model, features = _model_and_features(args)
    _check_multilabel_options(args, model)
    _check_fits_names(model, fmt)
    _check_id_column(args, model, fmt)
    coding = _catalog_coding(args, model)
    if fmt in ("parquet", "csv"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CLIError(f"writing {fmt} needs pyarrow: pip install 'fastmlp[catalogs]'; "
                           "or write .npy") from None
    hdu = catalog_hdu(args)
    check_column("--id-column", args.id_column, args.catalog, args.format, hdu)
    check_column("--label", args.label, args.catalog, args.format, hdu)
    stream = _open_stream(args, model, features)
    _describe(args, model, stream)
    renamed = _case_renamed_text(model, fmt)
    if renamed:
        say(renamed)
    job = _PredictJob(args, model, stream, fmt, coding)
    _load_kernels(model)
    t0, m0 = time.perf_counter(), tuning.measuring_seconds()
    p = atomic_write(args.out, gzip_writing(job.run, args.out, seeks=fmt != "csv")
                     if gzipped else job.run)
    dt = time.perf_counter() - t0
    # the first run of a shape class on this CPU measures the kernels' choices (cached for
    # later runs): said, and left out of the rate, so a first run is not taken for the speed
    measured = tuning.measuring_seconds() - m0
    kind = f"{fmt}, gzipped" if gzipped else fmt
    if job.rows == 0:
        say(f"wrote 0 rows to {p} ({kind}): " + (
           f"--where {stream.where.text!r} selected 0 of the "
           f"{counted(stream.n_rows_file, 'row')}"
           if stream.where is not None else "the catalog holds no rows")
            + "; the table has every column and no row")
    else:
        read = f"read {counted(job.rows_read, 'row')}, " if stream.where is not None else ""
        first = (f"{measured:.2f} s of it measuring this CPU's fastest kernels, "
                 f"{kernels_cached_text()}; " if measured >= 0.05 else "")
        rate = job.rows_read / max(dt - (measured if first else 0.0), 1e-9)
        say(f"wrote {counted(job.rows, 'row')} to {p} ({kind}) in {dt:.2f} s ({first}{read}"
            f"{rate:,.0f} rows read/s{' in the rest' if first else ''}); "
            + _invalid_rows_text(job))
    imputed = _imputed_text(model, job.imputed)
    if imputed:
        say(imputed)
    if not job.regression and job.rows:
        say(_predicted_text(job))
    if job.report is not None:
        what = "target" if job.regression else "label"
        say(f"evaluation against --label {args.label}: "
            f"{job.left_out.format(what, job.regression)}")
        if job.left_out.evaluated:
            # the catalog may be the training file: its rows are no held-out test set
            say(job.report.format("metrics on the catalog's labelled rows"))
            if not job.regression:
                warn(_coding_warning(job.report.report(), job.classes, job.coding))
    if job.far is not None:
        warn(job.far.warning())
    warn(_not_imputed_here(model, job.n_no_features, args.label))
    job.sample.draw(args, job.classes, job.rows - job.n_invalid, job.counts)
    return 0
