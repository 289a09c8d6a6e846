"""The command line fed the mistakes a user makes with a catalog: each gets one
``fastmlp: error:`` line naming the flag, file or column and what was expected (never a
traceback, never a silently wrong model), and a run that is fine stays fine."""

import numpy as np
import pytest

from fastmlp import cli


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_catalog(path, n=200, seed=0, edit=None):
    """A CSV of magnitudes u g r i z and a QSO / STAR class (QSOs have a UV excess);
    ``edit(k, fields)`` may change row k's fields (a dict) before it is written."""
    rng = np.random.default_rng(seed)
    mags = 18 + rng.normal(size=(n, 5))
    cls = np.where(rng.random(n) < 0.3, "QSO", "STAR")
    mags[cls == "QSO", 0] -= 1.0
    lines = ["objid,u,g,r,i,z,class"]
    for k in range(n):
        fields = dict(zip("ugriz", (f"{v:.4f}" for v in mags[k])), objid=str(k),
                      **{"class": cls[k]})
        if edit is not None:
            edit(k, fields)
        lines.append(",".join(fields[c] for c in ("objid", *"ugriz", "class")))
    path.write_text("\n".join(lines) + "\n")
    return path


TRAIN = ("train", "--features", "colors:ugriz", "--label", "class", "--epochs", "1",
         "--quiet")


def test_a_column_of_nothing_but_nan_is_reported_as_missing_values(capsys, tmp_path):
    """A CSV column holding only NaN (Arrow reads it as a column of nulls, with no validity
    buffer) once failed with 'unexpected TypeError'; now it is counted as missing values."""
    p = write_catalog(tmp_path / "cat.csv", edit=lambda k, f: f.update(u="nan"))
    code, out, err = run(capsys, *TRAIN, "--catalog", p)
    assert code == 2 and err.startswith("fastmlp: error: ")
    assert "200 of 200 rows have missing or invalid values" in err and "'u': 200" in err
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--missing", "impute-median")
    assert code == 2 and "column 'u' has no valid values to take a median of" in err


def _only(classes):
    """An edit keeping the rows' magnitudes but giving them the classes in turn."""
    return lambda k, f: f.update({"class": classes[k % len(classes)]})


def test_a_validation_fraction_that_holds_out_nothing_names_the_flag(capsys, tmp_path):
    """A tiny catalog: fit said 'validation=0.1 ... pass validation=None' (not a CLI
    spelling), --calibrate 'X_val is empty'; both now name --validation, before training."""
    p = write_catalog(tmp_path / "cat.csv", n=3, edit=_only(["QSO", "STAR", "STAR"]))
    code, out, err = run(capsys, *TRAIN, "--catalog", p)
    assert code == 2 and err.startswith("fastmlp: error: --validation 0.1 holds out no row "
                                        "of the 2 training rows; give a larger --validation, "
                                        "or --validation 0 for none")
    assert "trained" not in out
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--calibrate")
    assert code == 2 and "--validation 0.1 holds out no row" in err and "Traceback" not in err
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--validation", "0")
    assert code == 0, err


def test_a_cut_without_the_positive_class_in_validation_fails_before_training(capsys,
                                                                               tmp_path):
    """Two QSOs among 20 rows: the validation row is a STAR; the cut once failed after
    training with 'y_true has no samples of the positive class 0'."""
    p = write_catalog(tmp_path / "cat.csv", n=20, edit=_only(["QSO"] + ["STAR"] * 9))
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--max-contamination", "0.1")
    assert code == 2 and "trained" not in out
    assert err.startswith("fastmlp: error: --max-contamination: the validation split (1 row) "
                          "holds no QSO to choose the cut on")


def test_roc_auc_of_a_test_set_without_the_positive_class_prints_as_n_a(capsys, tmp_path):
    """One QSO: it trains, and the test set holds none; the report said 'ROC AUC nan'
    beside 'completeness n/a'."""
    p = write_catalog(tmp_path / "cat.csv", n=60, edit=_only(["QSO"] + ["STAR"] * 59))
    code, out, err = run(capsys, *TRAIN, "--catalog", p)
    assert code == 0, err
    assert "ROC AUC n/a" in out and "nan" not in out


