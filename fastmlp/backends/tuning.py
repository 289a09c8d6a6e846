"""Measured choices, cached per machine (like FFTW wisdom).

Five choices are made by measurement instead of constants tuned on one CPU (the two below,
and ``prefer_layerwise`` / ``blas_layers`` / ``prefer_one_thread``, how a backend runs a
given shape):

- ``blas_crossover(backend, dtype)``: the size of a layer's product (rows x n_in x n_out
  multiply-adds) from which that backend's kernels call BLAS instead of their hand-written
  loops.  Measured on nets of two square layers (n x n at 256 rows, n = 32 .. 512, loss and
  gradient): the smallest product from which BLAS is faster at that size and every larger
  one.
- ``choose_backend(sizes, batch_size, dtype)``: the backend ``"auto"`` stands for, per shape
  class (layer count, widest layer and batch size rounded up to powers of two, thread
  count): a short training epoch on random data timed on each available fast backend.

Each is measured once per (CPU, key) on first use (about 1-2 s) and stored in
``tune-<cpu-slug>.json`` (the CPU: its model name, x86 family and model numbers and SIMD
flags, fastmlp.backends.cpu) in ``$FASTMLP_CACHE_DIR``, else ``$XDG_CACHE_HOME/fastmlp``, else
``~/.cache/fastmlp`` (written atomically: a temporary file renamed over the old one; two
processes that measure at once each merge the file's entries into their own before writing,
under an advisory lock on ``tune-<cpu-slug>.json.lock`` beside it, so neither loses the
other's; where no lock can be had, the merge alone leaves a narrow race).  A
corrupt or foreign file is ignored with a warning; one that cannot be written is a warning
too (once per file and process: unwritten_cache() says so), the choices then used by this
process only.  The file also records the kernels it
was measured with (``kernels_stamp``: the fastmlp version, the compiled C module's and the
Numba kernels' digests, the Numba and SciPy versions): after any of them changes its
entries are measured again, as FFTW's wisdom is tied to its version (after the AVX-512
micro-kernel of the C backend, the Xeon's measured choices of BLAS layers changed: the
4-64-64 layers of the README's DR6 net went back to the hand-written kernels).
``FASTMLP_NO_TUNE=1`` turns measurement and the cache off: static defaults (below) are used.
``fastmlp tune`` measures explicitly.

The results of a measurement depend on the load of the machine while it ran; re-run
``fastmlp tune`` on a quiet machine for choices worth keeping.
"""

import contextlib
import functools
import itertools
import json
import math
import os
import threading
import time
import warnings

import numpy as np

try:
    import fcntl       # POSIX: the cache file's advisory lock (_locked_for_update)
except ImportError:    # Windows: the entries are still merged, without a lock
    fcntl = None

from . import _threads, cpu as _cpu
from ..atomic import atomic_write

FORMAT = 2   # 2: the CPU recorded with its family, model and flags (1: its name)
# Static defaults (FASTMLP_NO_TUNE=1, or no measurement possible): BLAS from 2^25
# multiply-adds per layer product (e.g. 512 x 512 at 128 rows), "auto" in this order.
DEFAULT_CROSSOVER = float(2 ** 25)
DEFAULT_ORDER = ("c", "numba", "numpy")
# Square widths and rows of the crossover measurement.
_CROSS_WIDTHS = (32, 64, 128, 256, 512)
_CROSS_ROWS = 256

_lock = threading.RLock()
_memo = {}        # key -> value, this process (read from / written to the cache file)
_loaded_path = None
_measure_depth = 0      # measurements under way (one may start another: choose_backend runs
_measure_seconds = 0.0  # an epoch that asks for blas_layers); outermost time, this process
_announce = None        # called once at the first measurement: announcing_measurements
_forced = threading.local()
_unwritten = None           # the cache file the latest measurement could not be written to
_warned_unwritable = set()  # cache files said to be unwritable, locks said to be stuck (once)
_report_unwritable = None   # called instead of warning: reporting_unwritable_cache
# How long a save waits for another process's hold of the cache file's lock before it
# writes without it: a rewrite takes milliseconds, so a lock held longer is stuck (e.g. a
# process of an older fastmlp that forked a child while it held the lock: the child keeps
# the lock's open file), and a cache must not hang a training run.  Waited once per lock
# file and process: after that the saves of this process try the lock without waiting.
LOCK_WAIT_SECONDS = 10.0
_held_lock_fd = None       # the lock file's descriptor while a save holds it (closed in a
                           # forked child, which would otherwise keep the lock: see below)
_stuck_locks = set()       # lock files this process waited for in vain (not waited again)


def tuning_disabled():
    v = os.environ.get("FASTMLP_NO_TUNE")
    return v is not None and v.strip().lower() not in ("", "0", "false", "no")


_DT_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def _dtname(dtype):
    """np.dtype(dtype).name, without its cost (~1 us, a Python property in NumPy) for the
    two dtypes the kernels take: this runs on every kernel call that reads a tuned choice."""
    name = _DT_NAMES.get(dtype) if isinstance(dtype, np.dtype) else None
    return name if name is not None else np.dtype(dtype).name


def this_cpu():
    """What the cache is keyed by: this CPU's model name, x86 family and model numbers and
    SIMD flags (fastmlp.backends.cpu), and the slug of its file name."""
    ident = _cpu.cpu_identity()
    return {k: ident[k] for k in ("model", "x86_family", "x86_model", "simd", "slug")}


def _cpu_record():
    """This CPU as the cache file records it: a file measured on a CPU that differs in any
    of these (another generation under the same name, or a VM that hides AVX-512) is not
    trusted."""
    c = this_cpu()
    return {k: c[k] for k in ("model", "x86_family", "x86_model", "simd")}


def describe_cpu():
    """'AMD EPYC (x86 family 25 model 1; avx avx2 f16c fma)' for messages."""
    c = this_cpu()
    fm = (f"x86 family {c['x86_family']} model {c['x86_model']}; "
          if c["x86_family"] is not None and c["x86_model"] is not None else "")
    return f"{c['model']} ({fm}{' '.join(c['simd']) or 'no AVX'})"


def cache_dir():
    d = os.environ.get("FASTMLP_CACHE_DIR")
    if d:
        return d
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastmlp")


_path_memo = [None, None]   # (the environment it was computed from, the path)


def cache_path():
    """This CPU's cache file.  Looked up on every kernel call that reads a tuned choice, so
    the path is remembered for as long as what it comes from (the variables, the CPU model)
    does not change."""
    slug = this_cpu()["slug"]
    env = (os.environ.get("FASTMLP_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME"),
           os.environ.get("HOME"), slug)
    if _path_memo[0] != env:
        _path_memo[:] = [env, os.path.join(cache_dir(), f"tune-{slug}.json")]
    return _path_memo[1]


