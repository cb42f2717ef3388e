"""Tests that kill the mutants mutmut found surviving a module's own tests (docs/mutation.md
lists each survivor and the test here that kills it, or why it is equivalent).

Most survivors were argument checks whose bound or parameter name could change without any
test noticing, and device placement that only a second device shows.
"""
import array_api_strict
import numpy as np
import pytest

from reflip.layouts import (
    MAX_MIN_LAYOUTS,
    group_size_from_num_groups,
    max_min_indices,
    max_min_layout,
    num_groups_from_group_size,
    to_reflip_layout,
)

# ---- layouts ---------------------------------------------------------------------------------


def test_max_min_indices_width_bounds_and_name():
    """``n`` is an even integer >= 2: 0 is refused by the lower bound (not accepted as an empty
    layout), and the messages name ``n``."""
    with pytest.raises(ValueError, match=r"^n must be >= 2, got 0$"):
        max_min_indices("contiguous_min_max", 0)
    with pytest.raises(TypeError, match=r"^n must be an integer"):
        max_min_indices("contiguous_min_max", 4.0)
    assert max_min_indices("maxes_then_mins", 2) == ([0, 1], [1, 0])


def test_group_size_from_num_groups_bounds_and_names():
    """Both arguments are integers >= 1 (1 is allowed, 0 refused with ``ValueError``, never a
    ``ZeroDivisionError``), and each message names its parameter."""
    assert group_size_from_num_groups(1, 1) == 1
    assert group_size_from_num_groups(4, 1) == 4
    assert num_groups_from_group_size(6, 3) == 2
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0$"):
        group_size_from_num_groups(0, 1)
    with pytest.raises(ValueError, match=r"^num_groups must be >= 1, got 0$"):
        group_size_from_num_groups(4, 0)
    with pytest.raises(TypeError, match=r"^n must be an integer"):
        group_size_from_num_groups("4", 2)
    with pytest.raises(TypeError, match=r"^num_groups must be an integer"):
        group_size_from_num_groups(4, 2.0)


@pytest.mark.parametrize("fn", [max_min_layout, to_reflip_layout])
def test_layout_messages_describe_the_feature_axis(fn):
    with pytest.raises(ValueError, match=r"at least 1 dimension\(s\) \(the feature axis\)"):
        fn(np.float64(1.0), "contiguous_min_max")


@pytest.mark.parametrize("layout", MAX_MIN_LAYOUTS)
def test_layouts_stay_on_the_input_device(layout):
    """The gather indices are made on the input's device: on a second array_api_strict device
    the result is there too (indices on the default device would raise)."""
    dev = array_api_strict.Device("device1")
    x = array_api_strict.asarray([[3.0, 1.0, -2.0, 5.0], [0.5, 0.25, 4.0, -1.0]], device=dev)
    want = max_min_layout(np.asarray([[3.0, 1.0, -2.0, 5.0], [0.5, 0.25, 4.0, -1.0]]), layout)
    y = max_min_layout(x, layout)
    assert y.device == dev
    np.testing.assert_array_equal(np.asarray(array_api_strict.asarray(y, device=array_api_strict.Device("CPU_DEVICE"))),
                                  want)
    z = to_reflip_layout(y, layout)
    assert z.device == dev


# ---- projections -----------------------------------------------------------------------------

import math  # noqa: E402
import warnings  # noqa: E402

import reflip._fast.numpy_rows as numpy_rows  # noqa: E402
from reflip import (  # noqa: E402
    linf_project,
    linf_project_bwd,
    linf_project_fwd,
    linf_project_jvp,
    pinf_project,
    pinf_project_bwd,
    pinf_project_fwd,
    pinf_project_jvp,
    row_scale,
    row_scale_bwd,
    row_scale_fwd,
    row_scale_jvp,
)

