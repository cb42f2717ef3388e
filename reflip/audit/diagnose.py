"""Explain a disagreement with reflip by the undeclared convention that would remove it.

Each diagnoser re-runs the raw adapter on the failing case under the alternative conventions
of its primitive and returns a sentence naming the first one under which the adapter agrees
with reflip, or "" when none does.
"""
from __future__ import annotations

import numpy as np

from .._backend import to_numpy
from .._registry import REGISTRY
from ..layouts import MAX_MIN_LAYOUTS
from ..tolerances import eps

__all__ = ["diagnose", "DIAGNOSERS"]


def _close(a, b, dtype):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=float(np.sqrt(eps(dtype))), atol=0)


def _alternative(impl, **conventions):
    from .adapter import AdapterImpl

    class Redeclared:
        def __getattr__(self, attr):
            return getattr(impl.adapter, attr)

    alt = Redeclared()
    alt.conventions = {**impl.conventions, **conventions}
    alt.name = impl.label
    return AdapterImpl(alt, impl.name)


def _probes(dtype, group_sizes):
    """Inputs rich enough to tell conventions apart (a hypothesis-shrunk case is often too
    small: at width 2 every MaxMin layout is [min, max] or [max, min])."""
    rng = np.random.default_rng(12345)
    for k in group_sizes:
        x = (rng.permutation(3 * 24).reshape(3, 24) / 8.0 - 4.0).astype(dtype)
        yield x, {"group_size": k, "axis": -1}
        yield np.ascontiguousarray(x.T), {"group_size": k, "axis": 0}


def _explains(candidate, reference, probes, dtype):
    """``candidate(x, params)`` agrees with reflip on every probe."""
    try:
        return all(_close(candidate(x, p), reference(x, p), dtype) for x, p in probes)
    except Exception:
        return False


def _group_sort(impl, case, dtype):
    ref = REGISTRY["group_sort"]
    reference = lambda x, p: ref.fun(x, **p)  # noqa: E731
    declared = impl.conventions
    probes_all = list(_probes(dtype, (2, 3, 4)))
    probes_2 = [(x, p) for x, p in probes_all if p["group_size"] == 2]

    def redeclared(**conventions):
        alt = _alternative(impl, **conventions)
        return lambda x, p: alt.fun(x, **p)

    if _explains(lambda x, p: impl.fun(x, **p), reference, probes_all, dtype):
        forward_ok = True
    else:
        forward_ok = False
        declared_argument = declared.get("group_sort.argument", "group_size")
        other = "num_groups" if declared_argument == "group_size" else "group_size"
        if _explains(redeclared(**{"group_sort.argument": other}), reference, probes_all, dtype):
            meaning = {"num_groups": "number of groups", "group_size": "group size"}[other]
            return (f"outputs match reflip when the library's argument is read as the "
                    f"{meaning} (declare conventions['group_sort.argument'] = '{other}')"
                    + ("; did you pass the number of groups?" if other == "num_groups" else ""))

        def descending(x, p):
            y = np.moveaxis(impl.fun(x, **p), p["axis"], -1)
            k = p["group_size"]
            flipped = y.reshape(*y.shape[:-1], -1, k)[..., ::-1].reshape(y.shape)
            return np.moveaxis(flipped, -1, p["axis"])

        if _explains(descending, reference, probes_all, dtype):
            return "the library sorts each group in DESCENDING order"
        declared_layout = declared.get("group_sort.layout", "contiguous_min_max")
        for argument in (declared_argument, other):
            for layout in MAX_MIN_LAYOUTS:
                if (argument, layout) == (declared_argument, declared_layout):
                    continue
                change = {"group_sort.layout": layout, "group_sort.argument": argument}
                if _explains(redeclared(**change), reference, probes_2, dtype):
                    wanted = ", ".join(f"conventions['{key}'] = '{value}'" for key, value in change.items()
                                       if value != declared.get(key, {"group_sort.layout": "contiguous_min_max",
                                                                      "group_sort.argument": "group_size"}[key]))
                    hint = "; did you pass the number of groups?" if argument == "num_groups" else ""
                    return (f"for group size 2, outputs match reflip's MaxMin in the '{layout}' layout: "
                            f"declare {wanted}{hint}")
        # Sorting along the last axis whatever `axis` says.
        sq = (np.random.default_rng(7).permutation(144).reshape(12, 12) / 8.0).astype(dtype)
        square = [(sq, {"group_size": k, "axis": 0}) for k in (2, 3, 4)]
        if _explains(lambda x, p: impl.fun(x, **p), lambda x, p: ref.fun(x, **{**p, "axis": -1}), square, dtype):
            return "the library ignores `axis` and sorts along the last axis"
    if forward_ok and impl.bwd is not None:

        def vjp_with_forward_perm(x, p):
            k, axis = p["group_size"], p["axis"] % x.ndim
            y_bar = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
            perm = to_numpy(ref.fwd(x, **p)[1].perm)
            yg = np.moveaxis(y_bar, axis, -1)
            gathered = np.take_along_axis(yg.reshape(*yg.shape[:-1], -1, k), perm, axis=-1)
            return np.moveaxis(gathered.reshape(yg.shape), -1, axis)

        def impl_vjp(x, p):
            y_bar = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
            return impl.bwd(impl.fwd(x, **p)[1], y_bar)

        probes_3 = [(x, p) for x, p in probes_all if p["group_size"] >= 3]
        if _explains(impl_vjp, vjp_with_forward_perm, probes_3, dtype):
            return ("the VJP gathers the cotangent with the forward permutation instead of its "
                    "inverse (invisible for group size 2)")
    return ""


DIAGNOSERS = {"group_sort": _group_sort}


def diagnose(impl, case, dtype):
    fn = DIAGNOSERS.get(impl.name)
    return fn(impl, case, dtype) if fn else ""
