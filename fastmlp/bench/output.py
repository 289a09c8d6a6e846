"""Where results go, and writing them (every file a temp file + rename).

Results of one CPU live in their own directory, ``<out>/<cpu-slug>/`` (the model name, and
the x86 family and model numbers that tell apart CPUs a VM gives the same name:
fastmlp.backends.cpu), so that one machine never overwrites another's.  ``<out>`` defaults to the checkout's committed
``benchmarks/results`` only when the command runs inside the fastmlp source checkout it comes
from; anywhere else (an installed package, another directory) it is the current directory.
Only a full run updates ``latest.*``; --quick and --tiny write ``latest-<mode>.*``.
"""

import json
import os
import statistics
from pathlib import Path

from .common import atomic_write_bytes, clean, json_default
from .modes import FULL_MODE
from .report import chart_png, markdown_report


def source_checkout():
    """The root of the fastmlp source checkout this package was imported from, or None."""
    root = Path(__file__).resolve().parents[2]
    if (root / "benchmarks" / "results").is_dir() and (root / "pyproject.toml").is_file():
        return root
    return None


def default_out_dir(cwd=None):
    """benchmarks/results of the checkout when cwd lies inside it, else cwd."""
    cwd = Path(cwd or os.getcwd()).resolve()
    root = source_checkout()
    if root is not None and (cwd == root or root in cwd.parents):
        return root / "benchmarks" / "results"
    return cwd


def results_dir(out, cpu_slug):
    return Path(out if out is not None else default_out_dir()) / cpu_slug


def latest_name(mode):
    return "latest" if mode == FULL_MODE else f"latest-{mode}"


# A full run whose sgemm peak or streaming bandwidth (at the start, or in the optimizer
# rounds) falls below this share of those of the run in latest.json (the same CPU model) ran
# on a busier host: on the shared Intel VM such
# runs (peak 300 against 335-363 GFLOP/s, optimizer streams at half speed) slowed torch
# eager by a third and fastmlp by a tenth, so their ratios are not comparable.
SLOWER_HOST = 0.9


def _rounds_bandwidth(results):
    """The median over the optimizer section's rows of the streaming bandwidth measured in
    their rounds (the host's state during that section), or None."""
    rows = (results.get("optimizers") or {}).get("rows") or []
    vals = [r["bandwidth_alongside_gbs"] for r in rows if r.get("bandwidth_alongside_gbs")]
    return statistics.median(vals) if vals else None


def slower_than_latest(results, out_dir):
    """Why this full run's machine limits say the host was busier than at the run in
    ``out_dir/latest.json``, or None (no such file, no machine section, or not slower)."""
    if results["meta"]["mode"] != FULL_MODE:
        return None
    try:
        with open(Path(out_dir) / (latest_name(FULL_MODE) + ".json")) as f:
            prev = json.load(f)
        prev_machine, prev_time = prev["machine"], prev["meta"]["timestamp"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:    # a hand-edited or foreign latest.json must not cost the run just measured
        why = _slower_limits(results, prev, prev_machine)
    except (AttributeError, TypeError, KeyError, ValueError):
        return None
    if not why:
        return None
    return (f"the machine measured slower than at the run in latest.json ({prev_time}): "
            f"{'; '.join(why)}")


def _slower_limits(results, prev, prev_machine):
    """The machine limits of ``results`` lower than those of the earlier run ``prev``."""
    now_machine = results.get("machine") or {}
    why = []
    for what, unit, a, b in (
            ("sgemm peak", "GFLOP/s", now_machine.get("sgemm_peak_gflops"),
             prev_machine.get("sgemm_peak_gflops")),
            ("streaming bandwidth", "GB/s", now_machine.get("bandwidth_gbs"),
             prev_machine.get("bandwidth_gbs")),
            ("streaming bandwidth in the optimizer rounds", "GB/s",
             _rounds_bandwidth(results), _rounds_bandwidth(prev))):
        if a and b and a < SLOWER_HOST * b:
            why.append(f"{what} {a:.1f} {unit} against {b:.1f}")
    return why


def write_outputs(results, stamp, out_dir, chart=True, latest=True):
    """Write <out_dir>/bench-<mode>-<time>.{json,md,png} (and the latest copies); returns
    ({extension: path}, markdown)."""
    mode = results["meta"]["mode"]
    base = f"bench-{mode}-{stamp.strftime('%Y%m%dT%H%M%SZ')}"
    md = markdown_report(results)
    files = [(".json", json.dumps(clean(results), indent=1, default=json_default).encode()),
             (".md", md.encode())]
    png = chart_png(results) if chart else None
    if png is not None:
        files.append((".png", png))
    paths = {}
    for ext, data in files:
        p = os.path.join(out_dir, base + ext)
        atomic_write_bytes(p, data)
        paths[ext[1:]] = p
        if latest:
            atomic_write_bytes(os.path.join(out_dir, latest_name(mode) + ext), data)
    return paths, md
