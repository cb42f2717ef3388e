"""Meta-tests of :mod:`reflip.testing.mutants_groupsort` beyond its audit, which
tests/meta/test_mutant_library.py runs (every mutant against the claims of ``EXPECTED``)."""
import numpy as np
import pytest

from reflip.testing.mutants_groupsort import EXPECTED, MUTANTS

pytestmark = pytest.mark.meta


def test_every_mutant_has_expectations():
    assert set(MUTANTS) == set(EXPECTED)


@pytest.mark.parametrize("name", ["tie_cotangent_twice", "tie_both_to_first"])
def test_tie_mutants_break_the_permutation_only_at_ties(name):
    """[GS-7] away from ties both tie mutants are reflip's permutation; at a tie the mask sends
    the two cotangents' sum to both entries, first-index picking sends it to the first."""
    mutant = MUTANTS[name]
    g = np.array([[1.0, 10.0]])
    _, res = mutant.fwd(np.array([[2.0, 1.0]]), 2)
    np.testing.assert_array_equal(mutant.bwd(res, g), [[10.0, 1.0]])
    _, res = mutant.fwd(np.array([[1.0, 1.0]]), 2)
    expected = [[11.0, 11.0]] if name == "tie_cotangent_twice" else [[11.0, 0.0]]
    np.testing.assert_array_equal(mutant.bwd(res, g), expected)
