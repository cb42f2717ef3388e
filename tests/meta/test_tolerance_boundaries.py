"""Tolerance boundaries of the derivative and orthonormality checks (issue 20, "tolerance
drift").

Every other meta-test plants an order-one error, which a check still catches after its tolerance
is loosened tenfold. Here each check gets an error just above its documented tolerance (it must
fail) and just below it (it must pass), through the check functions themselves. The tolerances
are written here from their documentation, not imported from ``reflip.tolerances``: a loosened
or tightened constant then fails this file.

- derivatives ([AU-2], ``derivative_rtol``): ``max(100 eps64^(2/3), sqrt(eps(dtype)))``;
- the dot-product test ([AU-3], ``exact_rtol(dtype, max(8, size))``): ``4 max(8, size) eps``;
- Björck's output ([BJ-5], [BJ-12], ``forward_error_bound``):
  ``4 (order + 2)(n + 2) sqrt(max(m, n)) eps amp``;
- spectral normalization ([PR-11]): ``4 (4 (m + n) + 16) eps``.

The planted errors are exact functions of the check's relative error (derived per test below),
on inputs chosen so that rounding moves them by far less than the 10% margin.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from reflip.audit import bjorck as audit_bjorck
from reflip.audit import spectral as audit_spectral
from reflip.audit.engine import ClaimFailure
from reflip.audit.generic import _check_adjoint, _directions, fd_check
from reflip.testing.backends import available_backends
from reflip.testing.strategies.common import Case

NUMPY = available_backends(("numpy",))[0]
MARGIN = 0.1  # the planted error is (1 -+ MARGIN) times the tolerance


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def _derivative_tol(dtype):
    return max(100.0 * _eps("float64") ** (2.0 / 3.0), math.sqrt(_eps(dtype)))


def _linear_impl(a, vjp_gain=1.0, jvp_gain=1.0):
    """``f(x) = a x`` with a VJP ``vjp_gain a y_bar`` and a JVP ``jvp_gain a x_dot``, returned
    in float64 so that the planted gains are not rounded to the case's dtype."""
    def fun(x):
        return a * np.asarray(x, np.float64)

    def fwd(x):
        return fun(x), None

    def bwd(residuals, y_bar):
        return vjp_gain * a * np.asarray(y_bar, np.float64)

    def jvp(residuals, x_dot):
        return jvp_gain * a * np.asarray(x_dot, np.float64)

    return SimpleNamespace(name="planted", fun=fun, fwd=fwd, bwd=bwd, jvp=jvp, piecewise_linear=True)


def _sides(tol):
    return [(tol * (1 - MARGIN), False), (tol * (1 + MARGIN), True)]


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_vjp_against_central_differences(dtype, fails):
    """[AU-2] At ``x = 0`` with ``y_bar = x_dot`` (entries +-1), ``a = 2`` and a power-of-two
    step every central difference is exact and the floor is 0, so a VJP ``(1 + t) a y_bar``
    has the relative error ``t / (2 + t)``: ``t = 2 r / (1 - r)`` plants the error ``r``."""
    r = _sides(_derivative_tol(dtype))[fails][0]
    t = 2 * r / (1 - r)
    v = np.array([1.0, -1.0, 1.0, 1.0])
    impl = _linear_impl(2.0, vjp_gain=1 + t)
    impl.jvp = None
    run = lambda: fd_check(impl, NUMPY, dtype, np.zeros(4), np.zeros(4), {}, v, v, 2.0**-10)  # noqa: E731
    if fails:
        with pytest.raises(ClaimFailure, match="VJP disagrees"):
            run()
    else:
        assert run()["vjp_vs_fd"] == pytest.approx(r, rel=0.01)  # the planted error was measured


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_jvp_against_central_differences(dtype, fails):
    """[AU-2] Same exact setting: a JVP ``(1 + s) a x_dot`` has the relative error ``s``."""
    s = _sides(_derivative_tol(dtype))[fails][0]
    v = np.array([1.0, -1.0, 1.0, 1.0])
    impl = _linear_impl(2.0, jvp_gain=1 + s)
    run = lambda: fd_check(impl, NUMPY, dtype, np.zeros(4), np.zeros(4), {}, v, v, 2.0**-10)  # noqa: E731
    if fails:
        with pytest.raises(ClaimFailure, match="JVP disagrees"):
            run()
    else:
        assert run()["jvp_vs_fd"] == pytest.approx(s, rel=0.01)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_adjoint_dot_product(dtype, fails):
    """[AU-3] With ``x = 0`` (no floor) the check draws ``v``, ``y_bar`` from the case; a JVP
    ``a v`` and a VJP ``(1 + t) a y_bar`` give the gap
    ``t |<y_bar, v>| / ((2 + t) ||y_bar|| ||v||)``; ``t`` is solved for the planted gap."""
    n = 6
    case = Case(x=np.zeros(n), params={})
    u, v = _directions(case, (n,))
    c = abs(float(u @ v)) / (np.linalg.norm(u) * np.linalg.norm(v))
    assert c > 0.1  # the drawn directions are not nearly orthogonal (else the gap is invisible)
    gap = _sides(4 * max(8, n) * _eps(dtype))[fails][0]
    t = 2 * gap / (c - gap)
    impl = _linear_impl(2.0, vjp_gain=1 + t)
    if fails:
        with pytest.raises(ClaimFailure, match="not adjoint"):
            _check_adjoint(impl, case, NUMPY, dtype)
    else:
        assert _check_adjoint(impl, case, NUMPY, dtype)["adjoint_gap"] == pytest.approx(gap, rel=0.01)


