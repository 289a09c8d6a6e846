"""fit(): determinism, equivalence with a hand-written loop, early stopping, divergence."""

import re
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, fit, optim
from fastmlp.backends import reference as R
from fastmlp.training.fit_inputs import class_weights
from fastmlp.training.loop import epoch_order


def blobs(n=600, seed=0, n_in=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_in))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 - 0.3 * X[:, 2] > 0.4).astype(int)
    return X, y


def test_same_seed_same_result_bit_for_bit():
    X, y = blobs()
    a, b, c = (MLP([4, 16, 1], seed=1, backend="numpy") for _ in range(3))
    ha = fit(a, X, y, epochs=3, seed=7, progress=False)
    hb = fit(b, X, y, epochs=3, seed=7, progress=False)
    fit(c, X, y, epochs=3, seed=8, progress=False)
    assert np.array_equal(a.params, b.params) and ha.loss == hb.loss
    assert not np.array_equal(a.params, c.params)


def test_fit_equals_hand_written_minibatch_loop():
    """One epoch of fit is: shuffle from the seed, then loss_and_grad + step per batch."""
    X, y = blobs(100)
    m = MLP([4, 8, 1], dtype="float64", backend="numpy")
    ref = m.copy()
    h = fit(m, X, y, epochs=2, batch_size=32, validation=None, seed=3, progress=False,
            optimizer="rmsprop", lr=0.01)
    opt = optim.RMSprop(ref.params, lr=0.01)
    rng = np.random.default_rng(3)
    losses = []
    for _ in range(2):
        perm = epoch_order(rng, 100)
        for i in range(0, 100, 32):
            idx = perm[i:i + 32]
            value, g = ref.loss_and_grad(X[idx], y[idx], loss="bce")
            losses.append(value)
            opt.step(g)
    np.testing.assert_array_equal(m.params, ref.params)
    assert h.batch_loss == pytest.approx(losses, rel=1e-14)
    assert h.lr == [0.01] * 8 and h.optimizer.step_count == 8
    # the epoch loss: the batch losses weighted by their rows (32, 32, 32, 4), exactly
    for e in range(2):
        rows = np.array([32.0, 32, 32, 4])
        assert h.loss[e] == float(np.dot(np.asarray(h.batch_loss[4 * e:4 * e + 4]), rows)) / 100


def test_schedule_lr_per_step_is_recorded_and_used():
    X, y = blobs(64)
    m = MLP([4, 4, 1], backend="numpy")
    sched = fastmlp.schedules.LinearDecay(0.1, 0.01, T=6)
    h = fit(m, X, y, optimizer="sgd", schedule=sched, batch_size=16, epochs=3,
            validation=None, progress=False)
    assert h.lr == pytest.approx([sched(t) for t in range(12)])
    h2 = fit(MLP([4, 4, 1], backend="numpy"), X, y, optimizer="sgd", lr=0.1,
             schedule="step:step_size=2,gamma=0.5", batch_size=32, epochs=2,
             validation=None, progress=False)
    assert h2.lr == pytest.approx([0.1, 0.1, 0.05, 0.05])


def test_full_batch_gradient_descent():
    X, y = blobs(50)
    m = MLP([4, 1], dtype="float64", backend="numpy")
    ref = m.copy()
    fit(m, X, y, optimizer="sgd", lr=0.5, batch_size=None, epochs=5, validation=None,
        progress=False)
    for _ in range(5):
        _, g = ref.loss_and_grad(X, y)
        ref.params -= 0.5 * g
    np.testing.assert_allclose(m.params, ref.params, rtol=1e-14)


def test_training_learns():
    X, y = blobs(2000)
    m = MLP([4, 32, 32, 1], backend="numpy")
    h = fit(m, X, y, epochs=15, lr=3e-3, progress=False, seed=0)
    assert h.loss[-1] < 0.5 * h.loss[0]
    # the majority class is ~51 %; 0.925-0.965 over seeds 0-7 (200 validation rows)
    assert h.metrics["val_accuracy"][-1] > 0.9


