"""Adapters: how a third-party implementation is put through reflip's suite.

An adapter is any object with some of these methods, for each registry primitive ``op``
(``group_sort``, ``bjorck``, ``linf_project``, ...); every one is optional, and the checks
that need a missing one are reported as "not provided"::

    op(x, **params) -> y                      # forward
    op_vjp(x, y_bar, **params) -> x_bar       # reverse mode: y_bar^T J
    op_jvp(x, x_dot, **params) -> y_dot       # forward mode: J x_dot

except GroupSort, whose integer argument is passed positionally (it is the group size, or the
number of groups where the adapter declares so) with ``axis`` as a keyword::

    group_sort(x, k, axis=-1); group_sort_vjp(x, y_bar, k, axis=-1); group_sort_jvp(x, x_dot, k, axis=-1)

Arrays cross the boundary as NumPy arrays (convert with ``torch.from_numpy``,
``jax.numpy.asarray``, ``cupy.asarray``...); results may be anything ``numpy.asarray`` or
DLPack accepts. ``params`` are reflip's names for the parameters of :data:`PROTOCOL_PARAMS`
(Björck: ``order``, ``beta``, ``n_iter``, ``scaling``; the projections: ``radius`` and ``p``;
spectral normalization: ``n_iter``), less those the adapter declares fixed; a case may leave
some out, so give them reflip's defaults. reflip's other parameters (Björck's ``backward``,
``checkpoint``, ``tol``...) are never passed: reflip's reference runs with its defaults for
them, or with the values declared in ``conventions["<primitive>.params"]``. Optional
attributes:

``name``
    shown in reports.
``conventions``
    a dict declaring how the library differs from reflip's conventions, see
    :data:`CONVENTIONS`. The suite compares under the declared conventions; an undeclared
    deviation fails with a message naming the convention that would explain it.
``reflip_signature``
    ``True`` for an adapter whose functions take every parameter of reflip's (reflip behind
    the protocol, a mutant of it): it is passed them all, and the checks of reflip's own
    options (the Björck convergence report, both projection thresholds) apply to it.

:class:`AdapterImpl` turns ``(adapter, primitive)`` into the registry-record interface
(``fun``, ``fwd``, ``bwd``, ``jvp``) that every claim checks.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
import warnings

import numpy as np

from .._backend import to_numpy
from .._registry import REGISTRY
from ..layouts import MAX_MIN_LAYOUTS, max_min_indices
from .diagnose import axis_convention, diagnose
from .engine import ClaimFailure, NotSupported

__all__ = ["AdapterImpl", "CONVENTIONS", "PROTOCOL_PARAMS", "load_impl", "ReflipAdapter"]

# Declarable conventions: key -> (allowed values or type, reflip's value, meaning).
CONVENTIONS = {
    "group_sort.argument": (("group_size", "num_groups"), "group_size",
                            "what the integer argument means; the adapter is called with "
                            "group_size=k or num_groups=n/k accordingly"),
    "group_sort.layout": (MAX_MIN_LAYOUTS, "contiguous_min_max",
                          "MaxMin output layout (group size 2 only; declaring another layout "
                          "restricts the checks to group size 2)"),
    "group_sort.group_sizes": ((list, tuple), None,
                               "the group sizes the library supports (default: all)"),
    "group_sort.ties": (("stable", "any_permutation"), "stable",
                        "tie policy: 'any_permutation' keeps the check that the VJP permutes the "
                        "cotangent at ties but drops the one that it follows the stable order"),
    "group_sort.axis": (("any", "last"), "any",
                        "'last': the adapter is only called with the feature axis last"),
    "linf_project.threshold": (("exact", "detached"), "exact",
                               "the VJP's treatment of the l1-ball threshold (sets the parameter "
                               "threshold of reflip's reference; the adapter is not passed it)"),
}
# "<primitive>.params": parameters the library fixes (e.g. Björck's order, beta, n_iter,
# scaling and backward mode). The checks use only these values, reflip's reference runs with
# them, and the adapter is called WITHOUT them (they are the library's constants).
for _name in list(REGISTRY):
    CONVENTIONS[f"{_name}.params"] = (dict, None, f"parameters of {_name} the library fixes")

# The parameters an adapter's function is passed (when it does not fix them). The others are
# reflip's own choices (how the derivative is computed, checkpointing, early stopping, the
# convergence report): never passed, and reflip's reference keeps its defaults for them unless
# the adapter fixes other values, e.g. {"backward": "implicit"} for a library whose VJP is the
# derivative of the polar factor. ``None``: every parameter is passed (GroupSort's group size and
# axis, the network max_min_network evaluates). Every registered primitive is listed
# (tests/test_registry.py).
PROTOCOL_PARAMS = {
    "group_sort": None,
    "bjorck": ("order", "beta", "n_iter", "scaling"),
    "polar": ("degree", "lower", "n_iter"),
    "linf_project": ("radius",),
    "pinf_project": ("p", "radius"),
    "row_scale": ("p", "radius"),
    "spectral_normalize": ("n_iter",),
    "max_min_network": None,
}


def _defaults(primitive):
    """reflip's default value of every keyword parameter of ``primitive``'s forward."""
    signature = inspect.signature(REGISTRY[primitive].fwd)
    return {name: p.default for name, p in signature.parameters.items()
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}


def _check_conventions(conventions):
    for key, value in conventions.items():
        if key.endswith(".params") and key[: -len(".params")] in REGISTRY:
            if not isinstance(value, dict):
                raise ValueError(f"convention {key!r} must be a dict, got {type(value).__name__}")
            continue
        if key not in CONVENTIONS:
            raise ValueError(f"unknown convention {key!r}; declarable: {sorted(CONVENTIONS)}")
        allowed = CONVENTIONS[key][0]
        if isinstance(allowed, tuple) and allowed and isinstance(allowed[0], str):
            if value not in allowed:
                raise ValueError(f"convention {key!r} must be one of {allowed}, got {value!r}")
        elif not isinstance(value, allowed):
            raise ValueError(f"convention {key!r} must be a {allowed}, got {type(value).__name__}")
    return dict(conventions)


def load_impl(spec):
    """Resolve ``"package.module:attribute"`` to an adapter (an instance; a class or a factory
    function is called without arguments), or a ready adapter's short name
    (:data:`reflip.adapters.peers.PEERS`: ``"deel-torchlip"``...). The module is imported with
    the current directory on the path, as ``python -m`` would, so that a project's own adapters
    need no install."""
    from ..adapters.peers import PEERS, load_peer

    if spec in PEERS:  # a ready adapter's short name (reflip.adapters.peers)
        return load_peer(spec)
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"--impl must look like 'package.module:adapter' or be one of {sorted(PEERS)}, "
                         f"got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj = getattr(importlib.import_module(module), attr)
    return obj() if isinstance(obj, type) or (callable(obj) and not _looks_like_adapter(obj)) else obj


def _looks_like_adapter(obj):
    return any(callable(getattr(obj, name, None)) for name in REGISTRY)


def _as_numpy(value, what, like):
    """Bring an adapter's result back, checking what the harness can check for every claim."""
    try:
        out = np.asarray(to_numpy(value) if hasattr(value, "__dlpack__") else value)
    except Exception as exc:
        raise ClaimFailure(f"{what} returned {type(value).__name__}, which does not convert to an "
                           f"array ({exc})") from None
    if out.dtype == object:
        raise ClaimFailure(f"{what} returned {type(value).__name__}, which does not convert to an "
                           f"array of numbers")
    if out.shape != like.shape:
        raise ClaimFailure(f"{what} returned shape {out.shape}, expected {like.shape}")
    if out.dtype != like.dtype:
        raise ClaimFailure(f"{what} returned dtype {out.dtype}, expected {like.dtype} (the input's)")
    if np.all(np.isfinite(like)) and not np.all(np.isfinite(out)):
        raise ClaimFailure(f"{what} returned NaN or inf for a finite input")
    return out


