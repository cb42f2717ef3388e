"""The universality construction (reflip.universality), beyond the claims that
tests/audit/test_claims.py runs on every backend: operator norms by brute force, exact rational
constraint checks, the interpolant as the lattice closure, the sharpness of 2 delta, sizes, the
reflip.nn export, and argument checking.

Oracles: the l_inf operator norm as a maximum over the vertices of the unit cube, ||W||_{p,inf}
over the extreme points of the l_p ball (p = 1, inf) or an SVD per row (p = 2) with a sampled
lower bound, Fraction arithmetic for exactness, brute-force nearest points, the targets' own
formulas.
"""
import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reflip.universality as U
from reflip.audit.universality import dense_reference, interpolation_tolerance

P_VALUES = (1.0, 2.0, math.inf)


# ----------------------------------------------------------------------------------------------
# independent operator norms


def linf_operator_norm(w):
    """max_{||x||_inf <= 1} ||W x||_inf over the 2^n vertices of the cube (a convex function
    attains its maximum over a polytope at a vertex)."""
    n = w.shape[1]
    vertices = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
    return float(np.max(np.abs(vertices @ w.T)))


def p_inf_operator_norm(w, p):
    """max_{||x||_p <= 1} ||W x||_inf: over the extreme points of the l_p ball for p in {1, inf}
    (±e_k, the cube's vertices); for p = 2 the largest singular value of each row as a 1 x n
    matrix, checked against sampled unit vectors (a lower bound)."""
    if p == math.inf:
        return linf_operator_norm(w)
    if p == 1:
        return float(np.max(np.abs(w)))  # W (±e_k) is ±(column k)
    upper = max(float(np.linalg.svd(row[None, :], compute_uv=False)[0]) for row in w)
    x = np.random.default_rng(0).standard_normal((256, w.shape[1]))
    lower = float(np.max(np.abs(x / np.linalg.norm(x, axis=1, keepdims=True) @ w.T)))
    assert lower <= upper * (1 + 1e-12)
    return upper


def exact_row_bound(w, q):
    """Every row has ||w_i||_q <= 1 in exact rational arithmetic."""
    for row in w:
        terms = [Fraction(float(v)) for v in row]
        if q == 1:
            total = sum(abs(t) for t in terms)
        elif q == 2:
            total = sum(t * t for t in terms)
        else:
            total = max(abs(t) for t in terms)
        if total > 1:
            return False
    return True


def check_constraints_independently(net, p):
    """[UN-1] the universality constraints, by brute force (small layers) and exactly."""
    q = {1.0: math.inf, 2.0: 2, math.inf: 1}[p]
    weights = net.weights()
    assert exact_row_bound(weights[0][0], q)
    assert p_inf_operator_norm(weights[0][0], p) <= 1 + 1e-15
    for w, _ in weights[1:]:
        assert exact_row_bound(w, 1)
        if w.shape[1] <= 12:
            assert linf_operator_norm(w) <= 1.0


def _target(kind, rng, n, p):
    centers = rng.uniform(-1, 1, (3, n))
    if kind == "distance":
        return lambda x: np.min(np.linalg.norm(x[:, None] - centers[None], ord=p, axis=-1), axis=1)
    slopes, heights = rng.uniform(0, 1, 3), rng.uniform(-1, 1, 3)
    if kind == "cones":
        return lambda x: np.max(heights - slopes * np.linalg.norm(x[:, None] - centers[None], ord=p, axis=-1), axis=1)
    net = U.random_constrained_network(n, [4, 2], p, seed=int(rng.integers(1000)))
    return lambda x: dense_reference(net, x)[:, 0]


# ----------------------------------------------------------------------------------------------
# interpolation and approximation


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31), p=st.sampled_from(P_VALUES), n=st.integers(1, 2),
       kind=st.sampled_from(["distance", "cones", "network"]))
def test_approximation_properties(seed, p, n, kind):
    """[UN-7] constructively, with [UN-8] [UN-9] [UN-10] [UN-1], on random 1-Lipschitz targets:
    the network meets the constraints (brute-force operator norms, exact row norms),
    interpolates the net, stays within 2 delta on dense samples, is 1-Lipschitz on sampled pairs
    and uses MaxMin only."""
    rng = np.random.default_rng(seed)
    f = _target(kind, rng, n, p)
    delta = 0.3 if n == 1 else 0.45
    box = (np.full(n, -0.5), np.full(n, 0.5))
    result = U.approximate(f, box, delta, p)
    net = result.network
    check_constraints_independently(net, p)
    tol = interpolation_tolerance(result.points, result.values, np.float64)
    assert np.max(np.abs(net(result.points)[:, 0] - result.values)) <= tol
    xs = rng.uniform(-0.5, 0.5, (2000, n))
    assert np.max(np.abs(net(xs)[:, 0] - f(xs))) <= 2 * delta + tol
    ys = xs + rng.normal(0, 0.2, xs.shape)
    ratio = np.abs(net(xs) - net(ys))[:, 0] / np.linalg.norm(xs - ys, ord=p, axis=1)
    assert np.max(ratio) <= 1 + 1e-12
    assert result.error_bound == 2 * delta
    assert all(isinstance(layer, (U.Dense, U.Select)) for layer in net.layers)


def test_delta_net_covers_the_box():
    """[UN-9] every point of the box is within delta of the net (brute-force nearest point,
    at random points and at the cell centres, the farthest points)."""
    rng = np.random.default_rng(1)
    for p, n in itertools.product(P_VALUES, (1, 2, 3)):
        box = (rng.uniform(-1, 0, n), rng.uniform(0.1, 1, n))
        delta = 0.2
        net = U.delta_net(box, delta, p)
        xs = rng.uniform(box[0], box[1], (3000, n))
        axes = [np.unique(net[:, k]) for k in range(n)]
        centres = np.stack(np.meshgrid(*[(a[:-1] + a[1:]) / 2 if a.size > 1 else a for a in axes],
                                       indexing="ij"), -1).reshape(-1, n)
        xs = np.concatenate([xs, centres])
        nearest = np.min(np.linalg.norm(xs[:, None] - net[None], ord=p, axis=-1), axis=1)
        assert np.max(nearest) <= delta * (1 + 1e-12), (p, n)
        assert net.min(axis=0).tolist() == list(box[0]) and net.max(axis=0).tolist() == list(box[1])
    # A flat box (zero width) needs one coordinate on that axis.
    assert U.delta_net(([0.0, 1.0], [1.0, 1.0]), 0.5, math.inf).shape == (2, 2)


