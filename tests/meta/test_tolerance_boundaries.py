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
- spectral normalization ([PR-11]): ``4 (4 (m + n) + 16) eps`` (``converged`` and
  ``estimate_from_below``);
- ``polar.safety`` and ``polar.at_most_one`` ([PO-4]): the proved bound, at its documented
  values for 6 x 6 matrices;
- the iterate comparisons of Björck ([BJ-3], [BJ-4], [BJ-6]) and of the polar iteration
  ([PO-1]): multiples of the forward rounding bound;
- the convergence report ([BJ-7]): the slack ``4 (N + 2)^2 eps (1 + residual)``;
- ``group_sort.lipschitz`` ([GS-2]): a relative ``1e-12``.

The projections' tolerances, ``matches_reflip`` and ``max_min_network``'s are in
test_tolerance_boundaries_projections.py.

The planted errors are exact functions of the check's relative error (derived per test below),
on inputs chosen so that rounding moves them by far less than the 10% margin.
"""
import math
import warnings
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


# ----------------------------------------------------------------------------------------------
# polar.safety and polar.at_most_one [PO-4]: the proved bound, from its documented values

# proofs/polar.md [PO-4]: safety_bound for 6 x 6 matrices, degree 5, l_0 = 1e-3, default steps.
# Given to two digits (within 4.2% of the value), inside the 10% margin.
SAFETY_BOUND_6X6 = {"float64": 1.2e-13, "float32": 6.4e-5}


@pytest.mark.parametrize("claim_id", ["polar.safety", "polar.at_most_one"])
@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_polar_safety_bound(dtype, claim_id, fails):
    """[PO-4] A 6 x 6 output ``diag(1 + t, 1, ..., 1)`` (its float64 SVD is exact): the largest
    singular value may exceed 1 by the proved bound, whose documented value decides. Both
    claims, through the check each is registered with."""
    from reflip.audit import polar  # noqa: F401 - registers the polar claims
    from reflip.audit.engine import CLAIMS

    t = _sides(SAFETY_BOUND_6X6[np.dtype(dtype).name])[fails][0]
    y = np.eye(6)
    y[0, 0] += t
    case = Case(x=np.random.default_rng(14).standard_normal((6, 6)), params={"degree": 5, "lower": 1e-3})
    check = CLAIMS[claim_id].check
    if fails:
        with pytest.raises(ClaimFailure, match="exceeds 1"):
            check(_constant_impl(y), case, NUMPY, dtype)
    else:
        assert check(_constant_impl(y), case, NUMPY, dtype)["excess_over_one"] == pytest.approx(t, rel=0.01)


# ----------------------------------------------------------------------------------------------
# Iterate comparisons of Björck [BJ-3] [BJ-4] [BJ-6] and of the polar iteration [PO-1]: each
# compares outputs within a multiple of the forward rounding bound E of [BJ-3] / [PO-1]. The
# multiples are those of the checks' docstrings and comments (proofs/bjorck.md states E, not
# them): B(W) against the oracle within E, B(W^T) against B(W)^T and a stack against its
# matrices within 2E (two computed outputs), B(P W R) against P B(W) R within 3E (one more
# error: rounding P W R to the dtype), B(a W) against B(W) within 2E + 2E_a + sqrt(N) gap_a.


class _Scripted:
    """Returns the given float64 outputs in call order: the planted error is then exactly the
    difference the check measures."""

    name = "planted"

    def __init__(self, *outputs):
        self.outputs = list(outputs)

    def fwd(self, x, **params):
        return np.asarray(self.outputs.pop(0), np.float64), None


def _perturbed(y, t):
    """``y`` with ``t`` added to entry ``(0, 0)`` of every matrix: Frobenius distance ``t``."""
    y = np.array(y, np.float64)
    y[..., 0, 0] += t
    return y


def _polar_bound(dtype, params, shape, amp):
    """[PO-1] ``4 (q + 3)(n + 2) sqrt(n) eps amp``, ``q = (degree - 1) / 2``, ``n = max(m, n)``."""
    q, n = (params.get("degree", 5) - 1) // 2, max(shape[-2:])
    return 4.0 * (q + 3) * (n + 2) * math.sqrt(n) * _eps(dtype) * amp


BJ_PARAMS = {"order": 1, "beta": 0.5, "n_iter": 4, "scaling": "frobenius"}  # not converged: iterates differ


def _expect(fails, run, match, ratio_key="error_over_bound"):
    if fails:
        with pytest.raises(ClaimFailure, match=match):
            run()
    else:
        assert run()[ratio_key] == pytest.approx(1 - MARGIN, rel=0.02)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_bjorck_spectral(dtype, fails):
    """[BJ-3] ``bjorck.spectral``: the oracle's iterate plus ``t``, against ``E``."""
    w = np.random.default_rng(21).standard_normal((5, 3))
    want, _, amp = audit_bjorck.spectral_oracle(w, BJ_PARAMS)
    t = _sides(_bjorck_bound(dtype, BJ_PARAMS, w.shape, amp))[fails][0]
    impl = _Scripted(_perturbed(want, t))
    _expect(fails, lambda: audit_bjorck._check_spectral(impl, Case(x=w, params=BJ_PARAMS), NUMPY, dtype),
            "is not U diag")


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_bjorck_transpose(dtype, fails):
    """[BJ-4] ``bjorck.transpose``: ``B(W^T)`` off ``B(W)^T`` by ``t``, against ``2 E``."""
    w = np.random.default_rng(22).standard_normal((5, 3))
    y, _, amp = audit_bjorck.spectral_oracle(w, BJ_PARAMS)
    t = _sides(2 * _bjorck_bound(dtype, BJ_PARAMS, w.shape, amp))[fails][0]
    impl = _Scripted(y, _perturbed(y.T, t))
    _expect(fails, lambda: audit_bjorck._check_transpose(impl, Case(x=w, params=BJ_PARAMS), NUMPY, dtype),
            r"B\(W\^T\) != B\(W\)\^T")


