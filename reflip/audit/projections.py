"""Claims of the norm projections and row scalings (proofs/projections.md), checked on any
implementation of the registry's ``linf_project``, ``pinf_project`` and ``row_scale``
interfaces (spectral normalization: :mod:`reflip.audit.spectral`).

The oracles know nothing of the sort-based formula: the l1-ball projection is found by
bisection on the threshold in float64, the l2-ball projection and clipping by their closed
forms, optimality by the KKT conditions.
"""
from __future__ import annotations

import numpy as np

from ..norms import dual_exponent
from ..tolerances import exact_rtol
from .engine import ClaimFailure, NotMeasured, claim, claims_for, device_array, exceeds, host, rng_for
from .generic import DECLARED_DERIVATIVES, dot, fd_check, generic_claims

__all__ = ["l1_ball_oracle", "l2_ball_oracle", "clip_oracle", "ball_oracle"]


# --------------------------------------------------------------------------- oracles (float64)


def l1_ball_oracle(v, radius, iterations=200):
    """Projection of every row of ``v`` onto the l1 ball, by bisection for the root ``theta``
    of ``phi(theta) = sum_i max(|v_i| - theta, 0) - r`` [PR-2] (no sorting, no rho): ``phi``
    is decreasing, ``phi(0) > 0`` for rows outside and ``phi(max |v|) < 0``."""
    v = np.asarray(v, np.float64)
    theta, inside = l1_ball_threshold(v, radius, iterations)
    return np.where(inside, v, np.sign(v) * np.maximum(np.abs(v) - theta, 0.0))


def l1_ball_threshold(v, radius, iterations=200):
    """The threshold ``theta`` of every row of ``v`` (shape ``v.shape[:-1] + (1,)``), found by
    the bisection of :func:`l1_ball_oracle`, and whether the row is inside the ball [PR-2]."""
    v = np.asarray(v, np.float64)
    a = np.abs(v)
    lo = np.zeros(v.shape[:-1] + (1,))
    hi = np.max(a, axis=-1, keepdims=True)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = np.sum(np.maximum(a - mid, 0.0), axis=-1, keepdims=True) > radius
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    return 0.5 * (lo + hi), np.sum(a, axis=-1, keepdims=True) <= radius


def frozen_threshold(x, params):
    """Under a declared ``threshold = "detached"`` (the authors' convention [PR-5]), the
    function whose derivative the VJP is: the soft threshold ``sign(v) max(|v| - theta, 0)``
    with every row's ``theta`` held at its value at ``x`` (found by bisection, float64), and the
    identity on rows inside the ball at ``x``. Central differences of it at ``x`` are the
    declared derivative [AU-4]; ``None`` for the exact convention (the projection's own)."""
    if params.get("threshold", "exact") != "detached":
        return None
    theta, inside = l1_ball_threshold(x, params["radius"])

    def soft_threshold_at_fixed_theta(v):
        v = np.asarray(v, np.float64)
        return np.where(inside, v, np.sign(v) * np.maximum(np.abs(v) - theta, 0.0))

    return soft_threshold_at_fixed_theta


DECLARED_DERIVATIVES["linf_project"] = frozen_threshold