def test_two_delta_is_sharp():
    """[UN-10] the tent f(x) = delta - |x - delta| on the net {2 k delta : k = -m..m+1}: the
    interpolant has F(delta) <= -m delta / (m + 1) while f(delta) = delta, so the error
    exceeds 2 delta - delta / (m + 1) > delta, and never 2 delta."""
    delta = 0.125
    for m in (1, 3, 6):
        points = 2 * delta * np.arange(-m, m + 2, dtype=float)[:, None]
        f = lambda x: delta - np.abs(x[:, 0] - delta)  # noqa: E731
        net = U.interpolate(points, f(points), 2)
        error = float(f(np.array([[delta]]))[0] - net(np.array([[delta]]))[0, 0])
        assert error >= 2 * delta - delta / (m + 1) - 1e-15
        xs = np.linspace(points[0, 0], points[-1, 0], 4001)[:, None]
        assert np.max(np.abs(net(xs)[:, 0] - f(xs))) <= 2 * delta + 1e-15
    assert error > delta  # an error bound of delta would be false


def test_interpolant_is_the_lattice_closure():
    """[UN-8] [UN-3] interpolate builds exactly (weight for weight) the network that the lattice
    operations give for max_i min_{j != i} g_ij with g_ij the two-point interpolants: the
    reductions are the balanced lattice trees, the finite max-min of the lemma [UN-6]."""
    rng = np.random.default_rng(3)
    for n_pts, p in ((2, 1.0), (3, 2.0), (5, math.inf), (6, 2.0)):
        pts = rng.uniform(-1, 1, (n_pts, 2))
        vals = np.linalg.norm(pts - 0.3, ord=p, axis=1)
        groups = []
        for i in range(n_pts):
            pieces = []
            for j in range(n_pts):
                if j != i:
                    w, c = U.two_point_interpolant(pts[i], vals[i], pts[j], vals[j], p)
                    pieces.append(U.affine_network(w, c))
            groups.append(U.lattice_min(*pieces) if len(pieces) > 1 else pieces[0])
        tree = U.lattice_max(*groups)
        net = U.interpolate(pts, vals, p)
        assert net.depth == tree.depth
        for (w1, b1), (w2, b2) in zip(net.weights(), tree.weights(), strict=True):
            np.testing.assert_array_equal(w1, w2)
            np.testing.assert_array_equal(b1, b2)


def test_sizes_and_growth():
    """[UN-11] interpolant_size matches the built networks; depth 1 + ceil(log2(N-1)) +
    ceil(log2 N), first width N (N - 1) (rounded up to even per group; 2 for N = 2), dense parameters
    growing like N^4 and stored numbers like N^2."""
    rng = np.random.default_rng(4)
    for n_pts in list(range(1, 18)) + [33]:
        pts = rng.uniform(-1, 1, (n_pts, 2))
        net = U.interpolate(pts, np.zeros(n_pts), 2)
        size = net.size()
        assert U.interpolant_size(n_pts, 2) == size._replace(nonzero=None)
        if n_pts > 1:
            assert size.depth == 1 + math.ceil(math.log2(n_pts - 1)) + math.ceil(math.log2(n_pts))
            assert size.widths[0] == (2 if n_pts == 2 else n_pts * (n_pts - 1 + (n_pts - 1) % 2))
    big, bigger = U.interpolant_size(400, 2), U.interpolant_size(800, 2)
    assert 12 < bigger.dense_parameters / big.dense_parameters < 20  # ~2^4
    assert 3.5 < bigger.stored / big.stored < 4.5  # ~2^2


def test_refusal_names_the_worst_pair():
    """[UN-13] non-Lipschitz data: NotLipschitzError with the pair of largest ratio (brute force),
    both numbers and a pointer to [UN-1]; a repeated point with two values has ratio inf."""
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [0.0, 0.5001]])
    vals = np.array([0.0, 1.5, 0.2, 0.6])
    with pytest.raises(U.NotLipschitzError, match=r"worst pair \(i, j\) = \(2, 3\)") as info:
        U.interpolate(pts, vals, 2)
    assert (info.value.i, info.value.j) == (2, 3) and info.value.count == 4  # (0,1) (1,2) (0,3) (2,3)
    assert "UN-1" in str(info.value) and "l_2" in str(info.value)
    with pytest.raises(U.NotLipschitzError, match="ratio inf"):
        U.interpolate(np.array([[1.0], [1.0]]), np.array([0.0, 1e-3]), math.inf)
    assert isinstance(info.value, ValueError)


def test_rounding_tolerance_of_the_data():
    """[UN-13] [UN-12] values a rounding error above ratio 1 are accepted by default (slopes
    clipped, constraints still exact), refused with atol=0."""
    pts = np.array([[0.0], [0.1]])
    vals = np.array([0.0, np.nextafter(0.1, 1)])  # |diff| one ulp above the distance
    net = U.interpolate(pts, vals, 1)
    check_constraints_independently(net, 1.0)
    assert np.max(np.abs(net(pts)[:, 0] - vals)) <= 2e-17
    with pytest.raises(U.NotLipschitzError):
        U.interpolate(pts, vals, 1, atol=0.0)


def test_two_point_interpolant_and_dual_vectors():
    """[UN-4] g(x) = a, g(y) = b, ||w||_q <= 1 exactly (Fraction), u . d = ||d||_p with
    ||u||_q = 1; refusal when |a - b| > ||x - y||_p; a repeated point gives a constant."""
    rng = np.random.default_rng(5)
    for p in P_VALUES:
        q = {1.0: math.inf, 2.0: 2, math.inf: 1}[p]
        for _ in range(50):
            x, y = rng.uniform(-2, 2, (2, 3))
            d = y - x
            u = U.dual_vector(d, p)
            assert abs(u @ d - np.linalg.norm(d, ord=p)) <= 1e-15 * np.linalg.norm(d, ord=p) * 4
            assert abs(np.linalg.norm(u, ord=q) - 1) <= 4e-16
            a = rng.uniform(-1, 1)
            b = a + rng.choice([-1.0, 1.0, rng.uniform(-1, 1)]) * np.linalg.norm(d, ord=p)
            w, c = U.two_point_interpolant(x, a, y, b, p)
            assert exact_row_bound(w[None], q)
            tol = interpolation_tolerance(np.stack([x, y]), np.array([a, b]), np.float64)
            assert abs(w @ x + c - a) <= tol and abs(w @ y + c - b) <= tol
        with pytest.raises(ValueError, match="no 1-Lipschitz function"):
            U.two_point_interpolant(np.zeros(2), 0.0, np.ones(2), 10.0, p)
        w, c = U.two_point_interpolant(np.ones(2), 0.5, np.ones(2), 0.5, p)
        assert np.all(w == 0) and c == 0.5
    # p = inf: the dual is a signed unit vector at the first largest |d_k|, never sign(d).
    np.testing.assert_array_equal(U.dual_vector(np.array([1.0, -3.0, 3.0]), math.inf), [0.0, -1.0, 0.0])


# ----------------------------------------------------------------------------------------------
# lattice operations and norms


