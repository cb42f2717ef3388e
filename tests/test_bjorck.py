"""Björck tests outside the claim suite (tests/audit/test_claims.py runs the claims): bad input, zero
and rank-deficient matrices, the basin, the convergence report, and the derivatives against
independent oracles (autograd tracing a plain loop written here, finite differences of the SVD
polar factor)."""
import math
import warnings
from fractions import Fraction

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, make_jvp

import reflip
from reflip import (
    BjorckConvergenceError,
    BjorckConvergenceWarning,
    basin_radius,
    bjorck,
    bjorck_bwd,
    bjorck_coefficients,
    bjorck_fwd,
    bjorck_jvp,
)
from reflip._backend import haar_orthogonal
from reflip.bjorck import _bjorck_fwd, _make_config
from reflip.testing.backends import available_backends

RNG = np.random.default_rng(20190601)
# For runs that stop short of convergence on purpose (the derivative tests differentiate K
# steps, as training code does): the opt-out of the convergence warning [BJ-10].
QUIET = {"on_nonconvergence": "ignore"}


def _with_singular_values(s, m, n, seed=0):
    rng = np.random.default_rng(seed)
    r = len(s)
    return (haar_orthogonal(rng, m)[:, :r] * np.asarray(s, float)) @ haar_orthogonal(rng, n)[:, :r].T


def _polar(w):
    u, _, vt = np.linalg.svd(w, full_matrices=False)
    return u @ vt


@pytest.fixture(autouse=True)
def _convergence_warnings_are_errors():
    """A test that expects a BjorckConvergenceWarning says so with pytest.warns."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", BjorckConvergenceWarning)
        yield


# ----------------------------------------------------------------------------------------------
# Bad input [BJ-1]


@pytest.mark.parametrize(
    "w, kwargs, exc, words",
    [
        (np.ones(3), {}, ValueError, r"w must have at least 2 dimension\(s\) \(\.\.\., m, n\), got shape \(3,\)"),
        (np.ones(()), {}, ValueError, r"at least 2 dimension\(s\)"),
        (np.ones((0, 3)), {}, ValueError, "w must not be empty"),
        (np.ones((3, 0)), {}, ValueError, "w must not be empty"),
        (np.ones((0, 2, 2)), {}, ValueError, "w must not be empty"),
        (np.ones((2, 2), dtype=np.int64), {}, TypeError, "w must have dtype float32 or float64"),
        (np.ones((2, 2), dtype=np.complex128), {}, TypeError, "w must have dtype float32 or float64"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), {}, ValueError, "w must be finite"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), {}, ValueError, "w must be finite"),
        (np.eye(2), {"order": 0}, ValueError, "order must be >= 1, got 0"),
        (np.eye(2), {"order": 9}, ValueError, r"order must be <= 8 \(.*\), got 9"),
        (np.eye(2), {"order": 1.5}, TypeError, "order must be an integer"),
        (np.eye(2), {"order": True}, TypeError, "order must be an integer"),
        (np.eye(2), {"beta": 0.0}, ValueError, r"beta must satisfy 0 < beta <= 0.5 for order 1, got 0.0"),
        (np.eye(2), {"beta": 0.75}, ValueError, r"beta must satisfy 0 < beta <= 0.5"),
        (np.eye(2), {"beta": -0.25}, ValueError, r"beta must satisfy 0 < beta <= 0.5"),
        (np.eye(2), {"beta": float("nan")}, ValueError, "beta must be a finite number, got nan"),
        (np.eye(2), {"beta": "half"}, TypeError, "beta must be a real number"),
        (np.eye(2), {"order": 2, "beta": 0.25}, ValueError, "beta applies to order 1 only"),
        (np.eye(2), {"n_iter": -1}, ValueError, "n_iter must be >= 0, got -1"),
        (np.eye(2), {"n_iter": 2.0}, TypeError, "n_iter must be an integer"),
        (np.eye(2), {"tol": 0.0}, ValueError, "tol must be > 0.0, got 0.0"),
        (np.eye(2), {"tol": -1e-3}, ValueError, "tol must be > 0.0"),
        (np.eye(2), {"tol": math.inf}, ValueError, "tol must be a finite number"),
        (np.eye(2), {"n_iter": 10**30}, ValueError, "n_iter must be <= 10000"),
        (np.eye(2), {"n_iter": 10_001}, ValueError, "n_iter must be <= 10000"),
        (np.eye(2), {"tol": "small"}, TypeError, "tol must be a real number or None"),
        (np.eye(2), {"scaling": "spectral"}, ValueError, r"scaling must be one of \('frobenius', 'sqrt_mn', 'none'\)"),
        (np.eye(2), {"backward": "exact"}, ValueError, r"backward must be one of \('unrolled', 'implicit'\)"),
        (np.eye(2), {"on_nonconvergence": "silent"}, ValueError,
         r"on_nonconvergence must be one of \('warn', 'raise', 'ignore'\)"),
        (np.eye(2), {"on_nonconvergence": None}, TypeError, "on_nonconvergence must be one of"),
        (np.eye(2), {"scaling": 2}, TypeError, "scaling must be one of"),
        (np.eye(2), {"backward": True}, TypeError, "backward must be one of"),
        (np.eye(2), {"precision": None}, TypeError, "precision must be one of"),
        (np.eye(2), {"checkpoint": 1}, TypeError, "checkpoint must be True or False"),
        (np.eye(2), {"check_finite": "yes"}, TypeError, "check_finite must be True or False"),
    ],
)
@pytest.mark.parametrize("op", [bjorck, bjorck_fwd])
def test_bad_input(op, w, kwargs, exc, words):
    """[BJ-1] invalid arguments raise errors naming the parameter and what was expected."""
    with pytest.raises(exc, match=words):
        op(w, **kwargs)


def test_bad_input_plain_only():
    with pytest.raises(TypeError, match="return_info must be True or False"):
        bjorck(np.eye(2), return_info=1)
    with pytest.raises(TypeError, match="w must be an array"):
        bjorck([[1.0, 0.0], [0.0, 1.0]])


def test_check_finite_false_lets_nan_propagate():
    """[BJ-10] NaN propagates, and a NaN result is reported as not converged."""
    w = np.array([[1.0, np.nan], [0.0, 1.0]])
    with pytest.warns(BjorckConvergenceWarning, match=r"\|\|Y\^T Y - I\|\|_F = nan"):
        y = bjorck(w, check_finite=False)
    assert np.isnan(y).all()


def test_cotangent_checked():
    _, res = bjorck_fwd(RNG.standard_normal((2, 4, 3)))
    with pytest.raises(ValueError,
                       match=r"y_bar must have the shape \(2, 4, 3\) of the primitive's output, got \(2, 3, 4\)"):
        bjorck_bwd(res, np.zeros((2, 3, 4)))
    with pytest.raises(ValueError,
                       match=r"w_dot must have the shape \(2, 4, 3\) of the primitive's input, got \(4, 3\)"):
        bjorck_jvp(res, np.zeros((4, 3)))
    with pytest.raises(TypeError, match="y_bar must have dtype float32 or float64"):
        bjorck_bwd(res, np.zeros((2, 4, 3), dtype=np.int32))
    # A wide input is iterated transposed: the cotangent keeps the caller's orientation.
    _, res = bjorck_fwd(RNG.standard_normal((3, 5)))
    assert res.shape == (3, 5)
    with pytest.raises(ValueError, match=r"y_bar must have the shape \(3, 5\) of the primitive's output"):
        bjorck_bwd(res, np.zeros((5, 3)))


@pytest.mark.parametrize("kwargs", [{}, {"checkpoint": True}, {"backward": "implicit", "n_iter": 40},
                                    {"scaling": "none"}, {"tol": 1e-8, "n_iter": 40}])
@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (2, 3, 3)])
def test_inputs_never_mutated(shape, kwargs):
    """[BJ-1] read-only inputs go through every function and come out unchanged."""
    w = _with_singular_values([1.0, 0.8, 0.6][:min(shape[-2:])], *shape[-2:])
    w = np.broadcast_to(w, shape).copy() * 0.9
    w.flags.writeable = False
    y_bar = RNG.standard_normal(shape)
    y_bar.flags.writeable = False
    saved = (w.copy(), y_bar.copy())
    y, res = bjorck_fwd(w, **kwargs)
    bjorck(w, **kwargs)
    bjorck_bwd(res, y_bar)
    bjorck_jvp(res, y_bar)
    np.testing.assert_array_equal(w, saved[0])
    np.testing.assert_array_equal(y_bar, saved[1])


def test_dtype_and_shape_preserved(dtype):
    w = RNG.standard_normal((2, 3, 5)).astype(dtype)
    y, res = bjorck_fwd(w, order=2)
    g = np.ones_like(w)
    for out in (y, bjorck(w, order=2), bjorck_bwd(res, g), bjorck_jvp(res, g)):
        assert out.dtype == w.dtype and out.shape == w.shape


def test_wide_matrix_uses_the_smaller_gram_matrix():
    """[BJ-4] a wide matrix is iterated through its transpose: the Gram matrices are m x m."""
    _, res = bjorck_fwd(RNG.standard_normal((3, 7)), n_iter=2, **QUIET)
    assert res.config.transposed
    assert all(x.shape == (3, 3) for _, x in res.iterates)


# ----------------------------------------------------------------------------------------------
# Coefficients [BJ-2] and the scalar map [BJ-3]

PAPER_TABLE = {
    1: ("3/2", "-1/2"),
    2: ("15/8", "-5/4", "3/8"),
    3: ("35/16", "-35/16", "21/16", "-5/16"),
    4: ("315/128", "-105/32", "189/64", "-45/32", "35/128"),
}


@pytest.mark.parametrize("order", sorted(PAPER_TABLE))
def test_coefficients_match_the_paper(order):
    """[BJ-2] the expanded polynomials equal the paper's table."""
    assert bjorck_coefficients(order) == tuple(float(Fraction(a)) for a in PAPER_TABLE[order])


