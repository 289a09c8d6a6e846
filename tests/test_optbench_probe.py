"""What a person benchmarking optimizers, schedules, lr sweeps and cross-validation runs
into: many small runs side by side, their tables and their figures."""

import numpy as np
import pytest

import fastmlp
from fastmlp import cli


def small_problem(n=600):
    X, y = fastmlp.make_photometric_catalog(n, seed=0)
    st = fastmlp.Standardizer().fit(X).as_tuple()
    return (lambda: fastmlp.MLP([4, 8, 1], seed=0).set_contract(standardization=st)), X, y


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["train", "cv"])
def test_full_batch_with_a_schedule_trains(capsys, command):
    # gradient descent with a cosine schedule: "full" was divided into the row count
    # before the data were loaded (TypeError); T defaults to one step per epoch
    code, out, err = run(capsys, command, "--n-samples", 600, "--batch-size", "full",
                         "--schedule", "cosine", "--epochs", 3,
                         *(["--k", 3] if command == "cv" else []))
    assert code == 0, err
    assert "error" not in err
    if command == "train":      # the run states its schedule: one cosine step per epoch
        assert "schedule cosine:T=3;" in out + err


def test_sweep_table_marks_one_best_and_no_final_loss_for_a_diverged_lr():
    make, X, y = small_problem()
    res = fastmlp.lr_sweep(make, X, y, lrs=[1e-3, 1e-2, 1e-2, 1e3], iterations=20)
    lines = res.table().splitlines()[1:]
    assert res.diverged[-1] and not res.diverged[:-1].any()
    # the same lr twice: both lines were marked best, two answers to "which lr"
    assert [i for i, line in enumerate(lines) if "<- best" in line] == [res.best_index]
    # a diverged run has no final loss: '-' as the CLI prints it, not 'inf'
    assert lines[-1].split()[1] == "-" and "inf" not in res.table()


def test_sweep_plot_legend_leaves_the_diverged_crosses_visible():
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    from fastmlp.training.recipes import SweepResult
    lrs = np.logspace(-4, 1, 11)
    final = np.r_[0.37, 0.25, 0.16, 0.13, 0.117, 0.118, 0.124, [np.inf] * 4]
    div = ~np.isfinite(final)
    res = SweepResult(lrs, [np.linspace(0.7, f if np.isfinite(f) else 9, 50) for f in final],
                      final, div, 1e-2, 4)
    fig = plot.lr_sweep(res)
    fig.canvas.draw()
    ax = fig.axes[1]
    box = ax.get_legend().get_window_extent()
    crosses = [ln for ln in ax.lines if ln.get_label() == "diverged (no final loss)"][0]
    pts = crosses.get_transform().transform(np.column_stack(crosses.get_data()))
    assert len(pts) == 4
    # a cross of 10 points half-hidden counts as hidden: its centre 5 points clear of the box
    pad = 5 * fig.dpi / 72
    hidden = [(x, y) for x, y in pts if box.x0 - pad < x < box.x1 + pad
              and box.y0 - pad < y < box.y1 + pad]
    assert hidden == []


def test_cv_plot_says_n_a_and_keeps_a_constant_metric_readable():
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    from fastmlp.training.recipes import CVResult
    # a weak model that selects no quasar in any fold: completeness 0 everywhere and no
    # contamination (0 / 0), as `fastmlp cv` on 3000 rows for 2 epochs gives
    folds = [{"accuracy": 0.9, "completeness": 0.0, "contamination": float("nan")}] * 3
    mean = {"accuracy": 0.9, "completeness": 0.0, "contamination": float("nan")}
    std = {"accuracy": 0.0, "completeness": 0.0, "contamination": float("nan")}
    fig = plot.cv_folds(CVResult(folds, mean, std, [10, 10, 10]), positive_name="quasar")
    fig.canvas.draw()
    acc, comp, cont = fig.axes
    # the table's n/a, not "nan ± nan" over an empty panel
    assert cont.get_title().endswith("\nn/a")        # not "n/a ± n/a"
    assert any("n/a" in t.get_text() for t in cont.texts)
    # all zeros: a readable range around 0, not an axis of 1e-17 steps with an offset
    lo, hi = comp.get_ylim()
    assert lo < 0 < hi and hi - lo >= 0.05
    assert comp.yaxis.get_offset_text().get_text() == ""


