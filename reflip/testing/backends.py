"""The (namespace, dtype) cases every property test runs over (STYLE.md: one generator that
every test parametrizes over).

``numpy`` and ``array_api_strict`` are always available in the suite; ``array_api_strict`` also
runs with boolean indexing and data-dependent shapes turned off (``array_api_strict-nodds``) to
prove the core needs neither; ``cupy`` joins when it imports and sees a GPU.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Backend", "available_backends", "BACKEND_NAMES", "DTYPES"]

BACKEND_NAMES = ("numpy", "array_api_strict", "array_api_strict-nodds", "cupy")
DTYPES = ("float32", "float64")
API_VERSION = "2024.12"


@dataclass(frozen=True)
class Backend:
    name: str
    flags: dict = field(default_factory=dict)

    @property
    def xp(self):
        if self.name == "numpy":
            import array_api_compat.numpy as xp
        elif self.name == "cupy":
            import array_api_compat.cupy as xp
        else:
            import array_api_strict as xp
        return xp

    def dtype(self, name):
        return getattr(self.xp, name)

    def asarray(self, a, dtype=None):
        """Copy a NumPy array onto this backend (as ``dtype``, a name, when given)."""
        a = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
        return self.xp.asarray(a)

    @contextlib.contextmanager
    def active(self):
        """Context in which this backend's flags are set (array_api_strict only)."""
        if not self.name.startswith("array_api_strict"):
            yield
            return
        import array_api_strict

        with array_api_strict.ArrayAPIStrictFlags(api_version=API_VERSION, **self.flags):
            yield

    def __str__(self):
        return self.name


def _make(name):
    if name == "numpy":
        return Backend("numpy")
    if name == "array_api_strict":
        import array_api_strict  # noqa: F401

        return Backend("array_api_strict")
    if name == "array_api_strict-nodds":
        import array_api_strict  # noqa: F401

        return Backend(name, {"boolean_indexing": False, "data_dependent_shapes": False})
    if name == "cupy":
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise ImportError("cupy sees no GPU")
        return Backend("cupy")
    raise ValueError(f"backend must be one of {BACKEND_NAMES}, got {name!r}")


def available_backends(names=BACKEND_NAMES):
    """The backends of ``names`` that can run here (missing ones are left out)."""
    out = []
    for name in names:
        try:
            out.append(_make(name))
        except Exception:  # an optional backend that is absent or has no device
            if name in ("numpy",):
                raise
    return out
