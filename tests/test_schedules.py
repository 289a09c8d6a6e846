import math

import pytest

from fastmlp import schedules as S


def test_constant():
    assert [S.Constant(0.1)(t) for t in (0, 10, 10**6)] == [0.1] * 3


def test_linear_decay_then_constant():
    s = S.LinearDecay(1.0, 0.1, T=10)
    assert s(0) == 1.0
    assert s(5) == pytest.approx(0.55)
    assert s(10) == s(1000) == pytest.approx(0.1)
    vals = [s(t) for t in range(11)]
    assert all(a > b for a, b in zip(vals, vals[1:]))


def test_step_and_exponential():
    s = S.Step(1.0, step_size=3, gamma=0.5)
    assert [s(t) for t in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert S.Exponential(2.0, 0.9)(3) == pytest.approx(2 * 0.9 ** 3)


def test_cosine():
    s = S.Cosine(1.0, T=100, final_lr=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.55)
    assert s(100) == s(500) == pytest.approx(0.1)


def test_warmup_composes():
    s = S.Warmup(S.Cosine(1.0, T=10), warmup_steps=4)
    assert [s(t) for t in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert s(4) == pytest.approx(1.0)
    assert s(9) == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 10)))


def test_from_spec():
    assert isinstance(S.from_spec("constant", 0.1), S.Constant)
    s = S.from_spec("linear:final=1e-4,T=2000", 0.1)
    assert (s.lr, s.final_lr, s.T) == (0.1, 1e-4, 2000)
    w = S.from_spec("warmup=10+cosine:T=50", 0.2)
    assert isinstance(w, S.Warmup) and w.schedule.T == 50 and w(0) == pytest.approx(0.02)


@pytest.mark.parametrize("spec,match", [
    ("cosin", "unknown schedule 'cosin'; expected one of: constant, linear"),
    ("linear:T=10", "needs final"),
    ("step:step_size=abc", "not a valid int"),
    ("cosine:T=10,foo=1", "takes"),
])
def test_from_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        S.from_spec(spec, 0.1)


