"""Operator norms of weight matrices: the quantities the constraints of the paper bound.

All take a matrix ``(m, n)`` or a stack ``(..., m, n)`` and return one value per matrix (a 1-d
array is one row, i.e. a ``1 x n`` matrix). Written to the array API standard.

- :func:`op_norm_2`: ``||W||_2 = max ||Wx||_2 / ||x||_2``, the largest singular value.
- :func:`op_norm_inf`: ``||W||_inf = max ||Wx||_inf / ||x||_inf = max_i sum_j |w_ij|`` [PR-1].
- :func:`norm_p_inf`: ``||W||_{p,inf} = max ||Wx||_inf / ||x||_p = max_i ||w_i||_q``,
  ``1/p + 1/q = 1`` [PR-7].

It also holds the one copy of the exponent helpers every module uses: :func:`check_p`
(``p`` in ``{1, 2, inf}`` as ``1.0``, ``2.0``, ``math.inf``) and :func:`dual_exponent`.
"""
from __future__ import annotations

import math

from ._backend import get_namespace
from ._validate import check_array, check_real

__all__ = ["op_norm_2", "op_norm_inf", "norm_p_inf", "check_p", "dual_exponent"]

#: The exponents of the paper's norms, and their duals (``1/p + 1/q = 1``) [PR-7].
_DUAL = {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}


def check_p(p, name="p"):
    """Return the exponent ``p`` of an l_p norm as ``1.0``, ``2.0`` or ``math.inf``.

    ``TypeError`` unless ``p`` is a real number (Python or NumPy; bools and strings such as
    ``"inf"`` are refused: pass ``math.inf``), ``ValueError`` for any other value. One return
    type (``float``) so that ``p`` compares, hashes and prints the same everywhere.
    """
    try:
        p = check_real(p, name, finite=False)
    except ValueError:  # NaN, the one value check_real refuses here: reported like any other
        p = math.nan
    if p not in _DUAL:
        raise ValueError(f"{name} must be 1, 2 or inf (math.inf), got {p!r}")
    return p


def dual_exponent(p, name="p"):
    """The dual exponent ``q`` of ``p`` (``1/p + 1/q = 1``) for ``p`` in ``{1, 2, inf}``
    [PR-7]: ``1 -> math.inf``, ``2 -> 2.0``, ``inf -> 1.0`` (always a ``float``).

    ``p`` is checked by :func:`check_p` (``name`` names it in the error)."""
    return _DUAL[check_p(p, name)]


def _as_matrix(w, xp):
    check_array(w, xp, "w", min_ndim=1, what=" (rows along the last axis)")
    return w[None, :] if w.ndim == 1 else w


def op_norm_2(w):
    """Largest singular value ``sigma_max(W)`` of every matrix of the stack (an SVD, via
    ``xp.linalg.matrix_norm(ord=2)``; exact up to rounding, unlike a power iteration).

    Returns an array of shape ``w.shape[:-2]`` (0-d for a single matrix or row)."""
    xp = get_namespace(w=w)
    w = _as_matrix(w, xp)
    return xp.linalg.matrix_norm(w, ord=2)


def op_norm_inf(w):
    """``||W||_inf``: the largest l1 norm of a row, ``max_i sum_j |w_ij|`` [PR-1]; the
    operator norm from ``(R^n, l_inf)`` to ``(R^m, l_inf)``."""
    xp = get_namespace(w=w)
    w = _as_matrix(w, xp)
    return xp.max(xp.sum(xp.abs(w), axis=-1), axis=-1)


def norm_p_inf(w, p):
    """``||W||_{p,inf} = max_i ||w_i||_q`` with ``1/p + 1/q = 1`` [PR-7]: the operator norm
    from ``(R^n, l_p)`` to ``(R^m, l_inf)``, which the first layer of the paper's networks
    bounds (claim C7).

    Parameters
    ----------
    w : array (..., m, n) or (n,)
    p : float in [1, inf]
        ``p = inf`` gives :func:`op_norm_inf`; ``p = 1`` the largest ``|w_ij|``.
    """
    try:
        p = check_real(p, "p", minimum=1.0, finite=False)
    except ValueError:  # NaN or below 1: one message for every wrong value
        raise ValueError(f"p must be a number in [1, inf], got {float(p)!r}") from None
    q = 1.0 if p == math.inf else (math.inf if p == 1.0 else p / (p - 1.0))
    xp = get_namespace(w=w)
    w = _as_matrix(w, xp)
    return xp.max(xp.linalg.vector_norm(w, ord=q, axis=-1), axis=-1)
