"""The constructive universality theorem: two-point interpolants, the interpolating network
``F = max_i min_j g_ij`` and the approximation of a 1-Lipschitz function on a box.

The constructions run on the host in float64: they are combinatorial (pairs, index
bookkeeping) and check exactness properties of the stored floats. The networks they return
evaluate on any array-API backend.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .._validate import check_array, check_int, check_real
from ..norms import check_p
from .lattice import reduction_layers
from .network import MaxMinNetwork, NetworkSize, _host_array, _is_real, _namespace, affine_network

__all__ = [
    "dual_vector",
    "two_point_interpolant",
    "lipschitz_violation",
    "NotLipschitzError",
    "interpolate",
    "interpolant_size",
    "delta_net",
    "approximate",
    "Approximation",
]

_EPS = float(np.finfo(np.float64).eps)
_U = _EPS / 2  # unit roundoff


# ----------------------------------------------------------------------------------------------
# Dual vectors and two-point interpolants [UN-4]


def dual_vector(d, p):
    """A dual vector of ``d`` for ``l_p``, along the last axis [UN-4]:
    ``||u||_q = 1`` and ``u . d = ||d||_p`` (``u = 0`` for ``d = 0``).

    - ``p = 2``: ``u = d / ||d||_2``;
    - ``p = 1`` (``q = inf``): ``u = sign(d)``;
    - ``p = inf`` (``q = 1``): ``u = sign(d_k) e_k`` with ``k`` the first index of the largest
      ``|d_k|``.

    Runs on any array-API backend; ``d`` must be float32 or float64, at least 1-d, non-empty.
    """
    xp = _namespace(d, "d")
    check_array(d, xp, "d", min_ndim=1)
    p = check_p(p)
    if p == 1.0:
        return xp.sign(d)
    if p == 2.0:
        norm = xp.linalg.vector_norm(d, axis=-1, keepdims=True)
        return d / xp.where(norm > 0, norm, xp.ones_like(norm))
    k = xp.argmax(xp.abs(d), axis=-1, keepdims=True)
    onehot = xp.arange(d.shape[-1], device=getattr(d, "device", None)) == k
    return xp.where(onehot, xp.sign(d), xp.zeros_like(d))


def _shrink_to_unit_l2(w):
    """Scale rows so that ``sum_k w_k^2 <= 1`` holds in EXACT arithmetic for the stored floats.

    ``s = fl(sum w_k^2)`` satisfies ``|s - sum w_k^2| <= gamma_n sum w_k^2`` with
    ``gamma_n = n u / (1 - n u)`` (n products and n - 1 additions of non-negative terms), so
    ``s <= 1 - 2 gamma_n`` implies ``sum w_k^2 <= (1 - 2 gamma_n) / (1 - gamma_n) < 1`` [UN-12].
    Rows failing that test are scaled by ``sqrt((1 - 2 gamma_n) / s) (1 - 4 (n + 2) u)`` until
    they pass (once, in practice; the rows of :func:`_interpolant_rows` are at most a few ulps
    too long).
    """
    n = w.shape[-1]
    gamma = n * _U / (1 - n * _U)
    w = w.copy()
    while True:
        ss = np.sum(w * w, axis=-1)
        bad = ss > 1.0 - 2 * gamma
        if not bad.any():
            return w
        w[bad] *= (np.sqrt((1.0 - 2 * gamma) / ss[bad]) * (1.0 - 4 * (n + 2) * _U))[:, None]


def _interpolant_rows(x, a, y, b, p):
    """Rows ``(w, c)`` of the affine ``g(z) = w . z + c`` through ``(x, a)`` and ``(y, b)``,
    for stacks of pairs (last axis: coordinates) [UN-4].

    ``g(z) = a + s u . (z - x)`` with ``u`` the dual vector of ``d = y - x`` and
    ``s = (b - a) / ||d||_p`` clipped to ``[-1, 1]`` (a slope of magnitude above 1 only comes
    from rounding once the data passed the Lipschitz test). ``||w||_q = |s| <= 1`` holds
    exactly for the stored floats: entries ``+-s`` (p = 1), one entry ``+-s`` (p = inf), and by
    :func:`_shrink_to_unit_l2` for p = 2.
    """
    d = y - x
    norm = np.linalg.norm(d, ord=p, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(norm > 0, (b - a) / np.where(norm > 0, norm, 1.0), 0.0)
    s = np.clip(s, -1.0, 1.0)
    w = s[..., None] * dual_vector(d, p)
    if p == 2.0:
        w = _shrink_to_unit_l2(w)
    c = a - np.sum(w * x, axis=-1)
    return w, c


def two_point_interpolant(x, a, y, b, p, *, atol=None):
    """The affine 1-Lipschitz ``g(z) = w . z + c`` with ``g(x) = a``, ``g(y) = b`` [UN-4].

    Parameters
    ----------
    x, y : array (n,)
    a, b : float
        Must satisfy ``|a - b| <= ||x - y||_p + atol``.
    p : 1, 2 or inf
    atol : float, optional
        Default: a few ulps of the data, as in :func:`interpolate`; a slope of magnitude above
        1 within it is clipped to 1.

    Returns
    -------
    w : ndarray (n,), float64
        ``w = s u`` with ``u`` the dual vector of ``y - x`` (:func:`dual_vector`) and
        ``s = (b - a) / ||y - x||_p``; ``||w||_q <= 1`` exactly (``1/p + 1/q = 1``).
    c : float
        ``a - w . x``.
    """
    p = check_p(p)
    x, y = _real_array(x, "x"), _real_array(y, "y")
    if x.ndim != 1 or x.size == 0 or x.shape != y.shape:
        raise ValueError(f"x and y must be non-empty vectors of the same length, got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    a, b = check_real(a, "a"), check_real(b, "b")
    with np.errstate(over="ignore"):  # as in _as_data: the differences must be finite too
        if not np.all(np.isfinite(y - x)):
            raise ValueError("x and y: their difference y - x must be finite in float64, it overflows")
        if not math.isfinite(b - a):
            raise ValueError("a and b: their difference b - a must be finite in float64, it overflows")
    atol = check_real(atol, "atol", minimum=0.0, allow_none=True)
    dist = float(np.linalg.norm(y - x, ord=p))
    if atol is None:
        atol = _default_atol(np.stack([x, y]), np.array([a, b]))
    if not abs(a - b) <= dist + atol:
        raise ValueError(f"|a - b| = {abs(a - b):.17g} > ||x - y||_{p:g} = {dist:.17g}: no 1-Lipschitz function "
                         f"takes these values [UN-4]")
    w, c = _interpolant_rows(x, np.float64(a), y, np.float64(b), p)
    return w, float(c)


# ----------------------------------------------------------------------------------------------
# The Lipschitz test of the data [UN-13]


class NotLipschitzError(ValueError):
    """The data are not 1-Lipschitz, so no constrained network interpolates them [UN-13].

    Attributes ``i, j`` (the worst pair), ``difference`` (``|values[i] - values[j]|``),
    ``distance`` (``||points[i] - points[j]||_p``) and ``count`` (pairs over the tolerance).
    """

    def __init__(self, message, i, j, difference, distance, count):
        super().__init__(message)
        self.i, self.j, self.difference, self.distance, self.count = i, j, difference, distance, count


def lipschitz_violation(points, values, p, atol=0.0, block=512):
    """The pairs with ``|values[i] - values[j]| > ||points[i] - points[j]||_p + atol``:
    ``(count, i, j, difference, distance)`` with ``(i, j)`` the pair of largest ratio
    ``difference / distance`` among them (infinite for a repeated point with two values), or
    ``(0, None, None, None, None)``. Works in blocks of rows (memory ``block * N * n``).

    ``points`` (N, n) and ``values`` (N,) are checked as in :func:`interpolate`, ``atol >= 0``
    finite, ``block >= 1`` an integer."""
    points, values = _as_data(points, values)
    p = check_p(p)
    atol = check_real(atol, "atol", minimum=0.0)
    block = check_int(block, "block", minimum=1)
    count, worst = 0, None
    n_pts = points.shape[0]
    for start in range(0, n_pts, block):
        stop = min(start + block, n_pts)
        dist = np.linalg.norm(points[start:stop, None, :] - points[None, :, :], ord=p, axis=-1)
        diff = np.abs(values[start:stop, None] - values[None, :])
        bad = diff > dist + atol
        if not bad.any():
            continue
        count += int(bad.sum())
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(bad, np.where(dist > 0, diff / dist, np.inf), -1.0)
        flat = int(np.argmax(ratio))
        i, j = divmod(flat, n_pts)
        if worst is None or ratio.flat[flat] > worst[0]:
            worst = (ratio.flat[flat], start + i, j, float(diff[i, j]), float(dist[i, j]))
    if worst is None:
        return 0, None, None, None, None
    _, i, j, diff, dist = worst
    return count // 2, min(i, j), max(i, j), diff, dist


def _default_atol(points, values):
    """Rounding allowed in data computed from an exactly 1-Lipschitz function [UN-13]:
    ``16 (n + 2) u (max |values| + n max |points|)`` (a few ulps of the terms of
    ``|f(x) - f(y)|`` and of ``||x - y||_p``)."""
    n = points.shape[1]
    scale = float(np.max(np.abs(values))) + n * float(np.max(np.abs(points)))
    return 16 * (n + 2) * _U * scale


def _real_array(a, name):
    """``a`` as a float64 NumPy array; ``TypeError`` naming ``name`` unless it holds real numbers
    (integers or floats; bools, complex, strings and objects are refused)."""
    out = _host_array(a, name)
    if not _is_real(out):
        raise TypeError(f"{name} must be real numbers, got dtype {out.dtype}")
    return out.astype(np.float64)


def _as_data(points, values):
    points, values = _real_array(points, "points"), _real_array(values, "values")
    if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] == 0:
        raise ValueError(f"points must have shape (N, n) with N, n >= 1, got {points.shape}")
    if values.shape not in ((points.shape[0],), (points.shape[0], 1)):
        raise ValueError(f"values must have shape ({points.shape[0]},), one per point, got {values.shape}")
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(values))):
        raise ValueError("points and values must be finite")
    # Every construction works with differences of the data: refuse them here, by name, rather
    # than let an overflowed difference surface as a message about internal values.
    with np.errstate(over="ignore"):
        if not np.all(np.isfinite(np.ptp(points, axis=0))):
            raise ValueError("points: the differences of a coordinate (max - min) must be finite in float64, "
                             "they overflow")
        if not np.isfinite(np.ptp(values)):
            raise ValueError("values: their differences (max - min) must be finite in float64, they overflow")
    return points, values.reshape(-1)


def _check_lipschitz(points, values, p, atol):
    count, i, j, diff, dist = lipschitz_violation(points, values, p, atol)
    if count:
        ratio = diff / dist if dist > 0 else math.inf
        raise NotLipschitzError(
            f"values are not 1-Lipschitz in l_{p:g}: worst pair (i, j) = ({i}, {j}), "
            f"|values[i] - values[j]| = {diff:.17g} > ||points[i] - points[j]||_{p:g} = {dist:.17g} "
            f"(ratio {ratio:.6g}; {count} pair(s) exceed the tolerance atol = {atol:.3g}). Every network "
            f"satisfying the constraints is 1-Lipschitz [UN-1], so none interpolates these data [UN-13]",
            i, j, diff, dist, count)


# ----------------------------------------------------------------------------------------------
# The interpolating network [UN-8]


def interpolate(points, values, p, *, atol=None):
    """A MaxMin network ``F = max_i min_{j != i} g_ij`` with ``F(points[i]) = values[i]`` [UN-8].

    ``g_ij`` is the two-point interpolant through ``(x_i, v_i)`` and ``(x_j, v_j)``
    (:func:`two_point_interpolant`). ``F`` satisfies the universality constraints for ``l_p``
    (``||W_1||_{p,inf} <= 1``, later ``||W_k||_inf <= 1``) exactly for its stored float64
    weights, so it is 1-Lipschitz in ``l_p`` [UN-1]; it uses MaxMin activations only.

    Parameters
    ----------
    points : array (N, n)
    values : array (N,)
    p : 1, 2 or inf
    atol : float, optional
        Pairs with ``|v_i - v_j| > ||x_i - x_j||_p + atol`` are refused with
        :class:`NotLipschitzError` naming the worst pair. Default: a few ulps of the data
        (:func:`_default_atol`), for values computed in float64 from an exactly 1-Lipschitz
        function. Slopes within the tolerance are clipped to 1.

    Returns
    -------
    MaxMinNetwork
        Depth ``1 + ceil(log2(N - 1)) + ceil(log2 N)`` affine layers, first hidden width
        ``N (N - 1)`` rounded up per group to even, see :func:`interpolant_size` [UN-11].

    Notes
    -----
    In exact arithmetic ``F(x_i) = v_i``. In floating point only the first layer rounds
    (MaxMin and the selections are exact), so ``|F(x_i) - v_i|`` is a few ulps of
    ``|v_i| + ||W_1||_inf ||x_i||_inf`` whatever the depth [UN-12].
    """
    points, values = _as_data(points, values)
    p = check_p(p)
    atol = check_real(atol, "atol", minimum=0.0, allow_none=True)
    if atol is None:
        atol = _default_atol(points, values)
    _check_lipschitz(points, values, p, atol)
    n_pts, n = points.shape
    if n_pts == 1:
        return affine_network(np.zeros(n), values[0])
    # Ordered pairs (i, j), j != i, grouped by i: row i * (N - 1) + t holds g_{i, j_t}.
    i_idx = np.repeat(np.arange(n_pts), n_pts - 1)
    j_idx = _others(n_pts)
    w, c = _interpolant_rows(points[i_idx], values[i_idx], points[j_idx], values[j_idx], p)
    return reduction_layers(w, c, [("min", n_pts), ("max", 1)])


def _others(n_pts):
    """``j`` over ``range(N)`` without ``i``, for ``i = 0..N-1`` in turn (vectorized)."""
    t = np.tile(np.arange(n_pts - 1), n_pts)
    i = np.repeat(np.arange(n_pts), n_pts - 1)
    return t + (t >= i)


def interpolant_size(n_points, n):
    """The size of :func:`interpolate`'s network for ``N = n_points`` points in ``R^n``
    without building it [UN-11]: a :class:`NetworkSize` (``nonzero`` is ``None``: it depends
    on the data)."""
    n_pts, n = check_int(n_points, "n_points", minimum=1), check_int(n, "n", minimum=1)
    if n_pts == 1:
        return NetworkSize(n, 1, (), 0, n + 1, n + 1, None)
    widths = []
    for n_groups, size in ((n_pts, n_pts - 1), (1, n_pts)):
        while size > 1:
            size += size % 2
            widths.append(n_groups * size)
            size //= 2
    ins = [n, *widths]
    outs = [*widths, 1]
    dense = sum(o * (i + 1) for i, o in zip(ins, outs, strict=True))
    stored = widths[0] * (n + 1) + sum(widths[1:]) + 1
    return NetworkSize(n, len(outs), tuple(widths), max(widths), dense, stored, None)


# ----------------------------------------------------------------------------------------------
# Approximation on a box [UN-9] [UN-10]


def _as_box(box):
    """``box = (low, high)`` as two float64 vectors of one length ``n >= 1``, finite, with
    ``low <= high`` and every width ``high - low`` finite in float64."""
    if isinstance(box, (str, bytes)) or not hasattr(box, "__len__"):
        raise TypeError(f"box must be a pair (low, high) of numbers or of equal-length vectors, got "
                        f"{type(box).__name__}")
    if len(box) != 2:
        raise ValueError(f"box must be a pair (low, high), got {len(box)} item(s)")
    low, high = (np.atleast_1d(_real_array(v, name)) for v, name in zip(box, ("box low", "box high"), strict=True))
    if low.ndim != 1 or low.shape != high.shape or low.size == 0:
        raise ValueError(f"box = (low, high) must hold non-empty vectors of equal length, got shapes "
                         f"{low.shape}, {high.shape}")
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))) or np.any(low > high):
        raise ValueError(f"box must be finite with low <= high, got low={low}, high={high}")
    with np.errstate(over="ignore"):
        if not np.all(np.isfinite(high - low)):
            raise ValueError(f"box widths high - low must be finite in float64, got low={low}, high={high}")
    return low, high


def _net_axis_counts(low, high, delta, root):
    """Points per axis of :func:`delta_net`, in exact rational arithmetic (Python integers, no
    overflow whatever ``delta`` and the box): ``k = ceil(L root / (2 delta)) + 1`` for a width
    ``L > 0`` (then the spacing ``L / (k - 1) <= 2 delta / root`` exactly), ``k = 1`` for
    ``L = 0``. Nothing is allocated: the net's size is known before it is built."""
    scale = Fraction(root) / (2 * Fraction(delta))
    counts = []
    for lo, hi in zip(low.tolist(), high.tolist(), strict=True):
        width = Fraction(hi) - Fraction(lo)
        counts.append(1 if width == 0 else math.ceil(width * scale) + 1)
    return counts