def test_bad_values():
    with pytest.raises(ValueError, match="lr must be a positive"):
        S.Constant(-1)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        S.LinearDecay(0.1, 0.01, T=0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        S.Constant(0.1)(-1)


def test_cli_schedule_t_counts_the_steps_after_the_warm_up():
    """--schedule warmup=N+cosine: the cosine starts after N steps, so its default T is the
    run's steps less N (it was the whole run: the run ended before reaching `final`);
    warmup=0 means no warm-up; an explicit T is kept."""
    from types import SimpleNamespace
    from fastmlp.cli.common import schedule_spec
    args = SimpleNamespace(epochs=2, batch_size=10, lr=0.1)     # 100 rows: 20 steps
    assert schedule_spec("cosine", 100, args) == "cosine:T=20"
    assert schedule_spec("warmup=5+cosine:final=0.01", 100, args) == \
        "warmup=5+cosine:final=0.01,T=15"
    s = S.from_spec(schedule_spec("warmup=5+linear:final=0.01", 100, args), 0.1)
    assert s(4) == pytest.approx(0.1) and s(20) == pytest.approx(0.01)
    assert s(19) == pytest.approx(S.LinearDecay(0.1, 0.01, 15)(14))
    assert schedule_spec("warmup=5+cosine:T=7", 100, args) == "warmup=5+cosine:T=7"
    assert schedule_spec("warmup=50+cosine", 100, args) == "warmup=50+cosine:T=1"
    assert schedule_spec("warmup=0+cosine", 100, args) == "warmup=0+cosine:T=20"
    plain = S.from_spec("warmup=0+cosine:T=20", 0.1)
    assert isinstance(plain, S.Cosine) and plain(0) == 0.1     # no warm-up


# -- a schedule that does not fit in its run is said, in Python as on the command line ---------
@pytest.mark.parametrize("sched, total, words", [
    (S.Cosine(1.0, T=1000), 10, "T=1000 is longer than the 10 steps the run has"),
    (S.LinearDecay(1.0, 0.1, T=11), 10, "the lr ends at"),
    (S.Step(1.0, step_size=10, gamma=0.5), 10, "never steps down from 1"),
    (S.Warmup(S.Cosine(1.0, T=5), 10), 10, "warm-up of 10 steps is as long as the run"),
    (S.Warmup(S.Cosine(1.0, T=8), 3), 10, "T=8 is longer than the 7 steps the run has after"),
])
def test_length_problems_names_what_does_not_fit(sched, total, words):
    (text,) = S.length_problems(sched, total)
    assert words in text


@pytest.mark.parametrize("sched", [
    S.Cosine(1.0, T=10), S.LinearDecay(1.0, 0.1, T=10), S.Step(1.0, step_size=9, gamma=0.5),
    S.Warmup(S.Cosine(1.0, T=7), 3), S.Exponential(1.0, 0.9), S.Constant(1.0),
    lambda t: 1.0 / (t + 1),
])
def test_length_problems_none_for_a_schedule_that_fits(sched):
    assert S.length_problems(sched, 10) == []


def _fit_warnings(**kw):
    import warnings

    import numpy as np

    import fastmlp
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fastmlp.fit(fastmlp.MLP([3, 4, 1], seed=0), X, y, epochs=2, batch_size=50,
                    validation=None, progress=False, backend="numpy", **kw)
    return [str(w.message) for w in caught if issubclass(w.category, S.ScheduleWarning)]


def test_fit_warns_of_a_schedule_longer_than_the_run():
    # 100 rows, batch 50, 2 epochs: 4 steps; a cosine over 1000 steps ends near its base lr
    (text,) = _fit_warnings(lr=0.1, schedule="cosine:T=1000")
    assert text.startswith("schedule: T=1000 is longer than the 4 steps the run has")
    assert _fit_warnings(lr=0.1, schedule=S.Cosine(0.1, T=4)) == []
    assert _fit_warnings(lr=0.1) == []


def test_fit_stream_warns_of_a_schedule_longer_than_the_run(tmp_path):
    import warnings

    import numpy as np

    import fastmlp
    rng = np.random.default_rng(0)
    p = tmp_path / "cat.csv"
    with open(p, "w") as f:
        f.write("a,b,label\n")
        for a, b in rng.normal(size=(200, 2)):
            f.write(f"{a:.4f},{b:.4f},{int(a > 0)}\n")

    def said(spec):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fastmlp.fit_stream(fastmlp.MLP([2, 4, 1], seed=0), str(p), features=["a", "b"],
                               label="label", epochs=1, batch_size=50, lr=0.1, schedule=spec,
                               progress=False, backend="numpy", chunk_rows=100)
        return [str(w.message) for w in caught if issubclass(w.category, S.ScheduleWarning)]
    # 2 chunks of 100 rows, batch 50: 4 steps, at most 4 + 2 when chunks end mid-batch
    assert said("cosine:T=6") == []
    (text,) = said("cosine:T=7")
    assert "T=7 is longer than the 6 steps" in text


@pytest.mark.parametrize("batched", [True, False])
def test_cross_validation_warns_of_a_long_schedule(batched):
    # the batched path (one pass over every fold) said nothing
    import warnings

    import fastmlp
    X, y = fastmlp.make_photometric_catalog(600, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fastmlp.cross_validate(lambda: fastmlp.MLP([4, 8, 1], seed=0), X, y, k=3, epochs=2,
                               lr=0.01, schedule="cosine:T=100000", progress=False,
                               batched=batched)
    said = [str(w.message) for w in caught if issubclass(w.category, S.ScheduleWarning)]
    # pointing at the user's line, not at fastmlp's recipes
    assert {w.filename for w in caught if issubclass(w.category, S.ScheduleWarning)} \
        == {__file__}
    # 400 training rows per fold, batch 256: 2 steps an epoch, 4 in the run; the serial
    # path warns from each fold's fit (Python's default filter shows it once)
    assert said[:1] == ["schedule: T=100000 is longer than the 4 steps the run has: the lr "
                        "ends at 0.01, not at 0"]
    assert len(said) == (1 if batched else 3) and len(set(said)) == 1


def test_fit_batch_warns_each_distinct_schedule_problem_once():
    import warnings

    import numpy as np

    import fastmlp
    X, y = fastmlp.make_photometric_catalog(512, seed=0)
    batch = fastmlp.ModelBatch(fastmlp.MLP([4, 8, 1], seed=0), seeds=[1, 2, 3],
                               optimizer_kwargs={"lr": 0.01},
                               schedule=["cosine:T=10", "cosine:T=10", "cosine:T=4"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fastmlp.fit_batch(batch, X, y, epochs=2, batch_size=256, progress=False)
    said = [str(w.message) for w in caught if issubclass(w.category, S.ScheduleWarning)]
    assert len(said) == 1 and "T=10 is longer than the 4 steps" in said[0]
    assert np.isfinite(batch.model(2).params).all()


def test_a_bare_warmup_is_a_warmup_to_a_constant_lr():
    # "warmup=3" was refused: "unknown schedule 'warmup=3'" (it needed "warmup=3+constant")
    s = S.from_spec("warmup=3", 0.3)
    assert [round(s(t), 12) for t in range(5)] == [0.1, 0.2, 0.3, 0.3, 0.3]
    assert [s(t) for t in range(5)] == [S.from_spec("warmup=3+constant", 0.3)(t)
                                        for t in range(5)]
