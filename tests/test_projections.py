"""Projection and row-scaling tests outside the claim suite (tests/audit/test_claims.py runs the
claims): bad input, worked examples, NaN/inf, the convolution statement, and independent
autograd formulations as oracles of the VJPs."""
import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, make_jvp
from autograd.tracer import getval

import reflip
from reflip import (
    autograd_ops,
    linf_project,
    linf_project_bwd,
    linf_project_fwd,
    linf_project_jvp,
    norm_p_inf,
    op_norm_2,
    op_norm_inf,
    pinf_project,
    pinf_project_bwd,
    pinf_project_fwd,
    row_scale,
    row_scale_bwd,
    row_scale_fwd,
    row_scale_jvp,
    spectral_normalize,
)
from reflip.audit.projections import l1_ball_oracle
from reflip.projections import dual_exponent
from reflip.testing.backends import available_backends

OPS = {
    "linf_project": lambda w, **kw: linf_project(w, **kw),
    "linf_project_fwd": lambda w, **kw: linf_project_fwd(w, **kw),
    "pinf_project": lambda w, **kw: pinf_project(w, kw.pop("p", 2), **kw),
    "pinf_project_fwd": lambda w, **kw: pinf_project_fwd(w, kw.pop("p", 1), **kw),
    "row_scale": lambda w, **kw: row_scale(w, kw.pop("p", math.inf), **kw),
    "row_scale_fwd": lambda w, **kw: row_scale_fwd(w, kw.pop("p", 2), **kw),
}


@pytest.mark.parametrize(
    "w, kwargs, exc, words",
    [
        (np.zeros((2, 3), dtype=np.int64), {}, TypeError, "w must have dtype float32 or float64"),
        (np.zeros((2, 3), dtype=np.complex128), {}, TypeError, "w must have dtype float32 or float64"),
        (np.zeros((2, 3), dtype=bool), {}, TypeError, "w must have dtype float32 or float64"),
        (np.ones(()), {}, ValueError, r"w must have at least 1 dimension\(s\) \(rows along the last axis\)"),
        (np.zeros((0, 3)), {}, ValueError, "w must not be empty"),
        (np.zeros((2, 0)), {}, ValueError, "w must not be empty"),
        (np.zeros((2, 3)), {"radius": 0.0}, ValueError, "radius must be a finite number > 0, got 0.0"),
        (np.zeros((2, 3)), {"radius": -1}, ValueError, "radius must be a finite number > 0, got -1.0"),
        (np.zeros((2, 3)), {"radius": math.nan}, ValueError, "radius must be a finite number > 0"),
        (np.zeros((2, 3)), {"radius": math.inf}, ValueError, "radius must be a finite number > 0"),
        (np.zeros((2, 3)), {"radius": "1"}, TypeError, "radius must be a real number"),
        (np.zeros((2, 3)), {"radius": True}, TypeError, "radius must be a real number"),
        (np.zeros((2, 3)), {"radius": None}, TypeError, "radius must be a real number"),
        (np.zeros((2, 3)), {"radius": np.ones(1)}, TypeError, "radius must be a real number"),
        (np.zeros((2, 3), np.float32), {"radius": 1e-50}, ValueError, "not representable in float32"),
        (np.zeros((2, 3), np.float32), {"radius": 1e39}, ValueError, "not representable in float32"),
    ],
)
@pytest.mark.parametrize("op", sorted(OPS))
def test_bad_input(op, w, kwargs, exc, words):
    """[PR-1] [PR-7] [PR-10] invalid arguments raise errors naming the parameter and what was
    expected."""
    with pytest.raises(exc, match=words):
        OPS[op](w, **kwargs)


@pytest.mark.parametrize("p", [3, 0, -1, 1.5, -math.inf, math.nan])
@pytest.mark.parametrize("op", [pinf_project, pinf_project_fwd, row_scale, row_scale_fwd])
def test_bad_p_value(op, p):
    """[PR-7] p must be one of 1, 2, inf: another number is a wrong value."""
    with pytest.raises(ValueError, match=r"p must be 1, 2 or inf \(math.inf\), got"):
        op(np.zeros((2, 3)), p)


