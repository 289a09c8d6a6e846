"""Four defects found by users probing fastmlp: the tuning cache's lock, `fastmlp train
--out` checked before training, `fastmlp cv`'s contamination over the folds that have one,
and a batch's refusal of a zero learning rate naming its model."""

import fcntl
import json
import multiprocessing
import os

import pytest

from fastmlp.backends import cpu, tuning


# ---------------------------------------------------------------------------------------
# 1. The tuning cache: read-merge-write under a lock
# ---------------------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Tuning on, a fresh cache directory, a fixed CPU name, nothing remembered."""
    monkeypatch.delenv("FASTMLP_NO_TUNE", raising=False)
    monkeypatch.setenv("FASTMLP_CACHE_DIR", str(tmp_path))
    name = "Test Chip L 1"
    ident = {"model": name, "x86_family": None, "x86_model": None, "simd": ["avx"],
             "slug": cpu.cpu_slug(name, None, None)}
    monkeypatch.setattr(tuning, "this_cpu", lambda: dict(ident))
    tuning.clear_memo()
    yield tmp_path
    tuning.clear_memo()


N_SAVES = 150


def _save_entries(worker, start):
    """A fresh process's life, N_SAVES times over: read the file, measure one entry, save."""
    start.wait()
    for i in range(N_SAVES):
        tuning.clear_memo()
        tuning._cached(f"crossover/worker{worker}/float32/{i}", lambda: float(i))


def test_two_processes_saving_at_once_lose_no_entry(cache):
    ctx = multiprocessing.get_context("fork")    # the fixture's stand-in CPU carries over
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_save_entries, args=(w, start)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    entries = json.loads(open(tuning.cache_path()).read())["entries"]
    lost = [f"crossover/worker{w}/float32/{i}" for w in (0, 1) for i in range(N_SAVES)
            if f"crossover/worker{w}/float32/{i}" not in entries]
    assert lost == []


def _measure_one(key):
    tuning.clear_memo()
    return tuning._cached(key, lambda: 1.0)


def test_the_cache_lock_is_a_sidecar_file_and_no_lock_is_no_error(cache, monkeypatch):
    path = tuning.cache_path()
    _measure_one("crossover/a/float32/t1")
    assert os.path.isfile(path + ".lock")            # the lock file beside the cache
    # a lock path that cannot be opened: saved without the lock
    os.remove(path + ".lock")
    os.mkdir(path + ".lock")
    _measure_one("crossover/b/float32/t1")
    os.rmdir(path + ".lock")
    # a lock held elsewhere for longer than a save may wait: saved without it
    monkeypatch.setattr(tuning, "LOCK_WAIT_SECONDS", 0.05)
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _measure_one("crossover/c/float32/t1")
    finally:
        os.close(fd)
    # no fcntl (Windows): saved without the lock
    monkeypatch.setattr(tuning, "fcntl", None)
    _measure_one("crossover/d/float32/t1")
    entries = json.loads(open(path).read())["entries"]
    assert sorted(entries) == [f"crossover/{k}/float32/t1" for k in "abcd"]
    assert tuning.unwritten_cache() is None
