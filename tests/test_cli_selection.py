"""fastmlp train's sample-selection options (issue 17): a probability cut chosen on the
validation split for a target contamination or completeness and stored in the model,
temperature calibration, completeness / purity per bin of a column, photometric redshifts;
fastmlp predict applies the stored cut and --threshold overrides it."""

import re

import numpy as np
import pytest

import fastmlp
from fastmlp import cli, metrics
from fastmlp.data import make_photometric_catalog
from fastmlp.training import stratified_split

N = 6000


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _validation_rows(y, seed=0, test_fraction=0.2, validation=0.1):
    """The rows train uses to choose the cut: the same two stratified splits, same seed."""
    rng = np.random.default_rng(seed)
    tr, te = stratified_split(y, test_fraction, rng)
    _, va = stratified_split(y[tr], validation, rng)
    return tr[va], te


@pytest.mark.parametrize("flag, target", [("--max-contamination", 0.05),
                                          ("--min-completeness", 0.9)])
def test_the_stored_cut_reproduces_the_target_on_the_validation_set(capsys, tmp_path, flag,
                                                                       target):
    path = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--n-samples", N, "--epochs", 4, "--lr", 0.01,
                         "--hidden", "16", "--quiet", flag, target, "--out", path)
    assert code == 0, err
    model = fastmlp.load(path)
    assert model.threshold is not None and model.positive == 1
    X, y = make_photometric_catalog(N, seed=0)
    va, te = _validation_rows(y)
    pred = model.predict(X[va])
    np.testing.assert_array_equal(pred, (model.predict_proba(X[va])[:, 1] >= model.threshold))
    compl = metrics.completeness(y[va], pred, 1)
    contam = metrics.contamination(y[va], pred, 1)
    if flag == "--max-contamination":
        assert contam <= target
    else:
        assert compl >= target
    reported = re.search(r"cut chosen on the validation set \(n=(\d+)\): P\(quasar\) >= "
                         r"([\d.e-]+) gives completeness ([\d.]+), contamination ([\d.]+)", out)
    assert int(reported.group(1)) == va.size
    assert float(reported.group(3)) == pytest.approx(compl, abs=6e-5)
    assert float(reported.group(4)) == pytest.approx(contam, abs=6e-5)
    # the test set is judged with that cut, chosen beforehand
    assert "(chosen beforehand)" in out and "best cut on P(quasar)" not in out


def test_calibrate_stores_a_temperature(capsys, tmp_path):
    path = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--n-samples", N, "--epochs", 3, "--hidden", "16",
                         "--quiet", "--calibrate", "--out", path, "--calibration-plot",
                         tmp_path / "rel.png")
    assert code == 0, err
    t = float(re.search(r"temperature ([\d.]+);", out).group(1))
    model = fastmlp.load(path)
    assert model.temperature == pytest.approx(t, rel=1e-3) and model.temperature != 1.0
    assert "calibration on the test set: Brier" in out
    assert (tmp_path / "rel.png").stat().st_size > 10_000


def test_bin_by_prints_a_table_and_plots(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--n-samples", N, "--epochs", 2, "--hidden", "8",
                         "--quiet", "--bin-by", "r", "--bins", 4, "--bin-plot",
                         tmp_path / "bins.png")
    assert code == 0, err
    rows = re.findall(r"^\s+\[[\d.]+, [\d.]+[)\]]\s+(\d+)\s+(\d+)", out, re.M)
    assert len(rows) == 4
    # the test set's quasars within the bins (equal width over the central 99 % of r)
    cat = make_photometric_catalog(N, seed=0)
    _, te = _validation_rows(cat.y)
    r = cat.extra["r"][te]
    edges = metrics.bulk_bin_edges(r, 4)
    inside = (r >= edges[0]) & (r <= edges[-1])
    assert sum(int(a) for a, _ in rows) == int(np.sum(inside & (cat.y[te] == 1)))
    assert f"({int(np.sum(~inside))} rows outside the bins" in out
    assert (tmp_path / "bins.png").stat().st_size > 10_000
    code, out, err = run(capsys, "train", "--n-samples", 500, "--epochs", 1, "--quiet",
                         "--bin-by", "nope")
    assert code == 2 and "--bin-by nope" in err


