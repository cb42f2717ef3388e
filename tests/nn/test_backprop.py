"""Backprop two ways [NN-1] [NN-2]: the hand-chained backward pass of layers and whole networks
equals ``autograd.grad`` of the same network written with autograd.numpy and the autograd
bridge (:func:`reflip.testing.nn_checks.autograd_model`), and the float64 dot-product test against
central finite differences; the same numbers on every backend."""
import math

import numpy as np
import pytest

from reflip import nn, to_numpy
from reflip.testing.nn_checks import autograd_error, fd_error
from reflip.tolerances import exact_rtol, fd_rtol

D, A = nn.Dense, nn.Activation

# One-layer models: each constraint's and each activation's VJP on its own [NN-1].
LAYERS = {
    "bjorck-order1": lambda: [D(5, 4, "bjorck", n_iter=12)],
    "bjorck-beta-tall": lambda: [D(3, 5, "bjorck", beta=0.25, n_iter=10)],
    "bjorck-order3-checkpoint": lambda: [D(4, 4, "bjorck", order=3, n_iter=9, checkpoint=True)],
    "bjorck-implicit": lambda: [D(4, 3, "bjorck", n_iter=60, backward="implicit")],
    "linf-exact": lambda: [D(6, 3, "linf")],
    "linf-radius": lambda: [D(6, 3, "linf", radius=0.5)],
    "pinf-1": lambda: [D(6, 3, "pinf", p=1, radius=0.2)],
    "pinf-2": lambda: [D(6, 3, "pinf", p=2)],
    "pinf-inf": lambda: [D(6, 3, "pinf", p=math.inf)],
    "spectral-exact": lambda: [D(5, 4, "spectral", convention="exact", n_iter=30)],
    "unit_row": lambda: [D(5, 1, "unit_row")],
    "none-no-bias": lambda: [D(5, 4, bias=False)],
    "group_sort-3": lambda: [D(5, 6), A("group_sort", group_size=3)],
    "max_min": lambda: [D(5, 6), A("max_min")],
    "full_sort": lambda: [D(5, 6), A("full_sort")],
    "relu": lambda: [D(5, 6), A("relu")],
    "abs": lambda: [D(5, 6), A("abs")],
    "scale": lambda: [D(5, 2), nn.Scale(2.5)],
}
# Derivative conventions that are not the derivative of the computed function: compared with
# autograd (which uses the same convention through the bridge) only, never with differences
# [PR-5] [PR-11].
CONVENTIONAL = {
    "linf-detached": lambda: [D(6, 3, "linf", threshold="detached")],
    "spectral-constant_uv": lambda: [D(5, 4, "spectral")],
}
NETWORKS = {
    "bjorck-maxmin": lambda: [D(4, 6, "bjorck", n_iter=10), A("max_min"), D(6, 6, "bjorck", n_iter=10),
                              A("max_min"), D(6, 3, "bjorck", n_iter=10), nn.Scale(1.5)],
    "linf-groupsort": lambda: [D(6, 6, "pinf", p=math.inf), A("group_sort", group_size=3), D(6, 6, "linf"),
                               A("full_sort"), D(6, 2, "linf")],
    "mixed": lambda: [D(5, 8, "pinf", p=2), A("group_sort", group_size=4), D(8, 6, "spectral", convention="exact"),
                      A("relu"), D(6, 4, "bjorck", order=2, n_iter=8, bias=False), A("abs"), D(4, 1, "unit_row")],
    "critic": lambda: [D(3, 4, "bjorck", n_iter=15), A("max_min"), D(4, 4, "bjorck", n_iter=15), A("max_min"),
                       D(4, 1, "bjorck", n_iter=15)],
}


