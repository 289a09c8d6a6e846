"""Dask scale-out: sweeps and cross-validation as tasks equal the serial recipes, K=1 SGD
model averaging equals synchronous gradient averaging, a killed worker does not lose the run,
checkpoints resume exactly, and 2-worker training matches single-process accuracy."""

import os
import re
import signal
import threading
import types
import warnings

import numpy as np
import pytest

pytest.importorskip("dask", reason="the dask extra is not installed (pip install fastmlp[dask])")
pytest.importorskip("distributed", reason="distributed is not installed (fastmlp[dask])")

import dask  # noqa: E402
import dask.array as da  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import metrics  # noqa: E402
from fastmlp.backends import reference  # noqa: E402
from fastmlp.data import make_photometric_catalog  # noqa: E402
from fastmlp.distributed import dask as fd  # noqa: E402
from fastmlp.training import stratified_split  # noqa: E402

from conftest import data_file  # noqa: E402


@pytest.fixture(scope="module")
def small():
    cat = make_photometric_catalog(1200, seed=3, dtype="float64")
    X = (cat.X - cat.X.mean(0)) / cat.X.std(0)
    return X, cat.y


def _mk64():
    return fastmlp.MLP([4, 8, 1], seed=0, dtype="float64", backend="numpy")


@pytest.mark.parametrize("factor", [0, float("nan")])
def test_sweep_refuses_a_bad_divergence_factor_before_any_task(factor):
    # the serial sweep's rule and message (a factor <= 1 calls every run diverged)
    with pytest.raises(ValueError, match=r"divergence_factor must be a number > 1 .* got "):
        fd.dask_lr_sweep(_mk64, np.ones((10, 4)), np.zeros(10), client=None,
                         divergence_factor=factor)


def test_sweep_equals_serial(client, small):
    X, y = small
    warm = fd.warm_workers(client, "numpy")
    assert len(warm) == 2 and set(warm.values()) == {"numpy"}
    lrs = np.logspace(-4, 0, 5)
    r = fd.dask_lr_sweep(_mk64, X, y, client, lrs=lrs, iterations=30, batch_size=32)
    s = fastmlp.lr_sweep(_mk64, X, y, lrs=lrs, iterations=30, batch_size=32)
    assert r.best_lr == s.best_lr
    np.testing.assert_array_equal(r.final_loss, s.final_loss)
    np.testing.assert_array_equal(r.diverged, s.diverged)
    for a, b in zip(r.losses, s.losses):
        np.testing.assert_array_equal(a, b)


def test_cross_validate_equals_serial(client, small):
    X, y = small
    kw = dict(k=3, epochs=2, batch_size=64, lr=1e-2, positive=1)
    r = fd.dask_cross_validate(_mk64, X, y, client, **kw)
    s = fastmlp.cross_validate(_mk64, X, y, **kw)
    # NaN (0/0 contamination of a fold that selects nothing) never compares equal
    np.testing.assert_equal(r.folds, s.folds)
    np.testing.assert_equal(r.mean, s.mean)
    assert r.fold_sizes == s.fold_sizes


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:X. column 1 reaches:UserWarning")  # warned before training
def test_an_overflowed_optimizer_state_stops_the_run(client, small):
    # float32 inputs of 1e30: Adam's squared gradients overflow to inf on the first step
    # while the parameters stay finite; the run used to finish on a flat 1e29 loss
    X, y = small
    X = X.astype(np.float32) * np.float32([1, 1e30, 1, 1])
    model = fastmlp.MLP([4, 8, 1], seed=0, backend="numpy")
    p0 = model.params.copy()
    with pytest.raises(fastmlp.TrainingDiverged, match=r"training diverged in round 1 .*: the "
                       r"average of the optimizer state \(exp_avg_sq\) became non-finite"
                       r".*standardize=True"):
        fd.fit(model, X, y, client=client, epochs=1, batch_size=64, standardize=False,
               progress=False, seed=5)
    assert np.array_equal(model.params, p0)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("sync_every, seen", [
    (1, r"in round 1 \(epoch 1, steps 1..1, lr 1e\+38\): the average of the parameters "
        "became non-finite"),                                  # the check after averaging
    (4, r"at step 2 on shard \d \(epoch 1, round 1, lr 1e\+38\): the batch loss was nan")])
def test_a_huge_lr_on_a_standardised_model_advises_a_smaller_lr(client, sync_every, seen):
    # fit's rule (divergence_advice): standardize=True is advised only to a model without
    # standardisation whose inputs are huge; the Dask trainer advised it to this one
    cat = make_photometric_catalog(1200, seed=3, dtype="float64")
    model = fastmlp.MLP([4, 8, 1], seed=0, backend="numpy")   # float32: lr 1e38 overflows
    with pytest.raises(fastmlp.TrainingDiverged, match=f"training diverged {seen}") as info:
        fd.fit(model, cat.X.astype(np.float32), 1e3 * cat.X[:, 0], client=client,
               loss="mse", optimizer="sgd", lr=1e38, sync_every=sync_every, epochs=1,
               batch_size=64, standardize=True, progress=False, seed=5)
    assert model.standardization is not None
    assert "standardi" not in str(info.value)
    assert str(info.value).endswith("Try a smaller lr (this run's was 1e+38).")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:X. column 1 reaches:UserWarning")  # warned before training
def test_huge_unstandardised_inputs_advise_standardize(client):
    # sgd's loss overflows on a column of 1e30 within a round: the trainer said only "Try a
    # smaller lr", which does not cure it
    cat = make_photometric_catalog(1200, seed=3, dtype="float64")
    X = cat.X * np.array([1, 1e30, 1, 1])
    big = re.escape(f"{np.abs(X).max():.3g}")
    with pytest.raises(fastmlp.TrainingDiverged, match=r"training diverged at step \d+ on shard "
                       r"\d .*: the batch loss was .*The inputs are not standardised and "
                       rf"column 1 reaches \|x\| = {big}: pass standardize=True"):
        fd.fit(_mk64(), X, cat.y, client=client, optimizer="sgd", lr=0.1, sync_every=4,
               epochs=3, batch_size=64, standardize=False, progress=False, seed=5)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("sync_every, targets, optimizer, lr", [
    (1, "1e20", "adam", 1e-3), (4, "1e20", "adam", 1e-3), (4, "1e7", "sgd", 1e-2)])
def test_regression_on_huge_targets_advises_rescaling_them(client, sync_every, targets,
                                                          optimizer, lr):
    # fit's rule (target_scale_advice): the float32 squared error of targets of 1e20
    # overflows whatever the lr, and sgd's steps on targets of 1e7 blow up; the Dask trainer
    # said "Try a smaller lr" where the targets want rescaling
    cat = make_photometric_catalog(1200, seed=3)
    y = cat.y * 1e20 + 1.0 if targets == "1e20" else 3e6 * (1.0 + cat.X[:, 0])
    top = re.escape(f"{np.abs(y.astype(np.float32)).max():.3g}")
    model = fastmlp.MLP([4, 8, 1], seed=0, backend="numpy")
    with pytest.raises(fastmlp.TrainingDiverged, match=r"training diverged .*The targets reach "
                       rf"\|y\| = {top}: rescale them \(train on y / scale") as info:
        fd.fit(model, cat.X, y, client=client, loss="mse", optimizer=optimizer, lr=lr,
               epochs=3, sync_every=sync_every, batch_size=64, progress=False, seed=5)
    assert "smaller lr" not in str(info.value)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_k1_sgd_model_averaging_is_synchronous_gradient_averaging(client, small, momentum):
    """K=1: averaging the shards' parameters (and momentum buffers) after one local step
    equals one step of (momentum) SGD on the union of their mini-batches."""
    X, y = small
    model = _mk64()
    theta = model.params.copy()
    buf = np.zeros_like(theta)
    hist = fd.fit(model, X, y, client=client, optimizer="sgd", lr=0.3, epochs=1,
                  optimizer_kwargs={"momentum": momentum},
                  batch_size=64, sync_every=1, standardize=False, progress=False, seed=5)
    info = hist.distributed
    assert info["n_shards"] == 2 and info["rounds"] == info["steps_per_epoch"] == 19
    # only the state rows in use travel: parameters (+ momentum buffer), both ways, 2 shards
    assert info["bytes_per_round"] == 2 * 2 * model.params.nbytes * (2 if momentum else 1)
    # single-process reference: each step is one SGD step on the union of the shards'
    # mini-batches, gradient of the weighted-mean loss over that union
    offs = np.concatenate([[0], np.cumsum(info["shard_rows"])])
    Y = y.astype(np.float64)[:, None]
    sizes, acts = model.sizes_array, model.acts_array
    g = np.empty_like(theta)
    for t in range(info["steps_per_epoch"]):
        rows = np.concatenate([offs[s] + fd.batch_rows(info["shard_rows"][s],
                                                        info["local_batch"][s], t, 5, s)
                               for s in range(2)])
        reference.mlp_loss_grad(g, theta, X[rows], Y[rows], np.ones(rows.size), sizes, acts, 0)
        reference.sgd_update(theta, g, buf, t + 1, 0.3, momentum, 0, 0, False, False)
    assert not np.allclose(theta, _mk64().params)
    np.testing.assert_allclose(model.params, theta, rtol=1e-11, atol=1e-13)


