"""A label column of numbers with a stray text ('n/a' among redshifts), given without
--task, is refused naming that text and its data row (it was read as hundreds of class
names: in memory an unrelated --validation error, streamed a quiet ~400-class
classifier), and so is a text column of more distinct names than MAX_LABEL_CLASSES, the
same in memory (load_catalog) and streamed (CatalogStream, fit_stream), whatever the
chunks; columns of class names (DR17's GALAXY / QSO / STAR, '1', '2', '3', 'unknown', star
types) still read as classes and train."""

import csv

import numpy as np
import pytest

from conftest import data_file
from fastmlp import MLP, fit_stream
from fastmlp.cli import main
from fastmlp.data import CatalogStream, load_catalog
from fastmlp.data.catalog import MAX_LABEL_CLASSES

N = 420
STRAY_AT = 300                  # 0-based: data row 301
WHERE = "(first 'n/a' in data row 301)"
STRAY_ONE = "holds numbers but also 1 non-numeric value " + WHERE
DR17 = "sdss17_star_classification_first30k.csv"


def _catalog(path, labels, name="redshift"):
    """u g r i z magnitudes and the label column ``name`` holding ``labels`` (text)."""
    rng = np.random.default_rng(7)
    mags = rng.normal(19.0, 1.0, (len(labels), 5))
    with open(path, "w") as f:
        f.write(f"u,g,r,i,z,{name}\n")
        for row, t in zip(mags, labels):
            f.write(",".join(f"{v:.4f}" for v in row) + f",{t}\n")
    return path


def _redshifts(n=N, seed=3):
    return [f"{v:.4f}" for v in np.random.default_rng(seed).uniform(0.0, 2.0, n)]


def _stray_catalog(tmp_path, name="stray.csv"):
    z = _redshifts()
    z[STRAY_AT] = "n/a"
    return _catalog(tmp_path / name, z)


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _says_stray(text, said=STRAY_ONE):
    assert said in text, text
    assert "mark it missing" in text and "correct it" in text, text
    assert "--validation" not in text and "class of its own" not in text, text


# -- the CLI, no --task ----------------------------------------------------------------------
@pytest.mark.parametrize("stream", [[], ["--stream"], ["--stream", "--chunk-rows", 100]])
def test_cli_without_task_refuses_numbers_with_a_stray_text(capsys, tmp_path, stream):
    """In memory it ended in '--validation 0.1 holds out no row'; in one chunk it trained a
    classifier of ~400 classes; in several it named no count."""
    path = _stray_catalog(tmp_path)
    model = tmp_path / "m.npz"
    code, out, err = _run(capsys, "train", "--catalog", path, "--features", "colors:ugriz",
                          "--label", "redshift", *stream, "--epochs", 1, "--hidden", 8,
                          "--quiet", "--out", model)
    assert code == 2, (out, err)
    _says_stray(err)
    assert not model.exists()


@pytest.mark.parametrize("stream", [[], ["--stream"]])
def test_cli_dr17_redshift_with_a_stray_refused_its_class_column_trains(capsys, tmp_path,
                                                                        stream):
    """Real data: DR17's redshift column with one 'n/a' is refused without --task, while its
    class column (GALAXY / QSO / STAR) of the same file still trains a 3-class model."""
    with open(data_file(DR17), newline="") as f:
        rows = [r for _, r in zip(range(1500), csv.reader(f))]
    header, body = rows[0], rows[1:]
    body[STRAY_AT][header.index("redshift")] = "n/a"
    path = tmp_path / "dr17.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header] + body)
    common = ["train", "--catalog", path, "--features", "colors:ugriz", *stream,
              "--epochs", 1, "--hidden", 8, "--quiet"]
    code, out, err = _run(capsys, *common, "--label", "redshift", "--out", tmp_path / "z.npz")
    assert code == 2, (out, err)
    _says_stray(err)
    model = tmp_path / "c.npz"
    code, out, err = _run(capsys, *common, "--label", "class", "--out", model)
    assert code == 0, err
    import fastmlp
    assert list(fastmlp.load(model).class_names) == ["GALAXY", "QSO", "STAR"]


# -- the Python loaders -------------------------------------------------------------------
@pytest.mark.parametrize("where", [None, "r > 0"])
def test_load_catalog_refuses_numbers_with_a_stray_text(tmp_path, where):
    with pytest.raises(ValueError) as info:
        load_catalog(_stray_catalog(tmp_path), features="colors:ugriz", label="redshift",
                     where=where)
    _says_stray(str(info.value))


