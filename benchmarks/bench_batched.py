"""Many models in one pass (issue 16): the batched path against one model and against K
separate runs, with torch.func.vmap + functional_call as the peer, in one process.

Targets (same run, 2 threads; each line prints its measured ratio beside the target):
  - 11-lr Adam sweep of 5-32-32-1 and 5-64-64-1, 1,500 steps at batch 256:
    lr_sweep (batched) <= 2x the time of ONE model trained for the same steps;
  - 5-fold CV of 4-64-64-1 over one epoch: cross_validate (batched) <= 2.5x one fit;
  - ensemble of 16 x 5-32-32-1: fit_ensemble >= 4x the model-samples/s of 16 separate fits;
  - torch.func.vmap(grad(functional_call)) + a per-model-lr Adam on stacked parameters over
    the same 11 sweep models and the same batches (the peer).
Float32, the batched kernels of each backend named (Numba and C by default; "auto", what a
user gets, is C on these nets here), medians of ``--repeats`` after a warm-up run (compiles).
Each line also prints the design estimate: every model of a batch runs its single-model
arithmetic (bit-identical to training it alone) on one thread, whole models spread evenly
over the threads (chunks of an epoch at a time), so a batch takes about K / threads x one
model's one-thread time.  And the bound no kernel can pass: the batch's floating-point work
(6 x parameters x model-samples, the benchmark's GFLOP/s convention) at the sgemm peak
measured at the start of the run, as a multiple of the same reference time.
Not run in CI; results are per machine - report them with the CPU and its load.

    python benchmarks/bench_batched.py [--threads 2] [--steps 1500] [--rows 200000]
                                       [--repeats 3] [--backends numba,c] [--no-torch]
                                       [--quick]
"""

import argparse
import os
import platform
import time

import numpy as np

import fastmlp
from fastmlp.bench.common import n_params
from fastmlp.bench.machine import measure_sgemm
from fastmlp.bench.torch_process import TorchProcess
from fastmlp.training import cross_validate, fit_ensemble, lr_sweep


def _median_time(fn, repeats):
    fn()  # warm-up: compiles, loads the cache, touches the pages
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _data(n, n_in, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 - 0.3 * X[:, 2] > 0.2).astype(np.int64)
    return X, y


