"""Universality claims (proofs/universality.md, claim C7 of the paper), checked on the registry
primitive ``max_min_network`` (the evaluation of a MaxMin network) and on the constructions of
:mod:`reflip.universality`.

Oracles: a dense float64 evaluation with ``numpy.minimum``/``numpy.maximum`` (not GroupSort);
operator norms of the stored weights in EXACT rational arithmetic (``fractions.Fraction``: row
sums ``sum |w|`` and ``sum w^2``, the closed forms of [PR-1] and [PR-7]), brute force over all
pairs for the Lipschitz test of data, nearest-point search for the covering radius of a net,
and the targets' own formulas. Tolerances come from a rounding model of the evaluation
(:func:`rounding_bound`), not from constants.

A check takes the construction from ``impl.construction`` when the implementation carries one
(the meta-tests plant broken constructions there) and from :mod:`reflip.universality`
otherwise; the network is always evaluated by the implementation under audit.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..tolerances import eps
from .engine import Claim, ClaimFailure, device_array, exceeds, host, register_claim, rng_for
from .generic import generic_claims

__all__ = ["network_cases", "dense_reference", "preactivations", "exact_constraints", "rounding_bound",
           "interpolation_tolerance", "target_values", "KINDS"]

PRIMITIVE = "max_min_network"
P_VALUES = (1.0, 2.0, math.inf)
KINDS = ("general", "differentiable", "pair", "two_point", "interpolation", "not_lipschitz", "lattice",
         "approximation", "norms")


def _construction(impl):
    import reflip.universality as reference

    return getattr(impl, "construction", None) or reference


# ----------------------------------------------------------------------------------------------
# Oracles


def dense_reference(network, x):
    """``F(x)`` in float64 from the dense weights, MaxMin written as ``minimum``/``maximum`` of
    the even and odd entries [GS-6] (an independent formulation of the evaluation)."""
    return preactivations(network, x)[-1]


def preactivations(network, x):
    """The input of every MaxMin layer, then the output, in float64 (dense evaluation)."""
    h = np.asarray(x, np.float64)
    out = []
    weights = network.weights()
    for k, (w, b) in enumerate(weights):
        z = h @ w.T + b
        out.append(z)
        if k < len(weights) - 1:
            lo, hi = np.minimum(z[..., 0::2], z[..., 1::2]), np.maximum(z[..., 0::2], z[..., 1::2])
            h = np.stack([lo, hi], axis=-1).reshape(z.shape)
    return out


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
# 1-Lipschitz targets [UN-8]: distance to a finite set, max / min of cones, linear, a tent, a network


def target_values(target, x, p):
    """Evaluate a target described by a dict (JSON-like, so that a failing case prints
    paste-ably) on ``x`` of shape ``(m, n)``, in float64."""
    x = np.asarray(x, np.float64)
    kind = target["kind"]
    if kind == "distance":
        c = np.asarray(target["centers"])
        return np.min(np.linalg.norm(x[:, None, :] - c[None], ord=p, axis=-1), axis=1)
    if kind in ("cones_max", "cones_min"):
        c, h, s = (np.asarray(target[k]) for k in ("centers", "heights", "slopes"))
        d = np.linalg.norm(x[:, None, :] - c[None], ord=p, axis=-1)
        return np.max(h - s * d, axis=1) if kind == "cones_max" else np.min(h + s * d, axis=1)
    if kind == "tent":
        return target["height"] - np.abs(x[:, target["axis"]] - target["center"])
    if kind == "linear":
        return x @ np.asarray(target["gradient"], np.float64)
    if kind == "network":
        from reflip.universality import random_constrained_network

        net = random_constrained_network(x.shape[1], target["widths"], p, seed=target["seed"])
        return dense_reference(net, x)[:, 0]
    raise ValueError(f"unknown target kind {kind!r}")


def _random_target(rng, n, p):
    """A 1-Lipschitz target for l_p: the distance to a finite set, the max of downward cones or
    the min of upward ones (slopes <= 1, exactly 1 half of the time), a linear function whose
    gradient has dual norm exactly 1, or a random constrained network."""
    kind = str(rng.choice(["distance", "cones_max", "cones_min", "linear", "network"]))
    k = int(rng.integers(1, 5))
    if kind == "network":
        return {"kind": "network", "widths": [int(w) for w in rng.choice([2, 4], int(rng.integers(0, 3)))],
                "seed": int(rng.integers(2**31))}
    if kind == "linear":
        return {"kind": "linear", "gradient": _unit_dual(rng, n, p).tolist()}
    centers = rng.uniform(-1, 1, (k, n)).tolist()
    if kind == "distance":
        return {"kind": "distance", "centers": centers}
    slopes = np.where(rng.random(k) < 0.5, 1.0, rng.uniform(0, 1, k)).tolist()
    return {"kind": kind, "centers": centers, "heights": rng.uniform(-1, 1, k).tolist(), "slopes": slopes}


def _unit_dual(rng, n, p):
    """A gradient ``g`` with ``||g||_q = 1`` (``q`` dual to ``p``): ``+-1`` entries (p = 1),
    ``+-e_k`` (p = inf), a unit vector rounded to float64 (p = 2)."""
    if p == 1:
        return rng.choice([-1.0, 1.0], n)
    if p == math.inf:
        return np.eye(n)[rng.integers(n)] * rng.choice([-1.0, 1.0])
    g = rng.standard_normal(n)
    return g / np.linalg.norm(g)


def _extremal_direction(rng, gradient, p):
    """A direction ``d`` with ``g . d = ||d||_p`` for ``||g||_q = 1``: data displaced along it are
    at Lipschitz ratio exactly 1 (in exact arithmetic), where rounding decides the last ulp."""
    g = np.asarray(gradient)
    if p == 1:
        return g * rng.uniform(0.125, 1.0, g.size)  # sign(d) = g: g . d = ||d||_1
    if p == math.inf:
        return np.where(g != 0, g, rng.uniform(-1.0, 1.0, g.size))  # the largest |d_k| where g_k = +-1
    return g


# ----------------------------------------------------------------------------------------------
# Strategies: hypothesis draws a seed; the case is a function of (seed, dtype, kind), so that
# every size and norm is uniformly explored (a derandomized run would otherwise favour the
# smallest draws) and a failing case still prints in full.


def _dyadic(rng, shape, bound=2.0, bits=6):
    """Multiples of 2^-bits in [-bound, bound]: exact in float32."""
    return np.round(rng.uniform(-bound, bound, shape) * 2**bits) / 2**bits


def _min_gap(network, x):
    """Smallest ``|a - b|`` over the pairs entering the MaxMin layers at ``x``."""
    gaps = [np.min(np.abs(z[..., 0::2] - z[..., 1::2])) for z in preactivations(network, x)[:-1]]
    return min(gaps, default=math.inf)


def _random_network(rng, n, p, scalar=False):
    """A constrained network: dense random (dyadic weights), a lattice max / min of two, or an
    interpolant (which has selection layers)."""
    from reflip import universality as U

    shape = rng.choice(["dense", "dense", "lattice", "interpolant"])
    if shape == "dense":
        widths = [int(w) for w in rng.choice([2, 4, 6], int(rng.integers(0, 4)))]
        n_out = 1 if scalar else int(rng.integers(1, 4))
        return U.random_constrained_network(n, widths, p, seed=int(rng.integers(2**31)), n_out=n_out)
    if shape == "lattice":
        a, b = (U.random_constrained_network(n, [int(w) for w in rng.choice([2, 4], int(rng.integers(0, 3)))],
                                             p, seed=int(rng.integers(2**31))) for _ in range(2))
        return (U.lattice_max if rng.random() < 0.5 else U.lattice_min)(a, b)
    pts = rng.uniform(-1, 1, (int(rng.integers(1, 7)), n))
    return U.interpolate(pts, target_values(_random_target(rng, n, p), pts, p), p)


def _data(rng, n, p, n_pts):
    """Points and a target. Linear targets (over 40% of the cases) come with points along an
    extremal direction, all on one line or in displaced pairs: pairs at Lipschitz ratio 1 in
    exact arithmetic, where rounding decides the last ulp (the slopes' clipping and the exact
    constraints are tested there)."""
    tight = rng.random() < 0.4
    n = max(n, 2) if tight else n  # in 1-D the ratio-1 pairs round exactly to 1
    pts = rng.uniform(-1, 1, (n_pts, n))
    target = {"kind": "linear", "gradient": _unit_dual(rng, n, p).tolist()} if tight else _random_target(rng, n, p)
    if target["kind"] == "linear":
        d = _extremal_direction(rng, target["gradient"], p)
        if rng.random() < 0.5:
            pts = pts[:1] + rng.uniform(-1, 1, (n_pts, 1)) * d
        else:
            pts[1::2] = pts[0::2][: n_pts // 2] + rng.uniform(-1, 1, (n_pts // 2, 1)) * d
    elif n_pts > 2 and rng.random() < 0.2:
        pts[-1] = pts[0]  # a repeated point (same value: allowed)
    return pts, target


def _make_case(seed, dtype, kind):
    from reflip import universality as U

    from ..testing.strategies import Case

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    p = float(rng.choice(P_VALUES))
    if kind in ("general", "pair"):
        net = _random_network(rng, n, p)
        x = _dyadic(rng, (int(rng.integers(1, 5)), n)).astype(dtype)
        return Case(x, {"network": net}, _dyadic(rng, x.shape).astype(dtype) if kind == "pair" else None)
    if kind == "differentiable":
        # Dense random networks: no structural ties (a duplicated value (a, a) is tied
        # everywhere, and differentiable). Inputs at least 2^-7 from every MaxMin kink.
        widths = [int(w) for w in rng.choice([2, 4, 6], int(rng.integers(1, 4)))]
        net = U.random_constrained_network(n, widths, p, seed=int(rng.integers(2**31)), n_out=int(rng.integers(1, 3)))
        x = _dyadic(rng, (int(rng.integers(1, 4)), n)).astype(dtype)
        gap = _min_gap(net, x)
        if gap < 2.0**-7:
            return None
        # A step h moves every pre-activation by at most ||W_1||_inf h (later layers have
        # ||W_k||_inf <= 1): the pair gaps, which move by twice that, keep their sign.
        w1 = float(np.max(np.sum(np.abs(net.layers[0].W), axis=1)))
        return Case(x, {"network": net}, max_step=gap / (4 * max(1.0, w1)))
    if kind == "two_point":
        pair = rng.uniform(-1, 1, (2, n))
        if rng.random() < 0.2:
            pair[1] = pair[0]  # the same point twice: a constant interpolant
        if rng.random() < 0.3:
            pair[1] = pair[0] + rng.uniform(-1, 1) * _extremal_direction(rng, _unit_dual(rng, n, p), p)
        dist = float(np.linalg.norm(pair[1] - pair[0], ord=p))
        a = float(rng.uniform(-1, 1))
        frac = float(rng.choice([1.0, -1.0, 0.0])) if rng.random() < 0.5 else float(rng.uniform(-1, 1))
        return Case(pair, {"a": a, "b": a + frac * dist, "p": p})
    if kind in ("interpolation", "not_lipschitz"):
        n_pts = int(rng.integers(1 if kind == "interpolation" else 2, 10))
        pts, target = _data(rng, n, p, n_pts)
        values = target_values(target, pts, p)
        if kind == "not_lipschitz":
            i, j = rng.choice(n_pts, 2, replace=False)
            dist = float(np.linalg.norm(pts[i] - pts[j], ord=p))
            values[j] = values[i] + (1.0 + float(rng.uniform(0.01, 1))) * dist + 2.0**-20
        return Case(pts, {"values": values.tolist(), "p": p, "target": target})
    if kind == "lattice":
        a, b = _random_network(rng, n, p, scalar=True), _random_network(rng, n, p, scalar=True)
        x = _dyadic(rng, (int(rng.integers(1, 7)), n)).astype(dtype)
        return Case(x, {"first": a, "second": b, "p": p})
    if kind == "approximation":
        if rng.random() < 0.5:
            # The tent of [UN-10] on one cell of the net: its error approaches 2 delta where the
            # grid spacing is 2 delta (p = inf, or n = 1).
            p = math.inf if n > 1 else p
            width = float(rng.choice([1.0, 2.0]))
            delta = width / int(rng.integers(4, 6 if n > 1 else 13))
            box = ([0.0] * n, [width] * n)
            target = {"kind": "tent", "axis": int(rng.integers(n)), "box": box, "delta": delta}
        else:
            delta = float(rng.choice([0.25, 0.375, 0.5])) * (1 if n == 1 else 2)
            low = _dyadic(rng, (n,), 1.0, 2)
            box = (low.tolist(), (low + float(rng.choice([0.5, 1.0]))).tolist())
            target = _random_target(rng, n, p)
        return Case(np.zeros((1, n)), {"box": box, "delta": delta, "p": p, "target": target})
    if kind == "norms":
        ord = float(rng.choice([1.0, math.inf]))
        constraint = rng.choice([None, 1.0, 2.0, math.inf])
        if ord == 1.0 and n > 1:
            constraint = 1.0
        x = _dyadic(rng, (int(rng.integers(1, 6)), n)).astype(dtype)
        if rng.random() < 0.3:
            x[0] = 0.0  # the kink of |x|
        return Case(x, {"ord": ord, "p": None if constraint is None else float(constraint)})
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def network_cases(dtype, kind):
    """Strategy of ``max_min_network`` cases; ``kind`` in :data:`KINDS`."""
    from hypothesis import strategies as st

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    dtype = np.dtype(dtype)
    return st.integers(0, 2**32 - 1).map(lambda seed: _make_case(seed, dtype, kind)).filter(
        lambda case: case is not None)


def _tent(target, construction, p):
    """Place the tent on a middle cell of the net the construction builds (its spacing along
    ``axis`` is ``s``): ``f(x) = s/2 - |x_axis - c|``, zero at the cell's ends."""
    net = construction.delta_net(target["box"], target["delta"], p)
    coords = np.unique(net[:, target["axis"]])
    if coords.size < 2:
        return None
    k = coords.size // 2
    return {"kind": "tent", "axis": target["axis"], "center": float((coords[k - 1] + coords[k]) / 2),
            "height": float((coords[k] - coords[k - 1]) / 2)}


