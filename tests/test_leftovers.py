"""Four defects found by users probing fastmlp: the tuning cache's lock, `fastmlp train
--out` checked before training, `fastmlp cv`'s contamination over the folds that have one,
and a batch's refusal of a zero learning rate naming its model."""

import json
import multiprocessing
import os
import signal
import time
import types

import numpy as np
import pytest

from fastmlp.backends import tuning


# ---------------------------------------------------------------------------------------
# 1. The tuning cache: read-merge-write under a lock
# ---------------------------------------------------------------------------------------

@pytest.fixture
def cache(fresh_tuning_cache):
    """Tuning on, a fresh cache directory, a fixed CPU name, nothing remembered
    (conftest.py)."""
    return fresh_tuning_cache


N_SAVES = 150


def _save_entries(worker, start):
    """A fresh process's life, N_SAVES times over: read the file, measure one entry, save."""
    start.wait()
    for i in range(N_SAVES):
        tuning.clear_memo()
        tuning._cached(f"crossover/worker{worker}/float32/{i}", lambda: float(i))


def test_two_processes_saving_at_once_lose_no_entry(cache):
    pytest.importorskip("fcntl", reason="no advisory locks on this platform")
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
    fcntl = pytest.importorskip("fcntl", reason="no advisory locks on this platform")
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
        with pytest.warns(RuntimeWarning, match="lock .* held by another process"):
            _measure_one("crossover/c/float32/t1")
    finally:
        os.close(fd)
    # no fcntl (Windows): saved without the lock
    monkeypatch.setattr(tuning, "fcntl", None)
    _measure_one("crossover/d/float32/t1")
    entries = json.loads(open(path).read())["entries"]
    assert sorted(entries) == [f"crossover/{k}/float32/t1" for k in "abcd"]
    assert tuning.unwritten_cache() is None


def _forking_in_the_next_save(monkeypatch):
    """Make the next save fork a child while it holds the lock (as a multiprocessing worker
    started by another thread at that moment would be); the child sleeps a minute.  The
    children's pids."""
    children = []
    merge = tuning._merge_and_write

    def forking_merge(path):
        if not children:
            pid = os.fork()
            if pid == 0:
                try:
                    time.sleep(60)
                finally:
                    os._exit(0)
            children.append(pid)
        merge(path)
    monkeypatch.setattr(tuning, "_merge_and_write", forking_merge)
    return children


def _recording_acquire(monkeypatch):
    """Record what each save's attempt to take the lock returned (True: taken)."""
    taken = []
    acquire = tuning._acquire

    def recording(*args):
        taken.append(acquire(*args))
        return taken[-1]
    monkeypatch.setattr(tuning, "_acquire", recording)
    return taken


