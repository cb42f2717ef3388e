"""Hypothesis strategies drawing the cases of the property suite.

Every strategy factory has the signature ``factory(dtype, kind) -> strategy of Case`` where
``dtype`` is ``"float32"`` or ``"float64"`` and ``kind`` names the sort of input a claim needs:

``"general"``
    bounded floats (no NaN, inf or subnormals; bounds exactly representable in float32).
``"differentiable"``
    inputs where the primitive is differentiable, with ``Case.max_step`` the largest central
    difference step that stays on one smooth piece (GroupSort: tie-free, gaps >= 1/16 of the
    scale).
``"ties"``
    inputs on the non-differentiable set (GroupSort: many exact ties, signed zeros included).
``"pair"``
    ``Case.x2`` is a second input of the same shape (Lipschitz checks).

Cases are NumPy arrays; the engine moves them to the backend under test.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["Case", "group_sort_cases", "bounded_floats", "KINDS"]

KINDS = ("general", "differentiable", "ties", "pair")


class Case(NamedTuple):
    x: np.ndarray
    params: dict
    x2: np.ndarray | None = None
    max_step: float | None = None


def bounded_floats(dtype, bound=256.0):
    """Finite floats in [-bound, bound] (bound a power of two: exact in float32)."""
    return st.floats(-bound, bound, width=np.dtype(dtype).itemsize * 8, allow_nan=False,
                     allow_infinity=False, allow_subnormal=False)


@st.composite
def _group_sort_shape(draw, full_width_only=False):
    """(shape, group_size, axis) with group sizes 1..8 and the full width, 0-2 batch axes."""
    k = draw(st.sampled_from([1, 2, 3, 4, 5, 8]))
    n_groups = draw(st.integers(1, 4))
    if full_width_only or draw(st.integers(0, 4)) == 0:
        k, n_groups = k * n_groups, 1  # FullSort
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    axis = draw(st.integers(0, len(batch)))
    shape = tuple(batch[:axis]) + (k * n_groups,) + tuple(batch[axis:])
    # Negative axes half of the time.
    if draw(st.booleans()):
        axis -= len(shape)
    return shape, k, axis


@st.composite
def _group_sort_case(draw, dtype, kind):
    shape, k, axis = draw(_group_sort_shape())
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


def group_sort_cases(dtype, kind):
    """Strategy of GroupSort cases (see the module docstring for ``kind``)."""
    return _group_sort_case(np.dtype(dtype), kind)