# ----------------------------------------------------------------------------------------------
# Checks


def _evaluate(impl, backend, dtype, network, x):
    return host(impl.fun(device_array(backend, x, dtype), network=network))


def _check_evaluates(impl, case, backend, dtype):
    """[UN-2] F(x) equals a dense float64 evaluation with MaxMin written as min/max of pairs, to
    the rounding bound of the evaluation."""
    net = case.params["network"]
    got = _evaluate(impl, backend, dtype, net, case.x)
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


def _lipschitz_ratio(fx, fy, x, y, p, slack):
    num = np.max(np.abs(fx - fy), axis=-1)
    den = np.linalg.norm(np.asarray(x, np.float64) - np.asarray(y, np.float64), ord=p, axis=-1)
    bad = exceeds(num, den + slack)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(den > 0, num / den, 0.0)
    return bad, ratio


def _check_lipschitz(impl, case, backend, dtype):
    """[UN-1] a network satisfying the constraints for l_p (checked exactly) is 1-Lipschitz from
    l_p to l_inf: |F(x) - F(x')| <= ||x - x'||_p, for every p whose constraints it meets."""
    net = case.params["network"]
    fx = _evaluate(impl, backend, dtype, net, case.x)
    fy = _evaluate(impl, backend, dtype, net, case.x2)
    slack = rounding_bound(net, case.x, dtype) + rounding_bound(net, case.x2, dtype)
    figures = {}
    for p in P_VALUES:
        if not exact_constraints(net, p)[0]:
            continue
        bad, ratio = _lipschitz_ratio(fx, fy, case.x, case.x2, p, slack)
        figures[f"ratio_l{p:g}"] = float(np.max(ratio))
        if bad.any():
            k = int(np.argmax(bad))
            raise ClaimFailure(f"|F(x) - F(x')| / ||x - x'||_{p:g} = {ratio[k]:.10g} > 1 for a network meeting "
                               f"the l_{p:g} constraints (row {k})")
    return figures


