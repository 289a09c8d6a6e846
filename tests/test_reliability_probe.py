"""Reliability probe: damaged checkpoints are refused by name (not with the zip reader's
NotImplementedError / RuntimeError / KeyError), a write that fails on a full disk or a
file-size limit names the file it could not write and leaves the old one, and two
processes writing the tuning cache at once keep each other's measurements."""

import errno
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import fastmlp
from fastmlp import io as fio
from fastmlp.atomic import atomic_write
from fastmlp.backends import tuning
from fastmlp.optim import make_optimizer
from fastmlp.training import checkpoint as ckpt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _damage_zip(path, how):
    """Flip what a damaged disk block or a bad copy flips in every central-directory entry
    of the zip at ``path``: the compression method (to one zipfile does not know) or the
    'encrypted' flag bit."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    assert at > 0
    while at >= 0:
        if how == "compression":
            data[at + 10:at + 12] = struct.pack("<H", 99)
        else:
            data[at + 8] |= 1
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.float32)


@pytest.mark.parametrize("how", ["compression", "encrypted"])
def test_a_damaged_fit_checkpoint_is_refused_by_name(data, tmp_path, how):
    X, y = data
    path = tmp_path / "run.ckpt"
    fastmlp.fit(fastmlp.MLP([4, 8, 1], seed=0), X, y, epochs=1, checkpoint=path,
                progress=False)
    _damage_zip(path, how)
    with pytest.raises(ValueError, match="is not a fastmlp fit checkpoint") as info:
        fastmlp.fit(fastmlp.MLP([4, 8, 1], seed=0), X, y, epochs=2, checkpoint=path,
                    resume=path, progress=False)
    assert str(path) in str(info.value)


def _round_checkpoint(path):
    model = fastmlp.MLP([4, 8, 1], seed=0)
    opt = make_optimizer("adam", model.params)
    ckpt.save_training_checkpoint(path, model, opt, 1, 1, run=np.array(json.dumps({"a": 1})))
    return model, opt


@pytest.mark.parametrize("how", ["compression", "encrypted"])
def test_a_damaged_round_checkpoint_is_refused_by_name(tmp_path, how):
    """The Dask and MPI paths resume through checked_run_checkpoint; load_checkpoint is
    public (fastmlp.distributed.load_checkpoint)."""
    path = tmp_path / "round.npz"
    model, opt = _round_checkpoint(path)
    _damage_zip(path, how)
    with pytest.raises(ValueError, match="resume: .*truncated, damaged") as info:
        ckpt.checked_run_checkpoint(path, {"a": 1}, "an MPI run")
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="truncated, damaged") as info:
        fastmlp.distributed.load_checkpoint(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="truncated, damaged"):
        ckpt.restore_training_checkpoint(path, model, opt)
    # a missing file is still the ordinary FileNotFoundError, not "damaged"
    with pytest.raises(FileNotFoundError):
        fastmlp.distributed.load_checkpoint(tmp_path / "none.npz")


def test_a_round_checkpoint_without_its_arrays_is_refused_by_name(tmp_path):
    path = tmp_path / "round.npz"
    model, opt = _round_checkpoint(path)
    np.savez(path, params=model.params, run=np.array("{}"))
    with pytest.raises(ValueError, match=r"damaged or not a training checkpoint .*layer_sizes"):
        ckpt.restore_training_checkpoint(path, model, opt)
    np.savez(path, run=np.array("[1, 2]"))     # a run identity that is not a JSON object
    with pytest.raises(ValueError, match="not a checkpoint of an MPI run"):
        ckpt.checked_run_checkpoint(path, {"a": 1}, "an MPI run")


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "m.npz"
    fio.save(fastmlp.MLP([4, 8, 1], seed=0), path)
    old = path.read_bytes()

    def fill_the_disk(f):
        f.write(b"half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as info:
        atomic_write(path, fill_the_disk)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)
    assert "nothing was written" in str(info.value)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.npz"]
    # write() reading its input (the predict command reads the catalog while it writes):
    # an error naming that file is not relabelled as one of the output
    other = str(tmp_path / "catalog.csv")

    def read_missing_input(f):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), other)

    with pytest.raises(FileNotFoundError) as info:
        atomic_write(tmp_path / "out.csv", read_missing_input)
    assert info.value.filename == other


def test_a_directory_refusing_the_temporary_file_names_the_target(tmp_path, monkeypatch):
    """A read-only directory (root ignores permissions, so mkstemp's error is simulated):
    the message named a '.m.npz.<host>.<pid>-xxxx.tmp' file the user never asked for."""
    path = tmp_path / "m.npz"

    def refuse(prefix, suffix, dir):
        name = os.path.join(dir, prefix + "abcd" + suffix)
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as info:
        fio.save(fastmlp.MLP([4, 8, 1], seed=0), path)
    assert info.value.filename == str(path)
    assert ".tmp" not in str(info.value)


def test_a_file_size_limit_in_a_real_process_names_the_file(tmp_path):
    """RLIMIT_FSIZE: the write fails with EFBIG (Python ignores SIGXFSZ); the error said
    only '[Errno 27] File too large'."""
    path = tmp_path / "m.npz"
    fio.save(fastmlp.MLP([4, 8, 1], seed=0), path)
    old = path.read_bytes()
    code = textwrap.dedent(f"""
        import resource, fastmlp
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        try:
            fastmlp.io.save(fastmlp.MLP([64, 128, 128, 1], seed=1), {str(path)!r})
        except OSError as exc:
            print(exc)
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "File too large" in out.stdout and str(path) in out.stdout
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.npz"]
    assert resource.getrlimit(resource.RLIMIT_FSIZE)    # this process's limit untouched


@pytest.fixture
def cache(fresh_tuning_cache, tuning_stubs):
    """Tuning on, a fresh cache directory, a fixed CPU name, nothing remembered
    (conftest.py) and the measurements stubbed."""
    return fresh_tuning_cache


def test_two_processes_writing_the_tuning_cache_keep_each_others_entries(cache):
    tuning.blas_crossover("numba", "float32")        # this process: loads, measures, saves
    path = tuning.cache_path()
    # another process, started at the same time, measured something else and saved it
    on_disk = json.loads(open(path).read())
    on_disk["entries"]["crossover/other/float64/measured-elsewhere"] = 777.0
    with open(path, "w") as f:
        json.dump(on_disk, f)
    tuning.blas_crossover("numba", "float64")        # this process saves again
    entries = json.loads(open(path).read())["entries"]
    assert entries.get("crossover/other/float64/measured-elsewhere") == 777.0
    assert any(k.startswith("crossover/numba/float64") for k in entries)
    assert any(k.startswith("crossover/numba/float32") for k in entries)


@pytest.mark.parametrize("latest", [
    {"machine": None, "meta": {"timestamp": "t"}},
    {"machine": {"sgemm_peak_gflops": "fast"}, "meta": {"timestamp": "t"}},
    {"machine": {}, "meta": {"timestamp": "t"}, "optimizers": {"rows": [3]}}])
def test_a_malformed_latest_json_does_not_cost_the_benchmark_run(tmp_path, latest):
    """slower_than_latest runs before the results are written: an exception there lost
    a whole full benchmark run to a hand-edited or foreign latest.json."""
    from fastmlp.bench.output import slower_than_latest
    (tmp_path / "latest.json").write_text(json.dumps(latest))
    results = {"meta": {"mode": "full"}, "machine": {"sgemm_peak_gflops": 1.0},
               "optimizers": {"rows": [{"bandwidth_alongside_gbs": 1.0}]}}
    assert slower_than_latest(results, tmp_path) is None
    # a well-formed latest.json of a faster machine is still reported
    (tmp_path / "latest.json").write_text(json.dumps(
        {"machine": {"sgemm_peak_gflops": 100.0}, "meta": {"timestamp": "t"}}))
    assert "sgemm peak 1.0 GFLOP/s against 100.0" in slower_than_latest(results, tmp_path)
