"""MPI's positive class read as fastmlp train reads --positive (a label value in a column of
numbers, a class name in a column of names) and refused, as the loader refuses it, when it
is none of the labels: it used to make every row class 0 (a useless model).  One rank:
COMM_WORLD of a plain python, no mpirun needed."""

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP
from fastmlp.data import load_catalog
from fastmlp.distributed import mpi

needs_mpi = pytest.mark.skipif(not mpi.AVAILABLE, reason="mpi4py is not importable "
                               f"({mpi.UNAVAILABLE_REASON}); pip install fastmlp[mpi]")
pytestmark = needs_mpi

N = 60


def _catalog(tmp_path, labels, name="catalog.npy"):
    """A structured .npy of two features (u, g) and the label column ``labels``."""
    rng = np.random.default_rng(3)
    labels = np.asarray(labels)
    rec = np.empty(N, dtype=[("u", "f8"), ("g", "f8"), ("label", labels.dtype)])
    rec["u"], rec["g"], rec["label"] = rng.normal(20, 1, N), rng.normal(19, 1, N), labels
    path = tmp_path / name
    np.save(path, rec)
    return path


def _numbers(tmp_path, values=(0, 1)):
    """Integer labels: ``values`` alternating over the rows."""
    return _catalog(tmp_path, np.resize(np.asarray(values, dtype=np.int32), N), "numbers.npy")


def _names(tmp_path):
    """Class names: QSO and STAR alternating over the rows."""
    return _catalog(tmp_path, np.resize(np.array(["QSO", "STAR"], dtype="U8"), N),
                    "names.npy")


def _fit(path, positive, **kw):
    model = MLP([2, 4, 1], seed=0, dtype="float32")
    mpi.mpi_fit(model, path=path, features="u,g", label="label", positive=positive,
                epochs=1, batch_size=16, progress=False, **kw)
    return model


# --- a positive class that is none of the labels: refused, as the loader refuses it -------

@pytest.mark.parametrize("positive, said", [
    (5, r"positive=5 must be a class name in \['0', '1'\] or a label value 0\.\.1"),
    ("QSO", r"positive='QSO' is not one of the classes \['0', '1'\]")])
def test_a_positive_no_numeric_label_is_refused_as_the_loader_refuses_it(tmp_path, positive,
                                                                          said):
    path = _numbers(tmp_path)
    with pytest.raises(ValueError, match=said):       # the loader's own words
        load_catalog(path, features=["u", "g"], label="label", positive=positive)
    with pytest.raises(ValueError, match=said + r"; labels seen: 0 \(30 rows\), 1 \(30 rows\)"):
        _fit(path, positive)


def test_a_label_value_no_row_holds_is_refused_naming_the_labels_seen(tmp_path):
    """Labels 0 and 2 make a class 1 the loader accepts; no row is 1, so nothing to learn."""
    path = _numbers(tmp_path, (0, 2))
    with pytest.raises(ValueError, match=r"numbers\.npy: positive=1 \(the class '1'\) is the "
                                         r"label of no row of label column 'label' on any "
                                         r"rank, so the model would have no row of it to learn "
                                         r"from; labels seen: "
                                         r"0 \(30 rows\), 2 \(30 rows\): pass one of them"):
        _fit(path, 1)


def test_a_positive_on_non_integer_labels_is_refused_as_a_regression_target(tmp_path):
    path = _catalog(tmp_path, np.linspace(0.0, 1.0, N))
    with pytest.raises(ValueError, match=r"positive=1 given but label 'label' is a regression "
                                         r"target, not classes; labels seen: 0 \(1 row\)"):
        _fit(path, 1)


def test_a_class_name_none_of_the_names_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"names\.npy: positive='GALAXY' is not one of the "
                                         r"classes \['QSO', 'STAR'\]; labels seen: 'QSO' "
                                         r"\(30 rows\), 'STAR' \(30 rows\)"):
        _fit(_names(tmp_path), "GALAXY")


