"""Meta-tests: the l_inf projection claims must catch every planted bug of
:mod:`reflip.testing.mutants_projections`, and pass on reflip itself."""
import pytest
from hypothesis import settings

from reflip._registry import REGISTRY
from reflip.audit import claims_for, run_claim
from reflip.testing.backends import available_backends
from reflip.testing.mutants_projections import EXPECTED, MUTANTS

pytestmark = pytest.mark.meta

NUMPY = available_backends(("numpy",))[0]
# Enough examples for every mutant to be found from a derandomized start; the meta-test
# fails (rather than passing vacuously) if a smaller budget ever stops finding one.
META = settings(max_examples=60, derandomize=True, deadline=None, database=None)


def _claims():
    return {c.id: c for c in claims_for("linf_project")}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught(name):
    """[PR-3] [PR-4] [PR-5]: each mutant (the paper code's sphere projection, a detached
    threshold sold as exact, rho off by one, sign(0) = +1, a mean over the whole row) fails the
    claims expected to catch it."""
    mutant = MUTANTS[name]
    for claim_id in EXPECTED[name]:
        result = run_claim(_claims()[claim_id], mutant, NUMPY, "float64", settings=META)
        assert result.status == "fail", f"mutant {name!r} passed {claim_id}: the suite has no teeth there"


@pytest.mark.parametrize("claim_id", sorted({c for ids in EXPECTED.values() for c in ids}))
def test_reflip_passes_the_same_checks(claim_id):
    """The catching claims are not trivially failing: reflip passes them with the same budget."""
    result = run_claim(_claims()[claim_id], REGISTRY["linf_project"], NUMPY, "float64", settings=META)
    assert result.status == "pass", result.error


def test_sphere_mutants_differ_only_at_zeros():
    """[PR-5] on a row inside the ball both sphere variants push the non-zero entries out by
    |theta|; with sign(0) = 0 a zero stays zero, with sign(0) = +1 it becomes |theta|."""
    import numpy as np

    # ||x||_1 = 1/2 < r = 1: every k passes the rho test, theta = max_k (c_k - r)/k = -1/6.
    x = np.array([[0.25, 0.0, -0.25]])
    sphere = MUTANTS["l1_sphere"].fun(x, radius=1.0)
    signed = MUTANTS["sign_zero_is_one"].fun(x, radius=1.0)
    np.testing.assert_allclose(sphere, [[5 / 12, 0.0, -5 / 12]], rtol=1e-15)
    np.testing.assert_allclose(signed, [[5 / 12, 1 / 6, -5 / 12]], rtol=1e-15)
    np.testing.assert_array_equal(REGISTRY["linf_project"].fun(x, radius=1.0), x)


def test_every_mutant_has_expectations():
    assert set(MUTANTS) == set(EXPECTED)