def test_lattice_of_networks_with_different_depths():
    """[UN-3] max / min of networks of depths 1, 2 and 4 (selections included): pointwise max /
    min bit for bit on dyadic inputs, constraints kept, depth max + 1, widths summed."""
    a = U.random_constrained_network(2, [], math.inf, seed=1)  # affine
    b = U.random_constrained_network(2, [4], math.inf, seed=2)
    c = U.interpolate(np.array([[0.0, 0.0], [0.5, 0.25], [1.0, -1.0]]), np.array([0.0, 0.5, 0.25]), math.inf)
    x = np.round(np.random.default_rng(6).uniform(-2, 2, (200, 2)) * 64) / 64
    for first, second in itertools.combinations([a, b, c], 2):
        for op, fn in ((U.lattice_max, np.maximum), (U.lattice_min, np.minimum)):
            net = op(first, second)
            np.testing.assert_array_equal(net(x), fn(first(x), second(x)))
            check_constraints_independently(net, math.inf)
            assert net.depth == max(first.depth, second.depth) + 1
            assert net.size().widths[0] == (2 if first.depth == 1 else first.size().widths[0]) + (
                2 if second.depth == 1 else second.size().widths[0])
    three = U.lattice_max(a, b, c)
    np.testing.assert_array_equal(three(x), np.maximum(np.maximum(a(x), b(x)), c(x)))
    deep = U.deepen(b, 5)
    np.testing.assert_array_equal(deep(x), b(x))
    assert deep.depth == 5


def test_abs_network_is_exact_and_orthonormal():
    """[UN-5] |x| with weights +-r, r the float just below 1/sqrt(2): 2 r^2 <= 1 exactly (so
    ||W||_2 <= 1), singular values 1 to rounding, F(x) = |x| to 2^-51 relative plus rounding,
    and derivative +-1 by central differences."""
    net = U.abs_network()
    r = Fraction(U.INV_SQRT2)
    assert 2 * r * r <= 1 and 2 * Fraction(math.nextafter(U.INV_SQRT2, 1)) ** 2 > 1
    for w, _ in net.weights():
        s = np.linalg.svd(w, compute_uv=False)
        assert np.all(s <= 1) and np.all(s >= 1 - 2e-16)
    x = np.concatenate([np.linspace(-5, 5, 1001), [0.0, -0.0, 1e-300, -1e300]])[:, None]
    got = net(x)[:, 0]
    assert np.all(np.abs(got - np.abs(x[:, 0])) <= 2.0**-50 * np.abs(x[:, 0]))
    h = 1e-6
    xs = np.linspace(-1, 1, 40)[:, None] + 0.0123
    slope = (net(xs + h) - net(xs - h))[:, 0] / (2 * h)
    np.testing.assert_allclose(np.abs(slope), 1.0, atol=1e-9)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 5))
def test_norm_networks(seed, n):
    """[UN-5] ||x||_inf exact (bit for bit) under every universality constraint and to 2^-51
    relative under the spectral-norm one; ||x||_1 under p = 1 (and only there, for n > 1)."""
    x = np.random.default_rng(seed).standard_normal((64, n)) * 10
    inf_norm = np.max(np.abs(x), axis=1)
    for p in P_VALUES:
        net = U.norm_network(n, math.inf, p=p)
        np.testing.assert_array_equal(net(x)[:, 0], inf_norm)
        check_constraints_independently(net, p)
    spectral = U.norm_network(n, math.inf)
    assert max(np.linalg.svd(w, compute_uv=False)[0] for w, _ in spectral.weights()) <= 1 + 1e-15
    assert np.all(np.abs(spectral(x)[:, 0] - inf_norm) <= 2.0**-50 * inf_norm)
    net1 = U.norm_network(n, 1, p=1)
    check_constraints_independently(net1, 1.0)
    np.testing.assert_allclose(net1(x)[:, 0], np.sum(np.abs(x), axis=1), rtol=4 * n * 2.0**-52)
    if n > 1:
        for p in (None, 2, math.inf):
            with pytest.raises(ValueError, match="Lipschitz constant"):
                U.norm_network(n, 1, p=p)


# ----------------------------------------------------------------------------------------------
# the network value: reflip.nn export, evaluation, arguments


def test_to_sequential_computes_the_same_function():
    """[UN-2] the reflip.nn model of a network (Dense(constraint="none") layers with
    Activation("max_min") between them) computes the same values; only MaxMin activations."""
    from reflip import nn

    rng = np.random.default_rng(7)
    pts = rng.uniform(-1, 1, (7, 2))
    for net in (U.interpolate(pts, np.linalg.norm(pts, axis=1), 2),
                U.lattice_max(U.random_constrained_network(2, [4], 1, seed=3), U.affine_network([1.0, 0.0], 0.0))):
        model, params = net.to_sequential()
        activations = [layer for layer in model.layers if isinstance(layer, nn.Activation)]
        assert {a.name for a in activations} == {"max_min"} and len(activations) == net.depth - 1
        assert all(layer.constraint == "none" for layer in model.layers if isinstance(layer, nn.Dense))
        x = rng.uniform(-2, 2, (100, 2))
        np.testing.assert_array_equal(model(params, x), net(x))
    with pytest.raises(ValueError, match="max_parameters"):
        U.interpolate(rng.uniform(size=(40, 2)), np.zeros(40), 2).to_sequential(max_parameters=1000)


def test_evaluation_on_array_api_strict_and_float32():
    """[UN-2] the same values on array_api_strict; float32 within the rounding model."""
    import array_api_strict as xp

    pts = np.random.default_rng(8).uniform(-1, 1, (6, 2))
    net = U.interpolate(pts, np.linalg.norm(pts, ord=1, axis=1), 1)
    x = np.random.default_rng(9).uniform(-1, 1, (20, 2))
    got = np.asarray(net(xp.asarray(x)))
    np.testing.assert_array_equal(got, net(x))
    got32 = net(x.astype(np.float32))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, net(x), atol=1e-6)


