"""The MPI command never overwrites its own input, nor one output with another: --save,
--checkpoint or --output naming the --data catalog (or each other) replaced the catalog
(or the checkpoint) after training.  Refused before any work, on every rank."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastmlp.distributed import mpi

pytestmark = pytest.mark.skipif(not mpi.AVAILABLE, reason="mpi4py is not importable "
                                f"({mpi.UNAVAILABLE_REASON}); pip install fastmlp[mpi]")

N = 200


def _catalog(tmp_path):
    rng = np.random.default_rng(4)
    rec = np.empty(N, dtype=[("u", "f8"), ("g", "f8"), ("label", "i4")])
    rec["u"], rec["g"], rec["label"] = rng.normal(size=N), rng.normal(size=N), \
        rng.integers(0, 2, N)
    path = tmp_path / "cat.npy"
    np.save(path, rec)
    return path


def _flags(path):
    return ["--data", str(path), "--features", "u,g", "--label", "label", "--layers", "2,4,1",
            "--batch-size", "32", "--epochs", "1", "--no-progress"]


@pytest.mark.parametrize("flag", ["--save", "--checkpoint", "--output"])
def test_an_output_that_is_the_catalog_is_refused_before_training(tmp_path, capsys, flag):
    path = _catalog(tmp_path)
    before = path.read_bytes()
    os.symlink(path, tmp_path / "alias.npy")        # the same file by another name too
    for out in (path, tmp_path / "alias.npy"):
        code = mpi._main_or_error(_flags(path) + [flag, str(out)])
        out_text, err = capsys.readouterr()
        assert code == 2 and out_text == "" and "Traceback" not in err    # nothing trained
        assert (f"(rank 0): error: {flag} {out} is the same file as the input {path}; "
                "refusing to overwrite an input (choose another output path)") in err, err
    assert path.read_bytes() == before


@pytest.mark.parametrize("first, second", [("--save", "--checkpoint"),
                                           ("--output", "--save")])
def test_two_outputs_on_one_file_are_refused(tmp_path, capsys, first, second):
    path, out = _catalog(tmp_path), tmp_path / "m.npz"
    code = mpi._main_or_error(_flags(path) + [first, str(out), second, str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "one would overwrite the other (give each output its own path)" in err
    assert not out.exists()


def _mpirun():
    here = os.path.join(os.path.dirname(sys.executable), "mpirun")
    return here if os.path.exists(here) else shutil.which("mpirun")


@pytest.mark.skipif(_mpirun() is None, reason="no mpirun on PATH")
def test_every_rank_refuses_to_overwrite_the_catalog(tmp_path):
    path = _catalog(tmp_path)
    before = path.read_bytes()
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    r = subprocess.run([_mpirun(), "-n", "2", sys.executable, "-m", "fastmlp.distributed.mpi"]
                       + _flags(path) + ["--save", str(path)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode != 0 and "trained" not in r.stdout, r.stdout + r.stderr
    for rank in (0, 1):
        assert r.stderr.count(f"(rank {rank}): error: --save {path} is the same file as the "
                              "input") == 1, r.stderr
    assert path.read_bytes() == before
