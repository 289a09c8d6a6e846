"""fastmlp.sklearn used as a drop-in for scikit-learn's MLPs: the sequences of calls a
data scientist makes (refits with other solvers, warm starts that switch early stopping on
or off, odd sample weights and labels) and the errors they get."""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is an optional dependency")

from sklearn.datasets import make_classification  # noqa: E402

from fastmlp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


# tiny fits: one kernel thread, and scikit-learn's ConvergenceWarning is expected
pytestmark = [pytest.mark.usefixtures("one_kernel_thread"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]


def _data(n=100, classes=3, seed=0):
    return make_classification(n, 5, n_informative=3, n_classes=classes, random_state=seed)


_SMALL = dict(max_iter=10, random_state=0, hidden_layer_sizes=(10,))


# ---------------------------------------------------------------------------------------
# state left by an earlier fit
def test_lbfgs_refit_drops_the_previous_runs_optimizer():
    """fit (adam), refit with solver="lbfgs" (a new network), then partial_fit with adam
    again: the adam state of the first, discarded network must not be continued (its
    moments belong to other weights), nor written by save() beside the new network."""
    X, y = _data()
    used = MLPClassifier(**_SMALL).fit(X, y)
    used.set_params(solver="lbfgs").fit(X, y)
    assert not hasattr(used, "optimizer_") and not hasattr(used, "loss_curve_")
    used.set_params(solver="adam").partial_fit(X, y)
    fresh = MLPClassifier(solver="lbfgs", **_SMALL).fit(X, y)
    fresh.set_params(solver="adam").partial_fit(X, y)
    np.testing.assert_array_equal(used.predict_proba(X), fresh.predict_proba(X))
    assert used.loss_curve_ == fresh.loss_curve_ and len(used.loss_curve_) == 1
    assert used.optimizer_.step_count == fresh.optimizer_.step_count


def test_sgd_rate_of_a_discarded_network_is_not_continued():
    """invscaling's decayed rate belongs to the run that decayed it."""
    X, y = _data()
    kw = dict(_SMALL, solver="sgd", learning_rate="invscaling", power_t=0.9)
    used = MLPClassifier(**kw).fit(X, y)
    used.set_params(solver="lbfgs").fit(X, y)
    used.set_params(solver="sgd").partial_fit(X, y)
    fresh = MLPClassifier(**dict(kw, solver="lbfgs")).fit(X, y)
    fresh.set_params(solver="sgd").partial_fit(X, y)
    np.testing.assert_array_equal(used.predict_proba(X), fresh.predict_proba(X))


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_warm_start_may_switch_early_stopping_on(Est):
    """scikit-learn fails here ('NoneType' object has no attribute 'append'); the second
    fit tracks validation scores from its own first epoch."""
    X, y = _data()
    est = Est(warm_start=True, **_SMALL).fit(X, y)
    est.set_params(early_stopping=True).fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_ == 10
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ is None and len(est.loss_curve_) == 20


@pytest.mark.parametrize("then", ["fit", "partial_fit"])
def test_early_stopping_may_be_switched_off_after_a_fit(then):
    """scikit-learn fails here (None - float); the next fit or partial_fit tracks the
    training loss again, and the validation attributes are None as after a plain fit."""
    X, y = _data()
    est = MLPClassifier(warm_start=True, early_stopping=True, **_SMALL).fit(X, y)
    est.set_params(early_stopping=False)
    getattr(est, then)(X, y)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert est.best_loss_ == min(est.loss_curve_[-est.n_iter_:])


# ---------------------------------------------------------------------------------------
# sample weights
def test_weights_summing_to_zero_or_less_are_refused_saying_so():
    X, y = _data()
    with pytest.raises(ValueError, match=r"sample_weight must hold weights >= 0, got 100 "
                                         r"negative weights \(first: sample_weight\[0\]"):
        MLPClassifier(**_SMALL).fit(X, y, sample_weight=-np.ones(100))
    with pytest.raises(ValueError, match=r"\(sample_weight x class_weight\) must sum to more "
                                         r"than 0.*sum of 0"):
        MLPClassifier(class_weight={0: 0, 1: 0}, **_SMALL).fit(
            X, y, sample_weight=(y == 0).astype(float))


@pytest.mark.parametrize("sparse", [False, True])
def test_a_batch_of_zero_weights_names_sample_weight_not_the_learning_rate(sparse):
    """Each batch's loss is its weighted mean: a batch of zero weights is 0 / 0.  That was
    reported as a divergence with advice to lower learning_rate_init."""
    import scipy.sparse as sp
    X, y = _data()
    w = np.r_[np.zeros(90), np.ones(10)]
    X = sp.csr_matrix(X) if sparse else X
    with pytest.raises(ValueError, match=r"sample_weight: the 5 rows of batch 1 of 20 "
                                         r"\(epoch 1\) have weights summing to 0.*batch_size"):
        MLPClassifier(batch_size=5, shuffle=False, **_SMALL).fit(X, y, sample_weight=w)


# ---------------------------------------------------------------------------------------
# errors that name what the user gave
def _one_sample_of(label, labels):
    def relabel(y):
        out = np.asarray(labels, dtype=object)[y]
        out[0] = label
        return out if isinstance(label, str) else out.astype(np.int64)
    return relabel


@pytest.mark.parametrize("relabel, match", [
    (_one_sample_of(7, [0, 1, 2]), "class 7 has a single sample"),
    (_one_sample_of("dog", ["ant", "bee", "cat"]), "class 'dog' has a single sample"),
])
def test_unstratifiable_early_stopping_split_names_the_label(relabel, match):
    """train_test_split names the encoded class index ('[3.0]'); the user's label is 7."""
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        MLPClassifier(early_stopping=True, **_SMALL).fit(X, relabel(y))


def test_unstratifiable_split_of_too_few_rows_says_why():
    X, y = _data(n=30, classes=3)
    with pytest.raises(ValueError, match=r"the validation part's 2 rows cannot hold one "
                                         r"of each of the 3 classes"):
        MLPClassifier(early_stopping=True, validation_fraction=0.05, **_SMALL).fit(X, y)


@pytest.mark.parametrize("seed", [-1, 1.5, "seven"])
def test_bad_random_state_is_named(seed):
    X, y = _data()
    with pytest.raises(ValueError, match=rf"random_state must be None, an integer.*{seed!r}"):
        MLPClassifier(**dict(_SMALL, random_state=seed)).fit(X, y)


# ---------------------------------------------------------------------------------------
# labels
@pytest.mark.parametrize("labels, match", [
    ([None, "a", "b"], r"has 3 missing labels \(None or NaN, first at row 0\)"),
    ([1, "a", 2], r"mixes strings and other values \(e.g. 'a' and 1\)"),
    ([0, 1, 2], r"is an object array of numbers.*y.astype\(int\)"),
])
def test_object_labels_that_are_no_labels_say_why(labels, match):
    """scikit-learn's check says 'Unknown label type: unknown. Maybe you are trying to fit
    a classifier ... on a regression target with continuous values' for all of these."""
    X, _ = _data(n=9)
    y = np.array(labels * 3, dtype=object)
    with pytest.raises(ValueError,
                       match="Unknown label type: y cannot be class labels: it " + match):
        MLPClassifier(**_SMALL).fit(X, y)


def test_string_labels_from_pandas_give_str_classes_like_sklearn():
    """scikit-learn's classes_ (LabelBinarizer's unique_labels) is a str array for str
    labels however they are held; np.unique kept a pandas Series' object dtype, so
    predict returned an object array where scikit-learn's returns '<U3'."""
    pd = pytest.importorskip("pandas")
    X, y = _data()
    names = np.array(["ant", "bee", "cat"])[y]
    for labels in (pd.Series(names), pd.Series(pd.Categorical(names)), names.astype(object)):
        est = MLPClassifier(**_SMALL).fit(X, labels)
        assert est.classes_.dtype == np.dtype("<U3") and est.classes_.tolist() == ["ant",
                                                                                    "bee",
                                                                                    "cat"]
        assert est.predict(X).dtype == np.dtype("<U3")
    pf = MLPClassifier(**_SMALL).partial_fit(X, names, classes=names.astype(object))
    assert pf.classes_.dtype == np.dtype("<U3")


# ---------------------------------------------------------------------------------------
# warm_start and partial_fit continue the fitted network
@pytest.mark.parametrize("change, match", [
    ({"hidden_layer_sizes": (7,)}, r"hidden_layer_sizes=\(7,\) differs from the fitted "
                                   r"network's \(10,\)"),
    ({"hidden_layer_sizes": (10, 10)}, r"hidden_layer_sizes=\(10, 10\) differs"),
    ({"activation": "tanh"}, r"activation='tanh' differs from the fitted network's 'relu'"),
    ({"dtype": "float32"}, r"dtype='float32' differs from the fitted network's 'float64'"),
])
@pytest.mark.parametrize("how", ["warm_start=True", "partial_fit"])
def test_architecture_changed_before_a_continued_fit_is_refused(change, match, how):
    """scikit-learn silently keeps the fitted layers (a (10,) network after
    set_params(hidden_layer_sizes=(7,))); the user asked for another network.  The same
    sizes written another way (a list, an int) name the fitted network: that goes on."""
    X, y = _data()
    est = MLPClassifier(warm_start=how != "partial_fit", **_SMALL).fit(X, y)
    go_on = est.fit if how != "partial_fit" else est.partial_fit
    est.set_params(hidden_layer_sizes=[10])
    go_on(X, y)
    est.set_params(hidden_layer_sizes=10, dtype="float64")
    go_on(X, y)
    before = est.predict_proba(X)
    est.set_params(**change)
    with pytest.raises(ValueError, match=match + ".*" + how):
        go_on(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), before)
    est.set_params(warm_start=False).fit(X, y)        # a new network of the new shape
    hidden = np.atleast_1d(est.get_params()["hidden_layer_sizes"])
    assert [w.shape[1] for w in est.coefs_[:-1]] == hidden.tolist()
    assert est.model_.activation == change.get("activation", "relu")
    assert est.model_.dtype == change.get("dtype", "float64")


