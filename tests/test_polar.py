"""Tests of the Lipschitz-safe polar iteration (reflip/polar.py, proofs/polar.md) outside the
claim suite: the schedule (reproducible, certified, optimal against a linear-programming
minimax), the polar factor against the float64 SVD, safety at the worst points of the schedule,
the derivatives against independent oracles (autograd tracing a plain loop written here,
central differences, the dot-product test), bad input, the convergence report."""
import importlib
import math
import os
import warnings

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

import reflip
from reflip import BjorckConvergenceError, BjorckConvergenceWarning, bjorck
from reflip._backend import haar_orthogonal
from reflip._polar_coefficients import SCHEDULES
from reflip.polar import (
    polar,
    polar_bwd,
    polar_fwd,
    polar_jvp,
    polar_schedule,
    safety_bound,
)
from reflip.testing.backends import available_backends

RNG = np.random.default_rng(20251117)
QUIET = {"on_nonconvergence": "ignore"}


@pytest.fixture(autouse=True)
def _convergence_warnings_are_errors():
    """A test that expects a BjorckConvergenceWarning says so with pytest.warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", BjorckConvergenceWarning)
        yield


def _with_singular_values(s, m, n, seed=0):
    """``U diag(s) V^T`` with Haar ``U``, ``V`` (float64)."""
    rng = np.random.default_rng(seed)
    r = len(s)
    return (haar_orthogonal(rng, m)[:, :r] * np.asarray(s, float)) @ haar_orthogonal(rng, n)[:, :r].T


def _scaled_singular_values(ratio, n):
    """``n`` singular values whose smallest over their 2-norm is exactly ``ratio``: the others
    spread geometrically over [1/2, 1], the smallest solved for."""
    rest = np.geomspace(0.5, 1.0, n - 1)
    small = ratio * np.sqrt(np.sum(rest**2) / (1.0 - ratio**2))
    return np.concatenate([[small], rest])


def _uvt(w):
    u, _, vt = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
    return u @ vt


def _residual(y):
    y = np.asarray(y, np.float64)
    if y.shape[-2] < y.shape[-1]:
        y = np.swapaxes(y, -1, -2)
    g = np.swapaxes(y, -1, -2) @ y
    return float(np.max(np.linalg.norm(g - np.eye(g.shape[-1]), axis=(-2, -1))))


def _p(c, s):
    return sum(cj * s ** (2 * j + 1) for j, cj in enumerate(c))


# ----------------------------------------------------------------------------------------------
# The schedule [PO-2] [PO-3]


def test_schedule_is_reproducible():
    """[PO-2] the shipped coefficients are what the documented script computes, bit for bit,
    every degree and design bound."""
    from reflip._polar_schedule import compute_all

    assert {key: tuple(steps) for key, steps in compute_all().items()} == SCHEDULES


@pytest.mark.parametrize("key", sorted(SCHEDULES))
def test_schedule_maps_into_the_unit_interval(key):
    """[PO-3] every shipped polynomial, evaluated densely in float64 (an oracle independent of
    the Sturm certificate), stays in (0, 1) on (0, u_k] and above l_{k+1} on [l_k, 1]; the
    lower bounds rise to within 2^-50 of 1."""
    steps = SCHEDULES[key]
    for coeffs, lo, nl, upper in steps:
        s = np.concatenate([np.linspace(0.0, upper, 200_001)[1:], np.geomspace(1e-9, 1.0, 20_001)])
        p = _p(coeffs, s)
        # float64 evaluation of p commits up to ~sum |c_j| eps: the exact statement is the
        # rational certificate (test_schedule_certificates_hold_exactly).
        slack = 2 * sum(abs(c) for c in coeffs) * np.finfo(float).eps
        assert np.all(p > 0) and np.max(p) <= 1.0 + slack, (key, coeffs, np.max(p) - 1)
        on = s[(s >= lo) & (s <= 1.0)]
        assert np.min(_p(coeffs, on)) > nl * (1 - 4e-16), (key, coeffs)
        assert lo < nl < 1.0 and 1.0 < upper <= 1.0 + 2.0**-8
    assert 1.0 - steps[-1][2] <= 2.0**-50
    for (_, _, nl, _), (_, lo, _, _) in zip(steps[:-1], steps[1:], strict=True):
        assert nl == lo


def test_schedule_certificates_hold_exactly():
    """[PO-3] the exact rational certificate holds for every shipped step, and refuses a
    polynomial that reaches 1 (the first step's unscaled minimax polynomial)."""
    from reflip._polar_schedule import certify_step

    for steps in SCHEDULES.values():
        for coeffs, lo, nl, upper in steps:
            assert certify_step(coeffs, lo, nl, upper)
    coeffs, lo, nl, upper = SCHEDULES[(5, 1e-3)][0]
    assert not certify_step(tuple(1.01 * c for c in coeffs), lo, nl, upper)
    assert not certify_step(coeffs, lo, nl, 1.1)


def test_singular_values_below_the_design_bound_grow():
    """[PO-3] for every shipped step, P_k(t) = p_k(s)/s (t = s^2) decreases on [0, l_k^2] and
    exceeds 1 there: a singular value below the schedule's interval grows at every step."""
    for key, steps in SCHEDULES.items():
        for coeffs, lo, _, _ in steps:
            t = np.linspace(0.0, lo * lo, 10_001)
            ratio = sum(c * t**j for j, c in enumerate(coeffs))
            assert np.all(np.diff(ratio) <= 0) and ratio[-1] > 1.0, (key, coeffs)


@pytest.mark.parametrize("degree, step", [(3, 0), (3, 4), (5, 0), (5, 2), (5, 4)])
def test_schedule_step_is_minimax(degree, step):
    """[PO-2] each step maximises min p / max p over [l_k, u_k] among odd polynomials of its
    degree: compared with the minimax solved as a linear program on a dense grid (scipy),
    an oracle independent of the Remez exchange."""
    from scipy.optimize import linprog

    coeffs, lo, _, upper = SCHEDULES[(degree, 1e-3)][step]
    q = (degree - 1) // 2
    x = np.concatenate([np.geomspace(lo, upper, 4000), np.linspace(lo, upper, 4000)])
    basis = np.stack([x ** (2 * j + 1) for j in range(q + 1)], axis=1)
    # minimise E subject to |1 - basis @ c| <= E.
    a = np.block([[basis, -np.ones((len(x), 1))], [-basis, -np.ones((len(x), 1))]])
    b = np.concatenate([np.ones(len(x)), -np.ones(len(x))])
    cost = np.zeros(q + 2)
    cost[-1] = 1.0
    sol = linprog(cost, A_ub=a, b_ub=b, bounds=[(None, None)] * (q + 2), method="highs")
    e = sol.x[-1]
    p = _p(coeffs, x)
    r = np.min(p) / np.max(p)
    # Compared as minimax errors (1 - r) / (1 + r), to the LP solver's tolerance.
    assert (1 - r) / (1 + r) == pytest.approx(e, abs=1e-7)


def test_schedule_rejects_unknown_parameters():
    with pytest.raises(ValueError, match="degree"):
        polar_schedule(degree=4)
    with pytest.raises(ValueError, match="lower"):
        polar_schedule(lower=0.5)
    assert polar_schedule(5, 1e-3) is SCHEDULES[(5, 1e-3)]


# ----------------------------------------------------------------------------------------------
# The polar factor [PO-1] [PO-3] [PO-6]


@pytest.mark.parametrize("shape", [(7, 7), (9, 4), (4, 9), (2, 3, 6, 5)])
@pytest.mark.parametrize("degree", [3, 5])
def test_converges_to_the_svd_polar_factor(shape, degree, dtype):
    """[PO-1] [PO-3] from s_min / ||W||_F >= 1e-3 the default schedule returns U V^T of the
    float64 SVD, semi-orthonormal, and reports convergence; tall, wide and stacked inputs."""
    *batch, m, n = shape
    r = min(m, n)
    w = np.stack([_with_singular_values(7.0 * _scaled_singular_values(1e-3 * 1.01, r), m, n, seed=i)
                  for i in range(int(np.prod(batch, dtype=int)))]).reshape(shape).astype(dtype)
    y, res = polar_fwd(w, degree=degree)
    tol = 50 * r * np.finfo(dtype).eps
    assert y.dtype == w.dtype and y.shape == w.shape
    np.testing.assert_allclose(y, _uvt(w), atol=tol)
    assert _residual(y) < tol
    assert res.info.converged and res.info.n_iter == len(res.config.coeffs)
    np.testing.assert_array_equal(polar(w, degree=degree), y)


def test_steps_and_products_against_bjorck():
    """[PO-3] degree 5 from s_min / ||W||_F = 1e-3 reaches ||Y^T Y - I||_F < 1e-6 within the 8
    steps of its schedule (24 products), where Björck order 1 needs more than 40 products."""
    w = _with_singular_values(_scaled_singular_values(1e-3, 32), 32, 32, seed=3)

    def steps_to(f):
        return next(k for k in range(1, 60) if _residual(f(k)) < 1e-6)

    k_polar = steps_to(lambda k: polar(w, degree=5, n_iter=k, **QUIET))
    k_bjorck = steps_to(lambda k: bjorck(w, n_iter=k, **QUIET))
    assert k_polar <= 8 and 3 * k_polar < 2 * k_bjorck, (k_polar, k_bjorck)
    assert polar_fwd(w)[1].info.n_iter == 8


def _worst_inputs(degree, lower, n, dtype, seed):
    """Matrices whose scaled singular values sit on the worst points of the first step: the
    interior maxima of p_0 (where p_0 is largest on [0, 1]), 1 (rank one) and the design
    lower bound, the others filling ||A_0||_F = 1."""
    coeffs = SCHEDULES[(degree, lower)][0][0]
    s = np.linspace(lower, 1.0, 1_000_001)
    p = _p(coeffs, s)
    interior = s[1:-1][(p[1:-1] >= p[:-2]) & (p[1:-1] >= p[2:])]
    out = [np.asarray(_with_singular_values([1.0], n, n, seed=seed), dtype)]
    for x in interior:
        rest = np.sqrt((1 - x * x) / (n - 1)) * np.ones(n - 1)
        out.append(_with_singular_values(np.concatenate([[x], rest]), n, n, seed=seed).astype(dtype))
    out.append(_with_singular_values(_scaled_singular_values(lower, n), n, n, seed=seed).astype(dtype))
    return out


@pytest.mark.parametrize("degree", [3, 5])
def test_safety_at_the_worst_points(degree, dtype):
    """[PO-3] [PO-4] on inputs at the interior maxima of the polynomials, after every number of
    steps, the largest singular value (float64 SVD) is <= 1 + safety_bound; the margin
    measured is reported in the assertion message."""
    worst = -np.inf
    for lower in (1e-1, 1e-3):
        for w in _worst_inputs(degree, lower, 6, dtype, seed=1):
            for k in range(0, len(SCHEDULES[(degree, lower)]) + 2):
                y = polar(w, degree=degree, lower=lower, n_iter=k, **QUIET)
                smax = np.linalg.svd(np.asarray(y, np.float64), compute_uv=False)[0]
                bound = safety_bound(w.shape, dtype, degree=degree, lower=lower, n_iter=k)
                assert math.isfinite(bound)
                assert smax <= 1.0 + bound, (lower, k, smax - 1.0, bound)
                worst = max(worst, smax - 1.0)
    assert worst <= 4 * np.finfo(dtype).eps, worst


def test_a_schedule_that_overshoots_breaks_the_bound():
    """[PO-4] the check above has teeth: the unscaled minimax polynomial of the first step
    (p*(1 + E), which reaches 1 + E) pushes the worst input far above 1 + safety_bound."""
    coeffs, *_ = SCHEDULES[(5, 1e-3)][0]
    s = np.linspace(1e-3, 1.0, 100_001)
    p = _p(coeffs, s)
    e = (np.max(p) - np.min(p)) / (np.max(p) + np.min(p))
    x = s[np.argmax(p)]
    a = _with_singular_values([x, math.sqrt(1 - x * x)], 2, 2)
    overshoot = a @ ((1 + e) * (coeffs[0] * np.eye(2) + coeffs[1] * (a.T @ a) + coeffs[2] * (a.T @ a) @ (a.T @ a)))
    assert np.linalg.svd(overshoot, compute_uv=False)[0] > 1 + 0.5 + safety_bound((2, 2), "float64", n_iter=1)


def test_small_singular_values_are_safe_and_still_converge(dtype):
    """[PO-3] below the design bound (and zero singular values) the result stays inside the
    unit ball; positive ones converge with more steps, zero ones stay zero and are reported."""
    w = _with_singular_values([1e-5, 0.5, 1.0], 5, 3, seed=2).astype(dtype)
    y = polar(w, lower=1e-1, n_iter=40, **QUIET)
    assert np.linalg.svd(np.asarray(y, np.float64), compute_uv=False)[0] <= 1 + 8 * np.finfo(dtype).eps
    assert _residual(y) < 1e-5
    z = _with_singular_values([0.0, 0.5, 1.0], 5, 3, seed=2).astype(dtype)
    with pytest.warns(BjorckConvergenceWarning, match="did not converge"):
        y0 = polar(z)
    # Rounding noise in the zero direction grows by at most prod_k p_k'(0) (~3e4 over the 8
    # steps of the default schedule).
    assert np.linalg.svd(np.asarray(y0, np.float64), compute_uv=False)[-1] < 1e5 * np.finfo(dtype).eps


def test_equivariance_and_scale_invariance():
    """[PO-1] P(Q W R) = Q P(W) R for orthogonal Q, R; P(W^T) = P(W)^T; P(2^j W) = P(W) bit for
    bit (the Frobenius scaling removes the power of two exactly)."""
    w = RNG.standard_normal((6, 4))
    q, r = haar_orthogonal(RNG, 6), haar_orthogonal(RNG, 4)
    y = polar(w, n_iter=4, **QUIET)
    np.testing.assert_allclose(polar(q @ w @ r, n_iter=4, **QUIET), q @ y @ r, atol=1e-13)
    np.testing.assert_allclose(polar(w.T, n_iter=4, **QUIET), y.T, atol=1e-13)
    np.testing.assert_array_equal(polar(w * 2.0**-7, n_iter=4, **QUIET), y)


# ----------------------------------------------------------------------------------------------
# Derivatives [PO-5]


def _autograd_polar(w, coeffs):
    """An independent formulation traced by autograd: the scaling and the steps written out as
    plain products (no Horner, no reflip code)."""
    a = w / anp.sqrt(anp.sum(w * w))
    for c in coeffs:
        x = anp.dot(a.T, a)
        poly = c[0] * anp.eye(x.shape[0]) + c[1] * x
        if len(c) == 3:
            poly = poly + c[2] * anp.dot(x, x)
        a = anp.dot(a, poly)
    return a


@pytest.mark.parametrize("shape", [(5, 5), (6, 3), (3, 6)])
@pytest.mark.parametrize("degree", [3, 5])
def test_unrolled_vjp_matches_autograd_of_a_plain_loop(shape, degree):
    """[PO-5] the unrolled VJP equals autograd's gradient of the same steps written as a loop."""
    w = RNG.standard_normal(shape)
    g = RNG.standard_normal(shape)
    y, res = polar_fwd(w, degree=degree, n_iter=6, **QUIET)
    coeffs = res.config.coeffs

    def f(z):
        if z.shape[0] < z.shape[1]:
            return anp.sum(_autograd_polar(z.T, coeffs).T * g)
        return anp.sum(_autograd_polar(z, coeffs) * g)

    np.testing.assert_allclose(polar_bwd(res, g), grad(f)(w), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backward", ["unrolled", "implicit"])
@pytest.mark.parametrize("shape", [(5, 5), (7, 4), (4, 7), (2, 5, 3)])
def test_jvp_matches_central_differences_and_the_vjp_is_its_adjoint(backward, shape):
    """[PO-5] the JVP against a central difference of the forward (float64), and the
    dot-product test <J v, u> = <v, J^T u>."""
    r = min(shape[-2:])
    w = np.stack([_with_singular_values(_scaled_singular_values(0.05, r), *shape[-2:], seed=i)
                  for i in range(int(np.prod(shape[:-2], dtype=int)))]).reshape(shape)
    v, u = RNG.standard_normal(shape), RNG.standard_normal(shape)
    params = dict(n_iter=None if backward == "implicit" else 5, backward=backward, **QUIET)
    _, res = polar_fwd(w, **params)
    h = 1e-6
    fd = (polar(w + h * v, **params) - polar(w - h * v, **params)) / (2 * h)
    jv = polar_jvp(res, v)
    # Central differences: O(h^2) truncation, relative to the largest entry.
    np.testing.assert_allclose(jv, fd, rtol=1e-5, atol=1e-6 * np.max(np.abs(fd)))
    assert np.sum(jv * u) == pytest.approx(np.sum(v * polar_bwd(res, u)), rel=1e-12)


def test_implicit_and_unrolled_agree_once_converged():
    """[PO-5] two different rules for the same limit: the unrolled derivative of the converged
    iteration equals the implicit derivative of U V^T."""
    w = _with_singular_values(_scaled_singular_values(0.05, 5), 8, 5, seed=4)
    g = RNG.standard_normal((8, 5))
    _, ru = polar_fwd(w, n_iter=12)
    _, ri = polar_fwd(w, backward="implicit")
    np.testing.assert_allclose(polar_bwd(ru, g), polar_bwd(ri, g), atol=1e-9)


def test_array_api_strict_matches_numpy():
    """[PO-1] the core runs under array_api_strict and gives NumPy's results."""
    (backend,) = available_backends(("array_api_strict-nodds",))
    w = RNG.standard_normal((2, 3, 5))
    g = RNG.standard_normal((2, 3, 5))
    for kwargs in (dict(n_iter=5, **QUIET), dict(backward="implicit", tol=1e-12, n_iter=30)):
        y, res = polar_fwd(w, **kwargs)
        with backend.active():
            ys, ress = polar_fwd(backend.asarray(w), **kwargs)
            outs = [ys, polar_bwd(ress, backend.asarray(g)), polar_jvp(ress, backend.asarray(g))]
            outs = [np.asarray(reflip.to_numpy(o)) for o in outs]
        for got, want in zip(outs, [y, polar_bwd(res, g), polar_jvp(res, g)], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Bad input, mutation, the report [PO-6]


@pytest.mark.parametrize("bad, err, match", [
    (np.ones((3, 3), np.float16), TypeError, "float32 or float64"),
    (np.ones((3, 3), np.int64), TypeError, "float32 or float64"),
    (np.ones((3, 3), np.complex128), TypeError, "float32 or float64"),
    (np.ones(3), ValueError, "at least 2"),
    (np.ones((0, 3)), ValueError, "empty"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "finite"),
])
def test_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        polar_fwd(bad)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(degree=4), ValueError, "degree"), (dict(degree="5"), TypeError, "degree"),
    (dict(lower=0.5), ValueError, "lower"), (dict(lower="small"), TypeError, "lower"),
    (dict(n_iter=-1), ValueError, "n_iter"), (dict(n_iter=2.0), TypeError, "n_iter"),
    # Just above the cap first: without the cap it runs 10_001 steps and fails, where 10**6 hangs.
    (dict(n_iter=10_001), ValueError, "n_iter"),
    (dict(n_iter=10**6), ValueError, "n_iter"), (dict(tol=0.0), ValueError, "tol"),
    (dict(tol="1e-3"), TypeError, "tol"), (dict(backward="exact"), ValueError, "backward"),
    (dict(on_nonconvergence="loud"), ValueError, "on_nonconvergence"),
    (dict(check_finite=1), TypeError, "check_finite"),
])
def test_bad_parameters(kwargs, err, match):
    with pytest.raises(err, match=match):
        polar_fwd(np.eye(3), **kwargs)
    with pytest.raises(TypeError, match="return_info"):
        polar(np.eye(3), return_info="yes")


