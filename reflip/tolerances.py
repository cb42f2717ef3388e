"""Tolerances derived from the dtype, written down once and used by every check.

The suite never hard-codes a tolerance: it asks for one of these, so a float32 run and a
float64 run are held to the same number of units in the last place.
"""
from __future__ import annotations

import numpy as np

__all__ = ["eps", "exact_rtol", "fd_rtol", "fd_step"]


def eps(dtype) -> float:
    """Machine epsilon of ``dtype`` (accepts NumPy, CuPy or array-API dtypes)."""
    return float(np.finfo(_numpy_dtype(dtype)).eps)


def _numpy_dtype(dtype):
    try:
        return np.dtype(dtype)
    except TypeError:
        # array_api_strict dtypes print as "array_api_strict.float32".
        return np.dtype(str(dtype).rsplit(".", 1)[-1])


def exact_rtol(dtype, n_ops: int = 1) -> float:
    """Relative tolerance for a result reached by ``n_ops`` correctly rounded operations."""
    return 4.0 * n_ops * eps(dtype)


def fd_step(dtype=np.float64) -> float:
    """Central finite-difference step: eps**(1/3) balances truncation and rounding error."""
    return eps(dtype) ** (1.0 / 3.0)


def fd_rtol(dtype=np.float64) -> float:
    """Agreement expected between an exact derivative and a central difference: eps**(1/3)
    times a safety factor of 100 (the truncation error of a smooth function is O(h**2) and the
    rounding error O(eps / h), both O(eps**(2/3)) at the step above)."""
    return 100.0 * eps(dtype) ** (2.0 / 3.0)