def test_a_positive_left_with_no_row_by_where_is_refused(tmp_path):
    """The rows where= keeps are the ones judged: STAR alone is no class 1 for QSO."""
    path = _names(tmp_path)
    with pytest.raises(ValueError, match=r"positive='QSO' is not one of the classes "
                                         r"\['STAR'\]"):
        _fit(path, "QSO", where="label == 'STAR'")


@pytest.mark.parametrize("with_comm", [False, True])
def test_read_slice_refuses_a_positive_no_label_is(tmp_path, with_comm):
    kw = {"comm": mpi.MPI.COMM_WORLD} if with_comm else {}
    with pytest.raises(ValueError, match=r"positive='GALAXY' is not one of the classes"):
        mpi.read_slice(_names(tmp_path), "u,g", "label", 0, 1, positive="GALAXY", **kw)


# --- the same meaning as fastmlp train's --positive -----------------------------------------

@pytest.mark.parametrize("column, positive", [("numbers", "1"), ("numbers", "0"),
                                              ("signed", "-1"), ("names", "qso"),
                                              ("names", 1)])
def test_read_slice_codes_the_classes_as_the_loader_does(tmp_path, column, positive):
    """A number written as text in a column of numbers is that label; a class name is
    matched case-insensitively and a number in a column of names is the index of a class
    in sorted order, as load_catalog reads positive= (fastmlp train's --positive); the
    labels are the loader's classes whichever is positive (they were 1 for the positive
    class, 0 for the others: --positive 0 flipped the DR6 file's classes)."""
    path = {"numbers": lambda: _numbers(tmp_path), "signed": lambda: _numbers(tmp_path, (-1, 1)),
            "names": lambda: _names(tmp_path)}[column]()
    cat = load_catalog(path, features=["u", "g"], label="label", positive=positive)
    _, y, _ = mpi.read_slice(path, "u,g", "label", 0, 1, positive=positive)
    assert set(cat.y.tolist()) == {0, 1}
    np.testing.assert_array_equal(y, cat.y)


def test_mpi_fit_takes_a_class_name_in_any_case(tmp_path):
    path = _names(tmp_path)
    np.testing.assert_array_equal(_fit(path, "qso").params, _fit(path, "QSO").params)


# --- the classes coded as fastmlp train codes them; the model knows them -----------------

def _three_classes(tmp_path):
    """Class names GALAXY / QSO / STAR in turn, the class shifting u and g."""
    rng = np.random.default_rng(5)
    names = np.resize(np.array(["STAR", "QSO", "GALAXY"], dtype="U8"), N)
    k = np.searchsorted(["GALAXY", "QSO", "STAR"], names)
    rec = np.empty(N, dtype=[("u", "f8"), ("g", "f8"), ("label", "U8")])
    rec["u"], rec["g"], rec["label"] = rng.normal(20, 1, N) + k, rng.normal(19, 1, N) - k, names
    path = tmp_path / "three.npy"
    np.save(path, rec)
    return path


@pytest.mark.parametrize("positive", [0, 1])
def test_a_positive_label_value_keeps_the_files_classes(tmp_path, positive):
    """--positive 0 on the DR6 file (0 = quasar) trained on flipped labels (the quasars as
    1): a saved model predicted 1 for them (accuracy 0.0188); fastmlp train keeps the
    file's coding and marks class 0 as the positive one."""
    path = _numbers(tmp_path)
    model = _fit(path, positive)
    np.testing.assert_array_equal(model.params, _fit(path, None).params)
    assert model.class_names == ("0", "1") and model.positive == positive


def test_a_column_of_names_gives_the_model_its_class_names(tmp_path):
    """As fastmlp train --positive QSO on SDSS17: three classes in sorted order, QSO the
    positive class 1, the names in the model (mpi_fit's model had none)."""
    path = _three_classes(tmp_path)
    cat = load_catalog(path, features=["u", "g"], label="label", positive="QSO")
    model = MLP([2, 4, 3], seed=0, dtype="float64")
    mpi.mpi_fit(model, path=path, features="u,g", label="label", positive="qso", epochs=1,
                batch_size=16, progress=False)
    assert model.class_names == cat.class_names == ("GALAXY", "QSO", "STAR")
    assert model.positive == cat.positive == 1
    _, y, _ = mpi.read_slice(path, "u,g", "label", 0, 1, positive="QSO")
    np.testing.assert_array_equal(y, cat.y)