@pytest.mark.parametrize("p", ["inf", "2", "a", True, None, np.ones(1)])
@pytest.mark.parametrize("op", [pinf_project, pinf_project_fwd, row_scale, row_scale_fwd])
def test_bad_p_type(op, p):
    """[PR-7] a p that is not a number is a wrong type, as ``radius="a"`` is (issue 15)."""
    with pytest.raises(TypeError, match=r"p must be a real number, got"):
        op(np.zeros((2, 3)), p)


@pytest.mark.parametrize("threshold, exc", [("Exact", ValueError), ("constant", ValueError),
                                            (None, TypeError), (1, TypeError)])
def test_bad_threshold(threshold, exc):
    """A string that is not a convention is a wrong value, anything else a wrong type."""
    with pytest.raises(exc, match=r"threshold must be one of \('exact', 'detached'\)"):
        linf_project(np.zeros((2, 3)), threshold=threshold)


def test_not_an_array():
    with pytest.raises(TypeError, match="w must be an array"):
        linf_project([[1.0, 2.0]])


def test_cotangent_checked():
    _, res = linf_project_fwd(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"y_bar must have the shape \(2, 3\) of the primitive's output"):
        linf_project_bwd(res, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"w_dot must have the shape \(2, 3\) of the primitive's input"):
        linf_project_jvp(res, np.zeros(3))
    with pytest.raises(TypeError, match="y_bar must have dtype float32 or float64"):
        linf_project_bwd(res, np.zeros((2, 3), dtype=np.int32))
    for p in (1, 2, math.inf):
        _, res = pinf_project_fwd(np.zeros((2, 3)), p)
        with pytest.raises(ValueError, match=r"y_bar must have the shape \(2, 3\) of"):
            pinf_project_bwd(res, np.zeros((2, 4)))
    _, res = row_scale_fwd(np.zeros((2, 3)), 1)
    with pytest.raises(ValueError, match=r"w_dot must have the shape \(2, 3\) of"):
        row_scale_jvp(res, np.zeros((2, 4)))


@pytest.mark.parametrize(
    "v, r, expected",
    [
        ([3.0, 1.0], 1.0, [1.0, 0.0]),
        ([1.0, 1.0], 1.0, [0.5, 0.5]),
        ([2.0, -2.0, 1.0], 1.0, [0.5, -0.5, 0.0]),  # rho = 2, theta = (4 - 1)/2
        ([0.5, -0.25, 0.0], 1.0, [0.5, -0.25, 0.0]),  # inside: unchanged
        ([0.5, -0.5], 1.0, [0.5, -0.5]),  # on the sphere: unchanged
        ([4.0, 2.0, 1.0, 1.0], 2.0, [2.0, 0.0, 0.0, 0.0]),  # theta = 2
        ([-8.0], 0.25, [-0.25]),
    ],
)
def test_worked_examples(v, r, expected):
    """[PR-2] [PR-3] hand-computed projections onto the l1 ball."""
    y = linf_project(np.array(v), radius=r)
    np.testing.assert_array_equal(y, expected)


def test_theta_and_support_in_residuals():
    """[PR-3] the residuals expose the threshold of every row (0 inside) and the convention."""
    w = np.array([[2.0, -2.0, 1.0], [0.1, 0.2, 0.3]])
    _, res = linf_project_fwd(w, threshold="detached")
    np.testing.assert_array_equal(res.theta, [[1.5], [0.0]])
    np.testing.assert_array_equal(res.inside, [[False], [True]])
    np.testing.assert_array_equal(res.support, [[1, 1, 0], [1, 1, 1]])
    assert res.threshold == "detached"


