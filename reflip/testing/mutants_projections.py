"""Deliberately broken projections and row scalings, each a bug seen in (or one step away
from) ports of the paper's code [PR-5] [PR-7] [PR-10].

The meta-tests (tests/meta/test_projections_mutants.py) run the suite on each and require that
the claims named in :data:`EXPECTED` fail. Each mutant is the registry record of its
primitive (``linf_project`` unless named otherwise) with functions swapped, so everything else
is reflip's.
"""
from __future__ import annotations

import dataclasses

from .._backend import get_namespace
from .._registry import get
from ..norms import dual_exponent
from ..projections import (
    LinfProjectResiduals,
    _l1_ball_fwd,
    _l1_ball_jacobian,
    pinf_project_fwd,
    row_scale_fwd,
)

__all__ = ["MUTANTS", "EXPECTED"]

_REFLIP = get("linf_project")


def _sorted_sums(v, radius, xp):
    """``(mu, c, k, r)``: |v| sorted descending, its cumulative sums, 1..n and the radius."""
    mu = xp.sort(xp.abs(v), axis=-1, descending=True)
    c = xp.cumulative_sum(mu, axis=-1)
    k = xp.arange(1, v.shape[-1] + 1, dtype=v.dtype)
    return mu, c, k, xp.asarray(radius, dtype=v.dtype)


def _rho(mu, c, k, r, xp):
    ks = xp.arange(1, mu.shape[-1] + 1)
    return xp.maximum(xp.max(xp.where(k * mu > c - r, ks, 0), axis=-1, keepdims=True), 1)


def _residuals(v, theta, sign, threshold, xp):
    """Residuals of the projection's Jacobian for a threshold applied to EVERY row."""
    on = xp.abs(v) > theta
    support = xp.astype(on, v.dtype)
    count = xp.sum(support, axis=-1, keepdims=True)
    weight = 1.0 / xp.maximum(count, 1.0) if threshold == "exact" else xp.zeros_like(count)
    inside = xp.zeros(theta.shape, dtype=xp.bool)
    return LinfProjectResiduals(support, xp.where(on, sign, 0.0), weight, theta, inside, threshold)


def _sphere_fwd_with(sign_of):
    """The paper code's structure: no inside test, so the threshold (c_rho - r)/rho is applied
    to every row; for a row inside it is negative and the row is pushed out to the sphere."""

    def fwd(w, *, radius=1.0, threshold="exact"):
        xp = get_namespace(w)
        mu, c, k, r = _sorted_sums(w, radius, xp)
        rho = _rho(mu, c, k, r, xp)
        theta = (xp.take_along_axis(c, rho - 1, axis=-1) - r) / xp.astype(rho, w.dtype)
        sign = sign_of(w, xp)
        y = sign * xp.maximum(xp.abs(w) - theta, 0.0)
        return y, _residuals(w, theta, sign, threshold, xp)

    return fwd


def _sign(w, xp):
    return xp.sign(w)


def _sign_zero_is_one(w, xp):
    # A "sign" that sends 0 to +1 (e.g. where(w >= 0, 1, -1), or copysign(1, w)).
    return xp.where(w >= 0, 1.0, -1.0)


def _rho_off_by_one_fwd(w, *, radius=1.0, threshold="exact"):
    """rho read one too far (a 0-based index used as 1-based): theta = (c_{rho+1} - r)/(rho+1),
    which is <= the true threshold [PR-3], so rows land outside the ball."""
    xp = get_namespace(w)
    n = w.shape[-1]
    mu, c, k, r = _sorted_sums(w, radius, xp)
    rho = xp.minimum(_rho(mu, c, k, r, xp) + 1, n)
    theta = (xp.take_along_axis(c, rho - 1, axis=-1) - r) / xp.astype(rho, w.dtype)
    inside = c[..., -1:] <= r
    theta = xp.where(inside, 0.0, xp.maximum(theta, 0.0))
    sign = xp.sign(w)
    y = xp.where(inside, w, sign * xp.maximum(xp.abs(w) - theta, 0.0))
    res = _residuals(w, theta, sign, threshold, xp)
    return y, res._replace(support=xp.where(inside, 1.0, res.support),
                           signed_support=xp.where(inside, 0.0, res.signed_support),
                           weight=xp.where(inside, 0.0, res.weight), inside=inside)


