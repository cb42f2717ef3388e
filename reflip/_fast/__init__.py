"""Backend-specific fast paths, dispatched from the public functions only.

Each function here returns ``None`` when it has no fast path for its arguments, and the caller
falls back to the array-API core. Every fast path is tested against the core
(``tests/test_fast.py`` for NumPy, ``tests/test_fast_cupy.py`` for CuPy on a GPU): bit for bit
for GroupSort. NumPy paths are in this module; CuPy kernels in :mod:`.cupy_groupsort` and
:mod:`.cupy_bjorck`, imported only when a CuPy array arrives (CuPy stays optional).
"""
from __future__ import annotations

from array_api_compat import is_cupy_namespace, is_numpy_namespace

__all__ = ["group_sort", "group_sort_fwd", "group_sort_bwd", "group_sort_jvp", "matmul_precision"]


def _cupy_groupsort():
    from . import cupy_groupsort

    return cupy_groupsort


def group_sort(x, group_size, axis, xp):
    """Forward GroupSort without residuals; ``None`` when no fast path applies."""
    if is_cupy_namespace(xp):
        return _cupy_groupsort().group_sort(x, group_size, axis)
    if not is_numpy_namespace(xp):
        return None
    if group_size == 2:
        return _numpy_max_min(x, axis)
    return _numpy_sorted(x, group_size, axis, argsort=False)[0]


def group_sort_fwd(x, group_size, axis, xp):
    """``(y, perm)`` of the stable order, in the core's layout; ``None`` without a fast path."""
    if is_cupy_namespace(xp):
        return _cupy_groupsort().group_sort_fwd(x, group_size, axis)
    if not is_numpy_namespace(xp):
        return None
    return _numpy_sorted(x, group_size, axis, argsort=True)


def group_sort_bwd(perm, y_bar, group_size, axis, xp):
    """``P^T y_bar`` as a scatter (NumPy has ``put_along_axis``; the standard does not, so the
    core gathers with the inverse permutation instead). ``None`` without a fast path."""
    if is_cupy_namespace(xp):
        return _cupy_groupsort().group_sort_bwd(perm, y_bar, group_size, axis)
    if not is_numpy_namespace(xp):
        return None
    import numpy as np

    ym = np.moveaxis(y_bar, axis, -1)
    if group_size == 2:
        # A pair's permutation is the identity or the swap: selecting is a pure copy of
        # entries (bit for bit the scatter) and avoids put_along_axis's int64 indexing.
        swap = perm[..., 0] == 1
        g_min, g_max = ym[..., 0::2], ym[..., 1::2]
        x_bar = np.empty(ym.shape, dtype=ym.dtype)
        x_bar[..., 0::2] = np.where(swap, g_max, g_min)
        x_bar[..., 1::2] = np.where(swap, g_min, g_max)
        return np.moveaxis(x_bar, -1, axis)
    yg = ym.reshape(*ym.shape[:-1], ym.shape[-1] // group_size, group_size)
    x_bar = np.empty(yg.shape, dtype=yg.dtype)
    np.put_along_axis(x_bar, perm, yg, axis=-1)
    return np.moveaxis(x_bar.reshape(ym.shape), -1, axis)


def group_sort_jvp(perm, x_dot, group_size, axis, xp):
    """``P x_dot`` as a gather (CuPy only: NumPy's ``take_along_axis`` is the core's own)."""
    if is_cupy_namespace(xp):
        return _cupy_groupsort().group_sort_jvp(perm, x_dot, group_size, axis)
    return None


def matmul_precision(xp, dtype, precision):
    """Context manager under which ``xp``'s float32 products use ``precision`` (``"tf32"`` or
    ``"default"``); only CuPy has the switch. Raises ``ValueError`` elsewhere (callers validate
    first, so this is a guard)."""
    if precision == "default":
        import contextlib

        return contextlib.nullcontext()
    if not is_cupy_namespace(xp):
        raise ValueError(f"precision={precision!r} needs CuPy arrays (TF32 is a GPU tensor-core mode)")
    from . import cupy_bjorck

    return cupy_bjorck.tf32_matmul(dtype)


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


def _numpy_sorted(x, group_size, axis, argsort):
    """Sort groups with NumPy's default (SIMD, unstable) sort, which is several times faster
    than its stable sort. Without ties the sorted order is unique, so the result is exactly
    the stable one [GS-7]; the groups with a tie (signed zeros included) or a NaN are re-sorted
    stably. Finding them costs one comparison pass over the output."""
    import numpy as np

    xm = np.moveaxis(x, axis, -1)
    xg = xm.reshape(*xm.shape[:-1], xm.shape[-1] // group_size, group_size)
    if argsort and group_size == 2:
        return _numpy_max_min_fwd(xm, axis)
    perm = None
    if argsort:
        perm = np.argsort(xg, axis=-1)
        y = np.take_along_axis(xg, perm, axis=-1)
        # The permutation is unique unless a group has a tie or a NaN (NaN sorts last, so it
        # shows in the last entry). Whole-array reductions first: reducing along a short group
        # axis is slow, so the per-group mask is only built when some group needs it.
        ties, nan_last = y[..., 1:] == y[..., :-1], np.isnan(y[..., -1])
        if ties.any() or nan_last.any():
            redo = np.any(ties, axis=-1) | nan_last
            perm[redo] = np.argsort(xg[redo], axis=-1, kind="stable")
            y[redo] = np.take_along_axis(xg[redo], perm[redo], axis=-1)
    else:
        y = np.sort(xg, axis=-1)
        # Values only: equal floats have equal bits except zeros of opposite sign (and NaN
        # payloads), so the unstable result is bitwise the stable one unless a group holds a
        # zero or a NaN; counting non-zeros is one fast pass.
        nan_last = np.isnan(y[..., -1])
        if np.count_nonzero(xg) != xg.size or nan_last.any():
            redo = np.any(xg == 0, axis=-1) | nan_last
            y[redo] = np.sort(xg[redo], axis=-1, kind="stable")
    return np.moveaxis(y.reshape(xm.shape), -1, axis), perm


def _numpy_max_min_fwd(xm, axis):
    """k = 2 with residuals: one comparison per pair gives the stable permutation (swap iff
    b < a, or a is NaN and b is not: NaN goes last like the sorts put it)."""
    import numpy as np

    a, b = xm[..., 0::2], xm[..., 1::2]
    swap = b < a
    nan_a = np.isnan(a)
    if nan_a.any():
        swap |= nan_a & ~np.isnan(b)
    y = np.empty(xm.shape, dtype=xm.dtype)
    y[..., 0::2] = np.where(swap, b, a)
    y[..., 1::2] = np.where(swap, a, b)
    # uint8 indices, as the CuPy path stores them: an int64 permutation would write 8x the
    # bytes of the output's own pair.
    perm = np.empty((*swap.shape, 2), dtype=np.uint8)
    perm[..., 0] = swap
    perm[..., 1] = ~swap
    return np.moveaxis(y, -1, axis), perm
