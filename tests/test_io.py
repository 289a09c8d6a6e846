"""fastmlp.io: save/load round trip, atomic writes, refusing damaged files, and bit-identical
continuation of training from a saved optimizer."""

import json
import os
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp import io as fio
from fastmlp.io import model_file
from fastmlp import optim
from fastmlp.model import FeatureNames
from fastmlp.data import make_photometric_catalog


@pytest.fixture(scope="module")
def data():
    X, y = make_photometric_catalog(600, seed=1)
    X = np.asarray(X, dtype=np.float64)
    return (X - X.mean(0)) / X.std(0), y


def _trained(data, sizes=(4, 16, 1), optimizer="adam", dtype="float32", epochs=2):
    X, y = data
    model = fastmlp.MLP(list(sizes), activation="tanh", seed=3, dtype=dtype)
    hist = fastmlp.fit(model, X, y, optimizer=optimizer, lr=0.01, batch_size=64,
                       epochs=epochs, validation=None, seed=5, progress=False)
    return model, hist.optimizer


def save_model(model, path, feature_names=None, standardization=None, class_names=None,
               optimizer=None, training_config=None):
    """The model with these contract fields and optimizer, saved by fastmlp.io.save."""
    model.set_contract(features=feature_names, standardization=standardization,
                       class_names=class_names)
    model.optimizer = optimizer
    return fio.save(model, path, training_config=training_config)


def _metadata(path):
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["metadata"]))


def _full_save(model, opt, path):
    return save_model(model, path, feature_names=["u-g", "g-r", "r-i", "i-z"],
                          standardization=([1.0, 2.0, 3.0, 4.0], [0.5, 0.25, 2.0, 1.0]),
                          class_names=["QSO", "STAR"], optimizer=opt,
                          training_config={"epochs": 2, "lr": 0.01, "seed": 5,
                                           "np": np.float32(1.5)})