def test_killed_worker_does_not_lose_the_run(client, tmp_path):
    """A worker process is SIGKILLed while it runs a round (its shard dies with it); with
    allowed-failures=0 the scheduler reports the round as failed (KilledWorker) and fit
    submits it again from the last averaged parameters: the run finishes with the same
    parameters as a run without failure."""
    cat = make_photometric_catalog(4000, seed=3, dtype="float64")
    X, y = cat.X, cat.y
    kw = dict(optimizer="adam", lr=1e-2, epochs=4, batch_size=512, sync_every=8,
              progress=False, seed=1)

    def mk():
        return fastmlp.MLP([4, 128, 128, 1], seed=0, dtype="float64", backend="numpy")

    ref = mk()
    fd.fit(ref, X, y, client=client, **kw)

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        killer = fd.local_client(n_workers=2, threads_per_worker=1)
    timers = []
    try:
        pids = killer.run(os.getpid)

        def kill_during_next_round(rnd, hist, model):
            if rnd == 1 and not timers:
                t = threading.Timer(0.02, os.kill, (sorted(pids.values())[0], signal.SIGKILL))
                t.start()
                timers.append(t)

        ck = tmp_path / "ck.npz"
        model = mk()
        hist = fd.fit(model, X, y, client=killer, checkpoint=ck,
                      round_callbacks=[kill_during_next_round], **kw)
        pids_after = killer.run(os.getpid)
    finally:
        for t in timers:
            t.join()
        cluster = killer.cluster
        killer.close()
        cluster.close()
    assert sorted(pids.values())[0] not in pids_after.values()  # the worker really died
    print("retries:", hist.distributed["retries"], hist.distributed["failed_rounds"])
    # every round is a pure function of the last averaged parameters: same answer
    np.testing.assert_array_equal(model.params, ref.params)
    assert hist.epochs == 4 and np.isfinite(hist.loss).all()
    saved = fastmlp.distributed.load_checkpoint(ck)
    np.testing.assert_array_equal(saved["params"], model.params)
    assert int(saved["round"]) == hist.distributed["rounds"] == 4
    # no temp files left: the round checkpoint and the epochs' History
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz", "ck.npz.history.npz"]


def _flaky_round(marker, real, *args):
    """The real round task, except that its first call anywhere fails like a lost worker."""
    try:
        fd_ = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return real(*args)
    os.close(fd_)
    raise OSError("simulated: worker lost while running the round")


def test_failed_round_is_resubmitted_from_the_last_average(client, small, tmp_path,
                                                           monkeypatch):
    """Deterministic version of the worker-loss test: the first round task fails, fit
    records the failure, submits the round again and ends where an undisturbed run ends."""
    import functools
    import sys

    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    X, y = small
    kw = dict(optimizer="adam", lr=1e-2, epochs=1, batch_size=64, sync_every=4,
              progress=False)
    ref = _mk64()
    fd.fit(ref, X, y, client=client, **kw)
    marker = str(tmp_path / "failed-once")
    monkeypatch.setattr(fd, "_local_round",
                        functools.partial(_flaky_round, marker, fd._local_round))
    model = _mk64()
    hist = fd.fit(model, X, y, client=client, **kw)
    assert hist.distributed["retries"] == 1
    assert "simulated" in hist.distributed["failed_rounds"][0][1]
    np.testing.assert_array_equal(model.params, ref.params)


def _lost_once(marker, error, real, *args):
    """The real round task, except that its first call anywhere raises ``error`` (made
    here: a worker-side failure of distributed's own kinds)."""
    try:
        fd_ = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return real(*args)
    os.close(fd_)
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError
    dead = types.SimpleNamespace(address="tcp://simulated-dead-worker")
    raise {"KilledWorker": KilledWorker("round-task", dead, 0),
           "CommClosedError": CommClosedError("simulated: connection to the worker lost"),
           "TimeoutError": TimeoutError("simulated: the worker stopped answering")}[error]


def _faulty_shard_round(log, error, real, *args):
    """The real round task, except on shard 1 (args[15] is the shard id), whose every call
    raises ``error``: a fault of the task's own code or data.  Each call is logged."""
    with open(log, "a") as f:
        f.write(f"{args[15]}\n")
    if args[15] == 1:
        raise error
    return real(*args)


def _patched_round(monkeypatch, fn, *first):
    import functools
    import sys

    import cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(fd, "_local_round", functools.partial(fn, *first, fd._local_round))


def test_lost_worker_failures_are_retried_but_not_a_missing_file(client, small, tmp_path,
                                                                 monkeypatch):
    """Distributed's failures of a worker, its data or the network are submitted again (the
    run ends where an undisturbed run ends); an OSError of the task's own making (a
    partition's missing file) fails at once: it was retried like a lost worker."""
    X, y = small
    kw = dict(optimizer="adam", lr=1e-2, epochs=1, batch_size=64, sync_every=4,
              progress=False)
    ref = _mk64()
    fd.fit(ref, X, y, client=client, **kw)
    for error in ("KilledWorker", "CommClosedError", "TimeoutError"):
        _patched_round(monkeypatch, _lost_once, str(tmp_path / error), error)
        model = _mk64()
        hist = fd.fit(model, X, y, client=client, **kw)
        assert hist.distributed["retries"] == 1, error
        assert hist.distributed["failed_rounds"][0][1].startswith(error)
        np.testing.assert_array_equal(model.params, ref.params)
    monkeypatch.undo()
    log = tmp_path / "calls"
    _patched_round(monkeypatch, _faulty_shard_round, str(log), FileNotFoundError("p7.parquet"))
    with pytest.raises(FileNotFoundError, match=r"shard 1 of 2 .* failed in round 1: "
                       "p7.parquet"):
        fd.fit(_mk64(), X, y, client=client, max_retries=3, **kw)
    assert log.read_text().split().count("1") == 1


@pytest.mark.parametrize("error", [
    ZeroDivisionError("division by zero"), KeyError("flux_r"),
    ValueError("bad magnitude -9999 in row 17"),
    RuntimeError("simulated: a bug in a task")])
def test_a_deterministic_task_error_fails_at_once_naming_the_shard(client, small, tmp_path,
                                                                  monkeypatch, error):
    """An error of the task's own code or data fails the same way every time: it was
    submitted max_retries more times (every shard's task again) and then reported as
    'round 1 failed 4 times' (a RuntimeError), the original message left in the chain."""
    X, y = small
    log = tmp_path / "calls"
    _patched_round(monkeypatch, _faulty_shard_round, str(log), error)
    model = _mk64()
    p0 = model.params.copy()
    with pytest.raises(type(error), match=r"^.?shard 1 of 2 \(rows 600\.\.1199\) failed "
                       rf"in round 1: {re.escape(str(error))}") as info:
        fd.fit(model, X, y, client=client, optimizer="adam", lr=1e-2, epochs=1,
               batch_size=64, sync_every=4, max_retries=3, progress=False)
    assert info.value.__cause__ is not None and str(info.value.__cause__) == str(error)
    calls = log.read_text().split()
    assert calls.count("1") == 1 and calls.count("0") <= 1     # one attempt, no retries
    assert np.array_equal(model.params, p0)


