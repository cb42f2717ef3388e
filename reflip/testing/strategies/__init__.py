"""Hypothesis strategies drawing the cases of the property suite.

Every strategy factory has the signature ``factory(dtype, kind) -> strategy of Case`` where
``dtype`` is ``"float32"`` or ``"float64"`` and ``kind`` names the sort of input a claim needs:

``"general"``
    bounded floats (no NaN, inf or subnormals; bounds exactly representable in float32).
``"differentiable"``
    inputs where the primitive is differentiable, with ``Case.max_step`` the largest central
    difference step that stays on one smooth piece (GroupSort: tie-free, gaps >= 1/16 of the
    scale).
``"ties"``
    inputs on the non-differentiable set (GroupSort: many exact ties, signed zeros included).
``"pair"``
    ``Case.x2`` is a second input of the same shape (Lipschitz checks).

Cases are NumPy arrays; the engine moves them to the backend under test.

One module per primitive module (``groupsort``, ``bjorck``, ``projections``, ``spectral``,
``universality``), sharing :mod:`.common`. This package re-exports every factory, so that the
registry's ``"reflip.testing.strategies:<op>_cases"`` paths resolve.
"""
from .bjorck import BJORCK_CONVERGED_N_ITER, BJORCK_KINDS, bjorck_cases
from .common import KINDS, Case, bounded_floats
from .groupsort import group_sort_cases
from .projections import (
    PROJECTION_RADII,
    PROJECTION_UNITS,
    linf_project_cases,
    pinf_project_cases,
    row_scale_cases,
)
from .spectral import SPECTRAL_CONVERGED_N_ITER, SPECTRAL_KINDS, spectral_normalize_cases
from .universality import UNIVERSALITY_KINDS, max_min_network_cases

__all__ = ["Case", "bounded_floats", "KINDS", "group_sort_cases", "bjorck_cases", "BJORCK_CONVERGED_N_ITER",
           "BJORCK_KINDS", "linf_project_cases", "pinf_project_cases", "row_scale_cases",
           "PROJECTION_RADII", "PROJECTION_UNITS", "spectral_normalize_cases", "SPECTRAL_KINDS",
           "SPECTRAL_CONVERGED_N_ITER", "max_min_network_cases", "UNIVERSALITY_KINDS"]
