"""``fastmlp predict --label`` and a catalog whose integer labels code the classes otherwise
than the model (the DR6 file's 0 = QSO against a model's 0 = star): ``--class-names`` says
the catalog's coding (as train's --class-names does), names mapped onto the model's classes;
an evaluation worse than chance says that the coding may differ, and how to state it; the
report says its metrics are on the catalog's labelled rows (not a held-out test set) and, for
more than two classes, what the ROC AUC is over."""

import numpy as np
import pytest

import fastmlp
from fastmlp.cli import main
from conftest import data_file

N = 400


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _model(tmp_path, class_names=("star", "quasar"), positive=None):
    """A logistic regression on features a, b: the last class where a > 0, the first
    where a < 0 (and, with three classes, the middle one never)."""
    k = len(class_names) if class_names else 2
    m = fastmlp.MLP([2, k], loss="cross_entropy", features=["a", "b"],
                    class_names=class_names, seed=0)
    m.weights[0][...] = 0.0
    m.weights[0][0, 0], m.weights[0][0, k - 1] = -4.0, 4.0
    m.biases[0][...] = 0.0
    if k > 2:
        m.biases[0][1] = -50.0            # the middle class: never the most probable
    if positive is not None:
        m.set_contract(positive=positive)
    path = tmp_path / "model.npz"
    fastmlp.save(m, path)
    return path


