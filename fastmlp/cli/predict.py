"""``fastmlp predict``: a whole catalog, chunk by chunk, through the model's contract."""

import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..data.stream import CatalogStream, predict_stream
from .common import CLIError, _load_model, _plot_path, _say, check_out_path


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



def _labels(model, proba, valid):
    """Class indices from the probabilities with the model's own rule (argmax, or its
    threshold for the positive class); -1 where there is no valid prediction."""
    if model.threshold is not None:
        pos = model.positive
        others = np.where(np.arange(proba.shape[1]) == pos, -np.inf, proba)
        lab = np.where(proba[:, pos] >= model.threshold, pos, others.argmax(axis=1))
    else:
        lab = np.nan_to_num(proba).argmax(axis=1)
    return np.where(valid, lab, -1)


def cmd_predict(args):
    check_out_path(args.out, [args.catalog, args.model])
    check_out_path(args.plot, [args.catalog, args.model, args.out], "--plot")
    model = _load_model(args.model)
    if args.threshold is not None:                  # overrides the cut stored in the model
        if model.link == "identity":
            raise CLIError("--threshold applies to classifiers; this model is a regression")
        model.set_contract(positive=model.positive if model.positive is not None else
                           (1 if model.n_outputs == 1 else None), threshold=args.threshold)
    features = args.features or (list(model.feature_names) if model.features else None)
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
    regression = model.link == "identity"
    classes = list(model.class_names or [str(k) for k in range(max(2, model.n_outputs))])
    _say(f"model: {args.model}: MLP({list(model.layer_sizes)}), "
         + ("regression" if regression else f"classes {', '.join(classes)}")
         + (", standardised inputs" if model.standardization is not None else "")
         + (f", cut P({classes[model.positive]}) >= {model.threshold:.4g}"
            if model.threshold is not None else ""))
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
    n_invalid = [0]

    def write(fh):
        w = _TableWriter(fmt, fh, stream.n_rows, args.out)
        for ch, out in predict_stream(model, stream, progress=not args.quiet):
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
                lab = _labels(model, out, ch.valid)
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
            n_invalid[0] += int((~ch.valid).sum())
            w.write(cols)
        w.close()
    p = atomic_write(args.out, write)
    dt = time.perf_counter() - t0
    _say(f"wrote {stream.n_rows} rows to {p} ({fmt}) in {dt:.2f} s "
         f"({stream.n_rows / max(dt, 1e-9):,.0f} rows/s)")
    if not regression:
        _say("predicted: " + ", ".join(f"{c}={int(k)}" for c, k in zip(classes, counts))
             + f"; no prediction (missing or non-finite): {n_invalid[0]}")
    if sample is not None and sample["xy"]:
        from .. import plot
        xy, lab = np.concatenate(sample["xy"]), np.concatenate(sample["lab"])
        plot.color_color(xy[:, 0], xy[:, 1], lab, classes, path=args.plot,
                         xlabel=sample["names"][0], ylabel=sample["names"][1],
                         title=f"{Path(args.catalog).name}\n{sample['names'][0]} vs "
                               f"{sample['names'][1]} by predicted class "
                               f"({xy.shape[0]:,} of {stream.n_valid:,} rows shown)")
        _say(f"saved plot to {args.plot}")
    return 0
