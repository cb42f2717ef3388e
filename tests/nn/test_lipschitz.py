"""Lipschitz bounds and diagnostics: the certified upper bound holds on sampled pairs and bounds
every input Jacobian for random constrained networks [NN-3] [NN-4]; C2 for orthonormal
GroupSort networks [NN-5]; ReLU networks lose gradient norm and their unit activity [NN-6]."""
import itertools
import math
import warnings

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


@pytest.mark.parametrize("float_dtype", ["float32", "float64"])
def test_unit_activity_fractions_are_exact_in_every_dtype(float_dtype, backend):
    """[NN-6] The fractions are the counts divided by the width, whatever the model's dtype and
    array module: one dead and one always-active unit of three give exactly 1/3 each (a float32
    mean gives 0.3333333432674408)."""
    model = nn.Sequential([nn.Dense(1, 3, "none"), nn.Activation("relu"), nn.Dense(3, 1)])
    params = model.init(seed=0, dtype=float_dtype)
    params[0]["W"] = np.ones((3, 1))
    params[0]["b"] = np.array([-10.0, 10.0, 0.0])
    params = [{k: backend.asarray(v, float_dtype) for k, v in p.items()} for p in params]
    x = backend.asarray(np.array([[-1.0], [1.0]]), float_dtype)  # the third unit is active on one example only
    (entry,) = lipschitz.unit_activity(model, params, x)
    assert entry == {"layer": 1, "width": 3, "never": 1 / 3, "always": 1 / 3}


# ----------------------------------------------------------------------------------------------
# Arguments, defaults, dtypes and boundaries of the diagnostics.

def _small_net(dtype="float64"):
    model = nn.Sequential([nn.Dense(3, 6, "bjorck", n_iter=10), nn.Activation("group_sort", group_size=3),
                           nn.Dense(6, 2, "linf")])
    return model, model.init(seed=1, dtype=dtype)


def test_input_only_backward_passes(backward_modes):
    """[NN-2] Jacobians and input gradients come from input-only backward passes (the cheap
    path that skips the weight VJPs): every backward call passes input_only=True."""
    seen = backward_modes
    model, params = _small_net()
    x = np.random.default_rng(0).standard_normal((4, 3))
    lipschitz.jacobians(model, params, x)
    lipschitz.input_gradients(model, params, x, output=1)
    assert seen == [True, True, True]


def test_float32_in_float32_out():
    """float32 inputs and parameters give float32 Jacobians and gradients (one index or one
    per example), equal to the float64 ones to float32 accuracy."""
    model, p32 = _small_net("float32")
    p64 = [{k: v.astype(np.float64) for k, v in par.items()} for par in p32]
    x = np.random.default_rng(0).standard_normal((5, 3))
    jac = lipschitz.jacobians(model, p32, x.astype(np.float32))
    assert jac.dtype == np.float32
    np.testing.assert_allclose(jac, lipschitz.jacobians(model, p64, x), rtol=1e-4, atol=1e-5)
    for output in (1, np.array([0, 1, 1, 0, 1])):
        g = lipschitz.input_gradients(model, p32, x.astype(np.float32), output=output)
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, lipschitz.input_gradients(model, p64, x, output=output), rtol=1e-4, atol=1e-5)


def test_output_forms_and_messages():
    """output: a Python or NumPy integer picks one output for every example (a NumPy scalar is
    not an index array); one index per example; out-of-range and misshapen ones are refused,
    naming output, what it got and what is expected."""
    model, params = _small_net()
    x = np.random.default_rng(0).standard_normal((5, 3))
    jac = lipschitz.jacobians(model, params, x)
    for output in (1, np.int64(1), np.int32(1)):
        np.testing.assert_array_equal(lipschitz.input_gradients(model, params, x, output=output), jac[:, 1])
    labels = np.array([0, 1, 1, 0, 1], dtype=np.int32)
    np.testing.assert_array_equal(lipschitz.input_gradients(model, params, x, output=labels), jac[np.arange(5), labels])
    bad = [(-1, r"^output must be >= 0, got -1$"), (2, r"^output must be <= 1, got 2$"),
           (np.array([0, 1]), r"^output must be an int or an integer array of shape \(5,\) \(one index per example\), "
                              r"got shape \(2,\)$"),
           (np.array([0, 1, 2, 0, 1]), r"^output indices must lie in \[0, 2\) for 2 outputs, got values from 0 to 2$"),
           (np.array([-1, 1, 1, 0, 1]),
            r"^output indices must lie in \[0, 2\) for 2 outputs, got values from -1 to 1$")]
    for output, words in bad:
        with pytest.raises(ValueError, match=words):
            lipschitz.input_gradients(model, params, x, output=output)


