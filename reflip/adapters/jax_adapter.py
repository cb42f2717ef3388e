"""JAX adapter: the VJP is ``jax.vjp`` of your function and the JVP ``jax.jvp``. float64
inputs need ``jax.config.update("jax_enable_x64", True)``; without it the float64 checks fail
with a dtype message (JAX silently computes in float32)."""
from __future__ import annotations

import numpy as np

from ._base import FrameworkAdapter

__all__ = ["JaxAdapter"]


class JaxAdapter(FrameworkAdapter):
    """Audit JAX functions (``jax.custom_vjp`` ones included) with reflip's suite::

        JaxAdapter(group_sort=lambda x, k, axis=-1: my_group_sort(x, k, axis=axis))
    """

    framework = "jax"

    def __init__(self, name=None, conventions=None, jvp=True, **functions):
        import jax  # noqa: F401  (fail at construction, not at the first check)

        super().__init__(name, conventions, jvp, **functions)

    @staticmethod
    def from_numpy(a):
        import jax.numpy as jnp

        return jnp.asarray(np.array(a))

    @staticmethod
    def to_numpy(t):
        return np.asarray(t)

    @staticmethod
    def vjp(fn, x, y_bar, args, params):
        import jax

        _, pullback = jax.vjp(lambda t: fn(t, *args, **params), x)
        return pullback(y_bar)[0]

    @staticmethod
    def jvp(fn, x, x_dot, args, params):
        import jax

        return jax.jvp(lambda t: fn(t, *args, **params), (x,), (x_dot,))[1]
