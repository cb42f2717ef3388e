"""The universality constructions of reflip.universality.interpolation and .lattice: the delta-net,
the Lipschitz test of the data, two-point interpolants, approximation on a box, lattice
operations, reductions and norm networks, with their argument checking.

Oracles: brute-force covering radii of a delta-net over sampled points, the Lipschitz test by
brute force over every pair, numpy.linalg.norm for the norm networks, numpy's max / min over
the operands for lattice operations and reductions, Fraction arithmetic for the exactness of
``INV_SQRT2`` and of the rows scaled by ``_shrink_to_unit_l2``, a time limit (SIGALRM) on the
loops of the constructions, and properties (the Lipschitz report does not depend on the block size, a
column of values is the same as a vector). Errors: a wrong type raises ``TypeError``, a wrong
value ``ValueError``, each message names the parameter, what it got and what was expected.
"""
import itertools
import math
import re
import warnings
from fractions import Fraction

import numpy as np
import pytest

import reflip.universality as U
from reflip.testing.fuzz import time_limit
from reflip.universality import interpolation as I
from reflip.universality import lattice as L

P_VALUES = (1.0, 2.0, math.inf)


def _brute_violations(points, values, p, atol):
    """Every pair i < j over the tolerance, by a double loop."""
    out = []
    for i, j in itertools.combinations(range(len(points)), 2):
        diff = abs(values[i] - values[j])
        dist = np.linalg.norm(points[i] - points[j], ord=p)
        if diff > dist + atol:
            out.append((diff / dist if dist > 0 else math.inf, i, j, diff, dist))
    return out


def _covering_radius(net, low, high, p, rng, samples=4000):
    """The largest l_p distance from sampled box points (and the box's corners) to the net."""
    low, high = np.atleast_1d(np.asarray(low, float)), np.atleast_1d(np.asarray(high, float))
    z = low + (high - low) * rng.random((samples, low.size))
    corners = np.array(list(itertools.product(*zip(low, high, strict=True))))
    z = np.concatenate([z, corners])
    d = np.linalg.norm(z[:, None, :] - net[None, :, :], ord=p, axis=-1)
    return float(d.min(axis=1).max())


# ----------------------------------------------------------------------------------------------
# lipschitz_violation and NotLipschitzError against the brute-force pair test


@pytest.mark.parametrize("p", P_VALUES)
@pytest.mark.parametrize("block", [1, 2, 3, 512])
def test_lipschitz_violation_against_brute_force(p, block):
    rng = np.random.default_rng(7)
    points = rng.standard_normal((9, 2))
    values = 1.3 * rng.standard_normal(9)
    brute = _brute_violations(points, values, p, 0.1)
    assert brute, "the data must hold violations"
    count, i, j, diff, dist = U.lipschitz_violation(points, values, p, atol=0.1, block=block)
    assert type(count) is int and count == len(brute)
    worst = max(brute)
    assert (i, j) == worst[1:3]
    assert diff == pytest.approx(worst[3], rel=1e-12) and dist == pytest.approx(worst[4], rel=1e-12)


def test_lipschitz_violation_defaults_and_ties():
    # Default atol = 0: a pair over its distance by 0.5 is reported.
    points = np.array([[0.0], [1.0], [2.0]])
    assert U.lipschitz_violation(points, [0.0, 1.5, 1.5], 1)[:3] == (1, 0, 1)
    # A pair at exactly its distance is not a violation (the test is strict), diagonal included.
    assert U.lipschitz_violation(points, [0.0, 1.0, 2.0], 1) == (0, None, None, None, None)
    # Two pairs of the same ratio: the report does not depend on the block size.
    values = [0.0, 2.0, 0.0]
    reports = {U.lipschitz_violation(points, values, 2, block=b) for b in (1, 2, 3, 512)}
    assert len(reports) == 1 and next(iter(reports))[0] == 2
    # A first block without violation does not end the search; counts add up over blocks.
    points = np.arange(6.0)[:, None]
    values = [0.0, 1.0, 2.0, 3.0, 10.0, 20.0]
    brute = _brute_violations(points, np.array(values), 1, 0.0)
    assert U.lipschitz_violation(points, values, 1, block=1)[0] == len(brute)
    assert U.lipschitz_violation(points, values, 1, block=2)[0] == len(brute)


def test_lipschitz_violation_repeated_point_warns_nothing():
    points = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        count, i, j, diff, dist = U.lipschitz_violation(points, [0.0, 1.0, 0.5], 2)
    assert (count, i, j, diff, dist) == (1, 0, 1, 1.0, 0.0)


def test_lipschitz_violation_arguments():
    points = np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"^atol must be >= 0(\.0)?, got -1"):
        U.lipschitz_violation(points, [0.0, 0.0], 1, atol=-1.0)
    with pytest.raises(ValueError, match=r"^block must be >= 1, got 0"):
        U.lipschitz_violation(points, [0.0, 0.0], 1, block=0)


