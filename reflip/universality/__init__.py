"""Universality of constrained MaxMin networks (claim C7 of the paper), constructively.

- :class:`MaxMinNetwork`: affine layers (:class:`Dense` or :class:`Select`) with MaxMin between
  them; evaluation with hand-written VJP/JVP is the registry primitive ``max_min_network``
  [UN-2]; constrained networks are 1-Lipschitz [UN-1]; :meth:`MaxMinNetwork.to_sequential` gives
  the same network as a :mod:`reflip.nn` model.
- :func:`lattice_max`, :func:`lattice_min`: closure of the constrained networks under
  pointwise max and min [UN-3]; :func:`abs_network`, :func:`norm_network`: exact norms [UN-5].
- :func:`dual_vector`, :func:`two_point_interpolant` [UN-4]; :func:`interpolate`: the network
  ``max_i min_j g_ij`` interpolating 1-Lipschitz data exactly [UN-8]; :func:`approximate`: within
  ``2 delta`` of a 1-Lipschitz function on a box [UN-10]; the density theorem itself is [UN-7].

Proofs: ``proofs/universality.md``; why 2-norm-constrained networks with element-wise
monotone activations cannot do the same: ``proofs/negative-result.md``.
"""
from ..norms import check_p, dual_exponent  # re-exported: the l_p exponents of every result here
from .interpolation import (
    Approximation,
    NotLipschitzError,
    approximate,
    delta_net,
    dual_vector,
    interpolant_size,
    interpolate,
    lipschitz_violation,
    two_point_interpolant,
)
from .lattice import INV_SQRT2, abs_network, deepen, lattice_max, lattice_min, norm_network, reduction_layers
from .network import (
    Dense,
    MaxMinNetwork,
    MaxMinNetworkResiduals,
    NetworkSize,
    Select,
    affine_network,
    max_min_network,
    max_min_network_bwd,
    max_min_network_fwd,
    max_min_network_jvp,
    random_constrained_network,
)

__all__ = [
    "Approximation",
    "Dense",
    "INV_SQRT2",
    "MaxMinNetwork",
    "MaxMinNetworkResiduals",
    "NetworkSize",
    "NotLipschitzError",
    "Select",
    "abs_network",
    "affine_network",
    "approximate",
    "check_p",
    "deepen",
    "delta_net",
    "dual_exponent",
    "dual_vector",
    "interpolant_size",
    "interpolate",
    "lattice_max",
    "lattice_min",
    "lipschitz_violation",
    "max_min_network",
    "max_min_network_bwd",
    "max_min_network_fwd",
    "max_min_network_jvp",
    "norm_network",
    "random_constrained_network",
    "reduction_layers",
    "two_point_interpolant",
]