_P = (1.0, 2.0, math.inf)
_OPS = {
    "linf_exact": (lambda w: linf_project_fwd(w, radius=0.7), linf_project_bwd, linf_project_jvp,
                   lambda w: linf_project(w, radius=0.7)),
    "linf_detached_fwd": (lambda w: linf_project_fwd(w, radius=0.7, threshold="detached"), None, None,
                          lambda w: linf_project(w, radius=0.7, threshold="detached")),
    **{f"pinf_{p}": (lambda w, p=p: pinf_project_fwd(w, p, radius=0.7), pinf_project_bwd, pinf_project_jvp,
                     lambda w, p=p: pinf_project(w, p, radius=0.7)) for p in _P},
    **{f"row_scale_{p}": (lambda w, p=p: row_scale_fwd(w, p, radius=0.7), row_scale_bwd, row_scale_jvp,
                          lambda w, p=p: row_scale(w, p, radius=0.7)) for p in _P},
}


@pytest.mark.parametrize("name", [n for n in _OPS if _OPS[n][1] is not None])
def test_projection_derivatives_on_a_stack(name):
    """VJP and JVP of every projection and every ``p`` against float64 central differences of
    the forward, on a 3-d stack (a reduction along the wrong axis shows only there) of
    tie-free rows (the kinks are a set of measure zero)."""
    fwd, bwd, jvp, fun = _OPS[name]
    rng = np.random.default_rng(3)
    w = rng.standard_normal((2, 3, 4))
    w[0, 1] *= 0.05  # a row inside the ball
    _, res = fwd(w)
    y_bar, v = rng.standard_normal(w.shape), rng.standard_normal(w.shape)
    h = 1e-6
    fd = (np.asarray(fun(w + h * v)) - np.asarray(fun(w - h * v))) / (2 * h)
    np.testing.assert_allclose(np.asarray(jvp(res, v)), fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(np.sum(np.asarray(bwd(res, y_bar)) * v), np.sum(y_bar * fd), rtol=1e-7)


@pytest.mark.parametrize("name", sorted(_OPS))
@pytest.mark.parametrize("xp_name", ["numpy", "array_api_strict"])
def test_projections_keep_float32(name, xp_name):
    """The radius is applied in the array's dtype: a float32 input gives a float32 output (a
    float64 radius array would promote it)."""
    w = np.random.default_rng(4).standard_normal((3, 5)).astype(np.float32)
    if xp_name == "array_api_strict":
        w = array_api_strict.asarray(w)
    assert _OPS[name][3](w).dtype == w.dtype


def test_projection_conventions_at_kinks():
    """[PR-4], [PR-8], [PR-9], [PR-10] (proofs/projections.md): a row exactly on the sphere
    counts as inside (VJP = identity), an entry exactly at the threshold is off the support, an
    entry with ``|v_i| = r`` is clipped with derivative 1."""
    y_bar = np.array([[0.25, -1.0, 2.0, 0.5]])
    on_l1 = np.array([[0.5, -0.25, 0.125, 0.125]])  # ||.||_1 = 1 exactly
    on_l2 = np.array([[0.5, 0.5, -0.5, 0.5]])  # ||.||_2 = 1 exactly
    on_linf = np.array([[1.0, -0.5, 0.25, 0.0]])  # ||.||_inf = 1 exactly
    for fwd, bwd, w in [(lambda w: linf_project_fwd(w), linf_project_bwd, on_l1),
                        (lambda w: pinf_project_fwd(w, math.inf), pinf_project_bwd, on_l1),
                        (lambda w: pinf_project_fwd(w, 2), pinf_project_bwd, on_l2),
                        (lambda w: row_scale_fwd(w, math.inf), row_scale_bwd, on_l1),
                        (lambda w: row_scale_fwd(w, 2), row_scale_bwd, on_l2),
                        (lambda w: row_scale_fwd(w, 1), row_scale_bwd, on_linf)]:
        y, res = fwd(w)
        np.testing.assert_array_equal(y, w)
        np.testing.assert_array_equal(bwd(res, y_bar), y_bar)
    # Clipping (p = 1): |v_i| = r inside (derivative 1), |v_i| > r clipped (derivative 0).
    _, res = pinf_project_fwd(np.array([[1.0, -0.5, 2.0, -3.0]]), 1)
    np.testing.assert_array_equal(pinf_project_bwd(res, y_bar), [[0.25, -1.0, 0.0, 0.0]])
    # l1 ball: [3, 1] onto r = 2 has theta = 1 = |v_2|: v_2 is off the support, so S = {1} and
    # the projection (2, 0) is locally constant: J = 0.
    for fwd, bwd in [(lambda w: linf_project_fwd(w, radius=2.0), linf_project_bwd),
                     (lambda w: pinf_project_fwd(w, math.inf, radius=2.0), pinf_project_bwd)]:
        y, res = fwd(np.array([[3.0, 1.0]]))
        np.testing.assert_array_equal(y, [[2.0, 0.0]])
        np.testing.assert_array_equal(bwd(res, np.array([[1.0, 0.0]])), [[0.0, 0.0]])


@pytest.mark.parametrize("threshold", ["exact", "detached"])
def test_row_blocks_path_equals_the_core(threshold, monkeypatch):
    """The NumPy row-block path of the l_inf projection (arrays above ``BLOCK`` entries; shrunk
    here to 8) gives the core's result and residuals, hence its VJP and JVP."""
    rng = np.random.default_rng(6)
    w = rng.standard_normal((2, 7, 5))
    w[1, 3] *= 0.01
    y_bar = rng.standard_normal(w.shape)
    want_y, want_res = linf_project_fwd(w, radius=0.6, threshold=threshold)
    want_p = pinf_project(w, math.inf, radius=0.6)
    monkeypatch.setattr(numpy_rows, "BLOCK", 8)
    y, res = linf_project_fwd(w, radius=0.6, threshold=threshold)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(linf_project(w, radius=0.6, threshold=threshold), want_y)
    np.testing.assert_array_equal(pinf_project(w, math.inf, radius=0.6), want_p)
    np.testing.assert_array_equal(linf_project_bwd(res, y_bar), linf_project_bwd(want_res, y_bar))
    np.testing.assert_array_equal(linf_project_jvp(res, y_bar), linf_project_jvp(want_res, y_bar))


def test_projection_messages_name_their_parameter():
    w = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"^threshold must be one of"):
        linf_project_fwd(w, threshold="exakt")
    _, res = row_scale_fwd(w, 2)
    with pytest.raises(ValueError, match=r"^y_bar "):
        row_scale_bwd(res, np.ones((3, 2)))
    for p in (1, 2, math.inf):
        _, res = pinf_project_fwd(w, p)
        with pytest.raises(ValueError, match=r"^w_dot "):
            pinf_project_jvp(res, np.ones((3, 2)))


