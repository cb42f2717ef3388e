"""A small JAX port of the paper's primitives, written the way a JAX user would write them from
the paper (Anil, Lucas, Grosse 2019) and the authors' PyTorch code: GroupSort, the paper
code's MaxMin, order-1 Björck orthonormalization and the row-wise l_inf projection. JAX has no
Lipschitz package of note, so this port is what ``reflip audit --impl jax-port`` audits (run
from a checkout: the module is found from the current folder), and what puts
:class:`reflip.adapters.JaxAdapter` through CI.

Every derivative is JAX's own (``jax.vjp`` / ``jax.jvp`` of the functions below): nothing here
hand-writes a VJP. Each function is jitted with its integer and string parameters static, as a
JAX user would write it: one compilation per shape instead of one per operation and shape
(which made an audit of the eager version take minutes).
"""
from functools import partial

import jax
import jax.numpy as jnp

from reflip.adapters import JaxAdapter


@partial(jax.jit, static_argnames=("group_size", "axis"))
def group_sort(x, group_size, axis=-1):
    """Sort each group of ``group_size`` consecutive entries along ``axis`` (ascending), with a
    stable sort: reflip's tie convention [GS-7]."""
    moved = jnp.moveaxis(x, axis, -1)
    groups = moved.reshape(*moved.shape[:-1], -1, group_size)
    return jnp.moveaxis(jnp.sort(groups, axis=-1, stable=True).reshape(moved.shape), -1, axis)


@partial(jax.jit, static_argnames=("num_units", "axis"))
def max_min(x, num_units, axis=-1):
    """The paper code's MaxMin: ``num_units`` pairs of consecutive entries (the NUMBER of
    groups), all maxima first, then all minima."""
    moved = jnp.moveaxis(x, axis, -1)
    pairs = moved.reshape(*moved.shape[:-1], num_units, -1)
    out = jnp.concatenate([pairs.max(axis=-1), pairs.min(axis=-1)], axis=-1)
    return jnp.moveaxis(out, -1, axis)


@partial(jax.jit, static_argnames=("n_iter", "scaling"))
def bjorck(w, beta=0.5, n_iter=20, scaling="frobenius"):
    """Order-1 Björck orthonormalization ``A <- (1 + beta) A - beta A A^T A`` on the tall
    orientation of each matrix of a stack, after the chosen scaling (the authors' layers use
    ``sqrt(m n)``, a safe but slow start; Frobenius is the tighter safe one)."""
    wide = w.shape[-2] < w.shape[-1]
    a = jnp.swapaxes(w, -1, -2) if wide else w
    if scaling == "frobenius":
        squares = jnp.sum(a * a, axis=(-2, -1), keepdims=True)
        nonzero = squares > 0
        # The inner where keeps sqrt's derivative finite at the zero matrix (which stays zero).
        a = a / jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squares, 1.0)), 1.0)
    elif scaling == "sqrt_mn":
        a = a / jnp.sqrt(jnp.asarray(a.shape[-2] * a.shape[-1], dtype=a.dtype))

    def step(_, a):
        return (1 + beta) * a - beta * (a @ (jnp.swapaxes(a, -1, -2) @ a))

    # Static bounds: fori_loop becomes a scan, which reverse mode differentiates step by step.
    a = jax.lax.fori_loop(0, n_iter, step, a)
    return jnp.swapaxes(a, -1, -2) if wide else a


@jax.jit
def linf_project(w, radius=1.0):
    """Euclidean projection of each row (last axis) onto the l1 ball of ``radius``, which makes
    ``||W||_inf <= radius``: soft-thresholding at the threshold found by sorting the magnitudes
    (Duchi et al. 2008). Rows inside the ball are returned unchanged. JAX differentiates
    through the threshold: the exact Jacobian of the projection."""
    mags = jnp.abs(w)
    sorted_mags = -jnp.sort(-mags, axis=-1)
    cums = jnp.cumsum(sorted_mags, axis=-1) - radius
    ranks = jnp.arange(1, w.shape[-1] + 1, dtype=w.dtype)
    active = sorted_mags - cums / ranks > 0
    count = jnp.sum(active, axis=-1, keepdims=True)
    theta = jnp.take_along_axis(cums, count - 1, axis=-1) / count.astype(w.dtype)
    projected = jnp.sign(w) * jnp.maximum(mags - theta, 0)
    inside = jnp.sum(mags, axis=-1, keepdims=True) <= radius
    return jnp.where(inside, w, projected)


def jax_port():
    """The JAX port behind the adapter protocol: ``group_sort`` (group size, stable sort),
    ``bjorck`` (order 1; reflip's ``beta``, ``n_iter`` and ``scaling`` passed through) and
    ``linf_project`` (exact Jacobian through the threshold). The paper-code MaxMin is its own
    adapter (:func:`jax_max_min_port`): one adapter offers one function per primitive."""
    # The port computes in its input's dtype: float64 needs JAX's 64-bit mode.
    jax.config.update("jax_enable_x64", True)
    return JaxAdapter(name=f"JAX port (tests/ports/jax_ports.py, jax {jax.__version__})",
                      group_sort=group_sort, bjorck=bjorck, linf_project=linf_project,
                      conventions={"bjorck.params": {"order": 1}})


def jax_max_min_port():
    jax.config.update("jax_enable_x64", True)
    return JaxAdapter(name="JAX port of the paper code's MaxMin", group_sort=max_min,
                      conventions={"group_sort.layout": "maxes_then_mins", "group_sort.argument": "num_groups"})
