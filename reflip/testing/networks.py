"""Float64 references for MaxMin networks and the 1-Lipschitz targets of the universality
cases, shared by the strategies (:mod:`reflip.testing.strategies.universality`) and the checks
(:mod:`reflip.audit.universality`, :mod:`reflip.audit.constructions`). No hypothesis here: the
audit imports this module without it.

The evaluation is an independent formulation [GS-6]: dense weights, and MaxMin written as
``numpy.minimum`` / ``numpy.maximum`` of the even and odd entries (not GroupSort).
"""
from __future__ import annotations

import math

import numpy as np

from ..universality import random_constrained_network

__all__ = ["dense_reference", "preactivations", "target_values", "P_VALUES"]

P_VALUES = (1.0, 2.0, math.inf)


def preactivations(network, x):
    """The input of every MaxMin layer, then the output, in float64 (dense evaluation)."""
    h = np.asarray(x, np.float64)
    out = []
    weights = network.weights()
    for k, (w, b) in enumerate(weights):
        z = h @ w.T + b
        out.append(z)
        if k < len(weights) - 1:
            lo, hi = np.minimum(z[..., 0::2], z[..., 1::2]), np.maximum(z[..., 0::2], z[..., 1::2])
            h = np.stack([lo, hi], axis=-1).reshape(z.shape)
    return out


def dense_reference(network, x):
    """``F(x)`` in float64 from the dense weights, MaxMin written as ``minimum``/``maximum`` of
    the even and odd entries [GS-6] (an independent formulation of the evaluation)."""
    return preactivations(network, x)[-1]


def target_values(target, x, p):
    """Evaluate a 1-Lipschitz target [UN-8] described by a dict (JSON-like, so that a failing
    case prints paste-ably) on ``x`` of shape ``(m, n)``, in float64: the distance to a finite
    set, the max / min of cones, a tent, a linear function or a constrained network."""
    x = np.asarray(x, np.float64)
    kind = target["kind"]
    if kind == "distance":
        c = np.asarray(target["centers"])
        return np.min(np.linalg.norm(x[:, None, :] - c[None], ord=p, axis=-1), axis=1)
    if kind in ("cones_max", "cones_min"):
        c, h, s = (np.asarray(target[k]) for k in ("centers", "heights", "slopes"))
        d = np.linalg.norm(x[:, None, :] - c[None], ord=p, axis=-1)
        return np.max(h - s * d, axis=1) if kind == "cones_max" else np.min(h + s * d, axis=1)
    if kind == "tent":
        return target["height"] - np.abs(x[:, target["axis"]] - target["center"])
    if kind == "linear":
        return x @ np.asarray(target["gradient"], np.float64)
    if kind == "network":
        net = random_constrained_network(x.shape[1], target["widths"], p, seed=target["seed"])
        return dense_reference(net, x)[:, 0]
    raise ValueError(f"unknown target kind {kind!r}")