def test_not_lipschitz_error_reports_the_worst_pair():
    points = np.array([[0.0], [0.5], [3.0]])
    with pytest.raises(U.NotLipschitzError, match=r"\(ratio 3; 1 pair\(s\)") as info:
        U.interpolate(points, [0.0, 1.5, 0.0], 2, atol=0.0)
    err = info.value
    assert (err.i, err.j, err.difference, err.distance, err.count) == (0, 1, 1.5, 0.5, 1)
    with pytest.raises(U.NotLipschitzError, match=r"\(ratio inf;") as info:
        U.interpolate(np.zeros((2, 1)), [0.0, 1.0], 1, atol=0.0)
    assert (info.value.difference, info.value.distance) == (1.0, 0.0)


# ----------------------------------------------------------------------------------------------
# The data checks shared by lipschitz_violation and interpolate


@pytest.mark.parametrize(("points", "values", "exc", "pattern"), [
    ([["a"]], [0.0], TypeError, r"^points must be real numbers, got dtype <U1"),
    ([[0.0]], ["a"], TypeError, r"^values must be real numbers, got dtype <U1"),
    (np.zeros((0, 2)), np.zeros(0), ValueError, r"^points must have shape \(N, n\) with N, n >= 1, got \(0, 2\)"),
    (np.zeros((2, 0)), np.zeros(2), ValueError, r"^points must have shape \(N, n\) with N, n >= 1, got \(2, 0\)"),
    (np.zeros(3), np.zeros(3), ValueError, r"^points must have shape \(N, n\) with N, n >= 1, got \(3,\)"),
    (np.zeros((3, 2)), np.zeros(2), ValueError, r"^values must have shape \(3,\), one per point, got \(2,\)"),
    (np.zeros((3, 2)), np.zeros((3, 2)), ValueError, r"^values must have shape \(3,\), one per point, got \(3, 2\)"),
    (np.zeros((2, 1)), [0.0, np.nan], ValueError, r"^points and values must be finite$"),
    ([[np.inf], [0.0]], [0.0, 0.0], ValueError, r"^points and values must be finite$"),
])
def test_data_checks(points, values, exc, pattern):
    with pytest.raises(exc, match=pattern):
        U.lipschitz_violation(points, values, 2)
    with pytest.raises(exc, match=pattern):
        U.interpolate(points, values, 2)


def test_values_as_a_column():
    rng = np.random.default_rng(3)
    points = rng.standard_normal((4, 3))
    values = 0.3 * rng.standard_normal(4)
    column = U.interpolate(points, values[:, None], 1)
    flat = U.interpolate(points, values, 1)
    for (w1, b1), (w2, b2) in zip(column.weights(), flat.weights(), strict=True):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    np.testing.assert_allclose(np.asarray(column(points)).reshape(-1), values, atol=1e-12)
    bad = np.array([[0.0, 0.0], [3.0, 0.0]])
    assert U.lipschitz_violation(bad, np.array([[0.0], [5.0]]), 1)[:3] == (1, 0, 1)


def test_interpolate_atol_bounds():
    with pytest.raises(ValueError, match=r"^atol must be >= 0(\.0)?, got -1"):
        U.interpolate(np.zeros((1, 1)), [0.0], 1, atol=-1.0)


# ----------------------------------------------------------------------------------------------
# two_point_interpolant


@pytest.mark.parametrize("p", P_VALUES)
def test_two_point_interpolant_at_the_lipschitz_limit(p):
    # |a - b| equal to the distance: the steepest allowed slope, no tolerance needed.
    x, y = np.array([0.0, 0.0]), np.array([3.0, 4.0])
    dist = {1.0: 7.0, 2.0: 5.0, math.inf: 4.0}[p]
    w, c = U.two_point_interpolant(x, 1.0, y, 1.0 + dist, p, atol=0.0)
    assert w @ x + c == pytest.approx(1.0, abs=1e-14)
    assert w @ y + c == pytest.approx(1.0 + dist, abs=1e-13)
    assert np.linalg.norm(w, ord={1.0: math.inf, 2.0: 2.0, math.inf: 1.0}[p]) <= 1.0


def test_two_point_interpolant_tolerance_and_scalars():
    # Within atol (0.25 over the distance, atol 0.5): accepted, slope clipped to 1.
    w, c = U.two_point_interpolant([0.0], 0.0, [1.0], 1.25, 2, atol=0.5)
    assert 1.0 - 1e-14 <= w[0] <= 1.0 and c == 0.0
    # One coordinate is a valid vector; equal points with equal values give w = 0.
    w, c = U.two_point_interpolant([2.0], 3.0, [2.0], 3.0, 1)
    assert w.tolist() == [0.0] and c == 3.0


