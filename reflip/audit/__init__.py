"""The property suite: claims of the paper as executable checks, run by pytest, by
``reflip audit`` and by the meta-tests against deliberately broken implementations.

A claim checks an *implementation*: any object with the registry record's attributes
(``fun``, ``fwd``, ``bwd``, ``jvp``), so reflip's own primitives, mutants and (later) users'
adapters go through the same checks.
"""
from .engine import CLAIMS, Claim, ClaimFailure, ClaimResult, claims_for, register_claim, run_claim

__all__ = ["CLAIMS", "Claim", "ClaimFailure", "ClaimResult", "claims_for", "register_claim", "run_claim"]
