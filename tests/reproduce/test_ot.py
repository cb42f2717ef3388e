"""The exact W1 solver of ``reflip reproduce`` against independent oracles: brute force over
all permutations, the transport linear program, the sorted matching in 1-D and translates; the
Kantorovich-Rubinstein bound on random 1-Lipschitz critics. Meta-tests plant wrong solvers."""
import itertools

import numpy as np
import pytest

from reflip.reproduce import ot


def _clouds(seed, n, d, spread=1.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), spread * rng.standard_normal((n, d)) + 0.5


def _brute_force(x, y):
    n = len(x)
    dist = [[float(np.sqrt(np.sum((x[i] - y[j]) ** 2))) for j in range(n)] for i in range(n)]
    return min(sum(dist[i][s[i]] for i in range(n)) / n for s in itertools.permutations(range(n)))


def _transport_lp(x, y):
    """min <pi, C> over pi >= 0 with row sums a and column sums b: no permutation assumed."""
    from scipy.optimize import linprog

    n, m = len(x), len(y)
    c = np.array([[np.linalg.norm(x[i] - y[j]) for j in range(m)] for i in range(n)])
    a_eq = np.zeros((n + m, n * m))
    for i in range(n):
        a_eq[i, i * m:(i + 1) * m] = 1.0
    for j in range(m):
        a_eq[n + j, j::m] = 1.0
    b_eq = np.concatenate([np.full(n, 1.0 / n), np.full(m, 1.0 / m)])
    res = linprog(c.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    assert res.success
    return res.fun


# Each check takes the solver under test, so that the meta-tests can hand it a wrong one.

def check_brute_force(solver):
    """[RP-1] equals the minimum over all n! assignments (n <= 6, dimensions 1 to 3)."""
    for seed, (n, d) in enumerate(itertools.product(range(1, 7), (1, 2, 3))):
        x, y = _clouds(seed, n, d)
        assert solver(x, y).w1 == pytest.approx(_brute_force(x, y), rel=1e-12, abs=1e-12), (n, d)


def check_linear_program(solver):
    """[RP-1] equals the optimum of the transport LP over all couplings (not only permutations)."""
    for seed in range(3):
        x, y = _clouds(100 + seed, 12, 3, spread=2.0)
        assert solver(x, y).w1 == pytest.approx(_transport_lp(x, y), rel=1e-7)


def check_sorted_matching(solver):
    """[RP-4] in 1-D, W1 is the mean gap between the sorted clouds (including ties)."""
    rng = np.random.default_rng(7)
    for n in (1, 5, 40, 200):
        x, y = rng.standard_normal((n, 1)), rng.exponential(size=(n, 1))
        y[: n // 3] = 0.25  # ties
        expected = np.mean(np.abs(np.sort(x[:, 0]) - np.sort(y[:, 0])))
        assert solver(x, y).w1 == pytest.approx(expected, rel=1e-12)


def check_translates(solver):
    """[RP-5] a cloud and its translate by m are ||m|| apart, in any dimension."""
    rng = np.random.default_rng(3)
    for d in (1, 2, 16):
        x = rng.standard_normal((64, d))
        m = rng.standard_normal(d)
        assert solver(x, x + m).w1 == pytest.approx(np.linalg.norm(m), rel=1e-10)


def check_assignment_is_consistent(solver):
    """The returned permutation realizes the returned W1, point by point."""
    x, y = _clouds(11, 50, 4)
    t = solver(x, y)
    assert sorted(t.sigma.tolist()) == list(range(50))
    np.testing.assert_allclose(t.costs, np.linalg.norm(x - y[t.sigma], axis=1), rtol=1e-12)
    assert t.w1 == pytest.approx(np.mean(t.costs), rel=1e-12)


CHECKS = [check_brute_force, check_linear_program, check_sorted_matching, check_translates,
          check_assignment_is_consistent]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_exact_w1(check):
    check(ot.exact_w1)


def test_dual_estimates_of_lipschitz_critics_never_exceed_w1():
    """[RP-2] mean f(x) - mean f(y) <= L W1 for random L-Lipschitz f (max / min / sums of
    distances and linear maps), and the bound is tight for the 1-D critic -|z| on {0} vs {+-1}."""
    rng = np.random.default_rng(5)
    for trial in range(30):
        x, y = _clouds(200 + trial, 40, 3, spread=1.5)
        w1 = ot.exact_w1(x, y).w1
        a, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
        lam = rng.uniform(-1, 1, size=4)
        lam /= np.sum(np.abs(lam))

        def f(z, a=a, lam=lam, b=b):  # sum_k lam_k ||z - a_k|| + <b, z>: L <= sum |lam_k| + ||b||
            return np.linalg.norm(z[:, None, :] - a[None], axis=-1) @ lam + z @ b

        lip = 1.0 + np.linalg.norm(b)
        for g in (f, lambda z: -f(z)):
            assert np.mean(g(x)) - np.mean(g(y)) <= lip * w1 + 1e-12
    p, q = np.zeros((2, 1)), np.array([[-1.0], [1.0]])
    assert ot.exact_w1(p, q).w1 == 1.0 == np.mean(-np.abs(p)) - np.mean(-np.abs(q))


def test_inputs_are_not_mutated_and_backends_are_converted():
    x, y = _clouds(1, 6, 2)
    x0, y0 = x.copy(), y.copy()
    ot.exact_w1(x.astype(np.float32), y)
    ot.exact_w1(x, y)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    expected = _brute_force(x, y)
    assert ot.exact_w1(x.tolist(), y.tolist()).w1 == pytest.approx(expected, rel=1e-12)
    strict = pytest.importorskip("array_api_strict")
    assert ot.exact_w1(strict.asarray(x), strict.asarray(y)).w1 == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((3, 2)), np.zeros((4, 2)), "same number of points"),
    (np.zeros((3, 2)), np.zeros((3, 3)), "same number of features"),
    (np.zeros(3), np.zeros(3), "x must be a non-empty 2-D array"),
    (np.zeros((0, 2)), np.zeros((0, 2)), "x must be a non-empty 2-D array"),
    (np.zeros((2, 2)), np.array([[0.0, np.nan], [1.0, 1.0]]), "y must be finite"),
])
def test_bad_input(x, y, message):
    with pytest.raises(ValueError, match=message):
        ot.exact_w1(x, y)


