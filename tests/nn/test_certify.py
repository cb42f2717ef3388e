"""Certificates (claim C8) [CT-2]-[CT-7] and the PGD attack [NN-10]: no certified point is ever
broken; on linear networks the certified radius is the exact distance to the decision boundary
(so the certificate is neither unsound nor loose there) and the attack reaches the worst case;
the attack respects its ball and box."""
import math
import warnings

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


# ----------------------------------------------------------------------------------------------
# The attack's steps, defaults, random start and arguments; certificates at their boundaries.

def _dense(w, b):
    """A one-layer linear network with the given (unconstrained) weights."""
    w = np.asarray(w, dtype=np.float64)
    return nn.Sequential([nn.Dense(w.shape[1], w.shape[0], "none")]), [{"W": w, "b": np.asarray(b, dtype=np.float64)}]


def _torch_direction(w, b, x, labels, loss, p):
    """Oracle: the steepest-ascent direction of the attack loss [NN-10] (``g / ||g||_2`` or
    ``sign(g)``), with ``g`` from torch autograd of the negative margin or of torch's
    cross-entropy on the logits ``x W^T + b``."""
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    logits = xt @ torch.tensor(w).T + torch.tensor(b)
    lab = torch.tensor(labels)
    if loss == "margin":
        others = logits.masked_fill(torch.nn.functional.one_hot(lab, w.shape[0]).bool(), -torch.inf)
        value = (others.max(dim=1).values - logits.gather(1, lab[:, None])[:, 0]).sum()
    else:
        value = torch.nn.functional.cross_entropy(logits, lab, reduction="sum")
    (g,) = torch.autograd.grad(value, xt)
    g = g.numpy()
    return np.sign(g) if p == math.inf else g / np.linalg.norm(g, axis=1, keepdims=True)


def _kept_if_lower(model, params, x, labels, candidate):
    """[NN-10] per example, the candidate where it lowers the margin, else x."""
    lower = certify.margins(model(params, candidate), labels) < certify.margins(model(params, x), labels)
    return np.where(lower[:, None], candidate, x)


@pytest.mark.parametrize("loss", ["margin", "cross_entropy"])
@pytest.mark.parametrize("p", [2, math.inf])
def test_one_step_follows_the_steepest_ascent_direction_of_the_loss(p, loss):
    """[NN-10] four classes, no random start, one step of the given size well inside the ball:
    x + step_size * (the loss's steepest-ascent direction, from torch autograd), kept where it
    lowers the margin; the same inside a box that does not bind. The margin loss and the
    cross-entropy move differently with more than two classes."""
    rng = np.random.default_rng(5)
    w, b = rng.standard_normal((4, 6)), rng.standard_normal(4)
    model, params = _dense(w, b)
    x, labels = rng.standard_normal((30, 6)), rng.integers(0, 4, 30)
    expected = _kept_if_lower(model, params, x, labels, x + 0.05 * _torch_direction(w, b, x, labels, loss, p))
    assert np.any(expected != x)
    for bounds in (None, (-100.0, 100.0)):
        x_adv = certify.pgd_attack(model, params, x, labels, 1.0, p, steps=1, step_size=0.05, random_start=False,
                                   bounds=bounds, loss=loss)
        np.testing.assert_allclose(x_adv, expected, rtol=1e-12, atol=1e-14)
    other = {"margin": "cross_entropy", "cross_entropy": "margin"}[loss]
    moved = _kept_if_lower(model, params, x, labels, x + 0.05 * _torch_direction(w, b, x, labels, other, p))
    assert np.abs(moved - expected).max() > 1e-3


def test_cross_entropy_attack_on_huge_logits_of_different_scales():
    """[NN-10] the cross-entropy step stays finite and equal to torch's (a stable softmax) when
    the logits reach 1e3 on some rows and stay O(1) on others (misclassified examples, so the
    gradient is not zero)."""
    rng = np.random.default_rng(6)
    w, b = rng.standard_normal((3, 5)), rng.standard_normal(3)
    model, params = _dense(w, b)
    x = rng.standard_normal((20, 5))
    x[::2] *= 1000.0
    labels = np.argmin(model(params, x), axis=1)
    step = 0.01 * _torch_direction(w, b, x, labels, "cross_entropy", 2)
    expected = _kept_if_lower(model, params, x, labels, x + step)
    x_adv = certify.pgd_attack(model, params, x, labels, 1.0, 2, steps=1, step_size=0.01, random_start=False,
                               loss="cross_entropy")
    assert np.all(np.isfinite(x_adv)) and np.all(np.any(x_adv != x, axis=1))
    np.testing.assert_allclose(x_adv, expected, rtol=1e-12, atol=1e-12)