def test_inputs_are_not_modified_and_arguments_checked():
    pts = np.random.default_rng(10).uniform(-1, 1, (5, 2))
    vals = np.linalg.norm(pts, axis=1)
    pts.flags.writeable = False
    vals.flags.writeable = False
    net = U.interpolate(pts, vals, 2)
    net(pts)
    with pytest.raises(ValueError, match=r"p must be 1, 2 or inf \(math.inf\)"):
        U.interpolate(pts, vals, 3)
    with pytest.raises(ValueError, match=r"values must have shape \(5,\)"):
        U.interpolate(pts, vals[:4], 2)
    with pytest.raises(ValueError, match="finite"):
        U.interpolate(pts, np.full(5, np.nan), 2)
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 2\)"):
        net(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        net(np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="delta must be > 0"):
        U.approximate(lambda x: x[:, 0], ([0.0], [1.0]), 0.0, 2)
    with pytest.raises(ValueError, match="max_points"):
        U.approximate(lambda x: x[:, 0], ([0.0, 0.0], [1.0, 1.0]), 0.01, 2)
    with pytest.raises(ValueError, match="low <= high"):
        U.delta_net(([1.0], [0.0]), 0.1, 2)
    with pytest.raises(U.NotLipschitzError):
        U.approximate(lambda x: 3 * x[:, 0], ([0.0], [1.0]), 0.25, 2)
    with pytest.raises(ValueError, match="odd"):
        U.MaxMinNetwork((U.Dense(np.ones((3, 2)), np.zeros(3)), U.Dense(np.ones((1, 3)), np.zeros(1))))
    with pytest.raises(ValueError, match="takes 3 features"):
        U.MaxMinNetwork((U.Dense(np.ones((2, 2)), np.zeros(2)), U.Dense(np.ones((1, 3)), np.zeros(1))))
    with pytest.raises(ValueError, match="scalar output"):
        U.lattice_max(U.random_constrained_network(2, [2], 2, n_out=2), U.random_constrained_network(2, [2], 2))
    with pytest.raises(ValueError, match="ord must be 1 or inf"):
        U.norm_network(2, 2)


# ----------------------------------------------------------------------------------------------
# Hardening (issue 14): nets too large are refused before allocation, every argument checked


def _peak_bytes(fn):
    """Peak of the memory NumPy and Python allocate while ``fn`` runs (tracemalloc sees NumPy's
    buffers), and the exception it raised."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - returned for the caller to check
        raised = exc
    else:
        raised = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


UNIT_SQUARE = ([0.0, 0.0], [1.0, 1.0])


@pytest.mark.parametrize("box, delta, p", [
    (([0] * 10, [1] * 10), 0.1, 2),  # 17^10 points: MemoryError (14.7 TiB) before the fix
    (UNIT_SQUARE, 1e-5, 2),  # 5e9 points: MemoryError (37 GiB)
    (UNIT_SQUARE, 1e-4, 2),  # 5e7 points: refused only after allocating 1.5 GB
    (UNIT_SQUARE, 5e-324, 2),  # OverflowError from a float count
    (([0.0, 0.0], [1e300, 1e300]), 1.0, math.inf),  # NumPy's "Maximum allowed size exceeded"
    (([0.0] * 1000, [1.0] * 1000), 1e-300, 1),  # a count of ~10^302699: never multiplied out in floats
])
def test_approximate_refuses_large_nets_before_allocating(box, delta, p):
    """A net larger than max_points is refused with a ValueError naming delta and max_points,
    within a megabyte of memory (the count comes from the per-axis counts, exactly)."""
    peak, raised = _peak_bytes(lambda: U.approximate(lambda x: x[:, 0], box, delta, p))
    assert isinstance(raised, ValueError), repr(raised)
    assert "max_points=2500" in str(raised) and f"delta={delta!r}" in str(raised)
    assert peak < 1 << 20, peak
    peak, raised = _peak_bytes(lambda: U.delta_net(box, delta, p))
    assert isinstance(raised, ValueError) and "max_points" in str(raised), repr(raised)
    assert peak < 1 << 20, peak


def test_delta_net_limit_is_the_size_of_the_net():
    """The count in the refusal is the number of points the net has: the net of exactly
    max_points points is built, one point fewer allowed is refused quoting that count."""
    for box, delta, p in ((UNIT_SQUARE, 0.01, 2), (([-1.0, 0.0, 0.5], [1.0, 0.3, 0.5]), 0.05, 1),
                          ((0.0, 1.0), 1e-3, math.inf)):
        n_points = U.delta_net(box, delta, p, max_points=10**7).shape[0]
        assert U.delta_net(box, delta, p, max_points=n_points).shape[0] == n_points
        with pytest.raises(ValueError, match=f"has {n_points} points > max_points={n_points - 1}"):
            U.delta_net(box, delta, p, max_points=n_points - 1)
        if n_points <= 2500:
            U.approximate(lambda x: np.zeros(len(x)), box, delta, p, max_points=n_points)


def _net_3():
    return U.random_constrained_network(3, (4,), 2, seed=1)


# (call, exception, parameter named in the message): each refused without naming the parameter,
# with the wrong exception class, after a runaway allocation, or not at all before the fix.
BAD_ARGUMENTS = [
    (lambda: U.interpolate(np.zeros((2, 1)), np.zeros(2), 2, atol="a"), TypeError, "atol"),
    (lambda: U.interpolate(np.zeros((2, 1)), np.zeros(2), 2, atol=True), TypeError, "atol"),
    (lambda: U.interpolate(np.zeros((2, 1)), np.zeros(2), 2, atol=math.inf), ValueError, "atol"),
    (lambda: U.interpolate(np.zeros((2, 1)), np.zeros(2), "inf"), TypeError, "p"),
    (lambda: U.two_point_interpolant(np.zeros(2), 0.0, np.ones(2), 0.0, 2, atol="a"), TypeError, "atol"),
    (lambda: U.two_point_interpolant(np.zeros(2), "a", np.ones(2), 0.0, 2), TypeError, "a"),
    (lambda: U.two_point_interpolant(np.zeros(2), True, np.ones(2), 0.0, 2), TypeError, "a"),
    (lambda: U.two_point_interpolant("xy", 0.0, np.ones(2), 0.0, 2), TypeError, "x"),
    (lambda: U.lipschitz_violation(np.zeros((2, 1)), np.zeros(2), 2, block=0), ValueError, "block"),
    (lambda: U.lipschitz_violation(np.zeros((2, 1)), np.zeros(2), 2, atol="a"), TypeError, "atol"),
    (lambda: U.lipschitz_violation(np.zeros((2, 1)), np.zeros(3), 2), ValueError, "values"),
    (lambda: U.approximate(lambda x: x[:, 0], (0.0, 1.0), "a", 2), TypeError, "delta"),
    (lambda: U.approximate(lambda x: x[:, 0], (0.0, 1.0), 0.2, 2, max_points=2.5), TypeError, "max_points"),
    (lambda: U.approximate(lambda x: x[:, 0], (0.0, 1.0), 0.2, 2, atol="a"), TypeError, "atol"),
    (lambda: U.approximate(lambda x: x[:, 0] * np.nan, (0.0, 1.0), 0.2, 2), ValueError, "f returned"),
    (lambda: U.approximate(lambda x: ["a"] * len(x), (0.0, 1.0), 0.2, 2), TypeError, "f must return"),
    (lambda: U.delta_net("box", 0.2, 2), TypeError, "box"),
    (lambda: U.delta_net(None, 0.2, 2), TypeError, "box"),
    (lambda: U.delta_net((0.0, "a"), 0.2, 2), TypeError, "box high"),
    (lambda: U.delta_net((-1e308, 1e308), 0.2, 2), ValueError, "box widths"),
    (lambda: U.delta_net((0.0, 1.0), 0.2, 2, max_points=-1), ValueError, "max_points"),
    (lambda: U.interpolant_size(2.5, 2), TypeError, "n_points"),
    (lambda: U.interpolant_size(3, 0), ValueError, "n"),
    (lambda: U.dual_vector([1.0, 2.0], 2), TypeError, "d"),
    (lambda: U.dual_vector(np.ones(2, dtype=np.float16), 2), TypeError, "d"),
    (lambda: U.dual_vector(np.ones(0), 2), ValueError, "d"),
    (lambda: U.dual_exponent("inf"), TypeError, "p"),
    (lambda: U.norm_network(2.5, math.inf), TypeError, "n"),
    (lambda: U.norm_network(10**9, math.inf), ValueError, "n"),
    (lambda: U.norm_network(2, "inf"), TypeError, "ord"),
    (lambda: U.deepen(_net_3(), 1.5), TypeError, "depth"),
    (lambda: U.deepen(_net_3(), 10**30), ValueError, "depth"),
    (lambda: U.random_constrained_network(2, "a", 2), TypeError, "widths"),
    (lambda: U.random_constrained_network(2, [2.0], 2), TypeError, "widths[0]"),
    (lambda: U.random_constrained_network(2.5, [2], 2), TypeError, "n_in"),
    (lambda: U.random_constrained_network(10**30, [2], 2), ValueError, "max_parameters"),
    (lambda: U.random_constrained_network(2, [2], 2, seed=-1), ValueError, "seed"),
    (lambda: U.random_constrained_network(2, [2], 2, bits=0), ValueError, "bits"),
    (lambda: U.random_constrained_network(2, [2], 2, bias_scale="a"), TypeError, "bias_scale"),
    (lambda: U.affine_network(np.ones(2), "c"), TypeError, "c"),
    (lambda: U.affine_network("w", 0.0), TypeError, "w"),
    (lambda: U.Select(np.array([0.5]), 2), TypeError, "index"),
    (lambda: U.Select("a", 2), TypeError, "index"),
    (lambda: U.Select(np.array([0]), 2.5), TypeError, "n_in"),
    (lambda: U.MaxMinNetwork(None), TypeError, "layers"),
    (lambda: U.MaxMinNetwork("abc"), TypeError, "layers"),
    (lambda: U.reduction_layers(np.ones((2, 1)), np.zeros(2), [("min", 1)], pad=1), TypeError, "pad"),
    (lambda: U.reduction_layers(np.ones((2, 1)), np.zeros(2), "min"), TypeError, "stages"),
    (lambda: U.reduction_layers(np.ones((2, 1)), np.zeros(2), [("min", 0)]), ValueError, "n_groups"),
    (lambda: U.reduction_layers("w", np.zeros(2), [("min", 1)]), TypeError, "w"),
    (lambda: _net_3().to_sequential(max_parameters="a"), TypeError, "max_parameters"),
    (lambda: _net_3().to_sequential(dtype="float16"), ValueError, "dtype"),
    (lambda: _net_3().to_sequential(dtype=3), TypeError, "dtype"),
    (lambda: _net_3().to_sequential(xp=5), TypeError, "xp"),
]


@pytest.mark.parametrize("call, exc, name", BAD_ARGUMENTS, ids=[f"{i}-{c[2]}" for i, c in enumerate(BAD_ARGUMENTS)])
def test_public_functions_name_bad_arguments(call, exc, name):
    """Wrong type -> TypeError, wrong value -> ValueError, the message names the parameter
    (reflip._validate's rule), for every public function of reflip.universality."""
    with pytest.raises(exc) as info:
        call()
    assert type(info.value) is exc or exc is ValueError and isinstance(info.value, ValueError)
    assert re.search(rf"(?<![\w.]){re.escape(name)}(?![\w(])", str(info.value)), str(info.value)


@pytest.mark.parametrize("bad_dtype", [np.float16, np.longdouble, np.int64, np.bool_, np.complex128])
def test_max_min_network_dtypes(bad_dtype):
    """The primitive takes float32 and float64 only: the weights are converted to x's dtype, and
    the rounding bounds of [UN-12] are derived for those two [UN-2]."""
    import reflip

    net = _net_3()
    for fun in (lambda x: reflip.max_min_network(x, network=net),
                lambda x: reflip.max_min_network_fwd(x, network=net)):
        with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
            fun(np.ones((2, 3), dtype=bad_dtype))
    _, res = reflip.max_min_network_fwd(np.ones((2, 3)), network=net)
    with pytest.raises(TypeError, match="y_bar"):
        reflip.max_min_network_bwd(res, np.ones((2, 1), dtype=bad_dtype))
    with pytest.raises(TypeError, match="x_dot"):
        reflip.max_min_network_jvp(res, np.ones((2, 3), dtype=bad_dtype))


def test_max_min_network_cotangent_shapes():
    """The residuals know the input and output shapes; a cotangent or tangent of another shape
    is refused naming it, as for every primitive (reflip._validate.check_cotangent)."""
    import reflip

    net = _net_3()
    x = np.random.default_rng(0).uniform(-1, 1, (4, 2, 3))
    y, res = reflip.max_min_network_fwd(x, network=net)
    assert res.shape == x.shape and res.out_shape == y.shape == (4, 2, 1)
    with pytest.raises(ValueError, match=r"y_bar must have the shape \(4, 2, 1\) of the primitive's output"):
        reflip.max_min_network_bwd(res, np.ones((4, 2, 3)))
    with pytest.raises(ValueError, match=r"x_dot must have the shape \(4, 2, 3\) of the primitive's input"):
        reflip.max_min_network_jvp(res, np.ones((4, 2, 1)))
    with pytest.raises(TypeError, match="residuals"):
        reflip.max_min_network_bwd((), np.ones((4, 2, 1)))
    with pytest.raises(TypeError, match="x must be an array"):
        reflip.max_min_network([[1.0, 2.0, 3.0]], network=net)


# ----------------------------------------------------------------------------------------------
# The network value, checked where mutation testing (docs/mutation.md) found it unchecked: the
# stored layers, selections' transposes, the derivatives through selections, the arguments
# of Dense / Select / MaxMinNetwork / affine_network / random_constrained_network, and the
# documented distribution of random_constrained_network's rows.


def _central_differences(f, x, h=1e-6):
    """d f / d x (f scalar-valued) by central differences in float64, one input at a time."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def _select_net():
    """Dense (3 -> 4), MaxMin, then a selection reading input 0 three times and input 3 twice
    (inputs 1 and 2 never read): its transpose sums up to three cotangents per input."""
    w = np.array([[0.5, -0.25, 0.125], [0.25, 0.5, -0.125], [-0.5, 0.25, 0.25], [0.125, 0.125, -0.5]])
    return U.MaxMinNetwork((U.Dense(w, np.array([0.1, -0.2, 0.3, 0.0])), U.Select(np.array([0, 3, 0, 3, 0]), 4)))


@pytest.mark.parametrize("float_dtype", [np.float64, np.float32])
def test_derivatives_through_a_selection_reading_inputs_several_times(float_dtype):
    """[UN-2] VJP and JVP of a network ending in a selection that reads one input three times,
    against central differences of the forward in float64; float32 keeps its dtype. The
    residuals name each layer's kind ("dense" / "select") as MaxMinNetworkResiduals documents."""
    import reflip

    net = _select_net()
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 3))
    y_bar = rng.standard_normal((2, 5))
    x_dot = rng.standard_normal((2, 3))
    y, res = reflip.max_min_network_fwd(x.astype(float_dtype), network=net)
    assert [spec[0] for spec in res.layers] == ["dense", "select"]
    x_bar = reflip.max_min_network_bwd(res, y_bar.astype(float_dtype))
    y_dot = reflip.max_min_network_jvp(res, x_dot.astype(float_dtype))
    assert y.dtype == x_bar.dtype == y_dot.dtype == float_dtype
    want_bar = _central_differences(lambda a: float(np.sum(y_bar * net(a))), x)
    want_dot = (net(x + 1e-6 * x_dot) - net(x - 1e-6 * x_dot)) / 2e-6
    tol = 1e-7 if float_dtype == np.float64 else 1e-5
    np.testing.assert_allclose(x_bar, want_bar, rtol=tol, atol=tol)
    np.testing.assert_allclose(y_dot, want_dot, rtol=tol, atol=tol)