@pytest.mark.parametrize("order", range(1, 9))
def test_coefficients_expand_the_series(order):
    """[BJ-2] sum_i a_i x^i = sum_j binom(2j, j)/4^j (1 - x)^j, P(1) = 1 and P'(1) = -1/2."""
    a = np.array(bjorck_coefficients(order))
    x = np.linspace(-0.5, 2.0, 11)
    series = sum(math.comb(2 * j, j) / 4**j * (1 - x) ** j for j in range(order + 1))
    np.testing.assert_allclose(np.polynomial.polynomial.polyval(x, a), series, rtol=1e-13, atol=1e-13)
    assert np.sum(a) == pytest.approx(1.0, abs=1e-14)
    assert np.sum(np.arange(order + 1) * a) == pytest.approx(-0.5, abs=1e-13)


def test_order_one_beta_family():
    """[BJ-2] order 1 with beta is (1 + beta) A - beta A A^T A."""
    assert bjorck_coefficients(1, 0.25) == (1.25, -0.25)
    w = 0.5 * _with_singular_values([1.0, 0.5, 0.25], 4, 3)
    y = bjorck(w, beta=0.25, n_iter=1, scaling="none", **QUIET)
    np.testing.assert_allclose(y, 1.25 * w - 0.25 * w @ w.T @ w, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4)])
def test_acts_on_singular_values(order, shape):
    """[BJ-3] B(W) = U diag(phi^K(s / ||W||_F)) V^T, phi(s) = s g(1 - s^2)."""
    w = RNG.standard_normal(shape)
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    t = s / np.linalg.norm(w)
    c = [math.comb(2 * j, j) / 4**j for j in range(order + 1)]
    for _ in range(3):
        t = t * sum(cj * (1 - t * t) ** j for j, cj in enumerate(c))
    np.testing.assert_allclose(bjorck(w, order=order, n_iter=3, **QUIET), (u * t) @ vt, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# Zero and rank-deficient matrices [BJ-3] [BJ-9]


@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4), (2, 3, 3)])
def test_zero_matrix(shape):
    """[BJ-3] the zero matrix maps to itself and is reported as not converged; the implicit
    backward refuses it [BJ-9]."""
    w = np.zeros(shape)
    with pytest.warns(BjorckConvergenceWarning, match="did not converge in n_iter=25"):
        y, res = bjorck_fwd(w)
    np.testing.assert_array_equal(y, w)
    assert not res.info.converged
    assert res.info.max_residual == pytest.approx(math.sqrt(min(shape[-2:])))
    assert np.isfinite(bjorck_bwd(res, np.ones(shape))).all()
    with pytest.warns(BjorckConvergenceWarning, match="did not reach tol"):
        bjorck(w, tol=1e-3)
    _, res = bjorck_fwd(w, backward="implicit", **QUIET)
    with pytest.raises(ValueError, match="not differentiable at a rank-deficient w"):
        bjorck_bwd(res, np.ones(shape))


@pytest.mark.parametrize("m, n", [(4, 4), (5, 3), (3, 5)])
def test_rank_deficient_gives_a_partial_isometry(m, n):
    """[BJ-3] zero singular values stay zero (in float64 the rounding noise standing for them
    grows by P(0) = 1.5 per step, to ~1e-13 after 30 steps): the result is U_r V_r^T, and it is
    never reported as converged."""
    r = min(m, n) - 1
    w = _with_singular_values([3.0, 1.0, 0.5, 0.25][:r], m, n, seed=3)
    with pytest.warns(BjorckConvergenceWarning, match="did not converge in n_iter=30"):
        y, info = bjorck(w, n_iter=30, return_info=True)
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    np.testing.assert_allclose(y, u[:, :r] @ vt[:r], atol=1e-9)
    assert info.max_residual == pytest.approx(1.0, abs=1e-9) and not info.converged
    with pytest.raises(BjorckConvergenceError, match="did not reach tol"):
        bjorck(w, n_iter=30, tol=1e-6, on_nonconvergence="raise")
    _, res = bjorck_fwd(w, n_iter=30, backward="implicit", **QUIET)
    with pytest.raises(ValueError, match="backward='unrolled'"), warnings.catch_warnings():
        warnings.simplefilter("ignore", BjorckConvergenceWarning)
        bjorck_bwd(res, np.ones_like(w))


@pytest.mark.parametrize("dt, scales", [("float64", (2.0**-600, 2.0**600, 1e-300, 1e300)),
                                        ("float32", (2.0**-60, 2.0**60, 1e-30, 1e30))])
def test_tiny_and_huge_scales(dt, scales):
    """[BJ-6] the Frobenius norm is computed without overflow or underflow: every scale gives
    the same result, bit for bit for powers of two."""
    w = _with_singular_values([1.0, 0.7, 0.4], 4, 3).astype(dt)
    base = bjorck(w)
    for a in scales:
        wa = (w.astype(np.float64) * a).astype(dt)
        assert np.isfinite(wa).all() and np.all(wa[w != 0] != 0)
        got = bjorck(wa)
        if math.log2(a) == int(math.log2(a)):
            np.testing.assert_array_equal(got, base)
        else:
            np.testing.assert_allclose(got, base, atol=50 * np.finfo(dt).eps)


# ----------------------------------------------------------------------------------------------
# The basin [BJ-5] and the scalings [BJ-6]


def _unchecked(w, **kwargs):
    """The core iteration without the public layer's basin certificate, to show what happens
    outside the basin."""
    xp = reflip.get_namespace(w)
    cfg = _make_config(w, xp, order=kwargs.get("order", 1), beta=0.5, n_iter=kwargs.get("n_iter", 40),
                       tol=None, scaling=kwargs.get("scaling", "none"), backward="unrolled",
                       checkpoint=False, on_nonconvergence="warn", check_finite=False)
    with np.errstate(over="ignore", invalid="ignore"):
        return _bjorck_fwd(w, cfg, xp)[0]


def test_basin_radius():
    """[BJ-5] sqrt((1 + beta)/beta) for order 1, sqrt(7/3) for order 2; at the radius phi
    vanishes or has a fixed point other than 1."""
    assert basin_radius(1) == pytest.approx(math.sqrt(3))
    assert basin_radius(1, 0.25) == pytest.approx(math.sqrt(5))
    assert basin_radius(2) == pytest.approx(math.sqrt(7 / 3))
    for order in range(1, 9):
        r = basin_radius(order)
        assert 1 < r < 1.8
        p_r2 = np.polynomial.polynomial.polyval(r * r, bjorck_coefficients(order))
        assert min(abs(p_r2), abs(p_r2 - 1)) < 1e-9


@pytest.mark.parametrize("s, limit", [(1.0, 1.0), (1.7, 1.0), (1.9, -1.0), (2.0, -1.0), (2.1, -1.0),
                                      (2.18, 1.0), (2.2, 1.0), (2.228, -1.0)])
def test_order_one_sign_flips_outside_the_basin(s, limit):
    """[BJ-5] from (sqrt 3, sigma_1 = 2.1478) a singular value converges to -1, from
    (sigma_1, sigma_2 = 2.2212) to +1, and so on towards sqrt 5: the result is orthonormal but
    not the closest orthonormal matrix."""
    w = _with_singular_values([s, 0.5], 3, 2, seed=1)
    y = _unchecked(w, n_iter=60)
    u, _, vt = np.linalg.svd(w, full_matrices=False)
    np.testing.assert_allclose(y, u @ np.diag([limit, 1.0]) @ vt, atol=1e-12)
    np.testing.assert_allclose(y.T @ y, np.eye(2), atol=1e-12)
    if limit < 0:
        assert np.linalg.norm(w - y) > np.linalg.norm(w - _polar(w)) + 1


@pytest.mark.parametrize("s", [math.sqrt(5) + 1e-6, 2.3, 3.0])
def test_order_one_diverges_beyond_sqrt5(s):
    """[BJ-5] beyond sqrt 5 the singular value grows without bound."""
    y = _unchecked(_with_singular_values([s, 0.5], 3, 2, seed=1), n_iter=60)
    assert not np.all(np.abs(y) < 1e6)


