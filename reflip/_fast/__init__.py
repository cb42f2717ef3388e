"""Backend-specific fast paths, dispatched from the public functions only.

Each function here returns ``None`` when it has no fast path for its arguments, and the caller
falls back to the array-API core. Every fast path is tested against the core
(``tests/test_fast.py`` for NumPy, ``tests/test_fast_cupy.py`` for CuPy on a GPU): bit for bit
for GroupSort, within the proved rounding bound [BJ-11] for the fused Björck products
(``tests/test_fast_bjorck.py``). NumPy paths in :mod:`.numpy_groupsort`, :mod:`.numpy_rows`
and :mod:`.numpy_bjorck` (the BLAS of NumPy's wheel through ctypes, or SciPy's), CuPy kernels in
:mod:`.cupy_groupsort` and :mod:`.cupy_bjorck`, each imported when an array of its backend
arrives (CuPy stays optional; SciPy is only a fallback of the Björck path).
"""
from __future__ import annotations

from array_api_compat import is_cupy_namespace, is_numpy_namespace

__all__ = ["bjorck_steps", "group_sort", "group_sort_fwd", "group_sort_bwd", "group_sort_jvp", "matmul_precision",
           "row_blocks"]


def _cupy_groupsort():
    from . import cupy_groupsort

    return cupy_groupsort


def _numpy_groupsort():
    from . import numpy_groupsort

    return numpy_groupsort


def group_sort(x, group_size, axis, xp):
    """Forward GroupSort without residuals; ``None`` when no fast path applies."""
    if is_cupy_namespace(xp):
        return _cupy_groupsort().group_sort(x, group_size, axis)
    if is_numpy_namespace(xp):
        return _numpy_groupsort().group_sort(x, group_size, axis)
    return None


def group_sort_fwd(x, group_size, axis, xp):
    """``(y, perm)`` of the stable order, in the core's layout; ``None`` without a fast path."""
    if is_cupy_namespace(xp):
        return _cupy_groupsort().group_sort_fwd(x, group_size, axis)
    if is_numpy_namespace(xp):
        return _numpy_groupsort().group_sort_fwd(x, group_size, axis)
    return None


def group_sort_bwd(perm, y_bar, group_size, axis, xp):
    """``P^T y_bar`` for the residual ``perm`` of the fast forward; ``None`` without a fast
    path."""
    if is_cupy_namespace(xp):
        return _cupy_groupsort().group_sort_bwd(perm, y_bar, group_size, axis)
    if is_numpy_namespace(xp):
        return _numpy_groupsort().group_sort_bwd(perm, y_bar, group_size, axis)
    return None


def group_sort_jvp(perm, x_dot, group_size, axis, xp):
    """``P x_dot`` as a gather (CuPy only: NumPy's ``take_along_axis`` is the core's own)."""
    if is_cupy_namespace(xp):
        return _cupy_groupsort().group_sort_jvp(perm, x_dot, group_size, axis)
    return None


def bjorck_steps(a, coeffs, precision, xp, *, reuse=False):
    """The fused products of Björck steps [BJ-11] (:class:`.numpy_bjorck.BjorckSteps`: ``gram``,
    ``step``, ``step_vjp``) for a NumPy ``a`` in the default precision; ``None`` otherwise
    (other namespaces, dtypes, ranks, matrices below ``numpy_bjorck.MIN_N``, no BLAS found),
    and the core's products run."""
    if not is_numpy_namespace(xp) or precision != "default":
        return None
    from . import numpy_bjorck

    return numpy_bjorck.steps(a, coeffs, reuse=reuse)


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


def row_blocks(fn, w, xp):
    """:func:`.numpy_rows.row_blocks` for NumPy arrays; ``None`` for other namespaces."""
    if not is_numpy_namespace(xp):
        return None
    from . import numpy_rows

    return numpy_rows.row_blocks(fn, w)