def test_bad_cotangents_and_no_mutation():
    """Cotangents of the wrong shape or dtype are refused; no input is ever modified."""
    w = RNG.standard_normal((5, 3))
    g = RNG.standard_normal((5, 3))
    w0, g0 = w.copy(), g.copy()
    _, res = polar_fwd(w, n_iter=3, **QUIET)
    polar_bwd(res, g)
    polar_jvp(res, g)
    polar(w, n_iter=3, **QUIET)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(g, g0)
    with pytest.raises(ValueError, match="shape"):
        polar_bwd(res, np.ones((3, 5)))
    with pytest.raises(TypeError, match="y_bar"):
        polar_bwd(res, np.ones((5, 3), np.float16))
    with pytest.raises(ValueError, match="w_dot"):
        polar_jvp(res, np.ones((5, 4)))


def test_convergence_report():
    """[PO-6] Björck's rules: a missed tol warns, raises or stays silent per on_nonconvergence;
    the report's residual is that of the returned Y; tol stops early."""
    w = _with_singular_values(_scaled_singular_values(1e-3, 4), 4, 4)
    with pytest.warns(BjorckConvergenceWarning, match="did not reach tol"):
        polar_fwd(w, n_iter=2, tol=1e-8)
    with pytest.raises(BjorckConvergenceError, match="did not reach tol"):
        polar_fwd(w, n_iter=2, tol=1e-8, on_nonconvergence="raise")
    y, info = polar(w, n_iter=2, tol=1e-8, on_nonconvergence="ignore", return_info=True)
    assert not info.converged and info.max_residual == pytest.approx(_residual(y), rel=1e-10)
    y, res = polar_fwd(w, tol=1e-4)
    assert res.info.n_iter < 8 and res.info.converged and _residual(y) <= 1e-4
    with pytest.warns(BjorckConvergenceWarning, match="did not converge"):
        polar(w, n_iter=3)