def test_a_task_error_on_dask_input_names_the_shards_partitions(client, small, tmp_path,
                                                                 monkeypatch):
    X, y = small
    _patched_round(monkeypatch, _faulty_shard_round, str(tmp_path / "calls"),
                   ValueError("bad row"))
    with pytest.raises(ValueError, match=r"^shard 1 of 2 \(partitions 1, 3\) failed in round "
                       r"1: bad row$"):
        fd.fit(_mk64(), da.from_array(X, chunks=(300, 4)), da.from_array(y, chunks=300),
               client=client, epochs=1, batch_size=64, progress=False)


def _raise_own_error(s):
    raise ValueError(f"error {s}")


def test_two_shards_failing_differently_each_error_names_its_own_shard(client):
    """Client.gather raises the first failed future in set-iteration order (of random task
    keys), and the error was pinned on the lowest-index shard that failed: 'shard 0 of 2
    (rows 0..599) failed in round 1: error 1' (the error of shard 1), in about every other
    run.  Real futures of two failed tasks, both finished before the gather."""
    from distributed import wait
    rounds = types.SimpleNamespace(P=2, shard_text=["rows 0..599", "rows 600..1199"])
    for _ in range(20):
        futs = [client.submit(_raise_own_error, s, pure=False) for s in range(2)]
        wait(futs)
        with pytest.raises(ValueError) as info:
            client.gather(futs)
        named = str(fd._Rounds.naming_shard(rounds, info.value, futs, "round 1"))
        found = re.fullmatch(r"shard (\d) of 2 \(rows \d+\.\.\d+\) failed in round 1: "
                             r"error (\d)", named)
        assert found and found[1] == found[2], named


class _Failed:
    """A finished future as naming_shard sees it: its status and its task's error."""

    def __init__(self, error=None):
        self.status, self.error = ("error" if error else "finished"), error

    def exception(self, timeout=None):
        return self.error


def _named(exc, futs):
    rounds = types.SimpleNamespace(P=len(futs), shard_text=[f"rows {s}00.." for s in
                                                            range(len(futs))])
    return fd._Rounds.naming_shard(rounds, exc, futs, "round 1")


def test_a_task_error_is_pinned_on_the_shard_that_raised_it_or_on_none():
    first, second = ValueError("bad row 3"), ValueError("bad row 9")
    futs = [_Failed(first), _Failed(second)] + [_Failed() for _ in range(10)]
    assert str(_named(second, futs)) == "shard 1 of 12 (rows 100..) failed in round 1: " \
        "bad row 9"
    # gather's copy of the error (another object): known by its type and message
    assert str(_named(ValueError("bad row 3"), futs)).startswith("shard 0 of 12 ")
    # a message naming shard 10 does not name shard 1 (a substring test said it did)
    own = ValueError("rows copied from shard 10 are bad")
    named = _named(own, [_Failed(), _Failed(own)] + [_Failed() for _ in range(10)])
    assert str(named) == "shard 1 of 12 (rows 100..) failed in round 1: rows copied from " \
        "shard 10 are bad"
    # a message that names its shard already is left as it is
    own = ValueError("X (shard 1) contains 1 row with NaN")
    assert _named(own, [_Failed(), _Failed(own)]) is own
    # the same error on two shards, or one no future holds: no shard named, not a wrong one
    twice = [_Failed(ValueError("bad")), _Failed(ValueError("bad"))]
    lost = ValueError("bad")
    assert _named(lost, twice) is lost
    assert _named(lost, [_Failed(), _Failed(ValueError("other"))]) is lost


def test_a_schedule_longer_than_the_run_is_warned_of(client, small):
    """As fit and mpi_fit: a cosine T of 5000 in 2 epochs of ceil(1200 / 64) = 19 steps
    ended near the base lr and nothing said so; the warning points at the caller's line."""
    import warnings
    X, y = small
    kw = dict(client=client, epochs=2, batch_size=64, sync_every=4, progress=False)
    for trainer in (fd.fit, fastmlp.distributed.fit):
        with pytest.warns(fastmlp.schedules.ScheduleWarning,
                          match=r"schedule: T=5000 is longer than the 38 steps the run has: "
                                r"the lr ends at ") as seen:
            h = trainer(_mk64(), X, y, schedule="cosine:T=5000", **kw)
        assert len(h.lr) == 38      # the steps the warning counted are the run's
        assert [w.filename for w in seen] == [__file__]
    with warnings.catch_warnings():   # a schedule that fits the run: nothing to say
        warnings.simplefilter("error", fastmlp.schedules.ScheduleWarning)
        fd.fit(_mk64(), X, y, schedule="cosine:T=38", **kw)


