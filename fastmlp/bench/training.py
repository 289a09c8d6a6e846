"""Training throughput: every system on every grid configuration, in interleaved rounds,
after a check that they all take the same first steps from the same weights."""

import math

import numpy as np

from .._validate import counted
from .common import LOSS_CHECK_RTOL, LR, PROBA_CHECK_ATOL, arch_name, config_name, log, \
    median, n_params, rel_diff
from .compile import run_compile_worker
from .data import make_data
from .machine import sgemm_probe
from .peers import FastmlpTrainer, SklearnTrainer, torch_label
from .timing import size_epoch, summarise
from .torch_process import Ref

AUTO = "fastmlp[auto]"

SYSTEM_NOTES = {
    "fastmlp[*]": "fastmlp.fit(model, X, y, optimizer=Adam(lr=1e-3), batch_size, "
                  "validation=None, progress=False, backend=...): one epoch = wall time between "
                  "fit's end-of-epoch callbacks (includes fit's per-epoch bookkeeping)",
    "fastmlp[*] set-up": "each fit call runs one epoch more than it times: its first epoch "
                         "also holds fit's per-call set-up (input checks, the standardised "
                         "copy of X, buffers), reported apart as fit_setup_s (that epoch's "
                         "wall time minus its train_epoch time and the call's median "
                         "per-epoch bookkeeping); torch's model set-up is not timed",
    AUTO: "as fastmlp[*] with backend='auto': what a user who names no backend gets",
    "torch eager": "nn.Sequential(Linear, ReLU, ...), BCEWithLogits, torch.optim.Adam(lr=1e-3) "
                   "default implementation (the single-tensor loop on CPU), randperm + "
                   "index_select per batch, zero_grad(set_to_none=True); in a worker process "
                   "that imports torch first (in fastmlp's process PyTorch would share "
                   "fastmlp's passive OpenMP waiting and run small networks ~3.6x slower: "
                   "bench/torch_process.py)",
    "torch eager fused": "as torch eager with torch.optim.Adam(fused=True)",
    "torch.compile": "as torch eager with torch.compile(model) (default mode), in a subprocess "
                     "with a time limit",
    "sklearn": "MLPClassifier(solver='adam', alpha=0, batch_size, learning_rate_init=1e-3, "
               "shuffle=True), one partial_fit call per epoch",
}


def fastmlp_label(backend):
    return f"fastmlp[{backend}]"


def torch_trainer(proc, sizes, p0, fused):
    """A TorchTrainer in the PyTorch worker (torch_process.py), on the section's X, y."""
    return proc.new("fastmlp.bench.peers:TorchTrainer", ("run", "losses_in_order"),
                    list(sizes), p0, Ref("X"), Ref("y"), fused=fused)


# -- the loss check ----------------------------------------------------------------------

def loss_check(sizes, bs, p0, X, y, backend_names, peers, k):
    """The first k steps of every fastmlp backend and torch from the same weights on the same
    batches, compared with torch eager (or the NumPy reference without torch); scikit-learn's
    forward pass is compared on probabilities."""
    from ..model import MLP
    torch, sk_nn = peers.get("torch"), peers.get("sklearn.neural_network")
    check = {"config": config_name(sizes, bs), "steps": k, "rtol": LOSS_CHECK_RTOL,
             "losses": {}, "errors": {}}
    makers = [(fastmlp_label(b), lambda b=b: FastmlpTrainer(b, sizes, p0, X, y, use_fit=False))
              for b in ["numpy"] + [b for b in backend_names if b != "numpy"]]
    if torch is not None:
        makers += [(torch_label(f), lambda f=f: torch_trainer(torch, sizes, p0, fused=f))
                   for f in (False, True)]
    for label, make in makers:
        try:
            check["losses"][label] = make().losses_in_order(bs, k)
        except Exception as exc:
            check["errors"][label] = f"{type(exc).__name__}: {str(exc)[:200]}"
    check["reference"] = "torch eager" if torch is not None else "fastmlp[numpy]"
    base = check["losses"].get(check["reference"], [])
    check["rel_diff"] = {s: rel_diff(v, base) for s, v in check["losses"].items()}
    check["rel_diff"].update({s: math.inf for s in check["errors"]})
    if sk_nn is not None:
        xs = X[:2048]
        ours = MLP(list(sizes), seed=0, dtype="float32")
        ours.set_params(p0)
        diff = float(np.max(np.abs(SklearnTrainer(sk_nn, sizes, p0, X, y, bs).proba(xs)
                                   - ours.predict_proba(xs)[:, 1])))
        check["sklearn_forward_max_abs_diff"] = diff
        check["sklearn_forward_ok"] = diff <= PROBA_CHECK_ATOL
    check["ok"] = all(v <= LOSS_CHECK_RTOL for v in check["rel_diff"].values()) and \
        check.get("sklearn_forward_ok", True)
    worst = max(check["rel_diff"].items(), key=lambda kv: kv[1])
    log(f"[train] {check['config']}: loss check over {k} steps vs {check['reference']}: "
        f"{'OK' if check['ok'] else 'FAILED'} (worst {worst[0]} rel {worst[1]:.1e}"
        + (f"; sklearn forward max|dp| {check['sklearn_forward_max_abs_diff']:.1e}"
           if "sklearn_forward_max_abs_diff" in check else "") + ")")
    return check


