"""Small predictions: the time of one ``predict_proba`` call on 1 to 10,000 rows, fastmlp
against scikit-learn and PyTorch eager in the same run.  Not part of the test suite.

    python benchmarks/bench_latency.py                  # 4-64-64-1, 2 threads, 7 rounds
    python benchmarks/bench_latency.py --rounds 3 --json latency.json

A catalog is classified in one call per file (benchmarks/bench_io.py), but a model is also
asked about a handful of objects at a time: a web service, an interactive notebook, a
cross-match loop.  There the time is the Python around the kernels (argument checks, the
tuned choices, the link), not the arithmetic.  The systems, with the same weights:

- ``fastmlp MLP``: ``fastmlp.MLP.predict_proba`` (the model API; backend ``auto``);
- ``fastmlp MLPClassifier``: the scikit-learn-compatible estimator's ``predict_proba``
  (scikit-learn's input validation included, as in scikit-learn);
- ``sklearn``: ``sklearn.neural_network.MLPClassifier.predict_proba``;
- ``torch eager``: ``torch.sigmoid(model(torch.from_numpy(x)))`` under ``no_grad``, in a
  process of its own (fastmlp.bench.torch_process), timed there: the pipe is not counted.

Each round times a block of calls of every system for every row count, in turns (the order
reversed every round), and keeps each block's median call; the report gives the median over
the rounds and the ratios of round medians (a slow spell of a shared host falls on every
system of a round).  The probabilities are compared first.  The CPU and the load average
are printed with the figures.
"""

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROWS = (1, 10, 100, 1_000, 10_000)
SIZES = (4, 64, 64, 1)
PROBA_ATOL = 1e-5


def calls_for(rows):
    """Calls in one timed block: about 20 ms of the fastest system, at least 5."""
    return max(5, min(400, 40_000 // rows))


def _block(fn, k):
    ts = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


class TorchLatency:
    """Built in the PyTorch worker: ``block(rows, k)`` is the median of k timed calls."""

    def __init__(self, torch, sizes, params, X):
        from fastmlp.bench.peers import torch_model
        self.torch, self.tm, self.X = torch, torch_model(torch, list(sizes), params), \
            torch.from_numpy(X)

    def proba(self, rows):
        with self.torch.no_grad():
            return self.torch.sigmoid(self.tm(self.X[:rows])).numpy()[:, 0]

    def block(self, rows, k):
        x = self.X[:rows]
        torch = self.torch

        def call():
            with torch.no_grad():
                torch.sigmoid(self.tm(x))
        call()
        return _block(call, k)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)

    import fastmlp
    from fastmlp.backends.cpu import cpu_identity
    from fastmlp.bench.peers import SklearnTrainer
    from fastmlp.bench.torch_process import TorchProcess
    from sklearn import neural_network
    from threadpoolctl import threadpool_limits

    fastmlp.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = max(ROWS)
    X = rng.standard_normal((n, SIZES[0])).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = fastmlp.MLP(list(SIZES), seed=0, dtype="float32")
    model.loss = "bce"
    params = model.params.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # max_iter=1: only the weights matter
        est = fastmlp.MLPClassifier(SIZES[1:-1], max_iter=1, random_state=0,
                                    dtype="float32").fit(X[:256], y[:256])
    est.model_.params[...] = params
    sk = SklearnTrainer(neural_network, list(SIZES), params, X, y, 256)

    cpu = cpu_identity()
    print(f"CPU: {cpu['model']} (family {cpu['x86_family']} model {cpu['x86_model']}; "
          f"{' '.join(cpu['simd'])}), {os.cpu_count()} CPUs, {args.threads} threads, "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"fastmlp backend: {fastmlp.backends.resolve()}; net {'-'.join(map(str, SIZES))} "
          f"float32")

    with TorchProcess(args.threads) as proc, threadpool_limits(args.threads):
        tl = proc.new(f"{Path(__file__).resolve()}:TorchLatency", ("proba", "block"),
                      list(SIZES), params, X)
        p_ref = model.predict_proba(X[:1000])[:, 1]
        checks = {"fastmlp MLPClassifier": est.predict_proba(X[:1000])[:, 1],
                  "sklearn": sk.proba(X[:1000]), "torch eager": tl.proba(1000)}
        for name, p in checks.items():
            diff = float(np.max(np.abs(p - p_ref)))
            print(f"check {name:<22} max |dp| vs fastmlp MLP {diff:.1e}")
            if not diff <= PROBA_ATOL:
                print("the probabilities differ: not timing", file=sys.stderr)
                return 1

        def local(fn):
            return lambda rows, k: _block(lambda: fn(X[:rows]), k)
        systems = {"fastmlp MLP": local(model.predict_proba),
                   "fastmlp MLPClassifier": local(est.predict_proba),
                   "sklearn": local(sk.clf.predict_proba),
                   "torch eager": tl.block}
        times = {(s, r): [] for s in systems for r in ROWS}
        for rnd in range(-1, args.rounds):           # round -1 warms up
            order = list(systems) if rnd % 2 == 0 else list(systems)[::-1]
            for rows in ROWS:
                for s in order:
                    t = systems[s](rows, calls_for(rows))
                    if rnd >= 0:
                        times[s, rows].append(t)

    names = list(systems)
    print(f"\nmedian time of one predict_proba call (us), {args.rounds} rounds; "
          "ratio = the system's time / fastmlp MLP's, median of the rounds' ratios")
    print(f"{'rows':>7} " + " ".join(f"{s:>22}" for s in names))
    out = {"cpu": cpu, "threads": args.threads, "rounds": args.rounds, "sizes": SIZES,
           "loadavg": os.getloadavg(), "rows": {}}
    for rows in ROWS:
        base = np.asarray(times["fastmlp MLP", rows])
        cells, rec = [], {}
        for s in names:
            t = np.asarray(times[s, rows])
            ratio = float(np.median(t / base))
            rec[s] = {"us": float(np.median(t)) * 1e6, "us_rounds": (t * 1e6).tolist(),
                      "ratio_to_fastmlp_mlp": ratio}
            cells.append(f"{np.median(t) * 1e6:10.1f} ({ratio:5.2f}x)")
        out["rows"][rows] = rec
        print(f"{rows:>7} " + " ".join(f"{c:>22}" for c in cells))
    if args.json:
        from fastmlp.atomic import atomic_write
        atomic_write(args.json, lambda f: f.write(json.dumps(out, indent=1).encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
