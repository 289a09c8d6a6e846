"""Bad arguments to the public API: an error naming the argument and what was expected,
raised before any training (never NumPy's or Python's unnamed error from deep inside).

One table row per (call, bad argument, message fragment); every row failed before its fix."""

import re

import numpy as np
import pytest

from fastmlp import MLP, fit
from fastmlp import metrics, optim
from fastmlp.cli.args import build_parser
from fastmlp.data.standardize import Standardizer
from fastmlp.data.synthetic import make_photometric_catalog
from fastmlp.features import FeatureSpec
from fastmlp.schedules import from_spec
from fastmlp.training.batch import Ensemble, ModelBatch, fit_batch, fit_ensemble
from fastmlp.training.recipes import compare_optimizers, cross_validate, lr_sweep

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))
Y = RNG.integers(0, 2, size=40)


def _table_with_columns(names):
    """A DataFrame whose column names may repeat."""
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame(np.zeros((4, len(names))))
    table.columns = names
    return table


def _plot():
    pytest.importorskip("matplotlib")
    import fastmlp.plot
    return fastmlp.plot


def _history():
    from fastmlp.training.loop import History
    return History(loss=[1.0, 0.5], loss_name="mse")


def make_model():
    return MLP([3, 4, 1], backend="numpy")


def batch(k=2, **kw):
    return ModelBatch(make_model(), k, **kw)


