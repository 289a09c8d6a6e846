"""The plots of issue 17: each draws the numbers of fastmlp.metrics, and the choices that make
them readable (log axes, titles naming the rows, fold labels) are taken when they should be."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fastmlp import metrics as M, plot  # noqa: E402
from fastmlp.training.recipes import CVResult  # noqa: E402
from fastmlp.training import History  # noqa: E402

from test_plot import png_ok  # noqa: E402


def _scores(n, seed, sep):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    return y, 1 / (1 + np.exp(-(rng.normal(size=n) + sep * (2 * y - 1))))


def test_binned_completeness_plot_draws_the_rates_and_counts(tmp_path):
    rng = np.random.default_rng(10)            # not _scores' seed: r independent of y
    y, p = _scores(3000, 0, 1.5)
    r = rng.uniform(16, 22, y.size)
    r[:5] = np.nan
    pred = (p >= 0.5).astype(int)
    edges = [16, 18, 20, 22]
    fig = plot.binned_completeness(y, pred, 1, r, edges, column="r", name="QSO",
                                   path=tmp_path / "b.png")
    png_ok(tmp_path / "b.png")
    b = M.binned_completeness(y, pred, 1, r, edges)
    top, bottom = fig.axes[0], fig.axes[1]
    comp, pur = top.containers[0], top.containers[1]
    np.testing.assert_allclose(comp[0].get_ydata(), b.completeness)
    np.testing.assert_allclose(pur[0].get_ydata(), b.purity)
    # the vertical error bars span the Wilson interval
    seg = comp.lines[2][1].get_segments()                       # yerr segments
    np.testing.assert_allclose([s[0][1] for s in seg], b.completeness_lo)
    np.testing.assert_allclose([s[1][1] for s in seg], b.completeness_hi)
    assert [t.get_text() for t in bottom.texts[:3]] == [
        f"{t}/{s}" for t, s in zip(b.n_true, b.n_selected)]
    assert "5 rows outside the bins" in bottom.texts[-1].get_text()
    assert bottom.get_yscale() == "log" and bottom.get_xlabel() == "r"
    assert "QSO per r bin" in top.get_title()


def test_binned_completeness_plot_skips_empty_bins():
    y = np.array([1, 1, 0, 0])
    pred = np.array([1, 0, 0, 0])
    fig = plot.binned_completeness(y, pred, 1, [16.5, 16.6, 19.5, 19.6], [16, 18, 20])
    comp, pur = fig.axes[0].containers[0], fig.axes[0].containers[1]
    assert comp[0].get_xdata().size == 1      # the second bin holds no quasar: no point
    assert pur[0].get_xdata().size == 1      # and selects nothing: no purity point


def test_reliability_diagram_points_are_the_reliability_curve(tmp_path):
    y, p = _scores(4000, 1, 1.0)
    sharp = 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))          # over-confident version
    fig = plot.reliability_diagram(y, sharp, n_bins=10, name="quasar", calibrated=p,
                                   path=tmp_path / "rel.png")
    png_ok(tmp_path / "rel.png")
    c = M.reliability_curve(y, sharp, n_bins=10)
    ok = c.count > 0
    top = fig.axes[0]
    pts = top.containers[0][0]
    np.testing.assert_allclose(pts.get_xdata(), c.mean_predicted[ok])
    np.testing.assert_allclose(pts.get_ydata(), c.observed[ok])
    labels = [t.get_text() for t in top.get_legend().get_texts()]
    ece = M.expected_calibration_error(y, sharp)
    assert f"model: ECE {ece:.4f}, Brier {M.brier_score(y, sharp):.4f}" in labels
    assert any(t.startswith("after temperature scaling: ECE") for t in labels)
    bars = [r.get_height() for r in fig.axes[1].patches[:ok.sum()]]    # only non-empty bins
    np.testing.assert_array_equal(bars, c.count[ok])
    assert "P(quasar)" in fig.axes[1].get_xlabel()


def test_reliability_diagram_multiclass_top_label():
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.ones(3), 500)
    y = rng.integers(0, 3, 500)
    fig = plot.reliability_diagram(y, P, n_bins=5)
    assert "top-class probability" in fig.axes[1].get_xlabel()


def test_photoz_plot(tmp_path):
    rng = np.random.default_rng(3)
    zs = rng.uniform(0.1, 3, 2000)
    zp = zs + 0.05 * (1 + zs) * rng.normal(size=zs.size)
    zp[:100] = rng.uniform(0, 3, 100)                           # catastrophic outliers
    fig = plot.photoz(zs, zp, path=tmp_path / "pz.png")
    png_ok(tmp_path / "pz.png")
    ax = fig.axes[0]
    m = M.photoz_metrics(zs, zp)
    box = ax.texts[0].get_text()
    assert f"σ_NMAD = {m.sigma_nmad:.4f}" in box and f"({m.n_outliers})" in box
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    one = lines["z_phot = z_spec"]
    np.testing.assert_allclose(one.get_ydata(), one.get_xdata())
    cone = lines["outlier cones |dz|/(1+z) = 0.15"]
    x = cone.get_xdata()
    np.testing.assert_allclose(cone.get_ydata(), x + 0.15 * (1 + x))
    # the hexbin holds every object inside the axes, and the box counts the others
    import re
    off = re.search(r"(\d+) objects? off the axes", box)
    n_off = int(off.group(1)) if off else 0
    assert 0 < n_off < 0.02 * zs.size                          # the 99 % range leaves a few
    assert ax.collections[0].get_array().sum() + n_off == zs.size
    assert ax.get_xlabel().startswith("spectroscopic")


def test_roc_log_axis_only_above_auc_099():
    y, good = _scores(3000, 4, 3.0)
    y2, weak = _scores(3000, 4, 0.7)
    assert M.roc_auc(y, good) > 0.99 and M.roc_auc(y2, weak) < 0.99
    assert plot.roc_curve(y, good).axes[0].get_xscale() == "log"
    assert plot.roc_curve(y2, weak).axes[0].get_xscale() == "linear"
    assert plot.roc_curve(y, good, log_fpr=False).axes[0].get_xscale() == "linear"
    ax = plot.roc_curve(y, good).axes[0]
    n_neg = int((y == 0).sum())
    assert ax.get_xlim()[0] == pytest.approx(1 / n_neg / 1.5)     # one false positive shows


def _history(losses, val=None):
    h = History()
    h.loss = list(losses)
    h.val_loss = list(val or [])
    h.batch_loss = list(np.repeat(losses, 5))
    h.loss_name = "mse"
    return h


def test_loss_curves_log_from_two_decades():
    ax = plot.loss_curves(_history([10.0, 1.0, 0.09])).axes[0]
    assert ax.get_yscale() == "log"
    # read as numbers, not 10^-1
    assert ax.yaxis.get_major_formatter()(0.1, 0) == "0.1"
    assert ax.yaxis.get_minor_formatter()(0.3, 0) == ""        # three decades: majors only
    assert plot.loss_curves(_history([10.0, 1.0, 0.11])).axes[0].get_yscale() == "linear"
    # a spike of one mini-batch does not set the linear range
    h = _history([1.0, 0.6, 0.5])
    h.batch_loss[7] = 50.0
    assert plot.loss_curves(h).axes[0].get_ylim()[1] == pytest.approx(1.1)


def test_color_color_title_names_the_rows():
    x = np.arange(10.0)
    ax = plot.color_color(x, x, np.arange(10) % 2, ["star", "quasar"],
                          subset="training set").axes[0]
    assert ax.get_title().startswith("training set: u-g vs g-r, coloured by predicted class")
    hist = _history([0.7, 0.5])
    y, p = _scores(400, 5, 1.0)
    P = np.stack([1 - p, p], 1)
    fig = plot.training_report(hist, y, P, 1, ["star", "quasar"], colors=np.c_[p, p])
    titles = [a.get_title() for a in fig.axes]
    assert any(t.startswith("test set: u-g vs g-r") for t in titles)
    assert "ROC curve: quasar (test set)" in titles


def test_training_report_with_a_stored_cut():
    y, p = _scores(2000, 6, 1.5)
    P = np.stack([1 - p, p], 1)
    cut = M.threshold_at_contamination(y[:1000], p[:1000], 1, 0.1)   # chosen on "validation"
    fig = plot.training_report(_history([0.7, 0.5]), y[1000:], P[1000:], 1, ["star", "quasar"],
                               colors=np.c_[p, p][1000:], cut=cut.threshold)
    cc = [a for a in fig.axes if a.get_title().startswith("Completeness vs")][0]
    mark = [ln for ln in cc.get_lines() if ln.get_label().startswith("cut P >=")][0]
    sel = (p[1000:] >= cut.threshold).astype(int)
    assert mark.get_xdata()[0] == pytest.approx(M.completeness(y[1000:], sel, 1))
    assert mark.get_ydata()[0] == pytest.approx(M.contamination(y[1000:], sel, 1))
    colours = [a for a in fig.axes if "coloured by" in a.get_title()][0]
    n_quasar = sum(c.get_offsets().shape[0] for c in colours.collections
                   if c.get_label().startswith("quasar"))
    assert n_quasar == sel.sum()


def test_cv_folds_labels_folds_and_class():
    folds = [{"accuracy": a, "completeness": c} for a, c in
             [(0.90, 0.8), (0.92, 0.85), (0.91, 0.7)]]
    mean = {k: float(np.mean([f[k] for f in folds])) for k in folds[0]}
    std = {k: float(np.std([f[k] for f in folds])) for k in folds[0]}
    fig = plot.cv_folds(CVResult(folds, mean, std, [10, 10, 10]), positive_name="quasar")
    acc, comp = fig.axes
    pts = [ln for ln in comp.get_lines() if ln.get_label() == "fold"][0]
    assert pts.get_xdata().tolist() == [1, 2, 3]
    assert pts.get_ydata().tolist() == [0.8, 0.85, 0.7]
    assert [t.get_text() for t in comp.get_xticklabels()] == ["1", "2", "3"]
    assert comp.get_xlabel() == "fold" and comp.get_title().startswith("completeness of quasar")
    assert acc.get_title().startswith("accuracy\n")


def test_regression_report_figure():
    rng = np.random.default_rng(7)
    zs = rng.uniform(0.1, 3, 500)
    zp = zs + 0.1 * rng.normal(size=500)
    hist = _history([1.0, 0.3, 0.2], [1.1, 0.4, 0.3])
    fig = plot.regression_report(hist, zs, zp, redshift=True, title="photo-z")
    titles = [a.get_title() for a in fig.axes]
    assert titles[:2] == ["Training and validation loss", "Photometric redshifts (n = 500)"]
    fig = plot.regression_report(hist, zs, zp, name="redshift")
    ax = fig.axes[1]
    assert ax.get_xlabel() == "true redshift" and ax.get_ylabel() == "predicted redshift"
    assert f"RMSE = {M.rmse(zs, zp):.4g}" in ax.texts[0].get_text()


def test_completeness_contamination_says_when_no_cut_qualifies():
    y, p = _scores(2000, 8, 0.3)                                 # a weak classifier
    assert not np.isfinite(M.completeness_at_contamination(y, p, 1, 0.01)[1])
    ax = plot.completeness_contamination(y, p, 1, max_contamination=0.01).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "no cut reaches contamination <= 0.01" in labels
    # the view reaches up to the contamination of 95 % completeness: the curve stays in view
    c = M.completeness_contamination_curve(y, p, 1)
    at95 = c.contamination[np.searchsorted(c.completeness, 0.95)]
    assert ax.get_ylim()[1] >= at95
