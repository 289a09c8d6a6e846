"""Mistakes a Python user makes with the public API (found by probing it): each is either
refused with a message naming the argument, or behaves as the documented equivalent."""

import re
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP


def _trained(n_out=1, **kw):
    X, y = fastmlp.make_photometric_catalog(400, seed=0)
    m = MLP([4, 8, n_out], seed=0, **kw)
    fastmlp.fit(m, X, y, epochs=1, progress=False, standardize=True)
    return m, X


def test_assigning_params_copies_into_the_buffer_every_writer_reads(tmp_path):
    # before: model.params = new_array rebound the attribute, the layer views (what ONNX
    # writes) kept the old weights and save wrote a file that load refused
    m, X = _trained()
    new = np.random.default_rng(1).normal(size=m.n_params)     # float64 for a float32 model
    buffer = m.params
    m.params = new
    assert m.params is buffer and m.params.dtype == np.float32
    np.testing.assert_array_equal(m.params, new.astype(np.float32))
    for arr in m.weights + m.biases:
        assert np.shares_memory(arr, m.params)
    np.testing.assert_array_equal(m.weights[0].ravel(), new[:m.weights[0].size].astype("f4"))
    expected = m.predict_proba(X)
    fastmlp.save(m, tmp_path / "m.npz")
    np.testing.assert_array_equal(fastmlp.load(tmp_path / "m.npz").predict_proba(X), expected)
    with pytest.raises(ValueError, match=r"params must have shape \(49,\), got \(3,\)"):
        m.params = np.zeros(3)
    np.testing.assert_array_equal(m.params, new.astype(np.float32))   # left as it was


def test_a_layer_view_cannot_be_replaced_behind_params():
    m = MLP([4, 8, 1], seed=0)
    with pytest.raises(TypeError):
        m.weights[0] = np.zeros((4, 8), np.float32)
    with pytest.raises(TypeError):
        m.biases[0] = np.zeros(8, np.float32)


