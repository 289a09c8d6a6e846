"""A model trained in Python, used from C.

``fastmlp.io.c_model.write_c_model`` writes the model with its whole contract; the example
``examples/c/classify_catalog`` (csrc/model_file.c through fastmlp.h) reads it, derives the
colours from a CSV catalog's u,g,r,i,z columns and must print model.predict_proba's numbers:
within 1e-6 relative for float32, 1e-12 for float64.  Corrupt files must be refused with an
error, in C and in Python.  The C parts skip (with the reason) without make and a C compiler.
"""

import csv
import math
import os
import struct
import subprocess
import zlib

import numpy as np
import pytest

import fastmlp
from fastmlp.features import FeatureSpec
from fastmlp.io.c_model import HEADER, SCALARS, c_model_bytes, read_c_model, write_c_model

BANDS = "ugriz"
RTOL = {"float32": 1e-6, "float64": 1e-12}


# classify_exe: the C example program, built once per session (conftest.py)


def _mags(n, seed, galaxy_fraction=0.0):
    cat = fastmlp.make_photometric_catalog(n, seed=seed, galaxy_fraction=galaxy_fraction)
    return {b: cat.extra[b].astype(np.float64) for b in BANDS}, cat


def _train(features, dtype, y, mags, loss=None, n_out=1, **contract):
    """A small model fitted on standardised features, then given its contract."""
    X = FeatureSpec(features).transform(mags)
    mean, std = X.mean(axis=0), X.std(axis=0)
    model = fastmlp.MLP([X.shape[1], 16, n_out], dtype=dtype, seed=1)
    fastmlp.fit(model, ((X - mean) / std).astype(dtype), y, loss=loss, epochs=3,
                progress=False, validation=None)
    return model.set_contract(features=features, standardization=(mean, std), **contract)


def _write_catalog(path, mags, missing_row=None):
    """A CSV catalog: an id, the magnitudes (exact: repr), a text column; one row may have
    an empty u (a missing value)."""
    n = len(mags["u"])
    with open(path, "w", newline="") as f:
        f.write("obj_id,u,g,r,i,z,class\n")
        for k in range(n):
            vals = [repr(float(mags[b][k])) for b in BANDS]
            if k == missing_row:
                vals[0] = ""
            f.write(f"{k}," + ",".join(vals) + ",STAR\n")


