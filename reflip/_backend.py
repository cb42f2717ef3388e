"""Array-namespace resolution and the few backend helpers the core needs.

Every public function calls :func:`get_namespace` once and passes the namespace down as ``xp``
(the array-api-compat convention, STYLE.md). Core code uses only the 2024.12 array API
standard through ``xp``; NumPy/CuPy specific code lives in :mod:`reflip._fast`.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj, is_cupy_array

__all__ = ["get_namespace", "to_numpy", "safe_divisor"]


def get_namespace(*arrays, **named):
    """Return the array-API namespace of the arrays.

    Public functions pass their array arguments by keyword (``get_namespace(w=w, u=u)``) so
    that what is not an array (``None`` included) is refused with a ``TypeError`` naming the
    parameter; arrays of different libraries are refused the same way.
    """
    pairs = [("argument", a) for a in arrays] + list(named.items())
    for name, a in pairs:
        if not is_array_api_obj(a):
            raise TypeError(f"{name} must be an array (NumPy, CuPy or any array-API array), got "
                            f"{type(a).__name__}; convert with numpy.asarray")
    try:
        return array_namespace(*(a for _, a in pairs))
    except TypeError:
        raise TypeError(f"{', '.join(name for name, _ in pairs)} must be arrays of one array "
                        f"library, got {', '.join(type(a).__name__ for _, a in pairs)}") from None


def to_numpy(x):
    """Copy-free where possible conversion of any array-API array to NumPy, via DLPack.

    CuPy arrays live on the device, which DLPack cannot hand to NumPy without a copy: they are
    copied to host explicitly.
    """
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):  # a NumPy scalar: array-API-like, but without __dlpack__
        return np.asarray(x)
    if not is_array_api_obj(x):
        raise TypeError(f"x must be an array (NumPy, CuPy or any array-API array), got "
                        f"{type(x).__name__}; use numpy.asarray for Python sequences")
    if is_cupy_array(x):
        return x.get()
    return np.from_dlpack(x)


def safe_divisor(d, xp, use=None):
    """``d`` where ``use`` holds (default ``d > 0``), 1 elsewhere: the divisor of a division
    whose result ``xp.where`` later discards (or defines) at those entries. They must still not
    divide by zero: NumPy would warn, and ``0/0`` or ``x/0`` would reach the residuals and the
    derivatives. The one copy of this guard for every primitive."""
    return xp.where(d > 0 if use is None else use, d, 1.0)


def host(a, dtype=np.float64):
    """A NumPy copy of ``a`` (any backend's array, or a nested sequence) in ``dtype``.

    float64 by default: the audit's and the experiments' reductions run on the host in float64.
    ``dtype=None`` keeps the array's own dtype.
    """
    if is_array_api_obj(a) and not isinstance(a, np.ndarray):
        a = to_numpy(a)
    return np.asarray(a, dtype=dtype)


def haar_orthogonal(rng, m, n=None, *, batch=(), dtype=np.float64):
    """A Haar-distributed orthonormal ``m x n`` matrix (``n = m`` by default; orthonormal
    columns for ``m >= n``, rows for ``m < n``), or a stack of shape ``(*batch, m, n)``.

    The Q factor of a Gaussian ``max(m, n) x min(m, n)`` matrix with its column signs taken
    from ``diag(R)``: QR alone fixes the signs of ``diag(R)`` and is not Haar (Mezzadri, "How
    to generate random matrices from the classical compact groups", Notices AMS 54, 2007).
    Drawn in float64 from ``rng.standard_normal`` (a :class:`numpy.random.Generator`), then
    cast to ``dtype``. The one sampler of the package: layer initialisation [NN-12], the
    strategies, the audit's checks and the benchmarks' inputs.
    """
    n = m if n is None else n
    q, r = np.linalg.qr(rng.standard_normal((*tuple(batch), max(m, n), min(m, n))))
    q = q * np.where(np.diagonal(r, axis1=-2, axis2=-1) < 0, -1.0, 1.0)[..., None, :]
    q = q if m >= n else np.swapaxes(q, -1, -2)
    return q.astype(dtype, copy=False)