def _check_two_point(impl, case, backend, dtype):
    """[UN-4] the two-point interpolant g = w . z + c has g(x) = a, g(y) = b and ||w||_q <= 1
    exactly (rows of the dual norm ball, checked in rational arithmetic)."""
    c_ = _construction(impl)
    x, y = case.x
    a, b, p = case.params["a"], case.params["b"], case.params["p"]
    w, c = c_.two_point_interpolant(x, a, y, b, p)
    from reflip.universality import affine_network

    g = affine_network(w, c)
    ok, norm, _ = exact_constraints(g, p)
    if not ok:
        raise ClaimFailure(f"||w||_q = {norm:.17g} > 1 for p = {p:g} (q the dual exponent): the interpolant "
                           f"is not in the constrained class")
    got = _evaluate(impl, backend, dtype, g, case.x)[:, 0]
    tol = interpolation_tolerance(case.x, np.array([a, b]), dtype)
    err = np.abs(got - np.array([a, b]))
    if not np.all(err <= tol):
        raise ClaimFailure(f"g(x) = {got[0]:.17g}, g(y) = {got[1]:.17g} instead of a = {a:.17g}, b = {b:.17g} "
                           f"(error {np.max(err):.3g} > {tol:.3g})")
    return {"error_over_tol": float(np.max(err) / tol)}