def _rotations(x):
    """The ``P``, ``R`` the equivariance checks draw from the case."""
    from reflip._backend import haar_orthogonal
    from reflip.audit.engine import rng_for

    rng = rng_for(x)
    *batch, m, n = x.shape
    return haar_orthogonal(rng, m, batch=batch), haar_orthogonal(rng, n, batch=batch)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_bjorck_orthogonal_equivariance(dtype, fails):
    """[BJ-4] ``bjorck.orthogonal_equivariance``: ``B(P W R)`` off ``P B(W) R`` by ``t``,
    against ``3 E``."""
    w = np.random.default_rng(23).standard_normal((4, 3))
    p, r = _rotations(w)
    y, _, amp = audit_bjorck.spectral_oracle(w, BJ_PARAMS)
    t = _sides(3 * _bjorck_bound(dtype, BJ_PARAMS, w.shape, amp))[fails][0]
    impl = _Scripted(_perturbed(p @ y @ r, t), y)
    _expect(fails, lambda: audit_bjorck._check_orthogonal_equivariance(impl, Case(x=w, params=BJ_PARAMS), NUMPY,
                                                                       dtype), r"B\(P W R\) != P B\(W\) R")


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_bjorck_batch(dtype, fails):
    """[BJ-4] ``bjorck.batch``: matrix 1 alone off its row of the stack by ``t``, against its own
    ``2 E`` (matrix 0 agrees exactly)."""
    w = np.random.default_rng(24).standard_normal((2, 4, 3))
    ys = audit_bjorck.spectral_oracle(w, BJ_PARAMS)[0]
    _, _, amp1 = audit_bjorck.spectral_oracle(w[1], BJ_PARAMS)
    t = _sides(2 * _bjorck_bound(dtype, BJ_PARAMS, w.shape, amp1))[fails][0]
    impl = _Scripted(ys, ys[0], _perturbed(ys[1], t))
    _expect(fails, lambda: audit_bjorck._check_batch(impl, Case(x=w, params=BJ_PARAMS), NUMPY, dtype),
            "matrix 1 of the stack differs")


@pytest.mark.parametrize("params", [BJ_PARAMS, {"order": 2, "n_iter": 12, "scaling": "frobenius"}],
                         ids=["gap_decides", "converged"])
@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_bjorck_scale_invariance(dtype, params, fails):
    """[BJ-6] ``bjorck.scale_invariance`` (Frobenius scaling): ``B(2^j W)`` equal to ``B(W)``,
    ``B(3 W)`` off it by ``t``, against ``2 E + 2 E_3 + sqrt(N) gap_3`` (``E_3``, ``gap_3`` of
    ``3 W`` rounded to the dtype). Unconverged, ``gap_3`` (about 0.9) decides; converged (``gap_3
    = 0``) the two rounding bounds do."""
    w = np.random.default_rng(25).standard_normal((4, 3))
    y, _, amp = audit_bjorck.spectral_oracle(w, params)
    _, t3, amp3 = audit_bjorck.spectral_oracle((3.0 * w).astype(dtype), params)
    gap3 = float(np.max(np.abs(t3 - 1.0)))
    bound = 2 * _bjorck_bound(dtype, params, w.shape, amp) + 2 * _bjorck_bound(
        dtype, params, w.shape, amp3) + math.sqrt(3) * gap3
    t = _sides(bound)[fails][0]
    impl = _Scripted(y, y, y, _perturbed(y, t))
    _expect(fails, lambda: audit_bjorck._check_scale_invariance(impl, Case(x=w, params=params), NUMPY, dtype),
            r"B\(3.0 W\) != B\(W\)", "error_over_bound_x3.0")