@pytest.mark.parametrize(("kwargs", "exc", "pattern"), [
    ({"y": ["s"]}, TypeError, r"^y must be real numbers, got dtype <U1"),
    ({"x": ["s"]}, TypeError, r"^x must be real numbers, got dtype <U1"),
    ({"a": "s"}, TypeError, r"^a must be"),
    ({"b": "s"}, TypeError, r"^b must be"),
    ({"y": [1.0, 2.0, 3.0]}, ValueError,
     r"^x and y must be non-empty vectors of the same length, got shapes \(2,\) and \(3,\)"),
    ({"x": [[0.0, 0.0]], "y": [[1.0, 1.0]]}, ValueError,
     r"^x and y must be non-empty vectors of the same length, got shapes \(1, 2\) and \(1, 2\)"),
    ({"x": [], "y": []}, ValueError,
     r"^x and y must be non-empty vectors of the same length, got shapes \(0,\) and \(0,\)"),
    ({"x": [np.inf, 0.0]}, ValueError, r"^x and y must be finite$"),
    ({"y": [0.0, np.nan]}, ValueError, r"^x and y must be finite$"),
    ({"atol": -1.0}, ValueError, r"^atol must be >= 0(\.0)?, got -1"),
    ({"a": 1.0, "b": 11.0, "atol": 0.0}, ValueError,
     r"^\|a - b\| = 10 > \|\|x - y\|\|_2 = 5: no 1-Lipschitz function"),
])
def test_two_point_interpolant_arguments(kwargs, exc, pattern):
    args = {"x": [0.0, 0.0], "a": 0.0, "y": [3.0, 4.0], "b": 1.0, "p": 2} | kwargs
    with pytest.raises(exc, match=pattern):
        U.two_point_interpolant(args["x"], args["a"], args["y"], args["b"], args["p"], atol=args.get("atol"))


# ----------------------------------------------------------------------------------------------
# interpolant_size against the built network


# Six points first: groups of 5 and 6 values, whose rounds (6, 3 -> 4, 2) meet every branch.
@pytest.mark.parametrize(("n_points", "n"), [(6, 3), (1, 1), (2, 1), (5, 1), (7, 2)])
def test_interpolant_size_matches_the_network(n_points, n):
    rng = np.random.default_rng(n_points)
    points = rng.standard_normal((n_points, n))
    values = 0.1 * rng.standard_normal(n_points)
    with time_limit(3.0):
        size = U.interpolant_size(n_points, n)
    assert size == U.interpolate(points, values, 1).size()._replace(nonzero=None)
    assert all(type(w) is int for w in size.widths)


def test_interpolant_size_arguments():
    with pytest.raises(ValueError, match=r"^n_points must be >= 1, got 0"):
        U.interpolant_size(0, 1)
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0"):
        U.interpolant_size(2, 0)


# ----------------------------------------------------------------------------------------------
# delta_net: covering radius by brute force


@pytest.mark.parametrize("p", P_VALUES)
def test_delta_net_covers_the_box_tightly(p):
    rng = np.random.default_rng(11)
    low, high = [0.0, -1.0], [1.0, 0.5]
    root = {1.0: 2.0, 2.0: math.sqrt(2.0), math.inf: 1.0}[p]
    delta = 0.125 * root  # spacing 0.25 on each axis, an exact number of steps
    net = U.delta_net((low, high), delta, p)
    radius = _covering_radius(net, low, high, p, rng)
    assert radius <= delta * (1 + 1e-12)
    # Not finer than needed: some box point is nearly delta away from the net.
    assert radius >= 0.9 * delta
    # Within the box, every coordinate on its axis grid.
    assert np.all(net >= low) and np.all(net <= high)
    assert len(np.unique(net, axis=0)) == len(net)


@pytest.mark.parametrize("p", P_VALUES)
def test_delta_net_in_four_dimensions(p):
    rng = np.random.default_rng(5)
    low, high = np.zeros(4), np.ones(4)
    delta = {1.0: 1.0, 2.0: 0.5, math.inf: 0.25}[p]  # spacing 0.5 on each axis
    net = U.delta_net((low, high), delta, p)
    assert net.shape == (3**4, 4)
    radius = _covering_radius(net, low, high, p, rng, samples=2000)
    assert 0.8 * delta <= radius <= delta * (1 + 1e-12)


def test_delta_net_degenerate_axes_and_limits():
    net = U.delta_net(([1.0, 2.0], [1.0, 2.0]), 0.1, 2, max_points=1)
    assert net.tolist() == [[1.0, 2.0]]
    # The default max_points is 1,000,000: a net of 10^6 points is allowed, one more is not.
    net = U.delta_net((0.0, 999_999.0), 0.5, math.inf)
    assert net.shape == (1_000_000, 1)
    with pytest.raises(ValueError, match=r"has 1000001 points > max_points=1000000 "):
        U.delta_net((0.0, 1_000_000.0), 0.5, math.inf)


