"""What an astronomer's workflow found: a stored probability cut decides a row the same way
on every path (Python, the CLI, ONNX), however its float64 value rounds to float32; the cut
chosen on the validation set is not a validation row's own probability, so that another
summation order (another backend, another batch) does not flip that row; ``fastmlp predict
--label`` on a photo-z model prints the photo-z figures ``fastmlp train`` prints; and the
messages, tables and figures around them.  The parts that use the real SDSS files skip
where ../shared/data (or FASTMLP_DATA_DIR) is absent."""

import re
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import metrics
from fastmlp.cli import main

from conftest import data_file


def _binary_model(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4000, 4))
    model = fastmlp.MLP([4, 8, 1], seed=seed, class_names=["STAR", "QSO"], positive=1,
                        backend="numpy")
    return model, X


def _cut_just_above(p32):
    """A float64 cut above the float32 probability p32 that rounds to p32 in float32: the
    row is below the cut, and a comparison in float32 would select it."""
    t = float(p32) + float(np.spacing(np.float32(p32))) / 4
    assert np.float32(t) == p32 and float(p32) < t
    return t


def _middle_row(p):
    return int(np.argmin(np.abs(p.astype(np.float64) - 0.5)))


def test_cut_between_float32_values_decides_as_the_exact_comparison_in_python():
    model, X = _binary_model()
    p = model.predict_proba(X)[:, 1]
    r = _middle_row(p)
    model.threshold = _cut_just_above(p[r])
    lab = model.predict(X)
    assert lab[r] == 0                       # P(QSO) < cut: not selected
    np.testing.assert_array_equal(lab, (p.astype(np.float64) >= model.threshold).astype(int))


def test_cut_between_float32_values_decides_as_python_in_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model, X = _binary_model(1)
    X32 = X.astype(np.float32)
    path = tmp_path / "m.onnx"
    fastmlp.to_onnx(model, path)
    p = ort.InferenceSession(str(path)).run(["proba"], {"X": X32})[0][:, 1]
    r = _middle_row(p)
    model.threshold = _cut_just_above(p[r])   # on the graph's own probability of row r
    fastmlp.to_onnx(model, path)
    proba, label = ort.InferenceSession(str(path)).run(["proba", "label"], {"X": X32})
    assert label[r] == 0
    np.testing.assert_array_equal(label, proba[:, 1].astype(np.float64) >= model.threshold)


def test_cut_between_float32_values_decides_as_python_in_the_cli(tmp_path, capsys):
    model, X = _binary_model(2)
    names = ["u-g", "g-r", "r-i", "i-z"]
    model.set_contract(features=",".join(names))
    cat = np.zeros(len(X), dtype=[(n, "f8") for n in names])
    for j, n in enumerate(names):
        cat[n] = X[:, j]
    np.save(tmp_path / "cat.npy", cat)
    p = model.predict_proba(cat)[:, 1]
    r = _middle_row(p)
    model.threshold = _cut_just_above(p[r])
    fastmlp.save(model, tmp_path / "m.npz")
    assert main(["predict", "--model", str(tmp_path / "m.npz"), "--catalog",
                 str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"),
                 "--quiet", "--backend", "numpy"]) == 0
    capsys.readouterr()
    out = np.load(tmp_path / "out.npy")
    assert out["label"][r] == 0
    np.testing.assert_array_equal(out["label"], model.predict(cat))


def test_the_plotted_cut_selects_as_the_model_does():
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    score = rng.uniform(size=200).astype(np.float32)
    r = int(np.flatnonzero(y == 1)[0])
    cut = _cut_just_above(score[r])            # the positive row r is not selected
    fig = plot.completeness_contamination(y, score, 1, cut=cut)
    marker = [ln for ln in fig.axes[0].lines if ln.get_marker() == "o"][0]
    chosen = score.astype(np.float64) >= cut
    assert not chosen[r]
    assert marker.get_xdata()[0] == pytest.approx(chosen[y == 1].mean(), abs=0)


def test_threshold_with_margin_selects_the_same_rows_halfway_to_the_next_score():
    s = np.array([0.9, 0.8, 0.8, 0.5, 0.2], np.float32)
    t = metrics.threshold_with_margin(s, 1, float(s[1]))
    assert t == pytest.approx((float(s[1]) + float(s[3])) / 2, rel=1e-15)
    np.testing.assert_array_equal(s >= t, s >= s[1])
    two_columns = np.stack([1 - s, s], axis=1)          # (n, C): the positive's column
    assert metrics.threshold_with_margin(two_columns, 1, float(s[1])) == t
    assert metrics.threshold_with_margin(s, 1, float(s[4])) == float(s[4])   # none below
    with pytest.raises(ValueError, match="threshold"):
        metrics.threshold_with_margin(s, 1, np.nan)