def test_sparse_multilabel_indicator_y_trains_as_the_dense_one():
    """scikit-learn takes a sparse label indicator matrix; this estimator failed with
    'setting an array element with a sequence'."""
    import scipy.sparse as sp
    from sklearn.datasets import make_multilabel_classification
    X, Y = make_multilabel_classification(100, 5, n_classes=3, random_state=0)
    dense = MLPClassifier(**_SMALL).fit(X, Y)
    for fmt in (sp.csr_matrix, sp.csc_matrix):
        est = MLPClassifier(**_SMALL).fit(X, fmt(Y))
        np.testing.assert_array_equal(est.predict_proba(X), dense.predict_proba(X))
        np.testing.assert_array_equal(est.classes_, [0, 1, 2])
        assert est.score(X, fmt(Y)) == dense.score(X, Y)


def test_partial_fit_refuses_balanced_class_weights_and_takes_their_dict():
    """'balanced' recomputed on each chunk weights the classes differently chunk by chunk
    (here the first chunk has no class 2 at all); scikit-learn's SGDClassifier refuses it
    in partial_fit.  The dict it advises gives the fit's weights."""
    from sklearn.utils.class_weight import compute_class_weight
    X, y = _data()
    est = MLPClassifier(class_weight="balanced", **_SMALL)
    assert not hasattr(est, "partial_fit")     # as for lbfgs: estimator checks skip it
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as info:
        est.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert "not available with class_weight='balanced'" in str(info.value.__cause__)
    assert "compute_class_weight('balanced'" in str(info.value.__cause__)
    weights = dict(zip([0, 1, 2], compute_class_weight("balanced", classes=np.arange(3), y=y)))
    streamed = MLPClassifier(class_weight=weights, **_SMALL).partial_fit(X, y, classes=[0, 1, 2])
    balanced = MLPClassifier(**dict(_SMALL, class_weight="balanced", max_iter=1)).fit(X, y)
    np.testing.assert_allclose(streamed.predict_proba(X), balanced.predict_proba(X),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["string", "object", "Int64"])
