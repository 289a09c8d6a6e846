"""The guards every writer and every resume share: fastmlp.atomic.refuse_overwrite (a run
never overwrites its own input, nor one output another) and the run identity's comparison
(column statistics summed in another order agree; another value does not)."""
import os

import pytest

from fastmlp.atomic import refuse_overwrite
from fastmlp.training.checkpoint import refuse_another_run


def test_refuse_overwrite_names_the_input_through_aliases(tmp_path):
    src = tmp_path / "cat.npy"
    src.write_bytes(b"x")
    link, hard = tmp_path / "link.npy", tmp_path / "hard.npy"
    os.symlink(src, link)
    os.link(src, hard)
    for out in (src, link, hard, tmp_path / "." / "cat.npy"):
        with pytest.raises(ValueError, match=r"checkpoint .* same file as the input"):
            refuse_overwrite(out, [src], "checkpoint")
    refuse_overwrite(tmp_path / "other.npz", [src], "checkpoint")      # a new file: fine
    refuse_overwrite(None, [src], "checkpoint")                        # no output: fine


def test_refuse_overwrite_names_the_other_output(tmp_path):
    with pytest.raises(ValueError, match=r"save .*m\.npz is the same file as checkpoint"):
        refuse_overwrite(tmp_path / "m.npz", [], "save",
                         [("checkpoint", tmp_path / "m.npz")])
    refuse_overwrite(tmp_path / "m.npz", [True, None], "save", [("checkpoint", None)])


def test_run_identity_agrees_to_the_last_bits_only():
    saved = {"column_mean": [0.44964065660694175, 1.0], "ranks": 2, "stats": {"a": [2.5]}}
    same = {"column_mean": [0.4496406566069418, 1.0], "ranks": 2, "stats": {"a": [2.5]}}
    refuse_another_run("ck.npz", saved, same)
    moved = {**same, "column_mean": [0.4496406566069418 * (1 + 1e-9), 1.0]}
    with pytest.raises(ValueError, match="column_mean"):
        refuse_another_run("ck.npz", saved, moved)
    with pytest.raises(ValueError, match=r"ranks: checkpoint 2, now 1\)") as err:
        refuse_another_run("ck.npz", saved, {**same, "ranks": 1})
    assert "column_mean" not in str(err.value)
    with pytest.raises(ValueError, match="stats"):
        refuse_another_run("ck.npz", saved, {**same, "stats": {"a": [2.5], "b": 1}})
    with pytest.raises(ValueError, match="ranks"):
        refuse_another_run("ck.npz", saved, {**same, "ranks": 2.0000001})
    # a mean near 0 beside entries of 1, summed in another order, changes in its last bits
    refuse_another_run("ck.npz", {"column_mean": [1e-17, 1.0]}, {"column_mean": [-2e-17, 1.0]})
    with pytest.raises(ValueError, match="column_mean"):
        refuse_another_run("ck.npz", {"column_mean": [1e-3, 1.0]}, {"column_mean": [-1e-3, 1.0]})


def test_fit_validation_zero_holds_nothing_out_as_the_cli_and_mpi_do():
    import numpy as np
    import fastmlp
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    runs = []
    for v in (0, 0.0, np.float32(0), None):
        m = fastmlp.MLP([3, 4, 1], seed=1)
        h = fastmlp.fit(m, X, y, epochs=2, validation=v, progress=False, backend="numpy")
        runs.append((m.params.copy(), h.val_loss))
    for params, val_loss in runs:
        np.testing.assert_array_equal(params, runs[-1][0])
        assert not val_loss
    for bad in (True, -0.1, 1, 1.0):
        with pytest.raises(ValueError, match=r"validation must be a fraction in \[0, 1\) "
                                             r"\(0: none\)"):
            fastmlp.fit(fastmlp.MLP([3, 4, 1]), X, y, validation=bad, progress=False)


def test_fit_stream_validation_zero_holds_nothing_out(tmp_path):
    import numpy as np
    import fastmlp
    cat = fastmlp.make_photometric_catalog(500, seed=2)
    table = np.zeros(500, dtype=[("u-g", "f8"), ("g-r", "f8"), ("label", "i8")])
    table["u-g"], table["g-r"], table["label"] = cat.X[:, 0], cat.X[:, 1], cat.y
    np.save(tmp_path / "c.npy", table)
    runs = []
    for v in (0, None):
        m = fastmlp.MLP([2, 4, 1], seed=1)
        fastmlp.fit_stream(m, tmp_path / "c.npy", features="u-g,g-r", label="label",
                           epochs=1, validation=v, progress=False, backend="numpy")
        runs.append(m.params.copy())
    np.testing.assert_array_equal(runs[0], runs[1])