def test_public_layer_refuses_outside_the_certified_basin():
    """[BJ-6] scaling="none" and "sqrt_mn" refuse inputs whose singular values cannot be
    certified inside the basin; the Frobenius scaling gives the polar factor of the same
    inputs."""
    w = _with_singular_values([2.0, 0.5], 3, 2, seed=1)
    with pytest.raises(ValueError, match=r"scaling='none': cannot certify .* basin \(0, 1.73205\)"):
        bjorck(w, scaling="none")
    np.testing.assert_allclose(bjorck(w, n_iter=40), _polar(w), atol=1e-13)
    # The paper's sqrt(m n) scaling on W = 2 * ones + I / 4 (symmetric, singular values 8.25 and
    # 0.25): sigma_max / sqrt(m n) = 2.0625 is in (sqrt 3, sigma_1), so the top singular value
    # goes to -1: U diag(-1, 1, 1, 1) V^T = I - ones / 2 instead of the polar factor I.
    n = 4
    w = 2.0 * np.ones((n, n)) + 0.25 * np.eye(n)
    np.testing.assert_allclose(_unchecked(w, scaling="sqrt_mn", n_iter=60), np.eye(n) - 0.5 * np.ones((n, n)),
                               atol=1e-12)
    with pytest.raises(ValueError, match="scaling='sqrt_mn': cannot certify"):
        bjorck(w, scaling="sqrt_mn")
    np.testing.assert_allclose(bjorck(w, n_iter=40), np.eye(n), atol=1e-12)


def test_certificate_accepts_orthonormal_and_normalized_inputs():
    """[BJ-6] ||X||_inf certifies an orthonormal 64 x 64 matrix, whose Frobenius norm (8) is
    far above sqrt 3, and the squared Gram bound a spectrally normalized Gaussian matrix; a
    matrix with sigma_max = 1.8 > sqrt 3 is refused."""
    rng = np.random.default_rng(5)
    q = haar_orthogonal(rng, 64)
    np.testing.assert_allclose(bjorck(q, scaling="none", n_iter=3), q, atol=1e-13)
    np.testing.assert_allclose(bjorck(1.05 * q, scaling="none", n_iter=10), q, atol=1e-13)
    w = rng.standard_normal((128, 128))
    w /= np.linalg.norm(w, 2)
    bjorck(w, scaling="none", n_iter=1, **QUIET)
    bjorck(1.6 * w, scaling="none", n_iter=1, **QUIET)
    with pytest.raises(ValueError, match="cannot certify"):
        bjorck(1.8 * w, scaling="none")


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_frobenius_scaling_is_guaranteed(order):
    """[BJ-6] even a matrix whose sigma_max is far above every basin converges to its polar
    factor with the default scaling."""
    w = 100.0 * np.ones((5, 4)) + np.vstack([np.diag([3.0, 2.0, 1.0, 0.5]), np.ones((1, 4))])
    y, info = bjorck(w, order=order, n_iter=60, return_info=True)
    np.testing.assert_allclose(y, _polar(w), atol=1e-11)
    assert info.converged


# ----------------------------------------------------------------------------------------------
# Convergence report [BJ-7]


def test_tol_stops_early_and_reports():
    """[BJ-7] with tol, the iteration stops once max ||Y^T Y - I||_F <= tol."""
    w = _with_singular_values([1.0, 0.9, 0.8], 5, 3)
    y, res = bjorck_fwd(w, tol=1e-6, n_iter=50)
    info = res.info
    assert info.early_stopping and info.converged and info.n_iter < 50
    measured = np.linalg.norm(y.T @ y - np.eye(3))
    assert info.max_residual == pytest.approx(measured, abs=1e-14) and measured <= 1e-6
    _, prev = bjorck(w, n_iter=info.n_iter - 1, return_info=True, **QUIET)
    assert prev.max_residual > 1e-6  # it did not stop late
    assert len(res.iterates) == info.n_iter


def test_missed_tol_warns_or_raises():
    """[BJ-7] a tol not reached in n_iter iterations is never silent."""
    w = _with_singular_values([1.0, 1e-3], 3, 2)
    with pytest.warns(BjorckConvergenceWarning, match=r"did not reach tol=1e-06 in n_iter=5"):
        y, res = bjorck_fwd(w, tol=1e-6, n_iter=5)
    assert not res.info.converged and res.info.n_iter == 5
    with pytest.raises(BjorckConvergenceError, match="did not reach tol"):
        bjorck(w, tol=1e-6, n_iter=5, on_nonconvergence="raise")
    assert issubclass(BjorckConvergenceWarning, RuntimeWarning)


def test_without_tol_the_residual_is_reported():
    """[BJ-7] n_iter is fixed, nothing is raised, and info says the truth."""
    w = _with_singular_values([1.0, 1e-3], 3, 2)
    y, info = bjorck(w, n_iter=5, return_info=True, **QUIET)
    assert not info.early_stopping and info.n_iter == 5 and not info.converged
    assert info.max_residual == pytest.approx(np.linalg.norm(y.T @ y - np.eye(2)))
    assert info.tol == pytest.approx(math.sqrt(np.finfo(np.float64).eps))
    y, info = bjorck(w, n_iter=40, return_info=True)
    assert info.converged


@pytest.mark.parametrize("k", [2, 4, 6, 8])
def test_residual_bounds_the_distance_to_the_polar_factor(k):
    """[BJ-7] ||Y - U V^T||_F <= ||Y^T Y - I||_F inside the basin."""
    w = RNG.standard_normal((6, 4))
    y, info = bjorck(w, n_iter=k, return_info=True, **QUIET)
    assert np.linalg.norm(y - _polar(w)) <= info.max_residual * (1 + 1e-12)


def test_stack_shares_the_iteration_count():
    """[BJ-7] [BJ-4] the stack stops when its worst matrix meets tol."""
    w = np.stack([_with_singular_values([1.0, 0.9], 3, 2), _with_singular_values([1.0, 1e-3], 3, 2)])
    y, res = bjorck_fwd(w, tol=1e-8, n_iter=60)
    alone, info0 = bjorck(w[0], tol=1e-8, n_iter=60, return_info=True)
    assert res.info.n_iter > info0.n_iter and res.info.residual.shape == (2,)
    assert np.all(res.info.residual <= 1e-8)


# ----------------------------------------------------------------------------------------------
# Derivatives [BJ-8] [BJ-9]


def plain_bjorck(w, order=1, beta=0.5, n_iter=20, scaling="frobenius"):
    """An independent formulation, traced by autograd: the series in Q = I - A^T A summed by
    repeated multiplication (not reflip's Horner form in X), the wide case by transposition."""
    wide = w.shape[-2] < w.shape[-1]
    a = anp.swapaxes(w, -1, -2) if wide else w
    m, n = a.shape[-2:]
    if scaling == "frobenius":
        a = a / anp.sqrt(anp.sum(a * a, axis=(-2, -1), keepdims=True))
    elif scaling == "sqrt_mn":
        a = a / math.sqrt(m * n)
    c = [1.0, beta] if order == 1 else [math.comb(2 * j, j) / 4**j for j in range(order + 1)]
    eye = anp.eye(n)
    for _ in range(n_iter):
        q = eye - anp.matmul(anp.swapaxes(a, -1, -2), a)
        power, total = eye, c[0] * eye
        for cj in c[1:]:
            power = anp.matmul(power, q)
            total = total + cj * power
        a = anp.matmul(a, total)
    return anp.swapaxes(a, -1, -2) if wide else a


UNROLLED_CASES = [
    ((5, 3), dict(order=1, n_iter=7)),
    ((3, 5), dict(order=2, n_iter=5)),
    ((4, 4), dict(order=3, n_iter=4)),
    ((2, 4, 3), dict(order=4, n_iter=3)),
    ((1, 5), dict(order=1, n_iter=6)),
    ((4, 1), dict(order=2, n_iter=2)),
    ((4, 3), dict(order=1, beta=0.25, n_iter=9)),
    ((4, 3), dict(order=1, n_iter=0)),
    ((4, 3), dict(order=2, n_iter=1)),
    ((3, 4), dict(order=1, n_iter=6, scaling="sqrt_mn")),
    ((4, 4), dict(order=2, n_iter=6, scaling="none")),
]


@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("shape, kwargs", UNROLLED_CASES)
def test_unrolled_vjp_and_jvp_equal_autograd_of_a_plain_loop(shape, kwargs, checkpoint):
    """[BJ-8] the hand-written reverse and forward passes equal autograd's trace of the same
    iteration written independently, scaling step included."""
    w = 0.3 * RNG.standard_normal(shape) + 0.1
    if kwargs.get("scaling") == "none":
        w = _polar(w) * 0.8 + 0.05 * RNG.standard_normal(shape)
    g = RNG.standard_normal(shape)
    v = RNG.standard_normal(shape)
    y, res = bjorck_fwd(w, checkpoint=checkpoint, **kwargs, **QUIET)
    np.testing.assert_allclose(y, plain_bjorck(w, **kwargs), rtol=1e-12, atol=1e-13)
    expected = grad(lambda z: anp.sum(plain_bjorck(z, **kwargs) * g))(w)
    np.testing.assert_allclose(bjorck_bwd(res, g), expected, rtol=1e-10, atol=1e-11)
    _, expected_jvp = make_jvp(lambda z: plain_bjorck(z, **kwargs))(w)(v)
    np.testing.assert_allclose(bjorck_jvp(res, v), expected_jvp, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("n_iter", [0, 1, 2, 3, 4, 5, 8, 9, 10, 16, 17, 26])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 6)])