def _build_interpolant(impl, case):
    values = np.asarray(case.params["values"], np.float64)
    return _construction(impl).interpolate(case.x, values, case.params["p"]), values


def _check_interpolates(impl, case, backend, dtype):
    """[UN-8] F = max_i min_j g_ij takes the data's values at the data points (to the rounding
    tolerance of [UN-12], which does not grow with the depth)."""
    net, values = _build_interpolant(impl, case)
    got = _evaluate(impl, backend, dtype, net, case.x)
    if got.shape != (case.x.shape[0], 1):
        raise ClaimFailure(f"the interpolant's output has shape {got.shape}, expected ({case.x.shape[0]}, 1)")
    tol = interpolation_tolerance(case.x, values, dtype)
    err = np.abs(got[:, 0] - values)
    if not np.all(err <= tol):
        k = int(np.argmax(err))
        raise ClaimFailure(f"F(points[{k}]) = {got[k, 0]:.17g} but values[{k}] = {values[k]:.17g} "
                           f"(error {err[k]:.3g} > {tol:.3g})")
    return {"error_over_tol": float(np.max(err) / tol)}


def _check_constrained(impl, case, backend, dtype):
    """[UN-8] [UN-11] the interpolant meets the constraints for l_p in exact arithmetic, has the
    depth 1 + ceil(log2(N - 1)) + ceil(log2 N), and is 1-Lipschitz in l_p on sampled pairs
    around the data (pairs of data points included)."""
    net, values = _build_interpolant(impl, case)
    p = case.params["p"]
    ok, first, later = exact_constraints(net, p)
    if not ok:
        raise ClaimFailure(f"constraints violated: ||W_1||_{{{p:g},inf}} = {first:.17g}, max_k ||W_k||_inf = "
                           f"{later:.17g} (exact arithmetic on the stored weights)")
    n_pts = case.x.shape[0]
    rounds = lambda s: 0 if s <= 1 else math.ceil(math.log2(s))  # noqa: E731
    depth = 1 if n_pts == 1 else 1 + rounds(n_pts - 1) + rounds(n_pts)
    if net.depth != depth:
        raise ClaimFailure(f"depth {net.depth} for N = {n_pts} points, expected {depth} [UN-11]")
    rng = rng_for(case.x)
    xs = np.concatenate([case.x, rng.uniform(-1.5, 1.5, (32, case.x.shape[1]))])
    i, j = rng.integers(xs.shape[0], size=(2, 64))
    ys = xs[j] + rng.normal(0, 0.1, xs[j].shape) * (rng.random((64, 1)) < 0.5)
    fx, fy = _evaluate(impl, backend, dtype, net, xs[i]), _evaluate(impl, backend, dtype, net, ys)
    slack = rounding_bound(net, xs[i], dtype) + rounding_bound(net, ys, dtype)
    bad, ratio = _lipschitz_ratio(fx, fy, xs[i], ys, p, slack)
    if bad.any():
        k = int(np.argmax(bad))
        raise ClaimFailure(f"|F(x) - F(y)| / ||x - y||_{p:g} = {ratio[k]:.10g} > 1 on a sampled pair")
    return {"first_layer_norm": first, "later_norm": later, "max_ratio": float(np.max(ratio))}