def l2_ball_oracle(v, radius):
    """``v min(1, r / ||v||_2)`` row by row [PR-8]."""
    v = np.asarray(v, np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(norm <= radius, v, v * (radius / np.where(norm > 0, norm, 1.0)))


def clip_oracle(v, radius):
    """Entrywise clipping to ``[-r, r]`` [PR-9]."""
    return np.clip(np.asarray(v, np.float64), -radius, radius)


def ball_oracle(v, p, radius):
    """Projection onto ``{W : ||W||_{p,inf} <= r}``: every row onto the ball of the dual norm
    [PR-7]."""
    if p == np.inf:
        return l1_ball_oracle(v, radius)
    return l2_ball_oracle(v, radius) if p == 2 else clip_oracle(v, radius)


def _row_norms(a, q):
    return np.linalg.norm(np.asarray(a, np.float64), ord=q, axis=-1)


def _tol(dtype, v, radius):
    """Absolute tolerance per row (shape ``v.shape[:-1]``) for a row of ``n`` entries: every
    computed quantity of [PR-13] carries a relative error of at most ``(n + 2) eps`` of the row's
    scale ``||v||_1 + r``; ``exact_rtol(dtype, 2n + 4)`` leaves a factor 2 (and 4) of room."""
    n = np.shape(v)[-1]
    return exact_rtol(dtype, 2 * n + 4) * (_row_norms(v, 1) + radius)


def _run(impl, case, backend, dtype, x=None, **params):
    x = device_array(backend, case.x if x is None else x, dtype)
    return impl.fwd(x, **{**case.params, **params})


def _same_bits(a, b):
    """Equal bit for bit AND finite: two NaN outputs agree bitwise, but a finite input never
    has a NaN projection, so they fail [AU-1]."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return (a.shape == b.shape and bool(np.all(np.isfinite(a)))
            and bool(np.all(a.view(np.uint8).reshape(*a.shape, -1) == b.view(np.uint8).reshape(*b.shape, -1))))


def _agree(a, b, tol):
    """``a`` equals ``b`` bit for bit (``tol`` None) or within ``tol`` entrywise, NaN failing."""
    if tol is None:
        return _same_bits(a, b)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and not np.any(exceeds(np.abs(a - b), tol))


def _rowwise_same_bits(a, b):
    """Per row (last axis): are the two arrays equal bit for bit?"""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return np.all(a.view(np.uint8).reshape(*a.shape[:-1], -1) == b.view(np.uint8).reshape(*b.shape[:-1], -1),
                  axis=-1)


def _first_bad(mask):
    return tuple(int(i) for i in np.argwhere(mask)[0])


# --------------------------------------------------------------------------- checks of the projections
# A check that holds for several primitives is declared for each. Every primitive here has a
# norm p (``linf_project`` takes none: its p is inf) and bounds the dual norm q of each row.

FWD, FWD_BWD = ("fwd",), ("fwd", "bwd")


def _p_of(case):
    """The primal norm of the case: ``params["p"]``, or inf for ``linf_project``."""
    p = case.params.get("p", np.inf)
    return np.inf if p == np.inf else int(p)


@claim("row_scale.feasible", "PR-10", "general")
@claim("pinf_project.feasible", "PR-7", "general")
@claim("linf_project.feasible", "PR-1", "general")
def _check_feasible(impl, case, backend, dtype):
    """[PR-1] [PR-7] Every output row lies in the dual-norm ball: ||y_i||_q <= r.

    Up to the rounding of [PR-13]; for ``linf_project`` (p = inf) q = 1: ||P(W)||_inf <= r."""
    r = case.params["radius"]
    q = dual_exponent(_p_of(case))
    y, _ = _run(impl, case, backend, dtype)
    y = host(y)
    if y.shape != np.shape(case.x):
        raise ClaimFailure(f"output shape {y.shape} differs from the input shape {np.shape(case.x)}")
    norms = _row_norms(y, q)
    excess = norms - r - _tol(dtype, case.x, r)
    if np.any(exceeds(excess, 0.0)):
        i = _first_bad(exceeds(excess, 0.0))
        raise ClaimFailure(f"row {i} leaves the ball: ||y||_{q:g} = {norms[i]:.10g} > r = {r} "
                           f"(beyond rounding by {excess[i]:.3g})")
    return {"norm_over_radius": float(np.max(norms)) / r}


def _identity_inside(impl, case, backend, dtype, exact_sums):
    r = case.params["radius"]
    q = dual_exponent(_p_of(case))
    x = np.asarray(case.x, dtype)
    y, _ = _run(impl, case, backend, dtype)
    same = _rowwise_same_bits(host(y, dtype), x)
    norms = _row_norms(x, q)
    margin = 0.0 if exact_sums else _tol(dtype, x, r)
    must = norms <= r - margin
    if not np.any(must):
        raise NotMeasured("no row inside the ball: the claim is about those rows")
    if np.any(must & ~same):
        i = _first_bad(must & ~same)
        raise ClaimFailure(f"row {i} is inside the ball (||x||_{q:g} = {norms[i]:.10g} <= r = {r}) "
                           "but was changed (rows inside must be returned unchanged, bit for bit)")
    return {}


@claim("row_scale.identity_inside", "PR-10", "general")
@claim("pinf_project.identity_inside", "PR-7", "general")
@claim("linf_project.identity_inside", "PR-1", "general")
def _check_identity_inside(impl, case, backend, dtype):
    """[PR-1] Rows inside the ball are returned unchanged, bit for bit.

    Rows whose float64 norm is <= r come back bit for bit; rows within rounding of the sphere
    [PR-13] may go either way."""
    return _identity_inside(impl, case, backend, dtype, exact_sums=False)


@claim("linf_project.identity_inside_ties", "PR-13", "ties")
def _check_identity_on_sphere(impl, case, backend, dtype):
    """[PR-13] Rows inside the ball or exactly on the sphere are returned unchanged, bit for bit.

    The constructed cases' row norms are exact in every dtype, so no row is within rounding of
    the sphere."""
    return _identity_inside(impl, case, backend, dtype, exact_sums=True)


# Backends whose sums along a contiguous last axis do not depend on the batch shape: NumPy runs
# the same pairwise loop over a 1-d row and over each row of a stack (array_api_strict wraps
# NumPy). CuPy picks its reduction and scan kernels by shape (a 1-d array and the rows of a
# stack are summed in different orders), and a framework behind an adapter picks its own.
_BATCH_INVARIANT_SUMS = ("numpy", "array_api_strict", "array_api_strict-nodds")


@claim("linf_project.rowwise", "PR-1", "general", needs=FWD_BWD)
def _check_rowwise(impl, case, backend, dtype):
    """[PR-1] [PR-13] A stack equals its rows projected one at a time (forward and VJP).

    Each row projected alone (as a 1-d array) equals its row of the batched result. Bit for bit
    for reflip's own code on NumPy; elsewhere up to the order of the row's sums: within
    ``2 _tol`` for the forward (both results are within ``_tol`` of the exact projection) and
    ``exact_rtol(dtype, 2n + 4) sum |g|`` for the VJP (two orders of one sum differ by at most
    ``2 (n - 1) eps sum |g_j|``)."""
    from .adapter import AdapterImpl

    x = np.asarray(case.x, dtype)
    n, r = x.shape[-1], case.params["radius"]
    exact = backend.name in _BATCH_INVARIANT_SUMS and not isinstance(impl, AdapterImpl)
    y, res = _run(impl, case, backend, dtype)
    g = rng_for(case.x).standard_normal(x.shape).astype(dtype)
    y = host(y, dtype).reshape(-1, n)
    x_bar = host(impl.bwd(res, device_array(backend, g, dtype)), dtype).reshape(-1, n)
    for i, (xi, gi) in enumerate(zip(x.reshape(-1, n), g.reshape(-1, n), strict=True)):
        yi, ri = _run(impl, case, backend, dtype, x=xi)
        tol = None if exact else 2 * _tol(dtype, xi, r)
        if not _agree(host(yi, dtype), y[i], tol):
            raise ClaimFailure(f"row {i} projected alone differs from the batched result"
                               + ("" if exact else f" by more than the rounding of its sums ({tol:.3g})"))
        x_bar_i = host(impl.bwd(ri, device_array(backend, gi, dtype)), dtype)
        tol = None if exact else exact_rtol(dtype, 2 * n + 4) * float(np.sum(np.abs(gi), dtype=np.float64))
        if not _agree(x_bar_i, x_bar[i], tol):
            raise ClaimFailure(f"the VJP of row {i} alone differs from the batched VJP"
                               + ("" if exact else f" by more than the rounding of its sums ({tol:.3g})"))
    return {}


@claim("linf_project.idempotent", "PR-2", "general")
def _check_idempotent(impl, case, backend, dtype):
    """[PR-2] P(P(W)) = P(W).

    Up to rounding: P(x) is feasible, so it is its own projection."""
    r = case.params["radius"]
    y = host(_run(impl, case, backend, dtype)[0], dtype)
    yy = host(_run(impl, case, backend, dtype, x=y)[0])
    err = np.max(np.abs(yy - y), axis=-1)
    tol = _tol(dtype, case.x, r)
    if np.any(exceeds(err, tol)):
        i = _first_bad(exceeds(err, tol))
        raise ClaimFailure(f"P(P(x)) != P(x) in row {i}: max difference {err[i]:.3g} > {tol[i]:.3g}")
    return {}


@claim("linf_project.sign_preserving", "PR-2", "general")
def _check_sign_preserving(impl, case, backend, dtype):
    """[PR-2] Signs kept, magnitudes shrunk, zeros kept.

    y_i x_i >= 0, |y_i| <= |x_i|, and zeros stay zero (exactly: soft thresholding only subtracts
    theta >= 0 from magnitudes above it)."""
    x = np.asarray(case.x, np.float64)
    y = host(_run(impl, case, backend, dtype)[0])
    bad = exceeds(0.0, y * x) | exceeds(np.abs(y), np.abs(x)) | ((x == 0) & (y != 0))
    if np.any(bad):
        i = _first_bad(bad)
        raise ClaimFailure(f"entry {i}: x = {x[i]!r} became y = {y[i]!r} (the projection keeps signs, "
                           "shrinks magnitudes and keeps zeros)")
    return {}


@claim("linf_project.kkt_ties", "PR-2", "ties",
       cases="rows on the sphere, at the threshold, with zeros and repeats")
@claim("linf_project.kkt", "PR-2", "general")
def _check_kkt(impl, case, backend, dtype):
    """[PR-2] The KKT conditions of the l1-ball projection hold row by row.

    Per row, the KKT conditions of min ||y - x||^2 s.t. ||y||_1 <= r: either y = x and
    ||x||_1 <= r, or ||y||_1 = r and there is theta >= 0 with x_i - y_i = theta sign(y_i) where
    y_i != 0 and |x_i| <= theta where y_i = 0 (theta read off the output)."""
    r = case.params["radius"]
    x = np.asarray(case.x, np.float64)
    y = host(_run(impl, case, backend, dtype)[0])
    if y.shape != x.shape:
        raise ClaimFailure(f"output shape {y.shape} differs from the input shape {x.shape}")
    xs, ys = x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1])
    tols = _tol(dtype, xs, r)
    for i, (xi, yi, tol) in enumerate(zip(xs, ys, tols, strict=True)):
        l1 = float(np.sum(np.abs(xi)))
        if np.array_equal(xi, yi):
            if exceeds(l1, r + tol):
                raise ClaimFailure(f"row {i} is outside the ball (||x||_1 = {l1:.10g} > r = {r}) "
                                   "but was returned unchanged")
            continue
        on = yi != 0
        ny = float(np.sum(np.abs(yi)))
        if exceeds(abs(ny - r), tol):
            raise ClaimFailure(f"row {i} was changed but does not land on the sphere: ||y||_1 = {ny:.10g}, r = {r}")
        if np.any(np.sign(yi[on]) != np.sign(xi[on])):
            raise ClaimFailure(f"row {i}: a non-zero output entry has the wrong sign")
        gaps = np.abs(xi[on]) - np.abs(yi[on])
        theta = float(np.mean(gaps))
        if exceeds(-theta, tol) or np.any(exceeds(np.abs(gaps - theta), tol)):
            raise ClaimFailure(f"row {i}: x_i - y_i is not one theta >= 0 times sign(y_i) on the "
                               f"support (|x_i| - |y_i| = {gaps.tolist()})")
        if np.any(exceeds(np.abs(xi[~on]), theta + tol)):
            raise ClaimFailure(f"row {i}: an entry above the threshold theta = {theta:.10g} was set "
                               f"to zero (|x_i| = {np.abs(xi[~on]).max():.10g})")
    return {}


@claim("pinf_project.optimal_ties", "PR-9", "ties", cases="entries exactly at +-r and rows at the threshold")
@claim("pinf_project.optimal", "PR-7", "general")
@claim("linf_project.optimal_ties", "PR-3", "ties", cases="ties")
@claim("linf_project.optimal", "PR-3", "general")
def _check_optimal(impl, case, backend, dtype):
    """[PR-3] [PR-7] Equals the float64 projection (bisection for q = 1, closed forms for q = 2, inf).

    [PR-8] [PR-9]: an independent oracle, bisection on the l1 threshold, closed forms for the l2
    ball and clipping."""
    r = case.params["radius"]
    x = np.asarray(case.x, np.float64)
    y = host(_run(impl, case, backend, dtype)[0])
    expected = ball_oracle(x, _p_of(case), r)
    err = np.max(np.abs(y - expected), axis=-1)
    tol = _tol(dtype, x, r)
    if np.any(exceeds(err, tol)):
        i = _first_bad(exceeds(err, tol))
        raise ClaimFailure(f"row {i} is not the projection: max |y - P(x)| = {err[i]:.3g} > {tol[i]:.3g}; "
                           f"x = {x[i].tolist()}, y = {y[i].tolist()}, P(x) = {expected[i].tolist()}")
    return {"error_over_tol": float(np.max(err / tol))}


@claim("pinf_project.nonexpansive", "PR-6", "pair")
@claim("linf_project.nonexpansive", "PR-6", "pair")
def _check_nonexpansive(impl, case, backend, dtype):
    """[PR-6] Firmly non-expansive in the Frobenius norm.

    ||Pa - Pb||^2 <= <Pa - Pb, a - b>, hence ||Pa - Pb||_F <= ||a - b||_F (up to the rounding of
    both outputs)."""
    r = case.params["radius"]
    a, b = np.asarray(case.x, np.float64), np.asarray(case.x2, np.float64)
    pa = host(_run(impl, case, backend, dtype)[0])
    pb = host(_run(impl, case, backend, dtype, x=case.x2)[0])
    d, e = pa - pb, a - b
    # Each output is within its rows' tolerances of the exact projection (in l2, as in l1).
    slack = float(np.sum(_tol(dtype, a, r)) + np.sum(_tol(dtype, b, r)))
    nd, ne = float(np.linalg.norm(d)), float(np.linalg.norm(e))
    if exceeds(nd, ne + 2 * slack):
        raise ClaimFailure(f"||P(a) - P(b)||_F = {nd:.10g} > ||a - b||_F = {ne:.10g}")
    lhs, rhs = nd * nd, dot(d, e)
    if exceeds(lhs, rhs + slack * (2 * nd + ne + 2 * slack)):
        raise ClaimFailure(f"not firmly non-expansive: ||P(a) - P(b)||^2 = {lhs:.10g} > "
                           f"<P(a) - P(b), a - b> = {rhs:.10g}")
    return {"lipschitz_ratio": nd / ne if ne > 0 else 0.0}


@claim("linf_project.ties", "PR-4", "ties", needs=FWD_BWD)
def _check_ties(impl, case, backend, dtype):
    """[PR-4] At kinks, VJP and JVP are the derivative on the piece the convention picks.

    At kinks (entries exactly at the threshold, rows exactly on the sphere) the VJP and JVP
    equal the derivative at the point moved onto the convention's piece (``case.x2``), by
    central differences there."""
    rng = rng_for(case.x)
    x_dot, y_bar = rng.standard_normal(np.shape(case.x)), rng.standard_normal(np.shape(case.x))
    step = case.max_step / max(1.0, float(np.max(np.abs(x_dot))))
    return fd_check(impl, backend, dtype, case.x, np.asarray(case.x2, np.float64), case.params, x_dot,
                    y_bar, step)


def _both_thresholds(impl):
    """``detached_differs`` sets reflip's ``threshold`` option both ways; a library behind an
    adapter has one threshold convention, declared, and is not passed the option."""
    if not getattr(impl, "takes", lambda param: True)("threshold"):
        return ("compares reflip's two `threshold` options; an adapter is not passed `threshold` (declare the "
                "library's as conventions['linf_project.threshold'])")
    return ""


@claim("linf_project.detached_differs", "PR-5", "general", needs=FWD_BWD, applicable=_both_thresholds)
def _check_detached_differs(impl, case, backend, dtype):
    """[PR-5] threshold='detached' differs from 'exact' by the mean term on the support of rows outside.

    The forward pass does not depend on ``threshold``; the exact and detached VJPs differ by
    exactly -s_i mean_{j in S} s_j g_j on the support S of rows outside the ball, and
    nowhere else."""
    x = np.asarray(case.x, np.float64)
    g = rng_for(case.x).standard_normal(np.shape(case.x))
    y_e, res_e = _run(impl, case, backend, dtype, threshold="exact")
    y_d, res_d = _run(impl, case, backend, dtype, threshold="detached")
    if not _same_bits(host(y_e, dtype), host(y_d, dtype)):
        raise ClaimFailure("the forward pass depends on `threshold` (it must not)")
    gb = device_array(backend, g, dtype)
    diff = host(impl.bwd(res_e, gb)) - host(impl.bwd(res_d, gb))
    y = host(y_e)
    g = np.asarray(g, dtype).astype(np.float64)
    changed = ~_rowwise_same_bits(host(y_e, dtype), np.asarray(case.x, dtype))[..., None]
    s = np.sign(x) * ((y != 0) & changed)
    count = np.maximum(np.sum(s != 0, axis=-1, keepdims=True), 1)
    expected = -s * np.sum(s * g, axis=-1, keepdims=True) / count
    err = np.max(np.abs(diff - expected), axis=-1)
    tol = exact_rtol(dtype, 2 * x.shape[-1] + 4) * (np.sum(np.abs(g), axis=-1) + 1.0)
    if np.any(exceeds(err, tol)):
        i = _first_bad(exceeds(err, tol))
        raise ClaimFailure(f"row {i}: exact - detached VJP = {diff[i].tolist()}, expected the mean "
                           f"term {expected[i].tolist()} (zero on rows inside)")
    return {"mean_term": float(np.max(np.abs(expected)))}


# --------------------------------------------------------------------------- row_scale


@claim("row_scale.scaling", "PR-10", "general")
def _check_scaling(impl, case, backend, dtype):
    """[PR-10] Each row is multiplied by c in (0, 1], landing on the sphere when c < 1."""
    r, p = case.params["radius"], case.params["p"]
    q = dual_exponent(p)
    x = np.asarray(case.x, np.float64)
    y = host(_run(impl, case, backend, dtype)[0])
    nx, ny = _row_norms(x, q), _row_norms(y, q)
    c = np.where(nx > 0, ny / np.where(nx > 0, nx, 1.0), 1.0)[..., None]
    tol = _tol(dtype, x, r)[..., None]
    err = np.max(np.abs(y - c * x), axis=-1, keepdims=True)
    bad = exceeds(err, tol) | exceeds(c, 1 + tol / r)
    if np.any(bad):
        i = _first_bad(bad)[:-1]
        raise ClaimFailure(f"row {i} is not a scaling c x with c in (0, 1]: x = {x[i].tolist()}, y = {y[i].tolist()}")
    off = (nx > r + tol[..., 0]) & exceeds(np.abs(ny - r), tol[..., 0])
    if np.any(off):
        i = _first_bad(off)
        raise ClaimFailure(f"row {i} was scaled to ||y||_{q:g} = {ny[i]:.10g}, not to r = {r}")
    return {}


@claim("row_scale.projection_is_closer", "PR-10", "general")
def _check_projection_is_closer(impl, case, backend, dtype):
    """[PR-10] The projection is at least as close to the input as the scaling.

    ||x - P(x)|| <= ||x - R(x)|| with P the float64 oracle."""
    r, p = case.params["radius"], case.params["p"]
    p = np.inf if p == np.inf else int(p)
    x = np.asarray(case.x, np.float64)
    y = host(_run(impl, case, backend, dtype)[0])
    dp = np.linalg.norm(x - ball_oracle(x, p, r), axis=-1)
    ds = np.linalg.norm(x - y, axis=-1)
    tol = _tol(dtype, x, r)
    if np.any(exceeds(dp, ds + tol)):
        i = _first_bad(exceeds(dp, ds + tol))
        raise ClaimFailure(f"row {i}: the scaling is closer to x than the projection "
                           f"({ds[i]:.10g} < {dp[i]:.10g}): the 'projection' oracle or the scaling is wrong")
    return {"excess_distance": float(np.max(np.where(dp > 0, ds / np.where(dp > 0, dp, 1) - 1, 0)))}


for _primitive, _label in (("linf_project", "PR-4"), ("pinf_project", "PR-8"), ("row_scale", "PR-10")):
    generic_claims(_primitive, _label)
CLAIMS = claims_for("linf_project") + claims_for("pinf_project") + claims_for("row_scale")