def test_round_trip_everything(data, tmp_path):
    model, opt = _trained(data)
    p = _full_save(model, opt, tmp_path / "m.npz")
    assert p == tmp_path / "m.npz" and p.exists()
    m = fio.load(p)
    assert isinstance(m, fastmlp.MLP)
    assert m.layer_sizes == model.layer_sizes and m.activation == "tanh"
    assert m.dtype == np.float32 and m.loss == "bce"
    np.testing.assert_array_equal(m.params, model.params)
    assert m.params.dtype == model.params.dtype
    np.testing.assert_array_equal(m.predict_proba(data[0]), model.predict_proba(data[0]))
    assert list(m.feature_names) == ["u-g", "g-r", "r-i", "i-z"]
    assert list(m.class_names) == ["QSO", "STAR"]
    np.testing.assert_array_equal(m.standardization[0], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(m.standardization[1], [0.5, 0.25, 2.0, 1.0])
    assert m.training_config == {"epochs": 2, "lr": 0.01, "seed": 5, "np": 1.5}
    assert _metadata(p)["fastmlp_version"] == fastmlp.__version__
    assert _metadata(p)["format_version"] == fio.FORMAT_VERSION
    o = m.optimizer
    assert type(o) is optim.Adam and o.params is m.params
    assert o.step_count == opt.step_count > 0 and o.lr == opt.lr and o.betas == opt.betas
    np.testing.assert_array_equal(o.state, opt.state)
    # the weight views follow the loaded buffer
    m.weights[0][0, 0] = 123.0
    assert m.params[0] == 123.0


@pytest.mark.parametrize("name", ["sgd", "nesterov", "adagrad", "rmsprop", "adamw"])
def test_every_optimizer_round_trips(data, tmp_path, name):
    model, opt = _trained(data, optimizer=name, epochs=1)
    m = fio.load(save_model(model, tmp_path / "m.npz", optimizer=opt))
    assert type(m.optimizer) is type(opt)
    assert m.optimizer.state_dict()["hyper"] == opt.state_dict()["hyper"]
    np.testing.assert_array_equal(m.optimizer.state, opt.state)


def test_minimal_and_float64_multiclass(tmp_path):
    model = fastmlp.MLP([3, 5, 4], activation="gelu", dtype="float64", seed=1)
    m = fio.load(save_model(model, tmp_path / "bare.npz"))
    np.testing.assert_array_equal(m.params, model.params)
    assert m.dtype == np.float64 and m.loss is None and m.optimizer is None
    assert m.feature_names is None and m.standardization is None and m.class_names is None
    with np.load(tmp_path / "bare.npz", allow_pickle=False) as z:  # no pickles inside
        meta = json.loads(str(z["metadata"]))
        assert meta["architecture"] == {"layer_sizes": [3, 5, 4], "activation": "gelu",
                                        "dtype": "float64", "n_params": 44}
        assert meta["contract"]["loss"] is None


def test_feature_names_load_as_saved(tmp_path):
    """A model file's feature names are read back literally (they were expanded when the
    model was built): a column "weight, kg" or "flux " stays one column as it is."""
    from fastmlp.model import FeatureNames
    names = ("weight, kg", "flux ", "colors:ab", "u-g")
    model = fastmlp.MLP([4, 3, 1], features=FeatureNames(names))
    assert model.feature_names == names
    assert fio.load(fio.save(model, tmp_path / "m.npz")).feature_names == names
    from fastmlp.io import read_c_model, write_c_model     # the C model file too
    assert read_c_model(write_c_model(model, tmp_path / "m.fmlp")).feature_names == names
    spec = fastmlp.MLP([5, 1], features="colors:ugriz+r").features   # a spec, expanded once
    assert fio.load(save_model(fastmlp.MLP([5, 1]), tmp_path / "s.npz", feature_names=spec)) \
        .feature_names == ("u-g", "g-r", "r-i", "i-z", "r")
    with pytest.raises(ValueError, match="more than once"):
        FeatureNames(["a", "a"])


@pytest.mark.parametrize("epochs_n, epochs_m", [(3, 2)])
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "nesterov", "adagrad"])
def test_bit_identical_continuation(data, tmp_path, optimizer, epochs_n, epochs_m):
    """fit N; save; load; fit M with the loaded optimizer  ==  fit N; fit M with the same
    optimizer object (fit's shuffling restarts from ``seed`` each call, so both runs use the
    same two calls and seeds), bit for bit: parameters, optimizer state and step count."""
    X, y = data
    kw = dict(lr=0.01, batch_size=50, validation=None, progress=False,
              schedule="cosine:T=100")

    ref = fastmlp.MLP([4, 16, 16, 1], activation="elu", seed=7)
    h = fastmlp.fit(ref, X, y, optimizer=optimizer, epochs=epochs_n, seed=1, **kw)
    ref_opt = h.optimizer
    fastmlp.fit(ref, X, y, optimizer=ref_opt, epochs=epochs_m, seed=2, **kw)

    run = fastmlp.MLP([4, 16, 16, 1], activation="elu", seed=7)
    h = fastmlp.fit(run, X, y, optimizer=optimizer, epochs=epochs_n, seed=1, **kw)
    path = save_model(run, tmp_path / "ckpt.npz", optimizer=h.optimizer)
    del run, h
    resumed = fio.load(path)
    fastmlp.fit(resumed, X, y, optimizer=resumed.optimizer, epochs=epochs_m, seed=2, **kw)

    assert resumed.optimizer.step_count == ref_opt.step_count == 12 * (epochs_n + epochs_m)
    np.testing.assert_array_equal(resumed.params, ref.params)
    np.testing.assert_array_equal(resumed.optimizer.state, ref_opt.state)
    # and the continuation really trained (the comparison is not of untouched buffers)
    assert not np.array_equal(resumed.params, fastmlp.MLP([4, 16, 16, 1], activation="elu",
                                                          seed=7).params)