@pytest.mark.parametrize("flag, target", [("--max-contamination", 0.05),
                                          ("--min-completeness", 0.9)])
def test_the_stored_cut_does_not_flip_its_rows_with_the_last_bits(capsys, tmp_path, flag,
                                                                   target):
    from fastmlp.data import make_photometric_catalog
    from fastmlp.training import stratified_split
    path = tmp_path / "m.npz"
    code = main(["train", "--n-samples", "6000", "--epochs", "4", "--lr", "0.01",
                 "--hidden", "16", "--quiet", "--backend", "numpy", flag, str(target),
                 "--out", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    model = fastmlp.load(path)
    X, y = make_photometric_catalog(6000, seed=0)
    rng = np.random.default_rng(0)                    # train's splits: test, then validation
    tr, _ = stratified_split(y, 0.2, rng)
    va = tr[stratified_split(y[tr], 0.1, rng)[1]]
    p = model.predict_proba(X[va])[:, 1].astype(np.float64)
    chosen = p >= model.threshold
    # another summation order moves a probability by a few ulps: no validation row flips
    for wobble in (1 - 1e-6, 1 + 1e-6):
        np.testing.assert_array_equal(p * wobble >= model.threshold, chosen)
    # the printed cut is the stored one, and still delivers the printed rates
    printed = re.search(r"P\(quasar\) >= ([\d.e-]+) gives completeness ([\d.]+)", out)
    assert float(printed.group(1)) == pytest.approx(model.threshold, rel=1e-3)
    assert float(printed.group(2)) == pytest.approx(chosen[y[va] == 1].mean(), abs=6e-5)


def _photoz_catalog(tmp_path, n=3000, seed=4):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.05, 3.0, n)
    mags = {b: 20 + rng.normal(scale=0.5, size=n) + k * 0.3 * z for k, b in
            enumerate("ugriz")}
    cat = np.zeros(n, dtype=[(b, "f8") for b in "ugriz"] + [("redshift", "f8")])
    for b in "ugriz":
        cat[b] = mags[b]
    cat["redshift"] = z
    np.save(tmp_path / "cat.npy", cat)
    model = fastmlp.MLP([5, 16, 1], features="colors:ugriz+r", loss="mse", seed=seed,
                        target_transform="log1p", backend="numpy")
    fastmlp.fit(model, cat, np.log1p(z), epochs=2, lr=3e-3, standardize=True,
                progress=False, backend="numpy")
    fastmlp.save(model, tmp_path / "pz.npz")
    return model, cat


def test_predict_label_prints_the_photoz_figures_train_prints(tmp_path, capsys):
    model, cat = _photoz_catalog(tmp_path)
    assert main(["predict", "--model", str(tmp_path / "pz.npz"), "--catalog",
                 str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"), "--quiet",
                 "--backend", "numpy", "--label", "redshift"]) == 0
    out = capsys.readouterr().out
    z_phot = np.load(tmp_path / "out.npy")["prediction"].astype(np.float64)
    want = metrics.photoz_metrics(cat["redshift"], z_phot).format()
    assert want in out


def test_a_row_whose_redshift_overflows_is_not_called_a_missing_feature(tmp_path, capsys):
    model, cat = _photoz_catalog(tmp_path, n=200)
    cat["u"][5] = 1e30                 # a survey's "no detection": a number, not missing
    np.save(tmp_path / "cat.npy", cat)
    with np.errstate(over="ignore"):
        assert not np.isfinite(model.predict(cat)[5])  # expm1 of a huge log(1 + z)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["predict", "--model", str(tmp_path / "pz.npz"), "--catalog",
                     str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"), "--quiet",
                     "--backend", "numpy", "--label", "redshift"]) == 0
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    out = capsys.readouterr().out
    assert "with missing features" not in out
    assert "1 row overflowed the float range (prediction inf or NaN, as model.predict " \
        "gives it; valid false)" in out
    assert "left out 1: 1 overflowed the float range (prediction inf or NaN)" in out


