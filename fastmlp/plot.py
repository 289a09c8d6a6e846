"""Pictures: loss curves, the lr sweep, optimizers compared, ROC and completeness vs
contamination, completeness and purity in bins of a column, reliability diagrams,
photometric against spectroscopic redshift, colour-colour diagrams, optimizer paths over 2-D
cost surfaces.

Every function returns a ``matplotlib.figure.Figure`` built with the object-oriented API on
the Agg canvas (no pyplot, no GUI, safe in scripts, servers and threads), and with
``path=...`` also saves it atomically (a temporary file beside ``path``, then a rename; the
format follows the suffix: .png, .pdf, .svg).  Functions drawing one panel take ``ax=`` to
draw into an existing Axes instead (then the Axes' figure is returned).  matplotlib is an
optional dependency (``pip install 'fastmlp[plot]'``).

The 2-D surfaces run fastmlp's own optimizer classes (``fastmlp.optim``) on a 2-element
parameter array with analytic gradients, as the lecture draws gradient descent: on the
ill-conditioned quadratic ``f = (x^2 + kappa y^2) / 2`` Adagrad's per-direction rate
``lr / sqrt(sum g^2)`` falls faster along the steep direction y (larger gradients pile up
faster), which :func:`optimizer_paths` shows beside the paths.
"""

import os
import re
from pathlib import Path

import numpy as np

from ._validate import (check_bool, check_cut_inputs, check_n_bins, check_regression_pair,
                        counted)
from .atomic import atomic_write
from .metrics import format_rate
from .training.recipes import DEFAULT_OPTIMIZERS, divergence_index, parse_optimizers  # noqa: F401

__all__ = ["loss_curves", "lr_sweep", "optimizer_comparison", 
           "roc_curve", "completeness_contamination", "color_color", "cost_surface_paths",
           "binned_completeness", "reliability_diagram", "photoz", "regression_report",
           "optimizer_paths", "training_report", "cv_folds", "save_figure", "SURFACES",
           "run_on_surface"]

CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
#: colours by class name, so that quasars are red, stars blue and galaxies green whatever the
#: label order of the catalog
NAME_COLORS = {"star": "#1f77b4", "qso": "#d62728", "quasar": "#d62728", "galaxy": "#2ca02c"}
OPT_COLORS = {"sgd": "#7f7f7f", "momentum": "#1f77b4", "adagrad": "#2ca02c",
              "rmsprop": "#ff7f0e", "adam": "#d62728", "adamw": "#9467bd",
              "nesterov": "#17becf"}


# colours for labels without one of their own (an optimizer given twice: "adam(lr=0.01)")
_MORE_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#000000", "#aec7e8", "#ffbb78", "#98df8a",
                "#ff9896", "#c5b0d5", "#c49c94")


def _optimizer_colors(labels):
    """{label: colour}, each distinct while there are colours: the optimizer's own
    (OPT_COLORS) where no other label holds it, else the next unused one."""
    out, used = {}, set()
    for label in labels:
        if label in OPT_COLORS and OPT_COLORS[label] not in used:
            out[label] = OPT_COLORS[label]
            used.add(out[label])
    spare = [c for c in (*OPT_COLORS.values(), *_MORE_COLORS) if c not in used]
    for i, label in enumerate(lab for lab in labels if lab not in out):
        out[label] = spare[i % len(spare)] if spare else "k"
    return out


def _figure(nrows=1, ncols=1, size=(6.4, 4.4), **subplots_kw):
    try:
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise ImportError("fastmlp.plot needs matplotlib: pip install 'fastmlp[plot]' (or "
                          "pip install matplotlib)") from None
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplots_kw)
    return fig, axes


def _one_ax(ax, size=(6.4, 4.4)):
    if ax is not None:
        return ax.figure, ax
    fig, axes = _figure(1, 1, size)
    return fig, axes[0, 0]


def save_figure(fig, path, dpi=130):
    """Save ``fig`` to ``path`` atomically (temporary file + rename); returns the Path."""
    path = Path(os.fspath(path))
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi))


def _plain_log_ticks(ax):
    """Tick labels of a log y axis as plain numbers (0.05, 0.1, 0.2) instead of 5 x 10^-2:
    losses are read as numbers.  Over less than two decades the 2, 3 and 5 minor ticks
    are labelled too, since there may be a single major tick or none."""
    from matplotlib.ticker import FuncFormatter
    lo, hi = ax.get_ylim()
    few = lo > 0 and hi / lo < 100

    def minor(v, _):
        if not few or v <= 0:
            return ""
        lead = v / 10.0 ** np.floor(np.log10(v) + 1e-9)
        return f"{v:g}" if round(lead) in (2, 3, 5) else ""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _done(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


# ---------------------------------------------------------------------------------------
def _loss_range(history):
    """The losses that decide the y axis: the epoch means, the validation losses and the
    loss at the start (median of the first 10 mini-batches, so that one lucky or unlucky
    batch does not decide the axis); finite and > 0."""
    vals = list(history.loss) + list(history.val_loss)
    if history.batch_loss:
        vals.append(float(np.median(np.asarray(history.batch_loss[:10], float))))
    vals = np.asarray(vals, float)
    return vals[np.isfinite(vals) & (vals > 0)]


def _spans_decades(history, decades=2.0):
    """True when the losses of :func:`_loss_range` span at least ``decades`` powers of 10."""
    vals = _loss_range(history)
    return bool(vals.size) and vals.max() / vals.min() >= 10.0 ** decades


def loss_curves(history, path=None, ax=None, title="Training and validation loss",
                batches=True):
    """Per-epoch training loss and validation loss (if any) of a fastmlp.History, with the
    mini-batch losses faint behind them (``batches=True``), against epochs.  The y axis is
    logarithmic when the losses span two decades or more (e.g. a regression falling from
    10 to 0.05), linear from 0 otherwise; its range follows the epoch curves and the
    starting loss, so single mini-batch spikes may leave the top of the panel."""
    if getattr(history, "loss", None) is None:      # before a figure is opened
        raise TypeError(f"history must be a fastmlp.History (what fit returns), got "
                        f"{history!r}")
    check_bool(batches, "batches")
    n = len(history.loss)
    if n == 0:
        raise ValueError("history has no epochs to plot")
    fig, ax = _one_ax(ax)
    ep = np.arange(1, n + 1)
    if batches and history.batch_loss:
        bl = np.asarray(history.batch_loss, dtype=float)
        per = bl.size / n
        x = np.arange(1, bl.size + 1) / per
        ax.plot(x, bl, color="#1f77b4", alpha=0.25, lw=0.6, label="mini-batch loss")
    ax.plot(ep, history.loss, "o-", color="#1f77b4", lw=2, ms=4,
            label="training loss (epoch mean)")
    if history.val_loss:
        ax.plot(ep[:len(history.val_loss)], history.val_loss, "s-", color="#d62728", lw=2,
                ms=4, label="validation loss")
    if getattr(history, "best_epoch", None) and getattr(history, "stopped_early", False):
        ax.axvline(history.best_epoch, color="k", ls=":", lw=1,
                   label=f"best epoch {history.best_epoch} (restored)")
    vals = _loss_range(history)
    if _spans_decades(history):
        ax.set_yscale("log")
        if vals.size:
            ax.set_ylim(vals.min() / 1.5, vals.max() * 1.5)
        _plain_log_ticks(ax)
    elif vals.size:
        # the bold curves decide the range: a spike of one faint mini-batch loss would
        # otherwise flatten them against the axis
        ax.set_ylim(0, vals.max() * 1.1)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"loss ({history.loss_name})" if history.loss_name else "loss")
    ax.set_xlim(0, n + 0.5)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _done(fig, path)


