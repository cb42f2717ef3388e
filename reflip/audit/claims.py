"""Imports every module that registers claims (one per primitive)."""
from . import groupsort  # noqa: F401
from . import bjorck  # noqa: F401
from . import projections  # noqa: F401
from . import universality  # noqa: F401