def test_a_child_forked_while_a_save_holds_the_lock_does_not_keep_it(cache, monkeypatch):
    fcntl = pytest.importorskip("fcntl", reason="no advisory locks on this platform")
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    monkeypatch.setattr(tuning, "LOCK_WAIT_SECONDS", 0.5)
    children = _forking_in_the_next_save(monkeypatch)
    taken = _recording_acquire(monkeypatch)
    try:
        _measure_one("crossover/a/float32/t1")     # forks a child while holding the lock
        _measure_one("crossover/b/float32/t1")
        assert os.waitpid(children[0], os.WNOHANG) == (0, 0)     # the child still lives
        assert taken == [True, True]      # yet this process's next save took the lock
        # and so can another process (another open file of the lock file)
        fd = os.open(tuning.lock_path(tuning.cache_path()), os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    entries = json.loads(open(tuning.cache_path()).read())["entries"]
    assert sorted(entries) == ["crossover/a/float32/t1", "crossover/b/float32/t1"]


def _counting_flock(monkeypatch, fcntl):
    """Record each flock call the saves make."""
    calls = []

    def flock(fd, op):
        calls.append(op)
        return fcntl.flock(fd, op)
    monkeypatch.setattr(tuning, "fcntl", types.SimpleNamespace(
        LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB, flock=flock))
    return calls


def test_a_lock_held_too_long_is_waited_for_once_and_said_once(cache, monkeypatch):
    # a stuck holder (e.g. a child an older fastmlp forked while it held the lock): each
    # save waiting the full LOCK_WAIT_SECONDS again made a first `fastmlp train` ~50 s longer
    fcntl = pytest.importorskip("fcntl", reason="no advisory locks on this platform")
    lock = tuning.lock_path(tuning.cache_path())
    holder = os.open(lock, os.O_RDWR | os.O_CREAT)
    said = []
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        monkeypatch.setattr(tuning, "LOCK_WAIT_SECONDS", 0.05)
        calls = _counting_flock(monkeypatch, fcntl)
        with tuning.reporting_unwritable_cache(said.append):
            tuning._cached("crossover/a/float32/t1", lambda: 1.0)   # waits, in vain
            assert len(calls) > 1 and len(said) == 1
            calls.clear()
            monkeypatch.setattr(tuning, "LOCK_WAIT_SECONDS", 5.0)
            tuning._cached("crossover/b/float32/t1", lambda: 1.0)   # one try, no wait
            tuning._cached("crossover/c/float32/t1", lambda: 1.0)
        assert len(calls) == 2
    finally:
        os.close(holder)
    assert len(said) == 1 and said[0].startswith(f"the tuning cache's lock {lock} has been "
                                                 "held by another process")
    assert "without it" in said[0] and f"fuser -v {lock}" in said[0]
    # the holder gone, the lock is taken again (its one try succeeds)
    taken = _recording_acquire(monkeypatch)
    tuning._cached("crossover/d/float32/t1", lambda: 1.0)
    assert taken == [True] and tuning.unwritten_cache() is None
    entries = json.loads(open(tuning.cache_path()).read())["entries"]
    assert sorted(entries) == [f"crossover/{k}/float32/t1" for k in "abcd"]


def test_a_lock_file_this_user_may_not_write_still_locks(cache, monkeypatch):
    # a group-shared cache directory whose lock file another user created (mode 0644):
    # flock works on a descriptor opened for reading.  (Root ignores file modes: the
    # refusal to open it for writing is simulated.)
    fcntl = pytest.importorskip("fcntl", reason="no advisory locks on this platform")
    lock = tuning.lock_path(tuning.cache_path())
    open(lock, "w").close()
    real_open = os.open

    def refusing_open(path, flags, *args, **kw):
        if str(path) == lock and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kw)
    monkeypatch.setattr(os, "open", refusing_open)
    held_during_write = []
    merge = tuning._merge_and_write

    def merge_checking_the_lock(path):
        fd = real_open(lock, os.O_RDONLY)      # another process's view of the lock
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held_during_write.append(False)
        except BlockingIOError:
            held_during_write.append(True)
        finally:
            os.close(fd)
        merge(path)
    monkeypatch.setattr(tuning, "_merge_and_write", merge_checking_the_lock)
    _measure_one("crossover/a/float32/t1")
    assert held_during_write == [True]
    assert list(json.loads(open(tuning.cache_path()).read())["entries"]) == [
        "crossover/a/float32/t1"]


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


def test_an_out_through_a_file_and_dot_dot_is_refused_naming_the_flag(
        tmp_path, monkeypatch, capsys):
    # os.path.abspath collapses notes.txt/.. lexically; the operating system does not
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    err = _train_refused(monkeypatch, capsys, "notes.txt/../m3.npz")
    assert f"--out notes.txt/../m3.npz: {tmp_path / 'notes.txt'} is a file, not a " \
        "directory" in err and "Errno" not in err, err
    # a symlink whose target goes through the file: the system's own NotADirectoryError
    os.symlink("notes.txt/m.npz", tmp_path / "link.npz")
    err = _train_refused(monkeypatch, capsys, "link.npz")
    assert "--out link.npz: a folder on this path is a file " \
        f"({tmp_path / 'notes.txt' / 'm.npz'}); give a path in an existing directory" in err
    assert "Errno" not in err, err


