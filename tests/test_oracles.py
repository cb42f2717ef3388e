"""Public functions checked on their own against an independent oracle, for every value of
their enumerated parameters (issue 20, blind spot "documented functions never asserted").

The oracles never restate the formula under test:

- an operator norm ``max ||W x||_a / ||x||_b`` is the maximum of the convex function
  ``||W x||_a`` over the extreme points of the unit ``l_b`` ball: ``+-e_j`` for ``b = 1`` and
  the ``2^n`` sign vectors for ``b = inf`` (brute force, small ``n``); for ``b = 2`` and a single
  row, the largest singular value of that ``1 x n`` matrix (an SVD);
- stacks are checked matrix by matrix in a Python loop, so an axis confusion in the vectorized
  code shows up.

Several of these tests were written to kill mutants that mutmut found surviving the module's own
tests (docs/mutation.md names them).
"""
import itertools
import math

import numpy as np
import pytest

from reflip import norm_p_inf, op_norm_2, op_norm_inf
from reflip.norms import check_p, dual_exponent
from reflip.universality import Dense, MaxMinNetwork, Select, random_constrained_network

P_VALUES = (1.0, 2.0, math.inf)


def _brute_op_norm(w, p_in, p_out):
    """``max_{||x||_{p_in} <= 1} ||W x||_{p_out}`` by enumerating the extreme points of the unit
    ball (``p_in`` in {1, inf}) or, for ``p_in = 2`` and ``p_out = inf``, the largest singular
    value of each row (``max_i max_{||x||_2 <= 1} |w_i x|``)."""
    w = np.asarray(w, dtype=np.float64)
    n = w.shape[-1]
    if p_in == 1.0:
        points = np.concatenate([np.eye(n), -np.eye(n)])
    elif p_in == math.inf:
        points = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
    else:
        assert p_out == math.inf
        return max(np.linalg.svd(row[None, :], compute_uv=False)[0] for row in w)
    return max(np.linalg.norm(w @ x, ord=p_out) for x in points)


def _stack(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5), (2, 2, 4, 3), (3, 3, 3)])
@pytest.mark.parametrize("p", P_VALUES)
def test_norm_p_inf_matrix_by_matrix_against_brute_force(p, shape):
    """[PR-7] ``||W||_{p,inf}`` of every matrix of a stack (a 1-d array is one row): the value
    for each matrix, and the shape ``w.shape[:-2]``. The square stack ``(3, 3, 3)`` catches a
    norm taken along the wrong one of two equal axes."""
    w = _stack(int(p) if p < 9 else 9, shape)
    got = np.asarray(norm_p_inf(w, p))
    mats = w.reshape((-1,) + w.shape[-2:]) if w.ndim >= 2 else w[None, None, :]
    want = np.array([_brute_op_norm(m, p, math.inf) for m in mats]).reshape(w.shape[:-2])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("shape", [(5,), (4, 5), (2, 3, 4), (3, 3, 3)])
def test_op_norms_matrix_by_matrix(shape):
    """``||W||_2`` (SVD) and ``||W||_inf`` (sign vectors, the extreme points of the unit l_inf
    ball) of every matrix of a stack [PR-1]."""
    w = _stack(7, shape)
    mats = w.reshape((-1,) + w.shape[-2:]) if w.ndim >= 2 else w[None, None, :]
    want2 = np.array([np.linalg.svd(m, compute_uv=False)[0] for m in mats]).reshape(w.shape[:-2])
    want_inf = np.array([_brute_op_norm(m, math.inf, math.inf) for m in mats]).reshape(w.shape[:-2])
    np.testing.assert_allclose(np.asarray(op_norm_2(w)), want2, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(op_norm_inf(w)), want_inf, rtol=1e-13)


@pytest.mark.parametrize("fn", [check_p, dual_exponent])
def test_exponent_helpers_name_p_by_default(fn):
    """Without ``name`` the messages name the parameter ``p`` (the project's error rule)."""
    with pytest.raises(TypeError, match=r"^p must be a real number"):
        fn("2")
    with pytest.raises(ValueError, match=r"^p must be 1, 2 or inf"):
        fn(3)