def test_pair_ratios_arguments_and_defaults():
    """[NN-4] the defaults (len(x) pairs, seed 0) are the explicit call, a seed is
    reproducible; n_pairs counts the pairs (1 and 100 included); two rows suffice; the
    lower bound is the maximum ratio with the same arguments; bad arguments are refused with
    messages naming them."""
    model, params = _small_net()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 3))
    base = lipschitz.pair_ratios(model, params, x)
    assert base.shape == (7,)
    np.testing.assert_array_equal(base, lipschitz.pair_ratios(model, params, x, None, 2, None, 7, 0))
    np.testing.assert_array_equal(lipschitz.pair_ratios(model, params, x, seed=5),
                                  lipschitz.pair_ratios(model, params, x, seed=5))
    assert np.any(lipschitz.pair_ratios(model, params, x, seed=1) != base)
    assert lipschitz.pair_ratios(model, params, x, n_pairs=1).shape == (1,)
    assert lipschitz.pair_ratios(model, params, x, n_pairs=100).shape == (100,)
    assert lipschitz.pair_ratios(model, params, x[:2], n_pairs=5).shape == (5,)
    x2 = rng.standard_normal((7, 3))
    for kw in ({}, {"seed": 5}, {"n_pairs": 1}, {"n_pairs": 3, "seed": 2}):
        assert lipschitz.pair_lower_bound(model, params, x, **kw) == lipschitz.pair_ratios(model, params, x, **kw).max()
    assert lipschitz.pair_lower_bound(model, params, x, x2) == lipschitz.pair_ratios(model, params, x, x2).max()
    assert lipschitz.pair_lower_bound(model, params, x, x2) != lipschitz.pair_lower_bound(model, params, x)
    assert lipschitz.pair_lower_bound(model, params, x, seed=5) != lipschitz.pair_lower_bound(model, params, x)
    torch = pytest.importorskip("torch")
    bad = [((x[:1],), {}, ValueError,
            r"^x must have at least 2 rows to draw pairs from \(or pass x2\), got shape \(1, 3\)$"),
           ((x[0],), {}, ValueError, r"^x must have at least 2 dimension\(s\), got shape \(3,\)$"),
           ((x,), {"n_pairs": 0}, ValueError, r"^n_pairs must be >= 1, got 0$"),
           ((x, x2), {"n_pairs": 3}, ValueError,
            r"^n_pairs applies when pairs are drawn from x alone; with x2 the pairs are \(x\[i\], x2\[i\]\), "
            r"got n_pairs=3$"),
           ((x, x2[0]), {}, ValueError, r"^x2 must have at least 2 dimension\(s\), got shape \(3,\)$"),
           ((x, x2[:3]), {}, ValueError, r"^x2 must have the shape of x \(7, 3\), got \(3, 3\)$"),
           ((x, torch.tensor(x2)), {}, TypeError, r"^x, x2 must be arrays of one array library")]
    for args, kw, exc, words in bad:
        with pytest.raises(exc, match=words):
            lipschitz.pair_ratios(model, params, *args, **kw)