def _check_refuses(impl, case, backend, dtype):
    """[UN-13] data that are not 1-Lipschitz are refused with an error naming the worst pair
    (found here by brute force over all pairs)."""
    values = np.asarray(case.params["values"], np.float64)
    p = case.params["p"]
    pts = case.x
    dist = np.linalg.norm(pts[:, None] - pts[None], ord=p, axis=-1)
    diff = np.abs(values[:, None] - values[None])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(diff > dist, np.where(dist > 0, diff / dist, np.inf), 0.0)
    worst = ratio.max()
    try:
        _construction(impl).interpolate(pts, values, p)
    except ValueError as exc:
        i, j = getattr(exc, "i", None), getattr(exc, "j", None)
        if i is None or ratio[i, j] != worst:
            raise ClaimFailure(f"refused, but the error names the pair ({i}, {j}), not a worst pair "
                               f"(ratio {worst:.6g}): {exc}") from None
        if f"({i}, {j})" not in str(exc):
            raise ClaimFailure(f"the message does not name the pair ({i}, {j}): {exc}") from None
        return {}
    raise ClaimFailure(f"data with Lipschitz ratio {worst:.6g} > 1 were interpolated without complaint; no "
                       f"1-Lipschitz network can take these values")


def _check_lattice(impl, case, backend, dtype):
    """[UN-3] lattice_max / lattice_min of two constrained networks compute the pointwise max /
    min (to the operands' rounding; exactly on dyadic data, tests/test_universality.py), meet
    the constraints exactly and have depth max + 1."""
    c_ = _construction(impl)
    a, b, p = case.params["first"], case.params["second"], case.params["p"]
    fa, fb = (_evaluate(impl, backend, dtype, net, case.x) for net in (a, b))
    figures = {}
    for name, op in (("lattice_max", np.maximum), ("lattice_min", np.minimum)):
        net = getattr(c_, name)(a, b)
        ok, first, later = exact_constraints(net, p)
        if not ok:
            raise ClaimFailure(f"{name}: constraints violated (||W_1||_{{{p:g},inf}} = {first:.17g}, "
                               f"max_k ||W_k||_inf = {later:.17g})")
        got = _evaluate(impl, backend, dtype, net, case.x)
        want = op(fa, fb)
        # The added operations (copies, MaxMin, selections) are exact; the operands' own dot
        # products may round differently inside the block-diagonal layers [UN-3].
        tol = 2 * (rounding_bound(a, case.x, dtype) + rounding_bound(b, case.x, dtype))[:, None]
        err = np.abs(got - want)
        if got.shape != want.shape or not np.all(err <= tol):
            raise ClaimFailure(f"{name} differs from the pointwise {op.__name__} of the two networks by "
                               f"{np.max(err) if got.shape == want.shape else got.shape}")
        expected_depth = max(a.depth, b.depth) + 1
        if net.depth != expected_depth:
            raise ClaimFailure(f"{name} has depth {net.depth}, expected max({a.depth}, {b.depth}) + 1")
        figures[f"{name}_error"] = float(np.max(err))
    return figures


