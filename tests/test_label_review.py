"""What a label column that does not fit a regression is told, and what else the review of
the label-names changes found: a column of numbers with one stray text ('n/a') is named with
that value and its data row (in memory, streamed, fit_stream, predict), not called class
names; --task classification with --log1p-target is the conflict it is; a colour of the
label column is refused streamed as in memory; a FITS note lists a multilabel model's
renamed label_ columns; the distributed missing-values message names text only for text
labels."""

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, fit_stream
from fastmlp.cli import main
from fastmlp.data import CatalogStream

N = 120
STRAY_AT = 83                   # 0-based: data row 84
STRAY_ROW = STRAY_AT + 1
WHERE = f"(first 'n/a' in data row {STRAY_ROW})"


def _redshifts(tmp_path, stray="n/a", name="z.csv"):
    """u g r i z and a redshift column of numbers, ``stray`` in data row STRAY_AT + 1."""
    rng = np.random.default_rng(4)
    mags = rng.normal(19.0, 1.0, (N, 5))
    z = [f"{v:.4f}" for v in rng.uniform(0.0, 2.0, N)]
    z[STRAY_AT] = stray
    path = tmp_path / name
    with open(path, "w") as f:
        f.write("u,g,r,i,z,redshift\n")
        for row, t in zip(mags, z):
            f.write(",".join(f"{v:.4f}" for v in row) + f",{t}\n")
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _names_the_stray(text):
    assert WHERE in text, text
    assert "holds text" not in text and "--task classification" not in text, text
    assert "mark it missing" in text, text


# -- a stray text among numbers ---------------------------------------------------------------
@pytest.mark.parametrize("flags", [["--task", "regression"], ["--log1p-target"]])
def test_cli_in_memory_names_a_stray_text_and_its_row(capsys, tmp_path, flags):
    path = _redshifts(tmp_path)
    out_model = tmp_path / "m.npz"
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "colors:ugriz",
                          "--label", "redshift", *flags, "--epochs", 1, "--quiet",
                          "--out", out_model)
    assert code == 2 and "1 non-numeric value " + WHERE in err, err
    _names_the_stray(err)
    assert "--missing drop" in err and not out_model.exists()
    # the advice holds: the row marked missing and --missing drop trains
    fixed = _redshifts(tmp_path, stray="", name="fixed.csv")
    code, out, err = _run(capsys, "train", "--catalog", fixed, "--features", "colors:ugriz",
                          "--label", "redshift", *flags, "--missing", "drop", "--epochs", 1,
                          "--quiet", "--validation", 0.2, "--out", out_model)
    assert code == 0, err


@pytest.mark.parametrize("chunk_rows", [1000, 50])
def test_cli_stream_names_a_stray_text_and_its_row(capsys, tmp_path, chunk_rows):
    """One chunk: the scan took the column for names; several: it said only 'mixes names and
    numbers'."""
    path = _redshifts(tmp_path)
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "colors:ugriz",
                          "--label", "redshift", "--task", "regression", "--stream",
                          "--chunk-rows", chunk_rows, "--epochs", 1, "--quiet",
                          "--out", tmp_path / "m.npz")
    assert code == 2, err
    _names_the_stray(err)


@pytest.mark.parametrize("chunk_rows, scanned", [(1000, False), (1000, True), (50, False),
                                                 (30, False)])
def test_fit_stream_regression_names_a_stray_text_and_its_row(tmp_path, chunk_rows, scanned):
    """Scanned in one chunk, the column was taken for names; fit_stream's own scan of several
    chunks said only 'mixes names and numbers'."""
    source = CatalogStream(_redshifts(tmp_path), features="colors:ugriz", label="redshift",
                           chunk_rows=chunk_rows)
    with pytest.raises(ValueError) as info:
        if scanned:         # the scan refuses it already (tests/test_stray_auto.py)
            source.scan()
        fit_stream(MLP([4, 8, 1], loss="mse"), source, epochs=1, progress=False)
    _names_the_stray(str(info.value))


def test_use_targets_before_the_scan_names_a_stray_text_and_its_row(tmp_path):
    source = CatalogStream(_redshifts(tmp_path), features="colors:ugriz", label="redshift",
                           chunk_rows=1000).use_targets()
    with pytest.raises(ValueError) as info:
        source.scan()
    _names_the_stray(str(info.value))


def test_predict_of_a_regression_names_a_stray_text_and_its_row(capsys, tmp_path):
    path = _redshifts(tmp_path, stray="-")
    model_path = tmp_path / "r.npz"
    fastmlp.save(MLP([4, 3, 1], loss="mse", features="colors:ugriz"), model_path)
    out = tmp_path / "p.csv"
    code, so, se = _run(capsys, "predict", "--model", model_path, "--catalog", path,
                        "--label", "redshift", "--out", out, "--quiet")
    assert code == 2 and f"(first '-' in data row {STRAY_ROW})" in se, se
    assert "holds text" not in se and "--label" in se and not out.exists()



