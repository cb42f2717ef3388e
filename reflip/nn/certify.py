"""Certified robustness of Lipschitz classifiers (claim C8) [CT-2] [CT-3].

With margin ``M = f_y(x) - max_{j != y} f_j(x)`` and ``f`` ``L``-Lipschitz from ``(R^n, l_p)``
to ``(R^m, l_q)``, every ``x'`` with ``||x' - x||_p <= eps`` keeps the label ``y`` when

.. math:: M > c_q L \\varepsilon, \\qquad c_q = 2^{1 - 1/q}:
          \\; c_2 = \\sqrt 2, \\; c_\\infty = 2, \\; c_1 = 1,

so the certified radius is ``M / (c_q L)`` [CT-2] [CT-3] [CT-4], and no attack can break a
certified point [CT-6]; :func:`check_certificates` runs :func:`pgd_attack` to test exactly that.

NaN [NN-14]: a row of logits holding NaN has margin and radius NaN, and counts as neither
correct nor certified (every comparison with NaN is false).
"""
from __future__ import annotations

import math

import numpy as np
from array_api_compat import is_array_api_obj

from .._backend import get_namespace, to_numpy
from .._validate import check_real
from ..norms import check_p
from .attack import margins, pgd_attack
from .model import check_model

__all__ = ["margins", "certified_radius", "certified_accuracy", "check_certificates", "pgd_attack",
           "output_constant"]


def output_constant(q):
    """``c_q = 2^{1 - 1/q} = max |a - b| / ||(a, b)||_q``: how much a change of the output of
    ``l_q`` norm 1 can move a margin ``f_y - f_j`` [CT-2]. ``sqrt 2`` for ``q = 2``, 2 for
    ``q = inf``, 1 for ``q = 1``."""
    q = check_p(q, "q")
    return 2.0 if q == math.inf else 2.0 ** (1.0 - 1.0 / q)


def certified_radius(logits, labels, L, p=2, q=None):
    """Per-example certified radius ``max(M, 0) / (c_q L)`` [CT-2] [CT-3] [CT-4].

    Example ``i`` is certified robust in the ``l_p`` ball of radius ``eps`` iff
    ``radius_i > eps`` (strict: ``M > c_q L eps``); a misclassified or tied example has
    radius 0 and is certified nowhere [CT-5]. A row of ``logits`` holding NaN has radius NaN,
    which no comparison ``radius > eps`` accepts: neither correct nor certified [NN-14].

    Parameters
    ----------
    logits : array (batch, C)
    labels : integer array (batch,)
    L : float > 0
        Lipschitz constant of the logits from ``l_p`` to ``l_q``, e.g.
        :func:`reflip.nn.lipschitz.upper_bound` (Scale layers included).
    p : {1, 2, math.inf}
        Norm of the ball (and of the network's input).
    q : {1, 2, math.inf} or None
        Norm of the output in the Lipschitz statement (``None``: ``q = p``). The constant
        depends on ``q`` only: ``sqrt 2`` for ``q = 2`` (``margin / (sqrt 2 L)``), 2 for
        ``q = inf`` (``margin / (2 L)``).
    """
    check_p(p)
    c = output_constant(p if q is None else q)
    L = check_real(L, "L", minimum=0.0, strict=True)
    m = margins(logits, labels)
    xp = get_namespace(m)
    return xp.maximum(m, 0.0) / (c * L)


def certified_accuracy(logits, labels, L, eps, p=2, q=None):
    """Fraction of examples certified at every radius in ``eps``: ``mean(radius > eps)``
    [CT-5]; at ``eps = 0`` it is the accuracy (ties count as errors).

    Returns
    -------
    numpy.ndarray of float, one per ``eps`` (a float when ``eps`` is a scalar)
    """
    eps_arr, scalar = _check_eps(eps)
    radius = to_numpy(certified_radius(logits, labels, L, p, q))
    # A NaN radius (a NaN logit row [NN-14]) compares False: neither correct nor certified.
    acc = (radius[None, :] > eps_arr[:, None]).mean(axis=1)
    return float(acc[0]) if scalar else acc


def _check_eps(eps):
    """``(eps as a 1-d float64 NumPy array, whether eps was a scalar)``: one radius (a real
    number) or a 1-d sequence/array of them, each finite and >= 0."""
    if is_array_api_obj(eps):
        eps = to_numpy(eps)
    if isinstance(eps, np.ndarray) and eps.ndim == 0 and eps.dtype.kind in "iuf":
        eps = eps.item()
    if np.ndim(eps) == 0:
        return np.array([check_real(eps, "eps", minimum=0.0)]), True
    arr = np.asarray(eps) if isinstance(eps, (list, tuple, np.ndarray)) else None
    if arr is None or arr.dtype.kind not in "iuf":
        raise TypeError(f"eps must be a real number or a 1-d sequence of real numbers, got "
                        f"{type(eps).__name__}" + ("" if arr is None else f" of dtype {arr.dtype}"))
    arr = arr.astype(np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"eps must be one radius or a non-empty 1-d sequence of radii, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"eps must hold finite numbers >= 0, got {eps!r}")
    return arr, False


def check_certificates(model, params, x, labels, eps, L, p=2, q=None, **attack_options):
    """Attack every example with :func:`pgd_attack` at radius ``eps`` and report the certified
    ones it broke: a sound certificate leaves none [CT-6].

    Returns
    -------
    dict
        ``correct``: number classified correctly (margin > 0) at ``x``; ``certified``: number
        certified at ``eps``; ``broken``: correct examples the attack made misclassified (or
        tied); ``broken_certified``: indices (NumPy) of examples both certified and broken —
        empty unless a certificate or ``L`` is wrong; ``worst_margin``: smallest margin found
        among certified examples. A row of ``x`` holding NaN counts as neither correct nor
        certified (its margin and radius are NaN) [NN-14].
    """
    eps = check_real(eps, "eps", minimum=0.0)
    frozen, fparams = check_model(model).freeze(params)
    logits = frozen(fparams, x)
    radius = to_numpy(certified_radius(logits, labels, L, p, q))
    correct = to_numpy(margins(logits, labels)) > 0
    x_adv = pgd_attack(frozen, fparams, x, labels, eps, p, **attack_options)
    m_adv = to_numpy(margins(frozen(fparams, x_adv), labels))
    certified = radius > eps
    broken = correct & (m_adv <= 0)
    return {"eps": float(eps), "correct": int(correct.sum()), "certified": int(certified.sum()),
            "broken": int(broken.sum()),
            "broken_certified": np.flatnonzero(certified & broken),
            "worst_margin": float(m_adv[certified].min()) if certified.any() else math.inf}
