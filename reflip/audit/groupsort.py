"""GroupSort claims (proofs/groupsort.md), checked on any implementation of the registry's
``group_sort`` interface."""
from __future__ import annotations

import itertools

import numpy as np

from .engine import ClaimFailure, claim, claims_for, device_array, exceeds, host, rng_for
from .generic import fd_check, generic_claims

PRIMITIVE = "group_sort"
FWD, BWD = ("fwd",), ("fwd", "bwd")


def _groups(a, params):
    """Host view ``(..., n // k, k)`` of ``a`` with the feature axis last."""
    a = np.moveaxis(np.asarray(a), params["axis"], -1)
    k = params["group_size"]
    return a.reshape(*a.shape[:-1], a.shape[-1] // k, k)


def _run(impl, case, backend, dtype, x=None):
    x = device_array(backend, case.x if x is None else x, dtype)
    y, residuals = impl.fwd(x, **case.params)
    return x, y, residuals


@claim("group_sort.sorted_permutation_ties", "GS-1", "ties", cases="inputs full of ties and signed zeros")
@claim("group_sort.sorted_permutation", "GS-1", "general")
def _check_sorted_permutation(impl, case, backend, dtype):
    """[GS-1] Each group is sorted ascending and is a permutation of its input."""
    _, y, _ = _run(impl, case, backend, dtype)
    xg, yg = _groups(host(case.x, dtype), case.params), _groups(host(y, dtype), case.params)
    if xg.shape != yg.shape:
        raise ClaimFailure(f"output shape {host(y).shape} differs from input shape {case.x.shape}")
    if np.any(exceeds(0.0, np.diff(yg, axis=-1))):  # NaN fails too [AU-1]
        raise ClaimFailure("a group of the output is not sorted ascending")
    if not np.array_equal(np.sort(xg, axis=-1), yg):
        raise ClaimFailure("a group of the output is not a permutation of the same group of the "
                           "input (wrong grouping, group size or number of groups?)")
    return {}


@claim("group_sort.lipschitz", "GS-2", "pair")
def _check_lipschitz(impl, case, backend, dtype):
    """[GS-2] 1-Lipschitz in l1, l2 and l_inf.

    ||f(x) - f(x')||_p <= ||x - x'||_p for p in {1, 2, inf}."""
    fx = host(impl.fun(device_array(backend, case.x, dtype), **case.params))
    fx2 = host(impl.fun(device_array(backend, case.x2, dtype), **case.params))
    # Differences of float32/float64 values are exact in float64 (up to one rounding for
    # float64 inputs), so the bound holds to a few ulps.
    dx, dy = (np.asarray(case.x, np.float64) - np.asarray(case.x2, np.float64)).ravel(), (fx - fx2).ravel()
    figures = {}
    for p in (1, 2, np.inf):
        lhs, rhs = np.linalg.norm(dy, p), np.linalg.norm(dx, p)
        figures[f"ratio_l{p}"] = lhs / rhs if rhs > 0 else 0.0
        if exceeds(lhs, rhs * (1 + 1e-12)):
            raise ClaimFailure(f"||f(x) - f(x')||_{p} = {lhs:.10g} > ||x - x'||_{p} = {rhs:.10g}", figures)
    return figures


@claim("group_sort.homogeneous_shift", "GS-3", "general")
def _check_homogeneous_shift(impl, case, backend, dtype):
    """[GS-3] Positively homogeneous and equivariant to per-group shifts.

    f(a x) = a f(x) for a > 0 and f(x + c 1_g) = f(x) + c 1_g, exactly in floating point
    (rounding is monotone, so the order is kept)."""
    params = case.params
    x = np.asarray(case.x, dtype)
    fx = host(impl.fun(device_array(backend, x, dtype), **params), dtype)
    for a in (np.asarray(3.0, dtype), np.asarray(0.375, dtype)):
        got = host(impl.fun(device_array(backend, a * x, dtype), **params), dtype)
        if not np.array_equal(got, a * fx):
            raise ClaimFailure(f"not positively homogeneous: f({a} x) != {a} f(x)")
    # One shift per group, broadcast over the group's entries.
    c = rng_for(case.x).integers(-8, 9, size=_groups(x, params).shape[:-1] + (1,)).astype(dtype)
    shift = np.broadcast_to(c, _groups(x, params).shape)
    shift = np.moveaxis(shift.reshape(*shift.shape[:-2], -1), -1, params["axis"])
    got = host(impl.fun(device_array(backend, x + shift, dtype), **params), dtype)
    if not np.array_equal(got, fx + shift):
        raise ClaimFailure("not equivariant to per-group shifts: f(x + c 1_g) != f(x) + c 1_g")
    return {}


@claim("group_sort.isometry_ties", "GS-5", "ties", needs=BWD, cases="inputs full of ties")
@claim("group_sort.isometry", "GS-5", "general", needs=BWD)
def _check_isometry(impl, case, backend, dtype):
    """[GS-5] The VJP permutes the cotangent within each group (every l_p norm kept).

    The isometry holds for any permutation, so the claim at ties stays in force whatever tie
    policy an implementation declares."""
    _, y, residuals = _run(impl, case, backend, dtype)
    y_bar = rng_for(case.x).standard_normal(case.x.shape).astype(dtype)
    x_bar = host(impl.bwd(residuals, device_array(backend, y_bar, dtype)), dtype)
    if x_bar.shape != y_bar.shape:
        raise ClaimFailure(f"VJP shape {x_bar.shape} differs from the input shape {y_bar.shape}")
    gx, gy = _groups(x_bar, case.params), _groups(y_bar, case.params)
    figures = {}
    for p in (1, 2, np.inf):
        nx = np.linalg.norm(x_bar.ravel().astype(np.float64), p)
        ny = np.linalg.norm(y_bar.ravel().astype(np.float64), p)
        figures[f"norm_change_l{p}"] = abs(float(nx) - float(ny)) / float(ny)
    if not np.array_equal(np.sort(gx, axis=-1), np.sort(gy, axis=-1)):
        raise ClaimFailure("the VJP is not a permutation of the cotangent within each group "
                           f"(relative l2 norm change {figures['norm_change_l2']:.3g})"
                           + _tie_trap(host(case.x, dtype), gx, gy, case.params), figures)
    return figures


def _tie_trap(x, gx, gy, params):
    """Name the tie trap behind a VJP that is no permutation [GS-7]: in a group with tied
    inputs, one cotangent sent to two entries (a mask ``x_i == y_j`` backward), two sent to
    one entry (max and min both taking the first index of a tie, as PyTorch's do), or the
    tied cotangents averaged over the tied entries (``torch.maximum`` / ``torch.minimum``, whose
    gradient at ``a == b`` is half to each)."""
    xg = _groups(x, params).reshape(-1, gx.shape[-1])
    flat_x, flat_y = gx.reshape(-1, gx.shape[-1]), gy.reshape(-1, gy.shape[-1])
    for group, bx, by in zip(xg, flat_x, flat_y, strict=True):
        if len(np.unique(group)) == group.size or np.array_equal(np.sort(bx), np.sort(by)):
            continue
        subsets = [c for r in range(2, by.size + 1) for c in itertools.combinations(by.tolist(), r)]
        sums = np.array([sum(c) for c in subsets])
        means = np.array([sum(c) / len(c) for c in subsets])
        # y_bar is Gaussian: a VJP entry equal (to rounding) to a sum or a mean of several
        # cotangents is no accident.
        averaged = np.isclose(bx[:, None], means[None, :], rtol=1e-5, atol=0).any(axis=-1)
        if np.count_nonzero(averaged) >= 2:
            return ("; at tied inputs every tied entry received the AVERAGE of their cotangents, (g1 + g2) / 2: "
                    "the gradient of torch.maximum / torch.minimum (or jnp.maximum / jnp.minimum) at a tie, "
                    "split half to each input, as in half-split MaxMin ports built on them; the VJP must "
                    "send each cotangent whole to one tied entry, by the stable order [GS-7]")
        if not np.any(np.isclose(bx[:, None], sums[None, :], rtol=1e-5, atol=0)):
            continue
        if np.count_nonzero(bx == 0) > np.count_nonzero(by == 0):
            return ("; at tied inputs several cotangents reached one entry and none another (max and min "
                    "both taking the first index of a tie, as PyTorch's do?)")
        return ("; at tied inputs every tied entry received the sum of their cotangents (a mask backward "
                "sending y_bar_j to every x_i equal to y_j?)")
    return ""


# Only this claim states reflip's tie policy (the stable order): it does not apply to an
# implementation declaring another.
@claim("group_sort.ties", "GS-7", "ties", needs=BWD, convention=("group_sort.ties", "stable"))
def _check_ties(impl, case, backend, dtype):
    """[GS-7] At ties, derivatives follow the stable order (finite differences of the index-perturbed input).

    VJP and JVP are the derivative at the input perturbed by +delta * index within each group,
    computed by central differences."""
    params = case.params
    k = params["group_size"]
    delta = 0.125  # tie values differ by >= 0.5, so this only breaks the ties, by index.
    ramp = np.broadcast_to(np.arange(k) * (delta / k), _groups(case.x, params).shape)
    ramp = np.moveaxis(ramp.reshape(*ramp.shape[:-2], -1), -1, params["axis"])
    x_pert = np.asarray(case.x, np.float64) + ramp
    rng = rng_for(case.x)
    x_dot, y_bar = rng.standard_normal(case.x.shape), rng.standard_normal(case.x.shape)
    step = delta / (4 * k) / max(1.0, float(np.max(np.abs(x_dot))))
    try:
        return fd_check(impl, backend, dtype, case.x, x_pert, params, x_dot, y_bar, step)
    except ClaimFailure as exc:
        # Name the tie trap (a cotangent summed, doubled or averaged at a tie) when there is one.
        _, _, residuals = _run(impl, case, backend, dtype)
        g = rng_for(case.x).standard_normal(case.x.shape).astype(dtype)
        x_bar = host(impl.bwd(residuals, device_array(backend, g, dtype)), dtype)
        trap = _tie_trap(host(case.x, dtype), _groups(x_bar, params), _groups(g, params), params)
        if not trap:
            raise
        raise ClaimFailure(f"{exc}{trap}", exc.figures) from None


def _moved(a, src, dst):
    return np.ascontiguousarray(np.moveaxis(np.asarray(a), src, dst))


@claim("group_sort.batch_axis", "GS-10", "general", needs=BWD)
def _check_batch_axis(impl, case, backend, dtype):
    """[GS-10] Any axis and any batch give the same result as the last axis and one slice.

    Any axis equals the last axis after moving it there, and a batch equals its slices, for the
    forward and the VJP."""
    params = case.params
    x = np.asarray(case.x, dtype)
    axis = params["axis"] % x.ndim
    y_bar = rng_for(case.x).standard_normal(x.shape).astype(dtype)

    def both(xa, ya, ax):
        y, residuals = impl.fwd(device_array(backend, xa, dtype), group_size=params["group_size"], axis=ax)
        return host(y, dtype), host(impl.bwd(residuals, device_array(backend, ya, dtype)), dtype)

    y, x_bar = both(x, y_bar, params["axis"])
    y_last, x_bar_last = both(_moved(x, axis, -1), _moved(y_bar, axis, -1), -1)
    if not (np.array_equal(y, np.moveaxis(y_last, -1, axis))
            and np.array_equal(x_bar, np.moveaxis(x_bar_last, -1, axis))):
        raise ClaimFailure(f"axis={params['axis']} differs from moving that axis last")
    if x.ndim > 1:
        batch_axis = 0 if axis != 0 else 1
        for i in range(x.shape[batch_axis]):
            xi, yi = np.take(x, i, axis=batch_axis), np.take(y_bar, i, axis=batch_axis)
            ax = axis - (batch_axis < axis)
            ys, xs = both(xi, yi, ax)
            if not (np.array_equal(ys, np.take(y, i, axis=batch_axis))
                    and np.array_equal(xs, np.take(x_bar, i, axis=batch_axis))):
                raise ClaimFailure(f"slice {i} of batch axis {batch_axis} differs from the batched result")
    return {}


generic_claims(PRIMITIVE, "GS-4")
CLAIMS = claims_for(PRIMITIVE)
