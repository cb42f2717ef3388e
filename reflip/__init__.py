"""reflip: reference implementation of *Sorting Out Lipschitz Function Approximation*
(Anil, Lucas & Grosse, ICML 2019).

Primitives come as ``<op>`` (the plain function), ``<op>_fwd`` (returns ``(y, residuals)``),
``<op>_bwd`` (``(residuals, y_bar) -> x_bar``) and ``<op>_jvp``; :data:`REGISTRY` lists them.
``reflip.autograd_ops`` exposes the same ops to ``autograd.grad``.
"""
from ._backend import get_namespace, to_numpy
from ._registry import REGISTRY, Primitive

# isort: off
# Importing a primitive's module registers it: this order is REGISTRY's order (the order of
# the audit's reports, the benchmarks and the autograd bridge), GroupSort first.
from .groupsort import (
    GroupSortResiduals,
    full_sort,
    group_sort,
    group_sort_bwd,
    group_sort_fwd,
    group_sort_jvp,
    max_min,
)
from .bjorck import (
    BjorckConvergenceError,
    BjorckConvergenceWarning,
    BjorckInfo,
    BjorckResiduals,
    basin_radius,
    bjorck,
    bjorck_bwd,
    bjorck_coefficients,
    bjorck_fwd,
    bjorck_jvp,
)
from .polar import (
    PolarResiduals,
    polar,
    polar_bwd,
    polar_fwd,
    polar_jvp,
    polar_schedule,
    safety_bound,
)
from .projections import (
    LinfProjectResiduals,
    PinfProjectResiduals,
    RowScaleResiduals,
    linf_project,
    linf_project_bwd,
    linf_project_fwd,
    linf_project_jvp,
    pinf_project,
    pinf_project_bwd,
    pinf_project_fwd,
    pinf_project_jvp,
    row_scale,
    row_scale_bwd,
    row_scale_fwd,
    row_scale_jvp,
)
from .spectral import (
    SpectralNormResiduals,
    spectral_normalize,
    spectral_normalize_bwd,
    spectral_normalize_fwd,
    spectral_normalize_jvp,
)
from .norms import norm_p_inf, op_norm_2, op_norm_inf
from .universality import (
    MaxMinNetworkResiduals,
    max_min_network,
    max_min_network_bwd,
    max_min_network_fwd,
    max_min_network_jvp,
)
# isort: on

__version__ = "0.1.0"

__all__ = [
    "REGISTRY",
    "Primitive",
    "get_namespace",
    "to_numpy",
    "GroupSortResiduals",
    "group_sort",
    "group_sort_fwd",
    "group_sort_bwd",
    "group_sort_jvp",
    "max_min",
    "full_sort",
    "BjorckConvergenceError",
    "BjorckConvergenceWarning",
    "BjorckInfo",
    "BjorckResiduals",
    "basin_radius",
    "bjorck",
    "bjorck_fwd",
    "bjorck_bwd",
    "bjorck_jvp",
    "bjorck_coefficients",
    "PolarResiduals",
    "polar",
    "polar_fwd",
    "polar_bwd",
    "polar_jvp",
    "polar_schedule",
    "safety_bound",
    "LinfProjectResiduals",
    "linf_project",
    "linf_project_fwd",
    "linf_project_bwd",
    "linf_project_jvp",
    "PinfProjectResiduals",
    "pinf_project",
    "pinf_project_fwd",
    "pinf_project_bwd",
    "pinf_project_jvp",
    "RowScaleResiduals",
    "row_scale",
    "row_scale_fwd",
    "row_scale_bwd",
    "row_scale_jvp",
    "SpectralNormResiduals",
    "spectral_normalize",
    "spectral_normalize_fwd",
    "spectral_normalize_bwd",
    "spectral_normalize_jvp",
    "op_norm_2",
    "op_norm_inf",
    "norm_p_inf",
    "MaxMinNetworkResiduals",
    "max_min_network",
    "max_min_network_fwd",
    "max_min_network_bwd",
    "max_min_network_jvp",
]
