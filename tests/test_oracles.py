"""Public functions checked on their own against an independent oracle, for every value of
their enumerated parameters (issue 20, blind spot "documented functions never asserted").

The oracles never restate the formula under test:

- an operator norm ``max ||W x||_a / ||x||_b`` is the maximum of the convex function
  ``||W x||_a`` over the extreme points of the unit ``l_b`` ball: ``+-e_j`` for ``b = 1`` and
  the ``2^n`` sign vectors for ``b = inf`` (brute force, small ``n``); for ``b = 2`` and a single
  row, the largest singular value of that ``1 x n`` matrix (an SVD);
- stacks are checked matrix by matrix in a Python loop, so an axis confusion in the vectorized
  code shows up;
- derivatives are central differences in float64, of the forward or of an SVD oracle (the polar
  factor, ``W / sigma_max``), or of the function a derivative convention differentiates (a
  frozen threshold, a held singular pair);
- reflip.nn: losses against torch.nn.functional and torch's autograd, certified radii against
  the exact distance to a linear classifier's decision boundary, PGD against the exact worst
  margin of a linear classifier, quantiles against the statistics module;
- reflip.universality: networks evaluated layer by layer in a loop, nested minima / maxima by
  NumPy.

Each parametrization reads the library's tuple of values (``nn.CONSTRAINTS``,
``bjorck.SCALINGS``...), and the ``*_enumerations_are_the_tested_ones`` tests compare those
tuples with the values known here: a value added to the library fails until it has an oracle.

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


# ==============================================================================================
# reflip.nn: every constraint, activation, loss, attack loss and (p, q) pair against an oracle
# ==============================================================================================

import statistics  # noqa: E402

from reflip import nn  # noqa: E402
from reflip.nn import attack as nn_attack  # noqa: E402
from reflip.nn import certify, lipschitz, losses, optim, train  # noqa: E402
from reflip.nn.layers import INITS  # noqa: E402

# The values each enumeration had when these tests were written: a value added to the library
# fails test_nn_enumerations_are_the_tested_ones until an oracle below covers it.
KNOWN_CONSTRAINTS = ("bjorck", "polar", "linf", "pinf", "spectral", "unit_row", "none")
KNOWN_ACTIVATIONS = ("group_sort", "max_min", "full_sort", "relu", "abs")
KNOWN_INITS = ("orthogonal", "normal")
KNOWN_LOSSES = ("multi_margin", "cross_entropy")
KNOWN_ATTACK_LOSSES = ("margin", "cross_entropy")


def test_nn_enumerations_are_the_tested_ones():
    """Every enumerated value of reflip.nn has an oracle test below; the parametrizations read
    the library's tuples, and this test names a value added without one."""
    assert nn.CONSTRAINTS == KNOWN_CONSTRAINTS
    assert nn.ACTIVATIONS == KNOWN_ACTIVATIONS
    assert INITS == KNOWN_INITS
    assert tuple(losses.LOSSES) == KNOWN_LOSSES
    assert nn_attack.ATTACK_LOSSES == KNOWN_ATTACK_LOSSES


def _fd_grad(f, a, h=1e-6):
    """Central differences of the scalar ``f`` with respect to every entry of ``a`` (float64)."""
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        e = np.zeros_like(a)
        e[idx] = h
        g[idx] = (f(a + e) - f(a - e)) / (2 * h)
    return g


def _q_norm(v, q):
    """``||v||_q`` of a vector as the operator norm of the 1 x n matrix ``v`` from ``l_{q*}`` to
    the reals: the extreme points of the ``l_{q*}`` ball (q* in {1, inf}) or an SVD (q = 2)."""
    v = np.asarray(v, dtype=np.float64)[None, :]
    if q == 2.0:
        return float(np.linalg.svd(v, compute_uv=False)[0])
    return float(_brute_op_norm(v, _dual(q), math.inf))


def _op_norm(w, p, q):
    """``||W||_{p->q}``: an SVD for (2, 2), brute force over the unit ball's extreme points else."""
    if p == q == 2.0:
        return float(np.linalg.svd(w, compute_uv=False)[0])
    return float(_brute_op_norm(w, p, q))


# ---- Dense: W_eff of every constraint, the affine map, its Lipschitz constant, its VJP --------

# constraint -> (options, shape (out, in), check(W, W_eff)): the check is an independent oracle of
# the constrained weight (an SVD, the projection's variational inequality, a direction and an SVD
# norm). pinf is checked for every p by test_dense_pinf_every_p.
_RADIUS = 0.75


def _check_bjorck(w, y):
    np.testing.assert_allclose(y, _polar_factor(w), atol=1e-12)


def _check_spectral(w, y):
    np.testing.assert_allclose(y, w / np.linalg.svd(w, compute_uv=False)[0], rtol=1e-10, atol=1e-12)


def _check_unit_row(w, y):
    c = float(y[0] @ w[0]) / float(w[0] @ w[0])
    assert c > 0
    np.testing.assert_allclose(y, c * w, rtol=1e-14, atol=1e-15)
    assert np.linalg.svd(y, compute_uv=False)[0] == pytest.approx(1.0, rel=1e-14)


def _check_none(w, y):
    np.testing.assert_array_equal(y, w)


DENSE_ORACLES = {
    "bjorck": ({"n_iter": 60}, (4, 5), _check_bjorck),
    "polar": ({"tol": 1e-13, "n_iter": 60}, (4, 5), _check_bjorck),
    "linf": ({"radius": _RADIUS}, (4, 5), lambda w, y: _assert_is_projection(w, y, math.inf, _RADIUS)),
    "pinf": ({"p": 2.0, "radius": _RADIUS}, (4, 5), lambda w, y: _assert_is_projection(w, y, 2.0, _RADIUS)),
    "spectral": ({"n_iter": 200, "tol": 1e-14}, (4, 5), _check_spectral),
    "unit_row": ({}, (1, 5), _check_unit_row),
    "none": ({}, (4, 5), _check_none),
}