# ----------------------------------------------------------------------------------------------
# As a Dense constraint [PO-1] [PO-5]


def test_dense_layer_with_the_polar_constraint():
    """[PO-5] Dense(constraint="polar") takes polar_fwd's keyword arguments (picked up from its
    signature), refuses bad ones at construction, applies W_eff = polar(W) and pulls the
    weight gradient back through polar's VJP (checked by central differences)."""
    import array_api_compat.numpy as xp

    from reflip import nn

    layer = nn.Dense(5, 3, constraint="polar", degree=3, n_iter=6)
    assert layer.options == {"degree": 3, "n_iter": 6, "on_nonconvergence": "ignore"}
    with pytest.raises(ValueError, match="degree"):
        nn.Dense(5, 3, constraint="polar", degree=4)
    with pytest.raises(TypeError, match="order"):
        nn.Dense(5, 3, constraint="polar", order=2)
    params = layer.init(np.random.default_rng(0), xp, np.float64)
    params["W"] = params["W"] + 0.3 * RNG.standard_normal(params["W"].shape)
    x, y_bar = RNG.standard_normal((4, 5)), RNG.standard_normal((4, 3))
    y, res = layer.forward(params, x, xp)
    np.testing.assert_array_equal(res.w_eff, polar(params["W"], degree=3, n_iter=6, **QUIET))
    _, grads = layer.backward(res, y_bar, xp, False)
    v, h = RNG.standard_normal(params["W"].shape), 1e-6

    def loss(w):
        return float(np.sum(layer.forward({**params, "W": w}, x, xp)[0] * y_bar))

    fd = (loss(params["W"] + h * v) - loss(params["W"] - h * v)) / (2 * h)
    assert np.sum(grads["W"] * v) == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(shape=(6,), dtype="float64"), ValueError, "shape"),
    (dict(shape="66", dtype="float64"), TypeError, "shape"),
    (dict(shape=(6, 0), dtype="float64"), ValueError, "shape"),
    (dict(shape=(6, 2.0), dtype="float64"), TypeError, "shape"),
    (dict(shape=(6, 6), dtype="float16"), TypeError, "dtype"),
    (dict(shape=(6, 6), dtype="no such dtype"), TypeError, "dtype"),
    (dict(shape=(6, 6), dtype="float64", degree=5.0), TypeError, "degree"),
    (dict(shape=(6, 6), dtype="float64", lower=0.3), ValueError, "lower"),
    (dict(shape=(6, 6), dtype="float64", n_iter=-1), ValueError, "n_iter"),
])
def test_safety_bound_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        safety_bound(**kwargs)


