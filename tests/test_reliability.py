"""Issue 12's upper-layer items, each with the test that would have caught it: the CLI
reports every failure as one ``fastmlp: error:`` line (never a raw traceback) and checks its
outputs before any work; clear errors for empty validation sets and for files that are not
models; NumPy scalars work where Python numbers do; a blown-up run is flagged; the checks
already on main (--out never overwrites an input, load validates before allocating,
zero-weight batches, non-finite outputs) stay."""

import json
import os
import stat
import tracemalloc
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import cli
from fastmlp.data import make_photometric_catalog
from fastmlp.training.loop import TrainingRunaway


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err, *needles):
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("fastmlp: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[-1], (n, err)
    return lines[-1]


@pytest.fixture(scope="module")
def data():
    X, y = make_photometric_catalog(800, seed=2)
    return np.asarray(X, np.float64), np.asarray(y)


@pytest.fixture
def model_file(tmp_path, data):
    m = fastmlp.MLP([4, 8, 1], seed=0)
    fastmlp.fit(m, *data, epochs=1, progress=False, standardize=True)
    return fastmlp.save(m, tmp_path / "m.npz")


@pytest.fixture
def catalog(tmp_path, data):
    X, y = data
    arr = np.zeros(len(y), dtype=[(c, "f8") for c in ("u-g", "g-r", "r-i", "i-z")]
                   + [("label", "i8")])
    for i, c in enumerate(("u-g", "g-r", "r-i", "i-z")):
        arr[c] = X[:, i]
    arr["label"] = y
    p = tmp_path / "cat.npy"
    np.save(p, arr)
    return p


# -- the CLI: one clear line, and outputs checked before the work ------------------------
def test_out_directory_missing_or_unwritable_is_refused_before_training(capsys, tmp_path,
                                                                         monkeypatch):
    (tmp_path / "d").mkdir()
    code, out, err = run(capsys, "train", "--n-samples", 400, "--epochs", 1,
                         "--out", tmp_path / "d")
    assert code == 2 and "epoch" not in out     # refused before any training
    one_line_error(err, "is a directory")
    code, out, err = run(capsys, "train", "--n-samples", 400, "--out", tmp_path / "no" / "m")
    assert code == 2 and "epoch" not in out
    one_line_error(err, "does not exist")
    code, out, err = run(capsys, "train", "--n-samples", 400, "--checkpoint", tmp_path / "d")
    one_line_error(err, "--checkpoint", "is a directory")
    # root ignores permissions, so the permission check is exercised through os.access
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path)
                        else real(p, mode))
    code, out, err = run(capsys, "train", "--n-samples", 400, "--out", tmp_path / "m.npz")
    assert code == 2 and "epoch" not in out
    one_line_error(err, "no permission to write")


def test_os_errors_and_unexpected_errors_are_one_line(capsys, monkeypatch):
    import fastmlp.cli.train as tr

    def raiser(exc):
        def f(*a, **k):
            raise exc
        return f
    for exc, needle, status in [
            (PermissionError(13, "Permission denied", "/x/m.npz"),
             "Permission denied: /x/m.npz", 2),
            (IsADirectoryError(21, "Is a directory", "/x"), "Is a directory: /x", 2),
            (RecursionError("maximum recursion depth exceeded"), "nested too deeply", 2),
            (TypeError("buffer is too small for requested array"),
             "unexpected TypeError: buffer is too small", 1)]:
        monkeypatch.setattr(tr, "fit", raiser(exc))
        code, out, err = run(capsys, "train", "--n-samples", 300, "--epochs", 1)
        assert code == status
        one_line_error(err, needle)
    monkeypatch.setenv("FASTMLP_DEBUG", "1")   # and the traceback on request
    with pytest.raises(TypeError):
        cli.main(["train", "--n-samples", "300", "--epochs", "1"])


