"""MPI: under ``mpirun -n 2`` each rank reads its slice of a .npy catalog and one Allreduce
per mini-batch makes 2 ranks x B/2 rows give the single-process result with batch B."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP
from fastmlp.backends import reference
from fastmlp.data import make_photometric_catalog
from fastmlp.distributed import load_checkpoint
from fastmlp.optim import make_optimizer

try:
    import mpi4py  # noqa: F401
    _MPI_MISSING = None
except Exception as exc:  # pragma: no cover
    _MPI_MISSING = f"mpi4py is not importable ({exc}); pip install fastmlp[mpi]"


def _mpirun():
    here = os.path.dirname(sys.executable)
    for name in ("mpirun", "mpiexec"):
        cand = os.path.join(here, name)
        if os.path.exists(cand):
            return cand
        found = shutil.which(name)
        if found:
            return found
    return None


pytestmark = pytest.mark.skipif(_MPI_MISSING is not None or _mpirun() is None,
                                reason=_MPI_MISSING or "no mpirun/mpiexec on PATH "
                                "(pip install fastmlp[mpi] brings MPICH's)")

N, B, P = 2048, 64, 2
LAYERS = [4, 16, 16, 1]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """A structured .npy like the SDSS DR6 file: colour fields and label (0 = quasar)."""
    cat = make_photometric_catalog(N, seed=11, dtype="float64")
    rec = np.empty(N, dtype=[("u-g", "f8"), ("g-r", "f8"), ("r-i", "f8"), ("i-z", "f8"),
                             ("label", "i4")])
    for k, f in enumerate(("u-g", "g-r", "r-i", "i-z")):
        rec[f] = cat.X[:, k]
    rec["label"] = 1 - cat.y  # like DR6: 0 = quasar
    path = tmp_path_factory.mktemp("mpi") / "catalog.npy"
    np.save(path, rec)
    # --positive 0 marks the quasars; the targets stay the file's labels (fastmlp train's)
    return path, cat.X, rec["label"].astype(np.int64)


def _run(path, tmp, optimizer, lr, epochs=1, dtype="float64", batch_size=B):
    out, ck = tmp / f"out-{optimizer}.npz", tmp / f"ck-{optimizer}.npz"
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               FASTMLP_BACKEND="numpy")
    cmd = [_mpirun(), "-n", str(P), sys.executable, "-m", "fastmlp.distributed.mpi",
           "--data", str(path), "--features", "u-g,g-r,r-i,i-z", "--label", "label",
           "--positive", "0", "--layers", ",".join(map(str, LAYERS)), "--dtype", dtype,
           "--epochs", str(epochs), "--batch-size", str(batch_size), "--optimizer", optimizer,
           "--lr", str(lr), "--seed", "3", "--standardize", "--checkpoint", str(ck),
           "--output", str(out), "--save", str(tmp / f"model-{optimizer}.npz")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return np.load(out), ck, r.stderr


def _single_process(X, y, optimizer, lr, epochs=1):
    """One process, global batch B: the union of the ranks' batches, in step order, fed to
    the reference epoch driver."""
    from fastmlp.distributed.mpi import local_batch_size, local_order, slice_bounds
    mean, sd = X.mean(0), X.std(0)
    Xs = (X - mean) / sd
    model = MLP(LAYERS, seed=0, dtype="float64")
    opt = make_optimizer(optimizer, model.params, lr=lr)
    Y = y.astype(np.float64)[:, None]
    losses = []
    for epoch in range(epochs):
        parts = []
        for r in range(P):
            lo, hi = slice_bounds(N, r, P)
            b = local_batch_size(B, r, P)
            assert b * P == B
            parts.append((lo + local_order(hi - lo, epoch, r, 3)).reshape(-1, b))
        order = np.concatenate(parts, axis=1).ravel()  # step t: rank 0's rows, rank 1's rows
        bl = np.empty(N // B)
        done = reference.train_epoch(model.params, np.empty_like(model.params), opt.state, bl,
                                     Xs, Y, np.ones(N), order, B, np.full(N // B, lr),
                                     opt.step_count, opt.code, opt.hyper_vector(),
                                     model.sizes_array, model.acts_array, 0)
        assert done == N // B
        opt.step_count += done
        losses.extend(bl)
    return model.params, np.array(losses)


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.2), ("adam", 3e-3)])
def test_two_ranks_equal_single_process_with_global_batch(catalog, tmp_path, optimizer, lr):
    path, X, y = catalog
    res, ck, err = _run(path, tmp_path, optimizer, lr)
    assert int(res["ranks"]) == 2 and int(res["steps"]) == N // B
    params, losses = _single_process(X, y, optimizer, lr)
    assert not np.allclose(params, MLP(LAYERS, seed=0, dtype="float64").params)
    np.testing.assert_allclose(res["params"], params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res["batch_loss"], losses, rtol=1e-9)
    # rank 0 wrote the checkpoint (atomically) and the progress line
    saved = load_checkpoint(ck)
    np.testing.assert_array_equal(saved["params"], res["params"])
    assert int(saved["step"]) == N // B
    assert err.count("epoch 1/1") == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # --save: a model file that fastmlp.load reads, with the catalog's standardisation, so
    # it predicts from raw colours (--output is the run's record, not a model)
    model = fastmlp.load(tmp_path / f"model-{optimizer}.npz")
    np.testing.assert_array_equal(model.params, res["params"])
    np.testing.assert_allclose(model.standardization[0], X.mean(axis=0), rtol=1e-12)
    assert model.predict_proba(X).shape == (N, 2)


def test_a_rank_that_fails_alone_stops_every_rank(catalog, tmp_path):
    """A NaN row in rank 1's slice only: rank 1 raised and rank 0 waited forever in the next
    collective call (the audit's job ran until a 5-minute timeout)."""
    path, X, y = catalog
    rec = np.load(path)
    rec["g-r"][N - 5] = np.nan                      # the last rows are rank 1's
    bad = tmp_path / "bad.npy"
    np.save(bad, rec)
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               FASTMLP_BACKEND="numpy")
    cmd = [_mpirun(), "-n", str(P), sys.executable, "-m", "fastmlp.distributed.mpi",
           "--data", str(bad), "--features", "u-g,g-r,r-i,i-z", "--label", "label",
           "--layers", ",".join(map(str, LAYERS)), "--epochs", "1", "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode != 0
    assert f"(rank 1, rows {N // 2}..{N - 1}): 1 of " in r.stderr
    assert "has missing or invalid values (NaN, inf, -9999 or beyond the model's dtype) in " \
           "columns {'g-r': 1}" in r.stderr
    assert "rank 1 stopped, so every rank stops" in r.stderr


def test_float32_two_ranks_close_to_single_process(catalog, tmp_path):
    path, X, y = catalog
    res, _, _ = _run(path, tmp_path, "adam", 3e-3, epochs=2, dtype="float32")
    params, _ = _single_process(X, y, "adam", 3e-3, epochs=2)
    assert res["params"].dtype == np.float32
    np.testing.assert_allclose(res["params"], params, rtol=2e-3, atol=2e-4)


def test_unequal_local_batches_are_weighted_by_their_size(catalog, tmp_path):
    """B = 63 on 2 ranks: local batches of 32 and 31 rows, and at the end of the epoch rank 0
    has no rows left while rank 1 still has: the Allreduce of W_r g_r and W_r keeps the
    gradient that of the weighted mean over the union (a plain average of the ranks'
    gradients would not)."""
    from fastmlp.distributed.mpi import local_order, slice_bounds
    path, X, y = catalog
    res, _, _ = _run(path, tmp_path, "sgd", 0.2, batch_size=63)
    Xs = (X - X.mean(0)) / X.std(0)
    Y = (y.astype(np.float64))[:, None]
    model = MLP(LAYERS, seed=0, dtype="float64")
    orders = [lo + local_order(hi - lo, 0, r, 3)
              for r, (lo, hi) in enumerate(slice_bounds(N, r, P) for r in range(P))]
    bs = [32, 31]
    steps = max(-(-o.size // b) for o, b in zip(orders, bs))
    assert steps == 34 and int(res["steps"]) == steps
    g = np.empty_like(model.params)
    theta = model.params.copy()
    for t in range(steps):
        rows = np.concatenate([o[t * b:(t + 1) * b] for o, b in zip(orders, bs)])
        reference.mlp_loss_grad(g, theta, Xs[rows], Y[rows], np.ones(rows.size),
                                model.sizes_array, model.acts_array, 0)
        theta -= 0.2 * g
    np.testing.assert_allclose(res["params"], theta, rtol=1e-9, atol=1e-12)


def test_one_rank_in_process_leaves_the_link_to_the_loss():
    """As after fit: mpi_fit sets the loss, not a fixed output link, so the model can be
    trained again with another loss (a fixed link refused that)."""
    from fastmlp import fit
    from fastmlp.distributed.mpi import mpi_fit
    cat = make_photometric_catalog(2000, seed=1, dtype="float64")
    m = MLP([4, 8, 1], seed=0, dtype="float64")
    mpi_fit(m, cat.X, cat.y, epochs=1, batch_size=100, lr=1e-2, progress=False)
    assert m.output is None and m.link == "sigmoid" and m.loss == "bce"
    fit(m, cat.X, cat.X[:, 0], loss="mse", epochs=1, progress=False, validation=None)
    assert m.link == "identity"


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_one_rank_an_overflowed_optimizer_state_stops_the_run():
    # float32 inputs of 1e30: Adam's squared gradients overflow on step 1 while the loss and
    # gradient stay finite; mpi_fit used to finish on a flat 1e29 loss
    from fastmlp.distributed.mpi import mpi_fit
    cat = make_photometric_catalog(256, seed=1, dtype="float32")
    X = cat.X * np.float32([1, 1e30, 1, 1])
    m = MLP([4, 8, 1], seed=0, backend="numpy")
    p0 = m.params.copy()
    with pytest.raises(fastmlp.TrainingDiverged, match=r"training diverged in epoch 1: the "
                       r"optimizer state \(exp_avg_sq\) became non-finite .*standardize=True"):
        mpi_fit(m, X, cat.y, epochs=2, batch_size=64, standardize=False, progress=False)
    assert np.array_equal(m.params, p0)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("batch_size, seen", [
    (256, r"in epoch 1: the parameters became non-finite"),       # the end-of-epoch check
    (64, r"at step 2 \(epoch 1, lr 1e\+38\): the batch loss was nan")])  # a step's check
def test_one_rank_a_huge_lr_on_a_standardised_model_advises_a_smaller_lr(batch_size, seen):
    # fit's rule (divergence_advice): standardize=True is advised only to a model without
    # standardisation whose inputs are huge; mpi_fit advised it to this standardised model
    from fastmlp.distributed.mpi import mpi_fit
    cat = make_photometric_catalog(256, seed=1, dtype="float64")
    m = MLP([4, 8, 1], seed=0, backend="numpy")      # float32: an lr of 1e38 overflows it
    with pytest.raises(fastmlp.TrainingDiverged, match=f"training diverged {seen}") as info:
        mpi_fit(m, cat.X.astype(np.float32), 1e3 * cat.X[:, 0], loss="mse", optimizer="sgd",
                lr=1e38, batch_size=batch_size, standardize=True, epochs=2, progress=False)
    assert m.standardization is not None
    assert "standardi" not in str(info.value)
    assert str(info.value).endswith("Try a smaller lr (this run's was 1e+38).")


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_one_rank_huge_unstandardised_inputs_advise_standardize():
    # sgd's loss overflows on a column of 1e30 at a step (not at the end-of-epoch check):
    # mpi_fit said only "Try a smaller lr", which does not cure it
    from fastmlp.distributed.mpi import mpi_fit
    cat = make_photometric_catalog(256, seed=1, dtype="float64")
    m = MLP([4, 8, 1], seed=0, backend="numpy", dtype="float64")
    with pytest.raises(fastmlp.TrainingDiverged, match=r"training diverged at step \d+ .*: the "
                       r"batch loss was .*The inputs are not standardised and column 1 "
                       r"reaches \|x\| = 2.16e\+30: pass standardize=True"):
        mpi_fit(m, cat.X * np.array([1, 1e30, 1, 1]), cat.y, optimizer="sgd", lr=0.1,
                batch_size=64, standardize=False, epochs=3, progress=False)


@pytest.mark.parametrize("bad, message", [
    (dict(seed=-1), "seed must be a non-negative integer or None, got -1"),
    (dict(standardize="no"), "standardize must be True or False, got 'no'")])
def test_one_rank_seed_and_standardize_are_checked(bad, message):
    from fastmlp.distributed.mpi import mpi_fit
    cat = make_photometric_catalog(256, seed=1, dtype="float64")
    with pytest.raises(ValueError, match=message):
        mpi_fit(MLP([4, 8, 1], seed=0, dtype="float64"), cat.X, cat.y, epochs=1,
                progress=False, **bad)


def test_one_rank_resume_continues_exactly_and_refuses_another_run(tmp_path):
    """mpi_fit wrote a checkpoint every epoch that nothing could resume from."""
    from fastmlp.distributed.mpi import mpi_fit
    cat = make_photometric_catalog(1500, seed=2, dtype="float64")
    kw = dict(batch_size=64, lr=1e-2, standardize=True, progress=False)
    full = MLP([4, 8, 1], seed=0, dtype="float64")
    mpi_fit(full, cat.X, cat.y, epochs=3, **kw)
    ck = tmp_path / "ck.npz"
    mpi_fit(MLP([4, 8, 1], seed=0, dtype="float64"), cat.X, cat.y, epochs=2, checkpoint=ck,
            **kw)
    resumed = MLP([4, 8, 1], seed=0, dtype="float64")
    h = mpi_fit(resumed, cat.X, cat.y, epochs=3, checkpoint=ck, resume=True, **kw)
    assert h.distributed["resumed_from_epoch"] == 2 and h.epochs == 3
    np.testing.assert_array_equal(resumed.params, full.params)
    assert resumed.optimizer.step_count == full.optimizer.step_count == 3 * -(-1500 // 64)
    with pytest.raises(ValueError, match="different run.*optimizer lr: checkpoint 0.01, now"):
        mpi_fit(MLP([4, 8, 1], seed=0, dtype="float64"), cat.X, cat.y, epochs=3,
                checkpoint=ck, resume=True, **dict(kw, lr=0.1))
    with pytest.raises(ValueError, match="resume=True continues from checkpoint=PATH"):
        mpi_fit(MLP([4, 8, 1]), cat.X, cat.y, resume=True, **kw)


def test_an_output_that_is_a_fifo_or_a_directory_is_refused_before_training(tmp_path,
                                                                           capsys):
    from fastmlp.distributed.mpi import _main_or_error
    os.mkfifo(tmp_path / "m.npz")
    (tmp_path / "d").mkdir()
    for flag, path, kind in [("--save", tmp_path / "m.npz", "a FIFO"),
                             ("--output", tmp_path / "d", "a directory"),
                             ("--checkpoint", tmp_path / "m.npz", "a FIFO")]:
        code = _main_or_error(["--synthetic", "300", "--no-progress", flag, str(path)])
        out, err = capsys.readouterr()
        assert code == 2 and "Traceback" not in err and out == ""   # nothing trained
        assert f"{flag} '{path}' is {kind}, not a regular file" in err, err
    assert sorted(os.listdir(tmp_path)) == ["d", "m.npz"] and os.listdir(tmp_path / "d") == []


def test_help_is_printed_once_with_the_defaults():
    cmd = [_mpirun(), "-n", "2", sys.executable, "-m", "fastmlp.distributed.mpi", "--help"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0 and r.stdout.count("usage:") == 1, r.stdout + r.stderr
    assert "GLOBAL batch size (default: 256)" in r.stdout


def test_one_rank_an_empty_catalog_is_named():
    """No rows on any rank: the first step divided by a weight sum of 0 (ZeroDivisionError)."""
    from fastmlp.distributed.mpi import mpi_fit
    cat = make_photometric_catalog(64, seed=1, dtype="float64")
    for local in (False, True):
        with pytest.raises(ValueError, match="the catalog is empty: no rank holds any rows"):
            mpi_fit(MLP([4, 8, 1], seed=0, dtype="float64"), cat.X[:0], cat.y[:0],
                    local=local, epochs=1, progress=False)


@pytest.mark.parametrize("standardized_model", [False, True])
def test_one_rank_resume_refuses_another_catalog_of_the_same_size(tmp_path,
                                                                  standardized_model):
    """Without standardize=True (or with a model standardised before) the checkpoint knew
    the data only by their row count: another catalog of the same size resumed silently."""
    from fastmlp.distributed.mpi import mpi_fit
    a = make_photometric_catalog(600, seed=2, dtype="float64")
    b = make_photometric_catalog(600, seed=7, dtype="float64")
    kw = dict(batch_size=64, lr=1e-2, progress=False, checkpoint=tmp_path / "ck.npz")

    def model():
        m = MLP([4, 8, 1], seed=0, dtype="float64")
        if standardized_model:
            m.standardization = (a.X.mean(0), a.X.std(0))
        return m
    mpi_fit(model(), a.X, a.y, epochs=1, **kw)
    with pytest.raises(ValueError, match=r"written by a different run \(column_mean: "):
        mpi_fit(model(), b.X, b.y, epochs=2, resume=True, **kw)
    h = mpi_fit(model(), a.X, a.y, epochs=2, resume=True, **kw)   # the same data resume
    assert h.distributed["resumed_from_epoch"] == 1


def test_validation_and_early_stopping_flags_under_two_ranks(tmp_path):
    """--validation and --early-stopping reach mpi_fit: rank 0 (only) prints the validation
    loss of every epoch and says that it stopped early (and why)."""
    out = tmp_path / "record.npz"
    flags = ["--synthetic", "1200", "--layers", "4,8,1", "--dtype", "float64", "--epochs",
             "40", "--batch-size", "64", "--lr", "0.05", "--validation", "0.25",
             "--early-stopping", "1", "--output", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               FASTMLP_BACKEND="numpy")
    r = subprocess.run([_mpirun(), "-n", str(P), sys.executable, "-m",
                        "fastmlp.distributed.mpi"] + flags,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    val = np.load(out)["val_loss"]
    trained = len(np.load(out)["loss"])
    assert len(val) == trained < 40
    for e, v in enumerate(val):       # once, from rank 0; also in the progress lines
        assert r.stdout.count(f"epoch {e + 1}: val_loss {v:.5f}\n") == 1, r.stdout
        assert f"epoch {e + 1}/40  loss" in r.stderr and f"val_loss {v:.5f}" in r.stderr
    best = int(np.argmin(val)) + 1
    assert trained == best + 1        # patience 1: the first epoch that did not improve
    assert r.stdout.count(f"stopped early after epoch {trained}: ") == 1, r.stdout
    assert f"the parameters of epoch {best} were restored" in r.stdout
    # the first line's loss is the last epoch's, not that of the parameters the model holds
    assert (f"final loss (epoch {trained}) {np.load(out)['loss'][-1]:.5f}, parameters of "
            f"epoch {best} restored\n") in r.stdout, r.stdout


def test_early_stopping_flag_without_validation_is_refused(capsys):
    from fastmlp.distributed.mpi import main
    with pytest.raises(SystemExit) as exc:
        main(["--synthetic", "300", "--early-stopping", "3", "--no-progress"])
    assert exc.value.code == 2
    assert "--early-stopping needs --validation" in capsys.readouterr().err


def test_a_schedule_longer_than_the_run_is_warned_of_once_by_rank_0():
    """2 ranks of 600 rows, 32 a step each: 19 steps an epoch on both ranks; the warning
    came from no rank, and every rank saying it would repeat it P times."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               FASTMLP_BACKEND="numpy")
    r = subprocess.run([_mpirun(), "-n", str(P), sys.executable, "-m",
                        "fastmlp.distributed.mpi", "--synthetic", "1200", "--layers", "4,8,1",
                        "--epochs", "2", "--batch-size", "64", "--schedule", "cosine:T=5000",
                        "--no-progress"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # as the fastmlp command line says it: a --schedule line, not '<frozen runpy>:88:
    # ScheduleWarning: ...' (the first frame outside the package of python -m)
    assert r.stderr.count("warning: --schedule: T=5000 is longer than the 38 steps the "
                          "run has: the lr ends at ") == 1, r.stderr
    assert "ScheduleWarning" not in r.stderr and "runpy" not in r.stderr, r.stderr


def test_the_schedule_warning_line_is_said_once_even_under_w_error():
    """python -W error: the --schedule line as without it (the run trains on), from rank 0
    only; the Python warning raised on rank 0 alone made rank 1 wait forever."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               FASTMLP_BACKEND="numpy")
    try:
        r = subprocess.run([_mpirun(), "-n", str(P), sys.executable, "-W", "error::UserWarning",
                            "-m", "fastmlp.distributed.mpi", "--synthetic", "1200", "--layers",
                            "4,8,1", "--epochs", "1", "--batch-size", "64", "--schedule",
                            "cosine:T=100000", "--no-progress"],
                           capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the ranks were still waiting for each other after 60 s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.count("warning: --schedule: T=100000 is longer than the 19 steps") == 1
    assert "trained 1 epoch on 2 ranks; final loss (epoch 1) " in r.stdout, r.stdout


# --- fastmlp train's catalog contract: missing= / --missing and where= / --where --------

MAG_FEATURES, WHERE = "u-g,g-r", "u-g > 0.5"


def _magnitudes(n=1000, seed=3):
    """A structured catalog of raw u, g, r magnitudes and a 0/1 label, with NaN, SDSS's
    -9999 and 1e39 (beyond float32: missing for a float32 model) in some rows."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.normal(20, 1, n)
    rec = np.empty(n, dtype=[("u", "f8"), ("g", "f8"), ("r", "f8"), ("label", "i8")])
    rec["u"] = g + 1.0 + 0.8 * y + rng.normal(0, .3, n)
    rec["g"], rec["label"] = g, y
    rec["r"] = g - 0.4 - 0.3 * y + rng.normal(0, .2, n)
    rec["u"][5::97] = np.nan
    rec["r"][7::89] = -9999.0
    rec["g"][11::131] = 1e39
    return rec


@pytest.fixture(scope="module")
def magnitudes(tmp_path_factory):
    path = tmp_path_factory.mktemp("mags") / "mags.npy"
    np.save(path, _magnitudes())
    return path


def _cli_run(path, tmp, ranks, *flags):
    """python -m fastmlp.distributed.mpi on ``ranks`` ranks (a float32 model, colours of
    the raw magnitudes): (the --save'd model, the --output record)."""
    out, saved = tmp / f"record-{ranks}.npz", tmp / f"model-{ranks}.npz"
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               FASTMLP_BACKEND="numpy")
    cmd = [_mpirun(), "-n", str(ranks), sys.executable, "-m", "fastmlp.distributed.mpi",
           "--data", str(path), "--features", MAG_FEATURES, "--label", "label", "--layers",
           "2,4,1", "--epochs", "1", "--batch-size", "64", "--standardize", "--no-progress",
           "--output", str(out), "--save", str(saved), *flags]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return fastmlp.load(saved), np.load(out)


def _loader_catalog(path, missing, where=WHERE):
    """What fastmlp train reads of the file (float32, as the float32 model's training)."""
    from fastmlp.data import load_catalog
    return load_catalog(path, features=MAG_FEATURES.split(","), label="label",
                        missing=missing, where=where)


def _assert_same_rows(model, rows, cat):
    """The rows trained on are the loader's: as many, and the same column statistics."""
    assert int(rows) == cat.X.shape[0]
    X = cat.X.astype(np.float64)
    np.testing.assert_allclose(model.standardization[0], X.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(model.standardization[1], X.std(axis=0), rtol=1e-6)


@pytest.mark.parametrize("ranks", [1, 2])
def test_impute_median_stores_the_loaders_medians_on_any_number_of_ranks(magnitudes,
                                                                         tmp_path, ranks):
    cat = _loader_catalog(magnitudes, "impute-median")
    model, record = _cli_run(magnitudes, tmp_path, ranks, "--missing", "impute-median",
                             "--where", WHERE)
    assert model.features.fill == pytest.approx(cat.meta["impute_medians"], rel=0, abs=0)
    assert int(record["ranks"]) == ranks
    _assert_same_rows(model, record["rows"], cat)


@pytest.mark.parametrize("ranks", [1, 2])
def test_drop_trains_on_the_rows_the_loader_keeps_on_any_number_of_ranks(magnitudes,
                                                                         tmp_path, ranks):
    cat = _loader_catalog(magnitudes, "drop")
    assert cat.meta["n_dropped"] > 0
    model, record = _cli_run(magnitudes, tmp_path, ranks, "--missing", "drop", "--where",
                             WHERE)
    assert model.features.fill is None
    _assert_same_rows(model, record["rows"], cat)


def test_one_rank_where_keeps_the_rows_the_loader_keeps(tmp_path):
    """A catalog without missing values: where= alone (a colour of two fields, and a field)
    decides the rows."""
    from fastmlp.distributed.mpi import mpi_fit
    rec = _magnitudes()
    rec = rec[np.isfinite(rec["u"]) & (rec["r"] != -9999.0) & (rec["g"] < 1e30)]
    path = tmp_path / "clean.npy"
    np.save(path, rec)
    where = "u-g > 0.5 and r < 20"
    cat = _loader_catalog(path, "error", where)
    assert 0 < cat.X.shape[0] < len(rec)
    model = MLP([2, 4, 1], seed=0)
    hist = mpi_fit(model, path=path, features=MAG_FEATURES, label="label", where=where,
                   epochs=1, standardize=True, progress=False)
    _assert_same_rows(model, hist.distributed["rows"], cat)


def test_one_rank_an_impute_median_model_predicts_a_missing_value_with_its_fill(magnitudes,
                                                                              tmp_path):
    from fastmlp.distributed.mpi import mpi_fit
    model = MLP([2, 4, 1], seed=0)
    mpi_fit(model, path=magnitudes, features=MAG_FEATURES, label="label",
            missing="impute-median", epochs=1, standardize=True, progress=False)
    fill = model.features.fill
    rec = _magnitudes()[:3]
    rec["u"][1], rec["r"][2] = np.nan, -9999.0
    filled = rec.copy()
    filled["u"][1], filled["r"][2] = fill["u"], fill["r"]
    fastmlp.save(model, tmp_path / "m.npz")
    for m in (model, fastmlp.load(tmp_path / "m.npz")):
        proba = m.predict_proba(rec)
        assert np.isfinite(proba).all()
        np.testing.assert_array_equal(proba, m.predict_proba(filled))


def test_one_rank_a_model_with_fill_values_trains_with_them(magnitudes):
    """missing='error' (the default) on rows with missing values: the model's fill values
    impute them, as distributed.fit on Dask does."""
    from fastmlp.distributed.mpi import mpi_fit
    fill = {"u": 21.0, "g": 20.0, "r": 19.5}
    model = MLP([2, 4, 1], seed=0)
    model.set_contract(features=fastmlp.FeatureSpec(MAG_FEATURES).with_fill(fill))
    hist = mpi_fit(model, path=magnitudes, features=MAG_FEATURES, label="label", epochs=1,
                   progress=False)
    assert hist.distributed["rows"] == len(_magnitudes()) and model.features.fill == fill


def test_one_rank_drop_leaves_out_an_arrays_rows_with_a_missing_value():
    from fastmlp.distributed.mpi import mpi_fit
    X = np.random.default_rng(1).normal(size=(600, 2))
    X[::50, 1] = np.nan
    X[7::61, 0] = 1e39             # beyond the float32 model's range: missing, as in train
    hist = mpi_fit(MLP([2, 4, 1], seed=0), X, (X[:, 0] > 0).astype(np.int64),
                   missing="drop", epochs=1, progress=False)
    assert hist.distributed["rows"] == 600 - 12 - 10


@pytest.mark.parametrize("kwargs, message", [
    (dict(missing="median"), r"missing must be one of \['error', 'drop', 'impute-median'\]"),
    (dict(where="u < 1"), r"where= filters a \.npy catalog's named columns \(path=\); X is "
                          "an array"),
    (dict(missing="impute-median"), "missing='impute-median' needs path= .*X is an array"),
    (dict(plain=True, missing="impute-median"), "needs a structured .npy with named fields"),
    (dict(path=True), r"mags\.npy \(rank 0, rows 0\.\.999\): \d+ of 1,?000 rows have missing "
                      r"or invalid values .* in columns \{'u': \d+, 'g': \d+, 'r': \d+\}; "
                      r".*pass missing='drop' \(or 'impute-median' for a \.npy catalog"),
    (dict(path=True, where="u-z > 1"), r"where 'u-z > 1' names column\(s\) \['u-z'\] not"),
])
def test_one_rank_missing_and_where_are_refused_by_name(magnitudes, tmp_path, kwargs,
                                                        message):
    from fastmlp.distributed.mpi import mpi_fit
    kwargs = dict(kwargs)
    if kwargs.pop("path", False):
        data = dict(path=magnitudes, features=MAG_FEATURES, label="label")
    elif kwargs.pop("plain", False):
        np.save(tmp_path / "plain.npy", np.zeros((8, 3)))
        data = dict(path=tmp_path / "plain.npy", features="0,1", label=2)
    else:
        data = dict(X=np.zeros((8, 2)), y=np.zeros(8))
    with pytest.raises(ValueError, match=message):
        mpi_fit(MLP([2, 4, 1], seed=0), epochs=1, progress=False, **data, **kwargs)


# --- the loader's row rule after imputing, beyond the dtype, and for labels -------------

def _colour_overflow(n=100):
    """Magnitudes with row 7's u = 3e38, g = -3e38 (each within float32, u-g not) and a
    NaN to impute in row 9."""
    rec = _magnitudes(n)
    rec["u"] = np.where(np.isfinite(rec["u"]), rec["u"], 21.0)
    rec["r"][rec["r"] == -9999.0], rec["g"][rec["g"] > 1e30] = 19.5, 20.0
    rec["u"][7], rec["g"][7] = 3e38, -3e38
    rec["u"][9] = np.nan
    return rec


def test_one_rank_impute_median_leaves_out_a_colour_beyond_float32_as_the_loader(tmp_path):
    from fastmlp.distributed.mpi import mpi_fit
    path = tmp_path / "overflow.npy"
    np.save(path, _colour_overflow())
    cat = _loader_catalog(path, "impute-median", where=None)
    assert cat.meta["n_dropped"] == 1
    model = MLP([2, 4, 1], seed=0)
    hist = mpi_fit(model, path=path, features=MAG_FEATURES, label="label",
                   missing="impute-median", epochs=1, standardize=True, progress=False)
    _assert_same_rows(model, hist.distributed["rows"], cat)


def test_one_rank_error_refuses_a_value_beyond_float32_with_standardize(tmp_path):
    from fastmlp.distributed.mpi import mpi_fit
    rec = _colour_overflow()
    rec["u"][[7, 9]], rec["g"][7] = 21.0, 20.0
    rec["g"][30] = 1e39                 # finite in float64; missing for a float32 model
    path = tmp_path / "beyond.npy"
    np.save(path, rec)
    with pytest.raises(ValueError, match="1 of 100 rows has missing"):
        _loader_catalog(path, "error", where=None)
    with pytest.raises(ValueError, match=r"beyond\.npy \(rank 0, rows 0\.\.99\): 1 of 100 "
                                         r"rows has missing .* in columns \{'g': 1\}; drop"):
        mpi_fit(MLP([2, 4, 1], seed=0), path=path, features=MAG_FEATURES, label="label",
                epochs=1, standardize=True, progress=False)


def _clean_magnitudes(n, label="f8", extra=()):
    """n rows of magnitudes without a missing value, the label of dtype ``label``, and
    ``extra`` (name, dtype) fields left to fill."""
    rec = np.empty(n, dtype=[(c, "f8") for c in ("u", "g", "r")] + [("label", label),
                                                                       *extra])
    clean = _colour_overflow(n)
    for c in ("u", "g", "r", "label"):
        rec[c] = clean[c]
    rec["u"][[7, 9]], rec["g"][7] = 21.0, 20.0
    return rec


def _two_ranks_fail(path, *flags):
    """python -m fastmlp.distributed.mpi on 2 ranks, expected to fail: its stderr."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1",
               FASTMLP_BACKEND="numpy")
    cmd = [_mpirun(), "-n", str(P), sys.executable, "-m", "fastmlp.distributed.mpi",
           "--data", str(path), "--features", MAG_FEATURES, "--label", "label",
           "--layers", "2,4,1", "--epochs", "1", "--no-progress", *flags]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode != 0
    return r.stderr


def _label_missing(tmp_path):
    rec = _clean_magnitudes(300)
    rec["label"][250], rec["label"][251] = np.nan, -9999.0     # rank 1's rows of 2
    path = tmp_path / "label_missing.npy"
    np.save(path, rec)
    return path


@pytest.mark.parametrize("positive", [None, 1])
@pytest.mark.parametrize("missing", ["drop", "impute-median"])
def test_one_rank_a_missing_label_is_left_out_as_the_loader(tmp_path, missing, positive):
    from fastmlp.data import load_catalog
    from fastmlp.distributed.mpi import mpi_fit
    path = _label_missing(tmp_path)
    cat = load_catalog(path, features=MAG_FEATURES.split(","), label="label",
                       missing=missing, positive=positive)
    assert len(cat) == 298
    model = MLP([2, 4, 1], seed=0)
    hist = mpi_fit(model, path=path, features=MAG_FEATURES, label="label", epochs=1,
                   positive=positive, missing=missing, standardize=True, progress=False)
    _assert_same_rows(model, hist.distributed["rows"], cat)


def test_a_missing_label_under_error_is_refused_naming_the_rank_and_the_remedy(tmp_path):
    stderr = _two_ranks_fail(_label_missing(tmp_path), "--positive", "1")
    assert "(rank 1, rows 150..299): 2 of 150 rows have missing or invalid values" in stderr
    assert "in columns {'label': 2}; drop or clean those rows" in stderr


# --- a feature that reads the label column: refused as Dask's fit refuses it -------------

def _label_read(features, label):
    """Dask's words for ``features`` that read the label column ``label``."""
    import re
    return re.escape(f"features {features} read the label column {label!r}; the label must "
                     "not be among the inputs")


@pytest.mark.parametrize("missing", ["error", "impute-median"])
@pytest.mark.parametrize("features, reading", [("u-g,label", ["label"]),
                                               ("label-g,g-r", ["label-g"]),
                                               ("r-label,u-g", ["r-label"])])
def test_one_rank_a_feature_reading_the_label_field_is_refused_before_training(
        tmp_path, features, reading, missing):
    from fastmlp.distributed.mpi import mpi_fit
    path = tmp_path / "clean.npy"
    np.save(path, _clean_magnitudes(200, "i8"))
    model = MLP([2, 4, 1], seed=0)
    before = model.params.copy()
    with pytest.raises(ValueError, match=_label_read(reading, "label")):
        mpi_fit(model, path=path, features=features, label="label", missing=missing,
                epochs=1, batch_size=8, progress=False)
    np.testing.assert_array_equal(model.params, before)     # not trained
    assert model.features is None                           # nor given the features


@pytest.mark.parametrize("features, label, reading", [
    ("0,2", 2, ["2"]), ([0, 2], 2, ["2"]), ("0-2,1", 2, ["0-2"]), ("0,1", "1", ["1"])])
def test_one_rank_a_feature_index_equal_to_the_label_index_is_refused(tmp_path, features,
                                                                      label, reading):
    from fastmlp.distributed.mpi import mpi_fit
    path = tmp_path / "plain.npy"
    np.save(path, np.random.default_rng(0).normal(size=(64, 3)).round())
    model = MLP([2, 4, 1], seed=0)
    before = model.params.copy()
    with pytest.raises(ValueError, match=_label_read(reading, str(label))):
        mpi_fit(model, path=path, features=features, label=label, epochs=1, batch_size=8,
                progress=False)
    np.testing.assert_array_equal(model.params, before)


def test_read_slice_refuses_a_feature_reading_the_label(tmp_path):
    from fastmlp.distributed.mpi import read_slice
    path = tmp_path / "clean.npy"
    np.save(path, _clean_magnitudes(50, "i8"))
    with pytest.raises(ValueError, match=_label_read(["u-label"], "label")):
        read_slice(path, ["u-g", "u-label"], "label", 0, 1)


def test_a_feature_reading_the_label_is_refused_on_two_ranks_from_the_command_line(tmp_path):
    path = tmp_path / "clean.npy"
    np.save(path, _clean_magnitudes(200, "i8"))
    stderr = _two_ranks_fail(path, "--features", "u-g,label")
    assert "features ['label'] read the label column 'label'; the label must not be among " \
           "the inputs" in stderr, stderr


def test_a_bad_where_value_is_named_at_its_catalog_row_on_two_ranks(tmp_path):
    rec = _clean_magnitudes(200, "i8", [("flag", "U8")])
    rec["flag"] = "0"
    rec["flag"][150] = "bad"            # rank 1's rows 100..199: data row 151 of the file
    path = tmp_path / "badflag.npy"
    np.save(path, rec)
    stderr = _two_ranks_fail(path, "--where", "flag < 1")
    assert "first 'bad' in data row 151)" in stderr, stderr


def test_catalog_medians_hold_one_column_at_a_time(tmp_path, monkeypatch):
    """Five float32 magnitude columns: the medians (the loader's) are taken with about one
    column's valid values in float64 in memory, not all five."""
    import tracemalloc
    from fastmlp.data import load_catalog
    from fastmlp.distributed import mpi
    n = 100_000
    rng = np.random.default_rng(0)
    rec = np.empty(n, dtype=[(c, "f4") for c in "ugriz"] + [("label", "i1")])
    for c in "ugriz":
        rec[c] = rng.normal(20, 1, n)
    rec["label"] = rng.integers(0, 2, n)
    rec["u"][::1000] = np.nan
    path = tmp_path / "five.npy"
    np.save(path, rec)
    del rec
    monkeypatch.setattr(mpi, "MEDIAN_CHUNK_ROWS", 5000)
    tracemalloc.start()
    try:
        medians = mpi.catalog_medians(path, "colors:ugriz", None, np.float32)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    cat = load_catalog(path, features="colors:ugriz", label="label",
                       missing="impute-median")
    assert medians == cat.meta["impute_medians"]
    assert peak < 1.5 * n * 8, peak     # one column of float64 and a chunk's pieces
