"""Deliberately broken Björck implementations, each a bug seen (or easy to make) in ports of the
paper's code.

The meta-tests (tests/meta/test_bjorck_mutants.py) run the suite on each and require that the
claims named in :data:`EXPECTED` fail. Each mutant is the registry record with its forward
and/or backward swapped; everything else is reflip's.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from fractions import Fraction

import numpy as np

from .._backend import get_namespace
from .._registry import get
from ..bjorck import (
    BjorckInfo,
    BjorckResiduals,
    _bjorck_fwd,
    _recomputed_pairs,
    _report_convergence,
    _scale,
    _scale_jacobian,
    _scaled_eyes,
    _step,
    _step_vjp,
    _tall,
    _validated,
    bjorck_bwd,
    bjorck_fwd,
    bjorck_jvp,
)

__all__ = ["MUTANTS", "EXPECTED"]

_REFLIP = get("bjorck")
_DEFAULTS = {name: p.default for name, p in inspect.signature(bjorck_fwd).parameters.items()
             if p.kind is p.KEYWORD_ONLY}


def _config(w, params):
    return _validated(w, **{**_DEFAULTS, **params})


def _mutant(name, core=None, bwd=None, jvp=None):
    """``core(w, cfg, xp) -> (y, residuals)`` replaces the forward after reflip's validation."""
    if core is None:
        fwd = _REFLIP.fwd
    else:
        def fwd(w, **params):
            xp, cfg = _config(w, params)
            return core(w, cfg, xp)

    def fun(w, **params):
        return fwd(w, **params)[0]

    return name, dataclasses.replace(_REFLIP, fwd=fwd, fun=fun, bwd=bwd or _REFLIP.bwd,
                                     jvp=jvp or _REFLIP.jvp)


# 1. Wrong coefficients: the series of (1 - q)^(-1/2) taken as the geometric series
#    1 + q/2 + q^2/4 + ... (c_2 = 1/4 instead of 3/8). Order 1 is unaffected, and since
#    P(1) = 1 and P'(1) = -1/2 still hold the iteration still converges (quadratically instead
#    of with order p + 1): only the transient reveals it.
def _geometric_coefficients(order):
    c = [Fraction(1, 2**j) for j in range(order + 1)]
    return tuple(float((-1) ** i * sum(c[j] * math.comb(j, i) for j in range(i, order + 1)))
                 for i in range(order + 1))


def _core_wrong_coefficients(w, cfg, xp):
    if cfg.order > 1:
        cfg = cfg._replace(coeffs=_geometric_coefficients(cfg.order))
    y, res = _bjorck_fwd(w, cfg, xp)
    _report_convergence(res.info, cfg, stacklevel=3)
    return y, res


# 2. Wide matrices: transposed, iterated, and then RESHAPED back instead of transposed (a
#    `.view(m, n)` for a `.t()`): the right shape, scrambled values.
def _core_wide_reshaped(w, cfg, xp):
    y, res = _bjorck_fwd(w, cfg, xp)
    if cfg.transposed:
        y = xp.reshape(res.y, tuple(w.shape))
    return y, res


# 3. The backward treats the scaling divisor ||W||_F as a constant.
def _bwd_constant_scale(residuals, y_bar):
    xp = get_namespace(y_bar)
    a_bar = _tall(y_bar, residuals.config.transposed)
    for a, x in _recomputed_pairs(residuals, xp):
        a_bar = _step_vjp(a, x, a_bar, residuals.config.coeffs,
                          _scaled_eyes(residuals.config.coeffs, a, xp))
    return _tall(a_bar / residuals.scale, residuals.config.transposed)


# 4. From the fifth iteration on the polynomial part of the step, A (P(X) - a_0 I), is detached
#    (treated as a constant) to save memory, as a popular port does with the cubic term.
def _bwd_detached_late(residuals, y_bar):
    if residuals.config.backward != "unrolled":
        return bjorck_bwd(residuals, y_bar)
    xp = get_namespace(y_bar)
    cfg = residuals.config
    a_bar = _tall(y_bar, cfg.transposed)
    pairs = list(_recomputed_pairs(residuals, xp))  # reverse order: k = K-1, ..., 0
    k_run = len(pairs)
    for i, (a, x) in enumerate(pairs):
        k = k_run - 1 - i
        eyes = _scaled_eyes(cfg.coeffs, a, xp)
        a_bar = cfg.coeffs[0] * a_bar if k >= 4 else _step_vjp(a, x, a_bar, cfg.coeffs, eyes)
    return _tall(_scale_jacobian(residuals, a_bar, xp), cfg.transposed)


