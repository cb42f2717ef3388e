"""Checks of the universality constructions (proofs/universality.md, claim C7 of the paper):
the two-point interpolant, the interpolant ``max_i min_j g_ij``, the lattice operations, the
approximation on a net and the norm networks of :mod:`reflip.universality`. They are claims of
the ``max_min_network`` primitive (each builds a network and evaluates it with the
implementation under audit) and use its oracles (:mod:`reflip.audit.universality`).

Oracles besides those: brute force over all pairs for the Lipschitz test of data,
nearest-point search for the covering radius of a net, and the targets' own formulas
(:func:`reflip.testing.networks.target_values`).

A check takes the construction from ``impl.construction`` when the implementation carries one
(the meta-tests plant broken constructions there) and from :mod:`reflip.universality`
otherwise; the network is always evaluated by the implementation under audit.
"""
from __future__ import annotations

import math

import numpy as np

import reflip.universality as reference

from ..testing.networks import target_values
from ..tolerances import eps
from .engine import ClaimFailure, NotMeasured, claim, device_array, exceeds, host, rng_for
from .universality import evaluate, exact_constraints, interpolation_tolerance, lipschitz_ratio, rounding_bound

NUMPY = ("numpy",)


def _construction(impl):
    return getattr(impl, "construction", None) or reference


@claim("max_min_network.two_point", "UN-4", "two_point")
def _check_two_point(impl, case, backend, dtype):
    """[UN-4] The two-point interpolant passes through both points, its gradient in the dual-norm unit ball exactly.

    g = w . z + c has g(x) = a, g(y) = b and ||w||_q <= 1 (rows of the dual norm ball, checked
    in rational arithmetic)."""
    c_ = _construction(impl)
    x, y = case.x
    a, b, p = case.params["a"], case.params["b"], case.params["p"]
    w, c = c_.two_point_interpolant(x, a, y, b, p)
    g = reference.affine_network(w, c)
    ok, norm, _ = exact_constraints(g, p)
    if not ok:
        raise ClaimFailure(f"||w||_q = {norm:.17g} > 1 for p = {p:g} (q the dual exponent): the interpolant "
                           f"is not in the constrained class")
    got = evaluate(impl, backend, dtype, g, case.x)[:, 0]
    tol = interpolation_tolerance(case.x, np.array([a, b]), dtype)
    err = np.abs(got - np.array([a, b]))
    if not np.all(err <= tol):
        raise ClaimFailure(f"g(x) = {got[0]:.17g}, g(y) = {got[1]:.17g} instead of a = {a:.17g}, b = {b:.17g} "
                           f"(error {np.max(err):.3g} > {tol:.3g})")
    return {"error_over_tol": float(np.max(err) / tol)}


def _build_interpolant(impl, case):
    values = np.asarray(case.params["values"], np.float64)
    return _construction(impl).interpolate(case.x, values, case.params["p"]), values


@claim("max_min_network.interpolates", "UN-8", "interpolation")
def _check_interpolates(impl, case, backend, dtype):
    """[UN-8] max_i min_j g_ij takes the data's values at the data points.

    To the rounding tolerance of [UN-12], which does not grow with the depth."""
    net, values = _build_interpolant(impl, case)
    got = evaluate(impl, backend, dtype, net, case.x)
    if got.shape != (case.x.shape[0], 1):
        raise ClaimFailure(f"the interpolant's output has shape {got.shape}, expected ({case.x.shape[0]}, 1)")
    tol = interpolation_tolerance(case.x, values, dtype)
    err = np.abs(got[:, 0] - values)
    if not np.all(err <= tol):
        k = int(np.argmax(err))
        raise ClaimFailure(f"F(points[{k}]) = {got[k, 0]:.17g} but values[{k}] = {values[k]:.17g} "
                           f"(error {err[k]:.3g} > {tol:.3g})")
    return {"error_over_tol": float(np.max(err) / tol)}


@claim("max_min_network.constrained", "UN-8", "interpolation", backends=NUMPY)
def _check_constrained(impl, case, backend, dtype):
    """[UN-8] [UN-11] The interpolant meets the constraints exactly, has the stated depth and is 1-Lipschitz in l_p.

    Constraints for l_p in exact arithmetic, depth 1 + ceil(log2(N - 1)) + ceil(log2 N), and
    1-Lipschitz in l_p on sampled pairs around the data (pairs of data points included)."""
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
    fx, fy = evaluate(impl, backend, dtype, net, xs[i]), evaluate(impl, backend, dtype, net, ys)
    slack = rounding_bound(net, xs[i], dtype) + rounding_bound(net, ys, dtype)
    bad, ratio = lipschitz_ratio(fx, fy, xs[i], ys, p, slack)
    if bad.any():
        k = int(np.argmax(bad))
        raise ClaimFailure(f"|F(x) - F(y)| / ||x - y||_{p:g} = {ratio[k]:.10g} > 1 on a sampled pair")
    return {"first_layer_norm": first, "later_norm": later, "max_ratio": float(np.max(ratio))}


