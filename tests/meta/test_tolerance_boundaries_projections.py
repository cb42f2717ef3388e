"""Tolerance boundaries of the projections' checks, ``matches_reflip`` and the MaxMin network's
evaluation (issue 20, "tolerance drift"; the derivative and orthonormality checks are in
test_tolerance_boundaries.py).

As there, each check gets an error 10% below its documented tolerance (it must pass) and 10%
above it (it must fail), through the check functions themselves, with the tolerance written
here from its documentation:

- the projections and row scalings ([PR-13], ``_tol``): ``exact_rtol(dtype, 2n + 4) (||v||_1 + r)``
  per row of ``n`` entries, i.e. ``4 (2n + 4) eps (||v||_1 + r)``; a stack against its rows
  alone within twice that (forward) and ``4 (2n + 4) eps sum |g|`` (VJP); the difference of
  the two thresholds' VJPs [PR-5] within ``4 (2n + 4) eps (sum |g| + 1)``; non-expansiveness
  [PR-6] within the two outputs' summed row tolerances;
- ``matches_reflip`` ([AU-2]): ``derivative_rtol = max(100 eps64^(2/3), sqrt(eps(dtype)))``
  relative to reflip's forward, VJP and JVP (with the floor ``||y_bar|| L`` / ``||x_dot|| L``);
- ``max_min_network.evaluates``, ``.lipschitz`` and ``.lattice`` ([UN-12]): the evaluation's
  rounding bound, propagated layer by layer with a factor 4; ``.interpolates`` and
  ``.two_point``: the interpolation tolerance of [UN-12]; ``.norms`` ([UN-5]).

Most planted outputs have one non-zero entry per row, whose l1, l2 and l_inf norms are that
entry: one planted row serves every dual norm q, and rounding moves the planted error by far
less than the margin.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from reflip.audit import projections as audit_projections
from reflip.audit.adapter import AdapterImpl
from reflip.audit.engine import CLAIMS, ClaimFailure, rng_for
from reflip.audit.generic import _check_matches_reflip
from reflip.testing.backends import available_backends
from reflip.testing.strategies.common import Case

NUMPY = available_backends(("numpy",))[0]
MARGIN = 0.1
SIDES = [(1 - MARGIN, False), (1 + MARGIN, True)]
FAILS = pytest.mark.parametrize("fails", [False, True], ids=["below", "above"])


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def _row_tol(dtype, n, l1, r):
    """[PR-13] ``exact_rtol(dtype, 2n + 4) (||v||_1 + r)``."""
    return 4.0 * (2 * n + 4) * _eps(dtype) * (l1 + r)


class _Scripted:
    """Returns the given float64 outputs in call order, with no residuals."""

    name = "planted"

    def __init__(self, *outputs):
        self.outputs = list(outputs)

    def fwd(self, x, **params):
        return np.asarray(self.outputs.pop(0), np.float64), None


# (primitive, params): the dual norm q of each is 1 (linf_project), 2 or inf.
BALLS = [("linf_project", {"radius": 1.0}), ("pinf_project", {"p": 2, "radius": 1.0}),
         ("pinf_project", {"p": 1, "radius": 1.0}), ("row_scale", {"p": 2, "radius": 1.0}),
         ("row_scale", {"p": np.inf, "radius": 1.0})]
BALL_IDS = ["linf", "pinf-p2", "pinf-p1", "row_scale-p2", "row_scale-pinf"]


def _expect(fails, run, match):
    if fails:
        with pytest.raises(ClaimFailure, match=match):
            run()
    else:
        return run()


@pytest.mark.parametrize(("primitive", "params"), BALLS, ids=BALL_IDS)
@FAILS
def test_feasible(dtype, primitive, params, fails):
    """[PR-1] [PR-7] [PR-10] ``<primitive>.feasible``: an output row of norm ``r + s`` from the
    row ``(3, -1, 2, 0.5)`` (``||v||_1 = 6.5``)."""
    x = np.array([[3.0, -1.0, 2.0, 0.5]])
    s = SIDES[fails][0] * _row_tol(dtype, 4, 6.5, 1.0)
    impl = _Scripted([[1.0 + s, 0.0, 0.0, 0.0]])
    check = CLAIMS[f"{primitive}.feasible"].check
    figures = _expect(fails, lambda: check(impl, Case(x=x, params=params), NUMPY, dtype), "leaves the ball")
    if not fails:
        assert figures["norm_over_radius"] == pytest.approx(1.0 + s, abs=1e-16)


@pytest.mark.parametrize(("primitive", "params"), BALLS, ids=BALL_IDS)
@FAILS
def test_identity_inside(dtype, primitive, params, fails):
    """[PR-1] [PR-13] ``<primitive>.identity_inside``: a row ``(a, 0, 0, 0)`` inside the ball by
    ``c`` times the row tolerance, changed by the implementation. Within rounding of the sphere
    (``c = 0.9``) it may be; farther inside (``c = 1.1``) it must come back unchanged. ``a``
    solves ``r - a = c K (a + r)`` and is rounded to the dtype (the check measures the stored
    row), which moves ``c`` by under 1%. A second row, deep inside and returned unchanged, puts
    the case inside the claim's premise (a case with no row inside is not measured)."""
    r = 1.0
    c = SIDES[fails][0]
    k = 4.0 * 12 * _eps(dtype)
    a = float(np.asarray(r * (1 - c * k) / (1 + c * k), dtype))
    assert (r - a) / (k * (a + r)) == pytest.approx(c, rel=0.01)
    x = np.array([[a, 0.0, 0.0, 0.0], [0.25, 0.0, 0.0, 0.0]])
    impl = _Scripted([0.5 * x[0], x[1]])
    check = CLAIMS[f"{primitive}.identity_inside"].check
    _expect(fails, lambda: check(impl, Case(x=x, params=params), NUMPY, dtype), "was changed")


