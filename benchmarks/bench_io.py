"""The catalog job at I/O speed (issue 14): ``fastmlp predict`` end to end against pyarrow's
own read speed, measured in the same run.  Not part of the test suite.

    python benchmarks/bench_io.py                       # 4M rows, 2 threads
    python benchmarks/bench_io.py --rows 100000000      # the does-not-fit-in-memory case
    python benchmarks/bench_io.py --rows 200000 --train-rows 50000   # a quick check

Steps (one process, one temporary directory):

1. generate an N-row Parquet catalog (u, g, r, i, z float32 magnitudes and a class column;
   row groups of 1M rows, written group by group so that generating 100M rows needs no
   more memory than 1M);
2. baseline: pyarrow reads u..z (``iter_batches``, column projection) and computes the four
   colours u-g, g-r, r-i, i-z with NumPy: rows/s;
3. ``fastmlp predict`` with a 4-64-64-3 model on ``colors:ugriz`` in a subprocess (Python
   start-up and imports counted), output Parquet: rows/s and the child's peak RSS
   (``os.wait4``'s rusage), and the ratio to the baseline (target >= 25 %, <= 300 MB);
4. the forward pass alone (``model.predict_proba`` on an in-memory array) for 4-64-64-3
   and 4-64-64-1: rows/s and the ratio of FLOP rates (target: equal);
5. with ``--train-rows M`` > 0: a training epoch of ``fit_stream`` on the first M rows (as a file)
   against one epoch of in-memory ``fit`` on the same rows (target >= 70 %).

Figures depend on the machine and its load: record the load average beside them
(printed).  ``--json PATH`` writes the figures as JSON.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ROW_GROUP = 1_000_000


def generate(path, n_rows, seed=0):
    """A Parquet catalog of n_rows (row groups of 1M rows, each drawn with its own seed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from fastmlp.data import make_photometric_catalog
    writer = None
    for k, a in enumerate(range(0, n_rows, ROW_GROUP)):
        m = min(ROW_GROUP, n_rows - a)
        cat = make_photometric_catalog(m, galaxy_fraction=0.3, seed=seed + k)
        cols = {b: cat.extra[b].astype(np.float32) for b in "ugriz"}
        cols["class"] = np.asarray(cat.class_names)[cat.y]
        t = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, t.schema)
        writer.write_table(t, row_group_size=ROW_GROUP)
    writer.close()


def baseline(path):
    """rows/s of pyarrow reading u..z and computing the four colours."""
    import pyarrow.parquet as pq
    t0 = time.perf_counter()
    f = pq.ParquetFile(path)
    n, check = 0, 0.0
    for batch in f.iter_batches(batch_size=ROW_GROUP, columns=list("ugriz")):
        m = [batch.column(b).to_numpy() for b in "ugriz"]
        X = np.empty((batch.num_rows, 4), np.float32)
        for j in range(4):
            np.subtract(m[j], m[j + 1], out=X[:, j])
        n += batch.num_rows
        check += float(X[0, 0])
    return n / (time.perf_counter() - t0)


def make_model(path, n_out, threads):
    """A 4-64-64-n_out model on colors:ugriz (trained for one epoch on 20k rows: the weights
    do not change the speed, but a real model gives real probabilities)."""
    from fastmlp import MLP, io as fio
    from fastmlp.data import make_photometric_catalog
    from fastmlp.training import fit
    cat = make_photometric_catalog(20_000, galaxy_fraction=0.3 if n_out == 3 else 0.0, seed=1)
    mags = {b: cat.extra[b] for b in "ugriz"}
    m = MLP([4, 64, 64, n_out], features="colors:ugriz",
            class_names=[str(c) for c in cat.class_names], positive=cat.positive)
    fit(m, mags, cat.y, epochs=1, progress=False, standardize=True, n_threads=threads)
    fio.save(m, path)
    return m


# A small launcher process starts `fastmlp predict` and reports its wall time and peak RSS:
# measured from this (large) process, the child's ru_maxrss would include the memory of the
# forked copy of this process before exec (Linux carries the old high-water mark over).
_LAUNCHER = """
import os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(p.pid, 0)
print(f"LAUNCHER {time.perf_counter() - t0} {usage.ru_maxrss} "
      f"{os.waitstatus_to_exitcode(status)}", flush=True)
"""


def predict_end_to_end(model_path, catalog, out, threads, chunk_rows):
    """(rows/s, peak RSS in MB, wall seconds) of `fastmlp predict` as a child process."""
    cmd = [sys.executable, "-c", "import sys; from fastmlp.cli import main; sys.exit(main())",
           "predict", "--model", str(model_path),
           "--catalog", str(catalog), "--out", str(out), "--quiet", "--threads",
           str(max(1, threads - 1)), "--chunk-rows", str(chunk_rows)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], env=env,
                         capture_output=True, text=True)
    tail = [ln for ln in run.stdout.splitlines() if ln.startswith("LAUNCHER ")]
    if not tail or tail[-1].split()[3] != "0":
        raise RuntimeError(f"fastmlp predict failed:\n{run.stdout}\n{run.stderr}")
    _, wall, maxrss, _ = tail[-1].split()
    wall = float(wall)
    rss_mb = int(maxrss) / 1024 if sys.platform != "darwin" else int(maxrss) / 2**20
    n = int(run.stdout.split("wrote ")[1].split(" rows")[0])
    return n / wall, rss_mb, wall


