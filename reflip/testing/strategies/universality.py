"""Cases of the ``max_min_network`` primitive and of the universality constructions [UN-1]..[UN-13].

Inputs have ``n`` in {1, 2, 3} features and a norm ``p`` in {1, 2, inf}. Hypothesis draws the
structure of every case (the kind of network or target, the sizes, the norm, which corner case
is planted), so that a failing case shrinks to a small one; the continuous data inside it
(points, centres, dyadic inputs) come from a generator seeded by one drawn integer, which keeps
sizes and norms explored uniformly under a derandomized budget and the case printable in full.

Kinds (:data:`UNIVERSALITY_KINDS`):

``"general"``, ``"pair"``
    a constrained network (dense random, a lattice max / min of two, or an interpolant, which
    has selection layers) and dyadic inputs; ``"pair"`` adds ``x2``.
``"differentiable"``
    a dense random network and inputs at least 2^-7 from every MaxMin kink, ``max_step`` on
    one linear piece.
``"two_point"``
    two points and two values for the two-point interpolant [UN-4].
``"interpolation"``, ``"not_lipschitz"``
    data (points, values, the target they came from) that are 1-Lipschitz, or are not [UN-13].
``"lattice"``
    two scalar networks and inputs [UN-3].
``"approximation"``
    a box, a net spacing ``delta`` and a 1-Lipschitz target [UN-10] (the tent of [UN-10] half
    of the time, whose error nearly attains the bound).
``"norms"``
    ``ord`` in {1, inf} and the constraint of a norm network [UN-5].
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from ...universality import interpolate, lattice_max, lattice_min, random_constrained_network
from ..networks import P_VALUES, preactivations, target_values
from .common import Case, case_rng

__all__ = ["max_min_network_cases", "UNIVERSALITY_KINDS"]

UNIVERSALITY_KINDS = ("general", "differentiable", "pair", "two_point", "interpolation", "not_lipschitz",
                      "lattice", "approximation", "norms")

_SEEDS = st.integers(0, 2**31 - 1)
_N = st.integers(1, 3)
_P = st.sampled_from(P_VALUES)


def _sometimes(percent):
    """True with probability ``percent`` / 100 (a multiple of 10); False is the simpler value, to
    which a failing case shrinks (and which a derandomized run draws more often than 1 in 10)."""
    return st.integers(0, 9).map(lambda i: i >= 10 - percent // 10)


# ----------------------------------------------------------------------------------------------
# 1-Lipschitz targets [UN-8] (evaluated by :func:`reflip.testing.networks.target_values`)


def _unit_dual(rng, n, p):
    """A gradient ``g`` with ``||g||_q = 1`` (``q`` dual to ``p``): ``+-1`` entries (p = 1),
    ``+-e_k`` (p = inf), a unit vector rounded to float64 (p = 2)."""
    if p == 1:
        return rng.choice([-1.0, 1.0], n)
    if p == math.inf:
        return np.eye(n)[rng.integers(n)] * rng.choice([-1.0, 1.0])
    g = rng.standard_normal(n)
    return g / np.linalg.norm(g)


def _extremal_direction(rng, gradient, p):
    """A direction ``d`` with ``g . d = ||d||_p`` for ``||g||_q = 1``: data displaced along it are
    at Lipschitz ratio exactly 1 (in exact arithmetic), where rounding decides the last ulp."""
    g = np.asarray(gradient)
    if p == 1:
        return g * rng.uniform(0.125, 1.0, g.size)  # sign(d) = g: g . d = ||d||_1
    if p == math.inf:
        return np.where(g != 0, g, rng.uniform(-1.0, 1.0, g.size))  # the largest |d_k| where g_k = +-1
    return g


@st.composite
def _target(draw, n, p):
    """A 1-Lipschitz target for l_p: the distance to a finite set, the max of downward cones or
    the min of upward ones (slopes <= 1, exactly 1 half of the time), a linear function whose
    gradient has dual norm exactly 1, or a random constrained network."""
    kind = draw(st.sampled_from(["distance", "cones_max", "cones_min", "linear", "network"]))
    if kind == "network":
        return {"kind": "network", "widths": draw(st.lists(st.sampled_from([2, 4]), max_size=2)),
                "seed": draw(_SEEDS)}
    rng = case_rng(draw)
    if kind == "linear":
        return {"kind": "linear", "gradient": _unit_dual(rng, n, p).tolist()}
    k = draw(st.integers(1, 4))
    centers = rng.uniform(-1, 1, (k, n)).tolist()
    if kind == "distance":
        return {"kind": "distance", "centers": centers}
    slopes = np.where(rng.random(k) < 0.5, 1.0, rng.uniform(0, 1, k)).tolist()
    return {"kind": kind, "centers": centers, "heights": rng.uniform(-1, 1, k).tolist(), "slopes": slopes}


# ----------------------------------------------------------------------------------------------
# Networks and data


def _dyadic(rng, shape, bound=2.0, bits=6):
    """Multiples of 2^-bits in [-bound, bound]: exact in float32."""
    return np.round(rng.uniform(-bound, bound, shape) * 2**bits) / 2**bits


def _min_gap(network, x):
    """Smallest ``|a - b|`` over the pairs entering the MaxMin layers at ``x``."""
    gaps = [np.min(np.abs(z[..., 0::2] - z[..., 1::2])) for z in preactivations(network, x)[:-1]]
    return min(gaps, default=math.inf)


@st.composite
def _network(draw, n, p, scalar=False):
    """A constrained network: dense random, a lattice max / min of two, or an interpolant (which
    has selection layers)."""
    shape = draw(st.sampled_from(["dense", "dense", "lattice", "interpolant"]))
    if shape == "dense":
        widths = draw(st.lists(st.sampled_from([2, 4, 6]), max_size=3))
        n_out = 1 if scalar else draw(st.integers(1, 3))
        return random_constrained_network(n, widths, p, seed=draw(_SEEDS), n_out=n_out)
    if shape == "lattice":
        a, b = (random_constrained_network(n, draw(st.lists(st.sampled_from([2, 4]), max_size=2)), p,
                                           seed=draw(_SEEDS)) for _ in range(2))
        return draw(st.sampled_from([lattice_max, lattice_min]))(a, b)
    pts = case_rng(draw).uniform(-1, 1, (draw(st.integers(1, 6)), n))
    return interpolate(pts, target_values(draw(_target(n, p)), pts, p), p)


@st.composite
def _data(draw, n, p, n_pts):
    """Points and a target. Linear targets (over 40% of the cases) come with points along an
    extremal direction, all on one line or in displaced pairs: pairs at Lipschitz ratio 1 in
    exact arithmetic, where rounding decides the last ulp (the slopes' clipping and the exact
    constraints are tested there)."""
    tight = draw(_sometimes(40))
    n = max(n, 2) if tight else n  # in 1-D the ratio-1 pairs round exactly to 1
    rng = case_rng(draw)
    pts = rng.uniform(-1, 1, (n_pts, n))
    target = {"kind": "linear", "gradient": _unit_dual(rng, n, p).tolist()} if tight else draw(_target(n, p))
    if target["kind"] == "linear":
        d = _extremal_direction(rng, target["gradient"], p)
        if draw(st.booleans()):
            pts = pts[:1] + rng.uniform(-1, 1, (n_pts, 1)) * d
        else:
            pts[1::2] = pts[0::2][: n_pts // 2] + rng.uniform(-1, 1, (n_pts // 2, 1)) * d
    elif n_pts > 2 and draw(_sometimes(20)):
        pts[-1] = pts[0]  # a repeated point (same value: allowed)
    return pts, target


# ----------------------------------------------------------------------------------------------
# One composite strategy per kind


@st.composite
def _general(draw, dtype, pair=False):
    n, p = draw(_N), draw(_P)
    net = draw(_network(n, p))
    rng = case_rng(draw)
    x = _dyadic(rng, (draw(st.integers(1, 4)), n)).astype(dtype)
    return Case(x, {"network": net}, _dyadic(rng, x.shape).astype(dtype) if pair else None)


@st.composite
def _differentiable(draw, dtype):
    """Dense random networks: no structural ties (a duplicated value (a, a) is tied everywhere,
    and differentiable). Inputs at least 2^-7 from every MaxMin kink."""
    n, p = draw(_N), draw(_P)
    widths = draw(st.lists(st.sampled_from([2, 4, 6]), min_size=1, max_size=3))
    net = random_constrained_network(n, widths, p, seed=draw(_SEEDS), n_out=draw(st.integers(1, 2)))
    x = _dyadic(case_rng(draw), (draw(st.integers(1, 3)), n)).astype(dtype)
    gap = _min_gap(net, x)
    assume(gap >= 2.0**-7)
    # A step h moves every pre-activation by at most ||W_1||_inf h (later layers have
    # ||W_k||_inf <= 1): the pair gaps, which move by twice that, keep their sign.
    w1 = float(np.max(np.sum(np.abs(net.layers[0].W), axis=1)))
    return Case(x, {"network": net}, max_step=gap / (4 * max(1.0, w1)))


@st.composite
def _two_point(draw, dtype):
    n, p = draw(_N), draw(_P)
    rng = case_rng(draw)
    pair = rng.uniform(-1, 1, (2, n))
    if draw(_sometimes(20)):
        pair[1] = pair[0]  # the same point twice: a constant interpolant
    if draw(_sometimes(30)):
        pair[1] = pair[0] + rng.uniform(-1, 1) * _extremal_direction(rng, _unit_dual(rng, n, p), p)
    dist = float(np.linalg.norm(pair[1] - pair[0], ord=p))
    a = float(rng.uniform(-1, 1))
    # b - a at the extremes +-dist (ratio exactly 1) and 0 half of the time.
    frac = draw(st.sampled_from([1.0, -1.0, 0.0])) if draw(st.booleans()) else float(rng.uniform(-1, 1))
    return Case(pair, {"a": a, "b": a + frac * dist, "p": p})


@st.composite
def _interpolation(draw, dtype, lipschitz=True):
    n, p = draw(_N), draw(_P)
    n_pts = draw(st.integers(1 if lipschitz else 2, 9))
    pts, target = draw(_data(n, p, n_pts))
    values = target_values(target, pts, p)
    if not lipschitz:
        i = draw(st.integers(0, n_pts - 1))
        j = draw(st.integers(0, n_pts - 2))
        j += j >= i  # a pair of two distinct points
        dist = float(np.linalg.norm(pts[i] - pts[j], ord=p))
        values[j] = values[i] + (1.0 + float(case_rng(draw).uniform(0.01, 1))) * dist + 2.0**-20
    return Case(pts, {"values": values.tolist(), "p": p, "target": target})


@st.composite
def _lattice(draw, dtype):
    n, p = draw(_N), draw(_P)
    a, b = draw(_network(n, p, scalar=True)), draw(_network(n, p, scalar=True))
    x = _dyadic(case_rng(draw), (draw(st.integers(1, 6)), n)).astype(dtype)
    return Case(x, {"first": a, "second": b, "p": p})


@st.composite
def _approximation(draw, dtype):
    n, p = draw(_N), draw(_P)
    if draw(st.booleans()):
        # The tent of [UN-10] on one cell of the net: its error approaches 2 delta where the grid
        # spacing is 2 delta (p = inf, or n = 1).
        p = math.inf if n > 1 else p
        width = draw(st.sampled_from([1.0, 2.0]))
        delta = width / draw(st.integers(4, 5 if n > 1 else 12))
        box = ([0.0] * n, [width] * n)
        target = {"kind": "tent", "axis": draw(st.integers(0, n - 1)), "box": box, "delta": delta}
    else:
        delta = draw(st.sampled_from([0.25, 0.375, 0.5])) * (1 if n == 1 else 2)
        low = _dyadic(case_rng(draw), (n,), 1.0, 2)
        box = (low.tolist(), (low + draw(st.sampled_from([0.5, 1.0]))).tolist())
        target = draw(_target(n, p))
    return Case(np.zeros((1, n)), {"box": box, "delta": delta, "p": p, "target": target})


@st.composite
def _norms(draw, dtype):
    n = draw(_N)
    ord_ = draw(st.sampled_from([1.0, math.inf]))
    constraint = 1.0 if ord_ == 1.0 and n > 1 else draw(st.sampled_from([None, 1.0, 2.0, math.inf]))
    x = _dyadic(case_rng(draw), (draw(st.integers(1, 5)), n)).astype(dtype)
    if draw(_sometimes(30)):
        x[0] = 0.0  # the kink of |x|
    return Case(x, {"ord": ord_, "p": constraint})


_BY_KIND = {
    "general": _general,
    "pair": lambda dtype: _general(dtype, pair=True),
    "differentiable": _differentiable,
    "two_point": _two_point,
    "interpolation": _interpolation,
    "not_lipschitz": lambda dtype: _interpolation(dtype, lipschitz=False),
    "lattice": _lattice,
    "approximation": _approximation,
    "norms": _norms,
}


def max_min_network_cases(dtype, kind):
    """Strategy of ``max_min_network`` cases; ``kind`` in :data:`UNIVERSALITY_KINDS` (see the
    module docstring)."""
    if kind not in _BY_KIND:
        raise ValueError(f"kind must be one of {UNIVERSALITY_KINDS}, got {kind!r}")
    return _BY_KIND[kind](np.dtype(dtype))
