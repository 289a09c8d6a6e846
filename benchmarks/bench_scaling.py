"""Scale-out benchmark: 1 process x 2 threads vs 2 Dask workers x 1 thread vs 2 MPI ranks x 1
thread, for the 5-64-64-1 and 5-512-512-1 networks, plus an 11-lr sweep serial vs Dask.

Measures (on this machine): compute time per mini-batch step at several batch sizes (1 thread,
the model's inputs for docs/scaling.md), training throughput of each mode, bytes exchanged
per round / per Allreduce, and time per round spent communicating (round wall time minus the
slowest task's compute time for Dask; time inside Allreduce for MPI).

    python benchmarks/bench_scaling.py                 # full (a few minutes on 2 cores)
    python benchmarks/bench_scaling.py --quick         # smaller data, fewer repeats
    python benchmarks/bench_scaling.py --json out.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import fastmlp
from fastmlp import backends
from fastmlp import make_photometric_catalog
from fastmlp.optim import make_optimizer

FEATURES = ["u-g", "g-r", "r-i", "i-z", "r"]
NETS = {"5-64-64-1": [5, 64, 64, 1], "5-512-512-1": [5, 512, 512, 1]}


def _data(n, seed=0):
    cat = make_photometric_catalog(n, seed=seed, features=FEATURES)
    X = ((cat.X - cat.X.mean(0)) / cat.X.std(0)).astype(np.float32)
    return X, cat.y


def _epoch_time(layers, X, y, batch, threads, backend, steps=None, repeats=3):
    """Seconds for train_epoch over ``steps`` batches (default: the whole data) with Adam."""
    k = backends.get_backend(backend)
    k.set_num_threads(threads)
    model = fastmlp.MLP(layers, seed=0)
    opt = make_optimizer("adam", model.params, lr=1e-3)
    n = X.shape[0]
    perm = np.random.default_rng(0).permutation(n)
    if steps is not None:
        perm = np.resize(perm, steps * batch)
    nb = -(-perm.size // batch)
    Y = y.astype(np.float32)[:, None]
    sw = np.ones(n, np.float32)
    lrs = np.full(nb, 1e-3)
    args = (model.params, np.empty_like(model.params), opt.state, np.empty(nb), X, Y, sw,
            perm, batch, lrs, 0, opt.code, opt.hyper_vector(), model.sizes_array,
            model.acts_array, 0)
    k.train_epoch(*args)  # warm-up (compilation, caches)
    best = np.inf
    for _ in range(repeats):  # the minimum: the machine may be shared
        t0 = time.perf_counter()
        k.train_epoch(*args)
        best = min(best, time.perf_counter() - t0)
    return best, perm.size, nb


def compute_per_step(layers, X, y, backend, batches=(16, 32, 64, 128, 256), steps=200):
    out = {}
    for b in batches:
        t, rows, nb = _epoch_time(layers, X, y, b, 1, backend, steps=steps, repeats=5)
        out[b] = t / nb
    return out


def single_process(layers, X, y, batch, threads, backend):
    t, rows, _ = _epoch_time(layers, X, y, batch, threads, backend)
    return rows / t


def dask_modes(client, layers, X, y, batch, ks, backend):
    from fastmlp.distributed import dask as fd
    res = {}
    for K in ks:
        model = fastmlp.MLP(layers, seed=0)
        h = fd.fit(model, X, y, client=client, epochs=2, batch_size=batch, sync_every=K,
                   optimizer="adam", lr=1e-3, progress=False, backend=backend,
                   standardize=False)
        info = h.distributed
        rpe = -(-info["steps_per_epoch"] // K)
        rt = np.array(info["round_time"][rpe:])  # second epoch: workers warm
        ct = np.array(info["compute_time"][rpe:])
        res[K] = {"samples_per_s": X.shape[0] / h.epoch_time[-1],
                  "rounds_per_epoch": rpe,
                  "bytes_per_round": info["bytes_per_round"],
                  "round_time_ms": 1e3 * float(rt.mean()),
                  "compute_time_ms": 1e3 * float(ct.mean()),
                  "comm_time_ms": 1e3 * float((rt - ct).mean()),
                  "accuracy": h.metrics["accuracy"][-1]}
    return res


def mpi_mode(layers, n, batch, backend, ranks=2, epochs=2):
    here = os.path.dirname(sys.executable)
    mpirun = next((p for p in (os.path.join(here, "mpirun"), os.path.join(here, "mpiexec"))
                   if os.path.exists(p)), None)
    if mpirun is None:
        import shutil
        mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        return {"skipped": "no mpirun"}
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.npz")
        env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
        if backend:
            env["FASTMLP_BACKEND"] = backend
        cmd = [mpirun, "-n", str(ranks), sys.executable, "-m", "fastmlp.distributed.mpi",
               "--synthetic", str(n), "--features", ",".join(FEATURES), "--standardize",
               "--layers", ",".join(map(str, layers)), "--epochs", str(epochs),
               "--batch-size", str(batch), "--optimizer", "adam", "--lr", "1e-3",
               "--threads", "1", "--output", out, "--no-progress"]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if r.returncode != 0:
            return {"skipped": r.stderr[-500:]}
        z = np.load(out)
        steps = int(z["steps"])
        return {"samples_per_s": float(z["samples_per_s"][-1]),
                "bytes_per_allreduce": int(z["bytes_per_allreduce"]),
                "allreduce_ms_per_step": 1e3 * float(z["allreduce_time"]) / steps,
                "compute_ms_per_step": 1e3 * float(z["compute_time"]) / steps,
                "steps": steps}


def sweep_ratio(client, X, y, iterations, backend, layers, repeats=3):
    """11 learning rates: serial lr_sweep (1 and 2 kernel threads) vs 11 Dask tasks on 2
    worker processes x 1 thread (warm workers; the data scattered once).  The three are
    interleaved ``repeats`` times and the medians compared, so that a change in the load of
    a shared machine hits all of them alike."""
    from fastmlp.distributed import dask as fd

    def mk():
        return fastmlp.MLP(layers, seed=0, backend=backend)

    lrs = np.logspace(-5, 0, 11)
    fastmlp.lr_sweep(mk, X[:2000], y[:2000], lrs=lrs[:1], iterations=5)  # warm-up
    fd.warm_workers(client, backend)  # every worker loads its kernels first
    times = {"serial_1thread_s": [], "serial_2thread_s": [], "dask_2x1_s": []}
    same = True
    for _ in range(repeats):
        for threads in (1, 2):
            backends.set_num_threads(threads)
            t0 = time.perf_counter()
            s = fastmlp.lr_sweep(mk, X, y, lrs=lrs, iterations=iterations)
            times[f"serial_{threads}thread_s"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = fd.dask_lr_sweep(mk, X, y, client, lrs=lrs, iterations=iterations)
        times["dask_2x1_s"].append(time.perf_counter() - t0)
        same = same and bool(r.best_lr == s.best_lr)
    out = {"layers": "-".join(map(str, layers)), "iterations": iterations, "repeats": repeats,
           "all_times": times, "same_best_lr": same}
    out.update({k: float(np.median(v)) for k, v in times.items()})
    out["speedup_vs_serial_1thread"] = out["serial_1thread_s"] / out["dask_2x1_s"]
    out["speedup_vs_serial_2threads"] = out["serial_2thread_s"] / out["dask_2x1_s"]
    return out


# ---------------------------------------------------------------------------------------
# The model of docs/scaling.md, fed with the measured numbers
# ---------------------------------------------------------------------------------------

NETWORKS = {"10GbE (1.25 GB/s, 50 us)": (1.25e9, 50e-6),
            "100G InfiniBand (12 GB/s, 2 us)": (12e9, 2e-6)}
NS = (1, 2, 4, 8, 16, 32, 64)
# Scheduler cost per extra task per round (an assumption: Dask's documented per-task overhead
# is 0.2 - 1 ms; the 2-worker round overhead itself is measured).
DASK_TASK_OVERHEAD = 0.5e-3


def fit_compute(cps):
    """t_c(b) = alpha + beta * b (seconds per step, one core), least squares."""
    b = np.array([float(k) for k in cps])
    t = np.array([float(v) for v in cps.values()])
    beta, alpha = np.polyfit(b, t, 1)
    return max(alpha, 0.0), beta


def t_allreduce(n, nbytes, bw, lat):
    """Ring Allreduce (reduce-scatter + allgather): 2(N-1) latencies, 2(N-1)/N of the bytes."""
    return 0.0 if n == 1 else 2 * (n - 1) * lat + 2 * (n - 1) / n * nbytes / bw


def model(r, bw, lat, dask_overhead, batch=256, ks=(1, 16, 256)):
    """Modelled samples/s on N machines (one rank/worker of one core each) per mode."""
    alpha, beta = fit_compute(r["compute_s_per_step_1thread"])
    S = r["param_bytes"] + 8
    S_dask = r["param_bytes"] * 3  # params + Adam's two active state rows
    rows = {}
    for n in NS:
        row = {}
        # MPI, fixed global batch (exactly single-process training): strong scaling
        row["mpi_B256"] = batch / (alpha + beta * batch / n + t_allreduce(n, S, bw, lat))
        # MPI, fixed local batch 256 (global batch grows with N): weak scaling
        row["mpi_b256"] = n * batch / (alpha + beta * batch + t_allreduce(n, S, bw, lat))
        # Dask model averaging, local batch 256, K local steps per round: the client sends
        # and receives every worker's parameters + state (a star), plus the scheduler's
        # per-round overhead
        for k in ks:
            over = dask_overhead + max(n - 2, 0) * DASK_TASK_OVERHEAD
            t_round = k * (alpha + beta * batch) + over + 2 * n * S_dask / bw + 2 * lat
            row[f"dask_K{k}"] = n * k * batch / t_round
        rows[n] = row
    return rows, (alpha, beta)


def print_model(report):
    # the Dask scheduling overhead per round: the smallest measured non-compute time of a
    # round (the small network's, whose bytes are negligible); the bytes are modelled apart
    over = min(v["comm_time_ms"] for r in report["nets"].values()
               for v in r["dask_2x1"].values()) / 1e3
    for name, r in report["nets"].items():
        for net, (bw, lat) in NETWORKS.items():
            rows, (alpha, beta) = model(r, bw, lat, over)
            cols = list(rows[1])
            print(f"\nmodel {name} on {net}: t_c(b) = {1e6 * alpha:.1f} us + "
                  f"{1e6 * beta:.3f} us x b; Dask overhead {1e3 * over:.1f} ms/round")
            print("   N " + "".join(f"{c:>13}" for c in cols))
            for n, row in rows.items():
                print(f"{n:4d} " + "".join(f"{row[c]:13,.0f}" for c in cols))
            one = 256 / (alpha + beta * 256)  # one core, batch 256, no communication
            print(f"  (one core alone: {one:,.0f} samples/s; efficiency = samples/s / "
                  f"(N x that))")
            for c in cols:
                best = max(rows, key=lambda n: rows[n][c])
                eff = {n: rows[n][c] / (n * one) for n in rows}
                half = [n for n in rows if eff[n] < 0.5]
                print(f"  {c:>9}: peak at N={best} ({rows[best][c]:,.0f}/s); efficiency "
                      f"{eff[2]:.0%} at N=2, {eff[8]:.0%} at N=8, {eff[64]:.0%} at N=64; "
                      f"< 50% from N={half[0] if half else '>64'}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--backend", default=None, help="kernel backend (default: auto)")
    p.add_argument("--json", default=None)
    p.add_argument("--sweep-only", action="store_true",
                   help="only the 11-lr sweep, serial vs Dask, interleaved repeats")
    p.add_argument("--model-only", default=None, metavar="JSON",
                   help="print the scaling model from a saved --json report and exit")
    a = p.parse_args(argv)
    if a.model_only:
        with open(a.model_only) as f:
            print_model(json.load(f))
        return None
    backend = backends.resolve(a.backend)
    rows = {"5-64-64-1": 50_000 if a.quick else 200_000,
            "5-512-512-1": 10_000 if a.quick else 40_000}
    batch = 256
    from fastmlp.distributed import dask as fd
    client = fd.local_client(n_workers=2, threads_per_worker=1)
    fd.warm_workers(client, backend)
    report = {"backend": backend, "batch_size": batch, "machine": f"{os.cpu_count()} cores",
              "load_average_at_start": os.getloadavg(), "nets": {}}
    try:
        for name, layers in ({} if a.sweep_only else NETS).items():
            X, y = _data(rows[name])
            model = fastmlp.MLP(layers)
            r = {"rows": rows[name], "n_params": model.n_params,
                 "param_bytes": model.params.nbytes}
            r["compute_s_per_step_1thread"] = compute_per_step(
                layers, X, y, backend, steps=50 if layers[1] > 100 else 200)
            r["single_1x1_samples_per_s"] = single_process(layers, X, y, batch, 1, backend)
            r["single_1x2_samples_per_s"] = single_process(layers, X, y, batch, 2, backend)
            steps = -(-rows[name] // batch)
            r["dask_2x1"] = dask_modes(client, layers, X, y, batch, (1, 16, steps), backend)
            r["mpi_2x1"] = mpi_mode(layers, rows[name], batch, backend)
            report["nets"][name] = r
            _print_net(name, r)
        Xs, ys = _data(20_000, seed=1)
        report["lr_sweep_11"] = [
            sweep_ratio(client, Xs, ys, 1000 if a.quick else 3000, backend, NETS["5-64-64-1"]),
            sweep_ratio(client, Xs, ys, 20 if a.quick else 60, backend, NETS["5-512-512-1"])]
        for sw in report["lr_sweep_11"]:
            print(f"\nlr_sweep, 11 lrs x {sw['iterations']} steps, {sw['layers']}: serial "
                  f"{sw['serial_1thread_s']:.2f} s (1 thread), {sw['serial_2thread_s']:.2f} s "
                  f"(2 threads); Dask 2 workers x 1 thread {sw['dask_2x1_s']:.2f} s: "
                  f"{sw['speedup_vs_serial_1thread']:.2f}x / "
                  f"{sw['speedup_vs_serial_2threads']:.2f}x (medians of {sw['repeats']}); "
                  f"same best lr: {sw['same_best_lr']}")
        report["load_average_at_end"] = os.getloadavg()
        print(f"load average: start {report['load_average_at_start'][0]:.1f}, end "
              f"{report['load_average_at_end'][0]:.1f} (2 cores)")
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    if a.json:   # atomically, as every fastmlp output: never half a file, never a device
        from fastmlp.atomic import atomic_write
        atomic_write(a.json, lambda f: f.write(json.dumps(report, indent=1,
                                                           default=float).encode()))
    if report["nets"]:
        print_model(json.loads(json.dumps(report, default=float)))
    return report


def _print_net(name, r):
    print(f"\n== {name}: {r['n_params']} params ({r['param_bytes']} bytes float32), "
          f"{r['rows']} rows, batch 256")
    cps = r["compute_s_per_step_1thread"]
    print("compute per step, 1 thread: " + ", ".join(f"b={b}: {1e6 * t:.0f} us"
                                                   for b, t in cps.items()))
    print(f"1 process x 1 thread : {r['single_1x1_samples_per_s']:12,.0f} samples/s")
    print(f"1 process x 2 threads: {r['single_1x2_samples_per_s']:12,.0f} samples/s")
    for K, d in r["dask_2x1"].items():
        print(f"Dask 2 x 1, K={K:<5d}: {d['samples_per_s']:12,.0f} samples/s   "
              f"{d['bytes_per_round']:,} B/round  round {d['round_time_ms']:.1f} ms = "
              f"compute {d['compute_time_ms']:.1f} + comm {d['comm_time_ms']:.1f}")
    m = r["mpi_2x1"]
    if "skipped" in m:
        print(f"MPI 2 x 1: skipped ({m['skipped']})")
    else:
        print(f"MPI  2 x 1         : {m['samples_per_s']:12,.0f} samples/s   "
              f"{m['bytes_per_allreduce']:,} B/Allreduce  per step: compute "
              f"{m['compute_ms_per_step']:.3f} ms + Allreduce {m['allreduce_ms_per_step']:.3f} ms")


if __name__ == "__main__":
    main()