@pytest.mark.parametrize("argv", [("train", "--n-samples", "100", "--epochs", "1"),
                                  ("tune", "--shape", "4-8-1@64"),
                                  ("predict", "--model", "m.npz", "--catalog", "c.csv",
                                   "--out", "p.csv")])
@pytest.mark.parametrize("n", ["0", "100000", "two"])
def test_threads_out_of_range_is_an_argument_error(capsys, argv, n):
    """--threads 1000 was refused as 'n_threads must be ...' only after the catalog was
    read and the run described; tune took --threads 0 as 'all cores' and measured."""
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--threads", n])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "argument --threads: expected a positive integer at most" in err
    assert f"got '{n}'" in err


def test_stream_training_on_a_single_class_is_refused_like_in_memory(capsys, tmp_path):
    """--stream on labels of one class built a 1-output cross-entropy model and failed
    with 'class_names has 1 name, the model has 2 classes'."""
    p = write_catalog(tmp_path / "cat.csv", edit=_only(["STAR"]))
    for stream in ((), ("--stream",)):
        code, out, err = run(capsys, *TRAIN, "--catalog", p, *stream)
        assert code == 2 and "model:" not in out
        assert err == ("fastmlp: error: the labels hold a single class (STAR); need at least "
                       "two classes to train a classifier\n")


def test_stream_missing_values_error_names_the_columns_and_the_first_row(capsys, tmp_path):
    """--stream said '2 rows from row 3 have missing or invalid values', naming neither the
    columns (the in-memory reader does) nor a row a user can find (0-based chunk start)."""
    def edit(k, f):
        if k in (4, 5):
            f["g"] = "-9999"
        if k == 5:
            f["class"] = ""
    p = write_catalog(tmp_path / "cat.csv", edit=edit)
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--stream", "--chunk-rows", "3")
    assert code == 2
    assert err.startswith("fastmlp: error: ") and "Traceback" not in err
    assert ("cat.csv: 2 rows of chunk 2 (the first: data row 5) have missing or invalid values "
            "(NaN, inf, -9999 or null) in columns {'g': 2, 'class': 1}; pass missing='drop' "
            "(--missing drop) to skip them") in err


@pytest.mark.parametrize("serial", [(), ("--serial",)])
def test_cv_with_folds_that_blew_up_warns_in_its_report_and_exits_1(capsys, tmp_path, serial):
    """cv --lr 1e9 printed Python's raw warning lines ('.../recipes.py:510: TrainingRunaway:
    ...') and exited 0 beside a table of broken models' metrics; train says 'warning:' and
    exits 1 for a run that blew up."""
    p = write_catalog(tmp_path / "cat.csv")
    code, out, err = run(capsys, "cv", "--catalog", p, "--features", "colors:ugriz", "--label",
                         "class", "--k", "2", "--epochs", "3", "--lr", "1e9", "--quiet",
                         *serial)
    assert code == 1
    assert out.count("warning: training blew up: the epoch loss went from") == 2
    assert "TrainingRunaway" not in err and ".py:" not in err
    code, out, err = run(capsys, "cv", "--catalog", p, "--features", "colors:ugriz", "--label",
                         "class", "--k", "2", "--epochs", "3", "--quiet", *serial)
    assert code == 0 and "warning" not in out + err


@pytest.mark.parametrize("argv", [("cv", "--k", "2", "--epochs", "1", "--plot"),
                                  ("sweep", "--iterations", "2", "--lrs", "1e-3", "--plot"),
                                  ("compare-optimizers", "--iterations", "2", "--plot"),
                                  ("compare-optimizers", "--iterations", "2", "--paths")])
def test_recipe_figures_never_overwrite_the_input_catalog(capsys, tmp_path, argv):
    """A CSV may have any suffix: cv / sweep / compare-optimizers --plot cat.svg drew over
    the catalog cat.svg they had read (train and predict refuse)."""
    p = write_catalog(tmp_path / "cat.svg")
    before = p.read_bytes()
    code, out, err = run(capsys, *argv, p, "--catalog", p, "--features", "colors:ugriz",
                         "--label", "class", "--quiet")
    assert code == 2 and p.read_bytes() == before
    assert err == (f"fastmlp: error: {argv[-1]} {p} is the same file as the input {p}; "
                   "refusing to overwrite an input (choose another output path)\n")


