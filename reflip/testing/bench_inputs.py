"""Benchmark inputs of the registry primitives (``Primitive.bench_inputs``): the sizes of the
issue-level benchmarks, float32, so that ``benchmarks/bench_registry.py`` can time every
primitive the same way."""
from __future__ import annotations

import numpy as np

__all__ = ["group_sort_inputs"]


def _normal(xp, shape, dtype, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype))


def group_sort_inputs(xp, dtype="float32"):
    x = _normal(xp, (4096, 1024), dtype)
    return [(f"4096x1024 k={k}", x, {"group_size": k}) for k in (2, 4, 16, 1024)]
