"""The primitive registry: one record per primitive, iterated by the autograd bridge
(:mod:`reflip.autograd_ops`), the property suite (:mod:`reflip.audit`), ``reflip audit`` and
the benchmarks. Adding a primitive = writing its module and one :func:`register` call there.

Every primitive follows the same calling convention (mirroring ``jax.custom_vjp`` and
``torch.autograd.Function``)::

    fwd :: (x, **params) -> (y, residuals)
    bwd :: (residuals, y_bar) -> x_bar          # linear in y_bar
    jvp :: (residuals, x_dot) -> y_dot          # linear in x_dot; None when not provided
    fun :: (x, **params) -> y                   # may skip work only the derivatives need
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

__all__ = ["Primitive", "register", "REGISTRY", "get"]


@dataclass(frozen=True)
class Primitive:
    """A differentiable primitive and what the suite needs to check it.

    Attributes
    ----------
    name : str
        Registry key, also the public function's name.
    fun, fwd, bwd, jvp : callable
        See the module docstring for their types. ``jvp`` may be ``None``.
    proof : str
        Proof label of the primitive's definition (e.g. ``"GS-1"``), see ``proofs/``.
    second_order : bool
        Whether derivatives of ``bwd`` with respect to ``x`` are available (through the
        autograd bridge). GroupSort's residual is piecewise constant in ``x``, so its second
        derivative is 0 almost everywhere and this is ``True``.
    strategy : str
        ``"module:function"`` of a hypothesis strategy factory ``f(dtype, kind)`` drawing
        :class:`reflip.testing.strategies.Case` objects (NumPy arrays and params; the caller
        moves them to its backend); resolved lazily so that hypothesis stays a test dependency.
    piecewise_linear : bool
        ``fun`` is piecewise linear: central differences are exact away from kinks, which the
        suite uses to pick its step.
    bench_inputs : str or None
        ``"module:function"`` of ``f(xp, dtype="float32", size="full") -> [(label, x, params),
        ...]``, the inputs ``benchmarks/run.py`` and ``benchmarks/bench_registry.py`` time the
        primitive on (``size="small"``: the same cases scaled down for dry runs).
    """

    name: str
    fun: Callable
    fwd: Callable
    bwd: Callable
    jvp: Callable | None
    proof: str
    second_order: bool
    strategy: str
    piecewise_linear: bool = False
    bench_inputs: str | None = None

    def strategy_factory(self):
        return _resolve(self.strategy)

    def bench_factory(self):
        return None if self.bench_inputs is None else _resolve(self.bench_inputs)


def _resolve(path):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


REGISTRY: dict[str, Primitive] = {}


def register(record: Primitive) -> Primitive:
    if record.name in REGISTRY:
        raise ValueError(f"primitive {record.name!r} is already registered")
    REGISTRY[record.name] = record
    return record


def get(name: str) -> Primitive:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no primitive named {name!r}; registered: {sorted(REGISTRY)}") from None
