"""Pictures: loss curves, the lr sweep, optimizers compared, ROC and completeness vs
contamination, colour-colour diagrams, optimizer paths over 2-D cost surfaces.

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
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .training.recipes import DEFAULT_OPTIMIZERS, parse_optimizers  # noqa: F401

__all__ = ["loss_curves", "lr_sweep", "optimizer_comparison", 
           "roc_curve", "completeness_contamination", "color_color", "cost_surface_paths",
           "optimizer_paths", "training_report", "cv_folds", "save_figure", "SURFACES",
           "run_on_surface"]

CLASS_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
#: colours by class name, so that quasars are red, stars blue and galaxies green whatever the
#: label order of the catalog
NAME_COLORS = {"star": "#1f77b4", "qso": "#d62728", "quasar": "#d62728", "galaxy": "#2ca02c"}
OPT_COLORS = {"sgd": "#7f7f7f", "momentum": "#1f77b4", "adagrad": "#2ca02c",
              "rmsprop": "#ff7f0e", "adam": "#d62728", "adamw": "#9467bd",
              "nesterov": "#17becf"}


def _figure(nrows=1, ncols=1, size=(6.4, 4.4)):
    try:
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise ImportError("fastmlp.plot needs matplotlib: pip install 'fastmlp[plot]' (or "
                          "pip install matplotlib)") from None
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
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


def _done(fig, path):
    if path is not None:
        save_figure(fig, path)
    return fig


# ---------------------------------------------------------------------------------------
def loss_curves(history, path=None, ax=None, title="Training and validation loss",
                batches=True):
    """Per-epoch training loss and validation loss (if any) of a fastmlp.History, with the
    mini-batch losses faint behind them (``batches=True``), against epochs."""
    fig, ax = _one_ax(ax)
    n = len(history.loss)
    if n == 0:
        raise ValueError("history has no epochs to plot")
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
    vals = np.asarray(history.loss + list(history.val_loss), float)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size and vals.max() / vals.min() > 20:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"loss ({history.loss_name})" if history.loss_name else "loss")
    ax.set_xlim(0, n + 0.5)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _done(fig, path)


def lr_sweep(result, path=None, title="Learning-rate sweep"):
    """Two panels from a fastmlp.recipes.SweepResult: the loss against iteration for every
    lr (same initial weights, same batches), and the final smoothed loss against lr on a log
    axis with the chosen lr marked and diverged runs marked with red crosses."""
    fig, axes = _figure(1, 2, (11, 4.4))
    a1, a2 = axes[0]
    lrs = np.asarray(result.lrs, float)
    try:
        from matplotlib import colormaps
        cmap = colormaps["viridis"]
    except ImportError:  # pragma: no cover - old matplotlib
        from matplotlib import cm
        cmap = cm.get_cmap("viridis")
    for i, (lr, curve) in enumerate(zip(lrs, result.losses)):
        c = cmap(i / max(len(lrs) - 1, 1))
        lw = 2.5 if i == result.best_index else 1.0
        a1.plot(np.arange(1, len(curve) + 1), curve, color=c, lw=lw,
                label=f"{lr:.2g}" + (" (best)" if i == result.best_index else "")
                + (" diverged" if result.diverged[i] else ""))
    finite = np.concatenate([np.asarray(c)[np.isfinite(c)] for c in result.losses])
    if finite.size:
        lo, hi = np.percentile(finite, [0.5, 99])
        a1.set_ylim(max(lo * 0.9, 0) if lo > 0 else lo, hi * 1.1 if hi > 0 else hi + 1)
    a1.set_xlabel("iteration")
    a1.set_ylabel("mini-batch loss")
    a1.set_title("loss per iteration, one curve per lr")
    a1.legend(title="lr", fontsize=7, ncol=2, loc="upper right", framealpha=0.85)
    a1.grid(alpha=0.3)

    final = np.asarray(result.final_loss, float)
    div = np.asarray(result.diverged, bool)
    ok = ~div & np.isfinite(final)
    a2.plot(lrs[ok], final[ok], "o-", color="#1f77b4", label="final loss (last 10 %)")
    top = final[ok].max() * 1.15 if ok.any() else 1.0
    if div.any():
        a2.plot(lrs[div], np.full(div.sum(), top), "x", color="#d62728", ms=10, mew=2,
                label="diverged")
    a2.axvline(result.best_lr, color="#2ca02c", ls="--", lw=1.5)
    a2.plot([result.best_lr], [final[result.best_index]], "*", color="#2ca02c", ms=16,
            label=f"chosen lr = {result.best_lr:.3g}")
    a2.set_xscale("log")
    a2.set_xlabel("learning rate")
    a2.set_ylabel("final smoothed loss")
    a2.set_title("final loss vs learning rate")
    a2.grid(alpha=0.3, which="both")
    a2.legend(frameon=False)
    fig.suptitle(title)
    return _done(fig, path)


def optimizer_comparison(curves, path=None, ax=None, smooth=10, lrs=None,
                         title="Optimizers from the same initial weights on the same batches"):
    """Loss against iteration for each optimizer ({label: curve}, e.g. from
    :func:`compare_optimizers`): the raw mini-batch loss faint, a ``smooth``-step running
    mean bold, log y axis."""
    fig, ax = _one_ax(ax, (7.5, 4.8))
    for i, (label, c) in enumerate(curves.items()):
        c = np.asarray(c, float)
        color = OPT_COLORS.get(label, CLASS_COLORS[i % len(CLASS_COLORS)])
        it = np.arange(1, c.size + 1)
        ax.plot(it, c, color=color, alpha=0.2, lw=0.7)
        k = max(1, min(smooth, c.size))
        sm = np.convolve(np.nan_to_num(c, nan=np.nan), np.ones(k) / k, mode="valid")
        lab = label + (f" (lr {lrs[label]:g})" if lrs and lrs.get(label) else "")
        if not np.isfinite(c).all():
            lab += " - diverged"
        ax.plot(it[k - 1:], sm, color=color, lw=2, label=lab)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mini-batch loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(frameon=False)
    return _done(fig, path)


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


def roc_curve(y_true, score, positive=1, path=None, ax=None, name=None):
    """ROC curve (true-positive rate = completeness against false-positive rate) of the
    selection ``score >= t`` for the ``positive`` class (e.g. P(quasar)), AUC in the legend."""
    from .metrics import roc_auc
    fig, ax = _one_ax(ax, (5, 4.6))
    _, tpr, fpr = _curve(y_true, score, positive)
    auc = roc_auc(y_true, score, positive=positive)
    ax.plot(fpr, tpr, color="#d62728", lw=2, label=f"AUC = {auc:.4f}")
    ax.plot([0, 1], [0, 1], color="k", ls=":", lw=1, label="chance")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (completeness)")
    ax.set_title(f"ROC curve: {name or 'class ' + str(positive)}")
    ax.set_xlim(-0.01, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=False)
    return _done(fig, path)


def completeness_contamination(y_true, score, positive=1, path=None, ax=None, name=None,
                               max_contamination=0.06):
    """Contamination against completeness of every cut ``score >= t`` on the positive
    class's score; the best cut with contamination <= ``max_contamination`` is marked."""
    from .metrics import completeness_at_contamination
    fig, ax = _one_ax(ax, (5, 4.6))
    c, _, _ = _curve(y_true, score, positive)
    ax.plot(c.completeness, c.contamination, color="#9467bd", lw=2)
    comp, thr = completeness_at_contamination(y_true, score, positive, max_contamination)
    ax.axhline(max_contamination, color="k", ls=":", lw=1,
               label=f"contamination {max_contamination:g}")
    if np.isfinite(thr):
        ax.plot([comp], [c.contamination[np.searchsorted(-c.thresholds, -thr)]], "o",
                color="#2ca02c", ms=9,
                label=f"best cut P >= {thr:.3f}: completeness {comp:.3f}")
    ax.set_xlabel("completeness")
    ax.set_ylabel("contamination")
    ax.set_xlim(0, 1.01)
    top = float(np.nanmax(c.contamination)) if c.contamination.size else 1.0
    ax.set_ylim(0, min(1.0, max(3 * max_contamination, top * 1.05)))
    ax.set_title(f"Completeness vs contamination: {name or 'class ' + str(positive)}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    return _done(fig, path)


def color_color(x, y, labels, class_names=None, path=None, ax=None, xlabel="u-g",
                ylabel="g-r", max_points=40_000, seed=0, title=None):
    """Colour-colour diagram (e.g. u-g against g-r), points coloured by (predicted) class;
    at most ``max_points`` drawn (a random subset), the rarer classes on top."""
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
        ax.scatter(x[sel], y[sel], s=2, alpha=0.5, color=color, lw=0,
                   label=f"{name} ({sel.size})", rasterized=True)
    fin = np.isfinite(x[idx]) & np.isfinite(y[idx])
    if fin.any():
        xl = np.percentile(x[idx][fin], [0.5, 99.5])
        yl = np.percentile(y[idx][fin], [0.5, 99.5])
        ax.set_xlim(xl[0] - 0.1 * np.ptp(xl), xl[1] + 0.1 * np.ptp(xl))
        ax.set_ylim(yl[0] - 0.1 * np.ptp(yl), yl[1] + 0.1 * np.ptp(yl))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{xlabel} vs {ylabel}, coloured by predicted class", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(markerscale=5, frameon=False)
    return _done(fig, path)


def cv_folds(result, path=None, title="Cross-validation: metric per fold"):
    """Each fold's metrics (points) with the mean +- std (bar) from a CVResult."""
    keys = list(result.mean)
    fig, axes = _figure(1, len(keys), (2.4 * len(keys) + 1, 3.8))
    for ax, k in zip(axes[0], keys):
        v = np.array([f[k] for f in result.folds])
        ax.errorbar([0], [result.mean[k]], yerr=[result.std[k]], fmt="s", color="k",
                    capsize=6, ms=7)
        ax.plot(np.linspace(-0.15, 0.15, v.size), v, "o", color="#1f77b4", alpha=0.8)
        ax.set_xticks([])
        ax.set_xlim(-0.5, 0.5)
        ax.set_title(f"{k}\n{result.mean[k]:.4f} ± {result.std[k]:.4f}", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title + f" ({len(result.folds)} folds)")
    return _done(fig, path)


def training_report(history, y_true=None, proba=None, positive=None, class_names=None,
                    colors=None, color_names=("u-g", "g-r"), path=None, title=None):
    """One figure after training: loss curves; with test labels and probabilities the ROC
    and completeness-contamination curves of the ``positive`` class; with ``colors`` (a
    (n, 2) array, e.g. the test rows' u-g and g-r) the colour-colour diagram by predicted
    class."""
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
    for p, ax in zip(panels, axs):
        if p == "loss":
            loss_curves(history, ax=ax)
        elif p == "roc":
            roc_curve(y_true, proba[:, positive], positive, ax=ax, name=name)
        elif p == "cc":
            completeness_contamination(y_true, proba[:, positive], positive, ax=ax, name=name)
        else:
            color_color(colors[:, 0], colors[:, 1], proba.argmax(axis=1), class_names, ax=ax,
                        xlabel=color_names[0], ylabel=color_names[1])
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
    ax.set_title(f"{surface}: {n} steps from the same start")
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
        ax.legend(frameon=False)
        ax.grid(alpha=0.3, which="both")
    else:
        ax.set_visible(False)
    cost_surface_paths("rosenbrock", ax=axes[1, 0], runs=rr)
    ax = axes[1, 1]
    for label, r in rr.items():
        ax.plot(np.arange(len(r["cost"])), np.maximum(r["cost"], 1e-12),
                color=OPT_COLORS.get(label, "k"), lw=1.6, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("cost")
    ax.set_title("rosenbrock: cost per step")
    ax.legend(frameon=False)
    ax.grid(alpha=0.3, which="both")
    return _done(fig, path)
