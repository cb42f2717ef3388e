"""What every strategy module shares: the case record, bounded floats and the kinds every
primitive draws (see :mod:`reflip.testing.strategies`)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..._backend import haar_orthogonal

__all__ = ["Case", "bounded_floats", "case_rng", "pick", "KINDS", "matrix_shape", "compose_svd", "svd_matrix"]

KINDS = ("general", "differentiable", "ties", "pair")


class Case(NamedTuple):
    """One drawn case: the input ``x`` (NumPy), the primitive's parameters, a second input
    ``x2`` (``"pair"`` cases, or the point a ``"ties"`` case is moved to) and ``max_step``,
    the largest central-difference step that stays on one smooth piece."""

    x: np.ndarray
    params: dict
    x2: np.ndarray | None = None
    max_step: float | None = None


def bounded_floats(dtype, bound=256.0):
    """Finite floats in [-bound, bound] (bound a power of two: exact in float32)."""
    return st.floats(-bound, bound, width=np.dtype(dtype).itemsize * 8, allow_nan=False,
                     allow_infinity=False, allow_subnormal=False)


def case_rng(draw):
    """A NumPy generator seeded by one hypothesis draw: the entries of a constructed case come
    from it (one draw per case keeps generation fast)."""
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def pick(draw, fixed, name, choices):
    """``fixed[name]`` when the implementation fixes that parameter, else a draw from ``choices``."""
    return fixed[name] if name in fixed else draw(st.sampled_from(choices))


@st.composite
def matrix_shape(draw):
    """``(*batch, m, n)`` for the orthonormalizing iterations, 1 x 1 matrices included: they have
    no rotational directions, so their derivative is 0 (Frobenius scaling) or collapses to
    rounding noise within a few iterations (a superattracting fixed point, [BJ-5]), which the
    absolute floor of the derivative checks must absorb [AU-2]."""
    batch = draw(st.lists(st.integers(1, 2), max_size=2))
    return (*batch, draw(st.integers(1, 6)), draw(st.integers(1, 6)))


def compose_svd(shape, s, rng, scale=1.0):
    """``scale * U diag(s) V^T`` with Haar ``U``, ``V`` from ``rng``; ``s`` of shape ``(*batch, r)``."""
    *batch, m, n = shape
    r = min(m, n)
    u = haar_orthogonal(rng, m, batch=batch)[..., :, :r]
    v = haar_orthogonal(rng, n, batch=batch)[..., :, :r]
    return scale * ((u * s[..., None, :]) @ np.swapaxes(v, -1, -2))


@st.composite
def svd_matrix(draw, shape, singular_values, scale=1.0):
    """:func:`compose_svd` with hypothesis-drawn singular values and a drawn seed."""
    *batch, m, n = shape
    s = draw(hnp.arrays(np.float64, (*batch, min(m, n)), elements=singular_values))
    return compose_svd(shape, s, case_rng(draw), scale)
