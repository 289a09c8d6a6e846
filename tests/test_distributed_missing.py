"""Which rows the distributed paths leave out as missing: SDSS's -9999 in a .npy catalog read
by mpi_fit (missing) against arrays X, y (a number, as fastmlp.fit(X, y) takes them), and
text labels (a null / empty / "NA" text is a missing label, as the loader reads it)."""

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.distributed import mpi

# one rank: COMM_WORLD of a plain python, no mpirun needed
needs_mpi = pytest.mark.skipif(not mpi.AVAILABLE, reason="mpi4py is not importable "
                               f"({mpi.UNAVAILABLE_REASON}); pip install fastmlp[mpi]")

N = 120
SENTINEL_ROWS = [3, 50, 111]


def _numbers(sentinel):
    """(X, y): N rows of 2 features and 0/1 labels, ``sentinel`` in feature 1 of
    SENTINEL_ROWS."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, N)
    X = np.column_stack([rng.normal(20, 1, N) + y, rng.normal(19, 1, N) - y])
    X[SENTINEL_ROWS, 1] = sentinel
    return X, y


def _fit(**data):
    """mpi_fit on one rank: (model, rows trained on)."""
    model = MLP([2, 4, 1], seed=0)
    hist = mpi.mpi_fit(model, epochs=1, batch_size=16, seed=1, standardize=True,
                   progress=False, **data)
    return model, int(hist.distributed["rows"])


def _plain_npy(tmp_path, X, y):
    """X and y as the columns "0", "1", "2" of a plain 2-D .npy."""
    path = tmp_path / "plain.npy"
    np.save(path, np.column_stack([X, y]))
    return dict(path=path, features="0,1", label=2)


# --- SDSS's -9999: missing in a .npy catalog, a number in arrays (the documented rule) ----

@needs_mpi
@pytest.mark.parametrize("missing", ["error", "drop"])
def test_arrays_take_minus_9999_in_X_as_a_number_as_fit_does(missing):
    X, y = _numbers(-9999.0)
    _, rows = _fit(X=X, y=y, missing=missing)
    assert rows == N                      # nothing left out, nothing refused


@needs_mpi
def test_a_plain_npy_reads_minus_9999_as_missing(tmp_path):
    X, y = _numbers(-9999.0)
    data = _plain_npy(tmp_path, X, y)
    _, rows = _fit(missing="drop", **data)
    assert rows == N - len(SENTINEL_ROWS)
    with pytest.raises(ValueError, match=r"3 of 120 rows have missing .* in columns "
                                         r"\{'1': 3\}"):
        _fit(missing="error", **data)


@needs_mpi
def test_nan_in_arrays_leaves_out_the_rows_minus_9999_does_in_the_file(tmp_path):
    """The remedy the docstring gives: NaN written where an array has -9999 trains on the
    rows the same data read from a .npy trains on, to the last bit."""
    X, y = _numbers(-9999.0)
    from_file, rows_file = _fit(missing="drop", **_plain_npy(tmp_path, X, y))
    X[X == -9999.0] = np.nan
    from_arrays, rows_arrays = _fit(X=X, y=y, missing="drop")
    assert rows_arrays == rows_file == N - len(SENTINEL_ROWS)
    np.testing.assert_array_equal(from_arrays.params, from_file.params)


# --- text labels: a null / empty / "NA" text is a missing label -------------------------

MISSING_TEXT = {7: "", 64: "NA", 90: "  ", 101: "null"}


def _named_classes(path, rows=None):
    """A structured .npy of magnitudes u, g and a text label GALAXY / QSO, with the
    MISSING_TEXT labels; only ``rows`` of it when given."""
    rng = np.random.default_rng(8)
    quasar = rng.random(N) < 0.4
    rec = np.empty(N, dtype=[("u", "f8"), ("g", "f8"), ("label", "U8")])
    rec["u"] = rng.normal(20, 1, N) + 0.8 * quasar
    rec["g"] = rng.normal(19, 1, N) - 0.3 * quasar
    rec["label"] = np.where(quasar, "QSO", "GALAXY")
    for i, text in MISSING_TEXT.items():
        rec["label"][i] = text
    np.save(path, rec if rows is None else rec[rows])
    return path


def test_a_row_of_2d_labels_is_missing_when_any_of_its_labels_is():
    from fastmlp.distributed._common import missing_labels
    np.testing.assert_array_equal(missing_labels(np.array([["a", "b"], ["c", ""]])),
                                  [False, True])
    np.testing.assert_array_equal(missing_labels(np.array([[1.0, 0.0], [np.nan, 1.0],
                                                           [0.0, -9999.0]])),
                                  [False, True, True])


@needs_mpi
def test_a_missing_text_label_is_refused_naming_the_label_column(tmp_path):
    path = _named_classes(tmp_path / "named.npy")
    with pytest.raises(ValueError, match=r"named\.npy \(rank 0, rows 0\.\.119\): 4 of 120 "
                                         r"rows have missing .* in columns \{'label': 4\}"):
        _fit(path=path, features="u,g", label="label", positive="QSO", missing="error")


@needs_mpi
@pytest.mark.parametrize("missing", ["drop", "impute-median"])
def test_a_missing_text_label_is_left_out_as_the_loader_leaves_it_out(tmp_path, missing):
    from fastmlp.data import load_catalog
    path = _named_classes(tmp_path / "named.npy")
    model, rows = _fit(path=path, features="u,g", label="label", positive="QSO",
                       missing=missing)
    cat = load_catalog(path, features=["u", "g"], label="label", positive="QSO",
                       missing=missing, dtype="float64")
    assert rows == len(cat) == N - len(MISSING_TEXT)
    np.testing.assert_allclose(model.standardization[0], cat.X.mean(axis=0), rtol=1e-12)
    kept = [i for i in range(N) if i not in MISSING_TEXT]
    clean = _named_classes(tmp_path / "clean.npy", kept)
    same, _ = _fit(path=clean, features="u,g", label="label", positive="QSO")
    np.testing.assert_array_equal(model.params, same.params)


@needs_mpi
@pytest.mark.parametrize("kind, positive", [("S8", "QSO"), ("S8", b"QSO"), ("U8", " QSO")])
def test_positive_names_its_class_in_bytes_or_padded_text(tmp_path, kind, positive):
    """The class names as the loader reads them (decoded, blanks stripped): b"QSO" and
    "QSO " never equalled "QSO", so every row was class 0."""
    rec = np.load(_named_classes(tmp_path / "named.npy"))
    text = rec.astype([("u", "f8"), ("g", "f8"), ("label", kind)])
    text["label"] = np.char.add(rec["label"], "  ").astype(kind)   # padded, as FITS writes
    np.save(tmp_path / "coded.npy", text)
    coded, rows = _fit(path=tmp_path / "coded.npy", features="u,g", label="label",
                       positive=positive, missing="drop")
    plain, _ = _fit(path=tmp_path / "named.npy", features="u,g", label="label",
                    positive="QSO", missing="drop")
    assert rows == N - len(MISSING_TEXT)
    np.testing.assert_array_equal(coded.params, plain.params)


@needs_mpi
@pytest.mark.parametrize("missing", ["error", "drop"])
def test_text_labels_without_positive_are_refused_naming_the_column(tmp_path, missing):
    """mpi_fit maps no class names: the labels are refused as text at once (they were
    refused as 'y must hold numbers' only after the missing ones were judged)."""
    path = _named_classes(tmp_path / "named.npy")
    with pytest.raises(TypeError, match=r"named\.npy: label column 'label' holds text labels "
                                        r"\(dtype <U8\), not numbers; pass positive="):
        _fit(path=path, features="u,g", label="label", missing=missing)


@needs_mpi
def test_text_labels_in_arrays_are_refused_naming_y():
    X, _ = _numbers(0.0)
    y = np.where(np.arange(N) % 2, "QSO", "")
    with pytest.raises(TypeError, match=r"y \(rank 0\) holds text labels \(dtype <U3\), not "
                                        "numbers; map the class names to integers"):
        _fit(X=X, y=y, missing="error")


@pytest.mark.parametrize("missing", ["error", "drop"])
def test_dask_refuses_text_labels_in_arrays_before_any_work(missing):
    """As a DataFrame's text label column: refused before a cluster is used (the client
    here is not one) and before their null / empty texts are judged missing."""
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    from fastmlp.distributed import dask as fd
    X, _ = _numbers(0.0)
    y = np.where(np.arange(N) % 2, "QSO", "")
    with pytest.raises(TypeError, match=r"^y must hold numbers \(integer class labels or "
                                        r"targets\), got dtype <U3; map string labels"):
        fd.fit(MLP([2, 4, 1], seed=0), X, y, client=object(), missing=missing,
               epochs=1, progress=False)
