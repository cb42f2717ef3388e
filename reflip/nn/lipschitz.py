"""Lipschitz constants of a network: the certified upper bound, empirical lower bounds, and the
diagnostics of claims C2 and C3 (gradient norms, ReLU unit activity).

For ``f : (R^n, l_p) -> (R^m, l_q)`` (``q = p`` unless given):

- :func:`upper_bound`: ``prod_k ||W_k||`` times the Scale factors, with the first Dense layer's
  norm from ``l_p`` to ``l_q`` and the later ones from ``l_q`` to ``l_q``; activations are
  1-Lipschitz in every ``l_p`` [NN-3]. A certificate: ``||f(x) - f(x')||_q <= U ||x - x'||_p``.
- :func:`local_lipschitz`: ``||J_f(x)||_{p->q}`` per example; its maximum over data,
  :func:`gradient_lower_bound`, and :func:`pair_lower_bound` (the largest ratio
  ``||f(x) - f(x')||_q / ||x - x'||_p`` over sampled pairs) are lower bounds [NN-4].
- :func:`input_gradient_norms`: ``||grad_x f(x)||_{p*}`` (the dual norm) for a scalar output,
  the quantity claim C2 says is 1 almost everywhere for orthonormal GroupSort networks with a
  unit last row [NN-5], and ReLU networks push below 1 (C3) [NN-6].
- :func:`unit_activity`: fractions of ReLU units never / always active on a data set [NN-6].
"""
from __future__ import annotations

import math

import numpy as np

from .._backend import get_namespace
from ..norms import norm_p_inf, op_norm_2, op_norm_inf
from ..projections import check_p, dual_exponent
from .layers import Activation, Dense

__all__ = [
    "operator_norm",
    "upper_bound",
    "jacobians",
    "local_lipschitz",
    "gradient_lower_bound",
    "input_gradients",
    "input_gradient_norms",
    "pair_ratios",
    "pair_lower_bound",
    "unit_activity",
    "describe",
]


def _check_pq(p, q):
    p = check_p(p, "p")
    q = p if q is None else check_p(q, "q")
    if p != q and q != math.inf:
        raise ValueError(f"for p != q only q = inf (an l_p to l_inf network, first layer ||W||_(p,inf)) "
                         f"is supported, got p={p}, q={q}")
    return p, q


def _operator_norms(w, p, q):
    """``||W||_{p->q}`` of every matrix of a stack, for the pairs of :func:`_check_pq`:
    ``(2, 2)``: largest singular value; ``(inf, inf)``: max row l1 norm [PR-1]; ``(1, 1)``:
    max column l1 norm; ``(p, inf)``: max row ``l_{p*}`` norm [PR-7]."""
    if p == q == 2:
        return op_norm_2(w)
    if p == q == 1:
        return op_norm_inf(w.mT)
    if q == math.inf:
        return op_norm_inf(w) if p == math.inf else norm_p_inf(w, p)
    raise ValueError(f"unsupported norms p={p}, q={q}")


def operator_norm(w, p=2, q=None):
    """``||W||_{p->q} = max_x ||W x||_q / ||x||_p`` of one matrix, a Python float [NN-3]."""
    p, q = _check_pq(p, q)
    return float(_operator_norms(w, p, q))


def upper_bound(model, params, p=2, q=None):
    """Certified Lipschitz constant of ``model`` from ``(R^n, l_p)`` to ``(R^m, l_q)`` [NN-3]:

    .. math:: U = \\prod_k \\|W_k^{eff}\\|_{r_k \\to q} \\prod_s L_s,
              \\qquad r_1 = p, \\; r_k = q \\; (k > 1)

    over the Dense layers ``k`` and Scale layers ``s``; every activation is 1-Lipschitz in
    every ``l_p`` norm [GS-2]. Norms are computed exactly from ``W_eff`` (an SVD for ``l_2``),
    not assumed from the constraint, so the bound holds whether or not Björck converged.

    Parameters
    ----------
    p : {1, 2, math.inf}
    q : {1, 2, math.inf} or None
        ``None``: ``q = p``. ``q != p`` only with ``q = inf``.

    Returns
    -------
    float
    """
    p, q = _check_pq(p, q)
    bound, first = 1.0, True
    for layer, par in zip(model.layers, params):
        if isinstance(layer, Dense):
            bound *= layer.lipschitz(par, p if first else q, q)
            first = False
        else:
            bound *= layer.lipschitz(par, q, q)
    return bound


def jacobians(model, params, x):
    """Input Jacobians ``J_f(x_i)``, shape ``(batch, out_features, in_features)``: one forward
    pass and ``out_features`` input-only backward passes from its residuals [NN-2]."""
    y, res = model.forward(params, x)
    xp = get_namespace(y)
    eye = xp.eye(y.shape[1], dtype=y.dtype)
    rows = [model.backward(res, xp.broadcast_to(eye[j:j + 1, :], y.shape), input_only=True)[0]
            for j in range(y.shape[1])]
    return xp.stack(rows, axis=1)


def local_lipschitz(model, params, x, p=2, q=None):
    """``||J_f(x_i)||_{p->q}`` for every example: the local Lipschitz constant where ``f`` is
    differentiable; every value is a lower bound on the global constant [NN-4]."""
    p, q = _check_pq(p, q)
    return _operator_norms(jacobians(model, params, x), p, q)


def gradient_lower_bound(model, params, x, p=2, q=None):
    """``max_i ||J_f(x_i)||_{p->q}``, a lower bound on the Lipschitz constant [NN-4]."""
    xp = get_namespace(x)
    return float(xp.max(local_lipschitz(model, params, x, p, q)))


