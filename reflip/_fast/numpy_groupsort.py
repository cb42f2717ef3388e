"""NumPy GroupSort fast paths, bit for bit with the array-API core [GS-7, GS-8, GS-12].

Every path works block by block (``BLOCK`` entries, or whole groups of about that many), so
that a block's input, output and scratch arrays stay in the cache and only the input's read
and the output's write reach memory:

* ``k = 2`` on C-contiguous pairs: ``minimum``/``maximum`` on contiguous shifted views (SIMD),
  the permutation from ``less`` on the same views, the backward as bit selects;
* ``k = 4``: Batcher's odd-even merge network, each layer two whole-block passes merged by
  periodic bit masks; with residuals the indices ride through the same comparators;
* ``k >= 8``: NumPy's sort per block; with residuals one integer sort of packed
  ``key << 32 | position`` (float32), which is the stable argsort, or NumPy's argsort;
  gathers and scatters through flat indices;
* groups across the innermost memory axis (axis 0 of a C-order matrix, the last axis of an
  F-order one; power-of-2 ``k <= 32``): the network's comparators on whole slices.

A group holding a +0 or a NaN is redone by the stable sort wherever a path could differ from
the stable order there (proof in [GS-12]). ``tests/test_fast.py`` checks every path against
the core with block sizes shrunk to cross block boundaries.
"""
from __future__ import annotations

import functools
import math
import sys

import numpy as np

__all__ = ["group_sort", "group_sort_fwd", "group_sort_bwd"]


def group_sort(x, group_size, axis):
    """Forward GroupSort without residuals."""
    across = _groups_across_rows(x, group_size, axis)
    if across is not None:
        return across
    if group_size == 2:
        return _numpy_max_min(x, axis)
    return _numpy_sorted(x, group_size, axis, argsort=False)[0]


def group_sort_fwd(x, group_size, axis):
    """``(y, perm)`` of the stable order, in the core's layout."""
    return _numpy_sorted(x, group_size, axis, argsort=True)


def group_sort_bwd(perm, y_bar, group_size, axis):
    """``P^T y_bar``: bit selects for pairs, a scatter through flat indices otherwise (NumPy
    can scatter; the standard cannot, so the core gathers with the inverse permutation)."""
    if (group_size == 2 and _pairs_in_blocks(y_bar, axis) and perm.dtype == np.uint8
            and perm.flags.c_contiguous):
        return _max_min_bwd_blocks(perm, y_bar)
    ym = np.moveaxis(y_bar, axis, -1)
    if group_size == 2:
        # A pair's permutation is the identity or the swap: selecting is a pure copy of
        # entries (bit for bit the scatter) and avoids put_along_axis's int64 indexing.
        swap = perm[..., 0] == 1
        g_min, g_max = ym[..., 0::2], ym[..., 1::2]
        x_bar = np.empty(ym.shape, dtype=ym.dtype)
        x_bar[..., 0::2] = np.where(swap, g_max, g_min)
        x_bar[..., 1::2] = np.where(swap, g_min, g_max)
        return np.moveaxis(x_bar, -1, axis)
    groups = np.ascontiguousarray(ym).reshape(-1, group_size)
    x_bar = _permute_blocks(np.ascontiguousarray(perm).reshape(-1, group_size), groups, scatter=True)
    return np.moveaxis(x_bar.reshape(ym.shape), -1, axis)


#: The dtypes whose NumPy ``minimum(p, q)`` and ``maximum(p, q)`` return ``q`` when ``p == q``
#: (seen only on signed zeros). The k = 2 min/max passes rely on it to keep a pair's order at a
#: tie [GS-7]; float16 and longdouble return ``p``, so their ties are put back by selection.
_TIE_RETURNS_SECOND = (np.dtype(np.float32), np.dtype(np.float64))


def _numpy_max_min(x, axis):
    if x.dtype in _TIE_RETURNS_SECOND and _pairs_in_blocks(x, axis):
        return _max_min_blocks(x)
    x = np.moveaxis(x, axis, -1)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty(x.shape, dtype=x.dtype)
    # Argument order matters at ties: for _TIE_RETURNS_SECOND, minimum(b, a) returns a and
    # maximum(a, b) returns b when a == b, so a pair keeps its order like a stable sort [GS-7]
    # (visible only on signed zeros). NaN propagates to both entries of its pair [GS-8].
    np.minimum(b, a, out=out[..., 0::2])
    np.maximum(a, b, out=out[..., 1::2])
    if x.dtype not in _TIE_RETURNS_SECOND:
        tie = a == b
        np.copyto(out[..., 0::2], a, where=tie)
        np.copyto(out[..., 1::2], b, where=tie)
    return np.moveaxis(out, -1, axis)


