"""Three small fixes: the --label evaluation line of a regression says overflowed rows
apart from rows with missing features; fit_stream reads a fill= stream with the model's
dtype for the fill rule; the MPI command line gives warnings.showwarning back."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main

BANDS = ["u", "g", "r"]
N = 120


def _overflowing_regressor(path):
    """A float32 regressor whose output bias sits at the edge of float32's range: a row
    that pushes the output up overflows (inf), one that pushes it down stays finite."""
    model = fastmlp.MLP([3, 8, 1], features=",".join(BANDS), loss="mse", seed=3,
                        backend="numpy")
    model.weights[-1][...] *= np.float32(1e33)
    model.biases[-1][...] = np.finfo(np.float32).max
    fastmlp.save(model, path)
    model = fastmlp.load(path)
    model.backend = "numpy"
    return model


def _labelled_catalog(path):
    rng = np.random.default_rng(0)
    cat = np.zeros(N, dtype=[("id", "i8")] + [(b, "f8") for b in BANDS] + [("z", "f8")])
    cat["id"] = np.arange(N)
    for b in BANDS:
        cat[b] = rng.normal(0, 2, N)
    cat["z"] = rng.uniform(0.1, 2.0, N)
    cat["g"][[10, 11]] = np.nan         # two rows with a missing feature
    np.save(path, cat)
    return cat


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_label_line_says_overflow_apart_from_missing_features(tmp_path, capsys):
    model = _overflowing_regressor(tmp_path / "pz.npz")
    cat = _labelled_catalog(tmp_path / "cat.npy")
    with np.errstate(over="ignore", invalid="ignore"):
        want = model.predict(cat)
    n_overflowed = int(np.count_nonzero(~np.isfinite(want))) - 2
    assert n_overflowed >= 10
    assert main(["predict", "--model", str(tmp_path / "pz.npz"), "--catalog",
                 str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"),
                 "--label", "z", "--backend", "numpy", "--chunk-rows", "50"]) == 0
    text = capsys.readouterr()
    lines = [ln for ln in (text.out + text.err).splitlines()
             if "evaluation against --label z" in ln]
    assert len(lines) == 1, text
    line = lines[0]
    assert "missing features, or an output beyond the float range" not in line
    assert f"{n_overflowed} overflowed the float range" in line
    assert "2 with missing features (no prediction)" in line
    assert f"{N - n_overflowed - 2} of {N} rows" in line