@pytest.mark.parametrize(("box", "delta", "exc", "pattern"), [
    ("ab", 0.1, TypeError, r"^box must be a pair \(low, high\) of numbers or of equal-length vectors, got str"),
    (5, 0.1, TypeError, r"got int$"),
    ((0.0, 1.0, 2.0), 0.1, ValueError, r"^box must be a pair \(low, high\), got 3 item\(s\)"),
    ((["a"], [1.0]), 0.1, TypeError, r"^box low must be real numbers"),
    (([0.0], ["a"]), 0.1, TypeError, r"^box high must be real numbers"),
    (([0.0, 0.0], [1.0, 1.0, 1.0]), 0.1, ValueError,
     r"^box = \(low, high\) must hold non-empty vectors of equal length, got shapes \(2,\), \(3,\)"),
    (([[0.0, 0.0]], [[1.0, 1.0]]), 0.1, ValueError,
     r"^box = \(low, high\) must hold non-empty vectors of equal length, got shapes \(1, 2\), \(1, 2\)"),
    (([], []), 0.1, ValueError, r"^box = \(low, high\) must hold non-empty vectors"),
    (([np.nan], [1.0]), 0.1, ValueError, r"^box must be finite with low <= high"),
    (([0.0], [np.inf]), 0.1, ValueError, r"^box must be finite with low <= high"),
    ((1.0, 0.0), 0.1, ValueError, r"^box must be finite with low <= high"),
    ((0.0, 1.0), 0.0, ValueError, r"^delta must be > 0(\.0)?, got 0"),
    ((0.0, 1.0), -1.0, ValueError, r"^delta must be > 0(\.0)?, got -1"),
    ((0.0, 1.0), "s", TypeError, r"^delta must be"),
])
def test_delta_net_arguments(box, delta, exc, pattern):
    with pytest.raises(exc, match=pattern):
        U.delta_net(box, delta, 2)


def test_delta_net_box_width_overflow_is_refused_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^box widths high - low must be finite in float64"):
            U.delta_net((-1e308, 1e308), 1.0, 1)


def test_delta_net_max_points_message():
    with pytest.raises(ValueError, match=r"^max_points must be >= 1, got 0"):
        U.delta_net((0.0, 1.0), 0.1, 2, max_points=0)
    # Nine axes of 11 points: the first eight are listed, then "...".
    with pytest.raises(ValueError, match=r"\(per-axis counts \[11, 11, 11, 11, 11, 11, 11, 11, \.\.\.\]\)"):
        U.delta_net((np.zeros(9), np.ones(9)), 0.05, math.inf, max_points=10)
    # Eight axes are listed in full.
    with pytest.raises(ValueError, match=r"has 214358881 points > max_points=10 \(per-axis counts "
                                         r"\[11, 11, 11, 11, 11, 11, 11, 11\]\); increase delta or max_points$"):
        U.delta_net((np.zeros(8), np.ones(8)), 0.05, math.inf, max_points=10)
    # Counts from 10^12 on are shown as powers of ten, below in full.
    with pytest.raises(ValueError, match=r"\[~10\^12\.0, 999999999999\]"):
        U.delta_net(([0.0, 0.0], [1e12 - 1, 999999999998.0]), 0.5, math.inf, max_points=10)


# ----------------------------------------------------------------------------------------------
# approximate


def _lipschitz_f(points):
    return np.abs(points).max(axis=1) * 0.5


def test_approximate_fields_and_error_bound():
    rng = np.random.default_rng(2)
    res = U.approximate(_lipschitz_f, ([-1.0, -1.0], [1.0, 1.0]), 0.5, math.inf)
    assert res.delta == 0.5 and res.p == math.inf and res.error_bound == 1.0
    assert res.size == res.network.size()
    z = rng.uniform(-1.0, 1.0, (200, 2))
    err = np.abs(np.asarray(res.network(z)).reshape(-1) - _lipschitz_f(z))
    assert err.max() <= 2 * 0.5


def test_approximate_passes_atol_and_one_point_boxes():
    def steep(points):
        return 1.1 * points[:, 0]

    with pytest.raises(U.NotLipschitzError):
        U.approximate(steep, (0.0, 1.0), 0.25, 1)
    res = U.approximate(steep, (0.0, 1.0), 0.25, 1, atol=1.0)
    assert res.n_points == 3
    res = U.approximate(steep, (0.5, 0.5), 0.25, 1, max_points=1, atol=0.5)
    assert res.n_points == 1


def test_approximate_column_values():
    res = U.approximate(lambda pts: _lipschitz_f(pts)[:, None], ([0.0, 0.0], [1.0, 1.0]), 0.5, 2)
    np.testing.assert_array_equal(res.values, _lipschitz_f(res.points))


@pytest.mark.parametrize(("kwargs", "exc", "pattern"), [
    ({"f": 3}, TypeError, r"^f must be callable \(points \(N, n\) -> values \(N,\)\), got int$"),
    ({"delta": 0.0, "atol": -1.0}, ValueError, r"^delta must be > 0(\.0)?, got 0"),
    ({"delta": -1.0, "atol": -1.0}, ValueError, r"^delta must be > 0(\.0)?, got -1"),
    ({"max_points": 0, "atol": -1.0}, ValueError, r"^max_points must be >= 1, got 0"),
    ({"atol": -1.0}, ValueError, r"^atol must be >= 0(\.0)?, got -1"),
    ({"f": lambda pts: np.array(["s"] * len(pts))}, TypeError,
     r"^f must return real numbers: f\(points\) must be real numbers, got dtype <U1$"),
    ({"f": lambda pts: np.zeros(len(pts) + 1)}, ValueError,
     r"^f must return one value per point, shape \(4,\), got \(5,\)$"),
    ({"f": lambda pts: np.zeros((len(pts), 2))}, ValueError,
     r"^f must return one value per point, shape \(4,\), got \(4, 2\)$"),
    ({"f": lambda pts: np.where(np.all(pts == 1.0, axis=1), np.nan, 0.0)}, ValueError,
     r"^f returned a non-finite value nan at the net point \[1\.0, 1\.0\]$"),
])
def test_approximate_arguments(kwargs, exc, pattern):
    calls = []

    def f(pts):
        calls.append(1)
        return _lipschitz_f(pts)

    args = {"f": f, "delta": 0.5, "max_points": 2500, "atol": None} | kwargs
    with pytest.raises(exc, match=pattern):
        U.approximate(args["f"], ([0.0, 0.0], [1.0, 1.0]), args["delta"], math.inf,
                      max_points=args["max_points"], atol=args["atol"])
    assert not calls, "the arguments are refused before f is called"


