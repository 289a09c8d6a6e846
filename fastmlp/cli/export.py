"""``fastmlp export``: a saved model as ONNX and / or a C model file, contract included."""

from pathlib import Path

from ..io import to_onnx, write_c_model
from ..io.onnx import raw_input_columns
from .common import CLIError, check_out_path, load_model, say


def cmd_export(args):
    if not (args.onnx or args.c):
        raise CLIError("say what to write: --onnx PATH and / or --c PATH")
    for flag, path in (("--onnx", args.onnx), ("--c", args.c)):
        check_out_path(path, [args.model], flag)
    if args.onnx and args.c and Path(args.onnx).resolve() == Path(args.c).resolve():
        raise CLIError(f"--onnx {args.onnx} and --c {args.c} are the same file; the second "
                       "would overwrite the first (give each its own path)")
    model = load_model(args.model)
    if args.onnx:
        what = "raw columns in, the colours," if raw_input_columns(model) else \
            "raw features in, the model's"
        say(f"wrote {to_onnx(model, args.onnx)} (ONNX opset 13; {what} "
            "standardisation, link and cut inside)")
        say(_onnx_input_text(model))
    if args.c:
        # the header ships inside the package: a user of an installed fastmlp has no csrc/
        say(f"wrote {write_c_model(model, args.c)} (C model file; load it with "
            "fastmlp_model_load from fastmlp.h: cc $(python -m fastmlp.c_config --cflags) "
            "... $(python -m fastmlp.c_config --libs))")
    return 0


def _onnx_input_text(model):
    """What the graph's input X holds: its columns are the model's features, not the
    catalog's columns (a colour model takes u-g, g-r, ..., not the five magnitudes), and
    only NaN marks a missing value there (no table is read, so -9999 is a number)."""
    raw = raw_input_columns(model)
    if raw:             # a model with fill values (--missing impute-median) reads raw columns
        return (f"  ONNX input X: (n, {len(raw)}) float64, raw columns {', '.join(raw)}; a "
                "missing value (NaN, inf, -9999"
                + (", beyond float32's range" if model.dtype.name == "float32" else "")
                + ") of a column with a stored median is replaced by it, as in training; "
                "colours are always formed from these magnitudes (a column named like a "
                "colour, u-g, is not read)")
    names = model.feature_names
    cols = f"columns {', '.join(names)}" if names else "the features in training order"
    return (f"  ONNX input X: (n, {model.n_inputs}) {model.dtype.name}, {cols}; write NaN "
            "for a missing value (-9999 there is taken as a number)")

