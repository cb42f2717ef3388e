"""Numbers over seeds: every table cell of a multi-seed reproduction is ``mean ± std`` over the
seeds that produced it, and the expected outcomes are judged on the means (the spread shown
beside them). The standard deviation is the sample one (``ddof = 1``: the seeds are a sample
of the training randomness); one seed has no spread and shows its number alone."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["stats", "cell", "mean", "curve_band", "windowed"]


def _finite(values):
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def stats(values):
    """``{"mean", "std", "min", "max", "n"}`` of the numbers in ``values`` (``None`` and NaN,
    a missing or diverged seed, are left out and not counted in ``n``)."""
    v = _finite(values)
    if not v:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    a = np.asarray(v, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}


def mean(values):
    """The mean of the finite numbers in ``values`` (NaN when there are none)."""
    return stats(values)["mean"]


def cell(values, digits=4):
    """``"0.9420 ± 0.0031"`` (one seed: ``"0.9420"``; none: ``"n/a"``)."""
    s = stats(values)
    if s["n"] == 0:
        return "n/a"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def windowed(values, points=50):
    """``[[step, mean of the window ending there]...]``: ``values`` (one per step, step 1
    first) cut into up to ``points`` consecutive windows of equal length (the last ones one
    longer), each summarised by its mean. A per-step training loss is one minibatch's; the
    window mean is the readable curve."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return []
    edges = np.linspace(0, v.size, min(points, v.size) + 1).round().astype(int)
    return [[int(b), float(v[a:b].mean())] for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def curve_band(curves):
    """Curves of several seeds (each ``[[step, value]...]`` on the same steps) -> ``(steps,
    mean, min, max)`` NumPy arrays; seeds whose curve has other steps are left out."""
    curves = [np.asarray(c, dtype=np.float64) for c in curves if len(c)]
    if not curves:
        return (np.zeros(0),) * 4
    ref = curves[0]
    same = np.stack([c[:, 1] for c in curves if c.shape == ref.shape and np.array_equal(c[:, 0], ref[:, 0])])
    return ref[:, 0], same.mean(axis=0), same.min(axis=0), same.max(axis=0)