def test_early_stopping_restores_best_weights():
    X, y = blobs(300)
    m = MLP([4, 64, 64, 1], backend="numpy", dtype="float64")
    snapshots = []
    h = fit(m, X, y, epochs=200, lr=0.05, batch_size=16, early_stopping=3, progress=False,
            callbacks=[lambda e, hist, model: snapshots.append(model.params.copy())])
    assert h.stopped_early and len(h.loss) < 200
    best = int(np.argmin(h.val_loss))
    assert h.best_epoch == best + 1
    assert len(h.loss) == h.best_epoch + 3
    np.testing.assert_array_equal(m.params, snapshots[best])


def test_callback_can_stop_training():
    X, y = blobs(100)
    h = fit(MLP([4, 4, 1], backend="numpy"), X, y, epochs=50, progress=False,
            callbacks=[lambda e, hist, model: e >= 4])
    assert len(h.loss) == 4


def test_divergence_stops_with_the_step_and_keeps_finite_params():
    X, y = blobs(256)
    X = X * 1e3
    m = MLP([4, 64, 1], activation="relu", backend="numpy")
    params_seen = []

    with pytest.raises(fastmlp.TrainingDiverged, match=r"at step (\d+)") as err:
        fit(m, X, y, optimizer="sgd", lr=1e6, batch_size=32, epochs=20, validation=None,
            progress=False, callbacks=[lambda e, h, mod: params_seen.append(1)])
    assert np.isfinite(m.params).all()
    assert err.value.step >= 1
    # replay the same training up to step-1 and compare: the model sits exactly there
    ref = MLP([4, 64, 1], activation="relu", backend="numpy")
    opt = optim.SGD(ref.params, lr=1e6)
    rng = np.random.default_rng(0)
    steps = 0
    while steps < err.value.step - 1:
        perm = epoch_order(rng, 256)
        for i in range(0, 256, 32):
            if steps == err.value.step - 1:
                break
            idx = perm[i:i + 32]
            opt.step(ref.loss_and_grad(X[idx].astype(np.float32), y[idx])[1])
            steps += 1
    np.testing.assert_array_equal(m.params, ref.params)


def test_divergence_message_says_what_was_seen_and_where():
    # moderate inputs, an absurd lr: the message gives the loss, step, epoch and batch, and
    # advises a smaller lr (the inputs are not what is wrong)
    X, y = blobs(256)
    m = MLP([4, 64, 1], activation="relu", backend="numpy")
    with pytest.raises(fastmlp.TrainingDiverged) as err:
        fit(m, X * 1e3, y, optimizer="sgd", lr=1e6, batch_size=32, epochs=20,
            validation=None, progress=False)
    msg = str(err.value)
    assert re.search(rf"training diverged at step {err.value.step} \(epoch \d+, batch \d+ of "
                     r"8, lr 1e\+06\): the batch loss was (nan|inf|[-0-9.e+]+ but its "
                     r"gradient was not finite)", msg), msg
    assert "Try a smaller lr (this run's was 1e+06)." in msg and "standardi" not in msg


def _huge_column(n=64, scale=1e30):
    X, y = blobs(n, n_in=3)
    X[:, 1] *= scale
    return X, y


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_huge_unstandardised_inputs_warn_and_an_overflowed_optimizer_state_raises():
    """Inputs of 1e30 in a float32 model: Adam's squared gradients overflow to inf on the
    first step, the parameters stop moving and the loss stays a finite 1e29.  That used to
    finish without a word; now fit warns before training (naming the column and
    standardize=True) and raises once the state is non-finite, with both put back."""
    X, y = _huge_column()
    m = MLP([3, 8, 1], seed=0, backend="numpy", features=["a", "flux", "c"])
    p0 = m.params.copy()
    with pytest.warns(UserWarning, match=r"X: column 1 \('flux'\) reaches \|x\| = \d.*e\+30 "
                                         r".*pass standardize=True"):
        with pytest.raises(fastmlp.TrainingDiverged,
                           match=r"in epoch 1: the optimizer state \(exp_avg_sq\) became "
                                 r"non-finite during steps 1\.\.1 .* not standardised and "
                                 r"column 1 \('flux'\) reaches .*pass standardize=True"):
            fit(m, X, y, epochs=3, batch_size=None, validation=None, progress=False)
    assert np.array_equal(m.params, p0)
    assert np.isfinite(m.optimizer.state).all() and m.optimizer.step_count == 0
    # standardised, the same rows train quietly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = fit(m, X, y, epochs=3, standardize=True, validation=None, progress=False)
    assert np.isfinite(h.loss).all() and h.loss[-1] < 1


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_huge_inputs_that_stay_finite_still_warn_before_training():
    # float64: the state holds 1e60, the loss creeps down from 1e29: nothing fails, so the
    # warning before training is all the user gets
    X, y = _huge_column()
    m = MLP([3, 8, 1], seed=0, dtype="float64", backend="numpy")
    with pytest.warns(UserWarning, match=r"column 1 reaches \|x\| = .*standardize=True"):
        h = fit(m, X, y, epochs=2, validation=None, progress=False)
    assert h.loss[-1] > 1e20
    # a diverging run on such inputs points at them, not at the lr
    X[:, 1] = np.sign(X[:, 1]) * 1e200
    with pytest.warns(UserWarning), pytest.raises(
            fastmlp.TrainingDiverged, match=r"not standardised and column 1 reaches "
                                            r"\|x\| = 1e\+200: pass standardize=True"):
        fit(MLP([3, 8, 1], seed=0, dtype="float64", backend="numpy"), X, y, optimizer="sgd",
            lr=0.1, epochs=2, validation=None, progress=False)


