"""torch.compile, timed in a subprocess with a time limit (compilation can take minutes or
hang; the rest of the benchmark must not wait for it)."""

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

from .common import LOSS_CHECK_RTOL, arch_name, atomic_write_text, clean, json_default, log, \
    n_params, now, rel_diff
from .peers import TorchTrainer
from .timing import measure_system

_SPEC_KEYS = ("min_batches", "min_rows", "epoch_s", "epochs", "warmup")


def _write_spec(d, jobs, X, y, cfg, threads):
    spec = {"jobs": [], "threads": threads, "check_steps": cfg["check_steps"],
            "n_cap": int(X.shape[0]), "data": os.path.join(d, "data.npz"),
            "out": os.path.join(d, "out.json"), **{k: cfg[k] for k in _SPEC_KEYS}}
    np.savez(spec["data"], X=X, y=y)
    for i, j in enumerate(jobs):
        p = os.path.join(d, f"p{i}.npy")
        np.save(p, j["p0"])
        spec["jobs"].append({"config": j["config"], "sizes": j["sizes"], "bs": j["bs"],
                             "p0": p})
    spec_path = os.path.join(d, "spec.json")
    atomic_write_text(spec_path, json.dumps(spec))
    return spec, spec_path


_WORKER = ("import sys, torch; from fastmlp.bench.compile import compile_worker; "
           "sys.exit(compile_worker(sys.argv[1]))")


def _run_worker(spec_path, timeout):
    """Run the worker; its status as text ("ok", the exit code and last error line, or the
    time limit)."""
    try:
        # torch imported before fastmlp, so that its OpenMP runtime starts with PyTorch's own
        # defaults, not fastmlp's passive waiting (torch_process.py says why that matters)
        proc = subprocess.run([sys.executable, "-c", _WORKER, spec_path], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"time limit of {timeout:.0f} s reached"
    if proc.returncode == 0:
        return "ok"
    last = proc.stderr.strip().splitlines()[-1:]
    return f"worker exited with code {proc.returncode}" + (f": {last[0]}" if last else "")


def _merge_result(res, tr):
    """Add one worker result to the training rows, and its losses to the loss check."""
    chk = next((c for c in tr["checks"] if c["config"] == res["config"]), None)
    if "losses" in res and chk is not None:
        base = chk["losses"].get("torch eager")
        rd = rel_diff(res["losses"], base) if base else math.inf
        chk["losses"]["torch.compile"] = res["losses"]
        chk["rel_diff"]["torch.compile"] = rd
        res["loss_check_ok"] = rd <= LOSS_CHECK_RTOL
        chk["ok"] = chk["ok"] and res["loss_check_ok"]
    row = {k: v for k, v in res.items() if k != "losses"}
    row["system"] = "torch.compile"
    tr["rows"].append(row)
    if "samples_per_s" in row:
        log(f"[train] {row['config']:>22} {'torch.compile':<20} "
            f"{row['samples_per_s']:>13,.0f} samples/s (compile {row['compile_s']:.1f} s)")


def run_compile_worker(jobs, X, y, cfg, threads, timeout, tr, notes):
    t0 = now()
    with tempfile.TemporaryDirectory(prefix="fastmlp-bench-") as d:
        spec, spec_path = _write_spec(d, jobs, X, y, cfg, threads)
        log(f"[train] torch.compile: subprocess, time limit {timeout:.0f} s ...")
        status = _run_worker(spec_path, timeout)
        out = {}
        if os.path.exists(spec["out"]):
            with open(spec["out"]) as f:
                out = json.load(f)
    info = {"status": status, "elapsed_s": now() - t0, "time_limit_s": timeout,
            "mode": "torch.compile(model), default mode; torch.optim.Adam default"}
    for res in out.get("results", []):
        _merge_result(res, tr)
    done = {res["config"] for res in out.get("results", [])}
    missing = [j["config"] for j in jobs if j["config"] not in done]
    if missing:
        notes.append(f"torch.compile: no result for {', '.join(missing)} ({status})")
        info["missing"] = missing
    log(f"[train] torch.compile: {status} after {info['elapsed_s']:.0f} s")
    return info


def compile_worker(spec_path):
    """Entry of the torch.compile subprocess: writes results after each configuration."""
    with open(spec_path) as f:
        spec = json.load(f)
    import torch
    torch.set_num_threads(spec["threads"])
    data = np.load(spec["data"])
    X, y = data["X"], data["y"]
    cfg = {k: spec[k] for k in _SPEC_KEYS}
    results = []
    for job in spec["jobs"]:
        sizes, bs = tuple(job["sizes"]), job["bs"]
        res = {"config": job["config"], "arch": arch_name(sizes), "batch_size": bs,
               "n_params": n_params(sizes)}
        try:
            t = TorchTrainer(torch, sizes, np.load(job["p0"]), X, y)
            t.model = torch.compile(t.model)
            t0 = now()
            res["losses"] = t.losses_in_order(bs, spec["check_steps"])
            res["compile_s"] = now() - t0
            res.update(measure_system(t, bs, cfg, spec["n_cap"], sizes))
            res["method"] = "torch.compile"
        except Exception as exc:
            res["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        results.append(res)
        atomic_write_text(spec["out"], json.dumps(clean({"results": results}),
                                                  default=json_default))
        torch._dynamo.reset()
    return 0
