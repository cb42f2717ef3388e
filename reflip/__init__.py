"""reflip: reference implementation of *Sorting Out Lipschitz Function Approximation*
(Anil, Lucas & Grosse, ICML 2019).

Primitives come as ``<op>`` (the plain function), ``<op>_fwd`` (returns ``(y, residuals)``),
``<op>_bwd`` (``(residuals, y_bar) -> x_bar``) and ``<op>_jvp``; :data:`REGISTRY` lists them.
``reflip.autograd_ops`` exposes the same ops to ``autograd.grad``.
"""
from ._backend import get_namespace, to_numpy
from ._registry import REGISTRY, Primitive
from .groupsort import (
    GroupSortResiduals,
    full_sort,
    group_sort,
    group_sort_bwd,
    group_sort_fwd,
    group_sort_jvp,
    max_min,
)

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
]