def _dense_weight(shape, seed=61):
    """Singular values in [0.3, 0.9] (in Björck's basin, a gap for the power iteration) and rows
    of l1 / l2 norm above the radius (the projections are active)."""
    out, n_in = shape
    if out == 1:
        return np.random.default_rng(seed).standard_normal((1, n_in))
    return _gapped(seed, (out, n_in), [0.9, 0.6, 0.45, 0.3][:min(shape)]) * 2.0


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("constraint", nn.CONSTRAINTS)
def test_dense_every_constraint_against_its_oracle(constraint, bias):
    """[NN-1] [NN-3] for every constraint: ``W_eff`` against its oracle, ``y = x W_eff^T + b``
    example by example (``forward`` and ``apply``), ``lipschitz(p, q)`` for every supported
    pair against the brute-force operator norm of ``W_eff``, and the VJP (``x``, ``W``, ``b``)
    against central differences of ``apply``."""
    options, shape, check = DENSE_ORACLES[constraint]
    if constraint == "bjorck":
        w = _dense_weight(shape) / 2.0  # singular values in [0.3, 0.9]: in the basin of every scaling
    else:
        w = _dense_weight(shape)
    layer = nn.Dense(shape[1], shape[0], constraint, bias=bias, **options)
    rng = np.random.default_rng(62)
    params = {"W": w}
    if bias:
        params["b"] = rng.standard_normal(shape[0])
    w_eff = np.asarray(layer.effective_weight(params, np))
    check(w, w_eff)
    x = rng.standard_normal((3, shape[1]))
    y, res = layer.forward(params, x, np)
    want = np.array([[w_eff[o] @ xi + (params["b"][o] if bias else 0.0) for o in range(shape[0])] for xi in x])
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(np.asarray(layer.apply(params, x, np)), want, rtol=1e-13, atol=1e-14)
    for p, q in PQ_PAIRS:
        assert layer.lipschitz(params, p, q) == pytest.approx(_op_norm(w_eff, p, q), rel=1e-12)
    y_bar = rng.standard_normal(want.shape)
    x_bar, grads = layer.backward(res, y_bar, np)
    assert set(grads) == ({"W", "b"} if bias else {"W"})

    def loss(**kw):
        par = {**params, **{k: v for k, v in kw.items() if k != "x"}}
        return float(np.sum(y_bar * np.asarray(layer.apply(par, kw.get("x", x), np))))

    np.testing.assert_allclose(x_bar, _fd_grad(lambda a: loss(x=a), x), rtol=1e-6, atol=1e-8)
    if constraint != "spectral":  # its default derivative convention is constant (u, v) [PR-11]
        np.testing.assert_allclose(grads["W"], _fd_grad(lambda a: loss(W=a), w), rtol=1e-6, atol=1e-8)
    if bias:
        np.testing.assert_allclose(grads["b"], _fd_grad(lambda a: loss(b=a), params["b"]), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("p", P_VALUES)
def test_dense_pinf_every_p(p):
    """[PR-7] ``constraint="pinf"``: ``W_eff`` is the projection onto ``{||W||_{p,inf} <= r}``
    (variational inequality) and ``lipschitz(p, inf) = ||W_eff||_{p,inf}`` by brute force."""
    w = _dense_weight((4, 5))
    layer = nn.Dense(5, 4, "pinf", p=p, radius=_RADIUS)
    params = layer.init(np.random.default_rng(0), np, "float64")
    params["W"] = w
    w_eff = np.asarray(layer.effective_weight(params, np))
    _assert_is_projection(w, w_eff, p, _RADIUS)
    assert layer.lipschitz(params, p, math.inf) == pytest.approx(_brute_op_norm(w_eff, p, math.inf), rel=1e-12)


@pytest.mark.parametrize("init", INITS)
def test_dense_every_init(init):
    """[NN-12] ``"orthogonal"``: every singular value 1 (SVD), for a square, a wide and a tall
    weight; ``"normal"``: entries of variance ``1 / in_features`` (the mean square of the 40 000
    draws of each weight within 5 %, 7 standard errors) and not orthogonal; biases start at 0."""
    shapes = ((6, 6), (4, 9), (9, 4)) if init == "orthogonal" else ((200, 200), (100, 400), (400, 100))
    for out, n_in in shapes:
        params = nn.Dense(n_in, out, init=init).init(np.random.default_rng(3), np, "float64")
        w = params["W"]
        np.testing.assert_array_equal(params["b"], np.zeros(out))
        if init == "orthogonal":
            np.testing.assert_allclose(np.linalg.svd(w, compute_uv=False), 1.0, rtol=1e-13)
        else:
            assert np.mean(w**2) == pytest.approx(1.0 / n_in, rel=0.05)
            gram = w @ w.T if out <= n_in else w.T @ w
            assert np.abs(gram - np.eye(len(gram))).max() > 0.1


# ---- activations and Scale ---------------------------------------------------------------------


def _sort_groups(x, k):
    return np.sort(x.reshape(x.shape[0], -1, k), axis=-1).reshape(x.shape)


# name -> (constructor kwargs, oracle of the forward on a (batch, 6) array)
ACTIVATION_ORACLES = {
    "group_sort": ({"group_size": 3}, lambda x: _sort_groups(x, 3)),
    "max_min": ({}, lambda x: _sort_groups(x, 2)),
    "full_sort": ({}, lambda x: np.sort(x, axis=-1)),
    "relu": ({}, lambda x: np.where(x > 0, x, 0.0)),
    "abs": ({}, lambda x: np.where(x < 0, -x, x)),
}


@pytest.mark.parametrize("name", nn.ACTIVATIONS)
def test_activation_every_name_against_its_oracle(name):
    """[GS-1] [GS-2] [NN-6] forward and apply against NumPy's sort of the groups / the
    piecewise definitions, the VJP against central differences (tie-free inputs away from 0),
    the Lipschitz constant 1 checked on random pairs in every l_p; ReLU's and abs's derivative 0
    at 0 [NN-6]."""
    kwargs, oracle = ACTIVATION_ORACLES[name]
    layer = nn.Activation(name, **kwargs)
    rng = np.random.default_rng(71)
    x = rng.permutation(np.arange(1, 37, dtype=np.float64)).reshape(6, 6) / 7.0 * rng.choice([-1.0, 1.0], (6, 6))
    y, res = layer.forward({}, x, np)
    np.testing.assert_array_equal(np.asarray(y), oracle(x))
    np.testing.assert_array_equal(np.asarray(layer.apply({}, x, np)), oracle(x))
    y_bar = rng.standard_normal(x.shape)
    x_bar, grads = layer.backward(res, y_bar, np)
    assert grads == {}
    np.testing.assert_allclose(x_bar, _fd_grad(lambda a: float(np.sum(y_bar * oracle(a))), x), rtol=1e-8, atol=1e-9)
    assert layer.lipschitz({}, 2.0, 2.0) == 1.0
    if name in ("relu", "abs"):  # the documented derivative at the kink, where no difference decides: 0
        zeros = np.zeros((2, 6))
        np.testing.assert_array_equal(layer.backward(layer.forward({}, zeros, np)[1], np.ones((2, 6)), np)[0], zeros)
    a, b = rng.standard_normal((2, 200, 6))
    for p in P_VALUES:
        ratio = np.linalg.norm(oracle(a) - oracle(b), ord=p, axis=1) / np.linalg.norm(a - b, ord=p, axis=1)
        assert ratio.max() <= 1 + 1e-12


def test_scale_against_its_definition():
    """[NN-3] ``y = L x``: forward, VJP by central differences, and ``lipschitz = L`` equal to
    the ratio of every pair in every l_p."""
    layer = nn.Scale(2.5)
    rng = np.random.default_rng(72)
    x, y_bar = rng.standard_normal((2, 4, 3))
    y, res = layer.forward({}, x, np)
    np.testing.assert_allclose(np.asarray(y), x + x + x / 2, rtol=1e-15)
    np.testing.assert_allclose(layer.backward(res, y_bar, np)[0],
                               _fd_grad(lambda a: float(np.sum(y_bar * layer.apply({}, a, np))), x), rtol=1e-8)
    for p in P_VALUES:
        ratio = np.linalg.norm(layer.apply({}, x, np) - layer.apply({}, y_bar, np), ord=p, axis=1) / np.linalg.norm(
            x - y_bar, ord=p, axis=1)
        np.testing.assert_allclose(ratio, layer.lipschitz({}, p, p), rtol=1e-14)


# ---- reflip.nn.lipschitz: every (p, q) pair ------------------------------------------------------


def _small_model():
    """Dense layers with two constraints, GroupSort, a Scale; random (perturbed) parameters."""
    model = nn.Sequential([nn.Dense(3, 4, "spectral", n_iter=100), nn.Activation("max_min"),
                           nn.Dense(4, 4, "linf"), nn.Activation("group_sort", group_size=4),
                           nn.Dense(4, 2), nn.Scale(1.5)])
    rng = np.random.default_rng(81)
    params = [{k: 1.3 * v + 0.3 * rng.standard_normal(v.shape) for k, v in par.items()} for par in model.init(seed=2)]
    return model, params, rng.standard_normal((5, 3))


def _fd_jacobians(model, params, x, h=1e-6):
    """``J_f(x_i)`` by central differences, ``(batch, out, in)``."""
    cols = []
    for j in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[j] = h
        cols.append((np.asarray(model(params, x + e)) - np.asarray(model(params, x - e))) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("p, q", PQ_PAIRS)
def test_lipschitz_every_pair_against_brute_force(p, q):
    """[NN-3] [NN-4] ``upper_bound(p, q)`` is the product of the brute-force operator norms of
    the effective weights (first layer ``p -> q``, later ``q -> q``) and the Scale factor;
    ``local_lipschitz`` / ``gradient_lower_bound`` are the brute-force ``p -> q`` norms of
    central-difference Jacobians; ``pair_ratios`` with ``x2`` the ratios of NumPy's norms row by
    row; all below the upper bound."""
    model, params, x = _small_model()
    weights = [np.asarray(w) for w in model.effective_weights(params)]
    want = _op_norm(weights[0], p, q) * math.prod(_op_norm(w, q, q) for w in weights[1:]) * 1.5
    u = lipschitz.upper_bound(model, params, p, q)
    assert u == pytest.approx(want, rel=1e-11)
    jac = _fd_jacobians(model, params, x)
    local = [_op_norm(j, p, q) for j in jac]
    np.testing.assert_allclose(lipschitz.local_lipschitz(model, params, x, p, q), local, rtol=1e-6)
    assert lipschitz.gradient_lower_bound(model, params, x, p, q) == pytest.approx(max(local), rel=1e-6)
    x2 = x + np.random.default_rng(82).standard_normal(x.shape)
    f1, f2 = np.asarray(model(params, x)), np.asarray(model(params, x2))
    ratios = [np.linalg.norm(a - b, ord=q) / np.linalg.norm(c - d, ord=p)
              for a, b, c, d in zip(f1, f2, x, x2, strict=True)]
    np.testing.assert_allclose(lipschitz.pair_ratios(model, params, x, x2, p=p, q=q), ratios, rtol=1e-12)
    assert max(max(local), max(ratios)) <= u * (1 + 1e-9)


@pytest.mark.parametrize("p, q", PQ_PAIRS)
def test_drawn_pair_ratios_are_ratios_of_distinct_rows(p, q):
    """[NN-4] without ``x2`` every ratio is that of a pair of distinct rows of ``x`` (all pairs by
    brute force), and ``pair_lower_bound`` is the largest drawn ratio."""
    model, params, x = _small_model()
    f = np.asarray(model(params, x))
    every = {round(np.linalg.norm(f[i] - f[j], ord=q) / np.linalg.norm(x[i] - x[j], ord=p), 9)
             for i in range(len(x)) for j in range(len(x)) if i != j}
    got = np.asarray(lipschitz.pair_ratios(model, params, x, p=p, q=q, n_pairs=30, seed=4))
    assert got.shape == (30,) and {round(float(r), 9) for r in got} <= every
    assert lipschitz.pair_lower_bound(model, params, x, p=p, q=q, n_pairs=30, seed=4) == got.max()


@pytest.mark.parametrize("output", ["none", "int", "array"])
@pytest.mark.parametrize("p", P_VALUES)
def test_input_gradient_norms_every_p_and_output(p, output):
    """[NN-4] ``input_gradients`` against central differences of the picked output, and
    ``input_gradient_norms(p)`` their dual norms (SVD / brute force of the 1 x n row), for a
    scalar model (``output=None``), one index, and one index per example."""
    model, params, x = _small_model()
    if output == "none":
        model = nn.Sequential([*model.layers, nn.Dense(2, 1)])
        params = [*params, {"W": np.array([[0.7, -1.1]]), "b": np.array([0.2])}]
        pick, arg = np.zeros(len(x), dtype=int), None
    elif output == "int":
        pick, arg = np.ones(len(x), dtype=int), 1
    else:
        pick = np.array([0, 1, 1, 0, 1])
        arg = pick
    jac = _fd_jacobians(model, params, x)
    grads = jac[np.arange(len(x)), pick]
    np.testing.assert_allclose(lipschitz.input_gradients(model, params, x, output=arg), grads, rtol=1e-6, atol=1e-9)
    norms = [_q_norm(g, _dual(p)) for g in grads]
    np.testing.assert_allclose(lipschitz.input_gradient_norms(model, params, x, p, output=arg), norms, rtol=1e-6)


def test_describe_against_the_statistics_module():
    """``describe``: min, max and mean, the 5/50/95 % quantiles of Python's
    ``statistics.quantiles(method="inclusive")`` (linear interpolation), and the fraction within
    ``rtol`` of the target (inclusive, values exactly at the edge) counted in a loop."""
    v = np.random.default_rng(83).uniform(0.5, 1.5, 101)
    v[:7] = [1.0, 1.125, 0.875, 1.25, 1.125 + 2**-52, 1.0 + 1e-9, 0.875 - 2**-53]  # on and beyond the edges
    d = lipschitz.describe(v, target=1.0, rtol=0.125)
    cuts = statistics.quantiles(v.tolist(), n=20, method="inclusive")
    assert d["n"] == 101 and d["min"] == min(v) and d["max"] == max(v)
    assert d["mean"] == pytest.approx(statistics.fmean(v.tolist()), rel=1e-15)
    for key, cut in (("q05", cuts[0]), ("median", cuts[9]), ("q95", cuts[18])):
        assert d[key] == pytest.approx(cut, rel=1e-14)
    assert d["fraction_at_target"] == sum(abs(a - 1.0) <= 0.125 for a in v) / 101


# ---- reflip.nn.certify and the attack: every p, q and attack loss --------------------------------


@pytest.mark.parametrize("q", P_VALUES)
def test_output_constant_is_the_largest_margin_change(q):
    """[CT-2] ``c_q = max |a - b|`` over the unit ``l_q`` circle of R^2, by brute force."""
    assert certify.output_constant(q) == pytest.approx(_brute_output_constant(q), rel=1e-12)


def _brute_output_constant(q):
    """``max |a - b|`` over the unit ``l_q`` circle of R^2, over 8 * 10^4 + 1 directions (the grid
    holds the maximiser ``(1, -1) / ||(1, -1)||_q``)."""
    t = np.linspace(0.0, 2 * math.pi, 80_001)
    pts = np.stack([np.cos(t), np.sin(t)], axis=1)
    pts /= np.linalg.norm(pts, ord=q, axis=1, keepdims=True)
    return float(np.max(np.abs(pts[:, 0] - pts[:, 1])))


def _margins_by_sorting(logits, labels):
    """``f_y - max_{j != y} f_j`` row by row, in a Python loop."""
    return np.array([row[y] - max(v for j, v in enumerate(row) if j != y)
                     for row, y in zip(logits, labels, strict=True)])


@pytest.mark.parametrize("p, q", [(p, None) for p in P_VALUES] + PQ_PAIRS)
def test_certified_radius_is_sound_on_linear_classifiers(p, q):
    """[CT-1] [CT-2] [CT-3] [CT-5] on ``f(x) = W x + b`` with ``L = ||W||_{p->q}`` (brute force):
    ``margins`` by a loop, the radius ``max(M, 0) / (c_q L)`` never above the exact l_p distance
    to the decision boundary ``min_j M_j / ||w_y - w_j||_{p*}`` (a certified point cannot be
    broken), and ``certified_accuracy`` the fraction of radii above each eps."""
    rng = np.random.default_rng(91)
    w, b = rng.standard_normal((4, 5)), rng.standard_normal(4)
    x = rng.standard_normal((40, 5))
    logits = x @ w.T + b
    labels = rng.integers(0, 4, 40)
    labels[:20] = np.argmax(logits[:20], axis=1)
    m = _margins_by_sorting(logits, labels)
    np.testing.assert_allclose(certify.margins(logits, labels), m, rtol=1e-15)
    qq = p if q is None else q
    L = _op_norm(w, p, qq)
    radius = np.asarray(certify.certified_radius(logits, labels, L, p, q))
    np.testing.assert_allclose(radius, np.maximum(m, 0) / (_brute_output_constant(qq) * L), rtol=1e-12)
    assert np.all(radius[m <= 0] == 0)
    for i in np.flatnonzero(m > 0):
        y = labels[i]
        exact = min((logits[i, y] - logits[i, j]) / _q_norm(w[y] - w[j], _dual(p)) for j in range(4) if j != y)
        assert 0 < radius[i] <= exact * (1 + 1e-12)
    eps = [0.0, 0.05, float(np.median(radius)), 0.5]
    want = [np.mean(radius > e) for e in eps]
    np.testing.assert_array_equal(certify.certified_accuracy(logits, labels, L, eps, p, q), want)
    assert certify.certified_accuracy(logits, labels, L, 0.05, p, q) == want[1]


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("loss", nn_attack.ATTACK_LOSSES)
@pytest.mark.parametrize("p", [2.0, math.inf])
def test_pgd_attack_every_norm_and_loss_on_linear_classifiers(p, loss, random_start):
    """[NN-10] [CT-7] a two-class linear classifier: the smallest margin over the l_p ball of
    radius eps is ``M - eps ||w_y - w_j||_{p*}`` exactly. Without a random start, 40 steps of
    either attack loss reach it (both gradients point along ``w_j - w_y``); with one, the
    margin found is never below it, never above the clean one, in the ball and in the box;
    ``check_certificates`` reports no certified point broken."""
    rng = np.random.default_rng(93)
    model = nn.Sequential([nn.Dense(4, 2)])
    params = [{"W": rng.standard_normal((2, 4)), "b": rng.standard_normal(2)}]
    x = rng.uniform(-0.5, 0.5, (30, 4))
    labels = np.argmax(model(params, x), axis=1)
    eps = 0.1
    w = params[0]["W"]
    floor = _margins_by_sorting(model(params, x), labels) - eps * _q_norm(w[0] - w[1], _dual(p))
    kw = dict(steps=40, random_start=random_start, loss=loss, seed=5)
    x_adv = nn_attack.pgd_attack(model, params, x, labels, eps, p, **kw)
    m_adv = _margins_by_sorting(model(params, x_adv), labels)
    assert np.all(m_adv >= floor - 1e-12)
    assert np.all(np.linalg.norm(x_adv - x, ord=p, axis=1) <= eps * (1 + 1e-12))
    if not random_start:
        np.testing.assert_allclose(m_adv, floor, rtol=1e-9, atol=1e-12)
    boxed = nn_attack.pgd_attack(model, params, x, labels, eps, p, bounds=(-0.55, 0.55), **kw)
    assert boxed.min() >= -0.55 and boxed.max() <= 0.55
    assert np.all(_margins_by_sorting(model(params, boxed), labels) <= _margins_by_sorting(model(params, x), labels))
    L = _op_norm(w, p, p)
    report = certify.check_certificates(model, params, x, labels, eps, L, p, **kw)
    radius = np.asarray(certify.certified_radius(model(params, x), labels, L, p))
    assert report["correct"] == 30 and report["certified"] == int(np.sum(radius > eps))
    if not random_start:  # the same attack: it breaks exactly the points whose worst margin is <= 0
        assert report["broken"] == int(np.sum(m_adv <= 0)) > 0
    assert report["broken_certified"].size == 0


# ---- losses: every named loss and KR against torch's autograd -----------------------------------


def _torch_loss(name, torch):
    import torch.nn.functional as F

    return {"multi_margin": lambda f, y, margin=1.0: F.multi_margin_loss(f, y, p=1, margin=margin),
            "cross_entropy": lambda f, y: F.cross_entropy(f, y)}[name]


@pytest.mark.parametrize("name", tuple(losses.LOSSES))
def test_every_loss_and_its_vjp_against_torch(name):
    """[NN-7] each loss of ``LOSSES``: value, and its backward at ``value_bar = -0.7``, against
    torch.nn.functional and torch's autograd (float64), hinges active and inactive."""
    torch = pytest.importorskip("torch")
    fwd, bwd = losses.LOSSES[name]
    rng = np.random.default_rng(101)
    logits, labels = 2 * rng.standard_normal((9, 4)), rng.integers(0, 4, 9)
    opts = {"margin": 0.3} if name == "multi_margin" else {}
    value, res = fwd(logits, labels, **opts)
    t = torch.tensor(logits, requires_grad=True)
    ref = _torch_loss(name, torch)(t, torch.tensor(labels), **opts)
    (-0.7 * ref).backward()
    assert float(value) == pytest.approx(ref.item(), rel=1e-13)
    np.testing.assert_allclose(bwd(res, -0.7), t.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", ["(n,)", "(n, 1)"])
def test_kr_dual_and_its_vjp_against_torch(shape):
    """[NN-7] ``mean f(Q) - mean f(P)`` for samples of different sizes, and its backward at
    ``value_bar = 2.5``, against torch's autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(102)
    f_p, f_q = rng.standard_normal(7), rng.standard_normal(4)
    if shape == "(n, 1)":
        f_p, f_q = f_p[:, None], f_q[:, None]
    tp, tq = torch.tensor(f_p, requires_grad=True), torch.tensor(f_q, requires_grad=True)
    ref = tq.mean() - tp.mean()
    (2.5 * ref).backward()
    value, res = losses.kr_dual_fwd(f_p, f_q)
    assert float(value) == pytest.approx(ref.item(), rel=1e-14)
    assert float(losses.kr_dual(f_p, f_q)) == float(value)
    for got, want in zip(losses.kr_dual_bwd(res, 2.5), (tp.grad.numpy(), tq.grad.numpy()), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-14)


# ---- training: every named loss of fit, one SGD step against central differences ---------------


@pytest.mark.parametrize("loss", [*losses.LOSSES, "kr_dual", "callable"])
def test_fit_every_loss_takes_the_gradient_step(loss):
    """[NN-7] [NN-9] one ``fit`` step with ``SGD(lr)`` moves every parameter by ``-lr`` times the
    central-difference gradient of the loss (torch.nn.functional on the model's outputs,
    float64), and records the loss value; the objectives of ``supervised_objective`` /
    ``kr_objective`` return that gradient."""
    torch = pytest.importorskip("torch")
    model = nn.Sequential([nn.Dense(3, 4, "bjorck", n_iter=20), nn.Activation("max_min"), nn.Dense(4, 3)])
    params = [{k: v + 0.2 for k, v in par.items()} for par in model.init(seed=3)]
    rng = np.random.default_rng(111)
    if loss == "kr_dual":
        model = nn.Sequential([*model.layers, nn.Dense(3, 1)])
        params = [*params, {"W": np.array([[0.5, -0.3, 0.8]]), "b": np.zeros(1)}]
        batch = (rng.standard_normal((6, 3)), rng.standard_normal((5, 3)) + 1.0)

        def value(par):
            return float(np.mean(model(par, batch[1])) - np.mean(model(par, batch[0])))
        objective = train.kr_objective(model)
    else:
        batch = (rng.standard_normal((8, 3)), rng.integers(0, 3, 8))
        name = "multi_margin" if loss == "callable" else loss
        opts = {"margin": 0.4} if name == "multi_margin" else {}
        ref = _torch_loss(name, torch)

        def value(par):
            return ref(torch.tensor(np.asarray(model(par, batch[0]))), torch.tensor(batch[1]), **opts).item()
        objective = train.supervised_objective(model, name, **opts)
    want = []
    for i, par in enumerate(params):
        want.append({k: _fd_grad(lambda a, i=i, k=k: value([*params[:i], {**params[i], k: a}, *params[i + 1:]]), v)
                     for k, v in par.items()})
    v0, grads = objective(params, batch)
    assert float(v0) == pytest.approx(value(params), rel=1e-12)
    for g, gw in zip(grads, want, strict=True):
        for k in gw:
            np.testing.assert_allclose(g[k], gw[k], rtol=1e-6, atol=1e-8)
    kw = {"loss": objective} if loss == "callable" else {"loss": loss, "loss_options": (
        {"margin": 0.4} if loss == "multi_margin" else None)}
    new, history = train.fit(model, params, [batch], optim.SGD(0.1), steps=1, progress=False, **kw)
    assert history.loss == [pytest.approx(value(params), rel=1e-12)]
    for par, step, gw in zip(params, new, want, strict=True):
        for k in gw:
            np.testing.assert_allclose(step[k], par[k] - 0.1 * gw[k], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_minibatches_every_option(shuffle, drop_last):
    """[NN-9] one epoch: the permutation NumPy's Generator draws from the same seed (or the
    identity), cut into batches of ``batch_size``, the incomplete last one dropped or kept;
    rows of every array stay aligned."""
    x = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, 2))
    labels = np.arange(10)
    data = train.minibatches(x, labels, batch_size=3, shuffle=shuffle, drop_last=drop_last)
    order = np.random.default_rng(7).permutation(10) if shuffle else np.arange(10)
    cuts = [order[s:s + 3] for s in range(0, 10, 3)]
    cuts = cuts[:3] if drop_last else cuts
    assert data.steps_per_epoch == len(cuts)
    it = data(np.random.default_rng(7))
    for want in cuts:
        bx, bl = next(it)
        np.testing.assert_array_equal(bl, want)
        np.testing.assert_array_equal(bx[:, 0], want.astype(np.float64))


# ==============================================================================================
# reflip.universality: every p, pad, op and dtype against an oracle
# ==============================================================================================

import reflip.universality as U  # noqa: E402
from reflip import max_min_network, max_min_network_bwd, max_min_network_fwd, max_min_network_jvp  # noqa: E402
from reflip._validate import NUMERIC_DTYPES  # noqa: E402


def test_universality_enumerations_are_the_tested_ones():
    """The exponents of reflip.universality are those of ``P_VALUES``; dtypes of
    ``to_sequential`` are float32 and float64 (each tested below)."""
    for p in P_VALUES:
        assert U.check_p(p) == p
        assert 1 / p + 1 / U.dual_exponent(p) == 1.0
    assert NUMERIC_DTYPES == ("float32", "float64")


@pytest.mark.parametrize("p", P_VALUES)
def test_lipschitz_violation_every_p_against_a_double_loop(p):
    """[UN-13] the count of pairs with ``|v_i - v_j| > ||x_i - x_j||_p + atol`` and the pair of
    largest ratio, by a double loop over pairs, for blocks smaller and larger than the data."""
    rng = np.random.default_rng(121)
    pts = rng.uniform(-1, 1, (13, 3))
    vals = 1.3 * np.linalg.norm(pts - 0.2, ord=p, axis=1) + 0.1 * rng.standard_normal(13)
    for atol in (0.0, 0.05):
        bad = [(abs(vals[i] - vals[j]) / np.linalg.norm(pts[i] - pts[j], ord=p), i, j)
               for i in range(13) for j in range(i + 1, 13)
               if abs(vals[i] - vals[j]) > np.linalg.norm(pts[i] - pts[j], ord=p) + atol]
        assert bad
        _, i, j = max(bad)
        for block in (4, 512):
            count, gi, gj, diff, dist = U.lipschitz_violation(pts, vals, p, atol=atol, block=block)
            assert (count, gi, gj) == (len(bad), i, j)
            assert diff == abs(vals[i] - vals[j]) and dist == pytest.approx(np.linalg.norm(pts[i] - pts[j], ord=p))
    assert U.lipschitz_violation(pts, 0.01 * vals, p) == (0, None, None, None, None)


def _maxmin_oracle(net, x):
    """The network evaluated layer by layer in a loop: ``W h + b`` (Select as a dense 0/1
    matrix), then MaxMin as NumPy's sort of consecutive pairs."""
    h = np.asarray(x, dtype=np.float64)
    for k, layer in enumerate(net.layers):
        w, b = layer.dense()
        h = h @ w.T + b
        if k < len(net.layers) - 1:
            h = _sort_groups(h, 2)
    return h


@pytest.mark.parametrize("ops, pad", [
    (("min", "max"), "duplicate"), (("max", "min"), "duplicate"), (("max",), "duplicate"), (("min",), "duplicate"),
    (("max", "max"), "zero"), (("max",), "zero"),  # "zero" pads a max of non-negative values only
])
def test_reduction_layers_every_op_and_pad(ops, pad):
    """[UN-3] [UN-6] nested minima / maxima of the affine functions ``w_r . x + b_r`` over
    groups of odd and even sizes, against NumPy's min / max of the groups: both pads (``"zero"``
    on non-negative values, where pairing with 0 is exact for a max) and the layer-by-layer
    evaluation."""
    rng = np.random.default_rng(131)
    n_groups = 3 if len(ops) == 2 else 1
    w = rng.standard_normal((15 if len(ops) == 2 else 5, 2))
    b = rng.uniform(5, 6, w.shape[0])  # values > 0 on the test points: pad="zero" is exact for a max
    stages = [(ops[0], n_groups)] + ([(ops[1], 1)] if len(ops) == 2 else [])
    x = rng.uniform(-1, 1, (50, 2))
    vals = (x @ w.T + b).reshape(50, n_groups, -1)
    want = getattr(np, ops[0])(vals, axis=-1)
    if len(ops) == 2:
        want = getattr(np, ops[1])(want, axis=-1)
    net = U.reduction_layers(w, b, stages, pad=pad)
    np.testing.assert_allclose(net(x)[:, 0], want.reshape(50), rtol=1e-14)
    np.testing.assert_allclose(_maxmin_oracle(net, x)[:, 0], want.reshape(50), rtol=1e-14)


@pytest.mark.parametrize("q", P_VALUES)
def test_row_norms_of_dense_and_select(q):
    """``Dense.row_norms(q)`` / ``Select.row_norms(q)``: the l_q norm of every row of the dense
    matrix (SVD / brute force of the 1 x n row)."""
    rng = np.random.default_rng(141)
    dense = U.Dense(rng.standard_normal((3, 4)), np.zeros(3))
    select = U.Select(np.array([2, 0, 2]), 4)
    for layer in (dense, select):
        w, _ = layer.dense()
        np.testing.assert_allclose(layer.row_norms(q), [_q_norm(r, q) for r in w], rtol=1e-14)


@pytest.mark.parametrize("p", P_VALUES)
def test_max_min_network_primitive_against_a_loop_and_differences(p):
    """[UN-2] ``max_min_network`` (and the network's ``__call__``) against the layer-by-layer
    loop, on a stack of inputs; its VJP and JVP against central differences of that loop. Two
    networks: dense layers, and ``norm_network``'s selections that read one value twice (the
    transpose of a selection adds the cotangents of the outputs reading the same input)."""
    rng = np.random.default_rng(151)
    for net in (U.random_constrained_network(3, (4, 6), p, seed=7, n_out=2), U.norm_network(3, math.inf, p=p)):
        assert any(isinstance(layer, U.Select) for layer in net.layers) or net.n_out == 2
        x = rng.standard_normal((2, 4, 3))
        m = net.n_out

        def f(a, net=net, m=m):
            return _maxmin_oracle(net, a.reshape(-1, 3)).reshape(2, 4, m)

        np.testing.assert_allclose(np.asarray(max_min_network(x, network=net)), f(x), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(np.asarray(net(x)), f(x), rtol=1e-14, atol=1e-15)
        _, res = max_min_network_fwd(x, network=net)
        y_bar, x_dot = rng.standard_normal((2, 4, m)), rng.standard_normal(x.shape)
        np.testing.assert_allclose(max_min_network_bwd(res, y_bar),
                                   _fd_grad(lambda a, y_bar=y_bar, f=f: float(np.sum(y_bar * f(a))), x),
                                   rtol=1e-7, atol=1e-9)
        h = 1e-6
        np.testing.assert_allclose(max_min_network_jvp(res, x_dot), (f(x + h * x_dot) - f(x - h * x_dot)) / (2 * h),
                                   rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("out_dtype", NUMERIC_DTYPES)
def test_to_sequential_every_dtype(out_dtype):
    """[UN-2] the reflip.nn export in each dtype, on NumPy and array_api_strict: parameters of
    that dtype, values equal to the float64 layer-by-layer loop (exactly in float64, to float32
    rounding in float32)."""
    import array_api_strict

    net = U.random_constrained_network(2, (4,), 2.0, seed=8)
    x = np.random.default_rng(161).uniform(-1, 1, (20, 2))
    for xp in (np, array_api_strict):
        model, params = net.to_sequential(xp=xp, dtype=out_dtype)
        assert all(a.dtype == getattr(xp, out_dtype) for par in params for a in par.values())
        got = model(params, xp.asarray(x.astype(out_dtype)))
        assert got.dtype == getattr(xp, out_dtype)
        tol = {"float64": 1e-15, "float32": 1e-6}[out_dtype]
        np.testing.assert_allclose(_host(got), _maxmin_oracle(net, x), atol=tol)


# ==============================================================================================
# reflip's core, continued: derivatives and helpers that the sections above check forward only
# ==============================================================================================

from reflip import (  # noqa: E402
    BjorckConvergenceError,
    BjorckConvergenceWarning,
    basin_radius,
    bjorck_coefficients,
    bjorck_fwd,
    bjorck_jvp,
    linf_project_bwd,
    linf_project_fwd,
    linf_project_jvp,
    pinf_project_bwd,
    pinf_project_fwd,
    pinf_project_jvp,
    polar_fwd,
    polar_jvp,
    row_scale_bwd,
    row_scale_fwd,
    row_scale_jvp,
    spectral_normalize_jvp,
)
from reflip.bjorck import MAX_ORDER  # noqa: E402
from reflip.bjorck import ON_NONCONVERGENCE as BJORCK_ON_NONCONVERGENCE  # noqa: E402
from reflip.polar import ON_NONCONVERGENCE as POLAR_ON_NONCONVERGENCE  # noqa: E402

_PROJECTIONS = {
    "pinf": (pinf_project, pinf_project_fwd, pinf_project_bwd, pinf_project_jvp),
    "row_scale": (row_scale, row_scale_fwd, row_scale_bwd, row_scale_jvp),
}


def _frozen_threshold(w, y):
    """The l1-ball projection with each row's threshold held at its value at ``w`` (the
    ``"detached"`` convention [PR-5]): ``a -> sign(a) max(|a| - t, 0)`` on projected rows, with
    ``t = |w| - |y|`` read off the support; the identity on rows left inside."""
    rows = []
    for wi, yi in zip(w, y, strict=True):
        if np.array_equal(wi, yi):
            rows.append(None)
        else:
            support = yi != 0
            rows.append(float(np.mean(np.abs(wi[support]) - np.abs(yi[support]))))

    def g(a):
        return np.stack([ai if t is None else np.sign(ai) * np.maximum(np.abs(ai) - t, 0.0)
                         for ai, t in zip(a, rows, strict=True)])

    return g


@pytest.mark.parametrize("name, option", [("pinf", p) for p in P_VALUES] + [("row_scale", p) for p in P_VALUES]
                         + [("linf", t) for t in THRESHOLDS])
def test_projection_derivatives_every_p_and_threshold(name, option):
    """[PR-4] [PR-5] [PR-8] [PR-9] [PR-10] the VJP and the JVP of ``pinf_project`` and
    ``row_scale`` for every ``p`` and of ``linf_project`` for both thresholds, against central
    differences of the forward (``"detached"``: of the projection with the threshold frozen),
    and against each other (dot-product test); a row inside the ball is passed through."""
    w = _stack(171, (4, 5)) * 1.5
    w[0] *= 0.01
    if name == "linf":
        fun = lambda a: np.asarray(linf_project(a, radius=0.75, threshold=option))  # noqa: E731
        y, res = linf_project_fwd(w, radius=0.75, threshold=option)
        bwd, jvp = linf_project_bwd, linf_project_jvp
        if option == "detached":
            fun = _frozen_threshold(w, np.asarray(y))
    else:
        f, fwd, bwd, jvp = _PROJECTIONS[name]
        fun = lambda a: np.asarray(f(a, option, radius=0.75))  # noqa: E731
        y, res = fwd(w, option, radius=0.75)
    rng = np.random.default_rng(172)
    y_bar, v = rng.standard_normal((2, *w.shape))
    h = 1e-6
    fd = (fun(w + h * v) - fun(w - h * v)) / (2 * h)
    np.testing.assert_allclose(np.asarray(jvp(res, v)), fd, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(bwd(res, y_bar)), _fd_grad(lambda a: float(np.sum(y_bar * fun(a))), w),
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(bwd(res, y_bar))[0], y_bar[0], rtol=1e-15)


@pytest.mark.parametrize("backward", BACKWARDS)
@pytest.mark.parametrize("scaling", SCALINGS)
@pytest.mark.parametrize("order", range(1, MAX_ORDER + 1))
def test_bjorck_jvp_every_option_against_the_polar_factor(order, scaling, backward):
    """[BJ-5] [BJ-8] [BJ-9] every order up to ``MAX_ORDER``, scaling and backward: the forward is
    ``U V^T`` (SVD) from singular values in the basin, and the JVP is the central difference of
    the SVD's polar factor."""
    w = _gapped(44, (5, 3), [0.9, 0.6, 0.3])
    y, res = bjorck_fwd(w, order=order, scaling=scaling, backward=backward, n_iter=60)
    np.testing.assert_allclose(np.asarray(y), _polar_factor(w), atol=1e-12)
    v = np.random.default_rng(3).standard_normal(w.shape)
    h = 1e-6
    fd = (_polar_factor(w + h * v) - _polar_factor(w - h * v)) / (2 * h)
    np.testing.assert_allclose(np.asarray(bjorck_jvp(res, v)), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backward", BACKWARDS)
@pytest.mark.parametrize("degree", [3, 5])
def test_polar_jvp_every_option(degree, backward):
    """[PO-3] the JVP of both degrees and backward modes against central differences of the
    SVD's polar factor."""
    w = _gapped(45, (4, 6), [1.0, 0.5, 0.2, 0.1])
    _, res = polar_fwd(w, degree=degree, backward=backward, tol=1e-13, n_iter=60, on_nonconvergence="ignore")
    v = np.random.default_rng(4).standard_normal(w.shape)
    h = 1e-6
    fd = (_polar_factor(w + h * v) - _polar_factor(w - h * v)) / (2 * h)
    np.testing.assert_allclose(np.asarray(polar_jvp(res, v)), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_spectral_normalize_jvp_every_convention(convention):
    """[PR-11] the JVP: ``"exact"`` the central difference of ``W / sigma_max(W)`` (SVD),
    ``"constant_uv"`` that of ``W / (u^T W v)`` with the top singular pair held."""
    w = _gapped(32, (5, 4), [3.0, 1.0, 0.5, 0.25])
    _, res = spectral_normalize_fwd(w, n_iter=60, convention=convention)
    u_, _, vt_ = np.linalg.svd(w)
    if convention == "exact":
        f = lambda a: a / np.linalg.svd(a, compute_uv=False)[0]  # noqa: E731
    else:
        f = lambda a: a / (u_[:, 0] @ a @ vt_[0])  # noqa: E731
    v = np.random.default_rng(5).standard_normal(w.shape)
    h = 1e-6
    np.testing.assert_allclose(np.asarray(spectral_normalize_jvp(res, v)), (f(w + h * v) - f(w - h * v)) / (2 * h),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("order", range(1, MAX_ORDER + 1))
def test_bjorck_coefficients_are_the_truncated_series(order):
    """[BJ-2] ``P`` agrees with ``x^(-1/2)`` at ``x = 1`` up to the derivative of order
    ``order`` (NumPy's polynomial derivatives against ``(-1/2)(-3/2)...``); order 1 is the
    family ``P(1) = 1, P'(1) = -beta``."""
    poly = np.polynomial.Polynomial(bjorck_coefficients(order))
    assert poly.degree() == order
    for k in range(order + 1):
        want = math.prod(-0.5 - i for i in range(k))
        assert poly.deriv(k)(1.0) == pytest.approx(want, rel=1e-13, abs=1e-13)
    if order == 1:
        for beta in (0.1, 0.25, 0.5):
            fam = np.polynomial.Polynomial(bjorck_coefficients(1, beta))
            assert (fam(1.0), fam.deriv(1)(1.0)) == pytest.approx((1.0, -beta), rel=1e-15)


@pytest.mark.parametrize("order", range(1, MAX_ORDER + 1))
def test_basin_radius_by_iterating_the_scalar_map(order):
    """[BJ-5] the singular values in ``(0, r)`` go to 1 under ``s -> s P(s^2)`` (300 steps of
    the scalar map, from a grid up to ``r (1 - 1e-6)``), those just above ``r`` do not; order
    1 also for ``beta = 1/4``."""
    for beta in ((0.5, 0.25) if order == 1 else (0.5,)):
        poly = np.polynomial.Polynomial(bjorck_coefficients(order, beta))
        r = basin_radius(order, beta)
        s = np.concatenate([np.linspace(0.01, r * (1 - 1e-6), 2001), [r * (1 + 1e-6), r * 1.01]])
        with np.errstate(all="ignore"):
            for _ in range(300):
                s = s * poly(s * s)
        np.testing.assert_allclose(s[:-2], 1.0, atol=1e-12)
        assert not np.any(np.abs(s[-2:] - 1.0) < 0.5)


@pytest.mark.parametrize("mode", BJORCK_ON_NONCONVERGENCE)
@pytest.mark.parametrize("fn", ["bjorck", "polar"])
def test_on_nonconvergence_every_mode(fn, mode):
    """[BJ-7] [PO-3] two steps from far away do not converge: ``"warn"`` warns and returns the
    iterate, ``"raise"`` raises ``BjorckConvergenceError``, ``"ignore"`` returns the same iterate
    silently; a converged call is silent in every mode."""
    assert POLAR_ON_NONCONVERGENCE == BJORCK_ON_NONCONVERGENCE
    import warnings

    w = _gapped(46, (5, 3), [1.0, 0.1, 0.01])
    run = {"bjorck": lambda a, **kw: bjorck(a, tol=1e-10, **kw),
           "polar": lambda a, **kw: polar(a, tol=1e-10, **kw)}[fn]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BjorckConvergenceWarning)
        reference = np.asarray(run(w, n_iter=2, on_nonconvergence="ignore"))
    assert np.abs(reference - _polar_factor(w)).max() > 1e-3  # not converged after two steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(np.asarray(run(w, n_iter=60, on_nonconvergence=mode)), _polar_factor(w), atol=1e-9)
        if mode == "raise":
            with pytest.raises(BjorckConvergenceError):
                run(w, n_iter=2, on_nonconvergence=mode)
        elif mode == "ignore":
            np.testing.assert_array_equal(np.asarray(run(w, n_iter=2, on_nonconvergence=mode)), reference)
        else:
            with pytest.raises(BjorckConvergenceWarning):
                run(w, n_iter=2, on_nonconvergence=mode)
    if mode == "warn":
        with pytest.warns(BjorckConvergenceWarning):
            np.testing.assert_array_equal(np.asarray(run(w, n_iter=2, on_nonconvergence=mode)), reference)


from reflip import safety_bound  # noqa: E402
from reflip.polar import DEGREES, LOWERS, SCHEDULES  # noqa: E402


def test_polar_enumerations_are_the_tested_ones():
    """The shipped schedules are every (degree, lower) pair of ``DEGREES`` x ``LOWERS``, all
    parametrized below."""
    assert DEGREES == (3, 5)
    assert set(SCHEDULES) == set(itertools.product(DEGREES, LOWERS))


@pytest.mark.parametrize("degree, lower", sorted(SCHEDULES))
def test_polar_every_schedule_against_the_svd(degree, lower):
    """[PO-3] [PO-4] for every shipped schedule, with the default number of steps, from a
    matrix whose smallest singular value of ``W / ||W||_F`` is twice the design bound: the
    result is ``U V^T`` of an SVD (float64, to the conditioning ``eps / sigma_min``), and in
    float32 and float64 no singular value exceeds ``1 + safety_bound``."""
    c = 2 * lower * math.sqrt(1.25) / math.sqrt(1 - (2 * lower) ** 2)  # c / ||(1, 0.5, c)||_2 = 2 lower
    w = _gapped(47, (6, 3), [1.0, 0.5, c])
    y = np.asarray(polar(w, degree=degree, lower=lower, on_nonconvergence="ignore"))
    np.testing.assert_allclose(y, _polar_factor(w), atol=1e-13 / c)
    for dtype in (np.float32, np.float64):
        y = np.asarray(polar(w.astype(dtype), degree=degree, lower=lower, on_nonconvergence="ignore"))
        s_max = np.linalg.svd(y.astype(np.float64), compute_uv=False)[0]
        assert s_max <= 1 + safety_bound(w.shape, dtype, degree=degree, lower=lower)


# ---- reflip.nn, continued: the constraint options Dense passes on, fit's options ---------------


def _dense_option_cases():
    """``(constraint, options)``: every value of every enumerated option of the constraints'
    primitives (p of "pinf": test_dense_pinf_every_p)."""
    cases = [("bjorck", {"scaling": s}) for s in SCALINGS]
    cases += [("bjorck", {"backward": b}) for b in BACKWARDS]
    cases += [("bjorck", {"order": o}) for o in range(1, MAX_ORDER + 1)]
    cases += [("polar", {"degree": d}) for d in DEGREES] + [("polar", {"backward": b}) for b in BACKWARDS]
    cases += [("linf", {"threshold": t}) for t in THRESHOLDS]
    cases += [("spectral", {"convention": c}) for c in CONVENTIONS]
    return cases


@pytest.mark.parametrize("constraint, option", _dense_option_cases(), ids=str)
def test_dense_passes_every_option_value_on(constraint, option):
    """[NN-1] each option value reaches the primitive: ``W_eff`` is its oracle (the SVD's polar
    factor, the l1-ball projection by its variational inequality, ``W / sigma_max``), and
    ``grads["W"]`` is the central difference of the function the option differentiates (the
    forward itself; the projection with its threshold frozen for ``"detached"``; ``W / (u^T W
    v)`` with the top singular pair held for ``"constant_uv"``)."""
    w = _dense_weight((4, 5))
    if constraint in ("bjorck", "polar"):
        w = w / 2.0  # singular values in [0.3, 0.9]: in every basin
    extra = {"bjorck": {"n_iter": 60}, "polar": {"n_iter": 60, "tol": 1e-13},
             "spectral": {"n_iter": 200, "tol": 1e-14}, "linf": {"radius": _RADIUS}}[constraint]
    layer = nn.Dense(5, 4, constraint, bias=False, **extra, **option)
    assert all(layer.options[k] == v for k, v in option.items())
    params = {"W": w}
    w_eff = np.asarray(layer.effective_weight(params, np))
    if constraint == "linf":
        _assert_is_projection(w, w_eff, math.inf, _RADIUS)
        f = _frozen_threshold(w, w_eff) if option["threshold"] == "detached" else None
    elif constraint == "spectral":
        _check_spectral(w, w_eff)
        u_, _, vt_ = np.linalg.svd(w)
        f = (lambda a: a / (u_[:, 0] @ a @ vt_[0])) if option["convention"] == "constant_uv" else None
    else:
        _check_bjorck(w, w_eff)
        f = None
    rng = np.random.default_rng(63)
    x = rng.standard_normal((3, 5))
    y_bar = rng.standard_normal((3, 4))
    _, res = layer.forward(params, x, np)
    grad_w = layer.backward(res, y_bar, np)[1]["W"]
    if f is None:
        def loss(a):
            return float(np.sum(y_bar * np.asarray(layer.apply({"W": a}, x, np))))
    else:
        def loss(a):
            return float(np.sum(y_bar * (x @ f(a).T)))
    np.testing.assert_allclose(grad_w, _fd_grad(loss, w), rtol=1e-6, atol=1e-8)


def _toy_problem():
    model = nn.Sequential([nn.Dense(3, 4, "bjorck", n_iter=15), nn.Activation("max_min"), nn.Dense(4, 3, "linf")])
    rng = np.random.default_rng(171)
    x, labels = rng.standard_normal((12, 3)), rng.integers(0, 3, 12)
    return model, model.init(seed=4), x, labels


def test_fit_steps_epochs_state_and_post_update_compose():
    """[NN-9] ``fit`` is its steps composed: ``epochs=1`` is ``steps = steps_per_epoch``; two
    runs of 2 steps, the second resumed from ``history.state`` on the following batches, give
    the parameters of one run of 4 steps bit for bit (Adam's moments and step count carried);
    ``post_update`` is applied after every update, as a hand-written loop of
    ``objective``/``update``/``post_update`` shows."""
    model, params, x, labels = _toy_problem()
    opt = optim.Adam(0.05)
    data = train.minibatches(x, labels, batch_size=3)
    by_epoch, _ = train.fit(model, params, data, opt, epochs=1, progress=False)
    by_steps, _ = train.fit(model, params, data, opt, steps=data.steps_per_epoch, progress=False)
    for a, b in zip(by_epoch, by_steps, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    batches = list(itertools.islice(data(np.random.default_rng(0)), 4))
    whole, _ = train.fit(model, params, batches, opt, steps=4, progress=False)
    half, history = train.fit(model, params, batches[:2], opt, steps=2, progress=False)
    resumed, _ = train.fit(model, half, batches[2:], opt, steps=2, state=history.state, progress=False)
    for a, b in zip(whole, resumed, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])

    def shrink(par):
        return [{k: 0.9 * v for k, v in d.items()} for d in par]

    got, _ = train.fit(model, params, batches, opt, steps=4, post_update=shrink, progress=False)
    objective, state, want = train.supervised_objective(model), opt.init(params), params
    for batch in batches:
        _, grads = objective(want, batch)
        want, state = opt.update(want, grads, state)
        want = shrink(want)
    for a, b in zip(got, want, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


# ---- reflip.universality, continued: lattice operations for every p, to_sequential on every backend


@pytest.mark.parametrize("p", P_VALUES)
def test_lattice_operations_every_p(p):
    """[UN-3] for networks constrained for each ``p``: ``lattice_max`` / ``lattice_min`` are the
    pointwise max / min (bit for bit on dyadic inputs), ``deepen`` the same function, and all
    keep the constraints for that ``p`` (operator norms by brute force)."""
    a = U.random_constrained_network(3, (4,), p, seed=11)
    b = U.random_constrained_network(3, (2, 4), p, seed=12)
    c = U.random_constrained_network(3, (), p, seed=13)
    x = np.round(np.random.default_rng(181).uniform(-2, 2, (200, 3)) * 64) / 64
    for net, want in ((U.lattice_max(a, b, c), np.maximum(np.maximum(a(x), b(x)), c(x))),
                      (U.lattice_min(a, b), np.minimum(a(x), b(x))), (U.deepen(a, 5), a(x))):
        np.testing.assert_array_equal(net(x), want)
        mats = [layer.dense()[0] for layer in net.layers]
        assert _brute_op_norm(mats[0], p, math.inf) <= 1 + 1e-12
        assert all(_brute_op_norm(m, math.inf, math.inf) <= 1 + 1e-12 for m in mats[1:] if m.shape[1] <= 12)
