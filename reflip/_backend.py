"""Array-namespace resolution and the few backend helpers the core needs.

Every public function calls :func:`get_namespace` once and passes the namespace down as ``xp``
(the array-api-compat convention, STYLE.md). Core code uses only the 2024.12 array API
standard through ``xp``; NumPy/CuPy specific code lives in :mod:`reflip._fast`.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj, is_cupy_array

__all__ = ["get_namespace", "to_numpy", "safe_divisor"]


def get_namespace(*arrays):
    """Return the array-API namespace of ``arrays`` (raises ``TypeError`` on mixed/unknown)."""
    for a in arrays:
        if not is_array_api_obj(a):
            raise TypeError(
                f"expected an array (NumPy, CuPy or any array-API array), got {type(a).__name__}"
            )
    return array_namespace(*arrays)


def to_numpy(x):
    """Copy-free where possible conversion of any array-API array to NumPy, via DLPack.

    CuPy arrays live on the device, which DLPack cannot hand to NumPy without a copy: they are
    copied to host explicitly.
    """
    if isinstance(x, np.ndarray):
        return x
    if is_cupy_array(x):
        return x.get()
    return np.from_dlpack(x)


def safe_divisor(d, xp, use=None):
    """``d`` where ``use`` holds (default ``d > 0``), 1 elsewhere: the divisor of a division
    whose result ``xp.where`` later discards (or defines) at those entries. They must still not
    divide by zero: NumPy would warn, and ``0/0`` or ``x/0`` would reach the residuals and the
    derivatives. The one copy of this guard for every primitive."""
    return xp.where(d > 0 if use is None else use, d, 1.0)
