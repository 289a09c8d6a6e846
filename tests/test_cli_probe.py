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