def _describe_count(counts):
    """The product of ``counts``: exact while short, as a power of ten otherwise (the exact
    product of many large counts would itself take long to compute)."""
    digits = sum(math.log10(k) for k in counts)
    return str(math.prod(counts)) if digits < 30 else f"about 10^{digits:.1f}"


def delta_net(box, delta, p, *, max_points=1_000_000):
    """A grid on ``box`` whose every point of the box lies within ``delta`` in ``l_p`` of a
    grid point [UN-9].

    Each axis of width ``L`` gets ``k = ceil(L / h) + 1`` equally spaced points (``k = 1`` when
    ``L = 0``), ``h = 2 delta / n^{1/p}``: a point is within ``h/2`` of a grid coordinate on
    every axis, hence within ``(h/2) n^{1/p} = delta`` in ``l_p``.

    Parameters
    ----------
    box : (low, high)
        Numbers (n = 1) or vectors of length ``n``; finite, ``low <= high``.
    delta : float > 0, finite
    p : 1, 2 or inf
    max_points : int >= 1, default 1,000,000
        Refuse (``ValueError``) a net of more points. The count ``N = prod k`` is computed
        exactly from the per-axis counts before anything is allocated, so a tiny ``delta`` or
        a huge box is refused at once instead of exhausting the memory.

    Returns
    -------
    ndarray (N, n), float64, ``N = prod k``, row-major over the axes.
    """
    low, high = _as_box(box)
    delta = check_real(delta, "delta", minimum=0.0, strict=True)
    p = check_p(p)
    max_points = check_int(max_points, "max_points", minimum=1)
    n = low.size
    root = 1.0 if p == math.inf else n ** (1.0 / p)
    counts = _net_axis_counts(low, high, delta, root)
    _check_net_size(counts, delta, max_points)
    axes = []
    for lo, hi, k in zip(low.tolist(), high.tolist(), counts, strict=True):
        width = hi - lo
        # The exact count bounds the spacing in exact arithmetic; the spacing linspace uses is
        # rounded, so the float test may ask for a point more (a few at most, since k is small).
        while width > 0 and (width / (k - 1)) / 2 * root > delta:
            k += 1
        axes.append((lo, hi, k))
    _check_net_size([k for _, _, k in axes], delta, max_points)
    grids = np.meshgrid(*[np.linspace(lo, hi, k) for lo, hi, k in axes], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def _check_net_size(counts, delta, max_points):
    # Early exit: the running product passes max_points long before a huge product is formed.
    total = 1
    for k in counts:
        total *= k
        if total > max_points:
            raise ValueError(f"the delta-net of this box with delta={delta!r} has {_describe_count(counts)} "
                             f"points > max_points={max_points} (per-axis counts {_describe_axes(counts)}); "
                             f"increase delta or max_points")


def _describe_axes(counts):
    shown = counts if len(counts) <= 8 else [*counts[:8], "..."]
    return "[" + ", ".join(str(k) if isinstance(k, str) or k < 10**12 else f"~10^{math.log10(k):.1f}"
                           for k in shown) + "]"


@dataclass(frozen=True)
class Approximation:
    """Result of :func:`approximate`.

    Attributes
    ----------
    network : MaxMinNetwork
        Interpolates ``f`` at ``points``; constrained for ``l_p``, so 1-Lipschitz.
    points, values : ndarray
        The delta-net and ``f`` on it.
    delta : float
    p : float
    error_bound : float
        ``2 delta``: ``sup_box |network - f| <= 2 delta`` [UN-10] (in exact arithmetic; in float64
        add the interpolation error of [UN-12], a few ulps of the data).
    size : NetworkSize
        Depth, widths and parameter counts; they grow as ``N^2`` (width), ``2 log2 N``
        (depth) and ``N^4`` (dense parameters) with ``N`` net points [UN-11].
    """

    network: MaxMinNetwork
    points: np.ndarray
    values: np.ndarray
    delta: float
    p: float
    error_bound: float
    size: NetworkSize

    @property
    def n_points(self):
        return self.points.shape[0]


def approximate(f, box, delta, p, *, max_points=2500, atol=None):
    """A constrained MaxMin network within ``2 delta`` of a 1-Lipschitz ``f`` on ``box`` [UN-10].

    Builds the delta-net of :func:`delta_net`, evaluates ``f`` on it and interpolates
    (:func:`interpolate`). For ``x`` in the box and a net point ``x_i`` with
    ``||x - x_i||_p <= delta``: ``|F(x) - f(x)| <= |F(x) - F(x_i)| + |f(x_i) - f(x)| <= 2 delta``
    since both are 1-Lipschitz and agree at ``x_i``. The bound is tight: [UN-10] gives a
    1-Lipschitz ``f`` whose error approaches ``2 delta``.

    Parameters
    ----------
    f : callable
        ``f(points)`` with ``points`` of shape ``(N, n)`` (float64 NumPy) returns ``N`` values;
        1-Lipschitz in ``l_p`` (checked on the net: :class:`NotLipschitzError` otherwise).
    box : (low, high)
        Numbers (n = 1) or vectors of length ``n``.
    delta : float > 0
    p : 1, 2 or inf
    max_points : int >= 1, default 2500
        Refuse nets with more points (the network's width grows as ``N^2``): a ``ValueError``
        naming ``delta`` and ``max_points``, raised before the net is allocated
        (:func:`delta_net`).
    atol : float >= 0, optional
        Passed to :func:`interpolate`.

    Returns
    -------
    Approximation
    """
    if not callable(f):
        raise TypeError(f"f must be callable (points (N, n) -> values (N,)), got {type(f).__name__}")
    p = check_p(p)
    delta = check_real(delta, "delta", minimum=0.0, strict=True)
    max_points = check_int(max_points, "max_points", minimum=1)
    atol = check_real(atol, "atol", minimum=0.0, allow_none=True)
    points = delta_net(box, delta, p, max_points=max_points)
    raw = f(points.copy())
    try:
        values = _real_array(raw, "f(points)")
    except TypeError as exc:
        raise TypeError(f"f must return real numbers: {exc}") from None
    if values.shape not in ((points.shape[0],), (points.shape[0], 1)):
        raise ValueError(f"f must return one value per point, shape ({points.shape[0]},), got {values.shape}")
    values = values.reshape(-1)
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"f returned a non-finite value {values[bad]} at the net point {points[bad].tolist()}")
    network = interpolate(points, values, p, atol=atol)
    return Approximation(network, points, values, delta, p, 2 * delta, network.size())