@functools.lru_cache(maxsize=1)
def kernels_stamp():
    """What the measurements depend on besides the CPU: the fastmlp version, a digest of the
    compiled C module and of the Numba kernels' sources, the Numba and SciPy (BLAS)
    versions.  A cache file of another stamp is stale: its entries are measured again."""
    import hashlib
    import importlib.util
    from .._version import __version__
    h = hashlib.sha256(__version__.encode())
    files = []
    spec = importlib.util.find_spec("fastmlp._fastmlp_c")
    if spec is not None and spec.origin:
        files.append(spec.origin)
    here = os.path.dirname(os.path.abspath(__file__))
    files += [os.path.join(here, f) for f in ("numba.py", "_nb_kernels.py", "_nb_blas.py",
                                              "_nb_batched.py")]
    for path in files:
        try:
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        except OSError:
            h.update(b"-")
    for mod in ("numba", "scipy"):
        try:
            h.update(__import__(mod).__version__.encode())
        except ImportError:
            h.update(b"-")
    return h.hexdigest()[:16]


def _load():
    """The entries of this CPU's cache file ({} if missing; corrupt: warned and ignored;
    measured with other kernels: dropped, to be measured again)."""
    global _loaded_path
    path = cache_path()
    if _loaded_path == path:
        return _memo
    _memo.clear()
    _loaded_path = path
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        older = (isinstance(data, dict) and isinstance(data.get("format"), int)
                 and 0 < data["format"] < FORMAT)   # an earlier fastmlp's: measured again
        if not older and not (isinstance(data, dict) and data.get("format") == FORMAT
                              and data.get("cpu") == _cpu_record()
                              and isinstance(data.get("entries"), dict)):
            raise ValueError("not a fastmlp tuning file of this format and CPU")
        if not older and data.get("kernels") == kernels_stamp():
            _memo.update(data["entries"])
    except (FileNotFoundError, NotADirectoryError):  # nothing cached yet
        pass
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        warnings.warn(f"fastmlp: ignoring the tuning cache {path} ({exc}); it will be "
                      "measured again and rewritten", RuntimeWarning, stacklevel=3)
    return _memo


def _entries_on_disk(path):
    """The entries of the cache file as it is now ({} if it is missing, unreadable, foreign
    or of other kernels): two processes that measure at once (two ``fastmlp train`` runs
    started together) each write the file, and the second would drop what the first
    measured since the second read it, if it did not merge them in first."""
    if not os.path.isfile(path):    # opening a FIFO put there would wait for a writer
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not (isinstance(data, dict) and data.get("format") == FORMAT
            and data.get("cpu") == _cpu_record() and data.get("kernels") == kernels_stamp()
            and isinstance(data.get("entries"), dict)):
        return {}
    return data["entries"]


def _save():
    """Write the entries atomically (a failure to write is a warning, never an error: the
    measured value is still used by this process)."""
    global _unwritten
    path = cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with _locked_for_update(path):
            _merge_and_write(path)
    except (OSError, ValueError) as exc:   # ValueError: the path is a device or FIFO
        _unwritten = path
        _say_once(path, _unwritable_text(path, exc), stacklevel=4)
    else:
        _unwritten = None     # every entry of this process is in the file now


def _say_once(subject, text, stacklevel):
    """Report ``text`` about ``subject`` (a cache or lock file) once per process: through
    the CLI's hook (reporting_unwritable_cache) if set, else as a RuntimeWarning.  Once:
    every measurement of a run writes the file (a first `fastmlp train` measures about five
    choices), and five copies of one warning say no more."""
    if subject in _warned_unwritable:
        return
    _warned_unwritable.add(subject)
    if _report_unwritable is not None:
        _report_unwritable(text)
    else:
        warnings.warn(f"fastmlp: {text}", RuntimeWarning, stacklevel=stacklevel)


def _merge_and_write(path):
    """Merge the file's entries into this process's, then replace the file with them."""
    for key, value in _entries_on_disk(path).items():
        _memo.setdefault(key, value)     # another process's measurements since our _load
    data = {"format": FORMAT, "cpu": _cpu_record(), "kernels": kernels_stamp(),
            "entries": dict(sorted(_memo.items()))}
    # atomic_write, as every fastmlp file: its temporary file removed on a failure, and a
    # cache file that is a symlink (dotfiles kept elsewhere) stays one
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=1).encode("utf-8")))


def lock_path(path):
    """The sidecar file whose advisory lock guards the cache file ``path``'s rewrite."""
    return path + ".lock"


@contextlib.contextmanager
def _locked_for_update(path):
    """Hold an exclusive flock on ``lock_path(path)`` for the block, so that the read,
    merge and write of two processes saving at once do not interleave (both read, both
    write: the first one's new entries lost).  The lock file stays (removing it would let
    a third process lock a new file while the second holds the old one).  Where no lock
    can be had (no fcntl, a lock file that cannot be opened, a lock held for more than
    LOCK_WAIT_SECONDS) the block runs unlocked: the merge alone, as before, leaves only
    that narrow race."""
    global _held_lock_fd
    # kept in _held_lock_fd from the moment it is opened: a flock belongs to the open file,
    # so a child forked while it is open would hold the lock as long as the child lives
    fd = _held_lock_fd = _open_lock_file(path)
    if fd is None:
        yield
        return
    try:
        _lock_or_give_up(path, fd)   # not taken: the block runs unlocked, as without fcntl
        yield
    finally:
        _close_lock_file(fd)         # releases the lock


def _close_lock_file(fd):
    global _held_lock_fd
    # not ours any more if a fork in the block closed it in this (child) process: fd may
    # since name another file, which must not be closed
    if _held_lock_fd == fd:
        _held_lock_fd = None
        os.close(fd)


def _after_fork_in_child():
    """A child forked while a save held the lock (a multiprocessing worker started by
    another thread, or in the block itself) must not keep it: every later save of every
    process would wait for it while the child lives.  The in-process lock is made anew: a
    thread of the parent that held it does not exist here to release it."""
    global _held_lock_fd, _lock
    fd, _held_lock_fd = _held_lock_fd, None
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _open_lock_file(path):
    """A descriptor of the lock file (created if missing), or None: no fcntl, or it cannot
    be opened (a read-only directory, a lock path that is a directory).  A lock file this
    user may not write (another user's, in a group-shared cache directory) is opened for
    reading: flock locks a descriptor of either kind."""
    if fcntl is None:
        return None
    # O_NONBLOCK: a FIFO put at the lock path must not make the open wait for a writer
    flags = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        return os.open(lock_path(path), os.O_RDWR | os.O_CREAT | flags, 0o666)
    except PermissionError:
        pass
    except OSError:
        return None
    try:
        return os.open(lock_path(path), os.O_RDONLY | flags)
    except OSError:
        return None