def _samples_in_box(rng, box, points, m=256):
    """Uniform samples, the net points and the midpoints between neighbouring net points (where
    the error of [UN-10] peaks)."""
    low, high = (np.asarray(v, np.float64) for v in box)
    uniform = rng.uniform(low, high, (m, low.size))
    mids = [(points + points[rng.permutation(len(points))]) / 2]
    for axis in range(low.size):
        coords = np.unique(points[:, axis])
        if coords.size > 1:
            centres = (coords[:-1] + coords[1:]) / 2
            pick = points[rng.integers(len(points), size=4 * centres.size)].copy()
            pick[:, axis] = np.tile(centres, 4)
            mids.append(pick)
    return np.concatenate([uniform, points, *mids])


def _check_approximation(impl, case, backend, dtype):
    """[UN-9] [UN-10] approximate(f, box, delta, p) builds a delta-net (every sample within
    delta of a net point, by brute force) and a network within its reported bound of f on
    samples; the reported bound is the theorem's 2 delta, which the tent target nearly
    attains (so a bound of delta is caught)."""
    c_ = _construction(impl)
    params = case.params
    box, delta, p = params["box"], params["delta"], params["p"]
    target = params["target"]
    if target["kind"] == "tent":
        target = _tent(target, c_, p)
        if target is None:
            return {}
    result = c_.approximate(lambda x: target_values(target, x, p), box, delta, p)
    rng = rng_for(np.asarray(result.points))
    xs = _samples_in_box(rng, box, np.asarray(result.points))
    nearest = np.min(np.linalg.norm(xs[:, None] - np.asarray(result.points)[None], ord=p, axis=-1), axis=1)
    if not np.all(nearest <= delta * (1 + 4 * eps(np.float64))):
        raise ClaimFailure(f"not a delta-net: a point of the box is {np.max(nearest):.6g} > delta = {delta} "
                           f"from every net point")
    if exceeds(result.error_bound, 2 * delta):
        raise ClaimFailure(f"reported bound {result.error_bound} > 2 delta = {2 * delta}")
    got = _evaluate(impl, backend, dtype, result.network, xs)[:, 0]
    err = np.abs(got - target_values(target, xs, p))
    tol = interpolation_tolerance(result.points, result.values, dtype) + float(
        np.max(rounding_bound(result.network, xs, dtype)))
    worst = float(np.max(err))
    if exceeds(worst, result.error_bound + tol):
        raise ClaimFailure(f"measured sup error {worst:.6g} > reported bound {result.error_bound:.6g} "
                           f"(delta = {delta}, {result.points.shape[0]} net points, target {target['kind']})")
    return {"error_over_delta": worst / delta}


