"""What a CatalogStream's scan was taken with, and whose stream it lands on.

predict_stream(labels=True) scanned an unscanned stream through its private copy: the label
mapping was thrown away with the copy (chunk.y indexed class names the caller never saw).
fit_stream scanned a stream with the model's fill_dtype, put the stream's own fill_dtype
back and kept the scan: a later float32 model trained on a standardisation that read 1e39
as a number.  And fit_stream set the model's fill_dtype on the caller's stream while it
trained, so a callback reading the stream saw the model's settings.
"""

import numpy as np
import pytest

import fastmlp
from fastmlp.data import CatalogStream, predict_stream
from fastmlp.features import FeatureSpec

BANDS = "ugriz"
N = 400


def _catalog(path, huge_every=20):
    """A labelled CSV (class names QSO / STAR) whose u is 1e39 every ``huge_every`` rows:
    missing to a float32 model's fill, a number in float64."""
    rng = np.random.default_rng(0)
    r = rng.uniform(15, 21, N)
    g = r + rng.normal(0.4, 0.3, N)
    u = g + rng.normal(1.0, 0.6, N)
    lab = np.where(u - g > 1.2, "QSO", "STAR")
    u[::huge_every] = 1e39
    with open(path, "w") as f:
        f.write("u,g,r,i,z,class\n")
        for k in range(N):
            row = (u[k], g[k], r[k], r[k] - 0.15, r[k] - 0.2)
            f.write(",".join(repr(float(v)) for v in row) + f",{lab[k]}\n")
    return u, g, lab


def _stream(path, fill_dtype=None, **kw):
    return CatalogStream(path, features="colors:ugriz", label="class", chunk_rows=100,
                         dtype="float64", fill={"u": 19.0}, fill_dtype=fill_dtype, **kw)


def _u_minus_g_with_u_filled(u, g):
    """The u-g column a float32 model's fill reads: 1e39 replaced by 19."""
    return np.where(u > 1e38, 19.0, u) - g


# -- predict_stream(labels=True) -----------------------------------------------------------
def test_predict_stream_labels_leaves_the_callers_stream_with_its_mapping(tmp_path, monkeypatch):
    u, g, lab = _catalog(tmp_path / "c.csv")
    model = fastmlp.MLP([4, 6, 2], loss="cross_entropy", seed=1,
                        features=FeatureSpec("colors:ugriz", fill={"u": 19.0}))
    stream = _stream(tmp_path / "c.csv", fill_dtype="float32")
    assert stream.class_names is None
    ys = np.concatenate([ch.y for ch, _ in
                         predict_stream(model, stream, progress=False, labels=True)])
    # the caller can tell which class each chunk.y number means
    assert stream.class_names == ("QSO", "STAR")
    names = np.asarray(stream.class_names)
    np.testing.assert_array_equal(names[ys], lab)
    # and a second call reads with that mapping, not another scan
    scans, original = [], CatalogStream.scan
    monkeypatch.setattr(CatalogStream, "scan",
                        lambda self, *a, **k: (scans.append(self), original(self, *a, **k))[1])
    again = np.concatenate([ch.y for ch, _ in
                            predict_stream(model, stream, progress=False, labels=True)])
    assert scans == []
    np.testing.assert_array_equal(again, ys)


# -- fit_stream: a scan records what it was read with ----------------------------------------
def test_fit_stream_rescans_a_stream_scanned_with_another_fill_dtype(tmp_path):
    u, g, _ = _catalog(tmp_path / "c.csv")
    stream = _stream(tmp_path / "c.csv", fill_dtype="float32")   # as `fastmlp predict` opens
    fastmlp.fit_stream(fastmlp.MLP([4, 8, 1], dtype="float64", seed=0), stream, epochs=1,
                       progress=False)
    assert stream.fill_dtype == np.float32
    model = fastmlp.MLP([4, 8, 1], dtype="float32", seed=0)
    hist = fastmlp.fit_stream(model, stream, epochs=1, progress=False)
    mean = np.asarray(model.standardization[0], np.float64)
    assert abs(mean[0]) < 10                # not 5e37: 1e39 was imputed, not averaged
    np.testing.assert_allclose(mean[0], _u_minus_g_with_u_filled(u, g).mean(), rtol=1e-5)
    # the float32 model's scan, on the copy it trained on: the float64 stream does not read
    # as the model does (a feature beyond float32 is missing to the model, a number to it)
    assert hist.stream.scanned_as_read and not stream.scanned_as_read