def test_safety_bound_grows_with_size_and_is_inf_where_worst_case_constants_explode():
    """[PO-4] the bound grows with the size and the unit roundoff; float32 beyond about a dozen
    columns has no finite worst-case bound (the a posteriori residual certifies instead)."""
    b = [safety_bound((n, n), "float64") for n in (2, 6, 64, 1024)]
    assert all(0 < x < y for x, y in zip(b[:-1], b[1:], strict=True)) and b[-1] < 1e-8
    assert 0 < safety_bound((6, 6), np.float32) < 1e-4
    assert safety_bound((256, 256), "float32") == math.inf
    assert safety_bound((3, 5, 6), "float64") == safety_bound((6, 5), "float64")


def _po4_bound(shape, dtype, degree, lower, n_iter):
    """[PO-4]'s recurrence as proofs/polar.md states it, evaluated independently of
    ``safety_bound``: ``t_0``, ``t_{k+1}`` and the excess in exact rational arithmetic
    (``p(u_k)`` exact), the slope ``L_k`` by brute force (the largest ``|p_k'|`` on 201 points of
    ``[u_k, 1 + t_k]``, ends included), ``e_k`` in float64 (relative error ~1e-15)."""
    from fractions import Fraction

    *_, m, n = shape
    big, small = max(m, n), min(m, n)
    u = Fraction(float(np.finfo(dtype).eps)) / 2
    lim = Fraction(1, 256)

    def gamma(k):
        return k * u / (1 - k * u) if k * u < 1 else math.inf

    steps = SCHEDULES[(degree, lower)]
    if n_iter is None:  # the documented default: the steps until 1 - l_k <= eps of the dtype
        n_iter = next((k + 1 for k, st in enumerate(steps) if 1 - st[2] <= np.finfo(dtype).eps), len(steps))
    q = (degree - 1) // 2
    t = gamma(m * n + 2) + 4 * u
    for k in range(n_iter):
        if not t <= lim:
            return math.inf
        c, _, _, upper = steps[min(k, len(steps) - 1)]
        s1 = float(sum(abs(x) for x in c))
        s2 = float(sum(j * abs(x) for j, x in enumerate(c)))
        g = [float(gamma(x)) for x in (big, q * (small + 2), small, big + 4, q * (small + 4) + 2)]
        core = small * (s2 * g[0] + s1 * (g[1] + g[2]))
        fused = s2 * g[3] * small + g[4] * sum(abs(x) * math.sqrt(small) ** (j + 1) for j, x in enumerate(c))
        e = 2.0 * (1.0 + float(t)) ** degree * max(core, fused)
        if not math.isfinite(e):
            t = math.inf
            continue
        excess = Fraction(0)
        if 1 + t > upper:
            s = np.linspace(upper, float(1 + t), 201)
            slope = float(np.max(np.abs(sum((2 * j + 1) * cj * s ** (2 * j) for j, cj in enumerate(c)))))
            p_u = sum(Fraction(cj) * Fraction(upper) ** (2 * j + 1) for j, cj in enumerate(c))
            # 2^-50: the slack safety_bound documents for its float64 evaluation of p(u_k).
            excess = max(excess, abs(p_u) + Fraction(2.0**-50) + Fraction((float(1 + t - Fraction(upper))) * slope) - 1)
        t = excess + Fraction(e)
    return float(t) if t <= lim else math.inf