def test_pair_count_is_bounded_before_drawing(monkeypatch):
    """[NN-4] n_pairs above 2**31 is refused before any index array is drawn; 2**31 itself is
    within the bound (checked without drawing)."""
    model, params = _small_net()
    x = np.random.default_rng(0).standard_normal((4, 3))

    def no_draw(seed):
        raise AssertionError("drew pairs")

    monkeypatch.setattr(lipschitz.np.random, "default_rng", no_draw)
    with pytest.raises(ValueError, match=r"^n_pairs must be <= 2147483648, got 2147483649$"):
        lipschitz.pair_ratios(model, params, x, n_pairs=2**31 + 1)
    with pytest.raises(AssertionError, match="drew pairs"):
        lipschitz.pair_ratios(model, params, x, n_pairs=2**31)


def test_random_pairs_are_uniform_over_distinct_rows():
    """[NN-4] four rows with six distinct pairwise ratios: every unordered pair of distinct
    rows is drawn, each with frequency 1/6 (6000 draws)."""
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    model = nn.Sequential([nn.Dense(1, 1, "none"), nn.Activation("relu"), nn.Dense(1, 1, "none")])
    params = [{"W": np.array([[1.0]]), "b": np.array([-2.0])}, {}, {"W": np.array([[1.0]]), "b": np.zeros(1)}]
    # f(x) = max(x - 2, 0): ratios of the pairs {0,1}: 0, {0,2}: 1/3, {0,3}: 5/7, {1,2}: 1/2,
    # {1,3}: 5/6, {2,3}: 1, all distinct.
    ratios = lipschitz.pair_ratios(model, params, x, n_pairs=6000, seed=3)
    values, counts = np.unique(np.round(ratios, 12), return_counts=True)
    np.testing.assert_allclose(values, sorted([0, 1 / 3, 5 / 7, 1 / 2, 5 / 6, 1]), rtol=1e-12)
    np.testing.assert_allclose(counts / 6000, 1 / 6, atol=0.025)


def test_pair_ratio_at_distance_zero_and_one():
    """[NN-4] a pair at distance 0 gives 0, even where f overflows to inf there; a pair at
    distance exactly 1 gives ||f(a) - f(b)||; identical rows divide nothing by zero."""
    model = nn.Sequential([nn.Dense(2, 1, "none")])
    params = [{"W": np.array([[1.0, 1.0]]), "b": np.zeros(1)}]
    a = np.array([[1e308, 1e308], [0.0, 0.0], [0.5, 0.25]])
    b = np.array([[1e308, 1e308], [1.0, 0.0], [0.5, 0.25]])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "overflow", RuntimeWarning)
        warnings.filterwarnings("ignore", "invalid value encountered in subtract", RuntimeWarning)
        ratios = lipschitz.pair_ratios(model, params, a, b)
    np.testing.assert_array_equal(ratios, [0.0, 1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(lipschitz.pair_ratios(model, params, a[1:], a[1:].copy()), [0.0, 0.0])


def test_describe_statistics_and_messages():
    """describe: float32 values are summarised in float64 (the mean to double accuracy); the
    fraction at target is relative (|v - target| <= rtol |target|); with a NaN every statistic
    is NaN under the same keys; target, rtol and values are named in messages."""
    v = np.random.default_rng(0).uniform(0, 1, 1001).astype(np.float32)
    d = lipschitz.describe(v)
    assert d["mean"] == pytest.approx(math.fsum(v.astype(np.float64)) / v.size, rel=1e-15, abs=0)
    assert d["n"] == 1001 and d["min"] == float(v.min()) and d["max"] == float(v.max())
    near = lipschitz.describe(np.array([2.1, 2.3, 1.95]), target=2.0, rtol=0.1)
    assert near["fraction_at_target"] == pytest.approx(2 / 3)
    nan = lipschitz.describe(np.array([1.0, math.nan]))
    assert set(nan) == set(d) and nan["n"] == 2
    assert all(math.isnan(val) for key, val in nan.items() if key != "n")
    for kw, exc, words in [({"target": "a"}, TypeError, r"^target must be a real number"),
                           ({"rtol": -1.0}, ValueError, r"^rtol must be >= 0.0, got -1.0$"),
                           ({"values": np.array([1, 2])}, TypeError, r"^values must have dtype float32 or float64")]:
        with pytest.raises(exc, match=words):
            lipschitz.describe(**{"values": v, **kw})
