"""fastmlp.plot: every figure renders to a valid PNG (Agg), and the plotted data are right."""

import os

import numpy as np

import fastmlp
import pytest

pytest.importorskip("matplotlib")

from fastmlp import MLP, fit, lr_sweep, cross_validate, plot  # noqa: E402
from fastmlp import metrics  # noqa: E402
from fastmlp.data import make_photometric_catalog  # noqa: E402


def png_ok(path, min_bytes=8_000):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert len(data) > min_bytes
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 300 < w < 5000 and 200 < h < 5000
    return w, h


@pytest.fixture(scope="module")
def trained():
    cat = make_photometric_catalog(3000, seed=3)
    mean, std = cat.X.mean(0), cat.X.std(0)
    X = ((cat.X - mean) / std).astype(np.float32)
    m = MLP([4, 16, 1], backend="numpy", seed=0)
    h = fit(m, X, cat.y, epochs=3, lr=1e-2, progress=False, validation=0.2)
    return cat, X, m, h


def test_loss_curves_plot_the_history(tmp_path, trained):
    cat, X, m, h = trained
    fig = plot.loss_curves(h, path=tmp_path / "loss.png")
    png_ok(tmp_path / "loss.png")
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    np.testing.assert_array_equal(lines["training loss (epoch mean)"].get_ydata(), h.loss)
    np.testing.assert_array_equal(lines["validation loss"].get_ydata(), h.val_loss)
    np.testing.assert_array_equal(lines["mini-batch loss"].get_ydata(), h.batch_loss)
    assert lines["training loss (epoch mean)"].get_xdata().tolist() == [1, 2, 3]
    assert fig.axes[0].get_xlabel() == "epoch"
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]        # no temporary file
    assert os.stat(tmp_path / "loss.png").st_mode & 0o044              # readable, not 0600


def test_lr_sweep_marks_best_and_diverged(tmp_path, trained):
    cat, X, m, h = trained
    res = lr_sweep(lambda: MLP([4, 8, 1], backend="numpy"), X, cat.y,
                   lrs=[1e-4, 1e-3, 1e-2, 1e2], iterations=40, batch_size=64)
    assert res.diverged[-1] and not res.diverged[:3].any()
    fig = plot.lr_sweep(res, path=tmp_path / "sweep.png")
    png_ok(tmp_path / "sweep.png")
    right = fig.axes[1]
    assert right.get_xscale() == "log"
    lines = {ln.get_label(): ln for ln in right.get_lines()}
    final = lines["final loss (mean of the last 4 iterations)"]   # 10 % of 40
    np.testing.assert_array_equal(final.get_xdata(), res.lrs[:3])
    np.testing.assert_array_equal(final.get_ydata(), res.final_loss[:3])
    # the diverged lr sits at the top edge in axes coordinates: no fake loss value
    crosses = lines["diverged (no final loss)"]
    assert crosses.get_xdata().tolist() == [1e2] and crosses.get_ydata().tolist() == [0.97]
    best = lines[f"chosen lr = {res.best_lr:.3g}"]
    assert best.get_xdata().tolist() == [res.best_lr]
    left = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert len(left) == 5                      # four curves and the divergence marker
    chosen = [ln for lab, ln in left.items() if "(chosen)" in lab][0]
    assert chosen.get_linewidth() == max(ln.get_linewidth() for ln in left.values())
    # the diverged curve stops where lr_sweep's rule says it diverged, marked there
    k = plot.divergence_index(res.losses[-1], 4.0)
    stopped = left["1e+02 diverged"]
    assert stopped.get_ls() == "--" and stopped.get_xdata().size == k + 1
    assert left["diverged here"].get_xdata().tolist() == [k + 1]
    # the y range follows the runs that did not diverge
    assert fig.axes[0].get_ylim()[1] < 2 * max(np.nanmax(c) for c in res.losses[:3])
    texts = [t.get_text() for t in right.texts]
    if res.best_index == 2:                    # the largest lr that did not diverge: inside
        assert not any("edge of the grid" in t for t in texts)
    res.best_index, res.best_lr = 0, 1e-4      # pretend the smallest lr won
    fig = plot.lr_sweep(res)
    assert any("edge of the grid" in t and "below 0.0001" in t for t in fig.axes[1].texts
               for t in [t.get_text()])


