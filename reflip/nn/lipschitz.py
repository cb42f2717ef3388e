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

NaN [NN-14]: a row of ``x`` holding NaN gives NaN in every per-row result (gradients,
Jacobians, their norms, local constants, pair ratios), never a finite, plausible number; the
aggregates (:func:`gradient_lower_bound`, :func:`pair_lower_bound`, :func:`unit_activity`,
:func:`describe`) are then NaN too. The other rows are unaffected.
"""
from __future__ import annotations

import math

import numpy as np

from .._backend import get_namespace, to_numpy
from .._validate import check_array, check_int, check_real, check_seed
from ..norms import check_pq, dual_exponent, operator_norm, operator_norms
from .layers import Activation, Dense
from .model import check_model

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
    p, q = check_pq(p, q)
    check_model(model).check_params(params)
    bound, first = 1.0, True
    for layer, par in zip(model.layers, params, strict=True):
        if isinstance(layer, Dense):
            bound *= layer.lipschitz(par, p if first else q, q)
            first = False
        else:
            bound *= layer.lipschitz(par, q, q)
    return bound


def jacobians(model, params, x):
    """Input Jacobians ``J_f(x_i)``, shape ``(batch, out_features, in_features)``: one forward
    pass and ``out_features`` input-only backward passes from its residuals [NN-2]. All NaN for
    a row whose forward pass meets NaN (a NaN in ``x_i``) [NN-14]."""
    y, res = check_model(model).forward(params, x)
    xp = get_namespace(y)
    eye = xp.eye(y.shape[1], dtype=y.dtype)
    rows = [model.backward(res, xp.broadcast_to(eye[j:j + 1, :], y.shape), input_only=True)[0]
            for j in range(y.shape[1])]
    return xp.stack(rows, axis=1)


def local_lipschitz(model, params, x, p=2, q=None):
    """``||J_f(x_i)||_{p->q}`` for every example: the local Lipschitz constant where ``f`` is
    differentiable; every value is a lower bound on the global constant [NN-4]. NaN for a row
    whose forward pass meets NaN [NN-14]."""
    p, q = check_pq(p, q)
    j = jacobians(model, params, x)
    return operator_norms(j, p, q, get_namespace(j))


def gradient_lower_bound(model, params, x, p=2, q=None):
    """``max_i ||J_f(x_i)||_{p->q}``, a lower bound on the Lipschitz constant [NN-4].

    NaN when a row of ``x`` holds NaN [NN-14]: a maximum over rows that include an undefined
    one is undefined (NumPy's ``max`` rule), and a silently dropped row would make the bound
    depend on which rows were dropped."""
    norms = local_lipschitz(model, params, x, p, q)
    return float(get_namespace(norms).max(norms))


def _cotangent(y, output, xp):
    n, m = y.shape
    if output is None:
        if m != 1:
            raise ValueError(f"output: the model has {m} outputs, pass output= (an index, or one index "
                             f"per example)")
        return xp.ones_like(y)
    if not hasattr(output, "dtype") or getattr(output, "ndim", None) == 0:
        output = check_int(output, "output", minimum=0, maximum=m - 1)
        return xp.broadcast_to(xp.astype(xp.arange(m) == output, y.dtype)[None, :], y.shape)
    if not xp.isdtype(output.dtype, "integral"):
        raise TypeError(f"output must be an int or an integer array, got dtype {output.dtype}")
    if tuple(output.shape) != (n,):
        raise ValueError(f"output must be an int or an integer array of shape ({n},) (one index per "
                         f"example), got shape {tuple(output.shape)}")
    lo, hi = int(xp.min(output)), int(xp.max(output))
    if lo < 0 or hi >= m:
        raise ValueError(f"output indices must lie in [0, {m}) for {m} outputs, got values from {lo} to {hi}")
    return xp.astype(output[:, None] == xp.arange(m, dtype=output.dtype)[None, :], y.dtype)


def input_gradients(model, params, x, output=None):
    """``grad_x f_j(x_i)`` for every example, shape ``(batch, in_features)``; a row of NaN for
    a row whose forward pass meets NaN (a NaN in ``x_i``) [NN-14].

    Parameters
    ----------
    output : None, int, or integer array (batch,)
        Which output to differentiate: ``None`` for a scalar model, one index for all
        examples, or one per example (e.g. the labels).
    """
    y, res = check_model(model).forward(params, x)
    return model.backward(res, _cotangent(y, output, get_namespace(y)), input_only=True)[0]


def input_gradient_norms(model, params, x, p=2, output=None):
    """``||grad_x f(x_i)||_{p*}`` per example, ``1/p + 1/p* = 1``: the local Lipschitz constant
    of the (picked) scalar output on ``(R^n, l_p)`` [NN-4]. Claim C2: 1 almost everywhere for a
    GroupSort network with orthonormal square weights and a unit last row, ``p = 2`` [NN-5].
    NaN for a row whose forward pass meets NaN [NN-14]."""
    q = dual_exponent(p)
    g = input_gradients(model, params, x, output)
    xp = get_namespace(g)
    return xp.linalg.vector_norm(g, ord=q, axis=1)


def pair_ratios(model, params, x, x2=None, p=2, q=None, n_pairs=None, seed=0):
    """``||f(a) - f(b)||_q / ||a - b||_p`` over pairs: ``(x[i], x2[i])`` when ``x2`` is given,
    else ``n_pairs`` (default ``len(x)``) random pairs of distinct rows of ``x`` drawn with
    ``numpy.random.default_rng(seed)``. A pair at distance 0 gives 0; a pair with a NaN in
    either row gives NaN [NN-4] [NN-14]."""
    p, q = check_pq(p, q)
    check_model(model)
    seed = check_seed(seed)
    xp = get_namespace(x=x) if x2 is None else get_namespace(x=x, x2=x2)
    check_array(x, xp, "x", min_ndim=2)
    if x2 is None:
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"x must have at least 2 rows to draw pairs from (or pass x2), got shape "
                             f"{tuple(x.shape)}")
        # Pairs are drawn on the host, one index array each: bound their number like any count.
        n_pairs = n if n_pairs is None else check_int(n_pairs, "n_pairs", minimum=1, maximum=2**31)
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=n_pairs)
        j = (i + rng.integers(1, n, size=i.shape[0])) % n  # j != i
        a, b = xp.take(x, xp.asarray(i), axis=0), xp.take(x, xp.asarray(j), axis=0)
    else:
        if n_pairs is not None:
            raise ValueError(f"n_pairs applies when pairs are drawn from x alone; with x2 the pairs are "
                             f"(x[i], x2[i]), got n_pairs={n_pairs!r}")
        check_array(x2, xp, "x2", min_ndim=2)
        if tuple(x2.shape) != tuple(x.shape):
            raise ValueError(f"x2 must have the shape of x {tuple(x.shape)}, got {tuple(x2.shape)}")
        if x2.dtype != x.dtype:
            raise TypeError(f"x2 must have the dtype of x ({x.dtype}), got {x2.dtype}")
        a, b = x, x2
    # The model itself, not a frozen copy: the ratios measure what forward computes.
    f = model(params, xp.concat([a, b], axis=0))
    fa, fb = f[:a.shape[0], ...], f[a.shape[0]:, ...]
    dist = xp.linalg.vector_norm(a - b, ord=p, axis=1)
    ratio = xp.linalg.vector_norm(fa - fb, ord=q, axis=1) / xp.where(dist > 0, dist, 1.0)
    # dist == 0 (not "dist > 0 or else 0"): a NaN distance must give a NaN ratio [NN-14].
    return xp.where(dist == 0, xp.zeros_like(ratio), ratio)


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
        ``{"layer": index, "width": n, "never": fraction, "always": fraction}``; the fractions
        are NaN when a row of ``x`` meets NaN in the forward pass: a unit's activity there is
        undefined, so "never" and "always" are too [NN-14].
    """
    y, res = check_model(model).forward(params, x)
    xp = get_namespace(y)
    undefined = bool(xp.any(xp.isnan(y)))
    out = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Activation) and layer.name == "relu":
            active = res.layers[i].derivative  # 1.0 where the pre-activation is > 0
            count = xp.sum(active, axis=0)
            n, width = active.shape
            # Counted in integers and divided once in Python: a float32 mean would round 1/3.
            never = int(xp.sum(xp.astype(count == 0, xp.int64))) / width
            always = int(xp.sum(xp.astype(count == n, xp.int64))) / width
            out.append({"layer": i, "width": width,
                        "never": math.nan if undefined else never,
                        "always": math.nan if undefined else always})
    return out


def describe(values, target=1.0, rtol=1e-6):
    """Summary of a distribution of norms: min, 5/50/95 % quantiles, mean, max, and the
    fraction within ``rtol`` of ``target`` (C2: the fraction of unit gradient norms).

    Every statistic is NaN when a value is NaN (NaN rows of :func:`input_gradient_norms`
    [NN-14]); ``n`` counts all values."""
    target = check_real(target, "target")
    rtol = check_real(rtol, "rtol", minimum=0.0)
    xp = get_namespace(values=values)
    check_array(values, xp, "values")
    v = np.asarray(to_numpy(values), dtype=np.float64).ravel()
    if np.isnan(v).any():
        nan = math.nan
        return {"n": int(v.size), "min": nan, "q05": nan, "median": nan, "mean": nan, "q95": nan,
                "max": nan, "fraction_at_target": nan}
    q05, q50, q95 = np.quantile(v, [0.05, 0.5, 0.95])
    return {"n": int(v.size), "min": float(v.min()), "q05": float(q05), "median": float(q50),
            "mean": float(v.mean()), "q95": float(q95), "max": float(v.max()),
            "fraction_at_target": float(np.mean(np.abs(v - target) <= rtol * abs(target)))}