@claim("max_min_network.refuses", "UN-13", "not_lipschitz", backends=NUMPY)
def _check_refuses(impl, case, backend, dtype):
    """[UN-13] Data that are not 1-Lipschitz are refused, naming the worst pair.

    The worst pair is found here by brute force over all pairs."""
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


@claim("max_min_network.lattice", "UN-3", "lattice")
def _check_lattice(impl, case, backend, dtype):
    """[UN-3] Lattice max / min of constrained networks are constrained and compute the pointwise max / min.

    To the operands' rounding (exactly on dyadic data, tests/test_universality.py); the
    constraints hold exactly and the depth is max + 1."""
    c_ = _construction(impl)
    a, b, p = case.params["first"], case.params["second"], case.params["p"]
    fa, fb = (evaluate(impl, backend, dtype, net, case.x) for net in (a, b))
    figures = {}
    for name, op in (("lattice_max", np.maximum), ("lattice_min", np.minimum)):
        net = getattr(c_, name)(a, b)
        ok, first, later = exact_constraints(net, p)
        if not ok:
            raise ClaimFailure(f"{name}: constraints violated (||W_1||_{{{p:g},inf}} = {first:.17g}, "
                               f"max_k ||W_k||_inf = {later:.17g})")
        got = evaluate(impl, backend, dtype, net, case.x)
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


@claim("max_min_network.approximation", "UN-10", "approximation", backends=NUMPY)
def _check_approximation(impl, case, backend, dtype):
    """[UN-9] [UN-10] approximate() builds a delta-net and a network within its reported 2 delta of f.

    approximate(f, box, delta, p): every sample within delta of a net point (by brute force),
    the network within its reported bound of f on samples; the reported bound is the
    theorem's 2 delta, which the tent target nearly attains (so a bound of delta is caught)."""
    c_ = _construction(impl)
    params = case.params
    box, delta, p = params["box"], params["delta"], params["p"]
    target = params["target"]
    if target["kind"] == "tent":
        target = _tent(target, c_, p)
        if target is None:
            raise NotMeasured("the delta-net has one point along the tent's axis: no tent fits")
    result = c_.approximate(lambda x: target_values(target, x, p), box, delta, p)
    rng = rng_for(np.asarray(result.points))
    xs = _samples_in_box(rng, box, np.asarray(result.points))
    nearest = np.min(np.linalg.norm(xs[:, None] - np.asarray(result.points)[None], ord=p, axis=-1), axis=1)
    if not np.all(nearest <= delta * (1 + 4 * eps(np.float64))):
        raise ClaimFailure(f"not a delta-net: a point of the box is {np.max(nearest):.6g} > delta = {delta} "
                           f"from every net point")
    if exceeds(result.error_bound, 2 * delta):
        raise ClaimFailure(f"reported bound {result.error_bound} > 2 delta = {2 * delta}")
    got = evaluate(impl, backend, dtype, result.network, xs)[:, 0]
    err = np.abs(got - target_values(target, xs, p))
    tol = interpolation_tolerance(result.points, result.values, dtype) + float(
        np.max(rounding_bound(result.network, xs, dtype)))
    worst = float(np.max(err))
    if exceeds(worst, result.error_bound + tol):
        raise ClaimFailure(f"measured sup error {worst:.6g} > reported bound {result.error_bound:.6g} "
                           f"(delta = {delta}, {result.points.shape[0]} net points, target {target['kind']})")
    return {"error_over_delta": worst / delta}


@claim("max_min_network.norms", "UN-5", "norms", needs=("fwd", "bwd"))
def _check_norms(impl, case, backend, dtype):
    """[UN-5] abs(x), the l_inf and l_1 norms exactly under their constraints; abs(x) has derivative sign(x).

    The norm networks compute ||x||_ord exactly (to 2^-51 relative for the spectral-norm ones,
    whose weights are 1/sqrt(2) rounded down) and meet their constraints (exactly for the
    universality ones, by SVD for the spectral-norm ones); the spectral-norm |x| network has
    derivative sign(x), of norm 1, at every x."""
    c_ = _construction(impl)
    ord_, p = case.params["ord"], case.params["p"]
    n = case.x.shape[1]
    net = c_.norm_network(n, ord_, p=p)
    x64 = np.asarray(case.x, np.float64)
    want = np.linalg.norm(x64, ord=ord_, axis=1)
    got = evaluate(impl, backend, dtype, net, case.x)[:, 0]
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