def test_truncated_fits_catalog_is_one_line(capsys, tmp_path):
    pytest.importorskip("astropy")
    from astropy.table import Table
    rng = np.random.default_rng(0)
    Table({"u": rng.random(3000), "g": rng.random(3000),
           "label": rng.integers(0, 2, 3000)}).write(tmp_path / "c.fits")
    b = (tmp_path / "c.fits").read_bytes()
    (tmp_path / "t.fits").write_bytes(b[:len(b) // 2])
    code, out, err = run(capsys, "train", "--catalog", tmp_path / "t.fits",
                         "--features", "u,g", "--quiet")
    assert code in (1, 2)
    one_line_error(err)


def _doctored(model_file, tmp_path, name, edit):
    z = dict(np.load(model_file))
    z["metadata"] = np.array(edit(str(z["metadata"])))
    p = tmp_path / name
    np.savez(p, **z)
    return p


def test_model_argument_errors_name_the_problem_never_pickle(capsys, tmp_path, model_file,
                                                             catalog):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"a": [1.0, 2.0]}), tmp_path / "p.parquet")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    np.savez(tmp_path / "obj.npz", metadata=np.array([{"a": 1}], dtype=object))
    np.save(tmp_path / "arr.npy", np.zeros(3))
    (tmp_path / "empty.npz").write_bytes(b"")
    deep = _doctored(model_file, tmp_path, "deep.npz", lambda s: s.replace(
        '"training_config": null', '"training_config": ' + "[" * 100_000 + "]" * 100_000))
    cases = {"p.parquet": "looks like a Parquet file", "plain.npz": "without a 'metadata'",
             "obj.npz": "holds Python objects", "arr.npy": "looks like a .npy array",
             "empty.npz": "the file is empty", "deep.npz": "nested too deeply"}
    for name, needle in cases.items():
        code, out, err = run(capsys, "predict", "--model", tmp_path / name,
                             "--catalog", catalog, "--out", tmp_path / "o.csv")
        assert code == 2
        line = one_line_error(err, needle)
        assert "pickle" not in line, line
        with pytest.raises(ValueError, match=needle):
            fastmlp.load(tmp_path / name)


def test_cli_checkpoint_and_resume_reproduce_the_uninterrupted_run(capsys, tmp_path):
    common = ["train", "--n-samples", 1500, "--quiet", "--seed", 4, "--backend", "numpy"]
    code, _, err = run(capsys, *common, "--epochs", 5, "--out", tmp_path / "a.npz")
    assert code == 0, err
    ck = tmp_path / "run.ckpt"
    code, _, err = run(capsys, *common, "--epochs", 2, "--checkpoint", ck)
    assert code == 0, err
    assert json.loads(str(np.load(ck)["meta"]))["epochs_done"] == 2
    code, out, err = run(capsys, *common, "--epochs", 5, "--checkpoint", ck, "--resume",
                         "--checkpoint-steps", 2, "--out", tmp_path / "b.npz")
    assert code == 0, err
    # the report counts this run's epochs (it said "trained 5 epochs in" a run of 3)
    assert "trained 3 epochs after the 2 restored from the checkpoint (5 in all) in" in out
    a, b = fastmlp.load(tmp_path / "a.npz"), fastmlp.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(a.params, b.params)
    assert a.optimizer.step_count == b.optimizer.step_count
    code, out, err = run(capsys, *common, "--resume", tmp_path / "none.ckpt")
    one_line_error(err, "no checkpoint file")
    code, out, err = run(capsys, *common, "--checkpoint", ck, "--out", ck)
    one_line_error(err, "same file")
    code, out, err = run(capsys, *common, "--checkpoint-chunks", 2)
    assert code == 2 and "epoch" not in out
    one_line_error(err, "--checkpoint-chunks applies to --stream")
    code, out, err = run(capsys, "train", "--stream", "--checkpoint-steps", 2)
    one_line_error(err, "--checkpoint-steps applies to in-memory training")


def test_cli_stream_checkpoints_inside_epochs(capsys, tmp_path, catalog):
    common = ["train", "--catalog", catalog, "--stream", "--chunk-rows", 100, "--quiet",
              "--epochs", 2, "--seed", 1]
    code, _, err = run(capsys, *common, "--out", tmp_path / "a.npz")
    assert code == 0, err
    ck = tmp_path / "s.ckpt"
    code, _, err = run(capsys, *common, "--checkpoint", ck, "--checkpoint-chunks", 3,
                       "--out", tmp_path / "b.npz")
    assert code == 0, err
    np.testing.assert_array_equal(fastmlp.load(tmp_path / "a.npz").params,
                                  fastmlp.load(tmp_path / "b.npz").params)


