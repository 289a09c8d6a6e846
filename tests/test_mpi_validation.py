"""mpi_fit behaves like fit on the same loop: validation held out of the catalog, early
stopping and callbacks agreed over the ranks, fit's divergence advice for huge targets.
Tests named one_rank run in this process (COMM_WORLD of one rank); the others run a small
script under ``mpirun -n 2``."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP
from fastmlp.backends import get_backend
from fastmlp.codes import loss_code
from fastmlp.data import make_photometric_catalog
from fastmlp.training.loop import loss_and_metric

from fastmlp.distributed import mpi
from fastmlp.distributed.mpi import mpi_fit

_MPI_MISSING = None if mpi.AVAILABLE else \
    f"mpi4py is not importable ({mpi.UNAVAILABLE_REASON}); pip install fastmlp[mpi]"
if _MPI_MISSING is None and shutil.which("mpirun") is None:
    _MPI_MISSING = "no mpirun on PATH (pip install fastmlp[mpi] brings MPICH's)"

pytestmark = pytest.mark.skipif(_MPI_MISSING is not None, reason=str(_MPI_MISSING))

N = 1200
KW = dict(batch_size=64, lr=1e-2, progress=False)


def _model():
    return MLP([4, 8, 1], seed=0, dtype="float64", backend="numpy")


def _held_out_loss(params, X, y, fraction, seed=0):
    """(loss, accuracy) of params on the catalog rows validation_rows holds out, computed in
    one process over the whole catalog (standardised as standardize=True does)."""
    m = _model()
    m.params[...] = params
    held = mpi.validation_rows(0, X.shape[0], fraction, seed)
    Xs = (X[held] - X.mean(0)) / X.std(0)
    Y = y[held].astype(np.float64)[:, None]
    return loss_and_metric(m, get_backend("numpy"), Xs, Y, np.ones(held.sum()),
                           loss_code("bce"))


def test_validation_rows_do_not_depend_on_where_the_slices_begin():
    whole = mpi.validation_rows(0, N, 0.25, 3)
    assert 0.2 < whole.mean() < 0.3
    for cuts in ([0, 600, N], [0, 1, 401, 1000, N]):
        parts = [mpi.validation_rows(a, b - a, 0.25, 3) for a, b in zip(cuts[:-1], cuts[1:])]
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert not np.array_equal(mpi.validation_rows(0, N, 0.25, 4), whole)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_one_rank_huge_regression_targets_advise_rescaling_them():
    # as fit: y of 1e20 overflows the float32 squared error whatever the lr; mpi_fit said
    # "Try a smaller lr", which cannot help
    cat = make_photometric_catalog(256, seed=1, dtype="float32")
    with pytest.raises(fastmlp.TrainingDiverged, match=r"targets reach \|y\| = 1e\+20: "
                       r"rescale them") as info:
        mpi_fit(MLP([4, 8, 1], seed=0, backend="numpy"), cat.X, cat.y * 1e20 + 1.0,
                loss="mse", epochs=2, batch_size=64, progress=False)
    assert "smaller lr" not in str(info.value)


def test_one_rank_validation_is_held_out_and_measured_each_epoch():
    cat = make_photometric_catalog(N, seed=4, dtype="float64")
    m = _model()
    h = mpi_fit(m, cat.X, cat.y, epochs=2, standardize=True, validation=0.25, **KW)
    held = mpi.validation_rows(0, N, 0.25, 0)
    assert h.distributed["rows"] == N - held.sum()     # trained on the other rows only
    assert len(h.val_loss) == 2 and len(h.metrics["val_accuracy"]) == 2
    loss, acc = _held_out_loss(m.params, cat.X, cat.y, 0.25)
    assert h.val_loss[-1] == pytest.approx(loss, rel=1e-9)
    assert h.metrics["val_accuracy"][-1] == pytest.approx(acc, rel=1e-12)
    r = mpi_fit(_model(), cat.X, cat.X[:, 0], loss="mse", epochs=1, validation=0.25, **KW)
    assert len(r.metrics["val_rmse"]) == 1 and "val_accuracy" not in r.metrics


def test_one_rank_early_stopping_restores_the_best_parameters():
    # min_delta 1e9: only epoch 1 improves (on inf), so training stops after epoch 2 and
    # ends with epoch 1's parameters
    cat = make_photometric_catalog(N, seed=4, dtype="float64")
    m = _model()
    h = mpi_fit(m, cat.X, cat.y, epochs=6, validation=0.2,
                early_stopping={"patience": 1, "min_delta": 1e9}, **KW)
    assert h.epochs == 2 and h.stopped_early and h.best_epoch == 1
    one = _model()
    mpi_fit(one, cat.X, cat.y, epochs=1, validation=0.2, **KW)
    np.testing.assert_array_equal(m.params, one.params)


def test_one_rank_callbacks_take_fits_arguments_and_can_stop():
    cat = make_photometric_catalog(N, seed=4, dtype="float64")
    m, seen = _model(), []

    def cb(epoch, hist, model):
        seen.append((epoch, len(hist.val_loss), model is m))
        return epoch == 2
    h = mpi_fit(m, cat.X, cat.y, epochs=5, validation=0.2, callbacks=[cb], **KW)
    assert seen == [(1, 1, True), (2, 2, True)] and h.epochs == 2


@pytest.mark.parametrize("bad, error, message", [
    (dict(validation=1.5), ValueError, r"validation must be a fraction in \[0, 1\).*got 1.5"),
    (dict(validation=True), ValueError, r"validation must be a fraction .*got True"),
    (dict(early_stopping=3), ValueError, r"early_stopping needs validation data"),
    (dict(callbacks=print), TypeError, r"callbacks must be a list of callables")])
def test_one_rank_bad_validation_early_stopping_and_callbacks_are_named(bad, error, message):
    cat = make_photometric_catalog(256, seed=1, dtype="float64")
    with pytest.raises(error, match=message):
        mpi_fit(_model(), cat.X, cat.y, epochs=1, **KW, **bad)


def test_one_rank_resume_refuses_another_validation_fraction(tmp_path):
    cat = make_photometric_catalog(N, seed=4, dtype="float64")
    ck = tmp_path / "ck.npz"
    mpi_fit(_model(), cat.X, cat.y, epochs=1, checkpoint=ck, validation=0.2, **KW)
    for other, seen in ((0.1, "0.1"), (0.0, "None")):
        with pytest.raises(ValueError, match=rf"different run \(validation: checkpoint 0.2, "
                           rf"now {seen}\)"):
            mpi_fit(_model(), cat.X, cat.y, epochs=2, checkpoint=ck, resume=True,
                    validation=other, **KW)
    with pytest.raises(ValueError, match=r"different run \(early_stopping: checkpoint None"):
        mpi_fit(_model(), cat.X, cat.y, epochs=2, checkpoint=ck, resume=True,
                validation=0.2, early_stopping=2, **KW)


def test_one_rank_resume_keeps_the_early_stopping_state(tmp_path):
    # patience 2, min_delta 1e9: epoch 1 is the best, the run stops after epoch 3 with its
    # parameters; cut after epoch 2, the resumed run must still count epoch 2 and restore
    # epoch 1's parameters (a fresh stopper would take epoch 3 as its best)
    cat = make_photometric_catalog(N, seed=4, dtype="float64")
    kw = dict(KW, validation=0.2, early_stopping={"patience": 2, "min_delta": 1e9})
    full = _model()
    hf = mpi_fit(full, cat.X, cat.y, epochs=6, **kw)
    assert hf.epochs == 3 and hf.best_epoch == 1
    ck = tmp_path / "ck.npz"
    mpi_fit(_model(), cat.X, cat.y, epochs=2, checkpoint=ck, **kw)
    resumed = _model()
    h = mpi_fit(resumed, cat.X, cat.y, epochs=6, checkpoint=ck, resume=True, **kw)
    assert h.epochs == 3 and h.stopped_early and h.best_epoch == 1    # the whole History
    np.testing.assert_array_equal(h.val_loss, hf.val_loss)
    np.testing.assert_array_equal(resumed.params, full.params)
    again = _model()     # resuming the finished run trains no further
    h = mpi_fit(again, cat.X, cat.y, epochs=6, checkpoint=ck, resume=True, **kw)
    assert h.epochs == 3 and h.stopped_early
    np.testing.assert_array_equal(again.params, full.params)


_SCRIPT = """
import json, sys, warnings
import numpy as np
import fastmlp
from fastmlp import MLP
from fastmlp.distributed.mpi import mpi_fit
from mpi4py import MPI

