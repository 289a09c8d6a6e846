"""The recipes as an optimizer-benchmarking user meets them: a factory reused across folds,
result arrays that alias the inputs, full-batch sweeps, runs that blow up and come back
down, and the CLI's messages for --k and logspace specs."""

import re

import numpy as np
import pytest

import fastmlp
from fastmlp import cli
from fastmlp.training.recipes import divergence_index, parse_optimizers

# a tiny grid's best lr sits at its edge: said, and beside the point here
pytestmark = pytest.mark.filterwarnings("ignore:the chosen lr")


def _data(n=300):
    X, y = fastmlp.make_photometric_catalog(n, seed=1)
    return X, y


def _factory(X, hidden=8):
    st = fastmlp.Standardizer().fit(X).as_tuple()
    return lambda: fastmlp.MLP([4, hidden, 1], seed=0, standardization=st)


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# 1. a make_model that hands back the same model would let fold k train on from fold k-1
@pytest.mark.parametrize("kwargs", [dict(batched=False), dict(batched=True),
                                    dict(batched=True, validation=0.2)])
def test_cross_validate_refuses_a_factory_returning_one_model_for_every_fold(kwargs):
    X, y = _data()
    m = fastmlp.MLP([4, 8, 1], seed=0)
    before = m.params.copy()
    with pytest.raises(ValueError, match=r"make_model returned the same model object for "
                                         r"fold 2 as for fold 1: each fold must train a "
                                         r"fresh model"):
        fastmlp.cross_validate(lambda: m, X, y, k=3, epochs=1, lr=0.01, standardize=True,
                               **kwargs)
    np.testing.assert_array_equal(m.params, before)      # refused before any training


def test_cross_validate_refuses_models_sharing_one_parameter_buffer():
    X, y = _data()
    shared = fastmlp.MLP([4, 8, 1], seed=0).params

    class Recycled(fastmlp.MLP):    # no public way makes two MLPs share one buffer: a
        params = property(lambda self: shared)     # subclass whose params is one array

    def make_model():       # distinct objects, one buffer (a factory recycling buffers)
        return Recycled([4, 8, 1], seed=0)
    with pytest.raises(ValueError, match=r"sharing the parameter buffer .* fold 2 as for "
                                         r"fold 1"):
        fastmlp.cross_validate(make_model, X, y, k=3, epochs=1, batched=False)


# 2. results must not alias the caller's arrays or the defaults
def test_sweep_lrs_is_its_own_array_not_the_default_or_the_callers():
    X, y = _data()
    mk = _factory(X)
    first = fastmlp.lr_sweep(mk, X, y, iterations=3)
    first.lrs[-1] = np.nan          # the caller's to change: not the default grid
    again = fastmlp.lr_sweep(mk, X, y, iterations=3)
    np.testing.assert_allclose(again.lrs, np.logspace(-5, 0, 11))
    mine = np.array([1e-3, 1e-2])
    res = fastmlp.lr_sweep(mk, X, y, lrs=mine, iterations=3)
    res.lrs[0] = 5.0
    np.testing.assert_array_equal(mine, [1e-3, 1e-2])


def test_parse_optimizers_defaults_are_copies():
    specs = parse_optimizers(None)
    specs[0][2]["lr"] = 123.0
    assert parse_optimizers(None)[0][2]["lr"] == 0.05


# 3. batch_size=None: full-batch gradient descent, as fit takes it
@pytest.mark.parametrize("batched", [True, False])
def test_lr_sweep_and_compare_optimizers_take_batch_size_none_as_every_row(batched):
    X, y = _data(200)
    mk = _factory(X)
    full = fastmlp.lr_sweep(mk, X, y, lrs=[1e-3, 1e-2], iterations=4, batch_size=None,
                            batched=batched)
    rows = fastmlp.lr_sweep(mk, X, y, lrs=[1e-3, 1e-2], iterations=4, batch_size=len(X),
                            batched=batched)
    for a, b in zip(full.losses, rows.losses):
        np.testing.assert_array_equal(a, b)
    curves = fastmlp.compare_optimizers(mk, X, y, optimizers="sgd:0.1,adam", iterations=4,
                                        batch_size=None, batched=batched)
    same = fastmlp.compare_optimizers(mk, X, y, optimizers="sgd:0.1,adam", iterations=4,
                                      batch_size=len(X), batched=batched)
    for label in curves:
        np.testing.assert_array_equal(curves[label], same[label])


# 4. a run that rose above 4x its first loss diverged, even if it came back down (a blow-up
#    that lands on the constant predictor ends below the first loss on imbalanced classes)
def test_a_rise_above_the_limit_is_a_divergence_even_if_the_loss_comes_back_down():
    from fastmlp.training.recipes import judge_curve
    curve = np.r_[0.7, 3.5, np.linspace(0.6, 0.3, 38)]
    assert divergence_index(curve) == 1
    verdict = judge_curve(curve)
    assert verdict.diverged and verdict.peak == 3.5
    assert verdict.note() == (f"diverged at iteration 2: rose to 3.5 (above 2.8 = 4 x its "
                              f"first loss 0.7), ended at {curve[-4:].mean():.4g}")


def test_a_run_that_ends_far_above_its_start_or_went_non_finite_diverged():
    from fastmlp.training.recipes import judge_curve
    ends_high = np.r_[np.linspace(0.7, 0.5, 30), np.full(10, 9.0)]
    assert divergence_index(ends_high) == 30
    assert judge_curve(ends_high).note().startswith("diverged at iteration 31: rose to 9 ")
    never_back = np.r_[0.7, 5.0, np.full(38, 1.0)]
    assert divergence_index(never_back) == 1
    nonfinite = np.r_[0.7, 0.6, np.inf, np.full(7, np.nan)]
    assert divergence_index(nonfinite) == 2
    assert divergence_index(np.linspace(0.7, 0.3, 20)) is None


def test_compare_optimizers_cli_gives_a_diverged_run_its_final_loss_too(capsys):
    code, out, err = _run(capsys, "compare-optimizers", "--n-samples", "500", "--iterations",
                          "40", "--hidden", "8", "--optimizers", "adam:2,adam:0.001",
                          "--quiet")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.strip().startswith("adam(lr=2)"))
    assert re.search(r"adam\(lr=2\)\s+\d\.\d+  \(diverged at iteration 2: rose to "
                     r"\d[\d.e+]* \(above \d[\d.]* = 4 x its first loss \d\.\d+\), "
                     r"ended at \d\.\d+\)$", row)


# 5. CLI messages name the option and what is wrong, before anything is announced
def test_cv_k_1_is_refused_by_the_parser_naming_k(capsys):
    with pytest.raises(SystemExit):
        cli.main(["cv", "--k", "1", "--n-samples", "500", "--epochs", "1"])
    out, err = capsys.readouterr()
    assert "argument --k: expected an integer >= 2" in err and "cross-validation" not in out


def test_cv_k_above_the_row_count_is_named_before_the_run_is_announced(capsys):
    code, out, err = _run(capsys, "cv", "--k", "600", "--n-samples", "500", "--epochs", "1")
    assert code != 0
    assert "--k must be between 2 and the number of rows (500), got 600" in err
    assert "cross-validation" not in out


def test_sweep_logspace_spec_says_which_part_is_wrong(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--lrs", "logspace:-3,-1,0", "--n-samples", "200"])
    err = capsys.readouterr().err
    assert "logspace NUM must be a positive integer" in err and "'0'" in err
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--lrs", "logspace:-3,1", "--n-samples", "200"])
    assert "logspace needs START,STOP,NUM" in capsys.readouterr().err
