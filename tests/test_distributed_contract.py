"""fastmlp.distributed.fit on a catalog of raw magnitudes with missing values keeps the
contract of fastmlp train on one process: the same --missing policies (error / drop /
impute-median, the same medians stored as the model's fill values), the same --where
filter with colours, and a model that predicts the DataFrame's rows afterwards.  The MPI
path (one rank, in process) refuses a missing value naming the same options (its policies:
tests/test_distributed_mpi.py); a model it trains on a structured .npy reads a table by
the feature fields' names."""

import importlib

import numpy as np
import pandas as pd
import pytest

import fastmlp
from fastmlp.data import load_catalog

try:
    import dask.dataframe as dd
    from fastmlp.distributed import dask as fd
    _NO_DASK = None if fd.AVAILABLE else fd.UNAVAILABLE_REASON
except Exception as exc:  # pragma: no cover - depends on the environment
    _NO_DASK = f"the dask extra is not installed (pip install fastmlp[dask]): {exc}"

try:
    importlib.import_module("mpi4py")
    _NO_MPI = None
except Exception as exc:  # pragma: no cover - depends on the environment
    _NO_MPI = f"mpi4py is not importable ({exc}); pip install fastmlp[mpi]"

needs_dask = pytest.mark.skipif(_NO_DASK is not None, reason=str(_NO_DASK))
needs_mpi = pytest.mark.skipif(_NO_MPI is not None, reason=str(_NO_MPI))

FEATURES = ["u-g", "g-r"]
WHERE = "u-g > 0.5"