@FAILS
def test_linf_idempotent(dtype, fails):
    """[PR-2] ``linf_project.idempotent``: ``P(P(x))`` off ``P(x)`` by ``s``, against the row
    tolerance of ``x``."""
    x = np.array([[3.0, -1.0, 2.0, 0.5]])
    s = SIDES[fails][0] * _row_tol(dtype, 4, 6.5, 1.0)
    y = np.array([[1.0, 0.0, 0.0, 0.0]])
    impl = _Scripted(y, y + [[s, 0.0, 0.0, 0.0]])
    _expect(fails, lambda: audit_projections._check_idempotent(impl, Case(x=x, params={"radius": 1.0}), NUMPY,
                                                               dtype), r"P\(P\(x\)\) != P\(x\)")


@pytest.mark.parametrize(("primitive", "params"), BALLS[:3], ids=BALL_IDS[:3])
@FAILS
def test_optimal(dtype, primitive, params, fails):
    """[PR-3] [PR-7] ``<primitive>.optimal``: a row inside every ball (its own projection) with
    ``s`` added to one entry."""
    x = np.array([[0.25, -0.125, 0.125, 0.25]])
    s = SIDES[fails][0] * _row_tol(dtype, 4, 0.75, 1.0)
    impl = _Scripted(x + [[s, 0.0, 0.0, 0.0]])
    check = CLAIMS[f"{primitive}.optimal"].check
    figures = _expect(fails, lambda: check(impl, Case(x=x, params=params), NUMPY, dtype), "is not the projection")
    if not fails:
        assert figures["error_over_tol"] == pytest.approx(1 - MARGIN, rel=0.01)