def test_clipping_compares_with_the_radius_in_the_arrays_dtype():
    """[PR-9] The radius is rounded to the array's dtype before the comparison: float32(0.1) is
    above 0.1, so an entry equal to float32(0.1) is at the radius (inside, derivative 1), not
    outside (derivative 0) as a comparison with the float64 radius would say."""
    r32 = np.float32(0.1)
    assert float(r32) > 0.1
    w = np.array([[r32, 0.05, 0.3]], dtype=np.float32)
    y, res = pinf_project_fwd(w, 1, radius=0.1)
    np.testing.assert_array_equal(y, np.array([[r32, 0.05, r32]], dtype=np.float32))
    np.testing.assert_array_equal(pinf_project_bwd(res, np.ones_like(w)), [[1.0, 1.0, 0.0]])


def test_radius_overflow_is_refused_without_a_warning():
    """A radius that overflows float32 is refused with ``ValueError``; the overflow of the
    rounding that detects it is expected and must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="not representable in float32"):
            pinf_project(np.ones((2, 3), dtype=np.float32), 2, radius=1e300)


# ---- norms: the operator norms of a network layer --------------------------------------------

from reflip.norms import check_pq, operator_norm, operator_norms  # noqa: E402


def test_check_pq_names_and_defaults():
    """``q = None`` means ``q = p``; each message names its own parameter."""
    assert check_pq(1) == (1.0, 1.0)
    assert check_pq(math.inf, None) == (math.inf, math.inf)
    with pytest.raises(TypeError, match=r"^p must be a real number"):
        check_pq("2", 2)
    with pytest.raises(TypeError, match=r"^q must be a real number"):
        check_pq(2, "2")
    with pytest.raises(ValueError, match=r"^p must be 1, 2 or inf"):
        check_pq(3)
    with pytest.raises(ValueError, match=r"^q must be 1, 2 or inf"):
        check_pq(2, 3)


def test_operator_norm_defaults_and_bad_shapes():
    """[NN-3] The default pair is (2, 2), the largest singular value; ``w`` is one matrix or
    one row, and the messages name ``w`` and its shape."""
    w = np.random.default_rng(8).standard_normal((3, 4))
    assert operator_norm(w) == pytest.approx(np.linalg.svd(w, compute_uv=False)[0], rel=1e-13)
    with pytest.raises(ValueError, match=r"^w must have at least 1 dimension"):
        operator_norm(np.float64(2.0))
    with pytest.raises(ValueError, match=r"^w must be one matrix \(m, n\) or one row \(n,\), got shape \(2, 2, 2\)$"):
        operator_norm(np.ones((2, 2, 2)))


@pytest.mark.parametrize("xp_name", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("pq", [(2.0, 2.0), (1.0, 1.0), (2.0, math.inf)])
def test_operator_norms_nan_keeps_dtype_and_namespace(pq, dtype, xp_name):
    """[NN-14] A matrix holding NaN has norm NaN, in the input's dtype, on any namespace."""
    w = np.random.default_rng(9).standard_normal((2, 3, 3)).astype(dtype)
    w[0, 1, 1] = np.nan
    xp = np if xp_name == "numpy" else array_api_strict
    got = operator_norms(xp.asarray(w), *pq, xp)
    assert got.dtype == xp.asarray(w).dtype
    got = np.asarray(got)
    assert np.isnan(got[0]) and np.isfinite(got[1])