def test_missing_labels_in_a_pandas_target_are_named(dtype):
    """pd.NA in a pandas "string" column failed inside scikit-learn's own check with
    TypeError 'boolean value of NA is ambiguous' (scikit-learn's MLP fails the same way)."""
    pd = pytest.importorskip("pandas")
    X, y = _data()
    labels = pd.Series(np.array(["ant", "bee", "cat"])[y], dtype=dtype) if dtype != "Int64" \
        else pd.Series(y, dtype="Int64")
    labels[[4, 9]] = pd.NA
    with pytest.raises(ValueError, match=r"Input y contains NaN: 2 missing labels \(pd.NA, "
                                         r"NaN or None; first at row 4\)"):
        MLPClassifier(**_SMALL).fit(X, labels)
    frame = pd.DataFrame({"a": y == 0, "b": y == 1}).astype("boolean")
    frame.iloc[7, 1] = pd.NA
    with pytest.raises(ValueError, match=r"1 missing label .*first at row 7"):
        MLPClassifier(**_SMALL).fit(X, frame)


def test_missing_label_in_a_2d_object_target_names_its_row():
    X, _ = _data(n=6)
    y = np.array([["a", "b"], ["b", "a"], ["a", "a"], ["b", None], ["a", "b"], ["b", "b"]],
                 dtype=object)
    with pytest.raises(ValueError, match=r"1 missing label \(None or NaN, first at row 3\)"):
        MLPClassifier(**_SMALL).fit(X, y)
