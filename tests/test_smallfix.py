"""Three small fixes: the --label evaluation line of a regression says overflowed rows
apart from rows with missing features; fit_stream reads a fill= stream with the model's
dtype for the fill rule; the MPI command line gives warnings.showwarning back."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main

BANDS = ["u", "g", "r"]
N = 120


def _overflowing_regressor(path):
    """A float32 regressor whose output bias sits at the edge of float32's range: a row
    that pushes the output up overflows (inf), one that pushes it down stays finite."""
    model = fastmlp.MLP([3, 8, 1], features=",".join(BANDS), loss="mse", seed=3,
                        backend="numpy")
    model.weights[-1][...] *= np.float32(1e33)
    model.biases[-1][...] = np.finfo(np.float32).max
    fastmlp.save(model, path)
    model = fastmlp.load(path)
    model.backend = "numpy"
    return model


def _labelled_catalog(path):
    rng = np.random.default_rng(0)
    cat = np.zeros(N, dtype=[("id", "i8")] + [(b, "f8") for b in BANDS] + [("z", "f8")])
    cat["id"] = np.arange(N)
    for b in BANDS:
        cat[b] = rng.normal(0, 2, N)
    cat["z"] = rng.uniform(0.1, 2.0, N)
    cat["g"][[10, 11]] = np.nan         # two rows with a missing feature
    np.save(path, cat)
    return cat


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_label_line_says_overflow_apart_from_missing_features(tmp_path, capsys):
    model = _overflowing_regressor(tmp_path / "pz.npz")
    cat = _labelled_catalog(tmp_path / "cat.npy")
    with np.errstate(over="ignore", invalid="ignore"):
        want = model.predict(cat)
    n_overflowed = int(np.count_nonzero(~np.isfinite(want))) - 2
    assert n_overflowed >= 10
    assert main(["predict", "--model", str(tmp_path / "pz.npz"), "--catalog",
                 str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"),
                 "--label", "z", "--backend", "numpy", "--chunk-rows", "50"]) == 0
    text = capsys.readouterr()
    lines = [ln for ln in (text.out + text.err).splitlines()
             if "evaluation against --label z" in ln]
    assert len(lines) == 1, text
    line = lines[0]
    assert "missing features, or an output beyond the float range" not in line
    assert f"{n_overflowed} overflowed the float range" in line
    assert "2 with missing features (no prediction)" in line
    assert f"{N - n_overflowed - 2} of {N} rows" in line


# -- fit_stream: a fill= stream's missing values are read with the model's dtype ---------
def _catalog_with_huge_values(path):
    """A labelled catalog whose column g holds 1e39 on some rows: beyond float32's range,
    so missing to a float32 model's fill, while a float64 value can hold it."""
    rng = np.random.default_rng(1)
    cat = np.zeros(N, dtype=[(b, "f8") for b in BANDS] + [("cls", "i8")])
    for b in BANDS:
        cat[b] = rng.normal(0, 1, N)
    cat["cls"] = (cat["u"] > 0).astype(np.int64)
    cat["g"][::10] = 1e39
    np.save(path, cat)
    return cat


@pytest.mark.parametrize("scanned", [False, True])
def test_fit_stream_reads_the_fill_with_the_models_dtype(tmp_path, scanned):
    from fastmlp.data import CatalogStream
    cat = _catalog_with_huge_values(tmp_path / "c.npy")
    stream = CatalogStream(tmp_path / "c.npy", features="u,g,r", label="cls",
                           dtype="float64", fill={"g": 0.5}, chunk_rows=50)
    assert stream.fill_dtype == np.float64
    if scanned:                 # scanned reading 1e39 as a number: scanned again to train
        stream.scan()
    model = fastmlp.MLP([3, 4, 2], seed=0, backend="numpy")
    assert model.dtype == np.float32
    hist = fastmlp.fit_stream(model, stream, epochs=1, progress=False, backend="numpy")
    assert np.isfinite(hist.loss).all()
    # the standardisation is the one of the rows the float32 model's fill imputes, as the
    # stored fill (model.features.fill) imputes them at prediction
    g = np.where(cat["g"] > 1e38, 0.5, cat["g"])
    mean = np.asarray(model.standardization[0], np.float64)
    np.testing.assert_allclose(mean[1], g.mean(), rtol=1e-5, atol=1e-6)
    assert dict(model.features.fill) == {"g": 0.5}
    # the stream's own fill_dtype is back
    assert stream.fill_dtype == np.float64


def test_closing_a_prefetch_never_waits_for_ever_on_a_stuck_reader(monkeypatch):
    """A prefetch whose reading thread is stuck (here: a read that never returns) is closed
    within PREFETCH_STOP_SECONDS; the closing waited for the thread without a bound."""
    import threading
    from fastmlp.data import stream as stream_mod
    monkeypatch.setattr(stream_mod, "PREFETCH_STOP_SECONDS", 0.3, raising=False)
    release = threading.Event()

    def reads():
        yield 1
        release.wait()          # a read that does not return while the test runs
        yield 2

    gen = stream_mod.prefetch(reads(), depth=1)
    assert next(gen) == 1
    closer = threading.Thread(target=gen.close, daemon=True)
    closer.start()
    closer.join(10)
    stuck = closer.is_alive()
    release.set()               # let both threads end whatever happened
    assert not stuck, "closing the prefetch waited for its stuck reader"


@pytest.mark.skipif(not hasattr(__import__("signal"), "pthread_sigmask"),
                    reason="no pthread_sigmask on this platform")
def test_prefetch_and_writer_threads_leave_sigterm_to_the_main_thread():
    """fastmlp's reader and writer threads block SIGINT and SIGTERM, so that the kernel
    delivers them to the main thread, whose handler stops the command."""
    import signal
    from fastmlp.data import stream as stream_mod
    masks = []

    def reads():
        masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        yield 1

    assert list(stream_mod.prefetch(reads())) == [1]
    writer = stream_mod.BackgroundWriter(
        lambda item: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    writer.put(0)
    writer.close()
    assert len(masks) == 2
    assert all({signal.SIGINT, signal.SIGTERM} <= m for m in masks), masks
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