def _one_model_steps(sizes, X, y, steps, bs, backend):
    """ONE model, the same steps as a sweep candidate: the single fused epoch over the same
    kind of concatenated order the sweep uses."""
    model = fastmlp.MLP(list(sizes), dtype="float32", seed=0)
    kern = fastmlp.get_backend(backend)
    n = X.shape[0]
    rng = np.random.default_rng(0)
    order = np.concatenate([rng.permutation(n) for _ in range(-(-steps * bs // n))])
    order = order[:steps * bs].astype(np.int64)
    Y = y.astype(np.float32)[:, None]
    sw = np.ones(n, np.float32)
    opt = fastmlp.optim.make_optimizer("adam", model.params, lr=1e-3)

    def run():
        p = model.params.copy()
        st = np.zeros_like(opt.state)
        kern.train_epoch(p, np.empty_like(p), st, np.empty(steps), X, Y, sw, order, bs,
                         np.full(steps, 1e-3), 0, opt.code, opt.hyper_vector(),
                         model.sizes_array, model.acts_array, 0)
    return run


def _estimate(k, threads, one_thread_time, one_time):
    """About the time of k models in a batch, as a multiple of one model's: each model of a
    batch runs its single-model arithmetic on one thread (bit-identical by design), the
    models' chunks of batches are spread evenly over the threads, so each thread trains
    k / threads models' worth at about one model's one-thread speed."""
    return k / threads * one_thread_time / one_time


def _sgemm_peak(threads):
    """float32 GFLOP/s of the best of a square and an MLP-shaped sgemm on `threads` BLAS
    threads (fastmlp.bench.machine.measure_sgemm, as `fastmlp bench` measures its peak)."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=threads, user_api="blas"):
        return max(r["gflops_best"] for r in measure_sgemm(2048, ((4096, 512, 512),), 1.0))


def _floor(sizes, model_samples, peak, ref_time):
    """The batch's work at the sgemm peak, as a multiple of ref_time: no kernel goes below."""
    return 6.0 * n_params(sizes) * model_samples / (peak * 1e9) / ref_time


def bench_sweep(sizes, X, y, steps, bs, repeats, lrs, backend):
    mk = lambda: fastmlp.MLP(list(sizes), dtype="float32", seed=0)  # noqa: E731
    one = _median_time(_one_model_steps(sizes, X, y, steps, bs, backend), repeats)
    with fastmlp.backends.threads(1):
        one1 = _median_time(_one_model_steps(sizes, X, y, steps, bs, backend), repeats)
    batched = _median_time(lambda: lr_sweep(mk, X, y, lrs=lrs, iterations=steps,
                                            batch_size=bs, backend=backend), repeats)
    serial = _median_time(lambda: lr_sweep(mk, X, y, lrs=lrs, iterations=steps,
                                           batch_size=bs, backend=backend, batched=False),
                          max(1, repeats // 2))
    return one, one1, batched, serial


def bench_cv(X, y, repeats, backend, k=5):
    mk = lambda: fastmlp.MLP([4, 64, 64, 1], dtype="float32", seed=0)  # noqa: E731
    kw = dict(epochs=1, batch_size=256, backend=backend)

    def one_fit():
        fastmlp.fit(mk(), X, y, validation=None, progress=False, **kw)
    one = _median_time(one_fit, repeats)
    with fastmlp.backends.threads(1):
        one1 = _median_time(one_fit, repeats)
    batched = _median_time(lambda: cross_validate(mk, X, y, k=k, **kw), repeats)
    serial = _median_time(lambda: cross_validate(mk, X, y, k=k, batched=False, **kw),
                          max(1, repeats // 2))
    return one, one1, batched, serial


def bench_ensemble(X, y, repeats, backend, members=16, epochs=1):
    mk = lambda: fastmlp.MLP([5, 32, 32, 1], dtype="float32", seed=0)  # noqa: E731

    def separate():
        for i in range(members):
            m = fastmlp.MLP([5, 32, 32, 1], dtype="float32", seed=i)
            fastmlp.fit(m, X, y, epochs=epochs, validation=None, progress=False,
                        backend=backend, seed=i)
    batched = _median_time(lambda: fit_ensemble(mk, X, y, n_members=members, epochs=epochs,
                                                backend=backend), repeats)
    sep = _median_time(separate, max(1, repeats // 2))
    with fastmlp.backends.threads(1):
        sep1 = _median_time(separate, max(1, repeats // 2))
    work = members * X.shape[0] * epochs
    return work / batched, work / sep, work / sep1


def bench_torch_vmap(torch, sizes, X, y, steps, bs, lrs, threads):
    """torch.func: vmap(grad(loss over functional_call)) over K stacked models, Adam with a
    per-model lr written on the stacked tensors (torch.optim has one lr per param group).
    Runs in fastmlp.bench.torch_process's worker, which imports torch before fastmlp: in
    this process PyTorch would share fastmlp's passive OpenMP waiting (3.6x slower on small
    networks)."""
    from torch.func import functional_call, grad, stack_module_state, vmap
    torch.set_num_threads(threads)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    models = [torch.nn.Sequential(*[type(l)(l.in_features, l.out_features)
                                    if isinstance(l, torch.nn.Linear) else torch.nn.ReLU()
                                    for l in layers]) for _ in lrs]
    params, _ = stack_module_state(models)
    skeleton = models[0].to("meta")
    K = len(lrs)
    lr = torch.tensor(lrs, dtype=torch.float32)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.float32))[:, None]

    def loss_fn(p, xb, yb):
        out = functional_call(skeleton, p, (xb,))
        return torch.nn.functional.binary_cross_entropy_with_logits(out, yb)
    g_fn = vmap(grad(loss_fn), in_dims=(0, None, None))
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v = {k: torch.zeros_like(t) for k, t in params.items()}
    rng = np.random.default_rng(0)
    n = X.shape[0]
    order = torch.from_numpy(np.concatenate([rng.permutation(n) for _ in
                                             range(-(-steps * bs // n))])[:steps * bs])
    b1, b2, eps = 0.9, 0.999, 1e-8
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(steps):
            idx = order[s * bs:(s + 1) * bs]
            g = g_fn(params, Xt[idx], Yt[idx])
            t = s + 1
            for k in params:
                m[k].mul_(b1).add_(g[k], alpha=1 - b1)
                v[k].mul_(b2).addcmul_(g[k], g[k], value=1 - b2)
                step = (lr / (1 - b1 ** t)).view(K, *([1] * (g[k].dim() - 1)))
                den = (v[k] / (1 - b2 ** t)).sqrt_().add_(eps)
                params[k].sub_(step * m[k] / den)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--rows", type=int, default=200_000, help="rows of the CV / ensemble data")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="numba,c",
                    help="comma-separated fastmlp backends, each measured on every line")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--quick", action="store_true", help="300 steps, 50,000 rows, 1 repeat")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.rows, a.repeats = 300, 50_000, 1
    names = [b.strip() for b in a.backends.split(",") if b.strip()]
    avail = fastmlp.available_backends()
    for b in names:
        if b not in avail or not avail[b][0]:
            raise SystemExit(f"--backends: {b!r} is not an available backend "
                             f"({', '.join(n for n, (ok, _) in avail.items() if ok)})")
    fastmlp.set_num_threads(a.threads)
    peak = _sgemm_peak(a.threads)
    from fastmlp.backends.cpu import cpu_identity
    print(f"# bench_batched  {cpu_identity()['model'] or platform.machine()}  "
          f"{os.cpu_count()} CPUs  load {os.getloadavg()[0]:.1f}  threads {a.threads}  "
          f"steps {a.steps}  rows {a.rows}  backends {','.join(names)}  "
          f"sgemm peak {peak:.0f} GFLOP/s")
    lrs = np.logspace(-5, 0, 11)
    bs = 256
    for sizes in ((5, 32, 32, 1), (5, 64, 64, 1)):
        X, y = _data(max(a.rows, bs * 4), sizes[0])
        net = "-".join(map(str, sizes))
        tv = None
        if not a.no_torch:
            with TorchProcess(a.threads) as proc:
                tv = proc.call(os.path.abspath(__file__) + ":bench_torch_vmap", list(sizes),
                               X, y, a.steps, bs, list(lrs), a.threads)
        for b in names:
            one, one1, batched, serial = bench_sweep(sizes, X, y, a.steps, bs, a.repeats, lrs,
                                                     b)
            print(f"[{b}] sweep 11 x {net}: one model {one:.3f} s, batched {batched:.3f} s = "
                  f"{batched / one:.2f}x one (target <= 2x), serial {serial:.3f} s = "
                  f"{serial / one:.2f}x; design estimate "
                  f"{_estimate(len(lrs), a.threads, one1, one):.2f}x (one model on one thread "
                  f"{one1:.3f} s); at the sgemm peak "
                  f"{_floor(sizes, len(lrs) * a.steps * bs, peak, one):.2f}x")
            if tv is not None:
                print(f"  peer torch.func.vmap + functional_call, 11 models: {tv:.3f} s = "
                      f"{tv / one:.2f}x one fastmlp[{b}] model, {tv / batched:.1f}x the batch")
    X, y = _data(a.rows, 4, seed=1)
    for b in names:
        one, one1, batched, serial = bench_cv(X, y, a.repeats, b)
        print(f"[{b}] 5-fold CV 4-64-64-1, 1 epoch of {a.rows} rows: one fit {one:.3f} s, "
              f"batched {batched:.3f} s = {batched / one:.2f}x (target <= 2.5x), serial "
              f"{serial:.3f} s = {serial / one:.2f}x; design estimate "
              f"{0.8 * _estimate(5, a.threads, one1, one):.2f}x (each fold trains on 4/5 of "
              f"the rows; one fit on one thread {one1:.3f} s); at the sgemm peak "
              f"{_floor((4, 64, 64, 1), 4 * a.rows, peak, one):.2f}x")
    X, y = _data(a.rows, 5, seed=2)
    for b in names:
        ens, sep, sep1 = bench_ensemble(X, y, a.repeats, b)
        print(f"[{b}] ensemble 16 x 5-32-32-1: batched {ens:,.0f} model-samples/s, 16 fits "
              f"{sep:,.0f} = {ens / sep:.2f}x (target >= 4x); design estimate "
              f"{a.threads * sep1 / sep:.2f}x ({a.threads} threads x the 16 fits on one "
              f"thread, {sep1:,.0f}); at the sgemm peak "
              f"{1 / _floor((5, 32, 32, 1), sep, peak, 1.0):.2f}x")


if __name__ == "__main__":
    main()