def test_resume_from_a_file_that_is_not_a_checkpoint_says_what_it_is(capsys, tmp_path):
    """--resume cat.csv quoted NumPy's advice to load pickled data unsafely; --resume with
    the saved model (a likely mix-up) said only 'KeyError: 'meta''."""
    p = write_catalog(tmp_path / "cat.csv")
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--out", model)
    assert code == 0, err
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--resume", p)
    assert code == 2 and "pickle" not in err
    assert err == f"fastmlp: error: resume: {p} is not a fastmlp fit checkpoint (not an .npz " \
                  "archive)\n"
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--resume", model)
    assert code == 2
    assert err == (f"fastmlp: error: resume: {model} is not a fastmlp fit checkpoint (it is a "
                   "model saved by fastmlp.save or fastmlp train --out; resume from the file "
                   "that checkpoint= (--checkpoint) wrote)\n")


def test_early_stopping_without_validation_rows_names_the_flags(capsys, tmp_path):
    """--early-stopping with --validation 0 said fit's 'early_stopping needs validation data
    (validation=fraction or (X_val, y_val))'; with --stream it was silently ignored."""
    p = write_catalog(tmp_path / "cat.csv")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--early-stopping", "2",
                         "--validation", "0")
    assert code == 2 and "model:" not in out
    assert err == ("fastmlp: error: --early-stopping watches the validation loss; give "
                   "--validation > 0\n")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--early-stopping", "2", "--stream")
    assert code == 2 and "trained" not in out
    assert err == ("fastmlp: error: --early-stopping watches the validation loss; --stream "
                   "holds out no validation rows\n")


def test_bin_by_a_column_without_finite_values_fails_before_training(capsys, tmp_path):
    """--bin-by a column of NaN failed after training with 'values has no finite entries to
    bin' (binned_completeness's argument, not the flag)."""
    p = write_catalog(tmp_path / "cat.csv", edit=lambda k, f: f.update(z="nan"))
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--features", "u-g,g-r",
                         "--bin-by", "z")
    assert code == 2 and "trained" not in out
    assert err == "fastmlp: error: --bin-by z: the column has no finite values to bin\n"


def test_header_checks_of_a_bad_npy_catalog_say_what_is_wrong(capsys, tmp_path):
    """The header check of --bin-by / --id-column / --label read a .npy on its own: a 1-D
    array gave 'unexpected IndexError', an .npz read with --format npy 'unexpected
    BadZipFile'; a CSV named .npy quoted NumPy's advice to load pickled data unsafely."""
    one_d = tmp_path / "one_d.npy"
    np.save(one_d, np.arange(10.0))
    code, out, err = run(capsys, "train", "--catalog", one_d, "--bin-by", "x", "--quiet")
    assert code == 2 and err == (
        f"fastmlp: error: {one_d}: a plain .npy catalog must be a 2-D array (rows, columns), "
        "got shape (10,); or use a structured array with named fields\n")
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", "--n-samples", 300, "--epochs", 1, "--quiet",
                         "--out", model)
    assert code == 0, err
    broken = tmp_path / "broken.npz"
    broken.write_bytes(model.read_bytes()[:300])
    code, out, err = run(capsys, "predict", "--model", model, "--catalog", broken, "--format",
                         "npy", "--out", tmp_path / "p.csv", "--id-column", "x")
    assert code == 2 and err.startswith(f"fastmlp: error: {broken}: not a readable .npy file")
    fake = write_catalog(tmp_path / "fake.npy")
    code, out, err = run(capsys, "train", "--catalog", fake, "--quiet")
    assert code == 2 and "pickle" not in err
    assert err == (f"fastmlp: error: {fake}: not a readable .npy file (it does not start with "
                   "NumPy's magic string, got b'objid,'); expected a 2-D numeric array or a "
                   "structured array with named fields\n")