def test_option_conflicts_are_refused(capsys):
    code, _, err = run(capsys, "train", "--max-contamination", 0.05, "--min-completeness", 0.9)
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "train", "--calibrate", "--validation", 0)
    assert code == 2 and "--validation > 0" in err
    code, _, err = run(capsys, "train", "--bin-plot", "b.png")
    assert code == 2 and "--bin-plot b.png draws the --bin-by table" in err
    code, _, err = run(capsys, "train", "--stream", "--calibration-plot", "c.png")
    assert code == 2 and "--calibration-plot" in err and "--stream" in err


def _redshift_csv(path, n=3000):
    cat = make_photometric_catalog(n, seed=2)
    z = cat.extra["redshift"]
    with open(path, "w") as f:
        f.write("u-g,g-r,r-i,i-z,redshift\n")
        for row, zz in zip(cat.X, z):
            f.write(",".join(f"{v:.5f}" for v in row) + f",{zz:.5f}\n")
    return z


def test_photometric_redshift_with_log1p_target(capsys, tmp_path):
    csv = tmp_path / "z.csv"
    _redshift_csv(csv)
    path, png = tmp_path / "pz.npz", tmp_path / "pz.png"
    code, out, err = run(capsys, "train", "--catalog", csv, "--label", "redshift", "--task",
                         "regression", "--log1p-target", "--epochs", 3, "--quiet", "--out",
                         path, "--plot", png)
    assert code == 0, err
    assert "on log(1 + y)" in out
    for text in ("sigma_NMAD", "outlier fraction", "bias", "RMSE"):
        assert text in out
    model = fastmlp.load(path)
    assert model.target_transform == "log1p"
    X = np.loadtxt(csv, delimiter=",", skiprows=1)
    z_net = model.decision_function(X[:, :4])[:, 0]
    np.testing.assert_allclose(model.predict(X[:, :4]), np.expm1(z_net), rtol=1e-6)
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("option", [["--max-contamination", "0.1"], ["--min-completeness", "0.9"],
                                    ["--calibrate"], ["--calibration-plot", "c.png"],
                                    ["--bin-by", "g-r"], ["--class-weight", "balanced"]])