# -- throughput in rounds ------------------------------------------------------------------

def training_systems(sizes, bs, p0, X, y, backend_names, peers, with_auto):
    """[(label, make trainer)] for one configuration."""
    systems = [(fastmlp_label(b), lambda b=b: FastmlpTrainer(b, sizes, p0, X, y))
               for b in backend_names]
    if with_auto:
        systems.append((AUTO, lambda: FastmlpTrainer("auto", sizes, p0, X, y)))
    torch, sk_nn = peers.get("torch"), peers.get("sklearn.neural_network")
    if torch is not None:
        systems += [(torch_label(f), lambda f=f: torch_trainer(torch, sizes, p0, fused=f))
                    for f in (False, True)]
    if sk_nn is not None:
        systems.append(("sklearn", lambda: SklearnTrainer(sk_nn, sizes, p0, X, y, bs)))
    return systems


def time_in_rounds(systems, bs, cfg, n_cap, notes, name, probe=None, peaks=None):
    """Rounds: every system times cfg["epochs"] epochs, then every system again (in the
    reverse order), ...  On a shared machine the speed drifts within minutes; spreading each
    system's epochs over the whole measurement keeps a slow spell from landing on one system
    only.  Returns {label: {"trainer", "n", "rounds", "kernel"} or {"error"}}.

    With `probe` (machine.sgemm_probe), the sgemm peak is also timed before the first round
    and after each round, and `peaks` gets, per round, the higher of the two timings that
    frame it: the peak of that round's own time, for the shares of the peak (as the
    optimizer section sets each update against the bandwidth of its own round)."""
    state = {label: {"rounds": [], "kernel": []} for label, _ in systems}
    before = probe() if probe is not None else None
    for rnd in range(cfg.get("rounds", 1)):
        for label, make in (systems if rnd % 2 == 0 else systems[::-1]):
            st = state[label]
            if "error" in st:
                continue
            try:
                if rnd == 0:
                    st["trainer"] = make()
                    st["n"] = size_epoch(st["trainer"], bs, cfg, n_cap)
                st["rounds"].append(st["trainer"].run(st["n"], bs, cfg["epochs"]))
                st["kernel"] += list(getattr(st["trainer"], "kernel_times", None) or [])
            except Exception as exc:
                st["error"] = f"{type(exc).__name__}: {exc}"
                notes.append(f"training {name} {label} failed: {st['error']}")
        if probe is not None:
            after = probe()
            if peaks is not None:
                peaks.append(max(before, after))
            before = after
    return state


def throughput_row(label, st, sizes, bs):
    if "error" in st or not st["rounds"]:
        r = {"error": st.get("error", "not measured")}
    else:
        r = summarise(st["n"], sizes, st["rounds"], st["kernel"])
        r["method"] = getattr(st["trainer"], "method", None)
        setup = getattr(st["trainer"], "setup_times", None)
        if setup:   # the warm-up's calls (size_epoch) are left out: compiling, first touches
            r["fit_setup_s"] = median(setup[-len(st["rounds"]):])
        if getattr(st["trainer"], "backend", None) == "auto":   # what fit trained on
            from ..backends import tuning
            r["auto_backend"] = tuning.choose_backend(sizes, bs, "float32")
    r.update({"config": config_name(sizes, bs), "arch": arch_name(sizes), "batch_size": bs,
              "system": label, "n_params": n_params(sizes)})
    if "samples_per_s" in r:
        log(f"[train] {r['config']:>22} {label:<20} {r['samples_per_s']:>13,.0f} samples/s "
            f"({r['n_samples']} rows x {counted(r['epochs_timed'], 'epoch')}; rounds "
            + ", ".join(f"{v:,.0f}" for v in r["samples_per_s_rounds"]) + ")")
    return r


