"""Constants and small helpers shared by every part of the benchmark (the bottom layer of
fastmlp.bench: it imports nothing else from the package)."""

import math
import os
import time

import numpy as np

from ..atomic import atomic_write

SCHEMA_VERSION = 2              # 2: results per CPU, targets as data, spreads, fastmlp[auto]
DTYPE = np.float32
LR = 1e-3
LOSS_CHECK_RTOL = 1e-4          # float32 losses of the first steps, relative
PROBA_CHECK_ATOL = 1e-5         # float32 probabilities, absolute


def log(msg):
    print(msg, flush=True)


def now():
    return time.perf_counter()


def median(xs):
    return float(np.median(np.asarray(xs, dtype=np.float64)))


def spread(xs):
    """min / first quartile / median / third quartile / max of a list of figures: one median
    alone cannot tell a 10 % difference from the noise of a shared machine."""
    a = np.asarray(xs, dtype=np.float64)
    if a.size == 0:
        return None
    q1, q2, q3 = np.percentile(a, [25, 50, 75])
    return {"min": float(a.min()), "q1": float(q1), "median": float(q2), "q3": float(q3),
            "max": float(a.max()), "n": int(a.size)}


def arch_name(sizes):
    return "-".join(str(s) for s in sizes)


def config_name(sizes, bs):
    return f"{arch_name(sizes)}@{bs}"


def n_params(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def rel_diff(a, b):
    """Largest relative difference of a from b (inf when the shapes differ or are empty)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        return math.inf
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def time_call(fn, min_reps, min_time=0.0, max_reps=1000):
    """Per-call times: at least min_reps calls and min_time seconds in all."""
    times = []
    t_start = now()
    while len(times) < min_reps or (now() - t_start < min_time and len(times) < max_reps):
        t0 = now()
        fn()
        times.append(now() - t0)
    return times


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return [0.0, 0.0, 0.0]


def try_import(name):
    try:
        return __import__(name, fromlist=["_"]), None
    except Exception as exc:  # a peer that is missing or broken is skipped, with the reason
        return None, f"{type(exc).__name__}: {exc}"


# -- JSON and files ----------------------------------------------------------------------

def json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def clean(o):
    """JSON-safe copy: NaN/inf become None."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        v = float(o)
        return v if math.isfinite(v) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def atomic_write_bytes(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))
