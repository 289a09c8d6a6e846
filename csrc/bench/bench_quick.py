"""Quick speed check of the C backend against PyTorch eager (the full comparison with every
backend is benchmarks/compare.py).  Run: python csrc/bench/bench_quick.py [--repeats 5]

Training: samples/s of one epoch of Adam mini-batch steps, float32, 2 threads on both
sides: fastmlp C's fused train_epoch vs nn.Sequential + torch.optim.Adam (default foreach)
+ BCEWithLogitsLoss, eager.  Optimizer: one Adam step over 1e7 float32 parameters, C
adam_update vs torch.optim.Adam(fused=True), as GB/s of the 7 streams touched (read p, g,
m, v; write p, m, v) next to a measured streaming bandwidth (c = a + b, 3 streams).
Medians of repeats (the machine is shared)."""

import argparse
import time

import numpy as np
import torch

from fastmlp.backends import c as cb

CONFIGS = [((5, 32, 32, 1), 256), ((5, 32, 32, 1), 4096), ((5, 128, 128, 128, 1), 1024),
           ((5, 512, 512, 1), 4096)]
TARGETS = {((5, 32, 32, 1), 256): 20, ((5, 32, 32, 1), 4096): 3,
           ((5, 128, 128, 128, 1), 1024): 2, ((5, 512, 512, 1), 4096): 1.2}


CLOCK = time.perf_counter   # --cpu-time: time.process_time (CPU seconds of the process)


def median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return float(np.median(ts))


def n_samples_for(sizes, batch):
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n = int(4e8 / (6 * macs))          # about 0.4 GFLOP of training per epoch
    return max(batch * 4, (n // batch) * batch)


def bench_train(sizes, batch, repeats, threads):
    rng = np.random.default_rng(0)
    n = n_samples_for(sizes, batch)
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    y = (X[:, :1] * X[:, 1:2] > 0).astype(np.float32)
    sw = np.ones(n, np.float32)
    n_batches = (n + batch - 1) // batch

    # --- fastmlp C
    cb.set_num_threads(threads)
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    params = (0.1 * rng.standard_normal(n_params)).astype(np.float32)
    grad = np.zeros_like(params)
    state = np.zeros((3, n_params), np.float32)
    losses = np.zeros(n_batches)
    lrs = np.full(n_batches, 1e-3)
    perm = rng.permutation(n).astype(np.int64)
    hyper = np.array([1e-3, 0.9, 0.999, 1e-8, 0, 0, 0, 0])
    sz = np.array(sizes, np.int64)
    acts = np.array([1] * (len(sizes) - 2) + [0], np.int64)
    step = [0]

    def run_c():
        cb.train_epoch(params, grad, state, losses, X, y, sw, perm, batch, lrs, step[0], 3,
                       hyper, sz, acts, 0)
        step[0] += n_batches

    t_c = median_time(run_c, repeats)

    # --- PyTorch eager
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters())
    lossfn = torch.nn.BCEWithLogitsLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    permt = torch.from_numpy(perm)

    def run_torch():
        for i in range(n_batches):
            idx = permt[i * batch:(i + 1) * batch]
            opt.zero_grad()
            loss = lossfn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()

    t_t = median_time(run_torch, repeats)
    return n / t_c, n / t_t


def bench_adam(n, repeats, threads):
    rng = np.random.default_rng(0)
    cb.set_num_threads(threads)
    p = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    step = [0]

    def run_c():
        step[0] += 1
        cb.adam_update(p, g, m, v, None, step[0], 1e-3, 0.9, 0.999, 1e-8, 0, False, False,
                       False)

    t_c = median_time(run_c, repeats, warmup=2)
    torch.set_num_threads(threads)
    pt = torch.nn.Parameter(torch.from_numpy(p.copy()))
    pt.grad = torch.from_numpy(g.copy())
    opt = torch.optim.Adam([pt], fused=True)
    t_t = median_time(opt.step, repeats, warmup=2)
    # streaming bandwidth: the best of three 3-stream kernels (read 2, write 1)
    a, b, c = (torch.from_numpy(rng.standard_normal(n).astype(np.float32)) for _ in range(3))
    t_s = min(median_time(lambda: torch.add(a, b, out=c), repeats, warmup=2),
              median_time(lambda: np.add(a.numpy(), b.numpy(), out=c.numpy()), repeats, 2),
              median_time(lambda: cb.sgd_update(p, g, None, 1, 1e-9, 0, 0, 0, False, False),
                          repeats, 2))
    gb = 7 * 4 * n / 1e9
    return gb / t_c, gb / t_t, 3 * 4 * n / 1e9 / t_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default=None, help="e.g. 5-32-32-1@256, or adam")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time in CPU seconds of the process instead of wall seconds (a "
                         "loaded machine then distorts less; use with --threads 1)")
    args = ap.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    print(f"C build: {cb.build_info()}; torch {torch.__version__}; threads {args.threads}; "
          f"{'CPU' if args.cpu_time else 'wall'} time")
    for sizes, batch in CONFIGS:
        name = "-".join(map(str, sizes)) + f"@{batch}"
        if args.only and args.only != name:
            continue
        c, t = bench_train(sizes, batch, args.repeats, args.threads)
        print(f"{name:22s} C {c / 1e6:8.2f} M samples/s   torch {t / 1e6:7.3f} M samples/s"
              f"   ratio {c / t:6.1f}x  (target {TARGETS[(sizes, batch)]}x)", flush=True)
    if not args.only or args.only == "adam":
        c, t, s = bench_adam(10_000_000, args.repeats, args.threads)
        print(f"Adam 1e7 float32        C {c:6.1f} GB/s   torch fused {t:6.1f} GB/s   "
              f"stream {s:6.1f} GB/s   C/stream {c / s:5.0%}   C/torch {c / t:4.2f}x")


if __name__ == "__main__":
    main()
