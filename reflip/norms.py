"""Operator norms of weight matrices: the quantities the constraints of the paper bound.

All take a matrix ``(m, n)`` or a stack ``(..., m, n)`` and return one value per matrix (a 1-d
array is one row, i.e. a ``1 x n`` matrix). Written to the array API standard.

- :func:`op_norm_2`: ``||W||_2 = max ||Wx||_2 / ||x||_2``, the largest singular value.
- :func:`op_norm_inf`: ``||W||_inf = max ||Wx||_inf / ||x||_inf = max_i sum_j |w_ij|`` [PR-1].
- :func:`norm_p_inf`: ``||W||_{p,inf} = max ||Wx||_inf / ||x||_p = max_i ||w_i||_q``,
  ``1/p + 1/q = 1`` [PR-7].

- :func:`operator_norm` / :func:`operator_norms`: ``||W||_{p->q}`` for the norm pairs of
  Lipschitz networks (``p = q`` in ``{1, 2, inf}``, or ``q = inf``) [NN-3].

It also holds the one copy of the exponent helpers every module uses: :func:`check_p`
(``p`` in ``{1, 2, inf}`` as ``1.0``, ``2.0``, ``math.inf``) and :func:`dual_exponent`.
"""
from __future__ import annotations

import math

from ._backend import get_namespace
from ._validate import check_array, check_real

__all__ = ["op_norm_2", "op_norm_inf", "norm_p_inf", "check_p", "dual_exponent", "check_pq", "operator_norms",
           "operator_norm"]

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

    Returns an array of shape ``w.shape[:-2]`` (0-d for a single matrix or row); NaN for a
    matrix holding NaN or inf (LAPACK's SVD does not converge on those: such matrices are
    replaced by zeros for the SVD, and their norm set to NaN)."""
    xp = get_namespace(w=w)
    w = _as_matrix(w, xp)
    finite = xp.all(xp.isfinite(w), axis=(-2, -1))
    norms = xp.linalg.matrix_norm(xp.where(finite[..., None, None], w, xp.zeros_like(w)), ord=2)
    return xp.where(finite, norms, xp.asarray(math.nan, dtype=norms.dtype))


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


def check_pq(p, q=None):
    """Return the norm pair ``(p, q)`` of a network ``(R^n, l_p) -> (R^m, l_q)`` as floats.

    ``q = None`` means ``q = p``. Each is checked by :func:`reflip.norms.check_p` (``TypeError``
    for a non-number, ``ValueError`` outside ``{1, 2, inf}``); ``p != q`` is supported only with
    ``q = inf`` (first layer ``||W||_{p,inf}`` [PR-7]), ``ValueError`` otherwise.
    """
    p = check_p(p, "p")
    q = p if q is None else check_p(q, "q")
    if p != q and q != math.inf:
        raise ValueError(f"for p != q only q = inf (an l_p to l_inf network, first layer ||W||_(p,inf)) "
                         f"is supported, got p={p}, q={q}")
    return p, q


def operator_norms(w, p, q, xp):
    """``||W||_{p->q}`` of every matrix of a stack ``(..., m, n)``, for a pair returned by
    :func:`check_pq`: ``(2, 2)``: largest singular value; ``(inf, inf)``: max row l1 norm
    [PR-1]; ``(1, 1)``: max column l1 norm; ``(p, inf)``: max row ``l_{p*}`` norm [PR-7].

    A matrix holding NaN or inf has norm NaN [NN-14]: the SVD would raise on it (LAPACK does
    not converge on NaN) and a max of absolute values would turn NaN into a plausible number,
    so such matrices are replaced by zeros for the computation and their result set to NaN.
    """
    finite = xp.all(xp.isfinite(w), axis=(-2, -1))
    w = xp.where(finite[..., None, None], w, xp.zeros_like(w))
    if p == q == 2:
        norms = op_norm_2(w)
    elif p == q == 1:
        norms = op_norm_inf(w.mT)
    else:  # check_pq leaves only q = inf here
        norms = op_norm_inf(w) if p == math.inf else norm_p_inf(w, p)
    return xp.where(finite, norms, xp.asarray(math.nan, dtype=norms.dtype))


def operator_norm(w, p=2, q=None):
    """``||W||_{p->q} = max_x ||W x||_q / ||x||_p`` of one matrix, a Python float [NN-3].

    Parameters
    ----------
    w : array (m, n), float32 or float64; a 1-d array is one row
    p, q : see :func:`check_pq`

    Returns
    -------
    float
        NaN when ``w`` holds NaN or inf [NN-14].
    """
    p, q = check_pq(p, q)
    xp = get_namespace(w=w)
    check_array(w, xp, "w", min_ndim=1)
    if w.ndim > 2:
        raise ValueError(f"w must be one matrix (m, n) or one row (n,), got shape {tuple(w.shape)}")
    return float(operator_norms(w if w.ndim == 2 else w[None, :], p, q, xp))
