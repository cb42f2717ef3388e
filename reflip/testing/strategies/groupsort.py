"""GroupSort cases [GS-1]: group sizes 1..8 and the full width, 0-2 batch axes, any axis."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .common import KINDS, Case, bounded_floats

__all__ = ["group_sort_cases"]


@st.composite
def _group_sort_shape(draw, full_width_only=False, group_sizes=None):
    """(shape, group_size, axis) with group sizes 1..8 and the full width (or only
    ``group_sizes``), 0-2 batch axes."""
    k = draw(st.sampled_from(group_sizes or [1, 2, 3, 4, 5, 8]))
    n_groups = draw(st.integers(1, 4))
    if group_sizes is None and (full_width_only or draw(st.integers(0, 4)) == 0):
        k, n_groups = k * n_groups, 1  # FullSort
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    axis = draw(st.integers(0, len(batch)))
    shape = tuple(batch[:axis]) + (k * n_groups,) + tuple(batch[axis:])
    # Negative axes half of the time.
    if draw(st.booleans()):
        axis -= len(shape)
    return shape, k, axis


@st.composite
def _group_sort_case(draw, dtype, kind, group_sizes=None):
    shape, k, axis = draw(_group_sort_shape(group_sizes=group_sizes))
    params = {"group_size": k, "axis": axis}
    if kind in ("general", "pair"):
        x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype)))
        x2 = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype))) if kind == "pair" else None
        return Case(x, params, x2)
    if kind == "differentiable":
        # Distinct multiples of a power-of-two scale: exact in float32, gaps >= scale.
        scale = 2.0 ** draw(st.integers(-6, 3))
        ints = draw(hnp.arrays(np.int64, shape, elements=st.integers(-1024, 1024), unique=True))
        return Case((ints * scale).astype(dtype), params, max_step=scale / 4)
    if kind == "ties":
        values = st.sampled_from([-1.0, -0.0, 0.0, 0.5, 1.0])
        return Case(draw(hnp.arrays(dtype, shape, elements=values)), params)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def group_sort_cases(dtype, kind, fixed=None):
    """Strategy of GroupSort cases (see the module docstring for ``kind``); ``fixed`` may hold
    ``group_sizes``, the only ones an implementation supports."""
    sizes = (fixed or {}).get("group_sizes")
    return _group_sort_case(np.dtype(dtype), kind, list(sizes) if sizes else None)
