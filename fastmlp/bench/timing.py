"""Sizing a timed epoch from a warm-up, and summarising timed epochs into one row."""

from .common import median, n_params, spread


def size_epoch(trainer, bs, cfg, n_cap):
    """Warm up on a few batches (JIT compilation, caches) and size a timed epoch from the
    warm-up rate: about epoch_s seconds, at least min_rows rows unless that costs more than
    4 x epoch_s, at most n_cap rows, whole batches."""
    n_small = min(n_cap // bs * bs, cfg["min_batches"] * bs)
    w = trainer.run(n_small, bs, max(2, cfg["warmup"]))   # the first compiles / warms up
    rate = n_small / max(w[-1], 1e-9)
    n = max(rate * cfg["epoch_s"], min(cfg["min_rows"], rate * cfg["epoch_s"] * 4))
    return max(n_small, min(int(n) // bs * bs, n_cap // bs * bs))


def summarise(n, sizes, rounds, kernel_times=None):
    """One row from every timed epoch of every round: the median epoch gives samples/s; the
    spread of samples/s over the epochs is kept beside it."""
    times = [t for rt in rounds for t in rt]
    sps = n / median(times)
    r = {"samples_per_s": sps, "n_samples": n, "epochs_timed": len(times),
         "epoch_s": times, "epoch_s_median": median(times),
         "samples_per_s_spread": spread([n / t for t in times]),
         "samples_per_s_rounds": [n / median(t) for t in rounds],
         "gflops": 6.0 * n_params(sizes) * sps / 1e9}
    if kernel_times:  # fit's own History.epoch_time: the train_epoch call alone
        r["samples_per_s_train_epoch_only"] = n / median(kernel_times)
        r["fit_bookkeeping_share"] = 1.0 - median(kernel_times) / median(times)
    return r


def measure_system(trainer, bs, cfg, n_cap, sizes):
    """Warm up, size the epoch, then time epochs x rounds epochs in one go (for the
    torch.compile subprocess, which has no peers to take turns with)."""
    n = size_epoch(trainer, bs, cfg, n_cap)
    times = trainer.run(n, bs, cfg["epochs"] * cfg.get("rounds", 1))
    return summarise(n, sizes, [times], getattr(trainer, "kernel_times", None))