def _lock_or_give_up(path, fd):
    """Take the lock on fd, waiting up to LOCK_WAIT_SECONDS the first time it is held
    elsewhere that long; after that, for the rest of the process, without waiting (said
    once): the holder is stuck, and each save would wait in vain again."""
    lock = lock_path(path)
    if _acquire(fd, 0.0 if lock in _stuck_locks else LOCK_WAIT_SECONDS) is not False:
        return
    if lock not in _stuck_locks:
        _stuck_locks.add(lock)
        # frames: _say_once, here, the generator, contextlib's __enter__, _save, _cached,
        # and its caller (blas_crossover, ...), as the unwritable cache's warning
        _say_once(lock, _stuck_lock_text(lock), stacklevel=7)


def _acquire(fd, seconds):
    """Take the exclusive lock on fd, waiting up to ``seconds``: True if it was taken,
    False if it was held elsewhere all that time, None on a file system without flock."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        except OSError:        # ENOLCK, EINVAL: this file system does not lock
            return None


def _stuck_lock_text(lock):
    """Why this process saves the tuning cache without its lock from now on, and what to do."""
    return (f"the tuning cache's lock {lock} has been held by another process for more "
            f"than {LOCK_WAIT_SECONDS:g} s, so this process saves the cache without it "
            "from now on (two runs measuring at once may then lose each other's new "
            f"entries, measured again later): `fuser -v {lock}` names the holder, whose "
            "end frees the lock")


def _unwritable_text(path, exc):
    """Why the cache file could not be written, what that costs and what to do about it."""
    folder = os.path.dirname(path)
    if isinstance(exc, FileExistsError) and not os.path.isdir(folder):
        why = f"{folder} is a file, not a directory"    # makedirs' "File exists" said plainly
    elif isinstance(exc, OSError) and exc.strerror and exc.filename:
        why = f"{exc.strerror}: {exc.filename}"
    else:
        why = str(exc)
    return (f"could not write the tuning cache {path} ({why}), so later runs measure this "
            "CPU's kernels again: set FASTMLP_CACHE_DIR to a writable directory, or "
            "FASTMLP_NO_TUNE=1 to skip measuring (static defaults)")


def unwritten_cache():
    """The cache file this process's latest measurement could not be written to, or None
    (written, or nothing measured): the CLI says a first run's measurements were not cached
    rather than that later runs are spared them."""
    return _unwritten


@contextlib.contextmanager
def reporting_unwritable_cache(say):
    """Within the block, a cache file that cannot be written is reported by calling
    ``say(text)`` (once per path and process, as the warning is) instead of as a
    RuntimeWarning: the CLI prints it as one line of its own."""
    global _report_unwritable
    with _lock:
        before, _report_unwritable = _report_unwritable, say
    try:
        yield
    finally:
        with _lock:
            _report_unwritable = before


def _number(x):   # None: "never" / "none"
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)
                         and x >= 0)     # NaN fails x >= 0


def _tile(x):
    return x is None or (type(x) is int and x in BLAS_TILES)


def _valid_entry(key, v):
    """Whether a stored value has the form its kind of entry takes.  A file edited by hand
    or damaged in a way that is still JSON must cost a new measurement, never an exception
    (or a nonsense choice) inside a kernel call."""
    kind = key.partition("/")[0]
    if kind in ("crossover", "blas-layers"):
        return _number(v)
    if kind == "parallel-work":
        return v is not None and _number(v) and not math.isinf(v)
    if kind == "blas-tile":
        return _tile(v)
    if kind == "forward-blas":
        return (isinstance(v, dict) and set(v) == {"layers", "tile"} and _number(v["layers"])
                and _tile(v["tile"]))
    if kind in ("layerwise", "one-thread", "forward-skip-zeros"):
        return isinstance(v, bool)
    if kind == "auto":
        return isinstance(v, str)
    return True


def _cached(key, measure, refresh=False):
    """The value stored for key, else (or if the stored value is not of its kind's form)
    measure() stored (this process and the file)."""
    global _measure_depth, _measure_seconds
    with _lock:
        entries = _load()
        if not refresh and key in entries and _valid_entry(key, entries[key]):
            return entries[key]
        if _measure_depth == 0:
            _announce_first(key)
        t0 = time.perf_counter()
        _measure_depth += 1
        try:
            value = measure()
        finally:
            _measure_depth -= 1
            if _measure_depth == 0:    # a measurement inside another counts once
                _measure_seconds += time.perf_counter() - t0
        entries[key] = value
        _save()
        return value


def _announce_first(key):
    global _announce
    fn, _announce = _announce, None
    if fn is not None:
        fn(key)


@contextlib.contextmanager
def announcing_measurements(say_first):
    """Within the block, call ``say_first(key)`` when the first measurement of a choice
    missing from the cache starts (once; key: what is measured), so that a command can say
    why its first run on a machine pauses before training: with an empty cache that pause
    is several seconds, and right after installing, with Numba compiling its kernels inside
    the measurement, about half a minute of silence (22 s on a 2-core AMD EPYC)."""
    global _announce
    with _lock:
        before, _announce = _announce, say_first
    try:
        yield
    finally:
        with _lock:
            _announce = before


def measuring_seconds():
    """Seconds this process has spent measuring choices missing from the cache (first use
    of a shape class on this CPU, or after the kernels changed): the CLI says how much of a
    run that was, since it is paid once per machine."""
    return _measure_seconds


def clear_memo():
    """Forget what this process read from the cache (the next use reads the file again),
    which cache files it could not write and which locks it waited for in vain (as a new
    process: the next failure warns)."""
    global _loaded_path, _unwritten
    with _lock:
        _memo.clear()
        _loaded_path = None
        _unwritten = None
        _warned_unwritable.clear()
        _stuck_locks.clear()


# ---------------------------------------------------------------------------------------
# BLAS crossover
# ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def _forcing(name, value):
    """Set this Python thread's forced answer `name` for the block (None: measure)."""
    prev = getattr(_forced, name, None)
    setattr(_forced, name, value)
    try:
        yield
    finally:
        setattr(_forced, name, prev)


def forced_crossover(value):
    """``with forced_crossover(0):`` every layer uses BLAS (inf: none does) in this Python
    thread, without measuring (tests, and the measurement itself)."""
    return _forcing("value", float(value))


def blas_crossover(backend, dtype, largest=None):
    """The product size (rows x n_in x n_out) from which `backend` uses BLAS for a layer.

    `largest`: the largest product the caller compares with it.  When that is below every
    crossover a measurement can find (crossover_floor), the answer is inf without
    measuring: no such layer would go to BLAS whatever the measurement found.  On a first
    run that spares the measurement, and the compilation of the Numba wide-layer kernels
    it times (~10 s of CPU on the 2-vCPU Zen 4), for nets like the README's 4-64-64-1 @
    256, whose layers are far below it."""
    forced = getattr(_forced, "value", None)
    if forced is not None:
        return forced
    if tuning_disabled():
        return DEFAULT_CROSSOVER
    if largest is not None and largest < crossover_floor():
        return math.inf
    dt = _dtname(dtype)
    key = f"crossover/{backend}/{dt}/t{_nthreads()}"
    v = _cached(key, lambda: measure_crossover(backend, dt))
    return math.inf if v is None else float(v)


def crossover_floor():
    """The smallest crossover measure_crossover can return: the product of its narrowest
    layer at its larger batch (it takes the larger of the two batch sizes' answers)."""
    return float(16 * _CROSS_ROWS * min(_CROSS_WIDTHS) ** 2)


def forced_layerwise(value):
    """``with forced_layerwise(False):`` prefer_layerwise answers `value` in this Python
    thread without measuring (the measurement itself, tests)."""
    return _forcing("layerwise", bool(value))


def prefer_layerwise(backend, sizes, rows, dtype):
    """Whether `backend` should run a net with a layer above its BLAS crossover layer by
    layer over the whole batch (True) rather than in its per-thread tiles (False).  Which
    wins depends on the shape, not only on the product size (the Numba tiles call BLAS too,
    on smaller products, but keep activations in cache), so it is measured per shape class.
    Static default (FASTMLP_NO_TUNE=1, or a forced crossover): True."""
    forced = getattr(_forced, "layerwise", None)
    if forced is not None:
        return forced
    if getattr(_forced, "value", None) is not None or tuning_disabled():
        return True
    dt = np.dtype(dtype).name
    key = f"layerwise/{backend}/{dt}/{shape_class(sizes, rows)}/t{_nthreads()}"
    return bool(_cached(key, lambda: measure_layerwise(backend, sizes, rows, dt)))


def measure_layerwise(backend, sizes, rows, dtype, budget=0.6):
    """Time the loss and gradient at (sizes, rows) both ways; True if layer by layer won."""
    from . import get_backend
    mod = get_backend(backend)
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    sizes = np.array([int(v) for v in sizes])
    rows = int(min(rows, 8192))
    x = rng.standard_normal((rows, sizes[0])).astype(dt)
    y = rng.standard_normal((rows, sizes[-1])).astype(dt)
    n_params = sum((a + 1) * b for a, b in itertools.pairwise(sizes))
    params = (rng.standard_normal(n_params) * 0.05).astype(dt)
    acts = np.array([1] * (len(sizes) - 2) + [0])
    step = functools.partial(mod.mlp_loss_grad, np.empty_like(params), params, x, y,
                             np.ones(rows, dt), sizes, acts, 2)
    times = {}
    for way in (False, True):
        with forced_layerwise(way):
            times[way] = _time(step, budget / 2)
    return times[True] < times[False]


def forced_blas_layers(value):
    """``with forced_blas_layers(w):`` blas_layers answers w (layers of at least w weights
    through BLAS; inf: none; None: the product crossover) in this Python thread without
    measuring (the measurement itself, tests)."""
    return _forcing("layers", -1.0 if value is None else float(value))


def blas_layers(backend, sizes, batch_size, dtype):
    """Which layers `backend`'s training epoch should run through BLAS for a net of these
    sizes at this batch size: those of at least the returned number of weights (n_in x
    n_out; inf: none), or None for the product crossover (``blas_crossover``).  Measured
    per shape class on the net itself, every way of splitting its layers by size timed on
    a short training epoch, because the product size alone does not tell: with the
    crossover, C trained 5-128-128-128-1 @ 1024 at 0.96 M samples/s by hand and at 1.23 M
    with its 128 x 128 layers through BLAS (Intel Xeon, 2 threads).  The C backend only
    (Numba has prefer_layerwise).  None with FASTMLP_NO_TUNE=1 or a forced crossover."""
    forced = getattr(_forced, "layers", None)
    if forced is not None:
        return None if forced < 0 else forced
    if (backend != "c" or getattr(_forced, "value", None) is not None or tuning_disabled()
            or not _has_blas(backend)):
        return None
    dt = np.dtype(dtype).name
    key = f"blas-layers/{backend}/{dt}/{shape_class(sizes, batch_size)}/t{_nthreads()}"
    v = _cached(key, lambda: measure_blas_layers(backend, sizes, batch_size, dt))
    return math.inf if v is None else float(v)


def _has_blas(backend):
    from . import get_backend
    return bool(getattr(get_backend(backend), "has_blas", lambda: False)())


def measure_blas_layers(backend, sizes, batch_size, dtype, budget=1.0):
    """Time a short training epoch at (sizes, batch_size) with no layer through BLAS, then
    with the layers of at least w weights for each distinct layer size w, in turns.  The
    answer (None: no layer through BLAS) sends one more size of layer to BLAS only when
    that is at least 3 % faster: 5-32-32-1 @ 256 "chose" BLAS for its 32 x 32 layer by
    1 %, a tie that the next measurement could reverse."""
    bs = int(min(batch_size, 8192))
    epoch = _training_epoch(backend, sizes, bs, _timed_batches(sizes, bs), dtype)
    weights = sorted({int(a) * int(b) for a, b in itertools.pairwise(sizes)}, reverse=True)
    ways = {None: lambda: _with_layers(math.inf, epoch)}
    ways.update({w: (lambda w=w: _with_layers(w, epoch)) for w in weights})
    times = _time_interleaved(ways, budget)
    best = None
    for w in weights:   # from BLAS for the widest layers only to BLAS for every layer
        if _faster(times, w, best, 0.97):
            best = w
    return best


def _with_layers(value, fn):
    """fn() with the layers of at least `value` weights through BLAS and C's default tile:
    the tile is chosen after the layers (measure_blas_tile), and left free here a timed
    call would measure and cache a tile for a layer choice that may lose."""
    with forced_blas_layers(value), forced_blas_tile(None):
        fn()


#: tile rows blas_tile chooses from (the C kernels' default, 1024, last)
BLAS_TILES = (256, 512, 1024)


def forced_blas_tile(value):
    """``with forced_blas_tile(rows):`` blas_tile answers `rows` (None: the C default) in
    this Python thread without measuring (the measurement itself, tests)."""
    return _forcing("tile", 0 if value is None else int(value))


def blas_tile(backend, sizes, batch_size, dtype):
    """The tile rows `backend`'s training epoch should use when some of its layers go to
    BLAS (blas_layers), or None for the kernels' default (1024).  Taller tiles run BLAS
    nearer its peak; shorter ones keep a tile's activations nearer the core.  On the Intel
    Xeon, 5-512-512-1 @ 4096 (C, 2 threads) trained ~5 % faster with tiles of 256 or 512
    rows than with 1024 (kernel 566-583 ms against 595-605 ms for 100k rows x 9 epochs), so
    the tile is measured per shape class like the layer choice, not fixed.  The C backend
    only; None with FASTMLP_NO_TUNE=1, a forced crossover, no layer through BLAS, or a batch
    whose per-thread rows do not exceed the smallest candidate."""
    forced = getattr(_forced, "tile", None)
    if forced is not None:
        return forced or None
    if (backend != "c" or getattr(_forced, "value", None) is not None or tuning_disabled()
            or not _has_blas(backend)):
        return None
    layers = blas_layers(backend, sizes, batch_size, dtype)
    if layers is None or layers == math.inf:
        return None
    if not _tile_has_choice(batch_size):
        return None
    dt = np.dtype(dtype).name
    key = f"blas-tile/{backend}/{dt}/{shape_class(sizes, batch_size)}/t{_nthreads()}"
    v = _cached(key, lambda: measure_blas_tile(backend, sizes, batch_size, dt))
    return None if v is None else int(v)


def _tile_has_choice(batch_size):
    """More rows per thread than the smallest tile: below that every candidate covers a
    thread's rows and there is nothing to choose."""
    return -(-int(batch_size) // _nthreads()) > BLAS_TILES[0]


def measure_blas_tile(backend, sizes, batch_size, dtype, budget=1.0):
    """Time a short training epoch at (sizes, batch_size) with each tile of BLAS_TILES, in
    turns; the answer (None: the default) is a shorter tile only when it is at least 3 %
    faster than the default, so that a tie does not flip between measurements."""
    bs = int(min(batch_size, 8192))
    epoch = _training_epoch(backend, sizes, bs, _timed_batches(sizes, bs), dtype)
    ways = {t: (lambda t=t: _with_tile(t, epoch)) for t in BLAS_TILES}
    times = _time_interleaved(ways, budget)
    return _shorter_tile(times)


def _shorter_tile(times):
    """The tile of BLAS_TILES with the lowest time relative to the default's (the last) in
    the same rounds, if it is at least 3 % faster; else None (the default)."""
    default = BLAS_TILES[-1]
    best = min(BLAS_TILES, key=lambda t: _relative(times, t, default))
    return best if best != default and _faster(times, best, default, 0.97) else None


def _with_tile(rows, fn):
    with forced_blas_tile(rows):
        fn()


# ---------------------------------------------------------------------------------------
# Inference (mlp_forward): its own BLAS layers and tile
# ---------------------------------------------------------------------------------------

#: multiply-adds of the forward pass measure_forward_blas times (rows = this / the net's
#: multiply-adds per row, at least FORWARD_MIN_ROWS a thread): ~50 ms on two cores, long
#: enough that the threads' wake-up (~0.1 ms) is not what is timed; and the rows a thread
#: of an inference call must have before that call measures
FORWARD_MACS = 2.5e8
FORWARD_MIN_ROWS = 4096


def forward_blas(backend, sizes, rows, dtype):
    """(layers, tile) for `backend`'s inference pass (mlp_forward) over `rows` rows: the
    layers of at least `layers` weights go through BLAS (inf: none; None: the product
    crossover decides) with tiles of `tile` rows (None: C's default, 1024).  Inference has
    no backward pass and no optimizer step, so what trains faster (blas_layers /
    blas_tile) need not predict faster: measured on forward passes, once per net class
    (layers, widest size) and thread count, whatever the rows beyond that.  The C backend
    only; (None, None) with FASTMLP_NO_TUNE=1, a forced crossover, no BLAS, or fewer than
    FORWARD_MIN_ROWS rows a thread: a short pass takes the defaults rather than wait for a
    measurement (predicting a few hundred objects should not take a second the first
    time), and its speed hardly depends on the choice."""
    fl, ft = getattr(_forced, "layers", None), getattr(_forced, "tile", None)
    if fl is not None or ft is not None:
        return (None if fl is None or fl < 0 else fl), (ft or None)
    if (backend != "c" or int(rows) < FORWARD_MIN_ROWS * _nthreads()   # cheapest first
            or getattr(_forced, "value", None) is not None or tuning_disabled()
            or not _has_blas(backend)):
        return None, None
    dt = _dtname(dtype)
    v = _cached(_forward_key(backend, sizes, dt),
                lambda: measure_forward_blas(backend, sizes, dt))
    return (math.inf if v["layers"] is None else float(v["layers"])), v["tile"]


def _forward_key(backend, sizes, dtype, kind="forward-blas"):
    """The cache key of forward_blas (and of forward_skip_zeros, `kind`): the net class
    (layers, widest size rounded up to 2^k) and the thread count, no batch size (the tile,
    not the rows, is what is chosen)."""
    sizes = [int(s) for s in sizes]
    return (f"{kind}/{backend}/{np.dtype(dtype).name}/L{len(sizes) - 1}"
            f"-w{_pow2(max(sizes))}/t{_nthreads()}")


def measure_forward_blas(backend, sizes, dtype, budget=1.0):
    """{"layers": min weights or None (no layer through BLAS), "tile": rows or None (the
    default)}: forward passes of random inputs through a ReLU net of these sizes timed in
    turns, first with no layer through BLAS and with the layers of at least w weights for
    each distinct layer size w (one more size only for a gain of at least 3 %, as
    measure_blas_layers), then, when a layer goes to BLAS, with each tile of BLAS_TILES (a
    shorter one than the default only for a gain of at least 3 %, as measure_blas_tile)."""
    fwd = _forward_pass(backend, sizes, dtype)
    weights = sorted({int(a) * int(b) for a, b in itertools.pairwise(sizes)}, reverse=True)
    ways = {None: lambda: _with_layers(math.inf, fwd)}
    ways.update({w: (lambda w=w: _with_layers(w, fwd)) for w in weights})
    times = _time_interleaved(ways, budget / 2)
    layers = None
    for w in weights:
        if _faster(times, w, layers, 0.97):
            layers = w
    if layers is None:
        return {"layers": None, "tile": None}

    def tiled(t):
        with forced_blas_layers(layers), forced_blas_tile(t):
            fwd()
    times = _time_interleaved({t: (lambda t=t: tiled(t)) for t in BLAS_TILES}, budget / 2)
    return {"layers": layers, "tile": _shorter_tile(times)}


def _forward_pass(backend, sizes, dtype):
    """A callable running `backend`'s mlp_forward on random standardised inputs through a
    ReLU net of these sizes with He-scaled random weights (about half the hidden
    activations zero, as in a trained net): FORWARD_MACS multiply-adds."""
    from . import get_backend
    mod = get_backend(backend)
    dt = np.dtype(dtype)
    sizes = np.array([int(v) for v in sizes])
    macs = sum(int(a) * int(b) for a, b in itertools.pairwise(sizes.tolist()))
    rows = int(max(FORWARD_MIN_ROWS * _nthreads(), math.ceil(FORWARD_MACS / macs)))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, sizes[0])).astype(dt)
    parts = []
    for a, b in itertools.pairwise(sizes.tolist()):
        parts += [rng.standard_normal(a * b) * math.sqrt(2.0 / a), np.zeros(b)]
    params = np.concatenate(parts).astype(dt)
    acts = np.array([1] * (len(sizes) - 2) + [0])
    out = np.empty((rows, int(sizes[-1])), dt)
    return lambda: mod.mlp_forward(out, params, x, sizes, acts)