_BOUND_CASES = [
    # n_iter=0: the bound is t_0 alone (1 x 1: t_0 = 7u; 200 x 200 float32: 2^-9 < t_0 < 2^-8;
    # 300 x 300 float32: t_0 > 2^-8; m n u = 1 and 1.49 in float32: gamma is infinite).
    ((1, 1), "float64", 5, 1e-3, 0), ((1, 7), "float32", 5, 1e-3, 0), ((200, 200), "float32", 5, 1e-3, 0),
    ((300, 300), "float32", 5, 1e-3, 0), ((2, 8388607), "float32", 5, 1e-3, 0), ((5000, 5000), "float32", 3, 0.1, 0),
    # every step of the schedule and the repeated last one (the excess above u_k is active).
    ((1, 1), "float64", 3, 1e-6, None), ((3, 2), "float64", 5, 1e-3, 1), ((6, 6), "float64", 5, 1e-3, None),
    ((9, 4), "float64", 3, 0.1, 3), ((2, 3, 6, 5), "float64", 3, 1e-3, 20), ((200, 200), "float64", 5, 0.1, None),
    ((1024, 1024), "float64", 5, 1e-6, None), ((1024, 1024), "float64", 3, 1e-6, 30),
    ((1, 1), "float32", 5, 1e-3, 11), ((1, 7), "float32", 3, 0.1, 10), ((6, 6), "float32", 5, 1e-6, 16),
    ((40, 3), "float32", 3, 1e-3, 15), ((12, 12), "float32", 3, 0.1, None), ((16, 16), "float32", 5, 0.1, None),
    ((16, 16), "float32", 3, 1e-6, 30),
    # a step that starts between 2^-9 and 2^-8, and one above 2^-8 whose later steps would
    # shrink the bound again (it is inf from the first t_k > 2^-8 on).
    ((32, 8), "float32", 5, 1e-6, None), ((48, 12), "float32", 5, 1e-2, None),
]


