"""Spectral normalization tests outside the claim suite: bad input, convergence and the
persistent u, the two derivative conventions against independent oracles (autograd through a
plainly written power iteration; central differences of an SVD-based normalization), scale
invariance and degenerate input [PR-11] [PR-13]."""
import math

import array_api_compat.numpy as xnp
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, make_jvp

import reflip
from reflip import op_norm_2, spectral_normalize, spectral_normalize_bwd, spectral_normalize_fwd, spectral_normalize_jvp
from reflip.spectral import default_u
from reflip.testing.backends import available_backends


def _gapped(seed, m=5, n=4, s=(1.0, 0.5, 0.3, 0.1)):
    """U diag(s) V^T with a spectral gap s_2 / s_1 = 1/2."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((m, m)))
    v, _ = np.linalg.qr(rng.standard_normal((n, n)))
    k = min(m, n)
    return (u[:, :k] * np.array(s[:k])) @ v[:, :k].T * 3.0


@pytest.mark.parametrize(
    "w, kwargs, exc, words",
    [
        (np.ones(3), {}, ValueError, r"w must have at least 2 dimension\(s\) \(\.\.\., m, n\)"),
        (np.ones((2, 2), dtype=np.int64), {}, TypeError, "w must have dtype float32 or float64"),
        (np.ones((0, 2)), {}, ValueError, "w must not be empty"),
        (np.ones((2, 2)), {"n_iter": 0}, ValueError, "n_iter must be >= 1"),
        (np.ones((2, 2)), {"n_iter": 2.0}, TypeError, "n_iter must be an integer"),
        (np.ones((2, 2)), {"tol": -1.0}, ValueError, "tol must be >= 0"),
        (np.ones((2, 2)), {"tol": math.nan}, ValueError, "tol must be a finite number"),
        (np.ones((2, 2)), {"tol": math.inf}, ValueError, "tol must be a finite number"),
        (np.ones((2, 2)), {"n_iter": 10**30}, ValueError, "n_iter must be <= 10000"),
        (np.ones((2, 2)), {"tol": "1e-3"}, TypeError, "tol must be a real number or None"),  # as bjorck (issue 15)
        (np.ones((2, 2)), {"tol": True}, TypeError, "tol must be a real number or None"),
        (np.ones((2, 2)), {"convention": None}, TypeError, "convention must be one of"),
        (np.ones((2, 2)), {"convention": "detached"}, ValueError,
         r"convention must be one of \('constant_uv', 'exact'\)"),
        (np.ones((2, 3)), {"u": np.ones(3)}, ValueError, r"u must have shape \(\.\.\., m\) = \(2,\)"),
        (np.ones((2, 3)), {"u": np.ones(2, dtype=np.float32)}, TypeError, "u must have w's dtype"),
        (np.ones((2, 3)), {"u": np.ones(2, dtype=np.int64)}, TypeError, "u must have dtype float32 or float64"),
    ],
)
@pytest.mark.parametrize("op", [spectral_normalize, spectral_normalize_fwd])
def test_bad_input(op, w, kwargs, exc, words):
    """[PR-11] invalid arguments raise errors naming the parameter and what was expected."""
    with pytest.raises(exc, match=words):
        op(w, **kwargs)


def test_mixed_libraries_rejected():
    import array_api_strict

    with pytest.raises(TypeError):
        spectral_normalize(np.ones((2, 2)), array_api_strict.ones(2, dtype=array_api_strict.float64))


def test_cotangent_checked():
    _, res = spectral_normalize_fwd(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"y_bar must have the shape \(2, 3\) of the primitive's output"):
        spectral_normalize_bwd(res, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"w_dot must have the shape \(2, 3\) of the primitive's input"):
        spectral_normalize_jvp(res, np.ones(6))


def test_converges_to_the_svd():
    """[PR-11] with a gap, sigma, u and v converge to the top singular triple; the tolerance
    stops the iteration early; the output has spectral norm 1."""
    w = _gapped(0)
    y, res = spectral_normalize_fwd(w, n_iter=200, tol=1e-12)
    u_svd, s, vt = np.linalg.svd(w)
    assert res.iterations < 200
    np.testing.assert_allclose(float(res.sigma_max[0, 0]), s[0], rtol=1e-14)
    np.testing.assert_allclose(abs(res.u @ u_svd[:, 0]), 1.0, rtol=1e-12)
    np.testing.assert_allclose(abs(res.v @ vt[0]), 1.0, rtol=1e-12)
    np.testing.assert_allclose(float(op_norm_2(y)), 1.0, rtol=1e-13)
    np.testing.assert_allclose(y, w / s[0], rtol=1e-13)


def test_estimate_from_below_at_any_iteration_count():
    """[PR-11] sigma = ||W v_K|| <= sigma_max, so the normalized matrix has norm >= 1,
    decreasing to 1."""
    w = np.random.default_rng(1).standard_normal((6, 6))
    norms = [float(op_norm_2(spectral_normalize(w, n_iter=k, tol=0.0))) for k in (1, 2, 4, 8, 64)]
    assert all(a >= 1 - 1e-14 for a in norms)
    assert norms[0] > 1 + 1e-6 and abs(norms[-1] - 1) < 1e-8


def test_persistent_u():
    """[PR-11] one iteration per call, feeding residuals.u back, reaches the same estimate as
    many iterations at once (and tracks a slowly changing W)."""
    w = _gapped(2)
    u = None
    for _ in range(40):
        y, res = spectral_normalize_fwd(w, u, n_iter=1)
        u = res.u
    np.testing.assert_allclose(y, spectral_normalize(w, n_iter=100, tol=0.0), rtol=1e-13)
    w2 = w + 1e-3 * np.random.default_rng(3).standard_normal(w.shape)
    for _ in range(5):
        y2, res = spectral_normalize_fwd(w2, u, n_iter=1)
        u = res.u
    np.testing.assert_allclose(float(op_norm_2(y2)), 1.0, rtol=1e-9)


def test_stacks_are_matrix_by_matrix():
    w = np.stack([_gapped(4), _gapped(5)])
    u = np.random.default_rng(6).standard_normal((2, 5))
    y, res = spectral_normalize_fwd(w, u, n_iter=7, tol=0.0, convention="exact")
    g = np.random.default_rng(7).standard_normal(w.shape)
    x_bar = spectral_normalize_bwd(res, g)
    for i in range(2):
        yi, ri = spectral_normalize_fwd(w[i], u[i], n_iter=7, tol=0.0, convention="exact")
        np.testing.assert_allclose(y[i], yi, rtol=1e-15)
        np.testing.assert_allclose(x_bar[i], spectral_normalize_bwd(ri, g[i]), rtol=1e-13)
    assert res.u.shape == (2, 5) and res.v.shape == (2, 4) and res.sigma.shape == (2, 1, 1)


def _plain_power_iteration(w, u0, n_iter):
    """W / ||W v_K|| after K power iterations, written plainly in autograd.numpy."""
    u = u0 / np.linalg.norm(u0)
    for _ in range(n_iter):
        v = anp.dot(anp.transpose(w), u)
        v = v / anp.sqrt(anp.sum(v * v))
        b = anp.dot(w, v)
        u = b / anp.sqrt(anp.sum(b * b))
    return w / anp.sqrt(anp.sum(b * b))


@pytest.mark.parametrize("n_iter", [1, 2, 5])
def test_exact_convention_matches_autograd_through_the_iterations(n_iter):
    """[PR-11] "exact" is the derivative of the computed iterations: autograd of a plain
    unrolled power iteration (VJP and JVP)."""
    rng = np.random.default_rng(n_iter)
    w = rng.standard_normal((4, 3))
    g, t = rng.standard_normal(w.shape), rng.standard_normal(w.shape)
    u0 = reflip.to_numpy(default_u(4, xnp.float64, xnp))
    _, res = spectral_normalize_fwd(w, n_iter=n_iter, tol=0.0, convention="exact")
    expected = grad(lambda z: anp.sum(_plain_power_iteration(z, u0, n_iter) * g))(w)
    np.testing.assert_allclose(spectral_normalize_bwd(res, g), expected, rtol=1e-11, atol=1e-13)
    _, jvp = make_jvp(lambda z: _plain_power_iteration(z, u0, n_iter))(w)(t)
    np.testing.assert_allclose(spectral_normalize_jvp(res, t), jvp, rtol=1e-11, atol=1e-13)


def _svd_normalized(w):
    return w / np.linalg.norm(w, ord=2)


def test_conventions_agree_at_convergence_and_differ_before():
    """[PR-11] at convergence both conventions give the derivative of W / sigma_max(W) (central
    differences of an SVD); after one iteration on a small gap they differ, and only "exact"
    matches central differences of the computed map."""
    w = _gapped(8)
    rng = np.random.default_rng(9)
    g, t = rng.standard_normal(w.shape), rng.standard_normal(w.shape)
    h = 1e-6
    fd_svd = (_svd_normalized(w + h * t) - _svd_normalized(w - h * t)) / (2 * h)
    for convention in ("constant_uv", "exact"):
        _, res = spectral_normalize_fwd(w, n_iter=60, tol=0.0, convention=convention)
        np.testing.assert_allclose(np.sum(spectral_normalize_bwd(res, g) * t), np.sum(g * fd_svd), rtol=1e-8)
    close = _gapped(10, s=(1.0, 0.95, 0.3, 0.1))
    computed = lambda z: spectral_normalize(z, n_iter=1, tol=0.0)  # noqa: E731
    fd = (computed(close + h * t) - computed(close - h * t)) / (2 * h)
    _, exact = spectral_normalize_fwd(close, n_iter=1, tol=0.0, convention="exact")
    _, const = spectral_normalize_fwd(close, n_iter=1, tol=0.0, convention="constant_uv")
    np.testing.assert_allclose(np.sum(spectral_normalize_bwd(exact, g) * t), np.sum(g * fd), rtol=1e-8)
    assert abs(np.sum(spectral_normalize_bwd(const, g) * t) - np.sum(g * fd)) > 1e-3 * abs(np.sum(g * fd))


def test_constant_uv_formula():
    """[PR-11] constant_uv VJP is (y_bar - <y_bar, y> u v^T) / sigma and the JVP its adjoint."""
    w = _gapped(11)
    y, res = spectral_normalize_fwd(w, n_iter=3, tol=0.0)
    g = np.random.default_rng(12).standard_normal(w.shape)
    sigma = float(res.sigma_max[0, 0])
    expected = (g - np.sum(g * y) * np.outer(res.u, res.v)) / sigma
    np.testing.assert_allclose(spectral_normalize_bwd(res, g), expected, rtol=1e-12)
    t = np.random.default_rng(13).standard_normal(w.shape)
    np.testing.assert_allclose(np.sum(spectral_normalize_jvp(res, t) * g), np.sum(t * spectral_normalize_bwd(res, g)),
                               rtol=1e-12)


@pytest.mark.parametrize("scale", [1e-170, 1e-30, 1.0, 1e30, 1e150])
def test_scale_invariance(scale):
    """[PR-11] W / sigma(W) does not depend on the scale of W, and its derivative scales as
    1/scale: tiny and huge matrices neither underflow nor overflow."""
    w = _gapped(14)
    g = np.random.default_rng(15).standard_normal(w.shape)
    y1, r1 = spectral_normalize_fwd(w, n_iter=5, tol=0.0, convention="exact")
    ys, rs = spectral_normalize_fwd(w * scale, n_iter=5, tol=0.0, convention="exact")
    np.testing.assert_allclose(ys, y1, rtol=1e-14)
    np.testing.assert_allclose(spectral_normalize_bwd(rs, g) * scale, spectral_normalize_bwd(r1, g), rtol=1e-12)
    np.testing.assert_allclose(float(rs.sigma_max[0, 0]) / scale, float(r1.sigma_max[0, 0]), rtol=1e-14)


def test_degenerate_and_non_finite():
    """[PR-13] W = 0 comes back unchanged (sigma = 0); a matrix holding NaN or inf comes out
    NaN with a NaN VJP, other matrices of the stack are unaffected (no floating-point warning)."""
    with np.errstate(all="raise"):
        y, res = spectral_normalize_fwd(np.zeros((2, 3)))
    np.testing.assert_array_equal(y, 0.0)
    assert float(res.sigma_max[0, 0]) == 0.0
    w = np.stack([_gapped(16), _gapped(17)])
    for bad in (math.nan, math.inf):
        wb = w.copy()
        wb[0, 1, 2] = bad
        with np.errstate(all="raise"):
            y, res = spectral_normalize_fwd(wb, convention="exact")
            x_bar = spectral_normalize_bwd(res, np.ones_like(w))
        assert np.isnan(y[0]).all() and np.isnan(x_bar[0]).all()
        np.testing.assert_array_equal(y[1], spectral_normalize(w[1]))


def test_default_u():
    u = reflip.to_numpy(default_u(7, xnp.float64, xnp))
    assert np.all(u > 0) and len(set(u.tolist())) == 7
    np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=1e-15)


def test_read_only_inputs():
    w, u = _gapped(18), np.ones(5)
    w.flags.writeable = False
    u.flags.writeable = False
    for convention in ("constant_uv", "exact"):
        _, res = spectral_normalize_fwd(w, u, convention=convention)
        spectral_normalize_bwd(res, w)
        spectral_normalize_jvp(res, w)
    np.testing.assert_array_equal(u, 1.0)


def test_array_api_strict_without_boolean_indexing():
    """[PR-11] the same numbers under array_api_strict with boolean indexing and data-dependent
    shapes off, early stopping included."""
    (strict,) = available_backends(("array_api_strict-nodds",))
    w = _gapped(19)
    g = np.random.default_rng(20).standard_normal(w.shape)
    for convention in ("constant_uv", "exact"):
        with strict.active():
            y, res = spectral_normalize_fwd(strict.asarray(w), n_iter=30, tol=1e-6, convention=convention)
            x_bar = reflip.to_numpy(spectral_normalize_bwd(res, strict.asarray(g)))
        y_np, res_np = spectral_normalize_fwd(w, n_iter=30, tol=1e-6, convention=convention)
        assert res.iterations == res_np.iterations < 30
        np.testing.assert_allclose(reflip.to_numpy(y), y_np, rtol=1e-14)
        np.testing.assert_allclose(x_bar, spectral_normalize_bwd(res_np, g), rtol=1e-12)


@pytest.mark.parametrize("convention", ["constant_uv", "exact"])
def test_a_step_exactly_tol_long_stops_the_iteration(convention):
    """``tol`` is "moves by at most tol": a step of exactly ``tol`` stops the iteration.

    W = 1 (4 x 1) and u_0 = e_1 make every quantity exact in binary: W^T u_0 = 1, v = 1,
    W v = (1, 1, 1, 1) of norm 2, so u_1 = (1/2, 1/2, 1/2, 1/2) and ||u_1 - u_0|| = 1 exactly
    (its squares are quarters). With tol = 1 the first step already satisfies the test; one ulp
    below, a second (zero-length) step is needed."""
    w, u0 = np.ones((4, 1)), np.eye(4)[0]
    for tol, expected in ((1.0, 1), (np.nextafter(1.0, 0.0), 2), (np.nextafter(1.0, 2.0), 1)):
        _, res = spectral_normalize_fwd(w, u0, n_iter=10, tol=float(tol), convention=convention)
        assert res.iterations == expected, (tol, res.iterations)
        np.testing.assert_array_equal(res.u, np.full(4, 0.5))