def test_checkpointing_gives_identical_gradients(n_iter, shape):
    """[BJ-8] recomputing the iterates performs the same operations: gradients bit for bit."""
    w = RNG.standard_normal(shape)
    g = RNG.standard_normal(shape)
    y, res = bjorck_fwd(w, order=2, n_iter=n_iter, **QUIET)
    y_c, res_c = bjorck_fwd(w, order=2, n_iter=n_iter, checkpoint=True, **QUIET)
    assert res_c.iterates is None
    np.testing.assert_array_equal(y, y_c)
    np.testing.assert_array_equal(bjorck_bwd(res, g), bjorck_bwd(res_c, g))
    np.testing.assert_array_equal(bjorck_jvp(res, g), bjorck_jvp(res_c, g))


def test_checkpointing_with_early_stopping():
    """[BJ-8] with tol, the recomputation runs as many steps as the forward did."""
    w = RNG.standard_normal((2, 5, 4))
    g = RNG.standard_normal((2, 5, 4))
    _, res = bjorck_fwd(w, tol=1e-9, n_iter=60)
    _, res_c = bjorck_fwd(w, tol=1e-9, n_iter=60, checkpoint=True)
    assert res.info.n_iter == res_c.info.n_iter < 60
    np.testing.assert_array_equal(bjorck_bwd(res, g), bjorck_bwd(res_c, g))


def _fd(f, w, v, h=1e-6):
    return (f(w + h * v) - f(w - h * v)) / (2 * h)


@pytest.mark.parametrize("shape", [(4, 4), (6, 3), (3, 6), (2, 4, 2), (1, 4), (4, 1)])
def test_implicit_derivatives_equal_finite_differences_of_the_polar_factor(shape):
    """[BJ-9] the implicit VJP and JVP are the derivative of U V^T (central differences of
    NumPy's SVD polar factor)."""
    w = RNG.standard_normal(shape) + 0.5 * np.eye(*shape[-2:])
    g, v = RNG.standard_normal(shape), RNG.standard_normal(shape)
    _, res = bjorck_fwd(w, backward="implicit", tol=1e-14, n_iter=100)
    fd = _fd(_polar, w, v)
    np.testing.assert_allclose(bjorck_jvp(res, v), fd, atol=1e-8)
    assert np.sum(bjorck_bwd(res, g) * v) == pytest.approx(np.sum(g * fd), rel=1e-8, abs=1e-9)


def test_implicit_agrees_with_scipy_polar():
    """[BJ-9] the same against scipy.linalg.polar, for a square matrix."""
    scipy_linalg = pytest.importorskip("scipy.linalg")
    w = RNG.standard_normal((5, 5))
    v = RNG.standard_normal((5, 5))
    _, res = bjorck_fwd(w, backward="implicit", n_iter=80)
    fd = _fd(lambda z: scipy_linalg.polar(z)[0], w, v)
    np.testing.assert_allclose(bjorck_jvp(res, v), fd, atol=1e-7)


@pytest.mark.parametrize("shape, beta", [((5, 5), 0.5), ((6, 4), 0.5), ((4, 6), 0.375)])
def test_unrolled_gradient_approaches_the_implicit_one(shape, beta):
    """[BJ-9] [BJ-8] as n_iter grows the derivative of the iterations converges to the
    derivative of the limit."""
    w = RNG.standard_normal(shape) + 2 * np.eye(*shape)
    g = RNG.standard_normal(shape)
    _, res = bjorck_fwd(w, backward="implicit", beta=beta, n_iter=120)
    target = bjorck_bwd(res, g)
    errors = []
    for k in (4, 8, 12, 16, 24, 40, 80):
        _, res_k = bjorck_fwd(w, beta=beta, n_iter=k, **QUIET)
        errors.append(np.linalg.norm(bjorck_bwd(res_k, g) - target) / np.linalg.norm(target))
    # Decreasing until it reaches the rounding floor.
    assert all(b <= a or b < 1e-13 for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[0] > 1e-3 and errors[-1] < 1e-10, errors


def test_implicit_backward_warns_before_convergence():
    """[BJ-9] the implicit rule is the derivative of the limit: a non-converged forward warns."""
    w = _with_singular_values([1.0, 0.01], 3, 2)
    _, res = bjorck_fwd(w, backward="implicit", n_iter=3, **QUIET)  # "ignore" is the forward's only
    with pytest.warns(BjorckConvergenceWarning, match="backward='implicit'"):
        bjorck_bwd(res, np.ones((3, 2)))


@pytest.mark.parametrize("n_iter", [5, 10, 15, 25])
def test_late_iterations_are_differentiated(n_iter):
    """[BJ-8] the gradient through many iterations of a slowly converging matrix (smallest
    scaled singular value 1e-3, so every step still matters) equals central differences. A
    backward that detaches the polynomial term from the fifth step on fails this by orders of
    magnitude (tests/meta/test_bjorck_mutants.py)."""
    w = _with_singular_values([1.0, 0.3, 1e-3 * math.sqrt(1 + 0.09 + 1e-6)], 5, 3, seed=7)
    g, v = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 3))
    _, res = bjorck_fwd(w, n_iter=n_iter, **QUIET)
    fd = _fd(lambda z: bjorck(z, n_iter=n_iter, **QUIET), w, v, h=1e-8)
    assert np.sum(bjorck_bwd(res, g) * v) == pytest.approx(np.sum(g * fd), rel=1e-5)


# ----------------------------------------------------------------------------------------------
# The autograd bridge and the array API


def test_autograd_bridge_first_order_only():
    """[BJ-8] reflip.autograd_ops.bjorck differentiates with autograd.grad (first order);
    a second derivative raises NotImplementedError (registry: second_order=False)."""
    from reflip import autograd_ops

    w = RNG.standard_normal((4, 3))
    g = RNG.standard_normal((4, 3))
    got = grad(lambda z: anp.sum(autograd_ops.bjorck(z, order=2, n_iter=6, **QUIET) * g))(w)
    _, res = bjorck_fwd(w, order=2, n_iter=6, **QUIET)
    np.testing.assert_array_equal(got, bjorck_bwd(res, g))
    f = lambda z: anp.sum(autograd_ops.bjorck(z, n_iter=4, **QUIET) ** 3)  # noqa: E731
    with pytest.raises(NotImplementedError, match="second-order derivatives are not available"):
        grad(lambda z: anp.sum(grad(f)(z)))(w)


@pytest.mark.parametrize("kwargs", [dict(checkpoint=True, n_iter=9, order=3),
                                    dict(backward="implicit", tol=1e-12, n_iter=60),
                                    dict(scaling="none", n_iter=5, **QUIET)])