def _check_norms(impl, case, backend, dtype):
    """[UN-5] the norm networks compute ||x||_ord exactly (to 2^-51 relative for the
    spectral-norm ones, whose weights are 1/sqrt(2) rounded down), meet their constraints
    (exactly for the universality ones, by SVD for the spectral-norm ones), and the
    spectral-norm |x| network has derivative sign(x), of norm 1, at every x."""
    c_ = _construction(impl)
    ord_, p = case.params["ord"], case.params["p"]
    n = case.x.shape[1]
    net = c_.norm_network(n, ord_, p=p)
    x64 = np.asarray(case.x, np.float64)
    want = np.linalg.norm(x64, ord=ord_, axis=1)
    got = _evaluate(impl, backend, dtype, net, case.x)[:, 0]
    if p is None:
        sigma = max(float(np.linalg.svd(w, compute_uv=False)[0]) for w, _ in net.weights())
        if exceeds(sigma, 1 + 4 * eps(np.float64)):
            raise ClaimFailure(f"a weight matrix has spectral norm {sigma:.17g} > 1")
        tol = (2.0**-51 + 4 * (n + 2) * eps(dtype)) * want * net.depth
    else:
        ok, first, later = exact_constraints(net, p)
        if not ok:
            raise ClaimFailure(f"constraints for l_{p:g} violated: {first:.17g}, {later:.17g}")
        # Negation, MaxMin and selections are exact; ||x||_1 = s . x sums n terms.
        tol = 0.0 if ord_ == math.inf else 2 * n * eps(dtype) * want
    err = np.abs(got - want)
    if not np.all(err <= tol):
        k = int(np.argmax(err - tol))
        raise ClaimFailure(f"network gives {got[k]:.17g} for ||x||_{ord_:g} = {want[k]:.17g} (row {k})")
    figures = {"error": float(np.max(err))}
    if p is None and n == 1:
        # d|x|/dx = sign(x) off 0; at 0 (a tie of MaxMin) the derivative of one piece, +-1 [GS-7].
        x = device_array(backend, case.x, dtype)
        _, residuals = impl.fwd(x, network=net)
        grad = host(impl.bwd(residuals, device_array(backend, np.ones((case.x.shape[0], 1)), dtype)))[:, 0]
        want_grad = np.where(x64[:, 0] != 0, np.sign(x64[:, 0]), np.where(grad < 0, -1.0, 1.0))
        dev = np.abs(grad - want_grad)
        if exceeds(np.max(dev), 2.0**-51 + 8 * eps(dtype)):
            k = int(np.argmax(dev))
            raise ClaimFailure(f"d|x|/dx = {grad[k]:.17g} at x = {x64[k, 0]:.17g}, expected {want_grad[k]:g}")
        figures["gradient_deviation"] = float(np.max(dev))
    return figures