def _magnitudes(n=2000, seed=3):
    """Raw u, g, r magnitudes and a 0/1 label, with NaN, SDSS's -9999 and 1e39 (beyond
    float32: missing for a float32 model) in some rows."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    g = rng.normal(20, 1, n)
    df = pd.DataFrame({"u": g + 1.0 + 0.8 * y + rng.normal(0, .3, n), "g": g,
                       "r": g - 0.4 - 0.3 * y + rng.normal(0, .2, n), "label": y})
    df.loc[5::97, "u"] = np.nan
    df.loc[7::89, "r"] = -9999.0
    df.loc[11::131, "g"] = 1e39
    return df


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """(the pandas table, the same rows as a CSV file fastmlp train reads)."""
    df = _magnitudes()
    path = tmp_path_factory.mktemp("contract") / "mags.csv"
    df.to_csv(path, index=False)
    return df, path


def _fit(client, df, model=None, **kw):
    model = model if model is not None else fastmlp.MLP([2, 8, 1], seed=0)
    kw = dict(dict(epochs=1, progress=False, n_shards=2, batch_size=128), **kw)
    hist = fd.fit(model, dd.from_pandas(df, npartitions=4), features=FEATURES,
                  label="label", client=client, **kw)
    return model, hist


@needs_dask
def test_impute_median_stores_the_medians_fastmlp_train_stores(client, catalog):
    df, path = catalog
    cli = load_catalog(path, features=FEATURES, label="label", missing="impute-median",
                       where=WHERE)
    model, hist = _fit(client, df, missing="impute-median", where=WHERE)
    assert model.features.fill == pytest.approx(cli.meta["impute_medians"], rel=0, abs=0)
    assert sum(hist.distributed["shard_rows"]) == cli.X.shape[0]
    # every row of the raw table gets a prediction, as after fastmlp train
    proba = model.predict_proba(df)
    assert proba.shape == (len(df), 2) and np.isfinite(proba).all()


@needs_dask
def test_drop_trains_on_the_rows_fastmlp_train_keeps(client, catalog):
    df, path = catalog
    cli = load_catalog(path, features=FEATURES, label="label", missing="drop", where=WHERE)
    model, hist = _fit(client, df, missing="drop", where=WHERE)
    assert sum(hist.distributed["shard_rows"]) == cli.X.shape[0]
    assert model.features.fill is None
    proba = model.predict_proba(df)
    assert np.isnan(proba).any(axis=1).sum() > 0     # no fill: missing rows unpredicted


@needs_dask
def test_missing_values_by_default_are_refused_naming_the_option(client, catalog):
    df, _ = catalog
    with pytest.raises(ValueError, match="missing='drop'"):
        _fit(client, df)


@needs_dask
def test_a_model_with_fill_values_imputes_with_them_when_given_feature_names(client,
                                                                             catalog):
    df, _ = catalog
    fill = {"u": 21.0, "g": 20.0, "r": 19.5}
    model = fastmlp.MLP([2, 8, 1], seed=0)
    model.set_contract(features=fastmlp.FeatureSpec(FEATURES).with_fill(fill))
    _, hist = _fit(client, df, model=model)       # missing="error": nothing is missing
    assert sum(hist.distributed["shard_rows"]) == len(df)
    assert model.features.fill == fill


@needs_dask
def test_resume_with_impute_median_continues_the_run(client, catalog, tmp_path):
    df, _ = catalog
    ck = str(tmp_path / "run.npz")
    full, _ = _fit(client, df, missing="impute-median", where=WHERE, epochs=2)
    _fit(client, df, missing="impute-median", where=WHERE, epochs=1, checkpoint=ck)
    resumed, hist = _fit(client, df, missing="impute-median", where=WHERE, epochs=2,
                         checkpoint=ck, resume=True)
    assert hist.distributed["resumed_from_round"] > 0
    assert resumed.features == full.features
    np.testing.assert_array_equal(resumed.params, full.params)


@needs_dask
def test_bad_missing_and_where_on_an_array_are_refused_by_name():
    X, y = np.zeros((8, 2)), np.zeros(8)
    with pytest.raises(ValueError, match="missing must be one of"):
        fd.fit(fastmlp.MLP([2, 1]), X, y, missing="median", progress=False)
    with pytest.raises(ValueError, match="where= filters a Dask DataFrame"):
        fd.fit(fastmlp.MLP([2, 1]), X, y, where="a < 1", progress=False)
    with pytest.raises(ValueError, match="missing='impute-median' needs a Dask DataFrame"):
        fd.fit(fastmlp.MLP([2, 1]), X, y, missing="impute-median", progress=False)


@needs_mpi
def test_mpi_refuses_a_missing_value_naming_the_option():
    from fastmlp.distributed.mpi import mpi_fit
    X = np.random.default_rng(0).normal(size=(64, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="contains 1 row with NaN.*pass missing='drop'"):
        mpi_fit(fastmlp.MLP([2, 4, 1], seed=0, dtype="float64"), X, X[:, 0] > 0, epochs=1,
                progress=False)


@needs_mpi
def test_mpi_model_reads_a_table_by_the_fields_it_trained_on(tmp_path):
    from fastmlp.distributed.mpi import mpi_fit
    df = _magnitudes(400).replace(-9999.0, 0.0).dropna()
    df = df[np.abs(df["g"]) < 1e30]
    rec = np.empty(len(df), dtype=[("u-g", "f8"), ("g-r", "f8"), ("label", "i8")])
    rec["u-g"], rec["g-r"] = df["u"] - df["g"], df["g"] - df["r"]
    rec["label"] = df["label"]
    path = tmp_path / "colours.npy"
    np.save(path, rec)
    model = fastmlp.MLP([2, 4, 1], seed=0, dtype="float64")
    mpi_fit(model, path=path, features="u-g,g-r", label="label", epochs=1, progress=False,
            standardize=True)
    assert list(model.features.names) == FEATURES
    X = np.stack([rec["u-g"], rec["g-r"]], axis=1)
    np.testing.assert_array_equal(model.predict_proba(rec), model.predict_proba(X))


@needs_dask
def test_drop_leaves_out_an_arrays_nonfinite_rows(client):
    import dask.array as da
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 2))
    y = (X[:, 0] > 0).astype(np.int64)
    X[::50, 1] = np.nan
    X[7::61, 0] = 1e39             # beyond the float32 model's range: missing, as in train
    kept = 600 - 12 - 10
    for data in (X, da.from_array(X, chunks=150)):
        hist = fd.fit(fastmlp.MLP([2, 4, 1], seed=0), data, y, client=client, epochs=1,
                      n_shards=2, missing="drop", progress=False)
        assert sum(hist.distributed["shard_rows"]) == kept