# ---- spectral normalization ------------------------------------------------------------------

from reflip import spectral_normalize, spectral_normalize_bwd, spectral_normalize_fwd, spectral_normalize_jvp  # noqa: E402
from reflip.spectral import default_u  # noqa: E402


def _spectral_stack(seed=13):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3, 4, 3))


@pytest.mark.parametrize("convention", ["exact", "constant_uv"])
@pytest.mark.parametrize("n_iter", [1, 3])
def test_spectral_derivatives_before_convergence_on_a_stack(convention, n_iter):
    """[PR-11] Before convergence (a few iterations, ``tol=0``: no early stop), on a 3-d stack:
    ``exact``'s JVP and VJP are the derivative of the computed map (central differences of the
    forward, whose start vector does not depend on ``W``); ``constant_uv``'s are that of
    ``W / (u^T W v)`` with the residuals' ``u``, ``v`` held fixed."""
    w = _spectral_stack()
    rng = np.random.default_rng(14)
    v, y_bar = rng.standard_normal(w.shape), rng.standard_normal(w.shape)
    _, res = spectral_normalize_fwd(w, n_iter=n_iter, tol=0.0, convention=convention)
    if convention == "exact":
        def f(a):
            return np.asarray(spectral_normalize(a, n_iter=n_iter, tol=0.0, convention="exact"))
    else:
        u, vv = np.asarray(res.u), np.asarray(res.v)

        def f(a):
            return a / np.einsum("bi,bij,bj->b", u, a, vv)[:, None, None]
    h = 1e-6
    fd = (f(w + h * v) - f(w - h * v)) / (2 * h)
    np.testing.assert_allclose(np.asarray(spectral_normalize_jvp(res, v)), fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.sum(np.asarray(spectral_normalize_bwd(res, y_bar)) * v), np.sum(y_bar * fd),
                               rtol=1e-7)