def test_checkpoint_resume_continues_exactly(client, small, tmp_path, uninterrupted,
                                             monkeypatch):
    X, y = small
    # n_shards pinned: by default it is the workers alive at each call, and a worker the
    # nanny restarts under load would make the resume another run (a 1-shard layout)
    kw = dict(optimizer="adam", lr=1e-2, batch_size=64, sync_every=3, progress=False,
              n_shards=2)
    full, hf = uninterrupted       # these settings, 3 epochs
    ck = tmp_path / "run.npz"
    part = _mk64()
    fd.fit(part, X, y, client=client, epochs=2, checkpoint=ck, **kw)
    resumed = _mk64()
    reads = []                 # the round checkpoint is read once (it was read three times)
    for module in (fd, fastmlp.training.checkpoint):
        real = module.load_checkpoint
        monkeypatch.setattr(module, "load_checkpoint",
                            lambda p, real=real: reads.append(os.fspath(p)) or real(p))
    h = fd.fit(resumed, X, y, client=client, epochs=3, checkpoint=ck, resume=True, **kw)
    monkeypatch.undo()
    assert reads.count(os.fspath(ck)) == 1
    assert h.distributed["resumed_from_round"] == 2 * (-(-19 // 3))
    np.testing.assert_array_equal(resumed.params, full.params)
    # the whole History, as fastmlp.fit's resume returns it (it held the last epoch only)
    _assert_same_history(h, hf)
    # another run's checkpoint is refused, naming what differs (a sync_every of 1 re-read
    # round 14 as epoch 0 and trained three more epochs; other data or lr went on silently)
    for change, what in ((dict(kw, sync_every=1), "sync_every: checkpoint 3, now 1"),
                         (dict(kw, lr=0.1), "optimizer lr: checkpoint 0.01, now 0.1")):
        with pytest.raises(ValueError, match=f"different run.*{what}"):
            fd.fit(_mk64(), X, y, client=client, epochs=3, checkpoint=ck, resume=True,
                   **change)
    with pytest.raises(ValueError, match="different run.*column_mean"):
        fd.fit(_mk64(), X[:-7] * 2, y[:-7], client=client, epochs=3, checkpoint=ck,
               resume=True, **kw)
    # the two files of different points of the run: refused before the model takes the
    # checkpoint's parameters (it held them after the refusal)
    hpath = fd.history_file(ck)
    arrays = dict(np.load(hpath))
    arrays["hist_loss"] = arrays["hist_loss"][:1]
    np.savez(hpath, **arrays)
    m = _mk64()
    with pytest.raises(ValueError, match="of different points of the run"):
        fd.fit(m, X, y, client=client, epochs=3, checkpoint=ck, resume=True, **kw)
    np.testing.assert_array_equal(m.params, _mk64().params)
    with pytest.raises(ValueError, match="resume=True continues from checkpoint=PATH"):
        fd.fit(_mk64(), X, y, client=client, epochs=3, resume=True, **kw)
    with pytest.raises(FileNotFoundError, match="checkpoint .*: directory .* does not exist"):
        fd.fit(_mk64(), X, y, client=client, checkpoint=tmp_path / "no" / "c.npz", **kw)
    # checked as fastmlp.fit checks them, before any task is sent (-1 failed in a worker's
    # default_rng; "no" was read as True)
    with pytest.raises(ValueError, match="seed must be a non-negative integer or None, got -1"):
        fd.fit(_mk64(), X, y, client=client, **dict(kw, seed=-1))
    with pytest.raises(ValueError, match="standardize must be True or False, got 'no'"):
        fd.fit(_mk64(), X, y, client=client, standardize="no", **kw)


def _assert_same_history(h, expected):
    assert h.epochs == expected.epochs
    for k in ("loss", "val_loss", "batch_loss", "lr", "best_epoch", "stopped_early"):
        assert getattr(h, k) == getattr(expected, k), k
    assert h.metrics == expected.metrics


class _Killed(Exception):
    pass


def _stop_at(round_index):
    """A round callback killing the run after round ``round_index`` (its checkpoint is
    written, the rest of its epoch is not run)."""
    def cb(r, hist, model):
        if r == round_index:
            raise _Killed
    return cb


def _kill_kw(client):
    return dict(client=client, optimizer="adam", lr=1e-2, batch_size=64, sync_every=3,
                progress=False, n_shards=2, epochs=3)


@pytest.fixture(scope="module")
def uninterrupted(client, small):
    """The 3-epoch run the kill tests resume to: (model, History), run once."""
    X, y = small
    full = _mk64()
    return full, fd.fit(full, X, y, **_kill_kw(client))


@pytest.mark.parametrize("killed_after", [7, 9])
def test_a_run_killed_mid_epoch_resumes_with_its_whole_history(client, small, tmp_path,
                                                               killed_after, uninterrupted):
    """Killed after round 9 (inside epoch 2 of 7 rounds), or after round 7 (its epoch's last,
    before the epoch's loss was recorded): the resumed History equals the uninterrupted
    run's, the interrupted epoch's loss over all its rounds."""
    X, y = small
    kw = _kill_kw(client)
    full, hf = uninterrupted
    ck = tmp_path / "run.npz"
    with pytest.raises(_Killed):
        fd.fit(_mk64(), X, y, checkpoint=ck, round_callbacks=[_stop_at(killed_after)], **kw)
    # the round checkpoint holds the current epoch's steps only (it rewrote the whole
    # History after every round); the whole epochs are in the History file
    epoch, steps = (0, 19) if killed_after == 7 else (1, 6)    # 7 rounds of 3 steps: 19
    arrays = dict(np.load(ck))
    assert not [k for k in arrays if k.startswith(("hist_", "metric_"))]
    assert arrays["epoch_batch_loss"].tolist() == hf.batch_loss[19 * epoch:19 * epoch + steps]
    assert os.path.exists(fd.history_file(ck)) == (epoch == 1)
    # the interrupted epoch's seconds before the kill count in its epoch_time (the clock
    # restarted on resume while its rows carried over): 1000 s more before the kill
    arrays["epoch_sums"][2] += 1000.0
    np.savez(ck, **arrays)
    resumed = _mk64()
    h = fd.fit(resumed, X, y, checkpoint=ck, resume=True, **kw)
    assert h.distributed["resumed_from_round"] == killed_after
    np.testing.assert_array_equal(resumed.params, full.params)
    _assert_same_history(h, hf)
    assert h.epoch_time[epoch] > 1000.0
    # every row of the epoch over all its seconds (19 global batches of 64 rows)
    assert h.samples_per_s[epoch] * h.epoch_time[epoch] == pytest.approx(19 * 64)


@pytest.fixture(scope="module")
def stopping_early(client, small):
    """A run with validation and early stopping (patience 2) that stops after epoch 3 of 8
    (7 rounds an epoch): its settings, model and History."""
    X, y = small
    kw = dict(client=client, optimizer="adam", lr=0.3, batch_size=64, sync_every=3,
              progress=False, n_shards=2, epochs=8, validation=(X[:200], y[:200]),
              early_stopping=2)
    full = _mk64()
    hf = fd.fit(full, X, y, **kw)
    assert hf.stopped_early and hf.epochs == 3 and hf.best_epoch == 1
    return kw, full, hf


@pytest.mark.parametrize("killed_after", [9, 16])
def test_a_killed_run_with_early_stopping_resumes_exactly(small, tmp_path, stopping_early,
                                                          killed_after):
    """Early stopping's state (best loss and parameters, epochs since) was not checkpointed:
    killed in epoch 2 or 3 and resumed, the run stopped later, with other parameters."""
    X, y = small
    kw, full, hf = stopping_early
    ck = tmp_path / "run.npz"
    with pytest.raises(_Killed):
        fd.fit(_mk64(), X, y, checkpoint=ck, round_callbacks=[_stop_at(killed_after)], **kw)
    resumed = _mk64()
    h = fd.fit(resumed, X, y, checkpoint=ck, resume=True, **kw)
    np.testing.assert_array_equal(resumed.params, full.params)
    _assert_same_history(h, hf)


def test_a_run_that_stopped_early_trains_no_further_when_resumed(small, tmp_path,
                                                                  stopping_early):
    """Its checkpoint resumed trained on to epoch 8; another patience is another run."""
    X, y = small
    kw, full, hf = stopping_early
    ck = tmp_path / "run.npz"
    fd.fit(_mk64(), X, y, checkpoint=ck, **kw)
    resumed = _mk64()
    h = fd.fit(resumed, X, y, checkpoint=ck, resume=True, **kw)
    assert h.distributed["resumed_from_round"] == 21 and h.distributed["rounds"] == 0
    np.testing.assert_array_equal(resumed.params, full.params)
    _assert_same_history(h, hf)
    with pytest.raises(ValueError, match=r"different run \(early_stopping: checkpoint "
                       r"\{'patience': 2, 'min_delta': 0.0\}, now \{'patience': 3"):
        fd.fit(_mk64(), X, y, checkpoint=ck, resume=True, **dict(kw, early_stopping=3))
    # other validation rows (judged and stopped on other losses) are another run, as in
    # fastmlp.fit's fingerprint; they were accepted
    with pytest.raises(ValueError, match=r"different run \(validation: checkpoint '[0-9a-f]"):
        fd.fit(_mk64(), X, y, checkpoint=ck, resume=True,
               **dict(kw, validation=(X[200:400], y[200:400])))


@pytest.mark.parametrize("stopper", ["callback", "round_callback"])
def test_a_run_stopped_by_a_callback_trains_no_further_when_resumed(small, tmp_path,
                                                                    uninterrupted, stopper,
                                                                    client):
    """As fastmlp.fit's resume: a run a callback stopped after epoch 1 (an epoch callback,
    or a round callback at the epoch's last round, 7) stays stopped; it trained on."""
    X, y = small
    kw = _kill_kw(client)
    stop = dict(callbacks=[lambda epoch, h, m: epoch == 1]) if stopper == "callback" \
        else dict(round_callbacks=[lambda r, h, m: r == 7])
    ck = tmp_path / "run.npz"
    stopped = _mk64()
    hs = fd.fit(stopped, X, y, checkpoint=ck, **stop, **kw)
    assert hs.epochs == 1
    resumed = _mk64()
    h = fd.fit(resumed, X, y, checkpoint=ck, resume=True, **kw)
    assert h.distributed["rounds"] == 0 and h.epochs == 1
    np.testing.assert_array_equal(resumed.params, stopped.params)
    _assert_same_history(h, hs)


def test_the_history_file_is_checked_and_never_another_file_deleted(client, small,
                                                                    tmp_path):
    """The History file was named by the checkpoint without '.npz' ('a' and 'a.npz' shared
    one; 'a.npz' wrote over a checkpoint 'a.history.npz'), a user's file there was deleted
    by a fresh run, and a directory there failed after the first epoch."""
    X, y = small
    kw = dict(client=client, lr=1e-2, progress=False, n_shards=2, epochs=1)
    assert fd.history_file("a") != fd.history_file("a.npz")
    assert fd.history_file(tmp_path / "a.npz") == str(tmp_path / "a.npz.history.npz")
    ck = tmp_path / "run.npz"
    mine = tmp_path / fd.history_file("run.npz")
    mine.write_text("my own file")
    with pytest.raises(ValueError, match=r"History file .*run.npz.history.npz exists and is "
                       "not the History file of a fastmlp.distributed.fit checkpoint"):
        fd.fit(_mk64(), X, y, checkpoint=ck, **kw)
    assert mine.read_text() == "my own file"
    mine.unlink()
    mine.mkdir()
    with pytest.raises(IsADirectoryError, match=r"checkpoint's History file .* is a "
                       "directory"):
        fd.fit(_mk64(), X, y, checkpoint=ck, **kw)
    assert not ck.exists()                 # refused before any work
    # a checkpoint whose name is another checkpoint's History file name: neither run
    # touches the other's file
    other = tmp_path / "b.history.npz"
    fd.fit(_mk64(), X, y, checkpoint=other, **kw)
    before = dict(np.load(other))
    fd.fit(_mk64(), X, y, checkpoint=tmp_path / "b.npz", **kw)
    after = dict(np.load(other))
    assert before.keys() == after.keys() and "epoch_sums" in after
    with pytest.raises(ValueError, match="b.history.npz exists and is not the History"):
        fd.fit(_mk64(), X, y, checkpoint=tmp_path / "b", **kw)


def test_resume_refuses_other_labels_and_another_standardize(client, small, tmp_path):
    """Another run's labels (1 - y of a balanced catalog: the same label mean) and another
    standardize setting resumed: fastmlp.fit refuses both (the standardize=False resume
    returned a model without standardisation trained on standardised inputs)."""
    X, _ = small
    y = (X[:, 0] > np.median(X[:, 0])).astype(np.int64)
    assert y.mean() == 0.5
    kw = dict(client=client, lr=1e-2, batch_size=64, sync_every=4, progress=False,
              n_shards=2)
    for standardize, other in ((True, False), (False, True)):
        ck = tmp_path / f"run{standardize}.npz"
        fd.fit(_mk64(), X, y, epochs=1, checkpoint=ck, standardize=standardize, **kw)
        with pytest.raises(ValueError, match=r"different run \(labels: "):
            fd.fit(_mk64(), X, 1 - y, epochs=2, checkpoint=ck, resume=True,
                   standardize=standardize, **kw)
        with pytest.raises(ValueError, match=r"different run \(input_standardization: "):
            fd.fit(_mk64(), X, y, epochs=2, checkpoint=ck, resume=True, standardize=other,
                   **kw)
        m = _mk64()
        h = fd.fit(m, X, y, epochs=2, checkpoint=ck, resume=True, standardize=standardize,
                   **kw)
        assert h.distributed["resumed_from_round"] == 5
        assert (m.standardization is not None) == standardize


def test_dask_array_input_and_standardisation_statistics(client):
    cat = make_photometric_catalog(3000, seed=4)
    Xd = da.from_array(cat.X, chunks=(500, 4))
    model = fastmlp.MLP([4, 8, 1], seed=0)
    h = fd.fit(model, Xd, cat.y, client=client, epochs=1, batch_size=128, sync_every=8,
               lr=1e-2, progress=False)
    mean, std = model.standardization   # stored in the model's contract
    np.testing.assert_allclose(mean, cat.X.astype(np.float64).mean(0), rtol=1e-10)
    np.testing.assert_allclose(std, cat.X.astype(np.float64).std(0), rtol=1e-8)
    assert h.distributed["n_shards"] == 2 and sum(h.distributed["shard_rows"]) == 3000
    assert h.distributed["shard_rows"] == [1500, 1500]
    assert len(h.batch_loss) == -(-3000 // 128) and h.metrics["accuracy"][0] > 0.5
    # as after fit: the link follows the loss, so the model can be trained again with another
    assert model.output is None and model.link == "sigmoid"
    fastmlp.fit(model, cat.X, cat.X[:, 0], loss="mse", epochs=1, progress=False,
                validation=None)
    assert model.link == "identity"


def _accuracy_pair(client, X, y, epochs, batch_size, lr, sync_every):
    """Accuracy on RAW test features of a Dask-trained and a fit-trained model: each model
    carries its own standardisation (issue 11: no mean/std left behind in a History)."""
    tr, te = stratified_split(y, 0.25, np.random.default_rng(0))
    dist = fastmlp.MLP([4, 32, 32, 1], seed=0)
    fd.fit(dist, X[tr], y[tr], client=client, epochs=epochs, batch_size=batch_size,
           lr=lr, sync_every=sync_every, progress=False)
    single = fastmlp.MLP([4, 32, 32, 1], seed=0)
    fastmlp.fit(single, X[tr], y[tr], epochs=epochs, batch_size=batch_size, lr=lr,
                validation=None, progress=False, standardize=True)
    a_d = metrics.accuracy(y[te], dist.predict(X[te]))
    a_s = metrics.accuracy(y[te], single.predict(X[te]))
    return a_d, a_s


def test_two_workers_match_single_process_accuracy_synthetic(client):
    cat = make_photometric_catalog(30000, seed=7)
    a_d, a_s = _accuracy_pair(client, cat.X, cat.y, epochs=3, batch_size=256, lr=3e-3,
                              sync_every=8)
    print(f"synthetic: 2 workers {a_d:.4f}, single process {a_s:.4f}")
    assert a_s > 0.9
    assert abs(a_d - a_s) <= 0.005


def test_two_workers_match_single_process_accuracy_sdss(client):
    d = np.load(data_file("sdssdr6_colors_class.200000.npy"))[:40000]
    X = np.stack([d[f] for f in ("u-g", "g-r", "r-i", "i-z")], axis=1)
    y = (d["label"] == 0).astype(np.int64)  # label 0 = quasar -> class 1
    a_d, a_s = _accuracy_pair(client, X, y, epochs=3, batch_size=256, lr=3e-3, sync_every=8)
    print(f"SDSS DR6: 2 workers {a_d:.4f}, single process {a_s:.4f}")
    assert a_s > 0.97
    assert abs(a_d - a_s) <= 0.005


def test_bad_input_errors(client, small):
    X, y = small
    with pytest.raises(ValueError, match="sync_every"):
        fd.fit(_mk64(), X, y, client=client, sync_every=0)
    with pytest.raises(ValueError, match="feature columns"):
        fd.fit(_mk64(), X[:, :3], y, client=client)
    with pytest.raises(ValueError, match="samples"):
        fd.fit(_mk64(), X, y[:10], client=client)
    with pytest.raises(TypeError, match="client"):
        fd.fit(_mk64(), X, y, client=42)
    with pytest.raises(ValueError, match="y is required"):
        fd.fit(_mk64(), X, client=client)
    # one NaN: named as such, the model left without NaN statistics; without standardising,
    # the shard names its one bad row (it counted every row: the statistics were NaN)
    Xn = X.copy()
    Xn[123, 2] = np.nan
    m = _mk64()
    # (the Standardizer names the column first, in the block's moments)
    with pytest.raises(ValueError, match=r"X column\(s\) \[2\] hold NaN or inf values.*"
                                         "drop or impute those rows"):
        fd.fit(m, Xn, y, client=client, epochs=1, progress=False)
    assert m.standardization is None
    with pytest.raises(ValueError, match=r"contains 1 row with NaN or inf \(columns \[2\]\); "
                                         "drop or clean those rows"):
        fd.fit(_mk64(), Xn, y, client=client, epochs=1, progress=False, standardize=False)


def test_recipes_run_on_a_dask_executor(client, small):
    """fastmlp.lr_sweep / cross_validate(..., executor=ClientExecutor(client)) run their
    candidates as Dask tasks (the recipes never import Dask) with the serial result."""
    X, y = small
    lrs = np.logspace(-3, -1, 3)
    ex = fd.ClientExecutor(client)
    r = fastmlp.lr_sweep(_mk64, X, y, lrs=lrs, iterations=20, batch_size=32, executor=ex)
    s = fastmlp.lr_sweep(_mk64, X, y, lrs=lrs, iterations=20, batch_size=32)
    np.testing.assert_array_equal(r.final_loss, s.final_loss)
    cv = fastmlp.cross_validate(_mk64, X, y, k=2, epochs=1, executor=ex)
    assert cv.folds == fastmlp.cross_validate(_mk64, X, y, k=2, epochs=1).folds


def test_parquet_dataframe_input(client, tmp_path):
    """A partitioned Parquet catalog read with dd.read_parquet trains like the same shards
    given as a NumPy array (same rows per shard, same statistics, same parameters)."""
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) not installed")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow", reason="pyarrow is needed for Parquet")
    cat = make_photometric_catalog(3000, seed=9)
    names = ["u-g", "g-r", "r-i", "i-z"]
    df = pd.DataFrame({n: cat.X[:, k] for k, n in enumerate(names)})
    df["is_quasar"] = cat.y
    dd.from_pandas(df, npartitions=6).to_parquet(tmp_path / "cat")
    ddf = dd.read_parquet(tmp_path / "cat")
    kw = dict(client=client, epochs=2, batch_size=128, sync_every=4, lr=1e-2, progress=False)
    a = fastmlp.MLP([4, 8, 1], seed=0)
    ha = fd.fit(a, ddf, features=names, label="is_quasar", **kw)
    b = fastmlp.MLP([4, 8, 1], seed=0)
    # the partitions are dealt to the 2 shards in turn (0, 2, 4 and 1, 3, 5): in memory, the
    # same shards are the two halves of the rows in that order
    bounds = np.cumsum([0] + list(ddf.map_partitions(len).compute()))
    order = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in (0, 2, 4, 1, 3, 5)])
    hb = fd.fit(b, cat.X[order], cat.y[order], **kw)
    assert hb.distributed["shard_layout"] == "contiguous"
    assert ha.distributed["shard_rows"] == hb.distributed["shard_rows"] == [1500, 1500]
    np.testing.assert_allclose(a.standardization[0], b.standardization[0], rtol=1e-12)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="the DataFrame: features? .*u-r.* not found"):
        fd.fit(fastmlp.MLP([4, 8, 1]), ddf, features=names[:3] + ["u-r"], label="is_quasar",
               **kw)
    # magnitudes and a feature spec, as fit takes them: the colours are derived in each
    # partition and the model keeps the spec, so it predicts from a table of magnitudes
    mags = pd.DataFrame({b: cat.extra[b] for b in "ugriz"})
    mags["is_quasar"] = cat.y
    c = fastmlp.MLP([4, 8, 1], seed=0)
    fd.fit(c, dd.from_pandas(mags, npartitions=6), features="colors:ugriz", label="is_quasar",
           **kw)
    assert c.feature_names == tuple(names)
    np.testing.assert_allclose(c.standardization[0], a.standardization[0], rtol=1e-6)
    np.testing.assert_allclose(c.predict_proba(mags), c.predict_proba(
        np.column_stack([mags[x] - mags[y] for x, y in ("ug", "gr", "ri", "iz")])),
        rtol=1e-6)


