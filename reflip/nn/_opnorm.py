"""Operator norms ``||W||_{p->q}`` of weight matrices for the norm pairs of Lipschitz networks
[NN-3].

These are matrix norms, not network code: they sit here, below both :mod:`reflip.nn.layers`
(a Dense layer's Lipschitz constant) and :mod:`reflip.nn.lipschitz` (the network bounds), so
that neither imports the other. Their natural home is :mod:`reflip.norms`, next to the norms
they dispatch to; until they move there, :mod:`reflip.nn.lipschitz` re-exports
:func:`operator_norm` as its public name.
"""
from __future__ import annotations

import math

from .._validate import check_array
from ..norms import check_p, norm_p_inf, op_norm_2, op_norm_inf
from ._arrays import namespace

__all__ = ["check_pq", "operator_norms", "operator_norm"]


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
    xp = namespace(w=w)
    check_array(w, xp, "w", min_ndim=1)
    if w.ndim > 2:
        raise ValueError(f"w must be one matrix (m, n) or one row (n,), got shape {tuple(w.shape)}")
    return float(operator_norms(w if w.ndim == 2 else w[None, :], p, q, xp))
