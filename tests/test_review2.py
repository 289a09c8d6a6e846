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