@pytest.mark.parametrize("command", ["train", "cv"])
@pytest.mark.parametrize("features", [(), ("--features", "u,g")])
def test_no_label_column_says_to_pass_label(capsys, tmp_path, command, features):
    """A catalog without a 'label' / 'class' column and no --label: the reader said 'pass
    label=<column> (or label=False ...)', or with --features 'the catalog has no labels to
    train on'; the command line's spelling is --label COLUMN."""
    p = tmp_path / "cat.csv"
    p.write_text("u,g,redshift\n" + "".join(f"{18 + k % 3},{19 - k % 5},{k / 10}\n"
                                            for k in range(20)))
    code, out, err = run(capsys, command, "--catalog", p, "--quiet", *features)
    assert code == 2
    assert err == (f"fastmlp: error: {p}: no label column named 'label' or 'class'; pass "
                   "--label COLUMN; available columns: ['u', 'g', 'redshift']\n")


def test_an_id_column_given_as_label_is_named_as_the_likely_mistake(capsys, tmp_path):
    """--label objid (0..n-1: one class per row): train said '200 rows are too few for a
    train / test split'; train --stream trained a 200-class model."""
    p = write_catalog(tmp_path / "cat.csv")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--label", "objid")
    assert code == 2 and err == (
        "fastmlp: error: each of the 200 rows has a class of its own in the label 'objid', so "
        "none can be held out for the test set; is it an id column? (--label names the class "
        "column)\n")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--label", "objid", "--stream")
    assert code == 2 and "trained" not in out
    assert err.startswith("fastmlp: error: each of the 200 rows has a class of its own in the "
                          "label 'objid'; is it an id column?")
    tiny = write_catalog(tmp_path / "tiny.csv", n=2, edit=_only(["QSO", "STAR"]))
    code, out, err = run(capsys, *TRAIN, "--catalog", tiny)
    assert code == 2 and err == "fastmlp: error: 2 rows are too few for a train / test split\n"


def test_cv_class_weight_on_a_regression_target_names_the_flag_as_train_does(capsys,
                                                                              tmp_path):
    """cv said fit's "class_weight applies to classifiers, not loss='mse'"."""
    p = write_catalog(tmp_path / "cat.csv", edit=lambda k, f: f.update({"class": f"{k / 7}"}))
    for command in ("train", "cv"):
        code, out, err = run(capsys, command, "--catalog", p, "--features", "colors:ugriz",
                             "--label", "class", "--epochs", "1", "--quiet", "--class-weight",
                             "balanced")
        assert code == 2 and err == (
            "fastmlp: error: --class-weight applies to classification, and the label column "
            "'class' holds non-integer values (a regression target)\n")


@pytest.mark.parametrize("stream", [(), ("--stream",)])
def test_a_blown_up_train_run_is_said_once_in_the_report(capsys, tmp_path, stream):
    """--lr 1e9: besides train's own warning line, Python's raw warning ('.../fit.py:144:
    TrainingRunaway: ...' and the source line) went to stderr, and the final loss read
    '453340068831852146680636899328.00000'."""
    p = write_catalog(tmp_path / "cat.csv")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--epochs", "2", "--lr", "1e9",
                         *stream)
    assert code == 1
    assert out.count("warning: training blew up") == 1
    assert "TrainingRunaway" not in err and ".py:" not in err
    final = out.split("final loss ")[1].split(",")[0].split()[0]
    assert "e+" in final and float(final) > 1e6


@pytest.mark.parametrize("batch,said", [("256", "--batch-size 256"),
                                        ("full", "--batch-size full (200 rows)")])
def test_stream_batches_larger_than_a_chunk_are_said(capsys, tmp_path, batch, said):
    """train --stream --chunk-rows 50: mini-batches never straddle chunks, so they held 50
    rows while the run said 'batch 256' (or 'batch full': four steps an epoch), unsaid."""
    p = write_catalog(tmp_path / "cat.csv")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--stream", "--chunk-rows", "50",
                         "--batch-size", batch)
    assert code == 0, err
    assert err == (f"warning: {said} is larger than --chunk-rows 50: with --stream a "
                   "mini-batch never spans two chunks, so batches hold at most 50 rows; give "
                   "--chunk-rows >= the batch size for batches of that size\n")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--stream", "--chunk-rows", "50",
                         "--batch-size", "50")
    assert code == 0 and err == ""