def test_class_weight_balanced_upweights_the_rare_class():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 2))
    y = (X[:, 0] > 1.4).astype(int)  # ~8 % positives
    kw = dict(epochs=10, lr=0.01, progress=False, validation=None, seed=0)
    plain = MLP([2, 1], backend="numpy", seed=0)
    bal = MLP([2, 1], backend="numpy", seed=0)
    fit(plain, X, y, **kw)
    fit(bal, X, y, class_weight="balanced", **kw)
    # balanced weights shift the decision boundary toward the majority: more predicted 1s
    assert bal.predict(X).sum() > plain.predict(X).sum()
    w = class_weights("balanced", y, 2)
    assert w[y == 1][0] == pytest.approx(1000 / (2 * y.sum()))


@pytest.mark.parametrize("class_weight", ["balanced", {0: 1.0, 1: 5.0}])
def test_class_weight_is_refused_for_multilabel_targets(class_weight):
    """Multilabel (a 0/1 column per output): class weights would follow the first column
    only; refused as the estimator refuses them."""
    X, _ = blobs(100)
    Y = (X[:, :3] > 0).astype(int)
    m = MLP([4, 3, 3], backend="numpy", output="sigmoid")
    with pytest.raises(ValueError, match="class_weight applies to single-label targets, "
                                         "not multilabel"):
        fit(m, X, Y, loss="bce", class_weight=class_weight, epochs=1, progress=False)
    fit(m, X, Y, loss="bce", sample_weight=np.ones(100), epochs=1, progress=False)


def test_validation_pair_and_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    t = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    m = MLP([3, 1], activation="identity", backend="numpy", dtype="float64")
    h = fit(m, X[:300], t[:300], loss="mse", validation=(X[300:], t[300:]), epochs=40,
            lr=0.05, progress=False)
    assert h.val_loss[-1] < 1e-3
    assert h.metrics["val_rmse"][-1] < 0.03
    np.testing.assert_allclose(m.predict(X[:3]), t[:3], atol=0.1)
    with pytest.raises(ValueError, match="predict_proba is for classifiers"):
        m.predict_proba(X)


def test_regression_with_a_validation_fraction():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 2))
    h = fit(MLP([2, 1], backend="numpy"), X, X.sum(axis=1), loss="mse", validation=0.25,
            epochs=2, progress=False)
    assert len(h.val_loss) == 2 and len(h.metrics["val_rmse"]) == 2


def test_stratified_validation_split_keeps_class_shares():
    y = np.array([0] * 90 + [1] * 10)
    tr, va = fastmlp.training.stratified_split(y, 0.2, np.random.default_rng(0))
    assert len(va) == 20 and (y[va] == 1).sum() == 2
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100


