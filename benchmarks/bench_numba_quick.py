"""Quick check of the Numba backend against PyTorch CPU eager, in the same process.

Training samples/s of ``numba.train_epoch`` (one compiled call per epoch, Adam, float32,
BCE on logits, ReLU hidden layers) against ``nn.Sequential`` + ``BCEWithLogitsLoss`` +
``torch.optim.Adam`` (defaults) with the same thread count; then the fused Adam update on
1e7 float32 parameters against ``torch.optim.Adam(fused=True)`` and the machine's streaming
bandwidth.  Timings are medians of repeats (the machine is shared); ratios > 1 favour numba.

    python benchmarks/bench_numba_quick.py [--threads 2] [--repeats 5] [--quick]
"""

import argparse
import time

import numpy as np

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


def bench_numba(sizes, batch, n_batches, repeats):
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
    step = 0

    def epoch():
        nonlocal step
        done = nb.train_epoch(params, grad, state, losses, x, y, sw, perm, batch, lrs, step, 3,
                              hyper, sizes_a, acts, 0)
        assert done == n_batches, done
        step += n_batches

    epoch()  # compile / warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t)
    return n / np.median(times)


def bench_torch(sizes, batch, n_batches, repeats):
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
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t)
    return n / np.median(times)


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


def bench_adam(n, repeats, nth):
    import torch
    from numba import njit, prange

    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros(1, np.float32)
    # numba: the backend's fused adam_update (through its Python wrapper)
    st = np.zeros((3, n), np.float32)
    nb.adam_update(p, g, st[0], st[1], st[1], 1, 1e-3, 0.9, 0.999, 1e-8, 0, False, False, False)
    tn = []
    for i in range(repeats * 3):
        s = time.perf_counter()
        nb.adam_update(p, g, st[0], st[1], st[1], i + 2, 1e-3, 0.9, 0.999, 1e-8, 0, False,
                       False, False)
        tn.append(time.perf_counter() - s)
    del m, v, vmax
    # torch fused
    tp = torch.from_numpy(p.copy()).requires_grad_(True)
    tp.grad = torch.from_numpy(g.copy())
    opt = torch.optim.Adam([tp], fused=True)
    opt.step()
    tt = []
    for _ in range(repeats * 3):
        s = time.perf_counter()
        opt.step()
        tt.append(time.perf_counter() - s)

    # streaming bandwidth: a read-modify-write kernel a += s * b (12 bytes / element, no
    # write-allocate traffic, like Adam's in-place rows), and the STREAM triad
    @njit(parallel=True, cache=True)
    def rmw(a, b, s, nth):
        per = (a.shape[0] + nth - 1) // nth
        for t in prange(nth):
            for i in range(t * per, min((t + 1) * per, a.shape[0])):
                a[i] = a[i] + s * b[i]

    @njit(parallel=True, cache=True)
    def triad(a, b, c, s, nth):
        per = (a.shape[0] + nth - 1) // nth
        for t in prange(nth):
            for i in range(t * per, min((t + 1) * per, a.shape[0])):
                a[i] = b[i] + s * c[i]

    a = np.zeros(4 * n, np.float32)
    b = np.ones(4 * n, np.float32)
    c = np.ones(4 * n, np.float32)
    rmw(a, b, np.float32(1e-7), nth)
    triad(a, b, c, np.float32(1e-7), nth)
    tb, tt3 = [], []
    for _ in range(repeats * 3):
        s = time.perf_counter()
        rmw(a, b, np.float32(1e-7), nth)
        tb.append(time.perf_counter() - s)
        s = time.perf_counter()
        triad(a, b, c, np.float32(1e-7), nth)
        tt3.append(time.perf_counter() - s)
    bw = 12 * 4 * n / np.median(tb) / 1e9
    bw_triad = 12 * 4 * n / np.median(tt3) / 1e9
    return np.median(tn), np.median(tt), bw, bw_triad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer batches per timed epoch")
    ap.add_argument("--only", type=int, default=None, help="run only case i (0..3), or 4: adam")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    nb.set_num_threads(args.threads)
    div = 4 if args.quick else 1
    print(f"threads={args.threads}  torch {torch.__version__}  float32  Adam  median of "
          f"{args.repeats}")
    print(f"{'network':<22}{'batch':>7}{'numba samples/s':>17}{'torch samples/s':>17}"
          f"{'ratio':>8}{'numba GFLOP/s':>15}")
    for i, (sizes, batch, n_batches) in enumerate(CASES):
        if args.only is not None and args.only != i:
            continue
        n_batches = max(2, n_batches // div)
        sn = bench_numba(sizes, batch, n_batches, args.repeats)
        st = bench_torch(sizes, batch, n_batches, args.repeats)
        gf = sn * flops_per_sample(sizes) / 1e9
        print(f"{'-'.join(map(str, sizes)):<22}{batch:>7}{sn:>17.4g}{st:>17.4g}"
              f"{sn / st:>7.2f}x{gf:>15.1f}", flush=True)
    if args.only is None or args.only == 3:
        tg, ng = sgemm_gflops(args.repeats)
        print(f"measured sgemm 4096x512x512: torch {tg:.1f} GFLOP/s, numpy {ng:.1f} GFLOP/s")
    if args.only is None or args.only == 4:
        n = 10_000_000
        tn, tt, bw, bw3 = bench_adam(n, args.repeats, args.threads)
        ach = 28 * n / tn / 1e9
        print(f"fused Adam 1e7 float32: numba {tn * 1e3:.2f} ms ({ach:.1f} GB/s at 28 B/param), "
              f"torch fused {tt * 1e3:.2f} ms, ratio {tt / tn:.2f}x; streaming bandwidth "
              f"(a += s b) {bw:.1f} GB/s -> {100 * ach / bw:.0f} % (triad {bw3:.1f} GB/s)")


if __name__ == "__main__":
    main()