# ----------------------------------------------------------------------------------------------
# lattice operations


def _affine(w, b):
    return U.affine_network(np.asarray(w, float), b)


def test_lattice_of_selection_first_layers():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 3))
    a = U.MaxMinNetwork((U.Select(np.array([0]), 3),))
    b = U.MaxMinNetwork((U.Select(np.array([2]), 3),))
    c = _affine([0.5, -0.5, 0.25], 0.1)
    xc = x @ [0.5, -0.5, 0.25] + 0.1
    for nets, ref in [((a, b), np.maximum(x[:, 0], x[:, 2])), ((a, c), np.maximum(x[:, 0], xc)),
                      ((c, b), np.maximum(xc, x[:, 2]))]:
        out = np.asarray(U.lattice_max(*nets)(x)).reshape(-1)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-15)
    both = U.lattice_max(a, b)
    assert isinstance(both.layers[0], U.Select) and both.layers[0].n_in == 3


@pytest.mark.parametrize(("func", "name"), [(U.lattice_max, "lattice_max"), (U.lattice_min, "lattice_min")])
def test_lattice_arguments(func, name):
    a, b = _affine([1.0, 0.0], 0.0), _affine([0.0, 1.0], 0.0)
    with pytest.raises(TypeError, match=rf"^{name} needs at least two networks, got 1$"):
        func(a)
    with pytest.raises(TypeError, match=r"^network 1 must be a MaxMinNetwork, got int$"):
        func(a, 5)
    with pytest.raises(ValueError, match=r"^network 1 takes 3 inputs but network 0 takes 2$"):
        func(a, _affine([1.0, 0.0, 0.0], 0.0))
    with pytest.raises(ValueError, match=r"^network 2 takes 3 inputs but network 0 takes 2$"):
        func(a, b, _affine([1.0, 0.0, 0.0], 0.0))
    two = U.MaxMinNetwork((U.Dense(np.eye(2), np.zeros(2)),))
    with pytest.raises(ValueError, match=r"^network 1 must have a scalar output \(n_out = 1\)"):
        func(a, two)


def test_deepen_arguments():
    net = _affine([1.0, 0.0], 0.0)
    with pytest.raises(TypeError, match=r"^net must be a MaxMinNetwork, got int$"):
        U.deepen(5, 2)
    with pytest.raises(ValueError, match=r"^depth must be >= 1, got 0"):
        U.deepen(net, 0)
    deep = U.deepen(net, 3)
    with pytest.raises(ValueError, match=r"^depth must be >= the network's depth 3, got 2$"):
        U.deepen(deep, 2)


# ----------------------------------------------------------------------------------------------
# reduction_layers


@pytest.mark.parametrize("rows", [3, 4, 5, 6])
def test_reduction_with_zero_padding(rows):
    rng = np.random.default_rng(rows)
    w = rng.standard_normal((rows, 2))
    b = rng.standard_normal(rows)
    x = rng.standard_normal((40, 2))
    vals = np.abs(x @ w.T + b)  # a max of non-negative values: zero padding is harmless
    # |w.x + b| = max(w.x + b, -w.x - b): the rows in pairs, then the max of all.
    net = L.reduction_layers(np.concatenate([w, -w]), np.concatenate([b, -b]), [("max", 1)], pad="zero")
    out = np.asarray(net(x)).reshape(-1)
    np.testing.assert_allclose(out, vals.max(axis=1), rtol=0, atol=1e-14)
    # A max of values below zero sees the padding zero (the documented caveat): with every value
    # negative and a count that is not a power of 2, some round pads and the result is 0.
    neg = L.reduction_layers(np.zeros((rows, 2)), -np.arange(1.0, rows + 1), [("max", 1)], pad="zero")
    expect = 0.0 if rows & (rows - 1) else -1.0
    assert np.asarray(neg(x[:1])).reshape(-1).tolist() == [expect]


def test_reduction_min_max_groups_against_numpy():
    rng = np.random.default_rng(9)
    w = rng.standard_normal((12, 3))
    b = rng.standard_normal(12)
    x = rng.standard_normal((30, 3))
    v = (x @ w.T + b).reshape(30, 4, 3)
    net = L.reduction_layers(w, b, [("min", 4), ("max", 1)])
    out = np.asarray(net(x)).reshape(-1)
    np.testing.assert_allclose(out, v.min(axis=2).max(axis=1), rtol=0, atol=1e-14)


