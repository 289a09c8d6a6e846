"""Quick check of the Numba backend against PyTorch CPU eager, in the same process.

Training samples/s of ``numba.train_epoch`` (one compiled call per epoch, Adam, float32,
BCE on logits, ReLU hidden layers) against ``nn.Sequential`` + ``BCEWithLogitsLoss`` +
``torch.optim.Adam`` (defaults) with the same thread count; then the fused Adam update on
1e7 float32 parameters against ``torch.optim.Adam(fused=True)`` and the machine's streaming
bandwidth.  Timings are medians of repeats (the machine is shared); ratios > 1 favour numba.

    python benchmarks/bench_numba_quick.py [--threads 2] [--repeats 5] [--quick] [--startup]
    python benchmarks/bench_numba_quick.py --threads 1 --cpu-time   # per-core, load-robust
"""

import argparse
import time

import numpy as np
from numba import njit, prange

from fastmlp.backends import numba as nb
from fastmlp.backends import reference as ref

CASES = (  # sizes, batch, batches per timed epoch (enough to run ~0.2-1 s)
    ((5, 32, 32, 1), 256, 800),
    ((5, 32, 32, 1), 4096, 60),
    ((5, 128, 128, 128, 1), 1024, 24),
    ((5, 512, 512, 1), 4096, 3),
)


def flops_per_sample(sizes):
    """Multiply-adds x 2 of forward, backward dW and backward dX (not for the input layer)."""
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    dx = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    return 2 * (2 * macs + dx)


def make_data(sizes, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sizes[0])).astype(np.float32)
    y = (x[:, :1] + 0.5 * x[:, 1:2] > 0).astype(np.float32)
    return x, y


def numba_epoch(sizes, batch, n_batches):
    """A callable running one numba training epoch (compiled and warmed up)."""
    n = batch * n_batches
    x, y = make_data(sizes, n)
    sw = np.ones(n, np.float32)
    sizes_a = np.array(sizes, np.int64)
    acts = np.ones(len(sizes) - 1, np.int64)
    acts[-1] = 0
    _, n_params = ref.layer_offsets(sizes)
    rng = np.random.default_rng(1)
    params = (rng.standard_normal(n_params) * 0.1).astype(np.float32)
    grad = np.zeros_like(params)
    state = np.zeros((3, n_params), np.float32)
    losses = np.zeros(n_batches)
    lrs = np.full(n_batches, 1e-3)
    hyper = np.array([1e-3, 0.9, 0.999, 1e-8, 0, 0, 0, 0])
    perm = np.random.default_rng(2).permutation(n).astype(np.int64)
    step = [0]

    def epoch():
        done = nb.train_epoch(params, grad, state, losses, x, y, sw, perm, batch, lrs, step[0],
                              3, hyper, sizes_a, acts, 0)
        assert done == n_batches, done
        step[0] += n_batches

    epoch()
    return epoch


def torch_epoch(sizes, batch, n_batches):
    """A callable running one PyTorch eager epoch (same data, same batches)."""
    import torch
    n = batch * n_batches
    x, y = make_data(sizes, n)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(model.parameters())
    loss_fn = torch.nn.BCEWithLogitsLoss()
    perm = torch.from_numpy(np.random.default_rng(2).permutation(n))

    def epoch():
        for i in range(n_batches):
            idx = perm[i * batch:(i + 1) * batch]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), Y[idx])
            loss.backward()
            opt.step()

    epoch()
    return epoch


_clock = time.perf_counter


