"""Out-of-core catalogs: chunked reading of every format, fit_stream, bounded memory."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastmlp import MLP, TrainingDiverged
from fastmlp.data import load_catalog, make_photometric_catalog
from fastmlp import fit_stream
from fastmlp.data.stream import CatalogStream, iter_chunks, predict_stream

N = 2000
CHUNK = 300


@pytest.fixture(scope="module")
def table():
    cat = make_photometric_catalog(N, seed=4)
    mags = np.column_stack([cat.extra[b] for b in "ugriz"]).astype(np.float64)
    mags[[5, 777], [1, 3]] = -9999.0                  # two rows with SDSS's missing value
    cls = np.array(["STAR", "QSO"])[cat.y]
    return mags, cls


def write_all(tmp, mags, cls, formats=("npy", "csv", "parquet", "fits")):
    paths = {}
    n = mags.shape[0]
    if "npy" in formats:
        rec = np.zeros(n, dtype=[(b, "f8") for b in "ugriz"] + [("class", "U4"),
                                                              ("objid", "i8")])
        for k, b in enumerate("ugriz"):
            rec[b] = mags[:, k]
        rec["class"], rec["objid"] = cls, np.arange(n) + 1000
        paths["npy"] = tmp / "c.npy"
        np.save(paths["npy"], rec)
    if "csv" in formats:
        paths["csv"] = tmp / "c.csv"
        with open(paths["csv"], "w") as f:
            f.write("# an SDSS-like catalog\nu,g,r,i,z,class,objid\n")
            for k in range(n):
                f.write(",".join(repr(float(v)) for v in mags[k]) + f",{cls[k]},{k + 1000}\n")
    if "parquet" in formats:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        t = pa.table({**{b: mags[:, k] for k, b in enumerate("ugriz")}, "class": cls,
                      "objid": np.arange(n) + 1000})
        paths["parquet"] = tmp / "c.parquet"
        pq.write_table(t, paths["parquet"], row_group_size=CHUNK)
    if "fits" in formats:
        fits = pytest.importorskip("astropy.io.fits")
        cols = [fits.Column(name=b, format="D", array=mags[:, k]) for k, b in enumerate("ugriz")]
        cols += [fits.Column(name="class", format="4A", array=cls),
                 fits.Column(name="objid", format="K", array=np.arange(n) + 1000)]
        paths["fits"] = tmp / "c.fits"
        fits.BinTableHDU.from_columns(cols).writeto(paths["fits"])
    return paths


# the table has two rows with -9999: fit_stream on a path refuses them unless told to drop
KW = dict(features="colors:ugriz", label="class", chunk_rows=CHUNK, dtype="float64",
          missing="drop")


@pytest.mark.parametrize("fmt", ["npy", "csv", "parquet", "fits"])
def test_chunks_reassemble_the_catalog(tmp_path, table, fmt):
    mags, cls = table
    p = write_all(tmp_path, mags, cls, (fmt,))[fmt]
    ref = load_catalog(p, features="colors:ugriz", label="class", drop_invalid=True,
                       dtype="float64", extra="objid")
    chunks = list(iter_chunks(p, extra="objid", **KW))
    assert all(len(c.X) <= CHUNK for c in chunks) and len(chunks) == -(-N // CHUNK)
    np.testing.assert_array_equal(np.concatenate([c.X for c in chunks]), ref.X)
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks]), ref.y)
    ids = np.concatenate([c.extra["objid"] for c in chunks]).astype(np.int64)
    np.testing.assert_array_equal(ids, ref.extra["objid"].astype(np.int64))
    s = CatalogStream(p, **KW).scan()
    assert (s.n_rows, s.n_valid, s.n_dropped) == (N, N - 2, 2)
    assert s.class_names == ("QSO", "STAR") and s.positive == 0
    assert s.class_counts == {"QSO": int((ref.y == 0).sum()), "STAR": int((ref.y == 1).sum())}
    np.testing.assert_allclose(s.standardizer.mean, ref.X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.standardizer.std, ref.X.std(0), rtol=1e-10)
    # any chunk order (CSV seeks to the offsets the scan recorded)
    order = [3, 0, 6, 1]
    again = list(s.chunks(order))
    for c, k in zip(again, order):
        np.testing.assert_array_equal(c.X, chunks[k].X)
    # without dropping, every row is there with its valid flag
    raw = list(s.chunks(labels=False, dropna=False))
    valid = np.concatenate([c.valid for c in raw])
    assert valid.size == N and np.flatnonzero(~valid).tolist() == [5, 777]


@pytest.mark.parametrize("fmt", ["npy", "csv", "parquet", "fits"])
def test_text_width_holds_every_value(tmp_path, fmt):
    """What a fixed-width output of a text column needs: FITS and .npy declare it (10
    characters here, whatever the values), Parquet and CSV are read for their longest value
    (UTF-8 bytes: "é" is 2), not just the first chunk's."""
    n = 3 * CHUNK
    longest = "b" * 6 if fmt == "fits" else "bé" * 3             # FITS text is ASCII
    names = np.asarray(["a"] * (n - 1) + [longest])               # the longest comes last
    mags = np.random.default_rng(0).normal(20, 1, (n, 5))
    p = tmp_path / f"t.{fmt}"
    if fmt == "npy":
        rec = np.zeros(n, [(b, "f8") for b in "ugriz"] + [("name", "U10")])
        for k, b in enumerate("ugriz"):
            rec[b] = mags[:, k]
        rec["name"] = names
        np.save(p, rec)
    elif fmt == "fits":
        fits = pytest.importorskip("astropy.io.fits")
        cols = [fits.Column(name=b, format="D", array=mags[:, k]) for k, b in enumerate("ugriz")]
        fits.BinTableHDU.from_columns(cols + [fits.Column(name="name", format="10A",
                                                          array=names)]).writeto(p)
    else:
        pa = pytest.importorskip("pyarrow")
        t = pa.table({**{b: mags[:, k] for k, b in enumerate("ugriz")}, "name": names})
        pytest.importorskip("pyarrow.csv").write_csv(t, p) if fmt == "csv" else \
            pytest.importorskip("pyarrow.parquet").write_table(t, p)
    s = CatalogStream(p, features="colors:ugriz", label=False, chunk_rows=CHUNK, extra=["name"])
    assert s.text_width("name") == {"npy": 40, "fits": 10}.get(fmt, 9)