CASES = [
    # 1. seeds: np.random.default_rng(-1) says "expected non-negative integer", naming nothing
    ("fit_batch seed=-1", lambda: fit_batch(batch(), X, Y, seed=-1, epochs=1),
     ValueError, "seed must be a non-negative integer or None, got -1"),
    ("fit_batch seed=1.5", lambda: fit_batch(batch(), X, Y, seed=1.5, epochs=1),
     ValueError, "seed must be a non-negative integer or None, got 1.5"),
    ("fit_ensemble seed=-1", lambda: fit_ensemble(make_model, X, Y, n_members=2, seed=-1),
     ValueError, "seed must be a non-negative integer or None, got -1"),
    ("cross_validate seed=-1", lambda: cross_validate(make_model, X, Y, k=3, seed=-1),
     ValueError, "seed must be a non-negative integer or None, got -1"),
    ("compare_optimizers seed=-1",
     lambda: compare_optimizers(make_model, X, Y, iterations=2, seed=-1),
     ValueError, "seed must be a non-negative integer or None, got -1"),
    ("make_photometric_catalog seed=-1", lambda: make_photometric_catalog(10, seed=-1),
     ValueError, "seed must be a non-negative integer or None, got -1"),
    ("make_photometric_catalog seed=1.5", lambda: make_photometric_catalog(10, seed=1.5),
     ValueError, "seed must be a non-negative integer or None, got 1.5"),
    # 2. compare_optimizers: an empty list named models_per_pass, a dict's lrs were dropped
    ("compare_optimizers optimizers=[]",
     lambda: compare_optimizers(make_model, X, Y, optimizers=[], iterations=2),
     ValueError, r"optimizers must name at least one optimizer, got \[\]"),
    ("compare_optimizers optimizers={adam: -1}",
     lambda: compare_optimizers(make_model, X, Y, optimizers={"adam": -1}, iterations=2),
     ValueError, r"the lr of optimizers\['adam'\] must be a positive number, got -1"),
    # 3. fit_batch / ModelBatch: float subsets were truncated, 2-D ones flattened
    ("fit_batch float subsets",
     lambda: fit_batch(batch(), X, Y, subsets=[np.arange(20) + 0.5, np.arange(20)]),
     ValueError, r"subsets\[0\] must be a 1-D array of integer row indices .*got dtype "
                 r"float64 and shape \(20,\)"),
    ("fit_batch 2-D subsets",
     lambda: fit_batch(batch(), X, Y, subsets=[np.arange(20).reshape(4, 5), np.arange(20)]),
     ValueError, r"subsets\[0\] must be a 1-D array .*shape \(4, 5\)"),
    ("fit_batch nslices=0 (numpy)",
     lambda: fit_batch(batch(), X, Y, nslices=0, backend="numpy"),
     ValueError, "nslices must be a positive integer, got 0"),
    ("ModelBatch memory_limit='1GB'", lambda: batch(memory_limit="1GB"),
     ValueError, "memory_limit must be a positive number, got '1GB'"),
    ("ModelBatch memory_limit=-1", lambda: batch(memory_limit=-1),
     ValueError, "memory_limit must be a positive number, got -1"),
    ("ModelBatch params of the wrong width",
     lambda: ModelBatch(make_model(), params=np.zeros((2, 5))),
     ValueError, r"params must be a \(K, 21\) array.*got shape \(2, 5\)"),
    ("ModelBatch n_threads=0", lambda: batch(n_threads=0),
     ValueError, "n_threads must be a positive integer.*got 0"),
    # 4. ensembles, cross-validation and fit's keyword arguments
    ("Ensemble([])", lambda: Ensemble([]),
     ValueError, r"members must be a non-empty list of fastmlp.MLP, got \[\]"),
    ("fit_ensemble sample_weight of 1 row",
     lambda: fit_ensemble(make_model, X, Y, n_members=2, sample_weight=np.ones(1)),
     ValueError, r"sample_weight must have shape \(40,\) .*or \(2, 40\) .*got \(1,\)"),
    ("fit_ensemble sample_weight of n_members rows",
     lambda: fit_ensemble(make_model, X, Y, n_members=2, sample_weight=np.ones(2)),
     ValueError, r"sample_weight must have shape \(40,\) .*got \(2,\)"),
    ("fit_ensemble bootstrap=False sample_weight of 7 rows",   # it spoke of models
     lambda: fit_ensemble(make_model, X, Y, n_members=2, bootstrap=False,
                          sample_weight=np.ones(7)),
     ValueError, r"sample_weight must have shape \(40,\) .*one row of them per member\)"),
    ("fit_ensemble optimizer_kwargs='a'",
     lambda: fit_ensemble(make_model, X, Y, n_members=2, optimizer_kwargs="a"),
     TypeError, "optimizer_kwargs must be None or a dict of keyword arguments, got 'a'"),
    ("cross_validate executor=3", lambda: cross_validate(make_model, X, Y, k=3, executor=3),
     TypeError, r"executor must be None \(run here\) or an object with map\(fn, iterable\)"),
    ("cross_validate k='3'", lambda: cross_validate(make_model, X, Y, k="3"),
     ValueError, "k must be a positive integer, got '3'"),
    ("cross_validate optimizer_kwargs='a'",
     lambda: cross_validate(make_model, X, Y, k=3, optimizer_kwargs="a"),
     TypeError, "optimizer_kwargs must be None or a dict of keyword arguments, got 'a'"),
    ("fit optimizer_kwargs='a'", lambda: fit(make_model(), X, Y, optimizer_kwargs="a"),
     TypeError, "optimizer_kwargs must be None or a dict of keyword arguments, got 'a'"),
    ("lr_sweep executor=3", lambda: lr_sweep(make_model, X, Y, iterations=2, executor=3),
     TypeError, r"executor must be None \(run here\) or an object with map\(fn, iterable\)"),
    ("lr_sweep optimizer_kwargs='a'",
     lambda: lr_sweep(make_model, X, Y, iterations=2, optimizer_kwargs="a"),
     TypeError, "optimizer_kwargs must be None or a dict of keyword arguments, got 'a'"),
    ("lr_sweep batched='no'", lambda: lr_sweep(make_model, X, Y, iterations=2, batched="no"),
     ValueError, "batched must be True or False, got 'no'"),
    # a misspelt key ran silently with the default patience
    ("fit early_stopping={'patiance': 3}",
     lambda: fit(make_model(), X, Y, early_stopping={"patiance": 3}),
     ValueError, r"early_stopping has unknown key\(s\) \['patiance'\]; expected 'patience'"),
    ("fit sample_weight='a'", lambda: fit(make_model(), X, Y, sample_weight="a"),
     TypeError, "sample_weight must be None or an array of non-negative numbers"),
    ("fit_batch sample_weight='a'", lambda: fit_batch(batch(), X, Y, sample_weight="a"),
     TypeError, "sample_weight must be None or an array of non-negative numbers"),
    # 5. layer sizes: a bool is no width, 1e30 overflowed inside NumPy
    ("MLP([4, True, 1])", lambda: MLP([4, True, 1]),
     ValueError, r"layer_sizes must be a sequence of at least two positive integers"),
    ("MLP([4, 8, 1e30])", lambda: MLP([4, 8, 1e30]),
     ValueError, r"layer_sizes must be .*each at most 2147483647, got \[4, 8, 1e\+30\]"),
    ("MLP([4, inf, 1])", lambda: MLP([4, float("inf"), 1]),
     ValueError, r"layer_sizes must be .*got \[4, inf, 1\]"),
    ("MLP seed=-1", lambda: MLP([3, 4, 1], seed=-1),
     ValueError, "seed must be a non-negative integer or None, got -1"),
    # labels_of on 1-D probabilities: NumPy's AxisError named no argument
    ("labels_of 1-D", lambda: MLP([3, 4, 1], loss="bce").labels_of(np.full(5, 0.5)),
     ValueError, r"proba must be a 2-D array \(n_rows, 2\) .*got shape \(5,\)"),
    ("labels_of wrong width", lambda: MLP([3, 4, 3]).labels_of(np.full((5, 2), 0.5)),
     ValueError, r"proba must be a 2-D array \(n_rows, 3\) .*got shape \(5, 2\)"),
    # 6. feature specs, schedule specs and boolean flags ("no" was read as True)
    ("FeatureSpec(None)", lambda: FeatureSpec(None),
     ValueError, "features must be column names .*got None"),
    ("FeatureSpec.transform with a duplicated column",
     lambda: FeatureSpec(["a-b"]).transform(_table_with_columns(["a", "b", "b"])),
     ValueError, r"column name\(s\) \['b'\] occur more than once"),
    ("from_spec with a key given twice",
     lambda: from_spec("exponential:gamma=0.9,gamma=0.5", 0.1),
     ValueError, "schedule 'exponential': argument 'gamma' given more than once"),
    ("fit drop_invalid='no'", lambda: fit(make_model(), X, Y, drop_invalid="no"),
     ValueError, "drop_invalid must be True or False, got 'no'"),
    ("fit_batch standardize='no'", lambda: fit_batch(batch(), X, Y, standardize="no"),
     ValueError, "standardize must be True or False, got 'no'"),
    ("fit_ensemble bootstrap='no'",
     lambda: fit_ensemble(make_model, X, Y, n_members=2, bootstrap="no"),
     ValueError, "bootstrap must be True or False, got 'no'"),
    ("cross_validate stratified='no'",
     lambda: cross_validate(make_model, X, Y, k=3, stratified="no"),
     ValueError, "stratified must be True or False, got 'no'"),
    ("cross_validate batched='no'",
     lambda: cross_validate(make_model, X, Y, k=3, batched="no"),
     ValueError, "batched must be True or False, got 'no'"),
    ("compare_optimizers batched='no'",
     lambda: compare_optimizers(make_model, X, Y, iterations=2, batched="no"),
     ValueError, "batched must be True or False, got 'no'"),
    # optimizer flags follow the same rule: 1 and 0 were taken as on/off, while
    # fit(standardize=1) was refused
    ("Adam amsgrad=1", lambda: optim.Adam(np.ones(3), amsgrad=1),
     ValueError, "Adam: amsgrad must be True or False, got 1"),
    ("SGD nesterov=1", lambda: optim.SGD(np.ones(3), momentum=0.9, nesterov=1),
     ValueError, "SGD: nesterov must be True or False, got 1"),
    ("RMSprop centered=0", lambda: optim.RMSprop(np.ones(3), centered=0),
     ValueError, "RMSprop: centered must be True or False, got 0"),
    ("AdamW maximize=np.int64(1)", lambda: optim.AdamW(np.ones(3), maximize=np.int64(1)),
     ValueError, "AdamW: maximize must be True or False, got 1$"),
    ("make_optimizer('nesterov', maximize=0)",
     lambda: optim.make_optimizer("nesterov", np.ones(3), maximize=0),
     ValueError, "SGD: maximize must be True or False, got 0"),
    ("fit optimizer_kwargs={'amsgrad': 1}",
     lambda: fit(make_model(), X, Y, epochs=1, progress=False,
                 optimizer_kwargs={"amsgrad": 1}),
     ValueError, "Adam: amsgrad must be True or False, got 1"),
    # 7. plots: checked before a figure is drawn
    ("reliability_diagram n_bins=0",
     lambda: _plot().reliability_diagram(Y, np.full(40, 0.5), n_bins=0),
     ValueError, "n_bins must be a positive integer, got 0"),
    ("regression_report y_pred shorter than y_true",
     lambda: _plot().regression_report(_history(), X[:, 0], X[:30, 0]),
     ValueError, r"y_true has shape \(40,\) but y_pred has \(30,\)"),
    # on/off options: "no" was read as true
    ("loss_curves batches='no'", lambda: _plot().loss_curves(_history(), batches="no"),
     ValueError, "batches must be True or False, got 'no'"),
    ("plot.regression_report redshift=1",
     lambda: _plot().regression_report(_history(), X[:, 0], X[:, 0], redshift=1),
     ValueError, "redshift must be True or False, got 1"),
    ("metrics.regression_report redshift='no'",
     lambda: metrics.regression_report(X[:, 0], X[:, 0], redshift="no"),
     ValueError, "redshift must be True or False, got 'no'"),
    # a cut without the class it selects was left out of the figure without a word
    ("training_report cut without positive",
     lambda: _plot().training_report(_history(), Y, np.full((40, 2), 0.5), cut=0.5),
     ValueError, r"cut=0.5 is a threshold on P\(positive\): it needs proba .* and positive "
                 r".*; positive is None"),
    ("loss_curves(None)", lambda: _plot().loss_curves(None),
     TypeError, "history must be a fastmlp.History .*got None"),
    # 8. a validation pair's errors name X_val / y_val, not the training data's X / y
    ("fit validation y_val shorter than X_val",
     lambda: fit(make_model(), X, Y, validation=(X[:10], Y[:9])),
     ValueError, "X_val has 10 samples but y_val has 9"),
    ("fit validation X_val of 2 columns",
     lambda: fit(make_model(), X, Y, validation=(X[:10, :2], Y[:10])),
     ValueError, "X_val has 2 feature columns, the model expects 3"),
    ("fit validation y_val with a label 5",
     lambda: fit(make_model(), X, Y, validation=(X[:10], np.r_[Y[:9], 5])),
     ValueError, r"y_val has 1 label outside the classes 0..1"),
    ("fit validation X_val a table but the model reads arrays",
     lambda: fit(make_model(), X, Y, validation=(_table_with_columns(["a", "b", "c"]), Y[:4])),
     ValueError, "X_val is a table with named columns but the model has no features spec"),
    ("fit validation X_val beyond a float32 model's range",   # not 'NaN or inf': finite
     lambda: fit(make_model(), X, Y, validation=(np.r_[X[:9], [[1e39, 0, 0]]], Y[:10])),
     ValueError, r"X_val: 1 row overflows the model's float32 inputs once standardised"),
    ("fit_batch validation y_val shorter than X_val",
     lambda: fit_batch(batch(), X, Y, validation=(X[:10], Y[:9])),
     ValueError, "X_val has 10 samples but y_val has 9"),
    # 10. standardisation statistics that would be NaN
    ("Standardizer.fit with an all-NaN column",
     lambda: Standardizer().fit(np.c_[X[:, :2], np.full(40, np.nan)]),
     ValueError, r"X column\(s\) \[2\] hold NaN or inf values"),
    ("Standardizer.fit on 0 rows", lambda: Standardizer().fit(np.zeros((0, 3))),
     ValueError, "X has 0 rows: the mean and std need at least one"),
    # fit's sample_weight follows the metrics' rule, which counts the bad weights (it said
    # only "must be finite and non-negative")
    ("fit sample_weight with a negative weight",
     lambda: fit(make_model(), X, Y, epochs=1, progress=False,
                 sample_weight=np.r_[-1.0, np.ones(39)]),
     ValueError, r"sample_weight must be >= 0, got 1 negative weight \(smallest"),
    ("fit sample_weight with a NaN",
     lambda: fit(make_model(), X, Y, epochs=1, progress=False,
                 sample_weight=np.r_[np.nan, np.nan, np.ones(38)]),
     ValueError, "sample_weight must be finite, got 2 NaN or inf values"),
    # 11. metrics: a NaN label counted silently as a wrong answer
    ("accuracy with a NaN in y_true", lambda: metrics.accuracy(np.r_[np.nan, Y[1:]], Y),
     ValueError, "y_true contains 1 NaN or inf value; class labels must be finite"),
    ("accuracy with a NaN in y_pred", lambda: metrics.accuracy(Y, np.r_[Y[:-1], np.nan]),
     ValueError, "y_pred contains 1 NaN or inf value; class labels must be finite"),
    # bins beyond the rows (10**9 of them allocated gigabytes and was killed)
    ("reliability_curve n_bins=5000 for 40 rows",
     lambda: metrics.reliability_curve(Y, np.full(40, 0.5), n_bins=5000),
     ValueError, r"n_bins=5000 is more than the 40 rows binned \(and more than 1000\)"),
    ("expected_calibration_error n_bins=5000 for 40 rows",
     lambda: metrics.expected_calibration_error(Y, np.full(40, 0.5), n_bins=5000),
     ValueError, r"n_bins=5000 is more than the 40 rows binned"),
    ("binned_completeness bins=5000 for 40 values",
     lambda: metrics.binned_completeness(Y, Y, 1, X[:, 0], bins=5000),
     ValueError, r"bins=5000 is more than the 40 rows binned"),
    # a count of one takes the singular, here and in every message that counts
    ("reliability_curve n_bins=1001 for 1000 rows",
     lambda: metrics.reliability_curve(np.zeros(1000, int), np.full(1000, 0.5), n_bins=1001),
     ValueError, r"than the 1000 rows binned \(and more than 1000\): at least 1 bin would be "
                 r"empty"),
    ("roc_auc on a single positive row", lambda: metrics.roc_auc([1], [0.5]),
     ValueError, r"roc_auc needs both classes in y_true, got 1 positive and 0 negatives$"),
    ("log_loss of one label and two proba rows",
     lambda: metrics.log_loss([0], np.full((2, 2), 0.5)),
     ValueError, r"y_true has 1 sample but proba has 2; they must have the same length"),
    ("predict on one feature column", lambda: make_model().predict(X[:, :1]),
     ValueError, r"X has 1 feature column, the model expects 3$"),
    # a label of 10**6 (an object ID) asked for a confusion matrix of terabytes
    ("confusion_matrix with a label 10**6",
     lambda: metrics.confusion_matrix(np.r_[Y[:-1], 10 ** 6], Y),
     ValueError, r"labels go up to 1000000: .*at most 10000 classes"),
    ("confusion_matrix n_classes=10**6", lambda: metrics.confusion_matrix(Y, Y, 10 ** 6),
     ValueError, r"n_classes=1000000: .*at most 10000 classes"),
    # a probability cut outside [0, 1] selected nothing (2) or everything (-1)
    ("labels_at_cut threshold=2",
     lambda: metrics.labels_at_cut(np.full((40, 2), 0.5), 1, 2),
     ValueError, r"threshold must be a number in \[0, 1\], got 2"),
    ("labels_at_cut threshold=-1",
     lambda: metrics.labels_at_cut(np.full((40, 2), 0.5), 1, -1),
     ValueError, r"threshold must be a number in \[0, 1\], got -1"),
    ("classification_report cut=2",
     lambda: metrics.classification_report(Y, Y, np.full((40, 2), 0.5), positive=1, cut=2),
     ValueError, r"cut must be a number in \[0, 1\], got 2"),
    ("classification_report cut='a'",
     lambda: metrics.classification_report(Y, Y, np.full((40, 2), 0.5), positive=1,
                                           cut="a"),
     ValueError, r"cut must be a number in \[0, 1\], got 'a'"),
    # a cut without proba or positive was left out of the report without a word
    ("classification_report cut without proba",
     lambda: metrics.classification_report(Y, Y, positive=1, cut=0.5),
     ValueError, r"cut=0.5 is a threshold on P\(positive\): it needs proba \(the class "
                 r"probabilities\) and positive .*; proba is None"),
    ("classification_report cut without positive",
     lambda: metrics.classification_report(Y, Y, np.full((40, 2), 0.5), cut=0.5),
     ValueError, r"cut=0.5 is a threshold on P\(positive\): .*; positive is None"),
    ("classification_report cut with neither",
     lambda: metrics.classification_report(Y, Y, cut=0.5),
     ValueError, r"cut=0.5 .*; proba and positive are None"),
    # grid_edge read ['a', 'b'] with "could not convert string to float" and None as no grid
    ("grid_edge(['a', 'b'], 0.1)", lambda: metrics.grid_edge(["a", "b"], 0.1),
     ValueError, r"lrs must be an array of finite numbers \(the lr values tried\), got "
                 r"\['a', 'b'\]"),
    ("grid_edge(None, 0.1)", lambda: metrics.grid_edge(None, 0.1),
     ValueError, "lrs must be an array of finite numbers .*got None"),
    ("grid_edge with a NaN in lrs", lambda: metrics.grid_edge([1e-3, np.nan, 1e-1], 1e-3),
     ValueError, r"lrs must be an array of finite numbers .*got \[0.001, nan, 0.1\]"),
    ("edge_warning best_lr='a'", lambda: metrics.edge_warning([1e-3, 1e-1], "a"),
     ValueError, "best_lr must be a finite number \\(the chosen lr\\), got 'a'"),
    # NumPy's "could not convert string to float" and broadcast errors named nothing
    ("wilson_interval('a', 10)", lambda: metrics.wilson_interval("a", 10),
     TypeError, "k must be a count or an array of counts .*got 'a'"),
    ("wilson_interval of shapes (2,) and (3,)",
     lambda: metrics.wilson_interval([1, 2], [3, 4, 5]),
     ValueError, r"k and n must broadcast together, got shapes \(2,\) and \(3,\)"),
    ("photoz_metrics outlier_cut='a'",
     lambda: metrics.photoz_metrics(np.ones(4), np.ones(4), outlier_cut="a"),
     ValueError, "outlier_cut must be a positive number, got 'a'"),
    ("format_report(None)", lambda: metrics.format_report(None),
     TypeError, "rep must be the dict that classification_report returns, got None"),
    ("format_regression_report({})", lambda: metrics.format_regression_report({}),
     TypeError, r"rep must be the dict that regression_report returns, got a dict without"),
]


