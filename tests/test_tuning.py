"""fastmlp.backends.tuning: measured choices cached per CPU, FASTMLP_NO_TUNE, bad caches.

Every test runs with its own temporary cache directory.  The measurement functions are
replaced by counting stubs where the test is about the cache (fast, and it shows whether a
value came from the file or from a new measurement); the tests that measure for real check
only that the answer is well-formed, never which backend or path is faster.
"""

import json
import time
import math
import os
import stat
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import backends
from fastmlp.backends import cpu, tuning


def _pretend_cpu(monkeypatch, name, family=None, number=None, simd=("avx", "avx2", "fma")):
    ident = {"model": name, "x86_family": family, "x86_model": number, "simd": list(simd),
             "slug": cpu.cpu_slug(name, family, number)}
    monkeypatch.setattr(tuning, "this_cpu", lambda: dict(ident))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Tuning on, a fresh cache directory, a fixed CPU name, nothing remembered."""
    monkeypatch.delenv("FASTMLP_NO_TUNE", raising=False)
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path))
    _pretend_cpu(monkeypatch, "Test Chip A 9000")
    tuning.clear_memo()
    yield tmp_path
    tuning.clear_memo()


@pytest.fixture
def stubs(tuning_stubs):
    """Every measurement replaced by a stub that records its calls (conftest.py)."""
    return tuning_stubs


def _fast():
    return [n for n, (ok, _) in backends.available_backends().items() if ok and n != "numpy"]


def test_cache_is_written_and_read_back(cache, stubs):
    assert tuning.blas_crossover("numba", np.float32) == 12345.0
    path = cache / "tune-test-chip-a-9000.json"
    assert tuning.cache_path() == str(path)
    data = json.loads(path.read_text())
    assert data["cpu"] == {"model": "Test Chip A 9000", "x86_family": None, "x86_model": None,
                           "simd": ["avx", "avx2", "fma"]}
    assert any(k.startswith("crossover/numba/float32/") for k in data["entries"])
    # a new process (memo cleared) reads the file instead of measuring again
    tuning.clear_memo()
    stubs.clear()
    assert tuning.blas_crossover("numba", "float32") == 12345.0
    assert stubs == []
    # another dtype is another key: measured once
    tuning.blas_crossover("numba", "float64")
    assert stubs == [("crossover", "numba", "float64")]


def test_the_crossover_floor_is_the_least_answer_a_measurement_can_give(monkeypatch):
    # every batch size answering its narrowest layer: measure_crossover's least answer
    monkeypatch.setattr(tuning, "_crossover_at", lambda backend, dtype, rows, budget:
                        float(rows * min(tuning._CROSS_WIDTHS) ** 2))
    assert tuning.measure_crossover("numba", "float32") == tuning.crossover_floor()


def test_the_crossover_is_not_measured_where_no_layer_could_reach_it(cache, stubs):
    """A caller whose largest layer product is below every crossover a measurement can
    give gets inf without a measurement (for its layers the same answer: none to BLAS).
    The README's first `fastmlp train` (4-64-64-1 @ 256) measured the Numba crossover, and
    compiled the wide-layer kernels it times, for nothing."""
    floor = tuning.crossover_floor()
    assert tuning.blas_crossover("numba", "float32", largest=floor - 1) == math.inf
    assert stubs == []
    assert tuning.blas_crossover("numba", "float32", largest=floor) == 12345.0
    assert stubs == [("crossover", "numba", "float32")]
    with tuning.forced_crossover(0):   # a forced value still answers
        assert tuning.blas_crossover("numba", "float32", largest=1) == 0.0


def test_a_numba_epoch_of_a_small_net_does_not_measure_the_crossover(cache, stubs):
    if not backends.available_backends()["numba"][0]:
        pytest.skip("numba unavailable")
    epoch = tuning._training_epoch("numba", (4, 64, 64, 1), 256, 2, "float32")
    epoch()
    assert not [c for c in stubs if c[0] == "crossover"]


def test_time_spent_measuring_is_counted_once_and_not_for_cached_choices(cache, monkeypatch):
    # the CLI reports it (a first run on a CPU pays ~1-20 s of measurement once)
    def crossover(backend, dtype, budget=1.0):
        time.sleep(0.05)
        return 12345.0

    def backends_(sizes, batch_size, dtype, names, budget=1.5):
        tuning.blas_crossover("numba", dtype)     # a measurement inside a measurement
        time.sleep(0.05)
        return names[-1]
    monkeypatch.setattr(tuning, "measure_crossover", crossover)
    monkeypatch.setattr(tuning, "measure_backends", backends_)
    monkeypatch.setattr(tuning, "_fast_backends", lambda: ["numba", "c"])
    t0 = tuning.measuring_seconds()
    tuning.choose_backend([5, 32, 1], 256, "float32")
    spent = tuning.measuring_seconds() - t0
    assert 0.1 <= spent < 0.15 + 0.5     # both sleeps, the inner one not counted twice
    tuning.clear_memo()
    tuning.choose_backend([5, 32, 1], 256, "float32")      # read from the file
    assert tuning.measuring_seconds() - t0 == spent


def test_the_first_measurement_is_announced_once_before_it_runs(cache, monkeypatch):
    # a CLI says why its first run pauses: the announcement comes before the measurement,
    # names the outer one (not the crossover measured inside it), and comes once
    events = []

    def crossover(backend, dtype, budget=1.0):
        events.append("crossover measured")
        return 12345.0

    def backends_(sizes, batch_size, dtype, names, budget=1.5):
        events.append("backends measured")
        tuning.blas_crossover("numba", dtype)
        return names[-1]
    monkeypatch.setattr(tuning, "measure_crossover", crossover)
    monkeypatch.setattr(tuning, "measure_backends", backends_)
    monkeypatch.setattr(tuning, "_fast_backends", lambda: ["numba", "c"])
    with tuning.announcing_measurements(lambda key: events.append(f"announced {key}")):
        tuning.choose_backend([5, 32, 1], 256, "float32")
        tuning.choose_backend([5, 512, 1], 256, "float32")      # measured, not announced
    assert events[0].startswith("announced auto/float32/L2-w32-b256/")
    assert events[1:] == ["backends measured", "crossover measured", "backends measured"]
    events.clear()
    tuning.choose_backend([5, 64, 1], 4096, "float32")          # outside: never announced
    assert events == ["backends measured"]


def test_cached_choices_announce_nothing(cache, stubs):
    tuning.blas_crossover("c", "float32")
    said = []
    with tuning.announcing_measurements(said.append):
        assert tuning.blas_crossover("c", "float32") == 12345.0
    assert said == []


def test_file_is_rewritten_atomically_without_temporary_files(cache, stubs):
    tuning.blas_crossover("c", "float32")
    tuning.blas_crossover("c", "float64")
    # the json file and its lock (tuning.lock_path: kept, not a temporary file)
    assert sorted(p.name for p in cache.iterdir()) == ["tune-test-chip-a-9000.json",
                                                       "tune-test-chip-a-9000.json.lock"]


def test_cache_is_keyed_by_cpu(cache, stubs, monkeypatch):
    tuning.blas_crossover("numba", "float32")
    _pretend_cpu(monkeypatch, "Other Chip B")
    tuning.clear_memo()
    stubs.clear()
    tuning.blas_crossover("numba", "float32")
    assert stubs == [("crossover", "numba", "float32")]  # A's entry is not B's
    assert sorted(p.name for p in cache.iterdir()
                  if not p.name.endswith(".lock")) == ["tune-other-chip-b.json",
                                                       "tune-test-chip-a-9000.json"]
    # a file of another CPU copied under this CPU's name is not trusted either
    (cache / "tune-other-chip-b.json").write_text(
        (cache / "tune-test-chip-a-9000.json").read_text())
    tuning.clear_memo()
    stubs.clear()
    with pytest.warns(RuntimeWarning, match="ignoring the tuning cache"):
        tuning.blas_crossover("numba", "float32")
    assert stubs == [("crossover", "numba", "float32")]


def test_one_name_two_generations_are_two_cpus(cache, stubs, monkeypatch):
    """A VM says "AMD EPYC" for Zen 3 (family 25 model 1, AVX2) and for Zen 4 (model 17,
    AVX-512): their choices go to two files; and a file of the same family and model whose
    SIMD flags differ (a VM that hides AVX-512) is measured again."""
    zen4 = ("avx", "avx2", "avx512f", "fma")
    _pretend_cpu(monkeypatch, "AMD EPYC", 25, 17, zen4)
    tuning.clear_memo()
    tuning.blas_crossover("c", "float32")
    _pretend_cpu(monkeypatch, "AMD EPYC", 25, 1)
    tuning.clear_memo()
    stubs.clear()
    tuning.blas_crossover("c", "float32")
    assert stubs == [("crossover", "c", "float32")]
    assert {"tune-amd-epyc-family25-model1.json",
            "tune-amd-epyc-family25-model17.json"} <= {p.name for p in cache.iterdir()}
    _pretend_cpu(monkeypatch, "AMD EPYC", 25, 17, ("avx", "avx2", "fma"))  # AVX-512 hidden
    tuning.clear_memo()
    stubs.clear()
    with pytest.warns(RuntimeWarning, match="ignoring the tuning cache"):
        tuning.blas_crossover("c", "float32")
    assert stubs == [("crossover", "c", "float32")]


def test_an_older_format_is_measured_again_quietly(cache, stubs, recwarn):
    """A file written by an earlier fastmlp (format 1 recorded the CPU's name only) is not
    an error: its choices are measured again and the file rewritten."""
    path = cache / "tune-test-chip-a-9000.json"
    path.write_text(json.dumps({"format": 1, "cpu": "Test Chip A 9000",
                                "kernels": tuning.kernels_stamp(),
                                "entries": {k: 1.0 for k in ("crossover/numba/float32/t1",
                                                             "crossover/numba/float32/t2")}}))
    tuning.blas_crossover("numba", "float32")
    assert stubs == [("crossover", "numba", "float32")]
    assert json.loads(path.read_text())["format"] == tuning.FORMAT
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_entries_measured_with_other_kernels_are_measured_again(cache, stubs, monkeypatch):
    """A cache written by other kernels (another fastmlp build, Numba or SciPy) is stale:
    its choices are measured again, quietly, and the file is rewritten with this stamp."""
    tuning.blas_crossover("numba", "float32")
    path = cache / "tune-test-chip-a-9000.json"
    assert json.loads(path.read_text())["kernels"] == tuning.kernels_stamp()
    monkeypatch.setattr(tuning, "kernels_stamp", lambda: "another-build")
    tuning.clear_memo()
    stubs.clear()
    tuning.blas_crossover("numba", "float32")
    assert stubs == [("crossover", "numba", "float32")]
    assert json.loads(path.read_text())["kernels"] == "another-build"
    tuning.clear_memo()
    stubs.clear()
    tuning.blas_crossover("numba", "float32")   # the same stamp: read back
    assert stubs == []


@pytest.mark.parametrize("key,bad", [
    ("crossover/numba/float32/t2", "12"), ("crossover/numba/float32/t2", -1.0),
    ("blas-layers/c/float32/L3-w512-b4096/t2", True),
    ("blas-tile/c/float32/L3-w512-b4096/t2", 300),
    ("blas-tile/c/float32/L3-w512-b4096/t2", 512.0),
    ("forward-blas/c/float32/L3-w512/t2", 7),
    ("forward-blas/c/float32/L3-w512/t2", {"layers": 0}),
    ("forward-blas/c/float32/L3-w512/t2", {"layers": "x", "tile": None}),
    ("one-thread/numba/float32/L3-w32-b256/t2", 1), ("auto/float32/L3-w32-b256/t2", 3),
    ("forward-skip-zeros/c/float32/L3-w32/t2", "yes"),
])
def test_malformed_entries_are_measured_again(cache, stubs, monkeypatch, key, bad):
    """A cache file that is valid JSON of the right CPU and kernels but holds a value of the
    wrong form for its key (edited by hand, say) answers a new measurement, never an
    exception or a nonsense choice."""
    monkeypatch.setattr(tuning, "_nthreads", lambda: 2)
    monkeypatch.setattr(tuning, "_has_blas", lambda backend: True)
    monkeypatch.setattr(tuning, "blas_layers", lambda *a: 262144.0)
    ask = {"crossover": lambda: tuning.blas_crossover("numba", "float32"),
           "blas-layers": lambda: tuning._cached(key, lambda: None),
           "blas-tile": lambda: tuning.blas_tile("c", [5, 512, 512, 1], 4096, "float32"),
           "forward-blas": lambda: tuning.forward_blas("c", [5, 512, 512, 1], 10 ** 5,
                                                       "float32"),
           "one-thread": lambda: tuning.prefer_one_thread("numba", [5, 32, 32, 1], 256,
                                                          "float32"),
           "forward-skip-zeros": lambda: tuning.forward_skip_zeros("c", [5, 32, 32, 1],
                                                                   10 ** 5, "float32"),
           "auto": lambda: tuning._cached(key, lambda: "numba")}[key.split("/")[0]]
    (cache / "tune-test-chip-a-9000.json").write_text(json.dumps(
        {"format": tuning.FORMAT, "cpu": "Test Chip A 9000", "kernels": tuning.kernels_stamp(),
         "entries": {key: bad}}))
    tuning.clear_memo()
    got = ask()
    assert tuning._valid_entry(key, tuning.cached_entries()[key])   # measured and stored
    assert got == ask() and got != bad


def test_kernels_stamp_follows_the_compiled_module(monkeypatch, tmp_path):
    import importlib.util
    tuning.kernels_stamp.cache_clear()
    try:
        fake = tmp_path / "_fastmlp_c.so"
        fake.write_bytes(b"one build")
        spec = importlib.util.spec_from_file_location("fastmlp._fastmlp_c", fake)
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
        a = tuning.kernels_stamp()
        tuning.kernels_stamp.cache_clear()
        fake.write_bytes(b"another build")
        assert tuning.kernels_stamp() != a
    finally:
        tuning.kernels_stamp.cache_clear()


def test_no_tune_uses_static_defaults_and_writes_nothing(cache, stubs, monkeypatch):
    monkeypatch.setenv("FASTMLP_NO_TUNE", "1")
    assert tuning.blas_crossover("numba", "float32") == tuning.DEFAULT_CROSSOVER
    avail = [n for n in tuning.DEFAULT_ORDER if backends.available_backends()[n][0]]
    assert tuning.choose_backend([5, 32, 32, 1], 256, "float32") == avail[0]
    assert stubs == []
    assert list(cache.iterdir()) == []


def test_no_tune_zero_means_tuning_on(cache, stubs, monkeypatch):
    monkeypatch.setenv("FASTMLP_NO_TUNE", "0")
    assert not tuning.tuning_disabled()
    tuning.blas_crossover("c", "float32")
    assert stubs == [("crossover", "c", "float32")]


@pytest.mark.parametrize("content", ["{not json", "[1, 2, 3]", '{"format": 99}', ""])
def test_corrupt_cache_is_ignored_with_a_warning(cache, stubs, content):
    path = cache / "tune-test-chip-a-9000.json"
    path.write_text(content)
    with pytest.warns(RuntimeWarning, match="ignoring the tuning cache"):
        assert tuning.blas_crossover("numba", "float32") == 12345.0
    assert stubs == [("crossover", "numba", "float32")]
    data = json.loads(path.read_text())  # replaced by a valid file
    assert data["format"] == tuning.FORMAT and data["entries"]


def test_unwritable_cache_dir_warns_and_still_answers(cache, stubs, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(blocker / "sub"))
    tuning.clear_memo()
    with pytest.warns(RuntimeWarning, match="could not write the tuning cache"):
        assert tuning.blas_crossover("numba", "float32") == 12345.0


def test_an_unwritable_cache_warns_once_per_path_and_says_what_to_do(cache, stubs,
                                                                     monkeypatch, tmp_path):
    # a first `fastmlp train` measures about five choices and writes the file after each:
    # five copies of one warning, none saying what to do, said no more than one
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(blocker))      # a file, not a directory
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for backend, dt in (("numba", "float32"), ("numba", "float64"), ("c", "float32")):
            assert tuning.blas_crossover(backend, dt) == 12345.0
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(said) == 1 and len(stubs) == 3
    assert said[0].startswith(f"fastmlp: could not write the tuning cache {tuning.cache_path()}")
    assert f"({blocker} is a file, not a directory)" in said[0]
    assert "FASTMLP_CACHE_DIR" in said[0] and "FASTMLP_NO_TUNE=1" in said[0]
    assert tuning.unwritten_cache() == tuning.cache_path()
    assert tuning.blas_crossover("numba", "float32") == 12345.0    # still used in-process
    assert len(stubs) == 3 and blocker.read_text() == ""
    # another path that cannot be written is warned about again, once
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(blocker / "sub"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuning.blas_crossover("numba", "float32")
        tuning.blas_crossover("c", "float32")
    assert [str(blocker / "sub") in str(w.message) for w in caught] == [True]
    # a writable one holds every measurement: nothing is left unwritten
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path / "ok"))
    tuning.blas_crossover("numba", "float32")
    assert tuning.unwritten_cache() is None
    assert json.loads(open(tuning.cache_path()).read())["entries"]


def test_the_cli_reports_an_unwritable_cache_through_its_own_hook(cache, stubs, monkeypatch,
                                                                   tmp_path):
    said = []
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path / "tune.json" / "x"))
    (tmp_path / "tune.json").write_text("")
    with warnings.catch_warnings(record=True) as caught, \
            tuning.reporting_unwritable_cache(said.append):
        warnings.simplefilter("always")
        tuning.blas_crossover("numba", "float32")
        tuning.blas_crossover("numba", "float64")
    assert caught == [] and len(said) == 1
    assert said[0].startswith("could not write the tuning cache ")


def test_cache_file_that_is_a_symlink_stays_one_and_a_fifo_is_not_replaced(cache, stubs):
    # the cache goes through atomic_write: a symlinked cache file (dotfiles kept elsewhere)
    # is written through, and one that is not a regular file is a warning, left alone
    kept = cache / "kept"
    kept.mkdir()
    path = cache / "tune-test-chip-a-9000.json"
    os.symlink(kept / "tune.json", path)
    assert tuning.blas_crossover("numba", "float32") == 12345.0
    assert path.is_symlink() and json.loads((kept / "tune.json").read_text())["entries"]
    os.unlink(path)
    os.mkfifo(path)      # (written only: reading it would wait for a writer)
    with pytest.warns(RuntimeWarning, match="could not write the tuning cache.*is a FIFO"):
        tuning._save()
    assert stat.S_ISFIFO(os.lstat(path).st_mode)
    assert sorted(p.name for p in cache.iterdir()) == ["kept", path.name,
                                                       path.name + ".lock"]


def test_choice_is_cached_per_shape_class(cache, stubs):
    if len(_fast()) < 2:
        pytest.skip("needs two fast backends to have a choice to measure")
    a = tuning.choose_backend([5, 512, 512, 1], 4096, "float32")
    b = tuning.choose_backend([5, 500, 300, 1], 3000, "float32")  # same class
    assert a == b and len([c for c in stubs if c[0] == "auto"]) == 1
    tuning.choose_backend([5, 32, 32, 1], 256, "float32")  # another class
    assert len([c for c in stubs if c[0] == "auto"]) == 2
    assert tuning.shape_class([5, 500, 300, 1], 3000) == "L3-w512-b4096"


def test_forced_crossover_is_scoped(cache, stubs):
    with tuning.forced_crossover(0):
        assert tuning.blas_crossover("c", "float32") == 0
        with tuning.forced_crossover(math.inf):
            assert tuning.blas_crossover("c", "float32") == math.inf
        assert tuning.blas_crossover("c", "float32") == 0
    assert stubs == []
    assert tuning.blas_crossover("c", "float32") == 12345.0


def test_real_measurement_gives_an_available_backend(cache):
    """A real (short) measurement: the answer is one of the available backends and is
    stored; which one wins is the machine's business."""
    avail = [n for n, (ok, _) in backends.available_backends().items() if ok]
    name = tuning.choose_backend([3, 8, 1], 16, "float32")
    assert name in avail
    entries = tuning.cached_entries()
    if len(_fast()) >= 2:
        assert entries[next(k for k in entries if k.startswith("auto/float32/"))] == name


@pytest.mark.parametrize("backend", _fast())
def test_real_crossover_measurement_is_well_formed(cache, backend):
    v = tuning.measure_crossover(backend, "float32", budget=0.2)
    # the larger of the crossovers at both batch sizes: rows x n^2 for either row count
    candidates = {rows * n * n for n in tuning._CROSS_WIDTHS
                  for rows in (tuning._CROSS_ROWS, 16 * tuning._CROSS_ROWS)}
    assert v is None or v in candidates


def test_cli_tune_writes_the_cache_and_shows_it(cache, stubs, capsys):
    import argparse

    from fastmlp.cli.tune import add_tune_parser
    parser = argparse.ArgumentParser()
    add_tune_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tune", "--shape", "5-64-1@128", "--dtype", "both",
                              "--threads", "2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    if backends.available_backends()["numba"][0]:  # with 2 threads: slices on one or two
        assert {c[4] for c in stubs if c[0] == "one_thread"} == {"float32", "float64"}
        assert "mini-batch slices on the threads" in out
    assert "cached in" in out and os.path.exists(tuning.cache_path())
    assert {c[2] for c in stubs if c[0] == "crossover"} == {"float32", "float64"}
    if backends.available_backends()["numba"][0]:  # 128 x 5 x 64 >= the stub's crossover
        assert {c[4] for c in stubs if c[0] == "layerwise"} == {"float32", "float64"}
    if _c_with_blas():   # C's inference pass: once per net and dtype
        assert {c[3] for c in stubs if c[0] == "forward"} == {"float32", "float64"}
        assert ("c 5-64-1 float32 inference: layers of >= 320 weights through BLAS, tiles "
                "of the default 1024 rows") in out
    if _c_available():
        assert ("c element-wise kernels (updates, activations): on the threads from 123 us "
                "of one-thread work") in out
        # 5-64-1: its only layer after a ReLU has one output, nothing to skip
        assert not [c for c in stubs if c[0] == "skip_zeros"]
    args = parser.parse_args(["tune", "--shape", "5-32-32-1@256", "--threads", "2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    if _c_available():   # the stub measured dense products faster, once for float32
        assert [c for c in stubs if c[0] == "skip_zeros"] == [("skip_zeros", "c",
                                                               (5, 32, 32, 1))]
        assert ("c 5-32-32-1 float32 inference: dense products after a ReLU (skipping zero "
                "inputs measured slower)") in out
    args = parser.parse_args(["tune", "--show"])
    assert args.func(args) == 0
    assert "crossover/" in capsys.readouterr().out


def test_cli_tune_says_when_it_could_not_write_the_cache(cache, stubs, capsys, monkeypatch):
    # it said "cached in <path>" under one raw RuntimeWarning per measured choice
    from fastmlp import cli
    (cache / "a-file").write_text("")
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(cache / "a-file"))
    assert cli.main(["tune", "--shape", "5-64-1@128", "--threads", "2"]) == 0
    out, err = capsys.readouterr()
    path = tuning.cache_path()
    assert f"not cached: could not write {path}" in out and "cached in" not in out
    assert err.splitlines() == [next(ln for ln in err.splitlines() if ln.startswith(
        f"warning: could not write the tuning cache {path} ("))]
    assert (cache / "a-file").read_text() == ""


def _c_available():
    return backends.available_backends()["c"][0]


@pytest.fixture
def c_par_work():
    """C's element-wise threads threshold as the suite found it, restored after the test
    (it is process-wide in C, and the backend hands it over once per thread count)."""
    from fastmlp.backends import c as c_backend
    before = c_backend.parallel_min_work()
    yield c_backend
    c_backend._lib.fastmlp_set_parallel_min_work(before)
    c_backend._par_work["threads"] = None


def test_parallel_min_work_is_measured_once_cached_and_handed_to_c(cache, stubs, c_par_work):
    if not _c_available():
        pytest.skip("the C backend is not built")
    with fastmlp.threads(2):
        assert tuning.parallel_min_work("c") == 123456.0
        assert tuning.parallel_min_work("c") == 123456.0
        assert stubs == [("parallel_work",)]
        assert tuning.cached_entries()["parallel-work/c/t2"] == 123456.0
        # the backend hands it to C at its first call with this thread count
        c_par_work._par_work["threads"] = None
        p = np.zeros(8, np.float32)
        c_par_work.sgd_update(p, np.zeros_like(p), None, 1, 0.1, 0.0, 0.0, 0.0, False,
                               False)
        assert c_par_work.parallel_min_work() == 123456.0
    with fastmlp.threads(1):   # one thread: nothing to measure
        assert tuning.parallel_min_work("c") == tuning.DEFAULT_PARALLEL_MIN_WORK
    assert stubs == [("parallel_work",)]


@pytest.mark.parametrize("stored", [-1.0, math.inf, None, "fast", True])
def test_parallel_min_work_of_a_bad_cache_entry_is_measured_again(cache, stubs, stored):
    if not _c_available():
        pytest.skip("the C backend is not built")
    with fastmlp.threads(2):
        tuning.parallel_min_work("c")
        path = cache / "tune-test-chip-a-9000.json"
        data = json.loads(path.read_text())
        data["entries"]["parallel-work/c/t2"] = stored
        path.write_text(json.dumps(data))
        tuning.clear_memo()
        assert tuning.parallel_min_work("c") == 123456.0
    assert stubs == [("parallel_work",), ("parallel_work",)]


def test_parallel_min_work_without_tuning_is_c_s_default(cache, stubs, monkeypatch,
                                                         c_par_work):
    monkeypatch.setenv("FASTMLP_NO_TUNE", "1")
    with fastmlp.threads(2):
        assert tuning.parallel_min_work("c") == tuning.DEFAULT_PARALLEL_MIN_WORK
    assert stubs == []
    if _c_available():   # the same number as C's FM_PAR_MIN_WORK_NS
        c_par_work._lib.fastmlp_set_parallel_min_work(1.0)
        c_par_work._par_work["threads"] = None
        p = np.zeros(8, np.float32)
        with fastmlp.threads(2):
            c_par_work.sgd_update(p, np.zeros_like(p), None, 1, 0.1, 0.0, 0.0, 0.0, False,
                               False)
        assert c_par_work.parallel_min_work() == tuning.DEFAULT_PARALLEL_MIN_WORK


def test_real_parallel_min_work_measurement_is_well_formed(c_par_work):
    """A real measurement: a finite number of ns, and C's own threshold as it was after it;
    how large it is is the machine's business."""
    if not _c_available():
        pytest.skip("the C backend is not built")
    before = c_par_work.parallel_min_work()
    with fastmlp.threads(2):
        v = c_par_work.measure_parallel_min_work(rounds=2, calls=1)
    assert isinstance(v, float) and math.isfinite(v) and v >= 0
    assert c_par_work.parallel_min_work() == before


@pytest.mark.parametrize("bad", ["5-64-1", "5-x-1@4", "5@8", "5-0-1@8", "5-4-1@0"])
def test_cli_tune_rejects_a_bad_shape(bad):
    from fastmlp.cli.tune import _shape
    with pytest.raises(ValueError, match="--shape"):
        _shape(bad)


def test_layerwise_choice_is_measured_per_shape_class(cache, monkeypatch):
    calls = []

    def measure(backend, sizes, rows, dtype, budget=0.6):
        calls.append((backend, tuple(int(s) for s in sizes), rows, dtype))
        return False
    monkeypatch.setattr(tuning, "measure_layerwise", measure)
    assert tuning.prefer_layerwise("numba", [5, 512, 512, 1], 4096, "float32") is False
    assert tuning.prefer_layerwise("numba", [5, 512, 400, 1], 4000, "float32") is False
    assert len(calls) == 1  # same class: from the cache
    with tuning.forced_crossover(0):  # a forced crossover means: the BLAS path, no measuring
        assert tuning.prefer_layerwise("numba", [5, 64, 1], 8, "float32") is True
    monkeypatch.setenv("FASTMLP_NO_TUNE", "1")
    assert tuning.prefer_layerwise("numba", [5, 64, 1], 8, "float32") is True
    assert len(calls) == 1


def test_real_layerwise_measurement_is_a_bool(cache):
    if not backends.available_backends()["numba"][0]:
        pytest.skip("numba unavailable")
    assert tuning.measure_layerwise("numba", [4, 16, 1], 32, "float32", budget=0.1) in (
        True, False)


def test_fit_with_auto_trains_on_the_measured_backend(cache, stubs, monkeypatch):
    """fit(backend=None -> "auto") asks the tuner for its shape class; an explicit backend
    is never second-guessed."""
    import fastmlp
    fast = _fast()
    if len(fast) < 2:
        pytest.skip("needs two fast backends to choose between")
    choice = fast[-1]
    monkeypatch.setattr(tuning, "measure_backends",
                        lambda sizes, batch_size, dtype, names, budget=1.5: (
                            stubs.append(("auto", tuple(sizes), batch_size, dtype)) or choice))
    X = np.random.default_rng(0).normal(size=(300, 3))
    y = (X[:, 0] > 0).astype(int)
    h = fastmlp.fit(fastmlp.MLP([3, 4, 1]), X, y, epochs=1, batch_size=32, progress=False)
    assert h.backend == choice            # what the stub measured fastest
    assert [c[0] for c in stubs].count("auto") == 1
    h = fastmlp.fit(fastmlp.MLP([3, 4, 1]), X, y, epochs=1, batch_size=32, progress=False,
                    backend=fast[0])
    assert h.backend == fast[0] and [c[0] for c in stubs].count("auto") == 1


def test_one_thread_choice_is_measured_per_shape_class(cache, monkeypatch):
    calls = []

    def measure(backend, sizes, batch_size, dtype, budget=0.8):
        calls.append((backend, tuple(int(s) for s in sizes), batch_size, dtype))
        return True
    monkeypatch.setattr(tuning, "measure_one_thread", measure)
    with backends.threads(2):
        assert tuning.prefer_one_thread("numba", [5, 32, 32, 1], 256, "float32") is True
        assert tuning.prefer_one_thread("numba", [5, 30, 32, 1], 200, "float32") is True
        assert len(calls) == 1  # same class: from the cache
        with tuning.forced_one_thread(False):
            assert tuning.prefer_one_thread("numba", [5, 64, 1], 8, "float32") is False
    with backends.threads(1):  # one thread asked for: nothing to choose, nothing measured
        assert tuning.prefer_one_thread("numba", [5, 64, 1], 8, "float32") is False
    monkeypatch.setenv("FASTMLP_NO_TUNE", "1")
    with backends.threads(2):
        assert tuning.prefer_one_thread("numba", [5, 64, 1], 8, "float32") is False
    assert len(calls) == 1


@pytest.mark.skipif(not backends.available_backends()["numba"][0], reason="numba unavailable")
def test_one_thread_runs_the_same_slices_bit_for_bit(cache):
    """The Numba epoch with its row slices on one thread gives the same parameters as with
    them on the threads, and the real measurement answers a bool."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3000, 5)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    got = {}
    for way in (False, True):
        with tuning.forced_one_thread(way):
            m = fastmlp.MLP([5, 16, 16, 1], dtype="float32", seed=0)
            fastmlp.fit(m, X, y, epochs=2, batch_size=64, validation=None, progress=False,
                        backend="numba", n_threads=3)
            got[way] = m.params.copy()
    assert np.array_equal(got[False], got[True])
    m1 = fastmlp.MLP([5, 16, 16, 1], dtype="float32", seed=0)
    fastmlp.fit(m1, X, y, epochs=2, batch_size=64, validation=None, progress=False,
                backend="numba", n_threads=1)
    assert not np.array_equal(m1.params, got[True])  # one slice is other arithmetic
    with backends.threads(2):
        assert tuning.measure_one_thread("numba", [5, 16, 1], 64, "float32",
                                         budget=0.1) in (True, False)


def _c_with_blas():
    return backends.available_backends()["c"][0] and backends.get_backend("c").has_blas()


@pytest.mark.skipif(not _c_with_blas(), reason="the C backend with a BLAS is unavailable")
def test_blas_layers_choice_is_measured_per_shape_class(cache, monkeypatch):
    calls = []

    def measure(backend, sizes, batch_size, dtype, budget=1.0):
        calls.append((backend, tuple(int(s) for s in sizes), batch_size, dtype))
        return 16384
    monkeypatch.setattr(tuning, "measure_blas_layers", measure)
    assert tuning.blas_layers("c", [5, 128, 128, 128, 1], 1024, "float32") == 16384
    assert tuning.blas_layers("c", [5, 100, 128, 70, 1], 1000, "float32") == 16384
    assert len(calls) == 1  # same class: from the cache
    assert tuning.blas_layers("numba", [5, 128, 1], 8, "float32") is None  # C only
    with tuning.forced_crossover(0):  # a forced crossover decides alone, nothing measured
        assert tuning.blas_layers("c", [5, 64, 1], 8, "float32") is None
    with tuning.forced_blas_layers(math.inf):
        assert tuning.blas_layers("c", [5, 64, 1], 8, "float32") == math.inf
    monkeypatch.setenv("FASTMLP_NO_TUNE", "1")
    assert tuning.blas_layers("c", [5, 64, 1], 8, "float32") is None
    assert len(calls) == 1


@pytest.mark.parametrize("times,expected", [
    ({None: 1.0, 262144: 0.98, 2560: 0.99, 512: 0.99}, None),     # ties: no BLAS
    ({None: 1.0, 262144: 0.80, 2560: 0.79, 512: 0.70}, 512),      # each step >= 3 % faster
    ({None: 1.0, 262144: 0.80, 2560: 0.79, 512: 0.785}, 262144),  # 1-2 % steps: not taken
    ({None: 0.5, 262144: 0.80, 2560: 0.90, 512: 0.95}, None),
])
def test_blas_layers_takes_a_size_of_layer_only_for_a_clear_gain(monkeypatch, times,
                                                                 expected):
    monkeypatch.setattr(tuning, "_training_epoch", lambda *a: (lambda: None))
    monkeypatch.setattr(tuning, "_time_interleaved", lambda fns, budget: (
        assert_same_keys(fns, times) or one_round(times)))
    assert tuning.measure_blas_layers("c", [5, 512, 512, 1], 256, "float32") == expected


def test_blas_tile_is_measured_where_a_layer_goes_to_blas(cache, monkeypatch):
    """blas_tile measures once per shape class, only for C with a layer through BLAS and
    more rows per thread than the smallest tile; forced and FASTMLP_NO_TUNE answers are
    taken without measuring."""
    calls = []
    layers = {"w": 262144.0}
    monkeypatch.setattr(tuning, "blas_layers", lambda *a: layers["w"])
    monkeypatch.setattr(tuning, "_has_blas", lambda backend: True)
    monkeypatch.setattr(tuning, "_nthreads", lambda: 2)

    def measure(backend, sizes, batch_size, dtype, budget=1.0):
        calls.append((tuple(int(s) for s in sizes), batch_size))
        return 512
    monkeypatch.setattr(tuning, "measure_blas_tile", measure)
    assert tuning.blas_tile("c", [5, 512, 512, 1], 4096, "float32") == 512
    assert tuning.blas_tile("c", [5, 400, 512, 1], 3000, "float32") == 512   # same class
    assert len(calls) == 1
    assert tuning.blas_tile("numba", [5, 512, 512, 1], 4096, "float32") is None  # C only
    assert tuning.blas_tile("c", [5, 512, 512, 1], 512, "float32") is None  # 256 per thread
    layers["w"] = math.inf
    assert tuning.blas_tile("c", [5, 512, 512, 1], 8192, "float32") is None  # no BLAS layer
    with tuning.forced_blas_tile(256):
        assert tuning.blas_tile("c", [5, 64, 1], 8, "float32") == 256
    monkeypatch.setenv("FASTMLP_NO_TUNE", "1")
    layers["w"] = 262144.0
    assert tuning.blas_tile("c", [5, 512, 512, 1], 16384, "float32") is None
    assert len(calls) == 1


@pytest.mark.parametrize("times,expected", [
    ({256: 0.99, 512: 0.98, 1024: 1.0}, None),   # within 3 %: the default stays
    ({256: 0.90, 512: 0.95, 1024: 1.0}, 256),
    ({256: 0.99, 512: 0.95, 1024: 1.0}, 512),
    ({256: 1.20, 512: 1.10, 1024: 1.0}, None),
])
def test_blas_tile_takes_a_shorter_tile_only_for_a_clear_gain(monkeypatch, times, expected):
    monkeypatch.setattr(tuning, "_training_epoch", lambda *a: (lambda: None))
    monkeypatch.setattr(tuning, "_time_interleaved", lambda fns, budget: (
        assert_same_keys(fns, times) or one_round(times)))
    assert tuning.measure_blas_tile("c", [5, 512, 512, 1], 4096, "float32") == expected


@pytest.mark.skipif(not _c_with_blas(), reason="the C backend with a BLAS is unavailable")
def test_c_epoch_with_a_tile_trains_the_same_net(cache):
    """The tile around C's BLAS layers changes the rounding, not the training: a 256-row
    tile ends within float32 rounding of the default one, and differs from it (the choice
    reached the kernel).  The real measurement answers None or a shorter tile."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((4096, 5)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    got = {}
    for tile in (None, 256):
        with tuning.forced_blas_layers(0), tuning.forced_blas_tile(tile):
            m = fastmlp.MLP([5, 48, 48, 1], dtype="float32", seed=0)
            fastmlp.fit(m, X, y, epochs=1, batch_size=2048, validation=None, progress=False,
                        backend="c", n_threads=2)
            got[tile] = m.params.copy()
    assert not np.array_equal(got[256], got[None])
    np.testing.assert_allclose(got[256], got[None], rtol=1e-4, atol=1e-5)
    with tuning.forced_blas_layers(0):
        v = tuning.measure_blas_tile("c", [5, 48, 48, 1], 2048, "float32", budget=0.1)
    assert v is None or v in tuning.BLAS_TILES[:-1]


def assert_same_keys(fns, times):
    assert set(fns) == set(times)   # the ways timed: none, then each distinct layer size


def one_round(times):
    """A table of times as _time_interleaved returns them: {way: [time of each round]}."""
    return {k: [v] for k, v in times.items()}


def test_choices_are_judged_round_by_round(monkeypatch):
    """A way other than the default wins only by both the median over rounds of its time /
    the other's in the same round and its best time.  Here BLAS is 12-15 % slower in three
    rounds of four, and one lucky round (or a slow one of the hand-written path) gives it
    the best time: the best-time rule alone took BLAS."""
    monkeypatch.setattr(tuning, "_training_epoch", lambda *a: (lambda: None))
    # the ways: none through BLAS, then the layers of >= 1024, >= 160, >= 32 weights
    noisy = {None: [1.00, 1.01, 0.99, 1.60], 1024: [1.12, 1.15, 1.13, 0.95],
             160: [1.14, 1.16, 1.13, 0.94], 32: [1.15, 1.17, 1.14, 0.96]}
    assert min(noisy[160]) < 0.97 * min(noisy[None])
    monkeypatch.setattr(tuning, "_time_interleaved", lambda fns, budget: (
        assert_same_keys(fns, noisy) or noisy))
    assert tuning.measure_blas_layers("c", [5, 32, 32, 1], 256, "float32") is None
    assert tuning._relative(noisy, 1024, None) == pytest.approx((1.12 + 1.15 / 1.01) / 2)
    # BLAS ahead by 8-10 % in three rounds of four and in its best time: taken
    ahead = {None: [1.0, 1.0, 1.0, 1.2], 1024: [0.92, 0.91, 0.90, 1.5],
             160: [0.91, 0.90, 0.92, 1.5], 32: [0.92, 0.92, 0.91, 1.4]}
    monkeypatch.setattr(tuning, "_time_interleaved", lambda fns, budget: ahead)
    assert tuning.measure_blas_layers("c", [5, 32, 32, 1], 256, "float32") == 1024
    # ahead in the rounds' ratios but not in the best time (one fast round by hand): not
    ahead[None][3] = 0.5
    assert tuning.measure_blas_layers("c", [5, 32, 32, 1], 256, "float32") is None

    def auto(rounds):
        monkeypatch.setattr(tuning, "_time_interleaved", lambda fns, budget: rounds)
        return tuning.measure_backends([5, 32, 32, 1], 256, "float32", ["c", "numba"])
    assert auto({"c": [1.0, 1.0, 3.0, 1.0], "numba": [1.2, 1.3, 0.9, 1.25]}) == "c"
    assert auto({"c": [1.0, 2.0, 2.0, 2.0], "numba": [1.5, 1.8, 1.8, 1.8]}) == "c"
    assert auto({"c": [1.0, 1.1, 1.0, 1.05], "numba": [0.9, 0.95, 0.92, 2.0]}) == "numba"


@pytest.mark.skipif(not _c_with_blas(), reason="the C backend with a BLAS is unavailable")
def test_c_epoch_with_a_layer_choice_trains_the_same_net(cache):
    """The layers C sends to BLAS change the rounding, not the training: every choice ends
    within float32 rounding of the hand-written path, and "no layer" is that path bit for
    bit.  The real measurement answers None or one of the net's layer sizes."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2000, 5)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    got = {}
    ways = [("crossover inf", tuning.forced_crossover(math.inf))] + [
        (w, tuning.forced_blas_layers(w)) for w in (math.inf, 48 * 48, 0)]
    for name, scope in ways:
        with scope:
            m = fastmlp.MLP([5, 48, 48, 1], dtype="float32", seed=0)
            fastmlp.fit(m, X, y, epochs=1, batch_size=256, validation=None, progress=False,
                        backend="c", n_threads=2)
            got[name] = m.params.copy()
    assert np.array_equal(got["crossover inf"], got[math.inf])
    assert not np.array_equal(got[0], got[math.inf])   # the choice did reach the kernel
    for w in (48 * 48, 0):
        np.testing.assert_allclose(got[w], got[math.inf], rtol=1e-4, atol=1e-5)
    v = tuning.measure_blas_layers("c", [5, 16, 16, 1], 64, "float32", budget=0.1)
    assert v is None or v in {80, 256, 16}


def test_forward_blas_is_measured_once_per_net_class(cache, monkeypatch):
    """C's inference pass measures its BLAS layers and tile once per net class (layers,
    widest size) and thread count, whatever the rows; short passes, other backends, forced
    answers and FASTMLP_NO_TUNE take the defaults without measuring."""
    calls = []
    answer = {"layers": 262144, "tile": 512}
    monkeypatch.setattr(tuning, "_has_blas", lambda backend: True)
    monkeypatch.setattr(tuning, "_nthreads", lambda: 2)

    def measure(backend, sizes, dtype, budget=1.0):
        calls.append((backend, tuple(sizes), dtype))
        return dict(answer)
    monkeypatch.setattr(tuning, "measure_forward_blas", measure)
    assert tuning.forward_blas("c", [5, 512, 512, 1], 100000, "float32") == (262144.0, 512)
    assert tuning.forward_blas("c", [5, 400, 512, 1], 8192, "float32") == (262144.0, 512)
    assert calls == [("c", (5, 512, 512, 1), "float32")]
    assert tuning.forward_blas("numba", [5, 512, 512, 1], 100000, "float32") == (None, None)
    assert tuning.forward_blas("c", [5, 512, 512, 1], 8191, "float32") == (None, None)
    with tuning.forced_blas_layers(0):
        assert tuning.forward_blas("c", [5, 64, 1], 8, "float32") == (0.0, None)
    with tuning.forced_blas_tile(256):
        assert tuning.forward_blas("c", [5, 64, 1], 8, "float32") == (None, 256)
    with tuning.forced_crossover(math.inf):
        assert tuning.forward_blas("c", [5, 512, 512, 1], 100000, "float32") == (None, None)
    answer.update(layers=None, tile=None)
    assert tuning.forward_blas("c", [5, 64, 64, 1], 100000, "float64") == (math.inf, None)
    assert len(calls) == 2
    monkeypatch.setenv("FASTMLP_NO_TUNE", "1")
    assert tuning.forward_blas("c", [5, 32, 1], 100000, "float32") == (None, None)
    assert len(calls) == 2


@pytest.mark.parametrize("layer_times,tile_times,expected", [
    ({None: 1.0, 262144: 0.99, 2560: 0.98, 512: 0.97}, None, {"layers": None, "tile": None}),
    ({None: 1.0, 262144: 0.80, 2560: 0.79, 512: 0.70}, {256: 1.0, 512: 0.99, 1024: 1.0},
     {"layers": 512, "tile": None}),
    ({None: 1.0, 262144: 0.80, 2560: 0.79, 512: 0.90}, {256: 0.90, 512: 0.95, 1024: 1.0},
     {"layers": 262144, "tile": 256}),
])
def test_forward_blas_takes_a_layer_or_tile_only_for_a_clear_gain(monkeypatch, layer_times,
                                                                   tile_times, expected):
    """One more size of layer to BLAS, and a tile shorter than the default, each only for
    a gain of at least 3 %; no tile is timed when no layer goes to BLAS."""
    monkeypatch.setattr(tuning, "_forward_pass", lambda *a: (lambda: None))
    rounds = iter([layer_times] + ([tile_times] if tile_times else []))

    def timed(fns, budget):
        times = next(rounds)
        assert_same_keys(fns, times)
        return one_round(times)
    monkeypatch.setattr(tuning, "_time_interleaved", timed)
    assert tuning.measure_forward_blas("c", [5, 512, 512, 1], "float32") == expected
    assert next(rounds, "done") == "done"   # every expected round was timed


@pytest.mark.skipif(not _c_with_blas(), reason="the C backend with a BLAS is unavailable")
def test_c_inference_uses_the_measured_choice(cache, monkeypatch):
    """The measured layers and tile reach C's mlp_forward: its output is, bit for bit, the
    output with that choice forced, and within float32 rounding of the hand-written path
    (from which it differs: the products sum in another order).  The real measurement is
    well-formed."""
    rng = np.random.default_rng(7)
    # wider than 64: C's sparse-input path (after a ReLU, n_out <= 64) does not apply; non-
    # zero biases: BLAS adds them after the sum, the hand-written kernels before it
    m = fastmlp.MLP([5, 96, 96, 1], dtype="float32", seed=0)
    m.params[:] = rng.standard_normal(m.n_params).astype(np.float32) * 0.1
    X = rng.standard_normal((tuning.FORWARD_MIN_ROWS * 4, 5)).astype(np.float32)
    real = tuning.measure_forward_blas
    monkeypatch.setattr(tuning, "measure_forward_blas",
                        lambda *a, **k: {"layers": 0, "tile": 256})
    with fastmlp.threads(2):   # FORWARD_MIN_ROWS * 2 rows a thread whatever the CPU count
        got = m.forward(X, backend="c")
        with tuning.forced_blas_layers(0), tuning.forced_blas_tile(256):
            forced = m.forward(X, backend="c")
        with tuning.forced_blas_layers(math.inf):
            by_hand = m.forward(X, backend="c")
    assert np.array_equal(got, forced)
    assert not np.array_equal(got, by_hand)
    np.testing.assert_allclose(got, by_hand, rtol=1e-4, atol=1e-5)
    monkeypatch.setattr(tuning, "FORWARD_MACS", 1e6)
    v = real("c", [5, 48, 48, 1], "float32", budget=0.1)
    assert set(v) == {"layers", "tile"}
    assert v["layers"] in (None, 240, 48 * 48, 48)
    assert v["tile"] is None or (v["layers"] is not None and v["tile"] in (256, 512))


def test_forward_skip_zeros_is_measured_once_per_net_class(cache, monkeypatch):
    """Whether C's float32 inference skips zero inputs is measured once per net class and
    thread count; float64, other backends, short passes and FASTMLP_NO_TUNE take C's
    default (None) without measuring, a forced answer is that answer."""
    calls = []
    monkeypatch.setattr(tuning, "_nthreads", lambda: 2)

    def measure(backend, sizes, budget=1.0):
        calls.append((backend, tuple(sizes)))
        return False
    monkeypatch.setattr(tuning, "measure_forward_skip_zeros", measure)
    assert tuning.forward_skip_zeros("c", [5, 32, 32, 1], 100000, "float32") is False
    assert tuning.forward_skip_zeros("c", [5, 24, 32, 1], 8192, "float32") is False
    assert calls == [("c", (5, 32, 32, 1))]
    assert tuning.cached_entries()["forward-skip-zeros/c/float32/L3-w32/t2"] is False
    assert tuning.forward_skip_zeros("c", [5, 32, 32, 1], 100000, "float64") is None
    assert tuning.forward_skip_zeros("numba", [5, 32, 32, 1], 100000, "float32") is None
    assert tuning.forward_skip_zeros("c", [5, 32, 32, 1], 8191, "float32") is None
    with tuning.forced_skip_zeros(True):
        assert tuning.forward_skip_zeros("c", [5, 32, 32, 1], 8, "float32") is True
    assert tuning.forward_skip_zeros("c", [5, 64, 64, 1], 100000, "float32") is False
    assert len(calls) == 2
    monkeypatch.setenv("FASTMLP_NO_TUNE", "1")
    assert tuning.forward_skip_zeros("c", [5, 16, 16, 1], 100000, "float32") is None
    assert len(calls) == 2


@pytest.mark.parametrize("times,expected", [
    ({True: 1.0, False: 0.98}, True),     # 2 % is not a clear gain: the default stays
    ({True: 1.0, False: 0.90}, False),
    ({True: 0.90, False: 1.0}, True),
])
def test_forward_skip_zeros_leaves_the_default_only_for_a_clear_gain(monkeypatch, times,
                                                                     expected):
    monkeypatch.setattr(tuning, "_forward_pass", lambda *a: (lambda: None))

    def timed(fns, budget):
        assert_same_keys(fns, times)
        return one_round(times)
    monkeypatch.setattr(tuning, "_time_interleaved", timed)
    assert tuning.measure_forward_skip_zeros("c", [5, 32, 32, 1]) is expected


@pytest.mark.parametrize("sizes,acts,expected", [
    ([5, 32, 32, 1], [1, 1, 0], True),     # 32 ReLU inputs into 32 outputs
    ([5, 64, 40, 1], [1, 1, 0], True),
    ([5, 32, 1], [1, 0], False),           # the only layer after a ReLU has one output
    ([5, 32, 12, 1], [1, 1, 0], False),    # 12 outputs: not a multiple of 8
    ([5, 128, 128, 1], [1, 1, 0], False),  # 128 outputs: more than 64
    ([5, 32, 32, 1], [4, 4, 0], False),    # tanh: no zeros to skip
    ([5, 4, 32, 1], [1, 1, 0], False),     # 4 inputs: fewer than 8
])
def test_c_knows_which_nets_can_skip_zero_inputs(sizes, acts, expected):
    from fastmlp.backends import c as c_backend
    assert fastmlp.codes.ACTIVATIONS[4] == "tanh"
    assert c_backend.skips_zeros(sizes, acts) is expected


@pytest.mark.skipif(not _c_available(), reason="the C backend is unavailable")
def test_c_inference_follows_the_measured_skip_zeros_choice(cache, monkeypatch):
    """The measured choice reaches C's mlp_forward: measured False, the output is bit for
    bit the output with dense products forced, and differs from the zero-skipping output
    (whose ReLU layer into the single output sums in another order) by float32 rounding
    only.  The real measurement is a bool."""
    rng = np.random.default_rng(3)
    m = fastmlp.MLP([5, 32, 32, 1], dtype="float32", seed=0)
    m.params[:] = rng.standard_normal(m.n_params).astype(np.float32) * 0.3
    X = rng.standard_normal((tuning.FORWARD_MIN_ROWS * 4, 5)).astype(np.float32)
    from fastmlp.backends import c as c_backend
    real = tuning.measure_forward_skip_zeros
    monkeypatch.setattr(tuning, "measure_forward_skip_zeros", lambda *a, **k: False)
    monkeypatch.setattr(tuning, "measure_forward_blas",
                        lambda *a, **k: {"layers": None, "tile": None})
    with fastmlp.threads(2):
        got = m.forward(X, backend="c")
        with tuning.forced_skip_zeros(False):
            dense = m.forward(X, backend="c")
        with tuning.forced_skip_zeros(True):
            skipping = m.forward(X, backend="c")
    assert np.array_equal(got, dense)
    if c_backend.build_info()["avx2"]:   # the portable build has no zero-skipping kernels
        assert not np.array_equal(got, skipping)
    np.testing.assert_allclose(got, skipping, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(tuning, "FORWARD_MACS", 1e6)
    assert real("c", [5, 32, 32, 1], budget=0.1) in (True, False)


def test_c_training_with_measured_layers_does_not_measure_the_crossover(cache, stubs,
                                                                        monkeypatch):
    """C's training epochs follow blas_layers (per shape class) and never read the product
    crossover, so a fit must not pay for measuring it: that took 6-12 s of a first fit on
    a new machine.  (Its train metric reads 10,000 rows: a forward pass long enough for
    forward_blas's own choice; a shorter one reads the crossover, below.)"""
    if not backends.available_backends()["c"][0] or not tuning._has_blas("c"):
        pytest.skip("the C backend with SciPy's BLAS is not available")
    monkeypatch.setattr(tuning, "_nthreads", lambda: 2)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16384, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    model = fastmlp.MLP([5, 16, 1], seed=0)
    fastmlp.fit(model, X, y, epochs=1, batch_size=1024, backend="c", validation=None,
                progress=False)
    assert ("blas_layers", "c", (5, 16, 1), 1024, "float32") in stubs
    assert not [c for c in stubs if c[:2] == ("crossover", "c")]
    # a kernel without a choice of layers still asks for (and measures) the crossover
    out, z = np.empty((16384, 16), np.float32), np.empty((16384, 16), np.float32)
    w = rng.standard_normal((5, 16)).astype(np.float32)
    backends.get_backend("c").dense_forward(out, z, X, w, np.zeros(16, np.float32), 1)
    assert ("crossover", "c", "float32") in stubs
    # a short predict's products reach the crossover's decision: the measured one, always
    model.forward(X[:100], backend="c")
    assert [c for c in stubs if c[:2] == ("crossover", "c")] == [("crossover", "c", "float32")]