def test_an_empty_last_chunk_makes_no_empty_shard(client, small):
    """A catalog whose last chunk has no rows (a filtered DataFrame's last partition): the
    empty chunk became a shard of 0 rows whose every round failed (a ZeroDivisionError
    retried 4 times, then 'round 1 failed 4 times').  It trains as the same rows without
    the empty chunk."""
    X, y = small
    kw = dict(client=client, epochs=1, batch_size=64, sync_every=4, lr=1e-2, progress=False)
    a, b = _mk64(), _mk64()
    ha = fd.fit(a, da.from_array(X, chunks=((1200, 0), (4,))), y, **kw)
    hb = fd.fit(b, da.from_array(X, chunks=((1200,), (4,))), y, **kw)
    assert ha.distributed["shard_rows"] == hb.distributed["shard_rows"] == [1200]
    np.testing.assert_array_equal(a.params, b.params)


def test_labels_of_unknown_length_are_measured_not_called_nan(client, small):
    """y filtered lazily (chunk sizes unknown) was refused as 'X has 1200 samples but y has
    nan'; its length is measured and it trains as the same labels given in memory."""
    X, y = small
    kw = dict(client=client, epochs=1, batch_size=64, sync_every=4, lr=1e-2, progress=False)
    yd = da.from_array(y, chunks=600)
    a, b = _mk64(), _mk64()
    fd.fit(a, da.from_array(X, chunks=(600, 4)), yd[yd >= 0], **kw)
    fd.fit(b, da.from_array(X, chunks=(600, 4)), y, **kw)
    np.testing.assert_array_equal(a.params, b.params)