def test_compare_optimizers_same_start_same_batches(tmp_path, trained):
    cat, X, m, h = trained
    make = lambda: MLP([4, 8, 1], backend="numpy", seed=5)  # noqa: E731
    curves = fastmlp.compare_optimizers(make, X, cat.y, iterations=50, batch_size=32)
    assert list(curves) == ["sgd", "momentum", "adagrad", "rmsprop", "adam"]
    first = [c[0] for c in curves.values()]
    assert np.allclose(first, first[0])          # the same weights see the same first batch
    assert all(np.isfinite(c).all() and c[-10:].mean() < c[:10].mean()
               for c in curves.values())
    again = fastmlp.compare_optimizers(make, X, cat.y, iterations=50, batch_size=32,
                                    optimizers="adam")
    np.testing.assert_array_equal(again["adam"], curves["adam"])
    fig = plot.optimizer_comparison(curves, path=tmp_path / "opt.png")
    png_ok(tmp_path / "opt.png")
    assert fig.axes[0].get_yscale() == "log" and len(fig.axes[0].get_lines()) == 10
    with pytest.raises(ValueError, match="unknown optimizer"):
        fastmlp.compare_optimizers(make, X, cat.y, optimizers="lbfgs")


def test_roc_and_completeness_contamination(tmp_path, trained):
    cat, X, m, h = trained
    p = m.predict_proba(X)[:, 1]
    fig = plot.roc_curve(cat.y, p, positive=1, path=tmp_path / "roc.png", name="quasar")
    png_ok(tmp_path / "roc.png")
    roc = fig.axes[0].get_lines()[0]
    fpr, tpr = roc.get_xdata(), roc.get_ydata()
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.roc_auc(cat.y, p), abs=1e-9)
    assert f"AUC = {metrics.roc_auc(cat.y, p):.4f}" == roc.get_label()
    fig = plot.completeness_contamination(cat.y, p, positive=1, path=tmp_path / "cc.png")
    png_ok(tmp_path / "cc.png")
    curve = metrics.completeness_contamination_curve(cat.y, p, 1)
    ln = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(ln.get_xdata(), curve.completeness)
    np.testing.assert_array_equal(ln.get_ydata(), curve.contamination)
    comp, thr = metrics.completeness_at_contamination(cat.y, p, 1, 0.06)
    marks = [x for x in fig.axes[0].get_lines() if x.get_label().startswith("best cut")]
    assert (marks[0].get_xdata()[0] == comp) if np.isfinite(thr) else not marks