def test_transpose_index_lists_the_outputs_reading_each_input_in_order():
    """Select.transpose_index: inv[t, j] is the t-th output (ascending) that reads input j, or
    n_out past the last one (brute force over outputs); long enough for an unstable sort to
    reorder equal indices."""
    rng = np.random.default_rng(5)
    index = rng.integers(0, 5, 300)
    layer = U.Select(index, 7)  # inputs 5 and 6 never read
    inv = layer.transpose_index()
    readers = [[r for r in range(300) if index[r] == j] for j in range(7)]
    k = max(len(r) for r in readers)
    want = np.array([[r[t] if t < len(r) else 300 for r in readers] for t in range(k)])
    np.testing.assert_array_equal(inv, want)
    assert inv.dtype == np.int64


def test_evaluation_stays_on_the_input_device():
    """[UN-2] on an array_api_strict device other than the default, the forward, VJP and JVP
    run (array_api_strict refuses arithmetic across devices) and return arrays on that device,
    through dense and selection layers."""
    import array_api_strict as xp

    import reflip

    device = xp.Device("device1")
    net = _select_net()
    x = np.random.default_rng(6).uniform(-1, 1, (4, 3))
    xd = xp.asarray(x, device=device)
    y, res = reflip.max_min_network_fwd(xd, network=net)
    assert y.device == device and net(xd).device == device
    np.testing.assert_array_equal(np.asarray(xp.asarray(y, device=xp.Device("CPU_DEVICE"))), net(x))
    x_bar = reflip.max_min_network_bwd(res, xp.ones((4, 5), dtype=xp.float64, device=device))
    y_dot = reflip.max_min_network_jvp(res, xp.ones((4, 3), dtype=xp.float64, device=device))
    assert x_bar.device == device and y_dot.device == device