def test_array_api_strict_matches_numpy(kwargs):
    """[BJ-1] the core runs under array_api_strict (no boolean indexing, no data-dependent
    shapes) and gives NumPy's results."""
    (backend,) = available_backends(("array_api_strict-nodds",))
    w = 0.6 * _polar(RNG.standard_normal((2, 3, 5))) + 0.05 * RNG.standard_normal((2, 3, 5))
    g = RNG.standard_normal((2, 3, 5))
    y, res = bjorck_fwd(w, **kwargs)
    with backend.active():
        ys, ress = bjorck_fwd(backend.asarray(w), **kwargs)
        outs = [ys, bjorck_bwd(ress, backend.asarray(g)), bjorck_jvp(ress, backend.asarray(g))]
        outs = [np.asarray(reflip.to_numpy(o)) for o in outs]
    for got, want in zip(outs, [y, bjorck_bwd(res, g), bjorck_jvp(res, g)], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_strategy_iteration_budgets_suffice():
    """[BJ-5] the strategies' "converged" budgets bring every scaled singular value >= 0.1
    within 1e-15 of 1 with iterations to spare (scalar map of [BJ-3])."""
    from reflip.audit.bjorck import phi, series
    from reflip.testing.strategies import BJORCK_CONVERGED_N_ITER

    for (order, beta), k in BJORCK_CONVERGED_N_ITER.items():
        t = np.array([0.1])
        for _ in range(k - 5):
            t = phi(t, series(order, beta))
        assert abs(t[0] - 1) < 1e-15, (order, beta)


# ----------------------------------------------------------------------------------------------
# Not converged without tol: reported by default [BJ-10]

NOT_CONVERGED = {
    "rank-deficient": (lambda: _with_singular_values([1.0, 0.5, 0.0], 4, 3), {}),
    "smallest singular value 1e-8": (lambda: _with_singular_values([1.0, 0.5, 1e-8], 4, 3), {}),
    "all zero": (lambda: np.zeros((3, 3)), {}),
    "n_iter=3": (lambda: RNG.standard_normal((5, 4)), {"n_iter": 3}),
    "wide, float32, n_iter=4": (lambda: RNG.standard_normal((3, 6)).astype(np.float32), {"n_iter": 4}),
}


@pytest.mark.parametrize("case", sorted(NOT_CONVERGED))
@pytest.mark.parametrize("op", [bjorck, bjorck_fwd])
def test_not_converged_warns_without_tol(op, case):
    """[BJ-10] a result far from orthonormal never passes silently: without tol, a residual
    above sqrt(N eps) warns (measured here independently of reflip's report), "raise" raises,
    "ignore" silences, and the report itself is the same in every mode."""
    make, kwargs = NOT_CONVERGED[case]
    w = make()
    with pytest.warns(BjorckConvergenceWarning, match=r"did not converge in n_iter=\d+ iterations") as caught:
        out = op(w, **kwargs)
    y = out[0] if isinstance(out, tuple) else out
    n = min(w.shape)
    measured = np.linalg.norm(np.swapaxes(y, -1, -2) @ y - np.eye(w.shape[-1])) if w.shape[0] >= w.shape[1] \
        else np.linalg.norm(y @ y.T - np.eye(w.shape[0]))
    assert measured > math.sqrt(n * np.finfo(w.dtype).eps)
    assert len(caught) == 1 and caught[0].filename == __file__  # points at this call
    with pytest.raises(BjorckConvergenceError, match="did not converge"):
        op(w, on_nonconvergence="raise", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = op(w, on_nonconvergence="ignore", **kwargs)
    np.testing.assert_array_equal(quiet[0] if isinstance(quiet, tuple) else quiet, y)
    if op is bjorck_fwd:  # the report is truthful and unchanged by the mode
        assert quiet[1].info == out[1].info or (
            quiet[1].info.n_iter == out[1].info.n_iter
            and np.array_equal(quiet[1].info.residual, out[1].info.residual))
        assert not out[1].info.converged


@pytest.mark.parametrize("dt, n", [(np.float64, 2), (np.float64, 64), (np.float32, 8), (np.float32, 256)])
def test_converged_results_do_not_warn(dt, n):
    """[BJ-10] the rounding floor of a converged result stays below sqrt(N eps): a converged
    call is silent, also for float32 at a few hundred columns."""
    w = RNG.standard_normal((n + 3, n)).astype(dt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, info = bjorck(w, n_iter=40, return_info=True)
        bjorck_fwd(w, n_iter=40)
        bjorck(haar_orthogonal(RNG, n).astype(dt), scaling="none", n_iter=2)  # already orthonormal
    floor = np.linalg.norm(y.T.astype(np.float64) @ y - np.eye(n))
    assert floor < 0.1 * math.sqrt(n * np.finfo(dt).eps)  # a margin of 10 at least


def test_the_warning_is_shown_once_per_call_site():
    """[BJ-10] Python's default filter shows the warning once per line of the caller (its
    stacklevel points at the caller, not at reflip)."""
    w = np.zeros((2, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(3):
            bjorck(w)
        for _ in range(3):
            bjorck_fwd(w)
    assert len(caught) == 2 and all(c.filename == __file__ for c in caught)


def test_the_implicit_derivatives_warning_points_at_the_caller():
    """[BJ-9] The implicit rule of a forward that had not converged warns at the caller's line of
    bjorck_bwd/bjorck_jvp/polar_bwd/polar_jvp, not inside reflip."""
    w = np.random.default_rng(0).standard_normal((5, 3))
    y, res = bjorck_fwd(w, n_iter=2, backward="implicit", **QUIET)
    _, pres = reflip.polar_fwd(w, n_iter=1, backward="implicit", on_nonconvergence="ignore")
    g = np.ones_like(w)
    for derivative, residuals in ((bjorck_bwd, res), (bjorck_jvp, res), (reflip.polar_bwd, pres),
                                  (reflip.polar_jvp, pres)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            derivative(residuals, g)
        assert [c.filename for c in caught] == [__file__], derivative.__name__


def test_one_quadratic_step_from_the_threshold_reaches_the_floor():
    """[BJ-10] one order-1 step maps a residual rho to at most 3/4 rho^2 + O(rho^3): measured
    on an SVD-built Y whose singular values are spread around 1 (no reflip arithmetic
    involved except the step itself)."""
    rng = np.random.default_rng(3)
    for rho in (1e-2, 1e-3, 1e-4):
        d = rng.uniform(-1, 1, 6)
        d *= rho / np.linalg.norm(d)  # t_i^2 = 1 + d_i, so ||Y^T Y - I||_F = rho
        y = haar_orthogonal(rng, 8)[:, :6] @ np.diag(np.sqrt(1 + d)) @ haar_orthogonal(rng, 6)
        nxt = bjorck(y, scaling="none", n_iter=1, **QUIET)
        after = np.linalg.norm(nxt.T @ nxt - np.eye(6))
        assert after <= 0.75 * rho**2 * (1 + 2 * rho) + 1e-14


def test_n_iter_is_bounded():
    """[BJ-6] n_iter above MAX_ITERATIONS is refused at once (it would run for hours)."""
    import time

    from reflip._validate import MAX_ITERATIONS

    start = time.perf_counter()
    for n_iter in (10**30, MAX_ITERATIONS + 1):
        with pytest.raises(ValueError, match=rf"n_iter must be <= {MAX_ITERATIONS}, got {n_iter}"):
            bjorck(np.eye(2), n_iter=n_iter)
        with pytest.raises(ValueError, match=rf"n_iter must be <= {MAX_ITERATIONS}"):
            bjorck_fwd(np.eye(2), n_iter=n_iter, tol=1e-3)
        with pytest.raises(ValueError, match=rf"n_iter must be <= {MAX_ITERATIONS}"):
            reflip.spectral_normalize(np.eye(2), n_iter=n_iter, tol=0)
    assert time.perf_counter() - start < 1.0
    bjorck(np.eye(2), n_iter=MAX_ITERATIONS, tol=1e-3)  # the bound itself is accepted


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4)])
def test_implicit_derivatives_name_a_non_finite_input(bad, shape):
    """[BJ-9] after check_finite=False on a non-finite w, the implicit VJP and JVP raise a
    ValueError naming the cause, never LinAlgError or a meaningless singular value."""
    w = RNG.standard_normal(shape)
    w[0, 1] = bad
    _, res = bjorck_fwd(w, backward="implicit", check_finite=False, **QUIET)
    for fn in (bjorck_bwd, bjorck_jvp):
        with pytest.raises(ValueError, match="holds NaN or inf.*check_finite=False"):
            fn(res, np.ones(shape))


# ----------------------------------------------------------------------------------------------
# Mutation-testing survivors (docs/mutation.md, bjorck)
#
# The basin certificate of scaling="none"/"sqrt_mn" [BJ-6] (reflip/bjorck.py, _certify_basin):
# for X = A_0^T A_0 the bound min(||X^k||_F, ||X^k||_inf)^(1/k) on sigma_max^2, for k = 1, 2, 4, 8
# (up to three squarings), each multiplied by the rounding slack 1 + 4 k N eps(dtype), must be
# strictly below r^2, r = basin_radius(order, beta); otherwise ValueError.


def _slack(power, n, dtype):
    """The certificate's documented rounding slack 4 k N eps(dtype) at power k (N x N Gram)."""
    return 4.0 * power * n * float(np.finfo(dtype).eps)


def _with_gram_corner(target, dtype, lead=()):
    """``diag(a, 1/2, 1/2, 1/2)`` (in a stack of shape ``lead``: the first matrix planted, the
    others ``I / 2``) with ``fl(a * a)`` the float nearest ``target``: its Gram matrix is
    ``diag(fl(a a), 1/4, 1/4, 1/4)``, whose infinity norm ``fl(a a)`` bounds the Frobenius norm
    of every power from below, so the certified quantity is ``fl(a a)`` at every k."""
    a = dtype(math.sqrt(target))
    candidates = [a, np.nextafter(a, dtype(0)), np.nextafter(a, dtype(10))]
    a = min(candidates, key=lambda c: abs(float(c * c) - target))
    w = np.tile(np.diag(np.full(4, 0.5, dtype)), (*lead, 1, 1))
    w[(0,) * len(lead) + (0, 0)] = a
    return w, float(a * a)


@pytest.mark.parametrize("lead", [(), (2, 1), "wide"])
@pytest.mark.parametrize("margin", [0.1, 0.5])
@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_certificate_slack_at_its_boundary(dt, margin, lead):
    """[BJ-6] the bound times (1 + 4 N eps) must stay below r^2 = 3: a bound planted (1 - margin)
    slacks below r^2 (so that bound * (1 + slack) > r^2) is refused, at every power (the slack
    grows with k), and one planted (1 + margin) slacks below is accepted; N is the Gram's size
    (4), also for a 4-d stack whose second axis has length 1, and for the 4 x 6 wide matrix
    (diag | 0), whose Gram matrix is the smaller one, 4 x 4 [BJ-4]; eps is the input dtype's."""
    r2 = basin_radius(1, 0.5) ** 2
    s = _slack(1, 4, dt)

    def planted_matrix(target):
        w, planted = _with_gram_corner(target, dt, () if lead == "wide" else lead)
        assert abs(planted / target - 1) < 0.05 * s
        return np.concatenate([w, np.zeros((4, 2), dt)], axis=-1) if lead == "wide" else w

    with pytest.raises(ValueError, match=r"scaling='none': cannot certify"):
        bjorck(planted_matrix(r2 * (1 - (1 - margin) * s)), scaling="none", n_iter=1, **QUIET)
    bjorck(planted_matrix(r2 * (1 - (1 + margin) * s)), scaling="none", n_iter=1, **QUIET)


def test_certificate_refuses_a_slackened_bound_equal_to_r2():
    """[BJ-6] the basin (0, r) is open: a slackened bound equal to r^2 (float for float) does
    not certify it. a = 1.732050807568874 has fl(a a) (1 + 16 eps) == fl(basin_radius()^2)."""
    r2 = basin_radius() ** 2
    w, planted = _with_gram_corner(2.999999999999989, np.float64)
    assert w[0, 0] == 1.732050807568874 and planted * (1.0 + _slack(1, 4, np.float64)) == r2
    with pytest.raises(ValueError, match="cannot certify"):
        bjorck(w, scaling="none", n_iter=1, **QUIET)


@pytest.mark.parametrize("lam, certified", [(2.4, True), (2.6, False)])
def test_certificate_squares_the_gram_matrix_three_times_at_most(lam, certified):
    """[BJ-6] up to three squarings (k = 8), no more. A = sqrt(lam) P with P = (I + H / 8) / 2
    the projector built from a symmetric 64 x 64 Hadamard matrix (H^2 = 64 I): X = lam P and
    X^k = lam^k P, ||P||_inf = (9/8 + 63/8) / 2 = 4.5 < ||P||_F = sqrt(32), so the bound is
    lam 4.5^(1/k): 1.457 lam at k = 4, 1.207 lam at k = 8, 1.099 lam at k = 16. lam = 2.4 is
    certified only at k = 8, lam = 2.6 only at k = 16, i.e. not at all, although its sigma_max
    sqrt(2.6) lies in the basin (the certificate is sufficient, not necessary)."""
    h = np.array([[1.0]])
    for _ in range(6):
        h = np.kron(h, np.array([[1.0, 1.0], [1.0, -1.0]]))
    p = (np.eye(64) + h / 8) / 2
    np.testing.assert_array_equal(p @ p, p)
    w = math.sqrt(lam) * p
    assert np.linalg.svd(w, compute_uv=False)[0] < basin_radius()
    if certified:
        bjorck(w, scaling="none", n_iter=1, **QUIET)
    else:
        with pytest.raises(ValueError, match="cannot certify"):
            bjorck(w, scaling="none", n_iter=1, **QUIET)


def test_certificate_uses_beta():
    """[BJ-6] [BJ-5] the basin is that of the requested beta: r = sqrt((1 + beta) / beta) = sqrt 5
    at beta = 1/4, so sigma_max = 2 (outside beta = 1/2's sqrt 3) is certified, 2.3 is not."""
    w = np.diag([2.0, 0.5])
    bjorck(w, scaling="none", beta=0.25, n_iter=1, **QUIET)
    with pytest.raises(ValueError, match=r"cannot certify .* basin \(0, 1.73205\)"):
        bjorck(w, scaling="none", n_iter=1, **QUIET)
    with pytest.raises(ValueError, match=r"cannot certify .* basin \(0, 2.23607\) of order 1"):
        bjorck(np.diag([2.3, 0.5]), scaling="none", beta=0.25, n_iter=1, **QUIET)


def test_basin_radius_defaults_to_order_one_beta_half():
    """[BJ-5] basin_radius() is that of the defaults order=1, beta=1/2: sqrt 3."""
    assert basin_radius() == basin_radius(1, 0.5) == pytest.approx(math.sqrt(3))
    assert basin_radius(beta=0.25) == pytest.approx(math.sqrt(5))


def _gershgorin_tight_and_frobenius_tight(n=16):
    """``(A1, A2)``, ``n x n``, both with sigma_max < sqrt 3: ``A1 = sqrt(2.7) Q`` (Q orthonormal),
    whose Gram 2.7 I has ``||X^k||_inf^(1/k) = 2.7`` but ``||X^k||_F^(1/k) = 2.7 n^(1/2k)``
    (3.21 at k = 8 for n = 16); ``A2 = sqrt(2.9) P_v + sqrt(0.1) (I - P_v)`` (``P_v`` the
    projector on ``v = (2, 1, ..., 1)``), whose Gram has ``||X||_F = sqrt(2.9^2 + 15 0.01) =
    2.93`` but ``||X^k||_inf^(1/k) >= 2.9 (34/19)^(1/k)`` (3.12 at k = 8)."""
    q = haar_orthogonal(np.random.default_rng(11), n)
    v = np.ones(n)
    v[0] = 2.0
    pv = np.outer(v, v) / (v @ v)
    a2 = math.sqrt(2.9) * pv + math.sqrt(0.1) * (np.eye(n) - pv)
    return math.sqrt(2.7) * q, a2


def test_certificate_bounds_each_matrix_of_a_stack_by_its_own_norms():
    """[BJ-6] the bound is min(||X||_F, ||X||_inf) per matrix: a matrix certified only by its
    Gershgorin bound and one certified only by its Frobenius norm are accepted alone and in
    stacks (3-d and 4-d); a bound mixing the matrices of a stack (the largest row sum of the
    stack, or a sum over a batch axis) would refuse them. Both lie in the basin (SVD)."""
    a1, a2 = _gershgorin_tight_and_frobenius_tight()
    for a in (a1, a2):
        assert np.linalg.svd(a, compute_uv=False)[0] < basin_radius()
        bjorck(a, scaling="none", n_iter=1, **QUIET)
    bjorck(np.stack([a1, a2]), scaling="none", n_iter=1, **QUIET)
    bjorck(np.stack([np.stack([a1, a2]), np.stack([a2, a1])]), scaling="none", n_iter=1, **QUIET)
    # Still a certificate per matrix: one matrix outside refuses the stack.
    with pytest.raises(ValueError, match="cannot certify"):
        bjorck(np.stack([a1, 1.1 * a1]), scaling="none", n_iter=1, **QUIET)


# The unrolled JVP without stored iterates recomputes them (reflip/bjorck.py, _forward_pairs) with
# the forward's products: the fused NumPy ones [BJ-11] from N = MIN_N = 256 on.


# Float64 at N = 260: there the fused Gram (SYRK by this module's blocks) and NumPy's own a.T @ a
# differ in the last bits, so that both products of a recomputed step are checked.
@pytest.mark.parametrize("dt, shape", [(np.float64, (264, 260)), (np.float64, (260, 264)), (np.float32, (260, 256))])
def test_recomputed_iterates_of_fused_products_give_the_stored_derivatives(dt, shape):
    """[BJ-8] [BJ-11] for matrices large enough for the fused NumPy products, the JVP and VJP of
    a checkpointed forward (iterates recomputed) equal those of a forward that stored its
    iterates, bit for bit, and the JVP equals central differences of the forward (float64)."""
    from reflip._fast import numpy_bjorck

    assert min(shape[-2:]) >= numpy_bjorck.MIN_N
    rng = np.random.default_rng(17)
    w, v, g = (rng.standard_normal(shape).astype(dt) for _ in range(3))
    y, res = bjorck_fwd(w, n_iter=3, **QUIET)  # three steps: a stored A_1 outlives two fused results
    y_c, res_c = bjorck_fwd(w, n_iter=3, checkpoint=True, **QUIET)
    assert res.iterates is not None and res_c.iterates is None
    np.testing.assert_array_equal(y_c, y)
    jvp = bjorck_jvp(res, v)
    np.testing.assert_array_equal(bjorck_jvp(res_c, v), jvp)
    np.testing.assert_array_equal(bjorck_bwd(res_c, g), bjorck_bwd(res, g))
    if dt == np.float64:
        fd = _fd(lambda z: bjorck(z, n_iter=3, **QUIET), w, v)
        assert np.linalg.norm(jvp - fd) <= 1e-7 * np.linalg.norm(jvp)


# The implicit derivative [BJ-9] (reflip/bjorck.py, _polar_eig, _implicit_jacobian).


def test_implicit_non_finite_message_in_full():
    """[BJ-9] the refusal of a non-finite forward names the cause and the remedy, word for word."""
    w = RNG.standard_normal((3, 3))
    w[1, 1] = np.nan
    _, res = bjorck_fwd(w, backward="implicit", check_finite=False, **QUIET)
    with pytest.raises(ValueError, match=r"^backward='implicit' cannot differentiate here: the forward's w or its "
                       r"output holds NaN or inf \(bjorck_fwd ran with check_finite=False on a non-finite w, or its "
                       r"iterates overflowed\), so the polar factor and its derivative are undefined\. "
                       r"Pass a finite w$"):
        bjorck_bwd(res, np.ones((3, 3)))


def test_implicit_singular_message_in_full():
    """[BJ-9] the refusal at a rank-deficient w names the polar factor, the smallest singular
    value found and the alternative, word for word."""
    w = _with_singular_values([1.0, 0.5, 0.0], 3, 3)
    _, res = bjorck_fwd(w, backward="implicit", **QUIET)
    with pytest.raises(ValueError, match=r"^backward='implicit' is singular here: the polar factor U V\^T is not "
                       r"differentiable at a rank-deficient w \(smallest singular value found: \S+\)\. Use "
                       r"backward='unrolled' \(the derivative of the computed iterations\)$"):
        bjorck_jvp(res, np.ones((3, 3)))


@pytest.mark.parametrize("margin", [0.1, 0.5])
@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_implicit_zero_singular_value_threshold_at_its_boundary(dt, margin):
    """[BJ-9] a singular value counts as zero below 2 N eps(dtype) sigma_max: on a diagonal
    w = 2^10 diag(1, 3/4, 1/2, f 8 eps) (N = 4, sigma_max = 2^10; eigh of the diagonal H is exact
    up to the converged Y's rounding) f = 1 - margin is refused, f = 1 + margin differentiated."""
    e = float(np.finfo(dt).eps)
    for f, singular in ((1 - margin, True), (1 + margin, False)):
        w = (2.0**10 * np.diag([1.0, 0.75, 0.5, f * 2 * 4 * e])).astype(dt)
        _, res = bjorck_fwd(w, backward="implicit", n_iter=100)
        assert res.info.converged
        if singular:
            with pytest.raises(ValueError, match="is singular here"):
                bjorck_bwd(res, np.ones((4, 4), dt))
        else:
            assert np.all(np.isfinite(bjorck_bwd(res, np.ones((4, 4), dt))))


def test_implicit_threshold_is_per_matrix_of_a_stack():
    """[BJ-9] the zero-singular-value threshold is relative to each matrix's own sigma_max: a
    stack of a well-conditioned matrix and a 2^-60 multiple of another is differentiable, and its
    derivatives are those of each matrix alone."""
    rng = np.random.default_rng(23)
    w = np.stack([rng.standard_normal((4, 4)) + 3 * np.eye(4),
                  2.0**-60 * (rng.standard_normal((4, 4)) + 3 * np.eye(4))])
    v = rng.standard_normal((2, 4, 4))
    _, res = bjorck_fwd(w, backward="implicit", n_iter=40)
    jvp, vjp = bjorck_jvp(res, v), bjorck_bwd(res, v)
    for i in range(2):
        _, res_i = bjorck_fwd(w[i], backward="implicit", n_iter=40)
        np.testing.assert_allclose(jvp[i], bjorck_jvp(res_i, v[i]), rtol=1e-12, atol=0)
        np.testing.assert_allclose(vjp[i], bjorck_bwd(res_i, v[i]), rtol=1e-12, atol=0)


def test_implicit_derivative_of_a_square_matrix_is_tangent_to_the_orthogonal_group():
    """[BJ-9] for square w the implicit derivative is U [F o (G - G^T)] V^T = Y Omega with Omega
    = V [F o (G - G^T)] V^T skew: the complement term (I - Y Y^T) t V S^-1 V^T belongs to
    strictly tall w only. Checked where it would show, on a forward stopped at residual ~4e-3
    (which warns)."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((5, 5)) + 2 * np.eye(5)
    v = rng.standard_normal((5, 5))
    y, res = bjorck_fwd(w, backward="implicit", n_iter=8, **QUIET)
    assert 1e-3 < res.info.max_residual < 1e-2
    for fn in (bjorck_jvp, bjorck_bwd):
        with pytest.warns(BjorckConvergenceWarning, match="backward='implicit'"):
            out = fn(res, v)
        omega = np.linalg.solve(y, out)
        assert np.linalg.norm(omega + omega.T) <= 1e-12 * np.linalg.norm(omega)


@pytest.fixture
def _fused_calls(fused_calls, monkeypatch):
    """The fused products' call counts (conftest's ``fused_calls``), with the core's step and
    reverse step made to fail (they must not run beside them)."""
    import importlib

    bjorck_module = importlib.import_module("reflip.bjorck")

    def core(*args):
        raise AssertionError("the core's product ran where the fused one applies")

    monkeypatch.setattr(bjorck_module, "_step", core)
    monkeypatch.setattr(bjorck_module, "_step_vjp", core)
    return fused_calls


@pytest.mark.parametrize("n_iter", [1, 3, 9])
def test_numpy_runs_take_the_fused_products(_fused_calls, n_iter):
    """[BJ-11] [BJ-8] NumPy inputs (from MIN_N on) run every Gram matrix, step and reverse step
    through the fused products: the forward K steps and K + 1 Gram matrices (the last one for the
    report), bjorck with on_nonconvergence="ignore" and no return_info K of each (no report
    Gram matrix, as documented), the JVP of checkpointed residuals recomputes exactly the K
    pairs it differentiates (K Gram matrices, K - 1 steps), the VJP K reverse steps, and the
    checkpointed VJP recomputes its iterates with them too; the results are bit for bit those
    of the stored iterates and the derivatives of the steps (central differences)."""
    calls = _fused_calls
    w, g, v = (RNG.standard_normal((6, 4)) for _ in range(3))
    y, res = bjorck_fwd(w, n_iter=n_iter, **QUIET)
    assert calls == {"gram": n_iter + 1, "step": n_iter, "step_vjp": 0}
    w_bar, w_jvp = bjorck_bwd(res, g), bjorck_jvp(res, v)
    assert calls == {"gram": n_iter + 1, "step": n_iter, "step_vjp": n_iter}
    calls.update(gram=0, step=0, step_vjp=0)
    np.testing.assert_array_equal(bjorck(w, n_iter=n_iter, **QUIET), y)
    assert calls == {"gram": n_iter, "step": n_iter, "step_vjp": 0}
    y_c, res_c = bjorck_fwd(w, n_iter=n_iter, checkpoint=True, **QUIET)
    np.testing.assert_array_equal(y_c, y)
    calls.update(gram=0, step=0)
    np.testing.assert_array_equal(bjorck_jvp(res_c, v), w_jvp)
    assert calls == {"gram": n_iter, "step": n_iter - 1, "step_vjp": 0}
    calls.update(gram=0, step=0)
    np.testing.assert_array_equal(bjorck_bwd(res_c, g), w_bar)
    assert calls["step_vjp"] == n_iter and calls["gram"] >= n_iter and calls["step"] >= n_iter - 1
    fd = _fd(lambda z: bjorck(z, n_iter=n_iter, **QUIET), w, v)
    assert np.sum(w_bar * v) == pytest.approx(np.sum(g * fd), rel=1e-7)
    np.testing.assert_allclose(w_jvp, fd, rtol=1e-6, atol=1e-8)


def test_fused_backward_promotes_a_cotangent_of_another_dtype(monkeypatch):
    """A float32 cotangent of a float64 run is promoted by the core's products (the fused ones
    take one dtype), with the fused products on (MIN_N lowered to 1): the VJP is float64 and
    equals that of the same cotangent cast to float64."""
    from reflip._fast import numpy_bjorck as nb

    monkeypatch.setattr(nb, "MIN_N", 1)
    w = RNG.standard_normal((6, 4))
    g = RNG.standard_normal((6, 4)).astype(np.float32)
    _, res = bjorck_fwd(w, n_iter=3, **QUIET)
    got = bjorck_bwd(res, g)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, bjorck_bwd(res, g.astype(np.float64)), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("k", [3, 5])
def test_tol_equal_to_a_reached_residual_stops_there(k):
    """[BJ-7] the stopping test is max ||A_k^T A_k - I||_F <= tol: a tol equal (float for float)
    to the residual after k steps stops after exactly k steps."""
    w = _with_singular_values([1.0, 0.5, 0.2], 5, 3)
    _, info_k = bjorck(w, n_iter=k, return_info=True, **QUIET)
    _, info = bjorck(w, tol=info_k.max_residual, n_iter=50, return_info=True)
    assert info.n_iter == k and info.max_residual == info_k.max_residual


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_report_threshold_without_tol_is_that_of_the_dtype(dt):
    """[BJ-7] without tol, info.tol is sqrt(eps) of the input's dtype (orthonormal to half its
    working precision)."""
    w = RNG.standard_normal((5, 3)).astype(dt)
    _, res = bjorck_fwd(w, n_iter=30)
    assert res.info.tol == math.sqrt(float(np.finfo(dt).eps))
    _, info = bjorck(w, n_iter=30, return_info=True)
    assert info.tol == math.sqrt(float(np.finfo(dt).eps))


# Validation messages and the convergence report [BJ-7] [BJ-10].


def test_non_finite_w_message_in_full():
    """The finiteness check names the cause and the way out, word for word."""
    with pytest.raises(ValueError, match=r"^w must be finite \(it contains NaN or inf\); pass check_finite=False "
                       r"to skip this check and let NaN propagate$"):
        bjorck(np.array([[1.0, np.inf], [0.0, 1.0]]))


@pytest.mark.parametrize("tol", [1.0, 1.5])
def test_tol_of_one_or_more_is_refused(tol):
    """[BJ-7] tol must be < 1: a residual ||Y^T Y - I||_F >= 1 allows a zero singular value."""
    with pytest.raises(ValueError, match=r"^tol must be < 1 \(a residual \|\|Y\^T Y - I\|\|_F >= 1 allows zero "
                       rf"singular values\), got {tol}$"):
        bjorck(np.eye(2), tol=tol)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_tf32_mixed_is_refused_on_numpy(dt):
    """precision="tf32-mixed" needs a float32 CuPy array: NumPy arrays of either dtype are refused
    with the parameter, what it needs and what it got named."""
    w = np.eye(3, dtype=dt)
    for op in (bjorck, bjorck_fwd):
        with pytest.raises(ValueError, match=r"^precision='tf32-mixed' needs a float32 CuPy array \(TF32 is a GPU "
                           rf"tensor-core mode\), got a {np.dtype(dt).name} array of \S*numpy; use "
                           r"precision='default'$"):
            op(w, precision="tf32-mixed")


def _with_residual(e, lead=()):
    """A 6 x 4 matrix (in a stack of shape ``lead``) with ``A^T A = diag(fl(1 + e), 1, 1, 1)``
    exactly (column 0 is (1, sqrt(e/2), sqrt(e/2), 0, 0, 0), the others unit vectors), so that
    ``||A^T A - I||_F = fl(1 + e) - 1``; ``e = 2^-25`` is exact (1 + 2^-26 + 2^-26)."""
    t = math.sqrt(e / 2)
    a = np.zeros((6, 4))
    a[:3, 0] = (1.0, t, t)
    a[3, 1] = a[4, 2] = a[5, 3] = 1.0
    return np.tile(a, (*lead, 1, 1))


@pytest.mark.parametrize("lead", [(), (1,)])
def test_report_threshold_sqrt_n_eps_at_its_boundary(lead):
    """[BJ-10] without tol a residual above sqrt(N eps) is reported, N = min(m, n) of each matrix
    (4 here, also in a stack of one): with N = 4 and float64, sqrt(N eps) = 2^-25 exactly. On
    n_iter=0 with scaling="none" (the input is the result) a residual 2^-25 (exactly) and
    0.9 * 2^-25 are silent, 1.1 * 2^-25 warns, naming the Björck iteration."""
    thr = 2.0**-25
    assert math.sqrt(4 * np.finfo(np.float64).eps) == thr
    for e in (thr, 0.9 * thr):
        w = _with_residual(e, lead)
        y, info = bjorck(w, n_iter=0, scaling="none", return_info=True)
        assert info.residual == pytest.approx(e, rel=1e-6) and (e != thr or np.all(info.residual == thr))
        np.testing.assert_array_equal(y, w)
    with pytest.warns(BjorckConvergenceWarning, match=r"^Björck iteration did not converge in n_iter=0 iterations: "
                      r"\|\|Y\^T Y - I\|\|_F = 3.28e-08 > 2.98e-08 = sqrt\(N eps\) \[BJ-10\]"):
        bjorck(_with_residual(1.1 * thr, lead), n_iter=0, scaling="none")


def test_missed_tol_message_names_the_bjorck_iteration():
    """[BJ-7] the report of a missed tol starts with the iteration's name."""
    with pytest.raises(BjorckConvergenceError, match=r"^Björck iteration did not reach tol=1e-06 in n_iter=2 "
                       r"iterations: \|\|Y\^T Y - I\|\|_F = "):
        bjorck(_with_singular_values([1.0, 1e-3], 3, 2), tol=1e-6, n_iter=2, on_nonconvergence="raise")


