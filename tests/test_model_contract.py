"""The model carries its whole input-to-output contract (issue 11): features (derived colours
included), standardisation, classes, link, threshold, temperature; every path that trains,
saves, loads or exports a model gives the same probabilities for the same raw rows."""

import json

import numpy as np
import pytest

import fastmlp
from fastmlp import cli
from fastmlp.data import make_photometric_catalog

MAGS = "ugriz"


def _magnitudes(n, seed):
    """A table of raw u,g,r,i,z magnitudes and labels from the synthetic catalog."""
    cat = make_photometric_catalog(n, seed=seed)
    r = 19.0 + np.random.default_rng(seed).random(n)
    cols = {"r": r}
    cols["g"] = r + cat.X[:, 1]
    cols["u"] = cols["g"] + cat.X[:, 0]
    cols["i"] = r - cat.X[:, 2]
    cols["z"] = cols["i"] - cat.X[:, 3]
    return {b: cols[b].astype(np.float64) for b in MAGS}, cat.y, cat.X.astype(np.float64)


@pytest.fixture(scope="module")
def trained():
    mags, y, X = _magnitudes(6000, seed=3)
    model = fastmlp.MLP([4, 16, 1], seed=0, features="colors:ugriz",
                        class_names=["star", "quasar"], positive=1)
    fastmlp.fit(model, mags, y, epochs=3, lr=3e-3, standardize=True, progress=False)
    return model, mags, y, X


