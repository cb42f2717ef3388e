"""Every registered claim of every registry primitive, on every backend and dtype it needs.

A primitive gets these tests by registering its claims in ``reflip/audit/claims.py``.

Backends x dtypes: NumPy (and CuPy where present) in float32 and float64. array_api_strict runs
float64 only, and only without boolean indexing and data-dependent shapes: those flags only
take features away, so a core that runs with them off runs with them on (the plain
``array_api_strict`` backend would repeat the same calls), and no code path of the core
depends on the dtype (no branch reads it; the float32 tolerances and promotion rules are
NumPy's and array_api_strict's alike and are exercised on NumPy). What array_api_strict adds
is the standard's API surface, which one dtype covers.
"""
import pytest

from reflip._registry import REGISTRY
from reflip.audit import claims_for, run_claim
from reflip.testing.backends import available_backends

# Claims comparing an implementation with reflip's own primitive are for adapters
# (tests/audit/test_adapter.py): on reflip itself they could not fail.
ALL_CLAIMS = [c for name in REGISTRY for c in claims_for(name) if not c.reference]
CASES = [(b, dt) for b in available_backends(("numpy", "cupy")) for dt in ("float32", "float64")]
CASES += [(b, "float64") for b in available_backends(("array_api_strict-nodds",))]


@pytest.mark.parametrize("claim", ALL_CLAIMS, ids=[c.id for c in ALL_CLAIMS])
@pytest.mark.parametrize("backend_dtype", CASES, ids=[f"{b.name}-{dt}" for b, dt in CASES])
def test_claim(claim, backend_dtype):
    """Runs the claim's check (its docstring cites the proof label) over hypothesis cases."""
    backend, dtype = backend_dtype
    if not claim.applies_to(backend):
        pytest.skip(f"{claim.id} does not run on {backend.name}")
    result = run_claim(claim, REGISTRY[claim.primitive], backend, dtype)
    assert result.examples > 0, f"{claim.id} measured no case on {backend.name} {dtype}"  # [AU-5]


def test_every_primitive_has_claims():
    for name in REGISTRY:
        ids = {c.id for c in claims_for(name)}
        assert {f"{name}.fd", f"{name}.adjoint", f"{name}.no_mutation"} <= ids, name