def test_a_string_label_column_is_named(client, small):
    """String labels in a Dask DataFrame made the features + label array an object array,
    refused as 'X (shard 0) must hold numbers' although the features were numbers."""
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) not installed")
    pd = pytest.importorskip("pandas")
    X, y = small
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["kind"] = np.where(y == 1, "QSO", "STAR")
    with pytest.raises(TypeError, match=r"label column 'kind' must hold numbers \(integer "
                       r"class labels or targets\), got dtype .*; map string labels to "
                       "integers first"):
        fd.fit(_mk64(), dd.from_pandas(df, npartitions=2), features=["a", "b", "c", "d"],
               label="kind", client=client, epochs=1, progress=False)


@pytest.mark.parametrize("texts", [("QSO", "STAR"), ("1", "0")])
@pytest.mark.parametrize("path", ["statistics", "shard"])
def test_text_in_one_partitions_label_column_is_named(client, small, tmp_path, path, texts):
    """The frame's meta says the labels are integers but one partition holds text: it was
    refused as 'X (shard 1) must hold numbers, got dtype object', naming the features; text
    "1" / "0" was read as numbers (astype(float64)) while a text column was refused.  Found
    by the statistics pass (with a checkpoint: the labels' fingerprint), naming the column,
    or else by the shard holding the partition, naming the column and the shard."""
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) not installed")
    pd = pytest.importorskip("pandas")
    X, y = small
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["kind"] = y.astype(np.int64)
    ddf = dd.from_pandas(df, npartitions=2)

    def text_in_the_second(part):
        if part.index[0] >= 600:
            part = part.assign(kind=np.where(part["kind"] == 1, *texts).astype(object))
        return part
    ddf = ddf.map_partitions(text_in_the_second, meta=ddf._meta)
    where = "" if path == "statistics" else r" \(shard 1\)"
    kw = dict(checkpoint=tmp_path / "c.npz", standardize=True) if path == "statistics" else \
        dict(standardize=False)
    with pytest.raises(TypeError, match=rf"^label column 'kind'{where} must hold numbers "
                       r"\(integer class labels or targets\), got dtype object with values "
                       rf"such as '({texts[0]}|{texts[1]})'; map string labels to integers "
                       "first$"):
        fd.fit(_mk64(), ddf, features=["a", "b", "c", "d"], label="kind", client=client,
               epochs=1, progress=False, n_shards=2, **kw)


def test_early_stopping_without_validation_says_what_dask_takes(client, small):
    """It said 'validation=fraction or (X_val, y_val)', and validation=0.1 was then refused:
    Dask's fit takes an (X_val, y_val) pair only."""
    X, y = small
    with pytest.raises(ValueError, match=r"early_stopping needs validation data: pass "
                       r"validation=\(X_val, y_val\) arrays \(distributed fit takes no "
                       "validation fraction"):
        fd.fit(_mk64(), X, y, client=client, epochs=1, early_stopping=2, progress=False)
    with pytest.raises(ValueError, match=r"validation must be None or an \(X_val, y_val\) "
                       r"pair of arrays \(raw features and labels\), got 0.1; distributed "
                       "fit holds out no fraction"):
        fd.fit(_mk64(), X, y, client=client, epochs=1, early_stopping=2, validation=0.1,
               progress=False)
    h = fd.fit(_mk64(), X, y, client=client, epochs=2, early_stopping=2, lr=1e-2,
               validation=(X[:200], y[:200]), progress=False)
    assert len(h.val_loss) == 2


def test_a_bad_early_stopping_is_refused_before_a_resume_overwrites_the_model(client, small,
                                                                            tmp_path):
    """early_stopping=0 was refused by the epoch loop, after the checkpoint's parameters
    and the catalog's standardisation had been put into the user's model."""
    X, y = small
    kw = dict(client=client, lr=1e-2, batch_size=64, progress=False, n_shards=2)
    ck = tmp_path / "run.npz"
    fd.fit(_mk64(), X, y, checkpoint=ck, epochs=1, **kw)
    m = _mk64()
    p0 = m.params.copy()
    with pytest.raises(ValueError, match="early_stopping patience must be a positive integer"):
        fd.fit(m, X, y, checkpoint=ck, resume=True, epochs=2, validation=(X[:100], y[:100]),
               early_stopping=0, **kw)
    np.testing.assert_array_equal(m.params, p0)
    assert m.standardization is None


