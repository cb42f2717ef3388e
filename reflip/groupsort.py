"""GroupSort, MaxMin and FullSort with hand-written VJP and JVP.

GroupSort(k) splits the feature axis into contiguous groups of ``k`` entries and sorts each
group in ascending order [GS-1]. ``k = 2`` is MaxMin, ``k = n`` is FullSort [GS-6]. Its
Jacobian is a permutation matrix [GS-4], so the backward pass is a gather with the inverse
permutation and preserves the norm of every cotangent [GS-5].

Tie convention [GS-7]: ties are broken by a *stable* sort, i.e. among equal entries the one
with the lower index goes to the lower output position. The Jacobian used at a tie is the
permutation matrix of that stable order, so the VJP is a permutation of the cotangent at
every input, ties included (never a sum of two cotangents sent to one entry).

NaN [GS-8]: with residuals, a group containing NaN is output as some permutation of itself
(NaN last, where NumPy's and CuPy's sorts place it); NumPy's values-only ``group_sort`` for
k = 2 spreads NaN to both entries of its pair (it skips the NaN test to stay at memory speed).
``inf`` is an ordinary value. The VJP is a permutation of the cotangent in every case.

Types (one group axis, moved last and split into ``(..., n // k, k)``)::

    group_sort_fwd :: (x[..., n], k) -> (y[..., n], GroupSortResiduals(perm[..., n//k, k]))
    group_sort_bwd :: (GroupSortResiduals, y_bar[..., n]) -> x_bar[..., n]
    group_sort_jvp :: (GroupSortResiduals, x_dot[..., n]) -> y_dot[..., n]
"""
from __future__ import annotations

from typing import NamedTuple

from . import _fast
from ._backend import get_namespace
from ._registry import Primitive, register
from ._validate import check_array, check_axis, check_cotangent, check_int

__all__ = [
    "GroupSortResiduals",
    "group_sort",
    "group_sort_fwd",
    "group_sort_bwd",
    "group_sort_jvp",
    "max_min",
    "full_sort",
]


class GroupSortResiduals(NamedTuple):
    """What the backward pass needs: the sorting permutation of every group.

    ``perm[..., g, j]`` is the index, within group ``g``, of the input entry that lands at
    output position ``j`` (so ``y_g = x_g[perm_g]``). Its layout is the input's with ``axis``
    moved last and split into ``(n // group_size, group_size)``. Its integer dtype depends on
    the path that computed it (the core's ``argsort`` index dtype; ``uint8``/``uint16`` from the
    CuPy kernels); every path's backward and JVP accept any of them.
    """

    perm: object
    group_size: int
    axis: int

    @property
    def shape(self):
        """Shape of the input (and output), which every cotangent and tangent must have."""
        perm, k, axis = self
        moved = (*perm.shape[:-2], perm.shape[-2] * k)
        return (*moved[:-1][:axis], moved[-1], *moved[:-1][axis:])


def _check_args(x, group_size, axis, xp):
    """Validate ``(x, group_size, axis)`` [GS-1]; return ``(group_size, axis)`` normalised.

    Any real floating dtype (float16 and longdouble included): GroupSort only moves entries, so
    its result is exact in every dtype [GS-1]."""
    check_array(x, xp, "x", min_ndim=1, exact=True, what=" (the feature axis)")
    axis = check_axis(axis, x.ndim)
    group_size = check_int(group_size, "group_size", minimum=1)
    n = x.shape[axis]
    if n % group_size:
        raise ValueError(
            f"group_size={group_size} must divide the length {n} of axis {axis}; "
            f"divisors of {n}: {[d for d in range(1, n + 1) if n % d == 0]}"
        )
    return group_size, axis