# The scalings [BJ-6] (reflip/bjorck.py, _scale, _validated).


def test_frobenius_scaling_is_per_matrix_of_a_stack():
    """[BJ-6] each matrix of a stack is divided by its own norm: 2^900 W and 2^-900 W in one stack
    both give the polar factor of W (a common divisor would flush the small one to zero)."""
    w = RNG.standard_normal((4, 3))
    y = bjorck(np.stack([2.0**900 * w, 2.0**-900 * w]), n_iter=40)
    np.testing.assert_allclose(y, np.stack([_polar(w)] * 2), atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 2), (2, 3, 5), (2, 5, 3)])
def test_sqrt_mn_scaling_divides_by_sqrt_mn(shape):
    """[BJ-6] with n_iter=0 the result is the scaled input: w / sqrt(m n) for scaling="sqrt_mn"
    (sqrt(m n) = 2 for 2 x 2; m, n of each matrix of a stack, wide or tall), and the residuals
    hold the divisor per matrix, shape (..., 1, 1)."""
    w = RNG.standard_normal(shape)
    m, n = shape[-2:]
    y, res = bjorck_fwd(w, scaling="sqrt_mn", n_iter=0, **QUIET)
    np.testing.assert_array_equal(y, w / math.sqrt(m * n))
    assert res.scale.shape == (*shape[:-2], 1, 1) and np.all(res.scale == math.sqrt(m * n))