def test_bins_cover_the_bulk_and_print_as_intervals():
    rng = np.random.default_rng(5)
    ug = np.r_[rng.uniform(-0.5, 1.0, 2000), -7.2, -5.0]   # DR6's u-g: a few far outliers
    y = (ug < 0.5).astype(int)
    edges = metrics.bulk_bin_edges(ug, 8)
    assert edges.size == 9 and np.allclose(np.diff(edges), np.diff(edges)[0])
    # the quantiles as values of the data
    lo = np.quantile(ug, 0.005, method="lower")
    hi = np.quantile(ug, 0.995, method="higher")
    assert edges[0] == lo and edges[-1] == hi
    b = metrics.binned_completeness(y, y, 1, ug, bins=edges)
    inside = (ug >= edges[0]) & (ug <= edges[-1])
    assert b.n_true.sum() == np.sum(inside & (y == 1)) and b.n_outside == np.sum(~inside)
    text = b.table("u-g", "QSO").splitlines()
    assert text[2].split()[:2] == [f"[{edges[0]:.3g},", f"{edges[1]:.3g})"]
    assert text[9].split()[:2] == [f"[{edges[7]:.3g},", f"{edges[8]:.3g}]"]  # closed
    assert f"{b.n_outside} rows outside the bins" in text[-1] and b.n_outside >= 2
    with pytest.raises(ValueError, match="coverage"):
        metrics.bulk_bin_edges(ug, 8, coverage=0)
    same = np.full(50, 3.0)                    # no spread: the full range, as bins=8 gives
    np.testing.assert_array_equal(metrics.bulk_bin_edges(same, 4),
                                  metrics.binned_completeness(y[:50], y[:50], 1, same, 4).edges)