@pytest.mark.parametrize(("w", "b", "stages", "exc", "pattern"), [
    ([[1.0, 2.0], [3.0]], [0.0, 0.0], [("max", 1)], TypeError, r"^w must be an array of real numbers, got list"),
    ([[1.0], [2.0]], [[0.0], [0.0, 1.0]], [("max", 1)], TypeError, r"^b must be an array of real numbers, got list"),
    ([["a"]], [0.0], [("max", 1)], TypeError, r"^w must be real numbers, got dtype <U1"),
    ([[1.0]], ["a"], [("max", 1)], TypeError, r"^b must be real numbers, got dtype <U1"),
    ([1.0, 2.0], [0.0, 0.0], [("max", 1)], ValueError, r"^w must be a non-empty \(R, n\) matrix, got shape \(2,\)"),
    (np.zeros((0, 2)), np.zeros(0), [("max", 1)], ValueError, r"^w must be a non-empty \(R, n\) matrix"),
    (np.zeros((3, 2)), np.zeros(2), [("max", 1)], ValueError,
     r"^b must have shape \(3,\), one bias per row of w, got \(2,\)"),
    (np.zeros((3, 2)), np.zeros(3), [("max", 2)], ValueError,
     r"^stages: 3 values do not split into 2 equal groups \(stage \('max', 2\) needs"),
    (np.zeros((4, 2)), np.zeros(4), [("min", 2)], ValueError,
     r"^the stages leave 2 values; the last stage must have one group$"),
    (np.zeros((2, 2)), np.zeros(2), 5, TypeError, r"^stages must be a sequence of \(op, n_groups\) pairs, got int$"),
    (np.zeros((2, 2)), np.zeros(2), "max", TypeError, r"^stages must be a sequence of \(op, n_groups\) pairs, got str"),
    (np.zeros((2, 2)), np.zeros(2), [("max", 1, 2)], TypeError,
     r"^stages\[0\] must be a pair \(op, n_groups\), got \('max', 1, 2\)$"),
    (np.zeros((2, 2)), np.zeros(2), [5], TypeError, r"^stages\[0\] must be a pair \(op, n_groups\), got 5$"),
    (np.zeros((2, 2)), np.zeros(2), [("mean", 1)], ValueError, r"^stages\[0\] op must be one of \('min', 'max'\)"),
])
def test_reduction_arguments(w, b, stages, exc, pattern):
    with pytest.raises(exc, match=pattern):
        L.reduction_layers(w, b, stages)


# ----------------------------------------------------------------------------------------------
# Exact norms


def test_inv_sqrt2_is_the_largest_float_with_2r2_at_most_1():
    for r in (U.INV_SQRT2, L._inv_sqrt2_below()):
        assert 2 * Fraction(r) ** 2 <= 1
        assert 2 * Fraction(math.nextafter(r, 1.0)) ** 2 > 1


@pytest.mark.parametrize(("n", "ord", "p"), [(16, 1, 1), (1, 1, 2), (1, 1, None), (1, 1, math.inf), (5, math.inf, None),
                                             (4, math.inf, 2), (3, 1, 1)])
def test_norm_network_against_numpy(n, ord, p):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((20, n))
    net = U.norm_network(n, ord, p=p)
    out = np.asarray(net(x)).reshape(-1)
    np.testing.assert_allclose(out, np.linalg.norm(x, ord=ord, axis=1), rtol=1e-14, atol=0)


@pytest.mark.parametrize(("n", "ord", "p", "pattern"), [
    (0, 1, 1, r"^n must be >= 1, got 0"),
    (2049, math.inf, 1, r"^n must be <= 2048, got 2049"),
    (17, 1, 1, r"^\|\|x\|\|_1 needs 2\^n first-layer rows; n must be <= 16, got 17$"),
    (3, 2, None, r"^ord must be 1 or inf: \|\|x\|\|_2 is not piecewise linear, so no MaxMin network \(a piecewise "
                 r"linear function\) computes it exactly$"),
    (3, 1, None, r"^\|\|x\|\|_1 on R\^3 has Lipschitz constant 3\^\(1/2\) or more under the spectral-norm constraints"),
    (3, 1, 2, r"^\|\|x\|\|_1 on R\^3 has Lipschitz constant 3\^\(1/2\) or more under the l_2 universality constraints"),
])
def test_norm_network_arguments(n, ord, p, pattern):
    with pytest.raises(ValueError, match=pattern):
        U.norm_network(n, ord, p=p)


# ----------------------------------------------------------------------------------------------
# Additions: tolerance boundary, rounding of the net's spacing, messages of huge nets, devices


