"""Imports every module that registers claims (one per primitive)."""
from . import groupsort  # noqa: F401