@pytest.mark.parametrize("call,exc,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_argument_is_named(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


CLI_CASES = [
    (["train", "--seed", "-1"], "argument --seed: expected a non-negative integer, got '-1'"),
]


@pytest.mark.parametrize("argv,message", CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_bad_cli_flag_is_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_compare_optimizers_takes_a_dict_of_lrs():
    """{name: lr} gives each optimizer its own lr (it used to run each at its default)."""
    by_dict = compare_optimizers(make_model, X, Y, optimizers={"adam": 1e-2, "sgd": 0.5},
                                 iterations=3)
    by_name = compare_optimizers(make_model, X, Y, optimizers="adam:0.01,sgd:0.5",
                                 iterations=3)
    assert list(by_dict) == ["adam", "sgd"]
    for label in by_name:
        np.testing.assert_array_equal(by_dict[label], by_name[label])
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        compare_optimizers(make_model, X, Y, optimizers={"adamax": 1e-3}, iterations=2)


def test_growing_schedules_saturate_instead_of_overflowing():
    """gamma > 1 for many steps: inf (which fit refuses as an invalid lr, by name), not
    Python's OverflowError from inside the schedule."""
    from fastmlp.schedules import Exponential, Step
    assert Exponential(0.1, 2.0)(10 ** 6) == np.inf
    assert Step(0.1, 1, 2.0)(10 ** 6) == np.inf
    assert Exponential(0.1, 0.5)(10 ** 6) == 0.0


@pytest.mark.parametrize("command,recipe,where,message", [
    ("cv", "cross_validate", "missing/plot.png", "directory .*missing does not exist"),
    ("cv", "cross_validate", ".", "is a directory, not a regular file"),
    ("sweep", "lr_sweep", ".", "is a directory, not a regular file"),
])
def test_cli_plot_path_is_checked_before_training(command, recipe, where, message, tmp_path,
                                                  monkeypatch, capsys):
    """cv and sweep refuse a --plot they cannot write before training, not after it."""
    from fastmlp import cli
    from fastmlp.cli import recipes as cli_recipes

    def trains(*a, **kw):
        raise AssertionError(f"{recipe} ran before --plot was checked")
    monkeypatch.setattr(cli_recipes, recipe, trains)
    code = cli.main([command, "--plot", str(tmp_path / where), "--n-samples", "300",
                     "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(f"--plot .*{message}", err), err