def forced_skip_zeros(value):
    """``with forced_skip_zeros(True / False):`` forward_skip_zeros answers `value` (None:
    measure) in this Python thread without measuring (the measurement itself, tests).  The
    C backend asks it from FORWARD_MIN_ROWS rows only: smaller calls keep C's default."""
    return _forcing("skip_zeros", value)


def forward_skip_zeros(backend, sizes, rows, dtype, applies=None):
    """Whether C's float32 inference pass (mlp_forward) over `rows` rows should skip the
    zero inputs of its layers that follow a ReLU (csrc/sparse.c: the same sums without
    their exact zero products), or None for C's default (skip where a tile's first rows
    have at least 20 % zeros).  Which is faster differs between CPUs: skipping was 13-16 %
    faster for 5-64-64-1 on a Zen 3 VM, where the dense kernel ran 256-bit vectors, while
    on a Zen 4 VM (zmm vectors) 5-32-32-1 predicted 53 M rows/s without it and 34-40 M
    with it (2 threads, 4M rows of a trained net, three alternating processes each).  So it
    is measured, once per net class (layers, widest size) and thread count, on forward
    passes of a ReLU net at about half its hidden activations zero, as a trained net has.
    `applies()` (when given) says whether the net has a layer that can skip (the C
    backend's skips_zeros): asked last, only where the answer would otherwise be looked
    up or measured, because this runs on every inference call.  None as forward_blas
    (FASTMLP_NO_TUNE=1, a forced crossover, or fewer than FORWARD_MIN_ROWS rows a
    thread: a short pass takes the default rather than wait for a measurement), and for
    a net where nothing can be skipped."""
    forced = getattr(_forced, "skip_zeros", None)
    if forced is not None:
        return bool(forced)
    if (int(rows) < FORWARD_MIN_ROWS * _nthreads() or backend != "c"   # cheapest first
            or np.dtype(dtype) != np.float32
            or getattr(_forced, "value", None) is not None or tuning_disabled()
            or (applies is not None and not applies())):
        return None
    return _cached(_forward_key(backend, sizes, "float32", "forward-skip-zeros"),
                   lambda: measure_forward_skip_zeros(backend, sizes))