# -- the library ---------------------------------------------------------------------------
def test_numpy_scalars_work_where_python_numbers_do(data):
    X, y = data
    ref = fastmlp.MLP([4, 8, 1], seed=1)
    fastmlp.fit(ref, X, y, epochs=2, batch_size=64, lr=0.01, class_weight={0: 1.0, 1: 2.0},
                n_threads=2, progress=False, validation=0.2)
    m = fastmlp.MLP(np.array([4, 8, 1]), seed=np.int64(1))
    fastmlp.fit(m, X, y, epochs=np.int64(2), batch_size=np.int32(64), lr=np.float32(0.01),
                class_weight={np.int64(0): np.float32(1), 1: np.float16(2)},
                n_threads=np.int64(2), progress=False, validation=np.float64(0.2))
    # lr=np.float32(0.01) is not the double 0.01: compare with the same float32 value
    ref32 = fastmlp.MLP([4, 8, 1], seed=1)
    fastmlp.fit(ref32, X, y, epochs=2, batch_size=64, lr=float(np.float32(0.01)),
                class_weight={0: 1.0, 1: 2.0}, n_threads=2, progress=False, validation=0.2)
    np.testing.assert_array_equal(m.params, ref32.params)
    for bad, match in [({0: np.bool_(True)}, r"class_weight\[0\]"),
                       ({0: np.float32("nan")}, r"class_weight\[0\]"),
                       ({0: -1}, r"class_weight\[0\]"), ({7: 1.0}, "class_weight key 7")]:
        with pytest.raises(ValueError, match=match):
            fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, class_weight=bad, progress=False)
    with pytest.raises(ValueError, match="n_threads"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, n_threads=np.int64(0), progress=False)


def test_empty_validation_sets_are_refused_by_name(data, catalog):
    X, y = data
    with pytest.raises(ValueError, match="X_val is empty"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, validation=(X[:0], y[:0]), progress=False)
    with pytest.raises(ValueError, match="X_val is empty"):
        fastmlp.fit_stream(fastmlp.MLP([4, 8, 1]), catalog, validation=(X[:0], y[:0]),
                           progress=False, features=["u-g", "g-r", "r-i", "i-z"])
    with pytest.raises(ValueError, match="validation split needs at least 2"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X[:1], y[:1], validation=0.5, progress=False)
    for bad in (1.0, -0.1, "0.2", True):   # 0: none, as the CLI and mpi_fit
        with pytest.raises(ValueError, match="validation must be"):
            fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, validation=bad, progress=False)


