"""Every registry primitive as an ``autograd`` primitive, so ``autograd.grad`` works through
reflip ops on NumPy arrays::

    import autograd.numpy as anp
    from autograd import grad
    from reflip.autograd_ops import group_sort

    g = grad(lambda x: anp.sum(group_sort(x, 3) * w))(x)

The VJP and JVP are the registry's hand-written ``bwd`` and ``jvp`` (never autograd's own
tracing of the forward). Both are linear maps at fixed residuals and each is the other's
transpose, so each is registered as an autograd primitive whose VJP is the other: that gives
derivatives of any order with respect to the cotangent. Derivatives through the residuals are
taken to be zero, which is exact almost everywhere only for primitives whose residuals are
piecewise constant in ``x`` (``second_order=True`` in the registry, e.g. GroupSort [GS-4]);
for the others a second derivative raises ``NotImplementedError``.

The residuals are recomputed from ``x`` when autograd asks for a derivative (autograd's
primitives return one value), which costs one extra forward pass.
"""
from __future__ import annotations

from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval

from ._registry import REGISTRY, Primitive

__all__ = ["bridge", "max_min", "full_sort"]


def _no_second_order(name):
    def second_order_unsupported(*args, **kwargs):
        raise NotImplementedError(
            f"{name}: second-order derivatives are not available through the autograd bridge "
            f"(registry record has second_order=False: its residuals depend smoothly on x)"
        )

    return second_order_unsupported


def bridge(record: Primitive):
    """Return ``record`` as an autograd primitive ``op(x, **params)``."""

    @primitive
    def op(x, **params):
        return record.fun(x, **params)

    @primitive
    def op_bwd(y_bar, residuals):
        return record.bwd(residuals, y_bar)

    def residuals_of(x, params):
        # Under nested differentiation x is still boxed by the outer trace: the residuals are
        # treated as constants (see the module docstring), so they come from its value.
        return record.fwd(getval(x), **params)[1]

    def op_vjp(ans, x, **params):
        residuals = residuals_of(x, params)

        def pullback(y_bar):
            return op_bwd(y_bar, residuals)

        return pullback

    defvjp(op, op_vjp)

    if record.jvp is not None:

        @primitive
        def op_jvp(x_dot, residuals):
            return record.jvp(residuals, x_dot)

        def pushforward(x_dot, ans, x, **params):
            return op_jvp(x_dot, residuals_of(x, params))

        defjvp(op, pushforward)

        if record.second_order:
            # bwd and jvp are linear in their first argument and transposes of each other.
            def bwd_vjp(ans, y_bar, residuals):
                def bwd_pullback(g):
                    return op_jvp(g, residuals)

                return bwd_pullback

            def jvp_vjp(ans, x_dot, residuals):
                def jvp_pullback(g):
                    return op_bwd(g, residuals)

                return jvp_pullback

            def bwd_jvp(g, ans, y_bar, residuals):
                return op_bwd(g, residuals)

            def jvp_jvp(g, ans, x_dot, residuals):
                return op_jvp(g, residuals)

            defvjp(op_bwd, bwd_vjp)
            defvjp(op_jvp, jvp_vjp)
            defjvp(op_bwd, bwd_jvp)
            defjvp(op_jvp, jvp_jvp)
        else:
            defvjp(op_jvp, _no_second_order(record.name))
            defjvp(op_jvp, _no_second_order(record.name))
    if not (record.second_order and record.jvp is not None):
        defvjp(op_bwd, _no_second_order(record.name))
        defjvp(op_bwd, _no_second_order(record.name))

    op.__name__ = op.__qualname__ = record.name
    op.__doc__ = f"autograd primitive for :func:`reflip.{record.name}`.\n\n{record.fun.__doc__}"
    return op


OPS = {name: bridge(record) for name, record in REGISTRY.items()}
globals().update(OPS)
__all__ += sorted(OPS)


def max_min(x, *, axis=-1):
    """:func:`reflip.max_min` for autograd."""
    return OPS["group_sort"](x, group_size=2, axis=axis)


def full_sort(x, *, axis=-1):
    """:func:`reflip.full_sort` for autograd."""
    return OPS["group_sort"](x, group_size=x.shape[axis], axis=axis)