def _orthonormal_case(shape, seed=3):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal(shape))
    return q


def _bjorck_bound(dtype, params, shape, amp):
    m, n = shape[-2:]
    return 4.0 * (params.get("order", 1) + 2) * (min(m, n) + 2) * math.sqrt(max(m, n)) * _eps(dtype) * amp


def _stretched(q, t):
    """``Q`` with its first singular value ``1 + t``: ``||Y - Q||_F = t``, ``sigma_max = 1 + t``."""
    u, _, vt = np.linalg.svd(q, full_matrices=False)
    s = np.ones(min(q.shape))
    s[0] += t
    return (u * s) @ vt


def _constant_impl(y):
    return SimpleNamespace(name="planted", fwd=lambda x, **params: (y, None))


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_bjorck_polar_factor_and_orthonormality(dtype, fails):
    """[BJ-5] ``bjorck.polar`` on an orthonormal 6x4 input (scaling "none": a fixed point) with
    an output whose first singular value is ``1 + t``: the Frobenius error is ``t`` and
    ``||Y^T Y - I||_F = 2t + t^2``. The error bound decides; the semi-orthonormality test
    (``2 bound``) cannot fire first: it needs ``2t + t^2 > 2 bound``, i.e. ``t`` within
    ``bound^2 / 2`` of the bound (docs/mutation.md)."""
    params = {"order": 1, "beta": 0.5, "n_iter": 25, "scaling": "none"}
    q = _orthonormal_case((6, 4))
    _, _, amp = audit_bjorck.spectral_oracle(q, params)
    t = _sides(_bjorck_bound(dtype, params, q.shape, amp))[fails][0]
    impl = _constant_impl(_stretched(q, t))
    case = Case(x=q, params=params)
    if fails:
        with pytest.raises(ClaimFailure, match="not the polar factor"):
            audit_bjorck._check_polar(impl, case, NUMPY, dtype)
    else:
        figures = audit_bjorck._check_polar(impl, case, NUMPY, dtype)
        assert figures["error_over_bound"] == pytest.approx(1 - MARGIN, rel=0.01)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_bjorck_at_most_one(dtype, fails):
    """[BJ-12] The largest singular value may exceed 1 by the forward rounding bound, no more."""
    params = {"order": 1, "beta": 0.5, "n_iter": 25, "scaling": "frobenius"}
    w = np.random.default_rng(5).standard_normal((5, 3))
    _, _, amp = audit_bjorck.spectral_oracle(w, params)
    t = _sides(_bjorck_bound(dtype, params, w.shape, amp))[fails][0]
    impl = _constant_impl(_stretched(_orthonormal_case((5, 3)), t))
    case = Case(x=w, params=params)
    if fails:
        with pytest.raises(ClaimFailure, match="exceeds 1"):
            audit_bjorck._check_at_most_one(impl, case, NUMPY, dtype)
    else:
        figures = audit_bjorck._check_at_most_one(impl, case, NUMPY, dtype)
        assert figures["excess_over_bound"] == pytest.approx(1 - MARGIN, rel=0.01)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_spectral_converged(dtype, fails):
    """[PR-11] ``(1 + t) W / sigma_max``: spectral norm ``1 + t`` and entries off by at most
    ``t``; the tolerance ``4 (4 (m + n) + 16) eps`` decides."""
    w = np.random.default_rng(9).standard_normal((4, 3))
    t = _sides(4.0 * (4 * (4 + 3) + 16) * _eps(dtype))[fails][0]
    y = (1 + t) * w / np.linalg.norm(w, ord=2)
    impl = _constant_impl(y)
    case = Case(x=w, params={})
    if fails:
        with pytest.raises(ClaimFailure, match="not W / sigma_max"):
            audit_spectral._check_converged(impl, case, NUMPY, dtype)
    else:
        audit_spectral._check_converged(impl, case, NUMPY, dtype)