def _cotangent(y, output, xp):
    n, m = y.shape
    if output is None:
        if m != 1:
            raise ValueError(f"the model has {m} outputs: pass output= (an index, or one index per example)")
        return xp.ones_like(y)
    if isinstance(output, int) and not isinstance(output, bool):
        if not 0 <= output < m:
            raise ValueError(f"output must be in [0, {m}), got {output}")
        return xp.broadcast_to(xp.astype(xp.arange(m) == output, y.dtype)[None, :], y.shape)
    if not xp.isdtype(output.dtype, "integral") or tuple(output.shape) != (n,):
        raise ValueError(f"output must be an int or an integer array of shape ({n},), got {output!r}")
    if int(xp.min(output)) < 0 or int(xp.max(output)) >= m:
        raise ValueError(f"output indices must lie in [0, {m})")
    return xp.astype(output[:, None] == xp.arange(m, dtype=output.dtype)[None, :], y.dtype)


def input_gradients(model, params, x, output=None):
    """``grad_x f_j(x_i)`` for every example, shape ``(batch, in_features)``.

    Parameters
    ----------
    output : None, int, or integer array (batch,)
        Which output to differentiate: ``None`` for a scalar model, one index for all
        examples, or one per example (e.g. the labels).
    """
    y, res = model.forward(params, x)
    return model.backward(res, _cotangent(y, output, get_namespace(y)), input_only=True)[0]


def input_gradient_norms(model, params, x, p=2, output=None):
    """``||grad_x f(x_i)||_{p*}`` per example, ``1/p + 1/p* = 1``: the local Lipschitz constant
    of the (picked) scalar output on ``(R^n, l_p)`` [NN-4]. Claim C2: 1 almost everywhere for a
    GroupSort network with orthonormal square weights and a unit last row, ``p = 2`` [NN-5]."""
    g = input_gradients(model, params, x, output)
    xp = get_namespace(g)
    return xp.linalg.vector_norm(g, ord=dual_exponent(p), axis=1)


def pair_ratios(model, params, x, x2=None, p=2, q=None, n_pairs=None, seed=0):
    """``||f(a) - f(b)||_q / ||a - b||_p`` over pairs: ``(x[i], x2[i])`` when ``x2`` is given,
    else ``n_pairs`` (default ``len(x)``) random pairs of distinct rows of ``x`` drawn with
    ``numpy.random.default_rng(seed)``. A pair at distance 0 gives 0 [NN-4]."""
    p, q = _check_pq(p, q)
    xp = get_namespace(x)
    if x2 is None:
        n = x.shape[0]
        if n < 2:
            raise ValueError("pair_ratios needs at least 2 rows of x (or x2)")
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=n_pairs or n)
        j = (i + rng.integers(1, n, size=i.shape[0])) % n  # j != i
        a, b = xp.take(x, xp.asarray(i), axis=0), xp.take(x, xp.asarray(j), axis=0)
    else:
        if tuple(x2.shape) != tuple(x.shape):
            raise ValueError(f"x2 must have the shape of x {tuple(x.shape)}, got {tuple(x2.shape)}")
        a, b = x, x2
    # The model itself, not a frozen copy: the ratios measure what forward computes.
    f = model(params, xp.concat([a, b], axis=0))
    fa, fb = f[:a.shape[0], ...], f[a.shape[0]:, ...]
    dist = xp.linalg.vector_norm(a - b, ord=p, axis=1)
    ratio = xp.linalg.vector_norm(fa - fb, ord=q, axis=1) / xp.where(dist > 0, dist, 1.0)
    return xp.where(dist > 0, ratio, 0.0)


def pair_lower_bound(model, params, x, x2=None, p=2, q=None, n_pairs=None, seed=0):
    """``max`` of :func:`pair_ratios`, a lower bound on the Lipschitz constant [NN-4]."""
    ratios = pair_ratios(model, params, x, x2, p, q, n_pairs, seed)
    return float(get_namespace(ratios).max(ratios))


def unit_activity(model, params, x):
    """For every ReLU layer: the fractions of its units that are never active
    (pre-activation ``<= 0`` on every example of ``x``) and always active (``> 0`` on all)
    [NN-6]. Dead units pass no gradient; always-active ones make the layer linear.

    Returns
    -------
    list of dict
        ``{"layer": index, "width": n, "never": fraction, "always": fraction}``.
    """
    _, res = model.forward(params, x)
    out = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Activation) and layer.name == "relu":
            active = res.layers[i].derivative  # 1.0 where the pre-activation is > 0
            xp = get_namespace(active)
            count = xp.sum(active, axis=0)
            n, width = active.shape
            out.append({"layer": i, "width": width,
                        "never": float(xp.mean(xp.astype(count == 0, active.dtype))),
                        "always": float(xp.mean(xp.astype(count == n, active.dtype)))})
    return out


def describe(values, target=1.0, rtol=1e-6):
    """Summary of a distribution of norms: min, 5/50/95 % quantiles, mean, max, and the
    fraction within ``rtol`` of ``target`` (C2: the fraction of unit gradient norms)."""
    from .._backend import to_numpy

    v = np.asarray(to_numpy(values), dtype=np.float64)
    q05, q50, q95 = np.quantile(v, [0.05, 0.5, 0.95])
    return {"n": int(v.size), "min": float(v.min()), "q05": float(q05), "median": float(q50),
            "mean": float(v.mean()), "q95": float(q95), "max": float(v.max()),
            "fraction_at_target": float(np.mean(np.abs(v - target) <= rtol * abs(target)))}
