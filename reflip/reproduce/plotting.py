"""The reproductions' plots, drawn with matplotlib's Agg canvas.

Figures are built as :class:`matplotlib.figure.Figure` objects attached to an Agg canvas, never
through ``pyplot``: no global backend switch, no display needed, nothing left open. Every figure
has a fixed size in pixels (``size`` inches times :data:`DPI`), saved without tight bounding
boxes so the PNG has exactly that size.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["DPI", "PANELS", "STANDARD", "critic_1d", "critic_2d", "histograms", "accuracy_curves"]

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


def critic_2d(xx, yy, learned, truth, title, points=None):
    """Contours of each learned 2-D critic in a grid of panels, after the optimal critic's when
    ``truth`` is given (learned ones shifted to its mean); ``points = (p, q)`` overlays the two
    samples."""
    fig = _figure(PANELS)
    if truth is not None:
        panels = {"optimal critic": truth, **{k: _aligned(v, truth) for k, v in learned.items()}}
        ref = truth
    else:
        panels = dict(learned)
        ref = np.concatenate([np.ravel(v) for v in learned.values()])
    lo, hi = np.min(ref), np.max(ref)
    cols = math.ceil(math.sqrt(len(panels)))
    rows = -(-len(panels) // cols)
    for i, (label, z) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        levels = np.linspace(lo, hi, 15) if truth is not None else 15
        ax.contourf(xx, yy, z, levels=levels, extend="both" if truth is not None else "neither",
                    cmap="viridis")
        if points is not None:
            ax.scatter(points[0][:, 0], points[0][:, 1], s=2, c="white", label="P")
            ax.scatter(points[1][:, 0], points[1][:, 1], s=2, c="red", label="Q")
        ax.set_title(label, fontsize=10)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=7)
    fig.suptitle(title)
    return fig


def histograms(samples, title, xlabel, reference=None):
    """Overlaid histograms of ``samples`` (label -> values), a vertical line at ``reference``."""
    fig = _figure(STANDARD)
    ax = fig.add_subplot()
    finite = [np.asarray(v)[np.isfinite(v)] for v in samples.values()]
    lo = min((v.min() for v in finite if v.size), default=0.0)
    hi = max((v.max() for v in finite if v.size), default=1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 50)
    for (label, _), v in zip(samples.items(), finite):
        # One outline per histogram: readable when overlaid, and one artist instead of a bar per bin.
        ax.hist(v, bins=bins, histtype="step", lw=1.8, label=label)
    if reference is not None:
        ax.axvline(reference, color="black", ls="--", lw=1)
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    ax.legend(fontsize=8)
    return fig


def accuracy_curves(curves, title, xlabel):
    """Accuracy against the radius: ``curves`` maps a label to ``(eps, accuracy, line)``,
    ``line`` a dict of matplotlib line properties."""
    fig = _figure(STANDARD)
    ax = fig.add_subplot()
    for label, (eps, acc, line) in curves.items():
        ax.plot(eps, acc, label=label, **line)
    ax.set(xlabel=xlabel, ylabel="accuracy", title=title, ylim=(-0.02, 1.02))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