def _call(adapter, method, *args, **kwargs):
    try:
        return getattr(adapter, method)(*args, **kwargs)
    except NotSupported:
        raise
    except ClaimFailure:
        raise
    except Exception as exc:
        raise ClaimFailure(f"adapter method {method} raised {type(exc).__name__}: {exc}") from exc


class _Residuals:
    """What an adapter's fwd keeps: the input and the (translated) parameters."""

    def __init__(self, x, params):
        self.x, self.params = x, params


class AdapterImpl:
    """The registry-record interface (``fun``, ``fwd``, ``bwd``, ``jvp``) over an adapter,
    for one primitive, translating reflip's layout and arguments to the declared ones."""

    def __init__(self, adapter, primitive):
        if primitive not in REGISTRY:
            raise KeyError(f"no primitive named {primitive!r}; registered: {sorted(REGISTRY)}")
        self.adapter = adapter
        self.name = self.reference_name = primitive
        self.label = getattr(adapter, "name", type(adapter).__name__)
        self.conventions = _check_conventions(getattr(adapter, "conventions", {}) or {})
        self.full_signature = bool(getattr(adapter, "reflip_signature", False))
        self.piecewise_linear = REGISTRY[primitive].piecewise_linear
        has = lambda suffix: callable(getattr(adapter, primitive + suffix, None))  # noqa: E731
        self.provided = {"fwd": has(""), "bwd": has("_vjp"), "jvp": has("_jvp")}
        self.fun = self._fun if self.provided["fwd"] else None
        self.fwd = self._fwd if self.provided["fwd"] else None
        self.bwd = self._bwd if self.provided["fwd"] and self.provided["bwd"] else None
        self.jvp = self._jvp if self.provided["fwd"] and self.provided["jvp"] else None

    def __repr__(self):
        return f"AdapterImpl({self.label}, {self.name})"

    def redeclared(self, **conventions):
        """The same library under other declared ``conventions`` (merged over its own): what
        the diagnosis runs to name the undeclared convention behind a failure."""
        adapter = self.adapter

        class Redeclared:
            def __getattr__(self, attr):
                return getattr(adapter, attr)

        alt = Redeclared()
        alt.conventions = {**self.conventions, **conventions}
        alt.name = self.label
        return AdapterImpl(alt, self.name)

    # -- parameters -------------------------------------------------------------------------
    def declared_params(self, primitive):
        """The parameters the library declares fixed (conventions)."""
        fixed = dict(self.conventions.get(f"{primitive}.params") or {})
        if primitive == "linf_project" and "linf_project.threshold" in self.conventions:
            fixed["threshold"] = self.conventions["linf_project.threshold"]
        return fixed

    def fixed_params(self, primitive):
        """Every parameter the adapter is not passed, with the value reflip's reference runs
        with: reflip's defaults for those outside :data:`PROTOCOL_PARAMS`, then the declared."""
        protocol = None if self.full_signature else PROTOCOL_PARAMS.get(primitive)
        own = {} if protocol is None else {k: v for k, v in _defaults(primitive).items() if k not in protocol}
        return {**own, **self.declared_params(primitive)}

    def strategy_fixed(self, primitive):
        """What the strategies should draw as fixed: the declared parameters, and GroupSort's
        supported group sizes (only 2 for a MaxMin layout)."""
        fixed = self.declared_params(primitive)
        if primitive == "group_sort":
            sizes = self.conventions.get("group_sort.group_sizes")
            if self.conventions.get("group_sort.layout", "contiguous_min_max") != "contiguous_min_max":
                sizes = [2]
            if sizes is not None:
                fixed["group_sizes"] = list(sizes)
        return fixed

    def takes(self, param):
        """Whether the adapter's function is passed ``param`` (checks that set one of reflip's
        options themselves ask this)."""
        protocol = None if self.full_signature else PROTOCOL_PARAMS.get(self.name)
        return param not in self.fixed_params(self.name) and (protocol is None or param in protocol)

    def params_for(self, primitive, params):
        """Cases drawn for reflip's parameters, with the fixed ones imposed (so that reflip's
        reference runs under the library's conventions)."""
        fixed = self.fixed_params(primitive)
        # Only the fixed parameters the case sets or the library declares: the others keep
        # reflip's defaults anyway.
        declared = self.declared_params(primitive)
        imposed = {k: v for k, v in fixed.items() if k in params or k in declared}
        return {**params, **imposed} if imposed else params

    # -- the interface the claims call --------------------------------------------------------
    def _fun(self, x, **params):
        return self._fwd(x, **params)[0]

    def _fwd(self, x, **params):
        x = np.asarray(to_numpy(x))
        y = self._translate("", x, None, params)
        return y, _Residuals(x, params)

    def _bwd(self, residuals, y_bar):
        y_bar = np.asarray(to_numpy(y_bar))
        return self._translate("_vjp", residuals.x, y_bar, residuals.params)

    def _jvp(self, residuals, x_dot):
        x_dot = np.asarray(to_numpy(x_dot))
        return self._translate("_jvp", residuals.x, x_dot, residuals.params)

    # -- translation --------------------------------------------------------------------------
    def _translate(self, suffix, x, arg, params):
        method = self.name + suffix
        if self.name != "group_sort":
            args = (x,) if arg is None else (x, arg)
            passed = {k: v for k, v in params.items() if self.takes(k)}
            # Every registry primitive maps an array to one of the same shape and dtype.
            return _as_numpy(_call(self.adapter, method, *args, **passed), method, x)
        try:
            return self._group_sort(suffix, x, arg, params)
        except ClaimFailure as exc:
            # The adapter raised: name the axis convention behind it, when one explains it
            # (probing calls the adapter again, so not while probing).
            if exc.__cause__ is None or getattr(self, "_probing", False):
                raise
            self._probing = True
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    hint = axis_convention(self, x, params, exc.__cause__)
            except Exception:  # a diagnosis is a hint: never let it mask the failure itself
                hint = ""
            finally:
                self._probing = False
            if not hint:
                raise
            raise ClaimFailure(f"{exc}; {hint}") from exc.__cause__

    def _group_sort(self, suffix, x, arg, params):
        method = "group_sort" + suffix
        k, axis = params["group_size"], params.get("axis", -1) % x.ndim
        n = x.shape[axis]
        layout = self.conventions.get("group_sort.layout", "contiguous_min_max")
        sizes = self.conventions.get("group_sort.group_sizes")
        if layout != "contiguous_min_max":
            sizes = [2]
        if sizes is not None and k not in sizes:
            raise NotSupported(f"group size {k}")
        if self.conventions.get("group_sort.axis", "any") == "last" and axis != x.ndim - 1:
            moved = self._group_sort(suffix, np.moveaxis(x, axis, -1),
                                     None if arg is None else np.moveaxis(arg, axis, -1),
                                     {**params, "axis": -1})
            return np.moveaxis(moved, -1, axis)
        # The integer goes positionally: its meaning, not its name, is the convention.
        value = n // k if self.conventions.get("group_sort.argument", "group_size") == "num_groups" else k
        kwargs = {"axis": params.get("axis", -1)}
        if layout == "contiguous_min_max":
            args = (x, value) if arg is None else (x, arg, value)
            return _as_numpy(_call(self.adapter, method, *args, **kwargs), method, x)
        # foreign(x') = ours(x'[in])[out]: with x' = x[inv_in], ours(x) = foreign(x')[inv_out]
        # [GS-9]; the VJP and JVP transpose / repeat those gathers.
        in_idx, out_idx = (np.asarray(i) for i in max_min_indices(layout, n))
        inv_in, inv_out = np.argsort(in_idx), np.argsort(out_idx)
        take = lambda a, idx: np.take(a, idx, axis=axis)  # noqa: E731
        x_foreign = take(x, inv_in)
        if suffix == "":
            y = _as_numpy(_call(self.adapter, method, x_foreign, value, **kwargs), method, x)
            return take(y, inv_out)
        if suffix == "_vjp":
            x_bar = _as_numpy(_call(self.adapter, method, x_foreign, take(arg, out_idx), value, **kwargs),
                              method, x)
            return take(x_bar, in_idx)
        y_dot = _as_numpy(_call(self.adapter, method, x_foreign, take(arg, inv_in), value, **kwargs), method, x)
        return take(y_dot, inv_out)

    # -- diagnosis ----------------------------------------------------------------------------
    def diagnose(self, case, backend, dtype, part=""):
        """Name the undeclared convention under which this implementation would agree with
        reflip on ``case`` ("" when none explains the difference); ``part`` ("forward", "vjp",
        "jvp" or "" when unknown) is the output that differed."""
        try:
            # The alternatives tried may warn (an unconverged implicit backward, an overflowing
            # scaling): those warnings are about the alternatives, not the failure.
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                return diagnose(self, case, dtype, part)
        except Exception:  # a diagnosis is a hint: never let it mask the failure itself
            return ""


class ReflipAdapter:
    """reflip's own primitives behind the adapter protocol (a reference for adapter authors
    and the harness's own self-test)."""

    name = "reflip (through the adapter protocol)"
    reflip_signature = True

    def __getattr__(self, attr):
        base, _, kind = attr.rpartition("_")
        if attr in REGISTRY:
            return lambda x, *a, **p: REGISTRY[attr].fun(x, *a, **p)
        if kind in ("vjp", "jvp") and base in REGISTRY:
            rec = REGISTRY[base]

            def derivative(x, arg, *a, **p):
                residuals = rec.fwd(x, *a, **p)[1]
                return rec.bwd(residuals, arg) if kind == "vjp" else rec.jvp(residuals, arg)

            return derivative
        raise AttributeError(attr)