def _numpy_sorted(x, group_size, axis, argsort):
    """GroupSort on NumPy arrays: ``(y, perm)`` (``perm`` None without ``argsort``). The groups
    (the axis moved last, in C order) go block by block through the fastest exact method for
    their ``k`` and dtype; each is the stable order bit for bit [GS-7, GS-12]."""
    xm = np.moveaxis(x, axis, -1)
    if argsort and group_size == 2:
        return _numpy_max_min_fwd(xm, axis)
    xg = xm.reshape(*xm.shape[:-1], xm.shape[-1] // group_size, group_size)
    groups = np.ascontiguousarray(xg).reshape(-1, group_size)
    perm = None
    if not argsort:
        y = _sorted_values_blocks(groups)
    elif group_size in _NETWORK_K and x.dtype.itemsize in _UINT:
        y, perm = _network_argsort_blocks(groups)
    elif x.dtype == np.float32:
        y, perm = _packed_argsort_blocks(groups)
    else:
        y, perm = _argsort_blocks(groups)
    return np.moveaxis(y.reshape(xm.shape), -1, axis), None if perm is None else perm.reshape(xg.shape)


def _numpy_max_min_fwd(xm, axis):
    """k = 2 with residuals: one comparison per pair gives the stable permutation (swap iff
    b < a, or a is NaN and b is not: NaN goes last like the sorts put it)."""
    if xm.dtype in _TIE_RETURNS_SECOND and _pairs_in_blocks(xm, xm.ndim - 1):
        y, perm = _max_min_fwd_blocks(xm)
    else:
        y, perm = _numpy_max_min_fwd_strided(xm)
    return np.moveaxis(y, -1, axis), perm


def _numpy_max_min_fwd_strided(xm):
    a, b = xm[..., 0::2], xm[..., 1::2]
    swap = b < a
    nan_a = np.isnan(a)
    if nan_a.any():
        swap |= nan_a & ~np.isnan(b)
    y = np.empty(xm.shape, dtype=xm.dtype)
    y[..., 0::2] = np.where(swap, b, a)
    y[..., 1::2] = np.where(swap, a, b)
    # uint8 indices, as the CuPy path stores them: an int64 permutation would write 8x the
    # bytes of the output's own pair.
    perm = np.empty((*swap.shape, 2), dtype=np.uint8)
    perm[..., 0] = swap
    perm[..., 1] = ~swap
    return y, perm


# k = 2 on C-contiguous pairs, block by block. NumPy's minimum/maximum run without SIMD on the
# stride-2 halves of a pair array (about 8x slower than on contiguous data), so every pass
# below is on contiguous, shifted views of one block: ``minimum(z[1:], z[:-1])`` holds each
# pair's minimum at the pair's first slot (and a junk value at the second), ``maximum(z[:-1],
# z[1:])`` written one slot to the right holds its maximum at the second slot. A block (its
# input, output and one scratch array) stays in the cache, so only the input's read and the
# output's write reach memory (2^17 entries measured fastest on a 2-core EPYC VM at k = 2:
# 2^14-2^16 and 2^19 were 9-37% slower, 2^18 the same within noise). Every value is the one
# the strided formulation computes, with the same argument order at ties [GS-7]: the results
# are bit for bit the same.
BLOCK = 1 << 17  # entries per block (even; 512 KiB of float32); tests shrink it
_UINT = {2: "uint16", 4: "uint32", 8: "uint64"}
_INT = {2: "int16", 4: "int32", 8: "int64"}


def _pairs_in_blocks(a, axis):
    """True when ``a``'s pairs along ``axis`` are adjacent entries of its flat C-order buffer
    (the last axis of a C-contiguous array) and the bit tricks below apply."""
    return (axis % a.ndim == a.ndim - 1 and a.flags.c_contiguous and a.dtype.itemsize in _UINT
            and sys.byteorder == "little")


def _blocks(n):
    for start in range(0, n, BLOCK):
        yield start, min(start + BLOCK, n)


def _rows_per_block(groups):
    """Whole groups (rows of ``groups``) per block: about ``BLOCK`` entries, at least one row."""
    return max(1, min(BLOCK // groups.shape[-1], groups.shape[0]))


def _redo_stable(xb, yb, pb, redo):
    """Groups ``redo`` of a block through NumPy's stable argsort (the exact rule [GS-7])."""
    pb[redo] = np.argsort(xb[redo], axis=-1, kind="stable")
    yb[redo] = np.take_along_axis(xb[redo], pb[redo].astype(np.intp), axis=-1)


def _max_min_blocks(x):
    flat, out = x.reshape(-1), np.empty(x.size, dtype=x.dtype)
    high = np.empty(min(BLOCK, x.size), dtype=x.dtype)
    for s, e in _blocks(flat.size):
        _max_min_block(flat[s:e], out[s:e], high)
    return out.reshape(x.shape)


def _max_min_block(z, out, high):
    m = z.size
    np.minimum(z[1:], z[:-1], out=out[:-1])  # = minimum(b, a) at each pair's first slot
    np.maximum(z[:-1], z[1:], out=high[1:m])  # = maximum(a, b) at each pair's second slot
    np.copyto(out[1::2], high[1:m:2])


def _max_min_fwd_blocks(x):
    """``(y, perm)`` of :func:`_numpy_max_min_fwd`, block by block. ``perm`` (uint8, a pair's
    ``(0, 1)`` or ``(1, 0)``) comes from ``less(b, a)`` written at the pair's first byte and
    completed in the 16-bit view of each pair: ``(s + 256 * junk) & 0xFF`` keeps ``s``, and
    ``s * 0xFF01 + 0x0100`` modulo ``2^16`` is ``0x0001`` (bytes ``1, 0``) for ``s = 1`` and
    ``0x0100`` (bytes ``0, 1``) for ``s = 0``. A block whose sum is NaN may hold a NaN, which
    the min/max formulation would spread to both entries of its pair: that block takes the
    exact strided rule (false alarms, e.g. ``inf - inf``, only cost time)."""
    flat, y = x.reshape(-1), np.empty(x.size, dtype=x.dtype)
    perm = np.empty(x.size, dtype=np.uint8)
    high = np.empty(min(BLOCK, x.size), dtype=x.dtype)
    for s, e in _blocks(flat.size):
        z, ys, ps = flat[s:e], y[s:e], perm[s:e]
        _max_min_block(z, ys, high)
        with np.errstate(invalid="ignore", over="ignore"):
            maybe_nan = np.isnan(np.add.reduce(ys))
        if maybe_nan:
            yb, pb = _numpy_max_min_fwd_strided(z[None, :])
            ys[...], ps[...] = yb.reshape(-1), pb.reshape(-1)
            continue
        np.less(z[1:], z[:-1], out=ps[:-1].view(bool))
        p16 = ps.view(np.uint16)
        np.bitwise_and(p16, 0x00FF, out=p16)
        np.multiply(p16, 0xFF01, out=p16)
        np.add(p16, 0x0100, out=p16)
    return y.reshape(x.shape), perm.reshape(*x.shape[:-1], x.shape[-1] // 2, 2)


def _max_min_bwd_blocks(perm, y_bar):
    """``P^T y_bar`` for pair permutations, block by block, as bit selects. With ``t_j = g_j
    xor g_{j+1}`` and ``M_j`` all ones where ``perm_j = 1``: the first slot of a pair receives
    ``g_j xor (t_j & M_j)`` (``g_{j+1}`` when swapped), the second ``g_{j-1} xor (t_{j-1} &
    M_j)`` (``perm = 0`` there when swapped, giving ``g_{j-1}``). Copies of bits, so exactly
    the scatter's result."""
    size = y_bar.dtype.itemsize
    g = y_bar.reshape(-1).view(_UINT[size])
    p = perm.reshape(-1).view(np.int8)
    out = np.empty(g.size, dtype=g.dtype)
    t, u, mask = (np.empty(min(BLOCK, g.size), dtype=g.dtype) for _ in range(3))
    for s, e in _blocks(g.size):
        m, gs, xs = e - s, g[s:e], out[s:e]
        # -1 in the signed view is all ones in the unsigned one.
        np.negative(p[s:e], out=mask[:m].view(_INT[size]), casting="unsafe")
        np.bitwise_xor(gs[1:], gs[:-1], out=t[:m - 1])
        np.bitwise_and(t[:m - 1], mask[:m - 1], out=u[:m - 1])
        np.bitwise_xor(u[:m - 1], gs[:-1], out=xs[:-1])
        np.bitwise_and(t[:m - 1], mask[1:m], out=t[:m - 1])
        np.bitwise_xor(t[:m - 1], gs[:-1], out=u[1:m])
        np.copyto(xs[1::2], u[1:m:2])
    return out.view(y_bar.dtype).reshape(y_bar.shape)


# Values only, k > 2: blocks of whole groups, each sorted while it sits in the cache, then
# checked there for the groups that need the stable order [GS-7, GS-12]: equal floats have
# equal bits except zeros of opposite sign (and NaN payloads), so an unstable sort (or a min/max
# network) gives the stable result bit for bit unless a group holds both zeros, which implies a
# +0, or a NaN. Those groups are re-sorted stably from the input.
def _sorted_values_blocks(groups):
    k = groups.shape[-1]
    out = np.empty_like(groups)
    rows = _rows_per_block(groups)
    network = k in _NETWORK_K and groups.dtype.itemsize in _UINT
    scratch = [np.empty(rows * k, dtype=groups.dtype) for _ in range(3)] if network else None
    for r0 in range(0, groups.shape[0], rows):
        xb, yb = groups[r0:r0 + rows], out[r0:r0 + rows]
        if network:
            _network_sort_block(xb.reshape(-1), yb.reshape(-1), k, scratch)
            # The network spreads NaN within its group: a NaN anywhere makes the sum NaN.
            with np.errstate(invalid="ignore", over="ignore"):
                nan = np.isnan(np.add.reduce(yb, axis=None))
        else:
            np.copyto(yb, xb)
            yb.sort(axis=-1)
            nan = np.isnan(yb[:, -1]).any()  # NaN sorts last
        # In the input: NumPy's SIMD sort itself does not keep the signs of mixed zeros.
        if nan or _holds_plus_zero(xb):
            redo = np.any(xb == 0, axis=-1) | np.any(np.isnan(xb), axis=-1)
            yb[redo] = np.sort(xb[redo], axis=-1, kind="stable")
    return out


def _holds_plus_zero(a):
    """Whether ``a`` holds a +0: the minimum of its unsigned integer view is 0 exactly then
    (one SIMD reduction, twice as fast as counting non-zeros). A group of mixed zeros holds
    one; other dtypes (longdouble) count float zeros (either sign) instead."""
    utype = _UINT.get(a.dtype.itemsize)
    if utype is None:
        return np.count_nonzero(a) != a.size
    return a.size > 0 and np.minimum.reduce(a.view(utype), axis=None) == 0


@functools.lru_cache(maxsize=None)
def _odd_even_merge_layers(k):
    """Batcher's odd-even merge sort network [GS-12] on ``k`` (a power of 2) inputs as layers
    ``(d, lows)``: comparators ``(i, i + d)`` for ``i`` in ``lows``; every comparator of a layer
    has the same distance, which is what lets a layer run as whole-array shifted passes."""
    layers, p = [], 1
    while p < k:
        d = p
        while d >= 1:
            lows = tuple(i + j for j in range(d % p, k - d, 2 * d) for i in range(min(d, k - j - d))
                         if (i + j) // (2 * p) == (i + j + d) // (2 * p))
            layers.append((d, lows))
            d //= 2
        p *= 2
    return layers


# Group sizes sorted by the network: at k = 4 NumPy's sort of rows of 4 is its slowest case and
# the 3-layer network is 4x faster; at k = 8 they tie and from k = 16 on the sort is faster
# (benchmarks/README.md).
_NETWORK_K = (4,)


def _carry_indices(cur, d, lows, k, carry):
    """Apply one layer's swaps (``cur[i + d] < cur[i]`` at the lower slots) to the indices."""
    idx, swap, low, high, sel = carry
    m = idx.size
    mask_low, mask_high, _ = _layer_masks(k, d, lows, m, np.uint8)
    np.less(cur[d:], cur[:-d], out=swap[:m - d].view(bool))
    np.negative(swap[:m - d].view(np.int8), out=swap[:m - d].view(np.int8))  # 1 -> 0xFF
    t = sel[:m - d]
    np.bitwise_xor(idx[d:], idx[:-d], out=t)  # t_i = idx_i ^ idx_{i+d}, where swapped
    np.bitwise_and(t, swap[:m - d], out=t)
    np.bitwise_xor(idx[:-d], t, out=low[:m - d])  # lower slot: idx_{i+d} if swapped
    np.bitwise_xor(idx[d:], t, out=high[d:])  # upper slot (shifted by d): idx_i if swapped
    np.bitwise_xor(idx, low, out=low)  # sel = idx with the lower slots from low
    np.bitwise_and(low, mask_low, out=low)
    np.bitwise_xor(idx, low, out=sel)
    np.bitwise_xor(sel, high, out=high)  # idx = sel with the upper slots from high
    np.bitwise_and(high, mask_high, out=high)
    np.bitwise_xor(sel, high, out=idx)


@functools.lru_cache(maxsize=32)
def _layer_masks(k, d, lows, size, utype):
    """Bit masks of one layer for blocks of ``size`` entries (period ``k``): all ones at the
    lower / upper comparator slots; and whether the layer touches every slot."""
    low = np.zeros(k, dtype=bool)
    low[list(lows)] = True
    high = np.roll(low, d)
    ones = np.iinfo(utype).max
    masks = tuple(np.where(np.tile(sel, size // k), ones, 0).astype(utype) for sel in (low, high))
    for mask in masks:
        mask.flags.writeable = False
    return (*masks, bool((low | high).all()))


def _network_sort_block(z, out, k, scratch, carry=None):
    """Sort consecutive groups of ``k`` entries of the flat block ``z`` into ``out`` with the
    min/max network: per layer, ``minimum(z[d:], z[:-d])`` holds each comparator's minimum at
    its lower slot and ``maximum(z[:-d], z[d:])`` written ``d`` slots on holds its maximum at
    the upper one; bit selects with periodic masks merge them (and, in a partial layer, the
    untouched slots of ``z``). NaN spreads (the caller re-sorts those groups). ``carry``: the
    uint8 indices (permuted in place with the same decisions) and four uint8 scratch arrays."""
    m, utype = z.size, np.dtype(_UINT[z.dtype.itemsize]).type
    low_vals, high_vals = scratch[0][:m], scratch[1][:m]
    lo, hi, sel = (buf[:m].view(utype) for buf in scratch)
    dst = out.view(utype)
    cur = z
    for d, lows in _odd_even_merge_layers(k):
        mask_low, mask_high, full = _layer_masks(k, d, lows, scratch[0].size, utype)
        if carry is not None:
            _carry_indices(cur, d, lows, k, carry)
        np.minimum(cur[d:], cur[:-d], out=low_vals[:m - d])
        np.maximum(cur[:-d], cur[d:], out=high_vals[d:])
        if full:  # every slot is a comparator's: lower ones from lo, upper ones from hi
            base = lo
        else:  # untouched slots keep cur: sel = cur with the lower slots taken from lo
            c = cur.view(utype)
            np.bitwise_xor(c, lo, out=lo)
            np.bitwise_and(lo, mask_low[:m], out=lo)
            np.bitwise_xor(c, lo, out=sel)
            base = sel
        np.bitwise_xor(base, hi, out=hi)
        np.bitwise_and(hi, mask_high[:m], out=hi)
        np.bitwise_xor(base, hi, out=dst)
        cur = out


# Groups along an axis that is not the innermost in memory (axis 0 of a C-order matrix, the
# last axis of an F-order one): moving the axis last would leave every pass strided by a whole
# row (about 15x slower). Instead the comparators of the network run on whole slices: with the
# array seen as (outer, n / k, k, inner) in memory order, comparator (i, j) is a minimum and a
# maximum of the contiguous (outer, n / k, inner) slices i and j.
_SLICE_NETWORK_K = (2, 4, 8, 16, 32)


def _groups_across_rows(x, group_size, axis):
    """Values-only GroupSort for groups that run across the innermost memory axis of a C- or
    F-contiguous array (power-of-2 ``k`` <= 32); ``None`` for every other case."""
    axis %= x.ndim
    if x.flags.c_contiguous:
        c, c_axis, flip = x, axis, False
    elif x.flags.f_contiguous:
        c, c_axis, flip = x.T, x.ndim - 1 - axis, True
    else:
        return None
    if c_axis == c.ndim - 1 or group_size not in _SLICE_NETWORK_K or c.size == 0:
        return None
    if group_size == 2 and c.dtype not in _TIE_RETURNS_SECOND:
        return None  # its ties are put back by _numpy_max_min
    shape = c.shape
    outer, n, inner = math.prod(shape[:c_axis]), shape[c_axis], math.prod(shape[c_axis + 1:])
    src = c.reshape(outer, n // group_size, group_size, inner)
    y = src.copy()
    tmp = np.empty_like(y[:, :, 0])
    for d, lows in _odd_even_merge_layers(group_size):
        for i in lows:
            # Arguments in the order of the k = 2 path: at a tie the lower slot keeps its entry,
            # the stable order for k = 2 [GS-7]; for k > 2 the tie groups are redone below.
            np.minimum(y[:, :, i + d], y[:, :, i], out=tmp)
            np.maximum(y[:, :, i], y[:, :, i + d], out=y[:, :, i + d])
            np.copyto(y[:, :, i], tmp)
    if group_size > 2:
        # As in _sorted_values_blocks: groups holding a +0 or a NaN take the stable sort (for
        # k = 2, NaN spreads to both entries of its pair as in the other k = 2 path [GS-8]).
        with np.errstate(invalid="ignore", over="ignore"):
            nan = np.isnan(np.add.reduce(y, axis=None))
        if nan or _holds_plus_zero(c):
            redo = np.any(src == 0, axis=2) | np.any(np.isnan(src), axis=2)
            by_group = np.moveaxis(y, 2, -1)
            by_group[redo] = np.sort(np.moveaxis(src, 2, -1)[redo], axis=-1, kind="stable")
    y = y.reshape(shape)
    return y.T if flip else y


def _index_dtype(k):
    """The smallest unsigned integer type holding ``0 .. k - 1``: the permutation residual is
    as large as the input, so int64 would write (and the backward read) 2-8x its bytes."""
    return np.min_scalar_type(max(k - 1, 0))


def _permute_blocks(perm, groups, scatter, out=None):
    """``y[g, j] = groups[g, perm[g, j]]`` (gather) or ``y[g, perm[g, j]] = groups[g, j]``
    (scatter, ``P^T``), block by block through flat indices ``perm + k g``: NumPy's
    ``take``/fancy assignment on a flat block are about twice as fast as ``take_along_axis`` /
    ``put_along_axis`` and the index block stays in the cache. Exact copies of entries."""
    k = groups.shape[-1]
    out = np.empty_like(groups) if out is None else out
    rows = _rows_per_block(groups)
    base = (np.arange(rows, dtype=np.intp) * k)[:, None]
    flat_idx = np.empty((rows, k), dtype=np.intp)
    for r0 in range(0, groups.shape[0], rows):
        pb, gb, ob = perm[r0:r0 + rows], groups[r0:r0 + rows], out[r0:r0 + rows]
        idx = flat_idx[:pb.shape[0]]
        np.add(pb, base[:pb.shape[0]], out=idx, casting="unsafe")
        if scatter:
            ob.reshape(-1)[idx.reshape(-1)] = gb.reshape(-1)
        else:
            np.take(gb.reshape(-1), idx.reshape(-1), out=ob.reshape(-1))
    return out


def _packed_argsort_blocks(groups):
    """``(y, perm)`` of the stable order for float32 groups by one sort of 64-bit integers:
    ``key(x) << 32 | j`` with ``key`` the order-preserving map of the float's bits (flip all
    bits of a negative, the sign bit of a positive). Equal keys are ordered by position, so the
    integer sort *is* the stable argsort, ties included; NumPy's integer sort is about twice as
    fast as its float argsort. The key orders -0 below +0 and NaN by sign and payload, unlike
    the stable order [GS-7, GS-8]: groups holding a +0 or a NaN (a NaN key sorts first or
    last) take NumPy's stable argsort."""
    k = groups.shape[-1]
    y, perm = np.empty_like(groups), np.empty(groups.shape, dtype=_index_dtype(k))
    rows = _rows_per_block(groups)
    position = np.tile(np.arange(k, dtype=np.uint64), (rows, 1))
    key32 = np.empty((rows, k), dtype=np.uint32)
    packed = np.empty((rows, k), dtype=np.uint64)
    for r0 in range(0, groups.shape[0], rows):
        xb, yb, pb = groups[r0:r0 + rows], y[r0:r0 + rows], perm[r0:r0 + rows]
        n, key, pk = xb.shape[0], key32[:xb.shape[0]], packed[:xb.shape[0]]
        np.right_shift(xb.view(np.int32), 31, out=key.view(np.int32))  # all ones if negative
        np.bitwise_or(key, 0x80000000, out=key)
        np.bitwise_xor(key, xb.view(np.uint32), out=key)
        np.left_shift(key, 32, out=pk, dtype=np.uint64)
        np.bitwise_or(pk, position[:n], out=pk)
        pk.sort(axis=-1)
        np.copyto(pb, pk, casting="unsafe")  # keeps the low bits: the position
        _permute_blocks(pb, xb, scatter=False, out=yb)
        nan = np.isnan(yb[:, 0]).any() or np.isnan(yb[:, -1]).any()
        if nan or _holds_plus_zero(xb):
            _redo_stable(xb, yb, pb, np.any(xb == 0, axis=-1) | np.any(np.isnan(xb), axis=-1))
    return y, perm


def _argsort_blocks(groups):
    """``(y, perm)`` of the stable order with NumPy's default (unstable, faster) argsort, block
    by block. Without ties or NaN the order is unique, so it is the stable one [GS-7]; groups
    with a tie (signed zeros included) or a NaN (sorted last) are redone with the stable
    argsort. The tie test runs on the block's output while it is in the cache."""
    k = groups.shape[-1]
    y, perm = np.empty_like(groups), np.empty(groups.shape, dtype=_index_dtype(k))
    rows = _rows_per_block(groups)
    for r0 in range(0, groups.shape[0], rows):
        xb, yb, pb = groups[r0:r0 + rows], y[r0:r0 + rows], perm[r0:r0 + rows]
        pb[...] = np.argsort(xb, axis=-1)
        _permute_blocks(pb, xb, scatter=False, out=yb)
        ties = yb[:, 1:] == yb[:, :-1]
        nan_last = np.isnan(yb[:, -1])
        if ties.any() or nan_last.any():
            _redo_stable(xb, yb, pb, np.any(ties, axis=-1) | nan_last)
    return y, perm


def _network_argsort_blocks(groups):
    """``(y, perm)`` of the stable order for groups of ``k`` in ``_NETWORK_K`` [GS-12]: the
    values from the min/max network, the permutation (uint8) carried through the same
    comparators, which swap exactly when ``z[i + d] < z[i]``, i.e. when ``minimum(z[i + d],
    z[i])`` takes the upper entry. A network is not stable at ties, and NaN compares false while
    ``minimum`` spreads it, so groups with a tie or a NaN take NumPy's stable argsort."""
    k = groups.shape[-1]
    y, perm = np.empty_like(groups), np.empty(groups.shape, dtype=np.uint8)
    rows = _rows_per_block(groups)
    size = rows * k
    scratch = [np.empty(size, dtype=groups.dtype) for _ in range(3)]
    swap, low_idx, high_idx, sel_idx = (np.empty(size, dtype=np.uint8) for _ in range(4))
    start = np.tile(np.arange(k, dtype=np.uint8), rows)
    for r0 in range(0, groups.shape[0], rows):
        xb, yb, pb = groups[r0:r0 + rows], y[r0:r0 + rows], perm[r0:r0 + rows]
        z, out, idx = xb.reshape(-1), yb.reshape(-1), pb.reshape(-1)
        m = z.size
        np.copyto(idx, start[:m])
        _network_sort_block(z, out, k, scratch, carry=(idx, swap[:m], low_idx[:m], high_idx[:m],
                                                         sel_idx[:m]))
        with np.errstate(invalid="ignore", over="ignore"):
            nan = np.isnan(np.add.reduce(out))
        ties = yb[:, 1:] == yb[:, :-1]
        if nan or ties.any():
            _redo_stable(xb, yb, pb, np.any(ties, axis=-1) | np.any(np.isnan(xb), axis=-1))
    return y, perm