def lr_sweep(result, path=None, title="Learning-rate sweep", divergence_factor=None):
    """Two panels from a fastmlp.recipes.SweepResult.

    Left: the loss against iteration for every lr (same initial weights, same batches); a
    diverged run is drawn dashed up to the iteration where it diverged (its loss went
    non-finite or rose above ``divergence_factor`` x its first value: judge_curve's rule,
    lr_sweep's; None, the default: the sweep's own ``result.divergence_factor``) and marked
    there with a red cross; the y range follows the runs that did not diverge.  Right: the
    final smoothed loss against lr on a log axis, the chosen lr marked with a star, diverged
    lrs with red crosses along the top edge (they have no final loss), and a note when the
    chosen lr sits at the edge of the grid (the best lr may lie outside it)."""
    from .metrics import grid_edge
    fig, axes = _figure(1, 2, (12.5, 4.6))
    lrs = np.asarray(result.lrs, float)
    div = np.asarray(result.diverged, bool)
    if divergence_factor is None:   # the factor the sweep judged by: the crosses agree with it
        divergence_factor = getattr(result, "divergence_factor", 4.0)
    _sweep_curves(axes[0, 0], result, lrs, div, divergence_factor)
    a2 = axes[0, 1]
    final = np.asarray(result.final_loss, float)
    ok = ~div & np.isfinite(final)
    up = np.argsort(lrs, kind="stable")     # lrs given in any order: a line from left to right
    up = up[ok[up]]
    tail = max(1, np.shape(result.losses)[1] // 10)     # SweepResult.final_loss's window
    a2.plot(lrs[up], final[up], "o-", color="#1f77b4",
            label=f"final loss (mean of the last {counted(tail, 'iteration')})")
    if div.any():
        # crosses at the top edge, in axes coordinates: a diverged run has no final loss
        # and any height in data units would read as one
        a2.plot(lrs[div], np.full(div.sum(), 0.97), "x", color="#d62728", ms=10, mew=2,
                transform=a2.get_xaxis_transform(), clip_on=False,
                label="diverged (no final loss)")
    a2.axvline(result.best_lr, color="#2ca02c", ls="--", lw=1.5)
    a2.plot([result.best_lr], [final[result.best_index]], "*", color="#2ca02c", ms=16,
            label=f"chosen lr = {result.best_lr:.3g}")
    edge = grid_edge(lrs, result.best_lr)
    a2.set_title("final loss vs learning rate", pad=20 if edge else 6)
    if edge is not None:        # above the panel, where it cannot hide a point
        a2.text(0.5, 1.01, "chosen lr at the edge of the grid: " + edge.split("; ")[1],
                transform=a2.transAxes, fontsize=8, color="#b35900", ha="center",
                va="bottom")
    if lrs.min() == lrs.max():      # one lr: a decade around it, not matplotlib's warning
        a2.set_xlim(lrs.min() / np.sqrt(10), lrs.min() * np.sqrt(10))
    a2.set_xscale("log")
    if ok.any() and final[ok].max() / final[ok].min() >= 10:
        a2.set_yscale("log")
        _plain_log_ticks(a2)
    a2.set_xlabel("learning rate")
    a2.set_ylabel("final smoothed loss")
    a2.grid(alpha=0.3, which="both")
    # upper centre (a sweep's final losses are high at both ends), but below the diverged
    # crosses along the top edge, which it used to cover
    a2.legend(frameon=True, framealpha=0.9, fontsize=8, loc="upper center",
              bbox_to_anchor=(0.5, 0.93))
    fig.suptitle(title)
    return _done(fig, path)


def _sweep_curves(ax, result, lrs, div, factor):
    try:
        from matplotlib import colormaps
        cmap = colormaps["viridis"]
    except ImportError:  # pragma: no cover - old matplotlib
        from matplotlib import cm
        cmap = cm.get_cmap("viridis")
    kept = [np.asarray(c, float) for c, d in zip(result.losses, div) if not d]
    fin = np.concatenate([c[np.isfinite(c)] for c in kept]) if kept else np.empty(0)
    # the range of the runs that did not diverge: their starting loss and 99 % of their
    # values (a single early spike would flatten the comparison the panel is for)
    lo, hi = (np.percentile(fin, [0.5, 99]) if fin.size else (0.0, 1.0))
    if kept:
        hi = max(hi, max(c[0] for c in kept if np.isfinite(c[0])))
    top = hi * 1.15 if hi > 0 else hi + 1
    crossed = False
    # by increasing lr, whatever order the sweep had: the colour scale and the legend
    # follow the lr (given as 0.1, 1e-4, 0.01 the colours were in that order)
    for rank, i in enumerate(np.argsort(lrs, kind="stable")):
        lr, curve = lrs[i], np.asarray(result.losses[i], float)
        c = cmap(rank / max(len(lrs) - 1, 1))
        it = np.arange(1, curve.size + 1)
        best = i == result.best_index
        label = f"{lr:.2g}" + (" (chosen)" if best else "") + (" diverged" if div[i] else "")
        if not div[i]:
            ax.plot(it, curve, color=c, lw=2.5 if best else 1.0, label=label)
            continue
        k = divergence_index(curve, factor)
        k = curve.size - 1 if k is None else k
        ax.plot(it[:k + 1], curve[:k + 1], color=c, lw=1.0, ls="--", label=label)
        y = curve[k] if np.isfinite(curve[k]) and curve[k] < top else top
        ax.plot([it[k]], [y], "x", color="#d62728", ms=9, mew=2, clip_on=False,
                label=None if crossed else "diverged here")
        crossed = True
    ax.set_ylim(max(lo * 0.9, 0) if lo > 0 else lo, top)
    ax.set_xlabel("iteration")
    ax.set_ylabel("mini-batch loss")
    ax.set_title("loss per iteration, one curve per lr", fontsize=10)
    # beside the panel: with ten curves there is no empty corner inside it
    ax.legend(*_crosses_last(ax), title="lr", fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)


def optimizer_comparison(curves, path=None, ax=None, smooth=10, lrs=None,
                         title="Optimizers from the same initial weights on the same batches",
                         divergence_factor=4.0):
    """Loss against iteration for each optimizer ({label: curve}, e.g. from
    :func:`compare_optimizers`): the raw mini-batch loss faint, a ``smooth``-step running
    mean bold, log y axis (``smooth=1``: the loss itself, bold, for full-batch gradient
    descent, whose loss has no noise to average and whose running mean only lags).  As
    in :func:`lr_sweep`, a diverged run (its loss went non-finite or rose above
    ``divergence_factor`` x its first value: judge_curve's rule) is drawn dashed up to that
    iteration and
    marked there with a red cross, and the y range follows the runs that did not diverge
    (a blown-up loss of 1e37 would flatten the others into one line); the x axis spans
    the whole run."""
    fig, ax = _one_ax(ax, (7.5, 4.8))
    curves = {label: np.asarray(c, float) for label, c in curves.items()}
    where = {label: divergence_index(c, divergence_factor) if c.size else None
             for label, c in curves.items()}
    kept = [c for label, c in curves.items() if where[label] is None]
    if not kept:        # every run diverged: the range of their parts before it
        kept = [c[:where[label]] for label, c in curves.items()]
    fin = np.concatenate([c[np.isfinite(c) & (c > 0)] for c in kept] + [np.empty(0)])
    lo, hi = np.percentile(fin, [0.5, 99]) if fin.size else (None, None)
    if fin.size:
        hi = max(hi, max((c[0] for c in kept if c.size and np.isfinite(c[0])), default=hi))
    crossed = False
    colors = _optimizer_colors(curves)
    for label, c in curves.items():
        color = colors[label]
        it = np.arange(1, c.size + 1)
        # "adam(lr=0.01)" (an optimizer given twice) written as the others: "adam (lr 0.01)"
        lab = re.sub(r"\(lr=([^)]*)\)$", r" (lr \1)", label)
        lab += f" (lr {lrs[label]:g})" if lrs and lrs.get(label) and lab == label else ""
        d = where[label]
        if d is not None:
            ax.plot(it[:d + 1], c[:d + 1], color=color, lw=1.2, ls="--",
                    label=lab + " - diverged")
            top = hi * 2 if hi is not None else None
            y = c[d] if np.isfinite(c[d]) and (top is None or c[d] < top) else top
            if y is not None:
                ax.plot([it[d]], [y], "x", color="#d62728", ms=9, mew=2, clip_on=False,
                        label=None if crossed else "diverged here")
                crossed = True
            continue
        k = max(1, min(smooth, c.size))
        if k == 1:      # nothing to smooth (full-batch gradient descent): one bold curve
            # (a marker: a run of one step is a point, which a line alone does not draw)
            ax.plot(it, c, color=color, lw=2, label=lab, marker="o" if c.size == 1 else None)
            continue
        ax.plot(it, c, color=color, alpha=0.2, lw=0.7)
        sm = np.convolve(c, np.ones(k) / k, mode="valid")
        ax.plot(it[k - 1:], sm, color=color, lw=2, label=lab)
    ax.set_yscale("log")
    if fin.size:
        ax.set_ylim(lo / 1.5, hi * 2)
    _plain_log_ticks(ax)
    # the whole run on the x axis: runs that all died at step 2 of 40 drew an axis from
    # 1.0 to 2.0 in steps of 0.2, as if the run had been two steps long
    n = max((c.size for c in curves.values()), default=0)
    if ax.get_xlim()[1] < n or n < 2:   # (one step: matplotlib spanned 0.96 to 1.04)
        ax.set_xlim(0, n + 1)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(nbins="auto", steps=[1, 2, 2.5, 5, 10],
                                           integer=True))    # matplotlib's own, whole
    ax.set_xlabel("iteration")
    window = max(1, min(smooth, n))     # what the bold curves average: not 10 of 5 steps
    ax.set_ylabel(f"mini-batch loss (faint), running mean of {window} (bold)" if window > 1
                  else "loss per step")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(*_crosses_last(ax), frameon=False)
    return _done(fig, path)