def test_text_with_nulls_is_read_without_pandas(tmp_path):
    """pyarrow imports pandas (half a second) for a Python literal in a compute call: the
    0 that filled a null text value's dictionary index did, for every catalog whose text
    column (an id, a label) holds a null."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({**{b: np.full(4, 20.0) for b in "ugriz"},
                             "name": pa.array(["a", None, "b", None], pa.string())}), p)
    code = textwrap.dedent(f"""
        import sys
        from fastmlp.data.stream import CatalogStream
        s = CatalogStream({str(p)!r}, features="colors:ugriz", label=False, extra=["name"])
        ch = next(s.chunks(labels=False))
        assert ch.extra["name"].tolist() == ["a", None, "b", None], ch.extra["name"]
        assert "pandas" not in sys.modules, "pandas imported"
        """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_fit_stream_same_result_from_every_format(tmp_path, table):
    mags, cls = table
    paths = write_all(tmp_path, mags, cls)
    params = {}
    for fmt, p in paths.items():
        m = MLP([4, 8, 1], seed=1, dtype="float64", backend="numpy")
        h = fit_stream(m, p, epochs=2, batch_size=64, lr=3e-3, seed=5, progress=False, **KW)
        params[fmt] = m.params.copy()
        assert h.epochs == 2 and len(h.batch_loss) == 2 * sum(
            -(-len(c.X) // 64) for c in iter_chunks(p, **KW))
    for fmt in ("csv", "parquet", "fits"):
        np.testing.assert_array_equal(params[fmt], params["npy"], err_msg=fmt)


def test_fit_stream_rate_includes_the_reading(tmp_path, table, monkeypatch):
    """samples/s of a streamed epoch is over the time the epoch took, reading included (it
    was the kernels' time only: a catalog read at a tenth of the training speed showed the
    training's rate).  A clock that jumps 100 s whenever a chunk is read stands for slow
    reading."""
    fit_module = sys.modules["fastmlp.training.fit"]     # the module, not the function
    mags, cls = table
    p = write_all(tmp_path, mags, cls, ("npy",))["npy"]
    clock = [0.0]
    monkeypatch.setattr(fit_module, "time", type("Clock", (), {
        "perf_counter": staticmethod(lambda: clock[0])}), raising=False)
    read = CatalogStream.chunks

    def slow_chunks(self, *a, **k):
        for ch in read(self, *a, **k):
            clock[0] += 100.0
            yield ch

    monkeypatch.setattr(CatalogStream, "chunks", slow_chunks)
    h = fit_stream(MLP([4, 8, 1], seed=0, backend="numpy"), p, epochs=2, batch_size=64,
                   progress=False, **KW)
    n_chunks = -(-N // CHUNK)
    assert h.epoch_time == [100.0 * n_chunks] * 2
    assert h.samples_per_s == [(N - 2) / (100.0 * n_chunks)] * 2


def test_fit_stream_learns_and_carries_standardisation(tmp_path, table, capsys):
    mags, cls = table
    p = write_all(tmp_path, mags, cls, ("npy",))["npy"]
    m = MLP([4, 16, 1], seed=0, backend="numpy")
    ref = load_catalog(p, features="colors:ugriz", label="class", drop_invalid=True)
    h = fit_stream(m, p, epochs=4, batch_size=32, lr=1e-2, seed=0,
                   validation=(ref.X[:500], ref.y[:500]), class_weight="balanced", **KW)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and "epoch 4/4" in err[3] and "samples/s" in err[3]
    assert h.loss[-1] < h.loss[0] and len(h.val_loss) == 4
    # the model standardises its raw inputs itself, with the statistics of the scan
    np.testing.assert_allclose(m.standardization[0], ref.X.mean(0), rtol=1e-5)
    acc = (m.predict(ref.X) == ref.y).mean()
    assert acc > 0.9
    assert m.feature_names == ("u-g", "g-r", "r-i", "i-z") and m.class_names == ("QSO", "STAR")
    # determinism: same seed, same parameters
    m2 = MLP([4, 16, 1], seed=0, backend="numpy")
    fit_stream(m2, p, epochs=4, batch_size=32, lr=1e-2, seed=0, progress=False,
               validation=(ref.X[:500], ref.y[:500]), class_weight="balanced", **KW)
    np.testing.assert_array_equal(m.params, m2.params)
    # predict_stream: every row, NaN where the features are missing
    s = CatalogStream(p, features="colors:ugriz", label=False, chunk_rows=CHUNK)
    out = np.concatenate([o for _, o in predict_stream(m, s, progress=False)])
    assert out.shape == (N, 2) and np.isnan(out[[5, 777]]).all()
    keep = np.setdiff1d(np.arange(N), [5, 777])
    np.testing.assert_allclose(out[keep], m.predict_proba(ref.X), rtol=1e-5)


def test_fit_stream_divergence_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 3)) * 100
    a[:, 2] = a[:, 0] * 3.5
    np.save(tmp_path / "r.npy", a)
    m = MLP([2, 1], dtype="float64", backend="numpy")
    with pytest.raises(TrainingDiverged, match="training diverged"):
        fit_stream(m, tmp_path / "r.npy", features="0,1", label="2", loss="mse",
                   optimizer="sgd", lr=1e6, standardize=False, chunk_rows=100, progress=False,
                   epochs=30)
    assert np.isfinite(m.params).all()
    with pytest.raises(ValueError, match="chunk_rows must be a positive integer"):
        CatalogStream(tmp_path / "r.npy", features="0,1", label="2", chunk_rows=0)
    with pytest.raises(ValueError, match="missing must be 'drop' or 'error'"):
        CatalogStream(tmp_path / "r.npy", features="0,1", label="2", missing="impute-median")
    with pytest.raises(ValueError, match="2 features .* 3 inputs"):
        fit_stream(MLP([3, 1]), tmp_path / "r.npy", features="0,1", label="2")
    with pytest.raises(FileNotFoundError):
        CatalogStream(tmp_path / "nope.npy")


MEMORY_CHILD = textwrap.dedent("""
    import sys
    import numpy as np

    def hwm_kib():  # this process's peak resident memory (reset by exec, unlike ru_maxrss)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    mode, path = sys.argv[1], sys.argv[2]
    from fastmlp import MLP
    from fastmlp import fit_stream
    from fastmlp.data import load_catalog
    base = hwm_kib()
    if mode == "stream":
        fit_stream(MLP([4, 8, 1], seed=0), path, features="0,1,2,3", label="4",
                   chunk_rows=20000, epochs=1, batch_size=2048, progress=False,
                   backend="numpy")
    else:
        load_catalog(path, features="0,1,2,3", label="4")
    print(hwm_kib() - base)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_memory_stays_flat_while_rows_grow_tenfold(tmp_path):
    """Peak RSS above the import baseline, in fresh processes, for N and 10N rows of a
    .npy file: streaming stays flat; loading the whole file (the control) grows ~10x."""
    child = tmp_path / "child.py"
    child.write_text(MEMORY_CHILD)
    rng = np.random.default_rng(0)
    growth = {}
    for n in (100_000, 1_000_000):
        a = rng.normal(size=(n, 5)).astype(np.float32)
        a[:, 4] = a[:, 0] + a[:, 1] > 0
        p = tmp_path / f"d{n}.npy"
        np.save(p, a)
        for mode in ("stream", "load"):
            r = subprocess.run([sys.executable, str(child), mode, str(p)],
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            growth[mode, n] = int(r.stdout.split()[-1]) / 1024.0   # MiB
        p.unlink()
    data_mib = 1_000_000 * 5 * 4 / 2**20                          # 19 MiB of float32
    print({k: round(v, 1) for k, v in growth.items()})
    # the control shows that the measurement sees a catalog held in memory ...
    assert growth["load", 1_000_000] - growth["load", 100_000] > 0.8 * 0.9 * data_mib
    # ... and streaming ten times the rows costs (almost) nothing more
    assert growth["stream", 1_000_000] - growth["stream", 100_000] < 0.15 * data_mib


def test_fit_stream_callbacks_and_early_stopping(tmp_path, table):
    mags, cls = table
    p = write_all(tmp_path, mags, cls, ("npy",))["npy"]
    ref = load_catalog(p, features="colors:ugriz", label="class", drop_invalid=True)
    seen = []
    m = MLP([4, 8, 1], seed=0, backend="numpy")
    h = fit_stream(m, p, epochs=5, lr=1e-2, progress=False,
                   callbacks=[lambda e, hist, mod: seen.append(e) or e == 2], **KW)
    assert seen == [1, 2] and h.epochs == 2
    # a huge lr: the validation loss worsens, training stops and the best epoch is restored
    m = MLP([4, 8, 1], seed=0, backend="numpy")
    snaps = []
    h = fit_stream(m, p, epochs=30, lr=0.3, optimizer="sgd", batch_size=8, progress=False,
                   validation=(ref.X[:300], ref.y[:300]), early_stopping=2,
                   callbacks=[lambda e, hist, mod: snaps.append(mod.params.copy())], **KW)
    assert h.stopped_early and h.epochs < 30 and h.epochs - h.best_epoch == 2
    np.testing.assert_array_equal(m.params, snaps[h.best_epoch - 1])
    with pytest.raises(ValueError, match="early_stopping needs validation"):
        fit_stream(MLP([4, 8, 1]), p, early_stopping=3, **KW)


def _fits_of_every_column_kind(path, n):
    """A binary table with the column kinds catalogs hold: floats, TSCAL / TZERO, the
    unsigned convention, TNULL, logical, text and 64-bit ids."""
    fits = pytest.importorskip("astropy.io.fits")
    rng = np.random.default_rng(3)
    j = rng.integers(-5, 5, n).astype(np.int32)
    j[::7] = -99
    cols = [fits.Column(name="r", format="D", array=rng.normal(20, 2, n)),
            fits.Column(name="g", format="E", array=rng.normal(21, 2, n).astype(np.float32)),
            fits.Column(name="scaled", format="J",
                        array=rng.integers(-100, 100, n).astype(np.int32)),
            fits.Column(name="flags", format="I", bzero=32768,
                        array=rng.integers(0, 65535, n).astype(np.uint16)),
            fits.Column(name="nulled", format="J", null=-99, array=j),
            fits.Column(name="good", format="L", array=rng.random(n) < 0.5),
            fits.Column(name="class", format="6A",
                        array=np.array(["STAR", "QSO", "GALAXY"])[rng.integers(0, 3, n)]),
            fits.Column(name="objid", format="K", array=np.arange(n) + 2 ** 60)]
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header["TSCAL3"], hdu.header["TZERO3"] = 0.5, 10.0     # stored integers, scaled
    hdu.writeto(path)
    return [c.name for c in cols]


def test_fits_rows_read_in_chunks_are_the_rows_astropy_reads(tmp_path):
    """Every column kind, chunk by chunk and in a shuffled chunk order, gives the values of
    a full astropy read (TNULL integers as NaN)."""
    fits = pytest.importorskip("astropy.io.fits")
    p = tmp_path / "kinds.fits"
    names = _fits_of_every_column_kind(p, 1000)
    with fits.open(p) as h:
        ref = {n: np.asarray(h[1].data[n]) for n in names}
    ref["nulled"] = np.where(ref["nulled"] == -99, np.nan, ref["nulled"])
    s = CatalogStream(p, features=["r", "g"], label=False, chunk_rows=128,
                      extra=names, dtype="float64")
    order = np.random.default_rng(0).permutation(s.n_chunks)
    chunks = sorted(s.chunks(order, labels=False, dropna=False), key=lambda c: c.start)
    for n in names:
        got = np.concatenate([c.extra[n] for c in chunks])
        want = ref[n]
        assert got.dtype.kind == want.dtype.kind or n == "nulled", (n, got.dtype, want.dtype)
        np.testing.assert_array_equal(got, want, err_msg=n)
    whole = load_catalog(p, features=["r", "g"], label=False, extra=names, dtype="float64")
    for n in names:
        np.testing.assert_array_equal(whole.extra[n], ref[n], err_msg=n)
    np.testing.assert_array_equal(np.concatenate([c.X for c in chunks]), whole.X)


def test_reading_a_fits_catalog_holds_one_chunk_not_the_table(tmp_path):
    """Allocations (tracemalloc, deterministic) while a 200k-row FITS table is read in
    chunks of 5k rows stay a small fraction of the table: no copy of the whole table (astropy
    copies a memory-mapped table's columns when the file is closed)."""
    import tracemalloc
    fits = pytest.importorskip("astropy.io.fits")
    n = 200_000
    cols = [fits.Column(name=b, format="D", array=np.full(n, 20.0)) for b in "ugriz"]
    cols.append(fits.Column(name="objid", format="K", array=np.arange(n)))
    fits.BinTableHDU.from_columns(cols).writeto(tmp_path / "big.fits")
    table_bytes = n * 6 * 8
    s = CatalogStream(tmp_path / "big.fits", features="colors:ugriz", label=False,
                      chunk_rows=5000, extra="objid")
    tracemalloc.start()
    try:
        rows = sum(len(c.valid) for c in s.chunks(labels=False, dropna=False))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == n
    assert peak < table_bytes / 4, (peak, table_bytes)


def test_gzipped_csv_in_a_shuffled_order_is_decompressed_once(tmp_path, table, monkeypatch):
    """Chunks of a .csv.gz in a shuffled order are the chunks of the plain CSV, and the
    gzip stream is read through once for them (not once per chunk: time quadratic in the
    file); a pass in file order reads the gzip stream itself, and the temporary copy goes
    away with the stream."""
    import gzip
    import zlib
    mags, cls = table
    plain = write_all(tmp_path, mags, cls, ("csv",))["csv"]
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    # the bytes the gzip decompressors produce: the file's size once, not once per chunk
    produced = []

    class Counting:
        def __init__(self, *a, **k):
            self._d = real(*a, **k)

        def decompress(self, *a):
            out = self._d.decompress(*a)
            produced.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self._d, name)

    real = zlib.decompressobj
    monkeypatch.setattr(zlib, "decompressobj", Counting)
    ref = CatalogStream(plain, **KW).scan()
    s = CatalogStream(gz, **KW)                              # a pass to count lines
    produced.clear()
    s.scan()
    size = plain.stat().st_size
    assert size <= sum(produced) < 1.1 * size                # the scan: one more pass
    produced.clear()
    order = list(np.random.default_rng(1).permutation(s.n_chunks))
    for _ in range(3):                                       # three epochs
        for a, b in zip(s.chunks(order), ref.chunks(order)):
            np.testing.assert_array_equal(a.X, b.X)
            np.testing.assert_array_equal(a.y, b.y)
    assert sum(produced) < 1.1 * size                        # decompressed once in all
    copy = s._reader.source.copy
    assert copy is not None and copy.exists()
    s.remove_temporary_copy()
    assert not copy.exists()
    m = MLP([4, 8, 1], seed=1, dtype="float64", backend="numpy")
    h = fit_stream(m, s, epochs=2, batch_size=64, progress=False)
    assert h.epochs == 2 and s._reader.source.copy is None   # fit_stream removed its copy


PARQUET_CHILD = textwrap.dedent("""
    import sys
    from fastmlp.data.stream import CatalogStream

    def hwm_kib():  # this process's peak resident memory
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    s = CatalogStream(sys.argv[1], features="colors:ugriz", label=False, chunk_rows=10_000)
    base = hwm_kib()
    rows = sum(len(c.valid) for c in s.chunks(labels=False, dropna=False))
    print(rows, hwm_kib() - base)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_parquet_row_group_far_larger_than_a_chunk_is_not_held_whole(tmp_path):
    """A file written as one row group read in chunks of 10k rows: the peak resident memory
    of the pass does not follow the row group (250k rows, then 1M rows = 30 MB more of
    doubles): pyarrow reads the column chunks page by page (unbuffered, it read the whole
    row group first)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    child = tmp_path / "child.py"
    child.write_text(PARQUET_CHILD)
    rng = np.random.default_rng(0)
    growth = {}
    for n in (250_000, 1_000_000):
        path = tmp_path / f"g{n}.parquet"
        pq.write_table(pa.table({b: rng.normal(20, 1, n) for b in "ugriz"}), path,
                       row_group_size=n)
        r = subprocess.run([sys.executable, str(child), str(path)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        rows, growth[n] = map(int, r.stdout.split())
        assert rows == n
    more_data = 750_000 * 5 * 8
    assert (growth[1_000_000] - growth[250_000]) * 1024 < 0.2 * more_data, growth


def test_a_failed_decompression_leaves_no_partial_copy(tmp_path, monkeypatch):
    """A .gz whose stream breaks while the temporary copy is written (a truncated file;
    the same path as a full disk or Ctrl-C) raises, and the partial copy - up to the
    catalog's uncompressed size - is removed at once, not at interpreter exit."""
    import gzip
    import tempfile
    from fastmlp.data.decompressed import SeekableSource
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    gz = tmp_path / "c.csv.gz"
    rows = "\n".join(f"{a:.6f},{b:.6f}" for a, b in np.random.default_rng(0).random((20000, 2)))
    whole = gzip.compress(f"u,g\n{rows}\n".encode())
    gz.write_bytes(whole[:len(whole) // 2])                          # truncated
    src = SeekableSource(gz)
    with pytest.raises(EOFError):
        src.open(order=[1, 0])                          # out of order: makes the copy
    assert list((tmp_path / "tmp").iterdir()) == [] and src.copy is None


def test_scan_counts_far_feature_values_in_its_one_pass(tmp_path, table, monkeypatch):
    """A missing-value sentinel other than -9999 (99, 1e30) was counted in memory only:
    a streamed catalog's scan now counts such rows on the rows it reads anyway.  With fewer
    rows than far_values.SAMPLE_ROWS the median is that of every usable row, as
    far_in_training takes it, and the counts are the in-memory ones whatever the chunking;
    beyond it the median is that of the first SAMPLE_ROWS rows and the warning says so,
    and every row is still counted (the sentinels sit past the first rows)."""
    from fastmlp.data import far_values
    mags, cls = table
    bad = mags.copy()
    bad[[1500, 1600, 1900], 2] = [99.0, 1e30, 99.0]            # r: g-r and r-i far off
    bad[1700, 4] = 99.0                                        # z: i-z
    p = write_all(tmp_path, bad, cls, formats=("parquet",))["parquet"]
    cat = load_catalog(p, features="colors:ugriz", label="class", drop_invalid=True)
    want = far_values.far_in_training(cat.X, cat.feature_names)
    assert want.rows == 4 and want.by_feature.tolist() == [0, 3, 3, 1]
    for chunk_rows in (CHUNK, N):
        s = CatalogStream(p, features="colors:ugriz", label="class", chunk_rows=chunk_rows)
        far = s.scan().far_values
        assert far.warning() == want.warning()
        np.testing.assert_allclose(far.centre, want.centre)
    monkeypatch.setattr(far_values, "SAMPLE_ROWS", 500)
    s = CatalogStream(p, features="colors:ugriz", label="class", chunk_rows=CHUNK).scan()
    first = cat.X[:500].astype(np.float64)
    np.testing.assert_allclose(s.far_values.centre, np.median(first, axis=0))
    assert s.far_values.rows == 4 and s.far_values.by_feature.tolist() == [0, 3, 3, 1]
    assert s.far_values.warning().startswith(
        "warning: 4 rows have features more than 50 standard deviations from the training "
        "median (g-r=3, r-i=3, i-z=1; median and standard deviation (1.4826 x MAD) of the "
        "first 500 training rows)")
    (tmp_path / "clean").mkdir()
    p = write_all(tmp_path / "clean", mags, cls, formats=("parquet",))["parquet"]
    clean = CatalogStream(p, features="colors:ugriz", label="class", chunk_rows=CHUNK).scan()
    assert clean.far_values.rows == 0 and clean.far_values.warning() is None


def test_an_infinite_value_on_a_feature_that_is_not_judged_is_not_far():
    """A feature whose spread is 0 (MAD 0: infinite scale) is not judged: its bounds are
    infinite, and even an inf value there is not counted (nan_to_num had turned the
    bounds into +-1.8e308, and the inf row counted)."""
    from fastmlp.data import far_values
    X = np.ones((100, 2))
    X[:, 1] = np.arange(100)
    X[5, 0] = np.inf
    assert far_values.far_in_training(X, ["a", "b"]).rows == 0
    X[7, 1] = 1e30                      # a judged feature still counts
    assert far_values.far_in_training(X, ["a", "b"]).rows == 1
