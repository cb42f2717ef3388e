"""Losses with hand-written backward passes [NN-7], in the primitives' calling convention::

    <loss>_fwd :: (outputs..., **params) -> (value, residuals)    # value: 0-d array
    <loss>_bwd :: (residuals, value_bar) -> outputs_bar            # value_bar: a scalar

- :func:`kr_dual_fwd`: the Kantorovich-Rubinstein dual loss ``mean f(Q) - mean f(P)``; its
  negative is the Wasserstein-1 estimate of a 1-Lipschitz critic ``f``.
- :func:`multi_margin_fwd`: the multi-class hinge, PyTorch's ``multi_margin_loss`` with
  ``p = 1``: ``mean_i sum_{j != y_i} max(0, m - f_{i y_i} + f_{ij}) / C``.
- :func:`cross_entropy_fwd`: softmax cross-entropy, ``mean_i (logsumexp(f_i) - f_{i y_i})``.

Labels are integer arrays of shape ``(batch,)`` on the logits' backend with values in
``[0, C)``; a label out of range raises ``ValueError`` (one host read), a non-integer dtype
``TypeError``.

NaN [NN-14]: a NaN output gives a NaN loss (the mean over the batch is undefined) and a NaN
row in the cotangent of its row: the hinge's "active" indicator, ``NaN > 0``, would read 0
and pass a plausible zero gradient.
"""
from __future__ import annotations

from typing import NamedTuple

from array_api_compat import is_array_api_obj

from .._backend import get_namespace
from .._validate import check_floating, check_real

__all__ = [
    "kr_dual_fwd", "kr_dual_bwd", "kr_dual",
    "multi_margin_fwd", "multi_margin_bwd", "multi_margin",
    "cross_entropy_fwd", "cross_entropy_bwd", "cross_entropy",
    "LOSSES",
]


def _check_scores(f, xp, name):
    check_floating(f, xp, name)
    if f.ndim not in (1, 2) or (f.ndim == 2 and f.shape[1] != 1) or f.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n,) or (n, 1) with n >= 1 (scalar critic outputs), "
                         f"got {tuple(f.shape)}")


def _check_logits_labels(logits, labels, xp):
    check_floating(logits, xp, "logits")
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (batch, classes) with batch >= 1 and classes >= 2, "
                         f"got {tuple(logits.shape)}")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must be an integer array, got dtype {labels.dtype}")
    if tuple(labels.shape) != (logits.shape[0],):
        raise ValueError(f"labels must have shape ({logits.shape[0]},) to match logits {tuple(logits.shape)}, "
                         f"got {tuple(labels.shape)}")
    c = logits.shape[1]
    lo, hi = int(xp.min(labels)), int(xp.max(labels))
    if lo < 0 or hi >= c:
        raise ValueError(f"labels must lie in [0, {c}) for {c} classes, got values from {lo} to {hi}")


def _one_hot(labels, c, dtype, xp):
    return xp.astype(labels[:, None] == xp.arange(c, dtype=labels.dtype)[None, :], dtype)


def _check_value_bar(value_bar):
    """The cotangent of the scalar loss as a Python float (a 0-d real array is read back)."""
    if is_array_api_obj(value_bar) and value_bar.ndim == 0:
        xp = get_namespace(value_bar)
        check_floating(value_bar, xp, "value_bar")
        value_bar = float(value_bar)
    return check_real(value_bar, "value_bar")


# ----------------------------------------------------------------------------------------------
# Kantorovich-Rubinstein dual [NN-7]


class KRResiduals(NamedTuple):
    p_shape: tuple
    q_shape: tuple
    dtype: object
    xp: object


def kr_dual_fwd(f_p, f_q):
    """Kantorovich-Rubinstein dual loss ``mean f(Q) - mean f(P)`` [NN-7].

    For a 1-Lipschitz critic ``f``, ``mean f(P) - mean f(Q) <= W1(P, Q)``
    (Kantorovich-Rubinstein duality), so minimizing this loss maximizes the lower bound; the
    Wasserstein estimate is ``-loss``.

    Parameters
    ----------
    f_p, f_q : arrays (n,) or (n, 1)
        Critic outputs on samples of P and of Q (sizes may differ).

    Returns
    -------
    loss : 0-d array
    residuals : KRResiduals
    """
    xp = get_namespace(f_p=f_p, f_q=f_q)
    _check_scores(f_p, xp, "f_p")
    _check_scores(f_q, xp, "f_q")
    loss = xp.mean(f_q) - xp.mean(f_p)
    return loss, KRResiduals(tuple(f_p.shape), tuple(f_q.shape), f_p.dtype, xp)


