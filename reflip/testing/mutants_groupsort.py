"""Deliberately broken GroupSort implementations, each a bug seen in ports of the paper's code.

The meta-tests (tests/meta/) run the suite on each and require that the claims named in
:data:`EXPECTED` fail: a suite that passes a mutant has no teeth. Each mutant is the registry
record with one function swapped, so everything else is reflip's.
"""
from __future__ import annotations

import dataclasses

from .._backend import get_namespace
from .._registry import get
from ..groupsort import (
    GroupSortResiduals,
    _group_sort_bwd,
    _group_sort_fwd,
    _grouped,
    _ungrouped,
)

__all__ = ["MUTANTS", "EXPECTED"]

_REFLIP = get("group_sort")


def _fwd_with(sorter):
    def fwd(x, group_size=2, *, axis=-1):
        xp = get_namespace(x)
        return sorter(x, group_size, axis % x.ndim, xp)

    return fwd


def _fun_from(fwd):
    def fun(x, group_size=2, *, axis=-1):
        return fwd(x, group_size, axis=axis)[0]

    return fun


def _mutant(name, fwd=None, bwd=None):
    fwd = fwd or _REFLIP.fwd
    return name, dataclasses.replace(_REFLIP, name="group_sort", fwd=fwd, fun=_fun_from(fwd),
                                     bwd=bwd or _REFLIP.bwd)


# 1. The backward gathers with the forward permutation instead of its inverse. Invisible with
#    group size 2, where every permutation is its own inverse.
def _bwd_forward_permutation(residuals, y_bar):
    xp = get_namespace(y_bar)
    perm, k, axis = residuals
    out = xp.take_along_axis(_grouped(y_bar, k, axis, xp), perm, axis=-1)
    return _ungrouped(out, axis, xp)


# 2. Descending order.
def _sort_descending(x, k, axis, xp):
    xg = _grouped(x, k, axis, xp)
    perm = xp.argsort(xg, axis=-1, descending=True, stable=True)
    y = xp.take_along_axis(xg, perm, axis=-1)
    return _ungrouped(y, axis, xp), GroupSortResiduals(perm, k, axis)