def _crosses_last(ax):
    """(handles, labels) of ``ax`` with the "diverged here" cross moved to the end: it was
    listed where it was first drawn, between one lr's entry and the next."""
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "diverged here")
    return [handles[i] for i in order], [labels[i] for i in order]


# ---------------------------------------------------------------------------------------
def _curve(y_true, score, positive):
    from .metrics import completeness_contamination_curve
    c = completeness_contamination_curve(y_true, score, positive)
    y = np.asarray(y_true)
    n_pos = int((y == positive).sum())
    n_neg = y.size - n_pos
    tp = np.rint(c.completeness * n_pos)
    fp = c.n_selected - tp
    tpr = np.r_[0.0, tp / n_pos]
    fpr = np.r_[0.0, fp / max(n_neg, 1)]
    return c, tpr, fpr


def roc_curve(y_true, score, positive=1, path=None, ax=None, name=None, log_fpr=None):
    """ROC curve (true-positive rate = completeness against false-positive rate) of the
    selection ``score >= t`` for the ``positive`` class (e.g. P(quasar)), AUC in the legend.
    ``log_fpr`` None: a logarithmic false-positive axis when the AUC exceeds 0.99 (the
    curve then hugs the top-left corner and the part that matters, false-positive rates of
    1e-4..1e-2, is invisible on a linear axis); True / False force it."""
    from .metrics import roc_auc
    fig, ax = _one_ax(ax, (5, 4.6))
    _, tpr, fpr = _curve(y_true, score, positive)
    auc = roc_auc(y_true, score, positive=positive)
    log = auc > 0.99 if log_fpr is None else bool(log_fpr)
    ax.plot(fpr, tpr, color="#d62728", lw=2, label=f"AUC = {auc:.4f}")
    if log:
        n_neg = int(np.sum(np.asarray(y_true) != positive))
        floor = 1.0 / max(n_neg, 1)             # one false positive: the smallest rate seen
        grid = np.geomspace(floor, 1, 200)
        ax.plot(grid, grid, color="k", ls=":", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xlim(floor / 1.5, 1)
        ax.set_xlabel(f"false-positive rate (log; 1 false positive = {floor:.1g})")
    else:
        ax.plot([0, 1], [0, 1], color="k", ls=":", lw=1, label="chance")
        ax.set_xlim(-0.01, 1)
        ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (completeness)")
    ax.set_title(f"ROC curve: {name or 'class ' + str(positive)}")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3, which="both" if log else "major")
    # the empty corner: top left of a log-axis curve, bottom right of a linear one
    ax.legend(loc="upper left" if log else "lower right", frameon=False)
    return _done(fig, path)