# --- meta-tests: wrong solvers the checks above must reject -------------------------------------

def _identity(x, y):
    """Matches x_i with y_i: no optimization."""
    costs = np.linalg.norm(np.asarray(x, float) - np.asarray(y, float), axis=1)
    return ot.Transport(float(np.mean(costs)), np.arange(len(x)), costs)


def _greedy(x, y):
    """Nearest free neighbour, point by point: a common shortcut, not optimal."""
    c = ot.cost_matrix(x, y)
    free, sigma = set(range(len(y))), []
    for i in range(len(x)):
        j = min(free, key=lambda j: c[i, j])
        free.remove(j)
        sigma.append(j)
    sigma = np.array(sigma)
    costs = c[np.arange(len(x)), sigma]
    return ot.Transport(float(np.mean(costs)), sigma, costs)


def _squared_cost(x, y):
    """Optimal for the squared distance (the W2 assignment), reported with W1 costs."""
    from scipy.optimize import linear_sum_assignment

    c = ot.cost_matrix(x, y)
    _, sigma = linear_sum_assignment(c ** 2)
    costs = c[np.arange(len(x)), sigma]
    return ot.Transport(float(np.mean(costs)), sigma, costs)


def _sum_not_mean(x, y):
    t = ot.exact_w1(x, y)
    return t._replace(w1=float(np.sum(t.costs)))


def _mean_of_all_pairs(x, y):
    """The mean distance over all pairs (the independent coupling), an upper bound only."""
    t = ot.exact_w1(x, y)
    return t._replace(w1=float(np.mean(ot.cost_matrix(x, y))))


MUTANTS = {"identity": _identity, "greedy": _greedy, "squared_cost": _squared_cost,
           "sum_not_mean": _sum_not_mean, "mean_of_all_pairs": _mean_of_all_pairs}
# Which checks must reject which mutant (every check rejects at least one mutant).
EXPECTED = {
    "identity": [check_brute_force, check_linear_program, check_sorted_matching],
    "greedy": [check_brute_force, check_linear_program, check_sorted_matching],
    "squared_cost": [check_brute_force, check_linear_program],
    "sum_not_mean": [check_brute_force, check_linear_program, check_sorted_matching, check_translates,
                     check_assignment_is_consistent],
    "mean_of_all_pairs": [check_brute_force, check_translates, check_assignment_is_consistent],
}


@pytest.mark.meta
@pytest.mark.parametrize("name, check", [(n, c) for n, cs in EXPECTED.items() for c in cs],
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_wrong_solver_is_caught(name, check):
    with pytest.raises(AssertionError):
        check(MUTANTS[name])


@pytest.mark.meta
def test_every_check_catches_a_mutant():
    assert {c for cs in EXPECTED.values() for c in cs} == set(CHECKS)