def _catalog(tmp_path, label_of_positive_a, name="cat.npy"):
    """Features a, b and an integer (or text) label: ``label_of_positive_a`` (value where
    a > 0, value where a < 0)."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=N)
    a = np.where(np.abs(a) < 0.05, 0.5, a)         # no row near the model's boundary
    up, down = label_of_positive_a
    lab = np.where(a > 0, up, down)
    t = np.zeros(N, dtype=[("a", "f8"), ("b", "f8"), ("label", lab.dtype)])
    t["a"], t["b"], t["label"] = a, rng.normal(size=N), lab
    path = tmp_path / name
    np.save(path, t)
    return path


def _predict(capsys, tmp_path, model, cat, *extra):
    out = tmp_path / "out.npy"
    return run(capsys, "predict", "--model", model, "--catalog", cat, "--out", out,
               "--label", "label", *extra)


def test_reversed_coding_warns_and_says_how_to_state_it(tmp_path, capsys):
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (0, 1))              # 0 = quasar, as in the DR6 file
    code, out, err = _predict(capsys, tmp_path, model, cat)
    assert code == 0
    assert "accuracy 0.0000" in out
    assert "worse than chance" in err and "ROC AUC 0.0000 < 0.5" in err
    assert "label coding may differ" in err and "0 = star, 1 = quasar" in err
    assert "--class-names quasar,star" in err
    # the model's own coding: no warning
    code, out, err = _predict(capsys, tmp_path, model, _catalog(tmp_path, (1, 0), "ok.npy"))
    assert code == 0 and "accuracy 1.0000" in out
    assert "worse than chance" not in err


@pytest.mark.parametrize("names", ["quasar,star", "QUASAR, Star"])
def test_class_names_states_the_catalog_coding(tmp_path, capsys, names):
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (0, 1))
    code, out, err = _predict(capsys, tmp_path, model, cat, "--class-names", names)
    assert code == 0, err
    assert "accuracy 1.0000" in out and "ROC AUC 1.0000" in out
    assert "worse than chance" not in err
    # the written labels are the model's own class indices, whatever the catalog's coding
    written = np.load(tmp_path / "out.npy")
    assert set(written["label"].tolist()) == {0, 1}
    cat_t = np.load(cat)
    np.testing.assert_array_equal(written["label"], (cat_t["a"] > 0).astype(int))


def test_class_names_beyond_the_coding_are_left_out(tmp_path, capsys):
    """Label value 2 has no name in --class-names: left out as no class of the model."""
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (0, 2))
    code, out, err = _predict(capsys, tmp_path, model, cat, "--class-names", "quasar,star")
    assert code == 0, err
    n_two = int((np.load(cat)["label"] == 2).sum())
    assert f"{n_two} whose label is not one of the model's classes (2={n_two})" in out


def test_wrong_coding_given_warns_about_class_names(tmp_path, capsys):
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (1, 0))
    code, out, err = _predict(capsys, tmp_path, model, cat, "--class-names", "quasar,star")
    assert code == 0
    assert "check --class-names" in err and "0 = quasar, 1 = star" in err


@pytest.mark.parametrize("names, expected", [
    ("galaxy,star", "'galaxy' is not one of the model's classes (star, quasar)"),
    ("star,star", "names the same class of the model twice"),
])
def test_class_names_not_among_the_models_classes_refused(tmp_path, capsys, names, expected):
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (0, 1))
    code, out, err = _predict(capsys, tmp_path, model, cat, "--class-names", names)
    assert code != 0
    assert f"--class-names {names}" in err and expected in err
    assert not (tmp_path / "out.npy").exists()


def test_class_names_refused_for_a_model_without_class_names(tmp_path, capsys):
    model = _model(tmp_path, class_names=None)
    cat = _catalog(tmp_path, (0, 1))
    code, out, err = _predict(capsys, tmp_path, model, cat, "--class-names", "quasar,star")
    assert code != 0 and "stores no class names" in err
    assert not (tmp_path / "out.npy").exists()


def test_class_names_without_label_refused(tmp_path, capsys):
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (0, 1))
    code, out, err = run(capsys, "predict", "--model", model, "--catalog", cat, "--out",
                         tmp_path / "out.npy", "--class-names", "quasar,star")
    assert code != 0 and "give --label too" in err


def test_text_labels_are_matched_by_name(tmp_path, capsys):
    """Text labels in an order other than the model's (quasar for a > 0 is class 1, listed
    second by the model): matched by name, without --class-names."""
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (np.str_("quasar"), np.str_("star")))
    code, out, err = _predict(capsys, tmp_path, model, cat)
    assert code == 0, err
    assert "accuracy 1.0000" in out and "worse than chance" not in err


@pytest.mark.parametrize("names", ["quasar,star", "star,quasar"])
def test_class_names_refused_for_text_labels(tmp_path, capsys, names):
    """--class-names names integer label values: with text labels it was silently ignored."""
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (np.str_("quasar"), np.str_("star")))
    code, out, err = _predict(capsys, tmp_path, model, cat, "--class-names", names)
    assert code != 0
    assert "--class-names" in err and "holds class names (text)" in err
    assert "leave out --class-names" in err
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("labels", [("QUASAR", "Star"), ("QSO", "STAR")])
def test_text_labels_matched_ignoring_case_and_qso(tmp_path, capsys, labels):
    """'QUASAR' / 'Star' (case) and 'QSO' (the quasar synonym train reads) name the model's
    quasar and star: evaluated, not left out as foreign labels."""
    model = _model(tmp_path)
    cat = _catalog(tmp_path, tuple(np.str_(v) for v in labels))
    code, out, err = _predict(capsys, tmp_path, model, cat)
    assert code == 0, err
    assert f"evaluation against --label label: {N} of {N} rows" in out
    assert "accuracy 1.0000" in out


def test_class_names_accepts_qso_for_quasar(tmp_path, capsys):
    """The --help example --class-names QSO,STAR on a model with classes star, quasar."""
    model = _model(tmp_path)
    cat = _catalog(tmp_path, (0, 1))
    code, out, err = _predict(capsys, tmp_path, model, cat, "--class-names", "QSO,STAR")
    assert code == 0, err
    assert "accuracy 1.0000" in out


def test_report_says_the_rows_are_the_catalogs_not_a_test_set(tmp_path, capsys):
    model = _model(tmp_path)
    code, out, err = _predict(capsys, tmp_path, model, _catalog(tmp_path, (1, 0)))
    assert "metrics on the catalog's labelled rows (n=400)" in out
    assert "test metrics" not in out


@pytest.mark.parametrize("positive, scope", [(2, "ROC AUC (quasar vs rest)"),
                                             (None, "ROC AUC (mean of one-vs-rest)")])
def test_multiclass_roc_auc_says_what_it_is_over(tmp_path, capsys, positive, scope):
    model = _model(tmp_path, ("star", "galaxy", "quasar"), positive=positive)
    code, out, err = _predict(capsys, tmp_path, model, _catalog(tmp_path, (2, 0)))
    assert code == 0, err
    assert scope in out


def test_dr6_coding_against_a_star_quasar_model(tmp_path, capsys):
    """The probe's case on real data: a model with classes star, quasar (0, 1) on DR6 rows,
    whose label 0 is QUASAR."""
    dr6 = np.load(data_file("sdssdr6_colors_class.200000.npy"))
    rows = dr6[np.random.default_rng(0).choice(dr6.shape[0], 6000, replace=False)]
    feats = ["u-g", "g-r", "r-i", "i-z"]
    X = np.stack([rows[f] for f in feats], axis=1).astype(np.float64)
    m = fastmlp.MLP([4, 16, 2], loss="cross_entropy", features=feats,
                    class_names=("star", "quasar"), seed=0)
    fastmlp.fit(m, X[:4000], 1 - rows["label"][:4000], epochs=5, standardize=True,
                progress=False)
    fastmlp.save(m, tmp_path / "m.npz")
    np.save(tmp_path / "dr6.npy", rows[4000:])
    args = ("predict", "--model", tmp_path / "m.npz", "--catalog", tmp_path / "dr6.npy",
            "--out", tmp_path / "o.npy", "--label", "label")
    code, out, err = run(capsys, *args)
    assert code == 0 and "label coding may differ" in err
    swapped = _figure(out, "accuracy "), _figure(out, "ROC AUC ")
    code, out, err = run(capsys, *args, "--class-names", "quasar,star")
    assert code == 0 and "worse than chance" not in err
    # two classes read the other way round: every right label was wrong before
    assert _figure(out, "accuracy ") == pytest.approx(1 - swapped[0], abs=2e-4)
    assert _figure(out, "ROC AUC ") == pytest.approx(1 - swapped[1], abs=2e-4)


def _figure(text, name):
    return float(text.split(name)[1].split(",")[0])
