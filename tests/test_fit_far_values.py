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
    table["g-r"][[7, 8]] = 99.0                   # another survey's sentinel
    m = fastmlp.MLP([4, 8, 1], seed=0, features=["u-g", "g-r", "r-i", "i-z"])
    with pytest.warns(UserWarning, match=r"X: 2 rows have features .*g-r=2"):
        fastmlp.fit(m, table, y, epochs=1, progress=False, validation=None)


def test_a_heavy_tailed_column_is_data_not_a_sentinel():
    """Lognormal (sigma 1.5) and Cauchy columns have rows beyond 50 robust standard
    deviations, none of them repeated or a round number: no warning; 99.0 in five rows
    is a sentinel."""
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.lognormal(0, 1.5, 10_000), rng.standard_cauchy(10_000),
                         np.round(rng.lognormal(0, 2, 10_000), 2),      # rounded to 0.01
                         rng.zipf(1.6, 10_000) + rng.integers(0, 10, 10_000),   # counts
                         np.r_[rng.normal(size=9_998), 60.0, 61.5]])    # two outliers
    y = (X[:, 0] > 1).astype(np.int64)
    m = fastmlp.MLP([5, 4, 1], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastmlp.fit(m, X, y, epochs=1, standardize=True, progress=False, validation=None)
    X[3:8, 0] = 99.0                              # a sentinel, in 5 rows
    with pytest.warns(UserWarning, match=r"X: \d+ rows have features"):
        fastmlp.fit(fastmlp.MLP([5, 4, 1], seed=0), X, y, epochs=1, standardize=True,
                    progress=False, validation=None)


def test_the_cli_says_far_rows_once(tmp_path):
    """fastmlp train prints its own warning line; fit's UserWarning (with the array advice)
    is not printed again."""
    import subprocess
    import sys
    cat = fastmlp.make_photometric_catalog(3000, seed=0)
    path = tmp_path / "cat.csv"
    cols = {b: cat.extra[b] for b in "ugriz"}
    cols["g"] = cols["g"].copy()
    cols["g"][:5] = 9999.0
    with open(path, "w") as f:
        f.write("u,g,r,i,z,label\n")
        for k in range(3000):
            f.write(",".join(repr(float(cols[b][k])) for b in "ugriz") + f",{int(cat.y[k])}\n")
    res = subprocess.run([sys.executable, "-m", "fastmlp", "train", "--catalog", str(path),
                          "--features", "colors:ugriz", "--label", "label", "--epochs", "1",
                          "--quiet", "--backend", "numpy"], capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "FASTMLP_NO_TUNE": "1"})
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("standard deviations from the training") == 1, res.stderr


def test_the_sentinel_rule_on_colours_of_a_sentinel_and_on_whole_counts():
    """Colours of a 99 or -9999 magnitude (99 - g: spread over ~10 magnitudes) are
    sentinels from two rows; whole counts of a heavy tail that hit 99 once are not."""
    from fastmlp.data.far_values import far_in_training
    rng = np.random.default_rng(1)
    g = rng.normal(19, 1.5, 20_000)
    colour = rng.normal(1.2, 0.4, 20_000)
    rows = [10, 500, 900]
    for sentinel in (99.0, -9999.0):
        c = colour.copy()
        c[rows] = sentinel - g[rows]
        assert far_in_training(c[:, None], ["u-g"]).sentinel_like
        c[7] = 40.0                 # one real outlier beside them changes nothing
        assert far_in_training(c[:, None], ["u-g"]).sentinel_like
    big = rng.normal(size=200_000)  # two blocks of rows: 99 in each, judged together
    big[[10, 150_000]] = 99.0
    assert far_in_training(big[:, None], ["x"]).sentinel_like
    counts = np.round(np.exp(rng.normal(1, 2, 200_000)))
    far = far_in_training(counts[:, None], ["n"])
    assert far.rows > 1000 and np.count_nonzero(counts == 99) >= 1
    assert not far.sentinel_like
