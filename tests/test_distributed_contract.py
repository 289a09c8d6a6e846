"""fastmlp.distributed.fit on a catalog of raw magnitudes with missing values keeps the
contract of fastmlp train on one process: the same --missing policies (error / drop /
impute-median, the same medians stored as the model's fill values), the same --where
filter with colours, and a model that predicts the DataFrame's rows afterwards."""

import numpy as np
import pytest

pytest.importorskip("dask", reason="the dask extra is not installed (pip install fastmlp[dask])")
pytest.importorskip("distributed", reason="distributed is not installed (fastmlp[dask])")

import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.data import load_catalog  # noqa: E402
from fastmlp.distributed import dask as fd  # noqa: E402

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


def test_drop_trains_on_the_rows_fastmlp_train_keeps(client, catalog):
    df, path = catalog
    cli = load_catalog(path, features=FEATURES, label="label", missing="drop", where=WHERE)
    model, hist = _fit(client, df, missing="drop", where=WHERE)
    assert sum(hist.distributed["shard_rows"]) == cli.X.shape[0]
    assert model.features.fill is None
    proba = model.predict_proba(df)
    assert np.isnan(proba).any(axis=1).sum() > 0     # no fill: missing rows unpredicted


def test_missing_values_by_default_are_refused_naming_the_option(client, catalog):
    df, _ = catalog
    with pytest.raises(ValueError, match="missing='drop'"):
        _fit(client, df)


def test_a_model_with_fill_values_imputes_with_them_when_given_feature_names(client,
                                                                             catalog):
    df, _ = catalog
    fill = {"u": 21.0, "g": 20.0, "r": 19.5}
    model = fastmlp.MLP([2, 8, 1], seed=0)
    model.set_contract(features=fastmlp.FeatureSpec(FEATURES).with_fill(fill))
    _, hist = _fit(client, df, model=model)       # missing="error": nothing is missing
    assert sum(hist.distributed["shard_rows"]) == len(df)
    assert model.features.fill == fill


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


def test_bad_missing_and_where_on_an_array_are_refused_by_name():
    X, y = np.zeros((8, 2)), np.zeros(8)
    with pytest.raises(ValueError, match="missing must be one of"):
        fd.fit(fastmlp.MLP([2, 1]), X, y, missing="median", progress=False)
    with pytest.raises(ValueError, match="where= filters a Dask DataFrame"):
        fd.fit(fastmlp.MLP([2, 1]), X, y, where="a < 1", progress=False)
    with pytest.raises(ValueError, match="missing='impute-median' needs a Dask DataFrame"):
        fd.fit(fastmlp.MLP([2, 1]), X, y, missing="impute-median", progress=False)