def _run(exe, model_path, catalog_path):
    res = subprocess.run([str(exe), str(model_path), str(catalog_path)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(res.stdout.splitlines()))
    return rows[0], np.array([[float(v) for v in r] for r in rows[1:]])


def _table(mags, missing_row):
    t = {b: v.copy() for b, v in mags.items()}
    if missing_row is not None:
        t["u"][missing_row] = np.nan
    return t


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_classifier_matches_python(classify_exe, tmp_path, dtype):
    mags, cat = _mags(2000, seed=3)
    model = _train("colors:ugriz", dtype, cat.y, mags, class_names=("star", "quasar"),
                   threshold=0.3, temperature=1.5)
    test_mags, _ = _mags(300, seed=4)
    _write_catalog(tmp_path / "cat.csv", test_mags, missing_row=7)
    write_c_model(model, tmp_path / "m.fmlp")
    header, out = _run(classify_exe, tmp_path / "m.fmlp", tmp_path / "cat.csv")
    assert header == ["label", "p_star", "p_quasar"]
    table = _table(test_mags, 7)
    proba = model.predict_proba(table)
    np.testing.assert_allclose(out[:, 1:], proba, rtol=RTOL[dtype], atol=0, equal_nan=True)
    np.testing.assert_array_equal(out[:, 0], model.predict(table))
    assert out[7, 0] == -1 and np.isnan(out[7, 1:]).all()
    # the threshold is applied in C: some rows are quasars only because of it
    assert ((proba[:, 1] >= 0.3) & (proba[:, 1] < 0.5)).any()
    assert (out[proba[:, 1] >= 0.3, 0] == 1).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_classifier_matches_python(classify_exe, tmp_path, dtype):
    mags, cat = _mags(2000, seed=5, galaxy_fraction=0.3)
    model = _train("colors:ugriz+r", dtype, cat.y, mags, n_out=3,
                   class_names=cat.class_names, positive=1, threshold=0.4, temperature=0.5)
    test_mags, _ = _mags(300, seed=6, galaxy_fraction=0.3)
    _write_catalog(tmp_path / "cat.csv", test_mags)
    write_c_model(model, tmp_path / "m.fmlp")
    header, out = _run(classify_exe, tmp_path / "m.fmlp", tmp_path / "cat.csv")
    assert header == ["label"] + [f"p_{c}" for c in cat.class_names]
    proba = model.predict_proba(test_mags)
    np.testing.assert_allclose(out[:, 1:], proba, rtol=RTOL[dtype], atol=0)
    np.testing.assert_array_equal(out[:, 0], model.predict(test_mags))
    assert len(np.unique(out[:, 0])) == 3


def test_multilabel_model_matches_python(classify_exe, tmp_path):
    """Several sigmoid outputs (one probability each, a 0/1 label per output at the
    threshold).  The kernels train bce with one output only, so the weights here are the
    initial ones: the contract and the C path are what is checked."""
    mags, _ = _mags(300, seed=13)
    X = FeatureSpec("colors:ugriz+r").transform(mags)
    model = fastmlp.MLP([5, 8, 3], activation="tanh", seed=2, output="sigmoid",
                        features="colors:ugriz+r", standardization=(X.mean(0), X.std(0)),
                        class_names=("a", "b", "c"), threshold=0.4, temperature=0.8)
    mags["g"][5] = -9999.0         # a missing magnitude: a row of -1, in C as in Python
    _write_catalog(tmp_path / "cat.csv", mags)
    write_c_model(model, tmp_path / "m.fmlp")
    header, out = _run(classify_exe, tmp_path / "m.fmlp", tmp_path / "cat.csv")
    assert header == ["label_a", "label_b", "label_c", "p_a", "p_b", "p_c"]
    np.testing.assert_allclose(out[:, 3:], model.predict_proba(mags), rtol=1e-6, atol=0)
    labels = model.predict(mags)
    np.testing.assert_array_equal(out[:, :3], labels)
    assert (labels[5] == -1).all() and 0 < np.delete(labels, 5, axis=0).mean() < 1


def test_log1p_regressor_matches_python(classify_exe, tmp_path):
    mags, cat = _mags(2000, seed=7, galaxy_fraction=0.2)
    model = _train("colors:ugriz", "float32", np.log1p(cat.extra["redshift"]), mags,
                   loss="mse", target_transform="log1p")
    assert model.link == "identity"
    test_mags, _ = _mags(200, seed=8)
    _write_catalog(tmp_path / "cat.csv", test_mags)
    write_c_model(model, tmp_path / "m.fmlp")
    header, out = _run(classify_exe, tmp_path / "m.fmlp", tmp_path / "cat.csv")
    assert header == ["value"]
    z = model.predict(test_mags)
    np.testing.assert_allclose(out[:, 0], z, rtol=1e-6, atol=0)
    assert not np.allclose(z, model.decision_function(test_mags)[:, 0])   # expm1 applied


def test_missing_feature_column_is_an_error(classify_exe, tmp_path):
    mags, cat = _mags(500, seed=9)
    model = _train("colors:ugriz", "float32", cat.y, mags)
    write_c_model(model, tmp_path / "m.fmlp")
    (tmp_path / "cat.csv").write_text("u,g,r,z\n20,19,18,17\n")
    res = subprocess.run([str(classify_exe), str(tmp_path / "m.fmlp"),
                          str(tmp_path / "cat.csv")], capture_output=True, text=True)
    assert res.returncode == 1
    assert "no column for feature 'r-i'" in res.stderr and "'i-z'" in res.stderr


# ---- corrupt files: refused with an error, never a crash ------------------------------------
def _with_payload(data, payload):
    """data's header, rewritten for a new payload (so only the payload's content is wrong)."""
    magic, version, _, _ = HEADER.unpack_from(data)
    return HEADER.pack(magic, version, zlib.crc32(payload), len(payload)) + payload


CORRUPTIONS = ("truncated", "flipped byte", "wrong magic", "version 3", "huge layer",
               "2^31 layers", "huge string", "huge length", "empty")


def _corruptions(data):
    payload = bytearray(data[HEADER.size:])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    huge_layer = bytearray(payload)        # sizes[1] = 2^40 (checksum made to agree)
    struct.pack_into("<Q", huge_layer, SCALARS.size + 8, 1 << 40)
    many_layers = bytearray(payload)       # n_layers = 2^31
    struct.pack_into("<I", many_layers, 0, 1 << 31)
    long_name = bytearray(payload)         # the first feature name claims 2^32 - 1 bytes
    n_sizes = struct.unpack_from("<I", payload, 0)[0] + 1
    struct.pack_into("<I", long_name, SCALARS.size + 8 * n_sizes + 4, 0xFFFFFFFF)
    huge_length = bytearray(data)          # the header declares 2^62 payload bytes
    struct.pack_into("<Q", huge_length, 16, 1 << 62)
    return {
        "truncated": (data[:-10], "not a fastmlp model file, truncated"),
        "flipped byte": (bytes(flipped), "checksum"),
        "wrong magic": (b"XMLPMODL" + data[8:], "not a fastmlp model file"),
        "version 3": (data[:8] + struct.pack("<I", 3) + data[12:], "format version"),
        "huge layer": (_with_payload(data, bytes(huge_layer)), "inconsistent"),
        "2^31 layers": (_with_payload(data, bytes(many_layers)), "inconsistent"),
        "huge string": (_with_payload(data, bytes(long_name)), "inconsistent"),
        "huge length": (bytes(huge_length), "truncated"),
        "empty": (b"", "not a fastmlp model file"),
    }


@pytest.fixture(scope="module")
def good_model_bytes():
    mags, cat = _mags(500, seed=10)
    model = _train("colors:ugriz", "float32", cat.y, mags, class_names=("star", "quasar"))
    return c_model_bytes(model)


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corrupt_file_refused_by_c(classify_exe, tmp_path, good_model_bytes, case):
    data, message = _corruptions(good_model_bytes)[case]
    (tmp_path / "bad.fmlp").write_bytes(data)
    (tmp_path / "cat.csv").write_text("u,g,r,i,z\n20,19,18,17.5,17\n")
    res = subprocess.run([str(classify_exe), str(tmp_path / "bad.fmlp"),
                          str(tmp_path / "cat.csv")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, (res.returncode, res.stderr)   # an error, not a signal
    assert message in res.stderr and res.stdout == ""


@pytest.mark.parametrize("case", CORRUPTIONS)
def test_corrupt_file_refused_by_python(tmp_path, good_model_bytes, case):
    data, _ = _corruptions(good_model_bytes)[case]
    (tmp_path / "bad.fmlp").write_bytes(data)
    with pytest.raises(ValueError, match="bad.fmlp"):
        read_c_model(tmp_path / "bad.fmlp")


def test_string_not_utf8_refused_by_python_naming_the_file(tmp_path, good_model_bytes):
    # a checksum made to agree with a name whose first byte is 0xff: a ValueError naming the
    # file and the field, not a bare UnicodeDecodeError
    payload = bytearray(good_model_bytes[HEADER.size:])
    n_sizes = struct.unpack_from("<I", payload, 0)[0] + 1
    payload[SCALARS.size + 8 * n_sizes + 8] = 0xFF
    (tmp_path / "bad.fmlp").write_bytes(_with_payload(good_model_bytes, bytes(payload)))
    with pytest.raises(ValueError, match=r"bad\.fmlp: a string field is not valid UTF-8"):
        read_c_model(tmp_path / "bad.fmlp")


# ---- the Python side alone (no compiler needed) ----------------------------------------------
def test_round_trip_keeps_weights_and_contract(tmp_path):
    mags, cat = _mags(1000, seed=11, galaxy_fraction=0.2)
    model = _train("colors:ugriz+r", "float64", cat.y, mags, n_out=3,
                   class_names=cat.class_names, positive=1, threshold=0.25, temperature=2.0)
    back = read_c_model(write_c_model(model, tmp_path / "m.fmlp"))
    assert back.layer_sizes == model.layer_sizes and back.activation == model.activation
    assert back.dtype == model.dtype
    np.testing.assert_array_equal(back.params, model.params)
    for name, value in model.contract().items():
        if name == "standardization":
            for a, b in zip(back.standardization, value):
                np.testing.assert_array_equal(a, b)
        else:
            assert getattr(back, name) == value, name
    np.testing.assert_array_equal(back.predict_proba(mags), model.predict_proba(mags))


def test_write_is_atomic_and_checks_its_input(tmp_path):
    mags, cat = _mags(300, seed=12)
    model = _train("colors:ugriz", "float32", cat.y, mags)
    path = write_c_model(model, tmp_path / "m.fmlp")
    before = path.read_bytes()
    with pytest.raises(TypeError, match="fastmlp.MLP"):
        write_c_model("not a model", path)
    model.set_contract(class_names=("star", "bad\0name"))
    with pytest.raises(ValueError, match="class name"):
        write_c_model(model, path)
    assert path.read_bytes() == before                  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["m.fmlp"]   # no temporary left over
    assert before[:8] == b"FMLPMODL" and zlib.crc32(before[24:]) == \
        struct.unpack_from("<I", before, 12)[0]
    assert math.isnan(struct.unpack_from("<d", before, 24 + 32)[0])   # threshold: None


def test_a_bad_output_is_refused_by_name_not_by_a_tuple_index(tmp_path):
    """output='foo' used to reach the writer and fail there with 'tuple.index(x): x not in
    tuple'; assigned, it is refused naming the field and the allowed values, and a contract
    broken behind the properties' back is refused the same way when written."""
    model = fastmlp.MLP([4, 6, 1], seed=0)
    allowed = r"output must be one of \[None, 'sigmoid', 'softmax', 'identity'\], got 'foo'"
    with pytest.raises(ValueError, match=allowed):
        model.output = "foo"
    assert model.output is None
    model._contract["output"] = "foo"        # the old unchecked attribute, in effect
    with pytest.raises(ValueError, match=allowed):
        write_c_model(model, tmp_path / "m.fmlp")
    model._contract["output"] = None
    model.activation = "foo"
    with pytest.raises(ValueError, match=r"unknown activation 'foo'; expected one of: "):
        write_c_model(model, tmp_path / "m.fmlp")
    assert os.listdir(tmp_path) == []


def test_write_refuses_nan_parameters_and_a_contract_changed_in_place(tmp_path):
    model = fastmlp.MLP([4, 6, 1], seed=0, standardization=([0.0] * 4, [1.0] * 4))
    model.biases[1][0] = np.nan                  # a view into params
    with pytest.raises(ValueError, match=r"model parameters contain 1 non-finite value "
                       r"\(NaN or inf\): 1 in biases\[1\] \(layer 2\); refusing to write a "
                       r"model that predicts NaN"):
        write_c_model(model, tmp_path / "m.fmlp")
    model.biases[1][0] = 0.0
    std = model.standardization[1]
    std.flags.writeable = True
    std[3] = -1.0                                # the C loader refuses it
    with pytest.raises(ValueError, match=r"input column 3 has mean 0 and std -1"):
        write_c_model(model, tmp_path / "m.fmlp")
    assert os.listdir(tmp_path) == []


def test_sdss_missing_value_reads_as_missing_in_c_as_in_python(classify_exe, tmp_path):
    """-9999 in a raw column (SDSS's missing value): classify_catalog prints label -1 and
    NaN probabilities for that row, as model.predict_proba does on the same table (it used
    to classify the row from a colour of ~1e4)."""
    mags, cat = _mags(600, seed=3)
    model = _train("colors:ugriz", "float32", cat.y, mags, class_names=("star", "quasar"))
    test_mags, _ = _mags(40, seed=4)
    test_mags["g"][5] = -9999.0
    test_mags["z"][11] = -9999.0
    _write_catalog(tmp_path / "cat.csv", test_mags)
    write_c_model(model, tmp_path / "m.fmlp")
    _, out = _run(classify_exe, tmp_path / "m.fmlp", tmp_path / "cat.csv")
    proba = model.predict_proba(test_mags)
    np.testing.assert_allclose(out[:, 1:], proba, rtol=RTOL["float32"], atol=0,
                               equal_nan=True)
    np.testing.assert_array_equal(out[:, 0], model.predict(test_mags))
    assert (out[[5, 11], 0] == -1).all() and np.isnan(out[[5, 11], 1:]).all()
    assert np.isfinite(np.delete(out, [5, 11], axis=0)).all()


def test_null_fields_are_missing_and_a_failed_run_leaves_no_output(classify_exe, tmp_path):
    """NA / null / N/A / None fields are missing values, as Python's CSV reader takes them
    (label -1, NaN probabilities); a bad field later in the file exits 1 leaving no OUT.csv
    (not its first rows); OUT.csv that is the catalog itself is refused, the catalog kept."""
    mags, cat = _mags(600, seed=5)
    model = _train("colors:ugriz", "float64", cat.y, mags, class_names=("star", "quasar"))
    write_c_model(model, tmp_path / "m.fmlp")
    test_mags, _ = _mags(40, seed=6)
    _write_catalog(tmp_path / "cat.csv", test_mags)
    lines = (tmp_path / "cat.csv").read_text().splitlines()
    for k, null in zip((3, 5, 8, 9), ("NA", "null", "N/A", "None")):
        f = lines[k + 1].split(",")
        f[2] = null                                   # g
        lines[k + 1] = ",".join(f)
    (tmp_path / "nulls.csv").write_text("\n".join(lines) + "\n")
    header, out = _run(classify_exe, tmp_path / "m.fmlp", tmp_path / "nulls.csv")
    table = _table(test_mags, None)
    table["g"][[3, 5, 8, 9]] = np.nan
    np.testing.assert_array_equal(out[:, 0], model.predict(table))
    assert (out[[3, 5, 8, 9], 0] == -1).all() and np.isnan(out[[3, 5, 8, 9], 1:]).all()

    bad = lines[:]
    f = bad[30].split(",")
    f[1] = "abc"
    bad[30] = ",".join(f)
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n")
    res = subprocess.run([str(classify_exe), str(tmp_path / "m.fmlp"), str(tmp_path / "bad.csv"),
                          str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "'abc' is not a number" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "cat.csv", "m.fmlp",
                                                           "nulls.csv"]
    before = (tmp_path / "cat.csv").read_bytes()
    res = subprocess.run([str(classify_exe), str(tmp_path / "m.fmlp"), str(tmp_path / "cat.csv"),
                          str(tmp_path / "cat.csv")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "refusing to overwrite the input" in res.stderr
    assert (tmp_path / "cat.csv").read_bytes() == before
    res = subprocess.run([str(classify_exe), str(tmp_path / "m.fmlp"), str(tmp_path / "cat.csv"),
                          str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 41


def test_output_through_a_symlink_or_into_a_fifo_keeps_them(classify_exe, tmp_path):
    """OUT.csv a symlink: the file it points to is written and the link stays; a FIFO (as
    /dev/stdout is a device): written directly, never replaced by a regular file."""
    import os
    import stat
    import threading
    mags, cat = _mags(300, seed=5)
    model = _train("colors:ugriz", "float64", cat.y, mags, class_names=("star", "quasar"))
    write_c_model(model, tmp_path / "m.fmlp")
    test_mags, _ = _mags(20, seed=6)
    _write_catalog(tmp_path / "cat.csv", test_mags)
    (tmp_path / "real.csv").write_text("old\n")
    os.symlink(tmp_path / "real.csv", tmp_path / "link.csv")
    args = [str(classify_exe), str(tmp_path / "m.fmlp"), str(tmp_path / "cat.csv")]
    res = subprocess.run(args + [str(tmp_path / "link.csv")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "link.csv").is_symlink()
    assert len((tmp_path / "real.csv").read_text().splitlines()) == 21
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    res = subprocess.run(args + [str(fifo)], capture_output=True, text=True, timeout=60)
    reader.join(timeout=60)
    assert res.returncode == 0, res.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert len(got[0].splitlines()) == 21
    res = subprocess.run(args + [str(tmp_path / "no_dir" / "out.csv")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1 and "no_dir/out.csv: cannot write there" in res.stderr
    os.symlink(tmp_path / "missing.csv", tmp_path / "dangling.csv")   # refused, link kept
    res = subprocess.run(args + [str(tmp_path / "dangling.csv")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 1 and "a symlink to a file that does not exist" in res.stderr
    assert (tmp_path / "dangling.csv").is_symlink()
    def mode_after_writing(path):
        """OUT.csv's mode after a run under umask 022."""
        old_mask = os.umask(0o022)
        try:
            res = subprocess.run(args + [str(path)], capture_output=True, text=True,
                                 timeout=60)
        finally:
            os.umask(old_mask)
        assert res.returncode == 0, res.stderr
        return stat.S_IMODE(os.stat(path).st_mode)

    # a new OUT.csv gets fopen's mode (0666 less the umask), not mkstemp's 0600
    assert mode_after_writing(tmp_path / "new.csv") == 0o644
    os.chmod(tmp_path / "new.csv", 0o640)     # a replaced OUT.csv keeps its own mode
    assert mode_after_writing(tmp_path / "new.csv") == 0o640
    assert sorted(p.name for p in tmp_path.iterdir() if "csv." in p.name) == []
