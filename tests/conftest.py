import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Measured choices (fastmlp.backends.tuning) would make the suite depend on the machine's
# load and write a cache file: tests use the static defaults unless they ask otherwise
# (tests/test_tuning.py, with a temporary cache directory).
os.environ.setdefault("FASTMLP_NO_TUNE", "1")

# The read-only SDSS data lives beside the project root (../shared/data), or where
# FASTMLP_DATA_DIR points.
DATA_DIR = Path(os.environ.get("FASTMLP_DATA_DIR",
                               Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def data_dir():
    return DATA_DIR


def data_file(name):
    """Path of a shared data file, or skip the test (with the reason) when it is absent."""
    p = DATA_DIR / name
    if not p.exists():
        pytest.skip(f"real SDSS data file {p} is absent (set FASTMLP_DATA_DIR)")
    return p


def ugriz_magnitudes(n, rng):
    """{band: float64 magnitudes} of n objects with star / quasar-like colours: r uniform in
    [15, 22], the other bands by normal colour offsets (tests that write catalogs)."""
    t = {"r": rng.uniform(15.0, 22.0, n)}
    t["g"] = t["r"] + rng.normal(0.4, 0.4, n)
    t["u"] = t["g"] + rng.normal(0.9, 0.7, n)
    t["i"] = t["r"] - rng.normal(0.15, 0.2, n)
    t["z"] = t["i"] - rng.normal(0.05, 0.2, n)
    return t


@pytest.fixture(scope="module")
def one_kernel_thread():
    """Single-threaded kernels for a module of tiny fits, so thread start-up on a shared
    2-core machine does not dominate (threading is tested with the backends); the count
    before is restored after.  Use: pytestmark = pytest.mark.usefixtures(...)."""
    from fastmlp import backends
    old = backends.get_num_threads()
    backends.set_num_threads(1)
    yield
    backends.set_num_threads(old if old is not None else max(1, os.cpu_count()))


@pytest.fixture(scope="module")
def client():
    """A local Dask cluster of 2 single-threaded workers, for a test module's Dask runs
    (skipped when the dask extra is not installed)."""
    pytest.importorskip("distributed", reason="distributed is not installed (fastmlp[dask])")
    from fastmlp.distributed import dask as fd
    c = fd.local_client(n_workers=2, threads_per_worker=1)
    yield c
    cluster = c.cluster
    c.close()
    cluster.close()


@pytest.fixture(autouse=True)
def _both_dask_workers(request):
    """A test of the shared Dask cluster starts with both its workers: distributed fit takes
    one shard per worker alive at the call, and tests that expect 'shard 1 of 2' or resume
    a 2-shard checkpoint failed under load when a worker was not (yet, or again) there."""
    if "client" in request.fixturenames:
        request.getfixturevalue("client").wait_for_workers(2, timeout=120)


@pytest.fixture
def tuning_stubs(monkeypatch):
    """Every measurement of fastmlp.backends.tuning replaced by a quick stub that records its
    calls (a list, returned) and gives a value of the right form."""
    from fastmlp.backends import tuning
    calls = []

    def crossover(backend, dtype, budget=1.0):
        calls.append(("crossover", backend, dtype))
        return 12345.0

    def backends_(sizes, batch_size, dtype, names, budget=1.5):
        calls.append(("auto", tuple(sizes), batch_size, dtype))
        return names[-1]
    def layerwise(backend, sizes, rows, dtype, budget=0.6):
        calls.append(("layerwise", backend, tuple(sizes), rows, dtype))
        return True
    monkeypatch.setattr(tuning, "measure_crossover", crossover)
    monkeypatch.setattr(tuning, "measure_backends", backends_)
    def one_thread(backend, sizes, batch_size, dtype, budget=0.8):
        calls.append(("one_thread", backend, tuple(sizes), batch_size, dtype))
        return False
    def blas_layers(backend, sizes, batch_size, dtype, budget=1.0):
        calls.append(("blas_layers", backend, tuple(sizes), batch_size, dtype))
        return None
    monkeypatch.setattr(tuning, "measure_layerwise", layerwise)
    monkeypatch.setattr(tuning, "measure_one_thread", one_thread)
    monkeypatch.setattr(tuning, "measure_blas_layers", blas_layers)

    def blas_tile(backend, sizes, batch_size, dtype, budget=1.0):
        calls.append(("blas_tile", backend, tuple(sizes), batch_size, dtype))
        return None
    monkeypatch.setattr(tuning, "measure_blas_tile", blas_tile)

    def forward_blas(backend, sizes, dtype, budget=1.0):
        calls.append(("forward", backend, tuple(sizes), dtype))
        return {"layers": 320, "tile": None}
    monkeypatch.setattr(tuning, "measure_forward_blas", forward_blas)

    def skip_zeros(backend, sizes, budget=1.0):
        calls.append(("skip_zeros", backend, tuple(sizes)))
        return False
    monkeypatch.setattr(tuning, "measure_forward_skip_zeros", skip_zeros)

    def parallel_work():
        calls.append(("parallel_work",))
        return 123456.0
    from fastmlp.backends import c as c_backend
    monkeypatch.setattr(c_backend, "measure_parallel_min_work", parallel_work)
    return calls


# ---- the C example program (csrc/model_file.c through fastmlp.h) --------------------------
C_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "c"


def c_toolchain_missing():
    """Why examples/c cannot be built here (a text for pytest.skip), or None."""
    if not (C_EXAMPLE / "classify_catalog.c").is_file():
        return "examples/c is not in this checkout (installed package?)"
    if shutil.which("make") is None:
        return "no make on PATH"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return f"no C compiler ({os.environ.get('CC', 'cc')}) on PATH"
    return None


@pytest.fixture(scope="session")
def classify_exe(tmp_path_factory):
    """examples/c/classify_catalog (resolve_columns + gather_features + predict_proba in C),
    built once per session by its Makefile into a directory of this session (parallel
    sessions never share a half-written library)."""
    reason = c_toolchain_missing()
    if reason:
        pytest.skip(reason)
    build = tmp_path_factory.mktemp("c_model_build")
    res = subprocess.run(["make", "-s", "-j2", "-C", str(C_EXAMPLE), "classify",
                          f"BUILD={build}"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"make -C examples/c classify failed:\n{res.stderr[-4000:]}"
    exe = build / "classify_catalog"
    assert exe.is_file()
    return exe


@pytest.fixture
def fresh_tuning_cache(tmp_path, monkeypatch):
    """Tuning on, a fresh cache directory (returned), a fixed made-up CPU, nothing
    remembered from other tests."""
    from fastmlp.backends import cpu, tuning
    monkeypatch.delenv("FASTMLP_NO_TUNE", raising=False)
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path))
    name = "Test Chip C 1"
    ident = {"model": name, "x86_family": None, "x86_model": None, "simd": ["avx"],
             "slug": cpu.cpu_slug(name, None, None)}
    monkeypatch.setattr(tuning, "this_cpu", lambda: dict(ident))
    tuning.clear_memo()
    yield tmp_path
    tuning.clear_memo()
