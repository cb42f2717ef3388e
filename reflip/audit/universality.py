"""Claims of the ``max_min_network`` primitive (the evaluation of a MaxMin network, [UN-1] [UN-2]),
and the oracles the checks of the constructions (:mod:`reflip.audit.constructions`) share.

Oracles: a dense float64 evaluation with ``numpy.minimum``/``numpy.maximum`` (not GroupSort,
:mod:`reflip.testing.networks`); operator norms of the stored weights in EXACT rational
arithmetic (``fractions.Fraction``: row sums ``sum |w|`` and ``sum w^2``, the closed forms of
[PR-1] and [PR-7]). Tolerances come from a rounding model of the evaluation
(:func:`rounding_bound`), not from constants.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..testing.networks import P_VALUES, dense_reference, preactivations
from ..tolerances import eps
from .engine import ClaimFailure, NotMeasured, claim, claims_for, device_array, exceeds, host
from .generic import generic_claims

__all__ = ["dense_reference", "preactivations", "exact_constraints", "rounding_bound",
           "interpolation_tolerance", "evaluate", "lipschitz_ratio"]

PRIMITIVE = "max_min_network"


# ----------------------------------------------------------------------------------------------
# Oracles


def _row_l1(row):
    return sum(abs(Fraction(float(v))) for v in row if v != 0)


def exact_constraints(network, p):
    """Whether the stored weights satisfy the universality constraints for ``l_p`` in EXACT
    arithmetic, and the float64 values of the norms: ``(ok, first, later)`` with
    ``first = max_i ||w_i||_q`` of the first layer and ``later = max_{k >= 2} max_i ||w_i||_1``
    [PR-1] [PR-7] [UN-1]. Selections are materialized (their rows are checked, not assumed)."""
    weights = network.weights()
    w1 = weights[0][0]
    if p == math.inf:
        first = [_row_l1(r) for r in w1]
    elif p == 2:
        first = [sum(Fraction(float(v)) ** 2 for v in r if v != 0) for r in w1]
    else:
        first = [max(abs(Fraction(float(v))) for v in r) for r in w1]
    later = [_row_l1(r) for w, _ in weights[1:] for r in w]
    ok = max(first) <= 1 and (not later or max(later) <= 1)
    first_value = math.sqrt(float(max(first))) if p == 2 else float(max(first))
    return ok, first_value, float(max(later, default=0))


def rounding_bound(network, x, dtype):
    """Bound on ``|fl(F(x)) - F(x)|`` per input row when ``F`` is evaluated in ``dtype``, with
    the float64 weights rounded to ``dtype`` [UN-12].

    In the l_inf norm: a dense layer of input width ``m`` commits at most
    ``gamma = (m + 2) eps`` times ``|W| |h| + |b|`` (weights rounded, ``m`` products and sums,
    the bias), and propagates the incoming error by ``||W||_inf``; MaxMin and selections are
    exact and non-expansive. A factor 4 of room.
    """
    u = eps(dtype)
    mag = np.max(np.abs(np.asarray(x, np.float64)), axis=-1)
    err = np.zeros_like(mag)
    for layer in network.layers:
        if hasattr(layer, "W"):
            row_l1 = float(np.max(np.sum(np.abs(layer.W), axis=1)))
            bias = float(np.max(np.abs(layer.b)))
            new_mag = row_l1 * mag + bias
            err = row_l1 * err + (layer.n_in + 2) * u * new_mag
            mag = new_mag
    return 4 * err


def interpolation_tolerance(points, values, dtype):
    """``|F(x_i) - v_i|`` allowed in ``dtype`` [UN-12]: the construction's rounding
    (``32 (n + 4) u`` times ``max |v| + n max |x|``, plus the tolerance of the Lipschitz test
    whose slopes are clipped) and the evaluation's (the first layer only)."""
    n = points.shape[1]
    scale = float(np.max(np.abs(values))) + n * float(np.max(np.abs(points)))
    construction = 32 * (n + 4) * eps(np.float64) * scale + 16 * (n + 2) * eps(np.float64) / 2 * scale
    return construction + 4 * (n + 2) * eps(dtype) * scale


# ----------------------------------------------------------------------------------------------
# Checks


def evaluate(impl, backend, dtype, network, x):
    """``impl``'s evaluation of ``network`` at ``x`` (moved to ``backend`` in ``dtype``), on the host."""
    return host(impl.fun(device_array(backend, x, dtype), network=network))


def lipschitz_ratio(fx, fy, x, y, p, slack):
    """Per row: whether ``|F(x) - F(y)|_inf > ||x - y||_p + slack`` (NaN failing) and the ratio."""
    num = np.max(np.abs(fx - fy), axis=-1)
    den = np.linalg.norm(np.asarray(x, np.float64) - np.asarray(y, np.float64), ord=p, axis=-1)
    bad = exceeds(num, den + slack)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(den > 0, num / den, 0.0)
    return bad, ratio


@claim("max_min_network.evaluates", "UN-2", "general")
def _check_evaluates(impl, case, backend, dtype):
    """[UN-2] F(x) equals a dense float64 evaluation with MaxMin as min/max of pairs.

    To the rounding bound of the evaluation."""
    net = case.params["network"]
    got = evaluate(impl, backend, dtype, net, case.x)
    want = dense_reference(net, case.x)
    bound = rounding_bound(net, case.x, dtype) + 2 * rounding_bound(net, case.x, np.float64)
    if got.shape != want.shape:
        raise ClaimFailure(f"output shape {got.shape}, expected {want.shape}")
    err = np.max(np.abs(got - want), axis=-1)
    if not np.all(err <= bound):
        k = int(np.argmax(err - bound))
        raise ClaimFailure(f"F(x) differs from the dense min/max evaluation by {err[k]:.3g} > {bound[k]:.3g} "
                           f"(row {k})")
    return {"error_over_bound": float(np.max(err / np.maximum(bound, np.finfo(float).tiny)))}


@claim("max_min_network.lipschitz", "UN-1", "pair")
def _check_lipschitz(impl, case, backend, dtype):
    """[UN-1] Constrained for l_p => 1-Lipschitz from l_p.

    A network satisfying the constraints for l_p (checked exactly) is 1-Lipschitz from l_p to
    l_inf: |F(x) - F(x')| <= ||x - x'||_p, for every p whose constraints it meets."""
    net = case.params["network"]
    fx = evaluate(impl, backend, dtype, net, case.x)
    fy = evaluate(impl, backend, dtype, net, case.x2)
    slack = rounding_bound(net, case.x, dtype) + rounding_bound(net, case.x2, dtype)
    figures = {}
    for p in P_VALUES:
        if not exact_constraints(net, p)[0]:
            continue
        bad, ratio = lipschitz_ratio(fx, fy, case.x, case.x2, p, slack)
        figures[f"ratio_l{p:g}"] = float(np.max(ratio))
        if bad.any():
            k = int(np.argmax(bad))
            raise ClaimFailure(f"|F(x) - F(x')| / ||x - x'||_{p:g} = {ratio[k]:.10g} > 1 for a network meeting "
                               f"the l_{p:g} constraints (row {k})")
    if not figures:
        raise NotMeasured("the network meets the constraints for no p: the claim states nothing about it")
    return figures


generic_claims(PRIMITIVE, "UN-2")
CLAIMS = claims_for(PRIMITIVE)
