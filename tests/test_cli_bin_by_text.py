"""``fastmlp train --bin-by`` on a text column (class names) is refused naming the flag and
what it needs, not NumPy's "could not convert string to float: np.str_('GALAXY')"."""

import numpy as np

from fastmlp.cli import main
from conftest import data_file, ugriz_magnitudes


def _train(capsys, catalog, *extra):
    code = main(["train", "--catalog", str(catalog), "--features", "colors:ugriz",
                 "--epochs", "1", "--hidden", "4", "--quiet", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _csv(tmp_path, n=200):
    rng = np.random.default_rng(2)
    mags = ugriz_magnitudes(n, rng)
    cls = np.array(["GALAXY", "STAR", "QSO"])[rng.integers(0, 3, n)]
    path = tmp_path / "cat.csv"
    lines = ["u,g,r,i,z,class"] + [",".join(f"{mags[b][k]:.5f}" for b in "ugriz")
                                    + f",{cls[k]}" for k in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path, cls


def test_bin_by_a_text_column_is_refused_clearly(tmp_path, capsys):
    path, cls = _csv(tmp_path)
    code, out, err = _train(capsys, path, "--label", "class", "--bin-by", "class")
    assert code != 0
    assert "--bin-by class: bins a numeric column" in err
    assert f"such as {str(cls[0])!r}" in err and "could not convert" not in err
    # a numeric column still bins
    code, out, err = _train(capsys, path, "--label", "class", "--bin-by", "r", "--bins", "3")
    assert code == 0, err
    assert "--bin-by" not in err
    table = out.split("per r bin")[1].splitlines()
    assert "r bin" in table[1]
    assert sum(line.strip().startswith("[") for line in table) == 3    # --bins 3


def test_bin_by_class_on_dr17_rows(tmp_path, capsys):
    src = data_file("sdss17_star_classification_first30k.csv")
    with open(src) as f:
        head = [next(f) for _ in range(601)]
    path = tmp_path / "dr17.csv"
    path.write_text("".join(head))
    code, out, err = _train(capsys, path, "--label", "class", "--bin-by", "class")
    assert code != 0
    assert "--bin-by class: bins a numeric column" in err and "'GALAXY'" in err
