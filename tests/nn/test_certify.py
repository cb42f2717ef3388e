"""Certificates (claim C8) [CT-2]-[CT-7] and the PGD attack [NN-10]: no certified point is ever
broken; on linear networks the certified radius is the exact distance to the decision boundary
(so the certificate is neither unsound nor loose there) and the attack reaches the worst case;
the attack respects its ball and box."""
import math

import numpy as np
import pytest

from reflip import nn
from reflip.nn import certify, lipschitz

RNG = np.random.default_rng(11)


def _orthonormal_rows(c, n, seed=0):
    model = nn.Sequential([nn.Dense(n, c, "none")])
    params = model.init(seed=seed)  # orthogonal init: orthonormal rows [NN-12]
    params[0]["b"] = np.random.default_rng(seed).standard_normal(c) * 0.1
    return model, params


def _disjoint_linf_rows(n=6):
    """Two classes, rows of unit l1 norm with disjoint supports: ||W||_inf = 1 and
    ||w_0 - w_1||_1 = 2, the tight case of [CT-7]."""
    w = np.zeros((2, n))
    w[0, : n // 2] = RNG.dirichlet(np.ones(n // 2)) * RNG.choice([-1, 1], n // 2)
    w[1, n // 2:] = RNG.dirichlet(np.ones(n - n // 2)) * RNG.choice([-1, 1], n - n // 2)
    return nn.Sequential([nn.Dense(n, 2, "none")]), [{"W": w, "b": np.zeros(2)}]


def _boundary_distance(w, b, x, labels, p):
    """Exact l_p distance from every x to the nearest point where another class ties: the
    distance to the hyperplanes (w_y - w_j) . x' + b_y - b_j = 0, measured with the dual norm
    of the normal vector (Hölder)."""
    out = np.full(len(x), np.inf)
    q_star = {2: 2, math.inf: 1}[p]
    for j in range(w.shape[0]):
        normal = w[labels] - w[j]
        gap = np.sum(normal * x, axis=1) + b[labels] - b[j]
        dist = gap / np.where(labels == j, 1.0, np.linalg.norm(normal, ord=q_star, axis=1))
        out = np.minimum(out, np.where(labels == j, np.inf, np.maximum(dist, 0.0)))
    return out


def test_radius_is_the_exact_distance_on_tight_linear_networks():
    """[CT-3] [CT-4] [CT-7] on linear classifiers whose rows realise the constants (orthonormal
    rows for l2; disjoint unit-l1 rows for l_inf) the certified radius equals the exact distance
    to the decision boundary; on any linear classifier it never exceeds it (soundness). In
    float64 the computed radius is within 1e-12 of the exact one [CT-8]."""
    x = RNG.standard_normal((200, 6))
    for (model, params), p in [(_orthonormal_rows(4, 6), 2), (_disjoint_linf_rows(), math.inf)]:
        labels = RNG.integers(0, model.out_features, 200)
        logits = model(params, x)
        radius = certify.certified_radius(logits, labels, lipschitz.upper_bound(model, params, p), p)
        exact = _boundary_distance(params[0]["W"], params[0]["b"], x, labels, p)
        np.testing.assert_allclose(radius, exact, rtol=1e-12, atol=1e-14)
    w = RNG.standard_normal((5, 6))
    model, params = nn.Sequential([nn.Dense(6, 5, "none")]), [{"W": w, "b": RNG.standard_normal(5)}]
    labels = RNG.integers(0, 5, 200)
    for p in (2, math.inf):
        radius = certify.certified_radius(model(params, x), labels, lipschitz.upper_bound(model, params, p), p)
        assert np.all(radius <= _boundary_distance(w, params[0]["b"], x, labels, p) * (1 + 1e-12))


@pytest.mark.parametrize("p", [2, math.inf])
def test_attack_reaches_the_worst_case_on_linear_networks(p):
    """[CT-7] [NN-10] two classes, no random start: PGD lowers every margin by exactly
    c_q L eps (sqrt 2 eps in l2, 2 eps in l_inf) — the attack can break anything a too-large
    certificate would claim."""
    model, params = (_orthonormal_rows(2, 6) if p == 2 else _disjoint_linf_rows())
    x = RNG.standard_normal((50, 6))
    labels = RNG.integers(0, 2, 50)
    eps = 0.1
    x_adv = certify.pgd_attack(model, params, x, labels, eps, p, steps=40, random_start=False)
    before, after = certify.margins(model(params, x), labels), certify.margins(model(params, x_adv), labels)
    drop = {2: math.sqrt(2), math.inf: 2.0}[p] * eps
    np.testing.assert_allclose(before - after, drop, rtol=1e-9)


def _cases():
    """Networks with the norms (p, q) their certificate uses."""
    D, A = nn.Dense, nn.Activation
    return {
        "l2-linear": (nn.Sequential([D(6, 4, "bjorck", n_iter=30)]), 2, None),
        # Square orthonormal layers and orthonormal last rows: J J^T = I wherever the network
        # is differentiable [NN-5], so a margin can drop at the full rate sqrt 2 L [CT-7].
        "l2-maxmin": (nn.Sequential([D(6, 6, "bjorck", n_iter=30), A("max_min"), D(6, 6, "bjorck", n_iter=30),
                                     A("max_min"), D(6, 4, "bjorck", n_iter=30), nn.Scale(3.0)]), 2, None),
        "linf-linear": (nn.Sequential([D(6, 4, "linf")]), math.inf, None),
        "linf-groupsort": (nn.Sequential([D(6, 12, "linf"), A("group_sort", group_size=3), D(12, 4, "linf")]),
                           math.inf, None),
        "l2-to-linf": (nn.Sequential([D(6, 12, "pinf", p=2), A("max_min"), D(12, 4, "linf")]), 2, math.inf),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_no_certified_point_is_broken(name):
    """[CT-6] PGD (random start, 30 steps) breaks correctly classified points at the median
    certified radius, but never a certified one, in l2, l_inf and l2 -> l_inf networks."""
    model, p, q = _cases()[name]
    params = [{k: 2.0 * v + 0.3 * RNG.standard_normal(v.shape) for k, v in par.items()} for par in model.init(seed=1)]
    x = RNG.standard_normal((150, 6))
    labels = np.argmax(model(params, x) + 0.3 * RNG.standard_normal((150, 4)), axis=1)  # mostly correct
    L = lipschitz.upper_bound(model, params, p, q)
    radius = certify.certified_radius(model(params, x), labels, L, p, q)
    eps = float(np.median(radius[radius > 0]))
    report = certify.check_certificates(model, params, x, labels, eps, L, p, q, steps=30)
    assert report["certified"] > 0 and report["broken"] > 0
    assert report["broken_certified"].size == 0, report


def test_certified_accuracy():
    """[CT-1] [CT-5] non-increasing in eps, the accuracy at 0, strict inequality at the radius,
    misclassified and tied examples never certified."""
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    labels = np.array([0, 0, 0, 1])
    radius = certify.certified_radius(logits, labels, 1.0, math.inf)
    assert radius[1] == radius[2] == 0.0 and radius[0] == 1.0 and radius[3] == 1.5
    acc = certify.certified_accuracy(logits, labels, 1.0, [0.0, 0.5, 1.0, 1.2, 1.5, 2.0], math.inf)
    np.testing.assert_array_equal(acc, [0.5, 0.5, 0.25, 0.25, 0.0, 0.0])
    assert certify.certified_accuracy(logits, labels, 1.0, 0.999, math.inf) == 0.5
    x = RNG.standard_normal((300, 6))
    model, params = _orthonormal_rows(3, 6)
    y = RNG.integers(0, 3, 300)
    curve = certify.certified_accuracy(model(params, x), y, 1.0, np.linspace(0, 2, 21))
    assert np.all(np.diff(curve) <= 0)
    assert curve[0] == np.mean(np.argmax(model(params, x), axis=1) == y)
    with pytest.raises(ValueError, match=r"eps must be >= 0.0, got -0.1"):
        certify.certified_accuracy(logits, labels, 1.0, -0.1)
    with pytest.raises(ValueError, match=r"L must be > 0.0, got 0.0"):
        certify.certified_radius(logits, labels, 0.0)


@pytest.mark.parametrize("p", [2, math.inf])
def test_attack_stays_in_its_ball_and_box(p):
    """[NN-10] ||x_adv - x||_p <= eps and x_adv in the box, with a random start."""
    model = nn.Sequential([nn.Dense(6, 8, "bjorck", n_iter=20), nn.Activation("max_min"), nn.Dense(8, 3, "bjorck")])
    params = model.init(seed=2)
    x = RNG.uniform(0, 1, (40, 6))
    labels = RNG.integers(0, 3, 40)
    x_adv = certify.pgd_attack(model, params, x, labels, 0.3, p, steps=15, bounds=(0.0, 1.0), seed=3)
    assert np.all(np.linalg.norm(x_adv - x, ord=p, axis=1) <= 0.3 * (1 + 1e-12))
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    m0, m1 = certify.margins(model(params, x), labels), certify.margins(model(params, x_adv), labels)
    assert np.all(m1 <= m0) and np.any(m1 < m0 - 1e-3)
    ce = certify.pgd_attack(model, params, x, labels, 0.3, p, steps=15, loss="cross_entropy")
    assert np.all(certify.margins(model(params, ce), labels) <= m0)


def test_attack_errors():
    model, params = _orthonormal_rows(3, 6)
    x, labels = RNG.uniform(0, 1, (4, 6)), np.array([0, 1, 2, 0])
    for kw, words in [({"eps": -0.1}, r"eps must be >= 0.0, got -0.1"), ({"p": 1}, "p must be 2 or inf"),
                      ({"steps": 0}, "steps must be >= 1, got 0"), ({"loss": "hinge"}, "loss must be one of"),
                      ({"bounds": (1.0, 0.0)}, r"bounds must be \(lo, hi\) with lo < hi"),
                      ({"bounds": (0.5, 1.0)}, r"x must lie in bounds \[0.5, 1.0\]")]:
        args = {"eps": 0.1, **kw}
        with pytest.raises(ValueError, match=words):
            certify.pgd_attack(model, params, x, labels, **args)
