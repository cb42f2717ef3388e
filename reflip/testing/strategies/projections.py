"""Cases of the norm projections and row scalings [PR-1]..[PR-10] (``linf_project``,
``pinf_project``, ``row_scale``)."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .common import KINDS, Case, bounded_floats, case_rng

__all__ = ["linf_project_cases", "pinf_project_cases", "row_scale_cases", "PROJECTION_RADII",
           "PROJECTION_UNITS"]

# Rows lie along the
# last axis: shapes (n,), (m, n) or (b, m, n) with n <= 8, m <= 6, b <= 2. Radii are powers of
# two and the constructed entries integer multiples of UNIT = radius / 64, so every case is
# exact in float32 and the thresholds of constructed rows are exactly known.
#   "general"        bounded floats, rows scaled by powers of two so that some are inside and
#                    some outside the ball, with exact zeros sprinkled in;
#   "differentiable" rows away from every kink ([PR-4] [PR-8] [PR-9] [PR-10]): entries at least
#                    one unit from the threshold, no zeros, norms at least one unit from r;
#                    ``max_step`` = UNIT / 32 keeps every entry on its piece;
#   "ties"           (l1 ball) rows exactly on the sphere, entries exactly at the threshold,
#                    zeros and repeated magnitudes; ``x2`` is the point moved onto the piece the
#                    convention of [PR-4] picks (entries at the threshold shrunk by UNIT / 4,
#                    rows on the sphere scaled by 15/16), ``max_step`` stays on that piece;
#   "pair"           "general" plus a second input ``x2`` of the same shape, same parameters.
# A row outside whose support has one entry (every one-entry row outside) has Jacobian exactly 0
# ([PR-4] [PR-8] [PR-10]): central differences there are rounding noise, which the absolute
# floor of the derivative checks absorbs [AU-2]; such rows, whole cases of them included, are
# drawn on purpose.
# The row type of every row is drawn by hypothesis; the integers inside a constructed row come
# from a generator seeded by a drawn integer (one draw per case keeps generation fast).

PROJECTION_RADII = (0.25, 0.5, 1.0, 2.0, 4.0)
PROJECTION_UNITS = 64  # radius / UNIT


@st.composite
def _rows_shape(draw):
    n = draw(st.integers(1, 8))
    rank = draw(st.sampled_from([1, 2, 2, 3]))
    if rank == 1:
        return (n,)
    m = draw(st.integers(1, 6))
    return (m, n) if rank == 2 else (draw(st.integers(1, 2)), m, n)


def _n_rows(shape):
    return int(np.prod(shape[:-1], dtype=int))


@st.composite
def _general_rows(draw, dtype, shape):
    """Bounded floats; each row scaled by 2**j (j in [-8, 2]) and some entries zeroed."""
    x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype, 8.0)))
    rng = case_rng(draw)
    rows = x.reshape(-1, shape[-1]).astype(np.float64)
    j = rng.integers(-8, 3, size=(rows.shape[0], 1))
    zeros = rng.random(rows.shape) < draw(st.sampled_from([0.0, 0.25, 0.5]))
    rows = np.where(zeros | (np.abs(rows) < 2.0**-40), 0.0, rows * 2.0**j)
    return rows.reshape(shape).astype(dtype)


def _signed(rng, magnitudes):
    magnitudes = np.asarray(magnitudes)
    return np.where(rng.random(magnitudes.shape) < 0.5, -1, 1) * magnitudes


def _composition(rng, total, parts, positive=True):
    """``parts`` integers summing to ``total`` (all >= 1 if ``positive``, else >= 0)."""
    if positive:
        cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
    else:
        cuts = np.sort(rng.integers(0, total + 1, size=parts - 1))
    return np.diff(np.concatenate([[0], cuts, [total]]))


def _l1_row_units(rng, n, kind, row_type):
    """One row in units (multiples of 1/4 unit): ``(row, moved_row)``;
    ``moved_row`` is the point on the convention's piece for "ties" (equal to ``row``
    otherwise)."""
    R = PROJECTION_UNITS
    smooth = kind == "differentiable"
    if row_type == "inside":
        row = _signed(rng, rng.integers(1 if smooth else 0, (R - 1) // n + 1, size=n)).astype(np.float64)
        return row, row
    if row_type == "sphere":
        row = _signed(rng, _composition(rng, R, n, positive=False)).astype(np.float64)
        return row, row * (15 / 16)
    m = int(rng.integers(1, n + 1))
    over = _composition(rng, R, m)  # |v_i| - theta on the support, summing to r
    theta = int(rng.integers(2 if smooth else 1, 41))
    ties = 0 if smooth else int(rng.integers(0, n - m + 1))
    off = rng.integers(1 if smooth else 0, theta, size=n - m - ties)
    if not smooth and rng.random() < 0.5:
        over[:] = over[0]  # repeated magnitudes on the support
        over[-1] += R - over.sum()
        if over[-1] < 1:
            over = _composition(rng, R, m)
    mags = np.concatenate([theta + over, np.full(ties, theta), off]).astype(np.float64)
    moved = mags.copy()
    moved[m:m + ties] -= 0.25  # entries at the threshold go off the support [PR-4]
    order = rng.permutation(n)
    row = _signed(rng, mags[order])
    return row, np.sign(row) * moved[order]


@st.composite
def _l1_rows(draw, dtype, shape, kind):
    """Rows of ``_l1_row_units`` scaled by UNIT = radius / 64: ``(x, moved, radius)``."""
    radius = draw(st.sampled_from(PROJECTION_RADII))
    unit = radius / PROJECTION_UNITS
    types = ["inside", "outside"] + ([] if kind == "differentiable" else ["sphere"])
    row_types = draw(st.lists(st.sampled_from(types), min_size=_n_rows(shape), max_size=_n_rows(shape)))
    rng = case_rng(draw)
    pairs = [_l1_row_units(rng, shape[-1], kind, t) for t in row_types]
    x = np.stack([p[0] for p in pairs]).reshape(shape) * unit
    moved = np.stack([p[1] for p in pairs]).reshape(shape) * unit
    return x.astype(dtype), moved.astype(dtype), radius


@st.composite
def _linf_project_case(draw, dtype, kind):
    shape = draw(_rows_shape())
    if kind in ("general", "pair"):
        radius = draw(st.sampled_from(PROJECTION_RADII))
        x2 = draw(_general_rows(dtype, shape)) if kind == "pair" else None
        return Case(draw(_general_rows(dtype, shape)), {"radius": radius}, x2)
    if kind in ("differentiable", "ties"):
        x, moved, radius = draw(_l1_rows(dtype, shape, kind))
        unit = radius / PROJECTION_UNITS
        if kind == "differentiable":
            return Case(x, {"radius": radius}, max_step=unit / 32)
        return Case(x, {"radius": radius}, x2=moved, max_step=unit / 64)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def linf_project_cases(dtype, kind):
    """Strategy of :func:`reflip.linf_project` cases (kinds: the comment above
    :data:`PROJECTION_RADII`). Parameters: ``radius`` only (``threshold`` keeps its default,
    ``"exact"``; the detached convention has claims of its own)."""
    return _linf_project_case(np.dtype(dtype), kind)


@st.composite
def _l2_rows(draw, dtype, shape, radii=None):
    """Rows whose l2 norm is r times a factor in [1/8, 7/8] or [9/8, 4] ([PR-8] [PR-10]); the
    radius is drawn from ``radii`` (default :data:`PROJECTION_RADII`)."""
    radius = draw(radii if radii is not None else st.sampled_from(PROJECTION_RADII))
    rng = case_rng(draw)
    rows = rng.uniform(1 / 16, 1, size=(_n_rows(shape), shape[-1]))
    rows = _signed(rng, rows)
    inside = rng.random((rows.shape[0], 1)) < 0.5
    factor = np.where(inside, rng.uniform(1 / 8, 7 / 8, inside.shape), rng.uniform(9 / 8, 4, inside.shape))
    rows = rows / np.linalg.norm(rows, axis=-1, keepdims=True) * factor * radius
    return rows.reshape(shape).astype(dtype), radius


@st.composite
def _max_rows(draw, dtype, shape, entrywise):
    """In units: a unique largest magnitude per row (gap >= 1 unit), away from R by >= 1 unit;
    with ``entrywise`` every magnitude is away from R (clipping, [PR-9])."""
    R = PROJECTION_UNITS
    radius = draw(st.sampled_from(PROJECTION_RADII))
    rng = case_rng(draw)
    n = shape[-1]

    def away_from_r(size, low):
        mags = rng.integers(low, 3 * R, size=size)
        return np.where(mags >= R, mags + 1, mags)  # skips R itself

    rows = []
    for _ in range(_n_rows(shape)):
        if entrywise:
            mags = away_from_r(n, 0)
        else:
            top = int(away_from_r(1, 2)[0])
            mags = rng.permutation(np.concatenate([[top], rng.integers(0, top, size=n - 1)]))
        rows.append(_signed(rng, mags))
    x = np.stack(rows).reshape(shape) * (radius / R)
    return x.astype(dtype), radius


@st.composite
def _pinf_case(draw, dtype, kind, scaling):
    shape = draw(_rows_shape())
    p = draw(st.sampled_from([1, 2, np.inf]))
    if kind in ("general", "pair"):
        radius = draw(st.sampled_from(PROJECTION_RADII))
        x2 = draw(_general_rows(dtype, shape)) if kind == "pair" else None
        return Case(draw(_general_rows(dtype, shape)), {"p": p, "radius": radius}, x2)
    if kind == "differentiable":
        if p == np.inf:  # l1 ball / l1 scaling: the l1 construction (no zeros, no kinks)
            x, _, radius = draw(_l1_rows(dtype, shape, kind))
        elif p == 2:
            # Smooth at least r/8 around every row, which is far beyond the default central
            # difference step eps^(1/3) max |x_i| [AU-2]: no max_step, and radii down to 2**-20
            # so that the default step is exercised on small inputs.
            x, radius = draw(_l2_rows(dtype, shape, st.sampled_from(PROJECTION_RADII + (2.0**-10, 2.0**-20))))
            return Case(x, {"p": p, "radius": radius})
        else:  # clipping / scaling by the largest entry
            x, radius = draw(_max_rows(dtype, shape, entrywise=not scaling))
        return Case(x, {"p": p, "radius": radius}, max_step=radius / PROJECTION_UNITS / 32)
    if kind == "ties":
        # l1 ties as above for p = inf; entries exactly at +-r for p = 1; rows on the l2 sphere
        # are not exactly representable, so p = 2 draws the differentiable construction.
        if p == np.inf:
            x, moved, radius = draw(_l1_rows(dtype, shape, kind))
            return Case(x, {"p": p, "radius": radius}, x2=moved, max_step=radius / PROJECTION_UNITS / 64)
        if p == 1:
            radius = draw(st.sampled_from(PROJECTION_RADII))
            x = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, -0.5, 0.0, 1.0, 2.0])))
            return Case((x * radius).astype(dtype), {"p": p, "radius": radius})
        x, radius = draw(_l2_rows(dtype, shape))
        return Case(x, {"p": p, "radius": radius})
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def pinf_project_cases(dtype, kind):
    """Strategy of :func:`reflip.pinf_project` cases: ``p`` in {1, 2, inf} and a radius."""
    return _pinf_case(np.dtype(dtype), kind, scaling=False)


def row_scale_cases(dtype, kind):
    """Strategy of :func:`reflip.row_scale` cases: ``p`` in {1, 2, inf} and a radius; the
    differentiable ones avoid zeros (q = 1) and ties for the largest entry (q = inf) [PR-10]."""
    return _pinf_case(np.dtype(dtype), kind, scaling=True)
