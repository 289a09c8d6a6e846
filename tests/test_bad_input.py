"""Bad input: the exception type and a message naming the argument and what was expected."""

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, fit


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 3)), rng.integers(0, 2, size=40)


def model(**kw):
    return MLP([3, 4, 1], backend="numpy", **kw)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer or None"),
    (dict(batch_size=-5), ValueError, "batch_size must be a positive integer"),
    (dict(batch_size=2.5), ValueError, "batch_size must be a positive integer"),
    (dict(epochs=0), ValueError, "epochs must be a positive integer, got 0"),
    (dict(lr=0), ValueError, "lr must be a positive number, got 0"),
    (dict(lr=-0.1), ValueError, "lr must be a positive number"),
    (dict(optimizer="adamax"), ValueError,
     "unknown optimizer 'adamax'; expected one of: sgd, adagrad, rmsprop, adam, adamw"),
    (dict(loss="hinge"), ValueError,
     "unknown loss 'hinge'; expected one of: bce, cross_entropy, mse"),
    (dict(schedule="cosinus"), ValueError, "unknown schedule 'cosinus'; expected one of"),
    (dict(schedule=3), ValueError, "schedule must be None, a callable or a spec string"),
    (dict(backend="cuda"), ValueError, "unknown backend 'cuda'; expected one of: auto, numpy"),
    (dict(validation=1.5), ValueError, "validation must be a fraction in"),
    (dict(class_weight="auto"), ValueError, "class_weight must be None, 'balanced' or a dict"),
    (dict(class_weight={5: 1.0}), ValueError, "class_weight key 5 is not a class"),
    (dict(early_stopping=3, validation=None), ValueError,
     "early_stopping needs validation data"),
    (dict(early_stopping=0), ValueError, "early_stopping patience must be a positive integer"),
    (dict(callbacks=[1]), TypeError, "callbacks must be callables"),
    (dict(callbacks=print), TypeError, r"callbacks must be a list of callables .*; pass "
                                       r"\[print\]"),
    (dict(seed=-1), ValueError, "seed must be a non-negative integer or None, got -1"),
    (dict(seed=1.5), ValueError, "seed must be a non-negative integer or None, got 1.5"),
    (dict(seed=True), ValueError, "seed must be a non-negative integer or None, got True"),
    (dict(standardize="yes"), ValueError, "standardize must be True or False, got 'yes'"),
])
def test_fit_argument_errors(data, kwargs, exc, match):
    X, y = data
    with pytest.raises(exc, match=match):
        fit(model(), X, y, progress=False, **kwargs)


def test_nan_and_inf_features_name_count_and_columns(data):
    X, y = data
    X[[1, 2, 7], [0, 2, 2]] = [np.nan, np.inf, -np.inf]
    with pytest.raises(ValueError, match=r"X contains 3 rows with NaN or inf \(columns \[0, 2\]\)"
                                         r".*drop_invalid=True"):
        fit(model(), X, y, progress=False)


@pytest.mark.parametrize("y,match", [
    (np.r_[np.zeros(39), 2], r"y has 1 label outside the classes 0..1 \(e.g. 2.0\)"),
    (np.r_[np.zeros(39), -1], "outside the classes 0..1"),
    (np.r_[np.zeros(39), 0.5], "must hold integer class labels"),
    (np.zeros(39), "X has 40 samples but y has 39"),
    (np.r_[np.zeros(39), np.nan], "y contains 1 NaN or inf value$"),
    (np.array(["a"] * 40), "y must hold numbers"),
])
def test_bad_labels(data, y, match):
    X, _ = data
    with pytest.raises((ValueError, TypeError), match=match):
        fit(model(), X, y, progress=False)


def test_cross_entropy_labels_beyond_outputs(data):
    X, _ = data
    y = np.arange(40) % 4
    with pytest.raises(ValueError, match="outside the classes 0..2.*3 outputs"):
        fit(MLP([3, 4, 3], backend="numpy"), X, y, progress=False)


def test_shape_errors(data):
    X, y = data
    with pytest.raises(ValueError, match="X has 2 feature columns, the model expects 3"):
        fit(model(), X[:, :2], y, progress=False)
    with pytest.raises(ValueError, match=r"X must be 2-D \(n_samples, n_features\)"):
        model().forward(np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match="X is empty"):
        fit(model(), np.ones((0, 3)), np.zeros(0), progress=False)
    with pytest.raises(ValueError, match=r"y for loss='mse' must have shape \(40,\) or \(40, 1\)"):
        fit(model(), X, np.ones((40, 2)), loss="mse", progress=False)
    with pytest.raises(ValueError, match=r"loss='bce' with 2 outputs \(multilabel\) must be "
                                         r"a 0/1 indicator matrix of shape \(40, 2\)"):
        MLP([3, 2]).loss_and_grad(X, y, loss="bce")
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        model().loss_and_grad(X, y, sample_weight=np.ones(3))
    with pytest.raises(TypeError, match="model must be a fastmlp.MLP"):
        fit("mlp", X, y)


@pytest.mark.parametrize("args,kw,match", [
    (([4],), {}, "layer_sizes must be a sequence of at least two positive integers"),
    (([4, 0, 1],), {}, "layer_sizes must be"),
    (([4, 2.5, 1],), {}, "layer_sizes must be"),
    (([4, 1],), dict(activation="swish"), "unknown activation 'swish'; expected one of: "
                                          "identity, relu"),
    (([4, 1],), dict(dtype="float16"), "dtype must be 'float32' or 'float64'"),
])
def test_model_construction_errors(args, kw, match):
    with pytest.raises(ValueError, match=match):
        MLP(*args, **kw)


def test_backend_errors():
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        fastmlp.set_backend("gpu")
    with pytest.raises(ValueError, match="n_threads must be a positive integer"):
        fastmlp.set_num_threads(0)


def test_diverging_schedule_value(data):
    X, y = data
    with pytest.raises(ValueError, match="schedule returned an invalid learning rate"):
        fit(model(), X, y, schedule=lambda t: -1.0, progress=False)