def _kkt_case(part, c, dtype):
    """``(x, y)`` where exactly one KKT tolerance of [PR-2] is met to ``c`` times the row
    tolerance ``K (||x||_1 + r)``, ``r = 1``, ``K = 4 (2n + 4) eps``."""
    k = 4.0 * 12 * _eps(dtype)
    if part == "sphere":  # P(x) = (1, 0, 0, 0) (theta = 2), returned with ||y||_1 = 1 + s
        x = np.array([[3.0, 1.5, 0.5, -1.0]])
        return x, np.array([[1.0 + c * k * 7.0, 0.0, 0.0, 0.0]])
    if part == "unchanged_outside":  # ||x||_1 = 1 + c K (||x||_1 + 1), returned unchanged
        a = (1 + c * k) / (1 - c * k)
        x = np.array([[a, 0.0, 0.0, 0.0]])
        return x, x.copy()
    if part == "one_theta":  # support gaps theta -+ d: P(x) = (0.75, 0.25, 0, 0), theta = 2.25
        d = c * k * 7.5
        return np.array([[3.0, 2.5, 0.0, -1.0]]), np.array([[0.75 + d, 0.25 - d, 0.0, 0.0]])
    # "above_theta": an entry zeroed at theta + d (P(x) = (1, 0, 0, 0), theta = 2)
    d = c * k * 7.5 / (1 - c * k)  # d = c K (6.5 + d + 1)
    return np.array([[3.0, 2.0 + d, 0.5, -1.0]]), np.array([[1.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize(("part", "match"), [("sphere", "does not land on the sphere"),
                                             ("unchanged_outside", "outside the ball"),
                                             ("one_theta", "is not one theta"),
                                             ("above_theta", "above the threshold")])
@FAILS
def test_linf_kkt(dtype, part, match, fails):
    """[PR-2] ``linf_project.kkt``: each of its four tolerances (landing on the sphere, a row
    returned unchanged inside, one theta on the support, zeros at most theta) at 0.9 and 1.1
    times the row tolerance, the others met exactly."""
    x, y = _kkt_case(part, SIDES[fails][0], dtype)
    impl = _Scripted(y)
    _expect(fails, lambda: audit_projections._check_kkt(impl, Case(x=x, params={"radius": 1.0}), NUMPY, dtype),
            match)


@pytest.mark.parametrize("p", [1, 2, np.inf])
@pytest.mark.parametrize("part", ["sphere", "factor"])
@FAILS
def test_row_scale_scaling(dtype, p, part, fails):
    """[PR-10] ``row_scale.scaling``: ``(2, 0, 0, 0)`` scaled to norm ``1 + s`` (must be ``r``
    within the row tolerance ``K (2 + 1)``), or ``(0.5, 0, 0, 0)`` scaled by ``c = 1 + u``
    (``c <= 1 + tol / r``, ``tol = K (0.5 + 1)``)."""
    k = 4.0 * 12 * _eps(dtype)
    c = SIDES[fails][0]
    if part == "sphere":
        x, y, match = np.array([[2.0, 0.0, 0.0, 0.0]]), np.array([[1.0 + c * k * 3.0, 0.0, 0.0, 0.0]]), "not to r"
    else:
        x, match = np.array([[0.5, 0.0, 0.0, 0.0]]), "not a scaling"
        y = x * (1 + c * k * 1.5)
    check = audit_projections._check_scaling
    _expect(fails, lambda: check(_Scripted(y), Case(x=x, params={"p": p, "radius": 1.0}), NUMPY, dtype), match)


@pytest.mark.parametrize("p", [1, 2, np.inf])
@FAILS
def test_row_scale_projection_is_closer(dtype, p, fails):
    """[PR-10] ``row_scale.projection_is_closer``: from ``(2, 0, 0, 0)`` (projection
    ``(1, 0, 0, 0)`` in every ball, at distance 1) an output ``(1 + d, 0, 0, 0)`` closer by
    ``d``, against the row tolerance ``K (2 + 1)``."""
    d = SIDES[fails][0] * _row_tol(dtype, 4, 2.0, 1.0)
    x = np.array([[2.0, 0.0, 0.0, 0.0]])
    impl = _Scripted([[1.0 + d, 0.0, 0.0, 0.0]])
    _expect(fails, lambda: audit_projections._check_projection_is_closer(
        impl, Case(x=x, params={"p": p, "radius": 1.0}), NUMPY, dtype), "the scaling is closer")


@pytest.mark.parametrize("part", ["distance", "firm"])
@FAILS
def test_nonexpansive(dtype, part, fails):
    """[PR-6] ``linf_project.nonexpansive`` / ``pinf_project.nonexpansive``, with ``a = (1/4, 0,
    0, 0)``, ``b = 0`` (both inside; slack ``S = K (1/4 + 1) + K (0 + 1)``): ``P(a) = a + 2 c S
    e_0`` stretches the distance by ``2 c S`` (allowed: ``2 S``); ``P(a) = (1/4, w)`` keeps
    ``<P(a) - P(b), a - b>`` and adds ``w^2 = c S (2 ||P(a)|| + 1/4 + 2 S)`` to
    ``||P(a) - P(b)||^2`` (the firm test; the distance test passes: it grows by about ``1.5 c S``)."""
    k = 4.0 * 12 * _eps(dtype)
    slack = k * 1.25 + k * 1.0
    c = SIDES[fails][0]
    a, b = np.array([[0.25, 0.0, 0.0, 0.0]]), np.zeros((1, 4))
    if part == "distance":
        pa, match = np.array([[0.25 + 2 * c * slack, 0.0, 0.0, 0.0]]), r"\|\|P\(a\) - P\(b\)\|\|_F = "
    else:
        w = 0.0
        for _ in range(4):  # fixed point: ||P(a)|| moves by w^2 only
            w = math.sqrt(c * slack * (2 * math.hypot(0.25, w) + 0.25 + 2 * slack))
        pa, match = np.array([[0.25, w, 0.0, 0.0]]), "not firmly non-expansive"
    for primitive in ("linf_project", "pinf_project"):
        impl = _Scripted(pa, b)
        case = Case(x=a, params={"p": 2, "radius": 1.0} if primitive == "pinf_project" else {"radius": 1.0}, x2=b)
        check = CLAIMS[f"{primitive}.nonexpansive"].check
        _expect(fails, lambda: check(impl, case, NUMPY, dtype), match)  # noqa: B023 - called at once


@FAILS
def test_linf_detached_differs(dtype, fails):
    """[PR-5] ``linf_project.detached_differs``: a row inside the ball (mean term 0) whose exact
    and detached VJPs differ by ``d`` in one entry, against ``K (sum |g| + 1)`` with the
    check's cotangent ``g`` (drawn from the case, rounded to the dtype)."""
    x = np.array([[0.25, -0.125, 0.125, 0.25]])
    g = rng_for(x).standard_normal(x.shape).astype(dtype).astype(np.float64)
    d = SIDES[fails][0] * 4.0 * 12 * _eps(dtype) * (float(np.sum(np.abs(g))) + 1.0)

    def fwd(v, threshold="exact", **params):
        return x, threshold

    def bwd(threshold, y_bar):
        return np.array([[d if threshold == "exact" else 0.0, 0.0, 0.0, 0.0]])

    impl = SimpleNamespace(name="planted", fwd=fwd, bwd=bwd)
    _expect(fails, lambda: audit_projections._check_detached_differs(impl, Case(x=x, params={"radius": 1.0}),
                                                                     NUMPY, dtype), "expected the mean term")


class _RowwiseAdapter(AdapterImpl):
    """An adapter (whose sums may be ordered otherwise, so the check allows rounding): the
    stack's outputs exact, row 0 alone off by ``(dy, dg)`` in entry 0 of its output / VJP."""

    def __init__(self, x0, y, x_bar, dy, dg):
        self.name, self.x0, self.y, self.x_bar, self.dy, self.dg = "planted", x0, y, x_bar, dy, dg

    def fwd(self, x, **params):
        x = np.asarray(x)
        if x.ndim == 2:
            return self.y, None
        row = 0 if np.array_equal(x, self.x0) else 1
        y = self.y[row].copy()
        if row == 0:
            y[0] += self.dy
        return y, row

    def bwd(self, row, y_bar):
        if row is None:
            return self.x_bar
        x_bar = self.x_bar[row].copy()
        if row == 0:
            x_bar[0] += self.dg
        return x_bar


@pytest.mark.parametrize("part", ["forward", "vjp"])
@FAILS
def test_linf_rowwise_adapter(dtype, part, fails):
    """[PR-1] [PR-13] ``linf_project.rowwise`` for an adapter: row 0 alone off its row of the
    stack by ``2 c K (||x_0||_1 + r)`` (forward) or ``c K sum |g_0|`` (VJP, ``g`` the check's
    cotangent)."""
    x = np.array([[3.0, -1.0, 2.0, 0.5], [0.25, -0.125, 0.125, 0.25]])
    y = np.array([[1.0, 0.0, 0.0, 0.0], x[1]])
    g = rng_for(x).standard_normal(x.shape).astype(dtype).astype(np.float64)
    c = SIDES[fails][0]
    k = 4.0 * 12 * _eps(dtype)
    dy = 2 * c * k * (6.5 + 1.0) if part == "forward" else 0.0
    dg = c * k * float(np.sum(np.abs(g[0]))) if part == "vjp" else 0.0
    impl = _RowwiseAdapter(x[0].astype(dtype), y, np.array(g), dy, dg)
    match = "row 0 projected alone differs" if part == "forward" else "the VJP of row 0 alone differs"
    _expect(fails, lambda: audit_projections._check_rowwise(impl, Case(x=x, params={"radius": 1.0}), NUMPY, dtype),
            match)


# ----------------------------------------------------------------------------------------------
# matches_reflip: an implementation against reflip's own primitive, within derivative_rtol


def _derivative_tol(dtype):
    return max(100.0 * float(np.finfo(np.float64).eps) ** (2.0 / 3.0), math.sqrt(_eps(dtype)))


MATCHED = {
    "group_sort": (np.array([0.5, -1.25, 2.0, 0.75, -0.5, 1.5]), {"group_size": 2}),
    "bjorck": (np.random.default_rng(31).standard_normal((4, 3)), {"n_iter": 8, "on_nonconvergence": "ignore"}),
    "linf_project": (np.array([[3.0, -1.0, 2.0, 0.5], [0.25, -0.125, 0.125, 0.25]]), {"radius": 1.0}),
}


def _unit(shape):
    """A fixed direction of unit Frobenius norm."""
    e = np.random.default_rng(7).standard_normal(shape)
    return e / np.linalg.norm(e)


@pytest.mark.parametrize("primitive", list(MATCHED))
@pytest.mark.parametrize("part", ["forward", "vjp", "jvp"])
@FAILS
def test_matches_reflip(dtype, primitive, part, fails):
    """``<primitive>.matches_reflip``: reflip's own forward, VJP and JVP, one of them plus
    ``r (||reference|| + floor) e`` (``e`` of unit norm, ``floor`` 0 for the forward,
    ``||y_bar|| L`` for the VJP, ``||x_dot|| L`` for the JVP, ``L = ||f(x)|| / ||x||``
    [AU-2]): relative error ``r`` against ``derivative_rtol``."""
    from reflip._registry import get

    reference = get(primitive)
    x, params = MATCHED[primitive]
    r = SIDES[fails][0] * _derivative_tol(dtype)
    natural = {}

    def fwd(v, **kw):
        y, res = reference.fwd(v, **kw)
        y = np.asarray(y, np.float64)
        natural["L"] = np.linalg.norm(y) / np.linalg.norm(np.asarray(x, np.float64))
        if part == "forward":
            y = y + r * np.linalg.norm(y) * _unit(y.shape)
        return y, res

    def planted(derivative, kind):
        def call(res, v):
            out = np.asarray(derivative(res, v), np.float64)
            if part == kind:
                size = np.linalg.norm(out) + np.linalg.norm(np.asarray(v, np.float64)) * natural["L"]
                out = out + r * size * _unit(out.shape)
            return out
        return call

    impl = SimpleNamespace(name=primitive, fwd=fwd, bwd=planted(reference.bwd, "vjp"),
                           jvp=planted(reference.jvp, "jvp"))
    figures = _expect(fails, lambda: _check_matches_reflip(impl, Case(x=x, params=params), NUMPY, dtype),
                      {"forward": "forward differs", "vjp": "VJP differs", "jvp": "JVP differs"}[part])
    if not fails:
        assert figures[f"{part}_vs_reflip"] == pytest.approx(r, rel=0.02)


# ----------------------------------------------------------------------------------------------
# max_min_network [UN-12]: the evaluation's rounding bound, propagated layer by layer as
# ``E_k = ||W_k||_inf E_(k-1) + (m_k + 2) eps (||W_k||_inf mag_(k-1) + max |b_k|)`` (``mag`` the
# bound on the entries carried along, from ``max |x|``), with a factor 4.


def _network():
    from reflip.universality import Dense, MaxMinNetwork

    return MaxMinNetwork([Dense(np.array([[0.5, 0.25, 0.0], [0.0, 0.5, -0.5]]), np.array([0.25, -0.125])),
                          Dense(np.array([[0.5, 0.5]]), np.array([0.0625]))])


def _rounding_bound(network, x, dtype):
    mag, err = float(np.max(np.abs(x))), 0.0
    for w, b in network.weights():
        row_l1 = float(np.max(np.sum(np.abs(w), axis=1)))
        new_mag = row_l1 * mag + float(np.max(np.abs(b)))
        err = row_l1 * err + (w.shape[1] + 2) * _eps(dtype) * new_mag
        mag = new_mag
    return 4.0 * err


@FAILS
def test_max_min_network_evaluates(dtype, fails):
    """[UN-2] [UN-12] ``max_min_network.evaluates``: the dense float64 evaluation plus ``s``,
    against the bound in the dtype plus twice the float64 one (the reference's own rounding)."""
    from reflip.audit import universality as audit_universality
    from reflip.testing.networks import dense_reference

    net = _network()
    x = np.array([[0.5, -0.25, 1.0]])
    s = SIDES[fails][0] * (_rounding_bound(net, x, dtype) + 2 * _rounding_bound(net, x, np.float64))
    got = dense_reference(net, x) + s
    impl = SimpleNamespace(name="planted", fun=lambda v, network: got)
    figures = _expect(fails, lambda: audit_universality._check_evaluates(impl, Case(x=x, params={"network": net}),
                                                                          NUMPY, dtype), "differs from the dense")
    if not fails:
        assert figures["error_over_bound"] == pytest.approx(1 - MARGIN, rel=0.01)


@FAILS
def test_max_min_network_lipschitz(dtype, fails):
    """[UN-1] [UN-12] ``max_min_network.lipschitz``: ``x - x' = e_0`` (norm 1 for every p), a
    network meeting the constraints, outputs ``1 + c S`` and 0 with ``S`` the two inputs'
    rounding bounds."""
    from reflip.audit import universality as audit_universality
    from reflip.audit.universality import exact_constraints

    net = _network()
    assert exact_constraints(net, np.inf)[0]
    x, x2 = np.array([[1.0, 0.0, 0.0]]), np.zeros((1, 3))
    slack = _rounding_bound(net, x, dtype) + _rounding_bound(net, x2, dtype)
    outputs = [np.array([[1.0 + SIDES[fails][0] * slack]]), np.zeros((1, 1))]
    impl = SimpleNamespace(name="planted", fun=lambda v, network: outputs.pop(0))
    _expect(fails, lambda: audit_universality._check_lipschitz(impl, Case(x=x, params={"network": net}, x2=x2),
                                                                NUMPY, dtype), "> 1 for a network meeting")


def _interpolation_tol(points, values, dtype):
    """[UN-12] ``32 (n + 4) eps64 S + atol + 4 (n + 2) eps(dtype) S``, ``S = max |v| + n max |x|``,
    with the default data tolerance ``atol = 16 (n + 2) u S`` of [UN-13] (``u = eps64 / 2``)."""
    n = points.shape[1]
    scale = float(np.max(np.abs(values))) + n * float(np.max(np.abs(points)))
    e64 = _eps(np.float64)
    return 32 * (n + 4) * e64 * scale + 16 * (n + 2) * (e64 / 2) * scale + 4 * (n + 2) * _eps(dtype) * scale


@FAILS
def test_max_min_network_interpolates(dtype, fails):
    """[UN-8] [UN-12] ``max_min_network.interpolates``: the interpolant's values at the data
    points off by ``c`` times the interpolation tolerance."""
    from reflip.audit import constructions as audit_constructions

    points, values = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.array([0.0, 0.5, -0.5])
    got = (values + SIDES[fails][0] * _interpolation_tol(points, values, dtype))[:, None]
    impl = SimpleNamespace(name="planted", fun=lambda v, network: got)
    case = Case(x=points, params={"values": values, "p": 2})
    figures = _expect(fails, lambda: audit_constructions._check_interpolates(impl, case, NUMPY, dtype), "but values")
    if not fails:
        assert figures["error_over_tol"] == pytest.approx(1 - MARGIN, rel=0.01)


@FAILS
def test_max_min_network_two_point(dtype, fails):
    """[UN-4] [UN-12] ``max_min_network.two_point``: ``g(x)`` off ``a`` by ``c`` times the
    interpolation tolerance of the two points."""
    from reflip.audit import constructions as audit_constructions

    pair, a, b = np.array([[0.5, -0.25], [0.0, 0.75]]), 0.25, -0.5
    got = np.array([[a + SIDES[fails][0] * _interpolation_tol(pair, np.array([a, b]), dtype)], [b]])
    impl = SimpleNamespace(name="planted", fun=lambda v, network: got)
    case = Case(x=pair, params={"a": a, "b": b, "p": 2})
    figures = _expect(fails, lambda: audit_constructions._check_two_point(impl, case, NUMPY, dtype), "instead of a")
    if not fails:
        assert figures["error_over_tol"] == pytest.approx(1 - MARGIN, rel=0.01)


@FAILS
def test_max_min_network_lattice(dtype, fails):
    """[UN-3] [UN-12] ``max_min_network.lattice``: the lattice max off the pointwise max of the
    two operands' outputs by ``c`` times ``2 (E_a + E_b)`` (their rounding bounds); the lattice
    min exact."""
    from reflip.audit import constructions as audit_constructions
    from reflip.universality import Dense, MaxMinNetwork

    first = _network()
    second = MaxMinNetwork([Dense(np.array([[-0.5, 0.0, 0.25]]), np.array([0.125]))])
    x = np.array([[0.5, -0.25, 1.0]])
    fa, fb = np.array([[0.25]]), np.array([[-0.125]])
    tol = 2 * (_rounding_bound(first, x, dtype) + _rounding_bound(second, x, dtype))
    outputs = [fa, fb, np.maximum(fa, fb) + SIDES[fails][0] * tol, np.minimum(fa, fb)]
    impl = SimpleNamespace(name="planted", fun=lambda v, network: outputs.pop(0))
    case = Case(x=x, params={"first": first, "second": second, "p": np.inf})
    _expect(fails, lambda: audit_constructions._check_lattice(impl, case, NUMPY, dtype), "lattice_max differs")


@pytest.mark.parametrize(("ord_", "p"), [(np.inf, None), (1, 1)], ids=["inf-spectral", "l1-p1"])
@FAILS
def test_max_min_network_norms(dtype, ord_, p, fails):
    """[UN-5] ``max_min_network.norms``: ``||x||_ord`` off by ``c`` times the tolerance, under
    the spectral-norm constraint ``(2^-51 + 4 (n + 2) eps) ||x|| depth`` (weights ``1/sqrt(2)``
    rounded down, then rounding per layer) and under the l1 constraint ``2 n eps ||x||_1``
    (one sum of ``n`` terms)."""
    from reflip.audit import constructions as audit_constructions
    from reflip.universality import norm_network

    n = 3
    x = np.array([[0.5, -0.25, 1.0], [-2.0, 0.75, 0.125]])
    want = np.linalg.norm(x, ord=ord_, axis=1)
    if p is None:
        tol = (2.0**-51 + 4 * (n + 2) * _eps(dtype)) * want * norm_network(n, ord_).depth
    else:
        tol = 2 * n * _eps(dtype) * want
    got = (want + SIDES[fails][0] * tol)[:, None]
    impl = SimpleNamespace(name="planted", fun=lambda v, network: got)
    _expect(fails, lambda: audit_constructions._check_norms(impl, Case(x=x, params={"ord": ord_, "p": p}), NUMPY,
                                                            dtype), "network gives")
