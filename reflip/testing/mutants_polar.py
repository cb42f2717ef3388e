"""Deliberately broken polar iterations, each a bug easy to make when porting an
optimal-polynomial orthogonalizer (proofs/polar.md).

tests/meta/test_polar_mutants.py and tests/meta/test_mutant_library.py run the suite on each
and require that the claims named in :data:`EXPECTED` fail. Each mutant is the registry record
with its forward or backward swapped; everything else is reflip's.
"""
from __future__ import annotations

import dataclasses
import inspect

from .._registry import get
from ..polar import _polar_fwd, _validated, polar_bwd, polar_fwd, polar_schedule

__all__ = ["MUTANTS", "EXPECTED"]

_REFLIP = get("polar")
_DEFAULTS = {name: p.default for name, p in inspect.signature(polar_fwd).parameters.items()
             if p.kind is p.KEYWORD_ONLY}


def _mutant(name, coefficients=None, bwd=None):
    """``coefficients(cfg) -> tuple of per-step coefficients`` replaces the schedule after
    reflip's validation."""
    if coefficients is None:
        fwd = _REFLIP.fwd
    else:
        def fwd(w, **params):
            xp, cfg = _validated(w, **{**_DEFAULTS, **params})
            return _polar_fwd(w, cfg._replace(coeffs=coefficients(cfg)), xp)

    def fun(w, **params):
        return fwd(w, **params)[0]

    return name, dataclasses.replace(_REFLIP, fwd=fwd, fun=fun, bwd=bwd or _REFLIP.bwd)


def _overshooting(cfg):
    """The published construction: each step's minimax polynomial NOT divided by its maximum
    ``1 + E`` [PO-2], so singular values on its interior maxima reach ``1 + E`` (``E`` from the
    ratio ``l_{k+1} = (1 - E)/(1 + E)`` of the step)."""
    steps = polar_schedule(cfg.degree, cfg.lower)
    out = []
    for k, coeffs in enumerate(cfg.coeffs):
        ratio = steps[min(k, len(steps) - 1)][2]
        out.append(tuple(c * 2.0 / (1.0 + ratio) for c in coeffs))
    return tuple(out)


def _first_polynomial_repeated(cfg):
    """One fixed polynomial (the first step's) for every step, as a port that reads
    ``coeffs[0]`` instead of ``coeffs[k]`` would."""
    return tuple(cfg.coeffs[0] for _ in cfg.coeffs)


def _bwd_wrong_sign(residuals, y_bar):
    """The VJP with its sign flipped (a ``-=`` for a ``+=`` in the accumulation)."""
    return -polar_bwd(residuals, y_bar)


MUTANTS = dict([
    _mutant("overshooting_schedule", coefficients=_overshooting),
    _mutant("first_polynomial_repeated", coefficients=_first_polynomial_repeated),
    _mutant("vjp_wrong_sign", bwd=_bwd_wrong_sign),
])

# The claims that must catch each mutant (at least these; others may fail too).
EXPECTED = {
    "overshooting_schedule": ["polar.safety", "polar.spectral"],
    "first_polynomial_repeated": ["polar.spectral"],
    "vjp_wrong_sign": ["polar.fd", "polar.adjoint"],
}
