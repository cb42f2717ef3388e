"""What every strategy module shares: the case record, bounded floats and the kinds every
primitive draws (see :mod:`reflip.testing.strategies`)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

__all__ = ["Case", "bounded_floats", "case_rng", "pick", "KINDS"]

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
