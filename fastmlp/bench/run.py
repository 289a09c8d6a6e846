"""`fastmlp bench`: the command line, and one run of every section in order."""

import argparse
import datetime as _dt
import sys

from .._validate import plural
from ..backends.cpu import cpu_identity
from .activations import activation_section
from .common import SCHEMA_VERSION, loadavg, log, now, try_import
from .inference import inference_section
from .machine import git_commit, machine_section, remeasure_limits, versions
from .modes import MODES
from .optimizers import optimizer_section
from .output import results_dir, slower_than_latest, write_outputs
from .report import targets_markdown
from .targets import evaluate_targets
from .training import finish_training_rows, training_section

SECTIONS = ("machine", "training", "activations", "optimizers", "inference")


def build_parser():
    ap = argparse.ArgumentParser(
        prog="fastmlp bench",
        description="fastmlp vs PyTorch / scikit-learn / the machine's limits, in one process")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="smaller sizes, < 2 minutes; judges no target")
    mode.add_argument("--tiny", action="store_true",
                      help="smoke-test sizes (seconds); judges no target")
    ap.add_argument("--out", default=None,
                    help="results go to OUT/<cpu-slug>/ (default: benchmarks/results inside "
                         "the fastmlp source checkout, else the current directory)")
    ap.add_argument("--threads", type=int, default=2, help="threads for every system (2)")
    ap.add_argument("--backends", default=None,
                    help="comma-separated fastmlp backends (default: every available one, "
                         "and auto)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help="comma-separated subset of " + ",".join(SECTIONS))
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    ap.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn")
    comp = ap.add_mutually_exclusive_group()
    comp.add_argument("--compile", dest="compile", action="store_true", default=None,
                      help="run torch.compile (default in the full run)")
    comp.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--compile-timeout", type=float, default=None,
                    help="seconds for the torch.compile subprocess")
    ap.add_argument("--no-chart", action="store_true", help="do not draw the PNG")
    ap.add_argument("--no-latest", action="store_true", help="do not update latest*.*")
    ap.add_argument("--force-latest", action="store_true",
                    help="update latest.* even when the machine measured more than 10 %% "
                         "slower than at the run in latest.json (a busy host: by default "
                         "only the dated files are written then)")
    ap.add_argument("--judge", metavar="RESULT_JSON", default=None,
                    help="measure nothing: judge a saved result against today's targets "
                         "table and print the table")
    ap.add_argument("--compile-worker", default=None, help=argparse.SUPPRESS)
    return ap


def select_backends(spec):
    """(backend names to run, {backend: (available, reason)}); a bad --backends entry is a
    SystemExit naming the option."""
    from .. import backends
    avail = backends.available_backends()
    if spec is None:
        return [b for b in backends.BACKENDS if avail[b][0]], avail
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for b in names:
        if b not in avail:
            raise SystemExit(f"--backends: unknown backend {b!r}; expected some of "
                             f"{', '.join(backends.BACKENDS)}")
        if not avail[b][0]:
            raise SystemExit(f"--backends: backend {b!r} is not available: {avail[b][1]}")
    return names, avail


def parse_sections(spec):
    sections = [s.strip() for s in spec.split(",") if s.strip()]
    for s in sections:
        if s not in SECTIONS:
            raise SystemExit(f"--sections: unknown section {s!r}; expected some of "
                             + ", ".join(SECTIONS))
    return sections


def load_peers(args, threads, notes):
    """{"torch": a TorchProcess (torch_process.py: PyTorch in a process of its own),
    "sklearn.neural_network": module} for the peers that import."""
    import importlib.util
    peers = {}
    if args.no_torch:
        notes.append("PyTorch skipped (--no-torch)")
    elif importlib.util.find_spec("torch") is None:
        notes.append("PyTorch skipped: not installed")
    else:
        from .torch_process import RemoteError, TorchProcess
        proc = TorchProcess(threads)
        try:
            proc.call("fastmlp.bench.torch_process:torch_version")
            peers["torch"] = proc
        except RemoteError as exc:
            proc.close()
            notes.append(f"PyTorch skipped: its worker failed ({exc})")
    if args.no_sklearn:
        notes.append("scikit-learn skipped (--no-sklearn)")
    else:
        mod, why = try_import("sklearn.neural_network")
        if mod is None:
            notes.append(f"scikit-learn skipped: {why}")
        else:
            peers["sklearn.neural_network"] = mod
    return peers


def default_backend(backend_names):
    """The backend a model without backend= uses, if it is among those run."""
    from .. import backends
    try:
        name = backends.resolve(None)
    except Exception:
        return None
    return name if name in backend_names else None


def _meta(args, mode, stamp, backend_names, avail, sections):
    return {"mode": mode, "timestamp": stamp.isoformat(timespec="seconds"),
            "command": "fastmlp bench " + " ".join(args._argv),
            "threads": args.threads, "backends": backend_names,
            "default_backend": default_backend(backend_names),
            "backends_available": {b: {"available": ok, "reason": why}
                                   for b, (ok, why) in avail.items()},
            "cpu": dict(cpu_identity()), "git_commit": git_commit(), "sections": sections,
            "load_average_start": loadavg()}