def test_check_p_reports_nan_as_nan():
    """A NaN exponent is refused with ``ValueError`` naming the value it got (not ``None``)."""
    with pytest.raises(ValueError, match=r"got nan$"):
        check_p(math.nan)


def _networks(p):
    """Constrained networks of the package and unconstrained hand-made ones (Dense and Select
    layers, norms above and below 1)."""
    rng = np.random.default_rng(11)
    yield random_constrained_network(3, (4, 2), p, seed=5)
    yield random_constrained_network(4, (2,), p, seed=6, bits=3)
    w1, w2, w3 = rng.standard_normal((4, 3)), 0.3 * rng.standard_normal((6, 4)), rng.standard_normal((1, 6))
    yield MaxMinNetwork((Dense(w1, np.zeros(4)), Dense(w2, np.ones(6)), Dense(w3, np.zeros(1))))
    yield MaxMinNetwork((Dense(0.2 * w1, np.zeros(4)), Select(np.array([3, 0, 0, 2]), 4),
                         Dense(0.1 * w2[:, :4], np.zeros(6))))
    yield MaxMinNetwork((Dense(w1[:1], np.zeros(1)),))


@pytest.mark.parametrize("p", P_VALUES)
def test_constraint_norms_against_brute_force(p):
    """[UN-1] ``MaxMinNetwork.constraint_norms(p) = (||W_1||_{p,inf}, max_k ||W_k||_inf)`` and
    ``satisfies_constraints(p)`` for every ``p`` of the paper, against the operator norms by
    brute force on the dense weights (0 for the later layers of a one-layer network)."""
    for net in _networks(p):
        mats = [layer.dense()[0] for layer in net.layers]
        first = _brute_op_norm(mats[0], p, math.inf)
        later = max((_brute_op_norm(m, math.inf, math.inf) for m in mats[1:]), default=0.0)
        got = net.constraint_norms(p)
        np.testing.assert_allclose(got, (first, later), rtol=1e-13, atol=0)
        assert net.satisfies_constraints(p) == (first <= 1.0 + 1e-12 and later <= 1.0 + 1e-12)


# ---- projections: the projection onto {||W||_{p,inf} <= r} by its variational inequality ------

from reflip import (  # noqa: E402
    bjorck,
    linf_project,
    pinf_project,
    polar,
    row_scale,
    spectral_normalize,
    spectral_normalize_fwd,
)
from reflip.bjorck import BACKWARDS, SCALINGS  # noqa: E402
from reflip.projections import THRESHOLDS  # noqa: E402
from reflip.spectral import CONVENTIONS  # noqa: E402


def _dual(p):
    return {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}[p]


def _assert_is_projection(w, y, p, radius):
    """``y`` is the Frobenius projection of ``w`` onto ``C = {||Y||_{p,inf} <= radius}`` iff
    ``y`` is in ``C`` and ``<w - y, z - y> <= 0`` for every ``z`` in ``C``. ``C`` is a product
    of l_q balls (one per row), so the worst ``z`` is found row by row: brute force over the
    extreme points of the ball for ``q`` in {1, inf}, Hölder's ``sup <g, z> = r ||g||_p`` for
    ``q = 2``."""
    q = _dual(p)
    tol = 1e-12 * (1 + np.abs(w).max())
    for wi, yi in zip(w.reshape(-1, w.shape[-1]), y.reshape(-1, y.shape[-1]), strict=True):
        assert np.linalg.norm(yi, ord=q) <= radius * (1 + 1e-13)
        g = wi - yi
        n = wi.size
        if q == 1.0:
            extreme = radius * np.concatenate([np.eye(n), -np.eye(n)])
        elif q == math.inf:
            extreme = radius * np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
        else:
            extreme = None
        worst = radius * np.linalg.norm(g) if extreme is None else float(np.max(extreme @ g))
        assert worst - g @ yi <= tol, (wi, yi)