def interleaved(fns, repeats, block=1, pause=0.05):
    """Time each callable `repeats` x `block` times, round-robin in blocks of `block` calls
    (load changes hit all alike), pausing before each block so that the other runtime's
    OpenMP threads stop spinning; returns (medians, bests) in seconds."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, f in enumerate(fns):
            time.sleep(pause)
            for _ in range(block):
                t = _clock()
                f()
                times[i].append(_clock() - t)
    return [float(np.median(t)) for t in times], [float(np.min(t)) for t in times]


def sgemm_gflops(repeats):
    """Measured sgemm throughput (4096x512 @ 512x512, torch and numpy)."""
    import torch
    a = torch.randn(4096, 512)
    b = torch.randn(512, 512)
    torch.mm(a, b)
    t = []
    for _ in range(repeats * 4):
        s = time.perf_counter()
        torch.mm(a, b)
        t.append(time.perf_counter() - s)
    an, bn = a.numpy(), b.numpy()
    an @ bn
    tn = []
    for _ in range(repeats * 4):
        s = time.perf_counter()
        an @ bn
        tn.append(time.perf_counter() - s)
    f = 2 * 4096 * 512 * 512
    return f / np.median(t) / 1e9, f / np.median(tn) / 1e9


@njit(cache=True, error_model="numpy")
def _rmw1(x, y, s):
    for i in range(x.shape[0]):
        x[i] = x[i] + s * y[i]


@njit(cache=True, error_model="numpy")
def _triad1(x, y, z, s):
    for i in range(x.shape[0]):
        x[i] = y[i] + s * z[i]


@njit(parallel=True, cache=True, error_model="numpy")
def _rmw(a, b, s, nth):
    per = (a.shape[0] + nth - 1) // nth
    for t in prange(nth):
        lo = t * per
        hi = min(lo + per, a.shape[0])
        _rmw1(a[lo:hi], b[lo:hi], s)


@njit(parallel=True, cache=True, error_model="numpy")
def _triad(a, b, c, s, nth):
    per = (a.shape[0] + nth - 1) // nth
    for t in prange(nth):
        lo = t * per
        hi = min(lo + per, a.shape[0])
        _triad1(a[lo:hi], b[lo:hi], c[lo:hi], s)


def bench_adam(n, repeats, nth):
    """Fused Adam on n float32 params: numba vs torch.optim.Adam(fused=True), and the
    streaming bandwidth: a read-modify-write kernel a += s b (12 bytes / element moved,
    no write-allocate traffic, like Adam's in-place rows) and the STREAM triad."""
    import torch

    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    st = np.zeros((3, n), np.float32)
    step = [1]

    def numba_adam():
        nb.adam_update(p, g, st[0], st[1], st[2], step[0], 1e-3, 0.9, 0.999, 1e-8, 0, False,
                       False, False)
        step[0] += 1

    tp = torch.from_numpy(p.copy()).requires_grad_(True)
    tp.grad = torch.from_numpy(g.copy())
    opt = torch.optim.Adam([tp], fused=True)
    a = np.zeros(n, np.float32)
    b = np.ones(n, np.float32)
    c = np.ones(n, np.float32)
    s = np.float32(1e-7)
    fns = [numba_adam, opt.step, lambda: _rmw(a, b, s, nth), lambda: _triad(a, b, c, s, nth)]
    for f in fns:
        f()
    med, best = interleaved(fns, repeats, block=5)
    return med, best


_STARTUP = """
import time
t0 = time.perf_counter()
import numpy as np
from fastmlp.backends import numba as nb
t1 = time.perf_counter()
print(f"import fastmlp.backends.numba {t1 - t0:.2f} s")
sizes = np.array([5, 32, 32, 1]); acts = np.array([1, 1, 0])
n_p = 5 * 32 + 32 + 32 * 32 + 32 + 32 + 1
for dt in (np.float32, np.float64):
    x = np.random.rand(100, 5).astype(dt); y = (x[:, :1] > .5).astype(dt)
    p = np.random.rand(n_p).astype(dt) - .5
    nb.train_epoch(p, np.zeros_like(p), np.zeros((3, n_p), dt), np.zeros(4), x, y,
                   np.ones(100, dt), np.arange(100), 32, np.full(4, 1e-3), 0, 3,
                   np.array([1e-3, .9, .999, 1e-8, 0, 0, 0, 0]), sizes, acts, 0)
    t2 = time.perf_counter()
    print(f"first train_epoch {np.dtype(dt).name} {t2 - t1:.2f} s")
    t1 = time.perf_counter()
"""


def startup():
    """First-call time of train_epoch in a fresh process: cold (empty Numba cache) and
    cached (second process, same cache directory)."""
    import os
    import subprocess
    import sys
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        for label in ("cold", "cached"):
            out = subprocess.run([sys.executable, "-c", _STARTUP], env=env, check=True,
                                 capture_output=True, text=True).stdout
            for line in out.strip().splitlines():
                print(f"start-up {label:>6}  {line}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer batches per timed epoch")
    ap.add_argument("--only", type=int, default=None, help="run only case i (0..3), or 4: adam")
    ap.add_argument("--startup", action="store_true",
                    help="only measure cold / cached start-up in fresh processes")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time (robust to a busy machine; meaningful "
                         "with --threads 1 only, idle OpenMP threads spin)")
    args = ap.parse_args()
    if args.cpu_time:
        global _clock
        _clock = time.process_time
    if args.startup:
        return startup()
    import torch
    torch.set_num_threads(args.threads)
    nb.set_num_threads(args.threads)
    div = 4 if args.quick else 1
    import os
    print(f"threads={args.threads}  torch {torch.__version__}  float32  Adam  "
          f"{'CPU time  ' if args.cpu_time else ''}"
          f"{args.repeats} interleaved repeats; load average before: {os.getloadavg()[0]:.1f}")
    print("samples/s: median (best) of the repeats; the machine is shared, 'best' is the "
          "least disturbed run")
    print(f"{'network':<18}{'batch':>6}{'numba':>22}{'torch':>22}{'ratio':>17}"
          f"{'numba GFLOP/s':>15}")
    for i, (sizes, batch, n_batches) in enumerate(CASES):
        if args.only is not None and args.only != i:
            continue
        n_batches = max(2, n_batches // div)
        (tn, tt), (bn, bt) = interleaved([numba_epoch(sizes, batch, n_batches),
                                          torch_epoch(sizes, batch, n_batches)], args.repeats)
        n = batch * n_batches
        gf = n * flops_per_sample(sizes) / 1e9
        print(f"{'-'.join(map(str, sizes)):<18}{batch:>6}"
              f"{f'{n / tn:.3g} ({n / bn:.3g})':>22}{f'{n / tt:.3g} ({n / bt:.3g})':>22}"
              f"{f'{tt / tn:.2f}x ({bt / bn:.2f}x)':>17}"
              f"{gf / tn:>9.1f} ({gf / bn:.1f})",
              flush=True)
    if args.only is None or args.only == 3:
        tg, ng = sgemm_gflops(args.repeats)
        print(f"measured sgemm 4096x512x512 (2 threads): torch {tg:.1f} GFLOP/s, "
              f"numpy {ng:.1f} GFLOP/s")
    if args.only is None or args.only == 4:
        n = 10_000_000
        med, best = bench_adam(n, args.repeats, args.threads)
        for label, (tn, tt, tb, t3) in (("median", med), ("best", best)):
            ach = 28 * n / tn / 1e9
            bw, bw3 = 12 * n / tb / 1e9, 12 * n / t3 / 1e9
            print(f"fused Adam 1e7 float32 ({label}): numba {tn * 1e3:.2f} ms ({ach:.1f} GB/s "
                  f"at 28 B/param), torch fused {tt * 1e3:.2f} ms -> {tt / tn:.2f}x; streaming "
                  f"a += s b {bw:.1f} GB/s -> Adam at {100 * ach / bw:.0f} % "
                  f"(triad {bw3:.1f} GB/s)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()
