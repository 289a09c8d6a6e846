"""``fastmlp predict --label``'s "worse than chance" warning is judged without the model's
cut: a good model whose stored cut is near 0 (``--min-completeness 1.0``) selects nearly
every row, and the cut's confusion matrix is noise around chance; two classes (or a positive
class) are judged on the ROC AUC, more classes without one on a clearly negative kappa."""

import numpy as np

import fastmlp
from fastmlp.cli import main

N = 400


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _model(tmp_path, classes=("star", "quasar"), threshold=None, positive=None):
    """Logistic regression on a: the last class where a > 0, the first where a < 0 (the
    middle one of three never)."""
    k = len(classes)
    m = fastmlp.MLP([2, k], loss="cross_entropy", features=["a", "b"],
                    class_names=classes, seed=0)
    m.weights[0][...] = 0.0
    m.weights[0][0, 0], m.weights[0][0, k - 1] = -4.0, 4.0
    m.biases[0][...] = 0.0
    if k > 2:
        m.biases[0][1] = -50.0
    if positive is not None or threshold is not None:
        m.set_contract(positive=k - 1 if positive is None else positive, threshold=threshold)
    path = tmp_path / "model.npz"
    fastmlp.save(m, path)
    return path


def _catalog(tmp_path, labels_of_a, name="cat.npy"):
    """Label ``labels_of_a(a)`` on features a, b; plus 6 rows at a = -6 (P(last) ~ 4e-11,
    below any sensible cut) labelled with the last class: the model ranks them wrong, as a
    good model ranks a few rows of a real catalog."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=N)
    a = np.where(np.abs(a) < 0.05, 0.5, a)
    lab = labels_of_a(a)
    a[:6], lab[:6] = -6.0, lab.max()
    t = np.zeros(N, dtype=[("a", "f8"), ("b", "f8"), ("label", "i8")])
    t["a"], t["b"], t["label"] = a, rng.normal(size=N), lab
    path = tmp_path / name
    np.save(path, t)
    return path


def _predict(capsys, tmp_path, model, cat, *extra):
    return run(capsys, "predict", "--model", model, "--catalog", cat, "--out",
               tmp_path / "out.npy", "--label", "label", *extra)


def test_good_model_with_a_cut_near_zero_does_not_warn(tmp_path, capsys):
    model = _model(tmp_path, threshold=1e-9)      # selects every row but the 6 at a = -6
    cat = _catalog(tmp_path, lambda a: (a > 0).astype(np.int64))
    code, out, err = _predict(capsys, tmp_path, model, cat)
    assert code == 0, err
    auc = float(out.split("ROC AUC ")[1].split(",")[0])
    assert auc > 0.95
    assert "worse than chance" not in err


def test_reversed_binary_coding_still_warns_on_the_auc(tmp_path, capsys):
    model = _model(tmp_path, threshold=1e-9)
    cat = _catalog(tmp_path, lambda a: (a < 0).astype(np.int64))
    code, out, err = _predict(capsys, tmp_path, model, cat)
    assert code == 0, err
    assert "worse than chance (ROC AUC 0.0" in err and "--class-names quasar,star" in err


def test_multiclass_with_positive_judged_on_its_auc(tmp_path, capsys):
    classes = ("star", "galaxy", "quasar")
    model = _model(tmp_path, classes, threshold=1e-9)
    cat = _catalog(tmp_path, lambda a: np.where(a > 0, 2, 0))
    code, out, err = _predict(capsys, tmp_path, model, cat)
    assert code == 0, err
    assert "worse than chance" not in err
    cat = _catalog(tmp_path, lambda a: np.where(a > 0, 0, 2), "rev.npy")
    code, out, err = _predict(capsys, tmp_path, model, cat)
    assert "ROC AUC (quasar vs rest) 0.0" in err
    # for more classes the warning gives the form, not the coding in use as an example
    assert "--class-names NAME0,NAME1,..." in err and "star,galaxy,quasar" not in err


def test_multiclass_without_positive_judged_on_the_argmax_kappa(tmp_path, capsys):
    classes = ("star", "galaxy", "quasar")
    model = _model(tmp_path, classes)
    cat = _catalog(tmp_path, lambda a: np.where(a > 0, 0, 2))
    code, out, err = _predict(capsys, tmp_path, model, cat)
    assert code == 0, err
    assert "worse than chance (Cohen's kappa -" in err
    assert "--class-names NAME0,NAME1,..." in err
    code, out, err = _predict(capsys, tmp_path, model,
                              _catalog(tmp_path, lambda a: np.where(a > 0, 2, 0), "ok.npy"))
    assert "worse than chance" not in err