PO_PARAMS = {"degree": 5, "lower": 1e-3, "n_iter": 3}  # not converged


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_polar_spectral(dtype, fails):
    """[PO-1] ``polar.spectral``: the schedule's iterate plus ``t``, against ``E``."""
    from reflip.audit import polar as audit_polar

    w = _gapped_matrix()
    want, _, amp = audit_polar.spectral_oracle(w, PO_PARAMS, dtype)
    t = _sides(_polar_bound(dtype, PO_PARAMS, w.shape, amp))[fails][0]
    impl = _Scripted(_perturbed(want, t))
    _expect(fails, lambda: audit_polar._check_spectral(impl, Case(x=w, params=PO_PARAMS), NUMPY, dtype),
            "not the schedule's scalar polynomials")


@pytest.mark.parametrize("part", ["transpose", "rotation"])
@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_polar_equivariance(dtype, part, fails):
    """[PO-1] ``polar.equivariance``: ``P(W^T)`` off ``P(W)^T``, or ``P(Q W R)`` off
    ``Q P(W) R``, by ``t``, each against ``3 E``."""
    from reflip.audit import polar as audit_polar

    w = _gapped_matrix()
    q, r = _rotations(w)
    y, _, amp = audit_polar.spectral_oracle(w, PO_PARAMS, dtype)
    t = _sides(3 * _polar_bound(dtype, PO_PARAMS, w.shape, amp))[fails][0]
    if part == "transpose":
        impl = _Scripted(y, _perturbed(y.T, t), q @ y @ r)
        match = r"P\(W\^T\) != P\(W\)\^T"
    else:
        impl = _Scripted(y, y.T, _perturbed(q @ y @ r, t))
        match = r"P\(Q W R\) != Q P\(W\) R"
    case = Case(x=w, params=PO_PARAMS)
    if fails:
        with pytest.raises(ClaimFailure, match=match):
            audit_polar._check_equivariance(impl, case, NUMPY, dtype)
    else:
        assert audit_polar._check_equivariance(impl, case, NUMPY, dtype)[part] == pytest.approx(1 - MARGIN, rel=0.02)


# ----------------------------------------------------------------------------------------------
# The convergence report [BJ-7] [PO-6]: the residual the check measures, ||Y^T Y - I||_F, may
# differ from tol (missed or met) and from the reported one by the rounding of a working-dtype
# Gram matrix, slack = 4 (N + 2)^2 eps (1 + residual), N = min(m, n) (its comment).


def _report_slack(dtype, n, residual):
    return 4.0 * (n + 2) ** 2 * _eps(dtype) * (1.0 + residual)


def _with_residual(rho):
    """4 x 3 ``diag(sqrt(1 + rho), 1, 1)``: ``||Y^T Y - I||_F = rho`` up to one rounding of
    ``(1 + rho)`` in float64 (far below the slack)."""
    y = np.eye(4, 3)
    y[0, 0] = math.sqrt(1.0 + rho)
    return y


def _report_impl(y, info=None, warn=False):
    from reflip.bjorck import BjorckConvergenceWarning

    def fwd(x, **params):
        if warn:
            warnings.warn("planted", BjorckConvergenceWarning, stacklevel=2)
        return y, SimpleNamespace(info=info)

    return SimpleNamespace(name="planted", fwd=fwd)