def test_fit_stores_the_standardisation_and_predicts_from_raw_values(trained):
    model, mags, y, X = trained
    mean, std = model.standardization
    np.testing.assert_allclose(mean, X.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(std, X.std(0), rtol=1e-9)
    p_table = model.predict_proba(mags)
    p_array = model.predict_proba(X)
    np.testing.assert_allclose(p_table, p_array, rtol=1e-6, atol=1e-7)
    # the network itself sees standardised inputs: forward on raw values differs
    z = model.forward(model.transform_inputs(X))
    np.testing.assert_allclose(model.decision_function(X), z)
    assert (model.predict(X) == y).mean() > 0.85


def test_tables_of_every_kind_give_the_same_probabilities(trained):
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    model, mags, _, X = trained
    ref = model.predict_proba(X)
    rec = np.zeros(len(X), dtype=[(b, "f8") for b in MAGS] + [("objid", "i8")])
    for b in MAGS:
        rec[b] = mags[b]
    for table in (pd.DataFrame(mags), pa.table(mags), rec, mags):
        np.testing.assert_allclose(model.predict_proba(table), ref, rtol=1e-6, atol=1e-7)


def test_a_table_without_a_features_spec_is_refused():
    m = fastmlp.MLP([2, 1])
    with pytest.raises(ValueError, match="features"):
        m.predict_proba({"a": np.zeros(3), "b": np.zeros(3)})


def test_save_and_load_keep_every_contract_field(trained, tmp_path):
    model, mags, _, X = trained
    model = model.copy().set_contract(threshold=0.3, temperature=1.7)
    path = fastmlp.save(model, tmp_path / "m.npz")
    back = fastmlp.load(path)
    for name, value in model.contract().items():
        got = back.contract()[name]
        if name == "standardization":
            np.testing.assert_array_equal(got[0], value[0])
            np.testing.assert_array_equal(got[1], value[1])
        else:
            assert got == value, name
    np.testing.assert_array_equal(back.predict_proba(mags), model.predict_proba(mags))
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    assert back.optimizer is not None and back.optimizer.step_count == model.optimizer.step_count


def test_threshold_and_temperature_change_labels_and_probabilities(trained):
    model, _, _, X = trained
    m = model.copy()
    p = m.predict_proba(X)[:, 1]
    m.set_contract(threshold=0.2)
    np.testing.assert_array_equal(m.predict(X), (p >= 0.2).astype(int))
    m.set_contract(temperature=2.0)
    z = model.decision_function(X)[:, 0]
    np.testing.assert_allclose(m.predict_proba(X)[:, 1], 1 / (1 + np.exp(-z / 2)), rtol=1e-5)


@pytest.mark.parametrize("field, value, match", [
    ("threshold", 1.5, "threshold"), ("temperature", 0.0, "temperature"),
    ("class_names", ["a", "b", "c"], "class_names"), ("positive", 2, "positive"),
    ("standardization", ([0.0] * 4, [1.0, 0.0, 1.0, 1.0]), "std"),
    ("features", ["u-g"], "features"), ("output", "relu", "output"),
    # a softmax over one output is 1.0 whatever the input
    ("output", "softmax", r"output='softmax' needs at least 2 outputs, the model has 1"),
    ("loss", "cross_entropy", r"loss='cross_entropy' needs at least 2 outputs"),
])
def test_contract_fields_are_checked(field, value, match):
    with pytest.raises(ValueError, match=match):
        fastmlp.MLP([4, 8, 1], **{field: value})


def _contracted(n_out=1):
    """A model whose every contract field (but target_transform) holds a non-default value."""
    n_classes = 2 if n_out == 1 else n_out
    return fastmlp.MLP([4, 8, n_out], seed=0, features="colors:ugriz",
                       standardization=([0.5, 1.0, -1.0, 2.0], [1.0, 2.0, 0.5, 3.0]),
                       class_names=[f"c{k}" for k in range(n_classes)], positive=n_classes - 1,
                       loss="bce" if n_out == 1 else "cross_entropy", threshold=0.3,
                       temperature=1.5)


def _same_contract(a, b):
    for name, value in a.items():
        if name == "standardization":
            np.testing.assert_array_equal(b[name][0], value[0])
            np.testing.assert_array_equal(b[name][1], value[1])
        else:
            assert b[name] == value, name


@pytest.mark.parametrize("n_out, field, value, match", [
    (1, "threshold", 7, r"threshold must be a probability in \[0, 1\] or None, got 7"),
    (1, "threshold", float("nan"), r"threshold must be a probability .*got nan"),
    (1, "threshold", True, r"threshold must be a probability .*got True"),
    (1, "threshold", "0.5", r"threshold must be a probability .*got '0.5'"),
    (1, "temperature", -1, r"temperature must be a finite number > 0, got -1"),
    (1, "temperature", float("inf"), r"temperature must be a finite number > 0, got inf"),
    (1, "temperature", None, r"temperature must be a finite number > 0, got None"),
    (1, "positive", 5, r"positive must be a class index in 0\.\.1 or None, got 5"),
    (1, "positive", True, r"positive must be a class index in 0\.\.1 or None, got True"),
    (1, "positive", 1.0, r"positive must be a class index in 0\.\.1 or None, got 1\.0"),
    (1, "positive", None, r"threshold=0\.3 needs the positive class"),
    (3, "positive", None, r"threshold=0\.3 needs the positive class"),
    (1, "class_names", ["star"], r"class_names has 1 name, the model has 2 classes"),
    (3, "class_names", ["a", "b"], r"class_names has 2 names, the model has 3 classes"),
    (1, "class_names", "sq", r"class_names must be a list of strings, one per class, got 'sq'"),
    (1, "class_names", ["star", 3], r"class_names must be a list of strings"),
    (1, "class_names", ["star", "star"], r"class_names lists \['star'\] more than once"),
    (1, "output", "foo", r"output must be one of \[None, 'sigmoid', 'softmax', 'identity'\], "
                         r"got 'foo'"),
    (1, "output", "softmax", r"output='softmax' needs at least 2 outputs"),
    (1, "loss", "hinge", r"loss must be one of \[None, .*got 'hinge'"),
    (1, "target_transform", "log", r"target_transform must be one of \[None, 'log1p'\]"),
    (1, "features", ["u-g", "g-r"], r"features has 2 names \['u-g', 'g-r'\], the model has 4"),
    (1, "standardization", ([0.0] * 4, [1.0, 0.0, 1.0, 1.0]),
     r"input column 1 has mean 0 and std 0"),
    (1, "standardization", ([0.0] * 3, [1.0] * 3), r"must each have 4 values"),
])
def test_assigning_a_bad_contract_value_is_refused_and_changes_nothing(n_out, field, value,
                                                                       match):
    """m.threshold = 7 is checked as MLP(threshold=7) and fastmlp.load check it: otherwise
    predict misbehaves and fastmlp.save writes a file that load refuses."""
    m = _contracted(n_out)
    before = m.contract()
    X = np.random.default_rng(0).normal(size=(20, 4))
    labels = m.predict(X)
    with pytest.raises(ValueError, match=match):
        setattr(m, field, value)
    _same_contract(before, m.contract())
    np.testing.assert_array_equal(m.predict(X), labels)


def test_an_assigned_contract_value_is_stored_as_the_constructor_stores_it():
    m = fastmlp.MLP([4, 8, 1])
    m.class_names = ["star", "quasar"]
    m.positive = np.int64(0)
    m.standardization = ([0, 1, 2, 3], [1, 1, 2, 2])
    m.temperature = 2
    assert m.class_names == ("star", "quasar") and type(m.positive) is int
    assert type(m.temperature) is float
    mean, std = m.standardization
    assert mean.dtype == std.dtype == np.float64 and not std.flags.writeable
    m.positive = None
    m.threshold = 0.4              # a cut on one sigmoid output: class 1 unless positive says
    assert (m.positive, m.threshold) == (1, 0.4)
    m.threshold = None
    m.positive = None              # no cut left that needs it
    _same_contract(fastmlp.MLP([4, 8, 1], class_names=["star", "quasar"],
                               standardization=([0, 1, 2, 3], [1, 1, 2, 2]),
                               temperature=2.0).contract(), m.contract())


def test_an_mlp_pickled_with_plain_contract_attributes_reads_back():
    """Before the fields were checked properties they were plain attributes of the pickle."""
    m = _contracted()
    state = m.__getstate__()
    state.update(state.pop("_contract"))
    back = fastmlp.MLP.__new__(fastmlp.MLP)
    back.__setstate__(state)
    _same_contract(m.contract(), back.contract())
    with pytest.raises(ValueError, match="temperature"):
        back.temperature = 0


def test_a_copy_s_contract_is_its_own():
    m = _contracted()
    c = m.copy()
    c.threshold, c.temperature = 0.9, 3.0
    assert (m.threshold, m.temperature) == (0.3, 1.5)


def test_non_finite_outputs_get_no_label():
    m = fastmlp.MLP([2, 4, 1], seed=0)
    X = np.array([[0.1, 0.2], [np.nan, 0.0], [np.inf, 1.0]])
    assert m.predict(X).tolist()[1:] == [-1, -1]
    assert np.isnan(m.predict_proba(X)[1:]).all()


def test_onnx_includes_the_contract(trained, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, _, _, X = trained
    m = model.copy().set_contract(threshold=0.35, temperature=1.3)
    path = fastmlp.to_onnx(m, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    proba, label = sess.run(["proba", "label"], {"X": X.astype(np.float32)})
    np.testing.assert_allclose(proba, m.predict_proba(X), rtol=1e-5, atol=1e-6)
    assert (label == m.predict(X)).mean() > 0.999   # ties at the cut may round differently


def test_cli_and_python_give_the_same_probabilities(tmp_path, capsys):
    """Train with the CLI on a CSV of magnitudes (colours derived), predict with the CLI, and
    load the model in Python: the same probabilities within 1e-6."""
    mags, y, _ = _magnitudes(3000, seed=5)
    csv = tmp_path / "cat.csv"
    names = np.array(["star", "quasar"])
    with open(csv, "w") as f:
        f.write("objid," + ",".join(MAGS) + ",class\n")
        for k in range(len(y)):
            f.write(f"{k}," + ",".join(repr(float(mags[b][k])) for b in MAGS)
                    + f",{names[y[k]]}\n")
    model_path, out = tmp_path / "m.npz", tmp_path / "pred.csv"
    assert cli.main(["train", "--catalog", str(csv), "--features", "colors:ugriz",
                     "--label", "class", "--positive", "quasar", "--epochs", "2", "--quiet",
                     "--out", str(model_path)]) == 0
    assert cli.main(["predict", "--model", str(model_path), "--catalog", str(csv),
                     "--out", str(out), "--id-column", "objid", "--quiet"]) == 0
    capsys.readouterr()
    pd = pytest.importorskip("pandas")
    pred = pd.read_csv(out)
    model = fastmlp.load(model_path)
    p = model.predict_proba(pd.read_csv(csv))
    k = list(model.class_names).index("quasar")
    np.testing.assert_allclose(pred["p_quasar"].to_numpy(), p[:, k], rtol=1e-6, atol=1e-7)


def test_fit_stream_model_predicts_from_raw_columns(tmp_path):
    mags, y, X = _magnitudes(4000, seed=8)
    rec = np.zeros(len(y), dtype=[(b, "f4") for b in MAGS] + [("label", "i4")])
    for b in MAGS:
        rec[b] = mags[b]
    rec["label"] = y
    np.save(tmp_path / "c.npy", rec)
    m = fastmlp.MLP([4, 16, 1], seed=0)
    fastmlp.fit_stream(m, tmp_path / "c.npy", features="colors:ugriz", label="label",
                       epochs=4, lr=1e-2, chunk_rows=1000, progress=False)
    assert m.feature_names == ("u-g", "g-r", "r-i", "i-z") and m.standardization is not None
    np.testing.assert_allclose(m.predict_proba(rec), m.predict_proba(X), rtol=1e-4, atol=1e-5)
    assert (m.predict(rec) == y).mean() > 0.85


def test_load_refuses_huge_declared_layers_before_allocating(tmp_path, trained):
    model = trained[0]
    path = fastmlp.save(model, tmp_path / "m.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["metadata"]))
    meta["architecture"]["layer_sizes"] = [4, 12000, 12000, 1]
    meta["architecture"].pop("n_params")
    arrays["metadata"] = np.array(json.dumps(meta))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="params has shape"):
            fastmlp.load(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6       # no 576 MB parameter buffer was allocated to find that out


def test_multilabel_model_in_python_and_onnx(tmp_path):
    """One sigmoid per output (bce with several outputs): an indicator matrix from predict,
    the same in ONNX."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 2] < 0.5]).astype(float)
    m = fastmlp.MLP([3, 16, 3], seed=0, dtype="float64")
    fastmlp.fit(m, X, Y, loss="bce", epochs=30, lr=1e-2, validation=None, progress=False)
    assert m.link == "sigmoid" and m.n_outputs == 3
    p = m.predict_proba(X)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-m.decision_function(X))), rtol=1e-12)
    assert m.predict(X).shape == (400, 3) and (m.predict(X) == Y).mean() > 0.9
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(fastmlp.to_onnx(m, tmp_path / "ml.onnx")),
                                providers=["CPUExecutionProvider"])
    proba, label = sess.run(["proba", "label"], {"X": X})
    np.testing.assert_allclose(proba, p, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(label, m.predict(X))


@pytest.mark.parametrize("n", [10, 32768, 32769, 100_003])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_standardizer_statistics_in_blocks_are_the_one_pass_ones(n, dt):
    """The squared deviations are summed a block of rows at a time onto a running total,
    which is the order of NumPy's one-pass sum over axis 0 of a C-ordered array: the same
    bits as ((X - mean) ** 2).sum(axis=0), with no full-size float64 temporary."""
    from fastmlp.data.standardize import _squared_deviations
    rng = np.random.default_rng(n)
    X = (rng.normal(size=(n, 5)) * [1, 1e3, 1e-3, 7, 1e6] + [0, 5, 1, -3, 1e7]).astype(dt)
    cm = X.mean(axis=0, dtype=np.float64)
    np.testing.assert_array_equal(_squared_deviations(X, cm),
                                  ((X - cm) ** 2).sum(axis=0, dtype=np.float64))
    F = np.asfortranarray(X)   # summed in another order: the one-pass expression itself
    np.testing.assert_array_equal(_squared_deviations(F, cm),
                                  ((F - cm) ** 2).sum(axis=0, dtype=np.float64))


def test_standardizer_merges_parts_as_one_pass():
    """Chan's merge of per-part moments (what Dask partitions and MPI ranks send) equals the
    statistics of the whole, whatever the split."""
    rng = np.random.default_rng(3)
    X = rng.normal(5.0, 3.0, size=(1000, 4))
    whole = fastmlp.Standardizer().fit(X)
    merged = fastmlp.Standardizer()
    for part in np.array_split(X, [1, 10, 400, 401]):
        merged.merge(*fastmlp.Standardizer().partial_fit(part).moments())
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-13)
    np.testing.assert_allclose(merged.std, whole.std, rtol=1e-12)
    np.testing.assert_allclose(whole.std, X.std(axis=0), rtol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 7])
def test_softmax_of_predict_proba_is_the_exact_softmax(k):
    """predict_proba's in-place, column-wise softmax equals the textbook one, also for
    logits far apart (max subtracted first)."""
    from scipy.special import softmax
    m = fastmlp.MLP([2, k], seed=0, dtype="float64")
    X = np.random.default_rng(k).normal(scale=50.0, size=(70_000, 2))   # > one block
    z = m.decision_function(X)
    np.testing.assert_allclose(m.predict_proba(X), softmax(z, axis=1), rtol=1e-12,
                               atol=1e-300)


def test_set_contract_applies_fields_in_dependency_order():
    """A threshold on a softmax model needs its positive class; given together, in any
    order, both are set."""
    m = fastmlp.MLP([2, 3]).set_contract(threshold=0.3, positive=2)
    assert (m.positive, m.threshold) == (2, 0.3)
    with pytest.raises(ValueError, match="positive"):
        fastmlp.MLP([2, 3]).set_contract(threshold=0.3)


@pytest.mark.parametrize("n", [0, 1, 8191, 8192, 8193, 3 * 8192 + 5])
@pytest.mark.parametrize("src,dst", [(np.float32, np.float32), (np.float32, np.float64),
                                     (np.float64, np.float32), (np.float64, np.float64)])
def test_standardization_is_one_float64_rounding_in_blocks(n, src, dst):
    """The blocked standardisation (flat tiled mean / std) gives, bit for bit, the textbook
    ((x in float64 - mean) / std) rounded once to the model's dtype, across block edges,
    for C-ordered, Fortran-ordered and strided inputs; NaN / inf rows stay non-finite."""
    from fastmlp.model import standardize_rows
    rng = np.random.default_rng(n)
    X = (rng.normal(size=(n, 5)) * [1, 30, 1e3, 1e-4, 7] + [0, 2, -5e3, 1, 1e5]).astype(src)
    if n > 2:
        X[n // 2, 1], X[-1, 4] = np.nan, np.inf
    mean = np.array([0.1, 2.5, -4990.0, 1.00001, 99999.5])
    std = np.array([1.1, 29.0, 1001.0, 1.2e-4, 6.5])
    want = ((X.astype(np.float64) - mean) / std).astype(dst)
    for x in (X, np.asfortranarray(X), np.repeat(X, 2, axis=0)[::2]):
        got = standardize_rows(x, mean, std, dst)
        assert got.dtype == dst and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)
    st = fastmlp.Standardizer(mean, std)
    want_src = ((X.astype(np.float64) - mean) / std).astype(src)
    np.testing.assert_array_equal(st.transform(X), want_src)
    ints = rng.integers(-50, 50, size=(n, 5))
    np.testing.assert_array_equal(st.transform(ints), (ints - mean) / std)
    with pytest.raises(ValueError, match="3 means and 3 stds for 5 feature columns"):
        standardize_rows(X, mean[:3], std[:3], dst)


def test_fit_on_float32_rows_equals_fit_on_the_same_rows_in_float64():
    """fit keeps a float32 catalog as it is (no whole float64 copy); the statistics, the
    network inputs and so the trained model are those of the same values in float64."""
    rng = np.random.default_rng(5)
    X = (rng.normal(size=(20_000, 4)) * [1, 3, 0.2, 10] + [1, -2, 0.5, 40]).astype(np.float32)
    y = (X[:, 0] + X[:, 1] / 3 > 0).astype(np.int64)
    models = []
    for x in (X, X.astype(np.float64)):
        m = fastmlp.MLP([4, 16, 1], seed=0, dtype="float32")
        fastmlp.fit(m, x, y, epochs=2, lr=3e-3, progress=False, validation=0.1,
                    standardize=True)
        models.append(m)
    a, b = models
    for u, v in zip(a.standardization, b.standardization):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a.params, b.params)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize("where", [0, 65535, 65536, 199_999])
def test_a_non_finite_value_anywhere_is_refused_by_fit(where):
    """The blockwise finiteness check finds a NaN in any block, first or last element."""
    X = np.random.default_rng(0).normal(size=(50_000, 4)).astype(np.float32)
    X.reshape(-1)[where] = np.nan
    with pytest.raises(ValueError, match="X contains 1 row with NaN"):
        fastmlp.fit(fastmlp.MLP([4, 8, 1]), X, np.zeros(50_000, np.int64), epochs=1,
                    progress=False)


def test_fit_makes_no_whole_float64_copy_of_a_float32_catalog():
    """Peak memory that fit allocates for a float32 catalog (no validation split): the
    standardised copy (1x X) plus the labels, weights and row order (~0.9x X here).  The
    whole float64 copy of X (2x) and the statistics' full-size float64 temporary (2x) that
    fit used to make (4x X in all) are gone."""
    import tracemalloc
    X = np.random.default_rng(0).normal(size=(400_000, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    kw = dict(epochs=1, progress=False, batch_size=4096, validation=None, standardize=True)
    fastmlp.fit(fastmlp.MLP([5, 8, 1], seed=0), X[:8192], y[:8192], **kw)  # tuning, caches
    tracemalloc.start()
    try:
        fastmlp.fit(fastmlp.MLP([5, 8, 1], seed=0), X, y, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * X.nbytes, peak / X.nbytes


def test_sdss_missing_value_in_a_raw_column_is_missing_on_the_table_path(trained):
    """-9999 (fastmlp.features.MISSING_VALUES, re-exported by fastmlp.data) in a raw column
    of a table is a missing value, as the catalog loaders read it: that row gets NaN
    probabilities and label -1 (it used to be a certain quasar from a colour of ~1e4), the
    caller's table is not written, and fit refuses the row unless drop_invalid.  An array
    already in feature order is taken as it is (as the ONNX graph and C's predict take it)."""
    from fastmlp.data import MISSING_VALUES
    from fastmlp.features import MISSING_VALUES as F_MISSING
    assert MISSING_VALUES is F_MISSING and -9999.0 in MISSING_VALUES
    model, mags, y, X = trained
    table = {b: v[:20].copy() for b, v in mags.items()}
    table["g"][5] = -9999.0          # u-g and g-r both come from it
    table["z"][9] = -9999            # the last colour only
    with_nan = {b: np.where(v == -9999, np.nan, v) for b, v in table.items()}
    p = model.predict_proba(table)
    np.testing.assert_array_equal(p, model.predict_proba(with_nan))
    assert np.isnan(p[[5, 9]]).all() and np.isfinite(np.delete(p, [5, 9], axis=0)).all()
    assert model.predict(table)[[5, 9]].tolist() == [-1, -1]
    assert table["g"][5] == -9999.0                       # the table is left as it was
    feats = model.features.transform(table)
    assert np.isnan(feats[5, :2]).all() and np.isfinite(feats[5, 2:]).all()
    assert np.isnan(feats[9, 3]) and np.isfinite(feats[9, :3]).all()
    arr = X[:3].copy()
    arr[1, 0] = -9999.0              # a feature value, not a raw measurement: a number
    assert np.isfinite(model.predict_proba(arr)).all()
    with pytest.raises(ValueError, match="NaN or inf"):
        fastmlp.fit(model.copy(), table, y[:20], epochs=1, progress=False, validation=None)
    m = model.copy()
    fastmlp.fit(m, table, y[:20], epochs=1, progress=False, validation=None,
                drop_invalid=True)


def test_a_declared_output_that_contradicts_the_declared_loss_is_refused():
    # fit refused to train it; the model itself was accepted (the audit's MLP(output=
    # "identity", loss="bce"))
    with pytest.raises(ValueError, match="output='identity' contradicts loss='bce', whose "
                                         "link is 'sigmoid'"):
        fastmlp.MLP([4, 8, 1], output="identity", loss="bce")
    assert fastmlp.MLP([4, 8, 1], output="sigmoid", loss="bce").link == "sigmoid"