def test_blown_up_run_warns_raises_or_is_ignored_and_the_cli_exits_nonzero(data, capsys):
    X, y = data
    kw = dict(optimizer="sgd", lr=50.0, epochs=5, progress=False, standardize=True, seed=0)
    with pytest.warns(TrainingRunaway, match="training blew up"):
        h = fastmlp.fit(fastmlp.MLP([4, 64, 64, 1], seed=0), X, y, **kw)
    assert h.runaway
    with pytest.raises(fastmlp.TrainingDiverged, match="training blew up"):
        fastmlp.fit(fastmlp.MLP([4, 64, 64, 1], seed=0), X, y, on_divergence="raise", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastmlp.fit(fastmlp.MLP([4, 64, 64, 1], seed=0), X, y, on_divergence="ignore", **kw)
        ok = fastmlp.fit(fastmlp.MLP([4, 8, 1], seed=0), X, y, epochs=3, progress=False)
    assert not ok.runaway
    code, out, err = run(capsys, "train", "--n-samples", 800, "--optimizer", "sgd", "--lr",
                         50, "--hidden", "64,64", "--epochs", 5, "--batch-size", 128,
                         "--quiet")
    assert code != 0 and "blew up" in out + err


def test_a_near_perfect_classifier_whose_tiny_loss_rises_is_not_called_blown_up():
    """A model that separates its data gets Adam-jitter from ~1e-12 to ~1e-4 when trained
    further: a huge rise of a loss that still means ~100 % right answers.  A regression loss
    has no known scale, so the same numbers still count there."""
    from fastmlp.training.loop import History, runaway_text
    for name in ("bce", "cross_entropy"):
        assert runaway_text(History(loss=[1e-12, 3e-4], loss_name=name)) is None
        # above the floor the rule applies as before
        assert "went from" in runaway_text(History(loss=[1e-3, 0.5], loss_name=name))
    assert "went from" in runaway_text(History(loss=[1e-12, 3e-4], loss_name="mse"))
    # the numbers of a 5-32-32-1 run continued on separable data (the bench's trainer)
    assert runaway_text(History(loss=[8.87e-13, 2e-5, 3.285e-4], loss_name="bce")) is None


def test_zero_weight_batch_says_so(data):
    X, y = data
    sw = np.ones(len(y))
    sw[5] = 0.0
    with pytest.raises(ValueError, match="total sample weight of 0"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, sample_weight=sw, batch_size=1,
                    validation=None, progress=False)
    with pytest.raises(ValueError, match="sample weights are zero"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, y, class_weight={0: 0, 1: 0}, progress=False)


def test_non_finite_outputs_get_no_label(data):
    m = fastmlp.MLP([4, 8, 1], seed=0)
    fastmlp.fit(m, *data, epochs=1, progress=False, standardize=True)
    X = np.array([[3e38] * 4, [0.1, 0.2, 0.3, 0.4]])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proba, pred = m.predict_proba(X), m.predict(X)
    assert np.isnan(proba[0]).all() and pred[0] == -1
    assert np.isfinite(proba[1]).all() and pred[1] in (0, 1)


def test_out_never_overwrites_an_input_even_through_a_symlink(capsys, tmp_path, catalog,
                                                             model_file):
    link = tmp_path / "link.npy"
    link.symlink_to(catalog)
    before = catalog.read_bytes()
    for argv in (["train", "--catalog", catalog, "--out", link],
                 ["predict", "--model", model_file, "--catalog", catalog, "--out", link],
                 ["predict", "--model", model_file, "--catalog", catalog, "--out",
                  model_file]):
        code, out, err = run(capsys, *argv)
        assert code == 2
        one_line_error(err, "same file as the input")
    assert catalog.read_bytes() == before


def test_out_never_overwrites_an_input_through_a_hard_link(capsys, tmp_path, catalog,
                                                           model_file):
    # another name of the same file (a hard link here; a bind mount alike): resolving
    # symlinks does not see it, comparing the files does
    alias = tmp_path / "alias.npy"
    os.link(catalog, alias)
    code, out, err = run(capsys, "predict", "--model", model_file, "--catalog", catalog,
                         "--out", alias)
    assert code == 2
    one_line_error(err, f"--out {alias} is the same file as the input {catalog}")
    assert os.path.samefile(alias, catalog)


def test_out_to_a_fifo_or_a_link_to_one_is_one_line_and_writes_nothing(capsys, tmp_path,
                                                                       catalog, model_file):
    # a FIFO stands for a device such as /dev/null, which a rename as root replaced with a
    # regular file: an output that is not a regular file is refused before any work
    fifo = tmp_path / "out.npy"
    os.mkfifo(fifo)
    os.symlink("out.npy", tmp_path / "link.png")
    before = sorted(os.listdir(tmp_path))
    for argv, needle in [
            (["predict", "--model", model_file, "--catalog", catalog, "--out", fifo],
             f"--out '{fifo}' is a FIFO, not a regular file: fastmlp writes files atomically"),
            (["train", "--n-samples", 300, "--epochs", 1, "--out", fifo],
             f"--out '{fifo}' is a FIFO, not a regular file"),
            (["train", "--n-samples", 300, "--epochs", 1, "--plot", tmp_path / "link.png"],
             "--plot '" + str(tmp_path / "link.png") + "' (a symlink to '" + str(fifo)
             + "') is a FIFO"),
            (["sweep", "--n-samples", 300, "--iterations", 2, "--plot", tmp_path / "link.png"],
             "--plot '" + str(tmp_path / "link.png") + "' (a symlink to"),
            (["cv", "--n-samples", 300, "--k", 2, "--epochs", 1, "--plot", fifo],
             f"--plot '{fifo}' is a FIFO")]:
        code, out, err = run(capsys, *argv)
        # refused before the work: no epoch trained, no learning rate tried, no fold
        assert code == 2 and "epoch" not in out and "best lr" not in out \
            and "mean +- std" not in out, (argv, out)
        one_line_error(err, needle)
    assert sorted(os.listdir(tmp_path)) == before          # no temporary file, no output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_load_refuses_a_huge_declared_model_before_allocating(tmp_path, model_file):
    def huge(s):
        meta = json.loads(s)
        meta["architecture"]["layer_sizes"] = [4, 12000, 12000, 1]
        meta["architecture"]["n_params"] = 4 * 12000 + 12000 + 12000 * 12000 + 12000 + 12001
        return json.dumps(meta)
    p = _doctored(model_file, tmp_path, "huge.npz", huge)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="params has shape"):
            fastmlp.load(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, peak      # a 4x12000x12000x1 model would need ~580 MB


def test_npz_and_truncated_fits_catalogs_get_clear_errors(tmp_path):
    pytest.importorskip("astropy")
    from astropy.io import fits
    np.savez(tmp_path / "c.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=r"an \.npz archive is not a catalog format"):
        fastmlp.load_catalog(tmp_path / "c.npz")
    cols = [fits.Column(name="u", array=np.arange(1000.0), format="D"),
            fits.Column(name="label", array=np.arange(1000) % 2, format="K")]
    fits.BinTableHDU.from_columns(cols).writeto(tmp_path / "t.fits")
    data = (tmp_path / "t.fits").read_bytes()
    (tmp_path / "cut.fits").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt FITS"):
        fastmlp.load_catalog(tmp_path / "cut.fits", features=["u"], label="label")
