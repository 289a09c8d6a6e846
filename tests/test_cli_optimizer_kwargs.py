"""fastmlp train / cv / sweep --optimizer-kwargs: the optimizer's hyper-parameters other than
the learning rate, from the command line to the optimizer, refused clearly before any work."""

import numpy as np
import pytest

import fastmlp
from fastmlp import cli
from fastmlp.cli import common
from fastmlp.data import make_photometric_catalog
from fastmlp.training import cross_validate


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_data(monkeypatch):
    """Any attempt to load the catalog fails the test: the errors come before the data."""
    def refuse(*a, **k):
        raise AssertionError("the catalog was loaded before the argument was checked")
    for module in ("train", "recipes"):
        monkeypatch.setattr(f"fastmlp.cli.{module}.load_data", refuse)


def test_train_hands_the_settings_to_the_optimizer_and_records_them(capsys, tmp_path):
    out_file = tmp_path / "model.npz"
    code, out, err = run(capsys, "train", "--n-samples", "1500", "--epochs", "1", "--quiet",
                         "--hidden", "8", "--optimizer", "sgd", "--lr", "0.02",
                         "--optimizer-kwargs",
                         "momentum=0.95,nesterov=true,weight_decay=1e-4",
                         "--out", str(out_file))
    assert code == 0, err
    assert "momentum=0.95" in out and "nesterov=True" in out    # the run line says them
    model = fastmlp.load(out_file)
    opt = model.optimizer
    assert (opt.name, opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == \
        ("sgd", 0.02, 0.95, True, 1e-4)
    assert model.training_config["optimizer_kwargs"] == \
        {"momentum": 0.95, "nesterov": True, "weight_decay": 1e-4}


def test_train_takes_a_pair_for_adams_betas(capsys, tmp_path):
    out_file = tmp_path / "model.npz"
    code, out, err = run(capsys, "train", "--n-samples", "1500", "--epochs", "1", "--quiet",
                         "--hidden", "8", "--optimizer-kwargs",
                         "betas=0.8:0.99,amsgrad=true,eps=1e-6", "--out", str(out_file))
    assert code == 0, err
    opt = fastmlp.load(out_file).optimizer
    assert (opt.name, tuple(opt.betas), opt.amsgrad, opt.eps) == \
        ("adam", (0.8, 0.99), True, 1e-6)


def test_train_stream_hands_the_settings_to_the_optimizer(capsys, tmp_path):
    X, y = make_photometric_catalog(1000, seed=0)
    csv = tmp_path / "cat.csv"
    np.savetxt(csv, np.column_stack([X, y]), delimiter=",", comments="",
               header="u-g,g-r,r-i,i-z,label", fmt=["%.6f"] * 4 + ["%d"])
    out_file = tmp_path / "model.npz"
    code, out, err = run(capsys, "train", "--catalog", str(csv), "--stream", "--epochs", "1",
                         "--quiet", "--hidden", "4", "--optimizer", "adagrad",
                         "--optimizer-kwargs", "lr_decay=0.01,initial_accumulator_value=0.1",
                         "--out", str(out_file))
    assert code == 0, err
    model = fastmlp.load(out_file)
    assert (model.optimizer.lr_decay, model.optimizer.initial_accumulator_value) == (0.01, 0.1)
    assert model.training_config["optimizer_kwargs"] == \
        {"lr_decay": 0.01, "initial_accumulator_value": 0.1}


def test_cv_matches_the_python_api_with_the_same_settings(capsys):
    kw = {"momentum": 0.5, "dampening": 0.1}
    code, out, err = run(capsys, "cv", "--n-samples", "800", "--epochs", "2", "--k", "2",
                         "--quiet", "--hidden", "8", "--optimizer", "sgd", "--lr", "0.05",
                         "--serial", "--backend", "numpy",
                         "--optimizer-kwargs", "momentum=0.5,dampening=0.1")
    assert code == 0, err
    X, y = make_photometric_catalog(800, seed=0)

    def make():
        return fastmlp.MLP([4, 8, 1], seed=0)
    res = cross_validate(make, X, y, k=2, seed=0, positive=1, loss="bce", optimizer="sgd",
                         lr=0.05, optimizer_kwargs=kw, batch_size=256, epochs=2,
                         backend="numpy", standardize=True, batched=False)
    without = cross_validate(make, X, y, k=2, seed=0, positive=1, loss="bce", optimizer="sgd",
                             lr=0.05, batch_size=256, epochs=2, backend="numpy",
                             standardize=True, batched=False)
    assert res.mean["log_loss"] != without.mean["log_loss"]    # the settings matter here
    assert f"log_loss {res.mean['log_loss']:.5f}" in out


def test_sweep_passes_the_settings_to_every_learning_rate(capsys, monkeypatch):
    seen = {}
    real = fastmlp.cli.recipes.lr_sweep

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)
    monkeypatch.setattr("fastmlp.cli.recipes.lr_sweep", spy)
    code, out, err = run(capsys, "sweep", "--n-samples", "600", "--iterations", "5",
                         "--quiet", "--hidden", "4", "--lrs", "1e-3,1e-2",
                         "--optimizer", "rmsprop",
                         "--optimizer-kwargs", "alpha=0.9,centered=true")
    assert code == 0, err
    assert seen["optimizer_kwargs"] == {"alpha": 0.9, "centered": True}
    assert "alpha=0.9" in out


@pytest.mark.parametrize("command", ["train", "cv", "sweep"])
def test_unknown_name_is_a_cli_error_naming_flag_and_optimizer(capsys, no_data, command):
    code, out, err = run(capsys, command, "--optimizer", "adam",
                         "--optimizer-kwargs", "momentum=0.9")
    assert code == 2
    assert "--optimizer-kwargs" in err and "adam has no hyper-parameter 'momentum'" in err
    assert "betas" in err                      # what it takes instead


@pytest.mark.parametrize("value", ["momentum", "momentum=fast", "=0.9", "betas=0.9:x"])
def test_bad_syntax_is_refused_by_the_parser(capsys, no_data, value):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--optimizer", "sgd", "--optimizer-kwargs", value])
    assert exc.value.code != 0
    err = capsys.readouterr().err           # the parser's own message, saying what would do
    assert "argument --optimizer-kwargs: " in err and "expected" in err


@pytest.mark.parametrize("argv, said", [
    (["--optimizer", "rmsprop", "--optimizer-kwargs", "alpha=1.5"], "alpha"),
    (["--optimizer", "adam", "--optimizer-kwargs", "betas=0.9"], "betas"),
    (["--optimizer", "sgd", "--optimizer-kwargs", "nesterov=true"], "nesterov"),
    (["--optimizer", "sgd", "--optimizer-kwargs", "nesterov=1"], "nesterov"),
])
def test_bad_values_are_cli_errors_before_any_data(capsys, no_data, argv, said):
    code, out, err = run(capsys, "train", *argv)
    assert code == 2
    assert "--optimizer-kwargs" in err and said in err


def test_lr_inside_the_kwargs_is_refused_pointing_at_lr(capsys, no_data):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--optimizer-kwargs", "lr=0.1"])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "argument --optimizer-kwargs: " in err and "--lr" in err


def test_parsed_types():
    assert common.optimizer_kwargs_arg("nesterov=TRUE, momentum=0.9,betas=0.9:0.99") == \
        {"nesterov": True, "momentum": 0.9, "betas": (0.9, 0.99)}
    assert all(type(v) is float for v in common.optimizer_kwargs_arg("eps=1,alpha=0.5").values())
    assert np.isclose(common.optimizer_kwargs_arg("weight_decay=1e-4")["weight_decay"], 1e-4)