@pytest.mark.parametrize("scaling", ["none", "sqrt_mn"])
def test_constant_scalings_keep_float32(scaling):
    """[BJ-6] the constant divisor of "none"/"sqrt_mn" is held in the input's dtype: float32 in,
    float32 out, derivatives included."""
    q = haar_orthogonal(RNG, 4)
    w = (q if scaling == "none" else 4.0 * q).astype(np.float32)
    y, res = bjorck_fwd(w, scaling=scaling, n_iter=3, **QUIET)
    assert res.scale.dtype == np.float32
    g = np.ones_like(w)
    for out in (y, bjorck_bwd(res, g), bjorck_jvp(res, g)):
        assert out.dtype == np.float32


def test_no_certificate_without_iterations():
    """[BJ-6] n_iter=0 returns the scaled input and iterates nothing, so no basin is needed:
    scaling="none" returns w itself even outside the basin; from one iteration on it is refused."""
    w = np.diag([3.0, 0.5])
    np.testing.assert_array_equal(bjorck(w, scaling="none", n_iter=0, **QUIET), w)
    with pytest.raises(ValueError, match="cannot certify"):
        bjorck(w, scaling="none", n_iter=1, **QUIET)


def test_certificate_is_of_the_scaled_input():
    """[BJ-6] the certificate is of w / sqrt(m n) for "sqrt_mn": 2 Q (sigma = 2, outside the
    basin unscaled) is accepted as 2 Q / 4, and gives Q."""
    q = haar_orthogonal(RNG, 4)
    np.testing.assert_allclose(bjorck(2.0 * q, scaling="sqrt_mn", n_iter=12), q, atol=1e-13)