@pytest.mark.parametrize("stream", [(), ("--stream",)])
def test_drop_invalid_contradicting_missing_names_both_flags(capsys, tmp_path, stream):
    """--drop-invalid --missing error: in memory the reader said "drop_invalid=True
    contradicts missing='error'"; --stream let --missing error win silently."""
    p = write_catalog(tmp_path / "cat.csv", edit=lambda k, f: f.update(u="" if k == 7
                                                                         else f["u"]))
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--drop-invalid", "--missing",
                         "error", *stream)
    assert code == 2 and err == ("fastmlp: error: --drop-invalid (the same as --missing drop) "
                                 "contradicts --missing error; give one of them\n")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--drop-invalid", "--missing",
                         "drop", *stream)
    assert code == 0, err


def test_where_comparing_a_text_column_with_a_number_names_the_filter(capsys, tmp_path):
    """--where "class < 3": the error read as if the class column had to be numeric to
    train on ("column 'class' must be numeric but has 200 non-numeric values ...")."""
    p = write_catalog(tmp_path / "cat.csv")
    code, out, err = run(capsys, *TRAIN, "--catalog", p, "--where", "class < 3")
    assert code == 2
    assert err.startswith("fastmlp: error: where: compares column 'class' with the number 3, "
                          f"but {p}: column 'class' must be numeric")


@pytest.mark.parametrize("argv,msg", [
    (("--shape", "4-8-1"), "argument --shape: --shape must look like 5-512-512-1@4096 (layer "
                           "sizes @ batch size), got '4-8-1'"),
    (("--shape", "4-0-1@64"), "argument --shape: --shape needs at least two positive layer "
                              "sizes and a positive batch size, got '4-0-1@64'"),
])
def test_tune_bad_shape_says_what_was_expected(capsys, argv, msg):
    """argparse printed "invalid _shape value: '4-8-1'" (the type's own message lost)."""
    with pytest.raises(SystemExit) as e:
        cli.main(["tune", *argv])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_tune_infinite_budget_is_refused(capsys):
    """--budget inf passed the 'positive' check (nan did not)."""
    code, out, err = run(capsys, "tune", "--budget", "inf", "--shape", "4-8-1@64")
    assert code == 2
    assert err == "fastmlp: error: --budget must be a positive number of seconds, got inf\n"


@pytest.mark.parametrize("stream", [(), ("--stream",)])
def test_class_names_differing_in_case_get_a_warning_line(capsys, tmp_path, stream):
    """A class column holding 'QSO' and 'qso' trained a 3-class model without a word; now
    one warning line names both spellings and their rows (the run still trains: the data
    may mean it), in memory and streamed alike."""
    p = write_catalog(tmp_path / "cat.csv",
                      edit=lambda k, f: f.update({"class": "qso"}) if k < 3 else None)
    code, out, err = run(capsys, *TRAIN, "--catalog", p, *stream)
    assert code == 0
    lines = [line for line in err.splitlines() if "differ only in case" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: label 'class': class names 'QSO' (")
    assert "and 'qso' (3 rows)" in lines[0] and "--where" in lines[0]
    assert "Warning:" not in err                    # a line, not Python's file:line form


@pytest.mark.parametrize("stream", [(), ("--stream",)])
def test_default_features_with_an_id_column_get_a_warning_line(capsys, tmp_path, stream):
    """Without --features every column but the label is an input, objid too; the run
    trains as before but a warning line names objid and says to pass --features."""
    p = write_catalog(tmp_path / "cat.csv")
    argv = ("train", "--label", "class", "--epochs", "1", "--quiet", "--catalog", p, *stream)
    code, out, err = run(capsys, *argv)
    assert code == 0 and "objid, u, g, r, i, z" in out          # the default is unchanged
    lines = [line for line in err.splitlines() if "id-like" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: no features given")
    assert "id-like column objid:" in lines[0] and "--features colors:ugriz" in lines[0]
    code, out, err = run(capsys, *argv, "--features", "u-g,g-r,r-i,i-z")
    assert code == 0 and "id-like" not in err
