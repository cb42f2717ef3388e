"""Argument validation: the one place every public function of reflip checks its arguments.

One rule, everywhere (CONTRIBUTING.md): a wrong *type* raises ``TypeError``, a wrong *value*
raises ``ValueError``, and the message names the parameter, what it got and what was expected.
Every check returns the normalised value (``int``, ``float``...) so that callers keep no
second copy of the conversion. The core (functions taking ``xp``) validates nothing: it is
reached only through a public function that called these checks.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "MAX_ITERATIONS",
    "NUMERIC_DTYPES",
    "check_array",
    "check_floating",
    "check_cotangent",
    "check_int",
    "check_real",
    "check_choice",
    "check_bool",
    "check_axis",
    "check_seed",
]

#: Upper bound of every iteration count (``n_iter``, ``steps``...). Björck needs about
#: ``log_1.5(1/s) + 5`` steps for a singular value ``s`` [BJ-6]: 1,800 for the smallest
#: positive float64. A larger count is a typo, and would run for hours on a real matrix.
MAX_ITERATIONS = 10_000

#: The dtypes of the numerical primitives: the tolerances, rounding bounds and BLAS products
#: are derived for these two. GroupSort moves entries without arithmetic and takes any real
#: floating dtype (float16 and longdouble included).
NUMERIC_DTYPES = ("float32", "float64")


def _describe(value):
    return f"{value!r} ({type(value).__name__})"


def check_floating(x, xp, name="x", *, exact=False):
    """Raise ``TypeError`` unless ``x``'s dtype is float32 or float64.

    With ``exact=True`` (primitives that only move entries, e.g. GroupSort) any real floating
    dtype is accepted, float16 and longdouble included.
    """
    if exact:
        if not xp.isdtype(x.dtype, "real floating"):
            raise TypeError(f"{name} must have a real floating dtype, got {x.dtype}")
        return
    if x.dtype not in (xp.float32, xp.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype} (float16 and "
                        f"longdouble are refused: the tolerances and rounding bounds are derived "
                        f"for float32 and float64; convert with astype)")


def check_array(x, xp, name, *, min_ndim=0, exact=False, what=""):
    """Check a floating array argument: its dtype (:func:`check_floating`), at least
    ``min_ndim`` dimensions, no zero-length axis. ``what`` describes the axes in messages."""
    check_floating(x, xp, name, exact=exact)
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s){what}, got shape "
                         f"{tuple(x.shape)}")
    if any(d == 0 for d in x.shape):
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")


def check_cotangent(name, a, shape, xp, *, exact=False):
    """A cotangent or tangent ``a`` must be a floating array of exactly ``shape``."""
    check_floating(a, xp, name, exact=exact)
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} must have the shape {tuple(shape)} of the primitive's "
                         f"{'output' if name.endswith('_bar') else 'input'}, got {tuple(a.shape)}")


def check_int(value, name, minimum=None, maximum=None):
    """Return ``value`` as an ``int``: ``TypeError`` for non-integers (bools included),
    ``ValueError`` outside ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(value, name, *, minimum=None, maximum=None, strict=False, finite=True,
               allow_none=False):
    """Return ``value`` as a ``float``: ``TypeError`` unless it is a real number (bools and
    strings refused), ``ValueError`` if not finite (``finite=True``) or outside
    ``[minimum, maximum]`` (``(minimum, maximum]`` with ``strict=True``). ``None`` passes through
    when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        expected = "a real number or None" if allow_none else "a real number"
        raise TypeError(f"{name} must be {expected}, got {_describe(value)}")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices``; ``TypeError`` for a value of another type
    than every choice, ``ValueError`` otherwise."""
    try:
        if value in choices:
            return value
    except TypeError:  # an unhashable value against a set of choices
        pass
    if not any(isinstance(value, type(c)) for c in choices):
        raise TypeError(f"{name} must be one of {tuple(choices)}, got {_describe(value)}")
    raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_bool(value, name):
    """Return ``value`` if it is ``True`` or ``False`` (NumPy bools included); ``TypeError``
    otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_axis(axis, ndim, name="axis"):
    """Normalise ``axis`` to ``[0, ndim)``: ``TypeError`` for a non-integer, ``ValueError`` out
    of range."""
    axis = check_int(axis, name)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array with {ndim} dimension(s); "
                         f"expected {-ndim} <= {name} < {ndim}")
    return axis % ndim


def check_seed(seed, name="seed"):
    """Return ``seed`` for :func:`numpy.random.default_rng`: ``None``, an integer >= 0, or a
    ``numpy.random.Generator``/``SeedSequence`` (passed through)."""
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    return check_int(seed, name, minimum=0)