def measure_forward_skip_zeros(backend, sizes, budget=1.0):
    """True (skip the zero inputs: C's default) unless forward passes of random inputs
    through a ReLU net of these sizes (_forward_pass), timed in turns with and without
    skipping and no layer through BLAS, ran at least 3 % faster without (as
    measure_forward_blas, a way other than the default must win by both the rounds'
    ratios and the best times)."""
    fwd = _forward_pass(backend, sizes, "float32")

    def way(skip):
        with forced_skip_zeros(skip), forced_blas_layers(math.inf), forced_blas_tile(None):
            fwd()
    times = _time_interleaved({True: lambda: way(True), False: lambda: way(False)},
                              budget / 2)
    return not _faster(times, False, True, 0.97)


def forced_one_thread(value):
    """``with forced_one_thread(True):`` prefer_one_thread answers `value` in this Python
    thread without measuring (the measurement itself, tests)."""
    return _forcing("one_thread", bool(value))


def prefer_one_thread(backend, sizes, batch_size, dtype):
    """Whether `backend`'s fused epoch should run the row slices of each mini-batch one after
    another on the calling thread rather than one per thread.  The arithmetic is the same
    (the same slices, summed in the same order), so the result is the same bit for bit;
    only the speed differs.  Each mini-batch of the Numba epoch is a parallel region, and
    with passive OpenMP waiting its threads sleep between batches: waking them cost more
    than a tiny net's batch (5-32-32-1 @ 256: 2.9 M samples/s on 2 threads, 6.0 M with the
    same two slices on one thread, on the Intel Xeon VM), while a wide net gains from the
    threads.  Measured per shape class.  Static default (FASTMLP_NO_TUNE=1, one thread
    requested): False."""
    forced = getattr(_forced, "one_thread", None)
    if forced is not None:
        return forced
    if tuning_disabled() or _nthreads() <= 1:
        return False
    dt = np.dtype(dtype).name
    key = f"one-thread/{backend}/{dt}/{shape_class(sizes, batch_size)}/t{_nthreads()}"
    return bool(_cached(key, lambda: measure_one_thread(backend, sizes, batch_size, dt)))