def completeness_contamination(y_true, score, positive=1, path=None, ax=None, name=None,
                               max_contamination=0.06, cut=None):
    """Contamination against completeness of every cut ``score >= t`` on the positive
    class's score.  Without ``cut``: the best cut on THESE data with contamination <=
    ``max_contamination`` is marked (an optimistic choice when these are the test rows).
    With ``cut`` (a threshold chosen beforehand on validation data, e.g. the model's stored
    cut): what that cut delivers on these data is marked instead."""
    from .metrics import completeness_at_contamination, completeness, contamination
    fig, ax = _one_ax(ax, (5, 4.6))
    c, _, _ = _curve(y_true, score, positive)
    ax.plot(c.completeness, c.contamination, color="#9467bd", lw=2)
    if cut is None:
        comp, thr = completeness_at_contamination(y_true, score, positive, max_contamination)
        ax.axhline(max_contamination, color="k", ls=":", lw=1,
                   label=f"contamination {max_contamination:g}")
        if np.isfinite(thr):
            ax.plot([comp], [c.contamination[np.searchsorted(-c.thresholds, -thr)]], "o",
                    color="#2ca02c", ms=9,
                    label=f"best cut on these data P >= {thr:.3f}: completeness {comp:.3f}")
        else:
            ax.plot([], [], " ", label=f"no cut reaches contamination <= {max_contamination:g}")
        top_ref = max_contamination
    else:
        truth = (np.asarray(y_true) == positive).astype(int)      # one vs rest
        # in float64, as MLP.predict: a float32 score would round the cut to float32
        chosen = (np.asarray(score, dtype=np.float64) >= cut).astype(int)
        comp, cont = completeness(truth, chosen, 1), contamination(truth, chosen, 1)
        ax.plot([comp], [cont if np.isfinite(cont) else 0.0], "o", color="#2ca02c", ms=9,
                label=f"cut P >= {cut:.3f} (chosen beforehand):\ncompleteness {comp:.3f}, "
                      "contamination " + ("n/a" if not np.isfinite(cont) else f"{cont:.3f}"))
        top_ref = cont if np.isfinite(cont) else max_contamination
    ax.set_xlabel("completeness")
    ax.set_ylabel("contamination")
    ax.set_xlim(0, 1.01)
    # zoom on the decision region: three times the target (or the marked cut) high, and at
    # least up to the contamination of 95 % completeness, so that the curve stays in view
    # when no cut comes near the target
    at95 = c.contamination[min(np.searchsorted(c.completeness, 0.95), c.completeness.size - 1)]
    ax.set_ylim(0, min(1.0, 1.05 * max(3 * top_ref, at95, 0.05)))
    ax.set_title(f"Completeness vs contamination: {name or 'class ' + str(positive)}")
    ax.grid(alpha=0.3)
    # where the curve is not: its shape (U, L, or rising from the start) varies too much
    # for one fixed corner
    ax.legend(loc="best", framealpha=0.9, fontsize=8)
    return _done(fig, path)


def color_color(x, y, labels, class_names=None, path=None, ax=None, xlabel="u-g",
                ylabel="g-r", max_points=40_000, seed=0, title=None, subset=None,
                colored_by="predicted class", totals=None):
    """Colour-colour diagram (e.g. u-g against g-r), points coloured by class; at most
    ``max_points`` drawn (a random subset), the rarer classes on top.  The default title
    says which rows these are (``subset``: e.g. "test set" or "training set") and what the
    colours show (``colored_by``: "predicted class" or "true class").  The legend gives
    each class's count over all the rows, and how many are drawn when that is fewer;
    ``totals`` (a count per class index) replaces the counts of x, y, labels when those
    are already a sample (fastmlp predict draws a sample of a catalog)."""
    fig, ax = _one_ax(ax, (5.6, 5))
    x, y, labels = (np.asarray(a) for a in (x, y, labels))
    if not (x.shape == y.shape == labels.shape and x.ndim == 1):
        raise ValueError(f"x, y and labels must be 1-D of the same length, got {x.shape}, "
                         f"{y.shape}, {labels.shape}")
    idx = np.arange(x.size)
    if x.size > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(x.size, max_points, replace=False))
    classes, counts = np.unique(labels[idx], return_counts=True)
    for c in classes[np.argsort(-counts)]:            # the most common class underneath
        sel = idx[labels[idx] == c]
        k = int(c)
        name = class_names[k] if class_names is not None and 0 <= k < len(class_names) \
            else str(c)
        color = NAME_COLORS.get(str(name).lower(), CLASS_COLORS[k % 6])
        total = int(totals[k]) if totals is not None and 0 <= k < len(totals) \
            else int(np.count_nonzero(labels == c))
        # the class's count, not the sample's: "QSO (2,732)" of a 2M-row catalog's
        # 134,620 quasars read as the catalog's count
        count = f"{total:,}" if sel.size == total else f"{total:,}; {sel.size:,} shown"
        ax.scatter(x[sel], y[sel], s=2, alpha=0.5, color=color, lw=0,
                   label=f"{name} ({count})", rasterized=True)
    fin = np.isfinite(x[idx]) & np.isfinite(y[idx])
    if fin.any():
        xl = np.percentile(x[idx][fin], [0.5, 99.5])
        yl = np.percentile(y[idx][fin], [0.5, 99.5])
        ax.set_xlim(xl[0] - 0.1 * np.ptp(xl), xl[1] + 0.1 * np.ptp(xl))
        ax.set_ylim(yl[0] - 0.1 * np.ptp(yl), yl[1] + 0.1 * np.ptp(yl))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is None:
        rows = counted(x.size, "row", fmt=",")
        shown = f"{idx.size:,} of {rows}" if idx.size < x.size else rows
        title = (f"{subset}: " if subset else "") + f"{xlabel} vs {ylabel}, coloured by " \
            f"{colored_by}\n({shown})"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(markerscale=5, frameon=False)
    return _done(fig, path)