rank = MPI.COMM_WORLD.Get_rank()
mode, out = sys.argv[1], sys.argv[2]
cat = fastmlp.make_photometric_catalog({n}, seed=4, dtype="float64")
m = MLP([4, 8, 1], seed=0, dtype="float64", backend="numpy")
kw = dict(batch_size=64, lr=1e-2, progress=False, standardize=True, validation=0.25)


def cb(epoch, hist, model):
    if mode == "raise" and rank == 1 and epoch == 2:
        raise ValueError("boom on rank 1")
    return mode == "stop" and rank == 1 and epoch == 2


patience = 1 + (mode == "disagree" and rank == 1)
if mode == "schedule":      # a schedule far longer than the run, its warning an error
    warnings.simplefilter("error", fastmlp.schedules.ScheduleWarning)
    kw["schedule"] = "cosine:T=100000"
try:
    h = mpi_fit(m, cat.X, cat.y, epochs=6, callbacks=[cb],
                early_stopping={{"patience": patience, "min_delta": 1e9}}
                if mode in ("early", "disagree") else None, **kw)
except Exception as exc:
    print(f"rank {{rank}}: {{type(exc).__name__}}: {{exc}}", file=sys.stderr, flush=True)
    sys.exit(3)
with open(f"{{out}}-{{rank}}.json", "w") as f:
    json.dump(dict(val_loss=h.val_loss, val_accuracy=h.metrics["val_accuracy"],
                   epochs=h.epochs, best=h.best_epoch, rows=h.distributed["rows"],
                   params=m.params.tolist()), f)