# ---------------------------------------------------------------------------------------
# atomic writes
def test_failed_write_leaves_old_file_and_no_temp(data, tmp_path, monkeypatch):
    model, opt = _trained(data)
    path = _full_save(model, opt, tmp_path / "m.npz")
    before = path.read_bytes()
    other = fastmlp.MLP([4, 16, 1], seed=99)

    real_savez = np.savez

    def half_then_fail(f, **arrays):
        real_savez(f, **arrays)       # write everything...
        f.truncate(f.tell() // 2)     # ...keep half of it...
        raise OSError("disk full")    # ...and fail as a full disk would

    monkeypatch.setattr(model_file.np, "savez", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_model(other, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]

    # an interruption (KeyboardInterrupt) mid-write is cleaned up the same way
    def interrupted(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(model_file.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_model(other, path)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.npz"]
    monkeypatch.undo()
    np.testing.assert_array_equal(fio.load(path).params, model.params)


def test_failed_rename_leaves_no_temp(data, tmp_path, monkeypatch):
    model, _ = _trained(data)

    def no_replace(src, dst):
        raise PermissionError("read-only destination")
    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(PermissionError):
        save_model(model, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces(data, tmp_path):
    a, _ = _trained(data)
    b = fastmlp.MLP([4, 8, 3], seed=1)
    p = save_model(a, tmp_path / "m.npz")
    save_model(b, p)
    assert fio.load(p).layer_sizes == (4, 8, 3)


# ---------------------------------------------------------------------------------------
# refusing damaged files
@pytest.fixture
def saved(data, tmp_path):
    model, opt = _trained(data)
    return _full_save(model, opt, tmp_path / "m.npz")


def _rewrite(path, change):
    """Rewrite the archive with ``change(arrays, meta)`` applied (no checksum fix-ups)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("metadata")))
    change(arrays, meta)
    arrays["metadata"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _refused(path, match):
    with pytest.raises(ValueError, match=match) as e:
        fio.load(path)
    assert str(path) in str(e.value)  # the error names the file
    return e.value


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:int(len(data) * keep)])
    _refused(saved, "corrupt or truncated|not a fastmlp|the file is empty")


def test_a_refused_file_leaves_no_open_handle(saved):
    # np.load(path) kept its file open when the zip directory could not be read
    import gc
    import warnings
    data = saved.read_bytes()
    saved.write_bytes(data[:len(data) // 2])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _refused(saved, "corrupt or truncated")
        gc.collect()
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)]


def test_flipped_bytes_anywhere(saved):
    data = bytearray(saved.read_bytes())
    rng = np.random.default_rng(0)
    # positions across the whole file: headers, array payloads, metadata, central directory
    for pos in np.unique(np.linspace(0, len(data) - 1, 40).astype(int).tolist()
                         + rng.integers(0, len(data), 20).tolist()):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        saved.write_bytes(bytes(bad))
        try:
            m = fio.load(saved)
        except ValueError as exc:
            assert str(saved) in str(exc)
            continue
        # the zip format has slack bytes (e.g. timestamps) whose damage changes nothing that
        # matters: then the loaded model must be exactly the saved one
        saved.write_bytes(bytes(data))
        good = fio.load(saved)
        np.testing.assert_array_equal(m.params, good.params)
        np.testing.assert_array_equal(m.optimizer.state, good.optimizer.state)
        assert m.training_config == good.training_config
        assert m.contract().keys() == good.contract().keys()


def test_flipped_parameter_byte_fails_checksum(saved):
    with np.load(saved, allow_pickle=False) as z:
        params = z["params"]
    _rewrite(saved, lambda a, m: a.__setitem__("params", params + np.float32(1e-3)))
    _refused(saved, "'params' is corrupt.*SHA-256")


def test_wrong_and_newer_version(saved):
    _rewrite(saved, lambda a, m: m.__setitem__("format_version", 99))
    _refused(saved, "format version 99 is newer")
    _rewrite(saved, lambda a, m: m.__setitem__("format_version", "1"))
    _refused(saved, "format_version is missing or not an integer")
    _rewrite(saved, lambda a, m: m.__setitem__("format", "keras"))
    _refused(saved, "not a fastmlp model file")


@pytest.mark.parametrize("key", ["architecture", "arrays", "contract", "optimizer"])
def test_missing_metadata_keys(saved, key):
    _rewrite(saved, lambda a, m: m.pop(key))
    _refused(saved, f"lacks the required key '{key}'|arrays do not match")


def test_missing_or_bad_contract_fields(saved):
    _rewrite(saved, lambda a, m: m["contract"].pop("standardization"))
    _refused(saved, "contract lacks the required key 'standardization'")


def test_bad_contract_values(saved):
    _rewrite(saved, lambda a, m: m["contract"].__setitem__("class_names", [1, 2]))
    _refused(saved, "class_names must be a list of strings")


def test_missing_arrays_and_metadata(saved, tmp_path):
    _rewrite(saved, lambda a, m: a.pop("optimizer_state"))
    _refused(saved, "missing \\['optimizer_state'\\]")
    p = tmp_path / "plain.npz"
    np.savez(p, params=np.zeros(3))
    _refused(p, "without a 'metadata' entry")
    p.write_text("hello, not a zip")
    _refused(p, "not a fastmlp model file .not an .npz archive")
    with pytest.raises(FileNotFoundError, match="no model file"):
        fio.load(tmp_path / "absent.npz")


def test_shape_mismatch_with_architecture(saved):
    def grow(a, m):
        m["architecture"]["layer_sizes"] = [4, 17, 1]
        m["architecture"]["n_params"] = 4 * 17 + 17 + 17 + 1
    _rewrite(saved, grow)
    _refused(saved, r"params has shape \(97,\).*need \(103,\)")


def test_consistent_but_wrong_shapes_refused(saved):
    """Metadata rewritten consistently with a shorter params array: still refused because the
    architecture needs another length."""
    from fastmlp.io.model_file import _sha256

    def shorten(a, m):
        a["params"] = a["params"][:-1]
        m["arrays"]["params"] = {"dtype": "float32", "shape": [96],
                                 "sha256": _sha256(a["params"])}
    _rewrite(saved, shorten)
    _refused(saved, "layer_sizes")


def test_zip_is_a_real_npz(saved):
    with zipfile.ZipFile(saved) as z:
        assert set(z.namelist()) == {"params.npy", "optimizer_state.npy", "metadata.npy",
                                     "standardization_mean.npy", "standardization_std.npy"}


@pytest.mark.parametrize("contract", [
    dict(features=["u-g", "g-r", "r-i", "i-z"], class_names=["galaxy", "quasar"], positive=0,
         loss="bce", output="sigmoid", threshold=0.7, temperature=0.5),
    dict(features="colors:ugriz", loss="mse", output="identity", target_transform="log1p",
         temperature=2.5),
    dict(features=FeatureNames(["flux, u", "flux g ", "r", "i"]),
         class_names=["star", "galaxy", "quasar"],
         positive=2, loss="cross_entropy",
         output="softmax", threshold=0.25, temperature=1.25),
])
def test_every_contract_field_set_to_a_non_default_value_survives_save_and_load(tmp_path,
                                                                              contract):
    n_out = 3 if "class_names" in contract and len(contract["class_names"]) == 3 else 1
    model = fastmlp.MLP([4, 6, n_out], seed=1, dtype="float64",
                        standardization=([1.0, -2.0, 0.5, 0.0], [0.5, 2.0, 1.0, 4.0]),
                        **contract)
    back = fio.load(fio.save(model, tmp_path / "m.npz"))
    for name, value in model.contract().items():
        got = back.contract()[name]
        if name == "standardization":
            np.testing.assert_array_equal(got[0], value[0])
            np.testing.assert_array_equal(got[1], value[1])
        elif name == "features":
            assert got.names == value.names
        else:
            assert got == value, name
    X = np.random.default_rng(2).normal(size=(50, 4))
    np.testing.assert_array_equal(back.predict(X), model.predict(X))


def test_save_refuses_parameters_changed_in_place_to_nan_and_writes_nothing(data, tmp_path):
    """The layers are views into params: a NaN written into one (a diverged update, say)
    is in params, and a model that predicts NaN everywhere is refused, named."""
    model, _ = _trained(data, sizes=(4, 16, 1))
    model.weights[1][3, 0] = np.nan
    model.weights[1][5, 0] = np.inf
    model.biases[0][2] = -np.inf
    with pytest.raises(ValueError, match=r"model parameters contain 3 non-finite values "
                       r"\(NaN or inf\): 1 in biases\[0\] \(layer 1\), 2 in weights\[1\] "
                       r"\(layer 2\); refusing to save a model that predicts NaN"):
        fio.save(model, tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------
# bad arguments
def test_save_argument_errors(data, tmp_path):
    model, opt = _trained(data)
    with pytest.raises(TypeError, match="model must be a fastmlp.MLP"):
        fio.save("model", tmp_path / "a.npz")
    with pytest.raises(ValueError, match="standardization mean and std"):
        save_model(model, tmp_path / "a.npz", standardization=([0.0] * 4, [1.0] * 3))
    with pytest.raises(ValueError, match="std finite and > 0"):
        save_model(model, tmp_path / "a.npz", standardization=([0.0] * 4, [0.0] * 4))
    # assigned directly: checked as set_contract checks it, the model left as it was
    before = model.standardization
    with pytest.raises(ValueError, match="input column 2 has mean 0 and std inf"):
        model.standardization = (np.zeros(4), np.array([1.0, 1.0, np.inf, 1.0]))
    assert model.standardization is before
    # changed in place after it was set: save refuses what load would
    model.standardization = (np.zeros(4), np.ones(4))
    std = model.standardization[1]
    std.flags.writeable = True
    std[2] = np.inf
    with pytest.raises(ValueError, match="input column 2 has mean 0 and std inf"):
        fio.save(model, tmp_path / "inf.npz")
    assert not (tmp_path / "inf.npz").exists()
    model.standardization = None
    model.params[0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        fio.save(model, tmp_path / "a.npz")
    model.params[0] = 0.0
    other = optim.Adam(np.zeros_like(model.params))
    with pytest.raises(ValueError, match="another parameter buffer"):
        save_model(model, tmp_path / "a.npz", optimizer=other)
    with pytest.raises(ValueError, match="training_config must be JSON"):
        save_model(model, tmp_path / "a.npz", training_config={"f": object()})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_model(model, tmp_path / "no" / "dir" / "a.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------
# the public spelling: model.save(path) / fastmlp.load(path)
def test_fastmlp_save_and_fastmlp_load(data, tmp_path):
    model, opt = _trained(data)
    model.set_contract(class_names=["QSO", "STAR"])
    p = fastmlp.save(model, tmp_path / "m.npz")
    m = fastmlp.load(p)
    np.testing.assert_array_equal(m.params, model.params)
    assert list(m.class_names) == ["QSO", "STAR"] and m.optimizer.step_count == opt.step_count


def test_copy_and_pickle_of_loaded_model_carry_their_own_optimizer(data, tmp_path):
    import pickle
    X, y = data
    model, opt = _trained(data)
    m = fio.load(save_model(model, tmp_path / "m.npz", optimizer=opt))
    for c in (m.copy(), pickle.loads(pickle.dumps(m))):
        assert c.optimizer is not m.optimizer and c.optimizer.params is c.params
        np.testing.assert_array_equal(c.optimizer.state, m.optimizer.state)
        before = m.params.copy()
        fastmlp.fit(c, X, y, optimizer=c.optimizer, epochs=1, validation=None, progress=False)
        np.testing.assert_array_equal(m.params, before)  # the original is untouched
        assert c.optimizer.step_count > m.optimizer.step_count


def test_unreadable_path_is_not_called_corrupt(tmp_path):
    d = tmp_path / "dir.npz"
    d.mkdir()
    with pytest.raises(IsADirectoryError):
        fio.load(d)