def measure_one_thread(backend, sizes, batch_size, dtype, budget=0.8):
    """Time a short training epoch at (sizes, batch_size) both ways on random data; True if
    the slices one after another on one thread won."""
    bs = int(min(batch_size, 8192))
    epoch = _training_epoch(backend, sizes, bs, _timed_batches(sizes, bs), dtype)
    times = {}
    for way in (False, True):
        with forced_one_thread(way):
            times[way] = _time(epoch, budget / 2)
    return times[True] < times[False]


# ---------------------------------------------------------------------------------------
# Threads for C's element-wise kernels
# ---------------------------------------------------------------------------------------

DEFAULT_PARALLEL_MIN_WORK = 300_000.0   # ns, C's FM_PAR_MIN_WORK_NS


def parallel_min_work(backend="c", refresh=False):
    """The one-thread work, in ns, from which C's element-wise kernels (optimizer updates,
    activations, sigmoid_pair; csrc/internal.h estimates each call's work) split over the
    threads, measured per machine and thread count (c.measure_parallel_min_work).  With
    passive waiting the team's overhead was ~280 us on the 2-vCPU Zen 3 VM: a plain SGD step
    of 262,144 float32 took 236 us on two threads and 80 us on one under the former fixed
    32,768 elements.  Static default (FASTMLP_NO_TUNE=1, one thread requested):
    DEFAULT_PARALLEL_MIN_WORK."""
    n = _nthreads()
    if tuning_disabled() or n <= 1:
        return DEFAULT_PARALLEL_MIN_WORK
    key = f"parallel-work/{backend}/t{n}"
    return float(_cached(key, lambda: _backend_module(backend).measure_parallel_min_work(),
                         refresh=refresh))


def _backend_module(name):
    from . import get_backend
    return get_backend(name)