@pytest.mark.parametrize("stream", [[], ["--stream"]])
def test_class_names_with_a_number_among_them_keep_the_text_label_message(capsys, tmp_path,
                                                                          stream):
    """A column of names with one number among them is still names, and the example shown is
    a name (it was the first name sorted: the number '7')."""
    path = tmp_path / "c.csv"
    rng = np.random.default_rng(1)
    with open(path, "w") as f:
        f.write("u,g,r,i,z,class\n")
        for k in range(N):
            c = "7" if k == 5 else ("STAR", "QSO")[k % 2]
            f.write(",".join(f"{v:.4f}" for v in rng.normal(19, 1, 5)) + f",{c}\n")
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "colors:ugriz",
                          "--label", "class", "--task", "regression", *stream, "--epochs", 1,
                          "--quiet", "--out", tmp_path / "m.npz")
    assert code == 2 and "holds text (e.g. 'QSO')" in err, err
    assert "--task classification" in err and "data row" not in err


# -- options that conflict ------------------------------------------------------------------
def test_log1p_target_with_task_classification_is_the_conflict(capsys, tmp_path):
    path = tmp_path / "c.csv"
    rng = np.random.default_rng(2)
    with open(path, "w") as f:
        f.write("u,g,r,i,z,class\n")
        for k in range(N):
            f.write(",".join(f"{v:.4f}" for v in rng.normal(19, 1, 5))
                    + f",{('STAR', 'QSO')[k % 2]}\n")
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "colors:ugriz",
                          "--label", "class", "--task", "classification", "--log1p-target",
                          "--epochs", 1, "--quiet", "--out", tmp_path / "m.npz")
    assert code == 2 and "--log1p-target applies to regression targets" in err, err
    assert "regression needs numeric targets" not in err


# -- the label among the inputs -------------------------------------------------------------
def test_a_stream_refuses_a_colour_of_the_label_column(tmp_path):
    path = _redshifts(tmp_path, stray="0.5")
    with pytest.raises(ValueError, match=r"features \['i-z'\] read the label column 'z'"):
        CatalogStream(path, features="colors:ugriz", label="z")


def test_cli_stream_refuses_a_colour_of_the_label_column(capsys, tmp_path):
    path = _redshifts(tmp_path, stray="0.5")
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "colors:ugriz",
                          "--label", "z", "--stream", "--epochs", 1, "--quiet",
                          "--out", tmp_path / "m.npz")
    assert code == 2 and "features ['i-z'] read the label column 'z'" in err, err
    assert not (tmp_path / "m.npz").exists()


# -- FITS names -----------------------------------------------------------------------------
def test_fits_note_lists_a_multilabel_models_renamed_label_columns(capsys, tmp_path):
    pytest.importorskip("astropy.io.fits")
    path = _redshifts(tmp_path, stray="0.5")
    model = MLP([4, 5, 3], activation="tanh", loss="bce", features="colors:ugriz",
                class_names=("A", "a", "b"), seed=3)
    fastmlp.save(model, tmp_path / "m.npz")
    code, out, err = _run(capsys, "predict", "--model", tmp_path / "m.npz", "--catalog", path,
                          "--out", tmp_path / "p.fits")
    assert code == 0, err
    note = [line for line in out.splitlines() if "case-insensitive" in line]
    assert len(note) == 1 and "p_A_0, p_a_1, label_A_0, label_a_1" in note[0], out
    assert "keep p_<class> and label_<class>" in note[0]


def test_fits_name_clash_is_the_one_rule():
    from fastmlp.data.writers import fits_name_clash
    assert fits_name_clash(["row", "p_QSO", "p_star", "p_qso"]) == ("p_QSO", "p_qso")
    assert fits_name_clash(["p_star_1", "x", "p_star_1"]) == ("p_star_1", "p_star_1")
    assert fits_name_clash(["p_STAR_0", "p_star_2", "label"]) is None


# -- the distributed missing-values message -------------------------------------------------
def test_missing_values_message_names_text_only_for_text_labels():
    from fastmlp.distributed._common import apply_missing
    X, invalid = np.zeros((4, 2)), np.array([False, True, False, False])
    with pytest.raises(ValueError) as info:
        apply_missing(X, np.array([0.0, 1.0, 0.0, 1.0]), invalid, {"g-r": 1}, "error",
                      "X, y", "fix them")
    assert "(NaN, inf, -9999 or beyond the model's dtype) in columns {'g-r': 1}" \
        in str(info.value)
    with pytest.raises(ValueError) as info:
        apply_missing(X, np.array(["QSO", "", "STAR", "QSO"]), invalid, {"label": 1},
                      "error", "named.npy", "fix them")
    assert "-9999, a null, empty or 'NA' label, or beyond" in str(info.value)
