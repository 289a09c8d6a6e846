"""``fastmlp tune``: measure the BLAS crossovers and the "auto" backend now, and cache them
(otherwise the first training run of a shape class measures them, once per CPU)."""

import argparse
import math
import os

from ..backends import threads as _threads
from .._validate import counted
from ..backends import tuning
from .common import thread_count


class _ShapeError(argparse.ArgumentTypeError, ValueError):
    """A bad --shape: argparse prints an ArgumentTypeError's text (a plain ValueError
    became "invalid _shape value: '5-64-1'"); still a ValueError for library callers."""


def _shape(text):
    """'5-512-512-1@4096' -> ((5, 512, 512, 1), 4096)."""
    try:
        sizes, batch = text.split("@")
        sz = tuple(int(v) for v in sizes.split("-"))
        bs = int(batch)
    except ValueError:
        raise _ShapeError(f"--shape must look like 5-512-512-1@4096 (layer sizes @ batch "
                         f"size), got {text!r}") from None
    if len(sz) < 2 or min(sz) < 1 or bs < 1:
        raise _ShapeError(f"--shape needs at least two positive layer sizes and a positive "
                         f"batch size, got {text!r}")
    return sz, bs


def add_tune_parser(subparsers):
    p = subparsers.add_parser(
        "tune", help="measure the BLAS crossovers and the 'auto' backend, and cache them",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Measure, on this machine, from which layer size each backend calls "
                    "BLAS and which backend 'auto' picks per shape class, and store the "
                    "results in the per-CPU cache (" + tuning.cache_dir() + "). Run it on "
                    "a quiet machine: the measurement reflects the load it ran under.")
    p.add_argument("--dtype", choices=("float32", "float64", "both"), default="float32",
                   help="the dtype(s) to tune")
    p.add_argument("--budget", type=float, default=1.0, metavar="S",
                   help="seconds per measurement (per backend pair)")
    p.add_argument("--shape", action="append", type=_shape, metavar="SIZES@BATCH",
                   help="a shape to choose the backend for (repeatable; default: the "
                        "benchmark grid)")
    p.add_argument("--threads", type=thread_count, default=None, metavar="N",
                   help="thread count to tune for (None: all cores)")
    p.add_argument("--show", action="store_true",
                   help="print what is cached for this CPU, measure nothing")
    p.set_defaults(func=cmd_tune)
    return p


def _fmt_macs(v):
    return "never (BLAS slower at every size)" if v is None else f"{v:.3g} multiply-adds"


def cmd_tune(args):
    if args.show:
        entries = tuning.cached_entries()
        print(f"{tuning.cache_path()} ({tuning.describe_cpu()}):")
        for k, v in entries.items():
            print(f"  {k}: {v}")
        if not entries:
            print("  (nothing cached)")
        return 0
    if not (args.budget > 0 and math.isfinite(args.budget)):
        raise ValueError(f"--budget must be a positive number of seconds, got {args.budget}")
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    shapes = args.shape or tuning.GRID
    n = args.threads or os.cpu_count() or 1
    with _threads(n):
        res = tuning.tune(dtypes, shapes, args.budget)
    print(f"CPU: {tuning.describe_cpu()}, {counted(n, 'thread')} (measured under the "
          "machine's current load)")
    for (backend, dt), v in res["crossover"].items():
        print(f"  BLAS crossover {backend:6s} {dt}: {_fmt_macs(v)}")
    for (sizes, bs, dt), way in res["layerwise"].items():
        print(f"  numba {'-'.join(map(str, sizes))}@{bs} {dt}: "
              f"{'layer by layer' if way else 'per-thread tiles'}")
    for (sizes, bs, dt), w in res.get("blas_layers", {}).items():
        print(f"  c {'-'.join(map(str, sizes))}@{bs} {dt}: "
              + ("no layer through BLAS" if w is None else
                 f"layers of >= {w:.0f} weights through BLAS"))
    for (sizes, bs, dt), rows in res.get("blas_tile", {}).items():
        print(f"  c {'-'.join(map(str, sizes))}@{bs} {dt}: "
              + ("tiles of the default 1024 rows" if rows is None else
                 f"tiles of {rows} rows") + " around the BLAS layers")
    for (sizes, dt), v in res.get("forward", {}).items():
        print(f"  c {'-'.join(map(str, sizes))} {dt} inference: "
              + ("no layer through BLAS" if v["layers"] is None else
                 f"layers of >= {v['layers']:.0f} weights through BLAS, tiles of "
                 + ("the default 1024 rows" if v["tile"] is None else f"{v['tile']} rows")))
    for (sizes, dt), skip in res.get("skip_zeros", {}).items():
        print(f"  c {'-'.join(map(str, sizes))} {dt} inference: "
              + ("skips the zero inputs of the layers after a ReLU" if skip else
                 "dense products after a ReLU (skipping zero inputs measured slower)"))
    for (sizes, bs, dt), one in res.get("one_thread", {}).items():
        print(f"  numba {'-'.join(map(str, sizes))}@{bs} {dt}: mini-batch slices "
              f"{'one after another on one thread' if one else 'on the threads'}")
    for (sizes, bs, dt), name in res["auto"].items():
        print(f"  auto {'-'.join(map(str, sizes))}@{bs} {dt}: {name}")
    if "parallel_work" in res:
        print(f"  c element-wise kernels (updates, activations): on the threads from "
              f"{res['parallel_work'] / 1e3:.0f} us of one-thread work")
    unwritten = tuning.unwritten_cache()
    print(f"not cached: could not write {unwritten}" if unwritten is not None else
          f"cached in {res['path']}")
    if tuning.tuning_disabled():
        print("note: FASTMLP_NO_TUNE is set, so these choices are not used until it is unset")
    return 0