def test_default_atol_boundary():
    # The documented default: 16 (n + 2) u (max |values| + n max |points|), u = 2^-53. Points
    # far from the origin make it large against the ulps of the data (n = 1: 48 u (1 + 1001)).
    points = np.array([[1000.0], [1001.0]])
    atol = 16 * 3 * 2.0**-53 * (1.0 + 1001.0)
    U.interpolate(points, [0.0, 1.0 + 0.97 * atol], 1)
    U.two_point_interpolant(points[0], 0.0, points[1], 1.0 + 0.97 * atol, 1)
    with pytest.raises(U.NotLipschitzError):
        U.interpolate(points, [0.0, 1.0 + 1.03 * atol], 1)
    with pytest.raises(ValueError, match=r"no 1-Lipschitz function"):
        U.two_point_interpolant(points[0], 0.0, points[1], 1.0 + 1.03 * atol, 1)


@pytest.mark.parametrize(("width", "delta"), [(1.2697859859261489, 0.0448937140652013),
                                              (0.6003829342907798, 0.013694672391796382)])
def test_delta_net_spacing_after_rounding(width, delta):
    # Cases where the exact count k = L sqrt(2) / (2 delta) + 1 gives a rounded spacing just
    # over 2 delta / sqrt(2): the net takes the coarsest grid whose float64 spacing satisfies
    # the bound, which is one point more.
    root = math.sqrt(2.0)
    net = U.delta_net(([0.0, 0.0], [width, width]), delta, 2)
    for axis in range(2):
        coords = np.unique(net[:, axis])
        assert np.diff(coords).max() / 2 * root <= delta
        coarser = np.linspace(0.0, width, coords.size - 1)
        assert np.diff(coarser).max() / 2 * root > delta
    assert net.shape == (coords.size**2, 2)


def test_delta_net_rows_are_row_major():
    net = U.delta_net(([0.0, 10.0, -1.0], [1.0, 12.0, 0.0]), 0.3, math.inf)
    # Row-major over the axes: the first axis varies slowest, the rows are lexicographically sorted.
    order = np.lexsort(net.T[::-1])
    np.testing.assert_array_equal(order, np.arange(len(net)))
    assert len({tuple(r) for r in net}) == len(net) and len(np.unique(net[:, 0])) > 1


def test_delta_net_refusal_counts():
    # The count of a refused net is the exact one, before any point is allocated.
    with pytest.raises(ValueError, match=r"has 10000001 points > max_points=1000000 \(per-axis counts \[10000001\]\)"):
        U.delta_net((0.0, 10_000_000.0), 0.5, math.inf)
    # From 10^30 points on, the count is given as a power of ten.
    with pytest.raises(ValueError, match=r"has about 10\^30\.0 points"):
        U.delta_net(([0.0, 0.0], [1e15 - 1, 1e15 - 1]), 0.5, math.inf)


def test_dual_vector_needs_a_vector():
    with pytest.raises(ValueError, match=r"^d must have at least 1 dimension"):
        U.dual_vector(np.asarray(3.0), 1)


@pytest.mark.parametrize("p", P_VALUES)
def test_dual_vector_on_a_non_default_device(p):
    import array_api_strict as xp

    device = xp.Device("device1")
    d = xp.asarray([[1.0, -3.0, 2.0], [0.0, 0.0, 0.0]], device=device)
    u = U.dual_vector(d, p)
    assert u.device == device
    host = np.asarray(xp.asarray(u, device=xp.Device("CPU_DEVICE")))
    dn = np.array([[1.0, -3.0, 2.0], [0.0, 0.0, 0.0]])
    q = {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}[p]
    np.testing.assert_allclose(np.linalg.norm(host[0], ord=q), 1.0, rtol=1e-15)
    np.testing.assert_allclose(host[0] @ dn[0], np.linalg.norm(dn[0], ord=p), rtol=1e-15)
    assert host[1].tolist() == [0.0, 0.0, 0.0]


def test_reduction_min_with_zero_padding():
    # pad="zero" pairs an odd group with the constant 0: a min then sees that 0 too. Six values
    # leave three minima after one round, so the second round pads; the value read at index 0
    # of the hidden vector must be kept, not replaced by the padding zero.
    rng = np.random.default_rng(6)
    w = rng.standard_normal((6, 2))
    x = rng.standard_normal((40, 2))
    for shift in (-5.0, 5.0):
        b = rng.standard_normal(6) + shift
        net = L.reduction_layers(w, b, [("min", 1)], pad="zero")
        out = np.asarray(net(x)).reshape(-1)
        np.testing.assert_allclose(out, np.minimum((x @ w.T + b).min(axis=1), 0.0), rtol=0, atol=1e-14)


def test_refusal_after_rounding_names_delta():
    # The exact counts (21 per axis, 441 points) fit max_points = 441; the rounded spacing asks
    # for 22 per axis, and that net is refused with the same message.
    with pytest.raises(ValueError, match=r"^the delta-net of this box with delta=0\.0448937140652013 has 484 points "
                                         r"> max_points=441 \(per-axis counts \[22, 22\]\)"):
        U.delta_net(([0.0, 0.0], [1.2697859859261489] * 2), 0.0448937140652013, 2, max_points=441)
    assert U.delta_net(([0.0, 0.0], [1.2697859859261489] * 2), 0.0448937140652013, 2, max_points=484).shape == (484, 2)