_METRIC_LABELS = {"accuracy": "accuracy", "log_loss": "log loss", "roc_auc": "ROC AUC",
                  "completeness": "completeness", "contamination": "contamination",
                  "rmse": "RMSE"}


def cv_folds(result, path=None, title="Cross-validation: metric per fold",
             positive_name=None):
    """Each fold's metrics from a CVResult: one panel per metric, fold number on the x
    axis, the mean as a line and +- one standard deviation shaded.  ``positive_name``
    names the class whose completeness and contamination are shown (the ``positive`` of
    cross_validate)."""
    keys = list(result.mean)
    k = len(result.folds)
    fig, axes = _figure(1, len(keys), (2.6 * len(keys) + 1, 3.9))
    folds = np.arange(1, k + 1)
    for ax, key in zip(axes[0], keys):
        v = np.array([f[key] for f in result.folds], float)
        # the mean the CLI prints: contamination over the folds that selected something
        m, sd, _ = result.reported_mean_std(key)
        ax.axhspan(m - sd, m + sd, color="0.85", label="± 1 std")
        ax.axhline(m, color="k", lw=1.5, label="mean")
        ax.plot(folds, v, "o", color="#1f77b4", ms=7, label="fold")
        ax.set_xticks(folds)
        ax.set_xlim(0.5, k + 0.5)
        ax.set_xlabel("fold")
        label = _METRIC_LABELS.get(key, key)
        if key in ("completeness", "contamination") and positive_name is not None:
            label += f" of {positive_name}"
        _cv_panel_range(ax, v)
        # n/a as the CLI's table says it (no fold has a value, or a fold's accuracy is NaN)
        spread = f"{format_rate(m)} ± {format_rate(sd)}" if np.isfinite(m) else "n/a"
        counted_folds = result.folds_counted_text(key)
        spread += f" ({counted_folds})" if counted_folds else ""
        ax.set_title(f"{label}\n{spread}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7, frameon=False, loc="best")
    fig.suptitle(title + f" ({counted(k, 'fold')})")
    return _done(fig, path)


def _cv_panel_range(ax, v):
    """A metric panel's y range when matplotlib's own would mislead: equal values in every
    fold (0 for all: an axis of 1e-17 steps) get +- 5 %; no value in any fold gets a note
    in place of an empty panel."""
    fin = v[np.isfinite(v)]
    if fin.size == 0:
        ax.text(0.5, 0.5, "n/a in every fold", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
        ax.set_yticks([])
    elif np.ptp(fin) == 0:
        pad = 0.05 * max(1.0, abs(fin[0]))
        ax.set_ylim(fin[0] - pad, fin[0] + pad)


def binned_completeness(y_true, y_pred, positive, values, bins=10, path=None, column="value",
                        name=None, z=None, title=None):
    """Completeness and purity of the ``positive`` class per bin of a column (e.g. the r
    magnitude), from :func:`fastmlp.metrics.binned_completeness` (same arguments): top panel
    the two rates with their Wilson intervals (``z`` sigma, default 1) as error bars, each
    point at its bin centre with the bin width as a horizontal bar; bottom panel the
    per-bin counts (true members of the class, and objects selected as it), log scale.
    Empty bins (0/0) have no point."""
    from .metrics import binned_completeness as rates_in_bins
    b = rates_in_bins(y_true, y_pred, positive, values, bins, z=z)
    name = name if name is not None else f"class {positive}"
    fig, axes = _figure(2, 1, (6.8, 6.2))
    fig.get_layout_engine().set(h_pad=0.02)
    a1, a2 = axes[0, 0], axes[1, 0]
    centre = 0.5 * (b.edges[1:] + b.edges[:-1])
    halfw = 0.5 * np.diff(b.edges)
    shift = 0.12 * halfw                 # side by side, so the error bars do not overlap
    for rate, lo, hi, dx, color, mk, label in (
            (b.completeness, b.completeness_lo, b.completeness_hi, -shift, "#1f77b4", "o",
             "completeness (found / true members)"),
            (b.purity, b.purity_lo, b.purity_hi, shift, "#d62728", "s",
             "purity = 1 - contamination (true / selected)")):
        ok = np.isfinite(rate)
        a1.errorbar(centre[ok] + dx[ok], rate[ok],
                    yerr=[rate[ok] - lo[ok], hi[ok] - rate[ok]], xerr=halfw[ok] - np.abs(dx[ok]),
                    fmt=mk, color=color, ms=6, capsize=3, lw=1.2, label=label)
    a1.set_ylim(-0.03, 1.2)               # the band above 1 keeps the legend off the points
    a1.set_yticks(np.linspace(0, 1, 6))
    a1.set_ylabel("fraction")
    a1.set_title(title or f"{name} per {column} bin (Wilson {b.z:g}-sigma intervals)",
                 fontsize=10)
    a1.grid(alpha=0.3)
    a1.legend(fontsize=7, loc="upper center", ncol=2, framealpha=0.9)
    a1.tick_params(labelbottom=False)
    w = np.diff(b.edges)
    a2.bar(b.edges[:-1], np.maximum(b.n_true, 0.5), width=w, align="edge",
           color="#1f77b4", alpha=0.35, edgecolor="#1f77b4",
           label=f"true {name}")
    a2.step(b.edges, np.r_[b.n_selected, b.n_selected[-1]], where="post", color="#d62728",
            lw=1.5, label=f"selected as {name}")
    for x, nt, ns in zip(centre, b.n_true, b.n_selected):
        a2.annotate(f"{nt}/{ns}", (x, max(nt, ns, 1)), textcoords="offset points",
                    xytext=(0, 2), ha="center", fontsize=7)
    a2.set_yscale("log")
    a2.set_ylim(0.7, max(b.n_true.max(), b.n_selected.max(), 1) * 4)
    a2.set_xlabel(column)
    a2.set_ylabel("objects per bin")
    a2.legend(fontsize=7, loc="upper left", frameon=False,
              title="labels: true / selected", title_fontsize=7)
    a2.grid(alpha=0.3)
    for ax in (a1, a2):
        ax.set_xlim(b.edges[0], b.edges[-1])
    if b.n_outside:
        a2.text(0.99, 0.95, f"{counted(b.n_outside, 'row')} outside the bins",
                transform=a2.transAxes, ha="right", va="top", fontsize=7)
    return _done(fig, path)


def reliability_diagram(y_true, proba, positive=None, n_bins=10, path=None, name=None,
                        calibrated=None, calibrated_label="after temperature scaling",
                        title=None):
    """Reliability diagram: per equal-width probability bin, the observed frequency against
    the mean predicted probability (:func:`fastmlp.metrics.reliability_curve`, same
    ``positive`` and ``n_bins``), with Wilson 1-sigma error bars and the diagonal of perfect
    calibration; Brier score and ECE in the legend; bottom panel the rows per bin.
    ``calibrated``: a second set of probabilities (e.g. after temperature scaling) drawn
    alongside.  A point below the diagonal holds fewer members than its probability
    promised (over-confident where P > 0.5, under-confident where P < 0.5)."""
    from .metrics import brier_score, expected_calibration_error, reliability_curve
    n_bins = check_n_bins(n_bins)      # the bar width 1 / n_bins comes before the curve
    fig, axes = _figure(2, 1, (5.8, 7.0), sharex=True,
                        gridspec_kw={"height_ratios": [3, 1]})
    a1, a2 = axes[0, 0], axes[1, 0]
    a1.plot([0, 1], [0, 1], color="k", ls=":", lw=1, label="perfectly calibrated")
    sets = [("model", proba, "#1f77b4", "o")]
    if calibrated is not None:
        sets.append((calibrated_label, calibrated, "#d62728", "s"))
    width = 1.0 / n_bins
    for i, (label, P, color, mk) in enumerate(sets):
        c = reliability_curve(y_true, P, positive, n_bins)
        ok = c.count > 0
        ece = expected_calibration_error(y_true, P, positive, n_bins)
        bs = brier_score(y_true, P, positive)
        a1.errorbar(c.mean_predicted[ok], c.observed[ok],
                    yerr=[c.observed[ok] - c.observed_lo[ok],
                          c.observed_hi[ok] - c.observed[ok]],
                    fmt=mk + "-", color=color, ms=5, capsize=2, lw=1.2,
                    label=f"{label}: ECE {ece:.4f}, Brier {bs:.4f}")
        off = (i - (len(sets) - 1) / 2) * width / len(sets)
        a2.bar((c.edges[:-1] + width / 2 + off)[ok], c.count[ok],      # no bar for 0 rows
               width=width / len(sets), color=color, alpha=0.5, label=label)
    if name is not None:
        what = f"P({name})"
    elif positive is not None or np.ndim(proba) == 1:
        what = "P(positive class)"
    else:
        what = "top-class probability"
    a1.set_xlim(0, 1)
    a1.set_ylim(0, 1)
    if what == "top-class probability":
        a1.set_ylabel("fraction of the bin whose top class is right")
    else:
        a1.set_ylabel("observed fraction" + (f" of {name}" if name else "") + " in the bin")
    fig.suptitle(title or f"Reliability diagram: {counted(n_bins, 'equal-width bin')} of {what}",
                 fontsize=10)
    a1.text(0.98, 0.02, f"x: mean predicted {what} in the bin\nbelow the diagonal: fewer "
            "members than predicted", transform=a1.transAxes, ha="right", va="bottom", fontsize=7,
            color="0.35")
    a1.grid(alpha=0.3)
    # above the panel: a legend inside would hide points on one side of the diagonal
    a1.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=1,
              frameon=False)
    a2.set_yscale("log")
    _plain_log_ticks(a2)       # counts as numbers, not a crowd of "4 x 10^3" minor labels
    a2.set_xlim(0, 1)
    a2.set_xlabel(f"predicted {what}")
    a2.set_ylabel("rows per bin")
    a2.grid(alpha=0.3)
    if calibrated is not None:
        a2.legend(fontsize=7, frameon=False)
    return _done(fig, path)


def regression_report(history, y_true, y_pred, path=None, redshift=False, name="value",
                      title=None):
    """One figure after training a regressor: the loss curves, and the prediction against
    the truth - for redshifts (``redshift=True``) the :func:`photoz` panel with its outlier
    cones and figures of merit, otherwise a hexbin of predicted against true ``name`` with
    the 1:1 line, RMSE and R^2."""
    check_bool(redshift, "redshift")
    check_regression_pair(y_true, y_pred)    # lengths checked before the loss panel is drawn
    fig, axes = _figure(1, 2, (12.5, 5.2))
    loss_curves(history, ax=axes[0, 0])
    if redshift:
        photoz(y_true, y_pred, ax=axes[0, 1])
    else:
        _truth_hexbin(axes[0, 1], y_true, y_pred, name)
    if title:
        fig.suptitle(title)
    return _done(fig, path)


def _truth_hexbin(ax, y_true, y_pred, name):
    from matplotlib.colors import LogNorm
    from .metrics import r2, rmse
    yt = np.asarray(y_true, float).ravel()
    yp = np.asarray(y_pred, float).ravel()
    lo, hi = np.percentile(np.r_[yt, yp], [0.5, 99.5])
    pad = 0.03 * (hi - lo) if hi > lo else 0.5
    lo, hi = lo - pad, hi + pad
    inside = (yt >= lo) & (yt <= hi) & (yp >= lo) & (yp <= hi)
    hb = ax.hexbin(yt[inside], yp[inside], gridsize=60, extent=(lo, hi, lo, hi),
                   norm=LogNorm(), cmap="viridis", mincnt=1, linewidths=0.2)
    ax.figure.colorbar(hb, ax=ax, label="objects per cell", shrink=0.8)
    ax.plot([lo, hi], [lo, hi], color="k", lw=1, label="predicted = true")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel(f"true {name}")
    ax.set_ylabel(f"predicted {name}")
    n_off = int(yt.size - inside.sum())
    ax.text(0.97, 0.03, f"RMSE = {rmse(yt, yp):.4g}\nR² = {r2(yt, yp):.4f}"
            + (f"\n{n_off} off the axes" if n_off else ""), transform=ax.transAxes,
            ha="right", va="bottom", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.6"})
    ax.set_title(f"Predicted against true {name} (n = {yt.size:,})", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)


def photoz(z_spec, z_phot, path=None, ax=None, outlier_cut=0.15, gridsize=70, title=None,
           zmax=None):
    """Photometric against spectroscopic redshift: a hexbin of counts (log colour scale),
    the 1:1 line, and the outlier cones z_phot = z_spec +- ``outlier_cut`` (1 + z_spec)
    outside which an object counts as an outlier; sigma_NMAD, the outlier fraction, bias and
    RMSE (:func:`fastmlp.metrics.photoz_metrics`) in a box."""
    from matplotlib.colors import LogNorm
    from .metrics import photoz_metrics
    m = photoz_metrics(z_spec, z_phot, outlier_cut)
    zs, zp = np.asarray(z_spec, float).ravel(), np.asarray(z_phot, float).ravel()
    fig, ax = _one_ax(ax, (6.0, 5.4))
    both = np.r_[zs, zp]
    # the axes cover 99 % of the points: a handful of wild predictions would otherwise
    # squeeze the bulk into a corner; the box counts the ones left out
    hi = float(zmax) if zmax is not None else float(np.percentile(both, 99.5)) * 1.05
    lo = min(0.0, float(np.percentile(both, 0.5)))
    lo -= 0.02 * (hi - lo) if lo < 0 else 0.0
    inside = (zs >= lo) & (zs <= hi) & (zp >= lo) & (zp <= hi)
    n_off = int(zs.size - inside.sum())
    # only the points inside the axes (hexbin would fold near ones into its edge cells)
    hb = ax.hexbin(zs[inside], zp[inside], gridsize=gridsize, extent=(lo, hi, lo, hi),
                   norm=LogNorm(), cmap="viridis", mincnt=1, linewidths=0.2)
    fig.colorbar(hb, ax=ax, label="objects per cell", shrink=0.8)
    line = np.linspace(lo, hi, 100)
    ax.plot(line, line, color="k", lw=1, label="z_phot = z_spec")
    ax.plot(line, line + outlier_cut * (1 + line), color="#d62728", ls="--", lw=1,
            label=f"outlier cones |dz|/(1+z) = {outlier_cut:g}")
    ax.plot(line, line - outlier_cut * (1 + line), color="#d62728", ls="--", lw=1)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel("spectroscopic redshift z_spec")
    ax.set_ylabel("photometric redshift z_phot")
    # the figures of merit above the axes, not in a corner: both lower corners (and the
    # upper left) are where the catastrophic outliers fall
    ax.set_title(title or f"Photometric redshifts (n = {m.n:,})", fontsize=10, pad=30)
    ax.text(0.5, 1.01, f"σ_NMAD = {m.sigma_nmad:.4f}   outliers = {m.outlier_fraction:.2%} "
            f"({m.n_outliers})\nbias = {m.bias:+.4f}   RMSE = {m.rmse:.4f}"
            + (f"   {n_off} object{'s' if n_off > 1 else ''} off the axes" if n_off else ""),
            transform=ax.transAxes, ha="center", va="bottom", fontsize=8)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    ax.grid(alpha=0.3)
    return _done(fig, path)


def _predicted(proba, positive, cut):
    """Labels as a selection would assign them: with a ``cut``, the positive class where
    P(positive) >= cut, else the most probable other class; without, the argmax."""
    from .metrics import labels_at_cut
    if cut is None or positive is None:
        return proba.argmax(axis=1)
    return labels_at_cut(proba, positive, cut)


def training_report(history, y_true=None, proba=None, positive=None, class_names=None,
                    colors=None, color_names=("u-g", "g-r"), path=None, title=None,
                    subset="test set", cut=None):
    """One figure after training: loss curves; with labels and probabilities of held-out
    rows (``subset`` says which: "test set" by default) the ROC and
    completeness-contamination curves of the ``positive`` class; with ``colors`` (a (n, 2)
    array, e.g. those rows' u-g and g-r) the colour-colour diagram by predicted class.
    ``cut``: a threshold on P(positive) chosen on validation data; it is marked on the
    completeness-contamination curve and decides the predicted classes (so it needs
    ``proba`` and ``positive``)."""
    check_cut_inputs(cut, proba, positive)
    panels = ["loss"]
    if proba is not None and positive is not None:
        panels += ["roc", "cc"]
    if colors is not None and proba is not None:
        panels += ["colors"]
    ncols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // ncols)
    fig, axes = _figure(nrows, ncols, (6 * ncols, 4.6 * nrows))
    axs = list(axes.ravel())
    name = class_names[positive] if class_names is not None and positive is not None \
        else positive
    where = f" ({subset})" if subset else ""
    for p, ax in zip(panels, axs):
        if p == "loss":
            loss_curves(history, ax=ax)
        elif p == "roc":
            roc_curve(y_true, proba[:, positive], positive, ax=ax, name=f"{name}{where}")
        elif p == "cc":
            completeness_contamination(y_true, proba[:, positive], positive, ax=ax,
                                       name=f"{name}{where}", cut=cut)
        else:
            color_color(colors[:, 0], colors[:, 1], _predicted(proba, positive, cut),
                        class_names, ax=ax, xlabel=color_names[0], ylabel=color_names[1],
                        subset=subset)
    for ax in axs[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _done(fig, path)


# ---------------------------------------------------------------------------------------
# 2-D cost surfaces
def _quadratic(kappa=20.0):
    def f(p):
        return 0.5 * (p[..., 0] ** 2 + kappa * p[..., 1] ** 2)

    def g(p):
        return np.array([p[0], kappa * p[1]])
    return f, g


def _rosenbrock(a=1.0, b=100.0):
    def f(p):
        return (a - p[..., 0]) ** 2 + b * (p[..., 1] - p[..., 0] ** 2) ** 2

    def g(p):
        x, y = p
        return np.array([-2 * (a - x) - 4 * b * x * (y - x * x), 2 * b * (y - x * x)])
    return f, g


#: name -> (f, grad, start, (xmin, xmax, ymin, ymax), minimum, steps, {label: (name, kw)})
SURFACES = {
    "quadratic": (*_quadratic(20.0), (-4.0, 1.6), (-4.6, 1.2, -2.0, 2.0), (0.0, 0.0), 60, {
        "sgd": ("sgd", {"lr": 0.09}),
        "momentum": ("sgd", {"lr": 0.02, "momentum": 0.8}),
        "adagrad": ("adagrad", {"lr": 1.5}),
        "rmsprop": ("rmsprop", {"lr": 0.05}),
        "adam": ("adam", {"lr": 0.3}),
    }),
    "rosenbrock": (*_rosenbrock(), (-1.5, 2.0), (-2.0, 2.0, -1.0, 3.0), (1.0, 1.0), 600, {
        "sgd": ("sgd", {"lr": 1e-3}),
        "momentum": ("sgd", {"lr": 3e-4, "momentum": 0.9}),
        "adagrad": ("adagrad", {"lr": 0.5}),
        "rmsprop": ("rmsprop", {"lr": 0.02}),
        "adam": ("adam", {"lr": 0.1}),
    }),
}


def run_on_surface(surface="quadratic", optimizers=None, steps=None, start=None):
    """Run fastmlp's optimizer classes on a 2-element float64 parameter array over a 2-D
    cost surface with its analytic gradient.  Returns {label: {"path": (steps+1, 2)
    iterates, "cost": (steps+1,), "lr_eff": (steps, 2) Adagrad's per-direction effective
    rate lr / (sqrt(state) + eps) (NaN for the others)}}; a run stops at the first
    non-finite step."""
    from .optim import make_optimizer
    if surface not in SURFACES:
        raise ValueError(f"surface must be one of {list(SURFACES)}, got {surface!r}")
    f, g, st0, _, _, n0, defaults = SURFACES[surface]
    steps = n0 if steps is None else int(steps)
    if optimizers is None:
        specs = [(k, n, kw) for k, (n, kw) in defaults.items()]
    else:
        specs = []
        for o in parse_optimizers(optimizers):
            label, name, kw = o
            if label in defaults and not (isinstance(optimizers, str) and ":" in optimizers):
                name, kw = defaults[label]
            specs.append((label, name, dict(kw)))
    start = np.asarray(st0 if start is None else start, dtype=np.float64)
    out = {}
    for label, name, kw in specs:
        p = start.copy()
        opt = make_optimizer(name, p, backend="numpy", **kw)
        path = [p.copy()]
        lr_eff = []
        with np.errstate(all="ignore"):
            for _ in range(steps):
                opt.step(g(p))
                if not np.isfinite(p).all():
                    break
                path.append(p.copy())
                if name == "adagrad":
                    lr_eff.append(opt.lr / (np.sqrt(opt.state[0]) + opt.eps))
                else:
                    lr_eff.append([np.nan, np.nan])
        path = np.array(path)
        with np.errstate(all="ignore"):
            cost = f(path)
        out[label] = {"path": path, "cost": cost, "lr_eff": np.array(lr_eff).reshape(-1, 2),
                      "lr": kw.get("lr"), "diverged": len(path) < steps + 1}
    return out


def cost_surface_paths(surface="quadratic", optimizers=None, steps=None, path=None, ax=None,
                       runs=None):
    """Contours of a 2-D cost surface ("quadratic": (x^2 + 20 y^2)/2, ill-conditioned;
    "rosenbrock": (1-x)^2 + 100 (y-x^2)^2) with each optimizer's iterates."""
    fig, ax = _one_ax(ax, (6.4, 5))
    f, _, start, (x0, x1, y0, y1), minimum, _, _ = SURFACES[surface]
    runs = run_on_surface(surface, optimizers, steps) if runs is None else runs
    xx, yy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    zz = f(np.stack([xx, yy], axis=-1))
    levels = np.geomspace(max(zz.min(), 1e-3), zz.max(), 18) if surface == "rosenbrock" \
        else np.geomspace(0.02, zz.max(), 16)
    ax.contour(xx, yy, zz, levels=levels, colors="0.6", linewidths=0.7)
    for label, r in runs.items():
        pth = r["path"]
        c = OPT_COLORS.get(label, "k")
        lab = f"{label} (lr {r['lr']:g})" + (" diverged" if r["diverged"] else "")
        ax.plot(pth[:, 0], pth[:, 1], "-", color=c, lw=1.4, label=lab)
        ax.plot(pth[:, 0], pth[:, 1], ".", color=c, ms=3)
    ax.plot(*start, "ko", ms=6)
    ax.annotate("start", start, textcoords="offset points", xytext=(5, 5))
    ax.plot(*minimum, "k*", ms=14)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$w_1$")
    ax.set_ylabel("$w_2$")
    n = max(len(r["path"]) - 1 for r in runs.values())
    ax.set_title(f"{surface}: {counted(n, 'step')} from the same start")
    ax.legend(fontsize=8, frameon=True, framealpha=0.8, loc="lower right")
    return _done(fig, path)


def optimizer_paths(path=None, steps=None, optimizers=None):
    """The lecture's picture in one figure: optimizer paths over the ill-conditioned
    quadratic and over Rosenbrock's valley, Adagrad's effective learning rate per direction
    on the quadratic (it falls faster along the steep w2 direction, whose gradients are
    larger), and the cost against step on Rosenbrock."""
    fig, axes = _figure(2, 2, (12.5, 9.5))
    rq = run_on_surface("quadratic", optimizers, steps)
    rr = run_on_surface("rosenbrock", optimizers, steps)
    cost_surface_paths("quadratic", ax=axes[0, 0], runs=rq)
    ax = axes[0, 1]
    if "adagrad" in rq and rq["adagrad"]["lr_eff"].size:
        le = rq["adagrad"]["lr_eff"] / rq["adagrad"]["lr"]
        it = np.arange(1, le.shape[0] + 1)
        ax.axhline(1.0, color="k", ls=":", lw=1, label="the nominal lr")
        ax.plot(it, le[:, 0], color="#2ca02c", lw=2, label="$w_1$ (shallow direction)")
        ax.plot(it, le[:, 1], color="#2ca02c", lw=2, ls="--",
                label="$w_2$ (steep direction, curvature 20x)")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(r"Adagrad's rate / lr  $= 1 / \sqrt{\sum_t g_t^2}$")
        ax.set_title("quadratic: Adagrad's rate falls further along the steep direction",
                     fontsize=10)
        _plain_log_ticks(ax)
        ax.legend(frameon=False, loc="upper right", bbox_to_anchor=(1.0, 0.92))  # between lines
        ax.grid(alpha=0.3, which="both")
    else:
        ax.set_visible(False)
    cost_surface_paths("rosenbrock", ax=axes[1, 0], runs=rr)
    ax = axes[1, 1]
    for label, r in rr.items():
        ax.plot(np.arange(len(r["cost"])), np.maximum(r["cost"], 1e-12),
                color=OPT_COLORS.get(label, "k"), lw=1.6, label=label)
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel("step")
    ax.set_ylabel("cost")
    ax.set_title("rosenbrock: cost per step")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3, which="both")
    return _done(fig, path)