def _training_epoch(backend, sizes, batch_size, n_batches, dtype):
    """A callable running one training epoch of `backend` on random data, from the same
    start every call: n_batches shuffled batches of batch_size rows, ReLU hidden layers,
    Adam (lr 1e-4), BCE for one output, cross-entropy for several.  What every measurement
    here times, because it is what fit runs."""
    from .. import codes
    from . import get_backend
    mod = get_backend(backend)
    dt = np.dtype(dtype)
    sizes = np.array([int(v) for v in sizes])
    bs, nb = int(batch_size), int(n_batches)
    n, k = bs * nb, int(sizes[-1])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, sizes[0])).astype(dt)
    y = rng.integers(0, 2 if k == 1 else k, size=(n, 1)).astype(dt)
    sw = np.ones(n, dt)
    perm = rng.permutation(n).astype(np.int64)   # shuffled, as an epoch is
    n_params = sum((a + 1) * b for a, b in itertools.pairwise(sizes.tolist()))
    p0 = (rng.standard_normal(n_params) * 0.05).astype(dt)
    acts = np.array([1] * (len(sizes) - 2) + [0])
    lrs, hyper = np.full(nb, 1e-4), codes.hyper_vector("adam", lr=1e-4)
    opt, loss = codes.optimizer_code("adam"), 0 if k == 1 else 1

    def epoch():
        mod.train_epoch(p0.copy(), np.empty_like(p0), np.zeros((3, n_params), dt),
                        np.empty(nb), x, y, sw, perm, bs, lrs, 0, opt, hyper, sizes, acts,
                        loss)
    return epoch


def _timed_batches(sizes, batch_size):
    """Mini-batches in a timed epoch of (sizes, batch_size): about 2 GFLOP of training (6 x
    parameters x rows), 4 to 64 batches.  A 4-batch epoch of a tiny net lasts ~0.1 ms and
    times the call's fixed costs (waking threads), not the training rate a real epoch
    sees: it picked the Numba backend for 5-32-32-1 @ 256, which then trained at half the
    speed of C."""
    n_params = sum((int(a) + 1) * int(b) for a, b in itertools.pairwise(sizes))
    return int(min(64, max(4, math.ceil(2e9 / (6.0 * n_params * batch_size)))))


# os.cpu_count() reads /sys on every call (~10 us), and _nthreads runs on every kernel call
# that reads a tuned choice
_CPUS = os.cpu_count() or 1


def _nthreads():
    n = _threads.requested()
    return n if n is not None else _CPUS


def _time(fn, budget):
    """The best of repeated fn() runs within about `budget` seconds (at least 2 runs)."""
    fn()  # warm up (compilation, first-touch of buffers)
    best, spent, runs = math.inf, 0.0, 0
    while runs < 2 or (spent < budget and runs < 50):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best


def measure_crossover(backend, dtype, budget=1.0):
    """Measure the crossover of `backend` (None: BLAS never won, i.e. infinite): short
    training epochs (Adam, BCE, 4 batches) of nets shaped like the ones trained here,
    5-n-n-1 (ReLU), at 256 and at 4096 rows a batch, every layer through the hand-written
    kernels, then every layer through BLAS.  The crossover is the smallest product of the
    n x n layer (rows x n^2 multiply-adds) from which BLAS wins at every larger size at
    both batch sizes: a product size alone does not tell a wide layer on few rows (where
    BLAS won) from a narrow one on many rows (where it lost: C trained 5-32-32-1 @ 4096 at
    11.2 M samples/s through BLAS, 14.4 M by hand).  Training epochs and this shape, not
    one loss-and-gradient call of an n-n-n net, because that is what fit runs: with 2
    threads the C loss-and-gradient of a 512-512-512 net ran no faster through BLAS, and
    the crossover came out "never", while its epochs train 5-512-512-1 at 256 rows 46 %
    faster through BLAS (Intel Xeon)."""
    cross = 0.0
    for rows in (_CROSS_ROWS, 16 * _CROSS_ROWS):
        c = _crossover_at(backend, dtype, rows, budget / 2)
        if c is None:
            return None
        cross = max(cross, c)
    return cross


def _crossover_at(backend, dtype, rows, budget):
    per = budget / len(_CROSS_WIDTHS)
    wins = []
    for n in _CROSS_WIDTHS:
        epoch = _training_epoch(backend, (5, n, n, 1), rows, 4, dtype)
        t = _time_interleaved({"hand": lambda: _with_crossover(math.inf, epoch),
                               "blas": lambda: _with_crossover(0, epoch)}, per)
        # a tie (within 5 %) counts for BLAS: one noisy tie must not move the crossover to
        # "never" when BLAS wins clearly at the larger sizes
        wins.append((rows * n * n, _faster(t, "blas", "hand", 1.05)))
    for i, (macs, _) in enumerate(wins):
        if all(won for _, won in wins[i:]):
            return float(macs)
    return None


def _with_crossover(value, fn):
    with forced_crossover(value):
        fn()


# ---------------------------------------------------------------------------------------
# The backend "auto" stands for
# ---------------------------------------------------------------------------------------

def _pow2(v):
    return 1 << max(0, int(v) - 1).bit_length()


def shape_class(sizes, batch_size):
    """'L<layers>-w<widest, rounded up to 2^k>-b<batch, rounded up to 2^k>'."""
    sizes = [int(s) for s in sizes]
    return f"L{len(sizes) - 1}-w{_pow2(max(sizes))}-b{_pow2(batch_size)}"


def _fast_backends():
    from . import available_backends
    avail = available_backends()
    return [name for name in DEFAULT_ORDER if avail[name][0]]


def choose_backend(sizes, batch_size, dtype, refresh=False):
    """The backend for training a net of these layer sizes at this batch size and dtype:
    the fastest measured for its shape class on this CPU (cached), or with
    FASTMLP_NO_TUNE=1 the first available of DEFAULT_ORDER.  Always an available one."""
    cands = _fast_backends()
    fast = [c for c in cands if c != "numpy"]
    if len(fast) <= 1:
        return (fast or cands)[0]
    if tuning_disabled():
        return cands[0]
    dt = np.dtype(dtype).name
    key = f"auto/{dt}/{shape_class(sizes, batch_size)}/t{_nthreads()}"
    name = _cached(key, lambda: measure_backends(sizes, batch_size, dt, fast),
                   refresh=refresh)
    return name if name in cands else cands[0]  # a backend no longer built: the default


def measure_backends(sizes, batch_size, dtype, names, budget=1.5):
    """Time one short training epoch (Adam, BCE or cross-entropy) on each named backend at
    the representative shape of the class, in turns; the first name (DEFAULT_ORDER's) unless
    a later one is faster both in the rounds' ratios and in its best time (_faster)."""
    nb = _timed_batches(sizes, int(batch_size))
    epochs = {name: _training_epoch(name, sizes, batch_size, nb, dtype) for name in names}
    times = _time_interleaved(epochs, budget)
    best = names[0]
    for name in names[1:]:
        if _faster(times, name, best, 1.0):
            best = name
    return best


def _time_interleaved(fns, budget):
    """{name: [its time in each round]} of the named calls timed in turns (every name once
    per round, at least 3 rounds, within about `budget` seconds) after one warm-up call
    each: the speed of a VM drifts within seconds, and timing one backend after the other
    let a slow spell land on one of them (auto then trained 5-128-128-128-1 @ 4096 at 88 %
    of the faster backend)."""
    for fn in fns.values():
        fn()  # warm up: compilation, this shape's own measured choices, first touch
    times = {name: [] for name in fns}
    spent, rounds = 0.0, 0
    while rounds < 3 or (spent < budget and rounds < 50):
        for name, fn in (fns.items() if rounds % 2 == 0 else reversed(list(fns.items()))):
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            times[name].append(dt)
            spent += dt
        rounds += 1
    return times