@pytest.mark.parametrize("chunk_rows", [10_000, 100, 7])
def test_stream_scan_and_fit_stream_refuse_numbers_with_a_stray_text(tmp_path, chunk_rows):
    """One chunk read the column as ~400 names; several named no count of the strays."""
    path = _stray_catalog(tmp_path)
    stream = CatalogStream(path, features="colors:ugriz", label="redshift",
                           chunk_rows=chunk_rows)
    with pytest.raises(ValueError) as info:
        stream.scan()
    _says_stray(str(info.value))
    with pytest.raises(ValueError) as info:     # classes asked for (the default loss)
        fit_stream(MLP([4, 8, 3]), path, features="colors:ugriz", label="redshift",
                   chunk_rows=chunk_rows, epochs=1, progress=False)
    _says_stray(str(info.value))


def _read_both(path, label):
    """(in memory, streamed): the class names, or the ValueError's text."""
    said = []
    for read in (lambda: load_catalog(path, features="colors:ugriz", label=label),
                 lambda: CatalogStream(path, features="colors:ugriz", label=label).scan()):
        try:
            said.append(list(read().class_names))
        except ValueError as exc:
            said.append(str(exc))
    return said


def test_the_rule_numbers_with_strays_refused_class_columns_kept(tmp_path):
    """One rule in memory and streamed: the numbers' share of the distinct values or rows,
    and whether the numbers alone would be class labels."""
    n, rng = 240, np.random.default_rng(5)
    mostly_na = ["n/a" if k % 5 < 3 else v for k, v in enumerate(_redshifts(n))]
    kelvin = [str(int(t)) for t in rng.integers(3000, 9000, n)]
    kelvin[11] = "unknown"
    refused = {     # column -> the strays as the message counts them
        "mostly_na": (mostly_na, "144 non-numeric values (first 'n/a' in data row 1)"),
        "kelvin": (kelvin, "1 non-numeric value (first 'unknown' in data row 12)"),
    }
    for name, (labels, said) in refused.items():
        path = _catalog(tmp_path / f"{name}.csv", labels, "label")
        for text in _read_both(path, "label"):
            assert isinstance(text, str), (name, text)
            _says_stray(text, "holds numbers but also " + said)
    kept = {
        "codes": ["unknown" if k % 7 == 0 else str(k % 3 + 1) for k in range(n)],
        "types": [("A0", "B5", "F5.5", "G2")[k % 4] for k in range(n)],
        "names_and_a_number": ["7" if k == 5 else ("STAR", "QSO")[k % 2] for k in range(n)],
        "mixed_codes": [("0", "1", "2", "STAR", "QSO")[k % 5] for k in range(n)],
        "signed_codes": ["other" if k % 9 == 0 else str(k % 11 - 5) for k in range(n)],
    }
    for name, labels in kept.items():
        path = _catalog(tmp_path / f"{name}.csv", labels, "label")
        expected = sorted(set(labels))
        assert _read_both(path, "label") == [expected, expected], name


def test_too_many_distinct_names_refused_in_memory_and_streamed(tmp_path, capsys):
    """A column of a name per object (an id) was read as that many classes."""
    n = MAX_LABEL_CLASSES + 50
    path = _catalog(tmp_path / "ids.csv", [f"SDSS J{k:06d}" for k in range(n)], "name")
    said = _read_both(path, "name")
    for text in said:
        assert isinstance(text, str), text
        assert f"holds {n} distinct names, more than the {MAX_LABEL_CLASSES}" in text, text
        assert "is it an id" in text, text
    for stream in ([], ["--stream"]):
        code, out, err = _run(capsys, "train", "--catalog", path, "--features",
                              "colors:ugriz", "--label", "name", *stream, "--epochs", 1,
                              "--quiet", "--out", tmp_path / "m.npz")
        assert code == 2 and f"holds {n} distinct names" in err, err
    # as many names as classes may be: still classes
    fewer = _catalog(tmp_path / "fewer.csv",
                     [f"c{k % MAX_LABEL_CLASSES:04d}" for k in range(n)], "name")
    assert [len(names) for names in _read_both(fewer, "name")] == [MAX_LABEL_CLASSES] * 2