NUMPY = ("numpy",)
SPECIFIC = [
    ("evaluates", "UN-2", "F(x) equals a dense float64 evaluation with MaxMin as min/max of pairs", "general",
     _check_evaluates, None),
    ("lipschitz", "UN-1", "constrained for l_p => 1-Lipschitz from l_p", "pair", _check_lipschitz, None),
    ("two_point", "UN-4", "the two-point interpolant passes through both points, its gradient in the dual-norm "
     "unit ball exactly",
     "two_point", _check_two_point, None),
    ("interpolates", "UN-8", "max_i min_j g_ij takes the data's values at the data points", "interpolation",
     _check_interpolates, None),
    ("constrained", "UN-8", "the interpolant meets the constraints exactly, has the stated depth and is "
     "1-Lipschitz in l_p", "interpolation", _check_constrained, NUMPY),
    ("refuses", "UN-13", "data that are not 1-Lipschitz are refused, naming the worst pair", "not_lipschitz",
     _check_refuses, NUMPY),
    ("lattice", "UN-3", "lattice max / min of constrained networks are constrained and compute the pointwise "
     "max / min", "lattice", _check_lattice, None),
    ("approximation", "UN-10", "approximate() builds a delta-net and a network within its reported 2 delta of f",
     "approximation", _check_approximation, NUMPY),
    ("norms", "UN-5", "abs(x), the l_inf and l_1 norms exactly under their constraints; abs(x) has derivative "
     "sign(x)",
     "norms", _check_norms, None),
]

CLAIMS = [register_claim(Claim(f"{PRIMITIVE}.{name}", PRIMITIVE, label, text, kind, check, backends=backends,
                               needs=("fwd", "bwd") if name == "norms" else ("fwd",)))
          for name, label, text, kind, check, backends in SPECIFIC]
CLAIMS += generic_claims(PRIMITIVE, "UN-2")
