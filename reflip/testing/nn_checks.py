"""Test oracles of :mod:`reflip.nn`: checks of a network's hand-chained backward pass against
independent oracles [NN-2] (test support, shipped so that users can run them on their own
networks):

- :func:`autograd_model`: the same network written with ``autograd.numpy`` and the autograd
  bridge of the primitives (:mod:`reflip.autograd_ops`), built from the layer description
  alone (never from the layers' ``forward``/``backward`` code), so ``autograd.grad`` of it
  is a second, independent chaining of the same primitives;
- :func:`autograd_error`: the hand-chained ``(x_bar, grads)`` against ``autograd.grad``;
- :func:`fd_error`: the dot-product test ``<x_bar, dx> + sum <g, dW> = d/dt <f(x + t dx; W + t dW),
  y_bar>`` against an extrapolated central difference (float64).

Both return a relative error; the tests compare it with :mod:`reflip.tolerances`.
"""
from __future__ import annotations

import numpy as np

from .._backend import get_namespace
from ..nn.layers import Activation, Dense, Scale

__all__ = ["autograd_model", "autograd_error", "fd_error", "richardson"]


def autograd_model(model):
    """``f(params, x)`` computing ``model`` with ``autograd.numpy`` (NumPy arrays only)."""
    import autograd.numpy as anp

    from .. import autograd_ops as ops

    constraint_ops = {"bjorck": ops.bjorck, "linf": ops.linf_project, "pinf": ops.pinf_project,
                      "spectral": ops.spectral_normalize}

    def f(params, x):
        for layer, p in zip(model.layers, params, strict=True):
            if isinstance(layer, Dense):
                w = p["W"]
                if layer.constraint in constraint_ops:
                    w = constraint_ops[layer.constraint](w, **layer.options)
                elif layer.constraint == "unit_row":
                    w = w / anp.sqrt(anp.sum(w * w))
                x = anp.dot(x, anp.transpose(w))
                if layer.bias:
                    x = x + p["b"]
            elif isinstance(layer, Activation):
                if layer.name == "relu":
                    x = anp.maximum(x, 0.0)
                elif layer.name == "abs":
                    x = anp.abs(x)
                else:
                    k = {"group_sort": layer.group_size, "max_min": 2}.get(layer.name, x.shape[1])
                    x = ops.group_sort(x, group_size=k)
            elif isinstance(layer, Scale):
                x = x * layer.factor
            else:
                raise TypeError(f"autograd_model does not know layer {layer!r}")
        return x

    return f


def autograd_error(model, params, x, y_bar):
    """Largest relative difference (max-norm, per array) between ``model.backward`` and
    ``autograd.grad`` of ``<autograd_model(model)(params, x), y_bar>`` [NN-2]. NumPy only."""
    from autograd import grad

    f = autograd_model(model)
    ref_params, ref_x = grad(lambda args: np.sum(f(*args) * y_bar))((params, x))
    _, res = model.forward(params, x)
    x_bar, grads = model.backward(res, y_bar)
    pairs = [(x_bar, ref_x)] + [(g[k], r[k]) for g, r in zip(grads, ref_params, strict=True) for k in r]
    return max(float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny)
               for a, b in pairs)


def richardson(phi, h):
    """``phi'(0)`` by Richardson extrapolation of central differences: ``(4 D(h/2) - D(h)) / 3``
    with ``D(s) = (phi(s) - phi(-s)) / 2s``; error ``O(h^4)`` from truncation plus
    ``O(eps |phi| / h)`` from rounding (about 1e-12 relative at ``h = 1e-4`` in float64), exact
    for a function that is linear on ``[-h, h]`` [NN-2]."""
    d = [(phi(s) - phi(-s)) / (2 * s) for s in (h, h / 2)]
    return (4 * d[1] - d[0]) / 3


def fd_error(model, params, x, y_bar, seed=0, h=1e-4, wrt="all"):
    """Relative error of the dot-product test [NN-2]: ``<x_bar, dx> + sum_k <grads_k, dW_k>``
    against :func:`richardson` of ``phi(t) = <f(x + t dx; W + t dW), y_bar>``, with random
    Gaussian directions (drawn on the host from ``seed``). Use float64. The extrapolated
    difference is far more accurate than the plain one at :func:`reflip.tolerances.fd_step`,
    so comparing it with :func:`~reflip.tolerances.fd_rtol` leaves a wide margin, on any BLAS.
    The difference is meaningless where a kink of a piecewise-linear part (GroupSort, ReLU, abs,
    a projection) lies within ``h`` of the evaluated points (about 1 draw in 40 for the
    GroupSort/l_inf networks of the tests): there, take another ``seed`` or a smaller ``h``.

    Parameters
    ----------
    wrt : {"all", "input", "params"}
        Which directions are non-zero.
    """
    xp = get_namespace(x)
    rng = np.random.default_rng(seed)

    def direction(a, on):
        d = rng.standard_normal(tuple(a.shape)) if on else np.zeros(tuple(a.shape))
        return xp.asarray(d, dtype=a.dtype)

    dx = direction(x, wrt in ("all", "input"))
    dps = [{k: direction(a, wrt in ("all", "params")) for k, a in p.items()} for p in params]

    def phi(t):
        moved = [{k: a + t * d[k] for k, a in p.items()} for p, d in zip(params, dps, strict=True)]
        return float(xp.sum(model(moved, x + t * dx) * y_bar))

    fd = richardson(phi, h)
    _, res = model.forward(params, x)
    x_bar, grads = model.backward(res, y_bar)
    products = [x_bar * dx] + [g[k] * d[k] for g, d in zip(grads, dps, strict=True) for k in g]
    exact = sum(float(xp.sum(t)) for t in products)
    # Relative to the sum of |terms|: a dot product whose terms cancel is known only to that
    # scale, and a missing or wrong term (a forgotten bias, a skipped VJP) is of that size.
    scale = max(abs(fd), sum(float(xp.sum(xp.abs(t))) for t in products), np.finfo(np.float64).tiny)
    return abs(fd - exact) / scale