def test_layers_are_stored_as_read_only_float64_copies():
    """Dense stores W and b as float64 read-only copies (from lists, integers or float32: the
    caller's array may change afterwards), Select its index as read-only int64 and n_in as an
    int, MaxMinNetwork its layers as a tuple; float32 and integer weights are real numbers."""
    w = np.array([[1, 0], [0, -2]], dtype=np.int32)
    b = np.array([0.5, 0.25], dtype=np.float32)
    for layer in (U.Dense(w, b), U.Dense(w.tolist(), b.tolist()), U.Dense(w.astype(np.float16), b)):
        for a in (layer.W, layer.b):
            assert type(a) is np.ndarray and a.dtype == np.float64 and not a.flags.writeable
            with pytest.raises(ValueError, match="read-only"):
                a[0] = 7.0
        np.testing.assert_array_equal(layer.W, [[1.0, 0.0], [0.0, -2.0]])
    w[0, 0] = 9
    assert layer.W[0, 0] == 1.0
    idx = np.array([1, 0, 1], dtype=np.int8)
    sel = U.Select(idx.tolist(), np.int64(2))
    assert type(sel.index) is np.ndarray and sel.index.dtype == np.int64 and not sel.index.flags.writeable
    assert type(sel.n_in) is int and sel.n_in == 2
    assert U.Select(np.array([0, 0]), 1).n_out == 2  # the smallest input width, read twice
    layers = [U.Dense(np.ones((2, 2)), np.zeros(2)), U.Dense(np.ones((1, 2)), np.zeros(1))]
    net = U.MaxMinNetwork(layers)
    layers.pop()
    assert type(net.layers) is tuple and net.depth == 2


def test_sizes_count_nonzero_weights_and_biases():
    """NetworkSize.nonzero counts the non-zero entries of every W and b (a Dense with known
    zeros; a selection's rows hold one 1 each), and a network whose later layer has
    ||W||_inf = 1.5 does not satisfy the constraints [UN-1]."""
    dense = U.Dense(np.array([[0.0, 0.5, -0.5], [0.0, 0.0, 0.25]]), np.array([0.0, 1.0]))
    assert dense.nonzeros() == 4
    net = U.MaxMinNetwork((dense, U.Select(np.array([1, 1, 0]), 2)))
    assert net.size().nonzero == 4 + 3
    wide = U.MaxMinNetwork((U.Dense(np.array([[0.5], [0.5]]), np.zeros(2)), U.Dense(np.array([[1.0, 0.5]]), [0.0])))
    assert wide.constraint_norms(2) == (0.5, 1.5)
    assert not wide.satisfies_constraints(2)


def _message(call):
    """The message of the exception ``call`` raises, with its class."""
    with pytest.raises(Exception) as info:  # noqa: PT011 - the class is returned and checked by the caller
        call()
    return type(info.value), str(info.value)


RAGGED = [[0], [1, 2]]  # no array at all: the conversion itself fails

