"""Distributed training probed as a user would break it: MPI ranks that disagree on the model
or the settings, and a rank that fails in the middle of training, must stop every rank with a
clear error instead of leaving the others waiting forever in a collective call."""

import os
import subprocess
import sys
import textwrap

import pytest

from test_distributed_mpi import _MPI_MISSING, _mpirun

pytestmark = pytest.mark.skipif(_MPI_MISSING is not None or _mpirun() is None,
                                reason=_MPI_MISSING or "no mpirun/mpiexec on PATH "
                                "(pip install fastmlp[mpi] brings MPICH's)")

_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from mpi4py import MPI
    from fastmlp import MLP
    from fastmlp.data import make_photometric_catalog
    from fastmlp.distributed import mpi as fm
    r = MPI.COMM_WORLD.Get_rank()
    case = sys.argv[1]
    cat = make_photometric_catalog(400, seed=1, dtype="float64")
    model = dict(sizes=[4, 8, 1], dtype="float64")
    kw = dict(epochs=2, batch_size=64, lr=1e-2, progress=False)
    if case == "sizes" and r == 1:
        model["sizes"] = [4, 9, 1]
    if case == "dtype" and r == 1:
        model["dtype"] = "float32"
    if case == "epochs" and r == 1:
        kw["epochs"] = 3
    if case == "numpy epochs":      # NumPy integers compare by value, not by their type
        kw["epochs"] = np.int64(2 + r)
    if case == "resume on rank 0 only":     # refused on rank 1 alone, before any agreement
        kw["resume"] = True
        if r == 0:
            kw["checkpoint"] = sys.argv[2]
    if case == "bad epochs on rank 1" and r == 1:
        kw["epochs"] = 0
    if case == "fails":         # rank 1's gradient fails at its 3rd step
        from fastmlp import backends
        kernels = backends.get_backend("numpy")
        real, calls = kernels.mlp_loss_grad, []
        def failing(*args):
            calls.append(1)
            if r == 1 and len(calls) == 3:
                raise MemoryError("rank 1 ran out of memory")
            return real(*args)
        kernels.mlp_loss_grad = failing
    if case == "metric fails":  # rank 1's forward pass for the epoch's training metric
        from fastmlp import backends
        kernels = backends.get_backend("numpy")
        def failing_forward(*args):
            if r == 1:
                raise MemoryError("rank 1 ran out of memory")
        kernels.mlp_forward = failing_forward
    m = MLP(model["sizes"], seed=0, dtype=model["dtype"], backend="numpy")
    try:
        fm.mpi_fit(m, cat.X, cat.y, **kw)
        print(f"rank {r} finished", flush=True)
    except Exception as exc:
        print(f"rank {r} {type(exc).__name__}: {exc}", flush=True)
""")


def _run_two_ranks(tmp_path, case):
    script = tmp_path / "probe.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    try:
        r = subprocess.run([_mpirun(), "-n", "2", sys.executable, str(script), case,
                            str(tmp_path / "run.ckpt")],
                           capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: the ranks were still waiting for each other after 60 s")
    return r.stdout


@pytest.mark.parametrize("case, setting, values", [
    ("sizes", "layer sizes", "rank 0 has [4, 8, 1], rank 1 has [4, 9, 1]"),
    ("dtype", "dtype", "rank 0 has 'float64', rank 1 has 'float32'"),
    ("epochs", "epochs", "rank 0 has 2, rank 1 has 3"),
    ("numpy epochs", "epochs", "rank 0 has 2, rank 1 has 3")])
def test_ranks_that_disagree_on_the_model_or_settings_all_stop(tmp_path, case, setting,
                                                                values):
    # a different layer size or dtype made Bcast / Allreduce wait forever; different epochs
    # left rank 0 waiting for rank 1's extra epoch
    out = _run_two_ranks(tmp_path, case)
    for rank in (0, 1):
        assert (f"rank {rank} ValueError: the ranks disagree on {setting}: {values}; every "
                "rank must call mpi_fit with the same model and settings") in out, out


def test_a_rank_failing_mid_training_stops_every_rank(tmp_path):
    # rank 1 raised between two Allreduce calls and rank 0 waited in the next one forever
    out = _run_two_ranks(tmp_path, "fails")
    assert "rank 1 MemoryError: rank 1 ran out of memory" in out, out
    assert ("rank 0 RuntimeError: 1 other rank failed at step 3 (epoch 1; its error is on "
            "its stderr), so every rank stops") in out, out


def test_a_rank_failing_in_the_training_metric_stops_every_rank(tmp_path):
    out = _run_two_ranks(tmp_path, "metric fails")
    assert "rank 1 MemoryError: rank 1 ran out of memory" in out, out
    assert ("rank 0 RuntimeError: 1 other rank failed computing the training metric (its "
            "error is on its stderr), so every rank stops") in out, out


@pytest.mark.parametrize("case, refused", [
    ("resume on rank 0 only", "ValueError: resume=True continues from checkpoint=PATH"),
    ("bad epochs on rank 1", "ValueError: epochs must be"),
])
def test_an_argument_refused_on_one_rank_stops_every_rank(tmp_path, case, refused):
    # the checks ran before the ranks compared settings: rank 1 raised alone and rank 0
    # waited in the agreement's allgather forever
    out = _run_two_ranks(tmp_path, case)
    assert f"rank 1 {refused}" in out, out
    assert "rank 0 RuntimeError: rank 1 stopped, so every rank stops: ValueError: " in out, out
