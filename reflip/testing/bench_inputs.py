"""Benchmark inputs of the registry primitives (``Primitive.bench_inputs``): the sizes of the
issue-level benchmarks, float32, so that ``benchmarks/run.py`` and
``benchmarks/bench_registry.py`` time every primitive the same way.

Every factory is ``f(xp, dtype="float32", size="full") -> [(label, x, params), ...]``;
``size="small"`` gives the same cases scaled down (dry runs, tests).
"""
from __future__ import annotations

import numpy as np

from .._backend import haar_orthogonal

__all__ = ["group_sort_inputs", "bjorck_inputs", "linf_project_inputs", "pinf_project_inputs",
           "row_scale_inputs", "spectral_normalize_inputs", "well_conditioned"]


def _normal(xp, shape, dtype, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype))


def _pick(size, full, small):
    if size not in ("full", "small"):
        raise ValueError(f"size must be 'full' or 'small', got {size!r}")
    return full if size == "full" else small


def well_conditioned(xp, n, dtype="float32", *, batch=(), lo=0.1, seed=0):
    """``Q_1 diag(s) Q_2^T`` with ``s`` spread evenly over ``[lo, 1]`` and Haar ``Q_1, Q_2``:
    Björck converges on it in a known number of steps and its polar factor is differentiable
    (``backward="implicit"`` needs that; a random square Gaussian matrix is nearly singular)."""
    rng = np.random.default_rng(seed)
    q1, q2 = haar_orthogonal(rng, n, batch=batch), haar_orthogonal(rng, n, batch=batch)
    s = np.linspace(lo, 1.0, n)
    return xp.asarray(((q1 * s) @ np.swapaxes(q2, -1, -2)).astype(dtype))


def group_sort_inputs(xp, dtype="float32", size="full"):
    m, n = _pick(size, (4096, 1024), (64, 256))
    x = _normal(xp, (m, n), dtype)
    return [(f"{m}x{n} k={k}", x, {"group_size": k}) for k in (2, 4, 16, n)]


def bjorck_inputs(xp, dtype="float32", size="full"):
    n = _pick(size, 1024, 64)
    return [(f"{n}x{n} s in [0.1, 1], order 1", well_conditioned(xp, n, dtype), {"order": 1}),
            (f"{4 * n}x{n} Gaussian, order 2", _normal(xp, (4 * n, n), dtype), {"order": 2})]


def linf_project_inputs(xp, dtype="float32", size="full"):
    n = _pick(size, 4096, 128)
    return [(f"{n}x{n}", _normal(xp, (n, n), dtype), {"radius": 1.0})]


def pinf_project_inputs(xp, dtype="float32", size="full"):
    n = _pick(size, 4096, 128)
    w = _normal(xp, (n, n), dtype)
    return [(f"{n}x{n} p={p}", w, {"p": p}) for p in (1, 2, float("inf"))]


def row_scale_inputs(xp, dtype="float32", size="full"):
    n = _pick(size, 4096, 128)
    w = _normal(xp, (n, n), dtype)
    return [(f"{n}x{n} p={p}", w, {"p": p}) for p in (1, 2, float("inf"))]


def spectral_normalize_inputs(xp, dtype="float32", size="full"):
    n = _pick(size, 1024, 64)
    return [(f"{n}x{n} 50 power steps", _normal(xp, (n, n), dtype), {})]