def kr_dual_bwd(residuals, value_bar=1.0):
    """``(f_p_bar, f_q_bar) = (-value_bar / n_p, value_bar / n_q)`` broadcast to the inputs'
    shapes [NN-7]."""
    g = _check_value_bar(value_bar)
    p_shape, q_shape, dtype, xp = residuals
    return (xp.full(p_shape, -g / p_shape[0], dtype=dtype), xp.full(q_shape, g / q_shape[0], dtype=dtype))


def kr_dual(f_p, f_q):
    """:func:`kr_dual_fwd` without residuals."""
    return kr_dual_fwd(f_p, f_q)[0]


# ----------------------------------------------------------------------------------------------
# Multi-class hinge [NN-7]


class MultiMarginResiduals(NamedTuple):
    active: object      # (n, C): 1 where j != y and m - f_y + f_j > 0
    one_hot: object     # (n, C)


def multi_margin_fwd(logits, labels, *, margin=1.0):
    """Multi-class hinge loss, the definition of PyTorch's
    ``multi_margin_loss(logits, labels, p=1, margin=margin)`` [NN-7]:

    .. math:: \\ell = \\frac{1}{n} \\sum_i \\frac{1}{C} \\sum_{j \\neq y_i}
              \\max(0,\\; m - f_{i y_i} + f_{ij})

    The paper's robust classifiers use ``m = 0.3`` on logits scaled by ``L`` (a
    :class:`~reflip.nn.Scale` last layer).

    Parameters
    ----------
    logits : array (batch, C), C >= 2
    labels : integer array (batch,), values in [0, C)
    margin : float >= 0
    """
    xp = get_namespace(logits=logits, labels=labels)
    _check_logits_labels(logits, labels, xp)
    margin = check_real(margin, "margin", minimum=0.0)
    n, c = logits.shape
    one_hot = _one_hot(labels, c, logits.dtype, xp)
    f_y = xp.sum(logits * one_hot, axis=1, keepdims=True)
    hinge = (margin - f_y) + logits
    active = xp.astype(hinge > 0, logits.dtype) * (1 - one_hot)
    # A row holding NaN has no subgradient: NaN in every entry of its active terms [NN-14].
    nan_rows = xp.any(xp.isnan(hinge), axis=1, keepdims=True)
    active = xp.where(nan_rows, xp.asarray(xp.nan, dtype=logits.dtype), active)
    loss = xp.sum(hinge * active) / (n * c)
    return loss, MultiMarginResiduals(active, one_hot)


def multi_margin_bwd(residuals, value_bar=1.0):
    """``logits_bar_ij = g/(n C) [a_ij - 1(j = y_i) sum_k a_ik]``, ``a`` the active terms [NN-7]."""
    g = _check_value_bar(value_bar)
    active, one_hot = residuals
    xp = get_namespace(active)
    n, c = active.shape
    count = xp.sum(active, axis=1, keepdims=True)
    return (active - one_hot * count) * (g / (n * c))


def multi_margin(logits, labels, *, margin=1.0):
    """:func:`multi_margin_fwd` without residuals."""
    return multi_margin_fwd(logits, labels, margin=margin)[0]


# ----------------------------------------------------------------------------------------------
# Softmax cross-entropy [NN-7]


class CrossEntropyResiduals(NamedTuple):
    softmax: object
    one_hot: object


def cross_entropy_fwd(logits, labels):
    """Softmax cross-entropy ``mean_i (logsumexp_j f_ij - f_{i y_i})`` [NN-7], computed with
    the row maximum subtracted (no overflow for any finite logits).

    Parameters
    ----------
    logits : array (batch, C), C >= 2
    labels : integer array (batch,), values in [0, C)
    """
    xp = get_namespace(logits=logits, labels=labels)
    _check_logits_labels(logits, labels, xp)
    n, c = logits.shape
    one_hot = _one_hot(labels, c, logits.dtype, xp)
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(shifted)
    total = xp.sum(e, axis=1, keepdims=True)
    loss = xp.mean(xp.log(total[:, 0]) - xp.sum(shifted * one_hot, axis=1))
    return loss, CrossEntropyResiduals(e / total, one_hot)


def cross_entropy_bwd(residuals, value_bar=1.0):
    """``logits_bar = g (softmax - onehot) / n`` [NN-7]."""
    g = _check_value_bar(value_bar)
    softmax, one_hot = residuals
    return (softmax - one_hot) * (g / softmax.shape[0])


def cross_entropy(logits, labels):
    """:func:`cross_entropy_fwd` without residuals."""
    return cross_entropy_fwd(logits, labels)[0]


LOSSES = {
    "multi_margin": (multi_margin_fwd, multi_margin_bwd),
    "cross_entropy": (cross_entropy_fwd, cross_entropy_bwd),
}
