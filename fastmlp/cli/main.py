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
with exit status 2, like argparse's own errors; so are OS errors (a directory, no permission)
and anything unexpected (exit 1), never as a raw traceback (FASTMLP_DEBUG=1 shows it).
Ctrl-C (exit 130) and SIGTERM (exit 143) stop a command cleanly: an output being written is
discarded, never left half-written or as a temporary file.
"""

import contextlib
import os
import sys

from ..backends import tuning
from .args import build_parser
from .bench import cmd_bench
from .common import CLIError, say, warn
from .termination import TERMINATED_STATUS, Terminated, sigterm_raises


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
        with sigterm_raises():   # SIGTERM stops like Ctrl-C: no temporary file is left
            if args.command == "bench":
                status = cmd_bench(args, rest)
            else:
                with _announcing_measurements(args), tuning.reporting_unwritable_cache(
                        lambda text: warn(f"warning: {text}")):
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
        print(_stopped(args, "interrupted"), file=sys.stderr)
        return 130
    except Terminated:
        print(_stopped(args, "terminated (SIGTERM); a file being written was discarded, "
                             "none is left half-written"), file=sys.stderr, flush=True)
        return TERMINATED_STATUS
    except BrokenPipeError:  # e.g. `fastmlp train | head`: stop quietly
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 141
    except Exception as exc:  # noqa: BLE001 - one clear line, never a raw traceback
        return _report_unexpected(exc)
    return 0 if status is None else int(status)


def _announcing_measurements(args):
    """Say why a first run pauses: the first time a command measures this CPU's kernel
    choices (tuning; nothing is printed when they are cached), one line before the pause.
    Not with --quiet, nor for ``fastmlp tune``, which reports its measurements itself."""
    if getattr(args, "quiet", False) or args.command == "tune":
        return contextlib.nullcontext()
    # training measures Numba's epochs too, compiling them on the first run after installing
    # (22 s of the README's first `fastmlp train` on a 2-core AMD EPYC); predicting does not
    compiles = ("" if args.command == "predict" else
                "; right after installing, Numba also compiles its kernels: about half a minute")
    return tuning.announcing_measurements(lambda key: say(
        "first use of this shape on this CPU: measuring its fastest kernels, once (cached "
        f"for later runs{compiles}) ..."))


def _stopped(args, what):
    """The line for a run stopped by Ctrl-C or SIGTERM: how to continue from a checkpoint."""
    ck = getattr(args, "checkpoint", None)
    return (f"fastmlp: {what}"
            + (f"; the last checkpoint written is {ck}: run the same command with "
               f"--resume {ck} to continue" if ck and os.path.exists(ck) else ""))


def _os_error_text(exc):
    """'Permission denied: out/m.npz' rather than '[Errno 13] Permission denied: ...'."""
    name = exc.filename if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    return f"{what}: {name}" if name else what


def _report_unexpected(exc):
    """The CLI's last line of defence: OS errors (a directory, no permission, a full disk),
    input nested too deeply for Python, out of memory, and anything a third-party reader
    raised on a damaged file, each as one ``fastmlp: error:`` line (exit 2 for a problem
    with an input or output path, 1 otherwise).  FASTMLP_DEBUG=1 shows the traceback."""
    if os.environ.get("FASTMLP_DEBUG"):
        raise exc
    if isinstance(exc, OSError):
        msg, status = _os_error_text(exc), 2
    elif isinstance(exc, RecursionError):
        msg, status = "an input is nested too deeply (Python's recursion limit)", 2
    elif isinstance(exc, MemoryError):
        msg, status = "out of memory (try a smaller --batch-size, or --stream)", 1
    else:
        msg, status = (f"unexpected {type(exc).__name__}: {exc} (a damaged input file, or "
                       "a fastmlp bug: FASTMLP_DEBUG=1 shows the traceback)"), 1
    print(f"fastmlp: error: {msg}", file=sys.stderr, flush=True)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
