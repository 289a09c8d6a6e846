"""``fastmlp export``: a saved model as ONNX and / or a C model file, contract included."""

from pathlib import Path

from ..io import to_onnx, write_c_model
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
        say(f"wrote {to_onnx(model, args.onnx)} (ONNX opset 13; raw features in, the model's "
            "standardisation, link and cut inside)")
    if args.c:
        # the header ships inside the package: a user of an installed fastmlp has no csrc/
        say(f"wrote {write_c_model(model, args.c)} (C model file; load it with "
            "fastmlp_model_load from fastmlp.h: cc $(python -m fastmlp.c_config --cflags) "
            "... $(python -m fastmlp.c_config --libs))")
    return 0