def _grouped(x, group_size, axis, xp):
    """View ``x`` as ``(..., n // k, k)`` with ``axis`` moved last."""
    x = xp.moveaxis(x, axis, -1)
    return xp.reshape(x, (*x.shape[:-1], x.shape[-1] // group_size, group_size))


def _ungrouped(y, axis, xp):
    """Inverse of :func:`_grouped`."""
    y = xp.reshape(y, (*y.shape[:-2], y.shape[-2] * y.shape[-1]))
    return xp.moveaxis(y, -1, axis)


def _group_sort_fwd(x, group_size, axis, xp):
    fast = _fast.group_sort_fwd(x, group_size, axis, xp)
    if fast is not None:
        y, perm = fast
        return y, GroupSortResiduals(perm, group_size, axis)
    return _group_sort_fwd_core(x, group_size, axis, xp)


def _group_sort_fwd_core(x, group_size, axis, xp):
    xg = _grouped(x, group_size, axis, xp)
    # Stable: equal entries keep their order, which is the tie convention [GS-7].
    perm = xp.argsort(xg, axis=-1, stable=True)
    y = xp.take_along_axis(xg, perm, axis=-1)
    return _ungrouped(y, axis, xp), GroupSortResiduals(perm, group_size, axis)


def _group_sort_bwd(residuals, y_bar, xp):
    perm, group_size, axis = residuals
    fast = _fast.group_sort_bwd(perm, y_bar, group_size, axis, xp)
    if fast is not None:
        return fast
    return _group_sort_bwd_core(residuals, y_bar, xp)


def _group_sort_bwd_core(residuals, y_bar, xp):
    perm, group_size, axis = residuals
    # x_bar = P^T y_bar [GS-4]: entry i of a group receives the cotangent of the output
    # position it was sent to, i.e. y_bar gathered with the INVERSE permutation. The inverse
    # of a permutation is its argsort (its entries are distinct, so stability is moot).
    inverse = xp.argsort(perm, axis=-1)
    x_bar = xp.take_along_axis(_grouped(y_bar, group_size, axis, xp), inverse, axis=-1)
    return _ungrouped(x_bar, axis, xp)


def _group_sort_jvp(residuals, x_dot, xp):
    perm, group_size, axis = residuals
    fast = _fast.group_sort_jvp(perm, x_dot, group_size, axis, xp)
    if fast is not None:
        return fast
    # y_dot = P x_dot [GS-4]: the tangent is permuted exactly like the primal.
    y_dot = xp.take_along_axis(_grouped(x_dot, group_size, axis, xp), perm, axis=-1)
    return _ungrouped(y_dot, axis, xp)


def group_sort_fwd(x, group_size=2, *, axis=-1):
    """GroupSort forward pass returning the residuals of the backward pass.

    Parameters
    ----------
    x : array, real floating, at least 1-d, non-empty
        Input; it is never modified.
    group_size : int, default 2
        Size ``k`` of the contiguous groups; must divide ``x.shape[axis]``. This is the GROUP
        SIZE, not the number of groups (see :func:`reflip.layouts.group_size_from_num_groups`
        for code that passes the number of groups, as the paper's does).
    axis : int, default -1
        The feature axis.

    Returns
    -------
    y : array
        ``x`` with every group sorted ascending [GS-1].
    residuals : GroupSortResiduals
        The stable sorting permutation of every group [GS-7].
    """
    xp = get_namespace(x=x)
    group_size, axis = _check_args(x, group_size, axis, xp)
    return _group_sort_fwd(x, group_size, axis, xp)


def group_sort_bwd(residuals, y_bar):
    """GroupSort VJP: ``x_bar = P^T y_bar`` with ``P`` the permutation matrix of [GS-4].

    The result is a permutation of ``y_bar`` within each group, so every l_p norm of the
    cotangent is preserved exactly [GS-5], at ties too [GS-7].

    Parameters
    ----------
    residuals : GroupSortResiduals
        From :func:`group_sort_fwd`.
    y_bar : array
        Cotangent, shaped like the input.
    """
    xp = get_namespace(y_bar=y_bar)
    check_cotangent("y_bar", y_bar, residuals.shape, xp, exact=True)
    return _group_sort_bwd(residuals, y_bar, xp)


def group_sort_jvp(residuals, x_dot):
    """GroupSort JVP: ``y_dot = P x_dot`` [GS-4], the adjoint of :func:`group_sort_bwd`.

    At a tie this is the derivative along the stable order [GS-7], not the one-sided
    directional derivative (which would sort the tied entries of ``x_dot``).
    """
    xp = get_namespace(x_dot=x_dot)
    check_cotangent("x_dot", x_dot, residuals.shape, xp, exact=True)
    return _group_sort_jvp(residuals, x_dot, xp)


def group_sort(x, group_size=2, *, axis=-1):
    """GroupSort activation: sort contiguous groups of ``group_size`` entries ascending.

    .. math:: \\mathrm{GS}_k(x)_{gk + j} = \\big(\\mathrm{sort}(x_{gk}, \\dots, x_{gk+k-1})\\big)_j

    1-Lipschitz in every l_p norm, positively homogeneous and equivariant to per-group shifts
    [GS-2, GS-3] (Anil, Lucas & Grosse 2019, claim C1). Same parameters as
    :func:`group_sort_fwd`; skips the permutation, so prefer it when no gradient is needed.
    """
    xp = get_namespace(x=x)
    group_size, axis = _check_args(x, group_size, axis, xp)
    fast = _fast.group_sort(x, group_size, axis, xp)
    if fast is not None:
        return fast
    # Stable, so that signed zeros come out exactly as group_sort_fwd orders them.
    y = xp.sort(_grouped(x, group_size, axis, xp), axis=-1, stable=True)
    return _ungrouped(y, axis, xp)


def max_min(x, *, axis=-1):
    """MaxMin: GroupSort with group size 2, output pairs ``[min, max]`` [GS-6].

    Other libraries' MaxMin layouts (maxes then mins, half-split pairs, ``[max, min]``) are
    fixed permutations of this one: see :mod:`reflip.layouts`.
    """
    return group_sort(x, 2, axis=axis)


def full_sort(x, *, axis=-1):
    """FullSort: GroupSort with one group spanning the whole axis [GS-6]."""
    xp = get_namespace(x=x)
    check_array(x, xp, "x", min_ndim=1, exact=True, what=" (the feature axis)")
    axis = check_axis(axis, x.ndim)
    return group_sort(x, x.shape[axis], axis=axis)


GROUP_SORT = register(
    Primitive(
        name="group_sort",
        fun=group_sort,
        fwd=group_sort_fwd,
        bwd=group_sort_bwd,
        jvp=group_sort_jvp,
        proof="GS-1",
        second_order=True,
        strategy="reflip.testing.strategies:group_sort_cases",
        piecewise_linear=True,
        bench_inputs="reflip.testing.bench_inputs:group_sort_inputs",
    )
)