# (call, exception class, regular expression the message must match from its start)
LAYER_ARGUMENTS = [
    (lambda: U.Dense(RAGGED, np.zeros(2)), TypeError, r"Dense: W must be an array of real numbers, got list \("),
    (lambda: U.Dense(np.ones((2, 2)), RAGGED), TypeError, r"Dense: b must be an array of real numbers, got list \("),
    (lambda: U.Dense(np.ones((2, 2), dtype=bool), np.zeros(2)), TypeError,
     r"Dense: W must be real numbers, got dtype bool"),
    (lambda: U.Dense(np.ones((2, 2)), np.array(["a", "b"])), TypeError,
     r"Dense: b must be real numbers, got dtype <U1"),
    (lambda: U.Dense(np.ones(3), np.zeros(3)), ValueError,
     r"Dense: W must be a non-empty \(out, in\) matrix, got shape \(3,\)"),
    (lambda: U.Dense(np.ones((0, 2)), np.zeros(0)), ValueError,
     r"Dense: W must be a non-empty \(out, in\) matrix, got shape \(0, 2\)"),
    (lambda: U.Dense(np.ones((2, 3)), np.zeros(3)), ValueError,
     r"Dense: b must have shape \(2,\) to match W \(2, 3\), got \(3,\)"),
    (lambda: U.Dense(np.full((2, 2), np.inf), np.zeros(2)), ValueError, r"Dense: W must be finite"),
    (lambda: U.Dense(np.ones((2, 2)), np.array([0.0, np.nan])), ValueError, r"Dense: b must be finite"),
    (lambda: U.Select(RAGGED, 3), TypeError, r"Select: index must be an array of real numbers, got list \("),
    (lambda: U.Select(np.zeros((2, 2), dtype=int), 3), ValueError,
     r"Select: index must be a non-empty 1-d integer array, got shape \(2, 2\)"),
    (lambda: U.Select(np.zeros(0, dtype=int), 3), ValueError,
     r"Select: index must be a non-empty 1-d integer array, got shape \(0,\)"),
    (lambda: U.Select(np.array([0]), 0), ValueError, r"Select: n_in must be >= 1, got 0"),
    (lambda: U.Select(np.array([0, -1]), 2), ValueError,
     r"Select: index entries must lie in \[0, n_in=2\), got \[-1, 0\]"),
    (lambda: U.Select(np.array([0, 2]), 2), ValueError,
     r"Select: index entries must lie in \[0, n_in=2\), got \[0, 2\]"),
    (lambda: U.MaxMinNetwork(5), TypeError,
     r"MaxMinNetwork: layers must be a sequence of Dense or Select layers, got int"),
    (lambda: U.MaxMinNetwork(()), ValueError, r"MaxMinNetwork: layers must hold at least one affine layer$"),
    (lambda: U.MaxMinNetwork((U.Dense(np.ones((2, 2)), np.zeros(2)), "Dense")), TypeError,
     r"MaxMinNetwork: layer 1 must be a Dense or Select, got str"),
    (lambda: U.MaxMinNetwork((U.Dense(np.ones((2, 2)), np.zeros(2)), U.Dense(np.ones((2, 2)), np.zeros(2)),
                              U.Dense(np.ones((1, 3)), np.zeros(1)))), ValueError,
     r"MaxMinNetwork: layer 2 takes 3 features but layer 1 outputs 2"),
    (lambda: U.MaxMinNetwork((U.Dense(np.ones((2, 2)), np.zeros(2)), U.Dense(np.ones((1, 3)), np.zeros(1)))),
     ValueError, r"MaxMinNetwork: layer 1 takes 3 features but layer 0 outputs 2"),
    (lambda: U.affine_network(RAGGED, 0.0), TypeError, r"w must be an array of real numbers, got list \("),
    (lambda: U.affine_network(np.ones((1, 2)), 0.0), ValueError,
     r"w must be a non-empty 1-d vector, got shape \(1, 2\)"),
    (lambda: U.affine_network(np.ones(0), 0.0), ValueError, r"w must be a non-empty 1-d vector, got shape \(0,\)"),
    (lambda: U.affine_network(np.ones(2), None), TypeError, r"c must be a real number, got None"),
]


@pytest.mark.parametrize("call, exc, pattern", LAYER_ARGUMENTS, ids=[str(i) for i in range(len(LAYER_ARGUMENTS))])
def test_layer_arguments_are_named_with_what_was_given(call, exc, pattern):
    """Every refusal of Dense, Select, MaxMinNetwork and affine_network names its class and
    parameter, what it got and what was expected; TypeError for a wrong type, ValueError for a
    wrong value."""
    cls, message = _message(call)
    assert cls is exc, (cls, message)
    assert re.match(pattern, message), message


def test_evaluation_arguments_are_named():
    """[UN-2] the primitive and its derivatives name a non-array x / y_bar / x_dot, a network
    that is not a MaxMinNetwork, wrong residuals (by type), and a 0-d x; a 1-d x is one point."""
    import reflip

    net = _net_3()
    _, res = reflip.max_min_network_fwd(np.zeros((2, 3)), network=net)
    for call, exc, pattern in [
        (lambda: reflip.max_min_network_fwd([[1.0, 2.0, 3.0]], network=net), TypeError, r"x must be an array"),
        (lambda: reflip.max_min_network_bwd(res, [[1.0], [2.0]]), TypeError, r"y_bar must be an array"),
        (lambda: reflip.max_min_network_jvp(res, [[1.0, 2.0, 3.0]] * 2), TypeError, r"x_dot must be an array"),
        (lambda: reflip.max_min_network(np.zeros((2, 3)), network="net"), TypeError,
         r"network must be a reflip.universality.MaxMinNetwork, got str"),
        (lambda: reflip.max_min_network_bwd((1, 2, 3), np.zeros((2, 1))), TypeError,
         r"residuals must be the MaxMinNetworkResiduals returned by max_min_network_fwd, got tuple"),
        (lambda: net(np.array(1.0)), ValueError,
         r"x must have shape \(\.\.\., 3\) \(the network's input width\), got \(\)"),
    ]:
        cls, message = _message(call)
        assert cls is exc and re.match(pattern, message), message
    x = np.array([0.25, -0.5, 0.75])
    np.testing.assert_array_equal(net(x), net(x[None, :])[0])


def test_to_sequential_limits():
    """to_sequential refuses more than max_parameters dense numbers (default 50,000,000) before
    allocating: a selection of one output from 50,000,001 inputs is 50,000,002 dense numbers;
    exactly max_parameters is built; max_parameters < 1 is refused naming it."""
    big = U.MaxMinNetwork((U.Select(np.array([0]), 50_000_001),))
    cls, message = _message(big.to_sequential)
    assert cls is ValueError and "50000002 parameters > max_parameters=50000000" in message, message
    net = _net_3()
    dense = net.size().dense_parameters
    model, params = net.to_sequential(max_parameters=dense)
    assert len(params) == 2 * net.depth - 1
    cls, message = _message(lambda: net.to_sequential(max_parameters=1))
    assert cls is ValueError and message.startswith(f"to_sequential: the dense network would hold {dense}"), message
    cls, message = _message(lambda: net.to_sequential(max_parameters=0))
    assert cls is ValueError and message == "max_parameters must be >= 1, got 0", message