def _relative(times, a, b):
    """The median over rounds of a's time divided by b's time in the same round (below 1:
    a is faster)."""
    return float(np.median([x / y for x, y in zip(times[a], times[b])]))


def _faster(times, a, b, margin):
    """Whether way a beat way b by `margin` (a's time < margin x b's) both in the median of
    the rounds' ratios and in the best time of each.  Within a round the host's slow spells
    fall on both ways; the best time alone let one lucky round decide: 5-32-32-1 @ 256 went
    to BLAS for every layer after one such measurement and then trained ~11 % slower than
    by hand (medians of 8 alternating processes, AMD EPYC), while the rounds' ratios put
    BLAS 4-17 % behind in each of 8 measurements.  With 3 or 4 rounds of a noisy host, the
    ratios alone flip as easily (C against Numba at 5-512-512-1 @ 4096), so a way other than
    the default must win by both."""
    return _relative(times, a, b) < margin and min(times[a]) < margin * min(times[b])


# ---------------------------------------------------------------------------------------
# Explicit measurement (``fastmlp tune``)
# ---------------------------------------------------------------------------------------

# The benchmark grid (fastmlp.bench.modes.GRID, which the backends must not import): (sizes,
# batch size).
GRID = (((5, 32, 32, 1), 256), ((5, 32, 32, 1), 4096), ((5, 128, 128, 128, 1), 256),
        ((5, 128, 128, 128, 1), 1024), ((5, 128, 128, 128, 1), 4096),
        ((5, 512, 512, 1), 256), ((5, 512, 512, 1), 4096))


def tune(dtypes=("float32",), shapes=GRID, budget=1.0):
    """Measure again, and store, every crossover of the available fast backends and the
    "auto" choice of each (sizes, batch) in shapes.  Returns {"crossover": {(backend,
    dtype): macs or None}, "layerwise": {(sizes, batch, dtype): bool} (Numba, where a layer
    reaches its crossover), "blas_layers": {(sizes, batch, dtype): min weights or None} (C,
    with a BLAS), "blas_tile": {(sizes, batch, dtype): rows or None} (C, where a layer goes
    to BLAS), "forward": {(sizes, dtype): {"layers": ..., "tile": ...}} (C's inference
    pass, per net of shapes), "skip_zeros": {(sizes, dtype): bool} (C's float32 inference
    pass, per net of shapes with a layer that can skip zero inputs: forward_skip_zeros),
    "one_thread": {(sizes, batch, dtype): bool} (Numba, with more
    than one thread), "auto": {(sizes, batch, dtype): backend}, "parallel_work": ns (C, with
    more than one thread: parallel_min_work), "path": cache file}."""
    out = {"crossover": {}, "layerwise": {}, "blas_layers": {}, "blas_tile": {},
           "forward": {}, "skip_zeros": {}, "one_thread": {}, "auto": {},
           "path": cache_path()}
    fast = [b for b in _fast_backends() if b != "numpy"]
    if "c" in fast and _nthreads() > 1:
        out["parallel_work"] = parallel_min_work("c", refresh=True)
    for dt in (np.dtype(d).name for d in dtypes):
        for b in fast:
            key = f"crossover/{b}/{dt}/t{_nthreads()}"
            out["crossover"][(b, dt)] = _cached(
                key, lambda b=b, dt=dt: measure_crossover(b, dt, budget), refresh=True)
        for sizes, bs in shapes:
            sz = tuple(int(v) for v in sizes)
            if "numba" in fast:  # numba's layer-by-layer vs tiles choice, where it applies
                cross = out["crossover"].get(("numba", dt))
                rows = min(bs, 8192)
                if cross is not None and any(rows * a * b >= cross
                                             for a, b in itertools.pairwise(sizes)):
                    key = f"layerwise/numba/{dt}/{shape_class(sizes, bs)}/t{_nthreads()}"
                    out["layerwise"][(tuple(sizes), bs, dt)] = _cached(
                        key, lambda s=sizes, bs=bs, dt=dt:
                        measure_layerwise("numba", s, bs, dt, budget), refresh=True)
            if "c" in fast and _has_blas("c"):  # before "auto", which times c
                key = f"blas-layers/c/{dt}/{shape_class(sizes, bs)}/t{_nthreads()}"
                w = out["blas_layers"][(tuple(sizes), bs, dt)] = _cached(
                    key, lambda s=sizes, bs=bs, dt=dt:
                    measure_blas_layers("c", s, bs, dt, budget), refresh=True)
                if w is not None and _tile_has_choice(bs):
                    key = f"blas-tile/c/{dt}/{shape_class(sizes, bs)}/t{_nthreads()}"
                    out["blas_tile"][(tuple(sizes), bs, dt)] = _cached(
                        key, lambda s=sizes, bs=bs, dt=dt:
                        measure_blas_tile("c", s, bs, dt, budget), refresh=True)
                if (sz, dt) not in out["forward"]:
                    out["forward"][(sz, dt)] = _cached(
                        _forward_key("c", sz, dt),
                        lambda s=sz, dt=dt: measure_forward_blas("c", s, dt, budget),
                        refresh=True)
            if ("c" in fast and dt == "float32" and (sz, dt) not in out["skip_zeros"]
                    and _backend_module("c").skips_zeros(sz, [1] * (len(sz) - 2) + [0])):
                out["skip_zeros"][(sz, dt)] = _cached(
                    _forward_key("c", sz, dt, "forward-skip-zeros"),
                    lambda s=sz: measure_forward_skip_zeros("c", s, budget), refresh=True)
            if "numba" in fast and _nthreads() > 1:  # before "auto", which times numba
                key = f"one-thread/numba/{dt}/{shape_class(sizes, bs)}/t{_nthreads()}"
                out["one_thread"][(tuple(sizes), bs, dt)] = _cached(
                    key, lambda s=sizes, bs=bs, dt=dt:
                    measure_one_thread("numba", s, bs, dt, budget), refresh=True)
            if len(fast) > 1:
                key = f"auto/{dt}/{shape_class(sizes, bs)}/t{_nthreads()}"
                name = _cached(key, lambda s=sizes, bs=bs, dt=dt:
                               measure_backends(s, bs, dt, fast, budget), refresh=True)
            else:
                name = (fast or ["numpy"])[0]
            out["auto"][(tuple(sizes), bs, dt)] = name
    return out


def cached_entries():
    """What the cache file of this CPU holds ({} if nothing), without measuring."""
    with _lock:
        return dict(_load())
