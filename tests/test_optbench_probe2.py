"""A second look at benchmarking optimizers with many models in one pass: ModelBatch's
per-model settings and their errors, the recipes' argument checks and what they print."""

import numpy as np
import pytest

import fastmlp
from fastmlp.training.batch import ModelBatch, check_batch_memory


def small_problem(n=300):
    X, y = fastmlp.make_photometric_catalog(n, seed=0)
    st = fastmlp.Standardizer().fit(X).as_tuple()
    return (lambda: fastmlp.MLP([4, 8, 1], seed=0).set_contract(standardization=st)), X, y


def test_a_bad_optimizer_among_k_names_its_model():
    # with a list of 3 optimizers / kwargs, "Adam: lr must be >= 0, got -1" did not say
    # which of the three it meant
    base = fastmlp.MLP([4, 8, 1], seed=0)
    with pytest.raises(ValueError, match=r"model 2 \(optimizer 'adam'.*lr must be >= 0"):
        ModelBatch(base, 3, optimizer=["sgd", "adam", "adam"],
                   optimizer_kwargs=[{"lr": 0.1}, {"lr": 1e-3}, {"lr": -1}])
    with pytest.raises(TypeError, match=r"model 1 \(optimizer 'sgd'.*no hyper-parameter "
                                        r"'betas'"):
        ModelBatch(base, 2, optimizer=["adam", "sgd"],
                   optimizer_kwargs=[{}, {"betas": (0.9, 0.99)}])


def test_non_finite_initial_weights_are_refused_not_called_a_divergence():
    # a NaN row trained as "model 1 diverged at step 1 ... try a smaller lr", keeping
    # "its last finite parameters", which it never had
    base = fastmlp.MLP([4, 8, 1], seed=0)
    params = np.stack([base.params, base.params])
    params[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"params must be finite.*\[1\]"):
        ModelBatch(base, params=params)


def test_memory_error_of_a_small_limit_says_its_sizes_in_readable_units():
    # "needs 0.0 MiB (...), above memory_limit 0.0 MiB": neither number was readable
    with pytest.raises(MemoryError) as err:
        check_batch_memory([4, 8, 1], 2, np.float32, memory_limit=10, n_rows=300)
    msg = str(err.value)
    assert "0.0 MiB" not in msg
    assert "above memory_limit 10 bytes" in msg and "KiB" in msg


def test_model_batch_repr_says_which_optimizers_race():
    base = fastmlp.MLP([4, 8, 1], seed=0)
    assert "optimizer=['sgd', 'nesterov', 'adamw']" in \
        repr(ModelBatch(base, 3, optimizer=["sgd", "nesterov", "adamw"]))
    assert "optimizer='adam'" in repr(ModelBatch(base, 4))


@pytest.mark.parametrize("per", [1.5, "2", True])
def test_models_per_pass_must_be_a_positive_integer_as_given(per):
    # int() made 1.5 one model per pass and "2" two, without a word
    make, X, y = small_problem()
    with pytest.raises(ValueError, match="models_per_pass must be a positive integer"):
        fastmlp.lr_sweep(make, X, y, lrs=[1e-3, 1e-2], iterations=5, models_per_pass=per)


def test_lrs_that_are_not_numbers_are_named():
    make, X, y = small_problem()
    with pytest.raises(ValueError, match="lrs must be a non-empty sequence of positive"):
        fastmlp.lr_sweep(make, X, y, lrs=["fast", "slow"], iterations=5)


@pytest.mark.parametrize("entry", [("x", "adam"), ("x", "adam", 0.01),
                                   ("x", "adam", {"lr": 0.01}, "extra")])
def test_an_optimizer_tuple_of_the_wrong_form_is_named(entry):
    # ("x", "adam") raised IndexError: tuple index out of range
    make, X, y = small_problem()
    with pytest.raises(ValueError, match=r"\(label, optimizer name, kwargs dict\)"):
        fastmlp.compare_optimizers(make, X, y, optimizers=[entry], iterations=5)


def test_sweep_progress_line_of_a_diverged_lr_has_no_final_loss(capsys):
    # the table said '-' for a diverged lr, the progress line above it 'final loss inf'
    make, X, y = small_problem()
    fastmlp.lr_sweep(make, X, y, lrs=[1e-3, 1e-2, 1e3], iterations=20,
                     progress=True)
    err = capsys.readouterr().err
    assert "inf" not in err
    assert "lr 1e+03: final loss -  (diverged)" in err


