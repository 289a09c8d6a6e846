"""Training speed epoch by epoch on data a net separates: the subnormal-number trap.

Once a net classifies its training rows confidently, its loss gradients, the products of
small deltas and weights, and Adam's state of dead units fall below the smallest normal
number, and on x86 every vector instruction that meets such a subnormal takes a microcode
assist.  fastmlp stores no subnormal loss gradient or optimizer state, and its compiled
kernels run with subnormals flushed to zero (README, "Backends"); a build or a commit
without that shows here as samples/s falling from one epoch to the next.

    python benchmarks/bench_separable.py [--backend c] [--net 5,512,512,1] [--batch 4096]
                                         [--rows 163840] [--epochs 8] [--threads 2]

Prints the samples/s of each epoch (the first includes Numba's compilation) with the CPU.
Not run in CI; results are per machine.
"""

import argparse
import platform

import numpy as np

import fastmlp


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="c")
    ap.add_argument("--net", default="5,512,512,1")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--rows", type=int, default=163_840)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    sizes = [int(s) for s in a.net.split(",")]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.rows, sizes[0])).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)          # separable by the first input
    model = fastmlp.MLP(sizes, seed=0)
    hist = fastmlp.fit(model, X, y, optimizer="adam", lr=1e-3, batch_size=a.batch,
                       epochs=a.epochs, validation=None, progress=False, backend=a.backend,
                       n_threads=a.threads)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"{cpu}, {a.threads} threads, backend {a.backend}, net {a.net} @ {a.batch}, "
          f"{a.rows} rows, y = x0 > 0")
    print("samples/s per epoch:", ", ".join(f"{s:,.0f}" for s in hist.samples_per_s))
    print(f"train loss: {hist.loss[0]:.4g} -> {hist.loss[-1]:.4g}")


if __name__ == "__main__":
    main()
