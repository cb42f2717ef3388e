"""The property suite: claims of the paper as executable checks, run by pytest, by
``reflip audit``, by the meta-tests against deliberately broken implementations, and on any
third-party implementation through an adapter (:mod:`reflip.audit.adapter`).

A claim checks an *implementation*: any object with the registry record's attributes
(``fun``, ``fwd``, ``bwd``, ``jvp``), so reflip's own primitives, mutants and users' adapters
go through the same checks.

Each claim is declared where its check is written, by the :func:`~reflip.audit.engine.claim`
decorator (id, proof label, kind of case, needs; the statement is the check's docstring's first
line); one module per primitive module declares them (``groupsort``, ``bjorck``,
``projections``, ``spectral``, ``universality``, and ``constructions`` for the universality
constructions), listed in :mod:`reflip.audit.claims`.
"""
from . import claims  # noqa: F401  (registers every claim; first, so that claims_for sees them all)
from .adapter import CONVENTIONS, PROTOCOL_PARAMS, AdapterImpl, ReflipAdapter, load_impl
from .api import Report, check_implementation, iter_checks, parametrize_with_checks, read_xfails
from .engine import (
    CLAIMS,
    Claim,
    ClaimFailure,
    ClaimResult,
    NotMeasured,
    NotSupported,
    claims_for,
    register_claim,
    run_claim,
)

__all__ = ["CLAIMS", "CONVENTIONS", "PROTOCOL_PARAMS", "AdapterImpl", "Claim", "ClaimFailure", "ClaimResult",
           "NotMeasured", "NotSupported", "ReflipAdapter", "Report", "check_implementation", "claims_for",
           "iter_checks", "load_impl", "parametrize_with_checks", "read_xfails", "register_claim", "run_claim"]
