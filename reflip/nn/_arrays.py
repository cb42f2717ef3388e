"""The namespace of the required array arguments of :mod:`reflip.nn`'s public functions."""
from __future__ import annotations

from .._backend import get_namespace

__all__ = ["namespace"]


def namespace(**arrays):
    """:func:`reflip._backend.get_namespace` of required arrays: ``get_namespace`` skips
    ``None`` (an absent optional array), here ``None`` is refused like any non-array, and a
    NumPy scalar or a mix of libraries is a ``TypeError`` naming the arguments."""
    for name, a in arrays.items():
        if a is None:
            raise TypeError(f"{name} must be an array (NumPy, CuPy or any array-API array), got None")
    try:
        return get_namespace(**arrays)
    except TypeError as exc:
        if any(str(exc).startswith(f"{name} must be") for name in arrays):
            raise
        raise TypeError(f"{', '.join(arrays)} must be arrays of one array library with at least one "
                        f"dimension, got {', '.join(type(a).__name__ for a in arrays.values())}") from None
