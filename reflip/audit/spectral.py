"""Claims of spectral normalization (proofs/projections.md [PR-11]), checked on any
implementation of the registry's ``spectral_normalize`` interface.

The oracle is an SVD in float64: the power iteration's estimate is compared with sigma_max,
its result with W / sigma_max(W), and the constant_uv VJP with central differences of that
SVD-based map.
"""
from __future__ import annotations

import numpy as np

from ..tolerances import eps, exact_rtol
from .engine import ClaimFailure, claim, claims_for, device_array, exceeds, host, rng_for
from .generic import derivative_rtol, dot, generic_claims

PRIMITIVE = "spectral_normalize"


def _run(impl, case, backend, dtype, **params):
    x = device_array(backend, case.x, dtype)
    return impl.fwd(x, **{**case.params, **params})


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


@claim("spectral_normalize.converged", "PR-11", "converged")
def _check_converged(impl, case, backend, dtype):
    """[PR-11] With a spectral gap, the output is W / sigma_max(W) and has spectral norm 1.

    The cases have s_2 <= s_1 / 2 and 40 iterations; sigma_max by an SVD in float64."""
    x = np.asarray(case.x, np.float64)
    y = _finite_output(host(_run(impl, case, backend, dtype)[0]))
    expected = _svd_normalized(x)
    tol = _spectral_tol(dtype, x.shape)
    err = float(np.max(np.abs(y - expected)))
    norm = np.linalg.norm(y, ord=2, axis=(-2, -1))
    if exceeds(err, tol) or np.any(exceeds(np.abs(norm - 1), tol)):
        raise ClaimFailure(f"not W / sigma_max(W): max error {err:.3g}, ||y||_2 = {norm.tolist()} (tol {tol:.3g})")
    return {"error": err}


@claim("spectral_normalize.estimate_from_below", "PR-11", "general")
def _check_from_below(impl, case, backend, dtype):
    """[PR-11] ‖W / sigma‖_2 >= 1 at any number of iterations.

    The power-iteration estimate never exceeds sigma_max (for W != 0)."""
    x = np.asarray(case.x, np.float64)
    y = _finite_output(host(_run(impl, case, backend, dtype)[0]))
    norm = np.linalg.norm(y, ord=2, axis=(-2, -1))
    nonzero = np.linalg.norm(x, ord=2, axis=(-2, -1)) > 0
    tol = _spectral_tol(dtype, x.shape)
    if np.any(nonzero & exceeds(1 - tol, norm)):
        raise ClaimFailure(f"||W / sigma||_2 = {norm.min():.10g} < 1: the estimate exceeds sigma_max")
    return {"overshoot": float(np.max(np.where(nonzero, norm - 1, 0.0)))}


@claim("spectral_normalize.constant_uv", "PR-11", "converged", needs=("fwd", "bwd"))
def _check_constant_uv(impl, case, backend, dtype):
    """[PR-11] At convergence the constant_uv VJP is the derivative of W / sigma_max(W).

    The oracle: central differences of the SVD-based map in float64."""
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


generic_claims(PRIMITIVE, "PR-11")
CLAIMS = claims_for(PRIMITIVE)