def test_a_scan_taken_with_other_settings_is_not_taken_as_read(tmp_path):
    _catalog(tmp_path / "c.csv")
    stream = _stream(tmp_path / "c.csv").scan()
    assert stream.scanned_as_read
    stream.fill_dtype = np.dtype("float32")
    assert not stream.scanned_as_read
    stream.fill_dtype = np.dtype("float64")
    assert stream.scanned_as_read
    stream.fill = {"u": 20.0}
    assert not stream.scanned_as_read
    # without fill, fill_dtype reads nothing: a scan holds whatever it is
    plain = CatalogStream(tmp_path / "c.csv", features="colors:ugriz", label="class",
                          dtype="float64").scan()
    plain.fill_dtype = np.dtype("float32")
    assert plain.scanned_as_read


# -- fit_stream leaves the caller's stream as opened while it trains ----------------------
def _first_u_minus_g(stream):
    ch = next(stream.chunks(order=[0], dropna=False, labels=False))
    return float(ch.X[0, 0]), dict(ch.imputed)


def test_fit_stream_does_not_change_the_callers_stream_while_training(tmp_path):
    u, g, _ = _catalog(tmp_path / "c.csv")
    stream = _stream(tmp_path / "c.csv")            # fill_dtype float64: 1e39 a number
    before = _first_u_minus_g(stream)
    assert before[0] > 1e38 and before[1] == {}
    seen = []
    model = fastmlp.MLP([4, 8, 1], dtype="float32", seed=0)
    hist = fastmlp.fit_stream(model, stream, epochs=2, progress=False,
                              callbacks=[lambda epoch, h, m: seen.append(
                                  (stream.fill_dtype, _first_u_minus_g(stream)))])
    assert [s[0] for s in seen] == [np.float64, np.float64]
    assert [s[1] for s in seen] == [before, before]
    assert _first_u_minus_g(stream) == before
    # the model trained on the float32 reading all the same (1e39 imputed)
    mean = np.asarray(model.standardization[0], np.float64)
    np.testing.assert_allclose(mean[0], _u_minus_g_with_u_filled(u, g).mean(), rtol=1e-5)
    assert hist.stream is not stream and hist.stream.fill_dtype == np.float32
    # the caller's stream reads otherwise than the model: its own scan was not taken
    assert not stream.scanned_as_read


def test_fit_stream_leaves_a_stream_that_reads_as_the_model_scanned(tmp_path):
    """The caller's stream keeps what fit_stream found when it reads as the model does
    (class names, counts): as before, for e.g. predict_stream(labels=True) afterwards."""
    _catalog(tmp_path / "c.csv")
    # a float64 stream and model (a float32 model reads a value beyond float32 as missing
    # in every column, which a float64 stream does not: that stream is left as it was)
    stream = _stream(tmp_path / "c.csv")
    model = fastmlp.MLP([4, 8, 2], loss="cross_entropy", dtype="float64", seed=0)
    hist = fastmlp.fit_stream(model, stream, epochs=1, progress=False)
    assert stream.scanned_as_read and stream.class_names == ("QSO", "STAR")
    assert stream.fill_dtype == np.float64 and stream.fill == {"u": 19.0}
    assert hist.stream.n_valid == stream.n_valid == N


@pytest.mark.parametrize("missing", ["drop", "error"])
def test_predict_stream_labels_map_the_classes_the_model_reads(tmp_path, missing):
    """Class C appears only in rows whose u the model's fill imputes: the label mapping is
    found reading as the model reads, so those rows are labelled (the caller's own reading
    drops them, or refuses them under missing='error')."""
    rng = np.random.default_rng(0)
    rows = ["u,g,r,cls"]
    for i in range(30):
        u = "nan" if i % 3 == 2 else f"{rng.normal(20):.3f}"
        rows.append(f"{u},{rng.normal(19):.3f},{rng.normal(18):.3f},{'ABC'[i % 3]}")
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    model = fastmlp.MLP([3, 4, 3], seed=0, class_names=["A", "B", "C"],
                        features=FeatureSpec(["u", "g", "r"], fill={"u": 20.0}))
    stream = CatalogStream(tmp_path / "c.csv", features=["u", "g", "r"], label="cls",
                           missing=missing)
    chunks = [ch for ch, _ in predict_stream(model, stream, labels=True, progress=False)]
    y = np.concatenate([ch.y for ch in chunks])
    assert stream.class_names == ("A", "B", "C")
    np.testing.assert_array_equal(y, np.arange(30) % 3)
    assert np.concatenate([ch.labelled for ch in chunks]).all()