def _run_sections(results, cfg, sections, backend_names, peers, args, notes):
    threads = args.threads
    compile_opts = {"enabled": cfg["compile"] if args.compile is None else args.compile,
                    "timeout": args.compile_timeout or cfg["compile_timeout"]}
    steps = {
        "machine": lambda: results.__setitem__("machine", machine_section(cfg, threads)),
        "training": lambda: training_section(cfg, threads, backend_names, peers, results,
                                             notes, compile_opts,
                                             with_auto=args.backends is None),
        "activations": lambda: activation_section(cfg, peers, results, notes),
        "optimizers": lambda: optimizer_section(cfg, threads, backend_names, peers, results,
                                                notes),
        "inference": lambda: inference_section(cfg, backend_names, peers, results, notes)}
    section_s = results["meta"]["section_s"] = {}
    for name in SECTIONS:
        if name in sections:
            t0 = now()
            steps[name]()
            section_s[name] = now() - t0
            log(f"[bench] {name}: {section_s[name]:.1f} s")
    if "machine" in sections and len(sections) > 1:
        t0 = now()
        remeasure_limits(results["machine"], cfg, threads)
        section_s["machine_end"] = now() - t0


def _recompute_fractions(results):
    """Fractions of the machine limits from the final (highest) limits."""
    m = results.get("machine")
    if results.get("training"):
        finish_training_rows(results["training"], m)
    op = results.get("optimizers")
    if op and m:
        bw = op["bandwidth_gbs"] = m.get("bandwidth_gbs")
        for r in op["rows"]:
            if r.get("gbs") is not None:
                r["frac_bandwidth"] = r["gbs"] / bw if bw else None


def run(args):
    """Run the benchmark described by parsed ``args``; returns (results, UTC start time)."""
    from threadpoolctl import threadpool_limits
    from .. import backends
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    sections = parse_sections(args.sections)
    backend_names, avail = select_backends(args.backends)
    t_start, stamp = now(), _dt.datetime.now(_dt.timezone.utc)
    notes = [f"backend {b} not available: {why}" for b, (ok, why) in avail.items() if not ok]
    peers = load_peers(args, args.threads, notes)
    backends.set_num_threads(args.threads)
    results = {"schema": SCHEMA_VERSION,
               "meta": _meta(args, mode, stamp, backend_names, avail, sections),
               "versions": versions(), "notes": notes}
    try:
        with threadpool_limits(limits=args.threads):
            _run_sections(results, cfg, sections, backend_names, peers, args, notes)
    finally:
        if peers.get("torch") is not None:
            peers["torch"].close()
    _recompute_fractions(results)
    results["versions"] = versions()  # now that the peers are imported
    results["meta"]["load_average_end"] = loadavg()
    busy = results["meta"]["load_average_start"][0]
    if busy > 0.5:
        notes.append(f"the machine was not quiet (1-minute load average {busy:.1f} before "
                     f"this run started): figures are noisy")
    evaluate_targets(results)
    results["meta"]["elapsed_s"] = now() - t_start
    return results, stamp


def judge_saved(path):
    """Print the targets table of a saved result (any schema), judged by today's table."""
    import json
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--judge: cannot read a result JSON from {path!r}: {exc}") from None
    if not isinstance(results, dict) or "meta" not in results:
        raise SystemExit(f"--judge: {path!r} is not a fastmlp bench result (no 'meta')")
    meta = results["meta"]
    cpu = (meta.get("cpu") or {}).get("model") or (results.get("machine") or {}).get("cpu_model")
    print(f"{path}: {meta.get('mode')} run of {meta.get('timestamp')} on {cpu}, commit "
          f"{meta.get('git_commit')}")
    print("\n".join(targets_markdown(evaluate_targets(results))))
    return 0


def main(argv=None):
    """`fastmlp bench [--quick | --tiny] [--out DIR] ...`; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.compile_worker:
        from .compile import compile_worker
        return compile_worker(args.compile_worker)
    if args.judge:
        return judge_saved(args.judge)
    args._argv = argv
    results, stamp = run(args)
    out_dir = results_dir(args.out, results["meta"]["cpu"]["slug"])
    results["meta"]["results_dir"] = str(out_dir)
    latest = not args.no_latest
    partial = [s for s in SECTIONS if s not in results["meta"]["sections"]]
    if partial and latest:   # latest.* stays a whole run: its sections are compared
        latest = False
        results["notes"].append(f"latest.* not replaced: this run left out the "
                                f"{plural(len(partial), 'section')} {', '.join(partial)}")
    slower = slower_than_latest(results, out_dir)
    if slower and latest and not args.force_latest:
        latest = False
        results["notes"].append(f"latest.* not replaced: {slower} (--force-latest replaces "
                                f"it anyway)")
    elif slower:
        results["notes"].append(slower)
    paths, md = write_outputs(results, stamp, out_dir, chart=not args.no_chart,
                              latest=latest)
    print()
    print(md)
    log(f"[bench] {results['meta']['elapsed_s']:.0f} s; wrote " + ", ".join(paths.values()))
    return 0
