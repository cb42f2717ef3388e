"""Meta-tests of :mod:`reflip.testing.mutants_projections` beyond its audit, which
tests/meta/test_mutant_library.py runs (every mutant against the claims of ``EXPECTED``)."""
import pytest

from reflip._registry import REGISTRY
from reflip.testing.mutants_projections import EXPECTED, MUTANTS

pytestmark = pytest.mark.meta


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