def test_coefficients_default_to_order_one_beta_half():
    """[BJ-2] bjorck_coefficients() is order 1, beta 1/2: (3/2, -1/2)."""
    assert bjorck_coefficients() == (1.5, -0.5)


def test_bjorck_keeps_no_iterates():
    """bjorck keeps no iterates (bjorck_fwd stores every (A_k, X_k) for the backward pass): its
    peak memory is a few matrices, not one per iteration (NumPy reports to tracemalloc)."""
    import tracemalloc

    w = RNG.standard_normal((64, 64))
    bjorck_fwd(w, n_iter=1, **QUIET)  # imports and caches outside the measurement
    peaks = []
    for op in (bjorck, bjorck_fwd):
        tracemalloc.start()
        try:
            op(w, n_iter=30, **QUIET)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[0] < 15 * w.nbytes < 40 * w.nbytes < peaks[1]  # 30 stored pairs: 60 matrices


@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
def test_residual_of_every_matrix_of_a_4d_stack_in_its_dtype(float_dtype):
    """[BJ-7] The report's residual is ``||Y^T Y - I||_F`` of each matrix of the stack, in the
    input's dtype and with the stack's shape, however many batch axes (a 4-d stack whose axis 1
    is not N included)."""
    w = np.random.default_rng(5).standard_normal((2, 3, 6, 4)).astype(float_dtype)
    y, info = bjorck(w, n_iter=3, return_info=True, **QUIET)
    assert info.residual.dtype == float_dtype and info.residual.shape == (2, 3)
    y64 = y.astype(np.float64)
    want = np.linalg.norm(np.swapaxes(y64, -1, -2) @ y64 - np.eye(4), axis=(-2, -1))
    np.testing.assert_allclose(info.residual, want, rtol=1e-4 if float_dtype == np.float32 else 1e-10)
