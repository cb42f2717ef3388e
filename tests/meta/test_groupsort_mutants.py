"""Meta-tests: the GroupSort claims must catch every planted bug of
:mod:`reflip.testing.mutants_groupsort`, and pass on reflip itself."""
import pytest
from hypothesis import settings

from reflip._registry import REGISTRY
from reflip.audit import claims_for, run_claim
from reflip.testing.backends import available_backends
from reflip.testing.mutants_groupsort import EXPECTED, MUTANTS

pytestmark = pytest.mark.meta

NUMPY = available_backends(("numpy",))[0]
# Enough examples for every mutant to be found from a derandomized start; the meta-test
# fails (rather than passing vacuously) if a smaller budget ever stops finding one.
META = settings(max_examples=60, derandomize=True, deadline=None, database=None)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name):
    """[GS-1] [GS-4] [GS-5] [GS-7]: each mutant fails the claims expected to catch it."""
    mutant = MUTANTS[name]
    by_id = {c.id: c for c in claims_for("group_sort")}
    for claim_id in EXPECTED[name]:
        result = run_claim(by_id[claim_id], mutant, NUMPY, "float64", settings=META)
        assert result.status == "fail", f"mutant {name!r} passed {claim_id}: the suite has no teeth there"


@pytest.mark.parametrize("claim_id", sorted({c for ids in EXPECTED.values() for c in ids}))
def test_reflip_passes_the_same_checks(claim_id):
    """The catching claims are not trivially failing: reflip passes them with the same budget."""
    claim = {c.id: c for c in claims_for("group_sort")}[claim_id]
    assert run_claim(claim, REGISTRY["group_sort"], NUMPY, "float64", settings=META).status == "pass"


def test_every_mutant_has_expectations():
    assert set(MUTANTS) == set(EXPECTED)
