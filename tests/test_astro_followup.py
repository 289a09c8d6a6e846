"""Follow-up of the astronomer's workflow probe (tests/test_astro_probe.py): what it found
and left unfixed - the CLI's --threshold range, --where on a minus-sign column, column names
in the missing-value error, one wording for the far-value warning, ``python -m fastmlp``,
and what ``fastmlp predict`` says of rows a --missing impute-median model was trained on."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main

COLOURS = ["u-g", "g-r", "r-i", "i-z"]


def _colour_model_and_catalog(tmp_path, n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    model = fastmlp.MLP([4, 8, 1], seed=seed, class_names=["STAR", "QSO"], positive=1,
                        backend="numpy")
    model.set_contract(features=",".join(COLOURS))
    cat = np.zeros(n, dtype=[(c, "f8") for c in COLOURS])
    for j, c in enumerate(COLOURS):
        cat[c] = X[:, j]
    np.save(tmp_path / "cat.npy", cat)
    fastmlp.save(model, tmp_path / "m.npz")
    return model, cat


def _predict(tmp_path, *extra):
    return main(["predict", "--model", str(tmp_path / "m.npz"), "--catalog",
                 str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"), "--quiet",
                 "--backend", "numpy", *extra])


# 1. --threshold accepts the model's range, [0, 1]

@pytest.mark.parametrize("cut", ["1.0", "0"])
def test_predict_accepts_the_cuts_the_model_accepts(tmp_path, capsys, cut):
    model, cat = _colour_model_and_catalog(tmp_path)
    assert _predict(tmp_path, "--threshold", cut) == 0
    out = np.load(tmp_path / "out.npy")
    model.threshold = float(cut)
    np.testing.assert_array_equal(out["label"], model.predict(cat))
    assert (out["label"] == (0 if cut == "1.0" else 1)).all()


@pytest.mark.parametrize("cut", ["1.5", "-0.1", "nan"])
def test_predict_refuses_a_cut_outside_the_probabilities(tmp_path, capsys, cut):
    _colour_model_and_catalog(tmp_path)
    with pytest.raises(SystemExit):
        _predict(tmp_path, "--threshold", cut)
    err = capsys.readouterr().err
    assert "--threshold" in err and "a probability in [0, 1]" in err and repr(cut) in err


# 2. --where on a column whose name holds a minus sign

def test_where_on_an_unquoted_colour_column_reads_it(tmp_path, capsys):
    model, cat = _colour_model_and_catalog(tmp_path)
    # u-g written without spaces is the column u-g (tests/test_where_colours.py); this
    # catalog has no r, and the error names it
    assert _predict(tmp_path, "--where", "u-g < 0.5 and r < 21") == 2
    err = capsys.readouterr().err
    assert "names column(s) ['r'] not in the catalog" in err
    # u - g with spaces reads as arithmetic, which the filter does not do: say how to write it
    assert _predict(tmp_path, "--where", "u - g < 0.5") == 2
    err = capsys.readouterr().err
    assert "cannot read the column 'u-g'" in err
    assert "back-quotes: '`u-g` < 0.5'" in err
    for text in ("`u-g` < 0.5", "u-g < 0.5"):      # written as the error says, it works
        assert _predict(tmp_path, "--where", text) == 0
        out = np.load(tmp_path / "out.npy")
        assert len(out) == int((cat["u-g"] < 0.5).sum()) > 0


def test_where_on_a_colour_computed_from_magnitudes_filters_on_it(tmp_path):
    rng = np.random.default_rng(1)
    cat = np.zeros(50, dtype=[(b, "f8") for b in "ugriz"])
    for b in "ugriz":
        cat[b] = rng.normal(20, 1, 50)
    np.save(tmp_path / "mags.npy", cat)
    got = fastmlp.load_catalog(tmp_path / "mags.npy", features="colors:ugriz", label=False,
                               where="`u-g` < 0.5")
    want = cat["u"] - cat["g"] < 0.5
    assert 0 < len(got.X) == int(want.sum()) < 50
    np.testing.assert_allclose(got.X[:, 0], (cat["u"] - cat["g"])[want], rtol=1e-6)


# 3. the missing-value error of fit names the columns by their names when the model has them

def _colour_table(n=120, seed=0):
    rng = np.random.default_rng(seed)
    cat = np.zeros(n, dtype=[(c, "f8") for c in COLOURS])
    for c in COLOURS:
        cat[c] = rng.normal(size=n)
    return cat, (cat["u-g"] > 0).astype(np.int64)


def test_fit_names_the_columns_with_missing_values_of_a_table():
    cat, y = _colour_table()
    cat["g-r"][3] = np.nan
    cat["i-z"][5] = np.inf
    model = fastmlp.MLP([4, 8, 1], features=",".join(COLOURS), backend="numpy")
    with pytest.raises(ValueError, match=r"X contains 2 rows with NaN or inf \(column 1 "
                                         r"\('g-r'\), column 3 \('i-z'\)\); clean them"):
        fastmlp.fit(model, cat, y, epochs=1, progress=False)


def test_fit_names_the_validation_columns_with_missing_values():
    cat, y = _colour_table()
    val = cat[:30].copy()
    val["r-i"][2] = np.nan
    model = fastmlp.MLP([4, 8, 1], features=",".join(COLOURS), backend="numpy")
    with pytest.raises(ValueError, match=r"X_val contains 1 row with NaN or inf \(column 2 "
                                         r"\('r-i'\)\); drop or clean"):
        fastmlp.fit(model, cat, y, epochs=1, progress=False, validation=(val, y[:30]))


# 4. the far-value warning: one wording, saying what each path computed

def _with_sentinels(n, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, 2))
    X[[n - 3, n - 2], 1] = 99.0
    return X


def test_far_value_warnings_share_their_wording_and_say_what_they_computed(monkeypatch):
    from fastmlp.data import far_values
    monkeypatch.setattr(far_values, "SAMPLE_ROWS", 100)
    head = "warning: 2 rows have features more than 50 standard deviations from the training "
    mad = "median (b=2; median and standard deviation (1.4826 x MAD) of "
    X = _with_sentinels(90)
    assert far_values.far_in_training(X, "ab").warning().startswith(
        head + mad + "every training row); ")
    X = _with_sentinels(1000)          # a median of every 10th row, not of all of them
    assert far_values.far_in_training(X, "ab").warning().startswith(
        head + mad + "100 evenly spaced training rows); ")
    stream = far_values.FarInStream("ab")
    for a in range(0, 1000, 300):
        stream.add(X[a:a + 300])
    assert stream.result().warning().startswith(head + mad + "the first 100 training rows); ")
    model = fastmlp.MLP([2, 4, 1], standardization=(np.zeros(2), np.ones(2)),
                        backend="numpy")
    assert far_values.far_from_model(model, "ab").warning() is None
    far = far_values.far_from_model(model, "ab")
    far.add(X)
    assert far.warning().startswith(
        head + "mean (b=2; the mean and standard deviation the model stores); ")


# 5. python -m fastmlp

def test_python_m_fastmlp_runs_the_command_line():
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = str(Path(fastmlp.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    r = subprocess.run([sys.executable, "-m", "fastmlp", "--help"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage: fastmlp" in r.stdout and "predict" in r.stdout
    r = subprocess.run([sys.executable, "-m", "fastmlp", "predict", "--threshold", "2"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "--threshold" in r.stderr


# 6. rows a --missing impute-median model was trained on get no prediction from predict:
#    said, with what to do

def _catalog_with_missing(tmp_path, n=600, seed=2):
    cat, y = _colour_table(n, seed)
    full = np.zeros(n, dtype=cat.dtype.descr + [("class", "i8")])
    for c in COLOURS:
        full[c] = cat[c]
    full["class"] = y
    full["g-r"][::20] = np.nan                     # 30 rows with a missing feature
    np.save(tmp_path / "cat.npy", full)
    return int(np.isnan(full["g-r"]).sum())


def _train(tmp_path, missing):
    return main(["train", "--catalog", str(tmp_path / "cat.npy"), "--features",
                 ",".join(COLOURS), "--label", "class", "--epochs", "1", "--hidden", "4",
                 "--missing", missing, "--out", str(tmp_path / "m.npz"), "--quiet",
                 "--backend", "numpy"])


def test_predict_says_rows_imputed_in_training_are_not_imputed_here(tmp_path, capsys):
    n_missing = _catalog_with_missing(tmp_path)
    assert _train(tmp_path, "impute-median") == 0
    model = fastmlp.load(tmp_path / "m.npz")
    assert model.training_config["missing"] == "impute-median"
    # a model file saved before models stored the medians (FeatureSpec.fill): no fill
    model.set_contract(features=model.features.with_fill(None))
    fastmlp.save(model, tmp_path / "m.npz")
    capsys.readouterr()
    assert _predict(tmp_path, "--label", "class") == 0
    err = capsys.readouterr().err
    assert (f"warning: {n_missing} rows got no prediction, and this model was trained with "
            "--missing impute-median") in err
    assert "are not imputed here" in err and "nor evaluated against --label" in err
    assert "fill their missing features beforehand" in err
    out = np.load(tmp_path / "out.npy")
    assert int((out["label"] == -1).sum()) == n_missing


def test_a_model_trained_dropping_missing_rows_gets_no_imputation_warning(tmp_path, capsys):
    _catalog_with_missing(tmp_path)
    assert _train(tmp_path, "drop") == 0
    assert fastmlp.load(tmp_path / "m.npz").training_config["missing"] == "drop"
    capsys.readouterr()
    assert _predict(tmp_path) == 0
    assert "impute" not in capsys.readouterr().err


def test_the_far_value_warning_counts_the_training_rows_it_names(tmp_path, capsys):
    # it said "of every training row" while judging the whole catalog, test rows included
    rng = np.random.default_rng(1)
    p = tmp_path / "sentinels.csv"
    with open(p, "w") as f:
        f.write("u,g,r,i,z,class\n")
        for k, row in enumerate(rng.normal(20, 0.3, size=(1000, 5))):
            if k % 10 == 0:
                row[1] = 99.0                 # a missing-value sentinel in g
            f.write(",".join(f"{v:.3f}" for v in row) + f",{'QSO' if k % 2 else 'STAR'}\n")
    from fastmlp import cli
    code = cli.main(["train", "--catalog", str(p), "--features", "colors:ugriz", "--label",
                     "class", "--epochs", "1", "--hidden", "4", "--test-fraction", "0.5",
                     "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    line = next(x for x in err.splitlines() if "standard deviations from the training" in x)
    n = int(line.split("warning: ")[1].split()[0])
    assert 0 < n < 100           # about half the 100 sentinel rows train (the catalog: 100)
    assert "every training row" in line
