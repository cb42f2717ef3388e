"""Cases of the Lipschitz-safe polar iteration [PO-1]: raw, rank-deficient and well-conditioned
matrices, matrices on the worst points of the schedule, with the parameters drawn for (or fixed
by) the implementation; and the inputs the benchmarks time it on."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ...polar import polar_schedule
from .common import KINDS, Case, bounded_floats, case_rng, compose_svd, matrix_shape, pick, svd_matrix

__all__ = ["polar_cases", "polar_bench_inputs", "POLAR_KINDS", "worst_points"]

# Kinds (besides the shared ones):
#   "general"        raw entries, rank-deficient matrices and ties, or well-conditioned ones;
#                    any degree, the schedule for lower = 1/10 (see _polar_case), 0 to 10 steps;
#   "differentiable" well-conditioned (singular values in [1/4, 1] times a scale), the schedule
#                    for lower = 1/10: 0 to 10 steps unrolled, or the default (converged)
#                    schedule with the implicit backward;
#   "ties"           repeated singular values (multiples of an orthonormal matrix included);
#   "pair"           "general" plus a second matrix of the same shape;
#   "converged"      well-conditioned, the default schedule (s_min / ||W||_F >= 1/4 / sqrt(6)
#                    >= every design bound drawn, so it converges to working precision [PO-3]);
#   "worst"          one scaled singular value on an interior maximum of the first polynomial
#                    (the worst point of the schedule [PO-4]) or rank one, 0 to K + 1 steps;
#   "convergence"    well- to ill-conditioned and rank-deficient matrices with a ``tol``.
# Matrices are at most 6 x 6 with at most two batch axes of size <= 2.
POLAR_KINDS = KINDS + ("converged", "worst", "convergence")
_LOWERS = (1e-1, 1e-2, 1e-3)
_QUIET = {"on_nonconvergence": "ignore"}
_WELL = st.floats(0.25, 1.0)


def worst_points(degree, lower):
    """The interior local maxima of the first polynomial of the schedule on ``[lower, 1]``
    (float64, from a dense grid refined by one Newton step on ``p'``): where it comes closest to
    1 [PO-4]."""
    c = polar_schedule(degree, lower)[0][0]
    s = np.linspace(lower, 1.0, 200_001)
    p = sum(cj * s ** (2 * j + 1) for j, cj in enumerate(c))
    i = np.nonzero((p[1:-1] >= p[:-2]) & (p[1:-1] >= p[2:]))[0] + 1
    x = s[i]
    d1 = sum((2 * j + 1) * cj * x ** (2 * j) for j, cj in enumerate(c))
    d2 = sum((2 * j + 1) * (2 * j) * cj * x ** (2 * j - 1) for j, cj in enumerate(c) if j)
    return tuple(float(v) for v in np.clip(x - d1 / d2, lower, 1.0))


def _params(draw, fixed, **extra):
    degree = pick(draw, fixed, "degree", [5, 5, 3])
    return dict(degree=degree, lower=pick(draw, fixed, "lower", list(_LOWERS)), **extra)


@st.composite
def _well(draw, shape, dtype, fixed, *, svals=_WELL, converged=False):
    backward = pick(draw, fixed, "backward", ["unrolled", "unrolled", "implicit"])
    x = draw(svd_matrix(shape, svals, 2.0 ** draw(st.integers(-3, 3)))).astype(dtype)
    params = _params(draw, fixed, backward=backward)
    if not (converged or backward == "implicit"):
        params.update(n_iter=draw(st.integers(0, 10)), **_QUIET)
    return Case(x, params)


@st.composite
def _general(draw, shape, dtype, fixed):
    variant = draw(st.sampled_from(["raw", "degenerate", "well", "well"]))
    if variant == "well" or fixed.get("backward", "unrolled") != "unrolled":
        return draw(_well(shape, dtype, fixed))
    if variant == "raw":
        x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype)))
        # Derivatives scale like 1 / ||W||_F: tiny entries would overflow float32 cotangents.
        x = np.where(np.abs(x) < 2.0**-8, np.zeros_like(x), x)
    else:
        svals = st.sampled_from([0.0, 0.0, 0.125, 0.5, 1.0]) | st.floats(1 / 16, 1.0)
        x = draw(svd_matrix(shape, svals, 2.0 ** draw(st.integers(-3, 3)))).astype(dtype)
    return Case(x, _params(draw, fixed, backward="unrolled", n_iter=draw(st.integers(0, 10)), **_QUIET))


@st.composite
def _worst(draw, shape, dtype, fixed):
    """One scaled singular value on a worst point (or 1, a rank-one matrix), the others filling
    ``||A_0||_F = 1``; any number of steps up to the schedule's length plus one."""
    params = _params(draw, fixed)
    *batch, m, n = shape
    r = min(m, n)
    points = worst_points(params["degree"], params["lower"])
    # 1 (a rank-one matrix): degree 5 ends its design interval on a maximum just above 1.
    x0 = draw(st.sampled_from((*points, 1.0))) if r > 1 else 1.0
    rest = np.full(r - 1, np.sqrt((1.0 - x0 * x0) / max(r - 1, 1)))
    s = np.broadcast_to(np.concatenate([[x0], rest]), (*batch, r))
    x = compose_svd(shape, s, case_rng(draw), 2.0 ** draw(st.integers(-3, 3))).astype(dtype)
    steps = len(polar_schedule(params["degree"], params["lower"]))
    params.update(n_iter=draw(st.integers(0, steps + 1)), **_QUIET)
    return Case(x, params)


@st.composite
def _polar_case(draw, dtype, kind, fixed):
    shape = draw(matrix_shape())
    if kind in ("general", "pair"):
        # The general claims include the dot-product test, whose tolerance is a few eps per
        # operation. The schedules for bounds below 1/10 amplify rounding by up to ~700 for a
        # few steps (the product of the early steps' slopes at s = 1, [PO-4]), which a rank-one
        # input (scaled singular value 1) exposes in both dtypes: these cases use the schedule
        # for 1/10 (slopes 8.4 then 1.3). The others run every schedule ("ties", "worst",
        # "converged", "convergence"); tests/test_polar.py differentiates the one for 1e-3.
        fixed = {"lower": 1e-1, **fixed}
    if kind == "general":
        return draw(_general(shape, dtype, fixed))
    if kind == "pair":
        case = draw(_general(shape, dtype, fixed))
        return case._replace(x2=draw(_general(shape, dtype, fixed)).x)
    if kind == "differentiable":
        # The well-conditioned cases (s_min / ||W||_F >= 1/4 / sqrt(6)) with the schedule built
        # for them (lower = 1/10) unless fixed: the schedules for smaller bounds oscillate on
        # [0.1, 1] with slopes ~10 per step, which multiply both the truncation and the
        # rounding error of a central difference past the suite's tolerance (the derivatives
        # there are checked by tests/test_polar.py, with a tolerance for it).
        case = draw(_well(shape, dtype, {"lower": 1e-1, **fixed}))
        s_min = float(np.min(np.linalg.svd(np.asarray(case.x, np.float64), compute_uv=False)))
        # The map varies on the scale of s_min, as Björck's [BJ-8].
        return case._replace(max_step=np.finfo(np.float64).eps ** (1 / 3) * s_min)
    if kind == "converged":
        return draw(_well(shape, dtype, fixed, converged=True))
    if kind == "ties":
        svals = st.just(1.0) if draw(st.booleans()) else st.sampled_from([0.5, 1.0])
        return draw(_well(shape, dtype, fixed, svals=svals))
    if kind == "worst":
        return draw(_worst(shape, dtype, fixed))
    if kind == "convergence":
        degenerate = st.sampled_from([0.0, 1e-4, 0.5, 1.0])
        svals = draw(st.sampled_from([_WELL, st.floats(1e-4, 1.0), degenerate, degenerate]))
        x = draw(svd_matrix(shape, svals)).astype(dtype)
        tols = [1e-1, 1e-3, 1e-5] + ([1e-10] if np.dtype(dtype) == np.float64 else [])
        params = _params(draw, fixed, n_iter=draw(st.integers(0, 12)), tol=draw(st.sampled_from(tols)),
                         on_nonconvergence=draw(st.sampled_from(["warn", "raise"])))
        return Case(x, params)
    raise ValueError(f"kind must be one of {POLAR_KINDS}, got {kind!r}")


def polar_cases(dtype, kind, fixed=None):
    """Strategy of polar cases (kinds: the comment above :data:`POLAR_KINDS`); ``fixed``:
    parameters the implementation fixes (``conventions["polar.params"]``)."""
    return _polar_case(np.dtype(dtype), kind, dict(fixed or {}))


def polar_bench_inputs(xp, dtype="float32", size="full"):
    """``[(label, w, params)]`` timed by the benchmarks: square matrices with singular values
    spread geometrically over [1e-3, 1] (after the Frobenius scaling the smallest is ~1e-4 of
    ``||W||_F``: the schedule for ``lower=1e-4``), and a batch of small ones."""
    rng = np.random.default_rng(0)
    n, batch = (1024, 64) if size == "full" else (64, 8)
    out = []
    for label, shape in ((f"{n}x{n}", (n, n)), (f"{batch}x64x64", (batch, 64, 64))):
        *b, _, k = shape
        s = np.broadcast_to(np.geomspace(1e-3, 1.0, k), (*b, k))
        out.append((label, xp.asarray(compose_svd(shape, s, rng).astype(dtype)),
                    {"degree": 5, "lower": 1e-4, **_QUIET}))
    return out