"""


def _two_ranks(tmp_path, mode):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(n=N)))
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(sys.path))
    try:
        r = subprocess.run([shutil.which("mpirun"), "-n", "2", sys.executable, str(script),
                            mode, str(tmp_path / "out")], capture_output=True, text=True,
                           timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{mode}: the ranks were still waiting for each other after 60 s")
    outs = [tmp_path / f"out-{k}.json" for k in range(2)]
    return r, [json.loads(p.read_text()) if p.exists() else None for p in outs]


def test_two_ranks_share_the_validation_history_and_stop_early_together(tmp_path):
    r, (a, b) = _two_ranks(tmp_path, "early")
    assert r.returncode == 0, r.stderr
    assert a == b                       # the same history and parameters on both ranks
    assert a["epochs"] == 2 and a["best"] == 1
    cat = make_photometric_catalog(N, seed=4, dtype="float64")
    # the rows one process would hold out, whatever the rank count
    assert a["rows"] == N - mpi.validation_rows(0, N, 0.25, 0).sum()
    # the merged loss of the ranks' rows is the loss over the union, of the restored
    # (epoch 1) parameters
    loss, acc = _held_out_loss(np.array(a["params"]), cat.X, cat.y, 0.25)
    assert a["val_loss"][0] == pytest.approx(loss, rel=1e-9)
    assert a["val_accuracy"][0] == pytest.approx(acc, rel=1e-12)


def test_two_ranks_a_callback_stopping_on_one_rank_stops_both(tmp_path):
    r, (a, b) = _two_ranks(tmp_path, "stop")
    assert r.returncode == 0, r.stderr
    assert a["epochs"] == b["epochs"] == 2 and a["params"] == b["params"]


def test_two_ranks_a_callback_raising_on_one_rank_stops_both(tmp_path):
    r, outs = _two_ranks(tmp_path, "raise")
    assert r.returncode != 0 and outs == [None, None]
    assert "rank 1: ValueError: boom on rank 1" in r.stderr
    assert ("rank 0: RuntimeError: rank 1 stopped, so every rank stops: ValueError: boom on "
            "rank 1") in r.stderr


def test_two_ranks_with_other_early_stopping_settings_all_stop_before_training(tmp_path):
    # rank 0 would stop after epoch 2 and rank 1 after epoch 3, waiting for rank 0 forever
    r, outs = _two_ranks(tmp_path, "disagree")
    assert r.returncode != 0 and outs == [None, None]
    for rank in (0, 1):
        assert (f"rank {rank}: ValueError: the ranks disagree on early_stopping: rank 0 has "
                "{'min_delta': 1000000000.0, 'patience': 1}, rank 1 has") in r.stderr, r.stderr


def test_one_rank_a_schedule_longer_than_the_run_is_warned_of():
    """As fit: a cosine T of 5000 in a run of 2 x 19 steps ends near the base lr, which
    nothing said; the warning points at the caller's line (directly or through
    fastmlp.distributed.mpi_fit)."""
    cat = make_photometric_catalog(N, seed=4, dtype="float64")
    for trainer in (mpi_fit, fastmlp.distributed.mpi_fit):
        with pytest.warns(fastmlp.schedules.ScheduleWarning,
                          match=r"schedule: T=5000 is longer than the 38 steps the run has: "
                                r"the lr ends at ") as seen:
            trainer(_model(), cat.X, cat.y, epochs=2, schedule="cosine:T=5000", **KW)
        assert len(seen) == 1 and seen[0].filename == __file__
    with warnings.catch_warnings():   # a schedule that fits the run: nothing to say
        warnings.simplefilter("error", fastmlp.schedules.ScheduleWarning)
        mpi_fit(_model(), cat.X, cat.y, epochs=2, schedule="cosine:T=38", **KW)


def test_two_ranks_a_schedule_warning_made_an_error_stops_every_rank(tmp_path):
    """Under -W error (warnings.simplefilter("error")) rank 0's ScheduleWarning was raised
    on rank 0 alone, outside any agreement, and rank 1 waited forever in the first step's
    Allreduce: now every rank stops, rank 1 naming rank 0's error."""
    r, outs = _two_ranks(tmp_path, "schedule")
    assert r.returncode != 0 and outs == [None, None]
    said = "ScheduleWarning: schedule: T=100000 is longer than the"
    assert f"rank 0: {said}" in r.stderr, r.stderr
    assert f"rank 1: RuntimeError: rank 0 stopped, so every rank stops: {said}" in r.stderr
