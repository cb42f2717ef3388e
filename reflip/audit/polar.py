"""Claims of the Lipschitz-safe polar iteration (proofs/polar.md), checked on any implementation
of the registry's ``polar`` interface.

Oracles: the SVD (NumPy, float64) with the SCALAR polynomials of the published schedule
(:func:`reflip.polar.polar_schedule`, data) composed on each singular value [PO-1] — never the
matrix polynomials the implementation evaluates — and orthogonal matrices drawn per case.
Tolerances come from a first-order model of how the steps propagate rounding errors
(:func:`forward_error_bound`); the safety claim uses the proved bound
:func:`reflip.polar.safety_bound` [PO-4].
"""
from __future__ import annotations

import math

import numpy as np

from .._backend import haar_orthogonal
from ..polar import polar_schedule, safety_bound
from ..tolerances import eps
from .bjorck import NOT_ONE_LIPSCHITZ, convergence_report, report_applies
from .engine import ClaimFailure, claim, claims_for, device_array, exceeds, host, rng_for
from .generic import generic_claims

PRIMITIVE = "polar"


# ----------------------------------------------------------------------------------------------
# Oracle helpers


def _defaults(params, dtype):
    """``(degree, lower, K)``: the case's parameters, or reflip's defaults; ``K`` for
    ``n_iter=None`` is the documented rule [PO-6]: the schedule's steps until
    ``1 - l_k <= eps`` of the dtype."""
    degree, lower = params.get("degree", 5), params.get("lower", 1e-3)
    k = params.get("n_iter")
    if k is None:
        steps = polar_schedule(degree, lower)
        k = next((i + 1 for i, step in enumerate(steps) if 1.0 - step[2] <= eps(dtype)), len(steps))
    return degree, lower, k


def _coefficients(degree, lower, k):
    steps = polar_schedule(degree, lower)
    return [steps[min(i, len(steps) - 1)][0] for i in range(k)]


def _p(c, t):
    """``p(t) = sum_j c_j t^(2j+1)`` and ``p'(t)``, by Horner in ``t^2``."""
    t2 = t * t
    inner, dinner = np.zeros_like(t), np.zeros_like(t)
    for cj in c[::-1]:
        dinner = dinner * t2 + inner
        inner = inner * t2 + cj
    return t * inner, inner + 2 * t2 * dinner


def _step_gain(t, c):
    """Largest first-order factor by which one step stretches a perturbation of
    ``U diag(t) V^T``: ``p'`` along singular values, the divided differences
    ``(p(a) -+ p(b)) / (a -+ b)`` mixing two directions, and ``p(a)/a`` outside the range."""
    f, df = _p(c, t)
    a, b = t[..., :, None], t[..., None, :]
    fa, fb = f[..., :, None], f[..., None, :]
    same = np.maximum(np.abs(df)[..., :, None], np.abs(df)[..., None, :])
    ratio = np.abs(sum(cj * t ** (2 * j) for j, cj in enumerate(c)))
    with np.errstate(divide="ignore", invalid="ignore"):
        plus = np.where(a + b > 0, np.abs((fa + fb) / (a + b)), same)
        minus = np.where(a != b, np.abs((fa - fb) / (a - b)), same)
    return max(float(np.max(np.abs(df))), float(np.max(ratio)), float(np.max(plus)), float(np.max(minus)))


def _frobenius(x64):
    big = np.max(np.abs(x64), axis=(-2, -1), keepdims=True)
    big = np.where(big > 0, big, 1.0)
    c = big * np.linalg.norm(x64 / big, axis=(-2, -1), keepdims=True)
    return np.where(c > 0, c, 1.0)


def spectral_oracle(x, params, dtype):
    """``(U diag(p_{K-1}(...p_0(s / ||W||_F))) V^T, t_K, amplification)`` in float64 [PO-1];
    ``amplification = sum_k prod_{j >= k} gain_j`` over the singular-value trajectory."""
    x64 = np.asarray(x, np.float64)
    u, s, vt = np.linalg.svd(x64, full_matrices=False)
    t = s / _frobenius(x64)[..., 0]
    amp = 1.0
    for c in _coefficients(*_defaults(params, dtype)):
        amp = 1.0 + _step_gain(t, c) * amp
        t = _p(c, t)[0]
    return (u * t[..., None, :]) @ vt, t, amp


def forward_error_bound(dtype, params, shape, amp):
    """Absolute Frobenius error allowed between an implementation and the oracle: the rounding
    of one step (``q + 2`` products with inner dimension ``<= max(m, n)``, plus the scaling),
    times the amplification, times a safety factor of 4."""
    q = (params.get("degree", 5) - 1) // 2
    n = max(shape[-2:])
    return 4.0 * (q + 3) * (n + 2) * math.sqrt(n) * eps(dtype) * amp


def _run(impl, x, params, backend, dtype):
    y, _ = impl.fwd(device_array(backend, x, dtype), **params)
    return host(y)


