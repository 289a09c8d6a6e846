"""A run whose loss rose above divergence_factor x its first loss diverged, even when it fell
back to the constant predictor (below its first loss on imbalanced classes); the sweep plot
judges by the sweep's own factor; a long full-batch run's batch order is built piece by
piece; a logspace bound given as a learning rate is refused."""

import numpy as np
import pytest

import fastmlp
from fastmlp import cli, plot
from fastmlp.training import recipes
from fastmlp.training.recipes import SweepPlan, SweepResult, judge_curve

pytestmark = pytest.mark.filterwarnings("ignore:the chosen lr")


def _factory(X, hidden=8):
    st = fastmlp.Standardizer().fit(X).as_tuple()
    return lambda: fastmlp.MLP([4, hidden, 1], seed=0, standardization=st)


def test_a_blow_up_that_lands_on_the_constant_predictor_diverged_and_is_not_chosen():
    # the README's `fastmlp sweep` on small data: 10 % quasars, so the constant predictor's
    # loss (the base rate's entropy, 0.325) lies below the first loss
    X, y = fastmlp.make_photometric_catalog(500, seed=0)
    p = float(np.mean(y))
    trivial = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    res = fastmlp.lr_sweep(_factory(X), X, y, lrs=[1e-2, 2.0], iterations=40, batch_size=64)
    blown = res.verdict(1)
    assert blown.peak > 4 * blown.start                 # it blew up ...
    assert blown.final < blown.start                    # ... and came back below its start,
    assert abs(blown.final - trivial) < 0.15 * trivial  # near the constant predictor
    assert res.diverged[1] and not res.diverged[0]
    assert res.best_lr == 1e-2 and res.best_index == 0
    row = res.table().splitlines()[2]
    assert "yes" in row and f"ended at {blown.final:.4g}" in row and "<- best" not in row


def test_where_the_curve_settles_does_not_decide_the_verdict():
    # rising to 1e30 and settling at 0.69 or at 0.71 (first loss 0.7): both diverged
    for settles in (0.69, 0.71):
        curve = np.r_[0.7, 1e30, np.full(38, settles)]
        verdict = judge_curve(curve)
        assert verdict.diverged and verdict.at == 1 and verdict.final == pytest.approx(settles)


def test_sweep_plot_marks_divergence_by_the_sweeps_own_factor():
    plt = pytest.importorskip("matplotlib.pyplot")
    good = np.linspace(1.0, 0.5, 10)
    # above 2x its first loss at iteration 3, above 4x only at iteration 5
    blown = np.r_[1.0, 0.9, 3.0, 0.8, 5.0, np.full(5, 0.5)]
    res = SweepResult(np.array([1e-3, 1e-2]), [good, blown], np.array([0.5, np.inf]),
                      np.array([False, True]), 1e-3, 0, divergence_factor=2.0)
    fig = plot.lr_sweep(res)
    try:
        crosses = [line for line in fig.axes[0].get_lines() if line.get_marker() == "x"]
        assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [3]
    finally:
        plt.close(fig)


def _old_order(seed, n, bs, iterations):
    """The batch sequence as it was built whole: consecutive shuffles, cut."""
    rng = np.random.default_rng(seed)
    reps = -(-iterations * bs // n)
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:iterations * bs]


def test_a_full_batch_order_is_built_in_bounded_pieces_of_the_same_sequence(monkeypatch):
    X, y = fastmlp.make_photometric_catalog(300, seed=1)
    monkeypatch.setattr(recipes, "ORDER_PIECE_ROWS", 1000)
    plan = SweepPlan.build(_factory(X), X, y, [1e-2], 50, None, None, 3)
    pieces = list(plan.order_pieces())
    assert max(order.size for _, order in pieces) <= 1000       # not 50 x 300 at once
    assert [first for first, _ in pieces] == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36,
                                              39, 42, 45, 48]
    np.testing.assert_array_equal(np.concatenate([o for _, o in pieces]),
                                  _old_order(3, 300, 300, 50))


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("batch_size", [None, 64])
def test_pieces_of_one_batch_give_the_same_curves_as_one_piece(monkeypatch, batched,
                                                                batch_size):
    X, y = fastmlp.make_photometric_catalog(300, seed=1)
    kw = dict(lrs=[1e-3, 0.1, 1e30], iterations=12, batch_size=batch_size, batched=batched)
    whole = fastmlp.lr_sweep(_factory(X), X, y, **kw)
    monkeypatch.setattr(recipes, "ORDER_PIECE_ROWS", 1)    # one batch per kernel call
    pieces = fastmlp.lr_sweep(_factory(X), X, y, **kw)
    # a run stopped at a non-finite loss stays stopped (the later pieces leave it NaN)
    assert whole.diverged[2] and np.isnan(whole.losses[2][-1])
    for a, b in zip(whole.losses, pieces.losses):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec, hint", [("logspace:1e-5,0,3", "START = -5"),
                                        ("logspace:-5,0.01,3", "STOP = -2")])
def test_logspace_bound_given_as_a_learning_rate_is_refused_with_a_hint(capsys, spec, hint):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--lrs", spec, "--n-samples", "200"])
    err = capsys.readouterr().err
    assert "is an exponent (lr = 10^" in err and "looks like a learning rate" in err
    assert hint in err


def test_logspace_out_of_range_says_exponent(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--lrs", "logspace:-5,400,3", "--n-samples", "200"])
    err = capsys.readouterr().err
    assert "logspace STOP must be an exponent (lr = 10^STOP) between -300 and 300" in err
