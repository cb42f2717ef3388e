"""Claims of the norm projections, row scalings and spectral normalization
(proofs/projections.md), checked on any implementation of the registry's ``linf_project``,
``pinf_project``, ``row_scale`` and ``spectral_normalize`` interfaces.

The oracles know nothing of the sort-based formula: the l1-ball projection is found by
bisection on the threshold in float64, the l2-ball projection and clipping by their closed
forms, optimality by the KKT conditions, and spectral norms by an SVD.
"""
from __future__ import annotations

import numpy as np

from ..tolerances import eps, exact_rtol
from .engine import Claim, ClaimFailure, device_array, exceeds, host, register_claim, rng_for
from .generic import derivative_rtol, dot, fd_check, generic_claims

__all__ = ["l1_ball_oracle", "l2_ball_oracle", "clip_oracle", "ball_oracle", "dual_norm"]


# --------------------------------------------------------------------------- oracles (float64)


def l1_ball_oracle(v, radius, iterations=200):
    """Projection of every row of ``v`` onto the l1 ball, by bisection for the root ``theta``
    of ``phi(theta) = sum_i max(|v_i| - theta, 0) - r`` [PR-2] (no sorting, no rho): ``phi``
    is decreasing, ``phi(0) > 0`` for rows outside and ``phi(max |v|) < 0``."""
    v = np.asarray(v, np.float64)
    a = np.abs(v)
    lo = np.zeros(v.shape[:-1] + (1,))
    hi = np.max(a, axis=-1, keepdims=True)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = np.sum(np.maximum(a - mid, 0.0), axis=-1, keepdims=True) > radius
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    theta = 0.5 * (lo + hi)
    inside = np.sum(a, axis=-1, keepdims=True) <= radius
    return np.where(inside, v, np.sign(v) * np.maximum(a - theta, 0.0))


def l2_ball_oracle(v, radius):
    """``v min(1, r / ||v||_2)`` row by row [PR-8]."""
    v = np.asarray(v, np.float64)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(norm <= radius, v, v * (radius / np.where(norm > 0, norm, 1.0)))


def clip_oracle(v, radius):
    """Entrywise clipping to ``[-r, r]`` [PR-9]."""
    return np.clip(np.asarray(v, np.float64), -radius, radius)


def dual_norm(p):
    return {1: np.inf, 2: 2, np.inf: 1}[p]


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


# --------------------------------------------------------------------------- shared projection checks


def _q_of(case, default_q):
    p = case.params.get("p")
    return default_q if p is None else dual_norm(p)


def _check_feasible(q_default):
    def feasible(impl, case, backend, dtype):
        """[PR-1] [PR-7] every output row lies in the dual-norm ball: ||y_i||_q <= r (up to the
        rounding of [PR-13])."""
        r = case.params["radius"]
        q = _q_of(case, q_default)
        y, _ = _run(impl, case, backend, dtype)
        y = host(y)
        if y.shape != np.shape(case.x):
            raise ClaimFailure(f"output shape {y.shape} differs from the input shape {np.shape(case.x)}")
        norms = _row_norms(y, q)
        excess = norms - r - _tol(dtype, case.x, r)
        if np.any(exceeds(excess, 0.0)):
            i = _first_bad(exceeds(excess, 0.0))
            raise ClaimFailure(f"row {i} leaves the ball: ||y||_{q} = {norms[i]:.10g} > r = {r} "
                               f"(beyond rounding by {excess[i]:.3g})")
        return {"norm_over_radius": float(np.max(norms)) / r}

    return feasible


def _check_identity_inside(q_default, exact_sums):
    def identity_inside(impl, case, backend, dtype):
        """[PR-1] [PR-13] rows inside the ball (float64 norm <= r) come back bit for bit.

        Rows within rounding of the sphere may go either way unless ``exact_sums`` (the
        constructed cases, whose norms are exact in every dtype)."""
        r = case.params["radius"]
        q = _q_of(case, q_default)
        x = np.asarray(case.x, dtype)
        y, _ = _run(impl, case, backend, dtype)
        same = _rowwise_same_bits(host(y, dtype), x)
        norms = _row_norms(x, q)
        margin = 0.0 if exact_sums else _tol(dtype, x, r)
        must = norms <= r - margin
        if np.any(must & ~same):
            i = _first_bad(must & ~same)
            raise ClaimFailure(f"row {i} is inside the ball (||x||_{q} = {norms[i]:.10g} <= r = {r}) "
                               "but was changed (rows inside must be returned unchanged, bit for bit)")
        return {}

    return identity_inside