def _compare(got, want, bound, what):
    if got.shape != want.shape:
        raise ClaimFailure(f"{what}: output shape {got.shape} differs from the expected {want.shape}")
    d = np.asarray(got, np.float64) - np.asarray(want, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        err = float(np.max(np.sqrt(np.sum(d * d, axis=(-2, -1)))))
    if exceeds(err, bound):
        raise ClaimFailure(f"{what}: ||difference||_F = {err:.3g} > {bound:.3g} (rounding-error bound)")
    return err / bound


def _fixed_k(params):
    """Without ``tol``: the claims below compare a fixed number of steps."""
    return {k: v for k, v in params.items() if k != "tol"}


# ----------------------------------------------------------------------------------------------
# Checks


@claim("polar.spectral_ties", "PO-1", "ties", cases="matrices with repeated singular values")
@claim("polar.spectral", "PO-1", "general")
def _check_spectral(impl, case, backend, dtype):
    """[PO-1] Y = U diag(p_{K-1}(...p_0(s / ||W||_F))) V^T: each step acts on singular values only.

    The scalar polynomials of the published schedule, composed on each singular value of the
    float64 SVD (zero ones included)."""
    params = _fixed_k(case.params)
    got = _run(impl, case.x, params, backend, dtype)
    want, _, amp = spectral_oracle(case.x, params, dtype)
    ratio = _compare(got, want, forward_error_bound(dtype, params, case.x.shape, amp),
                     "the output is not the schedule's scalar polynomials applied to the singular values")
    return {"error_over_bound": ratio, "amplification": amp}


@claim("polar.polar", "PO-3", "converged")
def _check_polar(impl, case, backend, dtype):
    """[PO-3] From s_min / ||W||_F >= lower the default schedule returns the polar factor U V^T.

    The result is U V^T of numpy's SVD and semi-orthonormal (Y^T Y = I or Y Y^T = I)."""
    params = _fixed_k(case.params)
    got = _run(impl, case.x, params, backend, dtype)
    _, t, amp = spectral_oracle(case.x, params, dtype)
    gap = float(np.max(np.abs(t - 1.0)))
    if gap > math.sqrt(eps(dtype)):
        raise ClaimFailure(f"case not converged by the scalar maps (|p(s) - 1| = {gap:.3g}): the strategy "
                           "must draw s_min / ||W||_F >= lower")
    u, _, vt = np.linalg.svd(np.asarray(case.x, np.float64), full_matrices=False)
    bound = forward_error_bound(dtype, params, case.x.shape, amp) + math.sqrt(min(case.x.shape[-2:])) * gap
    ratio = _compare(got, u @ vt, bound, "the converged result is not the polar factor U V^T")
    return {"error_over_bound": ratio}


@claim("polar.at_most_one", "PO-4", "general", cases="general matrices")
@claim("polar.safety", "PO-4", "worst")
def _check_safety(impl, case, backend, dtype):
    """[PO-4] Every singular value of the output is <= 1 + safety_bound, at the schedule's worst points.

    Inputs with a scaled singular value on an interior maximum of the first polynomial (or a
    rank-one input), after any number of steps; the largest singular value from a float64 SVD
    against the proved rounding bound of reflip.polar.safety_bound. ``polar.at_most_one``
    states the same on general matrices: an orthogonalizer used in a Lipschitz layer never
    returns a singular value above 1."""
    params = _fixed_k(case.params)
    got = _run(impl, case.x, params, backend, dtype)
    degree, lower, k = _defaults(params, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        finite = bool(np.all(np.isfinite(got)))
        smax = float(np.max(np.linalg.svd(got, compute_uv=False))) if finite else math.inf
    bound = safety_bound(case.x.shape, dtype, degree=degree, lower=lower, n_iter=k)
    if exceeds(smax, 1.0 + bound):
        raise ClaimFailure(f"largest singular value {smax!r} = 1 + {smax - 1.0:.3g} exceeds 1 + {bound:.3g} "
                           f"(the proved bound after {k} steps): {NOT_ONE_LIPSCHITZ}; does the schedule "
                           "overshoot 1? (an unscaled minimax polynomial reaches 1 + E; a Newton-Schulz "
                           "polynomial tuned for speed, such as Muon's quintic (3.4445, -4.7750, 2.0315), leaves "
                           "singular values in about [0.7, 1.2])", {"excess_over_one": smax - 1.0, "bound": bound})
    return {"excess_over_one": smax - 1.0, "bound": bound}


@claim("polar.equivariance", "PO-1", "general")
def _check_equivariance(impl, case, backend, dtype):
    """[PO-1] P(W^T) = P(W)^T and P(Q W R) = Q P(W) R for orthogonal Q, R."""
    params = _fixed_k(case.params)
    x = np.asarray(case.x, np.float64)
    *batch, m, n = x.shape
    got = _run(impl, case.x, params, backend, dtype)
    _, _, amp = spectral_oracle(case.x, params, dtype)
    bound = 3 * forward_error_bound(dtype, params, x.shape, amp)
    got_t = _run(impl, np.swapaxes(case.x, -1, -2).copy(), params, backend, dtype)
    figures = {"transpose": _compare(got_t, np.swapaxes(got, -1, -2), bound, "P(W^T) != P(W)^T")}
    rng = rng_for(case.x)
    q, r = haar_orthogonal(rng, m, batch=batch), haar_orthogonal(rng, n, batch=batch)
    rotated = _run(impl, (q @ x @ r).astype(dtype), params, backend, dtype)
    figures["rotation"] = _compare(rotated, q @ got @ r, bound, "P(Q W R) != Q P(W) R")
    return figures


@claim("polar.report", "PO-6", "convergence", applicable=report_applies(PRIMITIVE))
def _check_report(impl, case, backend, dtype):
    """[PO-6] The convergence report is truthful and a missed tol is never silent.

    Björck's check (:func:`reflip.audit.bjorck.convergence_report`): a result that missed
    ``tol`` comes back with a BjorckConvergenceWarning or, with ``on_nonconvergence="raise"``, an
    error; one that met it with neither; reflip's report gives ||Y^T Y - I||_F of the returned Y."""
    return convergence_report(impl, case, backend, dtype, PRIMITIVE)


generic_claims(PRIMITIVE, "PO-5")
CLAIMS = claims_for(PRIMITIVE)
