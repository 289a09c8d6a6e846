"""The machine at hand: CPU model and flags, versions, and the limits every figure is compared
with (float32 sgemm GFLOP/s through NumPy's BLAS, streaming memory bandwidth)."""

import glob
import os
import platform
import subprocess
import sys

import numpy as np

from .._validate import counted
from ..backends.cpu import cpu_identity
from .common import log, median, time_call

ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "FASTMLP_BACKEND", "GOTO_NUM_THREADS")


def versions():
    import importlib.metadata as md
    from .._version import __version__
    v = {"python": platform.python_version(), "numpy": np.__version__, "fastmlp": __version__}
    for name in ("numba", "torch", "sklearn", "threadpoolctl", "matplotlib", "scipy"):
        mod = sys.modules.get(name)
        if mod is not None:
            v[name] = getattr(mod, "__version__", None)
            continue
        try:
            v[name] = md.version({"sklearn": "scikit-learn"}.get(name, name))
        except Exception:
            v[name] = None
    return v


def git_commit():
    """The checkout's short commit, '+dirty' when fastmlp/ or csrc/ has changes; None outside
    a git checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            # ':/' pathspecs are relative to the top of the checkout, not to `here`
            dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--",
                                    ":/fastmlp", ":/csrc"], capture_output=True, text=True,
                                   timeout=10).stdout.strip()
            return out.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        pass
    return None


def describe_machine(threads):
    """Everything about the machine that is not measured: CPU, threads, BLAS, environment."""
    from threadpoolctl import threadpool_info
    cpu = cpu_identity()
    info = {"cpu_model": cpu["model"], "cpu_vendor": cpu["vendor"], "cpu_slug": cpu["slug"],
            "cpu_x86_family": cpu["x86_family"], "cpu_x86_model": cpu["x86_model"],
            "cpu_simd": cpu["simd"], "cpu_bf16_amx": cpu["bf16_amx"],
            "machine": platform.machine(), "platform": platform.platform(),
            "logical_cpus": os.cpu_count(), "threads": threads,
            "env": {k: os.environ[k] for k in ENV_VARS if k in os.environ},
            "threadpools": [{k: d.get(k) for k in ("user_api", "internal_api", "prefix",
                                                   "version", "num_threads", "architecture",
                                                   "threading_layer", "filepath")}
                            for d in threadpool_info()]}
    blas = sorted((d for d in info["threadpools"] if d["user_api"] == "blas"),
                  key=lambda d: "numpy" not in (d.get("filepath") or ""))
    info["numpy_blas"] = blas[0] if blas else None
    if hasattr(os, "sched_getaffinity"):
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_gib"] = int(f.readline().split()[1]) / 2 ** 20
    except (OSError, ValueError, IndexError):
        pass
    return info


# ---------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------

def _matmul(m, k, n, rng):
    """(a call of np.matmul on float32 (m, k) @ (k, n) operands made once, its flops)."""
    A = rng.standard_normal((m, k), dtype=np.float32)
    B = rng.standard_normal((k, n), dtype=np.float32)
    C = np.empty((m, n), dtype=np.float32)
    return (lambda: np.matmul(A, B, out=C)), 2.0 * m * k * n


def measure_sgemm(square, tall, min_time):
    """float32 GFLOP/s of np.matmul for a square n^3 and for (m, k) @ (k, n) shapes."""
    rng = np.random.default_rng(0)
    shapes = [("square", square, square, square)] + [("mlp", m, k, n) for m, k, n in tall]
    rows = []
    for kind, m, k, n in shapes:
        call, flops = _matmul(m, k, n, rng)
        call()
        times = time_call(call, 3, min_time)
        rows.append({"kind": kind, "shape": f"({m}x{k})@({k}x{n})", "m": m, "k": k, "n": n,
                     "gflops_best": flops / min(times) / 1e9,
                     "gflops_median": flops / median(times) / 1e9, "reps": len(times)})
    return rows


def sgemm_probe(sgemm_rows, min_time):
    """A call that times np.matmul on the shape of the run's sgemm peak (the fastest row of
    measure_sgemm) for about min_time seconds and returns its best GFLOP/s: the peak at this
    moment, for the training rounds to be set against the peak of their own time (the
    host's speed moves by a third within minutes on the AMD EPYC VM)."""
    best = max(sgemm_rows, key=lambda r: r["gflops_best"])
    call, flops = _matmul(best["m"], best["k"], best["n"], np.random.default_rng(0))

    def probe():
        return flops / min(time_call(call, 3, min_time)) / 1e9
    probe.shape = best["shape"]
    return probe


_STREAM = None


def _compile_stream_kernels():
    import numba

    @numba.njit(parallel=True, cache=True)
    def copy(a, b):
        for i in numba.prange(a.shape[0]):
            a[i] = b[i]

    @numba.njit(parallel=True, cache=True)
    def triad(a, b, c, s):
        for i in numba.prange(a.shape[0]):
            a[i] = b[i] + s * c[i]

    @numba.njit(parallel=True, cache=True)
    def update(a, b, s):
        for i in numba.prange(a.shape[0]):
            a[i] += s * b[i]

    @numba.njit(parallel=True, cache=True)
    def update3(a, b, c, d, s):
        # the memory traffic of an Adam step: 4 arrays read, 3 written in place
        for i in numba.prange(a.shape[0]):
            a[i] += s * d[i]
            b[i] += s * d[i]
            c[i] += s * d[i]

    @numba.njit(parallel=True, cache=True)
    def read_all(a):
        t = 0.0
        for i in numba.prange(a.shape[0]):
            t += a[i]
        return t

    # The reads of an update of 2, 3 or 4 arrays without its writes (fastmath: the float32
    # sums vectorise): an update of as many arrays reads no faster, so with its writes free
    # it would move (bytes read + written) / bytes read times their rate (optimizers.py).
    @numba.njit(parallel=True, cache=True, fastmath=True)
    def read2(a, b):
        t = np.float32(0.0)
        for i in numba.prange(a.shape[0]):
            t += a[i] + b[i]
        return t

    @numba.njit(parallel=True, cache=True, fastmath=True)
    def read3(a, b, c):
        t = np.float32(0.0)
        for i in numba.prange(a.shape[0]):
            t += a[i] + b[i] + c[i]
        return t

    @numba.njit(parallel=True, cache=True, fastmath=True)
    def read4(a, b, c, d):
        t = np.float32(0.0)
        for i in numba.prange(a.shape[0]):
            t += a[i] + b[i] + c[i] + d[i]
        return t

    return {"copy": copy, "triad": triad, "update": update, "update3": update3,
            "read2": read2, "read3": read3, "read4": read4, "read_all": read_all,
            "numba": numba}


def stream_kernels():
    """Numba-parallel copy / triad / update / update3 kernels, compiled on first use (None
    if Numba is missing)."""
    global _STREAM
    if _STREAM is None:
        try:
            _STREAM = _compile_stream_kernels()
        except Exception:
            _STREAM = {}
    return _STREAM or None


def stream_ops(n, threads, names=("copy", "triad", "update", "update3")):
    """{name: (call, bytes counted per float32 element)} on fresh arrays of n float32, and a
    description of the implementation.  STREAM byte counting: copy 8, triad 12, in-place
    update a += s b 12, update3 (a, b, c += s d) 28 bytes; copy and triad also pay an
    uncounted write-allocate read, the in-place updates do not, like an optimizer update.
    read2 / read3 / read4 (8 / 12 / 16 bytes) read 2, 3 or 4 arrays and write nothing."""
    a, b, c, d = (np.full(n, v, dtype=np.float32) for v in (0.0, 1.0, 2.0, 3.0))
    s = np.float32(1e-3)
    k = stream_kernels()
    if k is not None:
        k["numba"].set_num_threads(max(1, min(threads, k["numba"].config.NUMBA_NUM_THREADS)))
        impl = f"numba parallel, {counted(threads, 'thread')}"
        ops = {"copy": (lambda: k["copy"](a, b), 8),
               "triad": (lambda: k["triad"](a, b, c, s), 12),
               "update": (lambda: k["update"](a, b, s), 12),
               "update3": (lambda: k["update3"](a, b, c, d, s), 28),
               "read2": (lambda: k["read2"](a, b), 8),
               "read3": (lambda: k["read3"](a, b, c), 12),
               "read4": (lambda: k["read4"](a, b, c, d), 16)}
    else:
        impl = "numpy (single thread)"
        ops = {"copy": (lambda: np.copyto(a, b), 8),
               "triad": (lambda: (np.multiply(c, s, out=a), np.add(a, b, out=a)), 12),
               "update": (lambda: np.add(a, np.multiply(b, s), out=a), 12),
               "update3": (lambda: [np.add(x, np.multiply(d, s), out=x) for x in (a, b, c)],
                           28),
               "read2": (lambda: [x.sum() for x in (a, b)], 8),
               "read3": (lambda: [x.sum() for x in (a, b, c)], 12),
               "read4": (lambda: [x.sum() for x in (a, b, c, d)], 16)}
    for name in names:
        ops[name][0]()          # compile / fault the pages in before any timing
    return {name: ops[name] for name in names}, impl


def last_level_cache_bytes():
    """The size of CPU 0's largest cache from sysfs (0 where it is not readable)."""
    best = 0
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(os.path.join(d, "size")) as f:
                txt = f.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(txt[-1:], 1)
            best = max(best, int(txt.rstrip("KMG")) * mult)
        except (OSError, ValueError):
            pass
    return best


def cache_evictor(max_bytes=2 << 30):
    """A function that reads a buffer of twice the last-level cache (at least 64 MB, at most
    ``max_bytes``), so that whatever is timed next starts from memory, not from the cache.
    Why: on a CPU whose L3 (480 MB here) holds the arrays of a 1e7-parameter update, a
    kernel timed right after another one on the same arrays read part of them from the L3
    (the in-place ``update`` ran at 57-63 GB/s after ``update3`` on the same arrays, 56
    GB/s after an eviction), so the bandwidth an optimizer was judged against was inflated
    for some kernels and not for others.  None without Numba."""
    k = stream_kernels()
    if k is None:
        return None
    nbytes = min(max(2 * last_level_cache_bytes(), 64 << 20), max_bytes)
    buf = np.ones(nbytes // 4, dtype=np.float32)
    k["read_all"](buf)
    return lambda: k["read_all"](buf)


def measure_bandwidth(n, min_time, threads):
    """Streaming bandwidth in GB/s: best and median of repeated passes of every kernel of
    stream_ops; "gbs" is the highest median, "gbs_kernel" the kernel that gave it."""
    ops, impl = stream_ops(n, threads)
    res = {"impl": impl, "array_mb": n * 4 / 1e6, "n": n, "kernels": list(ops)}
    for name, (fn, nbytes) in ops.items():
        times = time_call(fn, 3, min_time)
        res[name] = {"gbs_best": nbytes * n / min(times) / 1e9,
                     "gbs_median": nbytes * n / median(times) / 1e9, "reps": len(times)}
    # the median (like every other figure here): a best-of can catch a pass served partly
    # from a large L3 cache.  Which kernel streams fastest differs between CPUs (update3 on
    # some Intel parts, copy or triad elsewhere), so the kernel is recorded with the figure.
    res["gbs_kernel"] = max(ops, key=lambda o: res[o]["gbs_median"])
    res["gbs"] = res[res["gbs_kernel"]]["gbs_median"]
    return res


def machine_section(cfg, threads):
    info = describe_machine(threads)
    log(f"[machine] {info['cpu_model']} ({' '.join(info['cpu_simd'])}), "
        f"{counted(info['logical_cpus'], 'logical CPU')}, benchmark threads = {threads}")
    for d in info["threadpools"]:
        log(f"[machine]   {d['user_api']}: {d['internal_api']} {d.get('version')} "
            f"arch={d.get('architecture')} threads={d['num_threads']}")
    log("[machine]   env: " + (", ".join(f"{k}={v}" for k, v in info["env"].items())
                              or "(no OPENBLAS_* / *_NUM_THREADS set)"))
    info["sgemm"] = measure_sgemm(cfg["sgemm_square"], cfg["sgemm_tall"], cfg["min_time"])
    info["sgemm_peak_gflops"] = max(r["gflops_best"] for r in info["sgemm"])
    for r in info["sgemm"]:
        log(f"[machine] sgemm {r['shape']:>24}: {r['gflops_best']:8.1f} GFLOP/s (best), "
            f"{r['gflops_median']:8.1f} (median)")
    bw = info["bandwidth"] = measure_bandwidth(cfg["stream_n"], cfg["min_time"], threads)
    log(f"[machine] bandwidth ({bw['impl']}, {bw['array_mb']:.0f} MB arrays), median GB/s: "
        + ", ".join(f"{k} {bw[k]['gbs_median']:.1f}" for k in bw["kernels"]))
    info["bandwidth_gbs"] = bw["gbs"]
    return info


def remeasure_limits(machine, cfg, threads):
    """Measure sgemm and bandwidth again at the end of the run and keep the higher figures:
    limits measured while the machine was busy would flatter every fraction of them."""
    sg = measure_sgemm(cfg["sgemm_square"], cfg["sgemm_tall"], cfg["min_time"])
    bw = measure_bandwidth(cfg["stream_n"], cfg["min_time"], threads)
    machine["sgemm_end"], machine["bandwidth_end"] = sg, bw
    peak_end = max(r["gflops_best"] for r in sg)
    machine["sgemm_peak_gflops_start"] = machine["sgemm_peak_gflops"]
    machine["bandwidth_gbs_start"] = machine["bandwidth"]["gbs"]
    machine["sgemm_peak_gflops"] = max(machine["sgemm_peak_gflops"], peak_end)
    machine["bandwidth_gbs"] = max(machine["bandwidth"]["gbs"], bw["gbs"])
    log(f"[machine] again at the end: sgemm peak {peak_end:.1f} GFLOP/s, bandwidth "
        f"{bw['gbs']:.1f} GB/s; using {machine['sgemm_peak_gflops']:.1f} GFLOP/s and "
        f"{machine['bandwidth_gbs']:.1f} GB/s")