def _check_optimal(q_default):
    def optimal(impl, case, backend, dtype):
        """[PR-3] [PR-7] [PR-8] [PR-9] the output is the projection found by an independent
        float64 oracle (bisection on the l1 threshold, closed forms for l2 and l_inf)."""
        r = case.params["radius"]
        p = case.params.get("p", np.inf)
        p = np.inf if p == np.inf else int(p)
        x = np.asarray(case.x, np.float64)
        y = host(_run(impl, case, backend, dtype)[0])
        expected = ball_oracle(x, p, r)
        err = np.max(np.abs(y - expected), axis=-1)
        tol = _tol(dtype, x, r)
        if np.any(exceeds(err, tol)):
            i = _first_bad(exceeds(err, tol))
            raise ClaimFailure(f"row {i} is not the projection: max |y - P(x)| = {err[i]:.3g} > {tol[i]:.3g}; "
                               f"x = {x[i].tolist()}, y = {y[i].tolist()}, P(x) = {expected[i].tolist()}")
        return {"error_over_tol": float(np.max(err / tol))}

    return optimal


def _check_nonexpansive(impl, case, backend, dtype):
    """[PR-6] projections are firmly non-expansive: ||Pa - Pb||^2 <= <Pa - Pb, a - b>, hence
    ||Pa - Pb||_F <= ||a - b||_F (up to the rounding of both outputs)."""
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


# --------------------------------------------------------------------------- linf_project only


def _check_idempotent(impl, case, backend, dtype):
    """[PR-2] P(P(x)) = P(x) up to rounding (P(x) is feasible, so it is its own projection)."""
    r = case.params["radius"]
    y = host(_run(impl, case, backend, dtype)[0], dtype)
    yy = host(_run(impl, case, backend, dtype, x=y)[0])
    err = np.max(np.abs(yy - y), axis=-1)
    tol = _tol(dtype, case.x, r)
    if np.any(exceeds(err, tol)):
        i = _first_bad(exceeds(err, tol))
        raise ClaimFailure(f"P(P(x)) != P(x) in row {i}: max difference {err[i]:.3g} > {tol[i]:.3g}")
    return {}


def _check_sign_preserving(impl, case, backend, dtype):
    """[PR-2] y_i x_i >= 0, |y_i| <= |x_i|, and zeros stay zero (exactly: soft thresholding only
    subtracts theta >= 0 from magnitudes above it)."""
    x = np.asarray(case.x, np.float64)
    y = host(_run(impl, case, backend, dtype)[0])
    bad = exceeds(0.0, y * x) | exceeds(np.abs(y), np.abs(x)) | ((x == 0) & (y != 0))
    if np.any(bad):
        i = _first_bad(bad)
        raise ClaimFailure(f"entry {i}: x = {x[i]!r} became y = {y[i]!r} (the projection keeps signs, "
                           "shrinks magnitudes and keeps zeros)")
    return {}


def _check_kkt(impl, case, backend, dtype):
    """[PR-2] per row, the KKT conditions of min ||y - x||^2 s.t. ||y||_1 <= r: either y = x and
    ||x||_1 <= r, or ||y||_1 = r and there is theta >= 0 with x_i - y_i = theta sign(y_i) where
    y_i != 0 and |x_i| <= theta where y_i = 0 (theta read off the output)."""
    r = case.params["radius"]
    x = np.asarray(case.x, np.float64)
    y = host(_run(impl, case, backend, dtype)[0])
    if y.shape != x.shape:
        raise ClaimFailure(f"output shape {y.shape} differs from the input shape {x.shape}")
    xs, ys = x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1])
    tols = _tol(dtype, xs, r)
    for i, (xi, yi, tol) in enumerate(zip(xs, ys, tols)):
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