def test_compare_and_cv_figures_say_what_was_run(capsys, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    titles = {}

    def keep(fn):
        def wrapped(*a, **kw):
            titles[fn.__name__] = kw.get("title")
            return fn(*a, **kw)
        return wrapped
    for name in ("optimizer_comparison", "cv_folds"):
        monkeypatch.setattr(plot, name, keep(getattr(plot, name)))
    code, out, err = run(capsys, "compare-optimizers", "--n-samples", 600, "--iterations", 20,
                         "--optimizers", "sgd,nesterov,adam", "--hidden", "8",
                         "--plot", tmp_path / "c.png")
    assert code == 0, err
    assert "20 batches of 64, hidden [8]" in titles["optimizer_comparison"]
    # the table's columns line up, however long an optimizer's settings
    rows = [ln for ln in (out + err).splitlines()
            if ln.strip().startswith(("sgd ", "nesterov ", "adam "))]
    assert len(rows) == 3 and len({ln.rindex("  ") for ln in rows}) == 1
    code, out, err = run(capsys, "cv", "--n-samples", 600, "--epochs", 2, "--k", 3,
                         "--optimizer", "rmsprop", "--lr", 0.01, "--hidden", "8",
                         "--quiet", "--plot", tmp_path / "cv.png")
    assert code == 0, err
    assert titles["cv_folds"] == ("Cross-validation: rmsprop lr 0.01, hidden [8], 2 epochs "
                                  "of batch 256")


@pytest.mark.parametrize("bad", ["0", "-1", "nan"])
def test_a_bad_lr_after_the_colon_names_its_optimizer(bad):
    from fastmlp.training.recipes import parse_optimizers
    # the dict form {"adam": 0} was refused by name; "sgd:0.1,adam:0" failed later with
    # "lr must be a positive number, got 0.0" (which of them?) or was taken as lr -1
    with pytest.raises(ValueError, match=f"lr of optimizer 'adam:{bad}' must be a positive"):
        parse_optimizers(f"sgd:0.1,adam:{bad}")


def test_schedule_spec_with_spaces_around_the_name():
    from fastmlp.schedules import from_spec
    # the keys were stripped, the name was not: "unknown schedule 'cosine '"
    s = from_spec("cosine : T=10", 0.1)
    assert (s.T, s.lr) == (10, 0.1)
    assert from_spec("warmup=5+ step : step_size=3", 0.1)(5 + 3) == pytest.approx(0.01)


def test_sweep_and_cv_results_have_a_short_repr():
    make, X, y = small_problem()
    res = fastmlp.lr_sweep(make, X, y, lrs=[1e-3, 1e-2, 1e3], iterations=30)
    text = repr(res)
    # not the 3 x 30 losses the dataclass repr printed: what was swept and what won
    assert len(text) < 200 and "\n" not in text
    assert "3 lrs from 0.001 to 1e+03" in text and "30 iterations" in text
    assert f"best_lr={res.best_lr:.3g}" in text and "1 diverged" in text
    cv = fastmlp.cross_validate(make, X, y, k=3, epochs=1, positive=1)
    text = repr(cv)
    assert len(text) < 300 and "3 folds of [200, 200, 200] rows" in text
    assert f"accuracy {cv.mean['accuracy']:.4g} +- " in text


def test_full_batch_comparison_plots_the_loss_itself(capsys, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    figs = []
    original = plot.optimizer_comparison
    monkeypatch.setattr(plot, "optimizer_comparison",
                        lambda *a, **kw: figs.append(original(*a, **kw)) or figs[-1])
    code, out, err = run(capsys, "compare-optimizers", "--n-samples", 600, "--iterations", 30,
                         "--batch-size", "full", "--optimizers", "sgd:0.5,adam:0.01",
                         "--hidden", "8", "--plot", tmp_path / "gd.png")
    assert code == 0, err
    ax = figs[0].axes[0]
    # gradient descent's loss has no noise: a 10-step running mean only lagged behind it
    # (bold from step 10, above the faint curve) under a 'mini-batch loss' label
    assert ax.get_ylabel() == "loss per step"
    curves = [ln for ln in ax.lines if ln.get_label() in ("sgd (lr 0.5)", "adam (lr 0.01)")]
    assert len(curves) == 2 and len(ax.lines) == 2
    assert all(ln.get_xdata()[0] == 1 and len(ln.get_xdata()) == 30 for ln in curves)


def test_comparison_where_every_run_diverged_shows_the_whole_run():
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    grow = np.r_[0.7, 50.0, [np.nan] * 38]           # 40 steps, diverged at step 2
    fig = plot.optimizer_comparison({"sgd": grow, "adam": grow * 1.1})
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xlim()[1] >= 40        # was 1.0 .. 2.0
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)     # iterations, not 1.2, 1.4, ...


def test_full_batch_runs_are_described_in_words(capsys, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    titles = []
    original = plot.lr_sweep
    monkeypatch.setattr(plot, "lr_sweep",
                        lambda *a, **kw: titles.append(kw["title"]) or original(*a, **kw))
    code, out, err = run(capsys, "sweep", "--n-samples", 400, "--batch-size", "full",
                         "--iterations", 10, "--lrs", "0.01,0.1", "--hidden", "8",
                         "--plot", tmp_path / "s.png")
    assert code == 0, err
    # was "10 iterations of batch full"
    assert "10 full-batch iterations" in out + err and "of batch full" not in out + err
    assert titles == ["lr sweep: adam, hidden [8], 10 full-batch iterations"]


def test_sweep_plot_orders_lrs_given_in_any_order():
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    from fastmlp.training.recipes import SweepResult
    lrs = np.array([0.1, 1e-4, 0.01, 1e-3])
    final = np.array([0.09, 0.84, 0.36, 0.74])
    res = SweepResult(lrs, [np.linspace(0.85, f, 40) for f in final], final,
                      np.zeros(4, bool), 0.1, 0)
    fig = plot.lr_sweep(res)
    curves, right = fig.axes[0], fig.axes[1]
    line = [ln for ln in right.lines if ln.get_label().startswith("final loss")][0]
    # the final-loss line zigzagged 0.1 -> 1e-4 -> 0.01 -> 1e-3 across the log axis
    assert line.get_xdata().tolist() == sorted(lrs)
    assert line.get_ydata().tolist() == [0.84, 0.74, 0.36, 0.09]
    # legend and colour scale by increasing lr
    labels = [t.get_text() for t in curves.get_legend().get_texts()]
    assert labels == ["0.0001", "0.001", "0.01", "0.1 (chosen)"]


def test_cv_table_says_n_a_as_the_cli_does():
    from fastmlp.training.recipes import CVResult
    folds = [{"accuracy": 0.9, "contamination": float("nan")},
             {"accuracy": 0.8, "contamination": 0.25}]
    mean = {"accuracy": 0.85, "contamination": float("nan")}
    std = {"accuracy": 0.05, "contamination": float("nan")}
    rows = CVResult(folds, mean, std, [5, 5]).table().splitlines()
    assert rows[1].split() == ["1", "0.90000", "n/a"]        # was 'nan'
    assert rows[2].split() == ["2", "0.80000", "0.25000"]
    # the contamination mean over the fold that has one, as `fastmlp cv` prints it
    assert rows[3].split() == ["mean", "0.85000", "0.25000"]
    assert rows[5] == "contamination: mean and std over 1 of 2 folds (n/a: the fold " \
        "selected nothing)"
    assert "nan" not in "\n".join(rows)
    assert len({len(r) for r in rows[:5]}) == 1               # the columns line up


@pytest.mark.parametrize("spec, said", [
    ("warmup=1000+cosine", "the warm-up of 1000 steps is as long as the run (4 steps)"),
    ("cosine:T=100000", "T=100000 is longer than the 4 steps the run has: the lr ends at"),
    ("warmup=1+linear:final=0,T=50", "T=50 is longer than the 3 steps the run has after the "
                                     "warm-up"),
    ("step:step_size=500", "step_size=500 is as long as the 4 steps the run has or longer")])
def test_a_schedule_longer_than_the_run_is_said(capsys, spec, said):
    # 600 rows: 480 train, 432 after validation, 2 batches of 256 per epoch, 2 epochs
    code, out, err = run(capsys, "train", "--n-samples", 600, "--epochs", 2, "--hidden", "8",
                         "--schedule", spec, "--quiet")
    assert code == 0, err
    assert f"warning: --schedule: {said}" in err
    code, out, err = run(capsys, "train", "--n-samples", 600, "--epochs", 2, "--hidden", "8",
                         "--schedule", "warmup=1+cosine", "--quiet")
    assert code == 0 and "--schedule" not in err     # T defaults to what is left: no warning


def test_schedule_T_counts_the_rows_fit_trains_on_after_the_own_validation_split(capsys):
    # --max-contamination makes train split its validation rows itself: 8000 train rows,
    # 7200 of them fitted, ceil(7200 / 256) = 29 steps per epoch; the 10 % was taken twice
    # (cosine:T=52, the last 6 steps at lr 0)
    code, out, err = run(capsys, "train", "--n-samples", 10000, "--epochs", 2, "--hidden", "8",
                         "--schedule", "cosine", "--lr", 0.03, "--max-contamination", 0.5)
    assert code == 0, err
    assert "7200 train, 800 validation" in out and "schedule cosine:T=58;" in out


@pytest.mark.parametrize("how", ["batched", "serial", "dask"])
def test_sweep_refuses_an_lr_in_optimizer_kwargs(how):
    make, X, y = small_problem()
    if how == "dask":
        pytest.importorskip("distributed")
        from fastmlp.distributed.dask import dask_lr_sweep as sweep
        kw = {"client": "local"}     # refused before any cluster starts
    else:
        sweep, kw = fastmlp.lr_sweep, {"batched": how == "batched"}
    # it was dropped without a word: every candidate ran at its lr from lrs
    with pytest.raises(ValueError, match=r"optimizer_kwargs must not hold lr \(got lr=5.0\)"):
        sweep(make, X, y, lrs=[1e-3, 1e-2], iterations=5,
              optimizer_kwargs={"lr": 5.0, "betas": (0.9, 0.99)}, **kw)


def test_diverged_cross_is_the_last_legend_entry():
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    from fastmlp.training.recipes import SweepResult
    lrs = np.array([1e-3, 1.0, 10.0])
    blow = np.r_[0.7, 9.0, [np.nan] * 8]
    res = SweepResult(lrs, [np.linspace(0.7, 0.3, 10), blow, blow], np.r_[0.3, np.inf, np.inf],
                      np.array([False, True, True]), 1e-3, 0)
    labels = [t.get_text() for t in plot.lr_sweep(res).axes[0].get_legend().get_texts()]
    # was "0.001 (chosen)", "1 diverged", "diverged here", "10 diverged"
    assert labels == ["0.001 (chosen)", "1 diverged", "10 diverged", "diverged here"]
    fig = plot.optimizer_comparison({"sgd": blow, "adam": blow * 1.1, "adagrad": blow[:2]})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[-1] == "diverged here" and labels.count("diverged here") == 1


def test_stream_schedule_is_not_said_longer_than_the_run_it_fits(capsys, tmp_path):
    # --stream's batches never span two chunks: 1000 rows in chunks of 300 train
    # 2 + 2 + 2 + 1 = 7 batches of up to 256 per epoch, not ceil(1000 / 256) = 4, so a
    # cosine of T=7 fits the run (it was said to be longer than "the 4 steps the run has")
    rng = np.random.default_rng(0)
    mags = rng.normal(20, 1, size=(1000, 5))
    p = tmp_path / "cat.csv"
    with open(p, "w") as f:
        f.write("u,g,r,i,z,class\n")
        for row, c in zip(mags, rng.integers(0, 2, 1000)):
            f.write(",".join(f"{v:.4f}" for v in row) + f",{'QSO' if c else 'STAR'}\n")
    argv = ("train", "--catalog", p, "--features", "colors:ugriz", "--label", "class",
            "--stream", "--chunk-rows", 300, "--epochs", 1, "--hidden", 8, "--quiet")
    code, out, err = run(capsys, *argv, "--schedule", "cosine:T=7")
    assert code == 0, err
    assert "--schedule" not in err
    code, out, err = run(capsys, *argv, "--schedule", "cosine:T=9")     # beyond even that
    assert code == 0 and "warning: --schedule: T=9 is longer than" in err


@pytest.mark.parametrize("command", [("train",), ("cv", "--k", 3, "--serial")])
def test_the_cli_says_a_long_schedule_once_not_again_as_fit_warnings(capsys, command):
    # fit warns of a schedule longer than its run (ScheduleWarning); the CLI has said it as
    # a --schedule line already, so fit's (one per fold in cv) would repeat it
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run(capsys, *command, "--n-samples", 600, "--epochs", 2,
                             "--hidden", "8", "--schedule", "cosine:T=100000", "--quiet")
    assert code == 0, err
    assert (out + err).count("T=100000 is longer than") == 1
    assert not [w for w in caught if issubclass(w.category, fastmlp.schedules.ScheduleWarning)]


def _two_feature_csv(path, labels):
    """A catalog of two normal features a, b and the label column cls."""
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        f.write("a,b,cls\n")
        for (a, b), label in zip(rng.normal(size=(len(labels), 2)), labels):
            f.write(f"{a:.3f},{b:.3f},{label}\n")
    return path


def test_cv_names_a_class_too_small_for_k_folds(capsys, tmp_path):
    # cross_validate said "class 0 has 3 samples" of a class the catalog calls QSO
    p = _two_feature_csv(tmp_path / "few.csv", ["QSO"] * 3 + ["STAR"] * 97)
    code, out, err = run(capsys, "cv", "--catalog", p, "--label", "cls", "--positive", "QSO",
                         "--k", 5)
    assert code != 0
    assert "class QSO has 3 rows, fewer than --k 5 folds" in err


def test_cv_runs_on_integer_labels_with_a_gap(capsys, tmp_path):
    # labels 0, 1, 3 name a class "2" with no rows: the fold-count check refused it as
    # "class 2 has 0 rows ... use a smaller --k", which no --k fixes (the review)
    p = _two_feature_csv(tmp_path / "gap.csv", [0, 1, 3] * 100)
    code, out, err = run(capsys, "cv", "--catalog", p, "--label", "cls", "--k", 3,
                         "--epochs", 1, "--hidden", 4)
    assert code == 0, err
    assert "mean +- std" in out