def test_drop_invalid_drops_nan_rows():
    X, y = blobs(100)
    X[[3, 50], 1] = np.nan
    with pytest.raises(ValueError, match=r"2 rows with NaN or inf \(columns \[1\]\)"):
        fit(MLP([4, 2, 1], backend="numpy"), X, y, epochs=1, progress=False)
    h = fit(MLP([4, 2, 1], backend="numpy"), X, y, epochs=1, progress=False,
            drop_invalid=True, validation=None, batch_size=None)
    assert len(h.batch_loss) == 1


def test_standardize_refuses_a_column_whose_statistics_overflow():
    """A column scaled by 1e200 has std inf: it would be fed as zeros and give a model
    that saves but never loads.  fit names the column, the model stays unstandardised."""
    X, y = blobs(100)
    X[:, 2] *= 1e200
    m = MLP([4, 2, 1], dtype="float64", backend="numpy",
            features=["a", "b", "flux", "d"])
    with pytest.raises(ValueError, match=r"column 2 \('flux'\) of X has mean .* and std "
                                         r"inf: .*rescale that column"):
        fit(m, X, y, epochs=1, standardize=True, progress=False)
    assert m.standardization is None
    X[:, 2] /= 1e200
    fit(m, X, y, epochs=1, standardize=True, progress=False)
    assert m.standardization[0].flags.writeable is False   # set through the contract


def test_the_link_follows_the_loss_of_each_fit():
    """Trained again with another loss, a model takes that loss's link (it kept the first
    one's: a regressor with a sigmoid); an output the user declared must match the loss."""
    X, y = blobs(100)
    m = MLP([4, 3, 1], backend="numpy")
    fit(m, X, y, epochs=1, progress=False)
    assert (m.loss, m.link) == ("bce", "sigmoid")
    fit(m, X, X[:, 0], loss="mse", epochs=1, progress=False)
    assert (m.loss, m.link) == ("mse", "identity")
    np.testing.assert_array_equal(m.predict(X), m.forward(X.astype(np.float32))[:, 0])
    fit(m, X, y, loss="bce", epochs=1, progress=False)
    assert (m.loss, m.link, m.output) == ("bce", "sigmoid", None)
    assert set(np.unique(m.predict(X))) <= {0, 1}
    declared = MLP([4, 3, 1], backend="numpy", output="sigmoid")
    fit(declared, X, y, epochs=1, progress=False)
    p0 = declared.params.copy()
    with pytest.raises(ValueError, match="loss='mse' needs the 'identity' link but the "
                                         "model declares output='sigmoid'"):
        fit(declared, X, X[:, 0], loss="mse", epochs=1, progress=False)
    assert declared.loss == "bce" and np.array_equal(declared.params, p0)


def test_progress_prints_one_line_per_epoch(capsys):
    X, y = blobs(100)
    fit(MLP([4, 2, 1], backend="numpy"), X, y, epochs=2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "epoch 2/2" in err[1] and "samples/s" in err[1]


def test_train_epoch_reference_stops_before_a_non_finite_update():
    m = MLP([2, 3, 1], dtype="float64", backend="numpy")
    opt = optim.Adam(m.params)
    X = np.ones((6, 2))
    X[4, 0] = np.inf  # in the third batch of 2
    Y = np.zeros((6, 1))
    p0 = m.params.copy()
    bl = np.zeros(3)
    done = R.train_epoch(m.params, np.empty_like(m.params), opt.state, bl, X, Y, np.ones(6),
                         np.arange(6), 2, np.full(3, 1e-3), 0, opt.code, opt.hyper_vector(),
                         m.sizes_array, m.acts_array, 0)
    assert done == 2
    assert not np.array_equal(m.params, p0) and np.isfinite(m.params).all()


def test_history_repr_is_one_line_not_every_step():
    # the dataclass repr printed every mini-batch loss and lr of the run
    X, y = fastmlp.make_photometric_catalog(2000, seed=0)
    h = fastmlp.fit(fastmlp.MLP([4, 8, 1], seed=0), X, y, epochs=3, batch_size=32,
                    progress=False)
    text = repr(h)
    assert "\n" not in text and len(text) < 300 and len(h.batch_loss) > 100
    assert text.startswith(f"History(3 epochs, {len(h.batch_loss)} steps, loss ")
    assert f"val_loss {h.val_loss[-1]:.6g}" in text and "backend " in text