def _detached_bwd(residuals, y_bar):
    """The paper code's backward: the threshold is a constant whatever was asked for."""
    xp = get_namespace(y_bar)
    return _l1_ball_jacobian(residuals._replace(weight=xp.zeros_like(residuals.weight)), y_bar, xp)


def _mean_over_row_fwd(w, *, radius=1.0, threshold="exact"):
    """Divides the support sum by the row length n instead of |S|."""
    xp = get_namespace(w)
    y, res = _l1_ball_fwd(w, radius, threshold, xp)
    weight = xp.where(res.weight > 0, 1.0 / w.shape[-1], 0.0)
    return y, res._replace(weight=weight)


def _fun_from(fwd):
    def fun(w, *, radius=1.0, threshold="exact"):
        return fwd(w, radius=radius, threshold=threshold)[0]

    return fun


def _mutant(name, fwd=None, bwd=None):
    fwd = fwd or _REFLIP.fwd
    # The Jacobian is symmetric [PR-4], so a swapped backward is the forward mode too.
    jvp = bwd or _REFLIP.jvp
    return name, dataclasses.replace(_REFLIP, fwd=fwd, fun=_fun_from(fwd), bwd=bwd or _REFLIP.bwd, jvp=jvp)


# The ||.||_{p,inf} ball constrains the DUAL norm of every row [PR-7]; these use the norm p
# itself (the first layer's trap of claim C7: p = 1 then projects rows onto the l1 ball
# instead of clipping them into the l_inf ball, and p = inf the other way).
def _primal(fwd):
    def fwd_p(w, p, *, radius=1.0):
        return fwd(w, dual_exponent(p), radius=radius)

    return fwd_p


def _row_scale_every_row_fwd(w, p, *, radius=1.0):
    """Every row divided by ||w_i||_q / r, rows inside included (a normalization, not a
    scaling into the ball): rows inside are scaled UP onto the sphere. The backward is
    reflip's."""
    xp = get_namespace(w)
    norm = xp.linalg.vector_norm(w, axis=-1, keepdims=True, ord=dual_exponent(p))
    return w * (radius / xp.where(norm > 0, norm, 1.0)), row_scale_fwd(w, p, radius=radius)[1]


def _record(name, record, fwd):
    def fun(w, p, *, radius=1.0):
        return fwd(w, p, radius=radius)[0]

    return name, dataclasses.replace(record, fwd=fwd, fun=fun)


MUTANTS = dict([
    _record("pinf_primal_norm", get("pinf_project"), _primal(pinf_project_fwd)),
    _record("row_scale_every_row", get("row_scale"), _row_scale_every_row_fwd),
    _mutant("l1_sphere", fwd=_sphere_fwd_with(_sign)),
    _mutant("detached_as_exact", bwd=_detached_bwd),
    _mutant("rho_off_by_one", fwd=_rho_off_by_one_fwd),
    _mutant("sign_zero_is_one", fwd=_sphere_fwd_with(_sign_zero_is_one)),
    _mutant("mean_over_row", fwd=_mean_over_row_fwd),
])

# The claims that must catch each mutant (at least these; others may fail too).
EXPECTED = {
    "pinf_primal_norm": ["pinf_project.feasible", "pinf_project.optimal"],
    "row_scale_every_row": ["row_scale.identity_inside", "row_scale.scaling"],
    "l1_sphere": ["linf_project.identity_inside", "linf_project.optimal", "linf_project.kkt"],
    "detached_as_exact": ["linf_project.fd", "linf_project.detached_differs"],
    "rho_off_by_one": ["linf_project.feasible", "linf_project.optimal"],
    "sign_zero_is_one": ["linf_project.sign_preserving"],
    "mean_over_row": ["linf_project.fd"],
}