def test_color_color_and_training_report(tmp_path, trained):
    cat, X, m, h = trained
    pred = m.predict(X)
    fig = plot.color_color(cat.X[:, 0], cat.X[:, 1], pred, cat.class_names,
                           path=tmp_path / "cc.png", max_points=1000)
    png_ok(tmp_path / "cc.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "u-g" and ax.get_ylabel() == "g-r"
    pts = sum(c.get_offsets().shape[0] for c in ax.collections)
    assert pts == 1000
    labels = sorted(c.get_label().split(" ")[0] for c in ax.collections)
    assert set(labels) <= {"star", "quasar"}
    with pytest.raises(ValueError, match="same length"):
        plot.color_color([1, 2], [1], [0, 1])
    fig = plot.training_report(h, cat.y, m.predict_proba(X), 1, cat.class_names,
                               colors=cat.X[:, :2], path=tmp_path / "rep.png")
    png_ok(tmp_path / "rep.png", 30_000)
    assert len([a for a in fig.axes if a.get_visible()]) == 4


def test_cv_folds(tmp_path, trained):
    cat, X, m, h = trained
    res = cross_validate(lambda: MLP([4, 4, 1], backend="numpy"), X, cat.y, k=3, epochs=1)
    fig = plot.cv_folds(res, path=tmp_path / "cv.png")
    png_ok(tmp_path / "cv.png")
    pts = fig.axes[0].get_lines()[-1].get_ydata()
    np.testing.assert_allclose(sorted(pts), sorted(f["accuracy"] for f in res.folds))


def test_surfaces_use_fastmlp_optimizers(tmp_path):
    q = plot.run_on_surface("quadratic", steps=60)
    # every optimizer heads for the minimum at the origin from the same start
    for label, r in q.items():
        np.testing.assert_array_equal(r["path"][0], [-4.0, 1.6])
        assert r["cost"][-1] < 0.05 * r["cost"][0], label
    # plain SGD's first step is exactly -lr * gradient (analytic gradient of the quadratic)
    np.testing.assert_allclose(q["sgd"]["path"][1], [-4.0 + 0.09 * 4.0, 1.6 - 0.09 * 20 * 1.6])
    # Adagrad's rate lr / sqrt(sum g^2) falls further along the steep direction w2
    le = q["adagrad"]["lr_eff"]
    assert (le[:, 1] < le[:, 0]).all() and le[-1, 1] < 0.5 * le[-1, 0]
    g2 = np.array([[4.0, 20 * 1.6]])                   # the first gradient, analytically
    np.testing.assert_allclose(le[0], 1.5 / np.abs(g2[0]), rtol=1e-8)
    r = plot.run_on_surface("rosenbrock", optimizers="adam:0.1", steps=600)
    assert np.linalg.norm(r["adam"]["path"][-1] - [1, 1]) < 0.2
    fig = plot.cost_surface_paths("quadratic", path=tmp_path / "q.png")
    png_ok(tmp_path / "q.png")
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    np.testing.assert_array_equal(lines["adam (lr 0.3)"].get_xdata(), q["adam"]["path"][:, 0])
    fig = plot.optimizer_paths(path=tmp_path / "paths.png")
    png_ok(tmp_path / "paths.png", 50_000)
    assert len(fig.axes) == 4
    d = plot.run_on_surface("quadratic", optimizers="sgd:1.0", steps=500)["sgd"]
    assert d["diverged"] and np.isfinite(d["path"]).all()
    with pytest.raises(ValueError, match="surface must be one of"):
        plot.run_on_surface("himmelblau")


def test_save_is_atomic_and_checks_directory(tmp_path, trained, monkeypatch):
    cat, X, m, h = trained
    fig = plot.loss_curves(h)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot.save_figure(fig, tmp_path / "no" / "x.png")
    target = tmp_path / "x.png"
    plot.save_figure(fig, target)
    before = target.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(type(fig), "savefig", boom)
    with pytest.raises(OSError, match="disk full"):
        plot.save_figure(fig, target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.png"]
    monkeypatch.undo()
    plot.save_figure(plot.loss_curves(h), tmp_path / "x.pdf")
    assert (tmp_path / "x.pdf").read_bytes()[:4] == b"%PDF"


def test_optimizer_comparison_keeps_the_y_range_of_the_runs_that_did_not_diverge(tmp_path):
    """A run whose loss explodes to 1e37 (then NaN) used to set the log axis to 1e37; as in
    plot.lr_sweep, the range follows the other runs and the blown-up one is drawn dashed up
    to where it diverged, with a cross."""
    it = np.arange(100)
    curves = {"sgd": np.r_[0.7, 0.9, 40.0, 1e20, 1e37, np.full(95, np.nan)],
              "adam": 0.7 * np.exp(-it / 60), "momentum": 0.7 * np.exp(-it / 80) + 0.01}
    fig = plot.optimizer_comparison(curves, path=tmp_path / "o.png", lrs={"sgd": 200.0})
    png_ok(tmp_path / "o.png")
    lo, hi = fig.axes[0].get_ylim()
    assert 0.05 < lo < 0.2 and 0.7 < hi < 3
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "sgd (lr 200) - diverged" in labels and "diverged here" in labels
    sgd = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("sgd")][0]
    assert sgd.get_linestyle() == "--" and len(sgd.get_xdata()) == 3   # up to iteration 3


def test_optimizer_comparison_gives_every_run_its_own_colour(tmp_path):
    """An optimizer given twice ("adam(lr=0.001)", "adam(lr=0.01)") has no colour of its
    own: it took the palette's i-th, which could be another run's (adam(lr=0.001) was drawn
    in momentum's blue)."""
    it = np.arange(50)
    curves = {"adam(lr=0.001)": 0.7 * np.exp(-it / 90), "adam(lr=0.01)": 0.7 * np.exp(-it / 30),
              "sgd": 0.7 * np.exp(-it / 70), "momentum": 0.7 * np.exp(-it / 50)}
    fig = plot.optimizer_comparison(curves, path=tmp_path / "o.png")
    png_ok(tmp_path / "o.png")
    bold = {ln.get_label(): ln.get_color() for ln in fig.axes[0].get_lines()
            if not ln.get_label().startswith("_")}
    # (the repeated optimizer's lr written as the others': "adam (lr 0.001)")
    assert set(bold) == {"adam (lr 0.001)", "adam (lr 0.01)", "sgd", "momentum"}
    assert len(set(bold.values())) == len(curves)
    assert bold["sgd"] == plot.OPT_COLORS["sgd"] and bold["momentum"] == plot.OPT_COLORS[
        "momentum"]