def test_the_labels_fingerprint_is_taken_for_a_checkpoint_only(client, small, tmp_path,
                                                                monkeypatch):
    """The statistics pass summed y and y x (the labels' fingerprint, ~40 % more work) to
    standardise a run without a checkpoint, whose identity nobody reads."""
    X, y = small
    seen = []
    real = fd._label_matrix
    monkeypatch.setattr(fd, "_label_matrix", lambda *a: seen.append(a[1]) or real(*a))
    kw = dict(client=client, epochs=1, lr=1e-2, progress=False, n_shards=2)
    m = _mk64()
    fd.fit(m, X, y, **kw)          # NumPy arrays: the statistics are taken here
    assert m.standardization is not None and seen == []
    fd.fit(_mk64(), X, y, checkpoint=tmp_path / "c.npz", **kw)
    assert seen == ["y"]


def test_a_checkpoint_without_the_labels_fingerprint_says_it_is_from_an_earlier_version(
        client, small, tmp_path):
    """Refused with 'resume with the same model, data and settings', which cannot work."""
    import json
    X, y = small
    kw = dict(client=client, lr=1e-2, progress=False, n_shards=2)
    ck = tmp_path / "old.npz"
    fd.fit(_mk64(), X, y, checkpoint=ck, epochs=1, **kw)
    arrays = dict(np.load(ck))
    run = json.loads(str(arrays["run"]))
    run.update(run.pop("labels"))     # label_mean and label_x_mean at the top level
    arrays["run"] = np.array(json.dumps(run))
    np.savez(ck, **arrays)
    with pytest.raises(ValueError, match=r"^resume: .*old.npz was written by an earlier "
                       r"version of fastmlp, .*: start afresh \(resume=False\) or delete it$"):
        fd.fit(_mk64(), X, y, checkpoint=ck, resume=True, epochs=2, **kw)


def _failing_partition(part):
    raise RuntimeError("this partition was read")


def test_validation_is_checked_before_reading_the_catalog_and_0_is_none(client, small):
    """A validation fraction with a DataFrame was refused after a whole pass over it (the
    features and labels computed); validation=0 (no validation for fastmlp.fit and mpi_fit)
    was refused."""
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) not installed")
    pd = pytest.importorskip("pandas")
    X, y = small
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["kind"] = y
    ddf = dd.from_pandas(df, npartitions=2)
    ddf = ddf.map_partitions(_failing_partition, meta=ddf._meta)
    with pytest.raises(ValueError, match=r"validation must be None or an \(X_val, y_val\)"):
        fd.fit(_mk64(), ddf, features=["a", "b", "c", "d"], label="kind", client=client,
               epochs=1, validation=0.1, progress=False)
    h = fd.fit(_mk64(), X, y, client=client, epochs=1, lr=1e-2, validation=0, progress=False)
    assert h.val_loss == [] and h.epochs == 1


def test_huge_unstandardised_inputs_are_warned_of_before_training(client, small):
    """fastmlp.fit warns before training on inputs of |x| ~ 4e18; Dask's fit said nothing.
    The warning names the argument the features came in: ``data`` for a DataFrame (it said
    "X:"), and the column."""
    X, y = small
    X = X * np.array([1, 4e18, 1, 1])
    big = re.escape(f"{np.abs(X).max():.3g}")
    warned_by_round = []

    def warned_yet(r, hist, model):      # what the first round found already warned
        warned_by_round.append(any("reaches |x|" in str(w.message) for w in seen))
    kw = dict(client=client, epochs=1, batch_size=64, lr=1e-3, progress=False)
    with pytest.warns(UserWarning, match=rf"^X: column 1 reaches \|x\| = {big} as the network "
                      r"sees it; .*: pass standardize=True \(or rescale that column\)") as seen:
        fd.fit(_mk64(), X, y, standardize=False, round_callbacks=[warned_yet], **kw)
    assert warned_by_round[0] is True
    assert [w.filename for w in seen if "reaches |x|" in str(w.message)] == [__file__]
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) not installed")
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["u", "flux", "r", "i"])
    df["kind"] = y
    with pytest.warns(UserWarning, match=rf"^data: column 1 \('flux'\) reaches \|x\| = {big} "):
        fd.fit(_mk64(), dd.from_pandas(df, npartitions=2), features=["u", "flux", "r", "i"],
               label="kind", standardize=False, **kw)
    with warnings.catch_warnings():    # standardised, the network sees |x| of a few
        warnings.simplefilter("error", UserWarning)
        fd.fit(_mk64(), X, y, standardize=True, **kw)


@pytest.mark.parametrize("bad, error, message", [
    (dict(max_retries=-1), ValueError, r"max_retries must be a non-negative integer, got -1"),
    (dict(max_retries="3"), ValueError, r"max_retries must be a non-negative integer, got '3'"),
    (dict(round_callbacks=(3,)), TypeError, r"round_callbacks must be callables, got 3"),
    (dict(n_threads="2"), ValueError, r"n_threads must be a positive integer, got '2'")])
def test_round_arguments_are_checked_before_training(client, small, bad, error, message):
    # they failed with TypeErrors that named nothing ("'NoneType' object is not iterable",
    # "'int' object is not callable" after a round's training, int() inside every task)
    X, y = small
    m = _mk64()
    p0 = m.params.copy()
    with pytest.raises(error, match=message):
        fd.fit(m, X, y, client=client, epochs=1, progress=False, **bad)
    assert np.array_equal(m.params, p0)


def test_sweep_and_cv_check_n_threads_before_any_task(client, small):
    X, y = small
    with pytest.raises(ValueError, match=r"n_threads must be a positive integer, got 'x'"):
        fd.dask_lr_sweep(_mk64, X, y, client, lrs=[1e-3], iterations=5, n_threads="x")
    with pytest.raises(ValueError, match=r"n_threads must be a positive integer, got 1.5"):
        fd.dask_cross_validate(_mk64, X, y, client, k=2, epochs=1, n_threads=1.5)


def test_batch_size_none_is_one_full_batch_step_per_epoch(client, small):
    """As fit's batch_size=None; it failed with int()'s TypeError on None."""
    X, y = small
    h = fd.fit(_mk64(), X, y, client=client, epochs=2, batch_size=None, lr=1e-2,
               progress=False)
    assert h.distributed["steps_per_epoch"] == 1 and len(h.batch_loss) == 2
    assert h.distributed["local_batch"] == h.distributed["shard_rows"] == [600, 600]


@pytest.mark.parametrize("standardize", [False, True])
def test_resume_refuses_another_catalog_of_the_same_shape(client, small, tmp_path,
                                                          standardize):
    """With standardize=False (or a model standardised beforehand) the checkpoint knew the
    data only by their shape: another catalog of the same shape resumed silently."""
    X, y = small
    Xb = make_photometric_catalog(1200, seed=8, dtype="float64").X
    Xb = (Xb - Xb.mean(0)) / Xb.std(0) * 1.5 + 0.5
    kw = dict(client=client, lr=1e-2, batch_size=64, sync_every=4, progress=False,
              checkpoint=tmp_path / "run.npz", standardize=standardize, n_shards=2)

    def model():
        m = _mk64()
        m.standardization = (np.zeros(4), np.ones(4))   # given: not computed from the data
        return m
    fd.fit(model(), X, y, epochs=1, **kw)
    with pytest.raises(ValueError, match=r"different run \(column_mean: "):
        fd.fit(model(), Xb, y, epochs=2, resume=True, **kw)
    h = fd.fit(model(), X, y, epochs=2, resume=True, **kw)      # the same data resume
    # the whole History: the checkpointed epoch and the resumed one
    assert h.distributed["resumed_from_round"] == 5 and h.epochs == 2


