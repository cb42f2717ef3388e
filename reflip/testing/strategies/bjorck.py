"""Björck cases [BJ-1]: raw, rank-deficient and well-conditioned matrices, with the
parameters drawn for (or fixed by) the implementation."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .common import KINDS, Case, bounded_floats, matrix_shape, pick, svd_matrix

__all__ = ["bjorck_cases", "BJORCK_CONVERGED_N_ITER", "BJORCK_KINDS"]

# Kinds (besides the shared ones, which keep their meaning):
#   "general"        raw entries, rank-deficient matrices and ties (Frobenius scaling, unrolled
#                    backward), or well-conditioned ones with any parameters;
#   "differentiable" well-conditioned (singular values in [1/4, 1] times a scale), tol None;
#                    backward="implicit" only with enough iterations to converge;
#   "ties"           repeated singular values (multiples of an orthonormal matrix included);
#   "pair"           "general" plus a second matrix of the same shape;
#   "converged"      well-conditioned with enough iterations to converge to working precision;
#   "convergence"    well- to ill-conditioned and rank-deficient matrices with a ``tol``, for the
#                    convergence report.
# Matrices are at most 6 x 6 with at most two batch axes of size <= 2.

# Iterations after which every singular value in [0.102, 1] (the worst case of the
# well-conditioned cases after Frobenius scaling: 1/4 over sqrt(6)) is within 1e-15 of 1, by the
# scalar map of [BJ-3], plus ~6 for the derivative, which lags the value (linear rate 1 - 2 beta
# for beta < 1/2, [BJ-5]). tests/test_bjorck.py checks that these suffice.
BJORCK_CONVERGED_N_ITER = {(1, 0.5): 18, (1, 0.375): 40, (1, 0.25): 68, (2, 0.5): 14, (3, 0.5): 12,
                           (4, 0.5): 12}
BJORCK_KINDS = KINDS + ("converged", "convergence")


_WELL = st.floats(0.25, 1.0)


def _enough(order, beta):
    """:data:`BJORCK_CONVERGED_N_ITER`, or its largest entry for a pair it does not list."""
    return BJORCK_CONVERGED_N_ITER.get((order, beta), max(BJORCK_CONVERGED_N_ITER.values()))


@st.composite
def _bjorck_well(draw, shape, dtype, *, svals=_WELL, converged=False, tol=False, fixed=None):
    """A well-conditioned case (singular values ``svals`` within [1/4, 1], times a scale) with
    any parameters; the scale makes the certificate of ``scaling="none"``/``"sqrt_mn"`` pass
    (scaled singular values <= 0.9)."""
    fixed = fixed or {}
    m, n = shape[-2:]
    order = pick(draw, fixed, "order", [1, 1, 2, 3, 4])
    beta = pick(draw, fixed, "beta", [0.5, 0.5, 0.375, 0.25] if order == 1 else [0.5])
    backward = pick(draw, fixed, "backward", ["unrolled", "unrolled", "implicit"])
    scaling = pick(draw, fixed, "scaling", ["frobenius", "frobenius", "sqrt_mn", "none"])
    scale = {"frobenius": 2.0 ** draw(st.integers(-3, 3)), "sqrt_mn": 0.9 * np.sqrt(m * n),
             "none": 0.9}[scaling]
    x = draw(svd_matrix(shape, svals, scale)).astype(dtype)
    enough = _enough(order, beta)
    n_iter = enough if converged or backward == "implicit" else draw(st.integers(0, 14))
    params = dict(order=order, beta=beta, n_iter=n_iter, scaling=scaling, backward=backward,
                  checkpoint=draw(st.booleans()) if backward == "unrolled" else False)
    if tol:
        # Reachable in float32 too: the floor of ||Y^T Y - I||_F is ~ N eps there.
        params.update(tol=draw(st.sampled_from([1e-2, 1e-4])), n_iter=enough)
    return Case(x, params)


@st.composite
def _bjorck_general(draw, shape, dtype, fixed=None):
    fixed = fixed or {}
    # Raw and degenerate matrices run with the Frobenius scaling (the only one certified for
    # any input, [BJ-6]) and the unrolled backward.
    variants = ["raw", "degenerate", "well", "well"]
    if fixed.get("scaling", "frobenius") != "frobenius" or fixed.get("backward", "unrolled") != "unrolled":
        variants = ["well"]
    variant = draw(st.sampled_from(variants))
    if variant == "well":
        return draw(_bjorck_well(shape, dtype, tol=draw(st.integers(0, 4)) == 0, fixed=fixed))
    if variant == "raw":
        x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype)))
        # Derivatives scale like 1 / ||W||_F: tiny entries would overflow float32 cotangents
        # (the forward's robustness to tiny and huge scales is tested in tests/test_bjorck.py).
        x = np.where(np.abs(x) < 2.0**-8, np.zeros_like(x), x)
    else:
        # Rank-deficient (exact zeros) and repeated singular values.
        svals = st.sampled_from([0.0, 0.0, 0.125, 0.5, 1.0]) | st.floats(1 / 16, 1.0)
        x = draw(svd_matrix(shape, svals, 2.0 ** draw(st.integers(-3, 3)))).astype(dtype)
    order = pick(draw, fixed, "order", [1, 2, 3, 4])
    params = dict(order=order, beta=pick(draw, fixed, "beta", [0.5, 0.25] if order == 1 else [0.5]),
                  n_iter=draw(st.integers(0, 12)), scaling="frobenius", backward="unrolled",
                  checkpoint=draw(st.booleans()))
    return Case(x, params)


@st.composite
def _bjorck_case(draw, dtype, kind, fixed):
    shape = draw(matrix_shape())
    if kind == "general":
        return draw(_bjorck_general(shape, dtype, fixed))
    if kind == "pair":
        case = draw(_bjorck_general(shape, dtype, fixed))
        return case._replace(x2=draw(_bjorck_general(shape, dtype, fixed)).x)
    if kind == "differentiable":
        case = draw(_bjorck_well(shape, dtype, fixed=fixed))
        # The map varies on the scale of the smallest singular value (the Frobenius scaling
        # divides by ||W||_F, the iteration acts on s / c): a central difference step beyond
        # eps^(1/3) s_min leaves the O(h^2) regime whatever max |w_ij| is.
        s_min = float(np.min(np.linalg.svd(np.asarray(case.x, np.float64), compute_uv=False)))
        return case._replace(max_step=np.finfo(np.float64).eps ** (1 / 3) * s_min)
    if kind == "converged":
        return draw(_bjorck_well(shape, dtype, converged=True, fixed=fixed))
    if kind == "ties":
        svals = st.just(1.0) if draw(st.booleans()) else st.sampled_from([0.5, 1.0])
        return draw(_bjorck_well(shape, dtype, svals=svals, fixed=fixed))
    if kind == "convergence":
        # Half of the cases rank-deficient or nearly: zero singular values never converge, and
        # the iterates stop moving long before (the trap of a step-size stopping test).
        degenerate = st.sampled_from([0.0, 1e-3, 0.5, 1.0])
        svals = draw(st.sampled_from([_WELL, st.floats(1e-4, 1.0), degenerate, degenerate]))
        x = draw(svd_matrix(shape, svals)).astype(dtype)
        tols = [1e-1, 1e-3, 1e-5] + ([1e-10] if np.dtype(dtype) == np.float64 else [])
        order = pick(draw, fixed, "order", [1, 2, 3])
        # n_iter = 30 half of the time: enough for the iterates to stop moving.
        params = dict(order=order, n_iter=draw(st.integers(0, 30) | st.just(30)), tol=draw(st.sampled_from(tols)),
                      on_nonconvergence=draw(st.sampled_from(["warn", "raise"])),
                      backward=pick(draw, fixed, "backward", ["unrolled", "implicit"]))
        if "beta" in fixed:
            params["beta"] = fixed["beta"]
        return Case(x, params)
    raise ValueError(f"kind must be one of {BJORCK_KINDS}, got {kind!r}")


def bjorck_cases(dtype, kind, fixed=None):
    """Strategy of Björck cases (kinds: the comment above :data:`BJORCK_CONVERGED_N_ITER`).

    ``fixed``: parameters an implementation fixes (``conventions["bjorck.params"]``); the
    order, beta, scaling and backward mode are then drawn as fixed, so that the number of
    iterations and the scale of every case are chosen for them (the others are imposed on the
    drawn case by the adapter layer)."""
    return _bjorck_case(np.dtype(dtype), kind, dict(fixed or {}))