def test_one_dimensional_is_one_row_and_stacks_are_rowwise():
    """[PR-1] a 1-d array is a single row; a stack of matrices is projected row by row."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 3, 5))
    y = linf_project(w)
    for idx in np.ndindex(2, 3):
        np.testing.assert_array_equal(linf_project(w[idx]), y[idx])
    assert float(op_norm_inf(y).max()) <= 1 + 1e-15


def test_rows_inside_are_bitwise_unchanged_and_large_rows_match_oracle():
    """[PR-1] [PR-13] long rows: inside ones come back bit for bit, the others match the
    bisection oracle."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 4096)) * np.array([[1e-5], [1e-3], [1.0], [10.0], [2e-4], [1e-4]])
    y = linf_project(w, radius=1.0)
    inside = np.abs(w).sum(-1) <= 1.0
    assert inside.any() and (~inside).any()
    np.testing.assert_array_equal(y[inside], w[inside])
    np.testing.assert_allclose(y, l1_ball_oracle(w, 1.0), rtol=0, atol=1e-12)


def test_float32_radius_is_rounded_to_the_dtype():
    """[PR-13] the radius is applied in the array's dtype."""
    w = np.full((1, 7), 0.5, np.float32)
    y = linf_project(w, radius=0.1)
    assert y.dtype == np.float32
    assert abs(float(np.abs(y.astype(np.float64)).sum()) - float(np.float32(0.1))) < 1e-7


def test_read_only_inputs_are_not_modified():
    """Inputs are never written: read-only arrays go through every function."""
    w = np.array([[3.0, -1.0, 0.5], [0.1, 0.1, 0.1]])
    w.flags.writeable = False
    g = np.ones_like(w)
    g.flags.writeable = False
    _, res = linf_project_fwd(w)
    linf_project_bwd(res, g)
    linf_project_jvp(res, g)
    for p in (1, 2, math.inf):
        _, res = pinf_project_fwd(w, p)
        pinf_project_bwd(res, g)
        _, res = row_scale_fwd(w, p)
        row_scale_bwd(res, g)
        row_scale_jvp(res, g)
    np.testing.assert_array_equal(w, [[3.0, -1.0, 0.5], [0.1, 0.1, 0.1]])


# --------------------------------------------------------------------------- NaN / inf


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("op", ["linf", "l2", "row_scale_l1", "row_scale_linf"])
def test_non_finite_rows_become_nan(op, bad):
    """[PR-13] a row holding NaN or +-inf comes out NaN, with a NaN VJP row; other rows are
    unaffected (bit for bit equal to projecting them alone)."""
    fwd, bwd = {
        "linf": (lambda w: linf_project_fwd(w), linf_project_bwd),
        "l2": (lambda w: pinf_project_fwd(w, 2), pinf_project_bwd),
        "row_scale_l1": (lambda w: row_scale_fwd(w, math.inf), row_scale_bwd),
        "row_scale_linf": (lambda w: row_scale_fwd(w, 1), row_scale_bwd),
    }[op]
    w = np.array([[3.0, -1.0, 0.5], [1.0, bad, 0.0], [0.1, 0.2, -0.3]])
    with np.errstate(all="raise"):  # and no floating-point warning on the way
        y, res = fwd(w)
        g = bwd(res, np.ones_like(w))
    assert np.isnan(y[1]).all() and np.isnan(g[1]).all()
    good = np.array([0, 2])
    y_good, res_good = fwd(w[good])
    np.testing.assert_array_equal(y[good], y_good)
    np.testing.assert_array_equal(g[good], bwd(res_good, np.ones_like(w[good])))


def test_clipping_is_entrywise_for_non_finite():
    """[PR-9] [PR-13] p = 1 clips +-inf to +-r (derivative 0) and keeps NaN (NaN derivative)."""
    w = np.array([[math.inf, -math.inf, math.nan, 0.5, 3.0]])
    y, res = pinf_project_fwd(w, 1, radius=2.0)
    np.testing.assert_array_equal(y, [[2.0, -2.0, math.nan, 0.5, 2.0]])
    g = pinf_project_bwd(res, np.ones_like(w))
    np.testing.assert_array_equal(g, [[0.0, 0.0, math.nan, 1.0, 0.0]])


# --------------------------------------------------------------------------- independent oracles