@pytest.mark.parametrize("shape, dtype_name, degree, lower, n_iter", _BOUND_CASES)
def test_safety_bound_is_the_documented_recurrence(shape, dtype_name, degree, lower, n_iter):
    """[PO-4] safety_bound equals the recurrence of proofs/polar.md evaluated independently
    (exact rational arithmetic, brute-force slope), including ``inf`` when some ``t_k`` exceeds
    2^-8; up to 2 ulps of 1 for safety_bound's float64 evaluation of ``p(u_k)`` near 1."""
    got = safety_bound(shape, dtype_name, degree=degree, lower=lower, n_iter=n_iter)
    want = _po4_bound(shape, dtype_name, degree, lower, n_iter)
    if math.isinf(want):
        assert got == math.inf
    else:
        assert 0 < got == pytest.approx(want, rel=1e-12, abs=2.0**-51)



def test_safety_bound_messages_and_iteration_limit():
    """The messages name the parameter and what was expected; ``n_iter`` is capped at the
    library's MAX_ITERATIONS (10_000), like polar_fwd's."""
    with pytest.raises(TypeError, match=r"^shape must be an integer, got"):
        safety_bound((6, 2.0), "float64")
    with pytest.raises(ValueError, match=r"^n_iter must be >= 0, got -1"):
        safety_bound((6, 6), "float64", n_iter=-1)
    with pytest.raises(ValueError, match=r"^n_iter must be <= 10000, got 10001"):
        safety_bound((6, 6), "float64", n_iter=10_001)
    assert math.isfinite(safety_bound((6, 6), "float64", n_iter=10_000))