@pytest.mark.parametrize("name", ["points", "values"])
def test_ragged_data_are_refused_by_name(name):
    data = {"points": [[0.0, 1.0], [2.0, 3.0]], "values": [0.0, 1.0]}
    data[name] = [[0.0], [1.0, 2.0]]
    with pytest.raises(TypeError, match=rf"^{name} must be an array of real numbers, got list"):
        U.lipschitz_violation(data["points"], data["values"], 2)


# ----------------------------------------------------------------------------------------------
# The loops of the constructions end; _shrink_to_unit_l2 against Fraction arithmetic


def _exact_square_norms(w):
    return [sum(Fraction(float(v)) ** 2 for v in row) for row in w]


@pytest.mark.parametrize("rows", [
    # Far outside, on the sphere (its float sum of squares rounds to 1), inside, zero.
    [[3.0, 4.0], [0.6, 0.8], [-0.6, -0.8], [0.3, -0.4], [0.0, 0.0]],
    [[-1.0], [1.0], [0.5], [-7.0]],
    "random",
])
def test_shrink_to_unit_l2_scales_long_rows_just_inside_the_ball(rows):
    """Rows whose float sum of squares is too close to 1 (or above) are scaled by a positive
    factor onto the ball in exact arithmetic, ending a few ulps inside; other rows are kept."""
    if rows == "random":
        rng = np.random.default_rng(3)
        raw = rng.standard_normal((40, 5))
        rows = raw / np.linalg.norm(raw, axis=1, keepdims=True)  # norms 1 up to rounding
        rows[:4] *= [[10.0], [0.5], [1.0 + 1e-15], [-1.0]]
    w = np.array(rows, dtype=np.float64)
    before = w.copy()
    with time_limit(3.0):
        out = I._shrink_to_unit_l2(w)
    np.testing.assert_array_equal(w, before)
    assert out.shape == w.shape and out.dtype == np.float64
    assert all(s <= 1 for s in _exact_square_norms(out))
    for row, new, exact in zip(w, out, _exact_square_norms(w), strict=True):
        if exact <= Fraction(1) - Fraction(1, 10**9):
            np.testing.assert_array_equal(new, row)  # well inside: untouched
            continue
        scale = float(new @ row) / float(row @ row)
        assert 0.0 < scale <= 1.0
        np.testing.assert_allclose(new, scale * row, rtol=1e-15, atol=0)
        assert np.linalg.norm(new) >= 1 - 1e-12  # just inside the sphere, not far


@pytest.mark.parametrize("p", P_VALUES)
def test_delta_net_loops_end_on_point_and_segment_boxes(p):
    with time_limit(3.0):
        point = U.delta_net(([1.5], [1.5]), 0.25, p)
        segment = U.delta_net(([0.0], [1.0]), 0.25, p)
    assert point.tolist() == [[1.5]]
    assert _covering_radius(segment, [0.0], [1.0], p, np.random.default_rng(0), samples=200) <= 0.25


def test_lattice_and_reduction_loops_end():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((30, 2))
    w, b = rng.standard_normal((3, 2)), rng.standard_normal(3)
    nets = [_affine(wk, bk) for wk, bk in zip(w, b, strict=True)]
    affine = x @ w.T + b
    with time_limit(3.0):
        pair = U.lattice_max(*nets[:2])
        triple = U.lattice_min(*nets)
        one = L.reduction_layers(w[:1], b[:1], [("max", 1)])
        three = L.reduction_layers(w, b, [("max", 1)])
    np.testing.assert_allclose(np.asarray(pair(x)).reshape(-1), affine[:, :2].max(axis=1), rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(triple(x)).reshape(-1), affine.min(axis=1), rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(one(x)).reshape(-1), affine[:, 0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.asarray(three(x)).reshape(-1), affine.max(axis=1), rtol=0, atol=1e-14)


@pytest.mark.parametrize("call, message", [
    (lambda: I.interpolate(np.array([[1e308], [-1e308]]), np.array([1e308, -1e308]), 2),
     "points: the differences of a coordinate (max - min) must be finite in float64, they overflow"),
    (lambda: I.interpolate(np.array([[1.0], [-1.0]]), np.array([1e308, -1e308]), 2),
     "values: their differences (max - min) must be finite in float64, they overflow"),
    (lambda: I.lipschitz_violation(np.array([[1e308, 0.0], [-1e308, 0.0]]), np.array([0.0, 1.0]), 1),
     "points: the differences of a coordinate (max - min) must be finite in float64, they overflow"),
    (lambda: I.two_point_interpolant(np.array([1e308]), 0.0, np.array([-1e308]), 1.0, 2),
     "x and y: their difference y - x must be finite in float64, it overflows"),
    (lambda: I.two_point_interpolant(np.array([1.0]), 1e308, np.array([-1.0]), -1e308, math.inf),
     "a and b: their difference b - a must be finite in float64, it overflows"),
])
def test_data_whose_differences_overflow_are_refused_by_name(call, message):
    """[UN-8] finite data whose differences overflow float64 are refused up front, naming the
    data, without a floating-point warning (they used to fail later with messages about an
    ``atol`` the caller never passed, or a non-finite internal weight)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            call()
