"""Deliberately broken spectral normalizations [PR-11], each a bug easy to make in a port.

The meta-tests (tests/meta/test_mutant_library.py) audit each like a user's library and
require that the claims named in :data:`EXPECTED` fail. Each mutant is the registry record of
``spectral_normalize`` with its functions swapped, so everything else is reflip's.
"""
from __future__ import annotations

import dataclasses

from .._backend import get_namespace
from .._registry import get
from ..spectral import spectral_normalize_fwd

__all__ = ["MUTANTS", "EXPECTED"]

_REFLIP = get("spectral_normalize")


def _stale_u_fwd(w, u=None, *, n_iter=50, tol=None, convention="constant_uv"):
    """sigma computed with the u from BEFORE the last update, ``u_{K-1}^T W v_K``
    (``= ||W^T u_{K-1}||``), as code does that reads its persistent u buffer before writing the
    new one back. The constant_uv backward is consistent with it (it differentiates
    ``u_{K-1}^T W v_K``); the exact one still differentiates ``||W v_K||``. At convergence
    ``u_{K-1} = u_K`` and nothing shows: only a few iterations from a cold start do."""
    xp = get_namespace(w)
    _, res = spectral_normalize_fwd(w, u, n_iter=n_iter, tol=tol, convention="exact")
    us, vs, a_norms, b_norms = res.trace
    sigma = a_norms[-1][..., None]
    y = res.w / xp.where(sigma > 0, sigma, 1.0)
    stale = res._replace(sigma=sigma, u=us[-2], convention=convention,
                         trace=res.trace if convention == "exact" else ())
    return y, stale


def _fun(w, u=None, *, n_iter=50, tol=None, convention="constant_uv"):
    return _stale_u_fwd(w, u, n_iter=n_iter, tol=tol, convention=convention)[0]


MUTANTS = {"stale_u": dataclasses.replace(_REFLIP, fwd=_stale_u_fwd, fun=_fun)}

# The claims that must catch each mutant (at least these; others may fail too).
EXPECTED = {"stale_u": ["spectral_normalize.fd", "spectral_normalize.matches_reflip"]}