def test_schedule_defaults():
    """polar_schedule's documented defaults: degree 5, lower 1e-3."""
    assert polar_schedule() is polar_schedule(5) is SCHEDULES[(5, 1e-3)]
    assert polar_schedule(3) is SCHEDULES[(3, 1e-3)]


# ----------------------------------------------------------------------------------------------
# What the residuals and the report record [PO-5] [PO-6]


def _default_steps(degree, lower, dtype):
    """The documented default n_iter: the schedule's steps until 1 - l_k <= eps of the dtype."""
    steps = SCHEDULES[(degree, lower)]
    return next((k + 1 for k, st in enumerate(steps) if 1.0 - st[2] <= np.finfo(dtype).eps), len(steps))


def test_default_steps_follow_the_dtype():
    """[PO-6] the default n_iter depends on the input's dtype: float32 stops at its own eps
    (fewer steps than float64), for polar_fwd and for safety_bound."""
    w = _with_singular_values(_scaled_singular_values(0.01, 4), 6, 4)
    for dtype in (np.float32, np.float64):
        want = _default_steps(5, 1e-3, dtype)
        _, res = polar_fwd(w.astype(dtype), **QUIET)
        assert res.config.n_iter == res.info.n_iter == len(res.config.coeffs) == want
        assert safety_bound((6, 4), dtype) == safety_bound((6, 4), dtype, n_iter=want)
    assert _default_steps(5, 1e-3, np.float32) < _default_steps(5, 1e-3, np.float64)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (2, 5, 5)])
def test_residuals_record_the_call(shape):
    """[PO-5] PolarResiduals: the input kept by reference (its transpose when wide), every
    iterate and its Gram matrix for the unrolled backward (A_0 = W / ||W||_F, X_k = A_k^T A_k,
    A_{k+1} = A_k P_k(X_k) with the schedule's coefficients, checked in float64 NumPy), none for
    the implicit one; the validated parameters; the report's early_stopping flag."""
    w = RNG.standard_normal(shape)
    wide = shape[-2] < shape[-1]
    tall = np.swapaxes(w, -1, -2) if wide else w
    y, res = polar_fwd(w, degree=3, lower=0.1, n_iter=4, **QUIET)
    if wide:
        np.testing.assert_array_equal(res.w, tall)
    else:
        assert res.w is w
    assert res.config.degree == 3 and res.config.lower == 0.1 and res.config.backward == "unrolled"
    assert res.info.early_stopping is False and res.config.transposed is wide
    assert len(res.iterates) == 4
    coeffs = polar_schedule(3, 0.1)
    a = tall / np.linalg.norm(tall, axis=(-2, -1), keepdims=True)
    for k, (ak, xk) in enumerate(res.iterates):
        np.testing.assert_allclose(ak, a, rtol=0, atol=1e-14)
        np.testing.assert_allclose(xk, np.swapaxes(ak, -1, -2) @ ak, rtol=0, atol=1e-14)
        c0, c1 = coeffs[min(k, len(coeffs) - 1)][0]
        a = ak @ (c0 * np.eye(ak.shape[-1]) + c1 * xk)
    np.testing.assert_allclose(np.swapaxes(y, -1, -2) if wide else y, a, rtol=0, atol=1e-14)
    _, res = polar_fwd(w, backward="implicit", tol=1e-10)
    assert res.iterates is None and res.config.backward == "implicit" and res.config.degree == 5
    assert res.info.early_stopping is True


def test_polar_honours_tol_like_polar_fwd():
    """polar gives polar_fwd's result bit for bit, ``tol`` included: it stops at the same step,
    before the schedule's end, and reports early stopping."""
    w = _with_singular_values(_scaled_singular_values(1e-3, 4), 4, 4)
    y, info = polar(w, tol=1e-4, return_info=True)
    y_fwd, res = polar_fwd(w, tol=1e-4)
    np.testing.assert_array_equal(y, y_fwd)
    assert info.n_iter == res.info.n_iter < 8 and info.early_stopping and info.converged


def test_tol_equal_to_a_reached_residual_stops_there():
    """[BJ-7] tol stops as soon as max ||X_k - I||_F <= tol: with tol set to the residual that
    k steps reach (read from a run of exactly k steps), the run stops after those k steps."""
    w = _with_singular_values(_scaled_singular_values(0.05, 5), 7, 5, seed=6)
    for k in (5, 6, 7):
        _, res = polar_fwd(w, n_iter=k, **QUIET)
        reached = res.info.max_residual
        _, res = polar_fwd(w, n_iter=20, tol=reached, **QUIET)
        assert res.info.n_iter == k and res.info.max_residual == reached