def test_spectral_iterations_and_documented_defaults():
    """``iterations`` is the number run: ``n_iter`` with ``tol=0`` (default 50), fewer when the
    default ``tol = sqrt(eps(dtype))`` stops it; float32 stops at its own, larger, tolerance."""
    w = _spectral_stack()[0]
    assert spectral_normalize_fwd(w, n_iter=7, tol=0.0)[1].iterations == 7
    assert spectral_normalize_fwd(w, tol=0.0)[1].iterations == 50
    np.testing.assert_array_equal(spectral_normalize(w, tol=0.0), spectral_normalize(w, n_iter=50, tol=0.0))
    for dtype in (np.float32, np.float64):
        wd = w.astype(dtype)
        default = spectral_normalize_fwd(wd, n_iter=1000)[1].iterations
        explicit = spectral_normalize_fwd(wd, n_iter=1000, tol=math.sqrt(np.finfo(dtype).eps))[1].iterations
        assert default == explicit < 1000


def test_spectral_tol_zero_never_stops_early():
    """``tol = 0`` runs every iteration, even on a rank-one matrix whose iterate is a fixed
    point after the first step."""
    w = np.outer([1.0, 2.0, 2.0], [0.5, 0.5, 0.5, 0.5])
    assert spectral_normalize_fwd(w, n_iter=6, tol=0.0)[1].iterations == 6


def test_spectral_stops_per_matrix_of_a_stack():
    """The stopping test is per matrix (every ``||u_next - u|| <= tol``): a stack of copies of
    one matrix stops after as many iterations as the matrix alone."""
    w = _spectral_stack()[1]
    alone = spectral_normalize_fwd(w, n_iter=1000)[1].iterations
    assert spectral_normalize_fwd(np.stack([w] * 64), n_iter=1000)[1].iterations == alone


def test_spectral_scale_is_per_matrix():
    """Each matrix of a stack is scaled by its own largest entry: a huge and a tiny matrix in one
    stack are both normalized (a common scale would underflow the tiny one to zero)."""
    w = _spectral_stack()[:2].copy()
    w[0] *= 1e300
    w[1] *= 1e-300
    y = np.asarray(spectral_normalize(w, n_iter=200))
    for k in range(2):
        np.testing.assert_allclose(np.linalg.svd(y[k], compute_uv=False)[0], 1.0, rtol=1e-6)


def test_spectral_default_start_vector_is_the_documented_one():
    """``default_u``: ``u_i = 1 + frac(i phi)``, ``phi = (sqrt 5 - 1) / 2``, normalized (its
    docstring; the start fixes every result before convergence)."""
    phi = (math.sqrt(5) - 1) / 2
    want = np.array([1 + (i * phi) % 1.0 for i in range(1, 8)])
    np.testing.assert_allclose(np.asarray(default_u(7, np.float64, np)), want / np.linalg.norm(want), rtol=1e-15)