def training_section(cfg, threads, backend_names, peers, results, notes, compile_opts,
                     with_auto=True):
    from .. import backends
    from ..model import MLP
    configs = cfg["configs"]
    max_bs = max(bs for _, bs in configs)
    n_data = max(cfg["max_rows"], cfg["min_batches"] * max_bs, cfg["check_steps"] * max_bs)
    X, y, data_desc = make_data(n_data, seed=0)
    tr = results["training"] = {
        "data": data_desc, "systems": SYSTEM_NOTES, "n_rows_available": n_data,
        "optimizer": "adam", "lr": LR, "dtype": "float32", "threads": threads, "rows": [],
        "checks": [], "compile": None,
        "auto_resolves_to": backends.resolve("auto") if with_auto else None}
    compile_jobs = []
    machine = results.get("machine")
    probe = (sgemm_probe(machine["sgemm"], cfg["peak_probe_s"])
             if machine and machine.get("sgemm") else None)
    if probe is not None:
        tr["sgemm_probe"] = {"shape": probe.shape, "min_time_s": cfg["peak_probe_s"]}
    if peers.get("torch") is not None:
        peers["torch"].put("X", X)
        peers["torch"].put("y", y)
    for sizes, bs in configs:
        name = config_name(sizes, bs)
        p0 = MLP(list(sizes), seed=0, dtype="float32").params.copy()
        tr["checks"].append(loss_check(sizes, bs, p0, X, y, backend_names, peers,
                                       cfg["check_steps"]))
        systems = training_systems(sizes, bs, p0, X, y, backend_names, peers, with_auto)
        peaks = []
        state = time_in_rounds(systems, bs, cfg, n_data, notes, name, probe, peaks)
        rows = [throughput_row(label, state[label], sizes, bs) for label, _ in systems]
        if peaks:
            for r in rows:
                r["sgemm_peak_rounds"] = peaks
            log(f"[train] {name:>22} sgemm peak in each round: "
                + ", ".join(f"{v:.0f}" for v in peaks) + " GFLOP/s")
        tr["rows"] += rows
        compile_jobs.append({"config": name, "sizes": list(sizes), "bs": bs, "p0": p0})
        if peers.get("torch") is not None:
            peers["torch"].drop_all()
    if peers.get("torch") is not None and compile_opts["enabled"]:
        tr["compile"] = run_compile_worker(compile_jobs, X, y, cfg, threads,
                                           compile_opts["timeout"], tr, notes)
    elif peers.get("torch") is not None:
        tr["compile"] = {"skipped": "torch.compile not run in this mode (pass --compile)"}
        notes.append("torch.compile: " + tr["compile"]["skipped"])
    finish_training_rows(tr, results.get("machine"))


def finish_training_rows(tr, machine):
    """Ratios to torch eager in the same run and shares of the sgemm peak: of the run's
    (frac_sgemm_peak), and of the peak timed in the same rounds (frac_sgemm_peak_alongside:
    the median over rounds of the round's GFLOP/s / the round's peak) where it was timed."""
    peak = machine.get("sgemm_peak_gflops") if machine else None
    base = {r["config"]: r["samples_per_s"] for r in tr["rows"]
            if r["system"] == "torch eager" and "samples_per_s" in r}
    for r in tr["rows"]:
        if "samples_per_s" not in r:
            continue
        b = base.get(r["config"])
        r["ratio_vs_torch_eager"] = r["samples_per_s"] / b if b else None
        r["frac_sgemm_peak"] = r["gflops"] / peak if peak else None
        peaks, rates = r.get("sgemm_peak_rounds"), r.get("samples_per_s_rounds")
        if peaks and rates and len(peaks) == len(rates):
            per_sample = r["gflops"] / r["samples_per_s"]     # GFLOP per sample
            r["frac_sgemm_peak_alongside"] = median(
                [v * per_sample / p for v, p in zip(rates, peaks)])