def _valley(c=0.13):
    """Margin |x_0 - c| for label 0 (abs of a shifted coordinate, minus a zero logit)."""
    layers = [nn.Dense(2, 2, "none"), nn.Activation("abs"), nn.Dense(2, 2, "none")]
    params = [{"W": np.array([[1.0, 0.0], [0.0, 0.0]]), "b": np.array([-c, 0.0])}, {},
              {"W": np.eye(2), "b": np.zeros(2)}]
    return nn.Sequential(layers), params


@pytest.mark.parametrize("p", [2, math.inf])
def test_attack_returns_the_best_visited_point(p):
    """[NN-10] steps of 0.1 from x_0 = 0 towards the valley at 0.13 visit 0, 0.1, 0.2: the best
    is the middle one (margin 0.03), not the last one (0.07)."""
    model, params = _valley()
    x, labels = np.zeros((3, 2)), np.zeros(3, dtype=np.int64)
    x_adv = certify.pgd_attack(model, params, x, labels, 1.0, p, steps=2, step_size=0.1, random_start=False)
    np.testing.assert_allclose(x_adv, np.tile([0.1, 0.0], (3, 1)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(certify.margins(model(params, x_adv), labels), 0.03, rtol=1e-12)


@pytest.mark.parametrize("p", [2, math.inf])
def test_attack_returns_x_when_no_step_lowers_the_margin(p):
    """[NN-10] a constant network (zero weights): every visited point ties with x, so x itself
    comes back, with or without a random start; a zero gradient and a zero step divide nothing
    by zero (no NumPy warning); eps = 0 returns x."""
    model, params = _dense(np.zeros((3, 6)), [1.0, 0.0, -1.0])
    x, labels = RNG.standard_normal((10, 6)), RNG.integers(0, 3, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for random_start in (True, False):
            x_adv = certify.pgd_attack(model, params, x, labels, 0.3, p, steps=3, random_start=random_start)
            np.testing.assert_array_equal(x_adv, x)
        model2, params2 = _orthonormal_rows(3, 6)
        np.testing.assert_array_equal(certify.pgd_attack(model2, params2, x, labels, 0.0, p, steps=2), x)


def test_attack_defaults_are_the_documented_ones():
    """[NN-10] the defaults p=2, steps=50, step_size=2.5 eps/steps, random_start=True, seed=0,
    loss="margin" give exactly the explicit call; another seed, no random start, 51 steps or
    another step size give another point; the same seed gives the same point."""
    model = nn.Sequential([nn.Dense(6, 8, "bjorck", n_iter=20), nn.Activation("max_min"), nn.Dense(8, 3, "bjorck")])
    params = [{k: 3.0 * v for k, v in par.items()} for par in model.init(seed=4)]
    x, labels = RNG.standard_normal((12, 6)), RNG.integers(0, 3, 12)
    base = certify.pgd_attack(model, params, x, labels, 0.4)
    explicit = certify.pgd_attack(model, params, x, labels, 0.4, 2, steps=50, step_size=2.5 * 0.4 / 50,
                                  random_start=True, seed=0, bounds=None, loss="margin")
    np.testing.assert_array_equal(base, explicit)
    for kw in ({"seed": 1}, {"random_start": False}, {"steps": 51}, {"step_size": 3.5 * 0.4 / 50}):
        assert np.any(certify.pgd_attack(model, params, x, labels, 0.4, **kw) != base), kw


def _abs_cone():
    """Margin -||x||_1 for label 0: every move away from 0 lowers it."""
    layers = [nn.Dense(6, 6, "none"), nn.Activation("abs"), nn.Dense(6, 2, "none")]
    params = [{"W": np.eye(6), "b": np.zeros(6)}, {},
              {"W": np.vstack([np.zeros(6), np.ones(6)]), "b": np.zeros(2)}]
    return nn.Sequential(layers), params


def _ks_uniform(u):
    """Kolmogorov-Smirnov distance of a sample of [0, 1] from the uniform distribution."""
    u = np.sort(u)
    k = np.arange(1, u.size + 1)
    return max(np.max(k / u.size - u), np.max(u - (k - 1) / u.size))


@pytest.mark.parametrize("p", [2, math.inf])
def test_random_start_is_uniform_in_the_ball(p):
    """[NN-10] the random start is uniform in the ball: seen through one step of 1e-9 from x = 0
    on a network whose margin falls away from 0, each l_inf coordinate is uniform in
    [-eps, eps]; in l2 the direction is uniform (mean ~ 0) and (r / eps)^n is uniform."""
    model, params = _abs_cone()
    eps, n = 0.5, 4000
    x, labels = np.zeros((n, 6)), np.zeros(n, dtype=np.int64)
    start = certify.pgd_attack(model, params, x, labels, eps, p, steps=1, step_size=1e-9, seed=7)
    if p == math.inf:
        assert np.abs(start).max() <= eps
        assert _ks_uniform((start.ravel() / eps + 1) / 2) < 0.02
    else:
        r = np.linalg.norm(start, axis=1)
        assert r.max() <= eps * (1 + 1e-12)
        assert _ks_uniform((r / eps) ** 6) < 0.03
        assert np.abs(np.mean(start / r[:, None], axis=0)).max() < 0.05


def test_attack_keeps_the_dtype_of_x():
    """[NN-10] x_adv is an array like x: float32 in, float32 out (random start, both losses),
    and the margins of float32 logits are float32."""
    model = nn.Sequential([nn.Dense(6, 8, "bjorck", n_iter=20), nn.Activation("max_min"), nn.Dense(8, 3, "bjorck")])
    params = model.init(seed=2, dtype="float32")
    x, labels = RNG.uniform(0, 1, (10, 6)).astype(np.float32), RNG.integers(0, 3, 10)
    for loss in ("margin", "cross_entropy"):
        assert certify.pgd_attack(model, params, x, labels, 0.3, 2, steps=3, loss=loss).dtype == np.float32
    assert certify.margins(model(params, x), labels).dtype == np.float32


def test_attack_and_jacobians_take_input_only_backward_passes(backward_modes):
    """[NN-10] the attack is driven by the input-only backward pass of the frozen model (the
    cheap path that skips the weight VJPs): every backward call passes input_only=True."""
    seen = backward_modes
    model, params = _orthonormal_rows(3, 6)
    certify.pgd_attack(model, params, RNG.standard_normal((4, 6)), np.array([0, 1, 2, 0]), 0.1, steps=2)
    assert seen == [True, True]


def test_attack_argument_messages():
    """[NN-10] messages name the argument, what it got and what is expected."""
    model, params = _orthonormal_rows(3, 6)
    x, labels = RNG.uniform(0, 1, (4, 6)), np.array([0, 1, 2, 0])
    bad = [({"p": 1}, ValueError, r"^p must be 2 or inf \(math.inf\) for pgd_attack, got 1$"),
           ({"step_size": 0.0}, ValueError, r"^step_size must be > 0.0, got 0.0$"),
           ({"step_size": -1.0}, ValueError, r"^step_size must be > 0.0, got -1.0$"),
           ({"random_start": "yes"}, TypeError, r"^random_start must be True or False"),
           ({"bounds": 5}, TypeError, r"^bounds must be None or a pair \(lo, hi\), got 5$"),
           ({"bounds": (0.0, 1.0, 2.0)}, TypeError,
            r"^bounds must be None or a pair \(lo, hi\), got \(0.0, 1.0, 2.0\)$"),
           ({"bounds": ("a", 1.0)}, TypeError, r"^bounds\[0\] must be a real number"),
           ({"bounds": (0.0, "b")}, TypeError, r"^bounds\[1\] must be a real number"),
           ({"bounds": (0.5, 0.5)}, ValueError, r"^bounds must be \(lo, hi\) with lo < hi, got \(0.5, 0.5\)$"),
           ({"bounds": (0.0, 0.5)}, ValueError, r"^x must lie in bounds \[0.0, 0.5\]")]
    for kw, exc, words in bad:
        with pytest.raises(exc, match=words):
            certify.pgd_attack(model, params, x, labels, **{"eps": 0.1, **kw})
    with pytest.raises(TypeError, match=r"^x must have dtype float32 or float64"):
        certify.pgd_attack(model, params, np.ones((4, 6), dtype=np.int64), labels, 0.1)
    with pytest.raises(TypeError, match=r"^labels must be an array"):
        certify.pgd_attack(model, params, x, [0, 1, 2, 0], 0.1)
    with pytest.raises(TypeError, match=r"^x must be an array"):
        certify.pgd_attack(model, params, x.tolist(), labels, 0.1)
    with pytest.raises(TypeError, match=r"^labels must be an array"):
        certify.margins(model(params, x), [0, 1, 2, 0])
    # x on the faces of the box is inside it; a small step size is valid.
    x[0, 0], x[1, 1] = 0.0, 1.0
    x_adv = certify.pgd_attack(model, params, x, labels, 0.1, steps=2, step_size=0.01, bounds=(0.0, 1.0))
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_output_constant_values_and_messages():
    """[CT-2] c_q = sqrt 2, 2, 1 for q = 2, inf, 1; a bad q is named q."""
    assert certify.output_constant(2) == math.sqrt(2) and certify.output_constant(1) == 1.0
    assert certify.output_constant(math.inf) == 2.0
    with pytest.raises(ValueError, match=r"^q must be 1, 2 or inf \(math.inf\), got 3.0$"):
        certify.output_constant(3)


def test_certified_accuracy_eps_forms():
    """[CT-5] eps: a scalar (Python, NumPy 0-d of any real dtype, a 0-d torch tensor) gives a
    float; a 1-d list, tuple, array or torch tensor (one element included) gives one value per
    radius; anything else is refused with a message naming eps, what it got and what is
    expected."""
    torch = pytest.importorskip("torch")
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    labels = np.array([0, 0, 0, 1])
    for eps in (0.5, np.array(0.5), np.array(0.5, dtype=np.float32), torch.tensor(0.5)):
        acc = certify.certified_accuracy(logits, labels, 1.0, eps, math.inf)
        assert type(acc) is float and acc == 0.5, eps
    for eps in (np.array(1), np.array(1, dtype=np.uint8)):
        assert certify.certified_accuracy(logits, labels, 1.0, eps, math.inf) == 0.25
    for eps in ([0.5], (0.5,), np.array([0.5]), torch.tensor([0.5])):
        acc = certify.certified_accuracy(logits, labels, 1.0, eps, math.inf)
        assert isinstance(acc, np.ndarray) and acc.dtype == np.float64 and acc.tolist() == [0.5], eps
    np.testing.assert_array_equal(certify.certified_accuracy(logits, labels, 1.0, [0, 1], math.inf), [0.5, 0.25])
    bad = [(range(3), TypeError, r"^eps must be a real number or a 1-d sequence of real numbers, got range$"),
           ({0.5}, TypeError, r"^eps must be a real number, got \{0.5\} \(set\)$"),
           (["a"], TypeError, r"^eps must be a real number or a 1-d sequence of real numbers, got list of dtype <U1$"),
           ([], ValueError, r"^eps must be one radius or a non-empty 1-d sequence of radii, got shape \(0,\)$"),
           ([[0.1, 0.2]], ValueError,
            r"^eps must be one radius or a non-empty 1-d sequence of radii, got shape \(1, 2\)$"),
           ([0.1, -0.1], ValueError, r"^eps must hold finite numbers >= 0, got \[0.1, -0.1\]$"),
           ([0.1, math.nan], ValueError, r"^eps must hold finite numbers >= 0, got \[0.1, nan\]$")]
    for eps, exc, words in bad:
        with pytest.raises(exc, match=words):
            certify.certified_accuracy(logits, labels, 1.0, eps)


def _one_feature():
    """f = (x_0, 0), ||W||_{inf} = 1: the margin of label 0 is x_0, the l_inf certified
    radius x_0 / 2 [CT-3]."""
    return _dense([[1.0, 0.0], [0.0, 0.0]], [0.0, 0.0])


def test_check_certificates_at_the_boundaries():
    """[CT-5] [CT-6] margin 0.5, L = 1, l_inf: radius 0.25 is not certified at eps = 0.25
    (strict); a tie counts as not correct; one l_inf step of the default size (clipped to the
    ball) at eps = 0.5 lands exactly on the tie, which counts as broken; a step of 0.01 (attack
    options are passed on) breaks nothing; worst_margin is inf when nothing is certified, the
    attacked margin otherwise."""
    model, params = _one_feature()
    x, labels = np.array([[0.5, 0.0], [0.0, 0.0]]), np.array([0, 0])
    report = certify.check_certificates(model, params, x, labels, 0.25, 1.0, math.inf, steps=1, random_start=False)
    assert report["eps"] == 0.25 and report["correct"] == 1 and report["certified"] == 0
    assert report["worst_margin"] == math.inf and report["broken_certified"].size == 0
    report = certify.check_certificates(model, params, x, labels, 0.5, 1.0, math.inf, steps=1, random_start=False)
    assert report["broken"] == 1 and report["certified"] == 0
    gentle = {"steps": 1, "random_start": False, "step_size": 0.01}
    assert certify.check_certificates(model, params, x, labels, 0.5, 1.0, math.inf, **gentle)["broken"] == 0
    report = certify.check_certificates(model, params, x, labels, 0.2, 1.0, math.inf, **gentle)
    assert report["certified"] == 1 and report["worst_margin"] == pytest.approx(0.49, rel=1e-12)
    with pytest.raises(ValueError, match=r"^eps must be >= 0.0, got -1.0$"):
        certify.check_certificates(model, params, x, labels, -1.0, 1.0, math.inf)


def test_check_certificates_reports_a_wrong_constant():
    """[CT-6] an L ten times too small makes certificates unsound: the attack breaks certified
    examples and broken_certified lists exactly those."""
    model, params = _orthonormal_rows(3, 6)
    x = RNG.standard_normal((60, 6))
    labels = np.argmax(model(params, x), axis=1)
    report = certify.check_certificates(model, params, x, labels, 0.3, 0.1, 2, steps=20)
    radius = certify.certified_radius(model(params, x), labels, 0.1, 2)
    m_adv = certify.margins(model(params, certify.pgd_attack(model, params, x, labels, 0.3, 2, steps=20)), labels)
    expected = np.flatnonzero((radius > 0.3) & (m_adv <= 0))
    assert expected.size > 0
    np.testing.assert_array_equal(report["broken_certified"], expected)


def test_check_certificates_uses_q():
    """[CT-2] [CT-4] the certified count uses the output norm q (c_inf = 2, not sqrt 2): it is
    certified_accuracy times the batch size with the same (p, q)."""
    model = nn.Sequential([nn.Dense(6, 12, "pinf", p=2), nn.Activation("max_min"), nn.Dense(12, 4, "linf")])
    params = model.init(seed=3)
    x = RNG.standard_normal((200, 6))
    logits = model(params, x)
    labels = np.argmax(logits, axis=1)
    L = lipschitz.upper_bound(model, params, 2, math.inf)
    eps = float(np.median(certify.certified_radius(logits, labels, L, 2, math.inf)))
    report = certify.check_certificates(model, params, x, labels, eps, L, 2, math.inf, steps=2)
    assert report["certified"] == round(200 * certify.certified_accuracy(logits, labels, L, eps, 2, math.inf))
    assert report["certified"] != round(200 * certify.certified_accuracy(logits, labels, L, eps, 2, 2))


@pytest.mark.parametrize("scalar", [np.float64(1.0), np.float32(1.0), np.int64(1)])
def test_a_numpy_scalar_radius_is_a_number(scalar):
    """``eps`` given as a NumPy scalar (what indexing a NumPy array of radii returns) is the
    same radius as the Python number: the same certified accuracy, a scalar result."""
    logits = np.array([[3.0, 0.0], [0.0, 0.5], [2.0, 0.0]])
    labels = np.array([0, 1, 0])
    want = certify.certified_accuracy(logits, labels, 1.0, 1.0, math.inf)
    assert certify.certified_accuracy(logits, labels, 1.0, scalar, math.inf) == want