def test_a_catalog_without_missing_values_is_summarised_in_plain_words(tmp_path, capsys):
    _photoz_catalog(tmp_path, n=100)
    assert main(["predict", "--model", str(tmp_path / "pz.npz"), "--catalog",
                 str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"), "--quiet",
                 "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "every row has a prediction" in out and "0 rows got no" not in out


def test_reliability_counts_are_labelled_as_plain_numbers():
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    rng = np.random.default_rng(6)
    p = np.r_[rng.uniform(0, 0.1, 4000), rng.uniform(0.1, 1, 1500)]  # 150 .. 4000 per bin
    y = (rng.uniform(size=p.size) < p).astype(int)
    fig = plot.reliability_diagram(y, p, 1)
    fig.canvas.draw()
    counts_ax = fig.axes[1]
    texts = [t.get_text() for t in counts_ax.get_yticklabels(minor=False)
             + counts_ax.get_yticklabels(minor=True) if t.get_text()]
    assert texts and not [t for t in texts if "times" in t or "^" in t]
    assert "1000" in texts


def test_a_classifier_is_not_evaluated_against_a_redshift_column(tmp_path, capsys):
    rng = np.random.default_rng(7)
    n = 300
    cat = np.zeros(n, dtype=[(b, "f8") for b in "ugriz"] + [("redshift", "f8"),
                                                           ("label", "f8")])
    for b in "ugriz":
        cat[b] = 20 + rng.normal(size=n)
    cat["redshift"] = np.where(np.arange(n) < 20, 0.0, rng.uniform(0.01, 3, n))
    cat["label"] = rng.integers(0, 2, n)           # whole numbers in a float column: fine
    np.save(tmp_path / "cat.npy", cat)
    model = fastmlp.MLP([4, 8, 1], features="colors:ugriz", seed=0,
                        class_names=["STAR", "QSO"], positive=1)
    fastmlp.save(model, tmp_path / "m.npz")
    argv = ["predict", "--model", str(tmp_path / "m.npz"), "--catalog",
            str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"), "--quiet"]
    assert main(argv + ["--label", "redshift"]) != 0
    err = capsys.readouterr().err
    assert "--label redshift" in err and "fractions such as" in err
    assert not (tmp_path / "out.npy").exists()
    assert main(argv + ["--label", "label"]) == 0
    assert "metrics on the catalog's labelled rows (n=300)" in capsys.readouterr().out


def test_export_says_what_the_onnx_input_holds(tmp_path, capsys):
    pytest.importorskip("onnx")
    model = fastmlp.MLP([5, 8, 3], features="colors:ugriz+r", seed=0,
                        class_names=["GALAXY", "QSO", "STAR"])
    fastmlp.save(model, tmp_path / "m.npz")
    assert main(["export", "--model", str(tmp_path / "m.npz"), "--onnx",
                 str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    # the colours, not the five magnitudes a catalog has; only NaN is missing there
    assert "ONNX input X: (n, 5) float32, columns u-g, g-r, r-i, i-z, r;" in out
    assert "write NaN for a missing value (-9999 there is taken as a number)" in out


def test_photoz_figures_of_merit_do_not_cover_the_outlier_corners():
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    rng = np.random.default_rng(8)
    zs = rng.uniform(0, 3, 3000)
    zp = np.where(rng.uniform(size=zs.size) < 0.2, rng.uniform(0, 0.5, zs.size),
                  zs + rng.normal(scale=0.05, size=zs.size))   # high z_spec, low z_phot
    fig = plot.photoz(zs, zp)
    fig.canvas.draw()
    ax = fig.axes[0]
    stats = ax.texts[0]
    assert "σ_NMAD" in stats.get_text()
    box, inner = stats.get_window_extent(), ax.get_window_extent()
    assert box.y0 >= inner.y1 - 0.5                     # above the data, not on it
    assert ax.title.get_window_extent().y0 >= box.y1 - 0.5    # and under the title


def test_dr17_quasar_cut_holds_on_every_path(tmp_path, capsys):
    """The README's DR17 workflow: a QSO cut for 90 % completeness chosen on the validation
    split; no validation row sits on the cut, and fastmlp predict, model.predict and the
    ONNX graph select the same objects."""
    DR17 = data_file("sdss17_star_classification_first30k.csv")   # skips when absent
    pd = pytest.importorskip("pandas")
    from fastmlp.training import stratified_split
    path = tmp_path / "m.npz"
    assert main(["train", "--catalog", str(DR17), "--features", "colors:ugriz", "--label",
                 "class", "--positive", "QSO", "--epochs", "2", "--min-completeness", "0.9",
                 "--backend", "numpy", "--quiet", "--out", str(path)]) == 0
    capsys.readouterr()
    model = fastmlp.load(path)
    df = pd.read_csv(DR17)
    y = df["class"].map({"GALAXY": 0, "QSO": 1, "STAR": 2}).to_numpy()
    rng = np.random.default_rng(0)
    tr, _ = stratified_split(y, 0.2, rng)
    va = tr[stratified_split(y[tr], 0.1, rng)[1]]
    p = model.predict_proba(df.iloc[va])[:, 1].astype(np.float64)
    for wobble in (1 - 1e-6, 1 + 1e-6):
        np.testing.assert_array_equal(p * wobble >= model.threshold, p >= model.threshold)
    assert np.mean(p[y[va] == 1] >= model.threshold) >= 0.9
    labels = model.predict(df)
    assert main(["predict", "--model", str(path), "--catalog", str(DR17), "--out",
                 str(tmp_path / "out.npy"), "--quiet"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy")["label"], labels)
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    fastmlp.to_onnx(model, tmp_path / "m.onnx")
    X = np.column_stack([df[a] - df[b] for a, b in zip("ugri", "griz")]).astype(np.float32)
    onnx_labels = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["label"], {"X": X})[0]
    np.testing.assert_array_equal(onnx_labels, labels)


def test_capitalised_magnitude_columns_are_named_in_the_error(tmp_path, capsys):
    model = fastmlp.MLP([4, 8, 1], features="colors:ugriz", seed=0,
                        class_names=["STAR", "QSO"], positive=1)
    cat = {b.upper(): np.full(3, 20.0) for b in "ugriz"}           # a FITS file's spelling
    with pytest.raises(ValueError, match="case-sensitive and the table has 'U' for 'u', "
                                         "'G' for 'g', 'R' for 'r', 'I' for 'i', 'Z' for 'z'"):
        model.predict_proba(cat)
    cat["u"] = cat.pop("U")                 # only the others differ in case now
    with pytest.raises(ValueError) as err:
        model.predict_proba(cat)
    assert "'G' for 'g'" in str(err.value) and "for 'u'" not in str(err.value)
    with pytest.raises(ValueError) as err:            # nothing like it: no case hint
        model.predict_proba({"x": np.zeros(3)})
    assert "case-sensitive" not in str(err.value)


def test_colour_colour_legend_counts_the_catalog_not_the_sample(tmp_path, capsys,
                                                                monkeypatch):
    pytest.importorskip("matplotlib")
    from fastmlp import plot
    from fastmlp.cli import predict as cli_predict
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(2, 5000))
    lab = (x > 1).astype(int)
    ax = plot.color_color(x, y, lab, ["STAR", "QSO"], max_points=500).axes[0]
    legend = {t.get_text().split(" ")[0]: t.get_text() for t in ax.get_legend().get_texts()}
    n_qso = int(lab.sum())
    shown = int(np.sum([c.get_offsets().shape[0] for c in ax.collections
                        if c.get_label().startswith("QSO")]))
    assert legend["QSO"] == f"QSO ({n_qso:,}; {shown:,} shown)"
    # fastmlp predict draws a sample of the catalog: the legend still counts the catalog
    monkeypatch.setattr(cli_predict._PlotSample, "MAX", 300)
    names = ["u-g", "g-r", "r-i", "i-z"]
    cat = np.zeros(3000, dtype=[(n, "f8") for n in names])
    for n in names:
        cat[n] = rng.normal(size=3000)
    np.save(tmp_path / "cat.npy", cat)
    model = fastmlp.MLP([4, 8, 1], features=",".join(names), seed=0,
                        class_names=["STAR", "QSO"], positive=1)
    fastmlp.save(model, tmp_path / "m.npz")
    fig_path = tmp_path / "cc.png"
    calls = []
    real = plot.color_color
    monkeypatch.setattr(plot, "color_color", lambda *a, **k: calls.append(real(*a, **k)))
    assert main(["predict", "--model", str(tmp_path / "m.npz"), "--catalog",
                 str(tmp_path / "cat.npy"), "--out", str(tmp_path / "out.npy"), "--quiet",
                 "--plot", str(fig_path)]) == 0
    capsys.readouterr()
    counts = np.bincount(model.predict(cat), minlength=2)
    texts = [t.get_text() for t in calls[0].axes[0].get_legend().get_texts()]
    for name, k in (("STAR", 0), ("QSO", 1)):
        if counts[k]:
            assert any(t.startswith(f"{name} ({counts[k]:,}; ") for t in texts), texts


def test_loading_the_c_model_file_says_what_it_is(tmp_path):
    model = fastmlp.MLP([4, 8, 1], features="colors:ugriz", seed=0)
    fastmlp.io.write_c_model(model, tmp_path / "m.fmlp")
    with pytest.raises(ValueError, match=r"it looks like a C model file \(fastmlp export "
                                         r"--c; fastmlp.io.read_c_model reads it back\)"):
        fastmlp.load(tmp_path / "m.fmlp")
    back = fastmlp.io.read_c_model(tmp_path / "m.fmlp")
    np.testing.assert_array_equal(back.params, model.params)


def test_the_mean_training_rate_is_samples_over_time(capsys):
    from types import SimpleNamespace
    from fastmlp.cli.train import _report_fit
    hist = SimpleNamespace(samples_per_s=[100_000.0, 1_000_000.0], epoch_time=[10.0, 1.0],
                           epochs=2, backend="numpy", loss=[0.5, 0.4], val_loss=[],
                           stopped_early=False, runaway=False)
    _report_fit(hist, 14.0)
    out = capsys.readouterr().out
    # 1e6 samples an epoch: 10 s + 1 s for 2e6 samples is 181,818 samples/s, not 550,000;
    # and the seconds it is over are said, for the 14 s elapsed hold more than the steps
    # (the review: "400,000 samples in 0.75 s" beside 1.85M samples/s)
    assert "trained 2 epochs in 14.00 s" in out
    assert "(181,818 samples/s over the 11.00 s of training steps)" in out
    hist.epoch_time = [0.004, 0.0004]     # a small run's steps: not "over the 0.00 s"
    _report_fit(hist, 1.0)
    assert "over the 4.4 ms of training steps" in capsys.readouterr().out


def test_threshold_with_margin_keeps_the_cut_between_adjacent_doubles():
    # the review's case: the midpoint of two adjacent doubles rounds onto the lower one,
    # which the cut then selected too (2 rows became 3)
    s = np.array([0.5999999999999999, 0.6, 0.9])
    t = metrics.threshold_with_margin(s, 1, 0.6)
    assert int((s >= t).sum()) == 2 and t == 0.6


def test_bulk_bin_edges_takes_a_count_and_lands_on_data_values():
    v = np.r_[np.zeros(995), np.arange(1.0, 6.0)]
    edges = metrics.bulk_bin_edges(v, 4)
    # the central 99 %: zeros to 1 (not to 0.005, an interpolation between tied values)
    assert edges[0] == 0.0 and edges[-1] == 1.0 and edges.size == 5
    with pytest.raises(ValueError, match="bins must be a number of bins"):
        metrics.bulk_bin_edges(v, [-5, -1, 0, 1, 5])     # silently replaced by 4 equal bins
