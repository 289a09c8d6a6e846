"""Two predict_stream generators advanced in turn on ONE CatalogStream.

predict_stream set the model's fill values (FeatureSpec.fill) and fill_dtype on the shared
stream for the life of its generator: a second generator on the same stream overwrote
them, so the first read its later chunks with the other model's fill (a model without
fill was even refused: 'the stream's fill ... differs'), and the stream was left with a
fill its caller never gave it.  Each generator now reads with its own model's fill.
"""

import numpy as np
import pytest

import fastmlp
from fastmlp.data import CatalogStream, predict_stream
from fastmlp.features import FeatureSpec

BANDS = "ugriz"
N, CHUNK = 240, 20          # 12 chunks: most are read after the other generator started


def _table():
    """Magnitudes with a missing u (NaN, -9999, or 1e39: beyond float32's range only) in
    every chunk, and a missing g in every other one."""
    cat = fastmlp.make_photometric_catalog(N, seed=3)
    t = {b: cat.extra[b].astype(np.float64) for b in BANDS}
    for c in range(N // CHUNK):
        t["u"][c * CHUNK + 3] = (np.nan, -9999.0, 1e39)[c % 3]
        if c % 2:
            t["g"][c * CHUNK + 11] = np.nan
    return t


def _write_csv(path, table):
    with open(path, "w") as f:
        f.write(",".join(BANDS) + "\n")
        for k in range(N):
            f.write(",".join(repr(float(table[b][k])) for b in BANDS) + "\n")
    return path


def _model(fill, dtype):
    """A standardising model of the colours with these fill values (None: none)."""
    model = fastmlp.MLP([4, 8, 1], seed=0, dtype=dtype,
                        features=FeatureSpec("colors:ugriz", fill=fill))
    model.standardization = (np.array([1.2, 0.4, 0.2, 0.1]), np.array([0.9, 0.5, 0.3, 0.2]))
    return model


# (fill, dtype) of the model advanced first, then of the other.  Before, the second was
# refused when the fills differed, read the first's later chunks with its own fill when the
# first had none, and with its own fill_dtype (1e39 a number) when only the dtypes differed
PAIRS = {
    "two fills": ({"u": 19.0, "g": 18.5}, "float32", {"u": 24.0}, "float32"),
    "a fill, then none": ({"u": 19.0, "g": 18.5}, "float32", None, "float32"),
    "none, then a fill": (None, "float32", {"u": 19.0, "g": 18.5}, "float32"),
    "one fill, float32 then float64": ({"u": 19.0}, "float32", {"u": 19.0}, "float64"),
}


@pytest.mark.parametrize("pair", list(PAIRS))
def test_interleaved_generators_each_read_with_their_own_fill(tmp_path, pair):
    fill_a, dtype_a, fill_b, dtype_b = PAIRS[pair]
    table = _table()
    path = _write_csv(tmp_path / "c.csv", table)
    models = [_model(fill_a, dtype_a), _model(fill_b, dtype_b)]
    want = [m.predict_proba(table) for m in models]
    # different answers (the float64 model's 1e39 is a number, the float32 model's missing)
    assert not np.allclose(want[0], want[1], equal_nan=True)
    stream = CatalogStream(path, features="colors:ugriz", label=False, chunk_rows=CHUNK,
                           dtype="float64")
    gens = [predict_stream(m, stream, progress=False) for m in models]
    got, seen = [[], []], set()
    for _ in range(stream.n_chunks):
        for k in (0, 1):                        # one chunk of each, in turn
            got[k].append(next(gens[k])[1])
            seen.add((tuple(stream.fill.items()), np.dtype(stream.fill_dtype).name))
    for k in (0, 1):
        with pytest.raises(StopIteration):
            next(gens[k])
        out = np.concatenate(got[k])
        np.testing.assert_allclose(out, want[k], rtol=1e-6, atol=1e-7, equal_nan=True)
        assert np.isnan(out).any() == np.isnan(want[k]).any()
    # the stream as its caller opened it, while the generators ran and after: no fill,
    # its own fill_dtype
    assert seen == {((), "float64")}
    assert stream.fill == {} and stream.fill_dtype == np.float64
    first = next(stream.chunks(dropna=False))
    assert np.isnan(first.X[3, 0]) and not first.valid[3]


def test_a_generator_closed_early_leaves_the_other_its_fill(tmp_path):
    """Closing one generator while the other runs: the other keeps its own fill."""
    table = _table()
    path = _write_csv(tmp_path / "c.csv", table)
    a, b = _model({"u": 19.0}, "float32"), _model({"u": 24.0}, "float32")
    stream = CatalogStream(path, features="colors:ugriz", label=False, chunk_rows=CHUNK,
                           dtype="float64")
    gen_b = predict_stream(b, stream, progress=False)
    first = [next(gen_b)[1]]
    gen_a = predict_stream(a, stream, progress=False)
    next(gen_a)
    gen_a.close()
    rest = [out for _, out in gen_b]
    np.testing.assert_allclose(np.concatenate(first + rest), b.predict_proba(table),
                               rtol=1e-6, atol=1e-7, equal_nan=True)
    assert stream.fill == {} and stream.fill_dtype == np.float64


def test_a_waiting_generator_leaves_the_callers_thread_count_alone(tmp_path):
    """predict_stream(n_threads=1) sets the kernels' count for its own chunks only: the
    caller's code between two next() calls, and after generators advanced in turn are
    dropped, runs with the caller's count (it ran with 1 before, and kept it)."""
    from fastmlp import backends
    path = _write_csv(tmp_path / "c.csv", _table())
    model = _model(None, "float32")
    with backends.threads(2):
        stream = CatalogStream(path, features="colors:ugriz", label=False, chunk_rows=CHUNK,
                               dtype="float64")
        first = predict_stream(model, stream, progress=False, n_threads=1)
        second = predict_stream(model, stream, progress=False, n_threads=1)
        next(first)
        assert backends.get_num_threads() == 2
        next(second)
        next(first)
        assert backends.get_num_threads() == 2
        del first, second
        assert backends.get_num_threads() == 2