def test_an_out_under_a_folder_without_search_permission_names_the_flag(
        tmp_path, monkeypatch, capsys):
    import errno
    import pathlib
    locked = tmp_path / "locked"
    (locked / "sub").mkdir(parents=True)
    is_dir = pathlib.Path.is_dir

    def no_search_permission(self):       # as chmod 0o600 would for a user other than root
        if str(self).startswith(str(locked) + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return is_dir(self)
    monkeypatch.setattr(pathlib.Path, "is_dir", no_search_permission)
    err = _train_refused(monkeypatch, capsys, locked / "sub" / "m.npz")
    assert f"--out {locked / 'sub' / 'm.npz'}: Permission denied ({locked / 'sub'}); check " \
        "the permissions of the folders on this path or give another path" in err, err


# ---------------------------------------------------------------------------------------
# 3. fastmlp cv: contamination over the folds that selected something
# ---------------------------------------------------------------------------------------

def _cv_result(contaminations, accuracies=None):
    from fastmlp.training.recipes import CVResult
    if accuracies is None:
        accuracies = [0.9 + i / 100 for i in range(len(contaminations))]
    folds = [{"accuracy": a, "contamination": c}
             for a, c in zip(accuracies, contaminations)]
    keys = list(folds[0])
    return CVResult(folds, {k: float(np.mean([f[k] for f in folds])) for k in keys},
                    {k: float(np.std([f[k] for f in folds])) for k in keys},
                    [100] * len(folds))


def test_cv_result_gives_mean_and_std_over_the_folds_with_a_value():
    res = _cv_result([0.01, np.nan, 0.03, 0.02, 0.04])
    assert np.isnan(res.mean["contamination"])          # over every fold: kept as it was
    mean, std, n = res.mean_std_where_defined("contamination")
    assert (mean, n) == (pytest.approx(0.025), 4)
    assert std == pytest.approx(np.std([0.01, 0.03, 0.02, 0.04]))
    assert res.mean_std_where_defined("accuracy") == (res.mean["accuracy"],
                                                      res.std["accuracy"], 5)
    none = _cv_result([np.nan, np.nan])
    m, s, n = none.mean_std_where_defined("contamination")
    assert np.isnan(m) and np.isnan(s) and n == 0


def test_cv_prints_contamination_over_the_folds_that_selected_something(monkeypatch, capsys):
    from fastmlp import cli
    from fastmlp.cli import recipes as recipes_cli
    for contaminations, expected in [
            ([0.01, np.nan, 0.03, 0.02, 0.04],
             "contamination 0.02500 +- 0.01118 over 4 of 5 folds"),
            ([0.01, 0.03, 0.02, 0.04, 0.05], "contamination 0.03000 +- 0.01414"),  # as before
            ([np.nan] * 5, "contamination n/a +- n/a")]:                            # as before
        monkeypatch.setattr(recipes_cli, "cross_validate",
                            lambda *args, c=contaminations, **kw: _cv_result(c))
        assert cli.main(["cv", "--n-samples", "400", "--k", "5", "--epochs", "1",
                         "--quiet"]) == 0
        line = [ln for ln in capsys.readouterr().out.splitlines()
                if ln.startswith("mean +- std: ")]
        assert len(line) == 1 and line[0].endswith(expected), line
        assert "accuracy 0.92000 +- 0.01414, " in line[0]      # no count: every fold has one


def _cv_reported(monkeypatch, capsys, tmp_path, res):
    """`fastmlp cv --plot` on a CVResult: the 'mean +- std' line and the figure's axes by
    metric."""
    pytest.importorskip("matplotlib")
    from fastmlp import cli, plot
    from fastmlp.cli import recipes as recipes_cli
    figs = []
    drawn = plot.cv_folds
    monkeypatch.setattr(recipes_cli, "cross_validate", lambda *args, **kw: res)
    monkeypatch.setattr(plot, "cv_folds", lambda *a, **kw: figs.append(drawn(*a, **kw)))
    assert cli.main(["cv", "--n-samples", "400", "--k", str(len(res.folds)), "--epochs", "1",
                     "--quiet", "--plot", str(tmp_path / "cv.png")]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("mean +- std")]
    assert len(line) == 1 and len(figs) == 1
    return line[0], dict(zip(res.mean, figs[0].axes))


def test_cv_line_table_repr_and_plot_give_one_contamination_mean(
        monkeypatch, capsys, tmp_path):
    res = _cv_result([0.01, np.nan, 0.03, 0.02, 0.04])
    line, axes = _cv_reported(monkeypatch, capsys, tmp_path, res)
    assert line.endswith("contamination 0.02500 +- 0.01118 over 4 of 5 folds")
    table = res.table().splitlines()
    assert table[-3].split()[-1] == "0.02500" and table[-2].split()[-1] == "0.01118"
    assert table[-1] == "contamination: mean and std over 4 of 5 folds (n/a: the fold " \
        "selected nothing)"
    assert "contamination 0.025 +- 0.011 (4 of 5 folds))" in repr(res)
    ax = axes["contamination"]
    assert ax.get_title() == "contamination of quasar\n0.0250 ± 0.0112 (4 of 5 folds)"
    mean_line = [ln for ln in ax.get_lines() if ln.get_label() == "mean"][0]
    assert mean_line.get_ydata()[0] == pytest.approx(0.025)
    band = [p for p in ax.patches if p.get_label() == "± 1 std"][0]
    # (y in data coordinates, whether matplotlib draws the span as a Rectangle or Polygon)
    ys = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1]
    sd = np.std([0.01, 0.03, 0.02, 0.04])
    assert (min(ys), max(ys)) == (pytest.approx(0.025 - sd), pytest.approx(0.025 + sd))


