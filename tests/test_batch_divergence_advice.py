"""A diverged model of a batched run (fit_batch, fit_ensemble, batched cross-validation) is
told what to change in fit's words (loop.divergence_advice): a smaller lr quoting that
model's own lr at the step it diverged, or standardize=True for huge unstandardised inputs.
All on the reference (NumPy) batched kernels."""

import re

import numpy as np
import pytest

import fastmlp
from fastmlp.schedules import Exponential
from fastmlp.training.batch import ModelBatch, fit_batch, fit_ensemble
from fastmlp.training.recipes import cross_validate

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning",
                                        "ignore:.*reaches:UserWarning")


def _data(n=64, scale_column=None):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] > 0).astype(int)
    if scale_column is not None:
        X[:, scale_column] *= 1e8      # above LARGE_INPUT (1e6): fit's "huge input"
    return X, y


def _base(dtype="float64"):
    return fastmlp.MLP([3, 8, 1], seed=0, backend="numpy", dtype=dtype)


def test_fit_batch_advises_a_smaller_lr_quoting_the_diverged_models_own_lr():
    X, y = _data()
    kw = [{"lr": 0.01}, {"lr": 1e150}, {"lr": 0.02}]
    batch = ModelBatch(_base(), 3, optimizer="sgd", optimizer_kwargs=kw)
    hist = fit_batch(batch, X, y, epochs=2, batch_size=16)
    assert hist.diverged.tolist() == [False, True, False]
    assert hist.diverged_advice == [None, "try a smaller lr (this run's was 1e+150)", None]
    with pytest.raises(fastmlp.TrainingDiverged,
                       match=r"^model 1 of the batch diverged: non-finite .* at step \d+; it "
                             r"keeps its last finite parameters\. Try a smaller lr \(this "
                             r"run's was 1e\+150\)\.$"):
        fit_batch(ModelBatch(_base(), 3, optimizer="sgd", optimizer_kwargs=kw), X, y,
                  epochs=2, batch_size=16, on_divergence="raise")


def test_the_lr_quoted_is_the_models_schedule_at_the_step_it_diverged():
    # both models start at lr 0.01; model 1's grows tenfold per step until it diverges: the
    # advice quotes the lr of that step, not the initial one nor model 0's
    X, y = _data()
    sched = Exponential(0.01, 10.0)
    batch = ModelBatch(_base(), 2, optimizer="sgd", optimizer_kwargs={"lr": 0.01},
                       schedule=[None, sched])
    hist = fit_batch(batch, X, y, epochs=200, batch_size=None)   # one step per epoch
    assert hist.diverged.tolist() == [False, True]
    step = int(hist.diverged_step[1])
    assert step > 1
    lr = re.search(r"this run's was (\S+)\)", hist.diverged_advice[1]).group(1)
    assert float(lr) == pytest.approx(sched(step - 1), rel=1e-2) and float(lr) > 0.01


def test_fit_batch_on_huge_unstandardised_inputs_advises_standardize():
    X, y = _data(scale_column=1)
    batch = ModelBatch(_base("float32"), 2, optimizer="sgd",
                       optimizer_kwargs=[{"lr": 1e-3}, {"lr": 1e-2}])
    with pytest.raises(fastmlp.TrainingDiverged,
                       match=r"^model \d of the batch diverged: .*\. The inputs are not "
                             r"standardised and column 1 reaches \|x\| = .*e\+08: pass "
                             r"standardize=True \(or rescale that column\) rather than "
                             r"lowering the lr\.$"):
        fit_batch(batch, X, y, epochs=3, batch_size=16, on_divergence="raise")


def test_the_advice_reads_the_diverged_models_own_rows_and_standardisation():
    # a fixed standardisation (from clean rows) and one outlier row, in model 0's subset
    # only: model 0 is told to clip that outlier, model 1 (clean rows) to lower its lr
    X, y = _data(80)
    base = _base()
    base.standardization = fastmlp.Standardizer().fit(X).as_tuple()
    X[3, 2] = 1e9
    subsets = [np.arange(40), np.arange(40, 80)]
    batch = ModelBatch(base, 2, optimizer="sgd", optimizer_kwargs={"lr": 1e150})
    hist = fit_batch(batch, X, y, epochs=2, batch_size=16, subsets=subsets)
    assert hist.diverged.tolist() == [True, True]
    assert re.fullmatch(r"even standardised, column 2 reaches \|x\| = .*e\+09: clip or "
                        r"rescale that column's outliers", hist.diverged_advice[0])
    assert hist.diverged_advice[1] == "try a smaller lr (this run's was 1e+150)"


def test_fit_ensemble_names_the_member_and_advises_a_smaller_lr():
    X, y = _data()
    with pytest.raises(fastmlp.TrainingDiverged,
                       match=r"^member 0 of the batch diverged: .*\. Try a smaller lr \(this "
                             r"run's was 1e\+150\)\.$") as err:
        fit_ensemble(_base, X, y, n_members=2, epochs=2, batch_size=16, optimizer="sgd",
                     lr=1e150)
    assert err.value.where == "member 0"


def test_fit_ensemble_on_huge_unstandardised_inputs_advises_standardize():
    X, y = _data(scale_column=1)
    with pytest.raises(fastmlp.TrainingDiverged,
                       match=r"^member \d of the batch diverged: .*\. The inputs are not "
                             r"standardised and column 1 reaches .*: pass standardize=True"):
        fit_ensemble(lambda: _base("float32"), X, y, n_members=2, epochs=3, batch_size=16,
                     optimizer="sgd", lr=1e-2)


@pytest.mark.parametrize("batched, said, where", [
    (True, r"^fold 1 of the batch diverged: .*", r"fold 1$"),
    (False, r"^fold 1/3: training diverged at step \d+ .*", r"fold 1, "),
])
def test_cross_validation_names_the_fold_and_advises_a_smaller_lr(batched, said, where):
    """Folds are numbered from 1, as in cross_validate's progress lines and the CLI; the
    serial path named no fold."""
    X, y = _data(90)
    with pytest.raises(fastmlp.TrainingDiverged,
                       match=said + r"\. Try a smaller lr \(this run's was 1e\+150\)\.$") as err:
        cross_validate(_base, X, y, k=3, epochs=2, batch_size=16, optimizer="sgd", lr=1e150,
                       batched=batched)
    assert re.match(where, err.value.where) and err.value.step >= 1
