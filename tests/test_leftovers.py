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


# ---------------------------------------------------------------------------------------
# 2. fastmlp train --out: a directory that cannot be written is refused before any work
# ---------------------------------------------------------------------------------------

def _train_refused(monkeypatch, capsys, out, *extra):
    """Run `fastmlp train --out OUT`, failing the test if the data are loaded; the error."""
    from fastmlp import cli
    from fastmlp.cli import train as train_cli

    def no_loading(*args, **kw):
        raise AssertionError("the data were loaded before --out was checked")
    monkeypatch.setattr(train_cli, "load_data", no_loading)
    monkeypatch.setattr(train_cli, "CatalogStream", no_loading)
    assert cli.main(["train", "--n-samples", "400", "--epochs", "1", "--quiet",
                     "--out", str(out), *extra]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("stream", [(), ("--stream", "--catalog", "cat.csv")])
def test_train_refuses_an_out_whose_directory_is_a_file_before_loading_data(
        tmp_path, monkeypatch, capsys, stream):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cat.csv").write_text("u,g,class\n1,2,STAR\n")
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    for out in (tmp_path / "notes.txt" / "m.npz", tmp_path / "notes.txt" / "sub" / "m.npz"):
        err = _train_refused(monkeypatch, capsys, out, *stream)
        assert f"--out {out}" in err and f"{tmp_path / 'notes.txt'} is a file, not a " \
            "directory" in err, err
    # a directory that does not exist, and the input catalog itself: refused as before
    err = _train_refused(monkeypatch, capsys, tmp_path / "nowhere" / "m.npz", *stream)
    assert "--out" in err and f"directory {tmp_path / 'nowhere'} does not exist" in err
    err = _train_refused(monkeypatch, capsys, "cat.csv", "--catalog", "cat.csv", *stream)
    assert "--out cat.csv is the same file as the input cat.csv" in err


def test_train_refuses_an_out_in_a_read_only_directory_before_loading_data(
        tmp_path, monkeypatch, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):     # root: the mode bits are not enforced
            pytest.skip("permissions are not enforced for this user (root)")
        err = _train_refused(monkeypatch, capsys, ro / "m.npz")
        assert f"--out {ro / 'm.npz'}: no permission to write in directory {ro}" in err
    finally:
        ro.chmod(0o755)