@pytest.mark.parametrize("primitive", ["bjorck", "polar"])
@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_report_silent_miss(dtype, primitive, fails):
    """[BJ-7] A residual ``tol + c slack`` returned without a warning: within the slack (``c =
    0.9``) it may count as met, beyond it (``c = 1.1``) it is a silent miss. ``rho`` solves
    ``rho = tol + c slack(rho)``."""
    tol, k = 1e-3, 4.0 * 25 * _eps(dtype)
    c = _sides(1.0)[fails][0]
    rho = (tol + c * k) / (1 - c * k)
    case = Case(x=np.zeros((4, 3)), params={"n_iter": 10, "tol": tol})
    run = lambda: audit_bjorck.convergence_report(_report_impl(_with_residual(rho)), case, NUMPY, dtype,  # noqa: E731
                                                  primitive)
    if fails:
        with pytest.raises(ClaimFailure, match="silently"):
            run()
    else:
        assert run() == {}


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_report_false_alarm(dtype, fails):
    """[BJ-7] A residual ``tol - c slack`` returned with a BjorckConvergenceWarning: within the
    slack (``c = 0.9``) the warning may stand, beyond it (``c = 1.1``) it reports a met tol as
    missed."""
    tol, k = 1e-3, 4.0 * 25 * _eps(dtype)
    c = _sides(1.0)[fails][0]
    rho = (tol - c * k) / (1 + c * k)
    case = Case(x=np.zeros((4, 3)), params={"n_iter": 10, "tol": tol})
    run = lambda: audit_bjorck.convergence_report(_report_impl(_with_residual(rho), warn=True), case,  # noqa: E731
                                                  NUMPY, dtype, "bjorck")
    if fails:
        with pytest.raises(ClaimFailure, match="reported non-convergence"):
            run()
    else:
        assert run() == {}


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_report_reported_residual(dtype, fails):
    """[BJ-7] An exactly semi-orthonormal output (measured residual 0) whose report says
    ``c slack``: the reported residual must be the measured one within the slack."""
    slack = _report_slack(dtype, 3, 0.0)
    reported = _sides(slack)[fails][0]
    info = SimpleNamespace(max_residual=reported, n_iter=10, converged=True)
    case = Case(x=np.zeros((4, 3)), params={"n_iter": 10, "tol": 1e-3})
    run = lambda: audit_bjorck.convergence_report(_report_impl(np.eye(4, 3), info), case, NUMPY, dtype,  # noqa: E731
                                                  "bjorck")
    if fails:
        with pytest.raises(ClaimFailure, match="info reports residual"):
            run()
    else:
        assert run()["report_error"] == pytest.approx(1 - MARGIN, rel=1e-6)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_spectral_estimate_from_below(dtype, fails):
    """[PR-11] ``spectral_normalize.estimate_from_below``: ``(1 - t) W / sigma_max`` has spectral
    norm ``1 - t``; the power-iteration estimate may exceed sigma_max by the tolerance of
    ``converged``, ``4 (4 (m + n) + 16) eps``, no more."""
    w = np.random.default_rng(9).standard_normal((4, 3))
    t = _sides(4.0 * (4 * (4 + 3) + 16) * _eps(dtype))[fails][0]
    impl = _constant_impl((1 - t) * w / np.linalg.norm(w, ord=2))
    case = Case(x=w, params={})
    if fails:
        with pytest.raises(ClaimFailure, match="the estimate exceeds sigma_max"):
            audit_spectral._check_from_below(impl, case, NUMPY, dtype)
    else:
        assert audit_spectral._check_from_below(impl, case, NUMPY, dtype)["overshoot"] == pytest.approx(-t, rel=0.01)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_group_sort_lipschitz(dtype, fails):
    """[GS-2] ``group_sort.lipschitz``: ``||f(x) - f(x')||_p = 1 + t`` for ``||x - x'||_p = 1``
    (every p); the check allows a relative ``1e-12`` (its comment: the differences are exact
    in float64 up to a few ulps; proofs/groupsort.md states no tolerance)."""
    from reflip.audit import groupsort as audit_groupsort

    t = _sides(1e-12)[fails][0]
    outputs = [np.array([1.0 + t, 0.0]), np.zeros(2)]
    impl = SimpleNamespace(name="planted", fun=lambda x, **params: outputs.pop(0))
    case = Case(x=np.array([1.0, 0.0]), params={"group_size": 2}, x2=np.zeros(2))
    if fails:
        with pytest.raises(ClaimFailure, match=r"\|\|f\(x\) - f\(x'\)\|\|_1"):
            audit_groupsort._check_lipschitz(impl, case, NUMPY, dtype)
    else:
        assert audit_groupsort._check_lipschitz(impl, case, NUMPY, dtype)["ratio_l2"] == pytest.approx(1 + t)


@pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])
def test_report_converged_flag(dtype, fails):
    """[BJ-7] A residual ``tol + c slack`` returned with its warning and truthfully reported,
    but ``info.converged = True``: within the slack the flag may say either, beyond it it must
    say False."""
    tol, k = 1e-3, 4.0 * 25 * _eps(dtype)
    c = _sides(1.0)[fails][0]
    rho = (tol + c * k) / (1 - c * k)
    measured = _with_residual(rho)[0, 0] ** 2 - 1.0  # what the check measures, to report it exactly
    info = SimpleNamespace(max_residual=measured, n_iter=10, converged=True)
    case = Case(x=np.zeros((4, 3)), params={"n_iter": 10, "tol": tol})
    run = lambda: audit_bjorck.convergence_report(_report_impl(_with_residual(rho), info, warn=True), case,  # noqa: E731
                                                  NUMPY, dtype, "bjorck")
    if fails:
        with pytest.raises(ClaimFailure, match="info.converged = True"):
            run()
    else:
        assert run()["report_error"] < 0.05