@pytest.mark.parametrize("radius", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("p", P_VALUES)
def test_pinf_project_is_the_projection(p, radius):
    """[PR-2, PR-8] ``pinf_project`` for every ``p``: feasible and optimal (variational
    inequality), rows inside the ball unchanged; a stack is projected matrix by matrix."""
    w = _stack(21, (2, 5, 4)) * 1.5
    w[0, 0] = 0.01  # one row well inside the ball: must come back unchanged
    y = np.asarray(pinf_project(w, p, radius=radius))
    assert y.shape == w.shape
    _assert_is_projection(w, y, p, radius)
    np.testing.assert_array_equal(y[0, 0], w[0, 0])


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_linf_project_is_the_projection_for_every_threshold(threshold):
    """[PR-2] The threshold option changes the derivative only: for both values the forward is
    the projection onto ``{||W||_inf <= r}`` (rows onto the l1 ball)."""
    w = _stack(22, (3, 6, 5))
    y = np.asarray(linf_project(w, radius=0.75, threshold=threshold))
    _assert_is_projection(w, y, math.inf, 0.75)


@pytest.mark.parametrize("p", P_VALUES)
def test_row_scale_is_a_row_scaling(p):
    """[PR-10] Every row is a non-negative multiple of its input row, with ``||y_i||_q =
    min(||w_i||_q, r)`` (NumPy's norm; rows inside unchanged bit for bit)."""
    w = _stack(23, (2, 4, 5))
    w[1, 2] *= 1e-3
    r = 0.8
    y = np.asarray(row_scale(w, p, radius=r))
    q = _dual(p)
    for wi, yi in zip(w.reshape(-1, 5), y.reshape(-1, 5), strict=True):
        nw = np.linalg.norm(wi, ord=q)
        if nw <= r:
            np.testing.assert_array_equal(yi, wi)
            continue
        c = (yi @ wi) / (wi @ wi)
        assert c > 0
        np.testing.assert_allclose(yi, c * wi, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(np.linalg.norm(yi, ord=q), r, rtol=1e-14)


# ---- spectral normalization, Björck, polar: every enumerated option against an SVD -----------


def _gapped(seed, shape, s):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((shape[0], shape[0])))
    v, _ = np.linalg.qr(rng.standard_normal((shape[1], shape[1])))
    k = min(shape)
    return (u[:, :k] * np.asarray(s, dtype=np.float64)[:k]) @ v[:, :k].T


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_spectral_normalize_every_convention(convention):
    """[PR-11] Both derivative conventions give the same forward, ``W / sigma_max(W)`` (SVD),
    and the VJP of ``exact`` is that of ``W / sigma_max(W)`` by central differences."""
    w = _gapped(31, (5, 4), [3.0, 1.0, 0.5, 0.25])
    y = np.asarray(spectral_normalize(w, n_iter=60, convention=convention))
    np.testing.assert_allclose(y, w / np.linalg.svd(w, compute_uv=False)[0], rtol=1e-10, atol=1e-12)
    y, res = spectral_normalize_fwd(w, n_iter=60, convention=convention)
    from reflip import spectral_normalize_bwd

    rng = np.random.default_rng(0)
    y_bar, v = rng.standard_normal(w.shape), rng.standard_normal(w.shape)
    h = 1e-6

    def f(a):
        return a / np.linalg.svd(a, compute_uv=False)[0]

    fd = (f(w + h * v) - f(w - h * v)) / (2 * h)
    if convention == "exact":
        np.testing.assert_allclose(np.sum(np.asarray(spectral_normalize_bwd(res, y_bar)) * v), np.sum(y_bar * fd),
                                   rtol=1e-6)
    else:  # constant u, v: the derivative of W / (u^T W v) with u, v held at the top singular pair
        u_, s_, vt_ = np.linalg.svd(w)
        uu, vv = u_[:, 0], vt_[0]

        def g(a):
            return a / (uu @ a @ vv)

        fd = (g(w + h * v) - g(w - h * v)) / (2 * h)
        np.testing.assert_allclose(np.sum(np.asarray(spectral_normalize_bwd(res, y_bar)) * v), np.sum(y_bar * fd),
                                   rtol=1e-6)


def _polar_factor(w):
    u, _, vt = np.linalg.svd(w, full_matrices=False)
    return u @ vt


@pytest.mark.parametrize("backward", BACKWARDS)
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_bjorck_every_option_converges_to_the_polar_factor(order, scaling, backward):
    """[BJ-5] Every order, scaling and backward: from singular values in the basin (after
    scaling) the result is ``U V^T`` of an SVD; the VJP agrees with central differences of
    the SVD's polar factor (the derivative of the limit [BJ-6] that the converged iteration
    approaches)."""
    # Singular values in [0.3, 0.9] x c with c the scaling's divisor: in the basin for all three.
    w = _gapped(41, (5, 3), [0.9, 0.6, 0.3])
    y = np.asarray(bjorck(w, order=order, scaling=scaling, backward=backward, n_iter=60))
    np.testing.assert_allclose(y, _polar_factor(w), atol=1e-12)
    from reflip import bjorck_bwd, bjorck_fwd

    _, res = bjorck_fwd(w, order=order, scaling=scaling, backward=backward, n_iter=60)
    rng = np.random.default_rng(1)
    y_bar, v = rng.standard_normal(y.shape), rng.standard_normal(w.shape)
    h = 1e-6
    fd = (_polar_factor(w + h * v) - _polar_factor(w - h * v)) / (2 * h)
    np.testing.assert_allclose(np.sum(np.asarray(bjorck_bwd(res, y_bar)) * v), np.sum(y_bar * fd), rtol=1e-6)


@pytest.mark.parametrize("backward", BACKWARDS)
@pytest.mark.parametrize("degree", [3, 5])
def test_polar_every_option_converges_to_the_polar_factor(degree, backward):
    """[PO-3] Both degrees and both backward modes: ``U V^T`` of an SVD, and a VJP that agrees
    with central differences of it."""
    w = _gapped(43, (4, 6), [1.0, 0.5, 0.2, 0.1])
    y = np.asarray(polar(w, degree=degree, backward=backward, tol=1e-13, n_iter=60, on_nonconvergence="ignore"))
    np.testing.assert_allclose(y, _polar_factor(w), atol=1e-11)
    from reflip import polar_bwd, polar_fwd

    _, res = polar_fwd(w, degree=degree, backward=backward, tol=1e-13, n_iter=60, on_nonconvergence="ignore")
    rng = np.random.default_rng(2)
    y_bar, v = rng.standard_normal(y.shape), rng.standard_normal(w.shape)
    h = 1e-6
    fd = (_polar_factor(w + h * v) - _polar_factor(w - h * v)) / (2 * h)
    np.testing.assert_allclose(np.sum(np.asarray(polar_bwd(res, y_bar)) * v), np.sum(y_bar * fd), rtol=1e-6)


# ---- operator norms of a network layer: every supported (p, q) pair -------------------------

from reflip.norms import check_pq, operator_norm, operator_norms  # noqa: E402

PQ_PAIRS = [(2.0, 2.0), (1.0, 1.0), (math.inf, math.inf), (1.0, math.inf), (2.0, math.inf)]


@pytest.mark.parametrize("p, q", PQ_PAIRS)
def test_operator_norm_every_pair_against_brute_force(p, q):
    """[NN-3] ``||W||_{p->q} = max ||W x||_q / ||x||_p``: SVD for (2, 2), extreme points of the
    unit l_p ball otherwise; a stack matrix by matrix, a row as a 1 x n matrix, NaN for a
    matrix holding NaN or inf [NN-14]."""
    w = _stack(51, (3, 4, 3))
    want = [np.linalg.svd(m, compute_uv=False)[0] if p == q == 2 else _brute_op_norm(m, p, q) for m in w]
    pq = check_pq(p, q)
    np.testing.assert_allclose(np.asarray(operator_norms(w, *pq, np)), want, rtol=1e-13)
    for m, expected in zip(w, want, strict=True):
        assert operator_norm(m, p, q) == pytest.approx(expected, rel=1e-13)
    row = w[0, 0]
    assert operator_norm(row, p, q) == pytest.approx(
        np.linalg.norm(row) if p == q == 2 else _brute_op_norm(row[None, :], p, q), rel=1e-13)
    bad = w.copy()
    bad[1, 2, 0] = np.nan
    got = np.asarray(operator_norms(bad, *pq, np))
    assert np.isnan(got[1]) and not np.isnan(got[[0, 2]]).any()


@pytest.mark.parametrize("p, q", [(2.0, 1.0), (math.inf, 2.0), (1.0, 2.0)])
def test_check_pq_refuses_other_pairs(p, q):
    with pytest.raises(ValueError, match="only q = inf"):
        check_pq(p, q)


# ---- GroupSort: the array-API core (what non-NumPy backends run) against brute force ---------

import array_api_strict  # noqa: E402

from reflip import full_sort, group_sort, group_sort_bwd, group_sort_fwd, group_sort_jvp, max_min  # noqa: E402


def _brute_group_sort(x, k, axis):
    """``(y, order)``: each contiguous group of ``k`` along ``axis`` sorted ascending (NumPy's
    sort of the grouped view) and ``order[..., j]`` the input index of output entry ``j``."""
    moved = np.moveaxis(x, axis, -1)
    grouped = moved.reshape(*moved.shape[:-1], moved.shape[-1] // k, k)
    order = np.argsort(grouped, axis=-1, kind="stable")
    y = np.take_along_axis(grouped, order, axis=-1)
    return np.moveaxis(y.reshape(moved.shape), -1, axis), order


def _converter(on):
    """NumPy array -> an array of the namespace ``on``."""
    if on == "numpy":
        return np.asarray
    return lambda a: array_api_strict.asarray(np.ascontiguousarray(a))


def _host(a):
    return np.asarray(array_api_strict.asarray(a, copy=True)) if not isinstance(a, np.ndarray) else a


@pytest.mark.parametrize("on", ["array_api_strict", "numpy"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("k", [2, 3, 4, 6, 12])
def test_group_sort_core_against_brute_force(k, axis, on):
    """[GS-1, GS-4] On array_api_strict (the core) and NumPy (its fast paths): the forward is
    every group sorted, the VJP sends each cotangent back to the input entry the output came
    from, the JVP gathers the tangent the same way; tie-free inputs; ``group_size`` 12 is a full
    sort of the axis, 2 is MaxMin."""
    to = _converter(on)
    rng = np.random.default_rng(k * 10 + axis)
    shape = [12, 12, 12]
    shape[axis] = 12
    x = rng.permutation(np.arange(12 * 12 * 12, dtype=np.float64)).reshape(shape) / 7.0
    y_want, order = _brute_group_sort(x, k, axis)
    y, res = group_sort_fwd(to(x), k, axis=axis)
    np.testing.assert_array_equal(_host(y), y_want)
    np.testing.assert_array_equal(_host(group_sort(to(x), k, axis=axis)), y_want)
    if k == 2:
        np.testing.assert_array_equal(_host(max_min(to(x), axis=axis)), y_want)
    if k == 12:
        np.testing.assert_array_equal(_host(full_sort(to(x), axis=axis)), y_want)
    t = rng.standard_normal(x.shape)
    # Brute force: output j of a group came from input order[j], so x_bar[order[j]] = y_bar[j] and
    # y_dot[j] = x_dot[order[j]].
    t_groups = np.moveaxis(t, axis, -1)
    t_groups = t_groups.reshape(*t_groups.shape[:-1], t_groups.shape[-1] // k, k)
    x_bar = np.zeros_like(t_groups)
    np.put_along_axis(x_bar, order, t_groups, axis=-1)
    y_dot = np.take_along_axis(t_groups, order, axis=-1)
    moved_shape = np.moveaxis(t, axis, -1).shape
    x_bar = np.moveaxis(x_bar.reshape(moved_shape), -1, axis)
    y_dot = np.moveaxis(y_dot.reshape(moved_shape), -1, axis)
    np.testing.assert_array_equal(_host(group_sort_bwd(res, to(t))), x_bar)
    np.testing.assert_array_equal(_host(group_sort_jvp(res, to(t))), y_dot)


@pytest.mark.parametrize("on", ["array_api_strict", "numpy"])
def test_group_sort_ties_are_stable(on):
    """[GS-4] Ties are broken by a stable sort: among equal entries the output keeps their input
    order, so each cotangent goes back to the entry a stable argsort names (a long tie-heavy
    row: an unstable sort reorders ties there)."""
    to = _converter(on)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(2, 96)).astype(np.float64)
    y_bar = rng.standard_normal(x.shape)
    order = np.argsort(x, axis=-1, kind="stable")
    want = np.zeros_like(y_bar)
    np.put_along_axis(want, order, y_bar, axis=-1)
    _, res = group_sort_fwd(to(x), 96)
    np.testing.assert_array_equal(_host(group_sort_bwd(res, to(y_bar))), want)
    _, res = group_sort_fwd(to(x), 96, axis=-1)
    np.testing.assert_array_equal(_host(group_sort_jvp(res, to(y_bar))), np.take_along_axis(y_bar, order, -1))


@pytest.mark.parametrize("on", ["array_api_strict", "numpy"])
def test_group_sort_signed_zeros_keep_their_order(on):
    """[GS-4] ``-0.0`` and ``0.0`` compare equal, so the stable sort keeps them in input order:
    the values-only ``group_sort`` returns the same bits as NumPy's stable sort (an unstable
    sort of a long row swaps signed zeros)."""
    to = _converter(on)
    rng = np.random.default_rng(5)
    x = rng.choice(np.array([-0.0, 0.0, 1.0, -1.0]), size=(2, 96))
    want = np.sort(x, axis=-1, kind="stable")
    got = _host(group_sort(to(x), 96))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backward", BACKWARDS)
@pytest.mark.parametrize("degree", [3, 5])
@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (2, 5, 5)])
def test_polar_fused_numpy_path_against_the_core(degree, backward, shape, monkeypatch):
    """[PO-3] The fused NumPy products (reflip._fast.numpy_bjorck, taken from ``MIN_N`` = 256
    on; lowered to 1 here so that small matrices take them) give the array-API core's forward,
    VJP and JVP (array_api_strict) to rounding, on a fixed number of steps and with ``tol``."""
    from reflip import polar_bwd, polar_fwd, polar_jvp
    from reflip._fast import numpy_bjorck

    rng = np.random.default_rng(17)
    w = rng.standard_normal(shape)
    y_bar, v = rng.standard_normal(shape), rng.standard_normal(shape)
    kwargs = dict(degree=degree, backward=backward, on_nonconvergence="ignore")
    s = array_api_strict.asarray
    for extra in ({"n_iter": 6}, {"tol": 1e-10}):
        y_core, r_core = polar_fwd(s(w), **kwargs, **extra)
        want = [_host(y_core), _host(polar_bwd(r_core, s(y_bar))), _host(polar_jvp(r_core, s(v)))]
        with monkeypatch.context() as m:
            m.setattr(numpy_bjorck, "MIN_N", 1)
            y, r = polar_fwd(w, **kwargs, **extra)
            got = [np.asarray(y), np.asarray(polar_bwd(r, y_bar)), np.asarray(polar_jvp(r, v))]
        for g, want_part in zip(got, want, strict=True):
            np.testing.assert_allclose(g, want_part, rtol=1e-9, atol=1e-11)