def test_assigned_params_reach_onnx(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    m, X = _trained(n_out=3)
    m.params = np.random.default_rng(2).normal(size=m.n_params)
    fastmlp.to_onnx(m, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    proba = sess.run(["proba"], {"X": X.astype(np.float32)})[0]
    np.testing.assert_allclose(proba, m.predict_proba(X), atol=2e-6)


@pytest.mark.parametrize("shape", [(16,), (16, 2)])
def test_mse_targets_of_the_wrong_shape_are_named_as_passed(shape):
    # before: a 1-D y for a 3-output regression was reported as "got (16, 1)" (the column
    # made of it) and the message offered (16,) as a shape that would do
    m = MLP([4, 8, 3], seed=0)
    X = np.zeros((16, 4), np.float32)
    msg = (r"y for loss='mse' must have shape \(16, 3\) to match the 3 outputs, got "
           + re.escape(str(shape)) + "$")
    with pytest.raises(ValueError, match=msg):
        m.loss_and_grad(X, np.zeros(shape), loss="mse")
    with pytest.raises(ValueError, match=msg):
        fastmlp.fit(m, X, np.zeros(shape), loss="mse", epochs=1, progress=False)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_regressor_refuses_missing_targets_instead_of_reporting_a_divergence(method):
    # before: None in an object y became NaN, trained into a NaN loss and was reported as
    # SolverDiverged ("lower learning_rate_init")
    pytest.importorskip("sklearn")
    X, y = fastmlp.make_photometric_catalog(60, seed=0)
    y_missing = np.where(y > 0, None, 1.0)
    reg = fastmlp.MLPRegressor(hidden_layer_sizes=(4,), max_iter=2)
    with pytest.raises(ValueError, match=r"^Input y contains \d+ missing or non-finite value"):
        getattr(reg, method)(X, y_missing)
    with pytest.raises(ValueError, match=r"^y must hold numbers \(regression targets\)"):
        getattr(reg, method)(X, np.where(y > 0, "high", "low"))


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_regression_on_huge_targets_advises_rescaling_them_not_a_smaller_lr(backend):
    # before: y of 1e20 overflowed the float32 squared error and the message said "try a
    # smaller lr", which cannot help
    X, y = fastmlp.make_photometric_catalog(200, seed=0)
    m = MLP([4, 8, 1], seed=0, backend=backend)
    with pytest.raises(fastmlp.TrainingDiverged, match=r"targets reach \|y\| = 1e\+20: "
                       r"rescale them") as info:
        fastmlp.fit(m, X, y * 1e20 + 1.0, loss="mse", epochs=2, progress=False)
    assert "smaller lr" not in str(info.value)


def test_batch_and_estimator_on_huge_targets_advise_rescaling_them():
    X, y = fastmlp.make_photometric_catalog(200, seed=0)
    huge = y * 1e20 + 1.0
    batch = fastmlp.ModelBatch(MLP([4, 8, 1], seed=0), 2)
    with pytest.raises(fastmlp.TrainingDiverged, match=r"targets reach \|y\| = 1e\+20"):
        fastmlp.fit_batch(batch, X, huge, loss="mse", epochs=1, on_divergence="raise")
    pytest.importorskip("sklearn")
    reg = fastmlp.MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    with pytest.raises(fastmlp.TrainingDiverged, match=r"targets reach \|y\| = 1e\+20"):
        reg.fit(X, huge)


def test_a_batch_whose_every_model_diverged_warns_nothing_from_numpy():
    # before: the progress line's np.nanmean over an all-NaN epoch warned "Mean of empty
    # slice" (computed even with progress off)
    X, y = fastmlp.make_photometric_catalog(200, seed=0)
    batch = fastmlp.ModelBatch(MLP([4, 8, 1], seed=0), 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        hist = fastmlp.fit_batch(batch, X, y * 1e20 + 1.0, loss="mse", epochs=2)
    assert hist.diverged.all()


@pytest.mark.parametrize("standardize", [False, True])
def test_masked_entries_are_missing_values_not_the_hidden_numbers(standardize):
    # before: np.asarray dropped the mask, so predict used the values under it and fit
    # trained on them
    X, y = fastmlp.make_photometric_catalog(300, seed=0)
    m = MLP([4, 8, 1], seed=0)
    fastmlp.fit(m, X, y, epochs=1, progress=False, standardize=standardize)
    Xm = np.ma.masked_array(X[:4], mask=np.zeros((4, 4), bool))
    Xm[1, 2] = np.ma.masked
    proba = m.predict_proba(Xm)
    assert np.isnan(proba[1]).all() and np.isfinite(proba[[0, 2, 3]]).all()
    np.testing.assert_array_equal(proba[[0, 2, 3]], m.predict_proba(X[[0, 2, 3]]))
    assert m.predict(Xm)[1] == -1
    full = np.ma.masked_array(X, mask=np.zeros(X.shape, bool))
    full[5, 0] = np.ma.masked
    with pytest.raises(ValueError, match=r"X contains 1 row with NaN or inf \(columns \[0\]\)"):
        fastmlp.fit(MLP([4, 8, 1], seed=0), full, y, epochs=1, progress=False)


def test_a_sparse_matrix_is_named_not_called_dtype_object():
    sp = pytest.importorskip("scipy.sparse")
    X, y = fastmlp.make_photometric_catalog(50, seed=0)
    m = MLP([4, 8, 1], seed=0)
    with pytest.raises(TypeError, match=r"X is a scipy sparse matrix; pass a dense array"):
        m.predict_proba(sp.csr_matrix(X))
    with pytest.raises(TypeError, match=r"X is a scipy sparse matrix; pass a dense array"):
        fastmlp.fit(m, sp.csr_matrix(X), y, epochs=1, progress=False)


def test_an_unknown_optimizer_kwarg_is_named_with_the_ones_taken():
    # before: Python's "Adam.__init__() got an unexpected keyword argument 'foo'"
    X, y = fastmlp.make_photometric_catalog(50, seed=0)
    with pytest.raises(TypeError, match=r"^SGD has no hyper-parameter 'betas' "
                       r"\(optimizer_kwargs\); it takes lr, momentum, dampening"):
        fastmlp.fit(MLP([4, 8, 1]), X, y, optimizer="nesterov", epochs=1, progress=False,
                    optimizer_kwargs={"betas": (0.9, 0.99)})
    with pytest.raises(TypeError, match=r"^Adam has no hyper-parameter 'foo'"):
        fastmlp.ModelBatch(MLP([4, 8, 1]), 2, optimizer_kwargs={"foo": 1})


def _nonfinite_rows():
    X, y = fastmlp.make_photometric_catalog(120, seed=0)
    X[5, 2] = np.inf
    return X, y


@pytest.mark.parametrize("call", [
    lambda X, y: fastmlp.fit_batch(fastmlp.ModelBatch(MLP([4, 8, 1]), 2), X, y, epochs=1),
    lambda X, y: fastmlp.fit_ensemble(lambda: MLP([4, 8, 1]), X, y, n_members=2, epochs=1),
    lambda X, y: fastmlp.lr_sweep(lambda: MLP([4, 8, 1]), X, y, iterations=2),
    lambda X, y: fastmlp.compare_optimizers(lambda: MLP([4, 8, 1]), X, y, iterations=2),
], ids=["fit_batch", "fit_ensemble", "lr_sweep", "compare_optimizers"])
def test_nonfinite_rows_are_not_told_to_use_a_drop_invalid_the_call_lacks(call):
    # before: "clean them or pass drop_invalid=True", which these calls refuse (TypeError)
    X, y = _nonfinite_rows()
    with pytest.raises(ValueError, match=r"X contains 1 row with NaN or inf \(columns \[2\]\); "
                                         r"drop or clean those rows first$"):
        call(X, y)


def test_a_nonfinite_validation_row_is_not_told_to_use_drop_invalid():
    # drop_invalid drops training rows only: the validation pair's message offered it even
    # when it had been passed
    X, y = fastmlp.make_photometric_catalog(120, seed=0)
    Xv = X[:30].copy()
    Xv[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"X_val contains 1 row with NaN or inf \(columns "
                                         r"\[1\]\); drop or clean those rows first$"):
        fastmlp.fit(MLP([4, 8, 1]), X, y, epochs=1, progress=False, drop_invalid=True,
                    validation=(Xv, y[:30]))


def test_the_network_calls_offer_their_own_remedy_for_nonfinite_rows():
    # before: forward and loss_and_grad said "pass drop_invalid=True", which they lack
    m = MLP([4, 8, 3], seed=0)
    Z = np.ones((3, 4), np.float32)
    Z[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 row with NaN or inf \(columns \[1\]\); "
                                         r"clean them, or pass check_finite=False"):
        m.forward(Z)
    assert np.isnan(m.forward(Z, check_finite=False)[1]).all()
    with pytest.raises(ValueError, match=r"\(columns \[1\]\); drop or clean those rows first$"):
        m.loss_and_grad(Z, np.zeros(3, np.int64))


def test_standardize_refuses_a_varying_column_whose_statistics_underflow():
    # before: squared deviations of values near 1e-170 underflowed to 0, the column was
    # taken for a constant one (std 1) and the network was trained on zeros
    X, y = fastmlp.make_photometric_catalog(200, seed=0)
    tiny = X.astype(np.float64)
    tiny[:, 2] *= 1e-170
    match = (r"standardize=True: column 2 \('c'\) of X varies \(from .* to .*\) but its "
             r"squared deviations underflow the float64 statistics")
    make = lambda: MLP([4, 8, 1], seed=0, features=["a", "b", "c", "d"])   # noqa: E731
    with pytest.raises(ValueError, match=match):
        fastmlp.fit(make(), tiny, y, epochs=1, standardize=True, progress=False)
    with pytest.raises(ValueError, match=match):
        fastmlp.fit_batch(fastmlp.ModelBatch(make(), 2), tiny, y, epochs=1, standardize=True)
    const = X.astype(np.float64)
    const[:, 2] = 1e-170                     # a constant column is still standardised by 1
    m = make()
    fastmlp.fit(m, const, y, epochs=1, standardize=True, progress=False)
    assert m.standardization[1][2] == 1.0


@pytest.mark.parametrize("batched", [True, False])
def test_cross_validate_standardizes_float64_rows_as_fit_does(batched):
    # before: cross_validate cast the raw rows to the float32 model's dtype before
    # standardising them, so a column 59000 + 1e-3 x lost its spread (fit keeps float64)
    X, y = fastmlp.make_photometric_catalog(1500, seed=0)
    shifted = X.astype(np.float64)
    shifted[:, 0] = 59000.0 + shifted[:, 0] * 1e-3
    kw = dict(k=3, epochs=20, lr=1e-2, standardize=True, positive=1, batched=batched)
    make = lambda: MLP([4, 16, 1], seed=0)   # noqa: E731
    got = fastmlp.cross_validate(make, shifted, y, **kw).mean
    want = fastmlp.cross_validate(make, X, y, **kw).mean
    assert want["roc_auc"] > 0.85                  # a model that learned something
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=1e-3, abs=1e-4, nan_ok=True), name


def test_writers_point_a_scikit_learn_estimator_at_its_own_writers(tmp_path):
    # an estimator has est.save / est.to_onnx and its network in model_; given the estimator
    # itself they only said "model must be a fastmlp.MLP, got MLPClassifier"
    pytest.importorskip("sklearn")
    X, y = fastmlp.make_photometric_catalog(60, seed=0)
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    writers = [fastmlp.save, fastmlp.io.write_c_model]
    with pytest.raises(TypeError, match=r"got MLPClassifier; fit the estimator first"):
        fastmlp.save(est, tmp_path / "m.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    for write in writers:
        with pytest.raises(TypeError, match=r"^model must be a fastmlp.MLP, got MLPClassifier; "
                                            r"a fitted MLPClassifier writes itself \(est.save"
                                            r"\(path\), est.to_onnx\(path\)\) and its network "
                                            r"is est.model_$"):
            write(est, tmp_path / "m.out")
    fastmlp.save(est.model_, tmp_path / "m.npz")
    np.testing.assert_allclose(fastmlp.load(tmp_path / "m.npz").predict_proba(X),
                               est.predict_proba(X), rtol=1e-6)   # float32 model


@pytest.mark.parametrize("standardize", [False, True])
def test_a_value_beyond_float32_is_a_missing_row_without_numpy_warnings(standardize):
    # before: the row got NaN / -1 as documented, but NumPy's "overflow encountered in
    # cast" RuntimeWarning came with it
    m = _trained()[0] if standardize else MLP([4, 8, 1], seed=0)
    rows = np.array([[0.5, 0.2, 0.1, 0.0], [1e300, 0.2, 0.1, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        proba = m.predict_proba(rows)
        labels = m.predict(rows)
    assert np.isfinite(proba[0]).all() and np.isnan(proba[1]).all()
    assert labels[1] == -1 and labels[0] in (0, 1)


def test_an_estimator_with_n_iter_no_change_inf_saves(tmp_path):
    # before: est.save(path) with the allowed n_iter_no_change=np.inf failed inside
    # json.dumps ("Out of range float values are not JSON compliant")
    pytest.importorskip("sklearn")
    X, y = fastmlp.make_photometric_catalog(60, seed=0)
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                                n_iter_no_change=np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    est.save(tmp_path / "m.npz")
    loaded = fastmlp.load(tmp_path / "m.npz")
    assert loaded.training_config["params"]["n_iter_no_change"] == "inf"
    np.testing.assert_array_equal(loaded.params, est.model_.params)


def test_a_training_config_with_nan_is_refused_by_name(tmp_path):
    m = MLP([4, 8, 1], seed=0)
    with pytest.raises(ValueError, match=r"^training_config must be JSON-serialisable .*: it "
                                         r"holds NaN or inf"):
        fastmlp.save(m, tmp_path / "m.npz", training_config={"best_loss": float("nan")})
    assert not list(tmp_path.iterdir())


def test_assigning_one_layer_of_coefs_reaches_the_model():
    # scikit-learn's coefs_ is a list whose item assignment replaces the layer; here the
    # list was rebuilt on each access, so est.coefs_[1] = W changed nothing, silently
    pytest.importorskip("sklearn")
    X, y = fastmlp.make_photometric_catalog(60, seed=0)
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    est.coefs_[1] = np.zeros((8, 1))
    est.intercepts_[-1] = np.array([2.0])
    np.testing.assert_array_equal(est.model_.weights[1], 0.0)
    np.testing.assert_allclose(est.predict_proba(X)[:, 1], 1 / (1 + np.exp(-2.0)), rtol=1e-6)
    with pytest.raises(ValueError, match=r"coefs_\[0\] must have shape \(4, 8\), got \(3, 3\)"):
        est.coefs_[0] = np.zeros((3, 3))


def test_a_log1p_target_makes_a_regression_and_refuses_a_classifier_loss():
    # before: MLP(..., target_transform="log1p") defaulted to bce (sigmoid link) and fit
    # failed on "y for loss='bce' must hold integer class labels, ... 0.69" (log 2); a
    # contract with loss='bce' and log1p was accepted
    X, _ = fastmlp.make_photometric_catalog(100, seed=0)
    z = np.abs(X[:, 0]).astype(np.float64)
    m = MLP([4, 8, 1], seed=0, target_transform="log1p")
    assert m.link == "identity" and m.default_loss() == "mse"
    hist = fastmlp.fit(m, X, z, epochs=1, progress=False)
    assert hist.loss_name == "mse" and m.predict(X).shape == (100,)
    with pytest.raises(ValueError, match=r"target_transform='log1p' is for a regression \(loss "
                                         r"'mse', output 'identity'\), but the model's loss is "
                                         r"'bce'"):
        MLP([4, 8, 1], loss="bce", target_transform="log1p")
    with pytest.raises(ValueError, match=r"train with loss='mse', not loss='bce'"):
        fastmlp.fit(MLP([4, 8, 1], target_transform="log1p"), X, z, loss="bce", epochs=1,
                    progress=False)


def test_resuming_from_a_truncated_checkpoint_leaves_no_open_handle(tmp_path):
    # np.load(path) kept its file open when the zip directory could not be read
    import gc
    X, y = fastmlp.make_photometric_catalog(100, seed=0)
    path = tmp_path / "run.ckpt"
    fastmlp.fit(MLP([4, 8, 1]), X, y, epochs=1, checkpoint=str(path), progress=False)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="is not a fastmlp fit checkpoint"):
            fastmlp.fit(MLP([4, 8, 1]), X, y, epochs=2, checkpoint=str(path), resume=True,
                        progress=False)
        gc.collect()
    assert not [w for w in seen if issubclass(w.category, ResourceWarning)]


def test_a_text_column_of_a_dataframe_is_named():
    # before: a pandas text column failed as "could not convert string to float: 'x'",
    # naming neither the column nor the argument (numpy / dict tables were named already)
    pd = pytest.importorskip("pandas")
    X, _ = fastmlp.make_photometric_catalog(20, seed=0)
    df = pd.DataFrame(X, columns=list("abcd")).assign(b="x")
    m = MLP([4, 8, 1], seed=0, features=["a", "b", "c", "d"])
    with pytest.raises(ValueError, match=r"^column 'b' is not numeric \(dtype "):
        m.predict_proba(df)
    pa = pytest.importorskip("pyarrow")
    with pytest.raises(ValueError, match=r"^column 'b' is not numeric \(dtype "):
        m.predict_proba(pa.Table.from_pandas(df))


@pytest.mark.parametrize("sizes", [[4, 8.0, 1], np.array([4.0, 8.0, 1.0]), [4, True, 1]])
def test_layer_sizes_must_be_integers_as_epochs_and_batch_size(sizes):
    # 8.0 was taken as 8 while 8.5, epochs=1.0 and batch_size=32.0 were refused
    with pytest.raises(ValueError, match=r"^layer_sizes must be a sequence of at least two "
                                         r"positive integers"):
        MLP(sizes)
    assert list(MLP([4, np.int64(8), 1]).layer_sizes) == [4, 8, 1]   # NumPy integers are too


@pytest.mark.parametrize("call, said", [
    (lambda: fastmlp.metrics.confusion_matrix(np.array([0, -1]), np.array([0, 1])),
     "class labels >= 0, got -1"),
    (lambda: fastmlp.metrics.confusion_matrix(np.array([0, 0.5]), np.array([0, 1])),
     "such as 0.5"),
    (lambda: fastmlp.metrics.photoz_metrics(np.array([0.1, -1.0]), np.array([0.1, 0.2])),
     "z_spec must be > -1 (1 + z divides dz), got -1.0"),
    (lambda: fastmlp.MLPClassifier().fit(np.ones((6, 2)), np.array(["star"] * 6)),
     "got 1 class ('star')"),
    (lambda: fastmlp.ModelBatch(MLP([4, 8, 1], seed=0), n_models=np.int64(0)),
     "got 0"),
    (lambda: fastmlp.fit(MLP([4, 8, 1], seed=0), np.ones((6, 4)), np.array([0, 1] * 3),
                         sample_weight=-np.ones(6), epochs=1, progress=False),
     "(smallest -1.0)"),
])
def test_messages_show_values_as_python_writes_them(call, said):
    # NumPy 2's reprs (np.float64(-1.0), np.int64(0), np.str_('star')) read as noise
    with pytest.raises(ValueError) as err:
        call()
    assert said in str(err.value) and "np." not in str(err.value)


@pytest.mark.parametrize("w, dtype, said", [
    (1e308, "float32", "their total overflows"),
    (1e37, "float32", "their total overflows"),         # 40 rows of 1e37 > float32's max
    (1e-40, "float32", "below its normal range"),
    (1e308, "float64", "their total overflows"),
])
def test_sample_weights_the_kernels_cannot_sum_are_refused(w, dtype, said):
    # before: 1e308 made the loss NaN and the advice 'try a smaller lr'; 1e-40 in float32
    # was flushed to zero in the kernels (a NaN loss, the same advice)
    X, y = fastmlp.make_photometric_catalog(40, seed=0)
    m = MLP([4, 8, 1], seed=0, dtype=dtype)
    with pytest.raises(ValueError, match=rf"^sample_weight \(times class_weight\) ranges from "
                                         rf".*{said}.*rescale the weights"):
        fastmlp.fit(m, X, y, sample_weight=np.full(40, w), epochs=1, progress=False)
    with pytest.raises(ValueError, match="rescale the weights"):
        fastmlp.fit_ensemble(lambda: MLP([4, 8, 1], seed=0, dtype=dtype), X, y, n_members=2,
                             epochs=1, sample_weight=np.full(40, w), bootstrap=False)
    fastmlp.fit(m, X, y, sample_weight=np.full(40, 1e30), epochs=1, progress=False)  # fine
    assert np.isfinite(m.params).all()


@pytest.mark.parametrize("train", [
    lambda X, y, **kw: fastmlp.fit(MLP([4, 8, 1], seed=0), X, y, epochs=1, progress=False,
                                   **kw),
    lambda X, y, **kw: fastmlp.fit_ensemble(lambda: MLP([4, 8, 1], seed=0), X, y, epochs=1,
                                            n_members=2, **kw),
    lambda X, y, **kw: fastmlp.cross_validate(lambda: MLP([4, 8, 1], seed=0), X, y, k=2,
                                              epochs=1, **kw),
], ids=["fit", "fit_ensemble", "cross_validate"])
def test_an_lr_given_twice_and_differing_is_refused(train):
    # before: lr=0.1 silently won over optimizer_kwargs={"lr": 0.2}
    X, y = fastmlp.make_photometric_catalog(60, seed=0)
    with pytest.raises(ValueError, match=r"^lr=0.1 and optimizer_kwargs\['lr'\]=0.2 disagree"):
        train(X, y, lr=0.1, optimizer_kwargs={"lr": 0.2})
    train(X, y, lr=0.1, optimizer_kwargs={"lr": 0.1})          # the same twice: fine


@pytest.mark.parametrize("backend", ["numpy", "numba", "c"])
def test_a_refused_optimizer_step_takes_no_step(backend):
    # the step count advanced although the kernel refused the call (p overlapping g)
    m = MLP([4, 8, 1], seed=0)
    opt = fastmlp.optim.make_optimizer("adam", m.params)
    with pytest.raises(ValueError, match="must not overlap"):
        opt.step(m.params, backend=backend)
    assert opt.step_count == 0 and not opt.state.any()


@pytest.mark.parametrize("backend", ["numpy", "numba", "c"])
def test_state_buffers_an_update_does_not_use_may_share_memory(backend):
    # plain RMSprop never touches grad_avg / momentum_buffer: one scratch row for both was
    # accepted before the overlap checks, and still is
    kernels = fastmlp.get_backend(backend)
    p, g = np.ones(16, np.float32), np.full(16, 0.5, np.float32)
    sq, scratch = np.zeros(16, np.float32), np.zeros(16, np.float32)
    kernels.rmsprop_update(p, g, sq, scratch, scratch, 1, lr=0.01, alpha=0.99, eps=1e-8,
                           weight_decay=0.0, momentum=0.0, centered=False, maximize=False)
    assert np.all(p < 1)