def _check_detached_differs(impl, case, backend, dtype):
    """[PR-5] the forward pass does not depend on ``threshold``; the exact and detached VJPs
    differ by exactly -s_i mean_{j in S} s_j g_j on the support S of rows outside the ball, and
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


def _check_ties(impl, case, backend, dtype):
    """[PR-4] at kinks (entries exactly at the threshold, rows exactly on the sphere) the VJP
    and JVP equal the derivative at the point moved onto the convention's piece (``case.x2``),
    by central differences there."""
    rng = rng_for(case.x)
    x_dot, y_bar = rng.standard_normal(np.shape(case.x)), rng.standard_normal(np.shape(case.x))
    step = case.max_step / max(1.0, float(np.max(np.abs(x_dot))))
    return fd_check(impl, backend, dtype, case.x, np.asarray(case.x2, np.float64), case.params, x_dot,
                    y_bar, step)


# Backends whose sums along a contiguous last axis do not depend on the batch shape: NumPy runs
# the same pairwise loop over a 1-d row and over each row of a stack (array_api_strict wraps
# NumPy). CuPy picks its reduction and scan kernels by shape (a 1-d array and the rows of a
# stack are summed in different orders), and a framework behind an adapter picks its own.
_BATCH_INVARIANT_SUMS = ("numpy", "array_api_strict", "array_api_strict-nodds")


def _check_rowwise(impl, case, backend, dtype):
    """[PR-1] [PR-13] the projection acts row by row: each row projected alone (as a 1-d array)
    equals its row of the batched result, forward and VJP. Bit for bit for reflip's own code on
    NumPy; elsewhere up to the order of the row's sums: within ``2 _tol`` for the forward (both
    results are within ``_tol`` of the exact projection) and ``exact_rtol(dtype, 2n + 4) sum |g|``
    for the VJP (two orders of one sum differ by at most ``2 (n - 1) eps sum |g_j|``)."""
    from .adapter import AdapterImpl

    x = np.asarray(case.x, dtype)
    n, r = x.shape[-1], case.params["radius"]
    exact = backend.name in _BATCH_INVARIANT_SUMS and not isinstance(impl, AdapterImpl)
    y, res = _run(impl, case, backend, dtype)
    g = rng_for(case.x).standard_normal(x.shape).astype(dtype)
    y = host(y, dtype).reshape(-1, n)
    x_bar = host(impl.bwd(res, device_array(backend, g, dtype)), dtype).reshape(-1, n)
    for i, (xi, gi) in enumerate(zip(x.reshape(-1, n), g.reshape(-1, n))):
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


def _register(primitive, specs):
    return [register_claim(Claim(f"{primitive}.{name}", primitive, label, text, kind, check, needs=needs,
                                 applicable=_both_thresholds if name == "detached_differs" else None))
            for name, label, text, kind, check, needs in specs]


def _both_thresholds(impl):
    """``detached_differs`` sets reflip's ``threshold`` option both ways; a library behind an
    adapter has one threshold convention, declared, and is not passed the option."""
    if not getattr(impl, "takes", lambda param: True)("threshold"):
        return ("compares reflip's two `threshold` options; an adapter is not passed `threshold` (declare the "
                "library's as conventions['linf_project.threshold'])")
    return ""


FWD, FWD_BWD = ("fwd",), ("fwd", "bwd")

LINF_CLAIMS = _register("linf_project", [
    ("feasible", "PR-1", "every output row has l1 norm <= r (‖P(W)‖_inf <= r)", "general",
     _check_feasible(1), FWD),
    ("identity_inside", "PR-1", "rows inside the ball are returned unchanged, bit for bit", "general",
     _check_identity_inside(1, exact_sums=False), FWD),
    ("identity_inside_ties", "PR-13", "the same for rows exactly on the sphere", "ties",
     _check_identity_inside(1, exact_sums=True), FWD),
    ("rowwise", "PR-1", "a stack equals its rows projected one at a time (forward and VJP)", "general",
     _check_rowwise, FWD_BWD),
    ("idempotent", "PR-2", "P(P(W)) = P(W)", "general", _check_idempotent, FWD),
    ("sign_preserving", "PR-2", "signs kept, magnitudes shrunk, zeros kept", "general",
     _check_sign_preserving, FWD),
    ("kkt", "PR-2", "the KKT conditions of the l1-ball projection hold row by row", "general", _check_kkt, FWD),
    ("kkt_ties", "PR-2", "the same on rows on the sphere, at the threshold, with zeros and repeats",
     "ties", _check_kkt, FWD),
    ("optimal", "PR-3", "equals the projection found by bisection on the threshold (float64)", "general",
     _check_optimal(1), FWD),
    ("optimal_ties", "PR-3", "the same at ties", "ties", _check_optimal(1), FWD),
    ("nonexpansive", "PR-6", "firmly non-expansive in the Frobenius norm", "pair", _check_nonexpansive, FWD),
    ("ties", "PR-4", "at kinks, VJP and JVP are the derivative on the piece the convention picks",
     "ties", _check_ties, FWD_BWD),
    ("detached_differs", "PR-5", "threshold='detached' differs from 'exact' by the mean term on the "
     "support of rows outside, and nowhere else", "general", _check_detached_differs, FWD_BWD),
]) + generic_claims("linf_project", "PR-4")


PINF_CLAIMS = _register("pinf_project", [
    ("feasible", "PR-7", "every output row has dual norm ‖y_i‖_q <= r", "general", _check_feasible(None), FWD),
    ("identity_inside", "PR-7", "rows inside the ball are returned unchanged, bit for bit", "general",
     _check_identity_inside(None, exact_sums=False), FWD),
    ("optimal", "PR-7", "equals the float64 projection (bisection for q = 1, closed forms for q = 2, inf)",
     "general", _check_optimal(None), FWD),
    ("optimal_ties", "PR-9", "the same with entries exactly at +-r and rows at the threshold", "ties",
     _check_optimal(None), FWD),
    ("nonexpansive", "PR-6", "firmly non-expansive in the Frobenius norm", "pair", _check_nonexpansive, FWD),
]) + generic_claims("pinf_project", "PR-8")


# --------------------------------------------------------------------------- row_scale


def _check_scaling(impl, case, backend, dtype):
    """[PR-10] every output row is c x_i with c in (0, 1], and lies on the sphere when c < 1."""
    r, p = case.params["radius"], case.params["p"]
    q = dual_norm(np.inf if p == np.inf else int(p))
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
        raise ClaimFailure(f"row {i} was scaled to ||y||_{q} = {ny[i]:.10g}, not to r = {r}")
    return {}


def _check_projection_is_closer(impl, case, backend, dtype):
    """[PR-10] the scaling is never closer to the input than the projection (the float64
    oracle): ||x - P(x)|| <= ||x - R(x)||."""
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


ROW_SCALE_CLAIMS = _register("row_scale", [
    ("feasible", "PR-10", "every output row has dual norm <= r", "general", _check_feasible(None), FWD),
    ("identity_inside", "PR-10", "rows inside the ball are returned unchanged, bit for bit", "general",
     _check_identity_inside(None, exact_sums=False), FWD),
    ("scaling", "PR-10", "each row is multiplied by c in (0, 1], landing on the sphere when c < 1", "general",
     _check_scaling, FWD),
    ("projection_is_closer", "PR-10", "the projection is at least as close to the input as the scaling",
     "general", _check_projection_is_closer, FWD),
]) + generic_claims("row_scale", "PR-10")


# --------------------------------------------------------------------------- spectral_normalize


def _svd_normalized(w):
    """``W / sigma_max(W)`` per matrix, by an SVD in float64 (the oracle of [PR-11])."""
    w = np.asarray(w, np.float64)
    s = np.linalg.norm(w, ord=2, axis=(-2, -1))[..., None, None]
    return w / np.where(s > 0, s, 1.0)


def _finite_output(y):
    """``y``, after checking it is finite (the SVD of the checks below cannot take NaN) [AU-1]."""
    if not np.all(np.isfinite(y)):
        raise ClaimFailure("the output holds NaN or inf for a finite input")
    return y


def _spectral_tol(dtype, shape):
    m, n = shape[-2:]
    return exact_rtol(dtype, 4 * (m + n) + 16)


def _check_converged(impl, case, backend, dtype):
    """[PR-11] with a spectral gap s_2 <= s_1 / 2 and 40 iterations, the output is W / sigma_max(W)
    (an SVD in float64) and has spectral norm 1."""
    x = np.asarray(case.x, np.float64)
    y = _finite_output(host(_run(impl, case, backend, dtype)[0]))
    expected = _svd_normalized(x)
    tol = _spectral_tol(dtype, x.shape)
    err = float(np.max(np.abs(y - expected)))
    norm = np.linalg.norm(y, ord=2, axis=(-2, -1))
    if exceeds(err, tol) or np.any(exceeds(np.abs(norm - 1), tol)):
        raise ClaimFailure(f"not W / sigma_max(W): max error {err:.3g}, ||y||_2 = {norm.tolist()} (tol {tol:.3g})")
    return {"error": err}


def _check_from_below(impl, case, backend, dtype):
    """[PR-11] the power-iteration estimate never exceeds sigma_max, so ||W / sigma||_2 >= 1 at
    any number of iterations (for W != 0)."""
    x = np.asarray(case.x, np.float64)
    y = _finite_output(host(_run(impl, case, backend, dtype)[0]))
    norm = np.linalg.norm(y, ord=2, axis=(-2, -1))
    nonzero = np.linalg.norm(x, ord=2, axis=(-2, -1)) > 0
    tol = _spectral_tol(dtype, x.shape)
    if np.any(nonzero & exceeds(1 - tol, norm)):
        raise ClaimFailure(f"||W / sigma||_2 = {norm.min():.10g} < 1: the estimate exceeds sigma_max")
    return {"overshoot": float(np.max(np.where(nonzero, norm - 1, 0.0)))}


def _check_constant_uv(impl, case, backend, dtype):
    """[PR-11] at convergence, the constant_uv VJP is the derivative of W / sigma_max(W):
    central differences of the SVD-based map in float64."""
    x64 = np.asarray(case.x, np.float64)
    rng = rng_for(case.x)
    x_dot, y_bar = rng.standard_normal(x64.shape), rng.standard_normal(x64.shape)
    h = 1e-6 * max(1.0, float(np.max(np.abs(x64))))
    fd = (_svd_normalized(x64 + h * x_dot) - _svd_normalized(x64 - h * x_dot)) / (2 * h)
    _, res = _run(impl, case, backend, dtype, convention="constant_uv")
    x_bar = host(impl.bwd(res, device_array(backend, y_bar, dtype)))
    scale = np.linalg.norm(y_bar) * np.linalg.norm(fd) + np.linalg.norm(x_bar) * np.linalg.norm(x_dot)
    err = abs(dot(x_bar, x_dot) - dot(y_bar, fd)) / (scale + eps(np.float64))
    rtol = derivative_rtol(dtype)
    if exceeds(err, rtol):
        raise ClaimFailure(f"constant_uv VJP disagrees with the derivative of W / sigma_max(W): "
                           f"relative error {err:.3g} > {rtol:.3g}")
    return {"vjp_vs_svd_fd": err}


SPECTRAL_CLAIMS = _register("spectral_normalize", [
    ("converged", "PR-11", "with a spectral gap, the output is W / sigma_max(W) and has spectral norm 1",
     "converged", _check_converged, FWD),
    ("estimate_from_below", "PR-11", "‖W / sigma‖_2 >= 1 at any number of iterations", "general",
     _check_from_below, FWD),
    ("constant_uv", "PR-11", "at convergence the constant_uv VJP is the derivative of W / sigma_max(W)",
     "converged", _check_constant_uv, FWD_BWD),
]) + generic_claims("spectral_normalize", "PR-11")

CLAIMS = LINF_CLAIMS + PINF_CLAIMS + ROW_SCALE_CLAIMS + SPECTRAL_CLAIMS
