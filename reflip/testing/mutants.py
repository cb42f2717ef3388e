"""The whole mutant library: every deliberately broken implementation, audited exactly like a
user's library (through the adapter protocol), and the kill report of ``reflip audit --mutants``.

Record mutants (``mutants_<module>.MUTANTS``: registry records with one function broken) are
wrapped by :class:`RecordAdapter`; the adapter mutants below break a *convention* rather than
the mathematics (an undeclared layout, an ignored axis), which only the comparison with reflip
under the declared conventions can see.
"""
from __future__ import annotations

import functools
import importlib

from .._registry import REGISTRY

__all__ = ["RecordAdapter", "all_mutants", "audit_mutant", "kill_report", "ADAPTER_MUTANTS", "MODULES",
           "META_MUTANTS"]

MODULES = ("reflip.testing.mutants_groupsort", "reflip.testing.mutants_bjorck",
           "reflip.testing.mutants_projections", "reflip.testing.mutants_spectral", "reflip.testing.mutants_polar")
# Primitives whose mutants are planted by a meta-test of their own rather than as records of
# the library: max_min_network's bugs sit in the constructions its claims build (patched
# functions of reflip.universality), which an adapter cannot carry. Every registered primitive
# has mutants in MODULES or here (tests/test_registry.py).
META_MUTANTS = {"max_min_network": "tests/meta/test_universality_mutants.py"}


class RecordAdapter:
    """A registry record behind the adapter protocol (with reflip's full signature)."""

    reflip_signature = True

    def __init__(self, name, record, conventions=None):
        self.name, self.record = name, record
        self.conventions = conventions or {}
        setattr(self, record.name, self._forward)
        setattr(self, record.name + "_vjp", self._vjp)
        if record.jvp is not None:
            setattr(self, record.name + "_jvp", self._jvp)

    def _forward(self, x, *args, **params):
        return self.record.fun(x, *args, **params)

    def _vjp(self, x, y_bar, *args, **params):
        return self.record.bwd(self.record.fwd(x, *args, **params)[1], y_bar)

    def _jvp(self, x, x_dot, *args, **params):
        return self.record.jvp(self.record.fwd(x, *args, **params)[1], x_dot)


class _ForeignMaxMin:
    """A correct MaxMin in a foreign layout, declaring none (the audit must say which)."""

    def __init__(self, name, layout, conventions=None):
        from ..layouts import max_min_layout

        self.name, self.layout, self.conventions = name, layout, conventions or {}
        self._layout = max_min_layout

    def group_sort(self, x, group_size, axis=-1):
        if group_size != 2:
            return REGISTRY["group_sort"].fun(x, group_size, axis=axis)
        return self._layout(x, self.layout, axis=axis)


class _LastAxisOnly:
    """GroupSort that ignores ``axis`` and always sorts the last axis (a port of code that
    concatenates on one fixed axis)."""

    name = "group_sort ignoring axis"
    conventions = {}

    def group_sort(self, x, group_size, axis=-1):
        if x.shape[-1] % group_size:
            raise ValueError("group size does not divide the last axis")
        return REGISTRY["group_sort"].fun(x, group_size, axis=-1)


ADAPTER_MUTANTS = {
    "maxes_then_mins_undeclared": ("group_sort", _ForeignMaxMin("paper-code MaxMin", "maxes_then_mins")),
    "half_split_undeclared": ("group_sort", _ForeignMaxMin("half-split MaxMin", "half_split_max_min")),
    "axis_ignored": ("group_sort", _LastAxisOnly()),
}


def all_mutants():
    """``{name: (primitive, adapter)}`` for every mutant of every primitive present."""
    out = {}
    for module_name in MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for name, record in module.MUTANTS.items():
            conventions = getattr(module, "CONVENTIONS", {}).get(name)
            out[name] = (record.name, RecordAdapter(name, record, conventions))
    out.update(ADAPTER_MUTANTS)
    return out


def audit_mutant(name, profile="mutants"):
    """Audit one mutant (float64, NumPy); return its :class:`~reflip.audit.api.Report`
    (cached: the report of a derandomized run does not change). Failing cases are not shrunk:
    the verdict and its message are what a kill report needs."""
    return _audit_mutant(name, profile)


@functools.lru_cache(maxsize=None)
def _audit_mutant(name, profile):
    # One cache key per (name, profile) however audit_mutant was called.
    from ..audit.api import check_implementation

    primitive, adapter = all_mutants()[name]
    return check_implementation(adapter, primitives=[primitive], dtypes=["float64"], profile=profile,
                                shrink=False)


def kill_report(profile="mutants"):
    """Markdown kill report of the mutant library: ``(text, names of surviving mutants)``."""
    rows, survived = [], []
    mutants = all_mutants()
    for name in sorted(mutants):
        report = audit_mutant(name, profile)
        failed = [r for r in report.results if r.status == "fail"]
        if not failed:
            survived.append(name)
        # The comparison with reflip carries the diagnosis of an undeclared convention.
        hinted = [r for r in failed if r.claim.reference and "; " in r.error.split("\n")[0]]
        first = (hinted or failed)[0].error.split("\n")[0] if failed else ""
        rows.append(f"| {name} | {mutants[name][0]} | {'killed' if failed else '**SURVIVED**'} | "
                    f"{', '.join(sorted({r.claim.id.split('.', 1)[1] for r in failed})) or '-'} | "
                    f"{first.replace('|', '/')[:300]} |")
    killed = len(mutants) - len(survived)
    head = [f"reflip mutant library: {killed} of {len(mutants)} killed "
            f"(kill rate {100 * killed / max(1, len(mutants)):.0f}%, profile {profile}, float64, numpy)", "",
            "| mutant | primitive | verdict | failing checks | first message |", "|---|---|---|---|---|"]
    return "\n".join(head + rows), survived

