"""Euclidean projections onto norm balls of weight matrices, and row scalings, with exact VJPs.

The paper's l_inf-constrained networks (Anil, Lucas & Grosse 2019, claim C6) keep every weight
matrix in ``{W : ||W||_inf <= r}`` (max absolute row sum) by projecting it after each update;
their first layer lives in ``{W : ||W||_{p,inf} <= r}`` (every row in the dual-norm ball,
claim C7). Both sets are products of one ball per row, so the Frobenius projection acts row by
row [PR-1] [PR-7]:

- ``||W||_inf <= r`` (= ``||W||_{inf,inf}``): every row onto the l1 ball,
  :func:`linf_project` (sort based) [PR-2], also :func:`pinf_project` with ``p=inf``;
- ``||W||_{2,inf} <= r``: every row onto the l2 ball, :func:`pinf_project` with ``p=2`` [PR-8];
- ``||W||_{1,inf} <= r``: every row onto the l_inf ball (clipping), :func:`pinf_project` with
  ``p=1`` [PR-9].

:func:`row_scale` divides a row by its norm when it is too long: feasible, cheaper, but not a
projection except in l2 [PR-10]. Spectral normalization lives in :mod:`reflip.spectral`.

The "row" is the last axis; any leading axes are a stack of matrices (a 1-D array is a single
row). Rows already inside their ball are returned unchanged, bit for bit, and their Jacobian is
the identity; a row exactly on the sphere counts as inside [PR-4].

Non-finite input [PR-13]: for the l1 and l2 balls and the row scalings, a row holding NaN or
+-inf comes out as NaN (a projection of a point at infinity is not defined) and so does its
cotangent; other rows are unaffected. Clipping (``p=1``) is entrywise: +-inf clips to +-r and
NaN stays NaN.

Types (rows along the last axis)::

    linf_project_fwd :: (w[..., n], radius, threshold) -> (y[..., n], LinfProjectResiduals)
    linf_project_bwd :: (LinfProjectResiduals, y_bar[..., n]) -> w_bar[..., n]
    linf_project_jvp :: (LinfProjectResiduals, w_dot[..., n]) -> y_dot[..., n]
    pinf_project_fwd :: (w[..., n], p, radius) -> (y[..., n], PinfProjectResiduals)
    row_scale_fwd    :: (w[..., n], p, radius) -> (y[..., n], RowScaleResiduals)
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _fast
from ._backend import get_namespace, safe_divisor
from ._registry import Primitive, register
from ._validate import check_array, check_choice, check_cotangent, check_real
from .norms import check_p, dual_exponent  # noqa: F401  (re-exported until the importers move to reflip.norms)
from .tolerances import _numpy_dtype

__all__ = [
    "THRESHOLDS",
    "LinfProjectResiduals",
    "linf_project",
    "linf_project_fwd",
    "linf_project_bwd",
    "linf_project_jvp",
    "PinfProjectResiduals",
    "pinf_project",
    "pinf_project_fwd",
    "pinf_project_bwd",
    "pinf_project_jvp",
    "RowScaleResiduals",
    "row_scale",
    "row_scale_fwd",
    "row_scale_bwd",
    "row_scale_jvp",
    "dual_exponent",
]

THRESHOLDS = ("exact", "detached")


# --------------------------------------------------------------------------- argument checks


def _check_rows(w, xp, name="w"):
    """``w`` is a non-empty float32/float64 array of rows (last axis), 1-d or more."""
    check_array(w, xp, name, min_ndim=1, what=" (rows along the last axis)")


def check_radius(radius, dtype, name="radius"):
    """Return ``radius`` as a float after checking it is a finite real number > 0 that stays
    finite and non-zero when rounded to ``dtype`` (the radius is applied in the array's dtype)."""
    try:
        radius = check_real(radius, name, minimum=0.0, strict=True)
    except ValueError:  # NaN, inf or <= 0: one message for every wrong value
        raise ValueError(f"{name} must be a finite number > 0, got {float(radius)!r}") from None
    with np.errstate(over="ignore"):  # overflow to inf is what is being checked
        rounded = float(np.asarray(radius, dtype=_numpy_dtype(dtype)))
    if not (math.isfinite(rounded) and rounded > 0):
        raise ValueError(f"{name}={radius!r} is not representable in {_numpy_dtype(dtype)} "
                         f"(rounds to {rounded!r}); expected a finite number > 0 in that dtype")
    return radius


def _finite_rows(w, xp):
    """``(finite, w_safe)``: the rows without NaN/inf, and ``w`` with the other rows zeroed so
    that the core never computes ``inf - inf`` (no warnings, no garbage in the residuals)."""
    finite = xp.all(xp.isfinite(w), axis=-1, keepdims=True)
    return finite, xp.where(finite, w, 0.0)


# --------------------------------------------------------------------------- l_inf: l1 ball


class LinfProjectResiduals(NamedTuple):
    """What the VJP/JVP of :func:`linf_project` needs, one entry per input entry or row.

    ``support``: 1 on the support ``S = {i : |w_i| > theta}`` of a projected row and on every
    entry of a row left inside, 0 elsewhere. ``signed_support``: ``sign(w_i)`` on ``S`` of a
    projected row, 0 elsewhere. ``weight``: ``1/|S|`` on projected rows under
    ``threshold="exact"``, 0 on rows inside and under ``"detached"`` [PR-4] [PR-5], NaN on rows
    holding NaN or inf (their derivatives are NaN) [PR-13]. ``theta``: the threshold of every
    row (0 on rows inside, NaN on non-finite rows). ``inside``: whether the row was inside the
    ball (returned unchanged).
    """

    support: object
    signed_support: object
    weight: object
    theta: object
    inside: object
    threshold: str

    @property
    def shape(self):
        """Shape of the input, which every cotangent and tangent must have."""
        return tuple(self.support.shape)


def _l1_ball_fwd(w, radius, threshold, xp, residuals=True):
    """Project every row of ``w`` onto ``{x : ||x||_1 <= radius}`` [PR-2] [PR-3]; without
    ``residuals`` (the plain function) the second result is ``None``."""
    dtype = w.dtype
    n = w.shape[-1]
    finite = xp.all(xp.isfinite(w), axis=-1, keepdims=True)
    # Non-finite rows are zeroed for the threshold computation (no inf - inf, no warnings) and
    # get a NaN threshold, which makes their output and derivatives NaN [PR-13].
    a = xp.where(finite, xp.abs(w), 0.0)
    # Duchi et al. (2008, Fig. 1), Condat (2016, Alg. 1): with |w| sorted descending (mu) and
    # c_k = mu_1 + ... + mu_k, rho = max{k : k mu_k > c_k - r} and theta = (c_rho - r) / rho
    # [PR-3]. The product form k mu_k > c_k - r avoids a division per entry. Sorted values do
    # not depend on how ties are ordered, and an unstable sort is several times faster
    # (array-api-compat's NumPy sort is stable by default). Sorting -a ascending gives the
    # descending order in contiguous memory, which the cumulative sum scans faster than a
    # reversed view.
    mu = -xp.sort(-a, axis=-1, stable=False)
    c = xp.cumulative_sum(mu, axis=-1)
    r = xp.asarray(radius, dtype=dtype)
    # The inside test uses c_n, the same rounded sum as theta: a row is projected exactly when
    # its computed norm exceeds r, so theta > 0 below (no row is pushed outwards).
    inside = (c[..., -1:] <= r) & finite
    k = xp.arange(1, n + 1, dtype=dtype)  # exact: n < 2**24 for any float32 row in memory
    rho = xp.max(xp.where(k * mu > c - r, k, 0.0), axis=-1, keepdims=True)
    # k = 1 always qualifies in exact arithmetic (mu_1 > mu_1 - r); in floating point
    # mu_1 - r rounds to mu_1 when r < ulp(mu_1) / 2, so keep rho >= 1.
    rho = xp.maximum(rho, 1.0)
    c_rho = xp.take_along_axis(c, xp.astype(rho, xp.int64) - 1, axis=-1)
    theta = xp.maximum((c_rho - r) / rho, 0.0)
    theta = xp.where(finite, xp.where(inside, 0.0, theta), xp.nan)
    # Per-row threshold applied below: +inf on rows inside puts every entry off the support
    # (those rows are returned as they are), NaN on non-finite rows propagates.
    applied = xp.where(inside, xp.inf, theta)
    sign = xp.sign(w)
    on_support = a > applied
    # sign(w) max(|w| - theta, 0): the soft threshold [PR-2].
    y = xp.where(inside, w, sign * xp.maximum(a - applied, 0.0))
    if not residuals:
        return y, None

    # Residuals [PR-4]: rows inside have the identity Jacobian (support = 1, weight = 0).
    on = xp.astype(on_support, dtype)
    support = xp.where(inside, 1.0, on)
    signed_support = xp.where(on_support, sign, 0.0)
    count = xp.sum(on, axis=-1, keepdims=True)
    if threshold == "exact":
        weight = xp.where(inside, 0.0, 1.0 / xp.maximum(count, 1.0))
    else:  # "detached": theta is a constant, so the mean term is absent [PR-5]
        weight = xp.zeros_like(theta)
    # NaN weight on non-finite rows: their VJP/JVP rows become NaN (0 * NaN = NaN).
    weight = xp.where(finite, weight, xp.nan)
    return y, LinfProjectResiduals(support, signed_support, weight, theta, inside, threshold)


def _l1_ball(w, radius, threshold, xp, residuals=True):
    """:func:`_l1_ball_fwd`, through NumPy's row-block fast path when it applies."""
    fast = _fast.row_blocks(lambda rows: _l1_ball_fwd(rows, radius, threshold, xp, residuals), w, xp)
    return fast if fast is not None else _l1_ball_fwd(w, radius, threshold, xp, residuals)


def _l1_ball_jacobian(residuals, t, xp):
    """``J t`` for the l1-ball projection; ``J`` is symmetric, so this is the VJP too [PR-4]:
    ``(J t)_i = t_i - s_i mean_{j in S} s_j t_j`` on S, 0 off S, ``t`` on rows inside."""
    support, signed_support, weight = residuals.support, residuals.signed_support, residuals.weight
    mean = weight * xp.sum(signed_support * t, axis=-1, keepdims=True)
    return support * t - signed_support * mean


def linf_project_fwd(w, *, radius=1.0, threshold="exact"):
    """Projection onto ``{W : ||W||_inf <= radius}`` returning the residuals of the VJP.

    Parameters
    ----------
    w : array, real floating, at least 1-d, non-empty
        Rows along the last axis (leading axes are a stack; a 1-d array is one row). Never
        modified.
    radius : float, default 1.0
        ``r > 0``, finite, applied in ``w``'s dtype (so rounded to it).
    threshold : {"exact", "detached"}, default "exact"
        Derivative convention: ``"exact"`` is the Jacobian of the projection [PR-4];
        ``"detached"`` treats the threshold as a constant, as the paper's code does [PR-5]. The
        forward pass is the same.

    Returns
    -------
    y : array
        Every row projected onto the l1 ball of radius ``r`` [PR-1] [PR-2].
    residuals : LinfProjectResiduals
    """
    xp = get_namespace(w=w)
    _check_rows(w, xp)
    radius = check_radius(radius, w.dtype)
    threshold = check_choice(threshold, "threshold", THRESHOLDS)
    return _l1_ball(w, radius, threshold, xp)


def linf_project_bwd(residuals, y_bar):
    """VJP of :func:`linf_project` [PR-4] [PR-5].

    On a projected row with support ``S`` and signs ``s``:

    .. math:: \\bar w_i = \\bar y_i - s_i \\frac{1}{|S|} \\sum_{j \\in S} s_j \\bar y_j
              \\quad (i \\in S), \\qquad \\bar w_i = 0 \\quad (i \\notin S)

    (the mean term is absent under ``threshold="detached"``); on a row left inside,
    ``w_bar = y_bar``.
    """
    xp = get_namespace(y_bar=y_bar)
    check_cotangent("y_bar", y_bar, residuals.shape, xp)
    return _l1_ball_jacobian(residuals, y_bar, xp)


def linf_project_jvp(residuals, w_dot):
    """JVP of :func:`linf_project`; the Jacobian is symmetric, so it equals the VJP [PR-4]."""
    xp = get_namespace(w_dot=w_dot)
    check_cotangent("w_dot", w_dot, residuals.shape, xp)
    return _l1_ball_jacobian(residuals, w_dot, xp)


def linf_project(w, *, radius=1.0, threshold="exact"):
    """Euclidean projection onto ``{W : ||W||_inf <= radius}``: each row onto the l1 ball.

    .. math:: P(W)_i = \\operatorname{sign}(w_i) \\odot \\max(|w_i| - \\theta_i, 0),
              \\qquad \\theta_i = \\frac{c_{\\rho} - r}{\\rho}

    for a row with ``||w_i||_1 > r`` (``c_k`` the sum of the ``k`` largest ``|w_ij|``,
    ``rho = max{k : k mu_k > c_k - r}``), and ``P(W)_i = w_i`` otherwise [PR-1] [PR-2] [PR-3]
    (claim C6; Duchi et al. 2008; Condat 2016). Sort based: O(n log n) per row, vectorized over
    rows and stacks, no boolean indexing. ``threshold`` only changes the derivative (see
    :func:`linf_project_fwd`).
    """
    xp = get_namespace(w=w)
    _check_rows(w, xp)
    radius = check_radius(radius, w.dtype)
    check_choice(threshold, "threshold", THRESHOLDS)
    # The same forward pass as linf_project_fwd, bit for bit, without building residuals.
    return _l1_ball(w, radius, threshold, xp, residuals=False)[0]


LINF_PROJECT = register(
    Primitive(
        name="linf_project",
        fun=linf_project,
        fwd=linf_project_fwd,
        bwd=linf_project_bwd,
        jvp=linf_project_jvp,
        proof="PR-2",
        # The residuals (support, signs, |S|) are piecewise constant in w: the second
        # derivative is 0 almost everywhere.
        second_order=True,
        strategy="reflip.testing.strategies:linf_project_cases",
        bench_inputs="reflip.testing.bench_inputs:linf_project_inputs",
        # Linear on every piece of constant support and signs [PR-4].
        piecewise_linear=True,
    )
)


# --------------------------------------------------------------------------- ||.||_{p,inf}


class PinfProjectResiduals(NamedTuple):
    """Residuals of :func:`pinf_project`; ``inner`` depends on ``p``.

    ``p = inf``: :class:`LinfProjectResiduals`. ``p = 2``: ``(scale, direction)`` with
    ``scale = r / ||w_i||_2`` and ``direction = w_i / ||w_i||_2`` on projected rows, ``1`` and
    ``0`` on rows inside [PR-8]. ``p = 1``: ``(mask,)``, 1 where ``|w_ij| <= r`` [PR-9].
    """

    p: float
    inner: tuple

    @property
    def shape(self):
        """Shape of the input, which every cotangent and tangent must have."""
        inner = self.inner
        return tuple(inner.shape if self.p == math.inf else inner[-1].shape)


class _L2Residuals(NamedTuple):
    scale: object
    direction: object


class _ClipResiduals(NamedTuple):
    mask: object


def _l2_ball_fwd(w, radius, xp):
    """Project every row onto the l2 ball: ``w * min(1, r / ||w||_2)`` [PR-8]."""
    finite, v = _finite_rows(w, xp)
    norm = xp.linalg.vector_norm(v, axis=-1, keepdims=True)
    r = xp.asarray(radius, dtype=w.dtype)
    inside = norm <= r
    denominator = safe_divisor(norm, xp, ~inside)
    scale = xp.where(inside, 1.0, r / denominator)
    y = xp.where(inside, w, v * scale)
    y = xp.where(finite, y, xp.nan)
    direction = xp.where(inside, 0.0, v / denominator)
    scale = xp.where(finite, scale, xp.nan)
    return y, _L2Residuals(scale, direction)


def _l2_ball_jacobian(residuals, t, xp):
    # J = (r / ||w||) (I - u u^T), u = w / ||w||, on projected rows; I inside. Symmetric [PR-8].
    scale, direction = residuals
    return scale * (t - direction * xp.sum(direction * t, axis=-1, keepdims=True))


def _clip_fwd(w, radius, xp):
    """Project every row onto the l_inf ball: clip each entry to ``[-r, r]`` [PR-9]."""
    r = xp.asarray(radius, dtype=w.dtype)
    y = xp.clip(w, -r, r)
    # |w_ij| = r counts as inside (derivative 1), like a row on the sphere [PR-4].
    mask = xp.astype(xp.abs(w) <= r, w.dtype)
    mask = xp.where(xp.isnan(w), xp.nan, mask)
    return y, _ClipResiduals(mask)


def _pinf_fwd(w, p, radius, xp):
    if p == math.inf:
        y, inner = _l1_ball(w, radius, "exact", xp)
    elif p == 2:
        y, inner = _l2_ball_fwd(w, radius, xp)
    else:
        y, inner = _clip_fwd(w, radius, xp)
    return y, PinfProjectResiduals(p, inner)


def _pinf_jacobian(residuals, t, xp):
    p, inner = residuals
    if p == math.inf:
        return _l1_ball_jacobian(inner, t, xp)
    if p == 2:
        return _l2_ball_jacobian(inner, t, xp)
    return inner.mask * t  # diagonal [PR-9]


def pinf_project_fwd(w, p, *, radius=1.0):
    """Projection onto ``{W : ||W||_{p,inf} <= radius}``, returning the residuals of the VJP.

    ``||W||_{p,inf} = max_x ||W x||_inf / ||x||_p = max_i ||w_i||_q`` with ``1/p + 1/q = 1``
    [PR-7], so every row is projected onto the ``l_q`` ball: ``p = 2`` onto the l2 ball
    (rescaling) [PR-8], ``p = inf`` onto the l1 ball (:func:`linf_project`) [PR-2], ``p = 1``
    onto the l_inf ball (clipping) [PR-9].

    Parameters
    ----------
    w : array, real floating, at least 1-d, non-empty
        Rows along the last axis; never modified.
    p : {1, 2, math.inf}
        The input norm of the first layer (claim C7).
    radius : float, default 1.0
        Finite, > 0.
    """
    xp = get_namespace(w=w)
    _check_rows(w, xp)
    p = check_p(p)
    radius = check_radius(radius, w.dtype)
    return _pinf_fwd(w, p, radius, xp)


def pinf_project_bwd(residuals, y_bar):
    """VJP of :func:`pinf_project`: ``p = inf`` as :func:`linf_project_bwd` [PR-4];
    ``p = 2``: ``(r/||w||) (y_bar - u <u, y_bar>)`` on projected rows with ``u = w/||w||``
    [PR-8]; ``p = 1``: ``y_bar`` where ``|w_ij| <= r``, 0 elsewhere [PR-9]. Identity on rows
    inside. Every Jacobian here is symmetric, so the JVP is the same map."""
    xp = get_namespace(y_bar=y_bar)
    check_cotangent("y_bar", y_bar, residuals.shape, xp)
    return _pinf_jacobian(residuals, y_bar, xp)


def pinf_project_jvp(residuals, w_dot):
    """JVP of :func:`pinf_project` (equal to its VJP: symmetric Jacobians) [PR-8] [PR-9]."""
    xp = get_namespace(w_dot=w_dot)
    check_cotangent("w_dot", w_dot, residuals.shape, xp)
    return _pinf_jacobian(residuals, w_dot, xp)


def pinf_project(w, p, *, radius=1.0):
    """Euclidean projection onto ``{W : ||W||_{p,inf} <= radius}`` (first-layer constraint of
    claim C7): every row onto the ball of the dual norm ``||.||_q``, ``1/p + 1/q = 1`` [PR-7].
    See :func:`pinf_project_fwd`."""
    return pinf_project_fwd(w, p, radius=radius)[0]


PINF_PROJECT = register(
    Primitive(
        name="pinf_project",
        fun=pinf_project,
        fwd=pinf_project_fwd,
        bwd=pinf_project_bwd,
        jvp=pinf_project_jvp,
        proof="PR-7",
        # p = 2's residuals (r/||w||, w/||w||) vary smoothly with w.
        second_order=False,
        strategy="reflip.testing.strategies:pinf_project_cases",
        bench_inputs="reflip.testing.bench_inputs:pinf_project_inputs",
        piecewise_linear=False,
    )
)


# --------------------------------------------------------------------------- row scalings


class RowScaleResiduals(NamedTuple):
    """Residuals of :func:`row_scale`: ``J = c (I - a b^T)`` on scaled rows [PR-10], with
    ``scale = c = r / ||w_i||_q``, ``a = w_i / ||w_i||_q`` and ``b`` the gradient of
    ``||.||_q`` at ``w_i``; ``c = 1, a = b = 0`` on rows left inside."""

    scale: object
    a: object
    b: object

    @property
    def shape(self):
        """Shape of the input, which every cotangent and tangent must have."""
        return tuple(self.a.shape)


def _row_scale_fwd(w, p, radius, xp):
    q = dual_exponent(p)
    finite, v = _finite_rows(w, xp)
    norm = xp.linalg.vector_norm(v, axis=-1, keepdims=True, ord=q)
    r = xp.asarray(radius, dtype=w.dtype)
    inside = norm <= r
    denominator = safe_divisor(norm, xp, ~inside)
    scale = xp.where(inside, 1.0, r / denominator)
    y = xp.where(inside, w, v * scale)
    y = xp.where(finite, y, xp.nan)
    # Gradient of ||.||_q at v [PR-10]: v/||v||_2 (q = 2), sign(v) (q = 1), and for q = inf
    # sign(v_k) e_k at the FIRST index k of the largest |v_k| (the convention at ties).
    if q == 2:
        grad = v / denominator
    elif q == 1:
        grad = xp.sign(v)
    else:
        k = xp.argmax(xp.abs(v), axis=-1, keepdims=True)
        onehot = xp.arange(v.shape[-1]) == k
        grad = xp.where(onehot, xp.sign(v), 0.0)
    a = xp.where(inside, 0.0, v / denominator)
    b = xp.where(inside, 0.0, grad)
    scale = xp.where(finite, scale, xp.nan)
    return y, RowScaleResiduals(scale, a, b)


def row_scale_fwd(w, p, *, radius=1.0):
    """Row scaling into ``{W : ||W||_{p,inf} <= radius}``, returning the residuals of the VJP.

    Each row with ``||w_i||_q > r`` (``1/p + 1/q = 1``) is divided by ``||w_i||_q / r``; other
    rows are left unchanged. The result is feasible but, unlike :func:`pinf_project`, it is
    the closest feasible point only for ``p = 2`` (where the two coincide) [PR-10].

    Parameters
    ----------
    w : array, real floating, at least 1-d, non-empty
        Rows along the last axis; never modified.
    p : {1, 2, math.inf}
        ``p = inf`` scales by the l1 norm (the scaling alternative to :func:`linf_project`),
        ``p = 1`` by the largest entry.
    radius : float, default 1.0
    """
    xp = get_namespace(w=w)
    _check_rows(w, xp)
    p = check_p(p)
    radius = check_radius(radius, w.dtype)
    return _row_scale_fwd(w, p, radius, xp)


def row_scale_bwd(residuals, y_bar):
    """VJP of :func:`row_scale`: ``w_bar = c (y_bar - b <a, y_bar>)`` on scaled rows
    (``J^T`` of ``J = c (I - a b^T)``), ``y_bar`` on rows inside [PR-10]."""
    xp = get_namespace(y_bar=y_bar)
    check_cotangent("y_bar", y_bar, residuals.shape, xp)
    scale, a, b = residuals
    return scale * (y_bar - b * xp.sum(a * y_bar, axis=-1, keepdims=True))


def row_scale_jvp(residuals, w_dot):
    """JVP of :func:`row_scale`: ``y_dot = c (w_dot - a <b, w_dot>)`` [PR-10]."""
    xp = get_namespace(w_dot=w_dot)
    check_cotangent("w_dot", w_dot, residuals.shape, xp)
    scale, a, b = residuals
    return scale * (w_dot - a * xp.sum(b * w_dot, axis=-1, keepdims=True))


def row_scale(w, p, *, radius=1.0):
    """Scale every row with ``||w_i||_q > radius`` down to ``||w_i||_q = radius``
    (``1/p + 1/q = 1``): ``y_i = w_i min(1, r / ||w_i||_q)`` [PR-10]. A scaling, not a
    projection (except for ``p = 2``); see :func:`row_scale_fwd`."""
    return row_scale_fwd(w, p, radius=radius)[0]


ROW_SCALE = register(
    Primitive(
        name="row_scale",
        fun=row_scale,
        fwd=row_scale_fwd,
        bwd=row_scale_bwd,
        jvp=row_scale_jvp,
        proof="PR-10",
        second_order=False,
        strategy="reflip.testing.strategies:row_scale_cases",
        bench_inputs="reflip.testing.bench_inputs:row_scale_inputs",
        piecewise_linear=False,
    )
)
