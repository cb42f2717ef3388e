"""The modules that declare claims, one per primitive (and one for the universality
constructions): importing this module registers every claim. :mod:`reflip.audit` imports it
first, so that :func:`~reflip.audit.engine.claims_for` sees them all."""
from . import (
    bjorck,  # noqa: F401
    constructions,  # noqa: F401
    groupsort,  # noqa: F401
    polar,  # noqa: F401
    projections,  # noqa: F401
    spectral,  # noqa: F401
    universality,  # noqa: F401
)