def test_cv_keeps_a_diverged_folds_nan_accuracy_n_a_everywhere(monkeypatch, capsys, tmp_path):
    res = _cv_result([0.01, 0.02, 0.03, 0.02, 0.04], [0.9, np.nan, 0.92, 0.93, 0.94])
    assert res.mean_std_where_defined("accuracy")[2] == 4     # what the line used to print
    line, axes = _cv_reported(monkeypatch, capsys, tmp_path, res)
    assert line.startswith("mean +- std: accuracy n/a +- n/a, contamination 0.02400 +- ")
    table = res.table().splitlines()
    assert table[-2].split()[1] == "n/a" and table[-1].split()[1] == "n/a"
    assert "accuracy n/a +- n/a, contamination 0.024 +- " in repr(res)
    assert axes["accuracy"].get_title() == "accuracy\nn/a"


# ---------------------------------------------------------------------------------------
# 4. A batch's refusal of one model's learning rate names that model
# ---------------------------------------------------------------------------------------

def _batch_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    return X, (X[:, 0] > 0).astype(np.int64)


def test_a_batch_refusing_one_models_zero_lr_names_that_model():
    import fastmlp
    from fastmlp.training.batch import ModelBatch
    base = fastmlp.MLP([4, 8, 1], seed=0)
    kws = [{"lr": 1e-3}, {"lr": 0.0}, {"lr": 1e-2}]
    # the schedule (a constant one, or a spec) refuses the lr of 0 of model 1 alone
    for schedule, also in ((None, ""), ("cosine:T=10", ", schedule 'cosine:T=10'")):
        with pytest.raises(ValueError) as err:
            ModelBatch(base, 3, optimizer="adam", optimizer_kwargs=kws, schedule=schedule)
        assert str(err.value) == (f"model 1 (optimizer 'adam', optimizer_kwargs {{'lr': 0.0}}"
                                  f"{also}): lr must be a positive number, got 0.0")
    # every model's lr of 0: every model's error, no model named (as optimizer errors)
    with pytest.raises(ValueError, match=r"^lr must be a positive number, got 0.0$"):
        ModelBatch(base, 3, optimizer="adam", optimizer_kwargs={"lr": 0.0})


def test_a_batch_schedule_giving_an_invalid_lr_names_its_model():
    import fastmlp
    from fastmlp.training.batch import ModelBatch, fit_batch
    X, y = _batch_data()
    base = fastmlp.MLP([4, 8, 1], seed=0)

    def falls_below_zero(step):
        return 1e-3 if step < 3 else -1e-3
    batch = ModelBatch(base, 3, optimizer="sgd", optimizer_kwargs={"lr": 1e-3},
                       schedule=[None, None, falls_below_zero])
    with pytest.raises(ValueError, match=r"^model 2 \(optimizer 'sgd', optimizer_kwargs "
                       r"\{'lr': 0.001\}, schedule <function .*falls_below_zero.*>\): "
                       r"schedule returned an invalid learning rate"):
        fit_batch(batch, X, y, epochs=2, batch_size=40)
    # a schedule reaching 0 is a valid lr: trained, recorded
    batch = ModelBatch(base, 2, optimizer="sgd", optimizer_kwargs={"lr": 1e-3},
                       schedule=[None, lambda step: 0.0])
    hist = fit_batch(batch, X, y, epochs=1, batch_size=40)
    assert hist.lr[1] == [0.0] * 3 and hist.lr[0] == [1e-3] * 3