class _StretchImpl:
    """Returns its input with the first singular value multiplied by ``1 + t``."""

    name = "planted"

    def __init__(self, t):
        self.t = t

    def fwd(self, x, **params):
        return _stretched(np.asarray(x, np.float64), self.t), None


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_bjorck_fixed_points(dtype, fails):
    """[BJ-5] ``bjorck.fixed_points``: an orthonormal ``Q`` must come back within twice the
    forward rounding bound."""
    params = {"order": 2, "beta": 0.5, "n_iter": 10}
    q = _orthonormal_case((4, 6))
    q_cast = q.astype(dtype).astype(np.float64)
    _, _, amp = audit_bjorck.spectral_oracle(q_cast, {**params, "scaling": "none"})
    t = _sides(2 * _bjorck_bound(dtype, {**params, "scaling": "none"}, q.shape, amp))[fails][0]
    case = Case(x=q, params=params)
    if fails:
        with pytest.raises(ClaimFailure, match="not a fixed point"):
            audit_bjorck._check_fixed_points(_StretchImpl(t), case, NUMPY, dtype)
    else:
        figures = audit_bjorck._check_fixed_points(_StretchImpl(t), case, NUMPY, dtype)
        assert figures["error_over_bound"] == pytest.approx(1 - MARGIN, rel=0.02)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_polar_polar_factor(dtype, fails):
    """[PO-3] ``polar.polar``: ``||Y - U V^T||_F`` against
    ``4 (q + 3)(n + 2) sqrt(n) eps amp + sqrt(min(m, n)) gap`` (``q = (degree - 1) / 2``,
    ``n = max(m, n)``, ``gap`` the scalar maps' distance from 1)."""
    from reflip.audit import polar as audit_polar

    params = {"degree": 5, "lower": 1e-3}
    w = _gapped_matrix()
    _, tk, amp = audit_polar.spectral_oracle(w, params, dtype)
    gap = float(np.max(np.abs(tk - 1.0)))
    bound = 4.0 * (2 + 3) * (5 + 2) * math.sqrt(5) * _eps(dtype) * amp + math.sqrt(3) * gap
    t = _sides(bound)[fails][0]
    u, _, vt = np.linalg.svd(w, full_matrices=False)
    impl = _constant_impl(_stretched(u @ vt, t))
    case = Case(x=w, params=params)
    if fails:
        with pytest.raises(ClaimFailure, match="not the polar factor"):
            audit_polar._check_polar(impl, case, NUMPY, dtype)
    else:
        figures = audit_polar._check_polar(impl, case, NUMPY, dtype)
        assert figures["error_over_bound"] == pytest.approx(1 - MARGIN, rel=0.02)


def _gapped_matrix():
    """5 x 3 with singular values 1, 0.5, 0.25: well inside the polar schedule's range."""
    rng = np.random.default_rng(12)
    u, _ = np.linalg.qr(rng.standard_normal((5, 3)))
    v, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return (u * np.array([1.0, 0.5, 0.25])) @ v.T


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_spectral_constant_uv_derivative(dtype, fails):
    """[PR-11] ``spectral_normalize.constant_uv``: reflip's converged VJP plus a planted multiple
    ``alpha x_dot / ||x_dot||^2`` of the check's own direction (drawn from the case, as the check
    draws it), which moves ``<x_bar, x_dot>`` by ``alpha``. ``alpha`` is solved for the relative
    error ``r`` of the check's formula (``|gap| / (||y_bar|| ||fd|| + ||x_bar|| ||x_dot||)``),
    with reflip's own gap from the central differences (about 1e-10) left in."""
    from reflip import spectral_normalize_bwd, spectral_normalize_fwd
    from reflip.audit.engine import rng_for

    w = _gapped_matrix()
    rng = rng_for(w)
    x_dot, y_bar = rng.standard_normal(w.shape), rng.standard_normal(w.shape)
    h = 1e-6 * max(1.0, float(np.max(np.abs(w))))

    def normalized(a):
        return a / np.linalg.norm(a, ord=2)

    fd = (normalized(w + h * x_dot) - normalized(w - h * x_dot)) / (2 * h)
    _, res = spectral_normalize_fwd(w, n_iter=300, tol=0.0)
    base = np.asarray(spectral_normalize_bwd(res, y_bar))
    r = _sides(_derivative_tol(dtype))[fails][0]
    # |base.x_dot + alpha - y_bar.fd| = r (||y_bar|| ||fd|| + ||base + alpha d|| ||x_dot||), solved by
    # fixed-point iteration on the norm of the planted x_bar (it moves by a relative r at most).
    d = x_dot / np.sum(x_dot * x_dot)
    gap0 = float(np.sum(base * x_dot) - np.sum(y_bar * fd))
    alpha = 0.0
    for _ in range(5):
        scale = np.linalg.norm(y_bar) * np.linalg.norm(fd) + np.linalg.norm(base + alpha * d) * np.linalg.norm(x_dot)
        alpha = r * scale - gap0

    def fwd(x, **params):
        return np.asarray(x, np.float64) / np.linalg.norm(np.asarray(x, np.float64), ord=2), res

    impl = SimpleNamespace(name="planted", fwd=fwd, bwd=lambda residuals, yb: base + alpha * d)
    case = Case(x=w, params={})
    if fails:
        with pytest.raises(ClaimFailure, match="constant_uv VJP disagrees"):
            audit_spectral._check_constant_uv(impl, case, NUMPY, dtype)
    else:
        err = audit_spectral._check_constant_uv(impl, case, NUMPY, dtype)["vjp_vs_svd_fd"]
        assert err == pytest.approx(r, rel=0.02)
