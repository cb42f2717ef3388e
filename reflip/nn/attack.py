"""Projected gradient descent (PGD) attacks in the l2 and l_inf balls, driven by the network's
own VJP (the input-only backward pass of the frozen model) [NN-10].

Each step moves along the steepest-ascent direction of the attack loss for the ball's norm
(``g / ||g||_2`` for l2, ``sign(g)`` for l_inf: the maximizers of ``<g, d>`` over unit
``||d||``), then projects back onto the ball around the clean input and into the optional
input box. The returned point is, per example, the iterate with the smallest margin seen.
"""
from __future__ import annotations

import math

import numpy as np

from .._backend import get_namespace
from .._validate import MAX_ITERATIONS, check_bool, check_choice, check_floating, check_int, check_real, check_seed
from ..norms import check_p
from .losses import _check_logits_labels, _one_hot
from .model import check_model

__all__ = ["pgd_attack", "margins", "ATTACK_LOSSES"]

ATTACK_LOSSES = ("margin", "cross_entropy")


def margins(logits, labels):
    """``M_i = f_{i y_i} - max_{j != y_i} f_{ij}``: positive iff example ``i`` is classified
    correctly with no tie [CT-1]."""
    xp = get_namespace(logits=logits, labels=labels)
    _check_logits_labels(logits, labels, xp)
    one_hot = _one_hot(labels, logits.shape[1], logits.dtype, xp)
    f_y = xp.sum(logits * one_hot, axis=1)
    runner_up = xp.max(xp.where(one_hot > 0, -xp.inf, logits), axis=1)
    return f_y - runner_up


def _loss_cotangent(logits, labels, loss, xp):
    """Cotangent of the attack loss (to be increased) with respect to the logits."""
    c = logits.shape[1]
    one_hot = _one_hot(labels, c, logits.dtype, xp)
    if loss == "margin":
        # loss = max_{j != y} f_j - f_y = -M: gradient e_{j*} - e_y, j* the runner-up [NN-10].
        j = xp.argmax(xp.where(one_hot > 0, -xp.inf, logits), axis=1)
        return xp.astype(j[:, None] == xp.arange(c, dtype=j.dtype)[None, :], logits.dtype) - one_hot
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(shifted)
    return e / xp.sum(e, axis=1, keepdims=True) - one_hot


def _project(delta, eps, p, xp):
    """Euclidean projection of every row onto the ``l_p`` ball of radius ``eps`` [NN-10]."""
    if p == math.inf:
        return xp.clip(delta, -eps, eps)
    norm = xp.linalg.vector_norm(delta, axis=1, keepdims=True)
    return delta * xp.minimum(1.0, eps / xp.where(norm > 0, norm, 1.0))


def _direction(g, p, xp):
    """``argmax_{||d||_p <= 1} <g, d>``: ``sign(g)`` for l_inf, ``g / ||g||_2`` for l2 [NN-10]."""
    if p == math.inf:
        return xp.sign(g)
    norm = xp.linalg.vector_norm(g, axis=1, keepdims=True)
    return g / xp.where(norm > 0, norm, 1.0)


def _random_start(shape, eps, p, rng):
    if p == math.inf:
        return rng.uniform(-eps, eps, size=shape)
    d = rng.standard_normal(shape)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    # Uniform in the ball: radius eps U^(1/n).
    return d * (eps * rng.uniform(size=(shape[0], 1)) ** (1.0 / shape[1]))


def pgd_attack(model, params, x, labels, eps, p=2, *, steps=50, step_size=None, random_start=True,
               seed=0, bounds=None, loss="margin"):
    """PGD attack in the ``l_p`` ball of radius ``eps`` around every example [NN-10].

    Parameters
    ----------
    model, params
        The network (its constraints are applied once: :meth:`Sequential.freeze`).
    x : array (batch, in_features)
    labels : integer array (batch,)
    eps : float >= 0
    p : {2, math.inf}
    steps : int in [1, MAX_ITERATIONS], default 50
    step_size : float, default ``2.5 eps / steps``
    random_start : bool, default True
        Start uniformly in the ball (drawn on the host with ``numpy.random.default_rng(seed)``).
    bounds : (lo, hi) or None
        Also keep ``x_adv`` in the box ``[lo, hi]`` (e.g. pixel range); ``x`` must lie in it.
    loss : {"margin", "cross_entropy"}
        What the attack increases: the negative margin ``max_{j != y} f_j - f_y`` (default),
        or the softmax cross-entropy.

    Returns
    -------
    x_adv : array like ``x``
        Per example, the visited point with the smallest margin (``x`` itself when no step
        lowered it). ``||x_adv - x||_p <= eps`` up to rounding. A row of ``x`` holding NaN
        is returned as it is: its margin and gradient are NaN, no step improves it [NN-14].
    """
    check_model(model)
    xp = get_namespace(x=x, labels=labels)
    check_floating(x, xp, "x")
    p = check_p(p)
    if p == 1:
        raise ValueError("p must be 2 or inf (math.inf) for pgd_attack, got 1")
    eps = check_real(eps, "eps", minimum=0.0)
    steps = check_int(steps, "steps", minimum=1, maximum=MAX_ITERATIONS)
    # eps = 0 (the ball is {x}) takes the default step 0: every step is projected back anyway.
    step_size = 2.5 * eps / steps if step_size is None else check_real(step_size, "step_size", minimum=0.0,
                                                                       strict=True)
    random_start = check_bool(random_start, "random_start")
    seed = check_seed(seed)
    check_choice(loss, "loss", ATTACK_LOSSES)
    frozen, fparams = model.freeze(params)
    clean = frozen(fparams, x)
    _check_logits_labels(clean, labels, xp)
    lo = hi = None
    if bounds is not None:
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise TypeError(f"bounds must be None or a pair (lo, hi), got {bounds!r}")
        lo, hi = check_real(bounds[0], "bounds[0]"), check_real(bounds[1], "bounds[1]")
        if not lo < hi:
            raise ValueError(f"bounds must be (lo, hi) with lo < hi, got {bounds!r}")
        if bool(xp.any(x < lo)) or bool(xp.any(x > hi)):
            raise ValueError(f"x must lie in bounds [{lo}, {hi}] to be attacked inside them")

    def feasible(delta):
        delta = _project(delta, eps, p, xp)
        return delta if lo is None else xp.clip(x + delta, lo, hi) - x

    delta = xp.zeros_like(x)
    if random_start:
        start = _random_start(tuple(x.shape), eps, p, np.random.default_rng(seed))
        delta = feasible(xp.asarray(start, dtype=x.dtype))
    best_x, best_m = x, margins(clean, labels)
    for _ in range(steps):
        x_adv = x + delta
        logits, res = frozen.forward(fparams, x_adv)
        m = margins(logits, labels)
        better = (m < best_m)[:, None]
        best_x, best_m = xp.where(better, x_adv, best_x), xp.minimum(m, best_m)
        g = frozen.backward(res, _loss_cotangent(logits, labels, loss, xp), input_only=True)[0]
        delta = feasible(delta + step_size * _direction(g, p, xp))
    x_adv = x + delta
    better = (margins(frozen(fparams, x_adv), labels) < best_m)[:, None]
    return xp.where(better, x_adv, best_x)