def _plain_l1_ball(v, r, detached=False):
    """The sort-based projection of one row written plainly in autograd.numpy [PR-3]: autograd
    differentiates through the sort, the cumulative sum and the gathered threshold."""
    a = anp.abs(v)
    if float(getval(anp.sum(a))) <= r:
        return v
    mu = anp.sort(a)[::-1]
    c = anp.cumsum(mu)
    k = np.arange(1, v.shape[0] + 1)
    rho = int(np.max(np.where(getval(mu) * k > getval(c) - r, k, 0)))
    theta = (c[rho - 1] - r) / rho
    if detached:
        theta = getval(theta)
    return anp.sign(v) * anp.maximum(a - theta, 0.0)


def _plain_rows(w, r, detached=False):
    return anp.stack([_plain_l1_ball(w[i], r, detached) for i in range(w.shape[0])])


def _tie_free_rows(seed, m=6, n=7):
    """Random rows, some inside, some outside, with every |w_ij| well away from its threshold."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((m, n)) * rng.choice([0.05, 0.1, 1.0, 3.0], size=(m, 1))
    return w


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threshold", ["exact", "detached"])
def test_vjp_and_jvp_match_autograd_of_a_plain_formulation(seed, threshold):
    """[PR-4] [PR-5] the hand-written VJP/JVP equal autograd's derivative of the plain
    sort-based formula (with the threshold detached for "detached")."""
    w = _tie_free_rows(seed)
    rng = np.random.default_rng(seed + 100)
    g, t = rng.standard_normal(w.shape), rng.standard_normal(w.shape)
    detached = threshold == "detached"
    expected = grad(lambda z: anp.sum(_plain_rows(z, 1.0, detached) * g))(w)
    _, res = linf_project_fwd(w, threshold=threshold)
    np.testing.assert_allclose(linf_project_bwd(res, g), expected, rtol=1e-13, atol=1e-13)
    _, jvp = make_jvp(lambda z: _plain_rows(z, 1.0, detached))(w)(t)
    np.testing.assert_allclose(linf_project_jvp(res, t), jvp, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(linf_project(w), _plain_rows(w, 1.0), rtol=1e-15, atol=1e-15)


def test_detached_differs_exactly_by_the_mean_term():
    """[PR-5] exact - detached = -s_i mean_{j in S} s_j g_j on the support of rows outside, 0 on
    rows inside; and the difference vanishes when the signed mean of g over S is 0."""
    w = np.array([[2.0, -2.0, 1.0], [0.2, -0.3, 0.1]])
    g = np.array([[1.0, 3.0, 5.0], [1.0, 2.0, 3.0]])
    _, exact = linf_project_fwd(w)
    _, detached = linf_project_fwd(w, threshold="detached")
    diff = linf_project_bwd(exact, g) - linf_project_bwd(detached, g)
    m = (1.0 * 1.0 + (-1.0) * 3.0) / 2  # S = {0, 1}, s = (1, -1)
    np.testing.assert_array_equal(diff, [[-m, m, 0.0], [0.0, 0.0, 0.0]])
    g_balanced = np.array([[1.0, 1.0, 5.0], [1.0, 2.0, 3.0]])  # s_S . g_S = 0
    np.testing.assert_array_equal(linf_project_bwd(exact, g_balanced), linf_project_bwd(detached, g_balanced))
    # Along t = s_S only theta moves: the true change of the output is 0, detached says s_S.
    t = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(linf_project_jvp(exact, t), 0.0)
    np.testing.assert_array_equal(linf_project_jvp(detached, t), t)


def test_autograd_bridge():
    """[PR-4] reflip.autograd_ops.linf_project differentiates with the hand-written VJP."""
    w = _tie_free_rows(7)
    g = np.random.default_rng(8).standard_normal(w.shape)
    got = grad(lambda z: anp.sum(autograd_ops.linf_project(z, radius=1.0) * g))(w)
    _, res = linf_project_fwd(w)
    np.testing.assert_array_equal(got, linf_project_bwd(res, g))
    got = grad(lambda z: anp.sum(autograd_ops.pinf_project(z, p=2, radius=0.5) * g))(w)
    _, res = pinf_project_fwd(w, 2, radius=0.5)
    np.testing.assert_array_equal(got, pinf_project_bwd(res, g))


def test_autograd_check_grads_to_second_order():
    """[PR-4] through the bridge, forward and reverse mode agree with autograd's finite
    differences to second order (the Hessian is 0 off the kinks: residuals are piecewise
    constant, second_order=True in the registry)."""
    from autograd.test_util import check_grads

    w = _tie_free_rows(14, m=3, n=5)
    check_grads(lambda z: autograd_ops.linf_project(z, radius=1.0), modes=["fwd", "rev"], order=2)(w)


# --------------------------------------------------------------------------- p,inf and scalings


def test_pinf_projection_cases():
    """[PR-7] [PR-8] [PR-9] p = inf is linf_project (bit for bit); p = 2 rescales long rows;
    p = 1 clips; each output satisfies ||y||_{p,inf} <= r."""
    w = _tie_free_rows(3)
    np.testing.assert_array_equal(pinf_project(w, math.inf, radius=0.5), linf_project(w, radius=0.5))
    y2 = pinf_project(w, 2, radius=0.5)
    norms = np.linalg.norm(w, axis=-1, keepdims=True)
    np.testing.assert_allclose(y2, np.where(norms <= 0.5, w, w * 0.5 / norms), rtol=1e-15)
    np.testing.assert_array_equal(pinf_project(w, 1, radius=0.5), np.clip(w, -0.5, 0.5))
    for p in (1, 2, math.inf):
        assert float(norm_p_inf(pinf_project(w, p, radius=0.5), p)) <= 0.5 * (1 + 1e-14)
    assert dual_exponent(1) == math.inf and dual_exponent(2) == 2 and dual_exponent(math.inf) == 1


def test_pinf_jacobians_match_autograd():
    """[PR-8] [PR-9] the l2-ball and clipping VJPs equal autograd's derivative of plain
    formulas."""
    w = _tie_free_rows(4)
    g = np.random.default_rng(5).standard_normal(w.shape)

    def l2(z):
        n = anp.sqrt(anp.sum(z * z, axis=-1, keepdims=True))
        return anp.where(getval(n) <= 1.0, z, z / n)

    _, res = pinf_project_fwd(w, 2)
    np.testing.assert_allclose(pinf_project_bwd(res, g), grad(lambda z: anp.sum(l2(z) * g))(w), rtol=1e-13)
    _, res = pinf_project_fwd(w, 1)
    np.testing.assert_array_equal(pinf_project_bwd(res, g), grad(lambda z: anp.sum(anp.clip(z, -1, 1) * g))(w))


def test_row_scale_is_not_a_projection():
    """[PR-10] the worked counterexample v = (2, 1), r = 1: scaling vs projection."""
    v = np.array([2.0, 1.0])
    np.testing.assert_allclose(row_scale(v, math.inf), [2 / 3, 1 / 3], rtol=1e-15)
    np.testing.assert_array_equal(linf_project(v), [1.0, 0.0])
    np.testing.assert_array_equal(row_scale(v, 1), [1.0, 0.5])
    np.testing.assert_array_equal(pinf_project(v, 1), [1.0, 1.0])
    np.testing.assert_array_equal(row_scale(v, 2), pinf_project(v, 2))  # the same map in l2


@pytest.mark.parametrize("p", [1, 2, math.inf])
def test_row_scale_jacobian_matches_autograd(p):
    """[PR-10] VJP and JVP of the scaling against autograd of r w / ||w||_q (q = dual of p);
    for q != 2 the Jacobian is not symmetric, so VJP and JVP differ."""
    w = _tie_free_rows(9)
    rng = np.random.default_rng(10)
    g, t = rng.standard_normal(w.shape), rng.standard_normal(w.shape)
    q = dual_exponent(p)

    def scale(z):
        if q == 1:
            n = anp.sum(anp.abs(z), axis=-1, keepdims=True)
        elif q == 2:
            n = anp.sqrt(anp.sum(z * z, axis=-1, keepdims=True))
        else:
            n = anp.max(anp.abs(z), axis=-1, keepdims=True)
        return anp.where(getval(n) <= 1.0, z, z / n)

    _, res = row_scale_fwd(w, p)
    expected = grad(lambda z: anp.sum(scale(z) * g))(w)
    np.testing.assert_allclose(row_scale_bwd(res, g), expected, rtol=1e-12, atol=1e-15)
    _, jvp = make_jvp(scale)(w)(t)
    np.testing.assert_allclose(row_scale_jvp(res, t), jvp, rtol=1e-12, atol=1e-15)
    if q != 2:
        assert not np.allclose(row_scale_bwd(res, t), row_scale_jvp(res, t))


def test_array_api_strict_without_boolean_indexing():
    """[PR-3] the cores need neither boolean indexing nor data-dependent shapes: the same bits as
    NumPy under array_api_strict with both turned off."""
    (strict,) = available_backends(("array_api_strict-nodds",))
    w = _tie_free_rows(11)
    g = np.random.default_rng(12).standard_normal(w.shape)
    with strict.active():
        xs, gs = strict.asarray(w), strict.asarray(g)
        y, res = linf_project_fwd(xs)
        x_bar = linf_project_bwd(res, gs)
        others = [pinf_project(xs, p) for p in (1, 2, math.inf)] + [row_scale(xs, p) for p in (1, 2, math.inf)]
    _, res_np = linf_project_fwd(w)
    np.testing.assert_array_equal(reflip.to_numpy(y), linf_project(w))
    np.testing.assert_array_equal(reflip.to_numpy(x_bar), linf_project_bwd(res_np, g))
    expected = [pinf_project(w, p) for p in (1, 2, math.inf)] + [row_scale(w, p) for p in (1, 2, math.inf)]
    for got, want in zip(others, expected, strict=True):
        np.testing.assert_array_equal(reflip.to_numpy(got), want)


# --------------------------------------------------------------------------- convolutions


def _conv_matrix(kernel, size, stride=1, pad=1):
    """The matrix of a 2-d convolution (cross-correlation) with zero padding, acting on
    ``(c_in, size, size)`` inputs flattened."""
    c_out, c_in, kh, kw = kernel.shape
    out = (size + 2 * pad - kh) // stride + 1
    mat = np.zeros((c_out, out, out, c_in, size, size))
    for o, i, a, b in np.ndindex(c_out, c_in, kh, kw):
        for p, q in np.ndindex(out, out):
            y, x = stride * p + a - pad, stride * q + b - pad
            if 0 <= y < size and 0 <= x < size:
                mat[o, p, q, i, y, x] += kernel[o, i, a, b]
    return mat.reshape(c_out * out * out, c_in * size * size)


@pytest.mark.parametrize("stride", [1, 2])
def test_linf_projection_of_a_reshaped_kernel_bounds_the_convolution(stride):
    """[PR-12] projecting the reshaped kernel onto ||K_mat||_inf <= r makes the convolution's
    l_inf operator norm <= r, with equality (an interior output position sees the whole
    kernel)."""
    kernel = np.random.default_rng(13).standard_normal((2, 3, 3, 3))
    k_mat = linf_project(kernel.reshape(2, -1), radius=1.0)
    conv = _conv_matrix(k_mat.reshape(kernel.shape), size=6, stride=stride)
    assert float(op_norm_inf(conv)) <= 1.0 + 1e-12
    np.testing.assert_allclose(float(op_norm_inf(conv)), float(op_norm_inf(k_mat)), rtol=1e-12)


def test_spectral_normalization_of_a_reshaped_kernel_does_not_bound_the_convolution():
    """[PR-12] the 2-norm analogue fails: ones(3x3) spectrally normalized as a 1 x 9 matrix has
    ||K_mat||_2 = 1, but the convolution's 2-norm approaches sqrt(9) = 3."""
    k_mat = spectral_normalize(np.ones((1, 9)), tol=0.0)
    np.testing.assert_allclose(float(op_norm_2(k_mat)), 1.0, rtol=1e-12)
    conv = _conv_matrix(k_mat.reshape(1, 1, 3, 3), size=16)
    norm = float(op_norm_2(conv))
    assert 2.5 < norm <= 3.0 + 1e-12