RANDOM_ARGUMENTS = [
    (dict(n_in=0), ValueError, r"n_in must be >= 1, got 0"),
    (dict(widths=5), TypeError, r"widths must be a sequence of even integers, got int"),
    (dict(widths=[0]), ValueError, r"widths\[0\] must be >= 2, got 0"),
    (dict(widths=[4, 3]), ValueError, r"every hidden width must be even \(MaxMin acts on pairs\), got widths=\[4, 3\]"),
    (dict(bits=27), ValueError, r"bits must be <= 26, got 27"),
    (dict(bias_scale=-1.0), ValueError, r"bias_scale must be >= 0\.0, got -1\.0"),
    (dict(n_out=0), ValueError, r"n_out must be >= 1, got 0"),
    (dict(max_parameters=0), ValueError, r"max_parameters must be >= 1, got 0"),
    (dict(max_parameters=1), ValueError, r"random_constrained_network: n_in=2, widths=\[4\], n_out=1 make 17 "
                                         r"parameters > max_parameters=1"),
    (dict(n_in=10**8), ValueError, r"random_constrained_network: n_in=100000000, widths=\[4\], n_out=1 make "
                                   r"400000009 parameters > max_parameters=50000000"),
]


@pytest.mark.parametrize("kwargs, exc, pattern", RANDOM_ARGUMENTS, ids=[str(i) for i in range(len(RANDOM_ARGUMENTS))])
def test_random_constrained_network_arguments(kwargs, exc, pattern):
    """random_constrained_network names each wrong argument with what it got; the parameter
    count it refuses is that of the dense network (4 x 2 weights and 4 biases, then 4 weights and
    1 bias: 17)."""
    args = dict(n_in=2, widths=[4], p=2) | kwargs
    cls, message = _message(lambda: U.random_constrained_network(**args))
    assert cls is exc, (cls, message)
    assert re.match(pattern, message), message


def test_random_constrained_network_boundaries_and_defaults():
    """The smallest accepted arguments (n_in=1, bits=1, bias_scale=0, max_parameters equal to
    the count) build; the defaults are seed=0, bits=8, bias_scale=1 (weights and biases
    multiples of 2^-8 that use that resolution, biases in [-1, 1] of both signs, spread);
    the same seed gives the same network."""
    small = U.random_constrained_network(1, [2], math.inf, bits=1, bias_scale=0.0)
    assert all(np.all(layer.b == 0) for layer in small.layers)
    count = small.size().dense_parameters
    U.random_constrained_network(1, [2], math.inf, max_parameters=count)
    net = U.random_constrained_network(3, [200, 100], 2)
    again = U.random_constrained_network(3, [200, 100], 2, seed=0, bits=8, bias_scale=1.0)
    for a, b in zip(net.weights(), again.weights(), strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    w = np.concatenate([layer.W.ravel() for layer in net.layers])
    b = np.concatenate([layer.b for layer in net.layers])
    for v in (w, b):
        scaled = v * 2**8
        assert np.all(scaled == np.round(scaled))  # multiples of 2^-8 ...
        assert np.any(scaled % 2 == 1)  # ... and not all of 2^-7
    assert np.max(np.abs(b)) <= 1.0 and np.max(b) > 0.75 and np.min(b) < -0.75
    coarse = U.random_constrained_network(3, [50], 2, bits=5)
    assert all(np.all(layer.W * 32 == np.round(layer.W * 32)) for layer in coarse.layers)


@pytest.mark.parametrize("p", P_VALUES)
def test_random_constrained_network_rows_reach_the_bound(p):
    """The documented distribution of the rows: about a third reach the bound (||w||_q = 1
    exactly for q in {1, inf}, within 2^-bits sqrt(n) for q = 2; first layer q = p/(p-1), later
    layers q = 1), the others have norms spread over [0.2, 1) (targets uniform there, truncated
    towards 0 by at most 2^-bits per entry)."""
    q = U.dual_exponent(p)
    net = U.random_constrained_network(4, [1200], p, seed=11)
    assert net.satisfies_constraints(p)
    first = np.linalg.norm(net.layers[0].W, ord=q, axis=1)
    later = np.linalg.norm(net.layers[1].W, ord=1, axis=1)
    assert np.all(first <= 1.0) and np.all(later <= 1.0)
    slack = 0.0 if q != 2 else 2.0**-8 * 2
    at_bound = first >= 1.0 - slack
    assert abs(np.mean(at_bound) - 1 / 3) < 0.04, np.mean(at_bound)
    below = first[~at_bound]
    assert below.min() >= 0.2 - 4 * 2.0**-8 and below.min() < 0.25 and below.max() > 0.95
    assert np.ptp(below) > 0.7


def test_repr_is_pasteable_up_to_4096_stored_numbers():
    """repr of a network storing at most 4096 numbers evaluates (with Dense, Select and
    MaxMinNetwork in scope) to a network with the same layers; above that it is a summary
    naming the input width, depth and widths."""
    scope = {"Dense": U.Dense, "Select": U.Select, "MaxMinNetwork": U.MaxMinNetwork}
    for net in (_select_net(), _net_3(), U.MaxMinNetwork((U.Select(np.zeros(4096, dtype=int), 1),))):
        assert net.size().stored <= 4096
        copy = eval(repr(net), scope)  # noqa: S307 - the documented use of this repr
        assert [type(layer) for layer in copy.layers] == [type(layer) for layer in net.layers]
        for a, b in zip(copy.weights(), net.weights(), strict=True):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    big = U.MaxMinNetwork((U.Select(np.zeros(4097, dtype=int), 1),))
    assert repr(big) == "<MaxMinNetwork n_in=1 depth=1 widths=()>"


class _ZeroNormalDraws:
    """A generator whose normal draws are all 0 (the other draws from a seeded generator): the
    all-zero raw row that the row sampler guards against, reached with probability 0 otherwise."""

    def __init__(self, seed):
        self._rng = np.random.default_rng(seed)

    def standard_normal(self, shape):
        return np.zeros(shape)

    def random(self, shape):
        return self._rng.random(shape)

    def uniform(self, low, high, shape):
        return self._rng.uniform(low, high, shape)


@pytest.mark.parametrize("q", [1.0, 2.0, math.inf])
def test_dyadic_rows_of_an_all_zero_draw_are_finite_and_constrained(q):
    """Rows drawn as all zeros have norm 0 before scaling: they stay finite multiples of 2^-bits
    with ||w||_q <= 1 (no 0 / 0), and with q = 1 the rows that should reach the sphere do."""
    from reflip.universality.network import _dyadic_rows

    bits = 8
    with np.errstate(all="raise"):
        w = _dyadic_rows(_ZeroNormalDraws(4), 30, 3, q, bits)
    assert w.shape == (30, 3) and np.all(np.isfinite(w))
    np.testing.assert_array_equal(w * 2**bits, np.round(w * 2**bits))
    norms = np.linalg.norm(w, ord=q, axis=1)
    assert np.all(norms <= 1.0)
    if q == 1.0:
        assert 0 < np.count_nonzero(norms == 1.0) < 30
