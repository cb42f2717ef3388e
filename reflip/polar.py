"""Lipschitz-safe polar iteration: per-step optimal odd polynomials, certified never to push a
singular value above 1 (proofs/polar.md).

Like Björck's iteration [BJ-1] it drives ``A_0 = W / ||W||_F`` to the polar factor ``U V^T`` by
steps ``A_{k+1} = A_k P_k(A_k^T A_k)``, acting on every singular value through the odd scalar
polynomial ``p_k(s) = s P_k(s^2)`` [PO-1]. The polynomials change from step to step: ``p_k``
is the odd polynomial of degree 3 or 5 that best maps the current interval ``[l_k, 1]`` of
singular values towards 1 (Remez minimax, Chen & Chow 2014; Amsel, Persson, Musco & Gower
2025, "Polar Express"), divided by its maximum so that ``[l_k, 1]`` lands in
``[l_{k+1}, 1)`` [PO-2]. Published schedules overshoot (singular values reach ~1.12 mid-way)
and are not 1-Lipschitz; these are certified in exact rational arithmetic to keep every
singular value in ``(0, 1)`` whatever the input [PO-3], so that in floating point the output's
largest singular value is ``<= 1 + safety_bound(...)`` [PO-4]. From ``s_min / ||W||_F >= 1e-3``
the degree-5 schedule reaches the float64 floor in 8 steps (24 matrix products) where Björck
order 1 needs ~21 steps (42 products).

The schedules are computed once by ``python -m reflip._polar_schedule`` and shipped as
constants (:mod:`reflip._polar_coefficients`).

Types (internally the iteration runs on the tall orientation ``(..., M, N)``, ``M >= N``)::

    polar_fwd :: (w[..., m, n], **params) -> (y[..., m, n], PolarResiduals)
    polar_bwd :: (PolarResiduals, y_bar[..., m, n]) -> w_bar[..., m, n]
    polar_jvp :: (PolarResiduals, w_dot[..., m, n]) -> y_dot[..., m, n]

The derivatives [PO-5] are Björck's: one step is Björck's step with other coefficients, so the
unrolled rules are [BJ-8] applied with the step's coefficients, and the implicit rule is the
derivative of the same limit ``U V^T`` [BJ-9]. The convergence report and its warnings are
Björck's (:class:`~reflip.bjorck.BjorckInfo`, :class:`~reflip.bjorck.BjorckConvergenceWarning`)
with the same rules [BJ-7] [BJ-10].

Host synchronisation: ``check_finite``, ``tol`` (every iteration), the convergence check (unless
``on_nonconvergence="ignore"``) and the implicit backward's checks each read one scalar back.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from . import _fast
from ._backend import get_namespace
from ._polar_coefficients import SCHEDULES
from ._registry import Primitive, register
from ._validate import (
    MAX_ITERATIONS,
    NUMERIC_DTYPES,
    check_array,
    check_bool,
    check_choice,
    check_int,
    check_real,
)
from .bjorck import (
    BjorckInfo,
    _residual,
    _scale,
    _scale_jacobian,
    _scaled_eyes,
    _step,
    _step_jvp,
    _step_vjp,
    _tall,
    _warn_above,
    check_tol,
    derivative,
)
from .bjorck import (
    _report_convergence as _bjorck_report,
)
from .tolerances import eps

__all__ = [
    "PolarResiduals",
    "polar",
    "polar_bwd",
    "polar_fwd",
    "polar_jvp",
    "polar_schedule",
    "safety_bound",
    "DEGREES",
    "LOWERS",
]

DEGREES = (3, 5)
#: Design lower bounds of the shipped schedules: the smallest singular value of ``W / ||W||_F``
#: each is built for (smaller ones still converge, more slowly [PO-3]).
LOWERS = tuple(sorted({lower for _, lower in SCHEDULES}, reverse=True))
BACKWARDS = ("unrolled", "implicit")
ON_NONCONVERGENCE = ("warn", "raise", "ignore")


# ----------------------------------------------------------------------------------------------
# Schedule [PO-2] [PO-3]


def polar_schedule(degree=5, lower=1e-3):
    """The certified schedule for ``degree`` and design lower bound ``lower`` [PO-2] [PO-3].

    Returns
    -------
    tuple of (coefficients, l_k, l_{k+1}, u_k)
        ``coefficients = (c_0, ..., c_q)`` of ``p_k(s) = sum_j c_j s^(2j+1)`` (float64,
        ``q = (degree - 1) / 2``): certified, for these exact float64 numbers, to satisfy
        ``0 < p_k(s) < 1`` on ``(0, u_k]`` (``u_k = 1 + min(2^-8, 1 - l_k)``) and
        ``p_k > l_{k+1}`` on ``[l_k, 1]``. The last polynomial is repeated beyond the schedule.
    """
    degree, lower = _check_schedule(degree, lower)
    return SCHEDULES[(degree, lower)]


def _check_schedule(degree, lower):
    """``degree`` an integer in :data:`DEGREES`, ``lower`` a real number in :data:`LOWERS`."""
    degree = check_choice(check_int(degree, "degree"), "degree", DEGREES)
    return degree, check_choice(check_real(lower, "lower"), "lower", LOWERS)


@functools.lru_cache(maxsize=None)
def _default_n_iter(degree, lower, dtype_eps):
    """Schedule steps after which ``1 - l_k <= eps`` of the dtype (all of them in float64)."""
    steps = SCHEDULES[(degree, lower)]
    for k, (_, _, nl, _) in enumerate(steps):
        if 1.0 - nl <= dtype_eps:
            return k + 1
    return len(steps)


def _steps(degree, lower, n_iter):
    """``(coefficients, u_k)`` of the ``n_iter`` steps (the last schedule step repeated)."""
    steps = SCHEDULES[(degree, lower)]
    return tuple((steps[min(k, len(steps) - 1)][0], steps[min(k, len(steps) - 1)][3]) for k in range(n_iter))


def _coefficients(degree, lower, n_iter):
    """The ``n_iter`` coefficient tuples of the iteration."""
    return tuple(c for c, _ in _steps(degree, lower, n_iter))


def _excess(c, u, t):
    """Upper bound of ``max(p(s) - 1, -1 - p(s), 0)`` over ``[u, 1 + t]`` (``0`` when
    ``1 + t <= u``), given that ``|p| < 1`` on ``[0, u]`` [PO-3]: ``p(s) <= p(u) + (s - u) L``
    with ``L`` the largest ``|p'|`` on the interval (``p'`` is of degree <= 2 in ``s^2``: its
    extremes are at the ends or the vertex)."""
    hi = 1.0 + t
    if hi <= u:
        return 0.0
    ts = [u * u, hi * hi]
    if len(c) == 3 and c[2] != 0.0:
        vertex = -3.0 * c[1] / (10.0 * c[2])
        if ts[0] < vertex < ts[1]:
            ts.append(vertex)
    slope = max(abs(sum((2 * j + 1) * cj * x**j for j, cj in enumerate(c))) for x in ts)
    p_u = sum(cj * u ** (2 * j + 1) for j, cj in enumerate(c))
    # 4 ulps of slack on the evaluation of p(u) (|p(u)| < 1, a handful of terms).
    return max(0.0, abs(p_u) + 2.0**-50 + (hi - u) * slope - 1.0)


def safety_bound(shape, dtype, *, degree=5, lower=1e-3, n_iter=None):
    """Upper bound ``t`` such that every singular value of ``polar(w, ...)`` is ``<= 1 + t``
    in floating point, for any finite ``w`` of ``shape`` and ``dtype`` [PO-4].

    In exact arithmetic every singular value stays in ``(0, 1)`` [PO-3]. In floating point the
    scaling commits ``t_0 = gamma_{mn+2} + 4u`` (``u = eps / 2``, ``gamma_n = n u / (1 - n u)``)
    and step ``k``, on an input with ``sigma_max <= 1 + t_k``, a spectral-norm error
    ``e_k <= 2 (1 + t_k)^d max(N (S'_k gamma_M + S_k (gamma_{q(N+2)} + gamma_N)),
    S'_k gamma_{M+4} N + gamma_{q(N+4)+2} sum_j |c_j| N^((j+1)/2))`` (``S_k = sum |c_j|``,
    ``S'_k = sum j |c_j|``; the first for the core's products, Higham's componentwise bound
    for each; the second for NumPy's fused step, [BJ-11]'s monomial-wise bound with its
    depths; the factor 2 covers the second-order terms). Each ``p_k`` maps ``(0, u_k]`` into ``(0, 1)``
    (``u_k = 1 + min(2^-8, 1 - l_k)``), so an overshoot ``t_k <= u_k - 1`` is absorbed; a larger
    one leaves at most ``_excess``. Hence ``t_{k+1} = excess_k(t_k) + e_k``, and the bound is
    ``t_K``; ``inf`` where the worst-case constants (up to ``N^(5/2) eps``: float32 beyond
    about a dozen columns) exceed ``2^-8``.

    Parameters
    ----------
    shape : tuple of int
        ``(..., m, n)``, the shape of ``w``.
    dtype : float32 or float64 (a dtype or its name)
    degree, lower, n_iter
        As for :func:`polar_fwd` (``n_iter=None``: the default number of steps for ``dtype``).

    Returns
    -------
    float
    """
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"shape must be a tuple of integers (..., m, n), got {shape!r}")
    if len(shape) < 2:
        raise ValueError(f"shape must have at least 2 entries (..., m, n), got {tuple(shape)}")
    *_, m, n = (check_int(d, "shape", minimum=1) for d in shape)
    big, small = max(m, n), min(m, n)
    degree, lower = _check_schedule(degree, lower)
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in NUMERIC_DTYPES:
        # The dtype policy of the numerical primitives: float32 and float64 only, TypeError.
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    dtype = name
    u = eps(dtype) / 2.0
    if n_iter is None:
        n_iter = _default_n_iter(degree, lower, eps(dtype))
    n_iter = check_int(n_iter, "n_iter", minimum=0, maximum=MAX_ITERATIONS)

    def gamma(k):
        return k * u / (1.0 - k * u) if k * u < 1.0 else math.inf

    q = (degree - 1) // 2
    t = gamma(m * n + 2) + 4.0 * u
    for c, upper in _steps(degree, lower, n_iter):
        if not t <= 2.0**-8:
            return math.inf
        s1 = sum(abs(x) for x in c)
        s2 = sum(j * abs(x) for j, x in enumerate(c))
        core = small * (s2 * gamma(big) + s1 * (gamma(q * (small + 2)) + gamma(small)))
        fused = s2 * gamma(big + 4) * small + gamma(q * (small + 4) + 2) * sum(
            abs(x) * small ** ((j + 1) / 2) for j, x in enumerate(c))
        err = 2.0 * (1.0 + t) ** degree * max(core, fused)
        t = _excess(c, upper, t) + err
    return t if t <= 2.0**-8 else math.inf


# ----------------------------------------------------------------------------------------------
# Configuration and residuals


class _Config(NamedTuple):
    """The validated parameters of one call. ``scaling`` is always ``"frobenius"``: it is the
    only guaranteed bound [BJ-6], and Björck's scaling rules read it."""

    coeffs: tuple
    degree: int
    lower: float
    n_iter: int
    tol: float | None
    backward: str
    on_nonconvergence: str
    transposed: bool
    warn_above: float
    scaling: str = "frobenius"


class PolarResiduals(NamedTuple):
    """What the backward pass and the JVP need, in the tall orientation (``M >= N``); the same
    fields as :class:`~reflip.bjorck.BjorckResiduals`, so Björck's implicit rule reads them.

    Attributes
    ----------
    w : array
        The input (``w.mT`` when wide), kept by reference.
    scale : array
        ``||W||_F`` of every matrix, shape ``(..., 1, 1)``.
    iterates : tuple of (A_k, X_k) or None
        Every iterate multiplied and its Gram matrix; ``None`` for ``backward="implicit"``.
    y : array
        The output, tall orientation.
    config : _Config
    info : BjorckInfo
        The convergence report [BJ-7].
    """

    w: object
    scale: object
    iterates: tuple | None
    y: object
    config: _Config
    info: BjorckInfo

    @property
    def shape(self):
        shape = tuple(self.w.shape)
        return (*shape[:-2], shape[-1], shape[-2]) if self.config.transposed else shape


def _validated(w, *, degree, lower, n_iter, tol, backward, on_nonconvergence, check_finite):
    """Public-layer validation (through :mod:`reflip._validate`): ``(xp, cfg)``."""
    xp = get_namespace(w=w)
    check_array(w, xp, "w", min_ndim=2, what=" (..., m, n)")
    degree, lower = _check_schedule(degree, lower)
    if n_iter is None:
        n_iter = _default_n_iter(degree, lower, eps(w.dtype))
    n_iter = check_int(n_iter, "n_iter", minimum=0, maximum=MAX_ITERATIONS)
    tol = check_tol(tol)
    backward = check_choice(backward, "backward", BACKWARDS)
    on_nonconvergence = check_choice(on_nonconvergence, "on_nonconvergence", ON_NONCONVERGENCE)
    if check_bool(check_finite, "check_finite") and not bool(xp.all(xp.isfinite(w))):
        raise ValueError("w must be finite (it contains NaN or inf); pass check_finite=False to "
                         "skip this check and let NaN propagate")
    cfg = _Config(coeffs=_coefficients(degree, lower, n_iter), degree=degree, lower=lower, n_iter=n_iter,
                  tol=tol, backward=backward, on_nonconvergence=on_nonconvergence,
                  transposed=w.shape[-2] < w.shape[-1], warn_above=_warn_above(min(w.shape[-2:]), w.dtype))
    return xp, cfg


# ----------------------------------------------------------------------------------------------
# Core (array API standard, xp passed down)


def _iterate(a, cfg, xp, *, keep, report):
    """Run the schedule from ``a = A_0``: ``(A_K, [(A_k, X_k)] or None, K, residual)``; with
    ``tol`` stop as soon as ``max ||X_k - I||_F <= tol`` [BJ-7]."""
    pairs = [] if keep else None
    residual = None
    # [BJ-11] NumPy: each step's products fused with BLAS alpha/beta on one workspace, the
    # step's coefficients passed per call; its rounding is covered by [PO-4]'s bound.
    fast = _fast.bjorck_steps(a, cfg.coeffs[0] if cfg.coeffs else (1.0, 0.0), "default", xp, reuse=not keep)
    # Bounded, not `while True`: every pass but the last ends with a step, and the last (k ==
    # n_iter) always breaks; a miscounted step then ends the loop instead of running forever.
    for k in range(cfg.n_iter + 1):
        if k == cfg.n_iter and not report and cfg.tol is None:
            break
        x = fast.gram(a) if fast else a.mT @ a
        if cfg.tol is not None or k == cfg.n_iter:
            residual = _residual(x, xp)
            if cfg.tol is not None and float(xp.max(residual)) <= cfg.tol:
                break
        if k == cfg.n_iter:
            break
        if keep:
            pairs.append((a, x))
        coeffs = cfg.coeffs[k]
        a = fast.step(a, x, coeffs) if fast else _step(a, x, coeffs, _scaled_eyes(coeffs, a, xp))
    return a, pairs, k, residual


def _polar_fwd(w, cfg, xp, *, keep=True, report=True):
    wt = _tall(w, cfg.transposed)
    a0, scale = _scale(wt, "frobenius", xp)
    keep = keep and cfg.backward == "unrolled"
    y, pairs, k, residual = _iterate(a0, cfg, xp, keep=keep, report=report)
    info = BjorckInfo(k, residual, cfg.tol if cfg.tol is not None else math.sqrt(eps(w.dtype)),
                      cfg.tol is not None)
    res = PolarResiduals(wt, scale, tuple(pairs) if pairs is not None else None, y, cfg, info)
    return _tall(y, cfg.transposed), res


def _unrolled_bwd(res, y_bar, xp):
    """[PO-5] Reverse pass: Björck's step VJP [BJ-8] with each step's coefficients, then the
    Frobenius scaling's Jacobian."""
    a_bar = y_bar
    # An unrolled run always keeps its iterates (only backward="implicit" stores None, and it
    # never reaches the unrolled rules): nothing to recompute, unlike Björck's checkpointing.
    pairs = res.iterates
    # [BJ-11] the fused reverse steps, results in two alternating buffers (each read once).
    # (A cotangent of another dtype than the iterates is promoted by the core's products.)
    fast = (_fast.bjorck_steps(y_bar, res.config.coeffs[0] if res.config.coeffs else (1.0, 0.0), "default",
                               xp, reuse=True) if y_bar.dtype == res.w.dtype else None)
    for k in range(len(pairs) - 1, -1, -1):
        a, x = pairs[k]
        coeffs = res.config.coeffs[k]
        a_bar = fast.step_vjp(a, x, a_bar, coeffs) if fast else _step_vjp(a, x, a_bar, coeffs,
                                                                           _scaled_eyes(coeffs, a, xp))
    return _scale_jacobian(res, a_bar, xp)


def _unrolled_jvp(res, w_dot, xp):
    """[PO-5] Forward-mode through the same steps [BJ-8]."""
    a_dot = _scale_jacobian(res, w_dot, xp)
    for k, (a, x) in enumerate(res.iterates):
        coeffs = res.config.coeffs[k]
        a_dot = _step_jvp(a, x, a_dot, coeffs, _scaled_eyes(coeffs, a, xp))
    return a_dot


# ----------------------------------------------------------------------------------------------
# Public layer


def _report_convergence(info, cfg, stacklevel):
    """Björck's rule [BJ-7] [BJ-10], with the polar iteration's advice."""
    _bjorck_report(info, cfg, stacklevel + 1, name="polar iteration",
                   advice=f"the schedule is built for s_min / ||w||_F >= lower={cfg.lower:g}: pick a smaller "
                          f"lower; zero singular values never converge")


def polar_fwd(w, *, degree=5, lower=1e-3, n_iter=None, tol=None, backward="unrolled",
              on_nonconvergence="warn", check_finite=True):
    """Lipschitz-safe polar iteration, forward pass returning the residuals of the backward.

    .. math::

        A_0 = W / \\|W\\|_F, \\qquad A_{k+1} = A_k P_k(A_k^T A_k), \\qquad
        Y = A_K \\to U V^T \\text{ for } W = U S V^T

    with ``p_k(s) = s P_k(s^2)`` the certified optimal odd polynomials of
    :func:`polar_schedule` [PO-1] [PO-2]: every singular value of every iterate stays in
    ``(0, 1)`` in exact arithmetic [PO-3] and below ``1 + safety_bound(w.shape, w.dtype, ...)``
    in floating point [PO-4]. A wide ``W`` is transposed, iterated and transposed back.

    Parameters
    ----------
    w : array, float32 or float64, shape (..., m, n), finite, non-empty
        Matrices to orthonormalize; never modified.
    degree : {3, 5}, default 5
        Degree of the step polynomials: 2 matrix products per step for 3, 3 for 5.
    lower : {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6}, default 1e-3
        Design lower bound: the schedule is optimal for singular values of ``W / ||W||_F`` in
        ``[lower, 1]``. Smaller ones are safe too and converge, more slowly [PO-3].
    n_iter : int or None, default None
        Steps (``0 <= n_iter <= 10_000``), or the maximum with ``tol``. ``None``: the schedule's
        steps until ``1 - l_k <= eps`` of the dtype (degree 5, ``lower=1e-3``: 8 in float64).
        Beyond the schedule the last polynomial is repeated.
    tol : float or None, default None
        Stop as soon as ``max ||A_k^T A_k - I||_F <= tol`` (one host read per step) [BJ-7].
    backward : {"unrolled", "implicit"}, default "unrolled"
        ``"unrolled"``: exact derivative of the computed steps; ``"implicit"``: derivative of the
        limit ``U V^T``, valid once converged [PO-5].
    on_nonconvergence : {"warn", "raise", "ignore"}, default "warn"
        Björck's rule [BJ-10]: with ``tol``, when it is missed; without, when
        ``max ||Y^T Y - I||_F > sqrt(N eps)``: warn (:class:`~reflip.BjorckConvergenceWarning`),
        raise (:class:`~reflip.BjorckConvergenceError`) or skip the check.
    check_finite : bool, default True
        Raise ``ValueError`` on NaN/inf.

    Returns
    -------
    y : array, shape (..., m, n)
    residuals : PolarResiduals
        ``residuals.info`` is the :class:`~reflip.BjorckInfo` report.

    Raises
    ------
    TypeError, ValueError
        Bad arguments (the message names the parameter).
    BjorckConvergenceError
        Not converged with ``on_nonconvergence="raise"``.
    """
    xp, cfg = _validated(w, degree=degree, lower=lower, n_iter=n_iter, tol=tol, backward=backward,
                         on_nonconvergence=on_nonconvergence, check_finite=check_finite)
    y, res = _polar_fwd(w, cfg, xp)
    _report_convergence(res.info, cfg, stacklevel=2)
    return y, res


def polar_bwd(residuals, y_bar):
    """VJP ``w_bar = J^T y_bar`` [PO-5]: ``"unrolled"`` pulls back through every step with
    Björck's step VJP [BJ-8] and the Frobenius scaling; ``"implicit"`` is the VJP of ``U V^T``
    [BJ-9] (warns when the forward had not converged, ``ValueError`` at a singular ``w``)."""
    return derivative(residuals, y_bar, "y_bar", _unrolled_bwd)


def polar_jvp(residuals, w_dot):
    """JVP ``y_dot = J w_dot``, the adjoint of :func:`polar_bwd` (same ``backward``) [PO-5]."""
    return derivative(residuals, w_dot, "w_dot", _unrolled_jvp)


def polar(w, *, degree=5, lower=1e-3, n_iter=None, tol=None, backward="unrolled",
          on_nonconvergence="warn", check_finite=True, return_info=False):
    """Orthonormalize ``w`` (its polar factor ``U V^T``) by the Lipschitz-safe polynomial
    iteration [PO-1] [PO-3]; same parameters and result as :func:`polar_fwd`, bit for bit,
    without keeping iterates (``backward`` is accepted and ignored).

    Parameters
    ----------
    return_info : bool, default False
        Also return the :class:`~reflip.BjorckInfo` report.
    """
    xp, cfg = _validated(w, degree=degree, lower=lower, n_iter=n_iter, tol=tol, backward=backward,
                         on_nonconvergence=on_nonconvergence, check_finite=check_finite)
    check_bool(return_info, "return_info")
    report = return_info or cfg.on_nonconvergence != "ignore"
    y, res = _polar_fwd(w, cfg, xp, keep=False, report=report)
    _report_convergence(res.info, cfg, stacklevel=2)
    return (y, res.info) if return_info else y


POLAR = register(
    Primitive(
        name="polar",
        fun=polar,
        fwd=polar_fwd,
        bwd=polar_bwd,
        jvp=polar_jvp,
        proof="PO-1",
        second_order=False,
        strategy="reflip.testing.strategies.polar:polar_cases",
        bench_inputs="reflip.testing.strategies.polar:polar_bench_inputs",
    )
)