# 3. Strided groups (i, i + n/k, i + 2n/k, ...) instead of contiguous ones.
def _sort_strided(x, k, axis, xp):
    xm = xp.moveaxis(x, axis, -1)
    n = xm.shape[-1]
    # (..., k, n/k) -> swap: group g holds entries g, g + n/k, ...
    xs = xp.reshape(xm, (*xm.shape[:-1], k, n // k))
    xs = xp.moveaxis(xs, -1, -2)
    perm = xp.argsort(xs, axis=-1, stable=True)
    ys = xp.take_along_axis(xs, perm, axis=-1)
    y = xp.reshape(xp.moveaxis(ys, -1, -2), xm.shape)
    return xp.moveaxis(y, -1, axis), _StridedResiduals(perm, k, axis)


class _StridedResiduals(GroupSortResiduals):
    pass


def _bwd_strided(residuals, y_bar):
    xp = get_namespace(y_bar)
    perm, k, axis = residuals
    ym = xp.moveaxis(y_bar, axis, -1)
    n = ym.shape[-1]
    ys = xp.moveaxis(xp.reshape(ym, (*ym.shape[:-1], k, n // k)), -1, -2)
    xs = xp.take_along_axis(ys, xp.argsort(perm, axis=-1), axis=-1)
    x_bar = xp.reshape(xp.moveaxis(xs, -1, -2), ym.shape)
    return xp.moveaxis(x_bar, -1, axis)


# 4. The argument read as the NUMBER of groups (the paper code's `num_units`).
def _sort_num_groups(x, k, axis, xp):
    return _group_sort_fwd(x, x.shape[axis] // k, axis, xp)


def _bwd_num_groups(residuals, y_bar):
    xp = get_namespace(y_bar)
    return _group_sort_bwd(residuals, y_bar, xp)


# 5. At a tie, each cotangent goes to every input equal to its output value (a mask-based
#    MaxMin backward): the same cotangent reaches two inputs and the Jacobian is no permutation.
def _bwd_mask(residuals, y_bar):
    return _mask_bwd(residuals, y_bar, get_namespace(y_bar))


def _fwd_keep_x(x, k, axis, xp):
    y, (perm, _, ax) = _group_sort_fwd(x, k, axis, xp)
    return y, _MaskResiduals(perm, k, ax, _grouped(x, k, ax, xp))


class _MaskResiduals(tuple):
    """(perm, k, axis) that also keeps the grouped input, which a mask-based backward needs."""

    def __new__(cls, perm, k, axis, xg):
        return super().__new__(cls, (perm, k, axis))

    def __init__(self, perm, k, axis, xg):
        self.xg = xg

    # reflip's JVP checks tangents against the residuals' shape: the same as reflip's residuals
    # (the mutant breaks the backward, not this).
    shape = GroupSortResiduals.shape


def _mask_bwd(residuals, y_bar, xp):
    perm, k, axis = residuals
    xg = residuals.xg
    yg = xp.take_along_axis(xg, perm, axis=-1)
    gbar = _grouped(y_bar, k, axis, xp)
    # x_bar_i = sum_j y_bar_j [x_i == y_j]
    eq = xp.astype(xg[..., :, None] == yg[..., None, :], gbar.dtype)
    x_bar = xp.sum(eq * gbar[..., None, :], axis=-1)
    return _ungrouped(x_bar, axis, xp)


# 6. At a tie, every cotangent goes to the FIRST input equal to its output value (max and min
#    built on argmax / argmin, or PyTorch's max and min, which both pick the first index of a
#    tied pair): two cotangents reach one entry and none the other.
def _bwd_first_index(residuals, y_bar):
    xp = get_namespace(y_bar)
    perm, k, axis = residuals
    xg = residuals.xg
    yg = xp.take_along_axis(xg, perm, axis=-1)
    gbar = _grouped(y_bar, k, axis, xp)
    first = xp.argmax(xp.astype(xg[..., :, None] == yg[..., None, :], xp.int8), axis=-2)  # (..., j)
    to = xp.arange(k)[:, None] == first[..., None, :]  # (..., i, j): y_bar_j goes to x_i
    return _ungrouped(xp.sum(xp.where(to, gbar[..., None, :], 0.0), axis=-1), axis, xp)


# 7. Off-by-one group boundary: groups start at index 1 (the first entry is left alone and the
#    last group wraps around), as a port with a misplaced slice start would do.
def _sort_off_by_one(x, k, axis, xp):
    xm = xp.moveaxis(x, axis, -1)
    rolled = xp.roll(xm, -1, axis=-1)
    y, res = _group_sort_fwd(rolled, k, xm.ndim - 1, xp)
    return xp.moveaxis(xp.roll(y, 1, axis=-1), -1, axis), _RolledResiduals(res.perm, k, axis)


class _RolledResiduals(GroupSortResiduals):
    pass


def _bwd_off_by_one(residuals, y_bar):
    xp = get_namespace(y_bar)
    perm, k, axis = residuals
    ym = xp.roll(xp.moveaxis(y_bar, axis, -1), -1, axis=-1)
    x_bar = _group_sort_bwd(GroupSortResiduals(perm, k, ym.ndim - 1), ym, xp)
    return xp.moveaxis(xp.roll(x_bar, 1, axis=-1), -1, axis)


MUTANTS = dict([
    _mutant("bwd_forward_permutation", bwd=_bwd_forward_permutation),
    _mutant("descending", fwd=_fwd_with(_sort_descending)),
    _mutant("strided_groups", fwd=_fwd_with(_sort_strided), bwd=_bwd_strided),
    _mutant("num_groups_for_group_size", fwd=_fwd_with(_sort_num_groups), bwd=_bwd_num_groups),
    _mutant("tie_cotangent_twice", fwd=_fwd_with(_fwd_keep_x), bwd=_bwd_mask),
    _mutant("tie_both_to_first", fwd=_fwd_with(_fwd_keep_x), bwd=_bwd_first_index),
    _mutant("off_by_one_boundary", fwd=_fwd_with(_sort_off_by_one), bwd=_bwd_off_by_one),
])

# The claims that must catch each mutant (at least these; others may fail too).
EXPECTED = {
    "bwd_forward_permutation": ["group_sort.fd"],
    "descending": ["group_sort.sorted_permutation"],
    "strided_groups": ["group_sort.sorted_permutation"],
    "num_groups_for_group_size": ["group_sort.sorted_permutation"],
    "tie_cotangent_twice": ["group_sort.isometry_ties", "group_sort.ties"],
    "tie_both_to_first": ["group_sort.isometry_ties", "group_sort.ties"],
    "off_by_one_boundary": ["group_sort.sorted_permutation"],
}
