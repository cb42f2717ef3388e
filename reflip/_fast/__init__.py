"""Backend-specific fast paths, dispatched from the public functions only.

Each function here returns ``None`` when it has no fast path for its arguments, and the caller
falls back to the array-API core. Every fast path is tested against the core
(``tests/test_fast.py``): bit for bit for GroupSort.
"""
from __future__ import annotations

from array_api_compat import is_numpy_namespace

__all__ = ["group_sort"]


def group_sort(x, group_size, axis, xp):
    """Forward GroupSort without residuals; ``None`` when no fast path applies."""
    if group_size == 2 and is_numpy_namespace(xp):
        return _numpy_max_min(x, axis)
    return None


def _numpy_max_min(x, axis):
    import numpy as np

    x = np.moveaxis(x, axis, -1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty(x.shape, dtype=x.dtype)
    # Argument order matters at ties: NumPy's minimum(p, q) returns q and maximum(p, q)
    # returns q when p == q, so this keeps a before b exactly like a stable sort [GS-7]
    # (visible only on signed zeros). NaN propagates to both entries of its pair [GS-8].
    np.minimum(b, a, out=out[..., 0::2])
    np.maximum(a, b, out=out[..., 1::2])
    return np.moveaxis(out, -1, axis)