def test_spectral_u_is_checked_with_w():
    """``u`` is an argument of its own: a non-array or another library's array is refused with
    ``TypeError`` naming ``u``."""
    w = np.ones((3, 2))
    with pytest.raises(TypeError, match=r"\bu\b"):
        spectral_normalize_fwd(w, u=[1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match=r"^w, u must be arrays of one array library"):
        spectral_normalize_fwd(w, u=array_api_strict.ones(3, dtype=array_api_strict.float64))
    with pytest.raises(TypeError, match=r"^w, u must be arrays of one array library"):
        spectral_normalize_fwd(array_api_strict.ones((3, 2), dtype=array_api_strict.float64), u=np.ones(3))


def test_spectral_trace_only_for_the_exact_convention():
    """The iterates are kept for ``convention="exact"`` only (SpectralNormResiduals: "empty
    otherwise"): constant_uv holds no trace of ``n_iter`` vectors."""
    w = _spectral_stack()
    assert spectral_normalize_fwd(w, n_iter=5)[1].trace == ()
    assert len(spectral_normalize_fwd(w, n_iter=5, convention="exact")[1].trace[0]) == 6


def test_spectral_normalize_default_n_iter_is_50():
    """On a slowly converging matrix (``s_2 / s_1 = 0.99``) every iteration changes the result,
    so the default count shows: 50, for ``spectral_normalize`` as for its ``_fwd``."""
    rng = np.random.default_rng(15)
    u, _ = np.linalg.qr(rng.standard_normal((4, 3)))
    v, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    w = (u * np.array([1.0, 0.99, 0.5])) @ v.T
    fifty = np.asarray(spectral_normalize(w, n_iter=50, tol=0.0))
    assert not np.array_equal(fifty, np.asarray(spectral_normalize(w, n_iter=51, tol=0.0)))
    np.testing.assert_array_equal(np.asarray(spectral_normalize(w, tol=0.0)), fifty)
    np.testing.assert_array_equal(np.asarray(spectral_normalize_fwd(w, tol=0.0)[0]), fifty)


@pytest.mark.parametrize("convention", ["exact", "constant_uv"])
def test_spectral_jvp_of_a_zero_tangent_is_zero(convention):
    """The JVP is linear: a zero tangent gives exactly zero (no 0/0 in the u-step)."""
    w = _spectral_stack()
    _, res = spectral_normalize_fwd(w, n_iter=4, tol=0.0, convention=convention)
    np.testing.assert_array_equal(np.asarray(spectral_normalize_jvp(res, np.zeros_like(w))), 0.0)


# ---- groupsort -------------------------------------------------------------------------------

from reflip import full_sort, group_sort, group_sort_fwd, max_min  # noqa: E402


def test_group_sort_default_group_size_is_two():
    """``group_size=2`` by default (MaxMin): on a width of 6, which 3 divides too."""
    x = np.array([[3.0, 1.0, -2.0, 5.0, 0.5, 0.25]])
    np.testing.assert_array_equal(group_sort(x), max_min(x))
    np.testing.assert_array_equal(group_sort_fwd(x)[0], max_min(x))


def test_group_sort_lists_the_divisors():
    with pytest.raises(ValueError, match=r"divisors of 6: \[1, 2, 3, 6\]"):
        group_sort(np.ones((2, 6)), 4)


def test_full_sort_message_names_x_and_the_feature_axis():
    with pytest.raises(ValueError, match=r"^x must have at least 1 dimension\(s\) \(the feature axis\)"):
        full_sort(np.float64(1.0))


# ---- polar: the public layer's messages ------------------------------------------------------

from reflip import polar, polar_bwd, polar_fwd, polar_jvp  # noqa: E402


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(degree="5"), TypeError, r"^degree must be an integer"),
    (dict(degree=4), ValueError, r"^degree must be one of \(3, 5\)"),
    (dict(lower="a"), TypeError, r"^lower must be a real number"),
    (dict(lower=0.5), ValueError, r"^lower must be one of"),
    (dict(n_iter="a"), TypeError, r"^n_iter must be an integer"),
    (dict(backward="x"), ValueError, r"^backward must be one of"),
    (dict(on_nonconvergence="x"), ValueError, r"^on_nonconvergence must be one of"),
    (dict(check_finite="yes"), TypeError, r"^check_finite must be True or False"),
    (dict(return_info=1), TypeError, r"^return_info must be True or False"),
])
def test_polar_messages_name_their_parameter(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        polar(np.eye(3), **kwargs)


def test_polar_array_messages():
    with pytest.raises(ValueError, match=r"^w must have at least 2 dimension\(s\) \(\.\.\., m, n\)"):
        polar(np.ones(3))
    bad = np.eye(3)
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"^w must be finite \(it contains NaN or inf\); pass check_finite=False to "
                                         r"skip this check and let NaN propagate$"):
        polar(bad)
    _, res = polar_fwd(np.eye(3) + 0.1)
    with pytest.raises(ValueError, match=r"^y_bar "):
        polar_bwd(res, np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"^w_dot "):
        polar_jvp(res, np.ones((2, 2)))


def test_polar_nonconvergence_warning_names_the_polar_iteration():
    """A missed ``tol`` warns, naming the polar iteration and pointing at ``lower``; with
    ``on_nonconvergence="ignore"`` nothing is reported."""
    from reflip import BjorckConvergenceWarning

    w = np.diag([1.0, 1e-9, 0.5])
    with pytest.warns(BjorckConvergenceWarning, match=r"polar iteration.*lower=0\.001: pick a smaller"):
        polar(w, n_iter=2, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        polar(w, n_iter=2, tol=1e-12, on_nonconvergence="ignore")
