"""Hypothesis strategies drawing the cases of the property suite.

Every strategy factory has the signature ``factory(dtype, kind) -> strategy of Case`` where
``dtype`` is ``"float32"`` or ``"float64"`` and ``kind`` names the sort of input a claim needs:

``"general"``
    bounded floats (no NaN, inf or subnormals; bounds exactly representable in float32).
``"differentiable"``
    inputs where the primitive is differentiable, with ``Case.max_step`` the largest central
    difference step that stays on one smooth piece (GroupSort: tie-free, gaps >= 1/16 of the
    scale).
``"ties"``
    inputs on the non-differentiable set (GroupSort: many exact ties, signed zeros included).
``"pair"``
    ``Case.x2`` is a second input of the same shape (Lipschitz checks).

Cases are NumPy arrays; the engine moves them to the backend under test.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["Case", "group_sort_cases", "bounded_floats", "KINDS"]

KINDS = ("general", "differentiable", "ties", "pair")


class Case(NamedTuple):
    x: np.ndarray
    params: dict
    x2: np.ndarray | None = None
    max_step: float | None = None


def bounded_floats(dtype, bound=256.0):
    """Finite floats in [-bound, bound] (bound a power of two: exact in float32)."""
    return st.floats(-bound, bound, width=np.dtype(dtype).itemsize * 8, allow_nan=False,
                     allow_infinity=False, allow_subnormal=False)


@st.composite
def _group_sort_shape(draw, full_width_only=False, group_sizes=None):
    """(shape, group_size, axis) with group sizes 1..8 and the full width (or only
    ``group_sizes``), 0-2 batch axes."""
    k = draw(st.sampled_from(group_sizes or [1, 2, 3, 4, 5, 8]))
    n_groups = draw(st.integers(1, 4))
    if group_sizes is None and (full_width_only or draw(st.integers(0, 4)) == 0):
        k, n_groups = k * n_groups, 1  # FullSort
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    axis = draw(st.integers(0, len(batch)))
    shape = tuple(batch[:axis]) + (k * n_groups,) + tuple(batch[axis:])
    # Negative axes half of the time.
    if draw(st.booleans()):
        axis -= len(shape)
    return shape, k, axis


@st.composite
def _group_sort_case(draw, dtype, kind, group_sizes=None):
    shape, k, axis = draw(_group_sort_shape(group_sizes=group_sizes))
    params = {"group_size": k, "axis": axis}
    if kind in ("general", "pair"):
        x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype)))
        x2 = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype))) if kind == "pair" else None
        return Case(x, params, x2)
    if kind == "differentiable":
        # Distinct multiples of a power-of-two scale: exact in float32, gaps >= scale.
        scale = 2.0 ** draw(st.integers(-6, 3))
        ints = draw(hnp.arrays(np.int64, shape, elements=st.integers(-1024, 1024), unique=True))
        return Case((ints * scale).astype(dtype), params, max_step=scale / 4)
    if kind == "ties":
        values = st.sampled_from([-1.0, -0.0, 0.0, 0.5, 1.0])
        return Case(draw(hnp.arrays(dtype, shape, elements=values)), params)
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def group_sort_cases(dtype, kind, fixed=None):
    """Strategy of GroupSort cases (see the module docstring for ``kind``); ``fixed`` may hold
    ``group_sizes``, the only ones an implementation supports."""
    sizes = (fixed or {}).get("group_sizes")
    return _group_sort_case(np.dtype(dtype), kind, list(sizes) if sizes else None)


# ----------------------------------------------------------------------------------------------
# Björck [BJ-1]. Kinds (besides the shared ones, which keep their meaning):
#   "general"        raw entries, rank-deficient matrices and ties (Frobenius scaling, unrolled
#                    backward), or well-conditioned ones with any parameters;
#   "differentiable" well-conditioned (singular values in [1/4, 1] times a scale), tol None;
#                    backward="implicit" only with enough iterations to converge;
#   "ties"           repeated singular values (multiples of an orthonormal matrix included);
#   "pair"           "general" plus a second matrix of the same shape;
#   "converged"      well-conditioned with enough iterations to converge to working precision;
#   "convergence"    well- to ill-conditioned and rank-deficient matrices with a ``tol``, for the
#                    convergence report.
# Matrices are at most 6 x 6 with at most two batch axes of size <= 2.

# Iterations after which every singular value in [0.102, 1] (the worst case of the
# well-conditioned cases after Frobenius scaling: 1/4 over sqrt(6)) is within 1e-15 of 1, by the
# scalar map of [BJ-3], plus ~6 for the derivative, which lags the value (linear rate 1 - 2 beta
# for beta < 1/2, [BJ-5]). tests/test_bjorck.py checks that these suffice.
BJORCK_CONVERGED_N_ITER = {(1, 0.5): 18, (1, 0.375): 40, (1, 0.25): 68, (2, 0.5): 14, (3, 0.5): 12,
                           (4, 0.5): 12}
BJORCK_KINDS = KINDS + ("converged", "convergence")


def _orthogonal(rng, batch, k):
    q, r = np.linalg.qr(rng.standard_normal((*batch, k, k)))
    # Column signs from diag(r) make q Haar distributed (QR alone is biased).
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


@st.composite
def _bjorck_shape(draw):
    """``(*batch, m, n)``, 1 x 1 matrices included: they have no rotational directions, so their
    derivative is 0 (Frobenius scaling) or collapses to rounding noise within a few iterations
    (a superattracting fixed point, [BJ-5]), which the absolute floor of the derivative checks
    must absorb [AU-2]."""
    batch = draw(st.lists(st.integers(1, 2), max_size=2))
    return (*batch, draw(st.integers(1, 6)), draw(st.integers(1, 6)))


@st.composite
def _svd_matrix(draw, shape, singular_values, scale=1.0):
    """``scale * U diag(s) V^T`` with hypothesis-drawn ``s`` and Haar ``U, V`` from a drawn seed."""
    *batch, m, n = shape
    r = min(m, n)
    s = draw(hnp.arrays(np.float64, (*batch, r), elements=singular_values))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    u = _orthogonal(rng, batch, m)[..., :, :r]
    v = _orthogonal(rng, batch, n)[..., :, :r]
    return scale * ((u * s[..., None, :]) @ np.swapaxes(v, -1, -2))


_WELL = st.floats(0.25, 1.0)


def _pick(draw, fixed, name, choices):
    """``fixed[name]`` when the implementation fixes that parameter, else a draw from ``choices``."""
    return fixed[name] if name in fixed else draw(st.sampled_from(choices))


def _enough(order, beta):
    """:data:`BJORCK_CONVERGED_N_ITER`, or its largest entry for a pair it does not list."""
    return BJORCK_CONVERGED_N_ITER.get((order, beta), max(BJORCK_CONVERGED_N_ITER.values()))


@st.composite
def _bjorck_well(draw, shape, dtype, *, svals=_WELL, converged=False, tol=False, fixed=None):
    """A well-conditioned case (singular values ``svals`` within [1/4, 1], times a scale) with
    any parameters; the scale makes the certificate of ``scaling="none"``/``"sqrt_mn"`` pass
    (scaled singular values <= 0.9)."""
    fixed = fixed or {}
    m, n = shape[-2:]
    order = _pick(draw, fixed, "order", [1, 1, 2, 3, 4])
    beta = _pick(draw, fixed, "beta", [0.5, 0.5, 0.375, 0.25] if order == 1 else [0.5])
    backward = _pick(draw, fixed, "backward", ["unrolled", "unrolled", "implicit"])
    scaling = _pick(draw, fixed, "scaling", ["frobenius", "frobenius", "sqrt_mn", "none"])
    scale = {"frobenius": 2.0 ** draw(st.integers(-3, 3)), "sqrt_mn": 0.9 * np.sqrt(m * n),
             "none": 0.9}[scaling]
    x = draw(_svd_matrix(shape, svals, scale)).astype(dtype)
    enough = _enough(order, beta)
    n_iter = enough if converged or backward == "implicit" else draw(st.integers(0, 14))
    params = dict(order=order, beta=beta, n_iter=n_iter, scaling=scaling, backward=backward,
                  checkpoint=draw(st.booleans()) if backward == "unrolled" else False)
    if tol:
        # Reachable in float32 too: the floor of ||Y^T Y - I||_F is ~ N eps there.
        params.update(tol=draw(st.sampled_from([1e-2, 1e-4])), n_iter=enough)
    return Case(x, params)


@st.composite
def _bjorck_general(draw, shape, dtype, fixed=None):
    fixed = fixed or {}
    # Raw and degenerate matrices run with the Frobenius scaling (the only one certified for
    # any input, [BJ-6]) and the unrolled backward.
    variants = ["raw", "degenerate", "well", "well"]
    if fixed.get("scaling", "frobenius") != "frobenius" or fixed.get("backward", "unrolled") != "unrolled":
        variants = ["well"]
    variant = draw(st.sampled_from(variants))
    if variant == "well":
        return draw(_bjorck_well(shape, dtype, tol=draw(st.integers(0, 4)) == 0, fixed=fixed))
    if variant == "raw":
        x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype)))
        # Derivatives scale like 1 / ||W||_F: tiny entries would overflow float32 cotangents
        # (the forward's robustness to tiny and huge scales is tested in tests/test_bjorck.py).
        x = np.where(np.abs(x) < 2.0**-8, np.zeros_like(x), x)
    else:
        # Rank-deficient (exact zeros) and repeated singular values.
        svals = st.sampled_from([0.0, 0.0, 0.125, 0.5, 1.0]) | st.floats(1 / 16, 1.0)
        x = draw(_svd_matrix(shape, svals, 2.0 ** draw(st.integers(-3, 3)))).astype(dtype)
    order = _pick(draw, fixed, "order", [1, 2, 3, 4])
    params = dict(order=order, beta=_pick(draw, fixed, "beta", [0.5, 0.25] if order == 1 else [0.5]),
                  n_iter=draw(st.integers(0, 12)), scaling="frobenius", backward="unrolled",
                  checkpoint=draw(st.booleans()))
    return Case(x, params)


@st.composite
def _bjorck_case(draw, dtype, kind, fixed):
    shape = draw(_bjorck_shape())
    if kind == "general":
        return draw(_bjorck_general(shape, dtype, fixed))
    if kind == "pair":
        case = draw(_bjorck_general(shape, dtype, fixed))
        return case._replace(x2=draw(_bjorck_general(shape, dtype, fixed)).x)
    if kind == "differentiable":
        case = draw(_bjorck_well(shape, dtype, fixed=fixed))
        # The map varies on the scale of the smallest singular value (the Frobenius scaling
        # divides by ||W||_F, the iteration acts on s / c): a central difference step beyond
        # eps^(1/3) s_min leaves the O(h^2) regime whatever max |w_ij| is.
        s_min = float(np.min(np.linalg.svd(np.asarray(case.x, np.float64), compute_uv=False)))
        return case._replace(max_step=np.finfo(np.float64).eps ** (1 / 3) * s_min)
    if kind == "converged":
        return draw(_bjorck_well(shape, dtype, converged=True, fixed=fixed))
    if kind == "ties":
        svals = st.just(1.0) if draw(st.booleans()) else st.sampled_from([0.5, 1.0])
        return draw(_bjorck_well(shape, dtype, svals=svals, fixed=fixed))
    if kind == "convergence":
        # Half of the cases rank-deficient or nearly: zero singular values never converge, and
        # the iterates stop moving long before (the trap of a step-size stopping test).
        degenerate = st.sampled_from([0.0, 1e-3, 0.5, 1.0])
        svals = draw(st.sampled_from([_WELL, st.floats(1e-4, 1.0), degenerate, degenerate]))
        x = draw(_svd_matrix(shape, svals)).astype(dtype)
        tols = [1e-1, 1e-3, 1e-5] + ([1e-10] if np.dtype(dtype) == np.float64 else [])
        order = _pick(draw, fixed, "order", [1, 2, 3])
        # n_iter = 30 half of the time: enough for the iterates to stop moving.
        params = dict(order=order, n_iter=draw(st.integers(0, 30) | st.just(30)), tol=draw(st.sampled_from(tols)),
                      on_nonconvergence=draw(st.sampled_from(["warn", "raise"])),
                      backward=_pick(draw, fixed, "backward", ["unrolled", "implicit"]))
        if "beta" in fixed:
            params["beta"] = fixed["beta"]
        return Case(x, params)
    raise ValueError(f"kind must be one of {BJORCK_KINDS}, got {kind!r}")


def bjorck_cases(dtype, kind, fixed=None):
    """Strategy of Björck cases (kinds: the comment above :data:`BJORCK_CONVERGED_N_ITER`).

    ``fixed``: parameters an implementation fixes (``conventions["bjorck.params"]``); the
    order, beta, scaling and backward mode are then drawn as fixed, so that the number of
    iterations and the scale of every case are chosen for them (the others are imposed on the
    drawn case by the adapter layer)."""
    return _bjorck_case(np.dtype(dtype), kind, dict(fixed or {}))


# ----------------------------------------------------------------------------------------------
# Norm projections, row scalings and spectral normalization [PR-1]..[PR-11]. Rows lie along the
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
# Spectral normalization adds "converged": W = U diag(s) V^T with s_1 >= 2 s_2, run for 40
# iterations (error (1/2)^80 in u, [PR-11]).
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


def _case_rng(draw):
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def _n_rows(shape):
    return int(np.prod(shape[:-1], dtype=int))


@st.composite
def _general_rows(draw, dtype, shape):
    """Bounded floats; each row scaled by 2**j (j in [-8, 2]) and some entries zeroed."""
    x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype, 8.0)))
    rng = _case_rng(draw)
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
    rng = _case_rng(draw)
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
def _l2_rows(draw, dtype, shape, radii=st.sampled_from(PROJECTION_RADII)):
    """Rows whose l2 norm is r times a factor in [1/8, 7/8] or [9/8, 4] ([PR-8] [PR-10])."""
    radius = draw(radii)
    rng = _case_rng(draw)
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
    rng = _case_rng(draw)
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


SPECTRAL_KINDS = KINDS + ("converged",)
SPECTRAL_CONVERGED_N_ITER = 40


def _haar(rng, batch, k):
    q, r = np.linalg.qr(rng.standard_normal((*batch, k, k)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


@st.composite
def _spectral_case(draw, dtype, kind):
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=1)))
    # 1 x 1 matrices normalize to +-1 (derivative exactly 0) and a single row to w / ||w||, whose
    # JVP, the part of the direction orthogonal to w, is often tiny in 2-d: both are drawn, for
    # the absolute floor of the derivative checks [AU-2].
    m, n = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    shape = (*batch, m, n)
    if kind == "converged":
        k = min(m, n)
        s = np.concatenate([[1.0], draw(hnp.arrays(np.float64, k - 1, elements=st.floats(0, 0.5)))])
        rng = _case_rng(draw)
        u, v = _haar(rng, batch, m)[..., :k], _haar(rng, batch, n)[..., :k]
        x = (u * s) @ np.swapaxes(v, -1, -2) * 2.0 ** draw(st.integers(-3, 3))
        params = {"n_iter": SPECTRAL_CONVERGED_N_ITER, "tol": 0.0,
                  "convention": draw(st.sampled_from(["constant_uv", "exact"]))}
        return Case(x.astype(dtype), params)

    def entries():
        x = draw(hnp.arrays(dtype, shape, elements=bounded_floats(dtype, 4.0)))
        # Tiny entries would only test the scaling of [PR-11] (tests/test_spectral.py does).
        return np.where(np.abs(x) < 2.0**-20, 0, x).astype(dtype)

    x = entries()
    if kind == "differentiable":
        # Every entry of magnitude >= 1/4, so that no power-iteration norm vanishes; the
        # derivative of the computed iterations ("exact") is what central differences measure.
        x = np.where(np.abs(x) < 1 / 4, np.where(x < 0, -1 / 4, 1 / 4), x).astype(dtype)
        params = {"n_iter": draw(st.integers(1, 6)), "tol": 0.0, "convention": "exact"}
        # Smooth, but curved (normalizations divide by norms as small as ~1/4): a step of
        # 2**-20 keeps the central difference's O(h^2) truncation error below float64's
        # tolerance, its rounding error (eps / h ~ 1e-10) too.
        return Case(x, params, max_step=2.0**-20)
    params = {"n_iter": draw(st.integers(1, 6)), "tol": draw(st.sampled_from([0.0, 0.0, 1e-3])),
              "convention": draw(st.sampled_from(["constant_uv", "exact"]))}
    if kind == "general":
        return Case(x, params)
    if kind == "pair":
        return Case(x, params, x2=entries())
    raise ValueError(f"kind must be one of {SPECTRAL_KINDS}, got {kind!r}")


def spectral_normalize_cases(dtype, kind):
    """Strategy of :func:`reflip.spectral_normalize` cases (kinds: the comment above
    :data:`PROJECTION_RADII`)."""
    return _spectral_case(np.dtype(dtype), kind)