# 5. Convergence judged by the step size ||A_{k+1} - A_k||_F <= tol and reported as converged:
#    near a tiny or zero singular value the step is small while A is far from orthonormal.
def _core_step_size(w, cfg, xp):
    if cfg.tol is not None:
        a, scale = _scale(_tall(w, cfg.transposed), cfg.scaling, xp)
        for k in range(cfg.n_iter):
            nxt = _step(a, a.mT @ a, cfg.coeffs, _scaled_eyes(cfg.coeffs, a, xp))
            step = xp.linalg.matrix_norm(nxt - a, ord="fro")
            if float(xp.max(step)) <= cfg.tol:  # "converged"
                info = BjorckInfo(k + 1, step, cfg.tol, True)
                res = BjorckResiduals(_tall(w, cfg.transposed), scale, None, nxt, cfg._replace(checkpoint=True), info)
                return _tall(nxt, cfg.transposed), res
            a = nxt
    # Never stopped early: reflip's iterations and honest report.
    y, res = _bjorck_fwd(w, cfg, xp)
    _report_convergence(res.info, cfg, stacklevel=3)
    return y, res


# 6. The paper code's "safe scaling" by sqrt(m n) used whatever scaling was asked for, without
#    checking the basin. Outside it the iterates overflow on purpose: NumPy's warnings say
#    nothing the claims do not.
def _core_sqrt_mn(w, cfg, xp):
    with np.errstate(over="ignore", invalid="ignore"):
        return _bjorck_fwd(w, cfg._replace(scaling="sqrt_mn"), xp)


def _bwd_quiet(residuals, y_bar):
    with np.errstate(over="ignore", invalid="ignore"):
        return bjorck_bwd(residuals, y_bar)


def _jvp_quiet(residuals, w_dot):
    with np.errstate(over="ignore", invalid="ignore"):
        return bjorck_jvp(residuals, w_dot)


# 7. A Newton-Schulz iteration tuned for speed used as "orthogonalization": Muon's quintic
#    X <- a X + b (X X^T) X + c (X X^T)^2 X, (a, b, c) = (3.4445, -4.7750, 2.0315), on the wide
#    orientation after the same scaling. It leaves singular values in about [0.7, 1.2]: some
#    above 1, so a layer built on it is not 1-Lipschitz [BJ-12]. The backward is reflip's.
MUON_QUINTIC = (3.4445, -4.7750, 2.0315)


def _core_newton_schulz(w, cfg, xp):
    _, res = _bjorck_fwd(w, cfg, xp)
    a, _ = _scale(_tall(w, cfg.transposed), cfg.scaling, xp)
    x = a.mT
    c1, c3, c5 = MUON_QUINTIC
    for _ in range(cfg.n_iter):
        gram = x @ x.mT
        x = c1 * x + (c3 * gram + c5 * (gram @ gram)) @ x
    return _tall(x.mT, cfg.transposed), res


MUTANTS = dict([
    _mutant("wrong_coefficients", core=_core_wrong_coefficients),
    _mutant("wide_reshaped_not_transposed", core=_core_wide_reshaped),
    _mutant("bwd_constant_scale", bwd=_bwd_constant_scale),
    _mutant("detached_late_iterations", bwd=_bwd_detached_late),
    _mutant("step_size_convergence", core=_core_step_size),
    _mutant("sqrt_mn_scaling", core=_core_sqrt_mn, bwd=_bwd_quiet, jvp=_jvp_quiet),
    _mutant("muon_newton_schulz", core=_core_newton_schulz),
])

# The claims that must catch each mutant (at least these; others may fail too).
EXPECTED = {
    "wrong_coefficients": ["bjorck.spectral"],
    "wide_reshaped_not_transposed": ["bjorck.transpose", "bjorck.spectral", "bjorck.fd"],
    "bwd_constant_scale": ["bjorck.fd"],
    "detached_late_iterations": ["bjorck.fd"],
    "step_size_convergence": ["bjorck.report"],
    "sqrt_mn_scaling": ["bjorck.spectral", "bjorck.scale_invariance"],
    "muon_newton_schulz": ["bjorck.at_most_one", "bjorck.spectral"],
}
