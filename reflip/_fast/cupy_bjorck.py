"""CuPy switch for the TF32 phase of ``bjorck(..., precision="tf32-mixed")`` [BJ-5].

Björck's iteration is GEMMs only, which the core already sends to cuBLAS through ``@``; what a
GPU adds is TensorFloat-32: float32 products whose inputs are rounded to 10 mantissa bits, run
on tensor cores (~7x the float32 rate on an H100/H200). The iteration is self-correcting (the
polar factor is an attracting fixed point, [BJ-5]), so the rounding of the early steps is
forgotten; the last steps run in float32 and bring the result to float32 accuracy.

CuPy reads its compute type per dtype from a module-level table (initialised from the
``CUPY_TF32`` environment variable at the first product); :func:`tf32_matmul` sets it for
float32 and restores the previous value on exit, so nothing outside the block changes.
"""
from __future__ import annotations

import contextlib
import importlib

import numpy as np

__all__ = ["tf32_matmul"]

_COMPUTE_TYPE_TF32 = 7  # COMPUTE_TYPE_TF32 of CuPy's compute-type enum (CuPy 9-14)


def compute_type_module():
    """The CuPy module holding ``get_compute_type``/``set_compute_type`` (its place moved
    between CuPy versions: ``cupy._core._routines_linalg`` in CuPy 14)."""
    for name in ("cupy._core._routines_linalg", "cupy._core._linalg", "cupy._core"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "set_compute_type") and hasattr(mod, "get_compute_type"):
            return mod
    raise RuntimeError("this CuPy exposes no compute-type switch (set_compute_type): "
                       "precision='tf32-mixed' is unavailable; use precision='default'")


@contextlib.contextmanager
def tf32_matmul(dtype):
    """Products of float32 CuPy arrays use TF32 tensor cores inside the block (a no-op for
    other dtypes: float64 has no TF32 mode)."""
    if np.dtype(dtype) != np.float32:
        yield
        return
    mod = compute_type_module()
    old = mod.get_compute_type(np.float32)
    mod.set_compute_type(np.float32, getattr(mod, "COMPUTE_TYPE_TF32", _COMPUTE_TYPE_TF32))
    try:
        yield
    finally:
        mod.set_compute_type(np.float32, old)