def test_nonconvergence_threshold_uses_the_matrix_size_not_the_stack():
    """[BJ-10] without tol a result is reported when ||Y^T Y - I||_F > sqrt(N eps), N the
    smaller side of each matrix, whatever the stack: a one-matrix stack of 8 x 8 whose residual
    lies between sqrt(eps) and sqrt(8 eps) passes silently (the input is found by bisection on
    one singular value, the residual measured with NumPy)."""
    eps = np.finfo(np.float64).eps
    lo, hi = math.log(1e-2), math.log(1.0)
    target = math.sqrt(math.sqrt(eps) * math.sqrt(8 * eps))
    for _ in range(60):
        mid = (lo + hi) / 2
        w = _with_singular_values(np.r_[math.exp(mid), np.ones(7)], 8, 8, seed=3)[None]
        r = _residual(polar(w, n_iter=5, lower=0.1, **QUIET))
        if math.sqrt(eps) * 1.5 < r < math.sqrt(8 * eps) / 1.5:
            break
        lo, hi = (mid, hi) if r > target else (lo, mid)
    assert math.sqrt(eps) < r < math.sqrt(8 * eps), r
    polar(w, n_iter=5, lower=0.1, on_nonconvergence="raise")
    with pytest.raises(BjorckConvergenceError, match=r"^polar iteration did not converge in n_iter=4"):
        polar(w, n_iter=4, lower=0.1, on_nonconvergence="raise")


@pytest.mark.skipif("MUTANT_UNDER_TEST" in os.environ,
                    reason="mutmut's trampoline adds a frame between the caller and polar")
def test_nonconvergence_warning_points_at_the_caller():
    """[BJ-10] the warning of polar and polar_fwd points at the caller's line (stacklevel),
    so that Python shows it once per call site."""
    w = _with_singular_values(_scaled_singular_values(1e-3, 4), 4, 4)
    for fun in (polar, polar_fwd):
        with pytest.warns(BjorckConvergenceWarning) as record:
            line = __import__("inspect").currentframe().f_lineno + 1
            fun(w, n_iter=2)
        assert [(r.filename, r.lineno) for r in record] == [(__file__, line)]


# ----------------------------------------------------------------------------------------------
# The fused NumPy products [BJ-11] and the stored iterates

@pytest.mark.parametrize("n_iter", [0, 1, 3])
def test_numpy_runs_take_the_fused_products(fused_calls, n_iter):
    """[BJ-11] NumPy inputs (from MIN_N on) run every forward Gram matrix, step and reverse
    step through the fused products, also for 0 and 1 steps; the results are the derivatives
    of the steps (VJP against central differences of polar, float64)."""
    w = RNG.standard_normal((6, 4))
    g = RNG.standard_normal((6, 4))
    y, res = polar_fwd(w, n_iter=n_iter, **QUIET)
    assert fused_calls == {"gram": n_iter + 1, "step": n_iter, "step_vjp": 0}
    w_bar = polar_bwd(res, g)
    assert fused_calls["step_vjp"] == n_iter
    v, h = RNG.standard_normal((6, 4)), 1e-6
    fd = (polar(w + h * v, n_iter=n_iter, **QUIET) - polar(w - h * v, n_iter=n_iter, **QUIET)) / (2 * h)
    assert np.sum(w_bar * v) == pytest.approx(np.sum(g * fd), rel=1e-7)
    fused_calls.update(gram=0, step=0)
    np.testing.assert_array_equal(polar(w, n_iter=n_iter, **QUIET), y)
    assert fused_calls["step"] == n_iter


def test_fused_backward_promotes_a_cotangent_of_another_dtype(fused_calls):
    """A float32 cotangent of a float64 run is promoted (the core's products), as without the
    fused path: the VJP equals that of the same cotangent cast to float64."""
    w = RNG.standard_normal((6, 4))
    g = RNG.standard_normal((6, 4)).astype(np.float32)
    _, res = polar_fwd(w, n_iter=3, **QUIET)
    got = polar_bwd(res, g)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, polar_bwd(res, g.astype(np.float64)), rtol=1e-12, atol=1e-13)


def test_unrolled_derivatives_reuse_the_stored_iterates(monkeypatch):
    """[PO-5] the unrolled VJP and JVP pull back through the iterates the forward stored: they
    run no forward step again (the step is made to fail after the forward)."""
    polar_module = importlib.import_module("reflip.polar")
    w, g = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 3))
    _, res = polar_fwd(w, n_iter=3, **QUIET)
    want = polar_bwd(res, g), polar_jvp(res, g)

    def no_step(*args):
        raise AssertionError("a forward step was recomputed")

    monkeypatch.setattr(polar_module, "_step", no_step)
    for got, ref in zip((polar_bwd(res, g), polar_jvp(res, g)), want, strict=True):
        np.testing.assert_array_equal(got, ref)
