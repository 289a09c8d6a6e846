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
from fastmlp.datasets import make_photometric_catalog
from fastmlp.optim import make_optimizer

FEATURES = ["u-g", "g-r", "r-i", "i-z", "r"]
NETS = {"5-64-64-1": [5, 64, 64, 1], "5-512-512-1": [5, 512, 512, 1]}


def _data(n, seed=0):
    cat = make_photometric_catalog(n, seed=seed, features=FEATURES)
    X = ((cat.X - cat.X.mean(0)) / cat.X.std(0)).astype(np.float32)
    return X, cat.y


def _epoch_time(layers, X, y, batch, threads, backend, steps=None):
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
    for _ in range(2):
        t0 = time.perf_counter()
        k.train_epoch(*args)
        best = min(best, time.perf_counter() - t0)
    return best, perm.size, nb


def compute_per_step(layers, X, y, backend, batches=(16, 32, 64, 128, 256), steps=200):
    out = {}
    for b in batches:
        t, rows, nb = _epoch_time(layers, X, y, b, 1, backend, steps=steps)
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


def sweep_ratio(client, X, y, iterations, backend):
    from fastmlp.distributed import dask as fd

    def mk():
        return fastmlp.MLP(NETS["5-64-64-1"], seed=0, backend=backend)

    lrs = np.logspace(-5, 0, 11)
    fastmlp.lr_sweep(mk, X[:2000], y[:2000], lrs=lrs[:1], iterations=5)  # warm-up
    out = {}
    for threads in (1, 2):
        backends.set_num_threads(threads)
        t0 = time.perf_counter()
        s = fastmlp.lr_sweep(mk, X, y, lrs=lrs, iterations=iterations)
        out[f"serial_{threads}thread_s"] = time.perf_counter() - t0
    fd.dask_lr_sweep(mk, X, y, client, lrs=lrs[:2], iterations=5)  # warm the workers
    t0 = time.perf_counter()
    r = fd.dask_lr_sweep(mk, X, y, client, lrs=lrs, iterations=iterations)
    out["dask_2x1_s"] = time.perf_counter() - t0
    out["same_best_lr"] = bool(r.best_lr == s.best_lr)
    out["speedup_vs_serial_1thread"] = out["serial_1thread_s"] / out["dask_2x1_s"]
    out["speedup_vs_serial_2threads"] = out["serial_2thread_s"] / out["dask_2x1_s"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--backend", default=None, help="kernel backend (default: auto)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    backend = backends.resolve(a.backend)
    rows = {"5-64-64-1": 50_000 if a.quick else 200_000,
            "5-512-512-1": 10_000 if a.quick else 40_000}
    batch = 256
    from fastmlp.distributed import dask as fd
    client = fd.local_client(n_workers=2, threads_per_worker=1)
    report = {"backend": backend, "batch_size": batch, "machine": f"{os.cpu_count()} cores",
              "nets": {}}
    try:
        for name, layers in NETS.items():
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
        report["lr_sweep_11"] = sweep_ratio(client, Xs, ys, 300 if a.quick else 1000,
                                            backend)
        print("\nlr_sweep, 11 lrs, 5-64-64-1:", json.dumps(report["lr_sweep_11"], indent=1))
    finally:
        cluster = client.cluster
        client.close()
        cluster.close()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1, default=float)
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
