"""Lipschitz bounds and diagnostics: the certified upper bound holds on sampled pairs and bounds
every input Jacobian for random constrained networks [NN-3] [NN-4]; C2 for orthonormal
GroupSort networks [NN-5]; ReLU networks lose gradient norm and their unit activity [NN-6]."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reflip import nn
from reflip.nn import lipschitz

NORMS = [(2, 2), (math.inf, math.inf), (1, 1), (2, math.inf), (1, math.inf)]
# Slack for rounding: the bound is a product of SVD norms, the ratios go through a few GEMMs.
RTOL = 1e-9


@st.composite
def networks(draw):
    """A random constrained network with raw (unconstrained-looking) parameters, inputs and
    the norms ``(p, q)`` to bound it in. Widths are multiples of the drawn group sizes."""
    p, q = draw(st.sampled_from(NORMS))
    depth = draw(st.integers(1, 3))
    width = draw(st.integers(1, 4))
    layers, n_in = [], draw(st.integers(1, 5))
    first = n_in
    for i in range(depth):
        last = i == depth - 1
        act = None if last else draw(st.sampled_from(nn.ACTIVATIONS))
        k = {"group_sort": draw(st.sampled_from([2, 3, 4])), "max_min": 2}.get(act, 1)
        n_out = draw(st.integers(1, 2)) if last else k * width
        choices = [c for c in nn.CONSTRAINTS if (c != "pinf" or i == 0) and (c != "unit_row" or n_out == 1)]
        constraint = draw(st.sampled_from(choices))
        options = {"bjorck": {"n_iter": draw(st.integers(0, 6))},
                   "pinf": {"p": draw(st.sampled_from([1, 2, math.inf]))},
                   "linf": {"radius": draw(st.sampled_from([0.5, 1.0, 2.0]))}}.get(constraint, {})
        layers.append(nn.Dense(n_in, n_out, constraint, **options))
        if act == "group_sort":
            layers.append(nn.Activation(act, group_size=k))
        elif act is not None:
            layers.append(nn.Activation(act))
        n_in = n_out
    if draw(st.booleans()):
        layers.append(nn.Scale(draw(st.sampled_from([0.5, 2.0, 3.0]))))
    model = nn.Sequential(layers)
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    params = [{k: scale * v + rng.standard_normal(v.shape) for k, v in p_.items()} for p_ in model.init(seed=seed)]
    x = rng.standard_normal((12, first))
    return model, params, x, p, q


def check_bound(model, params, x, p, q, seed=0):
    """Ratios over random and nearby pairs, and the operator norm of every chained Jacobian,
    divided by the upper bound (all must be <= 1 + RTOL)."""
    u = lipschitz.upper_bound(model, params, p, q)
    near = x + 1e-3 * np.random.default_rng(seed).standard_normal(x.shape)
    worst = max(lipschitz.pair_lower_bound(model, params, x, p=p, q=q, n_pairs=40, seed=seed),
                lipschitz.pair_lower_bound(model, params, x, near, p=p, q=q),
                lipschitz.gradient_lower_bound(model, params, x, p, q))
    return worst / u if u > 0 else worst


@given(networks())
def test_upper_bound_holds(case):
    """[NN-3] [NN-4] for random widths, depths, constraints, activations and norms: no sampled
    pair and no input Jacobian (conventions at kinks included) exceeds the certified bound."""
    model, params, x, p, q = case
    assert check_bound(model, params, x, p, q) <= 1 + RTOL


def test_operator_norms_by_brute_force():
    """[NN-3] the closed forms against maximisation over the extreme points of the unit ball
    (sign vectors for l_inf, +-e_j for l1) and the Hölder-extremal directions for (2, inf)."""
    w = np.random.default_rng(0).standard_normal((4, 6))
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=6)))
    assert lipschitz.operator_norm(w, math.inf) == pytest.approx(np.abs(signs @ w.T).max(), rel=1e-14)
    assert lipschitz.operator_norm(w, 1) == pytest.approx(np.abs(w).sum(axis=0).max(), rel=1e-14)
    assert lipschitz.operator_norm(w, 1, math.inf) == pytest.approx(np.abs(w).max(), rel=1e-14)
    rows = w / np.linalg.norm(w, axis=1, keepdims=True)
    assert lipschitz.operator_norm(w, 2, math.inf) == pytest.approx(np.abs(rows @ w.T).max(), rel=1e-14)
    dirs = np.random.default_rng(1).standard_normal((2000, 6))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    assert np.abs(dirs @ w.T).max() <= lipschitz.operator_norm(w, 2, math.inf) * (1 + 1e-12)
    assert lipschitz.operator_norm(w, 2) == pytest.approx(np.linalg.svd(w, compute_uv=False)[0], rel=1e-14)
    with pytest.raises(ValueError, match="only q = inf"):
        lipschitz.operator_norm(w, math.inf, 2)


def test_jacobians_against_differences():
    """[NN-4] the chained Jacobian of every example against central differences."""
    model = nn.Sequential([nn.Dense(3, 6, "bjorck", n_iter=10), nn.Activation("group_sort", group_size=3),
                           nn.Dense(6, 4, "linf"), nn.Activation("abs"), nn.Dense(4, 2, "spectral")])
    params = [{k: 1.2 * v + 0.1 for k, v in p.items()} for p in model.init(seed=0)]
    x = np.random.default_rng(0).standard_normal((5, 3))
    jac = lipschitz.jacobians(model, params, x)
    h = 1e-6
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        np.testing.assert_allclose(jac[:, :, j], (model(params, x + e) - model(params, x - e)) / (2 * h),
                                   rtol=1e-7, atol=1e-9)
    labels = np.array([0, 1, 1, 0, 1])
    picked = np.linalg.norm(jac[np.arange(5), labels], axis=1)
    np.testing.assert_allclose(lipschitz.input_gradient_norms(model, params, x, output=labels), picked, rtol=1e-14)
    np.testing.assert_allclose(lipschitz.local_lipschitz(model, params, x),
                               np.linalg.norm(jac, ord=2, axis=(1, 2)), rtol=1e-12)
    with pytest.raises(ValueError, match="output: the model has 2 outputs, pass output="):
        lipschitz.input_gradients(model, params, x)


@st.composite
def orthonormal_groupsort_nets(draw):
    """Square orthonormal weights (Björck, converged), GroupSort/MaxMin/FullSort, random
    biases, a unit last row (Björck or unit_row)."""
    n = draw(st.sampled_from([2, 4, 6, 8]))
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        layers.append(nn.Dense(n, n, "bjorck", n_iter=40))
        k = draw(st.sampled_from([d for d in range(2, n + 1) if n % d == 0]))
        layers.append(nn.Activation("full_sort") if k == n else nn.Activation("group_sort", group_size=k))
    last = draw(st.sampled_from(["bjorck", "unit_row"]))
    layers.append(nn.Dense(n, 1, last, **({"n_iter": 40} if last == "bjorck" else {})))
    model = nn.Sequential(layers)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    params = [{k: v + (0.05 if k == "W" else 1.0) * rng.standard_normal(v.shape) for k, v in p.items()}
              for p in model.init(seed=draw(st.integers(0, 2**16)))]
    return model, params, rng.standard_normal((64, n))


@given(orthonormal_groupsort_nets())
def test_c2_gradient_norm_is_one(case):
    """[NN-5] claim C2: orthonormal square weights + GroupSort + unit last row give
    ||grad f(x)||_2 = 1 at every sampled x."""
    model, params, x = case
    norms = lipschitz.input_gradient_norms(model, params, x)
    assert lipschitz.describe(norms, rtol=1e-10)["fraction_at_target"] == 1.0, norms


def test_relu_loses_gradient_norm_and_abs_does_not():
    """[NN-6] the same orthonormal weights with ReLU: norms <= 1 and well below 1 on average
    (C3); with abs (a +-1 diagonal Jacobian) every norm is 1 [NN-5]."""
    def net(act):
        layers = []
        for _ in range(3):
            layers += [nn.Dense(8, 8, "bjorck", n_iter=40), nn.Activation(act)]
        return nn.Sequential(layers + [nn.Dense(8, 1, "unit_row")])

    rng = np.random.default_rng(0)
    params = [{k: v + (0.0 if k == "W" else 0.5) * rng.standard_normal(v.shape) for k, v in p.items()}
              for p in net("relu").init(seed=0)]
    x = rng.standard_normal((256, 8))
    relu = lipschitz.describe(lipschitz.input_gradient_norms(net("relu"), params, x))
    assert relu["max"] <= 1 + 1e-12 and relu["mean"] < 0.8 and relu["fraction_at_target"] < 0.1
    absn = lipschitz.describe(lipschitz.input_gradient_norms(net("abs"), params, x), rtol=1e-10)
    assert absn["fraction_at_target"] == 1.0


def test_unit_activity_against_recomputed_preactivations():
    """[NN-6] never/always-active fractions equal those of pre-activations recomputed from the
    effective weights; a unit pushed to a large negative bias is dead."""
    model = nn.Sequential([nn.Dense(3, 8, "bjorck", n_iter=20), nn.Activation("relu"), nn.Dense(8, 6, "linf"),
                           nn.Activation("relu"), nn.Dense(6, 2)])
    params = model.init(seed=0)
    params[0]["b"] = np.array([-50.0, 50.0, 0, 0, 0, 0, 0, 0])
    x = np.random.default_rng(0).standard_normal((100, 3))
    ws = model.effective_weights(params)
    h1 = x @ ws[0].T + params[0]["b"]
    h2 = np.maximum(h1, 0) @ ws[1].T + params[2]["b"]
    got = lipschitz.unit_activity(model, params, x)
    for entry, h, layer in zip(got, (h1, h2), (1, 3), strict=True):
        assert entry["layer"] == layer and entry["width"] == h.shape[1]
        assert entry["never"] == pytest.approx(np.mean(np.all(h <= 0, axis=0)))
        assert entry["always"] == pytest.approx(np.mean(np.all(h > 0, axis=0)))
    assert got[0]["never"] >= 1 / 8 and got[0]["always"] >= 1 / 8