@pytest.mark.parametrize("layers, said", [
    ([2, 4, 1], r"three\.npy: label column 'label' holds 3 classes \['GALAXY', 'QSO', 'STAR'\], "
                r"but the model has 1 output: give the last layer 3 \(e\.g\. MLP\(\[2, 4, 3\]\), "
                r"--layers 2,4,3\)"),
    ([2, 4, 4], r"holds 3 classes .*, but the model has 4 outputs: give the last layer 3")])
def test_a_model_whose_outputs_do_not_fit_the_classes_is_refused(tmp_path, layers, said):
    """One output for three classes trained 'QSO or not' and saved no class names."""
    model = MLP(layers, seed=0, dtype="float64")
    before = model.params.copy()
    with pytest.raises(ValueError, match=said):
        mpi.mpi_fit(model, path=_three_classes(tmp_path), features="u,g", label="label",
                    positive="QSO", epochs=1, batch_size=16, progress=False)
    np.testing.assert_array_equal(model.params, before)       # refused before training
    assert model.class_names is None


def test_a_saved_model_predicts_in_the_files_coding(tmp_path):
    """The probe's --positive 0 run, on one rank: the saved model's classes are the
    file's labels (it scored 0.0188 on them: every prediction flipped)."""
    rng = np.random.default_rng(9)
    n = 1200
    label = (rng.random(n) < 0.7).astype(np.int32)       # 0 = quasar, the minority
    rec = np.empty(n, dtype=[("u", "f8"), ("g", "f8"), ("label", "i4")])
    rec["u"] = rng.normal(0, 1, n) + 3 * label
    rec["g"], rec["label"] = rng.normal(0, 1, n), label
    path, saved = tmp_path / "dr6like.npy", tmp_path / "model.npz"
    np.save(path, rec)
    assert mpi.main(["--data", str(path), "--features", "u,g", "--label", "label",
                     "--positive", "0", "--layers", "2,8,1", "--epochs", "5", "--lr", "0.01",
                     "--batch-size", "32", "--standardize", "--no-progress",
                     "--save", str(saved)]) == 0
    model = fastmlp.load(saved)
    assert model.class_names == ("0", "1") and model.positive == 0
    assert np.mean(model.predict(rec) == label) > 0.9


# --- the command line: python -m fastmlp.distributed.mpi --positive CLASS -----------------

def _main(path, positive, tmp_path):
    saved = tmp_path / "model.npz"
    rc = mpi.main(["--data", str(path), "--features", "u,g", "--label", "label",
                   "--positive", positive, "--layers", "2,4,1", "--batch-size", "16",
                   "--epochs", "1", "--no-progress", "--save", str(saved)])
    return rc, saved


@pytest.mark.parametrize("given, meant", [("qso", "QSO"), ("STAR", "STAR"), ("0", "QSO")])
def test_the_command_line_takes_a_class_name_as_fastmlp_train(tmp_path, capsys, given, meant):
    path = _names(tmp_path)
    rc, saved = _main(path, given, tmp_path)
    assert rc == 0
    assert "trained 1 epoch on 1 rank" in capsys.readouterr().out
    np.testing.assert_array_equal(fastmlp.load(saved).params, _fit(path, meant).params)


@pytest.mark.parametrize("given, said", [
    ("QSO", r"positive='QSO' is not one of the classes \['0', '1'\]"),
    ("5", r"positive=5 must be a class name in \['0', '1'\] or a label value 0\.\.1")])
def test_the_command_line_refuses_a_positive_no_label_is(tmp_path, given, said):
    with pytest.raises(ValueError, match=said):
        _main(_numbers(tmp_path), given, tmp_path)
    assert not (tmp_path / "model.npz").exists()


