"""fastmlp.fit warns before training when rows of an array lie far from the bulk: in an
array SDSS's -9999 is a number, and a few of them drag a stored standardisation (the CLI
has warned of such rows all along: fastmlp.data.far_values)."""
import warnings

import numpy as np
import pytest

import fastmlp


def _colours(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal([1.0, 0.4, 0.2, 0.1], [0.4, 0.2, 0.1, 0.1], size=(n, 4))
    return X, (X[:, 0] < 0.8).astype(np.int64)


def test_fit_warns_of_sentinels_in_an_array_and_names_the_column():
    X, y = _colours()
    X[:5, 2] = -9999.0
    m = fastmlp.MLP([4, 8, 1], seed=0)
    with pytest.warns(UserWarning, match=r"X: 5 rows have features more than 50 standard "
                                         r"deviations .*column 2=5.*-9999.*drop_invalid=True"):
        fastmlp.fit(m, X, y, epochs=1, standardize=True, progress=False, validation=None)


def test_fit_names_a_table_column_and_stays_quiet_on_clean_data():
    X, y = _colours()
    m = fastmlp.MLP([4, 8, 1], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastmlp.fit(m, X, y, epochs=1, standardize=True, progress=False, validation=None)
    table = {n: X[:, j].copy() for j, n in enumerate(["u-g", "g-r", "r-i", "i-z"])}
    table["g-r"][7] = 99.0                        # another survey's sentinel
    m = fastmlp.MLP([4, 8, 1], seed=0, features=["u-g", "g-r", "r-i", "i-z"])
    with pytest.warns(UserWarning, match=r"X: 1 row has features .*g-r=1"):
        fastmlp.fit(m, table, y, epochs=1, progress=False, validation=None)