def test_regression_refuses_classification_options_before_training(capsys, tmp_path, option,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    _redshift_csv(tmp_path / "z.csv", n=300)
    base = ["train", "--catalog", "z.csv", "--label", "redshift", "--epochs", 1, "--quiet",
            "--out", "m.npz"]
    for task, why in (([], "the label column 'redshift' holds non-integer values"),
                      (["--task", "regression"], "--task regression asks for a regression"),
                      (["--log1p-target"], "--log1p-target asks for a regression")):
        code, out, err = run(capsys, *base, *task, *option)
        assert code == 2 and err.startswith(f"fastmlp: error: {option[0]} applies to "
                                            f"classification, and {why}"), err
        assert "trained" not in out and not list(tmp_path.glob("*.npz")) + \
            list(tmp_path.glob("*.png"))
    code, out, err = run(capsys, *base, "--task", "regression", "--calibrate", "--bin-by", "g-r")
    assert code == 2 and "--calibrate, --bin-by apply to classification" in err


def test_predict_applies_the_stored_cut_and_threshold_overrides_it(capsys, tmp_path):
    path = tmp_path / "m.npz"
    assert run(capsys, "train", "--n-samples", N, "--epochs", 4, "--lr", 0.01, "--hidden",
               "16", "--quiet", "--max-contamination", 0.1, "--out", path)[0] == 0
    X, y = make_photometric_catalog(2000, seed=9)
    src = tmp_path / "c.npy"
    rec = np.zeros(len(y), dtype=[(n, "f4") for n in ("u-g", "g-r", "r-i", "i-z")])
    for k, n in enumerate(rec.dtype.names):
        rec[n] = X[:, k]
    np.save(src, rec)
    model = fastmlp.load(path)
    p = model.predict_proba(X)[:, 1]
    for extra, cut in (((), model.threshold), (("--threshold", 0.5), 0.5)):
        out = tmp_path / f"p{len(extra)}.npy"
        code, text, err = run(capsys, "predict", "--model", path, "--catalog", src, "--out",
                              out, "--quiet", *extra)
        assert code == 0, err
        lab = np.load(out)["label"]
        np.testing.assert_array_equal(lab, (p >= cut).astype(int))


def test_export_writes_onnx_and_c_files_with_the_contract(capsys, tmp_path):
    path = tmp_path / "m.npz"
    assert run(capsys, "train", "--n-samples", 2000, "--epochs", 1, "--hidden", 8, "--quiet",
               "--out", path)[0] == 0
    code, out, err = run(capsys, "export", "--model", path, "--onnx", tmp_path / "m.onnx",
                         "--c", tmp_path / "m.fmlp")
    assert code == 0, err
    # the header it points at is the installed one (an installed fastmlp has no csrc/)
    assert "csrc/" not in out and "python -m fastmlp.c_config --cflags" in out
    from fastmlp.io import read_c_model
    model = fastmlp.load(path)
    back = read_c_model(tmp_path / "m.fmlp")
    np.testing.assert_array_equal(back.params, model.params)
    assert back.feature_names == model.feature_names and back.class_names == model.class_names
    assert (tmp_path / "m.onnx").stat().st_size > 1000
    code, _, err = run(capsys, "export", "--model", path, "--c", path)
    assert code == 2 and "same file as the input" in err
    code, _, err = run(capsys, "export", "--model", path)
    assert code == 2 and "--onnx" in err


def test_export_refuses_one_path_for_both_files(capsys, tmp_path, monkeypatch):
    fastmlp.save(fastmlp.MLP([4, 4, 1], seed=0), tmp_path / "m.npz")
    monkeypatch.chdir(tmp_path)
    for c in ("same.x", str(tmp_path / "same.x")):          # also through another spelling
        code, _, err = run(capsys, "export", "--model", "m.npz", "--onnx", "same.x", "--c", c)
        assert code == 2 and err.startswith("fastmlp: error: --onnx same.x and --c ")
        assert "are the same file" in err and not (tmp_path / "same.x").exists()


def test_sweep_warns_when_the_best_lr_is_at_the_edge_of_the_grid(capsys):
    code, out, err = run(capsys, "sweep", "--n-samples", 3000, "--iterations", 30, "--lrs",
                         "1e-5,1e-4", "--hidden", 8, "--quiet")
    assert code == 0, err
    assert "warning: the chosen lr 0.0001 is the largest of the grid" in out


def test_cv_names_the_class(capsys):
    code, out, err = run(capsys, "cv", "--n-samples", 600, "--k", 2, "--epochs", 1,
                         "--hidden", 4, "--lr", 1e-5, "--quiet")
    assert code == 0, err
    assert "completeness and contamination of quasar" in out
    rows = [ln for ln in out.splitlines() if re.match(r"^\s+\d+\s", ln)]
    assert len(rows) == 2 and all(len(r.split()) == 6 for r in rows)


@pytest.mark.parametrize("command", [
    ("sweep", "--iterations", 40, "--lrs", "1e-3,1e-2,1e-1"),
    ("cv", "--k", 3, "--epochs", 1),
    ("compare-optimizers", "--iterations", 40),
])
def test_batched_recipes_print_what_the_serial_ones_print(capsys, command):
    """sweep / cv / compare-optimizers train their candidates in one batched pass by
    default; --serial gives the same table."""
    common = ("--n-samples", 3000, "--hidden", 8, "--quiet")
    code, batched, err = run(capsys, *command, *common)
    assert code == 0, err
    code, serial, err = run(capsys, *command, *common, "--serial")
    assert code == 0, err

    def table(text):                 # everything but the timings
        return re.sub(r"\d+\.\d+ s\)", "", text)
    assert table(batched) == table(serial)


def _dr17_like_csv(path, n=3000):
    """u, g, r, i, z, class (GALAXY / QSO / STAR) and redshift from the synthetic catalog."""
    cat = make_photometric_catalog(n, galaxy_fraction=0.3, seed=4)
    names = np.array(["STAR", "QSO", "GALAXY"])
    with open(path, "w") as f:
        f.write("u,g,r,i,z,class,redshift\n")
        for k in range(n):
            f.write(",".join(f"{cat.extra[b][k]:.5f}" for b in "ugriz")
                    + f",{names[cat.y[k]]},{cat.extra['redshift'][k]:.5f}\n")
    return cat


def test_where_selects_rows_for_train_and_cv(capsys, tmp_path):
    """--where "class == 'QSO' and r < 21": photo-z trained on bright quasars only."""
    csv = tmp_path / "c.csv"
    cat = _dr17_like_csv(csv)
    want = int(((cat.y == 1) & (cat.extra["r"] < 21)).sum())
    code, out, err = run(capsys, "train", "--catalog", csv, "--features", "colors:ugriz",
                         "--label", "redshift", "--where", "class == 'QSO' and r < 21",
                         "--epochs", 1, "--quiet")
    assert code == 0, err
    assert f": {want} rows (regression target 'redshift')" in out
    code, out, err = run(capsys, "cv", "--catalog", csv, "--features", "colors:ugriz",
                         "--label", "class", "--where", "r < 21", "--k", 2, "--epochs", 1,
                         "--quiet")
    assert code == 0, err
    assert f": {int((cat.extra['r'] < 21).sum())} rows" in out
    code, _, err = run(capsys, "train", "--catalog", csv, "--label", "class", "--where",
                       "__import__('os')")
    assert code == 2 and "where" in err


def test_output_paths_and_columns_are_checked_before_training(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["train", "--n-samples", 300, "--epochs", 1, "--quiet"]
    for argv, msg in (
            (["--plot", "x.txt"], "--plot x.txt: cannot draw a figure as .txt"),
            (["--bin-by", "r", "--bin-plot", "b.txt"], "--bin-plot b.txt: cannot draw"),
            (["--plot", "a.png", "--bin-by", "r", "--bin-plot", "a.png"],
             "--bin-plot a.png is the same file as --plot a.png; one would overwrite"),
            (["--plot", "a.png", "--calibration-plot", str(tmp_path / "a.png")],
             "--calibration-plot " + str(tmp_path / "a.png") + " is the same file as --plot"),
            (["--out", "m.png", "--plot", "m.png"], "--plot m.png is the same file as --out"),
            (["--out", "m.npz", "--checkpoint", "m.npz"],
             "--checkpoint m.npz is the same file as --out m.npz"),
            (["--bin-by", "nope"], "--bin-by nope: no such column")):
        code, out, err = run(capsys, *base, *argv)
        assert code == 2 and err.startswith("fastmlp: error: " + msg), err
        assert "trained" not in out and not list(tmp_path.iterdir())
    csv = tmp_path / "z.csv"
    _redshift_csv(csv, n=300)
    code, out, err = run(capsys, *base, "--catalog", csv, "--label", "redshift", "--bin-by",
                         "nope")
    assert code == 2 and err.startswith(f"fastmlp: error: --bin-by nope: no such column in "
                                        f"{csv}; available columns: ['u-g',")
    code, out, err = run(capsys, *base)
    assert code == 0 and "1 epoch in" in out and "1 epochs" not in out