def forward_rates(threads, n=2_000_000, repeats=3):
    """rows/s of predict_proba on an in-memory array, 4-64-64-3 vs 4-64-64-1."""
    from fastmlp import MLP, backends
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    out = {}
    with backends.threads(threads):
        for k in (1, 3):
            m = MLP([4, 64, 64, k], seed=0)
            m.predict_proba(X[:1000])                     # warm-up (JIT, threads)
            best = min(_timed(lambda: m.predict_proba(X)) for _ in range(repeats))
            out[k] = n / best
    return out


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def train_rates(catalog, rows, threads, d):
    """(in-memory fit samples/s, fit_stream samples/s) of a training EPOCH on the same rows:
    the wall time of the second of two epochs, between fit's end-of-epoch callbacks (the
    stream's one-time scan for its statistics and classes, and fit's loading and
    standardising of the arrays, are set-up, not epochs)."""
    import pyarrow.parquet as pq
    from fastmlp import MLP
    from fastmlp.training import fit, fit_stream
    t = pq.ParquetFile(catalog).read_row_groups([0], columns=list("ugriz") + ["class"])
    t = t.slice(0, rows)
    part = d / "train.parquet"
    pq.write_table(t, part, row_group_size=min(rows, 250_000))
    names, y = np.unique(t.column("class").to_numpy(zero_copy_only=False),
                         return_inverse=True)
    mags = {b: t.column(b).to_numpy() for b in "ugriz"}

    def second_epoch(train):
        ends = []
        train(callbacks=[lambda epoch, hist, model: ends.append(time.perf_counter())])
        return rows / (ends[1] - ends[0])

    mem = second_epoch(lambda **kw: fit(
        MLP([4, 64, 64, len(names)], features="colors:ugriz",
            class_names=[str(c) for c in names]),
        mags, y, epochs=2, validation=None, progress=False, standardize=True,
        n_threads=threads, **kw))
    st = second_epoch(lambda **kw: fit_stream(
        MLP([4, 64, 64, len(names)]), part, epochs=2, features="colors:ugriz", label="class",
        progress=False, n_threads=threads, chunk_rows=250_000, **kw))
    return mem, st


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk-rows", type=int, default=100_000,
                    help="--chunk-rows of fastmlp predict (default 100000, its own default)")
    ap.add_argument("--train-rows", type=int, default=1_000_000,
                    help="rows for the fit vs fit_stream epoch (0: skip)")
    ap.add_argument("--dir", help="where to write the catalog (default: a temporary dir)")
    ap.add_argument("--json", help="write the figures here as JSON")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    tmp = tempfile.TemporaryDirectory(dir=args.dir)
    d = Path(tmp.name)
    from fastmlp.backends.cpu import cpu_identity
    res = {"meta": {"cpu": dict(cpu_identity()), "benchmark": "bench_io"}, "rows": args.rows,
           "threads": args.threads, "load_average": os.getloadavg(),
           "cpu_count": os.cpu_count()}
    t0 = time.perf_counter()
    catalog = d / "catalog.parquet"
    generate(catalog, args.rows)
    print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s "
          f"({catalog.stat().st_size / 1e6:.0f} MB); load average {res['load_average']}")
    make_model(d / "m3.npz", 3, args.threads)
    res["pyarrow_read_colours_rows_s"] = baseline(catalog)
    rate, rss, wall = predict_end_to_end(d / "m3.npz", catalog, d / "out.parquet",
                                         args.threads, args.chunk_rows)
    res.update(predict_rows_s=rate, predict_peak_rss_mb=rss, predict_wall_s=wall)
    res["predict_vs_pyarrow"] = rate / res["pyarrow_read_colours_rows_s"]
    fw = forward_rates(args.threads)
    res.update(forward_3_rows_s=fw[3], forward_1_rows_s=fw[1])
    flops = {k: 2 * (4 * 64 + 64 * 64 + 64 * k) for k in (1, 3)}
    res["flop_rate_3_vs_1"] = fw[3] * flops[3] / (fw[1] * flops[1])
    if args.train_rows:
        mem, st = train_rates(catalog, min(args.train_rows, args.rows, ROW_GROUP),
                              args.threads, d)
        res.update(fit_rows_s=mem, fit_stream_rows_s=st, stream_vs_fit=st / mem)
    _print(res)
    if args.json:   # atomically, as every fastmlp output: never half a file, never a device
        from fastmlp.atomic import atomic_write
        atomic_write(args.json, lambda f: f.write(json.dumps(res, indent=1).encode()))
    tmp.cleanup()
    return 0


def _print(res):
    print(f"pyarrow read + colours      {res['pyarrow_read_colours_rows_s']:>14,.0f} rows/s")
    print(f"fastmlp predict end to end  {res['predict_rows_s']:>14,.0f} rows/s "
          f"({res['predict_vs_pyarrow']:.1%} of pyarrow; target >= 25 %), "
          f"{res['predict_wall_s']:.1f} s, peak RSS {res['predict_peak_rss_mb']:.0f} MB "
          "(target <= 300 MB)")
    print(f"forward 4-64-64-3           {res['forward_3_rows_s']:>14,.0f} rows/s")
    print(f"forward 4-64-64-1           {res['forward_1_rows_s']:>14,.0f} rows/s "
          f"(FLOP rate 3-out / 1-out = {res['flop_rate_3_vs_1']:.2f}; target 1.0)")
    if "fit_rows_s" in res:
        print(f"fit (in memory), an epoch   {res['fit_rows_s']:>14,.0f} rows/s")
        print(f"fit_stream, an epoch        {res['fit_stream_rows_s']:>14,.0f} rows/s "
              f"({res['stream_vs_fit']:.1%} of fit; target >= 70 %)")


if __name__ == "__main__":
    sys.exit(main())