def test_one_class_is_refused_as_fastmlp_train_refuses_it(tmp_path):
    """Every label 1 with positive=1 trained on a constant target and saved ('0', '1');
    all 'QSO' failed on the model's class_names check without naming the column."""
    with pytest.raises(ValueError, match=r"numbers\.npy: label column 'label' holds one class "
                                         r"on every rank together \(1 \(60 rows\)\): a "
                                         r"classifier needs at least two classes"):
        _fit(_numbers(tmp_path, (1,)), 1)
    path = _catalog(tmp_path, np.array(["QSO"] * N, dtype="U8"), "qso.npy")
    with pytest.raises(ValueError, match=r"qso\.npy: label column 'label' holds one class"):
        _fit(path, "QSO")


def test_the_models_own_class_names_and_positive_are_kept_or_refused(tmp_path):
    """A model naming the integer classes keeps its names (as train's --class-names);
    another positive class, or names other than a column of names holds, are refused
    before training instead of replaced without a word."""
    model = MLP([2, 4, 1], seed=0, dtype="float32", class_names=["QSO", "STAR"])
    mpi.mpi_fit(model, path=_numbers(tmp_path), features="u,g", label="label", positive=0,
                epochs=1, batch_size=16, progress=False)
    assert model.class_names == ("QSO", "STAR") and model.positive == 0
    named = MLP([2, 4, 1], seed=0, dtype="float32", class_names=["quasar", "star"])
    before = named.params.copy()
    with pytest.raises(ValueError, match=r"holds the classes \['QSO', 'STAR'\], but the "
                                         r"model's class_names are \['quasar', 'star'\]"):
        mpi.mpi_fit(named, path=_names(tmp_path), features="u,g", label="label",
                    positive="QSO", epochs=1, batch_size=16, progress=False)
    np.testing.assert_array_equal(named.params, before)
    other = MLP([2, 4, 1], seed=0, dtype="float32", class_names=["0", "1"], positive=1)
    with pytest.raises(ValueError, match=r"positive names the class 0 \('0'\), but the "
                                         r"model's positive class is 1"):
        mpi.mpi_fit(other, path=_numbers(tmp_path), features="u,g", label="label",
                    positive=0, epochs=1, batch_size=16, progress=False)


@pytest.mark.parametrize("positive, k", [("QSO", 0), ("star", 1)])
def test_positive_may_name_the_models_own_class(tmp_path, positive, k):
    """The model's names for integer labels are kept, so positive may use them (it was
    refused: "'QSO' is not one of the classes ['0', '1']")."""
    model = MLP([2, 4, 1], seed=0, dtype="float32", class_names=["QSO", "STAR"])
    mpi.mpi_fit(model, path=_numbers(tmp_path), features="u,g", label="label",
                positive=positive, epochs=1, batch_size=16, progress=False)
    assert model.class_names == ("QSO", "STAR") and model.positive == k


@pytest.mark.parametrize("positive, k", [("A", 0), ("b", 1), ("C", 2)])
def test_the_models_own_name_is_an_index_with_negative_labels(tmp_path, positive, k):
    """Of labels -1 / 0 / 1 the model's name "A" is class 0 (the label -1): its index was
    read as the label value 0, the class "B"."""
    model = MLP([2, 4, 3], seed=0, dtype="float32", class_names=["A", "B", "C"])
    mpi.mpi_fit(model, path=_numbers(tmp_path, (-1, 0, 1)), features="u,g", label="label",
                positive=positive, epochs=1, batch_size=16, progress=False)
    assert model.class_names == ("A", "B", "C") and model.positive == k


def test_a_models_class_beyond_the_labels_classes_is_named():
    """MLP(class_names=A, B, C) on labels 0 / 1 with positive="C": the message said
    "positive=2 must be a class name ..." (an index the user never gave)."""
    import tempfile
    from pathlib import Path
    model = MLP([2, 4, 3], seed=0, dtype="float32", class_names=["A", "B", "C"])
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(ValueError, match=r"positive names the model's class 2, but label "
                                             r"column 'label' holds 2 classes \['0', '1'\]"):
            mpi.mpi_fit(model, path=_numbers(Path(d)), features="u,g", label="label",
                        positive="C", epochs=1, batch_size=16, progress=False)
