"""Converters between reflip's GroupSort layout and the layouts other code ports from.

reflip's layout [GS-1]: contiguous groups of ``group_size`` along ``axis``, each sorted
ascending; MaxMin pairs are ``[min, max]``. Every MaxMin layout in circulation is a fixed
permutation of the input followed by reflip's MaxMin and a fixed permutation of the output
[GS-9]::

    foreign(x) = max_min(x[..., in_idx])[..., out_idx]

with ``(in_idx, out_idx) = max_min_indices(layout, n)``. The layouts:

``"contiguous_min_max"``
    reflip's: pairs ``(2i, 2i+1)``, output ``[min, max]``.
``"contiguous_max_min"``
    pairs ``(2i, 2i+1)``, output ``[max, min]``.
``"maxes_then_mins"``
    the paper code's ``MaxMin``: pairs ``(2i, 2i+1)``, output all maxima, then all minima.
``"half_split_max_min"`` / ``"half_split_min_max"``
    pairs ``(i, i + n/2)``, output ``[maxima | minima]`` / ``[minima | maxima]``.

The concatenation ``[relu(x), relu(-x)]`` that some libraries call MaxMin doubles the width and
is not a permutation of MaxMin: no layout here describes it.
"""
from __future__ import annotations

from ._backend import get_namespace
from ._validate import check_array, check_axis, check_choice, check_int
from .groupsort import max_min

__all__ = [
    "MAX_MIN_LAYOUTS",
    "max_min_indices",
    "max_min_layout",
    "to_reflip_layout",
    "group_size_from_num_groups",
    "num_groups_from_group_size",
]

MAX_MIN_LAYOUTS = (
    "contiguous_min_max",
    "contiguous_max_min",
    "maxes_then_mins",
    "half_split_max_min",
    "half_split_min_max",
)


def _check_width(n):
    n = check_int(n, "n", minimum=2)
    if n % 2:
        raise ValueError(f"MaxMin needs an even width n, got n={n}")
    return n


def max_min_indices(layout, n):
    """Index lists ``(in_idx, out_idx)`` with ``foreign(x) = max_min(x[in_idx])[out_idx]`` [GS-9].

    Parameters
    ----------
    layout : str
        One of :data:`MAX_MIN_LAYOUTS`.
    n : int
        The (even) width of the feature axis.

    Returns
    -------
    in_idx, out_idx : list of int
        Permutations of ``range(n)``.
    """
    layout = check_choice(layout, "layout", MAX_MIN_LAYOUTS)
    n = _check_width(n)
    h = n // 2
    identity = list(range(n))
    # reflip's output index of the min / max of pair p.
    lo = [2 * p for p in range(h)]
    hi = [2 * p + 1 for p in range(h)]
    if layout == "contiguous_min_max":
        return identity, identity
    if layout == "contiguous_max_min":
        return identity, [i ^ 1 for i in identity]
    if layout == "maxes_then_mins":
        return identity, hi + lo
    # Half-split pairs (p, p + h): interleave the halves so that they become contiguous pairs.
    interleave = [p // 2 + (p % 2) * h for p in range(n)]
    if layout == "half_split_max_min":
        return interleave, hi + lo
    return interleave, lo + hi  # "half_split_min_max"


def _take(x, idx, axis, xp):
    return xp.take(x, xp.asarray(idx, dtype=xp.int64, device=_device(x)), axis=axis)


def _device(x):
    return getattr(x, "device", None)


def max_min_layout(x, layout, *, axis=-1):
    """MaxMin in a foreign ``layout``, computed through reflip's MaxMin [GS-9].

    Use it to compare a port against reflip, or to reproduce another library's outputs.
    """
    xp = get_namespace(x=x)
    check_array(x, xp, "x", min_ndim=1, exact=True, what=" (the feature axis)")
    axis = check_axis(axis, x.ndim)
    in_idx, out_idx = max_min_indices(layout, x.shape[axis])
    return _take(max_min(_take(x, in_idx, axis, xp), axis=axis), out_idx, axis, xp)


def to_reflip_layout(y, layout, *, axis=-1):
    """Reorder a foreign MaxMin output so that ``y`` reads as reflip's output on the same
    pairs: ``to_reflip_layout(foreign(x)) == max_min(x[..., in_idx])``.

    For the contiguous layouts ``in_idx`` is the identity, so this equals ``max_min(x)``.
    """
    xp = get_namespace(y=y)
    # Any real floating dtype, like max_min: the reordering moves entries and is exact [GS-9].
    check_array(y, xp, "y", min_ndim=1, exact=True, what=" (the feature axis)")
    axis = check_axis(axis, y.ndim)
    _, out_idx = max_min_indices(layout, y.shape[axis])
    inverse = [0] * len(out_idx)
    for position, source in enumerate(out_idx):
        inverse[source] = position
    return _take(y, inverse, axis, xp)


def group_size_from_num_groups(n, num_groups):
    """Group size for code that passes the NUMBER OF GROUPS (the paper code's ``num_units``).

    ``group_sort(x, num_units)`` in the authors' code sorts groups of ``n // num_units``: a
    port that passes ``num_units`` as reflip's ``group_size`` is wrong unless
    ``num_units**2 == n`` [GS-9].
    """
    n = check_int(n, "n", minimum=1)
    num_groups = check_int(num_groups, "num_groups", minimum=1)
    if n % num_groups:
        raise ValueError(f"num_groups={num_groups} must divide the width n={n}")
    return n // num_groups


def num_groups_from_group_size(n, group_size):
    """Inverse of :func:`group_size_from_num_groups`."""
    return group_size_from_num_groups(n, group_size)