def _case(layers, seed, dtype="float64"):
    """A model and perturbed parameters: random weights, so no l1/l2 row sits exactly on its
    sphere and no finite difference crosses a kink of the projections [NN-2]."""
    model = nn.Sequential(layers)
    rng = np.random.default_rng(seed)
    params = [{k: (1.3 * v + 0.2 * rng.standard_normal(v.shape)).astype(dtype) for k, v in p.items()}
              for p in model.init(seed=seed)]
    x = rng.standard_normal((7, model.in_features)).astype(dtype)
    y_bar = rng.standard_normal((7, model.out_features)).astype(dtype)
    return model, params, x, y_bar


@pytest.mark.parametrize("name", sorted(LAYERS) + sorted(NETWORKS))
def test_backprop_two_ways(name):
    """[NN-1] [NN-2] hand-chained x_bar and parameter gradients = autograd.grad of the same
    network (to rounding), and the dot-product test against central differences (float64)."""
    layers = {**LAYERS, **NETWORKS}[name]
    for seed in (0, 1):
        model, params, x, y_bar = _case(layers(), seed)
        assert autograd_error(model, params, x, y_bar) <= exact_rtol(np.float64, 1000)
        for wrt in ("input", "params"):
            assert fd_error(model, params, x, y_bar, seed=seed, wrt=wrt) <= fd_rtol(np.float64), (name, seed, wrt)


@pytest.mark.parametrize("name", sorted(CONVENTIONAL))
def test_conventional_derivatives_match_autograd(name):
    """[PR-5] [PR-11] the detached l1 threshold and spectral normalization's constant-(u, v)
    rule chain exactly like autograd does through the bridge."""
    model, params, x, y_bar = _case(CONVENTIONAL[name](), 0)
    assert autograd_error(model, params, x, y_bar) <= exact_rtol(np.float64, 1000)


def test_input_only_backward():
    """[NN-2] input_only returns the same x_bar and no parameter gradients."""
    model, params, x, y_bar = _case(NETWORKS["mixed"](), 3)
    _, res = model.forward(params, x)
    x_bar, grads = model.backward(res, y_bar)
    x_bar_only, none = model.backward(res, y_bar, input_only=True)
    assert none is None and len(grads) == len(params)
    np.testing.assert_array_equal(x_bar_only, x_bar)


@pytest.mark.parametrize("name", ["bjorck-maxmin", "linf-groupsort", "mixed"])
def test_backends_agree(backend, name):
    """[NN-2] every backend computes the numpy outputs and gradients (float64) — the network
    code is written once, to the array API."""
    model, params, x, y_bar = _case(NETWORKS[name](), 5)
    y_ref, res = model.forward(params, x)
    x_bar_ref, grads_ref = model.backward(res, y_bar)
    with backend.active():
        on = [{k: backend.asarray(v) for k, v in p.items()} for p in params]
        y, res = model.forward(on, backend.asarray(x))
        x_bar, grads = model.backward(res, backend.asarray(y_bar))
        tol = dict(rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(to_numpy(y), y_ref, **tol)
        np.testing.assert_allclose(to_numpy(x_bar), x_bar_ref, **tol)
        for g, r in zip(grads, grads_ref, strict=True):
            for k in r:
                np.testing.assert_allclose(to_numpy(g[k]), r[k], **tol)


def test_float32_tracks_float64():
    """float32 parameters and data give the float64 gradients to float32 accuracy."""
    model, p64, x64, yb64 = _case(NETWORKS["bjorck-maxmin"](), 2)
    cast = lambda a: a.astype(np.float32)  # noqa: E731
    p32 = [{k: cast(v) for k, v in p.items()} for p in p64]
    _, r64 = model.forward(p64, x64)
    _, r32 = model.forward(p32, cast(x64))
    g64, g32 = model.backward(r64, yb64)[1], model.backward(r32, cast(yb64))[1]
    for a, b in zip(g32, g64, strict=True):
        for k in b:
            assert a[k].dtype == np.float32
            np.testing.assert_allclose(a[k], b[k], rtol=1e-3, atol=1e-4 * np.abs(b[k]).max())
