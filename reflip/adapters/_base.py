"""What the framework adapters share: validating the functions and building the protocol's
methods (``op``, ``op_vjp``, ``op_jvp``) from a framework's forward, VJP and JVP."""
from __future__ import annotations

from .._registry import REGISTRY


class FrameworkAdapter:
    """Base of :class:`TorchAdapter` and :class:`JaxAdapter`.

    Parameters
    ----------
    name : str
        Shown in reports.
    conventions : dict, optional
        Declared conventions (:data:`reflip.audit.CONVENTIONS`).
    jvp : bool
        Offer forward mode (the framework's own JVP of the function).
    **functions
        ``primitive_name=callable``: the framework function for a registry primitive, called as
        ``fn(x, *args, **params)`` on framework arrays.
    """

    framework = "framework"

    def __init__(self, name=None, conventions=None, jvp=True, **functions):
        unknown = sorted(set(functions) - set(REGISTRY))
        if unknown:
            raise ValueError(f"no registry primitive named {unknown}; known: {sorted(REGISTRY)}")
        for prim, fn in functions.items():
            if not callable(fn):
                raise TypeError(f"{prim} must be callable, got {type(fn).__name__}")
        self.name = name or f"{self.framework} ({', '.join(sorted(functions))})"
        self.conventions = dict(conventions or {})
        self.functions = functions
        for prim, fn in functions.items():
            setattr(self, prim, self._forward_of(fn))
            setattr(self, prim + "_vjp", self._vjp_of(fn))
            if jvp:
                setattr(self, prim + "_jvp", self._jvp_of(fn))

    def _forward_of(self, fn):
        def forward(x, *args, **params):
            return self.to_numpy(fn(self.from_numpy(x), *args, **params))

        return forward

    def _vjp_of(self, fn):
        def vjp(x, y_bar, *args, **params):
            return self.to_numpy(self.vjp(fn, self.from_numpy(x), self.from_numpy(y_bar), args, params))

        return vjp

    def _jvp_of(self, fn):
        def jvp(x, x_dot, *args, **params):
            return self.to_numpy(self.jvp(fn, self.from_numpy(x), self.from_numpy(x_dot), args, params))

        return jvp
