"""Review fixes: the impute-median warning counts only rows with missing features, a sign
after a where keyword is not glued to a column name, the scikit-learn messages spell
compute_class_weight's use and the activation as scikit-learn does, and a Dask fit whose
schedule-length warning raises releases its shards."""

import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from fastmlp.data.formats import Where


def _csv(path, rows):
    path.write_text("a,b,label\n" + "\n".join(",".join(str(v) for v in r) for r in rows))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_impute_median_warning_counts_missing_features_not_overflowed_outputs(tmp_path,
                                                                             capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] > 0).astype(int)
    X[3, 1] = -9999
    _csv(tmp_path / "train.csv", [(a, b, c) for (a, b), c in zip(X, y)])
    assert main(["train", "--catalog", str(tmp_path / "train.csv"), "--missing",
                 "impute-median", "--epochs", "1", "--quiet", "--hidden", "4", "--out",
                 str(tmp_path / "m.npz"), "--backend", "numpy"]) == 0
    model = fastmlp.load(tmp_path / "m.npz")
    # a network whose hidden units all overflow to inf on huge inputs, and whose output then
    # adds inf and -inf (NaN): those rows' output is beyond the float range
    model.weights[0][:] = 1.0
    model.weights[1][:] = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    for b in model.biases:
        b[:] = 0.0
    # a model saved before the training medians were stored (no fill values): predict can
    # only warn about the rows training imputed
    model.set_contract(features=model.features.with_fill(None))
    fastmlp.save(model, tmp_path / "m.npz", training_config=model.training_config)
    huge = float(np.finfo(model.dtype).max)
    rows = [(0.1, 0.2, 1), (0.3, -9999, 0), (huge, huge, 1), (huge, huge, 0), (0.5, 0.5, 1)]
    _csv(tmp_path / "p.csv", rows)
    capsys.readouterr()
    assert main(["predict", "--model", str(tmp_path / "m.npz"), "--catalog",
                 str(tmp_path / "p.csv"), "--out", str(tmp_path / "out.npy"), "--quiet",
                 "--backend", "numpy"]) == 0
    out, err = capsys.readouterr()
    assert (~np.load(tmp_path / "out.npy")["valid"]).sum() == 3
    # the summary counts every row without a prediction, with both causes
    assert "3 rows got no prediction (missing features, or an output beyond the float " \
        "range)" in out
    # the imputation warning only the one with a missing feature: imputing would not
    # have given the two overflowed rows a prediction
    assert "warning: 1 row got no prediction, and this model was trained with --missing " \
        "impute-median" in err


@pytest.mark.parametrize("text, signed", [
    ("r < 21 and -g < 1", "-g"), ("not -x > 1", "-x"), ("r < 1 or + y > 2", "+y"),
    ("-g < 1", "-g"), ("r < -g", "-g"),
])
def test_a_sign_after_a_where_keyword_is_not_glued_to_a_column_name(text, signed):
    """'and -g' was told "cannot read the column 'and-g'" with the hint `and-g`: the
    keywords and / or / not are never a column name; -g is a negated column, which the
    filter (no arithmetic) cannot read."""
    with pytest.raises(ValueError) as info:
        Where(text)
    msg = str(info.value)
    assert f"cannot read {signed!r}: a sign goes only before a number" in msg
    assert "does no arithmetic" in msg
    for word in ("and", "or", "not"):
        assert f"{word}-" not in msg and f"{word}+" not in msg


def _sk_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    return X, y


def test_balanced_partial_fit_refusal_advises_code_that_gives_a_dict():
    """compute_class_weight returns an array, not the {label: weight} dict class_weight
    takes: the advice is the expression that makes one, and it runs as written."""
    pytest.importorskip("sklearn")
    from sklearn.utils.class_weight import compute_class_weight
    from fastmlp.sklearn import MLPClassifier
    X, y = _sk_data()
    est = MLPClassifier(class_weight="balanced", hidden_layer_sizes=(4,), max_iter=2)
    with pytest.raises(AttributeError) as info:
        est.partial_fit(X, y, classes=[0, 1, 2])
    msg = str(info.value.__cause__)
    code = "dict(zip(classes, compute_class_weight('balanced', classes=classes, y=y)))"
    assert code in msg
    classes = np.array([0, 1, 2])
    weights = eval(code, {"compute_class_weight": compute_class_weight, "zip": zip,
                          "dict": dict, "classes": classes, "y": y})
    assert isinstance(weights, dict) and sorted(weights) == [0, 1, 2]
    MLPClassifier(class_weight=weights, hidden_layer_sizes=(4,)).partial_fit(X, y, classes=classes)


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer:Warning")
@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_continued_fit_refusal_names_the_activation_as_scikit_learn_does(how):
    """Fitted with activation='logistic', the refusal said "the fitted network's
    'sigmoid'", fastmlp's name the user never wrote."""
    pytest.importorskip("sklearn")
    from fastmlp.sklearn import MLPClassifier
    X, y = _sk_data()
    est = MLPClassifier(activation="logistic", hidden_layer_sizes=(4,), max_iter=2,
                        warm_start=how == "warm_start", solver="adam").fit(X, y)
    est.set_params(activation="tanh")
    go_on = est.fit if how == "warm_start" else est.partial_fit
    with pytest.raises(ValueError, match=r"activation='tanh' differs from the fitted "
                                         r"network's 'logistic'"):
        go_on(X, y)


def test_dask_fit_releases_its_shards_when_the_length_warning_raises(client, monkeypatch):
    """Under -W error the schedule-length warning raised after the shards were submitted
    and outside the try that releases them: the shard futures stayed on the cluster."""
    pytest.importorskip("distributed")
    from fastmlp.distributed import dask as fd
    released = []
    real = fd._Rounds.release

    def spy(self):
        released.append(self)
        real(self)
    monkeypatch.setattr(fd._Rounds, "release", spy)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 4)), rng.integers(0, 2, 200).astype(float)
    model = fastmlp.MLP([4, 8, 1], seed=0, dtype="float64", backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastmlp.schedules.ScheduleWarning)
        with pytest.raises(fastmlp.schedules.ScheduleWarning, match="T=5000 is longer"):
            fd.fit(model, X, y, client=client, epochs=1, batch_size=50,
                   schedule="cosine:T=5000", progress=False)
    assert len(released) == 1
