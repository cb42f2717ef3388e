"""Every registered claim of every registry primitive, on every backend and dtype.

A primitive gets these tests by registering its claims in ``reflip/audit/claims.py``.
"""
import pytest

from reflip._registry import REGISTRY
from reflip.audit import claims_for, run_claim

# Claims comparing an implementation with reflip's own primitive are for adapters
# (tests/test_adapter.py): on reflip itself they could not fail.
ALL_CLAIMS = [c for name in REGISTRY for c in claims_for(name) if not c.reference]


@pytest.mark.parametrize("claim", ALL_CLAIMS, ids=[c.id for c in ALL_CLAIMS])
def test_claim(claim, backend, dtype):
    """Runs the claim's check (its docstring cites the proof label) over hypothesis cases."""
    if not claim.applies_to(backend):
        pytest.skip(f"{claim.id} does not run on {backend.name}")
    run_claim(claim, REGISTRY[claim.primitive], backend, dtype)


def test_every_primitive_has_claims():
    for name in REGISTRY:
        ids = {c.id for c in claims_for(name)}
        assert {f"{name}.fd", f"{name}.adjoint", f"{name}.no_mutation"} <= ids, name
