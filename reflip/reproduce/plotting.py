"""The reproductions' plots, drawn with matplotlib's Agg canvas.

Figures are built as :class:`matplotlib.figure.Figure` objects attached to an Agg canvas, never
through ``pyplot``: no global backend switch, no display needed, nothing left open. Every figure
has a fixed size in pixels (``size`` inches times :data:`DPI`), saved without tight bounding
boxes so the PNG has exactly that size.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["DPI", "PANELS", "STANDARD", "critic_1d", "critic_2d", "histograms", "accuracy_curves", "learning_curves"]

DPI = 100
STANDARD = (8.0, 5.0)   # 800 x 500 pixels
PANELS = (12.0, 6.0)    # 1200 x 600 pixels (a grid of panels)


def _figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _aligned(values, reference):
    """``values`` shifted so their mean matches ``reference``'s: a critic is defined up to a
    constant (the dual objective ignores it), so only shapes are compared."""
    return np.asarray(values) - np.mean(values) + np.mean(reference)


def critic_1d(x, learned, truth, title):
    """Learned 1-D critics against the optimal one (each shifted to the truth's mean)."""
    fig = _figure(STANDARD)
    ax = fig.add_subplot()
    ax.plot(x, truth, color="black", lw=2.5, label="optimal critic")
    for label, f in learned.items():
        ax.plot(x, _aligned(f, truth), lw=1.5, label=label)
    ax.set(xlabel="x", ylabel="critic f(x) (shifted)", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _grid_shape(n):
    """Rows and columns for ``n`` panels: one row up to three, else two rows."""
    cols = n if n <= 3 else math.ceil(n / 2)
    return math.ceil(n / cols), cols


def critic_2d(xx, yy, learned, truth, title, points=None):
    """Contours of each learned 2-D critic in a grid of panels, after the optimal critic's when
    ``truth`` is given, on one shared colour scale with one colourbar; ``points = (p, q)``
    overlays the two samples.

    A critic is defined up to a constant (the dual objective ignores it), so the learned ones
    are shifted to the truth's mean, or to mean 0 without a truth: only shapes are compared,
    and one scale then serves every panel. A spare grid cell holds the colourbar; no panel is
    left empty.
    """
    fig = _figure(PANELS)
    if truth is not None:
        panels = {"optimal critic": truth, **{k: _aligned(v, truth) for k, v in learned.items()}}
    else:
        panels = {k: np.asarray(v) - np.mean(v) for k, v in learned.items()}
    values = np.concatenate([np.ravel(v) for v in panels.values()])
    lo, hi = float(np.min(values)), float(np.max(values))
    levels = np.linspace(lo, hi if hi > lo else lo + 1.0, 16)
    rows, cols = _grid_shape(len(panels))
    axes, mappable = [], None
    for i, (label, z) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        mappable = ax.contourf(xx, yy, z, levels=levels, cmap="viridis")
        if points is not None:
            ax.scatter(points[0][:, 0], points[0][:, 1], s=2, c="white", label="P")
            ax.scatter(points[1][:, 0], points[1][:, 1], s=2, c="red", label="Q")
        ax.set_title(label, fontsize=10)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
        axes.append(ax)
    label = "critic value (shifted to the optimal critic's mean)" if truth is not None else \
        "critic value (shifted to mean 0)"
    if rows * cols > len(panels):
        spare = fig.add_subplot(rows, cols, len(panels) + 1)
        spare.axis("off")
        cbar = fig.colorbar(mappable, cax=spare.inset_axes([0.1, 0.1, 0.08, 0.8]))
    else:
        cbar = fig.colorbar(mappable, ax=axes, shrink=0.8)
    cbar.set_label(label, fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    fig.suptitle(title)
    return fig


def learning_curves(panels, title, ylabel, reference_label=None):
    """Training curves in a grid of panels: ``panels`` maps a panel title to ``(curves,
    reference)``, ``curves`` a label to ``(steps, mean, low, high)`` over seeds (drawn as a
    line and a band), ``reference`` a number drawn as a dashed line (or ``None``). A spare grid
    cell holds the legend."""
    fig = _figure(PANELS)
    rows, cols = _grid_shape(max(1, len(panels)))
    handles = {}
    # One colour per label across panels (a panel may lack a curve, e.g. no GroupSort(4) on cone128).
    colours = {label: f"C{j}" for j, label in enumerate(dict.fromkeys(k for c, _ in panels.values() for k in c))}
    for i, (name, (curves, reference)) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, (steps, m, low, high) in curves.items():
            (line,) = ax.plot(steps, m, color=colours[label], lw=1.5)
            if len(steps) and np.any(high > low):
                ax.fill_between(steps, low, high, color=colours[label], alpha=0.2, lw=0)
            handles.setdefault(label, line)
        if reference is not None and np.isfinite(reference):
            handles.setdefault(reference_label or "reference",
                               ax.axhline(reference, color="black", ls="--", lw=1))
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    if rows * cols > len(panels):
        spare = fig.add_subplot(rows, cols, len(panels) + 1)
        spare.axis("off")
        spare.legend(list(handles.values()), list(handles), loc="center", fontsize=9,
                     title="mean over seeds; band: min to max")
    elif handles:
        fig.legend(list(handles.values()), [f"{k} (mean over seeds; band: min to max)" for k in handles],
                   loc="lower center", ncol=min(6, len(handles)), fontsize=8)
    fig.suptitle(title)
    # Room for the suptitle; the axis labels of one row then clear the titles of the next.
    fig.tight_layout(rect=(0, 0.04 if rows * cols == len(panels) else 0, 1, 0.95))
    return fig


def histograms(samples, title, xlabel, reference=None):
    """Overlaid histograms of ``samples`` (label -> values), a vertical line at ``reference``."""
    fig = _figure(STANDARD)
    ax = fig.add_subplot()
    finite = [np.asarray(v)[np.isfinite(v)] for v in samples.values()]
    lo = min((v.min() for v in finite if v.size), default=0.0)
    hi = max((v.max() for v in finite if v.size), default=1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 50)
    for (label, _), v in zip(samples.items(), finite, strict=True):
        # One outline per histogram: readable when overlaid, and one artist instead of a bar per bin.
        ax.hist(v, bins=bins, histtype="step", lw=1.8, label=label)
    if reference is not None:
        ax.axvline(reference, color="black", ls="--", lw=1)
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    ax.legend(fontsize=8)
    return fig


def accuracy_curves(curves, title, xlabel):
    """Accuracy against the radius: ``curves`` maps a label to ``(eps, accuracy, line)`` or
    ``(eps, accuracy, line, (low, high))``, ``line`` a dict of matplotlib line properties and
    ``(low, high)`` a band (the range over seeds) drawn in the line's colour."""
    fig = _figure(STANDARD)
    ax = fig.add_subplot()
    for label, (eps, acc, line, *band) in curves.items():
        ax.plot(eps, acc, label=label, **line)
        if band and np.any(np.asarray(band[0][1]) > np.asarray(band[0][0])):
            ax.fill_between(eps, band[0][0], band[0][1], color=line.get("color"), alpha=0.15, lw=0)
    ax.set(xlabel=xlabel, ylabel="accuracy", title=title, ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