def test_sweep_plot_of_a_single_lr_draws_without_warnings():
    # one lr gave identical x limits: matplotlib warned and the CLI printed its warning
    pytest.importorskip("matplotlib")
    import warnings
    from fastmlp import plot
    make, X, y = small_problem()
    res = fastmlp.lr_sweep(make, X, y, lrs=[0.01], iterations=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot.lr_sweep(res)
    lo, hi = fig.axes[1].get_xlim()
    assert lo < 0.01 < hi and hi / lo <= 10 + 1e-9


def test_batch_history_records_each_models_learning_rates_as_fit_does():
    # comparing warm-up schedules in one batch: model_history(k).lr was always []
    from fastmlp.training.batch import fit_batch
    make, X, y = small_problem()
    base = make()
    scheds = ["warmup=3+cosine:T=10", None]
    batch = ModelBatch(base, 2, optimizer=["adamw", "nesterov"],
                       optimizer_kwargs=[{"lr": 1e-2}, {"lr": 0.05}], schedule=scheds)
    hist = fit_batch(batch, X, y, batch_size=64, epochs=3, seed=1)
    for k, sched in enumerate(scheds):
        m = base.copy()
        h = fastmlp.fit(m, X, y, optimizer=["adamw", "nesterov"][k], schedule=sched,
                        lr=[1e-2, 0.05][k], batch_size=64, epochs=3, seed=1,
                        validation=None, progress=False)
        assert len(h.lr) == 15
        assert hist.model_history(k).lr == h.lr


def test_cv_schedule_T_covers_every_folds_steps_and_is_said(capsys, monkeypatch):
    # 301 rows in 3 folds train on 200, 201 and 201 rows: 2, 3 and 3 batches of 100 per
    # epoch.  T was counted from 200 rows (T=4 for 2 epochs), so two folds ran their last
    # two steps at the cosine's lr 0; and the run's header did not say its schedule
    from fastmlp import cli
    from fastmlp.cli import recipes as cli_recipes
    seen = {}
    real = cli_recipes.cross_validate

    def spy(*a, **kw):
        seen["schedule"] = kw["schedule"]
        return real(*a, **kw)
    monkeypatch.setattr(cli_recipes, "cross_validate", spy)
    code = cli.main(["cv", "--n-samples", "301", "--k", "3", "--batch-size", "100",
                     "--epochs", "2", "--schedule", "cosine", "--hidden", "4", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert seen["schedule"] == "cosine:T=6"
    assert "schedule cosine:T=6" in out + err


def test_sweep_passes_are_sized_for_the_threads_the_batch_runs_with():
    # the passes were sized for one thread's buffers; ModelBatch then counted every
    # thread's and refused the pass: "train fewer models per pass", from the recipe whose
    # job that was
    from fastmlp.training.batch import batch_memory
    _, X, y = small_problem()
    sizes, lrs = [4, 256, 256, 1], np.logspace(-4, 0, 7)

    def need(k, threads):
        return batch_memory(sizes, k, np.float32, n_threads=threads, n_rows=X.shape[0])["total"]
    limit = max(need(7, 1), need(4, 2))     # 7 fit one thread's buffers, 4 fit two threads'
    assert limit < need(7, 2)
    make = lambda: fastmlp.MLP(sizes, seed=0)   # noqa: E731
    with fastmlp.backends.threads(2):
        limited = fastmlp.lr_sweep(make, X, y, lrs=lrs, iterations=10, memory_limit=limit)
        whole = fastmlp.lr_sweep(make, X, y, lrs=lrs, iterations=10)
    for a, b in zip(limited.losses, whole.losses):
        np.testing.assert_array_equal(a, b)


def test_a_limit_too_small_for_one_model_does_not_advise_fewer_models():
    make, X, y = small_problem()
    with pytest.raises(MemoryError, match="one model alone does not fit: raise memory_limit"):
        fastmlp.lr_sweep(make, X, y, lrs=[1e-3, 1e-2], iterations=5, memory_limit=1000)


def test_fit_batch_counts_each_models_standardised_copy_of_the_inputs():
    # with subsets and standardize, each model gets its own K x N x n_inputs copy of X:
    # uncounted, and allocated before the memory check, so a limit was no limit for it
    from fastmlp.training.batch import batch_memory, fit_batch
    X, y = fastmlp.make_photometric_catalog(20000, seed=0)
    base = fastmlp.MLP([4, 8, 1], seed=0)
    from fastmlp.training.recipes import kfold_indices
    folds = kfold_indices(y, 3)
    subsets = [np.setdiff1d(np.arange(len(y)), f) for f in folds]
    kw = dict(n_threads=1, n_rows=len(y), per_model_order=True)
    without = batch_memory([4, 8, 1], 3, np.float32, **kw)["total"]
    batch = ModelBatch(base, 3, memory_limit=without + 1000, n_threads=1)
    with pytest.raises(MemoryError, match=r"model_inputs 0\.9 MiB"):
        fit_batch(batch, X, y, subsets=subsets, standardize=True, epochs=1, n_threads=1)


def test_cv_too_large_for_one_batch_trains_the_folds_one_by_one(monkeypatch):
    # the batched path raised MemoryError where the serial one, with the same results,
    # needs a fraction of the memory
    from fastmlp.training import batch as batch_module
    X, y = fastmlp.make_photometric_catalog(3000, seed=0)
    make = lambda: fastmlp.MLP([4, 8, 1], seed=0)   # noqa: E731
    kw = dict(k=3, epochs=1, standardize=True, n_threads=1, backend="numpy")
    serial = fastmlp.cross_validate(make, X, y, batched=False, **kw)
    # the k models fit (ModelBatch's check) but not with their rows' weights and orders
    monkeypatch.setattr(batch_module, "DEFAULT_MEMORY_LIMIT", 60_000)
    assert fastmlp.cross_validate(make, X, y, **kw).folds == serial.folds


def test_cv_says_why_it_trains_the_folds_one_at_a_time(monkeypatch, capsys):
    # the fallback was silent (only the title's "(batched)" went missing): it costs time
    from fastmlp.training import batch as batch_module
    X, y = fastmlp.make_photometric_catalog(3000, seed=0)
    make = lambda: fastmlp.MLP([4, 8, 1], seed=0)   # noqa: E731
    monkeypatch.setattr(batch_module, "DEFAULT_MEMORY_LIMIT", 60_000)
    fastmlp.cross_validate(make, X, y, k=3, epochs=1, standardize=True, n_threads=1,
                           backend="numpy", progress="lines")
    err = capsys.readouterr().err
    assert "one fold at a time, one batched pass would need" in err
    assert "above the memory limit" in err


def test_batch_history_has_a_short_repr():
    # its repr printed every mini-batch loss of every model (a notebook's cell of numbers)
    from fastmlp.training.batch import fit_batch
    make, X, y = small_problem()
    batch = ModelBatch(make(), 3, optimizer_kwargs=[{"lr": lr} for lr in (1e-3, 1e-2, 0.1)])
    hist = fit_batch(batch, X, y, batch_size=16, epochs=4)
    text = repr(hist)
    assert len(text) < 200 and "\n" not in text
    assert text.startswith("BatchHistory(3 models, 4 epochs, last epoch's loss ")
    assert "0 diverged" in text and "loss 'bce'" in text


def test_comparison_plot_of_very_short_runs_shows_them_and_says_its_window():
    # one step: an empty axis from 0.96 to 1.04 under "running mean of 10"; five steps:
    # "running mean of 10" over curves averaged over 5
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    fig = plot.optimizer_comparison({"adam": np.array([0.6]), "sgd": np.array([0.7])})
    ax = fig.axes[0]
    drawn = [ln for ln in ax.lines if ln.get_label() in ("adam", "sgd")]
    assert len(drawn) == 2 and all(ln.get_marker() == "o" for ln in drawn)
    lo, hi = ax.get_xlim()
    assert lo <= 0.5 and hi >= 1.5
    assert ax.get_ylabel() == "loss per step"
    fig = plot.optimizer_comparison({"adam": np.linspace(0.7, 0.5, 5)})
    assert "running mean of 5 " in fig.axes[0].get_ylabel()


def test_a_bad_candidate_of_a_comparison_is_named_by_its_label_before_training():
    make, X, y = small_problem()
    with pytest.raises(TypeError, match=r"^optimizer 'heavy ball': SGD has no hyper-parameter "
                                        r"'betas'"):
        fastmlp.compare_optimizers(make, X, y, iterations=5, optimizers=[
            ("adam", "adam", {"lr": 1e-3}), ("heavy ball", "sgd", {"betas": (0.9, 0.9)})])
    # a sweep's candidates share the optimizer: said as fit says it, with no model number
    with pytest.raises(ValueError, match=r"^unknown optimizer 'adma'"):
        fastmlp.lr_sweep(make, X, y, lrs=[1e-3, 1e-2], optimizer="adma", iterations=5)


def test_comparison_legend_writes_every_lr_alike():
    # an optimizer given twice is labelled "sgd(lr=0.05)"; the others got " (lr 0.01)"
    from fastmlp import plot
    rng = np.random.default_rng(0)
    curves = {label: 1.0 / np.arange(1, 31) + 0.01 * rng.random(30)
              for label in ("sgd(lr=0.05)", "sgd(lr=0.1)", "momentum")}
    fig = plot.optimizer_comparison(curves, lrs={"momentum": 0.01})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["sgd (lr 0.05)", "sgd (lr 0.1)", "momentum (lr 0.01)"]


def test_sweep_figure_says_the_window_of_its_final_loss():
    # "mean of last 10 %" for a run of 5 iterations, whose final loss is its last one
    from fastmlp import plot
    X, y = fastmlp.make_photometric_catalog(400, seed=0)
    res = fastmlp.lr_sweep(lambda: fastmlp.MLP([4, 8, 1], seed=0), X, y, lrs=[1e-3, 1e-2],
                           iterations=5, progress=False)
    labels = [t.get_text() for t in plot.lr_sweep(res).axes[1].get_legend().get_texts()]
    assert "final loss (mean of the last 1 iteration)" in labels


def test_fit_ensemble_checks_memory_before_its_bootstrap_counts():
    # 64 members x 200,000 rows of float64 bootstrap counts (98 MiB) were built, then the
    # batch was refused for its 20 MiB limit
    import tracemalloc
    X, y = fastmlp.make_photometric_catalog(200_000, seed=0)
    tracemalloc.start()
    try:
        with pytest.raises(MemoryError, match="above memory_limit"):
            fastmlp.fit_ensemble(lambda: fastmlp.MLP([4, 8, 1], seed=0), X, y, n_members=64,
                                 epochs=1, memory_limit=20 * 2 ** 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2 ** 20