def test_features_that_read_the_label_column_are_refused(client, small):
    """features=[..., label] failed with 'IndexError: Index 4 is out of bounds' (the frame
    of features + label had two columns of that name); a colour of the label trained on
    the answer."""
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (pandas) not installed")
    pd = pytest.importorskip("pandas")
    X, y = small
    df = pd.DataFrame(X, columns=["u", "g", "r", "i"])
    df["z"] = y
    ddf = dd.from_pandas(df, npartitions=2)
    for features, named in ((["u", "g", "r", "z"], "['z']"), (["u-g", "g-r", "r-i", "i-z"],
                                                              "['i-z']")):
        with pytest.raises(ValueError, match=re.escape(f"features {named} read the label "
                                                       "column 'z'; the label must not be")):
            fd.fit(_mk64(), ddf, features=features, label="z", client=client, epochs=1,
                   progress=False)


@pytest.mark.parametrize("as_dask", [False, True])
def test_resuming_with_the_same_model_object_continues(client, small, tmp_path, as_dask):
    # the model standardised by the first call was resumed from: its catalog statistics were
    # summed another way than the checkpoint's (7.5e-15 apart) and the resume was refused
    X, y = small
    X = X * 3.0 + 10.0                       # not standardised beforehand
    if as_dask:
        X, y = da.from_array(X, chunks=(300, 4)), da.from_array(y, chunks=300)
    kw = dict(optimizer="adam", lr=1e-2, batch_size=64, sync_every=3, progress=False,
              n_shards=2)
    ck = tmp_path / "run.npz"
    m = _mk64()
    fd.fit(m, X, y, client=client, epochs=1, checkpoint=ck, **kw)
    h = fd.fit(m, X, y, client=client, epochs=2, checkpoint=ck, resume=True, **kw)
    assert h.epochs == 2 and h.distributed["resumed_from_round"] > 0


# --- the loader's row rule after imputing, beyond the dtype, and for labels -------------

def _magnitude_frame(n=200, seed=3):
    """A pandas table of raw u, g, r magnitudes and a float 0/1 label, without missing
    values, and the same rows as a .npy file fastmlp train's loader reads (``save``)."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(np.float64)
    g = rng.normal(20, 1, n)
    return pd.DataFrame({"u": g + 1.0 + 0.8 * y + rng.normal(0, .3, n), "g": g,
                         "r": g - 0.4 - 0.3 * y + rng.normal(0, .2, n), "label": y})


def _loader_and_fit(client, df, tmp_path, missing):
    """(what fastmlp train's loader reads of ``df``, the model distributed.fit trained on
    it, its history): a float32 model, standardised."""
    import dask.dataframe as dd
    from fastmlp.data import load_catalog
    path = tmp_path / "cat.npy"
    np.save(path, df.to_records(index=False))
    cat = load_catalog(path, features=["u-g", "g-r"], label="label", missing=missing)
    model = fastmlp.MLP([2, 4, 1], seed=0)
    hist = fd.fit(model, dd.from_pandas(df, npartitions=2), features=["u-g", "g-r"],
                  label="label", client=client, missing=missing, epochs=1, batch_size=16,
                  n_shards=2, standardize=True, progress=False)
    return cat, model, hist


def _assert_both_refuse(client, df, tmp_path, message):
    """missing='error': the loader refuses ``df``'s rows, and so does distributed.fit."""
    with pytest.raises(ValueError, match="1 of 200 rows has missing"):
        _loader_and_fit(client, df, tmp_path, "error")
    import dask.dataframe as dd
    with pytest.raises(ValueError, match=message):
        fd.fit(fastmlp.MLP([2, 4, 1], seed=0), dd.from_pandas(df, npartitions=2),
               features=["u-g", "g-r"], label="label", client=client, epochs=1,
               n_shards=2, standardize=True, progress=False)


def _assert_loader_rows(cat, model, hist):
    assert sum(hist.distributed["shard_rows"]) == len(cat)
    X = cat.X.astype(np.float64)
    np.testing.assert_allclose(model.standardization[0], X.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(model.standardization[1], X.std(axis=0), rtol=1e-6)


def test_impute_median_leaves_out_a_colour_beyond_float32_as_the_loader(client, tmp_path):
    df = _magnitude_frame()
    df.loc[7, "u"], df.loc[7, "g"] = 3e38, -3e38     # each within float32; u-g is not
    df.loc[9, "u"] = np.nan
    cat, model, hist = _loader_and_fit(client, df, tmp_path, "impute-median")
    assert cat.meta["n_dropped"] == 1
    _assert_loader_rows(cat, model, hist)


def test_error_refuses_a_value_beyond_float32_naming_its_partition(client, tmp_path):
    df = _magnitude_frame()
    df.loc[150, "g"] = 1e39           # finite in float64; missing for a float32 model
    _assert_both_refuse(client, df, tmp_path, r"partition with index 100\.\.199: 1 of 100 "
                        r"rows has missing .* in columns \{'g': 1\}; drop")


@pytest.mark.parametrize("missing", ["drop", "impute-median"])
def test_a_missing_label_is_left_out_as_the_loader(client, tmp_path, missing):
    df = _magnitude_frame()
    df.loc[150, "label"], df.loc[151, "label"] = np.nan, -9999.0
    df.loc[20, "r"] = np.nan
    cat, model, hist = _loader_and_fit(client, df, tmp_path, missing)
    assert len(cat) == (198 if missing == "impute-median" else 197)
    _assert_loader_rows(cat, model, hist)


def test_a_missing_label_under_error_is_refused_naming_the_label(client, tmp_path):
    df = _magnitude_frame()
    df.loc[150, "label"] = np.nan
    _assert_both_refuse(client, df, tmp_path, r"1 of 100 rows has missing .* in columns "
                        r"\{'label': 1\}; drop or clean")


def test_drop_leaves_out_an_arrays_row_with_a_missing_label(client, small):
    X, y = small
    yy = y.astype(np.float64)
    yy[[5, 700]] = np.nan, -9999.0
    hist = fd.fit(_mk64(), X, yy, client=client, missing="drop", epochs=1, progress=False)
    assert sum(hist.distributed["shard_rows"]) == len(y) - 2


def test_drop_leaves_out_a_dask_arrays_row_with_a_missing_label(client, small):
    """A Dask array X takes the same label rule as a NumPy one (it checked X only)."""
    X, y = small
    yy = y.astype(np.float64)
    yy[[5, 700]] = np.nan, -9999.0
    hist = fd.fit(_mk64(), da.from_array(X, chunks=(300, X.shape[1])), yy, client=client,
                  missing="drop", epochs=1, progress=False)
    assert sum(hist.distributed["shard_rows"]) == len(y) - 2


@pytest.mark.parametrize("as_dask", [False, True], ids=["numpy", "dask_array"])
def test_a_missing_label_in_arrays_under_error_is_refused(client, small, as_dask):
    """A -9999 label under missing='error' is refused, as the loader and MPI refuse it (the
    shards' check knew NaN and inf only: a regression trained on -9999)."""
    X, y = small
    yy = y.astype(np.float64)
    yy[700] = -9999.0
    Xa = da.from_array(X, chunks=(300, X.shape[1])) if as_dask else X
    with pytest.raises(ValueError, match=r"X, y: 1 of [\d,]+ rows has missing .* in columns "
                                         r"\{'y': 1\}"):
        fd.fit(_mk64(), Xa, yy, client=client, missing="error", epochs=1, progress=False)


@pytest.mark.parametrize("as_dask", [False, True], ids=["numpy", "dask_array"])
def test_a_value_beyond_the_dtype_in_arrays_under_error_is_refused(client, small, as_dask):
    """1e39 in X for a float32 model under missing='error' is refused, as the loader and
    MPI refuse it (the shards' check knew NaN and inf only: it was trained on, its column's
    standardisation ruined)."""
    X, y = small
    Xb = X.astype(np.float64)
    Xb[700, 1] = 1e39
    Xa = da.from_array(Xb, chunks=(300, Xb.shape[1])) if as_dask else Xb
    model = fastmlp.MLP([Xb.shape[1], 8, 1], seed=0)        # float32
    with pytest.raises(ValueError, match=r"X, y: 1 of [\d,]+ rows has missing .* in columns "
                                         r"\{'X': 1\}"):
        fd.fit(model, Xa, y, client=client, missing="error", epochs=1, progress=False)
